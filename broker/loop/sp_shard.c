/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_shard.c: the event loop of one shard, on top of everything else in
 * loop/ and app/: the ring, the phases of an iteration, and one switch over
 * the completion ops.
 *
 * Loop iteration: submit everything prepared and wait for one completion;
 * (1) handle every completion: input is decrypted and routed; durable
 * envelopes, acks and the expiry sweep go into the iteration's one store
 * batch, and envelopes for live recipients are encrypted into their open
 * outbound messages straight from the receive buffer; (2) commit the batch
 * (one WriteBatch, at most one fsync); (3) write the SendResults, now that
 * the commit's outcome is known, and let the backlog readers fill the queues
 * of devices still draining their mailbox (app/sp_mailbox.c); (4) flush:
 * finish each touched connection's open message, start its send, act on
 * pending closes, and give receive buffers back (sp_lifecycle.c). Nothing
 * reaches a socket before (2), so an ACCEPTED or a Deliver never goes out
 * for an envelope that is not stored. Many envelopes arriving in one
 * iteration for one device leave in one Noise message and one send.
 */
#include "sp_shard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sp_accept.h"
#include "sp_admin_exec.h"
#include "sp_account.h"
#include "sp_cluster_route.h"
#include "sp_conn_io.h"
#include "sp_fanout.h"
#include "sp_lifecycle.h"
#include "sp_mailbox.h"
#include "sp_mem.h"
#include "sp_push.h"
#include "sp_registration.h"
#include "sp_route.h"
#include "sp_router.h"
#include "sp_source.h"
#include "sp_store.h"
#include "sp_timers.h"
#include "sp_ws.h"
#include "sp_xshard.h"

enum {
	RING_ENTRIES = 4096,
	TXPOOL_KEEP = 256,              /* free tx chunks kept (~16 MiB) */
	STOP_EXTRA_MS = 1000,           /* after close_grace, before giving up on completions */
	SP_SHARD_KEY_CHUNK_BYTES = 256 << 10, /* key_slab chunks: ~2,000 connections' keys */
};

/* --- completions ------------------------------------------------------------ */

static bool rearm_error(int res)
{
	return res == -ENOBUFS || res == -EAGAIN || res == -EINTR || res == -ECANCELED;
}

static void on_recv(struct sp_shard *sh, struct sp_conn *c, const struct io_uring_cqe *cqe, int bid)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;
	enum sp_close_reason r;

	sp_io_recv_done(c, more);
	if (cqe->res > 0)
		sp_metrics_bytes_received(sh->metrics, (uint64_t)cqe->res);
	if (cqe->res > 0 && bid >= 0 && c->s.state != SP_SESSION_DEAD) {
		uint8_t *buf = sp_bufring_addr(&sh->bufs, (uint16_t)bid);

		if (c->move.m) {
			/* Moving to its home shard: kept for it, unread. */
			r = sp_xshard_move_input(sh, c, buf, (size_t)cqe->res);
		} else {
			r = c->ws.t ? sp_ws_rx(sh, c, buf, (size_t)cqe->res)
				    : sp_shard_rx(sh, c, buf, (size_t)cqe->res);
			/* It started moving in this buffer: the rest is its home's. */
			if (!r && c->move.m && c->s.rx_left)
				r = sp_xshard_move_input(sh, c, buf + cqe->res - c->s.rx_left,
							 c->s.rx_left);
		}
		if (r)
			sp_life_rx_failed(sh, c, r);
	}
	if (c->s.state == SP_SESSION_DEAD) {
		sp_conn_mark(sh, c);    /* finalize once the last request is in */
		return;
	}
	if (cqe->res == 0) {
		sp_life_cut(sh, c, SP_CLOSE_EOF);
	} else if (cqe->res < 0 && !rearm_error(cqe->res)) {
		sp_life_cut(sh, c, SP_CLOSE_IO);
	} else if (c->move.m) {
		sp_conn_mark(sh, c);    /* its recv ended (cancelled): the flush moves it */
	} else if (!more && sp_io_arm_recv(sh, c)) {
		sp_life_cut(sh, c, SP_CLOSE_INTERNAL);
	}
}

static void on_send_cqe(struct sp_shard *sh, struct sp_conn *c, int res)
{
	sp_io_send_done(sh, c, res);
	if (res > 0)
		sp_metrics_bytes_sent(sh->metrics, (uint64_t)res);
	sp_conn_mark(sh, c);
	if (c->s.state != SP_SESSION_DEAD && res < 0)
		sp_life_cut(sh, c, res == -ENOMEM ? SP_CLOSE_NOMEM : SP_CLOSE_IO);
}

static void on_shutdown_cqe(struct sp_shard *sh, struct sp_conn *c)
{
	sp_io_shutdown_done(c);
	sp_conn_mark(sh, c);
}

/* A second stop: stop waiting for slow peers. */
static void stop_now(struct sp_shard *sh)
{
	/* Every shard is told (one may have stopped already): one line says it. */
	if (!sh->node || !atomic_flag_test_and_set(&sh->node->second_stop_logged))
		SP_LOG0(sh->log, SP_LOG_INFO, "second stop signal: closing all connections now");
	sp_life_end_all(sh, true);
}

static void on_wake(struct sp_shard *sh, int res)
{
	uint64_t stops = 1;

	sp_timers_wake_done(sh);
	if (res == -EAGAIN || res == -EINTR) {
		sp_timers_arm_wake(sh);
		return;
	}
	if (res < 0)    /* cannot tell a stop from a failure: stop, and say so */
		SP_LOG(sh->log, SP_LOG_ERROR, "stop descriptor failed", SP_KV_INT("errno", -res));
	/* An eventfd read returns how many stops were written since the last
	 * read: two signals that came before this thread woke are a stop and a
	 * second stop, not one (a signalfd read is one signal). */
	if (res == (int)sizeof(uint64_t))
		memcpy(&stops, sh->wake_buf, sizeof(stops));
	if (sh->stopping) {
		stop_now(sh);
		return;
	}
	sh->stopping = true;
	sh->stop_deadline_ns = sh->now_ns +
			       (uint64_t)(sh->cfg->close_grace_ms + STOP_EXTRA_MS) * 1000000;
	SP_LOG(sh->log, SP_LOG_INFO, "shutting down", SP_KV_UINT("connections", sh->nconns),
	       SP_KV_UINT("shard", sh->id));
	sp_accept_stop(sh);
	sp_life_end_all(sh, false);
	if (stops >= 2)
		stop_now(sh);
	if (res >= 0)
		sp_timers_arm_wake(sh);
}

/* The push worker's outcome eventfd: one read armed at a time. */
static void push_arm(struct sp_shard *sh)
{
	int fd, ret;

	if (!sh->push || sh->push_armed || sh->id != 0 || (fd = sp_push_result_fd(sh->push)) < 0)
		return;
	ret = sp_ring_read(&sh->ring, fd, &sh->push_buf, sizeof(sh->push_buf),
			   sp_ud_pack(SP_OP_PUSH, 0, 0));
	sh->push_armed = ret == 0;
	sh->push_retry = ret != 0;
}

static void on_push(struct sp_shard *sh, int res)
{
	sh->push_armed = false;
	(void)res;      /* whatever the read says, the outcomes are under the worker's lock */
	sp_shard_store(sh);     /* shared by the shards: under the store lock */
	sp_push_outcomes(sh->push, sh->metrics);
	push_arm(sh);
}

/* The store's sync-thread eventfd: one read armed at a time. */
static void sync_arm(struct sp_shard *sh)
{
	int fd, ret;

	if (!sh->store || sh->sync_armed || sh->id != 0 || (fd = sp_store_syncer_fd(sh->store)) < 0)
		return;
	ret = sp_ring_read(&sh->ring, fd, &sh->sync_buf, sizeof(sh->sync_buf),
			   sp_ud_pack(SP_OP_SYNC, 0, 0));
	sh->sync_armed = ret == 0;
	sh->sync_retry = ret != 0;
}

static void on_sync(struct sp_shard *sh, int res)
{
	sh->sync_armed = false;
	(void)res;      /* the synced ticket is read under the store's lock */
	sp_mailbox_synced(sh);
	/* One eventfd, read here: the other shards are told. */
	for (unsigned i = 1; sh->node && i < sh->node->n; i++) {
		struct sp_inbox_msg *m = sp_inbox_msg_new(SP_XS_SYNCED, 0);

		if (m)
			sp_shard_post(sh, i, m);
	}
	sync_arm(sh);
}

/* WAL syncs off the loop (sp_store.h "The sync thread"; measured in
 * docs/BENCHMARKS.md): without the thread, syncs run here as before. */
static void sync_start(struct sp_shard *sh)
{
	int ret;

	if (!sh->store || sh->cfg->fsync == SP_FSYNC_NEVER || sh->id != 0)
		return;
	ret = sp_store_syncer_start(sp_shard_store(sh));
	if (ret)
		SP_LOG(sh->log, SP_LOG_WARN, "no WAL sync thread: syncs run on the event loop",
		       SP_KV_STR("error", strerror(-ret)));
	sync_arm(sh);
}

void sp_shard_tick_work(struct sp_shard *sh)
{
	sp_xshard_take(sh);     /* a lost wake-up costs a tick at most */
	sp_mailbox_tick(sh);
	sp_fanout_tick(sh);
	sp_account_tick(sh);
	sp_life_deadlines(sh);
	sp_mem_tick(sh);
	if (sh->stopping && sh->now_ns >= sh->stop_deadline_ns)
		sp_life_end_all(sh, true);
}

static void on_tick(struct sp_shard *sh)
{
	sp_shard_tick_work(sh);
	sp_admin_exec_retry(sh);
	if (sh->push_retry)
		push_arm(sh);
	if (sh->sync_retry)
		sync_arm(sh);
	sp_cluster_route_tick(sh);
	if (sh->inbox_retry)
		sp_xshard_arm(sh);
	sp_accept_arm(sh);
	sp_timers_arm_tick(sh);
}

static void on_cqe(struct sp_shard *sh, const struct io_uring_cqe *cqe)
{
	struct sp_ud ud = sp_ud_unpack(io_uring_cqe_get_data64(cqe));
	int bid = sp_cqe_bid(cqe);
	struct sp_conn *c;

	switch (ud.op) {
	case SP_OP_ACCEPT: sp_accept_done(sh, cqe); break;
	case SP_OP_TICK: on_tick(sh); break;
	case SP_OP_WAKE: on_wake(sh, cqe->res); break;
	case SP_OP_ADMIN: sp_admin_exec_cqe(sh, cqe->res); break;
	case SP_OP_PUSH: on_push(sh, cqe->res); break;
	case SP_OP_SYNC: on_sync(sh, cqe->res); break;
	case SP_OP_CLUSTER: sp_cluster_route_cqe(sh, cqe->res); break;
	case SP_OP_INBOX: sp_xshard_cqe(sh, ud.slot, cqe->res); break;
	case SP_OP_RECV:
	case SP_OP_SEND:
	case SP_OP_SHUTDOWN:
		c = sp_conn_at(sh, ud.slot, ud.gen);
		if (!c)
			break;  /* stale: the slot's connection is gone */
		if (ud.op == SP_OP_RECV)
			on_recv(sh, c, cqe, bid);
		else if (ud.op == SP_OP_SEND)
			on_send_cqe(sh, c, cqe->res);
		else
			on_shutdown_cqe(sh, c);
		break;
	default:
		break;  /* SP_OP_CANCEL: nothing to do */
	}
	/* Whatever happened, a selected buffer goes back to the ring. */
	if (bid >= 0)
		sp_bufring_put(&sh->bufs, (uint16_t)bid);
}

/* --- the loop --------------------------------------------------------------- */

void sp_shard_after_completions(struct sp_shard *sh)
{
	sp_mailbox_after_completions(sh);
}

static bool done(const struct sp_shard *sh)
{
	if (!sh->stopping)
		return false;
	return sh->nconns == 0 ||
	       sh->now_ns >= sh->stop_deadline_ns + (uint64_t)STOP_EXTRA_MS * 1000000;
}

int sp_shard_run(struct sp_shard *sh)
{
	struct io_uring_cqe *cqe;
	unsigned head, n;
	int ret;

	sh->now_ns = sp_shard_mono_ns();
	sp_mailbox_start(sh);
	sync_start(sh);
	sp_mem_publish(sh);
	sp_accept_arm(sh);
	sp_timers_arm_wake(sh);
	sp_timers_arm_tick(sh);
	sp_admin_exec_arm(sh);
	push_arm(sh);
	sp_cluster_route_arm(sh);
	sp_xshard_arm(sh);
	sp_shard_store_release(sh);
	while (!done(sh)) {
		ret = sp_timers_retry(sh);
		if (ret) {
			sp_shard_store_release(sh);     /* the other shards go on to stop */
			return ret;
		}
		ret = sp_ring_submit_wait(&sh->ring, 1);
		if (ret < 0) {
			SP_LOG(sh->log, SP_LOG_ERROR, "io_uring submit failed",
			       SP_KV_INT("errno", -ret));
			sp_shard_store_release(sh);
			return ret;
		}
		sh->now_ns = sp_shard_mono_ns();
		sh->wall_ms = sp_shard_wall_ms();
		n = 0;
		io_uring_for_each_cqe(&sh->ring.ring, head, cqe) {
			on_cqe(sh, cqe);
			n++;
		}
		io_uring_cq_advance(&sh->ring.ring, n);
		sp_shard_after_completions(sh);
		sp_admin_exec_finish(sh);
		sp_life_flush_all(sh);
		sp_shard_iteration_metrics(sh, n);
		/* Before the next wait: the other shards' turn at the store. */
		sp_shard_store_release(sh);
	}
	return 0;
}

void sp_shard_limits_changed(struct sp_shard *sh)
{
	/* New connections are told the new maximum; open ones were told the
	 * old one, and a larger Send of theirs is now refused (too large). */
	sh->env.hello.max_envelope = sh->cfg->max_envelope;
	for (unsigned i = 0; i < SP_LIM_COUNT; i++)
		sp_log_limit_init(&sh->lim[i], sh->cfg->log_rate, sh->cfg->log_rate);
}

/* --- setup ------------------------------------------------------------------ */

/* The session's hooks: ctx is the shard, the session is a connection's. */
static enum sp_close_reason on_established(void *ctx, struct sp_session *s)
{
	enum sp_close_reason why;

	/* A device homed on another shard goes there (sp_xshard.h). */
	if (sp_xshard_move_begin(ctx, sp_conn_of(s), &why) || why)
		return why;
	return sp_router_established(ctx, sp_conn_of(s));
}

static enum sp_close_reason on_proven(void *ctx, struct sp_session *s)
{
	return sp_router_proven(ctx, sp_conn_of(s));
}

static enum sp_close_reason on_client_hello(void *ctx, struct sp_session *s,
					    const struct sp_hello *h)
{
	return sp_registration_check(ctx, sp_conn_of(s), h);
}

static enum sp_close_reason on_first_message(void *ctx, struct sp_session *s)
{
	return sp_accept_first_message(ctx, sp_conn_of(s));
}

static enum sp_close_reason on_frame(void *ctx, struct sp_session *s, const struct sp_frame *f)
{
	return sp_router_frame(ctx, sp_conn_of(s), f);
}

int sp_shard_setup(struct sp_shard *sh, uint8_t id, const struct sp_config *cfg,
		   const struct sp_log *log, const uint8_t *static_priv)
{
	int ret;

	sh->id = id;
	sh->ws_listen_fd = -1;
	sh->inbox.event_fd = -1;        /* no inbox until sp_shard_init makes one */
	sh->cfg = cfg;
	sh->log = log;
	sp_timers_init(sh);
	sp_txpool_init(&sh->pool, TXPOOL_KEEP);
	for (unsigned i = 0; i < SP_LIM_COUNT; i++)
		sp_log_limit_init(&sh->lim[i], cfg->log_rate, cfg->log_rate);
	ret = sp_accept_init(sh);
	if (ret)
		return ret;
	/* A private metrics slot until the daemon points sh->metrics at its own. */
	sh->own_metrics = aligned_alloc(_Alignof(struct sp_metrics_shard),
					sizeof(struct sp_metrics_shard));
	if (!sh->own_metrics)
		return -ENOMEM;
	memset(sh->own_metrics, 0, sizeof(*sh->own_metrics));
	sh->metrics = sh->own_metrics;

	ret = sp_conn_table_init(sh);
	if (ret)
		return ret;
	ret = sp_source_table_new(&sh->sources, cfg->max_conns);
	if (ret)
		return ret;
	ret = sp_mailbox_init(sh);
	if (ret)
		return ret;
	ret = sp_route_create(&sh->routes, cfg->max_conns);
	if (ret)
		return ret;

	sh->env.static_priv = static_priv;
	/* Once here instead of once per handshake (an X25519 operation each). */
	ret = sp_noise_public_key(sh->env.static_pub, static_priv);
	if (ret)
		return ret;
	sh->env.has_static_pub = true;
	sh->env.hello.protocol_version = SP_PROTOCOL_VERSION;
	sh->env.hello.max_envelope = cfg->max_envelope;
	sh->env.hello.max_transport = SP_TRANSPORT_PLAINTEXT_MAX;
	/* Told to clients so they can ping below it (0: off, never closes). */
	sh->env.hello.idle_timeout_ms = cfg->idle_timeout_s > UINT32_MAX / 1000
		? UINT32_MAX : cfg->idle_timeout_s * 1000;
	sh->env.pool = &sh->pool;
	ret = sp_slab_init(&sh->slab, sp_session_slot_size(), 0, 0);
	if (ret)
		return ret;
	sh->env.slab = &sh->slab;
	/* Bigger chunks for the keys: sodium_malloc's three extra pages per
	 * chunk are ~5% of 256 KiB, against ~19% of 64 KiB. */
	ret = sp_slab_init(&sh->key_slab, sp_session_keys_slot_size(),
			   sp_slab_fit(sp_session_keys_slot_size(), SP_SHARD_KEY_CHUNK_BYTES), 0);
	if (ret)
		return ret;
	sh->env.key_slab = &sh->key_slab;
	sh->env.rx_bytes = &sh->mem.rx_bytes;   /* the budget's reassembly half (sp_mem.h) */
	sh->env.rekey_every = cfg->test_rekey_messages; /* 0: the protocol's value */
	/* AESGCM only where libsodium can (AES-NI): elsewhere it is refused,
	 * never attempted in software (docs/SECURITY.md). */
	sh->env.accept_aesgcm = cfg->aesgcm && sp_noise_aead_available(SP_NOISE_AESGCM);
	/* Composition: the session calls up into the router; the lifecycle
	 * tells the app layer when a connection ends. */
	sh->env.hooks.established = on_established;
	sh->env.hooks.proven = on_proven;
	sh->env.hooks.first_message = on_first_message;
	sh->env.hooks.client_hello = on_client_hello;
	sh->env.hooks.frame = on_frame;
	sh->env.hooks.ctx = sh;
	sh->app.detach = sp_router_detach;
	return 0;
}

int sp_shard_size_routes(struct sp_shard *sh, unsigned nshards)
{
	struct sp_route *rt;
	size_t share;
	int ret;

	if (nshards <= 1 || sp_route_count(sh->routes) != 0)
		return 0;
	/* Homes are a hash of the key, so a shard expects its 1/n, give or take
	 * sqrt(1/n): an eighth more and 64 cover that many times over (at
	 * 19,000 connections on 2 shards the spread is ~70 for 1,250). Past
	 * it the table doubles as any keytab does (once per doubling, on
	 * this shard's loop). */
	share = (size_t)sh->cfg->max_conns / nshards;
	share += share / 8 + 64;
	ret = sp_route_create(&rt, share);
	if (ret)
		return ret;
	sp_route_destroy(sh->routes);
	sh->routes = rt;
	return 0;
}

int sp_shard_init(struct sp_shard *sh, uint8_t id, const struct sp_config *cfg,
		  const struct sp_log *log, const uint8_t *static_priv, int listen_fd, int wake_fd)
{
	int ret;

	memset(sh, 0, sizeof(*sh));
	sh->listen_fd = listen_fd;
	sh->wake_fd = wake_fd;
	ret = sp_shard_setup(sh, id, cfg, log, static_priv);
	if (ret)
		goto err;
	ret = sp_ring_init(&sh->ring, RING_ENTRIES);
	if (ret)
		goto err;
	ret = sp_inbox_init(&sh->inbox);
	if (ret)
		goto err;
	sp_inbox_set_ring(&sh->inbox, sh->ring.ring.ring_fd);
	ret = sp_bufring_init(&sh->bufs, &sh->ring, 0, cfg->recv_buffers, cfg->recv_buffer_size);
	if (ret)
		goto err;
	return 0;
err:
	sp_shard_destroy(sh);
	return ret;
}

int sp_shard_store_open(const struct sp_config *cfg, const struct sp_log *log,
			struct sp_store **out)
{
	static const char *const modes[] = { "always", "batch", "never" };
	struct sp_store_config sc;
	char dir[SP_CONFIG_PATH_MAX + 16], err[512] = "";
	int ret;

	*out = NULL;
	snprintf(dir, sizeof(dir), "%s/mailbox", cfg->data_dir);
	sp_store_config_defaults(&sc);
	sc.dir = dir;
	sc.sync = cfg->fsync == SP_FSYNC_ALWAYS ? SP_STORE_SYNC_ALWAYS :
		  cfg->fsync == SP_FSYNC_NEVER ? SP_STORE_SYNC_NEVER : SP_STORE_SYNC_BATCH;
	sc.sync_interval_ms = cfg->fsync_interval_ms;
	sc.ttl_ms = cfg->ttl_s * 1000;
	sc.dedup_window_ms = cfg->dedup_window_s * 1000;
	sc.quota_count = cfg->mailbox_max_count;
	sc.quota_bytes = cfg->mailbox_max_bytes;
	sc.max_total_bytes = cfg->store_max_bytes;
	sc.min_free_bytes = cfg->store_min_free;
	sc.ballast_bytes = cfg->store_ballast;
	sc.share_pct = cfg->mailbox_sender_share >= 100 ? 0 : cfg->mailbox_sender_share;
	sc.share_table_max = cfg->mailbox_share_table_max;
	sc.recent_max = cfg->store_recent_max;
	sc.window_ms = cfg->store_expiry_window_ms;
	sc.max_wal_bytes = cfg->store_max_wal;
	sc.blob_min_bytes = cfg->store_blob_min_bytes;
	sc.scrub_interval_ms = (uint64_t)cfg->store_scrub_interval_s * 1000;
	ret = sp_store_open(out, &sc, err, sizeof(err));
	if (ret) {
		SP_LOG(log, SP_LOG_ERROR, "cannot open the mailbox store", SP_KV_STR("path", dir),
		       SP_KV_STR("error", strerror(-ret)), SP_KV_STR("detail", err));
		return ret;
	}
	SP_LOG(log, SP_LOG_INFO, "mailbox store open", SP_KV_STR("path", dir),
	       SP_KV_STR("fsync", modes[sc.sync]), SP_KV_UINT("max_count", sc.quota_count),
	       SP_KV_UINT("max_bytes", sc.quota_bytes), SP_KV_UINT("ttl_s", cfg->ttl_s),
	       SP_KV_UINT("dedup_window_s", cfg->dedup_window_s),
	       SP_KV_UINT("min_free", sc.min_free_bytes), SP_KV_UINT("max_bytes_all", sc.max_total_bytes));
	return 0;
}

void sp_shard_destroy(struct sp_shard *sh)
{
	sp_xshard_destroy(sh);
	sp_inbox_destroy(&sh->inbox);
	if (sh->ring.ring.ring_fd > 0) {
		sp_bufring_exit(&sh->bufs, &sh->ring);
		/* Exiting the ring ends every request, so no send still reads a
		 * chunk when the chunks are freed below. */
		sp_ring_exit(&sh->ring);
	}
	sp_conn_table_destroy(sh);
	sp_source_table_free(sh->sources);
	sh->sources = NULL;
	sp_accept_destroy(sh);
	if (sh->routes)
		sp_route_destroy(sh->routes);
	sp_txpool_destroy(&sh->pool);
	/* After the table: a session still holding a slot is gone with it. */
	sp_slab_destroy(&sh->slab);
	sp_slab_destroy(&sh->key_slab);
	sp_mailbox_destroy(sh);
	free(sh->own_metrics);
	memset(sh, 0, sizeof(*sh));
}
