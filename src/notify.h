/* Postern's own mail to users: the "Verify All Emails" message sent to an account's Admins
 * for each batch of added senders. It goes through the same queue and relay as any
 * message, marked as system mail so the account's sender policy never applies to it. */
#ifndef POSTERN_NOTIFY_H
#define POSTERN_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "queue.h"
#include "store.h"

/* Queues the email for a batch whose link carries token. Returns a store_rc. */
int notify_verification(struct store *s, struct queue *q, const struct config *cfg,
			int64_t account_id, const char *account_name, const char *token,
			int64_t expires_at, const char *const *addresses, size_t n);

#endif
