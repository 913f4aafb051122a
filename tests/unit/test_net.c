/* Unit tests for net: which networks a trusted-proxy list holds, and which address of
 * X-Forwarded-For is the client's, so a client behind our proxy is told from the proxy
 * and no client can name an address of its choosing. */
#include "testutil.h"

#include "net.h"

static struct net_list list(const char *text)
{
	struct net_list l;
	char bad[64];
	assert_int_equal(net_parse_list(text, &l, bad, sizeof(bad)), 0);
	return l;
}

static void test_lists_parse_and_refuse_naming_the_entry(void **state)
{
	(void)state;
	struct net_list l;
	char bad[64];
	assert_int_equal(net_parse_list("127.0.0.1, 10.0.0.0/8 ::1,fd00::/8", &l, bad, 64), 0);
	assert_int_equal(l.n, 4);
	assert_int_equal(net_parse_list("", &l, bad, 64), 0);
	assert_int_equal(l.n, 0);
	const char *wrong[] = {"10.0.0.0/33", "proxy.local", "1.2.3.4/", "::1/129", "1.2.3"};
	for (size_t i = 0; i < sizeof(wrong) / sizeof(*wrong); i++) {
		char text[64];
		snprintf(text, sizeof(text), "127.0.0.1, %s", wrong[i]);
		assert_int_equal(net_parse_list(text, &l, bad, 64), -1);
		assert_string_equal(bad, wrong[i]);
	}
}

static void test_contains_by_prefix(void **state)
{
	(void)state;
	struct net_list l = list("10.0.0.0/8 192.168.1.128/25 2001:db8::/32 127.0.0.1");
	assert_true(net_contains(&l, "10.255.0.1"));
	assert_false(net_contains(&l, "11.0.0.1"));
	assert_true(net_contains(&l, "192.168.1.200"));
	assert_false(net_contains(&l, "192.168.1.127"));
	assert_true(net_contains(&l, "2001:db8:ffff::1"));
	assert_false(net_contains(&l, "2001:db9::1"));
	assert_true(net_contains(&l, "127.0.0.1"));
	assert_false(net_contains(&l, "127.0.0.2"));
	assert_false(net_contains(&l, "not an address"));
	assert_false(net_contains(&l, NULL));
}

static const char *client(const struct net_list *l, const char *peer, const char *xff)
{
	static char out[64];
	net_client(l, peer, xff, out, sizeof(out));
	return out;
}

static void test_the_client_is_the_first_hop_that_is_not_ours(void **state)
{
	(void)state;
	struct net_list l = list("127.0.0.1 10.0.0.0/8");
	/* Not from a trusted proxy: the header is the client's own words, and ignored. */
	assert_string_equal(client(&l, "203.0.113.9", "198.51.100.1"), "203.0.113.9");
	/* From our proxy: the address it appended. */
	assert_string_equal(client(&l, "127.0.0.1", "198.51.100.7"), "198.51.100.7");
	/* What the client wrote itself stays to the left of what our proxies appended. */
	assert_string_equal(client(&l, "127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3"),
			    "198.51.100.7");
	/* Only proxies of ours: the leftmost. */
	assert_string_equal(client(&l, "127.0.0.1", "10.0.0.5 , 10.0.0.6"), "10.0.0.5");
	/* Nothing usable: the proxy itself. */
	assert_string_equal(client(&l, "127.0.0.1", NULL), "127.0.0.1");
	assert_string_equal(client(&l, "127.0.0.1", ""), "127.0.0.1");
	/* A malformed hop ends the walk at the last good one. */
	assert_string_equal(client(&l, "127.0.0.1", "198.51.100.7, unknown"), "127.0.0.1");
	assert_string_equal(client(&l, "127.0.0.1", "x\\n2026, 10.0.0.9"), "10.0.0.9");
	/* IPv6 hops. */
	assert_string_equal(client(&l, "127.0.0.1", "2001:db8::5"), "2001:db8::5");
}

/* Only what never leaves the machine may carry a relay password in clear. */
static void test_loopback(void **state)
{
	(void)state;
	const char *yes[] = {"127.0.0.1", "127.1.2.3", "::1", "localhost", "LocalHost"};
	const char *no[] = {"128.0.0.1", "10.0.0.1", "::2", "::ffff:127.0.0.1", "mail.local", ""};
	for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++)
		if (!net_loopback(yes[i]))
			fail_msg("%s is loopback", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
		if (net_loopback(no[i]))
			fail_msg("%s is not loopback", no[i]);
}

/* An IPv6 client counts as its /64; an IPv4 one, and anything else, as it is. */
static void test_client_net(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"},
		{"2001:db8:1:2::9", "2001:db8:1:2::"},
		{"198.51.100.7", "198.51.100.7"},
		{"-", "-"},
	};
	char out[64];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		net_client_net(cases[i][0], out, sizeof(out));
		assert_string_equal(out, cases[i][1]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lists_parse_and_refuse_naming_the_entry),
		cmocka_unit_test(test_contains_by_prefix),
		cmocka_unit_test(test_the_client_is_the_first_hop_that_is_not_ours),
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_client_net),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
