/* Unit tests for log_escape and log_render: whatever a request or a stored name carries, a
 * log line stays one line of text (or one JSON object), and what was escaped can be read
 * back. */
#include "testutil.h"

#include <glib.h>

#include "log.h"

/* 2026-12-04T19:05:09.042Z */
static const struct timeval AT = {.tv_sec = 1796411109, .tv_usec = 42999};

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

/* Renders message in f into a buffer the size log.c uses; checks the one newline, at the end. */
static char *rendered(enum log_format f, enum log_level level, const char *message)
{
	static char out[2 * LOG_SAFE_MAX + 128];
	size_t len = log_render(out, sizeof(out), f, &AT, level, message);
	assert_int_equal(len, strlen(out));
	assert_true(len > 0 && out[len - 1] == '\n');
	assert_null(memchr(out, '\n', len - 1));
	return out;
}

/* The JSON line parsed, after checking it is valid UTF-8 (which cJSON does not check) and
 * has exactly the three fields, time and level as in the text line. */
static cJSON *parsed(const char *line, const char *level)
{
	assert_true(g_utf8_validate(line, -1, NULL));
	cJSON *o = cJSON_Parse(line);
	assert_non_null(o);
	assert_int_equal(cJSON_GetArraySize(o), 3);
	assert_string_equal(tu_text(o, "time"), "2026-12-04T19:05:09.042Z");
	assert_string_equal(tu_text(o, "level"), level);
	return o;
}

static void test_text_line(void **state)
{
	(void)state;
	assert_string_equal(rendered(LOG_TEXT, LOG_WARN, "queue is \"full\""),
			    "2026-12-04T19:05:09.042Z warn queue is \"full\"\n");
}

static void test_json_line(void **state)
{
	(void)state;
	assert_string_equal(rendered(LOG_JSON, LOG_INFO, "postern serving on 127.0.0.1:8025"),
			    "{\"time\":\"2026-12-04T19:05:09.042Z\",\"level\":\"info\","
			    "\"message\":\"postern serving on 127.0.0.1:8025\"}\n");
}

/* Quotes and a newline cannot end the string or the object early, nor start a second line:
 * the message is the one the text line shows, escapes included. */
static void test_json_hostile_message_stays_one_field(void **state)
{
	(void)state;
	const char *hostile = "/x\"}\n{\"time\":\"2026\",\"level\":\"error\",\"message\":\"forged";
	cJSON *o = parsed(rendered(LOG_JSON, LOG_ERROR, hostile), "error");
	char want[256];
	log_escape(want, sizeof(want), hostile);
	assert_string_equal(tu_text(o, "message"), want);
	assert_non_null(strstr(tu_text(o, "message"), "\\x0a{\"time\""));
	cJSON_Delete(o);
}

/* Bytes that are not UTF-8 (and controls, and backslashes) reach the JSON encoder escaped
 * as text, so the line stays valid UTF-8 and valid JSON. */
static void test_json_invalid_utf8_stays_valid(void **state)
{
	(void)state;
	cJSON *o = parsed(rendered(LOG_JSON, LOG_DEBUG, "bad\xff\xc3 \x1b[31m caf\xc3\xa9 a\\b"),
			  "debug");
	assert_string_equal(tu_text(o, "message"), "bad\\xff\\xc3 \\x1b[31m caf\xc3\xa9 a\\\\b");
	cJSON_Delete(o);
}

/* The longest message, every byte of it doubled twice (a backslash escaped, then encoded),
 * is cut and still one whole object on one line. */
static void test_json_very_long_line_is_cut_whole(void **state)
{
	(void)state;
	static const char fills[] = {'\\', '"', '\n', '\xff', 'a'};
	char *message = malloc(3 * LOG_LINE_MAX);
	assert_non_null(message);
	for (size_t i = 0; i < sizeof(fills); i++) {
		memset(message, fills[i], 3 * LOG_LINE_MAX - 1);
		message[3 * LOG_LINE_MAX - 1] = '\0';
		cJSON *o = parsed(rendered(LOG_JSON, LOG_INFO, message), "info");
		size_t len = strlen(tu_text(o, "message"));
		assert_true(len > LOG_LINE_MAX / 2 && len < LOG_SAFE_MAX);
		cJSON_Delete(o);
		const char *text = rendered(LOG_TEXT, LOG_INFO, message);
		assert_true(strlen(text) < LOG_SAFE_MAX + 40);
	}
	free(message);
}

/* A buffer too small for the JSON object gets nothing rather than a cut object. */
static void test_json_too_small_buffer_writes_nothing(void **state)
{
	(void)state;
	char out[32];
	assert_int_equal(log_render(out, sizeof(out), LOG_JSON, &AT, LOG_INFO, "hello"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_breaks_are_escaped),
		cmocka_unit_test(test_controls_are_escaped),
		cmocka_unit_test(test_utf8_kept_invalid_escaped),
		cmocka_unit_test(test_backslash_doubled),
		cmocka_unit_test(test_cut_between_escapes),
		cmocka_unit_test(test_text_line),
		cmocka_unit_test(test_json_line),
		cmocka_unit_test(test_json_hostile_message_stays_one_field),
		cmocka_unit_test(test_json_invalid_utf8_stays_valid),
		cmocka_unit_test(test_json_very_long_line_is_cut_whole),
		cmocka_unit_test(test_json_too_small_buffer_writes_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
