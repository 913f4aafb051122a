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
	/* An IPv4 client as a dual-stack listener sees it is that IPv4 client. */
	assert_true(net_contains(&l, "::ffff:10.1.2.3"));
	assert_true(net_contains(&l, "::ffff:127.0.0.1"));
	assert_false(net_contains(&l, "::ffff:11.0.0.1"));
	assert_false(net_contains(&l, "::ffff:2001:db8::1"));
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

/* Each word of list, as net_public judges it, is want. */
static void assert_public(const char *list, bool want)
{
	char buf[256], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
		if (net_public(w) != want)
			fail_msg("%s is %s", w, want ? "public" : "not public");
}

/* A webhook URL may lead only to hosts on the Internet: never to the gateway's own machine,
 * the networks behind it, or a cloud's metadata service, however the address is written. */
static void test_public(void **state)
{
	(void)state;
	static const char *const public[] = {
		"8.8.8.8 1.1.1.1 100.63.255.255 100.128.0.1 172.15.255.255 172.32.0.1 192.0.1.1",
		"223.255.255.255 2606:4700::1 2a00:1450::200e",
		"::ffff:8.8.8.8 64:ff9b::808:808 2002:808:808::1", /* carrying a public IPv4 */
		"::ffff:0:808:808 ::ffff:0:8.8.8.8",		   /* IPv4-translated */
	};
	static const char *const not_public[] = {
		"127.0.0.1 127.255.0.1 ::1 0.0.0.0 0.1.2.3 ::", /* this machine */
		"10.0.0.1 172.16.0.1 172.31.255.255 192.168.1.1 fc00::1 fd12:3456::1", /* private */
		"100.64.0.1 100.127.255.255",					       /* shared */
		"169.254.169.254 fe80::1 febf::1",			     /* link-local */
		"224.0.0.1 239.255.255.250 ff02::1",			     /* multicast */
		"240.0.0.1 255.255.255.255 192.0.0.8",			     /* reserved */
		"192.0.2.1 198.18.0.1 198.51.100.7 203.0.113.9 2001:db8::1", /* documentation */
		"::ffff:127.0.0.1 ::ffff:10.1.2.3 ::ffff:169.254.169.254 ::127.0.0.1", /* mapped */
		"64:ff9b::7f00:1 64:ff9b::a00:1 2002:7f00:1:: 2002:a9fe:a9fe::1", /* NAT64, 6to4 */
		"::ffff:0:7f00:1 ::ffff:0:a00:1 ::ffff:0:169.254.169.254", /* IPv4-translated */
		"localhost example.com 1.2.3.4/32 fe80::1%eth0 1.2.3",	   /* not addresses */
	};
	for (size_t i = 0; i < sizeof(public) / sizeof(*public); i++)
		assert_public(public[i], true);
	for (size_t i = 0; i < sizeof(not_public) / sizeof(*not_public); i++)
		assert_public(not_public[i], false);
	assert_false(net_public(""));
	assert_false(net_public(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lists_parse_and_refuse_naming_the_entry),
		cmocka_unit_test(test_contains_by_prefix),
		cmocka_unit_test(test_the_client_is_the_first_hop_that_is_not_ours),
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_client_net),
		cmocka_unit_test(test_public),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
