/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store_enrol.c: registered devices and used enrolment tokens
 * (sp_store.h, "registration"; docs/PROTOCOL.md 15).
 *
 * An enrolment is rare and final (the device is routed right after), so,
 * like a list or an access key, it is its own synced WriteBatch outside the
 * iteration's batch: the registration and the token's "used" mark are on
 * disk together before the device gets a mailbox, or neither is.
 */
#include <errno.h>
#include <string.h>

#include "sp_be.h"
#include "sp_store.h"
#include "sp_store_internal.h"

static const char reg_prefix[] = SP_STORE_REG_PREFIX;
static const char used_prefix[] = SP_STORE_TOKEN_PREFIX;
_Static_assert(sizeof(reg_prefix) - 1 == SP_STORE_ENROL_PREFIX_LEN, "reg/ prefix");
_Static_assert(sizeof(used_prefix) - 1 == SP_STORE_ENROL_PREFIX_LEN, "etk/ prefix");

static void reg_key(uint8_t out[SP_STORE_REG_KEY_LEN], const uint8_t device[SP_KEY_LEN])
{
	memcpy(out, reg_prefix, SP_STORE_ENROL_PREFIX_LEN);
	memcpy(out + SP_STORE_ENROL_PREFIX_LEN, device, SP_KEY_LEN);
}

static void used_key(uint8_t out[SP_STORE_TOKEN_KEY_LEN], const uint8_t id[SP_STORE_TOKEN_ID_LEN])
{
	memcpy(out, used_prefix, SP_STORE_ENROL_PREFIX_LEN);
	memcpy(out + SP_STORE_ENROL_PREFIX_LEN, id, SP_STORE_TOKEN_ID_LEN);
}

/* 0 present, -ENOENT absent, -EBADMSG a value that is not vlen bytes of
 * version 1, -EIO. */
static int get_exact(struct sp_store *st, const uint8_t *key, size_t klen, size_t want,
		     const char *what)
{
	char *rerr = NULL, *val;
	size_t vlen = 0;
	int rc = 0;

	val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_DEFAULT], (const char *)key, klen,
			     &vlen, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, what, rerr);
	if (!val)
		return -ENOENT;
	if (vlen != want || (uint8_t)val[0] != SP_STORE_VALUE_V1)
		rc = -EBADMSG;
	rocksdb_free(val);
	return rc;
}

int sp_store_device_registered(struct sp_store *st, const uint8_t device[SP_KEY_LEN])
{
	uint8_t key[SP_STORE_REG_KEY_LEN];

	reg_key(key, device);
	return get_exact(st, key, sizeof(key), SP_STORE_REG_VALUE_LEN, "registration read");
}

int sp_store_enrol(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
		   const uint8_t id[SP_STORE_TOKEN_ID_LEN], uint64_t expires_ms)
{
	uint8_t rk[SP_STORE_REG_KEY_LEN], uk[SP_STORE_TOKEN_KEY_LEN];
	uint8_t rv[SP_STORE_REG_VALUE_LEN] = { SP_STORE_VALUE_V1 };
	uint8_t uv[SP_STORE_TOKEN_VALUE_LEN] = { SP_STORE_VALUE_V1 };
	rocksdb_writebatch_t *wb;
	char *rerr = NULL;
	int rc;

	if (st->poisoned)
		return -EIO;
	used_key(uk, id);
	/* Read then write without a lock: the store has one user thread (the
	 * shard's), so no other enrolment runs between the two. A corrupt
	 * mark counts as used: a token is never taken twice on a doubt. */
	rc = get_exact(st, uk, sizeof(uk), SP_STORE_TOKEN_VALUE_LEN, "token read");
	if (rc == 0 || rc == -EBADMSG)
		return -EALREADY;
	if (rc != -ENOENT)
		return rc;
	reg_key(rk, device);
	sp_be_put64(uv + 8, expires_ms);
	wb = rocksdb_writebatch_create();
	if (!wb)
		return -ENOMEM;
	rocksdb_writebatch_put_cf(wb, st->cf[SP_STORE_CF_DEFAULT], (const char *)rk, sizeof(rk),
				  (const char *)rv, sizeof(rv));
	rocksdb_writebatch_put_cf(wb, st->cf[SP_STORE_CF_DEFAULT], (const char *)uk, sizeof(uk),
				  (const char *)uv, sizeof(uv));
	rocksdb_write(st->db, st->wo_sync, wb, &rerr);
	rocksdb_writebatch_destroy(wb);
	if (rerr)
		return sp_store_rocks_fail(st, "enrolment write", rerr);
	return 0;
}

int sp_store_enrol_prune(struct sp_store *st, uint64_t now_ms, uint64_t *dropped)
{
	rocksdb_iterator_t *it;
	rocksdb_writebatch_t *wb;
	char *rerr = NULL;
	uint64_t n = 0;

	if (dropped)
		*dropped = 0;
	if (st->poisoned)
		return -EIO;
	wb = rocksdb_writebatch_create();
	if (!wb)
		return -ENOMEM;
	it = rocksdb_create_iterator_cf(st->db, st->ro, st->cf[SP_STORE_CF_DEFAULT]);
	if (!it) {
		rocksdb_writebatch_destroy(wb);
		return -ENOMEM;
	}
	for (rocksdb_iter_seek(it, used_prefix, SP_STORE_ENROL_PREFIX_LEN); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vlen);

		if (klen < SP_STORE_ENROL_PREFIX_LEN ||
		    memcmp(k, used_prefix, SP_STORE_ENROL_PREFIX_LEN) != 0)
			break;
		/* A corrupt mark stays (it refuses its token, see sp_store_enrol). */
		if (klen != SP_STORE_TOKEN_KEY_LEN || vlen != SP_STORE_TOKEN_VALUE_LEN ||
		    v[0] != SP_STORE_VALUE_V1 || sp_be_get64(v + 8) > now_ms)
			continue;
		/* Expired: the token's MAC check refuses it from now on anyway. */
		rocksdb_writebatch_delete_cf(wb, st->cf[SP_STORE_CF_DEFAULT], k, klen);
		n++;
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	if (rerr) {
		rocksdb_writebatch_destroy(wb);
		return sp_store_rocks_fail(st, "token scan", rerr);
	}
	if (n)
		rocksdb_write(st->db, st->wo_sync, wb, &rerr);
	rocksdb_writebatch_destroy(wb);
	if (rerr)
		return sp_store_rocks_fail(st, "token prune", rerr);
	if (dropped)
		*dropped = n;
	return 0;
}
