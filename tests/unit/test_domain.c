/* Unit tests for domain: the records a sending domain publishes, how a DNS answer is judged
 * against them, and how a check moves the domain between pending, verified and failed. */
#include "testutil.h"

#include "dkimkey.h"
#include "dns.h"
#include "domain.h"
#include "store.h"
#include "util.h"

#define SPF_INCLUDE "_spf.postern.example"

/* One DNS answer at a time: a struct dns_txt is too large to build per assertion. */
static struct dns_txt answer_buf;

/* An answer with status and up to three records (the first NULL ends them). */
static const struct dns_txt *answer(enum dns_status status, const char *const records[3])
{
	memset(&answer_buf, 0, sizeof(answer_buf));
	answer_buf.status = status;
	for (int i = 0; i < 3 && records[i]; i++)
		snprintf(answer_buf.records[answer_buf.count++], DNS_TXT_LEN, "%s", records[i]);
	if (status == DNS_ERROR)
		snprintf(answer_buf.error, sizeof(answer_buf.error), "timeout");
	return &answer_buf;
}

static void assert_state(enum domain_record_state got, enum domain_record_state expected)
{
	if (got != expected)
		fail_msg("expected %s, got %s", domain_record_state_name(expected),
			 domain_record_state_name(got));
}

/* Judged against a state that must not be the result, for rules that allow two answers. */
static void assert_state_not(enum domain_record_state got, enum domain_record_state refused)
{
	if (got == refused)
		fail_msg("expected anything but %s", domain_record_state_name(refused));
}

static void assert_next(const char *status, int64_t missing_since, bool all_ok, bool any_error,
			int64_t now, int64_t grace, const char *expected_status,
			int64_t expected_missing_since)
{
	struct domain_verdict v = {0};
	domain_next(status, missing_since, all_ok, any_error, now, grace, &v);
	if (!v.status || strcmp(v.status, expected_status) != 0 ||
	    v.missing_since != expected_missing_since)
		fail_msg("%s (missing since %lld, all_ok %d, any_error %d, now %lld, grace %lld): "
			 "expected %s/%lld, got %s/%lld",
			 status, (long long)missing_since, all_ok, any_error, (long long)now,
			 (long long)grace, expected_status, (long long)expected_missing_since,
			 v.status ? v.status : "(null)", (long long)v.missing_since);
}

static void public_suffixes_cannot_be_owned(void **state)
{
	(void)state;
	assert_true(domain_is_public_suffix("com"));
	assert_true(domain_is_public_suffix("co.uk"));
	/* An unknown TLD is a public suffix by the list's default rule. */
	assert_true(domain_is_public_suffix("test"));
}

static void registrable_domains_are_not_public_suffixes(void **state)
{
	(void)state;
	assert_false(domain_is_public_suffix("example.com"));
	assert_false(domain_is_public_suffix("example.co.uk"));
	assert_false(domain_is_public_suffix("a.b.example.test"));
}

static void record_names_and_values_are_spelled_exactly(void **state)
{
	(void)state;
	char out[300];
	domain_ownership_name("example.com", out, sizeof(out));
	assert_string_equal(out, "_postern.example.com");
	domain_ownership_value("tok", out, sizeof(out));
	assert_string_equal(out, "postern-verification=tok");
	domain_dkim_name("pst1", "example.com", out, sizeof(out));
	assert_string_equal(out, "pst1._domainkey.example.com");
}

/* How a DNS answer (its status and up to three records) is judged against the value expected
 * of it. Each row runs as a test of its own, under its name. */
static const struct judgement {
	const char *name;
	enum domain_record_state (*judge)(const struct dns_txt *a, const char *expected);
	enum dns_status status;
	const char *answer[3]; /* up to the first NULL */
	const char *expected;
	enum domain_record_state state;
} judgements[] = {
	{"ownership_lookup_error_is_unknown",
	 domain_judge_ownership,
	 DNS_ERROR,
	 {NULL},
	 "postern-verification=tok",
	 DOMAIN_REC_UNKNOWN},
	{"ownership_without_records_is_missing",
	 domain_judge_ownership,
	 DNS_NOT_FOUND,
	 {NULL},
	 "postern-verification=tok",
	 DOMAIN_REC_MISSING},
	{"ownership_exact_value_is_ok",
	 domain_judge_ownership,
	 DNS_FOUND,
	 {"postern-verification=tok"},
	 "postern-verification=tok",
	 DOMAIN_REC_OK},
	{"ownership_value_with_surrounding_spaces_is_ok",
	 domain_judge_ownership,
	 DNS_FOUND,
	 {"  postern-verification=tok \t"},
	 "postern-verification=tok",
	 DOMAIN_REC_OK},
	{"ownership_value_among_other_records_is_ok",
	 domain_judge_ownership,
	 DNS_FOUND,
	 {"v=spf1 -all", "postern-verification=tok", "other=1"},
	 "postern-verification=tok",
	 DOMAIN_REC_OK},
	{"ownership_with_only_unrelated_records_is_missing",
	 domain_judge_ownership,
	 DNS_FOUND,
	 {"v=spf1 include:x.example ~all", "google-site-verification=abc"},
	 "postern-verification=tok",
	 DOMAIN_REC_MISSING},
	{"ownership_with_another_token_is_mismatch",
	 domain_judge_ownership,
	 DNS_FOUND,
	 {"postern-verification=other"},
	 "postern-verification=tok",
	 DOMAIN_REC_MISMATCH},
	{"dkim_lookup_error_is_unknown",
	 domain_judge_dkim,
	 DNS_ERROR,
	 {NULL},
	 "KEY",
	 DOMAIN_REC_UNKNOWN},
	{"dkim_without_records_is_missing",
	 domain_judge_dkim,
	 DNS_NOT_FOUND,
	 {NULL},
	 "KEY",
	 DOMAIN_REC_MISSING},
	{"dkim_published_key_is_ok",
	 domain_judge_dkim,
	 DNS_FOUND,
	 {"v=DKIM1; k=rsa; p=KEY"},
	 "KEY",
	 DOMAIN_REC_OK},
	{"dkim_key_wrapped_with_spaces_is_ok",
	 domain_judge_dkim,
	 DNS_FOUND,
	 {"v=DKIM1; k=rsa; p=AB CD"},
	 "ABCD",
	 DOMAIN_REC_OK},
	{"dkim_record_without_spaces_is_ok",
	 domain_judge_dkim,
	 DNS_FOUND,
	 {"v=DKIM1;k=rsa;p=KEY"},
	 "KEY",
	 DOMAIN_REC_OK},
	{"dkim_another_key_is_mismatch",
	 domain_judge_dkim,
	 DNS_FOUND,
	 {"v=DKIM1; k=rsa; p=OTHER"},
	 "KEY",
	 DOMAIN_REC_MISMATCH},
	{"dkim_revoked_key_is_mismatch",
	 domain_judge_dkim,
	 DNS_FOUND,
	 {"v=DKIM1; k=rsa; p="},
	 "KEY",
	 DOMAIN_REC_MISMATCH},
	{"spf_with_our_include_is_ok",
	 domain_judge_spf,
	 DNS_FOUND,
	 {"v=spf1 include:" SPF_INCLUDE " ~all"},
	 SPF_INCLUDE,
	 DOMAIN_REC_OK},
	{"spf_include_with_our_name_as_prefix_is_mismatch",
	 domain_judge_spf,
	 DNS_FOUND,
	 {"v=spf1 include:" SPF_INCLUDE ".evil ~all"},
	 SPF_INCLUDE,
	 DOMAIN_REC_MISMATCH},
	{"spf_our_include_after_a_longer_lookalike_is_ok",
	 domain_judge_spf,
	 DNS_FOUND,
	 {"v=spf1 include:" SPF_INCLUDE ".evil include:" SPF_INCLUDE " ~all"},
	 SPF_INCLUDE,
	 DOMAIN_REC_OK},
	{"spf_without_our_include_is_mismatch",
	 domain_judge_spf,
	 DNS_FOUND,
	 {"v=spf1 -all"},
	 SPF_INCLUDE,
	 DOMAIN_REC_MISMATCH},
	{"spf_absent_is_missing",
	 domain_judge_spf,
	 DNS_FOUND,
	 {"postern-verification=tok", "other=1"},
	 SPF_INCLUDE,
	 DOMAIN_REC_MISSING},
	{"spf_without_records_is_missing",
	 domain_judge_spf,
	 DNS_NOT_FOUND,
	 {NULL},
	 SPF_INCLUDE,
	 DOMAIN_REC_MISSING},
	{"spf_two_records_are_a_mismatch_even_with_our_include",
	 domain_judge_spf,
	 DNS_FOUND,
	 {"v=spf1 include:" SPF_INCLUDE " ~all", "v=spf1 mx -all"},
	 SPF_INCLUDE,
	 DOMAIN_REC_MISMATCH},
	{"spf_our_include_after_the_all_is_mismatch",
	 domain_judge_spf,
	 DNS_FOUND,
	 {"v=spf1 -all include:" SPF_INCLUDE},
	 SPF_INCLUDE,
	 DOMAIN_REC_MISMATCH},
	{"spf_lookalike_version_is_not_spf",
	 domain_judge_spf,
	 DNS_FOUND,
	 {"v=spf10 include:" SPF_INCLUDE " ~all"},
	 SPF_INCLUDE,
	 DOMAIN_REC_MISSING},
	{"spf_lookup_error_is_unknown",
	 domain_judge_spf,
	 DNS_ERROR,
	 {NULL},
	 SPF_INCLUDE,
	 DOMAIN_REC_UNKNOWN},
};

#define JUDGEMENTS (sizeof(judgements) / sizeof(judgements[0]))

static void assert_judged(void **state)
{
	const struct judgement *j = *state;
	assert_state(j->judge(answer(j->status, j->answer), j->expected), j->state);
}

static void dkim_tag_ending_in_p_is_not_the_key(void **state)
{
	(void)state;
	enum domain_record_state got = domain_judge_dkim(
		answer(DNS_FOUND, (const char *const[3]){"v=DKIM1; k=rsa; xp=KEY"}), "KEY");
	assert_state_not(got, DOMAIN_REC_OK);
	assert_state_not(got, DOMAIN_REC_UNKNOWN);
}

static void record_state_names_are_exact(void **state)
{
	(void)state;
	assert_string_equal(domain_record_state_name(DOMAIN_REC_UNKNOWN), "unknown");
	assert_string_equal(domain_record_state_name(DOMAIN_REC_OK), "ok");
	assert_string_equal(domain_record_state_name(DOMAIN_REC_MISSING), "missing");
	assert_string_equal(domain_record_state_name(DOMAIN_REC_MISMATCH), "mismatch");
}

static void lookup_error_changes_nothing(void **state)
{
	(void)state;
	assert_next("pending", 0, false, true, 5000, 100, "pending", 0);
	assert_next("verified", 0, false, true, 5000, 100, "verified", 0);
	assert_next("verified", 1000, false, true, 5000, 100, "verified", 1000);
	assert_next("failed", 0, false, true, 5000, 100, "failed", 0);
	/* Even with the other lookups all fine, an error is not a verdict. */
	assert_next("pending", 0, true, true, 5000, 100, "pending", 0);
}

static void all_records_ok_verifies(void **state)
{
	(void)state;
	assert_next("pending", 0, true, false, 5000, 100, "verified", 0);
	assert_next("failed", 0, true, false, 5000, 100, "verified", 0);
	assert_next("verified", 4990, true, false, 5000, 100, "verified", 0);
	assert_next("verified", 0, true, false, 5000, 100, "verified", 0);
}

static void pending_or_failed_stays_when_records_are_wrong(void **state)
{
	(void)state;
	assert_next("pending", 0, false, false, 5000, 100, "pending", 0);
	assert_next("failed", 0, false, false, 5000, 100, "failed", 0);
}

static void verified_first_miss_starts_grace(void **state)
{
	(void)state;
	assert_next("verified", 0, false, false, 5000, 100, "verified", 5000);
}

static void verified_miss_within_grace_stays_verified(void **state)
{
	(void)state;
	assert_next("verified", 4950, false, false, 5000, 100, "verified", 4950);
	assert_next("verified", 4901, false, false, 5000, 100, "verified", 4901);
}

static void verified_miss_lasting_grace_fails(void **state)
{
	(void)state;
	assert_next("verified", 4900, false, false, 5000, 100, "failed", 4900);
	assert_next("verified", 1000, false, false, 5000, 100, "failed", 1000);
}

/* example.com with its token and one active key, before any check. */
static struct store_domain *new_domain(void)
{
	struct store_domain *d = calloc(1, sizeof(*d));
	assert_non_null(d);
	snprintf(d->name, sizeof(d->name), "example.com");
	snprintf(d->status, sizeof(d->status), "pending");
	snprintf(d->token, sizeof(d->token), "tok");
	d->nkeys = 1;
	snprintf(d->keys[0].selector, sizeof(d->keys[0].selector), "pst1");
	snprintf(d->keys[0].public_key, sizeof(d->keys[0].public_key), "MIIBKEYONE");
	snprintf(d->keys[0].state, sizeof(d->keys[0].state), "active");
	return d;
}

static bool required(const cJSON *r)
{
	const cJSON *v = cJSON_GetObjectItem(r, "required");
	if (!cJSON_IsBool(v))
		fail_msg("record has no boolean \"required\"");
	return cJSON_IsTrue(v);
}

/* Approval only ever holds a domain back: a verified one waits, a rejected one is refused
 * whatever DNS says, and an approved one shows its DNS status as it is. */
static void shown_status_puts_approval_over_dns(void **state)
{
	(void)state;
	static const char *const cases[][3] = {
		{"verified", "approved", "verified"}, {"pending", "approved", "pending"},
		{"failed", "approved", "failed"},     {"verified", "required", "awaiting_approval"},
		{"pending", "required", "pending"},   {"failed", "required", "failed"},
		{"verified", "rejected", "rejected"}, {"pending", "rejected", "rejected"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(domain_shown_status(cases[i][0], cases[i][1]), cases[i][2]);
}

static void records_without_spf_are_ownership_and_dkim(void **state)
{
	(void)state;
	struct store_domain *d = new_domain();
	char *dkim = dkimkey_record("MIIBKEYONE");
	cJSON *list = domain_records(d, "");
	assert_int_equal(cJSON_GetArraySize(list), 2);

	const cJSON *own = tu_nth(list, 0);
	assert_string_equal(tu_text(own, "type"), "TXT");
	assert_string_equal(tu_text(own, "name"), "_postern.example.com");
	assert_string_equal(tu_text(own, "value"), "postern-verification=tok");
	assert_string_equal(tu_text(own, "purpose"), "ownership");
	assert_true(required(own));
	assert_string_equal(tu_text(own, "status"), "unknown");

	const cJSON *key = tu_nth(list, 1);
	assert_string_equal(tu_text(key, "type"), "TXT");
	assert_string_equal(tu_text(key, "name"), "pst1._domainkey.example.com");
	assert_string_equal(tu_text(key, "value"), dkim);
	assert_string_equal(tu_text(key, "purpose"), "dkim");
	assert_true(required(key));
	assert_string_equal(tu_text(key, "status"), "unknown");

	cJSON_Delete(list);
	free(dkim);
	free(d);
}

static void records_with_spf_add_an_optional_spf_record(void **state)
{
	(void)state;
	struct store_domain *d = new_domain();
	cJSON *list = domain_records(d, SPF_INCLUDE);
	assert_int_equal(cJSON_GetArraySize(list), 3);

	const cJSON *spf = tu_nth(list, 2);
	assert_string_equal(tu_text(spf, "type"), "TXT");
	assert_string_equal(tu_text(spf, "name"), "example.com");
	assert_string_equal(tu_text(spf, "value"), "v=spf1 include:" SPF_INCLUDE " ~all");
	assert_string_equal(tu_text(spf, "purpose"), "spf");
	assert_false(required(spf));
	assert_string_equal(tu_text(spf, "status"), "unknown");

	cJSON_Delete(list);
	free(d);
}

static void records_show_next_key_as_optional(void **state)
{
	(void)state;
	struct store_domain *d = new_domain();
	d->nkeys = 2;
	snprintf(d->keys[1].selector, sizeof(d->keys[1].selector), "pst2");
	snprintf(d->keys[1].public_key, sizeof(d->keys[1].public_key), "MIIBKEYTWO");
	snprintf(d->keys[1].state, sizeof(d->keys[1].state), "next");
	char *dkim = dkimkey_record("MIIBKEYTWO");
	cJSON *list = domain_records(d, "");
	assert_int_equal(cJSON_GetArraySize(list), 3);

	assert_string_equal(tu_text(tu_nth(list, 1), "purpose"), "dkim");
	assert_true(required(tu_nth(list, 1)));
	const cJSON *next = tu_nth(list, 2);
	assert_string_equal(tu_text(next, "name"), "pst2._domainkey.example.com");
	assert_string_equal(tu_text(next, "value"), dkim);
	assert_string_equal(tu_text(next, "purpose"), "dkim_next");
	assert_false(required(next));
	assert_string_equal(tu_text(next, "status"), "unknown");

	cJSON_Delete(list);
	free(dkim);
	free(d);
}

static void records_reuse_last_status_only_for_the_same_value(void **state)
{
	(void)state;
	struct store_domain *d = new_domain();
	char *dkim = dkimkey_record("MIIBKEYONE");
	cJSON *last = cJSON_CreateArray();
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "name", "_postern.example.com");
	cJSON_AddStringToObject(r, "value", "postern-verification=tok");
	cJSON_AddStringToObject(r, "status", "ok");
	cJSON_AddItemToArray(last, r);
	/* The DKIM record as it was before the key changed: its status is stale. */
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "name", "pst1._domainkey.example.com");
	cJSON_AddStringToObject(r, "value", "v=DKIM1; k=rsa; p=MIIBOLDKEY");
	cJSON_AddStringToObject(r, "status", "ok");
	cJSON_AddItemToArray(last, r);
	/* The right value under another name says nothing about this one. */
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "name", "example.com");
	cJSON_AddStringToObject(r, "value", "v=spf1 include:" SPF_INCLUDE " ~all");
	cJSON_AddStringToObject(r, "status", "mismatch");
	cJSON_AddItemToArray(last, r);
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "name", "other.example.com");
	cJSON_AddStringToObject(r, "value", dkim);
	cJSON_AddStringToObject(r, "status", "ok");
	cJSON_AddItemToArray(last, r);
	char *json = cJSON_PrintUnformatted(last);
	snprintf(d->records, sizeof(d->records), "%s", json);

	cJSON *list = domain_records(d, SPF_INCLUDE);
	assert_int_equal(cJSON_GetArraySize(list), 3);
	assert_string_equal(tu_text(tu_nth(list, 0), "status"), "ok");
	assert_string_equal(tu_text(tu_nth(list, 1), "value"), dkim);
	assert_string_equal(tu_text(tu_nth(list, 1), "status"), "unknown");
	assert_string_equal(tu_text(tu_nth(list, 2), "status"), "mismatch");

	cJSON_Delete(list);
	free(json);
	cJSON_Delete(last);
	free(dkim);
	free(d);
}

/* One merge: the SPF records a domain publishes (up to three), the record advised. */
struct spf_case {
	const char *name;
	const char *published[3];
	const char *advised;
	enum domain_spf_advice advice;
};

#define I "include:" SPF_INCLUDE
static const struct spf_case spf_cases[] = {
	{"spf_none_published_is_a_new_record", {NULL}, "v=spf1 " I " ~all", DOMAIN_SPF_NEW},
	{"spf_merged_keeps_a_hard_fail",
	 {"v=spf1 mx -all"},
	 "v=spf1 mx " I " -all",
	 DOMAIN_SPF_MERGED},
	{"spf_merged_keeps_mechanisms_in_order",
	 {"v=spf1 a mx ip4:192.0.2.0/24 include:_spf.google.com ~all"},
	 "v=spf1 a mx ip4:192.0.2.0/24 include:_spf.google.com " I " ~all",
	 DOMAIN_SPF_MERGED},
	{"spf_merged_keeps_a_neutral_all",
	 {"v=spf1 mx ?all"},
	 "v=spf1 mx " I " ?all",
	 DOMAIN_SPF_MERGED},
	{"spf_merged_without_all_gets_soft_fail",
	 {"v=spf1 mx"},
	 "v=spf1 mx " I " ~all",
	 DOMAIN_SPF_MERGED},
	{"spf_merged_keeps_redirect_last_without_all",
	 {"v=spf1 redirect=_spf.example.net mx"},
	 "v=spf1 mx " I " redirect=_spf.example.net",
	 DOMAIN_SPF_MERGED},
	{"spf_merged_drops_a_redirect_an_all_overrides",
	 {"v=spf1 mx ~all redirect=_spf.example.net"},
	 "v=spf1 mx " I " ~all",
	 DOMAIN_SPF_MERGED},
	{"spf_merged_keeps_modifiers_after_the_all",
	 {"v=spf1 mx -all exp=explain._spf.example.com"},
	 "v=spf1 mx " I " -all exp=explain._spf.example.com",
	 DOMAIN_SPF_MERGED},
	{"spf_merged_leaves_out_mechanisms_after_the_all",
	 {"v=spf1 mx -all a"},
	 "v=spf1 mx " I " -all",
	 DOMAIN_SPF_MERGED},
	{"spf_merged_spaces_and_case_are_normalised",
	 {"V=SPF1  mx\ta  -ALL "},
	 "v=spf1 mx a " I " -all",
	 DOMAIN_SPF_MERGED},
	{"spf_merged_keeps_a_lookalike_include",
	 {"v=spf1 " I ".evil -all"},
	 "v=spf1 " I ".evil " I " -all",
	 DOMAIN_SPF_MERGED},
	{"spf_with_our_include_is_kept_as_is",
	 {"v=spf1 mx " I " -all"},
	 "v=spf1 mx " I " -all",
	 DOMAIN_SPF_AS_IS},
	{"spf_our_include_after_the_all_moves_before_it",
	 {"v=spf1 mx -all " I},
	 "v=spf1 mx " I " -all",
	 DOMAIN_SPF_MERGED},
	{"spf_with_our_include_qualified_plus_is_kept_as_is",
	 {"v=spf1 +" I " ~all"},
	 "v=spf1 +" I " ~all",
	 DOMAIN_SPF_AS_IS},
	{"spf_our_include_failing_or_softened_becomes_a_plain_include",
	 {"v=spf1 -" I " mx ~" I " ?" I " ~all"},
	 "v=spf1 mx " I " ~all",
	 DOMAIN_SPF_MERGED},
	{"spf_two_records_merge_into_one_strictest_all",
	 {"v=spf1 mx ~all", "v=spf1 include:_spf.google.com -all"},
	 "v=spf1 mx include:_spf.google.com " I " -all",
	 DOMAIN_SPF_MERGED},
	{"spf_two_records_one_with_our_include_still_merge",
	 {"v=spf1 " I " ~all", "v=spf1 mx ~all"},
	 "v=spf1 mx " I " ~all",
	 DOMAIN_SPF_MERGED},
	{"spf_two_records_mechanisms_once",
	 {"v=spf1 mx a ~all", "v=spf1 MX ip4:192.0.2.1 ~all"},
	 "v=spf1 mx a ip4:192.0.2.1 " I " ~all",
	 DOMAIN_SPF_MERGED},
	{"spf_two_redirects_keep_the_first_and_include_the_other",
	 {"v=spf1 redirect=a.example", "v=spf1 redirect=b.example"},
	 "v=spf1 include:b.example " I " redirect=a.example",
	 DOMAIN_SPF_MERGED},
	{"spf_a_redirect_beside_another_records_all_is_included",
	 {"v=spf1 mx -all", "v=spf1 redirect=b.example"},
	 "v=spf1 mx include:b.example " I " -all",
	 DOMAIN_SPF_MERGED},
	{"spf_two_records_one_exp",
	 {"v=spf1 mx -all exp=a.example", "v=spf1 a ~all exp=b.example"},
	 "v=spf1 mx a " I " -all exp=a.example",
	 DOMAIN_SPF_MERGED},
};
#undef I

#define SPF_CASES (sizeof(spf_cases) / sizeof(spf_cases[0]))

static void assert_merged(void **state)
{
	const struct spf_case *c = *state;
	int n = 0;
	while (n < 3 && c->published[n])
		n++;
	enum domain_spf_advice advice = (enum domain_spf_advice) - 1;
	char *value = domain_spf_merge(c->published, n, SPF_INCLUDE, &advice);
	assert_string_equal(value, c->advised);
	assert_int_equal(advice, c->advice);
	free(value);
}

/* Only SPF records are kept from an answer, as a JSON array of strings. */
static void spf_seen_keeps_the_spf_records(void **state)
{
	(void)state;
	char seen[STORE_SPF_SEEN_MAX];
	domain_spf_seen(
		answer(DNS_FOUND, (const char *const[3]){"google-site-verification=x",
							 "v=spf1 mx \"quoted\" -all", "v=spf1 a"}),
		seen, sizeof(seen));
	assert_string_equal(seen, "[\"v=spf1 mx \\\"quoted\\\" -all\",\"v=spf1 a\"]");
	domain_spf_seen(answer(DNS_NOT_FOUND, (const char *const[3]){NULL}), seen, sizeof(seen));
	assert_string_equal(seen, "[]");
	/* Records that do not fit are left out, and what is kept is still JSON. */
	char small[24];
	domain_spf_seen(answer(DNS_FOUND, (const char *const[3]){"v=spf1 mx", "v=spf1 a -all"}),
			small, sizeof(small));
	assert_string_equal(small, "[\"v=spf1 mx\"]");
}

/* A domain that publishes an SPF record is advised that record merged, with a note and the
 * record it replaces; one that publishes it already merged is told nothing more. */
static void records_spf_merges_the_published_record(void **state)
{
	(void)state;
	struct store_domain *d = new_domain();
	snprintf(d->spf_seen, sizeof(d->spf_seen), "[\"v=spf1 mx -all\"]");
	cJSON *list = domain_records(d, SPF_INCLUDE);
	const cJSON *spf = tu_nth(list, 2);
	assert_string_equal(tu_text(spf, "value"), "v=spf1 mx include:" SPF_INCLUDE " -all");
	const cJSON *replaces = tu_get(spf, "replaces");
	assert_int_equal(cJSON_GetArraySize(replaces), 1);
	assert_string_equal(cJSON_GetArrayItem(replaces, 0)->valuestring, "v=spf1 mx -all");
	assert_non_null(strstr(tu_text(spf, "note"), "Replaces the SPF record"));
	cJSON_Delete(list);

	snprintf(d->spf_seen, sizeof(d->spf_seen), "[\"v=spf1 mx -all\",\"v=spf1 a ~all\"]");
	list = domain_records(d, SPF_INCLUDE);
	spf = tu_nth(list, 2);
	assert_string_equal(tu_text(spf, "value"), "v=spf1 mx a include:" SPF_INCLUDE " -all");
	assert_int_equal(cJSON_GetArraySize(tu_get(spf, "replaces")), 2);
	assert_non_null(strstr(tu_text(spf, "note"), "remove the others"));
	cJSON_Delete(list);

	snprintf(d->spf_seen, sizeof(d->spf_seen), "[\"v=spf1 include:" SPF_INCLUDE " -all\"]");
	list = domain_records(d, SPF_INCLUDE);
	spf = tu_nth(list, 2);
	assert_string_equal(tu_text(spf, "value"), "v=spf1 include:" SPF_INCLUDE " -all");
	assert_int_equal(cJSON_GetArraySize(tu_get(spf, "replaces")), 0);
	assert_true(cJSON_IsNull(tu_get(spf, "note")));
	cJSON_Delete(list);
	free(d);
}

int main(void)
{
	const struct CMUnitTest first[] = {
		cmocka_unit_test(public_suffixes_cannot_be_owned),
		cmocka_unit_test(registrable_domains_are_not_public_suffixes),
		cmocka_unit_test(record_names_and_values_are_spelled_exactly),
	};
	const struct CMUnitTest rest[] = {
		cmocka_unit_test(dkim_tag_ending_in_p_is_not_the_key),
		cmocka_unit_test(record_state_names_are_exact),
		cmocka_unit_test(lookup_error_changes_nothing),
		cmocka_unit_test(all_records_ok_verifies),
		cmocka_unit_test(pending_or_failed_stays_when_records_are_wrong),
		cmocka_unit_test(verified_first_miss_starts_grace),
		cmocka_unit_test(verified_miss_within_grace_stays_verified),
		cmocka_unit_test(verified_miss_lasting_grace_fails),
		cmocka_unit_test(shown_status_puts_approval_over_dns),
		cmocka_unit_test(records_without_spf_are_ownership_and_dkim),
		cmocka_unit_test(records_with_spf_add_an_optional_spf_record),
		cmocka_unit_test(records_show_next_key_as_optional),
		cmocka_unit_test(records_reuse_last_status_only_for_the_same_value),
		cmocka_unit_test(spf_seen_keeps_the_spf_records),
		cmocka_unit_test(records_spf_merges_the_published_record),
	};
	/* The tests in their order: the judgements and the SPF merges after the record names. */
	struct CMUnitTest tests[ARRAY_LEN(first) + JUDGEMENTS + SPF_CASES + ARRAY_LEN(rest)];
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_LEN(first); i++)
		tests[n++] = first[i];
	for (size_t i = 0; i < JUDGEMENTS; i++)
		tests[n++] = tu_row_test(judgements[i].name, assert_judged, &judgements[i]);
	for (size_t i = 0; i < SPF_CASES; i++)
		tests[n++] = tu_row_test(spf_cases[i].name, assert_merged, &spf_cases[i]);
	for (size_t i = 0; i < ARRAY_LEN(rest); i++)
		tests[n++] = rest[i];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
