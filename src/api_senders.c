/* Authorized sender email IDs: the password-confirmed switch and the sender list
 * (GET/PUT /api/settings/sender-auth, /api/senders...). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "senders.h"
#include "session.h"
#include "util.h"

#define SENDERS_PER_CALL 500

static enum err sender_auth_reply(struct api_call *c, bool warn_if_empty)
{
	struct store_sender_auth sa;
	if (store_sender_auth_get(c->ctx->store, c->who.account.id, &sa) != STORE_OK)
		return ERR_STORE_UNAVAILABLE;
	c->reply = cJSON_CreateObject();
	cJSON_AddBoolToObject(c->reply, "enabled", sa.enabled);
	cJSON_AddStringToObject(c->reply, "mode",
				policy_mode_name(policy_mode_of(sa.enabled, sa.monitor)));
	cJSON_AddNumberToObject(c->reply, "verified", sa.verified);
	cJSON_AddNumberToObject(c->reply, "pending", sa.pending);
	if (warn_if_empty && sa.enabled && sa.verified == 0)
		cJSON_AddStringToObject(c->reply, "warning", "no_authorized_senders");
	return ERR_OK;
}

enum err api_sender_auth_get(struct api_call *c)
{
	return sender_auth_reply(c, false);
}

/* The mode asked for: {"mode": "off"|"monitor"|"on"}, or the older {"enabled": bool}
 * meaning on or off. -1 (with the refusal set) when neither is well formed. */
static int wanted_mode(struct api_call *c, enum err *e)
{
	static const char *const fields[] = {"mode", "enabled", "password", NULL};
	const cJSON *mode = c->body ? cJSON_GetObjectItemCaseSensitive(c->body, "mode") : NULL;
	const cJSON *enabled =
		c->body ? cJSON_GetObjectItemCaseSensitive(c->body, "enabled") : NULL;
	if ((*e = api_only_fields(c, fields)) != ERR_OK)
		return -1;
	if (mode && enabled) {
		*e = api_invalid(c, "mode", "Send mode or enabled, not both.");
		return -1;
	}
	if (mode) {
		int m = policy_mode_parse(cJSON_GetStringValue(mode));
		if (m < 0)
			*e = api_invalid(c, "mode", "mode must be \"off\", \"monitor\" or \"on\".");
		return m;
	}
	if (!cJSON_IsBool(enabled)) {
		*e = api_invalid(
			c, "enabled",
			"enabled must be true or false (or send mode: off, monitor or on).");
		return -1;
	}
	return cJSON_IsTrue(enabled) ? POLICY_MODE_ON : POLICY_MODE_OFF;
}

enum err api_sender_auth_put(struct api_call *c)
{
	enum err e = ERR_OK;
	int mode = wanted_mode(c, &e);
	const char *password = api_body_string(c, "password");

	if (mode < 0)
		return e;
	struct actor who = api_actor(c);
	e = api_setting_password(c, password);
	if (e == ERR_PASSWORD_INCORRECT)
		senders_switch_refused(c->ctx->store, &who, c->who.account.id,
				       (enum policy_mode)mode);
	if (e != ERR_OK)
		return e;
	if (senders_switch(c->ctx->store, &who, c->who.account.id, (enum policy_mode)mode) !=
	    STORE_OK)
		return ERR_STORE_UNAVAILABLE;
	return sender_auth_reply(c, mode == POLICY_MODE_ON);
}

static void add_or_null(cJSON *o, const char *name, const char *text)
{
	if (text[0])
		cJSON_AddStringToObject(o, name, text);
	else
		cJSON_AddNullToObject(o, name);
}

/* The halves a pending sender still waits for, under its account's mode. */
static void add_waiting_for(cJSON *o, const struct store_sender *s)
{
	cJSON *w = cJSON_AddArrayToObject(o, "waiting_for");
	if (s->verified)
		return;
	if (strcmp(s->confirmation, "owner") != 0 && !s->admin_verified_at)
		cJSON_AddItemToArray(w, cJSON_CreateString("admin"));
	if (strcmp(s->confirmation, "admin") != 0 && !s->owner_confirmed_at)
		cJSON_AddItemToArray(w, cJSON_CreateString("owner"));
}

cJSON *api_sender_json(const struct store_sender *s)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)s->id);
	cJSON_AddStringToObject(o, "address", s->address);
	cJSON_AddStringToObject(o, "status", s->verified ? "verified" : "pending");
	if (s->domain_status[0]) {
		cJSON *d = cJSON_AddObjectToObject(o, "domain");
		cJSON_AddStringToObject(d, "name", s->domain);
		cJSON_AddStringToObject(d, "status", s->domain_status);
		cJSON_AddBoolToObject(d, "active", s->domain_active);
	} else {
		cJSON_AddNullToObject(o, "domain");
	}
	add_or_null(o, "added_by", s->added_by);
	api_add_time(o, "added_at", s->added_at);
	add_or_null(o, "verified_by", s->verified_by);
	api_add_time(o, "verified_at", s->verified_at);
	add_or_null(o, "verified_via", s->verified_via);
	api_add_time(o, "admin_verified_at", s->admin_verified_at);
	api_add_time(o, "owner_confirmed_at", s->owner_confirmed_at);
	api_add_time(o, "confirmation_sent_at", s->confirmation_sent_at);
	add_waiting_for(o, s);
	return o;
}

static int add_sender(void *arg, const struct store_sender *s)
{
	cJSON_AddItemToArray(arg, api_sender_json(s));
	return 0;
}

enum err api_senders_list(struct api_call *c)
{
	cJSON *list = cJSON_CreateArray();
	return api_reply_list(
		c, "senders", list,
		store_senders_list(c->ctx->store, c->who.account.id, add_sender, list));
}

static void reject(cJSON *rejected, const char *address, const char *code, const char *message)
{
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "address", address);
	cJSON_AddStringToObject(r, "code", code);
	cJSON_AddStringToObject(r, "message", message);
	cJSON_AddItemToArray(rejected, r);
}

/* Normalizes the requested addresses into norm[], answering the invalid ones and repeats
 * within the request in rejected. Returns how many are left to store. */
static size_t collect(const cJSON *list, char (*norm)[ADDR_MAX], const char **given,
		      cJSON *rejected)
{
	size_t n = 0;
	const cJSON *a;
	cJSON_ArrayForEach(a, list)
	{
		const char *why;
		const char *text = cJSON_IsString(a) ? a->valuestring : "";
		if (!cJSON_IsString(a) || addr_normalize(text, norm[n], &why) < 0) {
			reject(rejected, text, "invalid_address",
			       cJSON_IsString(a) ? why : "Each address must be a string.");
			continue;
		}
		bool repeat = false;
		for (size_t i = 0; i < n && !repeat; i++)
			repeat = strcmp(norm[i], norm[n]) == 0;
		if (repeat) {
			reject(rejected, text, "already_exists",
			       "This address appears more than once in the request.");
			continue;
		}
		given[n++] = text;
	}
	return n;
}

/* Which emails adding senders sent, by the account's confirmation mode: the Admins' (none in
 * mode owner), and in modes owner and both each address's own link. */
static void reply_mails(struct api_call *c, int64_t wait)
{
	char mode[STORE_CONFIRM_MODE_MAX];
	if (store_confirmation_get(c->ctx->store, c->who.account.id, mode) != STORE_OK)
		strcpy(mode, "admin");
	if (strcmp(mode, "owner") != 0) {
		cJSON *mail = cJSON_AddObjectToObject(c->reply, "verification_email");
		cJSON_AddBoolToObject(mail, "sent", !wait);
		if (wait)
			cJSON_AddNumberToObject(mail, "retry_after", (double)wait);
	}
	if (strcmp(mode, "admin") != 0)
		cJSON_AddBoolToObject(cJSON_AddObjectToObject(c->reply, "confirmation_email"),
				      "sent", true);
}

/* What became of the added addresses: each one added or rejected, and whether the
 * verification email went. */
static void reply_added(struct api_call *c, char (*norm)[ADDR_MAX], const char **given,
			const int64_t *ids, size_t n, int64_t wait, cJSON *rejected)
{
	cJSON *added = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		if (!ids[i]) {
			reject(rejected, given[i], "already_exists",
			       "This address is already in the list.");
			continue;
		}
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "id", (double)ids[i]);
		cJSON_AddStringToObject(o, "address", norm[i]);
		cJSON_AddStringToObject(o, "status", "pending");
		cJSON_AddItemToArray(added, o);
	}
	c->status = 201;
	c->reply = cJSON_CreateObject();
	cJSON_AddItemToObject(c->reply, "added", added);
	cJSON_AddItemToObject(c->reply, "rejected", rejected);
	/* Too soon after the last email, the addresses wait for the next one, which
	 * POST /api/senders/verification-email sends once the minute is over. */
	if (cJSON_GetArraySize(added))
		reply_mails(c, wait);
}

enum err api_senders_add(struct api_call *c)
{
	const cJSON *list = c->body ? cJSON_GetObjectItemCaseSensitive(c->body, "addresses") : NULL;
	int count = cJSON_GetArraySize(list);
	struct actor who = api_actor(c);
	int64_t wait;

	if (!cJSON_IsArray(list) || count < 1 || count > SENDERS_PER_CALL)
		return api_invalid(c, "addresses", "Give a list of 1 to 500 email addresses.");
	char(*norm)[ADDR_MAX] = xcalloc((size_t)count, ADDR_MAX);
	const char **given = xcalloc((size_t)count, sizeof(*given));
	const char **ptrs = xcalloc((size_t)count, sizeof(*ptrs));
	int64_t *ids = xcalloc((size_t)count, sizeof(*ids));
	cJSON *rejected = cJSON_CreateArray();
	size_t n = collect(list, norm, given, rejected);

	for (size_t i = 0; i < n; i++)
		ptrs[i] = norm[i];
	enum err e = api_store_err(senders_add(c->ctx->store, c->ctx->queue, c->ctx->cfg, &who,
					       &c->who.account, ptrs, n, ids, &wait));
	if (e == ERR_OK)
		reply_added(c, norm, given, ids, n, wait, rejected);
	else
		cJSON_Delete(rejected);
	free(norm);
	free(given);
	free(ptrs);
	free(ids);
	return e;
}

enum err api_senders_resend(struct api_call *c)
{
	struct actor who = api_actor(c);
	struct senders_batch b;
	int rc = senders_resend(c->ctx->store, c->ctx->queue, c->ctx->cfg, &who, &c->who.account,
				&b);
	enum err e = rc == STORE_CONFLICT ? ERR_OWNER_CONFIRMATION_REQUIRED : api_store_err(rc);
	if (e == ERR_NOT_FOUND)
		e = ERR_NO_PENDING_SENDERS;
	if (e == ERR_RATE_LIMITED) {
		c->reply_header = "Retry-After";
		snprintf(c->reply_header_value, sizeof(c->reply_header_value), "%lld",
			 (long long)b.wait);
		snprintf(c->err_message, sizeof(c->err_message),
			 "A verification email went to the Admins less than a minute ago. Wait "
			 "%lld seconds before sending another.",
			 (long long)b.wait);
	}
	if (e == ERR_OK) {
		cJSON *addresses = cJSON_CreateArray();
		for (size_t i = 0; i < b.n; i++)
			cJSON_AddItemToArray(addresses, cJSON_CreateString(b.addresses[i]));
		c->reply = cJSON_CreateObject();
		cJSON_AddItemToObject(c->reply, "addresses", addresses);
		api_add_time(c->reply, "expires_at", b.expires_at);
	}
	senders_batch_free(&b);
	return e;
}

enum err api_sender_verify(struct api_call *c)
{
	struct actor who = api_actor(c);
	struct store_sender s;
	int64_t id = api_param_id(c);
	if (id < 0)
		return ERR_NOT_FOUND;
	int rc = senders_verify(c->ctx->store, &who, c->who.account.id, id, &s);
	enum err e = rc == STORE_CONFLICT ? ERR_OWNER_CONFIRMATION_REQUIRED : api_store_err(rc);
	if (e == ERR_OK)
		c->reply = api_sender_json(&s);
	return e;
}

enum err api_sender_delete(struct api_call *c)
{
	struct actor who = api_actor(c);
	int64_t id = api_param_id(c);
	if (id < 0)
		return ERR_NOT_FOUND;
	return api_store_err(senders_remove(c->ctx->store, &who, c->who.account.id, id));
}
