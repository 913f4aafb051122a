/* Composition of queued send payloads into RFC 5322 messages. The checks run before any
 * GMime object is built (only an attachment's base64 is found bad later, when decoded); GMime
 * then does all the MIME work (RFC 2047/2231 words, transfer encodings, folding), in CRLF. */
#include "compose.h"

#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "send.h"
#include "subst.h"
#include "util.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_gmime(void)
{
	g_mime_init();
}

void compose_init(void)
{
	pthread_once(&init_once, init_gmime);
}

/* ---- reading the payload ---- */

static const char *str_of(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *personalization(const cJSON *payload, int part)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(payload, "personalizations");
	if (part < 0 || !cJSON_IsArray(list))
		return NULL;
	const cJSON *p = cJSON_GetArrayItem(list, part);
	return cJSON_IsObject(p) ? p : NULL;
}

/* The personalization's subject wins over the top-level one; absent both, empty. */
static const char *subject_of(const cJSON *payload, const cJSON *p)
{
	const char *s = str_of(p, "subject");
	if (!s)
		s = str_of(payload, "subject");
	return s ? s : "";
}

/* ---- submitted messages ---- */

static const cJSON *smtp_of(const cJSON *payload)
{
	const cJSON *smtp = cJSON_GetObjectItemCaseSensitive(payload, "smtp");
	return cJSON_IsObject(smtp) ? smtp : NULL;
}

char *compose_smtp_payload(const char *mail_from, const char *const *rcpts, int nrcpts,
			   const char *sender, const char *data, size_t len)
{
	cJSON *payload = cJSON_CreateObject();
	cJSON *smtp = cJSON_AddObjectToObject(payload, "smtp");
	cJSON_AddStringToObject(smtp, "mail_from", mail_from);
	cJSON_AddItemToObject(smtp, "rcpt", cJSON_CreateStringArray(rcpts, nrcpts));
	if (sender && *sender)
		cJSON_AddStringToObject(smtp, "sender", sender);
	size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = xmalloc(n);
	sodium_bin2base64(b64, n, (const unsigned char *)data, len, sodium_base64_VARIANT_ORIGINAL);
	cJSON_AddStringToObject(smtp, "mime", b64);
	free(b64);
	char *json = cJSON_PrintUnformatted(payload);
	cJSON_Delete(payload);
	if (!json)
		fatal("cannot serialize a message");
	return json;
}

const char *compose_mail_from(const cJSON *payload)
{
	return str_of(smtp_of(payload), "mail_from");
}

const char *compose_sender(const cJSON *payload)
{
	return str_of(smtp_of(payload), "sender");
}

static int smtp_recipients(const cJSON *smtp, int part, const char **out, int max)
{
	const cJSON *r;
	int n = 0;
	if (part != 0)
		return -1;
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(smtp, "rcpt"))
	{
		if (!cJSON_IsString(r))
			continue;
		if (n < max)
			out[n] = r->valuestring;
		n++;
	}
	return n;
}

int compose_parts(const cJSON *payload)
{
	if (smtp_of(payload))
		return 1;
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(payload, "personalizations");
	return cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 0;
}

int compose_recipients(const cJSON *payload, int part, const char **out, int max)
{
	static const char *const kinds[] = {"to", "cc", "bcc"};
	const cJSON *p = personalization(payload, part);
	int n = 0;

	if (smtp_of(payload))
		return smtp_recipients(smtp_of(payload), part, out, max);
	if (!p)
		return -1;
	for (size_t k = 0; k < ARRAY_LEN(kinds); k++) {
		const cJSON *r;
		cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(p, kinds[k]))
		{
			const char *email = str_of(r, "email");
			if (!email)
				continue;
			if (n < max)
				out[n] = email;
			n++;
		}
	}
	return n;
}

/* ---- checks: everything that can be refused is refused here ---- */

/* Text bound for a header: valid UTF-8 without control characters (send.c's rule). */
static bool text_ok(const char *s)
{
	return s && util_utf8(s) && send_text_clean(s);
}

/* An optional string that may go into a header: absent is fine, a control character is not. */
static bool header_safe(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (!v || cJSON_IsNull(v))
		return true;
	return cJSON_IsString(v) && text_ok(v->valuestring);
}

static int refuse(const char **why, const char *sentence)
{
	*why = sentence;
	return -1;
}

static int check_mailbox(const cJSON *m, const char **why)
{
	const char *email = str_of(m, "email");
	if (!email || !*email || !text_ok(email))
		return refuse(why, "An address has no usable email.");
	if (!header_safe(m, "name"))
		return refuse(why, "A display name contains a control character or is not a "
				   "string.");
	return 0;
}

static int check_recipients(const cJSON *p, const char **why)
{
	static const char *const kinds[] = {"to", "cc", "bcc"};
	for (size_t k = 0; k < ARRAY_LEN(kinds); k++) {
		const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, kinds[k]), *r;
		if (list && !cJSON_IsArray(list))
			return refuse(why, "A recipient list is not a list.");
		cJSON_ArrayForEach(r, list)
		{
			if (check_mailbox(r, why) < 0)
				return -1;
		}
	}
	return 0;
}

/* RFC 5322 field name: printable ASCII except colon. */
static bool field_name_ok(const char *n)
{
	if (!n || !*n)
		return false;
	for (; *n; n++)
		if (*n < 33 || *n > 126 || *n == ':')
			return false;
	return true;
}

static int check_headers(const cJSON *headers, const char **why)
{
	const cJSON *h;
	if (headers && !cJSON_IsObject(headers))
		return refuse(why, "Custom headers are not an object.");
	cJSON_ArrayForEach(h, headers)
	{
		if (!field_name_ok(h->string))
			return refuse(why, "A custom header name is not a valid field name.");
		/* send.c refuses the same names; this is the second line of defence. */
		if (send_header_reserved(h->string))
			return refuse(why, "A custom header may not set this field.");
		if (!cJSON_IsString(h) || !text_ok(h->valuestring))
			return refuse(why, "A custom header value contains a control character or "
					   "is not a string.");
	}
	return 0;
}

static int check_content(const cJSON *content, const char **why)
{
	if (!str_of(content, "text") && !str_of(content, "html"))
		return refuse(why, "The message has neither text nor html content.");
	return 0;
}

/* "type/subtype" with both halves non-empty and free of separators. */
static bool mime_type_ok(const char *t)
{
	const char *slash = t ? strchr(t, '/') : NULL;
	if (!slash || slash == t || !slash[1] || strchr(slash + 1, '/'))
		return false;
	for (const char *p = t; *p; p++)
		if (p != slash && (*p <= 32 || *p >= 127 || strchr("()<>@,;:\\\"[]?=", *p)))
			return false;
	return true;
}

static int check_attachment(const cJSON *a, const char **why)
{
	const char *name = str_of(a, "filename"), *disp = str_of(a, "disposition");
	const char *cid = str_of(a, "content_id");
	if (!text_ok(name))
		return refuse(why, "An attachment filename is missing or contains a control "
				   "character.");
	/* See send.c: no encoding of "=?" in a parameter reads back as written everywhere. */
	if (strstr(name, "=?"))
		return refuse(why, "An attachment filename contains \"=?\".");
	if (!mime_type_ok(str_of(a, "type")))
		return refuse(why, "An attachment type is not a MIME type.");
	if (disp && strcmp(disp, "attachment") != 0 && strcmp(disp, "inline") != 0)
		return refuse(why, "An attachment disposition is neither attachment nor inline.");
	if (!header_safe(a, "content_id") || (cid && *cid && !send_content_id_ok(cid)))
		return refuse(why, "An attachment content_id is not a message id.");
	if (!str_of(a, "content"))
		return refuse(why, "An attachment has no content.");
	return 0;
}

static int check_attachments(const cJSON *list, const char **why)
{
	const cJSON *a;
	if (list && !cJSON_IsArray(list))
		return refuse(why, "Attachments are not a list.");
	cJSON_ArrayForEach(a, list)
	{
		if (check_attachment(a, why) < 0)
			return -1;
	}
	return 0;
}

static int check_message(const cJSON *payload, const cJSON *p, const char *message_id,
			 const char **why)
{
	const cJSON *from = cJSON_GetObjectItemCaseSensitive(payload, "from");
	const cJSON *reply_to = cJSON_GetObjectItemCaseSensitive(payload, "reply_to"), *box;
	const cJSON *reply_list = cJSON_GetObjectItemCaseSensitive(payload, "reply_to_list");

	if (!message_id || !*message_id || strpbrk(message_id, "\r\n <>"))
		return refuse(why, "The message id is empty or malformed.");
	if (check_mailbox(from, why) < 0)
		return -1;
	if (reply_to && !cJSON_IsNull(reply_to) && check_mailbox(reply_to, why) < 0)
		return -1;
	if (reply_list && !cJSON_IsArray(reply_list))
		return refuse(why, "The reply-to list is not a list.");
	cJSON_ArrayForEach(box, reply_list)
	{
		if (check_mailbox(box, why) < 0)
			return -1;
	}
	if (!header_safe(p, "subject") || !header_safe(payload, "subject"))
		return refuse(why, "The subject contains a control character or is not a string.");
	if (check_recipients(p, why) < 0 ||
	    check_headers(cJSON_GetObjectItemCaseSensitive(payload, "headers"), why) < 0 ||
	    check_headers(cJSON_GetObjectItemCaseSensitive(p, "headers"), why) < 0 ||
	    check_content(cJSON_GetObjectItemCaseSensitive(payload, "content"), why) < 0 ||
	    check_attachments(cJSON_GetObjectItemCaseSensitive(payload, "attachments"), why) < 0 ||
	    check_attachments(cJSON_GetObjectItemCaseSensitive(p, "attachments"), why) < 0)
		return -1;
	return 0;
}

/* ---- building: GMime objects from a checked payload ---- */

/* Bytes of text per encoded word: 60 base64 characters, 72 with "=?utf-8?b?" and "?=", under
 * RFC 2047's 75, so GMime keeps each word whole when it folds. As long as a word may be:
 * some readers (Python before gh-128110) keep the space between two words of a name. */
#define WORD_BYTES 45

/* GMime writes ASCII words as they are, so "=?utf-8?q?=0D=0AFrom:...?=" in a subject would
 * reach the recipient as an encoded word of the client's making and decode to a line break
 * or a NUL. And in a name GMime's own Q-encoding leaves "=" as it is, so "ü=0D=0A" or a long
 * word with "=0D=0A" decodes to CR LF too. Such text (trigger "=?" in text, "=" in a name)
 * goes entirely as UTF-8 base64 encoded words, by GMime's encoder, whole characters per
 * word, which decode to exactly the text (their content is not decoded again). Returns a
 * string to g_free, or NULL when the text may go to GMime as it is. */
static char *literal_text(const char *text, const char *trigger)
{
	if (!text || !strstr(text, trigger))
		return NULL;
	GString *out = g_string_new(NULL);
	for (const char *p = text; *p;) {
		/* Whole characters, and a multiple of 3 bytes when a character ends there: GMime's
		 * decoder joins the base64 of adjacent words, and padding inside stops it. */
		const char *end = g_utf8_next_char(p), *whole = NULL;
		while (*end && (size_t)(g_utf8_next_char(end) - p) <= WORD_BYTES) {
			if ((end - p) % 3 == 0)
				whole = end;
			end = g_utf8_next_char(end);
		}
		if (*end && (end - p) % 3 != 0 && whole)
			end = whole;
		unsigned char b64[GMIME_BASE64_ENCODE_LEN(WORD_BYTES) + 1];
		int state = 0;
		guint32 save = 0;
		size_t n = g_mime_encoding_base64_encode_close(
			(const unsigned char *)p, (size_t)(end - p), b64, &state, &save);
		/* The encoder ends its output with a newline, which has no place in a word. */
		while (n > 0 && b64[n - 1] == '\n')
			n--;
		g_string_append_printf(out, "%s=?utf-8?b?%.*s?=", out->len ? " " : "", (int)n,
				       (const char *)b64);
		p = end;
	}
	return g_string_free(out, FALSE);
}

/* Names are encoded as UTF-8 words: GMime would otherwise pick the narrowest charset
 * (ISO-8859-1 for "Jürgen"), correct but needlessly varied. */
static void add_mailbox(GMimeMessage *msg, GMimeAddressType type, const cJSON *m)
{
	const char *name = str_of(m, "name");
	char *literal = literal_text(name, "=");
	InternetAddress *ia = internet_address_mailbox_new(
		literal ? literal : (name && *name ? name : NULL), str_of(m, "email"));
	internet_address_set_charset(ia, "utf-8");
	internet_address_list_add(g_mime_message_get_addresses(msg, type), ia);
	g_object_unref(ia);
	g_free(literal);
}

static void append_header(GMimeMessage *msg, const char *name, const char *value)
{
	char *literal = literal_text(value, "=?");
	g_mime_object_append_header(GMIME_OBJECT(msg), name, literal ? literal : value, "utf-8");
	g_free(literal);
}

static void add_recipients(GMimeMessage *msg, GMimeAddressType type, const cJSON *list)
{
	const cJSON *r;
	cJSON_ArrayForEach(r, list)
	{
		add_mailbox(msg, type, r);
	}
}

/* Top-level headers first, skipping any the personalization overrides, then its own. */
static void add_custom_headers(GMimeMessage *msg, const cJSON *top, const cJSON *own)
{
	const cJSON *h;
	cJSON_ArrayForEach(h, top)
	{
		bool overridden = false;
		const cJSON *o;
		cJSON_ArrayForEach(o, own)
		{
			if (strcasecmp(o->string, h->string) == 0)
				overridden = true;
		}
		if (!overridden)
			append_header(msg, h->string, h->valuestring);
	}
	cJSON_ArrayForEach(h, own)
	{
		append_header(msg, h->string, h->valuestring);
	}
}

/* Wraps a stream as content whose transfer encoding is chosen later. */
static void set_content_stream(GMimePart *part, GMimeStream *stream)
{
	GMimeDataWrapper *content =
		g_mime_data_wrapper_new_with_stream(stream, GMIME_CONTENT_ENCODING_DEFAULT);
	g_mime_part_set_content(part, content);
	g_object_unref(content);
}

/* Text goes in canonical form (RFC 2045 6.8): every line end CRLF, and a final one, so a body
 * decodes the same whichever transfer encoding is chosen (GMime's quoted-printable encoder
 * would add the final line break anyway). A bare CR is a line end too: left alone in a 7bit
 * body it would reach the relay, where "\r.\r" ends the DATA of a lax server and what
 * follows is read as SMTP commands. */
static GMimeStream *canonical_text(const char *text)
{
	GByteArray *bytes = g_byte_array_sized_new((guint)(strlen(text) + 2));

	for (const char *p = text; *p; p++) {
		if (*p == '\r' || *p == '\n') {
			g_byte_array_append(bytes, (const guint8 *)"\r\n", 2);
			if (p[0] == '\r' && p[1] == '\n')
				p++;
		} else {
			g_byte_array_append(bytes, (const guint8 *)p, 1);
		}
	}
	if (bytes->len == 0 || bytes->data[bytes->len - 1] != '\n')
		g_byte_array_append(bytes, (const guint8 *)"\r\n", 2);
	/* The stream takes the array over. */
	return g_mime_stream_mem_new_with_byte_array(bytes);
}

static GMimeObject *text_part(const char *subtype, const char *text)
{
	GMimeTextPart *part = g_mime_text_part_new_with_subtype(subtype);
	GMimeStream *stream = canonical_text(text);

	set_content_stream(GMIME_PART(part), stream);
	g_object_unref(stream);
	g_mime_text_part_set_charset(part, "utf-8");
	/* Chosen here rather than by g_mime_object_encode, whose scan does not flush and so
	 * misses the length of a last line without a newline (a one-line html body). */
	g_mime_part_set_content_encoding(GMIME_PART(part),
					 g_mime_part_get_best_content_encoding(
						 GMIME_PART(part), GMIME_ENCODING_CONSTRAINT_7BIT));
	return GMIME_OBJECT(part);
}

/* One part for a single body; multipart/alternative in the order text, amp, html otherwise,
 * so that clients which show the last part they understand show the richest one. */
static GMimeObject *body_part(const cJSON *content)
{
	static const struct {
		const char *slot, *subtype;
	} order[] = {{"text", "plain"}, {"amp", "x-amp-html"}, {"html", "html"}};
	GMimeObject *parts[ARRAY_LEN(order)];
	size_t n = 0;

	for (size_t i = 0; i < ARRAY_LEN(order); i++) {
		const char *value = str_of(content, order[i].slot);
		if (value)
			parts[n++] = text_part(order[i].subtype, value);
	}
	if (n == 1)
		return parts[0];
	GMimeMultipart *alt = g_mime_multipart_new_with_subtype("alternative");
	for (size_t i = 0; i < n; i++) {
		g_mime_multipart_add(alt, parts[i]);
		g_object_unref(parts[i]);
	}
	return GMIME_OBJECT(alt);
}

/* Decodes base64 that may be broken across lines. Returns NULL if it is not base64. */
static unsigned char *decode_base64(const char *b64, size_t *len)
{
	size_t n = strlen(b64);
	unsigned char *bin = xmalloc(n);
	if (sodium_base642bin(bin, n, b64, n, "\r\n \t", len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(bin);
		return NULL;
	}
	return bin;
}

/* A Content-ID given with its angle brackets would otherwise get a second pair. */
static void set_content_id(GMimeObject *part, const char *cid)
{
	size_t n = strlen(cid);
	if (n >= 2 && cid[0] == '<' && cid[n - 1] == '>') {
		char *bare = g_strndup(cid + 1, n - 2);
		g_mime_object_set_content_id(part, bare);
		g_free(bare);
	} else {
		g_mime_object_set_content_id(part, cid);
	}
}

/* The filename goes on Content-Disposition and Content-Type (name=); a non-ASCII one is
 * written as an RFC 2231 UTF-8 parameter rather than in GMime's narrowest charset. */
static void set_filename(GMimePart *part, const char *filename)
{
	GMimeObject *obj = GMIME_OBJECT(part);
	GMimeParam *param;

	g_mime_part_set_filename(part, filename);
	param = g_mime_param_list_get_parameter(g_mime_content_disposition_get_parameters(
							g_mime_object_get_content_disposition(obj)),
						"filename");
	if (param)
		g_mime_param_set_charset(param, "utf-8");
	param = g_mime_param_list_get_parameter(
		g_mime_content_type_get_parameters(g_mime_object_get_content_type(obj)), "name");
	if (param)
		g_mime_param_set_charset(param, "utf-8");
}

static GMimeObject *attachment_part(const cJSON *a, const char **why)
{
	const char *type = str_of(a, "type"), *disp = str_of(a, "disposition");
	const char *cid = str_of(a, "content_id");
	size_t len;
	unsigned char *bytes = decode_base64(str_of(a, "content"), &len);

	if (!bytes) {
		*why = "An attachment's content is not valid base64.";
		return NULL;
	}
	char *media = g_strndup(type, strcspn(type, "/"));
	GMimePart *part = g_mime_part_new_with_type(media, strchr(type, '/') + 1);
	g_free(media);
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer((const char *)bytes, len);
	free(bytes);
	set_content_stream(part, stream);
	g_object_unref(stream);
	g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_BASE64);
	/* The disposition goes first: set_filename would otherwise invent "attachment". */
	g_mime_object_set_disposition(GMIME_OBJECT(part), disp ? disp : "attachment");
	set_filename(part, str_of(a, "filename"));
	if (cid && *cid)
		set_content_id(GMIME_OBJECT(part), cid);
	return GMIME_OBJECT(part);
}

static int add_attachments(GMimeMultipart *mixed, const cJSON *list, const char **why)
{
	const cJSON *a;
	cJSON_ArrayForEach(a, list)
	{
		GMimeObject *att = attachment_part(a, why);
		if (!att)
			return -1;
		g_mime_multipart_add(mixed, att);
		g_object_unref(att);
	}
	return 0;
}

/* The body alone, or multipart/mixed with the body first, then each attachment of the
 * message, then each of the personalization p. */
static GMimeObject *mime_tree(const cJSON *payload, const cJSON *p, const char **why)
{
	const cJSON *all = cJSON_GetObjectItemCaseSensitive(payload, "attachments");
	const cJSON *own = cJSON_GetObjectItemCaseSensitive(p, "attachments");
	GMimeObject *body = body_part(cJSON_GetObjectItemCaseSensitive(payload, "content"));

	if (cJSON_GetArraySize(all) + cJSON_GetArraySize(own) == 0)
		return body;
	GMimeMultipart *mixed = g_mime_multipart_new_with_subtype("mixed");
	g_mime_multipart_add(mixed, body);
	g_object_unref(body);
	if (add_attachments(mixed, all, why) < 0 || add_attachments(mixed, own, why) < 0) {
		g_object_unref(mixed);
		return NULL;
	}
	return GMIME_OBJECT(mixed);
}

static GMimeMessage *build_message(const cJSON *payload, const cJSON *p, const char *message_id,
				   GDateTime *date, const char **why)
{
	GMimeMessage *msg = g_mime_message_new(FALSE);
	const cJSON *reply_to = cJSON_GetObjectItemCaseSensitive(payload, "reply_to");

	add_mailbox(msg, GMIME_ADDRESS_TYPE_FROM,
		    cJSON_GetObjectItemCaseSensitive(payload, "from"));
	add_recipients(msg, GMIME_ADDRESS_TYPE_TO, cJSON_GetObjectItemCaseSensitive(p, "to"));
	add_recipients(msg, GMIME_ADDRESS_TYPE_CC, cJSON_GetObjectItemCaseSensitive(p, "cc"));
	char *subject = literal_text(subject_of(payload, p), "=?");
	g_mime_message_set_subject(msg, subject ? subject : subject_of(payload, p), "utf-8");
	g_free(subject);
	g_mime_message_set_date(msg, date);
	g_mime_message_set_message_id(msg, message_id);
	g_mime_object_set_header(GMIME_OBJECT(msg), "MIME-Version", "1.0", NULL);
	if (cJSON_IsObject(reply_to))
		add_mailbox(msg, GMIME_ADDRESS_TYPE_REPLY_TO, reply_to);
	/* SendGrid's reply_to_list: every address in the one Reply-To. */
	add_recipients(msg, GMIME_ADDRESS_TYPE_REPLY_TO,
		       cJSON_GetObjectItemCaseSensitive(payload, "reply_to_list"));
	add_custom_headers(msg, cJSON_GetObjectItemCaseSensitive(payload, "headers"),
			   cJSON_GetObjectItemCaseSensitive(p, "headers"));

	GMimeObject *tree = mime_tree(payload, p, why);
	if (!tree) {
		g_object_unref(msg);
		return NULL;
	}
	g_mime_message_set_mime_part(msg, tree);
	g_object_unref(tree);
	return msg;
}

/* Writes msg with CRLF newlines into a malloc'd, NUL-terminated buffer. */
static int serialize(GMimeMessage *msg, char **out, size_t *len, const char **why)
{
	GMimeFormatOptions *opts = g_mime_format_options_new();
	GMimeStream *stream = g_mime_stream_mem_new();
	int rc = -1;

	g_mime_format_options_set_newline_format(opts, GMIME_NEWLINE_FORMAT_DOS);
	if (g_mime_object_write_to_stream(GMIME_OBJECT(msg), opts, stream) < 0) {
		*why = "The message could not be written.";
	} else {
		GByteArray *bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(stream));
		*len = bytes->len;
		*out = xmalloc(bytes->len + 1);
		memcpy(*out, bytes->data, bytes->len);
		(*out)[bytes->len] = '\0';
		rc = 0;
	}
	g_object_unref(stream);
	g_mime_format_options_free(opts);
	return rc;
}

static int compose_checked(const cJSON *payload, const cJSON *p, const char *message_id,
			   int64_t date, char **out, size_t *len, const char **why)
{
	if (check_message(payload, p, message_id, why) < 0)
		return -1;
	GDateTime *when = g_date_time_new_from_unix_utc(date);
	if (!when)
		return refuse(why, "The date is out of range.");

	compose_init();
	GMimeMessage *msg = build_message(payload, p, message_id, when, why);
	g_date_time_unref(when);
	if (!msg)
		return -1;
	int rc = serialize(msg, out, len, why);
	g_object_unref(msg);
	return rc;
}

/* A submitted message's stored bytes, NUL-terminated like a composed one. */
static int smtp_message(const cJSON *smtp, int part, char **out, size_t *len, const char **why)
{
	const char *mime = str_of(smtp, "mime");
	if (part != 0)
		return refuse(why, "There is no such personalization.");
	unsigned char *bytes = mime ? decode_base64(mime, len) : NULL;
	if (!bytes)
		return refuse(why, "The submitted message is not valid base64.");
	*out = xmalloc(*len + 1);
	memcpy(*out, bytes, *len);
	(*out)[*len] = '\0';
	free(bytes);
	return 0;
}

int compose_message(const cJSON *payload, int part, const char *message_id, int64_t date,
		    char **out, size_t *len, const char **why)
{
	const cJSON *p = personalization(payload, part);

	*out = NULL;
	*len = 0;
	*why = NULL;
	if (smtp_of(payload))
		return smtp_message(smtp_of(payload), part, out, len, why);
	if (!p)
		return refuse(why, "There is no such personalization.");
	/* A personalization with values is composed from its view, which has them in. */
	cJSON *view = NULL;
	if (subst_needed(payload, part)) {
		view = subst_view(payload, part, false, why);
		if (!view)
			return -1;
		payload = view;
		p = personalization(view, 0);
	}
	int rc = compose_checked(payload, p, message_id, date, out, len, why);
	cJSON_Delete(view);
	return rc;
}
