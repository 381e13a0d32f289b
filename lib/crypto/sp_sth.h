/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_sth.h: the broker's transparency log on the wire (docs/PROTOCOL.md
 * §11.7): signed tree heads, inclusion and consistency proofs, the log
 * trailer of a served device list, and the tree-head wrapper a client puts
 * inside its sealed envelopes. Fixed binary layouts, big-endian, one
 * spelling each (a signature must cover exactly one byte string); decoders
 * refuse every other byte string.
 *
 *   sth        = u8 format (1) | u64 tree_size | u64 timestamp_ms | root[32] |
 *                signature[64]                                   (113 bytes)
 *   signature  = Ed25519 (crypto_sign_detached, the log key) over
 *                SP_STH_DOMAIN (14 ASCII bytes, no NUL) || sth minus signature
 *   inclusion  = u64 leaf_index | u8 count | hash[32] * count
 *   consistency= u64 first | u64 second | u8 count | hash[32] * count
 *   trailer    = sth | inclusion            (after a list in ListResult /
 *                                            ListChanged bodies; the leaf is
 *                                            the list's bytes)
 *   wrap       = "SPT1" | log_key[32] | sth (149 bytes, first in a sealed
 *                plaintext, then the application's message)
 *
 * count <= SP_MERKLE_PROOF_MAX; tree_size <= SP_MERKLE_SIZE_MAX; a
 * consistency proof has first <= second; an inclusion proof's index is
 * checked against the STH's size by sp_merkle_inclusion_verify.
 *
 * Layering: crypto (libsodium), no I/O. Errors: -EBADMSG malformed,
 * -EMSGSIZE output too small, -EKEYREJECTED a signature or proof that does
 * not verify, -EINVAL bad arguments.
 */
#ifndef SP_STH_H
#define SP_STH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_merkle.h"

#define SP_STH_DOMAIN "sealpost/sth/1"
#define SP_STH_WRAP_MAGIC "SPT1"

enum {
	SP_STH_FORMAT = 1,
	SP_STH_DOMAIN_LEN = sizeof(SP_STH_DOMAIN) - 1, /* 14 */
	SP_LOG_KEY_LEN = 32,            /* Ed25519 public key */
	SP_LOG_SECRET_LEN = 64,         /* libsodium's Ed25519 secret key */
	SP_STH_SIG_LEN = 64,
	SP_STH_SIGNED_LEN = 1 + 8 + 8 + SP_MERKLE_HASH_LEN,        /* 49 */
	SP_STH_LEN = SP_STH_SIGNED_LEN + SP_STH_SIG_LEN,           /* 113 */
	SP_INCLUSION_MAX = 8 + 1 + SP_MERKLE_PROOF_MAX * SP_MERKLE_HASH_LEN,
	SP_CONSISTENCY_MAX = 8 + 8 + 1 + SP_MERKLE_PROOF_MAX * SP_MERKLE_HASH_LEN,
	SP_LOG_TRAILER_MAX = SP_STH_LEN + SP_INCLUSION_MAX,
	SP_STH_WRAP_MAGIC_LEN = 4,
	SP_STH_WRAP_LEN = SP_STH_WRAP_MAGIC_LEN + SP_LOG_KEY_LEN + SP_STH_LEN, /* 149 */
};

struct sp_sth {
	uint64_t tree_size;
	uint64_t timestamp_ms;          /* Unix time, milliseconds, as the log stated it */
	uint8_t root[SP_MERKLE_HASH_LEN];
	uint8_t sig[SP_STH_SIG_LEN];
};

struct sp_inclusion {
	uint64_t index;
	size_t count;
	sp_merkle_hash path[SP_MERKLE_PROOF_MAX];
};

struct sp_consistency {
	uint64_t first, second;
	size_t count;
	sp_merkle_hash path[SP_MERKLE_PROOF_MAX];
};

/* Signs sth (tree_size, timestamp_ms, root set; sig filled) with the log's
 * secret key (borrowed; libsodium layout seed || public). */
int sp_sth_sign(struct sp_sth *sth, const uint8_t sk[SP_LOG_SECRET_LEN]);
/* 0 when sth's signature verifies under log_key, else -EKEYREJECTED. */
int sp_sth_verify(const struct sp_sth *sth, const uint8_t log_key[SP_LOG_KEY_LEN]);

/* Encodes into out (caller-owned, SP_STH_LEN bytes). */
void sp_sth_encode(const struct sp_sth *sth, uint8_t out[SP_STH_LEN]);
/* Decodes buf (borrowed), which must be exactly SP_STH_LEN bytes. */
int sp_sth_decode(const uint8_t *buf, size_t len, struct sp_sth *out);

/* Encodings into out (caller-owned, cap bytes), *len. */
int sp_inclusion_encode(const struct sp_inclusion *p, uint8_t *out, size_t cap, size_t *len);
int sp_consistency_encode(const struct sp_consistency *p, uint8_t *out, size_t cap, size_t *len);
/* Decoders of exactly len bytes (borrowed); out filled. */
int sp_inclusion_decode(const uint8_t *buf, size_t len, struct sp_inclusion *out);
int sp_consistency_decode(const uint8_t *buf, size_t len, struct sp_consistency *out);

/* trailer = sth | inclusion: the bytes after a served list. */
int sp_log_trailer_encode(const struct sp_sth *sth, const struct sp_inclusion *p, uint8_t *out,
			  size_t cap, size_t *len);
int sp_log_trailer_decode(const uint8_t *buf, size_t len, struct sp_sth *sth,
			  struct sp_inclusion *p);

/*
 * A served list's whole check: the STH verifies under log_key and the
 * inclusion proof puts leaf (the list's bytes, borrowed) at p->index of
 * that tree. 0, -EKEYREJECTED, -EINVAL (index >= size).
 */
int sp_log_check_leaf(const uint8_t log_key[SP_LOG_KEY_LEN], const struct sp_sth *sth,
		      const struct sp_inclusion *p, const uint8_t *leaf, size_t leaf_len);

/* wrap = magic | log_key | sth into out (SP_STH_WRAP_LEN bytes). */
void sp_sth_wrap(const uint8_t log_key[SP_LOG_KEY_LEN], const struct sp_sth *sth,
		 uint8_t out[SP_STH_WRAP_LEN]);
/*
 * If msg (len bytes, borrowed) starts with a well-formed wrap: fills
 * log_key and sth (the signature is NOT checked here), returns 1; a
 * message without the magic: 0 (an application message, untouched);
 * the magic followed by a malformed wrap: -EBADMSG.
 */
int sp_sth_unwrap(const uint8_t *msg, size_t len, uint8_t log_key[SP_LOG_KEY_LEN],
		  struct sp_sth *sth);

/*
 * A client's view of one log: the tree heads it has verified, and the
 * check of a newly seen one against them (RFC 9162 §8.1.4 "gossip" in its
 * simplest form). The caller keeps the heads (client storage) and fetches
 * consistency proofs; this only decides.
 *
 *   SP_STH_SAME         same size and root as a known head: nothing to do
 *   SP_STH_NEED_PROOF   a different size: *m, *n (m < n) are the sizes
 *                       whose consistency proof must be fetched and checked
 *                       with sp_merkle_consistency_verify (a failure, or a
 *                       broker that will not answer, is a split view)
 *   SP_STH_SPLIT        same size, different root, both signed: proof by
 *                       itself that the log showed two histories
 */
enum sp_sth_verdict { SP_STH_SAME = 0, SP_STH_NEED_PROOF = 1, SP_STH_SPLIT = 2 };
enum sp_sth_verdict sp_sth_compare(const struct sp_sth *known, const struct sp_sth *seen,
				   uint64_t *m, uint64_t *n);

#endif
