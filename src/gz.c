/* gzip request bodies, inflated with zlib. The bound is checked as output grows, so a small
 * body that would inflate to gigabytes costs no more than max bytes of work and memory. */
#include "gz.h"

#include <stdlib.h>
#include <zlib.h>

#include "util.h"

enum gz_rc gz_inflate(const void *in, size_t len, size_t max, char **out, size_t *out_len)
{
	/* Room for one byte past max (which tells "too large") and the NUL. */
	const size_t limit = max + 2;
	size_t cap = len < limit / 4 && len * 4 + 1024 < limit ? len * 4 + 1024 : limit;
	size_t n = 0;
	enum gz_rc rc = GZ_CORRUPT;
	z_stream z = {0};
	char *buf;

	*out = NULL;
	*out_len = 0;
	/* 16 + MAX_WBITS: a gzip wrapper only (no bare zlib or deflate data). */
	if (len == 0 || inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
		return GZ_CORRUPT;
	buf = xmalloc(cap);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len; /* a body is at most HTTP_BODY_MAX */
	for (;;) {
		if (n == cap - 1) {
			cap = cap * 2 < limit ? cap * 2 : limit;
			buf = xrealloc(buf, cap);
		}
		z.next_out = (Bytef *)buf + n;
		z.avail_out = (uInt)(cap - 1 - n);
		int zr = inflate(&z, Z_NO_FLUSH);
		n = (size_t)((char *)z.next_out - buf);
		if (n > max) {
			rc = GZ_TOO_LARGE;
			break;
		}
		if (zr == Z_STREAM_END) {
			if (z.avail_in == 0) {
				rc = GZ_OK;
				break;
			}
			/* Another member follows (anything else there fails as corrupt). */
			if (inflateReset(&z) != Z_OK)
				break;
			continue;
		}
		/* inflate stops when the output is full (grow it and go on) or the input is
		 * used up before the stream's end (cut short); anything else is bad data. */
		if ((zr != Z_OK && zr != Z_BUF_ERROR) || z.avail_out != 0)
			break;
	}
	inflateEnd(&z);
	if (rc != GZ_OK) {
		free(buf);
		return rc;
	}
	buf[n] = '\0';
	*out = buf;
	*out_len = n;
	return GZ_OK;
}
