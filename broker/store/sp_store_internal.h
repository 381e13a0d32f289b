/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store_internal.h: what the files of broker/store/ share, for them only.
 *
 *   sp_store.c         open, data-directory lock, dedup key file, epoch,
 *                      errors, close, operations (stats, properties, flush)
 *   sp_store_batch.c   the write batch: enqueue, ack, commit, abort, the
 *                      per-device counters of a batch, WAL sync
 *   sp_store_expire.c  the incremental expiry sweep
 *   sp_store_read.c    reads of committed data (mailbox ranges, counters)
 *   sp_store_codec.c   keys and values as bytes (sp_store_codec.h)
 *   sp_store_admin.c   what the admin socket asks: a mailbox's oldest entry,
 *                      purging one, the largest ones
 *
 * Each group of fields below is written by the one file named above it;
 * the others only read it.
 */
#ifndef SP_STORE_INTERNAL_H
#define SP_STORE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rocksdb/c.h>
#include <sodium.h>

#include "sp_keytab.h"
#include "sp_store.h"
#include "sp_store_codec.h"

enum { SP_STORE_ERRMSG_LEN = 256 };

/* A device's counters while a batch is open: written to the WriteBatch once,
 * at commit, however many envelopes and acks of that device the batch holds
 * (an Ack frame carries up to 64 seqs: one meta write, not 64). */
struct sp_store_mslot {
	uint8_t key[SP_KEY_LEN];
	struct sp_store_meta m;
	struct sp_store_meta m0;        /* as committed when the batch first touched it */
	bool existed;                   /* the device had a record then */
	bool dirty;                     /* changed by this batch: written at commit */
	uint64_t gen;                   /* the batch that last touched it (its floor check) */
};

/* One (recipient, sender tag) pair's stored envelopes (sp_store.h "Shares"). */
struct sp_store_share {
	uint8_t key[SP_KEY_LEN];        /* recipient[0..29) | tag (3 bytes, big-endian) */
	uint64_t count, bytes;
};

/* One key the open batch wrote (sp_store_overlay.c). */
struct sp_store_ovl_ent {
	uint64_t hash;
	uint32_t koff, voff, vlen;      /* into the arena */
	uint32_t slot;                  /* its place in idx */
	uint8_t cf, klen;
	bool deleted;                   /* a (Single)Delete, else a Put of voff/vlen */
};

/* Overlay: the keys the open batch wrote and what it wrote, for the batch's
 * own reads (the WriteBatch itself cannot be read). */
struct sp_store_ovl {
	uint8_t hash_key[crypto_shorthash_KEYBYTES];
	uint32_t *idx;                  /* slots (a power of two) entry numbers + 1 */
	size_t slots;
	struct sp_store_ovl_ent *ents;  /* n of them, in the order first written */
	size_t n, ents_cap;             /* ents_cap in bytes */
	uint8_t *arena;
	size_t alen, acap;
};

/* The one batch of a store; every field is written by sp_store_batch.c. */
struct sp_store_batch {
	struct sp_store *st;
	rocksdb_writebatch_t *wb;
	struct sp_store_ovl ovl;        /* what wb holds, by key */
	bool ovl_failed;                /* out of memory in ovl: commit refuses */
	uint64_t now_ms;
	size_t ops;
	size_t assigned;                /* sequences handed out by this batch */
	uint64_t add_bytes;             /* body bytes enqueued by this batch */
	bool open;
	uint64_t gen;                   /* batches begun since open */
	/* Windows this batch made (1 + index into st->wins), in order; the
	 * last one takes the batch's next entries until it is full. */
	uint32_t *new_wins;
	size_t n_new_wins, new_wins_cap;  /* cap in bytes */
	/* The devices this batch and the batches before it touched (the
	 * counters cache, sp_store_batch.c load_meta_slot): slots[0..count) in
	 * the order first touched, found through map (device key -> index into
	 * slots). */
	struct sp_keytab *map;
	struct sp_store_mslot *slots;
	size_t count;
	size_t slots_cap;               /* bytes allocated for slots */
};

/* A recent entry (sp_store.h "Recent entries"): one slot of the ring. */
struct sp_store_recent {
	uint8_t recipient[SP_KEY_LEN];
	uint64_t seq;                   /* 0: the slot is free */
	uint64_t expires_ms;
	uint32_t body_len, share_tag;
	bool has_tag;
	/* 1 + the ring index of its window's first slot: its expiry is in
	 * that window's record, not a record of its own (kept after the
	 * entry is removed, until the slot is reused). 0: a record of its own. */
	uint32_t win;
};

/* A window (sp_store.h "Expiry windows"): the entries of one batch, up to
 * SP_STORE_WINDOW_MAX, whose expiry index is one record; kept at the ring
 * index of its first slot. */
struct sp_store_win {
	uint8_t key[SP_STORE_EXPIRY_MAILBOX_KEY_LEN]; /* once written */
	uint64_t due_ms;                /* the batch's time + window_ms */
	uint8_t first[SP_KEY_LEN];      /* its first entry's recipient and seq */
	uint64_t first_seq;
	uint32_t span;                  /* ring slots from the first to the last member */
	uint32_t n, live;               /* members; of them still stored */
	bool open;                      /* live, tracked here */
	bool pending;                   /* made by the open batch: its record not yet written */
};

/* The share tag cache (sp_store_batch.c share_tag): a direct-mapped table
 * of the last (sender, recipient) pairs' tags. The tag is a BLAKE2b of the
 * pair keyed with the dedup key, fixed for the store's life, so an entry
 * never goes stale; a miss computes it (about 2,000 instructions). */
enum { SP_STORE_TAG_CACHE = 1024 };     /* slots, a power of two: ~72 KiB */

struct sp_store_tagc {
	uint8_t sender[SP_KEY_LEN], recipient[SP_KEY_LEN];
	uint32_t tag;
	bool valid;
};

/* Write-path counters (sp_store_batch.c), merged by sp_store_get_stats. */
struct sp_store_wstats {
	uint64_t enqueued, duplicates, quota_refused, space_refused;
	uint64_t share_refused, share_untracked;
	uint64_t share_loads, share_loaded_entries;
	uint64_t acked, ack_unknown, acked_bytes;
	uint64_t acked_recent;          /* of the acked, written without a read */
	uint64_t meta_cached;           /* counters found in the cache, not read */
	uint64_t corrupt;
	uint64_t commits, commit_failures, syncs;
};

/* Sweep counters (sp_store_expire.c). */
struct sp_store_xstats {
	uint64_t expired, dedup_expired, expired_bytes;
	uint64_t corrupt;
	uint64_t sweep_steps, sweep_resumed, sweep_budget_stops;
};

struct sp_store {
	/* sp_store.c */
	rocksdb_t *db;
	rocksdb_options_t *db_opts;
	rocksdb_options_t *cf_opts;
	rocksdb_options_t *cf_own[SP_STORE_CF_COUNT]; /* per family, from cf_opts; NULL: cf_opts */
	rocksdb_compactionfilter_t *dedup_filter;      /* on the dedup family */
	/* The latest batch time (atomic: RocksDB's compaction threads read it):
	 * dedup records whose window ended by then are dropped at compaction. */
	uint64_t filter_now_ms;
	uint64_t dedup_filtered;        /* atomic: dropped so (sp_store_expire.c counts its own) */
	rocksdb_block_based_table_options_t *bbto;
	rocksdb_column_family_handle_t *cf[SP_STORE_CF_COUNT];
	rocksdb_writeoptions_t *wo_sync;
	rocksdb_writeoptions_t *wo_nosync;
	rocksdb_readoptions_t *ro;
	rocksdb_flushoptions_t *fo;
	rocksdb_flushoptions_t *fo_nowait;  /* flushes scheduled, not waited for */
	struct sp_store_config cfg;
	char *dir;
	int lock_fd;
	uint8_t *dedup_key;             /* sodium_malloc'd, crypto_generichash_KEYBYTES */
	uint64_t epoch;
	bool poisoned;                  /* writes refused until reopened */
	bool ballast;                   /* DIR/ballast exists */
	char err[SP_STORE_ERRMSG_LEN];

	/* sp_store_batch.c */
	struct sp_store_batch batch;
	bool unsynced;                  /* commits since the last WAL sync */
	/* Committed totals over all mailboxes (the "totals" record). */
	uint64_t tot_entries, tot_bytes;
	/* Above every seq handed out since open: the first seq of a device
	 * without a record (its record is deleted when its mailbox empties,
	 * so its old seqs are below this, or below the epoch's floor). */
	uint64_t seq_hwm;
	uint64_t wal_since_flush;       /* WAL bytes written since the last flush of all */
	uint64_t wal_flushes;
	/* Free space: read every SP_STORE_SPACE_CHECK_MS (statvfs), minus
	 * what was written since (estimated). */
	struct sp_keytab *share_map;    /* share key -> index into shares */
	/* Mailboxes whose shares are counted: rebuilt from their stored
	 * share tags on first touch after open (or after a reset). */
	struct sp_keytab *share_loaded;
	struct sp_store_share *shares;
	size_t nshares;
	size_t shares_cap;              /* bytes allocated */
	uint64_t space_checked_ms;
	uint64_t free_bytes;
	uint64_t written_since_check;
	bool space_checked;
	uint64_t unsynced_since_ms;     /* SP_STORE_SYNC_BATCH: time of the first of them */
	/* Recent entries: a ring of cfg.recent_max slots, oldest overwritten
	 * first, found through recent_map (recipient[0..24) | seq -> slot). */
	struct sp_store_tagc *tagc;     /* SP_STORE_TAG_CACHE slots */
	uint8_t tagc_key[crypto_shorthash_KEYBYTES];    /* its slot hash (peers choose keys) */
	struct sp_keytab *recent_map;
	struct sp_store_recent *recent;
	size_t recent_head;
	/* Expiry windows: wins[i] is the window whose first slot is recent[i];
	 * win_map: its first entry (as recent_map's key) -> i, while its
	 * record is written and it is open. */
	struct sp_store_win *wins;
	struct sp_keytab *win_map;
	struct sp_store_wstats wstats;

	/* sp_store_expire.c */
	struct sp_store_xstats xstats;
	/* The first index record the last step did not reach (length 0: none,
	 * the next step starts at the first record). */
	uint8_t sweep_cursor[SP_STORE_EXPIRY_KEY_MAX];
	uint8_t sweep_cursor_len;
	/* Until a pass catches up after open: window records window_ms ahead
	 * are due too (those of the last process, "Expiry windows"). */
	bool sweep_windows_ahead;

	/* sp_store_scrub.c */
	pthread_t scrub_thread;
	bool scrub_running;
	int scrub_result;               /* atomic: 0 running, 1 done, -1 failed */
	bool scrub_armed;               /* something was removed: a scrub is due */
	uint64_t scrub_due_ms;
	uint64_t scrub_removed;         /* removals counted when the last scrub began */
	uint64_t scrubs, scrub_failures;

	/* sp_store_syncer.c: the WAL sync thread. sync_thread_on, sync_efd
	 * and commit_ticket are the writer's; the rest under sync_mu. */
	bool sync_thread_on;
	int sync_efd;                   /* posted after each sync the thread ends */
	uint64_t commit_ticket;         /* what the last commit waits for (0: nothing) */
	pthread_t sync_thread;
	pthread_mutex_t sync_mu;
	pthread_cond_t sync_cv;
	uint64_t sync_asked;            /* the latest ticket handed out */
	uint64_t sync_started;          /* the latest ticket a sync began for */
	uint64_t sync_done;             /* every ticket up to this one is synced */
	uint64_t sync_count;            /* atomic: syncs the thread ran (stats read it) */
	bool sync_failed, sync_stop;
	char sync_errmsg[SP_STORE_ERRMSG_LEN];

	/* sp_store_admin.c */
	uint64_t purged, purged_bytes;

	/* sp_store_prekey.c: one upload or take at a time, so that a take's
	 * read-then-delete is atomic whichever thread calls it (today only
	 * the shard's; the lock costs nothing uncontended). */
	pthread_mutex_t prekey_lock;

	/* sp_store_read.c */
	uint8_t *rbuf;                  /* sp_store_read's body buffer */
	size_t rbuf_cap;
	uint64_t read_corrupt;
};

/* ---- sp_store.c ----------------------------------------------------------- */

/* Sets the message sp_store_errmsg returns (never with stored bytes in it). */
__attribute__((format(printf, 2, 3))) void sp_store_set_err(struct sp_store *st,
							    const char *fmt, ...);

/* Records a RocksDB failure of operation `what` (only the status class is
 * kept), frees rerr (RocksDB's allocation, consumed), returns -errno. */
int sp_store_rocks_fail(struct sp_store *st, const char *what, char *rerr);

/* After sequences handed out may have been lost, moves every device's floor
 * past them (one synced write of the epoch); if that fails the store is
 * poisoned and -EIO returned. */
int sp_store_bump_epoch(struct sp_store *st);

/* Refuses every later write, sync and flush with -EIO (see sp_store.h). */
void sp_store_poison(struct sp_store *st);

/* sp_store.c: blob-file options of the mailbox family (no-op when
 * cfg.blob_min_bytes is 0), and the GC age cutoff raised to every blob
 * file (all) or set back, at run time (the scrub thread may call it). */
void sp_store_blob_options(struct sp_store *st, rocksdb_options_t *o);
int sp_store_blob_gc_cutoff(struct sp_store *st, bool all);

/* sp_store_syncer.c: hands out the next ticket and wakes the sync thread
 * (which must be running). */
uint64_t sp_store_syncer_ask(struct sp_store *st);

/* Free bytes (f_bavail * f_frsize) of DIR's file system: 0 or -errno. */
int sp_store_free_space(struct sp_store *st, uint64_t *free_bytes);

/* Allocates DIR/ballast (cfg.ballast_bytes) if it is missing; 0 or -errno
 * (the store goes on without it). */
int sp_store_ballast_make(struct sp_store *st);

/* ---- sp_store_batch.c ----------------------------------------------------- */

/* The store's batch: created with the store (-ENOMEM, -EIO), destroyed with
 * it. */
int sp_store_batch_init(struct sp_store *st);
void sp_store_batch_fini(struct sp_store *st);

/* At open: the committed totals from the "totals" record; a store
 * written before that record existed gets it from one pass over the
 * per-device records (then written, so later opens do not scan). */
int sp_store_totals_load(struct sp_store *st);

/* (sender, mailbox) pairs the share table counts now. */
size_t sp_store_share_pairs(const struct sp_store *st);

/* 0 if b is open and the store accepts writes; -EINVAL, -EIO. */
int sp_store_batch_check(const struct sp_store_batch *b);

/* Value of key in cf as seen through the batch (batch overlays DB). *val is
 * NULL if absent, else RocksDB's allocation (free with rocksdb_free). key
 * borrowed. */
int sp_store_batch_get(struct sp_store_batch *b, enum sp_store_cf cf, const uint8_t *key,
		       size_t klen, char **val, size_t *vlen);

/* SingleDelete of key (copied into the batch). Only for keys written exactly
 * once and proven present (mailbox, expiry, dedup): see sp_store_batch.c. */
void sp_store_batch_sdel(struct sp_store_batch *b, enum sp_store_cf cf, const uint8_t *key,
			 size_t klen);

/* Delete of key (copied into the batch): for dedup ids, which the
 * compaction filter may drop (a SingleDelete must meet its Put). */
void sp_store_batch_del(struct sp_store_batch *b, enum sp_store_cf cf, const uint8_t *key,
			size_t klen);

/*
 * Removes recipient's entry seq, whose current value the caller fetched (val,
 * vlen; borrowed): the entry, its expiry index record if the value is
 * readable (a corrupt value's record cannot be located: the sweep drops it
 * when it comes due), and one entry from the device's counters. *body_len =
 * the body bytes removed (a guess for a corrupt value).
 */
int sp_store_batch_remove_entry(struct sp_store_batch *b, const uint8_t recipient[SP_KEY_LEN],
				uint64_t seq, const char *val, size_t vlen, uint64_t *body_len);

/*
 * The sweep met window record ikey (ilen bytes; ref its decoded key; val,
 * vlen its value as the batch sees it, all borrowed): a window this store
 * tracks gives each of its stored entries a record of its own; one it
 * does not (written before a restart or an aborted batch) removes its
 * entries that expired and gives the others records of their own. The
 * window record is deleted either way. Returns the entries expired (their
 * body bytes in *bytes; *items: the entries it looked at), or -errno.
 */
int sp_store_batch_window_due(struct sp_store_batch *b, const uint8_t *ikey, size_t ilen,
			      const struct sp_store_expiry_ref *ref, const char *val, size_t vlen,
			      uint64_t *bytes, size_t *items);

/* ---- sp_store_overlay.c --------------------------------------------------- */

/* 0, -ENOMEM. */
int sp_store_ovl_init(struct sp_store_ovl *o);
void sp_store_ovl_fini(struct sp_store_ovl *o);

/* (cf, key) now holds the concatenation of the nv slices vp/vl (nv 0: an
 * empty value), or is deleted. Key and value are copied; all borrowed.
 * 0, -EINVAL (key over 64 bytes), -ENOMEM (the overlay is unchanged). */
int sp_store_ovl_put(struct sp_store_ovl *o, enum sp_store_cf cf, const uint8_t *key,
		     size_t klen, size_t nv, const char *const *vp, const size_t *vl);
int sp_store_ovl_del(struct sp_store_ovl *o, enum sp_store_cf cf, const uint8_t *key,
		     size_t klen);

/* What the batch wrote last for (cf, key), or NULL if it did not touch it.
 * Valid until the next put, del or clear. */
const struct sp_store_ovl_ent *sp_store_ovl_find(const struct sp_store_ovl *o,
						 enum sp_store_cf cf, const uint8_t *key,
						 size_t klen);

/* Forgets every key (O(keys written)); keeps the memory. */
void sp_store_ovl_clear(struct sp_store_ovl *o);

/* ---- sp_store_expire.c ---------------------------------------------------- */

/* Forgets the sweep's cursor (a batch whose step left it was discarded). */
void sp_store_expire_reset(struct sp_store *st);

/* ---- sp_store_scrub.c ----------------------------------------------------- */

/* At a tick: reaps a finished scrub; starts one scrub_interval_ms after the
 * first removal since the last (removed: entries and dedup records removed
 * so far). 1 if one started, 0, or -errno. */
int sp_store_scrub_tick(struct sp_store *st, uint64_t now_ms, uint64_t removed);

/* At close: stops a running scrub (its compaction returns early), joins. */
void sp_store_scrub_stop(struct sp_store *st);

/* ---- sp_store_read.c ------------------------------------------------------ */

/* Recomputes a device's counters from its committed mailbox range (when its
 * meta value is corrupt). recipient borrowed. */
int sp_store_rebuild_meta(struct sp_store *st, const uint8_t recipient[SP_KEY_LEN],
			  struct sp_store_meta *m);

/* Frees the read buffer (at close). */
void sp_store_read_fini(struct sp_store *st);

/* ---- sp_store_log.c -------------------------------------------------------- */

/*
 * Adds the records of appending leaf (len bytes, borrowed; account as in
 * sp_store_log_append) to wb, a batch
 * the caller writes (synced) with its own records, e.g. the accepted list
 * itself, so the list and its log entry are durable together. *index = the
 * leaf's position, valid once wb is written. Nothing is written here; at
 * most one append per batch. 0, -EMSGSIZE, -EBADMSG, -EIO.
 */
int sp_store_log_stage(struct sp_store *st, rocksdb_writebatch_t *wb,
		       const uint8_t *account, const uint8_t *leaf, size_t len, uint64_t *index);

#endif
