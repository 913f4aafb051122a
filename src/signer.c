/* DKIM signing through libopendkim. The message is split into header fields and body here,
 * because libopendkim wants each field on its own (continuation lines included) and the body
 * as bytes; the finished signature header is prepended to the untouched original. */
#include "signer.h"

#include <opendkim/dkim.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SIG_NAME "DKIM-Signature: "
/* A 2048-bit signature header is about 600 bytes folded; 4096 leaves room for 4096-bit keys. */
#define SIG_MAX 4096

struct signer {
	DKIM_LIB *lib;
};

/* Headers a recipient sees or that shape how the body is read, each signed when present.
 * Others (X-*, List-*) may be rewritten on the way without breaking the signature. */
static const char *signed_headers[] = {
	"from",	      "to",	      "cc",	      "subject",  "date",
	"message-id", "mime-version", "content-type", "reply-to", NULL,
};

/* Signed once more than they occur (h= names each one extra time), so that a second From,
 * Subject, To or Date added on the way breaks the signature: a client may show the added one
 * while the verifier checked the original. */
static const char *oversigned_headers[] = {"from", "subject", "to", "date", "cc", "reply-to", NULL};

struct signer *signer_new(char *err, size_t errlen)
{
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	if (!lib) {
		snprintf(err, errlen, "libopendkim cannot be initialised");
		return NULL;
	}
	DKIM_STAT st = dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, signed_headers,
				    sizeof(char **));
	if (st == DKIM_STAT_OK)
		st = dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, oversigned_headers,
				  sizeof(char **));
	if (st != DKIM_STAT_OK) {
		snprintf(err, errlen, "libopendkim refuses the header list: %s",
			 dkim_getresultstr(st));
		dkim_close(lib);
		return NULL;
	}
	struct signer *s = xmalloc(sizeof(*s));
	s->lib = lib;
	return s;
}

void signer_free(struct signer *s)
{
	if (!s)
		return;
	dkim_close(s->lib);
	free(s);
}

static void fail(DKIM *dkim, const char *step, DKIM_STAT st, char *err, size_t errlen)
{
	const char *detail = dkim ? dkim_geterror(dkim) : NULL;
	if (detail && *detail)
		snprintf(err, errlen, "DKIM %s: %s (%s)", step, dkim_getresultstr(st), detail);
	else
		snprintf(err, errlen, "DKIM %s: %s", step, dkim_getresultstr(st));
}

/* The end of the header field that starts at p: the CRLF that is not followed by a space or
 * tab. Returns NULL when a line ends without CRLF (a bare LF, or the message ends). */
static const char *field_end(const char *p, const char *end)
{
	for (;;) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		if (!lf || lf == p || lf[-1] != '\r')
			return NULL;
		if (lf + 1 == end || (lf[1] != ' ' && lf[1] != '\t'))
			return lf - 1;
		p = lf + 1;
	}
}

/* Feeds every header field to dkim and returns where the body starts (after the empty line),
 * or NULL with err. A message without an empty line is all headers and an empty body. */
static const char *feed_headers(DKIM *dkim, const char *msg, size_t len, char *err, size_t errlen)
{
	const char *p = msg, *end = msg + len;
	while (p < end) {
		if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
			return p + 2;
		const char *crlf = field_end(p, end);
		if (!crlf || *p == ' ' || *p == '\t') {
			snprintf(err, errlen, "DKIM: malformed header at offset %zu (%s)",
				 (size_t)(p - msg),
				 crlf ? "continuation without a field" : "line without CRLF");
			return NULL;
		}
		DKIM_STAT st = dkim_header(dkim, (u_char *)p, (size_t)(crlf - p));
		if (st != DKIM_STAT_OK) {
			fail(dkim, "header", st, err, errlen);
			return NULL;
		}
		p = crlf + 2;
	}
	return end;
}

/* libopendkim folds with a bare LF; the wire wants CRLF. Returns the converted length. */
static size_t to_crlf(char *dst, const char *src)
{
	size_t n = 0;
	for (; *src; src++) {
		if (*src == '\n' && (n == 0 || dst[n - 1] != '\r'))
			dst[n++] = '\r';
		dst[n++] = *src;
	}
	return n;
}

int signer_sign(struct signer *s, const char *pem, const char *selector, const char *domain,
		const char *msg, size_t len, char **out, size_t *outlen, char *err, size_t errlen)
{
	DKIM_STAT st;
	int rc = -1;
	*out = NULL;
	*outlen = 0;
	DKIM *dkim = dkim_sign(s->lib, (const u_char *)"postern", NULL, (dkim_sigkey_t)pem,
			       (const u_char *)selector, (const u_char *)domain, DKIM_CANON_RELAXED,
			       DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st);
	if (!dkim) {
		fail(NULL, "sign", st, err, errlen);
		return -1;
	}
	const char *body = feed_headers(dkim, msg, len, err, errlen);
	if (!body)
		goto out;
	if ((st = dkim_eoh(dkim)) != DKIM_STAT_OK) {
		fail(dkim, "end of headers", st, err, errlen);
		goto out;
	}
	if (body < msg + len &&
	    (st = dkim_body(dkim, (u_char *)body, (size_t)(msg + len - body))) != DKIM_STAT_OK) {
		fail(dkim, "body", st, err, errlen);
		goto out;
	}
	if ((st = dkim_eom(dkim, NULL)) != DKIM_STAT_OK) {
		fail(dkim, "signature", st, err, errlen);
		goto out;
	}
	u_char sig[SIG_MAX];
	st = dkim_getsighdr(dkim, sig, sizeof(sig), strlen(SIG_NAME));
	if (st != DKIM_STAT_OK) {
		fail(dkim, "signature header", st, err, errlen);
		goto out;
	}
	size_t name = strlen(SIG_NAME), siglen = strlen((char *)sig);
	/* Room for a CR before every LF, and for the CRLF that ends the field. */
	*out = xmalloc(name + 2 * siglen + 2 + len + 1);
	memcpy(*out, SIG_NAME, name);
	size_t n = name + to_crlf(*out + name, (char *)sig);
	memcpy(*out + n, "\r\n", 2);
	memcpy(*out + n + 2, msg, len);
	*outlen = n + 2 + len;
	(*out)[*outlen] = '\0';
	rc = 0;
out:
	dkim_free(dkim);
	return rc;
}
