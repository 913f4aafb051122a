/* The suppression list in the store: the addresses an account no longer sends to. Entries
 * are added by people (manual), and with the outcome that causes them: a relay's hard
 * refusal (store_messages_finish) or a parsed report (store_report_done), through
 * sq_suppress_add in the caller's transaction. */
#include <stdint.h>
#include <string.h>

#include "store_int.h"
#include "util.h"

#define SUPPRESSION_COLUMNS "id, email, reason, created_at, COALESCE(message_uid, ''), detail"

/* The reasons as literals, so a read entry's reason outlives the row. */
static const char *const reasons[] = {"hard_bounce", "complaint", "manual"};

static void read_suppression(const struct sq_res *r, void *row)
{
	struct store_suppression *e = row;
	e->id = sq_int(r, 0);
	sq_col_text(r, 1, e->email, sizeof(e->email));
	const char *reason = sq_text(r, 2);
	e->reason = "manual";
	for (size_t i = 0; reason && i < ARRAY_LEN(reasons); i++)
		if (strcmp(reason, reasons[i]) == 0)
			e->reason = reasons[i];
	e->created_at = sq_int(r, 3);
	sq_col_text(r, 4, e->message_uid, sizeof(e->message_uid));
	sq_col_text(r, 5, e->detail, sizeof(e->detail));
}

int store_suppressions_list(struct store *s, int64_t account_id, const char *email,
			    const char *reason, int64_t before_id, int limit,
			    store_suppression_fn fn, void *arg)
{
	struct store_suppression row;
	int64_t before = before_id > 0 ? before_id : INT64_MAX;
	if (email)
		return sq_list(s, read_suppression, &row, (sq_row_fn)fn, arg,
			       "SELECT " SUPPRESSION_COLUMNS " FROM suppressions "
			       "WHERE account_id = ? AND email = ? AND (? IS NULL OR reason = ?) "
			       "AND id < ? ORDER BY id DESC LIMIT ?",
			       "isssid", account_id, email, reason, reason, before, limit);
	return sq_list(s, read_suppression, &row, (sq_row_fn)fn, arg,
		       "SELECT " SUPPRESSION_COLUMNS " FROM suppressions "
		       "WHERE account_id = ? AND (? IS NULL OR reason = ?) AND id < ? "
		       "ORDER BY id DESC LIMIT ?",
		       "issid", account_id, reason, reason, before, limit);
}

int sq_suppress_add(struct sq_conn *c, int64_t account_id, const struct store_suppression *e,
		    size_t n, int64_t now, int *added)
{
	int count = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t id;
		int rc = sq_exec(c, &id,
				 "INSERT INTO suppressions (account_id, email, reason, created_at, "
				 "message_uid, detail) VALUES (?, ?, ?, ?, ?, ?) "
				 "ON CONFLICT (account_id, email) DO NOTHING RETURNING id",
				 "ississ", account_id, e[i].email, e[i].reason, now,
				 e[i].message_uid[0] ? e[i].message_uid : NULL, e[i].detail);
		if (rc == STORE_OK)
			count++;
		else if (rc != STORE_NOT_FOUND) /* NOT_FOUND: listed already */
			return rc;
	}
	if (added)
		*added = count;
	return STORE_OK;
}

int store_suppressions_add(struct store *s, int64_t account_id, const struct store_suppression *e,
			   size_t n, int64_t now, int *added)
{
	struct sq_conn c = sq_acquire(s);
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = sq_suppress_add(&c, account_id, e, n, now, added);
	rc = sq_end(&c, rc);
	sq_release(&c);
	return rc;
}

int store_suppression_delete(struct store *s, int64_t account_id, const char *email)
{
	return sq_update(s, false, "DELETE FROM suppressions WHERE account_id = ? AND email = ?",
			 "is", account_id, email);
}

int store_suppressed(struct store *s, int64_t account_id, const char *const *emails, size_t n,
		     bool *out)
{
	struct sq_conn c = sq_acquire_read(s);
	struct sq_res r;
	for (size_t i = 0; i < n; i++)
		out[i] = false;
	/* Most accounts list nobody: one probe answers for every recipient. */
	int rc = sq_step(&c, &r, "SELECT 1 FROM suppressions WHERE account_id = ? LIMIT 1", "i",
			 account_id);
	if (rc == STORE_OK)
		sq_done(&r);
	for (size_t i = 0; rc == STORE_OK && i < n; i++) {
		rc = sq_step(&c, &r,
			     "SELECT 1 FROM suppressions WHERE account_id = ? AND email = ?", "is",
			     account_id, emails[i]);
		out[i] = rc == STORE_OK;
		if (rc == STORE_OK)
			sq_done(&r);
		else if (rc == STORE_NOT_FOUND)
			rc = STORE_OK;
	}
	sq_release(&c);
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}
