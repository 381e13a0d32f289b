/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store_admin.c: the store's side of the admin socket: a mailbox's oldest
 * entry, purging a mailbox, the largest mailboxes. Reads see committed data
 * only, like sp_store_read.c; the purge writes through the batch like acks.
 */
#include "sp_store_internal.h"

#include <errno.h>
#include <string.h>

/* An iterator over recipient's committed mailbox range (destroy both). */
static rocksdb_iterator_t *range_iter(struct sp_store *st, const uint8_t recipient[SP_KEY_LEN],
				      uint8_t hi[SP_STORE_MAILBOX_KEY_LEN],
				      rocksdb_readoptions_t **ro)
{
	uint8_t lo[SP_STORE_MAILBOX_KEY_LEN];
	rocksdb_iterator_t *it;

	sp_store_mailbox_key(lo, recipient, 0);
	/* seq UINT64_MAX is never assigned: an exclusive bound that loses nothing. */
	sp_store_mailbox_key(hi, recipient, UINT64_MAX);
	*ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_iterate_upper_bound(*ro, (const char *)hi, SP_STORE_MAILBOX_KEY_LEN);
	it = rocksdb_create_iterator_cf(st->db, *ro, st->cf[SP_STORE_CF_MAILBOX]);
	rocksdb_iter_seek(it, (const char *)lo, sizeof(lo));
	return it;
}

int sp_store_mailbox_oldest(struct sp_store *st, const uint8_t recipient[SP_KEY_LEN],
			    uint64_t now_ms, uint64_t *accepted_ms)
{
	uint8_t hi[SP_STORE_MAILBOX_KEY_LEN];
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t *it;
	char *rerr = NULL;
	int rc = -ENOENT;

	if (!recipient || !accepted_ms)
		return -EINVAL;
	it = range_iter(st, recipient, hi, &ro);
	for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t vlen;
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vlen);
		struct sp_store_mbox_hdr h;

		if (sp_store_mbox_decode(v, vlen, &h) < 0 || h.expires_ms <= now_ms)
			continue;       /* corrupt, or expired and not yet swept */
		*accepted_ms = h.accepted_ms;
		rc = 0;
		break;
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	if (rerr)
		return sp_store_rocks_fail(st, "oldest read", rerr);
	return rc;
}

int sp_store_purge(struct sp_store_batch *b, const uint8_t recipient[SP_KEY_LEN],
		   uint64_t *count, uint64_t *bytes)
{
	uint8_t hi[SP_STORE_MAILBOX_KEY_LEN];
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t *it;
	char *rerr = NULL;
	int rc;

	*count = *bytes = 0;
	rc = sp_store_batch_check(b);
	if (rc < 0)
		return rc;
	if (!recipient)
		return -EINVAL;
	it = range_iter(b->st, recipient, hi, &ro);
	for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
		uint64_t seq, body_len = 0;
		char *val;

		if (sp_store_mailbox_key_seq(k, klen, &seq) < 0)
			continue;
		/* Through the batch: an entry this batch acked already is gone. */
		rc = sp_store_batch_get(b, SP_STORE_CF_MAILBOX, k, klen, &val, &vlen);
		if (rc < 0)
			break;
		if (!val)
			continue;
		rc = sp_store_batch_remove_entry(b, recipient, seq, val, vlen, &body_len);
		rocksdb_free(val);
		if (rc < 0)
			break;
		(*count)++;
		*bytes += body_len;
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	b->st->purged += *count;
	b->st->purged_bytes += *bytes;
	if (rerr)
		return sp_store_rocks_fail(b->st, "purge read", rerr);
	return rc < 0 ? rc : 0;
}

static uint64_t measure(const struct sp_store_top_item *t, bool by_bytes)
{
	return by_bytes ? t->bytes : t->count;
}

/* Any thread: only the database and its column family handles (fixed while
 * the store is open) and an iterator of its own; nothing of st is written. */
int sp_store_top(struct sp_store *st, size_t n, bool by_bytes, struct sp_store_top_item *out,
		 size_t *nout, uint64_t *scanned)
{
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t *it;
	char *rerr = NULL;
	size_t have = 0;
	uint64_t seen = 0;

	*nout = 0;
	if (scanned)
		*scanned = 0;
	if (n == 0)
		return 0;
	if (!out)
		return -EINVAL;
	ro = rocksdb_readoptions_create();
	/* A scan for an operator: do not push the hot blocks out of the cache. */
	rocksdb_readoptions_set_fill_cache(ro, 0);
	it = rocksdb_create_iterator_cf(st->db, ro, st->cf[SP_STORE_CF_META]);
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t klen, vlen, pos;
		const char *k = rocksdb_iter_key(it, &klen);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vlen);
		struct sp_store_top_item cand;
		struct sp_store_meta m;

		seen++;
		if (klen != SP_KEY_LEN || sp_store_meta_decode(v, vlen, &m) < 0 || m.count == 0)
			continue;
		memcpy(cand.recipient, k, SP_KEY_LEN);
		cand.count = m.count;
		cand.bytes = m.bytes;
		/* Insertion into the sorted top list (n is small). */
		if (have == n && measure(&cand, by_bytes) <= measure(&out[n - 1], by_bytes))
			continue;
		pos = have < n ? have : n - 1;
		while (pos > 0 && measure(&out[pos - 1], by_bytes) < measure(&cand, by_bytes)) {
			out[pos] = out[pos - 1];
			pos--;
		}
		out[pos] = cand;
		if (have < n)
			have++;
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	if (scanned)
		*scanned = seen;
	if (rerr) {
		/* Not sp_store_rocks_fail: that writes st's message, which is its
		 * owner's. */
		rocksdb_free(rerr);
		sodium_memzero(out, n * sizeof(*out));
		return -EIO;
	}
	*nout = have;
	return 0;
}
