/* Unit tests for subst: Netcore's [%name%] tags and SendGrid's literal keys, values inserted
 * as given, the bound on what substitution may grow to, and the view compose builds from. */
#include "testutil.h"

#include <glib.h>

#include "subst.h"

/* text with subs (JSON written with ') substituted in syntax; the result must be expected. */
static void expect(enum subst_syntax syntax, const char *subs_text, const char *text,
		   const char *expected)
{
	cJSON *subs = tu_json(subs_text);
	char *out;
	size_t len;
	assert_int_equal(subst_apply(text, subs, syntax, 1 << 20, &out, &len), 0);
	assert_string_equal(out, expected);
	assert_int_equal(len, strlen(expected));
	/* Measuring alone gives the same length. */
	assert_int_equal(subst_apply(text, subs, syntax, 1 << 20, NULL, &len), 0);
	assert_int_equal(len, strlen(expected));
	free(out);
	cJSON_Delete(subs);
}

static void netcore_tags_ignore_whitespace_and_are_case_sensitive(void **state)
{
	(void)state;
	expect(SUBST_NETCORE, "{'name':'Ann','Name':'ANN'}",
	       "Hello [%name%], [% name %], [%\tName %]!", "Hello Ann, Ann, ANN!");
}

static void netcore_tags_without_a_value_become_empty(void **state)
{
	(void)state;
	expect(SUBST_NETCORE, "{'name':'Ann'}", "Hi [%first%][%name%].", "Hi Ann.");
	expect(SUBST_NETCORE, "{}", "[%%] and [% %]", " and ");
}

static void netcore_text_that_is_not_a_tag_stays(void **state)
{
	(void)state;
	expect(SUBST_NETCORE, "{'a':'1'}", "100% [% unclosed", "100% [% unclosed");
	expect(SUBST_NETCORE, "{'a':'1'}", "[% [%a%]", "[% 1");
	expect(SUBST_NETCORE, "{'a':'1'}", "[a] %a% [%a]", "[a] %a% [%a]");
}

static void values_are_inserted_as_given_and_not_scanned_again(void **state)
{
	(void)state;
	expect(SUBST_NETCORE, "{'a':'<b>[%b%]</b>','b':'no'}", "[%a%]", "<b>[%b%]</b>");
	expect(SUBST_LITERAL, "{'-a-':'-b-','-b-':'no'}", "-a- -b-", "-b- no");
	expect(SUBST_LITERAL, "{'-x-':'\\r\\n&<>'}", "<p>-x-</p>", "<p>\r\n&<></p>");
}

static void literal_keys_are_whole_tags_longest_first(void **state)
{
	(void)state;
	expect(SUBST_LITERAL, "{'-name-':'Ann','{{city}}':'Köln'}", "Hi -name- from {{city}}",
	       "Hi Ann from Köln");
	expect(SUBST_LITERAL, "{'%n':'short','%name%':'long'}", "%name% %n", "long short");
	/* Keys are literal: no whitespace rule, no case folding. */
	expect(SUBST_LITERAL, "{'-name-':'Ann'}", "- name - -NAME-", "- name - -NAME-");
}

static void growth_past_the_bound_is_refused(void **state)
{
	(void)state;
	cJSON *subs = tu_json("{'a':'0123456789'}");
	char *out = (char *)1;
	size_t len;
	assert_int_equal(subst_apply("[%a%][%a%]", subs, SUBST_NETCORE, 20, &out, &len), 0);
	free(out);
	assert_int_equal(subst_apply("[%a%][%a%][%a%]", subs, SUBST_NETCORE, 20, &out, &len), -1);
	assert_null(out);
	assert_int_equal(subst_apply("[%a%][%a%][%a%]", subs, SUBST_NETCORE, 20, NULL, &len), -1);
	cJSON_Delete(subs);
}

/* The reviewer's worst case: thousands of keys sharing a first byte over a MiB of that byte,
 * and one long key that almost matches everywhere. The test's own run time shows that the
 * cost no longer grows with text length times the number of keys. */
static void many_keys_over_a_long_text_are_matched_in_one_pass(void **state)
{
	(void)state;
	size_t n = 1 << 20;
	cJSON *subs = cJSON_CreateObject();
	char key[32], value[32];
	for (int i = 0; i < 2200; i++) {
		snprintf(key, sizeof(key), "a%d", i);
		snprintf(value, sizeof(value), "<%d>", i);
		cJSON_AddStringToObject(subs, key, value);
	}
	char *near = malloc(5002);
	tu_repeat(near, 'a', 5000);
	strcpy(near + 5000, "z");
	cJSON_AddStringToObject(subs, near, "never");
	cJSON_AddStringToObject(subs, "aa", "b");
	char *text = malloc(n + 4);
	tu_repeat(text, 'a', n);
	strcpy(text + n, "a7!");

	char *out, *expected = malloc(n / 2 + 5);
	size_t len;
	tu_repeat(expected, 'b', n / 2);
	strcpy(expected + n / 2, "<7>!");
	assert_int_equal(subst_apply(text, subs, SUBST_LITERAL, SUBST_CONTENT_MAX, &out, &len), 0);
	assert_int_equal(len, strlen(expected));
	assert_string_equal(out, expected);
	free(out);
	free(expected);
	free(text);
	free(near);
	cJSON_Delete(subs);
}

static void many_netcore_tags_against_many_attributes(void **state)
{
	(void)state;
	cJSON *subs = cJSON_CreateObject();
	GString *text = g_string_new(NULL), *expected = g_string_new(NULL);
	char name[32], value[32];
	for (int i = 0; i < 4000; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		snprintf(value, sizeof(value), "v%d,", i);
		cJSON_AddStringToObject(subs, name, value);
	}
	for (int i = 0; i < 20000; i++) {
		g_string_append_printf(text, "[%% n%d %%][%%missing%%]", (i * 7) % 4000);
		g_string_append_printf(expected, "v%d,", (i * 7) % 4000);
	}
	char *out;
	size_t len;
	assert_int_equal(subst_apply(text->str, subs, SUBST_NETCORE, SUBST_CONTENT_MAX, &out, &len),
			 0);
	assert_string_equal(out, expected->str);
	free(out);
	g_string_free(text, TRUE);
	g_string_free(expected, TRUE);
	cJSON_Delete(subs);
}

/* Of equal keys or names the first counts. */
static void the_first_of_equal_keys_wins(void **state)
{
	(void)state;
	expect(SUBST_LITERAL, "{'-a-':'1','-a-':'2','x':3}", "-a-x", "1x");
	expect(SUBST_NETCORE, "{'a':'1','a':'2'}", "[%a%]", "1");
	expect(SUBST_LITERAL, "{'bcd':'1','abcdef':'2'}", "abcdeX abcdef", "a1eX 2");
}

#define PAYLOAD                                                                                    \
	"{'from':{'email':'news@acme.test'},'subject':'Hi -n-',"                                   \
	"'reply_to':{'email':'help@acme.test','name':'Help for -n-'},"                             \
	"'content':{'text':'Dear -n-','html':'<p>-n-</p>'},'headers':{'X-A':'-n-'},"               \
	"'personalizations':[{'to':[{'email':'a@x.test'}],'substitutions':{'-n-':'Ann'}},"         \
	"{'to':[{'email':'b@x.test'}],'subject':'Own -n-','substitutions':{'-n-':'Bob'}}],"        \
	"'tag_syntax':'%s'}"

static cJSON *payload(const char *syntax)
{
	char text[1024];
	snprintf(text, sizeof(text), PAYLOAD, syntax);
	return tu_json(text);
}

static void the_view_substitutes_subject_content_and_reply_to_name(void **state)
{
	(void)state;
	cJSON *p = payload("literal");
	const char *why = NULL;
	cJSON *v = subst_view(p, 1, false, &why);
	assert_non_null(v);
	assert_string_equal(tu_text(v, "subject"), "Own Bob");
	assert_string_equal(tu_text(tu_get(v, "content"), "text"), "Dear Bob");
	assert_string_equal(tu_text(tu_get(v, "content"), "html"), "<p>Bob</p>");
	assert_string_equal(tu_text(tu_get(v, "reply_to"), "name"), "Help for Bob");
	assert_string_equal(tu_text(tu_get(v, "reply_to"), "email"), "help@acme.test");
	/* Headers are not substituted; the one personalization is the one asked for. */
	assert_string_equal(tu_text(tu_get(v, "headers"), "X-A"), "-n-");
	const cJSON *ps = tu_get(v, "personalizations");
	assert_int_equal(cJSON_GetArraySize(ps), 1);
	assert_string_equal(tu_text(tu_nth(tu_get(tu_nth(ps, 0), "to"), 0), "email"), "b@x.test");
	cJSON_Delete(v);
	/* The payload itself is untouched. */
	assert_string_equal(tu_text(tu_get(p, "content"), "text"), "Dear -n-");
	cJSON_Delete(p);
}

/* Netcore's tags without a value become "", in a personalization without values too. */
static void netcore_views_leave_reply_to_names_alone(void **state)
{
	(void)state;
	cJSON *p = tu_json("{'from':{'email':'n@acme.test'},'subject':'Hi [%n%]',"
			   "'reply_to':{'email':'h@acme.test','name':'[%n%]'},"
			   "'content':{'text':'[% n %]'},'tag_syntax':'netcore',"
			   "'personalizations':[{'to':[],'substitutions':{'n':'Ann'}},{'to':[]}]}");
	const char *why;
	const char *const subjects[] = {"Hi Ann", "Hi "}, *const texts[] = {"Ann", ""};
	for (int part = 0; part < 2; part++) {
		assert_true(subst_needed(p, part));
		cJSON *v = subst_view(p, part, false, &why);
		assert_string_equal(tu_text(v, "subject"), subjects[part]);
		assert_string_equal(tu_text(tu_get(v, "content"), "text"), texts[part]);
		assert_string_equal(tu_text(tu_get(v, "reply_to"), "name"), "[%n%]");
		cJSON_Delete(v);
	}
	cJSON_Delete(p);
}

/* A payload of one personalization in syntax: content text, and value under name. */
static cJSON *one_value_payload(const char *syntax, const char *text, const char *name,
				const char *value)
{
	cJSON *p =
		tu_json("{'subject':'s','content':{},'personalizations':[{'substitutions':{}}]}");
	cJSON_AddStringToObject(p, "tag_syntax", syntax);
	cJSON_AddStringToObject(cJSON_GetObjectItem(p, "content"), "text", text);
	cJSON_AddStringToObject(
		cJSON_GetObjectItem(
			cJSON_GetArrayItem(cJSON_GetObjectItem(p, "personalizations"), 0),
			"substitutions"),
		name, value);
	return p;
}

static void a_view_too_large_is_refused(void **state)
{
	(void)state;
	size_t n = 1100;
	char *text = malloc(n * 5 + 1), *value = malloc(10001);
	for (size_t i = 0; i < n; i++)
		memcpy(text + i * 5, "[%a%]", 5);
	text[n * 5] = '\0';
	tu_repeat(value, 'x', 10000);
	cJSON *p = one_value_payload("netcore", text, "a", value);
	const char *why = NULL;
	assert_null(subst_view(p, 0, true, &why));
	assert_non_null(why);
	free(text);
	free(value);
	cJSON_Delete(p);
}

/* A value that could grow past the bound by arithmetic but does not is measured and kept. */
static void a_view_under_the_bound_is_measured_not_refused(void **state)
{
	(void)state;
	size_t n = 2 << 20;
	char *text = malloc(n + 1), *value = malloc(10001);
	tu_repeat(text, 'b', n);
	memcpy(text, "a a a", 5);
	tu_repeat(value, 'x', 10000);
	cJSON *p = one_value_payload("literal", text, "a", value);
	const char *why = NULL;
	cJSON *v = subst_view(p, 0, true, &why);
	assert_non_null(v);
	assert_null(why);
	cJSON_Delete(v);
	free(text);
	free(value);
	cJSON_Delete(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(netcore_tags_ignore_whitespace_and_are_case_sensitive),
		cmocka_unit_test(netcore_tags_without_a_value_become_empty),
		cmocka_unit_test(netcore_text_that_is_not_a_tag_stays),
		cmocka_unit_test(values_are_inserted_as_given_and_not_scanned_again),
		cmocka_unit_test(literal_keys_are_whole_tags_longest_first),
		cmocka_unit_test(growth_past_the_bound_is_refused),
		cmocka_unit_test(the_view_substitutes_subject_content_and_reply_to_name),
		cmocka_unit_test(netcore_views_leave_reply_to_names_alone),
		cmocka_unit_test(a_view_too_large_is_refused),
		cmocka_unit_test(many_keys_over_a_long_text_are_matched_in_one_pass),
		cmocka_unit_test(many_netcore_tags_against_many_attributes),
		cmocka_unit_test(the_first_of_equal_keys_wins),
		cmocka_unit_test(a_view_under_the_bound_is_measured_not_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
