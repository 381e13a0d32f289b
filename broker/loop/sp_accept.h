/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_accept.h: the shard's multishot accept on the listener, and what is
 * refused before any crypto is spent: a full connection table, the
 * handshake-rate token bucket, a shard that is stopping.
 *
 * Writes: sh->accept_armed, hs_tokens_milli, hs_refill_ns.
 */
#ifndef SP_ACCEPT_H
#define SP_ACCEPT_H

#include "sp_shard_types.h"

/* A full bucket (cfg->handshake_rate tokens), refilled from now_ns on. */
void sp_accept_init(struct sp_shard *sh);
void sp_accept_start(struct sp_shard *sh);

/* Arms the multishot accept unless it is armed or the shard stops; a failed
 * submission is tried again at the next tick. */
void sp_accept_arm(struct sp_shard *sh);

/* An accept completion. */
void sp_accept_done(struct sp_shard *sh, const struct io_uring_cqe *cqe);

/* Stop: cancels the armed accept. */
void sp_accept_stop(struct sp_shard *sh);

#endif
