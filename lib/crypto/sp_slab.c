/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_slab.c: locked slots for secrets (sp_slab.h).
 */
#include "sp_slab.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

/* Header word of a slot in use; a free slot's header says FREE. Not a
 * secret: only a guard against freeing what is not a live slot. */
enum { SLOT_LIVE = 0x51ab11fe, SLOT_FREE = 0 };

struct slot_hdr {
	uint32_t chunk;
	uint32_t state;
};
_Static_assert(sizeof(struct slot_hdr) <= SP_SLAB_HDR, "slot header size");
_Static_assert(SP_SLAB_HDR % SP_SLAB_ALIGN == 0, "slots stay aligned after the header");

struct sp_slab_chunk {
	uint8_t *mem;                   /* sodium_malloc'd: per_chunk strides */
	uint32_t index;                 /* in sl->chunks */
	uint32_t nfree;
	bool locked;
	struct sp_slab_chunk *prev, *next; /* in sl->partial while nfree > 0 */
	uint32_t free[];                /* a stack of free slot numbers, nfree deep */
};

static size_t stride(const struct sp_slab *sl)
{
	return SP_SLAB_HDR + sl->slot_size;
}

/* What sodium_malloc maps for n bytes (libsodium's layout: the size and
 * canary page, a guard page each side, the page-rounded payload with its
 * 16-byte canary). */
static uint64_t mapped_bytes(size_t n)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint64_t page = pg > 0 ? (uint64_t)pg : 4096;
	uint64_t payload = ((uint64_t)n + 16 + page - 1) / page * page;

	return payload + 3 * page;
}

static size_t round_slot(size_t n)
{
	return (n + SP_SLAB_ALIGN - 1) & ~(size_t)(SP_SLAB_ALIGN - 1);
}

uint32_t sp_slab_fit(size_t slot_size, size_t chunk_bytes)
{
	size_t st = SP_SLAB_HDR + round_slot(slot_size);
	size_t n = chunk_bytes > 16 ? (chunk_bytes - 16) / st : 0;

	if (n > UINT32_MAX)
		n = UINT32_MAX;
	return n ? (uint32_t)n : 1;
}

int sp_slab_init(struct sp_slab *sl, size_t slot_size, uint32_t per_chunk, uint64_t max_bytes)
{
	if (!sl || slot_size == 0 || slot_size > SP_SLAB_CHUNK_BYTES)
		return -EINVAL;
	memset(sl, 0, sizeof(*sl));
	sl->slot_size = round_slot(slot_size);
	sl->per_chunk = per_chunk ? per_chunk : sp_slab_fit(slot_size, SP_SLAB_CHUNK_BYTES);
	sl->max_bytes = max_bytes;
	return 0;
}

static void partial_push(struct sp_slab *sl, struct sp_slab_chunk *c)
{
	c->prev = NULL;
	c->next = sl->partial;
	if (sl->partial)
		sl->partial->prev = c;
	sl->partial = c;
}

static void partial_unlink(struct sp_slab *sl, struct sp_slab_chunk *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		sl->partial = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* A table entry for a new chunk: a hole if there is one, else the end. */
static int chunk_index(struct sp_slab *sl, uint32_t *out)
{
	struct sp_slab_chunk **t;
	uint32_t cap;

	for (uint32_t i = 0; i < sl->nchunks; i++) {
		if (!sl->chunks[i]) {
			*out = i;
			return 0;
		}
	}
	if (sl->nchunks == sl->chunks_cap) {
		cap = sl->chunks_cap ? 2 * sl->chunks_cap : 8;
		t = realloc(sl->chunks, (size_t)cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		sl->chunks = t;
		sl->chunks_cap = cap;
	}
	*out = sl->nchunks++;
	return 0;
}

static int grow(struct sp_slab *sl)
{
	size_t len = (size_t)sl->per_chunk * stride(sl);
	uint64_t mapped = mapped_bytes(len);
	struct sp_slab_chunk *c;
	uint32_t idx;

	if (sl->max_bytes && sl->bytes + mapped > sl->max_bytes)
		return -ENOMEM;
	if (chunk_index(sl, &idx))
		return -ENOMEM;
	c = calloc(1, sizeof(*c) + (size_t)sl->per_chunk * sizeof(c->free[0]));
	if (!c)
		return -ENOMEM;
	c->mem = sodium_malloc(len);
	if (!c->mem) {
		free(c);
		return -ENOMEM;
	}
	/* sodium_malloc fills with a garbage byte: slots start zeroed. It has
	 * already tried to lock the pages but does not say whether it could:
	 * locking again tells (a no-op for pages already locked), and also
	 * marks them MADV_DONTDUMP. */
	memset(c->mem, 0, len);
	c->locked = sodium_mlock(c->mem, len) == 0;
	if (!c->locked) {
		sl->unlocked++;
		sl->lock_failures++;
	}
	c->index = idx;
	/* Popped from the top: slot 0 first, so a small slab stays compact. */
	for (uint32_t i = 0; i < sl->per_chunk; i++)
		c->free[i] = sl->per_chunk - 1 - i;
	c->nfree = sl->per_chunk;
	sl->chunks[idx] = c;
	sl->live++;
	sl->empty++;
	sl->bytes += mapped;
	partial_push(sl, c);
	return 0;
}

void *sp_slab_alloc(struct sp_slab *sl)
{
	struct sp_slab_chunk *c;
	struct slot_hdr *h;
	uint8_t *slot;

	if (!sl->partial && grow(sl))
		return NULL;
	c = sl->partial;
	if (c->nfree == sl->per_chunk)
		sl->empty--;
	slot = c->mem + (size_t)c->free[--c->nfree] * stride(sl);
	if (c->nfree == 0)
		partial_unlink(sl, c);
	h = (struct slot_hdr *)slot;
	h->chunk = c->index;
	h->state = SLOT_LIVE;
	sl->used++;
	return slot + SP_SLAB_HDR;
}

static void chunk_release(struct sp_slab *sl, struct sp_slab_chunk *c)
{
	size_t len = (size_t)sl->per_chunk * stride(sl);

	if (c->nfree)
		partial_unlink(sl, c);
	if (!c->locked)
		sl->unlocked--;
	if (c->nfree == sl->per_chunk)
		sl->empty--;
	sl->chunks[c->index] = NULL;
	sl->live--;
	sl->bytes -= mapped_bytes(len);
	sodium_free(c->mem);            /* zeroes and unlocks it */
	free(c);
}

/* p's chunk if p is a live slot of sl (*off: its header's offset), else NULL. */
static struct sp_slab_chunk *live_chunk(const struct sp_slab *sl, const void *p, size_t *off)
{
	const struct slot_hdr *h = (const struct slot_hdr *)((const uint8_t *)p - SP_SLAB_HDR);
	struct sp_slab_chunk *c;

	if (h->state != SLOT_LIVE || h->chunk >= sl->nchunks || !(c = sl->chunks[h->chunk]))
		return NULL;
	if ((const uint8_t *)h < c->mem)
		return NULL;
	*off = (size_t)((const uint8_t *)h - c->mem);
	if (*off % stride(sl) || *off / stride(sl) >= sl->per_chunk)
		return NULL;
	return c;
}

bool sp_slab_holds(const struct sp_slab *sl, const void *p)
{
	size_t off;

	return sl && p && live_chunk(sl, p, &off) != NULL;
}

static int slot_free(struct sp_slab *sl, void *p, bool wipe)
{
	struct sp_slab_chunk *c;
	struct slot_hdr *h;
	size_t off;

	if (!p)
		return 0;
	c = live_chunk(sl, p, &off);
	if (!c)
		return -EINVAL;
	h = (struct slot_hdr *)((uint8_t *)p - SP_SLAB_HDR);
	if (wipe)
		sodium_memzero(p, sl->slot_size);
	assert(wipe || sodium_is_zero(p, sl->slot_size));
	h->state = SLOT_FREE;
	if (c->nfree == 0)
		partial_push(sl, c);
	c->free[c->nfree++] = (uint32_t)(off / stride(sl));
	sl->used--;
	if (c->nfree == sl->per_chunk) {
		sl->empty++;
		/* One empty chunk is kept as the spare; a second goes back. */
		if (sl->empty > 1)
			chunk_release(sl, c);
	}
	return 0;
}

int sp_slab_free(struct sp_slab *sl, void *p)
{
	return slot_free(sl, p, true);
}

int sp_slab_free_wiped(struct sp_slab *sl, void *p)
{
	return slot_free(sl, p, false);
}

void sp_slab_destroy(struct sp_slab *sl)
{
	if (!sl)
		return;
	for (uint32_t i = 0; i < sl->nchunks; i++)
		if (sl->chunks[i])
			chunk_release(sl, sl->chunks[i]);
	free(sl->chunks);
	memset(sl, 0, sizeof(*sl));
}
