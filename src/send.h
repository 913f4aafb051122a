/* Send requests: validates a request body in either dialect (Netcore v5/v6 or SendGrid v3)
 * and turns it into one canonical JSON payload, the form queued and later composed into
 * MIME. Pure: no I/O. Nothing here can put a control character (CR, LF, NUL...) into a
 * header. */
#ifndef POSTERN_SEND_H
#define POSTERN_SEND_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "addr.h"

#define SEND_MAX_RECIPIENTS 1000
#define SEND_SUBJECT_MAX    998
#define SEND_NAME_MAX	    256

enum send_dialect { SEND_NETCORE, SEND_SENDGRID };

struct send_request {
	char from[ADDR_MAX]; /* normalized From address */
	int recipients;	     /* to + cc + bcc over all personalizations */
	bool sandbox;	     /* SendGrid's sandbox mode: check everything, send nothing */
	cJSON *payload;	     /* canonical form; owned */
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
