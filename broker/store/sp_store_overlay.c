/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store_overlay.c: what the open batch wrote, by (column family, key),
 * so reads inside the batch see its own writes (sp_store_internal.h
 * "Overlay").
 *
 * Why not RocksDB's WriteBatchWithIndex: it kept every key of the batch in
 * a skiplist ordered through a virtual comparator, and each insert and
 * lookup walked it (measured, bench/durable-callgrind.sh: about a third of
 * a durable envelope's broker instructions went into that index and the
 * reads through it). The batch's reads are point lookups only, so a hash
 * table answers them. Keys are chosen by peers (device keys, dedup ids
 * derive from them), so it hashes with SipHash-2-4 (libsodium's
 * crypto_shorthash) under a random key per store.
 *
 * Layout: entries in the order first written (ents), an open-addressing
 * index of entry numbers (idx, 0 = empty slot), and an arena holding keys
 * and values. Clearing costs O(entries), not O(capacity).
 */
#include "sp_store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sp_fsutil.h"

enum { OVL_MIN_SLOTS = 1024, OVL_KEY_MAX = 64 };

static uint64_t ovl_hash(const struct sp_store_ovl *o, enum sp_store_cf cf, const uint8_t *key,
			 size_t klen)
{
	uint8_t buf[1 + OVL_KEY_MAX];
	uint8_t out[crypto_shorthash_BYTES];
	uint64_t h;

	buf[0] = (uint8_t)cf;
	memcpy(buf + 1, key, klen);
	crypto_shorthash(out, buf, 1 + klen, o->hash_key);
	memcpy(&h, out, sizeof(h));
	return h;
}

int sp_store_ovl_init(struct sp_store_ovl *o)
{
	memset(o, 0, sizeof(*o));
	o->idx = calloc(OVL_MIN_SLOTS, sizeof(*o->idx));
	if (!o->idx)
		return -ENOMEM;
	o->slots = OVL_MIN_SLOTS;
	crypto_shorthash_keygen(o->hash_key);
	return 0;
}

void sp_store_ovl_fini(struct sp_store_ovl *o)
{
	free(o->idx);
	free(o->ents);
	free(o->arena);
	sodium_memzero(o->hash_key, sizeof(o->hash_key));
	memset(o, 0, sizeof(*o));
}

/* The index slot of (cf, key): where it is, or the empty slot where it would
 * go. */
static size_t ovl_slot(const struct sp_store_ovl *o, uint64_t h, enum sp_store_cf cf,
		       const uint8_t *key, size_t klen)
{
	size_t mask = o->slots - 1;
	size_t i = (size_t)h & mask;

	for (;;) {
		uint32_t e = o->idx[i];

		if (e == 0)
			return i;
		{
			const struct sp_store_ovl_ent *en = &o->ents[e - 1];

			if (en->hash == h && en->cf == cf && en->klen == klen &&
			    memcmp(o->arena + en->koff, key, klen) == 0)
				return i;
		}
		i = (i + 1) & mask;
	}
}

/* Doubles the index (the entries keep their hashes: no rehashing). */
static int ovl_grow(struct sp_store_ovl *o)
{
	size_t n = o->slots * 2;
	uint32_t *idx = calloc(n, sizeof(*idx));

	if (!idx)
		return -ENOMEM;
	for (size_t e = 0; e < o->n; e++) {
		size_t i = (size_t)o->ents[e].hash & (n - 1);

		while (idx[i])
			i = (i + 1) & (n - 1);
		idx[i] = (uint32_t)(e + 1);
		o->ents[e].slot = (uint32_t)i;
	}
	free(o->idx);
	o->idx = idx;
	o->slots = n;
	return 0;
}

/* Room for len more arena bytes: 0 or -ENOMEM. */
static int ovl_reserve(struct sp_store_ovl *o, size_t len)
{
	void *p;

	if (o->alen + len <= o->acap)
		return 0;
	if (o->alen + len > UINT32_MAX)
		return -ENOMEM;
	p = sp_fsutil_grow(o->arena, &o->acap, o->alen + len, 64 * 1024);
	if (!p)
		return -ENOMEM;
	o->arena = p;
	return 0;
}

/*
 * Records that (cf, key) now holds the nv slices vp/vl (put) or is gone
 * (vp NULL). The key and value bytes are copied; every input is borrowed.
 * 0 or -ENOMEM (then the overlay is unchanged).
 */
static int ovl_set(struct sp_store_ovl *o, enum sp_store_cf cf, const uint8_t *key, size_t klen,
		   size_t nv, const char *const *vp, const size_t *vl)
{
	uint64_t h;
	size_t i, vlen = 0;
	struct sp_store_ovl_ent *en;
	int rc;

	if (klen > OVL_KEY_MAX)
		return -EINVAL;
	for (size_t j = 0; j < nv; j++)
		vlen += vl[j];
	if ((o->n + 1) * 2 > o->slots) {
		rc = ovl_grow(o);
		if (rc < 0)
			return rc;
	}
	h = ovl_hash(o, cf, key, klen);
	i = ovl_slot(o, h, cf, key, klen);
	rc = ovl_reserve(o, klen + vlen);
	if (rc < 0)
		return rc;
	if (o->idx[i] == 0) {
		size_t need = (o->n + 1) * sizeof(*en);

		if (need > o->ents_cap) {
			en = sp_fsutil_grow(o->ents, &o->ents_cap, need, 256 * sizeof(*en));
			if (!en)
				return -ENOMEM;
			o->ents = en;
		}
		en = &o->ents[o->n];
		en->hash = h;
		en->cf = (uint8_t)cf;
		en->klen = (uint8_t)klen;
		en->koff = (uint32_t)o->alen;
		en->slot = (uint32_t)i;
		memcpy(o->arena + o->alen, key, klen);
		o->alen += klen;
		o->idx[i] = (uint32_t)++o->n;
	} else {
		en = &o->ents[o->idx[i] - 1];
	}
	en->deleted = vp == NULL;
	en->voff = (uint32_t)o->alen;
	en->vlen = (uint32_t)vlen;
	for (size_t j = 0; j < nv; j++) {
		if (vl[j])
			memcpy(o->arena + o->alen, vp[j], vl[j]);
		o->alen += vl[j];
	}
	return 0;
}

int sp_store_ovl_put(struct sp_store_ovl *o, enum sp_store_cf cf, const uint8_t *key,
		     size_t klen, size_t nv, const char *const *vp, const size_t *vl)
{
	static const char empty[1] = "";

	if (nv == 0) {
		const char *p[1] = { empty };
		const size_t l[1] = { 0 };

		return ovl_set(o, cf, key, klen, 1, p, l);
	}
	return ovl_set(o, cf, key, klen, nv, vp, vl);
}

int sp_store_ovl_del(struct sp_store_ovl *o, enum sp_store_cf cf, const uint8_t *key,
		     size_t klen)
{
	return ovl_set(o, cf, key, klen, 0, NULL, NULL);
}

const struct sp_store_ovl_ent *sp_store_ovl_find(const struct sp_store_ovl *o,
						 enum sp_store_cf cf, const uint8_t *key,
						 size_t klen)
{
	size_t i;

	if (o->n == 0 || klen > OVL_KEY_MAX)
		return NULL;
	i = ovl_slot(o, ovl_hash(o, cf, key, klen), cf, key, klen);
	return o->idx[i] ? &o->ents[o->idx[i] - 1] : NULL;
}

void sp_store_ovl_clear(struct sp_store_ovl *o)
{
	for (size_t e = 0; e < o->n; e++)
		o->idx[o->ents[e].slot] = 0;
	o->n = 0;
	o->alen = 0;
}
