/* The send APIs: POST /v5/mail/send and /v6/mail/send (Netcore's dialect) and
 * /v3/mail/send (SendGrid's). Check the request, ask the sender policy, then either queue
 * the message or count the refusal as a drop, in the order of DESIGN.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "log.h"
#include "send.h"
#include "util.h"

#define MESSAGE_ID_LEN 33 /* 32 hex digits and NUL */

static const enum err reason_errs[POLICY_REASON_COUNT] = {
	[POLICY_ALLOW] = ERR_OK,
	[POLICY_NO_SENDERS] = ERR_SENDER_AUTH_NO_SENDERS,
	[POLICY_DOMAIN_NOT_APPROVED] = ERR_DOMAIN_NOT_APPROVED,
	[POLICY_DOMAIN_NOT_VERIFIED] = ERR_DOMAIN_NOT_VERIFIED,
	[POLICY_DOMAIN_INACTIVE] = ERR_DOMAIN_INACTIVE,
	[POLICY_SENDER_NOT_AUTHORIZED] = ERR_SENDER_NOT_AUTHORIZED,
	[POLICY_SENDER_PENDING] = ERR_SENDER_PENDING_VERIFICATION,
};

/* A message id: the time in milliseconds (12 hex digits), then 20 random ones. Ids made
 * close in time sort together, so the queue's unique index grows at its end instead of
 * touching a random page for every message; two nodes still never make the same one. */
static void message_id(char id[MESSAGE_ID_LEN])
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	unsigned long long ms =
		(unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
	snprintf(id, MESSAGE_ID_LEN, "%012llx", ms & 0xffffffffffffull);
	auth_unique_hex(id + 12, (MESSAGE_ID_LEN - 1 - 12) / 2);
}

static enum policy_reason decide(struct api_call *c, const char *from, enum err *e)
{
	struct policy_ref *ref = policy_cache_get(c->ctx->policies, c->key.account_id);
	if (!ref) {
		*e = ERR_STORE_UNAVAILABLE;
		return POLICY_ALLOW;
	}
	enum policy_reason r = policy_decide(policy_ref_policy(ref), from);
	policy_ref_release(ref);
	*e = reason_errs[r];
	return r;
}

/* A message waiting for its commit; the request is suspended meanwhile, so no HTTP
 * thread waits on the disk. */
struct pending {
	struct api_ctx *ctx;
	int dialect;
	enum send_dialect d;
	char id[MESSAGE_ID_LEN];
	char from[ADDR_MAX];
	char *payload;
	struct store_message m;
	struct http_request *req;
	int rc;
};

static enum err reply_accepted(struct api_call *c, enum send_dialect d, const char *id)
{
	if (d == SEND_SENDGRID) {
		/* SendGrid answers 202 with no body and the id in a header; its clients
		 * expect it. */
		c->status = 202;
		c->reply_header = "X-Message-Id";
		util_copy(c->reply_header_value, sizeof(c->reply_header_value), id);
		return ERR_OK;
	}
	c->reply = cJSON_CreateObject();
	cJSON_AddStringToObject(c->reply, "status", "success");
	cJSON_AddStringToObject(c->reply, "message", "OK");
	cJSON_AddStringToObject(cJSON_AddObjectToObject(c->reply, "data"), "message_id", id);
	return ERR_OK;
}

/* Runs on an HTTP thread once the commit holding the message has landed (or failed). */
static void answer(struct http_request *req)
{
	struct pending *p = req->user;
	struct api_call c = {.ctx = p->ctx, .req = req, .dialect = p->dialect};
	enum err e = api_store_err(p->rc);
	if (e == ERR_OK) {
		log_info("message %s queued account=%lld key=%lld from=%s recipients=%d", p->id,
			 (long long)p->m.account_id, (long long)p->m.api_key_id, p->from,
			 p->m.recipients);
		e = reply_accepted(&c, p->d, p->id);
	}
	api_respond(&c, e);
	free(p->payload);
	free(p);
}

/* Runs on the queue's writer thread. */
static void committed(void *arg, int rc)
{
	struct pending *p = arg;
	p->rc = rc;
	http_resume(p->req);
}

/* Hands the message to the queue and parks the request until its commit. */
static void queue(struct api_call *c, const struct send_request *r, enum send_dialect d)
{
	struct pending *p = xcalloc(1, sizeof(*p));
	p->ctx = c->ctx;
	p->dialect = c->dialect;
	p->d = d;
	p->req = c->req;
	message_id(p->id);
	util_copy(p->from, sizeof(p->from), r->from);
	p->payload = cJSON_PrintUnformatted(r->payload);
	if (!p->payload)
		fatal("cannot serialize a message");
	p->m = (struct store_message){
		.uid = p->id,
		.account_id = c->key.account_id,
		.api_key_id = c->key.id,
		.from = p->from,
		.payload = p->payload,
		.recipients = r->recipients,
		.now = util_now(),
	};
	/* Suspended first: the commit may land before this thread returns. */
	http_suspend(c->req, answer, p);
	c->suspended = true;
	queue_put_async(c->ctx->queue, &p->m, committed, p);
}

static enum err send_mail(struct api_call *c, enum send_dialect d)
{
	struct send_request r;
	struct send_problem why;
	enum err e;

	if (!c->body)
		return api_invalid(c, NULL, "The request body must be a JSON object.");
	if (send_parse(d, c->body, &r, &why) < 0)
		return api_invalid(c, why.field, why.message);
	enum policy_reason reason = decide(c, r.from, &e);
	if (e == ERR_OK)
		queue(c, &r, d);
	else if (e != ERR_STORE_UNAVAILABLE) {
		/* Every refusal is counted, so operators see what the policy stopped. */
		drops_record(c->ctx->drops, c->key.account_id, c->key.id, r.from, reason);
		if (reason != POLICY_NO_SENDERS)
			util_copy(c->err_field, sizeof(c->err_field), "from.email");
	}
	send_request_free(&r);
	return e;
}

enum err api_send_netcore(struct api_call *c)
{
	return send_mail(c, SEND_NETCORE);
}

enum err api_send_sendgrid(struct api_call *c)
{
	return send_mail(c, SEND_SENDGRID);
}
