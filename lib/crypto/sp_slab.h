/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_slab.h: fixed-size slots for secrets, in locked memory.
 *
 * What a connection's handshake and transport ciphers hold (chaining key,
 * ephemeral private key, cipher keys, an open message's keystream) must not
 * sit in ordinary heap: heap is swapped, dumped into a core, and left
 * behind in freed blocks. One sodium_malloc per secret would cost two guard
 * pages, a canary page and a memory mapping each, per connection. So slots
 * are carved out of chunks: each chunk is one sodium_malloc (guard pages
 * around the chunk, not around each slot), locked with sodium_mlock (which
 * also marks it MADV_DONTDUMP, so no core holds it), and the slab grows by
 * whole chunks as slots are needed. A slot is zeroed (sodium_memzero) when
 * it is freed, so a free slot never holds what its last owner kept; a
 * chunk whose slots are all free goes back to the system (sodium_free),
 * except one kept as a spare so that a connection count hovering at a
 * chunk boundary does not map and unmap a chunk per connection.
 *
 * A slot is preceded by an 8-byte header (its chunk's index and whether it
 * is in use; no secret) inside the chunk, so a free finds its chunk
 * without a search and a double free is caught. Slots are 8-aligned
 * (what the structs kept in them need; nothing of libsodium's that wants
 * more is kept in a slot): a 104-byte transport-keys slot is 112 bytes
 * with its header, where 16-byte alignment would make it 128.
 *
 * If the kernel refuses the lock (RLIMIT_MEMLOCK, LimitMEMLOCK= in the
 * unit), the chunk is still used: still guarded and still left out of core
 * dumps, but it may be swapped. Such chunks are counted (unlocked) for a
 * metric and a log line; they are not an error.
 *
 * Layering: crypto (libsodium); used by lib/session, so the broker and the
 * client library both keep their session secrets here.
 * Threading: a slab belongs to one thread (a shard, a client).
 * Errors: 0 or a negative errno.
 */
#ifndef SP_SLAB_H
#define SP_SLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	SP_SLAB_HDR = 8,                /* bytes before each slot (keeps slots 8-aligned) */
	SP_SLAB_ALIGN = 8,              /* slot sizes are rounded up to this */
	SP_SLAB_CHUNK_BYTES = 64 << 10, /* default chunk payload: ~140 session slots */
};

struct sp_slab_chunk;

struct sp_slab {
	size_t slot_size;               /* payload bytes per slot, a multiple of SP_SLAB_ALIGN */
	uint32_t per_chunk;             /* slots per chunk */
	uint64_t max_bytes;             /* chunks mapped at most (sp_slab_bytes); 0 = no limit */
	struct sp_slab_chunk **chunks;  /* by index; NULL = a hole left by a freed chunk */
	uint32_t nchunks;               /* entries of chunks in use (holes included) */
	uint32_t chunks_cap;
	struct sp_slab_chunk *partial;  /* chunks with a free slot (doubly linked) */
	uint32_t live;                  /* chunks mapped */
	uint32_t empty;                 /* of those, with every slot free */
	uint32_t unlocked;              /* of those, whose sodium_mlock failed */
	uint64_t lock_failures;         /* chunks ever mapped unlocked (only grows: a metric) */
	uint64_t used;                  /* slots in use */
	uint64_t bytes;                 /* bytes mapped by the chunks, guard pages included */
};

/*
 * Slots of slot_size bytes (header included) that fit chunk_bytes of page
 * payload with sodium_malloc's 16-byte canary, so that no page is mapped
 * for a canary alone (a chunk of exactly 64 KiB of slots maps a 17th
 * page). At least 1.
 */
uint32_t sp_slab_fit(size_t slot_size, size_t chunk_bytes);

/*
 * slot_size: payload bytes of a slot (rounded up to SP_SLAB_ALIGN). per_chunk: slots
 * per chunk, 0 = sp_slab_fit(slot_size, SP_SLAB_CHUNK_BYTES). max_bytes: the
 * mapped bytes (sp_slab_bytes) the slab may grow to, 0 = no limit. Maps
 * nothing until the first alloc. -EINVAL for a zero or huge slot size.
 */
int sp_slab_init(struct sp_slab *sl, size_t slot_size, uint32_t per_chunk, uint64_t max_bytes);

/* A zeroed slot of slot_size bytes, owned by the caller until sp_slab_free;
 * NULL when the slab may not grow (max_bytes) or sodium_malloc fails. */
void *sp_slab_alloc(struct sp_slab *sl);

/* Zeroes the slot and returns it to its chunk (p: from sp_slab_alloc of sl,
 * not used afterwards). NULL is a no-op. -EINVAL, and nothing freed, for a
 * pointer that is not a live slot of sl (a double free). */
int sp_slab_free(struct sp_slab *sl, void *p);

/* sp_slab_free for a slot whose owner has just zeroed all of it (what it
 * wrote, the rest still zero from the alloc): the same checks, without a
 * second wipe. For a slot freed once per transport message (the outbound
 * stream, whose end wipes it). Debug builds check that it is zero. */
int sp_slab_free_wiped(struct sp_slab *sl, void *p);

/* Whether p is a slot of sl in use (what sp_slab_free would accept): for
 * tests and assertions; it reads the 16 bytes before p. */
bool sp_slab_holds(const struct sp_slab *sl, const void *p);

/* Frees every chunk (zeroed by sodium_free), live slots included. */
void sp_slab_destroy(struct sp_slab *sl);

/* Bytes mapped for the slab: each chunk's page-rounded payload plus the
 * three pages sodium_malloc adds (two guard pages, one canary page). */
static inline uint64_t sp_slab_bytes(const struct sp_slab *sl)
{
	return sl->bytes;
}

#endif
