/*
 * sp_shard.c: the event loop of one shard, connection lifetime, routing and
 * mailboxes.
 *
 * Loop iteration: submit everything prepared and wait for one completion;
 * (1) handle every completion: input is decrypted and routed; durable
 * envelopes, acks and the expiry sweep go into the iteration's one store
 * batch, and envelopes for live recipients are encrypted into their open
 * outbound messages straight from the receive buffer; (2) commit the batch
 * (one WriteBatch, at most one fsync); (3) write the SendResults, now that
 * the commit's outcome is known, and let the backlog readers fill the queues
 * of devices still draining their mailbox; (4) flush: finish each touched
 * connection's open message, start its send, act on pending closes, and give
 * receive buffers back. Nothing reaches a socket before (2), so an ACCEPTED
 * or a Deliver never goes out for an envelope that is not stored. Many
 * envelopes arriving in one iteration for one device leave in one Noise
 * message and one send.
 *
 * Mailboxes, per routed connection (c->mbox): BACKLOG from routing until the
 * reader has sent every stored envelope (in seq order) and Drained{count};
 * then LIVE: a durable envelope is stored and delivered in the same
 * iteration with its seq. A LIVE device whose outbound queue is over
 * --sendq-max goes to CATCHUP: its envelopes are stored only and the reader
 * sends them from the first one it missed, as the queue drains (no Drained).
 * While a reader runs, nothing durable is delivered live, so a device never
 * sees seqs out of order. Acks delete entries of the connection's own device
 * only (the mailbox key is the proven static key).
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
#include "sp_detached.h"
#include "sp_store.h"

enum {
	TICK_MS = 100,                  /* timer resolution for every timeout */
	RING_ENTRIES = 4096,
	TXPOOL_KEEP = 256,              /* free tx chunks kept (~16 MiB) */
	STOP_EXTRA_MS = 1000,           /* after close_grace, before giving up on completions */
	EXPIRE_PER_TICK = 4096,         /* expiry index records swept per tick, at most */
	DRAIN_CONNS_PER_ITER = 64,      /* backlog readers served per iteration, at most */
};

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

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
	if (c->s.state == SP_SESSION_FREE || c->gen != gen)
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

/* The shard ends c at flush (GoAway for established ones); its session
 * reads no further input meanwhile. */
static void close_later(struct sp_conn *c, enum sp_close_reason r)
{
	c->close_reason = r;
	sp_session_halt(&c->s);
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

/* The metrics label of a close reason (same words as the log's reason=). */
static enum sp_metrics_close metrics_close(enum sp_close_reason r)
{
	static const enum sp_metrics_close map[SP_CLOSE_REASON_COUNT] = {
		[SP_CLOSE_NONE] = SP_METRICS_CLOSE_INTERNAL,
		[SP_CLOSE_EOF] = SP_METRICS_CLOSE_EOF,
		[SP_CLOSE_IO] = SP_METRICS_CLOSE_IO_ERROR,
		[SP_CLOSE_BAD_PREAMBLE] = SP_METRICS_CLOSE_BAD_PREAMBLE,
		[SP_CLOSE_BAD_LENGTH] = SP_METRICS_CLOSE_BAD_LENGTH,
		[SP_CLOSE_HANDSHAKE_FAILED] = SP_METRICS_CLOSE_HANDSHAKE_FAILED,
		[SP_CLOSE_HANDSHAKE_TIMEOUT] = SP_METRICS_CLOSE_HANDSHAKE_TIMEOUT,
		[SP_CLOSE_DECRYPT_FAILED] = SP_METRICS_CLOSE_DECRYPT_FAILED,
		[SP_CLOSE_PROTOCOL] = SP_METRICS_CLOSE_PROTOCOL,
		[SP_CLOSE_TAKEOVER] = SP_METRICS_CLOSE_TAKEOVER,
		[SP_CLOSE_SHUTDOWN] = SP_METRICS_CLOSE_SHUTDOWN,
		[SP_CLOSE_SLOW_CONSUMER] = SP_METRICS_CLOSE_SLOW_CONSUMER,
		[SP_CLOSE_IDLE] = SP_METRICS_CLOSE_IDLE,
		[SP_CLOSE_NOMEM] = SP_METRICS_CLOSE_NOMEM,
		[SP_CLOSE_INTERNAL] = SP_METRICS_CLOSE_INTERNAL,
	};

	return (unsigned)r < SP_CLOSE_REASON_COUNT ? map[r] : SP_METRICS_CLOSE_INTERNAL;
}

static enum sp_metrics_pattern metrics_pattern(const struct sp_conn *c)
{
	return c->s.pattern == SP_PREAMBLE_PATTERN_IK ? SP_METRICS_PATTERN_IK : SP_METRICS_PATTERN_XX;
}

/* Called exactly once per connection that was accepted (at its GoAway or its teardown). */
static void log_end(struct sp_shard *sh, const struct sp_conn *c, enum sp_close_reason r)
{
	struct end_log e = end_log_of(r);

	/* Ended mid-handshake: the pattern is known (the preamble was read), no split yet. */
	if (c->s.state == SP_SESSION_HANDSHAKE)
		sp_metrics_handshake(sh->metrics, metrics_pattern(c),
				     r == SP_CLOSE_HANDSHAKE_TIMEOUT ? SP_METRICS_OUTCOME_TIMEOUT
								     : SP_METRICS_OUTCOME_FAILED, 0);
	sp_metrics_conn_closed(sh->metrics, metrics_close(r));
	sh->stats.closed[r < SP_CLOSE_REASON_COUNT ? r : SP_CLOSE_INTERNAL]++;
	SP_LOG_LIMITED(sh->log, &sh->lim[r], sh->now_ns, e.level, e.msg,
		       SP_KV_STR("reason", sp_close_reason_name(r)),
		       SP_KV_STR("state", state_name(c->s.state)), SP_KV_UINT("conn", c->slot),
		       SP_KV_UINT("shard", sh->id));
}

/* --- connection lifetime ---------------------------------------------------- */

static void route_drop(struct sp_shard *sh, struct sp_conn *c)
{
	if (!c->routed)
		return;
	/* With the expected handle: after a takeover the route belongs to the
	 * new connection and this is a no-op (-ESTALE). */
	sp_route_remove(sh->routes, c->s.peer, conn_handle(sh, c));
	c->routed = false;
}

/* Ends a connection at once, without a reply. The slot is freed once no
 * request of it is in flight (finalize, from flush). */
static void teardown(struct sp_shard *sh, struct sp_conn *c, enum sp_close_reason r)
{
	if (c->s.state == SP_SESSION_DEAD || c->s.state == SP_SESSION_FREE)
		return;
	if (c->s.state != SP_SESSION_CLOSING)       /* else logged at its GoAway */
		log_end(sh, c, r);
	sp_list_del(&c->timer);
	sp_list_del(&c->drain);
	route_drop(sh, c);
	sp_session_wipe(&c->s);        /* DEAD */
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
	sp_session_release(&c->s);     /* FREE */
	c->fd = -1;
	c->gen++;       /* every completion or handle naming the old one is now stale */
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

	if (c->s.state != SP_SESSION_ESTABLISHED || goaway_code(r) == SP_STATUS_UNSPECIFIED) {
		teardown(sh, c, r);
		return;
	}
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_GOAWAY;
	f.u.goaway.code = goaway_code(r);
	if (sp_session_tx_frame(&c->s, &f, NULL, 0) || sp_session_tx_seal(&c->s)) {
		teardown(sh, c, r);
		return;
	}
	log_end(sh, c, r);
	route_drop(sh, c);
	sp_list_del(&c->drain);
	sp_session_end(&c->s);         /* CLOSING: input is discarded */
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

	if (c->send_inflight || !sp_session_tx_peek(&c->s, &p, &len))
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

	if (c->s.state != SP_SESSION_CLOSING || c->shut_wr || c->shutdown_inflight ||
	    c->send_inflight || sp_session_tx_peek(&c->s, &p, &len))
		return;
	if (sp_ring_shutdown_wr(&sh->ring, c->fd, sp_ud_pack(SP_OP_SHUTDOWN, c->slot, c->gen)) == 0)
		c->shutdown_inflight = true;
}

/* End of iteration for one touched connection. */
static void flush_conn(struct sp_shard *sh, struct sp_conn *c)
{
	if (c->s.state == SP_SESSION_DEAD) {
		if (!c->recv_armed && !c->send_inflight && !c->shutdown_inflight)
			finalize(sh, c);
		return;
	}
	if (c->s.state == SP_SESSION_ESTABLISHED && c->close_reason) {
		end_conn(sh, c, c->close_reason);
		if (c->s.state == SP_SESSION_DEAD)
			return;
	}
	if (sp_session_tx_seal(&c->s)) {
		teardown(sh, c, SP_CLOSE_INTERNAL);
		return;
	}
	/* Past the hard limit only by its own replies: it is not reading. */
	if (c->s.state == SP_SESSION_ESTABLISHED && sp_session_tx_queued(&c->s) > sp_config_sendq_hard(sh->cfg))
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
	SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_PEER_DEBUG], sh->now_ns, SP_LOG_DEBUG,
		       "connection accepted", SP_KV_UINT("conn", c->slot),
		       SP_KV_STR("peer", host), SP_KV_UINT("port", port));
}

static void on_accept(struct sp_shard *sh, int fd)
{
	struct sp_conn *c;
	uint32_t slot;
	int one = 1;

	if (sh->stopping) {
		close(fd);
		sp_metrics_conn_refused(sh->metrics, SP_METRICS_CLOSE_SHUTDOWN);
		return;
	}
	if (sh->nfree == 0) {
		refuse(sh, fd, "max_conns", &sh->stats.refused_max_conns);
		sp_metrics_conn_refused(sh->metrics, SP_METRICS_CLOSE_MAX_CONNS);
		return;
	}
	if (!take_token(sh)) {
		refuse(sh, fd, "handshake_rate", &sh->stats.refused_rate);
		sp_metrics_conn_refused(sh->metrics, SP_METRICS_CLOSE_HANDSHAKE_RATE);
		return;
	}
	slot = sh->free_slots[--sh->nfree];
	if (slot >= sh->high_water)
		sh->high_water = slot + 1;
	c = &sh->conns[slot];
	sp_conn_open(c, fd, slot, &sh->env);
	sh->nconns++;
	sh->stats.accepted++;
	sp_metrics_conn_accepted(sh->metrics);
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
	int ret = sp_session_tx_frame(&c->s, f, NULL, 0);

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
	return rc && rc->s.state == SP_SESSION_ESTABLISHED ? rc : NULL;
}

/* Deliver{seq} + body into the recipient's open outbound message, encrypted
 * straight from body (borrowed for the call: the receive buffer, or the
 * store's read buffer). */
static int deliver_frame(struct sp_shard *sh, struct sp_conn *rc, uint64_t seq,
			 const uint8_t *body, size_t body_len)
{
	struct sp_frame d;
	int ret;

	memset(&d, 0, sizeof(d));
	d.type = SP_FRAME_DELIVER;
	d.u.deliver.seq = seq;
	ret = sp_session_tx_frame(&rc->s, &d, body, body_len);
	mark(sh, rc);
	/* Its outbound stream may be half-written: that connection ends. */
	if (ret && ret != -ENOMEM && !rc->close_reason)
		close_later(rc, SP_CLOSE_INTERNAL);
	return ret;
}

/* An online-only envelope (never stored): Deliver.seq 0. */
static enum sp_status deliver_online(struct sp_shard *sh, struct sp_conn *rc,
				     const struct sp_frame *send)
{
	if (sp_session_tx_queued(&rc->s) > sh->cfg->sendq_max)
		return SP_STATUS_ERR_RECIPIENT_BUSY;
	if (deliver_frame(sh, rc, 0, send->body, send->body_len))
		return SP_STATUS_ERR_INTERNAL;
	sh->stats.delivered++;
	sh->live_delivered++;   /* timed when this iteration's sends are submitted */
	return SP_STATUS_DELIVERED;
}

/* Starts (or restarts) the backlog reader of c at seq from. */
static void reader_start(struct sp_shard *sh, struct sp_conn *c, enum sp_mbox_mode mode,
			 uint64_t from)
{
	c->mbox = (uint8_t)mode;
	c->mbox_from = from;
	if (!sp_list_linked(&c->drain))
		sp_list_add_tail(&sh->drain_list, &c->drain);
}

/* The iteration's store batch, begun on first use; NULL if there is no store
 * or it refuses writes (then the caller answers ERR_INTERNAL). */
/* Entries and bytes the store has removed (acks, expiry) since it opened. */
static void removed_so_far(struct sp_shard *sh, uint64_t *entries, uint64_t *bytes)
{
	struct sp_store_stats ss;

	sp_store_get_stats(sh->store, &ss);
	*entries = ss.acked + ss.expired;
	*bytes = ss.acked_bytes + ss.expired_bytes;
}

static struct sp_store_batch *batch(struct sp_shard *sh)
{
	int ret;

	if (sh->batch || !sh->store)
		return sh->batch;
	ret = sp_store_batch_begin(sh->store, sh->wall_ms, &sh->batch);
	if (ret == 0) {
		removed_so_far(sh, &sh->rm_entries0, &sh->rm_bytes0);
	} else {
		sh->batch = NULL;
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "mailbox store refuses writes", SP_KV_STR("error", strerror(-ret)),
			       SP_KV_STR("detail", sp_store_errmsg(sh->store)));
	}
	return sh->batch;
}

/*
 * A durable envelope: into the recipient's mailbox in this iteration's batch,
 * and onto its live connection at once if it has one in LIVE mode. *durable
 * is set when the status depends on the commit.
 */
static enum sp_status store_envelope(struct sp_shard *sh, struct sp_conn *c,
				     const struct sp_frame *f, uint64_t *seq, bool *durable)
{
	struct sp_store_envelope env = {
		.recipient = f->u.send.to,
		.sender = c->s.peer,
		.client_id = f->u.send.client_id,
		.body = f->body,
		.body_len = f->body_len,
	};
	struct sp_store_batch *b = batch(sh);
	struct sp_conn *rc;
	int ret;

	if (!b) {
		sh->stats.store_errors++;
		return SP_STATUS_ERR_INTERNAL;
	}
	ret = sp_store_enqueue(b, &env, seq);
	if (ret == SP_STORE_DUPLICATE) {
		/* Stored (or acked) already: the original seq, no second copy and
		 * no second delivery. Its record may be in this very batch, so the
		 * answer too waits for the commit. */
		sh->stats.duplicates++;
		*durable = true;
		return SP_STATUS_ACCEPTED;
	}
	if (ret == -EDQUOT) {
		sh->stats.mailbox_full++;
		return SP_STATUS_ERR_MAILBOX_FULL;
	}
	if (ret < 0) {
		*seq = 0;
		sh->stats.store_errors++;
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "mailbox write failed", SP_KV_STR("error", strerror(-ret)),
			       SP_KV_STR("detail", sp_store_errmsg(sh->store)));
		return SP_STATUS_ERR_INTERNAL;
	}
	*durable = true;
	sh->it_entries++;
	sh->it_bytes += (int64_t)f->body_len;
	rc = recipient(sh, f->u.send.to);
	if (rc && rc->mbox == SP_MBOX_LIVE) {
		/* A full queue: the store keeps it, the reader sends it (and
		 * whatever follows) once the queue has room, in order. */
		if (sp_session_tx_queued(&rc->s) > sh->cfg->sendq_max)
			reader_start(sh, rc, SP_MBOX_CATCHUP, *seq);
		else if (deliver_frame(sh, rc, *seq, f->body, f->body_len) == 0) {
			sh->stats.delivered++;
			sh->live_delivered++;   /* timed at the flush */
		}
	}
	return SP_STATUS_ACCEPTED;
}

/* Every SendResult of the iteration waits for the commit (see the top), in
 * arrival order per connection. -ENOMEM if it cannot be queued. */
static int queue_result(struct sp_shard *sh, const struct sp_conn *c, uint64_t client_id,
			enum sp_status st, uint64_t seq, bool durable)
{
	struct sp_pending_result *r;

	if (sh->nresults == sh->results_cap) {
		size_t ncap = sh->results_cap ? sh->results_cap * 2 : 256;
		struct sp_pending_result *n = realloc(sh->results, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		sh->results = n;
		sh->results_cap = ncap;
	}
	r = &sh->results[sh->nresults++];
	r->slot = c->slot;
	r->gen = c->gen;
	r->client_id = client_id;
	r->seq = seq;
	r->status = (uint8_t)st;
	r->durable = durable;
	return 0;
}

static enum sp_close_reason on_send(struct sp_shard *sh, struct sp_conn *c,
				    const struct sp_frame *f)
{
	struct sp_conn *rc;
	enum sp_status st;
	uint64_t seq = 0;
	bool durable = false;

	sh->stats.sends++;
	if (!f->u.send.to_ok || !sp_noise_key_valid(f->u.send.to))
		st = SP_STATUS_ERR_BAD_RECIPIENT;
	else if (f->body_len > sh->cfg->max_envelope)
		st = SP_STATUS_ERR_TOO_LARGE;
	else if (f->u.send.flags & SP_SEND_ONLINE_ONLY)
		/* Never stored, not ordered with stored envelopes: straight to a
		 * live connection, whatever its mailbox mode. */
		st = (rc = recipient(sh, f->u.send.to)) ? deliver_online(sh, rc, f)
							: SP_STATUS_ERR_OFFLINE;
	else
		st = store_envelope(sh, c, f, &seq, &durable);
	if (st != SP_STATUS_ACCEPTED && st != SP_STATUS_DELIVERED)
		seq = 0;
	if (queue_result(sh, c, f->u.send.client_id, st, seq, durable))
		return SP_CLOSE_NOMEM;
	return SP_CLOSE_NONE;
}

/* Ack{seqs}: deletes entries of c's own device only; unknown seqs are ignored. */
static void on_ack(struct sp_shard *sh, struct sp_conn *c, const struct sp_frame *f)
{
	struct sp_store_batch *b;
	uint32_t unknown = 0;

	if (f->u.ack.count == 0 || !(b = batch(sh)))
		return;
	for (uint32_t i = 0; i < f->u.ack.count && i < SP_ACK_SEQS_MAX; i++) {
		int ret = sp_store_ack(b, c->s.peer, f->u.ack.seqs[i]);

		if (ret == 0) {
			sh->stats.acks++;
			sp_metrics_acks(sh->metrics, 1);  /* the gauges follow at commit */
		} else if (ret == -ENOENT) {
			unknown++;
		} else {
			SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
				       "mailbox ack failed", SP_KV_STR("error", strerror(-ret)),
				       SP_KV_STR("detail", sp_store_errmsg(sh->store)));
			break;
		}
	}
	if (unknown) {
		sh->stats.acks_unknown += unknown;
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_PEER_DEBUG], sh->now_ns, SP_LOG_DEBUG,
		       "ack for seqs not in the mailbox ignored",
		       SP_KV_UINT("count", unknown), SP_KV_UINT("conn", c->slot));
	}
}

static enum sp_close_reason frame(struct sp_shard *sh, struct sp_conn *c, const struct sp_frame *f)
{
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
		on_ack(sh, c, f);
		return SP_CLOSE_NONE;
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

	ret = sp_route_insert(sh->routes, c->s.peer, conn_handle(sh, c), &prev);
	if (ret < 0)
		return SP_CLOSE_NOMEM;
	c->routed = true;
	if (ret == 1 && sp_handle_shard(prev) == sh->id &&
	    (old = conn_at(sh, sp_handle_slot(prev), sp_handle_gen(prev))) && old != c) {
		/* The device connected again: the newest proven connection wins.
		 * The old one's GoAway is written at flush, after the SendResults of
		 * its last Sends; whatever it did not ack is in the new one's
		 * backlog. */
		old->routed = false;    /* the route is the new one's now */
		sp_list_del(&old->drain);
		old->mbox = SP_MBOX_NONE;
		if (old->s.state == SP_SESSION_ESTABLISHED) {
			if (!old->close_reason)
				close_later(old, SP_CLOSE_TAKEOVER);
			mark(sh, old);
		} else {
			end_conn(sh, old, SP_CLOSE_TAKEOVER);
		}
	}
	/* The backlog first (the reader runs after this iteration's commit, so it
	 * also sees what this iteration stores for the device), then live. */
	c->mbox_count = 0;
	reader_start(sh, c, SP_MBOX_BACKLOG, 0);
	return SP_CLOSE_NONE;
}

static enum sp_close_reason proven(struct sp_shard *sh, struct sp_conn *c);

static enum sp_close_reason established(struct sp_shard *sh, struct sp_conn *c)
{

	sh->stats.handshakes++;
	/* Still on the handshake deadline: accept time + handshake_timeout. */
	sp_metrics_handshake(sh->metrics, metrics_pattern(c), SP_METRICS_OUTCOME_OK,
			     sh->now_ns - (c->deadline_ns -
					   (uint64_t)sh->cfg->handshake_timeout_ms * 1000000));
	SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_PEER_DEBUG], sh->now_ns, SP_LOG_DEBUG,
		       "handshake complete", SP_KV_UINT("conn", c->slot),
		       SP_KV_STR("pattern", c->s.pattern == SP_PREAMBLE_PATTERN_IK ? "IK" : "XX"));
	/* An IK connection is not routed until it is proven by its first
	 * authenticated transport message (proven): its message 1 may be a
	 * replay, and a replayer that got the route, even of an offline device,
	 * would take envelopes it cannot read (or push the live device out, again
	 * and again). Until then it stays on the handshake deadline. XX is proven
	 * by message 3. */
	if (!c->s.proven)
		return SP_CLOSE_NONE;
	return proven(sh, c);
}

static enum sp_close_reason proven(struct sp_shard *sh, struct sp_conn *c)
{

	if (sh->cfg->idle_timeout_s)
		timer_set(&sh->idle_list, c, idle_deadline(sh));
	else
		sp_list_del(&c->timer);
	if (c->routed)
		return SP_CLOSE_NONE;
	return route_device(sh, c);
}

/* The session's hooks: ctx is the shard, the session is a connection's. */
static enum sp_close_reason on_established(void *ctx, struct sp_session *s)
{
	return established(ctx, sp_conn_of(s));
}

static enum sp_close_reason on_proven(void *ctx, struct sp_session *s)
{
	return proven(ctx, sp_conn_of(s));
}

static enum sp_close_reason on_frame(void *ctx, struct sp_session *s, const struct sp_frame *f)
{
	return frame(ctx, sp_conn_of(s), f);
}

/* --- mailboxes after the commit ------------------------------------------- */

/* (2) of the loop: one WriteBatch, one sync per --fsync. Returns the commit's
 * result (0 if nothing was written). */
static int commit(struct sp_shard *sh)
{
	uint64_t rm_entries, rm_bytes;
	int ret;

	if (!sh->batch)
		return 0;
	ret = sp_store_batch_commit(sh->batch);
	sh->batch = NULL;
	if (ret == 0) {
		sh->stats.commits++;
		/* The mailbox gauges move only with what is on disk. */
		removed_so_far(sh, &rm_entries, &rm_bytes);
		sp_metrics_mailbox_add(sh->metrics,
				       sh->it_entries - (int64_t)(rm_entries - sh->rm_entries0),
				       sh->it_bytes - (int64_t)(rm_bytes - sh->rm_bytes0));
	} else {
		sh->stats.commit_failures++;
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "mailbox commit failed: envelopes of this iteration refused",
			       SP_KV_STR("error", strerror(-ret)),
			       SP_KV_STR("detail", sp_store_errmsg(sh->store)));
	}
	sh->it_entries = sh->it_bytes = 0;
	return ret;
}

/* (3a): the SendResults, with ERR_INTERNAL for durable envelopes whose
 * commit failed. Connections gone or closing meanwhile get none (their
 * GoAway was the last frame). */
static void send_results(struct sp_shard *sh, int commit_ret)
{
	struct sp_frame res;

	for (size_t i = 0; i < sh->nresults; i++) {
		const struct sp_pending_result *r = &sh->results[i];
		struct sp_conn *c = conn_at(sh, r->slot, r->gen);
		enum sp_close_reason why;

		/* Counted whether or not the sender is still there to hear it:
		 * every Send ends in exactly one of accepted or refused. */
		if (r->durable && commit_ret)
			sp_metrics_envelope_refused(sh->metrics, SP_STATUS_ERR_INTERNAL);
		else if (r->status == SP_STATUS_ACCEPTED || r->status == SP_STATUS_DELIVERED)
			sp_metrics_envelope_accepted(sh->metrics);
		else
			sp_metrics_envelope_refused(sh->metrics, (enum sp_status)r->status);
		if (!c || c->s.state != SP_SESSION_ESTABLISHED)
			continue;
		memset(&res, 0, sizeof(res));
		res.type = SP_FRAME_SEND_RESULT;
		res.u.send_result.client_id = r->client_id;
		res.u.send_result.status = (enum sp_status)r->status;
		res.u.send_result.seq = r->seq;
		if (r->durable && commit_ret) {
			res.u.send_result.status = SP_STATUS_ERR_INTERNAL;
			res.u.send_result.seq = 0;
			sh->stats.store_errors++;
		} else if (r->status == SP_STATUS_ACCEPTED) {
			sh->stats.accepted_env++;
		}
		why = reply(sh, c, &res);
		if (why && !c->close_reason)
			close_later(c, why);
	}
	sh->nresults = 0;
}

/* (3b) for one connection: one bounded chunk of its mailbox, if its queue
 * has room; at the end, Drained (BACKLOG) and live mode. */
static void read_backlog(struct sp_shard *sh, struct sp_conn *c)
{
	struct sp_store_read_result res;
	uint64_t room, bytes;
	struct sp_frame d;
	int ret;

	if (c->s.state != SP_SESSION_ESTABLISHED || c->close_reason) {
		sp_list_del(&c->drain);
		return;
	}
	/* Paced by the outbound queue: read only while it is below half its
	 * limit, and at most what fits below the limit. */
	room = sh->cfg->sendq_max / 2;
	if (sp_session_tx_queued(&c->s) >= room)
		return;
	bytes = room - sp_session_tx_queued(&c->s);
	ret = sp_store_read(sh->store, c->s.peer, c->mbox_from, sh->wall_ms, sh->cfg->backlog_chunk,
			    bytes, sh->items, &res);
	if (ret) {
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "mailbox read failed", SP_KV_STR("error", strerror(-ret)),
			       SP_KV_STR("detail", sp_store_errmsg(sh->store)));
		close_later(c, SP_CLOSE_INTERNAL);    /* it reconnects and reads again */
		mark(sh, c);
		return;
	}
	if (res.skipped_corrupt) {
		sh->stats.corrupt_skipped += res.skipped_corrupt;
		/* No key, no seq: only that a device's mailbox held damaged values. */
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_WARN,
			       "corrupt mailbox values skipped",
			       SP_KV_UINT("count", res.skipped_corrupt));
	}
	for (size_t i = 0; i < res.count; i++) {
		const struct sp_store_item *it = &sh->items[i];

		if (deliver_frame(sh, c, it->seq, it->body, it->body_len))
			return;         /* the connection ends; the next one reads again */
		c->mbox_from = it->seq + 1;
		c->mbox_count++;
		sh->stats.backlog_delivered++;
		/* Wall clock (stored acceptance time); 0 if the clock stepped back. */
		sp_metrics_envelope_delivered(sh->metrics, SP_METRICS_PATH_MAILBOX,
					      sh->wall_ms > it->accepted_ms ?
					      (sh->wall_ms - it->accepted_ms) * 1000000 : 0);
	}
	if (res.next_seq > c->mbox_from)
		c->mbox_from = res.next_seq;    /* past skipped (expired, corrupt) entries */
	mark(sh, c);
	if (!res.end)
		return;
	sp_list_del(&c->drain);
	if (c->mbox == SP_MBOX_BACKLOG) {
		memset(&d, 0, sizeof(d));
		d.type = SP_FRAME_DRAINED;
		d.u.drained.count = c->mbox_count;
		if (reply(sh, c, &d) && !c->close_reason)
			close_later(c, SP_CLOSE_INTERNAL);
	}
	c->mbox = SP_MBOX_LIVE;
}

/* (3b): a bounded number of readers per iteration, round robin. */
static void run_readers(struct sp_shard *sh)
{
	struct sp_list *n;
	unsigned served = 0;

	if (!sh->store) {
		/* No mailboxes: an empty backlog for everyone. */
		while (!sp_list_empty(&sh->drain_list)) {
			struct sp_conn *c = (struct sp_conn *)((char *)sh->drain_list.next -
							       offsetof(struct sp_conn, drain));
			struct sp_frame d = { .type = SP_FRAME_DRAINED };

			sp_list_del(&c->drain);
			if (c->mbox == SP_MBOX_BACKLOG && c->s.state == SP_SESSION_ESTABLISHED)
				reply(sh, c, &d);
			c->mbox = SP_MBOX_LIVE;
		}
		return;
	}
	while (!sp_list_empty(&sh->drain_list) && served < DRAIN_CONNS_PER_ITER) {
		struct sp_conn *c;

		n = sh->drain_list.next;
		c = (struct sp_conn *)((char *)n - offsetof(struct sp_conn, drain));
		/* To the tail first: read_backlog may unlink it for good. */
		sp_list_del(n);
		sp_list_add_tail(&sh->drain_list, n);
		read_backlog(sh, c);
		served++;
	}
}

/* --- receive ---------------------------------------------------------------- */

static void touch(struct sp_shard *sh, struct sp_conn *c)
{
	if (c->s.state == SP_SESSION_ESTABLISHED && c->s.proven && sh->cfg->idle_timeout_s)
		timer_set(&sh->idle_list, c, idle_deadline(sh));
}

/* One receive of len bytes on c (data: borrowed for the call). */
static enum sp_close_reason rx(struct sp_shard *sh, struct sp_conn *c, uint8_t *data, size_t len)
{
	enum sp_close_reason r;

	touch(sh, c);
	r = sp_session_rx(&c->s, data, len);
	mark(sh, c);
	return r;
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
	if (cqe->res > 0)
		sp_metrics_bytes_received(sh->metrics, (uint64_t)cqe->res);
	if (cqe->res > 0 && bid >= 0 && c->s.state != SP_SESSION_DEAD) {
		r = rx(sh, c, sp_bufring_addr(&sh->bufs, (uint16_t)bid), (size_t)cqe->res);
		/* A GoAway waits for flush, so the SendResults of the Sends before
		 * the bad frame (written after the commit) precede it. */
		if (r && c->s.state == SP_SESSION_ESTABLISHED && goaway_code(r) != SP_STATUS_UNSPECIFIED)
			close_later(c, r);
		else if (r)
			end_conn(sh, c, r);
	}
	if (c->s.state == SP_SESSION_DEAD) {
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
	if (res > 0)
		sp_metrics_bytes_sent(sh->metrics, (uint64_t)res);
	mark(sh, c);
	if (c->s.state == SP_SESSION_DEAD)
		return;
	if (res < 0) {
		teardown(sh, c, res == -ENOMEM ? SP_CLOSE_NOMEM : SP_CLOSE_IO);
		return;
	}
	/* A short send: the rest goes in the next one (flush_conn). */
	sp_session_tx_sent(&c->s, (size_t)res);
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
		if (c->s.state == SP_SESSION_CLOSING && !c->shut_wr)
			c->abort_close = true;
		teardown(sh, c, r == SP_CLOSE_NONE ? c->close_reason : r);
	}
}

static void end_all(struct sp_shard *sh, bool force)
{
	for (uint32_t i = 0; i < sh->high_water; i++) {
		struct sp_conn *c = &sh->conns[i];

		if (c->s.state == SP_SESSION_FREE || c->s.state == SP_SESSION_DEAD)
			continue;
		if (force) {
			/* Undrained output is given up on: reset, as at a grace deadline. */
			if (c->s.state == SP_SESSION_CLOSING && !c->shut_wr)
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

/* Mailbox housekeeping: --fsync batch's periodic fsync, and a bounded step
 * of the expiry sweep (committed with the iteration's batch). */
static void store_tick(struct sp_shard *sh)
{
	struct sp_store_batch *b;
	size_t expired = 0;
	int ret;

	if (!sh->store)
		return;
	ret = sp_store_tick(sh->store, sh->wall_ms);
	if (ret < 0)
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "mailbox fsync failed", SP_KV_STR("error", strerror(-ret)),
			       SP_KV_STR("detail", sp_store_errmsg(sh->store)));
	if (!(b = batch(sh)))
		return;
	ret = sp_store_expire(b, EXPIRE_PER_TICK, &expired);
	sh->sweep_more = ret == 1;
	if (ret < 0)
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "mailbox expiry sweep failed", SP_KV_STR("error", strerror(-ret)),
			       SP_KV_STR("detail", sp_store_errmsg(sh->store)));
	if (expired) {
		sh->stats.expired += expired;
		sp_metrics_expired(sh->metrics, expired);  /* the gauges follow at commit */
	}
}

static void on_tick(struct sp_shard *sh)
{
	store_tick(sh);
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

/* (2) and (3) of the loop, after the iteration's completions. */
static void after_completions(struct sp_shard *sh)
{
	send_results(sh, commit(sh));
	run_readers(sh);
}

/* The end of an iteration, after (4): n completions handled. */
static void iteration_metrics(struct sp_shard *sh, uint64_t n)
{
	sp_metrics_loop_iteration(sh->metrics, n);
	if (sh->live_delivered) {
		/* Received at now_ns, encrypted and queued to the kernel by now. */
		sp_metrics_envelopes_delivered(sh->metrics, SP_METRICS_PATH_LIVE,
					       sh->live_delivered, mono_ns() - sh->now_ns);
		sh->live_delivered = 0;
	}
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
	if (sh->store) {
		uint64_t entries, bytes;

		/* What the mailboxes held at start: the gauges' base (one store,
		 * one shard; with more shards, the shard owning the store). */
		if (sp_store_totals(sh->store, &entries, &bytes) == 0)
			sp_metrics_mailbox_add(sh->metrics, (int64_t)entries, (int64_t)bytes);
	}
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
		sh->wall_ms = wall_ms();
		n = 0;
		io_uring_for_each_cqe(&sh->ring.ring, head, cqe) {
			on_cqe(sh, cqe);
			n++;
		}
		io_uring_cq_advance(&sh->ring.ring, n);
		after_completions(sh);
		flush_all(sh);
		iteration_metrics(sh, n);
	}
	return 0;
}

/* --- setup ------------------------------------------------------------------ */

/* Everything of sp_shard_init but the ring, the buffer ring and the sockets.
 * On failure the caller calls sp_shard_destroy. */
static int init_tables(struct sp_shard *sh, uint8_t id, const struct sp_config *cfg,
		       const struct sp_log *log, const uint8_t *static_priv)
{
	int ret;

	sh->id = id;
	sh->cfg = cfg;
	sh->log = log;
	sp_list_init(&sh->hs_list);
	sp_list_init(&sh->idle_list);
	sp_list_init(&sh->closing_list);
	sp_list_init(&sh->drain_list);
	sp_txpool_init(&sh->pool, TXPOOL_KEEP);
	for (unsigned i = 0; i < SP_LIM_COUNT; i++)
		sp_log_limit_init(&sh->lim[i], cfg->log_rate, cfg->log_rate);
	sh->hs_tokens_milli = (uint64_t)cfg->handshake_rate * 1000;
	/* A private metrics slot until the daemon points sh->metrics at its own. */
	sh->own_metrics = aligned_alloc(_Alignof(struct sp_metrics_shard),
					sizeof(struct sp_metrics_shard));
	if (!sh->own_metrics)
		return -ENOMEM;
	memset(sh->own_metrics, 0, sizeof(*sh->own_metrics));
	sh->metrics = sh->own_metrics;

	sh->conns = calloc(cfg->max_conns, sizeof(*sh->conns));
	sh->free_slots = malloc(cfg->max_conns * sizeof(*sh->free_slots));
	sh->items = calloc(cfg->backlog_chunk ? cfg->backlog_chunk : 1, sizeof(*sh->items));
	if (!sh->conns || !sh->free_slots || !sh->items)
		return -ENOMEM;
	/* Lowest slot first out: the working set of the table stays small. */
	for (uint32_t i = 0; i < cfg->max_conns; i++)
		sh->free_slots[i] = cfg->max_conns - 1 - i;
	sh->nfree = cfg->max_conns;

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
	sh->env.pool = &sh->pool;
	sh->env.hooks.established = on_established;
	sh->env.hooks.proven = on_proven;
	sh->env.hooks.frame = on_frame;
	sh->env.hooks.ctx = sh;
	return 0;
}

int sp_shard_init(struct sp_shard *sh, uint8_t id, const struct sp_config *cfg,
		  const struct sp_log *log, const uint8_t *static_priv, int listen_fd, int wake_fd)
{
	int ret;

	memset(sh, 0, sizeof(*sh));
	sh->listen_fd = listen_fd;
	sh->wake_fd = wake_fd;
	ret = init_tables(sh, id, cfg, log, static_priv);
	if (ret)
		goto err;
	ret = sp_ring_init(&sh->ring, RING_ENTRIES);
	if (ret)
		goto err;
	ret = sp_bufring_init(&sh->bufs, &sh->ring, 0, cfg->recv_buffers, cfg->recv_buffer_size);
	if (ret)
		goto err;
	return 0;
err:
	sp_shard_destroy(sh);
	return ret;
}

/* --- detached: the per-envelope path without a ring (sp_detached.h) --- */

int sp_shard_init_detached(struct sp_shard *sh, uint8_t id, const struct sp_config *cfg,
			   const struct sp_log *log, const uint8_t *static_priv)
{
	int ret;

	memset(sh, 0, sizeof(*sh));
	sh->listen_fd = sh->wake_fd = -1;
	ret = init_tables(sh, id, cfg, log, static_priv);
	if (ret)
		sp_shard_destroy(sh);
	return ret;
}

struct sp_conn *sp_shard_conn_add(struct sp_shard *sh)
{
	struct sp_conn *c;
	uint32_t slot;

	if (sh->nfree == 0)
		return NULL;
	/* on_accept's slot and handshake deadline, without the socket. */
	slot = sh->free_slots[--sh->nfree];
	if (slot >= sh->high_water)
		sh->high_water = slot + 1;
	c = &sh->conns[slot];
	sp_conn_open(c, -1, slot, &sh->env);
	sh->nconns++;
	timer_set(&sh->hs_list, c, sh->now_ns + (uint64_t)sh->cfg->handshake_timeout_ms * 1000000);
	return c;
}

enum sp_close_reason sp_shard_conn_route(struct sp_shard *sh, struct sp_conn *c)
{
	return proven(sh, c);
}

void sp_shard_begin_iteration(struct sp_shard *sh)
{
	sh->now_ns = mono_ns();
	sh->wall_ms = wall_ms();
}

enum sp_close_reason sp_shard_feed(struct sp_shard *sh, struct sp_conn *c, uint8_t *data,
				   size_t len)
{
	sp_metrics_bytes_received(sh->metrics, len);
	return rx(sh, c, data, len);
}

int sp_shard_end_iteration(struct sp_shard *sh, uint64_t ncqe, sp_shard_take_fn take, void *ctx)
{
	int ret = 0;

	after_completions(sh);
	/* flush_all without the socket calls: a connection that flush_conn would
	 * end is an error here (nothing in a benchmark should end one). */
	while (sh->dirty) {
		struct sp_conn *c = sh->dirty;

		sh->dirty = c->dirty_next;
		c->dirty_next = NULL;
		c->dirty = false;
		if (c->s.state != SP_SESSION_ESTABLISHED || c->close_reason || sp_session_tx_seal(&c->s) ||
		    sp_session_tx_queued(&c->s) > sp_config_sendq_hard(sh->cfg)) {
			ret = -EIO;
			continue;
		}
		take(ctx, c);
	}
	iteration_metrics(sh, ncqe);
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
	ret = sp_store_open(out, &sc, err, sizeof(err));
	if (ret) {
		SP_LOG(log, SP_LOG_ERROR, "cannot open the mailbox store", SP_KV_STR("path", dir),
		       SP_KV_STR("error", strerror(-ret)), SP_KV_STR("detail", err));
		return ret;
	}
	SP_LOG(log, SP_LOG_INFO, "mailbox store open", SP_KV_STR("path", dir),
	       SP_KV_STR("fsync", modes[sc.sync]), SP_KV_UINT("max_count", sc.quota_count),
	       SP_KV_UINT("max_bytes", sc.quota_bytes), SP_KV_UINT("ttl_s", cfg->ttl_s),
	       SP_KV_UINT("dedup_window_s", cfg->dedup_window_s));
	return 0;
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

			if (c->s.state == SP_SESSION_FREE)
				continue;
			sp_session_release(&c->s);
			close(c->fd);
		}
	}
	if (sh->routes)
		sp_route_destroy(sh->routes);
	sp_txpool_destroy(&sh->pool);
	free(sh->conns);
	free(sh->free_slots);
	free(sh->items);
	free(sh->results);
	free(sh->own_metrics);
	memset(sh, 0, sizeof(*sh));
}
