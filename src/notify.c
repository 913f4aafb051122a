/* The verification email: plain text and HTML, one personalization per Admin so each
 * receives it addressed to themselves, queued as system mail. */
#include "notify.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "html.h"
#include "log.h"
#include "util.h"

struct admins {
	cJSON *personalizations;
	int count;
};

static int add_admin(void *arg, const struct store_user *u)
{
	struct admins *a = arg;
	if (u->role != ROLE_ADMIN)
		return 0;
	cJSON *p = cJSON_CreateObject();
	cJSON *to = cJSON_AddArrayToObject(p, "to");
	cJSON *rcpt = cJSON_CreateObject();
	cJSON_AddStringToObject(rcpt, "email", u->email);
	cJSON_AddItemToArray(to, rcpt);
	cJSON_AddArrayToObject(p, "cc");
	cJSON_AddArrayToObject(p, "bcc");
	cJSON_AddObjectToObject(p, "headers");
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

int notify_verification(struct store *s, struct queue *q, const struct config *cfg,
			int64_t account_id, const char *account_name, const char *token,
			int64_t expires_at, const char *const *addresses, size_t n)
{
	struct admins admins = {cJSON_CreateArray(), 0};
	char link[600], until[21], subject[256], uid[33];

	if (store_users_list(s, account_id, add_admin, &admins) != STORE_OK || !admins.count) {
		cJSON_Delete(admins.personalizations);
		return admins.count ? STORE_FAIL : STORE_NOT_FOUND;
	}
	snprintf(link, sizeof(link), "%s/verify/%s", cfg->public_url, token);
	util_iso8601(expires_at, until);
	snprintf(subject, sizeof(subject), "Verify sender email addresses for %s", account_name);

	cJSON *p = cJSON_CreateObject();
	cJSON *from = cJSON_AddObjectToObject(p, "from");
	cJSON_AddStringToObject(from, "email", cfg->system_from);
	cJSON_AddStringToObject(from, "name", "Postern");
	cJSON_AddStringToObject(p, "subject", subject);
	cJSON *content = cJSON_AddObjectToObject(p, "content");
	char *text = text_body(account_name, link, until, addresses, n);
	char *html = html_body(account_name, link, until, addresses, n);
	cJSON_AddStringToObject(content, "text", text);
	cJSON_AddStringToObject(content, "html", html);
	free(text);
	free(html);
	cJSON_AddItemToObject(p, "personalizations", admins.personalizations);
	cJSON_AddObjectToObject(p, "headers");
	cJSON_AddArrayToObject(p, "attachments");
	cJSON_AddItemToArray(cJSON_AddArrayToObject(p, "tags"), cJSON_CreateString("verification"));
	char *json = cJSON_PrintUnformatted(p);
	cJSON_Delete(p);

	auth_random_hex(uid, 16);
	struct store_message m = {.uid = uid,
				  .account_id = account_id,
				  .system = true,
				  .from = cfg->system_from,
				  .payload = json,
				  .recipients = admins.count,
				  .now = util_now()};
	int rc = queue_put(q, &m);
	free(json);
	if (rc == STORE_OK)
		log_info("message %s queued: verification email for %zu senders of account %lld "
			 "to %d admins",
			 uid, n, (long long)account_id, admins.count);
	return rc;
}
