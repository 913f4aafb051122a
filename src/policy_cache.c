/* The snapshot cache. One stamp covers all accounts: when it moves, every snapshot is
 * dropped and rebuilt lazily. Policy changes are rare next to sends, so this is cheap, and
 * it cannot miss a change. Snapshots are reference-counted so a request still deciding
 * with an old one is never left with freed memory. */
#include "policy_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "log.h"
#include "util.h"

#define BUCKETS 256

struct policy_ref {
	struct policy *policy;
	atomic_int refs;
};

struct cache_entry {
	int64_t account_id;
	struct policy_ref *ref;
	struct cache_entry *next;
};

struct policy_cache {
	struct store *store;
	pthread_mutex_t lock;
	bool have_stamp;
	uint64_t stamp;
	struct cache_entry *buckets[BUCKETS];
};

struct policy_cache *policy_cache_new(struct store *s)
{
	struct policy_cache *c = xcalloc(1, sizeof(*c));
	c->store = s;
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void policy_ref_release(struct policy_ref *r)
{
	if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
		policy_free(r->policy);
		free(r);
	}
}

const struct policy *policy_ref_policy(const struct policy_ref *r)
{
	return r->policy;
}

static void clear(struct policy_cache *c)
{
	for (size_t i = 0; i < BUCKETS; i++) {
		while (c->buckets[i]) {
			struct cache_entry *e = c->buckets[i];
			c->buckets[i] = e->next;
			policy_ref_release(e->ref);
			free(e);
		}
	}
}

void policy_cache_free(struct policy_cache *c)
{
	if (!c)
		return;
	clear(c);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static struct cache_entry *load(struct policy_cache *c, int64_t account_id)
{
	struct policy *p;
	if (store_policy_load(c->store, account_id, &p) != STORE_OK) {
		log_error("policy: cannot load the policy of account %lld", (long long)account_id);
		return NULL;
	}
	struct cache_entry *e = xcalloc(1, sizeof(*e));
	e->account_id = account_id;
	e->ref = xcalloc(1, sizeof(*e->ref));
	e->ref->policy = p;
	atomic_init(&e->ref->refs, 1); /* the cache's own reference */
	size_t b = (size_t)account_id % BUCKETS;
	e->next = c->buckets[b];
	c->buckets[b] = e;
	return e;
}

struct policy_ref *policy_cache_get(struct policy_cache *c, int64_t account_id)
{
	struct policy_ref *ref = NULL;
	uint64_t stamp;

	pthread_mutex_lock(&c->lock);
	if (store_policy_stamp(c->store, &stamp) != STORE_OK)
		goto out;
	if (!c->have_stamp || stamp != c->stamp) {
		clear(c);
		c->stamp = stamp;
		c->have_stamp = true;
	}
	struct cache_entry *e = c->buckets[(size_t)account_id % BUCKETS];
	while (e && e->account_id != account_id)
		e = e->next;
	if (!e)
		e = load(c, account_id);
	if (e) {
		ref = e->ref;
		atomic_fetch_add(&ref->refs, 1);
	}
out:
	pthread_mutex_unlock(&c->lock);
	return ref;
}
