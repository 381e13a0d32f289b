/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store_batch.c: the write side of the store: one batch per event-loop
 * iteration (enqueue, ack; the sweep in sp_store_expire.c adds to it too),
 * its commit or abort, and syncing the WAL afterwards.
 *
 * The batch is a plain WriteBatch with the store's own overlay beside it
 * (sp_store_overlay.c: each key the batch wrote, and what): every read
 * inside a batch (dedup, "does this entry exist") goes through
 * sp_store_batch_get, which asks the overlay first and the database only
 * for keys the batch did not touch, so an ack sees an entry enqueued a
 * moment ago, a retry sees the dedup record of the same iteration, and a
 * second ack of one seq in one batch finds it gone. That is also what keeps
 * SingleDelete safe: a key is SingleDeleted only after a lookup proved it
 * present, so no key ever gets two SingleDeletes for one Put. (Before, the
 * batch was a WriteBatchWithIndex; its skiplist index and the reads through
 * it cost about a third of a durable envelope: docs/BENCHMARKS.md.) Per-device counters are different: they change with every envelope
 * and ack, so the batch keeps them in a small hash map and writes each
 * changed device's record once, at commit (the map is lib/util's sp_keytab:
 * device keys are chosen by peers, so it hashes with a secret SipHash key).
 */
#include "sp_store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sp_be.h"
#include "sp_fsutil.h"

static void flush_meta_map(struct sp_store_batch *b, uint64_t *entries, uint64_t *bytes);
static void share_reset(struct sp_store *st);
static void recent_reset(struct sp_store *st);
static void win_write(struct sp_store_batch *b);

int sp_store_batch_init(struct sp_store *st)
{
	int rc;

	st->batch.st = st;
	st->batch.wb = rocksdb_writebatch_create();
	if (!st->batch.wb)
		return -ENOMEM;
	rc = sp_store_ovl_init(&st->batch.ovl);
	if (rc == 0)
		rc = sp_keytab_create(&st->batch.map, 64);
	if (rc == 0)
		rc = sp_keytab_create(&st->share_map, 1024);
	if (rc == 0)
		rc = sp_keytab_create(&st->share_loaded, 1024);
	if (rc == 0) {
		st->tagc = calloc(SP_STORE_TAG_CACHE, sizeof(*st->tagc));
		crypto_shorthash_keygen(st->tagc_key);
		if (!st->tagc)
			rc = -ENOMEM;
	}
	if (rc == 0 && st->cfg.recent_max) {
		rc = sp_keytab_create(&st->recent_map, st->cfg.recent_max);
		if (rc == 0)
			rc = sp_keytab_create(&st->win_map, 1024);
		st->recent = calloc(st->cfg.recent_max, sizeof(*st->recent));
		st->wins = calloc(st->cfg.recent_max, sizeof(*st->wins));
		if (rc == 0 && (!st->recent || !st->wins))
			rc = -ENOMEM;
	}
	return rc;
}

void sp_store_batch_fini(struct sp_store *st)
{
	if (st->batch.wb)
		rocksdb_writebatch_destroy(st->batch.wb);
	st->batch.wb = NULL;
	sp_store_ovl_fini(&st->batch.ovl);
	sp_keytab_destroy(st->batch.map);
	st->batch.map = NULL;
	free(st->batch.slots);
	st->batch.slots = NULL;
	sp_keytab_destroy(st->share_map);
	st->share_map = NULL;
	sp_keytab_destroy(st->share_loaded);
	st->share_loaded = NULL;
	free(st->tagc);
	st->tagc = NULL;
	sodium_memzero(st->tagc_key, sizeof(st->tagc_key));
	sp_keytab_destroy(st->recent_map);
	st->recent_map = NULL;
	free(st->recent);
	st->recent = NULL;
	sp_keytab_destroy(st->win_map);
	st->win_map = NULL;
	free(st->wins);
	st->wins = NULL;
	free(st->batch.new_wins);
	st->batch.new_wins = NULL;
	st->batch.n_new_wins = st->batch.new_wins_cap = 0;
	free(st->shares);
	st->shares = NULL;
	st->nshares = st->shares_cap = 0;
	st->batch.slots_cap = 0;
	st->batch.count = 0;
}

/* ---- batch plumbing -------------------------------------------------------------- */

int sp_store_batch_get(struct sp_store_batch *b, enum sp_store_cf cf, const uint8_t *key,
		       size_t klen, char **val, size_t *vlen)
{
	struct sp_store *st = b->st;
	const struct sp_store_ovl_ent *en = sp_store_ovl_find(&b->ovl, cf, key, klen);
	char *rerr = NULL;

	if (en) {
		*val = NULL;
		*vlen = 0;
		if (en->deleted)
			return 0;
		/* A copy, freed with rocksdb_free like RocksDB's own values. */
		*val = malloc(en->vlen ? en->vlen : 1);
		if (!*val)
			return -ENOMEM;
		memcpy(*val, b->ovl.arena + en->voff, en->vlen);
		*vlen = en->vlen;
		return 0;
	}
	*val = rocksdb_get_cf(st->db, st->ro, st->cf[cf], (const char *)key, klen, vlen, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "read", rerr);
	return 0;
}

/* A Put of the nv slices vp/vl (borrowed; copied into the batch and the
 * overlay). */
static void batch_putv(struct sp_store_batch *b, enum sp_store_cf cf, const uint8_t *key,
		       size_t klen, size_t nv, const char *const *vp, const size_t *vl)
{
	const char *kp[1] = { (const char *)key };
	const size_t kl[1] = { klen };

	if (sp_store_ovl_put(&b->ovl, cf, key, klen, nv, vp, vl) < 0) {
		b->ovl_failed = true;   /* commit refuses the batch */
		return;
	}
	rocksdb_writebatch_putv_cf(b->wb, b->st->cf[cf], 1, kp, kl, (int)nv, vp, vl);
	b->ops++;
}

static void batch_put(struct sp_store_batch *b, enum sp_store_cf cf, const uint8_t *key,
		      size_t klen, const uint8_t *val, size_t vlen)
{
	const char *vp[1] = { val ? (const char *)val : "" };
	const size_t vl[1] = { vlen };

	batch_putv(b, cf, key, klen, 1, vp, vl);
}

void sp_store_batch_sdel(struct sp_store_batch *b, enum sp_store_cf cf, const uint8_t *key,
			 size_t klen)
{
	if (sp_store_ovl_del(&b->ovl, cf, key, klen) < 0) {
		b->ovl_failed = true;
		return;
	}
	rocksdb_writebatch_singledelete_cf(b->wb, b->st->cf[cf], (const char *)key, klen);
	b->ops++;
}

void sp_store_batch_del(struct sp_store_batch *b, enum sp_store_cf cf, const uint8_t *key,
			size_t klen)
{
	if (sp_store_ovl_del(&b->ovl, cf, key, klen) < 0) {
		b->ovl_failed = true;
		return;
	}
	rocksdb_writebatch_delete_cf(b->wb, b->st->cf[cf], (const char *)key, klen);
	b->ops++;
}

int sp_store_batch_check(const struct sp_store_batch *b)
{
	if (!b || !b->open)
		return -EINVAL;
	if (b->st->poisoned)
		return -EIO;
	return 0;
}

/*
 * Reads free space at most every SP_STORE_SPACE_CHECK_MS (a statvfs costs
 * about a microsecond, but not per envelope), and makes the ballast again
 * once there is room for it above the reserve.
 */
static void check_space(struct sp_store *st, uint64_t now_ms)
{
	uint64_t free_bytes;

	if (!st->cfg.min_free_bytes && !st->cfg.ballast_bytes)
		return;
	if (st->space_checked && now_ms >= st->space_checked_ms &&
	    now_ms - st->space_checked_ms < SP_STORE_SPACE_CHECK_MS)
		return;
	if (sp_store_free_space(st, &free_bytes) < 0)
		return;         /* keep the last figure */
	st->space_checked = true;
	st->space_checked_ms = now_ms;
	st->free_bytes = free_bytes;
	st->written_since_check = 0;
	if (!st->ballast && st->cfg.ballast_bytes &&
	    free_bytes >= st->cfg.min_free_bytes + 2 * st->cfg.ballast_bytes &&
	    sp_store_ballast_make(st) == 0)
		st->free_bytes -= st->cfg.ballast_bytes;
}

/* Would len more body bytes cross a space bound? */
static bool space_refuses(const struct sp_store_batch *b, uint64_t len)
{
	const struct sp_store *st = b->st;
	/* The WAL copy, then the table file's, with the keys and index record. */
	uint64_t cost = 2 * (len + 160);

	if (st->cfg.max_total_bytes &&
	    st->tot_bytes + b->add_bytes + len > st->cfg.max_total_bytes)
		return true;
	if (st->cfg.min_free_bytes && st->space_checked &&
	    (st->free_bytes < st->cfg.min_free_bytes + st->written_since_check + cost ||
	     st->free_bytes - st->written_since_check - cost < st->cfg.min_free_bytes))
		return true;
	return false;
}

int sp_store_batch_begin(struct sp_store *st, uint64_t now_ms, struct sp_store_batch **out)
{
	*out = NULL;
	if (st->poisoned) {
		sp_store_set_err(st, "store: writes refused after an unrecoverable failure; reopen");
		return -EIO;
	}
	if (st->batch.open)
		return -EBUSY;
	check_space(st, now_ms);
	if (now_ms > __atomic_load_n(&st->filter_now_ms, __ATOMIC_RELAXED))
		__atomic_store_n(&st->filter_now_ms, now_ms, __ATOMIC_RELEASE);
	rocksdb_writebatch_clear(st->batch.wb);
	sp_store_ovl_clear(&st->batch.ovl);
	st->batch.ovl_failed = false;
	st->batch.now_ms = now_ms;
	st->batch.ops = 0;
	st->batch.assigned = 0;
	st->batch.add_bytes = 0;
	st->batch.gen++;
	st->batch.open = true;
	*out = &st->batch;
	return 0;
}

size_t sp_store_batch_ops(const struct sp_store_batch *b)
{
	return b->ops;
}

/* O(devices touched), not O(table capacity): one busy batch must not make
 * every later commit pay for the table it grew. */
static void clear_meta_map(struct sp_store_batch *b)
{
	for (size_t i = 0; i < b->count; i++)
		sp_keytab_remove(b->map, b->slots[i].key, i);
	b->count = 0;
}

/*
 * The counters cache: the slots of the devices a batch touched outlive it,
 * holding what was committed, so the next batch that touches the device
 * needs no read of its meta record (one lookup per device per batch
 * before; only the batch writes that family, so the slot stays what the
 * database holds). committed: the batch's writes are in the database, its
 * values become the committed ones; else they are dropped. At most
 * recent_max devices are kept (0: none, every batch reads); beyond, all
 * are forgotten (O(devices), not O(table capacity)).
 */
static void settle_meta_map(struct sp_store_batch *b, bool committed)
{
	if (b->count > b->st->cfg.recent_max) {
		clear_meta_map(b);
		return;
	}
	for (size_t i = 0; i < b->count; i++) {
		struct sp_store_mslot *sl = &b->slots[i];

		if (!sl->dirty)
			continue;
		if (committed) {
			sl->m0 = sl->m;
			sl->existed = sl->m.count > 0;  /* as flush_meta_map wrote it */
		} else {
			sl->m = sl->m0;
		}
		sl->dirty = false;
	}
}

/* committed: see settle_meta_map; after an abort or a failed commit every
 * cached counter is forgotten instead. */
static void end_batch(struct sp_store_batch *b, bool committed)
{
	if (committed)
		settle_meta_map(b, !b->ovl_failed && b->ops > 0);
	else
		clear_meta_map(b);
	rocksdb_writebatch_clear(b->wb);
	sp_store_ovl_clear(&b->ovl);
	b->n_new_wins = 0;
	b->ovl_failed = false;
	b->open = false;
	b->ops = 0;
	b->assigned = 0;
	b->add_bytes = 0;
}

/*
 * max_wal_bytes written since the last time: every column family's
 * memtable is switched and flushed in the background, so every log file
 * before becomes obsolete and is deleted. RocksDB's own max_total_wal_size
 * (also set) did not keep the log near its bound here: with one large and
 * several small column families the logs grew to the whole data set.
 */
static void bound_wal(struct sp_store *st, struct sp_store_batch *b)
{
	size_t len = 0;

	if (!st->cfg.max_wal_bytes)
		return;
	rocksdb_writebatch_data(b->wb, &len);
	st->wal_since_flush += len;
	if (st->wal_since_flush < st->cfg.max_wal_bytes)
		return;
	st->wal_since_flush = 0;
	st->wal_flushes++;
	for (int i = 0; i < SP_STORE_CF_COUNT; i++) {
		char *rerr = NULL;

		rocksdb_flush_cf(st->db, st->fo_nowait, st->cf[i], &rerr);
		if (rerr)
			rocksdb_free(rerr);     /* the next commit reports what is wrong */
	}
}

int sp_store_batch_commit(struct sp_store_batch *b)
{
	struct sp_store *st;
	char *rerr = NULL;
	uint64_t tot_entries, tot_bytes;
	bool sync;
	int rc;

	rc = sp_store_batch_check(b);
	if (rc < 0) {
		if (b && b->open)
			end_batch(b, false);
		return rc;
	}
	st = b->st;
	st->commit_ticket = 0;
	if (b->ovl_failed) {
		/* The overlay missed a write: what the batch read may be wrong.
		 * Nothing of it is written (as after an abort). */
		sp_store_set_err(st, "store: out of memory in the write batch");
		rc = sp_store_batch_abort(b);
		return rc < 0 ? rc : -ENOMEM;
	}
	win_write(b);
	if (b->ops == 0) {
		end_batch(b, true);     /* nothing changed: the cache holds */
		return 0;
	}
	flush_meta_map(b, &tot_entries, &tot_bytes);
	/* With the sync thread, ALWAYS writes like BATCH and syncs there. */
	sync = st->cfg.sync == SP_STORE_SYNC_ALWAYS && !st->sync_thread_on;
	rocksdb_write(st->db, sync ? st->wo_sync : st->wo_nosync, b->wb, &rerr);
	if (rerr) {
		/*
		 * No further write, sync or flush in this process: after a failed
		 * WAL append, RocksDB 7.8 aborts on the next use of that file
		 * writer (see the info-log note in open_rocksdb), and after a
		 * disk-full or I/O error it refuses writes anyway until resumed.
		 * The sequences handed out stay unused: the next open advances
		 * the epoch past them.
		 */
		rc = sp_store_rocks_fail(st, "commit", rerr);
		st->wstats.commit_failures++;
		sp_store_poison(st);
		end_batch(b, false);
		return rc;
	}
	st->wstats.commits++;
	bound_wal(st, b);
	st->tot_entries = tot_entries;
	st->tot_bytes = tot_bytes;
	if (sync) {
		st->wstats.syncs++;
	} else if (st->cfg.sync == SP_STORE_SYNC_ALWAYS) {
		st->commit_ticket = sp_store_syncer_ask(st);
	} else if (st->cfg.sync == SP_STORE_SYNC_BATCH && !st->unsynced) {
		st->unsynced = true;
		st->unsynced_since_ms = b->now_ms;
	} else if (st->cfg.sync == SP_STORE_SYNC_NEVER) {
		st->unsynced = true; /* synced once at close */
	}
	end_batch(b, true);
	return 0;
}

int sp_store_batch_abort(struct sp_store_batch *b)
{
	int rc = 0;

	if (!b || !b->open)
		return -EINVAL;
	if (b->assigned && !b->st->poisoned)
		rc = sp_store_bump_epoch(b->st);
	/* What the discarded step removed is still there: start over. */
	sp_store_expire_reset(b->st);
	share_reset(b->st);
	recent_reset(b->st);
	end_batch(b, false);
	return rc;
}

int sp_store_sync(struct sp_store *st)
{
	char *rerr = NULL;

	if (st->poisoned)
		return -EIO;    /* the WAL writer may have failed: never touch it again */
	rocksdb_flush_wal(st->db, 1, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "WAL sync", rerr);
	st->unsynced = false;
	st->wstats.syncs++;
	return 0;
}

uint64_t sp_store_commit_ticket(const struct sp_store *st)
{
	return st->commit_ticket;
}

int sp_store_tick(struct sp_store *st, uint64_t now_ms)
{
	int rc;

	sp_store_scrub_tick(st, now_ms,
			    st->wstats.acked + st->xstats.expired + st->xstats.dedup_expired +
			    st->purged);
	if (st->cfg.sync != SP_STORE_SYNC_BATCH || !st->unsynced || st->poisoned)
		return 0;
	if (now_ms - st->unsynced_since_ms < st->cfg.sync_interval_ms &&
	    now_ms >= st->unsynced_since_ms)
		return 0;
	if (st->sync_thread_on) {
		sp_store_syncer_ask(st);
		st->unsynced = false;   /* the next commit starts the interval again */
		return 1;
	}
	rc = sp_store_sync(st);
	return rc < 0 ? rc : 1;
}

/* ---- per-device counters ---------------------------------------------------------- */

static struct sp_store_mslot *find_slot(struct sp_store_batch *b, const uint8_t key[SP_KEY_LEN])
{
	uint64_t idx;

	if (sp_keytab_lookup(b->map, key, &idx) < 0)
		return NULL;
	return &b->slots[idx];
}

/* Appends (the key must be absent). NULL when out of memory, and then the
 * map is unchanged. Earlier slot pointers are invalid after a call. */
static struct sp_store_mslot *add_slot(struct sp_store_batch *b, const uint8_t key[SP_KEY_LEN])
{
	struct sp_store_mslot *sl;
	size_t need = (b->count + 1) * sizeof(*sl);

	if (need > b->slots_cap) {
		sl = sp_fsutil_grow(b->slots, &b->slots_cap, need, 64 * sizeof(*sl));
		if (!sl)
			return NULL;
		b->slots = sl;
	}
	if (sp_keytab_insert(b->map, key, b->count, NULL) < 0)
		return NULL;
	sl = &b->slots[b->count++];
	memcpy(sl->key, key, SP_KEY_LEN);
	sl->dirty = false;
	return sl;
}

static const char totals_key[] = "totals";

/*
 * Puts every counter the batch changed into the WriteBatch (at commit), and
 * the new totals into *entries, *bytes. A device whose mailbox is now empty
 * loses its record (a Delete: the record was Put more than once): the store
 * does not keep a list of every device that ever had mail. Its seqs stay
 * increasing without it: a device with no record starts above seq_hwm.
 */
static void flush_meta_map(struct sp_store_batch *b, uint64_t *entries, uint64_t *bytes)
{
	struct sp_store *st = b->st;
	uint8_t v[SP_STORE_META_LEN];
	uint64_t e = st->tot_entries, by = st->tot_bytes;

	for (size_t i = 0; i < b->count; i++) {
		const struct sp_store_mslot *sl = &b->slots[i];

		if (!sl->dirty)
			continue;
		e = e + sl->m.count - sl->m0.count;
		by = by + sl->m.bytes - sl->m0.bytes;
		if (sl->m.count == 0) {
			if (sl->existed)
				rocksdb_writebatch_delete_cf(b->wb, st->cf[SP_STORE_CF_META],
								(const char *)sl->key, SP_KEY_LEN);
			continue;
		}
		sp_store_meta_encode(v, &sl->m);
		rocksdb_writebatch_put_cf(b->wb, st->cf[SP_STORE_CF_META],
					  (const char *)sl->key, SP_KEY_LEN, (const char *)v,
					  sizeof(v));
	}
	/* Unsigned wrap-around adds the negative deltas right; a total can
	 * only "go negative" after a corrupt record's guessed size. */
	if ((int64_t)e < 0)
		e = 0;
	if ((int64_t)by < 0)
		by = 0;
	if (e != st->tot_entries || by != st->tot_bytes) {
		struct sp_store_meta t = { .next_seq = 0, .count = e, .bytes = by };

		sp_store_meta_encode(v, &t);
		rocksdb_writebatch_put_cf(b->wb, st->cf[SP_STORE_CF_DEFAULT], totals_key,
					  sizeof(totals_key) - 1, (const char *)v, sizeof(v));
	}
	*entries = e;
	*bytes = by;
}

int sp_store_totals_load(struct sp_store *st)
{
	rocksdb_iterator_t *it;
	struct sp_store_meta t = { 0 };
	uint8_t v[SP_STORE_META_LEN];
	char *val, *rerr = NULL;
	size_t vlen;

	val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_DEFAULT], totals_key,
			     sizeof(totals_key) - 1, &vlen, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "totals read", rerr);
	if (val) {
		int rc = sp_store_meta_decode((const uint8_t *)val, vlen, &t);

		rocksdb_free(val);
		if (rc == 0) {
			st->tot_entries = t.count;
			st->tot_bytes = t.bytes;
			return 0;
		}
		/* corrupt: recount below */
	}
	t.count = t.bytes = 0;
	it = rocksdb_create_iterator_cf(st->db, st->ro, st->cf[SP_STORE_CF_META]);
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t ml;
		const uint8_t *mv = (const uint8_t *)rocksdb_iter_value(it, &ml);
		struct sp_store_meta m;

		if (sp_store_meta_decode(mv, ml, &m) < 0)
			continue;       /* rebuilt when its device is next touched */
		t.count += m.count;
		t.bytes += m.bytes;
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	if (rerr)
		return sp_store_rocks_fail(st, "totals", rerr);
	sp_store_meta_encode(v, &t);
	rocksdb_put_cf(st->db, st->wo_sync, st->cf[SP_STORE_CF_DEFAULT], totals_key,
		       sizeof(totals_key) - 1, (const char *)v, sizeof(v), &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "totals write", rerr);
	st->tot_entries = t.count;
	st->tot_bytes = t.bytes;
	return 0;
}

/* A device's next seq is at least this open's floor (and, without a record,
 * above every seq handed out this open). */
static void raise_to_floor(const struct sp_store *st, struct sp_store_meta *m, bool had)
{
	uint64_t floor = sp_store_seq_floor(st->epoch);

	if (!had && st->seq_hwm > floor)
		floor = st->seq_hwm;    /* it may have had seqs up to here this open */
	if (m->next_seq < floor)
		m->next_seq = floor;
	if (m->next_seq == 0)
		m->next_seq = 1;
}

/*
 * The device's counters as this batch sees them, in the batch's map (*out):
 * from the map, else from the database (meta is only ever written at commit,
 * so the database holds the latest committed value) and then kept in the
 * map, so later changes cannot fail. A device with no record starts empty;
 * next_seq is raised to this open's floor either way.
 */
static int load_meta_slot(struct sp_store_batch *b, const uint8_t recipient[SP_KEY_LEN],
			  struct sp_store_mslot **out)
{
	struct sp_store *st = b->st;
	struct sp_store_mslot *sl = find_slot(b, recipient);
	struct sp_store_meta m = { 0 };
	char *val, *rerr = NULL;
	size_t vlen;
	bool had;
	int rc;

	*out = sl;
	if (sl) {
		if (sl->gen != b->gen) {
			/* Cached from an earlier batch: its committed value,
			 * raised to the floor as a read of it would be. */
			sl->m = sl->m0;
			raise_to_floor(st, &sl->m, sl->existed);
			sl->m0 = sl->m;
			sl->gen = b->gen;
			st->wstats.meta_cached++;
		}
		return 0;
	}
	val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_META], (const char *)recipient,
			     SP_KEY_LEN, &vlen, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "meta read", rerr);
	had = val != NULL;
	if (val) {
		rc = sp_store_meta_decode((const uint8_t *)val, vlen, &m);
		rocksdb_free(val);
		if (rc < 0) {
			/* The range shows what is stored, not what was acked: its
			 * last seq + 1 may be below seqs already handed out. A new
			 * epoch puts the floor above all of them. */
			st->wstats.corrupt++;
			rc = sp_store_rebuild_meta(st, recipient, &m);
			if (rc == 0)
				rc = sp_store_bump_epoch(st);
			if (rc < 0)
				return rc;
		}
	}
	raise_to_floor(st, &m, had);
	sl = add_slot(b, recipient);
	if (!sl)
		return -ENOMEM;
	sl->m = m;
	sl->m0 = m;
	sl->existed = had;
	sl->gen = b->gen;
	*out = sl;
	return 0;
}

/* Counters after removing one entry of body_len bytes (never below zero:
 * a corrupt entry's size is a guess). */
static void meta_remove_one(struct sp_store_mslot *sl, uint64_t body_len)
{
	sl->m.count = sl->m.count ? sl->m.count - 1 : 0;
	sl->m.bytes = sl->m.bytes >= body_len ? sl->m.bytes - body_len : 0;
	sl->dirty = true;
}

/* ---- sender shares (sp_store.h "Shares") ---------------------------------------- */

static void share_key(uint8_t key[SP_KEY_LEN], const uint8_t recipient[SP_KEY_LEN], uint32_t tag)
{
	memcpy(key, recipient, SP_KEY_LEN - 3);
	key[SP_KEY_LEN - 3] = (uint8_t)(tag >> 16);
	key[SP_KEY_LEN - 2] = (uint8_t)(tag >> 8);
	key[SP_KEY_LEN - 1] = (uint8_t)tag;
}

static struct sp_store_share *share_find(struct sp_store *st, const uint8_t key[SP_KEY_LEN])
{
	uint64_t idx;

	if (sp_keytab_lookup(st->share_map, key, &idx) < 0)
		return NULL;
	return &st->shares[idx];
}

/* The pair's share tag, from the cache (struct sp_store_tagc) or computed
 * into it. All borrowed. */
static uint32_t share_tag(struct sp_store *st, const uint8_t sender[SP_KEY_LEN],
			  const uint8_t recipient[SP_KEY_LEN])
{
	uint8_t pair[2 * SP_KEY_LEN], h[crypto_shorthash_BYTES];
	struct sp_store_tagc *c;
	uint64_t slot;

	memcpy(pair, sender, SP_KEY_LEN);
	memcpy(pair + SP_KEY_LEN, recipient, SP_KEY_LEN);
	crypto_shorthash(h, pair, sizeof(pair), st->tagc_key);
	memcpy(&slot, h, sizeof(slot));
	c = &st->tagc[slot & (SP_STORE_TAG_CACHE - 1)];
	if (!c->valid || memcmp(c->sender, sender, SP_KEY_LEN) != 0 ||
	    memcmp(c->recipient, recipient, SP_KEY_LEN) != 0) {
		c->tag = sp_store_share_tag(st->dedup_key, sender, recipient);
		memcpy(c->sender, sender, SP_KEY_LEN);
		memcpy(c->recipient, recipient, SP_KEY_LEN);
		c->valid = true;
	}
	return c->tag;
}

/* Would one more envelope of len bytes exceed the pair's share? */
static bool share_refuses(const struct sp_store *st, const struct sp_store_share *sh,
			  uint64_t len)
{
	uint64_t max_c = st->cfg.quota_count / 100 * st->cfg.share_pct +
			 st->cfg.quota_count % 100 * st->cfg.share_pct / 100;
	uint64_t max_b = st->cfg.quota_bytes / 100 * st->cfg.share_pct +
			 st->cfg.quota_bytes % 100 * st->cfg.share_pct / 100;

	if (!sh || !st->cfg.share_pct)
		return false;
	if (max_c == 0)
		max_c = 1;
	return sh->count + 1 > max_c || sh->bytes + len > max_b;
}

static void share_add(struct sp_store *st, const uint8_t key[SP_KEY_LEN], uint64_t len)
{
	struct sp_store_share *sh = share_find(st, key);

	if (!st->cfg.share_pct)
		return;
	if (!sh) {
		size_t need = (st->nshares + 1) * sizeof(*sh);

		if (st->nshares >= st->cfg.share_table_max) {
			st->wstats.share_untracked++;
			return;
		}
		if (need > st->shares_cap) {
			sh = sp_fsutil_grow(st->shares, &st->shares_cap, need, 1024 * sizeof(*sh));
			if (!sh) {
				st->wstats.share_untracked++;
				return;
			}
			st->shares = sh;
		}
		if (sp_keytab_insert(st->share_map, key, st->nshares, NULL) < 0) {
			st->wstats.share_untracked++;
			return;
		}
		sh = &st->shares[st->nshares++];
		memcpy(sh->key, key, SP_KEY_LEN);
		sh->count = sh->bytes = 0;
	}
	sh->count++;
	sh->bytes += len;
}

static void share_sub(struct sp_store *st, const uint8_t key[SP_KEY_LEN], uint64_t len)
{
	uint64_t idx;
	struct sp_store_share *sh;

	if (sp_keytab_lookup(st->share_map, key, &idx) < 0)
		return;         /* stored before this open, or never counted */
	sh = &st->shares[idx];
	sh->count = sh->count ? sh->count - 1 : 0;
	sh->bytes = sh->bytes >= len ? sh->bytes - len : 0;
	if (sh->count)
		return;
	/* The last entry moves into the freed place. */
	sp_keytab_remove(st->share_map, sh->key, idx);
	if (idx != st->nshares - 1) {
		st->shares[idx] = st->shares[st->nshares - 1];
		sp_keytab_insert(st->share_map, st->shares[idx].key, idx, NULL);
	}
	st->nshares--;
}

/* Forgets every count (a discarded batch may have counted envelopes that
 * were never stored); each mailbox is counted again from what is stored
 * at its next enqueue. */
static void share_reset(struct sp_store *st)
{
	sp_keytab_clear(st->share_map);
	if (st->share_loaded)
		sp_keytab_clear(st->share_loaded);
	st->nshares = 0;
}

/*
 * Counts recipient's stored envelopes by share tag, once per mailbox per
 * open: the shares survive a restart (and an aborted batch). Reads what
 * the batch would leave: the committed range without the keys the batch
 * wrote, then the batch's own entries of this mailbox from the overlay
 * (its pending acks and enqueues included), from the store's own v2
 * values; v1 values have no tag and count for nobody. Cost: one range
 * read of the mailbox, at most mailbox-max-count values, and one pass over
 * the batch's keys, at its first enqueue after open; nothing for an empty
 * mailbox. The loaded set is held to share_table_max mailboxes: beyond,
 * every count is dropped and rebuilt as mailboxes are touched again.
 */
static void share_count(struct sp_store *st, const uint8_t recipient[SP_KEY_LEN],
			const uint8_t *v, size_t vlen)
{
	struct sp_store_mbox_hdr h;
	uint8_t skey[SP_KEY_LEN];

	st->wstats.share_loaded_entries++;
	if (sp_store_mbox_decode(v, vlen, &h) < 0 || !h.has_tag)
		return;
	share_key(skey, recipient, h.share_tag);
	share_add(st, skey, h.body_len);
}

static int share_load(struct sp_store_batch *b, const uint8_t recipient[SP_KEY_LEN],
		      uint64_t stored)
{
	struct sp_store *st = b->st;
	const struct sp_store_ovl *o = &b->ovl;
	uint8_t lo[SP_STORE_MAILBOX_KEY_LEN], hi[SP_STORE_MAILBOX_KEY_LEN];
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t *it;
	uint64_t idx;
	char *rerr = NULL;

	if (!st->cfg.share_pct || sp_keytab_lookup(st->share_loaded, recipient, &idx) == 0)
		return 0;
	if (sp_keytab_count(st->share_loaded) >= st->cfg.share_table_max)
		share_reset(st);
	if (sp_keytab_insert(st->share_loaded, recipient, 0, NULL) < 0)
		return 0;       /* not counted: the mailbox quota still holds */
	if (stored == 0)
		return 0;
	st->wstats.share_loads++;
	sp_store_mailbox_key(lo, recipient, 0);
	sp_store_mailbox_key(hi, recipient, UINT64_MAX);
	ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, sizeof(hi));
	it = rocksdb_create_iterator_cf(st->db, ro, st->cf[SP_STORE_CF_MAILBOX]);
	for (rocksdb_iter_seek(it, (const char *)lo, sizeof(lo)); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vlen);

		if (klen != SP_STORE_MAILBOX_KEY_LEN || memcmp(k, hi, sizeof(hi)) >= 0)
			break;
		if (sp_store_ovl_find(o, SP_STORE_CF_MAILBOX, (const uint8_t *)k, klen))
			continue;       /* acked (or rewritten) by this batch: below */
		share_count(st, recipient, v, vlen);
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	if (rerr) {
		share_reset(st);
		return sp_store_rocks_fail(st, "share read", rerr);
	}
	for (size_t e = 0; e < o->n; e++) {
		const struct sp_store_ovl_ent *en = &o->ents[e];

		if (en->deleted || en->cf != SP_STORE_CF_MAILBOX ||
		    en->klen != SP_STORE_MAILBOX_KEY_LEN ||
		    memcmp(o->arena + en->koff, recipient, SP_KEY_LEN) != 0)
			continue;
		share_count(st, recipient, o->arena + en->voff, en->vlen);
	}
	return 0;
}

size_t sp_store_share_pairs(const struct sp_store *st)
{
	return st->nshares;
}

/* ---- recent entries (sp_store.h "Recent entries") ------------------------------ */

/* The table's key: 24 bytes of the recipient and the seq (the slot holds the
 * whole recipient, compared on every hit). */
static void recent_key(uint8_t key[SP_KEYTAB_KEY_LEN], const uint8_t recipient[SP_KEY_LEN],
		       uint64_t seq)
{
	memcpy(key, recipient, SP_KEYTAB_KEY_LEN - 8);
	sp_be_put64(key + SP_KEYTAB_KEY_LEN - 8, seq);
}

static struct sp_store_recent *recent_find(struct sp_store *st,
					   const uint8_t recipient[SP_KEY_LEN], uint64_t seq)
{
	uint8_t key[SP_KEYTAB_KEY_LEN];
	struct sp_store_recent *r;
	uint64_t idx;

	if (!st->recent)
		return NULL;
	recent_key(key, recipient, seq);
	if (sp_keytab_lookup(st->recent_map, key, &idx) < 0)
		return NULL;
	r = &st->recent[idx];
	if (r->seq != seq || memcmp(r->recipient, recipient, SP_KEY_LEN) != 0)
		return NULL;
	return r;
}

static void recent_drop(struct sp_store *st, struct sp_store_recent *r)
{
	uint8_t key[SP_KEYTAB_KEY_LEN];

	recent_key(key, r->recipient, r->seq);
	sp_keytab_remove(st->recent_map, key, (uint64_t)(r - st->recent));
	r->seq = 0;
}

/* ---- expiry windows (sp_store.h "Expiry windows") ---------------------------- */

/* Every stored entry has an expiry record of its own or is a stored member
 * (seq != 0, win != 0) of an open window, whose record names it. */

static void win_unmap(struct sp_store *st, struct sp_store_win *w)
{
	uint8_t key[SP_KEYTAB_KEY_LEN];

	recent_key(key, w->first, w->first_seq);
	sp_keytab_remove(st->win_map, key, (uint64_t)(w - st->wins));
}

/* w tracks nothing any more: its record, if written, is deleted (a Delete:
 * it may meet the sweep's own). */
static void win_end(struct sp_store_batch *b, struct sp_store_win *w)
{
	if (!w->pending) {
		sp_store_batch_del(b, SP_STORE_CF_EXPIRY, w->key, sizeof(w->key));
		win_unmap(b->st, w);
	}
	w->open = false;
}

/* r (a stored member) gets an expiry record of its own. */
static void own_record(struct sp_store_batch *b, struct sp_store_recent *r)
{
	uint8_t ekey[SP_STORE_EXPIRY_MAILBOX_KEY_LEN];

	sp_store_expiry_mailbox_key(ekey, r->expires_ms, r->recipient, r->seq);
	batch_put(b, SP_STORE_CF_EXPIRY, ekey, sizeof(ekey), NULL, 0);
	r->win = 0;
}

/* Window id's stored members get records of their own; the window ends. */
static void win_close(struct sp_store_batch *b, uint32_t id)
{
	struct sp_store *st = b->st;
	struct sp_store_win *w = &st->wins[id - 1];

	if (!w->open)
		return;
	for (uint32_t i = 0; i < w->span; i++) {
		struct sp_store_recent *r = &st->recent[(id - 1 + i) % st->cfg.recent_max];

		if (r->win == id && r->seq)
			own_record(b, r);
	}
	win_end(b, w);
}

/* r, a member, is removed (acked, expired, purged). */
static void win_unref(struct sp_store_batch *b, struct sp_store_recent *r)
{
	struct sp_store_win *w = &b->st->wins[r->win - 1];

	if (w->open && --w->live == 0)
		win_end(b, w);
}

/* r, a stored member, leaves its window with a record of its own. */
static void win_detach(struct sp_store_batch *b, struct sp_store_recent *r)
{
	uint32_t id = r->win;

	own_record(b, r);
	r->win = id;    /* for win_unref */
	win_unref(b, r);
	r->win = 0;
}

/* The entry just remembered in r (ring slot idx) joins the batch's last
 * window, or a new one. false: it could not (out of memory); it needs a
 * record of its own. */
static bool win_add(struct sp_store_batch *b, struct sp_store_recent *r, size_t idx)
{
	struct sp_store *st = b->st;
	struct sp_store_win *w = NULL;
	uint32_t id = b->n_new_wins ? b->new_wins[b->n_new_wins - 1] : 0;

	if (!st->cfg.window_ms)
		return false;
	if (id && st->wins[id - 1].open && st->wins[id - 1].n < SP_STORE_WINDOW_MAX)
		w = &st->wins[id - 1];
	if (!w) {
		size_t need = (b->n_new_wins + 1) * sizeof(*b->new_wins);

		if (need > b->new_wins_cap) {
			uint32_t *nw = sp_fsutil_grow(b->new_wins, &b->new_wins_cap, need,
						      64 * sizeof(*nw));

			if (!nw)
				return false;
			b->new_wins = nw;
		}
		/* wins[idx] is free: its first slot was idx, closed by recent_add. */
		id = (uint32_t)idx + 1;
		w = &st->wins[idx];
		memset(w, 0, sizeof(*w));
		memcpy(w->first, r->recipient, SP_KEY_LEN);
		w->first_seq = r->seq;
		w->due_ms = sp_store_add_sat(b->now_ms, st->cfg.window_ms);
		w->open = w->pending = true;
		b->new_wins[b->n_new_wins++] = id;
	}
	w->span = (uint32_t)((idx + st->cfg.recent_max - (id - 1)) % st->cfg.recent_max) + 1;
	w->n++;
	w->live++;
	r->win = id;
	return true;
}

/* At commit: each window this batch made with stored members gets its
 * record (key: window_ms from now or their earliest expiry if sooner, and
 * the first entry). */
static void win_write(struct sp_store_batch *b)
{
	struct sp_store *st = b->st;
	uint8_t val[SP_STORE_WINDOW_HDR_LEN + SP_STORE_WINDOW_MAX * SP_STORE_WINDOW_ITEM_LEN];
	uint8_t key[SP_KEYTAB_KEY_LEN];

	for (size_t k = 0; k < b->n_new_wins; k++) {
		uint32_t id = b->new_wins[k], n = 0;
		struct sp_store_win *w = &st->wins[id - 1];
		uint64_t min = w->due_ms;

		if (!w->open)
			continue;
		for (uint32_t i = 0; i < w->span && n < SP_STORE_WINDOW_MAX; i++) {
			struct sp_store_recent *r = &st->recent[(id - 1 + i) % st->cfg.recent_max];

			if (r->win != id || !r->seq)
				continue;
			sp_store_window_item_encode(val + sp_store_window_len(n), r->recipient, r->seq,
						    r->expires_ms);
			if (r->expires_ms < min)
				min = r->expires_ms;
			n++;
		}
		recent_key(key, w->first, w->first_seq);
		if (n == 0 || sp_keytab_insert(st->win_map, key, id - 1, NULL) != 0) {
			/* Cannot be found again (out of memory, or another
			 * window's first entry shares its 24 bytes and seq). */
			win_close(b, id);
			continue;
		}
		sp_store_window_hdr_encode(val, n);
		sp_store_expiry_window_key(w->key, min, w->first, w->first_seq);
		w->pending = false;
		batch_put(b, SP_STORE_CF_EXPIRY, w->key, sizeof(w->key), val, sp_store_window_len(n));
	}
	b->n_new_wins = 0;
}

/* The sweep met member r of window id: expired, it is removed (1); else
 * it gets a record of its own (0). -errno. */
static int win_member_due(struct sp_store_batch *b, struct sp_store_recent *r, uint64_t *bytes)
{
	uint8_t mkey[SP_STORE_MAILBOX_KEY_LEN], rcpt[SP_KEY_LEN];
	uint64_t seq = r->seq, len = 0;
	char *mv;
	size_t ml;
	int rc;

	if (r->expires_ms > b->now_ms) {
		own_record(b, r);
		return 0;
	}
	memcpy(rcpt, r->recipient, SP_KEY_LEN);    /* r is forgotten on removal */
	sp_store_mailbox_key(mkey, rcpt, seq);
	rc = sp_store_batch_get(b, SP_STORE_CF_MAILBOX, mkey, sizeof(mkey), &mv, &ml);
	if (rc < 0 || !mv)
		return rc;
	rc = sp_store_batch_remove_entry(b, rcpt, seq, mv, ml, &len);
	rocksdb_free(mv);
	if (rc < 0)
		return rc;
	*bytes += len;
	return 1;
}

/* The same for an entry named by a window record the store does not track. */
static int untracked_due(struct sp_store_batch *b, const uint8_t *rcpt, uint64_t seq,
			 uint64_t *bytes)
{
	uint8_t mkey[SP_STORE_MAILBOX_KEY_LEN];
	struct sp_store_mbox_hdr h;
	uint64_t len = 0;
	char *mv;
	size_t ml;
	int rc;

	if (recent_find(b->st, rcpt, seq))
		return 0;       /* tracked: it has a record of its own */
	sp_store_mailbox_key(mkey, rcpt, seq);
	rc = sp_store_batch_get(b, SP_STORE_CF_MAILBOX, mkey, sizeof(mkey), &mv, &ml);
	if (rc < 0 || !mv)
		return rc;      /* acked */
	if (sp_store_mbox_decode((const uint8_t *)mv, ml, &h) == 0 && h.expires_ms > b->now_ms) {
		uint8_t ekey[SP_STORE_EXPIRY_MAILBOX_KEY_LEN];

		sp_store_expiry_mailbox_key(ekey, h.expires_ms, rcpt, seq);
		batch_put(b, SP_STORE_CF_EXPIRY, ekey, sizeof(ekey), NULL, 0);
		rocksdb_free(mv);
		return 0;
	}
	/* Expired, or corrupt and past the time its window named. */
	rc = sp_store_batch_remove_entry(b, rcpt, seq, mv, ml, &len);
	rocksdb_free(mv);
	if (rc < 0)
		return rc;
	*bytes += len;
	return 1;
}

/*
 * Members that expired are removed here, not given records of their own
 * first: such a record would sort before the sweep's cursor and wait for
 * the next full pass. The others' records sort after now, past the cursor.
 */
int sp_store_batch_window_due(struct sp_store_batch *b, const uint8_t *ikey, size_t ilen,
			      const struct sp_store_expiry_ref *ref, const char *val, size_t vlen,
			      uint64_t *bytes, size_t *items)
{
	struct sp_store *st = b->st;
	uint8_t key[SP_KEYTAB_KEY_LEN];
	uint64_t idx;
	uint32_t n;
	int rc, expired = 0;

	*bytes = 0;
	*items = 0;
	if (st->win_map) {
		recent_key(key, ref->recipient, ref->seq);
		if (sp_keytab_lookup(st->win_map, key, &idx) == 0 && st->wins[idx].open &&
		    !st->wins[idx].pending && ilen == sizeof(st->wins[idx].key) &&
		    memcmp(st->wins[idx].key, ikey, ilen) == 0) {
			uint32_t id = (uint32_t)idx + 1;
			struct sp_store_win *w = &st->wins[idx];

			for (uint32_t i = 0; i < w->span; i++) {
				struct sp_store_recent *r =
					&st->recent[(idx + i) % st->cfg.recent_max];

				if (r->win != id || !r->seq)
					continue;
				(*items)++;
				rc = win_member_due(b, r, bytes);
				if (rc < 0)
					return rc;
				expired += rc;
			}
			if (w->open)
				win_end(b, w);
			return expired;
		}
	}
	if (sp_store_window_decode((const uint8_t *)val, vlen, &n) < 0) {
		st->wstats.corrupt++;   /* its entries cannot be found */
		n = 0;
	}
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *rcpt;
		uint64_t seq, exp;

		sp_store_window_item((const uint8_t *)val, i, &rcpt, &seq, &exp);
		(*items)++;
		rc = untracked_due(b, rcpt, seq, bytes);
		if (rc < 0)
			return rc;
		expired += rc;
	}
	sp_store_batch_del(b, SP_STORE_CF_EXPIRY, ikey, ilen);
	return expired;
}

/* Remembers an entry just enqueued (its seq is new: never in the table),
 * pushing out the oldest one if the ring is full. Out of memory: not
 * remembered (its ack reads the entry). */
static struct sp_store_recent *recent_add(struct sp_store_batch *b,
					  const uint8_t recipient[SP_KEY_LEN], uint64_t seq,
					  const struct sp_store_mbox_hdr *h, size_t *slot)
{
	struct sp_store *st = b->st;
	uint8_t key[SP_KEYTAB_KEY_LEN];
	struct sp_store_recent *r;
	size_t idx;

	if (!st->recent)
		return NULL;
	idx = st->recent_head;
	st->recent_head = (idx + 1) % st->cfg.recent_max;
	r = &st->recent[idx];
	/* Its window, if still open, cannot be tracked past this slot: its
	 * entries get records of their own first. */
	if (r->win)
		win_close(b, r->win);
	if (r->seq)
		recent_drop(st, r);
	r->win = 0;
	recent_key(key, recipient, seq);
	if (sp_keytab_insert(st->recent_map, key, idx, NULL) != 0) {
		/* -ENOMEM; or (1) a slot of another recipient with the same 24
		 * bytes and seq: then neither is trusted. */
		uint64_t old;

		if (sp_keytab_lookup(st->recent_map, key, &old) == 0) {
			/* Forgotten, so its expiry must not depend on memory. */
			if (st->recent[old].win)
				win_detach(b, &st->recent[old]);
			st->recent[old].seq = 0;
			sp_keytab_remove(st->recent_map, key, old);
		}
		return NULL;
	}
	memcpy(r->recipient, recipient, SP_KEY_LEN);
	r->seq = seq;
	r->expires_ms = h->expires_ms;
	r->body_len = h->body_len;
	r->share_tag = h->share_tag;
	r->has_tag = true;
	*slot = idx;
	return r;
}

/* Forgets every entry (an aborted batch may have enqueued some of them). */
static void recent_reset(struct sp_store *st)
{
	if (!st->recent)
		return;
	sp_keytab_clear(st->recent_map);
	memset(st->recent, 0, st->cfg.recent_max * sizeof(*st->recent));
	st->recent_head = 0;
	/* Windows too: the records of those committed stay, and the sweep
	 * handles them as a restart's (sp_store_batch_window_due). */
	sp_keytab_clear(st->win_map);
	memset(st->wins, 0, st->cfg.recent_max * sizeof(*st->wins));
	st->batch.n_new_wins = 0;
}

/* ---- enqueue ------------------------------------------------------------------------ */

/*
 * Looks the dedup id up. Returns 1 with *seq if it is a live duplicate, 0 if
 * not. A record past its window (not yet dropped by the compaction filter)
 * or a corrupt one is removed here (with its index record, which only
 * stores written before the filter have), so the id can be written again
 * by this enqueue.
 */
static int dedup_lookup(struct sp_store_batch *b, const uint8_t id[SP_STORE_DEDUP_ID_LEN],
			uint64_t *seq)
{
	uint8_t ekey[SP_STORE_EXPIRY_DEDUP_KEY_LEN];
	uint64_t old_seq = 0, old_exp = 0;
	char *val, *ival;
	size_t vlen, ilen;
	int rc;

	rc = sp_store_batch_get(b, SP_STORE_CF_DEDUP, id, SP_STORE_DEDUP_ID_LEN, &val, &vlen);
	if (rc < 0 || !val)
		return rc;
	rc = sp_store_dedup_decode((const uint8_t *)val, vlen, &old_seq, &old_exp);
	rocksdb_free(val);
	if (rc == 0 && old_exp > b->now_ms) {
		*seq = old_seq;
		return 1;
	}
	if (rc < 0) {
		b->st->wstats.corrupt++;
	} else {
		sp_store_expiry_dedup_key(ekey, old_exp, id);
		rc = sp_store_batch_get(b, SP_STORE_CF_EXPIRY, ekey, sizeof(ekey), &ival, &ilen);
		if (rc < 0)
			return rc;
		if (ival) {
			rocksdb_free(ival);
			sp_store_batch_sdel(b, SP_STORE_CF_EXPIRY, ekey, sizeof(ekey));
		}
	}
	sp_store_batch_del(b, SP_STORE_CF_DEDUP, id, SP_STORE_DEDUP_ID_LEN);
	return 0;
}

int sp_store_enqueue(struct sp_store_batch *b, const struct sp_store_envelope *env,
		     uint64_t *seq_out)
{
	uint8_t id[SP_STORE_DEDUP_ID_LEN];
	uint8_t mkey[SP_STORE_MAILBOX_KEY_LEN], ekey[SP_STORE_EXPIRY_MAILBOX_KEY_LEN];
	uint8_t dval[SP_STORE_DEDUP_VALUE_LEN];
	uint8_t hdr[SP_STORE_MAILBOX_HDR_LEN];
	struct sp_store *st;
	struct sp_store_mbox_hdr h;
	struct sp_store_mslot *sl;
	struct sp_store_meta m;
	uint64_t seq = 0, dup_seq = 0;
	uint8_t skey[SP_KEY_LEN];
	struct sp_store_recent *r;
	size_t slot = 0;
	uint32_t tag;
	int rc;

	*seq_out = 0;
	rc = sp_store_batch_check(b);
	if (rc < 0)
		return rc;
	if (!env || !env->recipient || !env->sender || (!env->body && env->body_len))
		return -EINVAL;
	if (env->body_len > SP_BODY_MAX)
		return -EMSGSIZE;
	st = b->st;

	if (env->client_id) {
		sp_store_dedup_id(id, st->dedup_key, env->sender, env->recipient, env->client_id);
		rc = dedup_lookup(b, id, &dup_seq);
		if (rc < 0)
			goto out;
		if (rc == 1) {
			st->wstats.duplicates++;
			*seq_out = dup_seq;
			rc = SP_STORE_DUPLICATE;
			goto out;
		}
	}

	rc = load_meta_slot(b, env->recipient, &sl);
	if (rc < 0)
		goto out;
	m = sl->m;
	if (m.count + 1 > st->cfg.quota_count || m.bytes + env->body_len > st->cfg.quota_bytes) {
		st->wstats.quota_refused++;
		rc = -EDQUOT;
		goto out;
	}
	rc = share_load(b, env->recipient, m.count);
	if (rc < 0)
		goto out;
	tag = share_tag(st, env->sender, env->recipient);
	share_key(skey, env->recipient, tag);
	if (share_refuses(st, share_find(st, skey), env->body_len)) {
		st->wstats.share_refused++;
		rc = -EXFULL;
		goto out;
	}
	if (space_refuses(b, env->body_len)) {
		st->wstats.space_refused++;
		rc = -ENOSPC;
		goto out;
	}
	if (m.next_seq == UINT64_MAX) {
		rc = -EOVERFLOW; /* 2^64 sequences: not reachable in practice */
		goto out;
	}
	seq = m.next_seq++;
	if (m.next_seq > st->seq_hwm)
		st->seq_hwm = m.next_seq;
	/* 2^32 seqs handed out from one floor: a new epoch, or the next open's
	 * floor could be at or below seqs a device without a record had. */
	if (st->seq_hwm >= sp_store_seq_floor(st->epoch + 1)) {
		rc = sp_store_bump_epoch(st);
		if (rc < 0)
			goto out;
	}
	m.count++;
	m.bytes += env->body_len;

	h.body_len = (uint32_t)env->body_len;
	h.share_tag = tag;
	h.accepted_ms = b->now_ms;
	h.expires_ms = sp_store_add_sat(b->now_ms, env->ttl_ms ? env->ttl_ms : st->cfg.ttl_ms);
	sp_store_mbox_hdr_encode(hdr, &h);
	sp_store_mailbox_key(mkey, env->recipient, seq);
	{
		/* Header and body as two slices, copied straight from the
		 * caller's buffer into the batch (and the overlay). */
		const char *vp[2] = { (const char *)hdr, env->body_len ? (const char *)env->body : "" };
		const size_t vl[2] = { sizeof(hdr), env->body_len };

		batch_putv(b, SP_STORE_CF_MAILBOX, mkey, sizeof(mkey), 2, vp, vl);
	}
	/* Remembered: its expiry is in its window's record; else one of its own. */
	r = recent_add(b, env->recipient, seq, &h, &slot);
	if (!r || !win_add(b, r, slot)) {
		sp_store_expiry_mailbox_key(ekey, h.expires_ms, env->recipient, seq);
		batch_put(b, SP_STORE_CF_EXPIRY, ekey, sizeof(ekey), NULL, 0);
	}
	sl->m = m;
	sl->dirty = true;
	if (env->client_id) {
		uint64_t dexp = sp_store_add_sat(b->now_ms, st->cfg.dedup_window_ms);

		/* No expiry index record: the compaction filter drops the
		 * record once dexp has passed (sp_store.c dedup_filter). */
		sp_store_dedup_encode(dval, seq, dexp);
		batch_put(b, SP_STORE_CF_DEDUP, id, sizeof(id), dval, sizeof(dval));
	}
	share_add(st, skey, env->body_len);
	b->assigned++;
	b->add_bytes += env->body_len;
	st->written_since_check += 2 * (env->body_len + 160);
	st->wstats.enqueued++;
	*seq_out = seq;
	rc = 0;
out:
	return rc;
}

/* ---- ack (the sweep removes entries the same way) ------------------------- */

int sp_store_batch_remove_entry(struct sp_store_batch *b, const uint8_t recipient[SP_KEY_LEN],
				uint64_t seq, const char *val, size_t vlen, uint64_t *body_len_out)
{
	uint8_t mkey[SP_STORE_MAILBOX_KEY_LEN], ekey[SP_STORE_EXPIRY_MAILBOX_KEY_LEN];
	struct sp_store_mbox_hdr h;
	struct sp_store_mslot *sl;
	struct sp_store_recent *r;
	uint64_t body_len;
	char *ival = NULL;
	size_t ilen;
	bool windowed;
	int rc;

	/* First the only step that can fail for lack of memory: then the
	 * deletes and the counters go into the batch together or not at all. */
	rc = load_meta_slot(b, recipient, &sl);
	if (rc < 0)
		return rc;
	r = recent_find(b->st, recipient, seq);
	windowed = r && r->win;
	if (windowed)
		win_unref(b, r);
	if (r)
		recent_drop(b->st, r);
	if (sp_store_mbox_decode((const uint8_t *)val, vlen, &h) == 0) {
		body_len = h.body_len;
		if (h.has_tag) {
			uint8_t skey[SP_KEY_LEN];

			share_key(skey, recipient, h.share_tag);
			share_sub(b->st, skey, body_len);
		}
		sp_store_expiry_mailbox_key(ekey, h.expires_ms, recipient, seq);
		rc = windowed ? 0 : sp_store_batch_get(b, SP_STORE_CF_EXPIRY, ekey, sizeof(ekey),
							&ival, &ilen);
		if (rc < 0)
			return rc;
		if (!windowed && ival) {
			rocksdb_free(ival);
			sp_store_batch_sdel(b, SP_STORE_CF_EXPIRY, ekey, sizeof(ekey));
		}
	} else {
		b->st->wstats.corrupt++;
		body_len = sp_store_mbox_body_guess(vlen);
	}
	sp_store_mailbox_key(mkey, recipient, seq);
	sp_store_batch_sdel(b, SP_STORE_CF_MAILBOX, mkey, sizeof(mkey));
	meta_remove_one(sl, body_len);
	*body_len_out = body_len;
	return 0;
}

int sp_store_ack(struct sp_store_batch *b, const uint8_t recipient[SP_KEY_LEN], uint64_t seq)
{
	uint8_t mkey[SP_STORE_MAILBOX_KEY_LEN];
	struct sp_store_recent *r;
	uint64_t body_len = 0;
	char *val;
	size_t vlen;
	int rc;

	rc = sp_store_batch_check(b);
	if (rc < 0)
		return rc;
	if (!recipient)
		return -EINVAL;
	sp_store_mailbox_key(mkey, recipient, seq);
	r = recent_find(b->st, recipient, seq);
	if (r) {
		/* Known present, with its expiry in its window's record or a
		 * record of its own: no read (the deletes stay SingleDeletes
		 * of keys proven present). */
		struct sp_store_mslot *sl;
		uint8_t ekey[SP_STORE_EXPIRY_MAILBOX_KEY_LEN];

		rc = load_meta_slot(b, recipient, &sl);
		if (rc < 0)
			return rc;
		if (r->has_tag) {
			uint8_t skey[SP_KEY_LEN];

			share_key(skey, recipient, r->share_tag);
			share_sub(b->st, skey, r->body_len);
		}
		if (r->win) {
			win_unref(b, r);        /* no record of its own */
		} else {
			sp_store_expiry_mailbox_key(ekey, r->expires_ms, recipient, seq);
			sp_store_batch_sdel(b, SP_STORE_CF_EXPIRY, ekey, sizeof(ekey));
		}
		sp_store_batch_sdel(b, SP_STORE_CF_MAILBOX, mkey, sizeof(mkey));
		meta_remove_one(sl, r->body_len);
		b->st->wstats.acked++;
		b->st->wstats.acked_recent++;
		b->st->wstats.acked_bytes += r->body_len;
		recent_drop(b->st, r);
		return 0;
	}
	rc = sp_store_batch_get(b, SP_STORE_CF_MAILBOX, mkey, sizeof(mkey), &val, &vlen);
	if (rc < 0)
		return rc;
	if (!val) {
		b->st->wstats.ack_unknown++;
		return -ENOENT;
	}
	rc = sp_store_batch_remove_entry(b, recipient, seq, val, vlen, &body_len);
	rocksdb_free(val);
	if (rc == 0) {
		b->st->wstats.acked++;
		b->st->wstats.acked_bytes += body_len;
	}
	return rc;
}

