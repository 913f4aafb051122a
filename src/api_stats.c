/* What the policy stopped and what went through: GET /api/drops and GET /api/stats (which
 * also counts SendGrid sandbox requests). Both flush the drop counter first, so a refusal is
 * visible as soon as it was answered. */
#include "api.h"
#include "util.h"

static int add_drop(void *arg, const struct store_drop *d)
{
	cJSON *o = cJSON_CreateObject();
	api_add_time(o, "at", d->minute);
	if (d->api_key_id)
		cJSON_AddNumberToObject(o, "key_id", (double)d->api_key_id);
	else
		cJSON_AddNullToObject(o, "key_id");
	cJSON_AddStringToObject(o, "from", d->from);
	cJSON_AddStringToObject(o, "reason", d->reason);
	cJSON_AddNumberToObject(o, "count", (double)d->count);
	cJSON_AddItemToArray(arg, o);
	return 0;
}

enum err api_drops_list(struct api_call *c)
{
	int limit;
	enum err e = api_limit(c, &limit);
	if (e != ERR_OK)
		return e;
	if (drops_flush(c->ctx->drops) != STORE_OK)
		return ERR_STORE_UNAVAILABLE;
	cJSON *list = cJSON_CreateArray();
	if (store_drops_list(c->ctx->store, c->who.account.id, limit, add_drop, list) != STORE_OK) {
		cJSON_Delete(list);
		return ERR_STORE_UNAVAILABLE;
	}
	c->reply = cJSON_CreateObject();
	cJSON_AddItemToObject(c->reply, "drops", list);
	return ERR_OK;
}

static int add_count(void *arg, const char *reason, int64_t count)
{
	cJSON *n = cJSON_GetObjectItemCaseSensitive(arg, reason);
	if (n)
		cJSON_SetNumberValue(n, (double)count);
	else
		cJSON_AddNumberToObject(arg, reason, (double)count);
	return 0;
}

/* Monitor mode's would-be refusals per sender reason, each with 0 when none; NULL when the
 * store cannot be read. The counters were flushed by the caller. */
static cJSON *monitored_counts(struct api_call *c)
{
	cJSON *m = cJSON_CreateObject();
	for (int r = POLICY_ALLOW + 1; r < POLICY_REASON_COUNT; r++)
		if (policy_reason_is_sender((enum policy_reason)r))
			cJSON_AddNumberToObject(m, policy_reason_code((enum policy_reason)r), 0);
	if (store_monitored_stats(c->ctx->store, c->who.account.id, add_count, m) != STORE_OK) {
		cJSON_Delete(m);
		return NULL;
	}
	return m;
}

enum err api_stats_get(struct api_call *c)
{
	int64_t accepted = 0;
	cJSON *dropped = cJSON_CreateObject();

	/* Every reason appears, with 0 when nothing was dropped for it. */
	for (int r = POLICY_ALLOW + 1; r < POLICY_REASON_COUNT; r++)
		cJSON_AddNumberToObject(dropped, policy_reason_code((enum policy_reason)r), 0);
	if (drops_flush(c->ctx->drops) != STORE_OK ||
	    store_stats(c->ctx->store, c->who.account.id, &accepted, add_count, dropped) !=
		    STORE_OK) {
		cJSON_Delete(dropped);
		return ERR_STORE_UNAVAILABLE;
	}
	/* Sandbox requests ride on the drop counter but were not refused: they get a count of
	 * their own. */
	cJSON *sandbox = cJSON_DetachItemFromObjectCaseSensitive(dropped, DROPS_SANDBOX);
	cJSON *monitored = monitored_counts(c);
	if (!monitored) {
		cJSON_Delete(dropped);
		cJSON_Delete(sandbox);
		return ERR_STORE_UNAVAILABLE;
	}
	c->reply = cJSON_CreateObject();
	cJSON_AddNumberToObject(c->reply, "accepted", (double)accepted);
	cJSON_AddNumberToObject(c->reply, "sandbox", sandbox ? sandbox->valuedouble : 0);
	cJSON_AddItemToObject(c->reply, "dropped", dropped);
	cJSON_AddItemToObject(c->reply, "monitored", monitored);
	cJSON_Delete(sandbox);
	return ERR_OK;
}
