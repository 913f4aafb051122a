/* Send requests: validates a request body in either dialect (Netcore v5/v6 or SendGrid v3)
 * and turns it into one canonical JSON payload, the form queued and later composed into
 * MIME. Pure: no I/O. Nothing here can put a control character (CR, LF, NUL...) into a
 * header. */
#ifndef POSTERN_SEND_H
#define POSTERN_SEND_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "addr.h"

#define SEND_MAX_RECIPIENTS 1000
#define SEND_SUBJECT_MAX    998
#define SEND_NAME_MAX	    256
/* Scheduled sending: a send time at most this far ahead (seconds), and one at most
 * SEND_SLACK ahead is now. */
#define SEND_SCHEDULE_MAX (72 * 3600)
#define SEND_SLACK	  5

enum send_dialect { SEND_NETCORE, SEND_SENDGRID };

struct send_request {
	char from[ADDR_MAX]; /* normalized From address */
	int recipients;	     /* to + cc + bcc over all personalizations */
	bool sandbox;	     /* SendGrid's sandbox mode: check everything, send nothing */
	cJSON *payload;	     /* canonical form; owned */
	/* The latest send time asked for and the field that asks for it (send_schedule's
	 * bound); then, from send_schedule, the first personalization's send time, 0 for now. */
	int64_t latest_send_at;
	char latest_field[48];
	int64_t send_at;
};

/* What was wrong: the field's path ("personalizations[0].to[1].email") and what to do. */
struct send_problem {
	char field[160];
	char message[256];
};

/* Returns 0 with out filled, or -1 with why filled. */
int send_parse(enum send_dialect d, const cJSON *body, struct send_request *out,
	       struct send_problem *why);
void send_request_free(struct send_request *r);
/* Applies a parsed request's send times at now (kept apart so that send_parse needs no
 * clock): a time more than SEND_SCHEDULE_MAX ahead is refused naming its field; one at most
 * SEND_SLACK ahead, or past, means now and leaves the payload. Personalizations are ordered
 * by due time (stably, those due now first), each later one keeping its "send_at", and
 * r->send_at is the first one's. Returns 0, or -1 with why filled and r freed. */
int send_schedule(struct send_request *r, int64_t now, struct send_problem *why);
/* True when a custom header may not be set by a client: identity (From, Sender,
 * Return-Path, Resent-*, Received, X-Original-From), what receivers trust from earlier hops
 * (DKIM-*, ARC-*, DomainKey-Signature, Authentication-Results, Received-SPF), the blind
 * list, and everything Postern writes itself (To, Subject, Date, Message-ID, MIME-Version,
 * Content-*...). */
bool send_header_reserved(const char *name);
/* True when s (valid UTF-8) holds no control character: none of C0 but TAB, no DEL, no C1.
 * What goes into a header must pass, since a client shows it decoded. */
bool send_text_clean(const char *s);
/* True when cid is a msg-id token (RFC 5322 dot-atom-text, optionally "@" dot-atom-text),
 * optionally within <>: "logo@example.com", "<ii_139db99fdb5c3704>". */
bool send_content_id_ok(const char *cid);

#endif
