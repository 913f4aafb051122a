/* The SMTP protocol (smtp_proto.c) on arbitrary bytes, fed in chunks of varying size with
 * its actions answered yes or no by the input itself: it never crashes, every reply is a
 * CRLF-ended line starting with a three-digit code, a message handed over for submission
 * holds only CRLF line ends and fits max_size, and nothing is consumed while an action is
 * pending. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "smtp_proto.h"

static void check_replies(GString *out)
{
	for (size_t i = 0; i < out->len;) {
		const char *p = out->str + i;
		const char *crlf = g_strstr_len(p, (gssize)(out->len - i), "\r\n");
		FUZZ_CHECK(crlf, "reply without CRLF: %.*s", (int)(out->len - i), p);
		FUZZ_CHECK(crlf - p >= 4 && p[0] >= '2' && p[0] <= '5' && p[1] >= '0' &&
				   p[1] <= '9' && p[2] >= '0' && p[2] <= '9' &&
				   (p[3] == ' ' || p[3] == '-'),
			   "malformed reply line: %.*s", (int)(crlf - p), p);
		FUZZ_CHECK(!memchr(p, '\r', (size_t)(crlf - p)) &&
				   !memchr(p, '\n', (size_t)(crlf - p)),
			   "CR or LF inside a reply line");
		i = (size_t)(crlf + 2 - out->str);
	}
	g_string_truncate(out, 0);
}

static void check_body(const struct smtp_session *s)
{
	const GString *b = s->body;
	FUZZ_CHECK(b->len <= s->lim->max_size, "body of %zu bytes over %zu", b->len,
		   s->lim->max_size);
	for (size_t i = 0; i < b->len; i++) {
		if (b->str[i] == '\r')
			FUZZ_CHECK(i + 1 < b->len && b->str[i + 1] == '\n', "bare CR at %zu", i);
		if (b->str[i] == '\n')
			FUZZ_CHECK(i > 0 && b->str[i - 1] == '\r', "bare LF at %zu", i);
	}
	FUZZ_CHECK(s->nrcpts >= 1 && s->mail_from[0], "submission without an envelope");
}

/* Answers the pending action with the verdict byte v (bit 0: yes; bit 1: a refusal
 * closes, as AUTH's lockout and a stop's 421 do); returns false once the session is
 * closed. */
static bool act(struct smtp_session *s, uint8_t v)
{
	bool yes = v & 1, close = !yes && (v & 2);
	switch (s->action) {
	case SMTP_ACT_STARTTLS:
		check_replies(s->out);
		smtp_tls_started(s);
		return true;
	case SMTP_ACT_AUTH:
		smtp_auth_done(s, yes, yes ? "235 2.7.0 Ok" : "535 5.7.8 no", close);
		return true;
	case SMTP_ACT_MAIL:
		/* smtpd refuses the null sender always */
		yes = yes && s->mail_from[0];
		smtp_mail_done(s, yes, yes ? "250 2.1.0 Ok" : "550 5.7.1 no");
		return true;
	case SMTP_ACT_SUBMIT:
		check_body(s);
		smtp_submit_done(s, close ? "421 4.3.2 bye" : "250 2.0.0 Ok: queued as x", close);
		return true;
	case SMTP_ACT_CLOSE:
		return false;
	case SMTP_ACT_NONE:
		return true;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	struct smtp_limits lim = {.hostname = "mx.test",
				  .max_size = 64 + data[0] * 4u,
				  .max_recipients = 1 + (data[0] & 7),
				  .tls_available = data[1] & 1,
				  .auth_without_tls = data[1] & 2};
	struct smtp_session *s = smtp_session_new(&lim, data[1] & 4);
	size_t chunk = 1 + (data[1] >> 3);
	const char *in = (const char *)data + 2;
	size_t len = size - 2, off = 0, verdict = 0;
	bool open = true;
	while (open && off < len) {
		size_t n = len - off < chunk ? len - off : chunk;
		size_t used = smtp_feed(s, in + off, n);
		FUZZ_CHECK(used <= n, "used %zu of %zu", used, n);
		off += used;
		check_replies(s->out);
		if (s->action != SMTP_ACT_NONE) {
			FUZZ_CHECK(smtp_feed(s, in + off, len - off) == 0 || off == len,
				   "input consumed while an action is pending");
			open = act(s, data[verdict++ % size]);
			check_replies(s->out);
		} else {
			FUZZ_CHECK(used == n, "stopped without an action");
		}
	}
	smtp_session_free(s);
	return 0;
}
