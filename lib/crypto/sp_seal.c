/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_seal.c: sealed envelopes as one Noise_X message (see sp_seal.h).
 *
 * Why Noise_X: one message, no reply needed, the recipient's static key is
 * known in advance, and the sender's static key travels encrypted, so the
 * broker (which forwards the body) cannot tell who wrote it.
 */
#include <errno.h>
#include <string.h>

#include "sp_noise.h"
#include "sp_seal.h"

static const uint8_t prologue[] = SP_SEAL_PROLOGUE;
static const uint8_t prologue_padded[] = SP_SEAL_PROLOGUE_PADDED;
enum { PROLOGUE_LEN = sizeof(prologue) - 1 }; /* without the NUL */
_Static_assert(sizeof(prologue) == sizeof(prologue_padded), "one prologue length");

_Static_assert(sizeof(SP_SEAL_PROLOGUE) - 1 == 15, "prologue is 15 bytes, no NUL");
_Static_assert(SP_BODY_MAX - 1 <= SP_NOISE_MSG_MAX, "a sealed body is one Noise message");

/* One Noise_X message with the prologue of version ver, payload msg. */
static int seal_ver(uint8_t ver, const uint8_t sender_priv[SP_KEY_LEN],
		    const uint8_t recipient_pub[SP_KEY_LEN], const uint8_t *msg, size_t len,
		    uint8_t *out, size_t cap, size_t *out_len)
{
	struct sp_noise_handshake hs;
	size_t n = 0;
	int ret;

	ret = sp_noise_handshake_init(&hs, SP_NOISE_X, SP_NOISE_INITIATOR,
				      ver == SP_SEAL_VERSION ? prologue : prologue_padded,
				      PROLOGUE_LEN, sender_priv, recipient_pub);
	if (ret)
		goto out;
	out[0] = ver;
	/* -> e, es, s, ss + payload */
	ret = sp_noise_handshake_write(&hs, msg, len, out + 1, cap - 1, &n);
	if (ret)
		goto out;
	*out_len = 1 + n;
out:
	sp_noise_handshake_wipe(&hs);
	return ret;
}

int sp_seal(const uint8_t sender_priv[SP_KEY_LEN], const uint8_t recipient_pub[SP_KEY_LEN],
	    const uint8_t *msg, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
	if (!sender_priv || !recipient_pub || !out || !out_len || (len && !msg))
		return -EINVAL;
	if (len > SP_MESSAGE_MAX || cap < len + SP_SEAL_OVERHEAD)
		return -EMSGSIZE;
	return seal_ver(SP_SEAL_VERSION, sender_priv, recipient_pub, msg, len, out, cap, out_len);
}

size_t sp_seal_pad_bucket(size_t len, size_t max_payload)
{
	size_t b;

	if (max_payload > SP_MESSAGE_MAX)
		max_payload = SP_MESSAGE_MAX;
	if (len >= max_payload)
		return 0;       /* no room for the 0x80 */
	for (b = SP_SEAL_PAD_MIN; b <= SP_SEAL_PAD_MAX_BUCKET; b *= 2)
		if (len + 1 <= b)
			return b <= max_payload ? b : max_payload;
	return max_payload;
}

int sp_seal_padded(const uint8_t sender_priv[SP_KEY_LEN], const uint8_t recipient_pub[SP_KEY_LEN],
		   const uint8_t *msg, size_t len, size_t max_payload, uint8_t *out, size_t cap,
		   size_t *out_len)
{
	size_t b, padded = 0;
	uint8_t *buf;
	int ret;

	if (!sender_priv || !recipient_pub || !out || !out_len || (len && !msg))
		return -EINVAL;
	b = sp_seal_pad_bucket(len, max_payload);
	if (!b || cap < b + SP_SEAL_OVERHEAD)
		return -EMSGSIZE;
	/* sodium_malloc: the plaintext sits in guarded memory while sealed. */
	buf = sodium_malloc(b);
	if (!buf)
		return -ENOMEM;
	if (len)
		memcpy(buf, msg, len);
	/* ISO/IEC 7816-4 (sodium_pad): 0x80, then zeros up to the bucket. */
	if (sodium_pad(&padded, buf, len, b, b) != 0 || padded != b)
		ret = -EMSGSIZE;
	else
		ret = seal_ver(SP_SEAL_VERSION_PADDED, sender_priv, recipient_pub, buf, b, out, cap,
			       out_len);
	sodium_free(buf);  /* wipes */
	return ret;
}

int sp_seal_open(const uint8_t recipient_priv[SP_KEY_LEN], const uint8_t *body, size_t len,
		 uint8_t sender_pub[SP_KEY_LEN], uint8_t *msg_out, size_t cap, size_t *msg_len)
{
	struct sp_noise_handshake hs;
	uint8_t rs[SP_KEY_LEN];
	size_t n = 0;
	int ret;

	if (!recipient_priv || !body || !sender_pub || !msg_len || (cap && !msg_out))
		return -EINVAL;
	if (len > SP_BODY_MAX)
		return -EMSGSIZE;
	if (len < SP_SEAL_OVERHEAD ||
	    (body[0] != SP_SEAL_VERSION && body[0] != SP_SEAL_VERSION_PADDED))
		return -EBADMSG;
	if (cap < len - SP_SEAL_OVERHEAD)
		return -EMSGSIZE;
	ret = sp_noise_handshake_init(&hs, SP_NOISE_X, SP_NOISE_RESPONDER,
				      body[0] == SP_SEAL_VERSION ? prologue : prologue_padded,
				      PROLOGUE_LEN, recipient_priv, NULL);
	if (ret)
		goto out;
	/* <- e, es, s, ss + payload; the low-order check on s is inside */
	ret = sp_noise_handshake_read(&hs, body + 1, len - 1, msg_out, cap, &n);
	if (ret)
		goto out;
	ret = sp_noise_handshake_remote_static(&hs, rs);
	if (ret) {
		ret = -EBADMSG; /* cannot happen after a good X message */
		goto out;
	}
	if (body[0] == SP_SEAL_VERSION_PADDED) {
		size_t u = 0;

		/* Authenticated, so the padding is the sender's: a bad one is a
		 * broken sender, refused like a bad seal. */
		if (n == 0 || sodium_unpad(&u, msg_out, n, n) != 0) {
			sodium_memzero(msg_out, n);
			ret = -EBADMSG;
			goto out;
		}
		sodium_memzero(msg_out + u, n - u);
		n = u;
	}
	memcpy(sender_pub, rs, SP_KEY_LEN);
	*msg_len = n;
out:
	sp_noise_handshake_wipe(&hs);
	sodium_memzero(rs, sizeof(rs));
	return ret;
}
