/* POST, GET and DELETE /api/session: logging in and out of the management API. */
#include <stdio.h>

#include "api.h"
#include "audit.h"
#include "role.h"
#include "session.h"
#include "util.h"

static cJSON *session_json(const struct store_session *who, const char *csrf)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "user", api_user_json(&who->user));
	cJSON_AddItemToObject(o, "account", api_account_json(&who->account));
	/* What the role may do, from the one table (role.c), so the panel need not copy it. */
	cJSON *perms = cJSON_AddArrayToObject(o, "permissions");
	for (int p = PERM_NONE + 1; p < PERM_COUNT; p++)
		if (role_can(who->user.role, p))
			cJSON_AddItemToArray(perms, cJSON_CreateString(perm_name(p)));
	cJSON_AddStringToObject(o, "csrf_token", csrf);
	return o;
}

static void set_cookie(struct api_call *c, const char *value, bool expire)
{
	c->reply_header = "Set-Cookie";
	snprintf(c->reply_header_value, sizeof(c->reply_header_value),
		 "%s=%s; Path=/; HttpOnly; SameSite=Strict%s%s", SESSION_COOKIE, value,
		 expire ? "; Max-Age=0" : "", c->ctx->secure_cookies ? "; Secure" : "");
}

/* A refused password check says when to come back. */
static enum err retry_after(struct api_call *c, enum err e, int64_t seconds)
{
	if (seconds > 0 && (e == ERR_TOO_MANY_ATTEMPTS || e == ERR_BUSY)) {
		c->reply_header = "Retry-After";
		snprintf(c->reply_header_value, sizeof(c->reply_header_value), "%lld",
			 (long long)seconds);
	}
	return e;
}

enum err api_password_recheck(struct api_call *c, const char *password)
{
	int64_t wait = 0;
	/* A key has no password: what asks for one is for people (routes mark it too). */
	if (c->by_key)
		return ERR_INTERACTIVE_ONLY;
	enum err e = session_password_check(c->ctx->store, &c->who, password, c->req->ip, &wait);
	return retry_after(c, e, wait);
}

enum err api_setting_password(struct api_call *c, const char *password)
{
	if (!password || !*password)
		return api_invalid(c, "password",
				   "Enter your login password to change this setting.");
	enum err e = api_password_recheck(c, password);
	return e == ERR_INVALID_CREDENTIALS ? ERR_PASSWORD_INCORRECT : e;
}

enum err api_session_create(struct api_call *c)
{
	struct session_login l = {
		.account = api_body_string(c, "account"),
		.email = api_body_string(c, "email"),
		.password = api_body_string(c, "password"),
		.ip = c->req->ip,
	};
	struct session_new s;
	int64_t wait = 0;

	if (!l.email)
		return api_invalid(c, "email", NULL);
	if (!l.password)
		return api_invalid(c, "password", NULL);
	if (!l.account)
		return api_invalid(c, "account", "Name the account to log in to.");
	enum err e = session_login(c->ctx->store, &l, &s, &wait);
	if (e != ERR_OK)
		return retry_after(c, e, wait);
	c->req->account_id = s.who.account.id;
	set_cookie(c, s.token, false);
	c->reply = session_json(&s.who, s.csrf);
	return ERR_OK;
}

enum err api_session_get(struct api_call *c)
{
	char csrf[AUTH_TOKEN_LEN];
	session_csrf(c->session_token, csrf);
	c->reply = session_json(&c->who, csrf);
	return ERR_OK;
}

enum err api_session_delete(struct api_call *c)
{
	enum err e = session_logout(c->ctx->store, c->session_token);
	if (e != ERR_OK)
		return e;
	api_audit(c, "session.logout", c->who.user.email, NULL);
	set_cookie(c, "", true);
	return ERR_OK;
}
