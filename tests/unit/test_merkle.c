/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_merkle.c: lib/crypto/sp_merkle.c (RFC 9162 tree hashes, inclusion and
 * consistency proofs) and lib/crypto/sp_sth.c (signed tree heads, proof
 * encodings, the envelope wrapper).
 *
 * Known answers: the 8-leaf reference tree of RFC 6962's test data, as
 * Certificate Transparency implementations test against it (the leaves
 * "", 00, 10, 2021, 3031, 40414243, 5051525354555657,
 * 606162636465666768696a6b6c6d6e6f; its roots per size; inclusion paths and
 * consistency proofs between sizes). Then properties: every leaf of every
 * tree up to 64 leaves verifies, every consistency pair up to 64 verifies,
 * and any flipped bit, wrong index, wrong size, truncated or extended proof
 * fails.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "sp_merkle.h"
#include "sp_sth.h"

/* --- test data --------------------------------------------------------------- */

static const char *const leaf_hex[8] = {
	"",
	"00",
	"10",
	"2021",
	"3031",
	"40414243",
	"5051525354555657",
	"606162636465666768696a6b6c6d6e6f",
};

static const char *const empty_root_hex =
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* roots of the first 1..8 leaves */
static const char *const root_hex[8] = {
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

struct vec {
	uint64_t a, b;          /* inclusion: leaf index, size; consistency: m, n */
	size_t len;
	const char *hex[3];
};

static const struct vec inclusion_vecs[] = {
	{ 0, 1, 0, { 0 } },
	{ 0, 8, 3,
	  { "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" } },
	{ 5, 8, 3,
	  { "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
	    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
	{ 2, 3, 1, { "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125" } },
	{ 1, 5, 3,
	  { "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b" } },
};

static const struct vec consistency_vecs[] = {
	{ 1, 1, 0, { 0 } },
	{ 1, 8, 3,
	  { "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
	    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" } },
	{ 6, 8, 3,
	  { "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
	    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
	    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
	{ 2, 5, 2,
	  { "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
	    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b" } },
};

static void unhex(uint8_t *out, size_t cap, size_t *len, const char *hex)
{
	assert_int_equal(sodium_hex2bin(out, cap, hex, strlen(hex), NULL, len, NULL), 0);
}

static void unhash(uint8_t out[SP_MERKLE_HASH_LEN], const char *hex)
{
	size_t n = 0;

	unhex(out, SP_MERKLE_HASH_LEN, &n, hex);
	assert_int_equal(n, SP_MERKLE_HASH_LEN);
}

/* the reference tree's 8 leaf hashes */
static sp_merkle_hash ref[8];
/* a 64-leaf tree for the properties */
static sp_merkle_hash big[64];

static int setup(void **state)
{
	uint8_t d[32];
	size_t n;

	(void)state;
	for (int i = 0; i < 8; i++) {
		unhex(d, sizeof(d), &n, leaf_hex[i]);
		sp_merkle_leaf_hash(ref[i], d, n);
	}
	for (int i = 0; i < 64; i++) {
		memset(d, i, sizeof(d));
		sp_merkle_leaf_hash(big[i], d, (size_t)i % 33);
	}
	return 0;
}

/* --- known answers ---------------------------------------------------------------- */

static void test_roots(void **state)
{
	struct sp_merkle_mem mem = { ref, 8 };
	uint8_t got[SP_MERKLE_HASH_LEN], want[SP_MERKLE_HASH_LEN];

	(void)state;
	unhash(want, empty_root_hex);
	assert_int_equal(sp_merkle_root(sp_merkle_mem_subtree, &mem, 0, got), 0);
	assert_memory_equal(got, want, sizeof(got));
	for (uint64_t n = 1; n <= 8; n++) {
		unhash(want, root_hex[n - 1]);
		assert_int_equal(sp_merkle_root(sp_merkle_mem_subtree, &mem, n, got), 0);
		assert_memory_equal(got, want, sizeof(got));
	}
	/* leaf 0 is the empty string: its hash is the size-1 root */
	unhash(want, root_hex[0]);
	assert_memory_equal(ref[0], want, sizeof(want));
}

static void test_inclusion_vectors(void **state)
{
	struct sp_merkle_mem mem = { ref, 8 };
	sp_merkle_hash proof[SP_MERKLE_PROOF_MAX], want[3];
	uint8_t root[SP_MERKLE_HASH_LEN];
	size_t len;

	(void)state;
	for (size_t v = 0; v < sizeof(inclusion_vecs) / sizeof(inclusion_vecs[0]); v++) {
		const struct vec *t = &inclusion_vecs[v];

		for (size_t i = 0; i < t->len; i++)
			unhash(want[i], t->hex[i]);
		assert_int_equal(sp_merkle_inclusion_proof(sp_merkle_mem_subtree, &mem, t->a, t->b,
							   proof, SP_MERKLE_PROOF_MAX, &len),
				 0);
		assert_int_equal(len, t->len);
		if (len)
			assert_memory_equal(proof, want, len * SP_MERKLE_HASH_LEN);
		unhash(root, root_hex[t->b - 1]);
		assert_int_equal(sp_merkle_inclusion_verify(ref[t->a], t->a, t->b, want, t->len, root),
				 0);
	}
}

static void test_consistency_vectors(void **state)
{
	struct sp_merkle_mem mem = { ref, 8 };
	sp_merkle_hash proof[SP_MERKLE_PROOF_MAX], want[3];
	uint8_t r1[SP_MERKLE_HASH_LEN], r2[SP_MERKLE_HASH_LEN];
	size_t len;

	(void)state;
	for (size_t v = 0; v < sizeof(consistency_vecs) / sizeof(consistency_vecs[0]); v++) {
		const struct vec *t = &consistency_vecs[v];

		for (size_t i = 0; i < t->len; i++)
			unhash(want[i], t->hex[i]);
		assert_int_equal(sp_merkle_consistency_proof(sp_merkle_mem_subtree, &mem, t->a, t->b,
							     proof, SP_MERKLE_PROOF_MAX, &len),
				 0);
		assert_int_equal(len, t->len);
		if (len)
			assert_memory_equal(proof, want, len * SP_MERKLE_HASH_LEN);
		unhash(r1, root_hex[t->a - 1]);
		unhash(r2, root_hex[t->b - 1]);
		assert_int_equal(sp_merkle_consistency_verify(t->a, t->b, r1, r2, want, t->len), 0);
		/* the roots swapped, or a wrong one, fail (unless equal sizes) */
		if (t->a != t->b) {
			assert_int_equal(sp_merkle_consistency_verify(t->a, t->b, r2, r1, want, t->len),
					 -EKEYREJECTED);
		}
	}
}

/* --- properties ------------------------------------------------------------------ */

static void test_inclusion_all(void **state)
{
	struct sp_merkle_mem mem = { big, 64 };
	sp_merkle_hash proof[SP_MERKLE_PROOF_MAX + 1];
	uint8_t root[SP_MERKLE_HASH_LEN], other[SP_MERKLE_HASH_LEN];
	size_t len;

	(void)state;
	for (uint64_t n = 1; n <= 64; n++) {
		assert_int_equal(sp_merkle_root(sp_merkle_mem_subtree, &mem, n, root), 0);
		for (uint64_t i = 0; i < n; i++) {
			assert_int_equal(sp_merkle_inclusion_proof(sp_merkle_mem_subtree, &mem, i, n,
								   proof, SP_MERKLE_PROOF_MAX, &len),
					 0);
			assert_int_equal(sp_merkle_inclusion_verify(big[i], i, n, proof, len, root), 0);
			/* another leaf, index, size, or a root of another size */
			assert_int_not_equal(
				sp_merkle_inclusion_verify(big[(i + 1) % 64], i, n, proof, len, root), 0);
			if (n > 1)
				assert_int_not_equal(sp_merkle_inclusion_verify(big[i], (i + 1) % n, n,
										proof, len, root),
						     0);
			assert_int_equal(sp_merkle_root(sp_merkle_mem_subtree, &mem, n - 1 ? n - 1 : 2,
							other),
					 0);
			assert_int_not_equal(sp_merkle_inclusion_verify(big[i], i, n, proof, len, other),
					     0);
			/* truncated, extended */
			if (len)
				assert_int_not_equal(
					sp_merkle_inclusion_verify(big[i], i, n, proof, len - 1, root), 0);
			memcpy(proof[len], big[0], SP_MERKLE_HASH_LEN);
			assert_int_not_equal(
				sp_merkle_inclusion_verify(big[i], i, n, proof, len + 1, root), 0);
			/* every flipped bit of the proof, the leaf and the root */
			for (size_t b = 0; b < len * SP_MERKLE_HASH_LEN * 8; b++) {
				uint8_t *p = (uint8_t *)proof;

				p[b / 8] ^= (uint8_t)(1u << (b % 8));
				assert_int_equal(
					sp_merkle_inclusion_verify(big[i], i, n, proof, len, root),
					-EKEYREJECTED);
				p[b / 8] ^= (uint8_t)(1u << (b % 8));
			}
			for (size_t b = 0; b < SP_MERKLE_HASH_LEN * 8; b += 7) {
				uint8_t leaf[SP_MERKLE_HASH_LEN];

				memcpy(leaf, big[i], sizeof(leaf));
				leaf[b / 8] ^= (uint8_t)(1u << (b % 8));
				assert_int_equal(sp_merkle_inclusion_verify(leaf, i, n, proof, len, root),
						 -EKEYREJECTED);
				root[b / 8] ^= (uint8_t)(1u << (b % 8));
				assert_int_equal(
					sp_merkle_inclusion_verify(big[i], i, n, proof, len, root),
					-EKEYREJECTED);
				root[b / 8] ^= (uint8_t)(1u << (b % 8));
			}
		}
		/* index out of range */
		assert_int_equal(sp_merkle_inclusion_verify(big[0], n, n, proof, 0, root), -EINVAL);
	}
}

static void test_consistency_all(void **state)
{
	struct sp_merkle_mem mem = { big, 64 };
	sp_merkle_hash proof[SP_MERKLE_PROOF_MAX + 1];
	uint8_t roots[65][SP_MERKLE_HASH_LEN], empty[SP_MERKLE_HASH_LEN];
	size_t len;

	(void)state;
	for (uint64_t n = 0; n <= 64; n++)
		assert_int_equal(sp_merkle_root(sp_merkle_mem_subtree, &mem, n, roots[n]), 0);
	sp_merkle_empty_root(empty);
	assert_memory_equal(roots[0], empty, sizeof(empty));
	for (uint64_t n = 1; n <= 64; n++) {
		assert_int_equal(sp_merkle_consistency_verify(0, n, roots[0], roots[n], NULL, 0), 0);
		assert_int_equal(sp_merkle_consistency_verify(0, n, roots[1], roots[n], NULL, 0),
				 -EKEYREJECTED);
		for (uint64_t m = 1; m <= n; m++) {
			assert_int_equal(sp_merkle_consistency_proof(sp_merkle_mem_subtree, &mem, m, n,
								     proof, SP_MERKLE_PROOF_MAX, &len),
					 0);
			assert_int_equal(
				sp_merkle_consistency_verify(m, n, roots[m], roots[n], proof, len), 0);
			if (m == n) {
				assert_int_equal(len, 0);
				assert_int_equal(sp_merkle_consistency_verify(m, n, roots[m],
									     roots[m - 1], proof, 0),
						 -EKEYREJECTED);
				continue;
			}
			/* a forked history: the old root of another size, the new root of another */
			assert_int_equal(
				sp_merkle_consistency_verify(m, n, roots[m - 1], roots[n], proof, len),
				-EKEYREJECTED);
			assert_int_equal(
				sp_merkle_consistency_verify(m, n, roots[m], roots[n - 1], proof, len),
				-EKEYREJECTED);
			/* truncated, extended, every flipped bit */
			assert_int_not_equal(
				sp_merkle_consistency_verify(m, n, roots[m], roots[n], proof, len - 1), 0);
			memcpy(proof[len], big[3], SP_MERKLE_HASH_LEN);
			assert_int_not_equal(
				sp_merkle_consistency_verify(m, n, roots[m], roots[n], proof, len + 1), 0);
			for (size_t b = 0; b < len * SP_MERKLE_HASH_LEN * 8; b += 3) {
				uint8_t *p = (uint8_t *)proof;

				p[b / 8] ^= (uint8_t)(1u << (b % 8));
				assert_int_equal(sp_merkle_consistency_verify(m, n, roots[m], roots[n],
									     proof, len),
						 -EKEYREJECTED);
				p[b / 8] ^= (uint8_t)(1u << (b % 8));
			}
		}
	}
}

/* A tree that differs in one leaf: every consistency proof from the honest
 * tree's old sizes to the forked tree's new size fails (the split view). */
static void test_fork_detected(void **state)
{
	sp_merkle_hash forked[64], proof[SP_MERKLE_PROOF_MAX];
	struct sp_merkle_mem honest = { big, 64 }, fork = { forked, 64 };
	uint8_t r1[SP_MERKLE_HASH_LEN], r2[SP_MERKLE_HASH_LEN];
	size_t len;

	(void)state;
	for (uint64_t at = 0; at < 64; at += 5) {
		memcpy(forked, big, sizeof(forked));
		forked[at][0] ^= 1;
		for (uint64_t m = at + 1; m <= 64; m += 3)
			for (uint64_t n = m; n <= 64; n += 4) {
				assert_int_equal(sp_merkle_root(sp_merkle_mem_subtree, &honest, m, r1), 0);
				assert_int_equal(sp_merkle_root(sp_merkle_mem_subtree, &fork, n, r2), 0);
				assert_int_equal(sp_merkle_consistency_proof(sp_merkle_mem_subtree,
									     &fork, m, n, proof,
									     SP_MERKLE_PROOF_MAX, &len),
						 0);
				assert_int_equal(sp_merkle_consistency_verify(m, n, r1, r2, proof, len),
						 -EKEYREJECTED);
			}
	}
}

static void test_bad_args(void **state)
{
	struct sp_merkle_mem mem = { ref, 8 };
	sp_merkle_hash proof[2];
	uint8_t root[SP_MERKLE_HASH_LEN] = { 0 };
	size_t len;

	(void)state;
	assert_int_equal(sp_merkle_inclusion_proof(sp_merkle_mem_subtree, &mem, 8, 8, proof, 2, &len),
			 -EINVAL);
	assert_int_equal(sp_merkle_inclusion_proof(sp_merkle_mem_subtree, &mem, 0, 8, proof, 2, &len),
			 -EMSGSIZE);
	assert_int_equal(sp_merkle_consistency_proof(sp_merkle_mem_subtree, &mem, 0, 8, proof, 2, &len),
			 -EINVAL);
	assert_int_equal(sp_merkle_consistency_proof(sp_merkle_mem_subtree, &mem, 5, 4, proof, 2, &len),
			 -EINVAL);
	assert_int_equal(sp_merkle_consistency_proof(sp_merkle_mem_subtree, &mem, 1, 8, proof, 2, &len),
			 -EMSGSIZE);
	/* the callback's own error is passed through (a 9th leaf does not exist) */
	assert_int_equal(sp_merkle_root(sp_merkle_mem_subtree, &mem, 9, root), -EINVAL);
	assert_int_equal(sp_merkle_consistency_verify(5, 4, root, root, NULL, 0), -EINVAL);
	assert_int_equal(sp_merkle_consistency_verify(1, SP_MERKLE_SIZE_MAX + 1, root, root, proof, 1),
			 -EINVAL);
	assert_int_equal(sp_merkle_inclusion_verify(root, 0, SP_MERKLE_SIZE_MAX + 1, proof, 1, root),
			 -EINVAL);
	/* longest sizes: no overflow in the walk */
	assert_int_equal(sp_merkle_inclusion_verify(root, SP_MERKLE_SIZE_MAX - 1, SP_MERKLE_SIZE_MAX,
						    proof, 2, root),
			 -EKEYREJECTED);
	assert_int_equal(sp_merkle_consistency_verify(SP_MERKLE_SIZE_MAX - 1, SP_MERKLE_SIZE_MAX, root,
						      root, proof, 2),
			 -EKEYREJECTED);
}

/* --- signed tree heads and encodings --------------------------------------------- */

static void test_sth(void **state)
{
	uint8_t pk[SP_LOG_KEY_LEN], sk[SP_LOG_SECRET_LEN], pk2[SP_LOG_KEY_LEN], sk2[SP_LOG_SECRET_LEN];
	uint8_t enc[SP_STH_LEN + 1], msg[SP_STH_DOMAIN_LEN + SP_STH_SIGNED_LEN];
	struct sp_sth sth = { .tree_size = 8, .timestamp_ms = 1700000000123 }, got;

	(void)state;
	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(pk2, sk2);
	unhash(sth.root, root_hex[7]);
	assert_int_equal(sp_sth_sign(&sth, sk), 0);
	assert_int_equal(sp_sth_verify(&sth, pk), 0);
	assert_int_equal(sp_sth_verify(&sth, pk2), -EKEYREJECTED);

	/* the documented encoding, byte by byte, and what is signed */
	sp_sth_encode(&sth, enc);
	assert_int_equal(enc[0], 1);
	assert_int_equal(enc[8], 8);
	for (int i = 1; i < 8; i++)
		assert_int_equal(enc[i], 0);
	assert_memory_equal(enc + 17, sth.root, 32);
	assert_memory_equal(enc + 49, sth.sig, 64);
	memcpy(msg, "sealpost/sth/1", 14);
	memcpy(msg + 14, enc, SP_STH_SIGNED_LEN);
	assert_int_equal(crypto_sign_verify_detached(sth.sig, msg, sizeof(msg), pk), 0);

	assert_int_equal(sp_sth_decode(enc, SP_STH_LEN, &got), 0);
	assert_int_equal(got.tree_size, 8);
	assert_int_equal(got.timestamp_ms, 1700000000123);
	assert_int_equal(sp_sth_verify(&got, pk), 0);
	assert_int_equal(sp_sth_decode(enc, SP_STH_LEN - 1, &got), -EBADMSG);
	assert_int_equal(sp_sth_decode(enc, SP_STH_LEN + 1, &got), -EBADMSG);
	enc[0] = 2;
	assert_int_equal(sp_sth_decode(enc, SP_STH_LEN, &got), -EBADMSG);
	enc[0] = 1;
	enc[1] = 0x80; /* size > SP_MERKLE_SIZE_MAX */
	assert_int_equal(sp_sth_decode(enc, SP_STH_LEN, &got), -EBADMSG);
	enc[1] = 0;
	/* any flipped bit of the signed encoding fails the signature */
	for (size_t b = 0; b < SP_STH_LEN * 8; b++) {
		enc[b / 8] ^= (uint8_t)(1u << (b % 8));
		if (sp_sth_decode(enc, SP_STH_LEN, &got) == 0)
			assert_int_equal(sp_sth_verify(&got, pk), -EKEYREJECTED);
		enc[b / 8] ^= (uint8_t)(1u << (b % 8));
	}
}

static void test_proof_codecs(void **state)
{
	struct sp_merkle_mem mem = { ref, 8 };
	struct sp_inclusion inc = { .index = 5 }, inc2;
	struct sp_consistency con = { .first = 6, .second = 8 }, con2;
	struct sp_sth sth = { .tree_size = 8 }, sth2;
	uint8_t buf[SP_LOG_TRAILER_MAX + 8], pk[SP_LOG_KEY_LEN], sk[SP_LOG_SECRET_LEN], d[4];
	size_t len, dl;

	(void)state;
	assert_int_equal(sp_merkle_inclusion_proof(sp_merkle_mem_subtree, &mem, 5, 8, inc.path,
						   SP_MERKLE_PROOF_MAX, &inc.count),
			 0);
	assert_int_equal(sp_inclusion_encode(&inc, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 8 + 1 + 3 * 32);
	assert_int_equal(buf[7], 5);
	assert_int_equal(buf[8], 3);
	assert_int_equal(sp_inclusion_decode(buf, len, &inc2), 0);
	assert_int_equal(inc2.index, 5);
	assert_int_equal(inc2.count, 3);
	assert_memory_equal(inc2.path, inc.path, 3 * 32);
	assert_int_equal(sp_inclusion_decode(buf, len - 1, &inc2), -EBADMSG);
	assert_int_equal(sp_inclusion_decode(buf, len + 1, &inc2), -EBADMSG);
	buf[8] = SP_MERKLE_PROOF_MAX + 1;
	assert_int_equal(sp_inclusion_decode(buf, len, &inc2), -EBADMSG);
	assert_int_equal(sp_inclusion_encode(&inc, buf, 8 + 3 * 32, &len), -EMSGSIZE);

	assert_int_equal(sp_merkle_consistency_proof(sp_merkle_mem_subtree, &mem, 6, 8, con.path,
						     SP_MERKLE_PROOF_MAX, &con.count),
			 0);
	assert_int_equal(sp_consistency_encode(&con, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 16 + 1 + 3 * 32);
	assert_int_equal(sp_consistency_decode(buf, len, &con2), 0);
	assert_int_equal(con2.first, 6);
	assert_int_equal(con2.second, 8);
	assert_memory_equal(con2.path, con.path, 3 * 32);
	buf[7] = 9; /* first > second */
	assert_int_equal(sp_consistency_decode(buf, len, &con2), -EBADMSG);

	/* trailer: STH + inclusion of leaf 5 ("40414243") */
	crypto_sign_keypair(pk, sk);
	unhash(sth.root, root_hex[7]);
	assert_int_equal(sp_sth_sign(&sth, sk), 0);
	assert_int_equal(sp_log_trailer_encode(&sth, &inc, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, SP_STH_LEN + 8 + 1 + 96);
	assert_int_equal(sp_log_trailer_decode(buf, len, &sth2, &inc2), 0);
	unhex(d, sizeof(d), &dl, leaf_hex[5]);
	assert_int_equal(sp_log_check_leaf(pk, &sth2, &inc2, d, dl), 0);
	d[0] ^= 1;
	assert_int_equal(sp_log_check_leaf(pk, &sth2, &inc2, d, dl), -EKEYREJECTED);
	d[0] ^= 1;
	inc2.index = 8;
	assert_int_equal(sp_log_check_leaf(pk, &sth2, &inc2, d, dl), -EKEYREJECTED);
	inc2.index = 5;
	sth2.timestamp_ms++;
	assert_int_equal(sp_log_check_leaf(pk, &sth2, &inc2, d, dl), -EKEYREJECTED);
}

static void test_wrap_compare(void **state)
{
	uint8_t pk[SP_LOG_KEY_LEN], sk[SP_LOG_SECRET_LEN], key[SP_LOG_KEY_LEN];
	uint8_t msg[SP_STH_WRAP_LEN + 5];
	struct sp_sth a = { .tree_size = 5 }, b = { .tree_size = 8 }, got;
	uint64_t m = 0, n = 0;

	(void)state;
	crypto_sign_keypair(pk, sk);
	unhash(a.root, root_hex[4]);
	unhash(b.root, root_hex[7]);
	assert_int_equal(sp_sth_sign(&a, sk), 0);
	assert_int_equal(sp_sth_sign(&b, sk), 0);
	sp_sth_wrap(pk, &a, msg);
	memcpy(msg + SP_STH_WRAP_LEN, "hello", 5);
	assert_int_equal(sp_sth_unwrap(msg, sizeof(msg), key, &got), 1);
	assert_memory_equal(key, pk, sizeof(pk));
	assert_int_equal(got.tree_size, 5);
	assert_int_equal(sp_sth_verify(&got, pk), 0);
	assert_int_equal(sp_sth_unwrap(msg, SP_STH_WRAP_LEN - 1, key, &got), -EBADMSG);
	assert_int_equal(sp_sth_unwrap((const uint8_t *)"hello", 5, key, &got), 0);
	assert_int_equal(sp_sth_unwrap(NULL, 0, key, &got), 0);

	assert_int_equal(sp_sth_compare(&a, &a, &m, &n), SP_STH_SAME);
	assert_int_equal(sp_sth_compare(&b, &a, &m, &n), SP_STH_NEED_PROOF);
	assert_int_equal(m, 5);
	assert_int_equal(n, 8);
	got = a;
	got.root[3] ^= 1;
	assert_int_equal(sp_sth_compare(&a, &got, &m, &n), SP_STH_SPLIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roots),
		cmocka_unit_test(test_inclusion_vectors),
		cmocka_unit_test(test_consistency_vectors),
		cmocka_unit_test(test_inclusion_all),
		cmocka_unit_test(test_consistency_all),
		cmocka_unit_test(test_fork_detected),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_sth),
		cmocka_unit_test(test_proof_codecs),
		cmocka_unit_test(test_wrap_compare),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, NULL);
}
