/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_pins.h: the CLI's known brokers, like ssh's known_hosts. A text file,
 * one broker a line: "ADDRESS HEX" (the --server string exactly as given,
 * one space, its public key as 64 hex characters); blank lines and lines
 * starting with '#' are ignored. An XX connection (first contact) appends
 * the key it learned; later connections to that address use that key (IK)
 * and so refuse a broker that holds another one. Entries are only ever
 * appended; a changed key is replaced by editing the file.
 */
#ifndef SP_CLI_PINS_H
#define SP_CLI_PINS_H

#include <stdint.h>

/*
 * Looks up server in the file at path. 1 with key filled (the first entry
 * for that address) and *line its line number; 0 if there is none (also when
 * the file does not exist); -EBADMSG with *line for a line that is not the
 * format above; errno from fopen/read. path, server: borrowed.
 */
int sp_cli_pins_lookup(const char *path, const char *server, uint8_t key[32], unsigned *line);

/*
 * Appends "server HEX\n" to the file at path (created mode 0600, and its
 * directory 0700 if missing, one level). -EINVAL if server is empty or holds
 * whitespace or '#'; errno from mkdir/open/write. path, server, key: borrowed.
 */
int sp_cli_pins_add(const char *path, const char *server, const uint8_t key[32]);

#endif
