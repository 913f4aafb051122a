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
#include "store_sqlite.h"
#include "util.h"

/* Each entry moves the schema from version i to i+1. Never edit a released entry; append.
 * Tables whose rows are deleted use AUTOINCREMENT: an id is never given to a new row, so a
 * request that read a row cannot act on its successor. */
static const char *const migrations[] = {
	"CREATE TABLE accounts ("
	"  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);"
	"CREATE TABLE users ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
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
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL, shown TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,"
	"  created_at INTEGER NOT NULL, last_used_at INTEGER, revoked_at INTEGER);"
	"CREATE INDEX api_keys_account ON api_keys(account_id);"
	"CREATE TABLE settings ("
	"  account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,"
	"  sender_auth_enabled INTEGER NOT NULL DEFAULT 0,"
	"  updated_at INTEGER, updated_by INTEGER REFERENCES users(id) ON DELETE SET NULL);"
	"CREATE TABLE sending_domains ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'pending'"
	"    CHECK (status IN ('pending','verified','failed')),"
	"  active INTEGER NOT NULL DEFAULT 1,"
	"  token TEXT NOT NULL," /* the ownership record's value, unique per account */
	/* Marked verified by an operator (postern domain add|set --verified): the
	 * scheduler leaves it alone; an explicit check still looks. */
	"  manual INTEGER NOT NULL DEFAULT 0,"
	"  created_at INTEGER NOT NULL, checked_at INTEGER, check_error TEXT,"
	"  missing_since INTEGER," /* first check that missed the records of a verified domain */
	"  records TEXT,"	   /* JSON: each record's status at the last check */
	"  UNIQUE (account_id, name));"
	"CREATE TABLE dkim_keys ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  domain_id INTEGER NOT NULL REFERENCES sending_domains(id) ON DELETE CASCADE,"
	"  selector TEXT NOT NULL, private_sealed TEXT NOT NULL, public_key TEXT NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('active','next','retired')),"
	"  verified INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,"
	"  retired_at INTEGER,"
	"  UNIQUE (domain_id, selector));"
	"CREATE TABLE senders ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
	"  address TEXT NOT NULL, domain TEXT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending','verified')),"
	"  added_by INTEGER REFERENCES users(id) ON DELETE SET NULL, added_at INTEGER NOT NULL,"
	"  verified_by INTEGER REFERENCES users(id) ON DELETE SET NULL, verified_at INTEGER,"
	"  verified_via TEXT CHECK (verified_via IN ('panel','link')),"
	"  UNIQUE (account_id, address));"
	"CREATE TABLE verification_tokens ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
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

int sq_fail(struct sq *q, const char *what)
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
int sq_vstep(struct sq *q, sqlite3_stmt **out, const char *sql, const char *fmt, va_list ap)
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

int sq_step(struct sq *q, sqlite3_stmt **out, const char *sql, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = sq_vstep(q, out, sql, fmt, ap);
	va_end(ap);
	return rc;
}

/* Runs a statement that returns no rows, with the lock held. */
int sq_vexec(struct sq *q, int64_t *id, const char *sql, const char *fmt, va_list ap)
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

int sq_exec(struct sq *q, int64_t *id, const char *sql, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = sq_vexec(q, id, sql, fmt, ap);
	va_end(ap);
	return rc;
}

int sq_begin(struct sq *q)
{
	return sq_exec(q, NULL, "BEGIN IMMEDIATE", "");
}

int sq_end(struct sq *q, int rc)
{
	if (rc == STORE_OK)
		rc = sq_exec(q, NULL, "COMMIT", "");
	/* A failed COMMIT (a full disk) may already have rolled the transaction back. */
	if (rc != STORE_OK && !sqlite3_get_autocommit(q->db))
		sq_exec(q, NULL, "ROLLBACK", "");
	return rc;
}

/* Takes the lock and runs one write; the new row id goes to *id when id is not NULL. */
int sq_write(struct sq *q, int64_t *id, const char *sql, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&q->lock);
	va_start(ap, fmt);
	int rc = sq_vexec(q, id, sql, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

void sq_col_text(sqlite3_stmt *st, int col, char *dst, size_t n)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	if (util_copy(dst, n, t ? (const char *)t : "") < 0)
		util_copy(dst, n, "");
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

void sq_close(struct store *s)
{
	struct sq *q = sq_of(s);
	sqlite3_close(q->db);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

/* Runs a query and calls fn for each row through read, with the lock held. */
static int sq_veach(struct sq *q, sq_read_fn read, void *row, sq_row_fn fn, void *arg,
		    const char *sql, const char *fmt, va_list ap)
{
	sqlite3_stmt *st;
	int rc = sq_vstep(q, &st, sql, fmt, ap);
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

int sq_each(struct sq *q, sq_read_fn read, void *row, sq_row_fn fn, void *arg, const char *sql,
	    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = sq_veach(q, read, row, fn, arg, sql, fmt, ap);
	va_end(ap);
	return rc;
}

int sq_list(struct sq *q, sq_read_fn read, void *row, sq_row_fn fn, void *arg, const char *sql,
	    const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&q->lock);
	va_start(ap, fmt);
	int rc = sq_veach(q, read, row, fn, arg, sql, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int sq_get(struct sq *q, sq_read_fn read, void *row, const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	pthread_mutex_lock(&q->lock);
	va_start(ap, fmt);
	int rc = sq_vstep(q, &st, sql, fmt, ap);
	va_end(ap);
	if (rc == STORE_OK) {
		read(st, row);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* An update or delete of one row: STORE_NOT_FOUND when no row matched. A write that can
 * change a policy is counted, so snapshots know they are stale. */
int sq_update(struct sq *q, bool policy, const char *sql, const char *fmt, ...)
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

int sq_row_done(void *arg, const void *row)
{
	(void)arg;
	(void)row;
	return 0;
}

static const struct store_ops sq_ops = {
	.close = sq_close,
	.account_create = sq_account_create,
	.account_by_name = sq_account_by_name,
	.user_create = sq_user_create,
	.user_by_email = sq_user_by_email,
	.login_attempt = sq_login_attempt,
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
	.domain_create = sq_domain_create,
	.domain_set = sq_domain_set,
	.policy_load = sq_policy_load,
	.policy_stamp = sq_policy_stamp,
	.users_list = sq_users_list,
	.user_get = sq_user_get,
	.user_set_role = sq_user_set_role,
	.user_delete = sq_user_delete,
	.user_set_password = sq_user_set_password,
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
	.domains_list = sq_domains_list,
	.domain_get = sq_domain_get,
	.domain_delete = sq_domain_delete,
	.domain_set_active = sq_domain_set_active,
	.domain_checked = sq_domain_checked,
	.domains_due = sq_domains_due,
	.dkim_rotate = sq_dkim_rotate,
	.dkim_signing_key = sq_dkim_signing_key,
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
