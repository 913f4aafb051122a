/* Unit tests for submission: which messages are refused and why, and that the fix-ups of a
 * submission server cut and add exactly their fields, leaving every other byte as the
 * client sent it. */
#include "testutil.h"

#include "submission.h"

/* 2026-01-01T00:00:00Z */
#define DATE  INT64_C(1767225600)
#define ID    "018f00aabbccddeeff00112233445566"
#define BODY  "\r\nHello.\r\n"
#define DATED "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <x1@acme.test>\r\n"

static int make(const char *text, struct submission *s, char *why)
{
	return submission_make(text, strlen(text), ID, DATE, s, why, 256);
}

/* A message the client sent whole: it must come back byte for byte. */
static void assert_unchanged(const char *text)
{
	struct submission s;
	char why[256] = "";
	if (make(text, &s, why) < 0)
		fail_msg("refused: %s", why);
	assert_int_equal(s.len, strlen(text));
	assert_memory_equal(s.data, text, s.len);
	submission_free(&s);
}

static void assert_refused(const char *text, const char *expected)
{
	struct submission s;
	char why[256] = "";
	assert_int_equal(make(text, &s, why), -1);
	tu_assert_contains(why, expected);
}

/* The identities read from text, which must be accepted. */
static void assert_identities(const char *text, const char *from, const char *sender)
{
	struct submission s;
	char why[256] = "";
	if (make(text, &s, why) < 0)
		fail_msg("refused: %s", why);
	assert_string_equal(s.from, from);
	assert_string_equal(s.sender, sender);
	submission_free(&s);
}

static void test_one_from(void **state)
{
	(void)state;
	assert_identities("From: Ann <Ann@Acme.TEST>\r\nTo: bob@example.test\r\n" DATED BODY,
			  "ann@acme.test", "");
}

static void test_malformed_from_refused(void **state)
{
	(void)state;
	assert_refused("To: bob@example.test\r\n" DATED BODY, "no From header");
	assert_refused("From: a@acme.test\r\nFrom: b@acme.test\r\n" DATED BODY,
		       "exactly one From header");
	assert_refused("From: a@acme.test, b@acme.test\r\n" DATED BODY, "exactly one address");
	assert_refused("From: Team: a@acme.test;\r\n" DATED BODY, "exactly one address");
	assert_refused("From: \r\n" DATED BODY, "exactly one address");
	assert_refused("From: <ann@-acme-.test>\r\n" DATED BODY, "address cannot be used: ");
	assert_refused("", "");
}

static void test_encoded_comma_is_one_address(void **state)
{
	(void)state;
	assert_unchanged("From: =?utf-8?q?Smith=2C_John?= <john@acme.test>\r\n" DATED BODY);
}

static void test_sender(void **state)
{
	(void)state;
	assert_identities("From: a@acme.test\r\nSender: Ops <OPS@acme.test>\r\n" DATED BODY,
			  "a@acme.test", "ops@acme.test");
	assert_refused(
		"From: a@acme.test\r\nSender: o@acme.test\r\nSender: p@acme.test\r\n" DATED BODY,
		"at most one Sender header");
	assert_refused("From: a@acme.test\r\nSender: o@acme.test, p@acme.test\r\n" DATED BODY,
		       "Sender header must hold exactly one address");
}

static void assert_made(const char *text, const char *expected)
{
	struct submission s;
	char why[256] = "";
	if (make(text, &s, why) < 0)
		fail_msg("refused: %s", why);
	assert_int_equal(s.len, strlen(expected));
	assert_string_equal(s.data, expected);
	submission_free(&s);
}

static void test_folded_bcc_removed(void **state)
{
	(void)state;
	assert_made("From: a@acme.test\r\nBcc: x@example.test,\r\n\ty@example.test,\r\n "
		    "z@example.test\r\nTo: bob@example.test\r\nbcc: w@example.test\r\n" DATED BODY,
		    "From: a@acme.test\r\nTo: bob@example.test\r\n" DATED BODY);
}

static void test_last_bcc_removed(void **state)
{
	(void)state;
	assert_made(DATED "From: a@acme.test\r\nBcc: x@example.test,\r\n y@example.test\r\n" BODY,
		    DATED "From: a@acme.test\r\n" BODY);
	/* No body at all: the field is the last line. */
	assert_made(DATED "From: a@acme.test\r\nBcc: x@example.test\r\n",
		    DATED "From: a@acme.test\r\n");
}

static void test_missing_fields_added(void **state)
{
	(void)state;
	assert_made("From: a@Acme.test\r\n" BODY,
		    "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <" ID
		    "@acme.test>\r\nFrom: a@Acme.test\r\n" BODY);
	assert_made("From: a@acme.test\r\nmessage-id: <own@client>\r\n" BODY,
		    "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nFrom: a@acme.test\r\nmessage-id: "
		    "<own@client>\r\n" BODY);
	assert_made("DATE: Fri, 2 Jan 2026 10:00:00 +0100\r\nFrom: a@acme.test\r\n" BODY,
		    "Message-ID: <" ID "@acme.test>\r\nDATE: Fri, 2 Jan 2026 10:00:00 "
		    "+0100\r\nFrom: a@acme.test\r\n" BODY);
}

/* The Message-ID its recipients see, for its events' smtp_id. */
static void assert_message_id(const char *text, const char *want)
{
	struct submission s;
	char why[256] = "";
	if (make(text, &s, why) < 0)
		fail_msg("refused: %s", why);
	assert_string_equal(s.message_id, want);
	submission_free(&s);
}

static void test_message_id_reported(void **state)
{
	(void)state;
	assert_message_id("From: a@Acme.test\r\n" BODY, "<" ID "@acme.test>");
	assert_message_id("From: a@acme.test\r\nmessage-id: <own@client>\r\n" BODY, "<own@client>");
	/* Folded, with a comment; the first of two. */
	assert_message_id("From: a@acme.test\r\nMessage-ID:\r\n <own@client> (mine)\r\n"
			  "Message-ID: <second@client>\r\n" BODY,
			  "<own@client>");
}

static void test_complete_message_unchanged(void **state)
{
	(void)state;
	assert_unchanged(
		"Received: from x\r\n\tby y; Thu, 01 Jan 2026 00:00:00 +0000\r\n"
		"From: \"Ann\" <a@acme.test>\r\nTo: bob@example.test\r\nSubject:  odd  "
		"spacing\r\n\t folded\r\n" DATED "MIME-Version: 1.0\r\nContent-Type: "
		"multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
		"part\r\n--b--\r\n");
}

static void test_8bit_and_utf8_unchanged(void **state)
{
	(void)state;
	/* UTF-8 in the headers (SMTPUTF8), Latin-1 bytes that are not UTF-8 in the body. */
	assert_unchanged("From: J\xc3\xbcrgen <j@b\xc3\xbc"
			 "cher.test>\r\nSubject: Gr\xc3\xbc"
			 "\xc3\x9f"
			 "e\r\n" DATED "Content-Type: text/plain; charset=iso-8859-1\r\n"
			 "Content-Transfer-Encoding: 8bit\r\n\r\nGr\xfc\xdf"
			 "e \xff\xfe\r\n");
	struct submission s;
	char why[256];
	assert_int_equal(
		make("From: a@acme.test\r\nBcc: b@example.test\r\n\r\n\xe9t\xe9\r\n", &s, why), 0);
	tu_assert_contains(s.data, "From: a@acme.test\r\n\r\n\xe9t\xe9\r\n");
	submission_free(&s);
}

/* GMime keeps Content-* fields out of the message's header list (they belong to its MIME
 * part): a Bcc before them must still lose only its own lines. */
static void test_bcc_before_content_fields_keeps_them(void **state)
{
	(void)state;
	assert_made("From: a@acme.test\r\nBcc: x@example.test,\r\n y@example.test\r\n"
		    "Content-Type: text/plain; charset=utf-8\r\n"
		    "Content-Transfer-Encoding: 8bit\r\nMIME-Version: 1.0\r\nSubject: hi\r\n" DATED
			    BODY,
		    "From: a@acme.test\r\nContent-Type: text/plain; charset=utf-8\r\n"
		    "Content-Transfer-Encoding: 8bit\r\nMIME-Version: 1.0\r\nSubject: hi\r\n" DATED
			    BODY);
	assert_made("From: a@acme.test\r\nContent-Type: text/plain\r\nBcc: x@example.test\r\n"
		    "Content-Transfer-Encoding: quoted-printable\r\nContent-Language: en\r\n" DATED
			    BODY,
		    "From: a@acme.test\r\nContent-Type: text/plain\r\n"
		    "Content-Transfer-Encoding: quoted-printable\r\nContent-Language: en\r\n" DATED
			    BODY);
}

static void test_bcc_before_multipart_content_type_keeps_boundary(void **state)
{
	(void)state;
	assert_made("From: a@acme.test\r\nBcc: x@example.test\r\nContent-Type: multipart/mixed;"
		    "\r\n boundary=\"b1\"\r\nMIME-Version: 1.0\r\n" DATED
		    "\r\n--b1\r\nContent-Type: text/plain\r\n\r\npart\r\n--b1--\r\n",
		    "From: a@acme.test\r\nContent-Type: multipart/mixed;\r\n boundary=\"b1\"\r\n"
		    "MIME-Version: 1.0\r\n" DATED
		    "\r\n--b1\r\nContent-Type: text/plain\r\n\r\npart\r\n--b1--\r\n");
}

/* A From or Sender says exactly one mailbox, or the message is refused: what GMime would
 * skip leniently is text a recipient's reader may show as the sender. */
static void test_from_with_leftover_text_refused(void **state)
{
	(void)state;
	assert_refused("From: a@acme.test; evil@other.test\r\n" DATED BODY, "exactly one address");
	assert_refused("From: a@acme.test evil@other.test\r\n" DATED BODY, "exactly one address");
	assert_refused("From: a@acme.test\r\nSender: o@acme.test; evil@other.test\r\n" DATED BODY,
		       "Sender header must hold exactly one address");
}

static void assert_refused_n(const char *text, size_t len, const char *expected)
{
	struct submission s;
	char why[256] = "";
	assert_int_equal(submission_make(text, len, ID, DATE, &s, why, sizeof(why)), -1);
	tu_assert_contains(why, expected);
}

static void test_nul_and_control_characters_refused(void **state)
{
	(void)state;
	static const char nul_from[] = "From: a@acme.test\0 <evil@other.test>\r\n" DATED BODY;
	assert_refused_n(nul_from, sizeof(nul_from) - 1, "NUL");
	static const char nul_body[] = "From: a@acme.test\r\n" DATED "\r\nHel\0lo.\r\n";
	assert_refused_n(nul_body, sizeof(nul_body) - 1, "NUL");
	assert_refused("From: a@acme.test\x01 <evil@other.test>\r\n" DATED BODY, "byte 0x01");
	assert_refused("From: a@acme.test\r\nSubject: a\x7f\r\n" DATED BODY, "byte 0x7f");
	assert_refused("From: a@acme.test\rTo: b@other.test\r\n" DATED BODY, "byte 0x0d");
	assert_refused("From: a@acme.test\r\nSubject: x\ny\r\n" DATED BODY, "byte 0x0a");
	/* The body is the client's own business; a tab in a header is whitespace. */
	assert_unchanged("From: a@acme.test\r\nSubject:\tx\r\n" DATED "\r\nbell \x07\x1b\r\n");
}

static void test_ordinary_from_forms_accepted(void **state)
{
	(void)state;
	assert_identities("From: Name <a@acme.test>\r\n" DATED BODY, "a@acme.test", "");
	assert_identities("From: a@acme.test (comment)\r\n" DATED BODY, "a@acme.test", "");
	assert_identities("From: \"Smith, John\" <j@acme.test>\r\n" DATED BODY, "j@acme.test", "");
	assert_identities("From: =?utf-8?q?Smith=2C_John?= <j@acme.test>\r\n" DATED BODY,
			  "j@acme.test", "");
	assert_identities("From: Ann (team) <a@acme.test> (c)\r\n" DATED BODY, "a@acme.test", "");
	assert_identities("From:\r\n  Ann <a@acme.test>\r\n" DATED BODY, "a@acme.test", "");
	/* Forms hand-written scripts and appliances send: the address as its own name, a
	 * stray bracket. Neither names another address. */
	assert_identities("From: a@acme.test <a@acme.test>\r\n" DATED BODY, "a@acme.test", "");
	assert_identities("From: a@acme.test>\r\n" DATED BODY, "a@acme.test", "");
	/* A legacy ISO-2022-JP subject, unencoded: ESC is no header injection. */
	assert_identities("From: a@acme.test\r\nSubject: \x1b$B$3$s\x1b(B\r\n" DATED BODY,
			  "a@acme.test", "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_from),
		cmocka_unit_test(test_malformed_from_refused),
		cmocka_unit_test(test_encoded_comma_is_one_address),
		cmocka_unit_test(test_sender),
		cmocka_unit_test(test_folded_bcc_removed),
		cmocka_unit_test(test_last_bcc_removed),
		cmocka_unit_test(test_missing_fields_added),
		cmocka_unit_test(test_message_id_reported),
		cmocka_unit_test(test_complete_message_unchanged),
		cmocka_unit_test(test_8bit_and_utf8_unchanged),
		cmocka_unit_test(test_bcc_before_content_fields_keeps_them),
		cmocka_unit_test(test_bcc_before_multipart_content_type_keeps_boundary),
		cmocka_unit_test(test_from_with_leftover_text_refused),
		cmocka_unit_test(test_nul_and_control_characters_refused),
		cmocka_unit_test(test_ordinary_from_forms_accepted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
