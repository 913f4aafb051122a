/* Retention in the store: the purges that keep the database from growing forever. Each call
 * removes at most `max` rows in one short transaction of its own, so a purge of millions of
 * rows is many small commits between which the queue's group commit gets the writer; each
 * query walks an index of the rows that can go (migration "retention"), never the table. On
 * a shared database the rows another node is purging are skipped, not waited for. */
#include <stdio.h>
#include <string.h>

#include "store_int.h"
#include "util.h"

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
	/* Events of a message go with it (purge_messages); these are the account's own (a
	 * sender added, refusals counted) and any whose message went before them. */
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

/* A message's events go first, then the message, each picked by the same query, in one
 * transaction: on SQLite both pick the same rows (no other writer runs between them); on a
 * shared database the first locks the messages it read, and should the second pick others
 * all the same, the events left without their message are the next EVENTS purge's strays. */
#define BATCH_SQL     "(SELECT %s FROM messages WHERE " FINISHED " AND created_at < ? LIMIT ?%s)"
#define EVENTS_OF_SQL "DELETE FROM events WHERE message_uid IN " BATCH_SQL
#define MESSAGES_SQL  "DELETE FROM messages WHERE id IN " BATCH_SQL

static int purge_messages(struct sq_conn *c, int64_t before, int max, struct store_purged *out)
{
	const char *skip = c->s->db->drv->skip_locked;
	char events[sizeof(EVENTS_OF_SQL) + 64], messages[sizeof(MESSAGES_SQL) + 64];
	snprintf(events, sizeof(events), EVENTS_OF_SQL, "uid", skip);
	snprintf(messages, sizeof(messages), MESSAGES_SQL, "id", skip);
	int rc = sq_exec(c, NULL, events, "id", before, max);
	if (rc == STORE_OK) {
		out->events = sq_changes(c);
		rc = sq_exec(c, NULL, messages, "id", before, max);
	}
	if (rc == STORE_OK)
		out->rows = sq_changes(c);
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
