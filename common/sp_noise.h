/*
 * sp_noise.h: the Noise Protocol Framework (revision 34) for
 * Noise_{IK,XX,X}_25519_ChaChaPoly_BLAKE2b, on libsodium primitives.
 *
 * Layering: this module sees plaintext and ciphertext buffers only; it knows
 * nothing of sockets, length prefixes or frames.
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
 * After any error from a handshake read/write, the handshake is in
 * SP_NOISE_HS_FAILED and must only be wiped.
 */
#ifndef SP_NOISE_H
#define SP_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

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

/* CipherState (Noise spec 5.1). k is a secret. */
struct sp_noise_cipher {
	uint8_t k[SP_KEY_LEN];
	uint64_t n;
	bool has_key;
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
	uint8_t e_priv[SP_KEY_LEN], e_pub[SP_KEY_LEN];
	uint8_t rs[SP_KEY_LEN], re[SP_KEY_LEN];
	bool has_s, has_e, has_rs, has_re;
};

/* The two CipherStates of a finished handshake, named for this side. */
struct sp_noise_transport {
	struct sp_noise_cipher tx;
	struct sp_noise_cipher rx;
};

/* The full protocol name, e.g. "Noise_IK_25519_ChaChaPoly_BLAKE2b". */
const char *sp_noise_protocol_name(enum sp_noise_pattern p);
/* Parses a protocol name; only the *_25519_ChaChaPoly_BLAKE2b suite is known. */
int sp_noise_pattern_from_name(const char *name, enum sp_noise_pattern *out);

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

/*
 * The same, for a side that starts many handshakes with one static key (the
 * broker): s_pub is s_priv's public key, computed once by the caller
 * (sp_noise_public_key) and copied here, which saves one X25519 base-point
 * multiplication per handshake. NULL: derived from s_priv as init does.
 * The caller vouches that s_pub matches s_priv; a wrong one fails every
 * handshake with a peer that checks it.
 */
int sp_noise_handshake_init_keyed(struct sp_noise_handshake *hs, enum sp_noise_pattern p,
				  enum sp_noise_role r, const uint8_t *prologue,
				  size_t prologue_len, const uint8_t *s_priv,
				  const uint8_t *s_pub, const uint8_t *rs);

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

/*
 * Transport encryption with an empty associated data (Noise 5.1 EncryptWithAd).
 * In place: buf holds len plaintext bytes and has room for len + SP_TAG_LEN.
 * buf: borrowed for the call.
 */
int sp_noise_encrypt(struct sp_noise_cipher *c, uint8_t *buf, size_t len);

/*
 * Gathered encryption: the plaintext is the concatenation of iov[0..n), and
 * the ciphertext (sum of lengths + SP_TAG_LEN) is written to out. The iov
 * bases are borrowed for the call; out is caller-owned and must not overlap
 * them. This is the hook for encrypting an envelope body straight from a
 * receive buffer into a send buffer.
 */
struct sp_noise_iov {
	const uint8_t *base;
	size_t len;
};
int sp_noise_encryptv(struct sp_noise_cipher *c, const struct sp_noise_iov *iov, size_t n,
		      uint8_t *out, size_t out_cap, size_t *out_len);

/*
 * Transport decryption in place: buf holds len ciphertext bytes (tag
 * included); on success *plain_len = len - SP_TAG_LEN and buf holds the
 * plaintext. On -EBADMSG the nonce is not advanced (the caller closes) and
 * buf's contents are unspecified (libsodium zeroes them).
 */
int sp_noise_decrypt(struct sp_noise_cipher *c, uint8_t *buf, size_t len, size_t *plain_len);

/*
 * Streaming encryption of ONE transport message, piece by piece, straight
 * into its final place: the broker uses it to encrypt a frame header and
 * then an envelope body read directly from a receive buffer into the
 * recipient's send buffer, with no intermediate plaintext copy. The result
 * is byte-for-byte what sp_noise_encrypt gives for the concatenated pieces.
 *
 * The work is deferred: update only records where a piece is, and the
 * pieces are encrypted together at flush/end (one keystream call for many
 * small pieces, the XOR fused with the move into out, one Poly1305 pass over
 * the whole ciphertext at end). Piece-by-piece ChaCha20 and Poly1305 calls
 * cost 1.5-3.8x one bulk AEAD for small frames.
 *
 *   begin: out is caller-owned and must stay valid (and unmoved) until end;
 *          cap bytes. The cipher must not be used otherwise until end/abort.
 *   update: in is BORROWED UNTIL the next flush, end or abort (not just for
 *          the call): it must stay valid and unchanged until then. Its
 *          ciphertext goes to out + s->len. in may be exactly out + s->len
 *          (a piece written in place, encrypted there) but must not overlap
 *          out otherwise. -EMSGSIZE if the message would exceed
 *          SP_TRANSPORT_PLAINTEXT_MAX or cap - SP_TAG_LEN (nothing recorded).
 *          When SP_NOISE_STREAM_PIECES pieces are pending, the pending ones
 *          are encrypted first (as flush).
 *   flush: encrypts the pending pieces now; the inputs given so far are no
 *          longer borrowed.
 *   end:   flushes, appends the tag, advances the cipher's nonce, *msg_len =
 *          bytes written (plaintext + SP_TAG_LEN), wipes the stream state.
 *   abort: wipes the stream state; pending pieces are dropped unread, out's
 *          contents are unspecified; the nonce is not consumed.
 */
enum { SP_NOISE_STREAM_PIECES = 16 };
struct sp_noise_stream {
	struct sp_noise_cipher *c;
	uint8_t *out;
	size_t cap;
	size_t len;                     /* plaintext bytes taken (encrypted or pending) */
	size_t done;                    /* bytes of out already encrypted */
	const uint8_t *src[SP_NOISE_STREAM_PIECES]; /* pending pieces, in order from done */
	uint32_t n[SP_NOISE_STREAM_PIECES];
	uint8_t npieces;
	bool open;
	bool have_ks;                   /* ks holds keystream block ks_block */
	bool have_poly_key;
	uint32_t ks_block;
	uint8_t ks[64];                 /* the last, partly used keystream block */
	uint8_t poly_key[32];           /* from keystream block 0 */
};
int sp_noise_stream_begin(struct sp_noise_stream *s, struct sp_noise_cipher *c, uint8_t *out,
			  size_t cap);
int sp_noise_stream_update(struct sp_noise_stream *s, const uint8_t *in, size_t len);
int sp_noise_stream_flush(struct sp_noise_stream *s);
int sp_noise_stream_end(struct sp_noise_stream *s, size_t *msg_len);
void sp_noise_stream_abort(struct sp_noise_stream *s);

void sp_noise_transport_wipe(struct sp_noise_transport *t);

/* Derives the X25519 public key from a private key. */
int sp_noise_public_key(uint8_t pub[SP_KEY_LEN], const uint8_t priv[SP_KEY_LEN]);
/* Fresh random key pair. */
void sp_noise_keypair(uint8_t pub[SP_KEY_LEN], uint8_t priv[SP_KEY_LEN]);
/*
 * Is this 32-byte string acceptable as a peer's static public key? Rejects
 * the low-order points (all of which give an all-zero DH output).
 */
bool sp_noise_key_valid(const uint8_t pub[SP_KEY_LEN]);

#endif
