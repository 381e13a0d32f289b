/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_route.c: the routing table against its contract and a reference model.
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

#include "sp_route.h"

static void key_of(uint8_t key[SP_KEY_LEN], uint32_t n)
{
	/* Distinct, structured keys: most bytes equal, so only the hash spreads them. */
	memset(key, 0xab, SP_KEY_LEN);
	memcpy(key, &n, sizeof(n));
}

static void test_basic(void **state)
{
	struct sp_route *rt;
	uint8_t a[SP_KEY_LEN], b[SP_KEY_LEN];
	uint64_t v = 0, old = 0;

	(void)state;
	key_of(a, 1);
	key_of(b, 2);
	assert_int_equal(sp_route_create(&rt, 0), 0);
	assert_int_equal(sp_route_count(rt), 0);
	assert_int_equal(sp_route_lookup(rt, a, &v), -ENOENT);
	assert_int_equal(sp_route_remove(rt, a, 7), -ENOENT);

	assert_int_equal(sp_route_insert(rt, a, 7, &old), 0);
	assert_int_equal(sp_route_insert(rt, b, 9, NULL), 0);
	assert_int_equal(sp_route_count(rt), 2);
	assert_int_equal(sp_route_lookup(rt, a, &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(sp_route_lookup(rt, b, &v), 0);
	assert_int_equal(v, 9);

	/* Takeover: replace returns 1 and the previous handle. */
	assert_int_equal(sp_route_insert(rt, a, UINT64_MAX, &old), 1);
	assert_int_equal(old, 7);
	assert_int_equal(sp_route_count(rt), 2);
	assert_int_equal(sp_route_insert(rt, a, 0, NULL), 1);
	assert_int_equal(sp_route_lookup(rt, a, &v), 0);
	assert_int_equal(v, 0);

	/* The old connection closing must not remove the new route. */
	assert_int_equal(sp_route_remove(rt, a, 7), -ESTALE);
	assert_int_equal(sp_route_lookup(rt, a, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(sp_route_count(rt), 2);

	assert_int_equal(sp_route_remove(rt, a, 0), 0);
	assert_int_equal(sp_route_lookup(rt, a, &v), -ENOENT);
	assert_int_equal(sp_route_remove(rt, a, 0), -ENOENT);
	assert_int_equal(sp_route_count(rt), 1);
	assert_int_equal(sp_route_lookup(rt, b, &v), 0);
	assert_int_equal(v, 9);
	sp_route_destroy(rt);
	sp_route_destroy(NULL);
}

/* Keys differing in the last byte only must still be told apart. */
static void test_similar_keys(void **state)
{
	struct sp_route *rt;
	uint8_t k[SP_KEY_LEN];
	uint64_t v;

	(void)state;
	assert_int_equal(sp_route_create(&rt, 4), 0);
	memset(k, 0, sizeof(k));
	for (unsigned i = 0; i < 256; i++) {
		k[SP_KEY_LEN - 1] = (uint8_t)i;
		assert_int_equal(sp_route_insert(rt, k, i, NULL), 0);
	}
	for (unsigned i = 0; i < 256; i++) {
		k[SP_KEY_LEN - 1] = (uint8_t)i;
		assert_int_equal(sp_route_lookup(rt, k, &v), 0);
		assert_int_equal(v, i);
	}
	assert_int_equal(sp_route_count(rt), 256);
	sp_route_destroy(rt);
}

/*
 * Random inserts, replaces and removes over a small key pool, checked against
 * a plain array after every step. A small pool in a small table means long
 * clusters that wrap around the end, which is where backward-shift deletion
 * can go wrong.
 */
enum { POOL = 600, OPS = 300000 };

static void test_model(void **state)
{
	struct sp_route *rt;
	static uint64_t model[POOL];
	static uint8_t present[POOL];
	size_t count = 0;
	uint8_t k[SP_KEY_LEN];
	uint64_t v, old;

	(void)state;
	memset(present, 0, sizeof(present));
	assert_int_equal(sp_route_create(&rt, 0), 0);
	for (uint32_t op = 0; op < OPS; op++) {
		uint32_t n = randombytes_uniform(POOL);
		uint32_t what = randombytes_uniform(8);
		uint64_t val = ((uint64_t)randombytes_random() << 32) | randombytes_random();

		key_of(k, n);
		if (what < 4) {
			int r = sp_route_insert(rt, k, val, &old);

			assert_int_equal(r, present[n] ? 1 : 0);
			if (present[n])
				assert_int_equal(old, model[n]);
			else
				count++;
			present[n] = 1;
			model[n] = val;
		} else if (what < 7) {
			int want = !present[n] ? -ENOENT : 0;

			assert_int_equal(sp_route_remove(rt, k, present[n] ? model[n] : val), want);
			if (present[n])
				count--;
			present[n] = 0;
		} else if (present[n]) {
			assert_int_equal(sp_route_remove(rt, k, model[n] ^ 1), -ESTALE);
		}
		assert_int_equal(sp_route_count(rt), count);
		/* Full check now and then; a spot check every step. */
		key_of(k, n);
		if (present[n]) {
			assert_int_equal(sp_route_lookup(rt, k, &v), 0);
			assert_int_equal(v, model[n]);
		} else {
			assert_int_equal(sp_route_lookup(rt, k, &v), -ENOENT);
		}
		if (op % 5000 == 0) {
			for (uint32_t i = 0; i < POOL; i++) {
				key_of(k, i);
				if (present[i]) {
					assert_int_equal(sp_route_lookup(rt, k, &v), 0);
					assert_int_equal(v, model[i]);
				} else {
					assert_int_equal(sp_route_lookup(rt, k, &v), -ENOENT);
				}
			}
		}
	}
	sp_route_destroy(rt);
}

enum { MILLION = 1000000 };

static void test_million(void **state)
{
	struct sp_route *rt;
	uint8_t *keys = malloc((size_t)MILLION * SP_KEY_LEN);
	uint64_t v;

	(void)state;
	assert_non_null(keys);
	randombytes_buf(keys, (size_t)MILLION * SP_KEY_LEN);
	/* From the smallest table: every doubling on the way to a million. */
	assert_int_equal(sp_route_create(&rt, 1), 0);
	for (size_t i = 0; i < MILLION; i++)
		assert_int_equal(sp_route_insert(rt, keys + i * SP_KEY_LEN, i, NULL), 0);
	assert_int_equal(sp_route_count(rt), MILLION);
	for (size_t i = 0; i < MILLION; i++) {
		assert_int_equal(sp_route_lookup(rt, keys + i * SP_KEY_LEN, &v), 0);
		assert_int_equal(v, i);
	}
	/* Remove every odd one; a wrong expected value leaves even ones alone. */
	for (size_t i = 0; i < MILLION; i++) {
		if (i & 1)
			assert_int_equal(sp_route_remove(rt, keys + i * SP_KEY_LEN, i), 0);
		else if (i % 10 == 0)
			assert_int_equal(sp_route_remove(rt, keys + i * SP_KEY_LEN, i + 1), -ESTALE);
	}
	assert_int_equal(sp_route_count(rt), MILLION / 2);
	for (size_t i = 0; i < MILLION; i++) {
		int r = sp_route_lookup(rt, keys + i * SP_KEY_LEN, &v);

		if (i & 1) {
			assert_int_equal(r, -ENOENT);
		} else {
			assert_int_equal(r, 0);
			assert_int_equal(v, i);
		}
	}
	/* Keys never inserted are absent. */
	for (size_t i = 0; i < 1000; i++) {
		uint8_t k[SP_KEY_LEN];

		randombytes_buf(k, sizeof(k));
		assert_int_equal(sp_route_lookup(rt, k, &v), -ENOENT);
	}
	sp_route_destroy(rt);

	/* Sized up front, a million fits without growing. */
	assert_int_equal(sp_route_create(&rt, MILLION), 0);
	for (size_t i = 0; i < MILLION; i++)
		assert_int_equal(sp_route_insert(rt, keys + i * SP_KEY_LEN, ~(uint64_t)i, NULL), 0);
	for (size_t i = 0; i < MILLION; i += 7) {
		assert_int_equal(sp_route_lookup(rt, keys + i * SP_KEY_LEN, &v), 0);
		assert_int_equal(v, ~(uint64_t)i);
	}
	assert_int_equal(sp_route_count(rt), MILLION);
	sp_route_destroy(rt);
	free(keys);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_similar_keys),
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_million),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
