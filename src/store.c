/* The store: opening and closing it, the versioned migrations runner, and the statement
 * helpers its files share. The SQL is written once for every database; the driver under it
 * (db.h) is SQLite (db_sqlite.c) or PostgreSQL (db_pg.c), and nothing here knows which: what
 * the dialects spell differently comes from the driver. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_int.h"
#include "util.h"

struct sq_conn sq_acquire(struct store *s)
{
	return (struct sq_conn){s, s->db->drv->acquire(s->db)};
}

struct sq_conn sq_acquire_read(struct store *s)
{
	const struct db_driver *drv = s->db->drv;
	return (struct sq_conn){s,
				drv->acquire_read ? drv->acquire_read(s->db) : drv->acquire(s->db)};
}

void sq_release(struct sq_conn *c)
{
	c->s->db->drv->release(c->s->db, c->db);
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
	out->drv = c->s->db->drv;
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

/* Sends the writes that follow without waiting for each answer, where the driver can;
 * turning it off collects the answers and returns the first failure. */
static int sq_pipeline(struct sq_conn *c, bool on)
{
	const struct db_driver *drv = c->s->db->drv;
	return drv->pipeline ? drv->pipeline(c->db, on) : STORE_OK;
}

int64_t sq_changes(struct sq_conn *c)
{
	return c->s->db->drv->changes(c->db);
}

void sq_policy_changed(struct store *s)
{
	atomic_fetch_add(&s->policy_writes, 1);
	if (s->db->drv->changed)
		s->db->drv->changed(s->db);
}

int sq_begin(struct sq_conn *c)
{
	return sq_exec(c, NULL, c->s->db->drv->begin_write, "");
}

int sq_begin_read(struct sq_conn *c)
{
	return sq_exec(c, NULL, c->s->db->drv->begin_read, "");
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

int sq_begin_batch(struct sq_conn *c)
{
	int rc = sq_begin(c);
	return rc == STORE_OK ? sq_pipeline(c, true) : rc;
}

int sq_end_batch(struct sq_conn *c, int rc)
{
	int sent = sq_pipeline(c, false);
	return sq_end(c, rc == STORE_OK ? sent : rc);
}

int sq_begin_relaxed(struct sq_conn *c, bool batch)
{
	const struct db_driver *drv = c->s->db->drv;
	int rc = drv->relax_before ? sq_exec(c, NULL, drv->relax_before, "") : STORE_OK;
	if (rc == STORE_OK)
		rc = sq_begin(c);
	if (rc == STORE_OK && drv->relax_inside)
		rc = sq_exec(c, NULL, drv->relax_inside, "");
	if (rc == STORE_OK && batch)
		rc = sq_pipeline(c, true);
	return rc;
}

int sq_end_relaxed(struct sq_conn *c, int rc, bool batch)
{
	const struct db_driver *drv = c->s->db->drv;
	rc = batch ? sq_end_batch(c, rc) : sq_end(c, rc);
	if (drv->relax_after && sq_exec(c, NULL, drv->relax_after, "") != STORE_OK)
		log_error("store: cannot make commits durable again on this connection");
	return rc;
}

int sq_lock(struct sq_conn *c, const char *sql, const char *fmt, ...)
{
	if (!c->s->db->drv->shared)
		return STORE_OK;
	va_list ap;
	va_start(ap, fmt);
	int rc = sq_vexec(c, NULL, sql, fmt, ap);
	va_end(ap);
	return rc;
}

/* Takes a connection and runs one write; the new row id goes to *id when id is not NULL. */
int sq_write(struct store *s, int64_t *id, const char *sql, const char *fmt, ...)
{
	va_list ap;
	struct sq_conn c = sq_acquire(s);
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

int sq_list(struct store *s, sq_read_fn read, void *row, sq_row_fn fn, void *arg, const char *sql,
	    const char *fmt, ...)
{
	va_list ap;
	struct sq_conn c = sq_acquire_read(s);
	va_start(ap, fmt);
	int rc = sq_veach(&c, read, row, fn, arg, sql, fmt, ap);
	va_end(ap);
	sq_release(&c);
	return rc;
}

int sq_get(struct store *s, sq_read_fn read, void *row, const char *sql, const char *fmt, ...)
{
	struct sq_res r;
	va_list ap;
	struct sq_conn c = sq_acquire_read(s);
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
int sq_update(struct store *s, bool policy, const char *sql, const char *fmt, ...)
{
	va_list ap;
	struct sq_conn c = sq_acquire(s);
	va_start(ap, fmt);
	int rc = sq_vexec(&c, NULL, sql, fmt, ap);
	va_end(ap);
	if (rc == STORE_OK && sq_changes(&c) == 0)
		rc = STORE_NOT_FOUND;
	if (rc == STORE_OK && policy)
		sq_policy_changed(s);
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
	const struct db_driver *drv = c->s->db->drv;
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
		if (rc == STORE_OK)
			rc = sq_lock(c, "LOCK TABLE schema_version IN EXCLUSIVE MODE", "");
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

int store_ping(struct store *s)
{
	struct sq_res r;
	struct sq_conn c = sq_acquire_read(s);
	int rc = sq_step(&c, &r, "SELECT 1", "");
	if (rc == STORE_OK)
		sq_done(&r);
	sq_release(&c);
	return rc;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	s->db->drv->close(s->db);
	free(s->claim_sql);
	sq_events_free(s);
	free(s);
}

struct store *store_sql_open(struct db *db, char *err, size_t errlen)
{
	struct store *s = xcalloc(1, sizeof(*s));
	s->db = db;
	atomic_init(&s->policy_writes, 0);
	s->claim_sql = sq_claim_sql(db->drv);
	sq_events_init(s);

	struct sq_conn c = sq_acquire(s);
	int rc = migrate(&c, err, errlen);
	sq_release(&c);
	if (rc < 0) {
		store_close(s);
		return NULL;
	}
	return s;
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
