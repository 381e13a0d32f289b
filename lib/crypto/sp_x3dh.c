/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_x3dh.c: X3DH's DH1..DH4 and KDF (sp_x3dh.h). Each step names the
 * specification's term; nothing here is a primitive of its own.
 */
#include "sp_x3dh.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

enum { HASH_LEN = crypto_auth_hmacsha256_BYTES, KM_MAX = 4 * SP_KEY_LEN };

void sp_x3dh_kdf(uint8_t sk[SP_X3DH_SK_LEN], const uint8_t *km, size_t km_len)
{
	sp_x3dh_kdf_info(sk, SP_X3DH_INFO, sizeof(SP_X3DH_INFO) - 1, km, km_len);
}

void sp_x3dh_kdf_info(uint8_t sk[SP_X3DH_SK_LEN], const char *info, size_t info_len,
		      const uint8_t *km, size_t km_len)
{
	static const uint8_t salt[HASH_LEN]; /* "a zero-filled byte sequence" */
	static const uint8_t one = 0x01;
	uint8_t f[SP_KEY_LEN], prk[HASH_LEN];
	crypto_auth_hmacsha256_state h;

	/* F: 32 0xFF bytes, domain separation from XEdDSA's hash_i prefixes */
	memset(f, 0xff, sizeof(f));
	/* Extract: PRK = HMAC(salt, IKM) */
	crypto_auth_hmacsha256_init(&h, salt, sizeof(salt));
	crypto_auth_hmacsha256_update(&h, f, sizeof(f));
	crypto_auth_hmacsha256_update(&h, km, km_len);
	crypto_auth_hmacsha256_final(&h, prk);
	/* Expand, one block: T(1) = HMAC(PRK, info || 0x01), L = 32 */
	crypto_auth_hmacsha256_init(&h, prk, sizeof(prk));
	crypto_auth_hmacsha256_update(&h, (const uint8_t *)info, info_len);
	crypto_auth_hmacsha256_update(&h, &one, 1);
	crypto_auth_hmacsha256_final(&h, sk);
	sodium_memzero(&h, sizeof(h));
	sodium_memzero(prk, sizeof(prk));
}

/* KM in the specification's order; 0 or -EINVAL. */
static int agree(uint8_t sk[SP_X3DH_SK_LEN], const uint8_t *s1, const uint8_t *p1,
		 const uint8_t *s2, const uint8_t *p2, const uint8_t *s3, const uint8_t *p3,
		 const uint8_t *s4, const uint8_t *p4)
{
	uint8_t km[KM_MAX];
	size_t n = 3 * SP_KEY_LEN;
	int ret = 0;

	if (crypto_scalarmult(km, s1, p1) != 0 ||                      /* DH1 */
	    crypto_scalarmult(km + SP_KEY_LEN, s2, p2) != 0 ||         /* DH2 */
	    crypto_scalarmult(km + 2 * SP_KEY_LEN, s3, p3) != 0 ||     /* DH3 */
	    (s4 && crypto_scalarmult(km + 3 * SP_KEY_LEN, s4, p4) != 0)) { /* DH4 */
		ret = -EINVAL;
		goto out;
	}
	if (s4)
		n += SP_KEY_LEN;
	sp_x3dh_kdf(sk, km, n);
out:
	sodium_memzero(km, sizeof(km));
	return ret;
}

int sp_x3dh_initiate(uint8_t sk[SP_X3DH_SK_LEN], const uint8_t ik_a[SP_KEY_LEN],
		     const uint8_t ek_a[SP_KEY_LEN], const uint8_t ik_b[SP_KEY_LEN],
		     const uint8_t spk_b[SP_KEY_LEN], const uint8_t *opk_b)
{
	/* DH1 = DH(IK_A, SPK_B), DH2 = DH(EK_A, IK_B), DH3 = DH(EK_A, SPK_B),
	 * DH4 = DH(EK_A, OPK_B) */
	return agree(sk, ik_a, spk_b, ek_a, ik_b, ek_a, spk_b, opk_b ? ek_a : NULL, opk_b);
}

int sp_x3dh_respond(uint8_t sk[SP_X3DH_SK_LEN], const uint8_t ik_b[SP_KEY_LEN],
		    const uint8_t spk_b[SP_KEY_LEN], const uint8_t *opk_b,
		    const uint8_t ik_a[SP_KEY_LEN], const uint8_t ek_a[SP_KEY_LEN])
{
	/* the same four with Bob's secrets: DH is symmetric */
	return agree(sk, spk_b, ik_a, ik_b, ek_a, spk_b, ek_a, opk_b, opk_b ? ek_a : NULL);
}
