/* API keys of the caller's account (GET/POST /api/keys, PATCH/DELETE /api/keys/{id}). A key
 * is shown once, when it is made; only its hash and first characters are kept. The fields
 * are read here and checked by the keys service, which the CLI calls too. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "keys.h"
#include "util.h"

static const char *const key_fields[] = {"name",	"smtp_ips", "senders", "domains",
					 "allowed_ips", "scopes",   "role",    NULL};

/* A stored comma-separated list as a JSON array, [] when empty. */
static void add_list(cJSON *o, const char *name, const char *stored)
{
	char text[STORE_KEY_LIST_MAX], *save = NULL;
	cJSON *list = cJSON_AddArrayToObject(o, name);
	util_copy(text, sizeof(text), stored);
	for (char *w = strtok_r(text, ",", &save); w; w = strtok_r(NULL, ",", &save))
		cJSON_AddItemToArray(list, cJSON_CreateString(w));
}

/* Networks read in their canonical spelling with their prefix ("10.0.0.1" given reads
 * "10.0.0.1/32"); scopes default to ["mail.send"]; role is null without manage. */
static cJSON *key_json(const struct store_apikey *k)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)k->id);
	cJSON_AddStringToObject(o, "name", k->name);
	cJSON_AddStringToObject(o, "prefix", k->shown);
	add_list(o, "smtp_ips", k->smtp_ips);
	add_list(o, "senders", k->senders);
	add_list(o, "domains", k->domains);
	add_list(o, "allowed_ips", k->allowed_ips);
	add_list(o, "scopes", *k->scopes ? k->scopes : "mail.send");
	api_add_text(o, "role", k->role);
	api_add_time(o, "created_at", k->created_at);
	api_add_time(o, "last_used_at", k->last_used_at);
	return o;
}

/* One list field of the body, each element given to add; a bad element is named by its
 * index ("senders[2]"). Absent: not given; null: given empty. */
static enum err read_list(struct api_call *c, struct keys_spec *sp, const char *name,
			  enum keys_field f, const char *(*add)(struct keys_spec *, const char *),
			  const char *form)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(c->body, name);
	char field[48];
	if (!list)
		return ERR_OK;
	keys_spec_give(sp, f);
	if (cJSON_IsNull(list))
		return ERR_OK;
	if (!cJSON_IsArray(list))
		return api_invalid(c, name, form);
	int i = 0;
	for (const cJSON *item = list->child; item; item = item->next, i++) {
		const char *why = add(sp, cJSON_GetStringValue(item));
		if (why) {
			snprintf(field, sizeof(field), "%s[%d]", name, i);
			return api_invalid(c, field, why);
		}
	}
	return ERR_OK;
}

static const struct {
	const char *name;
	enum keys_field field;
	const char *(*add)(struct keys_spec *, const char *);
	const char *form;
} lists[] = {
	{"smtp_ips", KEYS_SMTP_IPS, keys_spec_smtp_ip,
	 "Give a list of networks, like [\"10.0.0.0/8\", \"::1\"]."},
	{"senders", KEYS_SENDERS, keys_spec_sender,
	 "Give a list of addresses, like [\"news@example.com\"]."},
	{"domains", KEYS_DOMAINS, keys_spec_domain,
	 "Give a list of domains, like [\"example.com\"]."},
	{"allowed_ips", KEYS_ALLOWED_IPS, keys_spec_allowed_ip,
	 "Give a list of networks, like [\"203.0.113.0/24\", \"2001:db8::/32\"]."},
	{"scopes", KEYS_SCOPES, keys_spec_scope, "Give a list of scopes, like [\"mail.send\"]."},
};

/* The body's fields into sp: only those present, each checked as it is read. */
static enum err read_spec(struct api_call *c, struct keys_spec *sp)
{
	enum err e = api_only_fields(c, key_fields);
	keys_spec_init(sp);
	if (e != ERR_OK || !c->body)
		return e;
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(c->body, "name");
	if (name) {
		const char *why = keys_spec_name(sp, cJSON_GetStringValue(name));
		if (why)
			return api_invalid(c, "name", why);
	}
	for (size_t i = 0; i < ARRAY_LEN(lists) && e == ERR_OK; i++)
		e = read_list(c, sp, lists[i].name, lists[i].field, lists[i].add, lists[i].form);
	const cJSON *role = cJSON_GetObjectItemCaseSensitive(c->body, "role");
	if (e == ERR_OK && role) {
		const char *why = cJSON_IsNull(role) ? keys_spec_role(sp, NULL)
				  : cJSON_IsString(role)
					  ? keys_spec_role(sp, role->valuestring)
					  : "A role is technical, analytics or marketing.";
		if (why)
			return api_invalid(c, "role", why);
	}
	return e;
}

static enum err refused(struct api_call *c, enum err e, const struct keys_refusal *no)
{
	if (e == ERR_FORBIDDEN) {
		util_copy(c->err_field, sizeof(c->err_field), no->field);
		util_copy(c->err_message, sizeof(c->err_message), no->why);
	}
	return e == ERR_INVALID_REQUEST ? api_invalid(c, no->field, no->why) : e;
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
	struct actor who = api_actor(c);
	struct store_apikey k;
	struct keys_spec sp;
	struct keys_refusal no;
	char key[AUTH_KEY_LEN];

	enum err e = read_spec(c, &sp);
	if (e != ERR_OK)
		return e;
	sp.maker = c->by_key ? &c->key : NULL;
	e = keys_create(c->ctx->store, &who, c->who.account.id, &sp, &k, key, &no);
	if (e != ERR_OK)
		return refused(c, e, &no);
	c->status = 201;
	c->reply = key_json(&k);
	cJSON_AddStringToObject(c->reply, "key", key);
	return ERR_OK;
}

enum err api_key_patch(struct api_call *c)
{
	struct actor who = api_actor(c);
	struct store_apikey k;
	struct keys_spec sp;
	struct keys_refusal no;
	int64_t id = api_param_id(c);
	if (id < 0)
		return ERR_NOT_FOUND;
	enum err e = read_spec(c, &sp);
	if (e != ERR_OK)
		return e;
	sp.maker = c->by_key ? &c->key : NULL;
	e = keys_update(c->ctx->store, &who, c->who.account.id, id, &sp, &k, &no);
	if (e != ERR_OK)
		return refused(c, e, &no);
	c->reply = key_json(&k);
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
