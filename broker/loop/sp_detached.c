/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_detached.c: the shard without a ring on its per-envelope path, for
 * tests and benchmarks only (sp_detached.h). Built into its own library
 * (sp_detached), which sealpostd does not link.
 */
#include "sp_detached.h"

#include <errno.h>
#include <string.h>

#include "sp_conn_table.h"
#include "sp_lifecycle.h"
#include "sp_mem.h"
#include "sp_router.h"
#include "sp_timers.h"

int sp_shard_init_detached(struct sp_shard *sh, uint8_t id, const struct sp_config *cfg,
			   const struct sp_log *log, const uint8_t *static_priv)
{
	int ret;

	memset(sh, 0, sizeof(*sh));
	sh->listen_fd = sh->wake_fd = -1;
	ret = sp_shard_setup(sh, id, cfg, log, static_priv);
	if (ret)
		sp_shard_destroy(sh);
	return ret;
}

struct sp_conn *sp_shard_conn_add(struct sp_shard *sh)
{
	/* The accept's slot and handshake deadline, without the socket. */
	return sp_life_open(sh, -1);
}

enum sp_close_reason sp_shard_conn_route(struct sp_shard *sh, struct sp_conn *c)
{
	return sp_router_proven(sh, c);
}

void sp_shard_begin_iteration(struct sp_shard *sh)
{
	sh->now_ns = sp_shard_mono_ns();
	sh->wall_ms = sp_shard_wall_ms();
}

void sp_shard_begin_iteration_at(struct sp_shard *sh, uint64_t now_ns, uint64_t wall)
{
	sh->now_ns = now_ns;
	sh->wall_ms = wall;
}

void sp_shard_tick(struct sp_shard *sh)
{
	sp_shard_tick_work(sh);
}

void sp_shard_conn_eof(struct sp_shard *sh, struct sp_conn *c)
{
	sp_life_cut(sh, c, SP_CLOSE_EOF);
}

enum sp_close_reason sp_shard_feed(struct sp_shard *sh, struct sp_conn *c, uint8_t *data,
				   size_t len)
{
	enum sp_close_reason r;

	sp_metrics_bytes_received(sh->metrics, len);
	r = sp_shard_rx(sh, c, data, len);
	if (r)
		sp_life_rx_failed(sh, c, r);   /* as the loop's receive completion does */
	return r;
}

/* The lifecycle's flush for a connection that ends or has ended, without the
 * socket: its last output (the GoAway) is taken, a dead slot is freed. */
static void flush_ending(struct sp_shard *sh, struct sp_conn *c, sp_shard_take_fn take, void *ctx)
{
	if (c->s.state == SP_SESSION_DEAD) {
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
	if (c->s.state == SP_SESSION_ESTABLISHED && sp_session_tx_queued(&c->s) > sp_config_sendq_hard(sh->cfg)) {
		sp_life_end(sh, c, SP_CLOSE_SLOW_CONSUMER);
		if (c->s.state == SP_SESSION_DEAD)
			return;
	}
	take(ctx, c);
}

int sp_shard_end_iteration(struct sp_shard *sh, uint64_t ncqe, sp_shard_take_fn take, void *ctx)
{
	struct sp_conn *c;
	int ret = 0;

	sp_shard_after_completions(sh);
	sp_mem_check(sh);
	/* The lifecycle's flush without the socket calls. A connection that ends
	 * is handled as the flush would (its GoAway taken), and reported:
	 * nothing in a benchmark should end one. */
	while ((c = sp_conn_table_next_dirty(sh))) {
		if (c->s.state != SP_SESSION_ESTABLISHED || c->life.close_reason) {
			ret = -EIO;
			flush_ending(sh, c, take, ctx);
			continue;
		}
		if (sp_session_tx_seal(&c->s)) {
			ret = -EIO;
			sp_life_cut(sh, c, SP_CLOSE_INTERNAL);
			continue;
		}
		if (sp_session_tx_queued(&c->s) > sp_config_sendq_hard(sh->cfg)) {
			ret = -EIO;
			sp_life_end(sh, c, SP_CLOSE_SLOW_CONSUMER);
			if (c->s.state == SP_SESSION_DEAD)
				continue;
		}
		take(ctx, c);
	}
	sp_shard_iteration_metrics(sh, ncqe);
	return ret;
}
