/* Login sessions and password checks with lockout. The HTTP layer only moves their
 * results into cookies and JSON. */
#ifndef POSTERN_SESSION_H
#define POSTERN_SESSION_H

#include "auth.h"
#include "err.h"
#include "store.h"

#define SESSION_COOKIE		 "postern_session"
#define SESSION_TTL		 (12 * 3600)
#define SESSION_LOCKOUT_WINDOW	 (15 * 60)
#define SESSION_LOCKOUT_FAILURES 5

struct session_new {
	char token[AUTH_TOKEN_LEN]; /* goes into the cookie, never stored */
	char csrf[AUTH_TOKEN_LEN];
	struct store_session who;
};

/* Checks a user's password, counting failures toward the lockout. Returns ERR_OK,
 * ERR_INVALID_CREDENTIALS, ERR_TOO_MANY_ATTEMPTS or ERR_STORE_UNAVAILABLE. */
enum err session_password_check(struct store *s, const struct store_user *u, const char *password,
				const char *ip);
/* Logs in: checks email and password and creates a session. */
enum err session_login(struct store *s, const char *email, const char *password, const char *ip,
		       struct session_new *out);
/* Finds the live session of a cookie token. ERR_NOT_AUTHENTICATED when there is none. */
enum err session_resume(struct store *s, const char *token, struct store_session *out);
enum err session_logout(struct store *s, const char *token);
/* The CSRF token of a session, derived from its cookie token. */
void session_csrf(const char *token, char out[AUTH_TOKEN_LEN]);

#endif
