/* Internal to the SQLite backend: the connection, the statement helpers its files share,
 * and the functions each file contributes to the backend's store_ops. Nothing outside
 * store_sqlite*.c includes this. */
#ifndef POSTERN_STORE_SQLITE_H
#define POSTERN_STORE_SQLITE_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>

#include "store.h"

struct sq {
	struct store base;
	sqlite3 *db;
	pthread_mutex_t lock;
	uint64_t policy_writes; /* bumped by every write that can change a policy; under lock */
};

static inline struct sq *sq_of(struct store *s)
{
	return (struct sq *)s;
}

/* Statement helpers; call them with the lock held (sq_write and sq_update take it). */
int sq_fail(struct sq *q, const char *what);
int sq_vstep(struct sq *q, sqlite3_stmt **out, const char *sql, const char *fmt, va_list ap);
int sq_step(struct sq *q, sqlite3_stmt **out, const char *sql, const char *fmt, ...);
int sq_vexec(struct sq *q, int64_t *id, const char *sql, const char *fmt, va_list ap);
int sq_exec(struct sq *q, int64_t *id, const char *sql, const char *fmt, ...);
int sq_write(struct sq *q, int64_t *id, const char *sql, const char *fmt, ...);
void sq_col_text(sqlite3_stmt *st, int col, char *dst, size_t n);
/* Reads the current row of st into row. */
typedef void (*sq_read_fn)(sqlite3_stmt *st, void *row);
/* Receives each row read. */
typedef int (*sq_row_fn)(void *arg, const void *row);
/* Runs a query and calls fn for each row read through read (lock held by the caller). */
int sq_each(struct sq *q, sq_read_fn read, void *row, sq_row_fn fn, void *arg, const char *sql,
	    const char *fmt, ...);
/* The same, taking the lock. */
int sq_list(struct sq *q, sq_read_fn read, void *row, sq_row_fn fn, void *arg, const char *sql,
	    const char *fmt, ...);
/* Takes the lock and reads the query's first row into row; STORE_NOT_FOUND without one. */
int sq_get(struct sq *q, sq_read_fn read, void *row, const char *sql, const char *fmt, ...);
int sq_update(struct sq *q, bool policy, const char *sql, const char *fmt, ...);
int sq_row_done(void *arg, const void *row);
/* Begins a write transaction; sq_end commits it when rc is STORE_OK (returning the commit's
 * own result, since the commit is where a full disk shows) and rolls it back otherwise. */
int sq_begin(struct sq *q);
int sq_end(struct sq *q, int rc);

/* store_sqlite_people.c: accounts, users, sessions, API keys, the audit log. */
int sq_account_create(struct store *s, const char *name, int64_t now, int64_t *id);
int sq_account_by_name(struct store *s, const char *name, struct store_account *out);
int sq_user_create(struct store *s, int64_t account_id, const char *email,
		   const char *password_hash, enum role role, int64_t now, int64_t *id);
int sq_user_by_email(struct store *s, const char *email, struct store_user *out);
int sq_login_attempt(struct store *s, int64_t user_id, int64_t now, int64_t since, int limit,
		     int *failures);
int sq_login_failures_clear(struct store *s, int64_t user_id);
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
int sq_user_change(struct sq *q, int64_t account_id, int64_t id, const char *new_role);
int sq_user_set_role(struct store *s, int64_t account_id, int64_t id, enum role role);
int sq_user_delete(struct store *s, int64_t account_id, int64_t id);
int sq_user_set_password(struct store *s, int64_t account_id, int64_t id, const char *password_hash,
			 const char *keep_session_hash);
int sq_apikey_list(struct store *s, int64_t account_id, store_apikey_fn fn, void *arg);
int sq_apikey_lookup(struct store *s, const char *key_hash, struct store_apikey *out);
int sq_apikey_touch(struct store *s, int64_t id, int64_t now);
int sq_apikey_revoke(struct store *s, int64_t account_id, int64_t id, int64_t now);

/* store_sqlite_mail.c: sender settings, senders and their batches, domains, policy
 * snapshots, the message queue, drops and stats. */
int sq_sender_auth_get(struct store *s, int64_t account_id, struct store_sender_auth *out);
int sq_sender_auth_set(struct store *s, int64_t account_id, bool enabled, int64_t user_id,
		       int64_t now);
int sq_senders_add(struct store *s, int64_t account_id, int64_t user_id, int64_t now,
		   const char *const *addresses, size_t n, const char *token_hash,
		   int64_t expires_at, int64_t *ids);
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
int sq_message_claim(struct store *s, int64_t now, int64_t lease_until, struct store_queued *out);
int sq_message_progress(struct store *s, int64_t id, int parts_done);
int sq_message_finish(struct store *s, int64_t id, const struct store_outcome *o);
int sq_messages_list(struct store *s, int64_t account_id, const char *status, int limit,
		     store_message_fn fn, void *arg);
int sq_message_get(struct store *s, int64_t account_id, const char *uid,
		   struct store_message_info *out);
int sq_batch_pending(struct store *s, int64_t account_id, int64_t user_id, int64_t now,
		     const char *token_hash, int64_t expires_at, store_batch_fn fn, void *arg);
int sq_batch_get(struct store *s, const char *token_hash, struct store_batch *out,
		 store_batch_fn fn, void *arg);
int sq_batch_use(struct store *s, const char *token_hash, int64_t now, struct store_batch *out,
		 store_batch_fn fn, void *arg);

/* store_sqlite_domains.c: sending domains, their DKIM keys and DNS checks. */
int sq_domain_create(struct store *s, int64_t account_id, const struct store_domain_new *d,
		     int64_t *id);
int sq_domain_set(struct store *s, int64_t account_id, const char *name, const char *status,
		  int active);
int sq_domains_list(struct store *s, int64_t account_id, store_domain_fn fn, void *arg);
int sq_domain_get(struct store *s, int64_t account_id, int64_t id, struct store_domain *out);
int sq_domain_delete(struct store *s, int64_t account_id, int64_t id);
int sq_domain_set_active(struct store *s, int64_t account_id, int64_t id, bool active);
int sq_domain_checked(struct store *s, int64_t id, const struct store_domain_check *c);
int sq_domains_due(struct store *s, int64_t pending_before, int64_t verified_before,
		   store_due_fn fn, void *arg);
int sq_dkim_rotate(struct store *s, int64_t account_id, int64_t id, const char *selector,
		   const char *private_sealed, const char *public_key, int64_t now);
int sq_dkim_signing_key(struct store *s, int64_t account_id, const char *domain,
			char selector[STORE_SELECTOR_MAX], char **private_sealed);

#endif
