/* Events: the vocabulary, the data each kind carries, and the two webhook bodies (the
 * Standard Webhooks format and SendGrid's Event Webhook format). Pure: no I/O; signing is
 * whsig.h's. */
#ifndef POSTERN_EVENT_H
#define POSTERN_EVENT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* The types a webhook may subscribe to (every type but webhook.test), in a fixed order. */
extern const char *const event_types[];
extern const size_t event_ntypes;

/* True for a type of event_types. */
bool event_type_known(const char *type);
/* True for message.* types: the only ones the SendGrid format carries. */
bool event_is_message(const char *type);
/* SendGrid's name for a message event ("delivered", "bounce", ...), and "processed" for
 * webhook.test (sent as a sample processed event); NULL when it has none. */
const char *event_sendgrid_name(const char *type);

/* A JSON object of string fields, malloc'd: key, value, ..., NULL. A NULL value leaves its
 * key out. */
char *event_json(const char *key, ...) __attribute__((sentinel));
/* The same with one number field first: {"name": number, key: value, ...}. */
char *event_json_num(const char *name, int64_t number, const char *key, ...)
	__attribute__((sentinel));

/* A message's meta for its events (store_message.meta), malloc'd: {"tags": [...],
 * "custom_args": {...}} from a canonical payload (send.h), with "recipient_custom_args":
 * {email: {...}} for the recipients of personalizations that have custom_args of their own
 * (they win over the message's in that recipient's events); NULL when it has none of them. */
char *event_meta(const cJSON *payload);

/* An event as GET /api/events shows it: {id, type, created_at (RFC 3339), message_id,
 * recipient, data}, data being the event's own fields with, for a message event,
 * message_id, recipient, from, tags and custom_args, and smtp_id (the Message-ID the
 * recipient's copy carries: the event's own, else its meta's, a submitted message's). NULL
 * for fields that do not apply. */
cJSON *event_render(const struct store_event_info *e);
/* The data object alone, as event_render puts it (caller frees). */
cJSON *event_data(const struct store_event_info *e);

/* The Standard Webhooks body of one event, malloc'd:
 * {"type": ..., "timestamp": "<RFC 3339>", "data": {...}}. */
char *event_standard_body(const struct store_event_info *e);
/* The webhook-id of an event: the same for every retry ("evt_<id>"). */
void event_standard_id(const struct store_event_info *e, char *out, size_t n);
/* A SendGrid Event Webhook body, malloc'd: a JSON array of the message events of e[0..n)
 * in SendGrid's shape (email, timestamp, event, sg_event_id, sg_message_id, smtp-id (the
 * data's smtp_id, else "<message_id@from-domain>"), reason, response, attempt (deferrals
 * only), category (a string for one tag, an array for several), and custom_args as
 * top-level keys), and webhook.test as a sample processed event for example@test.com with
 * "postern_test": true and its webhook_id. Other types are left out. */
char *event_sendgrid_body(const struct store_event_info *e, size_t n);

#endif
