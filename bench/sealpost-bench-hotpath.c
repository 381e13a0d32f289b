/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sealpost-bench-hotpath: the broker's per-envelope code in one process, no
 * sockets.
 *
 * What runs is what sealpostd runs for an envelope: the sender's connection
 * (lib/session, in broker/sp_conn) takes the received bytes in receive-buffer-sized pieces
 * (sp_session_rx: length prefix, reassembly when a message straddles buffers,
 * sp_noise_decrypt in place, sp_frame_next per frame), the frame hook routes
 * each Send among --devices registered devices (broker/sp_route) and encrypts
 * Deliver{seq} + body straight into the recipient's open outbound message
 * (sp_session_tx_frame -> sp_noise_stream_update into a tx chunk), the sender
 * gets a SendResult the same way, and the end of the loop iteration finishes
 * each touched connection's message (sp_session_tx_seal) and hands its bytes to
 * "the socket" (sp_session_tx_peek / sp_session_tx_sent).
 *
 * The routing steps are the broker's own (broker/app/: sp_router.c's frame
 * dispatch and Send, sp_deliver.c's recipient lookup and Deliver,
 * sp_mailbox.c's SendResults after the commit; broker/loop/: the mark, the
 * idle timer, the end-of-iteration seal, the loop's clock reads and
 * metrics): a real struct sp_shard, set up without a ring and driven through
 * broker/loop/sp_detached.h; this program plays the ring (one receive
 * completion per receive-buffer-sized piece) and the socket (it takes every
 * finished byte). No store: the envelopes are Send{flags: ONLINE_ONLY}, the
 * path that never touches RocksDB.
 *
 * Beside it, on the same bytes and the same batch shape, the bare libsodium
 * AEAD: one crypto_aead_chacha20poly1305_ietf_decrypt of the sender's message
 * and one _encrypt of a message as long as the recipient's. The ratio of the
 * two is the figure that carries across machines. --cipher aesgcm runs every
 * connection with Noise_*_25519_AESGCM_BLAKE2b (the sender negotiates it in
 * its preamble) and the bare side with crypto_aead_aes256gcm_*.
 *
 * Handshakes: the responder side of IK through sp_session exactly as the broker
 * drives it (preamble + message 1 in, message 2 out, split), against the bare
 * X25519 operations the responder does: 4 crypto_scalarmult (es, ss, ee, se)
 * and 1 crypto_scalarmult_base (its ephemeral key).
 *
 * Client messages are encrypted before timing starts (only the broker side is
 * timed); each pass over them restores the ciphertext and rewinds the
 * sender connection's receive nonce outside the timed interval. At the end a
 * capture pass keeps everything the broker wrote, and the recipients' side
 * decrypts it with plain libsodium and checks every frame and body, so a
 * broken hot path fails the run instead of measuring fast nonsense.
 *
 * --shards N: N shards at once, each in a process of its own with its own
 * devices and sender (shards share nothing on this path: no lock, no
 * common table), their timed passes started together; the parent adds up
 * what they did per second of wall time (envelopes/s, hot path), the
 * figure to compare with one shard (docs/BENCHMARKS.md, "Shards").
 *
 * Secrets: every key here is a throwaway benchmark key derived from --seed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "sp_clock.h"
#include "sp_config.h"
#include "sp_conn.h"
#include "sp_frame.h"
#include "sp_fsutil.h"
#include "sp_limits.h"
#include "sp_metrics.h"
#include "sp_noise.h"
#include "sp_route.h"
#include "sp_log.h"
#include "sp_shard.h"
#include "sp_detached.h"
#include "sp_timers.h"

enum {
	MAX_REPS = 64,
	EVICT_BYTES = 96 << 20,         /* read between passes: more than this L3 (32 MiB) */
	WORKSET_BYTES = 4 << 20,        /* pre-encrypted input kept per pass */
	MIN_MSGS = 4,
	MAX_MSGS = 16384,
	ESTABLISH_BATCH = 1024,         /* devices routed per setup iteration */
	HS_CLIENTS = 8,                 /* distinct IK message 1s, replayed to fresh conns */
	SHARD_ID = 0,
	LOOKUP_SAMPLES = 1 << 20,
};

struct opts {
	size_t size;
	size_t batch;
	uint32_t devices;
	unsigned reps;
	double seconds;                 /* per repetition x reps, per measurement */
	uint64_t iterations;            /* envelopes per repetition (overrides seconds) */
	uint64_t handshakes;            /* handshakes per repetition (overrides seconds) */
	uint64_t rekey;                 /* --test-rekey-messages; 0: the protocol's */
	uint32_t recv_buffer_size;
	uint64_t seed;
	const char *json;
	bool quiet;
	bool warm;
	uint8_t aead;                   /* --cipher: enum sp_noise_aead */
	unsigned shards;                /* --shards: processes, one shard each */
};

/* --shards: this process's part (child), or none (-1). */
static int shard_ready_fd = -1, shard_go_fd = -1, shard_report_fd = -1;

/* The broker's shard (sp_shard_init_detached) and what the benchmark keeps beside it. */
struct bench {
	struct sp_config cfg;           /* borrowed by sh */
	struct sp_log log;
	struct sp_shard sh;
	struct sp_conn *conns;          /* sh.conns: devices + 1 slots; the sender is the last */
	uint32_t nconns;

	/* capture pass: what the broker handed to the socket, per connection */
	bool capture;
	uint8_t *cap_rcpt, *cap_sender;
	size_t cap_rcpt_len, cap_sender_len, cap_rcpt_cap, cap_sender_cap;

	/* derived keys */
	uint8_t seed_key[32];
	uint8_t bare_key[SP_KEY_LEN];   /* bare AEAD's encryption key (any key costs the same) */

	/* Cold mode: read between passes so that the recipients' route slots and
	 * connections come from DRAM, as they do for a random recipient among a
	 * million; the input is restored after it (the kernel just wrote it). */
	const uint64_t *evict;
	uint64_t evict_sink;
};

struct stat3 {
	double med, min, max;
};

/* --- small helpers ---------------------------------------------------------- */

static uint64_t mono_ns(void)
{
	return sp_clock_mono_ns();
}

/*
 * The measuring clock: this thread's CPU time, so that on a shared machine
 * the time other processes hold the core is not billed to the broker (wall
 * time is kept beside it). Read twice per pass of thousands of envelopes.
 */
static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_acc;               /* wall ns of the timed passes, summed per series */
/* Transport messages per key, as every cipher of the run rekeys (Noise
 * 11.3): SP_REKEY_MESSAGES, or --test-rekey-messages so that a tiny test
 * run crosses many rekeys deterministically. */
static uint64_t rekey_every = SP_REKEY_MESSAGES;
/* --cipher: every connection's, and the bare side's, AEAD. */
static uint8_t aead = SP_NOISE_CHACHAPOLY;

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static struct stat3 stats_of(const double *v, unsigned n)
{
	double s[MAX_REPS];
	struct stat3 r;

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	r.min = s[0];
	r.max = s[n - 1];
	r.med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	return r;
}

static void die(const char *what)
{
	fprintf(stderr, "sealpost-bench-hotpath: %s\n", what);
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("out of memory");
	return p;
}

/* The nonce of counter n, written out here rather than taken from sp_noise:
 * little-endian for ChaChaPoly, big-endian for AESGCM (Noise 12.3, 12.4). */
static void make_nonce(uint8_t nonce[12], uint64_t n)
{
	memset(nonce, 0, 4);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(n >> (8 * (aead == SP_NOISE_AESGCM ? 7 - i : i)));
}

/* Bare libsodium AEAD, empty ad, of the run's cipher. */
static int bare_decrypt(uint8_t *m, unsigned long long *mlen, const uint8_t *c, size_t clen,
			const uint8_t nonce[12], const uint8_t *k)
{
	if (aead == SP_NOISE_AESGCM)
		return crypto_aead_aes256gcm_decrypt(m, mlen, NULL, c, clen, NULL, 0, nonce, k);
	return crypto_aead_chacha20poly1305_ietf_decrypt(m, mlen, NULL, c, clen, NULL, 0, nonce, k);
}

static void bare_encrypt(uint8_t *c, unsigned long long *clen, const uint8_t *m, size_t mlen,
			 const uint8_t nonce[12], const uint8_t *k)
{
	if (aead == SP_NOISE_AESGCM)
		crypto_aead_aes256gcm_encrypt(c, clen, m, mlen, NULL, 0, NULL, nonce, k);
	else
		crypto_aead_chacha20poly1305_ietf_encrypt(c, clen, m, mlen, NULL, 0, NULL, nonce,
							  k);
}

/*
 * Device slot i's key material, derived from the seed: its public key (a
 * routing key) and its connection's two transport keys. 128 bytes of
 * ChaCha20 keystream at block 2i.
 */
struct slot_keys {
	uint8_t device[SP_KEY_LEN];
	uint8_t tx[SP_KEY_LEN];         /* broker -> device (the device's rx) */
	uint8_t rx[SP_KEY_LEN];
	uint8_t spare[SP_KEY_LEN];
};

static void slot_keys(const struct bench *b, uint32_t i, struct slot_keys *k)
{
	static const uint8_t nonce[12] = { 's', 'p', 'b', 'e', 'n', 'c', 'h' };

	_Static_assert(sizeof(struct slot_keys) == 128, "two ChaCha20 blocks");
	memset(k, 0, sizeof(*k));
	crypto_stream_chacha20_ietf_xor_ic((uint8_t *)k, (const uint8_t *)k, sizeof(*k), nonce,
					   2 * i, b->seed_key);
	/* Canonical (bit 255 clear; at or above 2^255 - 19 and a low-order
	 * encoding are a chance in 2^250 each; never mind, but be exact). */
	k->device[SP_KEY_LEN - 1] &= 0x7f;
	while (!sp_noise_key_valid(k->device))
		k->device[0]++;
}

static uint8_t body_byte(uint64_t client_id, size_t k)
{
	return (uint8_t)(client_id * 0x9d + k * 7 + (k >> 8));
}

/* --- the ring and the socket, played by the benchmark ----------------------- */

static void capture(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *p, size_t n)
{
	uint8_t *p2 = sp_fsutil_grow(*buf, cap, *len + n, 2 * (*len + n));

	if (!p2)
		die("out of memory");
	*buf = p2;
	memcpy(*buf + *len, p, n);
	*len += n;
}

/* start_send() + on_send_cqe(): the socket takes every finished byte. */
static void send_all(void *ctx, struct sp_conn *c)
{
	struct bench *b = ctx;
	const uint8_t *p;
	size_t len;

	while (sp_session_tx_peek(&c->s, &p, &len)) {
		if (b->capture) {
			if (c->tab.slot == b->nconns - 1)
				capture(&b->cap_sender, &b->cap_sender_len, &b->cap_sender_cap, p,
					len);
			else
				capture(&b->cap_rcpt, &b->cap_rcpt_len, &b->cap_rcpt_cap, p, len);
		}
		sp_session_tx_sent(&c->s, len);
		sp_metrics_bytes_sent(b->sh.metrics, len);      /* on_send_cqe */
	}
}

/* One sp_shard_run() loop iteration: a message arrives in receive buffers
 * (one completion each), then results, flush, metrics. */
__attribute__((noinline))
static int iteration(struct bench *b, struct sp_conn *c, uint8_t *msg, size_t len)
{
	size_t step = b->cfg.recv_buffer_size;
	uint64_t ncqe = 0;

	sp_shard_begin_iteration(&b->sh);
	for (size_t off = 0; off < len; off += step, ncqe++) {
		size_t n = len - off < step ? len - off : step;

		if (sp_shard_feed(&b->sh, c, msg + off, n) != SP_CLOSE_NONE)
			return -EPROTO;
	}
	return sp_shard_end_iteration(&b->sh, ncqe, send_all, b);
}

/* --- setup -------------------------------------------------------------------- */

/* The wire bytes of one client transport message: prefix + ciphertext. */
static size_t client_transport(struct sp_noise_cipher *tx, const uint8_t *plain, size_t plen,
			       uint8_t *out)
{
	memcpy(out + SP_LEN_PREFIX, plain, plen);
	if (sp_noise_encrypt(tx, out + SP_LEN_PREFIX, plen))
		die("client encrypt failed");
	out[0] = (uint8_t)((plen + SP_TAG_LEN) >> 8);
	out[1] = (uint8_t)(plen + SP_TAG_LEN);
	return SP_LEN_PREFIX + plen + SP_TAG_LEN;
}

struct client {
	uint8_t priv[SP_KEY_LEN], pub[SP_KEY_LEN];
	struct sp_noise_handshake hs;
	struct sp_noise_transport t;
};

static uint8_t preamble_ik[SP_PREAMBLE_LEN] = { 'S', 'E', 'A', 'L', SP_PROTOCOL_VERSION,
						SP_PREAMBLE_PATTERN_IK, 0, 0 };

/* Preamble + IK message 1 as the client sends them; hs is left waiting for msg 2. */
static size_t client_msg1(struct client *cl, const uint8_t server_pub[SP_KEY_LEN], uint8_t *out)
{
	struct sp_hello h = { .protocol_version = SP_PROTOCOL_VERSION };
	uint8_t pl[SP_HANDSHAKE_PAYLOAD_MAX];
	size_t plen = 0, mlen = 0;

	preamble_ik[6] = aead == SP_NOISE_AESGCM ? SP_PREAMBLE_CIPHER_AESGCM
						 : SP_PREAMBLE_CIPHER_CHACHAPOLY;
	if (sp_noise_handshake_init_aead(&cl->hs, SP_NOISE_IK, (enum sp_noise_aead)aead,
					 SP_NOISE_INITIATOR, preamble_ik, SP_PREAMBLE_LEN, cl->priv,
					 server_pub) ||
	    sp_frame_client_hello_encode(&h, pl, sizeof(pl), &plen) ||
	    sp_noise_handshake_write(&cl->hs, pl, plen, out + SP_PREAMBLE_LEN + SP_LEN_PREFIX,
				     SP_HANDSHAKE_MSG_MAX, &mlen))
		die("client IK message 1 failed");
	memcpy(out, preamble_ik, SP_PREAMBLE_LEN);
	out[SP_PREAMBLE_LEN] = (uint8_t)(mlen >> 8);
	out[SP_PREAMBLE_LEN + 1] = (uint8_t)mlen;
	return SP_PREAMBLE_LEN + SP_LEN_PREFIX + mlen;
}

/* The client reads the broker's message 2 (prefix + message) and splits. */
static int client_msg2(struct client *cl, const uint8_t *p, size_t len)
{
	uint8_t pl[SP_HANDSHAKE_PAYLOAD_MAX];
	struct sp_hello h;
	size_t plen = 0, mlen = 0;

	if (len < SP_LEN_PREFIX)
		return -EBADMSG;
	mlen = (size_t)p[0] << 8 | p[1];
	if (mlen + SP_LEN_PREFIX != len)
		return -EBADMSG;
	if (sp_noise_handshake_read(&cl->hs, p + SP_LEN_PREFIX, mlen, pl, sizeof(pl), &plen) ||
	    sp_frame_server_hello_decode(pl, plen, &h) || h.protocol_version != SP_PROTOCOL_VERSION)
		return -EBADMSG;
	if (sp_noise_handshake_split(&cl->hs, &cl->t))
		return -EBADMSG;
	if (rekey_every != SP_REKEY_MESSAGES)
		sp_noise_transport_set_rekey(&cl->t, rekey_every);
	return 0;
}

/* The output a connection queued, taken whole (handshake message 2). */
static size_t take_output(struct sp_conn *c, uint8_t *out, size_t cap)
{
	const uint8_t *p;
	size_t len, total = 0;

	while (sp_session_tx_peek(&c->s, &p, &len)) {
		if (total + len > cap)
			die("handshake output too long");
		memcpy(out + total, p, len);
		total += len;
		sp_session_tx_sent(&c->s, len);
	}
	return total;
}

/*
 * The sender: a real IK connection through sp_session_rx, proven by a first
 * transport message (a Ping) as the broker requires before routing it.
 */
static void connect_sender(struct bench *b, struct client *cl,
			   const uint8_t server_pub[SP_KEY_LEN])
{
	struct sp_conn *c;
	uint8_t wire[SP_PREAMBLE_LEN + SP_LEN_PREFIX + SP_HANDSHAKE_MSG_MAX + 64];
	uint8_t out[SP_LEN_PREFIX + SP_HANDSHAKE_MSG_MAX + 256];
	uint8_t plain[64];
	struct sp_frame ping = { .type = SP_FRAME_PING, .u.ping.id = 42 };
	size_t len, off = 0;

	len = client_msg1(cl, server_pub, wire);
	sp_shard_begin_iteration(&b->sh);
	c = sp_shard_conn_add(&b->sh);
	if (!c || c->tab.slot != b->nconns - 1)
		die("connection table");
	if (sp_shard_feed(&b->sh, c, wire, len) != SP_CLOSE_NONE ||
	    c->s.state != SP_SESSION_ESTABLISHED)
		die("sender handshake refused");
	len = take_output(c, out, sizeof(out));
	if (client_msg2(cl, out, len))
		die("sender handshake: message 2 did not verify");
	if (sp_frame_put(plain, sizeof(plain), &off, &ping))
		die("ping encode");
	len = client_transport(&cl->t.tx, plain, off, wire);
	if (iteration(b, c, wire, len) || !c->route.routed)
		die("sender not proven/routed");
}

/* Registers device slot i as an established connection with derived keys:
 * the state a finished, proven IK handshake leaves (the handshake itself is
 * measured separately; a million of them would take minutes). */
static void establish_slot(struct bench *b, uint32_t i)
{
	struct sp_conn *c = sp_shard_conn_add(&b->sh);
	struct slot_keys k;

	if (!c || c->tab.slot != i)
		die("connection table");
	slot_keys(b, i, &k);
	c->s.state = SP_SESSION_ESTABLISHED;
	c->s.pattern = SP_PREAMBLE_PATTERN_IK;
	c->s.has_peer = c->s.proven = true;
	memcpy(c->s.peer, k.device, SP_KEY_LEN);
	if (sp_session_keys_init(&c->s))
		die("session keys slot");
	memcpy(c->s.keys->t.tx.k, k.tx, SP_KEY_LEN);
	c->s.keys->t.tx.has_key = true;
	memcpy(c->s.keys->t.rx.k, k.rx, SP_KEY_LEN);
	c->s.keys->t.rx.has_key = true;
	c->s.aead = c->s.keys->t.tx.aead = c->s.keys->t.rx.aead = aead;
	if (rekey_every != SP_REKEY_MESSAGES)
		sp_noise_transport_set_rekey(&c->s.keys->t, rekey_every);
	if (sp_shard_conn_route(&b->sh, c))
		die("route insert failed");
	sodium_memzero(&k, sizeof(k));
}

/* --- the pre-encrypted workload ------------------------------------------------ */

struct workload {
	size_t batch;                   /* envelopes per message, as sent */
	size_t nmsgs;
	uint8_t *pristine, *work;       /* wire bytes, back to back */
	size_t *off, *len;              /* per message */
	uint32_t *rcpt;                 /* recipient slot per message */
	uint64_t nonce0;                /* sender's client tx nonce of message 0 */
	struct sp_noise_cipher rx0;     /* the broker's rx cipher of the sender at message 0 */
	size_t total;
	size_t deliver_plain;           /* bytes of one Deliver-shaped plaintext, for bare crypto */
	uint8_t *bare_out;
};

static size_t send_frame_size(size_t size)
{
	struct sp_frame f;

	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_SEND;
	memset(f.u.send.to, 0xee, SP_KEY_LEN);
	f.u.send.to_ok = 1;
	f.u.send.client_id = 1u << 20;  /* a 3-byte varint: a busy client's ids */
	f.u.send.flags = SP_SEND_ONLINE_ONLY;
	return sp_frame_size(&f, size);
}

static void build_workload(struct bench *b, const struct opts *o, struct client *cl,
			   struct workload *w)
{
	size_t fsz = send_frame_size(o->size), per_msg, msg_bytes;
	uint8_t *plain = xmalloc(SP_TRANSPORT_PLAINTEXT_MAX);
	uint64_t rng = o->seed ^ 0x5ea1u, id = 1u << 20;
	struct sp_frame d;

	memset(w, 0, sizeof(*w));
	/* The batch is what fits in one Noise message (16 KiB bodies: 3). */
	w->batch = o->batch;
	if (w->batch * fsz > SP_TRANSPORT_PLAINTEXT_MAX)
		w->batch = SP_TRANSPORT_PLAINTEXT_MAX / fsz;
	if (w->batch == 0)
		die("--size too large for one transport message");
	per_msg = w->batch * fsz;
	msg_bytes = SP_LEN_PREFIX + per_msg + SP_TAG_LEN;
	w->nmsgs = WORKSET_BYTES / msg_bytes;
	if (w->nmsgs < MIN_MSGS)
		w->nmsgs = MIN_MSGS;
	if (w->nmsgs > MAX_MSGS)
		w->nmsgs = MAX_MSGS;
	/* client ids stay 3-byte varints (2^20 .. 2^21), so every frame is fsz */
	if (w->nmsgs * w->batch > (1u << 20))
		w->nmsgs = (1u << 20) / w->batch;
	w->pristine = xmalloc(w->nmsgs * msg_bytes);
	w->work = xmalloc(w->nmsgs * msg_bytes);
	w->off = xmalloc(w->nmsgs * sizeof(*w->off));
	w->len = xmalloc(w->nmsgs * sizeof(*w->len));
	w->rcpt = xmalloc(w->nmsgs * sizeof(*w->rcpt));
	w->nonce0 = cl->t.tx.n;
	memset(&d, 0, sizeof(d));
	d.type = SP_FRAME_DELIVER;
	d.u.deliver.seq = 0;            /* online-only: not written (proto3 default) */
	w->deliver_plain = w->batch * sp_frame_size(&d, o->size);
	w->bare_out = xmalloc(w->deliver_plain + SP_TAG_LEN);

	for (size_t m = 0; m < w->nmsgs; m++) {
		uint32_t r = (uint32_t)(splitmix(&rng) % o->devices);
		struct slot_keys k;
		size_t off = 0;

		slot_keys(b, r, &k);
		for (size_t j = 0; j < w->batch; j++, id++) {
			struct sp_frame f;

			memset(&f, 0, sizeof(f));
			f.type = SP_FRAME_SEND;
			memcpy(f.u.send.to, k.device, SP_KEY_LEN);
			f.u.send.to_ok = 1;
			f.u.send.client_id = id;
			f.u.send.flags = SP_SEND_ONLINE_ONLY;
			if (sp_frame_put_header(plain, SP_TRANSPORT_PLAINTEXT_MAX, &off, &f,
						o->size))
				die("frame encode");
			for (size_t x = 0; x < o->size; x++)
				plain[off + x] = body_byte(id, x);
			off += o->size;
		}
		w->rcpt[m] = r;
		w->off[m] = w->total;
		w->len[m] = client_transport(&cl->t.tx, plain, off, w->pristine + w->total);
		w->total += w->len[m];
		sodium_memzero(&k, sizeof(k));
	}
	free(plain);
}

static void restore(struct bench *b, struct sp_conn *sender, struct workload *w)
{
	if (b->evict) {
		uint64_t sum = 0;

		for (size_t i = 0; i < EVICT_BYTES / 8; i += 8)
			sum += b->evict[i];
		b->evict_sink += sum;
	}
	memcpy(w->work, w->pristine, w->total);
	/* The whole cipher, not just its nonce: a pass may cross a rekey. */
	sender->s.keys->t.rx = w->rx0;
}

/* One timed pass over the workload through the broker path; CPU ns.
 * (noinline here and on iteration, bare_pass, hs_pass, one_handshake: named
 * frames for valgrind --toggle-collect and perf.) */
__attribute__((noinline))
static uint64_t hot_pass(struct bench *b, struct sp_conn *sender, struct workload *w)
{
	uint64_t t0, t1;

	uint64_t w0;

	restore(b, sender, w);
	w0 = mono_ns();
	t0 = cpu_ns();
	for (size_t m = 0; m < w->nmsgs; m++)
		if (iteration(b, sender, w->work + w->off[m], w->len[m]))
			die("hot path failed (connection error)");
	t1 = cpu_ns();
	wall_acc += mono_ns() - w0;
	return t1 - t0;
}

/* The same bytes through bare libsodium: decrypt the sender's message in
 * place, encrypt a Deliver-shaped plaintext (from the decrypted bytes) for
 * the recipient. Keys: the sender's rx key and the recipient's tx key. */
__attribute__((noinline))
static uint64_t bare_pass(struct bench *b, struct sp_conn *sender, struct workload *w)
{
	struct sp_noise_cipher k = w->rx0;
	uint8_t nonce[12];
	uint64_t t0, t1;
	unsigned long long mlen;
	uint64_t w0;

	restore(b, sender, w);
	w0 = mono_ns();
	t0 = cpu_ns();
	for (size_t m = 0; m < w->nmsgs; m++) {
		uint8_t *msg = w->work + w->off[m] + SP_LEN_PREFIX;
		size_t clen = w->len[m] - SP_LEN_PREFIX;

		make_nonce(nonce, w->nonce0 + m);
		if (bare_decrypt(msg, &mlen, msg, clen, nonce, k.k))
			die("bare decrypt failed");
		if ((w->nonce0 + m + 1) % rekey_every == 0)
			sp_noise_rekey(&k);
		make_nonce(nonce, m);
		bare_encrypt(w->bare_out, &mlen, msg, w->deliver_plain, nonce, b->bare_key);
	}
	t1 = cpu_ns();
	wall_acc += mono_ns() - w0;
	sodium_memzero(&k, sizeof(k));
	return t1 - t0;
}

/*
 * --cipher aesgcm only: the bare side again with libsodium's precomputed
 * AES-GCM state (crypto_aead_aes256gcm_beforenm once per key, outside the
 * loop), to show what keeping that 512-byte state per direction would save
 * against the plain API that sp_noise uses.
 */
__attribute__((noinline))
static uint64_t bare_pass_pre(struct bench *b, struct sp_conn *sender, struct workload *w)
{
	static crypto_aead_aes256gcm_state st_rx, st_tx;
	struct sp_noise_cipher k = w->rx0;
	uint8_t nonce[12];
	uint64_t t0, t1, w0;
	unsigned long long mlen;

	restore(b, sender, w);
	crypto_aead_aes256gcm_beforenm(&st_rx, k.k);
	crypto_aead_aes256gcm_beforenm(&st_tx, b->bare_key);
	w0 = mono_ns();
	t0 = cpu_ns();
	for (size_t m = 0; m < w->nmsgs; m++) {
		uint8_t *msg = w->work + w->off[m] + SP_LEN_PREFIX;
		size_t clen = w->len[m] - SP_LEN_PREFIX;

		make_nonce(nonce, w->nonce0 + m);
		if (crypto_aead_aes256gcm_decrypt_afternm(msg, &mlen, NULL, msg, clen, NULL, 0,
							  nonce, &st_rx))
			die("bare decrypt failed");
		if ((w->nonce0 + m + 1) % rekey_every == 0) {
			sp_noise_rekey(&k);
			crypto_aead_aes256gcm_beforenm(&st_rx, k.k);
		}
		make_nonce(nonce, m);
		crypto_aead_aes256gcm_encrypt_afternm(w->bare_out, &mlen, msg, w->deliver_plain,
						      NULL, 0, NULL, nonce, &st_tx);
	}
	t1 = cpu_ns();
	wall_acc += mono_ns() - w0;
	sodium_memzero(&k, sizeof(k));
	sodium_memzero(&st_rx, sizeof(st_rx));
	sodium_memzero(&st_tx, sizeof(st_tx));
	return t1 - t0;
}

/* --- verification ------------------------------------------------------------- */

/*
 * Decrypts one captured stream of length-prefixed messages with plain
 * libsodium (key, nonces from n0) and calls check() on every frame.
 */
typedef int (*frame_check)(void *ctx, const struct sp_frame *f);

static int open_stream(const uint8_t *p, size_t len, const uint8_t key[SP_KEY_LEN], uint64_t *n,
		       frame_check check, void *ctx)
{
	uint8_t *buf = xmalloc(SP_NOISE_MSG_MAX);
	struct sp_noise_cipher c = { .has_key = true, .aead = aead };
	uint8_t nonce[12];
	size_t off = 0;
	int ret = 0;

	/* key is the stream's key at nonce 0; the broker's cipher has rekeyed
	 * after every rekey_every messages since (Noise 11.3), which a
	 * --seconds run of a few seconds passes: the key of nonce n is key
	 * rekeyed n / rekey_every times. */
	memcpy(c.k, key, SP_KEY_LEN);
	for (uint64_t i = 0; i < *n / rekey_every; i++)
		sp_noise_rekey(&c);
	while (off < len && ret == 0) {
		size_t mlen = 0, foff = 0;
		unsigned long long plen;
		struct sp_frame f;

		if (len - off < SP_LEN_PREFIX) {
			ret = -EBADMSG;
			break;
		}
		mlen = (size_t)p[off] << 8 | p[off + 1];
		off += SP_LEN_PREFIX;
		if (mlen < SP_TAG_LEN || mlen > len - off) {
			ret = -EBADMSG;
			break;
		}
		make_nonce(nonce, *n);
		if (bare_decrypt(buf, &plen, p + off, mlen, nonce, c.k)) {
			ret = -EBADMSG;
			break;
		}
		if (++*n % rekey_every == 0)
			sp_noise_rekey(&c);
		off += mlen;
		while ((ret = sp_frame_next(buf, (size_t)plen, &foff, &f)) == 0)
			if ((ret = check(ctx, &f)))
				break;
		if (ret == -ENODATA)
			ret = 0;
	}
	sodium_memzero(&c, sizeof(c));
	free(buf);
	return ret;
}

struct expect {
	size_t size;
	uint64_t next_id;               /* client_id of the next envelope */
	uint64_t seqs[SP_TRANSPORT_PLAINTEXT_MAX / 8];
	size_t nseq, iseq;
	uint64_t frames;
};

static int check_deliver(void *ctx, const struct sp_frame *f)
{
	struct expect *e = ctx;

	if (f->type != SP_FRAME_DELIVER || f->body_len != e->size || f->u.deliver.seq != 0)
		return -EBADMSG;
	for (size_t k = 0; k < f->body_len; k++)
		if (f->body[k] != body_byte(e->next_id, k))
			return -EBADMSG;
	e->seqs[e->nseq++] = f->u.deliver.seq;
	e->next_id++;
	e->frames++;
	return 0;
}

static int check_result(void *ctx, const struct sp_frame *f)
{
	struct expect *e = ctx;

	if (f->type != SP_FRAME_SEND_RESULT || f->u.send_result.status != SP_STATUS_DELIVERED ||
	    f->u.send_result.client_id != e->next_id || e->iseq >= e->nseq ||
	    f->u.send_result.seq != e->seqs[e->iseq])
		return -EBADMSG;
	e->iseq++;
	e->next_id++;
	e->frames++;
	return 0;
}

/*
 * The capture pass: the same iterations, with every byte the broker hands to
 * the socket kept; then each recipient decrypts its Deliver message(s) and
 * checks every body, and the sender checks every SendResult (status, client
 * id, and the seq its recipient saw). Returns the envelopes verified.
 */
static uint64_t verify(struct bench *b, struct sp_conn *sender, struct client *cl,
		       struct workload *w, size_t size)
{
	struct expect *e = xmalloc(sizeof(*e));
	uint64_t id0 = 1u << 20, ok = 0;

	restore(b, sender, w);
	b->capture = true;
	for (size_t m = 0; m < w->nmsgs; m++) {
		struct sp_conn *rc = &b->conns[w->rcpt[m]];
		uint64_t rn = rc->s.keys->t.tx.n, sn = sender->s.keys->t.tx.n;
		struct slot_keys k;

		b->cap_rcpt_len = b->cap_sender_len = 0;
		if (iteration(b, sender, w->work + w->off[m], w->len[m]))
			die("verify: connection error");
		memset(e, 0, sizeof(*e));
		e->size = size;
		e->next_id = id0 + m * w->batch;
		slot_keys(b, w->rcpt[m], &k);
		if (open_stream(b->cap_rcpt, b->cap_rcpt_len, k.tx, &rn, check_deliver, e) ||
		    e->frames != w->batch || rn != rc->s.keys->t.tx.n)
			die("verify: a recipient's Deliver output is wrong");
		e->next_id = id0 + m * w->batch;
		e->frames = 0;
		if (open_stream(b->cap_sender, b->cap_sender_len, cl->t.rx.k, &sn, check_result,
				e) ||
		    e->frames != w->batch || sn != sender->s.keys->t.tx.n)
			die("verify: the sender's SendResult output is wrong");
		sodium_memzero(&k, sizeof(k));
		ok += w->batch;
	}
	b->capture = false;
	free(e);
	return ok;
}

/* --- handshakes ------------------------------------------------------------ */

struct hs_bench {
	struct client cl[HS_CLIENTS];
	uint8_t msg1[HS_CLIENTS][SP_PREAMBLE_LEN + SP_LEN_PREFIX + SP_HANDSHAKE_MSG_MAX];
	size_t msg1_len[HS_CLIENTS];
	struct sp_conn c;
	uint8_t out[SP_LEN_PREFIX + SP_HANDSHAKE_MSG_MAX];
	size_t out_len;
	uint8_t rx[SP_PREAMBLE_LEN + SP_LEN_PREFIX + SP_HANDSHAKE_MSG_MAX];
};

/* One IK responder handshake through sp_session, as on_recv + flush would run it
 * (accept and the socket calls aside), then the connection's teardown wipe. */
__attribute__((noinline))
static void one_handshake(struct bench *b, struct hs_bench *h, unsigned k, bool keep)
{
	const uint8_t *p;
	size_t len;

	memcpy(h->rx, h->msg1[k], h->msg1_len[k]);
	/* Outside the table: the session and the handshake deadline, as
	 * sp_life_open sets them up, without a slot to free afterwards. */
	sp_session_accept(&h->c.s, &b->sh.env);
	b->sh.now_ns = mono_ns();
	sp_timers_accepted(&b->sh, &h->c);
	if (sp_session_rx(&h->c.s, h->rx, h->msg1_len[k]) != SP_CLOSE_NONE ||
	    h->c.s.state != SP_SESSION_ESTABLISHED)
		die("handshake refused");
	h->out_len = 0;
	while (sp_session_tx_peek(&h->c.s, &p, &len)) {
		if (keep && h->out_len + len <= sizeof(h->out)) {
			memcpy(h->out + h->out_len, p, len);
			h->out_len += len;
		}
		sp_session_tx_sent(&h->c.s, len);
	}
	sp_timers_ended(&b->sh, &h->c);
	if (!keep)
		sp_session_wipe(&h->c.s);
}

__attribute__((noinline))
static uint64_t hs_pass(struct bench *b, struct hs_bench *h, uint64_t n)
{
	uint64_t w0 = mono_ns(), t0 = cpu_ns();

	for (uint64_t i = 0; i < n; i++)
		one_handshake(b, h, (unsigned)(i % HS_CLIENTS), false);
	t0 = cpu_ns() - t0;
	wall_acc += mono_ns() - w0;
	return t0;
}

/* The X25519 work of one IK responder: its ephemeral key pair (base point)
 * and es, ss, ee, se. */
static uint64_t x25519_pass(uint64_t n, const uint8_t *pub)
{
	uint8_t priv[SP_KEY_LEN], out[SP_KEY_LEN];
	uint64_t t0, w0;

	randombytes_buf(priv, sizeof(priv));
	w0 = mono_ns();
	t0 = cpu_ns();
	for (uint64_t i = 0; i < n; i++) {
		if (crypto_scalarmult_base(out, priv))
			die("x25519 base");
		for (int j = 0; j < 4; j++)
			if (crypto_scalarmult(out, priv, pub))
				die("x25519");
	}
	t0 = cpu_ns() - t0;
	wall_acc += mono_ns() - w0;
	sodium_memzero(priv, sizeof(priv));
	sodium_memzero(out, sizeof(out));
	return t0;
}

/* Checks every distinct message 1 once more: the client reads our message 2,
 * and both sides agree on the transport keys. */
static unsigned hs_verify(struct bench *b, struct hs_bench *h)
{
	unsigned ok = 0;

	for (unsigned k = 0; k < HS_CLIENTS; k++) {
		struct client cl = h->cl[k];

		one_handshake(b, h, k, true);
		if (client_msg2(&cl, h->out, h->out_len) || !h->c.s.keys ||
		    sodium_memcmp(cl.t.tx.k, h->c.s.keys->t.rx.k, SP_KEY_LEN) ||
		    sodium_memcmp(cl.t.rx.k, h->c.s.keys->t.tx.k, SP_KEY_LEN) ||
		    sodium_memcmp(h->c.s.peer, cl.pub, SP_KEY_LEN))
			die("verify: handshake output wrong");
		sp_session_wipe(&h->c.s);
		sp_noise_handshake_wipe(&cl.hs);
		sp_noise_transport_wipe(&cl.t);
		ok++;
	}
	return ok;
}

/* --- options and output ---------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sealpost-bench-hotpath [options]\n"
		"  --size BYTES        envelope body size (default 256)\n"
		"  --batch N           envelopes per Noise message (default 16; fewer if they\n"
		"                      do not fit in one)\n"
		"  --devices N         registered devices in the routing table (default 1000000)\n"
		"  --reps N            repetitions per measurement, median/min/max (default 5)\n"
		"  --seconds S         time per measurement, split over the reps (default 2)\n"
		"  --iterations N      envelopes per repetition instead of --seconds\n"
		"  --handshakes N      handshakes per repetition instead of --seconds\n"
		"  --test-rekey-messages N  rekey every N transport messages (tests; default\n"
		"                      the protocol's 65536)\n"
		"  --recv-buffer-size BYTES  receive buffer size (default: the broker's, 16384)\n"
		"  --seed N            key and traffic seed (default 1)\n"
		"  --warm              keep the recipients cached between passes (default: cold,\n"
		"                      as a random recipient among a million is)\n"
		"  --cipher NAME       chachapoly (default) or aesgcm: every connection's\n"
		"                      transport cipher and the bare side's AEAD (aesgcm needs\n"
		"                      AES-NI)\n"
		"  --json FILE         write the figures as JSON ('-': stdout, summary to stderr)\n"
		"  --shards N          N shards at once, a process each (their own devices),\n"
		"                      timed together; prints their envelopes/s summed\n"
		"  --quiet             no summary\n");
}

static uint64_t num_arg(const char *opt, const char *v, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long x;

	errno = 0;
	x = strtoull(v ? v : "", &end, 10);
	if (!v || errno || *end || end == v || x < min || x > max) {
		fprintf(stderr, "sealpost-bench-hotpath: bad value for %s\n", opt);
		exit(2);
	}
	return x;
}

static void parse(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->size = 256;
	o->batch = 16;
	o->devices = 1000000;
	o->reps = 5;
	o->seconds = 2;
	o->recv_buffer_size = SP_DEFAULT_RECV_BUFFER_SIZE;
	o->seed = 1;
	o->shards = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			exit(0);
		} else if (!strcmp(a, "--quiet")) {
			o->quiet = true;
			continue;
		} else if (!strcmp(a, "--warm")) {
			o->warm = true;
			continue;
		} else if (!strcmp(a, "--size")) {
			o->size = num_arg(a, v, 0, SP_BODY_MAX);
		} else if (!strcmp(a, "--batch")) {
			o->batch = num_arg(a, v, 1, 4096);
		} else if (!strcmp(a, "--devices")) {
			o->devices = (uint32_t)num_arg(a, v, 1, 16u << 20);
		} else if (!strcmp(a, "--reps")) {
			o->reps = (unsigned)num_arg(a, v, 1, MAX_REPS);
		} else if (!strcmp(a, "--iterations")) {
			o->iterations = num_arg(a, v, 1, UINT64_MAX / 2);
		} else if (!strcmp(a, "--handshakes")) {
			o->handshakes = num_arg(a, v, 1, UINT64_MAX / 2);
		} else if (!strcmp(a, "--test-rekey-messages")) {
			o->rekey = num_arg(a, v, 1, SP_REKEY_MESSAGES);
		} else if (!strcmp(a, "--recv-buffer-size")) {
			o->recv_buffer_size = (uint32_t)num_arg(a, v, 64, 1 << 20);
		} else if (!strcmp(a, "--shards")) {
			o->shards = (unsigned)num_arg(a, v, 1, 64);
		} else if (!strcmp(a, "--seed")) {
			o->seed = num_arg(a, v, 0, UINT64_MAX);
		} else if (!strcmp(a, "--seconds")) {
			char *end;

			o->seconds = v ? strtod(v, &end) : 0;
			if (!v || *end || !(o->seconds > 0 && o->seconds < 3600)) {
				fprintf(stderr,
					"sealpost-bench-hotpath: bad value for --seconds\n");
				exit(2);
			}
		} else if (!strcmp(a, "--cipher")) {
			if (v && !strcmp(v, "chachapoly")) {
				o->aead = SP_NOISE_CHACHAPOLY;
			} else if (v && !strcmp(v, "aesgcm")) {
				o->aead = SP_NOISE_AESGCM;
			} else {
				fprintf(stderr, "sealpost-bench-hotpath: --cipher chachapoly or "
					"aesgcm\n");
				exit(2);
			}
		} else if (!strcmp(a, "--json")) {
			if (!v) {
				fprintf(stderr, "sealpost-bench-hotpath: --json needs a file\n");
				exit(2);
			}
			o->json = v;
		} else {
			fprintf(stderr, "sealpost-bench-hotpath: unknown option %s\n", a);
			usage(stderr);
			exit(2);
		}
		i++;
	}
}

/* ns per unit for each repetition; work runs passes until the rep's budget. */
struct series {
	double ns[MAX_REPS];            /* CPU ns per unit, per repetition */
	uint64_t units;
	uint64_t wall_ns, cpu_ns;       /* totals, to show how contended the machine was */
};

static void json_stat(FILE *f, const char *name, const struct series *s, unsigned reps,
		      const char *unit_per_s, bool last)
{
	struct stat3 st = stats_of(s->ns, reps);

	fprintf(f,
		"  \"%s\": {\"ns_median\": %.1f, \"ns_min\": %.1f, \"ns_max\": %.1f, "
		"\"%s\": %.0f, \"count\": %" PRIu64 ", \"cpu_s\": %.3f, \"wall_s\": %.3f}%s\n",
		name, st.med, st.min, st.max, unit_per_s, 1e9 / st.med, s->units, s->cpu_ns / 1e9,
		s->wall_ns / 1e9, last ? "" : ",");
}

static void line(FILE *f, const char *name, const struct series *s, unsigned reps,
		 const char *unit, double scale, const char *sunit)
{
	struct stat3 st = stats_of(s->ns, reps);

	fprintf(f, "  %-30s %12.0f %s/s  %10.1f %s (min %.1f, max %.1f)\n", name, 1e9 / st.med,
		unit, st.med / scale, sunit, st.min / scale, st.max / scale);
}

/*
 * --shards N: forks N children that run the benchmark (seeds seed + i,
 * so their keys differ), each telling the parent when its setup is done
 * and starting its timed passes when all are; each reports its hot-path
 * envelopes and their wall time. Returns in the children (to run), exits
 * in the parent.
 */
static void run_shards(const struct opts *o)
{
	int ready[2], go[2], rep[2];
	double total = 0;
	char line[128];
	FILE *rf;
	int status, failed = 0;

	if (pipe(ready) || pipe(go) || pipe(rep))
		die("pipe");
	for (unsigned i = 0; i < o->shards; i++) {
		pid_t p = fork();

		if (p < 0)
			die("fork");
		if (p == 0) {
			close(ready[0]);
			close(go[1]);
			close(rep[0]);
			shard_ready_fd = ready[1];
			shard_go_fd = go[0];
			shard_report_fd = rep[1];
			return;
		}
	}
	close(ready[1]);
	close(go[0]);
	close(rep[1]);
	for (unsigned i = 0; i < o->shards; i++) {
		char c;

		if (read(ready[0], &c, 1) != 1)
			die("a shard failed in its setup");
	}
	for (unsigned i = 0; i < o->shards; i++)
		if (write(go[1], "g", 1) != 1)
			die("pipe");
	rf = fdopen(rep[0], "r");
	while (rf && fgets(line, sizeof(line), rf)) {
		unsigned long long units, wall;

		if (sscanf(line, "%llu %llu", &units, &wall) == 2 && wall)
			total += (double)units / ((double)wall / 1e9);
	}
	for (unsigned i = 0; i < o->shards; i++)
		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			failed = 1;
	printf("shards: %u at once (a process each); hot path, summed over the shards: "
	       "%.0f envelopes/s (%.0f per shard)\n",
	       o->shards, total, total / o->shards);
	exit(failed);
}

/* A --shards child: setup done; wait for the others. */
static void shard_barrier(void)
{
	char c;

	if (shard_ready_fd < 0)
		return;
	if (write(shard_ready_fd, "r", 1) != 1 || read(shard_go_fd, &c, 1) != 1)
		die("shard barrier");
}

int main(int argc, char **argv)
{
	struct opts o;
	struct bench *b;
	struct client *cl;
	struct workload w;
	struct hs_bench *h;
	struct series hot = { 0 }, bare = { 0 }, hs = { 0 }, x = { 0 }, look = { 0 };
	struct series pre = { 0 };      /* --cipher aesgcm: bare with the precomputed state */
	uint8_t *server_priv, server_pub[SP_KEY_LEN];
	uint64_t t0, t_routes, t_conns, t_work, seed_state, verified;
	unsigned hs_ok;
	FILE *out = stdout;
	double rep_s;

	parse(argc, argv, &o);
	if (o.shards > 1) {
		run_shards(&o);         /* returns in each child */
		o.seed += (uint64_t)getpid();   /* each shard its own keys */
		o.quiet = true;
	}
	if (sodium_init() < 0)
		die("sodium_init failed");
	aead = o.aead;
	if (!sp_noise_aead_available((enum sp_noise_aead)aead)) {
		fprintf(stderr, "sealpost-bench-hotpath: no AES-NI on this CPU: no aesgcm\n");
		return 77;
	}
	rep_s = o.seconds / o.reps;

	b = calloc(1, sizeof(*b));
	cl = calloc(1, sizeof(*cl));
	h = calloc(1, sizeof(*h));
	server_priv = sodium_malloc(SP_KEY_LEN);
	if (!b || !cl || !h || !server_priv)
		die("out of memory");

	/* Keys from the seed, so the work is the same run after run (the
	 * handshakes' ephemeral keys are still fresh random ones, as they must be). */
	seed_state = o.seed;
	for (size_t i = 0; i < sizeof(b->seed_key); i += 8) {
		uint64_t r = splitmix(&seed_state);

		memcpy(b->seed_key + i, &r, 8);
	}
	crypto_generichash(server_priv, SP_KEY_LEN, b->seed_key, 32, (const uint8_t *)"server", 6);
	crypto_generichash(cl->priv, SP_KEY_LEN, b->seed_key, 32, (const uint8_t *)"sender", 6);
	if (sp_noise_public_key(server_pub, server_priv) || sp_noise_public_key(cl->pub, cl->priv))
		die("key derivation");

	sp_config_defaults(&b->cfg);
	b->cfg.max_conns = o.devices + 1;
	b->cfg.recv_buffer_size = o.recv_buffer_size;
	b->cfg.handshake_rate = 0;      /* the handshake itself is measured, not its limit */
	b->cfg.handshake_rate_per_source = 0;
	if (o.rekey) {
		rekey_every = o.rekey;
		b->cfg.test_rekey_messages = o.rekey;
	}
	sp_log_init(&b->log, 2, SP_LOG_ERROR);
	b->nconns = o.devices + 1;

	/* Setup, timed on its own: the shard's tables as sp_shard_init sizes
	 * them (max_conns), then every device connected and routed. */
	t0 = mono_ns();
	if (sp_shard_init_detached(&b->sh, SHARD_ID, &b->cfg, &b->log, server_priv))
		die("shard setup failed");
	b->conns = b->sh.conns;
	/* In iterations of ESTABLISH_BATCH devices, as the loop would take
	 * them: each routed device has its Drained queued, and without the
	 * flush at the end of an iteration a million of them (a 64 KiB tx
	 * chunk each) would pass --mem-budget and evict the sender. */
	for (uint32_t i = 0; i < o.devices; i++) {
		if (i % ESTABLISH_BATCH == 0)
			sp_shard_begin_iteration(&b->sh);
		establish_slot(b, i);
		if (i % ESTABLISH_BATCH == ESTABLISH_BATCH - 1 || i + 1 == o.devices)
			if (sp_shard_end_iteration(&b->sh, 0, send_all, b))
				die("setup iteration failed");
	}
	t_routes = mono_ns() - t0;
	t0 = mono_ns();
	connect_sender(b, cl, server_pub);
	for (unsigned k = 0; k < HS_CLIENTS; k++) {
		crypto_generichash(h->cl[k].priv, SP_KEY_LEN, b->seed_key, 32, (const uint8_t *)&k,
				   sizeof(k));
		if (sp_noise_public_key(h->cl[k].pub, h->cl[k].priv))
			die("key derivation");
		h->msg1_len[k] = client_msg1(&h->cl[k], server_pub, h->msg1[k]);
	}
	t_conns = mono_ns() - t0;
	t0 = mono_ns();
	build_workload(b, &o, cl, &w);
	w.rx0 = b->conns[b->nconns - 1].s.keys->t.rx;
	memcpy(b->bare_key, b->conns[0].s.keys->t.tx.k, SP_KEY_LEN);
	if (!o.warm) {
		uint64_t *ev = xmalloc(EVICT_BYTES);

		memset(ev, 1, EVICT_BYTES);
		b->evict = ev;
	}
	t_work = mono_ns() - t0;

	if (o.json && !strcmp(o.json, "-"))
		out = stderr;
	if (!o.quiet)
		fprintf(out,
			"sealpost-bench-hotpath: %s, body %zu B, batch %zu (asked %zu), %" PRIu32
			" devices, %u reps, %zu messages per pass, %s\n"
			"setup: %" PRIu32 " devices connected and routed %.2f s; sender + "
			"handshake clients %.3f s; client messages %.3f s "
			"(sizeof(struct sp_conn) = %zu B)\n",
			aead == SP_NOISE_AESGCM ? "AESGCM" : "ChaChaPoly", o.size, w.batch, o.batch,
			o.devices, o.reps, w.nmsgs, o.warm ? "warm recipients" : "cold recipients", o.devices,
			t_routes / 1e9, t_conns / 1e9, t_work / 1e9, sizeof(struct sp_conn));

	shard_barrier();
	/* Warm-up: one pass each, untimed. */
	hot_pass(b, &b->conns[b->nconns - 1], &w);
	bare_pass(b, &b->conns[b->nconns - 1], &w);
	wall_acc = 0;

	for (unsigned r = 0; r < o.reps; r++) {
		uint64_t ns = 0, n = 0, target = o.iterations;

		/* Interleaved, so drift on a shared machine hits both sides alike. */
		do {
			ns += hot_pass(b, &b->conns[b->nconns - 1], &w);
			n += w.nmsgs * w.batch;
		} while (target ? n < target : ns < rep_s * 1e9);
		hot.ns[r] = (double)ns / n;
		hot.units += n;
		hot.cpu_ns += ns;
		hot.wall_ns += wall_acc;
		wall_acc = 0;
		ns = n = 0;
		do {
			ns += bare_pass(b, &b->conns[b->nconns - 1], &w);
			n += w.nmsgs * w.batch;
		} while (target ? n < target : ns < rep_s * 1e9);
		bare.ns[r] = (double)ns / n;
		bare.units += n;
		bare.cpu_ns += ns;
		bare.wall_ns += wall_acc;
		wall_acc = 0;
		if (aead != SP_NOISE_AESGCM)
			continue;
		ns = n = 0;
		do {
			ns += bare_pass_pre(b, &b->conns[b->nconns - 1], &w);
			n += w.nmsgs * w.batch;
		} while (target ? n < target : ns < rep_s * 1e9);
		pre.ns[r] = (double)ns / n;
		pre.units += n;
		pre.cpu_ns += ns;
		pre.wall_ns += wall_acc;
		wall_acc = 0;
	}
	if (shard_report_fd >= 0) {
		char r[64];
		int n = snprintf(r, sizeof(r), "%llu %llu\n", (unsigned long long)hot.units,
				 (unsigned long long)hot.wall_ns);

		if (write(shard_report_fd, r, (size_t)n) != n)
			die("report");
	}
	if (o.shards == 1 && !o.quiet)
		fprintf(out, "hot path: %.0f envelopes/s of wall time (one shard)\n",
			hot.wall_ns ? (double)hot.units / ((double)hot.wall_ns / 1e9) : 0);
	/* From the shard's metrics slot, as the daemon's stop line reads it. */
	{
		const struct sp_metrics_shard *m = b->sh.metrics;
		uint64_t refused = 0;

		for (unsigned i = 0; i < SP_METRICS_REFUSED_COUNT; i++)
			refused += m->envelopes_refused[i];
		if (refused || m->envelopes_delivered[SP_METRICS_PATH_LIVE] != m->envelopes_accepted)
			die("some envelopes were not delivered");
	}

	/* Route lookups alone, uniformly random among all devices (the DRAM
	 * case: a pass above revisits its nmsgs recipients, which stay cached). */
	for (unsigned r = 0; r < o.reps; r++) {
		uint8_t (*keys)[SP_KEY_LEN] = xmalloc(4096 * SP_KEY_LEN);
		uint64_t rng = o.seed + r, ns = 0, n = 0, v;

		do {
			for (unsigned i = 0; i < 4096; i++) {
				struct slot_keys k;

				slot_keys(b, (uint32_t)(splitmix(&rng) % o.devices), &k);
				memcpy(keys[i], k.device, SP_KEY_LEN);
			}
			t0 = cpu_ns();
			for (unsigned i = 0; i < 4096; i++) {
				if (sp_route_lookup(b->sh.routes, keys[i], &v))
					die("lookup");
			}
			ns += cpu_ns() - t0;
			n += 4096;
		} while (n < LOOKUP_SAMPLES / o.reps && ns < rep_s * 1e9);
		look.ns[r] = (double)ns / n;
		look.units += n;
		look.cpu_ns += ns;
		free(keys);
	}

	for (unsigned r = 0; r < o.reps; r++) {
		uint64_t ns = 0, n = 0, step = 16;

		do {
			ns += hs_pass(b, h, step);
			n += step;
		} while (o.handshakes ? n < o.handshakes : ns < rep_s * 1e9);
		hs.ns[r] = (double)ns / n;
		hs.units += n;
		hs.cpu_ns += ns;
		hs.wall_ns += wall_acc;
		wall_acc = 0;
		ns = n = 0;
		do {
			ns += x25519_pass(step, server_pub);
			n += step;
		} while (o.handshakes ? n < o.handshakes : ns < rep_s * 1e9);
		x.ns[r] = (double)ns / n;
		x.units += n;
		x.cpu_ns += ns;
		x.wall_ns += wall_acc;
		wall_acc = 0;
	}

	verified = verify(b, &b->conns[b->nconns - 1], cl, &w, o.size);
	hs_ok = hs_verify(b, h);

	{
		struct stat3 sh = stats_of(hot.ns, o.reps), sb = stats_of(bare.ns, o.reps);
		struct stat3 shs = stats_of(hs.ns, o.reps), sx = stats_of(x.ns, o.reps);
		/* the share of a core this thread got while timed */
		double share = (double)(hot.cpu_ns + bare.cpu_ns + hs.cpu_ns + x.cpu_ns) /
			       (double)(hot.wall_ns + bare.wall_ns + hs.wall_ns + x.wall_ns);

		if (!o.quiet) {
			fprintf(out,
				"figures (thread CPU time, median of %u reps; per envelope / per "
				"handshake); this thread got %.0f%% of a core while timed\n",
				o.reps, 100.0 * share);
			line(out, "envelope, broker hot path", &hot, o.reps, "env", 1, "ns");
			line(out, "envelope, bare AEAD dec+enc", &bare, o.reps, "env", 1, "ns");
			fprintf(out, "  %-30s %12.2f\n", "ratio hot path / bare AEAD",
				sh.med / sb.med);
			if (aead == SP_NOISE_AESGCM)
				line(out, "bare AEAD, precomputed state", &pre, o.reps, "env", 1,
				     "ns");
			line(out, "route lookup, random, alone", &look, o.reps, "lookup", 1, "ns");
			line(out, "IK handshake, responder", &hs, o.reps, "hs", 1000, "us");
			line(out, "bare X25519 (1 base + 4)", &x, o.reps, "hs", 1000, "us");
			fprintf(out, "  %-30s %12.2f\n", "ratio handshake / bare X25519",
				shs.med / sx.med);
			fprintf(out,
				"verified: %" PRIu64 " envelopes decrypted by their recipients "
				"(every body checked) and their SendResults by the sender; "
				"%u handshakes read by their initiators\n",
				verified, hs_ok);
		}
		if (o.json) {
			FILE *jf = strcmp(o.json, "-") ? fopen(o.json, "w") : stdout;

			if (!jf)
				die("cannot open the --json file");
			fprintf(jf,
				"{\n  \"cipher\": \"%s\",\n"
				"  \"size\": %zu,\n  \"batch\": %zu,\n  \"batch_asked\": %zu,\n"
				"  \"devices\": %" PRIu32 ",\n  \"reps\": %u,\n"
				"  \"recv_buffer_size\": %" PRIu32 ",\n"
				"  \"messages_per_pass\": %zu,\n  \"cold\": %s,\n"
				"  \"setup_s\": {\"devices\": %.3f, \"handshake_clients\": %.3f, "
				"\"messages\": %.3f},\n",
				aead == SP_NOISE_AESGCM ? "aesgcm" : "chachapoly", o.size, w.batch,
				o.batch, o.devices, o.reps, o.recv_buffer_size,
				w.nmsgs, o.warm ? "false" : "true", t_routes / 1e9, t_conns / 1e9,
				t_work / 1e9);
			json_stat(jf, "hotpath", &hot, o.reps, "envelopes_per_s", false);
			json_stat(jf, "bare_aead", &bare, o.reps, "envelopes_per_s", false);
			fprintf(jf, "  \"ratio_hotpath_bare\": %.3f,\n", sh.med / sb.med);
			if (aead == SP_NOISE_AESGCM)
				json_stat(jf, "bare_aead_precomputed", &pre, o.reps,
					  "envelopes_per_s", false);
			json_stat(jf, "route_lookup_random", &look, o.reps, "lookups_per_s", false);
			json_stat(jf, "handshake_ik_responder", &hs, o.reps, "handshakes_per_s",
				  false);
			json_stat(jf, "bare_x25519", &x, o.reps, "handshakes_per_s", false);
			fprintf(jf,
				"  \"x25519_ops_per_handshake\": 5,\n"
				"  \"ratio_handshake_bare\": %.3f,\n"
				"  \"cpu_share\": %.3f,\n"
				"  \"verified_envelopes\": %" PRIu64 ",\n"
				"  \"verified_handshakes\": %u,\n  \"verified\": true\n}\n",
				shs.med / sx.med, share, verified, hs_ok);
			if (jf != stdout && fclose(jf))
				die("writing the --json file failed");
		}
	}

	sp_session_release(&h->c.s);
	sp_shard_destroy(&b->sh);       /* wipes and releases every connection */
	free((void *)b->evict);
	free(b->cap_rcpt);
	free(b->cap_sender);
	sodium_memzero(&w.rx0, sizeof(w.rx0));
	free(w.pristine);
	free(w.work);
	free(w.off);
	free(w.len);
	free(w.rcpt);
	free(w.bare_out);
	for (unsigned k = 0; k < HS_CLIENTS; k++)
		sp_noise_handshake_wipe(&h->cl[k].hs);
	sodium_memzero(cl, sizeof(*cl));
	sodium_memzero(b->seed_key, sizeof(b->seed_key));
	sodium_memzero(b->bare_key, sizeof(b->bare_key));
	sodium_free(server_priv);
	free(cl);
	free(h);
	free(b);
	return 0;
}
