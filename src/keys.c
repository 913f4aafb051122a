/* API keys: made from fresh random bytes, stored as a hash with their first characters to
 * recognise them by, and audited in one spelling whoever asks. */
#include "keys.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

int keys_create(struct store *s, const struct actor *who, int64_t account_id, const char *name,
		struct store_apikey *out, char text[AUTH_KEY_LEN])
{
	char hash[AUTH_HASH_HEX];

	*out = (struct store_apikey){.account_id = account_id, .created_at = util_now()};
	util_copy(out->name, sizeof(out->name), name);
	auth_api_key_new(text);
	auth_token_hash(text, hash);
	memcpy(out->shown, text, AUTH_KEY_SHOWN);
	out->shown[AUTH_KEY_SHOWN] = '\0';
	int rc = store_apikey_create(s, account_id, out->name, out->shown, hash, out->created_at,
				     &out->id);
	if (rc == STORE_OK)
		audit_write(s, who, account_id, "key.created", out->shown, "name=%s", out->name);
	return rc;
}

int keys_revoke(struct store *s, const struct actor *who, int64_t account_id, int64_t id)
{
	char target[24];
	int rc = store_apikey_revoke(s, account_id, id, util_now());
	snprintf(target, sizeof(target), "%lld", (long long)id);
	if (rc == STORE_OK)
		audit_write(s, who, account_id, "key.revoked", target, NULL);
	return rc;
}

enum err keys_authenticate(struct policy_cache *pc, const char *text, struct store_apikey *out)
{
	char hash[AUTH_HASH_HEX];
	size_t prefix = strlen(AUTH_KEY_PREFIX);

	if (!text || strncmp(text, AUTH_KEY_PREFIX, prefix) != 0 ||
	    !auth_token_wellformed(text + prefix, AUTH_KEY_LEN - 1 - prefix))
		return ERR_INVALID_API_KEY;
	auth_token_hash(text, hash);
	int rc = policy_cache_apikey(pc, hash, out);
	if (rc == STORE_NOT_FOUND)
		return ERR_INVALID_API_KEY;
	if (rc != STORE_OK)
		return ERR_STORE_UNAVAILABLE;
	/* last_used_at is a hint for the panel; writing it once a minute is enough. */
	int64_t now = util_now();
	if (now - out->last_used_at >= 60)
		policy_cache_apikey_touch(pc, out->id, now);
	return ERR_OK;
}

/* TEMPORARY minimal form (user "apikey" only, no lockout) until the SMTP credentials work
 * lands; see keys.h for the contract. */
enum err keys_smtp_auth(struct store *s, struct policy_cache *pc, const char *user,
			const char *password, const char *ip, struct store_apikey *out,
			int64_t *retry_after)
{
	(void)s;
	(void)ip;
	*retry_after = 0;
	if (strcasecmp(user, "apikey") != 0)
		return ERR_INVALID_CREDENTIALS;
	enum err e = keys_authenticate(pc, password, out);
	return e == ERR_INVALID_API_KEY ? ERR_INVALID_CREDENTIALS : e;
}

/* TEMPORARY: no key has networks yet. */
enum err keys_smtp_ip(struct policy_cache *pc, const char *ip, struct store_apikey *out)
{
	(void)pc;
	(void)ip;
	(void)out;
	return ERR_NOT_FOUND;
}
