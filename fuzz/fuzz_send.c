/* send_parse on arbitrary request bodies in both dialects. What it accepts is the canonical
 * payload the queue stores and compose turns into headers, so on success: the From address
 * is normalized, every address is, the recipient count is right, no string that can reach a
 * header holds a control character (CR, LF, DEL, C1...), also once a personalization's
 * values are substituted, no custom header is one receivers trust, every content id is a
 * msg-id, no file name spells an encoded word, and only SendGrid's dialect has a sandbox. */
#include <cjson/cJSON.h>
#include <glib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "fuzz.h"
#include "send.h"
#include "subst.h"

static const char *dialect_name(enum send_dialect d)
{
	return d == SEND_NETCORE ? "netcore" : "sendgrid";
}

/* Header text: UTF-8 without a control character, as a client would show it decoded. */
static void check_text(const char *s, const char *where, const char *key)
{
	FUZZ_CHECK(g_utf8_validate(s, -1, NULL), "%s.%s is not UTF-8", where, key);
	FUZZ_CHECK(!strpbrk(s, "\r\n"), "%s.%s holds a line break", where, key);
	for (const char *p = s; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		FUZZ_CHECK(c == '\t' || (c >= 0x20 && c < 0x7f) || c > 0x9f,
			   "%s.%s holds control character U+%04X", where, key, (unsigned)c);
	}
}

/* A string field bound for a header: absent, or a string of clean text. */
static void check_header_text(const cJSON *obj, const char *key, const char *where)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!v)
		return;
	FUZZ_CHECK(cJSON_IsString(v), "%s.%s is not a string", where, key);
	check_text(v->valuestring, where, key);
}

/* {"email","name"?}: the email normalized, the name safe. */
static void check_mailbox(const cJSON *m, const char *where)
{
	char norm[ADDR_MAX];
	const char *why;
	const cJSON *email = cJSON_GetObjectItemCaseSensitive(m, "email");

	FUZZ_CHECK(cJSON_IsObject(m), "%s is not an object", where);
	FUZZ_CHECK(cJSON_IsString(email), "%s.email is not a string", where);
	FUZZ_CHECK(addr_normalize(email->valuestring, norm, &why) == 0 &&
			   strcmp(norm, email->valuestring) == 0,
		   "%s.email '%s' is not normalized", where, email->valuestring);
	check_header_text(m, "name", where);
}

static int check_recipients(const cJSON *p, const char *kind)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, kind), *r;
	int n = 0;
	if (!list)
		return 0;
	FUZZ_CHECK(cJSON_IsArray(list), "personalization.%s is not a list", kind);
	cJSON_ArrayForEach(r, list)
	{
		check_mailbox(r, kind);
		n++;
	}
	return n;
}

static void check_headers(const cJSON *headers, const char *where)
{
	const cJSON *h;
	if (!headers)
		return;
	FUZZ_CHECK(cJSON_IsObject(headers), "%s is not an object", where);
	cJSON_ArrayForEach(h, headers)
	{
		FUZZ_CHECK(h->string && *h->string, "%s has an empty name", where);
		FUZZ_CHECK(!strpbrk(h->string, "\r\n: \t"), "%s name '%s'", where, h->string);
		FUZZ_CHECK(!send_header_reserved(h->string), "%s sets reserved '%s'", where,
			   h->string);
		FUZZ_CHECK(cJSON_IsString(h), "%s.%s is not a string", where, h->string);
		check_text(h->valuestring, where, h->string);
		static const char *const trusted[] = {
			"Authentication-Results", "Received-SPF",   "DKIM-", "ARC-",
			"DomainKey-Signature",	  "X-Original-From"};
		for (size_t i = 0; i < sizeof(trusted) / sizeof(trusted[0]); i++)
			FUZZ_CHECK(strncasecmp(h->string, trusted[i], strlen(trusted[i])) != 0 ||
					   (trusted[i][strlen(trusted[i]) - 1] != '-' &&
					    h->string[strlen(trusted[i])] != '\0'),
				   "%s sets '%s', which receivers trust", where, h->string);
	}
}

static void check_attachments(const cJSON *list);

static void check_payload(const struct send_request *req)
{
	const cJSON *p = req->payload, *item;
	char norm[ADDR_MAX];
	const char *why;
	int recipients = 0;

	FUZZ_CHECK(addr_normalize(req->from, norm, &why) == 0 && strcmp(norm, req->from) == 0,
		   "from '%s' is not normalized", req->from);
	const cJSON *from = cJSON_GetObjectItemCaseSensitive(p, "from");
	check_mailbox(from, "from");
	FUZZ_CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(from, "email")->valuestring,
			  req->from) == 0,
		   "payload from.email differs from out.from");
	const cJSON *reply_to = cJSON_GetObjectItemCaseSensitive(p, "reply_to");
	if (reply_to)
		check_mailbox(reply_to, "reply_to");
	check_header_text(p, "subject", "payload");
	check_headers(cJSON_GetObjectItemCaseSensitive(p, "headers"), "headers");

	const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "personalizations");
	FUZZ_CHECK(cJSON_IsArray(list) && cJSON_GetArraySize(list) > 0, "no personalizations");
	cJSON_ArrayForEach(item, list)
	{
		int to = check_recipients(item, "to");
		FUZZ_CHECK(to > 0, "a personalization without to");
		recipients += to + check_recipients(item, "cc") + check_recipients(item, "bcc");
		check_header_text(item, "subject", "personalization");
		check_headers(cJSON_GetObjectItemCaseSensitive(item, "headers"),
			      "personalization.headers");
		check_attachments(cJSON_GetObjectItemCaseSensitive(item, "attachments"));
	}
	cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(p, "reply_to_list"))
	{
		check_mailbox(item, "reply_to_list");
	}
	FUZZ_CHECK(recipients == req->recipients, "counted %d recipients, send_parse said %d",
		   recipients, req->recipients);
	FUZZ_CHECK(recipients <= SEND_MAX_RECIPIENTS, "%d recipients", recipients);

	check_attachments(cJSON_GetObjectItemCaseSensitive(p, "attachments"));
}

/* What compose builds each personalization from: its values substituted. */
static void check_views(const struct send_request *req)
{
	const cJSON *item, *box;
	int parts = cJSON_GetArraySize(
		cJSON_GetObjectItemCaseSensitive(req->payload, "personalizations"));
	for (int i = 0; i < parts; i++) {
		const char *why = NULL;
		FUZZ_CHECK(!subst_needed(req->payload, i) ||
				   cJSON_GetObjectItemCaseSensitive(req->payload, "tag_syntax"),
			   "substitutions without a tag_syntax");
		cJSON *view = subst_view(req->payload, i, false, &why);
		FUZZ_CHECK(view, "personalization %d has no view: %s", i, why);
		check_header_text(view, "subject", "view");
		item = cJSON_GetObjectItemCaseSensitive(view, "reply_to");
		if (item)
			check_mailbox(item, "view.reply_to");
		cJSON_ArrayForEach(box, cJSON_GetObjectItemCaseSensitive(view, "reply_to_list"))
		{
			check_mailbox(box, "view.reply_to_list");
		}
		cJSON_Delete(view);
	}
}

static void check_attachments(const cJSON *list)
{
	const cJSON *item;
	cJSON_ArrayForEach(item, list)
	{
		FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(item, "filename")),
			   "attachment without a filename");
		check_header_text(item, "filename", "attachment");
		check_header_text(item, "type", "attachment");
		check_header_text(item, "disposition", "attachment");
		check_header_text(item, "content_id", "attachment");
		const char *cid =
			cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "content_id"));
		if (cid) {
			/* Independently of send_content_id_ok: nothing that could end the <> of
			 * Content-Id or the line, or start a comment or a list. */
			size_t n = strlen(cid), skip = n >= 2 && cid[0] == '<' && cid[n - 1] == '>';
			char *inner = g_strndup(cid + skip, n - 2 * skip);
			FUZZ_CHECK(*inner && !strpbrk(inner, " \t<>\"\\(),;:[]"),
				   "content_id '%s' is not a msg-id", cid);
			g_free(inner);
		}
		FUZZ_CHECK(!strstr(cJSON_GetStringValue(
					   cJSON_GetObjectItemCaseSensitive(item, "filename")),
				   "=?"),
			   "a file name spells an encoded word");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum send_dialect dialects[] = {SEND_NETCORE, SEND_SENDGRID};
	cJSON *body = cJSON_ParseWithLength((const char *)data, size);

	for (size_t i = 0; i < sizeof(dialects) / sizeof(dialects[0]); i++) {
		struct send_request out;
		struct send_problem why;
		if (send_parse(dialects[i], body, &out, &why) == 0) {
			check_payload(&out);
			check_views(&out);
			FUZZ_CHECK(!out.sandbox || dialects[i] == SEND_SENDGRID,
				   "a netcore sandbox");
			send_request_free(&out);
		} else {
			FUZZ_CHECK(out.payload == NULL, "%s: refused but payload kept",
				   dialect_name(dialects[i]));
			FUZZ_CHECK(why.message[0] != '\0', "%s: refused without a message",
				   dialect_name(dialects[i]));
		}
	}
	cJSON_Delete(body);
	return 0;
}
