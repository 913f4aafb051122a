/* The queue as users see it: GET /api/messages and GET /api/messages/{id}; and
 * POST /api/messages/{id}/cancel, for a message not sent yet. */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "messages.h"
#include "util.h"

static const char *const statuses[] = {"queued", "scheduled", "deferred", "sent",
				       "failed", "dropped",   "cancelled"};

static void add_text_or_null(cJSON *o, const char *name, const char *text)
{
	if (text[0])
		cJSON_AddStringToObject(o, name, text);
	else
		cJSON_AddNullToObject(o, name);
}

static cJSON *message_json(const struct store_message_info *m)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", m->uid);
	cJSON_AddStringToObject(o, "from", m->from);
	cJSON_AddStringToObject(o, "status", m->status);
	cJSON_AddStringToObject(o, "kind", m->system ? "system" : "api");
	cJSON_AddStringToObject(o, "source", m->source);
	cJSON_AddNumberToObject(o, "attempts", m->attempts);
	cJSON_AddNumberToObject(o, "recipients", m->recipients);
	api_add_time(o, "created_at", m->created_at);
	api_add_time(o, "updated_at", m->updated_at);
	bool waiting = strcmp(m->status, "queued") == 0 || strcmp(m->status, "deferred") == 0 ||
		       strcmp(m->status, "scheduled") == 0;
	api_add_time(o, "next_attempt_at", waiting ? m->next_attempt_at : 0);
	api_add_time(o, "send_at", m->send_at);
	add_text_or_null(o, "reason", m->reason);
	add_text_or_null(o, "last_reply", m->last_reply);
	cJSON *rejected = m->rejected[0] ? cJSON_Parse(m->rejected) : NULL;
	cJSON_AddItemToObject(o, "rejected", rejected ? rejected : cJSON_CreateArray());
	return o;
}

/* from[key], taken out of from, when is_type says it has the right type; made() if not. */
static cJSON *take(cJSON *from, const char *key, cJSON_bool (*is_type)(const cJSON *),
		   cJSON *(*made)(void))
{
	cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(from, key);
	if (is_type(v))
		return v;
	cJSON_Delete(v);
	return made();
}

/* What the client labelled the message with, read back from its payload: tags (Netcore's
 * tags, SendGrid's categories) and custom_args (SendGrid's), empty when none were given;
 * with personalization_custom_args, one object per personalization, when any has its own. */
static void add_labels(cJSON *o, const char *payload)
{
	cJSON *p = cJSON_Parse(payload), *each;
	cJSON_AddItemToObject(o, "tags", take(p, "tags", cJSON_IsArray, cJSON_CreateArray));
	cJSON_AddItemToObject(o, "custom_args",
			      take(p, "custom_args", cJSON_IsObject, cJSON_CreateObject));
	cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "personalizations");
	int n = cJSON_GetArraySize(list);
	cJSON *own = cJSON_CreateArray();
	bool any = false;
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(own, cJSON_CreateObject());
	/* In the request's order: scheduled sending may have reordered them ("index"). */
	int at = 0;
	cJSON_ArrayForEach(each, list)
	{
		const cJSON *index = cJSON_GetObjectItemCaseSensitive(each, "index");
		int i = cJSON_IsNumber(index) && index->valueint >= 0 && index->valueint < n
				? index->valueint
				: at;
		any |= cJSON_HasObjectItem(each, "custom_args");
		cJSON_ReplaceItemInArray(
			own, i, take(each, "custom_args", cJSON_IsObject, cJSON_CreateObject));
		at++;
	}
	if (any)
		cJSON_AddItemToObject(o, "personalization_custom_args", own);
	else
		cJSON_Delete(own);
	cJSON_Delete(p);
}

static int add_message(void *arg, const struct store_message_info *m)
{
	cJSON_AddItemToArray(arg, message_json(m));
	return 0;
}

enum err api_messages_list(struct api_call *c)
{
	const char *status = http_query(c->req, "status");
	int limit;
	enum err e = api_limit(c, &limit);
	if (e != ERR_OK)
		return e;
	if (status && *status) {
		size_t i = 0;
		while (i < ARRAY_LEN(statuses) && strcmp(status, statuses[i]) != 0)
			i++;
		if (i == ARRAY_LEN(statuses))
			return api_invalid(
				c, "status",
				"status must be queued, scheduled, deferred, sent, failed, dropped "
				"or cancelled.");
	} else {
		status = NULL;
	}
	cJSON *list = cJSON_CreateArray();
	if (store_messages_list(c->ctx->store, c->who.account.id, status, limit, add_message,
				list) != STORE_OK) {
		cJSON_Delete(list);
		return ERR_STORE_UNAVAILABLE;
	}
	c->reply = cJSON_CreateObject();
	cJSON_AddItemToObject(c->reply, "messages", list);
	return ERR_OK;
}

enum err api_message_get(struct api_call *c)
{
	struct store_message_info m;
	if (!c->param || strlen(c->param) >= sizeof(m.uid))
		return ERR_NOT_FOUND;
	enum err e =
		api_store_err(store_message_get(c->ctx->store, c->who.account.id, c->param, &m));
	if (e != ERR_OK)
		return e;
	char *payload;
	e = api_store_err(
		store_message_payload(c->ctx->store, c->who.account.id, c->param, &payload));
	if (e != ERR_OK)
		return e;
	c->reply = message_json(&m);
	add_labels(c->reply, payload);
	free(payload);
	return ERR_OK;
}

enum err api_message_cancel(struct api_call *c)
{
	if (!c->param || strlen(c->param) >= sizeof(((struct store_message_info *)0)->uid))
		return ERR_NOT_FOUND;
	int rc = messages_cancel(c->ctx->store, c->who.account.id, c->param, util_now());
	if (rc == STORE_CONFLICT)
		return ERR_NOT_CANCELLABLE;
	if (rc != STORE_OK)
		return api_store_err(rc);
	api_audit(c, "message.cancelled", c->param, NULL);
	struct store_message_info m;
	enum err e =
		api_store_err(store_message_get(c->ctx->store, c->who.account.id, c->param, &m));
	if (e == ERR_OK)
		c->reply = message_json(&m);
	return e;
}
