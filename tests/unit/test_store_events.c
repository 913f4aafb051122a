/* The store's events and webhook deliveries on a real database: SQLite in a temporary
 * directory, or PostgreSQL when POSTERN_TEST_BACKEND=postgres (a fresh database on the
 * cluster whose conninfo POSTERN_TEST_PG_FILE holds). Events are written with the change they
 * report and rolled back with it; the fan-out follows each endpoint's filter, format and
 * switch; deliveries are claimed, retried, failed and their endpoint disabled; two claimers
 * never get the same delivery. A report sent to several return paths is stored whole or not
 * at all. */
#include "testutil.h"

#include <libpq-fe.h>
#include <pthread.h>

#include "store.h"
#include "suppress.h"

/* A store with accounts acme and other. */
struct world {
	char dir[TU_PATH_MAX], path[TU_PATH_MAX + 16];
	char dbname[64], conninfo[512]; /* PostgreSQL */
	struct store *store;
	int64_t acme, other;
	int64_t user;		     /* acme's Admin */
	char claim[STORE_CLAIM_LEN]; /* the token of the last claim() */
};

static bool on_postgres(void)
{
	const char *b = getenv("POSTERN_TEST_BACKEND");
	return b && strcmp(b, "postgres") == 0;
}

/* The cluster's maintenance conninfo, from the fixture's file. */
static void pg_server(char *out, size_t n)
{
	const char *path = getenv("POSTERN_TEST_PG_FILE");
	if (!path)
		fail_msg("POSTERN_TEST_BACKEND=postgres needs POSTERN_TEST_PG_FILE");
	const char *text = tu_read_file(path);
	snprintf(out, n, "%.*s", (int)strcspn(text, "\n"), text);
}

static void pg_run(const char *server, const char *sql)
{
	PGconn *pg = PQconnectdb(server);
	if (PQstatus(pg) != CONNECTION_OK)
		fail_msg("%s", PQerrorMessage(pg));
	PGresult *r = PQexec(pg, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(pg);
}

static struct store *world_store(struct world *w)
{
	char err[400];
	struct store *s = on_postgres() ? store_pg_open(w->conninfo, err, sizeof(err))
					: store_sqlite_open(w->path, err, sizeof(err));
	if (!s)
		fail_msg("%s", err);
	return s;
}

static void world_open(struct world *w)
{
	static int seq;
	memset(w, 0, sizeof(*w));
	if (on_postgres()) {
		char server[400], sql[128];
		pg_server(server, sizeof(server));
		snprintf(w->dbname, sizeof(w->dbname), "store_events_%d_%d", (int)getpid(), seq++);
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s", w->dbname);
		pg_run(server, sql);
		snprintf(w->conninfo, sizeof(w->conninfo), "%s dbname=%s", server, w->dbname);
	} else {
		tu_temp_dir(w->dir);
		snprintf(w->path, sizeof(w->path), "%s/e.db", w->dir);
	}
	w->store = world_store(w);
	assert_int_equal(store_account_create(w->store, "acme", 1000, &w->acme), STORE_OK);
	assert_int_equal(store_account_create(w->store, "other", 1000, &w->other), STORE_OK);
	assert_int_equal(store_user_create(w->store, w->acme, "admin@example.com", "x", ROLE_ADMIN,
					   1000, &w->user),
			 STORE_OK);
}

static void world_close(struct world *w)
{
	store_close(w->store);
	if (on_postgres()) {
		char server[400], sql[128];
		pg_server(server, sizeof(server));
		snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", w->dbname);
		pg_run(server, sql);
		return;
	}
	tu_remove_sqlite(w->path, w->dir);
}

/* Events as listed: "type recipient|..." newest first, and their ids. */
struct listed {
	char text[4096];
	int64_t ids[64];
	char data[64][256];
	size_t n;
};

static int list_one(void *arg, const struct store_event_info *e)
{
	struct listed *l = arg;
	size_t len = strlen(l->text);
	snprintf(l->text + len, sizeof(l->text) - len, "%s%s%s%s", len ? "|" : "", e->type,
		 *e->recipient ? " " : "", e->recipient);
	if (l->n < 64) {
		snprintf(l->data[l->n], sizeof(l->data[l->n]), "%s", e->data);
		l->ids[l->n++] = e->id;
	}
	return 0;
}

static void list(struct world *w, int64_t account, const char *type, const char *uid,
		 int64_t before, int limit, struct listed *l)
{
	memset(l, 0, sizeof(*l));
	assert_int_equal(
		store_events_list(w->store, account, type, uid, before, limit, list_one, l),
		STORE_OK);
}

static const struct store_event processed[] = {
	{"message.processed", "a@example.net", NULL},
	{"message.processed", "b@example.net", NULL},
};

static int keep_suppression(void *arg, const struct store_suppression *e)
{
	*(struct store_suppression *)arg = *e;
	return 0;
}

/* A message of acme from hello@example.com to two recipients, accepted at now. */
static int add_message(struct world *w, const char *uid, int64_t now)
{
	struct store_message m = {
		.uid = uid,
		.account_id = w->acme,
		.api_key_id = 0,
		.from = "hello@example.com",
		.payload = "{}",
		.recipients = 2,
		.now = now,
		.meta = "{\"tags\":[\"welcome\"]}",
		.events = processed,
		.nevents = 2,
	};
	return store_messages_add(w->store, &m, 1);
}

/* Adds senders to acme at now, with a verification batch whose link's token hash is "h1"
 * (the first time). */
static void add_senders(struct world *w, int64_t now, const char *const *addresses, size_t n,
			int64_t *ids)
{
	struct store_batch_new b = {.token_hash = "h1", .expires_at = 99999, .gap = 0};
	assert_int_equal(store_senders_add(w->store, w->acme, w->user, now, addresses, n, &b, ids),
			 STORE_OK);
}

static int64_t webhook(struct world *w, int64_t account, const char *format, const char *events)
{
	int64_t id = 0;
	assert_int_equal(store_webhook_create(w->store, account, "http://127.0.0.1:9/hook", format,
					      events, "sealed", "", 2000, &id),
			 STORE_OK);
	return id;
}

/* Every delivery due at now, claimed (and left claimed): "hook:type" sorted by claim. */
static size_t claim_all(struct world *w, int64_t now, char *out, size_t n)
{
	struct store_delivery d[16];
	struct store_webhook hook;
	char *secret, token[STORE_CLAIM_LEN];
	size_t got, total = 0;
	out[0] = '\0';
	for (;;) {
		assert_int_equal(store_webhook_claim(w->store, now, now + 60, 16, 16, &hook,
						     &secret, token, d, &got),
				 STORE_OK);
		if (!got)
			return total;
		assert_string_equal(secret, "sealed");
		for (size_t i = 0; i < got; i++) {
			size_t len = strlen(out);
			snprintf(out + len, n - len, "%s%lld:%s", len ? " " : "",
				 (long long)hook.id, d[i].ev.type);
		}
		total += got;
		store_deliveries_free(d, got);
		free(secret);
	}
}

static void test_message_events_come_and_go_with_their_change(void **state)
{
	(void)state;
	struct world w;
	struct listed l;
	world_open(&w);
	assert_int_equal(add_message(&w, "m1", 3000), STORE_OK);
	list(&w, w.acme, NULL, NULL, 0, 50, &l);
	assert_string_equal(l.text, "message.processed b@example.net|"
				    "message.processed a@example.net");

	/* A second message whose uid is taken: the batch fails, and its events with it. */
	assert_int_not_equal(add_message(&w, "m1", 3001), STORE_OK);
	list(&w, w.acme, NULL, NULL, 0, 50, &l);
	assert_int_equal(l.n, 2);
	list(&w, w.other, NULL, NULL, 0, 50, &l);
	assert_int_equal(l.n, 0);

	/* The claim and the finish, with what became of each recipient. */
	struct store_queued q;
	size_t n;
	assert_int_equal(store_messages_claim(w.store, 3010, 3070, &q, 1, &n), STORE_OK);
	assert_int_equal(n, 1);
	free(q.payload);
	free(q.rejected);
	struct store_event outcome[] = {
		{"message.delivered", "a@example.net", "{\"attempt\":1,\"reply\":\"250 ok\"}"},
		{"message.bounced", "b@example.net", "{\"attempt\":1,\"reply\":\"550 5.1.1 no\"}"},
	};
	/* The refused one does not exist: suppressed with the outcome, for the message's
	 * account (one listed already stays as it was). */
	struct store_suppression gone[] = {
		{.email = "b@example.net",
		 .reason = "hard_bounce",
		 .message_uid = "m1",
		 .detail = "5.1.1 550 5.1.1 no"},
		{.email = "b@example.net", .reason = "hard_bounce", .detail = "again"},
	};
	struct store_outcome o = {.status = "sent",
				  .now = 3020,
				  .events = outcome,
				  .nevents = 2,
				  .suppress = gone,
				  .nsuppress = 2};
	struct store_finish f = {q.id, &o, w.acme};
	assert_int_equal(store_messages_finish(w.store, &f, 1), STORE_OK);
	const char *asked[] = {"a@example.net", "b@example.net"};
	bool listed[2];
	assert_int_equal(store_suppressed(w.store, w.acme, asked, 2, listed), STORE_OK);
	assert_false(listed[0]);
	assert_true(listed[1]);
	assert_int_equal(store_suppressed(w.store, w.other, asked, 2, listed), STORE_OK);
	assert_false(listed[1]);
	struct store_suppression got = {0};
	assert_int_equal(store_suppressions_list(w.store, w.acme, "b@example.net", NULL, 0, 5,
						 keep_suppression, &got),
			 STORE_OK);
	assert_string_equal(got.reason, "hard_bounce");
	assert_string_equal(got.message_uid, "m1");
	assert_string_equal(got.detail, "5.1.1 550 5.1.1 no");
	assert_int_equal(got.created_at, 3020);
	list(&w, w.acme, NULL, "m1", 0, 50, &l);
	assert_string_equal(l.text, "message.bounced b@example.net|"
				    "message.delivered a@example.net|"
				    "message.processed b@example.net|"
				    "message.processed a@example.net");
	assert_string_equal(l.data[0], "{\"attempt\":1,\"reply\":\"550 5.1.1 no\"}");
	world_close(&w);
}

static int from_and_meta(void *arg, const struct store_event_info *e)
{
	char *out = arg;
	snprintf(out, 512, "%s %s %s %s", e->message_uid, e->from, e->meta, e->data);
	return 0;
}

static void test_a_listed_event_carries_its_message(void **state)
{
	(void)state;
	struct world w;
	char seen[512] = "";
	world_open(&w);
	assert_int_equal(add_message(&w, "m1", 3000), STORE_OK);
	assert_int_equal(store_events_list(w.store, w.acme, NULL, NULL, 0, 1, from_and_meta, seen),
			 STORE_OK);
	assert_string_equal(seen, "m1 hello@example.com {\"tags\":[\"welcome\"]} {}");
	world_close(&w);
}

static int batch_seen(void *arg, const char *address, enum store_batch_state state)
{
	(void)arg, (void)address, (void)state;
	return 0;
}

/* What store_from_totals gave, in order. */
struct totals {
	struct store_from_total rows[4];
	size_t n;
};

static int add_total(void *arg, const struct store_from_total *row)
{
	struct totals *t = arg;
	if (t->n < sizeof(t->rows) / sizeof(t->rows[0]))
		t->rows[t->n++] = *row;
	return 0;
}

static void test_account_events_are_written_by_the_store(void **state)
{
	(void)state;
	struct world w;
	struct listed l;
	world_open(&w);
	const char *addresses[] = {"a@example.com", "b@example.com"};
	int64_t ids[2];
	add_senders(&w, 3000, addresses, 2, ids);
	/* Adding an address again adds nothing, and tells nothing. */
	int64_t again[1];
	add_senders(&w, 3001, addresses, 1, again);
	assert_int_equal(again[0], 0);
	assert_int_equal(store_sender_verify(w.store, w.acme, ids[0], w.user, 3002), STORE_OK);
	list(&w, w.acme, "sender.added", NULL, 0, 50, &l);
	assert_string_equal(l.text, "sender.added|sender.added");
	assert_string_equal(l.data[1], "{\"email\":\"a@example.com\"}");

	list(&w, w.acme, "sender.verified", NULL, 0, 50, &l);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.data[0], "{\"email\":\"a@example.com\",\"via\":\"panel\"}");
	assert_int_equal(store_sender_verify(w.store, w.acme, ids[0], w.user, 3003), STORE_OK);

	/* The batch's link verifies the one still pending, once. */
	struct store_batch batch;
	for (int i = 0; i < 2; i++)
		assert_int_equal(store_batch_use(w.store, "h1", 3004 + i, &batch, batch_seen, NULL),
				 STORE_OK);
	list(&w, w.acme, "sender.verified", NULL, 0, 50, &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.data[0], "{\"email\":\"b@example.com\",\"via\":\"link\"}");

	/* The switch: set to what it is, nothing; changed, one event. */
	struct store_sender_auth auth;
	assert_int_equal(store_sender_auth_get(w.store, w.acme, &auth), STORE_OK);
	assert_int_equal(store_sender_auth_set(w.store, w.acme,
					       auth.enabled ? POLICY_MODE_ON : POLICY_MODE_OFF,
					       w.user, 3003),
			 STORE_OK);
	assert_int_equal(store_sender_auth_set(w.store, w.acme,
					       auth.enabled ? POLICY_MODE_OFF : POLICY_MODE_ON,
					       w.user, 3004),
			 STORE_OK);
	list(&w, w.acme, "sender_auth.changed", NULL, 0, 50, &l);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.data[0], auth.enabled ? "{\"enabled\":false,\"mode\":\"off\"}"
						    : "{\"enabled\":true,\"mode\":\"on\"}");
	assert_int_equal(store_sender_auth_set(w.store, 999, POLICY_MODE_ON, w.user, 3005),
			 STORE_NOT_FOUND);

	assert_int_equal(store_sender_delete(w.store, w.acme, 999), STORE_NOT_FOUND);
	list(&w, w.acme, "sender.removed", NULL, 0, 50, &l);
	assert_int_equal(l.n, 0);

	/* Refusals: one event per flushed row, none for sandbox requests. */
	struct store_drop d[] = {
		{.account_id = w.acme,
		 .api_key_id = 7,
		 .from = "x@evil.example",
		 .reason = "sender_not_authorized",
		 .minute = 3000 - 3000 % 60,
		 .count = 12},
		{.account_id = w.acme,
		 .api_key_id = 7,
		 .from = "x@example.com",
		 .reason = "sandbox",
		 .minute = 3000 - 3000 % 60,
		 .count = 3},
	};
	assert_int_equal(store_drops_add(w.store, d, 2), STORE_OK);
	list(&w, w.acme, "sender_policy.refused", NULL, 0, 50, &l);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.data[0], "{\"key_id\":7,\"from\":\"x@evil.example\",\"reason\":"
				       "\"sender_not_authorized\",\"count\":12,"
				       "\"minute\":\"1970-01-01T00:50:00Z\"}");

	/* Monitor mode's would-be refusals: the same shape, their own event, and nothing
	 * added to the refusals; sends per From summed over the days asked for. */
	struct store_drop m = {.account_id = w.acme,
			       .api_key_id = 7,
			       .from = "y@example.com",
			       .reason = "sender_pending_verification",
			       .minute = 3000 - 3000 % 60,
			       .count = 4};
	struct store_from_count f[] = {
		{.account_id = w.acme,
		 .from = "y@example.com",
		 .day = 0,
		 .sends = 2,
		 .last_seen = 50},
		{.account_id = w.acme,
		 .from = "y@example.com",
		 .day = 86400,
		 .sends = 3,
		 .last_seen = 86500},
		{.account_id = w.acme,
		 .from = "z@example.com",
		 .day = 86400,
		 .sends = 9,
		 .last_seen = 86400},
	};
	struct store_counts k = {.monitored = &m, .nmonitored = 1, .sends = f, .nsends = 3};
	assert_int_equal(store_counts_add(w.store, &k), STORE_OK);
	assert_int_equal(store_counts_add(w.store, &k), STORE_OK); /* counts add up */
	list(&w, w.acme, "sender_policy.monitored", NULL, 0, 50, &l);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.data[0], "{\"key_id\":7,\"from\":\"y@example.com\",\"reason\":"
				       "\"sender_pending_verification\",\"count\":4,"
				       "\"minute\":\"1970-01-01T00:50:00Z\"}");
	list(&w, w.acme, "sender_policy.refused", NULL, 0, 50, &l);
	assert_int_equal(l.n, 1);
	struct totals t = {0};
	assert_int_equal(store_from_totals(w.store, w.acme, 0, add_total, &t), STORE_OK);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.rows[0].from, "z@example.com"); /* the most used first */
	assert_int_equal(t.rows[0].sends, 18);
	assert_int_equal(t.rows[1].sends, 10);
	assert_int_equal(t.rows[1].last_seen, 86500);
	t.n = 0;
	assert_int_equal(store_from_totals(w.store, w.acme, 86400, add_total, &t), STORE_OK);
	assert_int_equal(t.rows[1].sends, 6); /* day 0 is outside the window */
	t.n = 0;
	assert_int_equal(store_from_totals(w.store, w.acme + 1000, 0, add_total, &t), STORE_OK);
	assert_int_equal(t.n, 0);
	world_close(&w);
}

static void test_a_sender_removed_and_a_domain_verified_are_told(void **state)
{
	(void)state;
	struct world w;
	struct listed l;
	world_open(&w);
	const char *addresses[] = {"a@example.com"};
	int64_t ids[1];
	add_senders(&w, 3000, addresses, 1, ids);
	assert_int_equal(store_sender_delete(w.store, w.acme, ids[0]), STORE_OK);
	list(&w, w.acme, "sender.removed", NULL, 0, 50, &l);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.data[0], "{\"email\":\"a@example.com\"}");

	struct store_domain_new d = {.name = "example.com",
				     .status = "pending",
				     .token = "t",
				     .selector = "s1",
				     .private_sealed = "k",
				     .public_key = "p",
				     .now = 3000};
	int64_t id;
	assert_int_equal(store_domain_create(w.store, w.acme, &d, &id), STORE_OK);
	struct store_domain_check chk = {.account_id = w.acme,
					 .token = "t",
					 .read_status = "pending",
					 .now = 3100,
					 .status = "failed",
					 .error = "no TXT record",
					 .records = "{}"};
	assert_int_equal(store_domain_checked(w.store, id, &chk), STORE_OK);
	chk.read_status = "failed";
	assert_int_equal(store_domain_checked(w.store, id, &chk), STORE_OK); /* stays failed */
	assert_int_equal(store_domain_set(w.store, w.acme, "example.com", "verified", -1),
			 STORE_OK);
	assert_int_equal(store_domain_set(w.store, w.acme, "example.com", "verified", -1),
			 STORE_OK);
	list(&w, w.acme, NULL, NULL, 0, 50, &l);
	assert_string_equal(l.text, "domain.verified|domain.failed|sender.removed|sender.added");
	assert_string_equal(l.data[0], "{\"domain\":\"example.com\"}");
	assert_string_equal(l.data[1], "{\"domain\":\"example.com\",\"error\":\"no TXT record\"}");
	world_close(&w);
}

/* A domain held for the operator's approval is told of only when it may send: approved
 * with its records found; and when a rejection stops it. */
static void test_a_held_domain_is_told_when_it_may_send(void **state)
{
	(void)state;
	struct world w;
	struct listed l;
	struct store_domain_was was;
	world_open(&w);
	struct store_domain_new d = {.name = "held.example",
				     .status = "pending",
				     .approval = "required",
				     .token = "t",
				     .selector = "s1",
				     .private_sealed = "k",
				     .public_key = "p",
				     .now = 3000};
	int64_t id;
	assert_int_equal(store_domain_create(w.store, w.acme, &d, &id), STORE_OK);
	struct store_domain_check chk = {.account_id = w.acme,
					 .token = "t",
					 .read_status = "pending",
					 .now = 3100,
					 .status = "verified",
					 .records = "{}"};
	assert_int_equal(store_domain_checked(w.store, id, &chk), STORE_OK);
	list(&w, w.acme, NULL, NULL, 0, 50, &l);
	assert_int_equal(l.n, 0); /* its records check out, but it waits */

	assert_int_equal(store_domain_approve(w.store, w.acme, "held.example", "approved", &was),
			 STORE_OK);
	assert_string_equal(was.status, "verified");
	assert_string_equal(was.approval, "required");
	assert_int_equal(store_domain_approve(w.store, w.acme, "held.example", "approved", &was),
			 STORE_CONFLICT);
	assert_int_equal(store_domain_approve(w.store, w.acme, "held.example", "rejected", &was),
			 STORE_OK);
	assert_int_equal(store_domain_approve(w.store, w.acme, "other.example", "approved", &was),
			 STORE_NOT_FOUND);
	assert_int_equal(store_domain_approve(w.store, w.other, "held.example", "approved", &was),
			 STORE_NOT_FOUND);
	list(&w, w.acme, NULL, NULL, 0, 50, &l);
	assert_string_equal(l.text, "domain.failed|domain.verified");
	assert_string_equal(l.data[0],
			    "{\"domain\":\"held.example\",\"error\":\"rejected by the operator\"}");
	assert_string_equal(l.data[1], "{\"domain\":\"held.example\"}");
	world_close(&w);
}

static int list_hook(void *arg, const struct store_webhook *h)
{
	struct listed *l = arg;
	size_t len = strlen(l->text);
	snprintf(l->text + len, sizeof(l->text) - len, "%s%s %s %s", len ? "|" : "", h->format,
		 h->events, h->enabled ? "on" : "off");
	return 0;
}

static void test_the_fan_out_follows_filter_format_switch_and_account(void **state)
{
	(void)state;
	struct world w;
	char got[2048];
	world_open(&w);
	int64_t all = webhook(&w, w.acme, "standard", "*");
	int64_t delivered = webhook(&w, w.acme, "standard", ",message.delivered,sender.added,");
	int64_t sg = webhook(&w, w.acme, "sendgrid", "*");
	int64_t off = webhook(&w, w.acme, "standard", "*");
	webhook(&w, w.other, "standard", "*");
	assert_int_equal(store_webhook_set_enabled(w.store, w.acme, off, false), STORE_OK);

	assert_int_equal(add_message(&w, "m1", 3000), STORE_OK);
	const char *addresses[] = {"a@example.com"};
	int64_t ids[1];
	add_senders(&w, 3000, addresses, 1, ids);
	int64_t test_event;
	assert_int_equal(
		store_webhook_test(w.store, w.acme, sg, "{\"message\":\"hi\"}", 3000, &test_event),
		STORE_OK);
	assert_int_equal(store_webhook_test(w.store, w.other, sg, NULL, 3000, &test_event),
			 STORE_NOT_FOUND);

	struct listed hooks = {.n = 0};
	assert_int_equal(store_webhooks_list(w.store, w.acme, list_hook, &hooks), STORE_OK);
	assert_string_equal(hooks.text,
			    "standard * on|standard ,message.delivered,sender.added, on|"
			    "sendgrid * on|standard * off");

	/* Nothing is due before its time. */
	assert_int_equal(claim_all(&w, 2999, got, sizeof(got)), 0);
	size_t n = claim_all(&w, 3000, got, sizeof(got));
	char want[512];
	snprintf(want, sizeof(want),
		 "%lld:message.processed %lld:message.processed %lld:sender.added "
		 "%lld:message.processed %lld:message.processed %lld:webhook.test "
		 "%lld:sender.added",
		 (long long)all, (long long)all, (long long)all, (long long)sg, (long long)sg,
		 (long long)sg, (long long)delivered);
	/* One claim per endpoint; the order of endpoints is that of their oldest delivery. */
	assert_int_equal(n, 7);
	assert_string_equal(got, want);
	world_close(&w);
}

/* Claims what is due at now from the one endpoint; its ids into ids. */
static size_t claim(struct world *w, int64_t now, int64_t *ids, int *attempts)
{
	struct store_delivery d[8];
	struct store_webhook hook;
	char *secret;
	size_t n;
	assert_int_equal(
		store_webhook_claim(w->store, now, now + 60, 8, 8, &hook, &secret, w->claim, d, &n),
		STORE_OK);
	for (size_t i = 0; i < n; i++) {
		ids[i] = d[i].id;
		if (attempts)
			attempts[i] = d[i].attempts;
	}
	store_deliveries_free(d, n);
	free(secret);
	return n;
}

static void test_a_delivery_is_retried_then_failed_and_its_endpoint_disabled(void **state)
{
	(void)state;
	struct world w;
	struct store_webhook hook;
	int64_t ids[8], next[8];
	int attempts[8];
	world_open(&w);
	int64_t id = webhook(&w, w.acme, "standard", ",message.processed,");
	assert_int_equal(add_message(&w, "m1", 3000), STORE_OK);

	assert_int_equal(claim(&w, 3000, ids, attempts), 2);
	assert_int_equal(attempts[0], 1);
	/* Claimed: not due again until its lease runs out. */
	assert_int_equal(claim(&w, 3001, ids, NULL), 0);
	assert_int_equal(claim(&w, 3061, ids, attempts), 2);
	assert_int_equal(attempts[0], 2);

	next[0] = next[1] = 3070;
	struct store_webhook_result r = {.webhook_id = id,
					 .claim = w.claim,
					 .ok = false,
					 .status = "HTTP 500",
					 .now = 3065,
					 .disable_after = 86400};
	assert_int_equal(store_webhook_done(w.store, &r, ids, next, 2), STORE_OK);
	assert_int_equal(store_webhook_get(w.store, w.acme, id, &hook), STORE_OK);
	assert_string_equal(hook.last_status, "HTTP 500");
	assert_int_equal(hook.last_at, 3065);
	assert_int_equal(hook.failing_since, 3065);
	assert_true(hook.enabled);
	assert_int_equal(claim(&w, 3069, ids, NULL), 0);
	assert_int_equal(claim(&w, 3070, ids, attempts), 2);
	assert_int_equal(attempts[1], 3);

	/* The first gives up, the second waits; a day of failures disables the endpoint. */
	next[0] = 0;
	next[1] = 3065 + 86400 + 10;
	r.now = 3065 + 86400;
	r.status = "timeout";
	assert_int_equal(store_webhook_done(w.store, &r, ids, next, 2), STORE_OK);
	assert_int_equal(store_webhook_get(w.store, w.acme, id, &hook), STORE_OK);
	assert_false(hook.enabled);
	assert_int_equal(hook.disabled_at, 3065 + 86400);
	assert_int_equal(hook.failing_since, 3065);
	assert_int_equal(claim(&w, 3065 + 86400 + 10, ids, NULL), 0);

	/* Enabled again: the failure count starts over, the waiting delivery resumes, the
	 * failed one stays failed; a success deletes it and clears the failure. */
	assert_int_equal(store_webhook_set_enabled(w.store, w.acme, id, true), STORE_OK);
	assert_int_equal(store_webhook_get(w.store, w.acme, id, &hook), STORE_OK);
	assert_true(hook.enabled);
	assert_int_equal(hook.disabled_at, 0);
	assert_int_equal(hook.failing_since, 0);
	assert_int_equal(claim(&w, 3065 + 86400 + 10, ids, NULL), 1);
	r = (struct store_webhook_result){.webhook_id = id,
					  .claim = w.claim,
					  .ok = true,
					  .status = "204",
					  .now = 3065 + 86400 + 11,
					  .disable_after = 86400};
	assert_int_equal(store_webhook_done(w.store, &r, ids, NULL, 1), STORE_OK);
	assert_int_equal(store_webhook_get(w.store, w.acme, id, &hook), STORE_OK);
	assert_int_equal(hook.last_success_at, 3065 + 86400 + 11);
	assert_string_equal(hook.last_status, "204");
	assert_int_equal(hook.failing_since, 0);
	assert_int_equal(claim(&w, 3000 + 86400 * 3, ids, NULL), 0);

	assert_int_equal(store_webhook_delete(w.store, w.other, id), STORE_NOT_FOUND);
	assert_int_equal(store_webhook_delete(w.store, w.acme, id), STORE_OK);
	assert_int_equal(store_webhook_get(w.store, w.acme, id, &hook), STORE_NOT_FOUND);
	world_close(&w);
}

/* Five messages of acme, each to two recipients: ten message.processed events at 3000. */
static void add_messages(struct world *w)
{
	char uid[16];
	for (int i = 0; i < 5; i++) {
		snprintf(uid, sizeof(uid), "m%d", i);
		assert_int_equal(add_message(w, uid, 3000), STORE_OK);
	}
}

/* An endpoint of acme for message.processed with those ten due, eight of them claimed at 3000
 * (their ids into ids). */
static int64_t backlog(struct world *w, int64_t *ids)
{
	int64_t id = webhook(w, w->acme, "standard", ",message.processed,");
	add_messages(w);
	assert_int_equal(claim(w, 3000, ids, NULL), 8);
	return id;
}

static struct store_webhook_result failed(int64_t id, const char *claim, int64_t now,
					  int64_t retry_at)
{
	return (struct store_webhook_result){.webhook_id = id,
					     .claim = claim,
					     .ok = false,
					     .status = "timeout",
					     .now = now,
					     .retry_at = retry_at,
					     .disable_after = 86400};
}

static void test_a_disabled_endpoints_deliveries_wait_until_it_is_enabled(void **state)
{
	(void)state;
	struct world w;
	int64_t ids[8], next[8];
	char got[2048];
	world_open(&w);
	int64_t id = webhook(&w, w.acme, "standard", ",message.processed,");
	add_messages(&w);

	/* Disabled by hand: none is due, ever; enabled, all are due at once. */
	assert_int_equal(store_webhook_set_enabled(w.store, w.acme, id, false), STORE_OK);
	assert_int_equal(claim(&w, 3000 + 86400 * 365, ids, NULL), 0);
	assert_int_equal(store_webhook_set_enabled(w.store, w.acme, id, true), STORE_OK);
	assert_int_equal(claim(&w, 3001, ids, NULL), 8);

	/* Disabled by failures: the failed ones and the two not claimed wait with it. */
	for (int i = 0; i < 8; i++)
		next[i] = 3010;
	struct store_webhook_result r = failed(id, w.claim, 3002, 0);
	r.disable_after = 1;
	assert_int_equal(store_webhook_done(w.store, &r, ids, next, 8), STORE_OK);
	r.now = 3003;
	assert_int_equal(store_webhook_done(w.store, &r, ids, next, 0), STORE_OK);
	struct store_webhook hook;
	assert_int_equal(store_webhook_get(w.store, w.acme, id, &hook), STORE_OK);
	assert_false(hook.enabled);
	assert_int_equal(claim_all(&w, 3000 + 86400 * 365, got, sizeof(got)), 0);
	assert_int_equal(store_webhook_set_enabled(w.store, w.acme, id, true), STORE_OK);
	assert_int_equal(claim_all(&w, 3004, got, sizeof(got)), 10);
	world_close(&w);
}

static void test_a_failing_endpoint_is_tried_once_per_backoff_step(void **state)
{
	(void)state;
	struct world w;
	int64_t ids[8], next[8];
	char got[2048];
	world_open(&w);
	int64_t dead = backlog(&w, ids);
	int64_t alive = webhook(&w, w.acme, "standard", "*");
	assert_int_equal(add_message(&w, "late", 3001), STORE_OK);

	/* The POST fails: its backlog (the two not claimed, the later one, and one made
	 * after the failure) waits with it until 3100; another endpoint's deliveries do not. */
	for (int i = 0; i < 8; i++)
		next[i] = 3010;
	struct store_webhook_result r = failed(dead, w.claim, 3005, 3100);
	assert_int_equal(store_webhook_done(w.store, &r, ids, next, 8), STORE_OK);
	assert_int_equal(add_message(&w, "later", 3006), STORE_OK);
	char want[128];
	snprintf(want, sizeof(want), "%lld:message.processed %lld:message.processed",
		 (long long)alive, (long long)alive);
	assert_int_equal(claim_all(&w, 3099, got, sizeof(got)), 4);
	assert_string_equal(got + strlen(got) - strlen(want), want);
	assert_int_equal(claim(&w, 3100, ids, NULL), 8);
	assert_int_equal(claim(&w, 3100, ids, NULL), 6);

	/* A success ends the wait: what comes next is due at once. */
	r = (struct store_webhook_result){
		.webhook_id = dead, .claim = w.claim, .ok = true, .status = "200", .now = 3101};
	assert_int_equal(store_webhook_done(w.store, &r, ids, NULL, 6), STORE_OK);
	assert_int_equal(add_message(&w, "after", 3102), STORE_OK);
	assert_int_equal(claim(&w, 3102, ids, NULL), 2);
	world_close(&w);
}

static void test_a_stopped_worker_hands_back_what_it_did_not_post(void **state)
{
	(void)state;
	struct world w;
	int64_t ids[8], again[8];
	int attempts[8];
	world_open(&w);
	int64_t id = backlog(&w, ids);
	char token[STORE_CLAIM_LEN];
	memcpy(token, w.claim, sizeof(token));

	/* Another claim's token changes nothing; this one's hands back three, due at once and
	 * not counted as tried. */
	assert_int_equal(store_webhook_release(w.store, id, "0123", ids + 5, 3), STORE_OK);
	assert_int_equal(claim(&w, 3001, again, NULL), 2);
	assert_int_equal(store_webhook_release(w.store, id, token, ids + 5, 3), STORE_OK);
	assert_int_equal(claim(&w, 3001, again, attempts), 3);
	assert_int_equal(again[0], ids[5]);
	assert_int_equal(attempts[0], 1);
	world_close(&w);
}

static void test_a_late_result_leaves_another_claim_alone(void **state)
{
	(void)state;
	struct world w;
	int64_t ids[8], again[8];
	world_open(&w);
	int64_t id = webhook(&w, w.acme, "standard", ",message.processed,");
	assert_int_equal(add_message(&w, "m1", 3000), STORE_OK);
	assert_int_equal(claim(&w, 3000, ids, NULL), 2);
	char stale[STORE_CLAIM_LEN];
	memcpy(stale, w.claim, sizeof(stale));
	/* The lease runs out and another worker claims them; then the first one's result. */
	assert_int_equal(claim(&w, 3061, again, NULL), 2);
	char current[STORE_CLAIM_LEN];
	memcpy(current, w.claim, sizeof(current));
	struct store_webhook_result r = {
		.webhook_id = id, .claim = stale, .ok = true, .status = "200", .now = 3062};
	assert_int_equal(store_webhook_done(w.store, &r, ids, NULL, 2), STORE_OK);
	int64_t next[2] = {3070, 3070};
	r = failed(id, stale, 3063, 0);
	assert_int_equal(store_webhook_done(w.store, &r, ids, next, 2), STORE_OK);
	/* Still the second claim's: not due, and its own result counts. */
	assert_int_equal(claim(&w, 3070, again, NULL), 0);
	r = failed(id, current, 3064, 0);
	assert_int_equal(store_webhook_done(w.store, &r, again, next, 2), STORE_OK);
	assert_int_equal(claim(&w, 3070, again, NULL), 2);
	world_close(&w);
}

#define RACE_EVENTS 300

struct claimer {
	struct store *store;
	int64_t ids[RACE_EVENTS];
	size_t n;
	int rc;
};

/* Claims until nothing is due, leaving every claim held. */
static void *claim_race(void *arg)
{
	struct claimer *c = arg;
	struct store_delivery d[7];
	struct store_webhook hook;
	char *secret, token[STORE_CLAIM_LEN];
	size_t n;
	do {
		c->rc = store_webhook_claim(c->store, 5000, 5060, 7, 7, &hook, &secret, token, d,
					    &n);
		for (size_t i = 0; i < n && c->n < RACE_EVENTS; i++)
			c->ids[c->n++] = d[i].id;
		store_deliveries_free(d, n);
		free(secret);
	} while (c->rc == STORE_OK && n);
	return NULL;
}

static int cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_two_claimers_never_get_the_same_delivery(void **state)
{
	(void)state;
	struct world w;
	world_open(&w);
	webhook(&w, w.acme, "standard", "*");
	webhook(&w, w.acme, "standard", ",sender.added,");
	const char *addresses[RACE_EVENTS / 2];
	char text[RACE_EVENTS / 2][32];
	int64_t ids[RACE_EVENTS / 2];
	for (int i = 0; i < RACE_EVENTS / 2; i++) {
		snprintf(text[i], sizeof(text[i]), "s%d@example.com", i);
		addresses[i] = text[i];
	}
	add_senders(&w, 4000, addresses, RACE_EVENTS / 2, ids);

	/* Two stores on one database, as two nodes (or two processes) are. */
	static struct claimer c[2];
	pthread_t t[2];
	c[0] = (struct claimer){.store = w.store};
	c[1] = (struct claimer){.store = world_store(&w)};
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, claim_race, &c[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	store_close(c[1].store);
	assert_int_equal(c[0].rc, STORE_OK);
	assert_int_equal(c[1].rc, STORE_OK);

	int64_t all[RACE_EVENTS];
	size_t n = 0;
	for (int i = 0; i < 2; i++)
		for (size_t j = 0; j < c[i].n; j++)
			all[n++] = c[i].ids[j];
	assert_int_equal(n, RACE_EVENTS);
	qsort(all, n, sizeof(all[0]), cmp_id);
	for (size_t i = 1; i < n; i++)
		if (all[i] == all[i - 1])
			fail_msg("delivery %lld claimed twice", (long long)all[i]);
	world_close(&w);
}

static void test_events_list_filters_and_pages(void **state)
{
	(void)state;
	struct world w;
	struct listed l, page;
	world_open(&w);
	assert_int_equal(add_message(&w, "m1", 3000), STORE_OK);
	assert_int_equal(add_message(&w, "m2", 3001), STORE_OK);
	const char *addresses[] = {"a@example.com"};
	int64_t ids[1];
	add_senders(&w, 3002, addresses, 1, ids);

	list(&w, w.acme, NULL, NULL, 0, 50, &l);
	assert_int_equal(l.n, 5);
	list(&w, w.acme, "message.processed", NULL, 0, 50, &l);
	assert_int_equal(l.n, 4);
	list(&w, w.acme, "message.processed", "m1", 0, 50, &l);
	assert_int_equal(l.n, 2);
	list(&w, w.acme, NULL, "nope", 0, 50, &l);
	assert_int_equal(l.n, 0);
	list(&w, w.acme, NULL, "m2", 0, 50, &l);
	assert_int_equal(l.n, 2);
	list(&w, w.acme, NULL, "m2", l.ids[0], 50, &page);
	assert_int_equal(page.n, 1);
	assert_int_equal(page.ids[0], l.ids[1]);
	list(&w, w.other, NULL, "m2", 0, 50, &l);
	assert_int_equal(l.n, 0);
	list(&w, w.acme, "sender.added", NULL, 0, 50, &l);
	assert_int_equal(l.n, 1);
	list(&w, w.acme, NULL, NULL, 0, 2, &page);
	assert_string_equal(page.text, "sender.added|message.processed b@example.net");
	list(&w, w.acme, NULL, NULL, page.ids[1], 2, &page);
	assert_int_equal(page.n, 2);
	assert_true(page.ids[0] < l.ids[0] || l.n == 0);
	list(&w, w.acme, NULL, NULL, 0, 50, &l);
	assert_int_equal(page.ids[0], l.ids[2]);
	assert_int_equal(page.ids[1], l.ids[3]);
	world_close(&w);
}

static void test_a_cancel_made_for_a_stale_part_changes_nothing(void **state)
{
	(void)state;
	struct world w;
	struct listed l;
	world_open(&w);
	assert_int_equal(add_message(&w, "m1", 3000), STORE_OK);
	struct store_message_info m;
	assert_int_equal(store_message_get(w.store, w.acme, "m1", &m), STORE_OK);
	assert_int_equal(m.parts_done, 0);

	/* A part is sent between the read and the cancel. */
	struct store_queued q;
	size_t n;
	assert_int_equal(store_messages_claim(w.store, 3010, 3070, &q, 1, &n), STORE_OK);
	free(q.payload);
	free(q.rejected);
	const struct store_event sent[] = {{"message.delivered", "a@example.net", NULL}};
	/* The part's hard bounce is suppressed with its progress, not at the message's end. */
	struct store_suppression gone = {.email = "gone@example.net", .reason = "hard_bounce"};
	assert_int_equal(store_message_progress(w.store, q.id, w.acme, 1, sent, 1, &gone, 1),
			 STORE_OK);
	const char *asked[] = {"gone@example.net"};
	bool listed[1];
	assert_int_equal(store_suppressed(w.store, w.acme, asked, 1, listed), STORE_OK);
	assert_true(listed[0]);
	struct store_outcome o = {.status = "deferred", .next_attempt_at = 4000, .now = 3020};
	struct store_finish f = {q.id, &o, w.acme};
	assert_int_equal(store_messages_finish(w.store, &f, 1), STORE_OK);

	const struct store_event dropped[] = {
		{"message.dropped", "a@example.net", "{\"reason\":\"cancelled\"}"},
		{"message.dropped", "b@example.net", "{\"reason\":\"cancelled\"}"},
	};
	assert_int_equal(store_message_cancel(w.store, w.acme, "m1", 3030, 0, dropped, 2),
			 STORE_TOO_SOON);
	assert_int_equal(store_message_get(w.store, w.acme, "m1", &m), STORE_OK);
	assert_string_equal(m.status, "deferred");
	assert_int_equal(m.parts_done, 1);
	assert_int_equal(store_message_cancel(w.store, w.acme, "m1", 3031, 1, dropped + 1, 1),
			 STORE_OK);
	list(&w, w.acme, NULL, "m1", 0, 50, &l);
	assert_string_equal(l.text, "message.dropped b@example.net|"
				    "message.delivered a@example.net|"
				    "message.processed b@example.net|"
				    "message.processed a@example.net");
	assert_int_equal(store_message_cancel(w.store, w.acme, "m1", 3032, 1, dropped + 1, 1),
			 STORE_CONFLICT);
	assert_int_equal(store_message_cancel(w.store, w.acme, "m9", 3032, 0, NULL, 0),
			 STORE_NOT_FOUND);
	world_close(&w);
}

/* The check at delivery: who of a part's recipients the account lists (addresses compared
 * as the list keeps them), and who an earlier run of the message told so already. */
static void test_the_delivery_check_reads_the_list_and_who_was_told(void **state)
{
	(void)state;
	struct world w;
	world_open(&w);
	char norm[ADDR_MAX];
	assert_int_equal(suppress_normalize("Foo.Bar@Example.COM", norm), 0);
	assert_string_equal(norm, "foo.bar@example.com");
	assert_int_equal(suppress_normalize("no address", norm), -1);

	assert_int_equal(add_message(&w, "m1", 3000), STORE_OK);
	struct store_suppression e[] = {
		{.email = "a@example.net", .reason = "manual"},
		{.email = "b@example.net", .reason = "complaint"},
	};
	assert_int_equal(store_suppressions_add(w.store, w.acme, e, 2, 3000, NULL), STORE_OK);
	struct store_queued q;
	size_t n;
	assert_int_equal(store_messages_claim(w.store, 3010, 3070, &q, 1, &n), STORE_OK);
	free(q.payload);
	free(q.rejected);
	/* An earlier run told a@ it was suppressed, and b@ only that it was given up on. */
	const struct store_event earlier[] = {
		{"message.dropped", "a@example.net", "{\"reason\":\"recipient_suppressed\"}"},
		{"message.dropped", "B@example.net", "{\"reason\":\"gave_up\"}"},
	};
	assert_int_equal(store_message_progress(w.store, q.id, w.acme, 1, earlier, 2, NULL, 0),
			 STORE_OK);

	const char *rcpts[] = {"a@example.net", "B@example.net", "c@example.net", "bad"};
	bool listed[4], told[4];
	assert_int_equal(suppress_check(w.store, w.acme, "m1", true, rcpts, 4, listed, told),
			 STORE_OK);
	assert_true(listed[0] && listed[1]);
	assert_false(listed[2] || listed[3]);
	assert_true(told[0]);
	assert_false(told[1] || told[2] || told[3]);
	/* The message's first run reads no events. */
	assert_int_equal(suppress_check(w.store, w.acme, "m1", false, rcpts, 4, listed, told),
			 STORE_OK);
	assert_true(listed[0] && listed[1]);
	assert_false(told[0]);
	/* Another account lists nobody. */
	assert_int_equal(suppress_check(w.store, w.other, "m1", true, rcpts, 4, listed, told),
			 STORE_OK);
	assert_false(listed[0] || listed[1] || told[0]);
	world_close(&w);
}

/* A report sent to two return paths is stored once for each in one transaction: a path
 * that cannot be stored leaves none of them, so the client's next try stores each once. */
static void test_a_report_to_two_return_paths_is_stored_whole_or_not_at_all(void **state)
{
	(void)state;
	struct world w;
	world_open(&w);
	const char *data = "Subject: Undelivered\r\n\r\n550 5.1.1 no such user\r\n";
	struct store_report_path paths[] = {
		{"b-aaaa-1111@bounces.example.org", "aaaa"},
		{"b-bbbb-2222@bounces.example.org", "bbbb"},
	};
	struct store_report_in in = {.client_ip = "192.0.2.7",
				     .mail_from = "",
				     .paths = paths,
				     .npaths = 2,
				     .data = data,
				     .len = strlen(data),
				     .now = 4000};
	int64_t ids[2] = {0, 0};
	assert_int_equal(store_report_add(w.store, &in, ids), STORE_OK);
	assert_true(ids[0] > 0 && ids[1] > ids[0]);
	struct store_report r[4];
	char claim[STORE_CLAIM_LEN];
	size_t n;
	assert_int_equal(store_reports_claim(w.store, 4001, 4300, claim, r, 4, &n), STORE_OK);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(r[i].id, ids[i]);
		assert_string_equal(r[i].rcpt, paths[i].rcpt);
		assert_string_equal(r[i].message_uid, paths[i].message_uid);
		assert_string_equal(r[i].client_ip, "192.0.2.7");
		assert_int_equal(r[i].len, strlen(data));
		assert_memory_equal(r[i].data, data, strlen(data));
	}
	store_reports_free(r, n);

	/* The second path cannot be stored (no message uid): the first is not either. */
	paths[1].message_uid = NULL;
	assert_int_not_equal(store_report_add(w.store, &in, ids), STORE_OK);
	assert_int_equal(store_reports_claim(w.store, 4100, 4400, claim, r, 4, &n), STORE_OK);
	assert_int_equal(n, 0);
	world_close(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_events_come_and_go_with_their_change),
		cmocka_unit_test(test_a_listed_event_carries_its_message),
		cmocka_unit_test(test_account_events_are_written_by_the_store),
		cmocka_unit_test(test_a_sender_removed_and_a_domain_verified_are_told),
		cmocka_unit_test(test_a_held_domain_is_told_when_it_may_send),
		cmocka_unit_test(test_the_fan_out_follows_filter_format_switch_and_account),
		cmocka_unit_test(test_a_delivery_is_retried_then_failed_and_its_endpoint_disabled),
		cmocka_unit_test(test_a_disabled_endpoints_deliveries_wait_until_it_is_enabled),
		cmocka_unit_test(test_a_failing_endpoint_is_tried_once_per_backoff_step),
		cmocka_unit_test(test_a_stopped_worker_hands_back_what_it_did_not_post),
		cmocka_unit_test(test_a_late_result_leaves_another_claim_alone),
		cmocka_unit_test(test_two_claimers_never_get_the_same_delivery),
		cmocka_unit_test(test_events_list_filters_and_pages),
		cmocka_unit_test(test_a_cancel_made_for_a_stale_part_changes_nothing),
		cmocka_unit_test(test_the_delivery_check_reads_the_list_and_who_was_told),
		cmocka_unit_test(test_a_report_to_two_return_paths_is_stored_whole_or_not_at_all),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
