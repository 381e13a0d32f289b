/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_client.c: a broker connection: the sans-I/O client (bytes in, bytes
 * out, events out) and the socket layer on top of it, which dials,
 * reconnects and keeps the connection alive.
 *
 * Two ways to drive one struct sealpost_client, one protocol path:
 *
 *   foreign  (sealpost_client_new): the app owns the transport. Received
 *            bytes come in through sealpost_client_feed, bytes to send go
 *            out through sealpost_client_take_output /
 *            sealpost_client_output_consumed.
 *   socket   (sealpost_client_connect, sealpost_client_start): the library
 *            owns a TCP socket, and its read and write passes call the very
 *            same rx_space/rx_commit and out_peek/out_sent the foreign
 *            calls use. It adds what needs a socket and a clock: dialing
 *            (non-blocking), back-off and reconnect, the handshake deadline.
 *
 * Core, per connection (a "session": one handshake and what follows):
 *
 *   output: lib/session (struct sp_session in the guarded secrets) queues
 *           the handshake messages, then batches frames into transport
 *           messages (sp_session_tx_frame / tx_seal). The IK proof (an
 *           empty transport message) is sealed by us into proof[], which
 *           goes out before anything the engine queued after it.
 *   input:  rbuf: [rstart, rend) received bytes not yet consumed (offsets,
 *           so it may grow with realloc). Handshake messages are given to
 *           the engine as soon as they are whole (so the handshake
 *           advances without the app asking for events); transport
 *           messages one at a time when the app takes events, decrypted in
 *           place, their frames read lazily (plain_*). Opened messages go to
 *           msgbuf.
 *
 * Across sessions: pend, every send without a result (its sealed body
 * kept), resent with its original client id on the next session, so the
 * broker's dedup makes the retry exact; queued acks; the pinned server key.
 *
 * Layering: sockets, buffers, events and timers here; lib/session the
 * protocol (handshake, transport in both directions), sp_frame the framing,
 * sp_seal the envelopes.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "sealpost.h"
#include "sp_acct_internal.h"
#include "sp_clog.h"
#include "sp_be.h"
#include "sp_clock.h"
#include "sp_enrol.h"
#include "sp_fcseal.h"
#include "sp_frame.h"
#include "sp_fsutil.h"
#include "sp_hostport.h"
#include "sp_merkle.h"
#include "sp_internal.h"
#include "sp_limits.h"
#include "sp_noise.h"
#include "sp_prekey.h"
#include "sp_prekeys_internal.h"
#include "sp_ratchet.h"
#include "sp_sessions_internal.h"
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
S(STATUS_GOAWAY_ENROL_REQUIRED);
S(STATUS_GOAWAY_ENROL_BAD_TOKEN);
S(STATUS_GOAWAY_ENROL_TOKEN_USED);
S(STATUS_ERR_PUSH_BAD_KEY);
S(STATUS_ERR_PUSH_BAD_AUTH);
S(STATUS_ERR_PUSH_BAD_ENDPOINT);
S(STATUS_ERR_PUSH_NOT_HTTPS);
S(STATUS_ERR_PUSH_TOO_LARGE);
S(STATUS_ERR_PUSH_HOST_NOT_ALLOWED);
S(STATUS_ERR_PUSH_DISABLED);
S(STATUS_ERR_PUSH_FULL);
#undef S

enum {
	CONNECT_TIMEOUT_DEFAULT_MS = 30000,
	RECONNECT_MIN_DEFAULT_MS = 100,
	RECONNECT_MAX_DEFAULT_MS = 30000,
	OFFLINE_QUEUE_DEFAULT = 1000,
	KEEPALIVE_DEFAULT_MS = 60000,
	DEAD_PEER_DEFAULT_MS = 20000,
	/* The XX probe that tells a wrong pinned key from a broker that just
	 * closed: a second connection, bounded so a failing one costs little. */
	PROBE_TIMEOUT_MS = 5000,
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

/* Keepalive pings carry ids with the top bit set; their Pongs are ours, not
 * the app's (sealpost_client_ping counts up from 1). */
static const uint64_t KA_PING_BIT = (uint64_t)1 << 63;

/* Options this library knows, as the caller passes them. */
static const uint32_t CONNECT_FLAGS_KNOWN = SEALPOST_CONNECT_MANUAL_ACK |
	SEALPOST_CONNECT_NO_RECONNECT | SEALPOST_CONNECT_NO_KEEPALIVE | SEALPOST_CONNECT_OPAQUE |
	SEALPOST_CONNECT_OPAQUE_ALL | SEALPOST_CONNECT_NO_PADDING | SEALPOST_CONNECT_AESGCM;
static const uint32_t SEND_FLAGS_KNOWN = SEALPOST_SEND_ONLINE_ONLY;
/* LogFetch ids the library sends for itself; their replies are not events. */
static const uint64_t LOG_OWN_BIT = (uint64_t)1 << 63;
/* Checks in flight at once; more heads to check than this wait for the next
 * one shown (a broker answering proofs that slowly gains nothing). */
enum { LOG_PEND_MAX = 8 };
/* Lists that came before the log key was known, held for the key's answer;
 * more than this are handed out at once with -SEALPOST_ELOGKEY (a broker
 * that pushes lists faster than it answers one LogFetch gains nothing). */
enum { LIST_HELD_MAX = 4 };
_Static_assert(SEALPOST_EVENT_SPLIT_VIEW == 18 && SEALPOST_EVENT_LOG_REPLY == 19, "event numbers");

_Static_assert((int)SEALPOST_SEND_ONLINE_ONLY == (int)SP_SEND_ONLINE_ONLY, "online-only flag");

enum cstate {
	CS_DIALING,     /* socket: TCP connect in progress */
	CS_HANDSHAKE,   /* Noise handshake in progress */
	CS_UP,          /* established (possibly failed, with input left to read) */
	CS_BACKOFF,     /* socket: waiting for the next attempt; foreign: for restart */
	CS_CLOSED,      /* final */
};

struct held_event {
	struct sealpost_event ev;
	uint8_t *data;                  /* malloc'd copy of a MESSAGE's or OPAQUE's data */
};

/* A send without a result: what a resend needs. */
struct pend {
	uint64_t id;
	uint32_t flags;
	uint32_t len;
	uint8_t to[SP_KEY_LEN];
	/* Anonymous clients: the recipient's access key (PROTOCOL.md 14), 0 = none. */
	uint8_t tok_len;
	uint8_t tok[SP_ACCESS_KEY_MAX];
	uint8_t body[];                 /* the envelope as sent */
};

/* A contact's access key (sealpost_contact_access_set). */
struct contact_access {
	uint8_t who[SP_KEY_LEN];
	uint8_t len;
	uint8_t key[SP_ACCESS_KEY_MAX];
};

/* Everything secret a connection holds, in ONE guarded allocation (each
 * sodium_malloc costs guard pages and memory mappings). */
struct secrets {
	struct sealpost_key key;              /* our copy of the device key */
	/* The protocol engine: handshake, then the transport keys and the
	 * outbound queue (transport messages are batched and sealed there). */
	struct sp_session s;
	/* The enrolment token (connect options), binary; until the first DRAINED. */
	uint8_t enrol_token[SP_ENROL_TOKEN_LEN];
	bool has_enrol_token;
};

struct sealpost_client {
	bool foreign;                   /* no socket: the app moves the bytes */
	int fd;                         /* socket mode: -1 while there is none */
	enum cstate st;
	struct secrets *sec;            /* sodium_malloc */
	struct sealpost_key *key;       /* &sec->key */
	struct sp_session *ss;          /* &sec->s */
	struct sp_session_env env;      /* ClientHello, hooks, pool, for ss */
	/* ss's handshake state and transport keys: slots in locked memory
	 * (sp_slab.h), two per chunk (a handshake's split holds both). */
	struct sp_slab slab;
	struct sp_txpool pool;          /* ss's output chunks */
	uint8_t server_pub[SP_KEY_LEN];
	uint8_t pin[SP_KEY_LEN];        /* the key reconnects use with IK */
	bool has_pin;
	uint32_t max_envelope;
	uint32_t max_transport;
	uint32_t idle_timeout_ms;       /* from ServerHello */
	uint64_t next_client_id;
	/* Sessions established so far; a fan-out group waits for its answer
	 * on the session it was written to (fanout_session) only. */
	uint64_t sessions, fanout_session;
	uint64_t next_ping_id;
	uint64_t next_push_id;          /* PushRegister / PushRemove ids, from 1 */
	uint32_t flags;                 /* SEALPOST_CONNECT_* */
	bool manual_ack;
	/* Auto-ack: seq of the MESSAGE/BAD_ENVELOPE last handed to the app,
	 * acknowledged on its next call (it has then taken the event). */
	uint64_t taken_seq;

	uint64_t acks[SP_ACK_SEQS_MAX];
	uint32_t nacks;

	/* The IK proof, sent before the engine's output. */
	uint8_t proof[SP_LEN_PREFIX + SP_TAG_LEN];
	uint8_t proof_len, proof_off;

	uint8_t *rbuf;
	size_t rcap, rstart, rend;
	bool have_plain;
	size_t plain_start, plain_len, plain_off, plain_end;

	uint8_t *msgbuf;                /* the last opened message; grows as needed */
	size_t msgcap;
	size_t msg_len;                 /* bytes of msgbuf to wipe on the next call */

	struct held_event *held;        /* ring of events kept by send_wait, and ours */
	size_t held_head, held_count, held_cap;
	uint8_t *held_out;              /* data handed out from held; freed next call */
	size_t held_out_len;

	struct pend **pend;             /* ring: sends without a result, in send order */
	size_t pend_head, pend_count, pend_cap;

	int io_err;                     /* 0, CLOSED_EOF or a negative errno */
	bool fatal;                     /* protocol error: buffered input is void */
	bool goaway;
	int goaway_code;
	bool shut;                      /* shutdown(2) done */

	/* Connection management (socket mode, and restart in foreign mode). */
	char *server;                   /* "HOST:PORT", for reconnects */
	struct addrinfo *ai_res, *ai_cur;
	int dial_err;                   /* the last address's failure */
	bool hs_ik;                     /* this attempt uses IK */
	bool probing;                   /* this attempt is the XX probe of a failed IK */
	bool aesgcm_off;                /* SEALPOST_CONNECT_AESGCM was refused once: ChaChaPoly */
	int probe_err;                  /* what the probe found */
	bool blocking_initial;          /* inside sealpost_client_connect: no retries */
	int enrol_err;                  /* a registration GoAway seen (-SEALPOST_EENROL*): final */
	bool was_up;                    /* a session was established before */
	bool announced_down;            /* DISCONNECTED sent for this outage */
	bool want_connected_ev;         /* started non-blocking: CONNECTED event */
	uint32_t attempt;               /* failed attempts in a row */
	int64_t attempt_deadline;       /* -1: none */
	int64_t retry_at;
	uint32_t reconnect_min_ms, reconnect_max_ms, offline_queue_max;
	uint32_t connect_timeout_ms, keepalive_ms, dead_peer_ms;

	/* Keepalive. */
	int64_t last_rx, last_tx;
	bool ka_out;                    /* a keepalive ping is waiting for input */
	int64_t ka_sent_at;
	uint64_t ka_next_id;

	/* Callback mode. */
	sealpost_event_fn cb;
	void *cb_ctx;

	/* Accounts: lists received are checked against this (borrowed). */
	struct sealpost_account_store *acct_store;
	struct sealpost_prekeys *prekeys; /* sealpost_client_set_prekeys: borrowed */
	struct sealpost_sessions *ratchets; /* sealpost_client_set_sessions: borrowed */
	uint64_t next_list_id;

	/* The transparency log (sp_clog.h): what this device saw, and the
	 * LogFetches the library asked on its own (ids with LOG_OWN_BIT,
	 * answered on this session or dropped with it). */
	struct sp_clog clog;
	uint64_t next_log_id;
	struct log_pend {
		uint64_t id;
		bool learn;             /* LogFetch(0, 0): the key and head */
		struct sp_sth a, b;     /* a proof: kept then, seen */
	} lpend[LOG_PEND_MAX];
	size_t lpend_n;
	/* sealpost_account_fetch_wait's own list: its consistency proof is
	 * fetched by the call itself, before the list is kept or returned. */
	uint64_t sync_list_id;
	bool sync_need;
	struct sp_sth sync_seen;
	/* Lists held until the log key is learned (copies: frame fields, and
	 * the body malloc'd), in arrival order; they survive a reconnect, where
	 * the key is asked for again. Written by the list and log code only. */
	struct held_list {
		struct sp_frame f;
		uint8_t *body;
	} lheld[LIST_HELD_MAX];
	size_t lheld_n;
	/* Sealed sender (PROTOCOL.md 14). */
	bool anon;                      /* NK: send-only, proves no device key */
	struct sealpost_client *anon_c; /* an authenticated client's anonymous one */
	struct contact_access *contacts;/* malloc'd; wiped on close */
	size_t ncontacts, contacts_cap;
	uint64_t next_access_id;
};

static int queue_frame(struct sealpost_client *c, const struct sp_frame *f);
static const struct contact_access *sp_contact_find(const struct sealpost_client *c,
						    const uint8_t who[SP_KEY_LEN]);
static void fail(struct sealpost_client *c, int err, bool fatal);
static int start_attempt(struct sealpost_client *c);
static void attempt_failed(struct sealpost_client *c, int err);

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

static size_t get_be16(const uint8_t *p)
{
	return sp_be_get16(p);
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	uint8_t *n = sp_fsutil_grow(*buf, cap, need, 4096);

	if (!n)
		return -ENOMEM;
	*buf = n;
	return 0;
}

static bool connected(const struct sealpost_client *c)
{
	return c->st == CS_UP && !c->io_err && !c->goaway;
}

/* ---------------------------------------------------------------- log --- */

/* The one piece of global state: set once, before clients run (header). */
static sealpost_log_fn log_fn;
static void *log_ctx;

SEALPOST_API void sealpost_set_log_callback(sealpost_log_fn fn, void *ctx)
{
	log_fn = fn;
	log_ctx = ctx;
}

__attribute__((format(printf, 3, 4)))
static void logf_(const struct sealpost_client *c, int level, const char *fmt, ...)
{
	char msg[256];
	int n;
	va_list ap;

	if (!log_fn)
		return;
	n = snprintf(msg, sizeof(msg), "client %p: ", (const void *)c);
	if (n < 0 || (size_t)n >= sizeof(msg))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	log_fn(log_ctx, level, msg);
}

/* ------------------------------------------------------------ pending --- */

static int pend_push(struct sealpost_client *c, struct pend *p)
{
	if (c->pend_count == c->pend_cap) {
		size_t ncap = c->pend_cap ? c->pend_cap * 2 : 16, i;
		struct pend **n = malloc(ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		for (i = 0; i < c->pend_count; i++)
			n[i] = c->pend[(c->pend_head + i) % c->pend_cap];
		free(c->pend);
		c->pend = n;
		c->pend_cap = ncap;
		c->pend_head = 0;
	}
	c->pend[(c->pend_head + c->pend_count) % c->pend_cap] = p;
	c->pend_count++;
	return 0;
}

static struct pend *pend_at(const struct sealpost_client *c, size_t i)
{
	return c->pend[(c->pend_head + i) % c->pend_cap];
}

static void pend_free(struct pend *p)
{
	sodium_memzero(p, sizeof(*p) + p->len);
	free(p);
}

/* A result for id arrived: its send is done. Results come in send order,
 * so this is the head but for explicit-id retries. */
static void pend_resolve(struct sealpost_client *c, uint64_t id)
{
	size_t i, j;

	for (i = 0; i < c->pend_count; i++) {
		if (pend_at(c, i)->id != id)
			continue;
		pend_free(pend_at(c, i));
		if (i == 0) {
			c->pend_head = (c->pend_head + 1) % c->pend_cap;
		} else {
			for (j = i; j + 1 < c->pend_count; j++)
				c->pend[(c->pend_head + j) % c->pend_cap] = pend_at(c, j + 1);
		}
		c->pend_count--;
		return;
	}
}

/* ------------------------------------------------------------- events --- */

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
	if (ev->data) {
		h->data = malloc(ev->len ? ev->len : 1);
		if (!h->data)
			return -ENOMEM;
		memcpy(h->data, ev->data, ev->len);
		h->ev.data = h->data;
	}
	c->held_count++;
	return 0;
}

/* An event of our own (connected, disconnected, a local result), after
 * what is already held. Out of memory loses it; nothing better to do. */
static void note_event(struct sealpost_client *c, enum sealpost_event_type type, int error,
		       int status)
{
	struct sealpost_event ev = { .type = type, .error = error, .status = status };

	(void)hold(c, &ev);
}

/* ------------------------------------------------- transparency log --- */

/*
 * The split view, loudly: a warning in the log and a SPLIT_VIEW event
 * (held: it follows the event that revealed it) carrying both heads.
 */
static void split_view(struct sealpost_client *c, const struct sp_sth *a, const struct sp_sth *b)
{
	uint8_t both[2 * SP_STH_LEN];
	struct sealpost_event ev = { .type = SEALPOST_EVENT_SPLIT_VIEW,
				     .error = -SEALPOST_ESPLITVIEW };

	logf_(c, SEALPOST_LOG_ERROR,
	      "SPLIT VIEW: the broker's log showed heads of sizes %llu and %llu that are not "
	      "prefixes of one log",
	      (unsigned long long)a->tree_size, (unsigned long long)b->tree_size);
	sp_clog_split_data(a, b, both);
	memcpy(ev.sender, c->clog.key, SP_LOG_KEY_LEN);
	ev.data = both;
	ev.len = sizeof(both);
	(void)hold(c, &ev);
}

/*
 * A LogFetch the library asks for itself (learn: the key and head; else the
 * proof between a and b, sizes first < second). -ENOBUFS when LOG_PEND_MAX
 * are in flight (nothing sent); -ENOTCONN; the session's error.
 */
static int log_own_fetch(struct sealpost_client *c, uint64_t first, uint64_t second, bool learn,
			 const struct sp_sth *a, const struct sp_sth *b)
{
	struct sp_frame f = { .type = SP_FRAME_LOG_FETCH };
	struct log_pend *p;
	int r;

	if (c->lpend_n == LOG_PEND_MAX)
		return -ENOBUFS;
	if (c->st != CS_UP || c->io_err)
		return -ENOTCONN;
	f.u.log.client_id = LOG_OWN_BIT | ++c->next_log_id;
	f.u.log.first = first;
	f.u.log.second = second;
	r = sp_session_tx_frame(c->ss, &f, NULL, 0);
	if (r < 0)
		return r;
	p = &c->lpend[c->lpend_n++];
	memset(p, 0, sizeof(*p));
	p->id = f.u.log.client_id;
	p->learn = learn;
	if (a)
		p->a = *a;
	if (b)
		p->b = *b;
	return 0;
}

/* Whether the library's own LogFetch(0, 0) is in flight on this session. */
static bool log_learning(const struct sealpost_client *c)
{
	for (size_t i = 0; i < c->lpend_n; i++)
		if (c->lpend[i].learn)
			return true;
	return false;
}

/*
 * A list that needs the log key before it can be checked: copied (the
 * frame's body is the session's buffer) and held until the key's answer,
 * the LogFetch(0, 0) sent if none is in flight. 1 if held; 0 if it cannot
 * be (full, not connected, no memory): then it is checked now and its event
 * carries -SEALPOST_ELOGKEY.
 */
static int list_hold(struct sealpost_client *c, const struct sp_frame *f)
{
	struct held_list *h;

	if (c->lheld_n == LIST_HELD_MAX)
		return 0;
	if (!log_learning(c) && log_own_fetch(c, 0, 0, true, NULL, NULL) < 0)
		return 0;
	h = &c->lheld[c->lheld_n];
	h->body = malloc(f->body_len ? f->body_len : 1);
	if (!h->body)
		return 0;
	memcpy(h->body, f->body, f->body_len);
	h->f = *f;
	h->f.body = h->body;
	c->lheld_n++;
	return 1;
}

static int list_event(struct sealpost_client *c, const struct sp_frame *f,
		      struct sealpost_event *ev);

/* The key's answer came (learned or not): the held lists checked now, in
 * order, their events after what is already held. */
static void list_release(struct sealpost_client *c)
{
	size_t n = c->lheld_n;

	c->lheld_n = 0;   /* list_event must not hold them again */
	for (size_t i = 0; i < n; i++) {
		struct sealpost_event ev;

		memset(&ev, 0, sizeof(ev));
		if (list_event(c, &c->lheld[i].f, &ev) == 1)
			(void)hold(c, &ev);
		free(c->lheld[i].body);
		c->lheld[i].body = NULL;
	}
}

/* A head verified under the pinned key and judged: the proof it needs is
 * asked for (or, with no room, the check waits for a later head). */
static void log_judge_async(struct sealpost_client *c, const struct sp_sth *seen)
{
	uint64_t m = 0, n = 0;
	int r = sp_clog_judge(&c->clog, seen, &m, &n);

	if (r == -SEALPOST_ESPLITVIEW)
		split_view(c, &c->clog.head, seen);
	else if (r == 1)
		(void)log_own_fetch(c, m, n, false, &c->clog.head, seen);
}

/*
 * LogReply: for the library's own LogFetch, the check it was asked for (no
 * event unless it finds a split view); else a LOG_REPLY event for the app.
 */
static int log_event(struct sealpost_client *c, const struct sp_frame *f,
		     struct sealpost_event *ev)
{
	struct sp_consistency con;
	struct log_pend p;
	struct sp_sth sth;
	size_t i;

	if (!(f->u.log.client_id & LOG_OWN_BIT)) {
		ev->type = SEALPOST_EVENT_LOG_REPLY;
		ev->client_id = f->u.log.client_id;
		ev->status = (int)f->u.log.status;
		ev->seq = f->u.log.leaf_len;
		memcpy(ev->sender, f->u.log.log_key, SP_LOG_KEY_LEN);
		if (grow(&c->msgbuf, &c->msgcap, f->body_len ? f->body_len : 1) < 0)
			return -ENOMEM;
		memcpy(c->msgbuf, f->body, f->body_len);
		c->msg_len = f->body_len;
		ev->data = c->msgbuf;
		ev->len = f->body_len;
		return 1;
	}
	for (i = 0; i < c->lpend_n; i++)
		if (c->lpend[i].id == f->u.log.client_id)
			break;
	if (i == c->lpend_n)
		return 0;   /* of an earlier session's: nothing waits for it */
	p = c->lpend[i];
	c->lpend[i] = c->lpend[--c->lpend_n];
	if (f->u.log.status != SP_STATUS_ACCEPTED) {
		/* No log (learn: the held lists go out with -ELOGKEY), or no
		 * proof between two heads it signed: a broker that will not
		 * prove its heads consistent has split. */
		if (p.learn)
			list_release(c);
		else
			split_view(c, &p.a, &p.b);
		return 0;
	}
	if (!f->u.log.log_key_ok || f->u.log.leaf_len > f->body_len ||
	    sp_clog_reply_parse(f->body, f->body_len, f->u.log.leaf_len, &sth, &con) < 0)
		return -EPROTO;
	if (sp_clog_learn_key(&c->clog, f->u.log.log_key) < 0) {
		logf_(c, SEALPOST_LOG_ERROR, "the broker's log key is not the one kept: "
					     "its lists are not checked");
		if (p.learn)
			list_release(c);
		return 0;
	}
	if (sp_sth_verify(&sth, c->clog.key) < 0)
		return -EPROTO;
	if (p.learn) {
		/* The lists first: they were shown before this head. */
		list_release(c);
		log_judge_async(c, &sth);
		return 0;
	}
	if (sp_clog_prove(&c->clog, &p.a, &p.b, &con) < 0)
		split_view(c, &p.a, &p.b);
	return 0;
}

/* ------------------------------------------------------------- output --- */

/* The error a call reports on a dead connection: -ENOTCONN after a GoAway
 * and the broker's close, the failure otherwise. */
static int conn_error(const struct sealpost_client *c)
{
	if (c->io_err == CLOSED_EOF)
		return c->goaway ? -ENOTCONN : -ECONNRESET;
	return c->io_err ? c->io_err : -ENOTCONN;
}

/* Stops all I/O on a broken session; the fd stays ours until reset. */
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

/* Appends a frame without a body to the open transport message. */
static int queue_frame(struct sealpost_client *c, const struct sp_frame *f)
{
	return sp_session_tx_frame(c->ss, f, NULL, 0);
}

static int queue_acks(struct sealpost_client *c)
{
	struct sp_frame f = { .type = SP_FRAME_ACK };
	int r;

	if (!c->nacks || !connected(c))
		return 0;
	memcpy(f.u.ack.seqs, c->acks, c->nacks * sizeof(c->acks[0]));
	f.u.ack.count = c->nacks;
	r = queue_frame(c, &f);
	if (r == 0)
		c->nacks = 0;
	return r;
}

/* Makes everything queued sendable: acks into a frame, the batch sealed. */
static int seal_output(struct sealpost_client *c)
{
	int r;

	if (c->io_err || (c->st != CS_UP && c->st != CS_HANDSHAKE))
		return 0;
	r = queue_acks(c);
	if (r == 0 && c->st == CS_UP)
		r = sp_session_tx_seal(c->ss);
	if (r < 0)
		fail(c, r, true);
	return r;
}

/* The next bytes to send (the proof, then the engine's queue). */
static bool out_peek(const struct sealpost_client *c, const uint8_t **p, size_t *len)
{
	if (c->io_err || (c->st != CS_UP && c->st != CS_HANDSHAKE))
		return false;
	if (c->proof_off < c->proof_len) {
		*p = c->proof + c->proof_off;
		*len = (size_t)(c->proof_len - c->proof_off);
		return true;
	}
	return sp_session_tx_peek(c->ss, p, len);
}

static void out_sent(struct sealpost_client *c, size_t n)
{
	size_t take;

	if (!n)
		return;
	c->last_tx = now_ms();
	if (c->proof_off < c->proof_len) {
		take = (size_t)(c->proof_len - c->proof_off);
		if (take > n)
			take = n;
		c->proof_off = (uint8_t)(c->proof_off + take);
		n -= take;
	}
	if (n)
		sp_session_tx_sent(c->ss, n);
}

/* taken_seq counts: the app's next step writes that ack (see ack_taken),
 * so an event loop polling for POLLOUT gets it out without new input. */
static bool out_pending(const struct sealpost_client *c)
{
	if (c->io_err || (c->st != CS_UP && c->st != CS_HANDSHAKE))
		return false;
	return c->proof_off < c->proof_len || sp_session_tx_queued(c->ss) ||
	       (c->st == CS_UP && (c->nacks || c->taken_seq));
}

/* Puts one pending send on the wire of the current session. */
static int tx_send(struct sealpost_client *c, const struct pend *p)
{
	struct sp_frame f = { .type = SP_FRAME_SEND };

	if (c->anon) {
		/* Sealed sender: the same send from nobody, with its token. */
		f.type = SP_FRAME_ANON_SEND;
		memcpy(f.u.anon_send.to, p->to, SP_KEY_LEN);
		f.u.anon_send.to_ok = 1;
		f.u.anon_send.client_id = p->id;
		f.u.anon_send.flags = p->flags;
		f.u.anon_send.access_key = p->tok_len ? p->tok : NULL;
		f.u.anon_send.access_key_len = p->tok_len;
		if (sp_frame_size(&f, p->len) > c->max_transport)
			return -EMSGSIZE;
		return sp_session_tx_frame(c->ss, &f, p->body, p->len);
	}
	memcpy(f.u.send.to, p->to, SP_KEY_LEN);
	f.u.send.to_ok = 1;
	f.u.send.client_id = p->id;
	f.u.send.flags = p->flags;
	if (sp_frame_size(&f, p->len) > c->max_transport)
		return -EMSGSIZE;
	return sp_session_tx_frame(c->ss, &f, p->body, p->len);
}

/* ----------------------------------------------------------- sessions --- */

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
	c->idle_timeout_ms = h.idle_timeout_ms;
	if (c->max_transport < MIN_TRANSPORT)
		return -EPROTO;
	return 0;
}

/* Engine hooks while the handshake runs. */
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
	struct sealpost_client *c = ctx;

	(void)s;
	/* The ClientHello is sent: its copy of the token goes (the secrets
	 * keep theirs for a reconnect until the broker routes us). */
	sodium_memzero(&c->env.hello, sizeof(c->env.hello));
	return SP_CLOSE_NONE;
}

/*
 * Frames are read lazily, one event per call (pull_event), from the
 * plaintext the engine left in rbuf: the engine is fed one whole transport
 * message at a time, which it decrypts in place, and its frame walk is only
 * a check. A malformed frame is left for pull_event to find, so the events
 * before it are still handed out, as they always were.
 */
static int enrol_error(int goaway_code);

static enum sp_close_reason on_frame(void *ctx, struct sp_session *s, const struct sp_frame *f)
{
	struct sealpost_client *c = ctx;

	(void)s;
	/* A registration refusal comes right after the handshake, often with
	 * its answer and the close in one read: noted here, where every frame
	 * passes, so that a connect that fails on the close reports it (the
	 * GOAWAY event itself comes from pull_event, in order). */
	if (f->type == SP_FRAME_GOAWAY && enrol_error((int)f->u.goaway.code))
		c->enrol_err = enrol_error((int)f->u.goaway.code);
	return SP_CLOSE_NONE;
}

/* Forgets the current session (keys wiped, socket closed): what survives
 * is the client's (pending sends, acks, held events, the pin). */
static void reset_session(struct sealpost_client *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	sp_session_release(c->ss);
	sodium_memzero(c->proof, sizeof(c->proof));
	c->proof_len = c->proof_off = 0;
	if (c->rbuf)
		sodium_memzero(c->rbuf, c->rend);
	c->rstart = c->rend = 0;
	c->have_plain = false;
	c->io_err = 0;
	c->fatal = false;
	c->goaway = false;
	c->goaway_code = 0;
	c->shut = false;
	c->ka_out = false;
	c->lpend_n = 0;   /* their answers died with the session */
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

/* A new session on the current transport: preamble and message 1 queued. */
static int begin_handshake(struct sealpost_client *c)
{
	const uint8_t *sk;
	int r;

	c->env = (struct sp_session_env){
		.hello = { .protocol_version = SP_PROTOCOL_VERSION },
		.pool = &c->pool,
		.slab = &c->slab,
		.hooks = { .established = hs_established, .frame = on_frame,
			   .server_hello = hs_server_hello, .ctx = c },
		.rekey_every = test_rekey_messages(),
		.propose_aead = (c->flags & SEALPOST_CONNECT_AESGCM) && !c->aesgcm_off &&
					sp_noise_aead_available(SP_NOISE_AESGCM)
				? SP_NOISE_AESGCM : SP_NOISE_CHACHAPOLY,
	};
	if (c->sec->has_enrol_token) {
		memcpy(c->env.hello.enrol_token, c->sec->enrol_token, SP_ENROL_TOKEN_LEN);
		c->env.hello.enrol_token_len = SP_ENROL_TOKEN_LEN;
	}
	sk = c->probing || !c->has_pin ? NULL : c->pin;
	/* Anonymous: NK, never the XX probe (it would prove a key). */
	c->hs_ik = sk != NULL && !c->anon;
	r = c->anon ? sp_session_connect_anonymous(c->ss, &c->env, c->pin)
		    : sp_session_connect(c->ss, &c->env, c->key->priv, sk);
	if (r < 0)
		return r;
	c->st = CS_HANDSHAKE;
	return 0;
}

/* Resends every send without a result, in order, with its original id. A
 * send the new broker cannot take at all gets its final result here. */
static int resend_pending(struct sealpost_client *c)
{
	size_t i;
	int r;

	for (i = 0; i < c->pend_count;) {
		struct pend *p = pend_at(c, i);

		if (p->len > c->max_envelope)
			r = -EMSGSIZE;
		else
			r = tx_send(c, p);
		if (r == -EMSGSIZE) {
			struct sealpost_event ev = { .type = SEALPOST_EVENT_RESULT,
						     .status = SEALPOST_STATUS_ERR_TOO_LARGE,
						     .client_id = p->id };

			(void)hold(c, &ev);
			pend_resolve(c, p->id);
			continue;
		}
		if (r < 0)
			return r;
		i++;
	}
	return 0;
}

/* The handshake finished on this session. */
static void on_established(struct sealpost_client *c)
{
	struct sp_session *s = c->ss;
	bool again = c->was_up;
	int r;

	if (c->probing) {
		/* The XX probe of a failed IK: only the key it learned matters. */
		c->probe_err = memcmp(s->peer, c->pin, SP_KEY_LEN) ? -SEALPOST_ESERVERKEY
								    : -ECONNRESET;
		attempt_failed(c, c->probe_err);
		return;
	}
	memcpy(c->server_pub, s->peer, SP_KEY_LEN);
	c->sessions++;
	if (!c->has_pin) {
		/* First contact with XX: later connections pin what it proved. */
		memcpy(c->pin, s->peer, SP_KEY_LEN);
		c->has_pin = true;
	}
	if (c->hs_ik || c->anon) {
		/* IK (and NK alike): the broker routes this device only once a transport message
		 * proves we hold the session keys (a replayed message 1 cannot), so
		 * an empty one goes first (PROTOCOL.md 4, "Proof"). */
		r = sp_noise_encrypt(&s->keys->t.tx, c->proof + SP_LEN_PREFIX, 0);
		if (r < 0) {
			attempt_failed(c, r);
			return;
		}
		sp_be_put16(c->proof, SP_TAG_LEN);
		c->proof_len = sizeof(c->proof);
		c->proof_off = 0;
	}
	c->st = CS_UP;
	c->attempt = 0;
	c->attempt_deadline = -1;
	c->last_rx = c->last_tx = now_ms();
	c->ka_out = false;
	if (c->ai_res) {
		freeaddrinfo(c->ai_res);
		c->ai_res = c->ai_cur = NULL;
	}
	r = resend_pending(c);
	if (r < 0) {
		fail(c, r, true);
		return;
	}
	if (c->acct_store || c->lheld_n) {
		/* The log's key and head, before any list needs them (and for
		 * the lists held from the last session). */
		r = log_own_fetch(c, 0, 0, true, NULL, NULL);
		if (r < 0 && r != -ENOBUFS) {
			fail(c, r, true);
			return;
		}
	}
	if (again || c->announced_down)
		note_event(c, again ? SEALPOST_EVENT_RECONNECTED : SEALPOST_EVENT_CONNECTED, 0, 0);
	else if (c->want_connected_ev)
		note_event(c, SEALPOST_EVENT_CONNECTED, 0, 0);
	c->was_up = true;
	c->announced_down = false;
	logf_(c, again ? SEALPOST_LOG_INFO : SEALPOST_LOG_DEBUG, "%s (%s), %zu sends resent",
	      again ? "reconnected" : "connected", c->hs_ik ? "IK" : "XX", c->pend_count);
}

/* Feeds whole handshake messages to the engine; the rest of rbuf (the
 * broker's first transport messages) stays for pull_event. */
static void advance_handshake(struct sealpost_client *c)
{
	enum sp_close_reason why;
	size_t len;

	while (c->st == CS_HANDSHAKE && c->ss->state == SP_SESSION_HANDSHAKE) {
		if (c->rend - c->rstart < SP_LEN_PREFIX)
			return;
		len = get_be16(c->rbuf + c->rstart);
		if (len == SP_PREAMBLE_REFUSAL_PREFIX && c->ss->aead == SP_NOISE_AESGCM) {
			/* The broker's refusal preamble: it does not offer AESGCM. */
			attempt_failed(c, -EPROTONOSUPPORT);
			return;
		}
		if (len == 0 || len > SP_HANDSHAKE_MSG_MAX) {
			attempt_failed(c, -EPROTO);
			return;
		}
		if (c->rend - c->rstart < SP_LEN_PREFIX + len)
			return;
		why = sp_session_rx(c->ss, c->rbuf + c->rstart, SP_LEN_PREFIX + len);
		sodium_memzero(c->rbuf + c->rstart, SP_LEN_PREFIX + len);
		c->rstart += SP_LEN_PREFIX + len;
		if (why != SP_CLOSE_NONE) {
			attempt_failed(c, why == SP_CLOSE_DECRYPT_FAILED ? -EBADMSG
					  : why == SP_CLOSE_NOMEM ? -ENOMEM : -EPROTO);
			return;
		}
	}
	if (c->st == CS_HANDSHAKE && c->ss->state == SP_SESSION_ESTABLISHED)
		on_established(c);
}

/* Back-off before attempt n (0-based): min * 2^n, at most max, and then a
 * random point in its upper half, so that clients a broker restart cut off
 * together do not come back together. */
static int64_t backoff_ms(const struct sealpost_client *c, uint32_t n)
{
	uint64_t d = c->reconnect_min_ms;

	while (n-- && d < c->reconnect_max_ms)
		d *= 2;
	if (d > c->reconnect_max_ms)
		d = c->reconnect_max_ms;
	if (d < 2)
		return (int64_t)d;
	return (int64_t)(d / 2 + randombytes_uniform((uint32_t)(d - d / 2) + 1));
}

/* A registration GoAway (53-55) as the client's error, else 0. */
static int enrol_error(int goaway_code)
{
	switch (goaway_code) {
	case SEALPOST_STATUS_GOAWAY_ENROL_REQUIRED:
		return -SEALPOST_EENROLREQUIRED;
	case SEALPOST_STATUS_GOAWAY_ENROL_BAD_TOKEN:
		return -SEALPOST_EENROLTOKEN;
	case SEALPOST_STATUS_GOAWAY_ENROL_TOKEN_USED:
		return -SEALPOST_EENROLUSED;
	default:
		return 0;
	}
}

/* Failures after which trying again cannot help. */
static bool is_final(int err, int goaway_code)
{
	return err == -SEALPOST_ESERVERKEY || err == -EPROTO || err == -ENOMEM ||
	       err == -EINVAL || goaway_code == SEALPOST_STATUS_GOAWAY_PROTOCOL ||
	       enrol_error(goaway_code) || err == -SEALPOST_EENROLREQUIRED ||
	       err == -SEALPOST_EENROLTOKEN || err == -SEALPOST_EENROLUSED;
}

/* Enters the final state: CLOSED events from now on. */
static void close_final(struct sealpost_client *c, int err)
{
	reset_session(c);
	if (c->ai_res) {
		freeaddrinfo(c->ai_res);
		c->ai_res = c->ai_cur = NULL;
	}
	c->st = CS_CLOSED;
	c->io_err = err ? err : CLOSED_EOF;
	c->goaway = err == 0;
	c->fatal = true;
}

/* Schedules the next attempt (socket) or waits for sealpost_client_restart
 * (foreign); the first failure of an outage is told to the app. */
static void go_down(struct sealpost_client *c, int err, int goaway_code)
{
	int64_t d = c->foreign ? 0 : backoff_ms(c, c->attempt);

	reset_session(c);
	c->st = CS_BACKOFF;
	c->attempt++;
	c->retry_at = now_ms() + d;
	c->attempt_deadline = -1;
	if (!c->announced_down) {
		note_event(c, SEALPOST_EVENT_DISCONNECTED, err, goaway_code);
		c->announced_down = true;
	}
	logf_(c, SEALPOST_LOG_WARN, "disconnected (%s); %s", sealpost_strerror(err),
	      c->foreign ? "waiting for a new transport" : "retrying");
	if (!c->foreign)
		logf_(c, SEALPOST_LOG_DEBUG, "next attempt in %lld ms", (long long)d);
}

/* An attempt (dial or handshake) failed with err. */
static void attempt_failed(struct sealpost_client *c, int err)
{
	bool ik_eof = c->hs_ik && !c->probing && c->st == CS_HANDSHAKE &&
		      (err == -ECONNRESET || err == -EPIPE) && !c->foreign;
	/* AESGCM proposed and refused (or the connection closed in the
	 * handshake, as a broker from before the cipher byte does): ChaChaPoly
	 * from now on, at once, before anything else reads this failure. */
	bool aes_refused = c->st == CS_HANDSHAKE && c->ss->aead == SP_NOISE_AESGCM &&
			   (err == -EPROTONOSUPPORT || err == -ECONNRESET || err == -EPIPE);

	if (aes_refused) {
		c->aesgcm_off = true;
		logf_(c, SEALPOST_LOG_INFO, "broker refused AES-256-GCM: using ChaCha20-Poly1305");
		if (!c->foreign) {
			reset_session(c);
			start_attempt(c);
			return;
		}
		err = -ECONNRESET;
	}

	if (c->enrol_err)
		err = c->enrol_err;
	logf_(c, SEALPOST_LOG_DEBUG, "attempt failed: %s", sealpost_strerror(err));
	if (ik_eof) {
		/* The broker closed during IK: a wrong pinned key looks exactly like
		 * that (PROTOCOL.md 4, "Failures"). An XX handshake tells: it
		 * learns the key the broker really holds. */
		int64_t probe_end = now_ms() + PROBE_TIMEOUT_MS;

		reset_session(c);
		c->probing = true;
		if (c->attempt_deadline < 0 || c->attempt_deadline > probe_end)
			c->attempt_deadline = probe_end;
		start_attempt(c);
		return;
	}
	if (c->probing) {
		/* The probe's own failure says nothing about the key. */
		c->probing = false;
		if (err != -SEALPOST_ESERVERKEY)
			err = -ECONNRESET;
	}
	if (c->ai_res) {
		freeaddrinfo(c->ai_res);
		c->ai_res = c->ai_cur = NULL;
	}
	if (c->blocking_initial || (c->flags & SEALPOST_CONNECT_NO_RECONNECT) || is_final(err, 0)) {
		logf_(c, SEALPOST_LOG_ERROR, "connection failed: %s", sealpost_strerror(err));
		close_final(c, err);
		return;
	}
	go_down(c, err, 0);
}

/*
 * The session is gone and its input used up: reconnect (DISCONNECTED) or
 * end (CLOSED). Fills *ev and returns 1 when the app gets an event now.
 */
static void session_lost(struct sealpost_client *c)
{
	int err, code = c->goaway ? c->goaway_code : 0;

	err = c->io_err == CLOSED_EOF ? (c->goaway ? 0 : -ECONNRESET) : c->io_err;
	/* Refused registration: the same device and token would be refused
	 * again, so it ends here with an error of its own. */
	if (enrol_error(code))
		err = enrol_error(code);
	else if (c->enrol_err)
		err = c->enrol_err;
	if ((c->flags & SEALPOST_CONNECT_NO_RECONNECT) || is_final(err, code)) {
		logf_(c, SEALPOST_LOG_INFO, "closed: %s", err ? sealpost_strerror(err)
							       : sealpost_status_string(code));
		close_final(c, err);
		return;
	}
	/* After a GoAway the reason is the broker's code; the error stays 0. */
	c->attempt = 0;
	go_down(c, err, code);
}

/* ------------------------------------------------------------- socket --- */

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

/* The TCP connection is up: start the handshake on it. */
static void dial_done(struct sealpost_client *c)
{
	int r = begin_handshake(c);

	if (r < 0)
		attempt_failed(c, r);
}

/* Starts connect(2) on the next address; when every address failed, the
 * attempt fails with the last one's error. */
static void dial_next(struct sealpost_client *c)
{
	int fd, one = 1;

	for (; c->ai_cur; c->ai_cur = c->ai_cur->ai_next) {
		fd = open_socket(c->ai_cur);
		if (fd < 0) {
			c->dial_err = fd;
			continue;
		}
		/* We coalesce frames ourselves; Nagle would only add latency. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
		if (connect(fd, c->ai_cur->ai_addr, c->ai_cur->ai_addrlen) == 0) {
			dial_done(c);
			return;
		}
		if (errno == EINPROGRESS) {
			c->st = CS_DIALING;
			return;
		}
		c->dial_err = -errno;
		close(fd);
		c->fd = -1;
	}
	attempt_failed(c, c->dial_err ? c->dial_err : -SEALPOST_EUNKNOWNHOST);
}

/* TCP connect in progress: done, failed (next address), or not yet. */
static void dial_check(struct sealpost_client *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLOUT };
	int err = 0;
	socklen_t elen = sizeof(err);

	if (poll(&p, 1, 0) <= 0)
		return;
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		err = errno;
	if (!err) {
		dial_done(c);
		return;
	}
	c->dial_err = -err;
	close(c->fd);
	c->fd = -1;
	c->ai_cur = c->ai_cur->ai_next;
	dial_next(c);
}

/* Resolves the server (blocking: getaddrinfo has no other form; a numeric
 * address never waits) and starts dialing. */
static int start_attempt(struct sealpost_client *c)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct sp_hostport hp;
	char port[6];
	int r;

	if (c->foreign) {
		r = begin_handshake(c);
		if (r < 0)
			close_final(c, r);
		return r;
	}
	r = sp_hostport_split(c->server, &hp);
	if (r < 0 || hp.port == 0) {
		close_final(c, -EINVAL);
		return -EINVAL;
	}
	if (c->attempt_deadline < 0 || !c->probing)
		c->attempt_deadline = now_ms() + c->connect_timeout_ms;
	snprintf(port, sizeof(port), "%u", (unsigned)hp.port);
	if (c->ai_res)
		freeaddrinfo(c->ai_res);
	c->ai_res = NULL;
	r = getaddrinfo(hp.host, port, &hints, &c->ai_res);
	if (r != 0) {
		c->ai_res = NULL;
		r = r == EAI_SYSTEM ? -errno : r == EAI_MEMORY ? -ENOMEM
		  : r == EAI_AGAIN ? -EAGAIN : -SEALPOST_EUNKNOWNHOST;
		attempt_failed(c, r);
		return r;
	}
	c->ai_cur = c->ai_res;
	c->dial_err = 0;
	dial_next(c);
	return 0;
}

/* ------------------------------------------------------------- timers --- */

/* The keepalive interval in force: ours, below the broker's idle timeout. */
static int64_t ka_interval(const struct sealpost_client *c)
{
	int64_t iv = c->keepalive_ms;

	if (c->flags & SEALPOST_CONNECT_NO_KEEPALIVE)
		return 0;
	if (c->idle_timeout_ms && (int64_t)c->idle_timeout_ms / 2 < iv)
		iv = c->idle_timeout_ms / 2;
	return iv > 0 ? iv : 1;
}

/* Milliseconds until the library's next timer (-1: none). */
static int64_t next_timer(const struct sealpost_client *c)
{
	int64_t now = now_ms(), at = -1, iv;

	switch (c->st) {
	case CS_BACKOFF:
		if (!c->foreign)
			at = c->retry_at;
		break;
	case CS_DIALING:
	case CS_HANDSHAKE:
		at = c->foreign ? -1 : c->attempt_deadline;
		break;
	case CS_UP:
		iv = ka_interval(c);
		if (!iv || c->io_err)
			break;
		if (c->ka_out)
			at = c->ka_sent_at + c->dead_peer_ms;
		else
			at = (c->last_tx < c->last_rx ? c->last_tx : c->last_rx) + iv;
		break;
	case CS_CLOSED:
		break;
	}
	if (at < 0)
		return -1;
	return at > now ? at - now : 0;
}

/* Runs what is due: the next attempt, an attempt's deadline, keepalive. */
static void run_timers(struct sealpost_client *c)
{
	int64_t now = now_ms(), iv;

	switch (c->st) {
	case CS_BACKOFF:
		if (!c->foreign && now >= c->retry_at)
			start_attempt(c);
		break;
	case CS_DIALING:
	case CS_HANDSHAKE:
		if (!c->foreign && c->attempt_deadline >= 0 && now >= c->attempt_deadline)
			attempt_failed(c, -ETIMEDOUT);
		break;
	case CS_UP:
		iv = ka_interval(c);
		if (!iv || c->io_err || c->goaway)
			break;
		if (c->ka_out) {
			if (now - c->ka_sent_at >= c->dead_peer_ms) {
				logf_(c, SEALPOST_LOG_WARN, "no answer for %u ms: dead connection",
				      c->dead_peer_ms);
				fail(c, -SEALPOST_EDEADPEER, false);
			}
		} else if (now - c->last_tx >= iv || now - c->last_rx >= iv) {
			struct sp_frame f = { .type = SP_FRAME_PING };

			f.u.ping.id = KA_PING_BIT | c->ka_next_id++;
			if (queue_frame(c, &f) < 0) {
				fail(c, -ENOMEM, true);
				break;
			}
			c->ka_out = true;
			c->ka_sent_at = now;
		}
		break;
	case CS_CLOSED:
		break;
	}
}

/* -------------------------------------------------------------- input --- */

/* Room at the end of rbuf for at least want bytes (less when rbuf is at its
 * limit): *p and the room, 0 when full. */
static size_t rx_space(struct sealpost_client *c, size_t want, uint8_t **p)
{
	if (c->rcap - c->rend < want) {
		/* Moves unconsumed input to the front of rbuf. */
		size_t shift = c->rstart;

		if (shift) {
			memmove(c->rbuf, c->rbuf + shift, c->rend - shift);
			c->rend -= shift;
			c->rstart = 0;
			if (c->have_plain) {
				c->plain_start -= shift;
				c->plain_end -= shift;
			}
		}
		if (c->rcap - c->rend < want && c->rcap < RBUF_MAX) {
			size_t need = c->rend + want > RBUF_MAX ? RBUF_MAX : c->rend + want;

			if (grow(&c->rbuf, &c->rcap, need) < 0)
				return 0;
		}
	}
	*p = c->rbuf + c->rend;
	return c->rcap - c->rend;
}

static void rx_commit(struct sealpost_client *c, size_t n)
{
	if (!n)
		return;
	c->rend += n;
	c->last_rx = now_ms();
	c->ka_out = false;
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
 * The tree head a peer put first in its plaintext (PROTOCOL.md 11.7
 * `wrap`): stripped from what the app gets; checked when it is of the log
 * this device pinned and verifies under its key (another broker's log, or
 * no key yet: nothing to compare it with). 0, or -EBADMSG for the magic
 * followed by a malformed wrap.
 */
static int peer_head(struct sealpost_client *c, struct sealpost_event *ev)
{
	uint8_t key[SP_LOG_KEY_LEN];
	struct sp_sth seen;
	int r = sp_sth_unwrap(ev->data, ev->len, key, &seen);

	if (r <= 0)
		return r;
	ev->data += SP_STH_WRAP_LEN;
	ev->len -= SP_STH_WRAP_LEN;
	if (c->clog.key_ok && sodium_memcmp(key, c->clog.key, SP_LOG_KEY_LEN) == 0 &&
	    sp_sth_verify(&seen, c->clog.key) == 0)
		log_judge_async(c, &seen);
	return 0;
}

/*
 * A first contact (version 3) through the prekey store; with a session
 * store, the session it begins starts before the message is handed over
 * (a store that cannot take it leaves the message delivered, sessionless).
 */
static int open_first(struct sealpost_client *c, const struct sp_frame *f,
		      struct sealpost_event *ev)
{
	struct sp_fc_start st;
	int r;

	if (!c->prekeys)
		return -EBADMSG;
	r = sp_prekeys_open_first(c->prekeys, c->key, f->body, f->body_len, ev->sender, c->msgbuf,
				  c->msgcap, &c->msg_len, c->ratchets ? &st : NULL);
	if (r == 0 && c->ratchets) {
		if (sp_sessions_start_bob(c->ratchets, ev->sender, &st) < 0)
			logf_(c, SEALPOST_LOG_WARN, "first contact: no session started");
		sodium_memzero(&st, sizeof(st));
	}
	return r;
}

/* A delivery: opened as a seal, or handed over raw (opaque). */
static int deliver_event(struct sealpost_client *c, const struct sp_frame *f,
			 struct sealpost_event *ev)
{
	int r = -EBADMSG;

	ev->seq = f->u.deliver.seq;
	/* msgbuf holds no plaintext here: release() wiped it. */
	if (grow(&c->msgbuf, &c->msgcap, f->body_len ? f->body_len : 1) < 0)
		return -ENOMEM;
	if (!(c->flags & SEALPOST_CONNECT_OPAQUE_ALL) && f->body_len && f->body[0] == SP_FCSEAL_VERSION)
		r = open_first(c, f, ev);
	else if (!(c->flags & SEALPOST_CONNECT_OPAQUE_ALL) && f->body_len &&
		 f->body[0] == SP_RATCHET_VERSION)
		r = c->ratchets ? sp_sessions_decrypt(c->ratchets, f->body, f->body_len, ev->sender,
						      c->msgbuf, c->msgcap, &c->msg_len)
				: -EBADMSG;
	else if (!(c->flags & SEALPOST_CONNECT_OPAQUE_ALL))
		r = sp_seal_open(c->key->priv, f->body, f->body_len, ev->sender, c->msgbuf,
				 c->msgcap, &c->msg_len);
	if (r == 0) {
		ev->type = SEALPOST_EVENT_MESSAGE;
		ev->data = c->msgbuf;
		ev->len = c->msg_len;
		if (peer_head(c, ev) == 0)
			return 1;
		r = -EBADMSG;
		memset(ev, 0, sizeof(*ev));
		ev->seq = f->u.deliver.seq;
		sodium_memzero(c->msgbuf, c->msg_len);
	}
	c->msg_len = 0;
	memset(ev->sender, 0, sizeof(ev->sender));
	if (c->flags & (SEALPOST_CONNECT_OPAQUE | SEALPOST_CONNECT_OPAQUE_ALL)) {
		memcpy(c->msgbuf, f->body, f->body_len);
		c->msg_len = f->body_len;
		ev->type = SEALPOST_EVENT_OPAQUE;
		ev->data = c->msgbuf;
		ev->len = f->body_len;
		return 1;
	}
	ev->type = SEALPOST_EVENT_BAD_ENVELOPE;
	ev->error = r == -ERANGE ? -SEALPOST_ERATCHETSKIP : -EBADMSG;
	return 1;
}

/*
 * The log's part of a list's body: the head verifies under the pinned key,
 * the list is in that tree, and the head is consistent with the kept one:
 * for fetch_wait's own list, the proof is left for the call (sync_need);
 * for any other, it is asked for now and a failure is a SPLIT_VIEW event
 * after this one. 0, -SEALPOST_ELOGKEY (no key known yet),
 * -SEALPOST_ELOGPROOF, -SEALPOST_ESPLITVIEW.
 */
static int list_log_check(struct sealpost_client *c, const struct sp_frame *f, size_t n)
{
	struct sp_sth seen;
	uint64_t m = 0, k = 0;
	int r;

	r = sp_clog_check_list(&c->clog, f->body, n, f->body + n, f->body_len - n, &seen);
	if (r < 0)
		return r;
	if (f->type == SP_FRAME_LIST_RESULT && c->sync_list_id &&
	    f->u.list.client_id == c->sync_list_id) {
		r = sp_clog_judge(&c->clog, &seen, &m, &k);
		if (r == -SEALPOST_ESPLITVIEW) {
			split_view(c, &c->clog.head, &seen);
			return r;
		}
		if (r == 1) {
			c->sync_need = true;
			c->sync_seen = seen;
		}
		return 0;
	}
	r = sp_clog_judge(&c->clog, &seen, &m, &k);
	if (r == -SEALPOST_ESPLITVIEW) {
		split_view(c, &c->clog.head, &seen);
		return r;
	}
	if (r == 1)
		(void)log_own_fetch(c, m, k, false, &c->clog.head, &seen);
	return 0;
}

/*
 * ListResult / ListChanged: the list part of the body (the rest is the
 * transparency log's, docs/PROTOCOL.md 11.2) copied out and checked: it
 * verifies, it is the account and version the header names, and it is not
 * older than the list the attached store keeps (ev->error says which).
 */
static int list_event(struct sealpost_client *c, const struct sp_frame *f,
		      struct sealpost_event *ev)
{
	bool changed = f->type == SP_FRAME_LIST_CHANGED;
	size_t n = f->u.list.list_len;
	struct sp_devlist l;

	ev->type = changed ? SEALPOST_EVENT_LIST_CHANGED : SEALPOST_EVENT_LIST_RESULT;
	ev->client_id = f->u.list.client_id;
	ev->status = changed ? SEALPOST_STATUS_ACCEPTED : (int)f->u.list.status;
	ev->seq = f->u.list.version;
	memcpy(ev->sender, f->u.list.account, SP_ACCOUNT_LEN);
	if (n > f->body_len)
		return -EPROTO;
	if (!changed && (f->u.list.status != SP_STATUS_ACCEPTED || n == 0))
		return 1;   /* a ListPut's answer, or a refusal: no list */
	if (grow(&c->msgbuf, &c->msgcap, n) < 0)
		return -ENOMEM;
	memcpy(c->msgbuf, f->body, n);
	c->msg_len = n;
	ev->data = c->msgbuf;
	ev->len = n;
	ev->error = sp_acct_store_check(NULL, c->msgbuf, n, &l);
	if (ev->error == 0 && (memcmp(l.account, f->u.list.account, SP_ACCOUNT_LEN) != 0 ||
			       l.version != f->u.list.version))
		ev->error = -SEALPOST_EBADLIST;
	if (ev->error == 0 && !c->clog.key_ok && list_hold(c, f))
		return 0;   /* its event comes with the key's answer */
	if (ev->error == 0)
		ev->error = list_log_check(c, f, n);
	if (ev->error == 0 && c->sync_need)
		return 1;   /* fetch_wait proves the head first, then keeps the list */
	if (ev->error == 0 && c->acct_store)
		ev->error = sp_acct_store_check(c->acct_store, c->msgbuf, n, &l);
	if (ev->error == -EIO || ev->error == -ENOMEM)
		ev->error = 0;   /* checked, only not kept: the list itself is fine */
	return 1;
}

/* FanoutResult: its keys (missing then stale, 32 bytes each) must be the
 * whole body. */
static int fanout_event(struct sealpost_client *c, const struct sp_frame *f,
			struct sealpost_event *ev)
{
	uint64_t keys = (uint64_t)f->u.fanout.missing + f->u.fanout.stale;

	if (keys > 2 * SP_FANOUT_COPIES_MAX || f->body_len != keys * SP_KEY_LEN)
		return -EPROTO;
	ev->type = SEALPOST_EVENT_FANOUT_RESULT;
	ev->client_id = f->u.fanout.group_id;
	ev->status = (int)f->u.fanout.status;
	ev->seq = f->u.fanout.version;
	ev->count = f->u.fanout.missing;
	if (!f->body_len)
		return 1;
	if (grow(&c->msgbuf, &c->msgcap, f->body_len) < 0)
		return -ENOMEM;
	memcpy(c->msgbuf, f->body, f->body_len);
	c->msg_len = f->body_len;
	ev->data = c->msgbuf;
	ev->len = f->body_len;
	return 1;
}

/*
 * Turns one decoded frame into an event: 1 if it gives one, 0 if not;
 * -EPROTO for a frame a broker may not send, -ENOMEM.
 */
static int frame_event(struct sealpost_client *c, const struct sp_frame *f,
		       struct sealpost_event *ev)
{
	struct sp_frame pong = { .type = SP_FRAME_PONG };

	memset(ev, 0, sizeof(*ev));
	switch (f->type) {
	case SP_FRAME_DELIVER:
		return deliver_event(c, f, ev);
	case SP_FRAME_SEND_RESULT:
		ev->type = SEALPOST_EVENT_RESULT;
		ev->client_id = f->u.send_result.client_id;
		ev->status = (int)f->u.send_result.status;
		ev->seq = f->u.send_result.seq;
		pend_resolve(c, ev->client_id);
		return 1;
	case SP_FRAME_ACCESS_RESULT:
		ev->type = SEALPOST_EVENT_ACCESS_RESULT;
		ev->client_id = f->u.access_result.client_id;
		ev->status = (int)f->u.access_result.status;
		return 1;
	case SP_FRAME_PREKEY_RESULT:
		ev->type = SEALPOST_EVENT_PREKEY_RESULT;
		ev->client_id = f->u.prekey.client_id;
		ev->status = (int)f->u.prekey.status;
		ev->count = f->u.prekey.count;
		return 1;
	case SP_FRAME_PREKEY_LOW:
		ev->type = SEALPOST_EVENT_PREKEY_LOW;
		ev->count = f->u.prekey.count;
		return 1;
	case SP_FRAME_PREKEY_BUNDLE:
		/* Copied out, not judged: only the app has the device's list
		 * (sealpost_prekey_bundle_verify, or _fetch_wait does both). */
		ev->type = SEALPOST_EVENT_PREKEY_BUNDLE;
		ev->client_id = f->u.prekey.client_id;
		ev->status = (int)f->u.prekey.status;
		memcpy(ev->sender, f->u.prekey.device, SP_KEY_LEN);
		if (grow(&c->msgbuf, &c->msgcap, f->body_len ? f->body_len : 1) < 0)
			return -ENOMEM;
		if (f->body_len)
			memcpy(c->msgbuf, f->body, f->body_len);
		c->msg_len = f->body_len;
		ev->data = c->msgbuf;
		ev->len = f->body_len;
		return 1;
	case SP_FRAME_PUSH_RESULT:
		ev->type = SEALPOST_EVENT_PUSH_RESULT;
		ev->id = f->u.push_result.id;
		ev->status = (int)f->u.push_result.status;
		return 1;
	case SP_FRAME_PONG:
		if (f->u.ping.id & KA_PING_BIT)
			return 0;   /* a keepalive's: input arriving was the point */
		ev->type = SEALPOST_EVENT_PONG;
		ev->id = f->u.ping.id;
		return 1;
	case SP_FRAME_PING:
		/* Answered whenever output is next flushed. */
		pong.u.ping.id = f->u.ping.id;
		return c->goaway ? 0 : queue_frame(c, &pong);
	case SP_FRAME_GOAWAY:
		c->goaway = true;
		c->goaway_code = (int)f->u.goaway.code;
		ev->type = SEALPOST_EVENT_GOAWAY;
		ev->status = (int)f->u.goaway.code;
		return 1;
	case SP_FRAME_DRAINED:
		/* Routed, so registered: the enrolment token is spent. */
		if (c->sec->has_enrol_token) {
			sodium_memzero(c->sec->enrol_token, sizeof(c->sec->enrol_token));
			c->sec->has_enrol_token = false;
		}
		ev->type = SEALPOST_EVENT_DRAINED;
		ev->id = f->u.drained.count;
		return 1;
	case SP_FRAME_LIST_RESULT:
	case SP_FRAME_LIST_CHANGED:
		return list_event(c, f, ev);
	case SP_FRAME_LOG_REPLY:
		return log_event(c, f, ev);
	case SP_FRAME_FANOUT_RESULT:
		return fanout_event(c, f, ev);
	default:
		/* Send, Ack, ListPut, ListFetch: frames only a client may send. */
		return -EPROTO;
	}
}

/*
 * Produces the next event from buffered input, without I/O: 1 with *ev, 0
 * when more input is needed. Once a session's input is used up after it
 * failed: a DISCONNECTED event (the library reconnects) or CLOSED (final).
 */
static int pull_event(struct sealpost_client *c, struct sealpost_event *ev)
{
	enum sp_close_reason why;
	struct sp_frame f;
	size_t len, plain;
	int r;

	if (c->st == CS_CLOSED) {
		closed_event(c, ev);
		return 1;
	}
	for (;;) {
		if (c->st != CS_UP || c->fatal)
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
	if (c->st != CS_UP || !c->io_err)
		return 0;
	if (c->io_err == CLOSED_EOF && c->rend != c->rstart && !c->fatal)
		c->io_err = -ECONNRESET;   /* EOF in the middle of a message */
	session_lost(c);
	if (c->st == CS_CLOSED) {
		closed_event(c, ev);
		return 1;
	}
	return 0;   /* DISCONNECTED is held: next_event hands it out */
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

/* --------------------------------------------------------- socket I/O --- */

/* Non-blocking: seals what is queued and writes what the socket takes. */
static int do_write(struct sealpost_client *c)
{
	int r;

	if (c->io_err)
		return conn_error(c);
	r = seal_output(c);
	if (r < 0)
		return r;
	for (;;) {
		const uint8_t *p;
		size_t len;
		ssize_t n;

		if (!out_peek(c, &p, &len))
			return 0;
		n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			out_sent(c, (size_t)n);
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

/* Non-blocking: reads what is there, up to a budget. */
static int do_read(struct sealpost_client *c)
{
	size_t budget = READ_BUDGET;

	while (!c->io_err && budget) {
		uint8_t *p;
		size_t room = rx_space(c, 4096, &p);
		ssize_t n;

		if (room == 0) {
			if (c->rcap < RBUF_MAX)
				fail(c, -ENOMEM, false);
			break;
		}
		n = recv(c->fd, p, room, MSG_DONTWAIT);
		if (n > 0) {
			rx_commit(c, (size_t)n);
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

/* One round of non-blocking I/O in both directions (socket mode). */
static void pump(struct sealpost_client *c)
{
	if (c->foreign || c->fd < 0)
		return;
	if (c->st == CS_DIALING) {
		dial_check(c);
		if (c->st != CS_HANDSHAKE)
			return;
	}
	if (c->io_err || (c->st != CS_UP && c->st != CS_HANDSHAKE))
		return;
	do_write(c);
	if (read_room(c))
		do_read(c);
	if (c->st == CS_HANDSHAKE) {
		advance_handshake(c);
		if (c->st == CS_HANDSHAKE && c->io_err)
			attempt_failed(c, c->io_err == CLOSED_EOF ? -ECONNRESET : c->io_err);
		else if (c->st == CS_UP && !c->io_err)
			do_write(c);   /* XX message 3, the proof, resends */
	}
}

/* Timers, then I/O. */
static void drive(struct sealpost_client *c)
{
	run_timers(c);
	pump(c);
	run_timers(c);
}

SEALPOST_API short sealpost_client_poll_events(const struct sealpost_client *c)
{
	short ev = 0;

	if (c->foreign || c->fd < 0)
		return 0;
	if (c->st == CS_DIALING)
		return POLLOUT;
	if (c->io_err || read_room(c))
		ev |= POLLIN;
	if (out_pending(c))
		ev |= POLLOUT;
	return ev;
}

/*
 * Waits for I/O readiness or the next timer, up to the deadline, then
 * drives: 0, or -ETIMEDOUT once the deadline has passed. Socket mode only.
 */
static int wait_io(struct sealpost_client *c, int64_t deadline)
{
	struct pollfd p = { .fd = c->fd, .events = sealpost_client_poll_events(c) };
	int64_t t = next_timer(c);
	int to = remaining(deadline), r;

	if (deadline >= 0 && to == 0)
		return -ETIMEDOUT;
	if (t >= 0 && (to < 0 || t < to))
		to = (int)t;
	if (c->fd >= 0 && c->io_err && c->st == CS_UP)
		to = 0;   /* buffered input of a dead session: nothing to wait for */
	if (c->fd < 0 && to < 0)
		return -ENOTCONN;
	r = poll(&p, c->fd >= 0 ? 1 : 0, to);
	if (r < 0 && errno != EINTR)
		return -errno;
	drive(c);
	return 0;
}

/* ----------------------------------------------------------- creation --- */

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
	if (o->reconnect_min_ms && o->reconnect_max_ms && o->reconnect_min_ms > o->reconnect_max_ms)
		return -EINVAL;
	return 0;
}

/*
 * Each client's ids start at a random 63-bit value: the broker
 * deduplicates on (sender, recipient, client_id) for a whole window, so
 * a counter restarting at 1 for a new client would make new envelopes
 * look like retries and be dropped. 2^63 leaves room to count up.
 */
static uint64_t first_client_id(void)
{
	uint64_t id;

	randombytes_buf(&id, sizeof(id));
	id &= UINT64_MAX >> 1;
	return id ? id : 1;
}

static uint32_t or_default(uint32_t v, uint32_t def)
{
	return v ? v : def;
}

/* A client with no session yet; server NULL: foreign. */
static int client_new(struct sealpost_client **out, const char *server,
		      const struct sealpost_key *key, const uint8_t *server_key,
		      const struct sealpost_connect_opts *opts)
{
	struct sealpost_connect_opts o;
	struct sealpost_client *c;
	int r;

	if (!out || !key)
		return -EINVAL;
	r = read_opts(opts, &o);
	if (r < 0)
		return r;
	if (server_key && !sp_noise_key_valid(server_key))
		return -EINVAL;
	if (sodium_init() < 0)
		return -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->st = CS_BACKOFF;
	c->foreign = server == NULL;
	c->next_client_id = first_client_id();
	c->next_ping_id = 1;
	c->ka_next_id = 1;
	c->flags = o.flags;
	c->manual_ack = o.flags & SEALPOST_CONNECT_MANUAL_ACK;
	c->reconnect_min_ms = or_default(o.reconnect_min_ms, RECONNECT_MIN_DEFAULT_MS);
	c->reconnect_max_ms = or_default(o.reconnect_max_ms, RECONNECT_MAX_DEFAULT_MS);
	if (c->reconnect_max_ms < c->reconnect_min_ms)
		c->reconnect_max_ms = c->reconnect_min_ms;
	c->offline_queue_max = or_default(o.offline_queue_max, OFFLINE_QUEUE_DEFAULT);
	c->connect_timeout_ms = or_default(o.connect_timeout_ms, CONNECT_TIMEOUT_DEFAULT_MS);
	c->keepalive_ms = or_default(o.keepalive_ms, KEEPALIVE_DEFAULT_MS);
	c->dead_peer_ms = or_default(o.dead_peer_ms, DEAD_PEER_DEFAULT_MS);
	c->attempt_deadline = -1;
	/* Until a ServerHello says otherwise: the protocol's limits. */
	c->max_envelope = SP_BODY_MAX;
	c->max_transport = SP_TRANSPORT_PLAINTEXT_MAX;
	c->sec = sodium_malloc(sizeof(*c->sec));
	/* Zeroed at once (sodium_malloc fills with garbage): a close on the
	 * error path below releases a session that never started. */
	if (c->sec)
		memset(c->sec, 0, sizeof(*c->sec));
	sp_txpool_init(&c->pool, 0);
	/* Maps nothing until the first handshake. */
	if (sp_slab_init(&c->slab, sp_session_slot_size(), 2, 0)) {
		sodium_free(c->sec);
		c->sec = NULL;
	}
	c->rcap = RBUF_INITIAL;
	c->rbuf = malloc(c->rcap);
	c->server = server ? strdup(server) : NULL;
	if (!c->sec || !c->rbuf || (server && !c->server)) {
		sealpost_client_close(c);
		return -ENOMEM;
	}
	memset(c->sec, 0, sizeof(*c->sec));
	if (o.enrol_token) {
		if (sp_enrol_from_text(o.enrol_token, c->sec->enrol_token)) {
			sealpost_client_close(c);
			return -SEALPOST_EENROLTOKEN;
		}
		c->sec->has_enrol_token = true;
	}
	c->key = &c->sec->key;
	c->ss = &c->sec->s;
	memcpy(c->key, key, sizeof(*c->key));
	if (server_key) {
		memcpy(c->pin, server_key, SP_KEY_LEN);
		c->has_pin = true;
	}
	*out = c;
	return 0;
}

SEALPOST_API int sealpost_client_new(struct sealpost_client **out, const struct sealpost_key *key,
				     const uint8_t *server_key,
				     const struct sealpost_connect_opts *opts)
{
	struct sealpost_client *c = NULL;
	int r;

	if (!out)
		return -EINVAL;
	*out = NULL;
	r = client_new(&c, NULL, key, server_key, opts);
	if (r < 0)
		return r;
	c->want_connected_ev = true;
	r = begin_handshake(c);
	if (r < 0) {
		sealpost_client_close(c);
		return r;
	}
	*out = c;
	return 0;
}

SEALPOST_API int sealpost_client_start(struct sealpost_client **out, const char *server,
				       const struct sealpost_key *key, const uint8_t *server_key,
				       const struct sealpost_connect_opts *opts)
{
	struct sealpost_client *c = NULL;
	struct sp_hostport hp;
	int r;

	if (!out || !server)
		return -EINVAL;
	*out = NULL;
	r = sp_hostport_split(server, &hp);
	if (r < 0 || hp.port == 0)
		return -EINVAL;
	r = client_new(&c, server, key, server_key, opts);
	if (r < 0)
		return r;
	c->want_connected_ev = true;
	start_attempt(c);
	*out = c;
	return 0;
}

SEALPOST_API int sealpost_client_connect(struct sealpost_client **out, const char *server,
					 const struct sealpost_key *key, const uint8_t *server_key,
					 int timeout_ms)
{
	return sealpost_client_connect_opts(out, server, key, server_key, timeout_ms, NULL);
}

/* sealpost_client_connect_opts, or with anon the NK connection of
 * sealpost_client_connect_anonymous (key: a throwaway, never sent). */
static int connect_blocking(struct sealpost_client **out, const char *server,
			    const struct sealpost_key *key, const uint8_t *server_key,
			    int timeout_ms, const struct sealpost_connect_opts *opts, bool anon)
{
	struct sealpost_client *c = NULL;
	struct sp_hostport hp;
	int64_t deadline;
	uint32_t cto;
	int r;

	if (!out || !server || !key)
		return -EINVAL;
	*out = NULL;
	r = sp_hostport_split(server, &hp);
	if (r < 0 || hp.port == 0)
		return -EINVAL;
	r = client_new(&c, server, key, server_key, opts);
	if (r < 0)
		return r;
	c->anon = anon;
	if (timeout_ms <= 0)
		timeout_ms = CONNECT_TIMEOUT_DEFAULT_MS;
	deadline = deadline_of(timeout_ms);
	/* The whole connect, a probe included, within the caller's timeout;
	 * reconnects later use the option's. */
	cto = c->connect_timeout_ms;
	c->connect_timeout_ms = (uint32_t)timeout_ms;
	c->blocking_initial = true;
	start_attempt(c);
	while (c->st != CS_UP && c->st != CS_CLOSED) {
		r = wait_io(c, deadline);
		if (r < 0) {
			if (c->st != CS_UP && c->st != CS_CLOSED)
				close_final(c, r);
			break;
		}
	}
	if (c->st != CS_UP || c->io_err) {
		r = c->enrol_err ? c->enrol_err : c->st == CS_CLOSED ? conn_error(c) : c->io_err;
		sealpost_client_close(c);
		return r < 0 ? r : -ECONNRESET;
	}
	c->blocking_initial = false;
	c->connect_timeout_ms = cto;
	*out = c;
	return 0;
}

SEALPOST_API int sealpost_client_connect_opts(struct sealpost_client **out, const char *server,
					      const struct sealpost_key *key,
					      const uint8_t *server_key, int timeout_ms,
					      const struct sealpost_connect_opts *opts)
{
	return connect_blocking(out, server, key, server_key, timeout_ms, opts, false);
}

SEALPOST_API void sealpost_client_server_key(const struct sealpost_client *c,
					     uint8_t pub[SEALPOST_KEY_LEN])
{
	memcpy(pub, c->was_up ? c->server_pub : c->pin, SP_KEY_LEN);
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

SEALPOST_API uint32_t sealpost_client_idle_timeout(const struct sealpost_client *c)
{
	return c->idle_timeout_ms;
}

SEALPOST_API bool sealpost_client_is_connected(const struct sealpost_client *c)
{
	return connected(c);
}

SEALPOST_API int sealpost_client_cipher(const struct sealpost_client *c)
{
	if (!connected(c))
		return -ENOTCONN;
	return c->ss->aead == SP_NOISE_AESGCM ? SEALPOST_CIPHER_AESGCM
					      : SEALPOST_CIPHER_CHACHAPOLY;
}

/* -------------------------------------------------------------- sends --- */

/* -ENOBUFS when the unsent output is over its limit even after a write. */
static int check_room(struct sealpost_client *c)
{
	if (sp_session_tx_queued(c->ss) > OUT_QUEUE_MAX) {
		if (!c->foreign)
			do_write(c);
		if (c->io_err)
			return 0;   /* queued for the next session instead */
		if (sp_session_tx_queued(c->ss) > OUT_QUEUE_MAX)
			return -ENOBUFS;
	}
	return 0;
}

/*
 * For a frame that is only worth sending on the current session (a Ping, a
 * fetch, an admin request): connected, and room in the output queue
 * (check_room may write, and a write may find the connection gone).
 * 0, -ENOTCONN or -ENOBUFS.
 */
static int ready_to_queue(struct sealpost_client *c)
{
	int r;

	if (!connected(c))
		return -ENOTCONN;
	r = check_room(c);
	if (r < 0)
		return r;
	return connected(c) ? 0 : -ENOTCONN;
}

/*
 * Queues a send whose body (env_len bytes) is produced by seal or copy, and
 * keeps it until its result: written now when connected, on the next
 * session otherwise. id 0: the next of the client's counter; else a
 * retry's id.
 */
/* A plaintext copy (malloc'd or NULL) wiped and freed. */
static void wipe_plain(uint8_t *plain, size_t len)
{
	if (plain) {
		sodium_memzero(plain, len);
		free(plain);
	}
}

/*
 * What a Send and a fan-out copy both do before sealing msg: our log head
 * goes first inside the seal (PROTOCOL.md 11.7) when it fits, and a message
 * that would read as a wrap cannot go without; then the padding bucket
 * (PROTOCOL.md 7.1) unless the connection says not to (a message too large
 * for any bucket goes unpadded: its length says only "the largest").
 * f: the frame it travels in (transport-size check). *msg, *msg_len become
 * the wrapped plaintext in *plain (malloc'd, the caller wipes it with
 * wipe_plain) when wrapped; *env_len, *bucket (0: unpadded) are updated.
 */
static int seal_prepare(struct sealpost_client *c, const struct sp_frame *f, const uint8_t **msg,
			size_t *msg_len, uint8_t **plain, size_t *env_len, size_t *bucket)
{
	size_t max_payload = c->max_envelope - SP_SEAL_OVERHEAD;
	bool wrap = c->clog.head_ok && *env_len + SP_STH_WRAP_LEN <= c->max_envelope &&
		    sp_frame_size(f, *env_len + SP_STH_WRAP_LEN) <= c->max_transport;
	bool looks = *msg_len >= SP_STH_WRAP_MAGIC_LEN &&
		     memcmp(*msg, SP_STH_WRAP_MAGIC, SP_STH_WRAP_MAGIC_LEN) == 0;

	if (looks && !wrap)
		return c->clog.head_ok ? -EMSGSIZE : -EINVAL;
	if (wrap) {
		*plain = malloc(SP_STH_WRAP_LEN + *msg_len);
		if (!*plain)
			return -ENOMEM;
		sp_sth_wrap(c->clog.key, &c->clog.head, *plain);
		if (*msg_len)
			memcpy(*plain + SP_STH_WRAP_LEN, *msg, *msg_len);
		*msg = *plain;
		*msg_len += SP_STH_WRAP_LEN;
		*env_len += SP_STH_WRAP_LEN;
	}
	if (!(c->flags & SEALPOST_CONNECT_NO_PADDING))
		*bucket = sp_seal_pad_bucket(*msg_len, max_payload);
	if (*bucket)
		*env_len = *bucket + SP_SEAL_OVERHEAD;
	return 0;
}

/* Seals msg (as seal_prepare left it) for `to` into out[env_len]. */
static int seal_into(struct sealpost_client *c, const uint8_t *to, const uint8_t *msg,
		     size_t msg_len, size_t bucket, uint8_t *out, size_t env_len)
{
	size_t max_payload = c->max_envelope - SP_SEAL_OVERHEAD, sealed = 0;

	if (!msg)
		msg = (const uint8_t *)"";
	return bucket ? sp_seal_padded(c->key->priv, to, msg, msg_len, max_payload, out, env_len,
				       &sealed)
		      : sp_seal(c->key->priv, to, msg, msg_len, out, env_len, &sealed);
}

/* Encrypts msg through the session with `to` into out[env_len], saved. */
static int ratchet_into(struct sealpost_client *c, const uint8_t *to, const uint8_t *msg,
			size_t msg_len, size_t bucket, uint8_t *out, size_t env_len)
{
	size_t sealed = 0;
	int r;

	r = sp_sessions_encrypt(c->ratchets, to, msg ? msg : (const uint8_t *)"", msg_len,
				c->max_envelope - SP_SEAL_OVERHEAD, bucket != 0, out, env_len, &sealed);
	if (r == 0 && sealed != env_len)
		r = -EMSGSIZE; /* cannot happen: the same sizes */
	return r;
}

static int queue_send(struct sealpost_client *c, const uint8_t to[SP_KEY_LEN], const uint8_t *msg,
		      size_t msg_len, const uint8_t *env, size_t env_len, uint32_t flags,
		      uint64_t id, uint64_t *client_id, const uint8_t *tok, size_t tok_len)
{
	struct sp_frame f = { .type = SP_FRAME_SEND };
	uint8_t *plain = NULL;          /* head | msg, when wrapped */
	size_t bucket = 0;
	struct pend *p;
	bool now = connected(c);
	/* a session with to: a ratchet envelope (PROTOCOL.md 7.3), never for an
	 * anonymous send (its header would link the sender's envelopes) */
	bool ratchet = !env && !tok && c->ratchets && sp_sessions_has(c->ratchets, to);
	int r;

	if (flags & ~SEND_FLAGS_KNOWN)
		return -EINVAL;
	if (env_len > c->max_envelope)
		return -EMSGSIZE;
	if (c->st == CS_CLOSED)
		return -ENOTCONN;
	if (!now && (c->flags & SEALPOST_CONNECT_NO_RECONNECT))
		return -ENOTCONN;
	if (!now && c->pend_count >= c->offline_queue_max)
		return -SEALPOST_EQUEUEFULL;
	if (now) {
		r = check_room(c);
		if (r < 0)
			return r;
		now = connected(c);
		if (!now && (c->flags & SEALPOST_CONNECT_NO_RECONNECT))
			return -ENOTCONN;
	}
	memcpy(f.u.send.to, to, SP_KEY_LEN);
	f.u.send.to_ok = 1;
	f.u.send.client_id = id ? id : c->next_client_id;
	f.u.send.flags = flags;
	if (!env) {
		r = seal_prepare(c, &f, &msg, &msg_len, &plain, &env_len, &bucket);
		if (r < 0)
			return r;
		if (ratchet)
			env_len = sp_sessions_body_len(msg_len, c->max_envelope - SP_SEAL_OVERHEAD,
						       bucket != 0);
	}
	if (sp_frame_size(&f, env_len) > c->max_transport) {
		wipe_plain(plain, msg_len);
		return -EMSGSIZE;
	}
	p = malloc(sizeof(*p) + env_len);
	if (!p) {
		wipe_plain(plain, msg_len);
		return -ENOMEM;
	}
	p->id = f.u.send.client_id;
	p->flags = flags;
	p->len = (uint32_t)env_len;
	memcpy(p->to, to, SP_KEY_LEN);
	p->tok_len = (uint8_t)tok_len;
	memset(p->tok, 0, sizeof(p->tok));
	if (tok_len)
		memcpy(p->tok, tok, tok_len);
	if (!env) {
		r = ratchet ? ratchet_into(c, to, msg, msg_len, bucket, p->body, env_len)
			    : seal_into(c, to, msg, msg_len, bucket, p->body, env_len);
		wipe_plain(plain, msg_len);
		if (r < 0) {
			pend_free(p);
			return r;   /* nothing was queued */
		}
	} else if (env_len) {
		memcpy(p->body, env, env_len);
	}
	if (now) {
		r = tx_send(c, p);
		if (r < 0) {
			pend_free(p);
			return r;
		}
	}
	r = pend_push(c, p);
	if (r < 0) {
		/* Written but not tracked: its result still comes. */
		pend_free(p);
		if (!now)
			return r;
	}
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
	if (c->anon)
		return -SEALPOST_EANONYMOUS;
	if (msg_len > sealpost_client_max_message(c))
		return -EMSGSIZE;
	return queue_send(c, to, msg, msg_len, NULL, msg_len + SP_SEAL_OVERHEAD, flags, client_id,
			  used_id, NULL, 0);
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
	if (c->anon)
		return -SEALPOST_EANONYMOUS;
	return queue_send(c, to, NULL, 0, env ? env : (const uint8_t *)"", env_len, flags,
			  client_id, used_id, NULL, 0);
}

SEALPOST_API int sealpost_client_send_raw(struct sealpost_client *c,
					  const uint8_t to[SEALPOST_KEY_LEN], const uint8_t *env,
					  size_t env_len, uint64_t *client_id)
{
	return sealpost_client_send_raw_ex(c, to, env, env_len, 0, 0, client_id);
}

SEALPOST_API size_t sealpost_client_pending(const struct sealpost_client *c,
					    struct sealpost_pending *out, size_t cap)
{
	size_t i;

	if (!c)
		return 0;
	for (i = 0; out && i < cap && i < c->pend_count; i++) {
		const struct pend *p = pend_at(c, i);

		memset(&out[i], 0, sizeof(out[i]));
		out[i].client_id = p->id;
		memcpy(out[i].to, p->to, SP_KEY_LEN);
		out[i].flags = p->flags;
		out[i].len = p->len;
	}
	return c->pend_count;
}

SEALPOST_API int sealpost_client_ping(struct sealpost_client *c, uint64_t *id)
{
	struct sp_frame f = { .type = SP_FRAME_PING };
	int r;

	if (!c)
		return -EINVAL;
	r = ready_to_queue(c);
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
	c->next_ping_id = (c->next_ping_id + 1) & ~KA_PING_BIT;
	return 0;
}

/* One PushRegister or PushRemove frame (f: type and fields set). */
static int push_request(struct sealpost_client *c, struct sp_frame *f, uint64_t *id)
{
	int r;

	if (!c)
		return -EINVAL;
	if (c->anon)
		return -SEALPOST_EANONYMOUS;
	r = ready_to_queue(c);
	if (r < 0)
		return r;
	c->next_push_id++;
	if (f->type == SP_FRAME_PUSH_REGISTER)
		f->u.push_register.id = c->next_push_id;
	else
		f->u.push_remove.id = c->next_push_id;
	r = queue_frame(c, f);
	if (r < 0)
		return r;
	if (id)
		*id = c->next_push_id;
	return 0;
}

SEALPOST_API int sealpost_push_register(struct sealpost_client *c, const char *endpoint,
					const uint8_t *p256dh, size_t p256dh_len,
					const uint8_t *auth, size_t auth_len, uint64_t *id)
{
	struct sp_frame f = { .type = SP_FRAME_PUSH_REGISTER };

	if (!endpoint || (p256dh_len && !p256dh) || (auth_len && !auth))
		return -EINVAL;
	f.u.push_register.endpoint = (const uint8_t *)endpoint;
	f.u.push_register.endpoint_len = strlen(endpoint);
	f.u.push_register.p256dh = p256dh;
	f.u.push_register.p256dh_len = p256dh_len;
	f.u.push_register.auth = auth;
	f.u.push_register.auth_len = auth_len;
	if (f.u.push_register.endpoint_len > SP_PUSH_ENDPOINT_WIRE_MAX ||
	    p256dh_len > SP_PUSH_P256DH_LEN || auth_len > SP_PUSH_AUTH_LEN)
		return -EINVAL;
	return push_request(c, &f, id);
}

SEALPOST_API int sealpost_push_remove(struct sealpost_client *c, uint64_t *id)
{
	struct sp_frame f = { .type = SP_FRAME_PUSH_REMOVE };

	return push_request(c, &f, id);
}

SEALPOST_API int sealpost_client_ack(struct sealpost_client *c, uint64_t seq)
{
	int r;

	if (!c)
		return -EINVAL;
	if (c->anon)
		return -SEALPOST_EANONYMOUS;   /* it receives nothing */
	if (c->st == CS_CLOSED || ((c->flags & SEALPOST_CONNECT_NO_RECONNECT) && !connected(c)))
		return -ENOTCONN;
	if (!seq)
		return 0;   /* online-only: nothing stored, nothing to ack */
	if (c->nacks == SP_ACK_SEQS_MAX) {
		if (!connected(c))
			return 0;   /* kept full; this one comes again (at-least-once) */
		r = queue_acks(c);
		if (r < 0)
			return r;
	}
	/* Kept across a reconnect: a seq names a mailbox entry, not a session. */
	c->acks[c->nacks++] = seq;
	return 0;
}

/*
 * Auto-ack: the app called us again, so it has taken the last event we
 * handed out. On a dead connection without reconnects the ack is dropped:
 * the envelope comes again next time (at-least-once).
 */
static void ack_taken(struct sealpost_client *c)
{
	uint64_t seq = c->taken_seq;
	int r;

	c->taken_seq = 0;
	if (!seq || c->st == CS_CLOSED)
		return;
	r = sealpost_client_ack(c, seq);
	/* Only an Ack frame that cannot be built fails here (out of memory):
	 * the output stream is then unusable. */
	if (r < 0 && r != -ENOTCONN)
		fail(c, r, true);
}

/* Remembers a delivery handed to the app, for ack_taken. */
static void note_taken(struct sealpost_client *c, const struct sealpost_event *ev)
{
	if (!c->manual_ack &&
	    (ev->type == SEALPOST_EVENT_MESSAGE || ev->type == SEALPOST_EVENT_BAD_ENVELOPE ||
	     ev->type == SEALPOST_EVENT_OPAQUE))
		c->taken_seq = ev->seq;
}

/* What every call that hands out or may overwrite events does first. */
static void begin_call(struct sealpost_client *c)
{
	release(c);
	ack_taken(c);
}

/* ------------------------------------------------------ foreign loops --- */

SEALPOST_API long sealpost_client_feed(struct sealpost_client *c, const void *data, size_t len)
{
	size_t done = 0;

	if (!c || (!data && len))
		return -EINVAL;
	if (!c->foreign)
		return -EOPNOTSUPP;
	if (c->st == CS_CLOSED)
		return conn_error(c);
	if (c->st == CS_BACKOFF || c->io_err)
		return -ENOTCONN;
	while (done < len) {
		uint8_t *p;
		size_t room = rx_space(c, len - done, &p), n;

		if (!room)
			break;
		n = room < len - done ? room : len - done;
		memcpy(p, (const uint8_t *)data + done, n);
		rx_commit(c, n);
		done += n;
	}
	advance_handshake(c);
	return (long)done;
}

SEALPOST_API int sealpost_client_feed_eof(struct sealpost_client *c, int error)
{
	if (!c || error > 0)
		return -EINVAL;
	if (!c->foreign)
		return -EOPNOTSUPP;
	if (c->st == CS_HANDSHAKE) {
		attempt_failed(c, error ? error : -ECONNRESET);
		return 0;
	}
	if (c->st == CS_UP)
		fail(c, error ? error : CLOSED_EOF, false);
	return 0;
}

SEALPOST_API int sealpost_client_restart(struct sealpost_client *c)
{
	if (!c)
		return -EINVAL;
	if (!c->foreign)
		return -EOPNOTSUPP;
	if (c->st == CS_CLOSED)
		return conn_error(c);
	if (c->st != CS_BACKOFF) {
		/* The app gives up on the old session and its unread input; what
		 * it held gets resent (the broker deduplicates). */
		release(c);
		c->taken_seq = 0;
		reset_session(c);
	}
	return start_attempt(c);
}

SEALPOST_API int sealpost_client_take_output(struct sealpost_client *c, const uint8_t **data,
					     size_t *len)
{
	if (!c || !data || !len)
		return -EINVAL;
	if (!c->foreign)
		return -EOPNOTSUPP;
	*data = NULL;
	*len = 0;
	begin_call(c);
	seal_output(c);
	if (!out_peek(c, data, len))
		return 0;
	return 1;
}

SEALPOST_API int sealpost_client_output_consumed(struct sealpost_client *c, size_t n)
{
	const uint8_t *p;
	size_t len;

	if (!c)
		return -EINVAL;
	if (!c->foreign)
		return -EOPNOTSUPP;
	if (!n)
		return 0;
	if (!out_peek(c, &p, &len) || n > len)
		return -EINVAL;
	out_sent(c, n);
	return 0;
}

SEALPOST_API int sealpost_client_timeout(const struct sealpost_client *c)
{
	int64_t t;

	if (!c)
		return -1;
	t = next_timer(c);
	if (t < 0)
		return -1;
	return t > 0x7fffffff ? 0x7fffffff : (int)t;
}

/* ------------------------------------------------------------- events --- */

SEALPOST_API int sealpost_client_next_event(struct sealpost_client *c, struct sealpost_event *ev,
					    int timeout_ms)
{
	int64_t deadline;
	int r;

	if (!c || !ev)
		return -EINVAL;
	if (c->foreign)
		timeout_ms = 0;
	deadline = deadline_of(timeout_ms);
	begin_call(c);
	for (;;) {
		if (!c->held_count && pull_event(c, ev)) {
			note_taken(c, ev);
			return 1;
		}
		if (c->held_count) {
			struct held_event *h = &c->held[c->held_head];

			*ev = h->ev;
			c->held_out = h->data;
			c->held_out_len = h->ev.len;
			c->held_head = (c->held_head + 1) % c->held_cap;
			c->held_count--;
			if (ev->type == SEALPOST_EVENT_NONE) {
				release(c);   /* taken by wait_result already */
				continue;
			}
			note_taken(c, ev);
			return 1;
		}
		if (c->foreign) {
			run_timers(c);
			if (c->held_count || pull_event(c, ev))
				continue;
			return 0;
		}
		drive(c);
		if (c->held_count)
			continue;
		if (pull_event(c, ev)) {
			note_taken(c, ev);
			return 1;
		}
		if (c->held_count)
			continue;
		r = wait_io(c, deadline);
		if (r == -ETIMEDOUT)
			return 0;
		if (r < 0)
			return r;
	}
}

/*
 * Takes buffered events until the one of `type` (RESULT or PONG) for id: 1
 * when found (*found filled), 0 when the buffered input is used up, < 0
 * when the connection ended for good. Every other event is kept, untaken,
 * for sealpost_client_next_event.
 */
static int scan_for(struct sealpost_client *c, enum sealpost_event_type type, uint64_t id,
		    struct sealpost_event *found)
{
	struct sealpost_event ev;
	int r;

	for (;;) {
		if (!pull_event(c, &ev))
			return 0;
		if (ev.type == SEALPOST_EVENT_CLOSED)
			return ev.error ? ev.error : -ENOTCONN;
		if (ev.type == type &&
		    (type == SEALPOST_EVENT_RESULT || type == SEALPOST_EVENT_LIST_RESULT ||
		     type == SEALPOST_EVENT_LOG_REPLY || type == SEALPOST_EVENT_ACCESS_RESULT ||
		     type == SEALPOST_EVENT_FANOUT_RESULT ||
		     type == SEALPOST_EVENT_PREKEY_RESULT || type == SEALPOST_EVENT_PREKEY_BUNDLE
			     ? ev.client_id
			     : ev.id) == id) {
			*found = ev;
			return 1;
		}
		r = hold(c, &ev);
		release(c);
		if (r < 0)
			return r;
	}
}

/* A RESULT the library made itself (a resend the broker could not take). */
static int held_result(struct sealpost_client *c, uint64_t id, struct sealpost_event *found)
{
	size_t i;

	for (i = 0; i < c->held_count; i++) {
		struct held_event *h = &c->held[(c->held_head + i) % c->held_cap];

		if (h->ev.type == SEALPOST_EVENT_RESULT && h->ev.client_id == id) {
			*found = h->ev;
			h->ev.type = SEALPOST_EVENT_NONE;
			return 1;
		}
	}
	return 0;
}

static int wait_for(struct sealpost_client *c, enum sealpost_event_type type, uint64_t id,
		    int64_t deadline, struct sealpost_event *found)
{
	int r;

	if (c->foreign)
		return -EOPNOTSUPP;
	for (;;) {
		r = scan_for(c, type, id, found);
		if (r)
			return r < 0 ? r : 0;
		if (type == SEALPOST_EVENT_RESULT && held_result(c, id, found))
			return 0;
		if (c->st == CS_CLOSED)
			return conn_error(c);
		if (type == SEALPOST_EVENT_PONG && c->st != CS_UP)
			return -ENOTCONN;   /* that ping died with its session */
		if (type == SEALPOST_EVENT_FANOUT_RESULT &&
		    (c->st != CS_UP || c->sessions != c->fanout_session))
			return -ENOTCONN;   /* so did that group (it is not resent) */
		drive(c);
		r = scan_for(c, type, id, found);
		if (r)
			return r < 0 ? r : 0;
		r = wait_io(c, deadline);
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
	begin_call(c);
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
	/* Anonymous by default to contacts whose access key we know. */
	if (c && to && !c->anon && sp_contact_find(c, to))
		return sealpost_send_anonymous(c, to, NULL, 0, msg, msg_len, timeout_ms, status,
					       seq);
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
	if (c->foreign)
		return -EOPNOTSUPP;
	begin_call(c);
	r = sealpost_client_ping(c, &id);
	if (r < 0)
		return r == -ENOTCONN && c->io_err ? conn_error(c) : r;
	return wait_for(c, SEALPOST_EVENT_PONG, id, deadline, &ev);
}

SEALPOST_API int sealpost_client_flush(struct sealpost_client *c, int timeout_ms)
{
	int64_t deadline = deadline_of(timeout_ms);
	struct sealpost_event ev;
	bool once = (c && (c->flags & SEALPOST_CONNECT_NO_RECONNECT));
	int r;

	if (!c)
		return -EINVAL;
	if (c->foreign)
		return -EOPNOTSUPP;
	begin_call(c);
	for (;;) {
		if (c->st == CS_CLOSED)
			return conn_error(c);
		if (c->st == CS_UP && !c->io_err) {
			do_write(c);
			if (!out_pending(c) && (connected(c) || (once && !c->io_err)))
				return 0;
		}
		if (c->st == CS_UP && c->io_err) {
			if (once)
				return conn_error(c);
			/* A dead session ends only once its input is read: kept as
			 * events, and then the reconnect can start. */
			r = scan_for(c, SEALPOST_EVENT_NONE, 0, &ev);
			if (r < 0)
				return r;
			continue;
		}
		/* Keep reading while we wait, or a broker blocked on writing to
		 * us could stop reading from us: a deadlock. */
		r = wait_io(c, deadline);
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
	return c->st == CS_DIALING || out_pending(c);
}

SEALPOST_API int sealpost_client_step(struct sealpost_client *c)
{
	if (!c)
		return -EINVAL;
	begin_call(c);
	if (c->foreign)
		run_timers(c);
	else
		drive(c);
	if (c->st == CS_CLOSED || (c->io_err && (c->flags & SEALPOST_CONNECT_NO_RECONNECT)))
		return conn_error(c);
	return 0;
}

SEALPOST_API void sealpost_client_set_callback(struct sealpost_client *c, sealpost_event_fn fn,
					       void *ctx)
{
	if (!c)
		return;
	c->cb = fn;
	c->cb_ctx = ctx;
}

SEALPOST_API int sealpost_client_dispatch(struct sealpost_client *c, int timeout_ms)
{
	struct sealpost_event ev;
	int r, n = 0;

	if (!c || !c->cb)
		return -EINVAL;
	r = sealpost_client_next_event(c, &ev, timeout_ms);
	while (r > 0) {
		n++;
		c->cb(c->cb_ctx, c, &ev);
		if (ev.type == SEALPOST_EVENT_CLOSED)
			return n;
		r = sealpost_client_next_event(c, &ev, 0);
	}
	return r < 0 ? r : n;
}

SEALPOST_API void sealpost_client_close(struct sealpost_client *c)
{
	size_t i;

	if (!c)
		return;
	sealpost_client_close(c->anon_c);
	if (c->contacts) {
		sodium_memzero(c->contacts, c->contacts_cap * sizeof(*c->contacts));
		free(c->contacts);
	}
	release(c);
	if (c->sec) {
		ack_taken(c);
		/* Best effort, never blocking: the last ack usually fits the socket. */
		if (!c->foreign && c->fd >= 0 && connected(c) && out_pending(c))
			do_write(c);
	}
	if (c->fd >= 0)
		close(c->fd);
	if (c->ai_res)
		freeaddrinfo(c->ai_res);
	sodium_memzero(&c->env.hello, sizeof(c->env.hello));
	if (c->sec) {
		sp_session_release(&c->sec->s);
		sodium_memzero(c->sec, sizeof(*c->sec));
		sodium_free(c->sec);
	}
	/* After the session: its slots are back (zeroed) before the chunk goes. */
	sp_slab_destroy(&c->slab);
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
	for (i = 0; i < c->lheld_n; i++)
		free(c->lheld[i].body);
	for (i = 0; i < c->pend_count; i++)
		pend_free(pend_at(c, i));
	free(c->pend);
	if (c->rbuf) {
		sodium_memzero(c->rbuf, c->rcap);
		free(c->rbuf);
	}
	sp_txpool_destroy(&c->pool);
	free(c->server);
	sodium_memzero(c, sizeof(*c));
	free(c);
}

/* ------------------------------------------------------------ accounts --- */

SEALPOST_API void sealpost_client_set_account_store(struct sealpost_client *c,
						    struct sealpost_account_store *st)
{
	if (c) {
		c->acct_store = st;
		sp_clog_attach(&c->clog, st);
	}
}

/* A list frame (ListPut with its body, or ListFetch) on the live session. */
static int queue_list(struct sealpost_client *c, enum sp_frame_type type,
		      const uint8_t account[SP_ACCOUNT_LEN], const uint8_t *body, size_t len,
		      uint64_t *client_id)
{
	struct sp_frame f = { .type = type };
	int r;

	if (c->anon)
		return -SEALPOST_EANONYMOUS;
	r = ready_to_queue(c);
	if (r < 0)
		return r;
	memcpy(f.u.list.account, account, SP_ACCOUNT_LEN);
	f.u.list.account_ok = 1;
	f.u.list.client_id = ++c->next_list_id;
	if (sp_frame_size(&f, len) > c->max_transport)
		return -EMSGSIZE;
	r = sp_session_tx_frame(c->ss, &f, body, len);
	if (r < 0)
		return r;
	if (client_id)
		*client_id = f.u.list.client_id;
	return 0;
}

SEALPOST_API int sealpost_account_publish(struct sealpost_client *c, const uint8_t *bytes,
					  size_t len, uint64_t *client_id)
{
	if (!c || !bytes || len < SP_DEVLIST_HDR_LEN)
		return -EINVAL;
	if (len > SP_DEVLIST_MAX)
		return -EMSGSIZE;
	/* The frame names the list's own account (bytes 1..33). */
	return queue_list(c, SP_FRAME_LIST_PUT, bytes + 1, bytes, len, client_id);
}

SEALPOST_API int sealpost_account_fetch(struct sealpost_client *c,
					const uint8_t account[SEALPOST_ACCOUNT_KEY_LEN],
					uint64_t *client_id)
{
	if (!c || !account)
		return -EINVAL;
	return queue_list(c, SP_FRAME_LIST_FETCH, account, NULL, 0, client_id);
}

SEALPOST_API int sealpost_account_publish_wait(struct sealpost_client *c, const uint8_t *bytes,
					       size_t len, int timeout_ms, int *status,
					       uint64_t *version)
{
	int64_t deadline = deadline_of(timeout_ms);
	struct sealpost_event ev = { 0 };
	uint64_t id = 0;
	int r;

	if (!c || !status)
		return -EINVAL;
	begin_call(c);
	r = sealpost_account_publish(c, bytes, len, &id);
	if (r < 0)
		return r;
	r = wait_for(c, SEALPOST_EVENT_LIST_RESULT, id, deadline, &ev);
	if (r < 0)
		return r;
	*status = ev.status;
	if (version)
		*version = ev.seq;
	return 0;
}

SEALPOST_API int sealpost_log_fetch(struct sealpost_client *c, uint64_t first, uint64_t second,
				    uint64_t leaf, uint64_t *client_id)
{
	struct sp_frame f = { .type = SP_FRAME_LOG_FETCH };
	int r;

	if (!c)
		return -EINVAL;
	r = ready_to_queue(c);
	if (r < 0)
		return r;
	f.u.log.client_id = ++c->next_log_id & ~LOG_OWN_BIT;
	f.u.log.first = first;
	f.u.log.second = second;
	f.u.log.leaf = leaf;
	r = sp_session_tx_frame(c->ss, &f, NULL, 0);
	if (r < 0)
		return r;
	if (client_id)
		*client_id = f.u.log.client_id;
	return 0;
}

/*
 * LogFetch(first, second) and its answer: 0 with *status; when ACCEPTED,
 * the key learned or matched, *sth verified and *con decoded.
 * -SEALPOST_ELOGKEY, -SEALPOST_ELOGPROOF, -EPROTO, the wait's errors.
 */
static int log_fetch_wait(struct sealpost_client *c, uint64_t first, uint64_t second,
			  int64_t deadline, int *status, struct sp_sth *sth,
			  struct sp_consistency *con)
{
	struct sealpost_event ev = { 0 };
	uint64_t id = 0;
	int r;

	r = sealpost_log_fetch(c, first, second, 0, &id);
	if (r < 0)
		return r;
	r = wait_for(c, SEALPOST_EVENT_LOG_REPLY, id, deadline, &ev);
	if (r < 0)
		return r;
	*status = ev.status;
	if (ev.status != SEALPOST_STATUS_ACCEPTED)
		return 0;
	r = sp_clog_learn_key(&c->clog, ev.sender);
	if (r < 0)
		return r;
	if (sp_clog_reply_parse(ev.data, ev.len, (size_t)ev.seq, sth, con) < 0)
		return -EPROTO;
	if (sp_sth_verify(sth, c->clog.key) < 0)
		return -SEALPOST_ELOGPROOF;
	return 0;
}

/* The proof between verified heads a and b, fetched and checked now:
 * 0, or -SEALPOST_ESPLITVIEW (and the event), or the wait's errors. */
static int log_prove_wait(struct sealpost_client *c, const struct sp_sth *a,
			  const struct sp_sth *b, int64_t deadline)
{
	uint64_t lo = a->tree_size < b->tree_size ? a->tree_size : b->tree_size;
	uint64_t hi = a->tree_size < b->tree_size ? b->tree_size : a->tree_size;
	struct sp_consistency con;
	struct sp_sth now;
	int status = 0, r;

	r = log_fetch_wait(c, lo, hi, deadline, &status, &now, &con);
	if (r < 0)
		return r;
	if (status != SEALPOST_STATUS_ACCEPTED || sp_clog_prove(&c->clog, a, b, &con) < 0) {
		split_view(c, a, b);
		return -SEALPOST_ESPLITVIEW;
	}
	return 0;
}

static int log_sync(struct sealpost_client *c, int64_t deadline)
{
	struct sp_consistency con;
	struct sp_sth seen, kept;
	uint64_t m = 0, n = 0;
	int status = 0, r;

	r = log_fetch_wait(c, 0, 0, deadline, &status, &seen, &con);
	if (r < 0)
		return r;
	if (status != SEALPOST_STATUS_ACCEPTED)
		return -EPROTO;   /* a broker without a log */
	kept = c->clog.head;
	r = sp_clog_judge(&c->clog, &seen, &m, &n);
	if (r == -SEALPOST_ESPLITVIEW)
		split_view(c, &kept, &seen);
	if (r == 1)
		r = log_prove_wait(c, &kept, &seen, deadline);
	return r;
}

SEALPOST_API int sealpost_log_sync(struct sealpost_client *c, int timeout_ms,
				   uint8_t head[113], uint8_t log_key[32])
{
	int r;

	if (!c)
		return -EINVAL;
	if (c->foreign)
		return -EOPNOTSUPP;
	begin_call(c);
	r = log_sync(c, deadline_of(timeout_ms));
	if (r < 0)
		return r;
	if (head)
		sp_sth_encode(&c->clog.head, head);
	if (log_key)
		memcpy(log_key, c->clog.key, SP_LOG_KEY_LEN);
	return 0;
}

/* A leaf's account and version, for the audit's order check. */
struct audit_leaf {
	uint8_t account[SP_ACCOUNT_LEN];
	uint64_t version, index;
};

static int audit_leaf_cmp(const void *a, const void *b)
{
	const struct audit_leaf *x = a, *y = b;
	int r = memcmp(x->account, y->account, SP_ACCOUNT_LEN);

	if (r)
		return r;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Audit window: LogFetches in flight at once (answers come in order). */
enum { AUDIT_WINDOW = 64 };

/*
 * The audit proper, after log_sync: every leaf of the kept head's tree
 * fetched (LogFetch{0, n, i + 1}), each a list that verifies, versions per
 * account only rising in log order, and the root recomputed from the
 * leaves equal to the signed head's.
 */
static int log_audit(struct sealpost_client *c, int64_t deadline,
		     struct sealpost_log_audit *out)
{
	uint64_t n = c->clog.head.tree_size, sent = 0, got = 0, ids[AUDIT_WINDOW];
	struct audit_leaf *al = NULL;
	sp_merkle_hash *hashes = NULL;
	struct sp_merkle_mem mem;
	uint8_t root[SP_MERKLE_HASH_LEN];
	int r = 0;

	out->size = n;
	if (n > SP_MERKLE_SIZE_MAX)
		return -SEALPOST_ELOGPROOF;
	if (n) {
		hashes = malloc((size_t)n * sizeof(*hashes));
		al = malloc((size_t)n * sizeof(*al));
		if (!hashes || !al) {
			r = -ENOMEM;
			goto out;
		}
	}
	while (got < n) {
		struct sealpost_event ev = { 0 };
		struct sp_devlist l;

		while (sent < n && sent - got < AUDIT_WINDOW) {
			r = sealpost_log_fetch(c, 0, n, sent + 1, &ids[sent % AUDIT_WINDOW]);
			if (r < 0)
				goto out;
			sent++;
		}
		r = wait_for(c, SEALPOST_EVENT_LOG_REPLY, ids[got % AUDIT_WINDOW], deadline, &ev);
		if (r < 0)
			goto out;
		if (ev.status != SEALPOST_STATUS_ACCEPTED || ev.seq > ev.len ||
		    sodium_memcmp(ev.sender, c->clog.key, SP_LOG_KEY_LEN) != 0) {
			out->bad_leaf = got + 1;
			r = -SEALPOST_ELOGPROOF;
			goto out;
		}
		sp_merkle_leaf_hash(hashes[got], ev.data, (size_t)ev.seq);
		if (sp_acct_store_check(NULL, ev.data, (size_t)ev.seq, &l) < 0) {
			out->bad_leaf = got + 1;
			r = -SEALPOST_EBADLIST;
			goto out;
		}
		memcpy(al[got].account, l.account, SP_ACCOUNT_LEN);
		al[got].version = l.version;
		al[got].index = got;
		got++;
	}
	mem.leaves = hashes;
	mem.count = n;
	if (n)
		r = sp_merkle_root(sp_merkle_mem_subtree, &mem, n, root);
	else
		sp_merkle_empty_root(root);
	if (r < 0)
		goto out;
	if (sodium_memcmp(root, c->clog.head.root, SP_MERKLE_HASH_LEN) != 0) {
		r = -SEALPOST_ELOGPROOF;
		goto out;
	}
	/* per account, in log order, each list newer than the one before */
	if (n)
		qsort(al, (size_t)n, sizeof(*al), audit_leaf_cmp);
	for (uint64_t i = 0; i < n; i++) {
		bool first = i == 0 || memcmp(al[i].account, al[i - 1].account, SP_ACCOUNT_LEN) != 0;

		if (first) {
			out->accounts++;
		} else if (al[i].version <= al[i - 1].version) {
			out->bad_leaf = al[i].index + 1;
			r = -SEALPOST_EROLLBACK;
			goto out;
		}
	}
out:
	free(hashes);
	free(al);
	return r;
}

SEALPOST_API int sealpost_log_audit(struct sealpost_client *c, int timeout_ms,
				    struct sealpost_log_audit *out)
{
	int64_t deadline = deadline_of(timeout_ms);
	int r;

	if (!c || !out)
		return -EINVAL;
	if (c->foreign)
		return -EOPNOTSUPP;
	memset(out, 0, sizeof(*out));
	begin_call(c);
	r = log_sync(c, deadline);
	if (r < 0)
		return r;
	sp_sth_encode(&c->clog.head, out->head);
	memcpy(out->log_key, c->clog.key, SP_LOG_KEY_LEN);
	return log_audit(c, deadline, out);
}

SEALPOST_API int sealpost_account_fetch_wait(struct sealpost_client *c,
					     const uint8_t account[SEALPOST_ACCOUNT_KEY_LEN],
					     int timeout_ms, struct sealpost_devlist *out,
					     uint8_t *raw, size_t raw_cap, size_t *raw_len)
{
	int64_t deadline = deadline_of(timeout_ms);
	struct sealpost_event ev = { 0 };
	uint8_t copy[SP_DEVLIST_MAX];
	struct sp_devlist l;
	struct sp_sth kept;
	uint64_t id = 0;
	size_t len;
	int r;

	if (!c || !account || !out || (raw && (!raw_len || raw_cap < SP_DEVLIST_MAX)))
		return -EINVAL;
	if (c->foreign)
		return -EOPNOTSUPP;
	begin_call(c);
	if (!c->clog.key_ok) {
		/* The log key first: no list is used unchecked. */
		r = log_sync(c, deadline);
		if (r < 0)
			return r;
	}
	r = sealpost_account_fetch(c, account, &id);
	if (r < 0)
		return r;
	c->sync_list_id = id;
	c->sync_need = false;
	r = wait_for(c, SEALPOST_EVENT_LIST_RESULT, id, deadline, &ev);
	c->sync_list_id = 0;
	if (r < 0)
		return r;
	if (ev.status == SEALPOST_STATUS_ERR_LIST_UNKNOWN)
		return -SEALPOST_ENOLIST;
	if (ev.status != SEALPOST_STATUS_ACCEPTED)
		return -EPROTO;
	if (ev.error == -SEALPOST_EROLLBACK) {
		if (c->acct_store && sealpost_account_store_get(c->acct_store, account, out) == 0)
			return -SEALPOST_EROLLBACK;
		memset(out, 0, sizeof(*out));
		return -SEALPOST_EROLLBACK;
	}
	if (ev.error < 0)
		return ev.error;
	if (ev.len > sizeof(copy))
		return -EPROTO;
	len = ev.len;
	memcpy(copy, ev.data, len);
	if (c->sync_need) {
		/* A head of another size than the kept one: proven consistent
		 * before the list is kept or used. */
		c->sync_need = false;
		kept = c->clog.head;
		r = log_prove_wait(c, &kept, &c->sync_seen, deadline);
		if (r < 0)
			return r;
		if (c->acct_store) {
			r = sp_acct_store_check(c->acct_store, copy, len, &l);
			if (r == -SEALPOST_EROLLBACK) {
				if (sealpost_account_store_get(c->acct_store, account, out) < 0)
					memset(out, 0, sizeof(*out));
				return r;
			}
			if (r < 0 && r != -EIO && r != -ENOMEM)
				return r;
		}
	}
	/* Already verified when the frame became the event. */
	if (sp_devlist_verify(copy, len, &l) < 0)
		return -SEALPOST_EBADLIST;
	sp_acct_to_public(&l, out);
	if (raw) {
		memcpy(raw, copy, len);
		*raw_len = len;
	}
	return 0;
}

SEALPOST_API int sealpost_client_send_devices(struct sealpost_client *c,
					      const struct sealpost_devlist *l, const void *msg,
					      size_t msg_len, uint64_t *first_id)
{
	bool first = true;
	int n = 0;

	if (!c || !l || l->count > SP_DEVLIST_DEVICES_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < l->count; i++) {
		uint64_t id = 0;
		int r;

		if (memcmp(l->dev[i].key, c->key->pub, SP_KEY_LEN) == 0)
			continue;
		r = sealpost_client_send(c, l->dev[i].key, msg, msg_len, &id);
		if (r < 0)
			return n ? -EAGAIN : r;
		if (first && first_id)
			*first_id = id;
		first = false;
		n++;
	}
	return n;
}

/* ------------------------------------------------------------ fan-out --- */

/*
 * Seals msg for `to` into *out (malloc'd: the caller frees it), *out_len,
 * as queue_send seals a Send: our log head inside when it fits, padded to
 * its bucket unless the connection says not to. copy: the frame it will
 * travel in (for the transport-size check).
 */
static int seal_copy(struct sealpost_client *c, const struct sp_frame *copy, const uint8_t *msg,
		     size_t msg_len, uint8_t **out, size_t *out_len)
{
	size_t bucket = 0, env_len = msg_len + SP_SEAL_OVERHEAD;
	uint8_t *plain = NULL, *env;
	/* A device of the account with which this one has a session gets a
	 * ratchet envelope, as a Send to it would (PROTOCOL.md 7.3); the
	 * others a Noise_X seal. A group refused or sent again costs the
	 * session only skipped message keys, within its bounds. */
	bool ratchet = c->ratchets && sp_sessions_has(c->ratchets, copy->u.fanout.key);
	int r;

	r = seal_prepare(c, copy, &msg, &msg_len, &plain, &env_len, &bucket);
	if (r < 0)
		return r;
	if (ratchet)
		env_len = sp_sessions_body_len(msg_len, c->max_envelope - SP_SEAL_OVERHEAD,
					       bucket != 0);
	if (env_len > c->max_envelope || sp_frame_size(copy, env_len) > c->max_transport) {
		wipe_plain(plain, msg_len);
		return -EMSGSIZE;
	}
	env = malloc(env_len);
	if (!env) {
		wipe_plain(plain, msg_len);
		return -ENOMEM;
	}
	r = ratchet ? ratchet_into(c, copy->u.fanout.key, msg, msg_len, bucket, env, env_len)
		    : seal_into(c, copy->u.fanout.key, msg, msg_len, bucket, env, env_len);
	wipe_plain(plain, msg_len);
	if (r < 0) {
		free(env);
		return r;
	}
	*out = env;
	*out_len = env_len;
	return 0;
}

/* The devices of l but this client's own, into keys; how many. */
static uint32_t fanout_targets(const struct sealpost_client *c, const struct sealpost_devlist *l,
			       uint8_t (*keys)[SP_KEY_LEN])
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < l->count && i < SP_DEVLIST_DEVICES_MAX; i++)
		if (memcmp(l->dev[i].key, c->key->pub, SP_KEY_LEN) != 0)
			memcpy(keys[n++], l->dev[i].key, SP_KEY_LEN);
	return n;
}

/*
 * Queues one whole group: FanoutBegin, then a FanoutCopy per key. All of
 * it goes into the session's queue in this call, with nothing else
 * between (PROTOCOL.md 16.1: another frame would cut the group short).
 * Nothing is queued if a seal fails.
 */
static int fanout_queue(struct sealpost_client *c, const struct sealpost_devlist *l,
			uint8_t (*keys)[SP_KEY_LEN], uint32_t n, const uint8_t *msg, size_t msg_len,
			uint64_t id)
{
	struct sp_frame b = { .type = SP_FRAME_FANOUT_BEGIN };
	struct sp_frame f = { .type = SP_FRAME_FANOUT_COPY };
	uint8_t *env[SP_FANOUT_COPIES_MAX] = { 0 };
	size_t env_len[SP_FANOUT_COPIES_MAX] = { 0 };
	int r = 0;

	f.u.fanout.key_ok = 1;
	f.u.fanout.group_id = id;
	for (uint32_t i = 0; i < n && r == 0; i++) {
		memcpy(f.u.fanout.key, keys[i], SP_KEY_LEN);
		r = seal_copy(c, &f, msg, msg_len, &env[i], &env_len[i]);
	}
	if (r == 0 && !connected(c))
		r = -ENOTCONN;
	if (r == 0) {
		memcpy(b.u.fanout.key, l->account, SP_ACCOUNT_LEN);
		b.u.fanout.key_ok = 1;
		b.u.fanout.group_id = id;
		b.u.fanout.version = l->version;
		b.u.fanout.count = n;
		r = queue_frame(c, &b);
	}
	for (uint32_t i = 0; i < n && r == 0; i++) {
		memcpy(f.u.fanout.key, keys[i], SP_KEY_LEN);
		r = sp_session_tx_frame(c->ss, &f, env[i], env_len[i]);
	}
	for (uint32_t i = 0; i < n; i++)
		free(env[i]);   /* ciphertext */
	if (r < 0 && r != -ENOTCONN && r != -EMSGSIZE && r != -EINVAL)
		fail(c, r, true);       /* a group cut in the middle: the session is lost */
	return r;
}

static bool key_in(const uint8_t *key, const uint8_t (*keys)[SP_KEY_LEN], uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (memcmp(keys[i], key, SP_KEY_LEN) == 0)
			return true;
	return false;
}

/*
 * The broker's mismatch answer (missing, then stale keys in ans) against
 * the list just fetched and verified: every missing key must be on it
 * (and not us), no stale key may be. A broker that claims otherwise wants
 * a copy for a device no signed list names, or none for one it does.
 */
static bool mismatch_believable(const struct sealpost_client *c, const struct sealpost_devlist *l,
				const uint8_t *ans, uint32_t missing, uint32_t stale)
{
	uint8_t keys[SP_DEVLIST_DEVICES_MAX][SP_KEY_LEN];
	uint32_t n = fanout_targets(c, l, keys);

	for (uint32_t i = 0; i < missing + stale; i++)
		if (key_in(ans + (size_t)i * SP_KEY_LEN, (const uint8_t (*)[SP_KEY_LEN])keys, n) !=
		    (i < missing))
			return false;
	return true;
}

/*
 * SEALPOST_TEST_FANOUT_STALE=1: for the test suite only (docs/CLIENT.md):
 * the first attempt of a group leaves out the list's last device, as a
 * client whose list is one device behind would, so that a test can see
 * the broker's mismatch answer checked, the list refetched and the group
 * sent again.
 */
static bool test_fanout_stale(void)
{
	const char *v = getenv("SEALPOST_TEST_FANOUT_STALE");

	return v && strcmp(v, "1") == 0;
}

/* One account's group, with its retries: out gets its devices. */
static int fanout_account(struct sealpost_client *c, const uint8_t account[SP_ACCOUNT_LEN],
			  bool own, const uint8_t *msg, size_t msg_len, int64_t deadline,
			  struct sealpost_fanout_result *out)
{
	uint8_t keys[SP_DEVLIST_DEVICES_MAX][SP_KEY_LEN];
	uint8_t ans[2 * SP_FANOUT_COPIES_MAX * SP_KEY_LEN];
	uint32_t n = 0, missing = 0, stale = 0;
	struct sealpost_devlist l;
	struct sealpost_event ev;
	uint64_t id = c->next_client_id++;      /* one id for all attempts: nothing was stored */
	bool answered = false;
	int status = 0, r;

	for (uint32_t attempt = 0;; attempt++) {
		r = sealpost_account_fetch_wait(c, account, remaining(deadline), &l, NULL, 0, NULL);
		if (r < 0)
			return r;
		if (answered && !mismatch_believable(c, &l, ans, missing, stale))
			return -SEALPOST_EFANOUTLIE;
		n = fanout_targets(c, &l, keys);
		if (n == 0)
			return own ? 0 : -SEALPOST_EFANOUTNONE;
		r = fanout_queue(c, &l, keys, attempt == 0 && n > 1 && test_fanout_stale() ? n - 1 : n,
				 msg, msg_len, id);
		if (r < 0)
			return r;
		c->fanout_session = c->sessions;
		memset(&ev, 0, sizeof(ev));
		r = wait_for(c, SEALPOST_EVENT_FANOUT_RESULT, id, deadline, &ev);
		if (r < 0)
			return r;
		status = ev.status;
		if (status != SEALPOST_STATUS_ERR_FANOUT_MISMATCH || attempt == SEALPOST_FANOUT_RETRIES)
			break;
		/* Refresh, check the answer against what is signed, reseal. */
		missing = (uint32_t)ev.count;
		stale = (uint32_t)(ev.len / SP_KEY_LEN) - missing;
		if (ev.len)
			memcpy(ans, ev.data, ev.len);
		answered = true;
		if (out)
			out->retries++;
	}
	if (out) {
		for (uint32_t i = 0; i < n && out->count < 2 * SEALPOST_DEVICES_MAX; i++) {
			struct sealpost_fanout_device *d = &out->dev[out->count++];

			memcpy(d->key, keys[i], SP_KEY_LEN);
			d->status = status;
			d->own = own;
		}
		if (own) {
			out->own_status = status;
			out->own_version = l.version;
			out->own_group_id = id;
		} else {
			out->status = status;
			out->version = l.version;
			out->group_id = id;
		}
	}
	if (status == SEALPOST_STATUS_ACCEPTED)
		return 0;
	return status == SEALPOST_STATUS_ERR_FANOUT_MISMATCH ? -SEALPOST_EFANOUTMISMATCH
							     : -SEALPOST_EFANOUT;
}

SEALPOST_API int sealpost_client_send_account(struct sealpost_client *c,
					      const uint8_t account[SEALPOST_ACCOUNT_KEY_LEN],
					      const uint8_t *own_account, const void *msg,
					      size_t msg_len, int timeout_ms,
					      struct sealpost_fanout_result *out)
{
	int64_t deadline = deadline_of(timeout_ms);
	int r;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!c || !account || (!msg && msg_len))
		return -EINVAL;
	if (c->anon)
		return -SEALPOST_EANONYMOUS;
	if (c->foreign)
		return -EOPNOTSUPP;
	if (msg_len > sealpost_client_max_message(c))
		return -EMSGSIZE;
	begin_call(c);
	r = fanout_account(c, account, false, msg, msg_len, deadline, out);
	if (r < 0 || !own_account || memcmp(own_account, account, SP_ACCOUNT_LEN) == 0)
		return r;
	return fanout_account(c, own_account, true, msg, msg_len, deadline, out);
}

/* ------------------------------------------------------ sealed sender --- */

static bool access_len_ok(size_t len)
{
	return len == SP_ACCESS_KEY_MIN || len == SP_ACCESS_KEY_MAX;
}

SEALPOST_API void sealpost_access_key_generate(uint8_t key[SEALPOST_ACCESS_KEY_LEN])
{
	randombytes_buf(key, SEALPOST_ACCESS_KEY_LEN);
}

SEALPOST_API int sealpost_access_error(int status)
{
	switch (status) {
	case SEALPOST_STATUS_ERR_ACCESS_MISSING:
		return -SEALPOST_EACCESSMISSING;
	case SEALPOST_STATUS_ERR_ACCESS_WRONG:
		return -SEALPOST_EACCESSWRONG;
	case SEALPOST_STATUS_ERR_ACCESS_ROTATED:
		return -SEALPOST_EACCESSROTATED;
	case SEALPOST_STATUS_ERR_ANON_RATE_LIMITED:
		return -SEALPOST_EANONLIMIT;
	case SEALPOST_STATUS_ERR_ACCESS_BAD_KEY:
		return -SEALPOST_EACCESSBADKEY;
	case SEALPOST_STATUS_GOAWAY_ANONYMOUS:
	case SEALPOST_STATUS_ERR_NOT_ANONYMOUS:
		return -SEALPOST_EANONYMOUS;
	default:
		return 0;
	}
}

SEALPOST_API int sealpost_access_set(struct sealpost_client *c, const uint8_t *key, size_t len,
				     bool accept_anyone, uint64_t *client_id)
{
	struct sp_frame f = { .type = SP_FRAME_SET_ACCESS };
	int r;

	if (!c || (len && !key))
		return -EINVAL;
	if (c->anon)
		return -SEALPOST_EANONYMOUS;
	if (len && !access_len_ok(len))
		return -SEALPOST_EACCESSBADKEY;
	r = ready_to_queue(c);
	if (r < 0)
		return r;
	f.u.set_access.client_id = ++c->next_access_id;
	f.u.set_access.access_key = len ? key : NULL;
	f.u.set_access.access_key_len = len;
	f.u.set_access.flags = accept_anyone ? SP_ACCESS_ANYONE : 0;
	/* Into the engine's outbound message like any frame: the key is
	 * copied nowhere else. */
	r = sp_session_tx_frame(c->ss, &f, NULL, 0);
	if (r < 0)
		return r;
	if (client_id)
		*client_id = f.u.set_access.client_id;
	return 0;
}

SEALPOST_API int sealpost_set_access(struct sealpost_client *c, const uint8_t *key, size_t len,
				     bool accept_anyone, int timeout_ms)
{
	int64_t deadline = deadline_of(timeout_ms);
	struct sealpost_event ev = { 0 };
	uint64_t id = 0;
	int r;

	if (!c)
		return -EINVAL;
	begin_call(c);
	r = sealpost_access_set(c, key, len, accept_anyone, &id);
	if (r < 0)
		return r;
	r = wait_for(c, SEALPOST_EVENT_ACCESS_RESULT, id, deadline, &ev);
	if (r < 0)
		return r;
	if (ev.status == SEALPOST_STATUS_ACCEPTED)
		return 0;
	r = sealpost_access_error(ev.status);
	return r ? r : -EIO;
}

/* ---- prekeys (PROTOCOL.md 17; the store is sp_prekeys.c) ---------------- */

SEALPOST_API int sealpost_prekeys_upload(struct sealpost_client *c, struct sealpost_prekeys *pk,
					 unsigned count, uint64_t now_s, uint64_t *client_id)
{
	struct sp_frame f = { .type = SP_FRAME_PREKEY_UPLOAD };
	size_t len = 0;
	uint8_t *body;
	int r;

	if (!c || !pk)
		return -EINVAL;
	if (c->anon)
		return -SEALPOST_EANONYMOUS;
	r = ready_to_queue(c);
	if (r < 0)
		return r;
	body = malloc(SP_PREKEY_UPLOAD_MAXLEN); /* public keys and signatures only */
	if (!body)
		return -ENOMEM;
	r = sp_prekeys_prepare(pk, c->key, count, now_s, body, SP_PREKEY_UPLOAD_MAXLEN, &len);
	if (r == 0) {
		f.u.prekey.client_id = ++c->next_access_id;
		r = sp_session_tx_frame(c->ss, &f, body, len);
	}
	free(body);
	if (r < 0)
		return r;
	if (client_id)
		*client_id = f.u.prekey.client_id;
	return 0;
}

SEALPOST_API int sealpost_prekeys_upload_wait(struct sealpost_client *c,
					      struct sealpost_prekeys *pk, unsigned count,
					      int timeout_ms, uint32_t *stock)
{
	int64_t deadline = deadline_of(timeout_ms);
	struct sealpost_event ev = { 0 };
	uint64_t id = 0;
	int r;

	if (!c)
		return -EINVAL;
	begin_call(c);
	r = sealpost_prekeys_upload(c, pk, count, 0, &id);
	if (r < 0)
		return r;
	r = wait_for(c, SEALPOST_EVENT_PREKEY_RESULT, id, deadline, &ev);
	if (r < 0)
		return r;
	if (ev.status != SEALPOST_STATUS_ACCEPTED) {
		r = sealpost_prekeys_error(ev.status);
		return r ? r : -EIO;
	}
	if (stock)
		*stock = (uint32_t)ev.count;
	return 0;
}

SEALPOST_API void sealpost_client_set_prekeys(struct sealpost_client *c,
					      struct sealpost_prekeys *pk)
{
	if (c)
		c->prekeys = pk;
}

/* ---- ratchet sessions (PROTOCOL.md 7.3; the store is sp_sessions.c) ------------ */

SEALPOST_API int sealpost_client_set_sessions(struct sealpost_client *c,
					      struct sealpost_sessions *ss)
{
	if (!c)
		return -EINVAL;
	if (ss && c->anon)
		return -SEALPOST_EANONYMOUS; /* no device key, and sessions never go anonymous */
	if (ss && memcmp(sp_sessions_device(ss), c->key->pub, SP_KEY_LEN) != 0)
		return -EINVAL;
	c->ratchets = ss;
	return 0;
}

SEALPOST_API int sealpost_client_send_first(struct sealpost_client *c,
					    const struct sealpost_prekey_bundle *b,
					    const void *msg, size_t len, uint64_t *client_id)
{
	size_t max_payload, out_len = 0;
	struct sp_fc_start st;
	uint8_t *body;
	int r;

	if (!c || !b || (!msg && len) || !c->ratchets || !sp_noise_key_valid(b->device))
		return -EINVAL;
	if (c->anon)
		return -SEALPOST_EANONYMOUS;
	if (c->max_envelope <= SP_FCSEAL_OVERHEAD)
		return -EMSGSIZE;
	max_payload = c->max_envelope - SP_FCSEAL_OVERHEAD;
	body = malloc(c->max_envelope);
	if (!body)
		return -ENOMEM;
	r = sp_prekeys_seal_first(c->key, b, msg, len, max_payload, body, c->max_envelope, &out_len,
				  &st);
	if (r == 0)
		r = sp_sessions_start_alice(c->ratchets, b->device, &st);
	sodium_memzero(&st, sizeof(st));
	if (r == 0) {
		r = queue_send(c, b->device, NULL, 0, body, out_len, 0, 0, client_id, NULL, 0);
		if (r < 0) /* the peer will never see it begin: no session */
			(void)sealpost_sessions_forget(c->ratchets, b->device);
	}
	free(body);
	return r;
}

SEALPOST_API int sealpost_prekeys_fetch(struct sealpost_client *c,
					const uint8_t device[SEALPOST_KEY_LEN], uint64_t *client_id)
{
	struct sp_frame f = { .type = SP_FRAME_PREKEY_FETCH };
	int r;

	if (!c || !device)
		return -EINVAL;
	r = ready_to_queue(c);
	if (r < 0)
		return r;
	f.u.prekey.client_id = ++c->next_access_id;
	memcpy(f.u.prekey.device, device, SP_KEY_LEN);
	f.u.prekey.device_ok = 1;
	r = sp_session_tx_frame(c->ss, &f, NULL, 0);
	if (r < 0)
		return r;
	if (client_id)
		*client_id = f.u.prekey.client_id;
	return 0;
}

SEALPOST_API int sealpost_prekeys_fetch_wait(struct sealpost_client *c, const uint8_t *list,
					     size_t list_len,
					     const uint8_t device[SEALPOST_KEY_LEN], int timeout_ms,
					     struct sealpost_prekey_bundle *out)
{
	int64_t deadline = deadline_of(timeout_ms);
	struct sealpost_event ev = { 0 };
	uint64_t id = 0;
	int r;

	if (!c || !list || !device || !out)
		return -EINVAL;
	begin_call(c);
	r = sealpost_prekeys_fetch(c, device, &id);
	if (r < 0)
		return r;
	r = wait_for(c, SEALPOST_EVENT_PREKEY_BUNDLE, id, deadline, &ev);
	if (r < 0)
		return r;
	if (ev.status != SEALPOST_STATUS_ACCEPTED) {
		r = sealpost_prekeys_error(ev.status);
		return r ? r : -EIO;
	}
	return sealpost_prekey_bundle_verify(c->acct_store, list, list_len, device, ev.data, ev.len,
					     out);
}

SEALPOST_API int sealpost_client_connect_anonymous(struct sealpost_client **out,
						   const char *server,
						   const uint8_t server_key[SEALPOST_KEY_LEN],
						   int timeout_ms,
						   const struct sealpost_connect_opts *opts)
{
	struct sealpost_key *k = NULL;
	int r;

	if (!out || !server || !server_key)
		return -EINVAL;
	*out = NULL;
	/* The client core wants a device key; an anonymous client's is random,
	 * its own, and never leaves it (NK sends none, and no XX probe runs). */
	r = sealpost_key_generate(&k);
	if (r < 0)
		return r;
	r = connect_blocking(out, server, k, server_key, timeout_ms, opts, true);
	sealpost_key_free(k);
	return r;
}

SEALPOST_API bool sealpost_client_is_anonymous(const struct sealpost_client *c)
{
	return c && c->anon;
}

SEALPOST_API int sealpost_client_send_anonymous(struct sealpost_client *anon,
						const struct sealpost_key *sender,
						const uint8_t to[SEALPOST_KEY_LEN],
						const uint8_t *access_key, size_t access_len,
						const void *msg, size_t msg_len, uint32_t flags,
						uint64_t *client_id)
{
	uint8_t *env;
	size_t env_len, sealed = 0;
	int r;

	if (!anon || !sender || !to || (!msg && msg_len) || (access_len && !access_key))
		return -EINVAL;
	if (!anon->anon)
		return -SEALPOST_EANONYMOUS;
	if (access_len && !access_len_ok(access_len))
		return -SEALPOST_EACCESSBADKEY;
	if (!sp_noise_key_valid(to))
		return -EINVAL;
	/* Padded (PROTOCOL.md 7.1): what the broker sees of the length is
	 * the bucket, up to this broker's largest envelope. */
	env_len = sp_seal_pad_bucket(msg_len, sealpost_client_max_message(anon));
	if (!env_len)
		return -EMSGSIZE;
	env_len += SP_SEAL_OVERHEAD;
	env = malloc(env_len);
	if (!env)
		return -ENOMEM;
	/* The normal Noise X seal: the sender is inside it, for the
	 * recipient only. */
	r = sp_seal_padded(sender->priv, to, msg ? msg : (const uint8_t *)"", msg_len,
			   sealpost_client_max_message(anon), env, env_len, &sealed);
	if (r == 0)
		r = queue_send(anon, to, NULL, 0, env, sealed, flags, 0, client_id, access_key,
			       access_len);
	sodium_memzero(env, env_len);
	free(env);
	return r;
}

static const struct contact_access *sp_contact_find(const struct sealpost_client *c,
						    const uint8_t who[SP_KEY_LEN])
{
	size_t i;

	for (i = 0; i < c->ncontacts; i++)
		if (memcmp(c->contacts[i].who, who, SP_KEY_LEN) == 0)
			return &c->contacts[i];
	return NULL;
}

SEALPOST_API int sealpost_contact_access_set(struct sealpost_client *c,
					     const uint8_t contact[SEALPOST_KEY_LEN],
					     const uint8_t *key, size_t len)
{
	struct contact_access *e;

	if (!c || !contact || (len && !key))
		return -EINVAL;
	e = (struct contact_access *)sp_contact_find(c, contact);
	if (len && !access_len_ok(len))
		return -SEALPOST_EACCESSBADKEY;
	if (!len) {
		if (e) {
			*e = c->contacts[--c->ncontacts];
			sodium_memzero(&c->contacts[c->ncontacts], sizeof(*e));
		}
		return 0;
	}
	if (!e) {
		if (c->ncontacts == c->contacts_cap) {
			size_t n = c->contacts_cap ? c->contacts_cap * 2 : 8;
			struct contact_access *t = calloc(n, sizeof(*t));

			if (!t)
				return -ENOMEM;
			/* calloc + copy, not realloc: the old array is wiped. */
			if (c->contacts) {
				memcpy(t, c->contacts, c->ncontacts * sizeof(*t));
				sodium_memzero(c->contacts, c->contacts_cap * sizeof(*t));
				free(c->contacts);
			}
			c->contacts = t;
			c->contacts_cap = n;
		}
		e = &c->contacts[c->ncontacts++];
		memcpy(e->who, contact, SP_KEY_LEN);
	}
	memset(e->key, 0, sizeof(e->key));
	memcpy(e->key, key, len);
	e->len = (uint8_t)len;
	return 0;
}

/* c's own anonymous connection, opened on first use with the key c's
 * handshake proved; reopened if it ended. */
static int own_anon(struct sealpost_client *c, int timeout_ms)
{
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;
	uint8_t sk[SP_KEY_LEN];

	if (c->anon_c && c->anon_c->st != CS_CLOSED)
		return 0;
	sealpost_client_close(c->anon_c);
	c->anon_c = NULL;
	if (c->foreign || !c->server)
		return -EOPNOTSUPP;
	if (!c->was_up && !c->has_pin)
		return -ENOTCONN;
	sealpost_client_server_key(c, sk);
	/* One send at a time, waited for: a drop ends it, the next call
	 * opens a new one. */
	o.flags = SEALPOST_CONNECT_NO_RECONNECT | SEALPOST_CONNECT_NO_KEEPALIVE;
	return sealpost_client_connect_anonymous(&c->anon_c, c->server, sk,
						 timeout_ms > 0 ? timeout_ms : 0, &o);
}

SEALPOST_API int sealpost_send_anonymous(struct sealpost_client *c,
					 const uint8_t to[SEALPOST_KEY_LEN],
					 const uint8_t *access_key, size_t access_len,
					 const void *msg, size_t msg_len, int timeout_ms,
					 int *status, uint64_t *seq)
{
	const struct contact_access *e;
	uint8_t tok[SP_ACCESS_KEY_MAX];
	size_t tok_len = 0;
	uint64_t id = 0;
	int r;

	if (!c || !to || !status || (access_len && !access_key))
		return -EINVAL;
	if (c->anon)
		return -SEALPOST_EANONYMOUS;
	if (access_key) {
		if (!access_len_ok(access_len))
			return -SEALPOST_EACCESSBADKEY;
		memcpy(tok, access_key, access_len);
		tok_len = access_len;
	} else if ((e = sp_contact_find(c, to))) {
		memcpy(tok, e->key, e->len);
		tok_len = e->len;
	}
	r = own_anon(c, timeout_ms);
	if (r == 0)
		r = sealpost_client_send_anonymous(c->anon_c, c->key, to, tok_len ? tok : NULL,
						   tok_len, msg, msg_len, 0, &id);
	sodium_memzero(tok, sizeof(tok));
	if (r < 0)
		return r;
	r = sealpost_client_wait_result(c->anon_c, id, timeout_ms, status, seq);
	if (r < 0)
		return r;
	return sealpost_access_error(*status);
}
