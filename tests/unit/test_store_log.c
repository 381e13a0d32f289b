/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_store_log.c: broker/store/sp_store_log.c, the transparency log's
 * records, against a real RocksDB directory: every root, inclusion and
 * consistency proof the store answers equals sp_merkle's over the same
 * leaves in memory and verifies; the log survives a reopen; an append staged
 * into a caller's batch is durable with that batch's other records and
 * invisible without it.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <rocksdb/c.h>
#include <sodium.h>

#include "sp_merkle.h"
#include "sp_store.h"
#include "sp_store_internal.h"

enum { LEAVES = 70 };

struct fx {
	char dir[64], data[96];
	struct sp_store_config cfg;
	struct sp_store *st;
	sp_merkle_hash hashes[LEAVES];
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void open_store(struct fx *f)
{
	char err[256] = "";
	int rc = sp_store_open(&f->st, &f->cfg, err, sizeof(err));

	if (rc)
		print_error("open: %d %s\n", rc, err);
	assert_int_equal(rc, 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/sp_store_log_test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->data, sizeof(f->data), "%s/data", f->dir);
	sp_store_config_defaults(&f->cfg);
	f->cfg.dir = f->data;
	open_store(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	sp_store_close(f->st);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* leaf i: i bytes of value i (leaf 0 is empty) */
static size_t leaf_of(uint8_t *buf, uint64_t i)
{
	memset(buf, (int)i, (size_t)i);
	return (size_t)i;
}

static void append_all(struct fx *f, uint64_t from, uint64_t to)
{
	uint8_t buf[LEAVES];

	for (uint64_t i = from; i < to; i++) {
		uint64_t idx = 99;
		size_t n = leaf_of(buf, i);

		assert_int_equal(sp_store_log_append(f->st, NULL, buf, n, &idx), 0);
		assert_int_equal(idx, i);
		sp_merkle_leaf_hash(f->hashes[i], buf, n);
	}
}

static void check_all(struct fx *f, uint64_t size)
{
	struct sp_merkle_mem mem = { f->hashes, size };
	uint8_t root[SP_MERKLE_HASH_LEN], want[SP_MERKLE_HASH_LEN], roots[LEAVES + 1][32];
	uint8_t proof[SP_MERKLE_PROOF_MAX][32], wantp[SP_MERKLE_PROOF_MAX][32];
	uint8_t buf[LEAVES + 1];
	size_t len, wlen;
	uint64_t n;

	assert_int_equal(sp_store_log_size(f->st, &n), 0);
	assert_int_equal(n, size);
	for (uint64_t s = 0; s <= size; s++) {
		assert_int_equal(sp_store_log_root(f->st, s, root), 0);
		assert_int_equal(sp_merkle_root(sp_merkle_mem_subtree, &mem, s, want), 0);
		assert_memory_equal(root, want, sizeof(root));
		memcpy(roots[s], root, 32);
	}
	for (uint64_t i = 0; i < size; i++) {
		assert_int_equal(sp_store_log_leaf(f->st, i, buf, sizeof(buf), &len), 0);
		assert_int_equal(len, i);
		for (size_t k = 0; k < len; k++)
			assert_int_equal(buf[k], (uint8_t)i);
		assert_int_equal(sp_store_log_inclusion(f->st, i, size, proof, SP_MERKLE_PROOF_MAX, &len),
				 0);
		assert_int_equal(sp_merkle_inclusion_proof(sp_merkle_mem_subtree, &mem, i, size, wantp,
							   SP_MERKLE_PROOF_MAX, &wlen),
				 0);
		assert_int_equal(len, wlen);
		assert_memory_equal(proof, wantp, len * 32);
		assert_int_equal(
			sp_merkle_inclusion_verify(f->hashes[i], i, size, (const sp_merkle_hash *)proof,
						   len, roots[size]),
			0);
	}
	for (uint64_t m = 1; m <= size; m += 3) {
		assert_int_equal(
			sp_store_log_consistency(f->st, m, size, proof, SP_MERKLE_PROOF_MAX, &len), 0);
		assert_int_equal(sp_merkle_consistency_verify(m, size, roots[m], roots[size],
							      (const sp_merkle_hash *)proof, len),
				 0);
	}
	assert_int_equal(sp_store_log_leaf(f->st, size, buf, sizeof(buf), &len), -ENOENT);
	assert_int_equal(sp_store_log_root(f->st, size + 1, root), -EINVAL);
	assert_int_equal(sp_store_log_inclusion(f->st, 0, size + 1, proof, SP_MERKLE_PROOF_MAX, &len),
			 -EINVAL);
}

static void test_append_and_prove(void **state)
{
	struct fx *f = *state;
	uint8_t root[32], empty[32];
	uint64_t n = 7;

	assert_int_equal(sp_store_log_size(f->st, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(sp_store_log_root(f->st, 0, root), 0);
	sp_merkle_empty_root(empty);
	assert_memory_equal(root, empty, 32);
	append_all(f, 0, 33);
	check_all(f, 33);
	/* survives a reopen, and appends continue where they were */
	sp_store_close(f->st);
	f->st = NULL;
	open_store(f);
	check_all(f, 33);
	append_all(f, 33, LEAVES);
	check_all(f, LEAVES);
}

/* staged into the caller's batch: durable with the batch's own record, or
 * (batch discarded) not at all */
static void test_stage(void **state)
{
	struct fx *f = *state;
	rocksdb_writebatch_t *wb;
	char *rerr = NULL, *val;
	size_t vlen;
	uint8_t acct[32];
	uint64_t idx, n;

	append_all(f, 0, 3);
	memset(acct, 0xac, sizeof(acct));
	assert_int_equal(sp_store_log_index_of(f->st, acct, &idx), -ENOENT);
	wb = rocksdb_writebatch_create();
	assert_int_equal(sp_store_log_stage(f->st, wb, acct, (const uint8_t *)"\3\3\3", 3, &idx), 0);
	assert_int_equal(idx, 3);
	rocksdb_writebatch_destroy(wb); /* never written */
	assert_int_equal(sp_store_log_size(f->st, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(sp_store_log_index_of(f->st, acct, &idx), -ENOENT);

	wb = rocksdb_writebatch_create();
	rocksdb_writebatch_put_cf(wb, f->st->cf[SP_STORE_CF_DEFAULT], "zz-test", 7, "x", 1);
	assert_int_equal(sp_store_log_stage(f->st, wb, acct, (const uint8_t *)"\3\3\3", 3, &idx), 0);
	rocksdb_write(f->st->db, f->st->wo_sync, wb, &rerr);
	assert_null(rerr);
	rocksdb_writebatch_destroy(wb);
	sp_store_close(f->st);
	f->st = NULL;
	open_store(f);
	val = rocksdb_get_cf(f->st->db, f->st->ro, f->st->cf[SP_STORE_CF_DEFAULT], "zz-test", 7, &vlen,
			     &rerr);
	assert_non_null(val);
	rocksdb_free(val);
	sp_merkle_leaf_hash(f->hashes[3], (const uint8_t *)"\3\3\3", 3);
	check_all(f, 4);
	idx = 0;
	assert_int_equal(sp_store_log_index_of(f->st, acct, &idx), 0);
	assert_int_equal(idx, 3);
	/* too large a leaf */
	wb = rocksdb_writebatch_create();
	assert_int_equal(sp_store_log_stage(f->st, wb, NULL, (const uint8_t *)"", SP_STORE_LOG_LEAF_MAX + 1,
					    &idx),
			 -EMSGSIZE);
	rocksdb_writebatch_destroy(wb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_and_prove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stage, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
