/* The drop counter. Pending counts live in string maps keyed by
 * "account:key:minute:reason:from" (drops, monitored) and "account:day:from" (sends); a
 * flush swaps the maps out under the lock and writes them outside in one transaction,
 * putting the counts back if the store refuses them. */
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
	struct strmap monitored;
	struct strmap sends;
	struct worker *flusher;
};

static void bump(struct drops *d, struct strmap *m, const char *key)
{
	pthread_mutex_lock(&d->lock);
	(*strmap_put(m, key))++;
	pthread_mutex_unlock(&d->lock);
}

static void record_in(struct drops *d, struct strmap *m, int64_t account_id, int64_t api_key_id,
		      const char *from, const char *reason)
{
	char key[ADDR_MAX + 128];
	int64_t minute = util_now() / 60 * 60;

	snprintf(key, sizeof(key), "%" PRId64 ":%" PRId64 ":%" PRId64 ":%s:%s", account_id,
		 api_key_id, minute, reason, from);
	bump(d, m, key);
}

static void record(struct drops *d, int64_t account_id, int64_t api_key_id, const char *from,
		   const char *reason)
{
	record_in(d, &d->pending, account_id, api_key_id, from, reason);
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

void drops_record_monitored(struct drops *d, int64_t account_id, int64_t api_key_id,
			    const char *from, enum policy_reason reason)
{
	record_in(d, &d->monitored, account_id, api_key_id, from, policy_reason_code(reason));
}

void drops_record_send(struct drops *d, int64_t account_id, const char *from)
{
	char key[ADDR_MAX + 64];
	snprintf(key, sizeof(key), "%" PRId64 ":%" PRId64 ":%s", account_id,
		 util_now() / 86400 * 86400, from);
	bump(d, &d->sends, key);
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

struct send_batch {
	struct store_from_count *rows;
	size_t n;
	int64_t now;
};

/* A send's last_seen is the flush's time: within FLUSH_INTERVAL_MS of the send. */
static void to_send_row(void *arg, const char *key, uint64_t count)
{
	struct send_batch *b = arg;
	struct store_from_count *r = &b->rows[b->n];
	int from_at = 0;

	if (sscanf(key, "%" SCNd64 ":%" SCNd64 ":%n", &r->account_id, &r->day, &from_at) < 2 ||
	    !from_at)
		return;
	util_copy(r->from, sizeof(r->from), key + from_at);
	r->sends = (int64_t)count;
	r->last_seen = b->now;
	b->n++;
}

/* The maps taken out for one flush, in the order of struct drops. */
struct taken {
	struct strmap drops, monitored, sends;
};

static void put_into(struct strmap *m, const char *key, uint64_t count)
{
	*strmap_put(m, key) += count;
}

static void put_back_drop(void *arg, const char *key, uint64_t count)
{
	put_into(&((struct drops *)arg)->pending, key, count);
}

static void put_back_monitored(void *arg, const char *key, uint64_t count)
{
	put_into(&((struct drops *)arg)->monitored, key, count);
}

static void put_back_send(void *arg, const char *key, uint64_t count)
{
	put_into(&((struct drops *)arg)->sends, key, count);
}

static void take(struct drops *d, struct taken *t)
{
	pthread_mutex_lock(&d->lock);
	t->drops = d->pending;
	t->monitored = d->monitored;
	t->sends = d->sends;
	memset(&d->pending, 0, sizeof(d->pending));
	memset(&d->monitored, 0, sizeof(d->monitored));
	memset(&d->sends, 0, sizeof(d->sends));
	pthread_mutex_unlock(&d->lock);
}

static int write_taken(struct drops *d, struct taken *t)
{
	struct batch drops = {xcalloc(t->drops.used + 1, sizeof(struct store_drop)), 0};
	struct batch mon = {xcalloc(t->monitored.used + 1, sizeof(struct store_drop)), 0};
	struct send_batch sends = {xcalloc(t->sends.used + 1, sizeof(struct store_from_count)), 0,
				   util_now()};
	strmap_each(&t->drops, to_row, &drops);
	strmap_each(&t->monitored, to_row, &mon);
	strmap_each(&t->sends, to_send_row, &sends);
	struct store_counts k = {drops.rows, drops.n, mon.rows, mon.n, sends.rows, sends.n};
	int rc = store_counts_add(d->store, &k);
	free(drops.rows);
	free(mon.rows);
	free(sends.rows);
	return rc;
}

int drops_flush(struct drops *d)
{
	struct taken t;
	int rc = STORE_OK;

	pthread_mutex_lock(&d->flushing);
	take(d, &t);
	if (t.drops.used || t.monitored.used || t.sends.used) {
		rc = write_taken(d, &t);
		if (rc != STORE_OK) {
			log_error("drops: cannot store %zu drop, %zu monitored and %zu send "
				  "counters; keeping them for the next flush",
				  t.drops.used, t.monitored.used, t.sends.used);
			pthread_mutex_lock(&d->lock);
			strmap_each(&t.drops, put_back_drop, d);
			strmap_each(&t.monitored, put_back_monitored, d);
			strmap_each(&t.sends, put_back_send, d);
			pthread_mutex_unlock(&d->lock);
		}
	}
	strmap_free(&t.drops);
	strmap_free(&t.monitored);
	strmap_free(&t.sends);
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
	strmap_free(&d->monitored);
	strmap_free(&d->sends);
	pthread_mutex_destroy(&d->flushing);
	pthread_mutex_destroy(&d->lock);
	free(d);
}
