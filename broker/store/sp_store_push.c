/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store_push.c: Web Push subscriptions (sp_store.h, "Push subscriptions").
 *
 * One record per device in the default column family, key
 * "push/" | device[32], value opaque here (broker/push/sp_push_sub.c encodes
 * it). Written directly, not through the iteration's batch: a registration
 * is rare, answered only once it is on disk (a synced write), and the
 * batch's WriteBatch must stay envelopes, acks and counters only.
 */
#include <errno.h>
#include <string.h>

#include "sp_store.h"
#include "sp_store_internal.h"

static const char push_prefix[] = "push/";
enum { PREFIX_LEN = sizeof(push_prefix) - 1 };

void sp_store_push_key(uint8_t out[SP_STORE_PUSH_KEY_LEN], const uint8_t device[SP_KEY_LEN])
{
	memcpy(out, push_prefix, PREFIX_LEN);
	memcpy(out + PREFIX_LEN, device, SP_KEY_LEN);
}

int sp_store_push_put(struct sp_store *st, const uint8_t device[SP_KEY_LEN], const uint8_t *val,
		      size_t len)
{
	uint8_t key[SP_STORE_PUSH_KEY_LEN];
	char *rerr = NULL;

	if (st->poisoned)
		return -EIO;
	sp_store_push_key(key, device);
	rocksdb_put_cf(st->db, st->wo_sync, st->cf[SP_STORE_CF_DEFAULT], (const char *)key,
		       sizeof(key), (const char *)val, len, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "push subscription write", rerr);
	return 0;
}

int sp_store_push_del(struct sp_store *st, const uint8_t device[SP_KEY_LEN])
{
	uint8_t key[SP_STORE_PUSH_KEY_LEN];
	char *rerr = NULL;

	if (st->poisoned)
		return -EIO;
	sp_store_push_key(key, device);
	rocksdb_delete_cf(st->db, st->wo_sync, st->cf[SP_STORE_CF_DEFAULT], (const char *)key,
			  sizeof(key), &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "push subscription delete", rerr);
	return 0;
}

int sp_store_push_each(struct sp_store *st, sp_store_push_fn fn, void *ctx)
{
	rocksdb_iterator_t *it;
	char *rerr = NULL;
	int ret = 0;

	it = rocksdb_create_iterator_cf(st->db, st->ro, st->cf[SP_STORE_CF_DEFAULT]);
	if (!it)
		return -ENOMEM;
	for (rocksdb_iter_seek(it, push_prefix, PREFIX_LEN); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v = rocksdb_iter_value(it, &vlen);

		if (klen < PREFIX_LEN || memcmp(k, push_prefix, PREFIX_LEN) != 0)
			break;
		if (klen != SP_STORE_PUSH_KEY_LEN)
			continue;       /* not ours: skipped like a corrupt value */
		ret = fn(ctx, (const uint8_t *)k + PREFIX_LEN, (const uint8_t *)v, vlen);
		if (ret)
			break;
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	if (rerr)
		return sp_store_rocks_fail(st, "push subscription scan", rerr);
	return ret;
}
