/* SPDX-License-Identifier: Apache-2.0 */
/* test_keytab.c: the SipHash table for 32-byte keys. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "sp_keytab.h"

static void key_of(uint8_t k[SP_KEYTAB_KEY_LEN], uint32_t i)
{
	memset(k, 0, SP_KEYTAB_KEY_LEN);
	memcpy(k, &i, sizeof(i));
	k[31] = (uint8_t)(i * 7);
}

static void test_basic(void **state)
{
	struct sp_keytab *t;
	uint8_t k[SP_KEYTAB_KEY_LEN];
	uint64_t v = 0;

	(void)state;
	assert_int_equal(sp_keytab_create(&t, 0), 0);
	key_of(k, 1);
	assert_int_equal(sp_keytab_lookup(t, k, &v), -ENOENT);
	assert_int_equal(sp_keytab_insert(t, k, 10, NULL), 0);
	assert_int_equal(sp_keytab_insert(t, k, 11, &v), 1);
	assert_int_equal(v, 10);
	assert_int_equal(sp_keytab_lookup(t, k, &v), 0);
	assert_int_equal(v, 11);
	assert_int_equal(sp_keytab_remove(t, k, 10), -ESTALE);
	assert_int_equal(sp_keytab_remove(t, k, 11), 0);
	assert_int_equal(sp_keytab_remove(t, k, 11), -ENOENT);
	assert_int_equal(sp_keytab_count(t), 0);
	sp_keytab_destroy(t);
}

/* Growth from a tiny table, removal with backward shift, clear. */
static void test_many(void **state)
{
	enum { N = 20000 };
	struct sp_keytab *t;
	uint8_t k[SP_KEYTAB_KEY_LEN];
	uint64_t v;

	size_t small;

	(void)state;
	assert_int_equal(sp_keytab_create(&t, 1), 0);
	/* The slot array's bytes: the minimum table, then grown so that N
	 * entries sit under the 7/10 load limit. */
	small = sp_keytab_bytes(t);
	assert_true(small > 0);
	for (uint32_t i = 0; i < N; i++) {
		key_of(k, i);
		assert_int_equal(sp_keytab_insert(t, k, i + 100u, NULL), 0);
	}
	assert_int_equal(sp_keytab_count(t), N);
	assert_true(sp_keytab_bytes(t) >= small * (N * 10 / 7 / 8));
	for (uint32_t i = 0; i < N; i += 2) {
		key_of(k, i);
		assert_int_equal(sp_keytab_remove(t, k, i + 100u), 0);
	}
	for (uint32_t i = 0; i < N; i++) {
		key_of(k, i);
		if (i % 2) {
			assert_int_equal(sp_keytab_lookup(t, k, &v), 0);
			assert_int_equal(v, i + 100u);
		} else {
			assert_int_equal(sp_keytab_lookup(t, k, &v), -ENOENT);
		}
	}
	sp_keytab_clear(t);
	assert_int_equal(sp_keytab_count(t), 0);
	key_of(k, 1);
	assert_int_equal(sp_keytab_lookup(t, k, &v), -ENOENT);
	assert_int_equal(sp_keytab_insert(t, k, 5, NULL), 0);
	sp_keytab_destroy(t);
	sp_keytab_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
