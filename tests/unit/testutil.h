/* What the cmocka suites share: cmocka's headers in the order it needs them, payloads written
 * with ' for ", cJSON look-ups that fail the test instead of returning NULL, files in /tmp and
 * string checks. All static inline, so a suite that uses none of a helper pays nothing. */
#ifndef POSTERN_TESTUTIL_H
#define POSTERN_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#define TU_PATH_MAX 128

/* A test of one row of a table, run by fn and named for the row, so that a table of cases
 * reports each case as a test of its own. */
static inline struct CMUnitTest tu_row_test(const char *name, CMUnitTestFunction fn,
					    const void *row)
{
	return (struct CMUnitTest){.name = name, .test_func = fn, .initial_state = (void *)row};
}

/* Payloads are written with ' for " so they read like JSON in C; this swaps the quotes back.
 * No payload needs an apostrophe. */
static inline cJSON *tu_json(const char *text)
{
	char *s = strdup(text);
	assert_non_null(s);
	for (char *p = s; *p; p++)
		if (*p == '\'')
			*p = '"';
	cJSON *parsed = cJSON_Parse(s);
	if (!parsed)
		fail_msg("test text is not JSON: %s", s);
	free(s);
	return parsed;
}

static inline const cJSON *tu_get(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v)
		fail_msg("object has no \"%s\"", key);
	return v;
}

static inline const char *tu_text(const cJSON *o, const char *key)
{
	const cJSON *v = tu_get(o, key);
	if (!cJSON_IsString(v))
		fail_msg("\"%s\" is not a string", key);
	return v->valuestring;
}

static inline const cJSON *tu_nth(const cJSON *arr, int i)
{
	assert_true(cJSON_IsArray(arr));
	const cJSON *v = cJSON_GetArrayItem(arr, i);
	if (!v)
		fail_msg("array has no item %d", i);
	return v;
}

static inline void tu_assert_contains(const char *haystack, const char *needle)
{
	if (!strstr(haystack, needle))
		fail_msg("\"%s\" not found in:\n%s", needle, haystack);
}

/* n copies of c, terminated: out holds n + 1 bytes. */
static inline void tu_repeat(char *out, char c, size_t n)
{
	memset(out, c, n);
	out[n] = '\0';
}

static inline void tu_write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* The start of a file (up to 255 bytes), in a buffer the next call reuses. */
static inline const char *tu_read_file(const char *path)
{
	static char buf[256];
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* A new file in /tmp holding text; its name goes to path. The caller unlinks it. */
static inline void tu_temp_file(char path[TU_PATH_MAX], const char *text)
{
	snprintf(path, TU_PATH_MAX, "/tmp/postern-test-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	size_t n = strlen(text);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	assert_int_equal(close(fd), 0);
}

/* A new directory in /tmp; its name goes to dir. */
static inline void tu_temp_dir(char dir[TU_PATH_MAX])
{
	snprintf(dir, TU_PATH_MAX, "/tmp/postern-test-XXXXXX");
	if (!mkdtemp(dir))
		fail_msg("cannot make a directory in /tmp");
}

/* Removes a SQLite database at path, its -wal and -shm files beside it, and then dir, the
 * tu_temp_dir it was made in. */
static inline void tu_remove_sqlite(const char *path, const char *dir)
{
	char side[TU_PATH_MAX + 32];
	remove(path);
	for (size_t i = 0; i < 2; i++) {
		snprintf(side, sizeof(side), "%s%s", path, i ? "-shm" : "-wal");
		remove(side);
	}
	rmdir(dir);
}

#endif
