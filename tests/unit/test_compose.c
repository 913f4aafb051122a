/* Unit tests for compose: each payload is composed, then parsed back with GMime to check what
 * a recipient would see (decoded headers, part order, attachment bytes), and the raw text is
 * checked for what a relay would object to (bare LF, long lines, 8-bit bytes, a Bcc line). */
#include "testutil.h"

#include <sodium.h>

#include <gmime/gmime.h>

#include "compose.h"

/* 2026-01-01T00:00:00Z */
#define DATE	   INT64_C(1767225600)
#define MSGID	   "3f2a9c@acme.test"
#define FROM	   "'from':{'email':'news@acme.test','name':'Acme News'}"
#define SUBJECT	   "'subject':'Hello'"
#define TEXT	   "'content':{'text':'Hi there\\n'}"
#define TO_ANN	   "'to':[{'email':'ann@example.test'}]"
#define ONE_PERSON "'personalizations':[{" TO_ANN "}]"
#define BASE	   FROM "," SUBJECT "," TEXT

/* The composed message of one personalization, with its length. */
struct composed {
	char *raw;
	size_t len;
	GMimeMessage *msg;
};

/* Every line ends in CRLF, none is over 998 octets, and every byte is 7-bit. */
static void assert_wire_clean(const char *raw, size_t len)
{
	size_t line = 0;
	assert_int_equal(strlen(raw), len);
	assert_true(len >= 2 && raw[len - 2] == '\r' && raw[len - 1] == '\n');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)raw[i];
		if (c >= 128)
			fail_msg("8-bit byte 0x%02x at offset %zu", c, i);
		if (c == '\n')
			fail_msg("bare LF at offset %zu", i);
		if (c == '\r') {
			if (raw[i + 1] != '\n')
				fail_msg("bare CR at offset %zu", i);
			i++;
			line = 0;
		} else if (++line > 998) {
			fail_msg("line longer than 998 octets at offset %zu", i);
		}
	}
}

static GMimeMessage *parse(const char *raw, size_t len)
{
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(raw, len);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(stream);
	assert_non_null(msg);
	return msg;
}

static struct composed compose_ok(const char *text, int part)
{
	struct composed c = {0};
	const char *why = "unset";
	cJSON *payload = tu_json(text);
	int rc = compose_message(payload, part, MSGID, DATE, &c.raw, &c.len, &why);
	cJSON_Delete(payload);
	if (rc != 0)
		fail_msg("refused: %s", why ? why : "(no reason)");
	assert_non_null(c.raw);
	assert_wire_clean(c.raw, c.len);
	c.msg = parse(c.raw, c.len);
	return c;
}

static void composed_free(struct composed *c)
{
	g_object_unref(c->msg);
	free(c->raw);
}

/* Refused, with a reason that contains fragment. */
static void expect_refused_payload(const cJSON *payload, int part, const char *fragment)
{
	char *out = (char *)"sentinel";
	size_t len = 99;
	const char *why = NULL;
	if (compose_message(payload, part, MSGID, DATE, &out, &len, &why) != -1) {
		fail_msg("accepted, expected a refusal:\n%s", out);
	}
	assert_null(out);
	assert_non_null(why);
	if (!strstr(why, fragment))
		fail_msg("refused with \"%s\", expected \"%s\"", why, fragment);
}

static void expect_refused(const char *text, const char *fragment)
{
	cJSON *payload = tu_json(text);
	expect_refused_payload(payload, 0, fragment);
	cJSON_Delete(payload);
}

/* The decoded content of a leaf part, as a recipient's client would show or save it. */
static GByteArray *decoded(GMimeObject *obj)
{
	assert_true(GMIME_IS_PART(obj));
	GMimeStream *mem = g_mime_stream_mem_new();
	g_mime_data_wrapper_write_to_stream(g_mime_part_get_content(GMIME_PART(obj)), mem);
	GByteArray *copy = g_byte_array_new();
	GByteArray *bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	g_byte_array_append(copy, bytes->data, bytes->len);
	g_object_unref(mem);
	return copy;
}

static void assert_decoded(GMimeObject *obj, const char *expected)
{
	GByteArray *bytes = decoded(obj);
	assert_int_equal(bytes->len, strlen(expected));
	assert_memory_equal(bytes->data, expected, bytes->len);
	g_byte_array_unref(bytes);
}

static void assert_type(GMimeObject *obj, const char *type, const char *subtype)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	if (!g_mime_content_type_is_type(ct, type, subtype)) {
		char *got = g_mime_content_type_get_mime_type(ct);
		fail_msg("expected %s/%s, got %s", type, subtype, got);
	}
}

/* The only mailbox of an address list. */
static InternetAddressMailbox *only_mailbox(InternetAddressList *list)
{
	assert_int_equal(internet_address_list_length(list), 1);
	InternetAddress *ia = internet_address_list_get_address(list, 0);
	assert_true(INTERNET_ADDRESS_IS_MAILBOX(ia));
	return INTERNET_ADDRESS_MAILBOX(ia);
}

static int count_header_lines(const char *raw, const char *name_colon)
{
	int n = 0;
	size_t k = strlen(name_colon);
	for (const char *p = raw; (p = strcasestr(p, name_colon)); p += k)
		if (p == raw || p[-1] == '\n')
			n++;
	return n;
}

static void test_headers_round_trip(void **state)
{
	(void)state;
	struct composed c = compose_ok(
		"{'from':{'email':'news@acme.test','name':'Jürgen Müller'},"
		"'reply_to':{'email':'help@acme.test','name':'Help Desk'},"
		"'subject':'Grüße, 東京'," TEXT ","
		"'personalizations':[{'to':[{'email':'ann@example.test','name':'Ann, Smith'}],"
		"'cc':[{'email':'carl@example.test','name':'Carl Ö'}],"
		"'bcc':[{'email':'secret@example.test'}]}]}",
		0);

	assert_string_equal(g_mime_message_get_subject(c.msg), "Grüße, 東京");
	InternetAddressMailbox *from = only_mailbox(g_mime_message_get_from(c.msg));
	assert_string_equal(internet_address_mailbox_get_addr(from), "news@acme.test");
	assert_string_equal(internet_address_get_name(INTERNET_ADDRESS(from)), "Jürgen Müller");
	InternetAddressMailbox *to = only_mailbox(g_mime_message_get_to(c.msg));
	assert_string_equal(internet_address_mailbox_get_addr(to), "ann@example.test");
	assert_string_equal(internet_address_get_name(INTERNET_ADDRESS(to)), "Ann, Smith");
	InternetAddressMailbox *cc = only_mailbox(g_mime_message_get_cc(c.msg));
	assert_string_equal(internet_address_mailbox_get_addr(cc), "carl@example.test");
	assert_string_equal(internet_address_get_name(INTERNET_ADDRESS(cc)), "Carl Ö");
	InternetAddressMailbox *reply = only_mailbox(g_mime_message_get_reply_to(c.msg));
	assert_string_equal(internet_address_mailbox_get_addr(reply), "help@acme.test");

	assert_string_equal(g_mime_message_get_message_id(c.msg), MSGID);
	assert_int_equal(g_date_time_to_unix(g_mime_message_get_date(c.msg)), DATE);
	assert_string_equal(g_mime_object_get_header(GMIME_OBJECT(c.msg), "MIME-Version"), "1.0");

	/* The blind copy is an envelope recipient only: no header names it. */
	assert_int_equal(internet_address_list_length(g_mime_message_get_bcc(c.msg)), 0);
	assert_null(strcasestr(c.raw, "\nbcc:"));
	assert_null(strstr(c.raw, "secret@example.test"));
	composed_free(&c);
}

static void test_text_only_is_one_utf8_part(void **state)
{
	(void)state;
	struct composed c =
		compose_ok("{" FROM "," SUBJECT ","
			   "'content':{'text':'Grüße\\nzweite Zeile\\n'}," ONE_PERSON "}",
			   0);
	GMimeObject *body = g_mime_message_get_mime_part(c.msg);
	assert_type(body, "text", "plain");
	assert_string_equal(
		g_mime_content_type_get_parameter(g_mime_object_get_content_type(body), "charset"),
		"utf-8");
	/* Text travels in canonical form: the recipient gets CRLF line ends. */
	assert_decoded(body, "Grüße\r\nzweite Zeile\r\n");
	composed_free(&c);

	/* Base64 this time (mostly non-ASCII), and no final newline given: same canonical form. */
	c = compose_ok("{" FROM "," SUBJECT ",'content':{'text':'東京\n大阪'}," ONE_PERSON "}", 0);
	body = g_mime_message_get_mime_part(c.msg);
	assert_int_equal(g_mime_part_get_content_encoding(GMIME_PART(body)),
			 GMIME_CONTENT_ENCODING_BASE64);
	assert_decoded(body, "東京\r\n大阪\r\n");
	composed_free(&c);
}

static void test_html_only_long_line_is_encoded(void **state)
{
	(void)state;
	char *html = malloc(6000), *text = malloc(7000), expected[6000];
	assert_non_null(html);
	assert_non_null(text);
	memcpy(html, "<p>", 3);
	memset(html + 3, 'x', 5000);
	strcpy(html + 5003, "</p>");
	strcpy(expected, html);
	strcat(expected, "\r\n");
	snprintf(text, 7000, "{" FROM "," SUBJECT ",'content':{'html':'%s'}," ONE_PERSON "}", html);

	struct composed c = compose_ok(text, 0);
	GMimeObject *body = g_mime_message_get_mime_part(c.msg);
	assert_type(body, "text", "html");
	assert_int_equal(g_mime_part_get_content_encoding(GMIME_PART(body)),
			 GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
	/* The one line arrives whole, ended by the line break every text body gets. */
	assert_decoded(body, expected);
	composed_free(&c);
	free(html);
	free(text);
}

static void test_alternative_order(void **state)
{
	(void)state;
	struct composed c = compose_ok("{" FROM "," SUBJECT ","
				       "'content':{'html':'<p>Hi</p>','amp':'<html "
				       "amp4email>Hi</html>','text':'Hi'}," ONE_PERSON "}",
				       0);
	GMimeObject *body = g_mime_message_get_mime_part(c.msg);
	assert_type(body, "multipart", "alternative");
	GMimeMultipart *alt = GMIME_MULTIPART(body);
	assert_int_equal(g_mime_multipart_get_count(alt), 3);
	assert_type(g_mime_multipart_get_part(alt, 0), "text", "plain");
	assert_type(g_mime_multipart_get_part(alt, 1), "text", "x-amp-html");
	assert_type(g_mime_multipart_get_part(alt, 2), "text", "html");
	assert_decoded(g_mime_multipart_get_part(alt, 0), "Hi\r\n");
	assert_decoded(g_mime_multipart_get_part(alt, 1), "<html amp4email>Hi</html>\r\n");
	assert_decoded(g_mime_multipart_get_part(alt, 2), "<p>Hi</p>\r\n");
	composed_free(&c);

	c = compose_ok("{" FROM "," SUBJECT
		       ",'content':{'html':'<p>Hi</p>','text':'Hi'}," ONE_PERSON "}",
		       0);
	alt = GMIME_MULTIPART(g_mime_message_get_mime_part(c.msg));
	assert_int_equal(g_mime_multipart_get_count(alt), 2);
	assert_type(g_mime_multipart_get_part(alt, 0), "text", "plain");
	assert_type(g_mime_multipart_get_part(alt, 1), "text", "html");
	composed_free(&c);
}

/* A payload with one attachment whose content is bytes, base64 broken into 76-column lines
 * as mail clients and SDKs often send it. */
static cJSON *payload_with_attachment(const unsigned char *bytes, size_t len, const char *name,
				      const char *type, const char *disposition, const char *cid)
{
	size_t b64_len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(b64_len), *wrapped = malloc(b64_len * 2);
	assert_non_null(b64);
	assert_non_null(wrapped);
	sodium_bin2base64(b64, b64_len, bytes, len, sodium_base64_VARIANT_ORIGINAL);
	size_t w = 0;
	for (size_t i = 0; b64[i]; i++) {
		if (i > 0 && i % 76 == 0)
			wrapped[w++] = '\n';
		wrapped[w++] = b64[i];
	}
	wrapped[w] = '\0';

	cJSON *payload = tu_json("{" BASE "," ONE_PERSON ",'attachments':[]}");
	cJSON *a = cJSON_CreateObject();
	cJSON_AddStringToObject(a, "filename", name);
	cJSON_AddStringToObject(a, "type", type);
	cJSON_AddStringToObject(a, "content", wrapped);
	cJSON_AddStringToObject(a, "disposition", disposition);
	if (cid)
		cJSON_AddStringToObject(a, "content_id", cid);
	cJSON_AddItemToArray(cJSON_GetObjectItem(payload, "attachments"), a);
	free(b64);
	free(wrapped);
	return payload;
}

static struct composed compose_payload_ok(cJSON *payload)
{
	struct composed c = {0};
	const char *why = NULL;
	if (compose_message(payload, 0, MSGID, DATE, &c.raw, &c.len, &why) != 0)
		fail_msg("refused: %s", why);
	assert_wire_clean(c.raw, c.len);
	c.msg = parse(c.raw, c.len);
	return c;
}

static void test_binary_attachment_round_trips(void **state)
{
	(void)state;
	/* PDF-like: a text header, then every byte value, NULs and CR/LF included. */
	unsigned char pdf[2048];
	size_t n = 0;
	memcpy(pdf, "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", 15);
	n = 15;
	for (int round = 0; round < 7; round++)
		for (int b = 0; b < 256; b++)
			pdf[n++] = (unsigned char)(b * 7 + round);
	memcpy(pdf + n, "\r\n%%EOF\n", 8);
	n += 8;

	cJSON *payload = payload_with_attachment(pdf, n, "Bericht Mai ü.pdf", "application/pdf",
						 "attachment", NULL);
	struct composed c = compose_payload_ok(payload);
	cJSON_Delete(payload);

	GMimeObject *top = g_mime_message_get_mime_part(c.msg);
	assert_type(top, "multipart", "mixed");
	GMimeMultipart *mixed = GMIME_MULTIPART(top);
	assert_int_equal(g_mime_multipart_get_count(mixed), 2);
	assert_type(g_mime_multipart_get_part(mixed, 0), "text", "plain");
	GMimeObject *att = g_mime_multipart_get_part(mixed, 1);
	assert_type(att, "application", "pdf");
	assert_int_equal(g_mime_part_get_content_encoding(GMIME_PART(att)),
			 GMIME_CONTENT_ENCODING_BASE64);
	assert_string_equal(g_mime_object_get_disposition(att), "attachment");
	assert_string_equal(g_mime_part_get_filename(GMIME_PART(att)), "Bericht Mai ü.pdf");
	GByteArray *bytes = decoded(att);
	assert_int_equal(bytes->len, n);
	assert_memory_equal(bytes->data, pdf, n);
	g_byte_array_unref(bytes);
	composed_free(&c);
}

static void test_inline_attachment_has_content_id(void **state)
{
	(void)state;
	const unsigned char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
	cJSON *payload = payload_with_attachment(png, sizeof(png) - 1, "logo.png", "image/png",
						 "inline", "logo@acme.test");
	struct composed c = compose_payload_ok(payload);
	cJSON_Delete(payload);

	GMimeMultipart *mixed = GMIME_MULTIPART(g_mime_message_get_mime_part(c.msg));
	GMimeObject *att = g_mime_multipart_get_part(mixed, 1);
	assert_type(att, "image", "png");
	assert_string_equal(g_mime_object_get_disposition(att), "inline");
	assert_string_equal(g_mime_object_get_content_id(att), "logo@acme.test");
	assert_non_null(strstr(c.raw, "Content-Id: <logo@acme.test>\r\n"));
	assert_string_equal(g_mime_part_get_filename(GMIME_PART(att)), "logo.png");
	GByteArray *bytes = decoded(att);
	assert_int_equal(bytes->len, sizeof(png) - 1);
	assert_memory_equal(bytes->data, png, bytes->len);
	g_byte_array_unref(bytes);
	composed_free(&c);
}

/* Text that spells encoded words: the client must show it as written, not decode it into a
 * NUL, a line break or a second From. */
#define EW_FROM	   "=?utf-8?b?c2VjdXJpdHlAcGF5cGFsLmNvbQA=?="
#define EW_SUBJECT "=?utf-8?q?Hello=0D=0AFrom:_ceo@bank.com?="
#define EW_HEADER  "=?utf-8?q?a=0D=0ABcc:_x@evil.test?="
#define EW_TO	   "Ann =?utf-8?q?=00?= Smith"
#define EW_REPLY   "=?iso-8859-1?q?Help=0ADesk?="
/* No encoding of it in a parameter reads back as written in every reader (GMime decodes an
 * encoded word inside a quoted file name twice), so a file name with "=?" is refused. */
#define EW_FILENAME "=?utf-8?q?invoice=0D=0A.pdf?="
/* Long enough for several encoded words, with non-ASCII characters across their borders. */
#define EW_LONG                                                                                      \
	"Grüße =?utf-8?b?AA==?= aus Köln — ein sehr langer Betreff, der über mehrere Wörter " \
	"reicht: 東京, 大阪, 京都 und =?x?q?=0A?= am Ende"

static void set_name(cJSON *mailbox, const char *name)
{
	cJSON_AddStringToObject(mailbox, "name", name);
}

static void test_encoded_words_stay_literal(void **state)
{
	(void)state;
	cJSON *payload = tu_json("{" FROM ",'reply_to':{'email':'help@acme.test'}," TEXT ","
				 "'personalizations':[{'to':[{'email':'ann@example.test'}],"
				 "'cc':[{'email':'carl@example.test'}],'headers':{}}],"
				 "'headers':{},'attachments':[{'type':'application/pdf',"
				 "'content':'aGVsbG8=','disposition':'attachment'}]}");
	cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(payload, "personalizations"), 0);
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(payload, "from"), "name",
				  cJSON_CreateString(EW_FROM));
	set_name(cJSON_GetObjectItem(payload, "reply_to"), EW_REPLY);
	set_name(cJSON_GetArrayItem(cJSON_GetObjectItem(p, "to"), 0), EW_TO);
	set_name(cJSON_GetArrayItem(cJSON_GetObjectItem(p, "cc"), 0), EW_LONG);
	cJSON_AddStringToObject(payload, "subject", EW_SUBJECT);
	cJSON_AddStringToObject(cJSON_GetObjectItem(payload, "headers"), "X-Note", EW_HEADER);
	cJSON_AddStringToObject(cJSON_GetObjectItem(p, "headers"), "X-Long", EW_LONG);
	cJSON_AddStringToObject(cJSON_GetArrayItem(cJSON_GetObjectItem(payload, "attachments"), 0),
				"filename", "Rechnung für März.pdf");
	struct composed c = compose_payload_ok(payload);

	/* Read back by GMime's decoder: exactly the text given, nothing decoded twice. */
	InternetAddressMailbox *from = only_mailbox(g_mime_message_get_from(c.msg));
	assert_string_equal(internet_address_get_name(INTERNET_ADDRESS(from)), EW_FROM);
	InternetAddressMailbox *to = only_mailbox(g_mime_message_get_to(c.msg));
	assert_string_equal(internet_address_get_name(INTERNET_ADDRESS(to)), EW_TO);
	InternetAddressMailbox *cc = only_mailbox(g_mime_message_get_cc(c.msg));
	assert_string_equal(internet_address_get_name(INTERNET_ADDRESS(cc)), EW_LONG);
	InternetAddressMailbox *reply = only_mailbox(g_mime_message_get_reply_to(c.msg));
	assert_string_equal(internet_address_get_name(INTERNET_ADDRESS(reply)), EW_REPLY);
	assert_string_equal(g_mime_message_get_subject(c.msg), EW_SUBJECT);
	assert_string_equal(g_mime_object_get_header(GMIME_OBJECT(c.msg), "X-Note"), EW_HEADER);
	assert_string_equal(g_mime_object_get_header(GMIME_OBJECT(c.msg), "X-Long"), EW_LONG);
	GMimeObject *att =
		g_mime_multipart_get_part(GMIME_MULTIPART(g_mime_message_get_mime_part(c.msg)), 1);
	assert_string_equal(g_mime_part_get_filename(GMIME_PART(att)), "Rechnung für März.pdf");

	/* None of them went out as written: a client would have decoded it. */
	const char *verbatim[] = {EW_FROM, EW_SUBJECT, EW_HEADER, "=?utf-8?q?=00?=", EW_REPLY};
	for (size_t i = 0; i < sizeof(verbatim) / sizeof(verbatim[0]); i++)
		if (strstr(c.raw, verbatim[i]))
			fail_msg("written as given: %s\n%s", verbatim[i], c.raw);
	assert_int_equal(count_header_lines(c.raw, "from:"), 1);
	composed_free(&c);
	cJSON_Delete(payload);
}

/* GMime's Q-encoding of a name leaves "=" as it is: a name it encodes (non-ASCII, or a word
 * too long for a line) must not decode "=0D=0A" into a line break. */
static void test_names_with_equals_signs_stay_literal(void **state)
{
	(void)state;
	static const char *const names[] = {
		"Jürgen=0D=0AFrom: ceo@bank.com",
		"x=0D=0AFrom:=20ceo@bank.com="
		"00aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"1+1=2",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		cJSON *payload = tu_json("{" BASE "," ONE_PERSON "}");
		cJSON_ReplaceItemInObject(cJSON_GetObjectItem(payload, "from"), "name",
					  cJSON_CreateString(names[i]));
		struct composed c = compose_payload_ok(payload);
		InternetAddressMailbox *from = only_mailbox(g_mime_message_get_from(c.msg));
		assert_string_equal(internet_address_get_name(INTERNET_ADDRESS(from)), names[i]);
		composed_free(&c);
		cJSON_Delete(payload);
	}
}

static void test_bare_cr_and_lf_become_crlf(void **state)
{
	(void)state;
	/* "\r.\r" ends DATA for a lax relay; what follows would be read as SMTP commands. */
	cJSON *payload = tu_json("{" FROM "," SUBJECT "," ONE_PERSON ",'content':{}}");
	cJSON *content = cJSON_GetObjectItem(payload, "content");
	cJSON_AddStringToObject(content, "text",
				"line1\r.\rMAIL FROM:<ceo@bank.com>\rRCPT TO:<x@y.test>\r\nok\n\n");
	cJSON_AddStringToObject(content, "html", "<p>a</p>\r.\r<p>b</p>\n\r");
	cJSON_AddStringToObject(content, "amp", "<html amp4email>\r.\r</html>");
	struct composed c = compose_payload_ok(payload);

	GMimeMultipart *alt = GMIME_MULTIPART(g_mime_message_get_mime_part(c.msg));
	assert_decoded(
		g_mime_multipart_get_part(alt, 0),
		"line1\r\n.\r\nMAIL FROM:<ceo@bank.com>\r\nRCPT TO:<x@y.test>\r\nok\r\n\r\n");
	assert_decoded(g_mime_multipart_get_part(alt, 1), "<html amp4email>\r\n.\r\n</html>\r\n");
	assert_decoded(g_mime_multipart_get_part(alt, 2), "<p>a</p>\r\n.\r\n<p>b</p>\r\n\r\n");
	composed_free(&c);
	cJSON_Delete(payload);
}

static void test_content_ids_of_real_clients_are_kept(void **state)
{
	(void)state;
	static const struct {
		const char *given, *header;
	} ids[] = {
		{"ii_139db99fdb5c3704", "Content-Id: <ii_139db99fdb5c3704>\r\n"},
		{"<logo@example.com>", "Content-Id: <logo@example.com>\r\n"},
		{"part1.06090408.01060107@example.com",
		 "Content-Id: <part1.06090408.01060107@example.com>\r\n"},
	};
	const unsigned char png[] = "\x89PNG";
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		cJSON *payload = payload_with_attachment(png, sizeof(png) - 1, "logo.png",
							 "image/png", "inline", ids[i].given);
		struct composed c = compose_payload_ok(payload);
		assert_non_null(strstr(c.raw, ids[i].header));
		composed_free(&c);
		cJSON_Delete(payload);
	}
}

#define TWO_PEOPLE                                                                                 \
	"'personalizations':["                                                                     \
	"{'to':[{'email':'ann@example.test'}],'subject':'For Ann',"                                \
	"'headers':{'x-campaign':'ann-only'}},"                                                    \
	"{'to':[{'email':'bob@example.test'}],'cc':[{'email':'carl@example.test'}]}]"
#define TOP_HEADERS "'headers':{'X-Campaign':'spring','X-Mailer-Id':'42'}"

static void test_personalization_overrides(void **state)
{
	(void)state;
	struct composed c = compose_ok("{" BASE "," TOP_HEADERS "," TWO_PEOPLE "}", 0);
	assert_string_equal(g_mime_message_get_subject(c.msg), "For Ann");
	assert_string_equal(g_mime_object_get_header(GMIME_OBJECT(c.msg), "X-Campaign"),
			    "ann-only");
	assert_int_equal(count_header_lines(c.raw, "x-campaign:"), 1);
	assert_string_equal(g_mime_object_get_header(GMIME_OBJECT(c.msg), "X-Mailer-Id"), "42");
	composed_free(&c);

	/* The second personalization has neither: the top-level values apply. */
	c = compose_ok("{" BASE "," TOP_HEADERS "," TWO_PEOPLE "}", 1);
	assert_string_equal(g_mime_message_get_subject(c.msg), "Hello");
	assert_string_equal(g_mime_object_get_header(GMIME_OBJECT(c.msg), "X-Campaign"), "spring");
	assert_int_equal(count_header_lines(c.raw, "x-campaign:"), 1);
	composed_free(&c);
}

/* The text body of a message without attachments or alternatives. */
static void assert_text_body(GMimeMessage *msg, const char *expected)
{
	GMimeObject *body = g_mime_message_get_mime_part(msg);
	assert_type(body, "text", "plain");
	assert_decoded(body, expected);
}

static void test_values_are_substituted_per_personalization(void **state)
{
	(void)state;
	const char *payload =
		"{" FROM ",'subject':'Hi [% name %]','content':{'text':'Dear [%name%], [%n%].\n'},"
		"'reply_to':{'email':'help@acme.test','name':'[%name%]'},'tag_syntax':'netcore',"
		"'personalizations':[{" TO_ANN ",'substitutions':{'name':'Ann','n':'42'}},"
		"{'to':[{'email':'bob@example.test'}]}]}";
	struct composed c = compose_ok(payload, 0);
	assert_string_equal(g_mime_message_get_subject(c.msg), "Hi Ann");
	assert_text_body(c.msg, "Dear Ann, 42.\r\n");
	/* Netcore's attributes are not put into names. */
	assert_string_equal(internet_address_get_name(INTERNET_ADDRESS(
				    only_mailbox(g_mime_message_get_reply_to(c.msg)))),
			    "[%name%]");
	composed_free(&c);

	/* A personalization without values has its tags emptied all the same. */
	c = compose_ok(payload, 1);
	assert_string_equal(g_mime_message_get_subject(c.msg), "Hi");
	assert_text_body(c.msg, "Dear , .\r\n");
	composed_free(&c);
}

static void test_literal_substitutions_reach_the_reply_to_name(void **state)
{
	(void)state;
	struct composed c = compose_ok(
		"{" FROM ",'subject':'For -n-','content':{'text':'-n-','html':'<b>-n-</b>'},"
		"'reply_to':{'email':'help@acme.test','name':'Help for -n-'},"
		"'tag_syntax':'literal','personalizations':[{" TO_ANN
		",'substitutions':{'-n-':'Ann'}}]}",
		0);
	assert_string_equal(g_mime_message_get_subject(c.msg), "For Ann");
	assert_string_equal(internet_address_get_name(INTERNET_ADDRESS(
				    only_mailbox(g_mime_message_get_reply_to(c.msg)))),
			    "Help for Ann");
	GMimeMultipart *alt = GMIME_MULTIPART(g_mime_message_get_mime_part(c.msg));
	assert_decoded(g_mime_multipart_get_part(alt, 0), "Ann\r\n");
	assert_decoded(g_mime_multipart_get_part(alt, 1), "<b>Ann</b>\r\n");
	composed_free(&c);
}

static void test_reply_to_list_is_one_header(void **state)
{
	(void)state;
	struct composed c = compose_ok("{" BASE ",'reply_to_list':[{'email':'a@acme.test','name':"
				       "'A'},{'email':'b@acme.test'}]," ONE_PERSON "}",
				       0);
	InternetAddressList *list = g_mime_message_get_reply_to(c.msg);
	assert_int_equal(internet_address_list_length(list), 2);
	assert_string_equal(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(
				    internet_address_list_get_address(list, 1))),
			    "b@acme.test");
	assert_int_equal(count_header_lines(c.raw, "reply-to:"), 1);
	composed_free(&c);
}

static void test_personalization_attachments_follow_the_shared_ones(void **state)
{
	(void)state;
	const char *payload =
		"{" BASE ",'attachments':[{'filename':'all.txt','type':'text/plain','content':'"
		"YWxs'}],'personalizations':[{" TO_ANN ",'attachments':[{'filename':'ann.txt',"
		"'type':'text/plain','content':'YW5u'}]},{'to':[{'email':'bob@example.test'}]}]}";
	struct composed c = compose_ok(payload, 0);
	GMimeMultipart *mixed = GMIME_MULTIPART(g_mime_message_get_mime_part(c.msg));
	assert_int_equal(g_mime_multipart_get_count(mixed), 3);
	assert_string_equal(
		g_mime_part_get_filename(GMIME_PART(g_mime_multipart_get_part(mixed, 1))),
		"all.txt");
	GMimeObject *own = g_mime_multipart_get_part(mixed, 2);
	assert_string_equal(g_mime_part_get_filename(GMIME_PART(own)), "ann.txt");
	assert_decoded(own, "ann");
	composed_free(&c);

	c = compose_ok(payload, 1);
	mixed = GMIME_MULTIPART(g_mime_message_get_mime_part(c.msg));
	assert_int_equal(g_mime_multipart_get_count(mixed), 2);
	assert_null(strstr(c.raw, "ann.txt"));
	composed_free(&c);
}

static void test_part_selects_personalization(void **state)
{
	(void)state;
	struct composed a = compose_ok("{" BASE "," TWO_PEOPLE "}", 0);
	struct composed b = compose_ok("{" BASE "," TWO_PEOPLE "}", 1);
	assert_string_equal(
		internet_address_mailbox_get_addr(only_mailbox(g_mime_message_get_to(a.msg))),
		"ann@example.test");
	assert_string_equal(
		internet_address_mailbox_get_addr(only_mailbox(g_mime_message_get_to(b.msg))),
		"bob@example.test");
	assert_null(strstr(a.raw, "bob@example.test"));
	assert_null(strstr(b.raw, "ann@example.test"));
	assert_int_equal(internet_address_list_length(g_mime_message_get_cc(a.msg)), 0);
	assert_int_equal(internet_address_list_length(g_mime_message_get_cc(b.msg)), 1);
	composed_free(&a);
	composed_free(&b);
}

static void test_recipients_order_and_count(void **state)
{
	(void)state;
	cJSON *payload = tu_json("{" BASE ",'personalizations':["
				 "{'to':[{'email':'a@x.test'},{'email':'b@x.test','name':'B'}],"
				 "'cc':[{'email':'c@x.test'}],'bcc':[{'email':'d@x.test'}]},"
				 "{'bcc':[{'email':'e@x.test'}],'to':[{'email':'f@x.test'}]}]}");
	const char *out[8] = {0};

	assert_int_equal(compose_parts(payload), 2);
	assert_int_equal(compose_recipients(payload, 0, out, 8), 4);
	assert_string_equal(out[0], "a@x.test");
	assert_string_equal(out[1], "b@x.test");
	assert_string_equal(out[2], "c@x.test");
	assert_string_equal(out[3], "d@x.test");
	assert_null(out[4]);

	/* to before bcc whatever the key order in the object. */
	assert_int_equal(compose_recipients(payload, 1, out, 8), 2);
	assert_string_equal(out[0], "f@x.test");
	assert_string_equal(out[1], "e@x.test");

	/* A short buffer gets the first entries; the count still says how many there are. */
	const char *two[3] = {NULL, NULL, "untouched"};
	assert_int_equal(compose_recipients(payload, 0, two, 2), 4);
	assert_string_equal(two[0], "a@x.test");
	assert_string_equal(two[1], "b@x.test");
	assert_string_equal(two[2], "untouched");

	assert_int_equal(compose_recipients(payload, 2, out, 8), -1);
	assert_int_equal(compose_recipients(payload, -1, out, 8), -1);
	cJSON_Delete(payload);
}

static void test_part_out_of_range(void **state)
{
	(void)state;
	cJSON *payload = tu_json("{" BASE "," ONE_PERSON "}");
	expect_refused_payload(payload, 1, "no such personalization");
	expect_refused_payload(payload, -1, "no such personalization");
	cJSON_Delete(payload);
	payload = tu_json("{" BASE "}");
	assert_int_equal(compose_parts(payload), 0);
	expect_refused_payload(payload, 0, "no such personalization");
	cJSON_Delete(payload);
}

/* What each kind of hostile payload is refused for. */
#define VALUE_CRLF "header value contains a control character"
#define NAME_BAD   "header name is not a valid field name"
#define SUBJ_CRLF  "subject contains a control character"
#define DISP_CRLF  "display name contains a control character"
#define FILE_CTRL  "filename is missing or contains a control character"
#define CID_BAD	   "content_id is not a message id"
#define RESERVED   "may not set this field"

static void test_hostile_inputs_refused(void **state)
{
	(void)state;
	static const struct {
		const char *payload, *why;
	} hostile[] = {
		/* CR or LF in a custom header value, top-level or personalization */
		{"{" BASE ",'headers':{'X-A':'a\\r\\nBcc: evil@x.test'}," ONE_PERSON "}",
		 VALUE_CRLF},
		{"{" BASE ",'personalizations':[{" TO_ANN ",'headers':{'X-A':'a\\nb'}}]}",
		 VALUE_CRLF},
		/* ... in a custom header name, or a name that is no field name at all */
		{"{" BASE ",'headers':{'X-A\\r\\nBcc':'evil@x.test'}," ONE_PERSON "}", NAME_BAD},
		{"{" BASE ",'headers':{'X A':'no spaces in names'}," ONE_PERSON "}", NAME_BAD},
		/* ... in the subject, top-level or personalization */
		{"{" FROM "," TEXT ",'subject':'Hi\\r\\nBcc: evil@x.test'," ONE_PERSON "}",
		 SUBJ_CRLF},
		{"{" BASE ",'personalizations':[{" TO_ANN ",'subject':'Hi\\rthere'}]}", SUBJ_CRLF},
		/* ... in a display name, sender or recipient */
		{"{'from':{'email':'news@acme.test','name':'News\\nBcc: evil@x.test'}," SUBJECT
		 "," TEXT "," ONE_PERSON "}",
		 DISP_CRLF},
		{"{" BASE ",'personalizations':[{'to':[{'email':'ann@example.test',"
		 "'name':'Ann\\r\\nBcc: evil@x.test'}]}]}",
		 DISP_CRLF},
		/* ... in an attachment filename */
		{"{" BASE "," ONE_PERSON ",'attachments':[{'filename':'a.pdf\\r\\nX-Evil: 1',"
		 "'type':'application/pdf','content':'aGVsbG8=','disposition':'attachment'}]}",
		 FILE_CTRL},
		/* other control characters: C0, DEL, C1 (NEL, CSI) */
		{"{" BASE ",'headers':{'X-A':'a\\u0007b'}," ONE_PERSON "}", VALUE_CRLF},
		{"{" BASE ",'headers':{'X-A':'a\\u001b[2Jb'}," ONE_PERSON "}", VALUE_CRLF},
		{"{" FROM "," TEXT ",'subject':'Hi\\u007f'," ONE_PERSON "}", SUBJ_CRLF},
		{"{" FROM "," TEXT ",'subject':'Hi\\u0085there'," ONE_PERSON "}", SUBJ_CRLF},
		{"{'from':{'email':'news@acme.test','name':'News\\u0001'}," SUBJECT "," TEXT
		 "," ONE_PERSON "}",
		 DISP_CRLF},
		{"{" BASE ",'reply_to':{'email':'h@acme.test','name':'H\\u009b'}," ONE_PERSON "}",
		 DISP_CRLF},
		{"{" BASE "," ONE_PERSON ",'attachments':[{'filename':'a\\u0008.pdf',"
		 "'type':'application/pdf','content':'aGVsbG8=','disposition':'attachment'}]}",
		 FILE_CTRL},
		{"{" BASE "," ONE_PERSON ",'attachments':[{'filename':'" EW_FILENAME "',"
		 "'type':'application/pdf','content':'aGVsbG8=','disposition':'attachment'}]}",
		 "filename contains \"=?\""},
		/* a content id that would close its <> and start a header of its own */
		{"{" BASE "," ONE_PERSON ",'attachments':[{'filename':'a.png','type':'image/png',"
		 "'content':'aGVsbG8=','disposition':'inline','content_id':'x> From: <y'}]}",
		 CID_BAD},
		{"{" BASE "," ONE_PERSON ",'attachments':[{'filename':'a.png','type':'image/png',"
		 "'content':'aGVsbG8=','disposition':'inline','content_id':'a b'}]}",
		 CID_BAD},
		/* custom headers that would forge identity or reveal blind copies */
		{"{" BASE ",'headers':{'Bcc':'evil@x.test'}," ONE_PERSON "}", RESERVED},
		{"{" BASE ",'headers':{'bcc':'evil@x.test'}," ONE_PERSON "}", RESERVED},
		{"{" BASE ",'headers':{'From':'ceo@acme.test'}," ONE_PERSON "}", RESERVED},
		{"{" BASE ",'personalizations':[{" TO_ANN ",'headers':{'from':'ceo@acme.test'}}]}",
		 RESERVED},
		{"{" BASE ",'headers':{'Sender':'ceo@acme.test'}," ONE_PERSON "}", RESERVED},
		{"{" BASE ",'headers':{'Return-Path':'ceo@acme.test'}," ONE_PERSON "}", RESERVED},
		{"{" BASE ",'headers':{'DKIM-Signature':'v=1'}," ONE_PERSON "}", RESERVED},
		/* not base64 */
		{"{" BASE "," ONE_PERSON ",'attachments':[{'filename':'a.pdf',"
		 "'type':'application/pdf','content':'not base64!','disposition':'attachment'}]}",
		 "not valid base64"},
		/* nothing a client could show */
		{"{" FROM "," SUBJECT ",'content':{'amp':'<html amp4email></html>'}," ONE_PERSON
		 "}",
		 "neither text nor html"},
	};
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		print_message("hostile payload %zu\n", i);
		expect_refused(hostile[i].payload, hostile[i].why);
	}
}

static void test_hostile_message_id_refused(void **state)
{
	(void)state;
	cJSON *payload = tu_json("{" BASE "," ONE_PERSON "}");
	char *out = NULL;
	size_t len = 0;
	const char *why = NULL;
	assert_int_equal(
		compose_message(payload, 0, "a@b\r\nBcc: evil@x.test", DATE, &out, &len, &why), -1);
	assert_null(out);
	assert_non_null(why);
	assert_non_null(strstr(why, "message id"));
	cJSON_Delete(payload);
}

/* A submitted message: one part, its envelope, its bytes back exactly (8-bit included). */
static void test_smtp_form_round_trips(void **state)
{
	(void)state;
	static const char data[] = "From: a@acme.test\r\nSubject: Gr\xc3\xbc\xc3\x9f"
				   "e\r\n\r\n\xe9t\xe9 \xff\r\n";
	const char *rcpts[] = {"bob@example.test", "cy@example.test"};
	char *json = compose_smtp_payload("bounce@acme.test", rcpts, 2, "ops@acme.test", data,
					  sizeof(data) - 1);
	cJSON *payload = cJSON_Parse(json);
	assert_non_null(payload);
	free(json);
	assert_int_equal(compose_parts(payload), 1);
	assert_string_equal(compose_mail_from(payload), "bounce@acme.test");
	assert_string_equal(compose_sender(payload), "ops@acme.test");
	const char *out[4];
	assert_int_equal(compose_recipients(payload, 0, out, 4), 2);
	assert_string_equal(out[0], "bob@example.test");
	assert_string_equal(out[1], "cy@example.test");
	assert_int_equal(compose_recipients(payload, 1, out, 4), -1);

	char *raw;
	size_t len;
	const char *why;
	assert_int_equal(compose_message(payload, 0, MSGID, DATE, &raw, &len, &why), 0);
	assert_int_equal(len, sizeof(data) - 1);
	assert_memory_equal(raw, data, len);
	assert_int_equal(raw[len], '\0');
	free(raw);
	assert_int_equal(compose_message(payload, 1, MSGID, DATE, &raw, &len, &why), -1);
	cJSON_Delete(payload);
}

static void test_smtp_form_without_sender(void **state)
{
	(void)state;
	const char *rcpts[] = {"bob@example.test"};
	char *json = compose_smtp_payload("a@acme.test", rcpts, 1, NULL, "x", 1);
	cJSON *payload = cJSON_Parse(json);
	free(json);
	assert_null(compose_sender(payload));
	cJSON_Delete(payload);
	/* A composed message has no envelope of its own. */
	payload = tu_json("{" BASE "," ONE_PERSON "}");
	assert_null(compose_mail_from(payload));
	assert_null(compose_sender(payload));
	cJSON_Delete(payload);
}

static void test_smtp_form_bad_base64_refused(void **state)
{
	(void)state;
	cJSON *payload = tu_json("{'smtp':{'mail_from':'a@acme.test','rcpt':['b@example.test'],"
				 "'mime':'@@@'}}");
	char *raw;
	size_t len;
	const char *why;
	assert_int_equal(compose_message(payload, 0, MSGID, DATE, &raw, &len, &why), -1);
	assert_null(raw);
	tu_assert_contains(why, "base64");
	cJSON_Delete(payload);
}

static int setup(void **state)
{
	(void)state;
	compose_init();
	return sodium_init() < 0 ? -1 : 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_headers_round_trip),
		cmocka_unit_test(test_text_only_is_one_utf8_part),
		cmocka_unit_test(test_html_only_long_line_is_encoded),
		cmocka_unit_test(test_alternative_order),
		cmocka_unit_test(test_binary_attachment_round_trips),
		cmocka_unit_test(test_inline_attachment_has_content_id),
		cmocka_unit_test(test_encoded_words_stay_literal),
		cmocka_unit_test(test_names_with_equals_signs_stay_literal),
		cmocka_unit_test(test_bare_cr_and_lf_become_crlf),
		cmocka_unit_test(test_content_ids_of_real_clients_are_kept),
		cmocka_unit_test(test_personalization_overrides),
		cmocka_unit_test(test_part_selects_personalization),
		cmocka_unit_test(test_values_are_substituted_per_personalization),
		cmocka_unit_test(test_literal_substitutions_reach_the_reply_to_name),
		cmocka_unit_test(test_reply_to_list_is_one_header),
		cmocka_unit_test(test_personalization_attachments_follow_the_shared_ones),
		cmocka_unit_test(test_recipients_order_and_count),
		cmocka_unit_test(test_part_out_of_range),
		cmocka_unit_test(test_hostile_inputs_refused),
		cmocka_unit_test(test_hostile_message_id_refused),
		cmocka_unit_test(test_smtp_form_round_trips),
		cmocka_unit_test(test_smtp_form_without_sender),
		cmocka_unit_test(test_smtp_form_bad_base64_refused),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
