/* Postern's own mail to users: the "Verify All Emails" message sent to an account's Admins
 * for each batch of added senders, and the owner's confirmation link sent to a sender. It goes
 * through the same queue and relay as any message, marked as system mail so the account's sender
 * policy never applies to it. */
#ifndef POSTERN_NOTIFY_H
#define POSTERN_NOTIFY_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "dkimkey.h"
#include "queue.h"
#include "store.h"

/* Derives the key that seals verification links in the queue from the DKIM master key.
 * Called once at start, before any mail is queued or delivered; notify_end wipes it. */
void notify_init(const unsigned char master[DKIMKEY_MASTER_LEN]);
void notify_end(void);

/* Queues the email for a batch whose link carries token. The token is stored sealed, never
 * in clear, and the body is written at delivery (notify_render). Returns a store_rc. */
int notify_verification(struct store *s, struct queue *q, const struct config *cfg,
			int64_t account_id, const char *account_name, const char *token,
			int64_t expires_at, const char *const *addresses, size_t n);

/* Queues the owner's confirmation email for a sender, to the address itself, its link
 * ({public_url}/confirm/TOKEN) sealed like the Admins'. Returns a store_rc. */
int notify_owner(struct queue *q, const struct config *cfg, int64_t account_id,
		 const char *account_name, const char *token, int64_t expires_at,
		 const char *address);

/* At delivery: writes the content of a queued verification email into payload, opening
 * its link. Other payloads are left as they are. 0, or -1 when the link cannot be opened
 * (another master key, or an altered payload). */
int notify_render(cJSON *payload, const struct config *cfg);

#endif
