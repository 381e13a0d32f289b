/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_prekey.h: prekeys signed by a device's own key (docs/PROTOCOL.md 17).
 *
 * A device's identity is its X25519 (Noise static) key, listed in its
 * account's signed device list. Its prekeys (X25519 too) are signed with
 * that same key through XEdDSA, as Signal specifies it ("The XEdDSA and
 * VXEdDSA Signature Schemes", rev. 1, 2016-10-20, sections 2.3 and 3.3),
 * composed from libsodium's Ed25519 group and scalar operations. Why this
 * and not an Ed25519 key of its own: docs/SECURITY.md, "Prekeys".
 *
 * XEdDSA's verifier turns the Montgomery key u into an Edwards point
 * A = convert_mont(u) (sign bit 0). libsodium offers only the reverse map
 * (crypto_sign_ed25519_pk_to_curve25519), so the signer sends A beside its
 * signatures and the verifier checks that A has sign bit 0 and maps to u:
 * that pins A = convert_mont(u) exactly (the map is one-to-one on the y
 * coordinate), after which XEdDSA's check is Ed25519's verification
 * equation, libsodium's crypto_sign_verify_detached.
 *
 * Encodings (fixed binary, one spelling each, integers big-endian):
 *   record = u8 kind | u32 id | u64 created_s | pub[32] | sig[64]   (109)
 *     kind 1 = signed prekey, 2 = one-time prekey
 *     sig = XEdDSA by the device over
 *       SP_PREKEY_DOMAIN (17 ASCII bytes) | device[32] | record minus sig
 *   upload = u8 format (1) | edkey[32] | u8 has_signed (0, 1) |
 *            [record kind 1] | u16 count | record kind 2 [count]
 *     one-time ids strictly ascending; has_signed or count >= 1
 *   bundle = u8 format (1) | device[32] | edkey[32] | record kind 1 |
 *            u8 has_onetime (0, 1) | [record kind 2]
 * Every pub is a valid X25519 public key (sp_noise_key_valid); no bytes
 * after the last record.
 *
 * Layering: crypto (libsodium), no I/O. The broker verifies uploads
 * against the connection's device key (it holds no secret for that); the
 * library verifies bundles against a device on a list it verified.
 *
 * Errors: 0 or a negative errno:
 *   -EBADMSG   malformed: truncated, trailing bytes, format, a kind, a flag,
 *              ids not ascending, an empty upload
 *   -EDOM      a pub that is not a valid X25519 public key
 *   -EMSGSIZE  more than SP_PREKEY_UPLOAD_MAX one-time prekeys (encoding:
 *              the output buffer is too small)
 *   -EPERM     edkey is not the device's Edwards form, or a signature does
 *              not verify
 *   -EINVAL    bad arguments (a secret that gives the identity point)
 */
#ifndef SP_PREKEY_H
#define SP_PREKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"

#define SP_PREKEY_DOMAIN "sealpost/prekey/1"

enum {
	SP_PREKEY_FORMAT = 1,
	SP_PREKEY_DOMAIN_LEN = sizeof(SP_PREKEY_DOMAIN) - 1, /* 17 */
	SP_PREKEY_KIND_SIGNED = 1,
	SP_PREKEY_KIND_ONETIME = 2,
	SP_XEDDSA_SIG_LEN = 64,
	SP_XEDDSA_NONCE_LEN = 64,       /* Z, fresh random bytes per signature */
	SP_PREKEY_REC_LEN = 1 + 4 + 8 + SP_KEY_LEN + SP_XEDDSA_SIG_LEN, /* 109 */
	SP_PREKEY_UPLOAD_MIN = 1 + SP_KEY_LEN + 1 + 2,
	SP_PREKEY_UPLOAD_MAXLEN = SP_PREKEY_UPLOAD_MIN + SP_PREKEY_REC_LEN * (1 + SP_PREKEY_UPLOAD_MAX),
	SP_PREKEY_BUNDLE_MIN = 1 + 2 * SP_KEY_LEN + SP_PREKEY_REC_LEN + 1,      /* 175 */
	SP_PREKEY_BUNDLE_MAX = SP_PREKEY_BUNDLE_MIN + SP_PREKEY_REC_LEN,        /* 284 */
};
_Static_assert((int)SP_PREKEY_UPLOAD_MAXLEN <= (int)SP_BODY_MAX, "an upload fits in one frame body");

struct sp_prekey {
	uint8_t kind;
	uint32_t id;
	uint64_t created_s;             /* Unix time, seconds, as the device stated it */
	uint8_t pub[SP_KEY_LEN];
	uint8_t sig[SP_XEDDSA_SIG_LEN];
};

/* A decoded upload: the one-time records stay in the caller's buffer
 * (borrowed, onetime[i * SP_PREKEY_REC_LEN]); read them with
 * sp_prekey_rec_get. */
struct sp_prekey_upload {
	uint8_t edkey[SP_KEY_LEN];
	bool has_signed;
	struct sp_prekey spk;
	uint32_t count;
	const uint8_t *onetime;
};

struct sp_prekey_bundle {
	uint8_t device[SP_KEY_LEN];
	uint8_t edkey[SP_KEY_LEN];
	struct sp_prekey spk;
	bool has_onetime;
	struct sp_prekey otk;
};

/* ---- XEdDSA (Signal's specification, section 2.3) ------------------------- */

/* The Edwards public key A of X25519 secret sk (borrowed): 0 or -EINVAL. */
int sp_xeddsa_public(uint8_t ed[SP_KEY_LEN], const uint8_t sk[SP_KEY_LEN]);

/* xeddsa_sign(k, M, Z). sk, msg, z: borrowed; sig: caller-owned. Every
 * intermediate secret is wiped before return. 0 or -EINVAL. */
int sp_xeddsa_sign(uint8_t sig[SP_XEDDSA_SIG_LEN], const uint8_t sk[SP_KEY_LEN], const uint8_t *msg,
		   size_t len, const uint8_t z[SP_XEDDSA_NONCE_LEN]);

/* ed is u's Edwards form (sign bit 0, maps to u), and sig verifies under
 * it. 0 or -EPERM. All borrowed. */
int sp_xeddsa_verify(const uint8_t sig[SP_XEDDSA_SIG_LEN], const uint8_t ed[SP_KEY_LEN],
		     const uint8_t u[SP_KEY_LEN], const uint8_t *msg, size_t len);

/* ---- records, uploads, bundles ------------------------------------------- */

void sp_prekey_rec_put(uint8_t out[SP_PREKEY_REC_LEN], const struct sp_prekey *k);
/* -EBADMSG (a kind other than 1 or 2), -EDOM (pub). in: borrowed. */
int sp_prekey_rec_get(const uint8_t in[SP_PREKEY_REC_LEN], struct sp_prekey *k);

/* Signs k (kind, id, created_s, pub set; sig written) as device's, with
 * device's X25519 secret sk (borrowed). Fresh Z from randombytes. */
int sp_prekey_sign(struct sp_prekey *k, const uint8_t device[SP_KEY_LEN], const uint8_t sk[SP_KEY_LEN]);
/* k's signature under edkey, which must be device's Edwards form. 0 or -EPERM. */
int sp_prekey_verify(const struct sp_prekey *k, const uint8_t device[SP_KEY_LEN],
		     const uint8_t edkey[SP_KEY_LEN]);

/* Canonical form only (signatures unchecked). buf: borrowed; up->onetime
 * points into it. */
int sp_prekey_upload_decode(const uint8_t *buf, size_t len, struct sp_prekey_upload *up);
/* Every signature in up as device's (edkey first). 0 or -EPERM. */
int sp_prekey_upload_verify(const struct sp_prekey_upload *up, const uint8_t device[SP_KEY_LEN]);
/* Encodes edkey, an optional signed prekey (spk NULL: none) and count
 * one-time records (otk: borrowed array). out: caller-owned, cap bytes. */
int sp_prekey_upload_encode(const uint8_t edkey[SP_KEY_LEN], const struct sp_prekey *spk,
			    const struct sp_prekey *otk, uint32_t count, uint8_t *out, size_t cap,
			    size_t *out_len);

/* b->has_onetime decides whether b->otk is written. out: caller-owned,
 * SP_PREKEY_BUNDLE_MAX bytes suffice. */
int sp_prekey_bundle_encode(const struct sp_prekey_bundle *b, uint8_t *out, size_t cap, size_t *out_len);
/* Canonical form only. buf: borrowed. */
int sp_prekey_bundle_decode(const uint8_t *buf, size_t len, struct sp_prekey_bundle *b);
/* Decode, then: b->device equals device (the one asked for, on a verified
 * list), edkey is its Edwards form, and both signatures verify. -EPERM when
 * not. */
int sp_prekey_bundle_verify(const uint8_t *buf, size_t len, const uint8_t device[SP_KEY_LEN],
			    struct sp_prekey_bundle *b);

#endif
