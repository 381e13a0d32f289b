/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_prekey.c: XEdDSA and the prekey codec (sp_prekey.h).
 *
 * XEdDSA is written as Signal's specification states it, each step one
 * libsodium call: scalar multiplication by the base point
 * (crypto_scalarmult_ed25519_base_noclamp), reduction, negation,
 * multiplication and addition mod q (crypto_core_ed25519_scalar_*),
 * SHA-512 (crypto_hash_sha512), and Ed25519's verification equation
 * (crypto_sign_verify_detached). No field or group arithmetic of our own.
 */
#include "sp_prekey.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "sp_be.h"
#include "sp_key.h"

enum { SCALAR = crypto_core_ed25519_SCALARBYTES, NONREDUCED = crypto_core_ed25519_NONREDUCEDSCALARBYTES };

/*
 * calculate_key_pair(k): k is the X25519 scalar, i.e. sk clamped as X25519
 * clamps it (RFC 7748 5), so that E = kB is the Edwards form of the
 * device's public key. A = E with sign bit 0; a = k or -k mod q to match.
 */
static int key_pair(uint8_t A[SP_KEY_LEN], uint8_t a[SCALAR], const uint8_t sk[SP_KEY_LEN])
{
	uint8_t k[NONREDUCED] = { 0 }, ka[SCALAR];
	int ret = 0;

	memcpy(k, sk, SP_KEY_LEN);
	k[0] &= 248;
	k[31] &= 127;
	k[31] |= 64;
	if (crypto_scalarmult_ed25519_base_noclamp(A, k) != 0) {
		ret = -EINVAL;
		goto out;
	}
	crypto_core_ed25519_scalar_reduce(ka, k);
	if (A[31] & 0x80)
		crypto_core_ed25519_scalar_negate(a, ka);
	else
		memcpy(a, ka, SCALAR);
	A[31] &= 0x7f;
out:
	sodium_memzero(k, sizeof(k));
	sodium_memzero(ka, sizeof(ka));
	return ret;
}

int sp_xeddsa_public(uint8_t ed[SP_KEY_LEN], const uint8_t sk[SP_KEY_LEN])
{
	uint8_t a[SCALAR];
	int ret = key_pair(ed, a, sk);

	sodium_memzero(a, sizeof(a));
	return ret;
}

int sp_xeddsa_sign(uint8_t sig[SP_XEDDSA_SIG_LEN], const uint8_t sk[SP_KEY_LEN], const uint8_t *msg,
		   size_t len, const uint8_t z[SP_XEDDSA_NONCE_LEN])
{
	/* hash_1(X) = SHA-512(2^256 - 1 - 1 as 32 bytes little-endian || X) */
	static const uint8_t pad1[32] = { 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	crypto_hash_sha512_state hs;
	uint8_t A[SP_KEY_LEN], a[SCALAR], wide[crypto_hash_sha512_BYTES], r[SCALAR], h[SCALAR],
		ha[SCALAR];
	int ret;

	ret = key_pair(A, a, sk);
	if (ret < 0)
		goto out;
	/* r = hash_1(a || M || Z) (mod q) */
	crypto_hash_sha512_init(&hs);
	crypto_hash_sha512_update(&hs, pad1, sizeof(pad1));
	crypto_hash_sha512_update(&hs, a, sizeof(a));
	crypto_hash_sha512_update(&hs, msg, len);
	crypto_hash_sha512_update(&hs, z, SP_XEDDSA_NONCE_LEN);
	crypto_hash_sha512_final(&hs, wide);
	crypto_core_ed25519_scalar_reduce(r, wide);
	/* R = rB */
	if (crypto_scalarmult_ed25519_base_noclamp(sig, r) != 0) {
		ret = -EINVAL; /* r = 0: probability 2^-252 */
		goto out;
	}
	/* h = hash(R || A || M) (mod q) */
	crypto_hash_sha512_init(&hs);
	crypto_hash_sha512_update(&hs, sig, 32);
	crypto_hash_sha512_update(&hs, A, sizeof(A));
	crypto_hash_sha512_update(&hs, msg, len);
	crypto_hash_sha512_final(&hs, wide);
	crypto_core_ed25519_scalar_reduce(h, wide);
	/* s = r + ha (mod q) */
	crypto_core_ed25519_scalar_mul(ha, h, a);
	crypto_core_ed25519_scalar_add(sig + 32, r, ha);
out:
	sodium_memzero(&hs, sizeof(hs));
	sodium_memzero(a, sizeof(a));
	sodium_memzero(wide, sizeof(wide));
	sodium_memzero(r, sizeof(r));
	sodium_memzero(ha, sizeof(ha));
	return ret;
}

int sp_xeddsa_verify(const uint8_t sig[SP_XEDDSA_SIG_LEN], const uint8_t ed[SP_KEY_LEN],
		     const uint8_t u[SP_KEY_LEN], const uint8_t *msg, size_t len)
{
	uint8_t x[SP_KEY_LEN];

	/* A = convert_mont(u): sign bit 0, and the birational map of A is u
	 * (public values: a plain comparison). */
	if (ed[31] & 0x80 || crypto_sign_ed25519_pk_to_curve25519(x, ed) != 0 ||
	    memcmp(x, u, SP_KEY_LEN) != 0)
		return -EPERM;
	/* R == sB - hA with h = SHA-512(R || A || M): Ed25519's equation. */
	return crypto_sign_verify_detached(sig, msg, len, ed) == 0 ? 0 : -EPERM;
}

/* ---- records ---------------------------------------------------------------- */

enum { BODY_LEN = SP_PREKEY_REC_LEN - SP_XEDDSA_SIG_LEN, MSG_LEN = SP_PREKEY_DOMAIN_LEN + SP_KEY_LEN + BODY_LEN };

void sp_prekey_rec_put(uint8_t out[SP_PREKEY_REC_LEN], const struct sp_prekey *k)
{
	out[0] = k->kind;
	sp_be_put32(out + 1, k->id);
	sp_be_put64(out + 5, k->created_s);
	memcpy(out + 13, k->pub, SP_KEY_LEN);
	memcpy(out + BODY_LEN, k->sig, SP_XEDDSA_SIG_LEN);
}

int sp_prekey_rec_get(const uint8_t in[SP_PREKEY_REC_LEN], struct sp_prekey *k)
{
	if (in[0] != SP_PREKEY_KIND_SIGNED && in[0] != SP_PREKEY_KIND_ONETIME)
		return -EBADMSG;
	k->kind = in[0];
	k->id = sp_be_get32(in + 1);
	k->created_s = sp_be_get64(in + 5);
	memcpy(k->pub, in + 13, SP_KEY_LEN);
	memcpy(k->sig, in + BODY_LEN, SP_XEDDSA_SIG_LEN);
	return sp_noise_key_valid(k->pub) ? 0 : -EDOM;
}

/* The signed message: domain | device | the record up to its signature. */
static void sig_msg(uint8_t msg[MSG_LEN], const struct sp_prekey *k, const uint8_t device[SP_KEY_LEN])
{
	uint8_t rec[SP_PREKEY_REC_LEN];

	memset(rec, 0, sizeof(rec));
	sp_prekey_rec_put(rec, k);
	memcpy(msg, SP_PREKEY_DOMAIN, SP_PREKEY_DOMAIN_LEN);
	memcpy(msg + SP_PREKEY_DOMAIN_LEN, device, SP_KEY_LEN);
	memcpy(msg + SP_PREKEY_DOMAIN_LEN + SP_KEY_LEN, rec, BODY_LEN);
}

int sp_prekey_sign(struct sp_prekey *k, const uint8_t device[SP_KEY_LEN], const uint8_t sk[SP_KEY_LEN])
{
	uint8_t msg[MSG_LEN], z[SP_XEDDSA_NONCE_LEN];
	int ret;

	sig_msg(msg, k, device);
	randombytes_buf(z, sizeof(z));
	ret = sp_xeddsa_sign(k->sig, sk, msg, sizeof(msg), z);
	sodium_memzero(z, sizeof(z));
	return ret;
}

int sp_prekey_verify(const struct sp_prekey *k, const uint8_t device[SP_KEY_LEN],
		     const uint8_t edkey[SP_KEY_LEN])
{
	uint8_t msg[MSG_LEN];

	sig_msg(msg, k, device);
	return sp_xeddsa_verify(k->sig, edkey, device, msg, sizeof(msg));
}

/* ---- uploads ------------------------------------------------------------------ */

int sp_prekey_upload_decode(const uint8_t *buf, size_t len, struct sp_prekey_upload *up)
{
	const uint8_t *p = buf, *end = buf + len;
	uint32_t prev_id = 0;
	int ret;

	if (len < SP_PREKEY_UPLOAD_MIN || p[0] != SP_PREKEY_FORMAT)
		return -EBADMSG;
	memset(up, 0, sizeof(*up));
	memcpy(up->edkey, p + 1, SP_KEY_LEN);
	if (p[1 + SP_KEY_LEN] > 1)
		return -EBADMSG;
	up->has_signed = p[1 + SP_KEY_LEN];
	p += 2 + SP_KEY_LEN;
	if (up->has_signed) {
		if ((size_t)(end - p) < SP_PREKEY_REC_LEN + 2)
			return -EBADMSG;
		ret = sp_prekey_rec_get(p, &up->spk);
		if (ret < 0)
			return ret;
		if (up->spk.kind != SP_PREKEY_KIND_SIGNED)
			return -EBADMSG;
		p += SP_PREKEY_REC_LEN;
	}
	up->count = sp_be_get16(p);
	p += 2;
	if (up->count > SP_PREKEY_UPLOAD_MAX)
		return -EMSGSIZE;
	if (!up->has_signed && up->count == 0)
		return -EBADMSG;
	if ((size_t)(end - p) != (size_t)up->count * SP_PREKEY_REC_LEN)
		return -EBADMSG;
	up->onetime = p;
	for (uint32_t i = 0; i < up->count; i++, p += SP_PREKEY_REC_LEN) {
		struct sp_prekey k;

		ret = sp_prekey_rec_get(p, &k);
		if (ret < 0)
			return ret;
		/* ascending: no id twice, so "handed out once" is per id */
		if (k.kind != SP_PREKEY_KIND_ONETIME || (i && k.id <= prev_id))
			return -EBADMSG;
		prev_id = k.id;
	}
	return 0;
}

int sp_prekey_upload_verify(const struct sp_prekey_upload *up, const uint8_t device[SP_KEY_LEN])
{
	if (up->has_signed && sp_prekey_verify(&up->spk, device, up->edkey))
		return -EPERM;
	for (uint32_t i = 0; i < up->count; i++) {
		struct sp_prekey k;

		if (sp_prekey_rec_get(up->onetime + (size_t)i * SP_PREKEY_REC_LEN, &k) ||
		    sp_prekey_verify(&k, device, up->edkey))
			return -EPERM;
	}
	return 0;
}

int sp_prekey_upload_encode(const uint8_t edkey[SP_KEY_LEN], const struct sp_prekey *spk,
			    const struct sp_prekey *otk, uint32_t count, uint8_t *out, size_t cap,
			    size_t *out_len)
{
	size_t need = SP_PREKEY_UPLOAD_MIN + (spk ? SP_PREKEY_REC_LEN : 0) +
		      (size_t)count * SP_PREKEY_REC_LEN;
	uint8_t *p = out;

	if (count > SP_PREKEY_UPLOAD_MAX)
		return -EMSGSIZE;
	if ((!spk && count == 0) || (count && !otk))
		return -EINVAL;
	if (cap < need)
		return -EMSGSIZE;
	*p++ = SP_PREKEY_FORMAT;
	memcpy(p, edkey, SP_KEY_LEN);
	p += SP_KEY_LEN;
	*p++ = spk ? 1 : 0;
	if (spk) {
		sp_prekey_rec_put(p, spk);
		p += SP_PREKEY_REC_LEN;
	}
	sp_be_put16(p, (uint16_t)count);
	p += 2;
	for (uint32_t i = 0; i < count; i++, p += SP_PREKEY_REC_LEN)
		sp_prekey_rec_put(p, &otk[i]);
	*out_len = need;
	return 0;
}

/* ---- bundles ------------------------------------------------------------------ */

int sp_prekey_bundle_encode(const struct sp_prekey_bundle *b, uint8_t *out, size_t cap, size_t *out_len)
{
	size_t need = SP_PREKEY_BUNDLE_MIN + (b->has_onetime ? SP_PREKEY_REC_LEN : 0);
	uint8_t *p = out;

	if (cap < need)
		return -EMSGSIZE;
	*p++ = SP_PREKEY_FORMAT;
	memcpy(p, b->device, SP_KEY_LEN);
	memcpy(p + SP_KEY_LEN, b->edkey, SP_KEY_LEN);
	p += 2 * SP_KEY_LEN;
	sp_prekey_rec_put(p, &b->spk);
	p += SP_PREKEY_REC_LEN;
	*p++ = b->has_onetime ? 1 : 0;
	if (b->has_onetime)
		sp_prekey_rec_put(p, &b->otk);
	*out_len = need;
	return 0;
}

int sp_prekey_bundle_decode(const uint8_t *buf, size_t len, struct sp_prekey_bundle *b)
{
	const uint8_t *p = buf;
	int ret;

	if (len < SP_PREKEY_BUNDLE_MIN || p[0] != SP_PREKEY_FORMAT)
		return -EBADMSG;
	memset(b, 0, sizeof(*b));
	memcpy(b->device, p + 1, SP_KEY_LEN);
	memcpy(b->edkey, p + 1 + SP_KEY_LEN, SP_KEY_LEN);
	p += 1 + 2 * SP_KEY_LEN;
	ret = sp_prekey_rec_get(p, &b->spk);
	if (ret < 0)
		return ret;
	if (b->spk.kind != SP_PREKEY_KIND_SIGNED)
		return -EBADMSG;
	p += SP_PREKEY_REC_LEN;
	if (*p > 1)
		return -EBADMSG;
	b->has_onetime = *p++;
	if (len != SP_PREKEY_BUNDLE_MIN + (b->has_onetime ? (size_t)SP_PREKEY_REC_LEN : 0))
		return -EBADMSG;
	if (!b->has_onetime)
		return 0;
	ret = sp_prekey_rec_get(p, &b->otk);
	if (ret < 0)
		return ret;
	return b->otk.kind == SP_PREKEY_KIND_ONETIME ? 0 : -EBADMSG;
}

int sp_prekey_bundle_verify(const uint8_t *buf, size_t len, const uint8_t device[SP_KEY_LEN],
			    struct sp_prekey_bundle *b)
{
	int ret = sp_prekey_bundle_decode(buf, len, b);

	if (ret < 0)
		return ret;
	/* A bundle of another device (even a valid one) is a substitution. */
	if (memcmp(b->device, device, SP_KEY_LEN) != 0 || sp_prekey_verify(&b->spk, device, b->edkey) ||
	    (b->has_onetime && sp_prekey_verify(&b->otk, device, b->edkey)))
		return -EPERM;
	return 0;
}
