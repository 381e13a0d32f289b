/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_session.c: everything a peer can send to one session (lib/session),
 * in either role: the byte stream cut into receive buffers at any points.
 *
 * Input: byte 0 selects the mode (session_peer.h, low two bits) and the
 * cipher (bit 2: AESGCM, where the CPU has AES-NI; else ChaChaPoly), byte 1
 * the receive-buffer size (1..256).
 *   responder raw:  the rest is raw bytes from the first byte of the
 *                   connection (preamble, length prefixes, handshake); the
 *                   responder takes AESGCM (or refuses it, with bit 2
 *                   clear), so the preamble's cipher byte picks the suite;
 *   initiator raw:  an XX initiator that sent its message 1 (proposing the
 *                   cipher of bit 2) reads the rest (message 2, length
 *                   prefixes, the refusal preamble);
 *   established:    the session is established first (a real IK handshake
 *                   between two sessions with fixed keys, done once and
 *                   snapshotted); the rest is records (session_peer.h), each
 *                   encrypted by the peer as one transport message, so the
 *                   fuzzer reaches the frame layer.
 * Oracle: nothing may crash or leak (ASan), every tx chunk comes back, and
 * a flipped record fails with decrypt_failed. The established responder
 * echoes every Send body back as a Deliver, encrypted straight from the
 * receive buffer, and the established initiator answers every Ping with a
 * Pong: the peer side decrypts everything the session queued and checks it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/session_peer.h"
#include "sp_frame.h"
#include "sp_noise.h"
#include "sp_session.h"

enum { ECHO_MAX = 64 };

/* One cipher's sessions (index: enum sp_noise_aead). */
static struct snapshot {
	struct sp_session resp;         /* established, no output queued */
	struct sp_session init;         /* established, no output queued */
	struct sp_session init_hs;      /* XX message 1 sent, waiting for message 2 */
	struct sp_noise_transport to_resp;  /* the initiator's ciphers, for resp */
	struct sp_noise_transport to_init;  /* the responder's ciphers, for init */
} snaps[2];
static bool ready;
static unsigned n_aeads;                /* 2, or 1 without AES-NI */

static struct sp_txpool pool;
/* renv[a]: a responder that takes AESGCM iff a is AESGCM; ienv[a]
 * proposes cipher a. */
static struct sp_session_env renv[2], ienv[2];
static uint8_t echo_body[ECHO_MAX][SP_BODY_MAX];
static size_t echo_len[ECHO_MAX];
static uint64_t pongs[ECHO_MAX];
static unsigned echoes;

static void check(int ok)
{
	if (!ok)
		abort();
}

static enum sp_close_reason on_established(void *ctx, struct sp_session *s)
{
	(void)ctx;
	(void)s;
	return SP_CLOSE_NONE;
}

/* Responder: echo a Send's body as a Deliver (the broker's hot path). */
static enum sp_close_reason resp_frame(void *ctx, struct sp_session *s, const struct sp_frame *f)
{
	struct sp_frame d;

	(void)ctx;
	if (f->type != SP_FRAME_SEND || echoes == ECHO_MAX || f->body_len > SP_BODY_MAX ||
	    sp_session_tx_queued(s) > 4 * SP_NOISE_MSG_MAX)
		return SP_CLOSE_NONE;
	memset(&d, 0, sizeof(d));
	d.type = SP_FRAME_DELIVER;
	d.u.deliver.seq = echoes + 1;
	memcpy(echo_body[echoes], f->body, f->body_len);
	echo_len[echoes] = f->body_len;
	check(sp_session_tx_frame(s, &d, f->body, f->body_len) == 0);
	echoes++;
	return SP_CLOSE_NONE;
}

/* Initiator: answer a Ping, as the client library does. */
static enum sp_close_reason init_frame(void *ctx, struct sp_session *s, const struct sp_frame *f)
{
	struct sp_frame p = { .type = SP_FRAME_PONG };

	(void)ctx;
	if (f->type != SP_FRAME_PING || echoes == ECHO_MAX)
		return SP_CLOSE_NONE;
	p.u.ping.id = f->u.ping.id;
	pongs[echoes++] = f->u.ping.id;
	check(sp_session_tx_frame(s, &p, NULL, 0) == 0);
	return SP_CLOSE_NONE;
}

static enum sp_close_reason server_hello(void *ctx, struct sp_session *s, const uint8_t *pl,
					 size_t len)
{
	struct sp_hello h;

	(void)ctx;
	if (sp_frame_server_hello_decode(pl, len, &h) || h.protocol_version != 1)
		return SP_CLOSE_HANDSHAKE_FAILED;
	sp_session_set_tx_max(s, h.max_transport);
	return SP_CLOSE_NONE;
}

/* One frame the peer decrypted from the session's output. */
static void check_frame(const struct sp_frame *f, bool initiator, unsigned *seen)
{
	check(*seen < echoes);
	if (initiator) {
		check(f->type == SP_FRAME_PONG && f->u.ping.id == pongs[*seen]);
	} else {
		check(f->type == SP_FRAME_DELIVER && f->u.deliver.seq == *seen + 1);
		check(f->body_len == echo_len[*seen]);
		check(memcmp(f->body, echo_body[*seen], f->body_len) == 0);
	}
	(*seen)++;
}

/* Takes the session's queued output; with peer, checks every frame in it. */
static void drain(struct sp_session *c, struct sp_noise_transport *peer, bool initiator)
{
	static uint8_t msg[SP_NOISE_MSG_MAX + 2];
	const uint8_t *p;
	size_t len, have = 0, want = 0;
	unsigned seen = 0;

	check(sp_session_tx_seal(c) == 0);
	while (sp_session_tx_peek(c, &p, &len)) {
		/* Walk the stream message by message, across short "sends". */
		for (size_t i = 0; i < len; i++) {
			msg[have++] = p[i];
			if (have == 2)
				want = 2 + ((size_t)msg[0] << 8 | msg[1]);
			if (have < 2 || have < want || !peer)
				continue;
			size_t plen, off = 0;
			struct sp_frame f;

			check(sp_noise_decrypt(&peer->rx, msg + 2, want - 2, &plen) == 0);
			while (sp_frame_next(msg + 2, plen, &off, &f) == 0)
				check_frame(&f, initiator, &seen);
			check(off == plen);
			have = 0;
		}
		sp_session_tx_sent(c, len);
	}
	check(!peer || seen == echoes);
}

/* Moves all of from's output into to, in one receive buffer. */
static enum sp_close_reason pass(struct sp_session *from, struct sp_session *to)
{
	static uint8_t buf[4096];
	const uint8_t *p;
	size_t len, n = 0;

	check(sp_session_tx_seal(from) == 0);
	while (sp_session_tx_peek(from, &p, &len)) {
		check(n + len <= sizeof(buf));
		memcpy(buf + n, p, len);
		n += len;
		sp_session_tx_sent(from, len);
	}
	return sp_session_rx(to, buf, n);
}

static void setup_env(enum sp_noise_aead a)
{
	struct sp_session_env *r = &renv[a], *i = &ienv[a];

	r->static_priv = fuzz_server_s;
	r->hello = (struct sp_hello){ .protocol_version = 1, .max_envelope = SP_BODY_MAX,
				      .max_transport = SP_TRANSPORT_PLAINTEXT_MAX };
	r->pool = &pool;
	r->hooks.established = on_established;
	r->hooks.frame = resp_frame;
	r->accept_aesgcm = a == SP_NOISE_AESGCM;
	i->hello.protocol_version = 1;
	i->pool = &pool;
	i->hooks.established = on_established;
	i->hooks.frame = init_frame;
	i->hooks.server_hello = server_hello;
	i->propose_aead = (uint8_t)a;
}

static void setup_snapshot(struct snapshot *sn, enum sp_noise_aead a)
{
	uint8_t server_pub[SP_KEY_LEN];
	struct sp_session throwaway;

	check(sp_noise_public_key(server_pub, fuzz_server_s) == 0);
	sp_session_accept(&sn->resp, &renv[a]);
	check(sp_session_connect(&sn->init, &ienv[a], fuzz_client_s, server_pub) == 0);
	check(pass(&sn->init, &sn->resp) == SP_CLOSE_NONE);
	check(pass(&sn->resp, &sn->init) == SP_CLOSE_NONE);
	check(sn->resp.state == SP_SESSION_ESTABLISHED && sn->init.state == SP_SESSION_ESTABLISHED);
	check(sn->resp.aead == a && sn->init.keys->t.tx.aead == a);
	check(sn->resp.q.head == NULL && sn->init.q.head == NULL);
	{
		/* The IK proof, an empty transport message, as libsealpost sends
		 * it: the responder is proven, so it takes any message size. */
		uint8_t proof[SP_LEN_PREFIX + SP_TAG_LEN] = { 0, SP_TAG_LEN };

		check(sp_noise_encrypt(&sn->init.keys->t.tx, proof + SP_LEN_PREFIX, 0) == 0);
		check(sp_session_rx(&sn->resp, proof, sizeof(proof)) == SP_CLOSE_NONE);
		check(sn->resp.proven);
	}
	sn->to_resp = sn->init.keys->t;
	sn->to_init = sn->resp.keys->t;

	check(sp_session_connect(&sn->init_hs, &ienv[a], fuzz_client_s, NULL) == 0);
	/* Its message 1 goes nowhere: the fuzzer plays the responder. */
	sp_session_accept(&throwaway, &renv[a]);
	check(pass(&sn->init_hs, &throwaway) == SP_CLOSE_NONE);
	sp_session_release(&throwaway);
}

static void setup(void)
{
	check(sodium_init() >= 0);
	sp_txpool_init(&pool, 8);
	n_aeads = sp_noise_aead_available(SP_NOISE_AESGCM) ? 2 : 1;
	for (unsigned a = 0; a < n_aeads; a++) {
		setup_env((enum sp_noise_aead)a);
		setup_snapshot(&snaps[a], (enum sp_noise_aead)a);
	}
	ready = true;
}

/* Feeds bytes in receive buffers of `step` bytes, each from its own copy. */
static enum sp_close_reason feed(struct sp_session *c, const uint8_t *data, size_t len,
				 size_t step)
{
	static uint8_t buf[256];
	enum sp_close_reason r = SP_CLOSE_NONE;

	for (size_t off = 0; off < len && r == SP_CLOSE_NONE; off += step) {
		size_t n = len - off < step ? len - off : step;

		memcpy(buf, data + off, n);
		r = sp_session_rx(c, buf, n);
	}
	return r;
}

static void run_raw(unsigned a, bool initiator, const uint8_t *data, size_t size, size_t step)
{
	const struct snapshot *sn = &snaps[a];
	struct sp_session c;

	if (initiator) {
		/* The snapshot's handshake state is on the heap: each run its own copy. */
		c = sn->init_hs;
		c.hs = malloc(sizeof(*c.hs));
		check(c.hs != NULL);
		memcpy(c.hs, sn->init_hs.hs, sizeof(*c.hs));
	} else {
		sp_session_accept(&c, &renv[a]);
	}
	feed(&c, data, size, step);
	drain(&c, NULL, initiator);
	sp_session_release(&c);
}

static void run_established(unsigned a, bool initiator, const uint8_t *data, size_t size,
			    size_t step)
{
	static uint8_t wire[SP_LEN_PREFIX + SP_NOISE_MSG_MAX];
	const struct snapshot *sn = &snaps[a];
	struct sp_noise_transport peer = initiator ? sn->to_init : sn->to_resp;
	struct sp_session c = initiator ? sn->init : sn->resp;
	enum sp_close_reason r = SP_CLOSE_NONE;
	size_t off = 0;

	/* The snapshot's keys are on the heap (no slab on these envs): each
	 * run its own copy, freed by sp_session_release. */
	c.keys = malloc(sizeof(*c.keys));
	check(c.keys != NULL);
	memcpy(c.keys, (initiator ? sn->init : sn->resp).keys, sizeof(*c.keys));
	echoes = 0;
	while (off + 2 <= size && r == SP_CLOSE_NONE) {
		size_t len = ((size_t)data[off] << 8 | data[off + 1]) & 0x7fff;
		bool flip = data[off] & 0x80;

		off += 2;
		if (len > size - off)
			len = size - off;
		if (len > SP_TRANSPORT_PLAINTEXT_MAX)
			len = SP_TRANSPORT_PLAINTEXT_MAX;
		memcpy(wire + 2, data + off, len);
		off += len;
		check(sp_noise_encrypt(&peer.tx, wire + 2, len) == 0);
		if (flip)
			wire[2 + len / 2] ^= 0x20;
		wire[0] = (uint8_t)((len + SP_TAG_LEN) >> 8);
		wire[1] = (uint8_t)(len + SP_TAG_LEN);
		r = feed(&c, wire, len + SP_TAG_LEN + 2, step);
		check(!flip || r == SP_CLOSE_DECRYPT_FAILED);
	}
	drain(&c, &peer, initiator);
	sp_session_release(&c);
	sp_noise_transport_wipe(&peer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t step;
	unsigned mode, a;

	if (!ready)
		setup();
	if (size < 2)
		return 0;
	mode = data[0] & 3;
	a = data[0] & FUZZ_AESGCM && n_aeads == 2 ? SP_NOISE_AESGCM : SP_NOISE_CHACHAPOLY;
	step = (size_t)data[1] + 1;
	if (mode & 1)
		run_established(a, mode & 2, data + 2, size - 2, step);
	else
		run_raw(a, mode & 2, data + 2, size - 2, step);
	check(pool.live == pool.nfree);     /* every chunk came back */
	return 0;
}
