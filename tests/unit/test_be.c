/* SPDX-License-Identifier: Apache-2.0 */
/* test_be.c: big-endian loads and stores, and the clocks beside them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "sp_be.h"
#include "sp_clock.h"

static void test_round_trip(void **state)
{
	uint8_t b[9] = { 0 };

	(void)state;
	sp_be_put16(b + 1, 0x0102);
	assert_memory_equal(b + 1, "\x01\x02", 2);
	assert_int_equal(sp_be_get16(b + 1), 0x0102);
	sp_be_put32(b + 1, 0x01020304u);
	assert_memory_equal(b + 1, "\x01\x02\x03\x04", 4);
	assert_int_equal(sp_be_get32(b + 1), 0x01020304u);
	sp_be_put64(b + 1, 0x0102030405060708ull);
	assert_memory_equal(b + 1, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	assert_true(sp_be_get64(b + 1) == 0x0102030405060708ull);
	sp_be_put64(b, UINT64_MAX);
	assert_true(sp_be_get64(b) == UINT64_MAX);
}

static void test_clocks(void **state)
{
	uint64_t a = sp_clock_mono_ns(), b = sp_clock_mono_ns();

	(void)state;
	assert_true(b >= a);
	assert_true(sp_clock_mono_ms() >= a / 1000000u);
	assert_true(sp_clock_wall_ms() > 1600000000000ull); /* after 2020 */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_clocks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
