/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store.c: opening and closing a store: the data directory and its lock,
 * the dedup key file, RocksDB's options, the format record and the epoch;
 * the error text every file of the store reports through; operations for
 * metrics and tests. Layout, guarantees and ownership are documented in
 * sp_store.h; sp_store_internal.h says which file does what.
 */
#include "sp_store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "sp_fsutil.h"

enum {
	SP_ROCKSDB_LOG_FATAL = 4,       /* rocksdb::InfoLogLevel::FATAL_LEVEL */
};

static const char *const cf_names[SP_STORE_CF_COUNT] = SP_STORE_CF_NAMES;

/* ---- errors ------------------------------------------------------------------ */

void sp_store_set_err(struct sp_store *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
}

/*
 * RocksDB status strings start with the status class ("IO error: ...",
 * "Corruption: ..."). Past open, only that class is kept for the log: the
 * rest of a message about a read or a compaction could quote key bytes.
 */
static void status_class(char *out, size_t outlen, const char *rerr)
{
	size_t n = strcspn(rerr, ":");

	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, rerr, n);
	out[n] = '\0';
}

static int map_rocksdb_error(const char *rerr)
{
	if (strstr(rerr, "lock") || strstr(rerr, "LOCK")) {
		if (strstr(rerr, "temporarily unavailable") || strstr(rerr, "lock hold") ||
		    strstr(rerr, "No locks available") || strstr(rerr, "Resource busy"))
			return -EBUSY;
	}
	if (strstr(rerr, "Permission denied"))
		return -EACCES;
	if (strstr(rerr, "Read-only file system"))
		return -EROFS;
	if (strstr(rerr, "No space left"))
		return -ENOSPC;
	if (strstr(rerr, "Not a directory"))
		return -ENOTDIR;
	if (!strncmp(rerr, "Corruption", 10))
		return -EBADMSG;
	if (!strncmp(rerr, "Invalid argument", 16))
		return -EINVAL;
	return -EIO;
}

int sp_store_rocks_fail(struct sp_store *st, const char *what, char *rerr)
{
	char cls[64];
	int rc = map_rocksdb_error(rerr);

	status_class(cls, sizeof(cls), rerr);
	sp_store_set_err(st, "store: %s failed: %s", what, cls);
	rocksdb_free(rerr);
	return rc;
}

/* ---- the dedup key file ------------------------------------------------------ */

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EBADMSG;
		got += (size_t)n;
	}
	return 0;
}

/* Loads DIR/dedup.key into st->dedup_key, creating it (0600, fsynced) on first
 * open. Raw 32 bytes: only this module reads it. */
static int load_dedup_key(struct sp_store *st)
{
	char path[PATH_MAX];
	uint8_t key[crypto_generichash_KEYBYTES];
	uint8_t extra;
	struct stat sb;
	int fd = -1, rc;

	if (snprintf(path, sizeof(path), "%s/dedup.key", st->dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		randombytes_buf(key, sizeof(key));
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = -errno;
			sp_store_set_err(st, "store: cannot create %s: %s", path, strerror(-rc));
			goto out;
		}
		if (write(fd, key, sizeof(key)) != (ssize_t)sizeof(key) || fsync(fd) < 0) {
			rc = errno ? -errno : -EIO;
			sp_store_set_err(st, "store: cannot write %s: %s", path, strerror(-rc));
			unlink(path);
			goto out;
		}
		rc = fsync_dir(st->dir);
		if (rc < 0) {
			sp_store_set_err(st, "store: cannot sync %s: %s", st->dir, strerror(-rc));
			goto out;
		}
	} else if (fd < 0) {
		rc = -errno;
		sp_store_set_err(st, "store: cannot open %s: %s", path, strerror(-rc));
		goto out;
	} else {
		if (fstat(fd, &sb) < 0) {
			rc = -errno;
			goto out;
		}
		if (!S_ISREG(sb.st_mode) || (sb.st_mode & 077)) {
			rc = -EACCES;
			sp_store_set_err(st, "store: %s must be a regular file of mode 0600", path);
			goto out;
		}
		rc = read_full(fd, key, sizeof(key));
		if (rc == 0 && read(fd, &extra, 1) != 0)
			rc = -EBADMSG;
		if (rc < 0) {
			sp_store_set_err(st, "store: %s is not a %zu-byte key file", path, sizeof(key));
			goto out;
		}
	}
	memcpy(st->dedup_key, key, sizeof(key));
	rc = 0;
out:
	sodium_memzero(key, sizeof(key));
	if (fd >= 0)
		close(fd);
	return rc;
}

/* ---- space ------------------------------------------------------------------- */

int sp_store_free_space(struct sp_store *st, uint64_t *free_bytes)
{
	struct statvfs vfs;

	if (statvfs(st->dir, &vfs) < 0)
		return -errno;
	*free_bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
	return 0;
}

static int ballast_path(const struct sp_store *st, char *path, size_t cap)
{
	if (snprintf(path, cap, "%s/ballast", st->dir) >= (int)cap)
		return -ENAMETOOLONG;
	return 0;
}

int sp_store_ballast_make(struct sp_store *st)
{
	char path[PATH_MAX];
	int fd, rc;

	if (st->ballast || !st->cfg.ballast_bytes)
		return 0;
	rc = ballast_path(st, path, sizeof(path));
	if (rc < 0)
		return rc;
	fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/* Real blocks (not a sparse file): deleting it must free space. */
	rc = -posix_fallocate(fd, 0, (off_t)st->cfg.ballast_bytes);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc < 0) {
		unlink(path);
		return rc;
	}
	st->ballast = true;
	return 0;
}

/*
 * Before RocksDB opens: on a disk with less free space than the ballast,
 * the ballast goes, so the open (a new log, the MANIFEST, the epoch) has
 * room; on a disk with room, it is made (or kept).
 */
static int ballast_at_open(struct sp_store *st)
{
	char path[PATH_MAX];
	struct stat sb;
	uint64_t free_bytes = 0;
	int rc = ballast_path(st, path, sizeof(path));

	if (rc < 0)
		return rc;
	st->ballast = lstat(path, &sb) == 0 && S_ISREG(sb.st_mode) &&
		      (uint64_t)sb.st_size >= st->cfg.ballast_bytes && st->cfg.ballast_bytes;
	if (sp_store_free_space(st, &free_bytes) < 0)
		return 0;
	if (st->ballast && free_bytes < st->cfg.ballast_bytes) {
		if (unlink(path) == 0) {
			st->ballast = false;
			fsync_dir(st->dir);
		}
		return 0;
	}
	if (!st->ballast && !st->cfg.ballast_bytes)
		unlink(path);   /* switched off: give its space back */
	else if (!st->ballast &&
		 free_bytes >= st->cfg.min_free_bytes + 2 * st->cfg.ballast_bytes)
		sp_store_ballast_make(st);
	return 0;
}

/* ---- open / close ------------------------------------------------------------- */

void sp_store_config_defaults(struct sp_store_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->sync = SP_STORE_SYNC_ALWAYS;
	cfg->sync_interval_ms = SP_STORE_DEFAULT_SYNC_INTERVAL_MS;
	cfg->ttl_ms = SP_STORE_DEFAULT_TTL_MS;
	cfg->dedup_window_ms = SP_STORE_DEFAULT_DEDUP_WINDOW_MS;
	cfg->quota_count = SP_STORE_DEFAULT_QUOTA_COUNT;
	cfg->quota_bytes = SP_STORE_DEFAULT_QUOTA_BYTES;
	cfg->max_open_files = SP_STORE_DEFAULT_MAX_OPEN_FILES;
	cfg->share_table_max = SP_STORE_DEFAULT_SHARE_TABLE_MAX;
	cfg->recent_max = SP_STORE_DEFAULT_RECENT_MAX;
	cfg->window_ms = SP_STORE_DEFAULT_WINDOW_MS;
}

/* DIR and DIR/db: made (0700, missing parents too) or checked usable. */
static int make_dir(struct sp_store *st, const char *path)
{
	struct stat sb;
	int rc = sp_fsutil_mkdir_p(path, 0700, 0700);

	if (rc < 0) {
		if (stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode))
			sp_store_set_err(st, "store: %s exists and is not a directory", path);
		else
			sp_store_set_err(st, "store: cannot create directory %s: %s", path,
					 strerror(-rc));
		return rc;
	}
	if (access(path, W_OK | X_OK) < 0) {
		rc = -errno;
		sp_store_set_err(st, "store: directory %s is not writable: %s", path, strerror(-rc));
		return rc;
	}
	return 0;
}

static int take_lock(struct sp_store *st)
{
	char path[PATH_MAX];
	int rc;

	if (snprintf(path, sizeof(path), "%s/store.lock", st->dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	st->lock_fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (st->lock_fd < 0) {
		rc = -errno;
		sp_store_set_err(st, "store: cannot open %s: %s", path, strerror(-rc));
		return rc;
	}
	/* flock locks belong to the open file description: a second open of the
	 * same DIR fails even from this process, unlike fcntl locks. */
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (rc == -EBUSY)
			sp_store_set_err(st, "store: data directory %s is in use by another sealpostd "
				"(or another store in this process)", st->dir);
		else
			sp_store_set_err(st, "store: cannot lock %s: %s", path, strerror(-rc));
		return rc;
	}
	return 0;
}

static void free_rocks_options(struct sp_store *st)
{
	if (st->wo_sync)
		rocksdb_writeoptions_destroy(st->wo_sync);
	if (st->wo_nosync)
		rocksdb_writeoptions_destroy(st->wo_nosync);
	if (st->ro)
		rocksdb_readoptions_destroy(st->ro);
	if (st->fo)
		rocksdb_flushoptions_destroy(st->fo);
	if (st->fo_nowait)
		rocksdb_flushoptions_destroy(st->fo_nowait);
	for (int i = 0; i < SP_STORE_CF_COUNT; i++) {
		if (st->cf_own[i])
			rocksdb_options_destroy(st->cf_own[i]);
		st->cf_own[i] = NULL;
	}
	if (st->cf_opts)
		rocksdb_options_destroy(st->cf_opts);
	if (st->dedup_filter)
		rocksdb_compactionfilter_destroy(st->dedup_filter);
	st->dedup_filter = NULL;
	if (st->db_opts)
		rocksdb_options_destroy(st->db_opts);
	if (st->bbto)
		rocksdb_block_based_options_destroy(st->bbto);
}

/*
 * Memtable options per column family, chosen by measurement
 * (bench/durable-callgrind.sh, docs/BENCHMARKS.md "durable"): a memtable
 * insert searched the whole skiplist from its top level, and that search
 * was the largest single cost of a durable envelope.
 *   mailbox: keys are recipient | seq and a mailbox grows at its end and
 *     shrinks at its start, so each insert starts from the place of the
 *     last insert of the same recipient (an insert hint per 32-byte
 *     prefix);
 *   expiry: keys start with their time, and what is written (new records,
 *     deletes of ones a moment old) is near the end: one hint for all;
 *   dedup: nearly every lookup misses (a new id), so the memtable gets a
 *     whole-key bloom filter and a miss does not search its skiplist.
 * Memtable options only: nothing on disk changes.
 */
static const char *const cf_tuning[SP_STORE_CF_COUNT] = {
	[SP_STORE_CF_MAILBOX] = "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.32",
	[SP_STORE_CF_EXPIRY] = "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.1",
	[SP_STORE_CF_DEDUP] = "memtable_whole_key_filtering=true;memtable_prefix_bloom_size_ratio=0.05",
};

/*
 * Dedup records past their window leave at compaction: their value holds
 * the end of the window, so they need no expiry index record (that was one
 * record more per envelope with a client id: docs/BENCHMARKS.md). The
 * time is the latest batch's (the store's own clock, as for the sweep), so
 * a record is never dropped while a lookup would still call it a
 * duplicate. A record the filter cannot decode is kept: the next lookup
 * of its id removes it (counted as corrupt). Records of a store written
 * before this still have index records, which the sweep still removes.
 */
static unsigned char dedup_filter(void *state, int level, const char *key, size_t klen,
				  const char *val, size_t vlen, char **new_val, size_t *new_vlen,
				  unsigned char *changed)
{
	struct sp_store *st = state;
	uint64_t seq, exp, now = __atomic_load_n(&st->filter_now_ms, __ATOMIC_ACQUIRE);

	(void)level;
	(void)key;
	(void)klen;
	(void)new_val;
	(void)new_vlen;
	(void)changed;
	if (sp_store_dedup_decode((const uint8_t *)val, vlen, &seq, &exp) < 0 || exp > now)
		return 0;
	__atomic_fetch_add(&st->dedup_filtered, 1, __ATOMIC_RELAXED);
	return 1;
}

/* RocksDB's C wrapper calls a destructor unconditionally: the state is
 * the store, freed by sp_store_close. */
static void dedup_filter_state_free(void *state)
{
	(void)state;
}

static const char *dedup_filter_name(void *state)
{
	(void)state;
	return "sealpost.dedup-window";
}

/*
 * Blob files (cfg.blob_min_bytes, --store-blob-min-bytes; measured in
 * docs/BENCHMARKS.md "Blob files"): mailbox values at least that large
 * are written once into a blob file at flush, and the table files hold
 * only their keys and a pointer, so compaction moves pointers, not
 * bodies. Garbage collection during compaction relocates the live values
 * of the oldest blob files (age cutoff below) and a blob file no table
 * file points to is deleted. The scrub (sp_store_scrub.c) raises the
 * cutoff to every file for its compaction, so that acknowledged bodies
 * leave the disk within the same bound as without blob files. Only the
 * mailbox family holds values that large.
 */
enum { SP_STORE_BLOB_FILE_SIZE = 64u << 20 };
#define SP_STORE_BLOB_GC_AGE_CUTOFF 0.25
/* The cutoff as RocksDB's option string too (sp_store_blob_gc_cutoff): one
 * literal, so the two cannot drift (clang takes no double in a static
 * assertion). */
#define SP_STORE_STR_(x) #x
#define SP_STORE_STR(x) SP_STORE_STR_(x)

void sp_store_blob_options(struct sp_store *st, rocksdb_options_t *o)
{
	if (!st->cfg.blob_min_bytes)
		return;
	rocksdb_options_set_enable_blob_files(o, 1);
	rocksdb_options_set_min_blob_size(o, st->cfg.blob_min_bytes);
	rocksdb_options_set_blob_file_size(o, SP_STORE_BLOB_FILE_SIZE);
	rocksdb_options_set_enable_blob_gc(o, 1);
	rocksdb_options_set_blob_gc_age_cutoff(o, SP_STORE_BLOB_GC_AGE_CUTOFF);
}

int sp_store_blob_gc_cutoff(struct sp_store *st, bool all)
{
	const char *keys[] = { "blob_garbage_collection_age_cutoff" };
	const char *vals[] = { all ? "1.0" : SP_STORE_STR(SP_STORE_BLOB_GC_AGE_CUTOFF) };
	char *rerr = NULL;

	if (!st->cfg.blob_min_bytes)
		return 0;
	rocksdb_set_options_cf(st->db, st->cf[SP_STORE_CF_MAILBOX], 1, keys, vals, &rerr);
	if (rerr) {
		rocksdb_free(rerr);
		return -EIO;
	}
	return 0;
}

static int open_rocksdb(struct sp_store *st)
{
	char path[PATH_MAX];
	const rocksdb_options_t *cf_opts[SP_STORE_CF_COUNT];
	char *rerr = NULL;
	int rc;

	if (snprintf(path, sizeof(path), "%s/db", st->dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	rc = make_dir(st, path);
	if (rc < 0)
		return rc;

	st->bbto = rocksdb_block_based_options_create();
	/* Bloom filters: most dedup lookups and many meta lookups miss. The
	 * table options take ownership of the policy. */
	rocksdb_block_based_options_set_filter_policy(st->bbto, rocksdb_filterpolicy_create_bloom(10));

	st->db_opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(st->db_opts, 1);
	rocksdb_options_set_create_missing_column_families(st->db_opts, 1);
	rocksdb_options_set_max_open_files(st->db_opts, st->cfg.max_open_files);
	rocksdb_options_set_keep_log_file_num(st->db_opts, 4);
	rocksdb_options_set_paranoid_checks(st->db_opts, 1);
	/*
	 * RocksDB's info LOG lives in DIR/db on the same disk. In 7.8, once one
	 * append to a file writer fails (disk full), the next append to that
	 * writer trips an assertion (WritableFileWriter::
	 * AssertFalseAndGetStatusForPrevError, "sync_without_flush_called_")
	 * and aborts the process; the error handler logs several lines for one
	 * ENOSPC, so a full disk would kill the broker through its LOG. Hence
	 * only FATAL/HEADER lines (the header at open; the broker's own log
	 * says what failed).
	 */
	rocksdb_options_set_info_log_level(st->db_opts, SP_ROCKSDB_LOG_FATAL);
	rocksdb_options_set_block_based_table_factory(st->db_opts, st->bbto);

	/*
	 * A start on a nearly full disk (what store-ballast leaves it):
	 * recovery replays the WAL into memtables without writing them out as
	 * table files at once (that would need as much free space again as the
	 * WAL holds), and no file is preallocated (RocksDB's defaults reserve
	 * 4 MiB per MANIFEST and ~1.1 memtables per WAL with fallocate, which
	 * on such a disk took the room the CURRENT file needed).
	 * enforce_single_del_contracts off: a store written before the dedup
	 * compaction filter has SingleDeletes of dedup ids whose Put the
	 * filter may turn into a Delete in an earlier compaction; RocksDB 7.8
	 * would then fail that later compaction (and stop all writes) instead
	 * of dropping both. Dedup ids are deleted with Delete from now on.
	 */
	{
		rocksdb_options_t *o = rocksdb_options_create();

		rocksdb_get_options_from_string(st->db_opts,
						"avoid_flush_during_recovery=true;allow_fallocate=false;"
						"enforce_single_del_contracts=false;"
						"manifest_preallocation_size=0", o, &rerr);
		if (rerr) {
			rocksdb_options_destroy(o);
			return sp_store_rocks_fail(st, "options", rerr);
		}
		rocksdb_options_destroy(st->db_opts);
		st->db_opts = o;
	}

	/* Deleted data leaves the disk (sp_store.h): a bounded write-ahead
	 * log (small column families would otherwise never flush and keep
	 * every log file alive), and a MANIFEST rewritten at each edit, so it
	 * does not keep the boundary keys of deleted table files. */
	if (st->cfg.max_wal_bytes)
		rocksdb_options_set_max_total_wal_size(st->db_opts, st->cfg.max_wal_bytes);
	rocksdb_options_set_max_manifest_file_size(st->db_opts, SP_STORE_MANIFEST_MAX);

	st->cf_opts = rocksdb_options_create();
	rocksdb_options_set_block_based_table_factory(st->cf_opts, st->bbto);
	for (int i = 0; i < SP_STORE_CF_COUNT; i++) {
		const char *own = cf_tuning[i];

		cf_opts[i] = st->cf_opts;
		if (!own)
			continue;
		st->cf_own[i] = rocksdb_options_create();
		rocksdb_get_options_from_string(st->cf_opts, own, st->cf_own[i], &rerr);
		if (rerr)
			return sp_store_rocks_fail(st, "options", rerr);
		cf_opts[i] = st->cf_own[i];
	}
	st->dedup_filter = rocksdb_compactionfilter_create(st, dedup_filter_state_free, dedup_filter,
							   dedup_filter_name);
	if (!st->dedup_filter)
		return -ENOMEM;
	rocksdb_options_set_compaction_filter(st->cf_own[SP_STORE_CF_DEDUP], st->dedup_filter);
	sp_store_blob_options(st, st->cf_own[SP_STORE_CF_MAILBOX]);
	/*
	 * The dedup family is only ever read by whole key (never iterated):
	 * its memtable is a hash of small skiplists, one bucket per key's hash
	 * (the prefix is the whole 32-byte id), so an insert of a random id
	 * does not search one skiplist of every id of the memtable. Such a
	 * memtable takes no concurrent inserts: the store writes from one
	 * thread anyway (allow_concurrent_memtable_write off below).
	 */
	rocksdb_options_set_prefix_extractor(st->cf_own[SP_STORE_CF_DEDUP],
					     rocksdb_slicetransform_create_fixed_prefix(
						     SP_STORE_DEDUP_ID_LEN));
	rocksdb_options_set_hash_skip_list_rep(st->cf_own[SP_STORE_CF_DEDUP], 1u << 18, 4, 4);
	rocksdb_options_set_allow_concurrent_memtable_write(st->db_opts, 0);

	st->wo_sync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(st->wo_sync, 1);
	st->wo_nosync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(st->wo_nosync, 0);
	st->ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_verify_checksums(st->ro, 1);
	st->fo = rocksdb_flushoptions_create();
	rocksdb_flushoptions_set_wait(st->fo, 1);
	st->fo_nowait = rocksdb_flushoptions_create();
	rocksdb_flushoptions_set_wait(st->fo_nowait, 0);

	st->db = rocksdb_open_column_families(st->db_opts, path, SP_STORE_CF_COUNT, cf_names, cf_opts,
					      st->cf, &rerr);
	if (!st->db) {
		/* Open errors name files, never keys: keep RocksDB's whole text. */
		rc = rerr ? map_rocksdb_error(rerr) : -EIO;
		if (rc == -EBUSY)
			sp_store_set_err(st, "store: database %s is locked by another process (%s)", path,
				rerr);
		else
			sp_store_set_err(st, "store: cannot open database %s: %s", path,
				rerr ? rerr : "unknown error");
		rocksdb_free(rerr);
		return rc;
	}
	return 0;
}

static int get_default(struct sp_store *st, const char *key, char **val, size_t *len)
{
	char *rerr = NULL;

	*val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_DEFAULT], key, strlen(key), len,
			      &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "read", rerr);
	return 0;
}

/* Writes the epoch record durably (sync) so no sequence below the new floor
 * can be handed out again after a crash. */
static int write_epoch(struct sp_store *st, uint64_t epoch)
{
	uint8_t v[SP_STORE_EPOCH_LEN];
	char *rerr = NULL;

	sp_store_epoch_encode(v, epoch);
	rocksdb_put_cf(st->db, st->wo_sync, st->cf[SP_STORE_CF_DEFAULT], "epoch", 5, (const char *)v,
		       sizeof(v), &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "epoch write", rerr);
	st->epoch = epoch;
	return 0;
}

int sp_store_bump_epoch(struct sp_store *st)
{
	int rc = write_epoch(st, st->epoch + 1);

	if (rc < 0) {
		sp_store_poison(st);
		return -EIO;
	}
	return 0;
}

void sp_store_poison(struct sp_store *st)
{
	st->poisoned = true;
}

static int check_format_and_epoch(struct sp_store *st)
{
	char *val = NULL, *rerr = NULL;
	size_t len = 0;
	uint64_t epoch = 0;
	uint8_t fmt = SP_STORE_FORMAT;
	int rc;

	rc = get_default(st, "format", &val, &len);
	if (rc < 0)
		return rc;
	if (val) {
		uint8_t have = len == 1 ? (uint8_t)val[0] : 0;

		rocksdb_free(val);
		if (have != 1 && have != 2 && have != SP_STORE_FORMAT) {
			sp_store_set_err(st, "store: %s/db has an unknown store format", st->dir);
			return -EPROTO;
		}
		/* Formats 1 (v1 mailbox values only) and 2 (no window
		 * records) are read as they are; the record says 3 from now
		 * on, so an older build refuses the store instead of skipping
		 * v2 values or window records as corrupt (sp_store.h). */
		if (have != SP_STORE_FORMAT) {
			rocksdb_put_cf(st->db, st->wo_sync, st->cf[SP_STORE_CF_DEFAULT], "format", 6,
				       (const char *)&fmt, 1, &rerr);
			if (rerr)
				return sp_store_rocks_fail(st, "format write", rerr);
		}
	} else {
		rocksdb_put_cf(st->db, st->wo_sync, st->cf[SP_STORE_CF_DEFAULT], "format", 6,
			       (const char *)&fmt, 1, &rerr);
		if (rerr)
			return sp_store_rocks_fail(st, "format write", rerr);
	}

	rc = get_default(st, "epoch", &val, &len);
	if (rc < 0)
		return rc;
	if (val) {
		bool ok = sp_store_epoch_decode((const uint8_t *)val, len, &epoch) == 0;

		if (ok)
			epoch++;
		rocksdb_free(val);
		if (!ok) {
			sp_store_set_err(st, "store: the epoch record is corrupt");
			return -EBADMSG;
		}
	}
	return write_epoch(st, epoch);
}

static int validate_config(const struct sp_store_config *cfg, char *err, size_t errlen)
{
	const char *why = NULL;

	if (!cfg || !cfg->dir || !cfg->dir[0])
		why = "no data directory";
	else if (cfg->sync > SP_STORE_SYNC_NEVER)
		why = "unknown sync mode";
	else if (cfg->ttl_ms == 0 || cfg->dedup_window_ms == 0)
		why = "ttl and dedup window must be > 0";
	else if (cfg->quota_count == 0 || cfg->quota_bytes == 0)
		why = "mailbox quotas must be > 0";
	else if (cfg->max_open_files < 16)
		why = "max_open_files must be >= 16";
	else if (cfg->share_pct > 100)
		why = "share_pct must be <= 100";
	if (!why)
		return 0;
	if (err && errlen)
		snprintf(err, errlen, "store: invalid configuration: %s", why);
	return -EINVAL;
}

int sp_store_open(struct sp_store **out, const struct sp_store_config *cfg, char *err,
		  size_t errlen)
{
	struct sp_store *st = NULL;
	int rc;

	*out = NULL;
	rc = validate_config(cfg, err, errlen);
	if (rc < 0)
		return rc;
	if (sodium_init() < 0) {
		if (err && errlen)
			snprintf(err, errlen, "store: libsodium failed to initialise");
		return -EIO;
	}
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->lock_fd = -1;
	st->sync_efd = -1;
	pthread_mutex_init(&st->prekey_lock, NULL);
	st->cfg = *cfg;
	st->dir = strdup(cfg->dir);
	st->dedup_key = sodium_malloc(crypto_generichash_KEYBYTES);
	if (!st->dir || !st->dedup_key || sp_store_batch_init(st) < 0) {
		rc = -ENOMEM;
		sp_store_set_err(st, "store: out of memory");
		goto out;
	}
	st->cfg.dir = st->dir;
	st->sweep_windows_ahead = true;  /* the last process's windows (sp_store_expire.c) */

	rc = make_dir(st, st->dir);
	if (rc < 0)
		goto out;
	rc = take_lock(st);
	if (rc < 0)
		goto out;
	rc = ballast_at_open(st);
	if (rc < 0)
		goto out;
	rc = load_dedup_key(st);
	if (rc < 0)
		goto out;
	rc = open_rocksdb(st);
	if (rc < 0)
		goto out;
	rc = check_format_and_epoch(st);
	if (rc < 0)
		goto out;
	rc = sp_store_totals_load(st);
	if (rc < 0)
		goto out;
	*out = st;
	st = NULL;
	rc = 0;
out:
	if (st) {
		if (err && errlen)
			snprintf(err, errlen, "%s", st->err[0] ? st->err : strerror(-rc));
		sp_store_poison(st); /* nothing to sync */
		sp_store_close(st);
	}
	return rc;
}

void sp_store_close(struct sp_store *st)
{
	if (!st)
		return;
	if (st->db) {
		sp_store_scrub_stop(st);
		sp_store_syncer_stop(st);
		if (!st->poisoned && (st->unsynced || st->commit_ticket))
			sp_store_sync(st);
		for (int i = 0; i < SP_STORE_CF_COUNT; i++)
			if (st->cf[i])
				rocksdb_column_family_handle_destroy(st->cf[i]);
		rocksdb_close(st->db);
	}
	free_rocks_options(st);
	sp_store_batch_fini(st);
	if (st->dedup_key)
		sodium_free(st->dedup_key); /* sodium_free wipes */
	if (st->lock_fd >= 0)
		close(st->lock_fd); /* releases the flock */
	sp_store_read_fini(st);
	pthread_mutex_destroy(&st->prekey_lock);
	free(st->dir);
	free(st);
}

const char *sp_store_errmsg(const struct sp_store *st)
{
	return st->err;
}

/* ---- operations ------------------------------------------------------------------------ */

void sp_store_get_stats(const struct sp_store *st, struct sp_store_stats *out)
{
	const struct sp_store_wstats *w = &st->wstats;
	const struct sp_store_xstats *x = &st->xstats;

	memset(out, 0, sizeof(*out));
	out->enqueued = w->enqueued;
	out->duplicates = w->duplicates;
	out->quota_refused = w->quota_refused;
	out->space_refused = w->space_refused;
	out->share_refused = w->share_refused;
	out->share_untracked = w->share_untracked;
	out->share_loads = w->share_loads;
	out->share_loaded_entries = w->share_loaded_entries;
	out->share_pairs = sp_store_share_pairs(st);
	out->space_low = st->space_checked && st->cfg.min_free_bytes &&
			 st->free_bytes < st->cfg.min_free_bytes;
	out->ballast = st->ballast;
	out->acked = w->acked;
	out->ack_unknown = w->ack_unknown;
	out->acked_bytes = w->acked_bytes;
	out->acked_recent = w->acked_recent;
	out->meta_cached = w->meta_cached;
	out->commits = w->commits;
	out->commit_failures = w->commit_failures;
	out->syncs = w->syncs;
	out->syncs += __atomic_load_n(&st->sync_count, __ATOMIC_RELAXED);
	out->scrubs = st->scrubs;
	out->scrub_failures = st->scrub_failures;
	out->expired = x->expired;
	out->dedup_expired = x->dedup_expired +
			     __atomic_load_n(&st->dedup_filtered, __ATOMIC_RELAXED);
	out->expired_bytes = x->expired_bytes;
	out->purged = st->purged;
	out->purged_bytes = st->purged_bytes;
	out->sweep_steps = x->sweep_steps;
	out->sweep_resumed = x->sweep_resumed;
	out->sweep_budget_stops = x->sweep_budget_stops;
	out->corrupt = w->corrupt + x->corrupt + st->read_corrupt;
	out->epoch = st->epoch;
}

int sp_store_property(struct sp_store *st, enum sp_store_cf cf, const char *name, uint64_t *out)
{
	if ((unsigned)cf >= SP_STORE_CF_COUNT || !name)
		return -EINVAL;
	if (rocksdb_property_int_cf(st->db, st->cf[cf], name, out) != 0)
		return -ENOENT;
	return 0;
}

int sp_store_property_text(struct sp_store *st, const char *name, char **out)
{
	char *v;

	*out = NULL;
	if (!name)
		return -EINVAL;
	v = rocksdb_property_value(st->db, name);
	if (!v)
		return -ENOENT;
	/* RocksDB's allocation, handed out as plain malloc'd memory. */
	*out = strdup(v);
	rocksdb_free(v);
	return *out ? 0 : -ENOMEM;
}

static int table_prop(const char *s, const char *name, uint64_t *out)
{
	const char *p = strstr(s, name);
	char *end;

	if (!p)
		return -ENOENT;
	p += strlen(name);
	errno = 0;
	*out = strtoull(p, &end, 10);
	if (end == p || errno)
		return -EBADMSG;
	return 0;
}

int sp_store_table_stats(struct sp_store *st, enum sp_store_cf cf, uint64_t *entries,
			 uint64_t *deletions)
{
	char *s;
	int rc;

	if ((unsigned)cf >= SP_STORE_CF_COUNT)
		return -EINVAL;
	s = rocksdb_property_value_cf(st->db, st->cf[cf], "rocksdb.aggregated-table-properties");
	if (!s)
		return -ENOENT;
	rc = table_prop(s, "# entries=", entries);
	if (rc == 0)
		rc = table_prop(s, "# deletions=", deletions);
	rocksdb_free(s);
	return rc;
}

int sp_store_flush(struct sp_store *st)
{
	for (int i = 0; i < SP_STORE_CF_COUNT; i++) {
		char *rerr = NULL;

		rocksdb_flush_cf(st->db, st->fo, st->cf[i], &rerr);
		if (rerr)
			return sp_store_rocks_fail(st, "flush", rerr);
	}
	return 0;
}

int sp_store_compact(struct sp_store *st)
{
	int rc = sp_store_flush(st);

	if (rc < 0)
		return rc;
	for (int i = 0; i < SP_STORE_CF_COUNT; i++)
		rocksdb_compact_range_cf(st->db, st->cf[i], NULL, 0, NULL, 0);
	return 0;
}
