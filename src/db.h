/* The SQL seam under the store: the store's queries are written once (store*.c) and run
 * on SQLite (db_sqlite.c) or PostgreSQL (db_pg.c) through this driver interface. SQL uses
 * `?` placeholders; arguments are described by a format string: 'i' int64_t, 'd' int,
 * 's' text (NULL binds NULL). Results come back as STORE_* codes (store.h). */
#ifndef POSTERN_DB_H
#define POSTERN_DB_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;	/* a database: one connection (SQLite) or a pool (PostgreSQL) */
struct db_conn; /* one connection, held by one thread for a call or a transaction */
struct db_res;	/* a result, positioned on its current row */

struct db_driver {
	/* The dialect, for the little the store's SQL cannot write once. begin_write starts a
	 * write transaction (SQLite's BEGIN IMMEDIATE takes the write lock at once);
	 * begin_read a read-only one whose reads all see one snapshot; skip_locked ends a
	 * SELECT that locks the rows it picks and passes over those that other transactions
	 * hold ("" where writers take turns anyway). */
	const char *begin_write;
	const char *begin_read;
	const char *skip_locked;
	/* The id the connection's last INSERT made, as an SQL expression, for a statement
	 * that follows it in a batch without waiting for its answer. */
	const char *last_id;
	/* A write transaction whose commit need not reach the disk before the next one that
	 * does (a lost one is redone): relax_before and relax_after run around it (NULL: none),
	 * relax_inside right after its BEGIN. */
	const char *relax_before;
	const char *relax_after;
	const char *relax_inside;
	/* Several gateways may share the database and write at once: a transaction locks the
	 * rows it counts before it writes, and a message "sending" may be another node's. */
	bool shared;
	/* Takes a connection for this thread (waiting for one) and gives it back. */
	struct db_conn *(*acquire)(struct db *db);
	/* A connection for reads only, which need not wait for writes (NULL: acquire). */
	struct db_conn *(*acquire_read)(struct db *db);
	void (*release)(struct db *db, struct db_conn *c);
	/* Runs sql. STORE_OK with *res on the first row (finish it with done), STORE_NOT_FOUND
	 * when there is no row (also after a write without RETURNING), STORE_CONFLICT on a
	 * unique or foreign-key violation, STORE_REFUSED when the database refuses the row
	 * itself (any other constraint, a trigger's abort, a value it cannot hold: the
	 * statement's own data is at fault), STORE_FAIL otherwise (the database unreachable,
	 * full or busy; logged). next, pipeline and COMMIT answer the same way. */
	int (*query)(struct db_conn *c, struct db_res **res, const char *sql, const char *fmt,
		     va_list ap);
	/* Moves to the next row: STORE_OK, STORE_NOT_FOUND at the end, or STORE_FAIL. */
	int (*next)(struct db_res *r);
	void (*done)(struct db_res *r);
	/* A column of the current row: NULL reads as 0 and as NULL. Booleans read as 0 or 1. */
	int64_t (*col_int)(struct db_res *r, int col);
	const char *(*col_text)(struct db_res *r, int col);
	/* Rows changed by the connection's last write. */
	int64_t (*changes)(struct db_conn *c);
	/* A value that moves when another process (or node) commits a change to a policy
	 * table. Cheap: called on every send. */
	int (*stamp)(struct db *db, uint64_t *stamp);
	/* Optional: this process committed such a change (for drivers whose stamp other
	 * processes on the machine read). */
	void (*changed)(struct db *db);
	/* The schema, as migrations from version i to i+1, in this database's dialect. */
	const char *const *migrations;
	int nmigrations;
	void (*close)(struct db *db);
	/* Optional (NULL: statements simply run one by one). With on, the writes that follow
	 * are sent without waiting for each answer and return STORE_NOT_FOUND; turning it off
	 * waits for them all and returns the first failure. For batches of inserts. */
	int (*pipeline)(struct db_conn *c, bool on);
};

struct db {
	const struct db_driver *drv;
};

/* Opens a SQLite database file (created if missing), WAL, synchronous=FULL. */
struct db *db_sqlite_open(const char *path, char *err, size_t errlen);
/* Connects to PostgreSQL with a libpq conninfo string. */
struct db *db_pg_open(const char *conninfo, char *err, size_t errlen);

#endif
