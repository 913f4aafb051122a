/* Unit tests for auth: argon2id password hashes, password length bounds, random tokens and
 * API keys, token hashes and derivations, constant-time comparison and token shape checks. */
#include "testutil.h"

#include "auth.h"

static int setup_sodium(void **state)
{
	(void)state;
	return auth_init();
}

static bool all_base64url(const char *s)
{
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
	       strlen(s);
}

static void password_hash_is_argon2id_and_verifies(void **state)
{
	(void)state;
	char hash[AUTH_PWHASH_LEN];
	assert_int_equal(auth_password_hash("correct horse battery", hash), 0);
	assert_int_equal(strncmp(hash, "$argon2id$", 10), 0);
	assert_int_equal(auth_password_check(hash, "correct horse battery"), AUTH_MATCH);
}

static void password_verify_rejects_wrong_password(void **state)
{
	(void)state;
	char hash[AUTH_PWHASH_LEN];
	assert_int_equal(auth_password_hash("correct horse battery", hash), 0);
	assert_int_equal(auth_password_check(hash, "correct horse batterY"), AUTH_MISMATCH);
	assert_int_equal(auth_password_check(hash, "correct horse battery "), AUTH_MISMATCH);
	assert_int_equal(auth_password_check(hash, "correct horse"), AUTH_MISMATCH);
	assert_int_equal(auth_password_check(hash, ""), AUTH_MISMATCH);
}

static void password_verify_rejects_malformed_hash(void **state)
{
	(void)state;
	assert_int_equal(auth_password_check("", "password"), AUTH_MISMATCH);
	assert_int_equal(auth_password_check("password", "password"), AUTH_MISMATCH);
	assert_int_equal(auth_password_check("$argon2id$", "password"), AUTH_MISMATCH);
}

static void password_check_without_a_user_never_matches(void **state)
{
	(void)state;
	assert_int_equal(auth_password_check(NULL, "correct horse battery"), AUTH_MISMATCH);
	assert_int_equal(auth_password_check(NULL, ""), AUTH_MISMATCH);
}

static void password_hash_is_salted(void **state)
{
	(void)state;
	char a[AUTH_PWHASH_LEN], b[AUTH_PWHASH_LEN];
	assert_int_equal(auth_password_hash("same password", a), 0);
	assert_int_equal(auth_password_hash("same password", b), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(auth_password_check(a, "same password"), AUTH_MATCH);
	assert_int_equal(auth_password_check(b, "same password"), AUTH_MATCH);
}

static void password_acceptable_requires_8_to_1024_characters(void **state)
{
	(void)state;
	static const struct {
		size_t len;
		bool acceptable;
	} cases[] = {{0, false}, {7, false}, {8, true}, {1024, true}, {1025, false}};
	char pw[AUTH_PASSWORD_MAX + 2];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tu_repeat(pw, 'p', cases[i].len);
		if (auth_password_acceptable(pw) != cases[i].acceptable)
			fail_msg("a password of %zu characters: expected %s", cases[i].len,
				 cases[i].acceptable ? "acceptable" : "refused");
	}
}

static void token_new_is_43_base64url_characters(void **state)
{
	(void)state;
	char t[AUTH_TOKEN_LEN];
	auth_token_new(t);
	assert_int_equal(strlen(t), 43);
	assert_true(all_base64url(t));
	assert_true(auth_token_wellformed(t, AUTH_TOKEN_LEN - 1));
}

static void token_new_differs_between_calls(void **state)
{
	(void)state;
	char a[AUTH_TOKEN_LEN], b[AUTH_TOKEN_LEN];
	auth_token_new(a);
	auth_token_new(b);
	assert_string_not_equal(a, b);
}

static void api_key_new_has_prefix_and_fixed_length(void **state)
{
	(void)state;
	char a[AUTH_KEY_LEN], b[AUTH_KEY_LEN];
	auth_api_key_new(a);
	auth_api_key_new(b);
	assert_int_equal(strncmp(a, AUTH_KEY_PREFIX, 4), 0);
	assert_int_equal(strncmp(a, "pst_", 4), 0);
	assert_int_equal(strlen(a), AUTH_KEY_LEN - 1);
	assert_true(all_base64url(a + 4));
	assert_string_not_equal(a, b);
}

static void token_hash_is_64_hex_characters(void **state)
{
	(void)state;
	char h[AUTH_HASH_HEX];
	auth_token_hash("some token", h);
	assert_int_equal(strlen(h), 64);
	assert_int_equal(strspn(h, "0123456789abcdef"), 64);
}

static void token_hash_is_deterministic_and_distinguishes_tokens(void **state)
{
	(void)state;
	char t[AUTH_TOKEN_LEN], h1[AUTH_HASH_HEX], h2[AUTH_HASH_HEX], h3[AUTH_HASH_HEX];
	auth_token_new(t);
	auth_token_hash(t, h1);
	auth_token_hash(t, h2);
	assert_string_equal(h1, h2);

	t[0] = t[0] == 'A' ? 'B' : 'A';
	auth_token_hash(t, h3);
	assert_string_not_equal(h1, h3);
	/* The stored value is not the token itself. */
	assert_string_not_equal(h1, t);
}

static void token_derive_depends_on_purpose_and_token(void **state)
{
	(void)state;
	char t1[AUTH_TOKEN_LEN], t2[AUTH_TOKEN_LEN];
	char a[AUTH_TOKEN_LEN], b[AUTH_TOKEN_LEN], c[AUTH_TOKEN_LEN], d[AUTH_TOKEN_LEN];
	auth_token_new(t1);
	auth_token_new(t2);

	auth_token_derive("csrf", t1, a);
	auth_token_derive("csrf", t1, b);
	assert_string_equal(a, b);
	assert_true(auth_token_wellformed(a, AUTH_TOKEN_LEN - 1));
	assert_string_not_equal(a, t1);

	auth_token_derive("verify", t1, c);
	assert_string_not_equal(a, c);

	auth_token_derive("csrf", t2, d);
	assert_string_not_equal(a, d);
}

static void equal_compares_whole_strings(void **state)
{
	(void)state;
	assert_true(auth_equal("abcdef", "abcdef"));
	assert_false(auth_equal("abcdef", "abcdeg"));
	assert_false(auth_equal("Abcdef", "abcdef"));
	assert_false(auth_equal("abcdef", "abcde"));
	assert_false(auth_equal("abcde", "abcdef"));
	assert_false(auth_equal("", "abcdef"));
	assert_false(auth_equal("abcdef", ""));
	assert_true(auth_equal("", ""));
}

static void token_wellformed_accepts_only_base64url_of_exact_length(void **state)
{
	(void)state;
	char t[AUTH_TOKEN_LEN], bad[AUTH_TOKEN_LEN];
	auth_token_new(t);
	assert_true(auth_token_wellformed(t, 43));
	assert_false(auth_token_wellformed(t, 42));
	assert_false(auth_token_wellformed(t, 44));
	assert_false(auth_token_wellformed("", 43));

	const char invalid[] = {'+', '/', '=', ' ', '.', '%', '\n'};
	for (size_t i = 0; i < sizeof(invalid); i++) {
		strcpy(bad, t);
		bad[20] = invalid[i];
		assert_false(auth_token_wellformed(bad, 43));
	}
	/* Truncating a valid token changes its length, so it is not well formed. */
	strcpy(bad, t);
	bad[42] = '\0';
	assert_false(auth_token_wellformed(bad, 43));
}

static int compare_ids(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Message ids come from a per-thread stream: lower-case hex, and no two alike. */
static void unique_hex_is_hex_and_never_repeats(void **state)
{
	(void)state;
	enum { N = 20000 };
	static char ids[N][33];
	for (int i = 0; i < N; i++) {
		auth_unique_hex(ids[i], 16);
		assert_int_equal(strlen(ids[i]), 32);
		assert_int_equal(strspn(ids[i], "0123456789abcdef"), 32);
	}
	qsort(ids, N, sizeof(ids[0]), compare_ids);
	for (int i = 1; i < N; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(password_hash_is_argon2id_and_verifies),
		cmocka_unit_test(password_verify_rejects_wrong_password),
		cmocka_unit_test(password_verify_rejects_malformed_hash),
		cmocka_unit_test(password_check_without_a_user_never_matches),
		cmocka_unit_test(password_hash_is_salted),
		cmocka_unit_test(password_acceptable_requires_8_to_1024_characters),
		cmocka_unit_test(token_new_is_43_base64url_characters),
		cmocka_unit_test(token_new_differs_between_calls),
		cmocka_unit_test(api_key_new_has_prefix_and_fixed_length),
		cmocka_unit_test(token_hash_is_64_hex_characters),
		cmocka_unit_test(token_hash_is_deterministic_and_distinguishes_tokens),
		cmocka_unit_test(token_derive_depends_on_purpose_and_token),
		cmocka_unit_test(equal_compares_whole_strings),
		cmocka_unit_test(unique_hex_is_hex_and_never_repeats),
		cmocka_unit_test(token_wellformed_accepts_only_base64url_of_exact_length),
	};
	return cmocka_run_group_tests(tests, setup_sodium, NULL);
}
