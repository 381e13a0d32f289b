/* SPDX-License-Identifier: Apache-2.0 */
/* support_core.c: cores, data files and byte searches (support_core.h). */
#include "support_core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const gcore_paths[] = { "/usr/bin/gcore", "/usr/local/bin/gcore" };

const char *sp_it_gcore_path(void)
{
	for (size_t i = 0; i < sizeof(gcore_paths) / sizeof(gcore_paths[0]); i++)
		if (access(gcore_paths[i], X_OK) == 0)
			return gcore_paths[i];
	return NULL;
}

int sp_it_gcore(const struct sp_it_broker *b, const char *prefix, char *path, size_t cap,
		char *out, size_t out_cap)
{
	const char *gcore = sp_it_gcore_path();
	char pid[16];
	struct stat st;
	int rc;

	if (out_cap)
		out[0] = '\0';
	if (!gcore)
		return -ENOENT;
	snprintf(pid, sizeof(pid), "%d", (int)b->pid);
	snprintf(path, cap, "%s.%d", prefix, (int)b->pid);
	{
		char *argv[] = { (char *)gcore, "-o", (char *)prefix, pid, NULL };

		rc = sp_it_run(argv, NULL, out, out_cap, 120);
	}
	if (rc != 0 || stat(path, &st) != 0 || st.st_size == 0) {
		unlink(path);
		return -EPERM;
	}
	return 0;
}

uint8_t *sp_it_read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	while (buf && got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (buf)
		*len = got;
	return buf;
}

unsigned sp_it_count(const uint8_t *hay, size_t len, const uint8_t *needle, size_t n)
{
	unsigned hits = 0;
	const uint8_t *p = hay, *end = hay + len;

	while (n && p < end && (p = memmem(p, (size_t)(end - p), needle, n))) {
		hits++;
		p++;
	}
	return hits;
}

int sp_it_each_file(const char *dir, const char *skip,
		    void (*fn)(void *ctx, const char *path, const uint8_t *bytes, size_t len),
		    void *ctx)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char path[1024];
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (skip && !strcmp(e->d_name, skip))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			(void)sp_it_each_file(path, skip, fn, ctx);
		} else if (S_ISREG(st.st_mode)) {
			size_t len = 0;
			uint8_t *b = sp_it_read_file(path, &len);

			if (b) {
				fn(ctx, path, b, len);
				free(b);
			}
		}
	}
	closedir(d);
	return 0;
}

long sp_it_wait_open_conns(const struct sp_it_broker *b, long want, int wait_ms)
{
	const char *name = "\nsealpost_connections_open ";
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 20 * 1000000L };
	long v = -1;

	for (int w = 0; w <= wait_ms; w += 20) {
		char *body = NULL, *p;

		v = -1;
		if (sp_it_http_get(b->metrics_port, "/metrics", &body) == 200 && body &&
		    (p = strstr(body, name)))
			v = strtol(p + strlen(name), NULL, 10);
		free(body);
		if (v == want)
			break;
		nanosleep(&ts, NULL);
	}
	return v;
}
