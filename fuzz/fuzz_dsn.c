/* report_parse on arbitrary bytes: it never crashes, and what it hands the bounce worker
 * (which stores it and turns it into events and suppressions) keeps its promises: bounded,
 * clean UTF-8 without control characters, normalized addresses, status codes of the right
 * shape, and a kind that agrees with its recipients. The first byte chooses where the rest
 * goes: the whole message ('0'), a DSN's delivery-status part ('1'), an ARF's
 * feedback-report part ('2') or a plain bounce's text ('3'), so that the fuzzer does not
 * have to find the MIME structure before it reaches the field readers. */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "fuzz.h"
#include "report.h"
#include "util.h"

/* Each mode's message around the input. */
struct wrap {
	const char *head, *tail;
};

static const struct wrap wraps[] = {
	{"", ""},
	{"From: MAILER-DAEMON@mx.example\r\nContent-Type: multipart/report; "
	 "report-type=delivery-status; boundary=\"=_b\"\r\n\r\n--=_b\r\nContent-Type: "
	 "text/plain\r\n\r\nfailed\r\n--=_b\r\nContent-Type: message/delivery-status\r\n\r\n",
	 "\r\n--=_b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <m@example.net>\r\n"
	 "--=_b--\r\n"},
	{"From: fbl@isp.example\r\nContent-Type: multipart/report; report-type=feedback-report; "
	 "boundary=\"=_b\"\r\n\r\n--=_b\r\nContent-Type: message/feedback-report\r\n\r\n",
	 "\r\n--=_b\r\nContent-Type: message/rfc822\r\n\r\nTo: a@example.org\r\n"
	 "Message-ID: <m@example.net>\r\n\r\nhi\r\n--=_b--\r\n"},
	{"From: MAILER-DAEMON@mx.example\r\nSubject: failure notice\r\n\r\n", ""},
};

/* NUL-terminated within n bytes, valid UTF-8, no control character. */
static void check_text(const char *what, const char *s, size_t n)
{
	FUZZ_CHECK(memchr(s, '\0', n) != NULL, "%s is not terminated", what);
	FUZZ_CHECK(util_utf8(s), "%s is not UTF-8", what);
	for (const char *p = s; *p; p++)
		FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "%s holds byte 0x%02x", what,
			   (unsigned char)*p);
}

static bool status_shaped(const char *s)
{
	if ((s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	const char *p = s + 2;
	for (int part = 0; part < 2; part++) {
		size_t n = 0;
		while (p[n] >= '0' && p[n] <= '9')
			n++;
		if (n < 1 || n > 3)
			return false;
		p += n;
		if (part == 0 && *p++ != '.')
			return false;
	}
	return *p == '\0';
}

static void check_rcpt(const struct report *r, const struct report_rcpt *x)
{
	check_text("email", x->email, sizeof(x->email));
	check_text("status", x->status, sizeof(x->status));
	check_text("diagnostic", x->diagnostic, sizeof(x->diagnostic));
	if (x->email[0]) {
		char again[ADDR_MAX];
		const char *why;
		FUZZ_CHECK(addr_normalize(x->email, again, &why) == 0 &&
				   strcmp(again, x->email) == 0,
			   "email '%s' is not normalized", x->email);
	}
	FUZZ_CHECK(!x->status[0] || status_shaped(x->status), "status '%s'", x->status);
	FUZZ_CHECK((x->action == REPORT_COMPLAINT) == (r->kind == REPORT_ARF),
		   "action %d in a %s report", x->action, report_kind_name(r->kind));
	if (r->kind == REPORT_TEXT)
		FUZZ_CHECK(x->status[0] == '4' || x->status[0] == '5',
			   "a text report classified by '%s'", x->status);
	/* Hard: a failure about the address or the mailbox (5.0.x, 5.1.x, 5.2.x, 5.5.x). */
	bool mailbox = x->status[0] == '5' && x->status[2] && strchr("0125", x->status[2]) &&
		       x->status[3] == '.';
	FUZZ_CHECK(report_hard(x) == (x->action == REPORT_FAILED && mailbox),
		   "report_hard disagrees for %d '%s'", x->action, x->status);
}

static void check_report(const struct report *r)
{
	check_text("message_id", r->message_id, sizeof(r->message_id));
	check_text("reporting_mta", r->reporting_mta, sizeof(r->reporting_mta));
	check_text("feedback_type", r->feedback_type, sizeof(r->feedback_type));
	FUZZ_CHECK(!strpbrk(r->message_id, " \t"), "message id '%s'", r->message_id);
	for (const char *p = r->feedback_type; *p; p++)
		FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'), "feedback type '%s'", r->feedback_type);
	FUZZ_CHECK(r->n <= REPORT_RCPTS_MAX, "%zu recipients", r->n);
	FUZZ_CHECK((r->kind == REPORT_UNPARSED) == (r->n == 0), "%s report with %zu recipients",
		   report_kind_name(r->kind), r->n);
	FUZZ_CHECK(r->kind == REPORT_DSN || r->n <= 1, "%s report with %zu recipients",
		   report_kind_name(r->kind), r->n);
	for (size_t i = 0; i < r->n; i++)
		check_rcpt(r, &r->rcpts[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	unsigned mode = data[0] & 3u;
	GString *s = g_string_new(wraps[mode].head);
	g_string_append_len(s, (const char *)data + 1, (gssize)(size - 1));
	g_string_append(s, wraps[mode].tail);
	/* An exact copy, so AddressSanitizer sees a read past the end. */
	char *buf = malloc(s->len ? s->len : 1);
	memcpy(buf, s->str, s->len);
	struct report r;
	report_parse(buf, s->len, &r);
	check_report(&r);
	report_free(&r);
	free(buf);
	g_string_free(s, TRUE);
	return 0;
}
