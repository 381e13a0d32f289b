/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_sendlim.c: broker/app/sp_sendlim: per-sender envelope and byte
 * buckets, refill with time, a bounded table with an overflow bucket.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sp_sendlim.h"

static void key_of(uint8_t k[SP_KEY_LEN], uint32_t n)
{
	memset(k, 0x5a, SP_KEY_LEN);
	memcpy(k, &n, sizeof(n));
}

static void test_envelope_bucket(void **state)
{
	struct sp_sendlim_config cfg = { .rate = 10, .burst = 5, .max_senders = 8 };
	struct sp_sendlim *l;
	uint8_t a[SP_KEY_LEN], b[SP_KEY_LEN];

	(void)state;
	key_of(a, 1);
	key_of(b, 2);
	assert_int_equal(sp_sendlim_create(&l, &cfg), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(sp_sendlim_take(l, a, 100, 1000), 0);
	assert_int_equal(sp_sendlim_take(l, a, 100, 1000), -EAGAIN);
	/* Another sender has its own bucket. */
	assert_int_equal(sp_sendlim_take(l, b, 100, 1000), 0);
	/* 10/s: one token per 100 ms. */
	assert_int_equal(sp_sendlim_take(l, a, 100, 1099), -EAGAIN);
	assert_int_equal(sp_sendlim_take(l, a, 100, 1100), 0);
	assert_int_equal(sp_sendlim_take(l, a, 100, 1100), -EAGAIN);
	/* Refill stops at the burst. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(sp_sendlim_take(l, a, 100, 100000), 0);
	assert_int_equal(sp_sendlim_take(l, a, 100, 100000), -EAGAIN);
	/* A clock stepped back refills nothing and breaks nothing. */
	assert_int_equal(sp_sendlim_take(l, a, 100, 5), -EAGAIN);
	sp_sendlim_destroy(l);
}

static void test_byte_bucket(void **state)
{
	struct sp_sendlim_config cfg = { .byte_rate = 1000, .byte_burst = 4000, .max_senders = 4 };
	struct sp_sendlim *l;
	uint8_t a[SP_KEY_LEN];

	(void)state;
	key_of(a, 1);
	assert_int_equal(sp_sendlim_create(&l, &cfg), 0);
	assert_int_equal(sp_sendlim_take(l, a, 3000, 0), 0);
	assert_int_equal(sp_sendlim_take(l, a, 1001, 0), -EAGAIN);    /* nothing charged */
	assert_int_equal(sp_sendlim_take(l, a, 1000, 0), 0);
	assert_int_equal(sp_sendlim_take(l, a, 1, 0), -EAGAIN);
	assert_int_equal(sp_sendlim_take(l, a, 500, 500), 0);          /* 1000 B/s */
	assert_int_equal(sp_sendlim_take(l, a, 1, 500), -EAGAIN);
	/* Envelope count is not limited without a rate. */
	for (int i = 0; i < 100; i++)
		assert_int_equal(sp_sendlim_take(l, a, 0, 500), 0);
	sp_sendlim_destroy(l);
}

/* A full table: senders whose buckets refilled are dropped; while the
 * others are busy, newcomers share the overflow bucket. */
static void test_table_bound(void **state)
{
	struct sp_sendlim_config cfg = { .rate = 1, .burst = 2, .max_senders = 3 };
	struct sp_sendlim *l;
	uint8_t k[SP_KEY_LEN];

	(void)state;
	assert_int_equal(sp_sendlim_create(&l, &cfg), 0);
	for (uint32_t i = 0; i < 3; i++) {
		key_of(k, i);
		assert_int_equal(sp_sendlim_take(l, k, 0, 10), 0);
	}
	assert_int_equal(sp_sendlim_count(l), 3);
	/* Two newcomers: the overflow bucket (burst 2) serves them together. */
	key_of(k, 100);
	assert_int_equal(sp_sendlim_take(l, k, 0, 10), 0);
	key_of(k, 101);
	assert_int_equal(sp_sendlim_take(l, k, 0, 10), 0);
	key_of(k, 102);
	assert_int_equal(sp_sendlim_take(l, k, 0, 10), -EAGAIN);
	assert_int_equal(sp_sendlim_count(l), 3);
	/* Much later every bucket is full again: the old entries make room. */
	key_of(k, 103);
	assert_int_equal(sp_sendlim_take(l, k, 0, 100000), 0);
	assert_int_equal(sp_sendlim_count(l), 1);
	assert_int_equal(sp_sendlim_take(l, k, 0, 100000), 0);
	assert_int_equal(sp_sendlim_take(l, k, 0, 100000), -EAGAIN);
	/* Entries that moved during the pruning are still found. */
	for (uint32_t i = 0; i < 2; i++) {
		key_of(k, 200 + i);
		assert_int_equal(sp_sendlim_take(l, k, 0, 100000), 0);
		assert_int_equal(sp_sendlim_take(l, k, 0, 100000), 0);
		assert_int_equal(sp_sendlim_take(l, k, 0, 100000), -EAGAIN);
	}
	assert_int_equal(sp_sendlim_count(l), 3);
	sp_sendlim_destroy(l);
}

static void test_off_and_bad(void **state)
{
	struct sp_sendlim_config cfg = { .max_senders = 1 };
	struct sp_sendlim *l;
	uint8_t k[SP_KEY_LEN];

	(void)state;
	key_of(k, 7);
	assert_int_equal(sp_sendlim_create(&l, &cfg), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(sp_sendlim_take(l, k, 64000, 0), 0);
	assert_int_equal(sp_sendlim_count(l), 0);
	sp_sendlim_destroy(l);
	cfg.max_senders = 0;
	assert_int_equal(sp_sendlim_create(&l, &cfg), -EINVAL);
	assert_null(l);
	sp_sendlim_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_envelope_bucket),
		cmocka_unit_test(test_byte_bucket),
		cmocka_unit_test(test_table_bound),
		cmocka_unit_test(test_off_and_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
