/* Retention: a background worker that purges what the [retention] durations say is old
 * enough (finished messages and their events, the payloads of finished messages, the
 * policy's counters), in small batches that leave the queue's writer its turn. */
#ifndef POSTERN_RETENTION_H
#define POSTERN_RETENTION_H

#include <stddef.h>

#include "config.h"
#include "store.h"

struct retention;

/* Starts the worker; its first round runs at once. NULL with err when it cannot start. */
struct retention *retention_start(struct store *s, const struct config *cfg, char *err,
				  size_t errlen);
/* Stops after the batch in hand. r may be NULL. */
void retention_stop(struct retention *r);

#endif
