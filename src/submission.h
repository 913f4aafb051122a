/* A message submitted over SMTP, as RFC 6409 wants a submission server to treat it: its
 * identities read from the headers (GMime), then the fix-ups of §8 (Bcc removed, Date and
 * Message-ID added when missing) cut and prepended on the original bytes, so 8-bit and
 * UTF-8 content passes through unchanged. Pure: no I/O besides memory. */
#ifndef POSTERN_SUBMISSION_H
#define POSTERN_SUBMISSION_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"

struct submission {
	char from[ADDR_MAX];   /* the header From, normalized */
	char sender[ADDR_MAX]; /* the header Sender, normalized; "" when there is none */
	char *data;	       /* the fixed-up message, malloc'd */
	size_t len;
	/* The Message-ID its recipients see ("<…>": the first if several, or the one added),
	 * malloc'd. */
	char *message_id;
};

/* Reads the message data (CRLF line ends): exactly one From header with one mailbox, at
 * most one Sender with one mailbox, each value nothing beyond it and comments; no NUL byte
 * anywhere, no other control character in the header section. Then fixes it up: every Bcc removed,
 * and when missing "Date:" (date, seconds since the epoch) and "Message-ID: <id@from-domain>"
 * added, out->message_id saying which Message-ID its recipients see. Returns 0 with out filled
 * (free it with submission_free), or -1 with why saying what the client should fix. */
int submission_make(const char *data, size_t len, const char *id, int64_t date,
		    struct submission *out, char *why, size_t whylen);
void submission_free(struct submission *s);

#endif
