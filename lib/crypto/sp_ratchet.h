/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_ratchet.h: the Double Ratchet (Signal, "The Double Ratchet Algorithm",
 * rev. 1, 2016-11-20, sections 3 and 5) for the conversation after a
 * first contact (docs/PROTOCOL.md 7.3, envelope version 4):
 *
 *   DH      X25519 (crypto_scalarmult; an all-zero output is refused)
 *   KDF_RK  HKDF-SHA-256(salt = rk, IKM = dh_out, info SP_RATCHET_INFO_RK,
 *           64 bytes) = rk' || ck           (RFC 5869 from libsodium's HMAC)
 *   KDF_CK  mk = HMAC-SHA-256(ck, 0x01), ck' = HMAC-SHA-256(ck, 0x02)
 *   ENCRYPT key || nonce = HKDF-SHA-256(salt = 0*32, IKM = mk,
 *           info SP_RATCHET_INFO_MSG, 44 bytes); ChaCha20-Poly1305-IETF
 *           with ad = AD || header (the spec's 5.2 with an AEAD in place of
 *           AES-CBC + HMAC, as it allows)
 *   header  u8 4 | tag[16] | dh[32] | u32 pn | u32 n (big-endian)  57 bytes
 *   tag     HKDF-SHA-256(salt 0*32, IKM SK, SP_RATCHET_INFO_TAG, 32):
 *           Alice's envelopes carry its first 16 bytes, Bob's the last 16,
 *           so that a recipient finds the session of an envelope that does
 *           not name its sender (the header is authenticated as AD)
 *
 * Integration with X3DH (the spec's 7.3): the first-contact envelope
 * (sp_fcseal.h) gives SK; the root key starts as
 * RK0 = HKDF-SHA-256(salt 0*32, IKM SK, SP_RATCHET_INFO_SK, 32), so that SK
 * keeps one use (the first contact's AEAD); AD = IK_A || IK_B. Bob's signed
 * prekey is his first ratchet key pair, and the first contact's EK_A is
 * Alice's: sp_ratchet_init_alice is RatchetInitAlice with DHs = EK_A,
 * sp_ratchet_init_bob is RatchetInitBob followed by the DH ratchet step a
 * message with header dh = EK_A causes, so both can send at once.
 *
 * Bounds: a message may skip at most SP_RATCHET_MAX_SKIP keys of one chain;
 * at most SP_RATCHET_SKIPPED_MAX skipped keys are kept per session (the
 * oldest go first). A used message key is wiped and forgotten, so the same
 * body again does not open.
 *
 * Decrypt works on copies and commits the state only when the message
 * opened: a forged, replayed or truncated body changes nothing.
 * Errors: 0 or a negative errno: -EBADMSG (does not open: malformed,
 * tampered, replayed, key deleted), -ERANGE (skips more than
 * SP_RATCHET_MAX_SKIP), -EMSGSIZE (too large, cap), -EINVAL (a key giving
 * an all-zero DH, or no sending chain), -ENOMEM.
 */
#ifndef SP_RATCHET_H
#define SP_RATCHET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"

#define SP_RATCHET_INFO_RK "sealpost/ratchet/1/rk"
#define SP_RATCHET_INFO_MSG "sealpost/ratchet/1/msg"
#define SP_RATCHET_INFO_SK "sealpost/ratchet/1/x3dh"
#define SP_RATCHET_INFO_TAG "sealpost/ratchet/1/tag"

enum {
	SP_RATCHET_VERSION = 4,
	SP_RATCHET_SID_LEN = 16,        /* the session tag */
	SP_RATCHET_HDR_LEN = 1 + SP_RATCHET_SID_LEN + SP_KEY_LEN + 4 + 4, /* 57 */
	SP_RATCHET_OVERHEAD = SP_RATCHET_HDR_LEN + SP_TAG_LEN,            /* 73 */
	SP_RATCHET_AD_LEN = 2 * SP_KEY_LEN,                    /* IK_A || IK_B */
	SP_RATCHET_MAX_SKIP = 256,      /* keys one message may skip in one chain */
	SP_RATCHET_SKIPPED_MAX = 512,   /* skipped keys kept per session */
	SP_RATCHET_MSG_KEY_LEN = 32,
	SP_RATCHET_NONCE_LEN = 12,
};

struct sp_ratchet_skipped {
	uint8_t dh[SP_KEY_LEN];         /* the ratchet key of its chain */
	uint32_t n;
	uint8_t mk[SP_RATCHET_MSG_KEY_LEN];
};

/* One session's state; secrets inside: keep it in sodium_malloc'd memory. */
struct sp_ratchet {
	uint8_t ad[SP_RATCHET_AD_LEN];
	uint8_t tag_send[SP_RATCHET_SID_LEN], tag_recv[SP_RATCHET_SID_LEN];
	uint8_t dhs[SP_KEY_LEN], dhs_pub[SP_KEY_LEN]; /* our ratchet key pair */
	uint8_t dhr[SP_KEY_LEN];                       /* theirs */
	uint8_t rk[32], cks[32], ckr[32];
	bool has_ckr;                   /* false until the first message from them */
	uint32_t ns, nr, pn;
	uint32_t nskipped;
	struct sp_ratchet_skipped skipped[SP_RATCHET_SKIPPED_MAX]; /* oldest first */
};

struct sp_ratchet_hdr {
	uint8_t tag[SP_RATCHET_SID_LEN];
	uint8_t dh[SP_KEY_LEN];
	uint32_t pn, n;
};

/* HKDF-SHA-256 (RFC 5869): salt (salt_len bytes, may be NULL for 32 zeros),
 * ikm, info; out_len <= 64. Everything borrowed. */
void sp_ratchet_hkdf(uint8_t *out, size_t out_len, const uint8_t *salt, size_t salt_len,
		     const uint8_t *ikm, size_t ikm_len, const char *info);

/* KDF_RK: rk (in, 32) and dh_out (32) into rk_out and ck_out (may alias rk). */
void sp_ratchet_kdf_rk(uint8_t rk_out[32], uint8_t ck_out[32], const uint8_t rk[32],
		       const uint8_t dh_out[32]);
/* KDF_CK: ck into ck_out (may alias ck) and mk. */
void sp_ratchet_kdf_ck(uint8_t ck_out[32], uint8_t mk[32], const uint8_t ck[32]);
/* RK0 from X3DH's SK. */
void sp_ratchet_root0(uint8_t rk0[32], const uint8_t sk[32]);

/*
 * Alice (the first contact's sender): SK, the AD (IK_A || IK_B), her
 * first contact's ephemeral secret ek_a (the session keeps a copy as DHs)
 * and Bob's signed prekey spk_b. All borrowed. 0, -EINVAL.
 */
int sp_ratchet_init_alice(struct sp_ratchet *st, const uint8_t sk[32],
			  const uint8_t ad[SP_RATCHET_AD_LEN], const uint8_t ek_a[SP_KEY_LEN],
			  const uint8_t spk_b[SP_KEY_LEN]);

/*
 * Bob (the first contact's recipient): SK, AD, his signed prekey secret
 * spk (not kept: the step replaces it at once), Alice's EK_A, and fresh
 * (32 random bytes for his next ratchet key; NULL: randombytes). 0, -EINVAL.
 */
int sp_ratchet_init_bob(struct sp_ratchet *st, const uint8_t sk[32],
			const uint8_t ad[SP_RATCHET_AD_LEN], const uint8_t spk[SP_KEY_LEN],
			const uint8_t ek_a[SP_KEY_LEN], const uint8_t *fresh);

/* The padded payload size sp_ratchet_encrypt uses for len bytes, and the
 * body it makes: bucket + SP_RATCHET_OVERHEAD (0: too large). */
size_t sp_ratchet_body_len(size_t len, size_t max_payload, bool pad);

/*
 * RatchetEncrypt: msg (borrowed, len bytes) padded to its bucket (pad;
 * max_payload the largest payload, as in sp_seal_padded) or, without pad,
 * followed by the 0x80 alone (the payload is always padded), into out
 * (caller-owned, cap bytes). The chain key advances; the message key is
 * wiped. -EMSGSIZE, -EINVAL.
 */
int sp_ratchet_encrypt(struct sp_ratchet *st, const uint8_t *msg, size_t len, size_t max_payload,
		       bool pad, uint8_t *out, size_t cap, size_t *out_len);

/* The header of body (borrowed): 0 or -EBADMSG. */
int sp_ratchet_header(const uint8_t *body, size_t len, struct sp_ratchet_hdr *h);

/*
 * RatchetDecrypt: body (borrowed) into msg_out (caller-owned, cap >= len),
 * the padding stripped (a version 4 payload always ends in 0x80 and zeros;
 * a payload that does not is -EBADMSG). fresh: 32 random bytes for a DH ratchet step's new key (NULL:
 * randombytes). The state changes only on success.
 */
int sp_ratchet_decrypt(struct sp_ratchet *st, const uint8_t *body, size_t len,
		       const uint8_t *fresh, uint8_t *msg_out, size_t cap, size_t *msg_len);

/* Serialised state (for a store): sp_ratchet_encoded_len bytes. */
size_t sp_ratchet_encoded_len(const struct sp_ratchet *st);
void sp_ratchet_encode(const struct sp_ratchet *st, uint8_t *out);
/* 0 and *used bytes, or -EBADMSG. */
int sp_ratchet_decode(struct sp_ratchet *st, const uint8_t *in, size_t len, size_t *used);

#endif
