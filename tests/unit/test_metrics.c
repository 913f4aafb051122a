/* Unit tests for metrics' renderer: every family has its HELP and TYPE, every label value
 * of its table is shown (0 when nothing was counted), counts land on the right sample,
 * histograms are cumulative and end at +Inf with their count, and the message gauge is
 * left out when the store did not answer. */
#include "testutil.h"

#include "metrics.h"
#include "util.h"

static char *render(const struct metrics_statuses *st)
{
	size_t len;
	char *text = metrics_render(st, &len);
	assert_int_equal(strlen(text), len);
	return text;
}

/* Whether a line of text starts with start (whole: ends with a newline when whole). */
static bool line_starts(const char *text, const char *start, bool whole)
{
	size_t n = strlen(start);
	for (const char *at = text; at && *at; at = strchr(at, '\n'), at = at ? at + 1 : NULL)
		if (strncmp(at, start, n) == 0 && (!whole || at[n] == '\n'))
			return true;
	return false;
}

static void has_line(const char *text, const char *line)
{
	if (!line_starts(text, line, true))
		fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void counts_land_on_their_own_sample(void **state)
{
	(void)state;
	metrics_reset();
	metrics_accepted(METRICS_SMTP);
	metrics_accepted(METRICS_SMTP);
	metrics_refused(METRICS_SENDGRID, (enum metrics_refusal)POLICY_SENDER_NOT_AUTHORIZED);
	metrics_refused(METRICS_NETCORE, METRICS_REFUSED_INVALID);
	metrics_refused(METRICS_SMTP, METRICS_REFUSED_KEY_SCOPE);
	metrics_delivery("sent");
	metrics_delivery("no such status");
	metrics_webhook(METRICS_WEBHOOK_TIMEOUT);
	metrics_dns_check("verified", false);
	metrics_dns_check("verified", true);
	char *text = render(NULL);
	has_line(text, "postern_sends_accepted_total{front_end=\"smtp\"} 2");
	has_line(text, "postern_sends_accepted_total{front_end=\"netcore\"} 0");
	has_line(text, "postern_sends_refused_total{front_end=\"sendgrid\","
		       "reason=\"sender_not_authorized\"} 1");
	has_line(text, "postern_sends_refused_total{front_end=\"netcore\","
		       "reason=\"invalid_request\"} 1");
	has_line(text, "postern_sends_refused_total{front_end=\"smtp\","
		       "reason=\"sender_not_allowed_for_key\"} 1");
	has_line(text, "postern_sends_refused_total{front_end=\"smtp\","
		       "reason=\"domain_not_verified\"} 0");
	assert_null(strstr(text, "reason=\"allow\""));
	has_line(text, "postern_deliveries_total{outcome=\"sent\"} 1");
	has_line(text, "postern_deliveries_total{outcome=\"failed\"} 0");
	has_line(text, "postern_webhook_posts_total{outcome=\"timeout\"} 1");
	has_line(text, "postern_dns_checks_total{outcome=\"verified\"} 1");
	has_line(text, "postern_dns_checks_total{outcome=\"lookup_error\"} 1");
	/* Not started by serve: no start time rather than 1970. */
	assert_null(strstr(text, "postern_process_start_time_seconds"));
	/* The store did not answer: no gauge rather than a wrong one. */
	assert_null(strstr(text, "postern_messages"));
	free(text);
}

static void every_family_has_help_and_type(void **state)
{
	(void)state;
	static const char *const families[][2] = {
		{"postern_build_info", "gauge"},
		{"postern_sends_accepted_total", "counter"},
		{"postern_sends_refused_total", "counter"},
		{"postern_messages", "gauge"},
		{"postern_deliveries_total", "counter"},
		{"postern_relay_reply_seconds", "histogram"},
		{"postern_queue_commit_messages", "histogram"},
		{"postern_webhook_posts_total", "counter"},
		{"postern_dns_checks_total", "counter"},
	};
	struct metrics_statuses st = {{0}};
	char *text = render(&st);
	char line[160];
	for (size_t i = 0; i < ARRAY_LEN(families); i++) {
		snprintf(line, sizeof(line), "# TYPE %s %s", families[i][0], families[i][1]);
		has_line(text, line);
		snprintf(line, sizeof(line), "# HELP %s ", families[i][0]);
		assert_true(line_starts(text, line, false));
	}
	free(text);
}

static void the_gauge_shows_every_status(void **state)
{
	(void)state;
	struct metrics_statuses st = {{0}};
	st.count[0] = 3; /* queued */
	char *text = render(&st);
	has_line(text, "postern_messages{status=\"queued\"} 3");
	for (const char *const *s =
		     (const char *const[]){"scheduled", "sending", "deferred", "sent", "failed",
					   "dropped", "cancelled", NULL};
	     *s; s++) {
		char line[80];
		snprintf(line, sizeof(line), "postern_messages{status=\"%s\"} 0", *s);
		has_line(text, line);
	}
	free(text);
}

static void histograms_are_cumulative(void **state)
{
	(void)state;
	metrics_reset();
	metrics_relay_seconds(0.003);
	metrics_relay_seconds(0.2);
	metrics_relay_seconds(0.25); /* on a bound: in that bucket */
	metrics_relay_seconds(500);
	metrics_commit_size(3);
	char *text = render(NULL);
	has_line(text, "postern_relay_reply_seconds_bucket{le=\"0.005\"} 1");
	has_line(text, "postern_relay_reply_seconds_bucket{le=\"0.1\"} 1");
	has_line(text, "postern_relay_reply_seconds_bucket{le=\"0.25\"} 3");
	has_line(text, "postern_relay_reply_seconds_bucket{le=\"120\"} 3");
	has_line(text, "postern_relay_reply_seconds_bucket{le=\"+Inf\"} 4");
	has_line(text, "postern_relay_reply_seconds_count 4");
	has_line(text, "postern_relay_reply_seconds_sum 500.453000");
	has_line(text, "postern_queue_commit_messages_bucket{le=\"2\"} 0");
	has_line(text, "postern_queue_commit_messages_bucket{le=\"4\"} 1");
	has_line(text, "postern_queue_commit_messages_sum 3.000000");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(counts_land_on_their_own_sample),
		cmocka_unit_test(every_family_has_help_and_type),
		cmocka_unit_test(the_gauge_shows_every_status),
		cmocka_unit_test(histograms_are_cumulative),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
