/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_json.h: the JSON that `sealpost recv --json` writes, encoded by hand so
 * the CLI needs no JSON library (the client-only build has only libsodium
 * and protobuf-c).
 */
#ifndef SP_CLI_JSON_H
#define SP_CLI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Is p[0..len) well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF)? p: borrowed for the call. */
bool sp_cli_json_utf8_valid(const uint8_t *p, size_t len);

/*
 * Writes p[0..len), which must be valid UTF-8, as a JSON string (with its
 * quotes) to f: '"' and '\' escaped, control characters, DEL and U+2028/9
 * as \uXXXX (or \n, \t, ...), everything else as is. p: borrowed. 0, or
 * -EINVAL if p is not valid UTF-8 (nothing written), -EIO on a write error.
 */
int sp_cli_json_write_string(FILE *f, const uint8_t *p, size_t len);

/*
 * Writes one message as one line:
 *   {"sender":"HEX","seq":N,"size":N,"encoding":"utf-8","message":"TEXT"}
 * "size" is the message's length in bytes. A message that is not valid
 * UTF-8 has "encoding":"base64" and its bytes in standard base64 (with
 * padding) instead, so every message survives exactly. sender_hex: 64 hex
 * characters, NUL-terminated; msg: borrowed. 0, -ENOMEM, -EIO.
 */
int sp_cli_json_write_message(FILE *f, const char *sender_hex, uint64_t seq, const uint8_t *msg,
			      size_t len);

#endif
