/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_cli_conf.c: the CLI's config file and file locations
 * (client/cli_conf.c), on real files in a temporary directory.
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

#include "cli_conf.h"

static char dir[64], path[128];

static void put(const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/sp_test_cli_conf.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/cli.conf", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

static void test_path(void **state)
{
	char out[256];
	int from_env;

	(void)state;
	setenv("HOME", "/home/u", 1);
	unsetenv("XDG_CONFIG_HOME");
	unsetenv("SP_TEST_VAR");
	assert_int_equal(sp_cli_conf_path(out, sizeof(out), "SP_TEST_VAR", "cli.conf", &from_env), 0);
	assert_string_equal(out, "/home/u/.config/sealpost/cli.conf");
	assert_int_equal(from_env, 0);
	setenv("XDG_CONFIG_HOME", "/xdg", 1);
	assert_int_equal(sp_cli_conf_path(out, sizeof(out), "SP_TEST_VAR", "known_brokers", NULL), 0);
	assert_string_equal(out, "/xdg/sealpost/known_brokers");
	setenv("SP_TEST_VAR", "", 1);     /* empty: unset */
	assert_int_equal(sp_cli_conf_path(out, sizeof(out), "SP_TEST_VAR", "x", &from_env), 0);
	assert_string_equal(out, "/xdg/sealpost/x");
	setenv("SP_TEST_VAR", "/my/file", 1);
	assert_int_equal(sp_cli_conf_path(out, sizeof(out), "SP_TEST_VAR", "x", &from_env), 0);
	assert_string_equal(out, "/my/file");
	assert_int_equal(from_env, 1);
	assert_int_equal(sp_cli_conf_path(out, 4, "SP_TEST_VAR", "x", NULL), -ENAMETOOLONG);
	unsetenv("SP_TEST_VAR");
	unsetenv("XDG_CONFIG_HOME");
	unsetenv("HOME");
	assert_int_equal(sp_cli_conf_path(out, sizeof(out), "SP_TEST_VAR", "x", NULL), -ENOENT);
}

static void test_load(void **state)
{
	struct sp_cli_conf c;
	unsigned line = 0;

	(void)state;
	setenv("HOME", "/home/u", 1);
	put("# comment\n\n  server =  h:1  \r\nserver-key=ab\nserver-key-file = ~/s.pub\n"
	    "key = ~/d.key\nserver = h:2\nkey = ~x\n");
	assert_int_equal(sp_cli_conf_load(path, 1, &c, &line), 0);
	assert_string_equal(c.server, "h:2");          /* a later line wins */
	assert_string_equal(c.server_key, "ab");
	assert_string_equal(c.server_key_file, "/home/u/s.pub");
	assert_string_equal(c.key, "~x");              /* only ~/ is expanded */
	sp_cli_conf_free(&c);
	assert_null(c.server);

	put("server = h:1\n");
	assert_int_equal(sp_cli_conf_load(path, 1, &c, &line), 0);
	assert_null(c.key);
	sp_cli_conf_free(&c);

	/* Errors carry the line. */
	put("server = h:1\nsrever = x\n");
	assert_int_equal(sp_cli_conf_load(path, 1, &c, &line), -EBADMSG);
	assert_int_equal(line, 2);
	assert_null(c.server);
	put("\n\nno equals sign\n");
	assert_int_equal(sp_cli_conf_load(path, 1, &c, &line), -EBADMSG);
	assert_int_equal(line, 3);
	put("key =\n");
	assert_int_equal(sp_cli_conf_load(path, 1, &c, &line), -EBADMSG);
	assert_int_equal(line, 1);
	{
		char *big = malloc(SP_CLI_CONF_VALUE_MAX + 200);

		assert_non_null(big);
		memset(big, 'x', SP_CLI_CONF_VALUE_MAX + 198);
		memcpy(big, "key = ", 6);
		big[SP_CLI_CONF_VALUE_MAX + 198] = '\n';
		big[SP_CLI_CONF_VALUE_MAX + 199] = '\0';
		put(big);
		free(big);
		assert_int_equal(sp_cli_conf_load(path, 1, &c, &line), -EBADMSG);
	}

	/* Missing: empty unless required. */
	unlink(path);
	assert_int_equal(sp_cli_conf_load(path, 0, &c, &line), 0);
	assert_null(c.server);
	assert_int_equal(sp_cli_conf_load(path, 1, &c, &line), -ENOENT);
}

static void test_read_key(void **state)
{
	static const char hex[] =
		"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	uint8_t key[32];

	(void)state;
	put(hex);
	assert_int_equal(sp_cli_conf_read_key(path, key), 0);
	assert_int_equal(key[1], 0x11);
	assert_int_equal(key[31], 0xff);
	put("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
	assert_int_equal(sp_cli_conf_read_key(path, key), 0);
	put("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n\n");
	assert_int_equal(sp_cli_conf_read_key(path, key), -EBADMSG);
	put("00112233");
	assert_int_equal(sp_cli_conf_read_key(path, key), -EBADMSG);
	put("zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
	assert_int_equal(sp_cli_conf_read_key(path, key), -EBADMSG);
	unlink(path);
	assert_int_equal(sp_cli_conf_read_key(path, key), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_read_key),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
