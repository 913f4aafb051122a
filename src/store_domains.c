/* The store's sending domains: their ownership tokens, DKIM keys (sealed private keys,
 * rotation, the master key's check value), DNS check results and the schedule of checks. Every
 * write that can change whether mail from a domain is allowed counts as a policy write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_int.h"
#include "util.h"

/* domain.verified or domain.failed, when a domain's status becomes one of them (from was
 * another status; NULL for a new domain). */
static int domain_event(struct sq_conn *c, int64_t account_id, const char *name, const char *from,
			const char *to, const char *error, int64_t now)
{
	if (!to || (from && strcmp(from, to) == 0))
		return STORE_OK;
	if (strcmp(to, "verified") == 0)
		return sq_event_str(c, account_id, "domain.verified", now, "domain", name, NULL,
				    NULL);
	if (strcmp(to, "failed") == 0)
		return sq_event_str(c, account_id, "domain.failed", now, "domain", name, "error",
				    error ? error : "");
	return STORE_OK;
}

int store_domain_create(struct store *s, int64_t account_id, const struct store_domain_new *d,
			int64_t *id)
{
	const char *approval = d->approval ? d->approval : "approved";
	struct sq_conn c = sq_acquire(s);
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_exec(
			&c, id,
			"INSERT INTO sending_domains (account_id, name, status, active, manual, "
			"approval, token, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
			"issddssi", account_id, d->name, d->status, d->active ? 1 : 0,
			d->manual ? 1 : 0, approval, d->token, d->now);
	if (rc == STORE_OK)
		rc = sq_exec(
			&c, NULL,
			"INSERT INTO dkim_keys (domain_id, selector, private_sealed, public_key, "
			"state, created_at) VALUES (?, ?, ?, ?, 'active', ?)",
			"isssi", *id, d->selector, d->private_sealed, d->public_key, d->now);
	/* One that waits for the operator is not usable yet: no event. */
	if (rc == STORE_OK && strcmp(approval, "approved") == 0)
		rc = domain_event(&c, account_id, d->name, NULL, d->status, NULL, d->now);
	rc = sq_end(&c, rc);
	if (rc == STORE_OK)
		sq_policy_changed(c.s);
	sq_release(&c);
	return rc;
}

/* Locks the account's domain of that name (its row, on PostgreSQL) for the rest of the
 * transaction and reads its status and approval into was; STORE_NOT_FOUND without one. */
static int domain_read_locked(struct sq_conn *c, int64_t account_id, const char *name,
			      struct store_domain_was *was)
{
	struct sq_res r;
	int rc = sq_lock(c,
			 "SELECT id FROM sending_domains WHERE account_id = ? AND name = ? "
			 "FOR NO KEY UPDATE",
			 "is", account_id, name);
	if (rc == STORE_OK)
		rc = sq_step(
			c, &r,
			"SELECT status, approval FROM sending_domains WHERE account_id = ? AND "
			"name = ?",
			"is", account_id, name);
	if (rc == STORE_OK) {
		sq_col_text(&r, 0, was->status, sizeof(was->status));
		sq_col_text(&r, 1, was->approval, sizeof(was->approval));
		sq_done(&r);
	}
	return rc;
}

int store_domain_set(struct store *s, int64_t account_id, const char *name, const char *status,
		     int active)
{
	struct sq_conn c = sq_acquire(s);
	struct store_domain_was w = {0};
	const char *was = w.status, *approval = w.approval;
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = domain_read_locked(&c, account_id, name, &w);
	if (rc == STORE_OK) {
		rc = sq_exec(&c, NULL,
			     "UPDATE sending_domains SET status = COALESCE(?, status),"
			     "  manual = CASE WHEN ? IS NULL THEN manual "
			     "    WHEN ? = 'verified' THEN 1 ELSE 0 END,"
			     "  active = CASE WHEN ? < 0 THEN active ELSE ? END "
			     "WHERE account_id = ? AND name = ?",
			     "sssddis", status, status, status, active, active, account_id, name);
	}
	/* An operator's mark: no lookup failed. Events tell of domains that may send. */
	if (rc == STORE_OK && strcmp(approval, "approved") == 0)
		rc = domain_event(&c, account_id, name, was, status, "marked failed by an operator",
				  util_now());
	rc = sq_end(&c, rc);
	if (rc == STORE_OK)
		sq_policy_changed(s);
	sq_release(&c);
	return rc;
}

/* The events of an approval decision: approving a verified domain makes it usable;
 * rejecting a usable one ends that. */
static int approval_event(struct sq_conn *c, int64_t account_id, const char *name, const char *to,
			  const struct store_domain_was *was)
{
	if (strcmp(was->status, "verified") != 0)
		return STORE_OK;
	if (strcmp(to, "approved") == 0)
		return domain_event(c, account_id, name, NULL, "verified", NULL, util_now());
	if (strcmp(was->approval, "approved") == 0)
		return domain_event(c, account_id, name, NULL, "failed", "rejected by the operator",
				    util_now());
	return STORE_OK;
}

int store_domain_approve(struct store *s, int64_t account_id, const char *name,
			 const char *approval, struct store_domain_was *was)
{
	struct sq_conn c = sq_acquire(s);
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = domain_read_locked(&c, account_id, name, was);
	if (rc == STORE_OK && strcmp(was->approval, approval) == 0)
		rc = STORE_CONFLICT;
	if (rc == STORE_OK)
		rc = sq_exec(&c, NULL,
			     "UPDATE sending_domains SET approval = ? WHERE account_id = ? AND "
			     "name = ?",
			     "sis", approval, account_id, name);
	if (rc == STORE_OK)
		rc = approval_event(&c, account_id, name, approval, was);
	rc = sq_end(&c, rc);
	if (rc == STORE_OK)
		sq_policy_changed(s);
	sq_release(&c);
	return rc;
}

#define DOMAIN_COLUMNS                                                                             \
	"id, account_id, name, status, active, token, created_at, COALESCE(checked_at, 0), "       \
	"COALESCE(missing_since, 0), COALESCE(check_error, ''), COALESCE(records, ''), manual, "   \
	"approval, COALESCE(spf_seen, '')"

static void read_domain(const struct sq_res *r, void *row)
{
	struct store_domain *d = row;
	memset(d, 0, sizeof(*d));
	d->id = sq_int(r, 0);
	d->account_id = sq_int(r, 1);
	sq_col_text(r, 2, d->name, sizeof(d->name));
	sq_col_text(r, 3, d->status, sizeof(d->status));
	d->active = sq_int(r, 4) != 0;
	sq_col_text(r, 5, d->token, sizeof(d->token));
	d->created_at = sq_int(r, 6);
	d->checked_at = sq_int(r, 7);
	d->missing_since = sq_int(r, 8);
	sq_col_text(r, 9, d->check_error, sizeof(d->check_error));
	sq_col_text(r, 10, d->records, sizeof(d->records));
	d->manual = sq_int(r, 11) != 0;
	sq_col_text(r, 12, d->approval, sizeof(d->approval));
	sq_col_text(r, 13, d->spf_seen, sizeof(d->spf_seen));
}

static void read_key(const struct sq_res *r, void *row)
{
	struct store_domain *d = row;
	if (d->nkeys >= STORE_DKIM_KEYS)
		return;
	struct store_dkim_key *k = &d->keys[d->nkeys++];
	sq_col_text(r, 0, k->selector, sizeof(k->selector));
	sq_col_text(r, 1, k->public_key, sizeof(k->public_key));
	sq_col_text(r, 2, k->state, sizeof(k->state));
	k->verified = sq_int(r, 3) != 0;
}

/* A retired key stays listed this long: mail signed with it may still be in transit, or
 * verified again later by a forwarder. */
#define RETIRED_LISTED (7 * 24 * 3600)

/* Adds the published keys (active, the one waiting, recently retired) to d. */
static int read_keys(struct sq_conn *c, struct store_domain *d)
{
	return sq_each(c, read_key, d, sq_row_done, NULL,
		       "SELECT selector, public_key, state, verified FROM dkim_keys "
		       "WHERE domain_id = ? AND (state <> 'retired' OR retired_at > ?) "
		       "ORDER BY CASE state WHEN 'active' THEN 0 WHEN 'next' THEN 1 ELSE 2 END, "
		       "id DESC",
		       "ii", d->id, util_now() - RETIRED_LISTED);
}

int store_domain_get(struct store *s, int64_t account_id, int64_t id, struct store_domain *out)
{
	struct sq_conn c = sq_acquire(s);
	struct sq_res r;
	int rc = sq_step(&c, &r,
			 "SELECT " DOMAIN_COLUMNS " FROM sending_domains WHERE account_id = ? AND "
			 "id = ?",
			 "ii", account_id, id);
	if (rc == STORE_OK) {
		read_domain(&r, out);
		sq_done(&r);
		rc = read_keys(&c, out);
	}
	sq_release(&c);
	return rc;
}

int store_domains_list(struct store *s, int64_t account_id, store_domain_fn fn, void *arg)
{
	struct sq_conn c = sq_acquire(s);
	struct sq_res r;
	struct store_domain *d = xmalloc(sizeof(*d));
	int rc = sq_step(&c, &r,
			 "SELECT " DOMAIN_COLUMNS " FROM sending_domains WHERE account_id = ? "
			 "ORDER BY name",
			 "i", account_id);
	/* Keys are read with a second statement while the first is still stepping. */
	while (rc == STORE_OK) {
		read_domain(&r, d);
		rc = read_keys(&c, d);
		if (rc != STORE_OK)
			break;
		fn(arg, d);
		rc = sq_next(&r);
	}
	sq_done(&r);
	sq_release(&c);
	free(d);
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

int store_domain_delete(struct store *s, int64_t account_id, int64_t id)
{
	return sq_update(s, true, "DELETE FROM sending_domains WHERE account_id = ? AND id = ?",
			 "ii", account_id, id);
}

int store_domain_set_active(struct store *s, int64_t account_id, int64_t id, bool active)
{
	return sq_update(s, true,
			 "UPDATE sending_domains SET active = ? WHERE account_id = ? AND id = ?",
			 "dii", active ? 1 : 0, account_id, id);
}

int store_domain_checked(struct store *s, int64_t id, const struct store_domain_check *chk)
{
	struct sq_conn c = sq_acquire(s);
	struct sq_res r;
	bool changed = false, usable = false;
	int64_t promoted = 0;
	char name[ADDR_DOMAIN_MAX] = "";
	/* The domain's row is locked on PostgreSQL: a check and a rotation, or two checks on
	 * two nodes, take turns. */
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_lock(&c, "SELECT id FROM sending_domains WHERE id = ? FOR NO KEY UPDATE",
			     "i", id);
	/* The domain may have been removed, or replaced, while its lookups ran; or changed by
	 * an operator (postern domain set --verified), whose mark a check must not undo. */
	if (rc == STORE_OK)
		rc = sq_step(&c, &r,
			     "SELECT status <> ?, status = ? AND manual = ?, name, "
			     "approval = 'approved' FROM sending_domains "
			     "WHERE id = ? AND account_id = ? AND token = ?",
			     "ssdiis", chk->status, chk->read_status, chk->read_manual ? 1 : 0, id,
			     chk->account_id, chk->token);
	if (rc == STORE_OK) {
		changed = sq_int(&r, 0) != 0;
		if (!sq_int(&r, 1))
			rc = STORE_CONFLICT;
		sq_col_text(&r, 2, name, sizeof(name));
		usable = sq_int(&r, 3) != 0;
		sq_done(&r);
	}
	/* A domain waiting for (or refused) the operator's approval sends nothing either way:
	 * its events come when it is approved. */
	if (rc == STORE_OK && changed && usable)
		rc = domain_event(&c, chk->account_id, name, NULL, chk->status, chk->error,
				  chk->now);
	if (rc == STORE_OK) {
		rc = sq_exec(&c, NULL,
			     "UPDATE sending_domains SET status = ?, checked_at = ?, "
			     "  missing_since = NULLIF(?, 0), check_error = ?, records = ?, "
			     "  spf_seen = COALESCE(?, spf_seen) "
			     "WHERE id = ?",
			     "siisssi", chk->status, chk->now, chk->missing_since, chk->error,
			     chk->records, chk->spf_seen, id);
	}
	for (int i = 0; i < chk->nverified && rc == STORE_OK; i++)
		rc = sq_exec(
			&c, NULL,
			"UPDATE dkim_keys SET verified = 1 WHERE domain_id = ? AND selector = ?",
			"is", id, chk->verified_selectors[i]);
	/* A waiting key whose record is published takes over; the old one is retired. */
	if (rc == STORE_OK)
		rc = sq_exec(
			&c, NULL,
			"UPDATE dkim_keys SET state = CASE state WHEN 'active' THEN 'retired' "
			"  ELSE 'active' END, "
			"  retired_at = CASE state WHEN 'active' THEN ? ELSE retired_at END "
			"WHERE domain_id = ? AND state IN ('active','next') AND EXISTS "
			"  (SELECT 1 FROM dkim_keys n WHERE n.domain_id = ? AND n.state = 'next' "
			"   AND n.verified = 1)",
			"iii", chk->now, id, id);
	if (rc == STORE_OK)
		promoted = sq_changes(&c);
	rc = sq_end(&c, rc);
	/* Only a change of status (or of the signing key) can change a decision. */
	if (rc == STORE_OK && (changed || promoted))
		sq_policy_changed(c.s);
	sq_release(&c);
	return rc;
}

struct due {
	int64_t account_id, id;
};

struct due_list {
	struct due *all;
	size_t n, cap;
};

static void read_due(const struct sq_res *r, void *row)
{
	struct due *d = row;
	d->account_id = sq_int(r, 0);
	d->id = sq_int(r, 1);
}

static int keep_due(void *arg, const void *row)
{
	struct due_list *l = arg;
	if (l->n == l->cap)
		l->all = xrealloc(l->all, (l->cap = l->cap ? l->cap * 2 : 16) * sizeof(*l->all));
	l->all[l->n++] = *(const struct due *)row;
	return 0;
}

int store_domains_due(struct store *s, int64_t pending_before, int64_t verified_before,
		      store_due_fn fn, void *arg)
{
	struct due row;
	struct due_list due = {0};
	int rc = sq_list(s, read_due, &row, keep_due, &due,
			 "SELECT account_id, id FROM sending_domains WHERE manual = 0 AND "
			 "approval <> 'rejected' AND "
			 "((status IN ('pending','failed') AND COALESCE(checked_at, 0) <= ?) OR "
			 "(status = 'verified' AND COALESCE(checked_at, 0) <= ?)) "
			 "ORDER BY COALESCE(checked_at, 0) LIMIT 1000",
			 "ii", pending_before, verified_before);
	/* The checks run with no connection held: they wait on DNS. */
	for (size_t i = 0; i < due.n; i++)
		fn(arg, due.all[i].account_id, due.all[i].id);
	free(due.all);
	return rc;
}

int store_dkim_rotate(struct store *s, int64_t account_id, int64_t id, const char *selector,
		      const char *private_sealed, const char *public_key, int64_t now)
{
	struct sq_conn c = sq_acquire(s);
	struct sq_res r;
	/* The domain's row is locked on PostgreSQL, so two rotations cannot both find no key
	 * waiting. */
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_lock(&c,
			     "SELECT id FROM sending_domains WHERE account_id = ? AND id = ? "
			     "FOR NO KEY UPDATE",
			     "ii", account_id, id);
	if (rc == STORE_OK)
		rc = sq_step(
			&c, &r,
			"SELECT (SELECT COUNT(*) FROM dkim_keys k WHERE k.domain_id = d.id AND "
			"k.state = 'next') FROM sending_domains d WHERE d.account_id = ? AND "
			"d.id = ?",
			"ii", account_id, id);
	if (rc == STORE_OK) {
		if (sq_int(&r, 0) > 0)
			rc = STORE_CONFLICT;
		sq_done(&r);
	}
	if (rc == STORE_OK)
		rc = sq_exec(
			&c, NULL,
			"INSERT INTO dkim_keys (domain_id, selector, private_sealed, public_key, "
			"state, created_at) VALUES (?, ?, ?, ?, 'next', ?)",
			"isssi", id, selector, private_sealed, public_key, now);
	rc = sq_end(&c, rc);
	sq_release(&c);
	return rc;
}

struct signing_key {
	char *selector;
	char **private_sealed;
};

static void read_signing_key(const struct sq_res *r, void *row)
{
	const struct signing_key *k = row;
	const char *sealed = sq_text(r, 1);
	sq_col_text(r, 0, k->selector, STORE_SELECTOR_MAX);
	*k->private_sealed = xstrdup(sealed ? sealed : "");
}

int store_dkim_signing_key(struct store *s, int64_t account_id, const char *domain,
			   char selector[STORE_SELECTOR_MAX], char **private_sealed)
{
	struct signing_key k = {selector, private_sealed};
	return sq_get(s, read_signing_key, &k,
		      "SELECT k.selector, k.private_sealed FROM sending_domains d "
		      "JOIN dkim_keys k ON k.domain_id = d.id AND k.state = 'active' "
		      "WHERE d.account_id = ? AND d.name = ? AND d.status = 'verified' "
		      "AND d.active = 1 AND d.approval = 'approved'",
		      "is", account_id, domain);
}

#define MASTER_CHECK	 "dkim_master_check"
#define MASTER_CHECK_MAX 128

static void read_check(const struct sq_res *r, void *row)
{
	sq_col_text(r, 0, row, MASTER_CHECK_MAX);
}

static void read_sealed(const struct sq_res *r, void *row)
{
	const char *sealed = sq_text(r, 0);
	*(char **)row = xstrdup(sealed ? sealed : "");
}

/* A store that predates the check value takes this node's only if its sealed keys open
 * with it: otherwise the first node to start would decide for all. */
static int master_adoptable(struct store *s, store_opens_fn opens, void *arg)
{
	char *sealed = NULL;
	int rc = sq_get(s, read_sealed, &sealed,
			"SELECT private_sealed FROM dkim_keys ORDER BY id LIMIT 1", "");
	if (rc == STORE_OK)
		rc = opens(arg, sealed) ? STORE_OK : STORE_CONFLICT;
	free(sealed);
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

int store_master_check(struct store *s, const char *check, store_opens_fn opens, void *arg)
{
	char stored[MASTER_CHECK_MAX] = "";
	const char *get = "SELECT value FROM meta WHERE name = '" MASTER_CHECK "'";
	int rc = sq_get(s, read_check, stored, get, "");
	if (rc == STORE_NOT_FOUND)
		rc = master_adoptable(s, opens, arg);
	/* Nodes starting together: the first value written stays, and each reads it back. */
	if (rc == STORE_OK && !stored[0])
		rc = sq_write(s, NULL,
			      "INSERT INTO meta (name, value) VALUES ('" MASTER_CHECK "', ?) "
			      "ON CONFLICT (name) DO NOTHING",
			      "s", check);
	if (rc == STORE_OK && !stored[0])
		rc = sq_get(s, read_check, stored, get, "");
	if (rc != STORE_OK)
		return rc;
	return strcmp(stored, check) == 0 ? STORE_OK : STORE_CONFLICT;
}
