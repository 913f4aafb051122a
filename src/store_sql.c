/* The store's SQL layer, written once for every database: the helpers its files share, the
 * versioned migrations runner and the table of operations. The driver under it (db.h) is
 * SQLite (db_sqlite.c) or PostgreSQL (db_pg.c); nothing here knows which, but for the few
 * statements that must differ (sq_begin, sq_lock, the delivery claim). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_sql.h"
#include "util.h"

struct sq_conn sq_acquire(struct sq *q)
{
	return (struct sq_conn){q, q->db->drv->acquire(q->db)};
}

struct sq_conn sq_acquire_read(struct sq *q)
{
	const struct db_driver *drv = q->db->drv;
	return (struct sq_conn){q,
				drv->acquire_read ? drv->acquire_read(q->db) : drv->acquire(q->db)};
}

void sq_release(struct sq_conn *c)
{
	c->q->db->drv->release(c->q->db, c->db);
}

int64_t sq_int(const struct sq_res *r, int col)
{
	return r->drv->col_int(r->r, col);
}

const char *sq_text(const struct sq_res *r, int col)
{
	return r->drv->col_text(r->r, col);
}

void sq_col_text(const struct sq_res *r, int col, char *dst, size_t n)
{
	const char *t = sq_text(r, col);
	if (util_copy(dst, n, t ? t : "") < 0)
		util_copy(dst, n, "");
}

int sq_next(struct sq_res *r)
{
	return r->drv->next(r->r);
}

void sq_done(struct sq_res *r)
{
	if (r->r)
		r->drv->done(r->r);
	r->r = NULL;
}

int sq_vstep(struct sq_conn *c, struct sq_res *out, const char *sql, const char *fmt, va_list ap)
{
	out->drv = c->q->db->drv;
	out->r = NULL;
	int rc = out->drv->query(c->db, &out->r, sql, fmt, ap);
	if (rc != STORE_OK)
		out->r = NULL;
	return rc;
}

int sq_step(struct sq_conn *c, struct sq_res *out, const char *sql, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = sq_vstep(c, out, sql, fmt, ap);
	va_end(ap);
	return rc;
}

int sq_finish(struct sq_res *r)
{
	int rc;
	while ((rc = sq_next(r)) == STORE_OK)
		;
	sq_done(r);
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

int sq_vexec(struct sq_conn *c, int64_t *id, const char *sql, const char *fmt, va_list ap)
{
	struct sq_res r;
	int rc = sq_vstep(c, &r, sql, fmt, ap);
	if (rc == STORE_OK) {
		if (id)
			*id = sq_int(&r, 0);
		return sq_finish(&r);
	}
	return rc == STORE_NOT_FOUND && !id ? STORE_OK : rc;
}

int sq_exec(struct sq_conn *c, int64_t *id, const char *sql, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = sq_vexec(c, id, sql, fmt, ap);
	va_end(ap);
	return rc;
}

int sq_pipeline(struct sq_conn *c, bool on)
{
	const struct db_driver *drv = c->q->db->drv;
	return drv->pipeline ? drv->pipeline(c->db, on) : STORE_OK;
}

int64_t sq_changes(struct sq_conn *c)
{
	return c->q->db->drv->changes(c->db);
}

void sq_policy_changed(struct sq *q)
{
	atomic_fetch_add(&q->policy_writes, 1);
	if (q->db->drv->changed)
		q->db->drv->changed(q->db);
}

int sq_begin(struct sq_conn *c)
{
	return sq_exec(c, NULL, c->q->pg ? "BEGIN" : "BEGIN IMMEDIATE", "");
}

int sq_end(struct sq_conn *c, int rc)
{
	if (rc == STORE_OK)
		rc = sq_exec(c, NULL, "COMMIT", "");
	/* A failed COMMIT (a full disk) may already have ended the transaction; a ROLLBACK
	 * outside one is no error to the drivers. */
	if (rc != STORE_OK)
		sq_exec(c, NULL, "ROLLBACK", "");
	return rc;
}

int sq_lock(struct sq_conn *c, const char *sql, const char *fmt, ...)
{
	if (!c->q->pg)
		return STORE_OK;
	va_list ap;
	va_start(ap, fmt);
	int rc = sq_vexec(c, NULL, sql, fmt, ap);
	va_end(ap);
	return rc;
}

/* Takes a connection and runs one write; the new row id goes to *id when id is not NULL. */
int sq_write(struct sq *q, int64_t *id, const char *sql, const char *fmt, ...)
{
	va_list ap;
	struct sq_conn c = sq_acquire(q);
	va_start(ap, fmt);
	int rc = sq_vexec(&c, id, sql, fmt, ap);
	va_end(ap);
	sq_release(&c);
	return rc;
}

/* Runs a query and calls fn for each row through read. */
static int sq_veach(struct sq_conn *c, sq_read_fn read, void *row, sq_row_fn fn, void *arg,
		    const char *sql, const char *fmt, va_list ap)
{
	struct sq_res r;
	int rc = sq_vstep(c, &r, sql, fmt, ap);
	while (rc == STORE_OK) {
		read(&r, row);
		fn(arg, row);
		rc = sq_next(&r);
	}
	sq_done(&r);
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

int sq_each(struct sq_conn *c, sq_read_fn read, void *row, sq_row_fn fn, void *arg, const char *sql,
	    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = sq_veach(c, read, row, fn, arg, sql, fmt, ap);
	va_end(ap);
	return rc;
}

int sq_list(struct sq *q, sq_read_fn read, void *row, sq_row_fn fn, void *arg, const char *sql,
	    const char *fmt, ...)
{
	va_list ap;
	struct sq_conn c = sq_acquire_read(q);
	va_start(ap, fmt);
	int rc = sq_veach(&c, read, row, fn, arg, sql, fmt, ap);
	va_end(ap);
	sq_release(&c);
	return rc;
}

int sq_get(struct sq *q, sq_read_fn read, void *row, const char *sql, const char *fmt, ...)
{
	struct sq_res r;
	va_list ap;
	struct sq_conn c = sq_acquire_read(q);
	va_start(ap, fmt);
	int rc = sq_vstep(&c, &r, sql, fmt, ap);
	va_end(ap);
	if (rc == STORE_OK) {
		read(&r, row);
		sq_done(&r);
	}
	sq_release(&c);
	return rc;
}

/* An update or delete of one row: STORE_NOT_FOUND when no row matched. A write that can
 * change a policy is counted, so snapshots know they are stale. */
int sq_update(struct sq *q, bool policy, const char *sql, const char *fmt, ...)
{
	va_list ap;
	struct sq_conn c = sq_acquire(q);
	va_start(ap, fmt);
	int rc = sq_vexec(&c, NULL, sql, fmt, ap);
	va_end(ap);
	if (rc == STORE_OK && sq_changes(&c) == 0)
		rc = STORE_NOT_FOUND;
	if (rc == STORE_OK && policy)
		sq_policy_changed(q);
	sq_release(&c);
	return rc;
}

int sq_row_done(void *arg, const void *row)
{
	(void)arg;
	(void)row;
	return 0;
}

static int schema_current(struct sq_conn *c, int *version)
{
	struct sq_res r;
	if (sq_step(c, &r, "SELECT COALESCE(MAX(version), 0) FROM schema_version", "") != STORE_OK)
		return STORE_FAIL;
	*version = (int)sq_int(&r, 0);
	sq_done(&r);
	return STORE_OK;
}

/* Applies the migrations this database lacks (the driver's, in its dialect), each with its
 * version row in one transaction. Another process or node may migrate at the same time, so
 * the version is read under the write lock: BEGIN IMMEDIATE on SQLite, a lock on the
 * version table on PostgreSQL. */
static int migrate(struct sq_conn *c, char *err, size_t errlen)
{
	const struct db_driver *drv = c->q->db->drv;
	int known = drv->nmigrations, version = 0;
	static const char create[] =
		"CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)";

	/* Nodes starting together on an empty PostgreSQL database race to create the table
	 * (IF NOT EXISTS does not keep them apart there): a loser's error means that another
	 * node's table exists now, so the second try finds it. */
	int rc = sq_exec(c, NULL, create, "");
	if (rc != STORE_OK)
		rc = sq_exec(c, NULL, create, "");
	if (rc != STORE_OK) {
		snprintf(err, errlen, "cannot create the schema_version table");
		return -1;
	}
	while (rc == STORE_OK) {
		rc = sq_begin(c);
		if (rc == STORE_OK && c->q->pg)
			rc = sq_exec(c, NULL, "LOCK TABLE schema_version IN EXCLUSIVE MODE", "");
		if (rc == STORE_OK)
			rc = schema_current(c, &version);
		if (rc == STORE_OK && version >= known) {
			sq_end(c, STORE_NOT_FOUND); /* nothing to write */
			break;
		}
		if (rc == STORE_OK)
			rc = sq_exec(c, NULL, drv->migrations[version], "");
		if (rc == STORE_OK)
			rc = sq_exec(c, NULL, "INSERT INTO schema_version (version) VALUES (?)",
				     "d", version + 1);
		rc = sq_end(c, rc);
		if (rc == STORE_OK)
			log_info("store: schema migrated to version %d", version + 1);
	}
	if (rc != STORE_OK) {
		snprintf(err, errlen, "cannot migrate the schema to version %d", version + 1);
		return -1;
	}
	if (version > known) {
		snprintf(err, errlen,
			 "the database schema is version %d, newer than this postern knows (%d); "
			 "upgrade postern",
			 version, known);
		return -1;
	}
	return 0;
}

static void sq_close(struct store *s)
{
	struct sq *q = sq_of(s);
	q->db->drv->close(q->db);
	pthread_mutex_destroy(&q->keys_lock);
	free(q);
}

static const struct store_ops sq_ops = {
	.close = sq_close,
	.account_create = sq_account_create,
	.account_by_name = sq_account_by_name,
	.account_count = sq_account_count,
	.user_create = sq_user_create,
	.user_by_login = sq_user_by_login,
	.login_attempt = sq_login_attempt,
	.login_forgive = sq_login_forgive,
	.login_failed = sq_login_failed,
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
	.messages_claim = sq_messages_claim,
	.message_progress = sq_message_progress,
	.messages_finish = sq_messages_finish,
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
	.master_check = sq_master_check,
};

struct store *store_sql_open(struct db *db, char *err, size_t errlen)
{
	struct sq *q = xcalloc(1, sizeof(*q));
	q->base.ops = &sq_ops;
	q->db = db;
	q->pg = db->drv->kind == DB_POSTGRES;
	atomic_init(&q->policy_writes, 0);
	pthread_mutex_init(&q->keys_lock, NULL);

	struct sq_conn c = sq_acquire(q);
	int rc = migrate(&c, err, errlen);
	sq_release(&c);
	if (rc < 0) {
		sq_close(&q->base);
		return NULL;
	}
	return &q->base;
}

struct store *store_sqlite_open(const char *path, char *err, size_t errlen)
{
	struct db *db = db_sqlite_open(path, err, errlen);
	if (!db)
		return NULL;
	char why[400];
	struct store *s = store_sql_open(db, why, sizeof(why));
	if (!s)
		snprintf(err, errlen, "%s: %s", path, why);
	return s;
}

/* The conninfo may hold a password, so it is never part of an error. */
struct store *store_pg_open(const char *conninfo, char *err, size_t errlen)
{
	struct db *db = db_pg_open(conninfo, err, errlen);
	return db ? store_sql_open(db, err, errlen) : NULL;
}
