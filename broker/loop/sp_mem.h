/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_mem.h: the memory budget of a shard's connections (--mem-budget) and
 * giving memory back after a burst.
 *
 * What a peer can make the broker hold beyond its connection slot is its
 * open fan-out group (app/sp_fanout.c refuses a copy that would pass the
 * budget, and the group's own --fanout-max-bytes), its
 * reassembly buffer (a transport message straddling receive buffers, grown
 * as its bytes arrive: lib/session) and its outbound chunks (sp_txq.h).
 * Each is bounded per connection (one message of at most 64 KiB, or one
 * handshake message while unproven; --sendq-max twice over), and this
 * bounds their sum: when it passes --mem-budget at the end of an
 * iteration, the connections holding the most (reassembly buffer plus
 * unsent output) are closed until it is back under, reason mem_budget. Evicting the largest, rather than refusing the
 * connection that asked last, means a budget filled by a few hostile
 * connections costs them their connections, not an honest newcomer its
 * message. One that still reads gets GoAway SLOW_CONSUMER (its partial
 * message is dropped at once); one whose output is above --sendq-max is not
 * reading and is reset.
 *
 * After a burst, the tx chunk reserve is trimmed to what was used in the
 * last second, and malloc_trim gives the freed heap back to the system
 * when enough of it is free (RSS goes back down).
 *
 * Writes: sh->mem (rx_bytes is updated by the sessions through
 * sh->env.rx_bytes), the pool's reserve (sp_txpool_trim).
 * Threading: the shard's thread.
 */
#ifndef SP_MEM_H
#define SP_MEM_H

#include <stdint.h>

#include "sp_shard_types.h"

enum {
	SP_MEM_TRIM_INTERVAL_MS = 1000, /* reserve trim and malloc_trim check */
	SP_MEM_RESERVE_MIN = 16,        /* tx chunks always kept in the reserve (~1 MiB) */
	SP_MEM_EVICT_MAX = 64,          /* evictions per end of iteration, at most */
};

/* The heap free bytes above which malloc_trim runs at a check. */
#define SP_MEM_TRIM_FREE ((uint64_t)4 << 20)

/* Bytes c holds: its reassembly buffer and its outbound chunks. */
static inline uint64_t sp_mem_conn_bytes(const struct sp_conn *c)
{
	return sp_session_rx_held(&c->s) + (uint64_t)c->s.q.chunks * sizeof(struct sp_txchunk);
}

/* What c holds for the eviction order: its reassembly buffer and its
 * output not yet sent (a chunk holding a few bytes of a reply in flight
 * is the pool's granularity, not what the peer made us keep). */
static inline uint64_t sp_mem_conn_held(const struct sp_conn *c)
{
	return sp_session_rx_held(&c->s) + sp_session_tx_queued(&c->s);
}

/* Bytes all connections of sh hold (the budget's measure). */
static inline uint64_t sp_mem_used(const struct sp_shard *sh)
{
	return sh->mem.rx_bytes + sh->mem.fanout_bytes +
	       (sh->pool.live - sh->pool.nfree) * sizeof(struct sp_txchunk);
}

/* This shard's part of --mem-budget: the process's budget split evenly
 * between the shards (each holds its own connections' buffers). */
static inline uint64_t sp_mem_budget(const struct sp_shard *sh)
{
	return sh->node ? sh->cfg->mem_budget / sh->node->n : sh->cfg->mem_budget;
}

/* Closes the connections holding the most until sh is back under its
 * budget (the slow part of sp_mem_check). */
void sp_mem_over(struct sp_shard *sh, uint64_t used);

/* Once per iteration, before the flush: cheap unless over the budget. */
static inline void sp_mem_check(struct sp_shard *sh)
{
	uint64_t used = sp_mem_used(sh);

	if (used > sp_mem_budget(sh))
		sp_mem_over(sh, used);
}

/* Sets the shard's sealpost_memory_bytes gauges and its budget, and
 * counts (and logs, once) slab chunks the kernel would not lock. From
 * sp_mem_tick, and at the start of the run (the first tick is 100 ms away). */
void sp_mem_publish(struct sp_shard *sh);

/* From the tick: sp_mem_publish; at most once per SP_MEM_TRIM_INTERVAL_MS, trims the tx
 * chunk reserve and, with enough heap free, calls malloc_trim. */
void sp_mem_tick(struct sp_shard *sh);

#endif
