/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_webpush.h: the cryptography of one Web Push message, composed as the
 * RFCs say, from OpenSSL's primitives (libsodium has no P-256):
 *   - RFC 8291 message encryption: ECDH P-256 between a fresh application
 *     server key and the subscription's p256dh, HKDF-SHA256 with the
 *     subscription's auth secret, one AES-128-GCM record in the aes128gcm
 *     content coding of RFC 8188 (salt | rs | idlen | keyid header);
 *   - RFC 8292 VAPID: an ES256 JWT {aud, exp, sub} signed with the broker's
 *     own P-256 key (DATA_DIR/vapid.pem, PKCS#8 PEM, mode 0600, made at
 *     first start), sent as "Authorization: vapid t=JWT, k=PUBLIC".
 * Nothing here knows sockets, HTTP or the event loop.
 *
 * Secrets: the VAPID private key stays inside OpenSSL's EVP_PKEY (freed with
 * EVP_PKEY_free, which clears it); the ECDH secret and derived keys are
 * zeroed (sodium_memzero) on every path out.
 * Errors: 0 or a negative errno: -EINVAL (bad input, not a P-256 point),
 * -EMSGSIZE (output buffer too small), -ENOMEM, -EIO (OpenSSL failed, or the
 * key file is unreadable or not a P-256 key), -errno of the file system.
 */
#ifndef SP_WEBPUSH_H
#define SP_WEBPUSH_H

#include <stddef.h>
#include <stdint.h>

enum {
	SP_WEBPUSH_POINT_LEN = 65,      /* uncompressed P-256 point */
	SP_WEBPUSH_AUTH_LEN = 16,
	SP_WEBPUSH_SALT_LEN = 16,
	SP_WEBPUSH_PRIV_LEN = 32,
	SP_WEBPUSH_RS = 4096,           /* record size written in the header */
	/* header (salt 16, rs 4, idlen 1, keyid 65) + delimiter + tag */
	SP_WEBPUSH_OVERHEAD = SP_WEBPUSH_SALT_LEN + 4 + 1 + SP_WEBPUSH_POINT_LEN + 1 + 16,
	SP_WEBPUSH_PLAINTEXT_MAX = SP_WEBPUSH_RS - 1 - 16, /* one record */
	/* base64url of the 65-byte public key, no padding, plus NUL */
	SP_WEBPUSH_KEY_B64_LEN = 88,
};

struct sp_vapid;

/*
 * Loads the VAPID key from path, or makes one there (0600, written to a
 * temporary file and renamed) when the file does not exist. *out: the
 * caller frees it with sp_vapid_free. path borrowed.
 */
int sp_vapid_load_or_create(const char *path, struct sp_vapid **out);

/* From a raw private scalar (tests and the RFC vectors). priv borrowed. */
int sp_vapid_from_private(const uint8_t priv[SP_WEBPUSH_PRIV_LEN], struct sp_vapid **out);

void sp_vapid_free(struct sp_vapid *v);

/* The public key, base64url without padding, NUL-terminated (filled). */
void sp_vapid_public_b64(const struct sp_vapid *v, char out[SP_WEBPUSH_KEY_B64_LEN]);

/*
 * The Authorization header's value, "vapid t=JWT, k=KEY" (RFC 8292 3),
 * into out (cap bytes, filled, NUL-terminated): the JWT's aud is audience
 * (the endpoint's origin, "https://host[:port]"), exp is exp_s (Unix
 * seconds), sub is subject (borrowed; "" leaves sub out).
 */
int sp_vapid_header(const struct sp_vapid *v, const char *audience, uint64_t exp_s,
		    const char *subject, char *out, size_t cap);

/*
 * 0 if p is an uncompressed point on P-256 (0x04 | x | y, 65 bytes, on the
 * curve, not the point at infinity), else -EINVAL. p borrowed.
 */
int sp_webpush_point_valid(const uint8_t *p, size_t len);

/*
 * RFC 8291: encrypts plaintext (len <= SP_WEBPUSH_PLAINTEXT_MAX) for the
 * subscription (ua_public, auth) into out (cap bytes, filled; *out_len =
 * len + SP_WEBPUSH_OVERHEAD). A fresh application-server key and salt each
 * call. All buffers borrowed except out.
 */
int sp_webpush_encrypt(const uint8_t ua_public[SP_WEBPUSH_POINT_LEN],
		       const uint8_t auth[SP_WEBPUSH_AUTH_LEN], const uint8_t *plaintext, size_t len,
		       uint8_t *out, size_t cap, size_t *out_len);

/* The same with the application-server key and the salt given (the RFC 8291
 * appendix A test): as_priv and salt borrowed. */
int sp_webpush_encrypt_with(const uint8_t ua_public[SP_WEBPUSH_POINT_LEN],
			    const uint8_t auth[SP_WEBPUSH_AUTH_LEN], const uint8_t *plaintext,
			    size_t len, const uint8_t as_priv[SP_WEBPUSH_PRIV_LEN],
			    const uint8_t salt[SP_WEBPUSH_SALT_LEN], uint8_t *out, size_t cap,
			    size_t *out_len);

/* base64url without padding of in (borrowed) into out (filled, NUL
 * terminated); -EMSGSIZE if cap is too small. */
int sp_webpush_b64url(const uint8_t *in, size_t len, char *out, size_t cap);

#endif
