/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_seal.c: sp_seal_open and the first-contact open (sp_fcseal_open,
 * PROTOCOL.md 7.2) on arbitrary bodies (what a client library gets from
 * any sender through the broker), plus both seal/open round trips with
 * the input as the message.
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
