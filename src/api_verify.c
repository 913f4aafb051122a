/* The "Verify All Emails" link: GET /verify/{token} shows the batch and a button and
 * changes nothing, because mail scanners open links; POST /verify/{token} verifies the
 * batch's senders that are still pending, once. */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "audit.h"
#include "html.h"
#include "util.h"

struct listing {
	struct html *h;
	cJSON *verified; /* audited once the store is done with the batch */
	int counts[4];
};

static const char *const state_words[] = {
	[BATCH_PENDING] = "waiting for verification",
	[BATCH_VERIFIED_NOW] = "verified now",
	[BATCH_ALREADY] = "already verified",
	[BATCH_REMOVED] = "removed from the account since; not verified",
};

static int list_sender(void *arg, const char *address, enum store_batch_state state)
{
	struct listing *l = arg;
	html_fmt(l->h, "<li>%s — %s</li>", address, state_words[state]);
	l->counts[state]++;
	if (state == BATCH_VERIFIED_NOW)
		cJSON_AddItemToArray(l->verified, cJSON_CreateString(address));
	return 0;
}

/* The token from the path, hashed; ERR_NOT_FOUND when it cannot be one of ours. */
static enum err token_hash(struct api_call *c, char hash[AUTH_HASH_HEX])
{
	if (!c->param || !auth_token_wellformed(c->param, AUTH_TOKEN_LEN - 1))
		return ERR_NOT_FOUND;
	auth_token_hash(c->param, hash);
	return ERR_OK;
}

static enum err usable(const struct store_batch *b, int64_t now)
{
	if (b->used_at)
		return ERR_TOKEN_USED;
	if (b->expires_at <= now)
		return ERR_TOKEN_EXPIRED;
	return ERR_OK;
}

enum err api_verify_show(struct api_call *c)
{
	char hash[AUTH_HASH_HEX];
	struct store_batch b;
	struct html h = {0};
	struct listing l = {&h, NULL, {0}};

	enum err e = token_hash(c, hash);
	if (e != ERR_OK)
		return e;
	html_raw(&h, "<ul>");
	e = api_store_err(store_batch_get(c->ctx->store, hash, &b, list_sender, &l));
	if (e == ERR_OK)
		e = usable(&b, util_now());
	if (e != ERR_OK) {
		free(h.buf);
		return e;
	}
	struct html page = {0};
	html_fmt(&page,
		 "<h1>Verify sender email addresses</h1><p>These addresses were added to the "
		 "account <strong>%s</strong>. Verifying them lets the account send mail from "
		 "them.</p>",
		 b.account_name);
	html_raw(&page, h.buf);
	free(h.buf);
	html_raw(&page, "</ul>");
	if (l.counts[BATCH_PENDING])
		html_raw(&page, "<form method=\"post\"><button type=\"submit\">Verify All "
				"Emails</button></form>");
	else
		html_raw(&page, "<p>Nothing here is waiting for verification.</p>");
	api_page(c, html_page("Verify sender email addresses", &page));
	return ERR_OK;
}

enum err api_verify_confirm(struct api_call *c)
{
	char hash[AUTH_HASH_HEX];
	struct store_batch b;
	struct html h = {0};
	struct listing l = {&h, cJSON_CreateArray(), {0}};

	enum err e = token_hash(c, hash);
	if (e != ERR_OK) {
		cJSON_Delete(l.verified);
		return e;
	}
	html_raw(&h, "<ul>");
	/* b describes the batch as it was before this use, so usable() tells whether this
	 * request was the one that used it. */
	int64_t now = util_now();
	e = api_store_err(store_batch_use(c->ctx->store, hash, now, &b, list_sender, &l));
	if (e == ERR_OK)
		e = usable(&b, now);
	const cJSON *a;
	cJSON_ArrayForEach(a, l.verified)
	{
		if (e == ERR_OK) /* only what the committed transaction verified */
			audit_record(c->ctx->store, b.account_id, "verify-link", "sender.verified",
				     a->valuestring, c->req->ip, "via=link");
	}
	cJSON_Delete(l.verified);
	if (e != ERR_OK) {
		free(h.buf);
		return e;
	}
	html_raw(&h, "</ul>");
	struct html page = {0};
	html_fmt(&page,
		 "<h1>Sender addresses verified</h1><p>%d verified now, %d already verified, "
		 "%d removed from the account <strong>%s</strong> before this link was used.</p>",
		 l.counts[BATCH_VERIFIED_NOW], l.counts[BATCH_ALREADY], l.counts[BATCH_REMOVED],
		 b.account_name);
	html_raw(&page, h.buf);
	free(h.buf);
	api_page(c, html_page("Sender addresses verified", &page));
	return ERR_OK;
}
