/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store.h: durable mailboxes in an embedded RocksDB.
 *
 * The broker keeps, per recipient device, an ordered backlog of sealed
 * envelopes (ciphertext only) until the device acknowledges them. This module
 * is the whole on-disk side of that: no sockets, no protocol, time passed in.
 * The files of broker/store/ split it by job (sp_store_internal.h); this
 * header is the whole interface.
 *
 * ---------------------------------------------------------------------------
 * Files under the data directory DIR
 *   DIR/store.lock   flock(LOCK_EX) held while open: a second store on the same
 *                    DIR (another process, or this one) fails with -EBUSY.
 *   DIR/dedup.key    32 random bytes, mode 0600, created on first open: the
 *                    BLAKE2b key of the dedup index (below).
 *   DIR/db/          the RocksDB database.
 *
 * Key layout (all integers big-endian, so byte order == numeric order)
 *   column family "default"  store-global records
 *     "format"                   -> u8 format version (2; a store of format 1
 *                                   is upgraded at open: its values stay
 *                                   readable, and a build that knows only
 *                                   format 1 refuses it rather than treating
 *                                   v2 mailbox values as corrupt)
 *     "epoch"                    -> u64 open counter (see "Sequences")
 *     "acl/" | account[32]      -> u8 version=1 | the account's signed device
 *                                   list as published (docs/PROTOCOL.md 11.1)
 *     "acd/" | device[32]       -> account[32]: the list the device is on
 *                                   (the last list accepted that names it)
 *     "totals"                   -> a meta v1 value: next_seq 0, count and bytes
 *                                   over all mailboxes (written by every commit
 *                                   that changes them; counted once from the
 *                                   meta records if absent, for stores written
 *                                   before it existed)
 *   column family "mailbox"  one entry per stored envelope
 *     recipient[32] | seq u64    -> mailbox value (below)
 *     One device's backlog is one contiguous range ordered by seq: a read is
 *     one Seek plus Next()s; keys of two devices never interleave.
 *   column family "meta"     per-device counters, O(1) quotas
 *     recipient[32]              -> meta value (below); deleted when the
 *                                   device's mailbox is empty
 *   column family "expiry"   ordered expiry index, swept by sp_store_expire
 *     expires_ms u64 | 'm' | recipient[32] | seq u64    (49 bytes, empty value)
 *     expires_ms u64 | 'w' | recipient[32] | seq u64    (49 bytes, window value:
 *                                the entries of one window, "Expiry windows"
 *                                below; keyed by their earliest expiry and
 *                                the first of them; format 3)
 *     expires_ms u64 | 'd' | dedup_id[32]               (41 bytes, empty value;
 *                                written by stores before the dedup compaction
 *                                filter only: still swept, no longer written)
 *   column family "dedup"    idempotent retries (Send with a client_id)
 *     dedup_id[32]               -> dedup value (below); dropped by a
 *                                   compaction filter once its expires_ms
 *                                   is at or before the latest batch time
 *     dedup_id = BLAKE2b-256 keyed with DIR/dedup.key over
 *                sender[32] | recipient[32] | client_id u64
 *
 * Values: a fixed binary layout with a version byte, not protobuf. Why: the
 * body must be handed to the broker without being parsed or copied by a
 * protobuf decoder (on disk as on the wire, docs/PROTOCOL.md, a body travels
 * beside its header, never inside it); the three fixed-width fields need no
 * schema evolution beyond a version byte; and a fixed header makes a
 * truncated value detectable exactly (the declared body length must match
 * the value length). The encoders and decoders: sp_store_codec.h.
 *   mailbox v1: u8 version=1 | u8[3] zero | u32 body_len | u64 accepted_ms |
 *               u64 expires_ms | body[body_len]               (24-byte header)
 *               (accepted_ms is written in whole seconds: SP_STORE_ACCEPTED_GRAIN_MS)
 *   mailbox v2: the same with version=2 and u8[3] = the share tag: the
 *               first 3 bytes of BLAKE2b keyed with DIR/dedup.key over
 *               "share" | sender[32] | recipient[32] (what is written now;
 *               v1 values are read as envelopes of no known sender)
 *   meta v1:    u8 version=1 | u8[7] zero | u64 next_seq | u64 count |
 *               u64 bytes                                    (32 bytes)
 *   dedup v1:   u8 version=1 | u8[7] zero | u64 seq | u64 expires_ms (24 bytes)
 *   window v1:  u8 version=1 | u8[3] zero | u32 n (1..64) | n x (recipient[32] |
 *               u64 seq | u64 expires_ms)                    (8 + 48 n bytes)
 * A value of another version, with non-zero reserved bytes, or of the wrong
 * length is "corrupt": reads skip and count it (never crash); a corrupt meta
 * value is rebuilt from the device's mailbox range (and the epoch advanced,
 * since the range cannot show seqs that were already acked).
 *
 * What is stored about people (docs/SECURITY.md): the recipient key in the clear
 * (it is the address; unavoidable while the envelope waits), the body
 * (ciphertext), the accepted and expiry times, and per-device counters. The
 * sender's key is NOT stored in the clear anywhere. Trade-off of the dedup
 * index: it holds a keyed hash of (sender, recipient, client_id) for the
 * dedup window (default 24 h) plus the seq it mapped to. Without dedup.key
 * the hash links nothing; with dedup.key (it sits in the same DIR, so a full
 * disk copy has it) someone who already guesses a sender, a recipient and a
 * client_id (often a small counter) can confirm "this sender sent to this
 * recipient within the window", for envelopes sent with client_id != 0.
 * Deleting dedup.key (then every client_id is forgotten: a retry within the
 * window may store a second copy) or shortening the window limits that. The
 * recipient is in the hash, not in the value, so the dedup value alone
 * reveals no recipient; a client_id reused for another recipient is a new
 * envelope, not a retry. The meta record of a device is deleted when its
 * mailbox empties: the store keeps no list of devices that ever had mail.
 *
 * Sequences: per recipient, strictly increasing, never reused; 0 is never
 * assigned (it is protobuf's "unset"). A device without a meta record (it
 * never had mail, or its mailbox emptied and the record went) starts above
 * every seq handed out since open (seq_hwm, in memory) and at least at the
 * epoch's floor; when seq_hwm reaches the next epoch's floor the epoch is
 * bumped (a synced write), so the next open's floor is above it too. A seq
 * returned by sp_store_enqueue is never returned again for that recipient
 * even if its batch is never committed (crash, failed commit, abort), so the
 * broker may deliver it live before the commit: every open increments the
 * durable "epoch" (a synced write) and every device's next seq is at least
 * epoch << 32; an abort bumps the epoch the same way (if that write fails,
 * the store refuses all writes with -EIO until reopened). A failed commit
 * (disk full, I/O error) makes the store refuse all writes, syncs and
 * flushes with -EIO until reopened, without another write: RocksDB 7.8
 * aborts the process on the next use of a file writer that failed (an
 * assertion in WritableFileWriter), and refuses writes after such an error
 * anyway; the reopen's epoch covers the lost sequences. (For the same
 * reason RocksDB's info LOG is limited to FATAL lines.) Consequence: after a
 * restart seqs jump to the next multiple of 2^32 (still increasing; gaps
 * carry no meaning).
 *
 * Space: the store refuses new envelopes (-ENOSPC from sp_store_enqueue,
 * nothing added) before the disk is full, so that acks, the sweep (they
 * write small deletion markers) and a restart keep working:
 *   - max_total_bytes: body bytes over all mailboxes (the "totals" record);
 *   - min_free_bytes: free space (statvfs f_bavail) on DIR's file system,
 *     read at most every SP_STORE_SPACE_CHECK_MS by sp_store_batch_begin;
 *     between two reads every enqueue counts twice its size plus key
 *     overhead against it (WAL, then the table file a flush writes);
 *   - ballast_bytes: DIR/ballast, a file of that size allocated while free
 *     space allows it; an open that finds less free space than its size
 *     deletes it first, so RocksDB can start (new log, MANIFEST, epoch) on a
 *     disk something else filled. It is made again once free space exceeds
 *     min_free_bytes + ballast_bytes.
 *
 * Shares: one sender may hold at most share_pct % of a mailbox's count and
 * bytes quotas (-EXFULL from sp_store_enqueue beyond), so a sender who
 * knows a device's key cannot fill its whole mailbox. Counted in memory per
 * (recipient, share tag) pair with stored mail, incremented by enqueue,
 * decremented when the entry is acked or expires (the tag is in the v2
 * value). Rebuilt from the stored tags: a mailbox's pairs are counted from
 * its stored entries at its first enqueue after open (or after an aborted
 * batch), one range read of that mailbox, so shares survive a restart and
 * a start reads nothing for them. At most share_table_max
 * pairs; beyond that, new pairs go uncounted (share_untracked). The tag
 * has 24 bits: two senders of one mailbox share a counter with odds of
 * about 1 in 16 million per pair (the tag is keyed: a sender cannot aim
 * for another's).
 *
 * Recent entries: the store remembers, in memory, the header (body length,
 * share tag, expiry time) of the last recent_max envelopes it enqueued, until
 * they are removed (acked, expired, purged) or pushed out by newer ones. An
 * ack of one of them is then written without a read: no lookup of the
 * entry, none of its expiry record (both are known present: every removal
 * goes through one function, which forgets the entry, and an aborted batch
 * forgets them all). Other acks read the entry as before. Costs about 80
 * bytes per remembered envelope (the table's slot and the ring's).
 * recent_max also bounds the counters cache: the committed counters of the
 * devices the last batches touched stay in memory (only batches write them),
 * so a batch's first touch of such a device reads nothing (meta_cached in
 * the stats); beyond recent_max devices, and after an abort or a failed
 * commit, all are forgotten and read again. About 100 bytes per device.
 *
 * Expiry windows: an envelope the store remembers (above) has no expiry
 * record of its own at first: the envelopes one batch enqueues, up to 64,
 * share one window record naming each (written in the same batch, so it is
 * as durable as they are). While the window is open the store tracks its
 * members in memory: an ack of one writes nothing to the expiry index, and
 * when the last is acked the window record is deleted, so a quickly acked
 * envelope costs 1/64 of a Put and of a Delete there instead of a Put and a
 * SingleDelete. The window record's key time is window_ms after the batch
 * (or its earliest member's expiry, if sooner): when the sweep meets it,
 * the members that expired are removed and the others get records of
 * their own (the 'm' record), and the window record is deleted, in one
 * batch. So an envelope acked within window_ms leaves nothing in the index,
 * one acked later costs what it did before, and window records are never
 * older than window_ms plus a sweep step. A window also closes early (its
 * members get their own records) when one of them is pushed out of the
 * ring or forgotten. A window record the store does not track (written
 * before a restart, a kill -9, or an aborted batch) is handled the same
 * way when the sweep meets it, from the entries it names; the first sweep
 * pass after an open reaches window_ms ahead for window records, so those
 * of the last process go at once. An entry is always named by a record of
 * its own or by the record of an open window, and never expires later than
 * its time plus one sweep step. Format 3 (a build of format 2
 * would drop window records as foreign and never expire their entries, so
 * it refuses the store); a format 2 store opens unchanged (its 'm' records
 * are read as before) and is marked 3.
 *
 * Deleted data: an ack or the sweep removes an entry from what reads see at
 * once, but its bytes stay in RocksDB's files (the write-ahead log, table
 * files, and deletion markers holding the recipient key) until the log is
 * obsolete and compaction drops them. Bounds: the write-ahead log never
 * exceeds max_wal_bytes (RocksDB flushes the column families holding its
 * oldest file); and scrub_interval_ms after the first removal since the
 * last scrub, a scrub (sp_store_scrub.c, a thread of its own) flushes
 * every memtable and compacts every column family to its last level
 * dropping deletion markers; the MANIFEST is rewritten after every flush
 * and compaction (max_manifest_file_size is small), so it names only live
 * table files' boundary keys. With blob files (blob_min_bytes), the
 * scrub's compaction garbage-collects every blob file (its live values
 * are rewritten, the old file is deleted). So data removed at time t is in no file of
 * DIR after t + scrub_interval_ms + the scrub's own duration (about the
 * time to rewrite the live data), if the process keeps running (a scrub
 * cut short by close runs again scrub_interval_ms after the next start's
 * first removal). What the file system does with freed blocks is outside
 * the store: use an encrypted file system.
 *
 * Sync modes (what a committed batch survives once sp_store_batch_commit
 * returned 0; "kill -9" = the broker process dies, the OS keeps running):
 *   SP_STORE_SYNC_ALWAYS  the commit is one WAL write + one fdatasync:
 *                         survives kill -9 and power loss / kernel crash.
 *   SP_STORE_SYNC_BATCH   the commit is one WAL write (write(2) into the page
 *                         cache): survives kill -9 at once. sp_store_tick
 *                         fsyncs the WAL once sync_interval_ms has passed
 *                         since the first unsynced commit: a power loss loses
 *                         at most the commits of the last sync_interval_ms
 *                         (plus however late the caller runs sp_store_tick).
 *   SP_STORE_SYNC_NEVER   WAL write, never fsynced by this module (RocksDB
 *                         still syncs at memtable flush and close): survives
 *                         kill -9, not power loss (the OS writes back within
 *                         its dirty_expire time, ~30 s by default).
 * After any crash RocksDB replays the WAL to a consistent point: a batch is
 * all or nothing, and since entries, index, dedup and meta of a batch are one
 * WriteBatch, counters always match the entries (point-in-time recovery).
 *
 * Writes and the event loop: one batch per loop iteration. Begin it with the
 * iteration's time, enqueue / ack / expire into it (sequences are assigned at
 * once, in memory, and later operations in the same batch see earlier ones),
 * commit once: one WriteBatch, at most one fsync. Reads (sp_store_read,
 * sp_store_mailbox_info) see committed data only.
 *
 * Threading: a store (and its batch) is used by one thread at a time; no
 * globals. A commit in ALWAYS mode, sp_store_sync and sp_store_compact block
 * the calling thread for the duration of the disk write, unless the sync
 * thread runs (sp_store_syncer_start below): then commits and ticks never
 * fdatasync on the caller's thread; the thread touches only the database
 * handle and its own state under its mutex.
 *
 * Errors: 0 (or a documented positive value) or a negative errno:
 *   -EBUSY   DIR is locked by another open store (process or this process)
 *   -EACCES, -EROFS, -ENOTDIR, -ENOENT, -ENOSPC  from the file system
 *   -EDQUOT  enqueue: the recipient's mailbox is over its count or bytes quota
 *   -ENOSPC  enqueue: the store is at max_total_bytes or min_free_bytes
 *   -EXFULL  enqueue: the sender holds its whole share of the mailbox
 *   -ENOENT  ack: the device has no entry with that seq
 *   -EBADMSG a stored value is corrupt (see above)
 *   -EPROTO  open: DIR/db has a format this build does not know
 *   -EIO     RocksDB failed (details in sp_store_errmsg), or the store is
 *            poisoned after a failed commit
 * Error messages (sp_store_errmsg, the open err buffer) never contain keys,
 * bodies or any stored byte; they may contain DIR's path.
 */
#ifndef SP_STORE_H
#define SP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"

struct sp_store;
struct sp_store_batch;

enum sp_store_sync {
	SP_STORE_SYNC_ALWAYS = 0,
	SP_STORE_SYNC_BATCH = 1,
	SP_STORE_SYNC_NEVER = 2,
};

/* Column families, in the order they are opened; names below. */
enum sp_store_cf {
	SP_STORE_CF_DEFAULT = 0,
	SP_STORE_CF_MAILBOX,
	SP_STORE_CF_META,
	SP_STORE_CF_EXPIRY,
	SP_STORE_CF_DEDUP,
	SP_STORE_CF_COUNT,
};
#define SP_STORE_CF_NAMES { "default", "mailbox", "meta", "expiry", "dedup" }

enum sp_store_layout {
	SP_STORE_FORMAT = 3,            /* the "format" record (1: before mailbox v2 values;
					 * 2: before expiry window records) */
	SP_STORE_VALUE_V1 = 1,          /* version byte of meta, dedup and v1 mailbox values */
	SP_STORE_MAILBOX_V2 = 2,        /* version byte of mailbox values with a share tag */
	SP_STORE_MAILBOX_KEY_LEN = SP_KEY_LEN + 8,             /* 40 */
	SP_STORE_EXPIRY_MAILBOX_KEY_LEN = 8 + 1 + SP_KEY_LEN + 8, /* 49 */
	SP_STORE_EXPIRY_DEDUP_KEY_LEN = 8 + 1 + SP_KEY_LEN,    /* 41 */
	SP_STORE_DEDUP_ID_LEN = 32,
	SP_STORE_MAILBOX_HDR_LEN = 24,
	SP_STORE_META_LEN = 32,
	SP_STORE_DEDUP_VALUE_LEN = 24,
	SP_STORE_EPOCH_SHIFT = 32,      /* next seq >= epoch << 32 */
};

/* The module's defaults (sp_store_config_defaults). sealpostd passes its
 * own configuration, with defaults of its own (broker/sp_config.c, quoted in
 * docs/OPERATIONS.md). */
#define SP_STORE_DEFAULT_TTL_MS (30ull * 24 * 3600 * 1000)      /* 30 days */
#define SP_STORE_DEFAULT_DEDUP_WINDOW_MS (24ull * 3600 * 1000)  /* 24 h */
#define SP_STORE_DEFAULT_QUOTA_COUNT 100000ull
#define SP_STORE_DEFAULT_QUOTA_BYTES (256ull * 1024 * 1024)     /* 256 MiB */
#define SP_STORE_DEFAULT_SYNC_INTERVAL_MS 100u
#define SP_STORE_DEFAULT_MAX_OPEN_FILES 1024                     /* of the 20,000 */
#define SP_STORE_SPACE_CHECK_MS 100u    /* statvfs of DIR at most this often */
#define SP_STORE_DEFAULT_SHARE_TABLE_MAX 1000000u
#define SP_STORE_DEFAULT_RECENT_MAX 65536u
#define SP_STORE_DEFAULT_WINDOW_MS 10000u    /* "Expiry windows" */
#define SP_STORE_MANIFEST_MAX 1u        /* bytes: a new MANIFEST at every edit */

struct sp_store_config {
	const char *dir;                /* data directory; made (0700, parents too) if missing */
	enum sp_store_sync sync;
	uint32_t sync_interval_ms;      /* SP_STORE_SYNC_BATCH: max age of an unsynced commit */
	uint64_t ttl_ms;                /* envelope time-to-live when enqueue passes 0 */
	uint64_t dedup_window_ms;       /* how long a (sender, recipient, client_id) is remembered */
	uint64_t quota_count;           /* max envelopes per mailbox */
	uint64_t quota_bytes;           /* max body bytes per mailbox */
	int max_open_files;             /* RocksDB's file cache; the process limit is 20,000 */
	/* Disk bounds (0 = off), see "Space" above. */
	uint64_t max_total_bytes;       /* body bytes over all mailboxes */
	uint64_t min_free_bytes;        /* free space on DIR's file system kept back */
	uint64_t ballast_bytes;         /* DIR/ballast, given up when a start finds the disk full */
	/* Deleted data (see "Deleted data" above). */
	uint64_t max_wal_bytes;         /* RocksDB max_total_wal_size; 0 = RocksDB's default */
	uint64_t scrub_interval_ms;     /* 0 = no scrubs */
	/* Mailbox values (an envelope's header and body) of at least this
	 * many bytes go to RocksDB blob files, apart from the table files;
	 * 0 = off (see "Blob files" in sp_store.c). */
	uint64_t blob_min_bytes;
	/* Sender shares (0 = off), see "Shares" above. */
	uint32_t share_pct;             /* % of quota_count and quota_bytes one sender may hold */
	size_t share_table_max;         /* (sender, mailbox) pairs tracked */
	/* Recent entries (see "Recent entries" above; 0 = off). */
	size_t recent_max;
	/* How long a window tracks its entries before they get expiry
	 * records of their own ("Expiry windows"; 0 = no windows). */
	uint32_t window_ms;
};

/* Fills every field with the defaults above (dir = NULL, sync = ALWAYS). */
void sp_store_config_defaults(struct sp_store_config *cfg);

/*
 * Opens (creating if needed) the store under cfg->dir. cfg is copied (dir
 * too). On failure returns a negative errno and writes a one-line reason into
 * err (errlen bytes, may be NULL/0) for the log; *out is left NULL.
 */
int sp_store_open(struct sp_store **out, const struct sp_store_config *cfg, char *err,
		  size_t errlen);

/* Syncs the WAL (unless poisoned), closes RocksDB, wipes the dedup key,
 * releases the lock. An open batch is discarded. NULL is a no-op. */
void sp_store_close(struct sp_store *st);

/* The last error's reason, "" if none. Valid until the next call on st. */
const char *sp_store_errmsg(const struct sp_store *st);

/* ---- writes: one batch per event-loop iteration ------------------------- */

/*
 * Starts the store's batch (there is one; -EBUSY if it is already open) with
 * the loop iteration's time now_ms, used for expiry and dedup windows of
 * everything in it. -EIO if the store is poisoned.
 */
int sp_store_batch_begin(struct sp_store *st, uint64_t now_ms, struct sp_store_batch **out);

struct sp_store_envelope {
	const uint8_t *recipient;       /* SP_KEY_LEN bytes */
	const uint8_t *sender;          /* SP_KEY_LEN bytes: only hashed into the dedup id */
	uint64_t client_id;             /* 0 = no idempotency key (never deduplicated) */
	const uint8_t *body;            /* body_len bytes (may be NULL if 0) */
	size_t body_len;                /* <= SP_BODY_MAX */
	uint64_t ttl_ms;                /* 0 = the configured ttl_ms */
};

enum { SP_STORE_DUPLICATE = 1 };

/*
 * Adds an envelope to the recipient's mailbox in this batch and assigns its
 * seq at once (*seq_out). All buffers in env are borrowed for the call (the
 * body is copied into the batch).
 * Returns 0 (new entry), SP_STORE_DUPLICATE (same sender, recipient and
 * non-zero client_id within the dedup window: *seq_out = the original seq,
 * nothing is added, even if that entry was acked or the mailbox is now full;
 * the body is not compared: a client_id names one envelope),
 * -EDQUOT (count or bytes quota; nothing added), -EXFULL (the sender's
 * share of the mailbox, see "Shares"; nothing added), -ENOSPC (the store's
 * space bounds, see "Space"; nothing added), -EMSGSIZE (body_len >
 * SP_BODY_MAX), -EINVAL, -ENOMEM, -EBADMSG, -EIO.
 */
int sp_store_enqueue(struct sp_store_batch *b, const struct sp_store_envelope *env,
		     uint64_t *seq_out);

/*
 * Deletes entry seq of recipient's mailbox (SingleDelete of the entry and its
 * expiry index record, counters decremented) in this batch. Only keys under
 * recipient are ever touched: a seq of another device is simply absent here.
 * 0, or -ENOENT if recipient has no entry seq (never stored, already acked,
 * expired and swept): nothing is written. recipient borrowed for the call.
 */
int sp_store_ack(struct sp_store_batch *b, const uint8_t recipient[SP_KEY_LEN], uint64_t seq);

/*
 * Incremental expiry sweep in this batch: walks the expiry index up to the
 * batch's now_ms, at most max_items index records, removing expired mailbox
 * entries (counters fixed) and expired dedup records. *expired_out (may be
 * NULL) = mailbox entries removed. Returns 0 if the sweep caught up, 1 if it
 * stopped at max_items (call again, e.g. next iteration), or a negative errno.
 */
int sp_store_expire(struct sp_store_batch *b, size_t max_items, size_t *expired_out);

/*
 * The same with a time budget: stops (returning 1) once budget_ns of
 * CLOCK_MONOTONIC time has passed (0 = no time budget). A step that stops
 * early, by count or by time, keeps a cursor in the store: the next step
 * resumes at the first index record it did not reach instead of walking the
 * index from its start (sweep_resumed counts those steps).
 */
int sp_store_expire_for(struct sp_store_batch *b, size_t max_items, uint64_t budget_ns,
			size_t *expired_out);

/* Operations queued in the batch (0: commit will not touch the disk). */
size_t sp_store_batch_ops(const struct sp_store_batch *b);

/*
 * Writes the batch atomically (one WriteBatch) with the configured sync mode
 * (see top) and ends it. 0 on success. On failure (-EIO, -ENOSPC) nothing of
 * the batch is stored and the store refuses writes until reopened (the
 * reopen's epoch keeps the sequences handed out from being reused).
 */
int sp_store_batch_commit(struct sp_store_batch *b);

/* Discards the batch and ends it. If it assigned sequences, the epoch is
 * bumped (one synced write); returns 0 or -EIO (store poisoned). */
int sp_store_batch_abort(struct sp_store_batch *b);

/* fsyncs the WAL now (all committed batches survive power loss after).
 * -EIO after a failed commit (the store refuses to touch the WAL again). */
int sp_store_sync(struct sp_store *st);

/*
 * The sync thread (broker/store/sp_store_syncer.c): after
 * sp_store_syncer_start, no WAL fdatasync runs on the writer's thread
 * (but sp_store_sync, an explicit call, and close):
 *   SP_STORE_SYNC_ALWAYS  sp_store_batch_commit writes the WAL without a
 *       sync (the batch survives kill -9 and later batches read it) and
 *       asks the thread for a sync: sp_store_commit_ticket then names the
 *       ticket that commit waits for. The batch survives power loss once
 *       sp_store_syncer_poll reports a synced ticket >= it; a caller keeps
 *       the batch's answers until then.
 *   SP_STORE_SYNC_BATCH   sp_store_tick asks for the sync instead of
 *       running it (returns 1 then); nothing waits for it.
 *   SP_STORE_SYNC_NEVER   nothing changes.
 * Each sync covers every batch written before it began, so one serves all
 * tickets asked for meanwhile. A failed sync poisons the store (seen at the
 * next poll) and no ticket from then on is reported synced.
 * sp_store_syncer_start: 0, -EINVAL (running already), or -errno.
 * sp_store_syncer_fd: an eventfd (non-blocking) readable after each sync
 *       the thread ends; -1 without the thread. Owned by the store.
 * sp_store_syncer_poll: consumes the eventfd's count and sets *synced to
 *       the highest ticket synced so far (all below it are, too); 0, or
 *       -EIO once a sync failed (details in sp_store_errmsg).
 * sp_store_syncer_peek: the same without consuming the eventfd.
 * sp_store_syncer_asked: the latest ticket handed out (0: none, or no thread).
 * sp_store_syncer_stop: waits for the sync in progress and those asked for,
 *       ends the thread (sp_store_close calls it too).
 */
int sp_store_syncer_start(struct sp_store *st);
int sp_store_syncer_fd(const struct sp_store *st);
int sp_store_syncer_poll(struct sp_store *st, uint64_t *synced);
/* sp_store_syncer_poll without reading the eventfd: for a thread that did
 * not read it (another broker shard, told by the one that did). */
int sp_store_syncer_peek(struct sp_store *st, uint64_t *synced);
uint64_t sp_store_syncer_asked(const struct sp_store *st);
void sp_store_syncer_stop(struct sp_store *st);

/* The ticket the last successful sp_store_batch_commit waits for before it
 * survives power loss: 0 if it already does (or never will: BATCH, NEVER). */
uint64_t sp_store_commit_ticket(const struct sp_store *st);

/* SP_STORE_SYNC_BATCH: fsyncs if the oldest unsynced commit is at least
 * sync_interval_ms old (with the sync thread: asks it to). Returns 1 if it
 * synced (or asked), 0 if not due, or -errno.
 * Other modes: 0. Every mode: starts a scrub when one is due (see "Deleted
 * data"). Call it from the loop's timer. */
int sp_store_tick(struct sp_store *st, uint64_t now_ms);

/* ---- reads ----------------------------------------------------------------- */

struct sp_store_item {
	uint64_t seq;
	uint64_t accepted_ms;
	uint64_t expires_ms;
	const uint8_t *body;            /* borrowed: valid until the next sp_store_read or close */
	size_t body_len;
};

struct sp_store_read_result {
	size_t count;                   /* items filled */
	uint64_t next_seq;              /* pass as from_seq to continue */
	bool end;                       /* nothing stored beyond next_seq (at read time) */
	size_t skipped_expired;         /* expired, not yet swept: never returned */
	size_t skipped_corrupt;         /* corrupt values skipped */
	int corrupt_err;                /* -EBADMSG if skipped_corrupt > 0, else 0 */
};

/*
 * Reads recipient's committed entries with seq >= from_seq, in seq order, into
 * items[0..max_items): at most max_items items and max_bytes body bytes (the
 * first item is returned even if it alone is larger, so a read always makes
 * progress). Entries with expires_ms <= now_ms are skipped, never returned.
 * Bodies are copied into a buffer owned by st: item bodies stay valid until
 * the next sp_store_read or sp_store_close. recipient borrowed for the call.
 * Returns 0 (see *res; corrupt entries do not fail the read) or -errno.
 */
int sp_store_read(struct sp_store *st, const uint8_t recipient[SP_KEY_LEN], uint64_t from_seq,
		  uint64_t now_ms, size_t max_items, size_t max_bytes, struct sp_store_item *items,
		  struct sp_store_read_result *res);

/* Entries and body bytes in all mailboxes (committed totals, O(1)). */
int sp_store_totals(struct sp_store *st, uint64_t *entries, uint64_t *bytes);

/* The seq the next envelope for recipient gets if no batch is open (0:
 * not known, its meta is damaged): for a caller that orders deliveries
 * by seq (broker shards). 0 or -EIO. */
int sp_store_next_seq(struct sp_store *st, const uint8_t recipient[SP_KEY_LEN], uint64_t *next);

/* The committed counters of recipient (zeros and next_seq 0 if its mailbox
 * is empty: it has no record). Any out pointer may be NULL. */
int sp_store_mailbox_info(struct sp_store *st, const uint8_t recipient[SP_KEY_LEN],
			  uint64_t *count, uint64_t *bytes, uint64_t *next_seq);

/* ---- the admin socket (sp_store_admin.c) ---------------------------------- */

/*
 * The acceptance time (wall-clock ms) of recipient's oldest committed entry
 * that has not expired by now_ms: 0 and *accepted_ms, or -ENOENT if there is
 * none. Corrupt values are skipped. recipient borrowed for the call.
 */
int sp_store_mailbox_oldest(struct sp_store *st, const uint8_t recipient[SP_KEY_LEN],
			    uint64_t now_ms, uint64_t *accepted_ms);

/*
 * Removes every committed entry of recipient's mailbox in this batch (as
 * acks would: entries, expiry records, counters; the device's next seq
 * stays). Entries enqueued in this same batch are kept. *count and *bytes:
 * what was removed. Bounded by the mailbox quota. 0 or a negative errno
 * (then part of the mailbox may be in the batch: commit or abort it as
 * usual). recipient borrowed for the call.
 */
int sp_store_purge(struct sp_store_batch *b, const uint8_t recipient[SP_KEY_LEN],
		   uint64_t *count, uint64_t *bytes);

struct sp_store_top_item {
	uint8_t recipient[SP_KEY_LEN];
	uint64_t count, bytes;
};

/*
 * The n (<= cap of out) largest committed mailboxes, by bytes (by_bytes) or
 * by count, largest first, empty ones left out; *nout = how many were
 * filled, *scanned = the per-device records read (may be NULL). One pass
 * over every device's counter record: O(devices x n), for operators, not
 * the hot path. Unlike the rest of this interface it may run on any thread
 * while the store's owner uses it (as sp_store_property may): it reads
 * committed data through an iterator of its own and writes nothing of st
 * (so a failure is -EIO without sp_store_errmsg). Not during sp_store_close.
 */
int sp_store_top(struct sp_store *st, size_t n, bool by_bytes, struct sp_store_top_item *out,
		 size_t *nout, uint64_t *scanned);

/* ---- accounts (sp_store_account.c) ----------------------------------------- */

/*
 * Accounts: the latest signed device list of each account, and which
 * account each listed device is on. The store does not check lists (the
 * broker's app layer verified them); it keeps bytes. A list write is its
 * own synced WriteBatch, outside the iteration's batch, whatever the sync
 * mode: it is rare, and the publisher is told at once.
 */
#define SP_STORE_LIST_PREFIX "acl/"
#define SP_STORE_DEVICE_PREFIX "acd/"
enum {
	SP_STORE_ACCT_PREFIX_LEN = 4,
	SP_STORE_LIST_KEY_LEN = SP_STORE_ACCT_PREFIX_LEN + SP_ACCOUNT_LEN,
	/* A list as the protocol allows it at most (sp_devlist.h SP_DEVLIST_MAX). */
	SP_STORE_LIST_VALUE_MAX = 43 + SP_DEVLIST_DEVICES_MAX * (SP_KEY_LEN + 9 + SP_DEVLIST_LABEL_MAX) + 64,
};

/* The stored list of account into buf (caller-owned, cap bytes), *len.
 * -ENOENT (none), -EMSGSIZE (cap), -EBADMSG (corrupt value), -EIO. */
int sp_store_list_get(struct sp_store *st, const uint8_t account[SP_ACCOUNT_LEN], uint8_t *buf,
		      size_t cap, size_t *len);

/*
 * Stores list (len bytes, borrowed) as account's, and in the same synced
 * write points added devices at the account and deletes removed devices'
 * index records. The same write appends the list to the transparency log
 * (sp_store_log_stage; it becomes the account's latest leaf), so a crash
 * keeps both or neither. All arrays borrowed. 0, -EMSGSIZE, -EIO (poisoned
 * store, or RocksDB failed), -ENOMEM, -EBADMSG (the log's records corrupt).
 */
int sp_store_list_put(struct sp_store *st, const uint8_t account[SP_ACCOUNT_LEN],
		      const uint8_t *list, size_t len, const uint8_t (*added)[SP_KEY_LEN],
		      size_t nadded, const uint8_t (*removed)[SP_KEY_LEN], size_t nremoved);

/* The account whose list names device: 0, -ENOENT, -EBADMSG, -EIO. */
int sp_store_device_account(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
			    uint8_t account[SP_ACCOUNT_LEN]);
/* ---- push subscriptions (sp_store_push.c) --------------------------------- */

/*
 * Push subscriptions: column family "default", key "push/" | device[32]
 * (37 bytes), value written by broker/push (an opaque byte string here, at
 * most a few KiB: endpoint URL and the subscription's keys, nothing else).
 * Each write is one synced put or delete of its own, outside the batch.
 * What is stored about people: the device key in the clear and its push
 * endpoint (it names the push service and the subscription), until the
 * device removes it, the push service says it is gone (404/410), or the
 * device's mailbox is purged.
 */
enum { SP_STORE_PUSH_KEY_LEN = 5 + SP_KEY_LEN };

void sp_store_push_key(uint8_t out[SP_STORE_PUSH_KEY_LEN], const uint8_t device[SP_KEY_LEN]);

/* Stores (replaces) device's subscription value (val, len: borrowed).
 * 0, -EIO (RocksDB, or the store is poisoned). */
int sp_store_push_put(struct sp_store *st, const uint8_t device[SP_KEY_LEN], const uint8_t *val,
		      size_t len);

/* Deletes device's subscription (absent: 0 too). 0 or -EIO. */
int sp_store_push_del(struct sp_store *st, const uint8_t device[SP_KEY_LEN]);

/* Calls fn for every stored subscription (device and value borrowed for the
 * call) until fn returns non-zero, which is then returned; else 0 or -EIO. */
typedef int (*sp_store_push_fn)(void *ctx, const uint8_t device[SP_KEY_LEN], const uint8_t *val,
				size_t len);
int sp_store_push_each(struct sp_store *st, sp_store_push_fn fn, void *ctx);

/* ---- registration (sp_store_enrol.c) -------------------------------------- */

/*
 * --registration=token (docs/PROTOCOL.md 15). Column family "default":
 *   "reg/" | device[32]  -> u8 version=1 | u8[7] zero   (8 bytes): the device
 *                           enrolled with a token (no time, no token id)
 *   "etk/" | id[16]      -> u8 version=1 | u8[7] zero | u64 expires_ms
 *                           (16 bytes): that token was used; kept until it
 *                           expires (sp_store_enrol_prune), after which its
 *                           MAC check refuses it anyway
 * An enrolment writes both in one synced WriteBatch of its own. Nothing
 * links a used token to the device it enrolled. What is stored about
 * people: the device key in the clear, from its enrolment on (there is no
 * unregister yet); the token ids and expiry times until the expiry.
 */
#define SP_STORE_REG_PREFIX "reg/"
#define SP_STORE_TOKEN_PREFIX "etk/"
enum {
	SP_STORE_ENROL_PREFIX_LEN = 4,
	SP_STORE_TOKEN_ID_LEN = 16,
	SP_STORE_REG_KEY_LEN = SP_STORE_ENROL_PREFIX_LEN + SP_KEY_LEN,
	SP_STORE_TOKEN_KEY_LEN = SP_STORE_ENROL_PREFIX_LEN + SP_STORE_TOKEN_ID_LEN,
	SP_STORE_REG_VALUE_LEN = 8,
	SP_STORE_TOKEN_VALUE_LEN = 16,
};

/* 0 the device enrolled, -ENOENT not, -EBADMSG (corrupt record), -EIO. */
int sp_store_device_registered(struct sp_store *st, const uint8_t device[SP_KEY_LEN]);

/* Registers device and marks token id used (expires_ms: the token's), in
 * one synced write. 0; -EALREADY (that id was used, or its mark is
 * corrupt: nothing written); -EIO; -ENOMEM. Arrays borrowed. */
int sp_store_enrol(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
		   const uint8_t id[SP_STORE_TOKEN_ID_LEN], uint64_t expires_ms);

/* Deletes the used-token marks that expired by now_ms (one synced write;
 * *dropped, may be NULL: how many). A scan of the "etk/" range: for the
 * start, not the event loop. 0, -EIO, -ENOMEM. */
int sp_store_enrol_prune(struct sp_store *st, uint64_t now_ms, uint64_t *dropped);

/* ---- access keys, sealed sender (sp_store_access.c) ----------------------- */

/*
 * A device's access settings (PROTOCOL.md 14): column family "default", key
 * "access/" | device[32] (39 bytes), value
 *   u8 version=1 | u8 flags (bit 0: accept from anyone) | u8 has_cur |
 *   u8 has_prev | u8[4] zero | cur_hash[32] | prev_hash[32]   (72 bytes)
 * where a hash is BLAKE2b-256 of "sealpost/access/1" | key: the access key
 * itself is never stored. prev is the hash the last rotation replaced (so a
 * sender holding it is told "rotated", not just "wrong"). One synced put of
 * its own per SetAccess, outside the batch. What is stored about people:
 * the device key in the clear (it is the address) and the two hashes, until
 * the device changes them or its mailbox is purged.
 */
enum {
	SP_STORE_ACCESS_KEY_LEN = 7 + SP_KEY_LEN,
	SP_STORE_ACCESS_VALUE_LEN = 8 + 2 * SP_ACCESS_HASH_LEN,
};

struct sp_store_access {
	bool anyone;
	bool has_cur, has_prev;
	uint8_t cur[SP_ACCESS_HASH_LEN], prev[SP_ACCESS_HASH_LEN];
};

/* The stored form of an access key (key borrowed, 1..SP_ACCESS_KEY_MAX bytes). */
void sp_store_access_hash(uint8_t out[SP_ACCESS_HASH_LEN], const uint8_t *key, size_t len);

/* Codec (pure): 0, or -EBADMSG for a value this build does not write. */
void sp_store_access_encode(uint8_t out[SP_STORE_ACCESS_VALUE_LEN], const struct sp_store_access *a);
int sp_store_access_decode(const uint8_t *v, size_t len, struct sp_store_access *a);

/* device's settings: 0 and *a, -ENOENT (none: nothing allowed), -EBADMSG
 * (corrupt: treated as none by the caller), -EIO. */
int sp_store_access_get(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
			struct sp_store_access *a);
/* Stores (replaces) device's settings; a synced write. 0 or -EIO. */
int sp_store_access_put(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
			const struct sp_store_access *a);

/* ---- prekeys (sp_store_prekey.c; PROTOCOL.md 17) --------------------------- */

/*
 * Column family "default":
 *   "prekey/s/" | device[32] (41 bytes) -> the device's prekey record:
 *     u8 version=1 | u8 has_signed | u8[2] zero | u32 count | edkey[32] |
 *     signed prekey record[109] (zero when has_signed is 0)   (149 bytes)
 *   "prekey/o/" | device[32] | u32 id (45 bytes) -> one one-time prekey
 *     record[109] as uploaded (sp_prekey.h).
 * count is the number of "prekey/o/" records of the device, kept in the
 * same write as every change to them. Every write is one synced
 * WriteBatch of its own: a take (delete one one-time record, rewrite the
 * count) is on disk before the bundle is answered, so a one-time prekey
 * handed out is never handed out again, across a crash too. Signatures
 * were checked before storing. What is stored about people: the device
 * key (its address), its public prekeys and how many are left.
 */
enum {
	SP_STORE_PREKEY_PREFIX_LEN = 9,
	SP_STORE_PREKEY_META_KEY_LEN = SP_STORE_PREKEY_PREFIX_LEN + SP_KEY_LEN,
	SP_STORE_PREKEY_OTK_KEY_LEN = SP_STORE_PREKEY_PREFIX_LEN + SP_KEY_LEN + 4,
	SP_STORE_PREKEY_REC_LEN = 109,  /* SP_PREKEY_REC_LEN, asserted in sp_store_prekey.c */
	SP_STORE_PREKEY_META_LEN = 8 + SP_KEY_LEN + SP_STORE_PREKEY_REC_LEN,
};

struct sp_store_prekey_meta {
	bool has_signed;
	uint32_t count;
	uint8_t edkey[SP_KEY_LEN];
	uint8_t spk[SP_STORE_PREKEY_REC_LEN];
};

/* Codec (pure): 0, or -EBADMSG for a value this build does not write. */
void sp_store_prekey_meta_encode(uint8_t out[SP_STORE_PREKEY_META_LEN],
				 const struct sp_store_prekey_meta *m);
int sp_store_prekey_meta_decode(const uint8_t *v, size_t len, struct sp_store_prekey_meta *m);

/* device's record: 0 and *m, -ENOENT, -EBADMSG (corrupt), -EIO. */
int sp_store_prekey_meta_get(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
			     struct sp_store_prekey_meta *m);

/*
 * Stores an upload of device (already decoded and verified; borrowed):
 * edkey, the signed record if has_signed (replacing the one on file), and
 * the count one-time records at onetime (count * 109 bytes, borrowed). ids
 * already on file are replaced, not counted twice. 0 and *count (one-time
 * records on file after it); -EXFULL if that would pass stock_max (nothing
 * written); -EIO; -ENOMEM.
 */
int sp_store_prekey_put(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
			const uint8_t edkey[SP_KEY_LEN], const uint8_t *spk, const uint8_t *onetime,
			uint32_t n_onetime, uint32_t stock_max, uint32_t *count);

/*
 * Takes device's bundle: *m (the record after the take) and, if one is on
 * file, the one-time record with the lowest id into otk (*has_otk), deleted
 * in the same synced write that lowers the count, before this returns. 0;
 * -ENOENT (no record, or no signed prekey: nothing taken); -EIO; -ENOMEM.
 */
int sp_store_prekey_take(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
			 struct sp_store_prekey_meta *m, uint8_t otk[SP_STORE_PREKEY_REC_LEN],
			 bool *has_otk);

/* ---- operations, metrics, tests ------------------------------------------ */

struct sp_store_stats {
	uint64_t enqueued, duplicates, quota_refused;
	uint64_t space_refused;         /* -ENOSPC: max_total_bytes or min_free_bytes */
	uint64_t share_refused;         /* -EXFULL: a sender's share of a mailbox */
	uint64_t share_untracked;       /* envelopes of pairs the share table had no room for */
	uint64_t share_pairs;           /* (sender, mailbox) pairs counted now */
	uint64_t share_loads;           /* mailboxes whose shares were read back from disk */
	uint64_t share_loaded_entries;  /* entries read for that */
	bool space_low;                 /* free space is below min_free_bytes now */
	bool ballast;                   /* DIR/ballast is in place */
	uint64_t acked, ack_unknown;
	uint64_t acked_recent;          /* of the acked, written without a read ("Recent entries") */
	uint64_t meta_cached;           /* a batch's first touch of a device's counters served
					 * from memory, without a read (sp_store_batch.c) */
	uint64_t expired, dedup_expired;
	uint64_t acked_bytes, expired_bytes; /* body bytes those removed */
	uint64_t purged, purged_bytes;  /* removed by sp_store_purge */
	uint64_t corrupt;               /* corrupt values met by reads, acks, sweeps */
	uint64_t sweep_steps;           /* sp_store_expire calls */
	uint64_t sweep_resumed;         /* of those, resumed at the previous one's cursor */
	uint64_t sweep_budget_stops;    /* of those, stopped by their time budget */
	uint64_t commits, commit_failures, syncs;
	uint64_t scrubs, scrub_failures; /* scrubs finished (see "Deleted data") */
	uint64_t epoch;
};
void sp_store_get_stats(const struct sp_store *st, struct sp_store_stats *out);

/* A RocksDB integer property of one column family, e.g.
 * "rocksdb.num-deletes-active-mem-table", "rocksdb.estimate-num-keys". */
int sp_store_property(struct sp_store *st, enum sp_store_cf cf, const char *name, uint64_t *out);

/* A RocksDB text property of the database (e.g. "rocksdb.dbstats") in *out,
 * malloc'd (free it); -ENOENT if RocksDB has no such property. */
int sp_store_property_text(struct sp_store *st, const char *name, char **out);

/* From "rocksdb.aggregated-table-properties" of cf: records and deletion
 * markers (tombstones) in its SST files. Flush first to include memtables. */
int sp_store_table_stats(struct sp_store *st, enum sp_store_cf cf, uint64_t *entries,
			 uint64_t *deletions);

/* Flushes every memtable to SST files (blocking). */
int sp_store_flush(struct sp_store *st);
/* Full manual compaction of every column family (blocking; for tests and
 * operators: automatic compaction does this work in the background). */
int sp_store_compact(struct sp_store *st);

/* Key encoders (the layout above; exported for tests and tools). */
void sp_store_mailbox_key(uint8_t out[SP_STORE_MAILBOX_KEY_LEN],
			  const uint8_t recipient[SP_KEY_LEN], uint64_t seq);
void sp_store_expiry_mailbox_key(uint8_t out[SP_STORE_EXPIRY_MAILBOX_KEY_LEN],
				 uint64_t expires_ms, const uint8_t recipient[SP_KEY_LEN],
				 uint64_t seq);

/* ---- the transparency log (sp_store_log.c) --------------------------------- */

/*
 * The append-only Merkle log of accepted device lists (docs/PROTOCOL.md
 * 11.7; the tree and proofs are lib/crypto/sp_merkle.h). Records, column
 * family "default":
 *
 *   "lgs"                         -> u8 version=1 | u64 tree size
 *   "lgl/" | u64 index            -> u8 version=1 | the leaf's bytes (the list)
 *   "lgh/" | u8 level | u64 index -> hash[32] of the complete subtree over
 *                                    leaves [index << level, (index+1) << level)
 *   "lgi/" | account[32]          -> u8 version=1 | u64 index of the account's
 *                                    latest leaf (what a fetch proves)
 *
 * An append writes the leaf, its hash, the hashes of every subtree it
 * completes (at most 63) and the new size in one WriteBatch, so a crash
 * leaves the log at the old size or the new one, never between. Roots and
 * proofs need only complete subtrees, O(log n) point reads each. The size
 * is read from the store on each call (lists are rare; no cache to keep
 * right across failed writes). One append per WriteBatch: an append reads
 * the left siblings it combines from committed data.
 */
enum {
	SP_STORE_LOG_LEAF_MAX = SP_BODY_MAX,   /* a leaf is one list, which fits a body */
};

/* The committed tree size (0 for a log never written). 0, -EBADMSG, -EIO. */
int sp_store_log_size(struct sp_store *st, uint64_t *size);

/* Appends leaf (len bytes, borrowed) in its own synced WriteBatch; *index
 * = its position. account (32 bytes, borrowed, or NULL): the leaf becomes
 * that account's latest (sp_store_log_index_of). 0, -EMSGSIZE, -EIO
 * (poisoned, RocksDB), -ENOMEM. */
int sp_store_log_append(struct sp_store *st, const uint8_t *account, const uint8_t *leaf, size_t len,
			uint64_t *index);

/* The hash of the complete subtree (level, index) (sp_merkle_subtree_fn's
 * meaning; the caller knows the log has its leaves): for views built on
 * the log (app/sp_tlog.c). 0, -EBADMSG (missing: corrupt), -EIO. */
int sp_store_log_subtree(struct sp_store *st, unsigned level, uint64_t index, uint8_t out[32]);

/* The index of account's latest leaf. 0, -ENOENT (none), -EBADMSG, -EIO. */
int sp_store_log_index_of(struct sp_store *st, const uint8_t account[32], uint64_t *index);

/* The leaf at index into buf (caller-owned, cap bytes), *len. -ENOENT
 * (index >= size), -EMSGSIZE, -EBADMSG, -EIO. */
int sp_store_log_leaf(struct sp_store *st, uint64_t index, uint8_t *buf, size_t cap, size_t *len);

/* The root of the first n leaves (n <= size). 0, -EINVAL, -EBADMSG, -EIO. */
int sp_store_log_root(struct sp_store *st, uint64_t n, uint8_t root[32]);

/* Inclusion proof of leaf index in the tree of size n, and the consistency
 * proof between sizes m and n (0 < m <= n <= size), into proof (caller-
 * owned, cap hashes of 32 bytes), *len. 0, -EINVAL, -EMSGSIZE, -EBADMSG, -EIO. */
int sp_store_log_inclusion(struct sp_store *st, uint64_t index, uint64_t n, uint8_t (*proof)[32],
			   size_t cap, size_t *len);
int sp_store_log_consistency(struct sp_store *st, uint64_t m, uint64_t n, uint8_t (*proof)[32],
			     size_t cap, size_t *len);

#endif
