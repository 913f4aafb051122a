/* Reports received at the return path, in the store: kept as they arrived (base64, since a
 * report may hold any byte) from before the listener's 250, claimed by the report worker
 * like messages, then marked with what parsing made of them, in one transaction with the
 * events and suppressions they cause. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "store_int.h"
#include "util.h"

/* A report's columns, its bytes (raw) between the others. */
#define REPORT_HEAD                                                                                \
	"id, received_at, client_ip, mail_from, rcpt, message_uid, COALESCE(account_id, 0), "      \
	"status, COALESCE(kind, ''), size, "
#define REPORT_TAIL    ", detail, COALESCE(parsed_at, 0)"
#define REPORT_COLUMNS REPORT_HEAD "raw" REPORT_TAIL

/* Base64 characters that hold whole bytes and at most STORE_REPORT_KEEP of them. */
#define REPORT_KEEP_B64 (STORE_REPORT_KEEP / 3 * 4)

int store_report_add(struct store *s, const struct store_report_in *r, int64_t *ids)
{
	size_t n = sodium_base64_ENCODED_LEN(r->len, sodium_base64_VARIANT_ORIGINAL);
	char *raw = xmalloc(n);
	sodium_bin2base64(raw, n, (const unsigned char *)r->data, r->len,
			  sodium_base64_VARIANT_ORIGINAL);
	/* Outside any relaxed transaction: the commit waits for the disk, so the 250 that
	 * follows it never promises a report a crash can lose. */
	struct sq_conn c = sq_acquire(s);
	int rc = sq_begin(&c);
	for (size_t i = 0; i < r->npaths && rc == STORE_OK; i++)
		rc = sq_exec(&c, &ids[i],
			     "INSERT INTO bounce_reports (received_at, client_ip, mail_from, rcpt, "
			     "message_uid, size, raw) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
			     "issssis", r->now, r->client_ip, r->mail_from, r->paths[i].rcpt,
			     r->paths[i].message_uid, (int64_t)r->len, raw);
	rc = sq_end(&c, rc);
	sq_release(&c);
	free(raw);
	return rc;
}

/* The stored base64 back to the bytes received (empty when it cannot be read). */
static void report_data(const char *raw, struct store_report *out)
{
	size_t n = raw ? strlen(raw) : 0, len = 0;
	out->data = xmalloc(n / 4 * 3 + 1);
	if (n && sodium_base642bin((unsigned char *)out->data, n / 4 * 3 + 1, raw, n, NULL, &len,
				   NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
		len = 0;
	out->data[len] = '\0';
	out->len = len;
}

static void read_report(const struct sq_res *r, void *row)
{
	struct store_report *out = row;
	out->id = sq_int(r, 0);
	out->received_at = sq_int(r, 1);
	sq_col_text(r, 2, out->client_ip, sizeof(out->client_ip));
	sq_col_text(r, 3, out->mail_from, sizeof(out->mail_from));
	sq_col_text(r, 4, out->rcpt, sizeof(out->rcpt));
	sq_col_text(r, 5, out->message_uid, sizeof(out->message_uid));
	out->account_id = sq_int(r, 6);
	sq_col_text(r, 7, out->status, sizeof(out->status));
	sq_col_text(r, 8, out->kind, sizeof(out->kind));
	out->size = sq_int(r, 9);
	report_data(sq_text(r, 10), out);
	const char *detail = sq_text(r, 11);
	out->detail = xstrdup(detail ? detail : "{}");
	out->parsed_at = sq_int(r, 12);
}

void store_reports_free(struct store_report *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(r[i].data);
		free(r[i].detail);
		r[i].data = r[i].detail = NULL;
	}
}

/* New reports, and those whose parser's lease ran out (a crash on a shared database),
 * oldest first; on a shared database rows another node is claiming are skipped. */
#define REPORTS_CLAIM_SQL                                                                          \
	"UPDATE bounce_reports SET status = 'parsing', lease_until = ?, claim = ? "                \
	"WHERE id IN (SELECT id FROM bounce_reports WHERE status = 'new' "                         \
	"  OR (status = 'parsing' AND lease_until < ?) ORDER BY id LIMIT ?%s) "                    \
	"RETURNING " REPORT_COLUMNS

int store_reports_claim(struct store *s, int64_t now, int64_t lease_until,
			char claim[STORE_CLAIM_LEN], struct store_report *out, size_t max,
			size_t *n)
{
	char sql[sizeof(REPORTS_CLAIM_SQL) + 64];
	snprintf(sql, sizeof(sql), REPORTS_CLAIM_SQL, s->db->drv->skip_locked);
	auth_random_hex(claim, (STORE_CLAIM_LEN - 1) / 2);
	struct sq_conn c = sq_acquire(s);
	struct sq_res r;
	*n = 0;
	int rc = sq_step(&c, &r, sql, "isid", lease_until, claim, now, (int)max);
	if (rc == STORE_OK) {
		do
			read_report(&r, &out[(*n)++]);
		while (*n < max && (rc = sq_next(&r)) == STORE_OK);
		rc = rc == STORE_FAIL ? (sq_done(&r), STORE_FAIL) : sq_finish(&r);
	}
	if (rc != STORE_OK && rc != STORE_NOT_FOUND) {
		store_reports_free(out, *n);
		*n = 0;
	}
	sq_release(&c);
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

/* The report's new status, while it is still under this claim; its raw bytes cut to what
 * is kept for the operator. */
static int report_mark(struct sq_conn *c, const struct store_report_result *r)
{
	int rc = sq_exec(c, NULL,
			 "UPDATE bounce_reports SET status = ?, kind = ?, "
			 "  account_id = NULLIF(?, 0), detail = ?, parsed_at = ?, "
			 "  raw = CASE WHEN length(raw) > ? THEN substr(raw, 1, ?) ELSE raw END, "
			 "  lease_until = NULL, claim = NULL "
			 "WHERE id = ? AND claim = ? AND status = 'parsing'",
			 "ssisiddis", r->status, r->kind, r->account_id,
			 r->detail ? r->detail : "{}", r->now, REPORT_KEEP_B64, REPORT_KEEP_B64,
			 r->id, r->claim);
	if (rc == STORE_OK && sq_changes(c) != 1)
		rc = STORE_CONFLICT; /* the lease ran out and another parser has it */
	return rc;
}

int store_report_done(struct store *s, const struct store_report_result *r)
{
	struct sq_conn c = sq_acquire(s);
	int rc = sq_begin(&c);
	if (rc == STORE_OK)
		rc = report_mark(&c, r);
	for (size_t i = 0; i < r->nevents && rc == STORE_OK && r->account_id; i++)
		rc = sq_event(&c, r->account_id, r->events[i].type, r->message_uid,
			      r->events[i].recipient, r->events[i].data, r->now);
	if (rc == STORE_OK && r->account_id && r->nsuppress)
		rc = sq_suppress_add(&c, r->account_id, r->suppress, r->nsuppress, r->now, NULL);
	rc = sq_end(&c, rc);
	sq_release(&c);
	return rc;
}

int store_reports_recover(struct store *s)
{
	/* One daemon owns a database of its own; on a shared one the lease says. */
	if (s->db->drv->shared)
		return STORE_OK;
	int rc = sq_write(s, NULL,
			  "UPDATE bounce_reports SET status = 'new', lease_until = NULL, "
			  "claim = NULL WHERE status = 'parsing'",
			  "");
	return rc == STORE_NOT_FOUND ? STORE_OK : rc;
}

struct report_call {
	store_report_fn fn;
	void *arg;
};

/* Hands a listed report to the caller, then frees what reading it allocated. */
static int report_row(void *arg, const void *row)
{
	const struct report_call *rc = arg;
	struct store_report *r = (struct store_report *)row;
	int stop = rc->fn(rc->arg, r);
	store_reports_free(r, 1);
	return stop;
}

/* An account's reports; only an unparsed one's text is shown, so the others' stay unread. */
#define REPORTS_LIST_SQL                                                                           \
	"SELECT " REPORT_HEAD "CASE WHEN status = 'unparsed' THEN raw ELSE '' END" REPORT_TAIL     \
	" FROM bounce_reports WHERE account_id = ? AND (? IS NULL OR status = ?) AND id < ? "      \
	"ORDER BY id DESC LIMIT ?"

int store_reports_list(struct store *s, int64_t account_id, const char *status, int64_t before_id,
		       int limit, store_report_fn fn, void *arg)
{
	struct store_report row = {0};
	struct report_call call = {fn, arg};
	int64_t before = before_id > 0 ? before_id : INT64_MAX;
	int rc = sq_list(s, read_report, &row, report_row, &call, REPORTS_LIST_SQL, "issid",
			 account_id, status, status, before, limit);
	store_reports_free(&row, 1);
	return rc;
}

struct report_message {
	int64_t account_id;
	char *payload;
	bool system;
};

static void read_report_message(const struct sq_res *r, void *row)
{
	struct report_message *m = row;
	m->account_id = sq_int(r, 0);
	const char *payload = sq_text(r, 1);
	m->payload = xstrdup(payload ? payload : "");
	m->system = sq_int(r, 2) != 0;
}

int store_message_for_report(struct store *s, const char *uid, int64_t *account_id, char **payload,
			     bool *system)
{
	struct report_message m = {0};
	int rc = sq_get(s, read_report_message, &m,
			"SELECT account_id, payload, system FROM messages WHERE uid = ?", "s", uid);
	*payload = NULL;
	if (rc == STORE_OK) {
		*account_id = m.account_id;
		*payload = m.payload;
		*system = m.system;
	}
	return rc;
}
