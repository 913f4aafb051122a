/* The store's side of the panel's overview: an account's message events and policy refusals
 * counted per UTC hour, grouped in the database so that only the counts travel. */
#include "store_int.h"

/* From the first id of the window on, the account's events are read through events_account
 * (account_id, id): the window's rows only, not every account's. */
#define EVENTS_SQL                                                                                 \
	"SELECT created_at / 3600 * 3600, type, COUNT(*) FROM events "                             \
	"WHERE account_id = ? AND id >= ? AND created_at >= ? AND type IN ('message.processed', "  \
	"  'message.delivered', 'message.bounced', 'message.dropped') GROUP BY 1, 2"
/* That first id: the id of the oldest event since the window's start less JITTER, one seek
 * of events_created (retention's index); past every id when there is none. Ids are given in
 * the order events are written, their times by the writer's clock: times rise with ids but
 * for a little jitter (a batch stamped before it commits, another node's clock), which the
 * margin more than covers. The exact bound is EVENTS_SQL's. */
#define FIRST_ID_SQL                                                                               \
	"SELECT COALESCE((SELECT id FROM events WHERE created_at >= ? ORDER BY created_at, id "    \
	"LIMIT 1), (SELECT COALESCE(MAX(id), 0) + 1 FROM events))"
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

static int first_id(struct sq_conn *c, int64_t since, int64_t *out)
{
	struct sq_res r;
	int rc = sq_step(c, &r, FIRST_ID_SQL, "i", since - JITTER);
	if (rc == STORE_OK) {
		*out = sq_int(&r, 0);
		sq_done(&r);
	}
	return rc == STORE_NOT_FOUND ? STORE_FAIL : rc;
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
