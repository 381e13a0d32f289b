/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_detached.h: for benchmarks and tests only, not for the daemon.
 *
 * A shard driven without io_uring on its per-envelope path, so that a
 * benchmark or a test runs the exact code sealpostd runs for an envelope
 * (app/: sp_router.c, sp_deliver.c, sp_mailbox.c with the SendResults after
 * the commit; loop/: the lifecycle's end-of-iteration seal) instead of a
 * copy of it. Built as the library sp_detached (loop/sp_detached.c), linked
 * by tests and benchmarks, never by sealpostd. The caller plays the
 * ring: it feeds received bytes, ends the iteration, and takes each
 * finished connection's bytes itself (sp_session_tx_peek / sp_session_tx_sent on c->s).
 * One thread, as for a normal shard. Free with sp_shard_destroy.
 *
 * Errors: 0 or a negative errno.
 */
#ifndef SP_DETACHED_H
#define SP_DETACHED_H

#include <stddef.h>
#include <stdint.h>

#include "sp_shard.h"

/*
 * sp_shard_init without the ring, the buffer ring and the sockets: the
 * connection table, routing table, tx pool, metrics slot, limiters and
 * sh->env with the shard's real hooks. cfg, log, static_priv: borrowed for
 * the shard's life (as sp_shard_init).
 */
int sp_shard_init_detached(struct sp_shard *sh, uint8_t id, const struct sp_config *cfg,
			   const struct sp_log *log, const uint8_t *static_priv);

/* A connection in the lowest free slot, as accept opens one (no socket:
 * fd -1, on the handshake deadline). NULL if the table is full. */
struct sp_conn *sp_shard_conn_add(struct sp_shard *sh);

/* What a proven connection goes through (idle timer, route, backlog
 * reader): for a connection whose handshake the caller set up itself. */
enum sp_close_reason sp_shard_conn_route(struct sp_shard *sh, struct sp_conn *c);

/* The loop's clock reads at the start of an iteration. */
void sp_shard_begin_iteration(struct sp_shard *sh);

/* The same with the clock given (CLOCK_MONOTONIC ns, CLOCK_REALTIME ms), so
 * that a test can step time: deadlines, envelope expiry. */
void sp_shard_begin_iteration_at(struct sp_shard *sh, uint64_t now_ns, uint64_t wall_ms);

/* A timer tick's work without re-arming the ring's timer: mailbox
 * housekeeping (the expiry sweep into the iteration's batch) and the
 * handshake, idle and closing deadlines. Call between begin and end. */
void sp_shard_tick(struct sp_shard *sh);

/* The peer closed c (a receive of 0 bytes): c ends without a reply and its
 * slot is freed at the end of the iteration. */
void sp_shard_conn_eof(struct sp_shard *sh, struct sp_conn *c);

/* One receive completion of len bytes on c (data: borrowed for the call,
 * decrypted in place). Returns what sp_session_rx returned; a close reason
 * ends c as the loop ends it (sp_life_rx_failed). */
enum sp_close_reason sp_shard_feed(struct sp_shard *sh, struct sp_conn *c, uint8_t *data,
				   size_t len);

/* Called once per connection whose outbound message was finished; it takes
 * the bytes (c: borrowed for the call). */
typedef void (*sp_shard_take_fn)(void *ctx, struct sp_conn *c);

/*
 * The rest of the iteration after ncqe completions: commit, SendResults,
 * backlog readers, the seal of every touched connection (take called for
 * each), the loop metrics. A connection that ends (close reason, seal
 * failure, over the hard send-queue limit) is ended as the loop ends it:
 * take gets its last output (the GoAway, if it has one) and a dead slot is
 * freed; then the result is -EIO (the metrics slot's connections_closed[] says why).
 */
int sp_shard_end_iteration(struct sp_shard *sh, uint64_t ncqe, sp_shard_take_fn take, void *ctx);

#endif
