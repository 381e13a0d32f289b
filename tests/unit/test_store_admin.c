/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_store_admin.c: the store's admin queries (store/sp_store_admin.c)
 * on a real RocksDB directory: a mailbox's oldest live entry, purge (only
 * that device, counters and stats follow, entries of the open batch kept,
 * acks in the same batch not counted twice, a reopen sees it), and the top
 * list by bytes and by count.
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
#include <unistd.h>

#include <cmocka.h>

#include "sp_store.h"

struct fx {
	char dir[64];
	char data[128];
	struct sp_store_config cfg;
	struct sp_store *st;
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

	if (sp_store_open(&f->st, &f->cfg, err, sizeof(err)))
		fail_msg("open: %s", err);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/sp_store_admin.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->data, sizeof(f->data), "%s/data", f->dir);
	sp_store_config_defaults(&f->cfg);
	f->cfg.dir = f->data;
	f->cfg.sync = SP_STORE_SYNC_NEVER;
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

static void key_of(uint8_t k[SP_KEY_LEN], uint8_t tag)
{
	memset(k, tag, SP_KEY_LEN);
	k[0] = 0x40;
}

/* n envelopes of len bytes to `to`, in one committed batch at time now. */
static void put(struct fx *f, uint64_t now, const uint8_t *to, unsigned n, size_t len,
		uint64_t ttl, uint64_t *seqs)
{
	static uint8_t body[1000];
	uint8_t from[SP_KEY_LEN];
	struct sp_store_batch *b;

	key_of(from, 0xee);
	assert_int_equal(sp_store_batch_begin(f->st, now, &b), 0);
	for (unsigned i = 0; i < n; i++) {
		struct sp_store_envelope e = { .recipient = to, .sender = from, .body = body,
					       .body_len = len, .ttl_ms = ttl };
		uint64_t seq;

		assert_int_equal(sp_store_enqueue(b, &e, &seq), 0);
		if (seqs)
			seqs[i] = seq;
	}
	assert_int_equal(sp_store_batch_commit(b), 0);
}

static void test_oldest(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], b[SP_KEY_LEN];
	uint64_t t = 0;

	key_of(a, 1);
	key_of(b, 2);
	assert_int_equal(sp_store_mailbox_oldest(f->st, a, 1000000, &t), -ENOENT);
	/* Whole seconds: stored acceptance times are (SP_STORE_ACCEPTED_GRAIN_MS). */
	put(f, 1000000, a, 1, 10, 500000, NULL);        /* expires at 1500000 */
	put(f, 1200000, a, 2, 10, 0, NULL);
	put(f, 1100000, b, 1, 10, 0, NULL);
	assert_int_equal(sp_store_mailbox_oldest(f->st, a, 1300000, &t), 0);
	assert_int_equal(t, 1000000);
	/* Expired but not swept: skipped. */
	assert_int_equal(sp_store_mailbox_oldest(f->st, a, 1600000, &t), 0);
	assert_int_equal(t, 1200000);
	assert_int_equal(sp_store_mailbox_oldest(f->st, b, 1600000, &t), 0);
	assert_int_equal(t, 1100000);
	assert_int_equal(sp_store_mailbox_oldest(f->st, NULL, 1600000, &t), -EINVAL);
}

static void test_purge(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], b[SP_KEY_LEN], from[SP_KEY_LEN];
	uint64_t seqs[5], count, bytes, next0, next, seq;
	struct sp_store_batch *bt;
	struct sp_store_stats ss;
	struct sp_store_envelope e = { .body_len = 7 };
	static const uint8_t body[7] = "pending";

	key_of(a, 1);
	key_of(b, 2);
	key_of(from, 3);
	put(f, 1000, a, 5, 100, 0, seqs);
	put(f, 1000, b, 2, 50, 0, NULL);
	assert_int_equal(sp_store_mailbox_info(f->st, a, NULL, NULL, &next0), 0);

	/* In one batch: an ack of seqs[0], an envelope enqueued, then the purge. */
	assert_int_equal(sp_store_batch_begin(f->st, 2000, &bt), 0);
	assert_int_equal(sp_store_ack(bt, a, seqs[0]), 0);
	e.recipient = a;
	e.sender = from;
	e.body = body;
	assert_int_equal(sp_store_enqueue(bt, &e, &seq), 0);
	assert_int_equal(sp_store_purge(bt, a, &count, &bytes), 0);
	assert_int_equal(count, 4);             /* not the acked one, not the new one */
	assert_int_equal(bytes, 400);
	assert_int_equal(sp_store_batch_commit(bt), 0);

	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, &bytes, &next), 0);
	assert_int_equal(count, 1);             /* the envelope of the purge's own batch */
	assert_int_equal(bytes, 7);
	assert_true(next >= next0);             /* sequences go on, never reused */
	assert_int_equal(sp_store_mailbox_info(f->st, b, &count, &bytes, NULL), 0);
	assert_int_equal(count, 2);             /* another device's: untouched */
	assert_int_equal(bytes, 100);
	sp_store_get_stats(f->st, &ss);
	assert_int_equal(ss.purged, 4);
	assert_int_equal(ss.purged_bytes, 400);
	assert_int_equal(ss.acked, 1);

	/* Committed for good: a reopen sees the same. */
	sp_store_close(f->st);
	f->st = NULL;
	open_store(f);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 1);
	assert_int_equal(sp_store_totals(f->st, &count, &bytes), 0);
	assert_int_equal(count, 3);
	assert_int_equal(bytes, 107);

	/* An empty mailbox, a device never seen: nothing to purge. */
	assert_int_equal(sp_store_batch_begin(f->st, 3000, &bt), 0);
	key_of(b, 9);
	assert_int_equal(sp_store_purge(bt, b, &count, &bytes), 0);
	assert_int_equal(count, 0);
	assert_int_equal(sp_store_purge(bt, NULL, &count, &bytes), -EINVAL);
	assert_int_equal(sp_store_batch_commit(bt), 0);
}

static void test_top(void **state)
{
	struct fx *f = *state;
	struct sp_store_top_item top[4];
	uint8_t k[SP_KEY_LEN];
	size_t n;
	uint64_t scanned;

	/* Device i: i envelopes of (10 - i) * 10 bytes: count and bytes disagree. */
	for (uint8_t i = 1; i <= 6; i++) {
		key_of(k, i);
		put(f, 1000, k, i, (size_t)(10 - i) * 10, 0, NULL);
	}
	assert_int_equal(sp_store_top(f->st, 3, false, top, &n, &scanned), 0);
	assert_int_equal(n, 3);
	assert_int_equal(scanned, 6);
	assert_int_equal(top[0].count, 6);
	assert_int_equal(top[1].count, 5);
	assert_int_equal(top[2].count, 4);
	key_of(k, 6);
	assert_memory_equal(top[0].recipient, k, SP_KEY_LEN);
	/* By bytes: 4*60=240, 5*50=250, 3*70=210, 6*40=240, 2*80=160, 1*90=90. */
	assert_int_equal(sp_store_top(f->st, 4, true, top, &n, NULL), 0);
	assert_int_equal(n, 4);
	assert_int_equal(top[0].bytes, 250);
	assert_int_equal(top[1].bytes, 240);
	assert_int_equal(top[2].bytes, 240);
	assert_int_equal(top[3].bytes, 210);
	/* More asked than there are; none asked. */
	assert_int_equal(sp_store_top(f->st, 4, true, top, &n, NULL), 0);
	assert_int_equal(sp_store_top(f->st, 0, true, top, &n, NULL), 0);
	assert_int_equal(n, 0);
}

static void test_top_skips_empty(void **state)
{
	struct fx *f = *state;
	struct sp_store_top_item top[4];
	struct sp_store_batch *bt;
	uint8_t k[SP_KEY_LEN];
	uint64_t count, bytes;
	size_t n;

	key_of(k, 1);
	put(f, 1000, k, 2, 10, 0, NULL);
	assert_int_equal(sp_store_batch_begin(f->st, 2000, &bt), 0);
	assert_int_equal(sp_store_purge(bt, k, &count, &bytes), 0);
	assert_int_equal(sp_store_batch_commit(bt), 0);
	/* Its counter record stays (sequences), but it is no longer "large". */
	assert_int_equal(sp_store_top(f->st, 4, true, top, &n, NULL), 0);
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_oldest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_top, setup, teardown),
		cmocka_unit_test_setup_teardown(test_top_skips_empty, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
