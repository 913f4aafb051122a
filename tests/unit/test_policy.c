/* Unit tests for policy: the one sender decision, in the order of DESIGN.md, over addresses
 * normalized as users type them, and the stable reason codes the API and drop log show. */
#include "testutil.h"

#include "addr.h"
#include "policy.h"

#define SCALE_SENDERS 100000

static void normalize(const char *in, char out[ADDR_MAX])
{
	const char *why = NULL;
	if (addr_normalize(in, out, &why) != 0)
		fail_msg("\"%s\" was rejected: %s", in, why ? why : "(no reason)");
}

static void add_sender(struct policy *p, const char *address, bool verified)
{
	char norm[ADDR_MAX];
	normalize(address, norm);
	policy_add_sender(p, norm, verified);
}

static void add_domain(struct policy *p, const char *domain, enum policy_domain_status status,
		       bool active)
{
	char norm[ADDR_DOMAIN_MAX];
	const char *why = NULL;
	if (addr_domain_normalize(domain, norm, &why) != 0)
		fail_msg("domain \"%s\" was rejected: %s", domain, why ? why : "(no reason)");
	policy_add_domain(p, norm, status, active);
}

static void assert_decision(const struct policy *p, const char *from, enum policy_reason expected)
{
	char norm[ADDR_MAX];
	normalize(from, norm);
	enum policy_reason got = policy_decide(p, norm);
	if (got != expected)
		fail_msg("From \"%s\": expected %s, got %s", from, policy_reason_code(expected),
			 policy_reason_code(got));
}

/* A scenario is a script over one policy: a new policy (the switch on or off), domains and
 * senders added as users type them (or as the store keeps them), and the decisions expected
 * for From addresses, in order. */
enum step_kind {
	STEP_END,
	STEP_NEW,
	STEP_DOMAIN,
	STEP_SENDER,
	STEP_STORED_DOMAIN,
	STEP_STORED_SENDER,
	STEP_EXPECT
};

struct step {
	enum step_kind kind;
	const char *name;
	int value;
	bool flag;
};

/* clang-format would spread the braces of each step over four lines. */
/* clang-format off */
#define NEW_POLICY(enabled)                   {STEP_NEW, NULL, 0, enabled}
#define ADD_DOMAIN(domain, status, active)    {STEP_DOMAIN, domain, status, active}
#define ADD_SENDER(address, verified)         {STEP_SENDER, address, 0, verified}
#define STORED_DOMAIN(domain, status, active) {STEP_STORED_DOMAIN, domain, status, active}
#define STORED_SENDER(address, verified)      {STEP_STORED_SENDER, address, 0, verified}
#define EXPECT(from, reason)                  {STEP_EXPECT, from, reason, false}
/* clang-format on */

/* An account with the feature on and acme.test approved, verified and active; and the same
 * with one verified sender on it. */
#define ACME_ON	     NEW_POLICY(true), ADD_DOMAIN("acme.test", POLICY_DOMAIN_VERIFIED, true)
#define ENABLED_ACME ACME_ON, ADD_SENDER("news@acme.test", true)

struct scenario {
	const char *name;
	struct step steps[12];
};

static const struct scenario scenarios[] = {
	{"enabled_without_senders_drops_everything",
	 {ACME_ON, EXPECT("news@acme.test", POLICY_NO_SENDERS),
	  /* Even where the domain would be refused, the empty list is the reason given. */
	  EXPECT("news@unknown.test", POLICY_NO_SENDERS), NEW_POLICY(true),
	  EXPECT("news@acme.test", POLICY_NO_SENDERS)}},
	{"enabled_with_only_pending_senders_drops_everything",
	 {ACME_ON, ADD_SENDER("news@acme.test", false), ADD_SENDER("billing@acme.test", false),
	  EXPECT("news@acme.test", POLICY_NO_SENDERS), EXPECT("other@acme.test", POLICY_NO_SENDERS),
	  EXPECT("news@unknown.test", POLICY_NO_SENDERS)}},
	{"disabled_without_senders_allows_approved_domain",
	 {NEW_POLICY(false), ADD_DOMAIN("acme.test", POLICY_DOMAIN_VERIFIED, true),
	  EXPECT("anyone@acme.test", POLICY_ALLOW), EXPECT("news+promo@acme.test", POLICY_ALLOW)}},
	{"disabled_with_only_pending_senders_is_not_no_senders",
	 {NEW_POLICY(false), ADD_DOMAIN("acme.test", POLICY_DOMAIN_VERIFIED, true),
	  ADD_SENDER("news@acme.test", false), EXPECT("news@acme.test", POLICY_ALLOW),
	  EXPECT("other@acme.test", POLICY_ALLOW),
	  EXPECT("news@unknown.test", POLICY_DOMAIN_NOT_APPROVED)}},
	{"disabled_does_not_consult_senders",
	 {NEW_POLICY(false), ADD_DOMAIN("acme.test", POLICY_DOMAIN_VERIFIED, true),
	  ADD_SENDER("news@acme.test", true), ADD_SENDER("pending@acme.test", false),
	  EXPECT("news@acme.test", POLICY_ALLOW), EXPECT("pending@acme.test", POLICY_ALLOW),
	  EXPECT("unlisted@acme.test", POLICY_ALLOW)}},
	{"disabled_still_checks_domains",
	 {NEW_POLICY(false), ADD_DOMAIN("pending.test", POLICY_DOMAIN_PENDING, true),
	  ADD_DOMAIN("failed.test", POLICY_DOMAIN_FAILED, true),
	  ADD_DOMAIN("off.test", POLICY_DOMAIN_VERIFIED, false),
	  EXPECT("news@unknown.test", POLICY_DOMAIN_NOT_APPROVED),
	  EXPECT("news@pending.test", POLICY_DOMAIN_NOT_VERIFIED),
	  EXPECT("news@failed.test", POLICY_DOMAIN_NOT_VERIFIED),
	  EXPECT("news@off.test", POLICY_DOMAIN_INACTIVE)}},
	{"unlisted_domain_is_not_approved",
	 {ENABLED_ACME, EXPECT("news@other.test", POLICY_DOMAIN_NOT_APPROVED),
	  /* A verified address is still refused when its domain is not approved. */
	  ADD_SENDER("news@other.test", true),
	  EXPECT("news@other.test", POLICY_DOMAIN_NOT_APPROVED)}},
	{"pending_or_failed_domain_is_not_verified",
	 {ENABLED_ACME, ADD_DOMAIN("pending.test", POLICY_DOMAIN_PENDING, true),
	  ADD_DOMAIN("failed.test", POLICY_DOMAIN_FAILED, true),
	  ADD_SENDER("news@pending.test", true), ADD_SENDER("news@failed.test", true),
	  EXPECT("news@pending.test", POLICY_DOMAIN_NOT_VERIFIED),
	  EXPECT("news@failed.test", POLICY_DOMAIN_NOT_VERIFIED)}},
	{"not_verified_wins_over_inactive",
	 {ENABLED_ACME, ADD_DOMAIN("pending.test", POLICY_DOMAIN_PENDING, false),
	  ADD_DOMAIN("failed.test", POLICY_DOMAIN_FAILED, false),
	  ADD_SENDER("news@pending.test", true),
	  EXPECT("news@pending.test", POLICY_DOMAIN_NOT_VERIFIED),
	  EXPECT("news@failed.test", POLICY_DOMAIN_NOT_VERIFIED)}},
	{"verified_but_switched_off_domain_is_inactive",
	 {ENABLED_ACME, ADD_DOMAIN("off.test", POLICY_DOMAIN_VERIFIED, false),
	  ADD_SENDER("news@off.test", true), EXPECT("news@off.test", POLICY_DOMAIN_INACTIVE)}},
	{"domain_is_checked_before_sender",
	 {ENABLED_ACME, ADD_DOMAIN("off.test", POLICY_DOMAIN_VERIFIED, false),
	  ADD_DOMAIN("pending.test", POLICY_DOMAIN_PENDING, true),
	  /* Unlisted or pending addresses on a bad domain get the domain's reason. */
	  EXPECT("unlisted@other.test", POLICY_DOMAIN_NOT_APPROVED),
	  EXPECT("unlisted@pending.test", POLICY_DOMAIN_NOT_VERIFIED),
	  EXPECT("unlisted@off.test", POLICY_DOMAIN_INACTIVE),
	  ADD_SENDER("waiting@off.test", false),
	  EXPECT("waiting@off.test", POLICY_DOMAIN_INACTIVE)}},
	{"enabled_refuses_unlisted_address",
	 {ENABLED_ACME, EXPECT("billing@acme.test", POLICY_SENDER_NOT_AUTHORIZED)}},
	{"enabled_refuses_pending_address",
	 {ENABLED_ACME, ADD_SENDER("billing@acme.test", false),
	  EXPECT("billing@acme.test", POLICY_SENDER_PENDING)}},
	{"enabled_allows_verified_address_on_good_domain",
	 {ENABLED_ACME, EXPECT("news@acme.test", POLICY_ALLOW)}},
	{"address_matches_regardless_of_case",
	 {NEW_POLICY(true), ADD_DOMAIN("ACME.Test", POLICY_DOMAIN_VERIFIED, true),
	  ADD_SENDER("news@acme.test", true), ADD_SENDER("Billing@Acme.TEST", false),
	  EXPECT("News@ACME.Test", POLICY_ALLOW), EXPECT("NEWS@acme.test", POLICY_ALLOW),
	  EXPECT("news@acme.test", POLICY_ALLOW),
	  EXPECT("billing@ACME.test", POLICY_SENDER_PENDING)}},
	{"idn_address_matches_its_a_label",
	 {NEW_POLICY(true),
	  /* Stored as the store keeps them: A-labels. */
	  STORED_DOMAIN("xn--bcher-kva.example", POLICY_DOMAIN_VERIFIED, true),
	  STORED_SENDER("user@xn--bcher-kva.example", true),
	  EXPECT("user@bücher.example", POLICY_ALLOW), EXPECT("User@BÜCHER.example", POLICY_ALLOW),
	  EXPECT("user@xn--bcher-kva.example", POLICY_ALLOW),
	  EXPECT("other@bücher.example", POLICY_SENDER_NOT_AUTHORIZED),
	  /* The U-label's ASCII look-alike is a different domain. */
	  EXPECT("user@bucher.example", POLICY_DOMAIN_NOT_APPROVED)}},
	{"idn_domain_added_as_u_label_matches",
	 {NEW_POLICY(true), ADD_DOMAIN("bücher.example", POLICY_DOMAIN_VERIFIED, true),
	  ADD_SENDER("user@bücher.example", true),
	  EXPECT("user@xn--bcher-kva.example", POLICY_ALLOW),
	  EXPECT("user@bücher.example", POLICY_ALLOW)}},
	{"plus_address_is_a_different_sender",
	 {ENABLED_ACME, EXPECT("news+x@acme.test", POLICY_SENDER_NOT_AUTHORIZED),
	  EXPECT("News+X@acme.test", POLICY_SENDER_NOT_AUTHORIZED), ACME_ON,
	  ADD_SENDER("news+x@acme.test", true), EXPECT("news+x@acme.test", POLICY_ALLOW),
	  EXPECT("news@acme.test", POLICY_SENDER_NOT_AUTHORIZED),
	  EXPECT("news+y@acme.test", POLICY_SENDER_NOT_AUTHORIZED)}},
	{"parent_domain_does_not_cover_subdomain",
	 {ENABLED_ACME, ADD_SENDER("news@mail.acme.test", true),
	  EXPECT("news@mail.acme.test", POLICY_DOMAIN_NOT_APPROVED),
	  ADD_DOMAIN("mail.acme.test", POLICY_DOMAIN_VERIFIED, true),
	  EXPECT("news@mail.acme.test", POLICY_ALLOW)}},
	{"subdomain_does_not_cover_parent_domain",
	 {NEW_POLICY(true), ADD_DOMAIN("mail.acme.test", POLICY_DOMAIN_VERIFIED, true),
	  ADD_SENDER("news@mail.acme.test", true), ADD_SENDER("news@acme.test", true),
	  EXPECT("news@mail.acme.test", POLICY_ALLOW),
	  EXPECT("news@acme.test", POLICY_DOMAIN_NOT_APPROVED),
	  EXPECT("news@x.mail.acme.test", POLICY_DOMAIN_NOT_APPROVED)}},
	{"sender_pending_then_verified_is_verified",
	 {ACME_ON, ADD_SENDER("news@acme.test", false), EXPECT("news@acme.test", POLICY_NO_SENDERS),
	  ADD_SENDER("news@acme.test", true), EXPECT("news@acme.test", POLICY_ALLOW)}},
	{"sender_verified_then_pending_stays_verified",
	 {ACME_ON, ADD_SENDER("news@acme.test", true), ADD_SENDER("News@Acme.test", false),
	  EXPECT("news@acme.test", POLICY_ALLOW),
	  EXPECT("other@acme.test", POLICY_SENDER_NOT_AUTHORIZED)}},
	{"sender_verified_twice_still_allows",
	 {ACME_ON, ADD_SENDER("news@acme.test", true), ADD_SENDER("news@acme.test", true),
	  EXPECT("news@acme.test", POLICY_ALLOW),
	  EXPECT("other@acme.test", POLICY_SENDER_NOT_AUTHORIZED),
	  EXPECT("news@unknown.test", POLICY_DOMAIN_NOT_APPROVED)}},
	/* One address listed pending, then verified (or the other way round) is one verified
	 * sender: the flag is kept, and it is counted once. */
	{"sender_pending_and_verified_is_one_verified_sender",
	 {ACME_ON, ADD_SENDER("news@acme.test", false), EXPECT("news@acme.test", POLICY_NO_SENDERS),
	  ADD_SENDER("news@acme.test", true), EXPECT("news@acme.test", POLICY_ALLOW),
	  ADD_SENDER("news@acme.test", false), EXPECT("news@acme.test", POLICY_ALLOW),
	  ADD_SENDER("pending@acme.test", false),
	  EXPECT("pending@acme.test", POLICY_SENDER_PENDING)}},
};

#define SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

static void run_scenario(void **state)
{
	const struct scenario *s = *state;
	struct policy *p = NULL;
	for (const struct step *st = s->steps; st->kind != STEP_END; st++) {
		switch (st->kind) {
		case STEP_NEW:
			policy_free(p);
			p = policy_new(st->flag);
			break;
		case STEP_DOMAIN:
			add_domain(p, st->name, (enum policy_domain_status)st->value, st->flag);
			break;
		case STEP_SENDER:
			add_sender(p, st->name, st->flag);
			break;
		case STEP_STORED_DOMAIN:
			policy_add_domain(p, st->name, (enum policy_domain_status)st->value,
					  st->flag);
			break;
		case STEP_STORED_SENDER:
			policy_add_sender(p, st->name, st->flag);
			break;
		case STEP_EXPECT:
			assert_decision(p, st->name, (enum policy_reason)st->value);
			break;
		case STEP_END:
			break;
		}
	}
	policy_free(p);
}

static void reason_codes_are_exact(void **state)
{
	(void)state;
	assert_int_equal(POLICY_REASON_COUNT, 7);
	assert_string_equal(policy_reason_code(POLICY_ALLOW), "allow");
	assert_string_equal(policy_reason_code(POLICY_NO_SENDERS), "sender_auth_no_senders");
	assert_string_equal(policy_reason_code(POLICY_DOMAIN_NOT_APPROVED), "domain_not_approved");
	assert_string_equal(policy_reason_code(POLICY_DOMAIN_NOT_VERIFIED), "domain_not_verified");
	assert_string_equal(policy_reason_code(POLICY_DOMAIN_INACTIVE), "domain_inactive");
	assert_string_equal(policy_reason_code(POLICY_SENDER_NOT_AUTHORIZED),
			    "sender_not_authorized");
	assert_string_equal(policy_reason_code(POLICY_SENDER_PENDING),
			    "sender_pending_verification");
}

static void reason_codes_parse_back(void **state)
{
	(void)state;
	for (int r = POLICY_ALLOW; r < POLICY_REASON_COUNT; r++) {
		const char *code = policy_reason_code((enum policy_reason)r);
		if (policy_reason_parse(code) != r)
			fail_msg("\"%s\" parses to %d, not %d", code, policy_reason_parse(code), r);
	}
}

static void unknown_reason_code_parses_to_minus_one(void **state)
{
	(void)state;
	assert_int_equal(policy_reason_parse(""), -1);
	assert_int_equal(policy_reason_parse("unknown"), -1);
	assert_int_equal(policy_reason_parse("ALLOW"), -1);
	assert_int_equal(policy_reason_parse("Domain_Inactive"), -1);
	assert_int_equal(policy_reason_parse("sender_pending"), -1);
	assert_int_equal(policy_reason_parse("domain_inactive "), -1);
	/* A value outside the enum still has a printable code, which is no reason. */
	const char *code = policy_reason_code(POLICY_REASON_COUNT);
	assert_non_null(code);
	assert_int_equal(policy_reason_parse(code), -1);
}

static void decision_stays_correct_with_100000_senders(void **state)
{
	(void)state;
	struct policy *p = policy_new(true);
	char addr[ADDR_MAX];
	add_domain(p, "acme.test", POLICY_DOMAIN_VERIFIED, true);
	add_domain(p, "off.test", POLICY_DOMAIN_VERIFIED, false);
	/* Every third sender is pending; the rest are verified. */
	for (int i = 0; i < SCALE_SENDERS; i++) {
		snprintf(addr, sizeof(addr), "user%d@acme.test", i);
		policy_add_sender(p, addr, i % 3 != 0);
	}
	for (int i = 0; i < SCALE_SENDERS; i++) {
		snprintf(addr, sizeof(addr), "user%d@acme.test", i);
		enum policy_reason expected = i % 3 != 0 ? POLICY_ALLOW : POLICY_SENDER_PENDING;
		enum policy_reason got = policy_decide(p, addr);
		if (got != expected)
			fail_msg("%s: expected %s, got %s", addr, policy_reason_code(expected),
				 policy_reason_code(got));
	}
	snprintf(addr, sizeof(addr), "user%d@acme.test", SCALE_SENDERS);
	assert_int_equal(policy_decide(p, addr), POLICY_SENDER_NOT_AUTHORIZED);
	assert_int_equal(policy_decide(p, "user1@other.test"), POLICY_DOMAIN_NOT_APPROVED);
	assert_int_equal(policy_decide(p, "user1@off.test"), POLICY_DOMAIN_INACTIVE);
	policy_free(p);
}

/* Monitor mode: what on would refuse for a sender reason is let through and named; what
 * it refuses for a domain reason is refused as in every mode. */
static void assert_judged(const struct policy *p, const char *from, enum policy_reason verdict,
			  enum policy_reason monitored)
{
	enum policy_reason m = POLICY_REASON_COUNT;
	enum policy_reason got = policy_judge(p, from, &m);
	if (got != verdict || m != monitored)
		fail_msg("From %s: expected %s (monitored %s), got %s (monitored %s)", from,
			 policy_reason_code(verdict), policy_reason_code(monitored),
			 policy_reason_code(got), policy_reason_code(m));
	assert_int_equal(policy_decide(p, from), verdict);
}

static void monitor_lets_sender_reasons_through_and_names_them(void **state)
{
	(void)state;
	struct policy *p = policy_new_mode(POLICY_MODE_MONITOR);
	assert_int_equal(policy_mode(p), POLICY_MODE_MONITOR);
	policy_add_domain(p, "acme.test", POLICY_DOMAIN_VERIFIED, true);
	policy_add_domain(p, "off.test", POLICY_DOMAIN_VERIFIED, false);
	policy_add_domain(p, "new.test", POLICY_DOMAIN_PENDING, true);
	/* Nothing verified yet: on would drop everything. */
	assert_judged(p, "a@acme.test", POLICY_ALLOW, POLICY_NO_SENDERS);
	assert_judged(p, "a@off.test", POLICY_DOMAIN_INACTIVE, POLICY_ALLOW);
	assert_judged(p, "a@new.test", POLICY_DOMAIN_NOT_VERIFIED, POLICY_ALLOW);
	assert_judged(p, "a@nowhere.test", POLICY_DOMAIN_NOT_APPROVED, POLICY_ALLOW);
	policy_add_sender(p, "ok@acme.test", true);
	policy_add_sender(p, "wait@acme.test", false);
	assert_judged(p, "ok@acme.test", POLICY_ALLOW, POLICY_ALLOW);
	assert_judged(p, "wait@acme.test", POLICY_ALLOW, POLICY_SENDER_PENDING);
	assert_judged(p, "who@acme.test", POLICY_ALLOW, POLICY_SENDER_NOT_AUTHORIZED);
	assert_judged(p, "who@off.test", POLICY_DOMAIN_INACTIVE, POLICY_ALLOW);
	/* The preflight's question: on, now. */
	assert_int_equal(policy_decide_if_on(p, "who@acme.test"), POLICY_SENDER_NOT_AUTHORIZED);
	assert_int_equal(policy_decide_if_on(p, "ok@acme.test"), POLICY_ALLOW);
	assert_string_equal(policy_sender_status(p, "ok@acme.test"), "verified");
	assert_string_equal(policy_sender_status(p, "wait@acme.test"), "pending");
	assert_string_equal(policy_sender_status(p, "who@acme.test"), "unlisted");
	policy_free(p);
}

static void off_and_on_never_name_a_monitored_reason(void **state)
{
	(void)state;
	for (int mode = POLICY_MODE_OFF; mode <= POLICY_MODE_ON; mode += 2) {
		struct policy *p = policy_new_mode((enum policy_mode)mode);
		policy_add_domain(p, "acme.test", POLICY_DOMAIN_VERIFIED, true);
		policy_add_sender(p, "ok@acme.test", true);
		assert_judged(p, "who@acme.test",
			      mode == POLICY_MODE_ON ? POLICY_SENDER_NOT_AUTHORIZED : POLICY_ALLOW,
			      POLICY_ALLOW);
		assert_int_equal(policy_decide_if_on(p, "who@acme.test"),
				 POLICY_SENDER_NOT_AUTHORIZED);
		policy_free(p);
	}
}

static void modes_map_the_stored_pair_and_names(void **state)
{
	(void)state;
	assert_int_equal(policy_mode_of(false, false), POLICY_MODE_OFF);
	assert_int_equal(policy_mode_of(false, true), POLICY_MODE_MONITOR);
	/* Monitor means something only while the switch is off. */
	assert_int_equal(policy_mode_of(true, true), POLICY_MODE_ON);
	assert_int_equal(policy_mode_of(true, false), POLICY_MODE_ON);
	for (int m = 0; m < POLICY_MODE_COUNT; m++)
		assert_int_equal(policy_mode_parse(policy_mode_name((enum policy_mode)m)), m);
	assert_string_equal(policy_mode_name(POLICY_MODE_MONITOR), "monitor");
	assert_int_equal(policy_mode_parse("Monitor"), -1);
	assert_int_equal(policy_mode_parse(""), -1);
	assert_int_equal(policy_mode_parse(NULL), -1);
	assert_true(policy_reason_is_sender(POLICY_SENDER_PENDING));
	assert_false(policy_reason_is_sender(POLICY_DOMAIN_NOT_VERIFIED));
	assert_false(policy_reason_is_sender(POLICY_ALLOW));
}

int main(void)
{
	/* One test a scenario, named as the scenario, then the rest. */
	struct CMUnitTest tests[SCENARIOS + 7] = {
		[SCENARIOS + 4] =
			cmocka_unit_test(monitor_lets_sender_reasons_through_and_names_them),
		[SCENARIOS + 5] = cmocka_unit_test(off_and_on_never_name_a_monitored_reason),
		[SCENARIOS + 6] = cmocka_unit_test(modes_map_the_stored_pair_and_names),
		[SCENARIOS + 0] = cmocka_unit_test(reason_codes_are_exact),
		[SCENARIOS + 1] = cmocka_unit_test(reason_codes_parse_back),
		[SCENARIOS + 2] = cmocka_unit_test(unknown_reason_code_parses_to_minus_one),
		[SCENARIOS + 3] = cmocka_unit_test(decision_stays_correct_with_100000_senders),
	};
	for (size_t i = 0; i < SCENARIOS; i++)
		tests[i] = tu_row_test(scenarios[i].name, run_scenario, &scenarios[i]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
