/* What came back to a return path, read: GMime finds the parts (and undoes their transfer
 * encodings), a small header-block reader takes the delivery-status and feedback-report
 * fields apart, and a line scan classifies what has no report structure. Everything read
 * is bounded and every string handed out is clean UTF-8 without control characters. */
#include "report.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "compose.h"
#include "util.h"
#include "verp.h"

#define DEPTH_MAX    8		  /* MIME nesting the walk descends */
#define PART_MAX     (256 * 1024) /* decoded bytes read from one report part */
#define TEXT_MAX     (64 * 1024)  /* bytes of text scanned for a status code */
#define FIELD_MAX    2048	  /* bytes kept of one field's unfolded value */
#define FIELD_NAME   40
#define BLOCK_FIELDS 32
#define BLOCKS_MAX   (REPORT_RCPTS_MAX + 4)
#define LOOK_BACK    5 /* lines before a status line searched for its recipient */

/* ---- clean text ---- */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* src[0, len) into dst (n bytes): runs of white space and line breaks become one space,
 * other control characters go, bytes that are not UTF-8 become '?', and the result is
 * trimmed and cut on a character boundary. */
static void clean(char *dst, size_t n, const char *src, size_t len)
{
	size_t o = 0, i = 0;
	bool space = false;
	while (i < len) {
		unsigned char c = (unsigned char)src[i];
		if (is_space((char)c) || c == 0) {
			space = o > 0;
			i++;
			continue;
		}
		size_t step = 1;
		const char *bytes = src + i;
		if (c >= 0x80) {
			gunichar u = g_utf8_get_char_validated(bytes, (gssize)(len - i));
			if (u == (gunichar)-1 || u == (gunichar)-2) {
				bytes = "?";
			} else if (u < 0xa0) { /* a C1 control character */
				i += (size_t)g_utf8_skip[c];
				continue;
			} else {
				step = (size_t)g_utf8_skip[c];
			}
		} else if (c < 0x20 || c == 0x7f) {
			i++;
			continue;
		}
		size_t w = bytes == src + i ? step : 1;
		if (o + (space ? 1 : 0) + w >= n)
			break;
		if (space)
			dst[o++] = ' ';
		memcpy(dst + o, bytes, w);
		o += w;
		space = false;
		i += step;
	}
	if (n > 0)
		dst[o] = '\0';
}

static void clean_str(char *dst, size_t n, const char *src)
{
	clean(dst, n, src, strlen(src));
}

static const char *skip_space(const char *s)
{
	while (is_space(*s))
		s++;
	return s;
}

/* The value after its type ("rfc822; a@b", "smtp; 550 ...", "dns; mx.example"): the
 * type is one token before a semicolon. */
static const char *strip_type(const char *v)
{
	v = skip_space(v);
	const char *semi = strchr(v, ';');
	if (!semi || semi - v > 32)
		return v;
	for (const char *p = v; p < semi; p++)
		if (is_space(*p) && skip_space(p) != semi)
			return v;
	return skip_space(semi + 1);
}

/* ---- header blocks: the fields of a delivery-status or feedback-report part ---- */

struct field {
	char name[FIELD_NAME];
	char value[FIELD_MAX];
	size_t len;
};

struct block {
	size_t n;
	struct field f[BLOCK_FIELDS];
};

static size_t line_end(const char *s, size_t len, size_t pos)
{
	const char *nl = memchr(s + pos, '\n', len - pos);
	return nl ? (size_t)(nl - s) : len;
}

static bool blank(const char *l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_space(l[i]))
			return false;
	return true;
}

static void field_append(struct field *f, const char *s, size_t n)
{
	size_t room = sizeof(f->value) - 1 - f->len;
	if (n > room)
		n = room;
	memcpy(f->value + f->len, s, n);
	f->len += n;
	f->value[f->len] = '\0';
}

/* A "Name: value" line starts a field; NULL when the line is not one or the block is full. */
static struct field *field_start(struct block *b, const char *l, size_t n)
{
	const char *colon = memchr(l, ':', n);
	if (!colon || b->n >= BLOCK_FIELDS)
		return NULL;
	size_t nlen = (size_t)(colon - l);
	while (nlen > 0 && is_space(l[nlen - 1]))
		nlen--;
	if (nlen == 0 || nlen >= FIELD_NAME)
		return NULL;
	for (size_t i = 0; i < nlen; i++)
		if ((unsigned char)l[i] <= 0x20 || (unsigned char)l[i] >= 0x7f)
			return NULL;
	struct field *f = &b->f[b->n++];
	memcpy(f->name, l, nlen);
	f->name[nlen] = '\0';
	f->len = 0;
	f->value[0] = '\0';
	field_append(f, colon + 1, (size_t)(l + n - (colon + 1)));
	return f;
}

/* Reads the block of fields that starts at pos (blank lines before it skipped) into b;
 * returns where the next block starts. Folded lines are joined; lines that are not
 * fields are passed over. */
static size_t block_read(const char *s, size_t len, size_t pos, struct block *b)
{
	struct field *cur = NULL;
	b->n = 0;
	while (pos < len) {
		size_t e = line_end(s, len, pos);
		const char *l = s + pos;
		size_t n = e - pos;
		pos = e < len ? e + 1 : len;
		if (blank(l, n)) {
			if (b->n > 0)
				break;
			continue;
		}
		if (l[0] == ' ' || l[0] == '\t') {
			if (cur)
				field_append(cur, l, n);
			continue;
		}
		cur = field_start(b, l, n);
	}
	return pos;
}

static const char *field(const struct block *b, const char *name)
{
	for (size_t i = 0; i < b->n; i++)
		if (strcasecmp(b->f[i].name, name) == 0)
			return b->f[i].value;
	return NULL;
}

/* ---- values ---- */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static size_t digits(const char *s, size_t max)
{
	size_t n = 0;
	while (n <= max && is_digit(s[n]))
		n++;
	return n >= 1 && n <= max ? n : 0;
}

/* The length of an enhanced status code at s ("5.1.1", "4.4.10"), 0 when there is none.
 * Strict, for free text: a failure (4 or 5) and the subject a single digit 0 to 7 (RFC
 * 3463 defines no other), so that version numbers ("Exim 4.94.2") do not pass for one and
 * a "2.0.0 Ok" earlier on a line does not hide the failure after it. */
static size_t status_at(const char *s, bool strict)
{
	if ((s[0] != '2' || strict) && s[0] != '4' && s[0] != '5')
		return 0;
	if (s[1] != '.')
		return 0;
	size_t sub = digits(s + 2, strict ? 1 : 3);
	if (sub == 0 || (strict && s[2] > '7') || s[2 + sub] != '.')
		return 0;
	size_t det = digits(s + 3 + sub, 3);
	if (det == 0)
		return 0;
	size_t n = 3 + sub + det;
	char after = s[n];
	if (g_ascii_isalnum(after) || (after == '.' && is_digit(s[n + 1])))
		return 0;
	return n;
}

/* The first status code in s[0, len) (NUL-terminated at or after len), as a token of its
 * own; NULL when none. */
static const char *status_find(const char *s, size_t len, bool strict, size_t *n)
{
	for (size_t i = 0; i < len; i++) {
		if (i > 0 && (g_ascii_isalnum(s[i - 1]) || s[i - 1] == '.'))
			continue;
		*n = status_at(s + i, strict);
		if (*n > 0 && i + *n <= len)
			return s + i;
	}
	return NULL;
}

static void status_copy(char out[REPORT_STATUS_MAX], const char *v, bool strict)
{
	size_t n = 0;
	const char *s = v ? status_find(v, strlen(v), strict, &n) : NULL;
	out[0] = '\0';
	if (s && n < REPORT_STATUS_MAX) {
		memcpy(out, s, n);
		out[n] = '\0';
	}
}

static void put_utf8(char *out, size_t *o, size_t n, gunichar u)
{
	char buf[6];
	size_t w = (size_t)g_unichar_to_utf8(u, buf);
	if (*o + w < n) {
		memcpy(out + *o, buf, w);
		*o += w;
	}
}

/* RFC 6533's "\x{HHHH}" escapes of a utf-8 address, decoded; anything else as it is. */
static void unescape(char *out, size_t n, const char *s)
{
	size_t o = 0;
	while (*s && o + 1 < n) {
		unsigned long u = 0;
		size_t h = 0;
		if (s[0] == '\\' && s[1] == 'x' && s[2] == '{') {
			while (h < 6 && g_ascii_isxdigit(s[3 + h]))
				u = u * 16 + (unsigned long)g_ascii_xdigit_value(s[3 + h++]);
		}
		if (h > 0 && s[3 + h] == '}' && u > 0x20 && u <= 0x10ffff &&
		    g_unichar_validate((gunichar)u)) {
			put_utf8(out, &o, n, (gunichar)u);
			s += 4 + h;
		} else {
			out[o++] = *s++;
		}
	}
	out[o] = '\0';
}

/* A recipient field's address ("rfc822; <A@B>"), normalized into out; false when it does
 * not normalize. */
static bool address_of(const char *v, char out[ADDR_MAX])
{
	char raw[ADDR_MAX * 2], addr[ADDR_MAX * 2];
	const char *why;
	clean_str(raw, sizeof(raw), strip_type(v));
	char *a = raw;
	size_t n = strlen(a);
	if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
		a[n - 1] = '\0';
		a++;
	}
	unescape(addr, sizeof(addr), a);
	return addr_normalize(addr, out, &why) == 0;
}

/* A Message-ID's value without its angle brackets. */
static void msgid_copy(char out[REPORT_MSGID_MAX], const char *v)
{
	char buf[REPORT_MSGID_MAX * 2];
	clean_str(buf, sizeof(buf), v);
	const char *s = buf, *lt = strchr(buf, '<');
	size_t n;
	if (lt && strchr(lt, '>')) {
		s = lt + 1;
		n = (size_t)(strchr(lt, '>') - s);
	} else {
		n = strcspn(s, " ");
	}
	if (n >= REPORT_MSGID_MAX || memchr(s, ' ', n))
		n = 0;
	memcpy(out, s, n);
	out[n] = '\0';
}

static bool action_of(const char *v, enum report_action *a)
{
	static const struct {
		const char *name;
		enum report_action action;
	} names[] = {
		{"failed", REPORT_FAILED},	 {"delayed", REPORT_DELAYED},
		{"delivered", REPORT_DELIVERED}, {"relayed", REPORT_DELIVERED},
		{"expanded", REPORT_DELIVERED},
	};
	if (!v)
		return false;
	v = skip_space(v);
	size_t n = 0;
	while (g_ascii_isalpha(v[n]))
		n++;
	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		if (strlen(names[i].name) == n && g_ascii_strncasecmp(v, names[i].name, n) == 0) {
			*a = names[i].action;
			return true;
		}
	return false;
}

static void rcpt_add(struct report *r, const struct report_rcpt *one)
{
	if (r->n >= REPORT_RCPTS_MAX)
		return;
	r->rcpts = xrealloc(r->rcpts, (r->n + 1) * sizeof(*r->rcpts));
	r->rcpts[r->n++] = *one;
}

/* ---- the parts of a report ---- */

struct parts {
	char *status; /* message/(global-)delivery-status, decoded */
	size_t status_len;
	char *feedback; /* message/feedback-report */
	size_t feedback_len;
	GString *text;		      /* the text parts, up to TEXT_MAX bytes */
	char msgid[REPORT_MSGID_MAX]; /* the original's, from the first part that has one */
	bool original;		      /* an original (message or headers) was found */
	bool feedback_report;	      /* report-type=feedback-report */
	bool report;		      /* a multipart/report was found */
	/* Auto-Submitted says the message is automatic (RFC 3834: auto-replied, ...), as an
	 * out-of-office reply's is: outside a multipart/report, only a status after an SMTP
	 * reply code counts then. */
	bool auto_submitted;
};

/* A leaf part's content, transfer encoding undone, NUL-terminated; at most max bytes. */
static char *part_bytes(GMimePart *part, size_t max, size_t *len)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	*len = 0;
	if (!w)
		return NULL;
	GMimeStream *mem = g_mime_stream_mem_new();
	g_mime_data_wrapper_write_to_stream(w, mem);
	GByteArray *a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	size_t n = a->len < max ? a->len : max;
	char *out = xmalloc(n + 1);
	if (n > 0)
		memcpy(out, a->data, n);
	out[n] = '\0';
	g_object_unref(mem);
	*len = n;
	return out;
}

static void original_message(GMimeMessagePart *mp, struct parts *p)
{
	GMimeMessage *m = g_mime_message_part_get_message(mp);
	if (!m || p->original)
		return;
	p->original = true;
	const char *id = g_mime_object_get_header(GMIME_OBJECT(m), "Message-ID");
	if (id)
		msgid_copy(p->msgid, id);
}

static void original_headers(GMimePart *part, struct parts *p)
{
	size_t len;
	char *h = part_bytes(part, PART_MAX, &len);
	if (!h || p->original) {
		free(h);
		return;
	}
	p->original = true;
	struct block *b = xmalloc(sizeof(*b));
	block_read(h, len, 0, b);
	const char *id = field(b, "Message-ID");
	if (id)
		msgid_copy(p->msgid, id);
	free(b);
	free(h);
}

static void text_add(GMimePart *part, struct parts *p)
{
	if (p->text->len >= TEXT_MAX)
		return;
	size_t len;
	char *t = part_bytes(part, TEXT_MAX - p->text->len, &len);
	if (t) {
		g_string_append_len(p->text, t, (gssize)len);
		g_string_append_c(p->text, '\n');
	}
	free(t);
}

static void leaf(GMimePart *part, GMimeContentType *ct, struct parts *p)
{
	if (g_mime_content_type_is_type(ct, "message", "delivery-status") ||
	    g_mime_content_type_is_type(ct, "message", "global-delivery-status")) {
		if (!p->status)
			p->status = part_bytes(part, PART_MAX, &p->status_len);
	} else if (g_mime_content_type_is_type(ct, "message", "feedback-report")) {
		if (!p->feedback)
			p->feedback = part_bytes(part, PART_MAX, &p->feedback_len);
	} else if (g_mime_content_type_is_type(ct, "*", "rfc822-headers") ||
		   g_mime_content_type_is_type(ct, "message", "global-headers")) {
		original_headers(part, p);
	} else if (g_mime_content_type_is_type(ct, "text", "*")) {
		text_add(part, p);
	}
}

/* Finds the report's parts, depth first; an embedded message is the original, not read
 * further (its own parts say nothing about its delivery). */
static void walk(GMimeObject *o, int depth, struct parts *p)
{
	GMimeContentType *ct = g_mime_object_get_content_type(o);
	if (depth > DEPTH_MAX)
		return;
	if (GMIME_IS_MULTIPART(o)) {
		const char *rt = ct ? g_mime_content_type_get_parameter(ct, "report-type") : NULL;
		if (rt && g_ascii_strcasecmp(rt, "feedback-report") == 0)
			p->feedback_report = true;
		if (ct && g_mime_content_type_is_type(ct, "multipart", "report"))
			p->report = true;
		GMimeMultipart *mp = GMIME_MULTIPART(o);
		int n = g_mime_multipart_get_count(mp);
		for (int i = 0; i < n; i++)
			walk(g_mime_multipart_get_part(mp, i), depth + 1, p);
	} else if (GMIME_IS_MESSAGE_PART(o)) {
		original_message(GMIME_MESSAGE_PART(o), p);
	} else if (GMIME_IS_PART(o) && ct) {
		leaf(GMIME_PART(o), ct, p);
	}
}

/* ---- delivery status notifications (RFC 3464, RFC 6533) ---- */

static void dsn_recipient(const struct block *b, struct report *out)
{
	const char *fin = field(b, "Final-Recipient"), *orig = field(b, "Original-Recipient");
	const char *diag = field(b, "Diagnostic-Code");
	struct report_rcpt r = {0};
	/* A recipient the report names but that is no address is skipped: it cannot be
	 * matched to one of the message's. */
	if ((fin || orig) && !(fin && address_of(fin, r.email)) &&
	    !(orig && address_of(orig, r.email)))
		return;
	status_copy(r.status, field(b, "Status"), false);
	if (!r.status[0] && diag)
		status_copy(r.status, strip_type(diag), true);
	if (!action_of(field(b, "Action"), &r.action)) {
		if (r.status[0] == '5')
			r.action = REPORT_FAILED;
		else if (r.status[0] == '4')
			r.action = REPORT_DELAYED;
		else if (r.status[0] == '2')
			r.action = REPORT_DELIVERED;
		else
			return;
	}
	if (diag)
		clean_str(r.diagnostic, sizeof(r.diagnostic), strip_type(diag));
	rcpt_add(out, &r);
}

/* Per-message fields fill what is still empty; a block with a recipient's fields is one
 * recipient's. */
static void dsn_block(const struct block *b, struct report *out)
{
	const char *mta = field(b, "Reporting-MTA"), *xid = field(b, "X-Original-Message-ID");
	if (mta && !out->reporting_mta[0])
		clean_str(out->reporting_mta, sizeof(out->reporting_mta), strip_type(mta));
	if (xid && !out->message_id[0])
		msgid_copy(out->message_id, xid);
	if (field(b, "Final-Recipient") || field(b, "Original-Recipient") || field(b, "Action") ||
	    field(b, "Status"))
		dsn_recipient(b, out);
}

static void dsn_read(const char *s, size_t len, struct report *out)
{
	struct block *b = xmalloc(sizeof(*b));
	size_t pos = 0;
	for (int i = 0; i < BLOCKS_MAX && pos < len; i++) {
		pos = block_read(s, len, pos, b);
		dsn_block(b, out);
	}
	free(b);
}

/* ---- feedback reports (ARF, RFC 5965) ---- */

/* The complainer is the Original-Rcpt-To only: the embedded message's To may well be
 * someone else (the complainer was a Cc or Bcc), and suppressing the wrong person is worse
 * than suppressing no one. */
static void arf_read(const char *s, size_t len, struct report *out)
{
	struct block *b = xmalloc(sizeof(*b));
	block_read(s, len, 0, b);
	const char *type = field(b, "Feedback-Type"), *rcpt = field(b, "Original-Rcpt-To");
	const char *by[] = {field(b, "Reporting-MTA"), field(b, "User-Agent"),
			    field(b, "Reported-Domain")};
	struct report_rcpt r = {.action = REPORT_COMPLAINT};

	if (type) {
		clean_str(out->feedback_type, sizeof(out->feedback_type), type);
		for (char *c = out->feedback_type; *c; c++)
			*c = g_ascii_tolower(*c);
	}
	for (size_t i = 0; i < ARRAY_LEN(by) && !out->reporting_mta[0]; i++)
		if (by[i])
			clean_str(out->reporting_mta, sizeof(out->reporting_mta),
				  strip_type(by[i]));
	if (!rcpt || !address_of(rcpt, r.email))
		r.email[0] = '\0';
	memcpy(r.diagnostic, out->feedback_type, sizeof(out->feedback_type));
	rcpt_add(out, &r);
	free(b);
}

/* ---- anything else: a status code in the text ---- */

static bool local_char(char c)
{
	return g_ascii_isalnum(c) || (c != '\0' && strchr(".!#$%&'*+-/=?^_`{|}~", c));
}

static bool domain_char(char c)
{
	return g_ascii_isalnum(c) || c == '-' || c == '.' || (unsigned char)c >= 0x80;
}

/* A return path's shape ("b-<hex>-<tag>@..."): a bounce often quotes the sender, which is
 * never the recipient. */
static bool return_path(const char *addr)
{
	static const char hex[] = "0123456789abcdef";
	if (strncmp(addr, "b-", 2) != 0)
		return false;
	size_t u = strspn(addr + 2, hex);
	const char *t = addr + 2 + u;
	return u > 0 && u < VERP_UID_MAX && *t == '-' && strspn(t + 1, hex) == VERP_TAG_LEN &&
	       t[1 + VERP_TAG_LEN] == '@';
}

/* The first address in l[0, n) that normalizes and is not a return path, into out; false
 * when there is none. */
static bool address_in(const char *l, size_t n, char out[ADDR_MAX])
{
	for (const char *at = memchr(l, '@', n); at; at = memchr(at + 1, '@', l + n - at - 1)) {
		const char *a = at, *z = at + 1, *end = l + n;
		while (a > l && local_char(a[-1]) && at - a < ADDR_LOCAL_MAX)
			a--;
		while (z < end && domain_char(*z) && z - at < ADDR_DOMAIN_MAX)
			z++;
		while (a < at && *a == '.')
			a++;
		while (z > at + 1 && z[-1] == '.')
			z--;
		char buf[ADDR_LOCAL_MAX + ADDR_DOMAIN_MAX + 2];
		const char *why;
		memcpy(buf, a, (size_t)(z - a));
		buf[z - a] = '\0';
		if (addr_normalize(buf, out, &why) == 0 && !return_path(out))
			return true;
		if (at + 1 >= end)
			break;
	}
	out[0] = '\0';
	return false;
}

/* The recipient of the status line at pos: an address on it, else on the nearest line
 * before it in the same paragraph. */
static void text_recipient(const char *t, size_t pos, size_t end, char out[ADDR_MAX])
{
	if (address_in(t + pos, end - pos, out))
		return;
	for (int i = 0; i < LOOK_BACK && pos > 0; i++) {
		size_t e = pos - 1, b = e;
		while (b > 0 && t[b - 1] != '\n')
			b--;
		if (blank(t + b, e - b) || address_in(t + b, e - b, out))
			return;
		pos = b;
	}
}

/* A "Message-ID:" line of the original included in the text (its value maybe folded
 * onto the next line). */
static void text_msgid(const char *t, size_t len, char out[REPORT_MSGID_MAX])
{
	static const char name[] = "Message-ID:";
	for (size_t pos = 0; pos < len;) {
		size_t e = line_end(t, len, pos);
		if (e - pos >= sizeof(name) - 1 &&
		    g_ascii_strncasecmp(t + pos, name, sizeof(name) - 1) == 0) {
			char v[REPORT_MSGID_MAX * 2];
			size_t from = pos + sizeof(name) - 1;
			if (blank(t + from, e - from) && e + 1 < len &&
			    (t[e + 1] == ' ' || t[e + 1] == '\t')) {
				from = e + 1;
				e = line_end(t, len, from);
			}
			clean(v, sizeof(v), t + from, e - from);
			msgid_copy(out, v);
			return;
		}
		pos = e < len ? e + 1 : len;
	}
}

/* The labels after which a status in free text is one: "Status: 5.1.1",
 * "Diagnostic-Code: smtp; 5.1.1", "host mx.example said: 5.1.1". */
static const char *const status_labels[] = {"status:", "diagnostic-code:", "said:"};

/* True when the status at l[i] follows an SMTP reply code of its class: "550 5.1.1",
 * "550-5.1.1", "550 #5.1.1". */
static bool after_reply_code(const char *l, size_t i)
{
	size_t j = i;
	if (j > 0 && l[j - 1] == '#')
		j--;
	if (j < 4 || (l[j - 1] != ' ' && l[j - 1] != '-'))
		return false;
	const char *c = l + j - 4;
	return c[0] == l[i] && is_digit(c[1]) && is_digit(c[2]) &&
	       (c == l || (!g_ascii_isalnum(c[-1]) && c[-1] != '.'));
}

/* True when the status at l[i] follows one of status_labels (a type such as "smtp;"
 * between them allowed), or is qmail's "(#5.1.1)". */
static bool after_label(const char *l, size_t i)
{
	if (i >= 2 && l[i - 1] == '#' && l[i - 2] == '(')
		return true;
	size_t k = i;
	while (k > 0 && (l[k - 1] == ' ' || l[k - 1] == '\t'))
		k--;
	if (k > 0 && l[k - 1] == ';') {
		k--;
		while (k > 0 && (g_ascii_isalnum(l[k - 1]) || l[k - 1] == '-'))
			k--;
		while (k > 0 && (l[k - 1] == ' ' || l[k - 1] == '\t'))
			k--;
	}
	for (size_t n = 0; n < ARRAY_LEN(status_labels); n++) {
		size_t len = strlen(status_labels[n]);
		if (k >= len && g_ascii_strncasecmp(l + k - len, status_labels[n], len) == 0)
			return true;
	}
	return false;
}

/* The first status code on the line l[0, len) that reads as one: a failure code (strict)
 * right after an SMTP reply code of its class, or (unless smtp_only) after a label. A bare
 * "5.1.27" is a date or a version as often as not: never. NULL when there is none. */
static const char *text_status(const char *l, size_t len, bool smtp_only, size_t *n)
{
	for (size_t i = 0; i < len; i++) {
		if (i > 0 && (g_ascii_isalnum(l[i - 1]) || l[i - 1] == '.'))
			continue;
		*n = status_at(l + i, true);
		if (*n == 0 || i + *n > len)
			continue;
		if (after_reply_code(l, i) || (!smtp_only && after_label(l, i)))
			return l + i;
	}
	return NULL;
}

static bool text_read(const char *t, size_t len, bool smtp_only, struct report *out)
{
	for (size_t pos = 0; pos < len;) {
		size_t e = line_end(t, len, pos), n;
		const char *s = text_status(t + pos, e - pos, smtp_only, &n);
		if (s) {
			struct report_rcpt r = {.action =
							*s == '5' ? REPORT_FAILED : REPORT_DELAYED};
			memcpy(r.status, s, n);
			clean(r.diagnostic, sizeof(r.diagnostic), t + pos, e - pos);
			text_recipient(t, pos, e, r.email);
			rcpt_add(out, &r);
			if (!out->message_id[0])
				text_msgid(t, len, out->message_id);
			out->kind = REPORT_TEXT;
			return true;
		}
		pos = e < len ? e + 1 : len;
	}
	return false;
}

/* ---- the whole ---- */

static void classify(const struct parts *p, struct report *out)
{
	memcpy(out->message_id, p->msgid, sizeof(out->message_id));
	if (p->feedback && (p->feedback_report || !p->status)) {
		out->kind = REPORT_ARF;
		arf_read(p->feedback, p->feedback_len, out);
		return;
	}
	if (p->status) {
		dsn_read(p->status, p->status_len, out);
		if (out->n > 0) {
			out->kind = REPORT_DSN;
			return;
		}
	}
	/* An automatic reply that is no report (an out-of-office one, say) is read only for
	 * an SMTP reply in its text. A real report may carry Auto-Submitted too (Postfix's
	 * do): within a multipart/report it changes nothing. */
	if (!text_read(p->text->str, p->text->len, p->auto_submitted && !p->report, out))
		out->kind = REPORT_UNPARSED;
}

/* An Auto-Submitted value other than "no" (RFC 3834 5.1): the message is automatic. */
static bool automatic(const char *v)
{
	if (!v)
		return false;
	v = skip_space(v);
	size_t n = strcspn(v, " \t\r\n;(");
	return n > 0 && !(n == 2 && g_ascii_strncasecmp(v, "no", 2) == 0);
}

void report_parse(const char *data, size_t len, struct report *out)
{
	*out = (struct report){.kind = REPORT_UNPARSED};
	compose_init();
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(data, len);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
	GMimeObject *body = msg ? g_mime_message_get_mime_part(msg) : NULL;
	struct parts p = {.text = g_string_new(NULL)};
	if (msg)
		p.auto_submitted =
			automatic(g_mime_object_get_header(GMIME_OBJECT(msg), "Auto-Submitted"));
	if (body)
		walk(body, 0, &p);
	if (msg)
		classify(&p, out);
	free(p.status);
	free(p.feedback);
	g_string_free(p.text, TRUE);
	if (msg)
		g_object_unref(msg);
	g_object_unref(parser);
	g_object_unref(stream);
}

void report_free(struct report *r)
{
	free(r->rcpts);
	r->rcpts = NULL;
	r->n = 0;
}

bool report_hard(const struct report_rcpt *r)
{
	/* 5.0.x, 5.1.x, 5.2.x, 5.5.x: about the address or the mailbox, or unspecified;
	 * 5.3.x, 5.4.x, 5.6.x, 5.7.x (system, network, content, policy) say nothing about it. */
	const char *st = r->status;
	return r->action == REPORT_FAILED && strncmp(st, "5.", 2) == 0 && st[2] != '\0' &&
	       strchr("0125", st[2]) && st[3] == '.';
}

bool report_status_hard(const char *status)
{
	static const char *const hard[] = {"5.1.1", "5.1.2", "5.1.3", "5.1.10", "5.2.1"};
	for (size_t i = 0; i < ARRAY_LEN(hard); i++)
		if (status && strcmp(status, hard[i]) == 0)
			return true;
	return false;
}

const char *report_kind_name(enum report_kind k)
{
	switch (k) {
	case REPORT_DSN:
		return "dsn";
	case REPORT_ARF:
		return "arf";
	case REPORT_TEXT:
		return "text";
	case REPORT_UNPARSED:
		break;
	}
	return "unparsed";
}
