/* Message services that every front end calls (the HTTP API today), and the message events
 * they and the delivery workers hand to the store: what became of each recipient. */
#ifndef POSTERN_MESSAGES_H
#define POSTERN_MESSAGES_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Events being made for one message, to hand to one store call; the list owns their
 * recipients and data (types are literals). */
struct messages_events {
	struct store_event *ev;
	size_t n, cap;
};

/* Adds an event: recipient (NULL: none) is copied, data (malloc'd JSON text, NULL for {})
 * is taken. */
void messages_events_add(struct messages_events *l, const char *type, const char *recipient,
			 char *data);
/* Adds one event with a copy of data for each recipient of the personalizations from
 * from_part on: the recipients a message has not been sent to yet. A payload that could
 * not be read (NULL) gets one event naming no recipient. */
void messages_events_unsent(struct messages_events *l, const cJSON *payload, int from_part,
			    const char *type, const char *data);
/* Frees what the list holds and empties it. */
void messages_events_clear(struct messages_events *l);

/* Cancels a queued, scheduled or deferred message of the account, with a message.dropped
 * event (reason "cancelled") for each recipient it was not sent to yet (none for Postern's
 * own mail). A store_rc: STORE_CONFLICT when it is being sent or is done, STORE_NOT_FOUND
 * when the account has no such message. */
int messages_cancel(struct store *s, int64_t account_id, const char *uid, int64_t now);

#endif
