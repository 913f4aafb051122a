/* Unit tests for strmap: the hash map behind policy snapshots and drop counters keeps every
 * key's value through growth, visits each key once and can be freed and used again. */
#include "testutil.h"

#include "strmap.h"

#define MANY_KEYS 50000

static void make_key(char *out, size_t n, int i)
{
	snprintf(out, n, "sender%d@acme.test", i);
}

static void count_visit(void *arg, const char *key, uint64_t value)
{
	(void)key;
	(void)value;
	(*(int *)arg)++;
}

static void get_on_empty_map_is_null(void **state)
{
	(void)state;
	struct strmap m = {0};
	assert_null(strmap_get(&m, "news@acme.test"));
	assert_null(strmap_get(&m, ""));
	strmap_free(&m);
}

static void put_inserts_zero(void **state)
{
	(void)state;
	struct strmap m = {0};
	uint64_t *v = strmap_put(&m, "news@acme.test");
	assert_non_null(v);
	assert_int_equal(*v, 0);
	assert_non_null(strmap_get(&m, "news@acme.test"));
	assert_int_equal(*strmap_get(&m, "news@acme.test"), 0);
	strmap_free(&m);
}

static void put_returns_pointer_that_get_sees_until_next_put(void **state)
{
	(void)state;
	struct strmap m = {0};
	uint64_t *v = strmap_put(&m, "news@acme.test");
	*v = 42;
	/* Reads do not move values: the pointer from put stays good across any number of gets. */
	for (int i = 0; i < 3; i++) {
		assert_ptr_equal(strmap_get(&m, "news@acme.test"), v);
		assert_null(strmap_get(&m, "other@acme.test"));
	}
	assert_int_equal(*v, 42);
	strmap_free(&m);
}

static void put_of_existing_key_returns_its_value(void **state)
{
	(void)state;
	struct strmap m = {0};
	*strmap_put(&m, "a") = 7;
	*strmap_put(&m, "b") = 8;
	assert_int_equal(*strmap_put(&m, "a"), 7);
	assert_int_equal(*strmap_put(&m, "b"), 8);
	*strmap_put(&m, "a") += 1;
	assert_int_equal(*strmap_get(&m, "a"), 8);
	assert_int_equal(*strmap_get(&m, "b"), 8);

	/* Putting a key again does not add a second entry for it. */
	int n = 0;
	strmap_each(&m, count_visit, &n);
	assert_int_equal(n, 2);
	strmap_free(&m);
}

static void keys_are_copied_in(void **state)
{
	(void)state;
	struct strmap m = {0};
	char key[32] = "news@acme.test";
	*strmap_put(&m, key) = 5;
	strcpy(key, "gone@acme.test");
	assert_null(strmap_get(&m, "gone@acme.test"));
	assert_non_null(strmap_get(&m, "news@acme.test"));
	assert_int_equal(*strmap_get(&m, "news@acme.test"), 5);
	strmap_free(&m);
}

static void keys_differing_in_case_or_suffix_are_distinct(void **state)
{
	(void)state;
	struct strmap m = {0};
	const char *keys[] = {"news@d.test", "News@d.test", "news+x@d.test", "news@d.tes", ""};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		*strmap_put(&m, keys[i]) = i + 100;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		uint64_t *v = strmap_get(&m, keys[i]);
		if (!v || *v != i + 100)
			fail_msg("key \"%s\" lost its value", keys[i]);
	}
	strmap_free(&m);
}

static void growth_keeps_every_value(void **state)
{
	(void)state;
	struct strmap m = {0};
	char key[64];
	for (int i = 0; i < MANY_KEYS; i++) {
		make_key(key, sizeof(key), i);
		*strmap_put(&m, key) = (uint64_t)i * 3 + 1;
	}
	for (int i = 0; i < MANY_KEYS; i++) {
		make_key(key, sizeof(key), i);
		uint64_t *v = strmap_get(&m, key);
		if (!v)
			fail_msg("key \"%s\" is missing after growth", key);
		if (*v != (uint64_t)i * 3 + 1)
			fail_msg("key \"%s\" has %llu, expected %llu", key, (unsigned long long)*v,
				 (unsigned long long)i * 3 + 1);
	}
	make_key(key, sizeof(key), MANY_KEYS);
	assert_null(strmap_get(&m, key));
	strmap_free(&m);
}

static void growth_keeps_values_of_keys_put_again(void **state)
{
	(void)state;
	struct strmap m = {0};
	char key[64];
	/* Re-putting earlier keys while the map grows must never reset them to 0. */
	for (int i = 0; i < MANY_KEYS; i++) {
		make_key(key, sizeof(key), i);
		*strmap_put(&m, key) = (uint64_t)i + 1;
		make_key(key, sizeof(key), i / 2);
		if (*strmap_put(&m, key) != (uint64_t)(i / 2) + 1)
			fail_msg("re-putting \"%s\" changed its value", key);
	}
	strmap_free(&m);
}

static void absent_key_is_null_at_every_fill_level(void **state)
{
	(void)state;
	struct strmap m = {0};
	char key[64];
	/* Crosses several growth points, including tables that are exactly full or nearly so. */
	for (int i = 0; i < 300; i++) {
		make_key(key, sizeof(key), i);
		*strmap_put(&m, key) = 1;
		assert_null(strmap_get(&m, "absent@acme.test"));
		assert_null(strmap_get(&m, ""));
	}
	strmap_free(&m);
}

struct visits {
	unsigned char *seen;
	int total;
	int wrong_value;
};

static void record_visit(void *arg, const char *key, uint64_t value)
{
	struct visits *v = arg;
	int i;
	if (sscanf(key, "sender%d@acme.test", &i) != 1 || i < 0 || i >= MANY_KEYS)
		fail_msg("visited a key that was never put: \"%s\"", key);
	v->seen[i]++;
	v->total++;
	if (value != (uint64_t)i * 7)
		v->wrong_value++;
}

static void each_visits_every_key_once_with_its_value(void **state)
{
	(void)state;
	struct strmap m = {0};
	char key[64];
	for (int i = 0; i < MANY_KEYS; i++) {
		make_key(key, sizeof(key), i);
		*strmap_put(&m, key) = (uint64_t)i * 7;
	}
	struct visits v = {.seen = calloc(MANY_KEYS, 1)};
	assert_non_null(v.seen);
	strmap_each(&m, record_visit, &v);
	assert_int_equal(v.total, MANY_KEYS);
	assert_int_equal(v.wrong_value, 0);
	for (int i = 0; i < MANY_KEYS; i++)
		if (v.seen[i] != 1)
			fail_msg("key %d was visited %d times", i, v.seen[i]);
	free(v.seen);
	strmap_free(&m);
}

static void each_on_empty_map_visits_nothing(void **state)
{
	(void)state;
	struct strmap m = {0};
	int n = 0;
	strmap_each(&m, count_visit, &n);
	assert_int_equal(n, 0);
}

static void free_resets_map_for_reuse(void **state)
{
	(void)state;
	struct strmap m = {0};
	char key[64];
	for (int i = 0; i < 1000; i++) {
		make_key(key, sizeof(key), i);
		*strmap_put(&m, key) = 9;
	}
	strmap_free(&m);
	make_key(key, sizeof(key), 1);
	assert_null(strmap_get(&m, key));
	int n = 0;
	strmap_each(&m, count_visit, &n);
	assert_int_equal(n, 0);

	assert_int_equal(*strmap_put(&m, key), 0);
	*strmap_put(&m, "again@acme.test") = 3;
	assert_int_equal(*strmap_get(&m, "again@acme.test"), 3);
	strmap_each(&m, count_visit, &n);
	assert_int_equal(n, 2);
	strmap_free(&m);
	/* Freeing an emptied map again is harmless. */
	strmap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(get_on_empty_map_is_null),
		cmocka_unit_test(put_inserts_zero),
		cmocka_unit_test(put_returns_pointer_that_get_sees_until_next_put),
		cmocka_unit_test(put_of_existing_key_returns_its_value),
		cmocka_unit_test(keys_are_copied_in),
		cmocka_unit_test(keys_differing_in_case_or_suffix_are_distinct),
		cmocka_unit_test(growth_keeps_every_value),
		cmocka_unit_test(growth_keeps_values_of_keys_put_again),
		cmocka_unit_test(absent_key_is_null_at_every_fill_level),
		cmocka_unit_test(each_visits_every_key_once_with_its_value),
		cmocka_unit_test(each_on_empty_map_visits_nothing),
		cmocka_unit_test(free_resets_map_for_reuse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
