/* SMTP's protocol as a pure state machine (RFC 5321, 6409, 3207, 4954, 2920): command
 * lines in, replies and actions out; submission, or the return path's inbound mode. Each command is
 * one row of a table: what it needs (a greeting, no transaction) is checked there, then its handler
 * proceeds. DATA goes through a decoder that undoes dot-stuffing, ends only at CRLF.CRLF and notes
 * any bare CR or LF, so a message smuggled behind a lone LF is refused rather than split (a report
 * at the inbound listener is kept: it is never relayed). */
#include "smtp_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* The DATA decoder's states. */
enum {
	DATA_LINE_START, /* after CRLF (or at the start) */
	DATA_MID,	 /* inside a line */
	DATA_CR,	 /* after a CR */
	DATA_DOT,	 /* after a dot at the start of a line */
	DATA_DOT_CR,	 /* after CR following that dot */
	DATA_END,
};

void smtp_reply(GString *out, int code, const char *enhanced, const char *text)
{
	if (enhanced)
		g_string_append_printf(out, "%d %s %s\r\n", code, enhanced, text);
	else
		g_string_append_printf(out, "%d %s\r\n", code, text);
}

static void reply_raw(struct smtp_session *s, const char *reply)
{
	g_string_append(s->out, reply);
	g_string_append(s->out, "\r\n");
}

/* Buffers a large transaction grew past this are given back at its end: an idle session
 * would otherwise keep up to max_size. */
#define SMTP_KEEP_MAX (64 * 1024)

static void reset_transaction(struct smtp_session *s)
{
	s->mail_from[0] = '\0';
	s->nrcpts = 0;
	if (s->body->allocated_len > SMTP_KEEP_MAX) {
		g_string_free(s->body, TRUE);
		s->body = g_string_new(NULL);
	} else {
		g_string_truncate(s->body, 0);
	}
	if ((size_t)s->rcpts_cap * sizeof(*s->rcpts) > SMTP_KEEP_MAX) {
		free(s->rcpts);
		s->rcpts = NULL;
		s->rcpts_cap = 0;
	}
	s->data_bare = false;
	s->data_too_big = false;
	if (s->state != SMTP_S_INIT && s->state != SMTP_S_CLOSED)
		s->state = SMTP_S_READY;
}

static void wipe_credentials(struct smtp_session *s)
{
	explicit_bzero(s->user, sizeof(s->user));
	explicit_bzero(s->pass, sizeof(s->pass));
}

struct smtp_session *smtp_session_new(const struct smtp_limits *lim, bool tls)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	s->lim = lim;
	s->tls = tls;
	s->out = g_string_new(NULL);
	s->body = g_string_new(NULL);
	char greeting[300];
	snprintf(greeting, sizeof(greeting), "%s ESMTP Postern", lim->hostname);
	smtp_reply(s->out, 220, NULL, greeting);
	return s;
}

void smtp_session_free(struct smtp_session *s)
{
	if (!s)
		return;
	wipe_credentials(s);
	explicit_bzero(s->line, sizeof(s->line));
	g_string_free(s->out, TRUE);
	g_string_free(s->body, TRUE);
	free(s->rcpts);
	free(s);
}

static bool in_transaction(const struct smtp_session *s)
{
	return s->state == SMTP_S_MAIL || s->state == SMTP_S_RCPT;
}

static bool auth_offered(const struct smtp_session *s)
{
	return !s->lim->inbound && (s->tls || s->lim->auth_without_tls);
}

/* ---- Commands ---- */

static void cmd_ehlo(struct smtp_session *s, const char *arg)
{
	if (!*arg)
		return smtp_reply(s->out, 501, "5.5.4", "Syntax: EHLO hostname");
	reset_transaction(s);
	s->state = SMTP_S_READY;
	g_string_append_printf(s->out, "250-%s\r\n250-PIPELINING\r\n250-SIZE %zu\r\n",
			       s->lim->hostname, s->lim->max_size);
	g_string_append(s->out, "250-8BITMIME\r\n250-SMTPUTF8\r\n");
	if (s->lim->tls_available && !s->tls)
		g_string_append(s->out, "250-STARTTLS\r\n");
	if (auth_offered(s))
		g_string_append(s->out, "250-AUTH PLAIN LOGIN\r\n");
	g_string_append(s->out, "250 ENHANCEDSTATUSCODES\r\n");
}

static void cmd_helo(struct smtp_session *s, const char *arg)
{
	if (!*arg)
		return smtp_reply(s->out, 501, "5.5.4", "Syntax: HELO hostname");
	reset_transaction(s);
	s->state = SMTP_S_READY;
	smtp_reply(s->out, 250, NULL, s->lim->hostname);
}

static void cmd_starttls(struct smtp_session *s, const char *arg)
{
	if (!s->lim->tls_available || s->tls)
		return smtp_reply(s->out, 502, "5.5.1", "STARTTLS not available");
	if (*arg)
		return smtp_reply(s->out, 501, "5.5.4", "Syntax: STARTTLS");
	smtp_reply(s->out, 220, "2.0.0", "Ready to start TLS");
	s->action = SMTP_ACT_STARTTLS;
}

/* Decodes base64 text into out (NUL-terminated, at most n-1 bytes). -1 when it is not
 * base64 or too long. */
static int b64_decode(const char *text, char *out, size_t n, size_t *len)
{
	size_t tl = strlen(text);
	if (strcmp(text, "=") == 0) { /* RFC 4954: an empty initial response */
		out[0] = '\0';
		*len = 0;
		return 0;
	}
	if (tl == 0 || tl % 4 ||
	    strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != tl)
		return -1;
	gsize dl;
	guchar *d = g_base64_decode(text, &dl);
	if (!d || dl >= n) {
		g_free(d);
		return -1;
	}
	memcpy(out, d, dl);
	out[dl] = '\0';
	explicit_bzero(d, dl);
	g_free(d);
	*len = dl;
	return 0;
}

static void auth_fail(struct smtp_session *s, int code, const char *enh, const char *text)
{
	wipe_credentials(s);
	s->state = SMTP_S_READY;
	smtp_reply(s->out, code, enh, text);
}

/* PLAIN's response: authzid NUL authcid NUL password (RFC 4616). */
static void auth_plain(struct smtp_session *s, const char *text)
{
	char buf[SMTP_USER_MAX + SMTP_PASS_MAX + 2];
	size_t len;
	if (b64_decode(text, buf, sizeof(buf), &len) < 0)
		return auth_fail(s, 501, "5.5.2", "Cannot decode the AUTH response");
	/* buf is NUL-terminated past len, so the three parts read as strings. */
	const char *user = memchr(buf, '\0', len);
	const char *pass = user ? user + strlen(user + 1) + 2 : NULL;
	bool ok = pass && pass <= buf + len && strlen(pass) == (size_t)(buf + len - pass) &&
		  util_copy(s->user, sizeof(s->user), user + 1) == 0 &&
		  util_copy(s->pass, sizeof(s->pass), pass) == 0;
	/* RFC 4616: an authorization identity other than the user would act as someone else,
	 * which no key may do. */
	bool as_self = ok && (buf[0] == '\0' || strcmp(buf, s->user) == 0);
	explicit_bzero(buf, sizeof(buf));
	if (!ok)
		return auth_fail(s, 501, "5.5.2", "Malformed AUTH PLAIN response");
	if (!as_self)
		return auth_fail(s, 535, "5.7.8",
				 "The authorization identity must be empty or the user name");
	s->state = SMTP_S_READY;
	s->action = SMTP_ACT_AUTH;
}

/* One LOGIN step: a base64 value without NUL into field. */
static bool auth_login_value(struct smtp_session *s, const char *text, char *field, size_t n)
{
	size_t len;
	if (b64_decode(text, field, n, &len) < 0 || strlen(field) != len) {
		auth_fail(s, 501, "5.5.2", "Cannot decode the AUTH response");
		return false;
	}
	return true;
}

#define LOGIN_USER_PROMPT "VXNlcm5hbWU6" /* "Username:" */
#define LOGIN_PASS_PROMPT "UGFzc3dvcmQ6" /* "Password:" */

static void cmd_auth(struct smtp_session *s, const char *arg)
{
	/* Reports come from any MTA, unauthenticated: there is nothing to log in to. */
	if (s->lim->inbound)
		return smtp_reply(s->out, 502, "5.5.1", "AUTH not available here");
	if (!auth_offered(s))
		return smtp_reply(s->out, 530, "5.7.0", "Must issue a STARTTLS command first");
	if (s->authenticated)
		return smtp_reply(s->out, 503, "5.5.1", "Already authenticated");
	if (in_transaction(s))
		return smtp_reply(s->out, 503, "5.5.1", "AUTH not allowed during a transaction");
	const char *sp = strchr(arg, ' ');
	size_t mlen = sp ? (size_t)(sp - arg) : strlen(arg);
	const char *initial = sp ? sp + 1 : NULL;
	if (mlen == 5 && strncasecmp(arg, "PLAIN", 5) == 0) {
		if (initial)
			return auth_plain(s, initial);
		s->state = SMTP_S_AUTH_PLAIN;
		return reply_raw(s, "334 ");
	}
	if (mlen == 5 && strncasecmp(arg, "LOGIN", 5) == 0) {
		if (!initial) {
			s->state = SMTP_S_AUTH_USER;
			return reply_raw(s, "334 " LOGIN_USER_PROMPT);
		}
		if (!auth_login_value(s, initial, s->user, sizeof(s->user)))
			return;
		s->state = SMTP_S_AUTH_PASS;
		return reply_raw(s, "334 " LOGIN_PASS_PROMPT);
	}
	if (!*arg)
		return smtp_reply(s->out, 501, "5.5.4", "Syntax: AUTH mechanism");
	smtp_reply(s->out, 504, "5.5.4", "Unrecognized authentication type");
}

/* A line answering a 334 challenge. "*" cancels (RFC 4954 4). */
static void auth_response(struct smtp_session *s, const char *line)
{
	if (strcmp(line, "*") == 0)
		return auth_fail(s, 501, "5.0.0", "Authentication cancelled");
	if (s->state == SMTP_S_AUTH_PLAIN)
		return auth_plain(s, line);
	if (s->state == SMTP_S_AUTH_USER) {
		if (!auth_login_value(s, line, s->user, sizeof(s->user)))
			return;
		s->state = SMTP_S_AUTH_PASS;
		return reply_raw(s, "334 " LOGIN_PASS_PROMPT);
	}
	if (!auth_login_value(s, line, s->pass, sizeof(s->pass)))
		return;
	s->state = SMTP_S_READY;
	s->action = SMTP_ACT_AUTH;
}

/* "FROM:" or "TO:" then <path>; rest gets what follows it. 0, or -1 on bad syntax. */
static int parse_path(const char *arg, const char *keyword, char *path, size_t n, const char **rest)
{
	size_t kl = strlen(keyword);
	if (strncasecmp(arg, keyword, kl) != 0)
		return -1;
	arg += kl;
	arg += strspn(arg, " "); /* some clients put a space after the colon */
	if (*arg != '<')
		return -1;
	const char *close = strchr(arg, '>');
	if (!close || (size_t)(close - arg - 1) >= n)
		return -1;
	memcpy(path, arg + 1, (size_t)(close - arg - 1));
	path[close - arg - 1] = '\0';
	if (close[1] && close[1] != ' ')
		return -1;
	*rest = close + 1 + strspn(close + 1, " ");
	return 0;
}

/* One MAIL parameter (RFC 1870, 6152, 6531, 4954). NULL when accepted, else the reply. */
static const char *mail_param(struct smtp_session *s, const char *p, char *reply, size_t n)
{
	if (strncasecmp(p, "SIZE=", 5) == 0) {
		char *end;
		unsigned long long size = strtoull(p + 5, &end, 10);
		if (end == p + 5 || *end)
			return "501 5.5.4 Malformed SIZE parameter";
		if (size > s->lim->max_size) {
			snprintf(reply, n, "552 5.3.4 Message size exceeds the limit of %zu bytes",
				 s->lim->max_size);
			return reply;
		}
		return NULL;
	}
	if (strcasecmp(p, "BODY=7BIT") == 0 || strcasecmp(p, "BODY=8BITMIME") == 0 ||
	    strcasecmp(p, "SMTPUTF8") == 0)
		return NULL;
	/* AUTH=<mailbox> from a relaying client: the session's credentials count, not it. */
	if (strncasecmp(p, "AUTH=", 5) == 0)
		return NULL;
	return "555 5.5.4 Unsupported MAIL parameter";
}

static void cmd_mail(struct smtp_session *s, const char *arg)
{
	char path[ADDR_MAX + 2], reply[128];
	const char *rest, *why;
	if (in_transaction(s))
		return smtp_reply(s->out, 503, "5.5.1", "Nested MAIL command");
	if (parse_path(arg, "FROM:", path, sizeof(path), &rest) < 0)
		return smtp_reply(s->out, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
	char params[SMTP_LINE_MAX];
	util_copy(params, sizeof(params), rest);
	for (char *save, *p = strtok_r(params, " ", &save); p; p = strtok_r(NULL, " ", &save)) {
		const char *bad = mail_param(s, p, reply, sizeof(reply));
		if (bad)
			return reply_raw(s, bad);
	}
	/* The null sender goes to the adapter too: an unauthenticated client hears 530 first,
	 * like any MAIL of its, and only then that <> cannot be authorized. */
	if (!path[0]) {
		s->mail_from[0] = '\0';
		s->action = SMTP_ACT_MAIL;
		return;
	}
	if (addr_normalize(path, s->mail_from, &why) == 0) {
		s->action = SMTP_ACT_MAIL;
		return;
	}
	/* A report is read whoever sent it: its sender is only recorded, as given. */
	if (!s->lim->inbound || util_copy(s->mail_from, sizeof(s->mail_from), path) < 0)
		return smtp_reply(s->out, 501, "5.1.7", "Bad sender address syntax");
	s->action = SMTP_ACT_MAIL;
}

/* Inbound: the listener takes reports for its return paths only, and never relays. A
 * return path's tag is short enough to be guessed online, so a session that tries too
 * many is closed. */
static void rcpt_refuse(struct smtp_session *s, const char *address)
{
	char text[ADDR_MAX + 40];
	if (++s->rcpt_refused > SMTP_INBOUND_REFUSED_MAX) {
		smtp_reply(s->out, 421, "4.7.0", "too many invalid return paths, closing");
		s->state = SMTP_S_CLOSED;
		s->action = SMTP_ACT_CLOSE;
		return;
	}
	snprintf(text, sizeof(text), "<%s>: no such return path here", address);
	smtp_reply(s->out, 550, "5.1.1", text);
}

static void cmd_rcpt(struct smtp_session *s, const char *arg)
{
	char path[ADDR_MAX + 2], norm[ADDR_MAX];
	const char *rest, *why;
	if (!in_transaction(s))
		return smtp_reply(s->out, 503, "5.5.1", "Need MAIL before RCPT");
	if (parse_path(arg, "TO:", path, sizeof(path), &rest) < 0 || *rest)
		return smtp_reply(s->out, 501, "5.5.4", "Syntax: RCPT TO:<address>");
	if (addr_normalize(path, norm, &why) < 0)
		return smtp_reply(s->out, 501, "5.1.3", "Bad recipient address syntax");
	if (s->lim->inbound && !s->lim->rcpt_ok(s->lim->rcpt_arg, norm))
		return rcpt_refuse(s, norm);
	if (s->nrcpts >= s->lim->max_recipients)
		return smtp_reply(s->out, 452, "4.5.3", "Too many recipients");
	if (s->nrcpts == s->rcpts_cap) {
		s->rcpts_cap = s->rcpts_cap ? s->rcpts_cap * 2 : 8;
		s->rcpts = xrealloc(s->rcpts, (size_t)s->rcpts_cap * sizeof(*s->rcpts));
	}
	memcpy(s->rcpts[s->nrcpts++], norm, sizeof(norm));
	s->state = SMTP_S_RCPT;
	smtp_reply(s->out, 250, "2.1.5", "Ok");
}

static void cmd_data(struct smtp_session *s, const char *arg)
{
	if (*arg)
		return smtp_reply(s->out, 501, "5.5.4", "Syntax: DATA");
	if (s->state != SMTP_S_RCPT)
		return smtp_reply(s->out, 503, "5.5.1", "Need RCPT before DATA");
	s->state = SMTP_S_DATA;
	s->data_state = DATA_LINE_START;
	smtp_reply(s->out, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

static void cmd_rset(struct smtp_session *s, const char *arg)
{
	(void)arg;
	reset_transaction(s);
	smtp_reply(s->out, 250, "2.0.0", "Ok");
}

static void cmd_noop(struct smtp_session *s, const char *arg)
{
	(void)arg;
	smtp_reply(s->out, 250, "2.0.0", "Ok");
}

static void cmd_vrfy(struct smtp_session *s, const char *arg)
{
	(void)arg;
	smtp_reply(s->out, 252, "2.5.0", "Cannot VRFY user, but will accept the message");
}

static void cmd_quit(struct smtp_session *s, const char *arg)
{
	(void)arg;
	smtp_reply(s->out, 221, "2.0.0", "Bye");
	s->state = SMTP_S_CLOSED;
	s->action = SMTP_ACT_CLOSE;
}

struct smtp_cmd {
	const char *name;
	void (*fn)(struct smtp_session *s, const char *arg);
	bool needs_greeting; /* EHLO or HELO first */
};

static const struct smtp_cmd smtp_cmds[] = {
	{"EHLO", cmd_ehlo, false}, {"HELO", cmd_helo, false}, {"STARTTLS", cmd_starttls, true},
	{"AUTH", cmd_auth, true},  {"MAIL", cmd_mail, true},  {"RCPT", cmd_rcpt, true},
	{"DATA", cmd_data, true},  {"RSET", cmd_rset, false}, {"NOOP", cmd_noop, false},
	{"VRFY", cmd_vrfy, false}, {"QUIT", cmd_quit, false},
};

static void command(struct smtp_session *s, char *line)
{
	size_t nl = strcspn(line, " ");
	const char *arg = line + nl + strspn(line + nl, " ");
	for (size_t i = 0; i < ARRAY_LEN(smtp_cmds); i++) {
		const struct smtp_cmd *c = &smtp_cmds[i];
		if (strlen(c->name) != nl || strncasecmp(line, c->name, nl) != 0)
			continue;
		if (c->needs_greeting && s->state == SMTP_S_INIT)
			return smtp_reply(s->out, 503, "5.5.1", "Send EHLO or HELO first");
		return c->fn(s, arg);
	}
	smtp_reply(s->out, 500, "5.5.2", "Command not recognized");
}

/* A complete line, CRLF (or LF) removed. */
static void line_done(struct smtp_session *s)
{
	s->line[s->line_len] = '\0';
	if (s->line_len && s->line[s->line_len - 1] == '\r')
		s->line[--s->line_len] = '\0';
	bool overflow = s->line_overflow;
	s->line_len = 0;
	s->line_overflow = false;
	bool auth = s->state == SMTP_S_AUTH_PLAIN || s->state == SMTP_S_AUTH_USER ||
		    s->state == SMTP_S_AUTH_PASS;
	if (overflow && auth)
		auth_fail(s, 500, "5.5.6", "Authentication exchange line is too long");
	else if (overflow)
		smtp_reply(s->out, 500, "5.5.6", "Line too long");
	else if (auth)
		auth_response(s, s->line);
	else
		command(s, s->line);
	if (auth) /* the line held a secret */
		explicit_bzero(s->line, sizeof(s->line));
}

static size_t line_limit(const struct smtp_session *s)
{
	bool auth = s->state == SMTP_S_AUTH_PLAIN || s->state == SMTP_S_AUTH_USER ||
		    s->state == SMTP_S_AUTH_PASS;
	return (auth ? SMTP_AUTH_LINE_MAX : SMTP_LINE_MAX) - 1; /* room for the NUL */
}

/* Command bytes up to and including one LF. Returns the bytes used. */
static size_t feed_line(struct smtp_session *s, const char *in, size_t len)
{
	const char *lf = memchr(in, '\n', len);
	size_t take = lf ? (size_t)(lf - in) : len;
	size_t limit = line_limit(s);
	if (!s->line_overflow && s->line_len + take <= limit) {
		memcpy(s->line + s->line_len, in, take);
		s->line_len += take;
	} else {
		s->line_overflow = true;
	}
	if (!lf)
		return len;
	line_done(s);
	return take + 1;
}

/* ---- DATA ---- */

static void body_add(struct smtp_session *s, const char *p, size_t n)
{
	if (s->data_too_big)
		return;
	if (s->body->len + n > s->lim->max_size) {
		/* Reading goes on to the end of DATA, then 552: the client is in step. */
		s->data_too_big = true;
		g_string_truncate(s->body, 0);
		return;
	}
	g_string_append_len(s->body, p, (gssize)n);
}

static void data_char(struct smtp_session *s, char c);

/* c after a CR that was not followed by LF: that CR was bare. */
static void data_bare_cr(struct smtp_session *s, char c)
{
	s->data_bare = true;
	body_add(s, "\r", 1);
	s->data_state = DATA_MID;
	data_char(s, c);
}

static void data_char(struct smtp_session *s, char c)
{
	switch (s->data_state) {
	case DATA_LINE_START:
		if (c == '.') {
			s->data_state = DATA_DOT;
			return;
		}
		s->data_state = DATA_MID;
		return data_char(s, c);
	case DATA_DOT:
		if (c == '\r') {
			s->data_state = DATA_DOT_CR;
			return;
		}
		/* RFC 5321 4.5.2: a leading dot is removed, whatever follows it. */
		s->data_state = DATA_MID;
		return data_char(s, c);
	case DATA_DOT_CR:
		if (c == '\n') {
			s->data_state = DATA_END;
			return;
		}
		return data_bare_cr(s, c);
	case DATA_CR:
		if (c == '\n') {
			body_add(s, "\r\n", 2);
			s->data_state = DATA_LINE_START;
			return;
		}
		return data_bare_cr(s, c);
	case DATA_MID:
		if (c == '\r') {
			s->data_state = DATA_CR;
			return;
		}
		if (c == '\n')
			s->data_bare = true; /* not a line end: only CRLF is */
		body_add(s, &c, 1);
		return;
	}
}

static void data_end(struct smtp_session *s)
{
	/* A report is never relayed: one from a sloppy MTA is kept as it came. */
	if (s->data_bare && !s->lim->inbound) {
		smtp_reply(s->out, 550, "5.5.2",
			   "Message refused: it holds a bare CR or LF; lines must end with CRLF");
		return reset_transaction(s);
	}
	if (s->data_too_big) {
		char text[100];
		snprintf(text, sizeof(text), "Message size exceeds the limit of %zu bytes",
			 s->lim->max_size);
		smtp_reply(s->out, 552, "5.3.4", text);
		return reset_transaction(s);
	}
	s->action = SMTP_ACT_SUBMIT;
}

/* How many bytes from p on need no look: neither CR nor LF. */
static size_t plain_run(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i] != '\r' && p[i] != '\n')
		i++;
	return i;
}

/* DATA bytes up to the end of the message. Returns the bytes used. */
static size_t feed_data(struct smtp_session *s, const char *in, size_t len)
{
	size_t i = 0;
	while (i < len && s->data_state != DATA_END) {
		/* Plain text runs in bulk; only CR, LF and a line's first dot need a look. */
		if (s->data_state == DATA_MID) {
			size_t run = plain_run(in + i, len - i);
			if (run) {
				body_add(s, in + i, run);
				i += run;
				continue;
			}
		}
		data_char(s, in[i++]);
	}
	if (s->data_state == DATA_END)
		data_end(s);
	return i;
}

size_t smtp_feed(struct smtp_session *s, const char *in, size_t len)
{
	size_t used = 0;
	while (used < len && s->action == SMTP_ACT_NONE && s->state != SMTP_S_CLOSED) {
		if (s->state == SMTP_S_DATA)
			used += feed_data(s, in + used, len - used);
		else
			used += feed_line(s, in + used, len - used);
	}
	return used;
}

void smtp_tls_started(struct smtp_session *s)
{
	/* RFC 3207 4.2: the client must start over; nothing from before TLS counts. */
	wipe_credentials(s);
	reset_transaction(s);
	s->state = SMTP_S_INIT;
	s->authenticated = false;
	s->tls = true;
	s->line_len = 0;
	s->line_overflow = false;
	s->action = SMTP_ACT_NONE;
	g_string_truncate(s->out, 0);
}

void smtp_auth_done(struct smtp_session *s, bool ok, const char *reply, bool close)
{
	wipe_credentials(s);
	s->authenticated = ok;
	reply_raw(s, reply);
	s->action = close ? SMTP_ACT_CLOSE : SMTP_ACT_NONE;
	if (close)
		s->state = SMTP_S_CLOSED;
}

void smtp_mail_done(struct smtp_session *s, bool ok, const char *reply)
{
	reply_raw(s, reply);
	s->action = SMTP_ACT_NONE;
	if (ok) {
		s->nrcpts = 0;
		s->state = SMTP_S_MAIL;
	} else {
		s->mail_from[0] = '\0';
	}
}

void smtp_submit_done(struct smtp_session *s, const char *reply, bool close)
{
	reply_raw(s, reply);
	s->action = close ? SMTP_ACT_CLOSE : SMTP_ACT_NONE;
	s->state = close ? SMTP_S_CLOSED : SMTP_S_READY;
	reset_transaction(s);
}
