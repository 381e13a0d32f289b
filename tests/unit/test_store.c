/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_store.c: broker/store/ against a real RocksDB directory (a mkdtemp
 * dir per test, removed after). Where a test must look under the module (key
 * layout, corrupt values, a foreign lock) it opens the same directory with
 * RocksDB's C API directly, with the store closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <rocksdb/c.h>
#include <sodium.h>

#include "sp_store.h"
#include "sp_store_codec.h"

struct fx {
	char dir[64];
	char data[128];                 /* DIR handed to the store */
	struct sp_store_config cfg;
	struct sp_store *st;
};

static const char *const cf_names[SP_STORE_CF_COUNT] = SP_STORE_CF_NAMES;

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

	assert_non_null(f);
	strcpy(f->dir, "/tmp/sp_store_test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->data, sizeof(f->data), "%s/data", f->dir);
	sp_store_config_defaults(&f->cfg);
	f->cfg.dir = f->data;
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

static void open_store(struct fx *f)
{
	char err[256] = "";
	int rc = sp_store_open(&f->st, &f->cfg, err, sizeof(err));

	if (rc)
		print_error("open: %d %s\n", rc, err);
	assert_int_equal(rc, 0);
}

static void reopen(struct fx *f)
{
	sp_store_close(f->st);
	f->st = NULL;
	open_store(f);
}

static void key_of(uint8_t k[SP_KEY_LEN], uint8_t tag)
{
	memset(k, tag, SP_KEY_LEN);
	k[0] = 0x40; /* not that the store cares; keeps keys distinct from bodies */
	k[31] = tag;
}

/* Enqueues one envelope in its own batch; returns enqueue's rc. */
static int put1(struct fx *f, uint64_t now, const uint8_t *to, const uint8_t *from, uint64_t cid,
		const void *body, size_t len, uint64_t ttl, uint64_t *seq)
{
	struct sp_store_batch *b;
	struct sp_store_envelope e = {
		.recipient = to, .sender = from, .client_id = cid,
		.body = body, .body_len = len, .ttl_ms = ttl,
	};
	int rc;

	assert_int_equal(sp_store_batch_begin(f->st, now, &b), 0);
	rc = sp_store_enqueue(b, &e, seq);
	assert_int_equal(sp_store_batch_commit(b), 0);
	return rc;
}

static int ack1(struct fx *f, uint64_t now, const uint8_t *dev, uint64_t seq)
{
	struct sp_store_batch *b;
	int rc;

	assert_int_equal(sp_store_batch_begin(f->st, now, &b), 0);
	rc = sp_store_ack(b, dev, seq);
	assert_int_equal(sp_store_batch_commit(b), 0);
	return rc;
}

/* Reads everything of dev (one call, generous limits) into items. */
static size_t read_all(struct fx *f, const uint8_t *dev, uint64_t now,
		       struct sp_store_item *items, size_t max, struct sp_store_read_result *res)
{
	assert_int_equal(sp_store_read(f->st, dev, 0, now, max, SIZE_MAX, items, res), 0);
	return res->count;
}

/* ---- raw RocksDB access (store closed) -------------------------------------- */

struct raw {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_column_family_handle_t *cf[SP_STORE_CF_COUNT];
};

static void raw_open(struct fx *f, struct raw *r)
{
	char path[256];
	const rocksdb_options_t *cfo[SP_STORE_CF_COUNT];
	char *err = NULL;

	snprintf(path, sizeof(path), "%s/db", f->data);
	r->opts = rocksdb_options_create();
	for (int i = 0; i < SP_STORE_CF_COUNT; i++)
		cfo[i] = r->opts;
	r->db = rocksdb_open_column_families(r->opts, path, SP_STORE_CF_COUNT, cf_names, cfo, r->cf,
					     &err);
	if (err)
		print_error("raw open: %s\n", err);
	assert_null(err);
}

static void raw_close(struct raw *r)
{
	for (int i = 0; i < SP_STORE_CF_COUNT; i++)
		rocksdb_column_family_handle_destroy(r->cf[i]);
	rocksdb_close(r->db);
	rocksdb_options_destroy(r->opts);
}

static void raw_put(struct raw *r, enum sp_store_cf cf, const void *k, size_t kl, const void *v,
		    size_t vl)
{
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	char *err = NULL;

	rocksdb_put_cf(r->db, wo, r->cf[cf], k, kl, v, vl, &err);
	assert_null(err);
	rocksdb_writeoptions_destroy(wo);
}

/* Calls fn on every key/value of cf in order. */
static void raw_scan(struct raw *r, enum sp_store_cf cf,
		     void (*fn)(const uint8_t *, size_t, const uint8_t *, size_t, void *), void *arg)
{
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r->db, ro, r->cf[cf]);

	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t kl, vl;
		const char *k = rocksdb_iter_key(it, &kl);
		const char *v = rocksdb_iter_value(it, &vl);

		fn((const uint8_t *)k, kl, (const uint8_t *)v, vl, arg);
	}
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
}

/* ---- key layout ---------------------------------------------------------------- */

static void test_key_encoders(void **state)
{
	uint8_t dev[SP_KEY_LEN], k[SP_STORE_MAILBOX_KEY_LEN], e[SP_STORE_EXPIRY_MAILBOX_KEY_LEN];
	uint8_t k2[SP_STORE_MAILBOX_KEY_LEN];
	static const uint8_t seq_be[8] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 };

	(void)state;
	key_of(dev, 7);
	sp_store_mailbox_key(k, dev, 0x0102030405060708ull);
	assert_memory_equal(k, dev, SP_KEY_LEN);
	assert_memory_equal(k + SP_KEY_LEN, seq_be, 8);

	/* Byte order is numeric order: 255 < 256 as keys too. */
	sp_store_mailbox_key(k, dev, 255);
	sp_store_mailbox_key(k2, dev, 256);
	assert_true(memcmp(k, k2, sizeof(k)) < 0);

	sp_store_expiry_mailbox_key(e, 0x0102030405060708ull, dev, 9);
	assert_memory_equal(e, seq_be, 8);
	assert_int_equal(e[8], 'm');
	assert_memory_equal(e + 9, dev, SP_KEY_LEN);
	assert_int_equal(e[SP_STORE_EXPIRY_MAILBOX_KEY_LEN - 1], 9);
}

struct layout_scan {
	const uint8_t *a, *b, *sender;
	uint64_t last_seq_a, last_seq_b;
	int n_a, n_b;
	int state;                      /* 0: in A's range, 1: in B's range */
	int sender_hits;
	int entries;
	uint8_t tag_a[3];
};

static bool contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
	return n >= m && memmem(hay, n, needle, m) != NULL;
}

static void layout_mailbox(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg)
{
	struct layout_scan *s = arg;
	uint64_t seq = 0;

	assert_int_equal(kl, SP_STORE_MAILBOX_KEY_LEN);
	for (int i = 0; i < 8; i++)
		seq = seq << 8 | k[SP_KEY_LEN + i];
	/* value: version 2, 3 bytes share tag, body_len, accepted, expires, body;
	 * one sender, so one tag per device (checked against the first seen) */
	assert_true(vl >= SP_STORE_MAILBOX_HDR_LEN);
	assert_int_equal(v[0], SP_STORE_MAILBOX_V2);
	if (!memcmp(k, s->a, SP_KEY_LEN)) {
		if (!s->n_a)
			memcpy(s->tag_a, v + 1, 3);
		assert_memory_equal(s->tag_a, v + 1, 3);
	}
	assert_int_equal(((size_t)v[4] << 24 | v[5] << 16 | v[6] << 8 | v[7]),
			 vl - SP_STORE_MAILBOX_HDR_LEN);
	if (!memcmp(k, s->a, SP_KEY_LEN)) {
		assert_int_equal(s->state, 0); /* all of A before any of B */
		assert_true(seq > s->last_seq_a);
		s->last_seq_a = seq;
		s->n_a++;
	} else {
		assert_memory_equal(k, s->b, SP_KEY_LEN);
		s->state = 1;
		assert_true(seq > s->last_seq_b);
		s->last_seq_b = seq;
		s->n_b++;
	}
}

static void layout_no_sender(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg)
{
	struct layout_scan *s = arg;

	s->entries++;
	if (contains(k, kl, s->sender, SP_KEY_LEN) || contains(v, vl, s->sender, SP_KEY_LEN))
		s->sender_hits++;
}

static void test_key_layout_on_disk(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], bdev[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct layout_scan s = { 0 };
	struct raw r;
	uint64_t seq;

	/* B sorts after A; interleave the enqueues to prove ranges, not arrival,
	 * decide the order. */
	key_of(a, 0x11);
	key_of(bdev, 0x22);
	randombytes_buf(snd, sizeof(snd));
	open_store(f);
	for (int i = 0; i < 300; i++) {
		assert_int_equal(put1(f, 1000, (i & 1) ? bdev : a, snd, (uint64_t)i + 1, "body", 4,
				      0, &seq), 0);
	}
	sp_store_close(f->st);
	f->st = NULL;

	raw_open(f, &r);
	s.a = a;
	s.b = bdev;
	s.sender = snd;
	raw_scan(&r, SP_STORE_CF_MAILBOX, layout_mailbox, &s);
	assert_int_equal(s.n_a, 150);
	assert_int_equal(s.n_b, 150);
	/* Sequences are per device, and a device without a record starts
	 * above every seq handed out since open: A 1..150, B 2..151. */
	assert_int_equal(s.last_seq_a, 150);
	assert_int_equal(s.last_seq_b, 151);

	/* The sender's key appears nowhere on disk, in any column family. */
	for (int cf = 0; cf < SP_STORE_CF_COUNT; cf++)
		raw_scan(&r, cf, layout_no_sender, &s);
	assert_int_equal(s.sender_hits, 0);
	assert_true(s.entries > 600); /* mailbox + meta + expiry + dedup were scanned */
	raw_close(&r);
}

/* ---- enqueue, read, ack ------------------------------------------------------------ */

static void test_enqueue_read_order(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_item it[16];
	struct sp_store_read_result res;
	struct sp_store_batch *b;
	uint64_t seqs[6];
	char body[16];

	key_of(a, 1);
	key_of(snd, 2);
	open_store(f);
	/* Three in one batch (each sees the previous seq), three in single batches. */
	assert_int_equal(sp_store_batch_begin(f->st, 10, &b), 0);
	for (int i = 0; i < 3; i++) {
		struct sp_store_envelope e = { .recipient = a, .sender = snd,
						       .body = (const uint8_t *)body };

		e.body_len = (size_t)snprintf(body, sizeof(body), "msg-%d", i);
		assert_int_equal(sp_store_enqueue(b, &e, &seqs[i]), 0);
	}
	/* Reads see committed data only. */
	assert_int_equal(read_all(f, a, 10, it, 16, &res), 0);
	assert_int_equal(sp_store_batch_commit(b), 0);
	for (int i = 3; i < 6; i++) {
		int n = snprintf(body, sizeof(body), "msg-%d", i);

		assert_int_equal(put1(f, 10, a, snd, 0, body, (size_t)n, 0, &seqs[i]), 0);
	}
	for (int i = 1; i < 6; i++)
		assert_true(seqs[i] > seqs[i - 1]);
	assert_int_equal(seqs[0], 1);

	assert_int_equal(read_all(f, a, 11, it, 16, &res), 6);
	assert_true(res.end);
	assert_int_equal(res.skipped_corrupt, 0);
	for (int i = 0; i < 6; i++) {
		int n = snprintf(body, sizeof(body), "msg-%d", i);

		assert_int_equal(it[i].seq, seqs[i]);
		assert_int_equal(it[i].body_len, (size_t)n);
		assert_memory_equal(it[i].body, body, (size_t)n);
		assert_int_equal(it[i].accepted_ms, 0);  /* 10 ms, stored in whole seconds */
		assert_int_equal(it[i].expires_ms, 10 + SP_STORE_DEFAULT_TTL_MS);
	}
	assert_int_equal(res.next_seq, seqs[5] + 1);

	/* from_seq in the middle */
	assert_int_equal(sp_store_read(f->st, a, seqs[3], 11, 16, SIZE_MAX, it, &res), 0);
	assert_int_equal(res.count, 3);
	assert_int_equal(it[0].seq, seqs[3]);
}

/* Waits for the sync thread's eventfd, then polls it: the synced ticket. */
static uint64_t wait_synced(struct fx *f)
{
	struct pollfd p = { .fd = sp_store_syncer_fd(f->st), .events = POLLIN };
	uint64_t synced = 0;

	assert_true(p.fd >= 0);
	assert_int_equal(poll(&p, 1, 10000), 1);
	assert_int_equal(sp_store_syncer_poll(f->st, &synced), 0);
	return synced;
}

/* The WAL sync thread (sp_store_syncer.c): with --fsync always a commit
 * returns a ticket and is synced by the thread (reported through its
 * eventfd, in order); with batch the tick asks for the sync; what was
 * committed is there after a reopen either way. */
static void test_sync_thread(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_item it[8];
	struct sp_store_read_result res;
	struct sp_store_stats before, after;
	uint64_t seq, t1, t2, synced;

	key_of(a, 1);
	key_of(snd, 2);
	f->cfg.sync = SP_STORE_SYNC_ALWAYS;
	open_store(f);
	assert_int_equal(sp_store_syncer_fd(f->st), -1);
	assert_int_equal(sp_store_syncer_asked(f->st), 0);
	/* Without the thread a commit is synced when it returns. */
	assert_int_equal(put1(f, 10, a, snd, 0, "zero", 4, 0, &seq), 0);
	assert_int_equal(sp_store_commit_ticket(f->st), 0);

	assert_int_equal(sp_store_syncer_start(f->st), 0);
	assert_int_equal(sp_store_syncer_start(f->st), -EINVAL);
	sp_store_get_stats(f->st, &before);
	assert_int_equal(put1(f, 10, a, snd, 0, "one", 3, 0, &seq), 0);
	t1 = sp_store_commit_ticket(f->st);
	assert_int_equal(put1(f, 10, a, snd, 0, "two", 3, 0, &seq), 0);
	t2 = sp_store_commit_ticket(f->st);
	assert_true(t1 > 0 && t2 > t1);
	assert_int_equal(sp_store_syncer_asked(f->st), t2);
	/* The batches are readable before their sync. */
	assert_int_equal(read_all(f, a, 11, it, 8, &res), 3);
	synced = wait_synced(f);
	while (synced < t2)
		synced = wait_synced(f);
	assert_true(synced >= t2);
	sp_store_get_stats(f->st, &after);
	assert_true(after.syncs > before.syncs);
	/* A batch with nothing in it waits for nothing. */
	{
		struct sp_store_batch *b;

		assert_int_equal(sp_store_batch_begin(f->st, 12, &b), 0);
		assert_int_equal(sp_store_batch_commit(b), 0);
		assert_int_equal(sp_store_commit_ticket(f->st), 0);
	}
	sp_store_syncer_stop(f->st);
	assert_int_equal(sp_store_syncer_fd(f->st), -1);
	reopen(f);
	assert_int_equal(read_all(f, a, 13, it, 8, &res), 3);
	assert_memory_equal(it[2].body, "two", 3);

	/* batch: the tick asks the thread, nothing waits. */
	f->cfg.sync = SP_STORE_SYNC_BATCH;
	f->cfg.sync_interval_ms = 50;
	reopen(f);
	assert_int_equal(sp_store_syncer_start(f->st), 0);
	assert_int_equal(put1(f, 1000, a, snd, 0, "three", 5, 0, &seq), 0);
	assert_int_equal(sp_store_commit_ticket(f->st), 0);
	assert_int_equal(sp_store_tick(f->st, 1010), 0);        /* not due */
	assert_int_equal(sp_store_tick(f->st, 1100), 1);        /* asked */
	assert_true(wait_synced(f) >= 1);
	assert_int_equal(sp_store_tick(f->st, 1200), 0);        /* nothing unsynced */
	/* close stops the thread itself */
	reopen(f);
	assert_int_equal(read_all(f, a, 1300, it, 8, &res), 4);
}

/* Registration records (sp_store_enrol.c): a device enrols once per token,
 * a used token stays used across a reopen until it expires, the prune drops
 * only expired marks, and registrations are kept. */
static void test_enrol_records(void **state)
{
	struct fx *f = *state;
	uint8_t d1[SP_KEY_LEN], d2[SP_KEY_LEN], d3[SP_KEY_LEN];
	uint8_t id1[SP_STORE_TOKEN_ID_LEN], id2[SP_STORE_TOKEN_ID_LEN];
	uint64_t dropped = 99;

	key_of(d1, 1);
	key_of(d2, 2);
	key_of(d3, 3);
	memset(id1, 0xa1, sizeof(id1));
	memset(id2, 0xb2, sizeof(id2));
	open_store(f);
	assert_int_equal(sp_store_device_registered(f->st, d1), -ENOENT);
	assert_int_equal(sp_store_enrol(f->st, d1, id1, 1000), 0);
	assert_int_equal(sp_store_device_registered(f->st, d1), 0);
	/* the same token for another device: refused, nothing written */
	assert_int_equal(sp_store_enrol(f->st, d2, id1, 1000), -EALREADY);
	assert_int_equal(sp_store_device_registered(f->st, d2), -ENOENT);
	assert_int_equal(sp_store_enrol(f->st, d2, id2, 5000), 0);
	reopen(f);
	assert_int_equal(sp_store_device_registered(f->st, d1), 0);
	assert_int_equal(sp_store_device_registered(f->st, d2), 0);
	assert_int_equal(sp_store_enrol(f->st, d3, id1, 1000), -EALREADY);
	/* nothing expired yet at 999; id1 (expires 1000) at 1000; id2 later */
	assert_int_equal(sp_store_enrol_prune(f->st, 999, &dropped), 0);
	assert_int_equal(dropped, 0);
	assert_int_equal(sp_store_enrol_prune(f->st, 1000, &dropped), 0);
	assert_int_equal(dropped, 1);
	assert_int_equal(sp_store_enrol_prune(f->st, 1000, &dropped), 0);
	assert_int_equal(dropped, 0);
	assert_int_equal(sp_store_enrol(f->st, d3, id2, 5000), -EALREADY);
	assert_int_equal(sp_store_enrol_prune(f->st, UINT64_MAX, &dropped), 0);
	assert_int_equal(dropped, 1);
	/* registrations stay; the device index of accounts is a separate record */
	assert_int_equal(sp_store_device_registered(f->st, d1), 0);
	assert_int_equal(sp_store_device_registered(f->st, d2), 0);
	assert_int_equal(sp_store_device_registered(f->st, d3), -ENOENT);
}

static void test_seq_across_reopen(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], c[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_item it[4];
	struct sp_store_read_result res;
	uint64_t s1, s2, s3, s4, next, count;

	key_of(a, 1);
	key_of(c, 3);
	key_of(snd, 2);
	open_store(f);
	assert_int_equal(put1(f, 5, a, snd, 0, "x", 1, 0, &s1), 0);
	assert_int_equal(put1(f, 5, a, snd, 0, "y", 1, 0, &s2), 0);
	/* Empty the mailbox completely. */
	assert_int_equal(ack1(f, 6, a, s1), 0);
	assert_int_equal(ack1(f, 6, a, s2), 0);
	/* An empty mailbox has no record left (next_seq 0: "never had mail"),
	 * yet its next seq is above the old ones, in this open and the next. */
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, &next), 0);
	assert_int_equal(count, 0);
	assert_int_equal(next, 0);
	assert_int_equal(put1(f, 6, c, snd, 0, "c", 1, 0, &s3), 0);
	assert_true(s3 > s2);
	assert_int_equal(ack1(f, 6, c, s3), 0);
	assert_int_equal(put1(f, 6, a, snd, 0, "v", 1, 0, &s3), 0);
	assert_true(s3 > s2);
	assert_int_equal(ack1(f, 6, a, s3), 0);
	s2 = s3;

	reopen(f);
	assert_int_equal(put1(f, 7, a, snd, 0, "z", 1, 0, &s3), 0);
	assert_true(s3 > s2);
	/* The floor of the second open (epoch 1). */
	assert_true(s3 >= (1ull << SP_STORE_EPOCH_SHIFT));
	reopen(f);
	assert_int_equal(put1(f, 8, a, snd, 0, "w", 1, 0, &s4), 0);
	assert_true(s4 > s3);
	assert_int_equal(read_all(f, a, 9, it, 4, &res), 2);
	assert_int_equal(it[0].seq, s3);
	assert_int_equal(it[1].seq, s4);

	/* A device never seen before also starts above every earlier open's range. */
	assert_int_equal(put1(f, 8, c, snd, 0, "v", 1, 0, &s1), 0);
	assert_true(s1 >= (2ull << SP_STORE_EPOCH_SHIFT));
}

/* A seq handed out by a batch that never commits is never handed out again. */
static void test_uncommitted_seq_not_reused(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_envelope e = { .sender = NULL, .body = (const uint8_t *)"b", .body_len = 1 };
	struct sp_store_batch *b;
	uint64_t lost, s, count;

	key_of(a, 1);
	key_of(snd, 2);
	e.recipient = a;
	e.sender = snd;
	open_store(f);
	assert_int_equal(put1(f, 1, a, snd, 0, "a", 1, 0, &s), 0);

	assert_int_equal(sp_store_batch_begin(f->st, 2, &b), 0);
	assert_int_equal(sp_store_enqueue(b, &e, &lost), 0);
	assert_int_equal(sp_store_batch_abort(b), 0);
	assert_int_equal(put1(f, 3, a, snd, 0, "c", 1, 0, &s), 0);
	assert_true(s > lost);

	/* "Crash" with a batch open: close discards it; the next open's epoch
	 * moves past it. */
	assert_int_equal(sp_store_batch_begin(f->st, 4, &b), 0);
	assert_int_equal(sp_store_enqueue(b, &e, &lost), 0);
	reopen(f);
	assert_int_equal(put1(f, 5, a, snd, 0, "d", 1, 0, &s), 0);
	assert_true(s > lost);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 3); /* a, c, d; nothing of the lost batches */
}

static void test_ack_deletes_only_that_entry(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_item it[8];
	struct sp_store_read_result res;
	uint64_t s[3], count, bytes;

	key_of(a, 1);
	key_of(snd, 2);
	open_store(f);
	assert_int_equal(put1(f, 1, a, snd, 0, "one", 3, 0, &s[0]), 0);
	assert_int_equal(put1(f, 1, a, snd, 0, "two!", 4, 0, &s[1]), 0);
	assert_int_equal(put1(f, 1, a, snd, 0, "three", 5, 0, &s[2]), 0);
	assert_int_equal(ack1(f, 2, a, s[1]), 0);
	assert_int_equal(read_all(f, a, 3, it, 8, &res), 2);
	assert_int_equal(it[0].seq, s[0]);
	assert_int_equal(it[1].seq, s[2]);
	assert_memory_equal(it[1].body, "three", 5);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, &bytes, NULL), 0);
	assert_int_equal(count, 2);
	assert_int_equal(bytes, 8);
	/* Acking it again: unknown now, and nothing else changes. */
	assert_int_equal(ack1(f, 4, a, s[1]), -ENOENT);
	assert_int_equal(read_all(f, a, 3, it, 8, &res), 2);
}

/*
 * Recent entries: an ack of an envelope the store remembers is written
 * without a read (acked_recent), with the same result as the read path: the
 * entry, its expiry record and the counters go; a second ack is unknown.
 * One pushed out of a full ring, one after a reopen, one after an aborted
 * batch take the read path; so does every ack with recent_max 0.
 */
static void test_ack_recent(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_item it[8];
	struct sp_store_read_result res;
	struct sp_store_batch *b;
	struct sp_store_stats st;
	uint64_t s[4], count, bytes;
	size_t n;

	key_of(a, 1);
	key_of(snd, 2);
	f->cfg.recent_max = 2;
	open_store(f);
	assert_int_equal(put1(f, 1, a, snd, 7, "one", 3, 0, &s[0]), 0);
	assert_int_equal(put1(f, 1, a, snd, 8, "two!", 4, 0, &s[1]), 0);
	assert_int_equal(put1(f, 1, a, snd, 9, "three", 5, 0, &s[2]), 0);
	/* s[0] was pushed out by s[2]: read path; s[1], s[2] remembered. */
	assert_int_equal(ack1(f, 2, a, s[1]), 0);
	sp_store_get_stats(f->st, &st);
	assert_int_equal(st.acked_recent, 1);
	assert_int_equal(ack1(f, 2, a, s[1]), -ENOENT);
	assert_int_equal(ack1(f, 2, a, s[0]), 0);
	sp_store_get_stats(f->st, &st);
	assert_int_equal(st.acked, 2);
	assert_int_equal(st.acked_recent, 1);
	assert_int_equal(read_all(f, a, 3, it, 8, &res), 1);
	assert_int_equal(it[0].seq, s[2]);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, &bytes, NULL), 0);
	assert_int_equal(count, 1);
	assert_int_equal(bytes, 5);
	/* Enqueued and acked in one batch; then one enqueued in an aborted batch. */
	assert_int_equal(sp_store_batch_begin(f->st, 3, &b), 0);
	{
		struct sp_store_envelope e = { .recipient = a, .sender = snd, .client_id = 10,
					       .body = (const uint8_t *)"four", .body_len = 4 };

		assert_int_equal(sp_store_enqueue(b, &e, &s[3]), 0);
	}
	assert_int_equal(sp_store_ack(b, a, s[3]), 0);
	assert_int_equal(sp_store_ack(b, a, s[3]), -ENOENT);
	assert_int_equal(sp_store_batch_abort(b), 0);
	/* The abort forgot s[2] too: its ack reads (and finds) it. */
	assert_int_equal(ack1(f, 4, a, s[3]), -ENOENT);
	assert_int_equal(ack1(f, 4, a, s[2]), 0);
	sp_store_get_stats(f->st, &st);
	assert_int_equal(st.acked_recent, 2);   /* the aborted batch's ack of s[3] counted */
	assert_int_equal(read_all(f, a, 5, it, 8, &res), 0);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, &bytes, NULL), 0);
	assert_int_equal(count, 0);
	/* No expiry records left behind: the sweep far ahead finds nothing. */
	assert_int_equal(sp_store_batch_begin(f->st, UINT64_MAX / 2, &b), 0);
	assert_int_equal(sp_store_expire(b, 100, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(sp_store_batch_commit(b), 0);

	/* Off: every ack reads. */
	f->cfg.recent_max = 0;
	reopen(f);
	assert_int_equal(put1(f, 6, a, snd, 11, "five", 4, 0, &s[0]), 0);
	assert_int_equal(ack1(f, 7, a, s[0]), 0);
	sp_store_get_stats(f->st, &st);
	assert_int_equal(st.acked, 1);
	assert_int_equal(st.acked_recent, 0);
}

static void test_ack_unknown_seq(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_item it[4];
	struct sp_store_read_result res;
	struct sp_store_batch *b;
	struct sp_store_stats stats;
	uint64_t s, count;

	key_of(a, 1);
	key_of(snd, 2);
	open_store(f);
	assert_int_equal(put1(f, 1, a, snd, 0, "x", 1, 0, &s), 0);
	assert_int_equal(ack1(f, 2, a, s + 1), -ENOENT);
	assert_int_equal(ack1(f, 2, a, 0), -ENOENT);
	assert_int_equal(ack1(f, 2, a, UINT64_MAX), -ENOENT);
	/* An unknown ack writes nothing. */
	assert_int_equal(sp_store_batch_begin(f->st, 3, &b), 0);
	assert_int_equal(sp_store_ack(b, a, 12345), -ENOENT);
	assert_int_equal(sp_store_batch_ops(b), 0);
	/* Double ack in one batch: the second one finds it gone. */
	assert_int_equal(sp_store_ack(b, a, s), 0);
	assert_int_equal(sp_store_ack(b, a, s), -ENOENT);
	assert_int_equal(sp_store_batch_commit(b), 0);
	assert_int_equal(read_all(f, a, 3, it, 4, &res), 0);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 0);
	sp_store_get_stats(f->st, &stats);
	assert_int_equal(stats.ack_unknown, 5);
	assert_int_equal(stats.acked, 1);
}

/*
 * Device B acks sequence numbers that A's mailbox has (they collide: both
 * mailboxes start at 1). B's acks remove B's entries only; a device with no
 * entries (C) acking A's numbers removes nothing.
 */
static void test_ack_other_device_impossible(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], bdev[SP_KEY_LEN], c[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_item it[8];
	struct sp_store_read_result res;
	uint64_t sa[3], sb[3], count;

	key_of(a, 1);
	key_of(bdev, 4);
	key_of(c, 5);
	key_of(snd, 2);
	open_store(f);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(put1(f, 1, a, snd, 0, "for-a", 5, 0, &sa[i]), 0);
		assert_int_equal(put1(f, 1, bdev, snd, 0, "for-b", 5, 0, &sb[i]), 0);
	}
	/* A 1, 2, 3 and B 2, 3, 4: B's acks of seqs 2 and 3 touch B's only. */
	assert_int_equal(sa[1], sb[0]);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ack1(f, 2, c, sa[i]), -ENOENT);
		assert_int_equal(ack1(f, 2, bdev, sb[i]), 0);
	}
	assert_int_equal(read_all(f, bdev, 3, it, 8, &res), 0);
	assert_int_equal(read_all(f, a, 3, it, 8, &res), 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(it[i].seq, sa[i]);
		assert_memory_equal(it[i].body, "for-a", 5);
	}
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 3);
	assert_int_equal(sp_store_mailbox_info(f->st, c, &count, NULL, NULL), 0);
	assert_int_equal(count, 0);
}

/* Enqueue and ack of the same seq inside one batch. */
static void test_enqueue_ack_same_batch(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_envelope e = { .body = (const uint8_t *)"live", .body_len = 4 };
	struct sp_store_item it[4];
	struct sp_store_read_result res;
	struct sp_store_batch *b, *b2;
	uint64_t s, s2, count, bytes, next;

	key_of(a, 1);
	key_of(snd, 2);
	e.recipient = a;
	e.sender = snd;
	open_store(f);
	assert_int_equal(sp_store_batch_begin(f->st, 1, &b), 0);
	assert_int_equal(sp_store_enqueue(b, &e, &s), 0);
	assert_int_equal(sp_store_ack(b, a, s), 0);
	assert_int_equal(sp_store_batch_begin(f->st, 1, &b2), -EBUSY); /* one at a time */
	assert_null(b2);
	assert_int_equal(sp_store_batch_commit(b), 0);
	assert_int_equal(read_all(f, a, 2, it, 4, &res), 0);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, &bytes, &next), 0);
	assert_int_equal(count, 0);
	assert_int_equal(bytes, 0);
	assert_int_equal(next, 0);     /* empty: no record */
	assert_int_equal(put1(f, 2, a, snd, 0, "x", 1, 0, &s2), 0);
	assert_true(s2 > s);
}

/* ---- quotas ------------------------------------------------------------------------- */

static void test_quota_count(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], other[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_envelope e = { .body = (const uint8_t *)"q", .body_len = 1 };
	struct sp_store_batch *b;
	uint64_t s[4], x;

	key_of(a, 1);
	key_of(other, 6);
	key_of(snd, 2);
	e.recipient = a;
	e.sender = snd;
	f->cfg.quota_count = 3;
	open_store(f);
	/* The limit holds inside one batch too. */
	assert_int_equal(sp_store_batch_begin(f->st, 1, &b), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(sp_store_enqueue(b, &e, &s[i]), 0);
	assert_int_equal(sp_store_enqueue(b, &e, &s[3]), -EDQUOT);
	assert_int_equal(s[3], 0);
	assert_int_equal(sp_store_batch_commit(b), 0);
	assert_int_equal(put1(f, 2, a, snd, 0, "q", 1, 0, &x), -EDQUOT);
	/* Per mailbox: another device is unaffected. */
	assert_int_equal(put1(f, 2, other, snd, 0, "q", 1, 0, &x), 0);
	/* An ack makes room again. */
	assert_int_equal(ack1(f, 3, a, s[0]), 0);
	assert_int_equal(put1(f, 4, a, snd, 0, "q", 1, 0, &x), 0);
	assert_true(x > s[2]);
	assert_int_equal(put1(f, 4, a, snd, 0, "q", 1, 0, &x), -EDQUOT);
	/* Quotas hold across a reopen (counters are on disk). */
	reopen(f);
	assert_int_equal(put1(f, 5, a, snd, 0, "q", 1, 0, &x), -EDQUOT);
}

static void test_quota_bytes(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN], body[100];
	uint64_t s1, s2, x, bytes;

	key_of(a, 1);
	key_of(snd, 2);
	memset(body, 0xab, sizeof(body));
	f->cfg.quota_bytes = 100;
	open_store(f);
	assert_int_equal(put1(f, 1, a, snd, 0, body, 60, 0, &s1), 0);
	assert_int_equal(put1(f, 1, a, snd, 0, body, 41, 0, &x), -EDQUOT);
	assert_int_equal(put1(f, 1, a, snd, 0, body, 40, 0, &s2), 0);
	assert_int_equal(sp_store_mailbox_info(f->st, a, NULL, &bytes, NULL), 0);
	assert_int_equal(bytes, 100);
	assert_int_equal(put1(f, 1, a, snd, 0, body, 0, 0, &x), 0); /* 0 bytes still fits */
	assert_int_equal(ack1(f, 2, a, s1), 0);
	assert_int_equal(put1(f, 3, a, snd, 0, body, 60, 0, &x), 0);
	assert_int_equal(put1(f, 3, a, snd, 0, body, 1, 0, &x), -EDQUOT);
}

/* ---- dedup ------------------------------------------------------------------------- */

static void test_dedup_window(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], c[SP_KEY_LEN], snd[SP_KEY_LEN], snd2[SP_KEY_LEN];
	struct sp_store_envelope e = { .body = (const uint8_t *)"hello", .body_len = 5,
				       .client_id = 42 };
	struct sp_store_item it[8];
	struct sp_store_read_result res;
	struct sp_store_batch *b;
	uint64_t s, d, x, count;

	key_of(a, 1);
	key_of(c, 3);
	key_of(snd, 2);
	key_of(snd2, 7);
	e.recipient = a;
	e.sender = snd;
	f->cfg.dedup_window_ms = 1000;
	open_store(f);

	/* Retry within the same batch. */
	assert_int_equal(sp_store_batch_begin(f->st, 100, &b), 0);
	assert_int_equal(sp_store_enqueue(b, &e, &s), 0);
	assert_int_equal(sp_store_enqueue(b, &e, &d), SP_STORE_DUPLICATE);
	assert_int_equal(d, s);
	assert_int_equal(sp_store_batch_commit(b), 0);
	/* Retry in a later batch, and after a reopen. */
	assert_int_equal(put1(f, 500, a, snd, 42, "hello", 5, 0, &d), SP_STORE_DUPLICATE);
	assert_int_equal(d, s);
	reopen(f);
	assert_int_equal(put1(f, 1099, a, snd, 42, "hello", 5, 0, &d), SP_STORE_DUPLICATE);
	assert_int_equal(d, s);
	/* Still a duplicate after the original was acked: no second copy. */
	assert_int_equal(ack1(f, 1099, a, s), 0);
	assert_int_equal(put1(f, 1099, a, snd, 42, "hello", 5, 0, &d), SP_STORE_DUPLICATE);
	assert_int_equal(d, s);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 0);

	/* Not duplicates: another sender, another recipient, another id, id 0. */
	assert_int_equal(put1(f, 1099, a, snd2, 42, "hello", 5, 0, &x), 0);
	assert_int_equal(put1(f, 1099, c, snd, 42, "hello", 5, 0, &x), 0);
	assert_int_equal(put1(f, 1099, a, snd, 43, "hello", 5, 0, &x), 0);
	assert_int_equal(put1(f, 1099, a, snd, 0, "hello", 5, 0, &x), 0);
	assert_int_equal(put1(f, 1099, a, snd, 0, "hello", 5, 0, &x), 0);

	/* The window (1000 ms from 100) is over at 1100: a new copy. Not swept
	 * yet, so this also replaces the stale record in place. */
	assert_int_equal(put1(f, 1100, a, snd, 42, "hello", 5, 0, &x), 0);
	assert_true(x > s);
	/* ...which is itself deduplicated from now on. */
	assert_int_equal(put1(f, 1200, a, snd, 42, "hello", 5, 0, &d), SP_STORE_DUPLICATE);
	assert_int_equal(d, x);
	assert_int_equal(read_all(f, a, 1200, it, 8, &res), 5);
}

static void test_dedup_records_expire(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_batch *b;
	struct sp_store_stats stats;
	uint64_t s, x, keys;

	key_of(a, 1);
	key_of(snd, 2);
	f->cfg.dedup_window_ms = 1000;
	open_store(f);
	for (uint64_t i = 1; i <= 20; i++)
		assert_int_equal(put1(f, 0, a, snd, i, "d", 1, 0, &s), 0);
	/* Replace one stale record (window over at 1000): the filter must keep
	 * the new one. */
	assert_int_equal(put1(f, 1000, a, snd, 7, "d", 1, 0, &x), 0);
	/* No index records for dedup records: the sweep has nothing to do... */
	assert_int_equal(sp_store_batch_begin(f->st, 1000, &b), 0);
	assert_int_equal(sp_store_expire(b, 100, NULL), 0);
	assert_int_equal(sp_store_batch_commit(b), 0);
	sp_store_get_stats(f->st, &stats);
	assert_int_equal(stats.dedup_expired, 0);
	/* ...the compaction filter drops the 19 whose window ended by the
	 * store's latest batch time (1000), on disk. */
	assert_int_equal(sp_store_compact(f->st), 0);
	sp_store_get_stats(f->st, &stats);
	assert_int_equal(stats.dedup_expired, 19);
	assert_int_equal(stats.expired, 0); /* mailbox ttl is 30 days */
	assert_int_equal(put1(f, 1500, a, snd, 7, "d", 1, 0, &s), SP_STORE_DUPLICATE);
	assert_int_equal(s, x);
	/* Past every window, after a reopen: the other ids are new again. */
	reopen(f);
	assert_int_equal(put1(f, 1500, a, snd, 3, "d", 1, 0, &s), 0);
	assert_true(s > x);
	assert_int_equal(sp_store_compact(f->st), 0);
	assert_int_equal(sp_store_property(f->st, SP_STORE_CF_DEDUP, "rocksdb.estimate-num-keys",
					   &keys), 0);
	assert_int_equal(keys, 2);      /* ids 7 and 3 */
}

/* A store written before the dedup compaction filter has an expiry index
 * record per dedup record: the sweep still removes both when the window
 * ends, and a later compaction (with the filter) is fine. */
static void test_dedup_old_index_records(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN], id[SP_STORE_DEDUP_ID_LEN];
	uint8_t ekey[SP_STORE_EXPIRY_DEDUP_KEY_LEN];
	struct sp_store_batch *b;
	struct sp_store_stats stats;
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t *it;
	uint64_t s, x, dseq, dexp, keys;
	struct raw r;
	size_t kl, vl;
	const char *k, *v;

	key_of(a, 1);
	key_of(snd, 2);
	f->cfg.dedup_window_ms = 1000;
	open_store(f);
	assert_int_equal(put1(f, 0, a, snd, 5, "d", 1, 0, &s), 0);
	sp_store_close(f->st);
	f->st = NULL;
	/* Add the index record the old code wrote with it. */
	raw_open(f, &r);
	ro = rocksdb_readoptions_create();
	it = rocksdb_create_iterator_cf(r.db, ro, r.cf[SP_STORE_CF_DEDUP]);
	rocksdb_iter_seek_to_first(it);
	assert_true(rocksdb_iter_valid(it));
	k = rocksdb_iter_key(it, &kl);
	v = rocksdb_iter_value(it, &vl);
	assert_int_equal(kl, sizeof(id));
	memcpy(id, k, sizeof(id));
	assert_int_equal(sp_store_dedup_decode((const uint8_t *)v, vl, &dseq, &dexp), 0);
	assert_int_equal(dexp, 1000);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	sp_store_expiry_dedup_key(ekey, dexp, id);
	raw_put(&r, SP_STORE_CF_EXPIRY, ekey, sizeof(ekey), "", 0);
	raw_close(&r);

	open_store(f);
	assert_int_equal(put1(f, 999, a, snd, 5, "d", 1, 0, &x), SP_STORE_DUPLICATE);
	assert_int_equal(sp_store_batch_begin(f->st, 1000, &b), 0);
	assert_int_equal(sp_store_expire(b, 100, NULL), 0);
	assert_int_equal(sp_store_batch_commit(b), 0);
	sp_store_get_stats(f->st, &stats);
	assert_int_equal(stats.dedup_expired, 1);
	assert_int_equal(sp_store_compact(f->st), 0);
	assert_int_equal(sp_store_property(f->st, SP_STORE_CF_DEDUP, "rocksdb.estimate-num-keys",
					   &keys), 0);
	assert_int_equal(keys, 0);
	assert_int_equal(sp_store_property(f->st, SP_STORE_CF_EXPIRY, "rocksdb.estimate-num-keys",
					   &keys), 0);
	assert_int_equal(keys, 1);      /* the mailbox entry's own */
	assert_int_equal(put1(f, 1001, a, snd, 5, "d", 1, 0, &x), 0);
	assert_true(x > s);
}

/* ---- expiry ------------------------------------------------------------------------ */

static void test_expiry(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_item it[32];
	struct sp_store_read_result res;
	struct sp_store_batch *b;
	uint64_t s[10], keep, count, bytes;
	size_t n = 0, total = 0;
	int rc, rounds = 0;

	key_of(a, 1);
	key_of(snd, 2);
	f->cfg.ttl_ms = 1000;
	open_store(f);
	for (int i = 0; i < 10; i++)
		assert_int_equal(put1(f, (uint64_t)i, a, snd, 0, "e", 1, 0, &s[i]), 0);
	assert_int_equal(put1(f, 0, a, snd, 0, "keep", 4, 50000, &keep), 0); /* own ttl */

	/* 999 + i is still inside entry i's life; at 1000 + i it is over. */
	assert_int_equal(read_all(f, a, 999, it, 32, &res), 11);
	assert_int_equal(read_all(f, a, 1004, it, 32, &res), 6);
	assert_int_equal(res.skipped_expired, 5);
	assert_int_equal(it[0].seq, s[5]);
	/* Expired but unswept entries still count (the sweep fixes that). */
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 11);

	/* Incremental sweep at t=2000: 3 index records per call. */
	do {
		assert_int_equal(sp_store_batch_begin(f->st, 2000, &b), 0);
		rc = sp_store_expire(b, 3, &n);
		assert_true(rc == 0 || rc == 1);
		assert_true(n <= 3);
		total += n;
		assert_int_equal(sp_store_batch_commit(b), 0);
		rounds++;
	} while (rc == 1);
	assert_int_equal(total, 10);
	assert_true(rounds >= 4);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, &bytes, NULL), 0);
	assert_int_equal(count, 1);
	assert_int_equal(bytes, 4);
	assert_int_equal(read_all(f, a, 2000, it, 32, &res), 1);
	assert_int_equal(it[0].seq, keep);
	assert_int_equal(res.skipped_expired, 0); /* gone, not just hidden */
	/* An expired and swept entry cannot be acked. */
	assert_int_equal(ack1(f, 2001, a, s[0]), -ENOENT);
	/* The sweep does nothing more, and an acked entry's index record went with it. */
	assert_int_equal(ack1(f, 2001, a, keep), 0);
	assert_int_equal(sp_store_batch_begin(f->st, 100000, &b), 0);
	assert_int_equal(sp_store_expire(b, 100, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(sp_store_batch_ops(b), 0);
	assert_int_equal(sp_store_batch_commit(b), 0);
}

static void count_cb(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg)
{
	(void)k;
	(void)kl;
	(void)v;
	(void)vl;
	(*(size_t *)arg)++;
}

/* A device's record goes when its mailbox empties; the totals live in one
 * record (no pass over the per-device records at open), written with every
 * commit that changes them, and recounted once if missing. */
static void test_meta_deleted_when_empty(void **state)
{
	struct fx *f = *state;
	uint8_t dev[4][SP_KEY_LEN], snd[SP_KEY_LEN];
	uint64_t seq[4][3], e, by, last = 0, s;
	struct raw r;
	size_t n = 0;
	char *err = NULL;
	rocksdb_writeoptions_t *wo;

	key_of(snd, 9);
	open_store(f);
	for (int d = 0; d < 4; d++) {
		key_of(dev[d], (uint8_t)(d + 1));
		for (int i = 0; i < 3; i++)
			assert_int_equal(put1(f, 1, dev[d], snd, 0, "abc", 3, 0, &seq[d][i]), 0);
	}
	assert_int_equal(sp_store_totals(f->st, &e, &by), 0);
	assert_int_equal(e, 12);
	assert_int_equal(by, 36);
	for (int d = 0; d < 3; d++)
		for (int i = 0; i < 3; i++) {
			assert_int_equal(ack1(f, 2, dev[d], seq[d][i]), 0);
			if (seq[d][i] > last)
				last = seq[d][i];
		}
	assert_int_equal(sp_store_totals(f->st, &e, &by), 0);
	assert_int_equal(e, 3);
	assert_int_equal(by, 9);
	sp_store_close(f->st);
	f->st = NULL;

	raw_open(f, &r);
	raw_scan(&r, SP_STORE_CF_META, count_cb, &n);
	assert_int_equal(n, 1);         /* only dev[3], which still has mail */
	/* An older store had no totals record: remove it to see the recount. */
	wo = rocksdb_writeoptions_create();
	rocksdb_delete_cf(r.db, wo, r.cf[SP_STORE_CF_DEFAULT], "totals", 6, &err);
	assert_null(err);
	rocksdb_writeoptions_destroy(wo);
	raw_close(&r);

	open_store(f);
	assert_int_equal(sp_store_totals(f->st, &e, &by), 0);
	assert_int_equal(e, 3);
	assert_int_equal(by, 9);
	/* Seqs of emptied devices keep increasing across the restart. */
	for (int d = 0; d < 3; d++) {
		assert_int_equal(put1(f, 3, dev[d], snd, 0, "z", 1, 0, &s), 0);
		assert_true(s > last);
	}
	reopen(f);
	assert_int_equal(sp_store_totals(f->st, &e, &by), 0);
	assert_int_equal(e, 6);
	assert_int_equal(by, 12);
}

/* One sender holds at most share_pct % of a mailbox; an ack gives it room
 * again; other senders are not affected. */
static void test_sender_share(void **state)
{
	struct fx *f = *state;
	uint8_t r[SP_KEY_LEN], r2[SP_KEY_LEN], att[SP_KEY_LEN], hon[SP_KEY_LEN];
	uint64_t s[8], x;
	struct sp_store_stats st;

	key_of(r, 1);
	key_of(r2, 5);
	key_of(att, 2);
	key_of(hon, 3);
	f->cfg.quota_count = 8;
	f->cfg.share_pct = 50;
	open_store(f);
	for (int i = 0; i < 4; i++)
		assert_int_equal(put1(f, 1, r, att, 0, "a", 1, 0, &s[i]), 0);
	assert_int_equal(put1(f, 1, r, att, 0, "a", 1, 0, &x), -EXFULL);
	/* The same sender to another device has a share there too. */
	assert_int_equal(put1(f, 1, r2, att, 0, "a", 1, 0, &x), 0);
	for (int i = 4; i < 8; i++)
		assert_int_equal(put1(f, 1, r, hon, 0, "h", 1, 0, &s[i]), 0);
	assert_int_equal(put1(f, 1, r, hon, 0, "h", 1, 0, &x), -EDQUOT); /* the whole quota */
	sp_store_get_stats(f->st, &st);
	assert_int_equal(st.share_refused, 1);
	assert_int_equal(st.share_pairs, 3);
	/* An ack of one of the attacker's frees one place of its share. */
	assert_int_equal(ack1(f, 2, r, s[0]), 0);
	assert_int_equal(put1(f, 2, r, att, 0, "a", 1, 0, &x), 0);
	assert_int_equal(ack1(f, 2, r, s[4]), 0);       /* room in the mailbox ... */
	assert_int_equal(put1(f, 2, r, att, 0, "a", 1, 0, &x), -EXFULL); /* not in the share */
	/* Acked completely: the pair is forgotten. */
	for (int i = 5; i < 8; i++)
		assert_int_equal(ack1(f, 3, r, s[i]), 0);
	sp_store_get_stats(f->st, &st);
	assert_int_equal(st.share_pairs, 2);
	/* Reopened: nothing counted at open; the attacker's 4 envelopes in r
	 * are counted again from their stored tags at r's first enqueue. */
	sp_store_close(f->st);
	f->st = NULL;
	open_store(f);
	sp_store_get_stats(f->st, &st);
	assert_int_equal(st.share_pairs, 0);
	assert_int_equal(put1(f, 4, r, att, 0, "a", 1, 0, &x), -EXFULL);
	sp_store_get_stats(f->st, &st);
	assert_int_equal(st.share_loads, 1);
	assert_int_equal(st.share_loaded_entries, 4);
	assert_int_equal(st.share_refused, 1);
	/* Another sender to r: its own share, r not read again. */
	assert_int_equal(put1(f, 5, r, hon, 0, "h", 1, 0, &x), 0);
	/* r2 (one envelope of att) is read at its own first enqueue. */
	assert_int_equal(put1(f, 6, r2, att, 0, "a", 1, 0, &x), 0);
	sp_store_get_stats(f->st, &st);
	assert_int_equal(st.share_loads, 2);
	assert_int_equal(st.share_pairs, 3);
}

/*
 * The batch's reads see its own writes (the overlay beside the plain
 * WriteBatch): with recent entries off, an ack of an envelope enqueued in
 * the same batch reads it from the batch, a second ack finds it gone; a
 * retry of an id the batch enqueued is a duplicate; and a mailbox's shares,
 * counted at its first enqueue after open, leave out what the batch acked
 * already and count what it enqueued.
 */
static void test_batch_reads_own_writes(void **state)
{
	struct fx *f = *state;
	uint8_t r[SP_KEY_LEN], att[SP_KEY_LEN], hon[SP_KEY_LEN];
	struct sp_store_envelope e = { .body = (const uint8_t *)"a", .body_len = 1 };
	struct sp_store_item it[16];
	struct sp_store_read_result res;
	struct sp_store_batch *b;
	struct sp_store_stats st;
	uint64_t s[4], x, d;

	key_of(r, 1);
	key_of(att, 2);
	key_of(hon, 3);
	f->cfg.quota_count = 8;
	f->cfg.share_pct = 50;
	f->cfg.recent_max = 0;
	open_store(f);
	for (int i = 0; i < 4; i++)
		assert_int_equal(put1(f, 1, r, att, 0, "a", 1, 0, &s[i]), 0);
	reopen(f);
	e.recipient = r;
	e.sender = att;
	assert_int_equal(sp_store_batch_begin(f->st, 2, &b), 0);
	/* Acked before r's shares are loaded: the load must not count it. */
	assert_int_equal(sp_store_ack(b, r, s[0]), 0);
	assert_int_equal(sp_store_ack(b, r, s[0]), -ENOENT);
	e.client_id = 77;
	assert_int_equal(sp_store_enqueue(b, &e, &x), 0);      /* 4 of 4 */
	assert_int_equal(sp_store_enqueue(b, &e, &d), SP_STORE_DUPLICATE);
	assert_int_equal(d, x);
	e.client_id = 0;
	assert_int_equal(sp_store_enqueue(b, &e, &d), -EXFULL);
	/* Enqueued and acked in this batch, read from the batch. */
	e.sender = hon;
	assert_int_equal(sp_store_enqueue(b, &e, &d), 0);
	assert_int_equal(sp_store_ack(b, r, d), 0);
	assert_int_equal(sp_store_ack(b, r, d), -ENOENT);
	assert_int_equal(sp_store_batch_commit(b), 0);
	sp_store_get_stats(f->st, &st);
	assert_int_equal(st.acked, 2);
	assert_int_equal(st.acked_recent, 0);
	assert_int_equal(st.share_loads, 1);
	assert_int_equal(st.share_loaded_entries, 3);
	assert_int_equal(read_all(f, r, 3, it, 16, &res), 4);
	assert_int_equal(it[3].seq, x);

	/* A second reopen: r's stored 4 are counted from the database alone;
	 * an enqueue of this batch counted at the load too. */
	reopen(f);
	assert_int_equal(put1(f, 4, r, att, 0, "a", 1, 0, &d), -EXFULL);
	sp_store_get_stats(f->st, &st);
	assert_int_equal(st.share_loaded_entries, 4);

	/* Shares dropped in the middle of a batch (one mailbox tracked at a
	 * time): r's second load counts the envelope this batch enqueued. */
	f->cfg.share_table_max = 1;
	reopen(f);
	e.sender = hon;
	assert_int_equal(sp_store_batch_begin(f->st, 5, &b), 0);
	assert_int_equal(sp_store_enqueue(b, &e, &d), 0);       /* loads r: 4 + 1 */
	e.recipient = att;
	assert_int_equal(sp_store_enqueue(b, &e, &d), 0);       /* resets, loads att */
	e.recipient = r;
	e.sender = att;
	assert_int_equal(sp_store_enqueue(b, &e, &d), -EXFULL); /* reloads r: 4 + 1 */
	e.sender = hon;
	assert_int_equal(sp_store_enqueue(b, &e, &d), 0);
	assert_int_equal(sp_store_batch_commit(b), 0);
	sp_store_get_stats(f->st, &st);
	assert_int_equal(st.share_loaded_entries, 4 + 5);
	assert_int_equal(st.share_pairs, 1);     /* r-att; r-hon over the table's bound */
}

/* A store of format 1 (v1 mailbox values) opens, is marked format 3, and
 * its envelopes are read and acked as before. */
static void test_format1_upgrade(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN], k[SP_STORE_MAILBOX_KEY_LEN];
	uint8_t v[SP_STORE_MAILBOX_HDR_LEN + 2];
	struct sp_store_item it[4];
	struct sp_store_read_result res;
	uint64_t seq;
	struct raw r;
	char *val, *err = NULL;
	size_t vl;
	rocksdb_readoptions_t *ro;

	key_of(a, 1);
	key_of(snd, 2);
	open_store(f);
	assert_int_equal(put1(f, 1, a, snd, 0, "v1", 2, 0, &seq), 0);
	sp_store_close(f->st);
	f->st = NULL;
	raw_open(f, &r);
	sp_store_mailbox_key(k, a, seq);
	ro = rocksdb_readoptions_create();
	val = rocksdb_get_cf(r.db, ro, r.cf[SP_STORE_CF_MAILBOX], (const char *)k, sizeof(k), &vl,
			     &err);
	assert_null(err);
	assert_int_equal(vl, sizeof(v));
	memcpy(v, val, sizeof(v));
	rocksdb_free(val);
	v[0] = SP_STORE_VALUE_V1;
	v[1] = v[2] = v[3] = 0;
	raw_put(&r, SP_STORE_CF_MAILBOX, k, sizeof(k), v, sizeof(v));
	raw_put(&r, SP_STORE_CF_DEFAULT, "format", 6, "\x01", 1);
	raw_close(&r);

	open_store(f);
	assert_int_equal(read_all(f, a, 2, it, 4, &res), 1);
	assert_memory_equal(it[0].body, "v1", 2);
	assert_int_equal(ack1(f, 3, a, seq), 0);
	sp_store_close(f->st);
	f->st = NULL;
	raw_open(f, &r);
	val = rocksdb_get_cf(r.db, ro, r.cf[SP_STORE_CF_DEFAULT], "format", 6, &vl, &err);
	assert_null(err);
	assert_int_equal(vl, 1);
	assert_int_equal((uint8_t)val[0], SP_STORE_FORMAT);
	rocksdb_free(val);
	rocksdb_readoptions_destroy(ro);
	raw_close(&r);
}

/* A scrub starts one interval after the first removal, runs on its own
 * thread, and is reaped by a later tick; nothing removed, no scrub. */
static void test_scrub(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_stats st;
	uint64_t seq, entries, dels;

	key_of(a, 1);
	key_of(snd, 2);
	f->cfg.scrub_interval_ms = 1000;
	open_store(f);
	assert_int_equal(put1(f, 1, a, snd, 0, "scrubbed", 8, 0, &seq), 0);
	assert_int_equal(sp_store_tick(f->st, 10), 0);
	assert_int_equal(sp_store_tick(f->st, 5000), 0);
	sp_store_get_stats(f->st, &st);
	assert_int_equal(st.scrubs, 0);          /* nothing removed yet */
	assert_int_equal(ack1(f, 5001, a, seq), 0);
	assert_int_equal(sp_store_tick(f->st, 5002), 0);   /* arms: due at 6002 */
	assert_int_equal(sp_store_tick(f->st, 6001), 0);
	assert_int_equal(sp_store_tick(f->st, 6002), 0);   /* starts */
	for (int i = 0; i < 500 && st.scrubs == 0; i++) {
		usleep(10000);
		assert_int_equal(sp_store_tick(f->st, 6003 + (uint64_t)i), 0);
		sp_store_get_stats(f->st, &st);
	}
	assert_int_equal(st.scrubs, 1);
	assert_int_equal(st.scrub_failures, 0);
	/* Compacted: no table file holds the entry or its deletion marker. */
	if (sp_store_table_stats(f->st, SP_STORE_CF_MAILBOX, &entries, &dels) == 0) {
		assert_int_equal(entries, 0);
		assert_int_equal(dels, 0);
	}
	/* Nothing removed since: no second scrub. */
	assert_int_equal(sp_store_tick(f->st, 100000), 0);
	assert_int_equal(sp_store_tick(f->st, 200000), 0);
	sp_store_get_stats(f->st, &st);
	assert_int_equal(st.scrubs, 1);
}

/* A step stopped by its count resumes at its cursor: later steps do not walk
 * the index from its first key again, and the sweep still finishes. */
static void test_expire_resumes(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_batch *b;
	struct sp_store_stats st0, st1;
	uint64_t seq, count;
	size_t n = 0, total = 0;
	int rc, steps = 0;

	key_of(a, 1);
	key_of(snd, 2);
	f->cfg.ttl_ms = 1000;
	f->cfg.recent_max = 0;  /* a record per entry: 500 of them (no windows) */
	open_store(f);
	assert_int_equal(sp_store_batch_begin(f->st, 0, &b), 0);
	for (int i = 0; i < 500; i++) {
		struct sp_store_envelope e = { .recipient = a, .sender = snd, .body = (const uint8_t *)"x",
					       .body_len = 1, .ttl_ms = 1000 + (uint64_t)(i % 7) };

		assert_int_equal(sp_store_enqueue(b, &e, &seq), 0);
	}
	assert_int_equal(sp_store_batch_commit(b), 0);
	sp_store_get_stats(f->st, &st0);
	do {
		assert_int_equal(sp_store_batch_begin(f->st, 5000, &b), 0);
		rc = sp_store_expire_for(b, 64, 0, &n);
		assert_true(rc == 0 || rc == 1);
		total += n;
		assert_int_equal(sp_store_batch_commit(b), 0);
		steps++;
	} while (rc == 1 && steps < 100);
	sp_store_get_stats(f->st, &st1);
	assert_int_equal(rc, 0);
	assert_int_equal(total, 500);
	assert_int_equal(steps, 8);     /* 7 full steps of 64, one of 52 */
	assert_int_equal(st1.sweep_steps - st0.sweep_steps, 8);
	assert_int_equal(st1.sweep_resumed - st0.sweep_resumed, 7);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 0);
	/* Caught up: the next step starts from the first key again. */
	assert_int_equal(sp_store_batch_begin(f->st, 6000, &b), 0);
	assert_int_equal(sp_store_expire_for(b, 64, 1000000, &n), 0);
	assert_int_equal(sp_store_batch_commit(b), 0);
	sp_store_get_stats(f->st, &st0);
	assert_int_equal(st0.sweep_resumed, st1.sweep_resumed);
}

static uint64_t expiry_mem_entries(struct fx *f)
{
	uint64_t v = 0;

	assert_int_equal(sp_store_property(f->st, SP_STORE_CF_EXPIRY,
					   "rocksdb.num-entries-active-mem-table", &v), 0);
	return v;
}

static size_t sweep_at(struct fx *f, uint64_t now, size_t max)
{
	struct sp_store_batch *b;
	size_t n = 0, total = 0;
	int rc;

	do {
		assert_int_equal(sp_store_batch_begin(f->st, now, &b), 0);
		rc = sp_store_expire(b, max, &n);
		assert_true(rc == 0 || rc == 1);
		total += n;
		assert_int_equal(sp_store_batch_commit(b), 0);
	} while (rc == 1);
	return total;
}

/* Expiry windows (sp_store.h): one record for up to 64 envelopes of a batch;
 * acks of its members write nothing to the index until the last, which
 * deletes it; members of a window the store no longer tracks (a restart)
 * or cannot track (pushed out of the ring) still expire, and only then. */
static void test_expiry_windows(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_envelope e = { .body = (const uint8_t *)"w", .body_len = 1 };
	struct sp_store_batch *b;
	uint64_t s[100], t[6], count, x0, x1;

	key_of(a, 1);
	key_of(snd, 2);
	e.recipient = a;
	e.sender = snd;
	f->cfg.ttl_ms = 1000;
	open_store(f);
	x0 = expiry_mem_entries(f);
	assert_int_equal(sp_store_batch_begin(f->st, 0, &b), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(sp_store_enqueue(b, &e, &s[i]), 0);
	assert_int_equal(sp_store_batch_commit(b), 0);
	x1 = expiry_mem_entries(f);
	assert_int_equal(x1 - x0, 2);           /* 64 + 36, not 100 records */

	/* All but s[10] of the first window, all of the second: the first
	 * writes nothing, the second's last ack deletes its record. */
	assert_int_equal(sp_store_batch_begin(f->st, 1, &b), 0);
	for (int i = 0; i < 100; i++)
		if (i != 10)
			assert_int_equal(sp_store_ack(b, a, s[i]), 0);
	assert_int_equal(sp_store_batch_commit(b), 0);
	assert_int_equal(expiry_mem_entries(f) - x1, 1);

	/* Not before its time; then s[10] alone expires. */
	assert_int_equal(sweep_at(f, 999, 10), 0);
	assert_int_equal(sweep_at(f, 1000, 10), 1);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 0);
	assert_int_equal(ack1(f, 1001, a, s[10]), -ENOENT);

	/* A window the store forgot (restart): an acked member is skipped, an
	 * expired one removed, a later one gets its own record at the
	 * window's time and expires at its own. */
	assert_int_equal(sp_store_batch_begin(f->st, 3000, &b), 0);
	for (int i = 0; i < 3; i++) {
		e.ttl_ms = i == 2 ? 100000 : 1000;
		assert_int_equal(sp_store_enqueue(b, &e, &t[i]), 0);
	}
	assert_int_equal(sp_store_batch_commit(b), 0);
	reopen(f);
	assert_int_equal(ack1(f, 3001, a, t[0]), 0);
	assert_int_equal(sweep_at(f, 4000, 10), 1);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 1);
	assert_int_equal(sweep_at(f, 102999, 10), 0);
	assert_int_equal(sweep_at(f, 103000, 10), 1);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 0);

	/* A ring of 4: the next batch's entries push the window of t[0..3)
	 * out; its members get records of their own, acked or expired as
	 * any other. */
	f->cfg.recent_max = 4;
	reopen(f);
	e.ttl_ms = 1000;
	assert_int_equal(sp_store_batch_begin(f->st, 200000, &b), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(sp_store_enqueue(b, &e, &t[i]), 0);
	assert_int_equal(sp_store_batch_commit(b), 0);
	assert_int_equal(sp_store_batch_begin(f->st, 200500, &b), 0);
	for (int i = 3; i < 6; i++)
		assert_int_equal(sp_store_enqueue(b, &e, &t[i]), 0);
	assert_int_equal(sp_store_batch_commit(b), 0);
	assert_int_equal(ack1(f, 200600, a, t[0]), 0);
	assert_int_equal(ack1(f, 200600, a, t[4]), 0);
	assert_int_equal(sweep_at(f, 200999, 10), 0);
	assert_int_equal(sweep_at(f, 201000, 1), 2);    /* t[1], t[2] */
	assert_int_equal(sweep_at(f, 201500, 1), 2);    /* t[3], t[5] */
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 0);
	/* Nothing is left in the index: a sweep far ahead writes nothing. */
	assert_int_equal(sp_store_batch_begin(f->st, 1000000, &b), 0);
	assert_int_equal(sp_store_expire(b, 100, NULL), 0);
	assert_int_equal(sp_store_batch_ops(b), 0);
	assert_int_equal(sp_store_batch_commit(b), 0);
}

/* A window's record is due window_ms after its batch: members not acked by
 * then get records of their own (and are acked or expire through them);
 * after a reopen the first sweep pass takes the last process's window
 * records at once, before they are due, so acked entries leave no trace. */
static void test_expiry_window_due(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_envelope e = { .body = (const uint8_t *)"d", .body_len = 1,
				       .ttl_ms = 100000 };
	struct sp_store_batch *b;
	uint64_t s[4], count, x0;

	key_of(a, 1);
	key_of(snd, 2);
	e.recipient = a;
	e.sender = snd;
	f->cfg.window_ms = 1000;
	open_store(f);
	assert_int_equal(sweep_at(f, 0, 10), 0);        /* the pass after open */
	assert_int_equal(sp_store_batch_begin(f->st, 0, &b), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(sp_store_enqueue(b, &e, &s[i]), 0);
	assert_int_equal(sp_store_batch_commit(b), 0);
	assert_int_equal(ack1(f, 1, a, s[0]), 0);
	x0 = expiry_mem_entries(f);
	assert_int_equal(sweep_at(f, 999, 10), 0);
	assert_int_equal(expiry_mem_entries(f), x0);
	/* Due: 3 records of their own and the window's deletion. */
	assert_int_equal(sweep_at(f, 1000, 10), 0);
	assert_int_equal(expiry_mem_entries(f) - x0, 4);
	assert_int_equal(ack1(f, 1001, a, s[1]), 0);    /* through its own record */
	assert_int_equal(expiry_mem_entries(f) - x0, 5);
	assert_int_equal(sweep_at(f, 99999, 10), 0);
	assert_int_equal(sweep_at(f, 100000, 10), 2);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 0);

	/* Left by the last process, all acked since: gone at the first pass. */
	assert_int_equal(sp_store_batch_begin(f->st, 200000, &b), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(sp_store_enqueue(b, &e, &s[i]), 0);
	assert_int_equal(sp_store_batch_commit(b), 0);
	reopen(f);
	assert_int_equal(ack1(f, 200001, a, s[0]), 0);
	assert_int_equal(ack1(f, 200001, a, s[1]), 0);
	x0 = expiry_mem_entries(f);
	assert_int_equal(sweep_at(f, 200002, 10), 0);
	assert_int_equal(expiry_mem_entries(f) - x0, 1);        /* its deletion */
	assert_int_equal(sp_store_batch_begin(f->st, 10000000, &b), 0);
	assert_int_equal(sp_store_expire(b, 100, NULL), 0);
	assert_int_equal(sp_store_batch_ops(b), 0);
	assert_int_equal(sp_store_batch_commit(b), 0);
}

/* A store of format 2 (an expiry record per entry, no window records)
 * opens, is marked format 3, and its entries are acked and expire through
 * their own records as before. */
static void test_format2_upgrade(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	uint64_t s[3], count;
	struct raw r;
	char *val, *err = NULL;
	size_t vl;
	rocksdb_readoptions_t *ro;

	key_of(a, 1);
	key_of(snd, 2);
	f->cfg.ttl_ms = 1000;
	f->cfg.recent_max = 0;  /* what format 2 wrote: a record per entry */
	open_store(f);
	for (int i = 0; i < 3; i++)
		assert_int_equal(put1(f, 0, a, snd, 0, "f2", 2, 0, &s[i]), 0);
	sp_store_close(f->st);
	f->st = NULL;
	raw_open(f, &r);
	raw_put(&r, SP_STORE_CF_DEFAULT, "format", 6, "\x02", 1);
	raw_close(&r);

	f->cfg.recent_max = 64;
	open_store(f);
	assert_int_equal(ack1(f, 1, a, s[0]), 0);
	assert_int_equal(sweep_at(f, 999, 10), 0);
	assert_int_equal(sweep_at(f, 1000, 10), 2);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 0);
	sp_store_close(f->st);
	f->st = NULL;
	raw_open(f, &r);
	ro = rocksdb_readoptions_create();
	val = rocksdb_get_cf(r.db, ro, r.cf[SP_STORE_CF_DEFAULT], "format", 6, &vl, &err);
	assert_null(err);
	assert_int_equal(vl, 1);
	assert_int_equal((uint8_t)val[0], SP_STORE_FORMAT);
	assert_int_equal(SP_STORE_FORMAT, 3);
	rocksdb_free(val);
	rocksdb_readoptions_destroy(ro);
	/* And a format this build does not know is refused. */
	raw_put(&r, SP_STORE_CF_DEFAULT, "format", 6, "\x04", 1);
	raw_close(&r);
	{
		char e2[256] = "";

		assert_int_equal(sp_store_open(&f->st, &f->cfg, e2, sizeof(e2)), -EPROTO);
		f->st = NULL;
	}
}

/* ---- corruption ----------------------------------------------------------------------- */

static void test_corrupt_value(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN], k[SP_STORE_MAILBOX_KEY_LEN];
	uint8_t bad_version[SP_STORE_MAILBOX_HDR_LEN + 3] = { 9 };
	struct sp_store_item it[8];
	struct sp_store_read_result res;
	struct sp_store_stats stats;
	struct raw r;
	uint64_t s[5], count, next;

	key_of(a, 1);
	key_of(snd, 2);
	open_store(f);
	for (int i = 0; i < 5; i++)
		assert_int_equal(put1(f, 1, a, snd, 0, "good!", 5, 0, &s[i]), 0);
	/* The highest seq is acked: the rebuilt counters must not reuse it. */
	assert_int_equal(ack1(f, 1, a, s[4]), 0);
	sp_store_close(f->st);
	f->st = NULL;

	raw_open(f, &r);
	sp_store_mailbox_key(k, a, s[1]);
	raw_put(&r, SP_STORE_CF_MAILBOX, k, sizeof(k), "\x01\x00", 2); /* truncated */
	sp_store_mailbox_key(k, a, s[2]);
	raw_put(&r, SP_STORE_CF_MAILBOX, k, sizeof(k), bad_version, sizeof(bad_version));
	raw_put(&r, SP_STORE_CF_META, a, SP_KEY_LEN, "garbage", 7); /* corrupt counters */
	raw_close(&r);

	open_store(f);
	assert_int_equal(read_all(f, a, 2, it, 8, &res), 2);
	assert_int_equal(it[0].seq, s[0]);
	assert_int_equal(it[1].seq, s[3]);
	assert_memory_equal(it[1].body, "good!", 5);
	assert_int_equal(res.skipped_corrupt, 2);
	assert_int_equal(res.corrupt_err, -EBADMSG);
	assert_true(res.end);
	sp_store_get_stats(f->st, &stats);
	assert_true(stats.corrupt >= 2);
	/* Counters are rebuilt from the range. */
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, &next), 0);
	assert_int_equal(count, 4);
	assert_int_equal(next, s[3] + 1);
	/* A corrupt entry can still be acked away (the device may ack what it
	 * never got; here the operator's tooling would), and new mail works. */
	assert_int_equal(ack1(f, 3, a, s[1]), 0);
	assert_int_equal(put1(f, 3, a, snd, 0, "new", 3, 0, &next), 0);
	assert_true(next > s[4]);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 4);
	assert_int_equal(read_all(f, a, 4, it, 8, &res), 3);
	assert_int_equal(res.skipped_corrupt, 1);
}

/* ---- open errors ----------------------------------------------------------------------- */

static void test_second_open_busy(void **state)
{
	struct fx *f = *state;
	struct sp_store *st2 = NULL;
	char err[256] = "";
	pid_t pid;
	int status;

	open_store(f);
	assert_int_equal(sp_store_open(&st2, &f->cfg, err, sizeof(err)), -EBUSY);
	assert_null(st2);
	assert_non_null(strstr(err, "in use"));

	/* Another process. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int rc = sp_store_open(&st2, &f->cfg, err, sizeof(err));

		_exit(rc == -EBUSY ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* Free again after close. */
	reopen(f);
}

/* RocksDB's own LOCK (e.g. a tool holding DIR/db open) maps to -EBUSY too. */
static void test_rocksdb_lock_busy(void **state)
{
	struct fx *f = *state;
	struct sp_store *st2 = NULL;
	char err[512] = "";
	struct raw r;

	open_store(f);
	sp_store_close(f->st);
	f->st = NULL;
	raw_open(f, &r);
	assert_int_equal(sp_store_open(&st2, &f->cfg, err, sizeof(err)), -EBUSY);
	assert_null(st2);
	assert_non_null(strstr(err, "locked"));
	raw_close(&r);
	open_store(f);
}

static void test_dir_under_file(void **state)
{
	struct fx *f = *state;
	struct sp_store *st = NULL;
	char path[256], err[256] = "";
	int fd;

	/* Parent path component is a regular file: an honest failure even for root. */
	snprintf(path, sizeof(path), "%s/file", f->dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/file/data", f->dir);
	f->cfg.dir = path;
	assert_int_equal(sp_store_open(&st, &f->cfg, err, sizeof(err)), -ENOTDIR);
	assert_null(st);
	assert_non_null(strstr(err, "cannot create directory"));
	f->cfg.dir = f->data;
}

/* Root ignores mode bits, so the check runs in a child that drops to nobody. */
static void test_dir_not_writable_eacces(void **state)
{
	struct fx *f = *state;
	pid_t pid;
	int status;

	assert_int_equal(chmod(f->dir, 0755), 0);
	assert_int_equal(mkdir(f->data, 0700), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sp_store *st = NULL;
		char err[256] = "";
		int rc;

		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(77);
		rc = sp_store_open(&st, &f->cfg, err, sizeof(err));
		if (rc == -EACCES && strstr(err, "not writable"))
			_exit(0);
		fprintf(stderr, "child: rc=%d err=%s\n", rc, err);
		_exit(1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* A data directory on a read-only file system: a tmpfs remounted read-only in
 * a private mount namespace of a child process. */
static void test_dir_read_only_fs(void **state)
{
	struct fx *f = *state;
	char mnt[128];
	pid_t pid;
	int status;

	snprintf(mnt, sizeof(mnt), "%s/mnt", f->dir);
	assert_int_equal(mkdir(mnt, 0700), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sp_store_config cfg = f->cfg;
		struct sp_store *st = NULL;
		char data[192], sub[192], err[256] = "";
		int rc1, rc2;

		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("tmpfs", mnt, "tmpfs", 0, "size=1m") < 0)
			_exit(77);
		snprintf(data, sizeof(data), "%s/data", mnt);
		snprintf(sub, sizeof(sub), "%s/new", mnt);
		if (mkdir(data, 0700) < 0 ||
		    mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
			_exit(77);
		cfg.dir = data; /* exists, read-only */
		rc1 = sp_store_open(&st, &cfg, err, sizeof(err));
		if (rc1 != -EROFS || !strstr(err, "not writable"))
			fprintf(stderr, "child: existing dir rc=%d err=%s\n", rc1, err);
		cfg.dir = sub; /* must be created, cannot */
		rc2 = sp_store_open(&st, &cfg, err, sizeof(err));
		if (rc2 != -EROFS)
			fprintf(stderr, "child: new dir rc=%d err=%s\n", rc2, err);
		umount(mnt);
		_exit(rc1 == -EROFS && rc2 == -EROFS ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77) {
		print_message("no mount namespace here: read-only fs case skipped\n");
		skip();
	}
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_dedup_key_file(void **state)
{
	struct fx *f = *state;
	char path[256], err[256] = "";
	struct sp_store *st = NULL;
	struct stat sb;
	uint8_t k1[32], k2[32];
	FILE *fp;

	open_store(f);
	snprintf(path, sizeof(path), "%s/dedup.key", f->data);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(sb.st_size, 32);
	fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fread(k1, 1, 32, fp), 32);
	fclose(fp);
	reopen(f); /* kept, not regenerated */
	fp = fopen(path, "rb");
	assert_non_null(fp);
	assert_int_equal(fread(k2, 1, 32, fp), 32);
	fclose(fp);
	assert_memory_equal(k1, k2, 32);
	sp_store_close(f->st);
	f->st = NULL;
	/* A key file others can read is refused, like ssh does. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(sp_store_open(&st, &f->cfg, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "0600"));
}

/* ---- durability modes --------------------------------------------------------------- */

static void test_sync_modes(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_stats st0, st1;
	uint64_t s;

	key_of(a, 1);
	key_of(snd, 2);
	f->cfg.sync = SP_STORE_SYNC_ALWAYS;
	open_store(f);
	sp_store_get_stats(f->st, &st0);
	assert_int_equal(put1(f, 0, a, snd, 0, "s", 1, 0, &s), 0);
	assert_int_equal(put1(f, 0, a, snd, 0, "s", 1, 0, &s), 0);
	sp_store_get_stats(f->st, &st1);
	assert_int_equal(st1.syncs - st0.syncs, 2); /* one per commit, never per envelope */
	assert_int_equal(sp_store_tick(f->st, 1000000), 0);

	f->cfg.sync = SP_STORE_SYNC_BATCH;
	f->cfg.sync_interval_ms = 100;
	reopen(f);
	sp_store_get_stats(f->st, &st0);
	assert_int_equal(sp_store_tick(f->st, 0), 0); /* nothing written yet */
	assert_int_equal(put1(f, 1000, a, snd, 0, "s", 1, 0, &s), 0);
	assert_int_equal(put1(f, 1050, a, snd, 0, "s", 1, 0, &s), 0);
	assert_int_equal(sp_store_tick(f->st, 1099), 0);
	assert_int_equal(sp_store_tick(f->st, 1100), 1); /* 100 ms after the FIRST commit */
	assert_int_equal(sp_store_tick(f->st, 1200), 0);
	sp_store_get_stats(f->st, &st1);
	assert_int_equal(st1.syncs - st0.syncs, 1);

	f->cfg.sync = SP_STORE_SYNC_NEVER;
	reopen(f);
	assert_int_equal(put1(f, 0, a, snd, 0, "s", 1, 0, &s), 0);
	assert_int_equal(sp_store_tick(f->st, 1000000), 0);
}

/* A committed batch survives kill -9 of the process in every mode (the WAL
 * write happened before commit returned; no fsync involved in NEVER). */
static void test_commit_survives_kill9(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_item it[300];
	struct sp_store_read_result res;
	pid_t pid;
	int status;

	key_of(a, 1);
	key_of(snd, 2);
	f->cfg.sync = SP_STORE_SYNC_NEVER;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sp_store *st = NULL;
		struct sp_store_batch *b;
		uint64_t s;

		if (sp_store_open(&st, &f->cfg, NULL, 0) < 0)
			_exit(1);
		for (int i = 0; i < 256; i++) {
			struct sp_store_envelope e = { .recipient = a, .sender = snd,
						       .body = (const uint8_t *)&i,
						       .body_len = sizeof(i) };

			if (sp_store_batch_begin(st, 1, &b) < 0 || sp_store_enqueue(b, &e, &s) < 0 ||
			    sp_store_batch_commit(b) < 0)
				_exit(2);
		}
		/* one more, never committed */
		if (sp_store_batch_begin(st, 1, &b) == 0) {
			struct sp_store_envelope e = { .recipient = a, .sender = snd };

			sp_store_enqueue(b, &e, &s);
		}
		raise(SIGKILL);
		_exit(3);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	open_store(f);
	assert_int_equal(read_all(f, a, 2, it, 300, &res), 256);
	for (int i = 0; i < 256; i++) {
		int v;

		memcpy(&v, it[i].body, sizeof(v));
		assert_int_equal(v, i);
	}
}

/*
 * Disk full: a child process in a private mount namespace puts the store on a
 * 4 MiB tmpfs and commits 32 KiB envelopes until a commit fails. The failure
 * is a clear error, the store refuses further writes instead of guessing,
 * and after the file system grows and the store is reopened every envelope
 * whose commit returned 0 is there, and no sequence is reused.
 */
static void test_disk_full(void **state)
{
	struct fx *f = *state;
	char mnt[128];
	pid_t pid;
	int status;

	snprintf(mnt, sizeof(mnt), "%s/mnt", f->dir);
	assert_int_equal(mkdir(mnt, 0700), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		static uint8_t body[32768];
		static struct sp_store_item it[512];
		struct sp_store_config cfg = f->cfg;
		struct sp_store_read_result res;
		struct sp_store_batch *b;
		struct sp_store *st = NULL;
		uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
		char data[192], err[256] = "";
		uint64_t seq, last_ok = 0, lost = 0;
		int committed = 0, rc = 0;
		bool poisoned;

		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("tmpfs", mnt, "tmpfs", 0, "size=4m") < 0)
			_exit(77);
		key_of(a, 1);
		key_of(snd, 2);
		snprintf(data, sizeof(data), "%s/data", mnt);
		cfg.dir = data;
		if (sp_store_open(&st, &cfg, err, sizeof(err)) < 0) {
			fprintf(stderr, "child: open: %s\n", err);
			_exit(2);
		}
		for (int i = 0; i < 1000; i++) {
			struct sp_store_envelope e = { .recipient = a, .sender = snd, .body = body,
						       .body_len = sizeof(body) };

			memcpy(body, &i, sizeof(i));
			if (sp_store_batch_begin(st, 1, &b) < 0)
				_exit(3);
			if (sp_store_enqueue(b, &e, &seq) < 0)
				_exit(4);
			rc = sp_store_batch_commit(b);
			if (rc < 0) {
				lost = seq;
				break;
			}
			last_ok = seq;
			committed++;
		}
		if (rc != -ENOSPC && rc != -EIO) {
			fprintf(stderr, "child: commit rc=%d after %d\n", rc, committed);
			_exit(5);
		}
		if (!strstr(sp_store_errmsg(st), "failed")) {
			fprintf(stderr, "child: errmsg '%s'\n", sp_store_errmsg(st));
			_exit(6);
		}
		/* The store refuses writes and syncs from now on without touching
		 * RocksDB's files again (RocksDB 7.8 aborts on the next use of a
		 * file writer that failed); the reopen below must not hand out
		 * the lost seq again. This used to be flaky: RocksDB's info LOG on
		 * the same full disk tripped that abort. */
		poisoned = sp_store_batch_begin(st, 1, &b) == -EIO;
		if (!poisoned || sp_store_sync(st) != -EIO || sp_store_tick(st, UINT64_MAX / 2) != 0)
			_exit(7);
		sp_store_close(st);
		st = NULL;
		if (mount(NULL, mnt, NULL, MS_REMOUNT, "size=64m") < 0)
			_exit(77);
		if (sp_store_open(&st, &cfg, err, sizeof(err)) < 0) {
			fprintf(stderr, "child: reopen: %s\n", err);
			_exit(8);
		}
		if (sp_store_read(st, a, 0, 2, 512, SIZE_MAX, it, &res) < 0 ||
		    res.count != (size_t)committed || !committed ||
		    it[res.count - 1].seq != last_ok) {
			fprintf(stderr, "child: %zu stored, %d committed\n", res.count, committed);
			_exit(9);
		}
		if (sp_store_batch_begin(st, 1, &b) < 0)
			_exit(10);
		{
			struct sp_store_envelope e = { .recipient = a, .sender = snd };

			if (sp_store_enqueue(b, &e, &seq) < 0 || seq <= lost ||
			    sp_store_batch_commit(b) < 0)
				_exit(11);
		}
		sp_store_close(st);
		fprintf(stderr, "disk full: %d commits fit, then rc=%d; store refused further writes\n",
			committed, rc);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- backlog and tombstones --------------------------------------------------------- */

enum { BACKLOG = 10000, CHUNK_ITEMS = 256, CHUNK_BYTES = 16384 };

static void test_backlog_streamed_and_compacted(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN], body[200];
	static struct sp_store_item it[CHUNK_ITEMS];
	struct sp_store_read_result res;
	struct sp_store_batch *b;
	uint64_t from = 0, prev = 0, count, mem = 0, entries, deletions, keys;
	size_t got = 0, chunks = 0, total_bytes = 0;

	key_of(a, 1);
	key_of(snd, 2);
	open_store(f);
	for (int i = 0; i < BACKLOG; i += 500) {
		assert_int_equal(sp_store_batch_begin(f->st, 1, &b), 0);
		for (int j = i; j < i + 500; j++) {
			uint64_t s;
			struct sp_store_envelope e = { .recipient = a, .sender = snd,
						       .client_id = (uint64_t)j + 1, .body = body };

			memset(body, (uint8_t)j, sizeof(body));
			memcpy(body, &j, sizeof(j));
			e.body_len = 100 + (size_t)(j % 100);
			assert_int_equal(sp_store_enqueue(b, &e, &s), 0);
		}
		assert_int_equal(sp_store_batch_commit(b), 0);
	}
	/* The Puts go to SST files, so the acks' tombstones must meet them in a
	 * compaction (a Put and its SingleDelete in one memtable vanish at flush). */
	assert_int_equal(sp_store_flush(f->st), 0);

	/* Stream it: bounded chunks, strictly in order, each exactly once. */
	do {
		size_t bytes = 0;

		assert_int_equal(sp_store_read(f->st, a, from, 2, CHUNK_ITEMS, CHUNK_BYTES, it, &res),
				 0);
		assert_true(res.count <= CHUNK_ITEMS);
		for (size_t i = 0; i < res.count; i++) {
			int j;

			memcpy(&j, it[i].body, sizeof(j));
			assert_int_equal(j, (int)got);
			assert_int_equal(it[i].body_len, 100 + (size_t)(j % 100));
			assert_int_equal(it[i].body[it[i].body_len - 1], (uint8_t)j);
			assert_true(it[i].seq > prev);
			prev = it[i].seq;
			bytes += it[i].body_len;
			got++;
		}
		assert_true(bytes <= CHUNK_BYTES);
		total_bytes += bytes;
		from = res.next_seq;
		chunks++;
		/* Ack what was delivered, one batch per chunk (as the broker would). */
		assert_int_equal(sp_store_batch_begin(f->st, 3, &b), 0);
		for (size_t i = 0; i < res.count; i++)
			assert_int_equal(sp_store_ack(b, a, it[i].seq), 0);
		assert_int_equal(sp_store_batch_commit(b), 0);
	} while (!res.end);
	assert_int_equal(got, BACKLOG);
	/* Streamed, not loaded whole: every chunk was bounded, so there were many. */
	assert_true(chunks >= total_bytes / CHUNK_BYTES);
	assert_true(chunks > BACKLOG / CHUNK_ITEMS);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 0);

	/* Tombstones: the SingleDeletes sit in the memtable (RocksDB 7.8's
	 * num-deletes-active-mem-table counts only Delete, so count entries),
	 * then in an SST file after a flush; a compaction drops them together
	 * with the Puts they cancel. */
	assert_int_equal(sp_store_property(f->st, SP_STORE_CF_MAILBOX,
					   "rocksdb.num-entries-active-mem-table", &mem), 0);
	assert_int_equal(mem, BACKLOG);
	assert_int_equal(sp_store_flush(f->st), 0);
	assert_int_equal(sp_store_table_stats(f->st, SP_STORE_CF_MAILBOX, &entries, &deletions), 0);
	print_message("mailbox cf after flush: %llu entries, %llu deletions in SSTs\n",
		      (unsigned long long)entries, (unsigned long long)deletions);
	assert_int_equal(entries, 2 * BACKLOG);
	assert_int_equal(deletions, BACKLOG);
	assert_int_equal(sp_store_compact(f->st), 0);
	assert_int_equal(sp_store_table_stats(f->st, SP_STORE_CF_MAILBOX, &entries, &deletions), 0);
	assert_int_equal(entries, 0);
	assert_int_equal(deletions, 0);
	assert_int_equal(sp_store_table_stats(f->st, SP_STORE_CF_EXPIRY, &entries, &deletions), 0);
	/* nothing left: dedup records have no index records (the compaction
	 * filter drops them after their window), and these are in it */
	assert_int_equal(deletions, 0);
	assert_int_equal(entries, 0);
	assert_int_equal(sp_store_property(f->st, SP_STORE_CF_DEDUP, "rocksdb.estimate-num-keys",
					   &keys), 0);
	assert_int_equal(keys, BACKLOG);
	assert_int_equal(sp_store_property(f->st, SP_STORE_CF_MAILBOX, "rocksdb.estimate-num-keys",
					   &keys), 0);
	assert_int_equal(keys, 0);
	assert_int_equal(sp_store_read(f->st, a, 0, 4, CHUNK_ITEMS, CHUNK_BYTES, it, &res), 0);
	assert_int_equal(res.count, 0);
	assert_true(res.end);
}

static void test_read_limits(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN], big[1000] = { 0 };
	struct sp_store_item it[8];
	struct sp_store_read_result res;
	uint64_t s[3];

	key_of(a, 1);
	key_of(snd, 2);
	open_store(f);
	assert_int_equal(put1(f, 1, a, snd, 0, big, 1000, 0, &s[0]), 0);
	assert_int_equal(put1(f, 1, a, snd, 0, big, 10, 0, &s[1]), 0);
	assert_int_equal(put1(f, 1, a, snd, 0, big, 10, 0, &s[2]), 0);
	/* The first item alone exceeds max_bytes: returned anyway, alone. */
	assert_int_equal(sp_store_read(f->st, a, 0, 2, 8, 100, it, &res), 0);
	assert_int_equal(res.count, 1);
	assert_int_equal(it[0].body_len, 1000);
	assert_false(res.end);
	assert_int_equal(res.next_seq, s[0] + 1);
	assert_int_equal(sp_store_read(f->st, a, res.next_seq, 2, 1, 100, it, &res), 0);
	assert_int_equal(res.count, 1);
	assert_int_equal(it[0].seq, s[1]);
	assert_false(res.end);
	assert_int_equal(sp_store_read(f->st, a, res.next_seq, 2, 8, 100, it, &res), 0);
	assert_int_equal(res.count, 1);
	assert_int_equal(it[0].seq, s[2]);
	assert_true(res.end);
}

/* A device's counters are written once per batch, however many of its
 * envelopes and acks the batch holds (RocksDB's memtable counts the writes). */
static void test_meta_written_once_per_batch(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], c[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_envelope e = { .body = (const uint8_t *)"m", .body_len = 1 };
	struct sp_store_batch *b;
	uint64_t seqs[SP_ACK_SEQS_MAX], before, after, count;

	key_of(a, 1);
	key_of(c, 3);
	key_of(snd, 2);
	e.sender = snd;
	open_store(f);
	assert_int_equal(sp_store_property(f->st, SP_STORE_CF_META,
					   "rocksdb.num-entries-active-mem-table", &before), 0);
	assert_int_equal(sp_store_batch_begin(f->st, 1, &b), 0);
	for (int i = 0; i < SP_ACK_SEQS_MAX; i++) {
		e.recipient = (i % 2) ? c : a;
		assert_int_equal(sp_store_enqueue(b, &e, &seqs[i]), 0);
	}
	assert_int_equal(sp_store_batch_commit(b), 0);
	assert_int_equal(sp_store_property(f->st, SP_STORE_CF_META,
					   "rocksdb.num-entries-active-mem-table", &after), 0);
	assert_int_equal(after - before, 2); /* a and c */

	/* One Ack frame's worth for a: one meta write. */
	before = after;
	assert_int_equal(sp_store_batch_begin(f->st, 2, &b), 0);
	for (int i = 0; i < SP_ACK_SEQS_MAX; i += 2)
		assert_int_equal(sp_store_ack(b, a, seqs[i]), 0);
	assert_int_equal(sp_store_batch_commit(b), 0);
	assert_int_equal(sp_store_property(f->st, SP_STORE_CF_META,
					   "rocksdb.num-entries-active-mem-table", &after), 0);
	assert_int_equal(after - before, 1);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 0);
	assert_int_equal(sp_store_mailbox_info(f->st, c, &count, NULL, NULL), 0);
	assert_int_equal(count, SP_ACK_SEQS_MAX / 2);
}

/* The counters cache: a batch after the first reads no counters record, yet
 * quotas, seqs after an abort and an emptied mailbox behave as if it had. */
static void check_meta_cache(struct fx *f, bool on)
{
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_envelope e = { .body = (const uint8_t *)"k", .body_len = 1 };
	struct sp_store_batch *b;
	struct sp_store_stats st0, st1;
	uint64_t s[4], lost, x, count;

	key_of(a, 1);
	key_of(snd, 2);
	e.recipient = a;
	e.sender = snd;
	f->cfg.quota_count = 3;
	f->cfg.recent_max = on ? 16 : 0;
	open_store(f);
	assert_int_equal(put1(f, 1, a, snd, 0, "k", 1, 0, &s[0]), 0);
	sp_store_get_stats(f->st, &st0);
	assert_int_equal(put1(f, 2, a, snd, 0, "k", 1, 0, &s[1]), 0);
	sp_store_get_stats(f->st, &st1);
	assert_int_equal(st1.meta_cached - st0.meta_cached, on ? 1 : 0);
	assert_true(s[1] > s[0]);

	/* An aborted enqueue: its count is dropped, its seq never comes back. */
	assert_int_equal(sp_store_batch_begin(f->st, 3, &b), 0);
	assert_int_equal(sp_store_enqueue(b, &e, &lost), 0);
	assert_int_equal(sp_store_batch_abort(b), 0);
	assert_int_equal(put1(f, 4, a, snd, 0, "k", 1, 0, &s[2]), 0);
	assert_true(s[2] > lost);
	assert_int_equal(put1(f, 5, a, snd, 0, "k", 1, 0, &x), -EDQUOT);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 3);

	/* Emptied (its record deleted), then filled again: seqs go on rising. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(ack1(f, 6, a, s[i]), 0);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 0);
	assert_int_equal(put1(f, 7, a, snd, 0, "k", 1, 0, &s[3]), 0);
	assert_true(s[3] > s[2]);
	reopen(f);
	assert_int_equal(sp_store_mailbox_info(f->st, a, &count, NULL, NULL), 0);
	assert_int_equal(count, 1);
	assert_int_equal(put1(f, 8, a, snd, 0, "k", 1, 0, &x), 0);
	assert_true(x > s[3]);
	assert_int_equal(put1(f, 9, a, snd, 0, "k", 1, 0, &x), 0);
	assert_int_equal(put1(f, 10, a, snd, 0, "k", 1, 0, &x), -EDQUOT);
}

static void test_meta_cache(void **state)
{
	check_meta_cache(*state, true);
}

static void test_meta_cache_off(void **state)
{
	check_meta_cache(*state, false);
}

static void test_bad_arguments(void **state)
{
	struct fx *f = *state;
	uint8_t a[SP_KEY_LEN], snd[SP_KEY_LEN];
	struct sp_store_envelope e = { 0 };
	struct sp_store_config cfg;
	struct sp_store_batch *b;
	struct sp_store *st = NULL;
	char err[128] = "";
	uint64_t s;

	key_of(a, 1);
	key_of(snd, 2);
	sp_store_config_defaults(&cfg);
	assert_int_equal(sp_store_open(&st, &cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "data directory"));
	open_store(f);
	assert_int_equal(sp_store_batch_begin(f->st, 1, &b), 0);
	assert_int_equal(sp_store_enqueue(b, &e, &s), -EINVAL);
	e.recipient = a;
	e.sender = snd;
	e.body_len = SP_BODY_MAX + 1;
	e.body = (const uint8_t *)"x";
	assert_int_equal(sp_store_enqueue(b, &e, &s), -EMSGSIZE);
	assert_int_equal(sp_store_batch_commit(b), 0);
	/* A finished batch cannot be used. */
	assert_int_equal(sp_store_ack(b, a, 1), -EINVAL);
}

/* ---- prekeys (sp_store_prekey.c) ------------------------------------------ */

/* A fake record (the store does not look inside but for the id). */
static void pk_rec(uint8_t rec[SP_STORE_PREKEY_REC_LEN], uint8_t kind, uint32_t id)
{
	memset(rec, 0x11 * kind, SP_STORE_PREKEY_REC_LEN);
	rec[0] = kind;
	rec[1] = (uint8_t)(id >> 24);
	rec[2] = (uint8_t)(id >> 16);
	rec[3] = (uint8_t)(id >> 8);
	rec[4] = (uint8_t)id;
}

static void test_prekey_records(void **state)
{
	struct fx *f = *state;
	uint8_t dev[SP_KEY_LEN], ed[SP_KEY_LEN], spk[SP_STORE_PREKEY_REC_LEN], otk[SP_STORE_PREKEY_REC_LEN];
	uint8_t many[5 * SP_STORE_PREKEY_REC_LEN];
	struct sp_store_prekey_meta m;
	uint32_t count = 99;
	bool has;

	open_store(f);
	key_of(dev, 7);
	memset(ed, 0x22, sizeof(ed));
	/* nothing on file: no bundle */
	assert_int_equal(sp_store_prekey_take(f->st, dev, &m, otk, &has), -ENOENT);
	/* one-time keys without a signed prekey: kept, but no bundle yet */
	for (uint32_t i = 0; i < 3; i++)
		pk_rec(many + i * SP_STORE_PREKEY_REC_LEN, 2, 30 - i * 10); /* ids 30, 20, 10 */
	assert_int_equal(sp_store_prekey_put(f->st, dev, ed, NULL, many, 3, 4, &count), 0);
	assert_int_equal(count, 3);
	assert_int_equal(sp_store_prekey_take(f->st, dev, &m, otk, &has), -ENOENT);
	pk_rec(spk, 1, 1);
	/* the same ids again are replaced, not counted twice; 2 fresh of 5 pass the stock of 4 */
	for (uint32_t i = 3; i < 5; i++)
		pk_rec(many + i * SP_STORE_PREKEY_REC_LEN, 2, 40 + i);
	assert_int_equal(sp_store_prekey_put(f->st, dev, ed, spk, many, 5, 4, &count), -EXFULL);
	assert_int_equal(sp_store_prekey_put(f->st, dev, ed, spk, many, 3, 4, &count), 0);
	assert_int_equal(count, 3);
	/* taken lowest id first, each once, the count following; across a reopen */
	assert_int_equal(sp_store_prekey_take(f->st, dev, &m, otk, &has), 0);
	assert_true(has);
	assert_int_equal(otk[4], 10);
	assert_int_equal(m.count, 2);
	assert_memory_equal(m.spk, spk, sizeof(spk));
	assert_memory_equal(m.edkey, ed, sizeof(ed));
	reopen(f);
	assert_int_equal(sp_store_prekey_take(f->st, dev, &m, otk, &has), 0);
	assert_true(has && otk[4] == 20 && m.count == 1);
	assert_int_equal(sp_store_prekey_take(f->st, dev, &m, otk, &has), 0);
	assert_true(has && otk[4] == 30 && m.count == 0);
	/* exhausted: the signed prekey alone, again and again */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sp_store_prekey_take(f->st, dev, &m, otk, &has), 0);
		assert_false(has);
		assert_int_equal(m.count, 0);
		assert_true(m.has_signed);
	}
	/* another device is untouched */
	key_of(dev, 8);
	assert_int_equal(sp_store_prekey_meta_get(f->st, dev, &m), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_encoders),
		cmocka_unit_test_setup_teardown(test_key_layout_on_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enqueue_read_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seq_across_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uncommitted_seq_not_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_deletes_only_that_entry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_unknown_seq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_recent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_other_device_impossible, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enqueue_ack_same_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedup_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_reads_own_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedup_old_index_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedup_records_expire, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_value, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_open_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rocksdb_lock_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_under_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_not_writable_eacces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_read_only_fs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedup_key_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_survives_kill9, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expire_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta_deleted_when_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sender_share, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format1_upgrade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format2_upgrade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_windows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_window_due, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta_cache_off, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scrub, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backlog_streamed_and_compacted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta_written_once_per_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enrol_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prekey_records, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
