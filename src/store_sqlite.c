/* The SQLite backend of the store: the embedded default. WAL mode with synchronous=FULL,
 * so a committed write survives a power cut; foreign keys on; versioned migrations applied
 * at open. One connection behind a mutex keeps writes ordered. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"
#include "util.h"

struct sq {
	struct store base;
	sqlite3 *db;
	pthread_mutex_t lock;
	uint64_t policy_writes; /* bumped by every write that can change a policy; under lock */
};

/* Each entry moves the schema from version i to i+1. Never edit a released entry; append. */
static const char *const migrations[] = {
	"CREATE TABLE accounts ("
	"  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);"
	"CREATE TABLE users ("
	"  id INTEGER PRIMARY KEY,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  email TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,"
	"  role TEXT NOT NULL CHECK (role IN ('admin','technical','analytics','marketing')),"
	"  created_at INTEGER NOT NULL, disabled_at INTEGER);"
	"CREATE INDEX users_account ON users(account_id);"
	"CREATE TABLE login_failures ("
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  at INTEGER NOT NULL);"
	"CREATE INDEX login_failures_user ON login_failures(user_id, at);"
	"CREATE TABLE sessions ("
	"  token_hash TEXT PRIMARY KEY,"
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);"
	"CREATE INDEX sessions_user ON sessions(user_id);"
	"CREATE TABLE api_keys ("
	"  id INTEGER PRIMARY KEY,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL, shown TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,"
	"  created_at INTEGER NOT NULL, last_used_at INTEGER, revoked_at INTEGER);"
	"CREATE INDEX api_keys_account ON api_keys(account_id);"
	"CREATE TABLE settings ("
	"  account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,"
	"  sender_auth_enabled INTEGER NOT NULL DEFAULT 0,"
	"  updated_at INTEGER, updated_by INTEGER REFERENCES users(id) ON DELETE SET NULL);"
	"CREATE TABLE sending_domains ("
	"  id INTEGER PRIMARY KEY,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'pending'"
	"    CHECK (status IN ('pending','verified','failed')),"
	"  active INTEGER NOT NULL DEFAULT 1,"
	"  created_at INTEGER NOT NULL, checked_at INTEGER,"
	"  UNIQUE (account_id, name));"
	"CREATE TABLE senders ("
	"  id INTEGER PRIMARY KEY,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  address TEXT NOT NULL, domain TEXT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','verified')),"
	"  added_by INTEGER REFERENCES users(id) ON DELETE SET NULL, added_at INTEGER NOT NULL,"
	"  verified_by INTEGER REFERENCES users(id) ON DELETE SET NULL, verified_at INTEGER,"
	"  verified_via TEXT CHECK (verified_via IN ('panel','link')),"
	"  UNIQUE (account_id, address));"
	"CREATE TABLE verification_tokens ("
	"  id INTEGER PRIMARY KEY,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  token_hash TEXT NOT NULL UNIQUE,"
	"  created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
	"  created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER);"
	/* The address is kept so a batch can say which of its senders were removed since. */
	"CREATE TABLE verification_token_senders ("
	"  token_id INTEGER NOT NULL REFERENCES verification_tokens(id) ON DELETE CASCADE,"
	"  sender_id INTEGER REFERENCES senders(id) ON DELETE SET NULL,"
	"  address TEXT NOT NULL,"
	"  PRIMARY KEY (token_id, address));"
	"CREATE TABLE messages ("
	"  id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  api_key_id INTEGER REFERENCES api_keys(id) ON DELETE SET NULL,"
	"  system INTEGER NOT NULL DEFAULT 0," /* Postern's own mail, outside the policy */
	"  from_addr TEXT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'queued'"
	"    CHECK (status IN ('queued','deferred','sending','sent','failed','dropped')),"
	"  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL,"
	"  lease_until INTEGER, parts_done INTEGER NOT NULL DEFAULT 0,"
	"  recipients INTEGER NOT NULL, payload TEXT NOT NULL, reason TEXT, last_reply TEXT,"
	"  rejected TEXT," /* JSON: recipients the relay refused, with its replies */
	"  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
	"CREATE INDEX messages_due ON messages(status, next_attempt_at);"
	"CREATE INDEX messages_account ON messages(account_id, id);"
	/* One row per account, key, From, reason and minute: a flood of refusals becomes a
	 * counter, not a table that fills the disk. api_key_id 0 means no key. */
	"CREATE TABLE drops ("
	"  id INTEGER PRIMARY KEY,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  api_key_id INTEGER NOT NULL, from_addr TEXT NOT NULL, reason TEXT NOT NULL,"
	"  minute INTEGER NOT NULL, count INTEGER NOT NULL,"
	"  UNIQUE (account_id, api_key_id, from_addr, reason, minute));"
	"CREATE INDEX drops_account ON drops(account_id, minute);"
	"CREATE TABLE audit_log ("
	"  id INTEGER PRIMARY KEY,"
	"  account_id INTEGER REFERENCES accounts(id) ON DELETE CASCADE,"
	"  at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,"
	"  target TEXT, detail TEXT, ip TEXT);"
	"CREATE INDEX audit_account ON audit_log(account_id, id);",
};

int store_schema_version(void)
{
	return (int)ARRAY_LEN(migrations);
}

static int sq_fail(struct sq *q, const char *what)
{
	log_error("store: %s: %s", what, sqlite3_errmsg(q->db));
	return STORE_FAIL;
}

/* Binds arguments described by fmt: 'i' int64_t, 'd' int, 's' string (NULL binds NULL). */
static int sq_bind(sqlite3_stmt *st, const char *fmt, va_list ap)
{
	for (int i = 0; fmt[i]; i++) {
		int rc;
		const char *s;
		switch (fmt[i]) {
		case 'i':
			rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
			break;
		case 'd':
			rc = sqlite3_bind_int(st, i + 1, va_arg(ap, int));
			break;
		default:
			s = va_arg(ap, const char *);
			rc = s ? sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT)
			       : sqlite3_bind_null(st, i + 1);
			break;
		}
		if (rc != SQLITE_OK)
			return rc;
	}
	return SQLITE_OK;
}

/* Prepares sql with its arguments and steps once. Returns STORE_OK with a row in *out
 * (the caller finalizes), STORE_NOT_FOUND when done without a row (or after a write),
 * STORE_CONFLICT on a unique violation, STORE_FAIL otherwise. Call with the lock held. */
static int sq_vstep(struct sq *q, sqlite3_stmt **out, const char *sql, const char *fmt, va_list ap)
{
	sqlite3_stmt *st = NULL;

	*out = NULL;
	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
		return sq_fail(q, "prepare");
	int rc = sq_bind(st, fmt, ap);
	if (rc != SQLITE_OK) {
		sqlite3_finalize(st);
		return sq_fail(q, "bind");
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = st;
		return STORE_OK;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return STORE_NOT_FOUND;
	if (rc == SQLITE_CONSTRAINT)
		return STORE_CONFLICT;
	return sq_fail(q, "step");
}

static int sq_step(struct sq *q, sqlite3_stmt **out, const char *sql, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = sq_vstep(q, out, sql, fmt, ap);
	va_end(ap);
	return rc;
}

/* Runs a statement that returns no rows, with the lock held. */
static int sq_vexec(struct sq *q, int64_t *id, const char *sql, const char *fmt, va_list ap)
{
	sqlite3_stmt *st;
	int rc = sq_vstep(q, &st, sql, fmt, ap);
	if (st)
		sqlite3_finalize(st);
	if (rc == STORE_NOT_FOUND)
		rc = STORE_OK;
	if (rc == STORE_OK && id)
		*id = sqlite3_last_insert_rowid(q->db);
	return rc;
}

static int sq_exec(struct sq *q, int64_t *id, const char *sql, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = sq_vexec(q, id, sql, fmt, ap);
	va_end(ap);
	return rc;
}

/* Takes the lock and runs one write; the new row id goes to *id when id is not NULL. */
static int sq_write(struct sq *q, int64_t *id, const char *sql, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&q->lock);
	va_start(ap, fmt);
	int rc = sq_vexec(q, id, sql, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static void col_text(sqlite3_stmt *st, int col, char *dst, size_t n)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	if (util_copy(dst, n, t ? (const char *)t : "") < 0)
		util_copy(dst, n, "");
}

static struct sq *sq_of(struct store *s)
{
	return (struct sq *)s;
}

static int schema_current(struct sq *q, int *version)
{
	sqlite3_stmt *st;
	int rc = sq_step(q, &st, "SELECT COALESCE(MAX(version), 0) FROM schema_version", "");
	if (rc != STORE_OK)
		return STORE_FAIL;
	*version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return STORE_OK;
}

/* Applies the migrations this database lacks, each in its own transaction. Another process
 * may migrate at the same time, so the version is re-read under the write lock. */
static int migrate(struct sq *q, char *err, size_t errlen)
{
	int known = store_schema_version(), version;

	if (sqlite3_exec(q->db,
			 "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
			 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot migrate the schema: %s", sqlite3_errmsg(q->db));
		return -1;
	}
	if (schema_current(q, &version) != STORE_OK)
		goto fail;
	if (version > known) {
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
		snprintf(err, errlen,
			 "the database schema is version %d, newer than this postern knows (%d); "
			 "upgrade postern",
			 version, known);
		return -1;
	}
	for (int v = version; v < known; v++) {
		if (sqlite3_exec(q->db, migrations[v], NULL, NULL, NULL) != SQLITE_OK)
			goto fail;
		if (sq_exec(q, NULL, "INSERT INTO schema_version (version) VALUES (?)", "d",
			    v + 1) != STORE_OK)
			goto fail;
		log_info("store: schema migrated to version %d", v + 1);
	}
	if (sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		return 0;
fail:
	snprintf(err, errlen, "cannot migrate the schema: %s", sqlite3_errmsg(q->db));
	sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static void sq_close(struct store *s)
{
	struct sq *q = sq_of(s);
	sqlite3_close(q->db);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

static int sq_account_create(struct store *s, const char *name, int64_t now, int64_t *id)
{
	struct sq *q = sq_of(s);
	pthread_mutex_lock(&q->lock);
	int rc = sq_exec(q, NULL, "BEGIN IMMEDIATE", "");
	if (rc == STORE_OK)
		rc = sq_exec(q, id, "INSERT INTO accounts (name, created_at) VALUES (?, ?)", "si",
			     name, now);
	if (rc == STORE_OK)
		rc = sq_exec(q, NULL, "INSERT INTO settings (account_id) VALUES (?)", "i", *id);
	sq_exec(q, NULL, rc == STORE_OK ? "COMMIT" : "ROLLBACK", "");
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_account_by_name(struct store *s, const char *name, struct store_account *out)
{
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->lock);
	int rc = sq_step(q, &st, "SELECT id, name FROM accounts WHERE name = ?", "s", name);
	if (rc == STORE_OK) {
		out->id = sqlite3_column_int64(st, 0);
		col_text(st, 1, out->name, sizeof(out->name));
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_user_create(struct store *s, int64_t account_id, const char *email,
			  const char *password_hash, enum role role, int64_t now, int64_t *id)
{
	return sq_write(sq_of(s), id,
			"INSERT INTO users (account_id, email, password_hash, role, created_at) "
			"VALUES (?, ?, ?, ?, ?)",
			"isssi", account_id, email, password_hash, role_name(role), now);
}

#define USER_COLUMNS "u.id, u.account_id, u.email, u.password_hash, u.role, u.created_at"

static void read_user(sqlite3_stmt *st, int col, struct store_user *u)
{
	char role[16];
	u->id = sqlite3_column_int64(st, col);
	u->account_id = sqlite3_column_int64(st, col + 1);
	col_text(st, col + 2, u->email, sizeof(u->email));
	col_text(st, col + 3, u->password_hash, sizeof(u->password_hash));
	col_text(st, col + 4, role, sizeof(role));
	u->role = (enum role)role_parse(role);
	u->created_at = sqlite3_column_int64(st, col + 5);
}

static int sq_user_by_email(struct store *s, const char *email, struct store_user *out)
{
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->lock);
	int rc = sq_step(q, &st,
			 "SELECT " USER_COLUMNS " FROM users u WHERE u.email = ? AND "
			 "u.disabled_at IS NULL",
			 "s", email);
	if (rc == STORE_OK) {
		read_user(st, 0, out);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_login_failures(struct store *s, int64_t user_id, int64_t since, int *count)
{
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->lock);
	int rc = sq_step(q, &st, "SELECT COUNT(*) FROM login_failures WHERE user_id = ? AND at > ?",
			 "ii", user_id, since);
	if (rc == STORE_OK) {
		*count = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&q->lock);
	return rc == STORE_NOT_FOUND ? STORE_FAIL : rc;
}

static int sq_login_failure_add(struct store *s, int64_t user_id, int64_t at)
{
	return sq_write(sq_of(s), NULL, "INSERT INTO login_failures (user_id, at) VALUES (?, ?)",
			"ii", user_id, at);
}

static int sq_login_failures_clear(struct store *s, int64_t user_id)
{
	return sq_write(sq_of(s), NULL, "DELETE FROM login_failures WHERE user_id = ?", "i",
			user_id);
}

static int sq_session_create(struct store *s, const char *token_hash, int64_t user_id, int64_t now,
			     int64_t expires_at)
{
	struct sq *q = sq_of(s);
	pthread_mutex_lock(&q->lock);
	/* Expired sessions are swept here, where a write happens anyway. */
	int rc = sq_exec(q, NULL, "DELETE FROM sessions WHERE expires_at <= ?", "i", now);
	if (rc == STORE_OK)
		rc = sq_exec(q, NULL,
			     "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) "
			     "VALUES (?, ?, ?, ?)",
			     "siii", token_hash, user_id, now, expires_at);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_session_get(struct store *s, const char *token_hash, int64_t now,
			  struct store_session *out)
{
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->lock);
	int rc = sq_step(q, &st,
			 "SELECT s.expires_at, " USER_COLUMNS ", a.id, a.name "
			 "FROM sessions s JOIN users u ON u.id = s.user_id "
			 "JOIN accounts a ON a.id = u.account_id "
			 "WHERE s.token_hash = ? AND s.expires_at > ? AND u.disabled_at IS NULL",
			 "si", token_hash, now);
	if (rc == STORE_OK) {
		out->expires_at = sqlite3_column_int64(st, 0);
		read_user(st, 1, &out->user);
		out->account.id = sqlite3_column_int64(st, 7);
		col_text(st, 8, out->account.name, sizeof(out->account.name));
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_session_delete(struct store *s, const char *token_hash)
{
	return sq_write(sq_of(s), NULL, "DELETE FROM sessions WHERE token_hash = ?", "s",
			token_hash);
}

static int sq_apikey_create(struct store *s, int64_t account_id, const char *name,
			    const char *shown, const char *key_hash, int64_t now, int64_t *id)
{
	return sq_write(sq_of(s), id,
			"INSERT INTO api_keys (account_id, name, shown, key_hash, created_at) "
			"VALUES (?, ?, ?, ?, ?)",
			"isssi", account_id, name, shown, key_hash, now);
}

static int sq_audit_append(struct store *s, const struct store_audit *ev)
{
	return sq_write(sq_of(s), NULL,
			"INSERT INTO audit_log (account_id, at, actor, action, target, detail, ip) "
			"VALUES (NULLIF(?, 0), ?, ?, ?, ?, ?, ?)",
			"iisssss", ev->account_id, ev->at, ev->actor, ev->action, ev->target,
			ev->detail, ev->ip);
}

static int sq_audit_list(struct store *s, int64_t account_id, int limit, store_audit_fn fn,
			 void *arg)
{
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->lock);
	int rc = sq_step(q, &st,
			 "SELECT id, at, account_id, actor, action, target, detail, ip "
			 "FROM audit_log WHERE account_id = ? ORDER BY id DESC LIMIT ?",
			 "id", account_id, limit);
	while (rc == STORE_OK) {
		struct store_audit ev;
		ev.id = sqlite3_column_int64(st, 0);
		ev.at = sqlite3_column_int64(st, 1);
		ev.account_id = sqlite3_column_int64(st, 2);
		col_text(st, 3, ev.actor, sizeof(ev.actor));
		col_text(st, 4, ev.action, sizeof(ev.action));
		col_text(st, 5, ev.target, sizeof(ev.target));
		col_text(st, 6, ev.detail, sizeof(ev.detail));
		col_text(st, 7, ev.ip, sizeof(ev.ip));
		fn(arg, &ev);
		int step = sqlite3_step(st);
		if (step == SQLITE_DONE)
			rc = STORE_NOT_FOUND;
		else if (step != SQLITE_ROW)
			rc = sq_fail(q, "audit list");
	}
	if (st)
		sqlite3_finalize(st);
	pthread_mutex_unlock(&q->lock);
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

/* Runs a query and calls fn for each row through read, with the lock held. */
static int sq_each(struct sq *q, void (*read)(sqlite3_stmt *st, void *row), void *row,
		   int (*fn)(void *arg, const void *row), void *arg, const char *sql,
		   const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	va_start(ap, fmt);
	int rc = sq_vstep(q, &st, sql, fmt, ap);
	va_end(ap);
	while (rc == STORE_OK) {
		read(st, row);
		fn(arg, row);
		int step = sqlite3_step(st);
		if (step == SQLITE_DONE)
			rc = STORE_NOT_FOUND;
		else if (step != SQLITE_ROW)
			rc = sq_fail(q, "list");
	}
	if (st)
		sqlite3_finalize(st);
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

static int sq_sender_auth_get(struct store *s, int64_t account_id, struct store_sender_auth *out)
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

/* An update or delete of one row: STORE_NOT_FOUND when no row matched. A write that can
 * change a policy is counted, so snapshots know they are stale. */
static int sq_update(struct sq *q, bool policy, const char *sql, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&q->lock);
	va_start(ap, fmt);
	int rc = sq_vexec(q, NULL, sql, fmt, ap);
	va_end(ap);
	if (rc == STORE_OK && sqlite3_changes(q->db) == 0)
		rc = STORE_NOT_FOUND;
	if (rc == STORE_OK && policy)
		q->policy_writes++;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_sender_auth_set(struct store *s, int64_t account_id, bool enabled, int64_t user_id,
			      int64_t now)
{
	return sq_update(sq_of(s), true,
			 "UPDATE settings SET sender_auth_enabled = ?, updated_at = ?, "
			 "updated_by = ? WHERE account_id = ?",
			 "diii", enabled ? 1 : 0, now, user_id, account_id);
}

static int sq_senders_add(struct store *s, int64_t account_id, int64_t user_id, int64_t now,
			  const char *const *addresses, size_t n, const char *token_hash,
			  int64_t expires_at, int64_t *ids)
{
	struct sq *q = sq_of(s);
	int64_t batch = 0;
	size_t added = 0;

	pthread_mutex_lock(&q->lock);
	int rc = sq_exec(q, NULL, "BEGIN IMMEDIATE", "");
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
	sq_exec(q, NULL, rc == STORE_OK ? "COMMIT" : "ROLLBACK", "");
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
	col_text(st, 1, x->address, sizeof(x->address));
	col_text(st, 2, status, sizeof(status));
	x->verified = strcmp(status, "verified") == 0;
	col_text(st, 3, x->domain, sizeof(x->domain));
	col_text(st, 4, x->domain_status, sizeof(x->domain_status));
	x->domain_active = sqlite3_column_int(st, 5) != 0;
	col_text(st, 6, x->added_by, sizeof(x->added_by));
	x->added_at = sqlite3_column_int64(st, 7);
	col_text(st, 8, x->verified_by, sizeof(x->verified_by));
	x->verified_at = sqlite3_column_int64(st, 9);
	col_text(st, 10, x->verified_via, sizeof(x->verified_via));
}

static int sq_senders_list(struct store *s, int64_t account_id, store_sender_fn fn, void *arg)
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

static int sq_sender_get(struct store *s, int64_t account_id, int64_t id, struct store_sender *out)
{
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->lock);
	int rc = sq_step(q, &st, SENDER_SELECT "WHERE s.account_id = ? AND s.id = ?", "ii",
			 account_id, id);
	if (rc == STORE_OK) {
		read_sender(st, out);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_sender_verify(struct store *s, int64_t account_id, int64_t id, int64_t user_id,
			    int64_t now)
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

static int sq_sender_delete(struct store *s, int64_t account_id, int64_t id)
{
	return sq_update(sq_of(s), true, "DELETE FROM senders WHERE account_id = ? AND id = ?",
			 "ii", account_id, id);
}

static int sq_domain_add(struct store *s, int64_t account_id, const char *name, const char *status,
			 bool active, int64_t now, int64_t *id)
{
	struct sq *q = sq_of(s);
	pthread_mutex_lock(&q->lock);
	int rc = sq_exec(q, id,
			 "INSERT INTO sending_domains (account_id, name, status, active, "
			 "created_at) VALUES (?, ?, ?, ?, ?)",
			 "issdi", account_id, name, status, active ? 1 : 0, now);
	if (rc == STORE_OK)
		q->policy_writes++;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_domain_set(struct store *s, int64_t account_id, const char *name, const char *status,
			 int active)
{
	return sq_update(sq_of(s), true,
			 "UPDATE sending_domains SET status = COALESCE(?, status),"
			 "  active = CASE WHEN ? < 0 THEN active ELSE ? END "
			 "WHERE account_id = ? AND name = ?",
			 "sddis", status, active, active, account_id, name);
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

static int row_done(void *arg, const void *row)
{
	(void)arg;
	(void)row;
	return 0;
}

static int sq_policy_load(struct store *s, int64_t account_id, struct policy **out)
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
			q, read_policy_sender, p, row_done, NULL,
			"SELECT address, status = 'verified' FROM senders WHERE account_id = ?",
			"i", account_id);
	}
	if (rc == STORE_OK)
		rc = sq_each(
			q, read_policy_domain, p, row_done, NULL,
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

static int sq_policy_stamp(struct store *s, uint64_t *stamp)
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

static void read_user_row(sqlite3_stmt *st, void *row)
{
	read_user(st, 0, row);
}

static int sq_users_list(struct store *s, int64_t account_id, store_user_fn fn, void *arg)
{
	struct sq *q = sq_of(s);
	struct store_user row;
	pthread_mutex_lock(&q->lock);
	int rc = sq_each(q, read_user_row, &row, (int (*)(void *, const void *))fn, arg,
			 "SELECT " USER_COLUMNS " FROM users u WHERE u.account_id = ? AND "
			 "u.disabled_at IS NULL ORDER BY u.email",
			 "i", account_id);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_user_get(struct store *s, int64_t account_id, int64_t id, struct store_user *out)
{
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->lock);
	int rc = sq_step(q, &st,
			 "SELECT " USER_COLUMNS " FROM users u WHERE u.account_id = ? AND u.id = ? "
			 "AND u.disabled_at IS NULL",
			 "ii", account_id, id);
	if (rc == STORE_OK) {
		read_user(st, 0, out);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* Changes or deletes a user unless that leaves the account without an Admin; the count
 * and the change share one transaction so two Admins cannot demote each other at once. */
static int sq_user_change(struct sq *q, int64_t account_id, int64_t id, const char *new_role)
{
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->lock);
	int rc = sq_exec(q, NULL, "BEGIN IMMEDIATE", "");
	if (rc == STORE_OK)
		rc = sq_step(q, &st,
			     "SELECT u.role, (SELECT COUNT(*) FROM users a WHERE a.account_id = "
			     "u.account_id AND a.role = 'admin' AND a.disabled_at IS NULL) "
			     "FROM users u WHERE u.account_id = ? AND u.id = ? AND "
			     "u.disabled_at IS NULL",
			     "ii", account_id, id);
	if (rc == STORE_OK) {
		bool admin = strcmp((const char *)sqlite3_column_text(st, 0), "admin") == 0;
		int admins = sqlite3_column_int(st, 1);
		sqlite3_finalize(st);
		bool stays_admin = new_role && strcmp(new_role, "admin") == 0;
		if (admin && admins <= 1 && !stays_admin)
			rc = STORE_LAST_ADMIN;
	}
	if (rc == STORE_OK && new_role)
		rc = sq_exec(q, NULL, "UPDATE users SET role = ? WHERE account_id = ? AND id = ?",
			     "sii", new_role, account_id, id);
	else if (rc == STORE_OK)
		rc = sq_exec(q, NULL, "DELETE FROM users WHERE account_id = ? AND id = ?", "ii",
			     account_id, id);
	sq_exec(q, NULL, rc == STORE_OK ? "COMMIT" : "ROLLBACK", "");
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_user_set_role(struct store *s, int64_t account_id, int64_t id, enum role role)
{
	return sq_user_change(sq_of(s), account_id, id, role_name(role));
}

static int sq_user_delete(struct store *s, int64_t account_id, int64_t id)
{
	return sq_user_change(sq_of(s), account_id, id, NULL);
}

#define APIKEY_COLUMNS "id, account_id, name, shown, created_at, last_used_at"

static void read_apikey(sqlite3_stmt *st, void *row)
{
	struct store_apikey *k = row;
	k->id = sqlite3_column_int64(st, 0);
	k->account_id = sqlite3_column_int64(st, 1);
	col_text(st, 2, k->name, sizeof(k->name));
	col_text(st, 3, k->shown, sizeof(k->shown));
	k->created_at = sqlite3_column_int64(st, 4);
	k->last_used_at = sqlite3_column_int64(st, 5);
}

static int sq_apikey_list(struct store *s, int64_t account_id, store_apikey_fn fn, void *arg)
{
	struct sq *q = sq_of(s);
	struct store_apikey row;
	pthread_mutex_lock(&q->lock);
	int rc = sq_each(q, read_apikey, &row, (int (*)(void *, const void *))fn, arg,
			 "SELECT " APIKEY_COLUMNS " FROM api_keys WHERE account_id = ? AND "
			 "revoked_at IS NULL ORDER BY id",
			 "i", account_id);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_apikey_lookup(struct store *s, const char *key_hash, struct store_apikey *out)
{
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->lock);
	int rc = sq_step(q, &st,
			 "SELECT " APIKEY_COLUMNS " FROM api_keys WHERE key_hash = ? AND "
			 "revoked_at IS NULL",
			 "s", key_hash);
	if (rc == STORE_OK) {
		read_apikey(st, out);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_apikey_touch(struct store *s, int64_t id, int64_t now)
{
	return sq_write(sq_of(s), NULL, "UPDATE api_keys SET last_used_at = ? WHERE id = ?", "ii",
			now, id);
}

static int sq_apikey_revoke(struct store *s, int64_t account_id, int64_t id, int64_t now)
{
	return sq_update(sq_of(s), false,
			 "UPDATE api_keys SET revoked_at = ? WHERE account_id = ? AND id = ? "
			 "AND revoked_at IS NULL",
			 "iii", now, account_id, id);
}

static int sq_drops_add(struct store *s, const struct store_drop *d, size_t n)
{
	struct sq *q = sq_of(s);
	pthread_mutex_lock(&q->lock);
	int rc = sq_exec(q, NULL, "BEGIN IMMEDIATE", "");
	for (size_t i = 0; i < n && rc == STORE_OK; i++)
		rc = sq_exec(
			q, NULL,
			"INSERT INTO drops (account_id, api_key_id, from_addr, reason, minute, "
			"count) VALUES (?, ?, ?, ?, ?, ?) "
			"ON CONFLICT (account_id, api_key_id, from_addr, reason, minute) "
			"DO UPDATE SET count = count + excluded.count",
			"iissii", d[i].account_id, d[i].api_key_id, d[i].from, d[i].reason,
			d[i].minute, d[i].count);
	sq_exec(q, NULL, rc == STORE_OK ? "COMMIT" : "ROLLBACK", "");
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static void read_drop(sqlite3_stmt *st, void *row)
{
	struct store_drop *d = row;
	d->account_id = sqlite3_column_int64(st, 0);
	d->api_key_id = sqlite3_column_int64(st, 1);
	col_text(st, 2, d->from, sizeof(d->from));
	col_text(st, 3, d->reason, sizeof(d->reason));
	d->minute = sqlite3_column_int64(st, 4);
	d->count = sqlite3_column_int64(st, 5);
}

static int sq_drops_list(struct store *s, int64_t account_id, int limit, store_drop_fn fn,
			 void *arg)
{
	struct sq *q = sq_of(s);
	struct store_drop row;
	pthread_mutex_lock(&q->lock);
	int rc = sq_each(q, read_drop, &row, (int (*)(void *, const void *))fn, arg,
			 "SELECT account_id, api_key_id, from_addr, reason, minute, count "
			 "FROM drops WHERE account_id = ? ORDER BY minute DESC, id DESC LIMIT ?",
			 "id", account_id, limit);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

struct reason_row {
	char reason[40];
	int64_t count;
};

static void read_reason(sqlite3_stmt *st, void *row)
{
	struct reason_row *r = row;
	col_text(st, 0, r->reason, sizeof(r->reason));
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

static int sq_stats(struct store *s, int64_t account_id, int64_t *accepted, store_count_fn fn,
		    void *arg)
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

static int sq_messages_add(struct store *s, const struct store_message *m, size_t n)
{
	struct sq *q = sq_of(s);
	pthread_mutex_lock(&q->lock);
	int rc = sq_exec(q, NULL, "BEGIN IMMEDIATE", "");
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
	if (rc == STORE_OK)
		rc = sq_exec(q, NULL, "COMMIT", "");
	if (rc != STORE_OK)
		sq_exec(q, NULL, "ROLLBACK", "");
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static int sq_messages_recover(struct store *s)
{
	/* One daemon owns a SQLite database, so anything "sending" was cut off by a stop. */
	return sq_write(sq_of(s), NULL,
			"UPDATE messages SET status = 'queued', lease_until = NULL "
			"WHERE status = 'sending'",
			"");
}

static int sq_message_claim(struct store *s, int64_t now, int64_t lease_until,
			    struct store_queued *out)
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
		col_text(st, 1, out->uid, sizeof(out->uid));
		out->account_id = sqlite3_column_int64(st, 2);
		out->api_key_id = sqlite3_column_int64(st, 3);
		out->system = sqlite3_column_int(st, 4) != 0;
		col_text(st, 5, out->from, sizeof(out->from));
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

static int sq_message_progress(struct store *s, int64_t id, int parts_done)
{
	return sq_write(sq_of(s), NULL, "UPDATE messages SET parts_done = ? WHERE id = ?", "di",
			parts_done, id);
}

static int sq_message_finish(struct store *s, int64_t id, const struct store_outcome *o)
{
	return sq_write(sq_of(s), NULL,
			"UPDATE messages SET status = ?, "
			"  next_attempt_at = CASE WHEN ? > 0 THEN ? ELSE next_attempt_at END, "
			"  reason = ?, last_reply = ?, rejected = ?, lease_until = NULL, "
			"  updated_at = ? WHERE id = ?",
			"siisssii", o->status, o->next_attempt_at, o->next_attempt_at, o->reason,
			o->last_reply, o->rejected, o->now, id);
}

#define MESSAGE_COLUMNS                                                                            \
	"uid, from_addr, CASE status WHEN 'sending' THEN 'queued' ELSE status END, system, "       \
	"attempts, recipients, created_at, updated_at, next_attempt_at, reason, last_reply, "      \
	"rejected"

static void read_message(sqlite3_stmt *st, void *row)
{
	struct store_message_info *m = row;
	col_text(st, 0, m->uid, sizeof(m->uid));
	col_text(st, 1, m->from, sizeof(m->from));
	col_text(st, 2, m->status, sizeof(m->status));
	m->system = sqlite3_column_int(st, 3) != 0;
	m->attempts = sqlite3_column_int(st, 4);
	m->recipients = sqlite3_column_int(st, 5);
	m->created_at = sqlite3_column_int64(st, 6);
	m->updated_at = sqlite3_column_int64(st, 7);
	m->next_attempt_at = sqlite3_column_int64(st, 8);
	col_text(st, 9, m->reason, sizeof(m->reason));
	col_text(st, 10, m->last_reply, sizeof(m->last_reply));
	col_text(st, 11, m->rejected, sizeof(m->rejected));
}

static int sq_messages_list(struct store *s, int64_t account_id, const char *status, int limit,
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

static int sq_message_get(struct store *s, int64_t account_id, const char *uid,
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
	col_text(st, 0, p->address, sizeof(p->address));
}

static int call_pending(void *arg, const void *row)
{
	const struct pending_row *p = row;
	(void)arg;
	return p->fn(p->arg, p->address, BATCH_PENDING);
}

static int sq_batch_pending(struct store *s, int64_t account_id, int64_t user_id, int64_t now,
			    const char *token_hash, int64_t expires_at, store_batch_fn fn,
			    void *arg)
{
	struct sq *q = sq_of(s);
	int64_t batch = 0;
	pthread_mutex_lock(&q->lock);
	int rc = sq_exec(q, NULL, "BEGIN IMMEDIATE", "");
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
	sq_exec(q, NULL, rc == STORE_OK ? "COMMIT" : "ROLLBACK", "");
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
	col_text(st, 2, out->account_name, sizeof(out->account_name));
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

static int sq_batch_get(struct store *s, const char *token_hash, struct store_batch *out,
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

static int sq_batch_use(struct store *s, const char *token_hash, int64_t now,
			struct store_batch *out, store_batch_fn fn, void *arg)
{
	struct sq *q = sq_of(s);
	struct batch_use u = {fn, arg, q, now, 0, STORE_OK};
	pthread_mutex_lock(&q->lock);
	int rc = sq_exec(q, NULL, "BEGIN IMMEDIATE", "");
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
	if (usable && rc == STORE_OK)
		rc = sq_exec(q, NULL, "COMMIT", "");
	else
		sq_exec(q, NULL, "ROLLBACK", "");
	if (usable && rc == STORE_OK)
		q->policy_writes++;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static const struct store_ops sq_ops = {
	.close = sq_close,
	.account_create = sq_account_create,
	.account_by_name = sq_account_by_name,
	.user_create = sq_user_create,
	.user_by_email = sq_user_by_email,
	.login_failures = sq_login_failures,
	.login_failure_add = sq_login_failure_add,
	.login_failures_clear = sq_login_failures_clear,
	.session_create = sq_session_create,
	.session_get = sq_session_get,
	.session_delete = sq_session_delete,
	.apikey_create = sq_apikey_create,
	.audit_append = sq_audit_append,
	.audit_list = sq_audit_list,
	.sender_auth_get = sq_sender_auth_get,
	.sender_auth_set = sq_sender_auth_set,
	.senders_add = sq_senders_add,
	.senders_list = sq_senders_list,
	.sender_get = sq_sender_get,
	.sender_verify = sq_sender_verify,
	.sender_delete = sq_sender_delete,
	.domain_add = sq_domain_add,
	.domain_set = sq_domain_set,
	.policy_load = sq_policy_load,
	.policy_stamp = sq_policy_stamp,
	.users_list = sq_users_list,
	.user_get = sq_user_get,
	.user_set_role = sq_user_set_role,
	.user_delete = sq_user_delete,
	.apikey_list = sq_apikey_list,
	.apikey_lookup = sq_apikey_lookup,
	.apikey_touch = sq_apikey_touch,
	.apikey_revoke = sq_apikey_revoke,
	.drops_add = sq_drops_add,
	.drops_list = sq_drops_list,
	.stats = sq_stats,
	.messages_add = sq_messages_add,
	.messages_recover = sq_messages_recover,
	.message_claim = sq_message_claim,
	.message_progress = sq_message_progress,
	.message_finish = sq_message_finish,
	.messages_list = sq_messages_list,
	.message_get = sq_message_get,
	.batch_pending = sq_batch_pending,
	.batch_get = sq_batch_get,
	.batch_use = sq_batch_use,
};

struct store *store_sqlite_open(const char *path, char *err, size_t errlen)
{
	struct sq *q = xcalloc(1, sizeof(*q));
	q->base.ops = &sq_ops;
	pthread_mutex_init(&q->lock, NULL);

	if (sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot open database: %s", path,
			 q->db ? sqlite3_errmsg(q->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(q->db, 5000);
	char *msg = NULL;
	if (sqlite3_exec(
		    q->db,
		    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
		    NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, msg ? msg : "cannot configure database");
		sqlite3_free(msg);
		goto fail;
	}
	char why[400];
	if (migrate(q, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto fail;
	}
	return &q->base;
fail:
	sq_close(&q->base);
	return NULL;
}
