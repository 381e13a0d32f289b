/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_conf.h: where the CLI finds its settings besides its flags: the
 * config file (~/.config/sealpost/cli.conf or $SEALPOST_CONFIG), the paths
 * of its files, and broker key files.
 */
#ifndef SP_CLI_CONF_H
#define SP_CLI_CONF_H

#include <stddef.h>
#include <stdint.h>

enum { SP_CLI_CONF_VALUE_MAX = 1024 };  /* longest value in the config file, bytes */

/* What the config file says; NULL where it says nothing. Strings are
 * malloc'd, owned by the struct (sp_cli_conf_free). */
struct sp_cli_conf {
	char *server;            /* server = HOST:PORT */
	char *server_key;        /* server-key = HEX */
	char *server_key_file;   /* server-key-file = PATH */
	char *key;               /* key = PATH */
};

/*
 * The path of one of the CLI's files: $env_name if set and not empty, else
 * $XDG_CONFIG_HOME/sealpost/leaf, else $HOME/.config/sealpost/leaf. out:
 * caller-owned, cap bytes. 0; -ENOENT if neither HOME nor XDG_CONFIG_HOME
 * is set (no such file then); -ENAMETOOLONG. *from_env (may be NULL) says
 * whether the environment variable named it.
 */
int sp_cli_conf_path(char *out, size_t cap, const char *env_name, const char *leaf, int *from_env);

/*
 * Reads the config file at path into *c (zeroed first): lines "NAME = VALUE",
 * blank lines and lines starting with '#' ignored, spaces around NAME and
 * VALUE trimmed; NAME one of server, server-key, server-key-file, key (a
 * later line wins). A value starting with "~/" has it replaced by $HOME/.
 * 0 (a missing file counts as empty only if !required), -ENOENT, other
 * errno from open/read, or -EBADMSG with *bad_line (1-based) for a line
 * that is not that format or names something else. path: borrowed.
 */
int sp_cli_conf_load(const char *path, int required, struct sp_cli_conf *c, unsigned *bad_line);

/* Frees what sp_cli_conf_load allocated; the struct may be reused. */
void sp_cli_conf_free(struct sp_cli_conf *c);

/*
 * Reads a broker public key file (sealpostd's server.pub: 64 hex characters,
 * optionally followed by a newline). 0; -EBADMSG if it holds anything else;
 * errno from open/read. path: borrowed; key: caller-owned.
 */
int sp_cli_conf_read_key(const char *path, uint8_t key[32]);

#endif
