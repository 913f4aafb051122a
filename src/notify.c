/* The verification email: plain text and HTML, one personalization per Admin so each
 * receives it addressed to themselves, queued as system mail; and the owner's confirmation
 * email, to a sender address itself. A link's token is a credential, so the queue holds it
 * sealed and the body is written at delivery. */
#include "notify.h"

#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "dkimkey.h"
#include "html.h"
#include "log.h"
#include "send.h"
#include "submit.h"
#include "util.h"

#define LINK_KEY_ID	 1
#define LINK_KEY_CONTEXT "pstnlink" /* crypto_kdf_CONTEXTBYTES characters */

/* Process-wide, like the master key it comes from: set once at start, before any thread
 * that queues or delivers mail, so the senders API needs no key of its own to pass. */
static unsigned char link_key[DKIMKEY_MASTER_LEN];
static bool link_key_set;

void notify_init(const unsigned char master[DKIMKEY_MASTER_LEN])
{
	crypto_kdf_derive_from_key(link_key, sizeof(link_key), LINK_KEY_ID, LINK_KEY_CONTEXT,
				   master);
	link_key_set = true;
}

void notify_end(void)
{
	sodium_memzero(link_key, sizeof(link_key));
	link_key_set = false;
}

struct admins {
	cJSON *personalizations;
	int count;
};

/* Each Admin gets a personalization of their own, so each sees it addressed to them. */
static int add_admin(void *arg, const struct store_user *u)
{
	struct admins *a = arg;
	if (u->role != ROLE_ADMIN)
		return 0;
	cJSON *p = cJSON_CreateObject();
	cJSON *rcpt = cJSON_CreateObject();
	cJSON_AddStringToObject(rcpt, "email", u->email);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(p, "to"), rcpt);
	cJSON_AddItemToArray(a->personalizations, p);
	a->count++;
	return 0;
}

static char *text_body(const char *account, const char *link, const char *until,
		       const char *const *addresses, size_t n)
{
	size_t cap = 1024 + strlen(link) + n * (ADDR_MAX + 4);
	char *t = xmalloc(cap);
	size_t len =
		(size_t)snprintf(t, cap,
				 "New sender email addresses were added to the Postern account "
				 "\"%s\" and are waiting for an Admin to verify them:\n\n",
				 account);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(t + len, cap - len, "  %s\n", addresses[i]);
	snprintf(t + len, cap - len,
		 "\nTo allow mail from all of them, open this link and press \"Verify All "
		 "Emails\":\n\n  %s\n\nThe link works once, until %s. To verify only some of "
		 "them, use the Verify button next to each address in Mail Settings > "
		 "Authorized sender email ID.\n\nIf you did not expect this, ignore this email: "
		 "nothing is verified until an Admin confirms.\n",
		 link, until);
	return t;
}

static char *html_body(const char *account, const char *link, const char *until,
		       const char *const *addresses, size_t n)
{
	struct html h = {0};
	html_fmt(&h,
		 "<h1>Verify sender email addresses</h1><p>New sender email addresses were added "
		 "to the Postern account <strong>%s</strong> and are waiting for an Admin to "
		 "verify them:</p><ul>",
		 account);
	for (size_t i = 0; i < n; i++)
		html_fmt(&h, "<li>%s</li>", addresses[i]);
	html_fmt(
		&h,
		"</ul><p><a href=\"%s\" style=\"display:inline-block;padding:.6em 1.2em;"
		"background:#0b5fff;color:#fff;border-radius:6px;text-decoration:none\">Verify "
		"All Emails</a></p><p class=\"note\">The link works once, until %s. To verify only "
		"some of them, use the Verify button next to each address in Mail Settings &gt; "
		"Authorized sender email ID. If you did not expect this, ignore this email: "
		"nothing is verified until an Admin confirms.</p>",
		link, until);
	return html_page("Verify sender email addresses", &h);
}

static char *owner_text(const char *account, const char *link, const char *until,
			const char *address)
{
	size_t cap = 1024 + strlen(link) + strlen(account) + strlen(address);
	char *t = xmalloc(cap);
	snprintf(t, cap,
		 "Someone added %s as a sender email address of the Postern account \"%s\". "
		 "Before mail can be sent from it, its owner must confirm.\n\nIf that is you "
		 "and you agree, open this link and press \"Confirm\":\n\n  %s\n\nThe link "
		 "works once, until %s.\n\nIf you did not expect this, ignore this email: "
		 "nothing is sent from your address unless you confirm.\n",
		 address, account, link, until);
	return t;
}

static char *owner_html(const char *account, const char *link, const char *until,
			const char *address)
{
	struct html h = {0};
	html_fmt(&h,
		 "<h1>Confirm your sender address</h1><p>Someone added <strong>%s</strong> as a "
		 "sender email address of the Postern account <strong>%s</strong>. Before mail "
		 "can be sent from it, its owner must confirm.</p><p><a href=\"%s\" "
		 "style=\"display:inline-block;padding:.6em 1.2em;background:#0b5fff;color:#fff;"
		 "border-radius:6px;text-decoration:none\">Confirm</a></p><p class=\"note\">The "
		 "link works once, until %s. If you did not expect this, ignore this email: "
		 "nothing is sent from your address unless you confirm.</p>",
		 address, account, link, until);
	return html_page("Confirm your sender address", &h);
}

/* What the body is written from at delivery: the account, the addresses, the link's
 * expiry, and the token sealed under the link key; owner for an owner's link. */
static cJSON *sealed_batch(const char *account_name, const char *token, int64_t expires_at,
			   const char *const *addresses, size_t n)
{
	char *sealed = link_key_set ? dkimkey_seal(link_key, token) : NULL;
	if (!sealed)
		return NULL;
	cJSON *v = cJSON_CreateObject();
	cJSON_AddStringToObject(v, "account", account_name);
	cJSON *list = cJSON_AddArrayToObject(v, "addresses");
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(list, cJSON_CreateString(addresses[i]));
	cJSON_AddNumberToObject(v, "expires_at", (double)expires_at);
	cJSON_AddStringToObject(v, "token_sealed", sealed);
	free(sealed);
	return v;
}

/* The email as a send request (Netcore's dialect), made canonical by send_parse like any
 * client's. Its content is written at delivery; until then the text is empty. */
static int request(const struct config *cfg, const char *subject, cJSON *personalizations,
		   struct send_request *out)
{
	struct send_problem why;

	cJSON *body = cJSON_CreateObject();
	cJSON *from = cJSON_AddObjectToObject(body, "from");
	cJSON_AddStringToObject(from, "email", cfg->system_from);
	cJSON_AddStringToObject(from, "name", "Postern");
	cJSON_AddStringToObject(body, "subject", subject);
	cJSON *text = cJSON_CreateObject();
	cJSON_AddStringToObject(text, "type", "text/plain");
	cJSON_AddStringToObject(text, "value", "");
	cJSON_AddItemToArray(cJSON_AddArrayToObject(body, "content"), text);
	cJSON_AddItemToObject(body, "personalizations", personalizations);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(body, "tags"),
			     cJSON_CreateString("verification"));
	int rc = send_parse(SEND_NETCORE, body, out, &why);
	cJSON_Delete(body);
	if (rc < 0)
		log_error("notify: the verification email is not a valid message (%s: %s)",
			  why.field, why.message);
	return rc;
}

int notify_verification(struct store *s, struct queue *q, const struct config *cfg,
			int64_t account_id, const char *account_name, const char *token,
			int64_t expires_at, const char *const *addresses, size_t n)
{
	struct admins admins = {cJSON_CreateArray(), 0};
	struct send_request r;
	char uid[SUBMIT_ID_LEN];

	if (store_users_list(s, account_id, add_admin, &admins) != STORE_OK || !admins.count) {
		cJSON_Delete(admins.personalizations);
		return admins.count ? STORE_FAIL : STORE_NOT_FOUND;
	}
	char subject[256];
	snprintf(subject, sizeof(subject), "Verify sender email addresses for %s", account_name);
	if (request(cfg, subject, admins.personalizations, &r) < 0)
		return STORE_FAIL;
	cJSON *batch = sealed_batch(account_name, token, expires_at, addresses, n);
	if (!batch) {
		log_error("notify: cannot seal the verification link of account %lld",
			  (long long)account_id);
		send_request_free(&r);
		return STORE_FAIL;
	}
	cJSON_AddItemToObject(r.payload, "verification", batch);
	int rc = submit_system(q, account_id, r.from, r.payload, r.recipients, uid);
	send_request_free(&r);
	if (rc == STORE_OK)
		log_info("message %s queued: verification email for %zu senders of account %lld "
			 "to %d admins",
			 uid, n, (long long)account_id, admins.count);
	return rc;
}

/* The personalizations of an email to one address. */
static cJSON *one_recipient(const char *address)
{
	cJSON *list = cJSON_CreateArray();
	cJSON *p = cJSON_CreateObject();
	cJSON *rcpt = cJSON_CreateObject();
	cJSON_AddStringToObject(rcpt, "email", address);
	cJSON_AddItemToArray(cJSON_AddArrayToObject(p, "to"), rcpt);
	cJSON_AddItemToArray(list, p);
	return list;
}

int notify_owner(struct queue *q, const struct config *cfg, int64_t account_id,
		 const char *account_name, const char *token, int64_t expires_at,
		 const char *address)
{
	struct send_request r;
	char uid[SUBMIT_ID_LEN], subject[256];

	snprintf(subject, sizeof(subject), "Confirm %s as a sender for %s", address, account_name);
	if (request(cfg, subject, one_recipient(address), &r) < 0)
		return STORE_FAIL;
	cJSON *batch = sealed_batch(account_name, token, expires_at, &address, 1);
	if (!batch) {
		log_error("notify: cannot seal the confirmation link of account %lld",
			  (long long)account_id);
		send_request_free(&r);
		return STORE_FAIL;
	}
	cJSON_AddBoolToObject(batch, "owner", true);
	cJSON_AddItemToObject(r.payload, "verification", batch);
	int rc = submit_system(q, account_id, r.from, r.payload, r.recipients, uid);
	send_request_free(&r);
	if (rc == STORE_OK)
		log_info("message %s queued: owner confirmation email for a sender of account %lld",
			 uid, (long long)account_id);
	return rc;
}

int notify_render(cJSON *payload, const struct config *cfg)
{
	cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(payload, "verification");
	if (!v)
		return 0; /* not a verification email, or queued before links were sealed */
	const cJSON *account = cJSON_GetObjectItemCaseSensitive(v, "account");
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(v, "addresses");
	const cJSON *expires = cJSON_GetObjectItemCaseSensitive(v, "expires_at");
	const cJSON *sealed = cJSON_GetObjectItemCaseSensitive(v, "token_sealed");
	char *token = NULL;
	int rc = -1;

	if (!cJSON_IsString(account) || !cJSON_IsArray(list) || !cJSON_IsNumber(expires) ||
	    !cJSON_IsString(sealed) || !link_key_set ||
	    !(token = dkimkey_open(link_key, sealed->valuestring)))
		goto out;
	int n = cJSON_GetArraySize(list);
	const char **addresses = xcalloc((size_t)n + 1, sizeof(*addresses));
	for (int i = 0; i < n; i++) {
		const cJSON *a = cJSON_GetArrayItem(list, i);
		addresses[i] = cJSON_IsString(a) ? a->valuestring : "";
	}
	char link[600], until[21];
	bool owner = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "owner")) && n == 1;
	snprintf(link, sizeof(link), "%s/%s/%s", cfg->public_url, owner ? "confirm" : "verify",
		 token);
	util_iso8601((int64_t)expires->valuedouble, until);
	char *text = owner ? owner_text(account->valuestring, link, until, addresses[0])
			   : text_body(account->valuestring, link, until, addresses, (size_t)n);
	char *html = owner ? owner_html(account->valuestring, link, until, addresses[0])
			   : html_body(account->valuestring, link, until, addresses, (size_t)n);
	cJSON_DeleteItemFromObjectCaseSensitive(payload, "content");
	cJSON *content = cJSON_AddObjectToObject(payload, "content");
	cJSON_AddStringToObject(content, "text", text);
	cJSON_AddStringToObject(content, "html", html);
	sodium_memzero(link, sizeof(link));
	free(text);
	free(html);
	free(addresses);
	rc = 0;
out:
	dkimkey_free_pem(token);
	cJSON_Delete(v);
	return rc;
}
