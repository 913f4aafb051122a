/* Owner confirmation of senders (issue 19): who confirms a sender (GET/PUT
 * /api/settings/sender-confirmation), sending a sender's owner its link again, and the
 * link's pages: GET /confirm/{token} shows the address and a button and changes nothing
 * (mail scanners open links); POST confirms, once. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "html.h"
#include "senders.h"
#include "util.h"

static const char *const confirm_modes[] = {"admin", "owner", "both"};

static enum err mode_reply(struct api_call *c, const char *mode)
{
	c->reply = cJSON_CreateObject();
	cJSON_AddStringToObject(c->reply, "mode", mode);
	return ERR_OK;
}

enum err api_sender_confirmation_get(struct api_call *c)
{
	char mode[STORE_CONFIRM_MODE_MAX];
	enum err e = api_store_err(store_confirmation_get(c->ctx->store, c->who.account.id, mode));
	return e == ERR_OK ? mode_reply(c, mode) : e;
}

static const char *known_mode(const char *text)
{
	for (size_t i = 0; text && i < ARRAY_LEN(confirm_modes); i++)
		if (strcmp(text, confirm_modes[i]) == 0)
			return confirm_modes[i];
	return NULL;
}

enum err api_sender_confirmation_put(struct api_call *c)
{
	static const char *const fields[] = {"mode", "password", NULL};
	const char *mode = known_mode(api_body_string(c, "mode"));
	struct actor who = audit_user(&c->who.user, c->req->ip);

	enum err e = api_only_fields(c, fields);
	if (e != ERR_OK)
		return e;
	if (!mode)
		return api_invalid(c, "mode", "mode must be \"admin\", \"owner\" or \"both\".");
	e = api_setting_password(c, api_body_string(c, "password"));
	if (e == ERR_PASSWORD_INCORRECT)
		senders_confirmation_refused(c->ctx->store, &who, c->who.account.id, mode);
	if (e != ERR_OK)
		return e;
	e = api_store_err(senders_confirmation_set(c->ctx->store, &who, c->who.account.id, mode));
	return e == ERR_OK ? mode_reply(c, mode) : e;
}

enum err api_sender_owner_link(struct api_call *c)
{
	struct actor who = audit_user(&c->who.user, c->req->ip);
	struct store_sender s;
	int64_t wait = 0, expires_at = 0, id = api_param_id(c);
	if (id < 0)
		return ERR_NOT_FOUND;
	int rc = senders_owner_link(c->ctx->store, c->ctx->queue, c->ctx->cfg, &who,
				    &c->who.account, id, &s, &wait, &expires_at);
	enum err e = rc == STORE_CONFLICT ? ERR_NOT_AWAITING_OWNER : api_store_err(rc);
	if (e == ERR_RATE_LIMITED) {
		c->reply_header = "Retry-After";
		snprintf(c->reply_header_value, sizeof(c->reply_header_value), "%lld",
			 (long long)wait);
		snprintf(c->err_message, sizeof(c->err_message),
			 "A confirmation email went to this address less than a minute ago. Wait "
			 "%lld seconds before sending another.",
			 (long long)wait);
	}
	if (e != ERR_OK)
		return e;
	c->reply = cJSON_CreateObject();
	cJSON_AddStringToObject(c->reply, "address", s.address);
	api_add_time(c->reply, "expires_at", expires_at);
	return ERR_OK;
}

/* The owner's link of the path's token, read or (with use) used. t describes the link as it
 * was before this use, so a used or expired one tells that this request changed nothing.
 * ERR_NOT_FOUND when the token cannot be one of ours. */
static enum err read_link(struct api_call *c, bool use, struct store_owner_token *t)
{
	char hash[AUTH_HASH_HEX];
	int64_t now = util_now();

	if (!c->param || !auth_token_wellformed(c->param, AUTH_TOKEN_LEN - 1))
		return ERR_NOT_FOUND;
	auth_token_hash(c->param, hash);
	int rc = use ? senders_owner_confirm(c->ctx->store, c->req->ip, hash, now, t)
		     : store_owner_token_get(c->ctx->store, hash, t);
	enum err e = api_store_err(rc);
	if (e == ERR_OK && t->used_at) {
		e = ERR_TOKEN_USED;
		snprintf(c->err_message, sizeof(c->err_message),
			 "This confirmation link was already used. Nothing more is needed from "
			 "you for this address.");
	} else if (e == ERR_OK && t->expires_at <= now) {
		e = ERR_TOKEN_EXPIRED;
		snprintf(c->err_message, sizeof(c->err_message),
			 "This confirmation link has expired. Ask the account that added your "
			 "address to send you a new one.");
	}
	return e;
}

enum err api_confirm_show(struct api_call *c)
{
	struct store_owner_token t;
	enum err e = read_link(c, false, &t);
	if (e != ERR_OK)
		return e;
	struct html page = {0};
	html_fmt(&page,
		 "<h1>Confirm your sender address</h1><p>The Postern account <strong>%s</strong> "
		 "added <strong>%s</strong> as an address it sends mail from. Confirm only if "
		 "this is your address and you agree.</p>",
		 t.account_name, t.address);
	if (t.owner_confirmed)
		html_raw(&page, "<p>This address is confirmed already.</p>");
	else
		html_raw(&page, "<form method=\"post\"><button type=\"submit\">Confirm"
				"</button></form>");
	api_page(c, html_page("Confirm your sender address", &page));
	return ERR_OK;
}

enum err api_confirm_use(struct api_call *c)
{
	struct store_owner_token t;
	enum err e = read_link(c, true, &t);
	if (e != ERR_OK)
		return e;
	struct html page = {0};
	html_fmt(&page,
		 "<h1>Sender address confirmed</h1><p>You confirmed <strong>%s</strong> "
		 "for the Postern account <strong>%s</strong>. ",
		 t.address, t.account_name);
	html_raw(&page, t.verified ? "The account may now send mail from it.</p>"
				   : "An Admin of the account still has to verify it before "
				     "mail can be sent from it.</p>");
	api_page(c, html_page("Sender address confirmed", &page));
	return ERR_OK;
}
