/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_lifecycle.h: how a connection ends. Whether it gets a GoAway (and
 * close_grace to take what is queued) or is cut at once, the one log line
 * and close metric of every accepted connection, the flush at the end of an
 * iteration, the deadlines' consequences, and the freeing of a dead slot
 * once the kernel holds no request of it.
 *
 * A close reason is recorded only through sp_life_end_later (the first
 * reason wins); the connection ends at the next flush, after the
 * SendResults of its Sends that arrived before.
 *
 * Writes, of a connection: its lifecycle group c->life (close_reason);
 * the session's state only through lib/session (sp_session_end: CLOSING,
 * sp_session_wipe: DEAD). Opening composes the owners: the table's slot,
 * the socket's I/O group, the lifecycle's own, the handshake deadline.
 */
#ifndef SP_LIFECYCLE_H
#define SP_LIFECYCLE_H

#include <stdbool.h>

#include "sp_metrics.h"
#include "sp_shard_types.h"

static inline enum sp_metrics_pattern sp_life_metrics_pattern(const struct sp_conn *c)
{
	if (c->s.pattern == SP_PREAMBLE_PATTERN_NK)
		return SP_METRICS_PATTERN_NK;
	return c->s.pattern == SP_PREAMBLE_PATTERN_IK ? SP_METRICS_PATTERN_IK : SP_METRICS_PATTERN_XX;
}

/* Which listener c came in on (the sealpost_transport_* families). */
static inline enum sp_metrics_transport sp_life_metrics_transport(const struct sp_conn *c)
{
	return c->ws.t ? SP_METRICS_TRANSPORT_WS : SP_METRICS_TRANSPORT_TCP;
}

/* A connection on an accepted socket (fd -1: none, for the detached
 * harness) in the lowest free slot, on its handshake deadline; NULL if the
 * table is full. */
struct sp_conn *sp_life_open(struct sp_shard *sh, int fd);

/* A connection handed over from another shard on socket fd, in the lowest
 * free slot (the caller attaches its session, source and deadline); NULL
 * if the table is full. */
struct sp_conn *sp_life_adopt(struct sp_shard *sh, int fd);

/* Records r as why c must end (unless a reason is recorded already) and
 * marks it: it ends at the flush, with a GoAway if r has one. */
void sp_life_end_later(struct sp_shard *sh, struct sp_conn *c, enum sp_close_reason r);

/*
 * Ends c for reason r now. Established connections get a GoAway and
 * close_grace to receive what is queued (CLOSING: further input is
 * discarded, SHUT_WR once drained, closed at the peer's EOF or the
 * deadline); everything else is cut at once (sp_life_cut).
 */
void sp_life_end(struct sp_shard *sh, struct sp_conn *c, enum sp_close_reason r);

/*
 * Ends c for reason r after what its transport still has to say (a
 * WebSocket HTTP refusal or close frame) has gone out, in any live state
 * and without a GoAway: input is discarded from now, SHUT_WR once drained,
 * closed at the peer's EOF or after close_grace.
 */
void sp_life_end_drain(struct sp_shard *sh, struct sp_conn *c, enum sp_close_reason r);

/* Ends c at once, without a reply. Its slot is freed once no request of it
 * is in flight (at a flush). */
void sp_life_cut(struct sp_shard *sh, struct sp_conn *c, enum sp_close_reason r);

/* The input of c ended it with r (sp_conn_rx's result, not NONE). */
void sp_life_rx_failed(struct sp_shard *sh, struct sp_conn *c, enum sp_close_reason r);

/* A dead connection with no request in flight: closes it, frees the slot. */
void sp_life_finalize(struct sp_shard *sh, struct sp_conn *c);

/* The end of an iteration: every marked connection's open message is
 * finished, its send started, pending closes acted on; receive buffers go
 * back to the kernel. */
void sp_life_flush_all(struct sp_shard *sh);

/* What each passed deadline means: a handshake cut, an idle GoAway, a
 * closing connection cut (reset if its output is not all handed over). */
void sp_life_deadlines(struct sp_shard *sh);

/* Stop: every connection gets its GoAway SHUTDOWN; force: cut them all. */
void sp_life_end_all(struct sp_shard *sh, bool force);

#endif
