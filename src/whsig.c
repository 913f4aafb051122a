/* Webhook signatures as receivers check them: Standard Webhooks' HMAC-SHA256 under a
 * "whsec_" secret (libsodium) and SendGrid's ECDSA P-256 over timestamp and body (OpenSSL).
 * Secrets and private keys are zeroed once used; nothing here touches the network or disk. */
#include "whsig.h"

#include <inttypes.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkimkey.h"
#include "util.h"

#define SECRET_PREFIX  "whsec_"
#define SECRET_BYTES   24
#define SECRET_KEY_MAX 64 /* bytes of a secret we accept to sign with */
#define B64	       sodium_base64_VARIANT_ORIGINAL

int whsig_secret_new(char out[WHSIG_SECRET_MAX])
{
	unsigned char key[SECRET_BYTES];
	size_t prefix = strlen(SECRET_PREFIX);
	if (sodium_init() < 0)
		return -1;
	randombytes_buf(key, sizeof(key));
	memcpy(out, SECRET_PREFIX, prefix);
	sodium_bin2base64(out + prefix, WHSIG_SECRET_MAX - prefix, key, sizeof(key), B64);
	sodium_memzero(key, sizeof(key));
	return 0;
}

/* "<prefix><base64 of bin>" into out, or -1 when it does not fit. */
static int base64_text(char *out, size_t n, const char *prefix, const unsigned char *bin,
		       size_t len)
{
	size_t p = strlen(prefix);
	if (p + sodium_base64_ENCODED_LEN(len, B64) > n)
		return -1;
	memcpy(out, prefix, p);
	sodium_bin2base64(out + p, n - p, bin, len, B64);
	return 0;
}

int whsig_standard_sign(const char *secret, const char *id, int64_t timestamp, const char *body,
			char out[WHSIG_SIGNATURE_MAX])
{
	unsigned char key[SECRET_KEY_MAX], mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;
	size_t keylen = 0;
	char ts[24];
	int rc = -1;

	if (strncmp(secret, SECRET_PREFIX, strlen(SECRET_PREFIX)) == 0)
		secret += strlen(SECRET_PREFIX);
	if (sodium_base642bin(key, sizeof(key), secret, strlen(secret), NULL, &keylen, NULL, B64) <
		    0 ||
	    keylen == 0)
		goto done;
	snprintf(ts, sizeof(ts), "%" PRId64, timestamp);
	crypto_auth_hmacsha256_init(&st, key, keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)id, strlen(id));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, strlen(ts));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, strlen(body));
	crypto_auth_hmacsha256_final(&st, mac);
	rc = base64_text(out, WHSIG_SIGNATURE_MAX, "v1,", mac, sizeof(mac));
done:
	sodium_memzero(key, sizeof(key));
	sodium_memzero(&st, sizeof(st));
	return rc;
}

/* The private key as unencrypted PKCS#8 PEM, malloc'd; the BIO's memory is cleared when
 * freed. NULL on failure. */
static char *private_pem(EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	char *data, *pem = NULL;
	if (bio && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1) {
		long len = BIO_get_mem_data(bio, &data);
		pem = xmalloc((size_t)len + 1);
		memcpy(pem, data, (size_t)len);
		pem[len] = '\0';
	}
	BIO_free(bio);
	return pem;
}

/* Base64 of the DER SubjectPublicKeyInfo of key. 0, or -1. */
static int public_spki(EVP_PKEY *key, char out[WHSIG_PUBLIC_KEY_MAX])
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(key, &der);
	int rc = len > 0 ? base64_text(out, WHSIG_PUBLIC_KEY_MAX, "", der, (size_t)len) : -1;
	OPENSSL_free(der);
	return rc;
}

int whsig_ecdsa_new(char **pem, char public_b64[WHSIG_PUBLIC_KEY_MAX])
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	*pem = key ? private_pem(key) : NULL;
	if (*pem && public_spki(key, public_b64) < 0) {
		whsig_free(*pem);
		*pem = NULL;
	}
	EVP_PKEY_free(key);
	return *pem ? 0 : -1;
}

/* The P-256 private key of pem, or NULL when pem holds anything else. */
static EVP_PKEY *read_p256(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	char curve[32];
	BIO_free(bio);
	if (key && (!EVP_PKEY_is_a(key, "EC") ||
		    EVP_PKEY_get_utf8_string_param(key, "group", curve, sizeof(curve), NULL) != 1 ||
		    strcmp(curve, "prime256v1") != 0)) {
		EVP_PKEY_free(key);
		key = NULL;
	}
	return key;
}

int whsig_sendgrid_sign(const char *pem, int64_t timestamp, const char *body,
			char out[WHSIG_SIGNATURE_MAX])
{
	EVP_PKEY *key = read_p256(pem);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char sig[EVP_MAX_MD_SIZE * 2 + 16];
	size_t len = sizeof(sig);
	char ts[24];
	int rc = -1;

	snprintf(ts, sizeof(ts), "%" PRId64, timestamp);
	if (key && ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestSignUpdate(ctx, ts, strlen(ts)) == 1 &&
	    EVP_DigestSignUpdate(ctx, body, strlen(body)) == 1 &&
	    EVP_DigestSignFinal(ctx, sig, &len) == 1)
		rc = base64_text(out, WHSIG_SIGNATURE_MAX, "", sig, len);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(key);
	return rc;
}

/* An opened secret comes from dkimkey_open, so it goes back the way dkimkey's keys do. */
void whsig_free(char *secret)
{
	dkimkey_free_pem(secret);
}
