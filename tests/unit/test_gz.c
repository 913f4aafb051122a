/* Unit tests for gz: gzip bodies inflate whole, one member or several; the size bound holds
 * as output grows (a small bomb is stopped at the bound); damaged or cut streams and data
 * that is not gzip are refused. The gzip data is made here by zlib itself. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "gz.h"

/* Compresses data into a gzip member at out (room for cap bytes); returns its length. */
static size_t gzip(const void *data, size_t len, unsigned char *out, size_t cap)
{
	z_stream z = {0};
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
			 Z_OK);
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	size_t n = z.total_out;
	deflateEnd(&z);
	return n;
}

static void test_round_trip(void **state)
{
	(void)state;
	const char *json = "{\"from\":{\"email\":\"a@b.test\"},\"subject\":\"hi\"}";
	unsigned char gz[256];
	size_t n = gzip(json, strlen(json), gz, sizeof(gz));
	char *out;
	size_t len;
	assert_int_equal(gz_inflate(gz, n, 1024, &out, &len), GZ_OK);
	assert_int_equal(len, strlen(json));
	assert_string_equal(out, json); /* NUL-terminated */
	free(out);
}

static void test_members_are_joined(void **state)
{
	(void)state;
	unsigned char gz[256];
	size_t n = gzip("{\"a\":", 5, gz, sizeof(gz));
	n += gzip("1}", 2, gz + n, sizeof(gz) - n);
	char *out;
	size_t len;
	assert_int_equal(gz_inflate(gz, n, 1024, &out, &len), GZ_OK);
	assert_string_equal(out, "{\"a\":1}");
	free(out);
}

static void test_bound_is_exact_and_bombs_stop_there(void **state)
{
	(void)state;
	enum { BIG = 4 << 20 };
	char *zeros = calloc(1, BIG);
	unsigned char *gz = malloc(BIG / 100);
	size_t n = gzip(zeros, BIG, gz, BIG / 100);
	assert_true(n < 8192); /* 4 MiB of zeros is a few kB of gzip */
	char *out;
	size_t len;
	assert_int_equal(gz_inflate(gz, n, BIG, &out, &len), GZ_OK);
	assert_int_equal(len, BIG);
	free(out);
	assert_int_equal(gz_inflate(gz, n, BIG - 1, &out, &len), GZ_TOO_LARGE);
	assert_null(out);
	assert_int_equal(gz_inflate(gz, n, 1000, &out, &len), GZ_TOO_LARGE);
	assert_null(out);
	free(zeros);
	free(gz);
}

static void test_damage_is_refused(void **state)
{
	(void)state;
	const char *json = "{\"subject\":\"a body long enough to compress into some bytes\"}";
	unsigned char gz[256], bad[256];
	size_t n = gzip(json, strlen(json), gz, sizeof(gz));
	char *out;
	size_t len;
	/* cut short anywhere, including inside the trailer */
	for (size_t cut = 0; cut < n; cut++)
		assert_int_equal(gz_inflate(gz, cut, 1024, &out, &len), GZ_CORRUPT);
	/* a flipped byte in the data or the CRC */
	memcpy(bad, gz, n);
	bad[n - 6] ^= 0x55;
	assert_int_equal(gz_inflate(bad, n, 1024, &out, &len), GZ_CORRUPT);
	/* trailing bytes that are not another member */
	memcpy(bad, gz, n);
	memcpy(bad + n, "junk", 4);
	assert_int_equal(gz_inflate(bad, n + 4, 1024, &out, &len), GZ_CORRUPT);
	/* plain JSON, sent with the header but not compressed */
	assert_int_equal(gz_inflate(json, strlen(json), 1024, &out, &len), GZ_CORRUPT);
	assert_null(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_members_are_joined),
		cmocka_unit_test(test_bound_is_exact_and_bombs_stop_there),
		cmocka_unit_test(test_damage_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
