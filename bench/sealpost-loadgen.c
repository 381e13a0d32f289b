/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sealpost-loadgen: a swarm of sealpost devices against one broker.
 *
 * Each device is one TCP connection with its own fresh X25519 key pair and an
 * IK handshake (the broker's key is known), driven by ONE io_uring per worker
 * process: connect, send and a multishot receive per connection, receives
 * landing in a provided-buffer ring so an idle connection holds no receive
 * buffer. Envelopes due in one loop iteration for one connection are
 * coalesced into one transport message (one AEAD, one send), as a real
 * client library does. When, what and how much is decided by bench/loadgen/
 * lg.c, shared with the MQTT and NATS load generators.
 *
 * The protocol is lib/session's sans-I/O engine in the initiator role, the
 * same engine the broker's connections and libsealpost run: this file only
 * moves bytes between the ring and each connection's struct sp_session and
 * reacts to its hooks. It includes nothing from broker/ (its ring helpers
 * below are its own, on liburing directly) and links sp_session and
 * liburing only; tests/layering checks both. Not on libsealpost itself: the
 * library is one blocking-or-polled client per connection, while a load
 * generator needs thousands of connections on one ring.
 *
 * Secrets: device private keys are throwaway benchmark keys generated for
 * the run (in the parent, before fork, so every worker can address any
 * device); they are wiped at exit and never printed. Each session's keys
 * are wiped when its connection ends (sp_session_wipe).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>
#include <sodium.h>

#include "lg.h"
#include "sp_frame.h"
#include "sp_keyfile.h"
#include "sp_limits.h"
#include "sp_noise.h"
#include "sp_seal.h"
#include "sp_session.h"

enum {
	RING_ENTRIES = 4096,
	RECV_BUFFERS = 2048,            /* provided buffers per worker */
	RECV_BUFFER_SIZE = 16384,
	BGID = 7,
	CONNECT_ATTEMPTS = 3,
	STOP_QUIET_MS = 250,            /* after the window: no delivery for this long = done */
	READY_PING_ID = 0x5e41,         /* the Ping whose Pong completes connect-up */
	SEND_BURST = 1024,              /* envelopes queued per loop turn, at most */
	/* Free tx chunks a worker keeps (each ~66 KiB of address space, only
	 * the pages written are resident): enough for one turn's sends. */
	TXPOOL_KEEP = 1024,
};

enum op { OP_CONNECT = 1, OP_SEND, OP_RECV };

enum cstate { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_DEAD };

/* One device's connection: the socket, its protocol session and what the
 * load generator tracks on top (outstanding sends, acks to give). */
struct conn {
	int fd;
	uint32_t gen;                   /* bumped when the connection ends */
	uint32_t send_gen;              /* gen of the send in flight */
	uint32_t dev;                   /* global device id */
	uint8_t state;                  /* enum cstate */
	uint8_t attempts;
	uint8_t fail_why;               /* a hook's reason to end it: enum lg_err + 1, 0 none */
	bool send_inflight, dirty, drained, recv_armed;
	bool ready;                     /* handshake done and the first Ping answered */
	bool broken;                    /* the outbound stream failed: end at the next flush */
	bool retry_pending;             /* reconnect once the dead send completes */
	/* The session's tx chunks stay borrowed by the kernel while a send is
	 * in flight, so a failed connection is released (and retried) only at
	 * that send's completion. */
	struct sp_session ss;
	uint64_t *fifo;                 /* intended times of sends awaiting SendResult */
	uint32_t fifo_head, fifo_len, fifo_cap;
	uint64_t next_id, nsent;
	uint64_t acks[SP_ACK_SEQS_MAX];
	uint32_t nacks;
	uint32_t next_dirty;            /* dirty list link, UINT32_MAX = end */
};

/* Parent-made, inherited by every worker (read-only after fork). */
static uint8_t g_server_pub[SP_KEY_LEN];
/* --cipher: the transport cipher every connection proposes in its preamble
 * (the broker takes AESGCM only with --aesgcm 1; a refusal is a handshake
 * error here, not a fallback, so a run never silently measures the other). */
static enum sp_noise_aead g_aead = SP_NOISE_CHACHAPOLY;
static uint8_t *g_keys;                 /* per device: priv[32] || pub[32] */

static const uint8_t *dev_priv(uint32_t d)
{
	return g_keys + (size_t)d * 2 * SP_KEY_LEN;
}

static const uint8_t *dev_pub(uint32_t d)
{
	return g_keys + (size_t)d * 2 * SP_KEY_LEN + SP_KEY_LEN;
}

/* ------------------------------------------------------------- ring --- */

/* The provided-buffer ring receives land in (mmap'd: untouched buffers
 * cost no memory). */
struct bufring {
	struct io_uring_buf_ring *br;
	uint8_t *mem;
	size_t ring_bytes, mem_bytes;
	uint32_t size;
	int mask;
	int staged;                     /* put, not yet visible to the kernel */
};

/* Worker state: one per process, so a plain struct passed around. */
struct lgs {
	struct lg_worker *w;
	struct io_uring ring;
	struct bufring br;
	struct sp_txpool pool;          /* every session's output chunks */
	struct sp_session_env env;      /* ClientHello, hooks, pool: shared by all */
	struct conn *conns;             /* index = dev - w->first */
	uint32_t dirty_head;
	uint32_t hs_inflight;
	uint64_t outstanding;           /* sends awaiting SendResult, all connections */
	uint8_t *scratch;               /* a body being built / a seal being opened */
	uint8_t *scratch2;
};

static int ring_init(struct io_uring *r)
{
	/* DEFER_TASKRUN suits a loop that submits and reaps once per turn;
	 * older kernels fall back to COOP_TASKRUN, then to nothing. */
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int ret = -EINVAL;
	size_t i;

	for (i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p;

		memset(&p, 0, sizeof(p));
		/* Multishot receives complete in bursts: a roomy CQ. */
		p.flags = tries[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = RING_ENTRIES * 4;
		ret = io_uring_queue_init_params(RING_ENTRIES, r, &p);
		if (ret != -EINVAL)
			return ret;
	}
	return ret;
}

/* An SQE; a full SQ is submitted first. NULL only if the kernel refuses. */
static struct io_uring_sqe *ring_sqe(struct io_uring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);

	if (!sqe && io_uring_submit(r) >= 0)
		sqe = io_uring_get_sqe(r);
	return sqe;
}

static uint8_t *bufring_addr(const struct bufring *b, int bid)
{
	return b->mem + (size_t)bid * b->size;
}

static int bufring_init(struct bufring *b, struct io_uring *r)
{
	struct io_uring_buf_reg reg;
	void *p;
	int i, ret;

	memset(b, 0, sizeof(*b));
	b->size = RECV_BUFFER_SIZE;
	b->mask = io_uring_buf_ring_mask(RECV_BUFFERS);
	b->ring_bytes = RECV_BUFFERS * sizeof(struct io_uring_buf);
	b->mem_bytes = (size_t)RECV_BUFFERS * RECV_BUFFER_SIZE;
	p = mmap(NULL, b->ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	b->br = p;
	p = mmap(NULL, b->mem_bytes, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	b->mem = p;
	io_uring_buf_ring_init(b->br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)(uintptr_t)b->br;
	reg.ring_entries = RECV_BUFFERS;
	reg.bgid = BGID;
	ret = io_uring_register_buf_ring(r, &reg, 0);
	if (ret)
		return ret;
	for (i = 0; i < RECV_BUFFERS; i++)
		io_uring_buf_ring_add(b->br, bufring_addr(b, i), b->size, (unsigned short)i, b->mask,
				      i);
	io_uring_buf_ring_advance(b->br, RECV_BUFFERS);
	return 0;
}

/* Back to the ring; the kernel sees it at bufring_flush (once per turn). */
static void bufring_put(struct bufring *b, int bid)
{
	io_uring_buf_ring_add(b->br, bufring_addr(b, bid), b->size, (unsigned short)bid, b->mask,
			      b->staged);
	b->staged++;
}

static void bufring_flush(struct bufring *b)
{
	if (b->staged) {
		io_uring_buf_ring_advance(b->br, b->staged);
		b->staged = 0;
	}
}

static int cqe_bid(const struct io_uring_cqe *cqe)
{
	return cqe->flags & IORING_CQE_F_BUFFER ? (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT) : -1;
}

static uint64_t ud_pack(enum op op, uint32_t slot, uint32_t gen)
{
	return (uint64_t)op << 56 | (uint64_t)(slot & 0xffffff) << 32 | gen;
}

static int ring_recv(struct lgs *s, struct conn *c, uint32_t slot)
{
	struct io_uring_sqe *sqe = ring_sqe(&s->ring);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, ud_pack(OP_RECV, slot, c->gen));
	return 0;
}

/* buf: borrowed by the kernel until the OP_SEND completion. */
static int ring_send(struct lgs *s, struct conn *c, uint32_t slot, const uint8_t *buf,
		     size_t len)
{
	struct io_uring_sqe *sqe = ring_sqe(&s->ring);

	if (!sqe)
		return -EBUSY;
	/* MSG_NOSIGNAL: a broker that went away gives -EPIPE, not SIGPIPE. */
	io_uring_prep_send(sqe, c->fd, buf, len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud_pack(OP_SEND, slot, c->gen));
	return 0;
}

static struct conn *conn_of(struct lgs *s, uint32_t dev)
{
	if (dev < s->w->first || dev >= s->w->first + s->w->count)
		return NULL;
	return &s->conns[dev - s->w->first];
}

static uint32_t slot_of(struct lgs *s, const struct conn *c)
{
	return (uint32_t)(c - s->conns);
}

static struct conn *conn_of_session(struct sp_session *ss)
{
	return (struct conn *)(void *)((uint8_t *)ss - offsetof(struct conn, ss));
}

/* ------------------------------------------------------------ buffers --- */

static int fifo_push(struct conn *c, uint64_t t)
{
	if (c->fifo_len == c->fifo_cap) {
		uint32_t ncap = c->fifo_cap ? c->fifo_cap * 2 : 16, i;
		uint64_t *n = malloc(ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		for (i = 0; i < c->fifo_len; i++)
			n[i] = c->fifo[(c->fifo_head + i) % c->fifo_cap];
		free(c->fifo);
		c->fifo = n;
		c->fifo_cap = ncap;
		c->fifo_head = 0;
	}
	c->fifo[(c->fifo_head + c->fifo_len) % c->fifo_cap] = t;
	c->fifo_len++;
	return 0;
}

static bool fifo_pop(struct conn *c, uint64_t *t)
{
	if (!c->fifo_len)
		return false;
	*t = c->fifo[c->fifo_head];
	c->fifo_head = (c->fifo_head + 1) % c->fifo_cap;
	c->fifo_len--;
	return true;
}

/* ----------------------------------------------------------- sending --- */

static void mark_dirty(struct lgs *s, struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->next_dirty = s->dirty_head;
	s->dirty_head = slot_of(s, c);
}

static void conn_fail(struct lgs *s, struct conn *c, enum lg_err why);

/* Hands the session's next finished bytes to the kernel: one send in
 * flight per connection. Not called from inside a session hook. */
static void kick(struct lgs *s, struct conn *c)
{
	const uint8_t *p;
	size_t len;

	if (c->send_inflight || c->fd < 0 || !sp_session_tx_peek(&c->ss, &p, &len))
		return;
	if (ring_send(s, c, slot_of(s, c), p, len)) {
		conn_fail(s, c, LG_E_CLIENT);
		return;
	}
	c->send_inflight = true;
	c->send_gen = c->gen;
}

/*
 * Appends one frame (header + body, body borrowed for the call) to the
 * connection's open outbound transport message; flush_dirty seals it at
 * the end of the turn. May run inside a session hook.
 */
static int put_frame(struct lgs *s, struct conn *c, const struct sp_frame *f, const uint8_t *body,
		     size_t body_len)
{
	int ret = sp_session_tx_frame(&c->ss, f, body, body_len);

	/* Out of chunks or an oversized frame leave the stream intact; any
	 * other failure leaves it unusable. */
	if (ret && ret != -ENOMEM && ret != -EMSGSIZE)
		c->broken = true;
	mark_dirty(s, c);
	return ret;
}

/* Builds and queues one envelope from sender c, intended at `intended`. */
static void send_envelope(struct lgs *s, struct conn *c, uint64_t intended)
{
	const struct lg_opts *o = s->w->o;
	uint32_t to = lg_target(o, c->dev, c->nsent);
	struct sp_frame f;
	const uint8_t *body = s->scratch;
	size_t blen = o->size;

	if (c->state != C_OPEN || !c->ready) {
		lg_count_error(s->w, LG_E_SENDER_DOWN);
		return;
	}
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_SEND;
	memcpy(f.u.send.to, dev_pub(to), SP_KEY_LEN);
	f.u.send.to_ok = 1;
	f.u.send.client_id = ++c->next_id;
	f.u.send.flags = o->durable ? 0 : SP_SEND_ONLINE_ONLY;
	if (o->seal) {
		size_t mlen = o->size - SP_SEAL_OVERHEAD;

		lg_body_fill(s->scratch2, mlen, intended, c->dev);
		if (sp_seal(dev_priv(c->dev), dev_pub(to), s->scratch2, mlen, s->scratch,
			    SP_BODY_MAX, &blen)) {
			lg_count_error(s->w, LG_E_CLIENT);
			return;
		}
	} else {
		lg_body_fill(s->scratch, blen, intended, c->dev);
	}
	if (put_frame(s, c, &f, body, blen) || fifo_push(c, intended)) {
		lg_count_error(s->w, LG_E_CLIENT);
		return;
	}
	c->nsent++;
	s->outstanding++;
	lg_count_sent(s->w, intended);
}

/* Queues one Ack frame for the deliveries taken so far. */
static void put_acks(struct lgs *s, struct conn *c)
{
	struct sp_frame f;

	if (!c->nacks)
		return;
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_ACK;
	memcpy(f.u.ack.seqs, c->acks, c->nacks * sizeof(c->acks[0]));
	f.u.ack.count = c->nacks;
	c->nacks = 0;
	if (put_frame(s, c, &f, NULL, 0) == 0)
		s->w->st.acks++;
	else
		lg_count_error(s->w, LG_E_CLIENT);
}

/* End of a turn: every touched connection's message sealed and sent. */
static void flush_dirty(struct lgs *s)
{
	while (s->dirty_head != UINT32_MAX) {
		struct conn *c = &s->conns[s->dirty_head];

		s->dirty_head = c->next_dirty;
		if (c->state != C_OPEN) {
			c->dirty = false;
			continue;
		}
		put_acks(s, c); /* still marked dirty: put_frame does not relink it */
		c->dirty = false;
		if (c->broken || sp_session_tx_seal(&c->ss)) {
			conn_fail(s, c, LG_E_CLIENT);
			continue;
		}
		kick(s, c);
	}
}

/* ------------------------------------------------------ connections --- */

static void start_connect(struct lgs *s, struct conn *c);

/*
 * A connection failed or closed. During connect-up it is retried a few
 * times (the broker may refuse bursts above its --handshake-rate); later it
 * stays down and its due envelopes count as sender_down. Never called from
 * inside a session hook (a hook returns its reason instead).
 */
static void conn_fail(struct lgs *s, struct conn *c, enum lg_err why)
{
	bool was_hs = c->state == C_CONNECTING || c->state == C_HANDSHAKE ||
		      (c->state == C_OPEN && !c->ready);

	lg_count_error(s->w, why);
	if (c->fd >= 0) {
		/* shutdown first: it ends the multishot receive, which holds a
		 * reference to the socket that close alone would not drop. */
		shutdown(c->fd, SHUT_RDWR);
		close(c->fd);
		c->fd = -1;
	}
	c->gen++;
	sp_session_wipe(&c->ss);
	if (!c->send_inflight)
		sp_session_release(&c->ss);
	s->outstanding -= c->fifo_len;
	c->fifo_len = c->fifo_head = 0;
	c->nacks = 0;
	c->recv_armed = false;
	c->broken = false;
	c->fail_why = 0;
	c->state = C_DEAD;
	c->ready = false;
	if (!was_hs)
		return;
	if (c->attempts < CONNECT_ATTEMPTS && c->send_inflight) {
		c->retry_pending = true; /* still counted in hs_inflight */
		return;
	}
	s->hs_inflight--;
	if (c->attempts < CONNECT_ATTEMPTS)
		start_connect(s, c);
}

static void start_connect(struct lgs *s, struct conn *c)
{
	const struct lg_opts *o = s->w->o;
	/* --recv-server: receivers on another node of a clustered broker. */
	bool recv = lg_on_recv_server(o, c->dev);
	const struct sockaddr_storage *to = recv ? &o->recv_addr : &o->addr;
	struct io_uring_sqe *sqe;
	int one = 1;

	c->attempts++;
	c->fd = socket(to->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sqe = c->fd >= 0 ? ring_sqe(&s->ring) : NULL;
	if (!sqe) {
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		c->state = C_DEAD;
		lg_count_error(s->w, LG_E_CONNECT);
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = C_CONNECTING;
	s->hs_inflight++;
	io_uring_prep_connect(sqe, c->fd, (const struct sockaddr *)to,
			      recv ? o->recv_addr_len : o->addr_len);
	io_uring_sqe_set_data64(sqe, ud_pack(OP_CONNECT, slot_of(s, c), c->gen));
}

/* TCP is up: the engine queues preamble + IK message 1 (one send), then
 * the multishot receive. */
static void on_connected(struct lgs *s, struct conn *c)
{
	int ret = sp_session_connect(&c->ss, &s->env, dev_priv(c->dev), g_server_pub);

	if (ret) {
		conn_fail(s, c, ret == -ENOMEM ? LG_E_CLIENT : LG_E_HANDSHAKE);
		return;
	}
	c->state = C_HANDSHAKE;
	kick(s, c);
	if (c->state != C_HANDSHAKE)
		return;
	if (ring_recv(s, c, slot_of(s, c))) {
		conn_fail(s, c, LG_E_CLIENT);
		return;
	}
	c->recv_armed = true;
}

static void on_ready(struct lgs *s, struct conn *c)
{
	c->ready = true;
	s->hs_inflight--;
	s->w->st.connected++;
	s->w->st.connect_end = lg_now();
}

/* -------------------------------------------------- session hooks --- */

/* Ends the session from inside a hook: the reason is kept for conn_fail,
 * which runs once sp_session_rx has returned. */
static enum sp_close_reason hook_fail(struct conn *c, enum lg_err why, enum sp_close_reason r)
{
	if (!c->fail_why)
		c->fail_why = (uint8_t)(why + 1);
	return r;
}

/* <- e, ee, se with ServerHello: its transport limit caps what we send. */
static enum sp_close_reason hk_server_hello(void *ctx, struct sp_session *ss,
					    const uint8_t *payload, size_t len)
{
	struct sp_hello sh;

	(void)ctx;
	if (sp_frame_server_hello_decode(payload, len, &sh))
		return hook_fail(conn_of_session(ss), LG_E_HANDSHAKE, SP_CLOSE_HANDSHAKE_FAILED);
	sp_session_set_tx_max(ss, sh.max_transport);
	return SP_CLOSE_NONE;
}

/*
 * The handshake is done. A Ping right away, and the device counts as
 * connected only at its Pong: an IK connection is proven by its first
 * authenticated transport message (until then the broker may not route to
 * it, PROTOCOL.md), and the round trip means the broker has taken the
 * connection in before any traffic starts.
 */
static enum sp_close_reason hk_established(void *ctx, struct sp_session *ss)
{
	struct lgs *s = ctx;
	struct conn *c = conn_of_session(ss);
	struct sp_frame p;

	c->state = C_OPEN;
	memset(&p, 0, sizeof(p));
	p.type = SP_FRAME_PING;
	p.u.ping.id = READY_PING_ID;
	if (put_frame(s, c, &p, NULL, 0))
		return hook_fail(c, LG_E_CLIENT, SP_CLOSE_INTERNAL);
	return SP_CLOSE_NONE;
}

static void on_deliver(struct lgs *s, struct conn *c, const struct sp_frame *f)
{
	const struct lg_opts *o = s->w->o;
	const uint8_t *body = f->body;
	size_t blen = f->body_len;
	uint64_t intended;
	uint32_t sender;

	if (o->seal) {
		uint8_t from[SP_KEY_LEN];

		if (sp_seal_open(dev_priv(c->dev), f->body, f->body_len, from, s->scratch2,
				 SP_BODY_MAX, &blen)) {
			lg_count_error(s->w, LG_E_SEAL_OPEN);
			return;
		}
		body = s->scratch2;
	}
	if (lg_body_stamp(body, blen, &intended, &sender)) {
		lg_count_error(s->w, LG_E_BAD_BODY);
		return;
	}
	lg_count_delivery(s->w, intended, lg_now());
	if (o->durable) {
		if (c->nacks == SP_ACK_SEQS_MAX)
			put_acks(s, c);
		c->acks[c->nacks++] = f->u.deliver.seq;
		mark_dirty(s, c);
	}
}

/* One frame of a transport message (the engine decrypted and parsed it).
 * An unexpected frame is counted, not fatal. */
static enum sp_close_reason hk_frame(void *ctx, struct sp_session *ss, const struct sp_frame *f)
{
	struct lgs *s = ctx;
	struct conn *c = conn_of_session(ss);
	const struct lg_opts *o = s->w->o;
	uint64_t intended;

	switch (f->type) {
	case SP_FRAME_SEND_RESULT:
		if (!fifo_pop(c, &intended)) {
			lg_count_error(s->w, LG_E_PROTOCOL);
			break;
		}
		s->outstanding--;
		lg_count_result(s->w, (int)f->u.send_result.status, intended);
		if (o->closed_loop && lg_sending(s->w, lg_now()) && lg_is_sender(o, c->dev))
			send_envelope(s, c, lg_now());
		break;
	case SP_FRAME_DELIVER:
		on_deliver(s, c, f);
		break;
	case SP_FRAME_DRAINED:
		if (o->pattern == LG_DRAIN && lg_is_receiver(o, c->dev) && !c->drained) {
			c->drained = true;
			s->w->st.drain_devices++;
			s->w->st.drain_reported += f->u.drained.count;
			s->w->st.drain_end = lg_now();
		}
		break;
	case SP_FRAME_PING: {
		struct sp_frame p;

		memset(&p, 0, sizeof(p));
		p.type = SP_FRAME_PONG;
		p.u.ping.id = f->u.ping.id;
		put_frame(s, c, &p, NULL, 0);
		break;
	}
	case SP_FRAME_PONG:
		if (!c->ready && f->u.ping.id == READY_PING_ID)
			on_ready(s, c);
		break;
	case SP_FRAME_GOAWAY: {
		int code = (int)f->u.goaway.code;

		s->w->st.goaway[code >= 0 && code < LG_STATUS_SLOTS ? code : LG_STATUS_SLOTS - 1]++;
		break;
	}
	default:
		lg_count_error(s->w, LG_E_PROTOCOL);
		break;
	}
	return SP_CLOSE_NONE;
}

/* What the load generator counts when the engine ends a session. */
static enum lg_err rx_error(const struct conn *c, enum sp_close_reason r)
{
	if (c->fail_why)
		return (enum lg_err)(c->fail_why - 1);
	if (c->state != C_OPEN)
		return LG_E_HANDSHAKE;
	if (r == SP_CLOSE_DECRYPT_FAILED)
		return LG_E_DECRYPT;
	if (r == SP_CLOSE_NOMEM)
		return LG_E_CLIENT;
	return LG_E_PROTOCOL;
}

/* -------------------------------------------------------------- loop --- */

static void on_send_done(struct lgs *s, struct conn *c, int res)
{
	c->send_inflight = false;
	if (c->state == C_DEAD) {
		/* The connection ended while the kernel held its bytes. */
		sp_session_release(&c->ss);
		if (c->retry_pending) {
			c->retry_pending = false;
			s->hs_inflight--;
			start_connect(s, c);
		}
		return;
	}
	if (res <= 0) {
		conn_fail(s, c, c->ready ? LG_E_CLOSED : LG_E_HANDSHAKE);
		return;
	}
	sp_session_tx_sent(&c->ss, (size_t)res);
	kick(s, c);
}

static void handle_cqe(struct lgs *s, struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	enum op op = (enum op)(ud >> 56);
	uint32_t slot = (uint32_t)(ud >> 32) & 0xffffff, gen = (uint32_t)ud;
	int bid = cqe_bid(cqe);
	struct conn *c;

	if (slot >= s->w->count) {
		if (bid >= 0)
			bufring_put(&s->br, bid);
		return;
	}
	c = &s->conns[slot];
	if (op == OP_SEND) {
		/* Matched by send_gen: the completion of a dead connection's send
		 * is what frees its session. */
		if (c->send_inflight && c->send_gen == gen)
			on_send_done(s, c, cqe->res);
		return;
	}
	if (c->gen != gen) {
		/* A late completion for a closed connection. */
		if (bid >= 0)
			bufring_put(&s->br, bid);
		return;
	}
	switch (op) {
	case OP_CONNECT:
		if (cqe->res < 0)
			conn_fail(s, c, LG_E_CONNECT);
		else
			on_connected(s, c);
		break;
	case OP_RECV:
		if (cqe->res > 0 && bid >= 0) {
			enum sp_close_reason r;

			/* Decrypted in place; nothing points into the buffer after. */
			r = sp_session_rx(&c->ss, bufring_addr(&s->br, bid), (size_t)cqe->res);
			bufring_put(&s->br, bid);
			if (r != SP_CLOSE_NONE) {
				conn_fail(s, c, rx_error(c, r));
				break;
			}
		} else if (bid >= 0) {
			bufring_put(&s->br, bid);
		}
		if (cqe->res == 0 || (cqe->res < 0 && cqe->res != -ENOBUFS)) {
			conn_fail(s, c, c->ready ? LG_E_CLOSED : LG_E_HANDSHAKE);
			break;
		}
		if (!(cqe->flags & IORING_CQE_F_MORE) && ring_recv(s, c, slot))
			conn_fail(s, c, LG_E_CLIENT);
		break;
	case OP_SEND:
		break;
	}
}

/* One turn: submit, wait until `until` (monotonic ns) or a completion, reap.
 * Returns the completions reaped. */
static unsigned turn(struct lgs *s, uint64_t until)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts;
	uint64_t now = lg_now(), wait = until > now ? until - now : 0;
	unsigned head, n = 0;

	flush_dirty(s);
	bufring_flush(&s->br);
	lg_worker_tick(s->w);
	if (wait > 100000000ull)
		wait = 100000000ull;
	ts.tv_sec = (long long)(wait / 1000000000ull);
	ts.tv_nsec = (long long)(wait % 1000000000ull);
	io_uring_submit_and_wait_timeout(&s->ring, &cqe, wait ? 1 : 0, wait ? &ts : NULL, NULL);
	io_uring_for_each_cqe(&s->ring, head, cqe) {
		handle_cqe(s, cqe);
		n++;
	}
	io_uring_cq_advance(&s->ring, n);
	return n;
}

/* Connects every local device for which want(dev) holds; bounded. */
static void connect_all(struct lgs *s, bool late)
{
	const struct lg_opts *o = s->w->o;
	uint64_t deadline = lg_now() + (uint64_t)(o->connect_timeout * 1e9);
	uint32_t next = 0, i, open;

	for (;;) {
		while (next < s->w->count && s->hs_inflight < o->connect_concurrency) {
			struct conn *c = &s->conns[next++];

			if (lg_connects_early(o, c->dev) == late)
				continue;
			if (!s->w->st.connect_begin)
				s->w->st.connect_begin = lg_now();
			start_connect(s, c);
		}
		if (next >= s->w->count && s->hs_inflight == 0)
			break;
		if (lg_now() > deadline) {
			for (i = 0; i < s->w->count; i++) {
				struct conn *c = &s->conns[i];

				if (c->state == C_CONNECTING || c->state == C_HANDSHAKE ||
				    (c->state == C_OPEN && !c->ready)) {
					c->attempts = CONNECT_ATTEMPTS;
					conn_fail(s, c, LG_E_CONNECT_TIMEOUT);
				} else if (c->retry_pending) {
					c->retry_pending = false;
					s->hs_inflight--;
					lg_count_error(s->w, LG_E_CONNECT_TIMEOUT);
				}
			}
			break;
		}
		turn(s, lg_now() + 10000000ull);
	}
	for (i = 0, open = 0; i < s->w->count; i++)
		open += s->conns[i].state == C_OPEN;
	(void)open;
}

/* The traffic window and the straggler wait after it. */
static void run_traffic(struct lgs *s)
{
	struct lg_worker *w = s->w;
	const struct lg_opts *o = w->o;
	bool filled = false;
	uint64_t now, stop_by = w->t_end + (uint64_t)(o->grace * 1e9);
	uint32_t dev, burst;
	uint64_t intended;

	for (;;) {
		now = lg_now();
		if (o->closed_loop && !filled && now >= w->t0) {
			uint32_t i, k;

			filled = true;
			for (i = 0; i < w->nsenders; i++)
				for (k = 0; k < o->closed_loop; k++)
					send_envelope(s, conn_of(s, w->senders[i]), now);
		}
		/* A bounded burst, then I/O: a client behind schedule still reads. */
		for (burst = 0; burst < SEND_BURST && lg_due(w, lg_now(), &dev, &intended); burst++)
			send_envelope(s, conn_of(s, dev), intended);
		if (now >= w->t_end) {
			bool quiet = now - w->last_delivery > STOP_QUIET_MS * 1000000ull &&
				     now - w->t_end > STOP_QUIET_MS * 1000000ull;

			if (now >= stop_by)
				break;
			/* Quiet may only mean that this process did not run for a
			 * while (a busy machine): reap what arrived meanwhile (a short
			 * wait, so deferred completions are posted) before stopping. */
			if (s->outstanding == 0 && quiet && turn(s, lg_now() + 2000000ull) == 0)
				break;
			/* drain fill: nothing is delivered; results are all we wait for */
			if (o->pattern == LG_DRAIN && s->outstanding == 0)
				break;
		}
		{
			uint64_t until = lg_next_due(w);

			if (now < w->t0 && until > w->t0)
				until = w->t0;
			if (until > w->t_end && now < w->t_end)
				until = w->t_end;
			if (until == UINT64_MAX)
				until = now + 20000000ull;
			else if (until < now)
				until = now; /* behind schedule: poll, do not sleep */
			turn(s, until);
		}
	}
}

/* drain: receivers connect at t1 and read their backlog until Drained. */
static void run_drain(struct lgs *s, uint64_t t1)
{
	struct lg_worker *w = s->w;
	const struct lg_opts *o = w->o;
	uint64_t last_progress, last_delivered;
	uint32_t i, want = 0, done;

	for (i = 0; i < w->count; i++)
		want += !lg_connects_early(o, s->conns[i].dev);
	if (!want)
		return;
	while (lg_now() < t1)
		turn(s, t1);
	w->st.drain_begin = t1;
	connect_all(s, true);
	last_progress = lg_now();
	last_delivered = w->st.delivered;
	for (;;) {
		uint64_t now = lg_now();

		for (i = 0, done = 0; i < w->count; i++) {
			struct conn *c = &s->conns[i];

			if (!lg_connects_early(o, c->dev) && (c->drained || c->state == C_DEAD))
				done++;
		}
		if (done == want)
			break;
		if (w->st.delivered != last_delivered) {
			last_delivered = w->st.delivered;
			last_progress = now;
		}
		if (now - last_progress > (uint64_t)(o->grace * 1e9))
			break;
		turn(s, now + 20000000ull);
	}
	/* acks of the last deliveries */
	turn(s, lg_now() + 50000000ull);
}

static int worker(struct lg_worker *w)
{
	struct lgs s;
	uint32_t i;
	int ret;

	memset(&s, 0, sizeof(s));
	s.w = w;
	s.dirty_head = UINT32_MAX;
	s.conns = calloc(w->count, sizeof(*s.conns));
	s.scratch = malloc(SP_BODY_MAX);
	s.scratch2 = malloc(SP_BODY_MAX);
	if (!s.conns || !s.scratch || !s.scratch2)
		return -ENOMEM;
	for (i = 0; i < w->count; i++) {
		s.conns[i].fd = -1;
		s.conns[i].dev = w->first + i;
		s.conns[i].next_dirty = UINT32_MAX;
	}
	sp_txpool_init(&s.pool, TXPOOL_KEEP);
	s.env = (struct sp_session_env){
		.hello = { .protocol_version = SP_PROTOCOL_VERSION },
		.pool = &s.pool,
		.propose_aead = (uint8_t)g_aead,
		.hooks = { .established = hk_established, .frame = hk_frame,
			   .server_hello = hk_server_hello, .ctx = &s },
	};
	ret = ring_init(&s.ring);
	if (ret)
		return ret;
	ret = bufring_init(&s.br, &s.ring);
	if (ret)
		return ret;

	connect_all(&s, false);
	ret = lg_worker_ready(w);
	if (ret)
		return ret;
	if (w->o->pattern != LG_IDLE) {
		run_traffic(&s);
	} else {
		/* idle: hold the connections (answering pings) for the window */
		while (lg_now() < w->t_end)
			turn(&s, w->t_end);
	}
	if (w->o->pattern == LG_DRAIN) {
		uint64_t t1;

		ret = lg_worker_filled(w, &t1);
		if (ret)
			return ret;
		run_drain(&s, t1);
	}
	/* The process exits next: the kernel closes the sockets and frees the
	 * rest; the transport keys are wiped here. */
	for (i = 0; i < w->count; i++)
		sp_session_wipe(&s.conns[i].ss);
	return 0;
}

static int prepare(struct lg_opts *o)
{
	uint32_t d;
	int ret;

	if (o->server_key_hex[0]) {
		ret = sp_key_parse_hex(g_server_pub, o->server_key_hex);
	} else if (o->data_dir[0]) {
		char path[LG_PATH_MAX + 16];

		snprintf(path, sizeof(path), "%s/server.pub", o->data_dir);
		ret = sp_keyfile_read_public(path, g_server_pub);
	} else {
		fprintf(stderr, "sealpost-loadgen: --server-key HEX or --data-dir DIR is needed\n");
		return -EINVAL;
	}
	if (ret)
		return ret;
	g_keys = sodium_malloc((size_t)o->devices * 2 * SP_KEY_LEN);
	if (!g_keys)
		return -ENOMEM;
	for (d = 0; d < o->devices; d++)
		sp_noise_keypair(g_keys + (size_t)d * 2 * SP_KEY_LEN + SP_KEY_LEN,
				 g_keys + (size_t)d * 2 * SP_KEY_LEN);
	snprintf(o->variant, sizeof(o->variant), "IK, io_uring, %s",
		 g_aead == SP_NOISE_AESGCM ? "AESGCM" : "ChaChaPoly");
	return 0;
}

static int opt(struct lg_opts *o, const char *name, const char *val)
{
	(void)o;
	if (strcmp(name, "cipher"))
		return -ENOENT;
	if (!strcmp(val, "chachapoly")) {
		g_aead = SP_NOISE_CHACHAPOLY;
	} else if (!strcmp(val, "aesgcm")) {
		/* Options are read before anything initialised libsodium, and
		 * its CPU feature check answers false until sodium_init. */
		if (sodium_init() < 0 || !sp_noise_aead_available(SP_NOISE_AESGCM)) {
			fprintf(stderr, "sealpost-loadgen: --cipher aesgcm: this CPU has no AES-NI\n");
			return -ENOTSUP;
		}
		g_aead = SP_NOISE_AESGCM;
	} else {
		return -EINVAL;
	}
	return 0;
}

static const struct lg_driver driver = {
	.name = "sealpost",
	.help = "  --server-key HEX        the broker's static public key (64 hex digits)\n"
		"  --data-dir DIR          or read it from DIR/server.pub\n"
		"  --seal                  seal bodies end to end (Noise_X; 2 X25519 per envelope\n"
		"                          on each side: measures the clients too)\n"
		"  --cipher chachapoly|aesgcm\n"
		"                          the transport cipher every connection proposes (default\n"
		"                          chachapoly; aesgcm needs the broker's --aesgcm 1)\n",
	.opt = opt,
	.prepare = prepare,
	.worker = worker,
};

int main(int argc, char **argv)
{
	int rc = lg_main(argc, argv, &driver);

	if (g_keys)
		sodium_free(g_keys); /* wipes */
	return rc;
}
