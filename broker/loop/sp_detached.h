/*
 * sp_detached.h: for benchmarks and tests only, not for the daemon.
 *
 * A shard driven without io_uring on its per-envelope path, so that a
 * benchmark runs the exact routing code sealpostd runs for an envelope
 * (on_frame, on_send, deliver_*, the SendResults after the commit, the
 * end-of-iteration seal) instead of a copy of it. The caller plays the
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

/* One receive completion of len bytes on c (data: borrowed for the call,
 * decrypted in place). Returns what sp_session_rx returned. */
enum sp_close_reason sp_shard_feed(struct sp_shard *sh, struct sp_conn *c, uint8_t *data,
				   size_t len);

/* Called once per connection whose outbound message was finished; it takes
 * the bytes (c: borrowed for the call). */
typedef void (*sp_shard_take_fn)(void *ctx, struct sp_conn *c);

/*
 * The rest of the iteration after ncqe completions: commit, SendResults,
 * backlog readers, the seal of every touched connection (take called for
 * each), the loop metrics. -EIO if a connection would have been ended
 * (close reason, seal failure, over the hard send-queue limit).
 */
int sp_shard_end_iteration(struct sp_shard *sh, uint64_t ncqe, sp_shard_take_fn take, void *ctx);

#endif
