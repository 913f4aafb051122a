/* The SQL store's mail side: the sender-auth switch, senders and their verification
 * batches, policy snapshots, the message queue (claimed by several nodes at once on
 * PostgreSQL), drops and stats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_sql.h"
#include "util.h"

static void read_sender_auth(const struct sq_res *r, void *row)
{
	struct store_sender_auth *a = row;
	a->enabled = sq_int(r, 0) != 0;
	a->verified = (int)sq_int(r, 1);
	a->pending = (int)sq_int(r, 2);
}

int sq_sender_auth_get(struct store *s, int64_t account_id, struct store_sender_auth *out)
{
	return sq_get(sq_of(s), read_sender_auth, out,
		      "SELECT sender_auth_enabled,"
		      "  (SELECT COUNT(*) FROM senders WHERE account_id = ? AND status = "
		      "'verified'),"
		      "  (SELECT COUNT(*) FROM senders WHERE account_id = ? AND status = "
		      "'pending') "
		      "FROM settings WHERE account_id = ?",
		      "iii", account_id, account_id, account_id);
}

int sq_sender_auth_set(struct store *s, int64_t account_id, bool enabled, int64_t user_id,
		       int64_t now)
{
	return sq_update(sq_of(s), true,
			 "UPDATE settings SET sender_auth_enabled = ?, updated_at = ?, "
			 "updated_by = ? WHERE account_id = ?",
			 "diii", enabled ? 1 : 0, now, user_id, account_id);
}

/* Sets b->wait to the seconds left before the account may have another batch (0 when it
 * may now). The account's row is locked first, so two nodes asking at once are taken one
 * after the other and neither slips past the other's batch. */
static int batch_gap(struct sq_conn *c, int64_t account_id, int64_t now, struct store_batch_new *b)
{
	int64_t last = 0;
	int rc = sq_lock(c, "SELECT id FROM accounts WHERE id = ? FOR NO KEY UPDATE", "i",
			 account_id);
	if (rc == STORE_OK)
		rc = sq_exec(c, &last,
			     "SELECT COALESCE(MAX(created_at), 0) FROM verification_tokens "
			     "WHERE account_id = ?",
			     "i", account_id);
	b->wait = rc == STORE_OK && last + b->gap > now ? last + b->gap - now : 0;
	return rc;
}

int sq_senders_add(struct store *s, int64_t account_id, int64_t user_id, int64_t now,
		   const char *const *addresses, size_t n, struct store_batch_new *b, int64_t *ids)
{
	struct sq_conn c = sq_acquire(sq_of(s));
	int64_t batch = 0;
	size_t added = 0;

	int rc = sq_begin(&c);
	/* An address the account has already returns no row: a failed INSERT would abort the
	 * whole transaction on PostgreSQL, so a conflict is never let happen. */
	for (size_t i = 0; i < n && rc == STORE_OK; i++) {
		ids[i] = 0;
		rc = sq_exec(
			&c, &ids[i],
			"INSERT INTO senders (account_id, address, domain, added_by, added_at) "
			"VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, address) DO NOTHING "
			"RETURNING id",
			"issii", account_id, addresses[i], addr_domain(addresses[i]), user_id, now);
		if (rc == STORE_NOT_FOUND) {
			ids[i] = 0;
			rc = STORE_OK;
		} else if (rc == STORE_OK) {
			added++;
		}
	}
	/* The senders are added whatever the rate; only their email may have to wait. */
	b->wait = 0;
	if (rc == STORE_OK && added)
		rc = batch_gap(&c, account_id, now, b);
	bool mail = added && !b->wait;
	if (rc == STORE_OK && mail)
		rc = sq_exec(&c, &batch,
			     "INSERT INTO verification_tokens (account_id, token_hash, created_by, "
			     "created_at, expires_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
			     "isiii", account_id, b->token_hash, user_id, now, b->expires_at);
	for (size_t i = 0; i < n && rc == STORE_OK && mail; i++)
		if (ids[i])
			rc = sq_exec(&c, NULL,
				     "INSERT INTO verification_token_senders (token_id, sender_id, "
				     "address) VALUES (?, ?, ?)",
				     "iis", batch, ids[i], addresses[i]);
	rc = sq_end(&c, rc);
	if (rc == STORE_OK && added)
		sq_policy_changed(c.q);
	sq_release(&c);
	return rc;
}

#define SENDER_SELECT                                                                              \
	"SELECT s.id, s.address, s.status, s.domain, d.status, d.active, ua.email, s.added_at, "   \
	"  uv.email, s.verified_at, s.verified_via "                                               \
	"FROM senders s "                                                                          \
	"LEFT JOIN sending_domains d ON d.account_id = s.account_id AND d.name = s.domain "        \
	"LEFT JOIN users ua ON ua.id = s.added_by "                                                \
	"LEFT JOIN users uv ON uv.id = s.verified_by "

static void read_sender(const struct sq_res *r, void *row)
{
	struct store_sender *x = row;
	char status[16];
	x->id = sq_int(r, 0);
	sq_col_text(r, 1, x->address, sizeof(x->address));
	sq_col_text(r, 2, status, sizeof(status));
	x->verified = strcmp(status, "verified") == 0;
	sq_col_text(r, 3, x->domain, sizeof(x->domain));
	sq_col_text(r, 4, x->domain_status, sizeof(x->domain_status));
	x->domain_active = sq_int(r, 5) != 0;
	sq_col_text(r, 6, x->added_by, sizeof(x->added_by));
	x->added_at = sq_int(r, 7);
	sq_col_text(r, 8, x->verified_by, sizeof(x->verified_by));
	x->verified_at = sq_int(r, 9);
	sq_col_text(r, 10, x->verified_via, sizeof(x->verified_via));
}

int sq_senders_list(struct store *s, int64_t account_id, store_sender_fn fn, void *arg)
{
	struct store_sender row;
	return sq_list(sq_of(s), read_sender, &row, (sq_row_fn)fn, arg,
		       SENDER_SELECT "WHERE s.account_id = ? ORDER BY s.address", "i", account_id);
}

int sq_sender_get(struct store *s, int64_t account_id, int64_t id, struct store_sender *out)
{
	return sq_get(sq_of(s), read_sender, out,
		      SENDER_SELECT "WHERE s.account_id = ? AND s.id = ?", "ii", account_id, id);
}

int sq_sender_verify(struct store *s, int64_t account_id, int64_t id, int64_t user_id, int64_t now)
{
	/* Verifying twice keeps the first verifier and time. */
	return sq_update(
		sq_of(s), true,
		"UPDATE senders SET status = 'verified', "
		"  verified_by = CASE status WHEN 'verified' THEN verified_by ELSE ? END,"
		"  verified_at = CASE status WHEN 'verified' THEN verified_at ELSE ? END,"
		"  verified_via = CASE status WHEN 'verified' THEN verified_via ELSE 'panel' END "
		"WHERE account_id = ? AND id = ?",
		"iiii", user_id, now, account_id, id);
}

int sq_sender_delete(struct store *s, int64_t account_id, int64_t id)
{
	return sq_update(sq_of(s), true, "DELETE FROM senders WHERE account_id = ? AND id = ?",
			 "ii", account_id, id);
}

static void read_policy_sender(const struct sq_res *r, void *policy)
{
	policy_add_sender(policy, sq_text(r, 0), sq_int(r, 1) != 0);
}

static void read_policy_domain(const struct sq_res *r, void *policy)
{
	const char *status = sq_text(r, 1);
	enum policy_domain_status ds = strcmp(status, "verified") == 0 ? POLICY_DOMAIN_VERIFIED
				       : strcmp(status, "failed") == 0 ? POLICY_DOMAIN_FAILED
								       : POLICY_DOMAIN_PENDING;
	policy_add_domain(policy, sq_text(r, 0), ds, sq_int(r, 2) != 0);
}

int sq_policy_load(struct store *s, int64_t account_id, struct policy **out)
{
	struct sq *q = sq_of(s);
	struct sq_conn c = sq_acquire_read(q);
	struct sq_res r;
	struct policy *p = NULL;

	/* One snapshot for the three reads: never half of a change. */
	int rc = sq_exec(&c, NULL,
			 q->pg ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN", "");
	if (rc == STORE_OK)
		rc = sq_step(&c, &r,
			     "SELECT sender_auth_enabled FROM settings WHERE account_id = ?", "i",
			     account_id);
	if (rc == STORE_OK) {
		p = policy_new(sq_int(&r, 0) != 0);
		sq_done(&r);
		rc = sq_each(
			&c, read_policy_sender, p, sq_row_done, NULL,
			"SELECT address, status = 'verified' FROM senders WHERE account_id = ?",
			"i", account_id);
	}
	if (rc == STORE_OK)
		rc = sq_each(
			&c, read_policy_domain, p, sq_row_done, NULL,
			"SELECT name, status, active FROM sending_domains WHERE account_id = ?",
			"i", account_id);
	sq_exec(&c, NULL, rc == STORE_OK ? "COMMIT" : "ROLLBACK", "");
	sq_release(&c);
	if (rc != STORE_OK) {
		policy_free(p);
		return rc;
	}
	*out = p;
	return STORE_OK;
}

int sq_policy_stamp(struct store *s, uint64_t *stamp)
{
	struct sq *q = sq_of(s);
	uint64_t theirs;
	/* The driver's stamp moves when another process or node commits a change; ours when
	 * this process writes one. Both only grow, so the sum moves when either does and no
	 * bit of either is lost. */
	if (q->db->drv->stamp(q->db, &theirs) != STORE_OK)
		return STORE_FAIL;
	*stamp = theirs + atomic_load(&q->policy_writes);
	return STORE_OK;
}

int sq_drops_add(struct store *s, const struct store_drop *d, size_t n)
{
	struct sq_conn c = sq_acquire(sq_of(s));
	int rc = sq_begin(&c);
	/* The stored count is named by its table: on PostgreSQL a bare one is ambiguous. */
	for (size_t i = 0; i < n && rc == STORE_OK; i++)
		rc = sq_exec(
			&c, NULL,
			"INSERT INTO drops (account_id, api_key_id, from_addr, reason, minute, "
			"count) VALUES (?, ?, ?, ?, ?, ?) "
			"ON CONFLICT (account_id, api_key_id, from_addr, reason, minute) "
			"DO UPDATE SET count = drops.count + excluded.count",
			"iissii", d[i].account_id, d[i].api_key_id, d[i].from, d[i].reason,
			d[i].minute, d[i].count);
	rc = sq_end(&c, rc);
	sq_release(&c);
	return rc;
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

int sq_drops_list(struct store *s, int64_t account_id, int limit, store_drop_fn fn, void *arg)
{
	struct store_drop row;
	return sq_list(sq_of(s), read_drop, &row, (sq_row_fn)fn, arg,
		       "SELECT account_id, api_key_id, from_addr, reason, minute, count "
		       "FROM drops WHERE account_id = ? ORDER BY minute DESC, id DESC LIMIT ?",
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

int sq_stats(struct store *s, int64_t account_id, int64_t *accepted, store_count_fn fn, void *arg)
{
	struct sq_conn c = sq_acquire(sq_of(s));
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

int sq_messages_add(struct store *s, const struct store_message *m, size_t n)
{
	struct sq_conn c = sq_acquire(sq_of(s));
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_pipeline(&c, true);
	for (size_t i = 0; i < n && rc == STORE_OK; i++)
		rc = sq_exec(
			&c, NULL,
			"INSERT INTO messages (uid, account_id, api_key_id, system, from_addr, "
			"status, next_attempt_at, recipients, payload, created_at, updated_at) "
			"VALUES (?, ?, NULLIF(?, 0), ?, ?, 'queued', ?, ?, ?, ?, ?)",
			"siidsidsii", m[i].uid, m[i].account_id, m[i].api_key_id,
			m[i].system ? 1 : 0, m[i].from, m[i].now, m[i].recipients, m[i].payload,
			m[i].now, m[i].now);
	int sent = sq_pipeline(&c, false);
	if (rc == STORE_OK)
		rc = sent;
	/* The commit is the fsync that makes every message of the batch durable at once. */
	rc = sq_end(&c, rc);
	sq_release(&c);
	return rc;
}

int sq_messages_recover(struct store *s)
{
	struct sq *q = sq_of(s);
	/* One daemon owns a SQLite database, so anything "sending" was cut off by a stop. On
	 * PostgreSQL other nodes may be delivering the rest: only a lapsed lease is theirs no
	 * longer. */
	if (!q->pg)
		return sq_write(q, NULL,
				"UPDATE messages SET status = 'queued', lease_until = NULL "
				"WHERE status = 'sending'",
				"");
	return sq_write(q, NULL,
			"UPDATE messages SET status = 'queued', lease_until = NULL "
			"WHERE status = 'sending' AND lease_until < ?",
			"i", util_now());
}

/* The next due messages: queued or deferred and their time come, or left "sending" by a
 * deliverer whose lease ran out. On PostgreSQL the rows are locked, and rows other nodes
 * are claiming that moment are skipped, so two nodes never take the same message. */
#define CLAIM_SQL(lock)                                                                            \
	"UPDATE messages SET status = 'sending', lease_until = ?, "                                \
	"  attempts = attempts + 1, updated_at = ? "                                               \
	"WHERE id IN (SELECT id FROM messages WHERE "                                              \
	"  ((status IN ('queued','deferred') AND next_attempt_at <= ?) OR "                        \
	"   (status = 'sending' AND lease_until < ?)) "                                            \
	"  ORDER BY next_attempt_at, id LIMIT ?" lock ") "                                         \
	"RETURNING id, uid, account_id, COALESCE(api_key_id, 0), system, from_addr, "              \
	"  payload, attempts, parts_done, created_at"

static const char *const claim_sqlite = CLAIM_SQL("");
static const char *const claim_pg = CLAIM_SQL(" FOR UPDATE SKIP LOCKED");

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
}

int sq_messages_claim(struct store *s, int64_t now, int64_t lease_until, struct store_queued *out,
		      size_t max, size_t *n)
{
	struct sq *q = sq_of(s);
	struct sq_conn c = sq_acquire(q);
	struct sq_res r;
	*n = 0;
	int rc = sq_step(&c, &r, q->pg ? claim_pg : claim_sqlite, "iiiid", lease_until, now, now,
			 now, (int)max);
	if (rc == STORE_OK) {
		/* LIMIT keeps the rows to max; the claim is made once the statement has run
		 * to its end. */
		do
			read_queued(&r, &out[(*n)++]);
		while (*n < max && (rc = sq_next(&r)) == STORE_OK);
		rc = rc == STORE_FAIL ? (sq_done(&r), STORE_FAIL) : sq_finish(&r);
	}
	if (rc != STORE_OK && rc != STORE_NOT_FOUND) {
		for (size_t i = 0; i < *n; i++)
			free(out[i].payload);
		*n = 0;
	}
	sq_release(&c);
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

int sq_message_progress(struct store *s, int64_t id, int parts_done)
{
	return sq_write(sq_of(s), NULL, "UPDATE messages SET parts_done = ? WHERE id = ?", "di",
			parts_done, id);
}

int sq_messages_finish(struct store *s, const struct store_finish *f, size_t n)
{
	struct sq_conn c = sq_acquire(sq_of(s));
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_pipeline(&c, true);
	for (size_t i = 0; i < n && rc == STORE_OK; i++) {
		const struct store_outcome *o = f[i].outcome;
		rc = sq_exec(
			&c, NULL,
			"UPDATE messages SET status = ?, "
			"  next_attempt_at = CASE WHEN ? > 0 THEN ? ELSE next_attempt_at END, "
			"  reason = ?, last_reply = ?, rejected = ?, lease_until = NULL, "
			"  updated_at = ?, "
			/* Postern's own mail carries a Verify All link: keep it no longer than
			 * needed once the message is done. */
			"  payload = CASE WHEN system = 1 AND ? IN ('sent','failed','dropped') "
			"    THEN '' ELSE payload END "
			"WHERE id = ?",
			"siisssisi", o->status, o->next_attempt_at, o->next_attempt_at, o->reason,
			o->last_reply, o->rejected, o->now, o->status, f[i].id);
	}
	int sent = sq_pipeline(&c, false);
	if (rc == STORE_OK)
		rc = sent;
	rc = sq_end(&c, rc);
	sq_release(&c);
	return rc;
}

#define MESSAGE_COLUMNS                                                                            \
	"uid, from_addr, CASE status WHEN 'sending' THEN 'queued' ELSE status END, system, "       \
	"attempts, recipients, created_at, updated_at, next_attempt_at, reason, last_reply, "      \
	"rejected"

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
}

int sq_messages_list(struct store *s, int64_t account_id, const char *status, int limit,
		     store_message_fn fn, void *arg)
{
	struct store_message_info row;
	/* "sending" is a moment inside delivery; to users the message is still queued. */
	return sq_list(sq_of(s), read_message, &row, (sq_row_fn)fn, arg,
		       "SELECT " MESSAGE_COLUMNS " FROM messages WHERE account_id = ? AND "
		       "(? IS NULL OR status = ? OR (? = 'queued' AND status = 'sending')) "
		       "ORDER BY id DESC LIMIT ?",
		       "isssd", account_id, status, status, status, limit);
}

int sq_message_get(struct store *s, int64_t account_id, const char *uid,
		   struct store_message_info *out)
{
	return sq_get(sq_of(s), read_message, out,
		      "SELECT " MESSAGE_COLUMNS " FROM messages WHERE account_id = ? AND uid = ?",
		      "is", account_id, uid);
}

/* A sender of a batch, for the caller's store_batch_fn. */
struct batch_row {
	store_batch_fn fn;
	void *arg;
	char address[ADDR_MAX];
	enum store_batch_state state;
};

static void read_pending(const struct sq_res *r, void *row)
{
	struct batch_row *b = row;
	sq_col_text(r, 0, b->address, sizeof(b->address));
	b->state = BATCH_PENDING;
}

/* A sender of a batch in its current state: removed since, verified already, or pending. */
static void read_batch_sender(const struct sq_res *r, void *row)
{
	struct batch_row *b = row;
	const char *status = sq_text(r, 1);
	sq_col_text(r, 0, b->address, sizeof(b->address));
	b->state = !status			     ? BATCH_REMOVED
		   : strcmp(status, "verified") == 0 ? BATCH_ALREADY
						     : BATCH_PENDING;
}

static int call_batch(void *arg, const void *row)
{
	const struct batch_row *b = row;
	(void)arg;
	return b->fn(b->arg, b->address, b->state);
}

int sq_batch_pending(struct store *s, int64_t account_id, int64_t user_id, int64_t now,
		     struct store_batch_new *b, store_batch_fn fn, void *arg)
{
	struct sq_conn c = sq_acquire(sq_of(s));
	int64_t batch = 0;
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = batch_gap(&c, account_id, now, b);
	if (rc == STORE_OK && b->wait)
		rc = STORE_TOO_SOON;
	if (rc == STORE_OK)
		rc = sq_exec(&c, &batch,
			     "INSERT INTO verification_tokens (account_id, token_hash, created_by, "
			     "created_at, expires_at) VALUES (?, ?, NULLIF(?, 0), ?, ?) "
			     "RETURNING id",
			     "isiii", account_id, b->token_hash, user_id, now, b->expires_at);
	if (rc == STORE_OK)
		rc = sq_exec(
			&c, NULL,
			"INSERT INTO verification_token_senders (token_id, sender_id, address) "
			"SELECT ?, id, address FROM senders WHERE account_id = ? AND "
			"status = 'pending'",
			"ii", batch, account_id);
	if (rc == STORE_OK && sq_changes(&c) == 0)
		rc = STORE_NOT_FOUND;
	struct batch_row row = {.fn = fn, .arg = arg};
	if (rc == STORE_OK)
		rc = sq_each(&c, read_pending, &row, call_batch, NULL,
			     "SELECT address FROM verification_token_senders WHERE token_id = ? "
			     "ORDER BY address",
			     "i", batch);
	rc = sq_end(&c, rc);
	sq_release(&c);
	return rc;
}

static void read_batch(const struct sq_res *r, void *row)
{
	struct store_batch *b = row;
	b->id = sq_int(r, 0);
	b->account_id = sq_int(r, 1);
	sq_col_text(r, 2, b->account_name, sizeof(b->account_name));
	b->created_at = sq_int(r, 3);
	b->expires_at = sq_int(r, 4);
	b->used_at = sq_int(r, 5);
}

/* Reads a batch and calls fn with each of its senders' current state. */
static int batch_read(struct sq_conn *c, const char *token_hash, struct store_batch *out,
		      store_batch_fn fn, void *arg)
{
	struct sq_res r;
	int rc = sq_step(c, &r,
			 "SELECT t.id, t.account_id, a.name, t.created_at, t.expires_at, "
			 "  COALESCE(t.used_at, 0) FROM verification_tokens t "
			 "JOIN accounts a ON a.id = t.account_id WHERE t.token_hash = ?",
			 "s", token_hash);
	if (rc != STORE_OK)
		return rc;
	read_batch(&r, out);
	sq_done(&r);
	if (!fn)
		return STORE_OK;
	struct batch_row row = {.fn = fn, .arg = arg};
	return sq_each(c, read_batch_sender, &row, call_batch, NULL,
		       "SELECT l.address, s.status FROM verification_token_senders l "
		       "LEFT JOIN senders s ON s.id = l.sender_id WHERE l.token_id = ? "
		       "ORDER BY l.address",
		       "i", out->id);
}

int sq_batch_get(struct store *s, const char *token_hash, struct store_batch *out,
		 store_batch_fn fn, void *arg)
{
	struct sq_conn c = sq_acquire(sq_of(s));
	int rc = batch_read(&c, token_hash, out, fn, arg);
	sq_release(&c);
	return rc;
}

struct batch_use {
	store_batch_fn fn;
	void *arg;
	struct sq_conn *c;
	int64_t now;
	int64_t account_id;
	int rc;
};

/* Verifies one sender of a batch being used, and tells the caller what happened. */
static int use_one(void *arg, const char *address, enum store_batch_state state)
{
	struct batch_use *u = arg;
	if (state == BATCH_PENDING && u->rc == STORE_OK) {
		u->rc = sq_exec(u->c, NULL,
				"UPDATE senders SET status = 'verified', verified_at = ?, "
				"  verified_via = 'link', verified_by = NULL "
				"WHERE account_id = ? AND address = ? AND status = 'pending'",
				"iis", u->now, u->account_id, address);
		state = BATCH_VERIFIED_NOW;
	}
	return u->fn(u->arg, address, state);
}

int sq_batch_use(struct store *s, const char *token_hash, int64_t now, struct store_batch *out,
		 store_batch_fn fn, void *arg)
{
	struct sq_conn c = sq_acquire(sq_of(s));
	struct batch_use u = {fn, arg, &c, now, 0, STORE_OK};
	/* The token's row is locked on PostgreSQL, so two clicks on two nodes use it once. */
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_lock(&c,
			     "SELECT id FROM verification_tokens WHERE token_hash = ? "
			     "FOR NO KEY UPDATE",
			     "s", token_hash);
	if (rc == STORE_OK)
		rc = batch_read(&c, token_hash, out, NULL, NULL);
	bool usable = rc == STORE_OK && !out->used_at && out->expires_at > now;
	if (usable) {
		u.account_id = out->account_id;
		rc = batch_read(&c, token_hash, out, use_one, &u);
		if (rc == STORE_OK)
			rc = u.rc;
		if (rc == STORE_OK)
			rc = sq_exec(&c, NULL,
				     "UPDATE verification_tokens SET used_at = ? WHERE id = ?",
				     "ii", now, out->id);
	}
	if (usable) {
		rc = sq_end(&c, rc);
		if (rc == STORE_OK)
			sq_policy_changed(c.q);
	} else {
		sq_end(&c, STORE_NOT_FOUND); /* nothing to keep */
	}
	sq_release(&c);
	return rc;
}
