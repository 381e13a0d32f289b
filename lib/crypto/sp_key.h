/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_key.h: X25519 key helpers: public key from a private one, fresh key
 * pairs, and the check every peer-supplied static key goes through.
 *
 * Layering: crypto, below the handshake (sp_noise.h includes this file).
 * The public key API of libsealpost wraps these; these stay internal.
 *
 * Secrets: priv arguments are borrowed and never copied or logged here.
 * Errors: 0 or a negative errno (-EINVAL).
 */
#ifndef SP_CRYPTO_KEY_H
#define SP_CRYPTO_KEY_H

#include <stdbool.h>
#include <stdint.h>

#include "sp_limits.h"

/* Derives the X25519 public key from a private key. */
int sp_noise_public_key(uint8_t pub[SP_KEY_LEN], const uint8_t priv[SP_KEY_LEN]);
/* Fresh random key pair. */
void sp_noise_keypair(uint8_t pub[SP_KEY_LEN], uint8_t priv[SP_KEY_LEN]);
/*
 * Is this 32-byte string acceptable as a peer's static public key (or a
 * Send's recipient)? Rejects non-canonical encodings (bit 255 set, or a
 * value at or above 2^255 - 19: another spelling of some canonical key) and
 * the low-order points (all of which give an all-zero DH output).
 */
bool sp_noise_key_valid(const uint8_t pub[SP_KEY_LEN]);
/*
 * The same answer as sp_noise_key_valid(), in variable time: only for keys
 * that are public (a Send's `to`). Almost every key differs from every
 * low-order point in its first 8 bytes and has a top byte below 0x7f, and
 * is accepted after those few comparisons; any other key takes the full
 * check.
 */
bool sp_noise_key_valid_public(const uint8_t pub[SP_KEY_LEN]);

#endif
