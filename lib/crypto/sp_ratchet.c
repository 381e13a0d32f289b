/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_ratchet.c: the Double Ratchet (sp_ratchet.h). Function names follow
 * the specification's pseudocode (section 3.5): KDF_RK, KDF_CK,
 * RatchetEncrypt, RatchetDecrypt, TrySkippedMessageKeys, SkipMessageKeys,
 * DHRatchet. Decrypt runs them on a working copy and commits on success.
 */
#include "sp_ratchet.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "sp_be.h"
#include "sp_seal.h"

enum {
	HASH_LEN = crypto_auth_hmacsha256_BYTES,
	ENC_VERSION = 1,
	ENC_FIXED = 1 + SP_RATCHET_AD_LEN + 2 * SP_RATCHET_SID_LEN + 3 * SP_KEY_LEN + 3 * 32 + 1 + 3 * 4 + 2,
	ENC_SKIPPED = SP_KEY_LEN + 4 + SP_RATCHET_MSG_KEY_LEN,
	AEAD_KEY_LEN = crypto_aead_chacha20poly1305_ietf_KEYBYTES,
};

_Static_assert(SP_RATCHET_NONCE_LEN == crypto_aead_chacha20poly1305_ietf_NPUBBYTES, "nonce");
_Static_assert(SP_RATCHET_SKIPPED_MAX >= 2 * SP_RATCHET_MAX_SKIP, "one message's skips fit");

void sp_ratchet_hkdf(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len,
		     const uint8_t *ikm, size_t ikm_len, const char *info)
{
	static const uint8_t zero[HASH_LEN];
	uint8_t prk[HASH_LEN], t[HASH_LEN];
	crypto_auth_hmacsha256_state h;
	size_t done = 0;

	/* Extract: PRK = HMAC(salt, IKM); no salt is HashLen zeros */
	if (!salt) {
		salt = zero;
		salt_len = sizeof(zero);
	}
	crypto_auth_hmacsha256_init(&h, salt, salt_len);
	crypto_auth_hmacsha256_update(&h, ikm, ikm_len);
	crypto_auth_hmacsha256_final(&h, prk);
	/* Expand: T(i) = HMAC(PRK, T(i-1) || info || i) */
	for (uint8_t i = 1; done < out_len; i++) {
		size_t n = out_len - done < HASH_LEN ? out_len - done : HASH_LEN;

		crypto_auth_hmacsha256_init(&h, prk, sizeof(prk));
		if (i > 1)
			crypto_auth_hmacsha256_update(&h, t, sizeof(t));
		crypto_auth_hmacsha256_update(&h, (const uint8_t *)info, strlen(info));
		crypto_auth_hmacsha256_update(&h, &i, 1);
		crypto_auth_hmacsha256_final(&h, t);
		memcpy(out + done, t, n);
		done += n;
	}
	sodium_memzero(&h, sizeof(h));
	sodium_memzero(prk, sizeof(prk));
	sodium_memzero(t, sizeof(t));
}

void sp_ratchet_kdf_rk(uint8_t rk_out[32], uint8_t ck_out[32], const uint8_t rk[32],
		       const uint8_t dh_out[32])
{
	uint8_t okm[64];

	sp_ratchet_hkdf(okm, sizeof(okm), rk, 32, dh_out, 32, SP_RATCHET_INFO_RK);
	memcpy(rk_out, okm, 32);
	memcpy(ck_out, okm + 32, 32);
	sodium_memzero(okm, sizeof(okm));
}

void sp_ratchet_kdf_ck(uint8_t ck_out[32], uint8_t mk[32], const uint8_t ck[32])
{
	static const uint8_t c1 = 0x01, c2 = 0x02;
	uint8_t next[32];

	crypto_auth_hmacsha256(mk, &c1, 1, ck);   /* the message key */
	crypto_auth_hmacsha256(next, &c2, 1, ck); /* the next chain key */
	memcpy(ck_out, next, 32);
	sodium_memzero(next, sizeof(next));
}

void sp_ratchet_root0(uint8_t rk0[32], const uint8_t sk[32])
{
	sp_ratchet_hkdf(rk0, 32, NULL, 0, sk, 32, SP_RATCHET_INFO_SK);
}

/* DH(priv, pub) into out: 0, or -EINVAL for an all-zero output. */
static int dh(uint8_t out[32], const uint8_t priv[32], const uint8_t pub[32])
{
	return crypto_scalarmult(out, priv, pub) == 0 ? 0 : -EINVAL;
}

static void clear(struct sp_ratchet *st)
{
	sodium_memzero(st, sizeof(*st));
}

/* The AD and the two tags (Alice's first) of a new session. */
static void start(struct sp_ratchet *st, const uint8_t sk[32], const uint8_t *ad, bool alice)
{
	uint8_t t[2 * SP_RATCHET_SID_LEN];

	clear(st);
	memcpy(st->ad, ad, SP_RATCHET_AD_LEN);
	sp_ratchet_hkdf(t, sizeof(t), NULL, 0, sk, 32, SP_RATCHET_INFO_TAG);
	memcpy(alice ? st->tag_send : st->tag_recv, t, SP_RATCHET_SID_LEN);
	memcpy(alice ? st->tag_recv : st->tag_send, t + SP_RATCHET_SID_LEN, SP_RATCHET_SID_LEN);
}

int sp_ratchet_init_alice(struct sp_ratchet *st, const uint8_t sk[32],
			  const uint8_t ad[SP_RATCHET_AD_LEN], const uint8_t ek_a[SP_KEY_LEN],
			  const uint8_t spk_b[SP_KEY_LEN])
{
	uint8_t d[32];
	int r;

	start(st, sk, ad, true);
	/* state.DHs = EK_A; state.DHr = SPK_B */
	memcpy(st->dhs, ek_a, SP_KEY_LEN);
	crypto_scalarmult_base(st->dhs_pub, st->dhs);
	memcpy(st->dhr, spk_b, SP_KEY_LEN);
	/* state.RK, state.CKs = KDF_RK(SK, DH(state.DHs, state.DHr)) */
	sp_ratchet_root0(st->rk, sk);
	r = dh(d, st->dhs, st->dhr);
	if (r == 0)
		sp_ratchet_kdf_rk(st->rk, st->cks, st->rk, d);
	else
		clear(st);
	sodium_memzero(d, sizeof(d));
	return r;
}

/* The working part of the state (all but AD and the skipped keys). */
struct work {
	uint8_t dhs[SP_KEY_LEN], dhs_pub[SP_KEY_LEN], dhr[SP_KEY_LEN];
	uint8_t rk[32], cks[32], ckr[32];
	bool has_ckr;
	uint32_t ns, nr, pn;
};

static void work_get(struct work *w, const struct sp_ratchet *st)
{
	memcpy(w->dhs, st->dhs, SP_KEY_LEN);
	memcpy(w->dhs_pub, st->dhs_pub, SP_KEY_LEN);
	memcpy(w->dhr, st->dhr, SP_KEY_LEN);
	memcpy(w->rk, st->rk, 32);
	memcpy(w->cks, st->cks, 32);
	memcpy(w->ckr, st->ckr, 32);
	w->has_ckr = st->has_ckr;
	w->ns = st->ns;
	w->nr = st->nr;
	w->pn = st->pn;
}

static void work_put(const struct work *w, struct sp_ratchet *st)
{
	memcpy(st->dhs, w->dhs, SP_KEY_LEN);
	memcpy(st->dhs_pub, w->dhs_pub, SP_KEY_LEN);
	memcpy(st->dhr, w->dhr, SP_KEY_LEN);
	memcpy(st->rk, w->rk, 32);
	memcpy(st->cks, w->cks, 32);
	memcpy(st->ckr, w->ckr, 32);
	st->has_ckr = w->has_ckr;
	st->ns = w->ns;
	st->nr = w->nr;
	st->pn = w->pn;
}

/* DHRatchet(state, header) on w, with fresh (or random) bytes for the new DHs. */
static int dh_ratchet(struct work *w, const uint8_t their[SP_KEY_LEN], const uint8_t *fresh)
{
	uint8_t d[32];
	int r;

	w->pn = w->ns;
	w->ns = 0;
	w->nr = 0;
	memcpy(w->dhr, their, SP_KEY_LEN);
	/* state.RK, state.CKr = KDF_RK(state.RK, DH(state.DHs, state.DHr)) */
	r = dh(d, w->dhs, w->dhr);
	if (r < 0)
		goto out;
	sp_ratchet_kdf_rk(w->rk, w->ckr, w->rk, d);
	w->has_ckr = true;
	/* state.DHs = GENERATE_DH() */
	if (fresh)
		memcpy(w->dhs, fresh, SP_KEY_LEN);
	else
		randombytes_buf(w->dhs, SP_KEY_LEN);
	crypto_scalarmult_base(w->dhs_pub, w->dhs);
	/* state.RK, state.CKs = KDF_RK(state.RK, DH(state.DHs, state.DHr)) */
	r = dh(d, w->dhs, w->dhr);
	if (r == 0)
		sp_ratchet_kdf_rk(w->rk, w->cks, w->rk, d);
out:
	sodium_memzero(d, sizeof(d));
	return r;
}

int sp_ratchet_init_bob(struct sp_ratchet *st, const uint8_t sk[32],
			const uint8_t ad[SP_RATCHET_AD_LEN], const uint8_t spk[SP_KEY_LEN],
			const uint8_t ek_a[SP_KEY_LEN], const uint8_t *fresh)
{
	struct work w;
	int r;

	start(st, sk, ad, false);
	memset(&w, 0, sizeof(w));
	/* RatchetInitBob: state.DHs = SPK_B; state.RK = SK; CKs = CKr = None */
	memcpy(w.dhs, spk, SP_KEY_LEN);
	crypto_scalarmult_base(w.dhs_pub, w.dhs);
	sp_ratchet_root0(w.rk, sk);
	/* then what Alice's first message (header.dh = EK_A, pn 0, n 0) does */
	r = dh_ratchet(&w, ek_a, fresh);
	if (r == 0)
		work_put(&w, st);
	else
		clear(st);
	sodium_memzero(&w, sizeof(w));
	return r;
}

size_t sp_ratchet_body_len(size_t len, size_t max_payload, bool pad)
{
	size_t bucket = pad ? sp_seal_pad_bucket(len, max_payload) : len + 1;

	if (bucket == 0 || bucket > max_payload)
		return 0;
	return bucket + SP_RATCHET_OVERHEAD;
}

enum { AT_DH = 1 + SP_RATCHET_SID_LEN, AT_PN = AT_DH + SP_KEY_LEN, AT_N = AT_PN + 4 };

static void put_header(uint8_t *p, const struct sp_ratchet *st, uint32_t pn, uint32_t n)
{
	p[0] = SP_RATCHET_VERSION;
	memcpy(p + 1, st->tag_send, SP_RATCHET_SID_LEN);
	memcpy(p + AT_DH, st->dhs_pub, SP_KEY_LEN);
	sp_be_put32(p + AT_PN, pn);
	sp_be_put32(p + AT_N, n);
}

int sp_ratchet_header(const uint8_t *body, size_t len, struct sp_ratchet_hdr *h)
{
	if (len < SP_RATCHET_OVERHEAD + 1 || body[0] != SP_RATCHET_VERSION)
		return -EBADMSG;
	memcpy(h->tag, body + 1, SP_RATCHET_SID_LEN);
	memcpy(h->dh, body + AT_DH, SP_KEY_LEN);
	h->pn = sp_be_get32(body + AT_PN);
	h->n = sp_be_get32(body + AT_N);
	return 0;
}

/* The AEAD's key and nonce from a message key (the spec's 5.2). */
static void msg_keys(uint8_t key[AEAD_KEY_LEN], uint8_t nonce[SP_RATCHET_NONCE_LEN],
		     const uint8_t mk[32])
{
	uint8_t okm[AEAD_KEY_LEN + SP_RATCHET_NONCE_LEN];

	sp_ratchet_hkdf(okm, sizeof(okm), NULL, 0, mk, 32, SP_RATCHET_INFO_MSG);
	memcpy(key, okm, AEAD_KEY_LEN);
	memcpy(nonce, okm + AEAD_KEY_LEN, SP_RATCHET_NONCE_LEN);
	sodium_memzero(okm, sizeof(okm));
}

/* ad = AD || header */
static void full_ad(uint8_t ad[SP_RATCHET_AD_LEN + SP_RATCHET_HDR_LEN],
		    const struct sp_ratchet *st, const uint8_t *header)
{
	memcpy(ad, st->ad, SP_RATCHET_AD_LEN);
	memcpy(ad + SP_RATCHET_AD_LEN, header, SP_RATCHET_HDR_LEN);
}

int sp_ratchet_encrypt(struct sp_ratchet *st, const uint8_t *msg, size_t len, size_t max_payload,
		       bool pad, uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t ck[32], mk[32], key[AEAD_KEY_LEN], nonce[SP_RATCHET_NONCE_LEN];
	uint8_t ad[SP_RATCHET_AD_LEN + SP_RATCHET_HDR_LEN];
	size_t body = sp_ratchet_body_len(len, max_payload, pad), padded = 0, bucket;
	uint8_t *ct = out + SP_RATCHET_HDR_LEN;

	if (body == 0 || body > SP_BODY_MAX || cap < body)
		return -EMSGSIZE;
	bucket = body - SP_RATCHET_OVERHEAD;
	/* state.CKs, mk = KDF_CK(state.CKs) */
	sp_ratchet_kdf_ck(ck, mk, st->cks);
	/* header = HEADER(state.DHs, state.PN, state.Ns) */
	put_header(out, st, st->pn, st->ns);
	if (len)
		memmove(ct, msg, len);
	if (sodium_pad(&padded, ct, len, bucket, bucket) != 0 || padded != bucket) {
		sodium_memzero(ct, len);
		sodium_memzero(ck, sizeof(ck));
		sodium_memzero(mk, sizeof(mk));
		return -EMSGSIZE;
	}
	full_ad(ad, st, out);
	msg_keys(key, nonce, mk);
	crypto_aead_chacha20poly1305_ietf_encrypt(ct, NULL, ct, bucket, ad, sizeof(ad), NULL, nonce,
						  key);
	memcpy(st->cks, ck, 32);
	st->ns++;
	*out_len = body;
	sodium_memzero(ck, sizeof(ck));
	sodium_memzero(mk, sizeof(mk));
	sodium_memzero(key, sizeof(key));
	return 0;
}

/* DECRYPT(mk, ciphertext, AD || header) and the padding's removal. */
static int open_with(const struct sp_ratchet *st, const uint8_t mk[32], const uint8_t *body,
		     size_t len, uint8_t *msg_out, size_t *msg_len)
{
	uint8_t key[AEAD_KEY_LEN], nonce[SP_RATCHET_NONCE_LEN];
	uint8_t ad[SP_RATCHET_AD_LEN + SP_RATCHET_HDR_LEN];
	size_t ct_len = len - SP_RATCHET_OVERHEAD, unpadded = 0;
	int r = -EBADMSG;

	full_ad(ad, st, body);
	msg_keys(key, nonce, mk);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(msg_out, NULL, NULL, body + SP_RATCHET_HDR_LEN,
						      ct_len + SP_TAG_LEN, ad, sizeof(ad), nonce,
						      key) == 0) {
		if (sodium_unpad(&unpadded, msg_out, ct_len, ct_len) == 0) {
			*msg_len = unpadded;
			r = 0;
		} else {
			sodium_memzero(msg_out, ct_len);
		}
	}
	sodium_memzero(key, sizeof(key));
	return r;
}

/* Deletes skipped key i, keeping the rest in order (oldest first). */
static void drop_skipped(struct sp_ratchet *st, uint32_t i)
{
	memmove(&st->skipped[i], &st->skipped[i + 1],
		(st->nskipped - i - 1) * sizeof(st->skipped[0]));
	st->nskipped--;
	sodium_memzero(&st->skipped[st->nskipped], sizeof(st->skipped[0]));
}

/* TrySkippedMessageKeys: 1 opened, 0 no such key, -EBADMSG. */
static int try_skipped(struct sp_ratchet *st, const struct sp_ratchet_hdr *h, const uint8_t *body,
		       size_t len, uint8_t *msg_out, size_t *msg_len)
{
	for (uint32_t i = 0; i < st->nskipped; i++) {
		if (st->skipped[i].n != h->n || sodium_memcmp(st->skipped[i].dh, h->dh, SP_KEY_LEN))
			continue;
		if (open_with(st, st->skipped[i].mk, body, len, msg_out, msg_len) < 0)
			return -EBADMSG; /* the key stays for the real one */
		drop_skipped(st, i);
		return 1;
	}
	return 0;
}

/* Skipped keys found while decrypting, committed only on success. */
struct found {
	struct sp_ratchet_skipped *k;   /* malloc'd, 2 * SP_RATCHET_MAX_SKIP */
	uint32_t n;
};

/* SkipMessageKeys(state, until) on w. */
static int skip_keys(struct work *w, uint32_t until, struct found *f)
{
	if (until <= w->nr)
		return 0;
	if (until - w->nr > SP_RATCHET_MAX_SKIP)
		return -ERANGE;
	if (!w->has_ckr)
		return 0;
	if (!f->k) {
		f->k = malloc(2 * SP_RATCHET_MAX_SKIP * sizeof(*f->k));
		if (!f->k)
			return -ENOMEM;
	}
	while (w->nr < until) {
		struct sp_ratchet_skipped *s = &f->k[f->n++];

		sp_ratchet_kdf_ck(w->ckr, s->mk, w->ckr);
		memcpy(s->dh, w->dhr, SP_KEY_LEN);
		s->n = w->nr++;
	}
	return 0;
}

/* The found keys appended, the oldest dropped beyond the cap. */
static void keep_found(struct sp_ratchet *st, const struct found *f)
{
	uint32_t over = st->nskipped + f->n > SP_RATCHET_SKIPPED_MAX
				? st->nskipped + f->n - SP_RATCHET_SKIPPED_MAX
				: 0;

	for (uint32_t i = 0; i < over; i++)
		drop_skipped(st, 0);
	memcpy(&st->skipped[st->nskipped], f->k, f->n * sizeof(*f->k));
	st->nskipped += f->n;
}

int sp_ratchet_decrypt(struct sp_ratchet *st, const uint8_t *body, size_t len,
		       const uint8_t *fresh, uint8_t *msg_out, size_t cap, size_t *msg_len)
{
	struct found f = { 0 };
	struct sp_ratchet_hdr h;
	uint8_t mk[32];
	struct work w;
	int r;

	if (len > SP_BODY_MAX || sp_ratchet_header(body, len, &h) < 0 ||
	    sodium_memcmp(h.tag, st->tag_recv, SP_RATCHET_SID_LEN) != 0)
		return -EBADMSG;
	if (cap < len - SP_RATCHET_OVERHEAD)
		return -EMSGSIZE;
	r = try_skipped(st, &h, body, len, msg_out, msg_len);
	if (r != 0)
		return r < 0 ? r : 0;
	work_get(&w, st);
	if (!w.has_ckr || sodium_memcmp(h.dh, w.dhr, SP_KEY_LEN) != 0) {
		/* SkipMessageKeys(state, header.pn); DHRatchet(state, header) */
		r = skip_keys(&w, h.pn, &f);
		if (r == 0)
			r = dh_ratchet(&w, h.dh, fresh);
		if (r < 0)
			goto out;
	}
	/* SkipMessageKeys(state, header.n) */
	r = skip_keys(&w, h.n, &f);
	if (r < 0)
		goto out;
	if (h.n < w.nr) {
		r = -EBADMSG; /* used (a replay) or skipped and since dropped */
		goto out;
	}
	/* state.CKr, mk = KDF_CK(state.CKr); state.Nr += 1 */
	sp_ratchet_kdf_ck(w.ckr, mk, w.ckr);
	w.nr++;
	r = open_with(st, mk, body, len, msg_out, msg_len);
	if (r < 0)
		goto out;
	work_put(&w, st);
	if (f.n)
		keep_found(st, &f);
out:
	if (f.k) {
		sodium_memzero(f.k, 2 * SP_RATCHET_MAX_SKIP * sizeof(*f.k));
		free(f.k);
	}
	sodium_memzero(&w, sizeof(w));
	sodium_memzero(mk, sizeof(mk));
	return r;
}

size_t sp_ratchet_encoded_len(const struct sp_ratchet *st)
{
	return ENC_FIXED + (size_t)st->nskipped * ENC_SKIPPED;
}

void sp_ratchet_encode(const struct sp_ratchet *st, uint8_t *out)
{
	uint8_t *p = out;

	*p++ = ENC_VERSION;
	memcpy(p, st->ad, SP_RATCHET_AD_LEN);
	p += SP_RATCHET_AD_LEN;
	memcpy(p, st->tag_send, SP_RATCHET_SID_LEN);
	memcpy(p + SP_RATCHET_SID_LEN, st->tag_recv, SP_RATCHET_SID_LEN);
	p += 2 * SP_RATCHET_SID_LEN;
	memcpy(p, st->dhs, SP_KEY_LEN);
	memcpy(p + SP_KEY_LEN, st->dhs_pub, SP_KEY_LEN);
	memcpy(p + 2 * SP_KEY_LEN, st->dhr, SP_KEY_LEN);
	p += 3 * SP_KEY_LEN;
	memcpy(p, st->rk, 32);
	memcpy(p + 32, st->cks, 32);
	memcpy(p + 64, st->ckr, 32);
	p += 96;
	*p++ = st->has_ckr ? 1 : 0;
	sp_be_put32(p, st->ns);
	sp_be_put32(p + 4, st->nr);
	sp_be_put32(p + 8, st->pn);
	sp_be_put16(p + 12, (uint16_t)st->nskipped);
	p += 14;
	for (uint32_t i = 0; i < st->nskipped; i++) {
		memcpy(p, st->skipped[i].dh, SP_KEY_LEN);
		sp_be_put32(p + SP_KEY_LEN, st->skipped[i].n);
		memcpy(p + SP_KEY_LEN + 4, st->skipped[i].mk, SP_RATCHET_MSG_KEY_LEN);
		p += ENC_SKIPPED;
	}
}

int sp_ratchet_decode(struct sp_ratchet *st, const uint8_t *in, size_t len, size_t *used)
{
	const uint8_t *p = in;
	uint32_t n;

	if (len < ENC_FIXED || p[0] != ENC_VERSION || p[ENC_FIXED - 15] > 1)
		return -EBADMSG;
	n = sp_be_get16(in + ENC_FIXED - 2);
	if (n > SP_RATCHET_SKIPPED_MAX || len - ENC_FIXED < (size_t)n * ENC_SKIPPED)
		return -EBADMSG;
	clear(st);
	p++;
	memcpy(st->ad, p, SP_RATCHET_AD_LEN);
	p += SP_RATCHET_AD_LEN;
	memcpy(st->tag_send, p, SP_RATCHET_SID_LEN);
	memcpy(st->tag_recv, p + SP_RATCHET_SID_LEN, SP_RATCHET_SID_LEN);
	p += 2 * SP_RATCHET_SID_LEN;
	memcpy(st->dhs, p, SP_KEY_LEN);
	memcpy(st->dhs_pub, p + SP_KEY_LEN, SP_KEY_LEN);
	memcpy(st->dhr, p + 2 * SP_KEY_LEN, SP_KEY_LEN);
	p += 3 * SP_KEY_LEN;
	memcpy(st->rk, p, 32);
	memcpy(st->cks, p + 32, 32);
	memcpy(st->ckr, p + 64, 32);
	p += 96;
	st->has_ckr = *p++ == 1;
	st->ns = sp_be_get32(p);
	st->nr = sp_be_get32(p + 4);
	st->pn = sp_be_get32(p + 8);
	st->nskipped = n;
	p += 14;
	for (uint32_t i = 0; i < n; i++) {
		memcpy(st->skipped[i].dh, p, SP_KEY_LEN);
		st->skipped[i].n = sp_be_get32(p + SP_KEY_LEN);
		memcpy(st->skipped[i].mk, p + SP_KEY_LEN + 4, SP_RATCHET_MSG_KEY_LEN);
		p += ENC_SKIPPED;
	}
	*used = (size_t)(p - in);
	return 0;
}
