/* Small helpers that every module uses: allocation that dies loudly, clocks, time formatting. */
#ifndef POSTERN_UTIL_H
#define POSTERN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
void fatal(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

/* Copies src into dst of size n; returns -1 (and leaves dst empty) when it does not fit. */
int util_copy(char *dst, size_t n, const char *src);

/* True when s is valid UTF-8: what every string must be before it is stored (PostgreSQL
 * refuses anything else) or echoed back in JSON. */
bool util_utf8(const char *s);

int64_t util_now(void);	     /* seconds since the epoch */
double util_monotonic(void); /* seconds, for durations */
/* Writes "2026-11-26T02:32:19Z" for t into out (at least 21 bytes). */
void util_iso8601(int64_t t, char out[static 21]);

#endif
