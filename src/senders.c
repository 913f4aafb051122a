/* Senders: every change to which addresses may send goes through here, so a verification
 * batch is made one way (token, hash, expiry, store, email) and each change is audited
 * once, whichever front end asked. */
#include "senders.h"

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "notify.h"
#include "util.h"

/* The audit's words for each mode: on and off keep the names they had before monitor. */
static const char *const mode_actions[POLICY_MODE_COUNT] = {
	[POLICY_MODE_OFF] = "sender_auth.disabled",
	[POLICY_MODE_MONITOR] = "sender_auth.monitor",
	[POLICY_MODE_ON] = "sender_auth.enabled",
};
static const char *const mode_wanted[POLICY_MODE_COUNT] = {
	[POLICY_MODE_OFF] = "disabled",
	[POLICY_MODE_MONITOR] = "monitor",
	[POLICY_MODE_ON] = "enabled",
};

int senders_switch(struct store *s, const struct actor *who, int64_t account_id,
		   enum policy_mode mode)
{
	int rc = store_sender_auth_set(s, account_id, mode, who->user_id, util_now());
	if (rc == STORE_OK)
		audit_write(s, who, account_id, mode_actions[mode], "sender-auth", "mode=%s",
			    policy_mode_name(mode));
	return rc;
}

void senders_switch_refused(struct store *s, const struct actor *who, int64_t account_id,
			    enum policy_mode wanted)
{
	audit_write(s, who, account_id, "sender_auth.toggle_denied", "sender-auth", "wanted=%s",
		    mode_wanted[wanted]);
}

/* A verification batch about to be stored: the token goes into the Verify All link, only
 * its hash into the store. */
struct batch {
	char token[AUTH_TOKEN_LEN];
	char hash[AUTH_HASH_HEX];
	struct store_batch_new row;
};

static void batch_new(struct batch *b, const struct config *cfg, int64_t now)
{
	auth_token_new(b->token);
	auth_token_hash(b->token, b->hash);
	b->row = (struct store_batch_new){b->hash, now + cfg->verify_ttl, SENDERS_MAIL_GAP, 0};
}

static int batch_mail(struct store *s, struct queue *q, const struct config *cfg,
		      const struct store_account *acct, const struct batch *b,
		      const char *const *addresses, size_t n)
{
	int rc = notify_verification(s, q, cfg, acct->id, acct->name, b->token, b->row.expires_at,
				     addresses, n);
	if (rc != STORE_OK)
		log_error("senders: the verification email for account %lld could not be queued",
			  (long long)acct->id);
	return rc;
}

/* Mails sender id its owner's confirmation link, valid until *expires_at, unless it is too
 * soon (*wait). */
static int owner_mail(struct store *s, struct queue *q, const struct config *cfg,
		      const struct store_account *acct, int64_t id, const char *address,
		      int64_t *wait, int64_t *expires_out)
{
	char token[AUTH_TOKEN_LEN], hash[AUTH_HASH_HEX];
	int64_t now = util_now(), expires_at = now + SENDERS_OWNER_TTL;
	*expires_out = expires_at;
	auth_token_new(token);
	auth_token_hash(token, hash);
	int rc = store_owner_token_add(s, acct->id, id, hash, now, expires_at, SENDERS_OWNER_GAP,
				       wait);
	if (rc == STORE_OK)
		rc = notify_owner(q, cfg, acct->id, acct->name, token, expires_at, address);
	if (rc != STORE_OK && rc != STORE_TOO_SOON && rc != STORE_CONFLICT)
		log_error("senders: the confirmation email to a sender of account %lld could not "
			  "be queued",
			  (long long)acct->id);
	return rc;
}

int senders_add(struct store *s, struct queue *q, const struct config *cfg, const struct actor *who,
		const struct store_account *acct, const char *const *addresses, size_t n,
		int64_t *ids, int64_t *wait)
{
	struct batch b;
	char mode[STORE_CONFIRM_MODE_MAX];
	int64_t now = util_now(), owner_wait, until;

	*wait = 0;
	if (!n)
		return STORE_OK;
	int rc = store_confirmation_get(s, acct->id, mode);
	if (rc != STORE_OK)
		return rc;
	batch_new(&b, cfg, now);
	/* Owner confirmation alone: the Admins have nothing to verify, so no batch or email. */
	if (strcmp(mode, "owner") == 0)
		b.row.token_hash = NULL;
	rc = store_senders_add(s, acct->id, who->user_id, now, addresses, n, &b.row, ids);
	if (rc != STORE_OK)
		return rc;
	/* Each new address gets its own link, whatever becomes of the Admins' email. */
	for (size_t i = 0; i < n && strcmp(mode, "admin") != 0; i++)
		if (ids[i])
			owner_mail(s, q, cfg, acct, ids[i], addresses[i], &owner_wait, &until);
	const char **added = xcalloc(n, sizeof(*added));
	size_t count = 0;
	for (size_t i = 0; i < n; i++) {
		if (!ids[i])
			continue;
		added[count++] = addresses[i];
		audit_write(s, who, acct->id, "sender.added", addresses[i], NULL);
	}
	/* Too soon after the last email, the addresses wait for the next one. */
	*wait = b.row.wait;
	if (count && !b.row.wait && b.row.token_hash)
		batch_mail(s, q, cfg, acct, &b, added, count);
	free(added);
	return STORE_OK;
}

static int collect_pending(void *arg, const char *address, enum store_batch_state state)
{
	struct senders_batch *out = arg;
	(void)state;
	out->addresses = xrealloc(out->addresses, (out->n + 1) * sizeof(*out->addresses));
	out->addresses[out->n++] = xstrdup(address);
	return 0;
}

int senders_resend(struct store *s, struct queue *q, const struct config *cfg,
		   const struct actor *who, const struct store_account *acct,
		   struct senders_batch *out)
{
	struct batch b;
	char mode[STORE_CONFIRM_MODE_MAX];
	int64_t now = util_now();

	*out = (struct senders_batch){0};
	int rc = store_confirmation_get(s, acct->id, mode);
	if (rc == STORE_OK && strcmp(mode, "owner") == 0)
		rc = STORE_CONFLICT; /* the Admins have nothing to verify */
	if (rc != STORE_OK)
		return rc;
	batch_new(&b, cfg, now);
	rc = store_batch_pending(s, acct->id, who->user_id, now, &b.row, collect_pending, out);
	out->expires_at = b.row.expires_at;
	out->wait = b.row.wait;
	if (rc == STORE_OK && batch_mail(s, q, cfg, acct, &b, (const char *const *)out->addresses,
					 out->n) != STORE_OK)
		rc = STORE_FAIL;
	if (rc == STORE_OK)
		audit_write(s, who, acct->id, "sender.verification_sent", "senders", "count=%zu",
			    out->n);
	return rc;
}

void senders_batch_free(struct senders_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->addresses[i]);
	free(b->addresses);
	*b = (struct senders_batch){0};
}

/* An Admin's half: the sender verified, or the half recorded while its owner has yet to
 * confirm. */
static void audit_admin_half(struct store *s, const struct actor *who, int64_t account_id,
			     const char *address, bool verified, const char *via)
{
	if (verified)
		audit_write(s, who, account_id, "sender.verified", address, "via=%s", via);
	else
		audit_write(s, who, account_id, "sender.admin_verified", address,
			    "via=%s waiting=owner", via);
}

int senders_verify(struct store *s, const struct actor *who, int64_t account_id, int64_t id,
		   struct store_sender *out)
{
	int rc = store_sender_get(s, account_id, id, out);
	if (rc == STORE_OK && strcmp(out->confirmation, "owner") == 0)
		return STORE_CONFLICT;
	if (rc == STORE_OK)
		rc = store_sender_verify(s, account_id, id, who->user_id, util_now());
	if (rc == STORE_OK)
		rc = store_sender_get(s, account_id, id, out);
	if (rc == STORE_OK)
		audit_admin_half(s, who, account_id, out->address, out->verified, "panel");
	return rc;
}

/* Passes each sender of a used batch on, keeping those this use verified (or gave an
 * Admin's half) to audit. */
struct use {
	store_batch_fn fn;
	void *arg;
	struct senders_batch verified;
	struct senders_batch halves;
};

static int note_verified(void *arg, const char *address, enum store_batch_state state)
{
	struct use *u = arg;
	if (state == BATCH_VERIFIED_NOW)
		collect_pending(&u->verified, address, state);
	if (state == BATCH_ADMIN_NOW)
		collect_pending(&u->halves, address, state);
	return u->fn(u->arg, address, state);
}

int senders_verify_all(struct store *s, const struct actor *who, const char *token_hash,
		       int64_t now, struct store_batch *out, store_batch_fn fn, void *arg)
{
	struct use u = {fn, arg, {0}, {0}};
	int rc = store_batch_use(s, token_hash, now, out, note_verified, &u);
	/* Only what the committed transaction verified. */
	bool used_now = rc == STORE_OK && !out->used_at && out->expires_at > now;
	for (size_t i = 0; used_now && i < u.verified.n; i++)
		audit_admin_half(s, who, out->account_id, u.verified.addresses[i], true, "link");
	for (size_t i = 0; used_now && i < u.halves.n; i++)
		audit_admin_half(s, who, out->account_id, u.halves.addresses[i], false, "link");
	senders_batch_free(&u.verified);
	senders_batch_free(&u.halves);
	return rc;
}

int senders_remove(struct store *s, const struct actor *who, int64_t account_id, int64_t id)
{
	struct store_sender snd;
	int rc = store_sender_get(s, account_id, id, &snd);
	if (rc == STORE_OK)
		rc = store_sender_delete(s, account_id, id);
	if (rc == STORE_OK)
		audit_write(s, who, account_id, "sender.removed", snd.address, NULL);
	return rc;
}

int senders_owner_link(struct store *s, struct queue *q, const struct config *cfg,
		       const struct actor *who, const struct store_account *acct, int64_t id,
		       struct store_sender *out, int64_t *wait, int64_t *expires_at)
{
	*wait = 0;
	int rc = store_sender_get(s, acct->id, id, out);
	if (rc == STORE_OK)
		rc = owner_mail(s, q, cfg, acct, id, out->address, wait, expires_at);
	if (rc == STORE_OK)
		audit_write(s, who, acct->id, "sender.confirmation_sent", out->address, NULL);
	return rc;
}

int senders_owner_confirm(struct store *s, const char *ip, const char *token_hash, int64_t now,
			  struct store_owner_token *out)
{
	int rc = store_owner_token_use(s, token_hash, now, out);
	if (rc != STORE_OK || out->used_at || out->expires_at <= now)
		return rc;
	/* The owner acts through the link mailed to the address: the address names them. */
	const struct actor owner = {.name = out->address, .ip = ip};
	audit_write(s, &owner, out->account_id, "sender.confirmed", out->address,
		    out->verified ? "via=owner" : "via=owner waiting=admin");
	if (out->verified)
		audit_write(s, &owner, out->account_id, "sender.verified", out->address,
			    "via=owner");
	return rc;
}

int senders_confirmation_set(struct store *s, const struct actor *who, int64_t account_id,
			     const char *mode)
{
	struct senders_batch verified = {0};
	bool changed;
	/* Audited once the change is committed: the store calls back inside its transaction. */
	int rc = store_confirmation_set(s, account_id, mode, who->user_id, util_now(), &changed,
					collect_pending, &verified);
	if (rc == STORE_OK)
		audit_write(s, who, account_id, "sender_confirmation.changed",
			    "sender-confirmation", "mode=%s%s", mode, changed ? "" : " unchanged");
	for (size_t i = 0; rc == STORE_OK && i < verified.n; i++)
		audit_write(s, who, account_id, "sender.verified", verified.addresses[i],
			    "via=mode");
	senders_batch_free(&verified);
	return rc;
}

void senders_confirmation_refused(struct store *s, const struct actor *who, int64_t account_id,
				  const char *wanted)
{
	audit_write(s, who, account_id, "sender_confirmation.change_denied", "sender-confirmation",
		    "wanted=%s", wanted);
}
