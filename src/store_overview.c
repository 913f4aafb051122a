/* The store's side of the panel's overview: an account's message events and policy refusals
 * counted per UTC hour, grouped in the database so that only the counts travel. */
#include "store_int.h"

/* events_overview (account_id, type, created_at) holds all this reads: one index range per
 * type, never the table nor other accounts' events. */
#define EVENTS_SQL                                                                                 \
	"SELECT created_at / 3600 * 3600, type, COUNT(*) FROM events "                             \
	"WHERE account_id = ? AND type IN ('message.processed', 'message.delivered', "             \
	"  'message.bounced', 'message.dropped') AND created_at >= ? GROUP BY 1, 2"
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

int store_overview_hours(struct store *s, int64_t account_id, int64_t since, store_hourly_fn fn,
			 void *arg)
{
	struct sq_conn c = sq_acquire_read(s);
	struct hourly_row row;
	struct hourly_call call = {fn, arg, false};
	/* One snapshot: a message's delivery is never counted without its acceptance. */
	int rc = sq_begin_read(&c);
	if (rc == STORE_OK)
		rc = sq_each(&c, read_hourly, &row, call_hourly, &call, EVENTS_SQL, "ii",
			     account_id, since);
	if (rc == STORE_OK) {
		call.refusal = true;
		rc = sq_each(&c, read_hourly, &row, call_hourly, &call, REFUSALS_SQL, "ii",
			     account_id, since);
	}
	sq_exec(&c, NULL, rc == STORE_OK ? "COMMIT" : "ROLLBACK", "");
	sq_release(&c);
	return rc;
}
