/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_conn_table.h: a shard's connection slots: allocation lowest-first, the
 * generation that makes a stale completion or route handle harmless, the
 * route handle that names a connection, and the dirty list of connections
 * to flush at the end of the iteration.
 *
 * Writes: sh->conns, free_slots, nfree, nslots, nconns, high_water, dirty; of a
 * connection: its table group c->tab (slot at open, gen at release, dirty,
 * dirty_next).
 * Errors: 0 or a negative errno.
 */
#ifndef SP_CONN_TABLE_H
#define SP_CONN_TABLE_H

#include <stdint.h>

#include "sp_config.h"
#include "sp_shard_types.h"

/*
 * Route handle: the value stored in the routing table for a live device.
 *   bits 63..56 shard id, 55..32 connection slot, 31..0 generation.
 * The generation makes a handle of a closed connection harmless: it never
 * matches the slot's next occupant. Its own layout, apart from the ring's
 * user_data: both must hold every slot below SP_CONFIG_MAX_CONNS_MAX.
 */
enum {
	SP_HANDLE_SLOT_BITS = 24,
	SP_HANDLE_SLOT_MAX = (1 << SP_HANDLE_SLOT_BITS) - 1,
	/* Slots beyond max_conns for eviction: at most this many evicted
	 * connections can be awaiting their completions at once. */
	SP_CONN_TABLE_RESERVE = 64,
};
_Static_assert(SP_CONFIG_MAX_CONNS_MAX + SP_CONN_TABLE_RESERVE - 1 <= SP_HANDLE_SLOT_MAX,
	       "handle slot too narrow");
_Static_assert(SP_CONFIG_MAX_CONNS_MAX + SP_CONN_TABLE_RESERVE - 1 <= SP_UD_SLOT_MAX,
	       "user_data slot too narrow");

static inline uint64_t sp_handle_pack(uint8_t shard, uint32_t slot, uint32_t gen)
{
	return ((uint64_t)shard << 56) | ((uint64_t)(slot & SP_HANDLE_SLOT_MAX) << 32) | gen;
}

static inline uint8_t sp_handle_shard(uint64_t h)
{
	return (uint8_t)(h >> 56);
}

static inline uint32_t sp_handle_slot(uint64_t h)
{
	return (uint32_t)(h >> 32) & SP_HANDLE_SLOT_MAX;
}

static inline uint32_t sp_handle_gen(uint64_t h)
{
	return (uint32_t)h;
}

/* Allocates cfg->max_conns + SP_CONN_TABLE_RESERVE slots, all free. On failure the caller destroys. */
int sp_conn_table_init(struct sp_shard *sh);

/* Wipes and releases every connection still in the table, closes its
 * socket and frees the table (after the ring is gone). */
void sp_conn_table_destroy(struct sp_shard *sh);

/* The lowest free slot, its session in SP_SESSION_PREAMBLE (the table
 * group and the session only: sp_life_open sets up the rest); NULL if the
 * table is full. */
struct sp_conn *sp_conn_table_open(struct sp_shard *sh);

/* Frees c's slot (no request of it in flight, socket closed): every
 * completion or handle naming the old connection is stale from now on. */
void sp_conn_table_release(struct sp_shard *sh, struct sp_conn *c);

/*
 * The lookups and the mark below run several times per envelope (the
 * recipient, the sender's SendResult, both marks), so they are inline here
 * rather than calls into sp_conn_table.c: measured with callgrind on the
 * hot-path benchmark (docs/BENCHMARKS.md). They are still the table's code.
 */

/* The route handle of c. */
static inline uint64_t sp_conn_handle(const struct sp_shard *sh, const struct sp_conn *c)
{
	return sp_handle_pack(sh->id, c->tab.slot, c->tab.gen);
}

/* The live connection a completion or handle refers to, or NULL if stale. */
static inline struct sp_conn *sp_conn_at(struct sp_shard *sh, uint32_t slot, uint32_t gen)
{
	struct sp_conn *c;

	if (slot >= sh->nslots)
		return NULL;
	c = &sh->conns[slot];
	if (c->s.state == SP_SESSION_FREE || c->tab.gen != gen)
		return NULL;
	return c;
}

/* The connection h names on this shard, or NULL (stale, or another shard's). */
static inline struct sp_conn *sp_conn_at_handle(struct sp_shard *sh, uint64_t h)
{
	/* Other shards' connections: cross-shard hand-off goes here. */
	if (sp_handle_shard(h) != sh->id)
		return NULL;
	return sp_conn_at(sh, sp_handle_slot(h), sp_handle_gen(h));
}

/* Puts c on the flush list of this iteration (once). */
static inline void sp_conn_mark(struct sp_shard *sh, struct sp_conn *c)
{
	if (c->tab.dirty)
		return;
	c->tab.dirty = true;
	c->tab.dirty_next = sh->dirty ? sh->dirty->tab.slot + 1 : 0;
	sh->dirty = c;
}

/* Takes the next connection off the flush list, or NULL when it is empty. */
struct sp_conn *sp_conn_table_next_dirty(struct sp_shard *sh);

#endif
