/* Unit tests for send: requests in the Netcore and SendGrid dialects become one canonical
 * payload, and every refusal names the exact field at fault, with no way to smuggle CR or LF
 * into a header. */
#include "testutil.h"

#include "send.h"

/* Request bodies are written with ' for " so they read like the JSON a client sends; tu_json()
 * swaps the quotes back before parsing. No body here needs an apostrophe. */
#define FROM	"'from':{'email':'news@acme.test'}"
#define SUBJECT "'subject':'Hello'"
#define CONTENT "'content':[{'type':'html','value':'<p>Hi</p>'}]"
#define TO	"'personalizations':[{'to':[{'email':'ann@example.test'}]}]"
#define BASE	FROM "," SUBJECT "," CONTENT "," TO
/* A valid base64 attachment body ("hello"). */
#define B64 "aGVsbG8="

static void parse_ok_body(enum send_dialect d, const cJSON *body, struct send_request *out)
{
	struct send_problem why;
	if (send_parse(d, body, out, &why) != 0)
		fail_msg("refused at \"%s\": %s", why.field, why.message);
	assert_non_null(out->payload);
}

static void parse_ok(enum send_dialect d, const char *text, struct send_request *out)
{
	cJSON *body = tu_json(text);
	parse_ok_body(d, body, out);
	cJSON_Delete(body);
}

/* Parses a body that must be refused at field, leaving no payload behind. */
static void expect_invalid_body(enum send_dialect d, const cJSON *body, const char *field)
{
	struct send_request out;
	struct send_problem why;
	if (send_parse(d, body, &out, &why) != -1) {
		char *p = cJSON_PrintUnformatted(out.payload);
		fail_msg("accepted, expected a refusal at \"%s\": %s", field, p ? p : "");
	}
	if (strcmp(why.field, field) != 0)
		fail_msg("refused at \"%s\" (%s), expected \"%s\"", why.field, why.message, field);
	assert_true(why.message[0] != '\0');
	assert_null(out.payload);
}

static void expect_invalid(enum send_dialect d, const char *text, const char *field)
{
	cJSON *body = tu_json(text);
	expect_invalid_body(d, body, field);
	cJSON_Delete(body);
}

static void expect_invalid_both(const char *text, const char *field)
{
	expect_invalid(SEND_NETCORE, text, field);
	expect_invalid(SEND_SENDGRID, text, field);
}

/* A table of requests each refused at its field, in one dialect or in both. */
enum { BOTH_DIALECTS = -1 };

struct refusal {
	int dialect; /* enum send_dialect, or BOTH_DIALECTS */
	const char *body, *field;
};

struct refusals {
	struct refusal cases[8]; /* up to the first without a body */
};

static void expect_refusals(void **state)
{
	const struct refusals *table = *state;
	for (const struct refusal *c = table->cases; c->body; c++) {
		if (c->dialect == BOTH_DIALECTS)
			expect_invalid_both(c->body, c->field);
		else
			expect_invalid((enum send_dialect)c->dialect, c->body, c->field);
	}
}

/* A table runs as a test of its own, under the table's name. */
#define REFUSALS(table) tu_row_test(#table, expect_refusals, &table)

/* A canonical mailbox: its address, and its display name unless name is NULL. */
static void assert_mailbox(const cJSON *box, const char *email, const char *name)
{
	assert_string_equal(tu_text(box, "email"), email);
	if (name)
		assert_string_equal(tu_text(box, "name"), name);
}

static void assert_absent(const cJSON *o, const char *key)
{
	if (cJSON_GetObjectItemCaseSensitive(o, key))
		fail_msg("payload has \"%s\", expected none", key);
}

static void assert_empty_array(const cJSON *o, const char *key)
{
	const cJSON *v = tu_get(o, key);
	assert_true(cJSON_IsArray(v));
	assert_int_equal(cJSON_GetArraySize(v), 0);
}

static void assert_empty_object(const cJSON *o, const char *key)
{
	const cJSON *v = tu_get(o, key);
	assert_true(cJSON_IsObject(v));
	assert_null(v->child);
}

/* A custom header name refused in both places it may be given, at the top level and in a
 * personalization, naming its field each time. */
static void expect_header_refused(const char *name, const char *value)
{
	char body[512], field[128];
	snprintf(body, sizeof(body), "{" BASE ",'headers':{'%s':'%s'}}", name, value);
	snprintf(field, sizeof(field), "headers.%s", name);
	expect_invalid_both(body, field);

	snprintf(body, sizeof(body),
		 "{" FROM "," SUBJECT "," CONTENT
		 ",'personalizations':[{'to':[{'email':'a@x.test'}],"
		 "'headers':{'%s':'%s'}}]}",
		 name, value);
	snprintf(field, sizeof(field), "personalizations[0].headers.%s", name);
	expect_invalid_both(body, field);
}

/* A body whose personalizations hold the given numbers of to recipients, one personalization
 * per count, ending in -1. Returned for free(). */
static char *body_with_recipients(const int *counts)
{
	size_t cap = 64 * 1024, len = 0;
	char *s = malloc(cap);
	assert_non_null(s);
	len += (size_t)snprintf(s + len, cap - len,
				"{" FROM "," SUBJECT "," CONTENT ",'personalizations':[");
	for (int p = 0; counts[p] >= 0; p++) {
		len += (size_t)snprintf(s + len, cap - len, "%s{'to':[", p ? "," : "");
		for (int i = 0; i < counts[p]; i++) {
			if (cap - len < 128) {
				cap *= 2;
				s = realloc(s, cap);
				assert_non_null(s);
			}
			len += (size_t)snprintf(s + len, cap - len,
						"%s{'email':'r%d.%d@example.test'}", i ? "," : "",
						p, i);
		}
		len += (size_t)snprintf(s + len, cap - len, "]}");
	}
	snprintf(s + len, cap - len, "]}");
	return s;
}

static void netcore_minimal_request_becomes_canonical_payload(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_NETCORE,
		 "{'from':{'email':'News@ACME.Test','name':'Acme News'},'subject':'Hello',"
		 "'content':[{'type':'html','value':'<p>Hi</p>'}],"
		 "'personalizations':[{'to':[{'email':'Ann@Example.TEST','name':'Ann'}]}]}",
		 &r);
	assert_string_equal(r.from, "news@acme.test");
	assert_int_equal(r.recipients, 1);

	const cJSON *p = r.payload;
	assert_mailbox(tu_get(p, "from"), "news@acme.test", "Acme News");
	assert_absent(p, "reply_to");
	assert_string_equal(tu_text(p, "subject"), "Hello");
	assert_string_equal(tu_text(tu_get(p, "content"), "html"), "<p>Hi</p>");
	assert_absent(tu_get(p, "content"), "text");
	assert_absent(tu_get(p, "content"), "amp");

	const cJSON *ps = tu_get(p, "personalizations");
	assert_int_equal(cJSON_GetArraySize(ps), 1);
	const cJSON *p0 = tu_nth(ps, 0);
	assert_int_equal(cJSON_GetArraySize(tu_get(p0, "to")), 1);
	assert_mailbox(tu_nth(tu_get(p0, "to"), 0), "ann@example.test", "Ann");
	assert_empty_array(p0, "cc");
	assert_empty_array(p0, "bcc");
	assert_absent(p0, "subject");
	assert_empty_object(p0, "headers");

	assert_empty_object(p, "headers");
	assert_empty_array(p, "attachments");
	assert_empty_array(p, "tags");
	send_request_free(&r);
	assert_null(r.payload);
}

static void sendgrid_minimal_request_becomes_canonical_payload(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_SENDGRID,
		 "{'personalizations':[{'to':[{'email':'ann@example.test'}]}],"
		 "'from':{'email':'Billing@Acme.Test','name':'Acme Billing'},'subject':'Invoice',"
		 "'content':[{'type':'text/plain','value':'Your invoice'}]}",
		 &r);
	assert_string_equal(r.from, "billing@acme.test");
	assert_int_equal(r.recipients, 1);
	const cJSON *p = r.payload;
	assert_mailbox(tu_get(p, "from"), "billing@acme.test", "Acme Billing");
	assert_string_equal(tu_text(p, "subject"), "Invoice");
	assert_string_equal(tu_text(tu_get(p, "content"), "text"), "Your invoice");
	assert_absent(tu_get(p, "content"), "html");
	const cJSON *p0 = tu_nth(tu_get(p, "personalizations"), 0);
	assert_mailbox(tu_nth(tu_get(p0, "to"), 0), "ann@example.test", NULL);
	assert_absent(tu_nth(tu_get(p0, "to"), 0), "name");
	assert_empty_object(p, "headers");
	assert_empty_array(p, "attachments");
	assert_empty_array(p, "tags");
	send_request_free(&r);
}

static void from_is_normalized_including_idn(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_SENDGRID,
		 "{'from':{'email':'User@BÜCHER.example'}," SUBJECT "," CONTENT "," TO "}", &r);
	assert_string_equal(r.from, "user@xn--bcher-kva.example");
	assert_string_equal(tu_text(tu_get(r.payload, "from"), "email"),
			    "user@xn--bcher-kva.example");
	send_request_free(&r);
}

static void from_name_is_left_out_when_absent_or_empty(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_NETCORE, "{" BASE "}", &r);
	assert_absent(tu_get(r.payload, "from"), "name");
	send_request_free(&r);
	parse_ok(SEND_NETCORE,
		 "{'from':{'email':'news@acme.test','name':''}," SUBJECT "," CONTENT "," TO "}",
		 &r);
	assert_absent(tu_get(r.payload, "from"), "name");
	send_request_free(&r);
}

static void netcore_reply_to_may_be_string_or_object(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_NETCORE, "{" BASE ",'reply_to':'Help@Acme.Test'}", &r);
	assert_mailbox(tu_get(r.payload, "reply_to"), "help@acme.test", NULL);
	assert_absent(tu_get(r.payload, "reply_to"), "name");
	send_request_free(&r);

	parse_ok(SEND_NETCORE, "{" BASE ",'reply_to':{'email':'Help@Acme.Test','name':'Help'}}",
		 &r);
	assert_mailbox(tu_get(r.payload, "reply_to"), "help@acme.test", "Help");
	/* The reply-to address is not the sender: From stays as given. */
	assert_string_equal(r.from, "news@acme.test");
	send_request_free(&r);
}

static void sendgrid_reply_to_object_is_normalized(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_SENDGRID,
		 "{" BASE ",'reply_to':{'email':'Support@ACME.test','name':'Acme Support'}}", &r);
	assert_mailbox(tu_get(r.payload, "reply_to"), "support@acme.test", "Acme Support");
	send_request_free(&r);
}

static void content_types_map_to_canonical_parts(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_SENDGRID,
		 "{" FROM "," SUBJECT "," TO ",'content':[{'type':'text/plain','value':'plain'},"
		 "{'type':'text/html','value':'<b>html</b>'},{'type':'amp','value':'<html amp>'}]}",
		 &r);
	const cJSON *c = tu_get(r.payload, "content");
	assert_string_equal(tu_text(c, "text"), "plain");
	assert_string_equal(tu_text(c, "html"), "<b>html</b>");
	assert_string_equal(tu_text(c, "amp"), "<html amp>");
	send_request_free(&r);

	parse_ok(
		SEND_NETCORE,
		"{" FROM "," SUBJECT "," TO
		",'content':[{'type':'html','value':'<i>netcore</i>'},{'type':'amp','value':'a'}]}",
		&r);
	c = tu_get(r.payload, "content");
	assert_string_equal(tu_text(c, "html"), "<i>netcore</i>");
	assert_string_equal(tu_text(c, "amp"), "a");
	assert_absent(c, "text");
	send_request_free(&r);
}

static void personalizations_carry_recipients_subjects_and_headers(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(
		SEND_SENDGRID,
		"{" FROM "," SUBJECT "," CONTENT ",'personalizations':["
		"{'to':[{'email':'A@X.test'},{'email':'b@x.test','name':'B'}],"
		"'cc':[{'email':'C@x.test'}],'bcc':[{'email':'d@x.test'}],"
		"'subject':'For A and B','headers':{'X-Campaign':'spring'}},"
		"{'to':[{'email':'e@y.test'}],'bcc':[{'email':'f@y.test'},{'email':'g@y.test'}]}]}",
		&r);
	assert_int_equal(r.recipients, 7);
	const cJSON *ps = tu_get(r.payload, "personalizations");
	assert_int_equal(cJSON_GetArraySize(ps), 2);

	const cJSON *p0 = tu_nth(ps, 0);
	assert_int_equal(cJSON_GetArraySize(tu_get(p0, "to")), 2);
	assert_mailbox(tu_nth(tu_get(p0, "to"), 0), "a@x.test", NULL);
	assert_string_equal(tu_text(tu_nth(tu_get(p0, "to"), 1), "name"), "B");
	assert_mailbox(tu_nth(tu_get(p0, "cc"), 0), "c@x.test", NULL);
	assert_mailbox(tu_nth(tu_get(p0, "bcc"), 0), "d@x.test", NULL);
	assert_string_equal(tu_text(p0, "subject"), "For A and B");
	assert_string_equal(tu_text(tu_get(p0, "headers"), "X-Campaign"), "spring");

	const cJSON *p1 = tu_nth(ps, 1);
	assert_mailbox(tu_nth(tu_get(p1, "to"), 0), "e@y.test", NULL);
	assert_empty_array(p1, "cc");
	assert_int_equal(cJSON_GetArraySize(tu_get(p1, "bcc")), 2);
	assert_absent(p1, "subject");
	assert_empty_object(p1, "headers");
	assert_string_equal(tu_text(r.payload, "subject"), "Hello");
	send_request_free(&r);
}

static void custom_headers_are_kept(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_NETCORE,
		 "{" BASE
		 ",'headers':{'X-Custom':'value','List-Unsubscribe':'<mailto:u@acme.test>'}}",
		 &r);
	const cJSON *h = tu_get(r.payload, "headers");
	assert_string_equal(tu_text(h, "X-Custom"), "value");
	assert_string_equal(tu_text(h, "List-Unsubscribe"), "<mailto:u@acme.test>");
	send_request_free(&r);
}

static void netcore_attachment_name_becomes_filename_with_defaults(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_NETCORE,
		 "{" BASE ",'attachments':[{'name':'hello.txt','content':'" B64 "'}]}", &r);
	const cJSON *atts = tu_get(r.payload, "attachments");
	assert_int_equal(cJSON_GetArraySize(atts), 1);
	const cJSON *a = tu_nth(atts, 0);
	assert_string_equal(tu_text(a, "filename"), "hello.txt");
	assert_string_equal(tu_text(a, "type"), "application/octet-stream");
	assert_string_equal(tu_text(a, "content"), B64);
	assert_string_equal(tu_text(a, "disposition"), "attachment");
	assert_absent(a, "content_id");
	assert_absent(a, "name");
	send_request_free(&r);
}

static void sendgrid_attachment_keeps_type_disposition_and_content_id(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_SENDGRID,
		 "{" BASE ",'attachments':["
		 "{'filename':'logo.png','type':'image/png','content':'" B64 "',"
		 "'disposition':'inline','content_id':'logo'},"
		 "{'filename':'invoice.pdf','type':'application/pdf','content':'" B64 "'}]}",
		 &r);
	const cJSON *atts = tu_get(r.payload, "attachments");
	assert_int_equal(cJSON_GetArraySize(atts), 2);
	const cJSON *a = tu_nth(atts, 0);
	assert_string_equal(tu_text(a, "filename"), "logo.png");
	assert_string_equal(tu_text(a, "type"), "image/png");
	assert_string_equal(tu_text(a, "content"), B64);
	assert_string_equal(tu_text(a, "disposition"), "inline");
	assert_string_equal(tu_text(a, "content_id"), "logo");
	a = tu_nth(atts, 1);
	assert_string_equal(tu_text(a, "filename"), "invoice.pdf");
	assert_string_equal(tu_text(a, "type"), "application/pdf");
	assert_string_equal(tu_text(a, "disposition"), "attachment");
	assert_absent(a, "content_id");
	send_request_free(&r);
}

static void netcore_tags_and_sendgrid_categories_become_tags(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_NETCORE, "{" BASE ",'tags':['welcome','spring']}", &r);
	const cJSON *tags = tu_get(r.payload, "tags");
	assert_int_equal(cJSON_GetArraySize(tags), 2);
	assert_string_equal(tu_nth(tags, 0)->valuestring, "welcome");
	assert_string_equal(tu_nth(tags, 1)->valuestring, "spring");
	send_request_free(&r);

	parse_ok(SEND_SENDGRID, "{" BASE ",'categories':['receipts']}", &r);
	tags = tu_get(r.payload, "tags");
	assert_int_equal(cJSON_GetArraySize(tags), 1);
	assert_string_equal(tu_nth(tags, 0)->valuestring, "receipts");
	assert_absent(r.payload, "categories");
	send_request_free(&r);
}

static void subject_may_come_from_every_personalization(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_SENDGRID,
		 "{" FROM "," CONTENT
		 ",'personalizations':[{'to':[{'email':'a@x.test'}],'subject':'For A'},"
		 "{'to':[{'email':'b@x.test'}],'subject':'For B'}]}",
		 &r);
	const cJSON *ps = tu_get(r.payload, "personalizations");
	assert_string_equal(tu_text(tu_nth(ps, 0), "subject"), "For A");
	assert_string_equal(tu_text(tu_nth(ps, 1), "subject"), "For B");
	send_request_free(&r);
}

static void sendgrid_custom_args_are_kept_and_settings_off_are_accepted(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_SENDGRID,
		 "{" BASE ",'custom_args':{'order':'42','none':null},"
		 "'tracking_settings':{'click_tracking':{'enable':false,'enable_text':true},"
		 "'open_tracking':null},'mail_settings':{'sandbox_mode':{'enable':false},"
		 "'footer':{'enable':false,'text':'x'}},'asm':null,'ip_pool_name':null}",
		 &r);
	const cJSON *args = tu_get(r.payload, "custom_args");
	assert_string_equal(tu_text(args, "order"), "42");
	assert_absent(args, "none");
	assert_absent(r.payload, "tracking_settings");
	assert_absent(r.payload, "mail_settings");
	assert_false(r.sandbox);
	send_request_free(&r);
}

static void sendgrid_sandbox_mode_is_flagged(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_SENDGRID, "{" BASE ",'mail_settings':{'sandbox_mode':{'enable':true}}}", &r);
	assert_true(r.sandbox);
	send_request_free(&r);
	parse_ok(SEND_NETCORE, "{" BASE "}", &r);
	assert_false(r.sandbox);
	send_request_free(&r);
}

static void netcore_attributes_become_substitutions(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_NETCORE,
		 "{" FROM ",'subject':'Hi [% name %]'," CONTENT ",'personalizations':["
		 "{'to':[{'email':'a@x.test'}],'attributes':{'name':'Ann','n':42,'f':2.5,"
		 "'gone':null}},{'to':[{'email':'b@x.test'}]}]}",
		 &r);
	assert_string_equal(tu_text(r.payload, "tag_syntax"), "netcore");
	const cJSON *ps = tu_get(r.payload, "personalizations");
	const cJSON *subs = tu_get(tu_nth(ps, 0), "substitutions");
	assert_string_equal(tu_text(subs, "name"), "Ann");
	assert_string_equal(tu_text(subs, "n"), "42");
	assert_string_equal(tu_text(subs, "f"), "2.5");
	assert_absent(subs, "gone");
	assert_absent(tu_nth(ps, 1), "substitutions");
	/* The payload keeps the tags: they are filled in per message at delivery. */
	assert_string_equal(tu_text(r.payload, "subject"), "Hi [% name %]");
	send_request_free(&r);
}

static void sendgrid_substitutions_are_literal(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_SENDGRID,
		 "{" FROM "," SUBJECT "," CONTENT
		 ",'personalizations':[{'to':[{'email':'a@x.test'}],"
		 "'substitutions':{'-name-':'Ann','{{city}}':'Köln'}}]}",
		 &r);
	assert_string_equal(tu_text(r.payload, "tag_syntax"), "literal");
	const cJSON *subs =
		tu_get(tu_nth(tu_get(r.payload, "personalizations"), 0), "substitutions");
	assert_string_equal(tu_text(subs, "-name-"), "Ann");
	assert_string_equal(tu_text(subs, "{{city}}"), "Köln");
	send_request_free(&r);
	parse_ok(SEND_SENDGRID, "{" BASE "}", &r);
	assert_absent(r.payload, "tag_syntax");
	send_request_free(&r);
}

static void netcore_top_level_bcc_goes_to_every_personalization(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_NETCORE,
		 "{" FROM "," SUBJECT "," CONTENT ",'personalizations':["
		 "{'to':[{'email':'a@x.test'}],'bcc':[{'email':'own@x.test'}]},"
		 "{'to':[{'email':'b@x.test'}]}],"
		 "'bcc':[{'email':'Audit@Acme.Test','name':'Audit'},{'email':'log@acme.test'}]}",
		 &r);
	assert_int_equal(r.recipients, 3 + 2 * 2);
	const cJSON *ps = tu_get(r.payload, "personalizations");
	const cJSON *b0 = tu_get(tu_nth(ps, 0), "bcc"), *b1 = tu_get(tu_nth(ps, 1), "bcc");
	assert_int_equal(cJSON_GetArraySize(b0), 3);
	assert_mailbox(tu_nth(b0, 0), "own@x.test", NULL);
	assert_mailbox(tu_nth(b0, 1), "audit@acme.test", "Audit");
	assert_int_equal(cJSON_GetArraySize(b1), 2);
	assert_mailbox(tu_nth(b1, 1), "log@acme.test", NULL);
	assert_absent(r.payload, "bcc");
	send_request_free(&r);
}

static void netcore_personalization_attachments_are_its_own(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_NETCORE,
		 "{" FROM "," SUBJECT "," CONTENT
		 ",'attachments':[{'name':'all.txt','content':'" B64
		 "'}],'personalizations':[{'to':[{'email':'a@x.test'}],"
		 "'attachments':[{'name':'a.txt','content':'" B64 "'}]},"
		 "{'to':[{'email':'b@x.test'}],'attachments':null}]}",
		 &r);
	const cJSON *ps = tu_get(r.payload, "personalizations");
	const cJSON *own = tu_get(tu_nth(ps, 0), "attachments");
	assert_int_equal(cJSON_GetArraySize(own), 1);
	assert_string_equal(tu_text(tu_nth(own, 0), "filename"), "a.txt");
	assert_string_equal(tu_text(tu_nth(own, 0), "type"), "application/octet-stream");
	assert_absent(tu_nth(ps, 1), "attachments");
	assert_int_equal(cJSON_GetArraySize(tu_get(r.payload, "attachments")), 1);
	send_request_free(&r);
}

static void sendgrid_reply_to_list_is_kept(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_SENDGRID,
		 "{" BASE ",'reply_to':null,'reply_to_list':[{'email':'A@Acme.Test','name':'A'},"
		 "{'email':'b@acme.test'}]}",
		 &r);
	const cJSON *list = tu_get(r.payload, "reply_to_list");
	assert_int_equal(cJSON_GetArraySize(list), 2);
	assert_mailbox(tu_nth(list, 0), "a@acme.test", "A");
	assert_mailbox(tu_nth(list, 1), "b@acme.test", NULL);
	assert_absent(r.payload, "reply_to");
	send_request_free(&r);
}

/* Pepipost's Python library sends every field it has, null when unset. */
static void nulls_count_as_absent(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(SEND_NETCORE,
		 "{" FROM "," SUBJECT "," CONTENT ",'reply_to':null,'template_id':null,"
		 "'attachments':null,'settings':{'footer':null,'click_track':false,"
		 "'open_track':null,'unsubscribe_track':null,'hepf':false},'tags':null,"
		 "'lint_payload':null,'schedule':null,'bcc':null,'personalizations':[{"
		 "'to':[{'email':'a@x.test','name':null}],'attributes':null,'headers':null,"
		 "'attachments':null,'cc':null,'bcc':null,'token_to':null,'token_cc':null,"
		 "'token_bcc':null}]}",
		 &r);
	assert_int_equal(r.recipients, 1);
	/* Netcore's tags without attributes still become "". */
	assert_string_equal(tu_text(r.payload, "tag_syntax"), "netcore");
	send_request_free(&r);
}

/* A header whose value is null is left out, in both dialects and at both levels. */
static void null_header_values_are_left_out(void **state)
{
	(void)state;
	struct send_request r;
	for (int d = SEND_NETCORE; d <= SEND_SENDGRID; d++) {
		parse_ok((enum send_dialect)d,
			 "{" FROM "," SUBJECT "," CONTENT ",'headers':{'X-A':null,'X-B':'b'},"
			 "'personalizations':[{'to':[{'email':'a@x.test'}],"
			 "'headers':{'X-C':null,'Reply-To':null}}]}",
			 &r);
		const cJSON *headers = tu_get(r.payload, "headers");
		assert_absent(headers, "X-A");
		assert_string_equal(tu_text(headers, "X-B"), "b");
		assert_empty_object(tu_nth(tu_get(r.payload, "personalizations"), 0), "headers");
		send_request_free(&r);
	}
}

static void exactly_1000_recipients_are_accepted(void **state)
{
	(void)state;
	struct send_request r;
	char *body = body_with_recipients((const int[]){600, 400, -1});
	parse_ok(SEND_SENDGRID, body, &r);
	assert_int_equal(r.recipients, 1000);
	send_request_free(&r);
	free(body);
}

/* A personalization's values (field: substitutions or attributes) are accepted up to 10,000
 * bytes of names and values, and refused beyond. */
static void expect_values_bounded(enum send_dialect d, const char *field)
{
	char value[9000], path[64];
	tu_repeat(value, 'v', sizeof(value) - 1);
	cJSON *body = tu_json("{" BASE "}");
	cJSON *values = cJSON_AddObjectToObject(
		cJSON_GetArrayItem(cJSON_GetObjectItem(body, "personalizations"), 0), field);
	cJSON_AddStringToObject(values, "-a-", value);
	struct send_request r;
	parse_ok_body(d, body, &r);
	send_request_free(&r);
	cJSON_AddStringToObject(values, "-b-", value);
	snprintf(path, sizeof(path), "personalizations[0].%s", field);
	expect_invalid_body(d, body, path);
	cJSON_Delete(body);
}

static void substitutions_over_10000_bytes_are_refused(void **state)
{
	(void)state;
	expect_values_bounded(SEND_SENDGRID, "substitutions");
}

static void netcore_attributes_over_10000_bytes_are_refused(void **state)
{
	(void)state;
	expect_values_bounded(SEND_NETCORE, "attributes");
}

static void top_level_bcc_counts_toward_the_limit(void **state)
{
	(void)state;
	char *text = body_with_recipients((const int[]){499, 499, -1});
	cJSON *body = tu_json(text);
	free(text);
	cJSON *bcc = cJSON_AddArrayToObject(body, "bcc");
	cJSON *a = cJSON_CreateObject();
	cJSON_AddStringToObject(a, "email", "audit@acme.test");
	cJSON_AddItemToArray(bcc, a);
	struct send_request r;
	parse_ok_body(SEND_NETCORE, body, &r);
	assert_int_equal(r.recipients, 1000);
	send_request_free(&r);
	a = cJSON_CreateObject();
	cJSON_AddStringToObject(a, "email", "log@acme.test");
	cJSON_AddItemToArray(bcc, a);
	expect_invalid_body(SEND_NETCORE, body, "bcc");
	cJSON_Delete(body);
}

static void body_that_is_not_an_object_is_refused(void **state)
{
	(void)state;
	const char *bodies[] = {"[]", "['x']", "'text'", "42", "null", "true"};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
		expect_invalid_both(bodies[i], "");
	expect_invalid_body(SEND_NETCORE, NULL, "");
}

static const struct refusals missing_from_is_refused = {{
	{BOTH_DIALECTS, "{" SUBJECT "," CONTENT "," TO "}", "from"},
	{BOTH_DIALECTS, "{'from':null," SUBJECT "," CONTENT "," TO "}", "from"},
	{BOTH_DIALECTS, "{'from':'news@acme.test'," SUBJECT "," CONTENT "," TO "}", "from"},
	{BOTH_DIALECTS, "{'from':['news@acme.test']," SUBJECT "," CONTENT "," TO "}", "from"},
}};

static void invalid_from_email_is_refused(void **state)
{
	(void)state;
	const char *bad[] = {"not-an-address",
			     "news@localhost",
			     "",
			     "news@1.2.3.4",
			     "news@acme.test\\r\\nBcc: victim@x.test",
			     "a b@acme.test"};
	char body[512];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, sizeof(body),
			 "{'from':{'email':'%s'}," SUBJECT "," CONTENT "," TO "}", bad[i]);
		expect_invalid_both(body, "from.email");
	}
	expect_invalid_both("{'from':{'name':'No Email'}," SUBJECT "," CONTENT "," TO "}",
			    "from.email");
	expect_invalid_both("{'from':{'email':42}," SUBJECT "," CONTENT "," TO "}", "from.email");
}

static const struct refusals line_break_in_from_name_is_refused = {{
	{BOTH_DIALECTS,
	 "{'from':{'email':'news@acme.test','name':'Acme\\r\\nBcc: x@y.test'},"
	 "" SUBJECT "," CONTENT "," TO "}",
	 "from.name"},
	{BOTH_DIALECTS,
	 "{'from':{'email':'news@acme.test','name':'Acme\\nNews'}," SUBJECT "," CONTENT "," TO "}",
	 "from.name"},
}};

static void overlong_from_name_is_refused(void **state)
{
	(void)state;
	char name[SEND_NAME_MAX + 2], body[1024];
	memset(name, 'n', SEND_NAME_MAX + 1);
	name[SEND_NAME_MAX + 1] = '\0';
	snprintf(body, sizeof(body),
		 "{'from':{'email':'news@acme.test','name':'%s'}," SUBJECT "," CONTENT "," TO "}",
		 name);
	expect_invalid_both(body, "from.name");
}

static const struct refusals invalid_reply_to_is_refused = {{
	{SEND_NETCORE, "{" BASE ",'reply_to':'not-an-address'}", "reply_to"},
	{BOTH_DIALECTS, "{" BASE ",'reply_to':{'email':'not-an-address'}}", "reply_to.email"},
	{BOTH_DIALECTS, "{" BASE ",'reply_to':{'email':'h@acme.test','name':'H\\r\\nX: y'}}",
	 "reply_to.name"},
	{BOTH_DIALECTS, "{" BASE ",'reply_to':42}", "reply_to"},
}};

static const struct refusals missing_or_empty_personalizations_are_refused = {{
	{BOTH_DIALECTS, "{" FROM "," SUBJECT "," CONTENT "}", "personalizations"},
	{BOTH_DIALECTS, "{" FROM "," SUBJECT "," CONTENT ",'personalizations':[]}",
	 "personalizations"},
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," CONTENT ",'personalizations':{'to':[{'email':'a@x.test'}]}}",
	 "personalizations"},
	{BOTH_DIALECTS, "{" FROM "," SUBJECT "," CONTENT ",'personalizations':['a@x.test']}",
	 "personalizations[0]"},
}};

static const struct refusals personalization_without_to_is_refused = {{
	{BOTH_DIALECTS, "{" FROM "," SUBJECT "," CONTENT ",'personalizations':[{}]}",
	 "personalizations[0].to"},
	{BOTH_DIALECTS, "{" FROM "," SUBJECT "," CONTENT ",'personalizations':[{'to':[]}]}",
	 "personalizations[0].to"},
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," CONTENT ",'personalizations':[{'cc':[{'email':'c@x.test'}]}]}",
	 "personalizations[0].to"},
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," CONTENT
	 ",'personalizations':[{'to':[{'email':'a@x.test'}]},{'to':[]}]}",
	 "personalizations[1].to"},
}};

static const struct refusals invalid_recipient_is_refused_at_its_path = {{
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," CONTENT
	 ",'personalizations':[{'to':[{'email':'a@x.test'},{'email':'bad'}]}]}",
	 "personalizations[0].to[1].email"},
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," CONTENT ",'personalizations':[{'to':['a@x.test']}]}",
	 "personalizations[0].to[0]"},
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," CONTENT ",'personalizations':[{'to':[{'name':'No Email'}]}]}",
	 "personalizations[0].to[0].email"},
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," CONTENT
	 ",'personalizations':[{'to':[{'email':'a@x.test','name':'A\\r\\nBcc: "
	 "v@x.test'}]}]}",
	 "personalizations[0].to[0].name"},
}};

static const struct refusals invalid_cc_and_bcc_are_refused_at_their_paths = {{
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," CONTENT ",'personalizations':[{'to':[{'email':'a@x.test'}],"
	 "'cc':[{'email':'c@x.test'},{'email':'c@@x.test'}]}]}",
	 "personalizations[0].cc[1].email"},
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," CONTENT ",'personalizations':[{'to':[{'email':'a@x.test'}]},"
	 "{'to':[{'email':'b@x.test'}],'bcc':[{'email':'b@localhost'}]}]}",
	 "personalizations[1].bcc[0].email"},
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," CONTENT
	 ",'personalizations':[{'to':[{'email':'a@x.test'}],'cc':'c@x.test'}]}",
	 "personalizations[0].cc"},
}};

static void more_than_1000_recipients_are_refused_at_the_1001st(void **state)
{
	(void)state;
	char *body = body_with_recipients((const int[]){1000, 1, -1});
	expect_invalid_both(body, "personalizations[1].to[0]");
	free(body);

	body = body_with_recipients((const int[]){1001, -1});
	expect_invalid_both(body, "personalizations[0].to[1000]");
	free(body);

	body = body_with_recipients((const int[]){500, 499, 2, -1});
	expect_invalid_both(body, "personalizations[2].to[1]");
	free(body);

	/* cc and bcc count too. */
	char *to = body_with_recipients((const int[]){999, -1});
	size_t n = strlen(to);
	char *cc = malloc(n + 256);
	assert_non_null(cc);
	memcpy(cc, to, n);
	/* Replace the closing "]}]}" of the only personalization with cc and bcc lists. */
	strcpy(cc + n - 4, "],'cc':[{'email':'c@x.test'}],'bcc':[{'email':'d@x.test'}]}]}");
	expect_invalid_both(cc, "personalizations[0].bcc[0]");
	free(cc);
	free(to);
}

static const struct refusals line_break_in_subject_is_refused = {{
	{BOTH_DIALECTS, "{" FROM ",'subject':'Hi\\r\\nBcc: v@x.test'," CONTENT "," TO "}",
	 "subject"},
	{BOTH_DIALECTS, "{" FROM ",'subject':'Hi\\nthere'," CONTENT "," TO "}", "subject"},
	{BOTH_DIALECTS, "{" FROM ",'subject':'Hi\\rthere'," CONTENT "," TO "}", "subject"},
	/* The top-level subject is checked even when every personalization has its own. */
	{BOTH_DIALECTS,
	 "{" FROM ",'subject':'Hi\\r\\n'," CONTENT
	 ",'personalizations':[{'to':[{'email':'a@x.test'}],'subject':'ok'}]}",
	 "subject"},
}};

static void text_that_is_not_utf8_is_refused(void **state)
{
	(void)state;
	expect_invalid_both("{" FROM ",'subject':'Gr\xfc\xdf'," CONTENT "," TO "}", "subject");
	expect_invalid_both("{" FROM ",'subject':'Hi','content':[{'type':'text/plain',"
			    "'value':'a\xc3\x28'}]," TO "}",
			    "content[0].value");
	expect_invalid_both("{" FROM ",'subject':'Hi'," CONTENT ",'headers':{'X-A':'\xff'}," TO "}",
			    "headers.X-A");
	struct send_request r;
	parse_ok(SEND_NETCORE, "{" FROM ",'subject':'Gr\xc3\xbc\xc3\x9f\x65'," CONTENT "," TO "}",
		 &r);
	send_request_free(&r);
}

static void overlong_or_non_string_subject_is_refused(void **state)
{
	(void)state;
	char subject[SEND_SUBJECT_MAX + 2], body[2048];
	memset(subject, 's', SEND_SUBJECT_MAX);
	subject[SEND_SUBJECT_MAX] = '\0';
	snprintf(body, sizeof(body), "{" FROM ",'subject':'%s'," CONTENT "," TO "}", subject);
	struct send_request r;
	parse_ok(SEND_SENDGRID, body, &r);
	send_request_free(&r);

	memset(subject, 's', SEND_SUBJECT_MAX + 1);
	subject[SEND_SUBJECT_MAX + 1] = '\0';
	snprintf(body, sizeof(body), "{" FROM ",'subject':'%s'," CONTENT "," TO "}", subject);
	expect_invalid_both(body, "subject");
	expect_invalid_both("{" FROM ",'subject':42," CONTENT "," TO "}", "subject");
}

static const struct refusals line_break_in_personalization_subject_is_refused = {{
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," CONTENT ",'personalizations':[{'to':[{'email':'a@x.test'}],"
	 "'subject':'Hi\\r\\nBcc: v@x.test'}]}",
	 "personalizations[0].subject"},
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," CONTENT
	 ",'personalizations':[{'to':[{'email':'a@x.test'}],'subject':'ok'},"
	 "{'to':[{'email':'b@x.test'}],'subject':'a\\nb'}]}",
	 "personalizations[1].subject"},
}};

static const struct refusals subject_missing_somewhere_is_refused = {{
	{BOTH_DIALECTS, "{" FROM "," CONTENT "," TO "}", "subject"},
	{BOTH_DIALECTS,
	 "{" FROM "," CONTENT ",'personalizations':[{'to':[{'email':'a@x.test'}],'subject':'ok'},"
	 "{'to':[{'email':'b@x.test'}]}]}",
	 "subject"},
}};

static const struct refusals line_break_in_header_value_is_refused = {{
	{BOTH_DIALECTS, "{" BASE ",'headers':{'X-Custom':'a\\r\\nBcc: v@x.test'}}",
	 "headers.X-Custom"},
	{BOTH_DIALECTS, "{" BASE ",'headers':{'X-Ok':'fine','X-Custom':'a\\nb'}}",
	 "headers.X-Custom"},
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," CONTENT ",'personalizations':[{'to':[{'email':'a@x.test'}],"
	 "'headers':{'X-Custom':'a\\rb'}}]}",
	 "personalizations[0].headers.X-Custom"},
}};

static void reserved_headers_are_refused(void **state)
{
	(void)state;
	const char *names[] = {"From",
			       "Sender",
			       "Return-Path",
			       "DKIM-Signature",
			       "from",
			       "sender",
			       "return-path",
			       "dkim-signature",
			       "FROM",
			       "To",
			       "Subject",
			       "Content-Type",
			       "Cc",
			       "Bcc",
			       "Reply-To",
			       "Message-ID",
			       "Date",
			       "MIME-Version",
			       "Content-Transfer-Encoding"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		expect_header_refused(names[i], "x@evil.test");
}

/* Headers a receiver trusts as the verdict of an earlier hop: a client may not forge them. */
static void headers_receivers_trust_are_refused(void **state)
{
	(void)state;
	const char *names[] = {"Authentication-Results",
			       "authentication-results",
			       "ARC-Seal",
			       "ARC-Message-Signature",
			       "arc-authentication-results",
			       "Received-SPF",
			       "DKIM-Signature",
			       "dkim-signature",
			       "DKIM-Filter",
			       "DomainKey-Signature",
			       "X-Original-From",
			       "x-original-from"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		expect_header_refused(names[i], "pass");
	/* Names that merely resemble them are the client's own. */
	struct send_request r;
	parse_ok(SEND_NETCORE, "{" BASE ",'headers':{'X-Arc':'1','X-DKIM':'2','Archive':'3'}}", &r);
	send_request_free(&r);
}

/* What a client shows is the decoded header: no control character may reach it, however it
 * would be encoded. TAB is the one allowed. */
static void control_characters_are_refused_at_their_field(void **state)
{
	(void)state;
	static const char *const controls[] = {"\\u0001", "\\u0007", "\\u001b", "\\u007f",
					       "\\u0080", "\\u0085", "\\u009f"};
	char body[1024];
	for (size_t i = 0; i < sizeof(controls) / sizeof(controls[0]); i++) {
		const char *c = controls[i];
		print_message("control %s\n", c);
		snprintf(body, sizeof(body),
			 "{'from':{'email':'news@acme.test','name':'Acme%sNews'}," SUBJECT
			 "," CONTENT "," TO "}",
			 c);
		expect_invalid_both(body, "from.name");
		snprintf(body, sizeof(body), "{" FROM ",'subject':'Hi%s'," CONTENT "," TO "}", c);
		expect_invalid_both(body, "subject");
		snprintf(body, sizeof(body),
			 "{" FROM "," SUBJECT "," CONTENT
			 ",'personalizations':[{'to':[{'email':'a@x.test','name':'A%s'}]}]}",
			 c);
		expect_invalid_both(body, "personalizations[0].to[0].name");
		snprintf(body, sizeof(body),
			 "{" FROM "," SUBJECT "," CONTENT
			 ",'personalizations':[{'to':[{'email':'a@x.test'}],'subject':'%s'}]}",
			 c);
		expect_invalid_both(body, "personalizations[0].subject");
		snprintf(body, sizeof(body),
			 "{" BASE ",'reply_to':{'email':'h@acme.test','name':'Help%s'}}", c);
		expect_invalid_both(body, "reply_to.name");
		snprintf(body, sizeof(body), "{" BASE ",'headers':{'X-A':'a%sb'}}", c);
		expect_invalid_both(body, "headers.X-A");
		snprintf(body, sizeof(body),
			 "{" BASE ",'attachments':[{'filename':'a%s.pdf','content':'" B64 "'}]}",
			 c);
		expect_invalid(SEND_SENDGRID, body, "attachments[0].filename");
		snprintf(body, sizeof(body),
			 "{" BASE ",'attachments':[{'name':'a%s.pdf','content':'" B64 "'}]}", c);
		expect_invalid(SEND_NETCORE, body, "attachments[0].name");
	}
	struct send_request r;
	parse_ok(SEND_SENDGRID,
		 "{'from':{'email':'news@acme.test','name':'Acme\\tNews'},'subject':'a\\tb',"
		 "" CONTENT "," TO ",'headers':{'X-A':'1\\t2'}}",
		 &r);
	assert_string_equal(tu_text(tu_get(r.payload, "from"), "name"), "Acme\tNews");
	send_request_free(&r);
}

/* Encoded words are text like any other for send; compose writes them so that they decode to
 * themselves. Only a file name, which no encoding carries faithfully, may not hold "=?". */
static void encoded_words_are_text_but_not_in_file_names(void **state)
{
	(void)state;
	struct send_request r;
	parse_ok(
		SEND_NETCORE,
		"{'from':{'email':'news@acme.test','name':'=?utf-8?b?c2VjdXJpdHlAcGF5cGFsLmNvbQA=?="
		"'},'subject':'=?utf-8?q?a=0D=0AFrom:_x?='," CONTENT "," TO "}",
		&r);
	assert_string_equal(tu_text(tu_get(r.payload, "from"), "name"),
			    "=?utf-8?b?c2VjdXJpdHlAcGF5cGFsLmNvbQA=?=");
	assert_string_equal(tu_text(r.payload, "subject"), "=?utf-8?q?a=0D=0AFrom:_x?=");
	send_request_free(&r);
	expect_invalid(SEND_SENDGRID,
		       "{" BASE
		       ",'attachments':[{'filename':'=?utf-8?q?a=0D=0A.exe?=','content':'" B64
		       "'}]}",
		       "attachments[0].filename");
	expect_invalid(SEND_NETCORE,
		       "{" BASE ",'attachments':[{'name':'x =?utf-8?b?AA==?= y.pdf','content':'" B64
		       "'}]}",
		       "attachments[0].name");
}

/* A content id goes inside <> on a header line: it must be a msg-id, or "x> From: <y" would
 * close the brackets and write a header of its own. */
static void content_id_must_be_a_message_id(void **state)
{
	(void)state;
	static const char *const bad[] = {"x> From: <y", "a b",	   "<a@b",   "a@b>",
					  "<>",		 "a..b",   ".a",     "a.",
					  "a@",		 "@b",	   "a@b@c",  "a\\tb",
					  "a\\\\b",	 "a\\\"b", "<a@b>>", "ü@example.com"};
	char body[512];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		print_message("content_id %s\n", bad[i]);
		snprintf(body, sizeof(body),
			 "{" BASE
			 ",'attachments':[{'name':'a.png','filename':'a.png','content':'" B64
			 "','disposition':'inline','content_id':'%s'}]}",
			 bad[i]);
		expect_invalid_both(body, "attachments[0].content_id");
	}
	static const char *const good[] = {"ii_139db99fdb5c3704", "logo@example.com",
					   "<logo@example.com>", "part1.0609@x.example",
					   "a!#$%&*+-/=?^_`{|}~b"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct send_request r;
		snprintf(body, sizeof(body),
			 "{" BASE ",'attachments':[{'filename':'a.png','content':'" B64
			 "','disposition':'inline','content_id':'%s'}]}",
			 good[i]);
		parse_ok(SEND_SENDGRID, body, &r);
		assert_string_equal(
			tu_text(tu_nth(tu_get(r.payload, "attachments"), 0), "content_id"),
			good[i]);
		send_request_free(&r);
	}
}

static const struct refusals malformed_header_names_are_refused = {{
	{BOTH_DIALECTS, "{" BASE ",'headers':{'X Custom':'v'}}", "headers.X Custom"},
	{BOTH_DIALECTS, "{" BASE ",'headers':{'X-Custom:':'v'}}", "headers.X-Custom:"},
	{BOTH_DIALECTS, "{" BASE ",'headers':{'X:Custom':'v'}}", "headers.X:Custom"},
	{BOTH_DIALECTS, "{" BASE ",'headers':{'':'v'}}", "headers."},
	{BOTH_DIALECTS, "{" BASE ",'headers':{'X-A\\r\\nBcc':'v'}}", "headers.X-A\r\nBcc"},
	{BOTH_DIALECTS, "{" BASE ",'headers':{'From ':'x@evil.test'}}", "headers.From "},
	{BOTH_DIALECTS, "{" BASE ",'headers':{'X-Ünicode':'v'}}", "headers.X-Ünicode"},
}};

static void non_string_header_value_is_refused(void **state)
{
	(void)state;
	const char *values[] = {"42", "true", "{'a':'b'}", "['v']"};
	char body[256];
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		snprintf(body, sizeof(body), "{" BASE ",'headers':{'X-Count':%s}}", values[i]);
		expect_invalid_both(body, "headers.X-Count");
	}
	expect_invalid_both("{" BASE ",'headers':['X-Count: 1']}", "headers");
	expect_invalid_both("{" BASE ",'headers':'X-Count: 1'}", "headers");
}

static const struct refusals missing_or_empty_content_is_refused = {{
	{BOTH_DIALECTS, "{" FROM "," SUBJECT "," TO "}", "content"},
	{BOTH_DIALECTS, "{" FROM "," SUBJECT "," TO ",'content':[]}", "content"},
	{BOTH_DIALECTS, "{" FROM "," SUBJECT "," TO ",'content':'<p>Hi</p>'}", "content"},
	{BOTH_DIALECTS, "{" FROM "," SUBJECT "," TO ",'content':{'type':'html','value':'x'}}",
	 "content"},
}};

static const struct refusals unknown_content_type_is_refused = {{
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," TO ",'content':[{'type':'text/markdown','value':'# Hi'}]}",
	 "content[0].type"},
	{BOTH_DIALECTS, "{" FROM "," SUBJECT "," TO ",'content':[{'value':'Hi'}]}",
	 "content[0].type"},
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," TO ",'content':[{'type':'text/plain','value':'Hi'},"
	 "{'type':'application/json','value':'{}'}]}",
	 "content[1].type"},
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," TO ",'content':[{'type':'text/plain','value':42}]}",
	 "content[0].value"},
}};

static const struct refusals amp_only_content_is_refused = {{
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," TO ",'content':[{'type':'amp','value':'<html amp>'}]}",
	 "content"},
}};

static const struct refusals duplicate_content_type_is_refused = {{
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," TO
	 ",'content':[{'type':'html','value':'a'},{'type':'text/html','value':'b'}]}",
	 "content[1].type"},
	{BOTH_DIALECTS,
	 "{" FROM "," SUBJECT "," TO
	 ",'content':[{'type':'text/plain','value':'a'},{'type':'text/plain','value':'b'}]}",
	 "content[1].type"},
}};

static const struct refusals attachment_content_must_be_base64 = {{
	{BOTH_DIALECTS,
	 "{" BASE ",'attachments':[{'name':'a.txt','filename':'a.txt',"
	 "'content':'not base64!'}]}",
	 "attachments[0].content"},
	{BOTH_DIALECTS,
	 "{" BASE ",'attachments':[{'name':'a.txt','filename':'a.txt',"
	 "'content':''}]}",
	 "attachments[0].content"},
	{BOTH_DIALECTS, "{" BASE ",'attachments':[{'name':'a.txt','filename':'a.txt'}]}",
	 "attachments[0].content"},
	{BOTH_DIALECTS,
	 "{" BASE ",'attachments':[{'name':'a.txt','filename':'a.txt',"
	 "'content':'" B64 "'},{'name':'b.txt','filename':'b.txt','content':42}]}",
	 "attachments[1].content"},
}};

static void attachment_type_must_be_a_mime_type(void **state)
{
	(void)state;
	const char *types[] = {"pdf", "application/", "/pdf", "application/pdf; name=x",
			       "application pdf"};
	char body[512];
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		snprintf(body, sizeof(body),
			 "{" BASE ",'attachments':[{'name':'a.pdf','filename':'a.pdf',"
			 "'type':'%s','content':'" B64 "'}]}",
			 types[i]);
		expect_invalid_both(body, "attachments[0].type");
	}
	expect_invalid_both("{" BASE ",'attachments':[{'name':'a.pdf','filename':'a.pdf',"
			    "'type':'application/pdf\\r\\nX: y','content':'" B64 "'}]}",
			    "attachments[0].type");
}

static const struct refusals attachment_disposition_must_be_attachment_or_inline = {{
	{BOTH_DIALECTS,
	 "{" BASE ",'attachments':[{'name':'a.txt','filename':'a.txt',"
	 "'content':'" B64 "','disposition':'form-data'}]}",
	 "attachments[0].disposition"},
}};

static const struct refusals line_break_in_attachment_filename_is_refused = {{
	{SEND_SENDGRID,
	 "{" BASE ",'attachments':[{'filename':'a.txt\\r\\nX: y','content':'" B64 "'}]}",
	 "attachments[0].filename"},
	{SEND_NETCORE, "{" BASE ",'attachments':[{'name':'a.txt\\r\\nX: y','content':'" B64 "'}]}",
	 "attachments[0].name"},
	{BOTH_DIALECTS,
	 "{" BASE ",'attachments':[{'name':'a.png','filename':'a.png',"
	 "'content':'" B64 "','content_id':'logo\\r\\nX: y'}]}",
	 "attachments[0].content_id"},
}};

static const struct refusals attachment_needs_its_dialects_name_field = {{
	/* Each dialect reads only its own key for the file name. */
	{SEND_SENDGRID, "{" BASE ",'attachments':[{'name':'a.txt','content':'" B64 "'}]}",
	 "attachments[0].filename"},
	{SEND_NETCORE, "{" BASE ",'attachments':[{'filename':'a.txt','content':'" B64 "'}]}",
	 "attachments[0].name"},
	{BOTH_DIALECTS, "{" BASE ",'attachments':{'name':'a.txt'}}", "attachments"},
	{BOTH_DIALECTS, "{" BASE ",'attachments':['a.txt']}", "attachments[0]"},
}};

static const struct refusals sendgrid_refuses_templates_and_batches = {{
	{SEND_SENDGRID, "{" BASE ",'template_id':'d-123'}", "template_id"},
	{SEND_SENDGRID, "{" BASE ",'batch_id':'b-1'}", "batch_id"},
}};

static const struct refusals netcore_personalization_send_at_is_refused = {{
	{SEND_NETCORE,
	 "{" FROM "," SUBJECT "," CONTENT ",'personalizations':[{'to':[{'email':'a@x.test'}],"
	 "'send_at':1700000000}]}",
	 "personalizations[0].send_at"},
}};

#define ONE_TO "'personalizations':[{'to':[{'email':'a@x.test'}],"

static const struct refusals unknown_fields_are_refused = {{
	{BOTH_DIALECTS, "{" BASE ",'tracking':{'opens':true}}", "tracking"},
	{BOTH_DIALECTS, "{" FROM "," SUBJECT "," CONTENT "," ONE_TO "'priority':'high'}]}",
	 "personalizations[0].priority"},
	{SEND_NETCORE, "{" BASE ",'custom_args':{'a':'b'}}", "custom_args"},
	{SEND_SENDGRID, "{" BASE ",'settings':{'footer':false}}", "settings"},
	{SEND_SENDGRID, "{" FROM "," SUBJECT "," CONTENT "," ONE_TO "'attributes':{'a':'b'}}]}",
	 "personalizations[0].attributes"},
	{SEND_NETCORE, "{" FROM "," SUBJECT "," CONTENT "," ONE_TO "'substitutions':{'a':'b'}}]}",
	 "personalizations[0].substitutions"},
}};

static const struct refusals netcore_features_postern_lacks_are_refused = {{
	{SEND_NETCORE, "{" BASE ",'template_id':12}", "template_id"},
	{SEND_NETCORE, "{" BASE ",'settings':{'click_track':true}}", "settings.click_track"},
	{SEND_NETCORE, "{" BASE ",'settings':{'open_track':false,'footer':1}}", "settings.footer"},
	{SEND_NETCORE, "{" BASE ",'settings':{'hepf':true}}", "settings.hepf"},
	{SEND_NETCORE, "{" BASE ",'settings':true}", "settings"},
	{SEND_NETCORE, "{" BASE ",'lint_payload':true}", "lint_payload"},
	{SEND_NETCORE, "{" FROM "," SUBJECT "," CONTENT "," ONE_TO "'token_to':'x'}]}",
	 "personalizations[0].token_to"},
}};

static const struct refusals sendgrid_features_postern_lacks_are_refused = {{
	{SEND_SENDGRID, "{" BASE ",'sections':{'-s-':'x'}}", "sections"},
	{SEND_SENDGRID, "{" BASE ",'asm':{'group_id':1}}", "asm"},
	{SEND_SENDGRID, "{" BASE ",'ip_pool_name':'main'}", "ip_pool_name"},
	{SEND_SENDGRID, "{" FROM "," SUBJECT "," CONTENT "," ONE_TO "'dynamic_template_data':{}}]}",
	 "personalizations[0].dynamic_template_data"},
	{SEND_SENDGRID, "{" BASE ",'tracking_settings':{'open_tracking':{'enable':true}}}",
	 "tracking_settings.open_tracking.enable"},
	{SEND_SENDGRID, "{" BASE ",'mail_settings':{'bypass_list_management':{'enable':true}}}",
	 "mail_settings.bypass_list_management.enable"},
	{SEND_SENDGRID, "{" BASE ",'mail_settings':{'footer':{'enable':'yes'}}}",
	 "mail_settings.footer.enable"},
}};

static const struct refusals sendgrid_bad_new_fields_are_refused = {{
	{SEND_SENDGRID,
	 "{" BASE ",'reply_to':{'email':'a@acme.test'},"
	 "'reply_to_list':[{'email':'b@acme.test'}]}",
	 "reply_to_list"},
	{SEND_SENDGRID, "{" BASE ",'reply_to_list':[]}", "reply_to_list"},
	{SEND_SENDGRID, "{" BASE ",'reply_to_list':[{'email':'nope'}]}", "reply_to_list[0].email"},
	{SEND_SENDGRID, "{" BASE ",'custom_args':{'n':1}}", "custom_args.n"},
	{SEND_SENDGRID, "{" FROM "," SUBJECT "," CONTENT "," ONE_TO "'custom_args':{'a':[]}}]}",
	 "personalizations[0].custom_args.a"},
	{SEND_SENDGRID, "{" FROM "," SUBJECT "," CONTENT "," ONE_TO "'substitutions':{'':'x'}}]}",
	 "personalizations[0].substitutions."},
	{SEND_SENDGRID, "{" FROM "," SUBJECT "," CONTENT "," ONE_TO "'substitutions':{'a':1}}]}",
	 "personalizations[0].substitutions.a"},
}};

static const struct refusals substituted_header_fields_are_checked = {{
	{SEND_SENDGRID,
	 "{" FROM ",'subject':'Hi -n-'," CONTENT "," ONE_TO
	 "'substitutions':{'-n-':'a\\r\\nBcc: x'}}]}",
	 "personalizations[0].substitutions"},
	{SEND_NETCORE,
	 "{" FROM ",'subject':'Hi [%n%]'," CONTENT "," ONE_TO "'attributes':{'n':'a\\nb'}}]}",
	 "personalizations[0].attributes"},
	{SEND_SENDGRID,
	 "{" FROM "," SUBJECT "," CONTENT ",'reply_to':{'email':'r@acme.test','name':'-n-'}," ONE_TO
	 "'substitutions':{'-n-':'a\\rb'}}]}",
	 "personalizations[0].substitutions"},
	{SEND_NETCORE, "{" FROM "," SUBJECT "," CONTENT "," ONE_TO "'attributes':{'n':true}}]}",
	 "personalizations[0].attributes.n"},
}};

static const struct refusals bad_tags_are_refused = {{
	{SEND_NETCORE, "{" BASE ",'tags':['ok','a\\r\\nb']}", "tags[1]"},
	{SEND_NETCORE, "{" BASE ",'tags':'welcome'}", "tags"},
	{SEND_NETCORE, "{" BASE ",'tags':[42]}", "tags[0]"},
	{SEND_SENDGRID, "{" BASE ",'categories':['ok','a\\nb']}", "categories[1]"},
	{SEND_SENDGRID, "{" BASE ",'categories':{'a':'b'}}", "categories"},
}};

/* Everything before the last check (tags) has built payload; the refusal must free it all. */
#define LATE_BODY(tags)                                                                            \
	"{" FROM ",'reply_to':{'email':'h@acme.test'}," SUBJECT "," CONTENT                        \
	",'personalizations':[{'to':[{'email':'a@x.test'}],'cc':[{'email':'c@x.test'}],"           \
	"'headers':{'X-A':'1'}}],'headers':{'X-B':'2'},"                                           \
	"'attachments':[{'name':'a.txt','filename':'a.txt','content':'" B64 "'}]," tags "}"

static const struct refusals refusal_late_in_the_body_leaves_no_payload = {{
	{SEND_NETCORE, LATE_BODY("'tags':['a\\r\\n']"), "tags[0]"},
	{SEND_SENDGRID, LATE_BODY("'categories':['a\\r\\n']"), "categories[0]"},
}};

/* Scheduled sending. NOW is the time of acceptance send_schedule is given. */
#define NOW 1800000000LL

static const struct refusals send_times_of_the_wrong_type_are_refused = {{
	{SEND_NETCORE, "{" BASE ",'schedule':'tomorrow'}", "schedule"},
	{SEND_NETCORE, "{" BASE ",'schedule':1800000000.5}", "schedule"},
	{SEND_SENDGRID, "{" BASE ",'send_at':-1}", "send_at"},
	{SEND_SENDGRID, "{" BASE ",'send_at':true}", "send_at"},
	{SEND_SENDGRID,
	 "{" FROM "," SUBJECT "," CONTENT ",'personalizations':[{'to':[{'email':'a@x.test'}]},"
	 "{'to':[{'email':'b@x.test'}],'send_at':'1800000000'}]}",
	 "personalizations[1].send_at"},
}};

/* Parses text in dialect d and applies its send times at NOW. */
static void schedule_ok(enum send_dialect d, const char *text, struct send_request *out)
{
	struct send_problem why;
	parse_ok(d, text, out);
	if (send_schedule(out, NOW, &why) != 0)
		fail_msg("refused at \"%s\": %s", why.field, why.message);
}

static int64_t part_send_at(const struct send_request *r, int i, const char **to)
{
	const cJSON *p = cJSON_GetArrayItem(tu_get(r->payload, "personalizations"), i);
	*to = tu_get(cJSON_GetArrayItem(tu_get(p, "to"), 0), "email")->valuestring;
	const cJSON *at = cJSON_GetObjectItemCaseSensitive(p, "send_at");
	return at ? (int64_t)at->valuedouble : 0;
}

static void null_send_times_are_absent(void **state)
{
	(void)state;
	struct send_request r;
	schedule_ok(SEND_NETCORE, "{" BASE ",'schedule':null}", &r);
	assert_int_equal(r.send_at, 0);
	send_request_free(&r);
	schedule_ok(SEND_SENDGRID,
		    "{" FROM "," SUBJECT "," CONTENT ",'send_at':null,"
		    "'personalizations':[{'to':[{'email':'a@x.test'}],'send_at':null}]}",
		    &r);
	const char *to;
	assert_int_equal(part_send_at(&r, 0, &to), 0);
	assert_int_equal(r.send_at, 0);
	send_request_free(&r);
}

static void sendgrid_personalizations_are_ordered_by_their_send_times(void **state)
{
	(void)state;
	struct send_request r;
	const char *to;
	/* Own times win over the request's; past and within 5 s mean now and go first. */
	schedule_ok(SEND_SENDGRID,
		    "{" FROM "," SUBJECT "," CONTENT ",'send_at':1800003600,'personalizations':["
		    "{'to':[{'email':'late@x.test'}],'send_at':1800007200},"
		    "{'to':[{'email':'top@x.test'}]},"
		    "{'to':[{'email':'past@x.test'}],'send_at':0},"
		    "{'to':[{'email':'soon@x.test'}],'send_at':1800000005}]}",
		    &r);
	static const struct {
		const char *to;
		int64_t at;
	} want[] = {{"past@x.test", 0},
		    {"soon@x.test", 0},
		    {"top@x.test", NOW + 3600},
		    {"late@x.test", NOW + 7200}};
	for (int i = 0; i < 4; i++) {
		assert_int_equal(part_send_at(&r, i, &to), want[i].at);
		assert_string_equal(to, want[i].to);
	}
	assert_int_equal(r.send_at, 0);
	assert_int_equal(r.recipients, 4);
	send_request_free(&r);
}

static void netcore_schedule_sets_the_send_time(void **state)
{
	(void)state;
	struct send_request r;
	const char *to;
	schedule_ok(SEND_NETCORE, "{" BASE ",'schedule':1800000006}", &r);
	assert_int_equal(r.send_at, NOW + 6);
	assert_int_equal(part_send_at(&r, 0, &to), NOW + 6);
	send_request_free(&r);
}

static void send_times_beyond_72_hours_are_refused_naming_the_field(void **state)
{
	(void)state;
	static const struct {
		enum send_dialect d;
		const char *text, *field;
	} cases[] = {
		{SEND_NETCORE, "{" BASE ",'schedule':1800259201}", "schedule"},
		{SEND_SENDGRID, "{" BASE ",'send_at':1800259201}", "send_at"},
		{SEND_SENDGRID,
		 "{" FROM "," SUBJECT "," CONTENT ",'send_at':1800003600,'personalizations':["
		 "{'to':[{'email':'a@x.test'}]},"
		 "{'to':[{'email':'b@x.test'}],'send_at':1800259201}]}",
		 "personalizations[1].send_at"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct send_request r;
		struct send_problem why;
		parse_ok(cases[i].d, cases[i].text, &r);
		assert_int_equal(send_schedule(&r, NOW, &why), -1);
		assert_string_equal(why.field, cases[i].field);
		assert_true(why.message[0] != '\0');
		assert_null(r.payload);
	}
	/* Exactly 72 hours ahead is allowed. */
	struct send_request r;
	schedule_ok(SEND_SENDGRID, "{" BASE ",'send_at':1800259200}", &r);
	assert_int_equal(r.send_at, NOW + SEND_SCHEDULE_MAX);
	send_request_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(netcore_minimal_request_becomes_canonical_payload),
		cmocka_unit_test(sendgrid_minimal_request_becomes_canonical_payload),
		cmocka_unit_test(from_is_normalized_including_idn),
		cmocka_unit_test(from_name_is_left_out_when_absent_or_empty),
		cmocka_unit_test(netcore_reply_to_may_be_string_or_object),
		cmocka_unit_test(sendgrid_reply_to_object_is_normalized),
		cmocka_unit_test(content_types_map_to_canonical_parts),
		cmocka_unit_test(personalizations_carry_recipients_subjects_and_headers),
		cmocka_unit_test(custom_headers_are_kept),
		cmocka_unit_test(netcore_attachment_name_becomes_filename_with_defaults),
		cmocka_unit_test(sendgrid_attachment_keeps_type_disposition_and_content_id),
		cmocka_unit_test(netcore_tags_and_sendgrid_categories_become_tags),
		cmocka_unit_test(subject_may_come_from_every_personalization),
		cmocka_unit_test(sendgrid_custom_args_are_kept_and_settings_off_are_accepted),
		cmocka_unit_test(sendgrid_sandbox_mode_is_flagged),
		cmocka_unit_test(netcore_attributes_become_substitutions),
		cmocka_unit_test(sendgrid_substitutions_are_literal),
		cmocka_unit_test(netcore_top_level_bcc_goes_to_every_personalization),
		cmocka_unit_test(netcore_personalization_attachments_are_its_own),
		cmocka_unit_test(sendgrid_reply_to_list_is_kept),
		cmocka_unit_test(nulls_count_as_absent),
		cmocka_unit_test(null_header_values_are_left_out),
		cmocka_unit_test(netcore_attributes_over_10000_bytes_are_refused),
		cmocka_unit_test(substitutions_over_10000_bytes_are_refused),
		cmocka_unit_test(top_level_bcc_counts_toward_the_limit),
		cmocka_unit_test(exactly_1000_recipients_are_accepted),
		cmocka_unit_test(body_that_is_not_an_object_is_refused),
		REFUSALS(missing_from_is_refused),
		cmocka_unit_test(invalid_from_email_is_refused),
		REFUSALS(line_break_in_from_name_is_refused),
		cmocka_unit_test(overlong_from_name_is_refused),
		REFUSALS(invalid_reply_to_is_refused),
		REFUSALS(missing_or_empty_personalizations_are_refused),
		REFUSALS(personalization_without_to_is_refused),
		REFUSALS(invalid_recipient_is_refused_at_its_path),
		REFUSALS(invalid_cc_and_bcc_are_refused_at_their_paths),
		cmocka_unit_test(more_than_1000_recipients_are_refused_at_the_1001st),
		REFUSALS(line_break_in_subject_is_refused),
		cmocka_unit_test(overlong_or_non_string_subject_is_refused),
		REFUSALS(line_break_in_personalization_subject_is_refused),
		REFUSALS(subject_missing_somewhere_is_refused),
		REFUSALS(line_break_in_header_value_is_refused),
		cmocka_unit_test(reserved_headers_are_refused),
		cmocka_unit_test(headers_receivers_trust_are_refused),
		cmocka_unit_test(control_characters_are_refused_at_their_field),
		cmocka_unit_test(encoded_words_are_text_but_not_in_file_names),
		cmocka_unit_test(content_id_must_be_a_message_id),
		REFUSALS(malformed_header_names_are_refused),
		cmocka_unit_test(non_string_header_value_is_refused),
		REFUSALS(missing_or_empty_content_is_refused),
		REFUSALS(unknown_content_type_is_refused),
		REFUSALS(amp_only_content_is_refused),
		REFUSALS(duplicate_content_type_is_refused),
		REFUSALS(attachment_content_must_be_base64),
		cmocka_unit_test(attachment_type_must_be_a_mime_type),
		REFUSALS(attachment_disposition_must_be_attachment_or_inline),
		REFUSALS(line_break_in_attachment_filename_is_refused),
		REFUSALS(attachment_needs_its_dialects_name_field),
		REFUSALS(sendgrid_refuses_templates_and_batches),
		REFUSALS(netcore_personalization_send_at_is_refused),
		REFUSALS(unknown_fields_are_refused),
		REFUSALS(netcore_features_postern_lacks_are_refused),
		REFUSALS(sendgrid_features_postern_lacks_are_refused),
		REFUSALS(sendgrid_bad_new_fields_are_refused),
		REFUSALS(substituted_header_fields_are_checked),
		REFUSALS(bad_tags_are_refused),
		REFUSALS(refusal_late_in_the_body_leaves_no_payload),
		cmocka_unit_test(text_that_is_not_utf8_is_refused),
		REFUSALS(send_times_of_the_wrong_type_are_refused),
		cmocka_unit_test(null_send_times_are_absent),
		cmocka_unit_test(sendgrid_personalizations_are_ordered_by_their_send_times),
		cmocka_unit_test(netcore_schedule_sets_the_send_time),
		cmocka_unit_test(send_times_beyond_72_hours_are_refused_naming_the_field),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
