/* SPDX-License-Identifier: Apache-2.0 */
/* test_hostport.c: the one host:port parser. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "sp_hostport.h"

static void test_split(void **state)
{
	struct sp_hostport hp;

	(void)state;
	assert_int_equal(sp_hostport_split("example.org:7400", &hp), 0);
	assert_string_equal(hp.host, "example.org");
	assert_int_equal(hp.port, 7400);
	assert_false(hp.bracketed);
	assert_int_equal(sp_hostport_split("[fe80::1:2]:65535", &hp), 0);
	assert_string_equal(hp.host, "fe80::1:2");
	assert_int_equal(hp.port, 65535);
	assert_true(hp.bracketed);
	assert_int_equal(sp_hostport_split("127.0.0.1:0", &hp), 0);
	assert_int_equal(hp.port, 0);
}

static void test_split_bad(void **state)
{
	static const char *const bad[] = {
		"", ":7400", "host", "host:", "host:65536", "host:123456", "host:+1", "host: 1",
		"host:74x", "::1:7400", "[::1]7400", "[::1:7400", "[]:7400", NULL,
	};
	struct sp_hostport hp;
	char longhost[SP_HOSTPORT_HOST_MAX + 8];

	(void)state;
	for (size_t i = 0; bad[i]; i++)
		assert_int_equal(sp_hostport_split(bad[i], &hp), -EINVAL);
	assert_int_equal(sp_hostport_split(NULL, &hp), -EINVAL);
	memset(longhost, 'a', sizeof(longhost));
	memcpy(longhost + SP_HOSTPORT_HOST_MAX, ":1", 3);
	assert_int_equal(sp_hostport_split(longhost, &hp), -EINVAL);
}

static void test_parse(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;

	(void)state;
	assert_int_equal(sp_hostport_parse("127.0.0.1:7400", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 7400);
	assert_int_equal(sp_hostport_parse("[::]:9400", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	/* The brackets say the family. */
	assert_int_equal(sp_hostport_parse("[127.0.0.1]:7400", &ss, &len), -EINVAL);
	assert_int_equal(sp_hostport_parse("localhost:7400", &ss, &len), -EINVAL);
	assert_int_equal(ss.ss_family, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_split_bad),
		cmocka_unit_test(test_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
