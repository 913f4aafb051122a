/* The preflight (GET /api/senders/preflight?days=7): every From the account sent from in the
 * window, from the per-From send counters (drops.h), each judged by the account's policy
 * snapshot as if the switch were on now, so turning it on holds no surprise. */
#include <stdlib.h>

#include "api.h"
#include "submit.h"
#include "util.h"

#define PREFLIGHT_DAYS_DEFAULT 7
#define PREFLIGHT_DAYS_MAX     90
/* The list shows the most used addresses; the totals count every one. */
#define PREFLIGHT_ADDRESSES_MAX 1000

struct preflight {
	const struct policy *policy;
	cJSON *addresses;
	int64_t sends;
	int64_t would_refuse;
	int listed;
};

/* One From: its place on the sender list and what the switch on would do to it now. */
static int add_address(void *arg, const struct store_from_total *t)
{
	struct preflight *p = arg;
	enum policy_reason r = policy_decide_if_on(p->policy, t->from);
	p->sends += t->sends;
	if (r != POLICY_ALLOW)
		p->would_refuse += t->sends;
	if (p->listed++ >= PREFLIGHT_ADDRESSES_MAX)
		return 0;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "email", t->from);
	cJSON_AddNumberToObject(o, "sends", (double)t->sends);
	cJSON_AddStringToObject(o, "status", policy_sender_status(p->policy, t->from));
	api_add_text(o, "would_refuse", r == POLICY_ALLOW ? "" : policy_reason_code(r));
	api_add_time(o, "last_seen", t->last_seen);
	cJSON_AddItemToArray(p->addresses, o);
	return 0;
}

static enum err preflight_days(struct api_call *c, int *days)
{
	const char *q = http_query(c->req, "days");
	char *end;
	long n = q ? strtol(q, &end, 10) : PREFLIGHT_DAYS_DEFAULT;
	if (q && (!*q || *end || n < 1 || n > PREFLIGHT_DAYS_MAX))
		return api_invalid(c, "days", "days must be a whole number from 1 to 90.");
	*days = (int)n;
	return ERR_OK;
}

enum err api_senders_preflight(struct api_call *c)
{
	int days = PREFLIGHT_DAYS_DEFAULT;
	enum err e = preflight_days(c, &days);
	if (e != ERR_OK)
		return e;
	/* Today counts as the first day of the window. */
	int64_t since = util_now() / 86400 * 86400 - (int64_t)(days - 1) * 86400;
	if (drops_flush(c->ctx->drops) != STORE_OK)
		return ERR_STORE_UNAVAILABLE;
	struct policy_ref *ref = policy_cache_get(c->ctx->policies, c->who.account.id);
	if (!ref)
		return ERR_STORE_UNAVAILABLE;
	struct preflight p = {.policy = policy_ref_policy(ref), .addresses = cJSON_CreateArray()};
	int rc = store_from_totals(c->ctx->store, c->who.account.id, since, add_address, &p);
	policy_ref_release(ref);
	if (rc != STORE_OK) {
		cJSON_Delete(p.addresses);
		return ERR_STORE_UNAVAILABLE;
	}
	c->reply = cJSON_CreateObject();
	cJSON_AddNumberToObject(c->reply, "days", days);
	cJSON_AddNumberToObject(c->reply, "sends", (double)p.sends);
	cJSON_AddNumberToObject(c->reply, "would_refuse", (double)p.would_refuse);
	cJSON_AddItemToObject(c->reply, "addresses", p.addresses);
	return ERR_OK;
}
