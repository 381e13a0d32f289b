/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_keyfile.c: key files in a real temporary directory, hex keys.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <sodium.h>

#include "sp_keyfile.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/sp_keyfile.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", dir, name);
}

static void put_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static size_t get_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, cap);
	close(fd);
	assert_true(n >= 0);
	return (size_t)n;
}

static void test_hex(void **state)
{
	uint8_t key[SP_KEY_LEN], back[SP_KEY_LEN];
	char hex[SP_KEY_HEX_LEN + 1], bad[SP_KEY_HEX_LEN + 2];

	(void)state;
	for (unsigned i = 0; i < SP_KEY_LEN; i++)
		key[i] = (uint8_t)(i * 0x11 + 0x0f);
	sp_key_format_hex(hex, key);
	assert_int_equal(strlen(hex), SP_KEY_HEX_LEN);
	assert_memory_equal(hex, "0f203142", 8);
	for (unsigned i = 0; i < SP_KEY_HEX_LEN; i++)
		assert_true((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'));
	assert_int_equal(sp_key_parse_hex(back, hex), 0);
	assert_memory_equal(back, key, SP_KEY_LEN);

	/* upper case is accepted */
	for (unsigned i = 0; i < SP_KEY_HEX_LEN; i++)
		bad[i] = (char)(hex[i] >= 'a' ? hex[i] - 'a' + 'A' : hex[i]);
	bad[SP_KEY_HEX_LEN] = '\0';
	memset(back, 0, sizeof(back));
	assert_int_equal(sp_key_parse_hex(back, bad), 0);
	assert_memory_equal(back, key, SP_KEY_LEN);

	/* too short, too long, trailing newline or space, non-hex anywhere */
	memcpy(bad, hex, SP_KEY_HEX_LEN + 1);
	bad[SP_KEY_HEX_LEN - 1] = '\0';
	assert_int_equal(sp_key_parse_hex(back, bad), -EINVAL);
	memcpy(bad, hex, SP_KEY_HEX_LEN);
	bad[SP_KEY_HEX_LEN] = '0';
	bad[SP_KEY_HEX_LEN + 1] = '\0';
	assert_int_equal(sp_key_parse_hex(back, bad), -EINVAL);
	bad[SP_KEY_HEX_LEN] = '\n';
	assert_int_equal(sp_key_parse_hex(back, bad), -EINVAL);
	bad[SP_KEY_HEX_LEN] = ' ';
	assert_int_equal(sp_key_parse_hex(back, bad), -EINVAL);
	assert_int_equal(sp_key_parse_hex(back, ""), -EINVAL);
	static const char junk[] = "gxyz:- \n";
	for (unsigned pos = 0; pos < SP_KEY_HEX_LEN; pos += 7) {
		for (unsigned j = 0; j < sizeof(junk) - 1; j++) {
			memcpy(bad, hex, SP_KEY_HEX_LEN + 1);
			bad[pos] = junk[j];
			memset(back, 0xaa, sizeof(back));
			assert_int_equal(sp_key_parse_hex(back, bad), -EINVAL);
			/* nothing half-parsed is left behind */
			for (unsigned k = 0; k < SP_KEY_LEN; k++)
				assert_int_equal(back[k], 0);
		}
	}
}

static void test_private_round_trip(void **state)
{
	char path[128], buf[256], hex[SP_KEY_HEX_LEN + 1];
	uint8_t key[SP_KEY_LEN], back[SP_KEY_LEN];
	struct stat st;
	mode_t old;

	(void)state;
	path_of(path, sizeof(path), "device.key");
	randombytes_buf(key, sizeof(key));
	/* a permissive umask must not loosen the mode */
	old = umask(0);
	assert_int_equal(sp_keyfile_write_private(path, key), 0);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	/* exact content: 64 lowercase hex and a newline */
	sp_key_format_hex(hex, key);
	assert_int_equal(get_file(path, buf, sizeof(buf)), SP_KEY_HEX_LEN + 1);
	assert_memory_equal(buf, hex, SP_KEY_HEX_LEN);
	assert_int_equal(buf[SP_KEY_HEX_LEN], '\n');

	assert_int_equal(sp_keyfile_read_private(path, back), 0);
	assert_memory_equal(back, key, SP_KEY_LEN);

	/* never overwritten */
	uint8_t other[SP_KEY_LEN];

	randombytes_buf(other, sizeof(other));
	assert_int_equal(sp_keyfile_write_private(path, other), -EEXIST);
	assert_int_equal(sp_keyfile_read_private(path, back), 0);
	assert_memory_equal(back, key, SP_KEY_LEN);

	/* readable by group or others: refused */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(sp_keyfile_read_private(path, back), -EACCES);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(sp_keyfile_read_private(path, back), -EACCES);
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(sp_keyfile_read_private(path, back), -EACCES);
	/* writable by group or others: it may have been replaced, refused too */
	assert_int_equal(chmod(path, 0620), 0);
	assert_int_equal(sp_keyfile_read_private(path, back), -EACCES);
	assert_int_equal(chmod(path, 0602), 0);
	assert_int_equal(sp_keyfile_read_private(path, back), -EACCES);
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(sp_keyfile_read_private(path, back), 0);
	/* the public reader does not care about the mode */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(sp_keyfile_read_public(path, back), 0);
	assert_memory_equal(back, key, SP_KEY_LEN);

	path_of(path, sizeof(path), "absent.key");
	assert_int_equal(sp_keyfile_read_private(path, back), -ENOENT);
	path_of(path, sizeof(path), "no/such/dir.key");
	assert_int_equal(sp_keyfile_write_private(path, key), -ENOENT);
}

static void test_symlinks_refused(void **state)
{
	char path[128], target[128];
	uint8_t key[SP_KEY_LEN], back[SP_KEY_LEN];
	struct stat st;

	(void)state;
	randombytes_buf(key, sizeof(key));
	path_of(target, sizeof(target), "target.key");
	path_of(path, sizeof(path), "link.key");
	assert_int_equal(sp_keyfile_write_private(target, key), 0);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(sp_keyfile_read_private(path, back), -ELOOP);
	assert_int_equal(sp_keyfile_read_public(path, back), -ELOOP);
	/* a dangling link is not followed to create a file either */
	path_of(target, sizeof(target), "dangling-target");
	path_of(path, sizeof(path), "dangling.key");
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(sp_keyfile_write_private(path, key), -EEXIST);
	assert_int_equal(lstat(target, &st), -1);
}

static void test_public_round_trip(void **state)
{
	char path[128], buf[256], hex[SP_KEY_HEX_LEN + 1];
	uint8_t key[SP_KEY_LEN], back[SP_KEY_LEN];
	struct stat st;
	mode_t old;

	(void)state;
	path_of(path, sizeof(path), "server.pub");
	randombytes_buf(key, sizeof(key));
	old = umask(077);
	assert_int_equal(sp_keyfile_write_public(path, key), 0);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	sp_key_format_hex(hex, key);
	assert_int_equal(get_file(path, buf, sizeof(buf)), SP_KEY_HEX_LEN + 1);
	assert_memory_equal(buf, hex, SP_KEY_HEX_LEN);
	assert_int_equal(buf[SP_KEY_HEX_LEN], '\n');
	assert_int_equal(sp_keyfile_read_public(path, back), 0);
	assert_memory_equal(back, key, SP_KEY_LEN);

	/* replaced, not refused; no temporary file left behind */
	randombytes_buf(key, sizeof(key));
	assert_int_equal(sp_keyfile_write_public(path, key), 0);
	assert_int_equal(sp_keyfile_read_public(path, back), 0);
	assert_memory_equal(back, key, SP_KEY_LEN);
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | grep -c tmp) -eq 0", dir);
		assert_int_equal(system(cmd), 0);
	}
	/* a symlink at the path is replaced, its target untouched */
	char target[128], link[128];
	uint8_t tkey[SP_KEY_LEN];

	path_of(target, sizeof(target), "pub-target");
	path_of(link, sizeof(link), "pub-link");
	randombytes_buf(tkey, sizeof(tkey));
	assert_int_equal(sp_keyfile_write_public(target, tkey), 0);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(sp_keyfile_write_public(link, key), 0);
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(sp_keyfile_read_public(target, back), 0);
	assert_memory_equal(back, tkey, SP_KEY_LEN);
}

static void test_bad_content(void **state)
{
	char path[128], hex[SP_KEY_HEX_LEN + 1], buf[256];
	uint8_t key[SP_KEY_LEN], back[SP_KEY_LEN];

	(void)state;
	path_of(path, sizeof(path), "content.key");
	randombytes_buf(key, sizeof(key));
	sp_key_format_hex(hex, key);

	/* accepted: hex + "\n"; hex with no newline; upper case */
	snprintf(buf, sizeof(buf), "%s\n", hex);
	put_file(path, buf, SP_KEY_HEX_LEN + 1, 0600);
	assert_int_equal(sp_keyfile_read_private(path, back), 0);
	assert_memory_equal(back, key, SP_KEY_LEN);
	put_file(path, hex, SP_KEY_HEX_LEN, 0600);
	memset(back, 0, sizeof(back));
	assert_int_equal(sp_keyfile_read_private(path, back), 0);
	assert_memory_equal(back, key, SP_KEY_LEN);
	for (unsigned i = 0; i < SP_KEY_HEX_LEN; i++)
		buf[i] = (char)(hex[i] >= 'a' ? hex[i] - 'a' + 'A' : hex[i]);
	buf[SP_KEY_HEX_LEN] = '\n';
	put_file(path, buf, SP_KEY_HEX_LEN + 1, 0600);
	assert_int_equal(sp_keyfile_read_public(path, back), 0);
	assert_memory_equal(back, key, SP_KEY_LEN);

	/* refused */
	static const char *const suffixes[] = { "\n\n", "\r\n", " \n", "0\n", "00", "\nx", " " };
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		size_t n = (size_t)snprintf(buf, sizeof(buf), "%s%s", hex, suffixes[i]);

		put_file(path, buf, n, 0600);
		assert_int_equal(sp_keyfile_read_private(path, back), -EBADMSG);
		assert_int_equal(sp_keyfile_read_public(path, back), -EBADMSG);
	}
	/* short: 0, 1, 62 and 63 digits (with newline) */
	static const size_t shorts[] = { 0, 1, 62, 63 };
	for (size_t i = 0; i < sizeof(shorts) / sizeof(shorts[0]); i++) {
		memcpy(buf, hex, shorts[i]);
		buf[shorts[i]] = '\n';
		put_file(path, buf, shorts[i] + 1, 0600);
		assert_int_equal(sp_keyfile_read_private(path, back), -EBADMSG);
		put_file(path, buf, shorts[i], 0600);
		assert_int_equal(sp_keyfile_read_private(path, back), -EBADMSG);
	}
	/* non-hex digit, leading space, NUL inside */
	memcpy(buf, hex, SP_KEY_HEX_LEN);
	buf[SP_KEY_HEX_LEN] = '\n';
	buf[10] = 'g';
	put_file(path, buf, SP_KEY_HEX_LEN + 1, 0600);
	assert_int_equal(sp_keyfile_read_private(path, back), -EBADMSG);
	buf[10] = '\0';
	put_file(path, buf, SP_KEY_HEX_LEN + 1, 0600);
	assert_int_equal(sp_keyfile_read_private(path, back), -EBADMSG);
	snprintf(buf, sizeof(buf), " %s", hex);
	put_file(path, buf, SP_KEY_HEX_LEN + 1, 0600);
	assert_int_equal(sp_keyfile_read_private(path, back), -EBADMSG);
	/* a long file */
	memset(buf, 'a', sizeof(buf));
	put_file(path, buf, sizeof(buf), 0600);
	assert_int_equal(sp_keyfile_read_private(path, back), -EBADMSG);
	/* a directory is not a key file */
	assert_int_equal(sp_keyfile_read_public(dir, back), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex),
		cmocka_unit_test_setup_teardown(test_private_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlinks_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_public_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_content, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
