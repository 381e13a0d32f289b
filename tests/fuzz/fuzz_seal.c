/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_seal.c: sp_seal_open on arbitrary bodies (what a client library gets
 * from any sender through the broker), plus the seal/open round trip with the
 * input as the message.
 *
 * Keys are fixed so that the seed corpus (valid seals to the recipient key
 * below) opens, and mutations start from bodies that get past the version
 * byte and the DH steps.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sp_noise.h"
#include "sp_seal.h"

/* Fixed test keys: never used anywhere else. */
static const uint8_t sender_priv[SP_KEY_LEN] = { 0x5e, 0x4d, 0xe4, 0x01, 0x02, 0x03, 0x04, 5 };
static const uint8_t recipient_priv[SP_KEY_LEN] = { 0x4e, 0xc1, 0x01, 0x0e, 0x47, 0x06, 0x07, 8 };

static uint8_t msg[SP_BODY_MAX + 1], body[SP_BODY_MAX + 1];

static void check(int ok)
{
	if (!ok)
		abort();
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
