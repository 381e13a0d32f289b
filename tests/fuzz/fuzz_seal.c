/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_seal.c: sp_seal_open, the first-contact open (sp_fcseal_open,
 * PROTOCOL.md 7.2) and the ratchet's (sp_ratchet_decrypt, 7.3) on
 * arbitrary bodies (what a client library gets from any sender through
 * the broker), plus the seal/open round trips with the input as the
 * message. A ratchet body that does not open leaves the session as it was.
 *
 * Keys are fixed so that the seed corpus (valid seals to the recipient key
 * below) opens, and mutations start from bodies that get past the version
 * byte and the DH steps.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sp_fcseal.h"
#include "sp_noise.h"
#include "sp_ratchet.h"
#include "sp_seal.h"

/* Fixed test keys: never used anywhere else. */
static const uint8_t sender_priv[SP_KEY_LEN] = { 0x5e, 0x4d, 0xe4, 0x01, 0x02, 0x03, 0x04, 5 };
static const uint8_t recipient_priv[SP_KEY_LEN] = { 0x4e, 0xc1, 0x01, 0x0e, 0x47, 0x06, 0x07, 8 };

static const uint8_t spk_priv[SP_KEY_LEN] = { 0x53, 0x50, 0x4b, 1, 2, 3, 4, 9 };
static const uint8_t opk_priv[SP_KEY_LEN] = { 0x4f, 0x50, 0x4b, 1, 2, 3, 4, 10 };
static const uint8_t eph_priv[SP_KEY_LEN] = { 0x45, 0x50, 0x48, 1, 2, 3, 4, 11 };

static uint8_t msg[SP_BODY_MAX + 1], body[SP_BODY_MAX + 1];

static void check(int ok)
{
	if (!ok)
		abort();
}

/* First contact: opening anything, then the round trip (one-time prekey
 * or not, by the input's first byte). */
static void first_contact(const uint8_t *data, size_t size, const uint8_t sender_pub[SP_KEY_LEN],
			  const uint8_t recipient_pub[SP_KEY_LEN])
{
	struct sp_fcseal_to to = { .spk_id = 3, .opk_id = 4 };
	struct sp_fcseal_hdr h;
	uint8_t from[SP_KEY_LEN];
	size_t n = 0, body_len = 0;
	int ret;

	if (sp_fcseal_header(data, size, &h) == 0) {
		ret = sp_fcseal_open(recipient_priv, spk_priv, h.has_opk ? opk_priv : NULL, data, size,
				     from, msg, sizeof(msg), &n);
		check(ret == -EBADMSG || (ret == 0 && n < size - SP_FCSEAL_OVERHEAD + 1));
	}
	memcpy(to.ik, recipient_pub, SP_KEY_LEN);
	check(sp_noise_public_key(to.spk, spk_priv) == 0);
	check(sp_noise_public_key(to.opk, opk_priv) == 0);
	to.has_opk = size && (data[0] & 1);
	if (!to.has_opk)
		to.opk_id = 0;
	ret = sp_fcseal_seal(sender_priv, eph_priv, &to, data, size, SP_BODY_MAX - SP_FCSEAL_OVERHEAD,
			     body, sizeof(body), &body_len);
	if (size + 1 > SP_BODY_MAX - SP_FCSEAL_OVERHEAD) {
		check(ret == -EMSGSIZE);
		return;
	}
	check(ret == 0);
	check(sp_fcseal_open(recipient_priv, spk_priv, to.has_opk ? opk_priv : NULL, body, body_len,
			     from, msg, sizeof(msg), &n) == 0);
	check(n == size && (size == 0 || memcmp(msg, data, size) == 0));
	check(memcmp(from, sender_pub, SP_KEY_LEN) == 0);
}

/* Ratchet: one fixed session pair, copied per input; a version 4 input
 * gets the session's tag written in, so mutations reach the header's
 * other fields and the AEAD. */
static void ratchet(const uint8_t *data, size_t size)
{
	static struct sp_ratchet alice0, bob0, a, b;
	static uint8_t in[SP_BODY_MAX + 1], before[1 << 16], after[1 << 16];
	static const uint8_t fresh[32] = { 0x46, 0x52, 1, 2, 3 };
	static bool ready;
	size_t n = 0, body_len = 0, bl;
	int ret;

	if (!ready) {
		uint8_t sk[32] = { 0x53, 0x4b }, ad[64] = { 1 }, ek_pub[32], spk_pub[32];

		check(sp_noise_public_key(ek_pub, eph_priv) == 0);
		check(sp_noise_public_key(spk_pub, spk_priv) == 0);
		check(sp_ratchet_init_alice(&alice0, sk, ad, eph_priv, spk_pub) == 0);
		check(sp_ratchet_init_bob(&bob0, sk, ad, spk_priv, ek_pub, fresh) == 0);
		ready = true;
	}
	a = alice0;
	b = bob0;
	if (size <= SP_BODY_MAX) {
		memcpy(in, data, size);
		if (size > SP_RATCHET_SID_LEN && in[0] == SP_RATCHET_VERSION)
			memcpy(in + 1, b.tag_recv, SP_RATCHET_SID_LEN);
		bl = sp_ratchet_encoded_len(&b);
		sp_ratchet_encode(&b, before);
		ret = sp_ratchet_decrypt(&b, in, size, fresh, msg, sizeof(msg), &n);
		check(ret == 0 || ret == -EBADMSG || ret == -ERANGE || ret == -EMSGSIZE ||
		      ret == -EINVAL || ret == -ENOMEM);
		if (ret < 0) {
			check(sp_ratchet_encoded_len(&b) == bl);
			sp_ratchet_encode(&b, after);
			check(memcmp(before, after, bl) == 0);
		}
		b = bob0;
	}
	ret = sp_ratchet_encrypt(&a, data, size, SP_BODY_MAX - SP_RATCHET_OVERHEAD, size & 1, body,
				 sizeof(body), &body_len);
	if (ret == -EMSGSIZE) {
		check(size + 1 > SP_BODY_MAX - SP_RATCHET_OVERHEAD);
		return;
	}
	check(ret == 0);
	check(sp_ratchet_decrypt(&b, body, body_len, fresh, msg, sizeof(msg), &n) == 0);
	check(n == size && (size == 0 || memcmp(msg, data, size) == 0));
	check(sp_ratchet_decrypt(&b, body, body_len, fresh, msg, sizeof(msg), &n) == -EBADMSG);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t sender_pub[SP_KEY_LEN], recipient_pub[SP_KEY_LEN];
	static bool ready;
	uint8_t from[SP_KEY_LEN];
	size_t n = 0, body_len = 0;
	int ret;

	if (!ready) {
		check(sodium_init() >= 0);
		check(sp_noise_public_key(sender_pub, sender_priv) == 0);
		check(sp_noise_public_key(recipient_pub, recipient_priv) == 0);
		ready = true;
	}

	/* opening anything: an error, or a message of exactly the right size */
	ret = sp_seal_open(recipient_priv, data, size, from, msg, sizeof(msg), &n);
	if (ret == 0)
		check(size >= SP_SEAL_OVERHEAD && n == size - SP_SEAL_OVERHEAD &&
		      sp_noise_key_valid(from));
	else
		check(ret == -EBADMSG || ret == -EMSGSIZE);

	first_contact(data, size, sender_pub, recipient_pub);
	ratchet(data, size);

	/* round trip of the input as a message */
	ret = sp_seal(sender_priv, recipient_pub, data, size, body, sizeof(body), &body_len);
	if (size > SP_MESSAGE_MAX) {
		check(ret == -EMSGSIZE);
		return 0;
	}
	check(ret == 0 && body_len == size + SP_SEAL_OVERHEAD);
	check(sp_seal_open(recipient_priv, body, body_len, from, msg, sizeof(msg), &n) == 0);
	check(n == size && (size == 0 || memcmp(msg, data, size) == 0));
	check(memcmp(from, sender_pub, SP_KEY_LEN) == 0);
	return 0;
}
