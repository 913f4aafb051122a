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
#include "keyscope.h"
#include "log.h"
#include "messages.h"
#include "metrics.h"
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

/* A key's own scope, after the account allowed the address (so the account's refusals keep
 * their codes), in every mode; a refusal is counted as a drop like the policy's. */
static enum err key_allows(struct drops *drops, enum metrics_front front,
			   const struct store_apikey *key, const char *address)
{
	if (keyscope_sender_allowed(key, address))
		return ERR_OK;
	metrics_refused(front, METRICS_REFUSED_KEY_SCOPE);
	drops_record_code(drops, key->account_id, key->id, address,
			  err_info(ERR_SENDER_NOT_ALLOWED_FOR_KEY)->code);
	return ERR_SENDER_NOT_ALLOWED_FOR_KEY;
}

enum err submit_check_address(struct policy_cache *policies, struct drops *drops,
			      enum metrics_front front, const struct store_apikey *key,
			      const char *address, enum policy_reason *monitored)
{
	struct policy_ref *ref = policy_cache_get(policies, key->account_id);
	if (!ref)
		return ERR_STORE_UNAVAILABLE;
	/* Monitor mode lets a sender reason through, named in *monitored; domains still refuse. */
	enum policy_reason reason = policy_judge(policy_ref_policy(ref), address, monitored);
	policy_ref_release(ref);
	/* Every refusal is counted, so operators see what the policy stopped. */
	if (reason != POLICY_ALLOW) {
		drops_record(drops, key->account_id, key->id, address, reason);
		metrics_refused(front, (enum metrics_refusal)reason);
	}
	return reason != POLICY_ALLOW ? reason_errs[reason]
				      : key_allows(drops, front, key, address);
}

enum err submit_check(struct policy_cache *policies, struct drops *drops, enum metrics_front front,
		      const struct store_apikey *key, const struct send_request *r,
		      enum policy_reason *monitored)
{
	return submit_check_address(policies, drops, front, key, r->from, monitored);
}

void submit_monitor_note(enum policy_reason monitored, char *out, size_t n)
{
	snprintf(out, n, "monitor; would-refuse=%s", policy_reason_code(monitored));
}

/* Runs on the queue's writer thread: a message counts for the preflight (and its monitored
 * would-be refusal for the stats) only once it is really accepted. */
static void landed(void *arg, int rc)
{
	struct submit *m = arg;
	if (rc == STORE_OK)
		metrics_accepted(m->front);
	if (rc == STORE_OK && m->drops) {
		drops_record_send(m->drops, m->m.account_id, m->from);
		for (size_t i = 0; i < ARRAY_LEN(m->also); i++)
			if (m->also[i][0])
				drops_record_send(m->drops, m->m.account_id, m->also[i]);
		if (m->monitored != POLICY_ALLOW)
			drops_record_monitored(m->drops, m->m.account_id, m->m.api_key_id,
					       m->monitored_from, m->monitored);
	}
	m->done(m->done_arg, rc); /* the last touch: the caller may free m now */
}

/* Queues out->m with landed between the commit and done(arg, rc); out->monitored and
 * out->monitored_from are set. */
static void put_counted(struct queue *q, struct drops *drops, struct submit *out,
			void (*done)(void *arg, int rc), void *arg)
{
	out->drops = drops;
	out->done = done;
	out->done_arg = arg;
	queue_put_async(q, &out->m, landed, out);
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

/* s copied to *at, which moves past it. */
static const char *put(char **at, const char *s)
{
	size_t size = strlen(s) + 1;
	char *copy = memcpy(*at, s, size);
	*at += size;
	return copy;
}

/* A message.processed event for each recipient rcpts[i] with its data[i] (JSON or NULL;
 * data is NULL when none has any), in out->events: the strings are copied into the same
 * block, since what they were read from may be gone before the commit. */
static void processed(struct submit *out, const char *const *rcpts, char *const *data, int n)
{
	size_t len = 0;
	out->events = NULL;
	if (n <= 0)
		return;
	for (int i = 0; i < n; i++)
		len += strlen(rcpts[i]) + 1 + (data && data[i] ? strlen(data[i]) + 1 : 0);
	struct store_event *ev = xmalloc((size_t)n * sizeof(*ev) + len);
	char *at = (char *)(ev + n);
	for (int i = 0; i < n; i++)
		ev[i] = (struct store_event){.type = "message.processed",
					     .recipient = put(&at, rcpts[i]),
					     .data = data && data[i] ? put(&at, data[i]) : NULL};
	out->events = ev;
}

/* Every personalization's to, cc and bcc, in order (a request has at most
 * SEND_MAX_RECIPIENTS in all), each with its event's data, malloc'd: the smtp_id of its
 * personalization (messages.h), as message uid from `from` will carry it. */
static int payload_recipients(const char *uid, const char *from, const cJSON *payload,
			      const char **out, char **data)
{
	char smtp_id[MESSAGES_MSGID_MAX];
	int n = 0, parts = compose_parts(payload);
	for (int part = 0; part < parts && n < SEND_MAX_RECIPIENTS; part++) {
		int k = compose_recipients(payload, part, out + n, SEND_MAX_RECIPIENTS - n);
		if (k > SEND_MAX_RECIPIENTS - n)
			k = SEND_MAX_RECIPIENTS - n;
		const char *id = messages_smtp_id(uid, from, payload, part, smtp_id);
		for (int i = 0; i < k; i++)
			data[n++] = event_json("smtp_id", id, NULL);
	}
	return n;
}

void submit_queue(struct queue *q, struct drops *drops, enum metrics_front front,
		  const struct store_apikey *key, const struct send_request *r,
		  enum policy_reason monitored, struct submit *out, void (*done)(void *arg, int rc),
		  void *arg)
{
	const char *rcpts[SEND_MAX_RECIPIENTS];
	char *data[SEND_MAX_RECIPIENTS];
	submit_message_id(out->id);
	util_copy(out->from, sizeof(out->from), r->from);
	int n = payload_recipients(out->id, out->from, r->payload, rcpts, data);
	out->payload = serialize(r->payload);
	out->meta = event_meta(r->payload);
	processed(out, rcpts, data, n);
	for (int i = 0; i < n; i++)
		free(data[i]);
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
	out->monitored = monitored;
	out->front = front;
	util_copy(out->monitored_from, sizeof(out->monitored_from), r->from);
	out->also[0][0] = out->also[1][0] = '\0';
	put_counted(q, drops, out, done, arg);
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
 * refusal is the answer. In monitor mode out gets the first would-be refusal, the header
 * From's, the Sender's, or else the envelope sender's named at MAIL FROM. */
static enum err check_headers(struct policy_cache *policies, struct drops *drops,
			      const struct store_apikey *key, const struct submission *s,
			      const struct submit_smtp_in *in, struct submit *out)
{
	enum policy_reason from_m = POLICY_ALLOW, sender_m = POLICY_ALLOW;
	enum err e = submit_check_address(policies, drops, METRICS_SMTP, key, s->from, &from_m);
	if (e == ERR_OK && s->sender[0])
		e = submit_check_address(policies, drops, METRICS_SMTP, key, s->sender, &sender_m);
	const char *who = from_m != POLICY_ALLOW     ? s->from
			  : sender_m != POLICY_ALLOW ? s->sender
						     : in->mail_from;
	out->monitored = from_m != POLICY_ALLOW	    ? from_m
			 : sender_m != POLICY_ALLOW ? sender_m
						    : in->mail_from_monitored;
	util_copy(out->monitored_from, sizeof(out->monitored_from), who);
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
	out->meta = NULL;
	out->events = NULL;
	out->front = METRICS_SMTP;
	if (submission_make(in->data, in->len, out->id, now, &s, why, whylen) < 0) {
		metrics_refused(METRICS_SMTP, METRICS_REFUSED_INVALID);
		return ERR_INVALID_REQUEST;
	}
	enum err e = check_headers(policies, drops, key, &s, in, out);
	if (e != ERR_OK) {
		submission_free(&s);
		return e;
	}
	/* The header From is the message's from: DKIM signs for its domain, and the
	 * delivery-time re-check starts with it. */
	util_copy(out->from, sizeof(out->from), s.from);
	/* The switch judges the Sender and the envelope sender too: the preflight counts them,
	 * so what it calls safe to switch on is. */
	util_copy(out->also[0], sizeof(out->also[0]), strcmp(s.sender, s.from) ? s.sender : "");
	util_copy(out->also[1], sizeof(out->also[1]),
		  strcmp(in->mail_from, s.from) && strcmp(in->mail_from, s.sender) ? in->mail_from
										   : "");
	out->payload =
		compose_smtp_payload(in->mail_from, in->rcpts, in->nrcpts, s.sender, s.data, s.len);
	/* SMTP has no tags or custom_args. Its one Message-ID is the client's or the one added:
	 * every event of the message repeats it (event_data), the delivery's too. */
	out->meta = event_json("smtp_id", s.message_id, NULL);
	submission_free(&s);
	processed(out, in->rcpts, NULL, in->nrcpts);
	out->m = (struct store_message){
		.uid = out->id,
		.account_id = key->account_id,
		.api_key_id = key->id,
		.source = "smtp",
		.from = out->from,
		.payload = out->payload,
		.recipients = in->nrcpts,
		.now = now,
		.meta = out->meta,
		.events = out->events,
		.nevents = out->events ? (size_t)in->nrcpts : 0,
	};
	put_counted(q, drops, out, done, arg); /* check_headers set what was monitored */
	return ERR_OK;
}
