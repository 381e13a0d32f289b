/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store_prekey.c: devices' prekeys (sp_store.h, "prekeys"; PROTOCOL.md 17).
 *
 * Written directly, not through the iteration's batch, like access keys:
 * an upload or a fetch is rare next to envelopes, and each is answered only
 * once its write is synced. That is what makes "handed out once" hold
 * across a kill -9: the one-time record is gone from the WAL-synced state
 * before the bundle that holds it leaves the broker. The cost is one fsync
 * per fetch on the shard's thread, bounded by the fetch budgets
 * (prekey-fetch-*, docs/OPERATIONS.md).
 */
#include <errno.h>
#include <string.h>

#include "sp_be.h"
#include "sp_prekey.h"
#include "sp_store.h"
#include "sp_store_internal.h"

static const char meta_prefix[] = "prekey/s/";
static const char otk_prefix[] = "prekey/o/";
_Static_assert(sizeof(meta_prefix) - 1 == SP_STORE_PREKEY_PREFIX_LEN, "prefix length");
_Static_assert(sizeof(otk_prefix) - 1 == SP_STORE_PREKEY_PREFIX_LEN, "prefix length");
_Static_assert((int)SP_STORE_PREKEY_REC_LEN == (int)SP_PREKEY_REC_LEN, "record length");

enum { META_VERSION = 1 };

void sp_store_prekey_meta_encode(uint8_t out[SP_STORE_PREKEY_META_LEN],
				 const struct sp_store_prekey_meta *m)
{
	memset(out, 0, SP_STORE_PREKEY_META_LEN);
	out[0] = META_VERSION;
	out[1] = m->has_signed ? 1 : 0;
	sp_be_put32(out + 4, m->count);
	memcpy(out + 8, m->edkey, SP_KEY_LEN);
	if (m->has_signed)
		memcpy(out + 8 + SP_KEY_LEN, m->spk, SP_STORE_PREKEY_REC_LEN);
}

int sp_store_prekey_meta_decode(const uint8_t *v, size_t len, struct sp_store_prekey_meta *m)
{
	static const uint8_t zero[SP_STORE_PREKEY_REC_LEN];

	if (len != SP_STORE_PREKEY_META_LEN || v[0] != META_VERSION || v[1] > 1 || v[2] || v[3])
		return -EBADMSG;
	/* one spelling: no signed record means its bytes are zero */
	if (!v[1] && memcmp(v + 8 + SP_KEY_LEN, zero, sizeof(zero)) != 0)
		return -EBADMSG;
	memset(m, 0, sizeof(*m));
	m->has_signed = v[1];
	m->count = sp_be_get32(v + 4);
	memcpy(m->edkey, v + 8, SP_KEY_LEN);
	memcpy(m->spk, v + 8 + SP_KEY_LEN, SP_STORE_PREKEY_REC_LEN);
	return 0;
}

static void meta_key(uint8_t out[SP_STORE_PREKEY_META_KEY_LEN], const uint8_t device[SP_KEY_LEN])
{
	memcpy(out, meta_prefix, SP_STORE_PREKEY_PREFIX_LEN);
	memcpy(out + SP_STORE_PREKEY_PREFIX_LEN, device, SP_KEY_LEN);
}

static void otk_key(uint8_t out[SP_STORE_PREKEY_OTK_KEY_LEN], const uint8_t device[SP_KEY_LEN],
		    uint32_t id)
{
	memcpy(out, otk_prefix, SP_STORE_PREKEY_PREFIX_LEN);
	memcpy(out + SP_STORE_PREKEY_PREFIX_LEN, device, SP_KEY_LEN);
	sp_be_put32(out + SP_STORE_PREKEY_PREFIX_LEN + SP_KEY_LEN, id);
}

int sp_store_prekey_meta_get(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
			     struct sp_store_prekey_meta *m)
{
	uint8_t key[SP_STORE_PREKEY_META_KEY_LEN];
	char *rerr = NULL, *val;
	size_t vlen;
	int ret;

	meta_key(key, device);
	val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_DEFAULT], (const char *)key,
			     sizeof(key), &vlen, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "prekey read", rerr);
	if (!val)
		return -ENOENT;
	ret = sp_store_prekey_meta_decode((const uint8_t *)val, vlen, m);
	rocksdb_free(val);
	return ret;
}

/* 1 if device has one-time record id on file, 0 if not, or -EIO. */
static int otk_exists(struct sp_store *st, const uint8_t device[SP_KEY_LEN], uint32_t id)
{
	uint8_t key[SP_STORE_PREKEY_OTK_KEY_LEN];
	char *rerr = NULL, *val;
	size_t vlen;

	otk_key(key, device, id);
	val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_DEFAULT], (const char *)key,
			     sizeof(key), &vlen, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "prekey read", rerr);
	if (!val)
		return 0;
	rocksdb_free(val);
	return 1;
}

static int write_synced(struct sp_store *st, rocksdb_writebatch_t *wb, const char *what)
{
	char *rerr = NULL;

	rocksdb_write(st->db, st->wo_sync, wb, &rerr);
	rocksdb_writebatch_destroy(wb);
	return rerr ? sp_store_rocks_fail(st, what, rerr) : 0;
}

static int put_locked(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
		      const uint8_t edkey[SP_KEY_LEN], const uint8_t *spk, const uint8_t *onetime,
		      uint32_t n_onetime, uint32_t stock_max, uint32_t *count)
{
	uint8_t mk[SP_STORE_PREKEY_META_KEY_LEN], ok[SP_STORE_PREKEY_OTK_KEY_LEN];
	uint8_t mv[SP_STORE_PREKEY_META_LEN];
	struct sp_store_prekey_meta m;
	rocksdb_writebatch_t *wb;
	uint64_t fresh = 0;
	int ret;

	ret = sp_store_prekey_meta_get(st, device, &m);
	if (ret == -ENOENT || ret == -EBADMSG)
		memset(&m, 0, sizeof(m)); /* none, or corrupt: start over */
	else if (ret < 0)
		return ret;
	for (uint32_t i = 0; i < n_onetime; i++) {
		const uint8_t *rec = onetime + (size_t)i * SP_STORE_PREKEY_REC_LEN;

		ret = otk_exists(st, device, sp_be_get32(rec + 1));
		if (ret < 0)
			return ret;
		fresh += !ret;
	}
	if (m.count + fresh > stock_max)
		return -EXFULL;
	m.count += (uint32_t)fresh;
	memcpy(m.edkey, edkey, SP_KEY_LEN);
	if (spk) {
		m.has_signed = true;
		memcpy(m.spk, spk, SP_STORE_PREKEY_REC_LEN);
	}
	wb = rocksdb_writebatch_create();
	if (!wb)
		return -ENOMEM;
	for (uint32_t i = 0; i < n_onetime; i++) {
		const uint8_t *rec = onetime + (size_t)i * SP_STORE_PREKEY_REC_LEN;

		otk_key(ok, device, sp_be_get32(rec + 1));
		rocksdb_writebatch_put_cf(wb, st->cf[SP_STORE_CF_DEFAULT], (const char *)ok, sizeof(ok),
					  (const char *)rec, SP_STORE_PREKEY_REC_LEN);
	}
	meta_key(mk, device);
	sp_store_prekey_meta_encode(mv, &m);
	rocksdb_writebatch_put_cf(wb, st->cf[SP_STORE_CF_DEFAULT], (const char *)mk, sizeof(mk),
				  (const char *)mv, sizeof(mv));
	ret = write_synced(st, wb, "prekey write");
	if (ret == 0)
		*count = m.count;
	return ret;
}

int sp_store_prekey_put(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
			const uint8_t edkey[SP_KEY_LEN], const uint8_t *spk, const uint8_t *onetime,
			uint32_t n_onetime, uint32_t stock_max, uint32_t *count)
{
	int ret;

	if (st->poisoned)
		return -EIO;
	pthread_mutex_lock(&st->prekey_lock);
	ret = put_locked(st, device, edkey, spk, onetime, n_onetime, stock_max, count);
	pthread_mutex_unlock(&st->prekey_lock);
	return ret;
}

/* The lowest-id one-time record of device: 1 and key + record, 0 none, -EIO. */
static int first_otk(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
		     uint8_t key[SP_STORE_PREKEY_OTK_KEY_LEN], uint8_t rec[SP_STORE_PREKEY_REC_LEN])
{
	/* Above every id of this device: the 45-byte keys sort below it. */
	uint8_t hi[SP_STORE_PREKEY_OTK_KEY_LEN + 1];
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t *it;
	char *rerr = NULL;
	int found = 0;

	otk_key(key, device, 0);
	otk_key(hi, device, UINT32_MAX);
	hi[SP_STORE_PREKEY_OTK_KEY_LEN] = 0xff;
	ro = rocksdb_readoptions_create();
	if (!ro)
		return -ENOMEM;
	rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)hi, sizeof(hi));
	it = rocksdb_create_iterator_cf(st->db, ro, st->cf[SP_STORE_CF_DEFAULT]);
	for (rocksdb_iter_seek(it, (const char *)key, SP_STORE_PREKEY_OTK_KEY_LEN);
	     rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v = rocksdb_iter_value(it, &vlen);

		/* A record of another length is not ours to hand out: skipped
		 * (it stays, counted as corrupt by nobody; the count is the
		 * meta record's). */
		if (klen != SP_STORE_PREKEY_OTK_KEY_LEN || vlen != SP_STORE_PREKEY_REC_LEN)
			continue;
		memcpy(key, k, klen);
		memcpy(rec, v, vlen);
		found = 1;
		break;
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	if (rerr)
		return sp_store_rocks_fail(st, "prekey read", rerr);
	return found;
}

static int take_locked(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
		       struct sp_store_prekey_meta *m, uint8_t otk[SP_STORE_PREKEY_REC_LEN],
		       bool *has_otk)
{
	uint8_t ok[SP_STORE_PREKEY_OTK_KEY_LEN], mk[SP_STORE_PREKEY_META_KEY_LEN];
	uint8_t mv[SP_STORE_PREKEY_META_LEN];
	rocksdb_writebatch_t *wb;
	int ret;

	*has_otk = false;
	ret = sp_store_prekey_meta_get(st, device, m);
	if (ret == -EBADMSG)
		return -ENOENT;
	if (ret < 0)
		return ret;
	if (!m->has_signed)
		return -ENOENT;
	ret = first_otk(st, device, ok, otk);
	if (ret <= 0) {
		if (ret == 0)
			m->count = 0; /* whatever the record said: none is left */
		return ret;
	}
	m->count = m->count ? m->count - 1 : 0;
	wb = rocksdb_writebatch_create();
	if (!wb)
		return -ENOMEM;
	rocksdb_writebatch_delete_cf(wb, st->cf[SP_STORE_CF_DEFAULT], (const char *)ok, sizeof(ok));
	meta_key(mk, device);
	sp_store_prekey_meta_encode(mv, m);
	rocksdb_writebatch_put_cf(wb, st->cf[SP_STORE_CF_DEFAULT], (const char *)mk, sizeof(mk),
				  (const char *)mv, sizeof(mv));
	ret = write_synced(st, wb, "prekey take");
	if (ret == 0)
		*has_otk = true;
	return ret;
}

int sp_store_prekey_take(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
			 struct sp_store_prekey_meta *m, uint8_t otk[SP_STORE_PREKEY_REC_LEN],
			 bool *has_otk)
{
	int ret;

	if (st->poisoned)
		return -EIO;
	pthread_mutex_lock(&st->prekey_lock);
	ret = take_locked(st, device, m, otk, has_otk);
	pthread_mutex_unlock(&st->prekey_lock);
	return ret;
}
