/* Unit tests for dkimkey and signer: the master key file, key generation checked by OpenSSL,
 * sealing, and signatures checked the way a receiver would, by libopendkim in verify mode
 * (keys read from a file instead of DNS), including what tampering breaks and what it does not. */
#include "testutil.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <opendkim/dkim.h>
#include <sodium.h>

#include "dkimkey.h"
#include "signer.h"
#include "util.h"

#define SELECTOR "pst2026"
#define DOMAIN	 "acme.test"
#define RUNS	 200

/* What compose produces, in short: CRLF, a folded Subject, one header outside the signed
 * list (X-Foo), and a body with an empty line inside it. */
#define MESSAGE                                                                                    \
	"From: Acme News <news@acme.test>\r\n"                                                     \
	"To: Ann <ann@example.test>\r\n"                                                           \
	"Cc: Carl <carl@example.test>\r\n"                                                         \
	"Reply-To: help@acme.test\r\n"                                                             \
	"Subject: Your order has shipped and is on its way,\r\n"                                   \
	" with a subject folded onto a second line\r\n"                                            \
	"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"                                                \
	"Message-ID: <3f2a9c@acme.test>\r\n"                                                       \
	"MIME-Version: 1.0\r\n"                                                                    \
	"Content-Type: text/plain; charset=utf-8\r\n"                                              \
	"X-Foo: one\r\n"                                                                           \
	"\r\n"                                                                                     \
	"Hi Ann,\r\n"                                                                              \
	"\r\n"                                                                                     \
	"your parcel left our warehouse today.\r\n"

/* Shared by every test: one key pair (generating one takes tens of milliseconds), a signer, a
 * verifier reading its key from keys_path, and a directory for master key files. */
static struct {
	char dir[TU_PATH_MAX];
	char keys_path[TU_PATH_MAX + 8];
	char *pem, *pub, *record;
	struct signer *signer;
	DKIM_LIB *verifier;
} fx;

static char *path_in_dir(const char *name)
{
	static char path[2 * TU_PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", fx.dir, name);
	return path;
}

/* A copy of the message with the first `from` replaced by `to`. */
static char *replaced(const char *msg, const char *from, const char *to, size_t *len)
{
	const char *at = strstr(msg, from);
	if (!at)
		fail_msg("\"%s\" is not in the message", from);
	size_t head = (size_t)(at - msg), nf = strlen(from), nt = strlen(to);
	*len = strlen(msg) - nf + nt;
	char *out = xmalloc(*len + 1);
	memcpy(out, msg, head);
	memcpy(out + head, to, nt);
	strcpy(out + head + nt, at + nf);
	return out;
}

static char *sign(const char *msg, size_t *outlen)
{
	char *out = NULL, err[256] = "";
	if (signer_sign(fx.signer, fx.pem, SELECTOR, DOMAIN, msg, strlen(msg), &out, outlen, err,
			sizeof(err)) != 0)
		fail_msg("signing failed: %s", err);
	assert_non_null(out);
	assert_int_equal(strlen(out), *outlen);
	return out;
}

/* libopendkim parses the message itself here (dkim_chunk), so the signer's own header
 * splitting is checked against an independent reader. True when the signature passes. */
static bool verifies(const char *msg, size_t len)
{
	DKIM_STAT st;
	DKIM *dkim = dkim_verify(fx.verifier, (const u_char *)"test", NULL, &st);
	assert_non_null(dkim);
	st = dkim_chunk(dkim, (u_char *)msg, len);
	if (st == DKIM_STAT_OK)
		st = dkim_chunk(dkim, NULL, 0);
	if (st == DKIM_STAT_OK)
		st = dkim_eom(dkim, NULL);
	DKIM_SIGINFO *sig = dkim_getsignature(dkim);
	bool ok = st == DKIM_STAT_OK && sig && DKIM_SIG_CHECK(sig);
	if (!ok)
		print_message("verification: %s%s%s\n", dkim_getresultstr(st), sig ? ", " : "",
			      sig ? dkim_sig_geterrorstr(dkim_sig_geterror(sig)) : "");
	dkim_free(dkim);
	return ok;
}

/* The DKIM-Signature field at the start of a signed message, unfolded. */
static char *unfolded_signature(const char *signed_msg)
{
	static char buf[4096];
	size_t n = 0;
	const char *p = signed_msg;
	for (;;) {
		const char *crlf = strstr(p, "\r\n");
		assert_non_null(crlf);
		assert_true(n + (size_t)(crlf - p) < sizeof(buf));
		memcpy(buf + n, p, (size_t)(crlf - p));
		n += (size_t)(crlf - p);
		p = crlf + 2;
		if (*p != ' ' && *p != '\t')
			break;
	}
	buf[n] = '\0';
	return buf;
}

/* The value of tag name in an unfolded DKIM-Signature, with folding white space removed. */
static const char *tag(const char *sig, const char *name)
{
	static char value[1024];
	const char *p = strchr(sig, ':');
	assert_non_null(p);
	size_t k = strlen(name);
	while (p && *++p) {
		p += strspn(p, " \t");
		size_t len = strcspn(p, ";");
		if (strncmp(p, name, k) == 0 && p[k + strspn(p + k, " \t")] == '=') {
			const char *v = strchr(p, '=') + 1;
			size_t n = 0;
			for (; v < p + len && n + 1 < sizeof(value); v++)
				if (*v != ' ' && *v != '\t')
					value[n++] = *v;
			value[n] = '\0';
			return value;
		}
		p = p[len] ? p + len : NULL;
	}
	fail_msg("no %s= tag in %s", name, sig);
	return NULL;
}

static void test_master_create_and_load(void **state)
{
	(void)state;
	unsigned char key[DKIMKEY_MASTER_LEN], again[DKIMKEY_MASTER_LEN];
	char err[256] = "";
	const char *path = path_in_dir("created.key");

	if (dkimkey_master_load(path, true, key, err, sizeof(err)) != 0)
		fail_msg("create: %s", err);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	const char *text = tu_read_file(path);
	assert_int_equal(strlen(text), 65);
	assert_int_equal(text[64], '\n');
	assert_int_equal(strspn(text, "0123456789abcdef"), 64);

	/* Loading it again, with or without create, gives the same key. */
	assert_int_equal(dkimkey_master_load(path, false, again, err, sizeof(err)), 0);
	assert_memory_equal(key, again, sizeof(key));
	assert_int_equal(dkimkey_master_load(path, true, again, err, sizeof(err)), 0);
	assert_memory_equal(key, again, sizeof(key));

	/* No trailing newline is fine too, and upper-case hex reads the same. */
	const char *bare = path_in_dir("bare.key");
	tu_write_file(bare, "000102030405060708090A0B0C0D0E0F101112131415161718191a1b1c1d1e1f",
		      0600);
	assert_int_equal(dkimkey_master_load(bare, false, key, err, sizeof(err)), 0);
	for (int i = 0; i < DKIMKEY_MASTER_LEN; i++)
		assert_int_equal(key[i], i);
}

static void test_master_missing_without_create(void **state)
{
	(void)state;
	unsigned char key[DKIMKEY_MASTER_LEN];
	char err[256] = "";
	const char *path = path_in_dir("absent.key");
	assert_int_equal(dkimkey_master_load(path, false, key, err, sizeof(err)), -1);
	tu_assert_contains(err, path);
	assert_int_equal(access(path, F_OK), -1);
}

static void test_master_refuses_loose_mode(void **state)
{
	(void)state;
	unsigned char key[DKIMKEY_MASTER_LEN];
	const char *hex = "0000000000000000000000000000000000000000000000000000000000000000\n";
	const mode_t loose[] = {0644, 0640, 0604, 0660, 0602};
	for (size_t i = 0; i < ARRAY_LEN(loose); i++) {
		char err[256] = "";
		const char *path = path_in_dir("loose.key");
		tu_write_file(path, hex, loose[i]);
		assert_int_equal(dkimkey_master_load(path, false, key, err, sizeof(err)), -1);
		tu_assert_contains(err, path);
		tu_assert_contains(err, "group or others");
		tu_assert_contains(err, "chmod 600");
	}
}

static void test_master_refuses_malformed(void **state)
{
	(void)state;
	const char *bad[] = {
		"",
		"\n",
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", /* 63 */
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0\n",
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg\n",
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\n",
		" 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n",
		"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ\n",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		unsigned char key[DKIMKEY_MASTER_LEN];
		char err[256] = "";
		const char *path = path_in_dir("malformed.key");
		tu_write_file(path, bad[i], 0600);
		print_message("malformed key %zu\n", i);
		assert_int_equal(dkimkey_master_load(path, true, key, err, sizeof(err)), -1);
		tu_assert_contains(err, path);
		tu_assert_contains(err, "malformed");
	}
}

static EVP_PKEY *parse_private(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	assert_non_null(bio);
	EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	assert_non_null(pkey);
	return pkey;
}

static void test_generate_rsa_2048(void **state)
{
	(void)state;
	/* PKCS#8, the form libopendkim and `openssl pkey` both read. */
	assert_true(strncmp(fx.pem, "-----BEGIN PRIVATE KEY-----\n", 28) == 0);
	EVP_PKEY *priv = parse_private(fx.pem);
	assert_true(EVP_PKEY_is_a(priv, "RSA"));
	assert_int_equal(EVP_PKEY_get_bits(priv), 2048);

	unsigned char der[1024];
	size_t n = 0;
	assert_int_equal(sodium_base642bin(der, sizeof(der), fx.pub, strlen(fx.pub), NULL, &n, NULL,
					   sodium_base64_VARIANT_ORIGINAL),
			 0);
	const unsigned char *p = der;
	EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, (long)n);
	assert_non_null(pub);
	assert_int_equal(p - der, n);
	assert_int_equal(EVP_PKEY_get_bits(pub), 2048);
	assert_int_equal(EVP_PKEY_eq(priv, pub), 1);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(priv);

	/* Two calls give two different keys. */
	char *pem2 = NULL, *pub2 = NULL;
	assert_int_equal(dkimkey_generate(&pem2, &pub2), 0);
	assert_string_not_equal(pub2, fx.pub);
	dkimkey_free_pem(pem2);
	free(pub2);
}

static void test_seal_and_open(void **state)
{
	(void)state;
	unsigned char master[DKIMKEY_MASTER_LEN], other[DKIMKEY_MASTER_LEN];
	randombytes_buf(master, sizeof(master));
	randombytes_buf(other, sizeof(other));

	char *sealed = dkimkey_seal(master, fx.pem);
	assert_non_null(sealed);
	assert_null(strstr(sealed, "PRIVATE"));
	char *opened = dkimkey_open(master, sealed);
	assert_non_null(opened);
	assert_string_equal(opened, fx.pem);
	dkimkey_free_pem(opened);

	/* A fresh nonce each time: the same key never seals to the same text. */
	char *again = dkimkey_seal(master, fx.pem);
	assert_string_not_equal(again, sealed);
	free(again);

	assert_null(dkimkey_open(other, sealed));

	/* Any single changed character: first, middle, last before the padding. */
	size_t len = strlen(sealed), last = len - 1;
	while (sealed[last] == '=')
		last--;
	const size_t where[] = {0, len / 2, last};
	for (size_t i = 0; i < ARRAY_LEN(where); i++) {
		char *altered = xstrdup(sealed);
		altered[where[i]] = altered[where[i]] == 'A' ? 'B' : 'A';
		assert_null(dkimkey_open(master, altered));
		free(altered);
	}
	char *truncated = xstrdup(sealed);
	truncated[len - 8] = '\0';
	assert_null(dkimkey_open(master, truncated));
	free(truncated);
	assert_null(dkimkey_open(master, ""));
	assert_null(dkimkey_open(master, "not base64 at all!"));
	free(sealed);
}

static void test_record_format(void **state)
{
	(void)state;
	char *record = dkimkey_record("MIIBIjANBgkq");
	assert_string_equal(record, "v=DKIM1; k=rsa; p=MIIBIjANBgkq");
	free(record);
	assert_true(strncmp(fx.record, "v=DKIM1; k=rsa; p=MIIB", 22) == 0);
}

/* The h= list of a signed message, lower-cased, as ":from:to:...:". */
static const char *signed_list(const char *signed_msg)
{
	static char hlist[512];
	snprintf(hlist, sizeof(hlist), ":%s:", tag(unfolded_signature(signed_msg), "h"));
	for (char *c = hlist; *c; c++)
		*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
	return hlist;
}

static int count_in_list(const char *hlist, const char *name)
{
	char item[32];
	int n = 0;
	snprintf(item, sizeof(item), ":%s:", name);
	/* Each entry's closing colon opens the next, so step past the name only. */
	for (const char *p = hlist; (p = strstr(p, item)); p += strlen(item) - 1)
		n++;
	return n;
}

/* For tests/integration/dkim_verify.py: the same signed message checked by opendkim-testmsg
 * through real DNS. */
static void write_sample(const char *signed_msg, size_t len)
{
	const char *dir = getenv("POSTERN_DKIM_SAMPLE_DIR");
	if (!dir || !*dir)
		return;
	char path[512];
	snprintf(path, sizeof(path), "%s/signed.eml", dir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(signed_msg, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	snprintf(path, sizeof(path), "%s/record.txt", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%s %s %s\n", SELECTOR, DOMAIN, fx.record);
	assert_int_equal(fclose(f), 0);
}

static void test_signature_verifies(void **state)
{
	(void)state;
	size_t len;
	char *out = sign(MESSAGE, &len);

	/* The signature is prepended; the message itself is untouched. */
	assert_true(strncmp(out, "DKIM-Signature: ", 16) == 0);
	assert_true(len > strlen(MESSAGE));
	assert_string_equal(out + len - strlen(MESSAGE), MESSAGE);
	assert_true(verifies(out, len));
	write_sample(out, len);

	const char *sig = unfolded_signature(out);
	assert_string_equal(tag(sig, "a"), "rsa-sha256");
	assert_string_equal(tag(sig, "c"), "relaxed/relaxed");
	assert_string_equal(tag(sig, "d"), DOMAIN);
	assert_string_equal(tag(sig, "s"), SELECTOR);
	const char *hlist = signed_list(out);
	const char *want[] = {"from", "to",	    "cc",	    "reply-to",	   "subject",
			      "date", "message-id", "mime-version", "content-type"};
	for (size_t i = 0; i < ARRAY_LEN(want); i++) {
		char item[32];
		snprintf(item, sizeof(item), ":%s:", want[i]);
		tu_assert_contains(hlist, item);
	}
	assert_null(strstr(hlist, "x-foo"));

	free(out);
}

static void test_identity_headers_are_oversigned(void **state)
{
	(void)state;
	size_t len;
	char *out = sign(MESSAGE, &len);
	const char *hlist = signed_list(out);

	/* Present once each, listed twice: a second one added on the way is covered too. */
	const char *over[] = {"from", "subject", "to", "date", "cc", "reply-to"};
	for (size_t i = 0; i < ARRAY_LEN(over); i++)
		if (count_in_list(hlist, over[i]) != 2)
			fail_msg("%s is listed %d times in h=%s", over[i],
				 count_in_list(hlist, over[i]), hlist);
	free(out);

	/* No Cc or Reply-To in the message: each is listed once all the same, so one added on
	 * the way (a Reply-To to the phisher) breaks the signature. */
	out = sign("From: news@acme.test\r\nTo: ann@example.test\r\nSubject: hi\r\n\r\nHi\r\n",
		   &len);
	assert_int_equal(count_in_list(signed_list(out), "cc"), 1);
	assert_int_equal(count_in_list(signed_list(out), "reply-to"), 1);
	assert_int_equal(count_in_list(signed_list(out), "from"), 2);
	free(out);
}

/* Prepends field to a signed message, as a hop after Postern could. */
static char *prepended(const char *signed_msg, size_t len, const char *field, size_t *alen)
{
	*alen = strlen(field) + len;
	char *out = xmalloc(*alen + 1);
	memcpy(out, field, strlen(field));
	memcpy(out + strlen(field), signed_msg, len + 1);
	return out;
}

static void test_identity_header_added_after_signing_fails(void **state)
{
	(void)state;
	static const char *const added[] = {
		"From: Bank Security <ceo@bank.test>\r\n",
		"Subject: Urgent: confirm your account\r\n",
		"To: someone@else.test\r\n",
		"Date: Fri, 02 Jan 2026 00:00:00 +0000\r\n",
		"Cc: attacker@else.test\r\n",
		"Reply-To: Bank Security <help@phisher.test>\r\n",
	};
	size_t len, alen;
	char *out = sign(MESSAGE, &len);
	assert_true(verifies(out, len));
	for (size_t i = 0; i < ARRAY_LEN(added); i++) {
		char *altered = prepended(out, len, added[i], &alen);
		if (verifies(altered, alen))
			fail_msg("still verifies with %s", added[i]);
		free(altered);
	}
	free(out);
}

/* Checks that a signed message, with the first `from` replaced by `to`, verifies or not. */
static void expect_edit(const char *signed_msg, const char *from, const char *to,
			bool still_verifies)
{
	size_t alen;
	char *altered = replaced(signed_msg, from, to, &alen);
	if (verifies(altered, alen) != still_verifies)
		fail_msg("\"%s\" changed to \"%s\": expected the signature to %s", from, to,
			 still_verifies ? "verify" : "fail");
	free(altered);
}

static void test_altered_body_fails(void **state)
{
	(void)state;
	size_t len;
	char *out = sign(MESSAGE, &len);
	expect_edit(out, "left our warehouse", "left our wareh0use", false);
	expect_edit(out, "today.\r\n", "today.\r\nP.S. click here\r\n", false);
	free(out);
}

static void test_headers_outside_the_list_may_change(void **state)
{
	(void)state;
	size_t len;
	char *out = sign(MESSAGE, &len);
	expect_edit(out, "X-Foo: one", "X-Foo: two", true);
	/* Relaxed canonicalization: whitespace changes in a signed header do not matter. */
	expect_edit(out, "MIME-Version: 1.0", "MIME-Version:    1.0", true);
	expect_edit(out, "From: Acme News <news@acme.test>", "From: Acme News <ceo@acme.test>",
		    false);
	expect_edit(out, "Your order has shipped", "Your order was cancelled", false);
	free(out);
}

static void test_signature_lines_are_folded(void **state)
{
	(void)state;
	size_t len;
	char *out = sign(MESSAGE, &len);
	const char *body_start = out + len - strlen(MESSAGE);
	int lines = 0;
	for (const char *p = out; p < body_start; lines++) {
		const char *lf = memchr(p, '\n', (size_t)(body_start - p));
		assert_non_null(lf);
		if (lf == p || lf[-1] != '\r')
			fail_msg("signature line %d does not end in CRLF", lines + 1);
		size_t cols = (size_t)(lf - 1 - p);
		if (cols >= 78)
			fail_msg("signature line %d is %zu columns: %.*s", lines + 1, cols,
				 (int)cols, p);
		if (lines > 0 && *p != '\t' && *p != ' ')
			fail_msg("continuation line %d does not start with white space", lines + 1);
		p = lf + 1;
	}
	/* An RSA-2048 signature alone is 344 base64 characters: the header must be folded. */
	assert_true(lines >= 6);
	free(out);
}

static void test_refusals(void **state)
{
	(void)state;
	char *out = (char *)"sentinel", err[256] = "";
	size_t len = 99;
	const char *msg = MESSAGE;

	assert_int_equal(signer_sign(fx.signer, "not a key", SELECTOR, DOMAIN, msg, strlen(msg),
				     &out, &len, err, sizeof(err)),
			 -1);
	assert_null(out);
	assert_int_equal(len, 0);
	assert_true(strlen(err) > 0);
	print_message("bad key: %s\n", err);

	const char *bare_lf = "From: news@acme.test\nTo: ann@example.test\n\nHi\n";
	err[0] = '\0';
	assert_int_equal(signer_sign(fx.signer, fx.pem, SELECTOR, DOMAIN, bare_lf, strlen(bare_lf),
				     &out, &len, err, sizeof(err)),
			 -1);
	assert_null(out);
	tu_assert_contains(err, "CRLF");

	const char *no_colon = "From: news@acme.test\r\nnot a header\r\n\r\nHi\r\n";
	err[0] = '\0';
	assert_int_equal(signer_sign(fx.signer, fx.pem, SELECTOR, DOMAIN, no_colon,
				     strlen(no_colon), &out, &len, err, sizeof(err)),
			 -1);
	assert_null(out);
	assert_true(strlen(err) > 0);
}

static void test_headers_only_message(void **state)
{
	(void)state;
	size_t len;
	char *out = sign("From: news@acme.test\r\nTo: ann@example.test\r\nSubject: hi\r\n", &len);
	assert_true(verifies(out, len));
	free(out);
}

static void test_signing_cost(void **state)
{
	(void)state;
	const char *msg = MESSAGE;
	size_t n = strlen(msg);
	double start = util_monotonic();
	for (int i = 0; i < RUNS; i++) {
		char *out = NULL, err[256];
		size_t len;
		if (signer_sign(fx.signer, fx.pem, SELECTOR, DOMAIN, msg, n, &out, &len, err,
				sizeof(err)) != 0)
			fail_msg("run %d: %s", i, err);
		free(out);
	}
	double us = (util_monotonic() - start) * 1e6 / RUNS;
	printf("signer_sign: %.0f us per message (mean of %d, %zu-byte message, RSA-2048)\n", us,
	       RUNS, n);
}

static int setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	tu_temp_dir(fx.dir);
	if (dkimkey_generate(&fx.pem, &fx.pub) != 0)
		return -1;
	fx.record = dkimkey_record(fx.pub);

	char err[256];
	fx.signer = signer_new(err, sizeof(err));
	if (!fx.signer) {
		fprintf(stderr, "signer_new: %s\n", err);
		return -1;
	}

	/* libopendkim's file query method: "<selector>._domainkey.<domain> <record>" a line. */
	snprintf(fx.keys_path, sizeof(fx.keys_path), "%s/keys", fx.dir);
	FILE *f = fopen(fx.keys_path, "w");
	if (!f)
		return -1;
	fprintf(f, "%s._domainkey.%s %s\n", SELECTOR, DOMAIN, fx.record);
	fclose(f);
	fx.verifier = dkim_init(NULL, NULL);
	dkim_query_t method = DKIM_QUERY_FILE;
	if (!fx.verifier ||
	    dkim_options(fx.verifier, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &method,
			 sizeof(method)) != DKIM_STAT_OK ||
	    dkim_options(fx.verifier, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, fx.keys_path,
			 strlen(fx.keys_path)) != DKIM_STAT_OK)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	const char *files[] = {"created.key", "bare.key", "loose.key", "malformed.key", "keys"};
	for (size_t i = 0; i < ARRAY_LEN(files); i++)
		unlink(path_in_dir(files[i]));
	rmdir(fx.dir);
	dkim_close(fx.verifier);
	signer_free(fx.signer);
	dkimkey_free_pem(fx.pem);
	free(fx.pub);
	free(fx.record);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_master_create_and_load),
		cmocka_unit_test(test_master_missing_without_create),
		cmocka_unit_test(test_master_refuses_loose_mode),
		cmocka_unit_test(test_master_refuses_malformed),
		cmocka_unit_test(test_generate_rsa_2048),
		cmocka_unit_test(test_seal_and_open),
		cmocka_unit_test(test_record_format),
		cmocka_unit_test(test_signature_verifies),
		cmocka_unit_test(test_identity_headers_are_oversigned),
		cmocka_unit_test(test_identity_header_added_after_signing_fails),
		cmocka_unit_test(test_altered_body_fails),
		cmocka_unit_test(test_headers_outside_the_list_may_change),
		cmocka_unit_test(test_signature_lines_are_folded),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_headers_only_message),
		cmocka_unit_test(test_signing_cost),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
