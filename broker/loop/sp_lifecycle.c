/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_lifecycle.c: how a connection ends (sp_lifecycle.h).
 */
#include "sp_lifecycle.h"

#include <assert.h>
#include <string.h>

#include "sp_conn_io.h"
#include "sp_conn_table.h"
#include "sp_mem.h"
#include "sp_source.h"
#include "sp_timers.h"
#include "sp_xshard.h"

static const char *state_name(uint8_t s)
{
	static const char *const names[] = { "free", "preamble", "handshake", "established",
					     "closing", "dead" };
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

struct end_log {
	enum sp_log_level level;
	const char *msg;
};

/* What each way of ending is called in the log, at which level, and the
 * metric slot it counts in: sp_reasons.def. Everything a peer can cause is
 * rate-limited per reason; orderly closes are debug. */
static struct end_log end_log_of(enum sp_close_reason r)
{
	switch (r) {
#define SP_CLOSE(id, label, level, message, goaway) \
	case SP_CLOSE_##id: return (struct end_log){ SP_LOG_##level, message };
#include "sp_reasons.def"
	default: return (struct end_log){ SP_LOG_DEBUG, "connection closed" };
	}
}

static enum sp_metrics_close metrics_close(enum sp_close_reason r)
{
	switch (r) {
#define SP_CLOSE(id, label, level, message, goaway) \
	case SP_CLOSE_##id: return SP_METRICS_CLOSE_##id;
#include "sp_reasons.def"
	default: return SP_METRICS_CLOSE_INTERNAL;
	}
}

static enum sp_status goaway_code(enum sp_close_reason r)
{
	return sp_close_reason_goaway(r);
}

/* Called exactly once per connection that was accepted (at its GoAway or
 * its cut). state: the session's state as it ended (a cut wipes the
 * session first). */
static void log_end_in(struct sp_shard *sh, const struct sp_conn *c, enum sp_close_reason r,
		       uint8_t state)
{
	struct end_log e = end_log_of(r);

	/* Ended mid-handshake (the pattern is known: the preamble was read), or
	 * established but never proven (an IK message 1 that may be a replay):
	 * the handshake did not succeed (sp_router_proven counts successes). */
	if (state == SP_SESSION_HANDSHAKE || (state == SP_SESSION_ESTABLISHED && !c->s.proven)) {
		enum sp_metrics_outcome o = r == SP_CLOSE_HANDSHAKE_TIMEOUT ||
					    r == SP_CLOSE_HELLO_TIMEOUT
					    ? SP_METRICS_OUTCOME_TIMEOUT : SP_METRICS_OUTCOME_FAILED;

		sp_metrics_handshake(sh->metrics, sp_life_metrics_pattern(c), o, 0);
		sp_metrics_tr_handshake(sh->metrics, sp_life_metrics_transport(c),
					sp_life_metrics_pattern(c), o);
	}
	sp_metrics_conn_closed(sh->metrics, metrics_close(r));
	sp_metrics_tr_closed(sh->metrics, sp_life_metrics_transport(c), metrics_close(r));
	SP_LOG_LIMITED(sh->log, &sh->lim[r], sh->now_ns, e.level, e.msg,
		       SP_KV_STR("reason", sp_close_reason_name(r)),
		       SP_KV_STR("state", state_name(state)), SP_KV_UINT("conn", c->tab.slot),
		       SP_KV_UINT("shard", sh->id));
}

static void log_end(struct sp_shard *sh, const struct sp_conn *c, enum sp_close_reason r)
{
	log_end_in(sh, c, r, c->s.state);
}

struct sp_conn *sp_life_open(struct sp_shard *sh, int fd)
{
	struct sp_conn *c = sp_conn_table_open(sh);

	if (!c)
		return NULL;
	sp_io_open(c, fd);
	c->life.close_reason = SP_CLOSE_NONE;
	sp_timers_accepted(sh, c);
	return c;
}

struct sp_conn *sp_life_adopt(struct sp_shard *sh, int fd)
{
	struct sp_conn *c = sp_conn_table_open(sh);

	if (!c)
		return NULL;
	sp_io_open(c, fd);
	c->life.close_reason = SP_CLOSE_NONE;
	return c;
}

void sp_life_end_later(struct sp_shard *sh, struct sp_conn *c, enum sp_close_reason r)
{
	if (!c->life.close_reason)
		c->life.close_reason = r;
	/* The rest of its input is dropped unread: it ends at the flush. */
	sp_session_halt(&c->s);
	sp_conn_mark(sh, c);
}

void sp_life_cut(struct sp_shard *sh, struct sp_conn *c, enum sp_close_reason r)
{
	uint8_t state = c->s.state;

	if (state == SP_SESSION_DEAD || state == SP_SESSION_FREE)
		return;
	sp_timers_ended(sh, c);
	sh->app.detach(sh, c);
	sp_session_wipe(&c->s);        /* DEAD */
	/* Counted closed once its keys are gone: what a scrape (or a test
	 * taking a core) sees as closed holds no secret of it any more. */
	if (state != SP_SESSION_CLOSING)    /* else logged at its GoAway */
		log_end_in(sh, c, r, state);
	sp_io_cancel(sh, c);
	sp_conn_mark(sh, c);
}

void sp_life_end(struct sp_shard *sh, struct sp_conn *c, enum sp_close_reason r)
{
	struct sp_frame f;

	if (c->s.state != SP_SESSION_ESTABLISHED || goaway_code(r) == SP_STATUS_UNSPECIFIED) {
		sp_life_cut(sh, c, r);
		return;
	}
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_GOAWAY;
	f.u.goaway.code = goaway_code(r);
	if (sp_session_tx_frame(&c->s, &f, NULL, 0) || sp_session_tx_seal(&c->s)) {
		sp_life_cut(sh, c, r);
		return;
	}
	log_end(sh, c, r);
	sh->app.detach(sh, c);
	sp_session_end(&c->s);         /* CLOSING: input is discarded */
	sp_life_end_later(sh, c, r);
	sp_timers_goaway(sh, c);
}

void sp_life_end_drain(struct sp_shard *sh, struct sp_conn *c, enum sp_close_reason r)
{
	if (c->s.state == SP_SESSION_DEAD || c->s.state == SP_SESSION_FREE ||
	    c->s.state == SP_SESSION_CLOSING)
		return;
	log_end(sh, c, r);
	sh->app.detach(sh, c);
	sp_session_drain(&c->s);       /* CLOSING: input is discarded */
	sp_life_end_later(sh, c, r);
	sp_timers_goaway(sh, c);
}

void sp_life_rx_failed(struct sp_shard *sh, struct sp_conn *c, enum sp_close_reason r)
{
	/* The refusal preamble is queued: it goes out, then the connection ends. */
	if (r == SP_CLOSE_CIPHER_REFUSED) {
		sp_life_end_drain(sh, c, r);
		return;
	}
	/* A GoAway waits for the flush, so the SendResults of the Sends before
	 * the bad frame (written after the commit) precede it. */
	if (c->s.state == SP_SESSION_ESTABLISHED && goaway_code(r) != SP_STATUS_UNSPECIFIED)
		sp_life_end_later(sh, c, r);
	else
		sp_life_end(sh, c, r);
}

void sp_life_finalize(struct sp_shard *sh, struct sp_conn *c)
{
	/* Its end (sp_life_cut) took it off its deadline list and the app layer
	 * let go of it (detach), so those groups are back to their zero state
	 * for the slot's next connection, which their owners rely on. */
	assert(!c->route.routed && !sp_ilink_linked(&c->mbox.drain) &&
	       !sp_ilink_linked(&c->timer.node));
	sp_xshard_forget(c);
	sp_io_close(sh, c);
	sp_source_release(sh, c);
	sp_conn_table_release(sh, c);
}

/* End of iteration for one touched connection. */
static void flush_conn(struct sp_shard *sh, struct sp_conn *c)
{
	if (c->move.m && c->s.state == SP_SESSION_ESTABLISHED) {
		sp_xshard_move_flush(sh, c);    /* to its home shard, once quiet */
		return;
	}
	if (c->s.state == SP_SESSION_DEAD) {
		if (sp_io_idle(c))
			sp_life_finalize(sh, c);
		return;
	}
	if (c->s.state == SP_SESSION_ESTABLISHED && c->life.close_reason) {
		sp_life_end(sh, c, c->life.close_reason);
		if (c->s.state == SP_SESSION_DEAD)
			return;
	}
	if (sp_session_tx_seal(&c->s)) {
		sp_life_cut(sh, c, SP_CLOSE_INTERNAL);
		return;
	}
	/* Past the hard limit only by its own replies: it is not reading. */
	if (c->s.state == SP_SESSION_ESTABLISHED && sp_session_tx_queued(&c->s) > sp_config_sendq_hard(sh->cfg))
		sp_life_end(sh, c, SP_CLOSE_SLOW_CONSUMER);
	if (sp_io_start_send(sh, c)) {
		sp_life_cut(sh, c, SP_CLOSE_INTERNAL);
		return;
	}
	sp_io_maybe_shutdown(sh, c);
}

void sp_life_flush_all(struct sp_shard *sh)
{
	struct sp_conn *c;

	/* Over --mem-budget: the largest holders end here, flushed below. */
	sp_mem_check(sh);
	/* flush_conn may mark connections again (a cut); loop until quiet. */
	while ((c = sp_conn_table_next_dirty(sh)))
		flush_conn(sh, c);
	sp_bufring_flush(&sh->bufs);
}

/* A GoAway'd peer that has not taken its output within the grace (a slow
 * consumer, typically): reset, so neither our queue nor the kernel's keeps
 * trickling to it. One whose output was all handed over (SHUT_WR done)
 * gets an ordinary close. */
static void cut_closing(struct sp_shard *sh, struct sp_conn *c, enum sp_close_reason r)
{
	if (c->s.state == SP_SESSION_CLOSING && !c->io.shut_wr)
		sp_io_abort_on_close(c);
	sp_life_cut(sh, c, r);
}

void sp_life_deadlines(struct sp_shard *sh)
{
	struct sp_conn *c;

	while ((c = sp_timers_expired(sh, SP_TIMER_HELLO)))
		cut_closing(sh, c, SP_CLOSE_HELLO_TIMEOUT);
	while ((c = sp_timers_expired(sh, SP_TIMER_HANDSHAKE)))
		cut_closing(sh, c, SP_CLOSE_HANDSHAKE_TIMEOUT);
	while ((c = sp_timers_expired(sh, SP_TIMER_IDLE)))
		sp_life_end(sh, c, SP_CLOSE_IDLE);
	while ((c = sp_timers_expired(sh, SP_TIMER_CLOSING)))
		cut_closing(sh, c, c->life.close_reason);
}

void sp_life_end_all(struct sp_shard *sh, bool force)
{
	for (uint32_t i = 0; i < sh->high_water; i++) {
		struct sp_conn *c = &sh->conns[i];

		if (c->s.state == SP_SESSION_FREE || c->s.state == SP_SESSION_DEAD)
			continue;
		if (force)
			/* Undrained output is given up on: reset, as at a grace deadline. */
			cut_closing(sh, c, SP_CLOSE_SHUTDOWN);
		else
			sp_life_end(sh, c, SP_CLOSE_SHUTDOWN);
	}
}
