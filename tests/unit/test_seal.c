/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_seal.c: lib/crypto/sp_seal.c, sealed envelopes end to end.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "sp_noise.h"
#include "sp_seal.h"

struct keys {
	uint8_t a_pub[SP_KEY_LEN], a_priv[SP_KEY_LEN];
	uint8_t b_pub[SP_KEY_LEN], b_priv[SP_KEY_LEN];
};

static uint8_t body[SP_BODY_MAX + 64], msg[SP_BODY_MAX + 64], got[SP_BODY_MAX + 64];

static void keys_new(struct keys *k)
{
	sp_noise_keypair(k->a_pub, k->a_priv);
	sp_noise_keypair(k->b_pub, k->b_priv);
}

static void test_roundtrip(void **state)
{
	const size_t sizes[] = { 0, 1, 2, 63, 64, 1000, SP_MESSAGE_MAX - 1, SP_MESSAGE_MAX };
	struct keys k;

	(void)state;
	keys_new(&k);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t len = sizes[i], body_len = 0, got_len = 0;
		uint8_t sender[SP_KEY_LEN];

		randombytes_buf(msg, len);
		assert_int_equal(sp_seal(k.a_priv, k.b_pub, msg, len, body, sizeof(body),
					 &body_len), 0);
		assert_int_equal(body_len, len + SP_SEAL_OVERHEAD);
		assert_int_equal(body[0], SP_SEAL_VERSION);
		assert_true(body_len <= SP_BODY_MAX);
		assert_int_equal(sp_seal_open(k.b_priv, body, body_len, sender, got, sizeof(got),
					      &got_len), 0);
		assert_int_equal(got_len, len);
		assert_memory_equal(got, msg, len);
		/* the sender is learned from the seal, and it is A */
		assert_memory_equal(sender, k.a_pub, SP_KEY_LEN);
	}
}

/* The body is exactly 0x01 || a Noise_X message that a plain Noise_X responder reads. */
static void test_wire_format(void **state)
{
	struct keys k;
	struct sp_noise_handshake hs;
	size_t body_len, got_len;
	uint8_t rs[SP_KEY_LEN];

	(void)state;
	keys_new(&k);
	memcpy(msg, "hello, world", 12);
	assert_int_equal(sp_seal(k.a_priv, k.b_pub, msg, 12, body, sizeof(body), &body_len), 0);
	assert_int_equal(sp_noise_handshake_init(&hs, SP_NOISE_X, SP_NOISE_RESPONDER,
						 (const uint8_t *)"sealpost/seal/1", 15, k.b_priv,
						 NULL), 0);
	assert_int_equal(sp_noise_handshake_read(&hs, body + 1, body_len - 1, got, sizeof(got),
						 &got_len), 0);
	assert_int_equal(got_len, 12);
	assert_memory_equal(got, "hello, world", 12);
	assert_int_equal(sp_noise_handshake_remote_static(&hs, rs), 0);
	assert_memory_equal(rs, k.a_pub, SP_KEY_LEN);
	assert_int_equal(hs.state, SP_NOISE_HS_SPLIT);
	sp_noise_handshake_wipe(&hs);
	/* with another prologue it does not open */
	assert_int_equal(sp_noise_handshake_init(&hs, SP_NOISE_X, SP_NOISE_RESPONDER,
						 (const uint8_t *)"sealpost/seal/2", 15, k.b_priv,
						 NULL), 0);
	assert_int_equal(sp_noise_handshake_read(&hs, body + 1, body_len - 1, got, sizeof(got),
						 &got_len), -EBADMSG);
	sp_noise_handshake_wipe(&hs);
}

static void test_fresh_each_time(void **state)
{
	struct keys k;
	uint8_t body2[200];
	size_t l1, l2;

	(void)state;
	keys_new(&k);
	memset(msg, 'm', 50);
	assert_int_equal(sp_seal(k.a_priv, k.b_pub, msg, 50, body, sizeof(body), &l1), 0);
	assert_int_equal(sp_seal(k.a_priv, k.b_pub, msg, 50, body2, sizeof(body2), &l2), 0);
	assert_int_equal(l1, l2);
	assert_memory_not_equal(body, body2, l1);
}

static void test_wrong_recipient(void **state)
{
	struct keys k;
	uint8_t c_pub[SP_KEY_LEN], c_priv[SP_KEY_LEN], sender[SP_KEY_LEN] = { 0 };
	size_t body_len, got_len = 12345;

	(void)state;
	keys_new(&k);
	sp_noise_keypair(c_pub, c_priv);
	memset(msg, 'x', 100);
	assert_int_equal(sp_seal(k.a_priv, k.b_pub, msg, 100, body, sizeof(body), &body_len), 0);
	assert_int_equal(sp_seal_open(c_priv, body, body_len, sender, got, sizeof(got), &got_len),
			 -EBADMSG);
	assert_int_equal(sp_seal_open(k.a_priv, body, body_len, sender, got, sizeof(got),
				      &got_len), -EBADMSG);
	/* outputs untouched on failure */
	assert_int_equal(got_len, 12345);
	assert_true(sodium_is_zero(sender, sizeof(sender)));
}

static void test_any_flip_fails(void **state)
{
	struct keys k;
	uint8_t sender[SP_KEY_LEN], copy[200];
	size_t body_len, got_len;

	(void)state;
	keys_new(&k);
	randombytes_buf(msg, 40);
	assert_int_equal(sp_seal(k.a_priv, k.b_pub, msg, 40, body, sizeof(body), &body_len), 0);
	for (size_t b = 0; b < body_len; b++) {
		for (int bit = 0; bit < 8; bit += 3) {
			memcpy(copy, body, body_len);
			copy[b] ^= (uint8_t)(1u << bit);
			assert_int_equal(sp_seal_open(k.b_priv, copy, body_len, sender, got,
						      sizeof(got), &got_len), -EBADMSG);
		}
		/* the X25519-ignored top bit of e is still authenticated (via h) */
		memcpy(copy, body, body_len);
		copy[b] ^= 0x80;
		assert_int_equal(sp_seal_open(k.b_priv, copy, body_len, sender, got, sizeof(got),
					      &got_len), -EBADMSG);
	}
	/* truncated or extended */
	for (size_t l = 0; l < body_len; l++)
		assert_int_equal(sp_seal_open(k.b_priv, body, l, sender, got, sizeof(got),
					      &got_len), -EBADMSG);
	body[body_len] = 0;
	assert_int_equal(sp_seal_open(k.b_priv, body, body_len + 1, sender, got, sizeof(got),
				      &got_len), -EBADMSG);
	/* the untouched body still opens */
	assert_int_equal(sp_seal_open(k.b_priv, body, body_len, sender, got, sizeof(got),
				      &got_len), 0);
	assert_memory_equal(got, msg, 40);
}

static void test_wrong_version(void **state)
{
	struct keys k;
	uint8_t sender[SP_KEY_LEN];
	size_t body_len, got_len;

	(void)state;
	keys_new(&k);
	assert_int_equal(sp_seal(k.a_priv, k.b_pub, msg, 10, body, sizeof(body), &body_len), 0);
	for (int v = 0; v < 256; v++) {
		if (v == SP_SEAL_VERSION)
			continue;
		body[0] = (uint8_t)v;
		assert_int_equal(sp_seal_open(k.b_priv, body, body_len, sender, got, sizeof(got),
					      &got_len), -EBADMSG);
	}
	body[0] = SP_SEAL_VERSION;
	assert_int_equal(sp_seal_open(k.b_priv, body, body_len, sender, got, sizeof(got),
				      &got_len), 0);
}

static void test_sizes(void **state)
{
	struct keys k;
	uint8_t sender[SP_KEY_LEN];
	size_t body_len, got_len;

	(void)state;
	keys_new(&k);
	randombytes_buf(msg, SP_MESSAGE_MAX + 1);
	assert_int_equal(sp_seal(k.a_priv, k.b_pub, msg, SP_MESSAGE_MAX + 1, body, sizeof(body),
				 &body_len), -EMSGSIZE);
	assert_int_equal(sp_seal(k.a_priv, k.b_pub, msg, (size_t)-1, body, sizeof(body),
				 &body_len), -EMSGSIZE);
	/* output buffer one byte short, then exact */
	assert_int_equal(sp_seal(k.a_priv, k.b_pub, msg, 100, body, 100 + SP_SEAL_OVERHEAD - 1,
				 &body_len), -EMSGSIZE);
	assert_int_equal(sp_seal(k.a_priv, k.b_pub, msg, 100, body, 100 + SP_SEAL_OVERHEAD,
				 &body_len), 0);
	/* open: message buffer one byte short, then exact */
	assert_int_equal(sp_seal_open(k.b_priv, body, body_len, sender, got, 99, &got_len),
			 -EMSGSIZE);
	assert_int_equal(sp_seal_open(k.b_priv, body, body_len, sender, got, 100, &got_len), 0);
	assert_int_equal(got_len, 100);
	/* an empty message in an empty buffer */
	assert_int_equal(sp_seal(k.a_priv, k.b_pub, NULL, 0, body, SP_SEAL_OVERHEAD, &body_len),
			 0);
	assert_int_equal(body_len, SP_SEAL_OVERHEAD);
	assert_int_equal(sp_seal_open(k.b_priv, body, body_len, sender, NULL, 0, &got_len), 0);
	assert_int_equal(got_len, 0);
	/* a body above SP_BODY_MAX is refused before any crypto */
	memset(body, 0, sizeof(body));
	body[0] = SP_SEAL_VERSION;
	assert_int_equal(sp_seal_open(k.b_priv, body, SP_BODY_MAX + 1, sender, got, sizeof(got),
				      &got_len), -EMSGSIZE);
}

static const uint8_t low_order_pt[SP_KEY_LEN] = {
	0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
	0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
	0xb8, 0x00,
};

/* A seal whose sender static key is a low-order point must not open. */
static void test_low_order_sender(void **state)
{
	const uint8_t *pts[] = { low_order_pt, (const uint8_t[SP_KEY_LEN]){ 0 },
				 (const uint8_t[SP_KEY_LEN]){ 1 } };
	struct keys k;
	uint8_t sender[SP_KEY_LEN];
	size_t got_len;

	(void)state;
	keys_new(&k);
	for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++) {
		struct sp_noise_handshake hs;
		size_t n;

		/* write the seal by hand with a forged s */
		assert_int_equal(sp_noise_handshake_init(&hs, SP_NOISE_X, SP_NOISE_INITIATOR,
							 (const uint8_t *)SP_SEAL_PROLOGUE, 15,
							 k.a_priv, k.b_pub), 0);
		memcpy(hs.s_pub, pts[i], SP_KEY_LEN);
		body[0] = SP_SEAL_VERSION;
		assert_int_equal(sp_noise_handshake_write(&hs, (const uint8_t *)"hi", 2, body + 1,
							  sizeof(body) - 1, &n), 0);
		sp_noise_handshake_wipe(&hs);
		assert_int_equal(sp_seal_open(k.b_priv, body, n + 1, sender, got, sizeof(got),
					      &got_len), -EBADMSG);
	}
	/* and a low-order recipient cannot be sealed to */
	assert_int_equal(sp_seal(k.a_priv, low_order_pt, msg, 1, body, sizeof(body), &got_len),
			 -EINVAL);
}

/* Sealing to yourself works (allowed by the protocol). */
static void test_self(void **state)
{
	struct keys k;
	uint8_t sender[SP_KEY_LEN];
	size_t body_len, got_len;

	(void)state;
	keys_new(&k);
	assert_int_equal(sp_seal(k.a_priv, k.a_pub, (const uint8_t *)"me", 2, body, sizeof(body),
				 &body_len), 0);
	assert_int_equal(sp_seal_open(k.a_priv, body, body_len, sender, got, sizeof(got),
				      &got_len), 0);
	assert_memory_equal(sender, k.a_pub, SP_KEY_LEN);
	assert_int_equal(got_len, 2);
}

/* PROTOCOL.md 7.1: the buckets, exactly. */
static void test_pad_buckets(void **state)
{
	(void)state;
	assert_int_equal(sp_seal_pad_bucket(0, SP_MESSAGE_MAX), 256);
	assert_int_equal(sp_seal_pad_bucket(255, SP_MESSAGE_MAX), 256);
	assert_int_equal(sp_seal_pad_bucket(256, SP_MESSAGE_MAX), 512);
	assert_int_equal(sp_seal_pad_bucket(511, SP_MESSAGE_MAX), 512);
	assert_int_equal(sp_seal_pad_bucket(1000, SP_MESSAGE_MAX), 1024);
	assert_int_equal(sp_seal_pad_bucket(4095, SP_MESSAGE_MAX), 4096);
	assert_int_equal(sp_seal_pad_bucket(16384, SP_MESSAGE_MAX), 32768);
	assert_int_equal(sp_seal_pad_bucket(32767, SP_MESSAGE_MAX), 32768);
	assert_int_equal(sp_seal_pad_bucket(32768, SP_MESSAGE_MAX), SP_MESSAGE_MAX);
	assert_int_equal(sp_seal_pad_bucket(SP_MESSAGE_MAX - 1, SP_MESSAGE_MAX), SP_MESSAGE_MAX);
	assert_int_equal(sp_seal_pad_bucket(SP_MESSAGE_MAX, SP_MESSAGE_MAX), 0);
	/* Above the protocol's maximum: the protocol's. */
	assert_int_equal(sp_seal_pad_bucket(40000, SP_BODY_MAX * 2), SP_MESSAGE_MAX);
	/* A broker with smaller envelopes: its largest payload is the last bucket. */
	assert_int_equal(sp_seal_pad_bucket(100, 903), 256);
	assert_int_equal(sp_seal_pad_bucket(600, 903), 903);
	assert_int_equal(sp_seal_pad_bucket(902, 903), 903);
	assert_int_equal(sp_seal_pad_bucket(903, 903), 0);
}

static void test_padded_roundtrip(void **state)
{
	const size_t sizes[] = { 0, 1, 200, 255, 256, 1000, 32767, 32768, 40000,
				 SP_MESSAGE_MAX - 1 };
	struct keys k;

	(void)state;
	keys_new(&k);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t len = sizes[i], body_len = 0, got_len = 0, b;
		uint8_t sender[SP_KEY_LEN];

		randombytes_buf(msg, len);
		/* A message ending in what looks like padding comes back whole. */
		if (len >= 2) {
			msg[len - 2] = 0x80;
			msg[len - 1] = 0x00;
		}
		b = sp_seal_pad_bucket(len, SP_MESSAGE_MAX);
		assert_int_equal(sp_seal_padded(k.a_priv, k.b_pub, msg, len, SP_MESSAGE_MAX, body,
						sizeof(body), &body_len), 0);
		assert_int_equal(body_len, b + SP_SEAL_OVERHEAD);
		assert_int_equal(body[0], SP_SEAL_VERSION_PADDED);
		assert_int_equal(sp_seal_open(k.b_priv, body, body_len, sender, got, sizeof(got),
					      &got_len), 0);
		assert_int_equal(got_len, len);
		assert_memory_equal(got, msg, len);
		assert_memory_equal(sender, k.a_pub, SP_KEY_LEN);
		/* The version byte is bound by the prologue: 1 does not open it. */
		body[0] = SP_SEAL_VERSION;
		assert_int_equal(sp_seal_open(k.b_priv, body, body_len, sender, got, sizeof(got),
					      &got_len), -EBADMSG);
	}
	/* Lengths of one bucket look alike. */
	{
		size_t l1 = 0, l2 = 0;

		assert_int_equal(sp_seal_padded(k.a_priv, k.b_pub, msg, 3, SP_MESSAGE_MAX, body,
						sizeof(body), &l1), 0);
		assert_int_equal(sp_seal_padded(k.a_priv, k.b_pub, msg, 250, SP_MESSAGE_MAX, body,
						sizeof(body), &l2), 0);
		assert_int_equal(l1, l2);
	}
	/* No room for the 0x80, or cap too small for the bucket. */
	{
		size_t l = 0;

		assert_int_equal(sp_seal_padded(k.a_priv, k.b_pub, msg, SP_MESSAGE_MAX,
						SP_MESSAGE_MAX, body, sizeof(body), &l), -EMSGSIZE);
		assert_int_equal(sp_seal_padded(k.a_priv, k.b_pub, msg, 10, SP_MESSAGE_MAX, body,
						10 + SP_SEAL_OVERHEAD, &l), -EMSGSIZE);
	}
}

/* A padded payload without its 0x80 is refused like a bad seal. */
static void test_padded_bad_padding(void **state)
{
	struct keys k;
	uint8_t sender[SP_KEY_LEN];
	size_t body_len = 0, got_len = 0;
	struct sp_noise_handshake hs;
	static const uint8_t pro[] = SP_SEAL_PROLOGUE_PADDED;
	size_t n = 0;

	(void)state;
	keys_new(&k);
	/* A version-2 seal whose payload is all zeros: authentic, badly padded. */
	memset(msg, 0, 256);
	assert_int_equal(sp_noise_handshake_init(&hs, SP_NOISE_X, SP_NOISE_INITIATOR, pro,
						 sizeof(pro) - 1, k.a_priv, k.b_pub), 0);
	body[0] = SP_SEAL_VERSION_PADDED;
	assert_int_equal(sp_noise_handshake_write(&hs, msg, 256, body + 1, sizeof(body) - 1, &n),
			 0);
	sp_noise_handshake_wipe(&hs);
	body_len = n + 1;
	assert_int_equal(sp_seal_open(k.b_priv, body, body_len, sender, got, sizeof(got),
				      &got_len), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_wire_format),
		cmocka_unit_test(test_fresh_each_time),
		cmocka_unit_test(test_wrong_recipient),
		cmocka_unit_test(test_any_flip_fails),
		cmocka_unit_test(test_wrong_version),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_low_order_sender),
		cmocka_unit_test(test_self),
		cmocka_unit_test(test_pad_buckets),
		cmocka_unit_test(test_padded_roundtrip),
		cmocka_unit_test(test_padded_bad_padding),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
