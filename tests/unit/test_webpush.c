/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_webpush.c: broker/push/sp_webpush.c: RFC 8291 appendix A byte for
 * byte, P-256 point checks, the VAPID header's shape and signature.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "sp_webpush.h"

static size_t b64d(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;

	assert_int_equal(sodium_base642bin(out, cap, s, strlen(s), NULL, &n, NULL,
					   sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
	return n;
}

/* RFC 8291 appendix A. */
static const char *const PLAINTEXT = "When I grow up, I want to be a watermelon";
static const char *const AS_PRIV = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
static const char *const AS_PUB =
	"BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
static const char *const UA_PUB =
	"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
static const char *const AUTH = "BTBZMqHH6r4Tts7J_aSIgg";
static const char *const SALT = "DGv6ra1nlYgDCS1FRnbzlw";
static const char *const BODY =
	"DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6Tl"
	"zAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";

static void test_rfc8291_appendix_a(void **state)
{
	uint8_t as[32], ua[65], auth[16], salt[16], want[256], got[256];
	size_t want_len, got_len = 0;
	struct sp_vapid *v;
	char pub[SP_WEBPUSH_KEY_B64_LEN];

	(void)state;
	assert_int_equal(b64d(AS_PRIV, as, sizeof(as)), 32);
	assert_int_equal(b64d(UA_PUB, ua, sizeof(ua)), 65);
	assert_int_equal(b64d(AUTH, auth, sizeof(auth)), 16);
	assert_int_equal(b64d(SALT, salt, sizeof(salt)), 16);
	want_len = b64d(BODY, want, sizeof(want));
	assert_int_equal(sp_webpush_encrypt_with(ua, auth, (const uint8_t *)PLAINTEXT,
						 strlen(PLAINTEXT), as, salt, got, sizeof(got),
						 &got_len), 0);
	assert_int_equal(got_len, want_len);
	assert_memory_equal(got, want, want_len);
	assert_int_equal(got_len, strlen(PLAINTEXT) + SP_WEBPUSH_OVERHEAD);
	/* The application server's public key, derived from its scalar. */
	assert_int_equal(sp_vapid_from_private(as, &v), 0);
	sp_vapid_public_b64(v, pub);
	assert_string_equal(pub, AS_PUB);
	sp_vapid_free(v);
	/* Too small an output buffer. */
	assert_int_equal(sp_webpush_encrypt_with(ua, auth, (const uint8_t *)PLAINTEXT,
						 strlen(PLAINTEXT), as, salt, got, got_len - 1,
						 &got_len), -EMSGSIZE);
}

static void test_fresh_keys_differ(void **state)
{
	uint8_t ua[65], auth[16], a[256], b[256];
	size_t na = 0, nb = 0;

	(void)state;
	b64d(UA_PUB, ua, sizeof(ua));
	b64d(AUTH, auth, sizeof(auth));
	assert_int_equal(sp_webpush_encrypt(ua, auth, (const uint8_t *)"x", 1, a, sizeof(a), &na), 0);
	assert_int_equal(sp_webpush_encrypt(ua, auth, (const uint8_t *)"x", 1, b, sizeof(b), &nb), 0);
	assert_int_equal(na, nb);
	assert_int_equal(na, 1 + SP_WEBPUSH_OVERHEAD);
	/* salt and key id differ: a fresh key and salt per message */
	assert_memory_not_equal(a, b, 16);
	assert_memory_not_equal(a + 21, b + 21, 65);
}

static void test_point_valid(void **state)
{
	uint8_t p[65];

	(void)state;
	b64d(UA_PUB, p, sizeof(p));
	assert_int_equal(sp_webpush_point_valid(p, 65), 0);
	assert_int_equal(sp_webpush_point_valid(p, 64), -EINVAL);
	p[0] = 0x02;                    /* compressed prefix on 65 bytes */
	assert_int_equal(sp_webpush_point_valid(p, 65), -EINVAL);
	p[0] = 0x04;
	p[64] ^= 1;                     /* off the curve */
	assert_int_equal(sp_webpush_point_valid(p, 65), -EINVAL);
	memset(p, 0, sizeof(p));
	p[0] = 0x04;
	assert_int_equal(sp_webpush_point_valid(p, 65), -EINVAL);
}

/* The JWT verifies with the key's public half (OpenSSL's ECDSA verify). */
static void test_vapid_header(void **state)
{
	uint8_t as[32], sig[64], pubraw[65];
	char hdr[2048], pub[SP_WEBPUSH_KEY_B64_LEN], claims[512];
	struct sp_vapid *v;
	char *t, *dot2, *k;
	size_t n;

	(void)state;
	b64d(AS_PRIV, as, sizeof(as));
	assert_int_equal(sp_vapid_from_private(as, &v), 0);
	assert_int_equal(sp_vapid_header(v, "https://push.example.net", 1700000000,
					 "mailto:ops@example.org", hdr, sizeof(hdr)), 0);
	sp_vapid_public_b64(v, pub);
	assert_int_equal(strncmp(hdr, "vapid t=", 8), 0);
	k = strstr(hdr, ", k=");
	assert_non_null(k);
	assert_string_equal(k + 4, pub);
	*k = '\0';
	t = hdr + 8;
	assert_string_equal(strchr(t, '.') - t == 36 ? "ok" : t, "ok"); /* {"typ":"JWT","alg":"ES256"} */
	dot2 = strrchr(t, '.');
	assert_non_null(dot2);
	*dot2 = '\0';
	n = b64d(strchr(t, '.') + 1, (uint8_t *)claims, sizeof(claims) - 1);
	claims[n] = '\0';
	assert_string_equal(claims, "{\"aud\":\"https://push.example.net\",\"exp\":1700000000,"
				    "\"sub\":\"mailto:ops@example.org\"}");
	assert_int_equal(b64d(dot2 + 1, sig, sizeof(sig)), 64);
	/* Verify r|s over "header.claims" with the public key. */
	{
		ECDSA_SIG *es = ECDSA_SIG_new();
		unsigned char der[80], *p = der;
		int dlen;
		OSSL_PARAM params[3];
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
		EVP_PKEY *pk = NULL;
		EVP_MD_CTX *md = EVP_MD_CTX_new();

		assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL),
						BN_bin2bn(sig + 32, 32, NULL)), 1);
		dlen = i2d_ECDSA_SIG(es, &p);
		assert_true(dlen > 0);
		b64d(pub, pubraw, sizeof(pubraw));
		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
							     (char *)"prime256v1", 0);
		params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pubraw, 65);
		params[2] = OSSL_PARAM_construct_end();
		assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
		assert_int_equal(EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params), 1);
		assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk), 1);
		assert_int_equal(EVP_DigestVerify(md, der, (size_t)dlen, (const unsigned char *)t,
						  strlen(t)), 1);
		EVP_MD_CTX_free(md);
		EVP_PKEY_free(pk);
		EVP_PKEY_CTX_free(ctx);
		ECDSA_SIG_free(es);
	}
	/* JSON-unsafe inputs are refused, not escaped. */
	assert_int_equal(sp_vapid_header(v, "https://a\"b", 1, "", hdr, sizeof(hdr)), -EINVAL);
	assert_int_equal(sp_vapid_header(v, "https://a", 1, "", hdr, 20), -EMSGSIZE);
	sp_vapid_free(v);
}

static void test_key_file(void **state)
{
	char dir[] = "/tmp/sp_webpush_XXXXXX", path[256];
	char a[SP_WEBPUSH_KEY_B64_LEN], b[SP_WEBPUSH_KEY_B64_LEN];
	struct sp_vapid *v1, *v2;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vapid.pem", dir);
	assert_int_equal(sp_vapid_load_or_create(path, &v1), 0);
	assert_int_equal(sp_vapid_load_or_create(path, &v2), 0);
	sp_vapid_public_b64(v1, a);
	sp_vapid_public_b64(v2, b);
	assert_string_equal(a, b);      /* made once, then loaded */
	sp_vapid_free(v1);
	sp_vapid_free(v2);
	f = fopen(path, "w");
	fputs("not a key\n", f);
	fclose(f);
	assert_int_equal(sp_vapid_load_or_create(path, &v1), -EIO);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc8291_appendix_a),
		cmocka_unit_test(test_fresh_keys_differ),
		cmocka_unit_test(test_point_valid),
		cmocka_unit_test(test_vapid_header),
		cmocka_unit_test(test_key_file),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
