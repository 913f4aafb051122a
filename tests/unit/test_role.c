/* Unit tests for role: the permission matrix against the product design's table, role
 * names in both directions, and refusals for values outside the enums. */
#include "testutil.h"

#include "role.h"

static const enum role all_roles[] = {ROLE_ADMIN, ROLE_TECHNICAL, ROLE_ANALYTICS, ROLE_MARKETING};

static void matrix_covers_four_roles_and_thirteen_permissions(void **state)
{
	(void)state;
	/* A new role or permission needs a row or column in the tests below. */
	assert_int_equal(ROLE_COUNT, 4);
	assert_int_equal(PERM_COUNT, 13);
}

/* The matrix, as the product design states it: which of admin, technical, analytics and
 * marketing may use each permission. Each row runs as a test of its own, under its name. */
static const struct matrix_row {
	const char *name;
	enum perm perm;
	bool allowed[4]; /* in the order of all_roles */
} matrix[] = {
	{"every_role_may_add_senders", PERM_SENDER_ADD, {true, true, true, true}},
	{"marketing_may_not_toggle_sender_authorization",
	 PERM_SENDER_TOGGLE,
	 {true, true, true, false}},
	{"marketing_may_not_remove_senders", PERM_SENDER_REMOVE, {true, true, true, false}},
	{"only_admin_may_verify_senders", PERM_SENDER_VERIFY, {true, false, false, false}},
	{"only_admin_may_set_sender_confirmation",
	 PERM_SENDER_CONFIRMATION,
	 {true, false, false, false}},
	{"admin_and_technical_may_manage_domains", PERM_DOMAIN_MANAGE, {true, true, false, false}},
	{"only_admin_may_manage_users", PERM_USER_MANAGE, {true, false, false, false}},
	{"admin_and_technical_may_manage_keys", PERM_KEY_MANAGE, {true, true, false, false}},
	{"admin_and_technical_may_cancel_messages",
	 PERM_MESSAGE_CANCEL,
	 {true, true, false, false}},
	{"admin_and_technical_may_manage_webhooks",
	 PERM_WEBHOOK_MANAGE,
	 {true, true, false, false}},
	{"admin_and_technical_may_manage_suppressions",
	 PERM_SUPPRESSION_MANAGE,
	 {true, true, false, false}},
	{"every_role_may_read", PERM_READ, {true, true, true, true}},
	{"every_role_may_use_unrestricted_actions", PERM_NONE, {true, true, true, true}},
};

#define MATRIX_ROWS (sizeof(matrix) / sizeof(matrix[0]))

static void assert_row(void **state)
{
	const struct matrix_row *row = *state;
	for (size_t i = 0; i < 4; i++) {
		if (role_can(all_roles[i], row->perm) != row->allowed[i])
			fail_msg("role %s %s be allowed %s", role_name(all_roles[i]),
				 row->allowed[i] ? "should" : "should not", perm_name(row->perm));
	}
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
	struct CMUnitTest tests[1 + MATRIX_ROWS + 5] = {
		[0] = cmocka_unit_test(matrix_covers_four_roles_and_thirteen_permissions),
		[1 + MATRIX_ROWS + 0] = cmocka_unit_test(role_parse_and_name_round_trip),
		[1 + MATRIX_ROWS + 1] = cmocka_unit_test(role_parse_rejects_unknown_names),
		[1 + MATRIX_ROWS + 2] = cmocka_unit_test(role_name_of_out_of_range_role_is_unknown),
		[1 + MATRIX_ROWS + 3] =
			cmocka_unit_test(role_can_refuses_out_of_range_role_or_permission),
		[1 + MATRIX_ROWS + 4] =
			cmocka_unit_test(perm_names_are_distinct_and_out_of_range_is_unknown),
	};
	for (size_t i = 0; i < MATRIX_ROWS; i++)
		tests[1 + i] = tu_row_test(matrix[i].name, assert_row, &matrix[i]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
