/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ratchet.c: the Double Ratchet (lib/crypto/sp_ratchet.h) against
 * known answers computed by tests/vectors/ratchet_kat.py from the
 * specification with Python's `cryptography`, not from this C code: each
 * KDF step alone (RK0, KDF_RK, KDF_CK, the message key's expansion) and a
 * fixed transcript both ways with skipped, replayed and empty messages.
 * Then the bounds: out of order within MAX_SKIP, beyond it refused with
 * -ERANGE, a replay and a tampered header refused without a change of
 * state, the skipped-key cap, used keys wiped, the store encoding.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "sp_ratchet.h"

enum { MAXP = SP_BODY_MAX - SP_RATCHET_OVERHEAD };

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
	size_t n = 0;

	if (strcmp(h, "-") == 0)
		return 0;
	assert_int_equal(sodium_hex2bin(out, cap, h, strlen(h), NULL, &n, NULL), 0);
	return n;
}

static void unhex32(const char *h, uint8_t out[32])
{
	assert_int_equal(unhex(h, out, 32), 32);
}

static FILE *vectors(void)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/vectors/ratchet.txt",
		 getenv("SP_SOURCE_DIR") ? getenv("SP_SOURCE_DIR") : ".");
	f = fopen(path, "r");
	assert_non_null(f);
	return f;
}

static struct sp_ratchet *new_state(void)
{
	struct sp_ratchet *st = sodium_malloc(sizeof(*st));

	assert_non_null(st);
	memset(st, 0, sizeof(*st));
	return st;
}

static void test_kdf_known_answers(void **state)
{
	static char line[1 << 18];
	char w[5][200];
	unsigned seen[4] = { 0 };
	FILE *f = vectors();

	(void)state;
	while (fgets(line, sizeof(line), f)) {
		uint8_t a[32], b[32], c[32], d[32], got1[32], got2[64];
		int k = sscanf(line, "%199s %199s %199s %199s %199s", w[0], w[1], w[2], w[3], w[4]);

		if (strcmp(w[0], "root0") == 0) {
			assert_int_equal(k, 3);
			unhex32(w[1], a);
			unhex32(w[2], b);
			sp_ratchet_root0(got1, a);
			assert_memory_equal(got1, b, 32);
			seen[0]++;
		} else if (strcmp(w[0], "kdf_rk") == 0) {
			assert_int_equal(k, 5);
			unhex32(w[1], a);
			unhex32(w[2], b);
			unhex32(w[3], c);
			unhex32(w[4], d);
			sp_ratchet_kdf_rk(got1, got2, a, b);
			assert_memory_equal(got1, c, 32);
			assert_memory_equal(got2, d, 32);
			sp_ratchet_kdf_rk(a, got2, a, b); /* rk_out may alias rk */
			assert_memory_equal(a, c, 32);
			seen[1]++;
		} else if (strcmp(w[0], "kdf_ck") == 0) {
			assert_int_equal(k, 4);
			unhex32(w[1], a);
			unhex32(w[2], b);
			unhex32(w[3], c);
			sp_ratchet_kdf_ck(got1, got2, a);
			assert_memory_equal(got1, b, 32); /* ck' = HMAC(ck, 0x02) */
			assert_memory_equal(got2, c, 32); /* mk  = HMAC(ck, 0x01) */
			seen[2]++;
		} else if (strcmp(w[0], "tags") == 0) {
			uint8_t ad[64] = { 0 }, ek[32] = { 9 }, pk[32];
			struct sp_ratchet *st = new_state();

			assert_int_equal(k, 4);
			unhex32(w[1], a);
			assert_int_equal(unhex(w[2], b, 16), 16);
			assert_int_equal(unhex(w[3], c, 16), 16);
			crypto_scalarmult_base(pk, ek);
			assert_int_equal(sp_ratchet_init_alice(st, a, ad, ek, pk), 0);
			assert_memory_equal(st->tag_send, b, 16);
			assert_memory_equal(st->tag_recv, c, 16);
			assert_int_equal(sp_ratchet_init_bob(st, a, ad, ek, pk, NULL), 0);
			assert_memory_equal(st->tag_send, c, 16);
			assert_memory_equal(st->tag_recv, b, 16);
			sodium_free(st);
			seen[1]++;
		} else if (strcmp(w[0], "msgkey") == 0) {
			uint8_t nonce[12];

			assert_int_equal(k, 4);
			unhex32(w[1], a);
			unhex32(w[2], b);
			assert_int_equal(unhex(w[3], nonce, sizeof(nonce)), 12);
			sp_ratchet_hkdf(got2, 44, NULL, 0, a, 32, SP_RATCHET_INFO_MSG);
			assert_memory_equal(got2, b, 32);
			assert_memory_equal(got2 + 32, nonce, 12);
			seen[3]++;
		}
	}
	fclose(f);
	for (int i = 0; i < 4; i++)
		assert_true(seen[i] >= 2);
}

/* The transcript: both sides from the session line, every body and every
 * result as Python computed them. */
static void test_transcript(void **state)
{
	static char line[1 << 18], w[5][140000];
	static uint8_t bodies[16][SP_BODY_MAX], want[SP_BODY_MAX], got[SP_BODY_MAX];
	size_t blen[16], nb = 0, n;
	unsigned recvs = 0, refused = 0;
	struct sp_ratchet *a = new_state(), *b = new_state();
	FILE *f = vectors();

	(void)state;
	while (fgets(line, sizeof(line), f)) {
		int k = sscanf(line, "%139999s %139999s %139999s %139999s %139999s", w[0], w[1],
			       w[2], w[3], w[4]);

		if (strcmp(w[0], "session") == 0) {
			uint8_t sk[32], ad[64], eka[32], spkb[32], fresh[32], eka_pub[32],
				spkb_pub[32];

			/* the five fields after "session" */
			assert_int_equal(sscanf(line, "%*s %139999s %139999s %139999s %139999s %139999s",
						w[0], w[1], w[2], w[3], w[4]), 5);
			unhex32(w[0], sk);
			assert_int_equal(unhex(w[1], ad, sizeof(ad)), 64);
			unhex32(w[2], eka);
			unhex32(w[3], spkb);
			unhex32(w[4], fresh);
			crypto_scalarmult_base(eka_pub, eka);
			crypto_scalarmult_base(spkb_pub, spkb);
			assert_int_equal(sp_ratchet_init_alice(a, sk, ad, eka, spkb_pub), 0);
			assert_int_equal(sp_ratchet_init_bob(b, sk, ad, spkb, eka_pub, fresh), 0);
		} else if (strcmp(w[0], "send") == 0) {
			struct sp_ratchet *s = w[1][0] == 'A' ? a : b;
			size_t mlen = unhex(w[3], want, sizeof(want)), out = 0;

			assert_int_equal(k, 5);
			blen[nb] = unhex(w[4], bodies[nb], SP_BODY_MAX);
			assert_int_equal(sp_ratchet_encrypt(s, want, mlen, MAXP, w[2][0] == '1', got,
							    sizeof(got), &out), 0);
			assert_int_equal(out, blen[nb]);
			assert_memory_equal(got, bodies[nb], out);
			nb++;
		} else if (strcmp(w[0], "recv") == 0) {
			struct sp_ratchet *s = w[1][0] == 'A' ? a : b;
			size_t i = strtoul(w[2], NULL, 10), mlen = 0;
			uint8_t fresh[32];
			int r;

			assert_int_equal(k, 5);
			assert_true(i < nb);
			unhex32(w[3], fresh);
			r = sp_ratchet_decrypt(s, bodies[i], blen[i], fresh, got, sizeof(got), &mlen);
			recvs++;
			if (strcmp(w[4], "refused") == 0) {
				assert_int_equal(r, -EBADMSG);
				refused++;
				continue;
			}
			assert_int_equal(r, 0);
			n = unhex(w[4], want, sizeof(want));
			assert_int_equal(mlen, n);
			assert_memory_equal(got, want, n);
		}
	}
	fclose(f);
	assert_true(nb >= 8);
	assert_true(recvs >= 10);
	assert_int_equal(refused, 3);
	sodium_free(a);
	sodium_free(b);
}

/* A fresh pair from random keys, as the client makes one. */
static void pair(struct sp_ratchet *a, struct sp_ratchet *b)
{
	uint8_t sk[32], ad[64], eka[32], spkb[32], eka_pub[32], spkb_pub[32];

	randombytes_buf(sk, sizeof(sk));
	randombytes_buf(ad, sizeof(ad));
	randombytes_buf(eka, sizeof(eka));
	randombytes_buf(spkb, sizeof(spkb));
	crypto_scalarmult_base(eka_pub, eka);
	crypto_scalarmult_base(spkb_pub, spkb);
	assert_int_equal(sp_ratchet_init_alice(a, sk, ad, eka, spkb_pub), 0);
	assert_int_equal(sp_ratchet_init_bob(b, sk, ad, spkb, eka_pub, NULL), 0);
}

static size_t seal(struct sp_ratchet *s, const char *msg, uint8_t *out)
{
	size_t n = 0;

	assert_int_equal(sp_ratchet_encrypt(s, (const uint8_t *)msg, strlen(msg), MAXP, true, out,
					    SP_BODY_MAX, &n), 0);
	return n;
}

static int open_(struct sp_ratchet *s, const uint8_t *body, size_t len, const char *want)
{
	uint8_t got[SP_BODY_MAX];
	size_t n = 0;
	int r = sp_ratchet_decrypt(s, body, len, NULL, got, sizeof(got), &n);

	if (r == 0 && want) {
		assert_int_equal(n, strlen(want));
		assert_memory_equal(got, want, n);
	}
	return r;
}

/* The state's bytes, to show that a refused body changed nothing. */
static uint8_t *snapshot(const struct sp_ratchet *s, size_t *len)
{
	uint8_t *p = malloc(sp_ratchet_encoded_len(s));

	assert_non_null(p);
	*len = sp_ratchet_encoded_len(s);
	sp_ratchet_encode(s, p);
	return p;
}

static void assert_unchanged(const struct sp_ratchet *s, const uint8_t *snap, size_t len)
{
	size_t n;
	uint8_t *now = snapshot(s, &n);

	assert_int_equal(n, len);
	assert_memory_equal(now, snap, len);
	free(now);
}

static void test_out_of_order_and_max_skip(void **state)
{
	static uint8_t body[SP_RATCHET_MAX_SKIP + 2][400];
	size_t len[SP_RATCHET_MAX_SKIP + 2], sn;
	struct sp_ratchet *a = new_state(), *b = new_state();
	char msg[32];
	uint8_t *snap;

	(void)state;
	pair(a, b);
	for (int i = 0; i < SP_RATCHET_MAX_SKIP + 2; i++) {
		snprintf(msg, sizeof(msg), "m%d", i);
		len[i] = seal(a, msg, body[i]);
	}
	/* message MAX_SKIP + 1 skips MAX_SKIP + 1 keys: refused, nothing kept */
	snap = snapshot(b, &sn);
	assert_int_equal(open_(b, body[SP_RATCHET_MAX_SKIP + 1], len[SP_RATCHET_MAX_SKIP + 1],
			       NULL), -ERANGE);
	assert_unchanged(b, snap, sn);
	free(snap);
	/* message MAX_SKIP skips exactly MAX_SKIP: taken; the skipped open later,
	 * in any order */
	assert_int_equal(open_(b, body[SP_RATCHET_MAX_SKIP], len[SP_RATCHET_MAX_SKIP], "m256"), 0);
	assert_int_equal(b->nskipped, SP_RATCHET_MAX_SKIP);
	assert_int_equal(open_(b, body[SP_RATCHET_MAX_SKIP + 1], len[SP_RATCHET_MAX_SKIP + 1],
			       "m257"), 0);
	assert_int_equal(open_(b, body[7], len[7], "m7"), 0);
	assert_int_equal(open_(b, body[0], len[0], "m0"), 0);
	assert_int_equal(b->nskipped, SP_RATCHET_MAX_SKIP - 2);
	sodium_free(a);
	sodium_free(b);
}

static void test_replay_refused(void **state)
{
	struct sp_ratchet *a = new_state(), *b = new_state();
	uint8_t b0[400], b1[400], *snap;
	size_t l0, l1, sn;

	(void)state;
	pair(a, b);
	l0 = seal(a, "zero", b0);
	l1 = seal(a, "one", b1);
	assert_int_equal(open_(b, b0, l0, "zero"), 0);
	snap = snapshot(b, &sn);
	assert_int_equal(open_(b, b0, l0, NULL), -EBADMSG); /* in the current chain */
	assert_unchanged(b, snap, sn);
	free(snap);
	assert_int_equal(open_(b, b1, l1, "one"), 0);
	/* a skipped key opens once */
	l0 = seal(a, "two", b0);
	l1 = seal(a, "three", b1);
	assert_int_equal(open_(b, b1, l1, "three"), 0);
	assert_int_equal(open_(b, b0, l0, "two"), 0);
	assert_int_equal(open_(b, b0, l0, NULL), -EBADMSG);
	assert_int_equal(b->nskipped, 0);
	sodium_free(a);
	sodium_free(b);
}

static void test_tampered_refused(void **state)
{
	struct sp_ratchet *a = new_state(), *b = new_state();
	uint8_t body[400], bad[400], *snap;
	size_t len, sn;

	(void)state;
	pair(a, b);
	len = seal(a, "hello", body);
	snap = snapshot(b, &sn);
	/* every header byte (version, dh, pn, n), then a ciphertext byte and the tag */
	for (size_t i = 0; i < SP_RATCHET_HDR_LEN + 2; i++) {
		size_t at = i < SP_RATCHET_HDR_LEN ? i : i == SP_RATCHET_HDR_LEN ? 50 : len - 1;
		int r;

		memcpy(bad, body, len);
		bad[at] ^= 0x01;
		r = open_(b, bad, len, NULL);
		assert_true(r == -EBADMSG || r == -ERANGE || r == -EINVAL);
		assert_unchanged(b, snap, sn);
	}
	assert_int_equal(open_(b, body, len - 1, NULL), -EBADMSG); /* truncated */
	assert_int_equal(open_(b, body, SP_RATCHET_OVERHEAD, NULL), -EBADMSG);
	assert_unchanged(b, snap, sn);
	free(snap);
	assert_int_equal(open_(b, body, len, "hello"), 0);
	sodium_free(a);
	sodium_free(b);
}

/* A used skipped key is wiped from the array, and the cap drops the oldest. */
static void test_keys_wiped_and_capped(void **state)
{
	static const uint8_t zero[sizeof(struct sp_ratchet_skipped)];
	struct sp_ratchet *a = new_state(), *b = new_state();
	uint8_t first[400], body[400];
	size_t fl, len = 0;

	(void)state;
	pair(a, b);
	fl = seal(a, "first", first);
	/* three rounds of MAX_SKIP skipped keys: 768 > SP_RATCHET_SKIPPED_MAX */
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < SP_RATCHET_MAX_SKIP; i++)
			len = seal(a, "x", body);
		assert_int_equal(open_(b, body, len, "x"), 0);
		if (round == 0) {
			uint32_t n = b->nskipped;

			assert_int_equal(open_(b, first, fl, "first"), 0);
			assert_int_equal(b->nskipped, n - 1);
			/* the slot it left is zero: no copy of the key remains */
			assert_memory_equal(&b->skipped[b->nskipped], zero, sizeof(zero));
		}
	}
	assert_int_equal(b->nskipped, SP_RATCHET_SKIPPED_MAX);
	for (uint32_t i = b->nskipped; i < SP_RATCHET_SKIPPED_MAX; i++)
		assert_memory_equal(&b->skipped[i], zero, sizeof(zero));
	sodium_free(a);
	sodium_free(b);
}

/* The store's encoding round-trips, and a truncated or altered one is refused. */
static void test_encoding(void **state)
{
	struct sp_ratchet *a = new_state(), *b = new_state(), *c = new_state();
	uint8_t body[400], skipped[400], *enc;
	size_t len, sl, elen, used = 0;

	(void)state;
	pair(a, b);
	sl = seal(a, "skipped", skipped);
	len = seal(a, "after", body);
	assert_int_equal(open_(b, body, len, "after"), 0);
	enc = snapshot(b, &elen);
	assert_int_equal(sp_ratchet_decode(c, enc, elen, &used), 0);
	assert_int_equal(used, elen);
	assert_int_equal(open_(c, skipped, sl, "skipped"), 0);
	assert_int_equal(sp_ratchet_decode(c, enc, elen - 1, &used), -EBADMSG);
	enc[0] ^= 0xff;
	assert_int_equal(sp_ratchet_decode(c, enc, elen, &used), -EBADMSG);
	sodium_memzero(enc, elen);
	free(enc);
	/* a reply works both ways from the decoded state */
	len = seal(c, "reply", body);
	assert_int_equal(open_(a, body, len, "reply"), 0);
	sodium_free(a);
	sodium_free(b);
	sodium_free(c);
}

/*
 * Post-compromise security: an attacker who copies Bob's whole state reads
 * what follows in the chains it knows, and nothing once a round trip
 * brought a DH ratchet key the copy does not hold.
 */
static void test_heals_after_round_trip(void **state)
{
	struct sp_ratchet *a = new_state(), *b = new_state(), *spy = new_state();
	uint8_t body[400];
	size_t len;

	(void)state;
	pair(a, b);
	len = seal(b, "b0", body);
	assert_int_equal(open_(a, body, len, "b0"), 0);
	len = seal(a, "a0", body);
	assert_int_equal(open_(b, body, len, "a0"), 0);
	memcpy(spy, b, sizeof(*spy)); /* the compromise */
	/* Bob's next reply: in the chain the copy holds */
	len = seal(b, "b1", body);
	assert_int_equal(open_(a, body, len, "b1"), 0);
	/* Alice answers on a new chain from DH(her new key, Bob's known key):
	 * the copy holds Bob's secret, so it still reads this one */
	len = seal(a, "a1", body);
	assert_int_equal(open_(spy, body, len, "a1"), 0);
	assert_int_equal(open_(b, body, len, "a1"), 0);
	/* Bob's step made him a fresh key the copy never saw (the copy's own
	 * step drew another): once Alice has it, what she sends is closed */
	len = seal(b, "b2", body);
	assert_int_equal(open_(a, body, len, "b2"), 0);
	len = seal(a, "a2", body);
	assert_int_equal(open_(spy, body, len, NULL), -EBADMSG);
	assert_int_equal(open_(b, body, len, "a2"), 0);
	sodium_free(a);
	sodium_free(b);
	sodium_free(spy);
}

/* A small-order key (all-zero DH) is refused at the start. */
static void test_small_order_refused(void **state)
{
	struct sp_ratchet *a = new_state();
	uint8_t sk[32] = { 1 }, ad[64] = { 0 }, ek[32] = { 2 }, zero_pub[32] = { 0 };

	(void)state;
	assert_int_equal(sp_ratchet_init_alice(a, sk, ad, ek, zero_pub), -EINVAL);
	assert_int_equal(sp_ratchet_init_bob(a, sk, ad, ek, zero_pub, NULL), -EINVAL);
	sodium_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kdf_known_answers),
		cmocka_unit_test(test_transcript),
		cmocka_unit_test(test_out_of_order_and_max_skip),
		cmocka_unit_test(test_replay_refused),
		cmocka_unit_test(test_tampered_refused),
		cmocka_unit_test(test_keys_wiped_and_capped),
		cmocka_unit_test(test_encoding),
		cmocka_unit_test(test_heals_after_round_trip),
		cmocka_unit_test(test_small_order_refused),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
