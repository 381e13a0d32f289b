/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_tlog.c: broker/app/sp_tlog.c over a real store: the log key is
 * created once and kept; heads verify under it; a served trailer proves the
 * account's latest list; LogFetch answers a leaf and a consistency proof that
 * verify; the test fork shows one device a history that no consistency proof
 * reconciles with everyone else's.
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
#include <sys/stat.h>

#include <cmocka.h>
#include <sodium.h>

#include "sp_merkle.h"
#include "sp_keyfile.h"
#include "sp_sth.h"
#include "sp_store.h"
#include "sp_tlog.h"

struct fx {
	char dir[64];
	struct sp_store_config cfg;
	struct sp_store *st;
	struct sp_tlog t;
};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	strcpy(f->dir, "/tmp/sp_tlog_test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	sp_store_config_defaults(&f->cfg);
	f->cfg.dir = f->dir;
	assert_int_equal(sp_store_open(&f->st, &f->cfg, err, sizeof(err)), 0);
	assert_int_equal(sp_tlog_load(&f->t, f->dir), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	sp_tlog_free(&f->t);
	sp_store_close(f->st);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void account_of(uint8_t a[32], int i)
{
	memset(a, 0xa0 + i, 32);
}

/* 5 accounts, 2 lists each: "list A v1", ... */
static void publish(struct fx *f)
{
	char list[32];
	uint8_t a[32];
	uint64_t idx;

	for (int v = 1; v <= 2; v++)
		for (int i = 0; i < 5; i++) {
			account_of(a, i);
			snprintf(list, sizeof(list), "list %c v%d", 'A' + i, v);
			assert_int_equal(sp_store_log_append(f->st, a, (const uint8_t *)list,
							     strlen(list), &idx),
					 0);
		}
}

static void test_key(void **state)
{
	struct fx *f = *state;
	struct sp_tlog again;
	char path[128];
	struct stat sb;
	uint8_t pub[32];

	snprintf(path, sizeof(path), "%s/log.key", f->dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/log.pub", f->dir);
	assert_int_equal(sp_keyfile_read_public(path, pub), 0);
	assert_memory_equal(pub, f->t.pk, 32);
	assert_int_equal(sp_tlog_load(&again, f->dir), 0);
	assert_memory_equal(again.pk, f->t.pk, 32);
	sp_tlog_free(&again);
	/* a key others can read is refused */
	snprintf(path, sizeof(path), "%s/log.key", f->dir);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(sp_tlog_load(&again, f->dir), -EACCES);
}

static void test_trailer_and_fetch(void **state)
{
	struct fx *f = *state;
	uint8_t buf[SP_LOG_TRAILER_MAX + 256], a[32], peer[32] = { 1 }, root[32];
	struct sp_inclusion inc;
	struct sp_consistency con;
	struct sp_sth sth, h;
	size_t len, leaf_len;

	assert_int_equal(sp_tlog_head(&f->t, f->st, 1000, &h), 0);
	assert_int_equal(h.tree_size, 0);
	assert_int_equal(sp_sth_verify(&h, f->t.pk), 0);
	account_of(a, 2);
	assert_int_equal(sp_tlog_trailer(&f->t, f->st, a, peer, 1000, buf, sizeof(buf), &len),
			 -ENOENT);
	publish(f);
	assert_int_equal(sp_tlog_trailer(&f->t, f->st, a, peer, 2000, buf, sizeof(buf), &len), 0);
	assert_int_equal(sp_log_trailer_decode(buf, len, &sth, &inc), 0);
	assert_int_equal(sth.tree_size, 10);
	assert_int_equal(sth.timestamp_ms, 2000);
	assert_int_equal(inc.index, 7); /* "list C v2" */
	assert_int_equal(sp_log_check_leaf(f->t.pk, &sth, &inc, (const uint8_t *)"list C v2", 9), 0);
	assert_int_equal(sp_log_check_leaf(f->t.pk, &sth, &inc, (const uint8_t *)"list C v1", 9),
			 -EKEYREJECTED);
	assert_int_equal(sp_store_log_root(f->st, 10, root), 0);
	assert_memory_equal(root, sth.root, 32);

	/* leaf 2 and the proof from the empty head's size... 0 (no proof) and from 3 */
	assert_int_equal(sp_tlog_fetch(&f->t, f->st, peer, 3000, 3, 0, 1, 2, buf, sizeof(buf),
				       &leaf_len, &len),
			 0);
	assert_int_equal(leaf_len, 9);
	assert_memory_equal(buf, "list C v1", 9);
	assert_int_equal(sp_sth_decode(buf + 9, SP_STH_LEN, &sth), 0);
	assert_int_equal(sp_sth_verify(&sth, f->t.pk), 0);
	assert_int_equal(sp_consistency_decode(buf + 9 + SP_STH_LEN, len - 9 - SP_STH_LEN, &con), 0);
	assert_int_equal(con.second, 10);
	assert_int_equal(sp_store_log_root(f->st, 3, root), 0);
	assert_int_equal(sp_merkle_consistency_verify(3, 10, root, sth.root, con.path, con.count), 0);
	assert_int_equal(sp_tlog_fetch(&f->t, f->st, peer, 3000, 0, 0, 0, 0, buf, sizeof(buf),
				       &leaf_len, &len),
			 0);
	assert_int_equal(leaf_len, 0);
	assert_int_equal(len, SP_STH_LEN + 17);
	assert_int_equal(sp_tlog_fetch(&f->t, f->st, peer, 3000, 4, 11, 0, 0, buf, sizeof(buf),
				       &leaf_len, &len),
			 -EINVAL);
	assert_int_equal(sp_tlog_fetch(&f->t, f->st, peer, 3000, 4, 3, 0, 0, buf, sizeof(buf),
				       &leaf_len, &len),
			 -EINVAL);
	assert_int_equal(sp_tlog_fetch(&f->t, f->st, peer, 3000, 1, 0, 1, 10, buf, sizeof(buf),
				       &leaf_len, &len),
			 -EINVAL);
}

static void test_fork(void **state)
{
	struct fx *f = *state;
	uint8_t buf[SP_LOG_TRAILER_MAX + 256], a[32], victim[32], other[32], r3[32];
	struct sp_sth honest, forked;
	struct sp_consistency con;
	struct sp_inclusion inc;
	size_t len, leaf_len;
	uint64_t idx;

	publish(f);
	memset(victim, 0x77, 32);
	memset(other, 0x78, 32);
	memcpy(f->t.fork_device, victim, 32);
	f->t.fork = 1;
	account_of(a, 4);

	/* the victim's view: 11 leaves, self-consistent, its proofs verify */
	assert_int_equal(sp_tlog_trailer(&f->t, f->st, a, victim, 5000, buf, sizeof(buf), &len), 0);
	assert_int_equal(sp_log_trailer_decode(buf, len, &forked, &inc), 0);
	assert_int_equal(forked.tree_size, 11);
	assert_int_equal(sp_log_check_leaf(f->t.pk, &forked, &inc, (const uint8_t *)"list E v2", 9),
			 0);
	assert_int_equal(sp_store_log_root(f->st, 3, r3), 0);
	assert_int_equal(sp_tlog_fetch(&f->t, f->st, victim, 5000, 3, 0, 0, 0, buf, sizeof(buf),
				       &leaf_len, &len),
			 0);
	assert_int_equal(sp_consistency_decode(buf + SP_STH_LEN, len - SP_STH_LEN, &con), 0);
	assert_int_equal(sp_merkle_consistency_verify(3, 11, r3, forked.root, con.path, con.count), 0);

	/* everyone else: 10 leaves, then 11 real ones */
	assert_int_equal(sp_tlog_trailer(&f->t, f->st, a, other, 5000, buf, sizeof(buf), &len), 0);
	assert_int_equal(sp_log_trailer_decode(buf, len, &honest, &inc), 0);
	assert_int_equal(honest.tree_size, 10);
	/* the victim asks for a proof from the peer's 10 to its 11: what the
	 * broker answers does not reconcile the two signed roots */
	assert_int_equal(sp_tlog_fetch(&f->t, f->st, victim, 5000, 10, 11, 0, 0, buf, sizeof(buf),
				       &leaf_len, &len),
			 0);
	assert_int_equal(sp_consistency_decode(buf + SP_STH_LEN, len - SP_STH_LEN, &con), 0);
	/* 10 -> 11 in the fork IS consistent (the fork only appends)... */
	assert_int_equal(
		sp_merkle_consistency_verify(10, 11, honest.root, forked.root, con.path, con.count), 0);
	/* ...but once the real log grows past the fork point, the two 11s differ
	 * and no proof from the victim's 11 to anyone's later head exists */
	assert_int_equal(sp_store_log_append(f->st, a, (const uint8_t *)"list E v3", 9, &idx), 0);
	assert_int_equal(sp_tlog_head(&f->t, f->st, 6000, &honest), 0);
	assert_int_equal(honest.tree_size, 11);
	{
		uint64_t m = 0, n = 0;

		assert_int_equal(sp_sth_compare(&forked, &honest, &m, &n), SP_STH_SPLIT);
	}
	assert_int_equal(sp_tlog_fetch(&f->t, f->st, other, 6000, 11, 0, 0, 0, buf, sizeof(buf),
				       &leaf_len, &len),
			 0);
	assert_int_equal(sp_consistency_decode(buf + SP_STH_LEN, len - SP_STH_LEN, &con), 0);
	assert_int_equal(
		sp_merkle_consistency_verify(11, 11, forked.root, honest.root, con.path, con.count),
		-EKEYREJECTED);
	/* the ghost leaf is what the victim would audit */
	assert_int_equal(sp_tlog_fetch(&f->t, f->st, victim, 6000, 0, 0, 1, 11, buf, sizeof(buf),
				       &leaf_len, &len),
			 0);
	assert_true(leaf_len > 0);
	assert_memory_not_equal(buf, "list E v3", 9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trailer_and_fetch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fork, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
