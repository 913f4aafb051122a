/* Webhook signing material: Standard Webhooks secrets and HMAC-SHA256 signatures
 * (libsodium), SendGrid's ECDSA P-256 keys and signatures (OpenSSL). No I/O. */
#ifndef POSTERN_WHSIG_H
#define POSTERN_WHSIG_H

#include <stddef.h>
#include <stdint.h>

#define WHSIG_SECRET_MAX     64	 /* "whsec_" + base64 of the secret's bytes, with the NUL */
#define WHSIG_SIGNATURE_MAX  256 /* a signature header's value, with the NUL */
#define WHSIG_PUBLIC_KEY_MAX 256 /* base64 of a DER SubjectPublicKeyInfo, with the NUL */

/* A new random secret, "whsec_<base64 of 24 bytes>". 0, or -1. */
int whsig_secret_new(char out[WHSIG_SECRET_MAX]);
/* The webhook-signature value for a Standard Webhooks delivery: "v1,<base64 HMAC-SHA256 of
 * id.timestamp.body under the secret's bytes>". -1 when the secret is malformed. */
int whsig_standard_sign(const char *secret, const char *id, int64_t timestamp, const char *body,
			char out[WHSIG_SIGNATURE_MAX]);
/* A new P-256 key: its private key as PEM (malloc'd, *pem) and its public key as base64 of
 * the DER SubjectPublicKeyInfo. 0, or -1. */
int whsig_ecdsa_new(char **pem, char public_b64[WHSIG_PUBLIC_KEY_MAX]);
/* SendGrid's signature: base64 of the DER ECDSA signature over SHA-256 of timestamp
 * (decimal text) followed by body. 0, or -1. */
int whsig_sendgrid_sign(const char *pem, int64_t timestamp, const char *body,
			char out[WHSIG_SIGNATURE_MAX]);
/* Zeroes and frees a PEM from whsig_ecdsa_new or an opened secret. */
void whsig_free(char *secret);

#endif
