/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_timers.c: connection deadlines as named events, the tick and the stop
 * read (sp_timers.h).
 */
#include "sp_timers.h"

#include <errno.h>
#include <string.h>

static uint64_t ms_ns(uint64_t ms)
{
	return ms * 1000000u;
}

/* The connection table, as the lists' array: a list holds slot numbers. */
static struct sp_iarr conns(const struct sp_shard *sh)
{
	return (struct sp_iarr){ sh->conns, sizeof(struct sp_conn),
				 offsetof(struct sp_conn, timer.node) };
}

static struct sp_ilist *list_of(struct sp_shard *sh, enum sp_timer_kind kind)
{
	switch (kind) {
	case SP_TIMER_HELLO: return &sh->hello_list;
	case SP_TIMER_HANDSHAKE: return &sh->hs_list;
	case SP_TIMER_IDLE: return &sh->idle_list;
	default: return &sh->closing_list;
	}
}

static void timer_clear(struct sp_shard *sh, struct sp_conn *c)
{
	struct sp_iarr a = conns(sh);

	if (c->timer.list)
		sp_ilist_del(list_of(sh, (enum sp_timer_kind)(c->timer.list - 1)), &a, c->tab.slot);
	c->timer.list = 0;
}

static void timer_set(struct sp_shard *sh, enum sp_timer_kind kind, struct sp_conn *c,
		      uint64_t deadline)
{
	struct sp_iarr a = conns(sh);

	timer_clear(sh, c);
	c->timer.deadline_ns = deadline;
	c->timer.list = (uint8_t)(kind + 1);
	sp_ilist_add_tail(list_of(sh, kind), &a, c->tab.slot);
}

static struct sp_conn *first_of(struct sp_shard *sh, const struct sp_ilist *l)
{
	uint32_t slot = sp_ilist_first(l);

	return slot == SP_ILIST_NONE ? NULL : &sh->conns[slot];
}

void sp_timers_set_idle(struct sp_shard *sh, struct sp_conn *c)
{
	timer_set(sh, SP_TIMER_IDLE, c,
		  sh->now_ns + (uint64_t)sh->cfg->idle_timeout_s * 1000000000u);
}

void sp_timers_init(struct sp_shard *sh)
{
	sp_ilist_init(&sh->hello_list);
	sp_ilist_init(&sh->hs_list);
	sp_ilist_init(&sh->idle_list);
	sp_ilist_init(&sh->closing_list);
}

void sp_timers_accepted(struct sp_shard *sh, struct sp_conn *c)
{
	timer_set(sh, SP_TIMER_HELLO, c, sh->now_ns + ms_ns(sh->cfg->hello_timeout_ms));
	c->timer.accepted_us = (uint32_t)(sh->now_ns / 1000u);
}

void sp_timers_first_message(struct sp_shard *sh, struct sp_conn *c)
{
	/* From now rather than from accept, so the list stays in deadline
	 * order (each list's timeout is one constant). */
	timer_set(sh, SP_TIMER_HANDSHAKE, c, sh->now_ns + ms_ns(sh->cfg->handshake_timeout_ms));
}

uint64_t sp_timers_handshake_complete(const struct sp_shard *sh, const struct sp_conn *c)
{
	/* Modulo 2^32 µs: right for any handshake shorter than 71 minutes. */
	return (uint64_t)(uint32_t)((uint32_t)(sh->now_ns / 1000u) - c->timer.accepted_us) * 1000u;
}

struct sp_conn *sp_timers_oldest_unproven(struct sp_shard *sh)
{
	struct sp_conn *c = first_of(sh, &sh->hello_list);

	/* Silent ones first: they have not even started a handshake. */
	return c ? c : first_of(sh, &sh->hs_list);
}

void sp_timers_adopt(struct sp_shard *sh, struct sp_conn *c, uint64_t accepted_ns)
{
	/* On the handshake deadline from now, like a first message: the
	 * proof (IK) or the routing (XX) follows at once. */
	timer_set(sh, SP_TIMER_HANDSHAKE, c, sh->now_ns + ms_ns(sh->cfg->handshake_timeout_ms));
	c->timer.accepted_us = (uint32_t)(accepted_ns / 1000u);
}

/* The accept time as the other shard gets it: only its low 32 bits of µs
 * mean anything (the shards share CLOCK_MONOTONIC, and the handshake time
 * is taken modulo 2^32 µs, sp_timers_handshake_complete). */
uint64_t sp_timers_accepted_ns(const struct sp_conn *c)
{
	return (uint64_t)c->timer.accepted_us * 1000u;
}

void sp_timers_proven(struct sp_shard *sh, struct sp_conn *c)
{
	if (sh->cfg->idle_timeout_s)
		sp_timers_set_idle(sh, c);
	else
		timer_clear(sh, c);
}

void sp_timers_goaway(struct sp_shard *sh, struct sp_conn *c)
{
	timer_set(sh, SP_TIMER_CLOSING, c, sh->now_ns + ms_ns(sh->cfg->close_grace_ms));
}

void sp_timers_ended(struct sp_shard *sh, struct sp_conn *c)
{
	timer_clear(sh, c);
}

struct sp_conn *sp_timers_expired(struct sp_shard *sh, enum sp_timer_kind kind)
{
	struct sp_conn *c = first_of(sh, list_of(sh, kind));

	if (!c || c->timer.deadline_ns > sh->now_ns)
		return NULL;
	timer_clear(sh, c);
	return c;
}

static void submit_failed(struct sp_shard *sh, const char *what, int err)
{
	SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_REFUSED], sh->now_ns, SP_LOG_ERROR,
		       "io_uring submission failed: trying again", SP_KV_STR("request", what),
		       SP_KV_STR("error", strerror(-err)), SP_KV_UINT("shard", sh->id));
}

static int tick(struct sp_shard *sh)
{
	sh->tick.tv_sec = 0;
	sh->tick.tv_nsec = SP_TIMERS_TICK_MS * 1000000;
	return sp_ring_timeout(&sh->ring, &sh->tick, sp_ud_pack(SP_OP_TICK, 0, 0));
}

static int wake(struct sp_shard *sh)
{
	int ret = sp_ring_read(&sh->ring, sh->wake_fd, sh->wake_buf, sizeof(sh->wake_buf),
			       sp_ud_pack(SP_OP_WAKE, 0, 0));

	if (ret == 0)
		sh->wake_armed = true;
	return ret;
}

void sp_timers_arm_tick(struct sp_shard *sh)
{
	int ret = tick(sh);

	sh->tick_retry = ret != 0;
	if (ret)
		submit_failed(sh, "tick", ret);
}

void sp_timers_arm_wake(struct sp_shard *sh)
{
	int ret = wake(sh);

	sh->wake_retry = ret != 0;
	if (ret)
		submit_failed(sh, "stop read", ret);
}

void sp_timers_wake_done(struct sp_shard *sh)
{
	sh->wake_armed = false;
}

int sp_timers_retry(struct sp_shard *sh)
{
	int ret;

	if (sh->tick_retry) {
		ret = tick(sh);
		if (ret) {
			SP_LOG(sh->log, SP_LOG_ERROR, "cannot arm the shard's timer: stopping",
			       SP_KV_STR("error", strerror(-ret)), SP_KV_UINT("shard", sh->id));
			return ret;
		}
		sh->tick_retry = false;
	}
	if (sh->wake_retry) {
		ret = wake(sh);
		if (ret) {
			SP_LOG(sh->log, SP_LOG_ERROR, "cannot arm the stop read: stopping",
			       SP_KV_STR("error", strerror(-ret)), SP_KV_UINT("shard", sh->id));
			return ret;
		}
		sh->wake_retry = false;
	}
	return 0;
}
