/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sealpost-loadgen: a swarm of sealpost devices on loopback (issue 5, item 2).
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
 * This is a client of the wire protocol written on common/ (sp_noise,
 * sp_frame, sp_seal), not on libsealpost: the library is one blocking-or-
 * polled client per connection, while a load generator needs thousands of
 * connections on one ring.
 *
 * Secrets: device private keys are throwaway benchmark keys generated for
 * the run (in the parent, before fork, so every worker can address any
 * device); they are wiped at exit and never printed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>
#include <sodium.h>

#include "lg.h"
#include "sp_frame.h"
#include "sp_keyfile.h"
#include "sp_limits.h"
#include "sp_noise.h"
#include "sp_ring.h"
#include "sp_seal.h"

enum {
	RING_ENTRIES = 4096,
	RECV_BUFFERS = 2048,            /* provided buffers per worker */
	RECV_BUFFER_SIZE = 16384,
	BGID = 7,
	CONNECT_ATTEMPTS = 3,
	STOP_QUIET_MS = 250,            /* after the window: no delivery for this long = done */
	READY_PING_ID = 0x5e41,         /* the Ping whose Pong completes connect-up */
	SEND_BURST = 1024,              /* envelopes queued per loop turn, at most */
};

enum op { OP_CONNECT = 1, OP_SEND, OP_RECV };

enum cstate { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_DEAD };

/* One device's connection. Buffers are allocated on first use and grow. */
struct conn {
	int fd;
	uint32_t gen;
	uint32_t dev;                   /* global device id */
	uint8_t state;
	uint8_t attempts;
	bool send_inflight, dirty, drained, recv_armed;
	bool ready;                     /* handshake done and the first Ping answered */
	struct sp_noise_handshake *hs;  /* during the handshake only */
	struct sp_noise_transport tr;
	uint32_t max_transport;
	uint8_t *part;                  /* a Noise message split across receives */
	uint32_t part_len, part_need;   /* bytes held / bytes of the whole (prefix incl.) */
	uint8_t *pt;                    /* frames for the next transport message */
	uint32_t pt_len, pt_cap;
	uint8_t *out;                   /* finished ciphertext, not yet handed to the kernel */
	uint32_t out_len, out_cap;
	uint8_t *tx;                    /* in flight: borrowed by the kernel until OP_SEND */
	uint32_t tx_len, tx_off, tx_cap;
	uint64_t *fifo;                 /* intended times of sends awaiting SendResult */
	uint32_t fifo_head, fifo_len, fifo_cap;
	uint64_t next_id, nsent;
	uint64_t acks[SP_ACK_SEQS_MAX];
	uint32_t nacks;
	uint32_t next_dirty;            /* dirty list link, UINT32_MAX = end */
};

/* Parent-made, inherited by every worker (read-only after fork). */
static uint8_t g_server_pub[SP_KEY_LEN];
static uint8_t *g_keys;                 /* per device: priv[32] || pub[32] */

static const uint8_t *dev_priv(uint32_t d)
{
	return g_keys + (size_t)d * 2 * SP_KEY_LEN;
}

static const uint8_t *dev_pub(uint32_t d)
{
	return g_keys + (size_t)d * 2 * SP_KEY_LEN + SP_KEY_LEN;
}

/* Worker state: one per process, so a plain struct passed around. */
struct lgs {
	struct lg_worker *w;
	struct sp_ring ring;
	struct sp_bufring br;
	struct conn *conns;             /* index = dev - w->first */
	uint32_t dirty_head;
	uint32_t hs_inflight;
	uint64_t outstanding;           /* sends awaiting SendResult, all connections */
	uint8_t *scratch;               /* a body being built / a seal being opened */
	uint8_t *scratch2;
	uint32_t late_open;             /* drain: receivers not yet connected/drained */
};

static uint64_t ud_pack(enum op op, uint32_t slot, uint32_t gen)
{
	return (uint64_t)op << 56 | (uint64_t)(slot & 0xffffff) << 32 | gen;
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

/* ------------------------------------------------------------ buffers --- */

static int grow(uint8_t **buf, uint32_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 1024;
	uint8_t *p;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	p = realloc(*buf, n);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = (uint32_t)n;
	return 0;
}

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

/* Encrypts the pending frames into one transport message appended to out. */
static int seal_pt(struct conn *c)
{
	struct sp_noise_iov iov = { .base = c->pt, .len = c->pt_len };
	size_t clen;
	int ret;

	if (!c->pt_len)
		return 0;
	ret = grow(&c->out, &c->out_cap, (size_t)c->out_len + SP_LEN_PREFIX + c->pt_len + SP_TAG_LEN);
	if (ret)
		return ret;
	ret = sp_noise_encryptv(&c->tr.tx, &iov, 1, c->out + c->out_len + SP_LEN_PREFIX,
				c->out_cap - c->out_len - SP_LEN_PREFIX, &clen);
	if (ret)
		return ret;
	c->out[c->out_len] = (uint8_t)(clen >> 8);
	c->out[c->out_len + 1] = (uint8_t)clen;
	c->out_len += (uint32_t)(SP_LEN_PREFIX + clen);
	c->pt_len = 0;
	return 0;
}

static void kick(struct lgs *s, struct conn *c)
{
	uint8_t *b;
	uint32_t cap;

	if (c->send_inflight || !c->out_len || c->fd < 0)
		return;
	/* Swap: what was accumulated goes out; the old in-flight buffer is free. */
	b = c->tx;
	cap = c->tx_cap;
	c->tx = c->out;
	c->tx_cap = c->out_cap;
	c->tx_len = c->out_len;
	c->tx_off = 0;
	c->out = b;
	c->out_cap = cap;
	c->out_len = 0;
	c->send_inflight = true;
	sp_ring_send(&s->ring, c->fd, c->tx, c->tx_len, ud_pack(OP_SEND, slot_of(s, c), c->gen));
}

/* Appends one frame (header + body) to the connection's pending plaintext. */
static int put_frame(struct lgs *s, struct conn *c, const struct sp_frame *f, const uint8_t *body,
		     size_t body_len)
{
	size_t fs = sp_frame_size(f, body_len), off;
	int ret;

	if (c->pt_len + fs > c->max_transport && (ret = seal_pt(c)) != 0)
		return ret;
	ret = grow(&c->pt, &c->pt_cap, c->pt_len + fs);
	if (ret)
		return ret;
	off = c->pt_len;
	ret = sp_frame_put_header(c->pt, c->pt_cap, &off, f, body_len);
	if (ret)
		return ret;
	if (body_len)
		memcpy(c->pt + off, body, body_len);
	c->pt_len = (uint32_t)(off + body_len);
	mark_dirty(s, c);
	return 0;
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
		if (seal_pt(c)) {
			lg_count_error(s->w, LG_E_CLIENT);
			continue;
		}
		kick(s, c);
	}
}

/* ------------------------------------------------------ connections --- */

static void conn_reset(struct conn *c)
{
	if (c->hs) {
		sp_noise_handshake_wipe(c->hs);
		free(c->hs);
		c->hs = NULL;
	}
	sp_noise_transport_wipe(&c->tr);
	free(c->part);
	c->part = NULL;
	c->part_len = c->part_need = 0;
	c->pt_len = c->out_len = 0;
	c->fifo_len = c->fifo_head = 0;
	c->nacks = 0;
	c->recv_armed = false;
}

static void start_connect(struct lgs *s, struct conn *c);

/*
 * A connection failed or closed. During connect-up it is retried a few
 * times (the broker may refuse bursts above its --handshake-rate); later it
 * stays down and its due envelopes count as sender_down.
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
	c->send_inflight = false;
	s->outstanding -= c->fifo_len;
	conn_reset(c);
	c->state = C_DEAD;
	c->ready = false;
	if (was_hs) {
		s->hs_inflight--;
		if (c->attempts < CONNECT_ATTEMPTS)
			start_connect(s, c);
	}
}

static void start_connect(struct lgs *s, struct conn *c)
{
	const struct lg_opts *o = s->w->o;
	struct io_uring_sqe *sqe;
	int one = 1;

	c->attempts++;
	c->fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		c->state = C_DEAD;
		lg_count_error(s->w, LG_E_CONNECT);
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = C_CONNECTING;
	s->hs_inflight++;
	sqe = sp_ring_sqe(&s->ring);
	io_uring_prep_connect(sqe, c->fd, (const struct sockaddr *)&o->addr, o->addr_len);
	io_uring_sqe_set_data64(sqe, ud_pack(OP_CONNECT, slot_of(s, c), c->gen));
}

/* TCP is up: preamble + IK message 1 in one send, then receive. */
static void on_connected(struct lgs *s, struct conn *c)
{
	uint8_t pre[SP_PREAMBLE_LEN] = { 'S', 'E', 'A', 'L', SP_PROTOCOL_VERSION,
					 SP_PREAMBLE_PATTERN_IK, 0, 0 };
	uint8_t payload[64];
	struct sp_hello hello = { .protocol_version = SP_PROTOCOL_VERSION };
	size_t plen, mlen;
	int ret;

	c->hs = calloc(1, sizeof(*c->hs));
	if (!c->hs || grow(&c->out, &c->out_cap, SP_PREAMBLE_LEN + SP_LEN_PREFIX + 256)) {
		conn_fail(s, c, LG_E_CLIENT);
		return;
	}
	/* -> e, es, s, ss with ClientHello */
	ret = sp_noise_handshake_init(c->hs, SP_NOISE_IK, SP_NOISE_INITIATOR, pre, sizeof(pre),
				      dev_priv(c->dev), g_server_pub);
	if (!ret)
		ret = sp_frame_client_hello_encode(&hello, payload, sizeof(payload), &plen);
	if (!ret)
		ret = sp_noise_handshake_write(c->hs, payload, plen, c->out + SP_PREAMBLE_LEN +
					       SP_LEN_PREFIX, c->out_cap - SP_PREAMBLE_LEN -
					       SP_LEN_PREFIX, &mlen);
	if (ret) {
		conn_fail(s, c, LG_E_HANDSHAKE);
		return;
	}
	memcpy(c->out, pre, sizeof(pre));
	c->out[SP_PREAMBLE_LEN] = (uint8_t)(mlen >> 8);
	c->out[SP_PREAMBLE_LEN + 1] = (uint8_t)mlen;
	c->out_len = (uint32_t)(SP_PREAMBLE_LEN + SP_LEN_PREFIX + mlen);
	c->state = C_HANDSHAKE;
	kick(s, c);
	sp_ring_recv(&s->ring, c->fd, BGID, ud_pack(OP_RECV, slot_of(s, c), c->gen));
	c->recv_armed = true;
}

/* <- e, ee, se with ServerHello; then Split. */
static void on_handshake_msg(struct lgs *s, struct conn *c, const uint8_t *msg, size_t len)
{
	uint8_t payload[SP_HANDSHAKE_PAYLOAD_MAX];
	struct sp_hello sh;
	size_t plen;
	int ret;

	ret = sp_noise_handshake_read(c->hs, msg, len, payload, sizeof(payload), &plen);
	if (!ret && c->hs->state != SP_NOISE_HS_SPLIT)
		ret = -EPROTO;
	if (!ret)
		ret = sp_frame_server_hello_decode(payload, plen, &sh);
	if (!ret)
		ret = sp_noise_handshake_split(c->hs, &c->tr);
	if (ret) {
		conn_fail(s, c, LG_E_HANDSHAKE);
		return;
	}
	sp_noise_handshake_wipe(c->hs);
	free(c->hs);
	c->hs = NULL;
	c->max_transport = sh.max_transport && sh.max_transport <= SP_TRANSPORT_PLAINTEXT_MAX ?
			   sh.max_transport : SP_TRANSPORT_PLAINTEXT_MAX;
	c->state = C_OPEN;
	/*
	 * A Ping right away, and the device counts as connected only at its
	 * Pong: an IK connection is proven by its first authenticated transport
	 * message (until then the broker may not route to it, PROTOCOL.md), and
	 * the round trip means the broker has taken the connection in before
	 * any traffic starts.
	 */
	{
		struct sp_frame p;

		memset(&p, 0, sizeof(p));
		p.type = SP_FRAME_PING;
		p.u.ping.id = READY_PING_ID;
		if (put_frame(s, c, &p, NULL, 0)) {
			conn_fail(s, c, LG_E_CLIENT);
			return;
		}
	}
}

static void on_ready(struct lgs *s, struct conn *c)
{
	c->ready = true;
	s->hs_inflight--;
	s->w->st.connected++;
	s->w->st.connect_end = lg_now();
}

/* ---------------------------------------------------------- receiving --- */

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

static void on_transport_msg(struct lgs *s, struct conn *c, uint8_t *msg, size_t len)
{
	const struct lg_opts *o = s->w->o;
	struct sp_frame f;
	size_t plen, off = 0;
	uint64_t intended;
	int ret;

	if (sp_noise_decrypt(&c->tr.rx, msg, len, &plen)) {
		conn_fail(s, c, LG_E_DECRYPT);
		return;
	}
	while ((ret = sp_frame_next(msg, plen, &off, &f)) == 0) {
		switch (f.type) {
		case SP_FRAME_SEND_RESULT:
			if (!fifo_pop(c, &intended)) {
				lg_count_error(s->w, LG_E_PROTOCOL);
				break;
			}
			s->outstanding--;
			lg_count_result(s->w, (int)f.u.send_result.status, intended);
			if (o->closed_loop && lg_sending(s->w, lg_now()) &&
			    lg_is_sender(o, c->dev))
				send_envelope(s, c, lg_now());
			break;
		case SP_FRAME_DELIVER:
			on_deliver(s, c, &f);
			break;
		case SP_FRAME_DRAINED:
			if (o->pattern == LG_DRAIN && lg_is_receiver(o, c->dev) && !c->drained) {
				c->drained = true;
				s->w->st.drain_devices++;
				s->w->st.drain_reported += f.u.drained.count;
				s->w->st.drain_end = lg_now();
			}
			break;
		case SP_FRAME_PING: {
			struct sp_frame p;

			memset(&p, 0, sizeof(p));
			p.type = SP_FRAME_PONG;
			p.u.ping.id = f.u.ping.id;
			put_frame(s, c, &p, NULL, 0);
			break;
		}
		case SP_FRAME_PONG:
			if (!c->ready && f.u.ping.id == READY_PING_ID)
				on_ready(s, c);
			break;
		case SP_FRAME_GOAWAY: {
			int code = (int)f.u.goaway.code;

			s->w->st.goaway[code >= 0 && code < LG_STATUS_SLOTS ? code
								     : LG_STATUS_SLOTS - 1]++;
			break;
		}
		default:
			lg_count_error(s->w, LG_E_PROTOCOL);
			break;
		}
		if (c->state != C_OPEN)
			return;
	}
	if (ret != -ENODATA)
		conn_fail(s, c, LG_E_PROTOCOL);
}

static void on_msg(struct lgs *s, struct conn *c, uint8_t *msg, size_t len)
{
	if (c->state == C_HANDSHAKE)
		on_handshake_msg(s, c, msg, len);
	else if (c->state == C_OPEN)
		on_transport_msg(s, c, msg, len);
}

/* Splits received bytes into length-prefixed Noise messages. data is a
 * provided buffer, borrowed until the caller recycles it; complete messages
 * are decrypted in place in it, a split one is copied into c->part. */
static void feed(struct lgs *s, struct conn *c, uint8_t *data, size_t len)
{
	uint32_t gen = c->gen;

	while (len && c->gen == gen) {
		if (c->part_len) {
			size_t take;

			if (c->part_len < SP_LEN_PREFIX) {
				c->part[c->part_len++] = *data++;
				len--;
				if (c->part_len < SP_LEN_PREFIX)
					continue;
				c->part_need = SP_LEN_PREFIX + ((uint32_t)c->part[0] << 8 | c->part[1]);
				if (c->part_need == SP_LEN_PREFIX) {
					conn_fail(s, c, LG_E_PROTOCOL);
					return;
				}
				uint8_t *p = realloc(c->part, c->part_need);

				if (!p) {
					conn_fail(s, c, LG_E_CLIENT);
					return;
				}
				c->part = p;
				continue;
			}
			take = c->part_need - c->part_len;
			if (take > len)
				take = len;
			memcpy(c->part + c->part_len, data, take);
			c->part_len += (uint32_t)take;
			data += take;
			len -= take;
			if (c->part_len == c->part_need) {
				uint8_t *p = c->part;
				uint32_t need = c->part_need;

				c->part = NULL;
				c->part_len = c->part_need = 0;
				on_msg(s, c, p + SP_LEN_PREFIX, need - SP_LEN_PREFIX);
				free(p);
			}
			continue;
		}
		if (len < SP_LEN_PREFIX) {
			c->part = malloc(SP_LEN_PREFIX);
			if (!c->part) {
				conn_fail(s, c, LG_E_CLIENT);
				return;
			}
			c->part[0] = *data;
			c->part_len = 1;
			c->part_need = 0;
			data++;
			len--;
			continue;
		}
		size_t mlen = (size_t)data[0] << 8 | data[1];

		if (mlen == 0) {
			conn_fail(s, c, LG_E_PROTOCOL);
			return;
		}
		if (len >= SP_LEN_PREFIX + mlen) {
			on_msg(s, c, data + SP_LEN_PREFIX, mlen);
			data += SP_LEN_PREFIX + mlen;
			len -= SP_LEN_PREFIX + mlen;
			continue;
		}
		c->part = malloc(SP_LEN_PREFIX + mlen);
		if (!c->part) {
			conn_fail(s, c, LG_E_CLIENT);
			return;
		}
		memcpy(c->part, data, len);
		c->part_len = (uint32_t)len;
		c->part_need = (uint32_t)(SP_LEN_PREFIX + mlen);
		len = 0;
	}
}

/* -------------------------------------------------------------- loop --- */

static void handle_cqe(struct lgs *s, struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	enum op op = (enum op)(ud >> 56);
	uint32_t slot = (uint32_t)(ud >> 32) & 0xffffff, gen = (uint32_t)ud;
	int bid = sp_cqe_bid(cqe);
	struct conn *c;

	if (slot >= s->w->count) {
		if (bid >= 0)
			sp_bufring_put(&s->br, (uint16_t)bid);
		return;
	}
	c = &s->conns[slot];
	if (c->gen != gen) {
		/* A late completion for a closed connection. */
		if (bid >= 0)
			sp_bufring_put(&s->br, (uint16_t)bid);
		return;
	}
	switch (op) {
	case OP_CONNECT:
		if (cqe->res < 0)
			conn_fail(s, c, LG_E_CONNECT);
		else
			on_connected(s, c);
		break;
	case OP_SEND:
		if (cqe->res < 0) {
			c->send_inflight = false;
			conn_fail(s, c, c->ready ? LG_E_CLOSED : LG_E_HANDSHAKE);
			break;
		}
		c->tx_off += (uint32_t)cqe->res;
		if (c->tx_off < c->tx_len) {
			sp_ring_send(&s->ring, c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off, ud);
			break;
		}
		c->send_inflight = false;
		kick(s, c);
		break;
	case OP_RECV:
		if (cqe->res > 0 && bid >= 0) {
			feed(s, c, sp_bufring_addr(&s->br, (uint16_t)bid), (size_t)cqe->res);
			sp_bufring_put(&s->br, (uint16_t)bid);
		} else if (bid >= 0) {
			sp_bufring_put(&s->br, (uint16_t)bid);
		}
		if (c->gen != gen)
			break;
		if (cqe->res == 0 || (cqe->res < 0 && cqe->res != -ENOBUFS)) {
			conn_fail(s, c, c->ready ? LG_E_CLOSED : LG_E_HANDSHAKE);
			break;
		}
		if (!(cqe->flags & IORING_CQE_F_MORE))
			sp_ring_recv(&s->ring, c->fd, BGID, ud_pack(OP_RECV, slot, gen));
		break;
	}
}

/* One turn: submit, wait until `until` (monotonic ns) or a completion, reap. */
static void turn(struct lgs *s, uint64_t until)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts;
	uint64_t now = lg_now(), wait = until > now ? until - now : 0;
	unsigned head, n = 0;

	flush_dirty(s);
	sp_bufring_flush(&s->br);
	if (wait > 100000000ull)
		wait = 100000000ull;
	ts.tv_sec = (long long)(wait / 1000000000ull);
	ts.tv_nsec = (long long)(wait % 1000000000ull);
	io_uring_submit_and_wait_timeout(&s->ring.ring, &cqe, wait ? 1 : 0, wait ? &ts : NULL,
					 NULL);
	io_uring_for_each_cqe(&s->ring.ring, head, cqe) {
		handle_cqe(s, cqe);
		n++;
	}
	io_uring_cq_advance(&s->ring.ring, n);
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

			if ((s->outstanding == 0 && quiet) || now >= stop_by)
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
	ret = sp_ring_init(&s.ring, RING_ENTRIES);
	if (ret)
		return ret;
	ret = sp_bufring_init(&s.br, &s.ring, BGID, RECV_BUFFERS, RECV_BUFFER_SIZE);
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
	/* The process exits next: the kernel closes the sockets. */
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
	snprintf(o->variant, sizeof(o->variant), "IK, io_uring");
	return 0;
}

static const struct lg_driver driver = {
	.name = "sealpost",
	.help = "  --server-key HEX        the broker's static public key (64 hex digits)\n"
		"  --data-dir DIR          or read it from DIR/server.pub\n"
		"  --seal                  seal bodies end to end (Noise_X; 2 X25519 per envelope\n"
		"                          on each side: measures the clients too)\n",
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
