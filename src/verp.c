/* VERP return paths: b-<uid>-<tag>@<domain>, the tag the first bytes of a keyed BLAKE2b
 * over the message id, in hex. libsodium only; the parse refuses any deviation from the
 * exact shape before it spends a MAC on the address. */
#include "verp.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "addr.h"

#define VERP_KEY_ID	 1
#define VERP_KEY_CONTEXT "pstnverp" /* crypto_kdf_CONTEXTBYTES characters */
#define VERP_PREFIX	 "b-"

_Static_assert(VERP_KEY_LEN == crypto_generichash_KEYBYTES, "the tag key is a BLAKE2b key");
_Static_assert(DKIMKEY_MASTER_LEN == crypto_kdf_KEYBYTES, "the master key is a KDF key");
_Static_assert(VERP_TAG_LEN % 2 == 0 && VERP_TAG_LEN / 2 <= crypto_generichash_BYTES_MIN,
	       "the tag is a prefix of the shortest BLAKE2b output");

void verp_key(const unsigned char master[DKIMKEY_MASTER_LEN], unsigned char key[VERP_KEY_LEN])
{
	crypto_kdf_derive_from_key(key, VERP_KEY_LEN, VERP_KEY_ID, VERP_KEY_CONTEXT, master);
}

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* The uid's length when uid is 1 to 40 lower-case hex digits, else 0. */
static size_t uid_len(const char *uid, size_t n)
{
	if (n == 0 || n >= VERP_UID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_lower_hex(uid[i]))
			return 0;
	return n;
}

static void verp_tag(const unsigned char key[VERP_KEY_LEN], const char *uid, size_t n,
		     char tag[VERP_TAG_LEN + 1])
{
	unsigned char mac[crypto_generichash_BYTES_MIN];
	crypto_generichash(mac, sizeof(mac), (const unsigned char *)uid, n, key, VERP_KEY_LEN);
	sodium_bin2hex(tag, VERP_TAG_LEN + 1, mac, VERP_TAG_LEN / 2);
}

int verp_address(const unsigned char key[VERP_KEY_LEN], const char *domain, const char *uid,
		 char *out, size_t n)
{
	size_t len = uid_len(uid, strlen(uid));
	if (len == 0 || !*domain)
		return -1;
	char tag[VERP_TAG_LEN + 1];
	verp_tag(key, uid, len, tag);
	int w = snprintf(out, n, VERP_PREFIX "%s-%s@%s", uid, tag, domain);
	if (w < 0 || (size_t)w >= n || (size_t)w >= ADDR_MAX) {
		if (n > 0)
			out[0] = '\0';
		return -1;
	}
	return 0;
}

/* The local part "b-<uid>-<tag>" (already in lower case), split: the uid into uid, the
 * tag into tag. False at the first thing out of shape. */
static bool verp_split(const char *local, size_t n, char uid[VERP_UID_MAX],
		       char tag[VERP_TAG_LEN + 1])
{
	size_t plen = strlen(VERP_PREFIX);
	if (n < plen || memcmp(local, VERP_PREFIX, plen) != 0)
		return false;
	const char *u = local + plen;
	const char *end = local + n;
	const char *dash = memchr(u, '-', (size_t)(end - u));
	if (!dash)
		return false;
	size_t ulen = uid_len(u, (size_t)(dash - u));
	if (ulen == 0)
		return false;
	const char *t = dash + 1;
	if ((size_t)(end - t) != VERP_TAG_LEN)
		return false;
	for (size_t i = 0; i < VERP_TAG_LEN; i++)
		if (!is_lower_hex(t[i]))
			return false;
	memcpy(uid, u, ulen);
	uid[ulen] = '\0';
	memcpy(tag, t, VERP_TAG_LEN);
	tag[VERP_TAG_LEN] = '\0';
	return true;
}

bool verp_parse(const unsigned char key[VERP_KEY_LEN], const char *domain, const char *address,
		char uid[VERP_UID_MAX])
{
	char lower[ADDR_MAX];
	size_t n = strlen(address);
	uid[0] = '\0';
	if (n >= sizeof(lower) || !*domain)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = address[i];
		lower[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	const char *at = strrchr(lower, '@');
	if (!at || strcasecmp(at + 1, domain) != 0)
		return false;
	char u[VERP_UID_MAX], tag[VERP_TAG_LEN + 1], want[VERP_TAG_LEN + 1];
	if (!verp_split(lower, (size_t)(at - lower), u, tag))
		return false;
	verp_tag(key, u, strlen(u), want);
	if (sodium_memcmp(tag, want, VERP_TAG_LEN) != 0)
		return false;
	memcpy(uid, u, strlen(u) + 1);
	return true;
}
