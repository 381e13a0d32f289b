/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_store_codec.c: broker/store/sp_store_codec.c without RocksDB: every
 * record format round-trips, sorts as the layout in sp_store.h promises, and
 * a truncated, padded or otherwise corrupt record is refused with -EBADMSG.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "sp_store_codec.h"

static void key_of(uint8_t k[SP_KEY_LEN], uint8_t tag)
{
	for (size_t i = 0; i < SP_KEY_LEN; i++)
		k[i] = (uint8_t)(tag + i);
}

static void test_mailbox_key(void **state)
{
	uint8_t r[SP_KEY_LEN], k[SP_STORE_MAILBOX_KEY_LEN], k2[SP_STORE_MAILBOX_KEY_LEN];
	const uint8_t seq_be[8] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 };
	uint64_t seq = 0;

	(void)state;
	key_of(r, 0x40);
	sp_store_mailbox_key(k, r, 0x0102030405060708ull);
	assert_memory_equal(k, r, SP_KEY_LEN);
	assert_memory_equal(k + SP_KEY_LEN, seq_be, 8);
	assert_int_equal(sp_store_mailbox_key_seq(k, sizeof(k), &seq), 0);
	assert_true(seq == 0x0102030405060708ull);

	/* Byte order is seq order, across a byte carry too. */
	sp_store_mailbox_key(k, r, 0xff);
	sp_store_mailbox_key(k2, r, 0x100);
	assert_true(memcmp(k, k2, sizeof(k)) < 0);

	seq = 7;
	assert_int_equal(sp_store_mailbox_key_seq(k, sizeof(k) - 1, &seq), -EBADMSG);
	assert_int_equal(sp_store_mailbox_key_seq(k, sizeof(k) + 1, &seq), -EBADMSG);
	assert_int_equal(sp_store_mailbox_key_seq(k, 0, &seq), -EBADMSG);
	assert_true(seq == 7);  /* untouched on refusal */
}

static void test_expiry_keys(void **state)
{
	uint8_t r[SP_KEY_LEN], id[SP_STORE_DEDUP_ID_LEN];
	uint8_t em[SP_STORE_EXPIRY_MAILBOX_KEY_LEN], ed[SP_STORE_EXPIRY_DEDUP_KEY_LEN];
	struct sp_store_expiry_ref ref;

	(void)state;
	key_of(r, 0x10);
	key_of(id, 0x90);
	sp_store_expiry_mailbox_key(em, 1000, r, 42);
	assert_int_equal(em[8], 'm');
	assert_int_equal(sp_store_expiry_key_decode(em, sizeof(em), &ref), 0);
	assert_int_equal(ref.kind, SP_STORE_KIND_MAILBOX);
	assert_true(ref.expires_ms == 1000 && ref.seq == 42);
	assert_ptr_equal(ref.recipient, em + 9);
	assert_memory_equal(ref.recipient, r, SP_KEY_LEN);
	assert_null(ref.dedup_id);

	sp_store_expiry_dedup_key(ed, 2000, id);
	assert_int_equal(ed[8], 'd');
	assert_int_equal(sp_store_expiry_key_decode(ed, sizeof(ed), &ref), 0);
	assert_int_equal(ref.kind, SP_STORE_KIND_DEDUP);
	assert_true(ref.expires_ms == 2000);
	assert_memory_equal(ref.dedup_id, id, SP_STORE_DEDUP_ID_LEN);
	assert_null(ref.recipient);

	/* The index sorts by time first, whatever the kind. */
	sp_store_expiry_mailbox_key(em, 1999, r, UINT64_MAX);
	assert_true(memcmp(em, ed, 8) < 0);

	/* Wrong lengths, and each kind at the other's length. */
	assert_int_equal(sp_store_expiry_key_decode(em, sizeof(em) - 1, &ref), -EBADMSG);
	assert_int_equal(sp_store_expiry_key_decode(ed, sizeof(ed) + 1, &ref), -EBADMSG);
	assert_int_equal(sp_store_expiry_key_decode(em, SP_STORE_EXPIRY_KEY_MIN - 1, &ref),
			 -EBADMSG);
	assert_int_equal(sp_store_expiry_key_decode(em, SP_STORE_EXPIRY_DEDUP_KEY_LEN, &ref),
			 -EBADMSG);
	sp_store_expiry_mailbox_key(em, 1000, r, 42);
	em[8] = 'd';
	assert_int_equal(sp_store_expiry_key_decode(em, sizeof(em), &ref), -EBADMSG);
	em[8] = 'x';
	assert_int_equal(sp_store_expiry_key_decode(em, sizeof(em), &ref), -EBADMSG);
}

/* Window records: the key sorts with the mailbox records by time; the value
 * holds 1..64 entries, any other length, count or version is refused. */
static void test_window_record(void **state)
{
	uint8_t a[SP_KEY_LEN], b[SP_KEY_LEN], k[SP_STORE_EXPIRY_MAILBOX_KEY_LEN];
	uint8_t m[SP_STORE_EXPIRY_MAILBOX_KEY_LEN];
	uint8_t v[SP_STORE_WINDOW_HDR_LEN + 2 * SP_STORE_WINDOW_ITEM_LEN];
	struct sp_store_expiry_ref ref;
	const uint8_t *rcpt;
	uint64_t seq, exp;
	uint32_t n;

	(void)state;
	memset(a, 0xa1, sizeof(a));
	memset(b, 0xb2, sizeof(b));
	sp_store_expiry_window_key(k, 5000, a, 7);
	assert_int_equal(sp_store_expiry_key_decode(k, sizeof(k), &ref), 0);
	assert_int_equal(ref.kind, SP_STORE_KIND_WINDOW);
	assert_int_equal(ref.expires_ms, 5000);
	assert_int_equal(ref.seq, 7);
	assert_memory_equal(ref.recipient, a, SP_KEY_LEN);
	sp_store_expiry_mailbox_key(m, 5001, a, 7);
	assert_true(memcmp(k, m, sizeof(k)) < 0);       /* by time first */

	assert_int_equal(sp_store_window_len(2), sizeof(v));
	sp_store_window_hdr_encode(v, 2);
	sp_store_window_item_encode(v + sp_store_window_len(0), a, 7, 5000);
	sp_store_window_item_encode(v + sp_store_window_len(1), b, 9, 6000);
	assert_int_equal(sp_store_window_decode(v, sizeof(v), &n), 0);
	assert_int_equal(n, 2);
	sp_store_window_item(v, 1, &rcpt, &seq, &exp);
	assert_memory_equal(rcpt, b, SP_KEY_LEN);
	assert_int_equal(seq, 9);
	assert_int_equal(exp, 6000);
	assert_int_equal(sp_store_window_decode(v, sizeof(v) - 1, &n), -EBADMSG);
	assert_int_equal(n, 0);
	sp_store_window_hdr_encode(v, 3);       /* more than the value holds */
	assert_int_equal(sp_store_window_decode(v, sizeof(v), &n), -EBADMSG);
	sp_store_window_hdr_encode(v, 0);
	assert_int_equal(sp_store_window_decode(v, SP_STORE_WINDOW_HDR_LEN, &n), -EBADMSG);
	sp_store_window_hdr_encode(v, 2);
	v[2] = 1;                               /* reserved */
	assert_int_equal(sp_store_window_decode(v, sizeof(v), &n), -EBADMSG);
	v[2] = 0;
	v[0] = 2;                               /* version */
	assert_int_equal(sp_store_window_decode(v, sizeof(v), &n), -EBADMSG);
}

static void test_expiry_bound(void **state)
{
	uint8_t hi[SP_STORE_EXPIRY_BOUND_LEN], r[SP_KEY_LEN];
	uint8_t due[SP_STORE_EXPIRY_MAILBOX_KEY_LEN], later[SP_STORE_EXPIRY_MAILBOX_KEY_LEN];

	(void)state;
	key_of(r, 0xf0);
	sp_store_expiry_bound(hi, 5000);
	sp_store_expiry_mailbox_key(due, 5000, r, UINT64_MAX);
	sp_store_expiry_mailbox_key(later, 5001, r, 0);
	/* RocksDB compares bytewise, a shorter prefix first. */
	assert_true(memcmp(due, hi, sizeof(hi)) < 0);
	assert_true(memcmp(later, hi, sizeof(hi)) == 0); /* later >= hi: excluded */

	/* At the end of time the bound saturates instead of wrapping to 0. */
	sp_store_expiry_bound(hi, UINT64_MAX);
	for (size_t i = 0; i < sizeof(hi); i++)
		assert_int_equal(hi[i], 0xff);
}

static void test_mailbox_value(void **state)
{
	static const uint8_t body[5] = { 'h', 'e', 'l', 'l', 'o' };
	struct sp_store_mbox_hdr h = { .body_len = 5, .accepted_ms = 123456, .expires_ms = 222,
				       .share_tag = 0xabcdef };
	struct sp_store_mbox_hdr got;
	uint8_t v[SP_STORE_MAILBOX_HDR_LEN + sizeof(body) + 1];

	(void)state;
	sp_store_mbox_hdr_encode(v, &h);
	memcpy(v + SP_STORE_MAILBOX_HDR_LEN, body, sizeof(body));
	assert_int_equal(v[0], SP_STORE_MAILBOX_V2);
	assert_int_equal(v[1], 0xab);
	assert_int_equal(sp_store_mbox_decode(v, SP_STORE_MAILBOX_HDR_LEN + 5, &got), 0);
	assert_int_equal(got.body_len, 5);
	assert_true(got.has_tag && got.share_tag == 0xabcdef);
	/* Acceptance in whole seconds (rounded down), expiry exact. */
	assert_true(got.accepted_ms == 123000 && got.expires_ms == 222);
	assert_memory_equal(v + SP_STORE_MAILBOX_HDR_LEN, body, got.body_len);

	/* Truncated anywhere (header or body), or with a byte appended. */
	for (size_t len = 0; len < SP_STORE_MAILBOX_HDR_LEN + 5; len++)
		assert_int_equal(sp_store_mbox_decode(v, len, &got), -EBADMSG);
	assert_int_equal(sp_store_mbox_decode(v, SP_STORE_MAILBOX_HDR_LEN + 6, &got), -EBADMSG);

	/* Another version; a v1 value (no tag) with any reserved byte set. */
	v[0] = SP_STORE_MAILBOX_V2 + 1;
	assert_int_equal(sp_store_mbox_decode(v, SP_STORE_MAILBOX_HDR_LEN + 5, &got), -EBADMSG);
	v[0] = 0;
	assert_int_equal(sp_store_mbox_decode(v, SP_STORE_MAILBOX_HDR_LEN + 5, &got), -EBADMSG);
	v[0] = SP_STORE_VALUE_V1;
	v[1] = v[2] = v[3] = 0;
	assert_int_equal(sp_store_mbox_decode(v, SP_STORE_MAILBOX_HDR_LEN + 5, &got), 0);
	assert_false(got.has_tag);
	for (int i = 1; i < 4; i++) {
		v[i] = 1;
		assert_int_equal(sp_store_mbox_decode(v, SP_STORE_MAILBOX_HDR_LEN + 5, &got),
				 -EBADMSG);
		v[i] = 0;
	}

	/* An empty body is a valid value of exactly the header's length. */
	h.body_len = 0;
	sp_store_mbox_hdr_encode(v, &h);
	assert_int_equal(sp_store_mbox_decode(v, SP_STORE_MAILBOX_HDR_LEN, &got), 0);
	assert_int_equal(got.body_len, 0);

	/* The size a corrupt value is counted as. */
	assert_true(sp_store_mbox_body_guess(0) == 0);
	assert_true(sp_store_mbox_body_guess(SP_STORE_MAILBOX_HDR_LEN) == 0);
	assert_true(sp_store_mbox_body_guess(SP_STORE_MAILBOX_HDR_LEN + 9) == 9);
}

static void test_meta_value(void **state)
{
	struct sp_store_meta m = { .next_seq = (5ull << 32) + 3, .count = 7, .bytes = 1u << 20 };
	struct sp_store_meta got;
	uint8_t v[SP_STORE_META_LEN + 1] = { 0 };

	(void)state;
	sp_store_meta_encode(v, &m);
	assert_int_equal(sp_store_meta_decode(v, SP_STORE_META_LEN, &got), 0);
	assert_true(got.next_seq == m.next_seq && got.count == 7 && got.bytes == m.bytes);

	assert_int_equal(sp_store_meta_decode(v, SP_STORE_META_LEN - 1, &got), -EBADMSG);
	assert_int_equal(sp_store_meta_decode(v, SP_STORE_META_LEN + 1, &got), -EBADMSG);
	assert_int_equal(sp_store_meta_decode(v, 0, &got), -EBADMSG);
	v[0] = 0;
	assert_int_equal(sp_store_meta_decode(v, SP_STORE_META_LEN, &got), -EBADMSG);
	v[0] = SP_STORE_VALUE_V1;
	for (int i = 1; i < 8; i++) {
		v[i] = 0x80;
		assert_int_equal(sp_store_meta_decode(v, SP_STORE_META_LEN, &got), -EBADMSG);
		v[i] = 0;
	}
}

static void test_dedup_value(void **state)
{
	uint8_t v[SP_STORE_DEDUP_VALUE_LEN + 1] = { 0 };
	uint64_t seq = 0, exp = 0;

	(void)state;
	sp_store_dedup_encode(v, UINT64_MAX - 1, 86400000);
	assert_int_equal(sp_store_dedup_decode(v, SP_STORE_DEDUP_VALUE_LEN, &seq, &exp), 0);
	assert_true(seq == UINT64_MAX - 1 && exp == 86400000);

	assert_int_equal(sp_store_dedup_decode(v, SP_STORE_DEDUP_VALUE_LEN - 1, &seq, &exp),
			 -EBADMSG);
	assert_int_equal(sp_store_dedup_decode(v, SP_STORE_DEDUP_VALUE_LEN + 1, &seq, &exp),
			 -EBADMSG);
	v[0] = 9;
	assert_int_equal(sp_store_dedup_decode(v, SP_STORE_DEDUP_VALUE_LEN, &seq, &exp), -EBADMSG);
	v[0] = SP_STORE_VALUE_V1;
	v[7] = 1;
	assert_int_equal(sp_store_dedup_decode(v, SP_STORE_DEDUP_VALUE_LEN, &seq, &exp), -EBADMSG);
}

static void test_epoch_value(void **state)
{
	uint8_t v[SP_STORE_EPOCH_LEN];
	uint64_t e = 0;

	(void)state;
	sp_store_epoch_encode(v, 0x1122334455667788ull);
	assert_int_equal(v[0], 0x11);
	assert_int_equal(v[7], 0x88);
	assert_int_equal(sp_store_epoch_decode(v, sizeof(v), &e), 0);
	assert_true(e == 0x1122334455667788ull);
	assert_int_equal(sp_store_epoch_decode(v, sizeof(v) - 1, &e), -EBADMSG);
	assert_int_equal(sp_store_epoch_decode(v, sizeof(v) + 1, &e), -EBADMSG);
}

static void test_seq_floor_and_add_sat(void **state)
{
	(void)state;
	assert_true(sp_store_seq_floor(0) == 0);
	assert_true(sp_store_seq_floor(1) == 1ull << 32);
	assert_true(sp_store_seq_floor(0xffffffffull) == 0xffffffffull << 32);
	assert_true(sp_store_seq_floor(1ull << 32) == UINT64_MAX);
	assert_true(sp_store_seq_floor(UINT64_MAX) == UINT64_MAX);

	assert_true(sp_store_add_sat(1, 2) == 3);
	assert_true(sp_store_add_sat(UINT64_MAX - 1, 1) == UINT64_MAX);
	assert_true(sp_store_add_sat(UINT64_MAX - 1, 2) == UINT64_MAX);
	assert_true(sp_store_add_sat(UINT64_MAX, UINT64_MAX) == UINT64_MAX);
}

static void test_dedup_id(void **state)
{
	uint8_t key[crypto_generichash_KEYBYTES], key2[crypto_generichash_KEYBYTES];
	uint8_t s[SP_KEY_LEN], r[SP_KEY_LEN], msg[2 * SP_KEY_LEN + 8];
	uint8_t id[SP_STORE_DEDUP_ID_LEN], want[SP_STORE_DEDUP_ID_LEN], other[SP_STORE_DEDUP_ID_LEN];
	const uint8_t cid_be[8] = { 0, 0, 0, 0, 0, 0, 0x01, 0x02 };

	(void)state;
	assert_true(sodium_init() >= 0);
	key_of(key, 0x01);
	key_of(key2, 0x02);
	key_of(s, 0x30);
	key_of(r, 0x60);

	/* Keyed BLAKE2b-256 over sender | recipient | client_id (big-endian). */
	memcpy(msg, s, SP_KEY_LEN);
	memcpy(msg + SP_KEY_LEN, r, SP_KEY_LEN);
	memcpy(msg + 2 * SP_KEY_LEN, cid_be, 8);
	assert_int_equal(crypto_generichash(want, sizeof(want), msg, sizeof(msg), key, sizeof(key)),
			 0);
	sp_store_dedup_id(id, key, s, r, 0x0102);
	assert_memory_equal(id, want, sizeof(id));

	sp_store_dedup_id(other, key2, s, r, 0x0102);
	assert_memory_not_equal(id, other, sizeof(id));
	sp_store_dedup_id(other, key, r, s, 0x0102);     /* direction matters */
	assert_memory_not_equal(id, other, sizeof(id));
	sp_store_dedup_id(other, key, s, r, 0x0103);
	assert_memory_not_equal(id, other, sizeof(id));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mailbox_key),
		cmocka_unit_test(test_expiry_keys),
		cmocka_unit_test(test_window_record),
		cmocka_unit_test(test_expiry_bound),
		cmocka_unit_test(test_mailbox_value),
		cmocka_unit_test(test_meta_value),
		cmocka_unit_test(test_dedup_value),
		cmocka_unit_test(test_epoch_value),
		cmocka_unit_test(test_seq_floor_and_add_sat),
		cmocka_unit_test(test_dedup_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
