/* API keys, the service: making one (its text shown once, only its hash and first
 * characters kept) and revoking one, each audited. HTTP and the CLI both call it. */
#ifndef POSTERN_KEYS_H
#define POSTERN_KEYS_H

#include <stdint.h>

#include "audit.h"
#include "auth.h"
#include "err.h"
#include "policy_cache.h"
#include "store.h"

/* Makes a key named name (checked by the caller) in the account. out gets the stored key;
 * text, the key itself, to be shown this once. A store_rc. */
int keys_create(struct store *s, const struct actor *who, int64_t account_id, const char *name,
		struct store_apikey *out, char text[AUTH_KEY_LEN]);
/* A store_rc; STORE_NOT_FOUND when the account has no such live key. */
int keys_revoke(struct store *s, const struct actor *who, int64_t account_id, int64_t id);

/* Recognises the text of an API key, wherever it was sent (HTTP's Authorization or api_key
 * header, SMTP's AUTH password): its form, then its hash, looked up through the cache; the
 * key's last use is written at most once a minute. ERR_OK with out filled,
 * ERR_INVALID_API_KEY, or ERR_STORE_UNAVAILABLE. */
enum err keys_authenticate(struct policy_cache *pc, const char *text, struct store_apikey *out);

/* SMTP AUTH: user is "apikey" (as SendGrid's relay expects) or the name of the key's
 * account, password an API key. Failures count toward a per-client lockout like the
 * login's. ERR_OK with out filled; ERR_INVALID_CREDENTIALS (535 5.7.8);
 * ERR_TOO_MANY_ATTEMPTS (421 4.7.0), *retry_after the seconds to wait;
 * ERR_STORE_UNAVAILABLE. */
enum err keys_smtp_auth(struct store *s, struct policy_cache *pc, const char *user,
			const char *password, const char *ip, struct store_apikey *out,
			int64_t *retry_after);

/* SMTP-IP credentials: the live key whose smtp_ips networks hold ip (text), for clients
 * that cannot authenticate. ERR_OK with out filled, ERR_NOT_FOUND, or
 * ERR_STORE_UNAVAILABLE. */
enum err keys_smtp_ip(struct policy_cache *pc, const char *ip, struct store_apikey *out);

#endif
