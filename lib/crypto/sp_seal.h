/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_seal.h: end-to-end sealed envelopes (wire protocol section 7).
 *
 *   body = 0x01 (SP_SEAL_VERSION) || Noise_X_25519_ChaChaPoly_BLAKE2b message 1
 *
 * written by the sender as initiator with its static key, the recipient's
 * static public key as rs and prologue SP_SEAL_PROLOGUE ("sealpost/seal/1",
 * 15 bytes, no NUL); the payload is the application's message. A body is
 * exactly len + SP_SEAL_OVERHEAD (97) bytes. The recipient opens it as
 * responder and learns the sender's static public key from it: that key is
 * the authenticated sender. The broker never calls these.
 *
 * Each seal uses a fresh ephemeral key, so sealing the same message twice
 * gives unrelated bodies. There is no replay protection: a recipient that
 * cares must deduplicate (e.g. by an id inside the message).
 *
 * Threading: no shared state; safe from any thread. Nothing here logs.
 * Secrets: private keys are borrowed for the call and every copy of key
 * material made here is wiped before returning, on every path.
 */
#ifndef SP_SEAL_H
#define SP_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"

/*
 * Seals msg (len bytes, borrowed for the call; len may be 0) from
 * sender_priv to recipient_pub into out (caller-owned, cap bytes, must not
 * overlap msg). *out_len = len + SP_SEAL_OVERHEAD on success.
 * Errors:
 *   -EMSGSIZE  len > SP_MESSAGE_MAX, or cap < len + SP_SEAL_OVERHEAD
 *   -EINVAL    NULL argument, or recipient_pub is a low-order point
 *              (sp_noise_key_valid() false: nobody can open such a seal)
 */
int sp_seal(const uint8_t sender_priv[SP_KEY_LEN], const uint8_t recipient_pub[SP_KEY_LEN],
	    const uint8_t *msg, size_t len, uint8_t *out, size_t cap, size_t *out_len);

/*
 * Opens a sealed body (len bytes, borrowed for the call) with the
 * recipient's private key. On success the message is in msg_out
 * (caller-owned, cap bytes, must not overlap body), *msg_len = its length
 * (len - SP_SEAL_OVERHEAD) and sender_pub holds the sender's static public
 * key. On error sender_pub and *msg_len are left untouched and msg_out
 * holds no plaintext (libsodium may zero it).
 * Errors:
 *   -EBADMSG   the body does not open: shorter than SP_SEAL_OVERHEAD, wrong
 *              version byte, not sealed to this key, altered in any byte,
 *              or the sender key (or ephemeral) is a low-order point
 *   -EMSGSIZE  len > SP_BODY_MAX, or cap < len - SP_SEAL_OVERHEAD
 *   -EINVAL    NULL argument
 */
int sp_seal_open(const uint8_t recipient_priv[SP_KEY_LEN], const uint8_t *body, size_t len,
		 uint8_t sender_pub[SP_KEY_LEN], uint8_t *msg_out, size_t cap, size_t *msg_len);

/*
 * Padded seals (PROTOCOL.md 7.1): body = 0x02 || Noise_X message 1 with
 * prologue "sealpost/seal/2", whose payload is the message padded to a
 * bucket with ISO/IEC 7816-4 padding (0x80, then zeros; sodium_pad).
 * Buckets: 256, 512, ..., 32768 bytes of padded payload, then
 * max_payload (at most SP_MESSAGE_MAX) for anything larger, so a body is
 * one of 353, 609, ..., 32865 or max_payload + 97 bytes. sp_seal_open
 * opens both versions and strips the padding.
 */
enum { SP_SEAL_PAD_MIN = 256, SP_SEAL_PAD_MAX_BUCKET = 32768 };

/* The padded payload length for a len-byte message: the smallest bucket
 * >= len + 1, capped at max_payload; 0 if len + 1 > max_payload. */
size_t sp_seal_pad_bucket(size_t len, size_t max_payload);

/* sp_seal, padded. max_payload: the largest payload the recipient's broker
 * takes (max_envelope - 97; SP_MESSAGE_MAX for the protocol's). out needs
 * bucket + SP_SEAL_OVERHEAD bytes. -EMSGSIZE (too large for max_payload,
 * or cap), -EINVAL, -ENOMEM. */
int sp_seal_padded(const uint8_t sender_priv[SP_KEY_LEN], const uint8_t recipient_pub[SP_KEY_LEN],
		   const uint8_t *msg, size_t len, size_t max_payload, uint8_t *out, size_t cap,
		   size_t *out_len);

#endif
