/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_pins.c: the known-brokers file (see cli_pins.h).
 */
#include "cli_pins.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sealpost.h"

enum { LINE_MAX_LEN = 1024 };   /* an address is at most a host name and a port */

int sp_cli_pins_lookup(const char *path, const char *server, uint8_t key[32], unsigned *line)
{
	char buf[LINE_MAX_LEN];
	unsigned no = 0;
	int ret = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(buf, sizeof(buf), f)) {
		char *sp, *hex;
		size_t len = strlen(buf);

		no++;
		if (len && buf[len - 1] == '\n')
			buf[--len] = '\0';
		else if (!feof(f)) {
			ret = -EBADMSG;
			break;
		}
		if (!len || buf[0] == '#')
			continue;
		/* Exactly "ADDRESS HEX": a line we cannot read is an error, not
		 * skipped, or a damaged entry would quietly become a first contact. */
		sp = strchr(buf, ' ');
		if (!sp || sp == buf) {
			ret = -EBADMSG;
			break;
		}
		*sp = '\0';
		hex = sp + 1;
		if (strlen(hex) != SEALPOST_KEY_HEX_LEN) {
			ret = -EBADMSG;
			break;
		}
		if (strcmp(buf, server))
			continue;
		if (sealpost_key_from_hex(key, hex) < 0) {
			ret = -EBADMSG;
			break;
		}
		ret = 1;
		break;
	}
	if (ret == 0 && ferror(f))
		ret = -EIO;
	fclose(f);
	if (ret && line)
		*line = no;
	return ret;
}

/* Creates the directory holding path, if missing (one level: its parent
 * too for ~/.config/sealpost when ~/.config does not exist yet). */
static int make_dir_of(const char *path)
{
	char dir[LINE_MAX_LEN];
	char *slash;
	int tries;

	if (strlen(path) >= sizeof(dir))
		return -ENAMETOOLONG;
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (tries = 0; tries < 2; tries++) {
		char *up;

		if (mkdir(dir, 0700) == 0 || errno == EEXIST)
			return 0;
		if (errno != ENOENT)
			return -errno;
		/* The parent is missing too (~/.config): make it, then retry. */
		up = strrchr(dir, '/');
		if (!up || up == dir)
			return -ENOENT;
		*up = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -errno;
		*up = '/';
	}
	return -ENOENT;
}

int sp_cli_pins_add(const char *path, const char *server, const uint8_t key[32])
{
	char line[LINE_MAX_LEN], hex[SEALPOST_KEY_HEX_LEN + 1];
	int fd, n, ret;
	ssize_t w;

	if (!*server || strpbrk(server, " \t\r\n#"))
		return -EINVAL;
	sealpost_key_to_hex(key, hex);
	n = snprintf(line, sizeof(line), "%s %s\n", server, hex);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -ENAMETOOLONG;
	ret = make_dir_of(path);
	if (ret)
		return ret;
	/* Appending, never rewriting: the file may be /dev/null (no pinning), and
	 * a concurrent CLI's entry is never lost. One write(2) per entry. */
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd < 0)
		return -errno;
	w = write(fd, line, (size_t)n);
	ret = w == n ? 0 : (w < 0 ? -errno : -EIO);
	if (close(fd) < 0 && !ret)
		ret = -errno;
	return ret;
}
