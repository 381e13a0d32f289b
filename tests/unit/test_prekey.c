/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_prekey.c: XEdDSA and the prekey codec (lib/crypto/sp_prekey.h).
 *
 * XEdDSA against known answers computed by tests/vectors/xeddsa_kat.py, an
 * implementation written from Signal's specification in Python (not from
 * this C code), cross-checked there by Python's `cryptography`; then the
 * properties the broker and the library rely on: a signature binds the
 * record, the device and the Edwards key; the codec has one spelling.
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

#include "sp_prekey.h"

static size_t unhex(const char *h, uint8_t *out, size_t cap)
{
	size_t n = 0;

	if (strcmp(h, "-") == 0)
		return 0;
	assert_int_equal(sodium_hex2bin(out, cap, h, strlen(h), NULL, &n, NULL), 0);
	return n;
}

static void test_xeddsa_known_answers(void **state)
{
	char path[4096], line[2048];
	unsigned seen = 0;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/tests/vectors/xeddsa.txt",
		 getenv("SP_SOURCE_DIR") ? getenv("SP_SOURCE_DIR") : ".");
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char hs[80], hm[512], hz[160], hu[80], ha[80], hsig[160];
		uint8_t sk[32], msg[256], z[64], u[32], ed[32], sig[64], mine[64], myed[32], myu[32];
		size_t mlen;

		assert_int_equal(sscanf(line, "%79s %511s %159s %79s %79s %159s", hs, hm, hz, hu, ha, hsig), 6);
		assert_int_equal(unhex(hs, sk, 32), 32);
		mlen = unhex(hm, msg, sizeof(msg));
		assert_int_equal(unhex(hz, z, 64), 64);
		assert_int_equal(unhex(hu, u, 32), 32);
		assert_int_equal(unhex(ha, ed, 32), 32);
		assert_int_equal(unhex(hsig, sig, 64), 64);

		crypto_scalarmult_base(myu, sk);
		assert_memory_equal(myu, u, 32);
		assert_int_equal(sp_xeddsa_public(myed, sk), 0);
		assert_memory_equal(myed, ed, 32);
		assert_int_equal(sp_xeddsa_sign(mine, sk, msg, mlen, z), 0);
		assert_memory_equal(mine, sig, 64);
		assert_int_equal(sp_xeddsa_verify(sig, ed, u, msg, mlen), 0);
		seen++;
	}
	fclose(f);
	assert_int_equal(seen, 4);
}

static void test_xeddsa_binding(void **state)
{
	uint8_t sk[32], u[32], ed[32], sig[64], z[64], msg[40], other[32], oed[32];

	(void)state;
	for (int i = 0; i < 50; i++) {
		randombytes_buf(sk, sizeof(sk));
		randombytes_buf(z, sizeof(z));
		randombytes_buf(msg, sizeof(msg));
		crypto_scalarmult_base(u, sk);
		assert_int_equal(sp_xeddsa_public(ed, sk), 0);
		assert_int_equal(ed[31] & 0x80, 0);
		assert_int_equal(sp_xeddsa_sign(sig, sk, msg, sizeof(msg), z), 0);
		assert_int_equal(sp_xeddsa_verify(sig, ed, u, msg, sizeof(msg)), 0);
		/* another message, another signature, another device */
		msg[i % sizeof(msg)] ^= 1;
		assert_int_equal(sp_xeddsa_verify(sig, ed, u, msg, sizeof(msg)), -EPERM);
		msg[i % sizeof(msg)] ^= 1;
		sig[i % 64] ^= 0x10;
		assert_int_equal(sp_xeddsa_verify(sig, ed, u, msg, sizeof(msg)), -EPERM);
		sig[i % 64] ^= 0x10;
		randombytes_buf(other, sizeof(other));
		crypto_scalarmult_base(other, other);
		assert_int_equal(sp_xeddsa_verify(sig, ed, other, msg, sizeof(msg)), -EPERM);
		/* the Edwards key with the sign bit set (the negated point, which
		 * maps to the same u) is not A */
		memcpy(oed, ed, 32);
		oed[31] |= 0x80;
		assert_int_equal(sp_xeddsa_verify(sig, oed, u, msg, sizeof(msg)), -EPERM);
	}
}

static uint8_t dev_sk[32], dev[32], edkey[32];

static void make_key(struct sp_prekey *k, uint8_t kind, uint32_t id)
{
	uint8_t sk[32];

	memset(k, 0, sizeof(*k));
	k->kind = kind;
	k->id = id;
	k->created_s = 1700000000 + id;
	randombytes_buf(sk, sizeof(sk));
	crypto_scalarmult_base(k->pub, sk);
	assert_int_equal(sp_prekey_sign(k, dev, dev_sk), 0);
}

static int setup(void **state)
{
	(void)state;
	randombytes_buf(dev_sk, sizeof(dev_sk));
	crypto_scalarmult_base(dev, dev_sk);
	return sp_xeddsa_public(edkey, dev_sk);
}

static void test_upload_round_trip(void **state)
{
	static struct sp_prekey otk[SP_PREKEY_UPLOAD_MAX + 1];
	static uint8_t buf[SP_PREKEY_UPLOAD_MAXLEN + SP_PREKEY_REC_LEN];
	struct sp_prekey spk, got;
	struct sp_prekey_upload up;
	size_t len;

	(void)state;
	make_key(&spk, SP_PREKEY_KIND_SIGNED, 7);
	for (uint32_t i = 0; i < 10; i++)
		make_key(&otk[i], SP_PREKEY_KIND_ONETIME, 100 + i);
	assert_int_equal(sp_prekey_upload_encode(edkey, &spk, otk, 10, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, SP_PREKEY_UPLOAD_MIN + 11 * SP_PREKEY_REC_LEN);
	assert_int_equal(sp_prekey_upload_decode(buf, len, &up), 0);
	assert_true(up.has_signed);
	assert_int_equal(up.count, 10);
	assert_int_equal(up.spk.id, 7);
	assert_int_equal(sp_prekey_rec_get(up.onetime + 3 * SP_PREKEY_REC_LEN, &got), 0);
	assert_memory_equal(got.pub, otk[3].pub, 32);
	assert_int_equal(sp_prekey_upload_verify(&up, dev), 0);

	/* not this device's: another device key, or any byte changed */
	uint8_t other[32];

	randombytes_buf(other, sizeof(other));
	crypto_scalarmult_base(other, other);
	assert_int_equal(sp_prekey_upload_verify(&up, other), -EPERM);
	for (size_t at = 1; at < len; at += 37) {
		buf[at] ^= 0x01;
		if (sp_prekey_upload_decode(buf, len, &up) == 0)
			assert_int_equal(sp_prekey_upload_verify(&up, dev), -EPERM);
		buf[at] ^= 0x01;
	}

	/* one spelling: trailing byte, truncation, bad flag, ids not ascending */
	assert_int_equal(sp_prekey_upload_decode(buf, len + 1, &up), -EBADMSG);
	assert_int_equal(sp_prekey_upload_decode(buf, len - 1, &up), -EBADMSG);
	buf[1 + 32] = 2;
	assert_int_equal(sp_prekey_upload_decode(buf, len, &up), -EBADMSG);
	buf[1 + 32] = 1;
	otk[5].id = otk[4].id;
	assert_int_equal(sp_prekey_upload_encode(edkey, &spk, otk, 10, buf, sizeof(buf), &len), 0);
	assert_int_equal(sp_prekey_upload_decode(buf, len, &up), -EBADMSG);
	/* a kind in the wrong place */
	assert_int_equal(sp_prekey_upload_encode(edkey, &otk[0], otk + 1, 1, buf, sizeof(buf), &len), 0);
	assert_int_equal(sp_prekey_upload_decode(buf, len, &up), -EBADMSG);
	/* empty, and too many */
	assert_int_equal(sp_prekey_upload_encode(edkey, NULL, otk, 0, buf, sizeof(buf), &len), -EINVAL);
	assert_int_equal(sp_prekey_upload_encode(edkey, NULL, otk, SP_PREKEY_UPLOAD_MAX + 1, buf,
						 sizeof(buf), &len), -EMSGSIZE);
	buf[0] = SP_PREKEY_FORMAT;
	buf[1 + 32] = 0;
	buf[1 + 32 + 1] = (SP_PREKEY_UPLOAD_MAX + 1) >> 8;
	buf[1 + 32 + 2] = (SP_PREKEY_UPLOAD_MAX + 1) & 0xff;
	assert_int_equal(sp_prekey_upload_decode(buf, SP_PREKEY_UPLOAD_MIN +
						 (SP_PREKEY_UPLOAD_MAX + 1) * SP_PREKEY_REC_LEN, &up), -EMSGSIZE);
	/* a pub that is no X25519 key */
	make_key(&otk[0], SP_PREKEY_KIND_ONETIME, 1);
	memset(otk[0].pub, 0, 32);
	assert_int_equal(sp_prekey_upload_encode(edkey, NULL, otk, 1, buf, sizeof(buf), &len), 0);
	assert_int_equal(sp_prekey_upload_decode(buf, len, &up), -EDOM);
}

static void test_bundle(void **state)
{
	struct sp_prekey_bundle b, got;
	uint8_t buf[SP_PREKEY_BUNDLE_MAX + 1];
	size_t len;

	(void)state;
	memset(&b, 0, sizeof(b));
	memcpy(b.device, dev, 32);
	memcpy(b.edkey, edkey, 32);
	make_key(&b.spk, SP_PREKEY_KIND_SIGNED, 1);
	make_key(&b.otk, SP_PREKEY_KIND_ONETIME, 2);
	b.has_onetime = true;
	assert_int_equal(sp_prekey_bundle_encode(&b, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, SP_PREKEY_BUNDLE_MAX);
	assert_int_equal(sp_prekey_bundle_verify(buf, len, dev, &got), 0);
	assert_true(got.has_onetime);
	assert_memory_equal(got.otk.pub, b.otk.pub, 32);
	/* the signed prekey alone */
	b.has_onetime = false;
	assert_int_equal(sp_prekey_bundle_encode(&b, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, SP_PREKEY_BUNDLE_MIN);
	assert_int_equal(sp_prekey_bundle_verify(buf, len, dev, &got), 0);
	assert_false(got.has_onetime);
	assert_int_equal(sp_prekey_bundle_decode(buf, len + 1, &got), -EBADMSG);

	/* a substitution: another device's valid bundle served for dev */
	uint8_t osk[32], odev[32];
	struct sp_prekey_bundle ob;

	randombytes_buf(osk, sizeof(osk));
	crypto_scalarmult_base(odev, osk);
	memset(&ob, 0, sizeof(ob));
	memcpy(ob.device, odev, 32);
	assert_int_equal(sp_xeddsa_public(ob.edkey, osk), 0);
	ob.spk.kind = SP_PREKEY_KIND_SIGNED;
	crypto_scalarmult_base(ob.spk.pub, osk);
	assert_int_equal(sp_prekey_sign(&ob.spk, odev, osk), 0);
	assert_int_equal(sp_prekey_bundle_encode(&ob, buf, sizeof(buf), &len), 0);
	assert_int_equal(sp_prekey_bundle_verify(buf, len, odev, &got), 0);
	assert_int_equal(sp_prekey_bundle_verify(buf, len, dev, &got), -EPERM);
	/* ... relabelled as dev's: the signatures are over odev */
	memcpy(buf + 1, dev, 32);
	assert_int_equal(sp_prekey_bundle_verify(buf, len, dev, &got), -EPERM);
	/* ... with dev's Edwards key as well: still not dev's signature */
	memcpy(buf + 33, edkey, 32);
	assert_int_equal(sp_prekey_bundle_verify(buf, len, dev, &got), -EPERM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xeddsa_known_answers),
		cmocka_unit_test(test_xeddsa_binding),
		cmocka_unit_test(test_upload_round_trip),
		cmocka_unit_test(test_bundle),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, NULL);
}
