/* API keys: made from fresh random bytes, stored as a hash with their first characters to
 * recognise them by, and audited in one spelling whoever asks. */
#include "keys.h"

#include <stdio.h>
#include <string.h>

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
