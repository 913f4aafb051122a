/* Authorized sender email IDs, the service: the password-confirmed switch, adding senders
 * with their verification batch and email, sending that email again, verifying one sender
 * or a whole batch through its link, and removing one, each audited. */
#ifndef POSTERN_SENDERS_H
#define POSTERN_SENDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "config.h"
#include "queue.h"
#include "store.h"

/* Each verification email goes to every Admin, so any role asking for one again and again
 * would flood their inboxes: one per account per minute, whether asked for again or sent
 * for addresses just added. */
#define SENDERS_MAIL_GAP 60
/* An owner's confirmation link works once, for 48 hours; a sender gets at most one a
 * minute, since each goes to an address outside the account. */
#define SENDERS_OWNER_TTL (48 * 3600)
#define SENDERS_OWNER_GAP 60

/* Sets the switch to off, monitor or on; the caller has had the user's password confirmed. */
int senders_switch(struct store *s, const struct actor *who, int64_t account_id,
		   enum policy_mode mode);
/* Records a switch refused for a wrong password. */
void senders_switch_refused(struct store *s, const struct actor *who, int64_t account_id,
			    enum policy_mode wanted);

/* Adds normalized addresses as pending. ids[i] is the new sender's id, or 0 when the
 * account had that address already. When any is added, its verification email goes to the
 * account's Admins (unless the account's confirmation mode is owner), unless the last one
 * went less than SENDERS_MAIL_GAP ago: then *wait says for how long. In modes owner and
 * both, each new address is also mailed its owner's confirmation link. The senders are
 * stored whatever becomes of the emails (a lost one can be sent again with senders_resend
 * or senders_owner_link). A store_rc. */
int senders_add(struct store *s, struct queue *q, const struct config *cfg, const struct actor *who,
		const struct store_account *acct, const char *const *addresses, size_t n,
		int64_t *ids, int64_t *wait);

/* A batch made by senders_resend. */
struct senders_batch {
	char **addresses;
	size_t n;
	int64_t expires_at;
	int64_t wait; /* with STORE_TOO_SOON: seconds until the next email may go */
};
/* Makes a new batch of every pending sender still waiting for an Admin and emails its link
 * to the Admins. A store_rc: STORE_NOT_FOUND when nothing is pending, STORE_TOO_SOON within
 * SENDERS_MAIL_GAP of the last email, STORE_CONFLICT when the account's confirmation mode
 * is owner (no Admin verifies). */
int senders_resend(struct store *s, struct queue *q, const struct config *cfg,
		   const struct actor *who, const struct store_account *acct,
		   struct senders_batch *out);
void senders_batch_free(struct senders_batch *b);

/* An Admin verifies one sender (from the panel): verified when the account's mode asks
 * nothing more, else the Admin's half is recorded; out gets it as it is afterwards. A
 * store_rc; STORE_CONFLICT when the account's mode is owner (only the owner confirms). */
int senders_verify(struct store *s, const struct actor *who, int64_t account_id, int64_t id,
		   struct store_sender *out);
/* Uses the batch whose token hashes to token_hash: verifies its senders still pending,
 * calling fn for each sender with its state. out describes the batch as it was before this
 * use (used_at set or expires_at past now: this call changed nothing). A store_rc. */
int senders_verify_all(struct store *s, const struct actor *who, const char *token_hash,
		       int64_t now, struct store_batch *out, store_batch_fn fn, void *arg);
int senders_remove(struct store *s, const struct actor *who, int64_t account_id, int64_t id);

/* Sets the account's sender confirmation mode ("admin", "owner" or "both"); the caller has
 * had the user's password confirmed. Pending senders that the new mode asks nothing more of
 * become verified (audited via=mode); others wait for their missing half. */
int senders_confirmation_set(struct store *s, const struct actor *who, int64_t account_id,
			     const char *mode);
/* Records a mode change refused for a wrong password. */
void senders_confirmation_refused(struct store *s, const struct actor *who, int64_t account_id,
				  const char *wanted);
/* Mails sender id its owner's confirmation link (again), valid until *expires_at; out gets
 * the sender. A store_rc:
 * STORE_CONFLICT when it is not waiting for its owner, STORE_TOO_SOON within
 * SENDERS_OWNER_GAP of its last link (*wait the seconds left). */
int senders_owner_link(struct store *s, struct queue *q, const struct config *cfg,
		       const struct actor *who, const struct store_account *acct, int64_t id,
		       struct store_sender *out, int64_t *wait, int64_t *expires_at);
/* Uses an owner's link (its token's hash), as store_owner_token_use, auditing the owner's
 * half (sender.confirmed, actor the address) and a verification it completes. */
int senders_owner_confirm(struct store *s, const char *ip, const char *token_hash, int64_t now,
			  struct store_owner_token *out);

#endif
