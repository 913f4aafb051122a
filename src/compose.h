/* Message composition: turns one personalization of a canonical send payload (see send.h)
 * into an RFC 5322 message with CRLF line endings, using GMime for every MIME encoding.
 * Pure: no I/O besides memory. */
#ifndef POSTERN_COMPOSE_H
#define POSTERN_COMPOSE_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* Initializes GMime once; safe to call from any thread, any number of times. The other
 * functions call it themselves. */
void compose_init(void);

/* A message submitted over SMTP is stored in its own form,
 * {"smtp":{"mail_from":…,"rcpt":[…],"sender":…,"mime":"<base64>"}}: one part, sent to the
 * envelope recipients from the envelope sender, its bytes (already fixed up for submission)
 * as they are. Base64 keeps 8-bit bytes that are not UTF-8 intact in JSON and in a text
 * column. Returns the payload, malloc'd; sender may be NULL. */
char *compose_smtp_payload(const char *mail_from, const char *const *rcpts, int nrcpts,
			   const char *sender, const char *data, size_t len);
/* The envelope sender of a submitted message; NULL for a composed one (its From). */
const char *compose_mail_from(const cJSON *payload);
/* The Sender header of a submitted message; NULL when there is none. */
const char *compose_sender(const cJSON *payload);

/* Number of personalizations in payload (0 when there are none); 1 for a submitted message. */
int compose_parts(const cJSON *payload);

/* Envelope recipients of personalization part: to, then cc, then bcc emails, in order (a
 * submitted message's envelope recipients).
 * Fills out[0..max) with pointers into payload and returns the total count, which may exceed
 * max (only the first max are stored then); -1 if part is out of range. */
int compose_recipients(const cJSON *payload, int part, const char **out, int max);

/* Composes personalization part into an RFC 5322 message with CRLF line endings: its values
 * substituted (subst.h), the message's attachments and then its own. message_id
 * is without angle brackets ("3f2a...@acme.test"); date is seconds since the epoch (UTC).
 * Returns 0 with *out (malloc'd, NUL-terminated, *len bytes before the NUL), or -1 with *why
 * set to a sentence (a static string). Refuses control characters in anything bound for a header,
 * and custom headers that would set identity or a header compose writes itself. A submitted
 * message is its stored bytes: message_id and date are its own already. */
int compose_message(const cJSON *payload, int part, const char *message_id, int64_t date,
		    char **out, size_t *len, const char **why);

#endif
