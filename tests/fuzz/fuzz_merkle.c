/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_merkle.c: the transparency log's decoders and verifiers on arbitrary
 * bytes (what a client library gets from a broker, or from a peer inside a
 * sealed envelope: docs/PROTOCOL.md §11.7). The first byte picks what the
 * rest is:
 *
 *   0  a log trailer (STH | inclusion proof) after a list: decoded, the STH
 *      checked under the fixed log key, the proof verified for the leaf
 *      "fuzz" (a real broker's would be the list's bytes)
 *   1  a consistency proof, verified between the roots of the fixed 64-leaf
 *      tree at its claimed sizes
 *   2  a sealed plaintext that may start with the tree-head wrapper
 *   3  an STH alone
 *
 * Whatever decodes must re-encode to the same bytes (one spelling each) and
 * the verifiers must answer 0 or -EKEYREJECTED / -EINVAL, never crash.
 * The seeds (seed_targets.c) are valid encodings made by sp_sth.c.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "sp_merkle.h"
#include "sp_sth.h"

/* Fixed test log key seed: never used anywhere else. */
static const uint8_t log_seed[crypto_sign_SEEDBYTES] = { 0x10, 0x6c, 0x06, 1, 2, 3 };

static void check(int ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t pk[SP_LOG_KEY_LEN], sk[SP_LOG_SECRET_LEN];
	static sp_merkle_hash leaves[64];
	static uint8_t roots[65][SP_MERKLE_HASH_LEN];
	static bool ready;
	uint8_t out[SP_LOG_TRAILER_MAX + SP_CONSISTENCY_MAX], key[SP_LOG_KEY_LEN];
	struct sp_inclusion inc;
	struct sp_consistency con;
	struct sp_sth sth;
	size_t len;
	int ret;

	if (!ready) {
		struct sp_merkle_mem mem = { leaves, 64 };

		check(sodium_init() >= 0);
		check(crypto_sign_seed_keypair(pk, sk, log_seed) == 0);
		for (int i = 0; i < 64; i++)
			sp_merkle_leaf_hash(leaves[i], (const uint8_t *)&i, sizeof(i));
		for (uint64_t n = 0; n <= 64; n++)
			check(sp_merkle_root(sp_merkle_mem_subtree, &mem, n, roots[n]) == 0);
		ready = true;
	}
	if (size < 1)
		return 0;
	switch (data[0]) {
	case 0:
		ret = sp_log_trailer_decode(data + 1, size - 1, &sth, &inc);
		if (ret) {
			check(ret == -EBADMSG);
			break;
		}
		check(sp_log_trailer_encode(&sth, &inc, out, sizeof(out), &len) == 0);
		check(len == size - 1 && memcmp(out, data + 1, len) == 0);
		ret = sp_log_check_leaf(pk, &sth, &inc, (const uint8_t *)"fuzz", 4);
		check(ret == 0 || ret == -EKEYREJECTED || ret == -EINVAL);
		break;
	case 1:
		ret = sp_consistency_decode(data + 1, size - 1, &con);
		if (ret) {
			check(ret == -EBADMSG);
			break;
		}
		check(sp_consistency_encode(&con, out, sizeof(out), &len) == 0);
		check(len == size - 1 && memcmp(out, data + 1, len) == 0);
		if (con.second <= 64) {
			ret = sp_merkle_consistency_verify(con.first, con.second, roots[con.first],
							   roots[con.second], con.path, con.count);
			check(ret == 0 || ret == -EKEYREJECTED);
		} else {
			ret = sp_merkle_consistency_verify(con.first, con.second, roots[1], roots[2],
							   con.path, con.count);
			check(ret == -EKEYREJECTED);
		}
		break;
	case 2:
		ret = sp_sth_unwrap(data + 1, size - 1, key, &sth);
		check(ret == 0 || ret == 1 || ret == -EBADMSG);
		if (ret == 1) {
			uint8_t w[SP_STH_WRAP_LEN];

			sp_sth_wrap(key, &sth, w);
			check(memcmp(w, data + 1, sizeof(w)) == 0);
			ret = sp_sth_verify(&sth, pk);
			check(ret == 0 || ret == -EKEYREJECTED);
		}
		break;
	default:
		ret = sp_sth_decode(data + 1, size - 1, &sth);
		if (ret) {
			check(ret == -EBADMSG);
			break;
		}
		sp_sth_encode(&sth, out);
		check(memcmp(out, data + 1, SP_STH_LEN) == 0);
		ret = sp_sth_verify(&sth, pk);
		check(ret == 0 || ret == -EKEYREJECTED);
		/* re-signed by the fixed key it must verify */
		check(sp_sth_sign(&sth, sk) == 0 && sp_sth_verify(&sth, pk) == 0);
		break;
	}
	return 0;
}
