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
enum { PROLOGUE_LEN = sizeof(prologue) - 1 }; /* without the NUL */

_Static_assert(sizeof(SP_SEAL_PROLOGUE) - 1 == 15, "prologue is 15 bytes, no NUL");
_Static_assert(SP_BODY_MAX - 1 <= SP_NOISE_MSG_MAX, "a sealed body is one Noise message");

int sp_seal(const uint8_t sender_priv[SP_KEY_LEN], const uint8_t recipient_pub[SP_KEY_LEN],
	    const uint8_t *msg, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
	struct sp_noise_handshake hs;
	size_t n = 0;
	int ret;

	if (!sender_priv || !recipient_pub || !out || !out_len || (len && !msg))
		return -EINVAL;
	if (len > SP_MESSAGE_MAX || cap < len + SP_SEAL_OVERHEAD)
		return -EMSGSIZE;
	ret = sp_noise_handshake_init(&hs, SP_NOISE_X, SP_NOISE_INITIATOR,
				      prologue, PROLOGUE_LEN,
				      sender_priv, recipient_pub);
	if (ret)
		goto out;
	out[0] = SP_SEAL_VERSION;
	/* -> e, es, s, ss + payload */
	ret = sp_noise_handshake_write(&hs, msg, len, out + 1, cap - 1, &n);
	if (ret)
		goto out;
	*out_len = 1 + n;
out:
	sp_noise_handshake_wipe(&hs);
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
	if (len < SP_SEAL_OVERHEAD || body[0] != SP_SEAL_VERSION)
		return -EBADMSG;
	if (cap < len - SP_SEAL_OVERHEAD)
		return -EMSGSIZE;
	ret = sp_noise_handshake_init(&hs, SP_NOISE_X, SP_NOISE_RESPONDER,
				      prologue, PROLOGUE_LEN,
				      recipient_priv, NULL);
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
	memcpy(sender_pub, rs, SP_KEY_LEN);
	*msg_len = n;
out:
	sp_noise_handshake_wipe(&hs);
	sodium_memzero(rs, sizeof(rs));
	return ret;
}
