/* Unit tests for a key's scopes (issue 19): which purposes a key's stored scopes text
 * grants, for the send routes and SMTP (mail.send) and the management API (manage). */
#include "testutil.h"

#include "keys.h"

static bool has(const char *scopes, enum keys_scope scope)
{
	struct store_apikey k = {0};
	snprintf(k.scopes, sizeof(k.scopes), "%s", scopes);
	return keys_has_scope(&k, scope);
}

static void test_each_stored_form_grants_exactly_its_scopes(void **state)
{
	(void)state;
	assert_true(has("mail.send", KEYS_SCOPE_MAIL_SEND));
	assert_false(has("mail.send", KEYS_SCOPE_MANAGE));
	assert_true(has("manage", KEYS_SCOPE_MANAGE));
	assert_false(has("manage", KEYS_SCOPE_MAIL_SEND));
	assert_true(has("mail.send,manage", KEYS_SCOPE_MAIL_SEND));
	assert_true(has("mail.send,manage", KEYS_SCOPE_MANAGE));
	assert_true(has("manage,mail.send", KEYS_SCOPE_MAIL_SEND));
}

static void test_a_key_without_scopes_only_sends(void **state)
{
	(void)state;
	/* Keys made before scopes existed were send keys. */
	assert_true(has("", KEYS_SCOPE_MAIL_SEND));
	assert_false(has("", KEYS_SCOPE_MANAGE));
}

static void test_a_scope_matches_whole_entries_only(void **state)
{
	(void)state;
	assert_false(has("manager", KEYS_SCOPE_MANAGE));
	assert_false(has("mail.sender", KEYS_SCOPE_MAIL_SEND));
	assert_false(has("mail", KEYS_SCOPE_MAIL_SEND));
	assert_false(has("xmanage,mail.sendx", KEYS_SCOPE_MANAGE));
	assert_false(has("xmanage,mail.sendx", KEYS_SCOPE_MAIL_SEND));
	assert_true(has(",,manage,", KEYS_SCOPE_MANAGE));
	assert_false(has(",,", KEYS_SCOPE_MAIL_SEND));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_stored_form_grants_exactly_its_scopes),
		cmocka_unit_test(test_a_key_without_scopes_only_sends),
		cmocka_unit_test(test_a_scope_matches_whole_entries_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
