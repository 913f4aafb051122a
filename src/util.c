/* Helpers shared by every module. Allocation failures are fatal: there is no useful
 * recovery for a gateway that cannot allocate a few bytes. */
#include "util.h"

#include <glib.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		fatal("out of memory (%zu bytes)", n);
	return p;
}

void *xcalloc(size_t count, size_t n)
{
	void *p = calloc(count ? count : 1, n ? n : 1);
	if (!p)
		fatal("out of memory (%zu x %zu bytes)", count, n);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		fatal("out of memory (%zu bytes)", n);
	return q;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

void fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("postern: fatal: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

int util_copy(char *dst, size_t n, const char *src)
{
	size_t len = strlen(src);
	if (len >= n) {
		if (n)
			dst[0] = '\0';
		return -1;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

bool util_utf8(const char *s)
{
	return g_utf8_validate(s, -1, NULL);
}

/* Tests move time forward without sleeping: in a test build (CMake's POSTERN_TEST_CLOCK,
 * which `make test` turns on), when the environment variable of that name names a file,
 * the number of seconds in it is added to the clock. A release build has no such
 * variable, so nothing in a production daemon's environment can shift token expiry. */
#ifdef POSTERN_TEST_CLOCK
static const char *clock_file;
static pthread_once_t clock_once = PTHREAD_ONCE_INIT;

static void clock_init(void)
{
	clock_file = getenv("POSTERN_TEST_CLOCK");
}
#else
static const char *const clock_file = NULL;
#endif

int64_t util_now(void)
{
#ifdef POSTERN_TEST_CLOCK
	pthread_once(&clock_once, clock_init);
#endif
	int64_t now = (int64_t)time(NULL);
	if (clock_file) {
		FILE *f = fopen(clock_file, "r");
		long long offset = 0;
		if (f) {
			if (fscanf(f, "%lld", &offset) != 1)
				offset = 0;
			fclose(f);
		}
		now += offset;
	}
	return now;
}

double util_monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void util_iso8601(int64_t t, char out[static 21])
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
