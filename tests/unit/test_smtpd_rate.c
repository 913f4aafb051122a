/* Unit tests for smtpd_rate, the inbound listener's per-address limit: the count per minute,
 * a new minute starting afresh, addresses counted apart, and a full table evicting in turn
 * rather than refusing newcomers or growing. */
#include "testutil.h"

#include "smtpd_rate.h"

static void limit_per_address_and_minute(void **state)
{
	(void)state;
	struct smtpd_rate *r = smtpd_rate_new(3, 16);
	int64_t now = 600;
	for (int i = 0; i < 3; i++) {
		assert_true(smtpd_rate_allows(r, "192.0.2.1", now, 0));
		smtpd_rate_allows(r, "192.0.2.1", now, 1);
	}
	assert_false(smtpd_rate_allows(r, "192.0.2.1", now + 59, 0));
	assert_true(smtpd_rate_allows(r, "192.0.2.2", now, 0));
	assert_true(smtpd_rate_allows(r, "192.0.2.1", now + 60, 0));
	smtpd_rate_free(r);
}

static void full_table_evicts_in_turn(void **state)
{
	(void)state;
	struct smtpd_rate *r = smtpd_rate_new(1, 2);
	smtpd_rate_allows(r, "192.0.2.1", 0, 1);
	smtpd_rate_allows(r, "192.0.2.2", 0, 1);
	assert_false(smtpd_rate_allows(r, "192.0.2.1", 0, 0));
	/* A third address in the same minute takes a slot; it is not refused. */
	assert_true(smtpd_rate_allows(r, "192.0.2.3", 0, 0));
	/* Slots of an earlier minute go first. */
	assert_true(smtpd_rate_allows(r, "192.0.2.4", 60, 0));
	smtpd_rate_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(limit_per_address_and_minute),
		cmocka_unit_test(full_table_evicts_in_turn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
