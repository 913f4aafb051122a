/* Group commit. Each caller puts a waiter on the pending list and sleeps on its own
 * condition; the writer takes the whole list, stores it in one transaction, and wakes each
 * waiter with the result. While one commit is on disk the next batch collects itself. A row
 * the database refuses fails its own request only: the batch is split until it is alone. */
#include "queue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "util.h"
#include "worker.h"

#define BATCH_MAX 1024

/* A message waiting for its commit: either a caller asleep on cond, or (async) a
 * callback to run, after which the waiter is freed. */
struct waiter {
	const struct store_message *m;
	int rc;
	bool done;
	pthread_cond_t cond;
	void (*callback)(void *arg, int rc);
	void *arg;
	struct waiter *next;
};

struct queue {
	struct store *store;
	void (*on_commit)(void *arg);
	void *arg;
	pthread_mutex_t lock;
	struct waiter *head, **tail;
	struct worker *writer; /* once it is stopping, no more messages are taken */
	struct queue_stats stats;
	_Atomic double writing_since; /* monotonic start of the commit on its way; 0: none */
};

/* Takes up to BATCH_MAX waiters off the list; called with the lock held. */
static size_t take(struct queue *q, struct waiter **batch)
{
	size_t n = 0;
	while (q->head && n < BATCH_MAX) {
		batch[n++] = q->head;
		q->head = q->head->next;
	}
	if (!q->head)
		q->tail = &q->head;
	return n;
}

/* Stores m[0..n) in one transaction, each message's result in rc[]; returns how many
 * commits landed. When the database refuses a row (its own data: a constraint, a trigger, a
 * value the column cannot hold), nothing of the batch was written, yet the others would be:
 * each half is committed on its own, down to the one message at fault, so a bad request
 * costs a few more commits and never fails the requests it happened to share one with. A
 * store that fails as a whole (unreachable, full, busy) fails everyone at once. */
static size_t commit(struct queue *q, const struct store_message *m, int *rc, size_t n)
{
	int r = store_messages_add(q->store, m, n);
	if (n > 1 && (r == STORE_REFUSED || r == STORE_CONFLICT)) {
		size_t half = n / 2;
		return commit(q, m, rc, half) + commit(q, m + half, rc + half, n - half);
	}
	for (size_t i = 0; i < n; i++)
		rc[i] = r;
	if (r == STORE_OK)
		metrics_commit_size(n); /* each commit that landed, however the batch was split */
	else
		log_error("queue: a commit of %zu messages failed; answering %s", n,
			  r == STORE_FAIL ? "503" : "with an error");
	return r == STORE_OK;
}

/* The writer's buffers, one slot per message of a batch. */
struct batch {
	struct waiter **waiters;
	struct store_message *msgs;
	int *rcs;
};

/* Takes the next batch off the list; 0 when it is empty. */
static size_t take_next(struct queue *q, struct batch *b)
{
	pthread_mutex_lock(&q->lock);
	size_t n = take(q, b->waiters);
	pthread_mutex_unlock(&q->lock);
	return n;
}

/* Commits n waiters and answers each: a sleeping caller is woken, a callback is run
 * without the lock. */
static void write_batch(struct queue *q, struct batch *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b->msgs[i] = *b->waiters[i]->m;
	atomic_store(&q->writing_since, util_monotonic());
	size_t commits = commit(q, b->msgs, b->rcs, n);
	atomic_store(&q->writing_since, 0.0);

	pthread_mutex_lock(&q->lock);
	size_t stored = 0;
	for (size_t i = 0; i < n; i++)
		stored += b->rcs[i] == STORE_OK;
	q->stats.commits += commits;
	q->stats.messages += stored;
	if (commits == 1 && stored > q->stats.largest)
		q->stats.largest = stored;
	size_t async = 0;
	for (size_t i = 0; i < n; i++) {
		struct waiter *w = b->waiters[i];
		if (w->callback) {
			b->rcs[async] = b->rcs[i];
			b->waiters[async++] = w; /* answered below, without the lock */
			continue;
		}
		w->rc = b->rcs[i];
		w->done = true;
		pthread_cond_signal(&w->cond);
	}
	pthread_mutex_unlock(&q->lock);
	for (size_t i = 0; i < async; i++) {
		b->waiters[i]->callback(b->waiters[i]->arg, b->rcs[i]);
		free(b->waiters[i]);
	}
	if (stored && q->on_commit)
		q->on_commit(q->arg);
}

static void write_loop(void *arg, struct worker *self)
{
	struct queue *q = arg;
	struct batch b = {xcalloc(BATCH_MAX, sizeof(*b.waiters)),
			  xcalloc(BATCH_MAX, sizeof(*b.msgs)), xcalloc(BATCH_MAX, sizeof(*b.rcs))};
	bool more;
	do {
		/* Once more after the stop: queue_put checks for the stop under the lock this
		 * drain takes, so every message it let in is committed. */
		more = worker_wait(self, WORKER_FOREVER);
		size_t n;
		while ((n = take_next(q, &b)) > 0)
			write_batch(q, &b, n);
	} while (more);
	free(b.waiters);
	free(b.msgs);
	free(b.rcs);
}

struct queue *queue_start(struct store *s, void (*on_commit)(void *arg), void *arg, char *err,
			  size_t errlen)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	q->store = s;
	q->on_commit = on_commit;
	q->arg = arg;
	q->tail = &q->head;
	pthread_mutex_init(&q->lock, NULL);
	q->writer = worker_start("queue writer", write_loop, q, err, errlen);
	if (!q->writer) {
		pthread_mutex_destroy(&q->lock);
		free(q);
		return NULL;
	}
	return q;
}

int queue_put(struct queue *q, const struct store_message *m)
{
	struct waiter w = {.m = m};
	pthread_cond_init(&w.cond, NULL);
	pthread_mutex_lock(&q->lock);
	if (worker_stopping(q->writer)) {
		pthread_mutex_unlock(&q->lock);
		pthread_cond_destroy(&w.cond);
		return STORE_FAIL;
	}
	/* The waiter lives on this stack until the writer marks it done, below. */
	*q->tail = &w;
	// cppcheck-suppress autoVariables
	q->tail = &w.next;
	worker_wake(q->writer);
	while (!w.done)
		pthread_cond_wait(&w.cond, &q->lock);
	pthread_mutex_unlock(&q->lock);
	pthread_cond_destroy(&w.cond);
	return w.rc;
}

void queue_put_async(struct queue *q, const struct store_message *m,
		     void (*done)(void *arg, int rc), void *arg)
{
	struct waiter *w = xcalloc(1, sizeof(*w));
	w->m = m;
	w->callback = done;
	w->arg = arg;
	pthread_mutex_lock(&q->lock);
	if (worker_stopping(q->writer)) {
		pthread_mutex_unlock(&q->lock);
		free(w);
		done(arg, STORE_FAIL);
		return;
	}
	*q->tail = w;
	q->tail = &w->next;
	worker_wake(q->writer);
	pthread_mutex_unlock(&q->lock);
}

bool queue_alive(struct queue *q)
{
	double since = atomic_load(&q->writing_since);
	return !worker_stopping(q->writer) &&
	       (since == 0 || util_monotonic() - since < QUEUE_STALL);
}

void queue_stats(struct queue *q, struct queue_stats *out)
{
	pthread_mutex_lock(&q->lock);
	*out = q->stats;
	pthread_mutex_unlock(&q->lock);
}

void queue_stop(struct queue *q)
{
	if (!q)
		return;
	worker_stop(q->writer);
	log_info("queue: %llu messages in %llu commits (largest %llu)",
		 (unsigned long long)q->stats.messages, (unsigned long long)q->stats.commits,
		 (unsigned long long)q->stats.largest);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
