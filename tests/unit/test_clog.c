/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_clog.c: the client's view of the transparency log (client/sp_clog.c)
 * over a real Merkle tree and real signed heads (lib/crypto): the key pinned
 * once, a served list's trailer checked (another key, another list, an
 * altered proof refused), heads judged against the kept one, consistency
 * proofs that extend it or expose a fork, the LogReply body, and the state
 * kept in an account store file across a reopen.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sealpost.h"
#include "sp_clog.h"
#include "sp_merkle.h"
#include "sp_sth.h"

enum { LEAVES = 7 };

static uint8_t pk[SP_LOG_KEY_LEN], sk[SP_LOG_SECRET_LEN];
static uint8_t pk2[SP_LOG_KEY_LEN], sk2[SP_LOG_SECRET_LEN];
static uint8_t lists[LEAVES][16];
static sp_merkle_hash leaves[LEAVES];

static void head_of(uint64_t n, const sp_merkle_hash *lv, const uint8_t *key_sk, struct sp_sth *h)
{
	struct sp_merkle_mem mem = { .leaves = lv, .count = n };

	memset(h, 0, sizeof(*h));
	h->tree_size = n;
	h->timestamp_ms = 1700000000000ULL + n;
	assert_int_equal(sp_merkle_root(sp_merkle_mem_subtree, &mem, n, h->root), 0);
	assert_int_equal(sp_sth_sign(h, key_sk), 0);
}

/* The trailer the broker serves with list i under the head of size n. */
static size_t trailer(uint64_t i, uint64_t n, const uint8_t *key_sk, uint8_t *out, size_t cap)
{
	struct sp_merkle_mem mem = { .leaves = leaves, .count = n };
	struct sp_inclusion inc = { .index = i };
	struct sp_sth h;
	size_t len = 0;

	head_of(n, leaves, key_sk, &h);
	assert_int_equal(sp_merkle_inclusion_proof(sp_merkle_mem_subtree, &mem, i, n, inc.path,
						   SP_MERKLE_PROOF_MAX, &inc.count),
			 0);
	assert_int_equal(sp_log_trailer_encode(&h, &inc, out, cap, &len), 0);
	return len;
}

static void proof(uint64_t m, uint64_t n, const sp_merkle_hash *lv, struct sp_consistency *c)
{
	struct sp_merkle_mem mem = { .leaves = lv, .count = n };

	memset(c, 0, sizeof(*c));
	c->first = m;
	c->second = n;
	assert_int_equal(sp_merkle_consistency_proof(sp_merkle_mem_subtree, &mem, m, n, c->path,
						     SP_MERKLE_PROOF_MAX, &c->count),
			 0);
}

static int setup(void **state)
{
	(void)state;
	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(pk2, sk2);
	for (unsigned i = 0; i < LEAVES; i++) {
		memset(lists[i], 'a' + (int)i, sizeof(lists[i]));
		sp_merkle_leaf_hash(leaves[i], lists[i], sizeof(lists[i]));
	}
	return 0;
}

static void test_key_pinned_once(void **state)
{
	struct sp_clog l;

	(void)state;
	memset(&l, 0, sizeof(l));
	sp_clog_attach(&l, NULL);
	assert_false(l.key_ok);
	assert_int_equal(sp_clog_learn_key(&l, pk), 0);
	assert_true(l.key_ok);
	assert_int_equal(sp_clog_learn_key(&l, pk), 0);
	assert_int_equal(sp_clog_learn_key(&l, pk2), -SEALPOST_ELOGKEY);
	assert_memory_equal(l.key, pk, sizeof(pk));
}

static void test_list_trailer(void **state)
{
	uint8_t tr[SP_LOG_TRAILER_MAX];
	struct sp_clog l;
	struct sp_sth seen;
	size_t n;

	(void)state;
	memset(&l, 0, sizeof(l));
	n = trailer(2, 5, sk, tr, sizeof(tr));
	/* no key yet: nothing to check against */
	assert_int_equal(sp_clog_check_list(&l, lists[2], sizeof(lists[2]), tr, n, &seen),
			 -SEALPOST_ELOGKEY);
	assert_int_equal(sp_clog_learn_key(&l, pk), 0);
	assert_int_equal(sp_clog_check_list(&l, lists[2], sizeof(lists[2]), tr, n, &seen), 0);
	assert_int_equal(seen.tree_size, 5);
	/* another list under that proof */
	assert_int_equal(sp_clog_check_list(&l, lists[3], sizeof(lists[3]), tr, n, &seen),
			 -SEALPOST_ELOGPROOF);
	/* any byte of the trailer altered */
	for (size_t i = 0; i < n; i++) {
		tr[i] ^= 0x01;
		assert_int_equal(sp_clog_check_list(&l, lists[2], sizeof(lists[2]), tr, n, &seen),
				 -SEALPOST_ELOGPROOF);
		tr[i] ^= 0x01;
	}
	/* truncated */
	assert_int_equal(sp_clog_check_list(&l, lists[2], sizeof(lists[2]), tr, n - 1, &seen),
			 -SEALPOST_ELOGPROOF);
	/* a head signed by another key than the pinned one */
	n = trailer(2, 5, sk2, tr, sizeof(tr));
	assert_int_equal(sp_clog_check_list(&l, lists[2], sizeof(lists[2]), tr, n, &seen),
			 -SEALPOST_ELOGPROOF);
}

static void test_judge_and_prove(void **state)
{
	sp_merkle_hash forked[LEAVES];
	struct sp_consistency c;
	struct sp_sth h3, h5, h6, f5;
	struct sp_clog l;
	uint64_t m = 0, n = 0;

	(void)state;
	memset(&l, 0, sizeof(l));
	assert_int_equal(sp_clog_learn_key(&l, pk), 0);
	head_of(3, leaves, sk, &h3);
	head_of(5, leaves, sk, &h5);
	head_of(6, leaves, sk, &h6);
	/* a fork: the same first 4 leaves, another 5th */
	memcpy(forked, leaves, sizeof(forked));
	sp_merkle_leaf_hash(forked[4], (const uint8_t *)"ghost", 5);
	head_of(5, forked, sk, &f5);

	/* the first head is adopted */
	assert_int_equal(sp_clog_judge(&l, &h3, &m, &n), 0);
	assert_true(l.head_ok);
	assert_int_equal(l.head.tree_size, 3);
	/* the same again */
	assert_int_equal(sp_clog_judge(&l, &h3, &m, &n), 0);
	/* a larger one needs a proof between the sizes */
	assert_int_equal(sp_clog_judge(&l, &h5, &m, &n), 1);
	assert_int_equal(m, 3);
	assert_int_equal(n, 5);
	proof(3, 5, leaves, &c);
	assert_int_equal(sp_clog_prove(&l, &h3, &h5, &c), 0);
	assert_int_equal(l.head.tree_size, 5);   /* extended */
	/* a proof for other sizes than the heads' */
	proof(3, 6, leaves, &c);
	assert_int_equal(sp_clog_prove(&l, &h5, &h6, &c), -SEALPOST_ESPLITVIEW);
	assert_int_equal(l.head.tree_size, 5);
	/* same size, another root: a split at once */
	assert_int_equal(sp_clog_judge(&l, &f5, &m, &n), -SEALPOST_ESPLITVIEW);
	/* the honest log's proof 5 -> 6 does not extend the fork's 5 */
	proof(5, 6, leaves, &c);
	assert_int_equal(sp_clog_prove(&l, &f5, &h6, &c), -SEALPOST_ESPLITVIEW);
	/* a smaller head seen later: proven (either order), the kept one stays */
	proof(3, 5, leaves, &c);
	assert_int_equal(sp_clog_prove(&l, &h5, &h3, &c), 0);
	assert_int_equal(l.head.tree_size, 5);
}

static void test_reply_parse(void **state)
{
	uint8_t body[16 + SP_STH_LEN + 8 + 1 + 32 * SP_MERKLE_PROOF_MAX];
	struct sp_consistency c, got;
	struct sp_sth h, hs;
	size_t len = 0, clen = 0;

	(void)state;
	head_of(6, leaves, sk, &h);
	proof(3, 6, leaves, &c);
	memcpy(body, lists[0], 16);
	sp_sth_encode(&h, body + 16);
	assert_int_equal(sp_consistency_encode(&c, body + 16 + SP_STH_LEN,
					       sizeof(body) - 16 - SP_STH_LEN, &clen),
			 0);
	len = 16 + SP_STH_LEN + clen;
	assert_int_equal(sp_clog_reply_parse(body, len, 16, &hs, &got), 0);
	assert_int_equal(hs.tree_size, 6);
	assert_int_equal(sp_sth_verify(&hs, pk), 0);
	assert_int_equal(got.count, c.count);
	assert_int_equal(sp_clog_reply_parse(body, len, len + 1, &hs, &got), -EBADMSG);
	assert_int_equal(sp_clog_reply_parse(body, 16 + SP_STH_LEN - 1, 16, &hs, &got), -EBADMSG);
}

static void test_kept_in_store(void **state)
{
	char dir[] = "/tmp/sp-test-clog-XXXXXX", path[64];
	struct sealpost_account_store *st = NULL;
	uint8_t key[32], head[SP_STH_LEN], enc[SP_STH_LEN];
	struct sp_clog l, l2;
	struct sp_sth h4;
	uint64_t m, n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/accounts", dir);
	assert_int_equal(sealpost_account_store_open(&st, path), 0);
	memset(&l, 0, sizeof(l));
	sp_clog_attach(&l, st);
	assert_int_equal(sealpost_account_store_log(st, key, head), -ENOENT);
	assert_int_equal(sp_clog_learn_key(&l, pk), 0);
	head_of(4, leaves, sk, &h4);
	assert_int_equal(sp_clog_judge(&l, &h4, &m, &n), 0);
	sealpost_account_store_close(st);

	/* a reopened store remembers both; a new client's view starts there */
	assert_int_equal(sealpost_account_store_open(&st, path), 0);
	assert_int_equal(sealpost_account_store_log(st, key, head), 0);
	assert_memory_equal(key, pk, sizeof(pk));
	sp_sth_encode(&h4, enc);
	assert_memory_equal(head, enc, sizeof(enc));
	memset(&l2, 0, sizeof(l2));
	sp_clog_attach(&l2, st);
	assert_true(l2.key_ok && l2.head_ok);
	assert_int_equal(l2.head.tree_size, 4);
	assert_int_equal(sp_clog_learn_key(&l2, pk2), -SEALPOST_ELOGKEY);
	sealpost_account_store_close(st);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_pinned_once),
		cmocka_unit_test(test_list_trailer),
		cmocka_unit_test(test_judge_and_prove),
		cmocka_unit_test(test_reply_parse),
		cmocka_unit_test(test_kept_in_store),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, NULL);
}
