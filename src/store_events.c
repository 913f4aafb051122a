/* The store's events and webhook endpoints: the event log, its fan-out to endpoints (one
 * delivery row per endpoint that wants the event, in the transaction of the change the event
 * reports), and the deliveries that webhook workers claim like messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "store_int.h"
#include "util.h"

/* The fan-out follows the event's INSERT, maybe in a batch whose answers are not read yet
 * (PostgreSQL's pipeline), so the event is found by the connection's last new id; the scalar
 * subquery is evaluated once, before the first delivery row moves that id on. The type and
 * time are checked too, so an INSERT that made no row cannot pass another row off as the
 * event. SendGrid's format carries message events only. A delivery to an endpoint whose
 * last POST failed waits for its next try (retry_at), with the rest of its backlog. */
#define FANOUT_SQL                                                                                 \
	"INSERT INTO webhook_deliveries (webhook_id, event_id, next_attempt_at, created_at) "      \
	"SELECT w.id, e.id, "                                                                      \
	"  CASE WHEN w.retry_at > e.created_at THEN w.retry_at ELSE e.created_at END, "            \
	"  e.created_at FROM events e "                                                            \
	"JOIN webhooks w ON w.account_id = e.account_id "                                          \
	"WHERE e.id = (SELECT %s) AND e.type = ? AND e.created_at = ? AND w.enabled = 1 "          \
	"  AND (w.events = '*' OR w.events LIKE '%%,' || e.type || ',%%') "                        \
	"  AND (w.format = 'standard' OR e.type LIKE 'message.%%')"

/* A disabled endpoint's pending deliveries wait at this time (2^62 s), after any time a claim
 * asks about, so the pick never walks past them; enabling the endpoint makes them due. */
#define PARKED "4611686018427387904"

/* Correlated, so that it is checked per delivery and never drives the plan. */
#define ENABLED "EXISTS (SELECT 1 FROM webhooks w WHERE w.id = d.webhook_id AND w.enabled = 1)"

/* The endpoint of a due delivery, in two statements that each read one index range in its
 * order, never sorting the backlog: one left "sending" by a worker whose lease ran out (few
 * are ever sending), else the pending one that has waited longest. Only that delivery is
 * locked, so another node picks the next one and both share an endpoint's backlog. */
#define PICK_LAPSED_SQL                                                                            \
	"SELECT d.webhook_id FROM webhook_deliveries d WHERE d.status = 'sending' "                \
	"  AND d.lease_until < ? AND " ENABLED " LIMIT 1%s"
#define PICK_SQL                                                                                   \
	"SELECT d.webhook_id FROM webhook_deliveries d WHERE d.status = 'pending' "                \
	"  AND d.next_attempt_at <= ? AND " ENABLED " "                                            \
	"ORDER BY d.next_attempt_at, d.id LIMIT 1%s"

/* The endpoint's due deliveries, through webhook_deliveries_hook: lapsed ones first, then
 * pending ones, oldest first. */
#define CLAIM_SET                                                                                  \
	"UPDATE webhook_deliveries SET status = 'sending', lease_until = ?, "                      \
	"  attempts = attempts + 1, claim = ? WHERE id IN (SELECT d.id FROM webhook_deliveries d " \
	"  WHERE d.webhook_id = ? AND "
#define CLAIM_LAPSED_SQL                                                                           \
	CLAIM_SET "d.status = 'sending' AND d.lease_until < ? "                                    \
		  "  ORDER BY d.next_attempt_at, d.id LIMIT ?%s)"
#define CLAIM_SQL                                                                                  \
	CLAIM_SET "d.status = 'pending' AND d.next_attempt_at <= ? "                               \
		  "  ORDER BY d.next_attempt_at, d.id LIMIT ?%s)"

static char *sql_with(const char *fmt, const char *part)
{
	size_t n = strlen(fmt) + strlen(part) + 1;
	char *sql = xmalloc(n);
	snprintf(sql, n, fmt, part);
	return sql;
}

void sq_events_init(struct store *s)
{
	const struct db_driver *drv = s->db->drv;
	s->fanout_sql = sql_with(FANOUT_SQL, drv->last_id);
	s->hook_pick_sql[0] = sql_with(PICK_LAPSED_SQL, drv->skip_locked);
	s->hook_pick_sql[1] = sql_with(PICK_SQL, drv->skip_locked);
	s->hook_claim_sql[0] = sql_with(CLAIM_LAPSED_SQL, drv->skip_locked);
	s->hook_claim_sql[1] = sql_with(CLAIM_SQL, drv->skip_locked);
}

void sq_events_free(struct store *s)
{
	free(s->fanout_sql);
	for (size_t i = 0; i < 2; i++) {
		free(s->hook_pick_sql[i]);
		free(s->hook_claim_sql[i]);
	}
}

/* webhook.test goes to the one endpoint it tests (store_webhook_test), never to all. */
static int fan_out(struct sq_conn *c, const char *type, int64_t now)
{
	if (strcmp(type, "webhook.test") == 0)
		return STORE_OK;
	return sq_exec(c, NULL, c->s->fanout_sql, "si", type, now);
}

int sq_event(struct sq_conn *c, int64_t account_id, const char *type, const char *message_uid,
	     const char *recipient, const char *data, int64_t now)
{
	int rc = sq_exec(
		c, NULL,
		"INSERT INTO events (account_id, type, created_at, message_uid, recipient, "
		"data) VALUES (?, ?, ?, ?, ?, ?)",
		"isisss", account_id, type, now, message_uid, recipient, data ? data : "{}");
	return rc == STORE_OK ? fan_out(c, type, now) : rc;
}

int sq_message_event(struct sq_conn *c, int64_t message_id, const struct store_event *ev,
		     int64_t now)
{
	int rc = sq_exec(
		c, NULL,
		"INSERT INTO events (account_id, type, created_at, message_uid, recipient, "
		"data) SELECT account_id, ?, ?, uid, ?, ? FROM messages WHERE id = ?",
		"sissi", ev->type, now, ev->recipient, ev->data ? ev->data : "{}", message_id);
	return rc == STORE_OK ? fan_out(c, ev->type, now) : rc;
}

int sq_message_events(struct sq_conn *c, int64_t message_id, const struct store_event *ev, size_t n,
		      int64_t now)
{
	int rc = STORE_OK;
	for (size_t i = 0; i < n && rc == STORE_OK; i++)
		rc = sq_message_event(c, message_id, &ev[i], now);
	return rc;
}

int sq_event_obj(struct sq_conn *c, int64_t account_id, const char *type, cJSON *data, int64_t now)
{
	char *text = data ? cJSON_PrintUnformatted(data) : NULL;
	cJSON_Delete(data);
	if (!text)
		return STORE_FAIL;
	int rc = sq_event(c, account_id, type, NULL, NULL, text, now);
	free(text);
	return rc;
}

int sq_event_str(struct sq_conn *c, int64_t account_id, const char *type, int64_t now,
		 const char *k1, const char *v1, const char *k2, const char *v2)
{
	cJSON *o = cJSON_CreateObject();
	if (o && k1)
		cJSON_AddStringToObject(o, k1, v1 ? v1 : "");
	if (o && k2)
		cJSON_AddStringToObject(o, k2, v2 ? v2 : "");
	return sq_event_obj(c, account_id, type, o, now);
}

/* An event's columns, with its message's From and meta (none for an account event). */
#define EVENT_COLUMNS                                                                              \
	"e.id, e.type, e.created_at, COALESCE(e.message_uid, ''), COALESCE(e.recipient, ''), "     \
	"e.data, COALESCE(m.from_addr, ''), COALESCE(m.meta, '')"
#define EVENT_JOIN "LEFT JOIN messages m ON m.account_id = e.account_id AND m.uid = e.message_uid"

/* Reads the columns of EVENT_COLUMNS from col on; data and meta point into the row. */
static void read_event_at(const struct sq_res *r, int col, struct store_event_info *e)
{
	e->id = sq_int(r, col);
	sq_col_text(r, col + 1, e->type, sizeof(e->type));
	e->created_at = sq_int(r, col + 2);
	sq_col_text(r, col + 3, e->message_uid, sizeof(e->message_uid));
	sq_col_text(r, col + 4, e->recipient, sizeof(e->recipient));
	const char *data = sq_text(r, col + 5);
	e->data = data ? data : "{}";
	sq_col_text(r, col + 6, e->from, sizeof(e->from));
	const char *meta = sq_text(r, col + 7);
	e->meta = meta ? meta : "";
}

static void read_event(const struct sq_res *r, void *row)
{
	read_event_at(r, 0, row);
}

/* One statement per filter, each with its index in mind: a message's timeline reads
 * events_message, the rest walk events_account back from before_id (ordered by its whole
 * key, or SQLite would rather walk every account's events by id). */
#define EVENTS_SQL(where, order)                                                                   \
	"SELECT " EVENT_COLUMNS " FROM events e " EVENT_JOIN " WHERE " where                       \
	" AND e.id < ? ORDER BY " order " LIMIT ?"
#define BY_ACCOUNT "e.account_id DESC, e.id DESC"

int store_events_list(struct store *s, int64_t account_id, const char *type,
		      const char *message_uid, int64_t before_id, int limit, store_event_fn fn,
		      void *arg)
{
	struct store_event_info row;
	int64_t before = before_id > 0 ? before_id : INT64_MAX;
	if (message_uid)
		return sq_list(s, read_event, &row, (sq_row_fn)fn, arg,
			       EVENTS_SQL("e.message_uid = ? AND e.account_id = ? "
					  "AND (? IS NULL OR e.type = ?)",
					  "e.id DESC"),
			       "sissid", message_uid, account_id, type, type, before, limit);
	if (type)
		return sq_list(s, read_event, &row, (sq_row_fn)fn, arg,
			       EVENTS_SQL("e.account_id = ? AND e.type = ?", BY_ACCOUNT), "isid",
			       account_id, type, before, limit);
	return sq_list(s, read_event, &row, (sq_row_fn)fn, arg,
		       EVENTS_SQL("e.account_id = ?", BY_ACCOUNT), "iid", account_id, before,
		       limit);
}

int store_webhook_create(struct store *s, int64_t account_id, const char *url, const char *format,
			 const char *events, const char *secret_sealed, const char *public_key,
			 int64_t now, int64_t *id)
{
	return sq_write(s, id,
			"INSERT INTO webhooks (account_id, url, format, events, secret_sealed, "
			"public_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
			"isssssi", account_id, url, format, events, secret_sealed,
			public_key ? public_key : "", now);
}

/* Everything but the secret, which only a claim reads. */
#define WEBHOOK_COLUMNS                                                                            \
	"id, account_id, url, format, events, public_key, enabled, created_at, "                   \
	"COALESCE(last_at, 0), COALESCE(last_status, ''), COALESCE(last_success_at, 0), "          \
	"COALESCE(failing_since, 0), COALESCE(disabled_at, 0)"

static void read_webhook(const struct sq_res *r, void *row)
{
	struct store_webhook *w = row;
	w->id = sq_int(r, 0);
	w->account_id = sq_int(r, 1);
	sq_col_text(r, 2, w->url, sizeof(w->url));
	sq_col_text(r, 3, w->format, sizeof(w->format));
	sq_col_text(r, 4, w->events, sizeof(w->events));
	sq_col_text(r, 5, w->public_key, sizeof(w->public_key));
	w->enabled = sq_int(r, 6) != 0;
	w->created_at = sq_int(r, 7);
	w->last_at = sq_int(r, 8);
	sq_col_text(r, 9, w->last_status, sizeof(w->last_status));
	w->last_success_at = sq_int(r, 10);
	w->failing_since = sq_int(r, 11);
	w->disabled_at = sq_int(r, 12);
}

int store_webhooks_list(struct store *s, int64_t account_id, store_webhook_fn fn, void *arg)
{
	struct store_webhook row;
	return sq_list(s, read_webhook, &row, (sq_row_fn)fn, arg,
		       "SELECT " WEBHOOK_COLUMNS " FROM webhooks WHERE account_id = ? ORDER BY id",
		       "i", account_id);
}

int store_webhook_get(struct store *s, int64_t account_id, int64_t id, struct store_webhook *out)
{
	return sq_get(s, read_webhook, out,
		      "SELECT " WEBHOOK_COLUMNS " FROM webhooks WHERE account_id = ? AND id = ?",
		      "ii", account_id, id);
}

int store_webhook_delete(struct store *s, int64_t account_id, int64_t id)
{
	/* The deliveries go with it (ON DELETE CASCADE). */
	return sq_update(s, false, "DELETE FROM webhooks WHERE account_id = ? AND id = ?", "ii",
			 account_id, id);
}

/* Parks the pending deliveries of endpoint id when it is disabled (by hand or by failures,
 * maybe while this transaction ran), so that they are not due until it is enabled. */
static int park(struct sq_conn *c, int64_t id)
{
	return sq_exec(c, NULL,
		       "UPDATE webhook_deliveries SET next_attempt_at = " PARKED " "
		       "WHERE webhook_id = ? AND status = 'pending' AND next_attempt_at < " PARKED
		       "  AND (SELECT enabled FROM webhooks WHERE id = ?) = 0",
		       "ii", id, id);
}

/* Makes the parked deliveries of endpoint id due; each still gives up 24 hours after it
 * was made (created_at), and the oldest goes first. */
static int unpark(struct sq_conn *c, int64_t id)
{
	return sq_exec(c, NULL,
		       "UPDATE webhook_deliveries SET next_attempt_at = created_at "
		       "WHERE webhook_id = ? AND status = 'pending' AND next_attempt_at = " PARKED,
		       "i", id);
}

int store_webhook_set_enabled(struct store *s, int64_t account_id, int64_t id, bool enabled)
{
	struct sq_conn c = sq_acquire(s);
	int on = enabled ? 1 : 0;
	int rc = sq_begin(&c);
	/* Enabled by hand, an endpoint starts its failure count over and is tried at once;
	 * disabled by hand, it was not disabled by failures. */
	if (rc == STORE_OK)
		rc = sq_exec(&c, NULL,
			     "UPDATE webhooks SET enabled = ?, "
			     "  failing_since = CASE WHEN ? = 1 THEN NULL ELSE failing_since END, "
			     "  disabled_at = CASE WHEN ? = 1 THEN NULL ELSE disabled_at END, "
			     "  retry_at = CASE WHEN ? = 1 THEN NULL ELSE retry_at END "
			     "WHERE account_id = ? AND id = ?",
			     "ddddii", on, on, on, on, account_id, id);
	if (rc == STORE_OK && sq_changes(&c) == 0)
		rc = STORE_NOT_FOUND;
	if (rc == STORE_OK)
		rc = enabled ? unpark(&c, id) : park(&c, id);
	rc = sq_end(&c, rc);
	sq_release(&c);
	return rc;
}

int store_webhook_test(struct store *s, int64_t account_id, int64_t id, const char *data,
		       int64_t now, int64_t *event_id)
{
	struct sq_conn c = sq_acquire(s);
	int64_t eid = 0;
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_exec(&c, &eid,
			     "INSERT INTO events (account_id, type, created_at, data) "
			     "VALUES (?, 'webhook.test', ?, ?) RETURNING id",
			     "iis", account_id, now, data ? data : "{}");
	if (rc == STORE_OK)
		rc = sq_exec(
			&c, NULL,
			"INSERT INTO webhook_deliveries (webhook_id, event_id, next_attempt_at, "
			"created_at) SELECT id, ?, ?, ? FROM webhooks WHERE account_id = ? AND "
			"id = ?",
			"iiiii", eid, now, now, account_id, id);
	if (rc == STORE_OK && sq_changes(&c) == 0)
		rc = STORE_NOT_FOUND;
	rc = sq_end(&c, rc);
	sq_release(&c);
	if (event_id)
		*event_id = rc == STORE_OK ? eid : 0;
	return rc;
}

/* The claimed endpoint, and its secret. */
static int claim_hook(struct sq_conn *c, int64_t id, struct store_webhook *hook,
		      char **secret_sealed)
{
	struct sq_res r;
	int rc = sq_step(c, &r,
			 "SELECT " WEBHOOK_COLUMNS ", secret_sealed FROM webhooks WHERE id = ?",
			 "i", id);
	if (rc != STORE_OK)
		return rc == STORE_NOT_FOUND ? STORE_FAIL : rc;
	read_webhook(&r, hook);
	const char *secret = sq_text(&r, 13);
	*secret_sealed = xstrdup(secret ? secret : "");
	sq_done(&r);
	return STORE_OK;
}

/* The deliveries claimed under token, with their events, copied out of the rows. */
static int claim_read(struct sq_conn *c, const char *token, struct store_delivery *out, size_t max,
		      size_t *n)
{
	struct sq_res r;
	int rc = sq_step(c, &r,
			 "SELECT d.id, d.attempts, d.created_at, " EVENT_COLUMNS " "
			 "FROM webhook_deliveries d JOIN events e ON e.id = d.event_id " EVENT_JOIN
			 " WHERE d.claim = ? ORDER BY d.id",
			 "s", token);
	while (rc == STORE_OK && *n < max) {
		struct store_delivery *d = &out[(*n)++];
		d->id = sq_int(&r, 0);
		d->attempts = (int)sq_int(&r, 1);
		d->created_at = sq_int(&r, 2);
		read_event_at(&r, 3, &d->ev);
		d->ev.data = xstrdup(d->ev.data);
		d->ev.meta = xstrdup(d->ev.meta);
		rc = sq_next(&r);
	}
	sq_done(&r);
	return rc == STORE_NOT_FOUND || rc == STORE_OK ? STORE_OK : rc;
}

/* The endpoint of a due delivery: one whose lease lapsed, else the oldest pending one. */
static int claim_pick(struct sq_conn *c, int64_t now, int64_t *hook_id)
{
	int rc = sq_exec(c, hook_id, c->s->hook_pick_sql[0], "i", now);
	if (rc == STORE_NOT_FOUND)
		rc = sq_exec(c, hook_id, c->s->hook_pick_sql[1], "i", now);
	return rc;
}

/* Claims up to max of the endpoint's due deliveries under token: lapsed ones, then pending. */
static int claim_rows(struct sq_conn *c, int64_t hook_id, int64_t now, int64_t lease_until,
		      const char *token, size_t max)
{
	int64_t left = (int64_t)max;
	int rc = STORE_OK;
	for (size_t i = 0; i < 2 && rc == STORE_OK && left > 0; i++) {
		rc = sq_exec(c, NULL, c->s->hook_claim_sql[i], "isiid", lease_until, token, hook_id,
			     now, (int)left);
		left -= rc == STORE_OK ? sq_changes(c) : 0;
	}
	return rc;
}

int store_webhook_claim(struct store *s, int64_t now, int64_t lease_until, size_t max,
			size_t max_sendgrid, struct store_webhook *hook, char **secret_sealed,
			char claim[STORE_CLAIM_LEN], struct store_delivery *out, size_t *n)
{
	struct sq_conn c = sq_acquire(s);
	int64_t hook_id = 0;
	*n = 0;
	*secret_sealed = NULL;
	auth_random_hex(claim, (STORE_CLAIM_LEN - 1) / 2);
	int rc = sq_begin_relaxed(&c, false);
	if (rc == STORE_OK)
		rc = claim_pick(&c, now, &hook_id);
	if (rc == STORE_OK)
		rc = claim_hook(&c, hook_id, hook, secret_sealed);
	if (rc == STORE_OK)
		rc = claim_rows(&c, hook_id, now, lease_until, claim,
				strcmp(hook->format, "sendgrid") == 0 ? max_sendgrid : max);
	if (rc == STORE_OK)
		rc = claim_read(&c, claim, out, max > max_sendgrid ? max : max_sendgrid, n);
	rc = sq_end_relaxed(&c, rc, false);
	sq_release(&c);
	if (rc != STORE_OK) {
		store_deliveries_free(out, *n);
		*n = 0;
		free(*secret_sealed);
		*secret_sealed = NULL;
	}
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

/* A claimed delivery given back, its attempt not counted. */
#define HAND_BACK                                                                                  \
	"UPDATE webhook_deliveries SET status = 'pending', lease_until = NULL, claim = NULL, "     \
	"  attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END "

int store_deliveries_recover(struct store *s)
{
	if (s->db->drv->shared)
		return STORE_OK;
	struct sq_conn c = sq_acquire(s);
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_exec(&c, NULL, HAND_BACK "WHERE status = 'sending'", "");
	/* Those of an endpoint disabled while they were out wait with its others. */
	if (rc == STORE_OK)
		rc = sq_exec(&c, NULL,
			     "UPDATE webhook_deliveries SET next_attempt_at = " PARKED " "
			     "WHERE status = 'pending' AND next_attempt_at < " PARKED
			     "  AND webhook_id IN (SELECT id FROM webhooks WHERE enabled = 0)",
			     "");
	rc = sq_end(&c, rc);
	sq_release(&c);
	return rc;
}

int store_webhook_release(struct store *s, int64_t webhook_id, const char *claim,
			  const int64_t *ids, size_t n)
{
	struct sq_conn c = sq_acquire(s);
	int rc = sq_begin_relaxed(&c, true);
	/* Still due (a claim leaves next_attempt_at as it was), and not attempted. */
	for (size_t i = 0; i < n && rc == STORE_OK; i++)
		rc = sq_exec(&c, NULL, HAND_BACK "WHERE id = ? AND webhook_id = ? AND claim = ?",
			     "iis", ids[i], webhook_id, claim);
	if (rc == STORE_OK)
		rc = park(&c, webhook_id);
	rc = sq_end_relaxed(&c, rc, true);
	sq_release(&c);
	return rc;
}

void store_deliveries_free(struct store_delivery *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)d[i].ev.data);
		free((char *)d[i].ev.meta);
		d[i].ev.data = d[i].ev.meta = NULL;
	}
}

/* One delivery's outcome: gone after a success, else waiting for its next try, or failed
 * for good. */
static int delivery_done(struct sq_conn *c, const struct store_webhook_result *r, int64_t id,
			 int64_t next_at)
{
	if (r->ok)
		return sq_exec(c, NULL,
			       "DELETE FROM webhook_deliveries "
			       "WHERE id = ? AND webhook_id = ? AND claim = ?",
			       "iis", id, r->webhook_id, r->claim);
	return sq_exec(c, NULL,
		       "UPDATE webhook_deliveries SET "
		       "  status = CASE WHEN ? > 0 THEN 'pending' ELSE 'failed' END, "
		       "  next_attempt_at = CASE WHEN ? > 0 THEN ? ELSE next_attempt_at END, "
		       "  lease_until = NULL, claim = NULL, last_status = ? "
		       "WHERE id = ? AND webhook_id = ? AND claim = ?",
		       "iiisiis", next_at, next_at, next_at, r->status, id, r->webhook_id,
		       r->claim);
}

/* The endpoint's last result; failing since the first failure after a success, and
 * disabled once that has lasted r->disable_after; after a failure, its next try. */
static int endpoint_done(struct sq_conn *c, const struct store_webhook_result *r)
{
	int ok = r->ok ? 1 : 0;
	int64_t retry_at = r->ok ? 0 : r->retry_at;
	int rc = sq_exec(c, NULL,
			 "UPDATE webhooks SET last_at = ?, last_status = ?, "
			 "  last_success_at = CASE WHEN ? = 1 THEN ? ELSE last_success_at END, "
			 "  failing_since = CASE WHEN ? = 1 THEN NULL "
			 "    ELSE COALESCE(failing_since, ?) END, "
			 "  retry_at = CASE WHEN ? > 0 THEN ? ELSE NULL END "
			 "WHERE id = ?",
			 "isdidiiii", r->now, r->status, ok, r->now, ok, r->now, retry_at, retry_at,
			 r->webhook_id);
	if (rc == STORE_OK && !r->ok && r->disable_after > 0)
		rc = sq_exec(c, NULL,
			     "UPDATE webhooks SET enabled = 0, disabled_at = ? "
			     "WHERE id = ? AND enabled = 1 AND failing_since <= ?",
			     "iii", r->now, r->webhook_id, r->now - r->disable_after);
	return rc;
}

/* After a failed POST the endpoint's other pending deliveries wait with it until
 * r->retry_at (and new ones too: the fan-out reads webhooks.retry_at), so a dead endpoint
 * is tried once per backoff step however long its backlog; and should it be disabled now,
 * they wait until it is enabled again. */
static int endpoint_wait(struct sq_conn *c, const struct store_webhook_result *r)
{
	int rc = STORE_OK;
	if (r->retry_at > 0)
		rc = sq_exec(c, NULL,
			     "UPDATE webhook_deliveries SET next_attempt_at = ? "
			     "WHERE webhook_id = ? AND status = 'pending' AND next_attempt_at < ?",
			     "iii", r->retry_at, r->webhook_id, r->retry_at);
	return rc == STORE_OK ? park(c, r->webhook_id) : rc;
}

int store_webhook_done(struct store *s, const struct store_webhook_result *r, const int64_t *ids,
		       const int64_t *next_at, size_t n)
{
	struct sq_conn c = sq_acquire(s);
	int rc = sq_begin_relaxed(&c, true);
	/* The endpoint's row first: a concurrent store_webhook_set_enabled, which writes it
	 * before the deliveries too, waits for this one or this one for it (PostgreSQL). */
	if (rc == STORE_OK)
		rc = endpoint_done(&c, r);
	for (size_t i = 0; i < n && rc == STORE_OK; i++)
		rc = delivery_done(&c, r, ids[i], next_at ? next_at[i] : 0);
	if (rc == STORE_OK && !r->ok)
		rc = endpoint_wait(&c, r);
	rc = sq_end_relaxed(&c, rc, true);
	sq_release(&c);
	return rc;
}
