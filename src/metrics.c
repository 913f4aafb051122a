/* Prometheus metrics: what the gateway counts while it works (atomic increments only, so
 * counting costs a request no lock and no allocation) and the text exposition format
 * (version 0.0.4) that GET /metrics answers with on the metrics listener. */
#include "metrics.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "util.h"

typedef atomic_uint_fast64_t counter;

static const char *const fronts[METRICS_FRONT_COUNT] = {"netcore", "sendgrid", "smtp"};
/* The message statuses of the queue (store.h), each always shown. */
static const char *const statuses[] = {"queued", "scheduled", "sending", "deferred",
				       "sent",	 "failed",    "dropped", "cancelled"};
static const char *const deliveries[] = {"sent", "deferred", "failed", "dropped", "scheduled"};
static const char *const webhooks[METRICS_WEBHOOK_COUNT] = {"success", "http_error", "timeout",
							    "network_error", "url_refused"};
static const char *const dns_checks[] = {"verified", "pending", "failed", "lookup_error"};

_Static_assert(ARRAY_LEN(statuses) == ARRAY_LEN(((struct metrics_statuses *)0)->count),
	       "a count for every status");

/* Fixed bucket bounds; an observation goes into the first bucket whose bound it does not
 * exceed, and the renderer adds them up into Prometheus's cumulative buckets. */
struct histogram {
	const char *name;
	const char *help;
	const double *bounds;
	size_t nbounds;
	counter *buckets; /* nbounds + 1: the last is +Inf */
	counter *sum_us;  /* the sum in millionths, so that it stays an integer atomic */
};

static const double relay_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
				      1,     2.5,  5,	  10,	30,  60,   120};
/* A commit holds at most the queue's BATCH_MAX (1024) messages. */
static const double commit_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

static struct {
	counter accepted[METRICS_FRONT_COUNT];
	counter refused[METRICS_FRONT_COUNT][METRICS_REFUSAL_COUNT];
	counter deliveries[ARRAY_LEN(deliveries)];
	counter webhooks[METRICS_WEBHOOK_COUNT];
	counter dns[ARRAY_LEN(dns_checks)];
	counter relay[ARRAY_LEN(relay_bounds) + 1], relay_sum;
	counter commit[ARRAY_LEN(commit_bounds) + 1], commit_sum;
	counter started; /* Unix seconds; 0 until serve says */
} m;

static const struct histogram relay_hist = {
	"postern_relay_reply_seconds",
	"Seconds from the start of a relay transaction to the relay's last reply.",
	relay_bounds,
	ARRAY_LEN(relay_bounds),
	m.relay,
	&m.relay_sum};
static const struct histogram commit_hist = {"postern_queue_commit_messages",
					     "Messages stored by one group commit of the queue.",
					     commit_bounds,
					     ARRAY_LEN(commit_bounds),
					     m.commit,
					     &m.commit_sum};

static void add(counter *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static uint64_t get(const counter *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

/* The index of s in table, -1 when it is not there. */
static int index_of(const char *const *table, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(table[i], s) == 0)
			return (int)i;
	return -1;
}

static void observe(const struct histogram *h, double v)
{
	size_t i = 0;
	while (i < h->nbounds && v > h->bounds[i])
		i++;
	add(&h->buckets[i]);
	atomic_fetch_add_explicit(h->sum_us, (uint64_t)(v * 1e6 + 0.5), memory_order_relaxed);
}

/* The real clock, not the tests' moved one: Prometheus compares it with its own. */
void metrics_started(void)
{
	atomic_store(&m.started, (uint64_t)time(NULL));
}

void metrics_accepted(enum metrics_front f)
{
	add(&m.accepted[f]);
}

void metrics_refused(enum metrics_front f, enum metrics_refusal why)
{
	add(&m.refused[f][why]);
}

void metrics_delivery(const char *status)
{
	int i = index_of(deliveries, ARRAY_LEN(deliveries), status);
	if (i >= 0)
		add(&m.deliveries[i]);
}

void metrics_relay_seconds(double seconds)
{
	observe(&relay_hist, seconds < 0 ? 0 : seconds);
}

void metrics_commit_size(size_t messages)
{
	observe(&commit_hist, (double)messages);
}

void metrics_webhook(enum metrics_webhook outcome)
{
	add(&m.webhooks[outcome]);
}

void metrics_dns_check(const char *status, bool lookup_error)
{
	int i = lookup_error ? (int)ARRAY_LEN(dns_checks) - 1
			     : index_of(dns_checks, ARRAY_LEN(dns_checks), status);
	if (i >= 0)
		add(&m.dns[i]);
}

void metrics_reset(void)
{
	memset(&m, 0, sizeof(m));
}

static int count_status(void *arg, const char *status, int64_t count)
{
	struct metrics_statuses *st = arg;
	int i = index_of(statuses, ARRAY_LEN(statuses), status);
	if (i >= 0)
		st->count[i] = count;
	return 0;
}

/* Reads the messages per status from the store (every account). A store_rc. */
static int metrics_status_counts(struct store *s, struct metrics_statuses *out)
{
	memset(out, 0, sizeof(*out));
	return store_message_status_counts(s, count_status, out);
}

static void header(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family with one label, a sample for every value of its table. */
static void family(FILE *f, const char *name, const char *help, const char *label,
		   const char *const *values, const counter *cells, size_t n)
{
	header(f, name, "counter", help);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s{%s=\"%s\"} %llu\n", name, label, values[i],
			(unsigned long long)get(&cells[i]));
}

/* The label value of a refusal: the policy's reason code, or the key scope's or a malformed
 * request's error code. */
static const char *refusal_code(int why)
{
	if (why == METRICS_REFUSED_KEY_SCOPE)
		return err_info(ERR_SENDER_NOT_ALLOWED_FOR_KEY)->code;
	if (why == METRICS_REFUSED_INVALID)
		return err_info(ERR_INVALID_REQUEST)->code;
	return policy_reason_code((enum policy_reason)why);
}

static void sends(FILE *f)
{
	family(f, "postern_sends_accepted_total", "Messages accepted, by front end.", "front_end",
	       fronts, m.accepted, METRICS_FRONT_COUNT);
	const char *name = "postern_sends_refused_total";
	header(f, name, "counter", "Sends refused, by front end and reason.");
	for (int fe = 0; fe < METRICS_FRONT_COUNT; fe++)
		for (int why = POLICY_ALLOW + 1; why < METRICS_REFUSAL_COUNT; why++)
			fprintf(f, "%s{front_end=\"%s\",reason=\"%s\"} %llu\n", name, fronts[fe],
				refusal_code(why), (unsigned long long)get(&m.refused[fe][why]));
}

static void histogram(FILE *f, const struct histogram *h)
{
	uint64_t total = 0;
	header(f, h->name, "histogram", h->help);
	for (size_t i = 0; i < h->nbounds; i++) {
		total += get(&h->buckets[i]);
		fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", h->name, h->bounds[i],
			(unsigned long long)total);
	}
	total += get(&h->buckets[h->nbounds]);
	/* The count is the +Inf bucket, read once, so the two always agree in one scrape. */
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", h->name, (unsigned long long)total);
	fprintf(f, "%s_sum %.6f\n", h->name, (double)get(h->sum_us) / 1e6);
	fprintf(f, "%s_count %llu\n", h->name, (unsigned long long)total);
}

static void messages(FILE *f, const struct metrics_statuses *st)
{
	if (!st)
		return;
	header(f, "postern_messages", "gauge", "Messages in the store, by status.");
	for (size_t i = 0; i < ARRAY_LEN(statuses); i++)
		fprintf(f, "postern_messages{status=\"%s\"} %lld\n", statuses[i],
			(long long)st->count[i]);
}

char *metrics_render(const struct metrics_statuses *st, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);
	if (!f)
		fatal("cannot render the metrics");
	header(f, "postern_build_info", "gauge", "Always 1; the version built, as a label.");
	fprintf(f, "postern_build_info{version=\"%s\"} 1\n", POSTERN_VERSION);
	if (get(&m.started)) {
		header(f, "postern_process_start_time_seconds", "gauge",
		       "When the process started, in seconds since the Unix epoch.");
		fprintf(f, "postern_process_start_time_seconds %llu\n",
			(unsigned long long)get(&m.started));
	}
	sends(f);
	messages(f, st);
	family(f, "postern_deliveries_total",
	       "Delivery runs, by the status they left the message in.", "outcome", deliveries,
	       m.deliveries, ARRAY_LEN(deliveries));
	histogram(f, &relay_hist);
	histogram(f, &commit_hist);
	family(f, "postern_webhook_posts_total", "Webhook POSTs, by outcome.", "outcome", webhooks,
	       m.webhooks, METRICS_WEBHOOK_COUNT);
	family(f, "postern_dns_checks_total", "DNS checks of sending domains, by outcome.",
	       "outcome", dns_checks, m.dns, ARRAY_LEN(dns_checks));
	if (fclose(f) != 0)
		fatal("cannot render the metrics");
	return text;
}

void metrics_handle(void *arg, struct http_request *req)
{
	static const char type[] = "text/plain; version=0.0.4; charset=utf-8";
	if (strcmp(req->method, "GET") != 0 || strcmp(req->path, "/metrics") != 0) {
		http_respond(req, 404, "text/plain; charset=utf-8", xstrdup("not found\n"), 10,
			     NULL);
		return;
	}
	struct metrics_statuses st;
	/* A store that does not answer leaves the gauge out; the counters are still worth a
	 * scrape. */
	bool stored = metrics_status_counts(arg, &st) == STORE_OK;
	size_t len;
	char *text = metrics_render(stored ? &st : NULL, &len);
	http_respond(req, 200, type, text, len, NULL);
}
