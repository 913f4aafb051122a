/* Per-account policy snapshots and the API keys found, for the send path: read from the
 * store on first use and again after any change the store reports (store_policy_stamp),
 * so the very next send sees a change made through the API or the CLI. */
#ifndef POSTERN_POLICY_CACHE_H
#define POSTERN_POLICY_CACHE_H

#include <stdint.h>

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
/* store_apikey_touch, and the kept key's last use with it. */
int policy_cache_apikey_touch(struct policy_cache *c, int64_t id, int64_t now);

#endif
