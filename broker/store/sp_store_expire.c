/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store_expire.c: the incremental expiry sweep. The expiry column family
 * is ordered by time, so everything due is a prefix of it: each call walks
 * that prefix up to the batch's now_ms, at most max_items records, and
 * removes what expired through the batch (sp_store_batch.c), so a sweep and
 * the acks of the same iteration see each other.
 */
#include "sp_store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sp_be.h"

/* A mailbox entry whose index record (at time t) came due. Returns 1 if it
 * expired, 0 if the record was stale or dangling, or -errno. */
static int expire_entry(struct sp_store_batch *b, const uint8_t *ikey, size_t ilen,
			const struct sp_store_expiry_ref *ref)
{
	struct sp_store *st = b->st;
	uint8_t mkey[SP_STORE_MAILBOX_KEY_LEN];
	struct sp_store_mbox_hdr h;
	uint64_t body_len = 0;
	char *val;
	size_t vlen;
	int rc, expired = 0;

	sp_store_mailbox_key(mkey, ref->recipient, ref->seq);
	rc = sp_store_batch_get(b, SP_STORE_CF_MAILBOX, mkey, sizeof(mkey), &val, &vlen);
	if (rc < 0)
		return rc;
	if (!val) {
		/* Acked while its value was corrupt: a dangling index record. */
		sp_store_batch_sdel(b, SP_STORE_CF_EXPIRY, ikey, ilen);
		return 0;
	}
	if (sp_store_mbox_decode((const uint8_t *)val, vlen, &h) == 0 &&
	    h.expires_ms != ref->expires_ms) {
		sp_store_batch_sdel(b, SP_STORE_CF_EXPIRY, ikey, ilen); /* stale record */
	} else {
		/* expired, or corrupt and past the time its index named */
		rc = sp_store_batch_remove_entry(b, ref->recipient, ref->seq, val, vlen, &body_len);
		if (rc == 0 && sp_store_mbox_decode((const uint8_t *)val, vlen, &h) < 0)
			sp_store_batch_sdel(b, SP_STORE_CF_EXPIRY, ikey, ilen);
		expired = rc == 0;
	}
	rocksdb_free(val);
	if (expired) {
		st->xstats.expired++;
		st->xstats.expired_bytes += body_len;
	}
	return rc < 0 ? rc : expired;
}

/* A dedup record whose index record came due: its window is over. Only
 * stores written before the dedup compaction filter have such index
 * records (sp_store.c dedup_filter). */
static int expire_dedup(struct sp_store_batch *b, const uint8_t *ikey, size_t ilen,
			const struct sp_store_expiry_ref *ref)
{
	uint64_t dseq, dexp;
	char *val;
	size_t vlen;
	int rc;

	rc = sp_store_batch_get(b, SP_STORE_CF_DEDUP, ref->dedup_id, SP_STORE_DEDUP_ID_LEN, &val,
				&vlen);
	if (rc < 0)
		return rc;
	if (val) {
		rc = sp_store_dedup_decode((const uint8_t *)val, vlen, &dseq, &dexp);
		/* A record rewritten after its window belongs to another
		 * index key; leave it. */
		if (rc < 0 || dexp == ref->expires_ms) {
			sp_store_batch_del(b, SP_STORE_CF_DEDUP, ref->dedup_id,
					   SP_STORE_DEDUP_ID_LEN);
			b->st->xstats.dedup_expired++;
		}
		rocksdb_free(val);
	}
	sp_store_batch_sdel(b, SP_STORE_CF_EXPIRY, ikey, ilen);
	return 0;
}

/* One index record of the sweep: returns the mailbox entries it expired
 * (a window record may name up to SP_STORE_WINDOW_MAX); *work = the
 * entries it looked at (1 for a record of one). */
static int expire_one(struct sp_store_batch *b, const uint8_t *ikey, size_t ilen, size_t *work)
{
	struct sp_store_expiry_ref ref;
	char *cur;
	size_t clen;
	int rc;

	/* Still there? An ack earlier in this batch may have removed it. */
	*work = 1;
	rc = sp_store_batch_get(b, SP_STORE_CF_EXPIRY, ikey, ilen, &cur, &clen);
	if (rc < 0 || !cur)
		return rc;

	if (sp_store_expiry_key_decode(ikey, ilen, &ref) == 0) {
		if (ref.kind == SP_STORE_KIND_WINDOW) {
			uint64_t bytes = 0;

			rc = sp_store_batch_window_due(b, ikey, ilen, &ref, cur, clen, &bytes, work);
			if (*work == 0)
				*work = 1;
			rocksdb_free(cur);
			if (rc > 0) {
				b->st->xstats.expired += (uint64_t)rc;
				b->st->xstats.expired_bytes += bytes;
			}
			return rc;
		}
		rocksdb_free(cur);
		if (ref.kind == SP_STORE_KIND_MAILBOX)
			return expire_entry(b, ikey, ilen, &ref);
		return expire_dedup(b, ikey, ilen, &ref);
	}
	rocksdb_free(cur);
	/* Not a record this module writes: drop it so the sweep cannot stall. */
	b->st->xstats.corrupt++;
	sp_store_batch_sdel(b, SP_STORE_CF_EXPIRY, ikey, ilen);
	return 0;
}

struct ikey {
	uint8_t k[SP_STORE_EXPIRY_KEY_MAX];
	uint8_t len;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Where the next step starts: the first index record it did not get to. */
static void set_cursor(struct sp_store *st, const uint8_t *k, size_t klen)
{
	memcpy(st->sweep_cursor, k, klen);
	st->sweep_cursor_len = (uint8_t)klen;
}

void sp_store_expire_reset(struct sp_store *st)
{
	st->sweep_cursor_len = 0;
}

int sp_store_expire(struct sp_store_batch *b, size_t max_items, size_t *expired_out)
{
	return sp_store_expire_for(b, max_items, 0, expired_out);
}

int sp_store_expire_for(struct sp_store_batch *b, size_t max_items, uint64_t budget_ns,
			size_t *expired_out)
{
	struct sp_store *st;
	struct ikey *keys = NULL;
	uint8_t hi[SP_STORE_EXPIRY_BOUND_LEN];
	rocksdb_readoptions_t *ro = NULL;
	rocksdb_iterator_t *it = NULL;
	char *rerr = NULL;
	size_t n = 0, expired = 0, i, work = 0, next_check = 32;
	uint64_t ahead;
	uint64_t deadline = 0;
	bool more = false;
	int rc;

	if (expired_out)
		*expired_out = 0;
	rc = sp_store_batch_check(b);
	if (rc < 0)
		return rc;
	if (max_items == 0)
		return 1;
	st = b->st;
	keys = malloc(max_items * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	if (budget_ns)
		deadline = mono_ns() + budget_ns;
	st->xstats.sweep_steps++;

	/*
	 * Collect first, then modify: the keys come from the committed index
	 * (records due at or before now), and each is re-checked through the
	 * batch, so the batch is never written while an iterator walks it.
	 * A step that stopped early left a cursor: everything due before it
	 * was removed by that step (committed with its batch), so the next
	 * step seeks there instead of walking from the first key again over
	 * the deletion markers of what it already removed. New records never
	 * sort before the cursor (they expire after the time of that step);
	 * the cursor is dropped when a step catches up, so a clock stepped
	 * back costs at most one more pass.
	 */
	/* After an open, window records up to window_ms ahead are due too:
	 * those the last process left (it may have been killed) name entries
	 * this one does not track, whose acks do not delete them. */
	ahead = st->sweep_windows_ahead ? st->cfg.window_ms : 0;
	sp_store_expiry_bound(hi, sp_store_add_sat(b->now_ms, ahead));
	ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, sizeof(hi));
	it = rocksdb_create_iterator_cf(st->db, ro, st->cf[SP_STORE_CF_EXPIRY]);
	if (st->sweep_cursor_len) {
		st->xstats.sweep_resumed++;
		rocksdb_iter_seek(it, (const char *)st->sweep_cursor, st->sweep_cursor_len);
	} else {
		rocksdb_iter_seek_to_first(it);
	}
	st->sweep_cursor_len = 0;
	for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t klen;
		const char *k = rocksdb_iter_key(it, &klen);

		if (n == max_items) {
			more = true;
			if (klen >= SP_STORE_EXPIRY_KEY_MIN && klen <= SP_STORE_EXPIRY_KEY_MAX)
				set_cursor(st, (const uint8_t *)k, klen);
			break;
		}
		if (klen < SP_STORE_EXPIRY_KEY_MIN || klen > SP_STORE_EXPIRY_KEY_MAX) {
			/* Cannot be one of ours: drop it so the sweep cannot stall.
			 * (Writing the batch while iterating the DB is fine.) */
			st->xstats.corrupt++;
			sp_store_batch_sdel(b, SP_STORE_CF_EXPIRY, (const uint8_t *)k, klen);
			continue;
		}
		if (ahead && sp_be_get64((const uint8_t *)k) > b->now_ms &&
		    k[8] != SP_STORE_KIND_WINDOW)
			continue;       /* not due yet */
		memcpy(keys[n].k, k, klen);
		keys[n].len = (uint8_t)klen;
		n++;
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	if (rerr) {
		st->sweep_cursor_len = 0;
		rc = sp_store_rocks_fail(st, "expiry scan", rerr);
		goto out;
	}
	for (i = 0; i < n; i++) {
		size_t w = 0;

		/* max_items and the clock count entries, not records: a
		 * window record names up to SP_STORE_WINDOW_MAX of them. */
		if (i && work >= max_items) {
			set_cursor(st, keys[i].k, keys[i].len);
			more = true;
			break;
		}
		/* The clock is read every 32 entries: one costs a few
		 * microseconds, the budget is milliseconds. */
		if (deadline && i && work >= next_check) {
			next_check = work + 32;
			if (mono_ns() >= deadline) {
				set_cursor(st, keys[i].k, keys[i].len);
				st->xstats.sweep_budget_stops++;
				more = true;
				break;
			}
		}
		rc = expire_one(b, keys[i].k, keys[i].len, &w);
		if (rc < 0) {
			st->sweep_cursor_len = 0;
			goto out;
		}
		expired += (size_t)rc;
		work += w;
	}
	if (expired_out)
		*expired_out = expired;
	if (!more)
		st->sweep_windows_ahead = false;
	rc = more ? 1 : 0;
out:
	free(keys);
	return rc;
}
