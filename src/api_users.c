/* Users of the caller's account (GET/POST /api/users, PATCH/DELETE /api/users/{id}).
 * Admin only; an account always keeps at least one Admin. */
#include "api.h"
#include "session.h"
#include "users.h"
#include "util.h"

static cJSON *user_json(const struct store_user *u)
{
	cJSON *o = api_user_json(u);
	api_add_time(o, "created_at", u->created_at);
	return o;
}

static int add_user(void *arg, const struct store_user *u)
{
	cJSON_AddItemToArray(arg, user_json(u));
	return 0;
}

enum err api_users_list(struct api_call *c)
{
	cJSON *list = cJSON_CreateArray();
	return api_reply_list(c, "users", list,
			      store_users_list(c->ctx->store, c->who.account.id, add_user, list));
}

static enum err body_role(struct api_call *c, enum role *out)
{
	const char *role = api_body_string(c, "role");
	int r = role ? role_parse(role) : -1;
	if (r < 0)
		return api_invalid(c, "role",
				   "role must be admin, technical, analytics or marketing.");
	*out = (enum role)r;
	return ERR_OK;
}

enum err api_users_add(struct api_call *c)
{
	const char *email = api_body_string(c, "email");
	const char *password = api_body_string(c, "password");
	struct actor who = api_actor(c);
	char norm[ADDR_MAX], hash[AUTH_PWHASH_LEN];
	struct store_user u;
	enum role role = ROLE_MARKETING;
	const char *why;

	if (!email || addr_normalize(email, norm, &why) < 0)
		return api_invalid(c, "email", email ? why : NULL);
	enum err e = body_role(c, &role);
	if (e != ERR_OK)
		return e;
	if (!password || !auth_password_acceptable(password))
		return api_invalid(c, "password", "The password must be 8 to 1024 characters.");
	if (auth_password_hash(password, hash) < 0)
		return ERR_INTERNAL;
	e = api_store_err(
		users_create(c->ctx->store, &who, c->who.account.id, norm, hash, role, &u));
	if (e == ERR_ALREADY_EXISTS) {
		util_copy(c->err_field, sizeof(c->err_field), "email");
		util_copy(c->err_message, sizeof(c->err_message),
			  "This account already has a user with this email.");
	}
	if (e != ERR_OK)
		return e;
	c->status = 201;
	c->reply = user_json(&u);
	return ERR_OK;
}

enum err api_user_patch(struct api_call *c)
{
	struct actor who = api_actor(c);
	struct store_user u;
	enum role role = ROLE_MARKETING;
	int64_t id = api_param_id(c);

	if (id < 0)
		return ERR_NOT_FOUND;
	enum err e = body_role(c, &role);
	if (e == ERR_OK)
		e = api_store_err(
			users_set_role(c->ctx->store, &who, c->who.account.id, id, role, &u));
	if (e == ERR_OK)
		c->reply = user_json(&u);
	return e;
}

enum err api_user_delete(struct api_call *c)
{
	struct actor who = api_actor(c);
	int64_t id = api_param_id(c);
	if (id < 0)
		return ERR_NOT_FOUND;
	return api_store_err(users_remove(c->ctx->store, &who, c->who.account.id, id));
}

/* PUT /api/users/me/password: any user, for their own password. The current password is
 * checked like a login (it counts toward the same throttles); every other session ends. */
enum err api_user_password(struct api_call *c)
{
	const char *current = api_body_string(c, "current_password");
	const char *next = api_body_string(c, "new_password");
	struct actor who = api_actor(c);
	char hash[AUTH_PWHASH_LEN], keep[AUTH_HASH_HEX];

	if (!current || !*current)
		return api_invalid(c, "current_password", "Enter your current password.");
	if (!next || !auth_password_acceptable(next))
		return api_invalid(c, "new_password",
				   "The new password must be 8 to 1024 characters.");
	enum err e = api_password_recheck(c, current);
	if (e == ERR_INVALID_CREDENTIALS)
		return ERR_PASSWORD_INCORRECT;
	if (e != ERR_OK)
		return e;
	if (auth_password_hash(next, hash) < 0)
		return ERR_INTERNAL;
	auth_token_hash(c->session_token, keep);
	return api_store_err(
		users_set_password(c->ctx->store, &who, c->who.account.id, hash, keep));
}
