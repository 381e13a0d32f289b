/*
 * sp_shard.h: one shard: its ring, receive buffers, connection table, routing
 * table and event loop. The app layer: it routes frames between connections
 * (and, later, to and from mailboxes).
 *
 * One shard runs on one thread and shares nothing with other shards except
 * the listening socket (each shard has its own multishot accept on it) and
 * the read-only configuration and log. Several shards with cross-shard
 * hand-off fit this shape: a route handle names the shard, so a Send whose
 * recipient lives elsewhere can be queued to that shard and the shard woken
 * with IORING_OP_MSG_RING (not implemented in this step: one shard).
 *
 * Errors: 0 or a negative errno.
 */
#ifndef SP_SHARD_H
#define SP_SHARD_H

#include <stdbool.h>
#include <stdint.h>

#include "sp_config.h"
#include "sp_conn.h"
#include "sp_log.h"
#include "sp_metrics.h"
#include "sp_ring.h"

struct sp_route;
struct sp_store;
struct sp_store_batch;
struct sp_store_item;

/*
 * Route handle: the value stored in the routing table for a live device.
 *   bits 63..56 shard id, 55..32 connection slot, 31..0 generation.
 * The generation makes a handle of a closed connection harmless: it never
 * matches the slot's next occupant.
 */
static inline uint64_t sp_handle_pack(uint8_t shard, uint32_t slot, uint32_t gen)
{
	return ((uint64_t)shard << 56) | ((uint64_t)(slot & SP_UD_SLOT_MAX) << 32) | gen;
}

static inline uint8_t sp_handle_shard(uint64_t h)
{
	return (uint8_t)(h >> 56);
}

static inline uint32_t sp_handle_slot(uint64_t h)
{
	return (uint32_t)(h >> 32) & SP_UD_SLOT_MAX;
}

static inline uint32_t sp_handle_gen(uint64_t h)
{
	return (uint32_t)h;
}

/* Counters (read after sp_shard_run returns, or by a future metrics hook). */
struct sp_shard_stats {
	uint64_t accepted;
	uint64_t refused_max_conns;
	uint64_t refused_rate;
	uint64_t handshakes;
	uint64_t closed[SP_CLOSE_REASON_COUNT];
	uint64_t sends;
	uint64_t delivered;             /* live deliveries (online-only and durable) */
	/* mailboxes */
	uint64_t accepted_env;          /* SendResult ACCEPTED (duplicates included) */
	uint64_t duplicates;            /* of those, retries answered with the original seq */
	uint64_t mailbox_full;
	uint64_t store_errors;          /* envelopes answered ERR_INTERNAL for the store */
	uint64_t commits, commit_failures;
	uint64_t backlog_delivered;     /* Deliver frames read from the store */
	uint64_t acks, acks_unknown;
	uint64_t expired;
	uint64_t corrupt_skipped;       /* corrupt stored values skipped by the reader */
};

/* A SendResult waiting for the iteration's commit (see sp_shard.c). */
struct sp_pending_result {
	uint32_t slot, gen;             /* the sender's connection */
	uint64_t client_id;
	uint64_t seq;
	uint8_t status;                 /* enum sp_status */
	bool durable;                   /* ERR_INTERNAL instead if the commit fails */
};

/* Log-limiter slots beyond the close reasons. */
/* Rate limiters beyond one per close reason: accept-time refusals, storage
 * errors, and the debug lines any peer can trigger (accepted, handshake
 * complete, unknown acks), which must stay bounded even at debug level. */
enum { SP_LIM_REFUSED = SP_CLOSE_REASON_COUNT, SP_LIM_STORE, SP_LIM_PEER_DEBUG, SP_LIM_COUNT };

struct sp_shard {
	uint8_t id;
	const struct sp_config *cfg;
	const struct sp_log *log;
	struct sp_ring ring;
	struct sp_bufring bufs;
	struct sp_txpool pool;
	struct sp_route *routes;
	struct sp_session_env env;

	struct sp_conn *conns;          /* cfg->max_conns slots (calloc: untouched cost nothing) */
	uint32_t *free_slots;           /* stack of free slot numbers */
	uint32_t nfree;
	uint32_t nconns;                /* slots not free (incl. dead, awaiting completions) */
	uint32_t high_water;            /* slots ever used: bound for full scans */

	int listen_fd;
	int wake_fd;                    /* readable = stop (signalfd or eventfd) */
	uint8_t wake_buf[128];          /* fits a signalfd_siginfo */
	bool accept_armed;
	bool wake_armed;
	struct __kernel_timespec tick;

	/* Deadline-ordered lists (each timeout is a constant, so appending
	 * keeps them sorted and expiry is O(expired)). */
	struct sp_list hs_list;         /* preamble/handshake: accept + handshake_timeout */
	struct sp_list idle_list;       /* established: last receive + idle_timeout */
	struct sp_list closing_list;    /* GoAway sent: + close_grace */

	struct sp_conn *dirty;          /* connections to flush at the end of the iteration */
	uint64_t now_ns;                /* CLOCK_MONOTONIC, once per iteration */
	uint64_t hs_tokens_milli;       /* handshake-rate token bucket */
	uint64_t hs_refill_ns;

	/* Mailboxes. store: borrowed for the shard's life (set before
	 * sp_shard_run; NULL = no mailboxes: durable sends get ERR_INTERNAL). */
	struct sp_store *store;
	struct sp_store_batch *batch;   /* the iteration's batch, begun on first write */
	uint64_t wall_ms;               /* CLOCK_REALTIME ms of the iteration (stored times) */
	int64_t it_entries, it_bytes;   /* mailbox growth in the open batch (metrics at commit) */
	uint64_t rm_entries0, rm_bytes0; /* the store's removed totals when the batch began */
	struct sp_pending_result *results; /* this iteration's SendResults, in arrival order */
	size_t nresults, results_cap;
	struct sp_list drain_list;      /* connections whose backlog reader runs */
	struct sp_store_item *items;    /* reader chunk */
	bool sweep_more;                /* the expiry sweep stopped at its bound: go on */

	bool stopping;
	uint64_t stop_deadline_ns;
	struct sp_log_limit lim[SP_LIM_COUNT];
	struct sp_shard_stats stats;

	/* This shard's metrics slot, never NULL: init points it at a private
	 * slot; the daemon repoints it (sp_metrics_shard(m, id)) before run. */
	struct sp_metrics_shard *metrics;
	struct sp_metrics_shard *own_metrics;
	uint64_t live_delivered;        /* live deliveries this iteration, timed at flush */
};

/*
 * Sets up the ring, buffer ring, connection table and routing table.
 * cfg, log: borrowed for the shard's life. static_priv: the broker's private
 * key, borrowed for the shard's life (sodium_malloc'd by the caller).
 * listen_fd: a listening socket, borrowed. wake_fd: readable when the shard
 * must stop (a signalfd or an eventfd), borrowed. Call on the shard's thread.
 */
int sp_shard_init(struct sp_shard *sh, uint8_t id, const struct sp_config *cfg,
		  const struct sp_log *log, const uint8_t *static_priv, int listen_fd, int wake_fd);

/*
 * Runs the event loop until wake_fd becomes readable and every connection
 * has been drained (GoAway SHUTDOWN, output flushed within close_grace) and
 * closed. Returns 0, or a negative errno if the ring failed.
 */
int sp_shard_run(struct sp_shard *sh);

/* Frees everything (after sp_shard_run returned). The store is not closed. */
void sp_shard_destroy(struct sp_shard *sh);

/*
 * Opens the mailbox store under DATA_DIR/mailbox with cfg's --fsync,
 * quotas, --ttl and --dedup-window. On failure logs one error line saying
 * why (not writable, locked by another sealpostd, ...) and returns a
 * negative errno. Close with sp_store_close after the shards are destroyed.
 */
int sp_shard_store_open(const struct sp_config *cfg, const struct sp_log *log,
			struct sp_store **out);

#endif
