/* Figure 3 of `make bench`: nanoseconds per call of the pure sender decision,
 * policy_decide (src/policy.h), over snapshots of 10, 10,000 and 1,000,000 verified
 * senders.
 *
 * Each snapshot has the switch on, four verified and active sending domains and the
 * senders spread over them. The queries are a fixed, shuffled mix, the same proportions
 * at every size: 80% verified senders drawn uniformly from the whole population (so a
 * large snapshot is touched all over, as real traffic would), 15% unknown addresses on an
 * approved domain (sender_not_authorized) and 5% addresses on a domain the account never
 * added (domain_not_approved). Query strings are separate copies, as a parsed From is.
 *
 * One repeat times a pass over every query with clock_gettime(CLOCK_MONOTONIC), after an
 * untimed pass that warms the caches; the sizes take turns within each repeat, so a slow
 * moment on a shared machine falls on all of them. The figure is the median of the
 * repeats. Output: one line of JSON per size, then the last/first ratio, for bench/run.py
 * to read.
 *
 * With --key, each size runs twice, as a send request meets it: the key's own checks
 * around the decision (keys_ip_allowed for the client, then policy_decide, then
 * keys_sender_allowed), once with an unscoped key and once with a key whose senders,
 * domains and allowed_ips are all set (the queries' four domains among them, so what the
 * account allows the key allows too); the two take turns like the sizes, and the last line
 * is the scoped/unscoped ratio of the median at each size (issue 19: within 10%).
 *
 * Usage: bench_policy [--sizes 10,10000,1000000] [--queries N] [--repeats N] [--key] */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keyscope.h"
#include "policy.h"

#define DOMAINS 4
static const char *const domains[DOMAINS] = {"bench.test", "mail.bench.test", "news.example",
					     "shop.example"};

/* A small, fast, deterministic generator (splitmix64), so every run asks the same. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static char *sender_address(size_t i)
{
	char buf[96];
	snprintf(buf, sizeof(buf), "sender%zu.%04zx@%s", i, (i * 2654435761u) & 0xffff,
		 domains[i % DOMAINS]);
	return strdup(buf);
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

struct size_run {
	size_t senders;
	struct policy *p;
	char **q;
	double *t; /* ns per decision, one per repeat */
	size_t allowed;
	const struct store_apikey *key; /* --key: the key the requests come with */
};

/* The client every --key request comes from, inside the scoped key's allowed_ips. */
static const char client_ip[] = "198.51.100.7";

/* --key's two keys: every field of the scoped one set, as a cautious customer would. */
static struct store_apikey unscoped_key, scoped_key = {
	.senders = "alerts@bench.test,billing@bench.test,ceo@news.example,noreply@shop.example,"
		   "support@mail.bench.test",
	.domains = "bench.test,mail.bench.test,news.example,shop.example",
	.allowed_ips = "192.0.2.0/24,203.0.113.0/24,198.51.100.7/32,2001:db8::/32",
};

/* Builds the snapshot of n senders and its queries. */
static int setup(struct size_run *s, size_t n, size_t nq, int repeats)
{
	s->senders = n;
	s->p = policy_new(true);
	s->q = calloc(nq, sizeof(*s->q));
	s->t = calloc((size_t)repeats, sizeof(*s->t));
	if (!s->p || !s->q || !s->t)
		return -1;
	for (int d = 0; d < DOMAINS; d++)
		policy_add_domain(s->p, domains[d], POLICY_DOMAIN_VERIFIED, true);
	for (size_t i = 0; i < n; i++) {
		char *a = sender_address(i);
		policy_add_sender(s->p, a, true);
		free(a);
	}
	for (size_t i = 0; i < nq; i++) {
		uint64_t kind = rng() % 100;
		char buf[96];
		if (kind < 80) {
			s->q[i] = sender_address((size_t)(rng() % n));
			continue;
		}
		if (kind < 95)
			snprintf(buf, sizeof(buf), "unknown%llu@%s",
				 (unsigned long long)(rng() % 1000000), domains[rng() % DOMAINS]);
		else
			snprintf(buf, sizeof(buf), "someone%llu@elsewhere.example",
				 (unsigned long long)(rng() % 1000000));
		s->q[i] = strdup(buf);
	}
	return 0;
}

/* One timed pass over every query; returns ns per decision. */
static double pass(struct size_run *s, size_t nq)
{
	size_t ok = 0;
	double t0 = now_ns();
	if (s->key)
		for (size_t i = 0; i < nq; i++)
			ok += keyscope_ip_allowed(s->key, client_ip) == ERR_OK &&
			      policy_decide(s->p, s->q[i]) == POLICY_ALLOW &&
			      keyscope_sender_allowed(s->key, s->q[i]);
	else
		for (size_t i = 0; i < nq; i++)
			ok += policy_decide(s->p, s->q[i]) == POLICY_ALLOW;
	double ns = (now_ns() - t0) / (double)nq;
	s->allowed = ok;
	return ns;
}

static void teardown(struct size_run *s, size_t nq)
{
	if (s->q)
		for (size_t i = 0; i < nq; i++)
			free(s->q[i]);
	free(s->q);
	free(s->t);
	policy_free(s->p);
}

int main(int argc, char **argv)
{
	const char *sizes = "10,10000,1000000";
	size_t nq = 1000000;
	int repeats = 11;
	bool key = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--key") == 0)
			key = true;
		else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc)
			sizes = argv[++i];
		else if (strcmp(argv[i], "--queries") == 0 && i + 1 < argc)
			nq = strtoull(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
			repeats = atoi(argv[++i]);
		else {
			fprintf(stderr,
				"usage: bench_policy [--sizes 10,10000,1000000] [--queries N] "
				"[--repeats N] [--key]\n");
			return 2;
		}
	}
	if (nq == 0 || repeats < 1) {
		fprintf(stderr, "bench_policy: --queries and --repeats must be positive\n");
		return 2;
	}

	/* As the policy cache prepares every key it reads. */
	keyscope_prepare(&unscoped_key);
	keyscope_prepare(&scoped_key);
	struct size_run runs[8];
	int count = 0;
	char *list = strdup(sizes);
	for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		size_t n = strtoull(tok, NULL, 10);
		if (n == 0 || count == (int)(sizeof(runs) / sizeof(runs[0]))) {
			fprintf(stderr, "bench_policy: bad size '%s' (at most 8 sizes)\n", tok);
			free(list);
			return 2;
		}
		uint64_t seed = rng_state;
		for (int variant = 0; variant < (key ? 2 : 1); variant++) {
			/* Both keys are asked the same queries. */
			rng_state = seed;
			memset(&runs[count], 0, sizeof(runs[count]));
			if (setup(&runs[count], n, nq, repeats) != 0) {
				fprintf(stderr, "bench_policy: out of memory\n");
				free(list);
				return 1;
			}
			if (key)
				runs[count].key = variant ? &scoped_key : &unscoped_key;
			count++;
		}
	}
	free(list);
	if (count == 0)
		return 2;

	/* One untimed pass each warms the caches the way a running daemon's would be; then
	 * the sizes take turns in every repeat, so a slow moment on this shared machine
	 * lands on all of them rather than on one. */
	for (int k = 0; k < count; k++)
		pass(&runs[k], nq);
	for (int r = 0; r < repeats; r++)
		for (int k = 0; k < count; k++) {
			pass(&runs[k], nq); /* re-warm after the other sizes ran */
			runs[k].t[r] = pass(&runs[k], nq);
		}

	for (int k = 0; k < count; k++) {
		struct size_run *s = &runs[k];
		qsort(s->t, (size_t)repeats, sizeof(*s->t), cmp_double);
		printf("{\"senders\": %zu, %s\"ns_median\": %.2f, \"ns_min\": %.2f, "
		       "\"ns_max\": %.2f, \"queries\": %zu, \"repeats\": %d, \"allowed\": %zu, "
		       "\"refused\": %zu}\n",
		       s->senders,
		       !s->key			   ? ""
		       : s->key == &scoped_key ? "\"key\": \"scoped\", "
					   : "\"key\": \"unscoped\", ",
		       s->t[repeats / 2], s->t[0], s->t[repeats - 1], nq, repeats, s->allowed,
		       nq - s->allowed);
	}
	for (int k = 0; key && k + 1 < count; k += 2)
		printf("{\"senders\": %zu, \"scoped_ratio\": %.3f}\n", runs[k].senders,
		       runs[k + 1].t[repeats / 2] / runs[k].t[repeats / 2]);
	if (count > 1 && !key)
		printf("{\"ratio\": %.3f, \"of\": %zu, \"to\": %zu}\n",
		       runs[count - 1].t[repeats / 2] / runs[0].t[repeats / 2],
		       runs[count - 1].senders, runs[0].senders);
	for (int k = 0; k < count; k++)
		teardown(&runs[k], nq);
	return 0;
}
