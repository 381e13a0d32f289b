/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_access.c: the CLI's contacts' access keys (cli_access.h).
 */
#include "cli_access.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "sealpost.h"

enum { LINE_MAX_LEN = 512 };

int sp_cli_access_parse_key(const char *hex, uint8_t key[SP_CLI_ACCESS_KEY_MAX], size_t *len)
{
	size_t n = strlen(hex), got = 0;
	const char *end = NULL;

	if (n != 32 && n != 64)
		return -EINVAL;
	if (sodium_hex2bin(key, SP_CLI_ACCESS_KEY_MAX, hex, n, NULL, &got, &end) != 0 ||
	    *end || got != n / 2) {
		sodium_memzero(key, SP_CLI_ACCESS_KEY_MAX);
		return -EINVAL;
	}
	*len = got;
	return 0;
}

/* One line (without its newline): 1 with contact and key, 0 for a blank or
 * comment line, -EBADMSG. */
static int parse_line(char *s, uint8_t contact[32], uint8_t key[SP_CLI_ACCESS_KEY_MAX],
		      size_t *len)
{
	char *sp;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s || *s == '#')
		return 0;
	sp = strchr(s, ' ');
	if (!sp)
		return -EBADMSG;
	*sp = '\0';
	if (sealpost_key_from_hex(contact, s) < 0) {
		*sp = ' ';
		return -EBADMSG;
	}
	*sp = ' ';
	return sp_cli_access_parse_key(sp + 1, key, len) < 0 ? -EBADMSG : 1;
}

static void chomp(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

int sp_cli_access_lookup(const char *path, const uint8_t contact[32],
			 uint8_t key[SP_CLI_ACCESS_KEY_MAX], size_t *len, unsigned *line)
{
	char buf[LINE_MAX_LEN];
	uint8_t who[32];
	unsigned no = 0;
	FILE *f = fopen(path, "r");
	int ret = 0, r;

	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(buf, sizeof(buf), f)) {
		no++;
		chomp(buf);
		r = parse_line(buf, who, key, len);
		if (r < 0) {
			ret = r;
			break;
		}
		if (r == 1 && memcmp(who, contact, sizeof(who)) == 0) {
			ret = 1;
			break;
		}
	}
	if (ret != 1)
		sodium_memzero(key, SP_CLI_ACCESS_KEY_MAX);
	sodium_memzero(buf, sizeof(buf));
	if (ret == 0 && ferror(f))
		ret = -EIO;
	fclose(f);
	if (ret < 0 && line)
		*line = no;
	return ret;
}

/* The directory holding path, made 0700 if missing, and its parent too
 * (~/.config/sealpost when ~/.config does not exist yet). */
static int make_dir_of(const char *path)
{
	char dir[LINE_MAX_LEN];
	char *slash, *up;

	if (strlen(path) >= sizeof(dir))
		return -ENAMETOOLONG;
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0700) == 0 || errno == EEXIST)
		return 0;
	if (errno != ENOENT)
		return -errno;
	up = strrchr(dir, '/');
	if (!up || up == dir)
		return -ENOENT;
	*up = '\0';
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	*up = '/';
	return mkdir(dir, 0700) == 0 || errno == EEXIST ? 0 : -errno;
}

int sp_cli_access_put(const char *path, const uint8_t contact[32], const uint8_t *key, size_t len,
		      unsigned *line)
{
	char buf[LINE_MAX_LEN], copy[LINE_MAX_LEN], tmp[LINE_MAX_LEN + 16];
	char chex[SEALPOST_KEY_HEX_LEN + 1], khex[2 * SP_CLI_ACCESS_KEY_MAX + 1];
	uint8_t who[32], k[SP_CLI_ACCESS_KEY_MAX];
	size_t klen;
	unsigned no = 0;
	FILE *in, *out;
	int fd, ret = 0, r;

	if (len && len != 16 && len != 32)
		return -EINVAL;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	ret = make_dir_of(path);
	if (ret)
		return ret;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	out = fdopen(fd, "w");
	if (!out) {
		ret = -errno;
		close(fd);
		unlink(tmp);
		return ret;
	}
	in = fopen(path, "r");
	if (!in && errno != ENOENT) {
		ret = -errno;
		goto out;
	}
	/* Every other line as it was; this contact's line dropped (and
	 * written anew at the end). */
	while (in && fgets(buf, sizeof(buf), in)) {
		no++;
		chomp(buf);
		memcpy(copy, buf, sizeof(copy));
		r = parse_line(copy, who, k, &klen);
		if (r < 0) {
			ret = r;
			if (line)
				*line = no;
			goto out;
		}
		if (r == 1 && memcmp(who, contact, sizeof(who)) == 0)
			continue;
		fprintf(out, "%s\n", buf);
	}
	if (in && ferror(in)) {
		ret = -EIO;
		goto out;
	}
	if (len) {
		sealpost_key_to_hex(contact, chex);
		sodium_bin2hex(khex, sizeof(khex), key, len);
		fprintf(out, "%s %s\n", chex, khex);
	}
	if (fflush(out) != 0 || fsync(fileno(out)) != 0)
		ret = -errno;
out:
	if (in)
		fclose(in);
	if (fclose(out) != 0 && !ret)
		ret = -errno;
	if (ret == 0 && rename(tmp, path) != 0)
		ret = -errno;
	if (ret)
		unlink(tmp);
	sodium_memzero(buf, sizeof(buf));
	sodium_memzero(copy, sizeof(copy));
	sodium_memzero(khex, sizeof(khex));
	sodium_memzero(k, sizeof(k));
	return ret;
}
