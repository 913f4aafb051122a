/* Login sessions and password checks with their throttles. The HTTP layer only moves their
 * results into cookies and JSON. */
#ifndef POSTERN_SESSION_H
#define POSTERN_SESSION_H

#include "auth.h"
#include "err.h"
#include "store.h"

#define SESSION_COOKIE	      "postern_session"
#define SESSION_TTL	      (12 * 3600)
#define SESSION_FREE_FAILURES 5	 /* per email, account and client, before waits */
#define SESSION_FIRST_WAIT    60 /* seconds, doubled by each further failure */
#define SESSION_LONGEST_WAIT  3600
#define SESSION_FORGET	      (24 * 3600) /* failures older than this are forgotten */
#define SESSION_BUSY_RETRY    1		  /* Retry-After when every password check slot is busy */

/* Who logs in, from where: the account is named, as one email may be a user in several. */
struct session_login {
	const char *account;
	const char *email;
	const char *password;
	const char *ip;
};

struct session_new {
	char token[AUTH_TOKEN_LEN]; /* goes into the cookie, never stored */
	char csrf[AUTH_TOKEN_LEN];
	struct store_session who;
};

/* Checks the password of a logged-in user (a re-entry before a sensitive change), under
 * the same throttles and bound as a login. Returns ERR_OK, ERR_INVALID_CREDENTIALS,
 * ERR_TOO_MANY_ATTEMPTS or ERR_BUSY (with the seconds to wait in *retry_after), or
 * ERR_STORE_UNAVAILABLE. */
enum err session_password_check(struct store *s, const struct store_session *who,
				const char *password, const char *ip, int64_t *retry_after);
/* Logs in: checks account, email and password and creates a session. A wrong account,
 * an unknown email and a wrong password answer alike, after the same work. */
enum err session_login(struct store *s, const struct session_login *l, struct session_new *out,
		       int64_t *retry_after);
/* Finds the live session of a cookie token. ERR_NOT_AUTHENTICATED when there is none. */
enum err session_resume(struct store *s, const char *token, struct store_session *out);
enum err session_logout(struct store *s, const char *token);
/* The CSRF token of a session, derived from its cookie token. */
void session_csrf(const char *token, char out[AUTH_TOKEN_LEN]);

#endif
