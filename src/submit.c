/* Accepting a message: the sender decision of DESIGN.md in front of the durable queue,
 * in one place for every front end, and the one way messages are named. */
#include "submit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "compose.h"
#include "event.h"
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

/* A message.processed event for each recipient, in out->events: the addresses are copied
 * into the same block, since what they were read from may be gone before the commit. */
static void processed(struct submit *out, const char *const *rcpts, int n)
{
	size_t len = 0;
	out->events = NULL;
	if (n <= 0)
		return;
	for (int i = 0; i < n; i++)
		len += strlen(rcpts[i]) + 1;
	struct store_event *ev = xmalloc((size_t)n * sizeof(*ev) + len);
	char *at = (char *)(ev + n);
	for (int i = 0; i < n; i++) {
		size_t size = strlen(rcpts[i]) + 1;
		memcpy(at, rcpts[i], size);
		ev[i] = (struct store_event){.type = "message.processed", .recipient = at};
		at += size;
	}
	out->events = ev;
}

/* Every personalization's to, cc and bcc, in order (a request has at most
 * SEND_MAX_RECIPIENTS in all). */
static int payload_recipients(const cJSON *payload, const char **out)
{
	int n = 0, parts = compose_parts(payload);
	for (int part = 0; part < parts && n < SEND_MAX_RECIPIENTS; part++) {
		int k = compose_recipients(payload, part, out + n, SEND_MAX_RECIPIENTS - n);
		if (k > 0)
			n += k < SEND_MAX_RECIPIENTS - n ? k : SEND_MAX_RECIPIENTS - n;
	}
	return n;
}

void submit_queue(struct queue *q, const struct store_apikey *key, const struct send_request *r,
		  struct submit *out, void (*done)(void *arg, int rc), void *arg)
{
	const char *rcpts[SEND_MAX_RECIPIENTS];
	int n = payload_recipients(r->payload, rcpts);
	submit_message_id(out->id);
	util_copy(out->from, sizeof(out->from), r->from);
	out->payload = serialize(r->payload);
	out->meta = event_meta(r->payload);
	processed(out, rcpts, n);
	out->m = (struct store_message){
		.uid = out->id,
		.account_id = key->account_id,
		.api_key_id = key->id,
		.from = out->from,
		.payload = out->payload,
		.recipients = r->recipients,
		.send_at = r->send_at,
		.now = util_now(),
		.meta = out->meta,
		.events = out->events,
		.nevents = out->events ? (size_t)n : 0,
	};
	queue_put_async(q, &out->m, done, arg);
}

void submit_free(struct submit *m)
{
	free(m->payload);
	free(m->meta);
	free(m->events);
	m->payload = NULL;
	m->meta = NULL;
	m->events = NULL;
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
	out->meta = NULL; /* SMTP has no tags or custom_args */
	out->events = NULL;
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
	processed(out, in->rcpts, in->nrcpts);
	out->m = (struct store_message){
		.uid = out->id,
		.account_id = key->account_id,
		.api_key_id = key->id,
		.source = "smtp",
		.from = out->from,
		.payload = out->payload,
		.recipients = in->nrcpts,
		.now = now,
		.events = out->events,
		.nevents = out->events ? (size_t)in->nrcpts : 0,
	};
	queue_put_async(q, &out->m, done, arg);
	return ERR_OK;
}
