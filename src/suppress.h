/* The suppression list, the service: addresses an account no longer sends to, added by
 * hard bounces and complaints (bounces.c, deliver.c, through the store) or by people
 * (manual), and removed by people; each change by a person audited. Delivery consults it
 * once per message (store_suppressed). */
#ifndef POSTERN_SUPPRESS_H
#define POSTERN_SUPPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "audit.h"
#include "err.h"
#include "store.h"

#define SUPPRESS_ADD_MAX 1000 /* addresses one POST /api/suppressions may add */
/* The reason of message.dropped for a recipient taken out of the envelope, and of a message
 * left with none. */
#define SUPPRESS_DROPPED "recipient_suppressed"

/* An address as the list keeps and compares it: addr_normalize, then wholly in lower
 * case (mailbox providers treat the local part without regard to case, and a bounce may
 * spell it differently than the send did). -1 when it is no address. */
int suppress_normalize(const char *in, char out[ADDR_MAX]);

/* Adds manual entries; an address listed already stays as it is. *added counts the new
 * ones. Audited as suppression.add with the count. A store_rc. The caller has normalized
 * the addresses. */
int suppress_add(struct store *s, const struct actor *who, int64_t account_id,
		 const char *const *emails, size_t n, int *added);
/* Removes one entry (any reason), audited as suppression.remove. STORE_NOT_FOUND when the
 * account has none for that address. */
int suppress_remove(struct store *s, const struct actor *who, int64_t account_id,
		    const char *email);

/* At delivery: for each of rcpts[0..n) (as the message spells them), whether the account
 * suppresses it (listed[i]) and whether an earlier run of message uid told it so already
 * (told[i], read only when the message ran before: earlier): a part tried again after a
 * deferral finds the same addresses listed, and each hears of it once. One told and since
 * removed from the list is not listed: a person lifted it. A store_rc. */
int suppress_check(struct store *s, int64_t account_id, const char *uid, bool earlier,
		   const char *const *rcpts, size_t n, bool *listed, bool *told);

#endif
