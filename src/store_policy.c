/* The store's policy data: the sender-auth switch, senders and their verification batches,
 * the policy snapshots built from them and the stamp that tells when those are stale. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_int.h"
#include "util.h"

static void read_sender_auth(const struct sq_res *r, void *row)
{
	struct store_sender_auth *a = row;
	a->enabled = sq_int(r, 0) != 0;
	a->verified = (int)sq_int(r, 1);
	a->pending = (int)sq_int(r, 2);
	a->monitor = sq_int(r, 3) != 0;
}

int store_sender_auth_get(struct store *s, int64_t account_id, struct store_sender_auth *out)
{
	return sq_get(s, read_sender_auth, out,
		      "SELECT sender_auth_enabled,"
		      "  (SELECT COUNT(*) FROM senders WHERE account_id = ? AND status = "
		      "'verified'),"
		      "  (SELECT COUNT(*) FROM senders WHERE account_id = ? AND status = "
		      "'pending'), sender_auth_monitor "
		      "FROM settings WHERE account_id = ?",
		      "iii", account_id, account_id, account_id);
}

int store_sender_auth_set(struct store *s, int64_t account_id, enum policy_mode mode,
			  int64_t user_id, int64_t now)
{
	struct sq_conn c = sq_acquire(s);
	int64_t changed = 0;
	int on = mode == POLICY_MODE_ON, monitor = mode == POLICY_MODE_MONITOR;
	/* The switch is set either way (its time and setter with it); only a change of it is an
	 * event. Switching on clears monitor, so off after on is off, not monitor. */
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_exec(
			&c, &changed,
			"UPDATE settings SET sender_auth_enabled = ?, sender_auth_monitor = ?, "
			"updated_at = ?, updated_by = ? WHERE account_id = ? AND "
			"(sender_auth_enabled <> ? OR sender_auth_monitor <> ?) "
			"RETURNING account_id",
			"ddiiidd", on, monitor, now, user_id, account_id, on, monitor);
	if (rc == STORE_OK) {
		cJSON *data = cJSON_CreateObject();
		cJSON_AddBoolToObject(data, "enabled", on);
		cJSON_AddStringToObject(data, "mode", policy_mode_name(mode));
		rc = sq_event_obj(&c, account_id, "sender_auth.changed", data, now);
	} else if (rc == STORE_NOT_FOUND) {
		rc = sq_exec(&c, NULL,
			     "UPDATE settings SET updated_at = ?, updated_by = ? "
			     "WHERE account_id = ?",
			     "iii", now, user_id, account_id);
		if (rc == STORE_OK && sq_changes(&c) == 0)
			rc = STORE_NOT_FOUND;
	}
	rc = sq_end(&c, rc);
	if (rc == STORE_OK)
		sq_policy_changed(s);
	sq_release(&c);
	return rc;
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

int store_senders_add(struct store *s, int64_t account_id, int64_t user_id, int64_t now,
		      const char *const *addresses, size_t n, struct store_batch_new *b,
		      int64_t *ids)
{
	struct sq_conn c = sq_acquire(s);
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
			"VALUES (?, ?, ?, NULLIF(?, 0), ?) ON CONFLICT (account_id, address) DO "
			"NOTHING "
			"RETURNING id",
			"issii", account_id, addresses[i], addr_domain(addresses[i]), user_id, now);
		if (rc == STORE_NOT_FOUND) {
			ids[i] = 0;
			rc = STORE_OK;
		} else if (rc == STORE_OK) {
			added++;
			rc = sq_event_str(&c, account_id, "sender.added", now, "email",
					  addresses[i], NULL, NULL);
		}
	}
	/* The senders are added whatever the rate; only their email may have to wait. Without
	 * a token (owner confirmation alone) the Admins get no batch. */
	b->wait = 0;
	if (rc == STORE_OK && added && b->token_hash)
		rc = batch_gap(&c, account_id, now, b);
	bool mail = added && b->token_hash && !b->wait;
	if (rc == STORE_OK && mail)
		rc = sq_exec(
			&c, &batch,
			"INSERT INTO verification_tokens (account_id, token_hash, created_by, "
			"created_at, expires_at) VALUES (?, ?, NULLIF(?, 0), ?, ?) RETURNING id",
			"isiii", account_id, b->token_hash, user_id, now, b->expires_at);
	for (size_t i = 0; i < n && rc == STORE_OK && mail; i++)
		if (ids[i])
			rc = sq_exec(&c, NULL,
				     "INSERT INTO verification_token_senders (token_id, sender_id, "
				     "address) VALUES (?, ?, ?)",
				     "iis", batch, ids[i], addresses[i]);
	rc = sq_end(&c, rc);
	if (rc == STORE_OK && added)
		sq_policy_changed(c.s);
	sq_release(&c);
	return rc;
}

/* The domain's status as GET /api/domains shows it (domain_shown_status). */
#define SENDER_DOMAIN_STATUS                                                                       \
	"CASE WHEN d.approval = 'rejected' THEN 'rejected' "                                       \
	"  WHEN d.approval = 'required' AND d.status = 'verified' THEN 'awaiting_approval' "       \
	"  ELSE d.status END"

#define SENDER_SELECT                                                                              \
	"SELECT s.id, s.address, s.status, s.domain, " SENDER_DOMAIN_STATUS                        \
	", d.active, ua.email, s.added_at, "                                                       \
	"  uv.email, s.verified_at, s.verified_via, s.admin_verified_at, s.owner_confirmed_at, "   \
	"  st.sender_confirmation, "                                                               \
	"  (SELECT MAX(o.created_at) FROM owner_tokens o WHERE o.sender_id = s.id) "               \
	"FROM senders s JOIN settings st ON st.account_id = s.account_id "                         \
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
	x->admin_verified_at = sq_int(r, 11);
	x->owner_confirmed_at = sq_int(r, 12);
	sq_col_text(r, 13, x->confirmation, sizeof(x->confirmation));
	x->confirmation_sent_at = sq_int(r, 14);
}

int store_senders_list(struct store *s, int64_t account_id, store_sender_fn fn, void *arg)
{
	struct store_sender row;
	return sq_list(s, read_sender, &row, (sq_row_fn)fn, arg,
		       SENDER_SELECT "WHERE s.account_id = ? ORDER BY s.address", "i", account_id);
}

int store_sender_get(struct store *s, int64_t account_id, int64_t id, struct store_sender *out)
{
	return sq_get(s, read_sender, out, SENDER_SELECT "WHERE s.account_id = ? AND s.id = ?",
		      "ii", account_id, id);
}

int store_sender_verify(struct store *s, int64_t account_id, int64_t id, int64_t user_id,
			int64_t now)
{
	struct sq_conn c = sq_acquire(s);
	int64_t found;
	bool done;
	/* Verifying twice keeps the first verifier and time, and makes no second event. */
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_exec(&c, &found, "SELECT id FROM senders WHERE account_id = ? AND id = ?",
			     "ii", account_id, id);
	if (rc == STORE_OK)
		rc = sq_exec(&c, NULL,
			     "UPDATE senders SET admin_verified_at = ?, verified_by = ? "
			     "WHERE account_id = ? AND id = ? AND status <> 'verified' "
			     "AND admin_verified_at IS NULL",
			     "iiii", now, user_id, account_id, id);
	if (rc == STORE_OK)
		rc = sq_sender_complete(&c, account_id, id, "panel", user_id, now, &done);
	rc = sq_end(&c, rc);
	if (rc == STORE_OK)
		sq_policy_changed(s);
	sq_release(&c);
	return rc;
}

int store_sender_delete(struct store *s, int64_t account_id, int64_t id)
{
	struct sq_conn c = sq_acquire(s);
	struct sq_res r;
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_step(
			&c, &r,
			"DELETE FROM senders WHERE account_id = ? AND id = ? RETURNING address",
			"ii", account_id, id);
	if (rc == STORE_OK) {
		char address[ADDR_MAX];
		sq_col_text(&r, 0, address, sizeof(address));
		rc = sq_finish(&r);
		if (rc == STORE_OK)
			rc = sq_event_str(&c, account_id, "sender.removed", util_now(), "email",
					  address, NULL, NULL);
	}
	rc = sq_end(&c, rc);
	if (rc == STORE_OK)
		sq_policy_changed(s);
	sq_release(&c);
	return rc;
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

int store_policy_load(struct store *s, int64_t account_id, struct policy **out)
{
	struct sq_conn c = sq_acquire_read(s);
	struct sq_res r;
	struct policy *p = NULL;

	/* One snapshot for the three reads: never half of a change. */
	int rc = sq_begin_read(&c);
	if (rc == STORE_OK)
		rc = sq_step(&c, &r,
			     "SELECT sender_auth_enabled, sender_auth_monitor FROM settings "
			     "WHERE account_id = ?",
			     "i", account_id);
	if (rc == STORE_OK) {
		p = policy_new_mode(policy_mode_of(sq_int(&r, 0) != 0, sq_int(&r, 1) != 0));
		sq_done(&r);
		rc = sq_each(
			&c, read_policy_sender, p, sq_row_done, NULL,
			"SELECT address, status = 'verified' FROM senders WHERE account_id = ?",
			"i", account_id);
	}
	/* A domain that awaits, or was refused, the operator's approval is not verified. */
	if (rc == STORE_OK)
		rc = sq_each(
			&c, read_policy_domain, p, sq_row_done, NULL,
			"SELECT name, CASE approval WHEN 'approved' THEN status ELSE 'pending' "
			"END, active FROM sending_domains WHERE account_id = ?",
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

int store_policy_stamp(struct store *s, uint64_t *stamp)
{
	uint64_t theirs;
	/* The driver's stamp moves when another process or node commits a change; ours when
	 * this process writes one. Both only grow, so the sum moves when either does and no
	 * bit of either is lost. */
	if (s->db->drv->stamp(s->db, &theirs) != STORE_OK)
		return STORE_FAIL;
	*stamp = theirs + atomic_load(&s->policy_writes);
	return STORE_OK;
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
		   : sq_int(r, 2)		     ? BATCH_AWAITS_OWNER
						     : BATCH_PENDING;
}

static int call_batch(void *arg, const void *row)
{
	const struct batch_row *b = row;
	(void)arg;
	return b->fn(b->arg, b->address, b->state);
}

int store_batch_pending(struct store *s, int64_t account_id, int64_t user_id, int64_t now,
			struct store_batch_new *b, store_batch_fn fn, void *arg)
{
	struct sq_conn c = sq_acquire(s);
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
			"status = 'pending' AND admin_verified_at IS NULL",
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
		       "SELECT l.address, s.status, s.admin_verified_at IS NOT NULL "
		       "FROM verification_token_senders l "
		       "LEFT JOIN senders s ON s.id = l.sender_id WHERE l.token_id = ? "
		       "ORDER BY l.address",
		       "i", out->id);
}

int store_batch_get(struct store *s, const char *token_hash, struct store_batch *out,
		    store_batch_fn fn, void *arg)
{
	struct sq_conn c = sq_acquire(s);
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
	int64_t id = 0;
	bool done = false;
	if (state == BATCH_PENDING && u->rc == STORE_OK) {
		u->rc = sq_exec(u->c, &id,
				"UPDATE senders SET admin_verified_at = ?, verified_by = NULL "
				"WHERE account_id = ? AND address = ? AND status = 'pending' "
				"AND admin_verified_at IS NULL RETURNING id",
				"iis", u->now, u->account_id, address);
		if (u->rc == STORE_NOT_FOUND)
			u->rc = STORE_OK;
		if (u->rc == STORE_OK && id)
			u->rc = sq_sender_complete(u->c, u->account_id, id, "link", 0, u->now,
						   &done);
		state = done ? BATCH_VERIFIED_NOW : id ? BATCH_ADMIN_NOW : state;
	}
	return u->fn(u->arg, address, state);
}

int store_batch_use(struct store *s, const char *token_hash, int64_t now, struct store_batch *out,
		    store_batch_fn fn, void *arg)
{
	struct sq_conn c = sq_acquire(s);
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
			sq_policy_changed(c.s);
	} else {
		sq_end(&c, STORE_NOT_FOUND); /* nothing to keep */
	}
	sq_release(&c);
	return rc;
}
