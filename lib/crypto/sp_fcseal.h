/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_fcseal.h: first-contact envelopes (docs/PROTOCOL.md 7.2): a message
 * sealed to a device's prekey bundle with X3DH (sp_x3dh.h), so that it
 * opens only while the device still holds the prekeys' secrets.
 *
 *   body = u8 version (3) | ek[32] | u32 spk_id | u8 has_opk | u32 opk_id |
 *          enc_s[32 + 16] | ct[padded + 16]          (header: the first 42)
 *   k_s   = HKDF-SHA-256(0xFF*32 || DH(EK_A, IK_B), zero salt,
 *           "sealpost/x3dh/1/sender", 32)
 *   enc_s = ChaCha20-Poly1305-IETF(k_s, nonce 0, IK_A, ad = header || IK_B)
 *   SK    = X3DH(IK_A, EK_A; IK_B, SPK_B, OPK_B if has_opk)
 *   ct    = ChaCha20-Poly1305-IETF(SK, nonce 0, padded message,
 *           ad = IK_A || IK_B || header || enc_s)
 * The sender's identity key travels encrypted, as Noise encrypts `s`
 * after `es`: the broker learns from the body no more than from a
 * Noise_X seal (7.1). Both keys are single-use (EK_A is fresh per
 * envelope), so nonce 0 is their only nonce. The padded message is
 * sodium_pad to the buckets of 7.1 (sp_seal_pad_bucket).
 *
 * Errors: 0 or a negative errno: -EMSGSIZE (too large, or cap), -EBADMSG
 * (malformed, or it does not open), -EINVAL (a key giving an all-zero DH).
 */
#ifndef SP_FCSEAL_H
#define SP_FCSEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"

#define SP_FCSEAL_SENDER_INFO "sealpost/x3dh/1/sender"

enum {
	SP_FCSEAL_VERSION = 3,
	SP_FCSEAL_HDR_LEN = 1 + SP_KEY_LEN + 4 + 1 + 4,                    /* 42 */
	SP_FCSEAL_OVERHEAD = SP_FCSEAL_HDR_LEN + SP_KEY_LEN + 2 * SP_TAG_LEN, /* 106 */
};

/* What the sender seals to: the bundle's keys (public). */
struct sp_fcseal_to {
	uint8_t ik[SP_KEY_LEN];
	uint8_t spk[SP_KEY_LEN];
	uint32_t spk_id;
	bool has_opk;
	uint8_t opk[SP_KEY_LEN];
	uint32_t opk_id;
};

struct sp_fcseal_hdr {
	uint8_t ek[SP_KEY_LEN];
	uint32_t spk_id;
	bool has_opk;
	uint32_t opk_id;
};

/*
 * Seals msg (borrowed, len bytes) from ik_a (the sender's secret) to `to`
 * with the ephemeral secret ek_a (borrowed; fresh random bytes per
 * envelope, given by the caller so that tests can fix it), padded to at
 * most max_payload. out: caller-owned, cap bytes; *out_len.
 */
int sp_fcseal_seal(const uint8_t ik_a[SP_KEY_LEN], const uint8_t ek_a[SP_KEY_LEN],
		   const struct sp_fcseal_to *to, const uint8_t *msg, size_t len,
		   size_t max_payload, uint8_t *out, size_t cap, size_t *out_len);

/* The header of body (borrowed): 0, or -EBADMSG (not version 3, too short). */
int sp_fcseal_header(const uint8_t *body, size_t len, struct sp_fcseal_hdr *h);

/*
 * Opens body with the recipient's secrets ik_b, spk and opk (NULL when the
 * header says none): the sender's key into sender, the message (padding
 * removed) into msg_out (caller-owned, cap >= len). -EBADMSG.
 */
int sp_fcseal_open(const uint8_t ik_b[SP_KEY_LEN], const uint8_t spk[SP_KEY_LEN], const uint8_t *opk,
		   const uint8_t *body, size_t len, uint8_t sender[SP_KEY_LEN], uint8_t *msg_out,
		   size_t cap, size_t *msg_len);

#endif
