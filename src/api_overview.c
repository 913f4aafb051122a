/* GET /api/overview: the panel's first page in one answer. The caller's account's mail per
 * UTC hour (the last 24) and per UTC day (the last 30), refusals by reason over those days,
 * the queue now, and the domains and senders that still wait for something. */
#include "api.h"

#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "util.h"

#define OVERVIEW_HOURS 24
#define OVERVIEW_DAYS  30
#define HOUR	       3600
#define DAY	       86400

/* A bucket's counters, in the order the answer names them. */
enum tally_counter { T_ACCEPTED, T_DELIVERED, T_BOUNCED, T_DROPPED, T_REFUSED, T_COUNT };

static const char *const counter_names[T_COUNT] = {"accepted", "delivered", "bounced", "dropped",
						   "refused"};
/* The event each counter counts; refused comes from the drops counter instead. */
static const char *const counter_events[T_REFUSED] = {"message.processed", "message.delivered",
						      "message.bounced", "message.dropped"};

struct tally {
	int64_t hour0; /* the oldest hour's first second */
	int64_t day0;  /* the oldest day's first second */
	int64_t hours[OVERVIEW_HOURS][T_COUNT];
	int64_t days[OVERVIEW_DAYS][T_COUNT];
	cJSON *refusals; /* {reason: count} over the days */
};

/* Whether at falls in the days; a row stamped ahead of this node's clock (another node's)
 * falls in none, and counts nowhere, so the refusals always add up to the days. */
static bool in_days(const struct tally *t, int64_t at)
{
	return at >= t->day0 && at < t->day0 + OVERVIEW_DAYS * DAY;
}

static void tally_add(struct tally *t, int64_t at, enum tally_counter k, int64_t n)
{
	if (at >= t->hour0 && at < t->hour0 + OVERVIEW_HOURS * HOUR)
		t->hours[(at - t->hour0) / HOUR][k] += n;
	if (in_days(t, at))
		t->days[(at - t->day0) / DAY][k] += n;
}

static void add_refusal(cJSON *refusals, const char *reason, int64_t n)
{
	cJSON *item = cJSON_GetObjectItemCaseSensitive(refusals, reason);
	if (item)
		cJSON_SetNumberValue(item, item->valuedouble + (double)n);
	else
		cJSON_AddNumberToObject(refusals, reason, (double)n);
}

static int tally_hourly(void *arg, const struct store_hourly *h)
{
	struct tally *t = arg;
	if (h->refusal) {
		tally_add(t, h->hour, T_REFUSED, h->count);
		if (in_days(t, h->hour))
			add_refusal(t->refusals, h->kind, h->count);
		return 0;
	}
	for (int k = 0; k < T_REFUSED; k++)
		if (strcmp(h->kind, counter_events[k]) == 0)
			tally_add(t, h->hour, (enum tally_counter)k, h->count);
	return 0;
}

static cJSON *buckets_json(const int64_t (*counts)[T_COUNT], int n, int64_t start, int64_t step)
{
	cJSON *list = cJSON_CreateArray();
	for (int i = 0; i < n; i++) {
		cJSON *b = cJSON_CreateObject();
		api_add_time(b, "start", start + i * step);
		for (int k = 0; k < T_COUNT; k++)
			cJSON_AddNumberToObject(b, counter_names[k], (double)counts[i][k]);
		cJSON_AddItemToArray(list, b);
	}
	return list;
}

/* Messages waiting now: "sending" is a moment inside delivery, still queued to users. */
static int add_status(void *arg, const char *status, int64_t n)
{
	const char *name = strcmp(status, "sending") == 0 ? "queued" : status;
	cJSON *item = cJSON_GetObjectItemCaseSensitive(arg, name);
	if (item)
		cJSON_SetNumberValue(item, item->valuedouble + (double)n);
	return 0;
}

/* A domain by the status the domains page shows: one an operator must approve waits on the
 * operator, and a rejected one was the operator's word; neither is its account's to fix. */
static int add_domain(void *arg, const struct store_domain *d)
{
	const char *status = domain_shown_status(d->status, d->approval);
	if (strcmp(status, "pending") != 0 && strcmp(status, "failed") != 0)
		return 0;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)d->id);
	cJSON_AddStringToObject(o, "name", d->name);
	cJSON_AddStringToObject(o, "status", status);
	cJSON_AddItemToArray(arg, o);
	return 0;
}

static int add_sender(void *arg, const struct store_sender *s)
{
	if (s->verified)
		return 0;
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)s->id);
	cJSON_AddStringToObject(o, "email", s->address);
	cJSON_AddStringToObject(o, "status", "pending");
	cJSON_AddItemToArray(arg, o);
	return 0;
}

/* The queue and attention parts, added to reply; STORE_OK or the store's failure. */
static int add_now(struct api_call *c, cJSON *reply)
{
	int64_t account = c->who.account.id;
	cJSON *queue = cJSON_AddObjectToObject(reply, "queue");
	cJSON_AddNumberToObject(queue, "queued", 0);
	cJSON_AddNumberToObject(queue, "scheduled", 0);
	cJSON_AddNumberToObject(queue, "deferred", 0);
	cJSON *attention = cJSON_AddObjectToObject(reply, "attention");
	cJSON *domains = cJSON_AddArrayToObject(attention, "domains");
	cJSON *senders = cJSON_AddArrayToObject(attention, "senders");
	int rc = store_queue_counts(c->ctx->store, account, add_status, queue);
	if (rc == STORE_OK)
		rc = store_domains_list(c->ctx->store, account, add_domain, domains);
	if (rc == STORE_OK)
		rc = store_senders_list(c->ctx->store, account, add_sender, senders);
	return rc;
}

enum err api_overview_get(struct api_call *c)
{
	int64_t now = util_now();
	struct tally *t = xcalloc(1, sizeof(*t));
	t->hour0 = now / HOUR * HOUR - (OVERVIEW_HOURS - 1) * HOUR;
	t->day0 = now / DAY * DAY - (OVERVIEW_DAYS - 1) * DAY;
	t->refusals = cJSON_CreateObject();
	/* Every reason appears, with 0 when nothing was refused for it. */
	for (int r = POLICY_ALLOW + 1; r < POLICY_REASON_COUNT; r++)
		cJSON_AddNumberToObject(t->refusals, policy_reason_code((enum policy_reason)r), 0);
	cJSON_AddNumberToObject(t->refusals, err_info(ERR_SENDER_NOT_ALLOWED_FOR_KEY)->code, 0);

	int rc = drops_flush(c->ctx->drops);
	/* The day buckets start first: they reach back further than the hours. */
	if (rc == STORE_OK)
		rc = store_overview_hours(c->ctx->store, c->who.account.id, t->day0, tally_hourly,
					  t);
	cJSON *reply = cJSON_CreateObject();
	api_add_time(reply, "generated_at", now);
	cJSON_AddItemToObject(reply, "hours",
			      buckets_json(t->hours, OVERVIEW_HOURS, t->hour0, HOUR));
	cJSON_AddItemToObject(reply, "days", buckets_json(t->days, OVERVIEW_DAYS, t->day0, DAY));
	cJSON_AddItemToObject(reply, "refusals", t->refusals);
	free(t);
	if (rc == STORE_OK)
		rc = add_now(c, reply);
	if (rc != STORE_OK) {
		cJSON_Delete(reply);
		return ERR_STORE_UNAVAILABLE;
	}
	c->reply = reply;
	return ERR_OK;
}
