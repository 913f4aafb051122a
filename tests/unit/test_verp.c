/* Unit tests for verp: the return path a message leaves with, read back from what comes to
 * the bounce listener; a tag computed apart (Python's hashlib BLAKE2b, the same derivation
 * as libsodium's KDF and keyed generichash), and every shape of address it must refuse. */
#include "testutil.h"

#include <sodium.h>

#include "addr.h"
#include "util.h"
#include "verp.h"

#define UID    "0123456789abcdef0123456789abcdef"
#define DOMAIN "bounces.example.net"

static unsigned char key[VERP_KEY_LEN];

static int setup(void **state)
{
	(void)state;
	unsigned char master[DKIMKEY_MASTER_LEN];
	for (size_t i = 0; i < sizeof(master); i++)
		master[i] = (unsigned char)i;
	verp_key(master, key);
	return 0;
}

static void assert_refused(const char *address)
{
	char uid[VERP_UID_MAX] = "x";
	if (verp_parse(key, DOMAIN, address, uid))
		fail_msg("\"%s\" was accepted as uid \"%s\"", address, uid);
	assert_string_equal(uid, "");
}

static void test_key_and_tag_match_a_vector_computed_apart(void **state)
{
	(void)state;
	/* hashlib.blake2b(b"", key=master, digest_size=32, salt=(1).to_bytes(8,"little")+8*b"\0",
	 * person=b"pstnverp"+8*b"\0"), then blake2b(uid, key=that, digest_size=16)[:5]. */
	char hex[2 * VERP_KEY_LEN + 1];
	sodium_bin2hex(hex, sizeof(hex), key, sizeof(key));
	assert_string_equal(hex,
			    "ecaea521fbf46ce58a849168b088c6e3a119ec0b9d264dc2395eaab9d2757831");
	char out[ADDR_MAX];
	assert_int_equal(verp_address(key, DOMAIN, UID, out, sizeof(out)), 0);
	assert_string_equal(out, "b-" UID "-c5bb6d3f06@" DOMAIN);
}

static void test_round_trip_gives_the_uid_back(void **state)
{
	(void)state;
	const char *uids[] = {UID, "0", "f", "0123456789abcdef0123456789abcdef01234567"};
	for (size_t i = 0; i < ARRAY_LEN(uids); i++) {
		char out[ADDR_MAX], uid[VERP_UID_MAX];
		assert_int_equal(verp_address(key, DOMAIN, uids[i], out, sizeof(out)), 0);
		assert_true(verp_parse(key, DOMAIN, out, uid));
		assert_string_equal(uid, uids[i]);
	}
}

static void test_upper_case_input_is_accepted(void **state)
{
	(void)state;
	char uid[VERP_UID_MAX];
	assert_true(verp_parse(key, DOMAIN,
			       "B-0123456789ABCDEF0123456789ABCDEF-C5BB6D3F06@Bounces.EXAMPLE.net",
			       uid));
	assert_string_equal(uid, UID);
}

static void test_bad_uids_make_no_address(void **state)
{
	(void)state;
	char out[ADDR_MAX];
	const char *bad[] = {"",      "0123456789ABCDEF",
			     "xyz",   "0123456789abcdef0123456789abcdef012345678",
			     "12-34", "12 34"};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		assert_int_equal(verp_address(key, DOMAIN, bad[i], out, sizeof(out)), -1);
	assert_int_equal(verp_address(key, "", UID, out, sizeof(out)), -1);
	/* The address does not fit the buffer given, or the longest address. */
	assert_int_equal(verp_address(key, DOMAIN, UID, out, 20), -1);
	assert_string_equal(out, "");
	char domain[300];
	tu_repeat(domain, 'a', 230);
	assert_int_equal(verp_address(key, domain, UID, out, sizeof(out)), -1);
}

static void test_every_deviation_is_refused(void **state)
{
	(void)state;
	const char *bad[] = {
		"b-" UID "-c5bb6d3f06@other.example.net", /* another domain */
		"b-" UID "-c5bb6d3f06@sub." DOMAIN,	  /* a subdomain */
		"b-" UID "-c5bb6d3f06@" DOMAIN ".",	  /* trailing dot */
		"b-" UID "-c5bb6d3f06",			  /* no @ */
		UID "-c5bb6d3f06@" DOMAIN,		  /* no prefix */
		"x-" UID "-c5bb6d3f06@" DOMAIN,		  /* another prefix */
		"bb-" UID "-c5bb6d3f06@" DOMAIN,	  /* a longer one */
		"b--c5bb6d3f06@" DOMAIN,		  /* an empty uid */
		"b-0123456789abcdef0123456789abcdef012345678-c5bb6d3f06@" DOMAIN, /* 41 digits */
		"b-0123456789abcdeg0123456789abcdef-c5bb6d3f06@" DOMAIN,	  /* not hex */
		"b-" UID "-c5bb6d3f0@" DOMAIN,	  /* tag too short */
		"b-" UID "-c5bb6d3f066@" DOMAIN,  /* tag too long */
		"b-" UID "-c5bb6d3f07@" DOMAIN,	  /* wrong tag */
		"b-" UID "-c5bb6d3f0g@" DOMAIN,	  /* tag not hex */
		"b-" UID "-c5bb6d3f06-x@" DOMAIN, /* something after the tag */
		"b-" UID "-c5bb6d3f06+x@" DOMAIN, /* a sub-address after it */
		"b-" UID "c5bb6d3f06@" DOMAIN,	  /* no dash before the tag */
		"b-" UID "@" DOMAIN,		  /* no tag */
		"b-" UID "-@" DOMAIN,		  /* an empty tag */
		"b-0123456789abcdef0123456789abcde0-c5bb6d3f06@" DOMAIN, /* another uid */
		"",
		"@" DOMAIN,
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		assert_refused(bad[i]);
	char uid[VERP_UID_MAX];
	assert_false(verp_parse(key, "", "b-" UID "-c5bb6d3f06@", uid));
	char longer[400];
	tu_repeat(longer, 'a', 300);
	assert_refused(longer);
}

static void test_a_tag_made_with_another_key_is_refused(void **state)
{
	(void)state;
	unsigned char master[DKIMKEY_MASTER_LEN], other[VERP_KEY_LEN];
	memset(master, 0x5a, sizeof(master));
	verp_key(master, other);
	assert_memory_not_equal(other, key, sizeof(key));
	char out[ADDR_MAX], uid[VERP_UID_MAX];
	assert_int_equal(verp_address(other, DOMAIN, UID, out, sizeof(out)), 0);
	assert_true(verp_parse(other, DOMAIN, out, uid));
	assert_false(verp_parse(key, DOMAIN, out, uid));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_and_tag_match_a_vector_computed_apart),
		cmocka_unit_test(test_round_trip_gives_the_uid_back),
		cmocka_unit_test(test_upper_case_input_is_accepted),
		cmocka_unit_test(test_bad_uids_make_no_address),
		cmocka_unit_test(test_every_deviation_is_refused),
		cmocka_unit_test(test_a_tag_made_with_another_key_is_refused),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
