/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_x3dh.h: the X3DH key agreement (Signal, "The X3DH Key Agreement
 * Protocol", rev. 1, sections 2.2 and 3.3) with curve X25519, hash SHA-256
 * and info SP_X3DH_INFO: the shared secret SK of a first-contact envelope
 * (issue 13 item 2; the envelope format that uses it is not on the wire
 * yet, docs/SECURITY.md "Prekeys").
 *
 *   DH1 = DH(IK_A, SPK_B)  DH2 = DH(EK_A, IK_B)  DH3 = DH(EK_A, SPK_B)
 *   DH4 = DH(EK_A, OPK_B)  (when Bob's bundle had a one-time prekey)
 *   SK  = HKDF-SHA-256(IKM = 0xFF*32 || DH1 || DH2 || DH3 [|| DH4],
 *                      salt = 0x00*32, info, 32 bytes)
 * HKDF is RFC 5869 composed from libsodium's HMAC-SHA-256; DH is
 * crypto_scalarmult, whose all-zero output (a small-order public key) is
 * refused, as the specification's "abort" requires.
 *
 * Every secret is borrowed for the call; every intermediate is wiped.
 * Errors: 0, or -EINVAL (a public key whose DH output is all zero).
 */
#ifndef SP_X3DH_H
#define SP_X3DH_H

#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"

#define SP_X3DH_INFO "sealpost/x3dh/1"

enum { SP_X3DH_SK_LEN = 32 };

/* HKDF-SHA-256 (RFC 5869) of F || km with a zero salt and SP_X3DH_INFO, 32 bytes. */
void sp_x3dh_kdf(uint8_t sk[SP_X3DH_SK_LEN], const uint8_t *km, size_t km_len);
/* The same KDF under another info string (borrowed, info_len bytes). */
void sp_x3dh_kdf_info(uint8_t out[SP_X3DH_SK_LEN], const char *info, size_t info_len,
		      const uint8_t *km, size_t km_len);

/* Alice: her identity secret ik_a and ephemeral secret ek_a, Bob's
 * identity ik_b, signed prekey spk_b and one-time prekey opk_b (NULL: none). */
int sp_x3dh_initiate(uint8_t sk[SP_X3DH_SK_LEN], const uint8_t ik_a[SP_KEY_LEN],
		     const uint8_t ek_a[SP_KEY_LEN], const uint8_t ik_b[SP_KEY_LEN],
		     const uint8_t spk_b[SP_KEY_LEN], const uint8_t *opk_b);

/* Bob: his secrets ik_b, spk_b and opk_b (NULL: none), Alice's identity
 * ik_a and ephemeral ek_a public keys. */
int sp_x3dh_respond(uint8_t sk[SP_X3DH_SK_LEN], const uint8_t ik_b[SP_KEY_LEN],
		    const uint8_t spk_b[SP_KEY_LEN], const uint8_t *opk_b,
		    const uint8_t ik_a[SP_KEY_LEN], const uint8_t ek_a[SP_KEY_LEN]);

#endif
