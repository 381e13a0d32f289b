/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_mem.c: the connections' memory budget and trimming (sp_mem.h).
 */
#include "sp_mem.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "sp_conn_io.h"
#include "sp_lifecycle.h"
#include "sp_route.h"

/* The live connection holding the most (not one already ended); the
 * bytes held by those already ended, whose memory goes back once their
 * last request completes, in *ending. */
static struct sp_conn *largest(struct sp_shard *sh, uint64_t *ending)
{
	struct sp_conn *best = NULL;
	uint64_t most = 0;

	*ending = 0;
	for (uint32_t i = 0; i < sh->high_water; i++) {
		struct sp_conn *c = &sh->conns[i];
		uint64_t b;

		if (c->s.state == SP_SESSION_FREE)
			continue;
		if (c->s.state == SP_SESSION_DEAD) {
			*ending += sp_mem_conn_bytes(c);
			continue;
		}
		b = sp_mem_conn_held(c);
		if (b > most) {
			most = b;
			best = c;
		}
	}
	return best;
}

static void evict(struct sp_shard *sh, struct sp_conn *c)
{
	/* Still reading (its output within --sendq-max): told why, and its
	 * partial message dropped now (sp_session_end). Otherwise it would
	 * never read a GoAway: reset, its queue freed at once. */
	if (c->s.state == SP_SESSION_ESTABLISHED &&
	    sp_session_tx_queued(&c->s) <= sh->cfg->sendq_max) {
		sp_life_end(sh, c, SP_CLOSE_MEM_BUDGET);
		return;
	}
	sp_io_abort_on_close(c);
	sp_life_cut(sh, c, SP_CLOSE_MEM_BUDGET);
}

void sp_mem_over(struct sp_shard *sh, uint64_t used)
{
	uint64_t budget = sp_mem_budget(sh), ending, b;
	struct sp_conn *c;

	for (int n = 0; n < SP_MEM_EVICT_MAX && used > budget; n++) {
		c = largest(sh, &ending);
		/* What ended connections hold is on its way back. */
		if (!c || used - ending <= budget)
			return;
		b = sp_mem_conn_bytes(c);
		evict(sh, c);
		/* A GoAway'd one keeps its output until it drains (or the grace
		 * ends): only its reassembly buffer is back now. */
		if (c->s.state == SP_SESSION_CLOSING)
			b = b > sp_mem_conn_bytes(c) ? b - sp_mem_conn_bytes(c) : 0;
		used = b < used ? used - b : 0;
		if (!b)
			return;         /* nothing more to gain this iteration */
	}
}

/* Chunks the kernel would not lock are counted, and logged once per
 * shard (each later one has the same cause, RLIMIT_MEMLOCK; the metric
 * keeps counting). */
void sp_mem_publish(struct sp_shard *sh)
{
	struct sp_metrics_shard *m = sh->metrics;
	uint64_t in_use = (uint64_t)(sh->pool.live - sh->pool.nfree) * sizeof(struct sp_txchunk);
	uint64_t fails = sh->slab.lock_failures + sh->key_slab.lock_failures;
	uint64_t slab = sp_slab_bytes(&sh->slab) + sp_slab_bytes(&sh->key_slab);

	sp_metrics_memory_set(m, SP_METRICS_MEM_PARTIAL, sh->mem.rx_bytes);
	sp_metrics_memory_set(m, SP_METRICS_MEM_OUTPUT, in_use);
	sp_metrics_memory_set(m, SP_METRICS_MEM_RESERVE,
			      (uint64_t)sh->pool.nfree * sizeof(struct sp_txchunk));
	sp_metrics_memory_set(m, SP_METRICS_MEM_SLAB, slab);
	sp_metrics_memory_set(m, SP_METRICS_MEM_CONNS,
			      (uint64_t)sh->high_water * sizeof(struct sp_conn));
	if (sh->routes)
		sp_metrics_memory_set(m, SP_METRICS_MEM_ROUTES, sp_route_bytes(sh->routes));
	sp_metrics_memory_budget(m, sp_mem_budget(sh));
	if (fails == sh->mem.lock_failures)
		return;
	if (sh->mem.lock_failures == 0)
		SP_LOG(sh->log, SP_LOG_WARN,
		       "session secrets slab not locked in memory (RLIMIT_MEMLOCK): it may be "
		       "swapped; still out of core dumps and zeroed on free",
		       SP_KV_UINT("shard", sh->id), SP_KV_UINT("chunks", fails),
		       SP_KV_UINT("slab_bytes", slab));
	sp_metrics_slab_lock_failures(m, fails - sh->mem.lock_failures);
	sh->mem.lock_failures = fails;
}

void sp_mem_tick(struct sp_shard *sh)
{
	sp_mem_publish(sh);
	if (sh->now_ns < sh->mem.trim_ns)
		return;
	sh->mem.trim_ns = sh->now_ns + (uint64_t)SP_MEM_TRIM_INTERVAL_MS * 1000000u;
	/* At the trim interval, not every tick: a mincore walk of the pool. */
	sp_metrics_memory_set(sh->metrics, SP_METRICS_MEM_RECV_POOL, sp_bufring_resident(&sh->bufs));
	sp_txpool_trim(&sh->pool, SP_MEM_RESERVE_MIN);
#ifdef __GLIBC__
	{
		/* A burst's buffers (reassembly, chunks, handshake states) are
		 * free but the heap keeps their pages: give them back. */
		struct mallinfo2 mi = mallinfo2();

		if (mi.fordblks > SP_MEM_TRIM_FREE)
			malloc_trim(0);
	}
#endif
}
