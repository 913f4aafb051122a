/* The durable queue's front door: group commit. Callers hand over a message and wait until
 * the commit holding it has landed; a writer thread gathers everything that arrived while
 * the previous commit was on disk into the next one, so concurrent requests share an fsync
 * instead of paying one each. */
#ifndef POSTERN_QUEUE_H
#define POSTERN_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct queue;

/* on_commit (may be NULL) is called after each commit that stored messages, e.g. to wake
 * the delivery workers. NULL with err when the writer thread cannot start. */
struct queue *queue_start(struct store *s, void (*on_commit)(void *arg), void *arg, char *err,
			  size_t errlen);
/* Lets pending commits finish, then stops the writer. */
void queue_stop(struct queue *q);
/* Stores m durably. Returns STORE_OK once it is committed, or the store's failure: a
 * message the database refuses (STORE_REFUSED, STORE_CONFLICT) fails alone, never the
 * messages that shared its commit; STORE_FAIL, the store failing as a whole, fails all. */
int queue_put(struct queue *q, const struct store_message *m);
/* The same without waiting: done(arg, rc) runs on the writer thread once the commit
 * holding m has landed (or failed); m must stay valid until then. When the queue is
 * stopping, done runs at once with STORE_FAIL. */
void queue_put_async(struct queue *q, const struct store_message *m,
		     void (*done)(void *arg, int rc), void *arg);

/* False once the writer is stopping, or when one commit has been on its way for longer
 * than QUEUE_STALL seconds: accepted mail would wait. */
#define QUEUE_STALL 30
bool queue_alive(struct queue *q);

struct queue_stats {
	uint64_t commits;
	uint64_t messages;
	uint64_t largest; /* the most messages one commit held */
};
void queue_stats(struct queue *q, struct queue_stats *out);

#endif
