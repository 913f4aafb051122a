/* Message services shared by the front ends, and the lists of message events that they and
 * the delivery workers write with each change of a message. */
#include "messages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "compose.h"
#include "event.h"
#include "send.h"
#include "util.h"

/* A message's recipients not sent to yet are read again at most this many times when its
 * parts keep going out while it is being cancelled. */
#define CANCEL_TRIES 5

int messages_part_index(const cJSON *payload, int part)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(payload, "personalizations");
	const cJSON *index =
		cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(list, part), "index");
	return cJSON_IsNumber(index) ? index->valueint : part;
}

void messages_msgid(const char *uid, const char *from, int index, char *out, size_t n)
{
	if (index)
		snprintf(out, n, "%s.%d@%s", uid, index, addr_domain(from));
	else
		snprintf(out, n, "%s@%s", uid, addr_domain(from));
}

const char *messages_smtp_id(const char *uid, const char *from, const cJSON *payload, int part,
			     char out[MESSAGES_MSGID_MAX])
{
	if (!payload || compose_mail_from(payload))
		return NULL;
	out[0] = '<';
	messages_msgid(uid, from, messages_part_index(payload, part), out + 1,
		       MESSAGES_MSGID_MAX - 2);
	strcat(out, ">");
	return out;
}

void messages_events_add(struct messages_events *l, const char *type, const char *recipient,
			 char *data)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->ev = xrealloc(l->ev, l->cap * sizeof(*l->ev));
	}
	l->ev[l->n++] = (struct store_event){
		.type = type,
		.recipient = recipient ? xstrdup(recipient) : NULL,
		.data = data,
	};
}

/* The data of a message.dropped event; smtp_id may be NULL. */
static char *dropped_data(const char *reason, int attempt, const char *smtp_id)
{
	return attempt > 0 ? event_json_num("attempt", attempt, "reason", reason, "smtp_id",
					    smtp_id, NULL)
			   : event_json("reason", reason, "smtp_id", smtp_id, NULL);
}

void messages_events_dropped(struct messages_events *l, const char *uid, const char *from,
			     const cJSON *payload, int from_part, const char *reason, int attempt)
{
	const char *rcpts[SEND_MAX_RECIPIENTS];
	char smtp_id[MESSAGES_MSGID_MAX];
	if (!payload) {
		messages_events_add(l, "message.dropped", NULL,
				    dropped_data(reason, attempt, NULL));
		return;
	}
	int parts = compose_parts(payload);
	for (int part = from_part; part < parts; part++) {
		const char *id = messages_smtp_id(uid, from, payload, part, smtp_id);
		int n = compose_recipients(payload, part, rcpts, SEND_MAX_RECIPIENTS);
		for (int i = 0; i < n && i < SEND_MAX_RECIPIENTS; i++)
			messages_events_add(l, "message.dropped", rcpts[i],
					    dropped_data(reason, attempt, id));
	}
}

void messages_events_clear(struct messages_events *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free((char *)l->ev[i].recipient);
		free((char *)l->ev[i].data);
	}
	free(l->ev);
	*l = (struct messages_events){0};
}

/* One try: the events are made for the parts_done read now; STORE_TOO_SOON when a part
 * went out before the cancel landed. */
static int cancel_once(struct store *s, int64_t account_id, const char *uid, int64_t now)
{
	struct store_message_info *m = xcalloc(1, sizeof(*m));
	char *payload = NULL;
	struct messages_events ev = {0};
	int rc = store_message_get(s, account_id, uid, m);
	if (rc == STORE_OK && !m->system)
		rc = store_message_payload(s, account_id, uid, &payload);
	if (rc == STORE_OK && !m->system) {
		cJSON *p = cJSON_Parse(payload);
		messages_events_dropped(&ev, m->uid, m->from, p, m->parts_done, "cancelled", 0);
		cJSON_Delete(p);
	}
	if (rc == STORE_OK)
		rc = store_message_cancel(s, account_id, uid, now, m->parts_done, ev.ev, ev.n);
	messages_events_clear(&ev);
	free(payload);
	free(m);
	return rc;
}

int messages_cancel(struct store *s, int64_t account_id, const char *uid, int64_t now)
{
	for (int i = 0; i < CANCEL_TRIES; i++) {
		int rc = cancel_once(s, account_id, uid, now);
		if (rc != STORE_TOO_SOON)
			return rc;
	}
	/* Its parts kept going out: it is being sent. */
	return STORE_CONFLICT;
}
