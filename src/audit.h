/* The audit log: every security-relevant action, appended through the store and echoed
 * as a log line. Services write it, with the actor that front ends hand them. */
#ifndef POSTERN_AUDIT_H
#define POSTERN_AUDIT_H

#include <stdarg.h>
#include <stdint.h>

#include "store.h"

/* Who acts on a service: a user of the panel, the operator at the command line, an API key,
 * or the holder of a Verify All link. Front ends fill it in; services record it. */
struct actor {
	const char *name; /* the user's email, "cli", "verify-link"...; NULL is "system" */
	const char *role; /* a user's role, written first in each detail; NULL for others */
	const char *ip;	  /* the client's address; NULL at the command line */
	int64_t user_id;  /* the acting user, 0 when not a user */
	int64_t key_id;	  /* the acting API key, 0 when none */
};

/* The operator at the command line: trusted with the whole database, so no role. */
extern const struct actor audit_cli;

/* A user of the panel, calling from ip. */
struct actor audit_user(const struct store_user *u, const char *ip);

/* The room a key's actor name takes: "key:<shown> (<name>)". */
#define AUDIT_KEY_NAME_MAX (AUTH_KEY_SHOWN + STORE_NAME_MAX + 8)
/* A manage key acting with role (a role's name) from ip; its name is written into name,
 * which must outlive the actor. Named by the key's first characters and its name, the
 * two things its account sees of it in GET /api/keys. */
struct actor audit_key(const struct store_apikey *k, const char *role, const char *ip,
		       char name[AUDIT_KEY_NAME_MAX]);

/* Appends one event by who, in account_id. detail is a printf format (may be NULL); a
 * user's role goes first ("role=admin name=x"). A store failure is logged, not returned:
 * the action itself has already been decided. */
void audit_write(struct store *s, const struct actor *who, int64_t account_id, const char *action,
		 const char *target, const char *detail_fmt, ...)
	__attribute__((format(printf, 6, 7)));
void audit_vwrite(struct store *s, const struct actor *who, int64_t account_id, const char *action,
		  const char *target, const char *detail_fmt, va_list ap)
	__attribute__((format(printf, 6, 0)));

/* Appends one event; the same, for actors that are no more than a name and an address. */
void audit_record(struct store *s, int64_t account_id, const char *actor, const char *action,
		  const char *target, const char *ip, const char *detail_fmt, ...)
	__attribute__((format(printf, 7, 8)));

#endif
