/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_tlog.c: the log key, signed tree heads and proofs served (sp_tlog.h).
 *
 * The test fork: for one device the log is shown with one extra leaf at
 * its end (SP_TLOG_FORK_LEAF) that nobody else sees, signed with the real
 * key: exactly what a broker that wanted to show that device a ghost list
 * would have to do. Everything that device is served (heads, inclusion and
 * consistency proofs) is over that forked tree, so its view is consistent
 * with itself, and only a head from another device exposes it.
 */
#include "sp_tlog.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "sp_keyfile.h"
#include "sp_merkle.h"
#include "sp_store.h"

#define SP_TLOG_FORK_LEAF "sealpost test fork: a list only one device is shown"

int sp_tlog_load(struct sp_tlog *t, const char *dir)
{
	char kpath[4096 + 16], ppath[4096 + 16];
	uint8_t seed[SP_KEY_LEN], filepub[SP_LOG_KEY_LEN];
	int ret;

	memset(t, 0, sizeof(*t));
	snprintf(kpath, sizeof(kpath), "%s/log.key", dir);
	snprintf(ppath, sizeof(ppath), "%s/log.pub", dir);
	t->sk = sodium_malloc(SP_LOG_SECRET_LEN);
	if (!t->sk)
		return -ENOMEM;
	ret = sp_keyfile_read_private(kpath, seed);
	if (ret == -ENOENT) {
		randombytes_buf(seed, sizeof(seed));
		ret = sp_keyfile_write_private(kpath, seed);
	}
	if (ret == 0 && crypto_sign_seed_keypair(t->pk, t->sk, seed))
		ret = -EINVAL;
	sodium_memzero(seed, sizeof(seed));
	if (ret == 0 && (sp_keyfile_read_public(ppath, filepub) ||
			 sodium_memcmp(filepub, t->pk, SP_LOG_KEY_LEN)))
		ret = sp_keyfile_write_public(ppath, t->pk);
	if (ret) {
		sp_tlog_free(t);
		return ret;
	}
	sodium_mprotect_readonly(t->sk);
	return 0;
}

void sp_tlog_free(struct sp_tlog *t)
{
	if (!t)
		return;
	if (t->sk)
		sodium_free(t->sk); /* zeroes it */
	t->sk = NULL;
}

/* ---- the tree a device is shown --------------------------------------------- */

struct view {
	struct sp_store *st;
	uint64_t real;                  /* committed leaves */
	uint64_t size;                  /* real, or real + 1 for the forked device */
	uint8_t ghost[SP_MERKLE_HASH_LEN];
};

static int view_open(const struct sp_tlog *t, struct sp_store *st, const uint8_t *peer,
		     struct view *v)
{
	int ret;

	v->st = st;
	if ((ret = sp_store_log_size(st, &v->real)))
		return ret;
	v->size = v->real;
	if (t->fork && peer && sodium_memcmp(peer, t->fork_device, 32) == 0) {
		sp_merkle_leaf_hash(v->ghost, (const uint8_t *)SP_TLOG_FORK_LEAF,
				    sizeof(SP_TLOG_FORK_LEAF) - 1);
		v->size++;
	}
	return 0;
}

/* sp_merkle_subtree_fn over the view: the store's complete subtrees, or the
 * ones that reach the ghost leaf computed from their halves. */
static int view_subtree(void *ctx, unsigned level, uint64_t index, uint8_t out[SP_MERKLE_HASH_LEN])
{
	struct view *v = ctx;
	uint8_t l[SP_MERKLE_HASH_LEN], r[SP_MERKLE_HASH_LEN];
	int ret;

	if (((index + 1) << level) <= v->real)
		return sp_store_log_subtree(v->st, level, index, out);
	if (level == 0) {
		memcpy(out, v->ghost, SP_MERKLE_HASH_LEN);
		return index == v->real ? 0 : -EINVAL;
	}
	if ((ret = view_subtree(ctx, level - 1, 2 * index, l)) ||
	    (ret = view_subtree(ctx, level - 1, 2 * index + 1, r)))
		return ret;
	sp_merkle_node_hash(out, l, r);
	return 0;
}

static int head(const struct sp_tlog *t, struct view *v, uint64_t now_ms, struct sp_sth *out)
{
	int ret;

	memset(out, 0, sizeof(*out));
	out->tree_size = v->size;
	out->timestamp_ms = now_ms;
	if ((ret = sp_merkle_root(view_subtree, v, v->size, out->root)))
		return ret;
	return sp_sth_sign(out, t->sk);
}

int sp_tlog_head(const struct sp_tlog *t, struct sp_store *st, uint64_t now_ms, struct sp_sth *out)
{
	struct view v;
	int ret;

	if ((ret = view_open(t, st, NULL, &v)))
		return ret;
	return head(t, &v, now_ms, out);
}

int sp_tlog_trailer(const struct sp_tlog *t, struct sp_store *st, const uint8_t account[32],
		    const uint8_t peer[32], uint64_t now_ms, uint8_t *out, size_t cap, size_t *len)
{
	struct sp_inclusion inc;
	struct sp_sth sth;
	struct view v;
	int ret;

	if ((ret = view_open(t, st, peer, &v)) || (ret = sp_store_log_index_of(st, account, &inc.index)))
		return ret;
	if (inc.index >= v.real)
		return -EBADMSG;
	if ((ret = head(t, &v, now_ms, &sth)) ||
	    (ret = sp_merkle_inclusion_proof(view_subtree, &v, inc.index, v.size, inc.path,
					     SP_MERKLE_PROOF_MAX, &inc.count)))
		return ret;
	return sp_log_trailer_encode(&sth, &inc, out, cap, len);
}

int sp_tlog_fetch(const struct sp_tlog *t, struct sp_store *st, const uint8_t peer[32],
		  uint64_t now_ms, uint64_t first, uint64_t second, int want_leaf,
		  uint64_t leaf_index, uint8_t *out, size_t cap, size_t *leaf_len, size_t *len)
{
	struct sp_consistency con;
	struct sp_sth sth;
	struct view v;
	size_t off = 0, n;
	int ret;

	if ((ret = view_open(t, st, peer, &v)))
		return ret;
	if (second == 0)
		second = v.size;
	if (first > second || second > v.size || (want_leaf && leaf_index >= v.size))
		return -EINVAL;
	*leaf_len = 0;
	if (want_leaf) {
		if (leaf_index < v.real) {
			if ((ret = sp_store_log_leaf(st, leaf_index, out, cap, &n)))
				return ret;
		} else {
			n = sizeof(SP_TLOG_FORK_LEAF) - 1;
			if (cap < n)
				return -EMSGSIZE;
			memcpy(out, SP_TLOG_FORK_LEAF, n);
		}
		*leaf_len = n;
		off = n;
	}
	if ((ret = head(t, &v, now_ms, &sth)))
		return ret;
	if (cap - off < SP_STH_LEN)
		return -EMSGSIZE;
	sp_sth_encode(&sth, out + off);
	off += SP_STH_LEN;
	con.first = first;
	con.second = second;
	con.count = 0;
	if (first > 0 && (ret = sp_merkle_consistency_proof(view_subtree, &v, first, second, con.path,
							    SP_MERKLE_PROOF_MAX, &con.count)))
		return ret;
	if ((ret = sp_consistency_encode(&con, out + off, cap - off, &n)))
		return ret;
	*len = off + n;
	return 0;
}
