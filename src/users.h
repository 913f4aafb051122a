/* Users of an account, the service: adding one, changing a role, removing one, changing a
 * password, each audited. An account always keeps at least one Admin (the store refuses
 * otherwise). HTTP and the CLI both call it. */
#ifndef POSTERN_USERS_H
#define POSTERN_USERS_H

#include <stdint.h>

#include "audit.h"
#include "role.h"
#include "store.h"

/* Adds a user: email normalized and the password hashed by the caller, so both can be
 * checked before anything is written. out gets the user. A store_rc; STORE_CONFLICT when
 * the account has a user with this email. */
int users_create(struct store *s, const struct actor *who, int64_t account_id, const char *email,
		 const char *password_hash, enum role role, struct store_user *out);
/* out gets the user as it is afterwards. A store_rc. */
int users_set_role(struct store *s, const struct actor *who, int64_t account_id, int64_t id,
		   enum role role, struct store_user *out);
int users_remove(struct store *s, const struct actor *who, int64_t account_id, int64_t id);
/* Sets the acting user's own password and ends their other sessions (all but the one whose
 * token hashes to keep_session_hash). A store_rc. */
int users_set_password(struct store *s, const struct actor *who, int64_t account_id,
		       const char *password_hash, const char *keep_session_hash);

#endif
