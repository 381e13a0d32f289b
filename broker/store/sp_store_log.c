/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store_log.c: the transparency log's records (sp_store.h, "the
 * transparency log"): leaves by index and the hash of every complete
 * subtree, so that a root or a proof is O(log n) point reads through
 * sp_merkle's subtree callback.
 */
#include <errno.h>
#include <string.h>

#include "sp_be.h"
#include "sp_merkle.h"
#include "sp_store_internal.h"

#define LOG_SIZE_KEY "lgs"
#define LOG_LEAF_PREFIX "lgl/"
#define LOG_HASH_PREFIX "lgh/"
#define LOG_INDEX_PREFIX "lgi/"

enum {
	LOG_PREFIX_LEN = 4,
	LOG_ACCOUNT_LEN = 32,           /* an account: its Ed25519 public key */
	LOG_LEAF_KEY_LEN = LOG_PREFIX_LEN + 8,
	LOG_HASH_KEY_LEN = LOG_PREFIX_LEN + 1 + 8,
	LOG_SIZE_VALUE_LEN = 1 + 8,
	LOG_INDEX_KEY_LEN = LOG_PREFIX_LEN + LOG_ACCOUNT_LEN,
};

static void leaf_key(uint8_t out[LOG_LEAF_KEY_LEN], uint64_t index)
{
	memcpy(out, LOG_LEAF_PREFIX, LOG_PREFIX_LEN);
	sp_be_put64(out + LOG_PREFIX_LEN, index);
}

static void hash_key(uint8_t out[LOG_HASH_KEY_LEN], unsigned level, uint64_t index)
{
	memcpy(out, LOG_HASH_PREFIX, LOG_PREFIX_LEN);
	out[LOG_PREFIX_LEN] = (uint8_t)level;
	sp_be_put64(out + LOG_PREFIX_LEN + 1, index);
}

static void index_key(uint8_t out[LOG_INDEX_KEY_LEN], const uint8_t account[LOG_ACCOUNT_LEN])
{
	memcpy(out, LOG_INDEX_PREFIX, LOG_PREFIX_LEN);
	memcpy(out + LOG_PREFIX_LEN, account, LOG_ACCOUNT_LEN);
}

int sp_store_log_size(struct sp_store *st, uint64_t *size)
{
	char *rerr = NULL, *val;
	size_t vlen = 0;
	int rc = 0;

	val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_DEFAULT], LOG_SIZE_KEY,
			     strlen(LOG_SIZE_KEY), &vlen, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "log size read", rerr);
	if (!val) {
		*size = 0;
		return 0;
	}
	if (vlen != LOG_SIZE_VALUE_LEN || (uint8_t)val[0] != SP_STORE_VALUE_V1)
		rc = -EBADMSG;
	else
		*size = sp_be_get64((const uint8_t *)val + 1);
	rocksdb_free(val);
	if (rc == 0 && *size > SP_MERKLE_SIZE_MAX)
		rc = -EBADMSG;
	return rc;
}

/* sp_merkle_subtree_fn over the "lgh/" records. */
static int subtree(void *ctx, unsigned level, uint64_t index, uint8_t out[SP_MERKLE_HASH_LEN])
{
	struct sp_store *st = ctx;
	uint8_t key[LOG_HASH_KEY_LEN];
	char *rerr = NULL, *val;
	size_t vlen = 0;
	int rc = 0;

	hash_key(key, level, index);
	val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_DEFAULT], (const char *)key,
			     sizeof(key), &vlen, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "log hash read", rerr);
	if (!val)
		return -EBADMSG; /* the size says it exists */
	if (vlen != SP_MERKLE_HASH_LEN)
		rc = -EBADMSG;
	else
		memcpy(out, val, SP_MERKLE_HASH_LEN);
	rocksdb_free(val);
	return rc;
}

int sp_store_log_stage(struct sp_store *st, rocksdb_writebatch_t *wb,
		       const uint8_t *account, const uint8_t *leaf, size_t len, uint64_t *index)
{
	uint8_t key[LOG_HASH_KEY_LEN], h[SP_MERKLE_HASH_LEN], left[SP_MERKLE_HASH_LEN];
	uint8_t sizev[LOG_SIZE_VALUE_LEN];
	rocksdb_column_family_handle_t *cf = st->cf[SP_STORE_CF_DEFAULT];
	uint64_t n, end;
	int rc;

	if (st->poisoned)
		return -EIO;
	if (len > SP_STORE_LOG_LEAF_MAX)
		return -EMSGSIZE;
	if ((rc = sp_store_log_size(st, &n)))
		return rc;
	if (n >= SP_MERKLE_SIZE_MAX)
		return -EMSGSIZE;
	/* the leaf: a version byte, then its bytes (putv: no copy of the list) */
	{
		uint8_t lk[LOG_LEAF_KEY_LEN];
		const uint8_t v = SP_STORE_VALUE_V1;
		const char *kparts[1] = { (const char *)lk };
		const size_t klens[1] = { sizeof(lk) };
		const char *vparts[2] = { (const char *)&v, (const char *)leaf };
		const size_t vlens[2] = { 1, len };

		leaf_key(lk, n);
		rocksdb_writebatch_putv_cf(wb, cf, 1, kparts, klens, len ? 2 : 1, vparts, vlens);
	}
	/* its hash and every subtree it completes: after n + 1 leaves, the
	 * subtree of level l ending at leaf n exists iff 2^l divides n + 1 */
	sp_merkle_leaf_hash(h, leaf, len);
	hash_key(key, 0, n);
	rocksdb_writebatch_put_cf(wb, cf, (const char *)key, sizeof(key), (const char *)h, sizeof(h));
	end = n + 1;
	for (unsigned l = 1; l < 63 && (end & ((UINT64_C(1) << l) - 1)) == 0; l++) {
		uint64_t j = (end >> l) - 1; /* this subtree's index at level l */

		/* its left half, complete and committed before this append */
		if ((rc = subtree(st, l - 1, 2 * j, left)))
			return rc;
		sp_merkle_node_hash(h, left, h);
		hash_key(key, l, j);
		rocksdb_writebatch_put_cf(wb, cf, (const char *)key, sizeof(key), (const char *)h,
					  sizeof(h));
	}
	sizev[0] = SP_STORE_VALUE_V1;
	sp_be_put64(sizev + 1, end);
	if (account) {
		uint8_t ik[LOG_INDEX_KEY_LEN];

		/* the account's latest leaf: the same value layout as the size */
		index_key(ik, account);
		sp_be_put64(sizev + 1, n);
		rocksdb_writebatch_put_cf(wb, cf, (const char *)ik, sizeof(ik), (const char *)sizev,
					  sizeof(sizev));
		sp_be_put64(sizev + 1, end);
	}
	rocksdb_writebatch_put_cf(wb, cf, LOG_SIZE_KEY, strlen(LOG_SIZE_KEY), (const char *)sizev,
				  sizeof(sizev));
	*index = n;
	return 0;
}

int sp_store_log_append(struct sp_store *st, const uint8_t *account, const uint8_t *leaf, size_t len,
			uint64_t *index)
{
	rocksdb_writebatch_t *wb;
	char *rerr = NULL;
	uint64_t idx = 0;
	int rc;

	wb = rocksdb_writebatch_create();
	if (!wb)
		return -ENOMEM;
	rc = sp_store_log_stage(st, wb, account, leaf, len, &idx);
	if (rc == 0) {
		rocksdb_write(st->db, st->wo_sync, wb, &rerr);
		if (rerr)
			rc = sp_store_rocks_fail(st, "log write", rerr);
	}
	rocksdb_writebatch_destroy(wb);
	if (rc == 0)
		*index = idx;
	return rc;
}

int sp_store_log_leaf(struct sp_store *st, uint64_t index, uint8_t *buf, size_t cap, size_t *len)
{
	uint8_t key[LOG_LEAF_KEY_LEN];
	char *rerr = NULL, *val;
	size_t vlen = 0;
	uint64_t n;
	int rc;

	if ((rc = sp_store_log_size(st, &n)))
		return rc;
	if (index >= n)
		return -ENOENT;
	leaf_key(key, index);
	val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_DEFAULT], (const char *)key,
			     sizeof(key), &vlen, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "log leaf read", rerr);
	if (!val)
		return -EBADMSG;
	if (vlen < 1 || (uint8_t)val[0] != SP_STORE_VALUE_V1)
		rc = -EBADMSG;
	else if (vlen - 1 > cap)
		rc = -EMSGSIZE;
	else {
		if (vlen > 1)
			memcpy(buf, val + 1, vlen - 1);
		*len = vlen - 1;
	}
	rocksdb_free(val);
	return rc;
}

static int check_size(struct sp_store *st, uint64_t n)
{
	uint64_t size;
	int rc;

	if ((rc = sp_store_log_size(st, &size)))
		return rc;
	return n > size ? -EINVAL : 0;
}

int sp_store_log_root(struct sp_store *st, uint64_t n, uint8_t root[32])
{
	int rc;

	if ((rc = check_size(st, n)))
		return rc;
	return sp_merkle_root(subtree, st, n, root);
}

int sp_store_log_inclusion(struct sp_store *st, uint64_t index, uint64_t n, uint8_t (*proof)[32],
			   size_t cap, size_t *len)
{
	int rc;

	if ((rc = check_size(st, n)))
		return rc;
	return sp_merkle_inclusion_proof(subtree, st, index, n, proof, cap, len);
}

int sp_store_log_consistency(struct sp_store *st, uint64_t m, uint64_t n, uint8_t (*proof)[32],
			     size_t cap, size_t *len)
{
	int rc;

	if ((rc = check_size(st, n)))
		return rc;
	return sp_merkle_consistency_proof(subtree, st, m, n, proof, cap, len);
}

int sp_store_log_index_of(struct sp_store *st, const uint8_t account[LOG_ACCOUNT_LEN], uint64_t *index)
{
	uint8_t key[LOG_INDEX_KEY_LEN];
	char *rerr = NULL, *val;
	size_t vlen = 0;
	int rc = 0;

	index_key(key, account);
	val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_DEFAULT], (const char *)key,
			     sizeof(key), &vlen, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "log index read", rerr);
	if (!val)
		return -ENOENT;
	if (vlen != LOG_SIZE_VALUE_LEN || (uint8_t)val[0] != SP_STORE_VALUE_V1)
		rc = -EBADMSG;
	else
		*index = sp_be_get64((const uint8_t *)val + 1);
	rocksdb_free(val);
	return rc;
}

int sp_store_log_subtree(struct sp_store *st, unsigned level, uint64_t index, uint8_t out[32])
{
	return subtree(st, level, index, out);
}
