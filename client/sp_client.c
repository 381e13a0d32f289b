/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_client.c: a broker connection: connect + Noise handshake, queued sends
 * coalesced into transport messages, and the event stream.
 *
 * Output: lib/session (struct sp_session in the guarded secrets) queues
 * the handshake messages and then batches frames into transport messages
 * (sp_session_tx_frame / tx_seal); the socket driver writes what
 * sp_session_tx_peek gives and reports sp_session_tx_sent. Envelopes are
 * sealed into sealbuf first, then encrypted into the open message.
 *
 * Input buffers (owned by the client, offsets rather than pointers so they
 * may grow with realloc):
 *
 *   rbuf: [rstart, rend) received bytes not yet consumed. The transport
 *         message at rstart is given whole to sp_session_rx, which
 *         decrypts it in place; its
 *         frames are read lazily, one event at a time (plain_*). Opened
 *         messages go to msgbuf, so rbuf may move between events.
 *
 * Layering: sockets, buffers and events here; lib/session the protocol
 * (handshake, transport in both directions), sp_frame the framing, sp_seal
 * the envelopes.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "sealpost.h"
#include "sp_be.h"
#include "sp_clock.h"
#include "sp_frame.h"
#include "sp_fsutil.h"
#include "sp_hostport.h"
#include "sp_internal.h"
#include "sp_limits.h"
#include "sp_noise.h"
#include "sp_seal.h"
#include "sp_session.h"

/* macOS and iOS have no MSG_NOSIGNAL; there the socket gets SO_NOSIGPIPE
 * (open_socket) and the flag is a no-op. */
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

#define S(x) _Static_assert((int)SEALPOST_##x == (int)SP_##x, "status " #x)
S(STATUS_DELIVERED);
S(STATUS_ACCEPTED);
S(STATUS_ERR_OFFLINE);
S(STATUS_ERR_TOO_LARGE);
S(STATUS_ERR_BAD_RECIPIENT);
S(STATUS_ERR_RECIPIENT_BUSY);
S(STATUS_ERR_MAILBOX_FULL);
S(STATUS_ERR_RATE_LIMITED);
S(STATUS_ERR_INTERNAL);
S(STATUS_ERR_SHUTTING_DOWN);
S(STATUS_GOAWAY_PROTOCOL);
S(STATUS_GOAWAY_TAKEOVER);
S(STATUS_GOAWAY_SHUTDOWN);
S(STATUS_GOAWAY_SLOW_CONSUMER);
S(STATUS_GOAWAY_IDLE);
#undef S

enum {
	CONNECT_TIMEOUT_DEFAULT_MS = 30000,
	/* Buffers start small and grow to what the traffic needs, and shrink
	 * back when drained: a load generator holds thousands of clients. */
	RBUF_INITIAL = 16 << 10,
	BUF_KEEP = 256 << 10,           /* larger idle buffers are given back */
	/* Past this much unread input we stop reading: the broker then sees a
	 * slow consumer, which is the truth. */
	RBUF_MAX = 16 << 20,
	/* Unsent output above which sealpost_client_send says -ENOBUFS. */
	OUT_QUEUE_MAX = 8 << 20,
	READ_BUDGET = 1 << 20,          /* bytes per read pass, so writes get a turn */
	MIN_TRANSPORT = 256,            /* a ServerHello below this is nonsense */
	/* io_err value for "the broker closed the TCP connection": clean if a
	 * GoAway came before it, which is only known once the input before the
	 * EOF has been parsed. */
	CLOSED_EOF = 1,
};

/* Options this library knows, as the caller passes them. */
static const uint32_t CONNECT_FLAGS_KNOWN = SEALPOST_CONNECT_MANUAL_ACK;
static const uint32_t SEND_FLAGS_KNOWN = SEALPOST_SEND_ONLINE_ONLY;

_Static_assert((int)SEALPOST_SEND_ONLINE_ONLY == (int)SP_SEND_ONLINE_ONLY, "online-only flag");

struct held_event {
	struct sealpost_event ev;
	uint8_t *data;                  /* malloc'd copy of a MESSAGE's data */
};

/* Everything secret a connection holds, in ONE guarded allocation (each
 * sodium_malloc costs guard pages and memory mappings). */
struct secrets {
	struct sealpost_key key;              /* our copy of the device key */
	/* The protocol engine: handshake, then the transport keys and the
	 * outbound queue (transport messages are batched and sealed there). */
	struct sp_session s;
};

struct sealpost_client {
	int fd;
	struct secrets *sec;            /* sodium_malloc */
	struct sealpost_key *key;             /* &sec->key */
	struct sp_session *ss;          /* &sec->s */
	struct sp_session_env env;      /* ClientHello, hooks, pool, for ss */
	struct sp_txpool pool;          /* ss's output chunks */
	uint8_t *sealbuf;               /* an envelope being sealed; grows as needed */
	size_t sealcap;
	uint8_t server_pub[SP_KEY_LEN];
	uint32_t max_envelope;
	uint32_t max_transport;
	uint64_t next_client_id;
	uint64_t next_ping_id;
	bool manual_ack;
	/* Auto-ack: seq of the MESSAGE/BAD_ENVELOPE last handed to the app,
	 * acknowledged on its next call (it has then taken the event). */
	uint64_t taken_seq;

	uint64_t acks[SP_ACK_SEQS_MAX];
	uint32_t nacks;

	uint8_t *rbuf;
	size_t rcap, rstart, rend;
	bool have_plain;
	size_t plain_start, plain_len, plain_off, plain_end;

	uint8_t *msgbuf;                /* the last opened message; grows as needed */
	size_t msgcap;
	size_t msg_len;                 /* bytes of msgbuf to wipe on the next call */

	struct held_event *held;        /* ring of events kept by send_wait */
	size_t held_head, held_count, held_cap;
	uint8_t *held_out;              /* data handed out from held; freed next call */
	size_t held_out_len;

	int io_err;                     /* 0, CLOSED_EOF or a negative errno */
	bool fatal;                     /* protocol error: buffered input is void */
	bool goaway;
	bool shut;                      /* shutdown(2) done */
};

/* ------------------------------------------------------------ helpers --- */

static int64_t now_ms(void)
{
	return (int64_t)sp_clock_mono_ms();
}

/* timeout_ms < 0: no deadline (-1). */
static int64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

/* Milliseconds left for poll(2): -1 forever, 0 expired. */
static int remaining(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

static void put_be16(uint8_t *p, size_t v)
{
	sp_be_put16(p, (uint16_t)v);
}

static size_t get_be16(const uint8_t *p)
{
	return sp_be_get16(p);
}

/* Waits for events on fd until the deadline; 0 on readiness, -ETIMEDOUT. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	for (;;) {
		r = poll(&p, 1, remaining(deadline));
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* Blocking-with-deadline I/O on a non-blocking socket: the handshake only. */
static int write_all(int fd, const uint8_t *buf, size_t len, int64_t deadline)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		int r;

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return errno == EPIPE ? -ECONNRESET : -errno;
		r = wait_fd(fd, POLLOUT, deadline);
		if (r < 0)
			return r;
	}
	return 0;
}

static int read_exact(int fd, uint8_t *buf, size_t len, int64_t deadline)
{
	while (len) {
		ssize_t n = recv(fd, buf, len, 0);
		int r;

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		r = wait_fd(fd, POLLIN, deadline);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ------------------------------------------------------------ connect --- */

/* A non-blocking, close-on-exec socket that never raises SIGPIPE, in one
 * call where the platform has SOCK_NONBLOCK/SOCK_CLOEXEC, else with fcntl. */
static int open_socket(const struct addrinfo *ai)
{
	int fd;

#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -errno;
#else
	int fl;

	fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		fl = -errno;
		close(fd);
		return fl;
	}
#endif
#ifdef SO_NOSIGPIPE
	{
		int on = 1;

		setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof(on));
	}
#endif
	return fd;
}

static int connect_one(const struct addrinfo *ai, int64_t deadline)
{
	int fd, r, one = 1, err = 0;
	socklen_t elen = sizeof(err);

	fd = open_socket(ai);
	if (fd < 0)
		return fd;
	/* We coalesce frames ourselves; Nagle would only add latency. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		r = -errno;
		goto fail;
	}
	r = wait_fd(fd, POLLOUT, deadline);
	if (r < 0)
		goto fail;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) {
		r = -errno;
		goto fail;
	}
	if (err) {
		r = -err;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return r;
}

static int dial(const char *server, int64_t deadline)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL, *ai;
	struct sp_hostport hp;
	char port[6];
	int r;

	r = sp_hostport_split(server, &hp);
	if (r < 0)
		return r;
	if (hp.port == 0)
		return -EINVAL;
	snprintf(port, sizeof(port), "%u", (unsigned)hp.port);
	r = getaddrinfo(hp.host, port, &hints, &res);
	if (r != 0)
		return r == EAI_SYSTEM ? -errno : r == EAI_MEMORY ? -ENOMEM : -EADDRNOTAVAIL;
	r = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		r = connect_one(ai, deadline);
		if (r >= 0 || r == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	return r;
}

/* Reads one length-prefixed handshake message into buf (cap bytes). */
static int read_hs_msg(int fd, uint8_t *buf, size_t cap, size_t *len, int64_t deadline)
{
	uint8_t pre[SP_LEN_PREFIX];
	int r;

	r = read_exact(fd, pre, sizeof(pre), deadline);
	if (r < 0)
		return r;
	*len = get_be16(pre);
	if (*len == 0 || *len > cap)
		return -EPROTO;
	return read_exact(fd, buf, *len, deadline);
}

static int check_server_hello(struct sealpost_client *c, const uint8_t *payload, size_t len)
{
	struct sp_hello h = { 0 };

	if (sp_frame_server_hello_decode(payload, len, &h) < 0)
		return -EPROTO;
	if (h.protocol_version != SP_PROTOCOL_VERSION || h.max_envelope <= SP_SEAL_OVERHEAD)
		return -EPROTO;
	c->max_envelope = h.max_envelope > SP_BODY_MAX ? SP_BODY_MAX : h.max_envelope;
	c->max_transport = h.max_transport == 0 || h.max_transport > SP_TRANSPORT_PLAINTEXT_MAX
		? SP_TRANSPORT_PLAINTEXT_MAX : h.max_transport;
	if (c->max_transport < MIN_TRANSPORT)
		return -EPROTO;
	return 0;
}

/* Engine hooks while the handshake runs (only message 2 is fed to it). */
static enum sp_close_reason hs_server_hello(void *ctx, struct sp_session *s,
					    const uint8_t *payload, size_t len)
{
	struct sealpost_client *c = ctx;

	if (check_server_hello(c, payload, len) < 0)
		return SP_CLOSE_HANDSHAKE_FAILED;
	sp_session_set_tx_max(s, c->max_transport);
	return SP_CLOSE_NONE;
}

static enum sp_close_reason hs_established(void *ctx, struct sp_session *s)
{
	(void)ctx;
	(void)s;
	return SP_CLOSE_NONE;
}

/*
 * Frames are read lazily, one event per call (pull_event), from the
 * plaintext the engine left in rbuf: the engine is fed one whole transport
 * message at a time, which it decrypts in place, and its frame walk is only
 * a check. A malformed frame is left for pull_event to find, so the events
 * before it are still handed out, as they always were.
 */
static enum sp_close_reason on_frame(void *ctx, struct sp_session *s, const struct sp_frame *f)
{
	(void)ctx;
	(void)s;
	(void)f;
	return SP_CLOSE_NONE;
}

/* Writes everything the engine has queued, until the deadline. */
static int hs_flush(struct sealpost_client *c, struct sp_session *s, int64_t deadline)
{
	const uint8_t *p;
	size_t len;
	int r;

	while (sp_session_tx_peek(s, &p, &len)) {
		r = write_all(c->fd, p, len, deadline);
		if (r < 0)
			return r;
		sp_session_tx_sent(s, len);
	}
	return 0;
}

/*
 * SEALPOST_TEST_REKEY_MESSAGES=N: for the test suite only (docs/CLIENT.md):
 * rekey the transport every N messages instead of the protocol's
 * SP_REKEY_MESSAGES, to meet a broker started with --test-rekey-messages N.
 * Anything unparsable or out of range is ignored (the protocol's value).
 */
static uint64_t test_rekey_messages(void)
{
	const char *v = getenv("SEALPOST_TEST_REKEY_MESSAGES");
	char *end;
	unsigned long long n;

	if (!v || !*v)
		return 0;
	n = strtoull(v, &end, 10);
	return *end || n > SP_REKEY_MESSAGES ? 0 : (uint64_t)n;
}

/*
 * The Noise handshake, initiator side, run by lib/session: IK: -> e, es,
 * s, ss [ClientHello]; <- e, ee, se [ServerHello]. XX: -> e; <- e, ee, s,
 * es [ServerHello]; -> s, se [ClientHello]. Blocks until the deadline.
 * The engine wipes the handshake state on every path; the session (the
 * transport keys) lives in c->sec and is wiped by sealpost_client_close.
 */
static int handshake(struct sealpost_client *c, const uint8_t *server_key, int64_t deadline)
{
	uint8_t in[SP_LEN_PREFIX + SP_HANDSHAKE_MSG_MAX];
	struct sp_session *s = c->ss;
	enum sp_close_reason why;
	size_t inlen;
	int r;

	c->env = (struct sp_session_env){
		.hello = { .protocol_version = SP_PROTOCOL_VERSION },
		.pool = &c->pool,
		.hooks = { .established = hs_established, .frame = on_frame,
			   .server_hello = hs_server_hello, .ctx = c },
		.rekey_every = test_rekey_messages(),
	};
	r = sp_session_connect(s, &c->env, c->key->priv, server_key);
	if (r < 0)
		return r;
	r = hs_flush(c, s, deadline);
	if (r < 0)
		goto out;

	/* Message 2 alone: read exactly it, so that nothing after it (the
	 * broker's first transport messages) goes to the engine. */
	r = read_hs_msg(c->fd, in + SP_LEN_PREFIX, sizeof(in) - SP_LEN_PREFIX, &inlen, deadline);
	if (r < 0)
		goto out;
	put_be16(in, inlen);
	why = sp_session_rx(s, in, SP_LEN_PREFIX + inlen);
	if (why != SP_CLOSE_NONE || s->state != SP_SESSION_ESTABLISHED) {
		r = why == SP_CLOSE_DECRYPT_FAILED ? -EBADMSG
		  : why == SP_CLOSE_NOMEM ? -ENOMEM : -EPROTO;
		goto out;
	}
	/* XX: message 3 (s, se + ClientHello). */
	r = hs_flush(c, s, deadline);
	if (r < 0)
		goto out;
	memcpy(c->server_pub, s->peer, SP_KEY_LEN);
out:
	if (r < 0)
		sp_session_wipe(s);
	sodium_memzero(in, sizeof(in));
	return r;
}

/*
 * Copies the caller's options the way Linux copies extensible structs
 * (openat2, clone3): fields past the caller's size read as 0; bytes past
 * ours must be 0, or the caller asked for something we cannot do.
 */
static int read_opts(const struct sealpost_connect_opts *in, struct sealpost_connect_opts *o)
{
	const uint8_t *extra;
	size_t i;

	memset(o, 0, sizeof(*o));
	if (!in)
		return 0;
	if (in->size < offsetof(struct sealpost_connect_opts, flags) + sizeof(o->flags))
		return -EINVAL;
	memcpy(o, in, in->size < sizeof(*o) ? in->size : sizeof(*o));
	extra = (const uint8_t *)in;
	for (i = sizeof(*o); i < in->size; i++)
		if (extra[i])
			return -E2BIG;
	if (o->flags & ~CONNECT_FLAGS_KNOWN)
		return -EINVAL;
	return 0;
}

/*
 * Each connection's ids start at a random 63-bit value: the broker
 * deduplicates on (sender, recipient, client_id) for a whole window, so
 * a counter restarting at 1 after a reconnect would make new envelopes
 * look like retries and be dropped. 2^63 leaves room to count up.
 */
static uint64_t first_client_id(void)
{
	uint64_t id;

	randombytes_buf(&id, sizeof(id));
	id &= UINT64_MAX >> 1;
	return id ? id : 1;
}

SEALPOST_API int sealpost_client_connect(struct sealpost_client **out, const char *server,
					 const struct sealpost_key *key, const uint8_t *server_key,
					 int timeout_ms)
{
	return sealpost_client_connect_opts(out, server, key, server_key, timeout_ms, NULL);
}

SEALPOST_API int sealpost_client_connect_opts(struct sealpost_client **out, const char *server,
					      const struct sealpost_key *key,
					      const uint8_t *server_key, int timeout_ms,
					      const struct sealpost_connect_opts *opts)
{
	struct sealpost_connect_opts o;
	struct sealpost_client *c;
	int64_t deadline;
	int r;

	if (!out || !server || !key)
		return -EINVAL;
	r = read_opts(opts, &o);
	if (r < 0)
		return r;
	if (server_key && !sp_noise_key_valid(server_key))
		return -EINVAL;
	if (sodium_init() < 0)
		return -ENOMEM;
	deadline = deadline_of(timeout_ms <= 0 ? CONNECT_TIMEOUT_DEFAULT_MS : timeout_ms);
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->next_client_id = first_client_id();
	c->next_ping_id = 1;
	c->manual_ack = o.flags & SEALPOST_CONNECT_MANUAL_ACK;
	c->sec = sodium_malloc(sizeof(*c->sec));
	sp_txpool_init(&c->pool, 0);
	c->rcap = RBUF_INITIAL;
	c->rbuf = malloc(c->rcap);
	if (!c->sec || !c->rbuf) {
		r = -ENOMEM;
		goto fail;
	}
	memset(c->sec, 0, sizeof(*c->sec));
	c->key = &c->sec->key;
	c->ss = &c->sec->s;
	memcpy(c->key, key, sizeof(*c->key));
	r = dial(server, deadline);
	if (r < 0)
		goto fail;
	c->fd = r;
	r = handshake(c, server_key, deadline);
	if (r < 0)
		goto fail;
	if (server_key) {
		/* IK: the broker routes this device only once a transport message
		 * proves we hold the session keys (a replayed message 1 cannot), so
		 * send an empty one now (PROTOCOL.md 4, "Proof"). */
		uint8_t proof[SP_LEN_PREFIX + SP_TAG_LEN];

		r = sp_noise_encrypt(&c->ss->t.tx, proof + SP_LEN_PREFIX, 0);
		if (r < 0)
			goto fail;
		put_be16(proof, SP_TAG_LEN);
		r = write_all(c->fd, proof, sizeof(proof), deadline);
		if (r < 0)
			goto fail;
	}
	*out = c;
	return 0;
fail:
	sealpost_client_close(c);
	return r;
}

SEALPOST_API void sealpost_client_server_key(const struct sealpost_client *c,
					     uint8_t pub[SEALPOST_KEY_LEN])
{
	memcpy(pub, c->server_pub, SP_KEY_LEN);
}

SEALPOST_API void sealpost_client_public_key(const struct sealpost_client *c,
					     uint8_t pub[SEALPOST_KEY_LEN])
{
	memcpy(pub, c->key->pub, SP_KEY_LEN);
}

SEALPOST_API uint32_t sealpost_client_max_envelope(const struct sealpost_client *c)
{
	return c->max_envelope;
}

SEALPOST_API size_t sealpost_client_max_message(const struct sealpost_client *c)
{
	return c->max_envelope - SP_SEAL_OVERHEAD;
}

/* ------------------------------------------------------------- output --- */

/* The error a call reports on a dead connection: -ENOTCONN after a GoAway
 * and the broker's close, the failure otherwise. */
static int conn_error(const struct sealpost_client *c)
{
	if (c->io_err == CLOSED_EOF)
		return c->goaway ? -ENOTCONN : -ECONNRESET;
	return c->io_err;
}

/* Stops all I/O on a broken connection; the fd stays ours until close. */
static void fail(struct sealpost_client *c, int err, bool fatal)
{
	if (!c->io_err)
		c->io_err = err;
	if (fatal)
		c->fatal = true;
	if (!c->shut && c->fd >= 0) {
		shutdown(c->fd, SHUT_RDWR);
		c->shut = true;
	}
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	uint8_t *n = sp_fsutil_grow(*buf, cap, need, 4096);

	if (!n)
		return -ENOMEM;
	*buf = n;
	return 0;
}

/* Finishes the open transport message (the engine batches frames into it). */
static int close_batch(struct sealpost_client *c)
{
	return sp_session_tx_seal(c->ss);
}

/* Appends a frame without a body to the open transport message. */
static int queue_frame(struct sealpost_client *c, const struct sp_frame *f)
{
	return sp_session_tx_frame(c->ss, f, NULL, 0);
}

static int queue_acks(struct sealpost_client *c)
{
	struct sp_frame f = { .type = SP_FRAME_ACK };
	int r;

	if (!c->nacks)
		return 0;
	memcpy(f.u.ack.seqs, c->acks, c->nacks * sizeof(c->acks[0]));
	f.u.ack.count = c->nacks;
	r = queue_frame(c, &f);
	if (r == 0)
		c->nacks = 0;
	return r;
}

/* Non-blocking: seals what is queued and writes what the socket takes. */
static int do_write(struct sealpost_client *c)
{
	int r;

	if (c->io_err)
		return conn_error(c);
	r = queue_acks(c);
	if (r == 0)
		r = close_batch(c);
	if (r < 0) {
		fail(c, r, true);
		return r;
	}
	for (;;) {
		const uint8_t *p;
		size_t len;
		ssize_t n;

		if (!sp_session_tx_peek(c->ss, &p, &len))
			return 0;
		n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			sp_session_tx_sent(c->ss, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		r = n < 0 && errno != EPIPE ? -errno : -ECONNRESET;
		fail(c, r, false);
		return r;
	}
}

/* taken_seq counts: the app's next step writes that ack (see ack_taken),
 * so an event loop polling for POLLOUT gets it out without new input. */
static bool out_pending(const struct sealpost_client *c)
{
	return sp_session_tx_queued(c->ss) || c->nacks || c->taken_seq;
}

static int check_send(struct sealpost_client *c)
{
	if (c->io_err || c->goaway)
		return -ENOTCONN;
	if (sp_session_tx_queued(c->ss) > OUT_QUEUE_MAX) {
		do_write(c);
		if (c->io_err)
			return -ENOTCONN;
		if (sp_session_tx_queued(c->ss) > OUT_QUEUE_MAX)
			return -ENOBUFS;
	}
	return 0;
}

/*
 * Queues a Send frame whose body (env_len bytes) is produced by seal or
 * copy. id 0: the next of this connection's counter; else a retry's id.
 */
static int queue_send(struct sealpost_client *c, const uint8_t to[SP_KEY_LEN], const uint8_t *msg,
		      size_t msg_len, const uint8_t *env, size_t env_len, uint32_t flags,
		      uint64_t id, uint64_t *client_id)
{
	struct sp_frame f = { .type = SP_FRAME_SEND };
	size_t sealed;
	int r;

	if (flags & ~SEND_FLAGS_KNOWN)
		return -EINVAL;
	if (env_len > c->max_envelope)
		return -EMSGSIZE;
	r = check_send(c);
	if (r < 0)
		return r;
	memcpy(f.u.send.to, to, SP_KEY_LEN);
	f.u.send.to_ok = 1;
	f.u.send.client_id = id ? id : c->next_client_id;
	f.u.send.flags = flags;
	if (sp_frame_size(&f, env_len) > c->max_transport)
		return -EMSGSIZE;
	if (!env) {
		if (grow(&c->sealbuf, &c->sealcap, env_len) < 0)
			return -ENOMEM;
		r = sp_seal(c->key->priv, to, msg ? msg : (const uint8_t *)"", msg_len,
			    c->sealbuf, env_len, &sealed);
		if (r < 0)
			return r;   /* nothing was queued: frame dropped */
		env = c->sealbuf;
	}
	r = sp_session_tx_frame(c->ss, &f, env, env_len);
	if (r < 0)
		return r;
	if (client_id)
		*client_id = f.u.send.client_id;
	if (!id)
		c->next_client_id++;
	return 0;
}

SEALPOST_API int sealpost_client_send_ex(struct sealpost_client *c,
					 const uint8_t to[SEALPOST_KEY_LEN], const void *msg,
					 size_t msg_len, uint32_t flags, uint64_t client_id,
					 uint64_t *used_id)
{
	if (!c || !to || (!msg && msg_len))
		return -EINVAL;
	if (!sp_noise_key_valid(to))
		return -EINVAL;
	if (msg_len > sealpost_client_max_message(c))
		return -EMSGSIZE;
	return queue_send(c, to, msg, msg_len, NULL, msg_len + SP_SEAL_OVERHEAD, flags, client_id,
			  used_id);
}

SEALPOST_API int sealpost_client_send(struct sealpost_client *c, const uint8_t to[SEALPOST_KEY_LEN],
				      const void *msg, size_t msg_len, uint64_t *client_id)
{
	return sealpost_client_send_ex(c, to, msg, msg_len, 0, 0, client_id);
}

SEALPOST_API int sealpost_client_send_raw_ex(struct sealpost_client *c,
					     const uint8_t to[SEALPOST_KEY_LEN], const uint8_t *env,
					     size_t env_len, uint32_t flags, uint64_t client_id,
					     uint64_t *used_id)
{
	if (!c || !to || (!env && env_len))
		return -EINVAL;
	return queue_send(c, to, NULL, 0, env ? env : (const uint8_t *)"", env_len, flags,
			  client_id, used_id);
}

SEALPOST_API int sealpost_client_send_raw(struct sealpost_client *c,
					  const uint8_t to[SEALPOST_KEY_LEN], const uint8_t *env,
					  size_t env_len, uint64_t *client_id)
{
	return sealpost_client_send_raw_ex(c, to, env, env_len, 0, 0, client_id);
}

SEALPOST_API int sealpost_client_ping(struct sealpost_client *c, uint64_t *id)
{
	struct sp_frame f = { .type = SP_FRAME_PING };
	int r;

	if (!c)
		return -EINVAL;
	r = check_send(c);
	if (r < 0)
		return r;
	/* Acks queued so far go first: the Pong then proves they were
	 * processed (sealpost_client_sync). */
	r = queue_acks(c);
	if (r < 0)
		return r;
	f.u.ping.id = c->next_ping_id;
	r = queue_frame(c, &f);
	if (r < 0)
		return r;
	if (id)
		*id = c->next_ping_id;
	c->next_ping_id++;
	return 0;
}

SEALPOST_API int sealpost_client_ack(struct sealpost_client *c, uint64_t seq)
{
	int r;

	if (!c)
		return -EINVAL;
	if (c->io_err || c->goaway)
		return -ENOTCONN;
	if (!seq)
		return 0;   /* online-only: nothing stored, nothing to ack */
	if (c->nacks == SP_ACK_SEQS_MAX) {
		r = queue_acks(c);
		if (r < 0)
			return r;
	}
	c->acks[c->nacks++] = seq;
	return 0;
}

/*
 * Auto-ack: the app called us again, so it has taken the last event we
 * handed out. On a dead connection the ack is dropped: the envelope comes
 * again next time (at-least-once), which is the only honest outcome.
 */
static void ack_taken(struct sealpost_client *c)
{
	uint64_t seq = c->taken_seq;
	int r;

	c->taken_seq = 0;
	if (!seq || c->io_err || c->goaway)
		return;
	/* Only an Ack frame that cannot be built fails here (out of memory):
	 * the output stream is then unusable. */
	r = sealpost_client_ack(c, seq);
	if (r < 0)
		fail(c, r, true);
}

/* Remembers a delivery handed to the app, for ack_taken. */
static void note_taken(struct sealpost_client *c, const struct sealpost_event *ev)
{
	if (!c->manual_ack &&
	    (ev->type == SEALPOST_EVENT_MESSAGE || ev->type == SEALPOST_EVENT_BAD_ENVELOPE))
		c->taken_seq = ev->seq;
}

/* -------------------------------------------------------------- input --- */

/* Moves unconsumed input to the front of rbuf. */
static void compact(struct sealpost_client *c)
{
	size_t shift = c->rstart;

	if (!shift)
		return;
	memmove(c->rbuf, c->rbuf + shift, c->rend - shift);
	c->rend -= shift;
	c->rstart = 0;
	if (c->have_plain) {
		c->plain_start -= shift;
		c->plain_end -= shift;
	}
}

/* All input consumed: start over at the front, and give back a big buffer. */
static void drained(struct sealpost_client *c)
{
	uint8_t *n;

	c->rstart = c->rend = 0;
	if (c->rcap <= BUF_KEEP)
		return;
	n = malloc(RBUF_INITIAL);
	if (!n)
		return;
	/* Decrypted frames were in it. */
	sodium_memzero(c->rbuf, c->rcap);
	free(c->rbuf);
	c->rbuf = n;
	c->rcap = RBUF_INITIAL;
}

/* Non-blocking: reads what is there, up to a budget. */
static int do_read(struct sealpost_client *c)
{
	size_t budget = READ_BUDGET;

	while (!c->io_err && budget) {
		ssize_t n;

		if (c->rcap - c->rend < 4096) {
			compact(c);
			if (c->rcap - c->rend < 4096) {
				if (c->rcap >= RBUF_MAX)
					return 0;
				if (grow(&c->rbuf, &c->rcap, c->rcap * 2) < 0) {
					fail(c, -ENOMEM, false);
					break;
				}
			}
		}
		n = recv(c->fd, c->rbuf + c->rend, c->rcap - c->rend, MSG_DONTWAIT);
		if (n > 0) {
			c->rend += (size_t)n;
			budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
			continue;
		}
		if (n == 0) {
			fail(c, CLOSED_EOF, false);
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		fail(c, -errno, false);
	}
	return c->io_err < 0 ? c->io_err : 0;
}

static bool read_room(const struct sealpost_client *c)
{
	return c->rcap < RBUF_MAX || c->rstart > 0 || c->rcap - c->rend >= 4096;
}

static void closed_event(const struct sealpost_client *c, struct sealpost_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = SEALPOST_EVENT_CLOSED;
	ev->error = c->io_err == CLOSED_EOF ? (c->goaway ? 0 : -ECONNRESET) : c->io_err;
}

/*
 * Turns one decoded frame into an event: 1 if it gives one, 0 if not;
 * -EPROTO for a frame a broker may not send, -ENOMEM.
 */
static int frame_event(struct sealpost_client *c, const struct sp_frame *f,
		       struct sealpost_event *ev)
{
	struct sp_frame pong = { .type = SP_FRAME_PONG };
	int r;

	memset(ev, 0, sizeof(*ev));
	switch (f->type) {
	case SP_FRAME_DELIVER:
		ev->seq = f->u.deliver.seq;
		/* msgbuf holds no plaintext here: release() wiped it. */
		if (grow(&c->msgbuf, &c->msgcap, f->body_len) < 0)
			return -ENOMEM;
		r = sp_seal_open(c->key->priv, f->body, f->body_len, ev->sender, c->msgbuf,
				 c->msgcap, &c->msg_len);
		if (r < 0) {
			c->msg_len = 0;
			ev->type = SEALPOST_EVENT_BAD_ENVELOPE;
			ev->error = -EBADMSG;
			return 1;
		}
		ev->type = SEALPOST_EVENT_MESSAGE;
		ev->data = c->msgbuf;
		ev->len = c->msg_len;
		return 1;
	case SP_FRAME_SEND_RESULT:
		ev->type = SEALPOST_EVENT_RESULT;
		ev->client_id = f->u.send_result.client_id;
		ev->status = (int)f->u.send_result.status;
		ev->seq = f->u.send_result.seq;
		return 1;
	case SP_FRAME_PONG:
		ev->type = SEALPOST_EVENT_PONG;
		ev->id = f->u.ping.id;
		return 1;
	case SP_FRAME_PING:
		/* Answered whenever output is next flushed. */
		pong.u.ping.id = f->u.ping.id;
		return c->goaway ? 0 : queue_frame(c, &pong);
	case SP_FRAME_GOAWAY:
		c->goaway = true;
		ev->type = SEALPOST_EVENT_GOAWAY;
		ev->status = (int)f->u.goaway.code;
		return 1;
	case SP_FRAME_DRAINED:
		ev->type = SEALPOST_EVENT_DRAINED;
		ev->id = f->u.drained.count;
		return 1;
	default:
		/* Send or Ack: frames only a client may send. */
		return -EPROTO;
	}
}

/*
 * Produces the next event from buffered input, without I/O: 1 with *ev, 0
 * when more input is needed. CLOSED once the input is used up on a dead
 * connection.
 */
static int pull_event(struct sealpost_client *c, struct sealpost_event *ev)
{
	enum sp_close_reason why;
	struct sp_frame f;
	size_t len, plain;
	int r;

	for (;;) {
		if (c->fatal)
			break;
		if (c->have_plain) {
			if (c->plain_off == c->plain_len) {
				c->have_plain = false;
				c->rstart = c->plain_end;
				if (c->rstart == c->rend)
					drained(c);
				continue;
			}
			r = sp_frame_next(c->rbuf + c->plain_start, c->plain_len, &c->plain_off, &f);
			if (r < 0)
				r = -EPROTO;   /* malformed frame */
			else
				r = frame_event(c, &f, ev);
			if (r < 0) {
				fail(c, r, true);
				break;
			}
			if (r > 0)
				return 1;
			continue;
		}
		if (c->rend - c->rstart < SP_LEN_PREFIX)
			break;
		len = get_be16(c->rbuf + c->rstart);
		if (len < SP_TAG_LEN) {
			fail(c, -EPROTO, true);
			break;
		}
		if (c->rend - c->rstart < SP_LEN_PREFIX + len)
			break;
		/* The whole message, contiguous: decrypted in place by the engine. */
		why = sp_session_rx(c->ss, c->rbuf + c->rstart, SP_LEN_PREFIX + len);
		if (why != SP_CLOSE_NONE && why != SP_CLOSE_PROTOCOL) {
			fail(c, why == SP_CLOSE_NOMEM ? -ENOMEM : -EBADMSG, true);
			break;
		}
		plain = len - SP_TAG_LEN;
		c->have_plain = true;
		c->plain_start = c->rstart + SP_LEN_PREFIX;
		c->plain_len = plain;
		c->plain_off = 0;
		c->plain_end = c->plain_start + len;
	}
	if (!c->io_err)
		return 0;
	if (c->io_err == CLOSED_EOF && c->rend != c->rstart && !c->fatal)
		c->io_err = -ECONNRESET;   /* EOF in the middle of a message */
	closed_event(c, ev);
	return 1;
}

/* Releases what the previous call handed out. */
static void release(struct sealpost_client *c)
{
	if (c->msg_len) {
		sodium_memzero(c->msgbuf, c->msg_len);
		c->msg_len = 0;
	}
	if (c->held_out) {
		sodium_memzero(c->held_out, c->held_out_len);
		free(c->held_out);
		c->held_out = NULL;
		c->held_out_len = 0;
	}
}

static int hold(struct sealpost_client *c, const struct sealpost_event *ev)
{
	struct held_event *h;

	if (c->held_count == c->held_cap) {
		size_t ncap = c->held_cap ? c->held_cap * 2 : 16, i;
		struct held_event *n = malloc(ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		for (i = 0; i < c->held_count; i++)
			n[i] = c->held[(c->held_head + i) % c->held_cap];
		free(c->held);
		c->held = n;
		c->held_cap = ncap;
		c->held_head = 0;
	}
	h = &c->held[(c->held_head + c->held_count) % c->held_cap];
	h->ev = *ev;
	h->data = NULL;
	if (ev->type == SEALPOST_EVENT_MESSAGE) {
		h->data = malloc(ev->len ? ev->len : 1);
		if (!h->data)
			return -ENOMEM;
		memcpy(h->data, ev->data, ev->len);
		h->ev.data = h->data;
	}
	c->held_count++;
	return 0;
}

/* One round of non-blocking I/O in both directions. */
static void pump(struct sealpost_client *c)
{
	if (c->io_err)
		return;
	do_write(c);
	if (read_room(c))
		do_read(c);
}

SEALPOST_API short sealpost_client_poll_events(const struct sealpost_client *c)
{
	short ev = 0;

	if (c->io_err || read_room(c))
		ev |= POLLIN;
	if (!c->io_err && out_pending(c))
		ev |= POLLOUT;
	return ev;
}

SEALPOST_API int sealpost_client_next_event(struct sealpost_client *c, struct sealpost_event *ev,
					    int timeout_ms)
{
	int64_t deadline = deadline_of(timeout_ms);
	int r;

	if (!c || !ev)
		return -EINVAL;
	release(c);
	ack_taken(c);
	if (c->held_count) {
		struct held_event *h = &c->held[c->held_head];

		*ev = h->ev;
		c->held_out = h->data;
		c->held_out_len = h->ev.len;
		c->held_head = (c->held_head + 1) % c->held_cap;
		c->held_count--;
		note_taken(c, ev);
		return 1;
	}
	for (;;) {
		if (pull_event(c, ev)) {
			note_taken(c, ev);
			return 1;
		}
		pump(c);
		if (pull_event(c, ev)) {
			note_taken(c, ev);
			return 1;
		}
		r = wait_fd(c->fd, sealpost_client_poll_events(c), deadline);
		if (r == -ETIMEDOUT)
			return 0;
		if (r < 0)
			return r;
	}
}

/*
 * Takes buffered events until the one of `type` (RESULT or PONG) for id: 1
 * when found (*found filled), 0 when the buffered input is used up, < 0
 * when the connection died. Every other event is kept, untaken, for
 * sealpost_client_next_event.
 */
static int scan_for(struct sealpost_client *c, enum sealpost_event_type type, uint64_t id,
		    struct sealpost_event *found)
{
	struct sealpost_event ev;
	int r;

	while (pull_event(c, &ev)) {
		if (ev.type == SEALPOST_EVENT_CLOSED)
			return ev.error ? ev.error : -ENOTCONN;
		if (ev.type == type &&
		    (type == SEALPOST_EVENT_RESULT ? ev.client_id : ev.id) == id) {
			*found = ev;
			return 1;
		}
		r = hold(c, &ev);
		release(c);
		if (r < 0)
			return r;
	}
	return 0;
}

static int wait_for(struct sealpost_client *c, enum sealpost_event_type type, uint64_t id,
		    int64_t deadline, struct sealpost_event *found)
{
	int r;

	for (;;) {
		r = scan_for(c, type, id, found);
		if (r)
			return r < 0 ? r : 0;
		pump(c);
		r = scan_for(c, type, id, found);
		if (r)
			return r < 0 ? r : 0;
		r = wait_fd(c->fd, sealpost_client_poll_events(c), deadline);
		if (r < 0)
			return r;
	}
}

SEALPOST_API int sealpost_client_wait_result(struct sealpost_client *c, uint64_t client_id,
					     int timeout_ms, int *status, uint64_t *seq)
{
	int64_t deadline = deadline_of(timeout_ms);
	struct sealpost_event ev = { 0 };     /* -O3 cannot see wait_for fills it on success */
	int r;

	if (!c || !status)
		return -EINVAL;
	release(c);
	ack_taken(c);
	r = wait_for(c, SEALPOST_EVENT_RESULT, client_id, deadline, &ev);
	if (r < 0)
		return r;
	*status = ev.status;
	if (seq)
		*seq = ev.seq;
	return 0;
}

SEALPOST_API int sealpost_client_send_wait(struct sealpost_client *c,
					   const uint8_t to[SEALPOST_KEY_LEN], const void *msg,
					   size_t msg_len, int timeout_ms, int *status,
					   uint64_t *seq)
{
	uint64_t id;
	int r;

	if (!status)
		return -EINVAL;
	r = sealpost_client_send(c, to, msg, msg_len, &id);
	if (r < 0)
		return r;
	return sealpost_client_wait_result(c, id, timeout_ms, status, seq);
}

SEALPOST_API int sealpost_client_sync(struct sealpost_client *c, int timeout_ms)
{
	int64_t deadline = deadline_of(timeout_ms);
	struct sealpost_event ev;
	uint64_t id;
	int r;

	if (!c)
		return -EINVAL;
	release(c);
	ack_taken(c);
	r = sealpost_client_ping(c, &id);
	if (r < 0)
		return r == -ENOTCONN && c->io_err ? conn_error(c) : r;
	return wait_for(c, SEALPOST_EVENT_PONG, id, deadline, &ev);
}

SEALPOST_API int sealpost_client_flush(struct sealpost_client *c, int timeout_ms)
{
	int64_t deadline = deadline_of(timeout_ms);
	int r;

	if (!c)
		return -EINVAL;
	release(c);
	ack_taken(c);
	for (;;) {
		r = do_write(c);
		if (r < 0)
			return r;
		if (!out_pending(c))
			return 0;
		/* Keep reading while we wait, or a broker blocked on writing to
		 * us could stop reading from us: a deadlock. */
		if (read_room(c))
			do_read(c);
		if (c->io_err)
			return conn_error(c);
		r = wait_fd(c->fd, POLLOUT | (read_room(c) ? POLLIN : 0), deadline);
		if (r < 0)
			return r;
	}
}

SEALPOST_API int sealpost_client_fd(const struct sealpost_client *c)
{
	return c->fd;
}

SEALPOST_API bool sealpost_client_want_write(const struct sealpost_client *c)
{
	return !c->io_err && out_pending(c);
}

SEALPOST_API int sealpost_client_step(struct sealpost_client *c)
{
	if (!c)
		return -EINVAL;
	release(c);
	ack_taken(c);
	pump(c);
	if (c->io_err)
		return conn_error(c);
	return 0;
}

SEALPOST_API void sealpost_client_close(struct sealpost_client *c)
{
	size_t i;

	if (!c)
		return;
	release(c);
	ack_taken(c);
	/* Best effort, never blocking: the last ack usually fits the socket. */
	if (c->fd >= 0 && !c->io_err && out_pending(c))
		do_write(c);
	if (c->fd >= 0)
		close(c->fd);
	if (c->sec) {
		sp_session_release(&c->sec->s);
		sodium_memzero(c->sec, sizeof(*c->sec));
		sodium_free(c->sec);
	}
	if (c->msgbuf) {
		sodium_memzero(c->msgbuf, c->msgcap);
		free(c->msgbuf);
	}
	for (i = 0; i < c->held_count; i++) {
		struct held_event *h = &c->held[(c->held_head + i) % c->held_cap];

		if (h->data) {
			sodium_memzero(h->data, h->ev.len);
			free(h->data);
		}
	}
	free(c->held);
	if (c->rbuf) {
		sodium_memzero(c->rbuf, c->rcap);
		free(c->rbuf);
	}
	sp_txpool_destroy(&c->pool);
	free(c->sealbuf);
	sodium_memzero(c, sizeof(*c));
	free(c);
}
