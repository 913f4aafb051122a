/* The SQLite backend's mail side: the sender-auth switch, senders and their verification
 * batches, sending domains, policy snapshots, the message queue, drops and stats. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_sqlite.h"
#include "util.h"

int sq_sender_auth_get(struct store *s, int64_t account_id, struct store_sender_auth *out)
{
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->lock);
	int rc = sq_step(q, &st,
			 "SELECT sender_auth_enabled,"
			 "  (SELECT COUNT(*) FROM senders WHERE account_id = ? AND status = "
			 "'verified'),"
			 "  (SELECT COUNT(*) FROM senders WHERE account_id = ? AND status = "
			 "'pending') "
			 "FROM settings WHERE account_id = ?",
			 "iii", account_id, account_id, account_id);
	if (rc == STORE_OK) {
		out->enabled = sqlite3_column_int(st, 0) != 0;
		out->verified = sqlite3_column_int(st, 1);
		out->pending = sqlite3_column_int(st, 2);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int sq_sender_auth_set(struct store *s, int64_t account_id, bool enabled, int64_t user_id,
		       int64_t now)
{
	return sq_update(sq_of(s), true,
			 "UPDATE settings SET sender_auth_enabled = ?, updated_at = ?, "
			 "updated_by = ? WHERE account_id = ?",
			 "diii", enabled ? 1 : 0, now, user_id, account_id);
}

int sq_senders_add(struct store *s, int64_t account_id, int64_t user_id, int64_t now,
		   const char *const *addresses, size_t n, const char *token_hash,
		   int64_t expires_at, int64_t *ids)
{
	struct sq *q = sq_of(s);
	int64_t batch = 0;
	size_t added = 0;

	pthread_mutex_lock(&q->lock);
	int rc = sq_begin(q);
	for (size_t i = 0; i < n && rc == STORE_OK; i++) {
		ids[i] = 0;
		rc = sq_exec(
			q, &ids[i],
			"INSERT INTO senders (account_id, address, domain, added_by, added_at) "
			"VALUES (?, ?, ?, ?, ?)",
			"issii", account_id, addresses[i], addr_domain(addresses[i]), user_id, now);
		if (rc == STORE_CONFLICT) {
			ids[i] = 0;
			rc = STORE_OK;
		} else if (rc == STORE_OK) {
			added++;
		}
	}
	if (rc == STORE_OK && added)
		rc = sq_exec(q, &batch,
			     "INSERT INTO verification_tokens (account_id, token_hash, created_by, "
			     "created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
			     "isiii", account_id, token_hash, user_id, now, expires_at);
	for (size_t i = 0; i < n && rc == STORE_OK && added; i++)
		if (ids[i])
			rc = sq_exec(q, NULL,
				     "INSERT INTO verification_token_senders (token_id, sender_id, "
				     "address) VALUES (?, ?, ?)",
				     "iis", batch, ids[i], addresses[i]);
	rc = sq_end(q, rc);
	if (rc == STORE_OK && added)
		q->policy_writes++;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

#define SENDER_SELECT                                                                              \
	"SELECT s.id, s.address, s.status, s.domain, d.status, d.active, ua.email, s.added_at, "   \
	"  uv.email, s.verified_at, s.verified_via "                                               \
	"FROM senders s "                                                                          \
	"LEFT JOIN sending_domains d ON d.account_id = s.account_id AND d.name = s.domain "        \
	"LEFT JOIN users ua ON ua.id = s.added_by "                                                \
	"LEFT JOIN users uv ON uv.id = s.verified_by "

static void read_sender(sqlite3_stmt *st, void *row)
{
	struct store_sender *x = row;
	char status[16];
	x->id = sqlite3_column_int64(st, 0);
	sq_col_text(st, 1, x->address, sizeof(x->address));
	sq_col_text(st, 2, status, sizeof(status));
	x->verified = strcmp(status, "verified") == 0;
	sq_col_text(st, 3, x->domain, sizeof(x->domain));
	sq_col_text(st, 4, x->domain_status, sizeof(x->domain_status));
	x->domain_active = sqlite3_column_int(st, 5) != 0;
	sq_col_text(st, 6, x->added_by, sizeof(x->added_by));
	x->added_at = sqlite3_column_int64(st, 7);
	sq_col_text(st, 8, x->verified_by, sizeof(x->verified_by));
	x->verified_at = sqlite3_column_int64(st, 9);
	sq_col_text(st, 10, x->verified_via, sizeof(x->verified_via));
}

int sq_senders_list(struct store *s, int64_t account_id, store_sender_fn fn, void *arg)
{
	struct sq *q = sq_of(s);
	struct store_sender row;
	pthread_mutex_lock(&q->lock);
	int rc =
		sq_each(q, read_sender, &row, (int (*)(void *, const void *))fn, arg,
			SENDER_SELECT "WHERE s.account_id = ? ORDER BY s.address", "i", account_id);
	pthread_mutex_unlock(&q->lock);
	return rc;
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

static void read_policy_sender(sqlite3_stmt *st, void *policy)
{
	policy_add_sender(policy, (const char *)sqlite3_column_text(st, 0),
			  sqlite3_column_int(st, 1) != 0);
}

static void read_policy_domain(sqlite3_stmt *st, void *policy)
{
	const char *status = (const char *)sqlite3_column_text(st, 1);
	enum policy_domain_status ds = strcmp(status, "verified") == 0 ? POLICY_DOMAIN_VERIFIED
				       : strcmp(status, "failed") == 0 ? POLICY_DOMAIN_FAILED
								       : POLICY_DOMAIN_PENDING;
	policy_add_domain(policy, (const char *)sqlite3_column_text(st, 0), ds,
			  sqlite3_column_int(st, 2) != 0);
}

int sq_policy_load(struct store *s, int64_t account_id, struct policy **out)
{
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	struct policy *p = NULL;

	pthread_mutex_lock(&q->lock);
	int rc = sq_step(q, &st, "SELECT sender_auth_enabled FROM settings WHERE account_id = ?",
			 "i", account_id);
	if (rc == STORE_OK) {
		p = policy_new(sqlite3_column_int(st, 0) != 0);
		sqlite3_finalize(st);
		rc = sq_each(
			q, read_policy_sender, p, sq_row_done, NULL,
			"SELECT address, status = 'verified' FROM senders WHERE account_id = ?",
			"i", account_id);
	}
	if (rc == STORE_OK)
		rc = sq_each(
			q, read_policy_domain, p, sq_row_done, NULL,
			"SELECT name, status, active FROM sending_domains WHERE account_id = ?",
			"i", account_id);
	pthread_mutex_unlock(&q->lock);
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
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->lock);
	/* data_version moves when another connection (the CLI, another process) commits. */
	int rc = sq_step(q, &st, "PRAGMA data_version", "");
	if (rc == STORE_OK) {
		*stamp = ((uint64_t)sqlite3_column_int64(st, 0) << 32) ^ q->policy_writes;
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&q->lock);
	return rc == STORE_OK ? STORE_OK : STORE_FAIL;
}

int sq_drops_add(struct store *s, const struct store_drop *d, size_t n)
{
	struct sq *q = sq_of(s);
	pthread_mutex_lock(&q->lock);
	int rc = sq_begin(q);
	for (size_t i = 0; i < n && rc == STORE_OK; i++)
		rc = sq_exec(
			q, NULL,
			"INSERT INTO drops (account_id, api_key_id, from_addr, reason, minute, "
			"count) VALUES (?, ?, ?, ?, ?, ?) "
			"ON CONFLICT (account_id, api_key_id, from_addr, reason, minute) "
			"DO UPDATE SET count = count + excluded.count",
			"iissii", d[i].account_id, d[i].api_key_id, d[i].from, d[i].reason,
			d[i].minute, d[i].count);
	rc = sq_end(q, rc);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static void read_drop(sqlite3_stmt *st, void *row)
{
	struct store_drop *d = row;
	d->account_id = sqlite3_column_int64(st, 0);
	d->api_key_id = sqlite3_column_int64(st, 1);
	sq_col_text(st, 2, d->from, sizeof(d->from));
	sq_col_text(st, 3, d->reason, sizeof(d->reason));
	d->minute = sqlite3_column_int64(st, 4);
	d->count = sqlite3_column_int64(st, 5);
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

static void read_reason(sqlite3_stmt *st, void *row)
{
	struct reason_row *r = row;
	sq_col_text(st, 0, r->reason, sizeof(r->reason));
	r->count = sqlite3_column_int64(st, 1);
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
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	struct reason_row row;
	struct reason_fn rf = {fn, arg};
	pthread_mutex_lock(&q->lock);
	int rc = sq_step(q, &st, "SELECT COUNT(*) FROM messages WHERE account_id = ?", "i",
			 account_id);
	if (rc == STORE_OK) {
		*accepted = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		rc = sq_each(q, read_reason, &row, call_reason, &rf,
			     "SELECT reason, SUM(count) FROM drops WHERE account_id = ? "
			     "GROUP BY reason ORDER BY reason",
			     "i", account_id);
	}
	pthread_mutex_unlock(&q->lock);
	return rc == STORE_NOT_FOUND ? STORE_FAIL : rc;
}

int sq_messages_add(struct store *s, const struct store_message *m, size_t n)
{
	struct sq *q = sq_of(s);
	pthread_mutex_lock(&q->lock);
	int rc = sq_begin(q);
	for (size_t i = 0; i < n && rc == STORE_OK; i++)
		rc = sq_exec(
			q, NULL,
			"INSERT INTO messages (uid, account_id, api_key_id, system, from_addr, "
			"status, next_attempt_at, recipients, payload, created_at, updated_at) "
			"VALUES (?, ?, NULLIF(?, 0), ?, ?, 'queued', ?, ?, ?, ?, ?)",
			"siidsidsii", m[i].uid, m[i].account_id, m[i].api_key_id,
			m[i].system ? 1 : 0, m[i].from, m[i].now, m[i].recipients, m[i].payload,
			m[i].now, m[i].now);
	/* The commit is the fsync that makes every message of the batch durable at once. */
	rc = sq_end(q, rc);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int sq_messages_recover(struct store *s)
{
	/* One daemon owns a SQLite database, so anything "sending" was cut off by a stop. */
	return sq_write(sq_of(s), NULL,
			"UPDATE messages SET status = 'queued', lease_until = NULL "
			"WHERE status = 'sending'",
			"");
}

int sq_message_claim(struct store *s, int64_t now, int64_t lease_until, struct store_queued *out)
{
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->lock);
	int rc = sq_step(
		q, &st,
		"UPDATE messages SET status = 'sending', lease_until = ?, "
		"  attempts = attempts + 1, updated_at = ? "
		"WHERE id = (SELECT id FROM messages WHERE status IN ('queued','deferred') "
		"  AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT 1) "
		"RETURNING id, uid, account_id, COALESCE(api_key_id, 0), system, from_addr, "
		"  payload, attempts, parts_done, created_at",
		"iii", lease_until, now, now);
	if (rc == STORE_OK) {
		out->id = sqlite3_column_int64(st, 0);
		sq_col_text(st, 1, out->uid, sizeof(out->uid));
		out->account_id = sqlite3_column_int64(st, 2);
		out->api_key_id = sqlite3_column_int64(st, 3);
		out->system = sqlite3_column_int(st, 4) != 0;
		sq_col_text(st, 5, out->from, sizeof(out->from));
		out->payload = xstrdup((const char *)sqlite3_column_text(st, 6));
		out->attempts = sqlite3_column_int(st, 7);
		out->parts_done = sqlite3_column_int(st, 8);
		out->created_at = sqlite3_column_int64(st, 9);
		/* RETURNING rows are final only once the statement has run to its end. */
		rc = sqlite3_step(st) == SQLITE_DONE ? STORE_OK : sq_fail(q, "claim");
		sqlite3_finalize(st);
		if (rc != STORE_OK)
			free(out->payload);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int sq_message_progress(struct store *s, int64_t id, int parts_done)
{
	return sq_write(sq_of(s), NULL, "UPDATE messages SET parts_done = ? WHERE id = ?", "di",
			parts_done, id);
}

int sq_message_finish(struct store *s, int64_t id, const struct store_outcome *o)
{
	return sq_write(sq_of(s), NULL,
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
			o->last_reply, o->rejected, o->now, o->status, id);
}

#define MESSAGE_COLUMNS                                                                            \
	"uid, from_addr, CASE status WHEN 'sending' THEN 'queued' ELSE status END, system, "       \
	"attempts, recipients, created_at, updated_at, next_attempt_at, reason, last_reply, "      \
	"rejected"

static void read_message(sqlite3_stmt *st, void *row)
{
	struct store_message_info *m = row;
	sq_col_text(st, 0, m->uid, sizeof(m->uid));
	sq_col_text(st, 1, m->from, sizeof(m->from));
	sq_col_text(st, 2, m->status, sizeof(m->status));
	m->system = sqlite3_column_int(st, 3) != 0;
	m->attempts = sqlite3_column_int(st, 4);
	m->recipients = sqlite3_column_int(st, 5);
	m->created_at = sqlite3_column_int64(st, 6);
	m->updated_at = sqlite3_column_int64(st, 7);
	m->next_attempt_at = sqlite3_column_int64(st, 8);
	sq_col_text(st, 9, m->reason, sizeof(m->reason));
	sq_col_text(st, 10, m->last_reply, sizeof(m->last_reply));
	sq_col_text(st, 11, m->rejected, sizeof(m->rejected));
}

int sq_messages_list(struct store *s, int64_t account_id, const char *status, int limit,
		     store_message_fn fn, void *arg)
{
	struct sq *q = sq_of(s);
	struct store_message_info row;
	pthread_mutex_lock(&q->lock);
	/* "sending" is a moment inside delivery; to users the message is still queued. */
	int rc = sq_each(q, read_message, &row, (int (*)(void *, const void *))fn, arg,
			 "SELECT " MESSAGE_COLUMNS " FROM messages WHERE account_id = ? AND "
			 "(? IS NULL OR status = ? OR (? = 'queued' AND status = 'sending')) "
			 "ORDER BY id DESC LIMIT ?",
			 "isssd", account_id, status, status, status, limit);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int sq_message_get(struct store *s, int64_t account_id, const char *uid,
		   struct store_message_info *out)
{
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->lock);
	int rc = sq_step(
		q, &st, "SELECT " MESSAGE_COLUMNS " FROM messages WHERE account_id = ? AND uid = ?",
		"is", account_id, uid);
	if (rc == STORE_OK) {
		read_message(st, out);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

struct pending_row {
	store_batch_fn fn;
	void *arg;
	char address[ADDR_MAX];
};

static void read_pending(sqlite3_stmt *st, void *row)
{
	struct pending_row *p = row;
	sq_col_text(st, 0, p->address, sizeof(p->address));
}

static int call_pending(void *arg, const void *row)
{
	const struct pending_row *p = row;
	(void)arg;
	return p->fn(p->arg, p->address, BATCH_PENDING);
}

int sq_batch_pending(struct store *s, int64_t account_id, int64_t user_id, int64_t now,
		     const char *token_hash, int64_t expires_at, store_batch_fn fn, void *arg)
{
	struct sq *q = sq_of(s);
	int64_t batch = 0;
	pthread_mutex_lock(&q->lock);
	int rc = sq_begin(q);
	if (rc == STORE_OK)
		rc = sq_exec(q, &batch,
			     "INSERT INTO verification_tokens (account_id, token_hash, created_by, "
			     "created_at, expires_at) VALUES (?, ?, NULLIF(?, 0), ?, ?)",
			     "isiii", account_id, token_hash, user_id, now, expires_at);
	if (rc == STORE_OK)
		rc = sq_exec(
			q, NULL,
			"INSERT INTO verification_token_senders (token_id, sender_id, address) "
			"SELECT ?, id, address FROM senders WHERE account_id = ? AND "
			"status = 'pending'",
			"ii", batch, account_id);
	if (rc == STORE_OK && sqlite3_changes(q->db) == 0)
		rc = STORE_NOT_FOUND;
	struct pending_row row = {.fn = fn, .arg = arg};
	if (rc == STORE_OK)
		rc = sq_each(q, read_pending, &row, call_pending, NULL,
			     "SELECT address FROM verification_token_senders WHERE token_id = ? "
			     "ORDER BY address",
			     "i", batch);
	rc = sq_end(q, rc);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* Reads a batch and calls fn with each of its senders' current state; lock held. */
static int batch_read(struct sq *q, const char *token_hash, struct store_batch *out,
		      store_batch_fn fn, void *arg)
{
	sqlite3_stmt *st;
	int rc = sq_step(q, &st,
			 "SELECT t.id, t.account_id, a.name, t.created_at, t.expires_at, "
			 "  COALESCE(t.used_at, 0) FROM verification_tokens t "
			 "JOIN accounts a ON a.id = t.account_id WHERE t.token_hash = ?",
			 "s", token_hash);
	if (rc != STORE_OK)
		return rc;
	out->id = sqlite3_column_int64(st, 0);
	out->account_id = sqlite3_column_int64(st, 1);
	sq_col_text(st, 2, out->account_name, sizeof(out->account_name));
	out->created_at = sqlite3_column_int64(st, 3);
	out->expires_at = sqlite3_column_int64(st, 4);
	out->used_at = sqlite3_column_int64(st, 5);
	sqlite3_finalize(st);
	if (!fn)
		return STORE_OK;
	rc = sq_step(q, &st,
		     "SELECT l.address, s.status FROM verification_token_senders l "
		     "LEFT JOIN senders s ON s.id = l.sender_id WHERE l.token_id = ? "
		     "ORDER BY l.address",
		     "i", out->id);
	while (rc == STORE_OK) {
		const unsigned char *status = sqlite3_column_text(st, 1);
		enum store_batch_state state = !status ? BATCH_REMOVED
					       : strcmp((const char *)status, "verified") == 0
						       ? BATCH_ALREADY
						       : BATCH_PENDING;
		fn(arg, (const char *)sqlite3_column_text(st, 0), state);
		int step = sqlite3_step(st);
		rc = step == SQLITE_ROW	   ? STORE_OK
		     : step == SQLITE_DONE ? STORE_NOT_FOUND
					   : sq_fail(q, "batch");
	}
	if (st)
		sqlite3_finalize(st);
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

int sq_batch_get(struct store *s, const char *token_hash, struct store_batch *out,
		 store_batch_fn fn, void *arg)
{
	struct sq *q = sq_of(s);
	pthread_mutex_lock(&q->lock);
	int rc = batch_read(q, token_hash, out, fn, arg);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

struct batch_use {
	store_batch_fn fn;
	void *arg;
	struct sq *q;
	int64_t now;
	int64_t account_id;
	int rc;
};

/* Verifies one sender of a batch being used, and tells the caller what happened. */
static int use_one(void *arg, const char *address, enum store_batch_state state)
{
	struct batch_use *u = arg;
	if (state == BATCH_PENDING && u->rc == STORE_OK) {
		u->rc = sq_exec(u->q, NULL,
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
	struct sq *q = sq_of(s);
	struct batch_use u = {fn, arg, q, now, 0, STORE_OK};
	pthread_mutex_lock(&q->lock);
	int rc = sq_begin(q);
	if (rc == STORE_OK)
		rc = batch_read(q, token_hash, out, NULL, NULL);
	bool usable = rc == STORE_OK && !out->used_at && out->expires_at > now;
	if (usable) {
		u.account_id = out->account_id;
		rc = batch_read(q, token_hash, out, use_one, &u);
		if (rc == STORE_OK)
			rc = u.rc;
		if (rc == STORE_OK)
			rc = sq_exec(q, NULL,
				     "UPDATE verification_tokens SET used_at = ? WHERE id = ?",
				     "ii", now, out->id);
	}
	if (usable) {
		rc = sq_end(q, rc);
		if (rc == STORE_OK)
			q->policy_writes++;
	} else {
		sq_end(q, STORE_NOT_FOUND); /* nothing to keep */
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}
