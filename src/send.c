/* Validation of send requests in both dialects into the canonical payload:
 *   {"from":{email,name}, "reply_to":{email,name}?, "reply_to_list":[{email,name}]?,
 *    "subject", "content":{text,html,amp},
 *    "personalizations":[{to,cc,bcc,subject?,headers,send_at?,substitutions?,
 *    attachments?}],
 *    "headers", "attachments":[{filename,type,content,disposition,content_id?}], "tags",
 *    "custom_args"?, "tag_syntax"?}
 * A top-level bcc is in every personalization's bcc; "substitutions" are a personalization's
 * values (Netcore's attributes, SendGrid's substitutions), put into its message at delivery
 * in the payload's "tag_syntax" (subst.h). The fields beyond the message itself, and those
 * refused, are in send_fields.c. Each check names the field at fault, so a client learns
 * exactly what to fix. */
#include "send_int.h"

#include <glib.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* Headers Postern writes itself, that would let a client forge identity or trace, or that
 * receivers trust as the verdict of an earlier hop (authentication results, SPF, the
 * original sender of a forwarded message). */
static const char *const reserved_headers[] = {
	"From",
	"Sender",
	"Return-Path",
	"To",
	"Cc",
	"Bcc",
	"Subject",
	"Reply-To",
	"Date",
	"Message-ID",
	"MIME-Version",
	"Received",
	"Received-SPF",
	"X-Original-From",
	"Authentication-Results",
	"DomainKey-Signature",
};

/* Whole families: the MIME structure is Postern's, Resent-* re-states identity, and DKIM-*
 * and ARC-* are signatures and seals that only a signing hop may write. */
static const char *const reserved_prefixes[] = {"Content-", "Resent-", "DKIM-", "ARC-"};

bool send_header_reserved(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(reserved_headers); i++)
		if (strcasecmp(name, reserved_headers[i]) == 0)
			return true;
	for (size_t i = 0; i < ARRAY_LEN(reserved_prefixes); i++)
		if (strncasecmp(name, reserved_prefixes[i], strlen(reserved_prefixes[i])) == 0)
			return true;
	return false;
}

int send_fail(struct send_problem *why, const char *message, const char *field_fmt, ...)
{
	va_list ap;
	va_start(ap, field_fmt);
	vsnprintf(why->field, sizeof(why->field), field_fmt, ap);
	va_end(ap);
	util_copy(why->message, sizeof(why->message), message);
	return -1;
}

static bool has_crlf(const char *s)
{
	return strpbrk(s, "\r\n") != NULL;
}

/* A mail client shows a decoded header, so a control character anywhere in it (a NUL ending
 * a name early, a CR starting a new line) is refused whatever encoding would carry it. */
bool send_text_clean(const char *s)
{
	for (const char *p = s; *p; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if ((c < 0x20 && c != '\t') || (c >= 0x7f && c <= 0x9f))
			return false;
	}
	return true;
}

/* RFC 5322 atext: the characters of an atom besides letters and digits. */
static bool atext(char c)
{
	return g_ascii_isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* dot-atom-text: atoms joined by single dots, from s up to end. */
static bool dot_atom_text(const char *s, const char *end)
{
	bool after_dot = true;
	for (; s < end; s++) {
		if (*s == '.' && !after_dot)
			after_dot = true;
		else if (atext(*s))
			after_dot = false;
		else
			return false;
	}
	return !after_dot;
}

bool send_content_id_ok(const char *cid)
{
	size_t n = strlen(cid);
	if (n >= 2 && cid[0] == '<' && cid[n - 1] == '>') {
		cid++;
		n -= 2;
	}
	const char *end = cid + n, *at = memchr(cid, '@', n);
	if (!at)
		return dot_atom_text(cid, end);
	return dot_atom_text(cid, at) && dot_atom_text(at + 1, end);
}

#define NOT_UTF8 "This text is not valid UTF-8; send it UTF-8 encoded."
#define CONTROL                                                                                    \
	"Control characters (line breaks such as CR or LF, NUL, DEL and the like) are not "        \
	"allowed here; only TAB is."

int send_header_text(const cJSON *parent, const char *name, bool optional, size_t max,
		     const char **out, struct send_problem *why, const char *path)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(parent, name);
	*out = NULL;
	if (!v || cJSON_IsNull(v)) {
		if (optional)
			return 0;
		return send_fail(why, "This field is required.", "%s%s", path, name);
	}
	if (!cJSON_IsString(v))
		return send_fail(why, "This field must be a string.", "%s%s", path, name);
	if (!util_utf8(v->valuestring))
		return send_fail(why, NOT_UTF8, "%s%s", path, name);
	if (!send_text_clean(v->valuestring))
		return send_fail(why, CONTROL, "%s%s", path, name);
	if (strlen(v->valuestring) > max)
		return send_fail(why, "This value is too long.", "%s%s", path, name);
	*out = v->valuestring;
	return 0;
}

int send_parse_address(const cJSON *v, bool string_ok, cJSON *out, char norm[ADDR_MAX],
		       struct send_problem *why, const char *path)
{
	const char *email, *name = NULL, *reason;
	char sub[200];

	if (string_ok && cJSON_IsString(v)) {
		email = v->valuestring;
		snprintf(sub, sizeof(sub), "%s", path);
	} else if (cJSON_IsObject(v)) {
		snprintf(sub, sizeof(sub), "%s.", path);
		if (send_header_text(v, "email", false, ADDR_MAX, &email, why, sub) < 0 ||
		    send_header_text(v, "name", true, SEND_NAME_MAX, &name, why, sub) < 0)
			return -1;
		snprintf(sub, sizeof(sub), "%s.email", path);
	} else {
		return send_fail(why, "Give an object with \"email\" (and optionally \"name\").",
				 "%s", path);
	}
	if (addr_normalize(email, norm, &reason) < 0)
		return send_fail(why, reason, "%s", sub);
	cJSON_AddStringToObject(out, "email", norm);
	if (name && *name)
		cJSON_AddStringToObject(out, "name", name);
	return 0;
}

int send_parse_recipients(const cJSON *p, const char *kind, bool required, cJSON *out, int *count,
			  struct send_problem *why, const char *path)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, kind);
	cJSON *arr = cJSON_AddArrayToObject(out, kind);
	char norm[ADDR_MAX], sub[200];
	int i = 0;

	if (!list || cJSON_IsNull(list)) {
		if (required)
			return send_fail(why, "At least one recipient is required.", "%s%s", path,
					 kind);
		return 0;
	}
	if (!cJSON_IsArray(list) || (required && cJSON_GetArraySize(list) == 0))
		return send_fail(why, "Give a non-empty list of recipients.", "%s%s", path, kind);
	const cJSON *r;
	cJSON_ArrayForEach(r, list)
	{
		snprintf(sub, sizeof(sub), "%s%s[%d]", path, kind, i++);
		if (++*count > SEND_MAX_RECIPIENTS)
			return send_fail(why, "A request may have at most 1000 recipients in all.",
					 "%s", sub);
		cJSON *a = cJSON_CreateObject();
		cJSON_AddItemToArray(arr, a);
		if (send_parse_address(r, false, a, norm, why, sub) < 0)
			return -1;
	}
	return 0;
}

static bool header_name_ok(const char *n)
{
	if (!*n || strlen(n) > 76)
		return false;
	for (; *n; n++)
		if (*n < 33 || *n > 126 || *n == ':')
			return false;
	return true;
}

static int parse_headers(const cJSON *h, cJSON *out, struct send_problem *why, const char *path)
{
	cJSON *obj = cJSON_AddObjectToObject(out, "headers");
	if (!h || cJSON_IsNull(h))
		return 0;
	if (!cJSON_IsObject(h))
		return send_fail(why, "Give headers as an object of name: value strings.", "%s",
				 path);
	const cJSON *v;
	cJSON_ArrayForEach(v, h)
	{
		if (cJSON_IsNull(v))
			continue;
		if (!header_name_ok(v->string))
			return send_fail(
				why, "A header name is printable ASCII without spaces or colons.",
				"%s.%s", path, v->string);
		if (send_header_reserved(v->string))
			return send_fail(why,
					 "This header is set by Postern from the request's own "
					 "fields; remove it from headers.",
					 "%s.%s", path, v->string);
		if (!cJSON_IsString(v))
			return send_fail(why, "A header value must be a string.", "%s.%s", path,
					 v->string);
		if (!util_utf8(v->valuestring))
			return send_fail(why, NOT_UTF8, "%s.%s", path, v->string);
		if (!send_text_clean(v->valuestring))
			return send_fail(why, CONTROL, "%s.%s", path, v->string);
		cJSON_AddStringToObject(obj, v->string, v->valuestring);
	}
	return 0;
}

static int parse_personalizations(enum send_dialect d, const cJSON *body, cJSON *out, int *count,
				  bool *all_have_subject, struct send_problem *why)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(body, "personalizations");
	cJSON *arr = cJSON_AddArrayToObject(out, "personalizations");
	char path[64];
	int i = 0;

	if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0)
		return send_fail(why, "Give at least one personalization with a \"to\" list.", "%s",
				 "personalizations");
	*all_have_subject = true;
	const cJSON *p;
	cJSON_ArrayForEach(p, list)
	{
		snprintf(path, sizeof(path), "personalizations[%d]", i++);
		if (!cJSON_IsObject(p))
			return send_fail(why, "Each personalization is an object.", "%s", path);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToArray(arr, o);
		const char *subject;
		char sub[80];
		snprintf(sub, sizeof(sub), "%s.", path);
		if (send_parse_recipients(p, "to", true, o, count, why, sub) < 0 ||
		    send_parse_recipients(p, "cc", false, o, count, why, sub) < 0 ||
		    send_parse_recipients(p, "bcc", false, o, count, why, sub) < 0 ||
		    send_header_text(p, "subject", true, SEND_SUBJECT_MAX, &subject, why, sub) <
			    0 ||
		    send_personalization_fields(d, p, o, why, sub) < 0)
			return -1;
		if (subject)
			cJSON_AddStringToObject(o, "subject", subject);
		else
			*all_have_subject = false;
		snprintf(sub, sizeof(sub), "%s.headers", path);
		if (parse_headers(cJSON_GetObjectItemCaseSensitive(p, "headers"), o, why, sub) < 0)
			return -1;
	}
	return 0;
}

/* Maps a content type of either dialect to the canonical slot, or NULL. */
static const char *content_slot(const char *type)
{
	static const struct {
		const char *type, *slot;
	} map[] = {
		{"text/plain", "text"}, {"text/html", "html"},	    {"html", "html"},
		{"amp", "amp"},		{"text/x-amp-html", "amp"},
	};
	for (size_t i = 0; i < ARRAY_LEN(map); i++)
		if (strcasecmp(type, map[i].type) == 0)
			return map[i].slot;
	return NULL;
}

static int parse_content(const cJSON *body, cJSON *out, struct send_problem *why)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(body, "content");
	cJSON *obj = cJSON_AddObjectToObject(out, "content");
	int i = 0;

	if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0)
		return send_fail(why, "Give content as a list of {\"type\",\"value\"} objects.",
				 "%s", "content");
	const cJSON *c;
	cJSON_ArrayForEach(c, list)
	{
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(c, "type");
		const cJSON *value = cJSON_GetObjectItemCaseSensitive(c, "value");
		const char *slot = cJSON_IsString(type) ? content_slot(type->valuestring) : NULL;
		if (!slot)
			return send_fail(why,
					 "The type must be text/plain, text/html, html or amp.",
					 "content[%d].type", i);
		if (!cJSON_IsString(value))
			return send_fail(why, "The value must be a string.", "content[%d].value",
					 i);
		if (!util_utf8(value->valuestring))
			return send_fail(why, NOT_UTF8, "content[%d].value", i);
		if (cJSON_GetObjectItemCaseSensitive(obj, slot))
			return send_fail(why, "Each type of content may appear once.",
					 "content[%d].type", i);
		cJSON_AddStringToObject(obj, slot, value->valuestring);
		i++;
	}
	if (!cJSON_GetObjectItemCaseSensitive(obj, "text") &&
	    !cJSON_GetObjectItemCaseSensitive(obj, "html"))
		return send_fail(why,
				 "Give a text/plain or text/html part (amp alone cannot be shown).",
				 "%s", "content");
	return 0;
}

static bool base64_ok(const char *s)
{
	size_t n = strlen(s), bin_len;
	if (n == 0)
		return false;
	unsigned char *bin = xmalloc(n);
	int rc = sodium_base642bin(bin, n, s, n, "\r\n \t", &bin_len, NULL,
				   sodium_base64_VARIANT_ORIGINAL);
	free(bin);
	return rc == 0;
}

/* type "/" subtype, each a token (RFC 2045). */
static bool mime_type_ok(const char *t)
{
	const char *slash = strchr(t, '/');
	if (!slash || slash == t || !slash[1] || strlen(t) > 127)
		return false;
	for (const char *p = t; *p; p++) {
		if (p == slash)
			continue;
		if (*p <= 32 || *p >= 127 || strchr("()<>@,;:\\\"/[]?=", *p))
			return false;
	}
	return true;
}

int send_parse_attachments(enum send_dialect d, const cJSON *parent, cJSON *out,
			   struct send_problem *why, const char *prefix)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(parent, "attachments");
	cJSON *arr = cJSON_AddArrayToObject(out, "attachments");
	const char *name_key = d == SEND_NETCORE ? "name" : "filename";
	char path[128];
	int i = 0;

	if (!list || cJSON_IsNull(list))
		return 0;
	if (!cJSON_IsArray(list))
		return send_fail(why, "Give attachments as a list.", "%sattachments", prefix);
	const cJSON *a;
	cJSON_ArrayForEach(a, list)
	{
		const char *name, *type, *content, *disposition, *cid;
		snprintf(path, sizeof(path), "%sattachments[%d].", prefix, i++);
		if (!cJSON_IsObject(a))
			return send_fail(why, "Each attachment is an object.", "%sattachments[%d]",
					 prefix, i - 1);
		if (send_header_text(a, name_key, false, 255, &name, why, path) < 0 ||
		    send_header_text(a, "type", true, 127, &type, why, path) < 0 ||
		    send_header_text(a, "disposition", true, 16, &disposition, why, path) < 0 ||
		    send_header_text(a, "content_id", true, 255, &cid, why, path) < 0)
			return -1;
		/* GMime quotes an ASCII file name as it is, and readers (GMime's among them)
		 * decode encoded words inside it, even twice; RFC 2231, which they would not
		 * decode further, is GMime's choice only for long or non-ASCII names. */
		if (strstr(name, "=?"))
			return send_fail(
				why,
				"A file name may not contain \"=?\": mail programs would decode "
				"it as an encoded word.",
				"%s%s", path, name_key);
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(a, "content");
		content = cJSON_IsString(c) ? c->valuestring : NULL;
		if (!content || !base64_ok(content))
			return send_fail(
				why, "The content must be base64 (RFC 4648, standard alphabet).",
				"%scontent", path);
		if (type && !mime_type_ok(type))
			return send_fail(why, "The type must be a MIME type like application/pdf.",
					 "%stype", path);
		if (disposition && strcmp(disposition, "attachment") != 0 &&
		    strcmp(disposition, "inline") != 0)
			return send_fail(why, "The disposition must be attachment or inline.",
					 "%sdisposition", path);
		if (cid && *cid && !send_content_id_ok(cid))
			return send_fail(
				why,
				"The content_id must be a message id like logo@example.com "
				"(letters, digits and !#$%&'*+-/=?^_`{|}~, dot-separated, one "
				"optional @), optionally in <>.",
				"%scontent_id", path);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToArray(arr, o);
		cJSON_AddStringToObject(o, "filename", name);
		cJSON_AddStringToObject(o, "type", type ? type : "application/octet-stream");
		cJSON_AddStringToObject(o, "content", content);
		cJSON_AddStringToObject(o, "disposition", disposition ? disposition : "attachment");
		if (cid && *cid)
			cJSON_AddStringToObject(o, "content_id", cid);
	}
	return 0;
}

static int parse_tags(enum send_dialect d, const cJSON *body, cJSON *out, struct send_problem *why)
{
	const char *key = d == SEND_NETCORE ? "tags" : "categories";
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(body, key);
	cJSON *arr = cJSON_AddArrayToObject(out, "tags");
	int i = 0;

	if (!list || cJSON_IsNull(list))
		return 0;
	if (!cJSON_IsArray(list))
		return send_fail(why, "Give a list of strings.", "%s", key);
	const cJSON *t;
	cJSON_ArrayForEach(t, list)
	{
		if (!cJSON_IsString(t) || strlen(t->valuestring) > 255 || has_crlf(t->valuestring))
			return send_fail(why, "Each entry is a string of at most 255 characters.",
					 "%s[%d]", key, i);
		cJSON_AddItemToArray(arr, cJSON_CreateString(t->valuestring));
		i++;
	}
	return 0;
}

/* A send time: Unix seconds as a whole JSON number. Returns 1 with *at set, 0 when absent
 * (or null), -1 with why filled. */
static int parse_send_time(const cJSON *v, int64_t *at, struct send_problem *why, const char *field)
{
	*at = 0;
	if (!v || cJSON_IsNull(v))
		return 0;
	/* Up to 2^53: every such number is exact, and far beyond any time allowed. */
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0 ||
	    (double)(int64_t)v->valuedouble != v->valuedouble)
		return send_fail(why,
				 "Give the send time as Unix seconds, a whole number such as "
				 "1767225600, or leave it out to send now.",
				 "%s", field);
	*at = (int64_t)v->valuedouble;
	return 1;
}

static void note_send_time(struct send_request *out, int64_t at, const char *field)
{
	if (at > out->latest_send_at) {
		out->latest_send_at = at;
		util_copy(out->latest_field, sizeof(out->latest_field), field);
	}
}

/* Scheduled sending: Netcore's "schedule" for the whole request; SendGrid's "send_at", which
 * a personalization's own "send_at" overrides. Each personalization's time goes into its
 * canonical form; send_schedule applies them once the time of acceptance is known. */
static int parse_schedule(enum send_dialect d, const cJSON *body, struct send_request *out,
			  struct send_problem *why)
{
	const char *top_field = d == SEND_NETCORE ? "schedule" : "send_at";
	int64_t top, own;
	int top_set = parse_send_time(cJSON_GetObjectItemCaseSensitive(body, top_field), &top, why,
				      top_field);
	if (top_set < 0)
		return -1;
	note_send_time(out, top, top_field);
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(body, "personalizations"), *p;
	cJSON *o = cJSON_GetObjectItemCaseSensitive(out->payload, "personalizations")->child;
	char field[48];
	int i = 0;
	cJSON_ArrayForEach(p, list)
	{
		snprintf(field, sizeof(field), "personalizations[%d].send_at", i++);
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, "send_at");
		if (d == SEND_NETCORE && v && !cJSON_IsNull(v))
			return send_fail(
				why,
				"Netcore schedules a whole request: give \"schedule\" at the "
				"top level instead.",
				"%s", field);
		int own_set = parse_send_time(v, &own, why, field);
		if (own_set < 0)
			return -1;
		note_send_time(out, own, field);
		if (own_set || top_set)
			cJSON_AddNumberToObject(o, "send_at", (double)(own_set ? own : top));
		o = o->next;
	}
	return 0;
}

struct due_part {
	int64_t at;
	int index;
	cJSON *part;
};

static int due_cmp(const void *a, const void *b)
{
	const struct due_part *x = a, *y = b;
	if (x->at != y->at)
		return x->at < y->at ? -1 : 1;
	return x->index - y->index;
}

int send_schedule(struct send_request *r, int64_t now, struct send_problem *why)
{
	memset(why, 0, sizeof(*why));
	if (r->latest_send_at > now + SEND_SCHEDULE_MAX) {
		send_fail(why,
			  "A send time may be at most 72 hours ahead. Send the message later, or "
			  "give a nearer time.",
			  "%s", r->latest_field);
		send_request_free(r);
		return -1;
	}
	cJSON *list = cJSON_GetObjectItemCaseSensitive(r->payload, "personalizations");
	int n = cJSON_GetArraySize(list);
	struct due_part *parts = xcalloc((size_t)n, sizeof(*parts));
	for (int i = 0; i < n; i++) {
		cJSON *p = cJSON_DetachItemFromArray(list, 0);
		const cJSON *at = cJSON_GetObjectItemCaseSensitive(p, "send_at");
		parts[i] = (struct due_part){at ? (int64_t)at->valuedouble : 0, i, p};
		if (parts[i].at <= now + SEND_SLACK) {
			parts[i].at = 0;
			cJSON_DeleteItemFromObjectCaseSensitive(p, "send_at");
		}
	}
	qsort(parts, (size_t)n, sizeof(*parts), due_cmp);
	bool moved = false;
	for (int i = 0; i < n; i++)
		moved |= parts[i].index != i;
	/* Reordered ones keep their place in the request as "index": Message-IDs, refusals and
	 * GET /api/messages/{id} number personalizations as the client wrote them. */
	for (int i = 0; i < n; i++) {
		if (moved)
			cJSON_AddNumberToObject(parts[i].part, "index", parts[i].index);
		cJSON_AddItemToArray(list, parts[i].part);
	}
	r->send_at = n ? parts[0].at : 0;
	free(parts);
	return 0;
}

static int parse_body(enum send_dialect d, const cJSON *body, struct send_request *out,
		      struct send_problem *why)
{
	cJSON *p = out->payload;
	char norm[ADDR_MAX];
	bool all_have_subject = false;
	const char *subject;

	const cJSON *from = cJSON_GetObjectItemCaseSensitive(body, "from");
	if (!from)
		return send_fail(why, "A From address is required.", "%s", "from");
	if (send_parse_address(from, false, cJSON_AddObjectToObject(p, "from"), out->from, why,
			       "from") < 0)
		return -1;
	const cJSON *reply_to = cJSON_GetObjectItemCaseSensitive(body, "reply_to");
	if (reply_to && !cJSON_IsNull(reply_to) &&
	    send_parse_address(reply_to, true, cJSON_AddObjectToObject(p, "reply_to"), norm, why,
			       "reply_to") < 0)
		return -1;
	if (parse_personalizations(d, body, p, &out->recipients, &all_have_subject, why) < 0)
		return -1;
	if (send_header_text(body, "subject", all_have_subject, SEND_SUBJECT_MAX, &subject, why,
			     "") < 0)
		return -1;
	cJSON_AddStringToObject(p, "subject", subject ? subject : "");
	if (parse_content(body, p, why) < 0 ||
	    parse_headers(cJSON_GetObjectItemCaseSensitive(body, "headers"), p, why, "headers") <
		    0 ||
	    send_parse_attachments(d, body, p, why, "") < 0 || parse_tags(d, body, p, why) < 0 ||
	    send_fields(d, body, out, why) < 0 || parse_schedule(d, body, out, why) < 0)
		return -1;
	return 0;
}

int send_parse(enum send_dialect d, const cJSON *body, struct send_request *out,
	       struct send_problem *why)
{
	memset(out, 0, sizeof(*out));
	memset(why, 0, sizeof(*why));
	if (!cJSON_IsObject(body))
		return send_fail(why, "The request body must be a JSON object.", "%s", "");
	out->payload = cJSON_CreateObject();
	if (parse_body(d, body, out, why) < 0) {
		send_request_free(out);
		return -1;
	}
	return 0;
}

void send_request_free(struct send_request *r)
{
	cJSON_Delete(r->payload);
	r->payload = NULL;
}
