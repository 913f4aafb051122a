/* Events as their readers see them: the vocabulary, the data of each event with what its
 * message repeats (meta), and the bodies of the two webhook formats. Pure: the store gives
 * the rows, whsig.c signs what this writes. */
#include "event.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "util.h"

const char *const event_types[] = {
	"message.processed",	 "message.deferred",	    "message.delivered", "message.bounced",
	"message.dropped",	 "message.complained",	    "sender.added",	 "sender.verified",
	"sender.removed",	 "sender_auth.changed",	    "domain.verified",	 "domain.failed",
	"sender_policy.refused", "sender_policy.monitored",
};
const size_t event_ntypes = ARRAY_LEN(event_types);

/* The events the SendGrid format carries, under its names; reply_as is where the relay's
 * reply goes (SendGrid puts a bounce's in "reason", a delivery's or deferral's in
 * "response"), and a returned report's diagnostic when there is no reply; attempt whether
 * the attempt number goes too (SendGrid sends it with deferrals only). A complaint is
 * SendGrid's spamreport. webhook.test goes as a sample processed event
 * (sendgrid_test_item). */
static const struct {
	const char *type;
	const char *name;
	const char *reply_as;
	bool attempt;
} sendgrid_kinds[] = {
	{"message.processed", "processed", NULL, false},
	{"message.deferred", "deferred", "response", true},
	{"message.delivered", "delivered", "response", false},
	{"message.bounced", "bounce", "reason", false},
	{"message.dropped", "dropped", NULL, false},
	{"message.complained", "spamreport", NULL, false},
	{"webhook.test", "processed", NULL, false},
};

/* The fields that event_data adds to a message event's own (smtp_id from the message's
 * meta when the event has none), and that a SendGrid item writes under names of its own. */
static const char *const message_fields[] = {"message_id", "recipient",	  "from",
					     "tags",	   "custom_args", "smtp_id"};

bool event_type_known(const char *type)
{
	for (size_t i = 0; type && i < event_ntypes; i++)
		if (strcmp(type, event_types[i]) == 0)
			return true;
	return false;
}

bool event_is_message(const char *type)
{
	return event_type_known(type) && strncmp(type, "message.", 8) == 0;
}

static int sendgrid_kind(const char *type)
{
	for (size_t i = 0; type && i < ARRAY_LEN(sendgrid_kinds); i++)
		if (strcmp(type, sendgrid_kinds[i].type) == 0)
			return (int)i;
	return -1;
}

const char *event_sendgrid_name(const char *type)
{
	int k = sendgrid_kind(type);
	return k < 0 ? NULL : sendgrid_kinds[k].name;
}

/* An int64 as a JSON number written exactly (a double would round past 2^53). */
static void add_int(cJSON *o, const char *name, int64_t n)
{
	char text[24];
	snprintf(text, sizeof(text), "%" PRId64, n);
	cJSON_AddRawToObject(o, name, text);
}

/* o printed, and freed. */
static char *print(cJSON *o)
{
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!text)
		fatal("out of memory");
	return text;
}

/* o with the string fields key, value, ... of ap added; printed, and o freed. */
static char *print_strings(cJSON *o, const char *key, va_list ap)
{
	for (; key; key = va_arg(ap, const char *)) {
		const char *value = va_arg(ap, const char *);
		if (value)
			cJSON_AddStringToObject(o, key, value);
	}
	return print(o);
}

char *event_json(const char *key, ...)
{
	va_list ap;
	va_start(ap, key);
	char *text = print_strings(cJSON_CreateObject(), key, ap);
	va_end(ap);
	return text;
}

char *event_json_num(const char *name, int64_t number, const char *key, ...)
{
	cJSON *o = cJSON_CreateObject();
	add_int(o, name, number);
	va_list ap;
	va_start(ap, key);
	char *text = print_strings(o, key, ap);
	va_end(ap);
	return text;
}

/* o[key] = value unless o has key already (then value is freed): the first word on a name
 * stands. */
static void add_new(cJSON *o, const char *key, cJSON *value)
{
	if (cJSON_GetObjectItemCaseSensitive(o, key))
		cJSON_Delete(value);
	else
		cJSON_AddItemToObject(o, key, value);
}

/* A copy of from[key] when it is a non-empty item that is_type accepts; else NULL. */
static cJSON *copy_nonempty(const cJSON *from, const char *key,
			    cJSON_bool (*is_type)(const cJSON *))
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, key);
	return is_type(v) && v->child ? cJSON_Duplicate(v, true) : NULL;
}

/* SendGrid lets a personalization carry custom_args of its own, which win over the
 * message's for its recipients: by_recipient[email] = those args, for each recipient of a
 * personalization that has them (the first personalization wins for a repeated address). */
static void add_personal_args(cJSON *by_recipient, const cJSON *personalization)
{
	static const char *const lists[] = {"to", "cc", "bcc"};
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(personalization, "custom_args"), *r;
	if (!cJSON_IsObject(args) || !args->child)
		return;
	for (size_t i = 0; i < ARRAY_LEN(lists); i++) {
		cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(personalization, lists[i]))
		{
			const cJSON *email = cJSON_GetObjectItemCaseSensitive(r, "email");
			if (cJSON_IsString(email))
				add_new(by_recipient, email->valuestring,
					cJSON_Duplicate(args, true));
		}
	}
}

char *event_meta(const cJSON *payload)
{
	cJSON *tags = copy_nonempty(payload, "tags", cJSON_IsArray);
	cJSON *args = copy_nonempty(payload, "custom_args", cJSON_IsObject);
	cJSON *by_recipient = cJSON_CreateObject(), *p;
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(payload, "personalizations"))
	{
		add_personal_args(by_recipient, p);
	}
	if (!tags && !args && !by_recipient->child) {
		cJSON_Delete(by_recipient);
		return NULL;
	}
	cJSON *meta = cJSON_CreateObject();
	cJSON_AddItemToObject(meta, "tags", tags ? tags : cJSON_CreateArray());
	cJSON_AddItemToObject(meta, "custom_args", args ? args : cJSON_CreateObject());
	if (by_recipient->child)
		cJSON_AddItemToObject(meta, "recipient_custom_args", by_recipient);
	else
		cJSON_Delete(by_recipient);
	return print(meta);
}

/* text parsed when it is a JSON object; else an empty object. */
static cJSON *parse_object(const char *text)
{
	cJSON *o = text && *text ? cJSON_Parse(text) : NULL;
	if (cJSON_IsObject(o))
		return o;
	cJSON_Delete(o);
	return cJSON_CreateObject();
}

/* o[key] = value, replacing what o had under key. */
static void put(cJSON *o, const char *key, cJSON *value)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, key);
	cJSON_AddItemToObject(o, key, value);
}

/* The message's custom_args with the recipient's own laid over them. */
static cJSON *custom_args_of(const cJSON *meta, const char *recipient)
{
	cJSON *args = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(meta, "custom_args"), true);
	if (!cJSON_IsObject(args)) {
		cJSON_Delete(args);
		args = cJSON_CreateObject();
	}
	const cJSON *own = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(meta, "recipient_custom_args"), recipient);
	const cJSON *v;
	cJSON_ArrayForEach(v, own)
	{
		put(args, v->string, cJSON_Duplicate(v, true));
	}
	return args;
}

cJSON *event_data(const struct store_event_info *e)
{
	cJSON *own = parse_object(e->data);
	if (!event_is_message(e->type))
		return own;
	cJSON *meta = parse_object(e->meta), *v;
	cJSON *data = cJSON_CreateObject();
	cJSON *tags = cJSON_DetachItemFromObjectCaseSensitive(meta, "tags");
	if (!cJSON_IsArray(tags)) {
		cJSON_Delete(tags);
		tags = cJSON_CreateArray();
	}
	cJSON_AddStringToObject(data, "message_id", e->message_uid);
	cJSON_AddStringToObject(data, "recipient", e->recipient);
	cJSON_AddStringToObject(data, "from", e->from);
	cJSON_AddItemToObject(data, "tags", tags);
	cJSON_AddItemToObject(data, "custom_args", custom_args_of(meta, e->recipient));
	while ((v = own->child)) /* what the message says of itself wins */
		add_new(data, v->string, cJSON_DetachItemViaPointer(own, v));
	/* A submitted message has one Message-ID, its own: its meta holds it for every event. */
	const cJSON *smtp_id = cJSON_GetObjectItemCaseSensitive(meta, "smtp_id");
	if (cJSON_IsString(smtp_id))
		add_new(data, "smtp_id", cJSON_CreateString(smtp_id->valuestring));
	cJSON_Delete(own);
	cJSON_Delete(meta);
	return data;
}

static void add_string_or_null(cJSON *o, const char *name, const char *s)
{
	if (s[0])
		cJSON_AddStringToObject(o, name, s);
	else
		cJSON_AddNullToObject(o, name);
}

cJSON *event_render(const struct store_event_info *e)
{
	char at[21];
	cJSON *o = cJSON_CreateObject();
	util_iso8601(e->created_at, at);
	add_int(o, "id", e->id);
	cJSON_AddStringToObject(o, "type", e->type);
	cJSON_AddStringToObject(o, "created_at", at);
	add_string_or_null(o, "message_id", e->message_uid);
	add_string_or_null(o, "recipient", e->recipient);
	cJSON_AddItemToObject(o, "data", event_data(e));
	return o;
}

char *event_standard_body(const struct store_event_info *e)
{
	char at[21];
	cJSON *o = cJSON_CreateObject();
	util_iso8601(e->created_at, at);
	cJSON_AddStringToObject(o, "type", e->type);
	cJSON_AddStringToObject(o, "timestamp", at);
	cJSON_AddItemToObject(o, "data", event_data(e));
	return print(o);
}

void event_standard_id(const struct store_event_info *e, char *out, size_t n)
{
	snprintf(out, n, "evt_%" PRId64, e->id);
}

static bool is_message_field(const char *key)
{
	for (size_t i = 0; i < ARRAY_LEN(message_fields); i++)
		if (strcmp(key, message_fields[i]) == 0)
			return true;
	return false;
}

/* An attempt number as SendGrid writes it: a string. */
static cJSON *attempt_text(const cJSON *n)
{
	char text[24];
	snprintf(text, sizeof(text), "%" PRId64, (int64_t)n->valuedouble);
	return cJSON_CreateString(text);
}

/* The event's own fields under SendGrid's names: the reply where the kind puts it (or
 * nowhere), else a report's diagnostic there, the attempt as a string (as SendGrid sends
 * it) where the kind has one, the rest as they are; none takes the place of a fixed field. */
static void add_own_fields(cJSON *item, const cJSON *data, int kind)
{
	const char *reply_as = sendgrid_kinds[kind].reply_as;
	bool has_reply = cJSON_GetObjectItemCaseSensitive(data, "reply") != NULL;
	const cJSON *v;
	cJSON_ArrayForEach(v, data)
	{
		if (is_message_field(v->string))
			continue;
		if (strcmp(v->string, "reply") == 0 ||
		    (strcmp(v->string, "diagnostic") == 0 && !has_reply)) {
			if (reply_as)
				add_new(item, reply_as, cJSON_Duplicate(v, true));
		} else if (strcmp(v->string, "attempt") == 0) {
			if (sendgrid_kinds[kind].attempt && cJSON_IsNumber(v))
				add_new(item, "attempt", attempt_text(v));
		} else {
			add_new(item, v->string, cJSON_Duplicate(v, true));
		}
	}
}

/* The fields a SendGrid item opens with; email and message_id are left out when empty. */
static cJSON *sendgrid_head(const struct store_event_info *e, int kind, const char *email,
			    const char *message_id, const char *smtp_id)
{
	cJSON *item = cJSON_CreateObject();
	char id[32];
	event_standard_id(e, id, sizeof(id));
	if (email[0])
		cJSON_AddStringToObject(item, "email", email);
	add_int(item, "timestamp", e->created_at);
	cJSON_AddStringToObject(item, "event", sendgrid_kinds[kind].name);
	cJSON_AddStringToObject(item, "sg_event_id", id);
	if (message_id[0]) {
		cJSON_AddStringToObject(item, "sg_message_id", message_id);
		cJSON_AddStringToObject(item, "smtp-id", smtp_id);
	}
	return item;
}

/* The tags as SendGrid sends categories: one as a string, several as an array; NULL for
 * none. */
static cJSON *category_of(const cJSON *tags)
{
	int n = cJSON_GetArraySize(tags);
	if (n == 1)
		return cJSON_Duplicate(tags->child, true);
	return n > 1 ? cJSON_Duplicate(tags, true) : NULL;
}

/* One event in SendGrid's shape: its fixed fields (smtp-id the Message-ID its recipient's
 * copy carried, or the first personalization's for events written without one), its own,
 * its tags as "category", and the custom_args at the top level where they take no name
 * already used. */
static cJSON *sendgrid_item(const struct store_event_info *e, int kind)
{
	cJSON *data = event_data(e);
	const char *smtp_id =
		cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(data, "smtp_id"));
	char first[40 + ADDR_DOMAIN_MAX + 3];
	if (!smtp_id) {
		snprintf(first, sizeof(first), "<%s@%s>", e->message_uid, addr_domain(e->from));
		smtp_id = first;
	}
	cJSON *item = sendgrid_head(e, kind, e->recipient, e->message_uid, smtp_id);
	add_own_fields(item, data, kind);
	cJSON *category = category_of(cJSON_GetObjectItemCaseSensitive(data, "tags")), *v;
	if (category)
		add_new(item, "category", category);
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(data, "custom_args"))
	{
		add_new(item, v->string, cJSON_Duplicate(v, true));
	}
	cJSON_Delete(data);
	return item;
}

/* webhook.test as a sample of what a receiver reads: a processed event, marked as the test
 * and naming the endpoint it tests, so code written for SendGrid's events takes it as one. */
static cJSON *sendgrid_test_item(const struct store_event_info *e, int kind)
{
	cJSON *data = parse_object(e->data);
	cJSON *item = sendgrid_head(e, kind, "example@test.com", "test", "<test@postern.invalid>");
	cJSON_AddTrueToObject(item, "postern_test");
	cJSON *hook = cJSON_DetachItemFromObjectCaseSensitive(data, "webhook_id");
	if (hook)
		cJSON_AddItemToObject(item, "webhook_id", hook);
	cJSON_Delete(data);
	return item;
}

char *event_sendgrid_body(const struct store_event_info *e, size_t n)
{
	cJSON *list = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		int kind = sendgrid_kind(e[i].type);
		if (kind >= 0)
			cJSON_AddItemToArray(list, event_is_message(e[i].type)
							   ? sendgrid_item(&e[i], kind)
							   : sendgrid_test_item(&e[i], kind));
	}
	return print(list);
}
