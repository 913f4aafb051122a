/* The snapshot cache. One stamp covers all accounts: when it moves, every snapshot is
 * dropped and rebuilt lazily. Policy changes are rare next to sends, so this is cheap, and
 * it cannot miss a change. Snapshots are reference-counted so a request still deciding
 * with an old one is never left with freed memory. Beside them, the API keys found, each
 * valid while the stamp it was read under holds, and the table of keys with networks
 * (SMTP-IP credentials), reloaded whole when the stamp moves. */
#include "policy_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "keyscope.h"
#include "log.h"
#include "util.h"

#define BUCKETS 256
#define KEYS	256 /* API keys remembered; a power of two */

struct policy_ref {
	struct policy *policy;
	atomic_int refs;
};

struct cache_entry {
	int64_t account_id;
	struct policy_ref *ref;
	struct cache_entry *next;
};

/* An API key found by its hash, valid while the policy stamp (which revocations move on
 * every node) is the one it was read under. */
struct key_entry {
	char hash[AUTH_HASH_HEX];
	uint64_t stamp;
	struct store_apikey key;
};

/* Every live key with networks, one row per network, ordered by policy_ip_sort. */
struct ip_table {
	bool loaded;
	uint64_t stamp;
	struct policy_ip_row *rows;
	size_t n, rows_cap;
	struct store_apikey *keys;
	size_t nkeys, keys_cap;
};

struct policy_cache {
	struct store *store;
	pthread_mutex_t lock;
	bool have_stamp;
	uint64_t stamp;
	struct cache_entry *buckets[BUCKETS];
	pthread_mutex_t keys_lock; /* not held while the store is asked */
	struct key_entry keys[KEYS];
	pthread_mutex_t ips_lock; /* held while the table reloads: one reload, not a crowd */
	struct ip_table ips;
};

struct policy_cache *policy_cache_new(struct store *s)
{
	struct policy_cache *c = xcalloc(1, sizeof(*c));
	c->store = s;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->keys_lock, NULL);
	pthread_mutex_init(&c->ips_lock, NULL);
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
	free(c->ips.rows);
	free(c->ips.keys);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->keys_lock);
	pthread_mutex_destroy(&c->ips_lock);
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

static struct key_entry *key_slot(struct policy_cache *c, const char *key_hash)
{
	return &c->keys[strtoul((char[]){key_hash[0], key_hash[1], key_hash[2], 0}, NULL, 16) &
			(KEYS - 1)];
}

/* Every send checks its key: a key found is remembered, so the check is a memory read
 * until anything that could revoke it moves the stamp. Unknown keys are not remembered:
 * strangers cannot fill the cache. */
int policy_cache_apikey(struct policy_cache *c, const char *key_hash, struct store_apikey *out)
{
	uint64_t stamp;
	int rc = store_policy_stamp(c->store, &stamp);
	if (rc != STORE_OK)
		return rc;
	struct key_entry *k = key_slot(c, key_hash);
	pthread_mutex_lock(&c->keys_lock);
	bool hit = k->key.id && k->stamp == stamp && auth_equal(k->hash, key_hash);
	if (hit)
		*out = k->key;
	pthread_mutex_unlock(&c->keys_lock);
	if (hit)
		return STORE_OK;
	rc = store_apikey_lookup(c->store, key_hash, out);
	if (rc == STORE_OK) {
		keyscope_prepare(out);
		util_copy(out->hash, sizeof(out->hash), key_hash);
		out->stamp = stamp;
		/* Stamped with the stamp read before the lookup: a revocation in between
		 * leaves the entry stale, never a revoked key valid. */
		pthread_mutex_lock(&c->keys_lock);
		*k = (struct key_entry){.stamp = stamp, .key = *out};
		util_copy(k->hash, sizeof(k->hash), key_hash);
		pthread_mutex_unlock(&c->keys_lock);
	}
	return rc;
}

int policy_cache_apikey_touch(struct policy_cache *c, int64_t id, int64_t now)
{
	pthread_mutex_lock(&c->keys_lock);
	for (size_t i = 0; i < KEYS; i++)
		if (c->keys[i].key.id == id)
			c->keys[i].key.last_used_at = now;
	pthread_mutex_unlock(&c->keys_lock);
	/* The SMTP-IP table's copy too, or a key used by network would be written on every
	 * connection once its first minute has passed. */
	pthread_mutex_lock(&c->ips_lock);
	for (size_t i = 0; i < c->ips.nkeys; i++)
		if (c->ips.keys[i].id == id)
			c->ips.keys[i].last_used_at = now;
	pthread_mutex_unlock(&c->ips_lock);
	return store_apikey_touch(c->store, id, now);
}

static int ip_row_cmp(const void *a, const void *b)
{
	const struct policy_ip_row *x = a, *y = b;
	int px = x->net.nets[0].prefix, py = y->net.nets[0].prefix;
	if (px != py)
		return px > py ? -1 : 1;
	return (x->key_id > y->key_id) - (x->key_id < y->key_id);
}

void policy_ip_sort(struct policy_ip_row *rows, size_t n)
{
	if (n > 1) /* an empty table may have no rows at all: qsort wants an array */
		qsort(rows, n, sizeof(*rows), ip_row_cmp);
}

ssize_t policy_ip_find(const struct policy_ip_row *rows, size_t n, const char *ip)
{
	for (size_t i = 0; i < n; i++)
		if (net_contains(&rows[i].net, ip))
			return (ssize_t)i;
	return -1;
}

/* Adds a key and one row per network of it. The text was written by keys_create, so it
 * parses; a row that does not is left out, never read as "anywhere". */
static int ip_add(void *arg, const struct store_apikey *k)
{
	struct ip_table *t = arg;
	struct net_list l;
	char bad[64];
	if (net_parse_list(k->smtp_ips, &l, bad, sizeof(bad)) < 0) {
		log_error("smtp: key %lld has a malformed network '%s'", (long long)k->id, bad);
		return 0;
	}
	if (t->nkeys == t->keys_cap) {
		t->keys_cap = t->keys_cap ? 2 * t->keys_cap : 8;
		t->keys = xrealloc(t->keys, t->keys_cap * sizeof(*t->keys));
	}
	t->keys[t->nkeys] = *k;
	keyscope_prepare(&t->keys[t->nkeys]);
	for (size_t i = 0; i < l.n; i++) {
		if (t->n == t->rows_cap) {
			t->rows_cap = t->rows_cap ? 2 * t->rows_cap : 16;
			t->rows = xrealloc(t->rows, t->rows_cap * sizeof(*t->rows));
		}
		t->rows[t->n] = (struct policy_ip_row){.key_id = k->id, .key = t->nkeys};
		t->rows[t->n].net.nets[0] = l.nets[i];
		t->rows[t->n].net.n = 1;
		t->n++;
	}
	t->nkeys++;
	return 0;
}

/* Reads the table afresh, replacing the one held only when the read succeeds. */
static int ip_reload(struct policy_cache *c, uint64_t stamp)
{
	struct ip_table t = {.loaded = true, .stamp = stamp};
	int rc = store_apikey_smtp_list(c->store, ip_add, &t);
	if (rc != STORE_OK) {
		free(t.rows);
		free(t.keys);
		return rc;
	}
	policy_ip_sort(t.rows, t.n);
	for (size_t i = 0; i < t.nkeys; i++)
		t.keys[i].stamp = stamp;
	free(c->ips.rows);
	free(c->ips.keys);
	c->ips = t;
	return STORE_OK;
}

/* Reads the store's stamp into *stamp and, with ips_lock held, makes the table current. */
static int ips_current(struct policy_cache *c, uint64_t *stamp)
{
	int rc = store_policy_stamp(c->store, stamp);
	if (rc != STORE_OK)
		return rc;
	pthread_mutex_lock(&c->ips_lock);
	if (!c->ips.loaded || c->ips.stamp != *stamp)
		rc = ip_reload(c, *stamp);
	if (rc != STORE_OK)
		pthread_mutex_unlock(&c->ips_lock);
	return rc;
}

int policy_cache_smtp_ip(struct policy_cache *c, const char *ip, struct store_apikey *out)
{
	uint64_t stamp;
	int rc = ips_current(c, &stamp);
	if (rc != STORE_OK)
		return rc;
	ssize_t i = policy_ip_find(c->ips.rows, c->ips.n, ip);
	if (i < 0)
		rc = STORE_NOT_FOUND;
	else
		*out = c->ips.keys[c->ips.rows[i].key];
	pthread_mutex_unlock(&c->ips_lock);
	return rc;
}

/* A key found by network is still live when the current table still has it. */
static int smtp_key_live(struct policy_cache *c, int64_t id, struct store_apikey *out)
{
	uint64_t stamp;
	int rc = ips_current(c, &stamp);
	if (rc != STORE_OK)
		return rc;
	rc = STORE_NOT_FOUND;
	for (size_t i = 0; i < c->ips.nkeys && rc != STORE_OK; i++)
		if (c->ips.keys[i].id == id) {
			*out = c->ips.keys[i];
			rc = STORE_OK;
		}
	pthread_mutex_unlock(&c->ips_lock);
	return rc;
}

int policy_cache_apikey_live(struct policy_cache *c, struct store_apikey *key)
{
	uint64_t stamp;
	int rc = store_policy_stamp(c->store, &stamp);
	if (rc != STORE_OK)
		return rc;
	/* Nothing that could revoke it has happened since the key was read. */
	if (key->stamp && key->stamp == stamp)
		return STORE_OK;
	struct store_apikey now;
	rc = key->hash[0] ? policy_cache_apikey(c, key->hash, &now)
			  : smtp_key_live(c, key->id, &now);
	if (rc == STORE_OK && now.id != key->id)
		rc = STORE_NOT_FOUND;
	/* Found again as it now is: a change of its scope applies from this moment. */
	if (rc == STORE_OK)
		*key = now;
	return rc;
}
