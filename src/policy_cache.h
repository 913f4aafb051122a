/* Per-account policy snapshots for the send path: built from the store on first use and
 * rebuilt after any change the store reports (store_policy_stamp), so the very next send
 * sees a change made through the API or the CLI. */
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

#endif
