/* The store's sender confirmation (issue 19): the account's confirmation mode, the owners'
 * single-use links, and the one rule that makes a pending sender verified once the halves
 * its account's mode asks for (an Admin's, its owner's, or both) are given. */
#include <stdlib.h>
#include <string.h>

#include "store_int.h"
#include "util.h"

/* verified_via holds how the last half came: the owner's link is a link, and a mode change
 * is an Admin's act in the panel. The event says which exactly. */
static const char *via_column(const char *via)
{
	return strcmp(via, "owner") == 0 ? "link" : strcmp(via, "mode") == 0 ? "panel" : via;
}

int sq_sender_complete(struct sq_conn *c, int64_t account_id, int64_t id, const char *via,
		       int64_t user_id, int64_t now, bool *done)
{
	struct sq_res r;
	*done = false;
	/* admin needs the Admin's half, owner the owner's, both the two. */
	int rc = sq_step(
		c, &r,
		"UPDATE senders SET status = 'verified', verified_at = ?, verified_via = ?, "
		"  verified_by = COALESCE(verified_by, NULLIF(?, 0)) "
		"WHERE account_id = ? AND id = ? AND status = 'pending' "
		"  AND (admin_verified_at IS NOT NULL OR (SELECT sender_confirmation FROM "
		"    settings WHERE account_id = ?) = 'owner') "
		"  AND (owner_confirmed_at IS NOT NULL OR (SELECT sender_confirmation FROM "
		"    settings WHERE account_id = ?) = 'admin') "
		"RETURNING address",
		"isiiiii", now, via_column(via), user_id, account_id, id, account_id, account_id);
	if (rc == STORE_NOT_FOUND)
		return STORE_OK;
	if (rc != STORE_OK)
		return rc;
	char address[ADDR_MAX];
	sq_col_text(&r, 0, address, sizeof(address));
	rc = sq_finish(&r);
	if (rc == STORE_OK)
		rc = sq_event_str(c, account_id, "sender.verified", now, "email", address, "via",
				  via);
	*done = rc == STORE_OK;
	return rc;
}

static void read_mode(const struct sq_res *r, void *row)
{
	sq_col_text(r, 0, row, STORE_CONFIRM_MODE_MAX);
}

int store_confirmation_get(struct store *s, int64_t account_id, char *mode)
{
	return sq_get(s, read_mode, mode,
		      "SELECT sender_confirmation FROM settings WHERE account_id = ?", "i",
		      account_id);
}

struct ids {
	int64_t *v;
	size_t n;
};

static void read_id(const struct sq_res *r, void *row)
{
	*(int64_t *)row = sq_int(r, 0);
}

static int collect_id(void *arg, const void *row)
{
	struct ids *ids = arg;
	ids->v = xrealloc(ids->v, (ids->n + 1) * sizeof(*ids->v));
	ids->v[ids->n++] = *(const int64_t *)row;
	return 0;
}

/* Completes the account's pending senders that the new mode asks nothing more of. */
static int complete_pending(struct sq_conn *c, int64_t account_id, int64_t user_id, int64_t now,
			    store_batch_fn fn, void *arg)
{
	struct ids ids = {0};
	int64_t row;
	int rc = sq_each(c, read_id, &row, collect_id, &ids,
			 "SELECT id FROM senders WHERE account_id = ? AND status = 'pending' "
			 "ORDER BY address",
			 "i", account_id);
	for (size_t i = 0; i < ids.n && rc == STORE_OK; i++) {
		bool done;
		rc = sq_sender_complete(c, account_id, ids.v[i], "mode", user_id, now, &done);
		struct sq_res r;
		if (rc == STORE_OK && done && fn &&
		    (rc = sq_step(c, &r, "SELECT address FROM senders WHERE id = ?", "i",
				  ids.v[i])) == STORE_OK) {
			fn(arg, sq_text(&r, 0), BATCH_VERIFIED_NOW);
			sq_done(&r);
		}
	}
	free(ids.v);
	return rc;
}

int store_confirmation_set(struct store *s, int64_t account_id, const char *mode, int64_t user_id,
			   int64_t now, bool *changed, store_batch_fn fn, void *arg)
{
	struct sq_conn c = sq_acquire(s);
	int64_t found = 0;
	*changed = false;
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_exec(&c, &found,
			     "UPDATE settings SET sender_confirmation = ?, updated_at = ?, "
			     "updated_by = ? WHERE account_id = ? AND sender_confirmation <> ? "
			     "RETURNING account_id",
			     "siiis", mode, now, user_id, account_id, mode);
	if (rc == STORE_OK) {
		*changed = true;
		rc = complete_pending(&c, account_id, user_id, now, fn, arg);
	} else if (rc == STORE_NOT_FOUND) {
		rc = sq_exec(&c, &found, "SELECT account_id FROM settings WHERE account_id = ?",
			     "i", account_id);
	}
	rc = sq_end(&c, rc);
	if (rc == STORE_OK && *changed)
		sq_policy_changed(s);
	sq_release(&c);
	return rc;
}

int store_owner_token_add(struct store *s, int64_t account_id, int64_t sender_id,
			  const char *token_hash, int64_t now, int64_t expires_at, int64_t gap,
			  int64_t *wait)
{
	struct sq_conn c = sq_acquire(s);
	int64_t last = 0, waiting = 0;
	*wait = 0;
	int rc = sq_begin(&c);
	/* The sender's row is locked first, so two nodes asking at once take turns. */
	if (rc == STORE_OK)
		rc = sq_lock(&c, "SELECT id FROM senders WHERE id = ? FOR NO KEY UPDATE", "i",
			     sender_id);
	if (rc == STORE_OK)
		rc = sq_exec(&c, &waiting,
			     "SELECT s.status = 'pending' AND s.owner_confirmed_at IS NULL AND "
			     "  st.sender_confirmation <> 'admin' "
			     "FROM senders s JOIN settings st ON st.account_id = s.account_id "
			     "WHERE s.account_id = ? AND s.id = ?",
			     "ii", account_id, sender_id);
	if (rc == STORE_OK && !waiting)
		rc = STORE_CONFLICT;
	if (rc == STORE_OK)
		rc = sq_exec(&c, &last,
			     "SELECT COALESCE(MAX(created_at), 0) FROM owner_tokens "
			     "WHERE sender_id = ?",
			     "i", sender_id);
	if (rc == STORE_OK && last && last + gap > now) {
		*wait = last + gap - now;
		rc = STORE_TOO_SOON;
	}
	if (rc == STORE_OK)
		rc = sq_exec(&c, NULL,
			     "INSERT INTO owner_tokens (account_id, sender_id, token_hash, "
			     "created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
			     "iisii", account_id, sender_id, token_hash, now, expires_at);
	rc = sq_end(&c, rc);
	sq_release(&c);
	return rc;
}

#define OWNER_TOKEN_SELECT                                                                         \
	"SELECT t.id, t.account_id, a.name, t.sender_id, s.address, st.sender_confirmation, "      \
	"  t.expires_at, COALESCE(t.used_at, 0), s.status, s.admin_verified_at IS NOT NULL, "      \
	"  s.owner_confirmed_at IS NOT NULL "                                                      \
	"FROM owner_tokens t JOIN senders s ON s.id = t.sender_id "                                \
	"JOIN accounts a ON a.id = t.account_id JOIN settings st ON st.account_id = t.account_id " \
	"WHERE t.token_hash = ?"

static void read_owner_token(const struct sq_res *r, void *row)
{
	struct store_owner_token *t = row;
	t->id = sq_int(r, 0);
	t->account_id = sq_int(r, 1);
	sq_col_text(r, 2, t->account_name, sizeof(t->account_name));
	t->sender_id = sq_int(r, 3);
	sq_col_text(r, 4, t->address, sizeof(t->address));
	sq_col_text(r, 5, t->mode, sizeof(t->mode));
	t->expires_at = sq_int(r, 6);
	t->used_at = sq_int(r, 7);
	t->verified = strcmp(sq_text(r, 8), "verified") == 0;
	t->admin_verified = sq_int(r, 9) != 0;
	t->owner_confirmed = sq_int(r, 10) != 0;
}

static int owner_token_read(struct sq_conn *c, const char *token_hash,
			    struct store_owner_token *out)
{
	struct sq_res r;
	int rc = sq_step(c, &r, OWNER_TOKEN_SELECT, "s", token_hash);
	if (rc == STORE_OK) {
		read_owner_token(&r, out);
		sq_done(&r);
	}
	return rc;
}

int store_owner_token_get(struct store *s, const char *token_hash, struct store_owner_token *out)
{
	return sq_get(s, read_owner_token, out, OWNER_TOKEN_SELECT, "s", token_hash);
}

/* Records the owner's half of a usable token's sender and marks the token used. */
static int owner_confirm(struct sq_conn *c, const struct store_owner_token *t, int64_t now)
{
	bool done;
	int rc = sq_exec(c, NULL, "UPDATE owner_tokens SET used_at = ? WHERE id = ?", "ii", now,
			 t->id);
	if (rc == STORE_OK)
		rc = sq_exec(c, NULL,
			     "UPDATE senders SET owner_confirmed_at = ? WHERE id = ? AND "
			     "owner_confirmed_at IS NULL",
			     "ii", now, t->sender_id);
	if (rc == STORE_OK)
		rc = sq_sender_complete(c, t->account_id, t->sender_id, "owner", 0, now, &done);
	return rc;
}

int store_owner_token_use(struct store *s, const char *token_hash, int64_t now,
			  struct store_owner_token *out)
{
	struct sq_conn c = sq_acquire(s);
	struct store_owner_token after = {0};
	/* The token's row is locked on PostgreSQL, so two clicks on two nodes use it once. */
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_lock(&c,
			     "SELECT id FROM owner_tokens WHERE token_hash = ? FOR NO KEY UPDATE",
			     "s", token_hash);
	if (rc == STORE_OK)
		rc = owner_token_read(&c, token_hash, out);
	bool usable = rc == STORE_OK && !out->used_at && out->expires_at > now;
	if (usable)
		rc = owner_confirm(&c, out, now);
	if (usable && rc == STORE_OK)
		rc = owner_token_read(&c, token_hash, &after);
	if (usable && rc == STORE_OK) {
		out->verified = after.verified;
		out->owner_confirmed = after.owner_confirmed;
	}
	if (usable) {
		rc = sq_end(&c, rc);
		if (rc == STORE_OK)
			sq_policy_changed(s);
	} else {
		sq_end(&c, STORE_NOT_FOUND); /* nothing to keep */
	}
	sq_release(&c);
	return rc;
}
