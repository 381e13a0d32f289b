/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_devlist.c: lib/crypto/sp_devlist.c, signed device lists: the
 * canonical encoding byte for byte, signatures, and every bad list.
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

#include "sp_devlist.h"
#include "sp_key.h"

struct acct {
	uint8_t pk[SP_ACCOUNT_KEY_LEN], sk[SP_ACCOUNT_SECRET_LEN];
};

static void acct_new(struct acct *a)
{
	crypto_sign_keypair(a->pk, a->sk);
}

static void dev_key(uint8_t pub[SP_KEY_LEN])
{
	uint8_t priv[SP_KEY_LEN];

	sp_noise_keypair(pub, priv);
}

/* A list of n random devices at version v. */
static void make(struct sp_devlist *l, const struct acct *a, uint64_t v, unsigned n)
{
	memset(l, 0, sizeof(*l));
	memcpy(l->account, a->pk, SP_ACCOUNT_KEY_LEN);
	l->version = v;
	for (unsigned i = 0; i < n; i++) {
		uint8_t k[SP_KEY_LEN];
		char label[16];

		dev_key(k);
		snprintf(label, sizeof(label), "dev %u", i);
		assert_int_equal(sp_devlist_add(l, k, label, 1700000000 + i), 0);
	}
}

static uint8_t buf[SP_DEVLIST_MAX + 64];

static void test_roundtrip(void **state)
{
	struct sp_devlist l, got;
	struct acct a;
	size_t len = 0;

	(void)state;
	acct_new(&a);
	make(&l, &a, 7, 3);
	assert_int_equal(sp_devlist_sign(&l, a.sk, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, SP_DEVLIST_HDR_LEN + 3 * (SP_KEY_LEN + 9 + 5) + SP_DEVLIST_SIG_LEN);
	assert_int_equal(sp_devlist_verify(buf, len, &got), 0);
	assert_memory_equal(got.account, a.pk, 32);
	assert_int_equal(got.version, 7);
	assert_int_equal(got.count, 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_memory_equal(got.dev[i].key, l.dev[i].key, 32);
		assert_string_equal(got.dev[i].label, l.dev[i].label);
		assert_int_equal(got.dev[i].added_s, l.dev[i].added_s);
	}
	/* sorted by key */
	assert_true(memcmp(got.dev[0].key, got.dev[1].key, 32) < 0);
	assert_true(memcmp(got.dev[1].key, got.dev[2].key, 32) < 0);
}

/* The layout of PROTOCOL.md 11.1, and the signature over domain || list. */
static void test_layout(void **state)
{
	struct sp_devlist l;
	struct acct a;
	size_t len = 0;
	uint8_t msg[SP_DEVLIST_DOMAIN_LEN + SP_DEVLIST_MAX];

	(void)state;
	acct_new(&a);
	make(&l, &a, 0x0102030405060708ull, 1);
	assert_int_equal(sp_devlist_sign(&l, a.sk, buf, sizeof(buf), &len), 0);
	assert_int_equal(buf[0], 1);
	assert_memory_equal(buf + 1, a.pk, 32);
	assert_memory_equal(buf + 33, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	assert_memory_equal(buf + 41, "\x00\x01", 2);
	assert_memory_equal(buf + 43, l.dev[0].key, 32);
	assert_int_equal(buf[43 + 32 + 8], 5);
	assert_memory_equal(buf + 43 + 32 + 9, "dev 0", 5);
	memcpy(msg, "sealpost/devlist/1", 18);
	memcpy(msg + 18, buf, len - 64);
	assert_int_equal(crypto_sign_verify_detached(buf + len - 64, msg, 18 + len - 64, a.pk), 0);
	/* Without the domain the signature is not valid: it is bound to it. */
	assert_int_not_equal(crypto_sign_verify_detached(buf + len - 64, buf, len - 64, a.pk), 0);
}

static void test_every_flip_fails(void **state)
{
	struct sp_devlist l, got;
	struct acct a;
	size_t len = 0;

	(void)state;
	acct_new(&a);
	make(&l, &a, 1, 2);
	assert_int_equal(sp_devlist_sign(&l, a.sk, buf, sizeof(buf), &len), 0);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			buf[i] ^= (uint8_t)(1u << bit);
			assert_int_not_equal(sp_devlist_verify(buf, len, &got), 0);
			buf[i] ^= (uint8_t)(1u << bit);
		}
	}
	assert_int_equal(sp_devlist_verify(buf, len, &got), 0);
}

static void test_wrong_account_key(void **state)
{
	struct sp_devlist l, got;
	struct acct a, b;
	size_t len = 0;

	(void)state;
	acct_new(&a);
	acct_new(&b);
	make(&l, &a, 1, 1);
	/* sign refuses a key that is not the list's account */
	assert_int_equal(sp_devlist_sign(&l, b.sk, buf, sizeof(buf), &len), -EINVAL);
	/* a list claiming account a signed by b (the broker's forgery) */
	assert_int_equal(sp_devlist_sign(&l, a.sk, buf, sizeof(buf), &len), 0);
	{
		uint8_t msg[SP_DEVLIST_DOMAIN_LEN + SP_DEVLIST_MAX];

		memcpy(msg, SP_DEVLIST_DOMAIN, 18);
		memcpy(msg + 18, buf, len - 64);
		crypto_sign_detached(buf + len - 64, NULL, msg, 18 + len - 64, b.sk);
	}
	assert_int_equal(sp_devlist_verify(buf, len, &got), -EKEYREJECTED);
	assert_int_equal(sp_devlist_decode(buf, len, &got), 0); /* well formed, forged */
}

/* Builds an unsigned list by hand (the signature bytes are zero). */
static size_t raw(uint8_t *p, const uint8_t acc[32], uint64_t v, unsigned n,
		  const uint8_t (*keys)[32], const char **labels)
{
	size_t o = 0;

	p[o++] = 1;
	memcpy(p + o, acc, 32);
	o += 32;
	for (int i = 7; i >= 0; i--)
		p[o++] = (uint8_t)(v >> (8 * i));
	p[o++] = (uint8_t)(n >> 8);
	p[o++] = (uint8_t)n;
	for (unsigned i = 0; i < n; i++) {
		size_t ll = strlen(labels[i]);

		memcpy(p + o, keys[i], 32);
		o += 32;
		memset(p + o, 0, 8);
		o += 8;
		p[o++] = (uint8_t)ll;
		memcpy(p + o, labels[i], ll);
		o += ll;
	}
	memset(p + o, 0, 64);
	return o + 64;
}

static void test_bad_lists(void **state)
{
	struct sp_devlist got;
	struct acct a;
	uint8_t keys[3][32], tmp[32];
	const char *labels[3] = { "a", "b", "c" };
	size_t len;

	(void)state;
	acct_new(&a);
	for (int i = 0; i < 3; i++)
		dev_key(keys[i]);
	/* sort the three */
	for (int i = 0; i < 3; i++)
		for (int j = i + 1; j < 3; j++)
			if (memcmp(keys[i], keys[j], 32) > 0) {
				memcpy(tmp, keys[i], 32);
				memcpy(keys[i], keys[j], 32);
				memcpy(keys[j], tmp, 32);
			}
	len = raw(buf, a.pk, 1, 3, (const uint8_t (*)[32])keys, labels);
	assert_int_equal(sp_devlist_decode(buf, len, &got), 0);
	assert_int_equal(sp_devlist_verify(buf, len, &got), -EKEYREJECTED);

	/* truncated anywhere, one trailing byte */
	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(sp_devlist_decode(buf, cut, &got), -EBADMSG);
	assert_int_equal(sp_devlist_decode(buf, len + 1, &got), -EBADMSG);
	/* format */
	buf[0] = 2;
	assert_int_equal(sp_devlist_decode(buf, len, &got), -EBADMSG);
	buf[0] = 1;
	/* version 0 */
	len = raw(buf, a.pk, 0, 3, (const uint8_t (*)[32])keys, labels);
	assert_int_equal(sp_devlist_decode(buf, len, &got), -EBADMSG);
	/* no devices */
	len = raw(buf, a.pk, 1, 0, NULL, NULL);
	assert_int_equal(sp_devlist_decode(buf, len, &got), -EBADMSG);
	/* unsorted, duplicate */
	{
		uint8_t u[3][32];

		memcpy(u[0], keys[1], 32);
		memcpy(u[1], keys[0], 32);
		memcpy(u[2], keys[2], 32);
		len = raw(buf, a.pk, 1, 3, (const uint8_t (*)[32])u, labels);
		assert_int_equal(sp_devlist_decode(buf, len, &got), -ENOTUNIQ);
		memcpy(u[0], keys[0], 32);
		memcpy(u[1], keys[0], 32);
		len = raw(buf, a.pk, 1, 3, (const uint8_t (*)[32])u, labels);
		assert_int_equal(sp_devlist_decode(buf, len, &got), -ENOTUNIQ);
	}
	/* not a valid X25519 point: all ff (non-canonical), zero (low order) */
	{
		uint8_t u[3][32];

		memcpy(u, keys, sizeof(u));
		memset(u[2], 0xff, 32);
		len = raw(buf, a.pk, 1, 3, (const uint8_t (*)[32])u, labels);
		assert_int_equal(sp_devlist_decode(buf, len, &got), -EDOM);
		memset(u[0], 0, 32);
		memcpy(u[2], keys[2], 32);
		len = raw(buf, a.pk, 1, 3, (const uint8_t (*)[32])u, labels);
		assert_int_equal(sp_devlist_decode(buf, len, &got), -EDOM);
	}
	/* labels: empty, a control byte, DEL */
	{
		const char *bad[3][3] = { { "", "b", "c" }, { "a", "b\n", "c" }, { "a", "b", "\x7f" } };

		for (int i = 0; i < 3; i++) {
			len = raw(buf, a.pk, 1, 3, (const uint8_t (*)[32])keys, bad[i]);
			assert_int_equal(sp_devlist_decode(buf, len, &got), -EBADMSG);
		}
	}
	/* over the size limit, over the device limit */
	assert_int_equal(sp_devlist_decode(buf, SP_DEVLIST_MAX + 1, &got), -EMSGSIZE);
	len = raw(buf, a.pk, 1, 3, (const uint8_t (*)[32])keys, labels);
	buf[41] = 0;
	buf[42] = SP_DEVLIST_DEVICES_MAX + 1;
	assert_int_equal(sp_devlist_decode(buf, len, &got), -EMSGSIZE);
	/* an account key that is not a curve point */
	{
		uint8_t bad[32];

		memset(bad, 0, sizeof(bad));
		len = raw(buf, bad, 1, 3, (const uint8_t (*)[32])keys, labels);
		assert_int_equal(sp_devlist_verify(buf, len, &got), -EKEYREJECTED);
	}
}

static void test_limits(void **state)
{
	struct sp_devlist l, got;
	struct acct a;
	size_t len = 0;
	char label[SP_DEVLIST_LABEL_MAX + 2];
	uint8_t k[32];

	(void)state;
	acct_new(&a);
	memset(&l, 0, sizeof(l));
	memcpy(l.account, a.pk, 32);
	l.version = UINT64_MAX;
	memset(label, 'x', SP_DEVLIST_LABEL_MAX);
	label[SP_DEVLIST_LABEL_MAX] = '\0';
	for (int i = 0; i < SP_DEVLIST_DEVICES_MAX; i++) {
		dev_key(k);
		assert_int_equal(sp_devlist_add(&l, k, label, UINT64_MAX), 0);
	}
	dev_key(k);
	assert_int_equal(sp_devlist_add(&l, k, "one more", 0), -EMSGSIZE);
	assert_int_equal(sp_devlist_sign(&l, a.sk, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, SP_DEVLIST_MAX);
	assert_int_equal(sp_devlist_verify(buf, len, &got), 0);
	assert_int_equal(sp_devlist_sign(&l, a.sk, buf, SP_DEVLIST_MAX - 1, &len), -EMSGSIZE);
	/* a label one byte too long */
	label[SP_DEVLIST_LABEL_MAX] = 'x';
	label[SP_DEVLIST_LABEL_MAX + 1] = '\0';
	assert_int_equal(sp_devlist_remove(&l, l.dev[0].key), 0);
	assert_int_equal(sp_devlist_add(&l, k, label, 0), -EBADMSG);
	/* add twice, remove what is not there */
	assert_int_equal(sp_devlist_add(&l, k, "k", 0), 0);
	assert_int_equal(sp_devlist_add(&l, k, "k", 0), -ENOTUNIQ);
	assert_int_equal(sp_devlist_remove(&l, k), 0);
	assert_int_equal(sp_devlist_remove(&l, k), -ENOENT);
	memset(k, 0xff, 32);
	assert_int_equal(sp_devlist_add(&l, k, "bad", 0), -EDOM);
}

static void test_link_code(void **state)
{
	uint8_t k[32];
	char c1[7], c2[7], c3[7];

	(void)state;
	dev_key(k);
	sp_devlist_link_code(k, "phone", c1);
	sp_devlist_link_code(k, "phone", c2);
	sp_devlist_link_code(k, "phonf", c3);
	assert_int_equal(strlen(c1), 6);
	assert_string_equal(c1, c2);
	for (int i = 0; i < 6; i++)
		assert_true(c1[i] >= '0' && c1[i] <= '9');
	(void)c3; /* differs with odds 1 - 10^-6; not asserted */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_every_flip_fails),
		cmocka_unit_test(test_wrong_account_key),
		cmocka_unit_test(test_bad_lists),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_link_code),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
