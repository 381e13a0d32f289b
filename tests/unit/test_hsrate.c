/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_hsrate.c: handshake-rate buckets per source and in all
 * (broker/loop/sp_hsrate.c). Times are given, never read from a clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sp_hsrate.h"

enum { SEC = 1000000000 };

static void key_of(uint8_t key[SP_SOURCE_KEY_LEN], uint32_t n)
{
	memset(key, 0, SP_SOURCE_KEY_LEN);
	key[0] = 4;
	memcpy(key + 1, &n, sizeof(n));
}

/* A source gets its burst, then its rate; another source is not affected. */
static void test_per_source(void **state)
{
	struct sp_hsrate *t;
	struct sp_hsrate_limits lim = { .global_rate = 0, .source_rate = 2, .source_burst = 3 };
	uint8_t a[SP_SOURCE_KEY_LEN], b[SP_SOURCE_KEY_LEN];
	uint64_t now = 1000ull * SEC;

	(void)state;
	assert_int_equal(sp_hsrate_new(&t, 100), 0);
	key_of(a, 1);
	key_of(b, 2);
	for (int i = 0; i < 3; i++)
		assert_int_equal(sp_hsrate_take(t, a, now, &lim), SP_HSRATE_OK);
	assert_int_equal(sp_hsrate_take(t, a, now, &lim), SP_HSRATE_SOURCE);
	assert_int_equal(sp_hsrate_take(t, b, now, &lim), SP_HSRATE_OK);
	/* Half a second later: one more (rate 2/s). */
	assert_int_equal(sp_hsrate_take(t, a, now + SEC / 2, &lim), SP_HSRATE_OK);
	assert_int_equal(sp_hsrate_take(t, a, now + SEC / 2, &lim), SP_HSRATE_SOURCE);
	/* Long idle: the burst again, not more. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(sp_hsrate_take(t, a, now + 60ull * SEC, &lim), SP_HSRATE_OK);
	assert_int_equal(sp_hsrate_take(t, a, now + 60ull * SEC, &lim), SP_HSRATE_SOURCE);
	/* An unknown source: the global bucket only (off here). */
	for (int i = 0; i < 10; i++)
		assert_int_equal(sp_hsrate_take(t, NULL, now, &lim), SP_HSRATE_OK);
	sp_hsrate_free(t);
}

/* The global bucket: burst = rate; a refusal by either charges neither. */
static void test_global(void **state)
{
	struct sp_hsrate *t;
	struct sp_hsrate_limits lim = { .global_rate = 4, .source_rate = 1, .source_burst = 1 };
	uint8_t k[SP_SOURCE_KEY_LEN];
	uint64_t now = 5ull * SEC;

	(void)state;
	assert_int_equal(sp_hsrate_new(&t, 100), 0);
	for (uint32_t i = 0; i < 4; i++) {
		key_of(k, i);
		assert_int_equal(sp_hsrate_take(t, k, now, &lim), SP_HSRATE_OK);
	}
	key_of(k, 99);
	assert_int_equal(sp_hsrate_take(t, k, now, &lim), SP_HSRATE_GLOBAL);
	/* Source 99 was not charged: it gets its one token once the global has one. */
	assert_int_equal(sp_hsrate_take(t, k, now + SEC / 4, &lim), SP_HSRATE_OK);
	/* Source 0 is empty: refused by its own bucket, the global one keeps its token. */
	key_of(k, 0);
	assert_int_equal(sp_hsrate_take(t, k, now + SEC / 2, &lim), SP_HSRATE_SOURCE);
	key_of(k, 50);
	assert_int_equal(sp_hsrate_take(t, k, now + SEC / 2, &lim), SP_HSRATE_OK);
	assert_int_equal(sp_hsrate_take(t, NULL, now + SEC / 2, &lim), SP_HSRATE_GLOBAL);
	/* A reload: the new limits apply at the next call. */
	lim.global_rate = 0;
	assert_int_equal(sp_hsrate_take(t, NULL, now + SEC / 2, &lim), SP_HSRATE_OK);
	sp_hsrate_free(t);
}

/* Many sources through a small table: full buckets are reused, a busy one
 * keeps its state while the global cap holds the busy ones few. */
static void test_table_pressure(void **state)
{
	struct sp_hsrate *t;
	struct sp_hsrate_limits lim = { .global_rate = 1000, .source_rate = 10, .source_burst = 1 };
	uint8_t k[SP_SOURCE_KEY_LEN], victim[SP_SOURCE_KEY_LEN];
	uint64_t now = 10ull * SEC;

	(void)state;
	assert_int_equal(sp_hsrate_new(&t, 64), 0);
	key_of(victim, 7777);
	assert_int_equal(sp_hsrate_take(t, victim, now, &lim), SP_HSRATE_OK);
	/* 100,000 sources over 100 s at the global rate: the table never holds
	 * more than rate / source_rate busy buckets. */
	for (uint32_t i = 0; i < 100000; i++) {
		uint64_t at = now + (uint64_t)i * (SEC / 1000);

		key_of(k, i + 100000);
		assert_int_equal(sp_hsrate_take(t, k, at, &lim), SP_HSRATE_OK);
		assert_true(sp_hsrate_busy(t, at) <= 1000 / 10 + 1);
		if (i == 10) {
			/* The victim, 11 ms after its token, is still empty. */
			assert_int_equal(sp_hsrate_take(t, victim, at, &lim), SP_HSRATE_SOURCE);
		}
	}
	sp_hsrate_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_per_source),
		cmocka_unit_test(test_global),
		cmocka_unit_test(test_table_pressure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
