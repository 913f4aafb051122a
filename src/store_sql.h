/* Internal to the SQL store: the store's state, the statement helpers its files share, and
 * the functions each file contributes to its store_ops. The SQL is written once and runs on
 * every driver of db.h (SQLite 3.40, PostgreSQL 15): `?` placeholders, new ids from
 * RETURNING, ON CONFLICT instead of INSERT OR ..., CASE instead of scalar max()/min(), and
 * no statement that is expected to fail inside a transaction (on PostgreSQL a failure aborts
 * the whole transaction). Nothing outside store_sql*.c includes this. */
#ifndef POSTERN_STORE_SQL_H
#define POSTERN_STORE_SQL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "db.h"
#include "store.h"

#define SQ_KEYS 256 /* API keys remembered; a power of two */

/* An API key found by its hash, valid while the policy stamp (which revocations move on
 * every node) is the one it was read under. */
struct sq_key {
	char hash[AUTH_HASH_HEX];
	uint64_t stamp;
	struct store_apikey key;
};

struct sq {
	struct store base;
	struct db *db;
	bool pg;			/* db->drv->kind == DB_POSTGRES */
	_Atomic uint64_t policy_writes; /* bumped by every write that can change a policy */
	pthread_mutex_t keys_lock;
	struct sq_key keys[SQ_KEYS];
};

static inline struct sq *sq_of(struct store *s)
{
	return (struct sq *)s;
}

/* A connection held for one call or one transaction, with the store it serves: a driver's
 * connection is its own type, so the store keeps the way back to the driver beside it. */
struct sq_conn {
	struct sq *q;
	struct db_conn *db;
};

/* A result on its current row, and its driver. */
struct sq_res {
	const struct db_driver *drv;
	struct db_res *r;
};

/* Takes a connection (waiting for one) and gives it back. A read connection serves reads
 * outside transactions (sq_get, sq_list, snapshots) without waiting for commits. */
struct sq_conn sq_acquire(struct sq *q);
struct sq_conn sq_acquire_read(struct sq *q);
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
int sq_write(struct sq *q, int64_t *id, const char *sql, const char *fmt, ...);
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
int sq_list(struct sq *q, sq_read_fn read, void *row, sq_row_fn fn, void *arg, const char *sql,
	    const char *fmt, ...);
/* Takes a connection and reads the query's first row into row; STORE_NOT_FOUND without one. */
int sq_get(struct sq *q, sq_read_fn read, void *row, const char *sql, const char *fmt, ...);
/* One update or delete: STORE_NOT_FOUND when no row matched. */
int sq_update(struct sq *q, bool policy, const char *sql, const char *fmt, ...);
int sq_row_done(void *arg, const void *row);
/* Counts a write that can change a policy, so snapshots know they are stale. */
void sq_policy_changed(struct sq *q);
/* Begins a write transaction; sq_end commits it when rc is STORE_OK (returning the commit's
 * own result, since the commit is where a full disk shows) and rolls it back otherwise. */
int sq_begin(struct sq_conn *c);
/* Sends the writes that follow without waiting for each answer, where the driver can
 * (PostgreSQL); turning it off collects the answers and returns the first failure. */
int sq_pipeline(struct sq_conn *c, bool on);
int sq_end(struct sq_conn *c, int rc);
/* Locks the rows a transaction counts before it writes, with a SELECT ... FOR UPDATE that
 * runs on PostgreSQL only, where several nodes write at once; on SQLite the transaction's
 * BEGIN IMMEDIATE already keeps every other writer out. */
int sq_lock(struct sq_conn *c, const char *sql, const char *fmt, ...);

/* store_sql_people.c: accounts, users, sessions, API keys, the audit log. */
int sq_account_create(struct store *s, const char *name, int64_t now, int64_t *id);
int sq_account_count(struct store *s, int64_t *count);
int sq_account_by_name(struct store *s, const char *name, struct store_account *out);
int sq_user_create(struct store *s, int64_t account_id, const char *email,
		   const char *password_hash, enum role role, int64_t now, int64_t *id);
int sq_user_by_login(struct store *s, const char *account, const char *email,
		     struct store_user *out);
int sq_login_attempt(struct store *s, const struct store_throttle *t, size_t n, int64_t now,
		     int64_t forget_before, int *failures, int64_t *retry_after);
int sq_login_forgive(struct store *s, const struct store_throttle *t, bool all);
int sq_login_failed(struct store *s, const struct store_throttle *t, int64_t now);
int sq_session_create(struct store *s, const char *token_hash, int64_t user_id, int64_t now,
		      int64_t expires_at);
int sq_session_get(struct store *s, const char *token_hash, int64_t now, struct store_session *out);
int sq_session_delete(struct store *s, const char *token_hash);
int sq_apikey_create(struct store *s, int64_t account_id, const char *name, const char *shown,
		     const char *key_hash, int64_t now, int64_t *id);
int sq_audit_append(struct store *s, const struct store_audit *ev);
int sq_audit_list(struct store *s, int64_t account_id, int limit, store_audit_fn fn, void *arg);
int sq_users_list(struct store *s, int64_t account_id, store_user_fn fn, void *arg);
int sq_user_get(struct store *s, int64_t account_id, int64_t id, struct store_user *out);
int sq_user_set_role(struct store *s, int64_t account_id, int64_t id, enum role role);
int sq_user_delete(struct store *s, int64_t account_id, int64_t id);
int sq_user_set_password(struct store *s, int64_t account_id, int64_t id, const char *password_hash,
			 const char *keep_session_hash);
int sq_apikey_list(struct store *s, int64_t account_id, store_apikey_fn fn, void *arg);
int sq_apikey_lookup(struct store *s, const char *key_hash, struct store_apikey *out);
int sq_apikey_touch(struct store *s, int64_t id, int64_t now);
int sq_apikey_revoke(struct store *s, int64_t account_id, int64_t id, int64_t now);

/* store_sql_mail.c: sender settings, senders and their batches, policy snapshots, the
 * message queue, drops and stats. */
int sq_sender_auth_get(struct store *s, int64_t account_id, struct store_sender_auth *out);
int sq_sender_auth_set(struct store *s, int64_t account_id, bool enabled, int64_t user_id,
		       int64_t now);
int sq_senders_add(struct store *s, int64_t account_id, int64_t user_id, int64_t now,
		   const char *const *addresses, size_t n, struct store_batch_new *b, int64_t *ids);
int sq_senders_list(struct store *s, int64_t account_id, store_sender_fn fn, void *arg);
int sq_sender_get(struct store *s, int64_t account_id, int64_t id, struct store_sender *out);
int sq_sender_verify(struct store *s, int64_t account_id, int64_t id, int64_t user_id, int64_t now);
int sq_sender_delete(struct store *s, int64_t account_id, int64_t id);
int sq_policy_load(struct store *s, int64_t account_id, struct policy **out);
int sq_policy_stamp(struct store *s, uint64_t *stamp);
int sq_drops_add(struct store *s, const struct store_drop *d, size_t n);
int sq_drops_list(struct store *s, int64_t account_id, int limit, store_drop_fn fn, void *arg);
int sq_stats(struct store *s, int64_t account_id, int64_t *accepted, store_count_fn fn, void *arg);
int sq_messages_add(struct store *s, const struct store_message *m, size_t n);
int sq_messages_recover(struct store *s);
int sq_messages_claim(struct store *s, int64_t now, int64_t lease_until, struct store_queued *out,
		      size_t max, size_t *n);
int sq_message_progress(struct store *s, int64_t id, int parts_done);
int sq_messages_finish(struct store *s, const struct store_finish *f, size_t n);
int sq_messages_list(struct store *s, int64_t account_id, const char *status, int limit,
		     store_message_fn fn, void *arg);
int sq_message_get(struct store *s, int64_t account_id, const char *uid,
		   struct store_message_info *out);
int sq_batch_pending(struct store *s, int64_t account_id, int64_t user_id, int64_t now,
		     struct store_batch_new *b, store_batch_fn fn, void *arg);
int sq_batch_get(struct store *s, const char *token_hash, struct store_batch *out,
		 store_batch_fn fn, void *arg);
int sq_batch_use(struct store *s, const char *token_hash, int64_t now, struct store_batch *out,
		 store_batch_fn fn, void *arg);

/* store_sql_domains.c: sending domains, their DKIM keys and DNS checks. */
int sq_domain_create(struct store *s, int64_t account_id, const struct store_domain_new *d,
		     int64_t *id);
int sq_domain_set(struct store *s, int64_t account_id, const char *name, const char *status,
		  int active);
int sq_domains_list(struct store *s, int64_t account_id, store_domain_fn fn, void *arg);
int sq_domain_get(struct store *s, int64_t account_id, int64_t id, struct store_domain *out);
int sq_domain_delete(struct store *s, int64_t account_id, int64_t id);
int sq_domain_set_active(struct store *s, int64_t account_id, int64_t id, bool active);
int sq_domain_checked(struct store *s, int64_t id, const struct store_domain_check *chk);
int sq_domains_due(struct store *s, int64_t pending_before, int64_t verified_before,
		   store_due_fn fn, void *arg);
int sq_dkim_rotate(struct store *s, int64_t account_id, int64_t id, const char *selector,
		   const char *private_sealed, const char *public_key, int64_t now);
int sq_dkim_signing_key(struct store *s, int64_t account_id, const char *domain,
			char selector[STORE_SELECTOR_MAX], char **private_sealed);
int sq_master_check(struct store *s, const char *check, store_opens_fn opens, void *arg);

#endif
