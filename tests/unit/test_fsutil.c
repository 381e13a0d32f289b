/* SPDX-License-Identifier: Apache-2.0 */
/* test_fsutil.c: write_all, atomic replace, mkdir -p, buffer growth. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sp_fsutil.h"

static void test_write_all(void **state)
{
	int p[2];
	char buf[8] = { 0 };

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(sp_fsutil_write_all(p[1], "abcdefg", 7), 0);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 7);
	assert_string_equal(buf, "abcdefg");
	close(p[0]);
	assert_int_equal(sp_fsutil_write_all(-1, "x", 1), -EBADF);
	close(p[1]);
}

static void test_replace(void **state)
{
	char root[] = "/tmp/sp_fsutil_XXXXXX", path[256], tmp[256], buf[16] = { 0 };
	struct stat st;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(root));
	snprintf(path, sizeof(path), "%s/store", root);
	snprintf(tmp, sizeof(tmp), "%s/store.tmp", root);
	assert_int_equal(sp_fsutil_replace(path, "first", 5, 0600), 0);
	/* A stale path.tmp of another mode (a crash mid-save) is taken over. */
	fd = open(tmp, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "stale bytes", 11), 11);
	close(fd);
	assert_int_equal(chmod(tmp, 0644), 0);
	assert_int_equal(sp_fsutil_replace(path, "second", 6, 0600), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 6);
	fd = open(path, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf)), 6);
	close(fd);
	assert_string_equal(buf, "second");
	assert_int_equal(stat(tmp, &st), -1);     /* renamed away */
	/* A missing directory: an error, nothing made. */
	snprintf(path, sizeof(path), "%s/none/store", root);
	assert_int_equal(sp_fsutil_replace(path, "x", 1, 0600), -ENOENT);
	/* A relative path: its directory is the current one. */
	assert_int_equal(chdir(root), 0);
	assert_int_equal(sp_fsutil_replace("rel", "r", 1, 0600), 0);
	assert_int_equal(stat("rel", &st), 0);
	assert_int_equal(chdir("/"), 0);
	snprintf(path, sizeof(path), "rm -rf '%s'", root);
	assert_int_equal(system(path), 0);
}

static void test_mkdir_p(void **state)
{
	char root[] = "/tmp/sp_fsutil_XXXXXX", path[256], file[256];
	struct stat st;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(root));
	snprintf(path, sizeof(path), "%s/a/b/c/", root);
	assert_int_equal(sp_fsutil_mkdir_p(path, 0755, 0700), 0);
	assert_int_equal(sp_fsutil_mkdir_p(path, 0755, 0700), 0); /* exists: fine */
	snprintf(path, sizeof(path), "%s/a/b/c", root);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/a", root);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0755 & ~umask(022));
	snprintf(file, sizeof(file), "%s/f", root);
	fd = open(file, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(sp_fsutil_mkdir_p(file, 0755, 0700), -ENOTDIR);
	snprintf(path, sizeof(path), "%s/f/x", root);
	assert_int_equal(sp_fsutil_mkdir_p(path, 0755, 0700), -ENOTDIR);
	unlink(file);
	snprintf(path, sizeof(path), "rm -rf '%s'", root);
	assert_int_equal(system(path), 0);
}

static void test_grow(void **state)
{
	size_t cap = 0;
	char *b = NULL, *n;

	(void)state;
	n = sp_fsutil_grow(b, &cap, 10, 16);
	assert_non_null(n);
	assert_int_equal(cap, 16);
	b = n;
	assert_ptr_equal(sp_fsutil_grow(b, &cap, 16, 16), b);
	n = sp_fsutil_grow(b, &cap, 100, 16);
	assert_non_null(n);
	assert_int_equal(cap, 128);
	b = n;
	assert_null(sp_fsutil_grow(b, &cap, SIZE_MAX, 16));
	assert_int_equal(cap, 128);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_all),
		cmocka_unit_test(test_replace),
		cmocka_unit_test(test_mkdir_p),
		cmocka_unit_test(test_grow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
