/* Secrets: argon2id password hashes, random tokens, token hashes, constant-time compare.
 * Functions over libsodium, the only state the turns at argon2id; nothing here touches the
 * store. */
#ifndef POSTERN_AUTH_H
#define POSTERN_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_HASH_HEX	  65  /* hex BLAKE2b-256 plus NUL */
#define AUTH_PWHASH_LEN	  128 /* crypto_pwhash_STRBYTES */
#define AUTH_TOKEN_LEN	  44  /* 32 random bytes, base64url without padding, plus NUL */
#define AUTH_KEY_PREFIX	  "pst_"
#define AUTH_KEY_LEN	  (4 + 43 + 1)
#define AUTH_KEY_SHOWN	  12 /* characters of a key kept to recognise it in lists */
#define AUTH_PASSWORD_MIN 8
#define AUTH_PASSWORD_MAX 1024

/* argon2id takes 64 MiB per hash or check: at most this many run at once, so a burst of
 * logins cannot exhaust memory. A check waits this long for its turn, then gives up. */
#define AUTH_PASSWORD_SLOTS   2
#define AUTH_PASSWORD_WAIT_MS 2000
#define AUTH_PASSWORD_QUEUE   4 /* checks that may wait for a turn at once; more are busy */

int auth_init(void);

/* Passwords: argon2id with libsodium's interactive limits. Hashing waits for its turn. */
int auth_password_hash(const char *password, char out[AUTH_PWHASH_LEN]);

enum auth_check {
	AUTH_MISMATCH,
	AUTH_MATCH,
	AUTH_BUSY, /* no turn within AUTH_PASSWORD_WAIT_MS: nothing was checked */
};
/* Checks password against hash. A NULL hash stands for a user that does not exist: the
 * check does the same work against a hash no password matches. */
enum auth_check auth_password_check(const char *hash, const char *password);
bool auth_password_acceptable(const char *password);

/* A new token of 32 random bytes, base64url without padding. */
void auth_token_new(char out[AUTH_TOKEN_LEN]);
/* Writes nbytes random bytes from the system generator as lower-case hex (2 * nbytes
 * characters and NUL) into out. */
void auth_random_hex(char *out, size_t nbytes);
/* The same for identifiers that must be unique but are no secret (message and request
 * ids): from a per-thread stream seeded once, so no system call per id. */
void auth_unique_hex(char *out, size_t nbytes);
/* A new API key: "pst_" and 32 random bytes, base64url. */
void auth_api_key_new(char out[AUTH_KEY_LEN]);
/* What is stored for a token or key: hex BLAKE2b-256 of it. Tokens carry 256 bits of
 * entropy, so a fast hash is enough; only passwords need argon2id. */
void auth_token_hash(const char *token, char out[AUTH_HASH_HEX]);
/* A value derived from a token under a purpose label (for example the CSRF token of a
 * session), so it need not be stored and cannot be computed without the token. */
void auth_token_derive(const char *purpose, const char *token, char out[AUTH_TOKEN_LEN]);
/* Constant-time equality of two NUL-terminated strings (the length is not secret). */
bool auth_equal(const char *a, const char *b);
/* True when s looks like a token this module made (base64url, expected length). */
bool auth_token_wellformed(const char *s, size_t len);

#endif
