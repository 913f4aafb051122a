/* Unit tests for bounces_plan, the pure part of the report worker: what a parsed report
 * does to the message it is about. Hard bounces suppress, soft ones and other failures are
 * "blocked", delays are deferrals, complaints suppress; only the message's recipients are
 * touched, and a report naming no one is about the only recipient when there is one. */
#include "testutil.h"

#include "bounces.h"

static struct report_rcpt rcpt(const char *email, enum report_action a, const char *status,
			       const char *diagnostic)
{
	struct report_rcpt r = {.action = a};
	snprintf(r.email, sizeof(r.email), "%s", email);
	snprintf(r.status, sizeof(r.status), "%s", status);
	snprintf(r.diagnostic, sizeof(r.diagnostic), "%s", diagnostic);
	return r;
}

static struct report dsn(struct report_rcpt *rcpts, size_t n)
{
	struct report r = {.kind = REPORT_DSN, .rcpts = rcpts, .n = n};
	snprintf(r.reporting_mta, sizeof(r.reporting_mta), "mx.example.test");
	return r;
}

static const char *const two[] = {"ann@example.test", "bob@example.test"};

/* Plans r against the message's recipients rcpts[0..n) and checks how many events and
 * suppressions it makes. */
static void plan(struct bounces_plan *p, const struct report *r, const char *const *rcpts, size_t n,
		 size_t nevents, size_t nsuppress)
{
	bounces_plan(r, "abc123", rcpts, n, p);
	assert_int_equal(p->nevents, nevents);
	assert_int_equal(p->nsuppress, nsuppress);
}

/* The event's data field as a string ("" when absent). */
static const char *field(const struct store_event *e, const char *name, char *buf, size_t n)
{
	cJSON *o = cJSON_Parse(e->data);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	snprintf(buf, n, "%s", cJSON_IsString(v) ? v->valuestring : "");
	cJSON_Delete(o);
	return buf;
}

static void hard_bounce_suppresses(void **state)
{
	(void)state;
	struct report_rcpt rr[] = {
		rcpt("Ann@Example.test", REPORT_FAILED, "5.1.1", "550 5.1.1 user unknown")};
	struct report r = dsn(rr, 1);
	struct bounces_plan p;
	char buf[600];
	plan(&p, &r, two, 2, 1, 1);
	assert_string_equal(p.events[0].type, "message.bounced");
	assert_string_equal(p.events[0].recipient, "ann@example.test");
	assert_string_equal(field(&p.events[0], "type", buf, sizeof(buf)), "bounce");
	assert_string_equal(field(&p.events[0], "status", buf, sizeof(buf)), "5.1.1");
	assert_string_equal(field(&p.events[0], "diagnostic", buf, sizeof(buf)),
			    "550 5.1.1 user unknown");
	assert_string_equal(field(&p.events[0], "source", buf, sizeof(buf)), "dsn");
	assert_string_equal(field(&p.events[0], "reporting_mta", buf, sizeof(buf)),
			    "mx.example.test");
	assert_string_equal(p.suppress[0].email, "ann@example.test");
	assert_string_equal(p.suppress[0].reason, "hard_bounce");
	assert_string_equal(p.suppress[0].message_uid, "abc123");
	assert_string_equal(p.suppress[0].detail, "5.1.1 550 5.1.1 user unknown");
	assert_non_null(strstr(p.detail, "\"applied\":true"));
	bounces_plan_free(&p);
}

static void failure_without_5xx_is_blocked(void **state)
{
	(void)state;
	struct report_rcpt rr[] = {rcpt("bob@example.test", REPORT_FAILED, "4.4.7", "expired")};
	struct report r = dsn(rr, 1);
	struct bounces_plan p;
	char buf[64];
	plan(&p, &r, two, 2, 1, 0);
	assert_string_equal(field(&p.events[0], "type", buf, sizeof(buf)), "blocked");
	bounces_plan_free(&p);
}

static void delayed_is_a_deferral_delivered_nothing(void **state)
{
	(void)state;
	struct report_rcpt rr[] = {
		rcpt("ann@example.test", REPORT_DELAYED, "4.2.0", "mailbox busy"),
		rcpt("bob@example.test", REPORT_DELIVERED, "2.0.0", ""),
	};
	struct report r = dsn(rr, 2);
	struct bounces_plan p;
	char buf[64];
	plan(&p, &r, two, 2, 1, 0);
	assert_string_equal(p.events[0].type, "message.deferred");
	assert_string_equal(field(&p.events[0], "status", buf, sizeof(buf)), "4.2.0");
	assert_string_equal(field(&p.events[0], "source", buf, sizeof(buf)), "dsn");
	bounces_plan_free(&p);
}

static void complaint_suppresses(void **state)
{
	(void)state;
	struct report_rcpt rr[] = {rcpt("bob@example.test", REPORT_COMPLAINT, "", "abuse")};
	struct report r = {.kind = REPORT_ARF, .rcpts = rr, .n = 1};
	snprintf(r.feedback_type, sizeof(r.feedback_type), "abuse");
	snprintf(r.reporting_mta, sizeof(r.reporting_mta), "isp.test");
	struct bounces_plan p;
	char buf[64];
	plan(&p, &r, two, 2, 1, 1);
	assert_string_equal(p.events[0].type, "message.complained");
	assert_string_equal(field(&p.events[0], "feedback_type", buf, sizeof(buf)), "abuse");
	assert_string_equal(field(&p.events[0], "source", buf, sizeof(buf)), "arf");
	assert_string_equal(p.suppress[0].reason, "complaint");
	bounces_plan_free(&p);
}

static void stranger_is_recorded_not_applied(void **state)
{
	(void)state;
	struct report_rcpt rr[] = {rcpt("eve@example.test", REPORT_FAILED, "5.1.1", "unknown")};
	struct report r = dsn(rr, 1);
	struct bounces_plan p;
	plan(&p, &r, two, 2, 0, 0);
	assert_non_null(strstr(p.detail, "eve@example.test"));
	assert_non_null(strstr(p.detail, "\"applied\":false"));
	bounces_plan_free(&p);
}

static void nameless_report_is_about_the_only_recipient(void **state)
{
	(void)state;
	struct report_rcpt rr[] = {rcpt("", REPORT_FAILED, "5.1.1", "no such user")};
	struct report r = {.kind = REPORT_TEXT, .rcpts = rr, .n = 1};
	struct bounces_plan p;
	char buf[64];
	plan(&p, &r, two + 1, 1, 1, 1);
	assert_string_equal(p.events[0].recipient, "bob@example.test");
	assert_string_equal(field(&p.events[0], "source", buf, sizeof(buf)), "text");
	bounces_plan_free(&p);
	/* With two recipients, nobody can tell which one: nothing is applied. */
	plan(&p, &r, two, 2, 0, 0);
	bounces_plan_free(&p);
}

static void named_twice_applied_once(void **state)
{
	(void)state;
	struct report_rcpt rr[] = {
		rcpt("ann@example.test", REPORT_FAILED, "5.1.1", "unknown"),
		rcpt("ANN@example.test", REPORT_FAILED, "5.1.1", "unknown"),
	};
	struct report r = dsn(rr, 2);
	struct bounces_plan p;
	plan(&p, &r, two, 2, 1, 1);
	bounces_plan_free(&p);
}

static void unparsed_plans_nothing(void **state)
{
	(void)state;
	struct report r = {.kind = REPORT_UNPARSED};
	struct bounces_plan p;
	plan(&p, &r, two, 2, 0, 0);
	assert_string_equal(p.detail, "{\"recipients\":[]}");
	bounces_plan_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hard_bounce_suppresses),
		cmocka_unit_test(failure_without_5xx_is_blocked),
		cmocka_unit_test(delayed_is_a_deferral_delivered_nothing),
		cmocka_unit_test(complaint_suppresses),
		cmocka_unit_test(stranger_is_recorded_not_applied),
		cmocka_unit_test(nameless_report_is_about_the_only_recipient),
		cmocka_unit_test(named_twice_applied_once),
		cmocka_unit_test(unparsed_plans_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
