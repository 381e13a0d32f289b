/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_keytab.c: 32-byte key -> 64-bit value, open addressing.
 *
 * Linear probing with backward-shift deletion (no tombstones, so a table that
 * sees millions of connect/disconnect cycles never degrades). Each slot holds
 * the key inline, the value, and the key's SipHash; the stored hash means
 * probing compares one word before touching the key, and growing or shifting
 * never rehashes a key. One slot is 48 bytes and one cache-line-sized read
 * usually answers a lookup, because the table is far larger than the caches
 * at a million entries.
 *
 * The home slot is taken from the hash's upper 32 bits by multiply-shift
 * ("fastrange") rather than a power-of-two mask, so a table sized from a
 * capacity hint needs no rounding up: 1,000,000 entries created with that
 * hint take 1,428,572 slots, 68.6 MB. Grown by doubling from a small table,
 * the load after a doubling is 0.35..0.7, so the same million sits in 1.43 to
 * 2.86 M slots (68 to 137 MB; from a hint of 1: 2,097,152 slots, 101 MB).
 *
 * Large tables (>= 2 MiB) are mapped with MADV_HUGEPAGE: a lookup in a big
 * table is one random DRAM access, and on the development VM (nested paging)
 * a dependent random load over 100 MB took ~390 ns with 4 KiB pages against
 * ~265 ns with 2 MiB pages, the difference being TLB misses. A lookup is that
 * access plus SipHash of the key (~55 ns); a table that fits the caches
 * answers in ~50-100 ns.
 *
 * The hash is libsodium's crypto_shorthash (SipHash-2-4) under a random
 * per-table key rather than a SipHash of our own: libsodium is linked by
 * everything that uses this table anyway, and its SipHash is reviewed and
 * vectorised. This makes util depend on libsodium, and only util's keytab.
 *
 * Threading: none; one table per thread.
 */
#include "sp_keytab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sodium.h>

/* hash == 0 marks an empty slot; stored hashes always have bit 0 set. */
struct slot {
	uint8_t key[SP_KEYTAB_KEY_LEN];
	uint64_t value;
	uint64_t hash;
};

struct sp_keytab {
	struct slot *slots;
	size_t cap;
	size_t count;
	size_t grow_at; /* count above which the next insert doubles the table */
	uint8_t hash_key[crypto_shorthash_KEYBYTES];
};

enum {
	KEYTAB_MIN_CAP = 8,
	/* Load factor limit 7/10: linear probing stays short (expected ~2 probes
	 * for a hit, ~6 for a miss) up to there. */
	KEYTAB_LOAD_NUM = 7,
	KEYTAB_LOAD_DEN = 10,
};

/* Below this size, plain calloc: huge pages would not help and waste memory. */
#define KEYTAB_HUGE_MIN ((size_t)2 << 20)

/* Home slots come from 32 hash bits, so the table can address 2^32 slots. */
#define KEYTAB_MAX_CAP ((size_t)UINT32_MAX)

static uint64_t hash_key(const struct sp_keytab *t, const uint8_t key[SP_KEYTAB_KEY_LEN])
{
	uint8_t out[crypto_shorthash_BYTES];
	uint64_t h;

	crypto_shorthash(out, key, SP_KEYTAB_KEY_LEN, t->hash_key);
	memcpy(&h, out, sizeof(h));
	return h | 1;
}

static size_t home(uint64_t hash, size_t cap)
{
	return (size_t)(((hash >> 32) * (uint64_t)cap) >> 32);
}

static size_t next(size_t i, size_t cap)
{
	return i + 1 == cap ? 0 : i + 1;
}

static size_t grow_threshold(size_t cap)
{
	return cap / KEYTAB_LOAD_DEN * KEYTAB_LOAD_NUM +
	       cap % KEYTAB_LOAD_DEN * KEYTAB_LOAD_NUM / KEYTAB_LOAD_DEN;
}

/* Returns the slot holding key, or the empty slot where the probe ended. */
static size_t find(const struct sp_keytab *t, const uint8_t key[SP_KEYTAB_KEY_LEN],
		   uint64_t hash)
{
	size_t i = home(hash, t->cap);

	for (;;) {
		const struct slot *s = &t->slots[i];

		if (s->hash == 0)
			return i;
		if (s->hash == hash && memcmp(s->key, key, SP_KEYTAB_KEY_LEN) == 0)
			return i;
		i = next(i, t->cap);
	}
}

/* Zeroed slots (all empty). */
static struct slot *slots_alloc(size_t cap)
{
	size_t bytes = cap * sizeof(struct slot);
	void *p;

	if (bytes < KEYTAB_HUGE_MIN)
		return calloc(cap, sizeof(struct slot));
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_HUGEPAGE
	/* Advice only: without transparent huge pages it is just slower. */
	(void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
	return p;
}

static void slots_free(struct slot *slots, size_t cap)
{
	size_t bytes = cap * sizeof(struct slot);

	if (!slots)
		return;
	if (bytes < KEYTAB_HUGE_MIN)
		free(slots);
	else
		munmap(slots, bytes);
}

static int resize(struct sp_keytab *t, size_t cap)
{
	struct slot *slots;

	if (cap > KEYTAB_MAX_CAP)
		return -ENOMEM;
	slots = slots_alloc(cap);
	if (!slots)
		return -ENOMEM;
	for (size_t j = 0; j < t->cap; j++) {
		const struct slot *s = &t->slots[j];
		size_t i;

		if (s->hash == 0)
			continue;
		/* Keys are unique, so the first empty slot is the place. */
		for (i = home(s->hash, cap); slots[i].hash != 0; i = next(i, cap))
			;
		slots[i] = *s;
	}
	slots_free(t->slots, t->cap);
	t->slots = slots;
	t->cap = cap;
	t->grow_at = grow_threshold(cap);
	return 0;
}

int sp_keytab_create(struct sp_keytab **out, size_t capacity_hint)
{
	struct sp_keytab *t;
	size_t cap;
	int ret;

	*out = NULL;
	if (sodium_init() < 0)
		return -EIO;
	if (capacity_hint > KEYTAB_MAX_CAP / KEYTAB_LOAD_DEN * KEYTAB_LOAD_NUM)
		return -ENOMEM;
	cap = capacity_hint / KEYTAB_LOAD_NUM * KEYTAB_LOAD_DEN +
	      capacity_hint % KEYTAB_LOAD_NUM * KEYTAB_LOAD_DEN / KEYTAB_LOAD_NUM + 1;
	if (cap < KEYTAB_MIN_CAP)
		cap = KEYTAB_MIN_CAP;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	randombytes_buf(t->hash_key, sizeof(t->hash_key));
	ret = resize(t, cap);
	if (ret < 0) {
		sp_keytab_destroy(t);
		return ret;
	}
	*out = t;
	return 0;
}

void sp_keytab_destroy(struct sp_keytab *t)
{
	if (!t)
		return;
	slots_free(t->slots, t->cap);
	/* Not a secret that outlives anything, but a leaked hash key would let
	 * a peer pick colliding keys if this memory were reused and read. */
	sodium_memzero(t->hash_key, sizeof(t->hash_key));
	free(t);
}

int sp_keytab_insert(struct sp_keytab *t, const uint8_t key[SP_KEYTAB_KEY_LEN], uint64_t value,
		     uint64_t *old_value)
{
	uint64_t hash = hash_key(t, key);
	size_t i = find(t, key, hash);
	struct slot *s = &t->slots[i];
	int ret;

	if (s->hash != 0) {
		if (old_value)
			*old_value = s->value;
		s->value = value;
		return 1;
	}
	if (t->count + 1 > t->grow_at) {
		if (t->cap > KEYTAB_MAX_CAP / 2)
			return -ENOMEM;
		ret = resize(t, t->cap * 2);
		if (ret < 0)
			return ret;
		i = find(t, key, hash);
		s = &t->slots[i];
	}
	memcpy(s->key, key, SP_KEYTAB_KEY_LEN);
	s->value = value;
	s->hash = hash;
	t->count++;
	return 0;
}

int sp_keytab_lookup(const struct sp_keytab *t, const uint8_t key[SP_KEYTAB_KEY_LEN],
		     uint64_t *value)
{
	const struct slot *s = &t->slots[find(t, key, hash_key(t, key))];

	if (s->hash == 0)
		return -ENOENT;
	*value = s->value;
	return 0;
}

/*
 * Empties slot i and pulls later entries of the same cluster back so no probe
 * sequence crosses a hole: an entry at j may fill the hole at i only if its
 * home is not cyclically inside (i, j].
 */
static void erase(struct sp_keytab *t, size_t i)
{
	size_t j = i;

	for (;;) {
		size_t h;

		j = next(j, t->cap);
		if (t->slots[j].hash == 0)
			break;
		h = home(t->slots[j].hash, t->cap);
		if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
			continue;
		t->slots[i] = t->slots[j];
		i = j;
	}
	memset(&t->slots[i], 0, sizeof(t->slots[i]));
}

int sp_keytab_remove(struct sp_keytab *t, const uint8_t key[SP_KEYTAB_KEY_LEN],
		     uint64_t expected)
{
	size_t i = find(t, key, hash_key(t, key));

	if (t->slots[i].hash == 0)
		return -ENOENT;
	if (t->slots[i].value != expected)
		return -ESTALE;
	erase(t, i);
	t->count--;
	return 0;
}

size_t sp_keytab_bytes(const struct sp_keytab *t)
{
	return t->cap * sizeof(struct slot);
}

size_t sp_keytab_count(const struct sp_keytab *t)
{
	return t->count;
}

void sp_keytab_clear(struct sp_keytab *t)
{
	memset(t->slots, 0, t->cap * sizeof(*t->slots));
	t->count = 0;
}
