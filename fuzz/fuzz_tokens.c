/* The token and key shape checks that guard every lookup by secret (session cookie, Verify
 * All link, API key) and the pure functions around them. A check that says "well-formed"
 * must mean exactly "that many base64url characters"; the hashes and derived tokens made
 * from any input must be well-formed themselves. */
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "auth.h"
#include "fuzz.h"

static bool b64url(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* The specification auth_token_wellformed must agree with. */
static bool expected_wellformed(const char *s, size_t len)
{
	if (strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!b64url(s[i]))
			return false;
	return true;
}

/* api.c's authenticate_key, without the HTTP request and the store. */
static bool api_key_shape_ok(const char *key)
{
	size_t prefix = strlen(AUTH_KEY_PREFIX);
	return strncmp(key, AUTH_KEY_PREFIX, prefix) == 0 &&
	       auth_token_wellformed(key + prefix, AUTH_KEY_LEN - 1 - prefix);
}

static void check_hex(const char *h, size_t n)
{
	FUZZ_CHECK(strlen(h) == n, "hash of %zu characters", strlen(h));
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'),
			   "hash '%s' is not lower-case hex", h);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (sodium_init() < 0)
		abort();
	/* What the module makes passes its own checks. */
	char token[AUTH_TOKEN_LEN], key[AUTH_KEY_LEN];
	auth_token_new(token);
	auth_api_key_new(key);
	FUZZ_CHECK(auth_token_wellformed(token, AUTH_TOKEN_LEN - 1), "new token '%s'", token);
	FUZZ_CHECK(api_key_shape_ok(key), "new key '%s'", key);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t lengths[] = {
		0, 1, 12, 32, 43, AUTH_TOKEN_LEN - 1, AUTH_TOKEN_LEN, AUTH_KEY_LEN - 1, 64, 1024};
	char *in = fuzz_cstring(data, size);
	size_t n = strlen(in);

	for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++)
		FUZZ_CHECK(auth_token_wellformed(in, lengths[i]) ==
				   expected_wellformed(in, lengths[i]),
			   "auth_token_wellformed disagrees at length %zu", lengths[i]);
	FUZZ_CHECK(auth_token_wellformed(in, n) == expected_wellformed(in, n),
		   "auth_token_wellformed disagrees at its own length %zu", n);

	/* The session cookie (session_resume) and the Verify All path (api_verify.c). */
	bool cookie_ok = auth_token_wellformed(in, AUTH_TOKEN_LEN - 1);
	FUZZ_CHECK(!cookie_ok || n == 43, "a %zu-character cookie passed", n);

	/* An API key: "pst_" and 43 base64url characters, nothing more. */
	if (api_key_shape_ok(in)) {
		FUZZ_CHECK(n == AUTH_KEY_LEN - 1, "a %zu-character key passed", n);
		FUZZ_CHECK(expected_wellformed(in + 4, 43), "key '%s' passed", in);
	}

	/* What the store keeps for it, and the CSRF token derived from it. */
	char hash[AUTH_HASH_HEX], derived[AUTH_TOKEN_LEN], again[AUTH_TOKEN_LEN];
	auth_token_hash(in, hash);
	check_hex(hash, AUTH_HASH_HEX - 1);
	auth_token_derive("postern csrf v1", in, derived);
	auth_token_derive("postern csrf v1", in, again);
	FUZZ_CHECK(auth_token_wellformed(derived, AUTH_TOKEN_LEN - 1), "derived '%s'", derived);
	FUZZ_CHECK(auth_equal(derived, again), "derivation is not deterministic");
	FUZZ_CHECK(auth_equal(in, in), "input unequal to itself");
	FUZZ_CHECK(auth_equal(in, derived) == (strcmp(in, derived) == 0), "auth_equal vs strcmp");

	/* Comparisons of the input's two halves, of different lengths and contents. */
	char *half = fuzz_cstring(data, size / 2);
	FUZZ_CHECK(auth_equal(in, half) == (strcmp(in, half) == 0), "auth_equal vs strcmp");
	FUZZ_CHECK(auth_equal(half, in) == auth_equal(in, half), "auth_equal is not symmetric");
	free(half);
	free(in);
	return 0;
}
