/* The store's people: accounts, users, failed-login throttles, sessions, API keys and
 * the audit log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_int.h"
#include "util.h"

int store_account_create(struct store *s, const char *name, int64_t now, int64_t *id)
{
	struct sq_conn c = sq_acquire(s);
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_exec(&c, id,
			     "INSERT INTO accounts (name, created_at) VALUES (?, ?) RETURNING id",
			     "si", name, now);
	if (rc == STORE_OK)
		rc = sq_exec(&c, NULL, "INSERT INTO settings (account_id) VALUES (?)", "i", *id);
	rc = sq_end(&c, rc);
	sq_release(&c);
	return rc;
}

static void read_account(const struct sq_res *r, void *row)
{
	struct store_account *a = row;
	a->id = sq_int(r, 0);
	sq_col_text(r, 1, a->name, sizeof(a->name));
}

int store_account_count(struct store *s, int64_t *count)
{
	struct sq_conn c = sq_acquire(s);
	struct sq_res r;
	int rc = sq_step(&c, &r, "SELECT COUNT(*) FROM accounts", "");
	if (rc == STORE_OK) {
		*count = sq_int(&r, 0);
		sq_done(&r);
	}
	sq_release(&c);
	return rc == STORE_NOT_FOUND ? STORE_FAIL : rc;
}

int store_account_by_name(struct store *s, const char *name, struct store_account *out)
{
	return sq_get(s, read_account, out, "SELECT id, name FROM accounts WHERE name = ?", "s",
		      name);
}

int store_user_create(struct store *s, int64_t account_id, const char *email,
		      const char *password_hash, enum role role, int64_t now, int64_t *id)
{
	return sq_write(s, id,
			"INSERT INTO users (account_id, email, password_hash, role, created_at) "
			"VALUES (?, ?, ?, ?, ?) RETURNING id",
			"isssi", account_id, email, password_hash, role_name(role), now);
}

#define USER_COLUMNS "u.id, u.account_id, u.email, u.password_hash, u.role, u.created_at"

static void read_user(const struct sq_res *r, int col, struct store_user *u)
{
	char role[16];
	u->id = sq_int(r, col);
	u->account_id = sq_int(r, col + 1);
	sq_col_text(r, col + 2, u->email, sizeof(u->email));
	sq_col_text(r, col + 3, u->password_hash, sizeof(u->password_hash));
	sq_col_text(r, col + 4, role, sizeof(role));
	u->role = (enum role)role_parse(role);
	u->created_at = sq_int(r, col + 5);
}

static void read_user_row(const struct sq_res *r, void *row)
{
	read_user(r, 0, row);
}

int store_user_by_login(struct store *s, const char *account, const char *email,
			struct store_user *out)
{
	return sq_get(s, read_user_row, out,
		      "SELECT " USER_COLUMNS " FROM users u JOIN accounts a ON a.id = u.account_id "
		      "WHERE a.name = ? AND u.email = ? AND u.disabled_at IS NULL",
		      "ss", account, email);
}

/* The wait a key's failures earn: none up to t->free, then doubling up to t->wait_max. */
static int64_t throttle_wait(const struct store_throttle *t, int failures)
{
	if (failures < t->free)
		return 0;
	int64_t wait = t->wait;
	for (int i = t->free; i < failures && wait < t->wait_max; i++)
		wait *= 2;
	return wait < t->wait_max ? wait : t->wait_max;
}

/* Counts one more failure under t unless it must wait: STORE_CONFLICT then, with the
 * seconds left in *retry_after. */
static int throttle_count(struct sq_conn *c, const struct store_throttle *t, int64_t now,
			  int *failures, int64_t *retry_after)
{
	struct sq_res r;
	int64_t n;
	/* The upsert locks the key's row (on PostgreSQL, for every node) until the end. */
	int rc = sq_exec(c, &n,
			 "INSERT INTO login_throttle (key_hash, failures, last_at, blocked_until) "
			 "VALUES (?, 1, ?, 0) ON CONFLICT (key_hash) DO UPDATE SET "
			 "failures = login_throttle.failures + 1, last_at = excluded.last_at "
			 "WHERE login_throttle.blocked_until <= ? RETURNING failures",
			 "sii", t->key, now, now);
	if (rc == STORE_NOT_FOUND) {
		rc = sq_step(c, &r, "SELECT blocked_until FROM login_throttle WHERE key_hash = ?",
			     "s", t->key);
		if (rc == STORE_OK) {
			*retry_after = sq_int(&r, 0) - now;
			sq_done(&r);
		}
		return rc == STORE_OK ? STORE_CONFLICT : STORE_FAIL;
	}
	if (rc != STORE_OK)
		return rc;
	*failures = (int)n;
	int64_t wait = throttle_wait(t, *failures);
	if (wait > 0)
		rc = sq_exec(c, NULL,
			     "UPDATE login_throttle SET blocked_until = ? WHERE key_hash = ?", "is",
			     now + wait, t->key);
	return rc;
}

int store_login_attempt(struct store *s, const struct store_throttle *t, size_t n, int64_t now,
			int64_t forget_before, int *failures, int64_t *retry_after)
{
	struct sq_conn c = sq_acquire(s);
	*retry_after = 0;
	/* Swept on its own, before the transaction, so it holds no row the counting waits on. */
	int rc = sq_exec(&c, NULL,
			 "DELETE FROM login_throttle WHERE last_at < ? AND blocked_until <= ?",
			 "ii", forget_before, now);
	if (rc == STORE_OK)
		rc = sq_begin(&c);
	for (size_t i = 0; i < n && rc == STORE_OK; i++)
		rc = throttle_count(&c, &t[i], now, &failures[i], retry_after);
	/* A key that must wait rolls back what the keys before it counted. */
	rc = sq_end(&c, rc);
	sq_release(&c);
	return rc == STORE_CONFLICT && *retry_after > 0 ? STORE_OK : rc;
}

int store_login_forgive(struct store *s, const struct store_throttle *t, bool all)
{
	if (all)
		return sq_write(s, NULL, "DELETE FROM login_throttle WHERE key_hash = ?", "s",
				t->key);
	/* The check was counted, and its key maybe made to wait, before it ran: a check taken
	 * back also takes back the wait it alone brought. */
	return sq_write(s, NULL,
			"UPDATE login_throttle SET failures = failures - 1, blocked_until = "
			"CASE WHEN failures - 1 < ? THEN 0 ELSE blocked_until END "
			"WHERE key_hash = ? AND failures > 0",
			"is", (int64_t)t->free, t->key);
}

int store_login_failed(struct store *s, const struct store_throttle *t, int64_t now)
{
	return sq_write(s, NULL, "UPDATE login_throttle SET last_at = ? WHERE key_hash = ?", "is",
			now, t->key);
}

static void read_blocked_until(const struct sq_res *r, void *row)
{
	*(int64_t *)row = sq_int(r, 0);
}

int store_login_blocked(struct store *s, const struct store_throttle *t, int64_t now,
			int64_t *retry_after)
{
	int64_t until = 0;
	int rc = sq_get(s, read_blocked_until, &until,
			"SELECT blocked_until FROM login_throttle WHERE key_hash = ?", "s", t->key);
	*retry_after = until > now ? until - now : 0;
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

int store_session_create(struct store *s, const char *token_hash, int64_t user_id, int64_t now,
			 int64_t expires_at)
{
	struct sq_conn c = sq_acquire(s);
	/* Expired sessions are swept here, where a write happens anyway. */
	int rc = sq_exec(&c, NULL, "DELETE FROM sessions WHERE expires_at <= ?", "i", now);
	if (rc == STORE_OK)
		rc = sq_exec(&c, NULL,
			     "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) "
			     "VALUES (?, ?, ?, ?)",
			     "siii", token_hash, user_id, now, expires_at);
	sq_release(&c);
	return rc;
}

static void read_session(const struct sq_res *r, void *row)
{
	struct store_session *x = row;
	x->expires_at = sq_int(r, 0);
	read_user(r, 1, &x->user);
	x->account.id = sq_int(r, 7);
	sq_col_text(r, 8, x->account.name, sizeof(x->account.name));
}

int store_session_get(struct store *s, const char *token_hash, int64_t now,
		      struct store_session *out)
{
	return sq_get(s, read_session, out,
		      "SELECT s.expires_at, " USER_COLUMNS ", a.id, a.name "
		      "FROM sessions s JOIN users u ON u.id = s.user_id "
		      "JOIN accounts a ON a.id = u.account_id "
		      "WHERE s.token_hash = ? AND s.expires_at > ? AND u.disabled_at IS NULL",
		      "si", token_hash, now);
}

int store_session_delete(struct store *s, const char *token_hash)
{
	return sq_write(s, NULL, "DELETE FROM sessions WHERE token_hash = ?", "s", token_hash);
}

int store_apikey_create(struct store *s, const struct store_apikey *k, const char *key_hash,
			int64_t now, int64_t *id)
{
	/* The insert trigger moves the stamp for other processes; this, for ours. */
	int rc = sq_write(s, id,
			  "INSERT INTO api_keys (account_id, name, shown, key_hash, smtp_ips, "
			  "senders, domains, allowed_ips, scopes, role, created_at) "
			  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULLIF(?, ''), ?) RETURNING id",
			  "isssssssssi", k->account_id, k->name, k->shown, key_hash, k->smtp_ips,
			  k->senders, k->domains, k->allowed_ips,
			  *k->scopes ? k->scopes : "mail.send", k->role, now);
	if (rc == STORE_OK && *k->smtp_ips)
		sq_policy_changed(s);
	return rc;
}

int store_apikey_update(struct store *s, const struct store_apikey *k)
{
	return sq_update(s, true,
			 "UPDATE api_keys SET name = ?, smtp_ips = ?, senders = ?, domains = ?, "
			 "allowed_ips = ?, scopes = ?, role = NULLIF(?, '') "
			 "WHERE account_id = ? AND id = ? AND revoked_at IS NULL",
			 "sssssssii", k->name, k->smtp_ips, k->senders, k->domains, k->allowed_ips,
			 *k->scopes ? k->scopes : "mail.send", k->role, k->account_id, k->id);
}

int store_audit_append(struct store *s, const struct store_audit *ev)
{
	return sq_write(s, NULL,
			"INSERT INTO audit_log (account_id, at, actor, action, target, detail, ip) "
			"VALUES (NULLIF(?, 0), ?, ?, ?, ?, ?, ?)",
			"iisssss", ev->account_id, ev->at, ev->actor, ev->action, ev->target,
			ev->detail, ev->ip);
}

static void read_audit(const struct sq_res *r, void *row)
{
	struct store_audit *ev = row;
	ev->id = sq_int(r, 0);
	ev->at = sq_int(r, 1);
	ev->account_id = sq_int(r, 2);
	sq_col_text(r, 3, ev->actor, sizeof(ev->actor));
	sq_col_text(r, 4, ev->action, sizeof(ev->action));
	sq_col_text(r, 5, ev->target, sizeof(ev->target));
	sq_col_text(r, 6, ev->detail, sizeof(ev->detail));
	sq_col_text(r, 7, ev->ip, sizeof(ev->ip));
}

int store_audit_list(struct store *s, int64_t account_id, int limit, store_audit_fn fn, void *arg)
{
	struct store_audit row;
	return sq_list(s, read_audit, &row, (sq_row_fn)fn, arg,
		       "SELECT id, at, account_id, actor, action, target, detail, ip "
		       "FROM audit_log WHERE account_id = ? ORDER BY id DESC LIMIT ?",
		       "id", account_id, limit);
}

int store_users_list(struct store *s, int64_t account_id, store_user_fn fn, void *arg)
{
	struct store_user row;
	return sq_list(s, read_user_row, &row, (sq_row_fn)fn, arg,
		       "SELECT " USER_COLUMNS " FROM users u WHERE u.account_id = ? AND "
		       "u.disabled_at IS NULL ORDER BY u.email",
		       "i", account_id);
}

int store_user_get(struct store *s, int64_t account_id, int64_t id, struct store_user *out)
{
	return sq_get(s, read_user_row, out,
		      "SELECT " USER_COLUMNS " FROM users u WHERE u.account_id = ? AND u.id = ? "
		      "AND u.disabled_at IS NULL",
		      "ii", account_id, id);
}

/* Changes or deletes a user unless that leaves the account without an Admin; the count
 * and the change share one transaction (the account's row locked on PostgreSQL) so two
 * Admins cannot demote each other at once. */
static int user_change(struct store *s, int64_t account_id, int64_t id, const char *new_role)
{
	struct sq_conn c = sq_acquire(s);
	struct sq_res r;
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_lock(&c, "SELECT id FROM accounts WHERE id = ? FOR NO KEY UPDATE", "i",
			     account_id);
	if (rc == STORE_OK)
		rc = sq_step(&c, &r,
			     "SELECT u.role = 'admin', (SELECT COUNT(*) FROM users a WHERE "
			     "a.account_id = u.account_id AND a.role = 'admin' AND "
			     "a.disabled_at IS NULL) "
			     "FROM users u WHERE u.account_id = ? AND u.id = ? AND "
			     "u.disabled_at IS NULL",
			     "ii", account_id, id);
	if (rc == STORE_OK) {
		bool admin = sq_int(&r, 0) != 0;
		int64_t admins = sq_int(&r, 1);
		sq_done(&r);
		bool stays_admin = new_role && strcmp(new_role, "admin") == 0;
		if (admin && admins <= 1 && !stays_admin)
			rc = STORE_LAST_ADMIN;
	}
	if (rc == STORE_OK && new_role)
		rc = sq_exec(&c, NULL, "UPDATE users SET role = ? WHERE account_id = ? AND id = ?",
			     "sii", new_role, account_id, id);
	else if (rc == STORE_OK)
		rc = sq_exec(&c, NULL, "DELETE FROM users WHERE account_id = ? AND id = ?", "ii",
			     account_id, id);
	rc = sq_end(&c, rc);
	sq_release(&c);
	return rc;
}

int store_user_set_role(struct store *s, int64_t account_id, int64_t id, enum role role)
{
	return user_change(s, account_id, id, role_name(role));
}

int store_user_delete(struct store *s, int64_t account_id, int64_t id)
{
	return user_change(s, account_id, id, NULL);
}

#define APIKEY_COLUMNS                                                                             \
	"k.id, k.account_id, k.name, k.shown, k.created_at, k.last_used_at, k.smtp_ips, a.name, "  \
	"k.senders, k.domains, k.allowed_ips, k.scopes, k.role "                                   \
	"FROM api_keys k JOIN accounts a ON a.id = k.account_id"

static void read_apikey(const struct sq_res *r, void *row)
{
	struct store_apikey *k = row;
	k->id = sq_int(r, 0);
	k->account_id = sq_int(r, 1);
	sq_col_text(r, 2, k->name, sizeof(k->name));
	sq_col_text(r, 3, k->shown, sizeof(k->shown));
	k->created_at = sq_int(r, 4);
	k->last_used_at = sq_int(r, 5);
	sq_col_text(r, 6, k->smtp_ips, sizeof(k->smtp_ips));
	sq_col_text(r, 7, k->account_name, sizeof(k->account_name));
	sq_col_text(r, 8, k->senders, sizeof(k->senders));
	sq_col_text(r, 9, k->domains, sizeof(k->domains));
	sq_col_text(r, 10, k->allowed_ips, sizeof(k->allowed_ips));
	sq_col_text(r, 11, k->scopes, sizeof(k->scopes));
	sq_col_text(r, 12, k->role, sizeof(k->role));
	k->hash[0] = '\0'; /* the policy cache's, set when it finds the key */
	k->stamp = 0;
	k->quick.ready = false; /* keyscope_prepare's */
}

int store_apikey_list(struct store *s, int64_t account_id, store_apikey_fn fn, void *arg)
{
	struct store_apikey row;
	return sq_list(s, read_apikey, &row, (sq_row_fn)fn, arg,
		       "SELECT " APIKEY_COLUMNS " WHERE k.account_id = ? AND "
		       "k.revoked_at IS NULL ORDER BY k.id",
		       "i", account_id);
}

int store_apikey_lookup(struct store *s, const char *key_hash, struct store_apikey *out)
{
	return sq_get(s, read_apikey, out,
		      "SELECT " APIKEY_COLUMNS " WHERE k.key_hash = ? AND "
		      "k.revoked_at IS NULL",
		      "s", key_hash);
}

int store_apikey_smtp_list(struct store *s, store_apikey_fn fn, void *arg)
{
	struct store_apikey row;
	return sq_list(s, read_apikey, &row, (sq_row_fn)fn, arg,
		       "SELECT " APIKEY_COLUMNS " WHERE k.smtp_ips <> '' AND "
		       "k.revoked_at IS NULL ORDER BY k.id",
		       "");
}

int store_apikey_touch(struct store *s, int64_t id, int64_t now)
{
	return sq_write(s, NULL, "UPDATE api_keys SET last_used_at = ? WHERE id = ?", "ii", now,
			id);
}

int store_apikey_revoke(struct store *s, int64_t account_id, int64_t id, int64_t now)
{
	/* Counted as a policy change: found keys are kept while the stamp holds. */
	return sq_update(s, true,
			 "UPDATE api_keys SET revoked_at = ? WHERE account_id = ? AND id = ? "
			 "AND revoked_at IS NULL",
			 "iii", now, account_id, id);
}

int store_user_set_password(struct store *s, int64_t account_id, int64_t id,
			    const char *password_hash, const char *keep_session_hash)
{
	struct sq_conn c = sq_acquire(s);
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_exec(&c, NULL,
			     "UPDATE users SET password_hash = ? WHERE account_id = ? AND id = ?",
			     "sii", password_hash, account_id, id);
	if (rc == STORE_OK && sq_changes(&c) == 0)
		rc = STORE_NOT_FOUND;
	if (rc == STORE_OK)
		rc = sq_exec(&c, NULL, "DELETE FROM sessions WHERE user_id = ? AND token_hash <> ?",
			     "is", id, keep_session_hash);
	rc = sq_end(&c, rc);
	sq_release(&c);
	return rc;
}
