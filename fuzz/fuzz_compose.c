/* compose_message on arbitrary canonical payloads (the form send.c queues, see send.h).
 * Whatever it agrees to write must be wire-clean and must say only what the payload says:
 * CRLF line ends (no bare CR or LF, in headers or bodies), no Bcc line, a From of exactly
 * payload.from.email as GMime reads it back, exactly the header fields compose writes, so
 * that no field value, however hostile, can add a header of its own, and names, subject and
 * X-* header values that decode to the payload's text (encoded words in it included) without
 * a control character. */
#include <cjson/cJSON.h>
#include <gmime/gmime.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "compose.h"
#include "fuzz.h"
#include "send.h"
#include "subst.h"

/* 2026-01-01T00:00:00Z */
#define DATE  INT64_C(1767225600)
#define MSGID "3f2a9c0d7e@postern.test"

/* The fields compose writes itself, with how many of each a message may have. */
struct field {
	const char *name;
	int min, max;
};

#define MAX_FIELDS 4096

struct fields {
	int n;
	const char *name[MAX_FIELDS]; /* into the composed text, not NUL-terminated */
	size_t len[MAX_FIELDS];
};

static const char *str_of(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* What send.c stores: addr_normalize accepts it and leaves it as it is. */
static bool normalized(const char *email)
{
	char norm[ADDR_MAX];
	const char *why;
	return email && addr_normalize(email, norm, &why) == 0 && strcmp(norm, email) == 0;
}

/* Every line ends in CRLF: no '\n' without its '\r', no '\r' without its '\n'. */
static void check_line_ends(const char *raw, size_t len)
{
	FUZZ_CHECK(strlen(raw) == len, "length %zu, but a NUL at %zu", len, strlen(raw));
	for (size_t i = 0; i < len; i++) {
		FUZZ_CHECK(raw[i] != '\n' || (i > 0 && raw[i - 1] == '\r'), "bare LF at offset %zu",
			   i);
		FUZZ_CHECK(raw[i] != '\r' || raw[i + 1] == '\n', "bare CR at offset %zu", i);
	}
}

/* The names of the fields in the top header block, as a receiving MTA splits them: a line
 * that does not start with white space starts a field, and must have a name and a colon. */
static void split_header(const char *raw, struct fields *out)
{
	const char *end = strstr(raw, "\r\n\r\n");
	FUZZ_CHECK(end, "no empty line after the header");
	out->n = 0;
	for (const char *line = raw; line < end + 2;) {
		const char *eol = strstr(line, "\r\n");
		if (*line != ' ' && *line != '\t') {
			size_t n = strcspn(line, ":\r\n");
			FUZZ_CHECK(line[n] == ':' && n > 0,
				   "header line without a field name: %.*s", (int)(eol - line),
				   line);
			FUZZ_CHECK(out->n < MAX_FIELDS, "too many header fields");
			FUZZ_CHECK(strncasecmp(line, "Bcc:", 4) != 0, "a Bcc line: %.*s",
				   (int)(eol - line), line);
			out->name[out->n] = line;
			out->len[out->n++] = n;
		} else {
			FUZZ_CHECK(line > raw, "the message starts with a continuation line");
		}
		line = eol + 2;
	}
}

static int count_named(const struct fields *f, const char *name)
{
	int n = 0;
	for (int i = 0; i < f->n; i++)
		if (f->len[i] == strlen(name) && strncasecmp(f->name[i], name, f->len[i]) == 0)
			n++;
	return n;
}

static bool overridden(const cJSON *own, const char *name)
{
	const cJSON *o;
	cJSON_ArrayForEach(o, own)
	{
		if (strcasecmp(o->string, name) == 0)
			return true;
	}
	return false;
}

/* Custom headers: the top-level ones the personalization does not override, then its own. */
static int expected_custom(const cJSON *top, const cJSON *own, const char *name)
{
	const cJSON *h;
	int n = 0;
	cJSON_ArrayForEach(h, top)
	{
		if (strcasecmp(h->string, name) == 0 && !overridden(own, h->string))
			n++;
	}
	cJSON_ArrayForEach(h, own)
	{
		if (strcasecmp(h->string, name) == 0)
			n++;
	}
	return n;
}

static bool is_standard(const struct field *std, size_t nstd, const char *name, size_t len)
{
	for (size_t i = 0; i < nstd; i++)
		if (strlen(std[i].name) == len && strncasecmp(std[i].name, name, len) == 0)
			return true;
	return false;
}

/* The header block holds each of compose's own fields as often as it should, each custom
 * header as often as the payload gives it, and nothing else. */
static void check_fields(const cJSON *payload, const cJSON *p, const struct fields *f)
{
	bool to = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p, "to")) > 0;
	bool cc = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p, "cc")) > 0;
	const cJSON *reply_to = cJSON_GetObjectItemCaseSensitive(payload, "reply_to");
	const cJSON *reply_list = cJSON_GetObjectItemCaseSensitive(payload, "reply_to_list");
	bool reply = cJSON_IsObject(reply_to) || cJSON_GetArraySize(reply_list) > 0;
	const struct field std[] = {
		{"From", 1, 1},		{"To", to, 1},
		{"Cc", cc, cc},		{"Subject", 1, 1},
		{"Date", 1, 1},		{"Message-Id", 1, 1},
		{"MIME-Version", 1, 1}, {"Reply-To", reply, reply},
		{"Content-Type", 1, 1}, {"Content-Transfer-Encoding", 0, 1},
	};
	const size_t nstd = sizeof(std) / sizeof(std[0]);
	const cJSON *top = cJSON_GetObjectItemCaseSensitive(payload, "headers");
	const cJSON *own = cJSON_GetObjectItemCaseSensitive(p, "headers");

	for (size_t i = 0; i < nstd; i++) {
		int n = count_named(f, std[i].name);
		FUZZ_CHECK(n >= std[i].min && n <= std[i].max, "%d %s fields, expected %d to %d", n,
			   std[i].name, std[i].min, std[i].max);
	}
	for (int i = 0; i < f->n; i++) {
		if (is_standard(std, nstd, f->name[i], f->len[i]))
			continue;
		char *name = g_strndup(f->name[i], f->len[i]);
		int want = expected_custom(top, own, name), got = count_named(f, name);
		FUZZ_CHECK(want > 0, "a header field the payload does not give: %s", name);
		FUZZ_CHECK(got == want, "%d %s fields, the payload gives %d", got, name, want);
		g_free(name);
	}
}

/* The header fields GMime parsed into obj, each of a name compose wrote. */
static int count_parsed(GMimeObject *obj, const struct fields *f)
{
	FUZZ_CHECK(obj, "GMime parsed no MIME part");
	GMimeHeaderList *headers = g_mime_object_get_header_list(obj);
	int count = g_mime_header_list_get_count(headers);
	for (int i = 0; i < count; i++) {
		const char *name =
			g_mime_header_get_name(g_mime_header_list_get_header_at(headers, i));
		FUZZ_CHECK(count_named(f, name) > 0,
			   "GMime reads a header compose did not write: %s", name);
	}
	return count;
}

/* Runs of white space as one space, none at either end: folding and unfolding may change
 * white space, and the text is compared with that difference set aside. */
static char *squeezed(const char *s)
{
	char *out = g_malloc(strlen(s) + 1), *o = out;
	for (s += strspn(s, " \t"); *s;) {
		size_t ws = strspn(s, " \t");
		if (ws) {
			s += ws;
			if (*s)
				*o++ = ' ';
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
	return out;
}

/* True when the message has a padded base64 word followed by another: GMime's decoder joins
 * the base64 of adjacent words and stops at the padding (its own encoder's output fails the
 * same way), so there its reading is not the text's. compose avoids this where a character
 * boundary allows. */
static bool padded_word_joined(const char *raw)
{
	for (const char *p = raw; (p = strstr(p, "=?=")); p += 3) {
		const char *q = p + 3 + strspn(p + 3, " \t\r\n");
		if (q > p + 3 && strncmp(q, "=?", 2) == 0)
			return true;
	}
	return false;
}

static const char *composed_raw;

/* A decoded header text is the payload's text, with no control character in it. GMime's
 * decoder may leave a fold (CRLF before white space) in a name; a reader unfolds it. */
static void check_decoded(const char *what, const char *decoded, const char *given)
{
	GString *unfolded = g_string_new(NULL);
	for (const char *s = decoded ? decoded : ""; *s; s++)
		if (!(s[0] == '\r' && s[1] == '\n' && (s[2] == ' ' || s[2] == '\t')) &&
		    !(s[0] == '\n' && s > decoded && s[-1] == '\r' &&
		      (s[1] == ' ' || s[1] == '\t')))
			g_string_append_c(unfolded, *s);
	given = given ? given : "";
	FUZZ_CHECK(g_utf8_validate(unfolded->str, -1, NULL) && send_text_clean(unfolded->str),
		   "%s decodes with a control character: '%s'", what, unfolded->str);
	char *a = squeezed(unfolded->str), *b = squeezed(given);
	g_string_free(unfolded, TRUE);
	FUZZ_CHECK(strcmp(a, b) == 0 || padded_word_joined(composed_raw),
		   "%s decodes to '%s', not '%s'", what, a, b);
	g_free(a);
	g_free(b);
}

/* The names of a list as GMime decodes them, when every email in it is one send.c stores
 * (another may split or merge mailboxes, which says nothing about the names). */
static void check_names(const char *what, InternetAddressList *got, const cJSON *list)
{
	const cJSON *m;
	int i = 0;
	cJSON_ArrayForEach(m, list)
	{
		if (!normalized(str_of(m, "email")))
			return;
	}
	FUZZ_CHECK(got && internet_address_list_length(got) == cJSON_GetArraySize(list),
		   "%s has %d mailboxes, the payload %d", what,
		   got ? internet_address_list_length(got) : -1, cJSON_GetArraySize(list));
	cJSON_ArrayForEach(m, list)
	{
		InternetAddress *ia = internet_address_list_get_address(got, i++);
		check_decoded(what, internet_address_get_name(ia), str_of(m, "name"));
	}
}

/* The one mailbox of From or Reply-To, when its email is one send.c stores. */
static void check_name(const char *what, InternetAddressList *got, const cJSON *m)
{
	if (!normalized(str_of(m, "email")))
		return;
	FUZZ_CHECK(got && internet_address_list_length(got) == 1, "%s has %d mailboxes", what,
		   got ? internet_address_list_length(got) : -1);
	check_decoded(what, internet_address_get_name(internet_address_list_get_address(got, 0)),
		      str_of(m, "name"));
}

/* Every header text compose encodes, read back through GMime's decoder. */
static void check_texts(GMimeMessage *msg, const cJSON *payload, const cJSON *p,
			const struct fields *f)
{
	const char *subject = str_of(p, "subject");
	check_decoded("Subject", g_mime_message_get_subject(msg),
		      subject ? subject : str_of(payload, "subject"));
	check_name("From", g_mime_message_get_from(msg),
		   cJSON_GetObjectItemCaseSensitive(payload, "from"));
	const cJSON *reply_to = cJSON_GetObjectItemCaseSensitive(payload, "reply_to");
	const cJSON *reply_list = cJSON_GetObjectItemCaseSensitive(payload, "reply_to_list");
	if (cJSON_IsObject(reply_to) && !reply_list)
		check_name("Reply-To", g_mime_message_get_reply_to(msg), reply_to);
	else if (cJSON_IsArray(reply_list) && !reply_to)
		check_names("Reply-To", g_mime_message_get_reply_to(msg), reply_list);
	check_names("To", g_mime_message_get_to(msg), cJSON_GetObjectItemCaseSensitive(p, "to"));
	check_names("Cc", g_mime_message_get_cc(msg), cJSON_GetObjectItemCaseSensitive(p, "cc"));

	/* X-* fields are unstructured text to GMime; others (References...) it may reformat. */
	const cJSON *own = cJSON_GetObjectItemCaseSensitive(p, "headers"), *h;
	const cJSON *lists[] = {cJSON_GetObjectItemCaseSensitive(payload, "headers"), own};
	for (size_t l = 0; l < 2; l++) {
		cJSON_ArrayForEach(h, lists[l])
		{
			if (strncasecmp(h->string, "X-", 2) != 0 ||
			    count_named(f, h->string) != 1 ||
			    (l == 0 && overridden(own, h->string)))
				continue;
			check_decoded(h->string,
				      g_mime_object_get_header(GMIME_OBJECT(msg), h->string),
				      h->valuestring);
		}
	}
}

/* What GMime's parser makes of the text: one From mailbox of exactly from.email (when the
 * payload is canonical), no Bcc, and only header names compose writes. */
static void check_parsed(const char *raw, size_t len, const cJSON *payload, const cJSON *p,
			 const struct fields *f)
{
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(raw, len);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
	const char *email = str_of(cJSON_GetObjectItemCaseSensitive(payload, "from"), "email");

	FUZZ_CHECK(msg, "GMime cannot parse the composed message");
	/* The queue only ever holds normalized addresses (send.c); compose does not check them
	 * again, so a payload with any other From says nothing about compose. */
	if (normalized(email)) {
		InternetAddressList *from = g_mime_message_get_from(msg);
		FUZZ_CHECK(from && internet_address_list_length(from) == 1, "From has %d addresses",
			   from ? internet_address_list_length(from) : -1);
		InternetAddress *ia = internet_address_list_get_address(from, 0);
		FUZZ_CHECK(INTERNET_ADDRESS_IS_MAILBOX(ia), "From is a group");
		/* GMime hands back an IDN domain as its U-label; the A-label is what was sent. */
		InternetAddressMailbox *mb = INTERNET_ADDRESS_MAILBOX(ia);
		const char *addr = internet_address_mailbox_get_addr(mb);
		const char *idn = internet_address_mailbox_get_idn_addr(mb);
		FUZZ_CHECK((addr && strcmp(addr, email) == 0) || (idn && strcmp(idn, email) == 0),
			   "From reads back as '%s' ('%s'), not '%s'", addr ? addr : "(null)",
			   idn ? idn : "(null)", email);
	}
	InternetAddressList *bcc = g_mime_message_get_bcc(msg);
	FUZZ_CHECK(!bcc || internet_address_list_length(bcc) == 0, "the parsed message has Bcc");

	/* GMime files the Content-* fields of the top block under the message's MIME part. */
	int count = count_parsed(GMIME_OBJECT(msg), f) +
		    count_parsed(g_mime_message_get_mime_part(msg), f);
	FUZZ_CHECK(count == f->n, "GMime reads %d header fields, compose wrote %d", count, f->n);
	composed_raw = raw;
	check_texts(msg, payload, p, f);
	g_object_unref(msg);
	g_object_unref(parser);
	g_object_unref(stream);
}

static void compose_part(const cJSON *payload, int part)
{
	char *raw = (char *)"unset";
	size_t len = 12345;
	const char *why = NULL;
	int rc = compose_message(payload, part, MSGID, DATE, &raw, &len, &why);

	if (rc != 0) {
		FUZZ_CHECK(rc == -1, "compose_message returned %d", rc);
		FUZZ_CHECK(raw == NULL && len == 0, "refused but wrote output");
		FUZZ_CHECK(why && *why, "refused without a reason");
		return;
	}
	FUZZ_CHECK(raw, "no output");
	check_line_ends(raw, len);
	struct fields *f = malloc(sizeof(*f));
	split_header(raw, f);
	/* With values to substitute, the message reads as the view compose made it from. */
	cJSON *view = subst_needed(payload, part) ? subst_view(payload, part, false, &why) : NULL;
	if (view) {
		payload = view;
		part = 0;
	}
	const cJSON *p = cJSON_GetArrayItem(
		cJSON_GetObjectItemCaseSensitive(payload, "personalizations"), part);
	check_fields(payload, p, f);
	check_parsed(raw, len, payload, p, f);
	cJSON_Delete(view);
	free(f);
	free(raw);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	compose_init();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *payload = cJSON_ParseWithLength((const char *)data, size);
	int parts = compose_parts(payload);

	compose_part(payload, 0);
	for (int i = 1; i < parts; i++)
		compose_part(payload, i);
	/* Out of range either side: refused, never read. */
	char *raw;
	size_t len;
	const char *why;
	FUZZ_CHECK(compose_message(payload, parts, MSGID, DATE, &raw, &len, &why) == -1,
		   "composed part %d of %d", parts, parts);
	FUZZ_CHECK(compose_message(payload, -1, MSGID, DATE, &raw, &len, &why) == -1,
		   "composed part -1");
	cJSON_Delete(payload);
	return 0;
}
