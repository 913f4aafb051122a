/* The store's side of the panel's overview: an account's message events and policy refusals
 * counted per UTC hour, grouped in the database so that only the counts travel. */
#include "store_int.h"

/* From the first id of the window on, the account's events are read through events_account
 * (account_id, id): the window's rows only, and no index of its own that every event written
 * would have to pay for. */
#define EVENTS_SQL                                                                                 \
	"SELECT created_at / 3600 * 3600, type, COUNT(*) FROM events "                             \
	"WHERE account_id = ? AND id >= ? AND created_at >= ? AND type IN ('message.processed', "  \
	"  'message.delivered', 'message.bounced', 'message.dropped') GROUP BY 1, 2"
/* Ids are given in the order events are written, their times by the writer's clock: times
 * rise with ids but for a little jitter (a batch stamped before it commits, another node's
 * clock), which this margin more than covers. The exact bound is the query's. */
#define JITTER 3600
/* The drops counter keeps a row per minute; sandbox requests share it but were not refused. */
#define REFUSALS_SQL                                                                               \
	"SELECT minute / 3600 * 3600, reason, SUM(count) FROM drops "                              \
	"WHERE account_id = ? AND minute >= ? AND reason <> 'sandbox' GROUP BY 1, 2"

struct hourly_row {
	struct store_hourly h;
	char kind[40];
};

static void read_hourly(const struct sq_res *r, void *row)
{
	struct hourly_row *x = row;
	x->h.hour = sq_int(r, 0);
	sq_col_text(r, 1, x->kind, sizeof(x->kind));
	x->h.kind = x->kind;
	x->h.count = sq_int(r, 2);
}

struct hourly_call {
	store_hourly_fn fn;
	void *arg;
	bool refusal;
};

static int call_hourly(void *arg, const void *row)
{
	const struct hourly_call *call = arg;
	struct store_hourly h = ((const struct hourly_row *)row)->h;
	h.refusal = call->refusal;
	return call->fn(call->arg, &h);
}

/* The creation time of the first event at or after id; STORE_NOT_FOUND when none is. */
static int time_from(struct sq_conn *c, int64_t id, int64_t *at)
{
	struct sq_res r;
	int rc = sq_step(c, &r, "SELECT created_at FROM events WHERE id >= ? ORDER BY id LIMIT 1",
			 "i", id);
	if (rc == STORE_OK) {
		*at = sq_int(&r, 0);
		sq_done(&r);
	}
	return rc;
}

/* The first event id of the window that starts at since: a binary search over ids, each
 * step one seek of the primary key, so the window is found without reading what precedes
 * it. */
static int first_id(struct sq_conn *c, int64_t since, int64_t *out)
{
	struct sq_res r;
	int rc = sq_step(c, &r, "SELECT COALESCE(MAX(id), 0) + 1 FROM events", "");
	if (rc != STORE_OK)
		return rc;
	int64_t lo = 0, hi = sq_int(&r, 0);
	sq_done(&r);
	while (lo < hi) {
		int64_t mid = lo + (hi - lo) / 2, at = 0;
		rc = time_from(c, mid, &at);
		/* Any answer but a row or none is a failure, never a step of the search. */
		if (rc != STORE_OK && rc != STORE_NOT_FOUND)
			return rc;
		if (rc == STORE_NOT_FOUND || at >= since - JITTER)
			hi = mid;
		else
			lo = mid + 1;
	}
	*out = lo;
	return STORE_OK;
}

int store_overview_hours(struct store *s, int64_t account_id, int64_t since, store_hourly_fn fn,
			 void *arg)
{
	struct sq_conn c = sq_acquire_read(s);
	struct hourly_row row;
	struct hourly_call call = {fn, arg, false};
	/* One snapshot: a message's delivery is never counted without its acceptance. */
	int64_t from = 0;
	int rc = sq_begin_read(&c);
	if (rc == STORE_OK)
		rc = first_id(&c, since, &from);
	if (rc == STORE_OK)
		rc = sq_each(&c, read_hourly, &row, call_hourly, &call, EVENTS_SQL, "iii",
			     account_id, from, since);
	if (rc == STORE_OK) {
		call.refusal = true;
		rc = sq_each(&c, read_hourly, &row, call_hourly, &call, REFUSALS_SQL, "ii",
			     account_id, since);
	}
	sq_exec(&c, NULL, rc == STORE_OK ? "COMMIT" : "ROLLBACK", "");
	sq_release(&c);
	return rc;
}
