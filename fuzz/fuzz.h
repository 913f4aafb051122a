/* What the fuzz targets share: a check that aborts with a message (assert() would vanish
 * under NDEBUG), and turning the fuzzer's bytes into a NUL-terminated string. */
#ifndef POSTERN_FUZZ_H
#define POSTERN_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz check failed: %s (%s:%d)\n  ", #cond, __FILE__,      \
				__LINE__);                                                         \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* The input as a C string, cut at its first NUL as any caller's string would be. Exactly
 * size + 1 bytes, so AddressSanitizer sees a read past the terminator. */
static inline char *fuzz_cstring(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
