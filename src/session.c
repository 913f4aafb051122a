/* Sessions: a random token in an HttpOnly cookie, stored only as its hash; the CSRF token
 * is derived from it, so it needs no storage and cannot be guessed without the cookie.
 * Failed password checks are throttled per email and client, never per user alone. */
#include "session.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "audit.h"
#include "log.h"
#include "net.h"
#include "util.h"

#define SESSION_CLIENT_FREE_FAILURES 50 /* per client, over every email it tries */

enum { THROTTLE_ADDRESS, THROTTLE_CLIENT, THROTTLE_COUNT };

/* What failed password checks count under. Per email (in its account) and client, so a
 * guesser elsewhere cannot lock a user out; per client alone, so one client cannot try
 * email after email. Keys are named whether or not the user exists. */
static const struct store_throttle throttles[THROTTLE_COUNT] = {
	[THROTTLE_ADDRESS] = {.free = SESSION_FREE_FAILURES,
			      .wait = SESSION_FIRST_WAIT,
			      .wait_max = SESSION_LONGEST_WAIT},
	[THROTTLE_CLIENT] = {.free = SESSION_CLIENT_FREE_FAILURES,
			     .wait = SESSION_FIRST_WAIT,
			     .wait_max = SESSION_LONGEST_WAIT},
};

static enum err store_err(int rc)
{
	return rc == STORE_OK ? ERR_OK : ERR_STORE_UNAVAILABLE;
}

/* The throttle keys of a check: hashes, so the table holds no email or address. Each part
 * goes in with its length, so no two different triples share a key. */
static void throttle_keys(const struct session_login *l, struct store_throttle t[THROTTLE_COUNT])
{
	char name[3 * 1100], client[INET6_ADDRSTRLEN];
	for (int i = 0; i < THROTTLE_COUNT; i++)
		t[i] = throttles[i];
	net_client_net(l->ip, client, sizeof(client));
	snprintf(name, sizeof(name), "address %zu:%s %zu:%s %zu:%s", strlen(l->account), l->account,
		 strlen(l->email), l->email, strlen(client), client);
	auth_token_hash(name, t[THROTTLE_ADDRESS].key);
	snprintf(name, sizeof(name), "client %zu:%s", strlen(client), client);
	auth_token_hash(name, t[THROTTLE_CLIENT].key);
}

/* The right password starts the email's count over; the client's loses only this check. */
static int succeeded(struct store *s, const struct store_throttle t[THROTTLE_COUNT])
{
	int rc = store_login_forgive(s, &t[THROTTLE_ADDRESS], true);
	if (rc == STORE_OK)
		rc = store_login_forgive(s, &t[THROTTLE_CLIENT], false);
	return rc;
}

/* The one password check, for logins and re-entries alike. u is NULL when there is no such
 * user: the same throttles, argon2id work and store writes, so the answer and its timing
 * tell nothing about which users exist. */
static enum err check(struct store *s, const struct session_login *l, const struct store_user *u,
		      int64_t *retry_after)
{
	struct store_throttle t[THROTTLE_COUNT];
	int failures[THROTTLE_COUNT];
	int64_t now = util_now();

	throttle_keys(l, t);
	if (store_login_attempt(s, t, THROTTLE_COUNT, now, now - SESSION_FORGET, failures,
				retry_after) != STORE_OK)
		return ERR_STORE_UNAVAILABLE;
	if (*retry_after > 0)
		return ERR_TOO_MANY_ATTEMPTS;
	switch (auth_password_check(u ? u->password_hash : NULL, l->password)) {
	case AUTH_MATCH:
		return store_err(succeeded(s, t));
	case AUTH_BUSY:
		/* Not held against the email; held against the client, so that a crowd of
		 * checks from one place is throttled like the failures it stands for. */
		*retry_after = SESSION_BUSY_RETRY;
		return store_login_forgive(s, &t[THROTTLE_ADDRESS], false) == STORE_OK
			       ? ERR_BUSY
			       : ERR_STORE_UNAVAILABLE;
	case AUTH_MISMATCH:
		break;
	}
	bool waits = failures[THROTTLE_ADDRESS] >= SESSION_FREE_FAILURES;
	if (!u) {
		/* No account to audit it in, and anyone may try: logged, not stored, so guesses
		 * cannot grow the database. One write all the same, as a user's audit row. */
		log_info("login failed: no user %s in account %s, ip=%s%s", l->email, l->account,
			 l->ip, waits ? "; the next try waits" : "");
		return store_login_failed(s, &t[THROTTLE_ADDRESS], now) == STORE_OK
			       ? ERR_INVALID_CREDENTIALS
			       : ERR_STORE_UNAVAILABLE;
	}
	audit_record(s, u->account_id, l->email, "password.failed", l->email, l->ip, NULL);
	if (waits)
		audit_record(s, u->account_id, l->email, "user.locked_out", l->email, l->ip,
			     "%d failed password checks from %s; the next one waits",
			     failures[THROTTLE_ADDRESS], l->ip);
	return ERR_INVALID_CREDENTIALS;
}

enum err session_password_check(struct store *s, const struct store_session *who,
				const char *password, const char *ip, int64_t *retry_after)
{
	struct session_login l = {who->account.name, who->user.email, password, ip};
	return check(s, &l, &who->user, retry_after);
}

enum err session_login(struct store *s, const struct session_login *l, struct session_new *out,
		       int64_t *retry_after)
{
	char norm[ADDR_MAX], hash[AUTH_HASH_HEX];
	const char *why;
	struct store_user u;

	/* A malformed email is looked up as typed: it matches no user, like an unknown one. */
	if (addr_normalize(l->email, norm, &why) < 0)
		util_copy(norm, sizeof(norm), l->email);
	struct session_login n = *l;
	n.email = norm;
	int rc = store_user_by_login(s, l->account, norm, &u);
	if (rc != STORE_OK && rc != STORE_NOT_FOUND)
		return ERR_STORE_UNAVAILABLE;
	enum err e = check(s, &n, rc == STORE_OK ? &u : NULL, retry_after);
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
	audit_record(s, u.account_id, u.email, "session.login", u.email, l->ip, NULL);
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
