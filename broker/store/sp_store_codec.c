/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store_codec.c: the store's record formats (sp_store.h has the layout,
 * sp_store_codec.h the contract). Integers are big-endian so that RocksDB's
 * bytewise order is numeric order: one device's entries sort by seq, the
 * expiry index by time.
 */
#include "sp_store_codec.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "sp_be.h"

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* The version byte, then `reserved` bytes that this format keeps zero. */
static bool version_ok(const uint8_t *v, size_t reserved)
{
	return v[0] == SP_STORE_VALUE_V1 && all_zero(v + 1, reserved);
}

uint64_t sp_store_add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t sp_store_seq_floor(uint64_t epoch)
{
	if (epoch >= (1ull << (64 - SP_STORE_EPOCH_SHIFT)))
		return UINT64_MAX;
	return epoch << SP_STORE_EPOCH_SHIFT;
}

/* ---- keys ------------------------------------------------------------------ */

void sp_store_mailbox_key(uint8_t out[SP_STORE_MAILBOX_KEY_LEN], const uint8_t recipient[SP_KEY_LEN],
			  uint64_t seq)
{
	memcpy(out, recipient, SP_KEY_LEN);
	sp_be_put64(out + SP_KEY_LEN, seq);
}

void sp_store_expiry_mailbox_key(uint8_t out[SP_STORE_EXPIRY_MAILBOX_KEY_LEN], uint64_t expires_ms,
				 const uint8_t recipient[SP_KEY_LEN], uint64_t seq)
{
	sp_be_put64(out, expires_ms);
	out[8] = SP_STORE_KIND_MAILBOX;
	memcpy(out + 9, recipient, SP_KEY_LEN);
	sp_be_put64(out + 9 + SP_KEY_LEN, seq);
}

void sp_store_expiry_dedup_key(uint8_t out[SP_STORE_EXPIRY_DEDUP_KEY_LEN], uint64_t expires_ms,
			       const uint8_t id[SP_STORE_DEDUP_ID_LEN])
{
	sp_be_put64(out, expires_ms);
	out[8] = SP_STORE_KIND_DEDUP;
	memcpy(out + 9, id, SP_STORE_DEDUP_ID_LEN);
}

void sp_store_expiry_window_key(uint8_t out[SP_STORE_EXPIRY_MAILBOX_KEY_LEN], uint64_t expires_ms,
				const uint8_t recipient[SP_KEY_LEN], uint64_t seq)
{
	sp_store_expiry_mailbox_key(out, expires_ms, recipient, seq);
	out[8] = SP_STORE_KIND_WINDOW;
}

size_t sp_store_window_len(uint32_t n)
{
	return SP_STORE_WINDOW_HDR_LEN + (size_t)n * SP_STORE_WINDOW_ITEM_LEN;
}

void sp_store_window_hdr_encode(uint8_t out[SP_STORE_WINDOW_HDR_LEN], uint32_t n)
{
	out[0] = SP_STORE_VALUE_V1;
	out[1] = out[2] = out[3] = 0;
	sp_be_put32(out + 4, n);
}

void sp_store_window_item_encode(uint8_t out[SP_STORE_WINDOW_ITEM_LEN],
				 const uint8_t recipient[SP_KEY_LEN], uint64_t seq,
				 uint64_t expires_ms)
{
	memcpy(out, recipient, SP_KEY_LEN);
	sp_be_put64(out + SP_KEY_LEN, seq);
	sp_be_put64(out + SP_KEY_LEN + 8, expires_ms);
}

int sp_store_window_decode(const uint8_t *v, size_t len, uint32_t *n)
{
	uint32_t k;

	*n = 0;
	if (len < SP_STORE_WINDOW_HDR_LEN || v[0] != SP_STORE_VALUE_V1 || v[1] || v[2] || v[3])
		return -EBADMSG;
	k = sp_be_get32(v + 4);
	if (k == 0 || k > SP_STORE_WINDOW_MAX || len != sp_store_window_len(k))
		return -EBADMSG;
	*n = k;
	return 0;
}

void sp_store_window_item(const uint8_t *v, uint32_t i, const uint8_t **recipient,
			  uint64_t *seq, uint64_t *expires_ms)
{
	const uint8_t *p = v + sp_store_window_len(i);

	*recipient = p;
	*seq = sp_be_get64(p + SP_KEY_LEN);
	*expires_ms = sp_be_get64(p + SP_KEY_LEN + 8);
}

void sp_store_expiry_bound(uint8_t out[SP_STORE_EXPIRY_BOUND_LEN], uint64_t now_ms)
{
	sp_be_put64(out, sp_store_add_sat(now_ms, 1));
}

int sp_store_mailbox_key_seq(const uint8_t *key, size_t klen, uint64_t *seq)
{
	if (klen != SP_STORE_MAILBOX_KEY_LEN)
		return -EBADMSG;
	*seq = sp_be_get64(key + SP_KEY_LEN);
	return 0;
}

int sp_store_expiry_key_decode(const uint8_t *key, size_t klen, struct sp_store_expiry_ref *out)
{
	memset(out, 0, sizeof(*out));
	if (klen < SP_STORE_EXPIRY_KEY_MIN)
		return -EBADMSG;
	out->expires_ms = sp_be_get64(key);
	out->kind = key[8];
	if (klen == SP_STORE_EXPIRY_MAILBOX_KEY_LEN &&
	    (out->kind == SP_STORE_KIND_MAILBOX || out->kind == SP_STORE_KIND_WINDOW)) {
		out->recipient = key + 9;
		out->seq = sp_be_get64(key + 9 + SP_KEY_LEN);
		return 0;
	}
	if (klen == SP_STORE_EXPIRY_DEDUP_KEY_LEN && out->kind == SP_STORE_KIND_DEDUP) {
		out->dedup_id = key + 9;
		return 0;
	}
	return -EBADMSG;
}

void sp_store_dedup_id(uint8_t id[SP_STORE_DEDUP_ID_LEN], const uint8_t *dedup_key,
		       const uint8_t sender[SP_KEY_LEN], const uint8_t recipient[SP_KEY_LEN],
		       uint64_t client_id)
{
	crypto_generichash_state h;
	uint8_t cid[8];

	sp_be_put64(cid, client_id);
	crypto_generichash_init(&h, dedup_key, crypto_generichash_KEYBYTES, SP_STORE_DEDUP_ID_LEN);
	crypto_generichash_update(&h, sender, SP_KEY_LEN);
	crypto_generichash_update(&h, recipient, SP_KEY_LEN);
	crypto_generichash_update(&h, cid, sizeof(cid));
	crypto_generichash_final(&h, id, SP_STORE_DEDUP_ID_LEN);
	sodium_memzero(&h, sizeof(h));
}

/* ---- values ---------------------------------------------------------------- */

void sp_store_mbox_hdr_encode(uint8_t out[SP_STORE_MAILBOX_HDR_LEN],
			      const struct sp_store_mbox_hdr *h)
{
	out[0] = SP_STORE_MAILBOX_V2;
	out[1] = (uint8_t)(h->share_tag >> 16);
	out[2] = (uint8_t)(h->share_tag >> 8);
	out[3] = (uint8_t)h->share_tag;
	sp_be_put32(out + 4, h->body_len);
	/* Coarse on purpose (SP_STORE_ACCEPTED_GRAIN_MS). */
	sp_be_put64(out + 8, h->accepted_ms - h->accepted_ms % SP_STORE_ACCEPTED_GRAIN_MS);
	sp_be_put64(out + 16, h->expires_ms);
}

int sp_store_mbox_decode(const uint8_t *v, size_t len, struct sp_store_mbox_hdr *h)
{
	if (len < SP_STORE_MAILBOX_HDR_LEN)
		return -EBADMSG;
	if (v[0] == SP_STORE_MAILBOX_V2) {
		h->has_tag = true;
		h->share_tag = (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];
	} else if (version_ok(v, 3)) {
		h->has_tag = false;
		h->share_tag = 0;
	} else {
		return -EBADMSG;
	}
	h->body_len = sp_be_get32(v + 4);
	h->accepted_ms = sp_be_get64(v + 8);
	h->expires_ms = sp_be_get64(v + 16);
	/* The declared length must match exactly: a value cut short (or with
	 * bytes appended) is never handed out as a shorter body. */
	if (len - SP_STORE_MAILBOX_HDR_LEN != h->body_len)
		return -EBADMSG;
	return 0;
}

uint32_t sp_store_share_tag(const uint8_t *dedup_key, const uint8_t sender[SP_KEY_LEN],
			    const uint8_t recipient[SP_KEY_LEN])
{
	static const uint8_t label[5] = { 's', 'h', 'a', 'r', 'e' };
	crypto_generichash_state h;
	uint8_t out[crypto_generichash_BYTES_MIN];
	uint32_t tag;

	crypto_generichash_init(&h, dedup_key, crypto_generichash_KEYBYTES, sizeof(out));
	crypto_generichash_update(&h, label, sizeof(label));
	crypto_generichash_update(&h, sender, SP_KEY_LEN);
	crypto_generichash_update(&h, recipient, SP_KEY_LEN);
	crypto_generichash_final(&h, out, sizeof(out));
	sodium_memzero(&h, sizeof(h));
	tag = ((uint32_t)out[0] << 16 | (uint32_t)out[1] << 8 | out[2]) & SP_STORE_SHARE_TAG_MASK;
	sodium_memzero(out, sizeof(out));
	return tag;
}

uint64_t sp_store_mbox_body_guess(size_t vlen)
{
	return vlen > SP_STORE_MAILBOX_HDR_LEN ? vlen - SP_STORE_MAILBOX_HDR_LEN : 0;
}

void sp_store_meta_encode(uint8_t out[SP_STORE_META_LEN], const struct sp_store_meta *m)
{
	memset(out, 0, 8);
	out[0] = SP_STORE_VALUE_V1;
	sp_be_put64(out + 8, m->next_seq);
	sp_be_put64(out + 16, m->count);
	sp_be_put64(out + 24, m->bytes);
}

int sp_store_meta_decode(const uint8_t *v, size_t len, struct sp_store_meta *m)
{
	if (len != SP_STORE_META_LEN || !version_ok(v, 7))
		return -EBADMSG;
	m->next_seq = sp_be_get64(v + 8);
	m->count = sp_be_get64(v + 16);
	m->bytes = sp_be_get64(v + 24);
	return 0;
}

void sp_store_dedup_encode(uint8_t out[SP_STORE_DEDUP_VALUE_LEN], uint64_t seq,
			   uint64_t expires_ms)
{
	memset(out, 0, 8);
	out[0] = SP_STORE_VALUE_V1;
	sp_be_put64(out + 8, seq);
	sp_be_put64(out + 16, expires_ms);
}

int sp_store_dedup_decode(const uint8_t *v, size_t len, uint64_t *seq, uint64_t *expires_ms)
{
	if (len != SP_STORE_DEDUP_VALUE_LEN || !version_ok(v, 7))
		return -EBADMSG;
	*seq = sp_be_get64(v + 8);
	*expires_ms = sp_be_get64(v + 16);
	return 0;
}

void sp_store_epoch_encode(uint8_t out[SP_STORE_EPOCH_LEN], uint64_t epoch)
{
	sp_be_put64(out, epoch);
}

int sp_store_epoch_decode(const uint8_t *v, size_t len, uint64_t *epoch)
{
	if (len != SP_STORE_EPOCH_LEN)
		return -EBADMSG;
	*epoch = sp_be_get64(v);
	return 0;
}
