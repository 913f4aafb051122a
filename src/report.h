/* Reports that come back to the return path, parsed: delivery status notifications
 * (RFC 3464, multipart/report; report-type=delivery-status), feedback reports of complaints
 * (ARF, RFC 5965, report-type=feedback-report), and anything else classified by a status
 * code found in its text when one is there: right after an SMTP reply code of its class
 * ("550 5.1.1", "550-5.1.1", "550 #5.1.1"), after a label ("Status:", "Diagnostic-Code:",
 * "... said:") or as qmail's "(#5.1.1)", never a bare d.d.d (dates and versions look
 * alike). An automatic message (Auto-Submitted other than "no") that is no multipart/report,
 * an out-of-office reply say, counts only a status after an SMTP reply code. MIME by GMime. Pure:
 * no I/O besides memory. */
#ifndef POSTERN_REPORT_H
#define POSTERN_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"

#define REPORT_RCPTS_MAX      100 /* recipients read from one report; the rest are ignored */
#define REPORT_STATUS_MAX     16
#define REPORT_DIAGNOSTIC_MAX 512
#define REPORT_MSGID_MAX      256

enum report_kind {
	REPORT_UNPARSED, /* nothing in it says what became of a message: kept for a person */
	REPORT_DSN,	 /* multipart/report; report-type=delivery-status */
	REPORT_ARF,	 /* multipart/report; report-type=feedback-report */
	REPORT_TEXT,	 /* no report structure, but a status code in the text classifies it */
};

enum report_action {
	REPORT_FAILED,	  /* Action: failed (a bounce; hard: see report_hard) */
	REPORT_DELAYED,	  /* Action: delayed (a deferral: no suppression) */
	REPORT_DELIVERED, /* Action: delivered, relayed or expanded (nothing to do) */
	REPORT_COMPLAINT, /* an ARF report: the recipient marked the message as spam */
};

struct report_rcpt {
	/* Final-Recipient (else Original-Recipient) of a DSN, normalized (addr_normalize);
	 * for ARF the Original-Rcpt-To only (the embedded message's To may be someone else:
	 * the complainer may have been a Cc or Bcc); "" when the report does not say (a
	 * text bounce, often). */
	char email[ADDR_MAX];
	enum report_action action;
	char status[REPORT_STATUS_MAX]; /* "5.1.1"; "" when there is none */
	/* The Diagnostic-Code's text without its type ("smtp; "), unfolded, control
	 * characters removed; for text and ARF reports the line the status was found on, or
	 * the ARF Feedback-Type; "" when none. */
	char diagnostic[REPORT_DIAGNOSTIC_MAX];
};

struct report {
	enum report_kind kind;
	/* The original message's Message-ID without angle brackets, from the embedded
	 * message/rfc822 or text/rfc822-headers part (else a DSN's X-Original-Message-ID, as
	 * Gmail writes it, or, for a text report, a Message-ID header line found in the text);
	 * "" when none. */
	char message_id[REPORT_MSGID_MAX];
	/* Reporting-MTA without its type; for ARF, else User-Agent, else Reported-Domain. */
	char reporting_mta[256];
	char feedback_type[32];	   /* ARF's Feedback-Type ("abuse", ...); "" otherwise */
	struct report_rcpt *rcpts; /* malloc'd; n of them */
	size_t n;
};

/* Parses a report (the whole message as received, headers and body, any line ends).
 * Never fails: what cannot be read is REPORT_UNPARSED with n == 0. Free with
 * report_free. */
void report_parse(const char *data, size_t len, struct report *out);
void report_free(struct report *r);
/* A hard bounce, which suppresses the recipient: Action failed with a status of class 5
 * whose subject is 0, 1, 2 or 5 (5.0.x, 5.1.x, 5.2.x, 5.5.x: the address or the mailbox,
 * or unspecified). 5.3.x, 5.4.x, 5.6.x and 5.7.x (system, network, content, policy: a
 * blocklisted relay, say) say nothing about the address: such a failure is "blocked". */
bool report_hard(const struct report_rcpt *r);
/* A synchronous refusal's enhanced status that means the address itself is bad (5.1.1,
 * 5.1.2, 5.1.3, 5.1.10, 5.2.1): the relay's RCPT refusal that suppresses. */
bool report_status_hard(const char *status);
/* "dsn", "arf", "text" or "unparsed". */
const char *report_kind_name(enum report_kind k);

#endif
