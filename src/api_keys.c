/* API keys of the caller's account (GET/POST /api/keys, DELETE /api/keys/{id}). A key is
 * shown once, when it is made; only its hash and first characters are kept. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "keys.h"
#include "util.h"

/* The key's networks as a list, each in its canonical spelling with its prefix ("10.0.0.1"
 * given reads "10.0.0.1/32"), [] when none. */
static void add_smtp_ips(cJSON *o, const struct store_apikey *k)
{
	char text[STORE_SMTP_IPS_MAX], *save = NULL;
	cJSON *list = cJSON_AddArrayToObject(o, "smtp_ips");
	util_copy(text, sizeof(text), k->smtp_ips);
	for (char *w = strtok_r(text, ",", &save); w; w = strtok_r(NULL, ",", &save))
		cJSON_AddItemToArray(list, cJSON_CreateString(w));
}

static cJSON *key_json(const struct store_apikey *k)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)k->id);
	cJSON_AddStringToObject(o, "name", k->name);
	cJSON_AddStringToObject(o, "prefix", k->shown);
	add_smtp_ips(o, k);
	api_add_time(o, "created_at", k->created_at);
	api_add_time(o, "last_used_at", k->last_used_at);
	return o;
}

/* "smtp_ips": optional, a list of networks; a bad entry is named by its index. */
static enum err read_smtp_ips(struct api_call *c, struct net_list *out)
{
	const cJSON *list = c->body ? cJSON_GetObjectItemCaseSensitive(c->body, "smtp_ips") : NULL;
	char field[32];
	out->n = 0;
	if (!list || cJSON_IsNull(list))
		return ERR_OK;
	if (!cJSON_IsArray(list))
		return api_invalid(c, "smtp_ips",
				   "Give a list of networks, like [\"10.0.0.0/8\", \"::1\"].");
	int i = 0;
	for (const cJSON *item = list->child; item; item = item->next, i++) {
		const char *why = keys_network_add(out, cJSON_GetStringValue(item));
		if (why) {
			snprintf(field, sizeof(field), "smtp_ips[%d]", i);
			return api_invalid(c, field, why);
		}
	}
	return ERR_OK;
}

static int add_key(void *arg, const struct store_apikey *k)
{
	cJSON_AddItemToArray(arg, key_json(k));
	return 0;
}

enum err api_keys_list(struct api_call *c)
{
	cJSON *list = cJSON_CreateArray();
	return api_reply_list(c, "keys", list,
			      store_apikey_list(c->ctx->store, c->who.account.id, add_key, list));
}

enum err api_keys_add(struct api_call *c)
{
	const char *name = api_body_string(c, "name");
	struct actor who = api_actor(c);
	struct store_apikey k;
	struct net_list nets;
	char key[AUTH_KEY_LEN];

	if (!name || !*name || strlen(name) >= sizeof(k.name) || strpbrk(name, "\r\n"))
		return api_invalid(c, "name", "Give the key a name of 1 to 127 characters.");
	enum err e = read_smtp_ips(c, &nets);
	if (e != ERR_OK)
		return e;
	e = api_store_err(
		keys_create(c->ctx->store, &who, c->who.account.id, name, &nets, &k, key));
	if (e != ERR_OK)
		return e;
	c->status = 201;
	c->reply = cJSON_CreateObject();
	cJSON_AddNumberToObject(c->reply, "id", (double)k.id);
	cJSON_AddStringToObject(c->reply, "name", k.name);
	cJSON_AddStringToObject(c->reply, "prefix", k.shown);
	add_smtp_ips(c->reply, &k);
	cJSON_AddStringToObject(c->reply, "key", key);
	return ERR_OK;
}

enum err api_key_delete(struct api_call *c)
{
	struct actor who = api_actor(c);
	int64_t id = api_param_id(c);
	if (id < 0)
		return ERR_NOT_FOUND;
	return api_store_err(keys_revoke(c->ctx->store, &who, c->who.account.id, id));
}
