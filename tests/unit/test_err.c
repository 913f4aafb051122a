/* Unit tests for err: every error value has a stable snake_case code, an HTTP status and a
 * sentence to show, and values outside the table fall back to internal_error. */
#include "testutil.h"

#include "err.h"

static void every_error_has_snake_case_code(void **state)
{
	(void)state;
	for (int e = ERR_OK; e < ERR_COUNT; e++) {
		const struct err_info *info = err_info((enum err)e);
		assert_non_null(info);
		assert_non_null(info->code);
		if (info->code[0] == '\0' ||
		    strspn(info->code, "abcdefghijklmnopqrstuvwxyz_") != strlen(info->code))
			fail_msg("error %d has code \"%s\", not snake_case", e, info->code);
		assert_true(info->code[0] != '_');
	}
}

static void every_error_has_http_status(void **state)
{
	(void)state;
	for (int e = ERR_OK; e < ERR_COUNT; e++) {
		const struct err_info *info = err_info((enum err)e);
		if (info->http_status < 200 || info->http_status > 599)
			fail_msg("%s has status %d", info->code, info->http_status);
	}
}

static void every_error_message_is_a_sentence(void **state)
{
	(void)state;
	for (int e = ERR_OK; e < ERR_COUNT; e++) {
		const struct err_info *info = err_info((enum err)e);
		assert_non_null(info->message);
		size_t n = strlen(info->message);
		if (n < 2 || info->message[n - 1] != '.')
			fail_msg("%s has message \"%s\", not a sentence", info->code,
				 info->message);
	}
}

static void error_codes_are_unique(void **state)
{
	(void)state;
	for (int e = ERR_OK; e < ERR_COUNT; e++)
		for (int f = ERR_OK; f < e; f++)
			if (strcmp(err_info((enum err)e)->code, err_info((enum err)f)->code) == 0)
				fail_msg("errors %d and %d share code %s", f, e,
					 err_info((enum err)e)->code);
}

static void error_statuses_follow_http_semantics(void **state)
{
	(void)state;
	static const struct {
		enum err e;
		const char *code;
		int status;
	} cases[] = {
		{ERR_OK, "ok", 200},
		{ERR_INVALID_JSON, "invalid_json", 400},
		{ERR_INVALID_REQUEST, "invalid_request", 400},
		{ERR_INVALID_CREDENTIALS, "invalid_credentials", 401},
		{ERR_NOT_AUTHENTICATED, "not_authenticated", 401},
		{ERR_CSRF_FAILED, "csrf_failed", 403},
		{ERR_FORBIDDEN, "forbidden", 403},
		{ERR_NOT_FOUND, "not_found", 404},
		{ERR_METHOD_NOT_ALLOWED, "method_not_allowed", 405},
		{ERR_PAYLOAD_TOO_LARGE, "payload_too_large", 413},
		{ERR_TOO_MANY_ATTEMPTS, "too_many_attempts", 429},
		{ERR_STORE_UNAVAILABLE, "store_unavailable", 503},
		{ERR_INTERNAL, "internal_error", 500},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct err_info *info = err_info(cases[i].e);
		assert_string_equal(info->code, cases[i].code);
		assert_int_equal(info->http_status, cases[i].status);
	}
}

static void out_of_range_error_falls_back_to_internal_error(void **state)
{
	(void)state;
	const struct err_info *internal = err_info(ERR_INTERNAL);
	assert_string_equal(internal->code, "internal_error");
	assert_int_equal(internal->http_status, 500);

	assert_ptr_equal(err_info(ERR_COUNT), internal);
	assert_ptr_equal(err_info((enum err) - 1), internal);
	assert_ptr_equal(err_info((enum err)(ERR_COUNT + 100)), internal);
	assert_string_equal(err_info(ERR_COUNT)->code, "internal_error");
	assert_string_equal(err_info((enum err) - 1)->code, "internal_error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_error_has_snake_case_code),
		cmocka_unit_test(every_error_has_http_status),
		cmocka_unit_test(every_error_message_is_a_sentence),
		cmocka_unit_test(error_codes_are_unique),
		cmocka_unit_test(error_statuses_follow_http_semantics),
		cmocka_unit_test(out_of_range_error_falls_back_to_internal_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
