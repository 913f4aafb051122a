/* Internal to the store: its state and the statement helpers its files (store.c,
 * store_people.c, store_policy.c, store_queue.c, store_domains.c) share. The SQL is written
 * once and runs on every driver of db.h (SQLite 3.40, PostgreSQL 15): `?` placeholders, new
 * ids from RETURNING, ON CONFLICT instead of INSERT OR ..., CASE instead of scalar
 * max()/min(), and no statement that is expected to fail inside a transaction (on
 * PostgreSQL a failure aborts the whole transaction). What the dialects spell differently
 * comes from the driver (db.h). Nothing outside the store files includes this. */
#ifndef POSTERN_STORE_INT_H
#define POSTERN_STORE_INT_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <cjson/cJSON.h>

#include "db.h"
#include "store.h"

struct store {
	struct db *db;
	_Atomic uint64_t policy_writes; /* bumped by every write that can change a policy */
	char *claim_sql;		/* the delivery claim in the driver's dialect */
	/* The same for events (store_events.c): the fan-out after an event's INSERT, and the
	 * webhook deliveries' claim (the endpoint's pick, then its deliveries), each for
	 * deliveries whose lease lapsed [0] and for pending ones [1]. */
	char *fanout_sql;
	char *hook_pick_sql[2];
	char *hook_claim_sql[2];
};

/* A connection held for one call or one transaction, with the store it serves: a driver's
 * connection is its own type, so the store keeps the way back to the driver beside it. */
struct sq_conn {
	struct store *s;
	struct db_conn *db;
};

/* A result on its current row, and its driver. */
struct sq_res {
	const struct db_driver *drv;
	struct db_res *r;
};

/* Takes a connection (waiting for one) and gives it back. A read connection serves reads
 * outside transactions (sq_get, sq_list, snapshots) without waiting for commits. */
struct sq_conn sq_acquire(struct store *s);
struct sq_conn sq_acquire_read(struct store *s);
void sq_release(struct sq_conn *c);

/* Reading the current row: NULL reads as 0, and sq_text as NULL. */
int64_t sq_int(const struct sq_res *r, int col);
const char *sq_text(const struct sq_res *r, int col);
void sq_col_text(const struct sq_res *r, int col, char *dst, size_t n);
/* Moves to the next row: STORE_OK, STORE_NOT_FOUND at the end, or STORE_FAIL. */
int sq_next(struct sq_res *r);
void sq_done(struct sq_res *r);
/* Steps a result to its end and finishes it: a write's RETURNING rows are final (and its
 * changes made, on SQLite) only once it has run to its end. */
int sq_finish(struct sq_res *r);

/* Statement helpers on a held connection (sq_write, sq_list, sq_get and sq_update take one).
 * sq_step runs sql and leaves *out on its first row (STORE_OK; finish it with sq_done),
 * STORE_NOT_FOUND without a row, STORE_CONFLICT on a unique or foreign-key violation. */
int sq_vstep(struct sq_conn *c, struct sq_res *out, const char *sql, const char *fmt, va_list ap);
int sq_step(struct sq_conn *c, struct sq_res *out, const char *sql, const char *fmt, ...);
/* Runs a statement to its end. With id, the statement says RETURNING id and the id is read
 * from its row: STORE_NOT_FOUND when it returned none (ON CONFLICT DO NOTHING). */
int sq_vexec(struct sq_conn *c, int64_t *id, const char *sql, const char *fmt, va_list ap);
int sq_exec(struct sq_conn *c, int64_t *id, const char *sql, const char *fmt, ...);
int sq_write(struct store *s, int64_t *id, const char *sql, const char *fmt, ...);
/* Rows changed by the connection's last write. */
int64_t sq_changes(struct sq_conn *c);
/* Reads the current row into row. */
typedef void (*sq_read_fn)(const struct sq_res *r, void *row);
/* Receives each row read. */
typedef int (*sq_row_fn)(void *arg, const void *row);
/* Runs a query and calls fn for each row read through read. */
int sq_each(struct sq_conn *c, sq_read_fn read, void *row, sq_row_fn fn, void *arg, const char *sql,
	    const char *fmt, ...);
/* The same, taking a connection. */
int sq_list(struct store *s, sq_read_fn read, void *row, sq_row_fn fn, void *arg, const char *sql,
	    const char *fmt, ...);
/* Takes a connection and reads the query's first row into row; STORE_NOT_FOUND without one. */
int sq_get(struct store *s, sq_read_fn read, void *row, const char *sql, const char *fmt, ...);
/* One update or delete: STORE_NOT_FOUND when no row matched. */
int sq_update(struct store *s, bool policy, const char *sql, const char *fmt, ...);
int sq_row_done(void *arg, const void *row);
/* Counts a write that can change a policy, so snapshots know they are stale. */
void sq_policy_changed(struct store *s);
/* Begins a write transaction; sq_end commits it when rc is STORE_OK (returning the commit's
 * own result, since the commit is where a full disk shows) and rolls it back otherwise. */
int sq_begin(struct sq_conn *c);
/* Begins a read-only transaction whose reads all see one snapshot. */
int sq_begin_read(struct sq_conn *c);
int sq_end(struct sq_conn *c, int rc);
/* The same for a batch of writes, sent without waiting for each answer where the driver can
 * (PostgreSQL); sq_end_batch collects the answers, and the first failure rolls back. */
int sq_begin_batch(struct sq_conn *c);
int sq_end_batch(struct sq_conn *c, int rc);
/* A write transaction (a batch when batch) that may be lost in a crash, though never after a
 * later commit survives: for writes that are done again when lost (a webhook claim, a
 * result that only saves a repeated POST), so they do not wait for the disk. */
int sq_begin_relaxed(struct sq_conn *c, bool batch);
int sq_end_relaxed(struct sq_conn *c, int rc, bool batch);
/* Locks the rows a transaction counts before it writes (a SELECT ... FOR NO KEY UPDATE, or a
 * LOCK TABLE, in PostgreSQL's syntax), where several gateways write at once (the driver's
 * `shared`); elsewhere the write transaction's begin already keeps every other writer out,
 * and the statement does not run. */
int sq_lock(struct sq_conn *c, const char *sql, const char *fmt, ...);

/* store_confirm.c: verifies a pending sender whose account's mode asks nothing more of it,
 * with its sender.verified event (via: "panel", "link", "owner" or "mode"); *done tells. */
int sq_sender_complete(struct sq_conn *c, int64_t account_id, int64_t id, const char *via,
		       int64_t user_id, int64_t now, bool *done);

/* store_events.c: writes an event on a held connection (in the caller's transaction), with
 * one delivery for each enabled endpoint of the account that wants it. message_uid and
 * recipient may be NULL; data is JSON object text (NULL for {}). */
int sq_event(struct sq_conn *c, int64_t account_id, const char *type, const char *message_uid,
	     const char *recipient, const char *data, int64_t now);
/* The same for an event of the message with this row id (its account and uid), and for
 * n of them. Postern's own mail has none: its callers pass none. */
int sq_message_event(struct sq_conn *c, int64_t message_id, const struct store_event *ev,
		     int64_t now);
int sq_message_events(struct sq_conn *c, int64_t message_id, const struct store_event *ev, size_t n,
		      int64_t now);
/* An account event whose data is the object data (taken and freed), and one whose data is
 * one or two string fields (k2 NULL: one). */
int sq_event_obj(struct sq_conn *c, int64_t account_id, const char *type, cJSON *data, int64_t now);
int sq_event_str(struct sq_conn *c, int64_t account_id, const char *type, int64_t now,
		 const char *k1, const char *v1, const char *k2, const char *v2);
/* Builds the events' statements in the driver's dialect (at open), and frees them. */
void sq_events_init(struct store *s);
void sq_events_free(struct store *s);

/* store_suppress.c: adds entries to the account's suppression list on a held connection
 * (in the caller's transaction); one listed already stays. *added (may be NULL) counts the
 * new ones. */
int sq_suppress_add(struct sq_conn *c, int64_t account_id, const struct store_suppression *e,
		    size_t n, int64_t now, int *added);

/* store_queue.c: the delivery claim, in the dialect of drv (built once, at open). */
char *sq_claim_sql(const struct db_driver *drv);

#endif
