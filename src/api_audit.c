/* GET /api/audit: the caller's account's audit log, newest first. */
#include <stdlib.h>

#include "api.h"
#include "util.h"

#define AUDIT_DEFAULT_LIMIT 100
#define AUDIT_MAX_LIMIT	    1000

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

/* Parses ?limit=N (1 to AUDIT_MAX_LIMIT). Returns -1 when it is malformed. */
static int parse_limit(const char *s)
{
	char *end;
	if (!s)
		return AUDIT_DEFAULT_LIMIT;
	long n = strtol(s, &end, 10);
	if (!*s || *end || n < 1 || n > AUDIT_MAX_LIMIT)
		return -1;
	return (int)n;
}

enum err api_audit_list(struct api_call *c)
{
	int limit = parse_limit(http_query(c->req, "limit"));
	if (limit < 0)
		return api_invalid(c, "limit", "limit must be a whole number from 1 to 1000.");

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
