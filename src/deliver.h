/* Delivery workers: claim due messages, re-check the sender policy, compose, relay, and
 * record the outcome with retries and backoff. */
#ifndef POSTERN_DELIVER_H
#define POSTERN_DELIVER_H

#include <stddef.h>

#include "config.h"
#include "dkimkey.h"
#include "drops.h"
#include "policy_cache.h"
#include "store.h"

struct deliver;

/* Starts [relay] connections workers. NULL with err when the relay cannot be used. */
/* master unseals the DKIM keys messages are signed with. */
struct deliver *deliver_start(struct store *s, const struct config *cfg,
			      struct policy_cache *policies, struct drops *drops,
			      const unsigned char master[DKIMKEY_MASTER_LEN], char *err,
			      size_t errlen);
/* Tells idle workers that new messages are due. */
void deliver_wake(void *deliver);
/* Lets each worker finish the message in its hands, then stops them. */
void deliver_stop(struct deliver *d);

#endif
