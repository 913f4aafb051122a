/* Unit tests for report: real-world layouts of what comes back to a return path (the
 * fixtures in tests/unit/reports, as Postfix, Exim, Sendmail, Exchange, Gmail, qmail, Yahoo
 * and Microsoft write them), every field the parser fills for each, and its bounds on
 * crafted input: many recipients, long or dirty diagnostics, garbage. */
#include "testutil.h"

#include <glib.h>

#include "report.h"
#include "util.h"

#ifndef REPORT_FIXTURES
#error "REPORT_FIXTURES names the fixture directory (CMakeLists.txt)"
#endif

#define FIXTURE_MAX (1024 * 1024)

struct rcpt_expect {
	const char *email;
	enum report_action action;
	const char *status;
	const char *diagnostic;
};

struct expect {
	const char *file;
	enum report_kind kind;
	const char *message_id;
	const char *reporting_mta;
	const char *feedback_type;
	size_t n;
	struct rcpt_expect r[2];
};

static const struct expect fixtures[] = {
	{"postfix-5.1.1.eml",
	 REPORT_DSN,
	 "8f14e45fceea167a5a36dedd4bea2543@example.net",
	 "mx1.shop.example",
	 "",
	 1,
	 {{"nobody@shop.example", REPORT_FAILED, "5.1.1",
	   "550 5.1.1 <nobody@shop.example>: Recipient address rejected: User unknown in "
	   "virtual mailbox table"}}},
	/* Written by a private Postfix 3.7 (tests/integration/test_bounces_postfix.py): its
	 * notification in quoted-printable, the whole original returned. */
	{"postfix-real.eml",
	 REPORT_DSN,
	 "ef049d829781404a99e3c6732d02975e@acme.test",
	 "relay.provider.test",
	 "",
	 1,
	 {{"dead@example.org", REPORT_FAILED, "5.1.1",
	   "550 5.1.1 <dead@example.org>: Recipient address rejected: User unknown"}}},
	{"postfix-delayed.eml",
	 REPORT_DSN,
	 "c9f0f895fb98ab9159f51fd0297e236d@example.net",
	 "mx1.shop.example",
	 "",
	 1,
	 {{"slow@far.example", REPORT_DELAYED, "4.4.1",
	   "connect to mx.far.example[192.0.2.44]:25: Connection timed out"}}},
	{"exim-multi.eml",
	 REPORT_DSN,
	 "45c48cce2e2d7fbdea1afc51c7c6ad26@example.net",
	 "relay.corp.example",
	 "",
	 2,
	 {{"alice@corp.example", REPORT_FAILED, "5.0.0",
	   "550 5.1.1 <alice@corp.example>: Recipient address rejected: User unknown in local "
	   "recipient table"},
	  {"bob@corp.example", REPORT_FAILED, "5.0.0",
	   "550 5.2.2 <bob@corp.example>: Mailbox full"}}},
	{"sendmail.eml",
	 REPORT_DSN,
	 "D3D9446802A44259755D38E6D163E820@example.net",
	 "mail.old.example",
	 "",
	 1,
	 {{"carol@old.example", REPORT_FAILED, "5.1.1",
	   "550 5.1.1 <carol@old.example>... User unknown"}}},
	{"exchange-ndr.eml",
	 REPORT_DSN,
	 "6512bd43d9caa6e02c990b0a82652dca@example.net",
	 "BN8PR12MB3412.namprd12.prod.outlook.com",
	 "",
	 1,
	 {{"nobody@contoso.example", REPORT_FAILED, "5.1.10",
	   "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient nobody@contoso.example not "
	   "found by SMTP address lookup"}}},
	{"gmail-5.1.1.eml",
	 REPORT_DSN,
	 "c20ad4d76fe97759aa27a0c99bff6710@example.net",
	 "googlemail.com",
	 "",
	 1,
	 {{"no.such.user.4417@gmail.com", REPORT_FAILED, "5.1.1",
	   "550-5.1.1 The email account that you tried to reach does not exist. Please try "
	   "550-5.1.1 double-checking the recipient's email address for typos or 550-5.1.1 "
	   "unnecessary spaces. For more information, go to 550 5.1.1 "
	   "https://support.google.com/mail/?p=NoSuchUser "
	   "a640c23a62f3a-b0e5ab8b9c1si123456366b.301 - gsmtp"}}},
	{"base64-dsn.eml",
	 REPORT_DSN,
	 "aab3238922bcc25a6f606eb525ffdc56@example.net",
	 "mta7.appliance.example",
	 "",
	 1,
	 {{"dave@appliance.example", REPORT_FAILED, "5.1.2",
	   "550 5.1.2 Host unknown: appliance.example has no MX"}}},
	/* The UTF-8 local part ("jürgen") has no normalized form: skipped. */
	{"global-dsn.eml",
	 REPORT_DSN,
	 "9bf31c7ff062936a96d3c8bd1f8f2ff3@example.net",
	 "mx.bücher.example",
	 "",
	 2,
	 {{"info@xn--bcher-kva.example", REPORT_FAILED, "5.1.1", "unknown user: \"info\""},
	  {"post@xn--bcher-kva.example", REPORT_DELIVERED, "2.0.0", ""}}},
	/* Parsed as before; since the review no hard bounce (a policy refusal: report_hard). */
	{"policy-5.7.1.eml",
	 REPORT_DSN,
	 "",
	 "out.isp.example",
	 "",
	 1,
	 {{"erin@strict.example", REPORT_FAILED, "5.7.1",
	   "550 5.7.1 Service unavailable; client [198.51.100.7] blocked using "
	   "zen.spamhaus.org"}}},
	{"qmail.eml",
	 REPORT_TEXT,
	 "8e296a067a37563370ded05f5a3bf3ec@example.net",
	 "",
	 "",
	 1,
	 {{"frank@vintage.example", REPORT_FAILED, "5.1.1",
	   "Remote host said: 550 5.1.1 Recipient address rejected: User unknown"}}},
	{"text-no-address.eml",
	 REPORT_TEXT,
	 "",
	 "",
	 "",
	 1,
	 {{"", REPORT_FAILED, "5.1.1", "550 5.1.1 User unknown"}}},
	{"arf-yahoo.eml",
	 REPORT_ARF,
	 "eccbc87e4b5ce2fe28308fd9f2a7baf3@example.net",
	 "Yahoo!-Mail-Feedback/2.0",
	 "abuse",
	 1,
	 {{"grace.hopper@yahoo.example", REPORT_COMPLAINT, "", "abuse"}}},
	/* No Original-Rcpt-To: the embedded message's To may not be the complainer (a Cc or
	 * Bcc), so the report names no one (bounces.c: the only recipient, if one). */
	{"arf-microsoft.eml",
	 REPORT_ARF,
	 "a5771bce93e200c36f7cd9dfd0e5deaa@example.net",
	 "Hotmail FBL",
	 "abuse",
	 1,
	 {{"", REPORT_COMPLAINT, "", "abuse"}}},
	{"autoreply.eml", REPORT_UNPARSED, "", "", "", 0, {{0}}},
	/* Out-of-office replies: dates that look like status codes ("bis 5.1.27", "until
	 * 4.1.26"), one after a "Status:" in an Auto-Submitted reply. */
	{"ooo-de.eml", REPORT_UNPARSED, "", "", "", 0, {{0}}},
	{"ooo-en.eml", REPORT_UNPARSED, "", "", "", 0, {{0}}},
	{"garbage.eml", REPORT_UNPARSED, "", "", "", 0, {{0}}},
};

static char *read_fixture(const char *name, size_t *len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", REPORT_FIXTURES, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	char *buf = malloc(FIXTURE_MAX);
	assert_non_null(buf);
	*len = fread(buf, 1, FIXTURE_MAX, f);
	fclose(f);
	return buf;
}

/* What every report must be, whatever came in: bounded, clean text, a consistent shape. */
static void assert_well_formed(const struct report *r)
{
	assert_true(util_utf8(r->message_id) && util_utf8(r->reporting_mta) &&
		    util_utf8(r->feedback_type));
	assert_true(r->n <= REPORT_RCPTS_MAX);
	assert_true((r->kind == REPORT_UNPARSED) == (r->n == 0));
	for (size_t i = 0; i < r->n; i++) {
		const char *d = r->rcpts[i].diagnostic;
		assert_true(util_utf8(d));
		for (const char *p = d; *p; p++)
			assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
	}
}

static void assert_report(const struct report *r, const struct expect *e)
{
	assert_well_formed(r);
	assert_string_equal(report_kind_name(r->kind), report_kind_name(e->kind));
	assert_string_equal(r->message_id, e->message_id);
	assert_string_equal(r->reporting_mta, e->reporting_mta);
	assert_string_equal(r->feedback_type, e->feedback_type);
	assert_int_equal(r->n, e->n);
	for (size_t i = 0; i < e->n; i++) {
		assert_string_equal(r->rcpts[i].email, e->r[i].email);
		assert_int_equal(r->rcpts[i].action, e->r[i].action);
		assert_string_equal(r->rcpts[i].status, e->r[i].status);
		assert_string_equal(r->rcpts[i].diagnostic, e->r[i].diagnostic);
	}
}

static void test_fixture(void **state)
{
	const struct expect *e = *state;
	size_t len;
	char *data = read_fixture(e->file, &len);
	struct report r;
	report_parse(data, len, &r);
	assert_report(&r, e);
	report_free(&r);
	free(data);
}

/* The same report with CRLF line ends (as it arrives over SMTP) reads the same. */
static void test_crlf_reads_like_lf(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(fixtures); i++) {
		if (strcmp(fixtures[i].file, "garbage.eml") == 0)
			continue;
		size_t len;
		char *data = read_fixture(fixtures[i].file, &len);
		char *crlf = malloc(2 * len + 1);
		size_t n = 0;
		for (size_t j = 0; j < len; j++) {
			if (data[j] == '\n' && (j == 0 || data[j - 1] != '\r'))
				crlf[n++] = '\r';
			crlf[n++] = data[j];
		}
		struct report r;
		report_parse(crlf, n, &r);
		assert_report(&r, &fixtures[i]);
		report_free(&r);
		free(crlf);
		free(data);
	}
}

static void parse_text(const char *text, struct report *r)
{
	report_parse(text, strlen(text), r);
	assert_well_formed(r);
}

#define DSN_HEAD                                                                                   \
	"From: MAILER-DAEMON@mx.example\nTo: b-1-0@bounces.example.net\nMIME-Version: 1.0\n"       \
	"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n"          \
	"--B\nContent-Type: text/plain\n\nDelivery failed.\n"                                      \
	"--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"

static void test_recipients_are_bounded(void **state)
{
	(void)state;
	GString *s = g_string_new(DSN_HEAD);
	for (int i = 0; i < 3 * REPORT_RCPTS_MAX; i++)
		g_string_append_printf(s,
				       "Final-Recipient: rfc822; u%d@example.com\nAction: "
				       "failed\nStatus: 5.1.1\n\n",
				       i);
	g_string_append(s, "--B--\n");
	struct report r;
	parse_text(s->str, &r);
	assert_int_equal(r.kind, REPORT_DSN);
	assert_int_equal(r.n, REPORT_RCPTS_MAX);
	assert_string_equal(r.rcpts[REPORT_RCPTS_MAX - 1].email, "u99@example.com");
	report_free(&r);
	g_string_free(s, TRUE);
}

/* A long diagnostic is cut on a character boundary; control characters go, bytes that are
 * not UTF-8 become '?', and a missing Action is read from the status's class. */
static void test_diagnostics_are_clean_and_capped(void **state)
{
	(void)state;
	GString *s = g_string_new(
		DSN_HEAD "Final-Recipient: rfc822; <A@Example.COM>\n"
			 "Status: 4.2.2 (mailbox full)\nDiagnostic-Code: smtp; 452 \x01\xff"
			 "\x7f full\n");
	for (int i = 0; i < 400; i++)
		g_string_append(s, " é");
	g_string_append(s, "\n\n--B--\n");
	struct report r;
	parse_text(s->str, &r);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.rcpts[0].email, "a@example.com");
	assert_int_equal(r.rcpts[0].action, REPORT_DELAYED);
	assert_string_equal(r.rcpts[0].status, "4.2.2");
	assert_true(strncmp(r.rcpts[0].diagnostic, "452 ? full é é", 16) == 0);
	size_t n = strlen(r.rcpts[0].diagnostic);
	assert_true(n < REPORT_DIAGNOSTIC_MAX && n > REPORT_DIAGNOSTIC_MAX - 5);
	assert_false(report_hard(&r.rcpts[0]));
	report_free(&r);
	g_string_free(s, TRUE);
}

/* A delivery-status part that names no one falls back to the text of the report. */
static void test_empty_status_part_falls_back_to_the_text(void **state)
{
	(void)state;
	struct report r;
	parse_text("From: x@mx.example\nContent-Type: multipart/report; "
		   "report-type=delivery-status; boundary=B\n\n--B\nContent-Type: text/plain\n\n"
		   "<kim@example.org>: 550-5.1.1 no such user\n--B\nContent-Type: "
		   "message/delivery-status\n\nReporting-MTA: dns; mx.example\n--B--\n",
		   &r);
	assert_int_equal(r.kind, REPORT_TEXT);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.rcpts[0].email, "kim@example.org");
	assert_string_equal(r.rcpts[0].status, "5.1.1");
	assert_string_equal(r.rcpts[0].diagnostic, "<kim@example.org>: 550-5.1.1 no such user");
	report_free(&r);
}

/* A text bounce's status: a failure code, not the success before it on its line, qmail's
 * "(#5.1.1)" too; its recipient from the line before. */
static void test_text_status_is_a_failure_code(void **state)
{
	(void)state;
	struct report r;
	parse_text("Subject: x\n\nrelay said 250 2.0.0 Ok, then 450-4.2.0 <z@example.org> later\n",
		   &r);
	assert_int_equal(r.kind, REPORT_TEXT);
	assert_string_equal(r.rcpts[0].status, "4.2.0");
	assert_int_equal(r.rcpts[0].action, REPORT_DELAYED);
	assert_string_equal(r.rcpts[0].email, "z@example.org");
	report_free(&r);
	parse_text("Subject: x\n\n<Sam@Example.org>:\r\nSorry, no mailbox here by that name. "
		   "(#5.1.1)\r\n",
		   &r);
	assert_string_equal(r.rcpts[0].status, "5.1.1");
	assert_int_equal(r.rcpts[0].action, REPORT_FAILED);
	assert_string_equal(r.rcpts[0].email, "sam@example.org");
	assert_string_equal(r.rcpts[0].diagnostic, "Sorry, no mailbox here by that name. (#5.1.1)");
	report_free(&r);
	/* The return path quoted as the sender is never taken for the recipient. */
	parse_text("Subject: x\n\nFrom <B-0123abcd-0123456789@bounces.example.net> to "
		   "<kim@example.org>: 550 5.1.1 unknown\n",
		   &r);
	assert_string_equal(r.rcpts[0].email, "kim@example.org");
	report_free(&r);
	parse_text("Subject: x\n\n<b-0123abcd-0123456789@bounces.example.net>:\n550 5.1.1 no\n",
		   &r);
	assert_string_equal(r.rcpts[0].email, "");
	report_free(&r);
}

/* A status in free text counts after an SMTP reply code of its class or a label, never
 * bare; an automatic reply that is no report counts only one after a reply code. */
static void test_text_status_needs_a_reply_code_or_label(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *status; /* NULL: unparsed */
	} cases[] = {
		{"Subject: x\n\n<a@b.test>: 550 #5.1.1 unknown\n", "5.1.1"},
		{"Subject: x\n\n<a@b.test>: Status: 5.2.1\n", "5.2.1"},
		{"Subject: x\n\n<a@b.test>: Diagnostic-Code: smtp; 5.1.1 no\n", "5.1.1"},
		{"Subject: x\n\nhost mx.b.test said: 5.1.1 <a@b.test> unknown\n", "5.1.1"},
		{"Subject: x\n\nerror 5.1.1 unknown user <a@b.test>\n", NULL},
		{"Subject: x\n\n<a@b.test>: 450 5.1.1 mixed classes\n", NULL},
		{"Subject: x\n\n<a@b.test>: 1550 5.1.1 not a reply code\n", NULL},
		{"Subject: x\n\nIch bin bis 5.1.27 nicht im Buero.\n", NULL},
		{"Subject: x\nAuto-Submitted: auto-replied\n\n<a@b.test>: Status: 5.1.1\n", NULL},
		{"Subject: x\nAuto-Submitted: No\n\n<a@b.test>: Status: 5.1.1\n", "5.1.1"},
		/* Exim's text bounces are Auto-Submitted, with the reply quoted. */
		{"Subject: x\nAuto-Submitted: auto-replied\n\n  a@b.test\n    SMTP error from "
		 "remote mail server after RCPT TO:<a@b.test>:\n    550 5.1.1 unknown\n",
		 "5.1.1"},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct report r;
		parse_text(cases[i].text, &r);
		if (!cases[i].status) {
			assert_int_equal(r.kind, REPORT_UNPARSED);
		} else {
			assert_int_equal(r.kind, REPORT_TEXT);
			assert_string_equal(r.rcpts[0].status, cases[i].status);
			assert_string_equal(r.rcpts[0].email, "a@b.test");
		}
		report_free(&r);
	}
}

/* A multipart/report is read whatever Auto-Submitted says (Postfix's DSNs carry it). */
static void test_auto_submitted_report_still_read(void **state)
{
	(void)state;
	struct report r;
	parse_text("From: x@mx.example\nAuto-Submitted: auto-replied\nContent-Type: "
		   "multipart/report; report-type=delivery-status; boundary=B\n\n--B\n"
		   "Content-Type: text/plain\n\n<kim@example.org>: Status: 5.1.1\n--B\n"
		   "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n--B--\n",
		   &r);
	assert_int_equal(r.kind, REPORT_TEXT);
	assert_string_equal(r.rcpts[0].status, "5.1.1");
	report_free(&r);
}

static void test_nothing_to_read_is_unparsed(void **state)
{
	(void)state;
	const char *inputs[] = {"", "\n\n\n", "no header here at all",
				"Subject: hi\n\n4.94.2 and 192.5.1.1",
				"Content-Type: multipart/report; boundary=B\n\n--B\n--B--\n"};
	for (size_t i = 0; i < ARRAY_LEN(inputs); i++) {
		struct report r;
		parse_text(inputs[i], &r);
		assert_int_equal(r.kind, REPORT_UNPARSED);
		assert_int_equal(r.n, 0);
		report_free(&r);
	}
}

static void test_hard_bounces(void **state)
{
	(void)state;
	struct report_rcpt r = {.action = REPORT_FAILED};
	const char *hard_dsn[] = {"5.0.0", "5.1.1", "5.1.10", "5.2.2", "5.5.0"};
	const char *blocked[] = {"5.3.0", "5.4.4", "5.6.0", "5.7.1", "5.7.26", "5.10.1", "5."};
	for (size_t i = 0; i < ARRAY_LEN(hard_dsn); i++) {
		strcpy(r.status, hard_dsn[i]);
		assert_true(report_hard(&r));
	}
	for (size_t i = 0; i < ARRAY_LEN(blocked); i++) {
		strcpy(r.status, blocked[i]);
		assert_false(report_hard(&r));
	}
	strcpy(r.status, "4.2.2");
	assert_false(report_hard(&r));
	strcpy(r.status, "");
	assert_false(report_hard(&r));
	r.action = REPORT_DELAYED;
	strcpy(r.status, "5.1.1");
	assert_false(report_hard(&r));
	r.action = REPORT_COMPLAINT;
	assert_false(report_hard(&r));

	const char *hard[] = {"5.1.1", "5.1.2", "5.1.3", "5.1.10", "5.2.1"};
	const char *soft[] = {"5.1.0", "5.1.4",	 "5.1.100", "5.2.2", "5.7.1",
			      "4.1.1", "5.1.1 ", "",	    "5.1"};
	for (size_t i = 0; i < ARRAY_LEN(hard); i++)
		assert_true(report_status_hard(hard[i]));
	for (size_t i = 0; i < ARRAY_LEN(soft); i++)
		assert_false(report_status_hard(soft[i]));
	assert_false(report_status_hard(NULL));
}

static void test_kind_names(void **state)
{
	(void)state;
	assert_string_equal(report_kind_name(REPORT_DSN), "dsn");
	assert_string_equal(report_kind_name(REPORT_ARF), "arf");
	assert_string_equal(report_kind_name(REPORT_TEXT), "text");
	assert_string_equal(report_kind_name(REPORT_UNPARSED), "unparsed");
}

int main(void)
{
	const struct CMUnitTest more[] = {
		cmocka_unit_test(test_crlf_reads_like_lf),
		cmocka_unit_test(test_recipients_are_bounded),
		cmocka_unit_test(test_diagnostics_are_clean_and_capped),
		cmocka_unit_test(test_empty_status_part_falls_back_to_the_text),
		cmocka_unit_test(test_text_status_is_a_failure_code),
		cmocka_unit_test(test_text_status_needs_a_reply_code_or_label),
		cmocka_unit_test(test_auto_submitted_report_still_read),
		cmocka_unit_test(test_nothing_to_read_is_unparsed),
		cmocka_unit_test(test_hard_bounces),
		cmocka_unit_test(test_kind_names),
	};
	struct CMUnitTest tests[ARRAY_LEN(fixtures) + ARRAY_LEN(more)];
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_LEN(fixtures); i++)
		tests[n++] = tu_row_test(fixtures[i].file, test_fixture, &fixtures[i]);
	for (size_t i = 0; i < ARRAY_LEN(more); i++)
		tests[n++] = more[i];
	return _cmocka_run_group_tests("report", tests, n, NULL, NULL);
}
