/* The event log (GET /api/events, every role) and the webhook endpoints of the caller's
 * account (GET/POST /api/webhooks, PATCH/DELETE /api/webhooks/{id}, POST
 * /api/webhooks/{id}/test). An endpoint's secret is shown once, when it is made. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "event.h"
#include "util.h"
#include "webhook.h"

#define EVENTS_GIVEN_MAX 32 /* types in one request's list, repeats included */

static const char events_help[] =
	"events is a list of event types, like [\"message.delivered\", \"message.bounced\"] "
	"(message.* types only for the sendgrid format); leave it out for every type.";

static int add_event(void *arg, const struct store_event_info *e)
{
	cJSON_AddItemToArray(arg, event_render(e));
	return 0;
}

enum err api_events_list(struct api_call *c)
{
	const char *type = http_query(c->req, "type");
	const char *message = http_query(c->req, "message_id");
	int64_t before_id;
	int limit;

	if (type && !*type)
		type = NULL;
	if (type && !event_type_known(type) && strcmp(type, "webhook.test") != 0)
		return api_invalid(c, "type", "type is one of the event types, or webhook.test.");
	if (message && !*message)
		message = NULL;
	enum err e = api_before(c, "before is an event id, a positive number.", &before_id);
	if (e == ERR_OK)
		e = api_limit(c, &limit);
	if (e != ERR_OK)
		return e;
	cJSON *list = cJSON_CreateArray();
	return api_reply_list(c, "events", list,
			      store_events_list(c->ctx->store, c->who.account.id, type, message,
						before_id, limit, add_event, list));
}

/* The endpoint's subscription as a list: every type it receives when it has all of them
 * (message events only, in SendGrid's format). */
static void add_events(cJSON *o, const struct store_webhook *w)
{
	cJSON *list = cJSON_AddArrayToObject(o, "events");
	bool messages_only = strcmp(w->format, "sendgrid") == 0;
	char needle[STORE_EVENT_TYPE_MAX + 3];
	for (size_t i = 0; i < event_ntypes; i++) {
		snprintf(needle, sizeof(needle), ",%s,", event_types[i]);
		if (messages_only && !event_is_message(event_types[i]))
			continue;
		if (strcmp(w->events, "*") == 0 || strstr(w->events, needle))
			cJSON_AddItemToArray(list, cJSON_CreateString(event_types[i]));
	}
}

static cJSON *webhook_json(const struct store_webhook *w)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)w->id);
	cJSON_AddStringToObject(o, "url", w->url);
	cJSON_AddStringToObject(o, "format", w->format);
	add_events(o, w);
	cJSON_AddBoolToObject(o, "enabled", w->enabled);
	api_add_time(o, "created_at", w->created_at);
	if (w->last_at) {
		cJSON *last = cJSON_AddObjectToObject(o, "last_delivery");
		cJSON_AddStringToObject(last, "status", w->last_status);
		api_add_time(last, "at", w->last_at);
	} else {
		cJSON_AddNullToObject(o, "last_delivery");
	}
	api_add_time(o, "last_success_at", w->last_success_at);
	api_add_time(o, "failing_since", w->failing_since);
	api_add_time(o, "disabled_at", w->disabled_at);
	/* Public: it may be shown again, to set up another verifier. */
	if (strcmp(w->format, "sendgrid") == 0)
		cJSON_AddStringToObject(o, "public_key", w->public_key);
	return o;
}

static int add_webhook(void *arg, const struct store_webhook *w)
{
	cJSON_AddItemToArray(arg, webhook_json(w));
	return 0;
}

enum err api_webhooks_list(struct api_call *c)
{
	cJSON *list = cJSON_CreateArray();
	return api_reply_list(
		c, "webhooks", list,
		store_webhooks_list(c->ctx->store, c->who.account.id, add_webhook, list));
}

/* "events": absent or null for every type, else a list of strings; their names are the
 * service's to check. */
static enum err read_events(struct api_call *c, const char **out, size_t *n)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(c->body, "events");
	*n = 0;
	if (!list || cJSON_IsNull(list))
		return ERR_OK;
	if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) > EVENTS_GIVEN_MAX)
		return api_invalid(c, "events", events_help);
	for (const cJSON *item = list->child; item; item = item->next) {
		if (!cJSON_IsString(item))
			return api_invalid(c, "events", events_help);
		out[(*n)++] = item->valuestring;
	}
	return ERR_OK;
}

/* A string field that may be left out (or null); present, it must be a string. */
static enum err read_string(struct api_call *c, const char *name, const char **out)
{
	const cJSON *v = c->body ? cJSON_GetObjectItemCaseSensitive(c->body, name) : NULL;
	*out = cJSON_IsString(v) ? v->valuestring : NULL;
	return !v || cJSON_IsNull(v) || *out ? ERR_OK : api_invalid(c, name, NULL);
}

/* Each field's message when the service refuses it. */
static enum err refused(struct api_call *c, enum err e, const char *field)
{
	if (e == ERR_WEBHOOK_URL_NOT_ALLOWED)
		util_copy(c->err_field, sizeof(c->err_field), "url");
	if (e != ERR_INVALID_REQUEST || !field)
		return e;
	if (strcmp(field, "format") == 0)
		return api_invalid(c, field, "format is \"standard\" or \"sendgrid\".");
	if (strcmp(field, "events") == 0)
		return api_invalid(c, field, events_help);
	return api_invalid(c, field,
			   "Give an http or https URL, like https://example.com/hooks/postern (at "
			   "most 2047 characters, no user name or password).");
}

enum err api_webhooks_add(struct api_call *c)
{
	static const char *const fields[] = {"url", "events", "format", NULL};
	struct actor who = api_actor(c);
	const char *events[EVENTS_GIVEN_MAX], *url, *format, *field = NULL;
	struct webhook_new made;
	size_t nevents;

	enum err e = api_only_fields(c, fields);
	if (e == ERR_OK)
		e = read_string(c, "url", &url);
	if (e == ERR_OK && !url)
		e = api_invalid(c, "url", "Give the URL that events are posted to.");
	if (e == ERR_OK)
		e = read_string(c, "format", &format);
	if (e == ERR_OK)
		e = read_events(c, events, &nevents);
	if (e != ERR_OK)
		return e;
	e = webhook_create(c->ctx->store, c->ctx->cfg, c->ctx->master_key, &who, c->who.account.id,
			   url, format, events, nevents, &made, &field);
	if (e != ERR_OK)
		return refused(c, e, field);
	c->status = 201;
	c->reply = webhook_json(&made.hook);
	if (made.secret[0])
		cJSON_AddStringToObject(c->reply, "secret", made.secret);
	sodium_memzero(made.secret, sizeof(made.secret));
	return ERR_OK;
}

enum err api_webhook_patch(struct api_call *c)
{
	static const char *const fields[] = {"enabled", NULL};
	struct actor who = api_actor(c);
	const cJSON *enabled =
		c->body ? cJSON_GetObjectItemCaseSensitive(c->body, "enabled") : NULL;
	struct store_webhook hook;
	int64_t id = api_param_id(c);

	if (id < 0)
		return ERR_NOT_FOUND;
	enum err e = api_only_fields(c, fields);
	if (e != ERR_OK)
		return e;
	if (!cJSON_IsBool(enabled))
		return api_invalid(c, "enabled", "enabled is true or false.");
	e = webhook_set_enabled(c->ctx->store, &who, c->who.account.id, id, cJSON_IsTrue(enabled));
	if (e == ERR_OK)
		e = api_store_err(store_webhook_get(c->ctx->store, c->who.account.id, id, &hook));
	if (e == ERR_OK)
		c->reply = webhook_json(&hook);
	return e;
}

enum err api_webhook_delete(struct api_call *c)
{
	struct actor who = api_actor(c);
	int64_t id = api_param_id(c);
	if (id < 0)
		return ERR_NOT_FOUND;
	return webhook_delete(c->ctx->store, &who, c->who.account.id, id);
}

enum err api_webhook_test(struct api_call *c)
{
	struct actor who = api_actor(c);
	int64_t id = api_param_id(c), event_id = 0;
	if (id < 0)
		return ERR_NOT_FOUND;
	enum err e = webhook_test(c->ctx->store, &who, c->who.account.id, id, &event_id);
	if (e != ERR_OK)
		return e;
	c->status = 202;
	c->reply = cJSON_CreateObject();
	cJSON_AddNumberToObject(c->reply, "event_id", (double)event_id);
	return ERR_OK;
}
