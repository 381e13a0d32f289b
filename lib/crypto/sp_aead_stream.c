/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_aead_stream.c: Noise transport encryption and decryption, one message
 * at a time, gathered, or streamed in pieces straight into the send buffer.
 */
#include "sp_aead_stream.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

void sp_noise_transport_wipe(struct sp_noise_transport *t)
{
	if (t)
		sodium_memzero(t, sizeof(*t));
}

_Static_assert(crypto_aead_aes256gcm_KEYBYTES == SP_KEY_LEN, "AES-256-GCM key size");
_Static_assert(crypto_aead_aes256gcm_ABYTES == SP_TAG_LEN, "AES-256-GCM tag size");
_Static_assert(crypto_aead_aes256gcm_NPUBBYTES == 12, "AES-256-GCM nonce size");

bool sp_noise_aead_available(enum sp_noise_aead a)
{
	if (a == SP_NOISE_CHACHAPOLY)
		return true;
	return a == SP_NOISE_AESGCM && crypto_aead_aes256gcm_is_available();
}

/* ---- the two AEADs (Noise 12.3, 12.4) ----------------------------------------- */

void sp_aead_seal(enum sp_noise_aead a, const uint8_t k[SP_KEY_LEN], uint64_t n,
		  const uint8_t *ad, size_t ad_len, const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t nonce[12];

	if (a == SP_NOISE_AESGCM) {
		sp_aead_nonce_be(nonce, n);
		crypto_aead_aes256gcm_encrypt(out, NULL, in, len, ad, ad_len, NULL, nonce, k);
	} else {
		sp_aead_nonce(nonce, n);
		crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, in, len, ad, ad_len, NULL,
							  nonce, k);
	}
}

int sp_aead_open(enum sp_noise_aead a, const uint8_t k[SP_KEY_LEN], uint64_t n,
		 const uint8_t *ad, size_t ad_len, const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t nonce[12];
	int ret;

	if (a == SP_NOISE_AESGCM) {
		sp_aead_nonce_be(nonce, n);
		ret = crypto_aead_aes256gcm_decrypt(out, NULL, NULL, in, len, ad, ad_len, nonce, k);
	} else {
		sp_aead_nonce(nonce, n);
		ret = crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, in, len, ad, ad_len,
								nonce, k);
	}
	return ret ? -EBADMSG : 0;
}

/* ---- transport ------------------------------------------------------------------ */

int sp_noise_rekey(struct sp_noise_cipher *c)
{
	uint8_t buf[SP_KEY_LEN + SP_TAG_LEN];

	if (!c || !c->has_key)
		return -EINVAL;
	/* ENCRYPT(k, maxnonce, zerolen, zeros): the ciphertext of 32 zero
	 * bytes (the tag after it is discarded), as Noise 4.2 defines REKEY
	 * for ciphers without a rekey function of their own. */
	memset(buf, 0, SP_KEY_LEN);
	sp_aead_seal((enum sp_noise_aead)c->aead, c->k, UINT64_MAX, NULL, 0, buf, SP_KEY_LEN, buf);
	memcpy(c->k, buf, SP_KEY_LEN);
	sodium_memzero(buf, sizeof(buf));
	return 0;
}

void sp_noise_transport_set_rekey(struct sp_noise_transport *t, uint64_t every)
{
	if (every > SP_REKEY_MESSAGES)
		every = SP_REKEY_MESSAGES;
	t->tx.rekey_every = (uint32_t)every;
	t->rx.rekey_every = (uint32_t)every;
}

/* A message used nonce n: the next one uses n + 1, under a fresh key when
 * n + 1 completes an interval. Both sides count the same messages, so they
 * rekey at the same message without saying so on the wire. */
static void cipher_advance(struct sp_noise_cipher *c)
{
	uint64_t every = c->rekey_every ? c->rekey_every : SP_REKEY_MESSAGES;

	c->n++;
	if (c->n % every == 0)
		sp_noise_rekey(c);
}

static int cipher_ready(const struct sp_noise_cipher *c)
{
	if (!c || !c->has_key)
		return -EINVAL;
	if (c->n == UINT64_MAX) /* reserved by Noise 5.1 */
		return -EOVERFLOW;
	return 0;
}

int sp_noise_encrypt(struct sp_noise_cipher *c, uint8_t *buf, size_t len)
{
	int ret = cipher_ready(c);

	if (ret)
		return ret;
	if (!buf || len > SP_TRANSPORT_PLAINTEXT_MAX)
		return buf ? -EMSGSIZE : -EINVAL;
	sp_aead_seal((enum sp_noise_aead)c->aead, c->k, c->n, NULL, 0, buf, len, buf);
	cipher_advance(c);
	return 0;
}

int sp_noise_decrypt(struct sp_noise_cipher *c, uint8_t *buf, size_t len, size_t *plain_len)
{
	int ret = cipher_ready(c);

	if (ret)
		return ret;
	if (!buf || !plain_len)
		return -EINVAL;
	if (len < SP_TAG_LEN || len > SP_NOISE_MSG_MAX)
		return -EMSGSIZE;
	if (sp_aead_open((enum sp_noise_aead)c->aead, c->k, c->n, NULL, 0, buf, len, buf))
		return -EBADMSG;
	cipher_advance(c);
	*plain_len = len - SP_TAG_LEN;
	return 0;
}

/*
 * Streaming ChaCha20-Poly1305-IETF (RFC 8439), deferred. Keystream block 0
 * gives the Poly1305 key; plaintext byte o uses keystream byte 64 + o, so
 * positions below are in keystream bytes (ciphertext offset + 64). A flush
 * walks the pending pieces in order: bytes covered by the current window of
 * keystream are XORed from the piece into place; a piece starting on a block
 * boundary with at least STREAM_DIRECT bytes goes through libsodium's xor_ic
 * directly (large bodies: one pass, as fast as it gets); anything else
 * refills the window with keystream for everything still pending (up to
 * STREAM_WINDOW bytes) in one call. The last, partly used block is kept in
 * s->ks for the next flush. Poly1305 runs once at end over the contiguous
 * ciphertext in out.
 */
enum { STREAM_WINDOW = 2048, STREAM_DIRECT = 512 };

struct ks_window {
	uint8_t *buf;
	size_t from;                    /* keystream position of buf[0], a block boundary */
	size_t len;
};

static void xor_into(uint8_t *dst, const uint8_t *src, const uint8_t *ks, size_t n)
{
	size_t i = 0;

	/* dst == src (in place) is fine: each word is read before written. */
	for (; i + 8 <= n; i += 8) {
		uint64_t a, k;

		memcpy(&a, src + i, 8);
		memcpy(&k, ks + i, 8);
		a ^= k;
		memcpy(dst + i, &a, 8);
	}
	for (; i < n; i++)
		dst[i] = src[i] ^ ks[i];
}

static void window_fill(struct sp_noise_stream *s, struct ks_window *w, const uint8_t *nonce,
			size_t pos, size_t end)
{
	size_t from = pos & ~(size_t)63;
	size_t len;

	/* The message's first window also yields block 0, the Poly1305 key:
	 * one keystream call instead of two. */
	if (from == 64 && !s->have_poly_key)
		from = 0;
	len = ((end - from) + 63) & ~(size_t)63;

	if (len > STREAM_WINDOW)
		len = STREAM_WINDOW;
	memset(w->buf, 0, len);
	crypto_stream_chacha20_ietf_xor_ic(w->buf, w->buf, len, nonce, (uint32_t)(from / 64),
					   s->c->k);
	w->from = from;
	w->len = len;
	if (from == 0) {
		memcpy(s->poly_key, w->buf, sizeof(s->poly_key));
		s->have_poly_key = true;
	}
}

/* AESGCM: the pending pieces are moved into place; end encrypts them. */
static void stream_gather(struct sp_noise_stream *s)
{
	size_t pos = s->done;

	for (unsigned i = 0; i < s->npieces; i++) {
		if (s->src[i] != s->out + pos)
			memmove(s->out + pos, s->src[i], s->n[i]);
		pos += s->n[i];
	}
	s->done = s->len;
	s->npieces = 0;
}

static void stream_flush(struct sp_noise_stream *s)
{
	uint8_t buf[STREAM_WINDOW], nonce[12];
	struct ks_window w = { buf, 0, 0 };
	size_t pos = 64 + s->done, used = 0;

	if (s->npieces == 0)
		return;
	if (s->c->aead == SP_NOISE_AESGCM) {
		stream_gather(s);
		return;
	}
	sp_aead_nonce(nonce, s->c->n);
	if (s->have_ks) {
		memcpy(buf, s->ks, sizeof(s->ks));
		w.from = (size_t)s->ks_block * 64;
		w.len = sizeof(s->ks);
	}
	for (unsigned i = 0; i < s->npieces; i++) {
		const uint8_t *src = s->src[i];
		size_t n = s->n[i];

		while (n) {
			uint8_t *dst = s->out + (pos - 64);
			size_t k;

			if (pos >= w.from && pos < w.from + w.len) {
				k = w.from + w.len - pos;
				if (k > n)
					k = n;
				xor_into(dst, src, buf + (pos - w.from), k);
			} else if (pos % 64 == 0 && n >= STREAM_DIRECT) {
				k = n & ~(size_t)63;
				crypto_stream_chacha20_ietf_xor_ic(dst, src, k, nonce,
								   (uint32_t)(pos / 64), s->c->k);
			} else {
				window_fill(s, &w, nonce, pos, 64 + s->len);
				if (w.len > used)
					used = w.len;
				continue;
			}
			src += k;
			n -= k;
			pos += k;
		}
	}
	/* Keep the block the next piece starts in, if it is in the window. */
	s->have_ks = pos % 64 && pos >= w.from && pos < w.from + w.len;
	if (s->have_ks) {
		memcpy(s->ks, buf + ((pos & ~(size_t)63) - w.from), sizeof(s->ks));
		s->ks_block = (uint32_t)(pos / 64);
	}
	s->done = s->len;
	s->npieces = 0;
	sodium_memzero(buf, used > sizeof(s->ks) ? used : sizeof(s->ks));
}

static void stream_wipe(struct sp_noise_stream *s)
{
	/* The only wipe per message: begin sets every field it relies on. */
	sodium_memzero(s, sizeof(*s));
}

int sp_noise_stream_begin(struct sp_noise_stream *s, struct sp_noise_cipher *c, uint8_t *out,
			  size_t cap)
{
	int ret;

	if (!s)
		return -EINVAL;
	/* No wipe here: every field a flush or end reads is set below or on
	 * the way, and the previous end/abort wiped the secrets. */
	s->open = false;
	ret = cipher_ready(c);
	if (ret)
		return ret;
	if (!out)
		return -EINVAL;
	if (cap < SP_TAG_LEN)
		return -EMSGSIZE;
	s->c = c;
	s->out = out;
	s->cap = cap;
	s->len = 0;
	s->done = 0;
	s->npieces = 0;
	s->have_ks = false;
	s->have_poly_key = false;
	s->open = true;
	return 0;
}

int sp_noise_stream_update(struct sp_noise_stream *s, const uint8_t *in, size_t len)
{
	size_t limit;
	unsigned last;

	if (!s || !s->open || (len && !in))
		return -EINVAL;
	limit = s->cap - SP_TAG_LEN;
	if (limit > SP_TRANSPORT_PLAINTEXT_MAX)
		limit = SP_TRANSPORT_PLAINTEXT_MAX;
	if (len > limit - s->len)
		return -EMSGSIZE;
	if (len == 0)
		return 0;
	last = s->npieces - 1u;
	if (s->npieces && s->src[last] + s->n[last] == in) {
		/* Continues the previous piece (e.g. in place after in place). */
		s->n[last] += (uint32_t)len;
	} else {
		if (s->npieces == SP_NOISE_STREAM_PIECES)
			stream_flush(s);
		s->src[s->npieces] = in;
		s->n[s->npieces] = (uint32_t)len;
		s->npieces++;
	}
	s->len += len;
	return 0;
}

int sp_noise_stream_flush(struct sp_noise_stream *s)
{
	if (!s || !s->open)
		return -EINVAL;
	stream_flush(s);
	return 0;
}

int sp_noise_stream_end(struct sp_noise_stream *s, size_t *msg_len)
{
	static const uint8_t zeros[16];
	crypto_onetimeauth_poly1305_state poly;
	uint8_t lens[16], nonce[12];
	uint64_t ct_len;

	if (!s || !s->open || !msg_len)
		return -EINVAL;
	stream_flush(s);
	if (s->c->aead == SP_NOISE_AESGCM) {
		sp_aead_seal(SP_NOISE_AESGCM, s->c->k, s->c->n, NULL, 0, s->out, s->len, s->out);
		goto done;
	}
	if (!s->have_poly_key) {
		sp_aead_nonce(nonce, s->c->n);
		crypto_stream_chacha20_ietf(s->poly_key, sizeof(s->poly_key), nonce, s->c->k);
	}
	crypto_onetimeauth_poly1305_init(&poly, s->poly_key);
	crypto_onetimeauth_poly1305_update(&poly, s->out, s->len);
	/* pad16(ciphertext) || le64(ad_len = 0) || le64(ct_len) */
	if (s->len % 16)
		crypto_onetimeauth_poly1305_update(&poly, zeros, 16 - s->len % 16);
	ct_len = s->len;
	memset(lens, 0, 8);
	for (int i = 0; i < 8; i++)
		lens[8 + i] = (uint8_t)(ct_len >> (8 * i));
	crypto_onetimeauth_poly1305_update(&poly, lens, sizeof(lens));
	crypto_onetimeauth_poly1305_final(&poly, s->out + s->len);
	sodium_memzero(&poly, sizeof(poly));
done:
	cipher_advance(s->c);
	*msg_len = s->len + SP_TAG_LEN;
	stream_wipe(s);
	return 0;
}

void sp_noise_stream_abort(struct sp_noise_stream *s)
{
	if (s)
		stream_wipe(s);
}

int sp_noise_encryptv(struct sp_noise_cipher *c, const struct sp_noise_iov *iov, size_t n,
		      uint8_t *out, size_t out_cap, size_t *out_len)
{
	struct sp_noise_stream s;
	int ret;

	if ((n && !iov) || !out_len)
		return -EINVAL;
	ret = sp_noise_stream_begin(&s, c, out, out_cap);
	if (ret)
		goto out;
	for (size_t i = 0; i < n; i++) {
		ret = sp_noise_stream_update(&s, iov[i].base, iov[i].len);
		if (ret)
			goto out;
	}
	ret = sp_noise_stream_end(&s, out_len);
out:
	stream_wipe(&s);
	return ret;
}
