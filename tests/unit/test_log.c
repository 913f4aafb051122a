/* Unit tests for log_escape: whatever a request or a stored name carries, a log line stays
 * one line of text, and what was escaped can be read back. */
#include "testutil.h"

#include "log.h"

static void expect_escaped(const char *in, const char *want)
{
	char out[256];
	log_escape(out, sizeof(out), in);
	assert_string_equal(out, want);
}

/* A path with a newline cannot start a forged line: the newline is written as \x0a. */
static void test_line_breaks_are_escaped(void **state)
{
	(void)state;
	expect_escaped("/x\n2026-12-03T00:00:00.000Z info audit forged",
		       "/x\\x0a2026-12-03T00:00:00.000Z info audit forged");
	expect_escaped("a\r\nb", "a\\x0d\\x0ab");
}

/* Terminal escape sequences and other controls, DEL and C1 controls included. */
static void test_controls_are_escaped(void **state)
{
	(void)state;
	expect_escaped("key\x1b[31mred\x7f", "key\\x1b[31mred\\x7f");
	expect_escaped("tab\there", "tab\\x09here");
	expect_escaped("c1\xc2\x9bX", "c1\\xc2\\x9bX");
	expect_escaped("ls\xe2\x80\xa8X", "ls\\xe2\\x80\\xa8X");
}

/* Valid UTF-8 text is kept as it is; bytes that are not UTF-8 are escaped one by one. */
static void test_utf8_kept_invalid_escaped(void **state)
{
	(void)state;
	expect_escaped("caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 \xe2\x82\xac");
	expect_escaped("bad\xff\xc3", "bad\\xff\\xc3");
}

/* A backslash is doubled, so a literal "\x0a" in a field is not mistaken for an escape. */
static void test_backslash_doubled(void **state)
{
	(void)state;
	expect_escaped("a\\x0ab", "a\\\\x0ab");
}

/* A line longer than the buffer is cut between escapes, and always terminated. */
static void test_cut_between_escapes(void **state)
{
	(void)state;
	char out[8];
	assert_int_equal(log_escape(out, sizeof(out), "ab\n\n\n"), 6);
	assert_string_equal(out, "ab\\x0a");
	assert_int_equal(log_escape(out, 1, "abc"), 0);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_breaks_are_escaped),
		cmocka_unit_test(test_controls_are_escaped),
		cmocka_unit_test(test_utf8_kept_invalid_escaped),
		cmocka_unit_test(test_backslash_doubled),
		cmocka_unit_test(test_cut_between_escapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
