/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store_scrub.c: making removed data leave the disk (sp_store.h,
 * "Deleted data"). A scrub flushes every memtable (so the write-ahead log
 * files that hold acked envelopes become obsolete and are deleted) and
 * compacts every column family down to its last level with the deletion
 * markers dropped (so table files no longer hold them, nor the markers,
 * which carry the recipient key). It runs on a thread of its own: a full
 * compaction takes as long as rewriting the live data, and the event loop
 * must not wait for it. RocksDB allows flushes and compactions concurrently
 * with writes; the thread touches only st->db and the column family
 * handles (fixed while open) and the atomics below.
 */
#include "sp_store_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { SP_ROCKSDB_BOTTOMMOST_FORCE = 2 };       /* BottommostLevelCompaction::kForce */

/*
 * The MANIFEST names each table file with its smallest and largest key (a
 * recipient key). RocksDB starts a new one, holding only the live files,
 * at the first edit once the file is above max_manifest_file_size (tiny,
 * see sp_store.c); the compaction's own edit went into the old one. One
 * more edit (a column family made and dropped at once: nothing else
 * writes one on demand) starts the new MANIFEST; the old one is deleted.
 */
static bool roll_manifest(struct sp_store *st)
{
	rocksdb_options_t *o = rocksdb_options_create();
	rocksdb_column_family_handle_t *h;
	char *rerr = NULL;
	bool ok = true;

	h = rocksdb_create_column_family(st->db, o, "scrub", &rerr);
	if (rerr) {
		rocksdb_free(rerr);
		ok = false;
	} else {
		rocksdb_drop_column_family(st->db, h, &rerr);
		if (rerr) {
			rocksdb_free(rerr);
			ok = false;
		}
		rocksdb_column_family_handle_destroy(h);
	}
	rocksdb_options_destroy(o);
	return ok;
}

static void *scrub_main(void *arg)
{
	struct sp_store *st = arg;
	rocksdb_compactoptions_t *co = rocksdb_compactoptions_create();
	bool ok = co != NULL;

	for (int i = 0; ok && i < SP_STORE_CF_COUNT; i++) {
		char *rerr = NULL;

		rocksdb_flush_cf(st->db, st->fo, st->cf[i], &rerr);
		if (rerr) {
			rocksdb_free(rerr);
			ok = false;
		}
	}
	/* Blob files: every one is garbage-collected by this compaction. */
	if (ok && sp_store_blob_gc_cutoff(st, true) < 0)
		ok = false;
	if (ok) {
		rocksdb_compactoptions_set_exclusive_manual_compaction(co, 0);
		rocksdb_compactoptions_set_bottommost_level_compaction(co,
								       SP_ROCKSDB_BOTTOMMOST_FORCE);
		for (int i = 0; i < SP_STORE_CF_COUNT; i++)
			rocksdb_compact_range_cf_opt(st->db, st->cf[i], co, NULL, 0, NULL, 0);
		if (sp_store_blob_gc_cutoff(st, false) < 0)
			ok = false;
		ok = roll_manifest(st) && ok;
	}
	if (co)
		rocksdb_compactoptions_destroy(co);
	__atomic_store_n(&st->scrub_result, ok ? 1 : -1, __ATOMIC_RELEASE);
	return NULL;
}

/* Reaps a finished scrub thread; true if none is running afterwards. */
static bool reap(struct sp_store *st)
{
	int res;

	if (!st->scrub_running)
		return true;
	res = __atomic_load_n(&st->scrub_result, __ATOMIC_ACQUIRE);
	if (res == 0)
		return false;
	pthread_join(st->scrub_thread, NULL);
	st->scrub_running = false;
	if (res > 0)
		st->scrubs++;
	else
		st->scrub_failures++;
	return true;
}

int sp_store_scrub_tick(struct sp_store *st, uint64_t now_ms, uint64_t removed)
{
	if (!reap(st))
		return 0;
	if (!st->cfg.scrub_interval_ms || st->poisoned)
		return 0;
	if (!st->scrub_armed) {
		/* The first removal starts the clock: data removed now leaves
		 * the disk within one interval (plus the scrub's own time). */
		if (removed == st->scrub_removed)
			return 0;
		st->scrub_armed = true;
		st->scrub_due_ms = now_ms + st->cfg.scrub_interval_ms;
		return 0;
	}
	if (now_ms < st->scrub_due_ms)
		return 0;
	st->scrub_armed = false;
	st->scrub_removed = removed;
	__atomic_store_n(&st->scrub_result, 0, __ATOMIC_RELEASE);
	if (pthread_create(&st->scrub_thread, NULL, scrub_main, st) != 0) {
		st->scrub_failures++;
		return -EAGAIN;
	}
	st->scrub_running = true;
	return 1;
}

void sp_store_scrub_stop(struct sp_store *st)
{
	if (!st->scrub_running)
		return;
	/* A manual compaction in progress returns early. */
	rocksdb_disable_manual_compaction(st->db);
	pthread_join(st->scrub_thread, NULL);
	st->scrub_running = false;
}
