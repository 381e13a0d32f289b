/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_conf.c: the CLI's config file and file locations (see cli_conf.h).
 */
#include "cli_conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sealpost.h"

int sp_cli_conf_path(char *out, size_t cap, const char *env_name, const char *leaf, int *from_env)
{
	const char *v = env_name ? getenv(env_name) : NULL;
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	int n;

	if (from_env)
		*from_env = 0;
	if (v && *v) {
		if (from_env)
			*from_env = 1;
		n = snprintf(out, cap, "%s", v);
	} else if (xdg && *xdg) {
		n = snprintf(out, cap, "%s/sealpost/%s", xdg, leaf);
	} else if (home && *home) {
		n = snprintf(out, cap, "%s/.config/sealpost/%s", home, leaf);
	} else {
		return -ENOENT;
	}
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* "~/x" to "$HOME/x"; anything else copied. NULL on allocation failure. */
static char *expand(const char *v)
{
	const char *home = getenv("HOME");
	char *out;
	size_t n;

	if (strncmp(v, "~/", 2) || !home || !*home)
		return strdup(v);
	n = strlen(home) + strlen(v);
	out = malloc(n);
	if (out)
		snprintf(out, n, "%s/%s", home, v + 2);
	return out;
}

int sp_cli_conf_load(const char *path, int required, struct sp_cli_conf *c, unsigned *bad_line)
{
	char line[SP_CLI_CONF_VALUE_MAX + 64];
	unsigned no = 0;
	FILE *f;
	int ret = 0;

	memset(c, 0, sizeof(*c));
	f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT && !required)
			return 0;
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		char *name, *val, *eq, **slot;
		size_t len = strlen(line);

		no++;
		if (len == sizeof(line) - 1 && line[len - 1] != '\n' && !feof(f)) {
			ret = -EBADMSG;     /* longer than any value we take */
			break;
		}
		name = trim(line);
		if (!*name || *name == '#')
			continue;
		eq = strchr(name, '=');
		if (!eq) {
			ret = -EBADMSG;
			break;
		}
		*eq = '\0';
		val = trim(eq + 1);
		name = trim(name);
		if (!strcmp(name, "server"))
			slot = &c->server;
		else if (!strcmp(name, "server-key"))
			slot = &c->server_key;
		else if (!strcmp(name, "server-key-file"))
			slot = &c->server_key_file;
		else if (!strcmp(name, "key"))
			slot = &c->key;
		else {
			ret = -EBADMSG;
			break;
		}
		if (!*val) {
			ret = -EBADMSG;
			break;
		}
		free(*slot);
		*slot = expand(val);
		if (!*slot) {
			ret = -ENOMEM;
			break;
		}
	}
	if (!ret && ferror(f))
		ret = -EIO;
	fclose(f);
	if (ret) {
		if (bad_line)
			*bad_line = no;
		sp_cli_conf_free(c);
	}
	return ret;
}

void sp_cli_conf_free(struct sp_cli_conf *c)
{
	free(c->server);
	free(c->server_key);
	free(c->server_key_file);
	free(c->key);
	memset(c, 0, sizeof(*c));
}

int sp_cli_conf_read_key(const char *path, uint8_t key[32])
{
	char buf[SEALPOST_KEY_HEX_LEN + 3];
	ssize_t n;
	int fd, ret = 0;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		ret = -errno;
	close(fd);
	if (ret)
		return ret;
	if (n == SEALPOST_KEY_HEX_LEN + 1 && buf[SEALPOST_KEY_HEX_LEN] == '\n')
		n--;
	if (n != SEALPOST_KEY_HEX_LEN)
		return -EBADMSG;
	buf[n] = '\0';
	return sealpost_key_from_hex(key, buf) < 0 ? -EBADMSG : 0;
}
