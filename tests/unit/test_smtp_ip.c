/* Unit tests for SMTP-IP credentials' pure parts: which key an address sends as when
 * several keys list networks holding it (the most specific network, then the oldest key),
 * and how a key's networks are checked and spelled; and, on a real SQLite store, that a key
 * an SMTP session holds is found revoked (keys_recheck). */
#include "testutil.h"

#include <stdio.h>

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

/* 0.0.0.0/0 or ::/0 would let anyone send as the key without AUTH. */
static void test_networks_wider_than_a_slash_8_or_16_are_refused(void **state)
{
	(void)state;
	struct net_list l = {.n = 0};
	const char *wide[] = {"0.0.0.0/0", "10.0.0.0/7", "::/0", "2001::/15", "::0/1"};
	for (size_t i = 0; i < sizeof(wide) / sizeof(*wide); i++) {
		const char *why = keys_network_add(&l, wide[i]);
		assert_non_null(why);
		tu_assert_contains(why, "without AUTH");
	}
	assert_int_equal(l.n, 0);
	assert_null(keys_network_add(&l, "10.0.0.0/8"));
	assert_null(keys_network_add(&l, "2001::/16"));
	assert_int_equal(l.n, 2);
}

/* A store in a fresh directory with account acme, and a cache on it. */
struct world {
	char dir[TU_PATH_MAX], path[TU_PATH_MAX + 16];
	struct store *store;
	struct policy_cache *pc;
	int64_t account;
};

static void world_open(struct world *w)
{
	char err[256];
	tu_temp_dir(w->dir);
	snprintf(w->path, sizeof(w->path), "%s/p.db", w->dir);
	w->store = store_sqlite_open(w->path, err, sizeof(err));
	if (!w->store)
		fail_msg("%s", err);
	assert_int_equal(store_account_create(w->store, "acme", 1000, &w->account), STORE_OK);
	w->pc = policy_cache_new(w->store);
}

static void world_close(struct world *w)
{
	policy_cache_free(w->pc);
	store_close(w->store);
	tu_remove_sqlite(w->path, w->dir);
}

static void test_a_session_key_is_found_revoked(void **state)
{
	(void)state;
	struct world w;
	world_open(&w);
	struct store_apikey made, other, authed, by_ip;
	struct keys_spec k, o;
	struct keys_refusal no;
	char text[AUTH_KEY_LEN], text2[AUTH_KEY_LEN];
	int64_t retry;
	keys_spec_init(&k);
	keys_spec_init(&o);
	assert_null(keys_spec_name(&k, "k"));
	assert_null(keys_spec_name(&o, "o"));
	assert_null(keys_spec_smtp_ip(&k, "127.0.0.1"));
	assert_int_equal(keys_create(w.store, &audit_cli, w.account, &k, &made, text, &no), ERR_OK);
	assert_int_equal(keys_create(w.store, &audit_cli, w.account, &o, &other, text2, &no),
			 ERR_OK);
	assert_int_equal(
		keys_smtp_auth(w.store, w.pc, "apikey", text, "127.0.0.2", &authed, &retry),
		ERR_OK);
	assert_int_equal(keys_smtp_ip(w.pc, "127.0.0.1", &by_ip), ERR_OK);
	assert_int_equal(by_ip.id, made.id);
	/* Nothing moved: live, from memory. */
	assert_int_equal(keys_recheck(w.pc, &authed, "127.0.0.2"), ERR_OK);
	assert_int_equal(keys_recheck(w.pc, &by_ip, "127.0.0.1"), ERR_OK);
	/* Another key revoked moves the stamp: both found again, still live. */
	assert_int_equal(keys_revoke(w.store, &audit_cli, w.account, other.id), STORE_OK);
	assert_int_equal(keys_recheck(w.pc, &authed, "127.0.0.2"), ERR_OK);
	assert_int_equal(keys_recheck(w.pc, &by_ip, "127.0.0.1"), ERR_OK);
	/* This key revoked: refused, whichever way the session found it. */
	assert_int_equal(keys_revoke(w.store, &audit_cli, w.account, made.id), STORE_OK);
	assert_int_equal(keys_recheck(w.pc, &authed, "127.0.0.2"), ERR_INVALID_CREDENTIALS);
	assert_int_equal(keys_recheck(w.pc, &by_ip, "127.0.0.1"), ERR_INVALID_CREDENTIALS);
	world_close(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_most_specific_network_wins_then_the_oldest_key),
		cmocka_unit_test(test_networks_are_checked_one_by_one_and_kept_canonical),
		cmocka_unit_test(test_the_longest_spellings_still_fit_what_a_key_keeps),
		cmocka_unit_test(test_networks_wider_than_a_slash_8_or_16_are_refused),
		cmocka_unit_test(test_a_session_key_is_found_revoked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
