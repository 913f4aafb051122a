/* The SQLite backend's sending domains: their ownership tokens, DKIM keys (sealed private
 * keys, rotation), DNS check results and the schedule of checks. Every write that can
 * change whether mail from a domain is allowed counts as a policy write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store_sqlite.h"
#include "util.h"

int sq_domain_create(struct store *s, int64_t account_id, const struct store_domain_new *d,
		     int64_t *id)
{
	struct sq *q = sq_of(s);
	pthread_mutex_lock(&q->lock);
	int rc = sq_begin(q);
	if (rc == STORE_OK)
		rc = sq_exec(
			q, id,
			"INSERT INTO sending_domains (account_id, name, status, active, manual, "
			"token, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
			"issddsi", account_id, d->name, d->status, d->active ? 1 : 0,
			d->manual ? 1 : 0, d->token, d->now);
	if (rc == STORE_OK)
		rc = sq_exec(
			q, NULL,
			"INSERT INTO dkim_keys (domain_id, selector, private_sealed, public_key, "
			"state, created_at) VALUES (?, ?, ?, ?, 'active', ?)",
			"isssi", *id, d->selector, d->private_sealed, d->public_key, d->now);
	rc = sq_end(q, rc);
	if (rc == STORE_OK)
		q->policy_writes++;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int sq_domain_set(struct store *s, int64_t account_id, const char *name, const char *status,
		  int active)
{
	return sq_update(sq_of(s), true,
			 "UPDATE sending_domains SET status = COALESCE(?1, status),"
			 "  manual = CASE WHEN ?1 IS NULL THEN manual ELSE ?1 = 'verified' END,"
			 "  active = CASE WHEN ?2 < 0 THEN active ELSE ?2 END "
			 "WHERE account_id = ?3 AND name = ?4",
			 "sdis", status, active, account_id, name);
}

#define DOMAIN_COLUMNS                                                                             \
	"id, account_id, name, status, active, token, created_at, COALESCE(checked_at, 0), "       \
	"COALESCE(missing_since, 0), COALESCE(check_error, ''), COALESCE(records, ''), manual"

static void read_domain(sqlite3_stmt *st, void *row)
{
	struct store_domain *d = row;
	memset(d, 0, sizeof(*d));
	d->id = sqlite3_column_int64(st, 0);
	d->account_id = sqlite3_column_int64(st, 1);
	sq_col_text(st, 2, d->name, sizeof(d->name));
	sq_col_text(st, 3, d->status, sizeof(d->status));
	d->active = sqlite3_column_int(st, 4) != 0;
	sq_col_text(st, 5, d->token, sizeof(d->token));
	d->created_at = sqlite3_column_int64(st, 6);
	d->checked_at = sqlite3_column_int64(st, 7);
	d->missing_since = sqlite3_column_int64(st, 8);
	sq_col_text(st, 9, d->check_error, sizeof(d->check_error));
	sq_col_text(st, 10, d->records, sizeof(d->records));
	d->manual = sqlite3_column_int(st, 11) != 0;
}

static void read_key(sqlite3_stmt *st, void *row)
{
	struct store_domain *d = row;
	if (d->nkeys >= STORE_DKIM_KEYS)
		return;
	struct store_dkim_key *k = &d->keys[d->nkeys++];
	sq_col_text(st, 0, k->selector, sizeof(k->selector));
	sq_col_text(st, 1, k->public_key, sizeof(k->public_key));
	sq_col_text(st, 2, k->state, sizeof(k->state));
	k->verified = sqlite3_column_int(st, 3) != 0;
}

/* A retired key stays listed this long: mail signed with it may still be in transit, or
 * verified again later by a forwarder. */
#define RETIRED_LISTED (7 * 24 * 3600)

/* Adds the published keys (active, the one waiting, recently retired) to d; lock held. */
static int read_keys(struct sq *q, struct store_domain *d)
{
	return sq_each(q, read_key, d, sq_row_done, NULL,
		       "SELECT selector, public_key, state, verified FROM dkim_keys "
		       "WHERE domain_id = ? AND (state <> 'retired' OR retired_at > ?) "
		       "ORDER BY CASE state WHEN 'active' THEN 0 WHEN 'next' THEN 1 ELSE 2 END, "
		       "id DESC",
		       "ii", d->id, util_now() - RETIRED_LISTED);
}

int sq_domain_get(struct store *s, int64_t account_id, int64_t id, struct store_domain *out)
{
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->lock);
	int rc = sq_step(q, &st,
			 "SELECT " DOMAIN_COLUMNS " FROM sending_domains WHERE account_id = ? AND "
			 "id = ?",
			 "ii", account_id, id);
	if (rc == STORE_OK) {
		read_domain(st, out);
		sqlite3_finalize(st);
		rc = read_keys(q, out);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int sq_domains_list(struct store *s, int64_t account_id, store_domain_fn fn, void *arg)
{
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	struct store_domain *d = xmalloc(sizeof(*d));
	pthread_mutex_lock(&q->lock);
	int rc = sq_step(q, &st,
			 "SELECT " DOMAIN_COLUMNS " FROM sending_domains WHERE account_id = ? "
			 "ORDER BY name",
			 "i", account_id);
	/* Keys are read with a second statement while the first is still stepping. */
	while (rc == STORE_OK) {
		read_domain(st, d);
		rc = read_keys(q, d);
		if (rc != STORE_OK)
			break;
		fn(arg, d);
		int step = sqlite3_step(st);
		rc = step == SQLITE_ROW	   ? STORE_OK
		     : step == SQLITE_DONE ? STORE_NOT_FOUND
					   : sq_fail(q, "domains");
	}
	if (st)
		sqlite3_finalize(st);
	pthread_mutex_unlock(&q->lock);
	free(d);
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

int sq_domain_delete(struct store *s, int64_t account_id, int64_t id)
{
	return sq_update(sq_of(s), true,
			 "DELETE FROM sending_domains WHERE account_id = ? AND id = ?", "ii",
			 account_id, id);
}

int sq_domain_set_active(struct store *s, int64_t account_id, int64_t id, bool active)
{
	return sq_update(sq_of(s), true,
			 "UPDATE sending_domains SET active = ? WHERE account_id = ? AND id = ?",
			 "dii", active ? 1 : 0, account_id, id);
}

int sq_domain_checked(struct store *s, int64_t id, const struct store_domain_check *c)
{
	struct sq *q = sq_of(s);
	pthread_mutex_lock(&q->lock);
	sqlite3_stmt *st;
	bool changed = false;
	int rc = sq_begin(q);
	/* The domain may have been removed, or replaced, while its lookups ran. */
	if (rc == STORE_OK)
		rc = sq_step(
			q, &st,
			"SELECT status <> ? FROM sending_domains WHERE id = ? AND account_id = ? "
			"AND token = ?",
			"siis", c->status, id, c->account_id, c->token);
	if (rc == STORE_OK) {
		changed = sqlite3_column_int(st, 0) != 0;
		sqlite3_finalize(st);
		rc = sq_exec(q, NULL,
			     "UPDATE sending_domains SET status = ?, checked_at = ?, "
			     "  missing_since = NULLIF(?, 0), check_error = ?, records = ? "
			     "WHERE id = ?",
			     "siissi", c->status, c->now, c->missing_since, c->error, c->records,
			     id);
	}
	for (int i = 0; i < c->nverified && rc == STORE_OK; i++)
		rc = sq_exec(
			q, NULL,
			"UPDATE dkim_keys SET verified = 1 WHERE domain_id = ? AND selector = ?",
			"is", id, c->verified_selectors[i]);
	/* A waiting key whose record is published takes over; the old one is retired. */
	if (rc == STORE_OK)
		rc = sq_exec(
			q, NULL,
			"UPDATE dkim_keys SET state = CASE state WHEN 'active' THEN 'retired' "
			"  ELSE 'active' END, "
			"  retired_at = CASE state WHEN 'active' THEN ?2 ELSE retired_at END "
			"WHERE domain_id = ?1 AND state IN ('active','next') AND EXISTS "
			"  (SELECT 1 FROM dkim_keys n WHERE n.domain_id = ?1 AND n.state = 'next' "
			"   AND n.verified = 1)",
			"ii", id, c->now);
	int promoted = rc == STORE_OK ? sqlite3_changes(q->db) : 0;
	rc = sq_end(q, rc);
	/* Only a change of status (or of the signing key) can change a decision. */
	if (rc == STORE_OK && (changed || promoted))
		q->policy_writes++;
	pthread_mutex_unlock(&q->lock);
	return rc;
}

struct due_row {
	int64_t account_id, id;
};

static void read_due(sqlite3_stmt *st, void *row)
{
	struct due_row *r = row;
	r->account_id = sqlite3_column_int64(st, 0);
	r->id = sqlite3_column_int64(st, 1);
}

int sq_domains_due(struct store *s, int64_t pending_before, int64_t verified_before,
		   store_due_fn fn, void *arg)
{
	struct sq *q = sq_of(s);
	struct due_row *rows = NULL, row;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&q->lock);
	sqlite3_stmt *st;
	int rc = sq_step(q, &st,
			 "SELECT account_id, id FROM sending_domains WHERE manual = 0 AND "
			 "((status IN ('pending','failed') AND COALESCE(checked_at, 0) <= ?) OR "
			 "(status = 'verified' AND COALESCE(checked_at, 0) <= ?)) "
			 "ORDER BY COALESCE(checked_at, 0) LIMIT 1000",
			 "ii", pending_before, verified_before);
	while (rc == STORE_OK) {
		read_due(st, &row);
		if (n == cap)
			rows = xrealloc(rows, (cap = cap ? cap * 2 : 16) * sizeof(*rows));
		rows[n++] = row;
		rc = sqlite3_step(st) == SQLITE_ROW ? STORE_OK : STORE_NOT_FOUND;
	}
	if (st)
		sqlite3_finalize(st);
	pthread_mutex_unlock(&q->lock);
	/* The checks run without the lock: they wait on DNS. */
	for (size_t i = 0; i < n; i++)
		fn(arg, rows[i].account_id, rows[i].id);
	free(rows);
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

int sq_dkim_rotate(struct store *s, int64_t account_id, int64_t id, const char *selector,
		   const char *private_sealed, const char *public_key, int64_t now)
{
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->lock);
	int rc = sq_begin(q);
	if (rc == STORE_OK)
		rc = sq_step(
			q, &st,
			"SELECT (SELECT COUNT(*) FROM dkim_keys k WHERE k.domain_id = d.id AND "
			"k.state = 'next') FROM sending_domains d WHERE d.account_id = ? AND "
			"d.id = ?",
			"ii", account_id, id);
	if (rc == STORE_OK) {
		if (sqlite3_column_int(st, 0) > 0)
			rc = STORE_CONFLICT;
		sqlite3_finalize(st);
	}
	if (rc == STORE_OK)
		rc = sq_exec(
			q, NULL,
			"INSERT INTO dkim_keys (domain_id, selector, private_sealed, public_key, "
			"state, created_at) VALUES (?, ?, ?, ?, 'next', ?)",
			"isssi", id, selector, private_sealed, public_key, now);
	rc = sq_end(q, rc);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int sq_dkim_signing_key(struct store *s, int64_t account_id, const char *domain,
			char selector[STORE_SELECTOR_MAX], char **private_sealed)
{
	struct sq *q = sq_of(s);
	sqlite3_stmt *st;
	pthread_mutex_lock(&q->lock);
	int rc = sq_step(q, &st,
			 "SELECT k.selector, k.private_sealed FROM sending_domains d "
			 "JOIN dkim_keys k ON k.domain_id = d.id AND k.state = 'active' "
			 "WHERE d.account_id = ? AND d.name = ? AND d.status = 'verified' "
			 "AND d.active = 1",
			 "is", account_id, domain);
	if (rc == STORE_OK) {
		sq_col_text(st, 0, selector, STORE_SELECTOR_MAX);
		*private_sealed = xstrdup((const char *)sqlite3_column_text(st, 1));
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&q->lock);
	return rc;
}
