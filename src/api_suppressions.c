/* The account's suppression list: GET /api/suppressions (every role), POST to add manual
 * entries and DELETE /api/suppressions/{email} to remove one (Admin, Technical Team). The
 * service (suppress.c) acts and audits; this parses and answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "suppress.h"
#include "util.h"

#define LIST_DEFAULT 50
#define LIST_MAX     500

static const char email_help[] = "Give an email address, like name@example.com.";

static cJSON *suppression_json(const struct store_suppression *e)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)e->id);
	cJSON_AddStringToObject(o, "email", e->email);
	cJSON_AddStringToObject(o, "reason", e->reason);
	api_add_time(o, "created_at", e->created_at);
	api_add_text(o, "message_id", e->message_uid);
	api_add_text(o, "detail", e->detail);
	return o;
}

static int add_suppression(void *arg, const struct store_suppression *e)
{
	cJSON_AddItemToArray(arg, suppression_json(e));
	return 0;
}

/* ?reason=: one of the three, or absent (NULL). */
static enum err read_reason(struct api_call *c, const char **reason)
{
	static const char *const reasons[] = {"hard_bounce", "complaint", "manual"};
	const char *q = http_query(c->req, "reason");
	*reason = NULL;
	if (!q || !*q)
		return ERR_OK;
	for (size_t i = 0; i < ARRAY_LEN(reasons); i++)
		if (strcmp(q, reasons[i]) == 0)
			*reason = reasons[i];
	return *reason ? ERR_OK
		       : api_invalid(c, "reason",
				     "reason is \"hard_bounce\", \"complaint\" or \"manual\".");
}

enum err api_suppressions_list(struct api_call *c)
{
	const char *q = http_query(c->req, "email"), *reason;
	char email[ADDR_MAX];
	int64_t before_id;
	int limit;

	if (q && *q && suppress_normalize(q, email) < 0)
		return api_invalid(c, "email", email_help);
	enum err e = read_reason(c, &reason);
	if (e == ERR_OK)
		e = api_before(c, "before is a suppression id, a positive number.", &before_id);
	if (e == ERR_OK)
		e = api_limit_in(c, LIST_DEFAULT, LIST_MAX, &limit);
	if (e != ERR_OK)
		return e;
	cJSON *list = cJSON_CreateArray();
	return api_reply_list(c, "suppressions", list,
			      store_suppressions_list(c->ctx->store, c->who.account.id,
						      q && *q ? email : NULL, reason, before_id,
						      limit, add_suppression, list));
}

/* "emails": 1 to SUPPRESS_ADD_MAX addresses, normalized into norm; the first bad one is
 * refused by its place ("emails[3]"). */
static enum err read_emails(struct api_call *c, char (*norm)[ADDR_MAX], const char **out, size_t *n)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(c->body, "emails"), *item;
	char field[32], message[96];
	*n = 0;
	if (!cJSON_IsArray(list) || !list->child || cJSON_GetArraySize(list) > SUPPRESS_ADD_MAX) {
		snprintf(message, sizeof(message), "emails is a list of 1 to %d email addresses.",
			 SUPPRESS_ADD_MAX);
		return api_invalid(c, "emails", message);
	}
	cJSON_ArrayForEach(item, list)
	{
		if (!cJSON_IsString(item) || suppress_normalize(item->valuestring, norm[*n]) < 0) {
			snprintf(field, sizeof(field), "emails[%zu]", *n);
			return api_invalid(c, field, email_help);
		}
		out[*n] = norm[*n];
		(*n)++;
	}
	return ERR_OK;
}

enum err api_suppressions_add(struct api_call *c)
{
	static const char *const fields[] = {"emails", NULL};
	struct actor who = api_actor(c);
	char(*norm)[ADDR_MAX] = xcalloc(SUPPRESS_ADD_MAX, sizeof(*norm));
	const char **emails = xcalloc(SUPPRESS_ADD_MAX, sizeof(*emails));
	size_t n = 0;
	int added = 0;

	enum err e = api_only_fields(c, fields);
	if (e == ERR_OK)
		e = read_emails(c, norm, emails, &n);
	if (e == ERR_OK)
		e = api_store_err(
			suppress_add(c->ctx->store, &who, c->who.account.id, emails, n, &added));
	if (e == ERR_OK) {
		c->reply = cJSON_CreateObject();
		cJSON_AddNumberToObject(c->reply, "added", added);
	}
	free(emails);
	free(norm);
	return e;
}

/* {id} is the address, as the router decoded it from the path. One that is no address
 * cannot be listed: 404, like any address the account does not list. */
enum err api_suppression_delete(struct api_call *c)
{
	struct actor who = api_actor(c);
	char email[ADDR_MAX];
	if (!c->param || suppress_normalize(c->param, email) < 0)
		return ERR_NOT_FOUND;
	return api_store_err(suppress_remove(c->ctx->store, &who, c->who.account.id, email));
}
