/* Unit tests for SMTP-IP credentials' pure parts: which key an address sends as when
 * several keys list networks holding it (the most specific network, then the oldest key),
 * and how a key's networks are checked and spelled. */
#include "testutil.h"

#include "keys.h"
#include "policy_cache.h"

/* A table of rows, one network each, made from "id network" pairs. */
static size_t table(struct policy_ip_row *rows, const char *const (*spec)[2], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char bad[64];
		rows[i] = (struct policy_ip_row){.key_id = atoll(spec[i][0]), .key = i};
		assert_int_equal(net_parse_list(spec[i][1], &rows[i].net, bad, sizeof(bad)), 0);
		assert_int_equal(rows[i].net.n, 1);
	}
	policy_ip_sort(rows, n);
	return n;
}

static int64_t sends_as(const struct policy_ip_row *rows, size_t n, const char *ip)
{
	ssize_t i = policy_ip_find(rows, n, ip);
	return i < 0 ? 0 : rows[i].key_id;
}

static void test_the_most_specific_network_wins_then_the_oldest_key(void **state)
{
	(void)state;
	static const char *const spec[][2] = {
		{"7", "10.0.0.0/8"},  {"3", "10.1.0.0/16"}, {"9", "10.1.2.3"},
		{"5", "10.1.0.0/16"}, {"2", "0.0.0.0/0"},   {"4", "fd00::/8"},
		{"8", "fd00:1::/32"}, {"6", "::1"},
	};
	struct policy_ip_row rows[8];
	size_t n = table(rows, spec, 8);
	assert_int_equal(sends_as(rows, n, "10.1.2.3"), 9);  /* a /32 beats every /16 */
	assert_int_equal(sends_as(rows, n, "10.1.2.4"), 3);  /* two /16s: the lower id */
	assert_int_equal(sends_as(rows, n, "10.2.0.1"), 7);  /* the /8 beats the /0 */
	assert_int_equal(sends_as(rows, n, "192.0.2.1"), 2); /* only the /0 */
	assert_int_equal(sends_as(rows, n, "fd00:1::5"), 8);
	assert_int_equal(sends_as(rows, n, "fd00:2::5"), 4);
	assert_int_equal(sends_as(rows, n, "::1"), 6);
	assert_int_equal(sends_as(rows, n, "2001:db8::1"), 0); /* no IPv6 /0: nobody */
	assert_int_equal(sends_as(rows, n, "not an address"), 0);
	assert_int_equal(sends_as(rows, 0, "10.1.2.3"), 0);
}

static void test_networks_are_checked_one_by_one_and_kept_canonical(void **state)
{
	(void)state;
	struct net_list l = {.n = 0};
	char text[STORE_SMTP_IPS_MAX];
	keys_networks_text(&l, text);
	assert_string_equal(text, "");
	const char *good[] = {"127.0.0.1", "10.0.0.0/8", "::1", "2001:DB8:0:0::/32"};
	for (size_t i = 0; i < 4; i++)
		assert_null(keys_network_add(&l, good[i]));
	keys_networks_text(&l, text);
	assert_string_equal(text, "127.0.0.1/32,10.0.0.0/8,::1/128,2001:db8::/32");
	const char *bad[] = {
		"",	   "10.0.0.0/33", "host.local", "10.0.0.0/8,10.1.0.0/16", "1.2.3.4 5.6.7.8",
		"::1/129", "1.2.3.4/",	  NULL};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_non_null(keys_network_add(&l, bad[i]));
	assert_int_equal(l.n, 4);
	while (l.n < NET_MAX)
		assert_null(keys_network_add(&l, "192.0.2.0/24"));
	assert_non_null(keys_network_add(&l, "192.0.2.0/24"));
}

static void test_the_longest_spellings_still_fit_what_a_key_keeps(void **state)
{
	(void)state;
	struct net_list l = {.n = 0};
	char text[STORE_SMTP_IPS_MAX], bad[64];
	const char *why = NULL;
	while (!why)
		why = keys_network_add(&l, "fd12:3456:789a:bcde:f012:3456:789a:bcde/128");
	assert_true(l.n < NET_MAX);
	keys_networks_text(&l, text);
	struct net_list back;
	assert_int_equal(net_parse_list(text, &back, bad, sizeof(bad)), 0);
	assert_int_equal(back.n, l.n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_most_specific_network_wins_then_the_oldest_key),
		cmocka_unit_test(test_networks_are_checked_one_by_one_and_kept_canonical),
		cmocka_unit_test(test_the_longest_spellings_still_fit_what_a_key_keeps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
