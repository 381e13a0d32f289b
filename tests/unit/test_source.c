/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_source.c: the per-source connection table (broker/loop/sp_source.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sp_source.h"

static void key4(const char *a, uint8_t key[SP_SOURCE_KEY_LEN])
{
	struct sockaddr_in sa = { .sin_family = AF_INET };

	assert_int_equal(inet_pton(AF_INET, a, &sa.sin_addr), 1);
	assert_int_equal(sp_source_key((struct sockaddr *)&sa, sizeof(sa), key), 0);
}

static void key6(const char *a, uint8_t key[SP_SOURCE_KEY_LEN])
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };

	assert_int_equal(inet_pton(AF_INET6, a, &sa.sin6_addr), 1);
	assert_int_equal(sp_source_key((struct sockaddr *)&sa, sizeof(sa), key), 0);
}

/* IPv4 per address, IPv6 per /64, mapped IPv4 as IPv4. */
static void test_keys(void **state)
{
	uint8_t a[SP_SOURCE_KEY_LEN], b[SP_SOURCE_KEY_LEN];
	struct sockaddr sa = { .sa_family = AF_UNIX };

	(void)state;
	key4("10.0.0.1", a);
	key4("10.0.0.2", b);
	assert_memory_not_equal(a, b, sizeof(a));
	key6("2001:db8:1:2::1", a);
	key6("2001:db8:1:2:ffff::7", b);
	assert_memory_equal(a, b, sizeof(a));
	key6("2001:db8:1:3::1", b);
	assert_memory_not_equal(a, b, sizeof(a));
	key4("192.0.2.9", a);
	key6("::ffff:192.0.2.9", b);
	assert_memory_equal(a, b, sizeof(a));
	assert_int_equal(sp_source_key(&sa, sizeof(sa), a), -EAFNOSUPPORT);
}

/* Both limits, what proving and releasing give back. */
static void test_limits(void **state)
{
	struct sp_source_table *t;
	uint8_t a[SP_SOURCE_KEY_LEN], b[SP_SOURCE_KEY_LEN];
	uint32_t conns, unauth;

	(void)state;
	assert_int_equal(sp_source_table_new(&t, 16), 0);
	key4("127.0.0.1", a);
	key4("127.0.0.2", b);
	assert_int_equal(sp_source_table_admit(t, a, 3, 2), SP_SOURCE_OK);
	assert_int_equal(sp_source_table_admit(t, a, 3, 2), SP_SOURCE_OK);
	assert_int_equal(sp_source_table_admit(t, a, 3, 2), SP_SOURCE_TOO_MANY_UNAUTH);
	/* Another source is not affected. */
	assert_int_equal(sp_source_table_admit(t, b, 3, 2), SP_SOURCE_OK);
	sp_source_table_proven(t, a);
	assert_int_equal(sp_source_table_admit(t, a, 3, 2), SP_SOURCE_OK);
	sp_source_table_get(t, a, &conns, &unauth);
	assert_int_equal(conns, 3);
	assert_int_equal(unauth, 2);
	assert_int_equal(sp_source_table_admit(t, a, 3, 0), SP_SOURCE_TOO_MANY);
	sp_source_table_release(t, a, false);   /* the proven one */
	sp_source_table_get(t, a, &conns, &unauth);
	assert_int_equal(conns, 2);
	assert_int_equal(unauth, 2);
	sp_source_table_release(t, a, true);
	sp_source_table_release(t, a, true);
	sp_source_table_get(t, a, &conns, &unauth);
	assert_int_equal(conns, 0);
	assert_int_equal(unauth, 0);
	assert_int_equal(sp_source_table_count(t), 1);
	/* 0 = no limit. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(sp_source_table_admit(t, a, 0, 0), SP_SOURCE_OK);
	sp_source_table_free(t);
}

/* Many sources come and go: entries are found after deletions around
 * them (backward shift), and the table empties. */
static void test_churn(void **state)
{
	enum { CAP = 256 };
	struct sp_source_table *t;
	uint8_t k[SP_SOURCE_KEY_LEN];
	char addr[32];
	uint32_t conns, unauth;

	(void)state;
	assert_int_equal(sp_source_table_new(&t, CAP), 0);
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < CAP; i++) {
			snprintf(addr, sizeof(addr), "10.%d.%d.%d", round, i / 256, i % 256);
			key4(addr, k);
			assert_int_equal(sp_source_table_admit(t, k, 1, 1), SP_SOURCE_OK);
		}
		assert_int_equal(sp_source_table_count(t), CAP);
		/* Every other one leaves; the rest are still found. */
		for (int i = 0; i < CAP; i += 2) {
			snprintf(addr, sizeof(addr), "10.%d.%d.%d", round, i / 256, i % 256);
			key4(addr, k);
			sp_source_table_release(t, k, true);
		}
		for (int i = 1; i < CAP; i += 2) {
			snprintf(addr, sizeof(addr), "10.%d.%d.%d", round, i / 256, i % 256);
			key4(addr, k);
			sp_source_table_get(t, k, &conns, &unauth);
			assert_int_equal(conns, 1);
			assert_int_equal(sp_source_table_admit(t, k, 1, 0), SP_SOURCE_TOO_MANY);
			sp_source_table_release(t, k, true);
		}
		assert_int_equal(sp_source_table_count(t), 0);
	}
	sp_source_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_churn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
