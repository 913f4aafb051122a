/* The drop counter. Pending counts live in a string map keyed by
 * "account:key:minute:reason:from"; a flush swaps the map out under the lock and writes it
 * outside, putting the counts back if the store refuses them. */
#include "drops.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strmap.h"
#include "util.h"
#include "worker.h"

#define FLUSH_INTERVAL_MS 250

struct drops {
	struct store *store;
	pthread_mutex_t lock;
	pthread_mutex_t flushing; /* one flush at a time keeps put-backs simple */
	struct strmap pending;
	struct worker *flusher;
};

static void record(struct drops *d, int64_t account_id, int64_t api_key_id, const char *from,
		   const char *reason)
{
	char key[ADDR_MAX + 128];
	int64_t minute = util_now() / 60 * 60;

	snprintf(key, sizeof(key), "%" PRId64 ":%" PRId64 ":%" PRId64 ":%s:%s", account_id,
		 api_key_id, minute, reason, from);
	pthread_mutex_lock(&d->lock);
	(*strmap_put(&d->pending, key))++;
	pthread_mutex_unlock(&d->lock);
}

void drops_record(struct drops *d, int64_t account_id, int64_t api_key_id, const char *from,
		  enum policy_reason reason)
{
	record(d, account_id, api_key_id, from, policy_reason_code(reason));
}

void drops_record_code(struct drops *d, int64_t account_id, int64_t api_key_id, const char *from,
		       const char *code)
{
	record(d, account_id, api_key_id, from, code);
}

void drops_record_sandbox(struct drops *d, int64_t account_id, int64_t api_key_id, const char *from)
{
	record(d, account_id, api_key_id, from, DROPS_SANDBOX);
}

struct batch {
	struct store_drop *rows;
	size_t n;
};

static void to_row(void *arg, const char *key, uint64_t count)
{
	struct batch *b = arg;
	struct store_drop *r = &b->rows[b->n];
	int reason_at = 0, from_at = 0;

	if (sscanf(key, "%" SCNd64 ":%" SCNd64 ":%" SCNd64 ":%n%*[^:]:%n", &r->account_id,
		   &r->api_key_id, &r->minute, &reason_at, &from_at) < 3 ||
	    !from_at)
		return;
	snprintf(r->reason, sizeof(r->reason), "%.*s", from_at - reason_at - 1, key + reason_at);
	util_copy(r->from, sizeof(r->from), key + from_at);
	r->count = (int64_t)count;
	b->n++;
}

static void put_back(void *arg, const char *key, uint64_t count)
{
	struct drops *d = arg;
	*strmap_put(&d->pending, key) += count;
}

int drops_flush(struct drops *d)
{
	struct strmap taken;
	int rc = STORE_OK;

	pthread_mutex_lock(&d->flushing);
	pthread_mutex_lock(&d->lock);
	taken = d->pending;
	memset(&d->pending, 0, sizeof(d->pending));
	pthread_mutex_unlock(&d->lock);

	if (taken.used) {
		struct batch b = {xcalloc(taken.used, sizeof(struct store_drop)), 0};
		strmap_each(&taken, to_row, &b);
		rc = store_drops_add(d->store, b.rows, b.n);
		free(b.rows);
		if (rc != STORE_OK) {
			log_error(
				"drops: cannot store %zu drop counters; keeping them for the next "
				"flush",
				taken.used);
			pthread_mutex_lock(&d->lock);
			strmap_each(&taken, put_back, d);
			pthread_mutex_unlock(&d->lock);
		}
	}
	strmap_free(&taken);
	pthread_mutex_unlock(&d->flushing);
	return rc;
}

static void flush_loop(void *arg, struct worker *self)
{
	while (worker_wait(self, FLUSH_INTERVAL_MS))
		drops_flush(arg);
}

struct drops *drops_start(struct store *s, char *err, size_t errlen)
{
	struct drops *d = xcalloc(1, sizeof(*d));
	d->store = s;
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->flushing, NULL);
	d->flusher = worker_start("drop counter", flush_loop, d, err, errlen);
	if (d->flusher)
		return d;
	drops_stop(d);
	return NULL;
}

void drops_stop(struct drops *d)
{
	if (!d)
		return;
	worker_stop(d->flusher);
	drops_flush(d);
	strmap_free(&d->pending);
	pthread_mutex_destroy(&d->flushing);
	pthread_mutex_destroy(&d->lock);
	free(d);
}
