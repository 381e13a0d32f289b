/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_store_codec.c: every record the broker reads back from its store
 * (broker/store/sp_store_codec.h), as a damaged disk, a bad restore or an
 * older build could leave it: mailbox values, counters (meta), dedup
 * values, the epoch, mailbox keys, expiry index keys and window values.
 *
 * Input: byte 0 selects the decoder, the rest is the record. Oracle:
 * nothing crashes or reads out of bounds (ASan); a record that decodes
 * encodes back to exactly the same bytes (the decoders accept only what
 * this build writes), and what a decoder reports is consistent with the
 * bytes (a mailbox value's body length, an expiry key's borrowed pointers).
 */
#include <stdlib.h>
#include <string.h>

#include "sp_store_codec.h"

static void check(int ok)
{
	if (!ok)
		abort();
}

static void mbox(const uint8_t *p, size_t n)
{
	struct sp_store_mbox_hdr h;
	uint8_t enc[SP_STORE_MAILBOX_HDR_LEN];

	(void)sp_store_mbox_body_guess(n);
	struct sp_store_mbox_hdr g;

	if (sp_store_mbox_decode(p, n, &h) != 0)
		return;
	check(n >= SP_STORE_MAILBOX_HDR_LEN && h.body_len == n - SP_STORE_MAILBOX_HDR_LEN);
	/* The encoder writes v2 with the acceptance time in whole seconds
	 * (SP_STORE_ACCEPTED_GRAIN_MS): a v2 header with such a time comes
	 * back byte for byte, any other as the same fields, that time rounded
	 * down. */
	sp_store_mbox_hdr_encode(enc, &h);
	if (h.has_tag && h.accepted_ms % SP_STORE_ACCEPTED_GRAIN_MS == 0)
		check(memcmp(enc, p, sizeof(enc)) == 0);
	{
		static uint8_t v[SP_STORE_MAILBOX_HDR_LEN + 65536];

		if (n - SP_STORE_MAILBOX_HDR_LEN > sizeof(v) - SP_STORE_MAILBOX_HDR_LEN)
			return;
		memcpy(v, enc, sizeof(enc));
		memcpy(v + sizeof(enc), p + SP_STORE_MAILBOX_HDR_LEN, n - SP_STORE_MAILBOX_HDR_LEN);
		check(sp_store_mbox_decode(v, n, &g) == 0 && g.has_tag &&
		      g.body_len == h.body_len && g.accepted_ms == h.accepted_ms - h.accepted_ms % SP_STORE_ACCEPTED_GRAIN_MS &&
		      g.expires_ms == h.expires_ms && (!h.has_tag || g.share_tag == h.share_tag));
	}
}

static void meta(const uint8_t *p, size_t n)
{
	struct sp_store_meta m;
	uint8_t enc[SP_STORE_META_LEN];

	if (sp_store_meta_decode(p, n, &m) != 0)
		return;
	check(n == SP_STORE_META_LEN);
	sp_store_meta_encode(enc, &m);
	check(memcmp(enc, p, n) == 0);
}

static void dedup(const uint8_t *p, size_t n)
{
	uint64_t seq, exp;
	uint8_t enc[SP_STORE_DEDUP_VALUE_LEN];

	if (sp_store_dedup_decode(p, n, &seq, &exp) != 0)
		return;
	check(n == SP_STORE_DEDUP_VALUE_LEN);
	sp_store_dedup_encode(enc, seq, exp);
	check(memcmp(enc, p, n) == 0);
}

static void epoch(const uint8_t *p, size_t n)
{
	uint64_t e;
	uint8_t enc[SP_STORE_EPOCH_LEN];

	if (sp_store_epoch_decode(p, n, &e) != 0)
		return;
	check(n == SP_STORE_EPOCH_LEN);
	sp_store_epoch_encode(enc, e);
	check(memcmp(enc, p, n) == 0);
	(void)sp_store_seq_floor(e);
}

static void keys(const uint8_t *p, size_t n)
{
	struct sp_store_expiry_ref r;
	uint8_t enc[SP_STORE_EXPIRY_KEY_MAX];
	uint64_t seq;

	if (sp_store_mailbox_key_seq(p, n, &seq) == 0) {
		uint8_t mk[SP_STORE_MAILBOX_KEY_LEN];

		check(n == SP_STORE_MAILBOX_KEY_LEN);
		sp_store_mailbox_key(mk, p, seq);
		check(memcmp(mk, p, n) == 0);
	}
	if (sp_store_expiry_key_decode(p, n, &r) != 0)
		return;
	if (r.kind == SP_STORE_KIND_MAILBOX || r.kind == SP_STORE_KIND_WINDOW) {
		check(n == SP_STORE_EXPIRY_MAILBOX_KEY_LEN && r.recipient >= p &&
		      r.recipient + SP_KEY_LEN <= p + n && r.dedup_id == NULL);
		if (r.kind == SP_STORE_KIND_MAILBOX)
			sp_store_expiry_mailbox_key(enc, r.expires_ms, r.recipient, r.seq);
		else
			sp_store_expiry_window_key(enc, r.expires_ms, r.recipient, r.seq);
	} else {
		check(r.kind == SP_STORE_KIND_DEDUP && n == SP_STORE_EXPIRY_DEDUP_KEY_LEN &&
		      r.dedup_id >= p && r.dedup_id + SP_STORE_DEDUP_ID_LEN <= p + n &&
		      r.recipient == NULL);
		sp_store_expiry_dedup_key(enc, r.expires_ms, r.dedup_id);
	}
	check(memcmp(enc, p, n) == 0);
}

/* A window value (the entries one expiry window record names): decodes
 * only what encodes back to the same bytes, and every entry it reports
 * lies inside the value. */
static void window(const uint8_t *p, size_t n)
{
	static uint8_t enc[SP_STORE_WINDOW_HDR_LEN + SP_STORE_WINDOW_MAX * SP_STORE_WINDOW_ITEM_LEN];
	uint32_t k;

	if (sp_store_window_decode(p, n, &k) != 0)
		return;
	check(k >= 1 && k <= SP_STORE_WINDOW_MAX && n == sp_store_window_len(k));
	sp_store_window_hdr_encode(enc, k);
	for (uint32_t i = 0; i < k; i++) {
		const uint8_t *rcpt;
		uint64_t seq, exp;

		sp_store_window_item(p, i, &rcpt, &seq, &exp);
		check(rcpt >= p + SP_STORE_WINDOW_HDR_LEN &&
		      rcpt + SP_STORE_WINDOW_ITEM_LEN <= p + n);
		sp_store_window_item_encode(enc + sp_store_window_len(i), rcpt, seq, exp);
	}
	check(memcmp(enc, p, n) == 0);
}

/* A device's prekey record (sp_store_prekey.c): decodes only what encodes
 * back to the same bytes. */
static void prekey_meta(const uint8_t *p, size_t n)
{
	struct sp_store_prekey_meta m;
	uint8_t enc[SP_STORE_PREKEY_META_LEN];

	if (sp_store_prekey_meta_decode(p, n, &m) != 0)
		return;
	check(n == SP_STORE_PREKEY_META_LEN && (m.has_signed || m.spk[0] == 0));
	sp_store_prekey_meta_encode(enc, &m);
	check(memcmp(enc, p, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 7) {
	case 6:
		window(data + 1, size - 1);
		break;
	case 5:
		prekey_meta(data + 1, size - 1);
		break;
	case 0:
		mbox(data + 1, size - 1);
		break;
	case 1:
		meta(data + 1, size - 1);
		break;
	case 2:
		dedup(data + 1, size - 1);
		break;
	case 3:
		epoch(data + 1, size - 1);
		break;
	default:
		keys(data + 1, size - 1);
		break;
	}
	return 0;
}
