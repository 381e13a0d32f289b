/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_cli_pins.c: the CLI's known-brokers file (client/cli_pins.c), on real
 * files in a temporary directory.
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

#include "cli_pins.h"

static char dir[64], path[160], sub[128];

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/sp_test_cli_pins.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	/* Two levels that do not exist yet, like ~/.config/sealpost. */
	snprintf(sub, sizeof(sub), "%s/config", dir);
	snprintf(path, sizeof(path), "%s/config/sealpost/known_brokers", dir);
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

static void put(const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static void test_add_lookup(void **state)
{
	uint8_t k1[32], k2[32], got[32];
	unsigned line = 0;
	struct stat st;
	char d[160];

	(void)state;
	memset(k1, 0x11, 32);
	memset(k2, 0x22, 32);
	/* No file: nothing pinned. */
	assert_int_equal(sp_cli_pins_lookup(path, "h:1", got, &line), 0);
	assert_int_equal(sp_cli_pins_add(path, "h:1", k1), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(d, sizeof(d), "%s/sealpost", sub);
	assert_int_equal(stat(d, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(sp_cli_pins_add(path, "[::1]:7400", k2), 0);
	assert_int_equal(sp_cli_pins_lookup(path, "h:1", got, &line), 1);
	assert_memory_equal(got, k1, 32);
	assert_int_equal(line, 1);
	assert_int_equal(sp_cli_pins_lookup(path, "[::1]:7400", got, &line), 1);
	assert_memory_equal(got, k2, 32);
	assert_int_equal(line, 2);
	/* The address as given: another spelling is another entry. */
	assert_int_equal(sp_cli_pins_lookup(path, "h:01", got, &line), 0);
	assert_int_equal(sp_cli_pins_lookup(path, "h", got, &line), 0);
	/* Addresses that could not be read back are not written. */
	assert_int_equal(sp_cli_pins_add(path, "a b:1", k1), -EINVAL);
	assert_int_equal(sp_cli_pins_add(path, "#x:1", k1), -EINVAL);
	assert_int_equal(sp_cli_pins_add(path, "", k1), -EINVAL);
	/* /dev/null swallows entries. */
	assert_int_equal(sp_cli_pins_add("/dev/null", "h:1", k1), 0);
	assert_int_equal(sp_cli_pins_lookup("/dev/null", "h:1", got, &line), 0);
}

static void test_format(void **state)
{
	uint8_t got[32];
	unsigned line = 0;

	(void)state;
	put("# comment\n\nh:1 1111111111111111111111111111111111111111111111111111111111111111\n"
	    "h:1 2222222222222222222222222222222222222222222222222222222222222222\n");
	assert_int_equal(sp_cli_pins_lookup(path, "h:1", got, &line), 1);
	assert_int_equal(got[0], 0x11);          /* the first entry wins */
	assert_int_equal(line, 3);
	/* A damaged line is an error with its number, never skipped. */
	put("h:2 2222222222222222222222222222222222222222222222222222222222222222\ngarbage\n");
	assert_int_equal(sp_cli_pins_lookup(path, "h:1", got, &line), -EBADMSG);
	assert_int_equal(line, 2);
	put("h:1 22222222\n");
	assert_int_equal(sp_cli_pins_lookup(path, "h:1", got, &line), -EBADMSG);
	put("h:1 zz22222222222222222222222222222222222222222222222222222222222222\n");
	assert_int_equal(sp_cli_pins_lookup(path, "h:1", got, &line), -EBADMSG);
	put(" h:1 2222222222222222222222222222222222222222222222222222222222222222\n");
	assert_int_equal(sp_cli_pins_lookup(path, "h:1", got, &line), -EBADMSG);
	/* A last line without a newline is read. */
	put("h:1 3333333333333333333333333333333333333333333333333333333333333333");
	assert_int_equal(sp_cli_pins_lookup(path, "h:1", got, &line), 1);
	assert_int_equal(got[0], 0x33);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_lookup),
		cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
