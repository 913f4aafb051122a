/* Unit tests for role: the permission matrix against the product design's table, role
 * names in both directions, and refusals for values outside the enums. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "role.h"

static const enum role all_roles[] = {ROLE_ADMIN, ROLE_TECHNICAL, ROLE_ANALYTICS, ROLE_MARKETING};

/* Checks one row of the matrix: which of admin, technical, analytics, marketing may do p. */
static void assert_row(enum perm p, bool admin, bool technical, bool analytics, bool marketing)
{
	const bool expected[] = {admin, technical, analytics, marketing};
	for (size_t i = 0; i < 4; i++) {
		if (role_can(all_roles[i], p) != expected[i])
			fail_msg("role %s %s be allowed %s", role_name(all_roles[i]),
				 expected[i] ? "should" : "should not", perm_name(p));
	}
}

static void matrix_covers_four_roles_and_nine_permissions(void **state)
{
	(void)state;
	/* A new role or permission needs a row or column in the tests below. */
	assert_int_equal(ROLE_COUNT, 4);
	assert_int_equal(PERM_COUNT, 9);
}

static void every_role_may_add_senders(void **state)
{
	(void)state;
	assert_row(PERM_SENDER_ADD, true, true, true, true);
}

static void marketing_may_not_toggle_sender_authorization(void **state)
{
	(void)state;
	assert_row(PERM_SENDER_TOGGLE, true, true, true, false);
}

static void marketing_may_not_remove_senders(void **state)
{
	(void)state;
	assert_row(PERM_SENDER_REMOVE, true, true, true, false);
}

static void only_admin_may_verify_senders(void **state)
{
	(void)state;
	assert_row(PERM_SENDER_VERIFY, true, false, false, false);
}

static void admin_and_technical_may_manage_domains(void **state)
{
	(void)state;
	assert_row(PERM_DOMAIN_MANAGE, true, true, false, false);
}

static void only_admin_may_manage_users(void **state)
{
	(void)state;
	assert_row(PERM_USER_MANAGE, true, false, false, false);
}

static void admin_and_technical_may_manage_keys(void **state)
{
	(void)state;
	assert_row(PERM_KEY_MANAGE, true, true, false, false);
}

static void every_role_may_read_and_use_unrestricted_actions(void **state)
{
	(void)state;
	assert_row(PERM_READ, true, true, true, true);
	assert_row(PERM_NONE, true, true, true, true);
}

static void role_parse_and_name_round_trip(void **state)
{
	(void)state;
	static const char *const names[] = {"admin", "technical", "analytics", "marketing"};
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(role_parse(names[i]), all_roles[i]);
		assert_string_equal(role_name(all_roles[i]), names[i]);
		assert_int_equal(role_parse(role_name(all_roles[i])), all_roles[i]);
	}
}

static void role_parse_rejects_unknown_names(void **state)
{
	(void)state;
	assert_int_equal(role_parse(""), -1);
	assert_int_equal(role_parse("Admin"), -1);
	assert_int_equal(role_parse("ADMIN"), -1);
	assert_int_equal(role_parse("admin "), -1);
	assert_int_equal(role_parse("root"), -1);
	assert_int_equal(role_parse("unknown"), -1);
	assert_int_equal(role_parse("Technical Team"), -1);
}

static void role_name_of_out_of_range_role_is_unknown(void **state)
{
	(void)state;
	assert_string_equal(role_name(ROLE_COUNT), "unknown");
	assert_string_equal(role_name((enum role) - 1), "unknown");
}

static void role_can_refuses_out_of_range_role_or_permission(void **state)
{
	(void)state;
	for (int p = 0; p < PERM_COUNT; p++) {
		assert_false(role_can(ROLE_COUNT, (enum perm)p));
		assert_false(role_can((enum role) - 1, (enum perm)p));
		assert_false(role_can((enum role)1000, (enum perm)p));
	}
	for (size_t i = 0; i < 4; i++) {
		assert_false(role_can(all_roles[i], PERM_COUNT));
		assert_false(role_can(all_roles[i], (enum perm) - 1));
		assert_false(role_can(all_roles[i], (enum perm)1000));
	}
}

static void perm_names_are_distinct_and_out_of_range_is_unknown(void **state)
{
	(void)state;
	for (int p = 0; p < PERM_COUNT; p++) {
		assert_non_null(perm_name((enum perm)p));
		assert_string_not_equal(perm_name((enum perm)p), "unknown");
		for (int q = 0; q < p; q++)
			assert_string_not_equal(perm_name((enum perm)p), perm_name((enum perm)q));
	}
	assert_string_equal(perm_name(PERM_COUNT), "unknown");
	assert_string_equal(perm_name((enum perm) - 1), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(matrix_covers_four_roles_and_nine_permissions),
		cmocka_unit_test(every_role_may_add_senders),
		cmocka_unit_test(marketing_may_not_toggle_sender_authorization),
		cmocka_unit_test(marketing_may_not_remove_senders),
		cmocka_unit_test(only_admin_may_verify_senders),
		cmocka_unit_test(admin_and_technical_may_manage_domains),
		cmocka_unit_test(only_admin_may_manage_users),
		cmocka_unit_test(admin_and_technical_may_manage_keys),
		cmocka_unit_test(every_role_may_read_and_use_unrestricted_actions),
		cmocka_unit_test(role_parse_and_name_round_trip),
		cmocka_unit_test(role_parse_rejects_unknown_names),
		cmocka_unit_test(role_name_of_out_of_range_role_is_unknown),
		cmocka_unit_test(role_can_refuses_out_of_range_role_or_permission),
		cmocka_unit_test(perm_names_are_distinct_and_out_of_range_is_unknown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
