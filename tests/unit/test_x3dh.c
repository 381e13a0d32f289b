/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_x3dh.c: X3DH (lib/crypto/sp_x3dh.h) against known answers computed
 * by tests/vectors/x3dh_kat.py from the specification with Python's
 * `cryptography` (its X25519 and HKDF), not from this C code: every DH
 * step, the KDF step alone, and SK from both sides, with and without a
 * one-time prekey; a small-order key is refused.
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

#include "sp_fcseal.h"
#include "sp_x3dh.h"

static int unhex(const char *h, uint8_t out[32])
{
	size_t n = 0;

	if (strcmp(h, "-") == 0)
		return 0;
	assert_int_equal(sodium_hex2bin(out, 32, h, strlen(h), NULL, &n, NULL), 0);
	assert_int_equal(n, 32);
	return 1;
}

static void test_known_answers(void **state)
{
	char path[4096], line[16384], h[10][80];
	unsigned seen = 0, with_opk = 0;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/tests/vectors/x3dh.txt",
		 getenv("SP_SOURCE_DIR") ? getenv("SP_SOURCE_DIR") : ".");
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "envelope ", 9) == 0)
			continue; /* test_envelope_transcript's */
		uint8_t ika[32], eka[32], ikb[32], spkb[32], opkb[32], dh[4][32], sk[32];
		uint8_t pika[32], peka[32], pikb[32], pspkb[32], popkb[32], got[32], mine[32], km[128];
		int has_opk;

		assert_int_equal(sscanf(line, "%79s %79s %79s %79s %79s %79s %79s %79s %79s %79s", h[0],
					h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]), 10);
		unhex(h[0], ika);
		unhex(h[1], eka);
		unhex(h[2], ikb);
		unhex(h[3], spkb);
		has_opk = unhex(h[4], opkb);
		for (int i = 0; i < 4; i++)
			assert_int_equal(unhex(h[5 + i], dh[i]), i < 3 || has_opk);
		unhex(h[9], sk);
		crypto_scalarmult_base(pika, ika);
		crypto_scalarmult_base(peka, eka);
		crypto_scalarmult_base(pikb, ikb);
		crypto_scalarmult_base(pspkb, spkb);
		if (has_opk)
			crypto_scalarmult_base(popkb, opkb);

		/* each DH step, in the specification's order */
		assert_int_equal(crypto_scalarmult(mine, ika, pspkb), 0);
		assert_memory_equal(mine, dh[0], 32);
		assert_int_equal(crypto_scalarmult(mine, eka, pikb), 0);
		assert_memory_equal(mine, dh[1], 32);
		assert_int_equal(crypto_scalarmult(mine, eka, pspkb), 0);
		assert_memory_equal(mine, dh[2], 32);
		if (has_opk) {
			assert_int_equal(crypto_scalarmult(mine, eka, popkb), 0);
			assert_memory_equal(mine, dh[3], 32);
		}
		/* the KDF step alone */
		memcpy(km, dh, (has_opk ? 4 : 3) * 32);
		sp_x3dh_kdf(got, km, (has_opk ? 4 : 3) * 32);
		assert_memory_equal(got, sk, 32);
		/* SK from Alice's side and from Bob's */
		assert_int_equal(sp_x3dh_initiate(got, ika, eka, pikb, pspkb, has_opk ? popkb : NULL), 0);
		assert_memory_equal(got, sk, 32);
		assert_int_equal(sp_x3dh_respond(got, ikb, spkb, has_opk ? opkb : NULL, pika, peka), 0);
		assert_memory_equal(got, sk, 32);
		/* without the one-time prekey it is another SK */
		if (has_opk) {
			assert_int_equal(sp_x3dh_initiate(got, ika, eka, pikb, pspkb, NULL), 0);
			assert_memory_not_equal(got, sk, 32);
			with_opk++;
		}
		seen++;
	}
	fclose(f);
	assert_int_equal(seen, 4);
	assert_int_equal(with_opk, 2);
}

/* The first-contact envelope (PROTOCOL.md 7.2) as a fixed transcript: our
 * seal with the same secrets is the Python body byte for byte, it opens to
 * the message and the sender, and a changed byte does not open. */
static void test_envelope_transcript(void **state)
{
	static char line[16384], hm[4096], hb[8192];
	static uint8_t msg[2048], body[4096], mine[4096], out[4096];
	char h[5][80];
	unsigned seen = 0, spk_id, opk_id;
	FILE *f;

	(void)state;
	{
		char path[4096];

		snprintf(path, sizeof(path), "%s/tests/vectors/x3dh.txt",
			 getenv("SP_SOURCE_DIR") ? getenv("SP_SOURCE_DIR") : ".");
		f = fopen(path, "r");
	}
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		uint8_t ika[32], eka[32], ikb[32], spkb[32], opkb[32], sender[32], ika_pub[32];
		struct sp_fcseal_to to;
		size_t mlen = 0, blen = 0, n = 0, olen = 0;
		int has_opk;

		if (strncmp(line, "envelope ", 9) != 0)
			continue;
		assert_int_equal(sscanf(line + 9, "%79s %79s %79s %79s %79s %u %u %4095s %8191s", h[0], h[1],
					h[2], h[3], h[4], &spk_id, &opk_id, hm, hb), 9);
		unhex(h[0], ika);
		unhex(h[1], eka);
		unhex(h[2], ikb);
		unhex(h[3], spkb);
		has_opk = unhex(h[4], opkb);
		if (strcmp(hm, "-") != 0)
			assert_int_equal(sodium_hex2bin(msg, sizeof(msg), hm, strlen(hm), NULL, &mlen, NULL), 0);
		assert_int_equal(sodium_hex2bin(body, sizeof(body), hb, strlen(hb), NULL, &blen, NULL), 0);
		memset(&to, 0, sizeof(to));
		crypto_scalarmult_base(to.ik, ikb);
		crypto_scalarmult_base(to.spk, spkb);
		to.spk_id = spk_id;
		to.has_opk = has_opk;
		if (has_opk)
			crypto_scalarmult_base(to.opk, opkb);
		to.opk_id = opk_id;
		assert_int_equal(sp_fcseal_seal(ika, eka, &to, msg, mlen, SP_BODY_MAX - SP_FCSEAL_OVERHEAD,
						mine, sizeof(mine), &n), 0);
		assert_int_equal(n, blen);
		assert_memory_equal(mine, body, blen);
		assert_int_equal(sp_fcseal_open(ikb, spkb, has_opk ? opkb : NULL, body, blen, sender, out,
						sizeof(out), &olen), 0);
		crypto_scalarmult_base(ika_pub, ika);
		assert_memory_equal(sender, ika_pub, 32);
		assert_int_equal(olen, mlen);
		assert_true(mlen == 0 || memcmp(out, msg, mlen) == 0);
		/* without the one-time prekey's secret, or with a byte changed: no */
		if (has_opk)
			assert_int_equal(sp_fcseal_open(ikb, spkb, NULL, body, blen, sender, out, sizeof(out),
							&olen), -EBADMSG);
		for (size_t at = 0; at < blen; at += 29) {
			body[at] ^= 0x20;
			assert_int_equal(sp_fcseal_open(ikb, spkb, has_opk ? opkb : NULL, body, blen, sender,
							out, sizeof(out), &olen), -EBADMSG);
			body[at] ^= 0x20;
		}
		/* another signed prekey secret: no */
		spkb[5] ^= 1;
		assert_int_equal(sp_fcseal_open(ikb, spkb, has_opk ? opkb : NULL, body, blen, sender, out,
						sizeof(out), &olen), -EBADMSG);
		seen++;
	}
	fclose(f);
	assert_int_equal(seen, 3);
}

static void test_small_order_refused(void **state)
{
	uint8_t a[32], b[32], pb[32], zero[32] = { 0 }, sk[32];

	(void)state;
	randombytes_buf(a, sizeof(a));
	randombytes_buf(b, sizeof(b));
	crypto_scalarmult_base(pb, b);
	/* the all-zero point gives an all-zero DH output: abort */
	assert_int_equal(sp_x3dh_initiate(sk, a, b, zero, pb, NULL), -EINVAL);
	assert_int_equal(sp_x3dh_initiate(sk, a, b, pb, pb, zero), -EINVAL);
	assert_int_equal(sp_x3dh_respond(sk, a, b, NULL, pb, zero), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answers),
		cmocka_unit_test(test_envelope_transcript),
		cmocka_unit_test(test_small_order_refused),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
