/* Reports at the return path: bounces_receive stores one as the listener received it, and
 * the report worker parses stored ones (report.c), finds the message their VERP address
 * names, decides what each named recipient gets (bounces_plan, pure) and writes it with the
 * report's new status in one transaction. A report is applied at most once: its claim ends
 * with that commit, and one whose parser died is claimed again. */
#include "bounces.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compose.h"
#include "log.h"
#include "send.h"
#include "suppress.h"
#include "util.h"
#include "worker.h"

#define BOUNCES_BATCH	  8		      /* reports one claim takes */
#define BOUNCES_LEASE	  300		      /* seconds a claimed report is the parser's */
#define BOUNCES_POLL	  5000		      /* ms between looks for reports another node stored */
#define BOUNCES_RCPTS_MAX SEND_MAX_RECIPIENTS /* a message's recipients, all read to match */

struct bounces {
	struct store *store;
	struct worker *worker;
};

int bounces_receive(struct store *s, const char *client_ip, const char *mail_from,
		    const struct store_report_path *paths, size_t n, const char *data, size_t len,
		    int64_t *ids)
{
	struct store_report_in in = {.client_ip = client_ip,
				     .mail_from = mail_from,
				     .paths = paths,
				     .npaths = n,
				     .data = data,
				     .len = len,
				     .now = util_now()};
	return store_report_add(s, &in, ids);
}

/* ---- Deciding (pure) ---- */

static const char *action_name(enum report_action a)
{
	static const char *const names[] = {"failed", "delayed", "delivered", "complaint"};
	return names[a];
}

/* The message's recipient the report's recipient is, or NULL: its address when it names
 * one, else the message's only recipient. */
static const char *plan_match(const struct report_rcpt *rr, const char *const *rcpts, size_t n)
{
	char email[ADDR_MAX];
	if (!rr->email[0])
		return n == 1 ? rcpts[0] : NULL;
	if (suppress_normalize(rr->email, email) < 0)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strcmp(rcpts[i], email) == 0)
			return rcpts[i];
	return NULL;
}

static void plan_event(struct bounces_plan *p, const char *type, const char *rcpt, cJSON *data)
{
	p->events = xrealloc(p->events, (p->nevents + 1) * sizeof(*p->events));
	p->events[p->nevents++] = (struct store_event){
		.type = type, .recipient = rcpt, .data = cJSON_PrintUnformatted(data)};
	cJSON_Delete(data);
}

static void plan_suppress(struct bounces_plan *p, const char *rcpt, const char *reason,
			  const char *uid, const char *detail)
{
	p->suppress = xrealloc(p->suppress, (p->nsuppress + 1) * sizeof(*p->suppress));
	struct store_suppression *e = &p->suppress[p->nsuppress++];
	*e = (struct store_suppression){.reason = reason};
	snprintf(e->email, sizeof(e->email), "%s", rcpt);
	snprintf(e->message_uid, sizeof(e->message_uid), "%s", uid);
	snprintf(e->detail, sizeof(e->detail), "%s", detail);
}

/* A hard bounce (report_hard), which suppresses. A text report's needs more, since free
 * text is guessed at: an address named in it and a status that says the address is bad
 * (report_status_hard); one that names no one may make an event for a message's only
 * recipient, never a suppression. */
static bool plan_hard(const struct report *r, const struct report_rcpt *rr)
{
	if (r->kind == REPORT_TEXT)
		return rr->email[0] && report_hard(rr) && report_status_hard(rr->status);
	return report_hard(rr);
}

/* A failed delivery: a hard bounce suppresses, anything else is "blocked". */
static void plan_failed(struct bounces_plan *p, const struct report *r,
			const struct report_rcpt *rr, const char *rcpt, const char *uid)
{
	bool hard = plan_hard(r, rr);
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "type", hard ? "bounce" : "blocked");
	cJSON_AddStringToObject(d, "status", rr->status);
	cJSON_AddStringToObject(d, "diagnostic", rr->diagnostic);
	cJSON_AddStringToObject(d, "source", report_kind_name(r->kind));
	cJSON_AddStringToObject(d, "reporting_mta", r->reporting_mta);
	plan_event(p, "message.bounced", rcpt, d);
	if (!hard)
		return;
	char detail[STORE_SUPPRESS_DETAIL_MAX];
	snprintf(detail, sizeof(detail), "%.15s %.480s", rr->status, rr->diagnostic);
	plan_suppress(p, rcpt, "hard_bounce", uid, detail);
}

/* What one recipient of the report does to the message's recipient rcpt. */
static void plan_one(struct bounces_plan *p, const struct report *r, const struct report_rcpt *rr,
		     const char *rcpt, const char *uid)
{
	cJSON *d;
	switch (rr->action) {
	case REPORT_FAILED:
		return plan_failed(p, r, rr, rcpt, uid);
	case REPORT_DELAYED:
		d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "status", rr->status);
		cJSON_AddStringToObject(d, "diagnostic", rr->diagnostic);
		cJSON_AddStringToObject(d, "source", report_kind_name(r->kind));
		return plan_event(p, "message.deferred", rcpt, d);
	case REPORT_COMPLAINT:
		d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "feedback_type", r->feedback_type);
		cJSON_AddStringToObject(d, "source", report_kind_name(r->kind));
		cJSON_AddStringToObject(d, "reporting_mta", r->reporting_mta);
		plan_event(p, "message.complained", rcpt, d);
		return plan_suppress(p, rcpt, "complaint", uid,
				     r->feedback_type[0] ? r->feedback_type : "abuse");
	case REPORT_DELIVERED:
		return;
	}
}

/* True when an earlier recipient of the report was applied to rcpt already: a report that
 * names an address twice bounces it once. */
static bool plan_seen(const struct report *r, size_t upto, const char *const *rcpts, size_t n,
		      const char *rcpt)
{
	for (size_t i = 0; i < upto; i++)
		if (plan_match(&r->rcpts[i], rcpts, n) == rcpt)
			return true;
	return false;
}

static const char *plan_note(const struct report_rcpt *rr, const char *rcpt, bool seen)
{
	if (!rcpt)
		return rr->email[0] ? "not a recipient of the message"
				    : "names no recipient, and the message had several";
	return seen ? "named twice: applied once" : NULL;
}

void bounces_plan(const struct report *r, const char *uid, const char *const *rcpts, size_t n,
		  struct bounces_plan *out)
{
	*out = (struct bounces_plan){0};
	cJSON *detail = cJSON_CreateObject();
	if (r->message_id[0])
		cJSON_AddStringToObject(detail, "message_id", r->message_id);
	if (r->reporting_mta[0])
		cJSON_AddStringToObject(detail, "reporting_mta", r->reporting_mta);
	if (r->feedback_type[0])
		cJSON_AddStringToObject(detail, "feedback_type", r->feedback_type);
	cJSON *list = cJSON_AddArrayToObject(detail, "recipients");
	for (size_t i = 0; i < r->n; i++) {
		const struct report_rcpt *rr = &r->rcpts[i];
		const char *rcpt = plan_match(rr, rcpts, n);
		bool seen = rcpt && plan_seen(r, i, rcpts, n, rcpt);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "email", rr->email[0] ? rr->email : rcpt ? rcpt : "");
		cJSON_AddStringToObject(o, "action", action_name(rr->action));
		cJSON_AddStringToObject(o, "status", rr->status);
		cJSON_AddStringToObject(o, "diagnostic", rr->diagnostic);
		cJSON_AddBoolToObject(o, "applied", rcpt && !seen);
		const char *note = plan_note(rr, rcpt, seen);
		if (note)
			cJSON_AddStringToObject(o, "note", note);
		cJSON_AddItemToArray(list, o);
		if (rcpt && !seen)
			plan_one(out, r, rr, rcpt, uid);
	}
	out->detail = cJSON_PrintUnformatted(detail);
	cJSON_Delete(detail);
}

void bounces_plan_free(struct bounces_plan *p)
{
	for (size_t i = 0; i < p->nevents; i++)
		free((char *)p->events[i].data);
	free(p->events);
	free(p->suppress);
	free(p->detail);
	*p = (struct bounces_plan){0};
}

/* ---- The worker ---- */

size_t bounces_message_rcpts(const char *payload, char (*rcpts)[ADDR_MAX], size_t max)
{
	cJSON *p = cJSON_Parse(payload);
	size_t n = 0;
	int parts = p ? compose_parts(p) : 0;
	/* A personalization may hold every recipient the message may have. */
	const char **got = xcalloc(SEND_MAX_RECIPIENTS, sizeof(*got));
	for (int part = 0; part < parts && n < max; part++) {
		int k = compose_recipients(p, part, got, SEND_MAX_RECIPIENTS);
		for (int i = 0; i < k && i < SEND_MAX_RECIPIENTS && n < max; i++)
			if (suppress_normalize(got[i], rcpts[n]) == 0)
				n++;
	}
	free(got);
	cJSON_Delete(p);
	return n;
}

/* Applies the parsed report to its message: the plan, or nothing for Postern's own mail,
 * whose reports are kept but change no list. */
static int report_apply(struct bounces *b, const struct store_report *sr, const char *claim,
			const struct report *r, int64_t account_id, const char *payload,
			bool system)
{
	char(*rcpts)[ADDR_MAX] = xcalloc(BOUNCES_RCPTS_MAX, sizeof(*rcpts));
	const char **ptrs = xcalloc(BOUNCES_RCPTS_MAX, sizeof(*ptrs));
	size_t n = system ? 0 : bounces_message_rcpts(payload, rcpts, BOUNCES_RCPTS_MAX);
	for (size_t i = 0; i < n; i++)
		ptrs[i] = rcpts[i];
	struct bounces_plan plan;
	bounces_plan(r, sr->message_uid, ptrs, n, &plan);
	struct store_report_result res = {
		.id = sr->id,
		.claim = claim,
		.status = r->kind == REPORT_UNPARSED ? "unparsed" : "done",
		.kind = r->kind == REPORT_UNPARSED ? NULL : report_kind_name(r->kind),
		.account_id = account_id,
		.detail = plan.detail,
		.message_uid = sr->message_uid,
		.events = system ? NULL : plan.events,
		.nevents = system ? 0 : plan.nevents,
		.suppress = system ? NULL : plan.suppress,
		.nsuppress = system ? 0 : plan.nsuppress,
		.now = util_now()};
	int rc = store_report_done(b->store, &res);
	if (rc == STORE_OK)
		log_info("report %lld about message %s: %s, %zu events, %zu suppressions",
			 (long long)sr->id, sr->message_uid, res.status, res.nevents,
			 res.nsuppress);
	bounces_plan_free(&plan);
	free(ptrs);
	free(rcpts);
	return rc;
}

/* One claimed report: parsed, matched with its message, applied. */
static int report_process(struct bounces *b, const struct store_report *sr, const char *claim)
{
	struct report r;
	int64_t account_id = 0;
	char *payload = NULL;
	bool system = false;
	int rc =
		store_message_for_report(b->store, sr->message_uid, &account_id, &payload, &system);
	if (rc == STORE_NOT_FOUND) {
		/* The message is gone (or never was ours): kept as an orphan. */
		struct store_report_result res = {.id = sr->id,
						  .claim = claim,
						  .status = "orphan",
						  .message_uid = sr->message_uid,
						  .now = util_now()};
		log_info("report %lld names message %s, which is unknown", (long long)sr->id,
			 sr->message_uid);
		return store_report_done(b->store, &res);
	}
	if (rc != STORE_OK)
		return rc;
	report_parse(sr->data, sr->len, &r);
	rc = report_apply(b, sr, claim, &r, account_id, payload, system);
	report_free(&r);
	free(payload);
	return rc;
}

/* Claims and applies reports until none is left (or the store fails: the next pass tries
 * again). */
static void bounces_pass(struct bounces *b, struct worker *w)
{
	struct store_report batch[BOUNCES_BATCH];
	char claim[STORE_CLAIM_LEN];
	size_t n;
	do {
		int64_t now = util_now();
		if (store_reports_claim(b->store, now, now + BOUNCES_LEASE, claim, batch,
					BOUNCES_BATCH, &n) != STORE_OK)
			return;
		for (size_t i = 0; i < n; i++) {
			/* A failure leaves the report claimed: its lease runs out and it is
			 * parsed again then. */
			int rc =
				worker_stopping(w) ? STORE_OK : report_process(b, &batch[i], claim);
			if (rc != STORE_OK)
				log_error("report %lld not applied: the store failed (%d); it is "
					  "retried in %d seconds",
					  (long long)batch[i].id, rc, BOUNCES_LEASE);
		}
		store_reports_free(batch, n);
	} while (n == BOUNCES_BATCH && !worker_stopping(w));
}

static void bounces_run(void *arg, struct worker *w)
{
	struct bounces *b = arg;
	while (worker_wait(w, BOUNCES_POLL))
		bounces_pass(b, w);
}

struct bounces *bounces_start(struct store *s, const struct config *cfg, char *err, size_t errlen)
{
	(void)cfg;
	/* Reports a stopped daemon was parsing are parsed again: nothing of them was
	 * written, since a report's result is one transaction. */
	if (store_reports_recover(s) != STORE_OK) {
		snprintf(err, errlen, "cannot recover the reports being parsed at the last stop");
		return NULL;
	}
	struct bounces *b = xcalloc(1, sizeof(*b));
	b->store = s;
	b->worker = worker_start("report worker", bounces_run, b, err, errlen);
	if (!b->worker) {
		free(b);
		return NULL;
	}
	worker_wake(b->worker); /* those stored before the start, at once */
	return b;
}

void bounces_wake(struct bounces *b)
{
	if (b)
		worker_wake(b->worker);
}

void bounces_stop(struct bounces *b)
{
	if (!b)
		return;
	worker_stop(b->worker);
	free(b);
}
