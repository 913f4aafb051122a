/* Sending domains, the service: creating one (ownership token and a sealed DKIM key),
 * checking its records in DNS and recording what that means, rotating its DKIM key, and
 * the scheduler that re-checks domains on their own. */
#ifndef POSTERN_DOMAINS_H
#define POSTERN_DOMAINS_H

#include <stdbool.h>
#include <stdint.h>

#include "audit.h"
#include "config.h"
#include "dkimkey.h"
#include "dns.h"
#include "store.h"

/* Adds name (already normalized) to the account with a fresh token and key, audited as
 * done by who. "verified" given here is an operator's word: the domain is manual (not
 * re-checked on schedule). approval is "approved", or "required" for one that must wait
 * for the operator once its records check out. A store_rc. */
int domains_create(struct store *s, const unsigned char master[DKIMKEY_MASTER_LEN],
		   const struct actor *who, int64_t account_id, const char *name,
		   const char *status, bool active, const char *approval, int64_t *id);
/* The operator's decision on a domain (postern domain approve|reject), audited as
 * domain.approved or domain.rejected; was gets the domain as it was before. A store_rc:
 * STORE_NOT_FOUND for no such domain, STORE_CONFLICT when it was decided so already. */
int domains_approve(struct store *s, const struct actor *who, int64_t account_id, const char *name,
		    bool approve, struct store_domain_was *was);
/* Looks the domain's records up now and records the outcome; a status change is audited
 * with actor and ip. out (may be NULL) gets the domain as it is afterwards. A store_rc. */
int domains_check(struct store *s, const struct config *cfg, struct dns *dns, int64_t account_id,
		  int64_t id, const char *actor, const char *ip, struct store_domain *out);
/* Adds the next DKIM key; it signs once its record is seen. A store_rc. */
int domains_rotate(struct store *s, const unsigned char master[DKIMKEY_MASTER_LEN],
		   int64_t account_id, int64_t id);

struct domains;
/* Starts the scheduler: pending and failed domains every [dns] check_pending, verified
 * ones every [dns] check_verified. */
struct domains *domains_start(struct store *s, const struct config *cfg, char *err, size_t errlen);
void domains_stop(struct domains *d);

#endif
