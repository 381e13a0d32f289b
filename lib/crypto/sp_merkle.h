/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_merkle.h: the Merkle tree of RFC 9162 §2.1 (the tree of Certificate
 * Transparency, identical to RFC 6962's), with SHA-256 (libsodium
 * crypto_hash_sha256):
 *
 *   MTH({})      = SHA-256()
 *   MTH({d0})    = SHA-256(0x00 || d0)                       (leaf hash)
 *   MTH(D[n])    = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])) (node hash)
 *                  with k the largest power of two < n
 *
 * Inclusion proofs (§2.1.3) and consistency proofs (§2.1.4) are generated
 * by the RFC's recursive definitions (PATH and SUBPROOF of RFC 6962 §2.1.1,
 * §2.1.2) and verified by RFC 9162's iterative algorithms (§2.1.3.2,
 * §2.1.4.2), step by step as the RFC states them.
 *
 * Storage-agnostic generation: the caller supplies the hashes of complete,
 * aligned subtrees through a callback (level l, index j: the tree over
 * leaves [j << l, (j + 1) << l), level 0 being the leaf hashes). Every
 * value a proof or root needs is either one such subtree or a right edge
 * made of at most log2(n) of them, so a store that keeps every complete
 * subtree's hash (the broker's log, broker/store/sp_store_log.c) answers
 * a root or a proof with O(log n) reads. sp_merkle_mem_* adapt an array of
 * leaf hashes (tests, the client's audit) to that callback.
 *
 * Layering: crypto (libsodium only), no I/O, no allocation, no state.
 * Errors: 0 or a negative errno: -EINVAL bad arguments (index >= size,
 * sizes out of order, size > SP_MERKLE_SIZE_MAX, NULL), -EMSGSIZE the
 * output array is too small, -EKEYREJECTED a proof does not verify, or
 * whatever the callback returned.
 */
#ifndef SP_MERKLE_H
#define SP_MERKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	SP_MERKLE_HASH_LEN = 32,
	/* A proof over trees of at most SP_MERKLE_SIZE_MAX leaves has at most
	 * 63 hashes (inclusion: ceil(log2 n); consistency: at most one more
	 * than that, minus the known one); decoders refuse longer ones. */
	SP_MERKLE_PROOF_MAX = 64,
};

/* Largest tree size: 2^62 leaves (so that every proof fits SP_MERKLE_PROOF_MAX). */
#define SP_MERKLE_SIZE_MAX (UINT64_C(1) << 62)

typedef uint8_t sp_merkle_hash[SP_MERKLE_HASH_LEN];

/* SHA-256(0x00 || data). data: len bytes borrowed (may be NULL if len 0). */
void sp_merkle_leaf_hash(uint8_t out[SP_MERKLE_HASH_LEN], const uint8_t *data, size_t len);

/* SHA-256(0x01 || left || right). out may alias left or right. */
void sp_merkle_node_hash(uint8_t out[SP_MERKLE_HASH_LEN], const uint8_t left[SP_MERKLE_HASH_LEN],
			 const uint8_t right[SP_MERKLE_HASH_LEN]);

/* SHA-256 of nothing: the root of the empty tree. */
void sp_merkle_empty_root(uint8_t out[SP_MERKLE_HASH_LEN]);

/*
 * Fills out with the hash of the complete subtree at (level, index), i.e.
 * MTH(D[index << level : (index + 1) << level]); the caller guarantees the
 * tree has at least (index + 1) << level leaves. 0 or a negative errno,
 * which is passed through.
 */
typedef int (*sp_merkle_subtree_fn)(void *ctx, unsigned level, uint64_t index,
				    uint8_t out[SP_MERKLE_HASH_LEN]);

/* MTH(D[n]): the root of the first n leaves (n may be 0). */
int sp_merkle_root(sp_merkle_subtree_fn get, void *ctx, uint64_t n, uint8_t out[SP_MERKLE_HASH_LEN]);

/*
 * PATH(index, D[n]): the inclusion proof of leaf index in the tree of size n,
 * deepest sibling first, into proof (caller-owned, cap entries), *len.
 */
int sp_merkle_inclusion_proof(sp_merkle_subtree_fn get, void *ctx, uint64_t index, uint64_t n,
			      sp_merkle_hash *proof, size_t cap, size_t *len);

/*
 * PROOF(m, D[n]): the consistency proof between sizes m and n,
 * 0 < m <= n (m == n: the empty proof), into proof (cap entries), *len.
 */
int sp_merkle_consistency_proof(sp_merkle_subtree_fn get, void *ctx, uint64_t m, uint64_t n,
				sp_merkle_hash *proof, size_t cap, size_t *len);

/*
 * RFC 9162 §2.1.3.2: does proof (len hashes, borrowed) show that leaf_hash
 * is leaf index of the tree of size n with this root? 0 or -EKEYREJECTED
 * (-EINVAL: index >= n, n > SP_MERKLE_SIZE_MAX, NULL).
 */
int sp_merkle_inclusion_verify(const uint8_t leaf_hash[SP_MERKLE_HASH_LEN], uint64_t index,
			       uint64_t n, const sp_merkle_hash *proof, size_t len,
			       const uint8_t root[SP_MERKLE_HASH_LEN]);

/*
 * RFC 9162 §2.1.4.2: does proof (len hashes, borrowed) show that the tree
 * of size m with root1 is a prefix of the tree of size n with root2?
 * m == n: consistent iff the proof is empty and the roots are equal.
 * m == 0: consistent iff the proof is empty and root1 is the empty root
 * (every tree extends the empty one). 0 or -EKEYREJECTED (-EINVAL: m > n,
 * n > SP_MERKLE_SIZE_MAX, NULL).
 */
int sp_merkle_consistency_verify(uint64_t m, uint64_t n, const uint8_t root1[SP_MERKLE_HASH_LEN],
				 const uint8_t root2[SP_MERKLE_HASH_LEN], const sp_merkle_hash *proof,
				 size_t len);

/*
 * An sp_merkle_subtree_fn over an array of leaf hashes in memory: ctx is a
 * struct sp_merkle_mem (leaves borrowed for its lifetime). A subtree of
 * level l costs 2^l - 1 node hashes: for tests and for one-off audits that
 * call sp_merkle_root (whose subtrees cover each leaf once: O(n) total).
 */
struct sp_merkle_mem {
	const sp_merkle_hash *leaves;
	uint64_t count;
};
int sp_merkle_mem_subtree(void *ctx, unsigned level, uint64_t index, uint8_t out[SP_MERKLE_HASH_LEN]);

/* True when n is a power of two (n > 0). */
static inline bool sp_merkle_is_pow2(uint64_t n)
{
	return n && !(n & (n - 1));
}

#endif
