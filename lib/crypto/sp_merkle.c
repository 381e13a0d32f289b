/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_merkle.c: RFC 9162 Merkle tree hashes and proofs (see sp_merkle.h).
 *
 * Generation follows RFC 6962 §2.1.1/§2.1.2's recursive definitions with a
 * range (start, size) instead of slices of D; each range the recursion
 * visits starts at a multiple of the largest power of two >= its size, so a
 * power-of-two range is one complete subtree and costs one callback.
 * Verification is RFC 9162 §2.1.3.2 and §2.1.4.2, with the RFC's variable
 * names (fn, sn, r, fr, sr).
 */
#include "sp_merkle.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

void sp_merkle_leaf_hash(uint8_t out[SP_MERKLE_HASH_LEN], const uint8_t *data, size_t len)
{
	crypto_hash_sha256_state st;
	const uint8_t prefix = 0x00;

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, &prefix, 1);
	if (len)
		crypto_hash_sha256_update(&st, data, len);
	crypto_hash_sha256_final(&st, out);
}

void sp_merkle_node_hash(uint8_t out[SP_MERKLE_HASH_LEN], const uint8_t left[SP_MERKLE_HASH_LEN],
			 const uint8_t right[SP_MERKLE_HASH_LEN])
{
	uint8_t buf[1 + 2 * SP_MERKLE_HASH_LEN];

	/* copied first: out may alias left or right */
	buf[0] = 0x01;
	memcpy(buf + 1, left, SP_MERKLE_HASH_LEN);
	memcpy(buf + 1 + SP_MERKLE_HASH_LEN, right, SP_MERKLE_HASH_LEN);
	crypto_hash_sha256(out, buf, sizeof(buf));
}

void sp_merkle_empty_root(uint8_t out[SP_MERKLE_HASH_LEN])
{
	crypto_hash_sha256(out, NULL, 0);
}

/* The largest power of two strictly below n (n >= 2). */
static uint64_t split(uint64_t n)
{
	return UINT64_C(1) << (63 - __builtin_clzll(n - 1));
}

/* MTH(D[a : a + n]), n >= 1. Recursion depth <= 63 (n halves at least). */
static int range_hash(sp_merkle_subtree_fn get, void *ctx, uint64_t a, uint64_t n,
		      uint8_t out[SP_MERKLE_HASH_LEN])
{
	uint8_t left[SP_MERKLE_HASH_LEN], right[SP_MERKLE_HASH_LEN];
	uint64_t k;
	int ret;

	if (sp_merkle_is_pow2(n) && a % n == 0)
		return get(ctx, (unsigned)__builtin_ctzll(n), a / n, out);
	k = split(n);
	if ((ret = range_hash(get, ctx, a, k, left)) ||
	    (ret = range_hash(get, ctx, a + k, n - k, right)))
		return ret;
	sp_merkle_node_hash(out, left, right);
	return 0;
}

int sp_merkle_root(sp_merkle_subtree_fn get, void *ctx, uint64_t n, uint8_t out[SP_MERKLE_HASH_LEN])
{
	if (!get || !out || n > SP_MERKLE_SIZE_MAX)
		return -EINVAL;
	if (n == 0) {
		sp_merkle_empty_root(out);
		return 0;
	}
	return range_hash(get, ctx, 0, n, out);
}

struct out {
	sp_merkle_hash *proof;
	size_t cap, len;
};

static int append(sp_merkle_subtree_fn get, void *ctx, struct out *o, uint64_t a, uint64_t n)
{
	if (o->len == o->cap)
		return -EMSGSIZE;
	return range_hash(get, ctx, a, n, o->proof[o->len++]);
}

/* PATH(m, D[a : a + n]) (RFC 6962 §2.1.1), appended to o. */
static int path(sp_merkle_subtree_fn get, void *ctx, struct out *o, uint64_t m, uint64_t a,
		uint64_t n)
{
	uint64_t k;
	int ret;

	if (n == 1)
		return 0;
	k = split(n);
	if (m < k) {
		if ((ret = path(get, ctx, o, m, a, k)))
			return ret;
		return append(get, ctx, o, a + k, n - k);
	}
	if ((ret = path(get, ctx, o, m - k, a + k, n - k)))
		return ret;
	return append(get, ctx, o, a, k);
}

int sp_merkle_inclusion_proof(sp_merkle_subtree_fn get, void *ctx, uint64_t index, uint64_t n,
			      sp_merkle_hash *proof, size_t cap, size_t *len)
{
	struct out o = { proof, cap, 0 };
	int ret;

	if (!get || (!proof && cap) || !len || n > SP_MERKLE_SIZE_MAX || index >= n)
		return -EINVAL;
	ret = path(get, ctx, &o, index, 0, n);
	*len = ret ? 0 : o.len;
	return ret;
}

/* SUBPROOF(m, D[a : a + n], b) (RFC 6962 §2.1.2), appended to o. */
static int subproof(sp_merkle_subtree_fn get, void *ctx, struct out *o, uint64_t m, uint64_t a,
		    uint64_t n, bool b)
{
	uint64_t k;
	int ret;

	if (m == n)
		return b ? 0 : append(get, ctx, o, a, n);
	k = split(n);
	if (m <= k) {
		if ((ret = subproof(get, ctx, o, m, a, k, b)))
			return ret;
		return append(get, ctx, o, a + k, n - k);
	}
	if ((ret = subproof(get, ctx, o, m - k, a + k, n - k, false)))
		return ret;
	return append(get, ctx, o, a, k);
}

int sp_merkle_consistency_proof(sp_merkle_subtree_fn get, void *ctx, uint64_t m, uint64_t n,
				sp_merkle_hash *proof, size_t cap, size_t *len)
{
	struct out o = { proof, cap, 0 };
	int ret;

	if (!get || (!proof && cap) || !len || n > SP_MERKLE_SIZE_MAX || m == 0 || m > n)
		return -EINVAL;
	ret = subproof(get, ctx, &o, m, 0, n, true);
	*len = ret ? 0 : o.len;
	return ret;
}

int sp_merkle_inclusion_verify(const uint8_t leaf_hash[SP_MERKLE_HASH_LEN], uint64_t index,
			       uint64_t n, const sp_merkle_hash *proof, size_t len,
			       const uint8_t root[SP_MERKLE_HASH_LEN])
{
	uint8_t r[SP_MERKLE_HASH_LEN];
	uint64_t fn, sn;

	if (!leaf_hash || !root || (!proof && len) || n > SP_MERKLE_SIZE_MAX)
		return -EINVAL;
	/* 1. */
	if (index >= n)
		return -EINVAL;
	if (len > SP_MERKLE_PROOF_MAX)
		return -EKEYREJECTED;
	/* 2., 3. */
	fn = index;
	sn = n - 1;
	memcpy(r, leaf_hash, sizeof(r));
	/* 4. */
	for (size_t i = 0; i < len; i++) {
		const uint8_t *p = proof[i];

		if (sn == 0) /* a. */
			return -EKEYREJECTED;
		if ((fn & 1) || fn == sn) { /* b. */
			sp_merkle_node_hash(r, p, r);
			if (!(fn & 1))
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
		} else {
			sp_merkle_node_hash(r, r, p);
		}
		fn >>= 1; /* c. */
		sn >>= 1;
	}
	/* 5. */
	if (sn != 0 || sodium_memcmp(r, root, sizeof(r)) != 0)
		return -EKEYREJECTED;
	return 0;
}

int sp_merkle_consistency_verify(uint64_t m, uint64_t n, const uint8_t root1[SP_MERKLE_HASH_LEN],
				 const uint8_t root2[SP_MERKLE_HASH_LEN], const sp_merkle_hash *proof,
				 size_t len)
{
	uint8_t fr[SP_MERKLE_HASH_LEN], sr[SP_MERKLE_HASH_LEN], empty[SP_MERKLE_HASH_LEN];
	uint64_t fn, sn;
	size_t i;

	if (!root1 || !root2 || (!proof && len) || m > n || n > SP_MERKLE_SIZE_MAX)
		return -EINVAL;
	if (m == 0) {
		sp_merkle_empty_root(empty);
		return len == 0 && sodium_memcmp(root1, empty, sizeof(empty)) == 0 ? 0
										: -EKEYREJECTED;
	}
	if (m == n)
		return len == 0 && sodium_memcmp(root1, root2, SP_MERKLE_HASH_LEN) == 0
			       ? 0
			       : -EKEYREJECTED;
	/* 1. */
	if (len == 0 || len > SP_MERKLE_PROOF_MAX)
		return -EKEYREJECTED;
	/* 2. (first_hash prepended: the path is read from index -1) and 5. */
	if (sp_merkle_is_pow2(m)) {
		memcpy(fr, root1, sizeof(fr));
		i = 0;
	} else {
		memcpy(fr, proof[0], sizeof(fr));
		i = 1;
	}
	memcpy(sr, fr, sizeof(sr));
	/* 3. */
	fn = m - 1;
	sn = n - 1;
	/* 4. */
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	/* 6. */
	for (; i < len; i++) {
		const uint8_t *c = proof[i];

		if (sn == 0) /* a. */
			return -EKEYREJECTED;
		if ((fn & 1) || fn == sn) { /* b. */
			sp_merkle_node_hash(fr, c, fr);
			sp_merkle_node_hash(sr, c, sr);
			if (!(fn & 1))
				while (!(fn & 1) && fn != 0) {
					fn >>= 1;
					sn >>= 1;
				}
		} else {
			sp_merkle_node_hash(sr, sr, c);
		}
		fn >>= 1; /* c. */
		sn >>= 1;
	}
	/* 7. */
	if (sn != 0 || sodium_memcmp(fr, root1, sizeof(fr)) != 0 ||
	    sodium_memcmp(sr, root2, sizeof(sr)) != 0)
		return -EKEYREJECTED;
	return 0;
}

int sp_merkle_mem_subtree(void *ctx, unsigned level, uint64_t index, uint8_t out[SP_MERKLE_HASH_LEN])
{
	const struct sp_merkle_mem *mem = ctx;
	uint8_t left[SP_MERKLE_HASH_LEN], right[SP_MERKLE_HASH_LEN];
	int ret;

	if (level > 62 || index >= (mem->count >> level))
		return -EINVAL;
	if (level == 0) {
		memcpy(out, mem->leaves[index], SP_MERKLE_HASH_LEN);
		return 0;
	}
	if ((ret = sp_merkle_mem_subtree(ctx, level - 1, 2 * index, left)) ||
	    (ret = sp_merkle_mem_subtree(ctx, level - 1, 2 * index + 1, right)))
		return ret;
	sp_merkle_node_hash(out, left, right);
	return 0;
}
