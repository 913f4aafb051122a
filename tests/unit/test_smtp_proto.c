/* Unit tests for smtp_proto: SMTP sessions driven without sockets, as a client would speak
 * them: greeting and capabilities before and after TLS, AUTH PLAIN and LOGIN, the envelope,
 * the DATA decoder (dot-stuffing, the end split across chunks, bare CR and LF, the size
 * limit), the recipient limit, pipelining, and the replies to bad syntax and sequence; and
 * the inbound mode of the return path's listener (no AUTH, the null sender, return paths
 * only, its size limit). */
#include "testutil.h"

#include "smtp_proto.h"

static struct smtp_limits limits = {.hostname = "mx.test",
				    .max_size = 100,
				    .max_recipients = 2,
				    .tls_available = true,
				    .auth_without_tls = false};

/* Feeds text as smtpd does, answering every action with yes, and returns (and clears) the
 * replies written meanwhile. */
static char replies[8192];

static void take_replies(struct smtp_session *s)
{
	size_t have = strlen(replies);
	snprintf(replies + have, sizeof(replies) - have, "%s", s->out->str);
	g_string_truncate(s->out, 0);
}

static const char *feed(struct smtp_session *s, const char *text)
{
	size_t len = strlen(text), off = 0;
	replies[0] = '\0';
	while (off < len) {
		off += smtp_feed(s, text + off, len - off);
		take_replies(s);
		if (s->action == SMTP_ACT_NONE || s->action == SMTP_ACT_CLOSE)
			break;
		switch (s->action) {
		case SMTP_ACT_STARTTLS:
			smtp_tls_started(s); /* what followed STARTTLS is dropped, as smtpd does */
			off = len;
			break;
		case SMTP_ACT_AUTH:
			smtp_auth_done(s, true, "235 2.7.0 Authentication successful", false);
			break;
		case SMTP_ACT_MAIL:
			smtp_mail_done(s, true, "250 2.1.0 Ok");
			break;
		case SMTP_ACT_SUBMIT:
			smtp_submit_done(s, "250 2.0.0 Ok: queued as x", false);
			break;
		default:
			break;
		}
	}
	take_replies(s);
	return replies;
}

static struct smtp_session *session_with(const struct smtp_limits *lim, bool tls)
{
	struct smtp_session *s = smtp_session_new(lim, tls);
	assert_string_equal(s->out->str, "220 mx.test ESMTP Postern\r\n");
	g_string_truncate(s->out, 0);
	return s;
}

static struct smtp_session *session(bool tls)
{
	return session_with(&limits, tls);
}

/* EHLO's answer on a plaintext connection before AUTH may be offered. */
#define PLAIN_CAPABILITIES                                                                         \
	"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 100\r\n250-8BITMIME\r\n"                        \
	"250-SMTPUTF8\r\n250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n"

static void ehlo_lists_capabilities_starttls_before_tls(void **state)
{
	(void)state;
	struct smtp_session *s = session(false);
	assert_string_equal(feed(s, "EHLO client.test\r\n"), PLAIN_CAPABILITIES);
	smtp_session_free(s);
}

static void starttls_forgets_everything_and_is_no_longer_offered(void **state)
{
	(void)state;
	struct smtp_session *s = session(false);
	feed(s, "EHLO a\r\n");
	/* The pipelined RSET behind STARTTLS never gets a reply. */
	assert_string_equal(feed(s, "STARTTLS\r\nRSET\r\n"), "220 2.0.0 Ready to start TLS\r\n");
	assert_true(s->tls);
	assert_string_equal(feed(s, "MAIL FROM:<a@b.test>\r\n"),
			    "503 5.5.1 Send EHLO or HELO first\r\n");
	const char *caps = feed(s, "EHLO a\r\n");
	assert_null(strstr(caps, "STARTTLS"));
	assert_non_null(strstr(caps, "250-AUTH PLAIN LOGIN\r\n"));
	assert_string_equal(feed(s, "STARTTLS\r\n"), "502 5.5.1 STARTTLS not available\r\n");
	smtp_session_free(s);
}

static void auth_refused_before_tls(void **state)
{
	(void)state;
	struct smtp_session *s = session(false);
	feed(s, "EHLO a\r\n");
	assert_string_equal(feed(s, "AUTH PLAIN AGFwaWtleQBzZWNyZXQ=\r\n"),
			    "530 5.7.0 Must issue a STARTTLS command first\r\n");
	assert_int_equal(s->action, SMTP_ACT_NONE);
	smtp_session_free(s);
}

static void auth_plain_initial_response(void **state)
{
	(void)state;
	struct smtp_session *s = session(true);
	feed(s, "EHLO a\r\n");
	/* "\0apikey\0secret" */
	smtp_feed(s, "AUTH PLAIN AGFwaWtleQBzZWNyZXQ=\r\n", 33);
	assert_int_equal(s->action, SMTP_ACT_AUTH);
	assert_string_equal(s->user, "apikey");
	assert_string_equal(s->pass, "secret");
	smtp_auth_done(s, true, "235 2.7.0 Authentication successful", false);
	assert_true(s->authenticated);
	assert_string_equal(s->pass, "");
	g_string_truncate(s->out, 0);
	assert_string_equal(feed(s, "AUTH PLAIN AGFwaWtleQBzZWNyZXQ=\r\n"),
			    "503 5.5.1 Already authenticated\r\n");
	smtp_session_free(s);
}

static void auth_plain_challenge_and_cancel(void **state)
{
	(void)state;
	struct smtp_session *s = session(true);
	feed(s, "EHLO a\r\n");
	assert_string_equal(feed(s, "AUTH PLAIN\r\n"), "334 \r\n");
	assert_string_equal(feed(s, "*\r\n"), "501 5.0.0 Authentication cancelled\r\n");
	assert_string_equal(feed(s, "AUTH PLAIN\r\n"), "334 \r\n");
	assert_string_equal(feed(s, "not base64!\r\n"),
			    "501 5.5.2 Cannot decode the AUTH response\r\n");
	assert_string_equal(feed(s, "AUTH PLAIN\r\n"), "334 \r\n");
	smtp_feed(s, "AHUAcA==\r\n", 10); /* "\0u\0p" */
	assert_int_equal(s->action, SMTP_ACT_AUTH);
	assert_string_equal(s->user, "u");
	assert_string_equal(s->pass, "p");
	smtp_session_free(s);
}

static void auth_login_two_steps_and_initial(void **state)
{
	(void)state;
	struct smtp_session *s = session(false);
	struct smtp_limits open = limits;
	open.auth_without_tls = true;
	s->lim = &open;
	const char *caps = feed(s, "EHLO a\r\n");
	assert_non_null(strstr(caps, "250-AUTH PLAIN LOGIN\r\n"));
	assert_string_equal(feed(s, "AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
	assert_string_equal(feed(s, "YXBpa2V5\r\n"), "334 UGFzc3dvcmQ6\r\n");
	smtp_feed(s, "c2VjcmV0\r\n", 10);
	assert_int_equal(s->action, SMTP_ACT_AUTH);
	assert_string_equal(s->user, "apikey");
	assert_string_equal(s->pass, "secret");
	smtp_auth_done(s, false, "535 5.7.8 invalid_credentials: no", false);
	assert_false(s->authenticated);
	g_string_truncate(s->out, 0);
	assert_string_equal(feed(s, "AUTH LOGIN YXBpa2V5\r\n"), "334 UGFzc3dvcmQ6\r\n");
	smtp_feed(s, "c2VjcmV0\r\n", 10);
	assert_int_equal(s->action, SMTP_ACT_AUTH);
	smtp_auth_done(s, false, "421 4.7.0 too_many_attempts: wait", true);
	assert_int_equal(s->action, SMTP_ACT_CLOSE);
	smtp_session_free(s);
}

static void envelope_and_data_with_dot_unstuffing(void **state)
{
	(void)state;
	struct smtp_session *s = session(false);
	feed(s, "EHLO a\r\n");
	smtp_feed(s, "MAIL FROM:<News@B.Test> SIZE=50 BODY=8BITMIME SMTPUTF8\r\n", 56);
	assert_int_equal(s->action, SMTP_ACT_MAIL);
	assert_string_equal(s->mail_from, "news@b.test");
	smtp_mail_done(s, true, "250 2.1.0 Ok");
	g_string_truncate(s->out, 0);
	assert_string_equal(feed(s, "RCPT TO:<c@d.test>\r\n"), "250 2.1.5 Ok\r\n");
	assert_string_equal(feed(s, "DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
	size_t n = smtp_feed(s, "Subject: x\r\n\r\n..dot\r\n.\r\nNOOP\r\n", 30);
	assert_int_equal(n, 24); /* up to the end of DATA; NOOP waits for the reply */
	assert_int_equal(s->action, SMTP_ACT_SUBMIT);
	assert_int_equal(s->body->len, 20);
	assert_memory_equal(s->body->str, "Subject: x\r\n\r\n.dot\r\n", 20);
	assert_int_equal(s->nrcpts, 1);
	assert_string_equal(s->rcpts[0], "c@d.test");
	smtp_submit_done(s, "250 2.0.0 Ok: queued as x", false);
	assert_int_equal(s->state, SMTP_S_READY);
	smtp_session_free(s);
}

static struct smtp_session *in_data(void)
{
	struct smtp_session *s = session(false);
	feed(s, "EHLO a\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n");
	assert_int_equal(s->state, SMTP_S_DATA);
	return s;
}

/* A 421 (shutting down) closes the connection after it (RFC 5321 3.8). */
static void submit_refused_with_close(void **state)
{
	(void)state;
	struct smtp_session *s = in_data();
	smtp_feed(s, "Hi\r\n.\r\n", 7);
	assert_int_equal(s->action, SMTP_ACT_SUBMIT);
	smtp_submit_done(s, "421 4.3.2 shutting down", true);
	assert_int_equal(s->action, SMTP_ACT_CLOSE);
	assert_int_equal(s->state, SMTP_S_CLOSED);
	assert_string_equal(s->out->str, "421 4.3.2 shutting down\r\n");
	smtp_session_free(s);
}

static void data_end_split_across_chunks(void **state)
{
	(void)state;
	struct smtp_session *s = in_data();
	const char *parts[] = {"hello\r", "\n", ".", "\r", "\n"};
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(s->action, SMTP_ACT_NONE);
		assert_int_equal(smtp_feed(s, parts[i], 1 + (i == 0) * 5), strlen(parts[i]));
	}
	assert_int_equal(s->action, SMTP_ACT_SUBMIT);
	assert_int_equal(s->body->len, 7);
	assert_memory_equal(s->body->str, "hello\r\n", 7);
	smtp_session_free(s);
}

static void data_bare_lf_refused_and_not_an_end(void **state)
{
	(void)state;
	struct smtp_session *s = in_data();
	/* A smuggling attempt: "\n.\n" or "\n.\r\n" must not end the message. */
	assert_string_equal(feed(s, "a\n.\r\nMAIL FROM:<x@y.test>\r\n"), "");
	assert_int_equal(s->state, SMTP_S_DATA);
	const char *r = feed(s, "\r\n.\r\n");
	assert_true(strncmp(r, "550 5.5.2 ", 10) == 0);
	assert_int_equal(s->state, SMTP_S_READY);
	assert_int_equal(s->nrcpts, 0);
	smtp_session_free(s);
}

static void data_bare_cr_refused(void **state)
{
	(void)state;
	struct smtp_session *s = in_data();
	const char *r = feed(s, "a\rb\r\n.\r\n");
	assert_true(strncmp(r, "550 5.5.2 ", 10) == 0);
	smtp_session_free(s);
	s = in_data();
	r = feed(s, "a\r\n.\rx\r\n.\r\n");
	assert_true(strncmp(r, "550 5.5.2 ", 10) == 0);
	smtp_session_free(s);
}

/* In DATA: 300 bytes, three times the limit, are read to the end of DATA, then 552. */
static void data_too_big(struct smtp_session *s)
{
	char big[300];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_string_equal(feed(s, big), "");
	assert_string_equal(feed(s, "\r\n.\r\n"),
			    "552 5.3.4 Message size exceeds the limit of 100 bytes\r\n");
}

static void data_over_max_size_read_to_the_end(void **state)
{
	(void)state;
	struct smtp_session *s = in_data();
	data_too_big(s);
	assert_string_equal(feed(s, "NOOP\r\n"), "250 2.0.0 Ok\r\n");
	smtp_session_free(s);
}

static void mail_size_over_limit_refused(void **state)
{
	(void)state;
	struct smtp_session *s = session(false);
	feed(s, "EHLO a\r\n");
	assert_string_equal(feed(s, "MAIL FROM:<a@b.test> SIZE=101\r\n"),
			    "552 5.3.4 Message size exceeds the limit of 100 bytes\r\n");
	assert_string_equal(feed(s, "MAIL FROM:<a@b.test> FOO=1\r\n"),
			    "555 5.5.4 Unsupported MAIL parameter\r\n");
	assert_string_equal(feed(s, "MAIL FROM:a@b.test\r\n"),
			    "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
	smtp_session_free(s);
}

/* The null sender is the adapter's to judge: 530 unauthenticated, else 550. */
static void null_sender_goes_to_the_adapter(void **state)
{
	(void)state;
	struct smtp_session *s = session(false);
	feed(s, "EHLO a\r\n");
	strcpy(s->mail_from, "stale@b.test");
	assert_int_equal(smtp_feed(s, "MAIL FROM:<>\r\nNOOP\r\n", 20), 14);
	assert_int_equal(s->action, SMTP_ACT_MAIL);
	assert_string_equal(s->mail_from, "");
	smtp_mail_done(s, false, "530 5.7.0 not_authenticated: Authentication required");
	assert_int_equal(s->state, SMTP_S_READY);
	g_string_truncate(s->out, 0);
	smtp_feed(s, "MAIL FROM:<> SIZE=10\r\n", 22);
	assert_int_equal(s->action, SMTP_ACT_MAIL);
	smtp_mail_done(s, false, "550 5.7.1 sender_not_authorized: The null sender");
	assert_string_equal(s->out->str, "550 5.7.1 sender_not_authorized: The null sender\r\n");
	g_string_truncate(s->out, 0);
	assert_string_equal(feed(s, "RCPT TO:<c@d.test>\r\n"),
			    "503 5.5.1 Need MAIL before RCPT\r\n");
	smtp_session_free(s);
}

/* RFC 4616: the authorization identity is empty or the user; anything else is 535. */
static void auth_plain_authorization_identity(void **state)
{
	(void)state;
	struct smtp_session *s = session(true);
	feed(s, "EHLO a\r\n");
	/* "apikey\0apikey\0secret": the user's own identity */
	smtp_feed(s, "AUTH PLAIN YXBpa2V5AGFwaWtleQBzZWNyZXQ=\r\n", 41);
	assert_int_equal(s->action, SMTP_ACT_AUTH);
	assert_string_equal(s->user, "apikey");
	smtp_auth_done(s, false, "535 5.7.8 invalid_credentials: no", false);
	g_string_truncate(s->out, 0);
	/* "admin\0apikey\0secret" */
	assert_string_equal(feed(s, "AUTH PLAIN YWRtaW4AYXBpa2V5AHNlY3JldA==\r\n"),
			    "535 5.7.8 The authorization identity must be empty or the user "
			    "name\r\n");
	assert_int_equal(s->action, SMTP_ACT_NONE);
	assert_false(s->authenticated);
	assert_string_equal(s->user, "");
	assert_string_equal(s->pass, "");
	smtp_session_free(s);
}

/* A large transaction's buffers are given back when it ends: an idle session keeps little. */
static void large_transaction_buffers_shrink(void **state)
{
	(void)state;
	struct smtp_limits big = limits;
	big.max_size = 1 << 20;
	big.max_recipients = 1000;
	struct smtp_session *s = smtp_session_new(&big, false);
	feed(s, "EHLO a\r\nMAIL FROM:<a@b.test>\r\n");
	for (int i = 0; i < 400; i++) {
		char rcpt[64];
		snprintf(rcpt, sizeof(rcpt), "RCPT TO:<r%d@d.test>\r\n", i);
		feed(s, rcpt);
	}
	assert_int_equal(s->nrcpts, 400);
	feed(s, "DATA\r\n");
	char *line = calloc(1, 1001);
	memset(line, 'x', 998);
	memcpy(line + 998, "\r\n", 2);
	for (int i = 0; i < 500; i++)
		smtp_feed(s, line, 1000);
	free(line);
	assert_true(s->body->allocated_len > 400 * 1000);
	smtp_feed(s, ".\r\n", 3);
	assert_int_equal(s->action, SMTP_ACT_SUBMIT);
	smtp_submit_done(s, "250 2.0.0 Ok: queued as x", false);
	assert_true(s->body->allocated_len <= 64 * 1024);
	assert_true((size_t)s->rcpts_cap * sizeof(*s->rcpts) <= 64 * 1024);
	/* The next transaction works on the new buffers. */
	g_string_truncate(s->out, 0);
	const char *r =
		feed(s, "MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nHi\r\n.\r\n");
	assert_non_null(strstr(r, "250 2.0.0 Ok: queued as x\r\n"));
	smtp_session_free(s);
}

static void recipients_limited(void **state)
{
	(void)state;
	struct smtp_session *s = session(false);
	feed(s, "EHLO a\r\nMAIL FROM:<a@b.test>\r\n");
	assert_string_equal(feed(s, "RCPT TO:<1@d.test>\r\nRCPT TO:<2@d.test>\r\n"
				    "RCPT TO:<3@d.test>\r\n"),
			    "250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n452 4.5.3 Too many recipients\r\n");
	assert_int_equal(s->nrcpts, 2);
	smtp_session_free(s);
}

static void pipelined_transaction_in_one_write(void **state)
{
	(void)state;
	struct smtp_session *s = session(false);
	const char *r = feed(s, "EHLO a\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n"
				"Hi\r\n.\r\nQUIT\r\n");
	assert_non_null(
		strstr(r, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with "
			  "<CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as x\r\n221 2.0.0 Bye\r\n"));
	assert_int_equal(s->action, SMTP_ACT_CLOSE);
	smtp_session_free(s);
}

static void sequence_syntax_and_unknown(void **state)
{
	(void)state;
	struct smtp_session *s = session(false);
	assert_string_equal(feed(s, "MAIL FROM:<a@b.test>\r\n"),
			    "503 5.5.1 Send EHLO or HELO first\r\n");
	assert_string_equal(feed(s, "EHLO\r\n"), "501 5.5.4 Syntax: EHLO hostname\r\n");
	assert_string_equal(feed(s, "HELO a\r\n"), "250 mx.test\r\n");
	assert_string_equal(feed(s, "RCPT TO:<c@d.test>\r\n"),
			    "503 5.5.1 Need MAIL before RCPT\r\n");
	assert_string_equal(feed(s, "DATA\r\n"), "503 5.5.1 Need RCPT before DATA\r\n");
	assert_string_equal(feed(s, "XYZZY\r\n"), "500 5.5.2 Command not recognized\r\n");
	assert_string_equal(feed(s, "VRFY bob\r\n"),
			    "252 2.5.0 Cannot VRFY user, but will accept the message\r\n");
	assert_string_equal(feed(s, "noop\r\n"), "250 2.0.0 Ok\r\n");
	assert_string_equal(feed(s, "AUTH CRAM-MD5\r\n"),
			    "530 5.7.0 Must issue a STARTTLS command first\r\n");
	smtp_session_free(s);
}

static void long_line_refused(void **state)
{
	(void)state;
	struct smtp_session *s = session(false);
	char line[600];
	memset(line, 'A', sizeof(line));
	/* In two chunks: the limit holds across them. */
	assert_string_equal(feed(s, "NOOP "), "");
	smtp_feed(s, line, sizeof(line));
	assert_string_equal(feed(s, "\r\nNOOP\r\n"), "500 5.5.6 Line too long\r\n250 2.0.0 Ok\r\n");
	smtp_session_free(s);
}

static void rset_ends_the_transaction(void **state)
{
	(void)state;
	struct smtp_session *s = session(false);
	feed(s, "EHLO a\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n");
	assert_string_equal(feed(s, "RSET\r\n"), "250 2.0.0 Ok\r\n");
	assert_int_equal(s->nrcpts, 0);
	assert_string_equal(feed(s, "DATA\r\n"), "503 5.5.1 Need RCPT before DATA\r\n");
	smtp_session_free(s);
}

/* ---- Inbound mode: the return path's listener ---- */

/* A pure stand-in for the VERP check: only b-...@bounces.test addresses. */
static bool return_path(void *arg, const char *address)
{
	(void)arg;
	size_t n = strlen(address);
	return strncmp(address, "b-", 2) == 0 && n > 13 &&
	       strcmp(address + n - 13, "@bounces.test") == 0;
}

static struct smtp_limits inbound = {.hostname = "mx.test",
				     .max_size = 100,
				     .max_recipients = 2,
				     .tls_available = true,
				     .inbound = true,
				     .rcpt_ok = return_path};

static struct smtp_session *inbound_session(bool tls)
{
	return session_with(&inbound, tls);
}

static void inbound_offers_starttls_never_auth(void **state)
{
	(void)state;
	struct smtp_session *s = inbound_session(false);
	/* As submission's before TLS, and never AUTH, with TLS or without. */
	assert_string_equal(feed(s, "EHLO mta.test\r\n"), PLAIN_CAPABILITIES);
	assert_string_equal(feed(s, "AUTH PLAIN AGFwaWtleQBzZWNyZXQ=\r\n"),
			    "502 5.5.1 AUTH not available here\r\n");
	smtp_session_free(s);
	s = inbound_session(true);
	assert_null(strstr(feed(s, "EHLO mta.test\r\n"), "AUTH"));
	assert_string_equal(feed(s, "AUTH LOGIN\r\n"), "502 5.5.1 AUTH not available here\r\n");
	assert_int_equal(s->action, SMTP_ACT_NONE);
	smtp_session_free(s);
}

static void inbound_null_sender_and_return_paths_only(void **state)
{
	(void)state;
	struct smtp_session *s = inbound_session(false);
	feed(s, "EHLO mta.test\r\n");
	assert_string_equal(feed(s, "MAIL FROM:<>\r\n"), "250 2.1.0 Ok\r\n");
	assert_string_equal(feed(s, "RCPT TO:<someone@example.test>\r\n"),
			    "550 5.1.1 <someone@example.test>: no such return path here\r\n");
	assert_string_equal(feed(s, "RCPT TO:<b-ab-cd@other.test>\r\n"),
			    "550 5.1.1 <b-ab-cd@other.test>: no such return path here\r\n");
	assert_string_equal(feed(s, "DATA\r\n"), "503 5.5.1 Need RCPT before DATA\r\n");
	assert_string_equal(feed(s, "RCPT TO:<b-ab-cd@bounces.test>\r\n"), "250 2.1.5 Ok\r\n");
	assert_string_equal(feed(s, "DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n");
	smtp_feed(s, "Subject: x\r\n\r\nfailed\r\n.\r\n", 27);
	assert_int_equal(s->action, SMTP_ACT_SUBMIT);
	assert_string_equal(s->mail_from, "");
	assert_string_equal(s->rcpts[0], "b-ab-cd@bounces.test");
	smtp_submit_done(s, "250 2.0.0 Ok: report 1 stored", false);
	/* A sender submission would refuse is only recorded here. */
	g_string_truncate(s->out, 0);
	assert_string_equal(feed(s, "MAIL FROM:<MAILER-DAEMON@localhost>\r\n"), "250 2.1.0 Ok\r\n");
	assert_string_equal(s->mail_from, "MAILER-DAEMON@localhost");
	smtp_session_free(s);
}

static void inbound_size_limit(void **state)
{
	(void)state;
	struct smtp_session *s = inbound_session(false);
	feed(s, "EHLO mta.test\r\n");
	assert_string_equal(feed(s, "MAIL FROM:<> SIZE=101\r\n"),
			    "552 5.3.4 Message size exceeds the limit of 100 bytes\r\n");
	feed(s, "MAIL FROM:<> SIZE=50\r\nRCPT TO:<b-1-2@bounces.test>\r\nDATA\r\n");
	data_too_big(s);
	smtp_session_free(s);
}

/* A report from a sloppy MTA, bare LF and CR in it, is kept: reports are never relayed.
 * The message still ends only at CRLF.CRLF. */
static void inbound_keeps_bare_line_ends(void **state)
{
	(void)state;
	struct smtp_session *s = inbound_session(false);
	feed(s, "EHLO mta.test\r\nMAIL FROM:<>\r\nRCPT TO:<b-1-2@bounces.test>\r\nDATA\r\n");
	g_string_truncate(s->out, 0);
	assert_string_equal(feed(s, "a\n.\nb\rc\r\n"), "");
	assert_int_equal(s->state, SMTP_S_DATA);
	smtp_feed(s, ".\r\n", 3);
	assert_int_equal(s->action, SMTP_ACT_SUBMIT);
	assert_int_equal(s->body->len, 9);
	assert_memory_equal(s->body->str, "a\n.\nb\rc\r\n", 9);
	smtp_session_free(s);
}

/* Guessing return paths: after SMTP_INBOUND_REFUSED_MAX refused recipients in a session,
 * RSET and good ones in between, the next refusal closes it. */
static void inbound_refused_recipients_close_the_session(void **state)
{
	(void)state;
	struct smtp_session *s = inbound_session(false);
	feed(s, "EHLO mta.test\r\nMAIL FROM:<>\r\n");
	for (int i = 0; i < SMTP_INBOUND_REFUSED_MAX; i++) {
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "RCPT TO:<b-1-%d@bounces.example>\r\n", i);
		assert_true(strncmp(feed(s, cmd), "550 5.1.1 ", 10) == 0);
		if (i == 2)
			assert_string_equal(feed(s, "RSET\r\nMAIL FROM:<>\r\nRCPT "
						    "TO:<b-1-2@bounces.test>\r\n"),
					    "250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
	}
	assert_int_equal(s->action, SMTP_ACT_NONE);
	/* Pipelined: nothing after the closing reply is read. */
	assert_string_equal(feed(s, "RCPT TO:<b-1-9@bounces.example>\r\nNOOP\r\n"),
			    "421 4.7.0 too many invalid return paths, closing\r\n");
	assert_int_equal(s->action, SMTP_ACT_CLOSE);
	assert_int_equal(s->state, SMTP_S_CLOSED);
	smtp_session_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ehlo_lists_capabilities_starttls_before_tls),
		cmocka_unit_test(starttls_forgets_everything_and_is_no_longer_offered),
		cmocka_unit_test(auth_refused_before_tls),
		cmocka_unit_test(auth_plain_initial_response),
		cmocka_unit_test(auth_plain_challenge_and_cancel),
		cmocka_unit_test(auth_login_two_steps_and_initial),
		cmocka_unit_test(envelope_and_data_with_dot_unstuffing),
		cmocka_unit_test(submit_refused_with_close),
		cmocka_unit_test(null_sender_goes_to_the_adapter),
		cmocka_unit_test(auth_plain_authorization_identity),
		cmocka_unit_test(large_transaction_buffers_shrink),
		cmocka_unit_test(data_end_split_across_chunks),
		cmocka_unit_test(data_bare_lf_refused_and_not_an_end),
		cmocka_unit_test(data_bare_cr_refused),
		cmocka_unit_test(data_over_max_size_read_to_the_end),
		cmocka_unit_test(mail_size_over_limit_refused),
		cmocka_unit_test(recipients_limited),
		cmocka_unit_test(pipelined_transaction_in_one_write),
		cmocka_unit_test(sequence_syntax_and_unknown),
		cmocka_unit_test(long_line_refused),
		cmocka_unit_test(rset_ends_the_transaction),
		cmocka_unit_test(inbound_offers_starttls_never_auth),
		cmocka_unit_test(inbound_null_sender_and_return_paths_only),
		cmocka_unit_test(inbound_size_limit),
		cmocka_unit_test(inbound_keeps_bare_line_ends),
		cmocka_unit_test(inbound_refused_recipients_close_the_session),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
