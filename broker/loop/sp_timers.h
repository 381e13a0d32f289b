/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_timers.h: every deadline of a connection, as named events (what
 * happened to the connection, not which list it goes on), and the shard's
 * tick and stop read on the ring.
 *
 *   accepted            handshake deadline: accept + handshake_timeout
 *   handshake_complete  (stays on the handshake deadline until proven)
 *   proven              idle deadline: now + idle_timeout (or none)
 *   rx_message          idle deadline pushed back (established and proven; a whole
 *                       transport message was received, not merely some bytes)
 *   goaway              closing deadline: now + close_grace
 *   ended               no deadline
 *
 * What happens at a deadline is the lifecycle's decision (sp_lifecycle.c
 * takes expired connections with sp_timers_expired).
 *
 * Writes, of a connection: its timer group c->timer; sh->hello_list, hs_list, idle_list,
 * closing_list, tick, tick_retry, wake_armed, wake_retry, wake_buf.
 * Errors: 0 or a negative errno.
 */
#ifndef SP_TIMERS_H
#define SP_TIMERS_H

#include <stdbool.h>
#include <stdint.h>

#include "sp_shard_types.h"

enum sp_timer_kind {
	SP_TIMER_HELLO,         /* accepted, no handshake message yet (preamble included) */
	SP_TIMER_HANDSHAKE,     /* handshake after its first message (and IK until proven) */
	SP_TIMER_IDLE,          /* established, nothing received */
	SP_TIMER_CLOSING,       /* GoAway sent, output draining */
};

enum { SP_TIMERS_TICK_MS = 100 };  /* timer resolution for every timeout */

void sp_timers_init(struct sp_shard *sh);

void sp_timers_accepted(struct sp_shard *sh, struct sp_conn *c);

/* The handshake finished; returns how long it took since the accept. */
uint64_t sp_timers_handshake_complete(const struct sp_shard *sh, const struct sp_conn *c);

void sp_timers_proven(struct sp_shard *sh, struct sp_conn *c);

/* Whether c is on the hello list: no handshake message read yet. */
static inline bool sp_timers_awaiting_hello(const struct sp_conn *c)
{
	return c->timer.list == SP_TIMER_HELLO + 1;
}

/* The idle deadline from now (sp_timers_rx_message's slow part). */
void sp_timers_set_idle(struct sp_shard *sh, struct sp_conn *c);

/* Once per receive that completed a transport message: inline, the list
 * move out of line. */
static inline void sp_timers_rx_message(struct sp_shard *sh, struct sp_conn *c)
{
	if (c->s.state == SP_SESSION_ESTABLISHED && c->s.proven && sh->cfg->idle_timeout_s)
		sp_timers_set_idle(sh, c);
}

void sp_timers_goaway(struct sp_shard *sh, struct sp_conn *c);

/* The first handshake message was read: the handshake deadline from now. */
void sp_timers_first_message(struct sp_shard *sh, struct sp_conn *c);

/* The connection accepted longest ago of those not proven yet (one with
 * no handshake message before any other), still on its deadline; or NULL. */
struct sp_conn *sp_timers_oldest_unproven(struct sp_shard *sh);

void sp_timers_ended(struct sp_shard *sh, struct sp_conn *c);

/* The first connection of kind whose deadline has passed, taken off its
 * list (so it has no deadline), or NULL. */
struct sp_conn *sp_timers_expired(struct sp_shard *sh, enum sp_timer_kind kind);

/*
 * The ring's tick (every SP_TIMERS_TICK_MS) and read on the stop
 * descriptor. A failed submission is logged and marked for another try:
 * sp_timers_retry arms it again before the loop waits.
 */
void sp_timers_arm_tick(struct sp_shard *sh);
void sp_timers_arm_wake(struct sp_shard *sh);

/* The stop read completed: it is no longer armed. */
void sp_timers_wake_done(struct sp_shard *sh);

/*
 * Before the loop sleeps: arms again what failed to be submitted. A loop
 * that slept without its tick would never time anything out, nor see a stop
 * without its read: if a second try fails too, logs an error and returns its
 * negative errno (fatal: the shard stops).
 */
int sp_timers_retry(struct sp_shard *sh);

/* A connection handed over from another shard (accepted there at
 * accepted_ns, CLOCK_MONOTONIC): on the handshake deadline here. */
void sp_timers_adopt(struct sp_shard *sh, struct sp_conn *c, uint64_t accepted_ns);
uint64_t sp_timers_accepted_ns(const struct sp_conn *c);

#endif
