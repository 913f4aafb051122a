/* SMTP's protocol, pure: no I/O, no clock; submission, or the inbound mode of the return
 * path's listener. The adapter (smtpd.c) feeds it the
 * bytes a client sent; it parses commands, keeps the session's state, decodes DATA and
 * writes replies into an output buffer, and stops at each step that needs the outside
 * world (an action: start TLS, check credentials, judge the envelope sender, submit the
 * message, close). The adapter performs it and reports back with an smtp_*_done call. */
#ifndef POSTERN_SMTP_PROTO_H
#define POSTERN_SMTP_PROTO_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

#include "addr.h"

#define SMTP_LINE_MAX	   512	 /* a command line with its CRLF (RFC 5321 4.5.3.1.4) */
#define SMTP_AUTH_LINE_MAX 12288 /* an AUTH response line (RFC 4954 4) */
#define SMTP_USER_MAX	   256
#define SMTP_PASS_MAX	   256
/* Inbound: refused recipients one session may try; the next one closes it (421). */
#define SMTP_INBOUND_REFUSED_MAX 5

struct smtp_limits {
	const char *hostname; /* greeting and EHLO */
	size_t max_size;      /* bytes of one message, advertised with SIZE */
	int max_recipients;
	bool tls_available;    /* a certificate is configured: STARTTLS can be offered */
	bool auth_without_tls; /* AUTH offered and accepted on a plaintext connection */
	/* Inbound mode (the return path's listener): no AUTH, any sender (the null one
	 * included), and only recipients rcpt_ok accepts; the rest hear 550 5.1.1, and
	 * after SMTP_INBOUND_REFUSED_MAX of them the session ends with 421 4.7.0. A bare
	 * CR or LF in DATA is accepted (a report is never relayed). */
	bool inbound;
	bool (*rcpt_ok)(void *arg, const char *address); /* pure: no I/O */
	void *rcpt_arg;
};

enum smtp_action {
	SMTP_ACT_NONE,	   /* go on feeding */
	SMTP_ACT_STARTTLS, /* flush the output, forget unread input, start TLS, smtp_tls_started */
	SMTP_ACT_AUTH,	   /* check user and password, then smtp_auth_done */
	SMTP_ACT_MAIL,	   /* judge mail_from ("" for the null sender), then smtp_mail_done */
	SMTP_ACT_SUBMIT,   /* submit the envelope and body, then smtp_submit_done */
	SMTP_ACT_CLOSE,	   /* flush the output, then close */
};

enum smtp_state {
	SMTP_S_INIT,	   /* before EHLO or HELO */
	SMTP_S_READY,	   /* greeted, no transaction */
	SMTP_S_MAIL,	   /* MAIL accepted */
	SMTP_S_RCPT,	   /* at least one RCPT accepted */
	SMTP_S_DATA,	   /* reading the message */
	SMTP_S_AUTH_PLAIN, /* waiting for PLAIN's response */
	SMTP_S_AUTH_USER,  /* LOGIN: waiting for the user name */
	SMTP_S_AUTH_PASS,  /* LOGIN: waiting for the password */
	SMTP_S_CLOSED,
};

struct smtp_session {
	const struct smtp_limits *lim;
	enum smtp_state state;
	enum smtp_action action; /* pending: feeding stops until it is done */
	bool tls;		 /* the connection is encrypted */
	bool authenticated;
	GString *out; /* replies not yet written */

	/* The command line being assembled. */
	char line[SMTP_AUTH_LINE_MAX];
	size_t line_len;
	bool line_overflow;

	/* AUTH: what the adapter checks (wiped by smtp_auth_done). */
	char user[SMTP_USER_MAX];
	char pass[SMTP_PASS_MAX];

	/* The transaction. */
	char mail_from[ADDR_MAX];
	char (*rcpts)[ADDR_MAX];
	int nrcpts, rcpts_cap;
	GString *body; /* dot-stuffing undone, CRLF line ends */
	int data_state;
	bool data_bare; /* a CR or LF that is not part of a CRLF */
	bool data_too_big;
	int rcpt_refused; /* inbound: recipients refused in this session */
};

/* A session with the greeting in its output. tls: the connection is TLS from the start. */
struct smtp_session *smtp_session_new(const struct smtp_limits *lim, bool tls);
void smtp_session_free(struct smtp_session *s);

/* Consumes bytes of in up to the first action (or all of them); returns how many. Replies
 * accumulate in s->out. While s->action is not SMTP_ACT_NONE it consumes nothing. */
size_t smtp_feed(struct smtp_session *s, const char *in, size_t len);

/* TLS is up after SMTP_ACT_STARTTLS: everything said before is forgotten. */
void smtp_tls_started(struct smtp_session *s);
/* The verdicts on the pending action; reply is the full reply ("235 2.7.0 ..."), without
 * CRLF. close: the adapter closes the connection after it (SMTP_ACT_CLOSE follows). */
void smtp_auth_done(struct smtp_session *s, bool ok, const char *reply, bool close);
void smtp_mail_done(struct smtp_session *s, bool ok, const char *reply);
void smtp_submit_done(struct smtp_session *s, const char *reply, bool close);

/* Appends one reply: code, enhanced status (or NULL) and text, CRLF-terminated. */
void smtp_reply(GString *out, int code, const char *enhanced, const char *text);

#endif
