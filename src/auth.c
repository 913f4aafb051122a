/* Password hashing, tokens and comparisons, all through libsodium, so that no secret is
 * stored in the clear and no comparison leaks timing. */
#include "auth.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <time.h>

#include "util.h"

_Static_assert(AUTH_PWHASH_LEN == crypto_pwhash_STRBYTES, "password hash size");

static char dummy_hash[AUTH_PWHASH_LEN];

/* Turns at argon2id: a counter under a lock, ready before anything runs (the CLI hashes
 * before it calls auth_init). */
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slots_freed = PTHREAD_COND_INITIALIZER;
static int slots_busy, slots_waiting;

int auth_init(void)
{
	if (sodium_init() < 0)
		return -1;
	/* A hash of a random password, checked against when there is no such user. */
	char pw[AUTH_TOKEN_LEN];
	auth_token_new(pw);
	return auth_password_hash(pw, dummy_hash);
}

/* Takes a turn: waits up to wait_ms, or without end when wait_ms is negative. */
static bool slot_take(long wait_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	int rc = 0;
	pthread_mutex_lock(&slots_lock);
	/* A check waits on an HTTP thread: only a few may, so a crowd of logins cannot hold
	 * the threads that sends need. (Hashes, from the CLI or a password change, always may.) */
	if (wait_ms >= 0 && slots_busy >= AUTH_PASSWORD_SLOTS &&
	    slots_waiting >= AUTH_PASSWORD_QUEUE)
		rc = ETIMEDOUT;
	slots_waiting++;
	while (slots_busy >= AUTH_PASSWORD_SLOTS && rc == 0)
		rc = wait_ms < 0 ? pthread_cond_wait(&slots_freed, &slots_lock)
				 : pthread_cond_timedwait(&slots_freed, &slots_lock, &until);
	slots_waiting--;
	bool taken = slots_busy < AUTH_PASSWORD_SLOTS;
	if (taken)
		slots_busy++;
	pthread_mutex_unlock(&slots_lock);
	return taken;
}

static void slot_give(void)
{
	pthread_mutex_lock(&slots_lock);
	slots_busy--;
	pthread_cond_signal(&slots_freed);
	pthread_mutex_unlock(&slots_lock);
}

int auth_password_hash(const char *password, char out[AUTH_PWHASH_LEN])
{
	if (!slot_take(-1))
		return -1;
	int rc = crypto_pwhash_str(out, password, strlen(password),
				   crypto_pwhash_OPSLIMIT_INTERACTIVE,
				   crypto_pwhash_MEMLIMIT_INTERACTIVE);
	slot_give();
	return rc;
}

enum auth_check auth_password_check(const char *hash, const char *password)
{
	if (!slot_take(AUTH_PASSWORD_WAIT_MS))
		return AUTH_BUSY;
	bool match =
		crypto_pwhash_str_verify(hash ? hash : dummy_hash, password, strlen(password)) == 0;
	slot_give();
	/* The dummy hash's password is random and forgotten: never a match. */
	return match && hash ? AUTH_MATCH : AUTH_MISMATCH;
}

bool auth_password_acceptable(const char *password)
{
	size_t n = strlen(password);
	return n >= AUTH_PASSWORD_MIN && n <= AUTH_PASSWORD_MAX;
}

static void random_b64(char *out, size_t outlen)
{
	unsigned char raw[32];
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(out, outlen, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
}

void auth_token_new(char out[AUTH_TOKEN_LEN])
{
	random_b64(out, AUTH_TOKEN_LEN);
}

void auth_random_hex(char *out, size_t nbytes)
{
	unsigned char raw[64];
	if (nbytes > sizeof(raw))
		nbytes = sizeof(raw);
	randombytes_buf(raw, nbytes);
	sodium_bin2hex(out, nbytes * 2 + 1, raw, nbytes);
}

void auth_unique_hex(char *out, size_t nbytes)
{
	static _Thread_local unsigned char seed[randombytes_SEEDBYTES];
	static _Thread_local uint64_t counter;
	unsigned char raw[64];
	/* The counter takes the seed's first 8 bytes; the other 24 stay the random secret. */
	if (counter++ == 0)
		randombytes_buf(seed, sizeof(seed));
	memcpy(seed, &counter, sizeof(counter));
	if (nbytes > sizeof(raw))
		nbytes = sizeof(raw);
	randombytes_buf_deterministic(raw, nbytes, seed);
	sodium_bin2hex(out, nbytes * 2 + 1, raw, nbytes);
}

void auth_api_key_new(char out[AUTH_KEY_LEN])
{
	memcpy(out, AUTH_KEY_PREFIX, strlen(AUTH_KEY_PREFIX));
	random_b64(out + strlen(AUTH_KEY_PREFIX), AUTH_KEY_LEN - strlen(AUTH_KEY_PREFIX));
}

void auth_token_hash(const char *token, char out[AUTH_HASH_HEX])
{
	unsigned char h[32];
	crypto_generichash(h, sizeof(h), (const unsigned char *)token, strlen(token), NULL, 0);
	sodium_bin2hex(out, AUTH_HASH_HEX, h, sizeof(h));
}

void auth_token_derive(const char *purpose, const char *token, char out[AUTH_TOKEN_LEN])
{
	unsigned char key[crypto_generichash_KEYBYTES];
	unsigned char h[32];

	/* The purpose label becomes the hash key, so each purpose yields unrelated values. */
	crypto_generichash(key, sizeof(key), (const unsigned char *)purpose, strlen(purpose), NULL,
			   0);
	crypto_generichash(h, sizeof(h), (const unsigned char *)token, strlen(token), key,
			   sizeof(key));
	sodium_bin2base64(out, AUTH_TOKEN_LEN, h, sizeof(h),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

bool auth_equal(const char *a, const char *b)
{
	size_t n = strlen(a);
	if (n != strlen(b))
		return false;
	return sodium_memcmp(a, b, n) == 0;
}

bool auth_token_wellformed(const char *s, size_t len)
{
	if (strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_';
		if (!ok)
			return false;
	}
	return true;
}
