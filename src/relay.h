/* The relay adapter: hands a composed message to where [relay] url points, either an SMTP
 * server through libcurl (smtp://, smtps://, STARTTLS, AUTH) or an outbox directory (one
 * .eml file per message, written atomically). One struct relay per delivery worker, so
 * each keeps its own connection open across messages. */
#ifndef POSTERN_RELAY_H
#define POSTERN_RELAY_H

#include <stddef.h>

#include "config.h"

enum relay_outcome { RELAY_SENT, RELAY_DEFERRED, RELAY_FAILED };

#define RELAY_REJECTED_MAX 16384

struct relay_result {
	enum relay_outcome outcome;
	int code;	 /* the relay's last SMTP code; 0 when it was never reached */
	char reply[512]; /* its last reply (with the queue id on success), or the error */
	/* JSON array of recipients the relay refused: [{"email","reply"}], "" when none. */
	char rejected[RELAY_REJECTED_MAX];
};

struct relay;

/* Returns NULL with err when the relay cannot be used (e.g. the outbox is not writable). */
struct relay *relay_new(const struct config *cfg, char *err, size_t errlen);
void relay_free(struct relay *r);
/* Sends one message. name identifies it in the outbox ("<id>.eml"). */
void relay_send(struct relay *r, const char *name, const char *from, const char *const *rcpts,
		int nrcpts, const char *data, size_t len, struct relay_result *out);

#endif
