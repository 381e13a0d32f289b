/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_cli_access.c: the CLI's contacts' access keys file
 * (client/cli_access.c), on real files in a temporary directory.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli_access.h"

static char dir[64], path[160], sub[128];

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/sp_test_cli_access.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	/* Two levels that do not exist yet, like ~/.config/sealpost. */
	snprintf(sub, sizeof(sub), "%s/config", dir);
	snprintf(path, sizeof(path), "%s/config/sealpost/access_keys", dir);
	return 0;
}

static int teardown(void **state)
{
	char d[160];

	(void)state;
	unlink(path);
	snprintf(d, sizeof(d), "%s/sealpost", sub);
	rmdir(d);
	rmdir(sub);
	rmdir(dir);
	return 0;
}

static char *slurp(void)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_parse_key(void **state)
{
	uint8_t k[SP_CLI_ACCESS_KEY_MAX];
	size_t len = 0;

	(void)state;
	assert_int_equal(sp_cli_access_parse_key("00112233445566778899aabbccddeeff", k, &len), 0);
	assert_int_equal(len, 16);
	assert_int_equal(k[15], 0xff);
	assert_int_equal(sp_cli_access_parse_key("00112233445566778899AABBCCDDEEFF"
						 "00112233445566778899aabbccddeeff", k, &len), 0);
	assert_int_equal(len, 32);
	assert_int_equal(sp_cli_access_parse_key("0011", k, &len), -EINVAL);
	assert_int_equal(sp_cli_access_parse_key("00112233445566778899aabbccddeefg", k, &len),
			 -EINVAL);
	assert_int_equal(sp_cli_access_parse_key("00112233445566778899aabbccddeeff0", k, &len),
			 -EINVAL);
	assert_int_equal(sp_cli_access_parse_key("", k, &len), -EINVAL);
}

static void test_put_lookup_forget(void **state)
{
	uint8_t a[32], b[32], ka[32], kb[16], got[SP_CLI_ACCESS_KEY_MAX];
	size_t len = 0;
	unsigned line = 0;
	struct stat st;

	(void)state;
	memset(a, 0x11, sizeof(a));
	memset(b, 0x22, sizeof(b));
	memset(ka, 0xa1, sizeof(ka));
	memset(kb, 0xb2, sizeof(kb));
	/* No file: nothing known. */
	assert_int_equal(sp_cli_access_lookup(path, a, got, &len, &line), 0);
	assert_int_equal(sp_cli_access_put(path, a, ka, sizeof(ka), &line), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(sp_cli_access_put(path, b, kb, sizeof(kb), &line), 0);
	assert_int_equal(sp_cli_access_lookup(path, a, got, &len, &line), 1);
	assert_int_equal(len, 32);
	assert_memory_equal(got, ka, 32);
	assert_int_equal(sp_cli_access_lookup(path, b, got, &len, &line), 1);
	assert_int_equal(len, 16);
	assert_memory_equal(got, kb, 16);

	/* A rotated key replaces the line; the other contact stays. */
	memset(ka, 0xa2, sizeof(ka));
	assert_int_equal(sp_cli_access_put(path, a, ka, 16, &line), 0);
	assert_int_equal(sp_cli_access_lookup(path, a, got, &len, &line), 1);
	assert_int_equal(len, 16);
	assert_memory_equal(got, ka, 16);
	assert_int_equal(sp_cli_access_lookup(path, b, got, &len, &line), 1);
	assert_non_null(strstr(slurp(), "2222"));

	/* Forgotten: gone, the other kept. */
	assert_int_equal(sp_cli_access_put(path, a, NULL, 0, &line), 0);
	assert_int_equal(sp_cli_access_lookup(path, a, got, &len, &line), 0);
	assert_int_equal(sp_cli_access_lookup(path, b, got, &len, &line), 1);
	assert_int_equal(sp_cli_access_put(path, a, ka, 5, &line), -EINVAL);
}

static void test_comments_kept_bad_lines_named(void **state)
{
	uint8_t a[32], ka[32], got[SP_CLI_ACCESS_KEY_MAX];
	size_t len = 0;
	unsigned line = 0;
	FILE *f;

	(void)state;
	memset(a, 0x33, sizeof(a));
	memset(ka, 0x44, sizeof(ka));
	assert_int_equal(sp_cli_access_put(path, a, ka, 32, &line), 0);
	f = fopen(path, "a");
	assert_non_null(f);
	fputs("# a comment\n\n", f);
	fclose(f);
	assert_int_equal(sp_cli_access_put(path, a, ka, 16, &line), 0);
	assert_non_null(strstr(slurp(), "# a comment\n"));
	assert_int_equal(sp_cli_access_lookup(path, a, got, &len, &line), 1);
	assert_int_equal(len, 16);

	/* A damaged line is an error naming it, for lookups and changes. */
	f = fopen(path, "a");
	assert_non_null(f);
	fputs("not a line\n", f);
	fclose(f);
	memset(a, 0x55, sizeof(a));
	line = 0;
	assert_int_equal(sp_cli_access_lookup(path, a, got, &len, &line), -EBADMSG);
	assert_int_equal(line, 4);
	line = 0;
	assert_int_equal(sp_cli_access_put(path, a, ka, 32, &line), -EBADMSG);
	assert_int_equal(line, 4);
	assert_non_null(strstr(slurp(), "not a line\n"));   /* unchanged */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_parse_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_lookup_forget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_comments_kept_bad_lines_named, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
