/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_webpush.c: RFC 8291 encryption and RFC 8292 VAPID (sp_webpush.h).
 *
 * Why OpenSSL: Web Push fixes the curve to P-256 (ECDH for the message key,
 * ECDSA for VAPID), which libsodium does not have. Only OpenSSL's
 * primitives are used (ECDH, ECDSA, HKDF, AES-128-GCM), composed exactly as
 * RFC 8291 section 3.4 and RFC 8188 section 2 say; tests/unit/test_webpush.c
 * reproduces the RFC 8291 appendix A message byte for byte.
 */
#include "sp_webpush.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <sodium.h>

struct sp_vapid {
	EVP_PKEY *key;
	char pub_b64[SP_WEBPUSH_KEY_B64_LEN];
};

int sp_webpush_b64url(const uint8_t *in, size_t len, char *out, size_t cap)
{
	if (cap < sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING))
		return -EMSGSIZE;
	sodium_bin2base64(out, cap, in, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return 0;
}

/* The uncompressed public point of k into out. */
static int public_point(EVP_PKEY *k, uint8_t out[SP_WEBPUSH_POINT_LEN])
{
	size_t n = 0;

	if (EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out,
					    SP_WEBPUSH_POINT_LEN, &n) != 1 ||
	    n != SP_WEBPUSH_POINT_LEN || out[0] != 0x04)
		return -EIO;
	return 0;
}

/* A P-256 EVP_PKEY? (a key file could hold anything) */
static bool is_p256(EVP_PKEY *k)
{
	char group[32] = "";
	size_t n = 0;

	if (!EVP_PKEY_is_a(k, "EC"))
		return false;
	if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
					   &n) != 1)
		return false;
	return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

static int vapid_wrap(EVP_PKEY *k, struct sp_vapid **out)
{
	uint8_t pub[SP_WEBPUSH_POINT_LEN];
	struct sp_vapid *v;

	if (!is_p256(k) || public_point(k, pub)) {
		EVP_PKEY_free(k);
		return -EIO;
	}
	v = calloc(1, sizeof(*v));
	if (!v) {
		EVP_PKEY_free(k);
		return -ENOMEM;
	}
	v->key = k;
	sp_webpush_b64url(pub, sizeof(pub), v->pub_b64, sizeof(v->pub_b64));
	*out = v;
	return 0;
}

/* An RFC 5915 ECPrivateKey without its public key (OpenSSL computes it):
 * SEQUENCE { INTEGER 1, OCTET STRING d, [0] OID prime256v1 }. */
static EVP_PKEY *key_from_scalar(const uint8_t priv[SP_WEBPUSH_PRIV_LEN])
{
	static const uint8_t head[] = { 0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20 };
	static const uint8_t tail[] = { 0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48,
					0xce, 0x3d, 0x03, 0x01, 0x07 };
	uint8_t der[sizeof(head) + SP_WEBPUSH_PRIV_LEN + sizeof(tail)];
	const unsigned char *p = der;
	EVP_PKEY *k;

	memcpy(der, head, sizeof(head));
	memcpy(der + sizeof(head), priv, SP_WEBPUSH_PRIV_LEN);
	memcpy(der + sizeof(head) + SP_WEBPUSH_PRIV_LEN, tail, sizeof(tail));
	k = d2i_PrivateKey(EVP_PKEY_EC, NULL, &p, (long)sizeof(der));
	sodium_memzero(der, sizeof(der));
	return k;
}

int sp_vapid_from_private(const uint8_t priv[SP_WEBPUSH_PRIV_LEN], struct sp_vapid **out)
{
	EVP_PKEY *k = key_from_scalar(priv);

	*out = NULL;
	if (!k)
		return -EINVAL;
	return vapid_wrap(k, out);
}

static int key_write(const char *path, EVP_PKEY *k)
{
	char tmp[4096];
	FILE *f;
	int fd, ok;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(tmp);
		return -ENOMEM;
	}
	ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
	ok = fflush(f) == 0 && ok;
	ok = fsync(fileno(f)) == 0 && ok;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return -EIO;
	}
	return 0;
}

int sp_vapid_load_or_create(const char *path, struct sp_vapid **out)
{
	EVP_PKEY *k = NULL;
	FILE *f;
	int ret;

	*out = NULL;
	f = fopen(path, "re");
	if (f) {
		k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (!k)
			return -EIO;
		return vapid_wrap(k, out);
	}
	if (errno != ENOENT)
		return -errno;
	k = EVP_EC_gen("P-256");
	if (!k)
		return -EIO;
	ret = key_write(path, k);
	if (ret) {
		EVP_PKEY_free(k);
		return ret;
	}
	return vapid_wrap(k, out);
}

void sp_vapid_free(struct sp_vapid *v)
{
	if (!v)
		return;
	EVP_PKEY_free(v->key);
	free(v);
}

void sp_vapid_public_b64(const struct sp_vapid *v, char out[SP_WEBPUSH_KEY_B64_LEN])
{
	memcpy(out, v->pub_b64, SP_WEBPUSH_KEY_B64_LEN);
}

/* JSON string contents we write unescaped: printable ASCII but " and \. */
static bool json_plain(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
			return false;
	return true;
}

/* ES256 (RFC 7518 3.4): ECDSA P-256 SHA-256, r | s of 32 bytes each. */
static int es256(EVP_PKEY *k, const char *data, size_t len, uint8_t sig[64])
{
	uint8_t der[80];
	size_t dlen = sizeof(der);
	const unsigned char *p = der;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ECDSA_SIG *es = NULL;
	const BIGNUM *r, *s;
	int ret = -EIO;

	if (!md)
		return -ENOMEM;
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) != 1 ||
	    EVP_DigestSign(md, der, &dlen, (const unsigned char *)data, len) != 1)
		goto out;
	es = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
	if (!es)
		goto out;
	ECDSA_SIG_get0(es, &r, &s);
	if (BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32)
		ret = 0;
out:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return ret;
}

int sp_vapid_header(const struct sp_vapid *v, const char *audience, uint64_t exp_s,
		    const char *subject, char *out, size_t cap)
{
	static const char hdr[] = "{\"typ\":\"JWT\",\"alg\":\"ES256\"}";
	char claims[1200], input[2048];
	char sig_b64[96];
	uint8_t sig[64];
	size_t n;
	int len, ret;

	if (!json_plain(audience) || !json_plain(subject))
		return -EINVAL;
	if (subject[0])
		len = snprintf(claims, sizeof(claims), "{\"aud\":\"%s\",\"exp\":%llu,\"sub\":\"%s\"}",
			       audience, (unsigned long long)exp_s, subject);
	else
		len = snprintf(claims, sizeof(claims), "{\"aud\":\"%s\",\"exp\":%llu}", audience,
			       (unsigned long long)exp_s);
	if (len < 0 || (size_t)len >= sizeof(claims))
		return -EMSGSIZE;
	ret = sp_webpush_b64url((const uint8_t *)hdr, sizeof(hdr) - 1, input, sizeof(input));
	if (ret)
		return ret;
	n = strlen(input);
	input[n++] = '.';
	ret = sp_webpush_b64url((const uint8_t *)claims, (size_t)len, input + n, sizeof(input) - n);
	if (ret)
		return ret;
	n = strlen(input);
	ret = es256(v->key, input, n, sig);
	if (ret)
		return ret;
	sp_webpush_b64url(sig, sizeof(sig), sig_b64, sizeof(sig_b64));
	len = snprintf(out, cap, "vapid t=%s.%s, k=%s", input, sig_b64, v->pub_b64);
	if (len < 0 || (size_t)len >= cap)
		return -EMSGSIZE;
	return 0;
}

/* The subscription's key as an EVP_PKEY; NULL if it is not a P-256 point. */
static EVP_PKEY *peer_key(const uint8_t *p, size_t len)
{
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx, *check;
	EVP_PKEY *k = NULL;

	if (len != SP_WEBPUSH_POINT_LEN || p[0] != 0x04)
		return NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
						     (char *)"prime256v1", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)p, len);
	params[2] = OSSL_PARAM_construct_end();
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!ctx)
		return NULL;
	if (EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) != 1)
		k = NULL;
	EVP_PKEY_CTX_free(ctx);
	if (!k)
		return NULL;
	/* On the curve, in the group, not infinity (SEC 1 3.2.2.1). */
	check = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
	if (!check || EVP_PKEY_public_check(check) != 1) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	EVP_PKEY_CTX_free(check);
	return k;
}

int sp_webpush_point_valid(const uint8_t *p, size_t len)
{
	EVP_PKEY *k = peer_key(p, len);

	if (!k)
		return -EINVAL;
	EVP_PKEY_free(k);
	return 0;
}

/* HKDF-SHA256 (RFC 5869), extract then expand, into out (outlen bytes). */
static int hkdf(const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen,
		const uint8_t *info, size_t infolen, uint8_t *out, size_t outlen)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	size_t n = outlen;
	int ok;

	if (!c)
		return -ENOMEM;
	ok = EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_CTX_set_hkdf_md(c, EVP_sha256()) == 1 &&
	     EVP_PKEY_CTX_set1_hkdf_salt(c, salt, (int)saltlen) == 1 &&
	     EVP_PKEY_CTX_set1_hkdf_key(c, ikm, (int)ikmlen) == 1 &&
	     EVP_PKEY_CTX_add1_hkdf_info(c, info, (int)infolen) == 1 &&
	     EVP_PKEY_derive(c, out, &n) == 1 && n == outlen;
	EVP_PKEY_CTX_free(c);
	return ok ? 0 : -EIO;
}

static int ecdh(EVP_PKEY *mine, EVP_PKEY *peer, uint8_t secret[32])
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(mine, NULL);
	size_t n = 32;
	int ok;

	if (!c)
		return -ENOMEM;
	ok = EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
	     EVP_PKEY_derive(c, secret, &n) == 1 && n == 32;
	EVP_PKEY_CTX_free(c);
	return ok ? 0 : -EIO;
}

/* One AES-128-GCM record: in (len) -> out (len) | tag (16). */
static int aes128gcm(const uint8_t key[16], const uint8_t nonce[12], const uint8_t *in,
		     size_t len, uint8_t *out)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, m = 0, ok;

	if (!c)
		return -ENOMEM;
	ok = EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, key, nonce) == 1 &&
	     EVP_EncryptUpdate(c, out, &n, in, (int)len) == 1 &&
	     EVP_EncryptFinal_ex(c, out + n, &m) == 1 && (size_t)(n + m) == len &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, out + len) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -EIO;
}

/* RFC 8291 3.4 with the application-server key as (an EVP_PKEY). */
static int encrypt_key(const uint8_t ua_public[SP_WEBPUSH_POINT_LEN],
		       const uint8_t auth[SP_WEBPUSH_AUTH_LEN], const uint8_t *plaintext,
		       size_t len, EVP_PKEY *as, const uint8_t salt[SP_WEBPUSH_SALT_LEN],
		       uint8_t *out, size_t cap, size_t *out_len)
{
	static const char key_label[] = "WebPush: info";    /* and its NUL */
	static const char cek_label[] = "Content-Encoding: aes128gcm";
	static const char nonce_label[] = "Content-Encoding: nonce";
	uint8_t info[sizeof(key_label) + 2 * SP_WEBPUSH_POINT_LEN];
	uint8_t as_public[SP_WEBPUSH_POINT_LEN];
	uint8_t secret[32], ikm[32], cek[16], nonce[12];
	uint8_t record[SP_WEBPUSH_PLAINTEXT_MAX + 1];
	EVP_PKEY *ua = NULL;
	uint8_t *p = out;
	int ret;

	if (len > SP_WEBPUSH_PLAINTEXT_MAX || (len && !plaintext))
		return -EINVAL;
	if (cap < len + SP_WEBPUSH_OVERHEAD)
		return -EMSGSIZE;
	ua = peer_key(ua_public, SP_WEBPUSH_POINT_LEN);
	if (!ua)
		return -EINVAL;
	ret = public_point(as, as_public);
	if (ret == 0)
		ret = ecdh(as, ua, secret);
	/* key_info = "WebPush: info" || 0x00 || ua_public || as_public */
	memcpy(info, key_label, sizeof(key_label));
	memcpy(info + sizeof(key_label), ua_public, SP_WEBPUSH_POINT_LEN);
	memcpy(info + sizeof(key_label) + SP_WEBPUSH_POINT_LEN, as_public, SP_WEBPUSH_POINT_LEN);
	if (ret == 0)
		ret = hkdf(auth, SP_WEBPUSH_AUTH_LEN, secret, sizeof(secret), info, sizeof(info),
			   ikm, sizeof(ikm));
	/* RFC 8188 2.2, 2.3: the labels with their NUL */
	if (ret == 0)
		ret = hkdf(salt, SP_WEBPUSH_SALT_LEN, ikm, sizeof(ikm), (const uint8_t *)cek_label,
			   sizeof(cek_label), cek, sizeof(cek));
	if (ret == 0)
		ret = hkdf(salt, SP_WEBPUSH_SALT_LEN, ikm, sizeof(ikm),
			   (const uint8_t *)nonce_label, sizeof(nonce_label), nonce, sizeof(nonce));
	if (ret == 0) {
		/* header: salt | rs (u32 BE) | idlen | keyid = as_public */
		memcpy(p, salt, SP_WEBPUSH_SALT_LEN);
		p += SP_WEBPUSH_SALT_LEN;
		*p++ = (uint8_t)(SP_WEBPUSH_RS >> 24);
		*p++ = (uint8_t)(SP_WEBPUSH_RS >> 16);
		*p++ = (uint8_t)(SP_WEBPUSH_RS >> 8);
		*p++ = (uint8_t)SP_WEBPUSH_RS;
		*p++ = SP_WEBPUSH_POINT_LEN;
		memcpy(p, as_public, SP_WEBPUSH_POINT_LEN);
		p += SP_WEBPUSH_POINT_LEN;
		/* The one and last record: plaintext, delimiter 2, no padding. */
		if (len)
			memcpy(record, plaintext, len);
		record[len] = 0x02;
		ret = aes128gcm(cek, nonce, record, len + 1, p);
	}
	if (ret == 0)
		*out_len = (size_t)(p - out) + len + 1 + 16;
	sodium_memzero(secret, sizeof(secret));
	sodium_memzero(ikm, sizeof(ikm));
	sodium_memzero(cek, sizeof(cek));
	sodium_memzero(nonce, sizeof(nonce));
	sodium_memzero(record, len + 1);
	EVP_PKEY_free(ua);
	return ret;
}

int sp_webpush_encrypt_with(const uint8_t ua_public[SP_WEBPUSH_POINT_LEN],
			    const uint8_t auth[SP_WEBPUSH_AUTH_LEN], const uint8_t *plaintext,
			    size_t len, const uint8_t as_priv[SP_WEBPUSH_PRIV_LEN],
			    const uint8_t salt[SP_WEBPUSH_SALT_LEN], uint8_t *out, size_t cap,
			    size_t *out_len)
{
	EVP_PKEY *as = key_from_scalar(as_priv);
	int ret;

	if (!as)
		return -EINVAL;
	ret = encrypt_key(ua_public, auth, plaintext, len, as, salt, out, cap, out_len);
	EVP_PKEY_free(as);
	return ret;
}

int sp_webpush_encrypt(const uint8_t ua_public[SP_WEBPUSH_POINT_LEN],
		       const uint8_t auth[SP_WEBPUSH_AUTH_LEN], const uint8_t *plaintext, size_t len,
		       uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t salt[SP_WEBPUSH_SALT_LEN];
	EVP_PKEY *as = EVP_EC_gen("P-256");      /* one per message (RFC 8291 3.1) */
	int ret;

	if (!as)
		return -EIO;
	randombytes_buf(salt, sizeof(salt));
	ret = encrypt_key(ua_public, auth, plaintext, len, as, salt, out, cap, out_len);
	EVP_PKEY_free(as);
	return ret;
}
