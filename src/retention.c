/* The retention worker. Every ROUND_MS it runs each purge of the store (store_retention.c) in
 * batches of BATCH_ROWS until one comes back short, pausing between two batches for
 * PAUSE_FACTOR times as long as the batch took: a backlog (a first start over years of mail)
 * takes at most a twentieth of the writer's time and of a core, and a new message never waits
 * behind more than one batch. A small share, since a delete costs more than the lock it
 * holds (CPU, and WAL pages the next durable commit must sync); it still purges about 2,000
 * messages a second on a busy 2-core host (bench figure 11), far above a day's volume. */
#include "retention.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "util.h"
#include "worker.h"

#define ROUND_MS     5000 /* well within the minute promised, and a test's patience */
#define BATCH_ROWS   200
#define PAUSE_FACTOR 19
#define PAUSE_MIN_MS 5
#define PAUSE_MAX_MS 1000

struct retention {
	struct store *store;
	const struct config *cfg;
	struct worker *worker;
};

/* Each purge with the duration that makes a row old enough, and its name in the log. */
static const struct {
	enum store_purge what;
	size_t duration; /* offset of the int in struct config */
	const char *name;
} purges[] = {
	/* Messages first: a message that goes needs its body cleared no more. */
	{STORE_PURGE_MESSAGES, offsetof(struct config, retention_messages), "messages"},
	{STORE_PURGE_BODIES, offsetof(struct config, retention_bodies), "bodies"},
	{STORE_PURGE_EVENTS, offsetof(struct config, retention_messages), "account events"},
	{STORE_PURGE_REPORTS, offsetof(struct config, retention_messages), "bounce reports"},
	{STORE_PURGE_DROPS, offsetof(struct config, retention_drops), "drop counters"},
	{STORE_PURGE_MONITORED, offsetof(struct config, retention_drops), "monitored counters"},
	{STORE_PURGE_FROM_COUNTS, offsetof(struct config, retention_drops), "send counters"},
};

/* One purge until nothing is left of it; false when the worker is stopping. */
static bool purge_all(struct retention *r, struct worker *w, size_t i, struct store_purged *sum)
{
	int seconds = *(const int *)((const char *)r->cfg + purges[i].duration);
	for (;;) {
		/* The clock is read for each batch: a long purge keeps up with the time. */
		int64_t before = util_now() - seconds;
		double started = util_monotonic();
		struct store_purged got;
		if (store_purge(r->store, purges[i].what, before, BATCH_ROWS, &got) != STORE_OK)
			return true; /* logged by the store; the next round tries again */
		sum->rows += got.rows;
		sum->events += got.events;
		if (got.rows < BATCH_ROWS)
			return true;
		/* Bounded: one batch slowed by the disk does not hold the purge for minutes. */
		int64_t pause = (int64_t)((util_monotonic() - started) * 1000 * PAUSE_FACTOR);
		pause = pause < PAUSE_MIN_MS   ? PAUSE_MIN_MS
			: pause > PAUSE_MAX_MS ? PAUSE_MAX_MS
					       : pause;
		if (!worker_wait(w, pause))
			return false;
	}
}

/* One info line for a round that removed something: "messages 1000 (events 2000), ...". */
static void log_round(const struct store_purged *sum)
{
	char line[512] = "";
	size_t at = 0;
	for (size_t i = 0; i < ARRAY_LEN(purges) && at < sizeof(line); i++) {
		if (!sum[i].rows)
			continue;
		at += (size_t)snprintf(line + at, sizeof(line) - at, "%s%s %" PRId64,
				       at ? ", " : "", purges[i].name, sum[i].rows);
		if (sum[i].events && at < sizeof(line))
			at += (size_t)snprintf(line + at, sizeof(line) - at,
					       " (events %" PRId64 ")", sum[i].events);
	}
	if (at)
		log_info("retention: purged %s", line);
}

static void round_once(struct retention *r, struct worker *w)
{
	struct store_purged sum[ARRAY_LEN(purges)] = {0};
	for (size_t i = 0; i < ARRAY_LEN(purges); i++)
		if (!purge_all(r, w, i, &sum[i]))
			break;
	log_round(sum);
}

static void retention_loop(void *arg, struct worker *self)
{
	struct retention *r = arg;
	do
		round_once(r, self);
	while (worker_wait(self, ROUND_MS));
}

struct retention *retention_start(struct store *s, const struct config *cfg, char *err,
				  size_t errlen)
{
	struct retention *r = xcalloc(1, sizeof(*r));
	r->store = s;
	r->cfg = cfg;
	r->worker = worker_start("retention", retention_loop, r, err, errlen);
	if (r->worker)
		return r;
	free(r);
	return NULL;
}

void retention_stop(struct retention *r)
{
	if (!r)
		return;
	worker_stop(r->worker);
	free(r);
}
