/* Accepting a message: the sender decision of DESIGN.md in front of the durable queue,
 * in one place for every front end, and the one way messages are named. */
#include "submit.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "auth.h"
#include "compose.h"
#include "log.h"
#include "submission.h"
#include "util.h"

static const enum err reason_errs[POLICY_REASON_COUNT] = {
	[POLICY_ALLOW] = ERR_OK,
	[POLICY_NO_SENDERS] = ERR_SENDER_AUTH_NO_SENDERS,
	[POLICY_DOMAIN_NOT_APPROVED] = ERR_DOMAIN_NOT_APPROVED,
	[POLICY_DOMAIN_NOT_VERIFIED] = ERR_DOMAIN_NOT_VERIFIED,
	[POLICY_DOMAIN_INACTIVE] = ERR_DOMAIN_INACTIVE,
	[POLICY_SENDER_NOT_AUTHORIZED] = ERR_SENDER_NOT_AUTHORIZED,
	[POLICY_SENDER_PENDING] = ERR_SENDER_PENDING_VERIFICATION,
};

/* Ids made close in time sort together, so the queue's unique index grows at its end
 * instead of touching a random page for every message; two nodes still never make the
 * same one. */
void submit_message_id(char id[SUBMIT_ID_LEN])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	unsigned long long ms =
		(unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
	snprintf(id, SUBMIT_ID_LEN, "%012llx", ms & 0xffffffffffffull);
	auth_unique_hex(id + 12, (SUBMIT_ID_LEN - 1 - 12) / 2);
}

enum err submit_check_address(struct policy_cache *policies, struct drops *drops,
			      const struct store_apikey *key, const char *address)
{
	struct policy_ref *ref = policy_cache_get(policies, key->account_id);
	if (!ref)
		return ERR_STORE_UNAVAILABLE;
	enum policy_reason reason = policy_decide(policy_ref_policy(ref), address);
	policy_ref_release(ref);
	/* Every refusal is counted, so operators see what the policy stopped. */
	if (reason != POLICY_ALLOW)
		drops_record(drops, key->account_id, key->id, address, reason);
	return reason_errs[reason];
}

enum err submit_check(struct policy_cache *policies, struct drops *drops,
		      const struct store_apikey *key, const struct send_request *r)
{
	return submit_check_address(policies, drops, key, r->from);
}

void submit_sandbox(struct drops *drops, const struct store_apikey *key,
		    const struct send_request *r)
{
	drops_record_sandbox(drops, key->account_id, key->id, r->from);
}

static char *serialize(const cJSON *payload)
{
	char *json = cJSON_PrintUnformatted(payload);
	if (!json)
		fatal("cannot serialize a message");
	return json;
}

void submit_queue(struct queue *q, const struct store_apikey *key, const struct send_request *r,
		  struct submit *out, void (*done)(void *arg, int rc), void *arg)
{
	submit_message_id(out->id);
	util_copy(out->from, sizeof(out->from), r->from);
	out->payload = serialize(r->payload);
	out->m = (struct store_message){
		.uid = out->id,
		.account_id = key->account_id,
		.api_key_id = key->id,
		.from = out->from,
		.payload = out->payload,
		.recipients = r->recipients,
		.send_at = r->send_at,
		.now = util_now(),
	};
	queue_put_async(q, &out->m, done, arg);
}

void submit_free(struct submit *m)
{
	free(m->payload);
	m->payload = NULL;
}

int submit_system(struct queue *q, int64_t account_id, const char *from, const cJSON *payload,
		  int recipients, char id[SUBMIT_ID_LEN])
{
	char *json = serialize(payload);
	submit_message_id(id);
	struct store_message m = {.uid = id,
				  .account_id = account_id,
				  .system = true,
				  .source = "system",
				  .from = from,
				  .payload = json,
				  .recipients = recipients,
				  .now = util_now()};
	int rc = queue_put(q, &m);
	free(json);
	return rc;
}

/* Both header identities must pass, as the envelope sender did at MAIL FROM; the first
 * refusal is the answer. */
static enum err check_headers(struct policy_cache *policies, struct drops *drops,
			      const struct store_apikey *key, const struct submission *s)
{
	enum err e = submit_check_address(policies, drops, key, s->from);
	if (e == ERR_OK && s->sender[0])
		e = submit_check_address(policies, drops, key, s->sender);
	return e;
}

enum err submit_smtp(struct queue *q, struct policy_cache *policies, struct drops *drops,
		     const struct store_apikey *key, const struct submit_smtp_in *in,
		     struct submit *out, char *why, size_t whylen, void (*done)(void *arg, int rc),
		     void *arg)
{
	struct submission s;
	int64_t now = util_now();
	submit_message_id(out->id);
	out->payload = NULL;
	if (submission_make(in->data, in->len, out->id, now, &s, why, whylen) < 0)
		return ERR_INVALID_REQUEST;
	enum err e = check_headers(policies, drops, key, &s);
	if (e != ERR_OK) {
		submission_free(&s);
		return e;
	}
	/* The header From is the message's from: DKIM signs for its domain, and the
	 * delivery-time re-check starts with it. */
	util_copy(out->from, sizeof(out->from), s.from);
	out->payload =
		compose_smtp_payload(in->mail_from, in->rcpts, in->nrcpts, s.sender, s.data, s.len);
	submission_free(&s);
	out->m = (struct store_message){
		.uid = out->id,
		.account_id = key->account_id,
		.api_key_id = key->id,
		.source = "smtp",
		.from = out->from,
		.payload = out->payload,
		.recipients = in->nrcpts,
		.now = now,
	};
	queue_put_async(q, &out->m, done, arg);
	return ERR_OK;
}
