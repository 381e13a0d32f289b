/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_config.c: sealpostd's configuration parsers (broker/sp_config.c):
 * the INI file (whoever can write the config file, or a config-management
 * tool gone wrong) and the command line.
 *
 * Input: byte 0 selects the parser (bit 0 clear: the rest is the file;
 * set: the rest is argv, split at NUL bytes). Oracle: nothing crashes or
 * leaks; a configuration that parses prints (--check-config's output) as a
 * file that parses again to the same printed configuration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sp_config.h"

enum { ARGS_MAX = 64 };

static int memfd = -1;
static char memfd_path[64];

static void check(int ok)
{
	if (!ok)
		abort();
}

/* The file's bytes become the memfd's whole content. */
static void set_file(const uint8_t *p, size_t n)
{
	if (memfd < 0) {
		memfd = memfd_create("fuzz_config", MFD_CLOEXEC);
		check(memfd >= 0);
		snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
	}
	check(ftruncate(memfd, 0) == 0);
	check(pwrite(memfd, p, n, 0) == (ssize_t)n);
}

/* --check-config's text for c into *text (malloc'd), *len bytes. */
static void printed(const struct sp_config *c, char **text, size_t *len)
{
	FILE *f = open_memstream(text, len);

	check(f != NULL);
	sp_config_print(f, c);
	check(fclose(f) == 0);
}

/* The printed configuration is a config file that means the same. */
static void round_trip(const struct sp_config *c)
{
	struct sp_config *again = malloc(sizeof(*again));
	char err[512], *a = NULL, *b = NULL, *nl;
	size_t alen = 0, blen = 0;

	check(again != NULL);
	printed(c, &a, &alen);
	/* The first line names the file it came from: not a setting. */
	nl = strchr(a, '\n');
	check(nl != NULL);
	/* A config file line holds SP_CONFIG_FILE_LINE_MAX characters (libinih's
	 * fixed buffer), so a value close to that (a path from a flag, or one
	 * that filled its file line without the spaces around '=') prints as a
	 * line no file can hold: such a setting can only be given as a flag,
	 * which docs/OPERATIONS.md says. Round-trip what a file can say. */
	for (const char *l = nl + 1; *l;) {
		const char *e = strchr(l, '\n');
		size_t n = e ? (size_t)(e - l) : strlen(l);

		if (n > SP_CONFIG_FILE_LINE_MAX) {
			free(a);
			free(again);
			return;
		}
		l += n + (e != NULL);
	}
	set_file((const uint8_t *)nl + 1, alen - (size_t)(nl + 1 - a));
	sp_config_defaults(again);
	if (sp_config_parse_file(again, memfd_path, err, sizeof(err)) != 0) {
		fprintf(stderr, "printed config does not parse: %s\n%s", err, a);
		abort();
	}
	printed(again, &b, &blen);
	check(strcmp(strchr(a, '\n'), strchr(b, '\n')) == 0);
	free(a);
	free(b);
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_config *c;
	char err[512];
	int ret;

	if (size < 1 || size > 1 << 16)
		return 0;
	c = malloc(sizeof(*c));
	check(c != NULL);
	sp_config_defaults(c);
	if (!(data[0] & 1)) {
		set_file(data + 1, size - 1);
		ret = sp_config_parse_file(c, memfd_path, err, sizeof(err));
		check(ret <= 0);
	} else {
		char *copy = malloc(size);
		char *argv[ARGS_MAX + 1];
		int argc = 1;
		size_t start = 0;

		check(copy != NULL);
		memcpy(copy, data + 1, size - 1);
		copy[size - 1] = '\0';
		argv[0] = "sealpostd";
		for (size_t i = 0; i <= size - 1 && argc < ARGS_MAX; i++) {
			if (i == size - 1 || copy[i] == '\0') {
				copy[i] = '\0';
				argv[argc++] = copy + start;
				start = i + 1;
			}
		}
		argv[argc] = NULL;
		ret = sp_config_parse(c, argc, argv, err, sizeof(err));
		free(copy);
	}
	if (ret == 0 || ret == SP_CONFIG_CHECK)
		round_trip(c);
	free(c);
	return 0;
}
