/* The store's queue: messages (claimed by several nodes at once on a shared database),
 * drops, monitored would-be refusals, sends per From, and stats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_int.h"
#include "util.h"

/* Each flushed row of refusals is one sender_policy.refused event (of monitored would-be
 * refusals, sender_policy.monitored), so an operator hears of a flood within seconds without
 * an event per request; sandbox rows were not refused. */
static int drop_event(struct sq_conn *c, const struct store_drop *d, const char *type, int64_t now)
{
	if (strcmp(d->reason, "sandbox") == 0)
		return STORE_OK;
	char minute[21];
	util_iso8601(d->minute, minute);
	cJSON *data = cJSON_CreateObject();
	cJSON_AddNumberToObject(data, "key_id", (double)d->api_key_id);
	cJSON_AddStringToObject(data, "from", d->from);
	cJSON_AddStringToObject(data, "reason", d->reason);
	cJSON_AddNumberToObject(data, "count", (double)d->count);
	cJSON_AddStringToObject(data, "minute", minute);
	return sq_event_obj(c, d->account_id, type, data, now);
}

/* Refusals and monitored would-be refusals are counted alike, each in its own table with
 * its own event type. The stored count is named by its table: on PostgreSQL a bare one is
 * ambiguous. */
struct counted {
	const char *sql;
	const char *event;
};

static const struct counted counted_drops = {
	"INSERT INTO drops (account_id, api_key_id, from_addr, reason, minute, count) "
	"VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, api_key_id, from_addr, reason, "
	"minute) DO UPDATE SET count = drops.count + excluded.count",
	"sender_policy.refused"};
static const struct counted counted_monitored = {
	"INSERT INTO monitored (account_id, api_key_id, from_addr, reason, minute, count) "
	"VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, api_key_id, from_addr, reason, "
	"minute) DO UPDATE SET count = monitored.count + excluded.count",
	"sender_policy.monitored"};

static int counts_put(struct sq_conn *c, const struct counted *t, const struct store_drop *d,
		      size_t n, int64_t now)
{
	int rc = STORE_OK;
	for (size_t i = 0; i < n && rc == STORE_OK; i++) {
		rc = sq_exec(c, NULL, t->sql, "iissii", d[i].account_id, d[i].api_key_id, d[i].from,
			     d[i].reason, d[i].minute, d[i].count);
		if (rc == STORE_OK)
			rc = drop_event(c, &d[i], t->event, now);
	}
	return rc;
}

static int sends_put(struct sq_conn *c, const struct store_from_count *f, size_t n)
{
	int rc = STORE_OK;
	for (size_t i = 0; i < n && rc == STORE_OK; i++)
		rc = sq_exec(
			c, NULL,
			"INSERT INTO from_counts (account_id, from_addr, day, sends, last_seen) "
			"VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, from_addr, day) "
			"DO UPDATE SET sends = from_counts.sends + excluded.sends, "
			"last_seen = CASE WHEN excluded.last_seen > from_counts.last_seen "
			"THEN excluded.last_seen ELSE from_counts.last_seen END",
			"isiii", f[i].account_id, f[i].from, f[i].day, f[i].sends, f[i].last_seen);
	return rc;
}

int store_counts_add(struct store *s, const struct store_counts *k)
{
	struct sq_conn c = sq_acquire(s);
	int64_t now = util_now();
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = counts_put(&c, &counted_drops, k->drops, k->ndrops, now);
	if (rc == STORE_OK)
		rc = counts_put(&c, &counted_monitored, k->monitored, k->nmonitored, now);
	if (rc == STORE_OK)
		rc = sends_put(&c, k->sends, k->nsends);
	rc = sq_end(&c, rc);
	sq_release(&c);
	return rc;
}

int store_drops_add(struct store *s, const struct store_drop *d, size_t n)
{
	struct store_counts k = {.drops = d, .ndrops = n};
	return store_counts_add(s, &k);
}

static void read_from_total(const struct sq_res *r, void *row)
{
	struct store_from_total *t = row;
	sq_col_text(r, 0, t->from, sizeof(t->from));
	t->sends = sq_int(r, 1);
	t->last_seen = sq_int(r, 2);
}

int store_from_totals(struct store *s, int64_t account_id, int64_t since_day,
		      store_from_total_fn fn, void *arg)
{
	struct store_from_total row;
	return sq_list(s, read_from_total, &row, (sq_row_fn)fn, arg,
		       "SELECT from_addr, SUM(sends), MAX(last_seen) FROM from_counts "
		       "WHERE account_id = ? AND day >= ? GROUP BY from_addr "
		       "ORDER BY SUM(sends) DESC, from_addr",
		       "ii", account_id, since_day);
}

static void read_drop(const struct sq_res *r, void *row)
{
	struct store_drop *d = row;
	d->account_id = sq_int(r, 0);
	d->api_key_id = sq_int(r, 1);
	sq_col_text(r, 2, d->from, sizeof(d->from));
	sq_col_text(r, 3, d->reason, sizeof(d->reason));
	d->minute = sq_int(r, 4);
	d->count = sq_int(r, 5);
}

/* Sandbox requests share the drops table (drops.h) but were not refused: they are counted
 * by store_stats and listed nowhere. */
int store_drops_list(struct store *s, int64_t account_id, int limit, store_drop_fn fn, void *arg)
{
	struct store_drop row;
	return sq_list(s, read_drop, &row, (sq_row_fn)fn, arg,
		       "SELECT account_id, api_key_id, from_addr, reason, minute, count "
		       "FROM drops WHERE account_id = ? AND reason <> 'sandbox' "
		       "ORDER BY minute DESC, id DESC LIMIT ?",
		       "id", account_id, limit);
}

struct reason_row {
	char reason[40];
	int64_t count;
};

static void read_reason(const struct sq_res *r, void *row)
{
	struct reason_row *x = row;
	sq_col_text(r, 0, x->reason, sizeof(x->reason));
	x->count = sq_int(r, 1);
}

struct reason_fn {
	store_count_fn fn;
	void *arg;
};

static int call_reason(void *arg, const void *row)
{
	const struct reason_fn *rf = arg;
	const struct reason_row *r = row;
	return rf->fn(rf->arg, r->reason, r->count);
}

int store_stats(struct store *s, int64_t account_id, int64_t *accepted, store_count_fn fn,
		void *arg)
{
	struct sq_conn c = sq_acquire(s);
	struct sq_res r;
	struct reason_row row;
	struct reason_fn rf = {fn, arg};
	int rc = sq_step(&c, &r, "SELECT COUNT(*) FROM messages WHERE account_id = ?", "i",
			 account_id);
	if (rc == STORE_OK) {
		*accepted = sq_int(&r, 0);
		sq_done(&r);
		rc = sq_each(&c, read_reason, &row, call_reason, &rf,
			     "SELECT reason, SUM(count) FROM drops WHERE account_id = ? "
			     "GROUP BY reason ORDER BY reason",
			     "i", account_id);
	}
	sq_release(&c);
	return rc == STORE_NOT_FOUND ? STORE_FAIL : rc;
}

int store_monitored_stats(struct store *s, int64_t account_id, store_count_fn fn, void *arg)
{
	struct reason_row row;
	struct reason_fn rf = {fn, arg};
	return sq_list(s, read_reason, &row, call_reason, &rf,
		       "SELECT reason, SUM(count) FROM monitored WHERE account_id = ? "
		       "GROUP BY reason ORDER BY reason",
		       "i", account_id);
}

int store_message_status_counts(struct store *s, store_count_fn fn, void *arg)
{
	struct reason_row row;
	struct reason_fn rf = {fn, arg};
	return sq_list(s, read_reason, &row, call_reason, &rf,
		       "SELECT status, COUNT(*) FROM messages GROUP BY status ORDER BY status", "");
}

/* Picked through messages_due (status, ...), then by account: the unfinished rows are few
 * beside the finished ones retention keeps. */
int store_queue_counts(struct store *s, int64_t account_id, store_count_fn fn, void *arg)
{
	struct reason_row row;
	struct reason_fn rf = {fn, arg};
	return sq_list(s, read_reason, &row, call_reason, &rf,
		       "SELECT status, COUNT(*) FROM messages WHERE status IN ('queued', "
		       "'scheduled', 'sending', 'deferred') AND account_id = ? GROUP BY status",
		       "i", account_id);
}

/* One accepted message, with its meta and its events (message.processed, one per
 * recipient), which take the account and uid from the message itself. */
static int message_add(struct sq_conn *c, const struct store_message *m)
{
	int rc = sq_exec(
		c, NULL,
		"INSERT INTO messages (uid, account_id, api_key_id, system, source, from_addr, "
		"status, next_attempt_at, send_at, recipients, payload, created_at, updated_at, "
		"meta) VALUES (?, ?, NULLIF(?, 0), ?, ?, ?, "
		"CASE WHEN ? > 0 THEN 'scheduled' ELSE 'queued' END, ?, NULLIF(?, 0), ?, ?, ?, ?, "
		"?)",
		"siidssiiidsiis", m->uid, m->account_id, m->api_key_id, m->system ? 1 : 0,
		m->source ? m->source : "api", m->from, m->send_at,
		m->send_at > m->now ? m->send_at : m->now, m->send_at, m->recipients, m->payload,
		m->now, m->now, m->meta);
	for (size_t i = 0; i < m->nevents && rc == STORE_OK; i++)
		rc = sq_event(c, m->account_id, m->events[i].type, m->uid, m->events[i].recipient,
			      m->events[i].data, m->now);
	return rc;
}

int store_messages_add(struct store *s, const struct store_message *m, size_t n)
{
	struct sq_conn c = sq_acquire(s);
	int rc = sq_begin_batch(&c);
	for (size_t i = 0; i < n && rc == STORE_OK; i++)
		rc = message_add(&c, &m[i]);
	/* The commit is the fsync that makes every message of the batch durable at once. */
	rc = sq_end_batch(&c, rc);
	sq_release(&c);
	return rc;
}

int store_messages_recover(struct store *s)
{
	/* One daemon owns a database of its own, so anything "sending" was cut off by a stop.
	 * On a shared one other nodes may be delivering the rest: only a lapsed lease is
	 * theirs no longer. */
	return sq_write(s, NULL,
			"UPDATE messages SET status = 'queued', lease_until = NULL "
			"WHERE status = 'sending' AND (? = 0 OR lease_until < ?)",
			"di", s->db->drv->shared ? 1 : 0, util_now());
}

/* The next due messages: queued, scheduled or deferred and their time come, or left "sending" by a
 * deliverer whose lease ran out. The attempt is counted at the claim, so that one cut off by
 * a crash counts too; the finish takes it back when the relay was not asked. On a shared
 * database the rows are locked, and rows other nodes are claiming that moment are skipped
 * (the driver's skip_locked), so two nodes never take the same message. */
#define CLAIM_SQL                                                                                  \
	"UPDATE messages SET status = 'sending', lease_until = ?, "                                \
	"  attempts = attempts + 1, updated_at = ? "                                               \
	"WHERE id IN (SELECT id FROM messages WHERE "                                              \
	"  ((status IN ('queued','scheduled','deferred') AND next_attempt_at <= ?) OR "            \
	"   (status = 'sending' AND lease_until < ?)) "                                            \
	"  ORDER BY next_attempt_at, id LIMIT ?%s) "                                               \
	"RETURNING id, uid, account_id, COALESCE(api_key_id, 0), system, from_addr, "              \
	"  payload, attempts, parts_done, created_at, COALESCE(rejected, '')"

char *sq_claim_sql(const struct db_driver *drv)
{
	size_t n = sizeof(CLAIM_SQL) + strlen(drv->skip_locked);
	char *sql = xmalloc(n);
	snprintf(sql, n, CLAIM_SQL, drv->skip_locked);
	return sql;
}

static void read_queued(const struct sq_res *r, struct store_queued *out)
{
	out->id = sq_int(r, 0);
	sq_col_text(r, 1, out->uid, sizeof(out->uid));
	out->account_id = sq_int(r, 2);
	out->api_key_id = sq_int(r, 3);
	out->system = sq_int(r, 4) != 0;
	sq_col_text(r, 5, out->from, sizeof(out->from));
	const char *payload = sq_text(r, 6);
	out->payload = xstrdup(payload ? payload : "");
	out->attempts = (int)sq_int(r, 7);
	out->parts_done = (int)sq_int(r, 8);
	out->created_at = sq_int(r, 9);
	const char *rejected = sq_text(r, 10);
	out->rejected = xstrdup(rejected ? rejected : "");
}

int store_messages_claim(struct store *s, int64_t now, int64_t lease_until,
			 struct store_queued *out, size_t max, size_t *n)
{
	struct sq_conn c = sq_acquire(s);
	struct sq_res r;
	*n = 0;
	int rc = sq_step(&c, &r, s->claim_sql, "iiiid", lease_until, now, now, now, (int)max);
	if (rc == STORE_OK) {
		/* LIMIT keeps the rows to max; the claim is made once the statement has run
		 * to its end. */
		do
			read_queued(&r, &out[(*n)++]);
		while (*n < max && (rc = sq_next(&r)) == STORE_OK);
		rc = rc == STORE_FAIL ? (sq_done(&r), STORE_FAIL) : sq_finish(&r);
	}
	if (rc != STORE_OK && rc != STORE_NOT_FOUND) {
		for (size_t i = 0; i < *n; i++) {
			free(out[i].payload);
			free(out[i].rejected);
		}
		*n = 0;
	}
	sq_release(&c);
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

int store_message_progress(struct store *s, int64_t id, int64_t account_id, int parts_done,
			   const struct store_event *ev, size_t nev,
			   const struct store_suppression *sup, size_t nsup)
{
	struct sq_conn c = sq_acquire(s);
	int rc = sq_begin_batch(&c);
	if (rc == STORE_OK)
		rc = sq_exec(&c, NULL, "UPDATE messages SET parts_done = ? WHERE id = ?", "di",
			     parts_done, id);
	if (rc == STORE_OK)
		rc = sq_message_events(&c, id, ev, nev, util_now());
	if (rc == STORE_OK && nsup)
		rc = sq_suppress_add(&c, account_id, sup, nsup, util_now(), NULL);
	rc = sq_end_batch(&c, rc);
	sq_release(&c);
	return rc;
}

int store_messages_finish(struct store *s, const struct store_finish *f, size_t n)
{
	struct sq_conn c = sq_acquire(s);
	int rc = sq_begin_batch(&c);
	for (size_t i = 0; i < n && rc == STORE_OK; i++) {
		const struct store_outcome *o = f[i].outcome;
		rc = sq_exec(
			&c, NULL,
			"UPDATE messages SET status = ?, "
			"  next_attempt_at = CASE WHEN ? > 0 THEN ? ELSE next_attempt_at END, "
			"  reason = ?, last_reply = ?, rejected = COALESCE(?, rejected), "
			"  lease_until = NULL, updated_at = ?, attempts = attempts - ?, "
			/* Postern's own mail carries a Verify All link: keep it no longer than
			 * needed once the message is done. */
			"  payload = CASE WHEN system = 1 AND ? IN ('sent','failed','dropped') "
			"    THEN '' ELSE payload END "
			"WHERE id = ?",
			"siisssidsi", o->status, o->next_attempt_at, o->next_attempt_at, o->reason,
			o->last_reply, o->rejected, o->now, o->not_attempted ? 1 : 0, o->status,
			f[i].id);
		if (rc == STORE_OK)
			rc = sq_message_events(&c, f[i].id, o->events, o->nevents, o->now);
		if (rc == STORE_OK && o->nsuppress)
			rc = sq_suppress_add(&c, f[i].account_id, o->suppress, o->nsuppress, o->now,
					     NULL);
	}
	rc = sq_end_batch(&c, rc);
	sq_release(&c);
	return rc;
}

#define MESSAGE_COLUMNS                                                                            \
	"uid, from_addr, CASE status WHEN 'sending' THEN 'queued' ELSE status END, system, "       \
	"attempts, recipients, created_at, updated_at, next_attempt_at, reason, last_reply, "      \
	"rejected, send_at, source, parts_done"

static void read_message(const struct sq_res *r, void *row)
{
	struct store_message_info *m = row;
	sq_col_text(r, 0, m->uid, sizeof(m->uid));
	sq_col_text(r, 1, m->from, sizeof(m->from));
	sq_col_text(r, 2, m->status, sizeof(m->status));
	m->system = sq_int(r, 3) != 0;
	m->attempts = (int)sq_int(r, 4);
	m->recipients = (int)sq_int(r, 5);
	m->created_at = sq_int(r, 6);
	m->updated_at = sq_int(r, 7);
	m->next_attempt_at = sq_int(r, 8);
	sq_col_text(r, 9, m->reason, sizeof(m->reason));
	sq_col_text(r, 10, m->last_reply, sizeof(m->last_reply));
	sq_col_text(r, 11, m->rejected, sizeof(m->rejected));
	m->send_at = sq_int(r, 12);
	sq_col_text(r, 13, m->source, sizeof(m->source));
	m->parts_done = (int)sq_int(r, 14);
}

int store_messages_list(struct store *s, int64_t account_id, const char *status, int limit,
			store_message_fn fn, void *arg)
{
	struct store_message_info row;
	/* "sending" is a moment inside delivery; to users the message is still queued. */
	return sq_list(s, read_message, &row, (sq_row_fn)fn, arg,
		       "SELECT " MESSAGE_COLUMNS " FROM messages WHERE account_id = ? AND "
		       "(? IS NULL OR status = ? OR (? = 'queued' AND status = 'sending')) "
		       "ORDER BY id DESC LIMIT ?",
		       "isssd", account_id, status, status, status, limit);
}

int store_message_get(struct store *s, int64_t account_id, const char *uid,
		      struct store_message_info *out)
{
	return sq_get(s, read_message, out,
		      "SELECT " MESSAGE_COLUMNS " FROM messages WHERE account_id = ? AND uid = ?",
		      "is", account_id, uid);
}

/* Why a cancel changed nothing: the message is gone (STORE_NOT_FOUND), was sent a part
 * of since its events were made, or was claimed and given back meanwhile (STORE_TOO_SOON:
 * read it again), or is being sent or done (STORE_CONFLICT). */
static int cancel_refused(struct sq_conn *c, int64_t account_id, const char *uid)
{
	struct sq_res r;
	int rc = sq_step(c, &r,
			 "SELECT status IN ('queued','scheduled','deferred') FROM messages "
			 "WHERE account_id = ? AND uid = ?",
			 "is", account_id, uid);
	if (rc != STORE_OK)
		return rc;
	bool cancellable = sq_int(&r, 0) != 0;
	sq_done(&r);
	return cancellable ? STORE_TOO_SOON : STORE_CONFLICT;
}

int store_message_cancel(struct store *s, int64_t account_id, const char *uid, int64_t now,
			 int parts_done, const struct store_event *ev, size_t nev)
{
	struct sq_conn c = sq_acquire(s);
	int64_t id = 0;
	/* The status test is the lock: a claim moves the row to 'sending' in one statement,
	 * so exactly one of the two changes it. The events name the recipients not sent to
	 * yet, so they hold only while parts_done has not moved (a cancel without events
	 * does not ask). A verification email's link goes with it. */
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_exec(
			&c, &id,
			"UPDATE messages SET status = 'cancelled', lease_until = NULL, "
			"  updated_at = ?, payload = CASE WHEN system = 1 THEN '' ELSE payload "
			"END WHERE account_id = ? AND uid = ? "
			"  AND status IN ('queued','scheduled','deferred') "
			"  AND (? < 0 OR parts_done = ?) RETURNING id",
			"iisdd", now, account_id, uid, nev ? parts_done : -1, parts_done);
	if (rc == STORE_OK)
		rc = sq_message_events(&c, id, ev, nev, now);
	if (rc == STORE_NOT_FOUND)
		rc = cancel_refused(&c, account_id, uid);
	rc = sq_end(&c, rc);
	sq_release(&c);
	return rc;
}

static void read_payload(const struct sq_res *r, void *row)
{
	const char *payload = sq_text(r, 0);
	*(char **)row = xstrdup(payload ? payload : "");
}

int store_message_payload(struct store *s, int64_t account_id, const char *uid, char **out)
{
	*out = NULL;
	return sq_get(s, read_payload, out,
		      "SELECT payload FROM messages WHERE account_id = ? AND uid = ?", "is",
		      account_id, uid);
}
