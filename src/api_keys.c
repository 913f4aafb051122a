/* API keys of the caller's account (GET/POST /api/keys, DELETE /api/keys/{id}). A key is
 * shown once, when it is made; only its hash and first characters are kept. */
#include <string.h>

#include "api.h"
#include "util.h"

static cJSON *key_json(const struct store_apikey *k)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)k->id);
	cJSON_AddStringToObject(o, "name", k->name);
	cJSON_AddStringToObject(o, "prefix", k->shown);
	api_add_time(o, "created_at", k->created_at);
	api_add_time(o, "last_used_at", k->last_used_at);
	return o;
}

static int add_key(void *arg, const struct store_apikey *k)
{
	cJSON_AddItemToArray(arg, key_json(k));
	return 0;
}

enum err api_keys_list(struct api_call *c)
{
	cJSON *list = cJSON_CreateArray();
	if (store_apikey_list(c->ctx->store, c->who.account.id, add_key, list) != STORE_OK) {
		cJSON_Delete(list);
		return ERR_STORE_UNAVAILABLE;
	}
	c->reply = cJSON_CreateObject();
	cJSON_AddItemToObject(c->reply, "keys", list);
	return ERR_OK;
}

enum err api_keys_add(struct api_call *c)
{
	const char *name = api_body_string(c, "name");
	char key[AUTH_KEY_LEN], hash[AUTH_HASH_HEX];
	struct store_apikey k = {.account_id = c->who.account.id, .created_at = util_now()};

	if (!name || !*name || util_copy(k.name, sizeof(k.name), name) < 0 || strpbrk(name, "\r\n"))
		return api_invalid(c, "name", "Give the key a name of 1 to 127 characters.");
	auth_api_key_new(key);
	auth_token_hash(key, hash);
	memcpy(k.shown, key, AUTH_KEY_SHOWN);
	k.shown[AUTH_KEY_SHOWN] = '\0';
	enum err e = api_store_err(store_apikey_create(c->ctx->store, k.account_id, k.name, k.shown,
						       hash, k.created_at, &k.id));
	if (e != ERR_OK)
		return e;
	api_audit(c, "key.created", k.shown, "name=%s", k.name);
	c->status = 201;
	c->reply = cJSON_CreateObject();
	cJSON_AddNumberToObject(c->reply, "id", (double)k.id);
	cJSON_AddStringToObject(c->reply, "name", k.name);
	cJSON_AddStringToObject(c->reply, "prefix", k.shown);
	cJSON_AddStringToObject(c->reply, "key", key);
	return ERR_OK;
}

enum err api_key_delete(struct api_call *c)
{
	int64_t id = api_param_id(c);
	if (id < 0)
		return ERR_NOT_FOUND;
	enum err e = api_store_err(
		store_apikey_revoke(c->ctx->store, c->who.account.id, id, util_now()));
	if (e != ERR_OK)
		return e;
	api_audit(c, "key.revoked", c->param, NULL);
	return ERR_OK;
}
