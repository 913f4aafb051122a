/* Per-account policy snapshots and the API keys found, for the send path: read from the
 * store on first use and again after any change the store reports (store_policy_stamp),
 * so the very next send sees a change made through the API or the CLI. */
#ifndef POSTERN_POLICY_CACHE_H
#define POSTERN_POLICY_CACHE_H

#include <stdint.h>
#include <sys/types.h>

#include "net.h"
#include "policy.h"
#include "store.h"

struct policy_cache;
struct policy_ref; /* a counted reference to a snapshot */

struct policy_cache *policy_cache_new(struct store *s);
void policy_cache_free(struct policy_cache *c);
/* The account's current snapshot, or NULL when the store failed. Release it after use. */
struct policy_ref *policy_cache_get(struct policy_cache *c, int64_t account_id);
const struct policy *policy_ref_policy(const struct policy_ref *r);
void policy_ref_release(struct policy_ref *r);
/* store_apikey_lookup, kept: a key found is a memory read on the next send until the stamp
 * moves (every revocation moves it). */
int policy_cache_apikey(struct policy_cache *c, const char *key_hash, struct store_apikey *out);
/* Whether key, found by policy_cache_apikey or policy_cache_smtp_ip, is still live: a
 * memory read while the stamp has not moved since it was read, else found again (by its
 * hash, or in the SMTP-IP table by id). STORE_OK (*key read anew, its scope as it now is),
 * STORE_NOT_FOUND when revoked, or STORE_FAIL. */
int policy_cache_apikey_live(struct policy_cache *c, struct store_apikey *key);
/* store_apikey_touch, and the kept key's last use with it (SMTP-IP table included). */
int policy_cache_apikey_touch(struct policy_cache *c, int64_t id, int64_t now);
/* SMTP-IP credentials: the live key with a network that holds ip, out of a table of every
 * such key kept while the stamp holds, so a connection costs no query. STORE_OK with out
 * filled, STORE_NOT_FOUND, or STORE_FAIL. */
int policy_cache_smtp_ip(struct policy_cache *c, const char *ip, struct store_apikey *out);

/* One network of a key, a row of the SMTP-IP table. */
struct policy_ip_row {
	struct net_list net; /* this one network */
	int64_t key_id;
	size_t key; /* the key's index in the table's keys */
};

/* Orders the rows so that the first one holding an address is the key it sends as: the
 * most specific network (the longest prefix) first, then the lowest key id. Pure. */
void policy_ip_sort(struct policy_ip_row *rows, size_t n);
/* The index of the first row whose network holds ip, -1 when none. Pure. */
ssize_t policy_ip_find(const struct policy_ip_row *rows, size_t n, const char *ip);

#endif
