/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_access.h: the CLI's contacts' access keys (sealed sender,
 * docs/PROTOCOL.md 14). A text file, mode 0600, one contact a line:
 * "CONTACT KEY" (the contact's public key as 64 hex characters, one space,
 * its access key as 32 or 64 hex characters: 16 or 32 bytes); blank lines
 * and lines starting with '#' are ignored. `sealpost send` to a contact
 * with a line here sends anonymously with that key. Unlike the known
 * brokers the file is rewritten (atomically) on every change: a contact
 * rotates its key, the old one is useless.
 */
#ifndef SP_CLI_ACCESS_H
#define SP_CLI_ACCESS_H

#include <stddef.h>
#include <stdint.h>

enum { SP_CLI_ACCESS_KEY_MAX = 32 };

/* 32 or 64 hex characters (16 or 32 bytes) into key (32 bytes room): 0 with
 * *len, or -EINVAL. hex: borrowed. */
int sp_cli_access_parse_key(const char *hex, uint8_t key[SP_CLI_ACCESS_KEY_MAX], size_t *len);

/*
 * The access key of contact in the file at path: 1 with key and *len; 0 if
 * there is none (also when the file does not exist); -EBADMSG with *line
 * for a line that is not the format above; errno from fopen/read.
 * path, contact: borrowed; key: caller-owned (wipe it).
 */
int sp_cli_access_lookup(const char *path, const uint8_t contact[32],
			 uint8_t key[SP_CLI_ACCESS_KEY_MAX], size_t *len, unsigned *line);

/*
 * Sets contact's access key (len 16 or 32) or, with len 0, forgets it:
 * the file is rewritten through a temporary file and rename(2), mode 0600
 * (its directory created 0700 if missing). Other lines are kept as they
 * were. -EINVAL, -EBADMSG (with *line) if the file has a bad line, errno.
 */
int sp_cli_access_put(const char *path, const uint8_t contact[32], const uint8_t *key, size_t len,
		      unsigned *line);

#endif
