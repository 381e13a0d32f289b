/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_fsutil.c: write_all, mkdir -p, buffer growth.
 */
#include "sp_fsutil.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sp_fsutil_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EPIPE;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* One component: made, or already there as a directory. */
static int make_one(const char *path, mode_t mode)
{
	struct stat st;

	if (mkdir(path, mode) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int sp_fsutil_mkdir_p(const char *path, mode_t parent_mode, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t n;
	int ret;

	if (!path || !*path)
		return -EINVAL;
	n = strlen(path);
	if (n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	while (n > 1 && tmp[n - 1] == '/') /* "a/b/" names a/b */
		tmp[--n] = '\0';
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/' || p[-1] == '/')
			continue;
		*p = '\0';
		ret = make_one(tmp, parent_mode);
		*p = '/';
		if (ret < 0)
			return ret;
	}
	return make_one(tmp, mode);
}

void *sp_fsutil_grow(void *buf, size_t *cap, size_t need, size_t first)
{
	size_t ncap = *cap ? *cap : first ? first : 1;
	void *p;

	if (buf && need <= *cap)
		return buf;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	p = realloc(buf, ncap);
	if (!p)
		return NULL;
	*cap = ncap;
	return p;
}
