/* Unit tests for policy: the one sender decision, in the order of DESIGN.md, over addresses
 * normalized as users type them, and the stable reason codes the API and drop log show. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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

/* An account with the feature on, acme.test approved, verified and active, and one
 * verified sender on it. */
static struct policy *enabled_acme(void)
{
	struct policy *p = policy_new(true);
	add_domain(p, "acme.test", POLICY_DOMAIN_VERIFIED, true);
	add_sender(p, "news@acme.test", true);
	return p;
}

static void enabled_without_senders_drops_everything(void **state)
{
	(void)state;
	struct policy *p = policy_new(true);
	add_domain(p, "acme.test", POLICY_DOMAIN_VERIFIED, true);
	assert_decision(p, "news@acme.test", POLICY_NO_SENDERS);
	/* Even where the domain would be refused, the empty list is the reason given. */
	assert_decision(p, "news@unknown.test", POLICY_NO_SENDERS);
	policy_free(p);

	p = policy_new(true);
	assert_decision(p, "news@acme.test", POLICY_NO_SENDERS);
	policy_free(p);
}

static void enabled_with_only_pending_senders_drops_everything(void **state)
{
	(void)state;
	struct policy *p = policy_new(true);
	add_domain(p, "acme.test", POLICY_DOMAIN_VERIFIED, true);
	add_sender(p, "news@acme.test", false);
	add_sender(p, "billing@acme.test", false);
	assert_decision(p, "news@acme.test", POLICY_NO_SENDERS);
	assert_decision(p, "other@acme.test", POLICY_NO_SENDERS);
	assert_decision(p, "news@unknown.test", POLICY_NO_SENDERS);
	policy_free(p);
}

static void disabled_without_senders_allows_approved_domain(void **state)
{
	(void)state;
	struct policy *p = policy_new(false);
	add_domain(p, "acme.test", POLICY_DOMAIN_VERIFIED, true);
	assert_decision(p, "anyone@acme.test", POLICY_ALLOW);
	assert_decision(p, "news+promo@acme.test", POLICY_ALLOW);
	policy_free(p);
}

static void disabled_with_only_pending_senders_is_not_no_senders(void **state)
{
	(void)state;
	struct policy *p = policy_new(false);
	add_domain(p, "acme.test", POLICY_DOMAIN_VERIFIED, true);
	add_sender(p, "news@acme.test", false);
	assert_decision(p, "news@acme.test", POLICY_ALLOW);
	assert_decision(p, "other@acme.test", POLICY_ALLOW);
	assert_decision(p, "news@unknown.test", POLICY_DOMAIN_NOT_APPROVED);
	policy_free(p);
}

static void disabled_does_not_consult_senders(void **state)
{
	(void)state;
	struct policy *p = policy_new(false);
	add_domain(p, "acme.test", POLICY_DOMAIN_VERIFIED, true);
	add_sender(p, "news@acme.test", true);
	add_sender(p, "pending@acme.test", false);
	assert_decision(p, "news@acme.test", POLICY_ALLOW);
	assert_decision(p, "pending@acme.test", POLICY_ALLOW);
	assert_decision(p, "unlisted@acme.test", POLICY_ALLOW);
	policy_free(p);
}

static void disabled_still_checks_domains(void **state)
{
	(void)state;
	struct policy *p = policy_new(false);
	add_domain(p, "pending.test", POLICY_DOMAIN_PENDING, true);
	add_domain(p, "failed.test", POLICY_DOMAIN_FAILED, true);
	add_domain(p, "off.test", POLICY_DOMAIN_VERIFIED, false);
	assert_decision(p, "news@unknown.test", POLICY_DOMAIN_NOT_APPROVED);
	assert_decision(p, "news@pending.test", POLICY_DOMAIN_NOT_VERIFIED);
	assert_decision(p, "news@failed.test", POLICY_DOMAIN_NOT_VERIFIED);
	assert_decision(p, "news@off.test", POLICY_DOMAIN_INACTIVE);
	policy_free(p);
}

static void unlisted_domain_is_not_approved(void **state)
{
	(void)state;
	struct policy *p = enabled_acme();
	assert_decision(p, "news@other.test", POLICY_DOMAIN_NOT_APPROVED);
	/* A verified address is still refused when its domain is not approved. */
	add_sender(p, "news@other.test", true);
	assert_decision(p, "news@other.test", POLICY_DOMAIN_NOT_APPROVED);
	policy_free(p);
}

static void pending_or_failed_domain_is_not_verified(void **state)
{
	(void)state;
	struct policy *p = enabled_acme();
	add_domain(p, "pending.test", POLICY_DOMAIN_PENDING, true);
	add_domain(p, "failed.test", POLICY_DOMAIN_FAILED, true);
	add_sender(p, "news@pending.test", true);
	add_sender(p, "news@failed.test", true);
	assert_decision(p, "news@pending.test", POLICY_DOMAIN_NOT_VERIFIED);
	assert_decision(p, "news@failed.test", POLICY_DOMAIN_NOT_VERIFIED);
	policy_free(p);
}

static void not_verified_wins_over_inactive(void **state)
{
	(void)state;
	struct policy *p = enabled_acme();
	add_domain(p, "pending.test", POLICY_DOMAIN_PENDING, false);
	add_domain(p, "failed.test", POLICY_DOMAIN_FAILED, false);
	add_sender(p, "news@pending.test", true);
	assert_decision(p, "news@pending.test", POLICY_DOMAIN_NOT_VERIFIED);
	assert_decision(p, "news@failed.test", POLICY_DOMAIN_NOT_VERIFIED);
	policy_free(p);
}

static void verified_but_switched_off_domain_is_inactive(void **state)
{
	(void)state;
	struct policy *p = enabled_acme();
	add_domain(p, "off.test", POLICY_DOMAIN_VERIFIED, false);
	add_sender(p, "news@off.test", true);
	assert_decision(p, "news@off.test", POLICY_DOMAIN_INACTIVE);
	policy_free(p);
}

static void domain_is_checked_before_sender(void **state)
{
	(void)state;
	struct policy *p = enabled_acme();
	add_domain(p, "off.test", POLICY_DOMAIN_VERIFIED, false);
	add_domain(p, "pending.test", POLICY_DOMAIN_PENDING, true);
	/* Unlisted or pending addresses on a bad domain get the domain's reason. */
	assert_decision(p, "unlisted@other.test", POLICY_DOMAIN_NOT_APPROVED);
	assert_decision(p, "unlisted@pending.test", POLICY_DOMAIN_NOT_VERIFIED);
	assert_decision(p, "unlisted@off.test", POLICY_DOMAIN_INACTIVE);
	add_sender(p, "waiting@off.test", false);
	assert_decision(p, "waiting@off.test", POLICY_DOMAIN_INACTIVE);
	policy_free(p);
}

static void enabled_refuses_unlisted_address(void **state)
{
	(void)state;
	struct policy *p = enabled_acme();
	assert_decision(p, "billing@acme.test", POLICY_SENDER_NOT_AUTHORIZED);
	policy_free(p);
}

static void enabled_refuses_pending_address(void **state)
{
	(void)state;
	struct policy *p = enabled_acme();
	add_sender(p, "billing@acme.test", false);
	assert_decision(p, "billing@acme.test", POLICY_SENDER_PENDING);
	policy_free(p);
}

static void enabled_allows_verified_address_on_good_domain(void **state)
{
	(void)state;
	struct policy *p = enabled_acme();
	assert_decision(p, "news@acme.test", POLICY_ALLOW);
	policy_free(p);
}

static void address_matches_regardless_of_case(void **state)
{
	(void)state;
	struct policy *p = policy_new(true);
	add_domain(p, "ACME.Test", POLICY_DOMAIN_VERIFIED, true);
	add_sender(p, "news@acme.test", true);
	add_sender(p, "Billing@Acme.TEST", false);
	assert_decision(p, "News@ACME.Test", POLICY_ALLOW);
	assert_decision(p, "NEWS@acme.test", POLICY_ALLOW);
	assert_decision(p, "news@acme.test", POLICY_ALLOW);
	assert_decision(p, "billing@ACME.test", POLICY_SENDER_PENDING);
	policy_free(p);
}

static void idn_address_matches_its_a_label(void **state)
{
	(void)state;
	struct policy *p = policy_new(true);
	/* Stored as the store keeps them: A-labels. */
	policy_add_domain(p, "xn--bcher-kva.example", POLICY_DOMAIN_VERIFIED, true);
	policy_add_sender(p, "user@xn--bcher-kva.example", true);
	assert_decision(p, "user@bücher.example", POLICY_ALLOW);
	assert_decision(p, "User@BÜCHER.example", POLICY_ALLOW);
	assert_decision(p, "user@xn--bcher-kva.example", POLICY_ALLOW);
	assert_decision(p, "other@bücher.example", POLICY_SENDER_NOT_AUTHORIZED);
	/* The U-label's ASCII look-alike is a different domain. */
	assert_decision(p, "user@bucher.example", POLICY_DOMAIN_NOT_APPROVED);
	policy_free(p);
}

static void idn_domain_added_as_u_label_matches(void **state)
{
	(void)state;
	struct policy *p = policy_new(true);
	add_domain(p, "bücher.example", POLICY_DOMAIN_VERIFIED, true);
	add_sender(p, "user@bücher.example", true);
	assert_decision(p, "user@xn--bcher-kva.example", POLICY_ALLOW);
	assert_decision(p, "user@bücher.example", POLICY_ALLOW);
	policy_free(p);
}

static void plus_address_is_a_different_sender(void **state)
{
	(void)state;
	struct policy *p = enabled_acme();
	assert_decision(p, "news+x@acme.test", POLICY_SENDER_NOT_AUTHORIZED);
	assert_decision(p, "News+X@acme.test", POLICY_SENDER_NOT_AUTHORIZED);
	policy_free(p);

	p = policy_new(true);
	add_domain(p, "acme.test", POLICY_DOMAIN_VERIFIED, true);
	add_sender(p, "news+x@acme.test", true);
	assert_decision(p, "news+x@acme.test", POLICY_ALLOW);
	assert_decision(p, "news@acme.test", POLICY_SENDER_NOT_AUTHORIZED);
	assert_decision(p, "news+y@acme.test", POLICY_SENDER_NOT_AUTHORIZED);
	policy_free(p);
}

static void parent_domain_does_not_cover_subdomain(void **state)
{
	(void)state;
	struct policy *p = enabled_acme();
	add_sender(p, "news@mail.acme.test", true);
	assert_decision(p, "news@mail.acme.test", POLICY_DOMAIN_NOT_APPROVED);
	add_domain(p, "mail.acme.test", POLICY_DOMAIN_VERIFIED, true);
	assert_decision(p, "news@mail.acme.test", POLICY_ALLOW);
	policy_free(p);
}

static void subdomain_does_not_cover_parent_domain(void **state)
{
	(void)state;
	struct policy *p = policy_new(true);
	add_domain(p, "mail.acme.test", POLICY_DOMAIN_VERIFIED, true);
	add_sender(p, "news@mail.acme.test", true);
	add_sender(p, "news@acme.test", true);
	assert_decision(p, "news@mail.acme.test", POLICY_ALLOW);
	assert_decision(p, "news@acme.test", POLICY_DOMAIN_NOT_APPROVED);
	assert_decision(p, "news@x.mail.acme.test", POLICY_DOMAIN_NOT_APPROVED);
	policy_free(p);
}

static void sender_pending_then_verified_is_verified(void **state)
{
	(void)state;
	struct policy *p = policy_new(true);
	add_domain(p, "acme.test", POLICY_DOMAIN_VERIFIED, true);
	add_sender(p, "news@acme.test", false);
	assert_decision(p, "news@acme.test", POLICY_NO_SENDERS);
	add_sender(p, "news@acme.test", true);
	assert_decision(p, "news@acme.test", POLICY_ALLOW);
	policy_free(p);
}

static void sender_verified_then_pending_stays_verified(void **state)
{
	(void)state;
	struct policy *p = policy_new(true);
	add_domain(p, "acme.test", POLICY_DOMAIN_VERIFIED, true);
	add_sender(p, "news@acme.test", true);
	add_sender(p, "News@Acme.test", false);
	assert_decision(p, "news@acme.test", POLICY_ALLOW);
	assert_decision(p, "other@acme.test", POLICY_SENDER_NOT_AUTHORIZED);
	policy_free(p);
}

static void sender_verified_twice_still_allows(void **state)
{
	(void)state;
	struct policy *p = policy_new(true);
	add_domain(p, "acme.test", POLICY_DOMAIN_VERIFIED, true);
	add_sender(p, "news@acme.test", true);
	add_sender(p, "news@acme.test", true);
	assert_decision(p, "news@acme.test", POLICY_ALLOW);
	assert_decision(p, "other@acme.test", POLICY_SENDER_NOT_AUTHORIZED);
	assert_decision(p, "news@unknown.test", POLICY_DOMAIN_NOT_APPROVED);
	policy_free(p);
}

/* One address listed pending, then verified (or the other way round) is one verified
 * sender: the flag is kept, and it is counted once. */
static void sender_pending_and_verified_is_one_verified_sender(void **state)
{
	(void)state;
	struct policy *p = policy_new(true);
	add_domain(p, "acme.test", POLICY_DOMAIN_VERIFIED, true);
	add_sender(p, "news@acme.test", false);
	assert_decision(p, "news@acme.test", POLICY_NO_SENDERS);
	add_sender(p, "news@acme.test", true);
	assert_decision(p, "news@acme.test", POLICY_ALLOW);
	add_sender(p, "news@acme.test", false);
	assert_decision(p, "news@acme.test", POLICY_ALLOW);
	add_sender(p, "pending@acme.test", false);
	assert_decision(p, "pending@acme.test", POLICY_SENDER_PENDING);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(enabled_without_senders_drops_everything),
		cmocka_unit_test(enabled_with_only_pending_senders_drops_everything),
		cmocka_unit_test(disabled_without_senders_allows_approved_domain),
		cmocka_unit_test(disabled_with_only_pending_senders_is_not_no_senders),
		cmocka_unit_test(disabled_does_not_consult_senders),
		cmocka_unit_test(disabled_still_checks_domains),
		cmocka_unit_test(unlisted_domain_is_not_approved),
		cmocka_unit_test(pending_or_failed_domain_is_not_verified),
		cmocka_unit_test(not_verified_wins_over_inactive),
		cmocka_unit_test(verified_but_switched_off_domain_is_inactive),
		cmocka_unit_test(domain_is_checked_before_sender),
		cmocka_unit_test(enabled_refuses_unlisted_address),
		cmocka_unit_test(enabled_refuses_pending_address),
		cmocka_unit_test(enabled_allows_verified_address_on_good_domain),
		cmocka_unit_test(address_matches_regardless_of_case),
		cmocka_unit_test(idn_address_matches_its_a_label),
		cmocka_unit_test(idn_domain_added_as_u_label_matches),
		cmocka_unit_test(plus_address_is_a_different_sender),
		cmocka_unit_test(parent_domain_does_not_cover_subdomain),
		cmocka_unit_test(subdomain_does_not_cover_parent_domain),
		cmocka_unit_test(sender_pending_then_verified_is_verified),
		cmocka_unit_test(sender_verified_then_pending_stays_verified),
		cmocka_unit_test(sender_verified_twice_still_allows),
		cmocka_unit_test(sender_pending_and_verified_is_one_verified_sender),
		cmocka_unit_test(reason_codes_are_exact),
		cmocka_unit_test(reason_codes_parse_back),
		cmocka_unit_test(unknown_reason_code_parses_to_minus_one),
		cmocka_unit_test(decision_stays_correct_with_100000_senders),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
