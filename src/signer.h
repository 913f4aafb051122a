/* DKIM signing with libopendkim: relaxed/relaxed, rsa-sha256, over a fixed list of headers.
 * libopendkim owns the dkim_ prefix, so this module is signer_. One struct signer per
 * delivery worker thread: each wraps its own DKIM_LIB. */
#ifndef POSTERN_SIGNER_H
#define POSTERN_SIGNER_H

#include <stddef.h>

struct signer;

/* NULL with err when libopendkim cannot be set up. */
struct signer *signer_new(char *err, size_t errlen);
void signer_free(struct signer *s);

/* Signs a complete message (CRLF line endings, headers final) for domain with selector and the
 * PEM private key, signing the headers from, to, cc, subject, date, message-id, mime-version,
 * content-type and reply-to (those present), and from, subject, to and date once more than
 * they occur, so that none can be added after signing. Returns 0 with *out = "DKIM-Signature:
 * ...\r\n" followed by the original message (malloc'd, NUL-terminated, *outlen bytes), or -1 with
 * err. The signature header is folded to lines under 78 columns with CRLF. */
int signer_sign(struct signer *s, const char *pem, const char *selector, const char *domain,
		const char *msg, size_t len, char **out, size_t *outlen, char *err, size_t errlen);

#endif
