/* Process-wide metrics in the Prometheus text format: counters and histograms kept in C11
 * atomics (no lock, no allocation when counting), every label value from a fixed table, and
 * a renderer for GET /metrics on the listener of its own that [metrics] listen names. */
#ifndef POSTERN_METRICS_H
#define POSTERN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "policy.h"
#include "store.h"

/* The front ends mail is submitted through. */
enum metrics_front { METRICS_NETCORE, METRICS_SENDGRID, METRICS_SMTP, METRICS_FRONT_COUNT };

/* Why a send was refused: the policy's reasons (their own indices; POLICY_ALLOW unused),
 * then the API key's sender scope, then a malformed request or message. */
enum metrics_refusal {
	METRICS_REFUSED_KEY_SCOPE = POLICY_REASON_COUNT,
	METRICS_REFUSED_INVALID,
	METRICS_REFUSAL_COUNT
};

/* What became of one webhook POST. */
enum metrics_webhook {
	METRICS_WEBHOOK_SUCCESS,
	METRICS_WEBHOOK_HTTP_ERROR, /* the endpoint answered, not with a 2xx */
	METRICS_WEBHOOK_TIMEOUT,
	METRICS_WEBHOOK_NETWORK_ERROR, /* no answer: refused, reset, TLS... */
	METRICS_WEBHOOK_URL_REFUSED,   /* the URL did not resolve or is not allowed */
	METRICS_WEBHOOK_COUNT
};

/* The process started now (wall clock), for postern_process_start_time_seconds. */
void metrics_started(void);
/* A message accepted by a front end (counted once its commit landed). */
void metrics_accepted(enum metrics_front f);
/* A send refused by a front end, and why. */
void metrics_refused(enum metrics_front f, enum metrics_refusal why);
/* A delivery run's outcome: the status it left the message in ("sent", "deferred",
 * "failed", "dropped", "scheduled"). Another string is not counted. */
void metrics_delivery(const char *status);
/* Seconds from the start of a relay transaction to the relay's last reply. */
void metrics_relay_seconds(double seconds);
/* The messages one group commit held. */
void metrics_commit_size(size_t messages);
void metrics_webhook(enum metrics_webhook outcome);
/* A DNS check of a domain: the status it left ("verified", "pending", "failed"), or
 * lookup_error true when a lookup failed. */
void metrics_dns_check(const char *status, bool lookup_error);

/* Messages per status, as the gauge shows them (every account). */
struct metrics_statuses {
	int64_t count[8];
};
/* The exposition text (version 0.0.4) of every metric, malloc'd, its length in *len. st
 * NULL leaves the message gauge out (the store did not answer). */
char *metrics_render(const struct metrics_statuses *st, size_t *len);
/* The http_handler of the metrics listener: GET /metrics, 404 for anything else. arg is
 * the struct store. */
void metrics_handle(void *arg, struct http_request *req);
/* Back to zero (tests). */
void metrics_reset(void);

#endif
