/* DKIM keys: the operator's master key file, RSA key generation, sealing private keys under
 * the master key for storage, and the DNS record that publishes a public key. Pure except for
 * dkimkey_master_load, which reads (and may create) one file, and dkimkey_master_verify,
 * which compares the key with the store's. */
#ifndef POSTERN_DKIMKEY_H
#define POSTERN_DKIMKEY_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

#define DKIMKEY_MASTER_LEN 32
#define DKIMKEY_CHECK_HEX  33 /* a check value: 32 hex characters and a NUL */

/* Reads the 32-byte master key from path (64 hex characters, optional trailing newline). With
 * create and no file, writes a new random key with mode 0600 first. 0, or -1 with err naming
 * the path. Refuses a file readable by group/others (mode & 077) with a clear message. */
int dkimkey_master_load(const char *path, bool create, unsigned char key[DKIMKEY_MASTER_LEN],
			char *err, size_t errlen);

/* The master key's check value: a keyed BLAKE2b of a fixed label. It tells whether two
 * keys are the same without revealing anything about either. */
void dkimkey_check_value(const unsigned char master[DKIMKEY_MASTER_LEN],
			 char out[DKIMKEY_CHECK_HEX]);

/* Refuses a master key other than the one the store's DKIM keys are sealed with (its check
 * value is kept in the store, written by the first process that opens it with a key). 0, or
 * -1 with one line in err naming path and [dkim] master_key_file. */
int dkimkey_master_verify(struct store *s, const unsigned char master[DKIMKEY_MASTER_LEN],
			  const char *path, char *err, size_t errlen);

/* A new RSA-2048 key (OpenSSL EVP): the private key as PEM (PKCS#8) and the public key as
 * base64 DER SubjectPublicKeyInfo, the p= value of the DNS record. Both malloc'd; free the
 * private key with dkimkey_free_pem. 0 or -1. */
int dkimkey_generate(char **private_pem, char **public_b64);

/* Seals a PEM (or any secret text) under the master key, or a key derived from it, for
 * storage: base64(nonce || crypto_secretbox_easy(...)). malloc'd, NULL on failure. */
char *dkimkey_seal(const unsigned char master[DKIMKEY_MASTER_LEN], const char *pem);

/* Opens a sealed key; NULL when the master key is wrong or the text was altered. The caller
 * frees with dkimkey_free_pem. */
char *dkimkey_open(const unsigned char master[DKIMKEY_MASTER_LEN], const char *sealed);

/* Wipes a private key (sodium_memzero), then frees it. NULL is fine. */
void dkimkey_free_pem(char *pem);

/* The TXT record value for a public key: "v=DKIM1; k=rsa; p=<public_b64>". malloc'd. */
char *dkimkey_record(const char *public_b64);

#endif
