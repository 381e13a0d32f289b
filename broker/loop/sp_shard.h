/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_shard.h: one shard: its ring, receive buffers, connection table,
 * routing table, mailbox coordination and event loop. The loop is on top:
 * loop/ below it holds the connection table, I/O, timers, lifecycle and
 * accept; app/ the routing, delivery and mailboxes.
 *
 * One shard runs on one thread and shares nothing with other shards except
 * the listening socket (each shard has its own multishot accept on it) and
 * the read-only configuration and log. Several shards with cross-shard
 * hand-off fit this shape: a route handle names the shard, so a Send whose
 * recipient lives elsewhere can be queued to that shard and the shard woken
 * with IORING_OP_MSG_RING (not implemented: one shard).
 *
 * Errors: 0 or a negative errno.
 */
#ifndef SP_SHARD_H
#define SP_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_conn_table.h"
#include "sp_route.h"
#include "sp_shard_types.h"
#include "sp_timers.h"

/*
 * Route handles (sp_handle_*) are in sp_conn_table.h; struct sp_shard and
 * who writes which part of it in sp_shard_types.h.
 */

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
 * One of nshards shards: its (still empty) routing table is made again for
 * its share of max-conns instead of all of it (sp_shard_init sizes for
 * all), so that N shards do not hold N full-size tables. Before the loop
 * runs. 0 or -ENOMEM (the old table kept).
 */
int sp_shard_size_routes(struct sp_shard *sh, unsigned nshards);

/*
 * Runs the event loop until wake_fd becomes readable and every connection
 * has been drained (GoAway SHUTDOWN, output flushed within close_grace) and
 * closed. Returns 0, or a negative errno if the ring failed.
 */
int sp_shard_run(struct sp_shard *sh);

/* Frees everything (after sp_shard_run returned). The store is not closed. */
void sp_shard_destroy(struct sp_shard *sh);

/*
 * Everything of sp_shard_init but the ring, the buffer ring and the sockets
 * (sh zeroed by the caller; sp_detached.c builds on it). On failure the
 * caller calls sp_shard_destroy.
 */
int sp_shard_setup(struct sp_shard *sh, uint8_t id, const struct sp_config *cfg,
		   const struct sp_log *log, const uint8_t *static_priv);

/* One receive of len bytes on c (data: borrowed for the call, decrypted in
 * place): the session, the idle deadline (whole messages only), the mark. Inline, as the end of
 * an iteration below: once per receive or iteration, on every envelope's
 * path (callgrind, docs/BENCHMARKS.md). */
static inline enum sp_close_reason sp_shard_rx(struct sp_shard *sh, struct sp_conn *c,
					       uint8_t *data, size_t len)
{
	uint32_t msgs = c->s.rx_msgs;
	enum sp_close_reason r;

	r = sp_session_rx(&c->s, data, len);
	/* Only a whole transport message pushes the idle deadline back: a
	 * peer trickling the bytes of one it never finishes is idle. */
	if (c->s.rx_msgs != msgs)
		sp_timers_rx_message(sh, c);
	if (sp_timers_awaiting_hello(c) && sp_session_first_in(&c->s))
		sp_timers_first_message(sh, c);
	sp_conn_mark(sh, c);
	return r;
}

/* The loop's steps after an iteration's completions: the commit, the
 * SendResults and the backlog readers. */
void sp_shard_after_completions(struct sp_shard *sh);

/* The end of an iteration: n completions handled. */
static inline void sp_shard_iteration_metrics(struct sp_shard *sh, uint64_t n)
{
	sp_metrics_loop_iteration(sh->metrics, n);
	sp_metrics_devices_routed(sh->metrics, sp_route_count(sh->routes));
	if (sh->live_delivered) {
		/* Received at now_ns, encrypted and queued to the kernel by now. */
		sp_metrics_envelopes_delivered(sh->metrics, SP_METRICS_PATH_LIVE,
					       sh->live_delivered, sp_shard_mono_ns() - sh->now_ns);
		sh->live_delivered = 0;
	}
	if (sh->store_ns) {
		sp_metrics_store_call(sh->metrics, SP_METRICS_STORE_ITERATION, sh->store_ns);
		sh->store_ns = 0;
	}
}

/* A tick's work on the shard's own state (no ring calls): mailbox
 * housekeeping and the deadlines. */
void sp_shard_tick_work(struct sp_shard *sh);

/* The reloadable limits of sh->cfg changed (admin reload): what was copied
 * from them at setup follows (the ServerHello's max_envelope, the log
 * limiters). */
void sp_shard_limits_changed(struct sp_shard *sh);

/*
 * Opens the mailbox store under DATA_DIR/mailbox with cfg's --fsync,
 * quotas, --ttl and --dedup-window. On failure logs one error line saying
 * why (not writable, locked by another sealpostd, ...) and returns a
 * negative errno. Close with sp_store_close after the shards are destroyed.
 */
int sp_shard_store_open(const struct sp_config *cfg, const struct sp_log *log,
			struct sp_store **out);

#endif
