/*
 * sp_route.c: device public key -> connection handle, open addressing.
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
 * Threading: none; one table per shard thread.
 */
#include "sp_route.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sodium.h>

/* hash == 0 marks an empty slot; stored hashes always have bit 0 set. */
struct slot {
	uint8_t key[SP_KEY_LEN];
	uint64_t value;
	uint64_t hash;
};

struct sp_route {
	struct slot *slots;
	size_t cap;
	size_t count;
	size_t grow_at; /* count above which the next insert doubles the table */
	uint8_t hash_key[crypto_shorthash_KEYBYTES];
};

enum {
	ROUTE_MIN_CAP = 8,
	/* Load factor limit 7/10: linear probing stays short (expected ~2 probes
	 * for a hit, ~6 for a miss) up to there. */
	ROUTE_LOAD_NUM = 7,
	ROUTE_LOAD_DEN = 10,
};

/* Below this size, plain calloc: huge pages would not help and waste memory. */
#define ROUTE_HUGE_MIN ((size_t)2 << 20)

/* Home slots come from 32 hash bits, so the table can address 2^32 slots. */
#define ROUTE_MAX_CAP ((size_t)UINT32_MAX)

static uint64_t hash_key(const struct sp_route *rt, const uint8_t key[SP_KEY_LEN])
{
	uint8_t out[crypto_shorthash_BYTES];
	uint64_t h;

	crypto_shorthash(out, key, SP_KEY_LEN, rt->hash_key);
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
	return cap / ROUTE_LOAD_DEN * ROUTE_LOAD_NUM + cap % ROUTE_LOAD_DEN * ROUTE_LOAD_NUM / ROUTE_LOAD_DEN;
}

/* Returns the slot holding key, or the empty slot where the probe ended. */
static size_t find(const struct sp_route *rt, const uint8_t key[SP_KEY_LEN], uint64_t hash)
{
	size_t i = home(hash, rt->cap);

	for (;;) {
		const struct slot *s = &rt->slots[i];

		if (s->hash == 0)
			return i;
		if (s->hash == hash && memcmp(s->key, key, SP_KEY_LEN) == 0)
			return i;
		i = next(i, rt->cap);
	}
}

/* Zeroed slots (all empty). */
static struct slot *slots_alloc(size_t cap)
{
	size_t bytes = cap * sizeof(struct slot);
	void *p;

	if (bytes < ROUTE_HUGE_MIN)
		return calloc(cap, sizeof(struct slot));
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* Advice only: without transparent huge pages it is just slower. */
	(void)madvise(p, bytes, MADV_HUGEPAGE);
	return p;
}

static void slots_free(struct slot *slots, size_t cap)
{
	size_t bytes = cap * sizeof(struct slot);

	if (!slots)
		return;
	if (bytes < ROUTE_HUGE_MIN)
		free(slots);
	else
		munmap(slots, bytes);
}

static int resize(struct sp_route *rt, size_t cap)
{
	struct slot *slots;

	if (cap > ROUTE_MAX_CAP)
		return -ENOMEM;
	slots = slots_alloc(cap);
	if (!slots)
		return -ENOMEM;
	for (size_t j = 0; j < rt->cap; j++) {
		const struct slot *s = &rt->slots[j];
		size_t i;

		if (s->hash == 0)
			continue;
		/* Keys are unique, so the first empty slot is the place. */
		for (i = home(s->hash, cap); slots[i].hash != 0; i = next(i, cap))
			;
		slots[i] = *s;
	}
	slots_free(rt->slots, rt->cap);
	rt->slots = slots;
	rt->cap = cap;
	rt->grow_at = grow_threshold(cap);
	return 0;
}

int sp_route_create(struct sp_route **out, size_t capacity_hint)
{
	struct sp_route *rt;
	size_t cap;
	int ret;

	*out = NULL;
	if (sodium_init() < 0)
		return -EIO;
	if (capacity_hint > ROUTE_MAX_CAP / ROUTE_LOAD_DEN * ROUTE_LOAD_NUM)
		return -ENOMEM;
	cap = capacity_hint / ROUTE_LOAD_NUM * ROUTE_LOAD_DEN +
	      capacity_hint % ROUTE_LOAD_NUM * ROUTE_LOAD_DEN / ROUTE_LOAD_NUM + 1;
	if (cap < ROUTE_MIN_CAP)
		cap = ROUTE_MIN_CAP;

	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	randombytes_buf(rt->hash_key, sizeof(rt->hash_key));
	ret = resize(rt, cap);
	if (ret < 0) {
		sp_route_destroy(rt);
		return ret;
	}
	*out = rt;
	return 0;
}

void sp_route_destroy(struct sp_route *rt)
{
	if (!rt)
		return;
	slots_free(rt->slots, rt->cap);
	/* Not a secret that outlives anything, but a leaked hash key would let
	 * a peer pick colliding keys if this memory were reused and read. */
	sodium_memzero(rt->hash_key, sizeof(rt->hash_key));
	free(rt);
}

int sp_route_insert(struct sp_route *rt, const uint8_t key[SP_KEY_LEN], uint64_t value,
		    uint64_t *old_value)
{
	uint64_t hash = hash_key(rt, key);
	size_t i = find(rt, key, hash);
	struct slot *s = &rt->slots[i];
	int ret;

	if (s->hash != 0) {
		if (old_value)
			*old_value = s->value;
		s->value = value;
		return 1;
	}
	if (rt->count + 1 > rt->grow_at) {
		if (rt->cap > ROUTE_MAX_CAP / 2)
			return -ENOMEM;
		ret = resize(rt, rt->cap * 2);
		if (ret < 0)
			return ret;
		i = find(rt, key, hash);
		s = &rt->slots[i];
	}
	memcpy(s->key, key, SP_KEY_LEN);
	s->value = value;
	s->hash = hash;
	rt->count++;
	return 0;
}

int sp_route_lookup(const struct sp_route *rt, const uint8_t key[SP_KEY_LEN], uint64_t *value)
{
	const struct slot *s = &rt->slots[find(rt, key, hash_key(rt, key))];

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
static void erase(struct sp_route *rt, size_t i)
{
	size_t j = i;

	for (;;) {
		size_t h;

		j = next(j, rt->cap);
		if (rt->slots[j].hash == 0)
			break;
		h = home(rt->slots[j].hash, rt->cap);
		if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
			continue;
		rt->slots[i] = rt->slots[j];
		i = j;
	}
	memset(&rt->slots[i], 0, sizeof(rt->slots[i]));
}

int sp_route_remove(struct sp_route *rt, const uint8_t key[SP_KEY_LEN], uint64_t expected)
{
	size_t i = find(rt, key, hash_key(rt, key));

	if (rt->slots[i].hash == 0)
		return -ENOENT;
	if (rt->slots[i].value != expected)
		return -ESTALE;
	erase(rt, i);
	rt->count--;
	return 0;
}

size_t sp_route_count(const struct sp_route *rt)
{
	return rt->count;
}
