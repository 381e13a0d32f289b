/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The WAL sync thread (sp_store.h "The sync thread"): every fdatasync of
 * the write-ahead log, off the thread that writes. Measured first
 * (docs/BENCHMARKS.md "Store calls on the event loop"): with --fsync
 * always the commit's fdatasync held the event loop ~2.7 ms per iteration
 * and an honest device's live envelope waited behind it (p50 0.23 ms ->
 * 5.9 ms); with --fsync batch one ~2 ms stall every sync interval.
 *
 * The loop writes each batch to the WAL without syncing (write(2): from
 * then on it survives kill -9, and later batches read it) and asks for a
 * sync with a ticket (the commit's number); this thread syncs the WAL
 * (rocksdb_flush_wal(sync): RocksDB's SyncWAL, made for writes running
 * beside it), which covers every batch written before it began, so one
 * sync serves all tickets asked for meanwhile (a group commit across
 * iterations), and posts the highest ticket it covered through an
 * eventfd. The caller answers a batch's Sends only once its ticket is
 * synced. State shared with the thread is under sync_mu; the rest of the
 * store stays the writer's.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "sp_store_internal.h"

static void post(struct sp_store *st)
{
	uint64_t one = 1;

	/* A full counter (2^64 - 2 posts unread) cannot happen; EAGAIN would
	 * only mean a wake-up is pending already. */
	if (write(st->sync_efd, &one, sizeof(one)) < 0) {
		/* nothing to do: the reader wakes for the pending count */
	}
}

static void *syncer_main(void *arg)
{
	struct sp_store *st = arg;

	pthread_mutex_lock(&st->sync_mu);
	for (;;) {
		uint64_t target;
		char *rerr = NULL;
		bool failed;

		while (!st->sync_stop && st->sync_asked == st->sync_started)
			pthread_cond_wait(&st->sync_cv, &st->sync_mu);
		if (st->sync_asked == st->sync_started)
			break;  /* stopping, nothing asked: done */
		target = st->sync_asked;
		st->sync_started = target;
		failed = st->sync_failed;
		pthread_mutex_unlock(&st->sync_mu);
		/* After a failed sync nothing touches the WAL again (as after a
		 * failed commit): the tickets are answered as failed. */
		if (!failed)
			rocksdb_flush_wal(st->db, 1, &rerr);
		pthread_mutex_lock(&st->sync_mu);
		if (rerr) {
			st->sync_failed = true;
			snprintf(st->sync_errmsg, sizeof(st->sync_errmsg), "WAL sync: %s", rerr);
			rocksdb_free(rerr);
		}
		if (!st->sync_failed)
			st->sync_done = target;
		__atomic_fetch_add(&st->sync_count, 1, __ATOMIC_RELAXED);
		post(st);
	}
	pthread_mutex_unlock(&st->sync_mu);
	return NULL;
}

int sp_store_syncer_start(struct sp_store *st)
{
	int ret;

	if (!st || !st->db || st->sync_thread_on)
		return -EINVAL;
	st->sync_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (st->sync_efd < 0)
		return -errno;
	pthread_mutex_init(&st->sync_mu, NULL);
	pthread_cond_init(&st->sync_cv, NULL);
	st->sync_asked = st->sync_started = st->sync_done = 0;
	st->sync_failed = st->sync_stop = false;
	ret = pthread_create(&st->sync_thread, NULL, syncer_main, st);
	if (ret) {
		pthread_cond_destroy(&st->sync_cv);
		pthread_mutex_destroy(&st->sync_mu);
		close(st->sync_efd);
		st->sync_efd = -1;
		return -ret;
	}
	st->sync_thread_on = true;
	return 0;
}

int sp_store_syncer_fd(const struct sp_store *st)
{
	return st && st->sync_thread_on ? st->sync_efd : -1;
}

uint64_t sp_store_syncer_ask(struct sp_store *st)
{
	uint64_t t;

	pthread_mutex_lock(&st->sync_mu);
	t = ++st->sync_asked;
	pthread_cond_signal(&st->sync_cv);
	pthread_mutex_unlock(&st->sync_mu);
	return t;
}

static int syncer_poll(struct sp_store *st, uint64_t *synced, bool consume)
{
	uint64_t n;
	bool failed;

	if (!st->sync_thread_on) {
		*synced = 0;
		return -EINVAL;
	}
	/* Consumes the posts: one read per wake-up of the caller. */
	if (consume && read(st->sync_efd, &n, sizeof(n)) < 0) {
		/* EAGAIN: nothing posted since the last read */
	}
	pthread_mutex_lock(&st->sync_mu);
	*synced = st->sync_done;
	failed = st->sync_failed;
	if (failed && !st->poisoned)
		sp_store_set_err(st, "%s", st->sync_errmsg);
	pthread_mutex_unlock(&st->sync_mu);
	if (failed && !st->poisoned)
		sp_store_poison(st);    /* the WAL writer may have failed: no more writes */
	return failed ? -EIO : 0;
}

int sp_store_syncer_poll(struct sp_store *st, uint64_t *synced)
{
	return syncer_poll(st, synced, true);
}

int sp_store_syncer_peek(struct sp_store *st, uint64_t *synced)
{
	return syncer_poll(st, synced, false);
}

uint64_t sp_store_syncer_asked(const struct sp_store *st)
{
	return st->sync_thread_on ? st->sync_asked : 0;
}

void sp_store_syncer_stop(struct sp_store *st)
{
	if (!st->sync_thread_on)
		return;
	pthread_mutex_lock(&st->sync_mu);
	st->sync_stop = true;
	pthread_cond_signal(&st->sync_cv);
	pthread_mutex_unlock(&st->sync_mu);
	pthread_join(st->sync_thread, NULL);   /* after the last sync asked for */
	pthread_cond_destroy(&st->sync_cv);
	pthread_mutex_destroy(&st->sync_mu);
	close(st->sync_efd);
	st->sync_efd = -1;
	st->sync_thread_on = false;
}
