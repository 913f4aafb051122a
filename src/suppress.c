/* The suppression list as a service: how its addresses are spelled, the changes people
 * make to it, each audited once here (the HTTP API calls these; hard bounces and complaints
 * go in through the store with the outcome that causes them), and the check at delivery. */
#include "suppress.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "send.h"
#include "util.h"

int suppress_normalize(const char *in, char out[ADDR_MAX])
{
	const char *why;
	if (addr_normalize(in, out, &why) < 0)
		return -1;
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return 0;
}

int suppress_add(struct store *s, const struct actor *who, int64_t account_id,
		 const char *const *emails, size_t n, int *added)
{
	struct store_suppression *e = xcalloc(n ? n : 1, sizeof(*e));
	for (size_t i = 0; i < n; i++) {
		util_copy(e[i].email, sizeof(e[i].email), emails[i]);
		e[i].reason = "manual";
	}
	*added = 0;
	int rc = store_suppressions_add(s, account_id, e, n, util_now(), added);
	free(e);
	if (rc == STORE_OK)
		audit_write(s, who, account_id, "suppression.add", "suppressions", "count=%d",
			    *added);
	return rc;
}

int suppress_remove(struct store *s, const struct actor *who, int64_t account_id, const char *email)
{
	int rc = store_suppression_delete(s, account_id, email);
	if (rc == STORE_OK)
		audit_write(s, who, account_id, "suppression.remove", email, NULL);
	return rc;
}

/* The recipients an earlier run of a message told it dropped them as suppressed. */
struct told {
	char (*email)[ADDR_MAX];
	size_t n, cap;
};

static int add_told(void *arg, const struct store_event_info *e)
{
	struct told *t = arg;
	cJSON *data = cJSON_Parse(e->data);
	const char *reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "reason"));
	if (reason && strcmp(reason, SUPPRESS_DROPPED) == 0 && e->recipient[0]) {
		if (t->n == t->cap) {
			t->cap = t->cap ? t->cap * 2 : 8;
			t->email = xrealloc(t->email, t->cap * sizeof(*t->email));
		}
		util_copy(t->email[t->n++], ADDR_MAX, e->recipient);
	}
	cJSON_Delete(data);
	return 0;
}

static bool was_told(const struct told *t, const char *rcpt)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->email[i], rcpt) == 0)
			return true;
	return false;
}

int suppress_check(struct store *s, int64_t account_id, const char *uid, bool earlier,
		   const char *const *rcpts, size_t n, bool *listed, bool *told)
{
	char(*norm)[ADDR_MAX] = xcalloc(n ? n : 1, sizeof(*norm));
	const char **keys = xcalloc(n ? n : 1, sizeof(*keys));
	struct told t = {0};
	bool any = false;

	/* An address that does not normalize cannot be listed. */
	for (size_t i = 0; i < n; i++)
		keys[i] = suppress_normalize(rcpts[i], norm[i]) == 0 ? norm[i] : "";
	int rc = store_suppressed(s, account_id, keys, n, listed);
	for (size_t i = 0; rc == STORE_OK && i < n; i++)
		any = any || listed[i];
	/* A message has at most SEND_MAX_RECIPIENTS, each told once. */
	if (rc == STORE_OK && any && earlier)
		rc = store_events_list(s, account_id, "message.dropped", uid, 0,
				       SEND_MAX_RECIPIENTS, add_told, &t);
	for (size_t i = 0; i < n; i++)
		told[i] = rc == STORE_OK && listed[i] && was_told(&t, rcpts[i]);
	free(t.email);
	free(keys);
	free(norm);
	return rc;
}
