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

static void timer_set(struct sp_list *list, struct sp_conn *c, uint64_t deadline)
{
	sp_list_del(&c->timer.node);
	c->timer.deadline_ns = deadline;
	c->timer.hello = false;
	sp_list_add_tail(list, &c->timer.node);
}

static void timer_clear(struct sp_conn *c)
{
	sp_list_del(&c->timer.node);
	c->timer.hello = false;
}

static struct sp_conn *timer_conn(struct sp_list *n)
{
	return (struct sp_conn *)((char *)n - offsetof(struct sp_conn, timer.node));
}

static struct sp_list *list_of(struct sp_shard *sh, enum sp_timer_kind kind)
{
	switch (kind) {
	case SP_TIMER_HELLO: return &sh->hello_list;
	case SP_TIMER_HANDSHAKE: return &sh->hs_list;
	case SP_TIMER_IDLE: return &sh->idle_list;
	default: return &sh->closing_list;
	}
}

void sp_timers_set_idle(struct sp_shard *sh, struct sp_conn *c)
{
	timer_set(&sh->idle_list, c, sh->now_ns + (uint64_t)sh->cfg->idle_timeout_s * 1000000000u);
}

void sp_timers_init(struct sp_shard *sh)
{
	sp_list_init(&sh->hello_list);
	sp_list_init(&sh->hs_list);
	sp_list_init(&sh->idle_list);
	sp_list_init(&sh->closing_list);
}

void sp_timers_accepted(struct sp_shard *sh, struct sp_conn *c)
{
	timer_set(&sh->hello_list, c, sh->now_ns + ms_ns(sh->cfg->hello_timeout_ms));
	c->timer.hello = true;
	c->timer.accepted_ns = sh->now_ns;
}

void sp_timers_first_message(struct sp_shard *sh, struct sp_conn *c)
{
	/* From now rather than from accept, so the list stays in deadline
	 * order (each list's timeout is one constant). */
	timer_set(&sh->hs_list, c, sh->now_ns + ms_ns(sh->cfg->handshake_timeout_ms));
}

uint64_t sp_timers_handshake_complete(const struct sp_shard *sh, const struct sp_conn *c)
{
	return sh->now_ns - c->timer.accepted_ns;
}

struct sp_conn *sp_timers_oldest_unproven(struct sp_shard *sh)
{
	/* Silent ones first: they have not even started a handshake. */
	if (!sp_list_empty(&sh->hello_list))
		return timer_conn(sh->hello_list.next);
	if (!sp_list_empty(&sh->hs_list))
		return timer_conn(sh->hs_list.next);
	return NULL;
}

void sp_timers_adopt(struct sp_shard *sh, struct sp_conn *c, uint64_t accepted_ns)
{
	/* On the handshake deadline from now, like a first message: the
	 * proof (IK) or the routing (XX) follows at once. */
	timer_set(&sh->hs_list, c, sh->now_ns + ms_ns(sh->cfg->handshake_timeout_ms));
	c->timer.accepted_ns = accepted_ns;
}

uint64_t sp_timers_accepted_ns(const struct sp_conn *c)
{
	return c->timer.accepted_ns;
}

void sp_timers_proven(struct sp_shard *sh, struct sp_conn *c)
{
	if (sh->cfg->idle_timeout_s)
		sp_timers_set_idle(sh, c);
	else
		timer_clear(c);
}

void sp_timers_goaway(struct sp_shard *sh, struct sp_conn *c)
{
	timer_set(&sh->closing_list, c, sh->now_ns + ms_ns(sh->cfg->close_grace_ms));
}

void sp_timers_ended(struct sp_shard *sh, struct sp_conn *c)
{
	(void)sh;
	timer_clear(c);
}

struct sp_conn *sp_timers_expired(struct sp_shard *sh, enum sp_timer_kind kind)
{
	struct sp_list *list = list_of(sh, kind);
	struct sp_conn *c;

	if (sp_list_empty(list))
		return NULL;
	c = timer_conn(list->next);
	if (c->timer.deadline_ns > sh->now_ns)
		return NULL;
	timer_clear(c);
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
