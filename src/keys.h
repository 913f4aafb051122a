/* API keys, the service: making one (its text shown once, only its hash and first
 * characters kept) and revoking one, each audited. HTTP and the CLI both call it. */
#ifndef POSTERN_KEYS_H
#define POSTERN_KEYS_H

#include <stdint.h>

#include "audit.h"
#include "auth.h"
#include "store.h"

/* Makes a key named name (checked by the caller) in the account. out gets the stored key;
 * text, the key itself, to be shown this once. A store_rc. */
int keys_create(struct store *s, const struct actor *who, int64_t account_id, const char *name,
		struct store_apikey *out, char text[AUTH_KEY_LEN]);
/* A store_rc; STORE_NOT_FOUND when the account has no such live key. */
int keys_revoke(struct store *s, const struct actor *who, int64_t account_id, int64_t id);

#endif
