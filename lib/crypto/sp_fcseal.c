/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_fcseal.c: first-contact envelopes (sp_fcseal.h): X3DH's SK, an AEAD
 * of the sender's key under the DH2 key, an AEAD of the message under SK.
 */
#include "sp_fcseal.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "sp_be.h"
#include "sp_seal.h"
#include "sp_x3dh.h"

static const uint8_t nonce0[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];

static void put_header(uint8_t *p, const uint8_t ek[SP_KEY_LEN], const struct sp_fcseal_to *to)
{
	p[0] = SP_FCSEAL_VERSION;
	memcpy(p + 1, ek, SP_KEY_LEN);
	sp_be_put32(p + 33, to->spk_id);
	p[37] = to->has_opk ? 1 : 0;
	sp_be_put32(p + 38, to->has_opk ? to->opk_id : 0);
}

int sp_fcseal_header(const uint8_t *body, size_t len, struct sp_fcseal_hdr *h)
{
	if (len < SP_FCSEAL_OVERHEAD || body[0] != SP_FCSEAL_VERSION || body[37] > 1)
		return -EBADMSG;
	memcpy(h->ek, body + 1, SP_KEY_LEN);
	h->spk_id = sp_be_get32(body + 33);
	h->has_opk = body[37];
	h->opk_id = sp_be_get32(body + 38);
	if (!h->has_opk && h->opk_id)
		return -EBADMSG; /* one spelling */
	return 0;
}

/* k_s from DH(EK_A, IK_B), either side's secret and the other's key. */
static int sender_key(uint8_t k[SP_X3DH_SK_LEN], const uint8_t *sec, const uint8_t *pub)
{
	uint8_t dh[SP_KEY_LEN];
	int ret = crypto_scalarmult(dh, sec, pub) == 0 ? 0 : -EINVAL;

	if (ret == 0)
		sp_x3dh_kdf_info(k, SP_FCSEAL_SENDER_INFO, sizeof(SP_FCSEAL_SENDER_INFO) - 1, dh,
				 sizeof(dh));
	sodium_memzero(dh, sizeof(dh));
	return ret;
}

/* ad of ct: IK_A || IK_B || header || enc_s */
static void ct_ad(uint8_t *ad, const uint8_t *ik_a, const uint8_t *ik_b, const uint8_t *body)
{
	memcpy(ad, ik_a, SP_KEY_LEN);
	memcpy(ad + SP_KEY_LEN, ik_b, SP_KEY_LEN);
	memcpy(ad + 2 * SP_KEY_LEN, body, SP_FCSEAL_HDR_LEN + SP_KEY_LEN + SP_TAG_LEN);
}

enum { CT_AD_LEN = 2 * SP_KEY_LEN + SP_FCSEAL_HDR_LEN + SP_KEY_LEN + SP_TAG_LEN };

int sp_fcseal_seal(const uint8_t ik_a[SP_KEY_LEN], const uint8_t ek_a[SP_KEY_LEN],
		   const struct sp_fcseal_to *to, const uint8_t *msg, size_t len,
		   size_t max_payload, uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t ik_pub[SP_KEY_LEN], ek_pub[SP_KEY_LEN], k[SP_X3DH_SK_LEN], sk[SP_X3DH_SK_LEN];
	uint8_t ad[CT_AD_LEN], sad[SP_FCSEAL_HDR_LEN + SP_KEY_LEN];
	size_t bucket = sp_seal_pad_bucket(len, max_payload), padded = 0;
	uint8_t *ct = out + SP_FCSEAL_HDR_LEN + SP_KEY_LEN + SP_TAG_LEN;
	int ret;

	if (bucket == 0 || cap < SP_FCSEAL_OVERHEAD + bucket)
		return -EMSGSIZE;
	if (crypto_scalarmult_base(ik_pub, ik_a) != 0 || crypto_scalarmult_base(ek_pub, ek_a) != 0)
		return -EINVAL;
	put_header(out, ek_pub, to);
	/* the sender's key, under DH(EK_A, IK_B) */
	ret = sender_key(k, ek_a, to->ik);
	if (ret < 0)
		goto out;
	memcpy(sad, out, SP_FCSEAL_HDR_LEN);
	memcpy(sad + SP_FCSEAL_HDR_LEN, to->ik, SP_KEY_LEN);
	crypto_aead_chacha20poly1305_ietf_encrypt(out + SP_FCSEAL_HDR_LEN, NULL, ik_pub, SP_KEY_LEN,
						  sad, sizeof(sad), NULL, nonce0, k);
	/* the message, under SK */
	ret = sp_x3dh_initiate(sk, ik_a, ek_a, to->ik, to->spk, to->has_opk ? to->opk : NULL);
	if (ret < 0)
		goto out;
	memcpy(ct, msg, len);
	if (sodium_pad(&padded, ct, len, bucket, bucket) != 0 || padded != bucket) {
		ret = -EMSGSIZE;
		goto out;
	}
	ct_ad(ad, ik_pub, to->ik, out);
	crypto_aead_chacha20poly1305_ietf_encrypt(ct, NULL, ct, bucket, ad, sizeof(ad), NULL, nonce0,
						  sk);
	*out_len = SP_FCSEAL_OVERHEAD + bucket;
out:
	sodium_memzero(k, sizeof(k));
	sodium_memzero(sk, sizeof(sk));
	return ret;
}

int sp_fcseal_open(const uint8_t ik_b[SP_KEY_LEN], const uint8_t spk[SP_KEY_LEN], const uint8_t *opk,
		   const uint8_t *body, size_t len, uint8_t sender[SP_KEY_LEN], uint8_t *msg_out,
		   size_t cap, size_t *msg_len)
{
	uint8_t ik_pub[SP_KEY_LEN], ik_a[SP_KEY_LEN], k[SP_X3DH_SK_LEN], sk[SP_X3DH_SK_LEN];
	uint8_t ad[CT_AD_LEN], sad[SP_FCSEAL_HDR_LEN + SP_KEY_LEN];
	const uint8_t *ct = body + SP_FCSEAL_HDR_LEN + SP_KEY_LEN + SP_TAG_LEN;
	size_t ct_len = len - SP_FCSEAL_OVERHEAD, unpadded = 0;
	struct sp_fcseal_hdr h;
	int ret = -EBADMSG;

	if (sp_fcseal_header(body, len, &h) < 0 || h.has_opk != (opk != NULL) || cap < ct_len ||
	    ct_len == 0 || crypto_scalarmult_base(ik_pub, ik_b) != 0)
		return -EBADMSG;
	if (sender_key(k, ik_b, h.ek) < 0)
		goto out;
	memcpy(sad, body, SP_FCSEAL_HDR_LEN);
	memcpy(sad + SP_FCSEAL_HDR_LEN, ik_pub, SP_KEY_LEN);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(ik_a, NULL, NULL, body + SP_FCSEAL_HDR_LEN,
						      SP_KEY_LEN + SP_TAG_LEN, sad, sizeof(sad),
						      nonce0, k) != 0)
		goto out;
	if (sp_x3dh_respond(sk, ik_b, spk, opk, ik_a, h.ek) < 0)
		goto out;
	ct_ad(ad, ik_a, ik_pub, body);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(msg_out, NULL, NULL, ct, ct_len + SP_TAG_LEN,
						      ad, sizeof(ad), nonce0, sk) != 0)
		goto out;
	if (sodium_unpad(&unpadded, msg_out, ct_len, ct_len) != 0) {
		sodium_memzero(msg_out, ct_len);
		goto out;
	}
	memcpy(sender, ik_a, SP_KEY_LEN);
	*msg_len = unpadded;
	ret = 0;
out:
	sodium_memzero(k, sizeof(k));
	sodium_memzero(sk, sizeof(sk));
	return ret;
}
