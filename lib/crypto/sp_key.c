/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_key.c: X25519 key pairs and the low-order point check.
 */
#include "sp_key.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

/* ---- keys ------------------------------------------------------------------ */

/*
 * The Curve25519 points of small order (and p, p+1, which reduce to 0 and 1).
 * X25519 with any of them gives an all-zero output whatever the scalar, so a
 * peer offering one as its static key would make every DH with it public.
 * Keys with the top bit set are refused before the table is consulted
 * (canonical() below).
 */
static const uint8_t low_order[][SP_KEY_LEN] = {
	/* 0 */
	{ 0 },
	/* 1 */
	{ 0x01 },
	/* order 8 */
	{ 0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
	  0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
	  0x5f, 0x49, 0xb8, 0x00 },
	/* order 8 */
	{ 0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83,
	  0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd,
	  0xd0, 0x9f, 0x11, 0x57 },
	/* p - 1 */
	{ 0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0x7f },
	/* p (non-canonical 0) */
	{ 0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0x7f },
	/* p + 1 (non-canonical 1) */
	{ 0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0x7f },
};

/*
 * 1 iff pub is the canonical encoding of a field element: bit 255 clear and
 * the value below p = 2^255 - 19. X25519 itself would mask bit 255 and
 * reduce mod p, so a non-canonical string names the same point as a
 * canonical one: two "addresses" for one device. No X25519 key generator
 * produces one, so they are refused rather than normalised.
 */
static uint64_t canonical(const uint8_t b[SP_KEY_LEN])
{
	/* Above p - 1 and below 2^255: 0x7f, thirty 0xff, then 0xed..0xff. */
	uint64_t ones = 0xff;

	for (size_t i = 1; i < SP_KEY_LEN - 1; i++)
		ones &= b[i];
	return (uint64_t)(b[SP_KEY_LEN - 1] >> 7 == 0) &
	       (uint64_t)!(b[SP_KEY_LEN - 1] == 0x7f && ones == 0xff && b[0] >= 0xed);
}

bool sp_noise_key_valid(const uint8_t pub[SP_KEY_LEN])
{
	/*
	 * Constant time: every entry is compared in full, whatever matched.
	 * Word by word, because the broker runs this on every Send's `to`: byte
	 * by byte it cost ~165 ns a key, 64-bit words ~17 ns. Byte order does
	 * not matter (key and table are loaded the same way). A key with bit
	 * 255 set or at or above p is refused by canonical(); the table holds
	 * the canonical low-order points (p and p + 1 are caught there too).
	 */
	uint64_t k[SP_KEY_LEN / 8], found = 0;

	memcpy(k, pub, SP_KEY_LEN);
	for (size_t i = 0; i < sizeof(low_order) / sizeof(low_order[0]); i++) {
		uint64_t w[SP_KEY_LEN / 8], diff = 0;

		memcpy(w, low_order[i], SP_KEY_LEN);
		for (size_t j = 0; j < SP_KEY_LEN / 8; j++)
			diff |= k[j] ^ w[j];
		found |= ((diff | (0 - diff)) >> 63) ^ 1; /* 1 iff diff == 0 */
	}
	return found == 0 && canonical(pub);
}

int sp_noise_public_key(uint8_t pub[SP_KEY_LEN], const uint8_t priv[SP_KEY_LEN])
{
	if (!pub || !priv)
		return -EINVAL;
	if (crypto_scalarmult_base(pub, priv) != 0)
		return -EINVAL;
	return 0;
}

void sp_noise_keypair(uint8_t pub[SP_KEY_LEN], uint8_t priv[SP_KEY_LEN])
{
	do {
		randombytes_buf(priv, SP_KEY_LEN);
	} while (crypto_scalarmult_base(pub, priv) != 0);
}

bool sp_noise_key_valid_public(const uint8_t pub[SP_KEY_LEN])
{
	/*
	 * The broker checks every Send's `to` (public: it is on the frame's
	 * outside), ~9 % of a 64-byte envelope's instructions in constant time.
	 * A key equal to a table entry equals it in its first word; a key that
	 * is not canonical has its top byte 0x7f or bit 255 set. A key with
	 * neither property is valid, anything else gets the full answer.
	 */
	uint64_t k0;

	if (pub[SP_KEY_LEN - 1] >= 0x7f)
		return sp_noise_key_valid(pub);
	memcpy(&k0, pub, sizeof(k0));
	for (size_t i = 0; i < sizeof(low_order) / sizeof(low_order[0]); i++) {
		uint64_t w0;

		memcpy(&w0, low_order[i], sizeof(w0));
		if (w0 == k0)
			return sp_noise_key_valid(pub);
	}
	return true;
}
