/*
 * sp_store.c: durable mailboxes in RocksDB. Layout, guarantees and ownership
 * are documented in sp_store.h; this file explains only the how.
 *
 * The batch is a WriteBatchWithIndex: every read inside a batch (dedup,
 * "does this entry exist") goes through
 * rocksdb_writebatch_wi_get_from_batch_and_db_cf, so an ack sees an entry
 * enqueued a moment ago, a retry sees the dedup record of the same
 * iteration, and a second ack of one seq in one batch finds it gone. That is
 * also what keeps SingleDelete safe: a key is SingleDeleted only after a
 * lookup proved it present, so no key ever gets two SingleDeletes for one
 * Put. Per-device counters are different: they change with every envelope
 * and ack, so the batch keeps them in a small hash map and writes each
 * changed device's record once, at commit.
 */
#include "sp_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rocksdb/c.h>
#include <sodium.h>

enum {
	SP_ROCKSDB_LOG_FATAL = 4,       /* rocksdb::InfoLogLevel::FATAL_LEVEL */
	ERRMSG_LEN = 256,
	KIND_MAILBOX = 'm',
	KIND_DEDUP = 'd',
	EXPIRY_KEY_MAX = SP_STORE_EXPIRY_MAILBOX_KEY_LEN,
};

static const char *const cf_names[SP_STORE_CF_COUNT] = SP_STORE_CF_NAMES;

struct meta {
	uint64_t next_seq;
	uint64_t count;
	uint64_t bytes;
};

/* A device's counters while a batch is open: written to the WriteBatch once,
 * at commit, however many envelopes and acks of that device the batch holds
 * (an Ack frame carries up to 64 seqs: one meta write, not 64). */
struct mslot {
	uint8_t key[SP_KEY_LEN];
	struct meta m;
	bool used;
	bool dirty;                     /* changed by this batch: written at commit */
};

struct sp_store_batch {
	struct sp_store *st;
	rocksdb_writebatch_wi_t *wb;
	uint64_t now_ms;
	size_t ops;
	size_t assigned;                /* sequences handed out by this batch */
	uint64_t removed_bytes;         /* body bytes of the entry remove_entry last removed */
	bool open;
	/* open addressing, keyed by SipHash of the device key under hkey
	 * (device keys are chosen by peers) */
	struct mslot *slots;
	uint32_t *used_idx;             /* slots in use, in insertion order */
	size_t cap, count;
	uint8_t hkey[crypto_shorthash_KEYBYTES];
};

struct sp_store {
	rocksdb_t *db;
	rocksdb_options_t *db_opts;
	rocksdb_options_t *cf_opts;
	rocksdb_block_based_table_options_t *bbto;
	rocksdb_column_family_handle_t *cf[SP_STORE_CF_COUNT];
	rocksdb_writeoptions_t *wo_sync;
	rocksdb_writeoptions_t *wo_nosync;
	rocksdb_readoptions_t *ro;
	rocksdb_flushoptions_t *fo;

	struct sp_store_config cfg;
	char *dir;
	int lock_fd;
	uint8_t *dedup_key;             /* sodium_malloc'd, crypto_generichash_KEYBYTES */

	uint64_t epoch;
	bool poisoned;
	bool unsynced;                  /* BATCH mode: commits since the last sync */
	uint64_t unsynced_since_ms;

	struct sp_store_batch batch;
	uint8_t *rbuf;                  /* sp_store_read's body buffer */
	size_t rbuf_cap;

	struct sp_store_stats stats;
	char err[ERRMSG_LEN];
};

static void flush_meta_map(struct sp_store_batch *b);

/* ---- small helpers ----------------------------------------------------------- */

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

__attribute__((format(printf, 2, 3))) static void set_err(struct sp_store *st, const char *fmt, ...)
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

/* Records a RocksDB failure of operation `what`, frees rerr, returns -errno. */
static int rocks_fail(struct sp_store *st, const char *what, char *rerr)
{
	char cls[64];
	int rc = map_rocksdb_error(rerr);

	status_class(cls, sizeof(cls), rerr);
	set_err(st, "store: %s failed: %s", what, cls);
	rocksdb_free(rerr);
	return rc;
}

/* ---- keys and values --------------------------------------------------------- */

void sp_store_mailbox_key(uint8_t out[SP_STORE_MAILBOX_KEY_LEN], const uint8_t recipient[SP_KEY_LEN],
			  uint64_t seq)
{
	memcpy(out, recipient, SP_KEY_LEN);
	put_be64(out + SP_KEY_LEN, seq);
}

void sp_store_expiry_mailbox_key(uint8_t out[SP_STORE_EXPIRY_MAILBOX_KEY_LEN], uint64_t expires_ms,
				 const uint8_t recipient[SP_KEY_LEN], uint64_t seq)
{
	put_be64(out, expires_ms);
	out[8] = KIND_MAILBOX;
	memcpy(out + 9, recipient, SP_KEY_LEN);
	put_be64(out + 9 + SP_KEY_LEN, seq);
}

static void expiry_dedup_key(uint8_t out[SP_STORE_EXPIRY_DEDUP_KEY_LEN], uint64_t expires_ms,
			     const uint8_t id[SP_STORE_DEDUP_ID_LEN])
{
	put_be64(out, expires_ms);
	out[8] = KIND_DEDUP;
	memcpy(out + 9, id, SP_STORE_DEDUP_ID_LEN);
}

struct mbox_hdr {
	uint32_t body_len;
	uint64_t accepted_ms;
	uint64_t expires_ms;
};

static void mbox_hdr_encode(uint8_t out[SP_STORE_MAILBOX_HDR_LEN], const struct mbox_hdr *h)
{
	out[0] = SP_STORE_FORMAT;
	out[1] = out[2] = out[3] = 0;
	put_be32(out + 4, h->body_len);
	put_be64(out + 8, h->accepted_ms);
	put_be64(out + 16, h->expires_ms);
}

/* 0, or -EBADMSG if v is not exactly a v1 mailbox value. */
static int mbox_decode(const uint8_t *v, size_t len, struct mbox_hdr *h)
{
	if (len < SP_STORE_MAILBOX_HDR_LEN || v[0] != SP_STORE_FORMAT || !all_zero(v + 1, 3))
		return -EBADMSG;
	h->body_len = get_be32(v + 4);
	h->accepted_ms = get_be64(v + 8);
	h->expires_ms = get_be64(v + 16);
	if (len - SP_STORE_MAILBOX_HDR_LEN != h->body_len)
		return -EBADMSG;
	return 0;
}

static void meta_encode(uint8_t out[SP_STORE_META_LEN], const struct meta *m)
{
	memset(out, 0, 8);
	out[0] = SP_STORE_FORMAT;
	put_be64(out + 8, m->next_seq);
	put_be64(out + 16, m->count);
	put_be64(out + 24, m->bytes);
}

static int meta_decode(const uint8_t *v, size_t len, struct meta *m)
{
	if (len != SP_STORE_META_LEN || v[0] != SP_STORE_FORMAT || !all_zero(v + 1, 7))
		return -EBADMSG;
	m->next_seq = get_be64(v + 8);
	m->count = get_be64(v + 16);
	m->bytes = get_be64(v + 24);
	return 0;
}

static void dedup_encode(uint8_t out[SP_STORE_DEDUP_VALUE_LEN], uint64_t seq, uint64_t expires_ms)
{
	memset(out, 0, 8);
	out[0] = SP_STORE_FORMAT;
	put_be64(out + 8, seq);
	put_be64(out + 16, expires_ms);
}

static int dedup_decode(const uint8_t *v, size_t len, uint64_t *seq, uint64_t *expires_ms)
{
	if (len != SP_STORE_DEDUP_VALUE_LEN || v[0] != SP_STORE_FORMAT || !all_zero(v + 1, 7))
		return -EBADMSG;
	*seq = get_be64(v + 8);
	*expires_ms = get_be64(v + 16);
	return 0;
}

/* The lowest seq this open may assign to any device (see "Sequences"). */
static uint64_t seq_floor(const struct sp_store *st)
{
	if (st->epoch >= (1ull << (64 - SP_STORE_EPOCH_SHIFT)))
		return UINT64_MAX;
	return st->epoch << SP_STORE_EPOCH_SHIFT;
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
			set_err(st, "store: cannot create %s: %s", path, strerror(-rc));
			goto out;
		}
		if (write(fd, key, sizeof(key)) != (ssize_t)sizeof(key) || fsync(fd) < 0) {
			rc = errno ? -errno : -EIO;
			set_err(st, "store: cannot write %s: %s", path, strerror(-rc));
			unlink(path);
			goto out;
		}
		rc = fsync_dir(st->dir);
		if (rc < 0) {
			set_err(st, "store: cannot sync %s: %s", st->dir, strerror(-rc));
			goto out;
		}
	} else if (fd < 0) {
		rc = -errno;
		set_err(st, "store: cannot open %s: %s", path, strerror(-rc));
		goto out;
	} else {
		if (fstat(fd, &sb) < 0) {
			rc = -errno;
			goto out;
		}
		if (!S_ISREG(sb.st_mode) || (sb.st_mode & 077)) {
			rc = -EACCES;
			set_err(st, "store: %s must be a regular file of mode 0600", path);
			goto out;
		}
		rc = read_full(fd, key, sizeof(key));
		if (rc == 0 && read(fd, &extra, 1) != 0)
			rc = -EBADMSG;
		if (rc < 0) {
			set_err(st, "store: %s is not a %zu-byte key file", path, sizeof(key));
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
}

static int make_dir(struct sp_store *st, const char *path)
{
	struct stat sb;

	if (mkdir(path, 0700) == 0)
		return 0;
	if (errno != EEXIST) {
		int rc = -errno;

		set_err(st, "store: cannot create directory %s: %s", path, strerror(-rc));
		return rc;
	}
	if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		set_err(st, "store: %s exists and is not a directory", path);
		return -ENOTDIR;
	}
	if (access(path, W_OK | X_OK) < 0) {
		int rc = -errno;

		set_err(st, "store: directory %s is not writable: %s", path, strerror(-rc));
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
		set_err(st, "store: cannot open %s: %s", path, strerror(-rc));
		return rc;
	}
	/* flock locks belong to the open file description: a second open of the
	 * same DIR fails even from this process, unlike fcntl locks. */
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (rc == -EBUSY)
			set_err(st, "store: data directory %s is in use by another sealpostd "
				"(or another store in this process)", st->dir);
		else
			set_err(st, "store: cannot lock %s: %s", path, strerror(-rc));
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
	if (st->cf_opts)
		rocksdb_options_destroy(st->cf_opts);
	if (st->db_opts)
		rocksdb_options_destroy(st->db_opts);
	if (st->bbto)
		rocksdb_block_based_options_destroy(st->bbto);
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
	 * ENOSPC, so a full disk killed the broker through its LOG. Only
	 * FATAL/HEADER lines are written now (the header at open; our own log
	 * says what failed).
	 */
	rocksdb_options_set_info_log_level(st->db_opts, SP_ROCKSDB_LOG_FATAL);
	rocksdb_options_set_block_based_table_factory(st->db_opts, st->bbto);

	st->cf_opts = rocksdb_options_create();
	rocksdb_options_set_block_based_table_factory(st->cf_opts, st->bbto);
	for (int i = 0; i < SP_STORE_CF_COUNT; i++)
		cf_opts[i] = st->cf_opts;

	st->wo_sync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(st->wo_sync, 1);
	st->wo_nosync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(st->wo_nosync, 0);
	st->ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_verify_checksums(st->ro, 1);
	st->fo = rocksdb_flushoptions_create();
	rocksdb_flushoptions_set_wait(st->fo, 1);

	st->db = rocksdb_open_column_families(st->db_opts, path, SP_STORE_CF_COUNT, cf_names, cf_opts,
					      st->cf, &rerr);
	if (!st->db) {
		/* Open errors name files, never keys: keep RocksDB's whole text. */
		rc = rerr ? map_rocksdb_error(rerr) : -EIO;
		if (rc == -EBUSY)
			set_err(st, "store: database %s is locked by another process (%s)", path,
				rerr);
		else
			set_err(st, "store: cannot open database %s: %s", path,
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
		return rocks_fail(st, "read", rerr);
	return 0;
}

/* Writes the epoch record durably (sync) so no sequence below the new floor
 * can be handed out again after a crash. */
static int write_epoch(struct sp_store *st, uint64_t epoch)
{
	uint8_t v[8];
	char *rerr = NULL;

	put_be64(v, epoch);
	rocksdb_put_cf(st->db, st->wo_sync, st->cf[SP_STORE_CF_DEFAULT], "epoch", 5, (const char *)v,
		       sizeof(v), &rerr);
	if (rerr)
		return rocks_fail(st, "epoch write", rerr);
	st->epoch = epoch;
	st->stats.epoch = epoch;
	return 0;
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
		bool ok = len == 1 && (uint8_t)val[0] == SP_STORE_FORMAT;

		rocksdb_free(val);
		if (!ok) {
			set_err(st, "store: %s/db has an unknown store format", st->dir);
			return -EPROTO;
		}
	} else {
		rocksdb_put_cf(st->db, st->wo_sync, st->cf[SP_STORE_CF_DEFAULT], "format", 6,
			       (const char *)&fmt, 1, &rerr);
		if (rerr)
			return rocks_fail(st, "format write", rerr);
	}

	rc = get_default(st, "epoch", &val, &len);
	if (rc < 0)
		return rc;
	if (val) {
		bool ok = len == 8;

		if (ok)
			epoch = get_be64((const uint8_t *)val) + 1;
		rocksdb_free(val);
		if (!ok) {
			set_err(st, "store: the epoch record is corrupt");
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
	st->cfg = *cfg;
	st->dir = strdup(cfg->dir);
	st->dedup_key = sodium_malloc(crypto_generichash_KEYBYTES);
	st->batch.wb = rocksdb_writebatch_wi_create(0, 1);
	if (!st->dir || !st->dedup_key || !st->batch.wb) {
		rc = -ENOMEM;
		set_err(st, "store: out of memory");
		goto out;
	}
	st->cfg.dir = st->dir;
	st->batch.st = st;
	randombytes_buf(st->batch.hkey, sizeof(st->batch.hkey));

	rc = make_dir(st, st->dir);
	if (rc < 0)
		goto out;
	rc = take_lock(st);
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
	*out = st;
	st = NULL;
	rc = 0;
out:
	if (st) {
		if (err && errlen)
			snprintf(err, errlen, "%s", st->err[0] ? st->err : strerror(-rc));
		st->poisoned = true; /* nothing to sync */
		sp_store_close(st);
	}
	return rc;
}

void sp_store_close(struct sp_store *st)
{
	if (!st)
		return;
	if (st->db) {
		if (!st->poisoned && st->unsynced)
			sp_store_sync(st);
		for (int i = 0; i < SP_STORE_CF_COUNT; i++)
			if (st->cf[i])
				rocksdb_column_family_handle_destroy(st->cf[i]);
		rocksdb_close(st->db);
	}
	free_rocks_options(st);
	if (st->batch.wb)
		rocksdb_writebatch_wi_destroy(st->batch.wb);
	free(st->batch.slots);
	free(st->batch.used_idx);
	if (st->dedup_key)
		sodium_free(st->dedup_key); /* sodium_free wipes */
	if (st->lock_fd >= 0)
		close(st->lock_fd); /* releases the flock */
	free(st->rbuf);
	free(st->dir);
	free(st);
}

const char *sp_store_errmsg(const struct sp_store *st)
{
	return st->err;
}

/* ---- batch plumbing -------------------------------------------------------------- */

/* Value of key in cf as seen through the batch (batch overlays DB). *val is
 * NULL if absent; free with rocksdb_free. */
static int batch_get(struct sp_store_batch *b, enum sp_store_cf cf, const uint8_t *key,
		     size_t klen, char **val, size_t *vlen)
{
	struct sp_store *st = b->st;
	char *rerr = NULL;

	*val = rocksdb_writebatch_wi_get_from_batch_and_db_cf(b->wb, st->db, st->ro, st->cf[cf],
							      (const char *)key, klen, vlen, &rerr);
	if (rerr)
		return rocks_fail(st, "read", rerr);
	return 0;
}

static void batch_put(struct sp_store_batch *b, enum sp_store_cf cf, const uint8_t *key,
		      size_t klen, const uint8_t *val, size_t vlen)
{
	rocksdb_writebatch_wi_put_cf(b->wb, b->st->cf[cf], (const char *)key, klen,
				     (const char *)val, vlen);
	b->ops++;
}

/* For keys written exactly once (mailbox, expiry, dedup): see the top. */
static void batch_sdel(struct sp_store_batch *b, enum sp_store_cf cf, const uint8_t *key,
		       size_t klen)
{
	rocksdb_writebatch_wi_singledelete_cf(b->wb, b->st->cf[cf], (const char *)key, klen);
	b->ops++;
}

static int check_batch(const struct sp_store_batch *b)
{
	if (!b || !b->open)
		return -EINVAL;
	if (b->st->poisoned)
		return -EIO;
	return 0;
}

int sp_store_batch_begin(struct sp_store *st, uint64_t now_ms, struct sp_store_batch **out)
{
	*out = NULL;
	if (st->poisoned) {
		set_err(st, "store: writes refused after an unrecoverable failure; reopen");
		return -EIO;
	}
	if (st->batch.open)
		return -EBUSY;
	rocksdb_writebatch_wi_clear(st->batch.wb);
	st->batch.now_ms = now_ms;
	st->batch.ops = 0;
	st->batch.assigned = 0;
	st->batch.open = true;
	*out = &st->batch;
	return 0;
}

size_t sp_store_batch_ops(const struct sp_store_batch *b)
{
	return b->ops;
}

/* After a batch that handed out sequences is lost, move every device's floor
 * past them (one synced write) or stop accepting writes. */
static int bump_epoch(struct sp_store *st)
{
	int rc = write_epoch(st, st->epoch + 1);

	if (rc < 0) {
		st->poisoned = true;
		return -EIO;
	}
	return 0;
}

static void clear_meta_map(struct sp_store_batch *b)
{
	for (size_t i = 0; i < b->count; i++)
		b->slots[b->used_idx[i]].used = false;
	b->count = 0;
}

static void end_batch(struct sp_store_batch *b)
{
	clear_meta_map(b);
	rocksdb_writebatch_wi_clear(b->wb);
	b->open = false;
	b->ops = 0;
	b->assigned = 0;
}

int sp_store_batch_commit(struct sp_store_batch *b)
{
	struct sp_store *st;
	char *rerr = NULL;
	bool sync;
	int rc;

	rc = check_batch(b);
	if (rc < 0) {
		if (b && b->open)
			end_batch(b);
		return rc;
	}
	st = b->st;
	if (b->ops == 0) {
		end_batch(b);
		return 0;
	}
	flush_meta_map(b);
	sync = st->cfg.sync == SP_STORE_SYNC_ALWAYS;
	rocksdb_write_writebatch_wi(st->db, sync ? st->wo_sync : st->wo_nosync, b->wb, &rerr);
	if (rerr) {
		/*
		 * No further write, sync or flush in this process: after a failed
		 * WAL append, RocksDB 7.8 aborts on the next use of that file
		 * writer (see the info-log note in open_rocksdb), and after a
		 * disk-full or I/O error it refuses writes anyway until resumed.
		 * The sequences handed out stay unused: the next open advances
		 * the epoch past them.
		 */
		rc = rocks_fail(st, "commit", rerr);
		st->stats.commit_failures++;
		st->poisoned = true;
		end_batch(b);
		return rc;
	}
	st->stats.commits++;
	if (sync) {
		st->stats.syncs++;
	} else if (st->cfg.sync == SP_STORE_SYNC_BATCH && !st->unsynced) {
		st->unsynced = true;
		st->unsynced_since_ms = b->now_ms;
	} else if (st->cfg.sync == SP_STORE_SYNC_NEVER) {
		st->unsynced = true; /* synced once at close */
	}
	end_batch(b);
	return 0;
}

int sp_store_batch_abort(struct sp_store_batch *b)
{
	int rc = 0;

	if (!b || !b->open)
		return -EINVAL;
	if (b->assigned && !b->st->poisoned)
		rc = bump_epoch(b->st);
	end_batch(b);
	return rc;
}

int sp_store_sync(struct sp_store *st)
{
	char *rerr = NULL;

	if (st->poisoned)
		return -EIO;    /* the WAL writer may have failed: never touch it again */
	rocksdb_flush_wal(st->db, 1, &rerr);
	if (rerr)
		return rocks_fail(st, "WAL sync", rerr);
	st->unsynced = false;
	st->stats.syncs++;
	return 0;
}

int sp_store_tick(struct sp_store *st, uint64_t now_ms)
{
	int rc;

	if (st->cfg.sync != SP_STORE_SYNC_BATCH || !st->unsynced || st->poisoned)
		return 0;
	if (now_ms - st->unsynced_since_ms < st->cfg.sync_interval_ms &&
	    now_ms >= st->unsynced_since_ms)
		return 0;
	rc = sp_store_sync(st);
	return rc < 0 ? rc : 1;
}

/* ---- meta -------------------------------------------------------------------------- */

/*
 * Recomputes a device's counters from its committed mailbox range (called
 * when its meta value is corrupt or missing while entries exist). Bounded by
 * the mailbox's size, which the quota bounds.
 */
static int rebuild_meta(struct sp_store *st, const uint8_t recipient[SP_KEY_LEN], struct meta *m)
{
	uint8_t lo[SP_STORE_MAILBOX_KEY_LEN], hi[SP_STORE_MAILBOX_KEY_LEN];
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_iterator_t *it;
	char *rerr = NULL;
	uint64_t last = 0;

	sp_store_mailbox_key(lo, recipient, 0);
	sp_store_mailbox_key(hi, recipient, UINT64_MAX);
	rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, sizeof(hi));
	it = rocksdb_create_iterator_cf(st->db, ro, st->cf[SP_STORE_CF_MAILBOX]);
	memset(m, 0, sizeof(*m));
	for (rocksdb_iter_seek(it, (const char *)lo, sizeof(lo)); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);

		rocksdb_iter_value(it, &vlen);
		if (klen != SP_STORE_MAILBOX_KEY_LEN)
			continue;
		last = get_be64(k + SP_KEY_LEN);
		m->count++;
		m->bytes += vlen > SP_STORE_MAILBOX_HDR_LEN ? vlen - SP_STORE_MAILBOX_HDR_LEN : 0;
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	if (rerr)
		return rocks_fail(st, "meta rebuild", rerr);
	m->next_seq = last + 1;
	return 0;
}

static size_t slot_home(const struct sp_store_batch *b, const uint8_t key[SP_KEY_LEN])
{
	uint8_t h[crypto_shorthash_BYTES];
	uint64_t v;

	crypto_shorthash(h, key, SP_KEY_LEN, b->hkey);
	memcpy(&v, h, sizeof(v));
	return (size_t)(v & (b->cap - 1));
}

static struct mslot *find_slot(struct sp_store_batch *b, const uint8_t key[SP_KEY_LEN])
{
	size_t i;

	if (!b->cap)
		return NULL;
	for (i = slot_home(b, key);; i = (i + 1) & (b->cap - 1)) {
		if (!b->slots[i].used)
			return NULL;
		if (!memcmp(b->slots[i].key, key, SP_KEY_LEN))
			return &b->slots[i];
	}
}

/* Inserts (the key must be absent); grows at load 1/2. */
static struct mslot *add_slot(struct sp_store_batch *b, const uint8_t key[SP_KEY_LEN])
{
	size_t i;

	if ((b->count + 1) * 2 > b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 64;
		struct mslot *ns = calloc(ncap, sizeof(*ns));
		uint32_t *nu = malloc(ncap * sizeof(*nu));
		struct mslot *os = b->slots;
		uint32_t *ou = b->used_idx;
		size_t on = b->count;

		if (!ns || !nu || ncap > UINT32_MAX) {
			free(ns);
			free(nu);
			return NULL;
		}
		b->slots = ns;
		b->used_idx = nu;
		b->cap = ncap;
		b->count = 0;
		for (size_t j = 0; j < on; j++) {
			struct mslot *o = &os[ou[j]];
			struct mslot *n = add_slot(b, o->key);

			n->m = o->m;
			n->dirty = o->dirty;
		}
		free(os);
		free(ou);
	}
	for (i = slot_home(b, key); b->slots[i].used; i = (i + 1) & (b->cap - 1))
		;
	memcpy(b->slots[i].key, key, SP_KEY_LEN);
	b->slots[i].used = true;
	b->slots[i].dirty = false;
	b->used_idx[b->count++] = (uint32_t)i;
	return &b->slots[i];
}

/* Puts every counter the batch changed into the WriteBatch (at commit). */
static void flush_meta_map(struct sp_store_batch *b)
{
	uint8_t v[SP_STORE_META_LEN];

	for (size_t i = 0; i < b->count; i++) {
		const struct mslot *sl = &b->slots[b->used_idx[i]];

		if (!sl->dirty)
			continue;
		meta_encode(v, &sl->m);
		rocksdb_writebatch_wi_put_cf(b->wb, b->st->cf[SP_STORE_CF_META],
					     (const char *)sl->key, SP_KEY_LEN, (const char *)v,
					     sizeof(v));
	}
}

/*
 * The device's counters as this batch sees them, in the batch's map (*out):
 * from the map, else from the database (meta is only ever written at commit,
 * so the database holds the latest committed value) and then kept in the
 * map, so later changes cannot fail. A device with no record starts empty;
 * next_seq is raised to this open's floor either way.
 */
static int load_meta_slot(struct sp_store_batch *b, const uint8_t recipient[SP_KEY_LEN],
			  struct mslot **out)
{
	struct sp_store *st = b->st;
	struct mslot *sl = find_slot(b, recipient);
	struct meta m = { 0 };
	char *val, *rerr = NULL;
	size_t vlen;
	int rc;

	*out = sl;
	if (sl)
		return 0;
	val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_META], (const char *)recipient,
			     SP_KEY_LEN, &vlen, &rerr);
	if (rerr)
		return rocks_fail(st, "meta read", rerr);
	if (val) {
		rc = meta_decode((const uint8_t *)val, vlen, &m);
		rocksdb_free(val);
		if (rc < 0) {
			/* The range shows what is stored, not what was acked: its
			 * last seq + 1 may be below seqs already handed out. A new
			 * epoch puts the floor above all of them. */
			st->stats.corrupt++;
			rc = rebuild_meta(st, recipient, &m);
			if (rc == 0)
				rc = bump_epoch(st);
			if (rc < 0)
				return rc;
		}
	}
	if (m.next_seq < seq_floor(st))
		m.next_seq = seq_floor(st);
	if (m.next_seq == 0)
		m.next_seq = 1;
	sl = add_slot(b, recipient);
	if (!sl)
		return -ENOMEM;
	sl->m = m;
	*out = sl;
	return 0;
}

/* Counters after removing one entry of body_len bytes (never below zero:
 * a corrupt entry's size is a guess). */
static void meta_remove_one(struct mslot *sl, uint64_t body_len)
{
	sl->m.count = sl->m.count ? sl->m.count - 1 : 0;
	sl->m.bytes = sl->m.bytes >= body_len ? sl->m.bytes - body_len : 0;
	sl->dirty = true;
}

/* ---- enqueue ------------------------------------------------------------------------ */

static void dedup_id(const struct sp_store *st, const struct sp_store_envelope *env,
		     uint8_t id[SP_STORE_DEDUP_ID_LEN])
{
	crypto_generichash_state h;
	uint8_t cid[8];

	put_be64(cid, env->client_id);
	crypto_generichash_init(&h, st->dedup_key, crypto_generichash_KEYBYTES,
				SP_STORE_DEDUP_ID_LEN);
	crypto_generichash_update(&h, env->sender, SP_KEY_LEN);
	crypto_generichash_update(&h, env->recipient, SP_KEY_LEN);
	crypto_generichash_update(&h, cid, sizeof(cid));
	crypto_generichash_final(&h, id, SP_STORE_DEDUP_ID_LEN);
	sodium_memzero(&h, sizeof(h));
}

/*
 * Looks the dedup id up. Returns 1 with *seq if it is a live duplicate, 0 if
 * not. A record past its window (not yet swept) or a corrupt one is removed
 * here with its index record, so the id can be written again by this enqueue
 * without a second Put on a live key.
 */
static int dedup_lookup(struct sp_store_batch *b, const uint8_t id[SP_STORE_DEDUP_ID_LEN],
			uint64_t *seq)
{
	uint8_t ekey[SP_STORE_EXPIRY_DEDUP_KEY_LEN];
	uint64_t old_seq = 0, old_exp = 0;
	char *val, *ival;
	size_t vlen, ilen;
	int rc;

	rc = batch_get(b, SP_STORE_CF_DEDUP, id, SP_STORE_DEDUP_ID_LEN, &val, &vlen);
	if (rc < 0 || !val)
		return rc;
	rc = dedup_decode((const uint8_t *)val, vlen, &old_seq, &old_exp);
	rocksdb_free(val);
	if (rc == 0 && old_exp > b->now_ms) {
		*seq = old_seq;
		return 1;
	}
	if (rc < 0) {
		b->st->stats.corrupt++;
	} else {
		expiry_dedup_key(ekey, old_exp, id);
		rc = batch_get(b, SP_STORE_CF_EXPIRY, ekey, sizeof(ekey), &ival, &ilen);
		if (rc < 0)
			return rc;
		if (ival) {
			rocksdb_free(ival);
			batch_sdel(b, SP_STORE_CF_EXPIRY, ekey, sizeof(ekey));
		}
	}
	batch_sdel(b, SP_STORE_CF_DEDUP, id, SP_STORE_DEDUP_ID_LEN);
	return 0;
}

int sp_store_enqueue(struct sp_store_batch *b, const struct sp_store_envelope *env,
		     uint64_t *seq_out)
{
	uint8_t id[SP_STORE_DEDUP_ID_LEN];
	uint8_t mkey[SP_STORE_MAILBOX_KEY_LEN], ekey[SP_STORE_EXPIRY_MAILBOX_KEY_LEN];
	uint8_t dkey[SP_STORE_EXPIRY_DEDUP_KEY_LEN], dval[SP_STORE_DEDUP_VALUE_LEN];
	uint8_t hdr[SP_STORE_MAILBOX_HDR_LEN];
	struct sp_store *st;
	struct mbox_hdr h;
	struct mslot *sl;
	struct meta m;
	uint64_t seq = 0, dup_seq = 0;
	int rc;

	*seq_out = 0;
	rc = check_batch(b);
	if (rc < 0)
		return rc;
	if (!env || !env->recipient || !env->sender || (!env->body && env->body_len))
		return -EINVAL;
	if (env->body_len > SP_BODY_MAX)
		return -EMSGSIZE;
	st = b->st;

	if (env->client_id) {
		dedup_id(st, env, id);
		rc = dedup_lookup(b, id, &dup_seq);
		if (rc < 0)
			goto out;
		if (rc == 1) {
			st->stats.duplicates++;
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
		st->stats.quota_refused++;
		rc = -EDQUOT;
		goto out;
	}
	if (m.next_seq == UINT64_MAX) {
		rc = -EOVERFLOW; /* 2^64 sequences: not reachable in practice */
		goto out;
	}
	seq = m.next_seq++;
	m.count++;
	m.bytes += env->body_len;

	h.body_len = (uint32_t)env->body_len;
	h.accepted_ms = b->now_ms;
	h.expires_ms = add_sat(b->now_ms, env->ttl_ms ? env->ttl_ms : st->cfg.ttl_ms);
	mbox_hdr_encode(hdr, &h);
	sp_store_mailbox_key(mkey, env->recipient, seq);
	sp_store_expiry_mailbox_key(ekey, h.expires_ms, env->recipient, seq);
	{
		/* Header and body as two slices: the body is copied once, by
		 * RocksDB into the batch, straight from the caller's buffer. */
		const char *kp[1] = { (const char *)mkey };
		const size_t kl[1] = { sizeof(mkey) };
		const char *vp[2] = { (const char *)hdr, env->body_len ? (const char *)env->body : "" };
		const size_t vl[2] = { sizeof(hdr), env->body_len };

		rocksdb_writebatch_wi_putv_cf(b->wb, st->cf[SP_STORE_CF_MAILBOX], 1, kp, kl, 2, vp,
					      vl);
		b->ops++;
	}
	batch_put(b, SP_STORE_CF_EXPIRY, ekey, sizeof(ekey), NULL, 0);
	sl->m = m;
	sl->dirty = true;
	if (env->client_id) {
		uint64_t dexp = add_sat(b->now_ms, st->cfg.dedup_window_ms);

		dedup_encode(dval, seq, dexp);
		expiry_dedup_key(dkey, dexp, id);
		batch_put(b, SP_STORE_CF_DEDUP, id, sizeof(id), dval, sizeof(dval));
		batch_put(b, SP_STORE_CF_EXPIRY, dkey, sizeof(dkey), NULL, 0);
	}
	b->assigned++;
	st->stats.enqueued++;
	*seq_out = seq;
	rc = 0;
out:
	return rc;
}

/* ---- ack and expiry ------------------------------------------------------------------ */

/*
 * Removes recipient's entry seq, whose value the caller fetched (val, vlen).
 * expiry_known: the index key of a readable value is deleted here; for a
 * corrupt value it cannot be located and the sweep drops it later.
 */
static int remove_entry(struct sp_store_batch *b, const uint8_t recipient[SP_KEY_LEN], uint64_t seq,
			const char *val, size_t vlen)
{
	uint8_t mkey[SP_STORE_MAILBOX_KEY_LEN], ekey[SP_STORE_EXPIRY_MAILBOX_KEY_LEN];
	struct mbox_hdr h;
	struct mslot *sl;
	uint64_t body_len;
	char *ival;
	size_t ilen;
	int rc;

	/* First the only step that can fail for lack of memory: then the
	 * deletes and the counters go into the batch together or not at all. */
	rc = load_meta_slot(b, recipient, &sl);
	if (rc < 0)
		return rc;
	if (mbox_decode((const uint8_t *)val, vlen, &h) == 0) {
		body_len = h.body_len;
		sp_store_expiry_mailbox_key(ekey, h.expires_ms, recipient, seq);
		rc = batch_get(b, SP_STORE_CF_EXPIRY, ekey, sizeof(ekey), &ival, &ilen);
		if (rc < 0)
			return rc;
		if (ival) {
			rocksdb_free(ival);
			batch_sdel(b, SP_STORE_CF_EXPIRY, ekey, sizeof(ekey));
		}
	} else {
		b->st->stats.corrupt++;
		body_len = vlen > SP_STORE_MAILBOX_HDR_LEN ? vlen - SP_STORE_MAILBOX_HDR_LEN : 0;
	}
	sp_store_mailbox_key(mkey, recipient, seq);
	batch_sdel(b, SP_STORE_CF_MAILBOX, mkey, sizeof(mkey));
	meta_remove_one(sl, body_len);
	b->removed_bytes = body_len;
	return 0;
}

int sp_store_ack(struct sp_store_batch *b, const uint8_t recipient[SP_KEY_LEN], uint64_t seq)
{
	uint8_t mkey[SP_STORE_MAILBOX_KEY_LEN];
	char *val;
	size_t vlen;
	int rc;

	rc = check_batch(b);
	if (rc < 0)
		return rc;
	if (!recipient)
		return -EINVAL;
	sp_store_mailbox_key(mkey, recipient, seq);
	rc = batch_get(b, SP_STORE_CF_MAILBOX, mkey, sizeof(mkey), &val, &vlen);
	if (rc < 0)
		return rc;
	if (!val) {
		b->st->stats.ack_unknown++;
		return -ENOENT;
	}
	rc = remove_entry(b, recipient, seq, val, vlen);
	rocksdb_free(val);
	if (rc == 0) {
		b->st->stats.acked++;
		b->st->stats.acked_bytes += b->removed_bytes;
	}
	return rc;
}

/* One index record of the sweep: returns 1 if a mailbox entry expired. */
static int expire_one(struct sp_store_batch *b, const uint8_t *ikey, size_t ilen)
{
	struct sp_store *st = b->st;
	uint64_t t = get_be64(ikey), seq, dseq, dexp;
	struct mbox_hdr h;
	char *val, *cur;
	size_t vlen, clen;
	int rc, expired = 0;

	/* Still there? An ack earlier in this batch may have removed it. */
	rc = batch_get(b, SP_STORE_CF_EXPIRY, ikey, ilen, &cur, &clen);
	if (rc < 0 || !cur)
		return rc;
	rocksdb_free(cur);

	if (ilen == SP_STORE_EXPIRY_MAILBOX_KEY_LEN && ikey[8] == KIND_MAILBOX) {
		const uint8_t *rcpt = ikey + 9;
		uint8_t mkey[SP_STORE_MAILBOX_KEY_LEN];

		seq = get_be64(ikey + 9 + SP_KEY_LEN);
		sp_store_mailbox_key(mkey, rcpt, seq);
		rc = batch_get(b, SP_STORE_CF_MAILBOX, mkey, sizeof(mkey), &val, &vlen);
		if (rc < 0)
			return rc;
		if (!val) {
			/* Acked while its value was corrupt: a dangling index record. */
			batch_sdel(b, SP_STORE_CF_EXPIRY, ikey, ilen);
			return 0;
		}
		if (mbox_decode((const uint8_t *)val, vlen, &h) == 0 && h.expires_ms != t) {
			batch_sdel(b, SP_STORE_CF_EXPIRY, ikey, ilen); /* stale record */
		} else {
			/* expired, or corrupt and past the time its index named */
			rc = remove_entry(b, rcpt, seq, val, vlen);
			if (rc == 0 && mbox_decode((const uint8_t *)val, vlen, &h) < 0)
				batch_sdel(b, SP_STORE_CF_EXPIRY, ikey, ilen);
			expired = rc == 0;
		}
		rocksdb_free(val);
		if (expired) {
			st->stats.expired++;
			st->stats.expired_bytes += b->removed_bytes;
		}
		return rc < 0 ? rc : expired;
	}
	if (ilen == SP_STORE_EXPIRY_DEDUP_KEY_LEN && ikey[8] == KIND_DEDUP) {
		const uint8_t *id = ikey + 9;

		rc = batch_get(b, SP_STORE_CF_DEDUP, id, SP_STORE_DEDUP_ID_LEN, &val, &vlen);
		if (rc < 0)
			return rc;
		if (val) {
			rc = dedup_decode((const uint8_t *)val, vlen, &dseq, &dexp);
			/* A record rewritten after its window belongs to another
			 * index key; leave it. */
			if (rc < 0 || dexp == t) {
				batch_sdel(b, SP_STORE_CF_DEDUP, id, SP_STORE_DEDUP_ID_LEN);
				st->stats.dedup_expired++;
			}
			rocksdb_free(val);
		}
		batch_sdel(b, SP_STORE_CF_EXPIRY, ikey, ilen);
		return 0;
	}
	/* Not a record this module writes: drop it so the sweep cannot stall. */
	st->stats.corrupt++;
	batch_sdel(b, SP_STORE_CF_EXPIRY, ikey, ilen);
	return 0;
}

struct ikey {
	uint8_t k[EXPIRY_KEY_MAX];
	uint8_t len;
};

int sp_store_expire(struct sp_store_batch *b, size_t max_items, size_t *expired_out)
{
	struct sp_store *st;
	struct ikey *keys = NULL;
	uint8_t hi[8];
	rocksdb_readoptions_t *ro = NULL;
	rocksdb_iterator_t *it = NULL;
	char *rerr = NULL;
	size_t n = 0, expired = 0;
	bool more = false;
	int rc;

	if (expired_out)
		*expired_out = 0;
	rc = check_batch(b);
	if (rc < 0)
		return rc;
	if (max_items == 0)
		return 1;
	st = b->st;
	keys = malloc(max_items * sizeof(*keys));
	if (!keys)
		return -ENOMEM;

	/*
	 * Collect first, then modify: the keys come from the committed index
	 * (records due at or before now), and each is re-checked through the
	 * batch, so the batch is never written while an iterator walks it.
	 */
	put_be64(hi, add_sat(b->now_ms, 1));
	ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, sizeof(hi));
	it = rocksdb_create_iterator_cf(st->db, ro, st->cf[SP_STORE_CF_EXPIRY]);
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t klen;
		const char *k = rocksdb_iter_key(it, &klen);

		if (n == max_items) {
			more = true;
			break;
		}
		if (klen < 9 || klen > EXPIRY_KEY_MAX) {
			/* Cannot be one of ours: drop it so the sweep cannot stall.
			 * (Writing the batch while iterating the DB is fine.) */
			st->stats.corrupt++;
			batch_sdel(b, SP_STORE_CF_EXPIRY, (const uint8_t *)k, klen);
			continue;
		}
		memcpy(keys[n].k, k, klen);
		keys[n].len = (uint8_t)klen;
		n++;
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	if (rerr) {
		rc = rocks_fail(st, "expiry scan", rerr);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		rc = expire_one(b, keys[i].k, keys[i].len);
		if (rc < 0)
			goto out;
		expired += (size_t)rc;
	}
	if (expired_out)
		*expired_out = expired;
	rc = more ? 1 : 0;
out:
	free(keys);
	return rc;
}

/* ---- reads ----------------------------------------------------------------------------- */

static int grow_rbuf(struct sp_store *st, size_t need)
{
	size_t cap = st->rbuf_cap ? st->rbuf_cap : 4096;
	uint8_t *p;

	if (need <= st->rbuf_cap)
		return 0;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(st->rbuf, cap);
	if (!p)
		return -ENOMEM;
	st->rbuf = p;
	st->rbuf_cap = cap;
	return 0;
}

int sp_store_read(struct sp_store *st, const uint8_t recipient[SP_KEY_LEN], uint64_t from_seq,
		  uint64_t now_ms, size_t max_items, size_t max_bytes, struct sp_store_item *items,
		  struct sp_store_read_result *res)
{
	uint8_t lo[SP_STORE_MAILBOX_KEY_LEN], hi[SP_STORE_MAILBOX_KEY_LEN];
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t *it;
	char *rerr = NULL;
	size_t used = 0;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	res->next_seq = from_seq;
	if (!recipient || (max_items && !items))
		return -EINVAL;

	sp_store_mailbox_key(lo, recipient, from_seq);
	/* seq UINT64_MAX is never assigned, so this exclusive bound loses nothing. */
	sp_store_mailbox_key(hi, recipient, UINT64_MAX);
	ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_verify_checksums(ro, 1);
	rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, sizeof(hi));
	it = rocksdb_create_iterator_cf(st->db, ro, st->cf[SP_STORE_CF_MAILBOX]);
	res->end = true;
	for (rocksdb_iter_seek(it, (const char *)lo, sizeof(lo)); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vlen);
		struct mbox_hdr h;
		struct sp_store_item *item;
		uint64_t seq;

		if (klen != SP_STORE_MAILBOX_KEY_LEN) {
			res->skipped_corrupt++;
			st->stats.corrupt++;
			continue;
		}
		seq = get_be64(k + SP_KEY_LEN);
		if (mbox_decode(v, vlen, &h) < 0) {
			res->skipped_corrupt++;
			st->stats.corrupt++;
			res->next_seq = seq + 1;
			continue;
		}
		if (h.expires_ms <= now_ms) {
			res->skipped_expired++;
			res->next_seq = seq + 1;
			continue;
		}
		if (res->count == max_items ||
		    (res->count > 0 && h.body_len > max_bytes - used)) {
			res->end = false;
			break;
		}
		rc = grow_rbuf(st, used + h.body_len);
		if (rc < 0)
			break;
		memcpy(st->rbuf + used, v + SP_STORE_MAILBOX_HDR_LEN, h.body_len);
		item = &items[res->count++];
		item->seq = seq;
		item->accepted_ms = h.accepted_ms;
		item->expires_ms = h.expires_ms;
		item->body_len = h.body_len;
		used += h.body_len;
		if (used > max_bytes)
			used = max_bytes; /* the lone oversized first item */
		res->next_seq = seq + 1;
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	if (rerr)
		return rocks_fail(st, "mailbox read", rerr);
	if (rc < 0)
		return rc;
	/* Bodies were packed in order; the buffer may have moved while growing. */
	used = 0;
	for (size_t i = 0; i < res->count; i++) {
		items[i].body = st->rbuf + used;
		used += items[i].body_len;
	}
	if (res->skipped_corrupt)
		res->corrupt_err = -EBADMSG;
	return 0;
}

int sp_store_totals(struct sp_store *st, uint64_t *entries, uint64_t *bytes)
{
	rocksdb_iterator_t *it = rocksdb_create_iterator_cf(st->db, st->ro, st->cf[SP_STORE_CF_META]);
	char *rerr = NULL;

	*entries = *bytes = 0;
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t vlen;
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vlen);
		struct meta m;

		if (meta_decode(v, vlen, &m) < 0)
			continue;       /* rebuilt when its device is next touched */
		*entries += m.count;
		*bytes += m.bytes;
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	if (rerr)
		return rocks_fail(st, "totals", rerr);
	return 0;
}

int sp_store_mailbox_info(struct sp_store *st, const uint8_t recipient[SP_KEY_LEN], uint64_t *count,
			  uint64_t *bytes, uint64_t *next_seq)
{
	struct meta m = { 0 };
	char *val, *rerr = NULL;
	size_t vlen;
	int rc = 0;

	val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_META], (const char *)recipient,
			     SP_KEY_LEN, &vlen, &rerr);
	if (rerr)
		return rocks_fail(st, "meta read", rerr);
	if (val) {
		rc = meta_decode((const uint8_t *)val, vlen, &m);
		rocksdb_free(val);
		if (rc < 0) {
			st->stats.corrupt++;
			rc = rebuild_meta(st, recipient, &m);
		}
	}
	if (count)
		*count = m.count;
	if (bytes)
		*bytes = m.bytes;
	if (next_seq)
		*next_seq = m.next_seq;
	return rc;
}

/* ---- operations ------------------------------------------------------------------------ */

void sp_store_get_stats(const struct sp_store *st, struct sp_store_stats *out)
{
	*out = st->stats;
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
			return rocks_fail(st, "flush", rerr);
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
