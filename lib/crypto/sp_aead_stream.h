/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_aead_stream.h: the Noise transport ciphers (CipherState, Noise spec 5.1)
 * after the handshake: ChaCha20-Poly1305-IETF or AES-256-GCM (the cipher the
 * handshake negotiated, sp_noise_aead) with an empty associated data,
 * message by message, gathered, or streamed piece by piece into place.
 *
 * AES-256-GCM is libsodium's, which exists only where the CPU has AES-NI
 * and PCLMUL (crypto_aead_aes256gcm_is_available): a cipher with
 * SP_NOISE_AESGCM is only ever made by a handshake that checked it
 * (sp_noise_aead_available), so the per-message functions do not check.
 * It uses libsodium's plain API (the key schedule per message, ~30 ns at
 * 256 B on the machine of docs/BENCHMARKS.md), not the precomputed
 * crypto_aead_aes256gcm_state: that state is 512 bytes of key material
 * per direction, which would have to live in the locked slab and would
 * triple every session's slot (docs/ARCHITECTURE.md).
 *
 * Layering: crypto. Apart from the handshake (sp_noise.h) because this is
 * the per-message hot path and the handshake is not: the handshake only
 * produces a struct sp_noise_transport, everything after uses this file.
 *
 * Secrets: a cipher's k is a secret; wipe a transport with
 * sp_noise_transport_wipe on every path out. Nothing here logs.
 *
 * Threading: no global state; a cipher is used by one thread at a time.
 *
 * Errors: 0 or a negative errno:
 *   -EINVAL    cipher without a key, or bad argument
 *   -EMSGSIZE  output buffer too small, or message too long / too short
 *   -EBADMSG   authentication failed (tag mismatch)
 *   -EOVERFLOW nonce exhausted (2^64 - 1 is reserved: the connection ends)
 */
#ifndef SP_AEAD_STREAM_H
#define SP_AEAD_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"

/* The AEAD of a Noise suite (the CipherFunctions of Noise spec 5.1/12). */
enum sp_noise_aead {
	SP_NOISE_CHACHAPOLY = 0,        /* ChaCha20-Poly1305-IETF, nonce counter little-endian */
	SP_NOISE_AESGCM = 1,            /* AES-256-GCM, nonce counter big-endian */
};

/* Whether this process can use the AEAD: always for ChaChaPoly; for
 * AESGCM only where libsodium says the CPU has AES-NI and PCLMUL (needs
 * sodium_init first). */
bool sp_noise_aead_available(enum sp_noise_aead a);

/* CipherState (Noise spec 5.1). k is a secret. */
struct sp_noise_cipher {
	uint8_t k[SP_KEY_LEN];
	uint64_t n;
	bool has_key;
	uint8_t aead;                   /* enum sp_noise_aead, set with the key by the split */
	/* Messages per key before REKEY (Noise 11.3): 0 means the protocol's
	 * SP_REKEY_MESSAGES. Written only by sp_noise_transport_set_rekey
	 * (tests lower it to cross the boundary quickly). 32 bits, since no
	 * value above SP_REKEY_MESSAGES is taken: the cipher is 48 bytes and
	 * a connection's two fit a 96-byte secrets slot (sp_session.h). */
	uint32_t rekey_every;
};

/* The two CipherStates of a finished handshake, named for this side. */
struct sp_noise_transport {
	struct sp_noise_cipher tx;
	struct sp_noise_cipher rx;
};

/*
 * The 96-bit IETF nonce for counter n: 4 zero bytes, then n little-endian
 * (Noise 12.3, ChaChaPoly). Shared with the handshake's EncryptAndHash.
 */
static inline void sp_aead_nonce(uint8_t nonce[12], uint64_t n)
{
	for (int i = 0; i < 4; i++)
		nonce[i] = 0;
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(n >> (8 * i));
}

/* The AES-GCM nonce for counter n: 4 zero bytes, then n big-endian
 * (Noise 12.4, AESGCM). */
static inline void sp_aead_nonce_be(uint8_t nonce[12], uint64_t n)
{
	for (int i = 0; i < 4; i++)
		nonce[i] = 0;
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(n >> (8 * (7 - i)));
}

/*
 * ENCRYPT(k, n, ad, plaintext) of the suite's AEAD (Noise 5.1): out gets
 * len ciphertext bytes and the SP_TAG_LEN tag. in may be exactly out (in
 * place) but must not overlap it otherwise. All buffers borrowed for the
 * call. The caller made sure the AEAD is available.
 */
void sp_aead_seal(enum sp_noise_aead a, const uint8_t k[SP_KEY_LEN], uint64_t n,
		  const uint8_t *ad, size_t ad_len, const uint8_t *in, size_t len, uint8_t *out);

/*
 * DECRYPT(k, n, ad, ciphertext): in holds len bytes, tag included
 * (len >= SP_TAG_LEN); out gets len - SP_TAG_LEN bytes. in may be exactly
 * out. 0 or -EBADMSG (out's contents then unspecified).
 */
int sp_aead_open(enum sp_noise_aead a, const uint8_t k[SP_KEY_LEN], uint64_t n,
		 const uint8_t *ad, size_t ad_len, const uint8_t *in, size_t len, uint8_t *out);

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
 * cost 1.5-3.8x one bulk AEAD for small frames. With AESGCM (libsodium has
 * no incremental AES-GCM) a flush moves the pending plaintext into place in
 * out and end encrypts the whole message there in one call; until end, out
 * holds plaintext, as it does for a piece written in place.
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

/*
 * REKEY (Noise 4.2 / 11.3): k = the first 32 bytes of
 * ENCRYPT(k, 2^64 - 1, empty ad, 32 zero bytes) with the cipher's own AEAD
 * (neither ChaChaPoly nor AESGCM defines a REKEY of its own); n is not
 * changed. Every
 * transport function above calls it by itself after the message that
 * completes SP_REKEY_MESSAGES (or rekey_every) messages under one key, on
 * both sides, so callers never need to; it is public for tests and for
 * vectors. -EINVAL for a cipher without a key.
 */
int sp_noise_rekey(struct sp_noise_cipher *c);

/*
 * Both ciphers of t rekey every `every` messages instead of
 * SP_REKEY_MESSAGES (0: the protocol's value again). For tests only: a
 * peer that does not use the same value cannot read the messages after
 * the first rekey (the broker's --test-rekey-messages, libsealpost's
 * SEALPOST_TEST_REKEY_MESSAGES). A value above SP_REKEY_MESSAGES is
 * taken as SP_REKEY_MESSAGES.
 */
void sp_noise_transport_set_rekey(struct sp_noise_transport *t, uint64_t every);


#endif
