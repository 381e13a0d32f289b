/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store_access.c: access-key records of sealed sender (sp_store.h,
 * "access keys"; PROTOCOL.md 14).
 *
 * Written directly, not through the iteration's batch, like push
 * subscriptions: a SetAccess is rare and answered only once it is on disk.
 * Read with one point lookup per anonymous send (the block cache keeps hot
 * recipients in memory).
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "sp_store.h"
#include "sp_store_internal.h"

static const char access_prefix[] = "access/";
enum { PREFIX_LEN = sizeof(access_prefix) - 1 };
_Static_assert(PREFIX_LEN + SP_KEY_LEN == SP_STORE_ACCESS_KEY_LEN, "access key length");

static const char hash_domain[] = "sealpost/access/1";

void sp_store_access_hash(uint8_t out[SP_ACCESS_HASH_LEN], const uint8_t *key, size_t len)
{
	crypto_generichash_state h;

	/* Unkeyed: the store's hash must not depend on a file that may be
	 * lost (dedup.key); an access key has 128 or 256 bits, so the hash
	 * cannot be searched back to it. */
	crypto_generichash_init(&h, NULL, 0, SP_ACCESS_HASH_LEN);
	crypto_generichash_update(&h, (const uint8_t *)hash_domain, sizeof(hash_domain) - 1);
	crypto_generichash_update(&h, key, len);
	crypto_generichash_final(&h, out, SP_ACCESS_HASH_LEN);
	sodium_memzero(&h, sizeof(h));
}

void sp_store_access_encode(uint8_t out[SP_STORE_ACCESS_VALUE_LEN], const struct sp_store_access *a)
{
	memset(out, 0, SP_STORE_ACCESS_VALUE_LEN);
	out[0] = 1;
	out[1] = a->anyone ? 1 : 0;
	out[2] = a->has_cur ? 1 : 0;
	out[3] = a->has_prev ? 1 : 0;
	if (a->has_cur)
		memcpy(out + 8, a->cur, SP_ACCESS_HASH_LEN);
	if (a->has_prev)
		memcpy(out + 8 + SP_ACCESS_HASH_LEN, a->prev, SP_ACCESS_HASH_LEN);
}

int sp_store_access_decode(const uint8_t *v, size_t len, struct sp_store_access *a)
{
	if (len != SP_STORE_ACCESS_VALUE_LEN || v[0] != 1 || v[1] > 1 || v[2] > 1 || v[3] > 1 ||
	    v[4] || v[5] || v[6] || v[7])
		return -EBADMSG;
	memset(a, 0, sizeof(*a));
	a->anyone = v[1];
	a->has_cur = v[2];
	a->has_prev = v[3];
	memcpy(a->cur, v + 8, SP_ACCESS_HASH_LEN);
	memcpy(a->prev, v + 8 + SP_ACCESS_HASH_LEN, SP_ACCESS_HASH_LEN);
	return 0;
}

static void access_key(uint8_t out[SP_STORE_ACCESS_KEY_LEN], const uint8_t device[SP_KEY_LEN])
{
	memcpy(out, access_prefix, PREFIX_LEN);
	memcpy(out + PREFIX_LEN, device, SP_KEY_LEN);
}

int sp_store_access_get(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
			struct sp_store_access *a)
{
	uint8_t key[SP_STORE_ACCESS_KEY_LEN];
	char *rerr = NULL, *val;
	size_t vlen;
	int ret;

	access_key(key, device);
	val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_DEFAULT], (const char *)key,
			     sizeof(key), &vlen, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "access read", rerr);
	if (!val)
		return -ENOENT;
	ret = sp_store_access_decode((const uint8_t *)val, vlen, a);
	rocksdb_free(val);
	return ret;
}

int sp_store_access_put(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
			const struct sp_store_access *a)
{
	uint8_t key[SP_STORE_ACCESS_KEY_LEN], val[SP_STORE_ACCESS_VALUE_LEN];
	char *rerr = NULL;

	if (st->poisoned)
		return -EIO;
	access_key(key, device);
	sp_store_access_encode(val, a);
	rocksdb_put_cf(st->db, st->wo_sync, st->cf[SP_STORE_CF_DEFAULT], (const char *)key,
		       sizeof(key), (const char *)val, sizeof(val), &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "access write", rerr);
	return 0;
}
