/* Submission fix-ups on a message's own bytes: GMime finds the header fields and where each
 * begins; the result is the original with Bcc fields cut out and missing fields prepended,
 * never a re-serialization (which would rewrite folding, encodings and 8-bit text). */
#include "submission.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "compose.h"
#include "util.h"

/* A byte range of the message, to be left out. */
struct cut {
	size_t begin, end;
};

static int refuse(char *why, size_t whylen, const char *sentence)
{
	snprintf(why, whylen, "%s", sentence);
	return -1;
}

/* The end of the field starting at offset: after its last line, continuation lines
 * (starting with a space or a tab) included. */
static size_t field_end(const char *data, size_t len, size_t offset)
{
	for (size_t i = offset; i + 1 < len; i++)
		if (data[i] == '\r' && data[i + 1] == '\n' &&
		    (i + 2 >= len || (data[i + 2] != ' ' && data[i + 2] != '\t')))
			return i + 2;
	return len;
}

/* Set by the parser when text of an address field is left over or malformed. */
static void address_warning(gint64 offset, GMimeParserWarning what, const gchar *item,
			    gpointer leftover)
{
	(void)offset;
	(void)item;
	if (what == GMIME_WARN_INVALID_ADDRESS_LIST)
		*(bool *)leftover = true;
}

/* The one mailbox of an address field, normalized into out. -1 when the field holds no
 * address, several, a group, or anything beyond its mailbox and comments; -2 with *bad set
 * when its address is not usable. */
static int one_mailbox(GMimeHeader *h, char out[ADDR_MAX], const char **bad)
{
	/* The raw value: decoding the display names first could turn "=?utf-8?q?a=2C_b?="
	 * into a comma, and one address into two. Any text GMime skips is refused: it reads
	 * "a@x.test; b@y.test" as a@x.test, and the header would say more than was checked.
	 * (Not GMime's strict mode: in 3.2 it leaks on the inputs it refuses, and a stray
	 * bracket around the one address names no other.) */
	bool leftover = false;
	GMimeParserOptions *o = g_mime_parser_options_new();
	g_mime_parser_options_set_warning_callback(o, address_warning, &leftover);
	InternetAddressList *list = internet_address_list_parse(o, g_mime_header_get_raw_value(h));
	g_mime_parser_options_free(o);
	int rc = -1;
	if (list && !leftover && internet_address_list_length(list) == 1) {
		InternetAddress *ia = internet_address_list_get_address(list, 0);
		if (INTERNET_ADDRESS_IS_MAILBOX(ia))
			rc = addr_normalize(internet_address_mailbox_get_addr(
						    INTERNET_ADDRESS_MAILBOX(ia)),
					    out, bad) == 0
				     ? 0
				     : -2;
	}
	if (list)
		g_object_unref(list);
	return rc;
}

/* What the header fields say: the identities, which fields are missing, what to cut. */
struct fields {
	int nfrom, nsender;
	bool has_date, has_msgid;
	struct cut *cuts;
	int ncuts;
};

/* The msg-id of a Message-ID field's value ("<id@host>" without comments around it), or the
 * value as it is when it has none in brackets. */
static char *msg_id_of(const char *value)
{
	const char *open = value ? strchr(value, '<') : NULL;
	const char *close = open ? strchr(open, '>') : NULL;
	if (!close)
		return xstrdup(value ? value : "");
	size_t n = (size_t)(close - open) + 1;
	char *id = xmalloc(n + 1);
	memcpy(id, open, n);
	id[n] = '\0';
	return id;
}

static bool named(GMimeHeader *h, const char *name)
{
	return strcasecmp(g_mime_header_get_name(h), name) == 0;
}

/* An identity field (From, Sender): the first one is read into out, a second refused. */
static int read_identity(GMimeHeader *h, const char *name, int *count, char out[ADDR_MAX],
			 char *why, size_t whylen)
{
	const char *bad = NULL;
	if ((*count)++) {
		snprintf(why, whylen, "the message must have %s %s header",
			 strcmp(name, "From") == 0 ? "exactly one" : "at most one", name);
		return -1;
	}
	int rc = one_mailbox(h, out, &bad);
	if (rc == -1)
		snprintf(why, whylen, "the %s header must hold exactly one address", name);
	else if (rc == -2)
		snprintf(why, whylen, "the %s header's address cannot be used: %s", name, bad);
	return rc < 0 ? -1 : 0;
}

static int read_field(GMimeHeaderList *list, int i, const char *data, size_t len, struct fields *f,
		      struct submission *out, char *why, size_t whylen)
{
	GMimeHeader *h = g_mime_header_list_get_header_at(list, i);
	if (named(h, "From") && read_identity(h, "From", &f->nfrom, out->from, why, whylen) < 0)
		return -1;
	if (named(h, "Sender") &&
	    read_identity(h, "Sender", &f->nsender, out->sender, why, whylen) < 0)
		return -1;
	f->has_date |= named(h, "Date");
	if (named(h, "Message-ID") && !f->has_msgid) { /* the first one is what readers show */
		f->has_msgid = true;
		out->message_id = msg_id_of(g_mime_header_get_value(h));
	}
	if (named(h, "Bcc")) {
		/* Where its own lines end, never where the next field of the list begins: GMime
		 * keeps Content-* fields in the MIME part, out of the message's list. */
		size_t begin = (size_t)g_mime_header_get_offset(h);
		f->cuts[f->ncuts++] = (struct cut){begin, field_end(data, len, begin)};
	}
	return 0;
}

static int read_fields(GMimeHeaderList *list, const char *data, size_t len, struct fields *f,
		       struct submission *out, char *why, size_t whylen)
{
	int n = g_mime_header_list_get_count(list);
	f->cuts = xmalloc(sizeof(*f->cuts) * (size_t)(n ? n : 1));
	for (int i = 0; i < n; i++)
		if (read_field(list, i, data, len, f, out, why, whylen) < 0)
			return -1;
	if (!f->nfrom)
		return refuse(why, whylen, "the message has no From header");
	return 0;
}

/* The fields a submission server adds, as lines to prepend; the Message-ID added is the
 * message's. */
static GString *added_fields(const struct fields *f, const char *id, struct submission *out,
			     int64_t date)
{
	GString *s = g_string_new(NULL);
	if (!f->has_date) {
		GDateTime *when = g_date_time_new_from_unix_utc(date);
		char *text = g_mime_utils_header_format_date(when);
		g_string_append_printf(s, "Date: %s\r\n", text);
		g_free(text);
		g_date_time_unref(when);
	}
	if (!f->has_msgid) {
		size_t n = strlen(id) + ADDR_DOMAIN_MAX + 4;
		out->message_id = xmalloc(n);
		snprintf(out->message_id, n, "<%s@%s>", id, addr_domain(out->from));
		g_string_append_printf(s, "Message-ID: %s\r\n", out->message_id);
	}
	return s;
}

/* The added fields, then data without the cut ranges. */
static void assemble(const char *data, size_t len, const struct fields *f, GString *added,
		     struct submission *out)
{
	out->data = xmalloc(added->len + len + 1);
	memcpy(out->data, added->str, added->len);
	out->len = added->len;
	size_t at = 0;
	for (int i = 0; i < f->ncuts; i++) {
		memcpy(out->data + out->len, data + at, f->cuts[i].begin - at);
		out->len += f->cuts[i].begin - at;
		at = f->cuts[i].end;
	}
	memcpy(out->data + out->len, data + at, len - at);
	out->len += len - at;
	out->data[out->len] = '\0';
}

/* The length of the header section: up to the empty line, or everything. */
static size_t header_section(const char *data, size_t len)
{
	if (len >= 2 && data[0] == '\r' && data[1] == '\n')
		return 0;
	const char *blank = memmem(data, len, "\r\n\r\n", 4);
	return blank ? (size_t)(blank - data) + 2 : len;
}

/* A byte the header section may not hold: a control character other than TAB and ESC, or
 * CR and LF other than as a CRLF line end. Parsers disagree on them (GMime stops a value at
 * a NUL), so the value checked could differ from the one a recipient reads. ESC passes:
 * legacy Japanese mailers write ISO-2022-JP headers unencoded. */
static bool header_control(const char *data, size_t len, size_t i)
{
	unsigned char c = (unsigned char)data[i];
	if (c == '\r')
		return i + 1 >= len || data[i + 1] != '\n';
	if (c == '\n')
		return i == 0 || data[i - 1] != '\r';
	return (c < 0x20 && c != '\t' && c != 0x1b) || c == 0x7f;
}

/* Refuses bytes no header reader must be left to interpret: a NUL anywhere, any other
 * control character in the header section. */
static int check_bytes(const char *data, size_t len, char *why, size_t whylen)
{
	if (memchr(data, '\0', len))
		return refuse(why, whylen, "the message holds a NUL byte");
	size_t end = header_section(data, len);
	for (size_t i = 0; i < end; i++)
		if (header_control(data, end, i)) {
			snprintf(why, whylen,
				 "the message's header holds a control character (byte 0x%02x)",
				 (unsigned char)data[i]);
			return -1;
		}
	return 0;
}

static GMimeMessage *parse(const char *data, size_t len)
{
	compose_init();
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(data, len);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(stream);
	return msg;
}

int submission_make(const char *data, size_t len, const char *id, int64_t date,
		    struct submission *out, char *why, size_t whylen)
{
	*out = (struct submission){0};
	if (check_bytes(data, len, why, whylen) < 0)
		return -1;
	GMimeMessage *msg = parse(data, len);
	if (!msg)
		return refuse(why, whylen, "the message cannot be parsed: no header fields found");
	struct fields f = {0};
	int rc = read_fields(g_mime_object_get_header_list(GMIME_OBJECT(msg)), data, len, &f, out,
			     why, whylen);
	if (rc == 0) {
		GString *added = added_fields(&f, id, out, date);
		assemble(data, len, &f, added, out);
		g_string_free(added, TRUE);
	} else {
		submission_free(out);
	}
	free(f.cuts);
	g_object_unref(msg);
	return rc;
}

void submission_free(struct submission *s)
{
	free(s->data);
	free(s->message_id);
	s->data = NULL;
	s->message_id = NULL;
}
