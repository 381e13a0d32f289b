/*
 * sp_shard.c: the event loop of one shard, connection lifetime, and routing.
 *
 * Loop iteration: submit everything prepared and wait for one completion;
 * handle every completion (input is decrypted, routed and encrypted into the
 * recipients' open outbound messages as it arrives); then flush: finish each
 * touched connection's open message, start its send, act on pending closes,
 * and give receive buffers back. So many envelopes arriving in one iteration
 * for one device leave in one Noise message and one send.
 */
#include "sp_shard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sp_route.h"

enum {
	TICK_MS = 100,                  /* timer resolution for every timeout */
	RING_ENTRIES = 4096,
	TXPOOL_KEEP = 256,              /* free tx chunks kept (~16 MiB) */
	STOP_EXTRA_MS = 1000,           /* after close_grace, before giving up on completions */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t conn_handle(const struct sp_shard *sh, const struct sp_conn *c)
{
	return sp_handle_pack(sh->id, c->slot, c->gen);
}

/* The live connection a completion or handle refers to, or NULL if stale. */
static struct sp_conn *conn_at(struct sp_shard *sh, uint32_t slot, uint32_t gen)
{
	struct sp_conn *c;

	if (slot >= sh->cfg->max_conns)
		return NULL;
	c = &sh->conns[slot];
	if (c->state == SP_CONN_FREE || c->gen != gen)
		return NULL;
	return c;
}

static void mark(struct sp_shard *sh, struct sp_conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->dirty_next = sh->dirty;
	sh->dirty = c;
}

static uint64_t idle_deadline(const struct sp_shard *sh)
{
	return sh->now_ns + (uint64_t)sh->cfg->idle_timeout_s * 1000000000u;
}

static void timer_set(struct sp_list *list, struct sp_conn *c, uint64_t deadline)
{
	sp_list_del(&c->timer);
	c->deadline_ns = deadline;
	sp_list_add_tail(list, &c->timer);
}

static struct sp_conn *timer_conn(struct sp_list *n)
{
	return (struct sp_conn *)((char *)n - offsetof(struct sp_conn, timer));
}

/* --- logging ---------------------------------------------------------------- */

static const char *state_name(enum sp_conn_state s)
{
	static const char *const names[] = { "free", "preamble", "handshake", "established",
					     "closing", "dead" };
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

struct end_log {
	enum sp_log_level level;
	const char *msg;
};

/* What each way of ending is called in the log. Everything a peer can cause
 * is rate-limited per reason; orderly closes are debug. */
static struct end_log end_log_of(enum sp_close_reason r)
{
	switch (r) {
	case SP_CLOSE_BAD_PREAMBLE: return (struct end_log){ SP_LOG_INFO, "bad preamble" };
	case SP_CLOSE_BAD_LENGTH: return (struct end_log){ SP_LOG_INFO, "bad length prefix" };
	case SP_CLOSE_HANDSHAKE_FAILED: return (struct end_log){ SP_LOG_INFO, "handshake failed" };
	case SP_CLOSE_HANDSHAKE_TIMEOUT: return (struct end_log){ SP_LOG_INFO, "handshake failed" };
	case SP_CLOSE_DECRYPT_FAILED:
		return (struct end_log){ SP_LOG_INFO, "transport decrypt failed" };
	case SP_CLOSE_PROTOCOL: return (struct end_log){ SP_LOG_INFO, "protocol error" };
	case SP_CLOSE_TAKEOVER: return (struct end_log){ SP_LOG_INFO, "takeover" };
	case SP_CLOSE_SLOW_CONSUMER: return (struct end_log){ SP_LOG_INFO, "slow consumer" };
	case SP_CLOSE_IDLE: return (struct end_log){ SP_LOG_INFO, "idle timeout" };
	case SP_CLOSE_NOMEM: return (struct end_log){ SP_LOG_ERROR, "out of memory" };
	case SP_CLOSE_INTERNAL: return (struct end_log){ SP_LOG_ERROR, "internal error" };
	default: return (struct end_log){ SP_LOG_DEBUG, "connection closed" };
	}
}

static void log_end(struct sp_shard *sh, const struct sp_conn *c, enum sp_close_reason r)
{
	struct end_log e = end_log_of(r);

	sh->stats.closed[r < SP_CLOSE_REASON_COUNT ? r : SP_CLOSE_INTERNAL]++;
	SP_LOG_LIMITED(sh->log, &sh->lim[r], sh->now_ns, e.level, e.msg,
		       SP_KV_STR("reason", sp_close_reason_name(r)),
		       SP_KV_STR("state", state_name(c->state)), SP_KV_UINT("conn", c->slot),
		       SP_KV_UINT("shard", sh->id));
}

/* --- connection lifetime ---------------------------------------------------- */

static void route_drop(struct sp_shard *sh, struct sp_conn *c)
{
	if (!c->routed)
		return;
	/* With the expected handle: after a takeover the route belongs to the
	 * new connection and this is a no-op (-ESTALE). */
	sp_route_remove(sh->routes, c->device, conn_handle(sh, c));
	c->routed = false;
}

/* Ends a connection at once, without a reply. The slot is freed once no
 * request of it is in flight (finalize, from flush). */
static void teardown(struct sp_shard *sh, struct sp_conn *c, enum sp_close_reason r)
{
	if (c->state == SP_CONN_DEAD || c->state == SP_CONN_FREE)
		return;
	if (c->state != SP_CONN_CLOSING)       /* else logged at its GoAway */
		log_end(sh, c, r);
	sp_list_del(&c->timer);
	route_drop(sh, c);
	sp_conn_wipe(c);
	c->state = SP_CONN_DEAD;
	if (c->recv_armed || c->send_inflight || c->shutdown_inflight)
		sp_ring_cancel_fd(&sh->ring, c->fd, sp_ud_pack(SP_OP_CANCEL, c->slot, c->gen));
	mark(sh, c);
}

static void finalize(struct sp_shard *sh, struct sp_conn *c)
{
	if (c->abort_close) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(c->fd);
	sp_conn_tx_release(c, &sh->pool);
	c->fd = -1;
	c->gen++;       /* every completion or handle naming the old one is now stale */
	c->state = SP_CONN_FREE;
	sh->free_slots[sh->nfree++] = c->slot;
	sh->nconns--;
}

static enum sp_status goaway_code(enum sp_close_reason r)
{
	switch (r) {
	case SP_CLOSE_TAKEOVER: return SP_STATUS_GOAWAY_TAKEOVER;
	case SP_CLOSE_SHUTDOWN: return SP_STATUS_GOAWAY_SHUTDOWN;
	case SP_CLOSE_SLOW_CONSUMER: return SP_STATUS_GOAWAY_SLOW_CONSUMER;
	case SP_CLOSE_IDLE: return SP_STATUS_GOAWAY_IDLE;
	case SP_CLOSE_PROTOCOL: return SP_STATUS_GOAWAY_PROTOCOL;
	default: return SP_STATUS_UNSPECIFIED;
	}
}

/*
 * Ends a connection for reason r. Established connections get a GoAway and
 * close_grace to receive what is queued (CLOSING: further input is
 * discarded, SHUT_WR once drained, closed at the peer's EOF or the
 * deadline); everything else is cut at once.
 */
static void end_conn(struct sp_shard *sh, struct sp_conn *c, enum sp_close_reason r)
{
	struct sp_frame f;

	if (c->state != SP_CONN_ESTABLISHED || goaway_code(r) == SP_STATUS_UNSPECIFIED) {
		teardown(sh, c, r);
		return;
	}
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_GOAWAY;
	f.u.goaway.code = goaway_code(r);
	if (sp_conn_tx_frame(c, &sh->pool, &f, NULL, 0) || sp_conn_tx_seal(c)) {
		teardown(sh, c, r);
		return;
	}
	log_end(sh, c, r);
	route_drop(sh, c);
	c->state = SP_CONN_CLOSING;
	c->close_reason = r;
	timer_set(&sh->closing_list, c, sh->now_ns + (uint64_t)sh->cfg->close_grace_ms * 1000000);
	mark(sh, c);
}

static int arm_recv(struct sp_shard *sh, struct sp_conn *c)
{
	int ret = sp_ring_recv(&sh->ring, c->fd, sh->bufs.bgid,
			       sp_ud_pack(SP_OP_RECV, c->slot, c->gen));
	if (ret == 0)
		c->recv_armed = true;
	return ret;
}

static void start_send(struct sp_shard *sh, struct sp_conn *c)
{
	const uint8_t *p;
	size_t len;

	if (c->send_inflight || !sp_conn_tx_peek(c, &p, &len))
		return;
	if (sp_ring_send(&sh->ring, c->fd, p, len, sp_ud_pack(SP_OP_SEND, c->slot, c->gen))) {
		teardown(sh, c, SP_CLOSE_INTERNAL);
		return;
	}
	c->send_inflight = true;
	c->send_len = (uint32_t)len;
}

/* CLOSING with everything sent: half-close so the peer sees the GoAway and EOF. */
static void maybe_shutdown(struct sp_shard *sh, struct sp_conn *c)
{
	const uint8_t *p;
	size_t len;

	if (c->state != SP_CONN_CLOSING || c->shut_wr || c->shutdown_inflight ||
	    c->send_inflight || sp_conn_tx_peek(c, &p, &len))
		return;
	if (sp_ring_shutdown_wr(&sh->ring, c->fd, sp_ud_pack(SP_OP_SHUTDOWN, c->slot, c->gen)) == 0)
		c->shutdown_inflight = true;
}

/* End of iteration for one touched connection. */
static void flush_conn(struct sp_shard *sh, struct sp_conn *c)
{
	if (c->state == SP_CONN_DEAD) {
		if (!c->recv_armed && !c->send_inflight && !c->shutdown_inflight)
			finalize(sh, c);
		return;
	}
	if (c->state == SP_CONN_ESTABLISHED && c->close_reason) {
		end_conn(sh, c, c->close_reason);
		if (c->state == SP_CONN_DEAD)
			return;
	}
	if (sp_conn_tx_seal(c)) {
		teardown(sh, c, SP_CLOSE_INTERNAL);
		return;
	}
	/* Past the hard limit only by its own replies: it is not reading. */
	if (c->state == SP_CONN_ESTABLISHED && c->txq_bytes > sp_config_sendq_hard(sh->cfg))
		end_conn(sh, c, SP_CLOSE_SLOW_CONSUMER);
	start_send(sh, c);
	maybe_shutdown(sh, c);
}

static void flush_all(struct sp_shard *sh)
{
	/* flush_conn may mark connections again (teardown); loop until quiet. */
	while (sh->dirty) {
		struct sp_conn *c = sh->dirty;

		sh->dirty = c->dirty_next;
		c->dirty_next = NULL;
		c->dirty = false;
		flush_conn(sh, c);
	}
	sp_bufring_flush(&sh->bufs);
}

/* --- accept ----------------------------------------------------------------- */

static void refill_tokens(struct sp_shard *sh)
{
	uint64_t max = (uint64_t)sh->cfg->handshake_rate * 1000;
	uint64_t ms = (sh->now_ns - sh->hs_refill_ns) / 1000000;

	if (ms == 0)
		return;
	sh->hs_refill_ns += ms * 1000000;
	if (ms > 1000)
		ms = 1000;
	sh->hs_tokens_milli += ms * sh->cfg->handshake_rate;
	if (sh->hs_tokens_milli > max)
		sh->hs_tokens_milli = max;
}

static bool take_token(struct sp_shard *sh)
{
	if (sh->cfg->handshake_rate == 0)
		return true;
	refill_tokens(sh);
	if (sh->hs_tokens_milli < 1000)
		return false;
	sh->hs_tokens_milli -= 1000;
	return true;
}

static void refuse(struct sp_shard *sh, int fd, const char *why, uint64_t *counter)
{
	close(fd);
	(*counter)++;
	SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_REFUSED], sh->now_ns, SP_LOG_WARN,
		       "connection refused", SP_KV_STR("reason", why), SP_KV_UINT("shard", sh->id));
}

static void log_peer(struct sp_shard *sh, const struct sp_conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	uint16_t port = 0;

	/* Debug only: a peer address identifies a device's network. */
	if (!sp_log_enabled(sh->log, SP_LOG_DEBUG))
		return;
	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			port = ntohs(a->sin6_port);
		}
	}
	SP_LOG(sh->log, SP_LOG_DEBUG, "connection accepted", SP_KV_UINT("conn", c->slot),
	       SP_KV_STR("peer", host), SP_KV_UINT("port", port));
}

static void on_accept(struct sp_shard *sh, int fd)
{
	struct sp_conn *c;
	uint32_t slot;
	int one = 1;

	if (sh->stopping) {
		close(fd);
		return;
	}
	if (sh->nfree == 0) {
		refuse(sh, fd, "max_conns", &sh->stats.refused_max_conns);
		return;
	}
	if (!take_token(sh)) {
		refuse(sh, fd, "handshake_rate", &sh->stats.refused_rate);
		return;
	}
	slot = sh->free_slots[--sh->nfree];
	if (slot >= sh->high_water)
		sh->high_water = slot + 1;
	c = &sh->conns[slot];
	sp_conn_open(c, fd, slot);
	sh->nconns++;
	sh->stats.accepted++;
	/* Small frames must leave at once: batching is done by us, per iteration. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	timer_set(&sh->hs_list, c, sh->now_ns + (uint64_t)sh->cfg->handshake_timeout_ms * 1000000);
	log_peer(sh, c);
	if (arm_recv(sh, c))
		teardown(sh, c, SP_CLOSE_INTERNAL);
}

static void arm_accept(struct sp_shard *sh)
{
	if (sh->accept_armed || sh->stopping)
		return;
	if (sp_ring_accept(&sh->ring, sh->listen_fd, sp_ud_pack(SP_OP_ACCEPT, 0, 0)) == 0)
		sh->accept_armed = true;
}

static void on_accept_cqe(struct sp_shard *sh, const struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		sh->accept_armed = false;
	if (cqe->res >= 0) {
		on_accept(sh, cqe->res);
		if (!sh->accept_armed && !sh->stopping)
			arm_accept(sh);
		return;
	}
	/* -EMFILE/-ENFILE/-ENOMEM: re-armed by the next tick rather than at
	 * once, so a resource shortage cannot turn into a busy loop. */
	if (cqe->res != -ECANCELED)
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_REFUSED], sh->now_ns, SP_LOG_WARN,
			       "accept failed", SP_KV_STR("error", strerror(-cqe->res)));
}

/* --- routing (the app layer) ------------------------------------------------ */

static enum sp_close_reason reply(struct sp_shard *sh, struct sp_conn *c, const struct sp_frame *f)
{
	int ret = sp_conn_tx_frame(c, &sh->pool, f, NULL, 0);

	mark(sh, c);
	if (ret == -ENOMEM)
		return SP_CLOSE_NOMEM;
	return ret ? SP_CLOSE_INTERNAL : SP_CLOSE_NONE;
}

/* The recipient's live connection on this shard, or NULL (offline). */
static struct sp_conn *recipient(struct sp_shard *sh, const uint8_t key[SP_KEY_LEN])
{
	struct sp_conn *rc;
	uint64_t h;

	if (sp_route_lookup(sh->routes, key, &h))
		return NULL;
	/* Other shards' connections: cross-shard hand-off goes here. */
	if (sp_handle_shard(h) != sh->id)
		return NULL;
	rc = conn_at(sh, sp_handle_slot(h), sp_handle_gen(h));
	return rc && rc->state == SP_CONN_ESTABLISHED ? rc : NULL;
}

/* Deliver{seq} + body into the recipient's open outbound message, encrypted
 * straight from the receive buffer. */
static enum sp_status deliver(struct sp_shard *sh, struct sp_conn *rc, const struct sp_frame *send,
			      uint64_t *seq)
{
	struct sp_frame d;
	int ret;

	if (rc->txq_bytes > sh->cfg->sendq_max)
		return SP_STATUS_ERR_RECIPIENT_BUSY;
	memset(&d, 0, sizeof(d));
	d.type = SP_FRAME_DELIVER;
	d.u.deliver.seq = rc->next_seq;
	ret = sp_conn_tx_frame(rc, &sh->pool, &d, send->body, send->body_len);
	mark(sh, rc);
	if (ret) {
		/* Its outbound stream may be half-written: that connection ends. */
		if (ret != -ENOMEM && !rc->close_reason)
			rc->close_reason = SP_CLOSE_INTERNAL;
		return SP_STATUS_ERR_INTERNAL;
	}
	*seq = rc->next_seq++;
	sh->stats.delivered++;
	return SP_STATUS_DELIVERED;
}

static enum sp_close_reason on_send(struct sp_shard *sh, struct sp_conn *c,
				    const struct sp_frame *f)
{
	struct sp_frame res;
	struct sp_conn *rc;
	enum sp_status st;
	uint64_t seq = 0;

	sh->stats.sends++;
	if (!f->u.send.to_ok || !sp_noise_key_valid(f->u.send.to))
		st = SP_STATUS_ERR_BAD_RECIPIENT;
	else if (f->body_len > sh->cfg->max_envelope)
		st = SP_STATUS_ERR_TOO_LARGE;
	else if (!(rc = recipient(sh, f->u.send.to)))
		/* Mailbox seam: "recipient offline -> store" goes here, and its
		 * SendResult (ACCEPTED) is sent only after the durable commit. */
		st = SP_STATUS_ERR_OFFLINE;
	else
		st = deliver(sh, rc, f, &seq);

	memset(&res, 0, sizeof(res));
	res.type = SP_FRAME_SEND_RESULT;
	res.u.send_result.client_id = f->u.send.client_id;
	res.u.send_result.status = st;
	res.u.send_result.seq = seq;
	return reply(sh, c, &res);
}

static enum sp_close_reason on_frame(void *ctx, struct sp_conn *c, const struct sp_frame *f)
{
	struct sp_shard *sh = ctx;
	struct sp_frame pong;

	switch (f->type) {
	case SP_FRAME_SEND:
		return on_send(sh, c, f);
	case SP_FRAME_PING:
		memset(&pong, 0, sizeof(pong));
		pong.type = SP_FRAME_PONG;
		pong.u.ping.id = f->u.ping.id;
		return reply(sh, c, &pong);
	case SP_FRAME_PONG:
		return SP_CLOSE_NONE;   /* answers a Ping of ours */
	case SP_FRAME_ACK:
		return SP_CLOSE_NONE;   /* mailbox seam: delete acknowledged envelopes */
	default:
		/* SendResult, Deliver, Drained, GoAway travel broker -> client only. */
		return SP_CLOSE_PROTOCOL;
	}
}

/* Makes c the device's route; an older connection of the device is taken over. */
static enum sp_close_reason route_device(struct sp_shard *sh, struct sp_conn *c)
{
	struct sp_conn *old;
	uint64_t prev;
	int ret;

	ret = sp_route_insert(sh->routes, c->device, conn_handle(sh, c), &prev);
	if (ret < 0)
		return SP_CLOSE_NOMEM;
	c->routed = true;
	if (ret == 1 && sp_handle_shard(prev) == sh->id &&
	    (old = conn_at(sh, sp_handle_slot(prev), sp_handle_gen(prev))) && old != c) {
		/* The device connected again: the newest proven connection wins. */
		old->routed = false;    /* the route is the new one's now */
		end_conn(sh, old, SP_CLOSE_TAKEOVER);
	}
	return SP_CLOSE_NONE;
}

static enum sp_close_reason on_proven(void *ctx, struct sp_conn *c);

static enum sp_close_reason on_established(void *ctx, struct sp_conn *c)
{
	struct sp_shard *sh = ctx;

	sh->stats.handshakes++;
	SP_LOG(sh->log, SP_LOG_DEBUG, "handshake complete", SP_KV_UINT("conn", c->slot),
	       SP_KV_STR("pattern", c->pattern == SP_PREAMBLE_PATTERN_IK ? "IK" : "XX"));
	/* An IK connection is not routed until it is proven by its first
	 * authenticated transport message (on_proven): its message 1 may be a
	 * replay, and a replayer that got the route, even of an offline device,
	 * would take envelopes it cannot read (or push the live device out, again
	 * and again). Until then it stays on the handshake deadline. XX is proven
	 * by message 3. */
	if (!c->proven)
		return SP_CLOSE_NONE;
	return on_proven(ctx, c);
}

static enum sp_close_reason on_proven(void *ctx, struct sp_conn *c)
{
	struct sp_shard *sh = ctx;

	if (sh->cfg->idle_timeout_s)
		timer_set(&sh->idle_list, c, idle_deadline(sh));
	else
		sp_list_del(&c->timer);
	if (c->routed)
		return SP_CLOSE_NONE;
	return route_device(sh, c);
}

/* --- receive ---------------------------------------------------------------- */

static void touch(struct sp_shard *sh, struct sp_conn *c)
{
	if (c->state == SP_CONN_ESTABLISHED && c->proven && sh->cfg->idle_timeout_s)
		timer_set(&sh->idle_list, c, idle_deadline(sh));
}

static bool rearm_error(int res)
{
	return res == -ENOBUFS || res == -EAGAIN || res == -EINTR || res == -ECANCELED;
}

static void on_recv(struct sp_shard *sh, struct sp_conn *c, const struct io_uring_cqe *cqe, int bid)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;
	enum sp_close_reason r;

	if (!more)
		c->recv_armed = false;
	if (cqe->res > 0 && bid >= 0 && c->state != SP_CONN_DEAD) {
		touch(sh, c);
		r = sp_conn_rx(c, &sh->env, sp_bufring_addr(&sh->bufs, (uint16_t)bid),
			       (size_t)cqe->res);
		mark(sh, c);
		if (r)
			end_conn(sh, c, r);
	}
	if (c->state == SP_CONN_DEAD) {
		mark(sh, c);    /* finalize once the last request is in */
		return;
	}
	if (cqe->res == 0) {
		teardown(sh, c, SP_CLOSE_EOF);
	} else if (cqe->res < 0 && !rearm_error(cqe->res)) {
		teardown(sh, c, SP_CLOSE_IO);
	} else if (!more && arm_recv(sh, c)) {
		teardown(sh, c, SP_CLOSE_INTERNAL);
	}
}

static void on_send_cqe(struct sp_shard *sh, struct sp_conn *c, int res)
{
	c->send_inflight = false;
	mark(sh, c);
	if (c->state == SP_CONN_DEAD)
		return;
	if (res < 0) {
		teardown(sh, c, res == -ENOMEM ? SP_CLOSE_NOMEM : SP_CLOSE_IO);
		return;
	}
	/* A short send: the rest goes in the next one (flush_conn). */
	sp_conn_tx_sent(c, &sh->pool, (size_t)res);
}

static void on_shutdown_cqe(struct sp_shard *sh, struct sp_conn *c)
{
	c->shutdown_inflight = false;
	c->shut_wr = true;
	mark(sh, c);
}

/* --- timers and stop -------------------------------------------------------- */

static void expire(struct sp_shard *sh, struct sp_list *list, bool goaway,
		   enum sp_close_reason r)
{
	while (!sp_list_empty(list)) {
		struct sp_conn *c = timer_conn(list->next);

		if (c->deadline_ns > sh->now_ns)
			break;
		sp_list_del(&c->timer);
		if (goaway) {
			end_conn(sh, c, r);
			continue;
		}
		/* A GoAway'd peer that has not taken its output within the grace
		 * (a slow consumer, typically): reset, so neither our queue nor
		 * the kernel's keeps trickling to it. One whose output was all
		 * handed over (SHUT_WR done) gets an ordinary close. */
		if (c->state == SP_CONN_CLOSING && !c->shut_wr)
			c->abort_close = true;
		teardown(sh, c, r == SP_CLOSE_NONE ? c->close_reason : r);
	}
}

static void end_all(struct sp_shard *sh, bool force)
{
	for (uint32_t i = 0; i < sh->high_water; i++) {
		struct sp_conn *c = &sh->conns[i];

		if (c->state == SP_CONN_FREE || c->state == SP_CONN_DEAD)
			continue;
		if (force) {
			/* Undrained output is given up on: reset, as at a grace deadline. */
			if (c->state == SP_CONN_CLOSING && !c->shut_wr)
				c->abort_close = true;
			teardown(sh, c, SP_CLOSE_SHUTDOWN);
		}
		else
			end_conn(sh, c, SP_CLOSE_SHUTDOWN);
	}
}

static void arm_wake(struct sp_shard *sh)
{
	if (sp_ring_read(&sh->ring, sh->wake_fd, sh->wake_buf, sizeof(sh->wake_buf),
			 sp_ud_pack(SP_OP_WAKE, 0, 0)) == 0)
		sh->wake_armed = true;
}

static void on_wake(struct sp_shard *sh, int res)
{
	sh->wake_armed = false;
	if (res == -EAGAIN || res == -EINTR) {
		arm_wake(sh);
		return;
	}
	if (res < 0)    /* cannot tell a stop from a failure: stop, and say so */
		SP_LOG(sh->log, SP_LOG_ERROR, "stop descriptor failed", SP_KV_INT("errno", -res));
	if (sh->stopping) {
		/* A second signal: stop waiting for slow peers. */
		SP_LOG0(sh->log, SP_LOG_INFO, "second stop signal: closing all connections now");
		end_all(sh, true);
		return;
	}
	sh->stopping = true;
	sh->stop_deadline_ns = sh->now_ns +
			       (uint64_t)(sh->cfg->close_grace_ms + STOP_EXTRA_MS) * 1000000;
	SP_LOG(sh->log, SP_LOG_INFO, "shutting down", SP_KV_UINT("connections", sh->nconns),
	       SP_KV_UINT("shard", sh->id));
	if (sh->accept_armed) {
		struct io_uring_sqe *sqe = sp_ring_sqe(&sh->ring);

		if (sqe) {
			io_uring_prep_cancel64(sqe, sp_ud_pack(SP_OP_ACCEPT, 0, 0), 0);
			io_uring_sqe_set_data64(sqe, sp_ud_pack(SP_OP_CANCEL, 0, 0));
		}
	}
	end_all(sh, false);
	if (res >= 0)
		arm_wake(sh);
}

static void arm_tick(struct sp_shard *sh)
{
	sh->tick.tv_sec = 0;
	sh->tick.tv_nsec = TICK_MS * 1000000;
	sp_ring_timeout(&sh->ring, &sh->tick, sp_ud_pack(SP_OP_TICK, 0, 0));
}

static void on_tick(struct sp_shard *sh)
{
	expire(sh, &sh->hs_list, false, SP_CLOSE_HANDSHAKE_TIMEOUT);
	expire(sh, &sh->idle_list, true, SP_CLOSE_IDLE);
	expire(sh, &sh->closing_list, false, SP_CLOSE_NONE);
	if (sh->stopping && sh->now_ns >= sh->stop_deadline_ns)
		end_all(sh, true);
	arm_accept(sh);
	arm_tick(sh);
}

/* --- the loop --------------------------------------------------------------- */

static void on_cqe(struct sp_shard *sh, const struct io_uring_cqe *cqe)
{
	struct sp_ud ud = sp_ud_unpack(io_uring_cqe_get_data64(cqe));
	int bid = sp_cqe_bid(cqe);
	struct sp_conn *c;

	switch (ud.op) {
	case SP_OP_ACCEPT: on_accept_cqe(sh, cqe); break;
	case SP_OP_TICK: on_tick(sh); break;
	case SP_OP_WAKE: on_wake(sh, cqe->res); break;
	case SP_OP_RECV:
	case SP_OP_SEND:
	case SP_OP_SHUTDOWN:
		c = conn_at(sh, ud.slot, ud.gen);
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

	sh->now_ns = mono_ns();
	sh->hs_refill_ns = sh->now_ns;
	arm_accept(sh);
	arm_wake(sh);
	arm_tick(sh);
	while (!done(sh)) {
		ret = sp_ring_submit_wait(&sh->ring, 1);
		if (ret < 0) {
			SP_LOG(sh->log, SP_LOG_ERROR, "io_uring submit failed",
			       SP_KV_INT("errno", -ret));
			return ret;
		}
		sh->now_ns = mono_ns();
		n = 0;
		io_uring_for_each_cqe(&sh->ring.ring, head, cqe) {
			on_cqe(sh, cqe);
			n++;
		}
		io_uring_cq_advance(&sh->ring.ring, n);
		flush_all(sh);
	}
	return 0;
}

/* --- setup ------------------------------------------------------------------ */

int sp_shard_init(struct sp_shard *sh, uint8_t id, const struct sp_config *cfg,
		  const struct sp_log *log, const uint8_t *static_priv, int listen_fd, int wake_fd)
{
	int ret;

	memset(sh, 0, sizeof(*sh));
	sh->id = id;
	sh->cfg = cfg;
	sh->log = log;
	sh->listen_fd = listen_fd;
	sh->wake_fd = wake_fd;
	sp_list_init(&sh->hs_list);
	sp_list_init(&sh->idle_list);
	sp_list_init(&sh->closing_list);
	sp_txpool_init(&sh->pool, TXPOOL_KEEP);
	for (unsigned i = 0; i < SP_LIM_COUNT; i++)
		sp_log_limit_init(&sh->lim[i], cfg->log_rate, cfg->log_rate);
	sh->hs_tokens_milli = (uint64_t)cfg->handshake_rate * 1000;

	sh->conns = calloc(cfg->max_conns, sizeof(*sh->conns));
	sh->free_slots = malloc(cfg->max_conns * sizeof(*sh->free_slots));
	if (!sh->conns || !sh->free_slots) {
		ret = -ENOMEM;
		goto err;
	}
	/* Lowest slot first out: the working set of the table stays small. */
	for (uint32_t i = 0; i < cfg->max_conns; i++)
		sh->free_slots[i] = cfg->max_conns - 1 - i;
	sh->nfree = cfg->max_conns;

	ret = sp_route_create(&sh->routes, cfg->max_conns);
	if (ret)
		goto err;
	ret = sp_ring_init(&sh->ring, RING_ENTRIES);
	if (ret)
		goto err;
	ret = sp_bufring_init(&sh->bufs, &sh->ring, 0, cfg->recv_buffers, cfg->recv_buffer_size);
	if (ret)
		goto err;

	sh->env.static_priv = static_priv;
	sh->env.server_hello.protocol_version = SP_PROTOCOL_VERSION;
	sh->env.server_hello.max_envelope = cfg->max_envelope;
	sh->env.server_hello.max_transport = SP_TRANSPORT_PLAINTEXT_MAX;
	sh->env.pool = &sh->pool;
	sh->env.hooks.established = on_established;
	sh->env.hooks.proven = on_proven;
	sh->env.hooks.frame = on_frame;
	sh->env.hooks.ctx = sh;
	return 0;
err:
	sp_shard_destroy(sh);
	return ret;
}

void sp_shard_destroy(struct sp_shard *sh)
{
	if (sh->ring.ring.ring_fd > 0) {
		sp_bufring_exit(&sh->bufs, &sh->ring);
		/* Exiting the ring ends every request, so no send still reads a
		 * chunk when the chunks are freed below. */
		sp_ring_exit(&sh->ring);
	}
	if (sh->conns) {
		for (uint32_t i = 0; i < sh->high_water; i++) {
			struct sp_conn *c = &sh->conns[i];

			if (c->state == SP_CONN_FREE)
				continue;
			sp_conn_wipe(c);
			sp_conn_tx_release(c, &sh->pool);
			close(c->fd);
		}
	}
	if (sh->routes)
		sp_route_destroy(sh->routes);
	sp_txpool_destroy(&sh->pool);
	free(sh->conns);
	free(sh->free_slots);
	memset(sh, 0, sizeof(*sh));
}
