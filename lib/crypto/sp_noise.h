/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_noise.h: the Noise Protocol Framework (revision 34) for
 * Noise_{NN,NK,N,K,X,IK,XX}_25519_{ChaChaPoly,AESGCM}_BLAKE2b, on libsodium
 * primitives (AESGCM only where the CPU has AES-NI: sp_noise_aead_available).
 *
 * Layering: this module sees plaintext and ciphertext buffers only; it knows
 * nothing of sockets, length prefixes or frames. The transport ciphers (what
 * a split hands over) live in sp_aead_stream.h, the key helpers in sp_key.h;
 * both are included here so that one include still gives the whole engine.
 *
 * Secrets: every struct here that holds key material must be wiped with the
 * matching *_wipe() on every path out (sodium_memzero inside). Nothing here logs.
 *
 * Threading: no global state; a handshake or cipher struct is used by one
 * thread at a time.
 *
 * Errors: 0 or a negative errno:
 *   -EINVAL    wrong state for the call, or bad argument
 *   -EMSGSIZE  output buffer too small, or message too long / too short
 *   -EBADMSG   authentication failed (tag mismatch), or invalid public key
 *   -EOVERFLOW nonce exhausted
 *   -ENOTSUP   AESGCM asked for on a CPU without AES-NI (init)
 * After any error from a handshake read/write, the handshake is in
 * SP_NOISE_HS_FAILED and must only be wiped.
 */
#ifndef SP_NOISE_H
#define SP_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "sp_aead_stream.h"
#include "sp_key.h"
#include "sp_limits.h"

enum sp_noise_pattern {
	SP_NOISE_NN,
	SP_NOISE_NK,
	SP_NOISE_N,
	SP_NOISE_K,
	SP_NOISE_X,
	SP_NOISE_IK,
	SP_NOISE_XX,
};

enum sp_noise_role {
	SP_NOISE_INITIATOR,
	SP_NOISE_RESPONDER,
};

enum sp_noise_hs_state {
	SP_NOISE_HS_EMPTY = 0,  /* never initialised, or wiped */
	SP_NOISE_HS_WRITE,      /* next call must be sp_noise_handshake_write */
	SP_NOISE_HS_READ,       /* next call must be sp_noise_handshake_read */
	SP_NOISE_HS_SPLIT,      /* all handshake messages done: call split */
	SP_NOISE_HS_FAILED,     /* an error occurred: wipe it */
};

/* SymmetricState (Noise spec 5.2). ck and the cipher key are secrets. */
struct sp_noise_symmetric {
	uint8_t ck[SP_HASH_LEN];
	uint8_t h[SP_HASH_LEN];
	struct sp_noise_cipher cs;
};

/* HandshakeState (Noise spec 5.3). Private keys are secrets. */
struct sp_noise_handshake {
	enum sp_noise_hs_state state;
	enum sp_noise_pattern pattern;
	enum sp_noise_role role;
	uint8_t msg_index;              /* index of the next message pattern */
	struct sp_noise_symmetric ss;
	uint8_t s_priv[SP_KEY_LEN], s_pub[SP_KEY_LEN];
	/* The caller's static key, borrowed (init_keyed), so that a long-lived
	 * key in locked memory is not copied per handshake; NULL: s_priv. */
	const uint8_t *s_key;
	uint8_t e_priv[SP_KEY_LEN], e_pub[SP_KEY_LEN];
	uint8_t rs[SP_KEY_LEN], re[SP_KEY_LEN];
	bool has_s, has_e, has_rs, has_re;
};

/* The full protocol name, e.g. "Noise_IK_25519_ChaChaPoly_BLAKE2b". */
const char *sp_noise_protocol_name(enum sp_noise_pattern p);
/* The same for either cipher, e.g. "Noise_IK_25519_AESGCM_BLAKE2b"; NULL
 * for an unknown pattern or cipher. */
const char *sp_noise_suite_name(enum sp_noise_pattern p, enum sp_noise_aead a);
/* Parses a protocol name; only the *_25519_ChaChaPoly_BLAKE2b suite. */
int sp_noise_pattern_from_name(const char *name, enum sp_noise_pattern *out);
/* Parses a protocol name of either suite (ChaChaPoly or AESGCM). */
int sp_noise_suite_from_name(const char *name, enum sp_noise_pattern *p,
			     enum sp_noise_aead *a);

/*
 * Starts a handshake. prologue is borrowed for the call only.
 * s_priv: this side's static private key (copied), or NULL when the pattern
 *         does not need one. rs: the remote static public key known in
 *         advance (IK/NK/K/X initiator), or NULL. Missing a key the pattern
 *         needs gives -EINVAL.
 */
int sp_noise_handshake_init(struct sp_noise_handshake *hs, enum sp_noise_pattern p,
			    enum sp_noise_role r, const uint8_t *prologue, size_t prologue_len,
			    const uint8_t *s_priv, const uint8_t *rs);

/* The same with the cipher of the suite chosen (the plain init is
 * ChaChaPoly). -ENOTSUP: AESGCM where the CPU cannot (no state to wipe). */
int sp_noise_handshake_init_aead(struct sp_noise_handshake *hs, enum sp_noise_pattern p,
				 enum sp_noise_aead a, enum sp_noise_role r,
				 const uint8_t *prologue, size_t prologue_len,
				 const uint8_t *s_priv, const uint8_t *rs);

/*
 * The same, for a side that starts many handshakes with one static key (the
 * broker): s_priv is borrowed, not copied, until the handshake is split,
 * failed or wiped (the broker's key stays in its sodium_malloc memory and
 * no copy of it lands in each connection's handshake state or on the
 * stack). s_pub is s_priv's public key, computed once by the caller
 * (sp_noise_public_key) and copied here, which saves one X25519 base-point
 * multiplication per handshake. NULL: derived from s_priv as init does.
 * The caller vouches that s_pub matches s_priv; a wrong one fails every
 * handshake with a peer that checks it.
 */
int sp_noise_handshake_init_keyed(struct sp_noise_handshake *hs, enum sp_noise_pattern p,
				  enum sp_noise_role r, const uint8_t *prologue,
				  size_t prologue_len, const uint8_t *s_priv,
				  const uint8_t *s_pub, const uint8_t *rs);
/* init_keyed with the suite's cipher chosen, as init_aead. */
int sp_noise_handshake_init_keyed_aead(struct sp_noise_handshake *hs, enum sp_noise_pattern p,
				       enum sp_noise_aead a, enum sp_noise_role r,
				       const uint8_t *prologue, size_t prologue_len,
				       const uint8_t *s_priv, const uint8_t *s_pub,
				       const uint8_t *rs);

/*
 * Test vectors only: fixes the ephemeral private key instead of drawing a
 * random one. Call after init, before the first message. Copied.
 */
int sp_noise_handshake_fix_ephemeral(struct sp_noise_handshake *hs, const uint8_t e_priv[SP_KEY_LEN]);

/*
 * Writes the next handshake message with payload into out.
 * payload: borrowed for the call. out: caller-owned, out_cap bytes; may not
 * overlap payload. *out_len receives the message length (<= SP_NOISE_MSG_MAX).
 */
int sp_noise_handshake_write(struct sp_noise_handshake *hs, const uint8_t *payload,
			     size_t payload_len, uint8_t *out, size_t out_cap, size_t *out_len);

/*
 * Reads the next handshake message. msg: borrowed for the call.
 * payload_out: caller-owned, payload_cap bytes (payload is at most len bytes).
 */
int sp_noise_handshake_read(struct sp_noise_handshake *hs, const uint8_t *msg, size_t len,
			    uint8_t *payload_out, size_t payload_cap, size_t *payload_len);

/*
 * In SP_NOISE_HS_SPLIT: derives the transport ciphers and wipes the
 * handshake's secrets (the handshake hash and remote static key stay
 * readable until sp_noise_handshake_wipe). Afterwards the state is
 * SP_NOISE_HS_EMPTY, so a second split gives -EINVAL. In the one-way
 * patterns (N, K, X) the unused direction has has_key = false (-EINVAL).
 */
int sp_noise_handshake_split(struct sp_noise_handshake *hs, struct sp_noise_transport *t);

/* The handshake hash h (64 bytes): valid after the last message. */
void sp_noise_handshake_hash(const struct sp_noise_handshake *hs, uint8_t out[SP_HASH_LEN]);

/* The peer's static public key once learned (or given); -ENOENT otherwise. */
int sp_noise_handshake_remote_static(const struct sp_noise_handshake *hs, uint8_t out[SP_KEY_LEN]);

void sp_noise_handshake_wipe(struct sp_noise_handshake *hs);

#endif
