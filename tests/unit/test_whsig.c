/* Unit tests for whsig: the Standard Webhooks signature against vectors computed apart (the
 * format's own published example, and `openssl dgst -sha256 -mac HMAC`), and SendGrid's
 * ECDSA signature checked with the public key the way a receiver holds it. */
#include "testutil.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "whsig.h"

static void test_secrets_are_fresh_24_byte_whsec_keys(void **state)
{
	(void)state;
	char a[WHSIG_SECRET_MAX], b[WHSIG_SECRET_MAX];
	unsigned char bin[64];
	size_t len = 0;
	assert_int_equal(whsig_secret_new(a), 0);
	assert_int_equal(whsig_secret_new(b), 0);
	assert_int_equal(strncmp(a, "whsec_", 6), 0);
	assert_int_equal(sodium_base642bin(bin, sizeof(bin), a + 6, strlen(a + 6), NULL, &len, NULL,
					   sodium_base64_VARIANT_ORIGINAL),
			 0);
	assert_int_equal(len, 24);
	assert_string_not_equal(a, b);
}

static void test_standard_signatures_match_known_vectors(void **state)
{
	(void)state;
	char sig[WHSIG_SIGNATURE_MAX];
	/* The example of the Standard Webhooks specification and its libraries. */
	assert_int_equal(whsig_standard_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
					     "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
					     "{\"test\": 2432232314}", sig),
			 0);
	assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* Key bytes 1..24; printf 'evt_42.1764833400.<body>' | openssl dgst -sha256 -mac HMAC
	 * -macopt hexkey:0102...18 -binary | base64 */
	assert_int_equal(whsig_standard_sign("whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY", "evt_42",
					     1764833400, "{\"type\":\"message.delivered\"}", sig),
			 0);
	assert_string_equal(sig, "v1,mgGyfblPYd2KN0OVeX38wIOKG6S1MXb2jZFNVxC4vVs=");
}

static void test_malformed_secrets_sign_nothing(void **state)
{
	(void)state;
	char sig[WHSIG_SIGNATURE_MAX];
	const char *bad[] = {"whsec_", "whsec_not base64!", "",
			     "whsec_" /* over 64 bytes: */
			     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
			     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (whsig_standard_sign(bad[i], "evt_1", 1, "{}", sig) != -1)
			fail_msg("signed with \"%s\"", bad[i]);
}

/* The public key as a receiver reads it: base64 of the DER SubjectPublicKeyInfo. */
static EVP_PKEY *public_key(const char *b64)
{
	unsigned char der[WHSIG_PUBLIC_KEY_MAX];
	size_t len = 0;
	assert_int_equal(sodium_base642bin(der, sizeof(der), b64, strlen(b64), NULL, &len, NULL,
					   sodium_base64_VARIANT_ORIGINAL),
			 0);
	const unsigned char *p = der;
	EVP_PKEY *key = d2i_PUBKEY(NULL, &p, (long)len);
	assert_non_null(key);
	assert_true(EVP_PKEY_is_a(key, "EC"));
	assert_int_equal(EVP_PKEY_get_bits(key), 256);
	return key;
}

/* 1 when sig_b64 is key's signature over SHA-256 of ts then body. */
static int verifies(EVP_PKEY *key, const char *sig_b64, const char *ts, const char *body)
{
	unsigned char sig[WHSIG_SIGNATURE_MAX];
	size_t len = 0;
	assert_int_equal(sodium_base642bin(sig, sizeof(sig), sig_b64, strlen(sig_b64), NULL, &len,
					   NULL, sodium_base64_VARIANT_ORIGINAL),
			 0);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
	assert_int_equal(EVP_DigestVerifyUpdate(ctx, ts, strlen(ts)), 1);
	assert_int_equal(EVP_DigestVerifyUpdate(ctx, body, strlen(body)), 1);
	int rc = EVP_DigestVerifyFinal(ctx, sig, len);
	EVP_MD_CTX_free(ctx);
	return rc;
}

static void test_sendgrid_signatures_verify_with_the_public_key(void **state)
{
	(void)state;
	char *pem = NULL, pub[WHSIG_PUBLIC_KEY_MAX], sig[WHSIG_SIGNATURE_MAX];
	const char *body = "[{\"email\":\"a@example.com\",\"event\":\"delivered\"}]";
	assert_int_equal(whsig_ecdsa_new(&pem, pub), 0);
	tu_assert_contains(pem, "-----BEGIN PRIVATE KEY-----");
	EVP_PKEY *key = public_key(pub);
	for (int i = 0; i < 20; i++) { /* a DER signature's length varies: try a few */
		assert_int_equal(whsig_sendgrid_sign(pem, 1764833400 + i, body, sig), 0);
		char ts[16];
		snprintf(ts, sizeof(ts), "%d", 1764833400 + i);
		assert_int_equal(verifies(key, sig, ts, body), 1);
		assert_int_equal(verifies(key, sig, ts, "[]"), 0);
		assert_int_equal(verifies(key, sig, "1764833399", body), 0);
	}
	/* Another key's public half does not verify it. */
	char *other = NULL, other_pub[WHSIG_PUBLIC_KEY_MAX];
	assert_int_equal(whsig_ecdsa_new(&other, other_pub), 0);
	assert_string_not_equal(pub, other_pub);
	EVP_PKEY *wrong = public_key(other_pub);
	assert_int_equal(verifies(wrong, sig, "1764833419", body), 0);
	EVP_PKEY_free(wrong);
	EVP_PKEY_free(key);
	whsig_free(other);
	whsig_free(pem);
	whsig_free(NULL);
}

static void test_sendgrid_signs_only_with_a_p256_key(void **state)
{
	(void)state;
	char sig[WHSIG_SIGNATURE_MAX];
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	assert_non_null(p384);
	BIO *bio = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PrivateKey(bio, p384, NULL, NULL, 0, NULL, NULL), 1);
	char *data;
	long len = BIO_get_mem_data(bio, &data);
	char *pem = strndup(data, (size_t)len);
	assert_int_equal(whsig_sendgrid_sign(pem, 1, "[]", sig), -1);
	assert_int_equal(whsig_sendgrid_sign("not a key", 1, "[]", sig), -1);
	free(pem);
	BIO_free(bio);
	EVP_PKEY_free(p384);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secrets_are_fresh_24_byte_whsec_keys),
		cmocka_unit_test(test_standard_signatures_match_known_vectors),
		cmocka_unit_test(test_malformed_secrets_sign_nothing),
		cmocka_unit_test(test_sendgrid_signatures_verify_with_the_public_key),
		cmocka_unit_test(test_sendgrid_signs_only_with_a_p256_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
