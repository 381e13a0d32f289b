/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store_account.c: accounts' signed device lists (sp_store.h, "Accounts").
 *
 * A list changes rarely (a device linked or removed) and its acceptance is
 * final for the publisher, so it is written on its own, synced, outside the
 * iteration's batch: the ListResult can go out at once, and a crash can never
 * lose a list that a device was told is stored (whatever --fsync says for
 * envelopes). The device index is in the same WriteBatch as the list.
 */
#include <errno.h>
#include <string.h>

#include "sp_store_internal.h"

static void list_key(uint8_t out[SP_STORE_LIST_KEY_LEN], const uint8_t account[SP_ACCOUNT_LEN])
{
	memcpy(out, SP_STORE_LIST_PREFIX, SP_STORE_ACCT_PREFIX_LEN);
	memcpy(out + SP_STORE_ACCT_PREFIX_LEN, account, SP_ACCOUNT_LEN);
}

static void device_key(uint8_t out[SP_STORE_LIST_KEY_LEN], const uint8_t device[SP_KEY_LEN])
{
	memcpy(out, SP_STORE_DEVICE_PREFIX, SP_STORE_ACCT_PREFIX_LEN);
	memcpy(out + SP_STORE_ACCT_PREFIX_LEN, device, SP_KEY_LEN);
}

int sp_store_list_get(struct sp_store *st, const uint8_t account[SP_ACCOUNT_LEN], uint8_t *buf,
		      size_t cap, size_t *len)
{
	uint8_t key[SP_STORE_LIST_KEY_LEN];
	char *rerr = NULL, *val;
	size_t vlen = 0;
	int rc = 0;

	list_key(key, account);
	val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_DEFAULT], (const char *)key,
			     sizeof(key), &vlen, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "list read", rerr);
	if (!val)
		return -ENOENT;
	if (vlen < 2 || (uint8_t)val[0] != SP_STORE_VALUE_V1)
		rc = -EBADMSG;
	else if (vlen - 1 > cap)
		rc = -EMSGSIZE;
	else {
		memcpy(buf, val + 1, vlen - 1);
		*len = vlen - 1;
	}
	rocksdb_free(val);
	return rc;
}

int sp_store_list_put(struct sp_store *st, const uint8_t account[SP_ACCOUNT_LEN],
		      const uint8_t *list, size_t len, const uint8_t (*added)[SP_KEY_LEN],
		      size_t nadded, const uint8_t (*removed)[SP_KEY_LEN], size_t nremoved)
{
	uint8_t key[SP_STORE_LIST_KEY_LEN];
	uint8_t val[1 + SP_STORE_LIST_VALUE_MAX];
	rocksdb_writebatch_t *wb;
	char *rerr = NULL;
	uint64_t index;
	int rc;

	if (st->poisoned)
		return -EIO;
	if (len == 0 || len > SP_STORE_LIST_VALUE_MAX)
		return -EMSGSIZE;
	wb = rocksdb_writebatch_create();
	if (!wb)
		return -ENOMEM;
	val[0] = SP_STORE_VALUE_V1;
	memcpy(val + 1, list, len);
	list_key(key, account);
	rocksdb_writebatch_put_cf(wb, st->cf[SP_STORE_CF_DEFAULT], (const char *)key, sizeof(key),
				  (const char *)val, 1 + len);
	for (size_t i = 0; i < nremoved; i++) {
		device_key(key, removed[i]);
		rocksdb_writebatch_delete_cf(wb, st->cf[SP_STORE_CF_DEFAULT], (const char *)key,
					     sizeof(key));
	}
	for (size_t i = 0; i < nadded; i++) {
		device_key(key, added[i]);
		rocksdb_writebatch_put_cf(wb, st->cf[SP_STORE_CF_DEFAULT], (const char *)key,
					  sizeof(key), (const char *)account, SP_ACCOUNT_LEN);
	}
	/* the transparency log's append, in the same batch: the list and its
	 * leaf are durable together or not at all (docs/PROTOCOL.md 11.7) */
	rc = sp_store_log_stage(st, wb, account, list, len, &index);
	if (rc) {
		rocksdb_writebatch_destroy(wb);
		return rc;
	}
	rocksdb_write(st->db, st->wo_sync, wb, &rerr);
	rocksdb_writebatch_destroy(wb);
	if (rerr)
		return sp_store_rocks_fail(st, "list write", rerr);
	return 0;
}

int sp_store_device_account(struct sp_store *st, const uint8_t device[SP_KEY_LEN],
			    uint8_t account[SP_ACCOUNT_LEN])
{
	uint8_t key[SP_STORE_LIST_KEY_LEN];
	char *rerr = NULL, *val;
	size_t vlen = 0;
	int rc = 0;

	device_key(key, device);
	val = rocksdb_get_cf(st->db, st->ro, st->cf[SP_STORE_CF_DEFAULT], (const char *)key,
			     sizeof(key), &vlen, &rerr);
	if (rerr)
		return sp_store_rocks_fail(st, "device read", rerr);
	if (!val)
		return -ENOENT;
	if (vlen != SP_ACCOUNT_LEN)
		rc = -EBADMSG;
	else
		memcpy(account, val, SP_ACCOUNT_LEN);
	rocksdb_free(val);
	return rc;
}
