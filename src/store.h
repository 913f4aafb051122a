/* The store interface. Handlers and core modules call these functions and never write
 * SQL; each backend (SQLite now, PostgreSQL later) fills in a struct store_ops.
 * Times are seconds since the epoch. Every function returns a store_rc. */
#ifndef POSTERN_STORE_H
#define POSTERN_STORE_H

#include <stdint.h>

#include "addr.h"
#include "auth.h"
#include "role.h"

enum store_rc {
	STORE_OK = 0,
	STORE_NOT_FOUND,
	STORE_CONFLICT, /* a unique name or address already exists */
	STORE_FAIL,	/* the database failed; the caller answers 503 */
};

#define STORE_NAME_MAX 128

struct store_account {
	int64_t id;
	char name[STORE_NAME_MAX];
};

struct store_user {
	int64_t id;
	int64_t account_id;
	char email[ADDR_MAX];
	char password_hash[AUTH_PWHASH_LEN];
	enum role role;
};

/* A live session, with its user and account. */
struct store_session {
	int64_t expires_at;
	struct store_user user;
	struct store_account account;
};

struct store_audit {
	int64_t id;
	int64_t at;
	int64_t account_id; /* 0 when the event belongs to no account */
	char actor[ADDR_MAX + 16];
	char action[64];
	char target[ADDR_MAX + 64];
	char detail[512];
	char ip[64];
};

typedef int (*store_audit_fn)(void *arg, const struct store_audit *ev);

struct store;

struct store_ops {
	void (*close)(struct store *s);
	int (*account_create)(struct store *s, const char *name, int64_t now, int64_t *id);
	int (*account_by_name)(struct store *s, const char *name, struct store_account *out);
	int (*user_create)(struct store *s, int64_t account_id, const char *email,
			   const char *password_hash, enum role role, int64_t now, int64_t *id);
	int (*user_by_email)(struct store *s, const char *email, struct store_user *out);
	int (*login_failures)(struct store *s, int64_t user_id, int64_t since, int *count);
	int (*login_failure_add)(struct store *s, int64_t user_id, int64_t at);
	int (*login_failures_clear)(struct store *s, int64_t user_id);
	int (*session_create)(struct store *s, const char *token_hash, int64_t user_id, int64_t now,
			      int64_t expires_at);
	int (*session_get)(struct store *s, const char *token_hash, int64_t now,
			   struct store_session *out);
	int (*session_delete)(struct store *s, const char *token_hash);
	int (*apikey_create)(struct store *s, int64_t account_id, const char *name,
			     const char *shown, const char *key_hash, int64_t now, int64_t *id);
	int (*audit_append)(struct store *s, const struct store_audit *ev);
	int (*audit_list)(struct store *s, int64_t account_id, int limit, store_audit_fn fn,
			  void *arg);
};

struct store {
	const struct store_ops *ops;
};

/* Opens (creating if needed) and migrates a SQLite database. Returns NULL with a
 * one-line reason in err, also when the schema is newer than this build knows. */
struct store *store_sqlite_open(const char *path, char *err, size_t errlen);
/* The schema version this build writes. */
int store_schema_version(void);

void store_close(struct store *s);
int store_account_create(struct store *s, const char *name, int64_t now, int64_t *id);
int store_account_by_name(struct store *s, const char *name, struct store_account *out);
int store_user_create(struct store *s, int64_t account_id, const char *email,
		      const char *password_hash, enum role role, int64_t now, int64_t *id);
int store_user_by_email(struct store *s, const char *email, struct store_user *out);
int store_login_failures(struct store *s, int64_t user_id, int64_t since, int *count);
int store_login_failure_add(struct store *s, int64_t user_id, int64_t at);
int store_login_failures_clear(struct store *s, int64_t user_id);
int store_session_create(struct store *s, const char *token_hash, int64_t user_id, int64_t now,
			 int64_t expires_at);
int store_session_get(struct store *s, const char *token_hash, int64_t now,
		      struct store_session *out);
int store_session_delete(struct store *s, const char *token_hash);
int store_apikey_create(struct store *s, int64_t account_id, const char *name, const char *shown,
			const char *key_hash, int64_t now, int64_t *id);
int store_audit_append(struct store *s, const struct store_audit *ev);
int store_audit_list(struct store *s, int64_t account_id, int limit, store_audit_fn fn, void *arg);

#endif
