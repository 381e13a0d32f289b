/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_fsutil.c: write_all, atomic replace, mkdir -p, buffer growth.
 */
#include "sp_fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
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

/* fsync of the directory holding path (its entries: a rename in it). */
static int sync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	char *dir;
	int fd, r = 0;

	if (slash && n == 0)
		n = 1;              /* "/file": the root */
	dir = malloc(n + 2);
	if (!dir)
		return -ENOMEM;
	if (slash)
		memcpy(dir, path, n);
	else
		dir[n++] = '.';
	dir[n] = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int sp_fsutil_replace(const char *path, const void *buf, size_t len, mode_t mode)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 5);
	int fd, r = 0;

	if (!tmp)
		return -ENOMEM;
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".tmp", 5);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		r = -errno;
		free(tmp);
		return r;
	}
	/* An older path.tmp may have had another mode: open keeps it. */
	if (fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0)
		r = sp_fsutil_write_all(fd, buf, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	free(tmp);
	return r == 0 ? sync_parent(path) : r;
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
