/* The "Verify All Emails" link: GET /verify/{token} shows the batch and a button and
 * changes nothing, because mail scanners open links; POST /verify/{token} verifies the
 * batch's senders that are still pending, once. */
#include <stdbool.h>
#include <stdlib.h>

#include "api.h"
#include "html.h"
#include "senders.h"
#include "util.h"

/* A batch as read for a page: its senders as list items, counted by state. */
struct listing {
	struct store_batch b;
	struct html items;
	int counts[BATCH_STATES];
};

static const char *const state_words[] = {
	[BATCH_PENDING] = "waiting for verification",
	[BATCH_VERIFIED_NOW] = "verified now",
	[BATCH_ALREADY] = "already verified",
	[BATCH_REMOVED] = "removed from the account since; not verified",
	[BATCH_ADMIN_NOW] = "approved now; waiting for its owner to confirm",
	[BATCH_AWAITS_OWNER] = "approved; waiting for its owner to confirm",
};

static int list_sender(void *arg, const char *address, enum store_batch_state state)
{
	struct listing *l = arg;
	html_fmt(&l->items, "<li>%s — %s</li>", address, state_words[state]);
	l->counts[state]++;
	return 0;
}

/* Moves the listed senders into page as a list. */
static void add_list(struct html *page, struct listing *l)
{
	html_raw(page, "<ul>");
	if (l->items.buf)
		html_raw(page, l->items.buf);
	html_raw(page, "</ul>");
	free(l->items.buf);
}

static enum err usable(const struct store_batch *b, int64_t now)
{
	if (b->used_at)
		return ERR_TOKEN_USED;
	if (b->expires_at <= now)
		return ERR_TOKEN_EXPIRED;
	return ERR_OK;
}

/* Reads the batch of the path's token into l, or with use, uses it (see
 * senders_verify_all). l->b describes the batch as it was before this use, so usable()
 * tells whether this request was the one that used it. ERR_NOT_FOUND when the token
 * cannot be one of ours. */
static enum err read_batch(struct api_call *c, bool use, struct listing *l)
{
	const struct actor link = {.name = "verify-link", .ip = c->req->ip};
	char hash[AUTH_HASH_HEX];
	int64_t now = util_now();

	if (!c->param || !auth_token_wellformed(c->param, AUTH_TOKEN_LEN - 1))
		return ERR_NOT_FOUND;
	auth_token_hash(c->param, hash);
	int rc = use ? senders_verify_all(c->ctx->store, &link, hash, now, &l->b, list_sender, l)
		     : store_batch_get(c->ctx->store, hash, &l->b, list_sender, l);
	enum err e = api_store_err(rc);
	if (e == ERR_OK)
		e = usable(&l->b, now);
	if (e != ERR_OK)
		free(l->items.buf);
	return e;
}

enum err api_verify_show(struct api_call *c)
{
	struct listing l = {0};
	enum err e = read_batch(c, false, &l);
	if (e != ERR_OK)
		return e;
	struct html page = {0};
	html_fmt(&page,
		 "<h1>Verify sender email addresses</h1><p>These addresses were added to the "
		 "account <strong>%s</strong>. Verifying them lets the account send mail from "
		 "them.</p>",
		 l.b.account_name);
	add_list(&page, &l);
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
	struct listing l = {0};
	enum err e = read_batch(c, true, &l);
	if (e != ERR_OK)
		return e;
	struct html page = {0};
	html_fmt(&page,
		 "<h1>Sender addresses verified</h1><p>%d verified now, %d already verified, "
		 "%d removed from the account <strong>%s</strong> before this link was used.</p>",
		 l.counts[BATCH_VERIFIED_NOW], l.counts[BATCH_ALREADY], l.counts[BATCH_REMOVED],
		 l.b.account_name);
	/* With owner confirmation on top, an Admin's approval is half of it. */
	if (l.counts[BATCH_ADMIN_NOW])
		html_fmt(&page, "<p>%d approved now and waiting for their owners to confirm.</p>",
			 l.counts[BATCH_ADMIN_NOW]);
	add_list(&page, &l);
	api_page(c, html_page("Sender addresses verified", &page));
	return ERR_OK;
}
