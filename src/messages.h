/* Message services that every front end calls (the HTTP API today), and the message events
 * they and the delivery workers hand to the store: what became of each recipient. */
#ifndef POSTERN_MESSAGES_H
#define POSTERN_MESSAGES_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Room for a Message-ID: the message's id, a personalization's index and its From's
 * domain, in angle brackets. */
#define MESSAGES_MSGID_MAX 320

/* A personalization's place in the request as the client wrote it ("index", kept by
 * send_schedule when it reorders them): what its Message-ID and its refusals go by. */
int messages_part_index(const cJSON *payload, int part);
/* The Message-ID Postern writes into the personalization numbered index of message uid
 * from `from`, without angle brackets, in out (n bytes; MESSAGES_MSGID_MAX - 2 hold it):
 * "<uid>@<from's domain>" for the request's first, which carries the id the client was
 * given, "<uid>.<index>@<domain>" for the others. */
void messages_msgid(const char *uid, const char *from, int index, char *out, size_t n);
/* The events' smtp_id for the recipients of personalization part: its Message-ID in angle
 * brackets, in out. NULL for a message submitted over SMTP, which carries its own (its
 * meta holds it: submit.h), and for a payload that could not be read. */
const char *messages_smtp_id(const char *uid, const char *from, const cJSON *payload, int part,
			     char out[MESSAGES_MSGID_MAX]);

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
/* Adds a message.dropped event with reason (and attempt, when not 0) for each recipient
 * of the personalizations from from_part on: the recipients message uid from `from` has
 * not been sent to yet, each with the smtp_id of its personalization. A payload that could
 * not be read (NULL) gets one event naming no recipient. */
void messages_events_dropped(struct messages_events *l, const char *uid, const char *from,
			     const cJSON *payload, int from_part, const char *reason, int attempt);
/* Frees what the list holds and empties it. */
void messages_events_clear(struct messages_events *l);

/* Cancels a queued, scheduled or deferred message of the account, with a message.dropped
 * event (reason "cancelled") for each recipient it was not sent to yet (none for Postern's
 * own mail). A store_rc: STORE_CONFLICT when it is being sent or is done, STORE_NOT_FOUND
 * when the account has no such message. */
int messages_cancel(struct store *s, int64_t account_id, const char *uid, int64_t now);

#endif
