/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_accept.h: the shard's multishot accept on the listener, and what is
 * refused before any crypto is spent: a full connection table (or the
 * unproven connection evicted for the newcomer), one source's limits, a
 * shard that is stopping; and the handshake-rate buckets (sp_hsrate.h: per
 * source and in all), charged at a connection's first handshake message
 * (not at accept: sockets that connect and close, or never send, must not
 * spend honest clients' tokens).
 *
 * Writes: sh->accept_armed, sh->hsrate (and the buckets it holds).
 */
#ifndef SP_ACCEPT_H
#define SP_ACCEPT_H

#include "sp_shard_types.h"

/* The handshake-rate buckets, all full; -ENOMEM. Freed by sp_accept_destroy. */
int sp_accept_init(struct sp_shard *sh);
void sp_accept_destroy(struct sp_shard *sh);

/* The session hook at c's first handshake message, before its crypto: a
 * token from c's source's bucket and from the global one, or
 * SP_CLOSE_HANDSHAKE_RATE_SOURCE (the source's is empty) or
 * SP_CLOSE_HANDSHAKE_RATE (the global one is): the connection is closed. */
enum sp_close_reason sp_accept_first_message(struct sp_shard *sh, const struct sp_conn *c);

/* Arms the multishot accept unless it is armed or the shard stops; a failed
 * submission is tried again at the next tick. */
void sp_accept_arm(struct sp_shard *sh);

/* An accept completion. */
void sp_accept_done(struct sp_shard *sh, const struct io_uring_cqe *cqe);

/* Stop: cancels the armed accept. */
void sp_accept_stop(struct sp_shard *sh);

#endif
