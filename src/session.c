/* Sessions: a random token in an HttpOnly cookie, stored only as its hash; the CSRF token
 * is derived from it, so it needs no storage and cannot be guessed without the cookie.
 * Failed password checks count toward a lockout per user. */
#include "session.h"

#include "addr.h"
#include "audit.h"
#include "util.h"

static enum err store_err(int rc)
{
	return rc == STORE_OK ? ERR_OK : ERR_STORE_UNAVAILABLE;
}

enum err session_password_check(struct store *s, const struct store_user *u, const char *password,
				const char *ip)
{
	int64_t now = util_now();
	int failures;

	if (store_login_attempt(s, u->id, now, now - SESSION_LOCKOUT_WINDOW,
				SESSION_LOCKOUT_FAILURES, &failures) != STORE_OK)
		return ERR_STORE_UNAVAILABLE;
	/* Locked users are refused, the right password included, after the same argon2id
	 * time as anyone else, so the answer's timing tells nothing more than its code. */
	if (failures >= SESSION_LOCKOUT_FAILURES) {
		auth_password_burn(password);
		return ERR_TOO_MANY_ATTEMPTS;
	}
	if (auth_password_verify(u->password_hash, password))
		return store_err(store_login_failures_clear(s, u->id));
	audit_record(s, u->account_id, u->email, "password.failed", u->email, ip, NULL);
	if (failures + 1 >= SESSION_LOCKOUT_FAILURES)
		audit_record(s, u->account_id, u->email, "user.locked_out", u->email, ip,
			     "%d failed password checks within %d minutes",
			     SESSION_LOCKOUT_FAILURES, SESSION_LOCKOUT_WINDOW / 60);
	return ERR_INVALID_CREDENTIALS;
}

enum err session_login(struct store *s, const char *email, const char *password, const char *ip,
		       struct session_new *out)
{
	char norm[ADDR_MAX], hash[AUTH_HASH_HEX];
	const char *why;
	struct store_user u;
	int rc;

	if (addr_normalize(email, norm, &why) < 0) {
		auth_password_burn(password);
		return ERR_INVALID_CREDENTIALS;
	}
	rc = store_user_by_email(s, norm, &u);
	if (rc == STORE_NOT_FOUND) {
		auth_password_burn(password);
		return ERR_INVALID_CREDENTIALS;
	}
	if (rc != STORE_OK)
		return ERR_STORE_UNAVAILABLE;
	enum err e = session_password_check(s, &u, password, ip);
	if (e != ERR_OK)
		return e;

	/* A fresh token at every login, so a cookie planted before login is worthless. */
	int64_t now = util_now();
	auth_token_new(out->token);
	auth_token_hash(out->token, hash);
	if (store_session_create(s, hash, u.id, now, now + SESSION_TTL) != STORE_OK ||
	    store_session_get(s, hash, now, &out->who) != STORE_OK)
		return ERR_STORE_UNAVAILABLE;
	session_csrf(out->token, out->csrf);
	audit_record(s, u.account_id, u.email, "session.login", u.email, ip, NULL);
	return ERR_OK;
}

enum err session_resume(struct store *s, const char *token, struct store_session *out)
{
	char hash[AUTH_HASH_HEX];

	if (!token || !auth_token_wellformed(token, AUTH_TOKEN_LEN - 1))
		return ERR_NOT_AUTHENTICATED;
	auth_token_hash(token, hash);
	int rc = store_session_get(s, hash, util_now(), out);
	if (rc == STORE_NOT_FOUND)
		return ERR_NOT_AUTHENTICATED;
	return store_err(rc);
}

enum err session_logout(struct store *s, const char *token)
{
	char hash[AUTH_HASH_HEX];
	auth_token_hash(token, hash);
	return store_err(store_session_delete(s, hash));
}

void session_csrf(const char *token, char out[AUTH_TOKEN_LEN])
{
	auth_token_derive("postern csrf v1", token, out);
}
