/* Senders: every change to which addresses may send goes through here, so a verification
 * batch is made one way (token, hash, expiry, store, email) and each change is audited
 * once, whichever front end asked. */
#include "senders.h"

#include <stdlib.h>

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

int senders_add(struct store *s, struct queue *q, const struct config *cfg, const struct actor *who,
		const struct store_account *acct, const char *const *addresses, size_t n,
		int64_t *ids, int64_t *wait)
{
	struct batch b;
	int64_t now = util_now();

	*wait = 0;
	if (!n)
		return STORE_OK;
	batch_new(&b, cfg, now);
	int rc = store_senders_add(s, acct->id, who->user_id, now, addresses, n, &b.row, ids);
	if (rc != STORE_OK)
		return rc;
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
	if (count && !b.row.wait)
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
	int64_t now = util_now();

	*out = (struct senders_batch){0};
	batch_new(&b, cfg, now);
	int rc = store_batch_pending(s, acct->id, who->user_id, now, &b.row, collect_pending, out);
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

int senders_verify(struct store *s, const struct actor *who, int64_t account_id, int64_t id,
		   struct store_sender *out)
{
	int rc = store_sender_verify(s, account_id, id, who->user_id, util_now());
	if (rc == STORE_OK)
		rc = store_sender_get(s, account_id, id, out);
	if (rc == STORE_OK)
		audit_write(s, who, account_id, "sender.verified", out->address, "via=panel");
	return rc;
}

/* Passes each sender of a used batch on, keeping those this use verified to audit. */
struct use {
	store_batch_fn fn;
	void *arg;
	struct senders_batch verified;
};

static int note_verified(void *arg, const char *address, enum store_batch_state state)
{
	struct use *u = arg;
	if (state == BATCH_VERIFIED_NOW)
		collect_pending(&u->verified, address, state);
	return u->fn(u->arg, address, state);
}

int senders_verify_all(struct store *s, const struct actor *who, const char *token_hash,
		       int64_t now, struct store_batch *out, store_batch_fn fn, void *arg)
{
	struct use u = {fn, arg, {0}};
	int rc = store_batch_use(s, token_hash, now, out, note_verified, &u);
	/* Only what the committed transaction verified. */
	bool used_now = rc == STORE_OK && !out->used_at && out->expires_at > now;
	for (size_t i = 0; used_now && i < u.verified.n; i++)
		audit_write(s, who, out->account_id, "sender.verified", u.verified.addresses[i],
			    "via=link");
	senders_batch_free(&u.verified);
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
