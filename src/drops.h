/* Drops: every refusal of the sender policy, counted per account, API key, From address,
 * reason and minute, and every SendGrid sandbox request (reason "sandbox"); beside them, in
 * the same flush, monitor mode's would-be refusals (same shape) and the sends per account,
 * From and day that the preflight reads. Recording is an
 * in-memory increment; a background thread writes the counts in one transaction every 250 ms, so a
 * flood of refusals costs neither an fsync each nor a row each, and no refusal is missing from the
 * counts. */
#ifndef POSTERN_DROPS_H
#define POSTERN_DROPS_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "store.h"

struct drops;

/* NULL with err when the thread cannot start. */
struct drops *drops_start(struct store *s, char *err, size_t errlen);
/* Writes what is pending, then stops the thread. */
void drops_stop(struct drops *d);
void drops_record(struct drops *d, int64_t account_id, int64_t api_key_id, const char *from,
		  enum policy_reason reason);
/* Counts a refusal that is not the account policy's, by its error code (an API key's own
 * scope: "sender_not_allowed_for_key"). */
void drops_record_code(struct drops *d, int64_t account_id, int64_t api_key_id, const char *from,
		       const char *code);
/* The reason a SendGrid sandbox request is counted under: checked and allowed, not sent. */
#define DROPS_SANDBOX "sandbox"
/* Counts a sandbox request the policy allowed, as a drop of reason DROPS_SANDBOX. */
void drops_record_sandbox(struct drops *d, int64_t account_id, int64_t api_key_id,
			  const char *from);
/* Counts a message accepted in monitor mode that the switch on would have refused. */
void drops_record_monitored(struct drops *d, int64_t account_id, int64_t api_key_id,
			    const char *from, enum policy_reason reason);
/* Counts a message accepted (or monitored) from the account's From address. */
void drops_record_send(struct drops *d, int64_t account_id, const char *from);
/* Writes what is pending now, so a read that follows sees every refusal so far. */
int drops_flush(struct drops *d);

#endif
