/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_keyfile.h: key files and hex key strings, shared by sealpostd and the CLI.
 *
 * Format of a private key file (DIR/server.key, a device key): the 32-byte
 * X25519 private key as 64 lowercase hex characters and one newline, mode 0600.
 * A public key file (DIR/server.pub): the public key in the same form, 0644.
 *
 * Secrets: buffers holding private keys or their hex form are wiped inside
 * every function here before it returns, on every path.
 *
 * Errors: 0 or a negative errno (-ENOENT, -EEXIST, -EACCES, ... from the
 * system; -EBADMSG for a file whose content is not exactly the format above).
 */
#ifndef SP_KEYFILE_H
#define SP_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"

enum { SP_KEY_HEX_LEN = 2 * SP_KEY_LEN }; /* 64, without terminator */

/* Writes 64 lowercase hex characters and a NUL into out (65 bytes). */
void sp_key_format_hex(char out[SP_KEY_HEX_LEN + 1], const uint8_t key[SP_KEY_LEN]);

/* Parses exactly 64 hex characters (either case, nothing else) from the
 * NUL-terminated hex; -EINVAL otherwise. */
int sp_key_parse_hex(uint8_t key[SP_KEY_LEN], const char *hex);

/* Creates path exclusively (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600) and writes
 * priv; fsyncs the file. -EEXIST if it exists. priv is borrowed. */
int sp_keyfile_write_private(const char *path, const uint8_t priv[SP_KEY_LEN]);

/* Reads a private key file. -EACCES if group or others have any access to
 * it: a key others can read is disclosed, one others can write may have been
 * swapped for a key they know (like ssh, refuse both). */
int sp_keyfile_read_private(const char *path, uint8_t priv[SP_KEY_LEN]);

/* Writes (replacing atomically via rename) a public key file, mode 0644. */
int sp_keyfile_write_public(const char *path, const uint8_t pub[SP_KEY_LEN]);

int sp_keyfile_read_public(const char *path, uint8_t pub[SP_KEY_LEN]);

#endif
