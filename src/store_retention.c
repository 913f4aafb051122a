/* Retention in the store: the purges that keep the database from growing forever. Each call
 * removes at most `max` rows in one short transaction of its own, so a purge of millions of
 * rows is many small commits between which the queue's group commit gets the writer; each
 * query walks an index of the rows that can go (migration "retention"), never the table. On
 * a shared database the rows another node is purging are skipped, not waited for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"
#include "util.h"

#define UID_LEN sizeof(((struct store_message_info *)0)->uid)

/* The statuses a message ends in; the partial indexes of the retention migration say the
 * same words, which is how both databases know they may use them. */
#define FINISHED "status IN ('sent','failed','dropped','cancelled')"

/* One purge: an UPDATE or DELETE of the rows a subquery picks (`LIMIT ?`, then
 * the driver's skip_locked), whose time column is before `?`. span is how many seconds one
 * row covers (a minute's counter, a day's): a row goes once all of its span is old. */
struct purge {
	const char *sql;
	int64_t span;
};

static const struct purge purges[STORE_PURGE_N] = {
	[STORE_PURGE_BODIES] = {"UPDATE messages SET payload = '' WHERE id IN (SELECT id FROM "
				"messages WHERE " FINISHED " AND payload <> '' AND created_at < ? "
				"LIMIT ?%s)",
				0},
	/* Events of a message go with it (store_purge_messages); these are the account's own
	 * (a sender added, refusals counted) and any whose message went before them. */
	[STORE_PURGE_EVENTS] = {"DELETE FROM events WHERE id IN (SELECT id FROM events e "
				"WHERE created_at < ? AND (message_uid IS NULL OR NOT EXISTS "
				"(SELECT 1 FROM messages m WHERE m.uid = e.message_uid)) "
				"ORDER BY created_at LIMIT ?%s)",
				0},
	[STORE_PURGE_REPORTS] = {"DELETE FROM bounce_reports WHERE id IN (SELECT id FROM "
				 "bounce_reports WHERE status IN ('done','unparsed','orphan') AND "
				 "received_at < ? LIMIT ?%s)",
				 0},
	[STORE_PURGE_DROPS] = {"DELETE FROM drops WHERE id IN (SELECT id FROM drops WHERE "
			       "minute < ? ORDER BY minute LIMIT ?%s)",
			       60},
	[STORE_PURGE_MONITORED] = {"DELETE FROM monitored WHERE id IN (SELECT id FROM monitored "
				   "WHERE minute < ? ORDER BY minute LIMIT ?%s)",
				   60},
	[STORE_PURGE_FROM_COUNTS] =
		{"DELETE FROM from_counts WHERE (account_id, from_addr, day) IN "
		 "(SELECT account_id, from_addr, day FROM from_counts WHERE "
		 "day < ? ORDER BY day LIMIT ?%s)",
		 86400},
};

/* A message's rows go with their uids, read back in the same statement, so the events
 * deleted are those of the messages this node deleted, whatever another node purges. */
#define MESSAGES_SQL                                                                               \
	"DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE " FINISHED                \
	" AND created_at < ? LIMIT ?%s) RETURNING uid"

static int purge_one(struct sq_conn *c, enum store_purge what, int64_t before, int max, int64_t *n)
{
	char sql[512];
	snprintf(sql, sizeof(sql), purges[what].sql, c->s->db->drv->skip_locked);
	/* A row covers [t, t + span): it is all older than before when t <= before - span. */
	int rc = sq_exec(c, NULL, sql, "id", before - purges[what].span + (purges[what].span > 0),
			 max);
	if (rc == STORE_OK)
		*n = sq_changes(c);
	return rc;
}

static int events_of(struct sq_conn *c, char (*uids)[UID_LEN], size_t n, int64_t *events)
{
	int rc = STORE_OK;
	for (size_t i = 0; i < n && rc == STORE_OK; i++) {
		rc = sq_exec(c, NULL, "DELETE FROM events WHERE message_uid = ?", "s", uids[i]);
		if (rc == STORE_OK)
			*events += sq_changes(c);
	}
	return rc;
}

static int purge_messages(struct sq_conn *c, int64_t before, int max, struct store_purged *out)
{
	char sql[sizeof(MESSAGES_SQL) + 64];
	snprintf(sql, sizeof(sql), MESSAGES_SQL, c->s->db->drv->skip_locked);
	char(*uids)[UID_LEN] = xcalloc((size_t)max + 1, UID_LEN);
	size_t n = 0;
	struct sq_res r;
	int rc = sq_step(c, &r, sql, "id", before, max);
	if (rc == STORE_OK) {
		do
			sq_col_text(&r, 0, uids[n++], UID_LEN);
		while (n < (size_t)max && (rc = sq_next(&r)) == STORE_OK);
		/* Past its last row a statement must not be stepped again: SQLite would run the
		 * DELETE once more. */
		if (rc == STORE_OK)
			rc = sq_finish(&r);
		else
			sq_done(&r);
	}
	if (rc == STORE_NOT_FOUND)
		rc = STORE_OK;
	if (rc == STORE_OK) {
		out->rows = (int64_t)n;
		rc = events_of(c, uids, n, &out->events);
	}
	free(uids);
	return rc;
}

/* Lost in a crash, a purge is simply done again: its commit need not wait for the disk. */
int store_purge(struct store *s, enum store_purge what, int64_t before, int max,
		struct store_purged *out)
{
	*out = (struct store_purged){0};
	if (what < 0 || what >= STORE_PURGE_N || max <= 0)
		return STORE_REFUSED;
	struct sq_conn c = sq_acquire(s);
	int rc = sq_begin_relaxed(&c, false);
	if (rc == STORE_OK)
		rc = what == STORE_PURGE_MESSAGES ? purge_messages(&c, before, max, out)
						  : purge_one(&c, what, before, max, &out->rows);
	rc = sq_end_relaxed(&c, rc, false);
	sq_release(&c);
	if (rc != STORE_OK)
		*out = (struct store_purged){0};
	return rc;
}
