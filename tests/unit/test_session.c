/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_session.c: the session engine (lib/session).
 *
 * A responder against a hand-driven Noise initiator (sp_noise): IK and XX
 * handshakes fed in every split, transport messages with several frames,
 * each bad input's close reason, and the tx queue (many messages across
 * chunks, drained by short sends) decrypting to exactly the frames put in,
 * with every chunk back in the pool. Then an initiator session and a
 * responder session wired to each other in memory, both patterns, bytes
 * delivered split at every point, many frames batched into one transport
 * message, the proof rule, a tampered byte, and the wipe of secrets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sp_frame.h"
#include "sp_noise.h"
#include "sp_session.h"

static uint8_t server_priv[SP_KEY_LEN], server_pub[SP_KEY_LEN];

/* What the hooks saw. */
struct seen {
	int established;
	int proven;
	int frames;
	enum sp_frame_type types[64];
	uint64_t ids[64];
	size_t body_len[64];
	uint8_t body0[64];      /* first body byte (bodies are memset patterns) */
	enum sp_close_reason refuse_with;
};

static struct seen seen;

static enum sp_close_reason on_established(void *ctx, struct sp_session *c)
{
	(void)ctx;
	(void)c;
	seen.established++;
	return seen.refuse_with;
}

static enum sp_close_reason on_proven(void *ctx, struct sp_session *c)
{
	(void)ctx;
	assert_true(c->proven);
	seen.proven++;
	return SP_CLOSE_NONE;
}

static enum sp_close_reason on_frame(void *ctx, struct sp_session *c, const struct sp_frame *f)
{
	int i = seen.frames++;

	(void)ctx;
	(void)c;
	if (i >= 64)
		return SP_CLOSE_INTERNAL;
	seen.types[i] = f->type;
	seen.ids[i] = f->type == SP_FRAME_SEND ? f->u.send.client_id : f->u.ping.id;
	seen.body_len[i] = f->body_len;
	seen.body0[i] = f->body_len ? f->body[0] : 0;
	/* The body must be readable for the whole call: touch every byte. */
	for (size_t j = 0; j < f->body_len; j++)
		assert_int_equal(f->body[j], seen.body0[i]);
	return SP_CLOSE_NONE;
}

struct rig {
	struct sp_txpool pool;
	struct sp_session_env env;
	struct sp_session c;
	struct sp_noise_handshake hs;   /* the client's */
	struct sp_noise_transport t;    /* the client's, after split */
	uint8_t client_priv[SP_KEY_LEN], client_pub[SP_KEY_LEN];
	uint8_t preamble[SP_PREAMBLE_LEN];
};

static void rig_init(struct rig *r, uint8_t pattern)
{
	memset(r, 0, sizeof(*r));
	memset(&seen, 0, sizeof(seen));
	sp_txpool_init(&r->pool, 4);
	r->env.static_priv = server_priv;
	r->env.hello.protocol_version = 1;
	r->env.hello.max_envelope = 1234;
	r->env.hello.max_transport = SP_TRANSPORT_PLAINTEXT_MAX;
	r->env.pool = &r->pool;
	r->env.hooks.established = on_established;
	r->env.hooks.frame = on_frame;
	r->env.hooks.proven = on_proven;
	sp_session_accept(&r->c, &r->env);
	sp_noise_keypair(r->client_pub, r->client_priv);
	memcpy(r->preamble, "SEAL\x01\x00\x00\x00", SP_PREAMBLE_LEN);
	r->preamble[5] = pattern;
}

static void rig_free(struct rig *r)
{
	const uint8_t *p;
	size_t len;

	sp_session_wipe(&r->c);
	assert_int_equal(r->c.state, SP_SESSION_DEAD);
	while (sp_session_tx_peek(&r->c, &p, &len))
		sp_session_tx_sent(&r->c, len);
	sp_session_release(&r->c);
	assert_int_equal(r->c.state, SP_SESSION_FREE);
	/* Every chunk is back: nothing leaked by any path. */
	assert_int_equal(r->pool.live, r->pool.nfree);
	sp_txpool_destroy(&r->pool);
	assert_int_equal(r->pool.live, 0);
	sp_noise_handshake_wipe(&r->hs);
	sp_noise_transport_wipe(&r->t);
}

/* Feeds bytes to the connection in pieces of `step` (0: all at once), from a
 * scratch copy, as receive buffers would (the connection writes in place). */
static enum sp_close_reason feed(struct rig *r, const uint8_t *data, size_t len, size_t step)
{
	enum sp_close_reason res = SP_CLOSE_NONE;
	uint8_t *scratch = malloc(len ? len : 1);

	assert_non_null(scratch);
	memcpy(scratch, data, len);
	if (step == 0)
		step = len ? len : 1;
	for (size_t off = 0; off < len && res == SP_CLOSE_NONE; off += step) {
		size_t n = len - off < step ? len - off : step;

		res = sp_session_rx(&r->c, scratch + off, n);
	}
	free(scratch);
	return res;
}

static size_t put_msg(uint8_t *out, const uint8_t *msg, size_t len)
{
	out[0] = (uint8_t)(len >> 8);
	out[1] = (uint8_t)len;
	memcpy(out + 2, msg, len);
	return len + 2;
}

/* Takes everything the connection queued (all finished), as one byte string. */
static size_t take_output(struct rig *r, uint8_t *out, size_t cap)
{
	const uint8_t *p;
	size_t len, total = 0;

	assert_int_equal(sp_session_tx_seal(&r->c), 0);
	while (sp_session_tx_peek(&r->c, &p, &len)) {
		assert_true(total + len <= cap);
		memcpy(out + total, p, len);
		total += len;
		sp_session_tx_sent(&r->c, len);
	}
	assert_int_equal(r->c.q.bytes, 0);
	return total;
}

/* The client reads the broker's handshake message (msg2) from its output. */
static void client_read_msg2(struct rig *r, const uint8_t *out, size_t len)
{
	uint8_t payload[SP_HANDSHAKE_PAYLOAD_MAX];
	struct sp_hello h;
	size_t plen, mlen;

	assert_true(len >= 2);
	mlen = (size_t)out[0] << 8 | out[1];
	assert_int_equal(mlen + 2, len);
	assert_int_equal(sp_noise_handshake_read(&r->hs, out + 2, mlen, payload, sizeof(payload),
						 &plen), 0);
	assert_int_equal(sp_frame_server_hello_decode(payload, plen, &h), 0);
	assert_int_equal(h.protocol_version, 1);
	assert_int_equal(h.max_envelope, 1234);
}

static size_t hello(uint8_t *buf)
{
	struct sp_hello h = { .protocol_version = 1 };
	size_t len;

	assert_int_equal(sp_frame_client_hello_encode(&h, buf, SP_HANDSHAKE_PAYLOAD_MAX, &len), 0);
	return len;
}

/* A full IK handshake, the client side fed to the connection in `step`s. */
static void handshake_ik(struct rig *r, size_t step)
{
	uint8_t wire[4096], msg[SP_HANDSHAKE_MSG_MAX], pl[SP_HANDSHAKE_PAYLOAD_MAX], out[4096];
	size_t off = 0, mlen, olen;

	rig_init(r, SP_PREAMBLE_PATTERN_IK);
	assert_int_equal(sp_noise_handshake_init(&r->hs, SP_NOISE_IK, SP_NOISE_INITIATOR,
						 r->preamble, SP_PREAMBLE_LEN, r->client_priv,
						 server_pub), 0);
	/* e, es, s, ss + ClientHello */
	assert_int_equal(sp_noise_handshake_write(&r->hs, pl, hello(pl), msg, sizeof(msg), &mlen),
			 0);
	memcpy(wire, r->preamble, SP_PREAMBLE_LEN);
	off = SP_PREAMBLE_LEN + put_msg(wire + SP_PREAMBLE_LEN, msg, mlen);
	assert_int_equal(feed(r, wire, off, step), SP_CLOSE_NONE);
	assert_int_equal(r->c.state, SP_SESSION_ESTABLISHED);
	assert_int_equal(seen.established, 1);
	assert_memory_equal(r->c.peer, r->client_pub, SP_KEY_LEN);
	assert_false(r->c.proven);      /* an IK message 1 may be a replay */
	assert_int_equal(seen.proven, 0);
	assert_null(r->c.hs);           /* handshake state freed at split */
	assert_null(r->c.rx_asm);       /* no reassembly buffer left behind */
	olen = take_output(r, out, sizeof(out));
	client_read_msg2(r, out, olen);
	assert_int_equal(sp_noise_handshake_split(&r->hs, &r->t), 0);
}

static void handshake_xx(struct rig *r, size_t step)
{
	uint8_t wire[4096], msg[SP_HANDSHAKE_MSG_MAX], pl[SP_HANDSHAKE_PAYLOAD_MAX], out[4096];
	size_t off, mlen, olen;
	uint8_t learned[SP_KEY_LEN];

	rig_init(r, SP_PREAMBLE_PATTERN_XX);
	assert_int_equal(sp_noise_handshake_init(&r->hs, SP_NOISE_XX, SP_NOISE_INITIATOR,
						 r->preamble, SP_PREAMBLE_LEN, r->client_priv,
						 NULL), 0);
	/* e */
	assert_int_equal(sp_noise_handshake_write(&r->hs, NULL, 0, msg, sizeof(msg), &mlen), 0);
	memcpy(wire, r->preamble, SP_PREAMBLE_LEN);
	off = SP_PREAMBLE_LEN + put_msg(wire + SP_PREAMBLE_LEN, msg, mlen);
	assert_int_equal(feed(r, wire, off, step), SP_CLOSE_NONE);
	assert_int_equal(r->c.state, SP_SESSION_HANDSHAKE);
	olen = take_output(r, out, sizeof(out));
	client_read_msg2(r, out, olen);     /* e, ee, s, es + ServerHello */
	assert_int_equal(sp_noise_handshake_remote_static(&r->hs, learned), 0);
	assert_memory_equal(learned, server_pub, SP_KEY_LEN);
	/* s, se + ClientHello */
	assert_int_equal(sp_noise_handshake_write(&r->hs, pl, hello(pl), msg, sizeof(msg), &mlen),
			 0);
	off = put_msg(wire, msg, mlen);
	assert_int_equal(feed(r, wire, off, step), SP_CLOSE_NONE);
	assert_int_equal(r->c.state, SP_SESSION_ESTABLISHED);
	assert_memory_equal(r->c.peer, r->client_pub, SP_KEY_LEN);
	assert_true(r->c.proven);       /* message 3 proves it */
	assert_int_equal(sp_noise_handshake_split(&r->hs, &r->t), 0);
}

/* The client encrypts plain as one transport message, length-prefixed, into wire. */
static size_t client_seal(struct rig *r, const uint8_t *plain, size_t len, uint8_t *wire)
{
	memcpy(wire + 2, plain, len);
	assert_int_equal(sp_noise_encrypt(&r->t.tx, wire + 2, len), 0);
	wire[0] = (uint8_t)((len + SP_TAG_LEN) >> 8);
	wire[1] = (uint8_t)(len + SP_TAG_LEN);
	return len + SP_TAG_LEN + 2;
}

static void put_frame(uint8_t *buf, size_t *off, enum sp_frame_type type, uint64_t id,
		      size_t body_len, uint8_t fill)
{
	static uint8_t body[SP_BODY_MAX];
	struct sp_frame f;

	memset(&f, 0, sizeof(f));
	f.type = type;
	if (type == SP_FRAME_SEND) {
		f.u.send.client_id = id;
		memset(f.u.send.to, 9, SP_KEY_LEN);
		memset(body, fill, body_len);
		f.body = body;
		f.body_len = body_len;
	} else {
		f.u.ping.id = id;
	}
	assert_int_equal(sp_frame_put(buf, SP_TRANSPORT_PLAINTEXT_MAX, off, &f), 0);
}

/* Two transport messages with several frames each, in every split. */
static void check_transport(struct rig *r, size_t step)
{
	static uint8_t plain[SP_TRANSPORT_PLAINTEXT_MAX], wire[2 * (SP_NOISE_MSG_MAX + 2)];
	size_t poff = 0, woff = 0;

	/* IK: the proof first, an empty message (it must be handshake-sized). */
	if (r->c.pattern == SP_PREAMBLE_PATTERN_IK)
		woff = client_seal(r, plain, 0, wire);
	put_frame(plain, &poff, SP_FRAME_PING, 77, 0, 0);
	put_frame(plain, &poff, SP_FRAME_SEND, 1, 3000, 0xa1);
	put_frame(plain, &poff, SP_FRAME_SEND, 2, 0, 0);
	woff += client_seal(r, plain, poff, wire + woff);
	poff = 0;
	put_frame(plain, &poff, SP_FRAME_SEND, 3, SP_BODY_MAX, 0xb2);
	woff += client_seal(r, plain, poff, wire + woff);
	assert_int_equal(feed(r, wire, woff, step), SP_CLOSE_NONE);
	assert_true(r->c.proven);
	/* IK: proven by the first transport message, once; XX: at message 3. */
	assert_int_equal(seen.proven, r->c.pattern == SP_PREAMBLE_PATTERN_IK ? 1 : 0);
	assert_int_equal(seen.frames, 4);
	assert_int_equal(seen.types[0], SP_FRAME_PING);
	assert_int_equal(seen.ids[0], 77);
	assert_int_equal(seen.types[1], SP_FRAME_SEND);
	assert_int_equal(seen.ids[1], 1);
	assert_int_equal(seen.body_len[1], 3000);
	assert_int_equal(seen.body0[1], 0xa1);
	assert_int_equal(seen.body_len[2], 0);
	assert_int_equal(seen.ids[3], 3);
	assert_int_equal(seen.body_len[3], SP_BODY_MAX);
	assert_int_equal(seen.body0[3], 0xb2);
	assert_null(r->c.rx_asm);
}

static void test_ik_every_split(void **state)
{
	static const size_t steps[] = { 0, 1, 2, 3, 7, 64, 1000 };
	struct rig r;

	(void)state;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		handshake_ik(&r, steps[i]);
		check_transport(&r, steps[i]);
		rig_free(&r);
	}
}

static void test_xx_every_split(void **state)
{
	static const size_t steps[] = { 0, 1, 5, 4096 };
	struct rig r;

	(void)state;
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		handshake_xx(&r, steps[i]);
		check_transport(&r, steps[i]);
		rig_free(&r);
	}
}

static void test_bad_preambles(void **state)
{
	static const char *const bad[] = {
		"SEAX\x01\x01\x00\x00", "SEAL\x02\x01\x00\x00", "SEAL\x01\x04\x00\x00" /* 3 is NK */,
		"SEAL\x01\x00\x00\x00", "SEAL\x01\x01\x02\x00" /* 1 is AESGCM */,
		"SEAL\x01\x02\x00\x01", "SEAL\x01\x01\x01\x01",
	};
	struct rig r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rig_init(&r, SP_PREAMBLE_PATTERN_IK);
		assert_int_equal(feed(&r, (const uint8_t *)bad[i], SP_PREAMBLE_LEN, 1),
				 SP_CLOSE_BAD_PREAMBLE);
		assert_null(r.c.hs);
		rig_free(&r);
	}
}

static void test_bad_lengths(void **state)
{
	uint8_t wire[SP_PREAMBLE_LEN + 2];
	struct rig r;

	(void)state;
	/* Handshake messages: 0, and one past the limit, refused on the prefix alone. */
	for (int i = 0; i < 2; i++) {
		size_t len = i == 0 ? 0 : SP_HANDSHAKE_MSG_MAX + 1;

		rig_init(&r, SP_PREAMBLE_PATTERN_XX);
		memcpy(wire, r.preamble, SP_PREAMBLE_LEN);
		wire[8] = (uint8_t)(len >> 8);
		wire[9] = (uint8_t)len;
		assert_int_equal(feed(&r, wire, sizeof(wire), 0), SP_CLOSE_BAD_LENGTH);
		assert_null(r.c.rx_asm);
		rig_free(&r);
	}
	/* Transport: 0 is refused; 15 (shorter than a tag) fails to decrypt. */
	handshake_ik(&r, 0);
	assert_int_equal(feed(&r, (const uint8_t *)"\x00\x00", 2, 0), SP_CLOSE_BAD_LENGTH);
	rig_free(&r);
	handshake_ik(&r, 0);
	{
		uint8_t m[17] = { 0, 15 };

		assert_int_equal(feed(&r, m, sizeof(m), 0), SP_CLOSE_DECRYPT_FAILED);
	}
	rig_free(&r);
}

static void test_handshake_failures(void **state)
{
	uint8_t wire[4096], msg[SP_HANDSHAKE_MSG_MAX], pl[SP_HANDSHAKE_PAYLOAD_MAX];
	size_t mlen, off;
	struct rig r;

	(void)state;
	/* IK msg1 with one bit flipped in the encrypted static key. */
	rig_init(&r, SP_PREAMBLE_PATTERN_IK);
	assert_int_equal(sp_noise_handshake_init(&r.hs, SP_NOISE_IK, SP_NOISE_INITIATOR, r.preamble,
						 SP_PREAMBLE_LEN, r.client_priv, server_pub), 0);
	assert_int_equal(sp_noise_handshake_write(&r.hs, pl, hello(pl), msg, sizeof(msg), &mlen),
			 0);
	msg[40] ^= 1;
	memcpy(wire, r.preamble, SP_PREAMBLE_LEN);
	off = SP_PREAMBLE_LEN + put_msg(wire + SP_PREAMBLE_LEN, msg, mlen);
	assert_int_equal(feed(&r, wire, off, 0), SP_CLOSE_HANDSHAKE_FAILED);
	assert_int_equal(seen.established, 0);
	assert_int_equal(r.c.q.bytes, 0);     /* nothing is sent back */
	rig_free(&r);

	/* IK msg1 whose ClientHello says protocol 2. */
	rig_init(&r, SP_PREAMBLE_PATTERN_IK);
	assert_int_equal(sp_noise_handshake_init(&r.hs, SP_NOISE_IK, SP_NOISE_INITIATOR, r.preamble,
						 SP_PREAMBLE_LEN, r.client_priv, server_pub), 0);
	{
		struct sp_hello h = { .protocol_version = 2 };
		size_t plen;

		assert_int_equal(sp_frame_client_hello_encode(&h, pl, sizeof(pl), &plen), 0);
		assert_int_equal(sp_noise_handshake_write(&r.hs, pl, plen, msg, sizeof(msg), &mlen),
				 0);
	}
	memcpy(wire, r.preamble, SP_PREAMBLE_LEN);
	off = SP_PREAMBLE_LEN + put_msg(wire + SP_PREAMBLE_LEN, msg, mlen);
	assert_int_equal(feed(&r, wire, off, 0), SP_CLOSE_HANDSHAKE_FAILED);
	rig_free(&r);

	/* XX msg1 with a payload (protocol 1 has none there). */
	rig_init(&r, SP_PREAMBLE_PATTERN_XX);
	assert_int_equal(sp_noise_handshake_init(&r.hs, SP_NOISE_XX, SP_NOISE_INITIATOR, r.preamble,
						 SP_PREAMBLE_LEN, r.client_priv, NULL), 0);
	assert_int_equal(sp_noise_handshake_write(&r.hs, (const uint8_t *)"x", 1, msg, sizeof(msg),
						  &mlen), 0);
	memcpy(wire, r.preamble, SP_PREAMBLE_LEN);
	off = SP_PREAMBLE_LEN + put_msg(wire + SP_PREAMBLE_LEN, msg, mlen);
	assert_int_equal(feed(&r, wire, off, 0), SP_CLOSE_HANDSHAKE_FAILED);
	rig_free(&r);

	/* The shard refusing the device (e.g. no memory for its route). */
	seen.refuse_with = SP_CLOSE_NOMEM;
	rig_init(&r, SP_PREAMBLE_PATTERN_IK);
	seen.refuse_with = SP_CLOSE_NOMEM;
	assert_int_equal(sp_noise_handshake_init(&r.hs, SP_NOISE_IK, SP_NOISE_INITIATOR, r.preamble,
						 SP_PREAMBLE_LEN, r.client_priv, server_pub), 0);
	assert_int_equal(sp_noise_handshake_write(&r.hs, pl, hello(pl), msg, sizeof(msg), &mlen),
			 0);
	memcpy(wire, r.preamble, SP_PREAMBLE_LEN);
	off = SP_PREAMBLE_LEN + put_msg(wire + SP_PREAMBLE_LEN, msg, mlen);
	assert_int_equal(feed(&r, wire, off, 0), SP_CLOSE_NOMEM);
	rig_free(&r);
}

static void test_transport_failures(void **state)
{
	static uint8_t plain[256], wire[512];
	size_t poff, woff;
	struct rig r;

	(void)state;
	/* A flipped ciphertext bit: no frame reaches the shard. */
	handshake_ik(&r, 0);
	poff = 0;
	put_frame(plain, &poff, SP_FRAME_PING, 1, 0, 0);
	woff = client_seal(&r, plain, poff, wire);
	wire[5] ^= 0x10;
	assert_int_equal(feed(&r, wire, woff, 0), SP_CLOSE_DECRYPT_FAILED);
	assert_int_equal(seen.frames, 0);
	assert_int_equal(seen.proven, 0);       /* a forged message proves nothing */
	assert_false(r.c.proven);
	rig_free(&r);

	/* A truncated frame after a good one: the good one is handled first. */
	handshake_xx(&r, 0);
	poff = 0;
	put_frame(plain, &poff, SP_FRAME_PING, 5, 0, 0);
	put_frame(plain, &poff, SP_FRAME_PING, 6, 0, 0);
	woff = client_seal(&r, plain, poff - 1, wire);
	assert_int_equal(feed(&r, wire, woff, 0), SP_CLOSE_PROTOCOL);
	assert_int_equal(seen.frames, 1);
	rig_free(&r);

	/* A message replayed: its nonce is spent. */
	handshake_ik(&r, 0);
	poff = 0;
	put_frame(plain, &poff, SP_FRAME_PING, 1, 0, 0);
	woff = client_seal(&r, plain, poff, wire);
	assert_int_equal(feed(&r, wire, woff, 0), SP_CLOSE_NONE);
	assert_int_equal(feed(&r, wire, woff, 0), SP_CLOSE_DECRYPT_FAILED);
	rig_free(&r);
}

/* The client decrypts the broker's byte stream and checks every frame. */
static void client_check_stream(struct rig *r, uint8_t *s, size_t len, int frames, size_t body)
{
	int got = 0;

	for (size_t off = 0; off < len;) {
		size_t mlen = (size_t)s[off] << 8 | s[off + 1], plen, foff = 0;
		struct sp_frame f;

		assert_true(off + 2 + mlen <= len);
		assert_int_equal(sp_noise_decrypt(&r->t.rx, s + off + 2, mlen, &plen), 0);
		while (sp_frame_next(s + off + 2, plen, &foff, &f) == 0) {
			assert_int_equal(f.type, SP_FRAME_DELIVER);
			assert_int_equal(f.u.deliver.seq, (uint64_t)got + 1);
			assert_int_equal(f.body_len, body);
			for (size_t j = 0; j < body; j++)
				assert_int_equal(f.body[j], (uint8_t)(got + 1));
			got++;
		}
		assert_int_equal(foff, plen);
		off += 2 + mlen;
	}
	assert_int_equal(got, frames);
}

/* Many frames across messages and chunks, drained by short sends of odd sizes. */
static void tx_roundtrip(size_t body, int frames, size_t send_step)
{
	static uint8_t b[SP_BODY_MAX];
	uint8_t *stream = malloc((size_t)frames * (body + 64) + 4096);
	size_t total = 0;
	struct rig r;

	assert_non_null(stream);
	handshake_ik(&r, 0);
	for (int i = 0; i < frames; i++) {
		struct sp_frame f;
		const uint8_t *p;
		size_t len;

		memset(&f, 0, sizeof(f));
		f.type = SP_FRAME_DELIVER;
		f.u.deliver.seq = (uint64_t)i + 1;
		memset(b, i + 1, body);
		assert_int_equal(sp_session_tx_frame(&r.c, &f, b, body), 0);
		/* Now and then, one short send of what is finished (a send in flight
		 * while more is appended behind it). */
		if (i % 7 == 3 && sp_session_tx_peek(&r.c, &p, &len)) {
			len = len < send_step ? len : send_step;
			memcpy(stream + total, p, len);
			total += len;
			sp_session_tx_sent(&r.c, len);
		}
	}
	assert_int_equal(sp_session_tx_seal(&r.c), 0);
	for (;;) {
		const uint8_t *p;
		size_t len;

		if (!sp_session_tx_peek(&r.c, &p, &len))
			break;
		len = len < send_step ? len : send_step;
		memcpy(stream + total, p, len);
		total += len;
		sp_session_tx_sent(&r.c, len);
	}
	assert_null(r.c.q.head);       /* an idle connection holds no chunk */
	assert_int_equal(r.c.q.bytes, 0);
	client_check_stream(&r, stream, total, frames, body);
	free(stream);
	rig_free(&r);
}

static void test_tx_queue(void **state)
{
	(void)state;
	tx_roundtrip(0, 500, 1000);
	tx_roundtrip(100, 3000, 7);
	tx_roundtrip(SP_BODY_MAX, 9, 65536);
	tx_roundtrip(SP_BODY_MAX, 9, 1 << 20);
	tx_roundtrip(30000, 20, 333);
}

static void test_reason_names(void **state)
{
	(void)state;
	assert_string_equal(sp_close_reason_name(SP_CLOSE_HANDSHAKE_FAILED), "handshake_failed");
	assert_string_equal(sp_close_reason_name(SP_CLOSE_SLOW_CONSUMER), "slow_consumer");
	assert_string_equal(sp_close_reason_name(SP_CLOSE_REASON_COUNT), "unknown");
	for (int i = 0; i < SP_CLOSE_REASON_COUNT; i++)
		assert_non_null(sp_close_reason_name((enum sp_close_reason)i));
}

/* --- an initiator and a responder session, wired in memory ------------------ */

struct side {
	int established, proven, frames, hellos;
	uint64_t ids[2048];
	bool take_tx_max;       /* initiator: take ServerHello.max_transport */
	bool pause;             /* pause the session in its established hook */
};

struct pair {
	struct sp_txpool pool;
	struct sp_session_env ienv, renv;
	struct sp_session i, r;
	struct side is, rs;     /* what each side's hooks saw */
	uint8_t ipriv[SP_KEY_LEN], ipub[SP_KEY_LEN];
};

static enum sp_close_reason p_established(void *ctx, struct sp_session *s)
{
	struct side *d = ctx;

	d->established++;
	if (d->pause)
		sp_session_pause(s);
	return SP_CLOSE_NONE;
}

static enum sp_close_reason p_proven(void *ctx, struct sp_session *s)
{
	struct side *d = ctx;

	assert_true(s->proven);
	d->proven++;
	return SP_CLOSE_NONE;
}

static enum sp_close_reason p_frame(void *ctx, struct sp_session *s, const struct sp_frame *f)
{
	struct side *d = ctx;

	(void)s;
	if (d->frames < 2048)
		d->ids[d->frames] = f->u.ping.id;
	d->frames++;
	return SP_CLOSE_NONE;
}

static enum sp_close_reason p_server_hello(void *ctx, struct sp_session *s, const uint8_t *pl,
					   size_t len)
{
	struct side *d = ctx;
	struct sp_hello h;

	d->hellos++;
	if (sp_frame_server_hello_decode(pl, len, &h) || h.protocol_version != 1)
		return SP_CLOSE_HANDSHAKE_FAILED;
	if (d->take_tx_max)
		sp_session_set_tx_max(s, h.max_transport);
	return SP_CLOSE_NONE;
}

/* Both envs' rekey interval for the next pair_init (0: the protocol's). */
static uint64_t pair_rekey;
static struct sp_slab *pair_slab;   /* both envs' slab; NULL = heap */
static struct sp_slab *pair_key_slab; /* both envs' key_slab; NULL = in pair_slab */

static void pair_init(struct pair *p)
{
	memset(p, 0, sizeof(*p));
	p->renv.rekey_every = p->ienv.rekey_every = pair_rekey;
	p->renv.slab = p->ienv.slab = pair_slab;
	p->renv.key_slab = p->ienv.key_slab = pair_key_slab;
	sp_txpool_init(&p->pool, 4);
	p->renv.static_priv = server_priv;
	memcpy(p->renv.static_pub, server_pub, SP_KEY_LEN);
	p->renv.has_static_pub = true;
	p->renv.hello = (struct sp_hello){ .protocol_version = 1, .max_envelope = 1234,
					   .max_transport = SP_TRANSPORT_PLAINTEXT_MAX };
	p->renv.pool = &p->pool;
	p->renv.hooks = (struct sp_session_hooks){ p_established, p_proven, p_frame, NULL, &p->rs,
						   NULL, NULL };
	p->ienv.hello.protocol_version = 1;
	p->ienv.pool = &p->pool;
	p->ienv.hooks = (struct sp_session_hooks){ p_established, p_proven, p_frame,
						   p_server_hello, &p->is, NULL, NULL };
	sp_noise_keypair(p->ipub, p->ipriv);
	sp_session_accept(&p->r, &p->renv);
}

static void pair_free(struct pair *p)
{
	sp_session_release(&p->i);
	sp_session_release(&p->r);
	assert_int_equal(p->pool.live, p->pool.nfree);
	sp_txpool_destroy(&p->pool);
	assert_int_equal(p->pool.live, 0);
}

/* Moves everything `from` has finished to `to`: cut at `split` (one cut,
 * when step is 0) or in pieces of `step`, each piece from its own scratch
 * copy, as receive buffers would be. Returns what `to` said. */
static enum sp_close_reason wire(struct sp_session *from, struct sp_session *to, size_t split,
				 size_t step, long flip)
{
	static uint8_t buf[1 << 20];
	enum sp_close_reason res = SP_CLOSE_NONE;
	const uint8_t *q;
	size_t len, total = 0;

	assert_int_equal(sp_session_tx_seal(from), 0);
	while (sp_session_tx_peek(from, &q, &len)) {
		assert_true(total + len <= sizeof(buf));
		memcpy(buf + total, q, len);
		total += len;
		sp_session_tx_sent(from, len);
	}
	if (flip >= 0 && (size_t)flip < total)
		buf[flip] ^= 0x04;
	for (size_t off = 0; off < total && res == SP_CLOSE_NONE;) {
		size_t n = step ? step : off < split ? split - off : total - off;
		uint8_t *scratch;

		if (n > total - off)
			n = total - off;
		scratch = malloc(n);
		assert_non_null(scratch);
		memcpy(scratch, buf + off, n);
		res = sp_session_rx(to, scratch, n);
		sodium_memzero(scratch, n);
		free(scratch);
		off += n;
	}
	return res;
}

/* Handshake: every flight cut at `split` or fed in `step`s. */
static void pair_handshake(struct pair *p, bool ik, size_t split, size_t step)
{
	pair_init(p);
	assert_int_equal(sp_session_connect(&p->i, &p->ienv, p->ipriv, ik ? server_pub : NULL), 0);
	assert_int_equal(p->i.state, SP_SESSION_HANDSHAKE);
	assert_int_equal(wire(&p->i, &p->r, split, step, -1), SP_CLOSE_NONE);
	assert_int_equal(wire(&p->r, &p->i, split, step, -1), SP_CLOSE_NONE);
	if (!ik) {
		assert_int_equal(p->r.state, SP_SESSION_HANDSHAKE);
		assert_int_equal(wire(&p->i, &p->r, split, step, -1), SP_CLOSE_NONE);
	}
	assert_int_equal(p->i.state, SP_SESSION_ESTABLISHED);
	assert_int_equal(p->r.state, SP_SESSION_ESTABLISHED);
	assert_int_equal(p->is.established, 1);
	assert_int_equal(p->rs.established, 1);
	assert_int_equal(p->is.hellos, 1);
	assert_memory_equal(p->i.peer, server_pub, SP_KEY_LEN);
	assert_memory_equal(p->r.peer, p->ipub, SP_KEY_LEN);
	assert_null(p->i.hs);
	assert_null(p->r.hs);
	/* The proof rule: the initiator trusts message 2; the responder XX at
	 * message 3, IK only at the first authenticated transport message. */
	assert_true(p->i.proven);
	assert_int_equal(p->r.proven, !ik);
}

static void send_pings(struct sp_session *s, uint64_t first, int n)
{
	for (int k = 0; k < n; k++) {
		struct sp_frame f = { .type = SP_FRAME_PING, .u.ping.id = first + (uint64_t)k };

		assert_int_equal(sp_session_tx_frame(s, &f, NULL, 0), 0);
	}
}

/* The responder's client_hello hook: ClientHello.enrol_token as sent, for
 * IK (message 1) and XX (message 3), after the split (peer known); what it
 * returns ends the session rx, which is then established (a GoAway can go). */
static struct sp_hello seen_hello;
static int seen_hellos;
static enum sp_close_reason hello_verdict;

static enum sp_close_reason p_client_hello(void *ctx, struct sp_session *s,
					   const struct sp_hello *h)
{
	(void)ctx;
	assert_int_equal(s->state, SP_SESSION_ESTABLISHED);
	assert_true(s->has_peer);
	seen_hello = *h;
	seen_hellos++;
	return hello_verdict;
}

static void test_pair_client_hello_hook(void **state)
{
	struct pair p;

	(void)state;
	for (int round = 0; round < 4; round++) {
		bool ik = round & 1;
		enum sp_close_reason r;

		hello_verdict = round < 2 ? SP_CLOSE_NONE : SP_CLOSE_ENROL_TOKEN_USED;
		seen_hellos = 0;
		memset(&seen_hello, 0, sizeof(seen_hello));
		pair_init(&p);
		p.renv.hooks.client_hello = p_client_hello;
		p.ienv.hello.enrol_token_len = 57;
		memset(p.ienv.hello.enrol_token, 0x5a, 57);
		assert_int_equal(sp_session_connect(&p.i, &p.ienv, p.ipriv, ik ? server_pub : NULL),
				 0);
		r = wire(&p.i, &p.r, 0, 0, -1);
		if (!ik) {
			assert_int_equal(r, SP_CLOSE_NONE);
			assert_int_equal(seen_hellos, 0);   /* XX message 1 has no hello */
			assert_int_equal(wire(&p.r, &p.i, 0, 0, -1), SP_CLOSE_NONE);
			r = wire(&p.i, &p.r, 0, 0, -1);
		}
		assert_int_equal(r, hello_verdict);
		assert_int_equal(seen_hellos, 1);
		assert_int_equal(seen_hello.enrol_token_len, 57);
		assert_int_equal(seen_hello.enrol_token[0], 0x5a);
		assert_int_equal(seen_hello.enrol_token[56], 0x5a);
		assert_int_equal(p.r.state, SP_SESSION_ESTABLISHED);
		/* a refusal comes before established */
		assert_int_equal(p.rs.established, hello_verdict ? 0 : 1);
		pair_free(&p);
	}
}

static void test_pair_every_split(void **state)
{
	struct pair p;

	(void)state;
	for (int ik = 0; ik < 2; ik++) {
		/* Past the longest flight (preamble + message 1) every cut is the same. */
		for (size_t split = 0; split <= SP_PREAMBLE_LEN + SP_LEN_PREFIX + 200; split++) {
			pair_handshake(&p, ik, split, 0);
			send_pings(&p.i, 1, 3);
			assert_int_equal(wire(&p.i, &p.r, split, 0, -1), SP_CLOSE_NONE);
			assert_int_equal(p.rs.frames, 3);
			assert_int_equal(p.rs.ids[2], 3);
			assert_true(p.r.proven);
			assert_int_equal(p.rs.proven, ik ? 1 : 0);
			send_pings(&p.r, 9, 2);
			assert_int_equal(wire(&p.r, &p.i, split, 0, -1), SP_CLOSE_NONE);
			assert_int_equal(p.is.frames, 2);
			assert_int_equal(p.is.proven, 0);   /* the initiator was proven before */
			pair_free(&p);
		}
		for (size_t step = 1; step <= 3; step++) {
			pair_handshake(&p, ik, 0, step);
			send_pings(&p.i, 1, 50);
			assert_int_equal(wire(&p.i, &p.r, 0, step, -1), SP_CLOSE_NONE);
			assert_int_equal(p.rs.frames, 50);
			pair_free(&p);
		}
	}
}

/* Counts the length-prefixed messages in a byte stream. */
static int count_messages(const uint8_t *b, size_t len, size_t *max_msg)
{
	int n = 0;

	*max_msg = 0;
	for (size_t off = 0; off < len; n++) {
		size_t m = (size_t)b[off] << 8 | b[off + 1];

		*max_msg = m > *max_msg ? m : *max_msg;
		off += 2 + m;
		assert_true(off <= len);
	}
	return n;
}

static int batch(struct pair *p, int frames, size_t *max_msg)
{
	static uint8_t out[1 << 20];
	const uint8_t *q;
	size_t len, total = 0;
	enum sp_close_reason res;
	uint8_t *scratch;

	send_pings(&p->i, 1, frames);
	assert_int_equal(sp_session_tx_seal(&p->i), 0);
	while (sp_session_tx_peek(&p->i, &q, &len)) {
		memcpy(out + total, q, len);
		total += len;
		sp_session_tx_sent(&p->i, len);
	}
	assert_int_equal(sp_session_tx_queued(&p->i), 0);
	assert_null(p->i.q.head);       /* an idle session holds no chunk */
	scratch = malloc(total);
	assert_non_null(scratch);
	memcpy(scratch, out, total);
	res = sp_session_rx(&p->r, scratch, total);
	free(scratch);
	assert_int_equal(res, SP_CLOSE_NONE);
	assert_int_equal(p->rs.frames, frames);
	for (int k = 0; k < frames && k < 2048; k++)
		assert_int_equal(p->rs.ids[k], (uint64_t)k + 1);
	return count_messages(out, total, max_msg);
}

/* IK: the proof, a one-Ping message (the first transport message of an
 * IK session must be handshake-sized); the frame counts start again. */
static void pair_prove(struct pair *p)
{
	send_pings(&p->i, 999, 1);
	assert_int_equal(wire(&p->i, &p->r, 0, 0, -1), SP_CLOSE_NONE);
	assert_true(p->r.proven);
	p->rs.frames = 0;
}

/* An IK responder not yet proven takes no message above a handshake
 * message's size (its message 1 may be a replay: the peer is nobody yet);
 * XX, proven at message 3, takes any. */
static void test_ik_unproven_limit(void **state)
{
	struct pair p;

	(void)state;
	pair_handshake(&p, true, 0, 0);
	send_pings(&p.i, 1, 200);      /* > SP_HANDSHAKE_MSG_MAX */
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_BAD_LENGTH);
	assert_false(p.r.proven);
	assert_null(p.r.rx_asm);
	pair_free(&p);
	pair_handshake(&p, false, 0, 0);
	send_pings(&p.i, 1, 200);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
	assert_int_equal(p.rs.frames, 200);
	pair_free(&p);
}

static void test_pair_batching(void **state)
{
	struct pair p;
	size_t max_msg;

	(void)state;
	/* 1000 frames before one seal: one transport message, one AEAD. */
	pair_handshake(&p, true, 0, 0);
	pair_prove(&p);
	assert_int_equal(batch(&p, 1000, &max_msg), 1);
	pair_free(&p);
	/* More than one message holds: split at the protocol maximum. */
	pair_handshake(&p, false, 0, 0);
	assert_true(batch(&p, 2000, &max_msg) >= 1);
	assert_true(max_msg <= SP_NOISE_MSG_MAX);
	pair_free(&p);
	/* A broker announcing max_transport 256: no message above it. */
	memset(&p, 0, sizeof(p));
	pair_init(&p);
	p.renv.hello.max_transport = 256;
	p.is.take_tx_max = true;
	assert_int_equal(sp_session_connect(&p.i, &p.ienv, p.ipriv, server_pub), 0);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
	assert_int_equal(wire(&p.r, &p.i, 0, 0, -1), SP_CLOSE_NONE);
	pair_prove(&p);
	assert_true(batch(&p, 300, &max_msg) > 5);
	assert_true(max_msg <= 256 + SP_TAG_LEN);
	pair_free(&p);
}

static void test_pair_tampered(void **state)
{
	struct pair p;
	size_t n2 = 0;  /* cmocka's assert is not noreturn to the compiler */

	(void)state;
	/* Every byte of message 2 (after its prefix) flipped: the initiator
	 * refuses it, never established. */
	pair_handshake(&p, true, 0, 0);
	pair_free(&p);
	{
		const uint8_t *q = NULL;

		pair_init(&p);
		assert_int_equal(sp_session_connect(&p.i, &p.ienv, p.ipriv, server_pub), 0);
		assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
		assert_true(sp_session_tx_peek(&p.r, &q, &n2));
		pair_free(&p);
	}
	for (size_t k = SP_LEN_PREFIX; k < n2; k++) {
		enum sp_close_reason res;

		pair_init(&p);
		assert_int_equal(sp_session_connect(&p.i, &p.ienv, p.ipriv, server_pub), 0);
		assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
		res = wire(&p.r, &p.i, 0, 0, (long)k);
		assert_true(res == SP_CLOSE_DECRYPT_FAILED || res == SP_CLOSE_HANDSHAKE_FAILED);
		/* the ephemeral key bytes may decode to a bad point, the rest fail the tag */
		assert_int_not_equal(p.i.state, SP_SESSION_ESTABLISHED);
		assert_int_equal(p.is.established, 0);
		pair_free(&p);
	}
	/* A tampered transport byte, either way: decrypt_failed, no frame. */
	for (int dir = 0; dir < 2; dir++) {
		pair_handshake(&p, dir == 0, 0, 0);
		send_pings(dir ? &p.r : &p.i, 1, 4);
		assert_int_equal(wire(dir ? &p.r : &p.i, dir ? &p.i : &p.r, 0, 0, 5),
				 SP_CLOSE_DECRYPT_FAILED);
		assert_int_equal(dir ? p.is.frames : p.rs.frames, 0);
		if (!dir)
			assert_false(p.r.proven);   /* a forged message proves nothing */
		pair_free(&p);
	}
	/* IK to a broker holding another key: the responder refuses message 1. */
	pair_init(&p);
	{
		uint8_t other_pub[SP_KEY_LEN], other_priv[SP_KEY_LEN];

		sp_noise_keypair(other_pub, other_priv);
		assert_int_equal(sp_session_connect(&p.i, &p.ienv, p.ipriv, other_pub), 0);
	}
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_HANDSHAKE_FAILED);
	assert_int_equal(sp_session_tx_queued(&p.r), 0);
	pair_free(&p);
}

static void test_initiator_bad_input(void **state)
{
	uint8_t zero[2] = { 0, 0 }, big[2] = { 0xff, 0xff }, short_msg[2] = { 0, 15 };
	struct pair p;

	(void)state;
	/* Length 0, and a handshake message above the limit, on the prefix alone. */
	pair_init(&p);
	assert_int_equal(sp_session_connect(&p.i, &p.ienv, p.ipriv, server_pub), 0);
	assert_int_equal(sp_session_rx(&p.i, zero, 2), SP_CLOSE_BAD_LENGTH);
	pair_free(&p);
	pair_init(&p);
	assert_int_equal(sp_session_connect(&p.i, &p.ienv, p.ipriv, server_pub), 0);
	assert_int_equal(sp_session_rx(&p.i, big, 2), SP_CLOSE_BAD_LENGTH);
	assert_null(p.i.rx_asm);
	pair_free(&p);
	/* Established: a message shorter than its tag. */
	pair_handshake(&p, true, 0, 0);
	assert_int_equal(sp_session_rx(&p.i, short_msg, 2), SP_CLOSE_BAD_LENGTH);
	pair_free(&p);
	/* A ServerHello the owner refuses. */
	pair_init(&p);
	p.renv.hello.protocol_version = 2;
	assert_int_equal(sp_session_connect(&p.i, &p.ienv, p.ipriv, NULL), 0);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
	assert_int_equal(wire(&p.r, &p.i, 0, 0, -1), SP_CLOSE_HANDSHAKE_FAILED);
	assert_int_equal(p.is.established, 0);
	pair_free(&p);
	/* A bad key for connect. */
	pair_init(&p);
	assert_int_not_equal(sp_session_connect(&p.i, &p.ienv, NULL, server_pub), 0);
	pair_free(&p);
}

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t k = 0; k < n; k++)
		if (b[k])
			return false;
	return true;
}

static void test_pair_end_and_wipe(void **state)
{
	struct sp_frame f = { .type = SP_FRAME_GOAWAY, .u.goaway.code = SP_STATUS_GOAWAY_SHUTDOWN };
	struct pair p;

	(void)state;
	pair_handshake(&p, false, 0, 0);
	/* end: output still drains (a GoAway goes out), input is discarded. */
	sp_session_end(&p.r);
	assert_int_equal(p.r.state, SP_SESSION_CLOSING);
	assert_int_equal(sp_session_tx_frame(&p.r, &f, NULL, 0), 0);
	assert_int_equal(wire(&p.r, &p.i, 0, 0, -1), SP_CLOSE_NONE);
	assert_int_equal(p.is.frames, 1);
	send_pings(&p.i, 1, 2);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
	assert_int_equal(p.rs.frames, 0);
	/* halt: the rest of the input is dropped. */
	sp_session_halt(&p.i);
	send_pings(&p.r, 1, 1);
	assert_int_equal(wire(&p.r, &p.i, 0, 0, -1), SP_CLOSE_NONE);
	assert_int_equal(p.is.frames, 1);
	/* wipe: no key left, in either role. An open message is dropped. */
	send_pings(&p.i, 1, 1);
	assert_true(p.i.tx_open);
	sp_session_wipe(&p.i);
	sp_session_wipe(&p.r);
	for (int k = 0; k < 2; k++) {
		struct sp_session *s = k ? &p.r : &p.i;

		assert_int_equal(s->state, SP_SESSION_DEAD);
		assert_null(s->keys);   /* wiped and freed (zeroed: test_slab) */
		assert_true(all_zero(s->peer, sizeof(s->peer)));
		assert_null(s->hs);
		assert_null(s->rx_asm);
		assert_false(s->tx_open);
		assert_int_equal(sp_session_tx_frame(s, &f, NULL, 0), -EINVAL);
	}
	pair_free(&p);
	/* Mid-handshake, with a half-read message in the reassembly buffer. */
	pair_init(&p);
	assert_int_equal(sp_session_connect(&p.i, &p.ienv, p.ipriv, server_pub), 0);
	{
		const uint8_t *q = NULL;
		size_t len = 0;
		uint8_t half[64];

		assert_true(sp_session_tx_peek(&p.i, &q, &len) && len > 40);
		memcpy(half, q, 40);
		sp_session_tx_sent(&p.i, len);
		assert_int_equal(sp_session_rx(&p.r, half, 40), SP_CLOSE_NONE);
	}
	assert_non_null(p.r.rx_asm);
	assert_non_null(p.r.hs);
	assert_non_null(p.i.hs);
	sp_session_wipe(&p.r);
	sp_session_wipe(&p.i);
	assert_null(p.r.rx_asm);
	assert_null(p.r.hs);
	assert_null(p.i.hs);
	pair_free(&p);
}

/*
 * Rekeying (PROTOCOL.md 5.1): a pair rekeying every 3 messages still talks
 * in both directions across many boundaries, each direction's key changes
 * exactly at the boundary and to REKEY(old key), and a receiver that does
 * not rekey at the same count fails at the first message after it.
 */
static void test_pair_rekey(void **state)
{
	uint8_t k0[SP_KEY_LEN], k_before[SP_KEY_LEN];
	struct pair p;

	(void)state;
	pair_rekey = 3;
	pair_handshake(&p, true, 0, 0);
	memcpy(k0, p.i.keys->t.tx.k, SP_KEY_LEN);
	assert_memory_equal(p.r.keys->t.rx.k, k0, SP_KEY_LEN);
	for (int m = 0; m < 20; m++) {
		memcpy(k_before, p.i.keys->t.tx.k, SP_KEY_LEN);
		send_pings(&p.i, 100 + (uint64_t)m, 2);
		assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
		assert_int_equal(p.rs.frames, 2 * (m + 1));
		assert_int_equal(p.rs.ids[2 * m + 1], 101 + (uint64_t)m);
		send_pings(&p.r, 500 + (uint64_t)m, 1);
		assert_int_equal(wire(&p.r, &p.i, 0, 0, -1), SP_CLOSE_NONE);
		assert_int_equal(p.is.frames, m + 1);
		/* Both sides hold the same key for each direction, always. */
		assert_memory_equal(p.i.keys->t.tx.k, p.r.keys->t.rx.k, SP_KEY_LEN);
		assert_memory_equal(p.r.keys->t.tx.k, p.i.keys->t.rx.k, SP_KEY_LEN);
		assert_int_equal(p.i.keys->t.tx.n, (uint64_t)m + 1);
		if ((m + 1) % 3 == 0) {
			struct sp_noise_cipher c = { .has_key = true };

			assert_memory_not_equal(p.i.keys->t.tx.k, k_before, SP_KEY_LEN);
			memcpy(c.k, k_before, SP_KEY_LEN);
			assert_int_equal(sp_noise_rekey(&c), 0);
			assert_memory_equal(p.i.keys->t.tx.k, c.k, SP_KEY_LEN);
		} else {
			assert_memory_equal(p.i.keys->t.tx.k, k_before, SP_KEY_LEN);
		}
	}
	assert_memory_not_equal(p.i.keys->t.tx.k, k0, SP_KEY_LEN);
	pair_free(&p);

	/* The responder counts 4, the initiator 3: message 4 (nonce 3) is
	 * sealed under the rekeyed key and does not open. */
	pair_rekey = 3;
	pair_handshake(&p, true, 0, 0);
	sp_noise_transport_set_rekey(&p.r.keys->t, 4);
	for (int m = 0; m < 3; m++) {
		send_pings(&p.i, 1, 1);
		assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
	}
	send_pings(&p.i, 1, 1);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_DECRYPT_FAILED);
	pair_free(&p);
	pair_rekey = 0;

	/* The protocol's interval: the key changes after message 65536. */
	pair_handshake(&p, false, 0, 0);
	p.i.keys->t.tx.n = p.r.keys->t.rx.n = SP_REKEY_MESSAGES - 2;
	memcpy(k0, p.i.keys->t.tx.k, SP_KEY_LEN);
	send_pings(&p.i, 1, 1);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
	assert_memory_equal(p.i.keys->t.tx.k, k0, SP_KEY_LEN);
	send_pings(&p.i, 2, 1);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
	assert_memory_not_equal(p.i.keys->t.tx.k, k0, SP_KEY_LEN);
	assert_memory_equal(p.i.keys->t.tx.k, p.r.keys->t.rx.k, SP_KEY_LEN);
	send_pings(&p.i, 3, 1);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
	assert_int_equal(p.rs.frames, 3);
	pair_free(&p);
}

/*
 * No nonce wraps: a session whose send nonce reaches 2^64 - 1 refuses to
 * send (the owner ends the connection), and one whose receive nonce is
 * there closes on the next message (decrypt_failed), never reusing a nonce.
 */
static void test_pair_nonce_end(void **state)
{
	struct sp_frame ping = { .type = SP_FRAME_PING, .u.ping.id = 1 };
	struct pair p;

	(void)state;
	pair_handshake(&p, false, 0, 0);
	p.i.keys->t.tx.n = p.r.keys->t.rx.n = UINT64_MAX - 2;
	send_pings(&p.i, 1, 1);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
	send_pings(&p.i, 2, 1);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
	assert_int_equal(p.rs.frames, 2);
	assert_int_equal(p.i.keys->t.tx.n, UINT64_MAX);
	/* The next message would use the reserved nonce: refused. */
	assert_int_equal(sp_session_tx_frame(&p.i, &ping, NULL, 0), -EOVERFLOW);
	assert_int_equal(p.i.keys->t.tx.n, UINT64_MAX);
	pair_free(&p);

	/* Receiving with the receive nonce exhausted: the session closes. */
	pair_handshake(&p, false, 0, 0);
	p.i.keys->t.tx.n = UINT64_MAX - 1;
	p.r.keys->t.rx.n = UINT64_MAX;
	send_pings(&p.i, 1, 1);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_DECRYPT_FAILED);
	assert_int_equal(p.rs.frames, 0);
	pair_free(&p);
}

/*
 * With a slab (the broker's shard, the client): the handshake state and
 * then the transport keys of both sides sit in its slots, one slot per
 * session at a time, and the wipe zeroes the keys' slot in place.
 */
/* ---- cipher negotiation (preamble byte 6, PROTOCOL.md 2) ------------------------- */

/* Everything `from` has finished, as one byte string (the wire in between). */
static size_t take_all(struct sp_session *from, uint8_t *buf, size_t cap)
{
	const uint8_t *q;
	size_t len, total = 0;

	assert_int_equal(sp_session_tx_seal(from), 0);
	while (sp_session_tx_peek(from, &q, &len)) {
		assert_true(total + len <= cap);
		memcpy(buf + total, q, len);
		total += len;
		sp_session_tx_sent(from, len);
	}
	return total;
}

/*
 * The broker's hand-off of a connection to another shard: an XX responder
 * paused in its established hook leaves the rest of the buffer (the
 * client's first transport message, sent with message 3) unread; detached
 * (keys out, the session wiped), attached to a fresh session under another
 * env (the target shard's slab), it reads that rest and goes on both ways.
 * detach refuses while output is queued.
 */
static void test_pair_pause_move(void **state)
{
	static uint8_t buf[1 << 16];
	struct sp_session_keys *keys = sodium_malloc(sizeof(*keys));
	struct sp_session out, moved;
	struct sp_session_env env2;
	struct sp_slab slab2;
	struct pair p;
	size_t len, left, n0;

	(void)state;
	assert_non_null(keys);
	assert_int_equal(sp_slab_init(&slab2, sp_session_slot_size(), 0, 0), 0);
	pair_init(&p);
	p.rs.pause = true;
	assert_int_equal(sp_session_connect(&p.i, &p.ienv, p.ipriv, NULL), 0);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
	assert_int_equal(wire(&p.r, &p.i, 0, 0, -1), SP_CLOSE_NONE);
	/* Message 3 and a message of 5 Pings in one buffer. */
	assert_int_equal(sp_session_tx_seal(&p.i), 0);
	send_pings(&p.i, 1, 5);
	len = take_all(&p.i, buf, sizeof(buf));
	assert_int_equal(sp_session_rx(&p.r, buf, len), SP_CLOSE_NONE);
	assert_int_equal(p.r.state, SP_SESSION_ESTABLISHED);
	assert_int_equal(p.rs.frames, 0);
	left = p.r.rx_left;
	assert_true(left > 0 && left < len);
	/* Nothing queued by an XX responder after message 3: it may go. A
	 * frame queued first would keep it (-EBUSY) until sent. */
	send_pings(&p.r, 50, 1);
	assert_int_equal(sp_session_detach(&p.r, &out, keys), -EBUSY);
	n0 = take_all(&p.r, buf + len, sizeof(buf) - len);
	assert_int_equal(sp_session_detach(&p.r, &out, keys), 0);
	assert_int_equal(p.r.state, SP_SESSION_DEAD);
	assert_null(p.r.keys);
	env2 = p.renv;
	env2.slab = &slab2;
	memset(&moved, 0, sizeof(moved));
	assert_int_equal(sp_session_attach(&moved, &out, &env2, keys), 0);
	assert_false(moved.paused);
	assert_memory_equal(moved.peer, p.ipub, SP_KEY_LEN);
	assert_true(sp_slab_holds(&slab2, moved.keys));
	assert_int_equal(sp_session_rx(&moved, buf + len - left, left), SP_CLOSE_NONE);
	assert_int_equal(p.rs.frames, 5);
	for (int k = 0; k < 5; k++)
		assert_int_equal(p.rs.ids[k], (uint64_t)k + 1);
	/* The other way: the initiator reads the Ping sent before the move,
	 * then one from the moved session. */
	p.is.frames = 0;
	assert_int_equal(sp_session_rx(&p.i, buf + len, n0), SP_CLOSE_NONE);
	send_pings(&moved, 60, 1);
	{
		uint8_t b2[4096];
		size_t n1 = take_all(&moved, b2, sizeof(b2));

		assert_int_equal(sp_session_rx(&p.i, b2, n1), SP_CLOSE_NONE);
	}
	assert_int_equal(p.is.frames, 2);
	assert_int_equal(p.is.ids[0], 50);
	assert_int_equal(p.is.ids[1], 60);
	sodium_free(keys);
	sp_session_release(&moved);
	pair_free(&p);
	sp_slab_destroy(&slab2);
}

/*
 * A client proposing AESGCM to a responder that takes it: IK and XX
 * establish with AES-256-GCM on both sides (their transport ciphers say so),
 * frames cross both ways through rekeys; a ChaChaPoly client of the same
 * responder still gets ChaChaPoly (00 is what every old client sends).
 */
static void test_pair_aesgcm(void **state)
{
	static const uint8_t want_pre[SP_PREAMBLE_LEN] = { 'S', 'E', 'A', 'L', 1, 1, 1, 0 };
	uint8_t buf[4096];
	struct pair p;

	(void)state;
	if (!sp_noise_aead_available(SP_NOISE_AESGCM)) {
		print_message("no AES-NI on this CPU: AESGCM negotiation test skipped\n");
		skip();
	}
	for (int k = 0; k < 3; k++) {
		bool ik = k != 1, aes = k != 2;
		enum sp_close_reason r;

		pair_rekey = 3;
		pair_init(&p);
		p.renv.accept_aesgcm = true;
		p.ienv.propose_aead = aes ? SP_NOISE_AESGCM : SP_NOISE_CHACHAPOLY;
		assert_int_equal(sp_session_connect(&p.i, &p.ienv, p.ipriv, ik ? server_pub : NULL),
				 0);
		assert_int_equal(p.i.aead, aes ? SP_NOISE_AESGCM : SP_NOISE_CHACHAPOLY);
		if (aes) {
			assert_memory_equal(p.i.pre, want_pre, 5);
			assert_int_equal(p.i.pre[5], ik ? SP_PREAMBLE_PATTERN_IK
							: SP_PREAMBLE_PATTERN_XX);
			assert_memory_equal(p.i.pre + 6, want_pre + 6, 2);
		}
		assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
		assert_int_equal(wire(&p.r, &p.i, 0, 0, -1), SP_CLOSE_NONE);
		if (!ik)
			assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
		assert_int_equal(p.i.state, SP_SESSION_ESTABLISHED);
		assert_int_equal(p.r.state, SP_SESSION_ESTABLISHED);
		assert_int_equal(p.r.aead, p.i.aead);
		assert_int_equal(p.i.keys->t.tx.aead, p.i.aead);
		assert_int_equal(p.r.keys->t.rx.aead, p.i.aead);
		assert_int_equal(p.r.keys->t.tx.aead, p.i.aead);
		for (int m = 0; m < 8; m++) {
			send_pings(&p.i, 10 * (uint64_t)m, 3);
			assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
			send_pings(&p.r, 1000 + (uint64_t)m, 1);
			assert_int_equal(wire(&p.r, &p.i, 0, 0, -1), SP_CLOSE_NONE);
		}
		assert_int_equal(p.rs.frames, 24);
		assert_int_equal(p.rs.ids[23], 72);
		assert_int_equal(p.is.frames, 8);
		assert_int_equal(p.rs.proven, ik ? 1 : 0);
		/* What the initiator sent really is AES-256-GCM under its key. */
		if (aes) {
			uint8_t nonce[12] = { 0 }, ct[64];
			struct sp_frame f = { .type = SP_FRAME_PING, .u.ping.id = 5 };
			size_t n, pl;

			nonce[11] = (uint8_t)p.i.keys->t.tx.n; /* big-endian, < 256 here */
			assert_int_equal(sp_session_tx_frame(&p.i, &f, NULL, 0), 0);
			n = take_all(&p.i, buf, sizeof(buf));
			assert_true(n - SP_LEN_PREFIX <= sizeof(ct));
			memcpy(ct, buf + SP_LEN_PREFIX, n - SP_LEN_PREFIX);
			assert_int_equal(crypto_aead_aes256gcm_decrypt(ct, NULL, NULL, ct,
								       n - SP_LEN_PREFIX, NULL, 0,
								       nonce, p.r.keys->t.rx.k),
					 0);
			r = sp_session_rx(&p.r, buf, n);
			assert_int_equal(r, SP_CLOSE_NONE);
			pl = n - SP_LEN_PREFIX - SP_TAG_LEN;
			assert_true(pl > 0);
		}
		pair_free(&p);
	}
	pair_rekey = 0;
}

/*
 * A responder that does not take AESGCM answers its proposal with the
 * refusal preamble (8 bytes, exactly) and ends; the initiator's session
 * ends with cipher_refused on it. A preamble whose cipher byte was changed
 * in transit, either way, fails the handshake: the byte is in the prologue
 * and the cipher in the protocol name.
 */
static void test_pair_aesgcm_refused(void **state)
{
	static const uint8_t refusal[SP_PREAMBLE_LEN] = { 'S', 'E', 'A', 'L', 1, 2, 0, 0 };
	uint8_t buf[4096];
	struct pair p;
	size_t n;

	(void)state;
	if (!sp_noise_aead_available(SP_NOISE_AESGCM)) {
		print_message("no AES-NI on this CPU: AESGCM refusal test skipped\n");
		skip();
	}
	/* refused (XX: the answer names the pattern proposed) */
	pair_init(&p);
	p.ienv.propose_aead = SP_NOISE_AESGCM;
	assert_int_equal(sp_session_connect(&p.i, &p.ienv, p.ipriv, NULL), 0);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_CIPHER_REFUSED);
	assert_null(p.r.hs);            /* no handshake state was made */
	n = take_all(&p.r, buf, sizeof(buf));
	assert_int_equal(n, SP_PREAMBLE_LEN);
	assert_memory_equal(buf, refusal, SP_PREAMBLE_LEN);
	/* the initiator reads it, in pieces too */
	for (size_t cut = 1; cut <= SP_PREAMBLE_LEN; cut++) {
		struct sp_session i;
		enum sp_close_reason r;

		assert_int_equal(sp_session_connect(&i, &p.ienv, p.ipriv, NULL), 0);
		r = sp_session_rx(&i, buf, cut);
		if (cut < SP_LEN_PREFIX)
			assert_int_equal(r, SP_CLOSE_NONE);
		else
			assert_int_equal(r, SP_CLOSE_CIPHER_REFUSED);
		sp_session_release(&i);
	}
	/* a ChaChaPoly initiator reads the same bytes as a bad length */
	{
		struct sp_session i;

		p.ienv.propose_aead = SP_NOISE_CHACHAPOLY;
		assert_int_equal(sp_session_connect(&i, &p.ienv, p.ipriv, NULL), 0);
		assert_int_equal(sp_session_rx(&i, buf, SP_PREAMBLE_LEN), SP_CLOSE_BAD_LENGTH);
		sp_session_release(&i);
	}
	pair_free(&p);

	/* downgraded in transit (01 -> 00) and upgraded (00 -> 01), IK and XX */
	for (int k = 0; k < 4; k++) {
		bool ik = k & 1, down = k & 2;
		enum sp_close_reason r;

		pair_init(&p);
		p.renv.accept_aesgcm = true;
		p.ienv.propose_aead = down ? SP_NOISE_AESGCM : SP_NOISE_CHACHAPOLY;
		assert_int_equal(sp_session_connect(&p.i, &p.ienv, p.ipriv, ik ? server_pub : NULL),
				 0);
		n = take_all(&p.i, buf, sizeof(buf));
		assert_int_equal(buf[6], down ? 1 : 0);
		buf[6] = down ? 0 : 1;
		r = sp_session_rx(&p.r, buf, n);
		if (ik) {
			/* message 1 is encrypted: the responder fails it */
			assert_int_equal(r, SP_CLOSE_HANDSHAKE_FAILED);
		} else {
			/* XX message 1 is clear: message 2 fails at the initiator */
			assert_int_equal(r, SP_CLOSE_NONE);
			n = take_all(&p.r, buf, sizeof(buf));
			assert_int_equal(sp_session_rx(&p.i, buf, n), SP_CLOSE_DECRYPT_FAILED);
		}
		assert_int_not_equal(p.i.state, SP_SESSION_ESTABLISHED);
		assert_int_not_equal(p.r.state, SP_SESSION_ESTABLISHED);
		pair_free(&p);
	}
}

/*
 * With a key_slab (the broker's layout): an established session holds only
 * its keys, a small key_slab slot; the outbound stream takes a slot of the
 * slab only from its first frame to the seal, so an idle session holds
 * nothing in the slab; the keys are gone from both after the wipe.
 */
static void test_pair_key_slab(void **state)
{
	struct sp_slab sl, ks;
	struct pair p;
	struct sp_session_keys *ik, *rk;

	(void)state;
	assert_int_equal(sp_slab_init(&sl, sp_session_slot_size(), 0, 0), 0);
	assert_int_equal(sp_slab_init(&ks, sp_session_keys_slot_size(), 0, 0), 0);
	assert_true(sp_session_keys_slot_size() <= 112);
	assert_true(sp_session_keys_slot_size() < sp_session_slot_size());
	pair_slab = &sl;
	pair_key_slab = &ks;
	pair_init(&p);
	assert_int_equal(sp_session_connect(&p.i, &p.ienv, p.ipriv, server_pub), 0);
	assert_true(sp_slab_holds(&sl, p.i.hs));
	assert_int_equal(ks.used, 0);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
	assert_int_equal(wire(&p.r, &p.i, 0, 0, -1), SP_CLOSE_NONE);
	assert_int_equal(p.r.state, SP_SESSION_ESTABLISHED);
	ik = p.i.keys;
	rk = p.r.keys;
	assert_true(sp_slab_holds(&ks, ik));
	assert_true(sp_slab_holds(&ks, rk));
	assert_int_equal(ks.used, 2);
	assert_int_equal(sl.used, 0);           /* idle: no handshake, no stream */
	assert_null(ik->tx);
	send_pings(&p.i, 1, 3);
	assert_true(p.i.tx_open);
	assert_true(sp_slab_holds(&sl, ik->tx)); /* the open message's stream */
	assert_int_equal(sl.used, 1);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE); /* seals */
	assert_int_equal(p.rs.frames, 3);
	assert_null(ik->tx);
	assert_int_equal(sl.used, 0);
	/* A stream open at the wipe goes back too. */
	send_pings(&p.r, 9, 1);
	assert_int_equal(sl.used, 1);
	sp_session_wipe(&p.i);
	sp_session_wipe(&p.r);
	assert_int_equal(sl.used, 0);
	assert_int_equal(ks.used, 0);
	assert_true(all_zero(ik, sizeof(*ik)));
	assert_true(all_zero(rk, sizeof(*rk)));
	pair_free(&p);
	pair_slab = NULL;
	pair_key_slab = NULL;
	sp_slab_destroy(&sl);
	sp_slab_destroy(&ks);
}

static void test_pair_slab(void **state)
{
	struct sp_slab sl;
	struct pair p;
	struct sp_session_keys *ik, *rk;

	(void)state;
	assert_int_equal(sp_slab_init(&sl, sp_session_slot_size(), 0, 0), 0);
	pair_slab = &sl;
	pair_init(&p);
	assert_int_equal(sp_session_connect(&p.i, &p.ienv, p.ipriv, server_pub), 0);
	assert_true(sp_slab_holds(&sl, p.i.hs));
	assert_int_equal(sl.used, 1);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
	assert_int_equal(wire(&p.r, &p.i, 0, 0, -1), SP_CLOSE_NONE);
	assert_int_equal(p.i.state, SP_SESSION_ESTABLISHED);
	assert_int_equal(p.r.state, SP_SESSION_ESTABLISHED);
	assert_null(p.i.hs);
	assert_null(p.r.hs);
	ik = p.i.keys;
	rk = p.r.keys;
	assert_true(sp_slab_holds(&sl, ik));
	assert_true(sp_slab_holds(&sl, rk));
	assert_int_equal(sl.used, 2);   /* the handshake states went back */
	assert_memory_equal(ik->t.tx.k, rk->t.rx.k, SP_KEY_LEN);
	send_pings(&p.i, 7, 2);
	assert_int_equal(wire(&p.i, &p.r, 0, 0, -1), SP_CLOSE_NONE);
	assert_int_equal(p.rs.frames, 2);
	sp_session_wipe(&p.i);
	sp_session_wipe(&p.r);
	assert_null(p.i.keys);
	assert_int_equal(sl.used, 0);
	/* The chunk is the slab's spare, still mapped: the keys are gone. */
	assert_true(all_zero(ik, sizeof(*ik)));
	assert_true(all_zero(rk, sizeof(*rk)));
	pair_free(&p);
	pair_slab = NULL;
	sp_slab_destroy(&sl);
}

static int group_setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	sp_noise_keypair(server_pub, server_priv);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ik_every_split),
		cmocka_unit_test(test_xx_every_split),
		cmocka_unit_test(test_bad_preambles),
		cmocka_unit_test(test_bad_lengths),
		cmocka_unit_test(test_handshake_failures),
		cmocka_unit_test(test_transport_failures),
		cmocka_unit_test(test_tx_queue),
		cmocka_unit_test(test_reason_names),
		cmocka_unit_test(test_pair_every_split),
		cmocka_unit_test(test_pair_client_hello_hook),
		cmocka_unit_test(test_pair_batching),
		cmocka_unit_test(test_ik_unproven_limit),
		cmocka_unit_test(test_pair_tampered),
		cmocka_unit_test(test_initiator_bad_input),
		cmocka_unit_test(test_pair_end_and_wipe),
		cmocka_unit_test(test_pair_rekey),
		cmocka_unit_test(test_pair_slab),
		cmocka_unit_test(test_pair_key_slab),
		cmocka_unit_test(test_pair_pause_move),
		cmocka_unit_test(test_pair_aesgcm),
		cmocka_unit_test(test_pair_aesgcm_refused),
		cmocka_unit_test(test_pair_nonce_end),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
