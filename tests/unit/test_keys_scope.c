/* Unit tests for a key's own scope (issue 19): each field checked as it is given and kept
 * in the spelling the store holds, what holds only for the whole key (a role exactly with
 * manage), the two questions the send paths ask (keys_sender_allowed, keys_ip_allowed),
 * and, on a real SQLite store, a change taking effect at once for a session that holds the
 * key (keys_update, keys_recheck). */
#include "testutil.h"

#include "keys.h"
#include "keyscope.h"
#include "policy_cache.h"

static struct keys_spec sp;

static void test_senders_are_normalized_and_listed_once(void **state)
{
	(void)state;
	keys_spec_init(&sp);
	assert_null(keys_spec_sender(&sp, "News@Acme.TEST"));
	assert_null(keys_spec_sender(&sp, "billing@bücher.example"));
	assert_string_equal(sp.senders, "news@acme.test,billing@xn--bcher-kva.example");
	tu_assert_contains(keys_spec_sender(&sp, "news@ACME.test"), "already listed");
	assert_non_null(keys_spec_sender(&sp, "not an address"));
	assert_non_null(keys_spec_sender(&sp, NULL));
	assert_non_null(keys_spec_sender(&sp, "\"a,b\"@acme.test"));
	assert_int_equal(sp.nsenders, 2);
	assert_true(sp.given & KEYS_SENDERS);
}

static void test_lists_are_bounded_by_count_and_by_text(void **state)
{
	(void)state;
	char a[80];
	keys_spec_init(&sp);
	for (int i = 0; i < KEYS_LIST_MAX; i++) {
		snprintf(a, sizeof(a), "s%d@acme.test", i);
		assert_null(keys_spec_sender(&sp, a));
	}
	tu_assert_contains(keys_spec_sender(&sp, "one.more@acme.test"), "at most 100");
	keys_spec_init(&sp);
	const char *why = NULL;
	for (int i = 0; i < KEYS_LIST_MAX && !why; i++) {
		snprintf(a, sizeof(a), "%0*d@acme.test", 60, i);
		why = keys_spec_sender(&sp, a);
	}
	tu_assert_contains(why, "4095 characters");
	assert_true(strlen(sp.senders) < STORE_KEY_LIST_MAX);
}

static void test_domains_are_a_labels_and_never_a_public_suffix(void **state)
{
	(void)state;
	keys_spec_init(&sp);
	assert_null(keys_spec_domain(&sp, "Acme.TEST"));
	assert_null(keys_spec_domain(&sp, "bücher.example"));
	assert_string_equal(sp.domains, "acme.test,xn--bcher-kva.example");
	tu_assert_contains(keys_spec_domain(&sp, "acme.test"), "already listed");
	tu_assert_contains(keys_spec_domain(&sp, "co.uk"), "public suffix");
	assert_non_null(keys_spec_domain(&sp, "not a domain"));
	assert_non_null(keys_spec_domain(&sp, "news@acme.test"));
}

static void test_allowed_ips_take_any_width_once_each(void **state)
{
	(void)state;
	keys_spec_init(&sp);
	assert_null(keys_spec_allowed_ip(&sp, "0.0.0.0/0"));
	assert_null(keys_spec_allowed_ip(&sp, "2001:DB8::/32"));
	assert_null(keys_spec_allowed_ip(&sp, "127.0.0.2"));
	tu_assert_contains(keys_spec_allowed_ip(&sp, "127.0.0.2/32"), "already listed");
	assert_non_null(keys_spec_allowed_ip(&sp, "10.0.0.0/33"));
	assert_non_null(keys_spec_allowed_ip(&sp, "10.0.0.1, 10.0.0.2"));
	assert_non_null(keys_spec_allowed_ip(&sp, ""));
	assert_int_equal(sp.allowed_ips.n, 3);
}

static void test_scopes_and_roles(void **state)
{
	(void)state;
	keys_spec_init(&sp);
	assert_null(keys_spec_scope(&sp, "manage"));
	assert_null(keys_spec_scope(&sp, "mail.send"));
	tu_assert_contains(keys_spec_scope(&sp, "manage"), "already listed");
	assert_non_null(keys_spec_scope(&sp, "admin"));
	assert_int_equal(sp.scopes, KEYS_SCOPE_MAIL_SEND | KEYS_SCOPE_MANAGE);
	tu_assert_contains(keys_spec_role(&sp, "admin"), "never acts as an Admin");
	assert_non_null(keys_spec_role(&sp, "owner"));
	assert_null(keys_spec_role(&sp, "technical"));
	assert_string_equal(sp.role, "technical");
	assert_null(keys_spec_role(&sp, NULL));
	assert_string_equal(sp.role, "");
}

static void test_a_scoped_key_sends_from_its_addresses_and_exact_domains(void **state)
{
	struct store_apikey k = {.senders = "news@acme.test,ceo@other.test",
				 .domains = "mail.acme.test"};
	/* As read from the text, and as the policy cache prepares it: the same answers. */
	if (*(const bool *)*state)
		keyscope_prepare(&k);
	assert_int_equal(k.quick.ready, *(const bool *)*state);
	assert_true(keyscope_sender_allowed(&k, "news@acme.test"));
	assert_true(keyscope_sender_allowed(&k, "ceo@other.test"));
	assert_true(keyscope_sender_allowed(&k, "anyone@mail.acme.test"));
	assert_false(keyscope_sender_allowed(&k, "billing@acme.test"));
	assert_false(keyscope_sender_allowed(&k, "x@sub.mail.acme.test")); /* no subdomains */
	assert_false(keyscope_sender_allowed(&k, "news@acme.test.evil"));
	assert_false(keyscope_sender_allowed(&k, "ews@acme.test"));
	struct store_apikey wide = {.senders = ""};
	assert_true(keyscope_sender_allowed(&wide, "anyone@anywhere.test"));
}

static void test_allowed_ips_hold_the_client_or_refuse_it(void **state)
{
	struct store_apikey k = {.allowed_ips = "127.0.0.2/32,2001:db8::/32"};
	if (*(const bool *)*state)
		keyscope_prepare(&k);
	assert_int_equal(keyscope_ip_allowed(&k, "127.0.0.2"), ERR_OK);
	assert_int_equal(keyscope_ip_allowed(&k, "2001:db8::7"), ERR_OK);
	assert_int_equal(keyscope_ip_allowed(&k, "127.0.0.1"), ERR_IP_NOT_ALLOWED);
	assert_int_equal(keyscope_ip_allowed(&k, ""), ERR_IP_NOT_ALLOWED);
	assert_int_equal(keyscope_ip_allowed(&k, NULL), ERR_IP_NOT_ALLOWED);
	/* The client remembered from the last question does not stick. */
	assert_int_equal(keyscope_ip_allowed(&k, "127.0.0.2"), ERR_OK);
	assert_int_equal(keyscope_ip_allowed(&k, "127.0.0.22"), ERR_IP_NOT_ALLOWED);
	assert_int_equal(keyscope_ip_allowed(&k, "127.0.0.2/32"), ERR_IP_NOT_ALLOWED);
	struct store_apikey open = {.allowed_ips = ""};
	assert_int_equal(keyscope_ip_allowed(&open, "192.0.2.1"), ERR_OK);
}

struct world {
	char dir[TU_PATH_MAX], path[TU_PATH_MAX + 16];
	struct store *store;
	struct policy_cache *pc;
	int64_t account, other;
};

static void world_open(struct world *w)
{
	char err[256];
	tu_temp_dir(w->dir);
	snprintf(w->path, sizeof(w->path), "%s/k.db", w->dir);
	w->store = store_sqlite_open(w->path, err, sizeof(err));
	if (!w->store)
		fail_msg("%s", err);
	assert_int_equal(store_account_create(w->store, "acme", 1000, &w->account), STORE_OK);
	assert_int_equal(store_account_create(w->store, "globex", 1000, &w->other), STORE_OK);
	w->pc = policy_cache_new(w->store);
}

static void world_close(struct world *w)
{
	policy_cache_free(w->pc);
	store_close(w->store);
	tu_remove_sqlite(w->path, w->dir);
}

static void test_the_whole_key_needs_a_scope_and_a_role_exactly_with_manage(void **state)
{
	(void)state;
	struct world w;
	struct store_apikey made;
	struct keys_refusal no;
	char text[AUTH_KEY_LEN];
	world_open(&w);
	keys_spec_init(&sp);
	assert_int_equal(keys_create(w.store, &audit_cli, w.account, &sp, &made, text, &no),
			 ERR_INVALID_REQUEST);
	assert_string_equal(no.field, "name");
	assert_null(keys_spec_name(&sp, "ci"));
	assert_null(keys_spec_scope(&sp, "manage"));
	assert_int_equal(keys_create(w.store, &audit_cli, w.account, &sp, &made, text, &no),
			 ERR_INVALID_REQUEST);
	assert_string_equal(no.field, "role");
	assert_null(keys_spec_role(&sp, "analytics"));
	assert_int_equal(keys_create(w.store, &audit_cli, w.account, &sp, &made, text, &no),
			 ERR_OK);
	assert_string_equal(made.scopes, "manage");
	assert_string_equal(made.role, "analytics");
	/* Taking manage away drops the role with it; a role without manage is refused. */
	keys_spec_init(&sp);
	assert_null(keys_spec_role(&sp, "technical"));
	assert_null(keys_spec_scope(&sp, "mail.send"));
	assert_int_equal(keys_update(w.store, &audit_cli, w.account, made.id, &sp, &made, &no),
			 ERR_INVALID_REQUEST);
	assert_string_equal(no.field, "role");
	keys_spec_init(&sp);
	assert_null(keys_spec_scope(&sp, "mail.send"));
	assert_int_equal(keys_update(w.store, &audit_cli, w.account, made.id, &sp, &made, &no),
			 ERR_OK);
	assert_string_equal(made.scopes, "mail.send");
	assert_string_equal(made.role, "");
	keys_spec_init(&sp);
	keys_spec_give(&sp, KEYS_SCOPES);
	assert_int_equal(keys_update(w.store, &audit_cli, w.account, made.id, &sp, &made, &no),
			 ERR_INVALID_REQUEST);
	assert_string_equal(no.field, "scopes");
	world_close(&w);
}

static void test_a_change_reaches_a_session_holding_the_key_at_once(void **state)
{
	(void)state;
	struct world w;
	struct store_apikey made, authed;
	struct keys_refusal no;
	char text[AUTH_KEY_LEN];
	int64_t retry;
	world_open(&w);
	keys_spec_init(&sp);
	assert_null(keys_spec_name(&sp, "smtp"));
	assert_int_equal(keys_create(w.store, &audit_cli, w.account, &sp, &made, text, &no),
			 ERR_OK);
	assert_int_equal(
		keys_smtp_auth(w.store, w.pc, "apikey", text, "127.0.0.2", &authed, &retry),
		ERR_OK);
	assert_true(keyscope_sender_allowed(&authed, "anyone@acme.test"));
	keys_spec_init(&sp);
	assert_null(keys_spec_sender(&sp, "news@acme.test"));
	assert_null(keys_spec_allowed_ip(&sp, "127.0.0.3"));
	assert_int_equal(keys_update(w.store, &audit_cli, w.account, made.id, &sp, &made, &no),
			 ERR_OK);
	assert_string_equal(made.name, "smtp"); /* not given: kept */
	assert_int_equal(keys_recheck(w.pc, &authed, "127.0.0.2"), ERR_IP_NOT_ALLOWED);
	assert_int_equal(keys_recheck(w.pc, &authed, "127.0.0.3"), ERR_OK);
	assert_false(keyscope_sender_allowed(&authed, "anyone@acme.test"));
	assert_true(keyscope_sender_allowed(&authed, "news@acme.test"));
	/* AUTH from outside allowed_ips: refused, and not counted as a guess. */
	assert_int_equal(
		keys_smtp_auth(w.store, w.pc, "apikey", text, "127.0.0.2", &authed, &retry),
		ERR_IP_NOT_ALLOWED);
	assert_int_equal(retry, 0);
	/* Another account's key, and a revoked one, are not found. */
	assert_int_equal(keys_update(w.store, &audit_cli, w.other, made.id, &sp, &made, &no),
			 ERR_NOT_FOUND);
	assert_int_equal(keys_revoke(w.store, &audit_cli, w.account, made.id), STORE_OK);
	assert_int_equal(keys_update(w.store, &audit_cli, w.account, made.id, &sp, &made, &no),
			 ERR_NOT_FOUND);
	world_close(&w);
}

static const bool no = false, yes = true;

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_senders_are_normalized_and_listed_once),
		cmocka_unit_test(test_lists_are_bounded_by_count_and_by_text),
		cmocka_unit_test(test_domains_are_a_labels_and_never_a_public_suffix),
		cmocka_unit_test(test_allowed_ips_take_any_width_once_each),
		cmocka_unit_test(test_scopes_and_roles),
		tu_row_test("sender scope, from the text",
			    test_a_scoped_key_sends_from_its_addresses_and_exact_domains, &no),
		tu_row_test("sender scope, prepared",
			    test_a_scoped_key_sends_from_its_addresses_and_exact_domains, &yes),
		tu_row_test("allowed_ips, from the text",
			    test_allowed_ips_hold_the_client_or_refuse_it, &no),
		tu_row_test("allowed_ips, prepared", test_allowed_ips_hold_the_client_or_refuse_it,
			    &yes),
		cmocka_unit_test(test_the_whole_key_needs_a_scope_and_a_role_exactly_with_manage),
		cmocka_unit_test(test_a_change_reaches_a_session_holding_the_key_at_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
