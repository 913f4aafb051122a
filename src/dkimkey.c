/* DKIM key material: the master key file, RSA-2048 key pairs from OpenSSL, and private keys
 * sealed with libsodium's secretbox so the store never holds one in the clear. Only the master
 * key touches the disk; everything else works on strings. */
#include "dkimkey.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define HEX_LEN	    (2 * DKIMKEY_MASTER_LEN)
#define B64	    sodium_base64_VARIANT_ORIGINAL
#define BOX_EXTRA   (crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
#define RSA_BITS    2048
#define RECORD_PRE  "v=DKIM1; k=rsa; p="
#define CHECK_LABEL "postern dkim master key check v1"

/* O_EXCL: when two processes race to create the file, the loser reads the winner's key. */
static int master_create(const char *path, char *err, size_t errlen)
{
	unsigned char key[DKIMKEY_MASTER_LEN];
	char hex[HEX_LEN + 2];
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return 0;
		snprintf(err, errlen, "%s: cannot create master key: %s", path, strerror(errno));
		return -1;
	}
	randombytes_buf(key, sizeof(key));
	sodium_bin2hex(hex, sizeof(hex), key, sizeof(key));
	hex[HEX_LEN] = '\n';
	bool ok = fchmod(fd, 0600) == 0 && write(fd, hex, HEX_LEN + 1) == HEX_LEN + 1 &&
		  fsync(fd) == 0;
	int saved = errno;
	ok = close(fd) == 0 && ok;
	sodium_memzero(key, sizeof(key));
	sodium_memzero(hex, sizeof(hex));
	if (!ok) {
		unlink(path);
		snprintf(err, errlen, "%s: cannot write master key: %s", path, strerror(saved));
		return -1;
	}
	return 0;
}

static int master_read(int fd, const char *path, unsigned char key[DKIMKEY_MASTER_LEN], char *err,
		       size_t errlen)
{
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: master key is not a regular file", path);
		return -1;
	}
	/* A key others can read is a key others may have copied: make the operator fix it. */
	if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "%s: master key is accessible by group or others (mode %04o); "
			 "run chmod 600 on it",
			 path, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	char buf[HEX_LEN + 3];
	size_t n = 0;
	ssize_t r;
	while (n < sizeof(buf) && (r = read(fd, buf + n, sizeof(buf) - n)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: cannot read master key: %s", path,
				 strerror(errno));
			return -1;
		}
		n += (size_t)r;
	}
	size_t bin = 0;
	const char *end = NULL;
	bool ok = (n == HEX_LEN || (n == HEX_LEN + 1 && buf[HEX_LEN] == '\n')) &&
		  sodium_hex2bin(key, DKIMKEY_MASTER_LEN, buf, HEX_LEN, NULL, &bin, &end) == 0 &&
		  bin == DKIMKEY_MASTER_LEN && end == buf + HEX_LEN;
	sodium_memzero(buf, sizeof(buf));
	if (!ok) {
		sodium_memzero(key, DKIMKEY_MASTER_LEN);
		snprintf(err, errlen, "%s: malformed master key (expected %d hex characters)", path,
			 HEX_LEN);
		return -1;
	}
	return 0;
}

int dkimkey_master_load(const char *path, bool create, unsigned char key[DKIMKEY_MASTER_LEN],
			char *err, size_t errlen)
{
	if (sodium_init() < 0) {
		snprintf(err, errlen, "%s: libsodium cannot be initialised", path);
		return -1;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		if (master_create(path, err, errlen) != 0)
			return -1;
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open master key: %s", path, strerror(errno));
		return -1;
	}
	int rc = master_read(fd, path, key, err, errlen);
	close(fd);
	return rc;
}

void dkimkey_check_value(const unsigned char master[DKIMKEY_MASTER_LEN],
			 char out[DKIMKEY_CHECK_HEX])
{
	unsigned char mac[(DKIMKEY_CHECK_HEX - 1) / 2];
	crypto_generichash(mac, sizeof(mac), (const unsigned char *)CHECK_LABEL,
			   strlen(CHECK_LABEL), master, DKIMKEY_MASTER_LEN);
	sodium_bin2hex(out, DKIMKEY_CHECK_HEX, mac, sizeof(mac));
}

static bool master_opens(void *master, const char *sealed)
{
	char *pem = dkimkey_open(master, sealed);
	bool opened = pem != NULL;
	dkimkey_free_pem(pem);
	return opened;
}

int dkimkey_master_verify(struct store *s, const unsigned char master[DKIMKEY_MASTER_LEN],
			  const char *path, char *err, size_t errlen)
{
	char check[DKIMKEY_CHECK_HEX];
	dkimkey_check_value(master, check);
	int rc = store_master_check(s, check, master_opens, (void *)master);
	if (rc == STORE_CONFLICT)
		snprintf(err, errlen,
			 "%s is not the DKIM master key this store's keys are sealed with: set "
			 "[dkim] master_key_file to the key file every node of this store uses",
			 path);
	else if (rc != STORE_OK)
		snprintf(err, errlen, "cannot read the DKIM master key check from the store");
	return rc == STORE_OK ? 0 : -1;
}

/* The whole contents of a memory BIO as a NUL-terminated malloc'd string. */
static char *bio_string(BIO *bio)
{
	char *data = NULL;
	long n = BIO_get_mem_data(bio, &data);
	if (n <= 0)
		return NULL;
	char *s = xmalloc((size_t)n + 1);
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	return s;
}

static char *public_base64(EVP_PKEY *pkey)
{
	int n = i2d_PUBKEY(pkey, NULL);
	if (n <= 0)
		return NULL;
	unsigned char *der = xmalloc((size_t)n);
	unsigned char *p = der;
	char *b64 = NULL;
	if (i2d_PUBKEY(pkey, &p) == n) {
		size_t len = sodium_base64_ENCODED_LEN((size_t)n, B64);
		b64 = xmalloc(len);
		sodium_bin2base64(b64, len, der, (size_t)n, B64);
	}
	free(der);
	return b64;
}

int dkimkey_generate(char **private_pem, char **public_b64)
{
	*private_pem = NULL;
	*public_b64 = NULL;
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)RSA_BITS);
	if (!pkey)
		return -1;
	/* Secure memory, so the PEM's working copy is wiped when the BIO is freed. */
	BIO *bio = BIO_new(BIO_s_secmem());
	if (bio && PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) == 1)
		*private_pem = bio_string(bio);
	BIO_free(bio);
	if (*private_pem)
		*public_b64 = public_base64(pkey);
	EVP_PKEY_free(pkey);
	if (!*public_b64) {
		dkimkey_free_pem(*private_pem);
		*private_pem = NULL;
		return -1;
	}
	return 0;
}

char *dkimkey_seal(const unsigned char master[DKIMKEY_MASTER_LEN], const char *pem)
{
	if (!pem || sodium_init() < 0)
		return NULL;
	size_t plen = strlen(pem);
	size_t blen = BOX_EXTRA + plen;
	unsigned char *box = xmalloc(blen);
	randombytes_buf(box, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, (const unsigned char *)pem, plen,
			      box, master);
	size_t len = sodium_base64_ENCODED_LEN(blen, B64);
	char *sealed = xmalloc(len);
	sodium_bin2base64(sealed, len, box, blen, B64);
	free(box);
	return sealed;
}

char *dkimkey_open(const unsigned char master[DKIMKEY_MASTER_LEN], const char *sealed)
{
	if (!sealed || sodium_init() < 0)
		return NULL;
	size_t slen = strlen(sealed);
	size_t cap = slen / 4 * 3 + 3;
	unsigned char *box = xmalloc(cap);
	size_t blen = 0;
	char *pem = NULL;
	/* Whitespace is tolerated (a stored value may have gained a newline); any other change
	 * either fails to decode or fails the MAC. */
	if (sodium_base642bin(box, cap, sealed, slen, " \t\r\n", &blen, NULL, B64) != 0 ||
	    blen < BOX_EXTRA)
		goto out;
	size_t plen = blen - BOX_EXTRA;
	pem = xmalloc(plen + 1);
	if (crypto_secretbox_open_easy((unsigned char *)pem, box + crypto_secretbox_NONCEBYTES,
				       blen - crypto_secretbox_NONCEBYTES, box, master) != 0) {
		free(pem);
		pem = NULL;
		goto out;
	}
	pem[plen] = '\0';
	/* A PEM is text; an embedded NUL would silently truncate the key. */
	if (memchr(pem, '\0', plen)) {
		dkimkey_free_pem(pem);
		pem = NULL;
	}
out:
	free(box);
	return pem;
}

void dkimkey_free_pem(char *pem)
{
	if (!pem)
		return;
	sodium_memzero(pem, strlen(pem));
	free(pem);
}

char *dkimkey_record(const char *public_b64)
{
	size_t pre = strlen(RECORD_PRE), n = strlen(public_b64);
	char *record = xmalloc(pre + n + 1);
	memcpy(record, RECORD_PRE, pre);
	memcpy(record + pre, public_b64, n + 1);
	return record;
}
