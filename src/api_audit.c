/* GET /api/audit: the caller's account's audit log, newest first. */
#include "api.h"
#include "util.h"

static int add_event(void *arg, const struct store_audit *ev)
{
	cJSON *o = cJSON_CreateObject();
	char at[21];

	util_iso8601(ev->at, at);
	cJSON_AddNumberToObject(o, "id", (double)ev->id);
	cJSON_AddStringToObject(o, "at", at);
	cJSON_AddNumberToObject(o, "account", (double)ev->account_id);
	cJSON_AddStringToObject(o, "actor", ev->actor);
	cJSON_AddStringToObject(o, "action", ev->action);
	cJSON_AddStringToObject(o, "target", ev->target);
	cJSON_AddStringToObject(o, "detail", ev->detail);
	cJSON_AddStringToObject(o, "ip", ev->ip);
	cJSON_AddItemToArray(arg, o);
	return 0;
}

enum err api_audit_list(struct api_call *c)
{
	int limit;
	enum err e = api_limit(c, &limit);
	if (e != ERR_OK)
		return e;

	cJSON *events = cJSON_CreateArray();
	if (store_audit_list(c->ctx->store, c->who.account.id, limit, add_event, events) !=
	    STORE_OK) {
		cJSON_Delete(events);
		return ERR_STORE_UNAVAILABLE;
	}
	c->reply = cJSON_CreateObject();
	cJSON_AddItemToObject(c->reply, "events", events);
	return ERR_OK;
}
