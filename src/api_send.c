/* The send APIs: POST /v5/mail/send and /v6/mail/send (Netcore's dialect) and
 * /v3/mail/send (SendGrid's). Parse the request, then hand it to the send service, which
 * asks the sender policy and queues the message or counts the refusal as a drop, in the
 * order of DESIGN.md; the request waits for its commit suspended. A SendGrid request in
 * sandbox mode is checked just as completely, then counted instead of queued. */
#include <stdlib.h>

#include "api.h"
#include "log.h"
#include "metrics.h"
#include "send.h"
#include "submit.h"
#include "util.h"

/* A message waiting for its commit; the request is suspended meanwhile, so no HTTP
 * thread waits on the disk. */
struct pending {
	struct api_ctx *ctx;
	int dialect;
	enum send_dialect d;
	struct submit sub;
	struct http_request *req;
	int rc;
};

/* Monitor mode's would-be refusal, told on the 2xx so a sender sees it before the switch. */
static void monitor_header(struct api_call *c, enum policy_reason monitored)
{
	if (monitored == POLICY_ALLOW)
		return;
	c->extra_header = "X-Postern-Policy";
	submit_monitor_note(monitored, c->extra_header_value, sizeof(c->extra_header_value));
}

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
		log_info("message %s queued account=%lld key=%lld from=%s recipients=%d", p->sub.id,
			 (long long)p->sub.m.account_id, (long long)p->sub.m.api_key_id,
			 p->sub.from, p->sub.m.recipients);
		e = reply_accepted(&c, p->d, p->sub.id);
		monitor_header(&c, p->sub.monitored);
	}
	api_respond(&c, e);
	submit_free(&p->sub);
	free(p);
}

/* Runs on the queue's writer thread. */
static void committed(void *arg, int rc)
{
	struct pending *p = arg;
	p->rc = rc;
	http_resume(p->req);
}

static enum metrics_front front_of(enum send_dialect d)
{
	return d == SEND_SENDGRID ? METRICS_SENDGRID : METRICS_NETCORE;
}

/* Hands the message to the queue and parks the request until its commit. */
static void queue(struct api_call *c, const struct send_request *r, enum send_dialect d,
		  enum policy_reason monitored)
{
	struct pending *p = xcalloc(1, sizeof(*p));
	p->ctx = c->ctx;
	p->dialect = c->dialect;
	p->d = d;
	p->req = c->req;
	/* Suspended first: the commit may land before this thread returns. */
	http_suspend(c->req, answer, p);
	c->suspended = true;
	submit_queue(c->ctx->queue, c->ctx->drops, front_of(d), &c->key, r, monitored, &p->sub,
		     committed, p);
}

/* A malformed request, counted among the refusals. */
static enum err invalid(struct api_call *c, enum send_dialect d, const char *field,
			const char *message)
{
	metrics_refused(front_of(d), METRICS_REFUSED_INVALID);
	return api_invalid(c, field, message);
}

static enum err send_mail(struct api_call *c, enum send_dialect d)
{
	struct send_request r;
	struct send_problem why;

	if (!c->body)
		return invalid(c, d, NULL, "The request body must be a JSON object.");
	if (send_parse(d, c->body, &r, &why) < 0 || send_schedule(&r, util_now(), &why) < 0)
		return invalid(c, d, why.field, why.message);
	enum policy_reason monitored = POLICY_ALLOW;
	enum err e =
		submit_check(c->ctx->policies, c->ctx->drops, front_of(d), &c->key, &r, &monitored);
	if (e == ERR_OK && r.sandbox) {
		/* SendGrid's sandbox: everything checked, nothing stored or sent; it answers
		 * 200 with no body (and the monitor header, which only informs). */
		submit_sandbox(c->ctx->drops, &c->key, &r);
		monitor_header(c, monitored);
		c->status = 200;
	} else if (e == ERR_OK) {
		queue(c, &r, d, monitored);
	} else if (e != ERR_STORE_UNAVAILABLE && e != ERR_SENDER_AUTH_NO_SENDERS) {
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
