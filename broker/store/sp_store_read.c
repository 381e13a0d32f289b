/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store_read.c: reads of committed data: a device's mailbox range in seq
 * order, its counters, the totals over all devices. Nothing here sees the
 * open batch (sp_store.h: reads see committed data only).
 */
#include "sp_store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sp_fsutil.h"

void sp_store_read_fini(struct sp_store *st)
{
	free(st->rbuf);
	st->rbuf = NULL;
	st->rbuf_cap = 0;
}

/* Bounded by the mailbox's size, which the quota bounds. next_seq is only
 * what the range shows: the caller raises the floor (sp_store_batch.c). */
int sp_store_rebuild_meta(struct sp_store *st, const uint8_t recipient[SP_KEY_LEN],
			  struct sp_store_meta *m)
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
		if (sp_store_mailbox_key_seq(k, klen, &last) < 0)
			continue;
		m->count++;
		m->bytes += sp_store_mbox_body_guess(vlen);
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	if (rerr)
		return sp_store_rocks_fail(st, "meta rebuild", rerr);
	m->next_seq = last + 1;
	return 0;
}

/* Room for need bytes of bodies in st->rbuf (contents kept). */
static int grow_rbuf(struct sp_store *st, size_t need)
{
	uint8_t *p;

	if (need <= st->rbuf_cap)
		return 0;
	p = sp_fsutil_grow(st->rbuf, &st->rbuf_cap, need, 4096);
	if (!p)
		return -ENOMEM;
	st->rbuf = p;
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
		struct sp_store_mbox_hdr h;
		struct sp_store_item *item;
		uint64_t seq;

		if (sp_store_mailbox_key_seq(k, klen, &seq) < 0) {
			res->skipped_corrupt++;
			st->read_corrupt++;
			continue;
		}
		if (sp_store_mbox_decode(v, vlen, &h) < 0) {
			res->skipped_corrupt++;
			st->read_corrupt++;
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
		return sp_store_rocks_fail(st, "mailbox read", rerr);
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
	*entries = st->tot_entries;
	*bytes = st->tot_bytes;
	return 0;
}

int sp_store_next_seq(struct sp_store *st, const uint8_t recipient[SP_KEY_LEN], uint64_t *next)
{
	struct sp_store_meta m = { 0 };
	char *val, *rerr = NULL;
	uint64_t floor;
	size_t vlen;
	bool had;

	*next = 0;
	val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_META], (const char *)recipient,
			     SP_KEY_LEN, &vlen, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "meta read", rerr);
	had = val != NULL;
	if (val) {
		int rc = sp_store_meta_decode((const uint8_t *)val, vlen, &m);

		rocksdb_free(val);
		if (rc < 0)
			return 0;       /* enqueue rebuilds it and moves the floor: unknown */
	}
	/* As sp_store_enqueue assigns it (sp_store_batch.c). */
	floor = sp_store_seq_floor(st->epoch);
	if (!had && st->seq_hwm > floor)
		floor = st->seq_hwm;
	if (m.next_seq < floor)
		m.next_seq = floor;
	*next = m.next_seq ? m.next_seq : 1;
	return 0;
}

int sp_store_mailbox_info(struct sp_store *st, const uint8_t recipient[SP_KEY_LEN], uint64_t *count,
			  uint64_t *bytes, uint64_t *next_seq)
{
	struct sp_store_meta m = { 0 };
	char *val, *rerr = NULL;
	size_t vlen;
	int rc = 0;

	val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_META], (const char *)recipient,
			     SP_KEY_LEN, &vlen, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "meta read", rerr);
	if (val) {
		rc = sp_store_meta_decode((const uint8_t *)val, vlen, &m);
		rocksdb_free(val);
		if (rc < 0) {
			st->read_corrupt++;
			rc = sp_store_rebuild_meta(st, recipient, &m);
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

