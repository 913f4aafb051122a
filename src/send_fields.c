/* The send request's fields beyond the message itself, in both dialects: substitution
 * values, a personalization's own attachments, the top-level bcc, reply_to_list,
 * custom_args, SendGrid's sandbox, and what Postern refuses rather than ignore (templates,
 * tracking, fields it does not know). A 2xx means every field was honoured. null is absent. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "send_int.h"
#include "subst.h"
#include "util.h"

/* The bound on a personalization's values, names and values together, in both dialects
 * (SendGrid's own for substitutions), which keeps substituting them cheap. */
#define SUBSTITUTIONS_MAX 10000
#define TOO_MANY_VALUES                                                                            \
	"At most 10,000 bytes of names and values together per personalization; send fewer or "    \
	"shorter values."

#define UNKNOWN	      "Postern does not know this field and would not honour it; leave it out (or null)."
#define NO_TEMPLATES  "Postern has no stored templates; send the content itself."
#define TRUE_OR_FALSE "Give true or false."

/* The fields each dialect knows, at the top level and in a personalization. */
static const char *const netcore_top[] = {
	"from", "subject",     "content",  "personalizations", "reply_to", "headers", "attachments",
	"tags", "template_id", "settings", "lint_payload",     "schedule", "bcc",     NULL,
};
static const char *const netcore_own[] = {
	"to",	       "cc",	   "bcc",      "subject",   "headers", "attributes",
	"attachments", "token_to", "token_cc", "token_bcc", NULL,
};
static const char *const sendgrid_top[] = {
	"personalizations",
	"from",
	"reply_to",
	"reply_to_list",
	"subject",
	"content",
	"attachments",
	"headers",
	"categories",
	"custom_args",
	"send_at",
	"template_id",
	"sections",
	"batch_id",
	"asm",
	"ip_pool_name",
	"mail_settings",
	"tracking_settings",
	NULL,
};
static const char *const sendgrid_own[] = {
	"to",	       "cc",	  "bcc",
	"subject",     "headers", "substitutions",
	"custom_args", "send_at", "dynamic_template_data",
	NULL,
};

/* Known fields Postern cannot honour: refused whenever they are not null. */
struct refusal {
	const char *field, *message;
};

static const struct refusal netcore_refused_top[] = {{"template_id", NO_TEMPLATES}, {NULL, NULL}};
static const struct refusal netcore_refused_own[] = {
	{"token_to", "Give the recipients in to."},
	{"token_cc", "Give the recipients in cc."},
	{"token_bcc", "Give the recipients in bcc."},
	{NULL, NULL},
};
static const struct refusal sendgrid_refused_top[] = {
	{"template_id", NO_TEMPLATES},
	{"sections", NO_TEMPLATES},
	{"batch_id", "Postern has no batches to pause or cancel; leave batch_id out."},
	{"asm", "Postern has no unsubscribe groups; leave asm out."},
	{"ip_pool_name", "Postern sends through its one relay; leave ip_pool_name out."},
	{NULL, NULL},
};
static const struct refusal sendgrid_refused_own[] = {
	{"dynamic_template_data", NO_TEMPLATES},
	/* @sendgrid/mail 8 sends it when the caller sets a personalization's from. */
	{"from", "A request has one From: give it at the top level, and send one request per "
		 "From."},
	{NULL, NULL},
};

struct dialect_fields {
	const char *const *top, *const *own;
	const struct refusal *refused_top, *refused_own;
};

static const struct dialect_fields dialects[] = {
	[SEND_NETCORE] = {netcore_top, netcore_own, netcore_refused_top, netcore_refused_own},
	[SEND_SENDGRID] = {sendgrid_top, sendgrid_own, sendgrid_refused_top, sendgrid_refused_own},
};

static const cJSON *get(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsNull(v) ? NULL : v;
}

static bool listed(const char *const *names, const char *name)
{
	for (; *names; names++)
		if (strcmp(*names, name) == 0)
			return true;
	return false;
}

/* Refuses the first field of obj that is not null and either refused or unknown. */
static int check_known(const cJSON *obj, const char *const *known, const struct refusal *refused,
		       struct send_problem *why, const char *prefix)
{
	const cJSON *v;
	cJSON_ArrayForEach(v, obj)
	{
		if (cJSON_IsNull(v))
			continue;
		for (const struct refusal *r = refused; r->field; r++)
			if (strcmp(r->field, v->string) == 0)
				return send_fail(why, r->message, "%s%s", prefix, v->string);
		if (!listed(known, v->string))
			return send_fail(why, UNKNOWN, "%s%s", prefix, v->string);
	}
	return 0;
}

/* A switch Postern keeps off: absent, null or false; true is refused with on_message. */
static int switch_off(const cJSON *v, const char *on_message, struct send_problem *why,
		      const char *path)
{
	if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v))
		return 0;
	return send_fail(why, cJSON_IsTrue(v) ? on_message : TRUE_OR_FALSE, "%s", path);
}

/* Netcore's settings, each a switch, and lint_payload. */
static int check_settings(const cJSON *body, struct send_problem *why)
{
	const cJSON *settings = get(body, "settings"), *v;
	char path[160];
	if (settings && !cJSON_IsObject(settings))
		return send_fail(why, "Give settings as an object of true/false switches.", "%s",
				 "settings");
	cJSON_ArrayForEach(v, settings)
	{
		snprintf(path, sizeof(path), "settings.%s", v->string);
		if (switch_off(v,
			       "Postern does not track opens, clicks or unsubscribes nor add "
			       "footers; set this to false or leave it out.",
			       why, path) < 0)
			return -1;
	}
	return switch_off(get(body, "lint_payload"),
			  "Postern has no lint mode; set lint_payload to false or leave it out.",
			  why, "lint_payload");
}

/* SendGrid's tracking_settings or mail_settings: objects with "enable", which must be off,
 * but for the sandbox when sandbox is not NULL. */
static int check_setting_group(const cJSON *body, const char *group, const char *on_message,
			       bool *sandbox, struct send_problem *why)
{
	const cJSON *g = get(body, group), *v;
	char path[160];
	if (!g)
		return 0;
	if (!cJSON_IsObject(g))
		return send_fail(why, "Give an object of settings, each with \"enable\".", "%s",
				 group);
	cJSON_ArrayForEach(v, g)
	{
		if (cJSON_IsNull(v))
			continue;
		if (!cJSON_IsObject(v))
			return send_fail(why, "Give an object with \"enable\".", "%s.%s", group,
					 v->string);
		const cJSON *enable = cJSON_GetObjectItemCaseSensitive(v, "enable");
		snprintf(path, sizeof(path), "%s.%s.enable", group, v->string);
		if (sandbox && strcmp(v->string, "sandbox_mode") == 0 && cJSON_IsTrue(enable))
			*sandbox = true;
		else if (switch_off(enable, on_message, why, path) < 0)
			return -1;
	}
	return 0;
}

/* Netcore's attributes: strings or numbers, a number in JSON's shortest spelling, at most
 * SUBSTITUTIONS_MAX bytes of names and values together. */
static int parse_attributes(const cJSON *p, cJSON *o, struct send_problem *why, const char *prefix)
{
	const cJSON *attrs = get(p, "attributes"), *v;
	size_t total = 0;
	if (!attrs)
		return 0;
	if (!cJSON_IsObject(attrs))
		return send_fail(why, "Give attributes as an object of name: value.",
				 "%sattributes", prefix);
	cJSON *subs = cJSON_AddObjectToObject(o, "substitutions");
	cJSON_ArrayForEach(v, attrs)
	{
		char *number = NULL;
		const char *value;
		if (cJSON_IsNull(v))
			continue;
		if (cJSON_IsString(v) && !util_utf8(v->valuestring))
			return send_fail(why,
					 "This text is not valid UTF-8; send it UTF-8 encoded.",
					 "%sattributes.%s", prefix, v->string);
		if (cJSON_IsString(v))
			value = v->valuestring;
		else if (cJSON_IsNumber(v))
			value = number = cJSON_PrintUnformatted(v);
		else
			return send_fail(why, "An attribute is a string or a number.",
					 "%sattributes.%s", prefix, v->string);
		total += strlen(v->string) + strlen(value);
		cJSON_AddStringToObject(subs, v->string, value);
		cJSON_free(number);
		if (total > SUBSTITUTIONS_MAX)
			return send_fail(why, TOO_MANY_VALUES, "%sattributes", prefix);
	}
	return 0;
}

/* SendGrid's substitutions and custom_args: an object of UTF-8 strings under non-empty
 * names, nulls left out, at most max bytes of names and values together, into o[key]. */
static int parse_strings(const cJSON *parent, const char *key, size_t max, cJSON *o,
			 struct send_problem *why, const char *prefix)
{
	const cJSON *given = get(parent, key), *v;
	size_t total = 0;
	if (!given)
		return 0;
	if (!cJSON_IsObject(given))
		return send_fail(why, "Give an object of name: value strings.", "%s%s", prefix,
				 key);
	cJSON *out = cJSON_AddObjectToObject(o, key);
	cJSON_ArrayForEach(v, given)
	{
		if (cJSON_IsNull(v))
			continue;
		if (!cJSON_IsString(v) || !v->string[0] || !util_utf8(v->valuestring))
			return send_fail(why, "Give a UTF-8 string under a non-empty name.",
					 "%s%s.%s", prefix, key, v->string);
		total += strlen(v->string) + strlen(v->valuestring);
		if (total > max)
			return send_fail(why, TOO_MANY_VALUES, "%s%s", prefix, key);
		cJSON_AddStringToObject(out, v->string, v->valuestring);
	}
	return 0;
}

int send_personalization_fields(enum send_dialect d, const cJSON *p, cJSON *o,
				struct send_problem *why, const char *prefix)
{
	if (check_known(p, dialects[d].own, dialects[d].refused_own, why, prefix) < 0)
		return -1;
	if (d == SEND_SENDGRID) {
		if (parse_strings(p, "substitutions", SUBSTITUTIONS_MAX, o, why, prefix) < 0)
			return -1;
		return parse_strings(p, "custom_args", SIZE_MAX, o, why, prefix);
	}
	if (parse_attributes(p, o, why, prefix) < 0)
		return -1;
	return get(p, "attachments") ? send_parse_attachments(d, p, o, why, prefix) : 0;
}

/* Netcore's top-level bcc: blind copies of every personalization's message, so each
 * personalization's bcc gets them, and they count once per personalization. */
static int merge_bcc(const cJSON *body, struct send_request *r, struct send_problem *why)
{
	cJSON *top = cJSON_CreateObject(), *p;
	int n = 0, rc = send_parse_recipients(body, "bcc", false, top, &n, why, "");
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(top, "bcc"), *a;
	cJSON *ps = cJSON_GetObjectItemCaseSensitive(r->payload, "personalizations");
	int parts = cJSON_GetArraySize(ps);

	if (rc == 0 && n > 0 && r->recipients + n * parts > SEND_MAX_RECIPIENTS)
		rc = send_fail(why,
			       "The top-level bcc goes with every personalization and counts once "
			       "for each: a request may have at most 1000 recipients in all.",
			       "%s", "bcc");
	if (rc == 0 && n > 0) {
		cJSON_ArrayForEach(p, ps)
		{
			cJSON *bcc = cJSON_GetObjectItemCaseSensitive(p, "bcc");
			cJSON_ArrayForEach(a, list)
			{
				cJSON_AddItemToArray(bcc, cJSON_Duplicate(a, true));
			}
		}
		r->recipients += n * parts;
	}
	cJSON_Delete(top);
	return rc;
}

/* SendGrid's reply_to_list: 1 to 1000 addresses, all in one Reply-To. */
static int parse_reply_to_list(const cJSON *body, cJSON *payload, struct send_problem *why)
{
	const cJSON *list = get(body, "reply_to_list"), *v;
	char norm[ADDR_MAX], path[64];
	int i = 0;
	if (!list)
		return 0;
	if (get(body, "reply_to"))
		return send_fail(why, "Give either reply_to or reply_to_list, not both.", "%s",
				 "reply_to_list");
	if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) < 1 || cJSON_GetArraySize(list) > 1000)
		return send_fail(why, "Give a list of 1 to 1000 addresses.", "%s", "reply_to_list");
	cJSON *arr = cJSON_AddArrayToObject(payload, "reply_to_list");
	cJSON_ArrayForEach(v, list)
	{
		cJSON *box = cJSON_CreateObject();
		cJSON_AddItemToArray(arr, box);
		snprintf(path, sizeof(path), "reply_to_list[%d]", i++);
		if (send_parse_address(v, false, box, norm, why, path) < 0)
			return -1;
	}
	return 0;
}

static bool header_ok(const cJSON *v, size_t max)
{
	return !cJSON_IsString(v) ||
	       (util_utf8(v->valuestring) && send_text_clean(v->valuestring) &&
		strlen(v->valuestring) <= max);
}

/* What substitution makes of each personalization's header fields must pass their checks
 * too, and its content must stay within bounds. */
static int check_substituted(enum send_dialect d, cJSON *payload, struct send_problem *why)
{
	const char *field = d == SEND_NETCORE ? "attributes" : "substitutions", *sentence;
	int parts =
		cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(payload, "personalizations"));
	/* Netcore's tags become "" even without attributes: every Netcore payload is marked. */
	bool marked = d == SEND_NETCORE;

	if (marked)
		cJSON_AddStringToObject(payload, "tag_syntax", subst_syntax_name(SUBST_NETCORE));
	for (int i = 0; i < parts; i++) {
		if (!subst_needed(payload, i))
			continue;
		if (!marked)
			cJSON_AddStringToObject(payload, "tag_syntax",
						subst_syntax_name(SUBST_LITERAL));
		marked = true;
		cJSON *view = subst_view(payload, i, true, &sentence);
		if (!view)
			return send_fail(why, sentence, "personalizations[%d].%s", i, field);
		const cJSON *reply_to = cJSON_GetObjectItemCaseSensitive(view, "reply_to"), *box;
		bool ok = header_ok(cJSON_GetObjectItemCaseSensitive(view, "subject"),
				    SEND_SUBJECT_MAX) &&
			  header_ok(cJSON_GetObjectItemCaseSensitive(reply_to, "name"),
				    SEND_NAME_MAX);
		cJSON_ArrayForEach(box, cJSON_GetObjectItemCaseSensitive(view, "reply_to_list"))
		{
			ok = ok && header_ok(cJSON_GetObjectItemCaseSensitive(box, "name"),
					     SEND_NAME_MAX);
		}
		cJSON_Delete(view);
		if (!ok)
			return send_fail(why,
					 "With these values the subject or a reply-to name would "
					 "hold a control character or be too long.",
					 "personalizations[%d].%s", i, field);
	}
	return 0;
}

int send_fields(enum send_dialect d, const cJSON *body, struct send_request *r,
		struct send_problem *why)
{
	if (check_known(body, dialects[d].top, dialects[d].refused_top, why, "") < 0)
		return -1;
	if (d == SEND_NETCORE) {
		if (check_settings(body, why) < 0 || merge_bcc(body, r, why) < 0)
			return -1;
	} else if (parse_reply_to_list(body, r->payload, why) < 0 ||
		   parse_strings(body, "custom_args", SIZE_MAX, r->payload, why, "") < 0 ||
		   check_setting_group(body, "tracking_settings",
				       "Postern does not track opens, clicks or subscriptions; "
				       "set enable to false or leave it out.",
				       NULL, why) < 0 ||
		   check_setting_group(body, "mail_settings",
				       "Postern does not offer this mail setting; set enable to "
				       "false or leave it out.",
				       &r->sandbox, why) < 0) {
		return -1;
	}
	return check_substituted(d, r->payload, why);
}
