/* gzip request bodies (Content-Encoding: gzip), inflated with zlib under a size bound. */
#ifndef POSTERN_GZ_H
#define POSTERN_GZ_H

#include <stddef.h>

enum gz_rc {
	GZ_OK,
	GZ_TOO_LARGE, /* the inflated data would pass max; inflating stopped there */
	GZ_CORRUPT,   /* not a complete gzip stream (bad header, checksum, or cut short) */
};

/* Inflates the gzip data in[0..len) (one member or several, as RFC 1952 allows) into a
 * malloc'd, NUL-terminated *out of *out_len bytes, at most max. On failure *out is NULL. */
enum gz_rc gz_inflate(const void *in, size_t len, size_t max, char **out, size_t *out_len);

#endif
