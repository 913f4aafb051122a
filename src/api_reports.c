/* The reports that came back to the return path about the caller's account's messages
 * (GET /api/reports, every role): the operator's window on bounces and complaints, with
 * the text of those no parser could read. */
#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "util.h"

#define REPORTS_LIMIT	  50
#define REPORTS_LIMIT_MAX 500

static const char *const report_statuses[] = {"new", "parsing", "done", "unparsed", "orphan"};

static cJSON *report_json(const struct store_report *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)r->id);
	api_add_time(o, "received_at", r->received_at);
	cJSON_AddStringToObject(o, "message_id", r->message_uid);
	cJSON_AddStringToObject(o, "status", r->status);
	api_add_text(o, "kind", r->kind);
	cJSON_AddStringToObject(o, "from", r->mail_from);
	cJSON_AddStringToObject(o, "rcpt", r->rcpt);
	cJSON_AddNumberToObject(o, "size", (double)r->size);
	cJSON *detail = cJSON_Parse(r->detail);
	cJSON_AddItemToObject(o, "detail", detail ? detail : cJSON_CreateObject());
	/* Only what no parser could read is for a person to read. A report is any bytes:
	 * what is not UTF-8 is shown as U+FFFD. */
	if (strcmp(r->status, "unparsed") == 0) {
		gchar *text = g_utf8_make_valid(r->data ? r->data : "", (gssize)r->len);
		cJSON_AddStringToObject(o, "text", text);
		g_free(text);
	}
	return o;
}

static int add_report(void *arg, const struct store_report *r)
{
	cJSON_AddItemToArray(arg, report_json(r));
	return 0;
}

static bool status_known(const char *status)
{
	for (size_t i = 0; i < ARRAY_LEN(report_statuses); i++)
		if (strcmp(status, report_statuses[i]) == 0)
			return true;
	return false;
}

enum err api_reports_list(struct api_call *c)
{
	const char *status = http_query(c->req, "status");
	int64_t before_id;
	int limit;

	if (status && !*status)
		status = NULL;
	if (status && !status_known(status))
		return api_invalid(c, "status",
				   "status is one of new, parsing, done, unparsed or orphan.");
	enum err e = api_before(c, "before is a report id, a positive number.", &before_id);
	if (e == ERR_OK)
		e = api_limit_in(c, REPORTS_LIMIT, REPORTS_LIMIT_MAX, &limit);
	if (e != ERR_OK)
		return e;
	cJSON *list = cJSON_CreateArray();
	return api_reply_list(c, "reports", list,
			      store_reports_list(c->ctx->store, c->who.account.id, status,
						 before_id, limit, add_report, list));
}
