/* Unit tests for addr: how addresses and domains are normalized before Postern compares
 * them, and which forms it refuses with a reason the user can act on. */
#include "testutil.h"

#include "addr.h"

/* Builds a domain of labels of the given lengths ('a', 'b', ... repeated), ending in -1. */
static void make_domain(char *out, const int *lens)
{
	char *p = out;
	for (int i = 0; lens[i] >= 0; i++) {
		if (i > 0)
			*p++ = '.';
		memset(p, 'a' + i, (size_t)lens[i]);
		p += lens[i];
	}
	*p = '\0';
}

/* A failure reason is shown to users, so it must be a sentence. */
static void assert_sentence(const char *why)
{
	assert_non_null(why);
	size_t n = strlen(why);
	assert_true(n > 1);
	assert_true(why[0] >= 'A' && why[0] <= 'Z');
	assert_int_equal(why[n - 1], '.');
}

static void assert_normalizes(const char *in, const char *expected)
{
	char out[ADDR_MAX];
	const char *why = NULL;
	if (addr_normalize(in, out, &why) != 0)
		fail_msg("\"%s\" was rejected: %s", in, why ? why : "(no reason)");
	assert_string_equal(out, expected);
}

static void assert_rejected(const char *in)
{
	char out[ADDR_MAX];
	const char *why = NULL;
	if (addr_normalize(in, out, &why) != -1)
		fail_msg("\"%s\" was accepted as \"%s\"", in, out);
	assert_sentence(why);
}

static void assert_domain_rejected(const char *in)
{
	char out[ADDR_DOMAIN_MAX];
	const char *why = NULL;
	if (addr_domain_normalize(in, out, &why) != -1)
		fail_msg("domain \"%s\" was accepted as \"%s\"", in, out);
	assert_sentence(why);
}

static void normalize_folds_case_of_local_part_and_domain(void **state)
{
	(void)state;
	assert_normalizes("News@Example.COM", "news@example.com");
	assert_normalizes("NEWS@EXAMPLE.COM", "news@example.com");
	assert_normalizes("news@example.com", "news@example.com");
	assert_normalizes("Mail.Team@Sub.Example.Org", "mail.team@sub.example.org");
}

static void normalize_keeps_plus_address_distinct(void **state)
{
	(void)state;
	char plain[ADDR_MAX], plus[ADDR_MAX];
	const char *why;
	assert_int_equal(addr_normalize("news@d.example", plain, &why), 0);
	assert_int_equal(addr_normalize("News+X@D.example", plus, &why), 0);
	assert_string_equal(plus, "news+x@d.example");
	assert_string_not_equal(plain, plus);
}

static void normalize_accepts_every_atext_character_in_local_part(void **state)
{
	(void)state;
	assert_normalizes("a.b!#$%&'*+-/=?^_`{|}~9@example.com",
			  "a.b!#$%&'*+-/=?^_`{|}~9@example.com");
}

static void normalize_converts_idn_domain_to_a_label(void **state)
{
	(void)state;
	assert_normalizes("user@bücher.example", "user@xn--bcher-kva.example");
	assert_normalizes("User@BÜCHER.Example", "user@xn--bcher-kva.example");
	/* "u" followed by a combining diaeresis is the same name once put in NFC. */
	assert_normalizes("user@bu\xcc\x88"
			  "cher.example",
			  "user@xn--bcher-kva.example");
}

static void normalize_treats_a_label_and_u_label_as_one_address(void **state)
{
	(void)state;
	char a[ADDR_MAX], u[ADDR_MAX];
	const char *why;
	assert_int_equal(addr_normalize("user@XN--BCHER-KVA.example", a, &why), 0);
	assert_int_equal(addr_normalize("user@bücher.example", u, &why), 0);
	assert_string_equal(a, u);
}

static void normalize_rejects_address_without_at(void **state)
{
	(void)state;
	assert_rejected("news.example.com");
	assert_rejected("");
}

static void normalize_rejects_empty_local_part(void **state)
{
	(void)state;
	assert_rejected("@example.com");
}

static void normalize_rejects_misplaced_dots_in_local_part(void **state)
{
	(void)state;
	assert_rejected(".news@example.com");
	assert_rejected("news.@example.com");
	assert_rejected("ne..ws@example.com");
	assert_rejected(".@example.com");
}

static void normalize_rejects_spaces_and_line_breaks(void **state)
{
	(void)state;
	assert_rejected("ne ws@example.com");
	assert_rejected(" news@example.com");
	assert_rejected("news@example.com ");
	assert_rejected("news@exa mple.com");
	assert_rejected("news\r\n@example.com");
	assert_rejected("news@example.com\r\nBcc: victim@example.org");
	assert_rejected("news@example.com\n");
	assert_rejected("news\t@example.com");
}

static void normalize_rejects_quoted_and_non_ascii_local_parts(void **state)
{
	(void)state;
	assert_rejected("\"news\"@example.com");
	assert_rejected("a@b@example.com");
	assert_rejected("news(comment)@example.com");
	assert_rejected("jörg@example.com");
}

static void normalize_rejects_single_label_domain(void **state)
{
	(void)state;
	assert_rejected("news@localhost");
	assert_rejected("news@");
}

static void normalize_rejects_ip_address_domain(void **state)
{
	(void)state;
	assert_rejected("news@1.2.3.4");
	assert_rejected("news@[1.2.3.4]");
	assert_rejected("news@example.123");
}

static void normalize_rejects_malformed_domain_labels(void **state)
{
	(void)state;
	assert_rejected("news@.example.com");
	assert_rejected("news@example.com.");
	assert_rejected("news@example..com");
	assert_rejected("news@-example.com");
	assert_rejected("news@example-.com");
	assert_rejected("news@exam_ple.com");
}

static void normalize_limits_local_part_to_64_characters(void **state)
{
	(void)state;
	char local[80], in[ADDR_MAX + 16];

	tu_repeat(local, 'x', 64);
	snprintf(in, sizeof(in), "%s@example.com", local);
	assert_normalizes(in, in);

	tu_repeat(local, 'x', 65);
	snprintf(in, sizeof(in), "%s@example.com", local);
	assert_rejected(in);
}

static void normalize_limits_address_to_254_characters(void **state)
{
	(void)state;
	char local[80], domain[ADDR_DOMAIN_MAX + 16], in[sizeof(local) + sizeof(domain) + 1];

	/* 64 + "@" + 189 = 254 characters: the longest address allowed. */
	tu_repeat(local, 'x', 64);
	make_domain(domain, (const int[]){63, 63, 61, -1});
	assert_int_equal(strlen(domain), 189);
	snprintf(in, sizeof(in), "%s@%s", local, domain);
	assert_int_equal(strlen(in), 254);
	assert_normalizes(in, in);

	make_domain(domain, (const int[]){63, 63, 62, -1});
	snprintf(in, sizeof(in), "%s@%s", local, domain);
	assert_int_equal(strlen(in), 255);
	assert_rejected(in);
}

static void normalize_rejects_overlong_address(void **state)
{
	(void)state;
	char in[2048];
	memset(in, 'x', 1000);
	strcpy(in + 1000, "@example.com");
	assert_rejected(in);
	memset(in, 'y', 1500);
	memcpy(in, "news@", 5);
	strcpy(in + 1500, ".example.com");
	assert_rejected(in);
}

static void normalize_sets_why_on_every_failure(void **state)
{
	(void)state;
	char out[ADDR_MAX];
	const char *why = NULL;
	assert_int_equal(addr_normalize("no-at-sign", out, &why), -1);
	assert_sentence(why);
	assert_non_null(strstr(why, "@"));

	why = NULL;
	assert_int_equal(addr_normalize("news@1.2.3.4", out, &why), -1);
	assert_sentence(why);
	assert_non_null(strstr(why, "IP address"));

	why = NULL;
	assert_int_equal(addr_normalize("news@localhost", out, &why), -1);
	assert_sentence(why);
	assert_non_null(strstr(why, "two parts"));
}

static void domain_normalize_folds_case(void **state)
{
	(void)state;
	char out[ADDR_DOMAIN_MAX];
	const char *why;
	assert_int_equal(addr_domain_normalize("Mail.Example.COM", out, &why), 0);
	assert_string_equal(out, "mail.example.com");
	assert_int_equal(addr_domain_normalize("Bücher.Example", out, &why), 0);
	assert_string_equal(out, "xn--bcher-kva.example");
}

static void domain_normalize_limits_labels_to_63_characters(void **state)
{
	(void)state;
	char in[ADDR_DOMAIN_MAX + 16], out[ADDR_DOMAIN_MAX];
	const char *why;

	make_domain(in, (const int[]){63, 3, -1});
	assert_int_equal(addr_domain_normalize(in, out, &why), 0);
	assert_string_equal(out, in);

	make_domain(in, (const int[]){64, 3, -1});
	assert_domain_rejected(in);
	make_domain(in, (const int[]){3, 64, 3, -1});
	assert_domain_rejected(in);
}

static void domain_normalize_limits_domain_to_253_characters(void **state)
{
	(void)state;
	char in[ADDR_DOMAIN_MAX + 16], out[ADDR_DOMAIN_MAX];
	const char *why;

	make_domain(in, (const int[]){63, 63, 63, 61, -1});
	assert_int_equal(strlen(in), 253);
	assert_int_equal(addr_domain_normalize(in, out, &why), 0);
	assert_string_equal(out, in);

	make_domain(in, (const int[]){63, 63, 63, 62, -1});
	assert_int_equal(strlen(in), 254);
	assert_domain_rejected(in);
}

static void domain_normalize_rejects_empty_ip_and_invalid_idn(void **state)
{
	(void)state;
	assert_domain_rejected("");
	assert_domain_rejected("1.2.3.4");
	assert_domain_rejected("com");
	assert_domain_rejected("bücher example");
	assert_domain_rejected("exa\xff"
			       "mple.com");
}

static void domain_returns_part_after_at(void **state)
{
	(void)state;
	assert_string_equal(addr_domain("news@example.com"), "example.com");
	assert_string_equal(addr_domain("user@xn--bcher-kva.example"), "xn--bcher-kva.example");

	char out[ADDR_MAX];
	const char *why;
	assert_int_equal(addr_normalize("News+X@Sub.Example.COM", out, &why), 0);
	assert_string_equal(addr_domain(out), "sub.example.com");
}

/* Found by fuzz_compose: an ASCII name with an xn-- label that is no valid A-label would
 * be shown by mail software as something else than the checked address. */
static void invalid_a_labels_are_rejected(void **state)
{
	(void)state;
	char out[ADDR_MAX];
	const char *why = NULL;
	assert_int_equal(addr_normalize("news@xn--acme.test", out, &why), -1);
	assert_non_null(why);
	assert_int_equal(addr_normalize("ceo@xn--knab-ud7a.attacker.test", out, &why), -1);
	assert_int_equal(addr_normalize("news@xn--subjectva.example", out, &why), -1);
	assert_int_equal(addr_normalize("user@XN--BCHER-KVA.example", out, &why), 0);
	assert_string_equal(out, "user@xn--bcher-kva.example");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(invalid_a_labels_are_rejected),
		cmocka_unit_test(normalize_folds_case_of_local_part_and_domain),
		cmocka_unit_test(normalize_keeps_plus_address_distinct),
		cmocka_unit_test(normalize_accepts_every_atext_character_in_local_part),
		cmocka_unit_test(normalize_converts_idn_domain_to_a_label),
		cmocka_unit_test(normalize_treats_a_label_and_u_label_as_one_address),
		cmocka_unit_test(normalize_rejects_address_without_at),
		cmocka_unit_test(normalize_rejects_empty_local_part),
		cmocka_unit_test(normalize_rejects_misplaced_dots_in_local_part),
		cmocka_unit_test(normalize_rejects_spaces_and_line_breaks),
		cmocka_unit_test(normalize_rejects_quoted_and_non_ascii_local_parts),
		cmocka_unit_test(normalize_rejects_single_label_domain),
		cmocka_unit_test(normalize_rejects_ip_address_domain),
		cmocka_unit_test(normalize_rejects_malformed_domain_labels),
		cmocka_unit_test(normalize_limits_local_part_to_64_characters),
		cmocka_unit_test(normalize_limits_address_to_254_characters),
		cmocka_unit_test(normalize_rejects_overlong_address),
		cmocka_unit_test(normalize_sets_why_on_every_failure),
		cmocka_unit_test(domain_normalize_folds_case),
		cmocka_unit_test(domain_normalize_limits_labels_to_63_characters),
		cmocka_unit_test(domain_normalize_limits_domain_to_253_characters),
		cmocka_unit_test(domain_normalize_rejects_empty_ip_and_invalid_idn),
		cmocka_unit_test(domain_returns_part_after_at),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
