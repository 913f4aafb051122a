/* Unit tests for bounces_plan, the pure part of the report worker: what a parsed report
 * does to the message it is about. Hard bounces suppress, soft ones and other failures are
 * "blocked", delays are deferrals, complaints suppress; only the message's recipients are
 * touched, and a report naming no one is about the only recipient when there is one. */
#include "testutil.h"

#include "bounces.h"
#include "send.h"
#include "util.h"

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

/* A DSN's failure of ann with status: its event's type, and how many it suppresses. */
static void dsn_failure(const char *status, const char *type, size_t nsuppress)
{
	struct report_rcpt rr[] = {rcpt("ann@example.test", REPORT_FAILED, status, "refused")};
	struct report r = dsn(rr, 1);
	struct bounces_plan p;
	char buf[64];
	plan(&p, &r, two, 2, 1, nsuppress);
	assert_string_equal(field(&p.events[0], "type", buf, sizeof(buf)), type);
	bounces_plan_free(&p);
}

static void failure_without_5xx_is_blocked(void **state)
{
	(void)state;
	dsn_failure("4.4.7", "blocked", 0);
	dsn_failure("", "blocked", 0);
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

/* A text report naming no one is about a single-recipient message's recipient: an event,
 * but never a suppression (free text is guessed at). */
static void nameless_report_is_about_the_only_recipient(void **state)
{
	(void)state;
	struct report_rcpt rr[] = {rcpt("", REPORT_FAILED, "5.1.1", "no such user")};
	struct report r = {.kind = REPORT_TEXT, .rcpts = rr, .n = 1};
	struct bounces_plan p;
	char buf[64];
	plan(&p, &r, two + 1, 1, 1, 0);
	assert_string_equal(p.events[0].recipient, "bob@example.test");
	assert_string_equal(field(&p.events[0], "source", buf, sizeof(buf)), "text");
	assert_string_equal(field(&p.events[0], "type", buf, sizeof(buf)), "blocked");
	bounces_plan_free(&p);
	/* With two recipients, nobody can tell which one: nothing is applied. */
	plan(&p, &r, two, 2, 0, 0);
	bounces_plan_free(&p);
}

/* A text report suppresses only a recipient it names, with a status that says the address
 * is bad (report_status_hard); a DSN's mailbox status suppresses, a text's does not. */
static void text_report_suppresses_only_named_bad_addresses(void **state)
{
	(void)state;
	struct report_rcpt hard[] = {rcpt("bob@example.test", REPORT_FAILED, "5.1.1", "550 5.1.1")};
	struct report_rcpt full[] = {rcpt("bob@example.test", REPORT_FAILED, "5.2.2", "552 5.2.2")};
	struct report r = {.kind = REPORT_TEXT, .rcpts = hard, .n = 1};
	struct bounces_plan p;
	char buf[64];
	plan(&p, &r, two + 1, 1, 1, 1);
	assert_string_equal(field(&p.events[0], "type", buf, sizeof(buf)), "bounce");
	bounces_plan_free(&p);
	r.rcpts = full;
	plan(&p, &r, two + 1, 1, 1, 0);
	assert_string_equal(field(&p.events[0], "type", buf, sizeof(buf)), "blocked");
	bounces_plan_free(&p);
	r.kind = REPORT_DSN;
	plan(&p, &r, two + 1, 1, 1, 1);
	bounces_plan_free(&p);
}

/* A DSN's failure for the system, the network, the content or a policy (a blocklisted
 * relay: 5.7.1) says nothing about the address: "blocked", nobody suppressed; one about
 * the address or the mailbox, or unspecified, is a hard bounce. */
static void policy_failure_is_blocked(void **state)
{
	(void)state;
	const char *blocked[] = {"5.7.1", "5.3.0", "5.4.4", "5.6.0"};
	const char *hard[] = {"5.0.0", "5.1.1", "5.2.2", "5.5.0"};
	for (size_t i = 0; i < ARRAY_LEN(blocked); i++)
		dsn_failure(blocked[i], "blocked", 0);
	for (size_t i = 0; i < ARRAY_LEN(hard); i++)
		dsn_failure(hard[i], "bounce", 1);
}

/* A complaint without Original-Rcpt-To names no one: the only recipient's, or nobody's. */
static void nameless_complaint(void **state)
{
	(void)state;
	struct report_rcpt rr[] = {rcpt("", REPORT_COMPLAINT, "", "abuse")};
	struct report r = {.kind = REPORT_ARF, .rcpts = rr, .n = 1};
	struct bounces_plan p;
	plan(&p, &r, two + 1, 1, 1, 1);
	assert_string_equal(p.suppress[0].email, "bob@example.test");
	bounces_plan_free(&p);
	plan(&p, &r, two, 2, 0, 0);
	bounces_plan_free(&p);
}

/* Every recipient of a message is read to match a report, the last of a personalization of
 * SEND_MAX_RECIPIENTS too. */
static void message_recipients_all_read(void **state)
{
	(void)state;
	cJSON *payload = cJSON_CreateObject();
	cJSON *parts = cJSON_AddArrayToObject(payload, "personalizations");
	cJSON *part = cJSON_CreateObject();
	cJSON *to = cJSON_AddArrayToObject(part, "to");
	cJSON_AddItemToArray(parts, part);
	for (int i = 0; i < SEND_MAX_RECIPIENTS; i++) {
		char email[64];
		snprintf(email, sizeof(email), "User%d@Example.test", i);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "email", email);
		cJSON_AddItemToArray(to, o);
	}
	char *json = cJSON_PrintUnformatted(payload);
	char(*rcpts)[ADDR_MAX] = calloc(SEND_MAX_RECIPIENTS, sizeof(*rcpts));
	assert_int_equal(bounces_message_rcpts(json, rcpts, SEND_MAX_RECIPIENTS),
			 SEND_MAX_RECIPIENTS);
	assert_string_equal(rcpts[64], "user64@example.test");
	assert_string_equal(rcpts[SEND_MAX_RECIPIENTS - 1], "user999@example.test");
	free(rcpts);
	free(json);
	cJSON_Delete(payload);
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
		cmocka_unit_test(text_report_suppresses_only_named_bad_addresses),
		cmocka_unit_test(policy_failure_is_blocked),
		cmocka_unit_test(nameless_complaint),
		cmocka_unit_test(message_recipients_all_read),
		cmocka_unit_test(named_twice_applied_once),
		cmocka_unit_test(unparsed_plans_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
