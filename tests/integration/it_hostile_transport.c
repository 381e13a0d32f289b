/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_hostile_transport.c: hostile peers at the transport and frame layer,
 * against a real sealpostd: replayed and reordered transport messages (on
 * the same connection and across connections), truncated and oversized
 * frames and Noise messages, and acknowledgements for another device's
 * sequences. For each: the clear outcome (a silent close for anything that
 * fails authentication, GoAway PROTOCOL for a bad frame, nothing for a
 * foreign ack) and that nothing is lost for anyone else: an honest pair
 * connected before the attack keeps exchanging envelopes, and the victim's
 * mailbox is intact.
 *
 * Every wait is bounded (WAIT_MS): liveness bounds, not timing assertions.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sp_limits.h"
#include "sp_noise.h"
#include "support.h"
#include "support_raw.h"

enum { WAIT_MS = 10000 };

static struct sp_it_broker broker;
/* The honest pair, connected before any attack and checked after each. */
static struct sp_raw hx, hy;
static uint64_t next_id = 1;

static void open_ik(struct sp_raw *c)
{
	int rc;

	if (!c->rx)
		assert_int_equal(sp_raw_init(c), 0);
	rc = sp_raw_open(c, broker.port, SP_PREAMBLE_PATTERN_IK, broker.server_pub);
	if (rc)
		fprintf(stderr, "[it] handshake failed: %s\n", strerror(-rc));
	assert_int_equal(rc, 0);
}

/* Reads up to and including Drained; returns the Delivers before it, their
 * seqs in seqs (cap entries). */
static int backlog(struct sp_raw *c, uint64_t *seqs, int cap)
{
	struct sp_raw_frame f;
	int n = 0;

	for (;;) {
		assert_int_equal(sp_raw_recv_frame(c, &f, WAIT_MS), 0);
		if (f.type == SP_FRAME_DRAINED)
			return n;
		assert_int_equal(f.type, SP_FRAME_DELIVER);
		if (n < cap)
			seqs[n] = f.seq;
		n++;
	}
}

/* A plaintext holding one durable Send of a 32-byte body to `to`. */
static size_t put_send(uint8_t *buf, size_t cap, const uint8_t *to, uint64_t id)
{
	uint8_t body[32];
	size_t off = 0;

	memset(body, (int)(id & 0xff), sizeof(body));
	assert_int_equal(sp_raw_put_send(buf, cap, &off, to, SP_KEY_LEN, id, 0, body, sizeof(body)),
			 0);
	return off;
}

/* The honest pair still works: hx -> hy and hy -> hx, each delivered once. */
static void honest_exchange(const char *after)
{
	struct sp_raw *from[2] = { &hx, &hy }, *to[2] = { &hy, &hx };

	for (int k = 0; k < 2; k++) {
		uint8_t body[48];
		uint64_t id = next_id++;
		uint32_t st = 0;
		struct sp_raw_frame f;

		memset(body, 0x33, sizeof(body));
		assert_int_equal(sp_raw_send_envelope(from[k], to[k]->s_pub, id, body, sizeof(body)),
				 0);
		if (sp_raw_expect_result(from[k], id, &st, WAIT_MS) != 0 || st != SP_STATUS_ACCEPTED)
			fprintf(stderr, "[it] honest pair broken after %s\n", after);
		assert_int_equal(st, SP_STATUS_ACCEPTED);
		assert_int_equal(sp_raw_wait_frame(to[k], SP_FRAME_DELIVER, &f, WAIT_MS), 0);
		assert_int_equal(f.body_len, sizeof(body));
	}
	assert_true(sp_it_broker_alive(&broker));
}

/* The connection ends with no reply to the attack (what an authentication
 * failure gets: nothing the broker could say would be trustworthy). The
 * only frame allowed before the close is the Drained the connection's
 * proof earned, if the test had not read it yet. */
static void expect_silent_close(struct sp_raw *c, const char *what)
{
	for (;;) {
		struct sp_raw_frame f;
		int rc = sp_raw_recv_frame(c, &f, WAIT_MS);

		if (rc == -ENOTCONN || rc == -ECONNRESET)
			return;
		if (rc != 0 || f.type != SP_FRAME_DRAINED)
			fprintf(stderr, "[it] %s: rc %d, frame type %d before the close\n", what, rc,
				rc ? 0 : (int)f.type);
		assert_int_equal(rc, 0);
		assert_int_equal(f.type, SP_FRAME_DRAINED);
	}
}

static int group_setup(void **state)
{
	const char *args[] = { "--log-level", "info", NULL };

	(void)state;
	if (sodium_init() < 0 || sp_it_broker_start(&broker, NULL, args) != 0)
		return -1;
	hx.fd = hy.fd = -1;
	if (sp_raw_init(&hx) || sp_raw_init(&hy) ||
	    sp_raw_open(&hx, broker.port, SP_PREAMBLE_PATTERN_IK, broker.server_pub) ||
	    sp_raw_open(&hy, broker.port, SP_PREAMBLE_PATTERN_IK, broker.server_pub))
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	int st;

	(void)state;
	sp_raw_close(&hx);
	sp_raw_close(&hy);
	st = sp_it_broker_stop(&broker);
	if (st != 0)
		sp_it_log_tail(&broker, 40);
	sp_it_rmrf(broker.data_dir);
	return st == 0 ? 0 : -1;
}

/*
 * A transport message sent twice on its connection: the first is processed
 * (its Send accepted and delivered once), the copy fails to decrypt (its
 * nonce is spent) and the connection is closed without a reply. The victim
 * gets the envelope exactly once, also on its next connection after acking.
 */
static void test_replayed_message(void **state)
{
	static uint8_t plain[256], wire[256 + SP_TAG_LEN];
	struct sp_raw a, v;
	struct sp_raw_frame f;
	uint64_t id = next_id++, seqs[4];
	size_t plen, wlen;
	uint32_t st = 0;
	int before = sp_it_log_count(&broker, "reason=decrypt_failed");

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&v, 0, sizeof(v));
	a.fd = v.fd = -1;
	open_ik(&v);
	assert_int_equal(backlog(&v, seqs, 4), 0);
	open_ik(&a);
	plen = put_send(plain, sizeof(plain), v.s_pub, id);
	assert_int_equal(sp_raw_seal(&a, plain, plen, wire, sizeof(wire), &wlen), 0);
	assert_int_equal(sp_raw_send_msg(&a, wire, wlen), 0);
	assert_int_equal(sp_raw_expect_result(&a, id, &st, WAIT_MS), 0);
	assert_int_equal(st, SP_STATUS_ACCEPTED);
	assert_int_equal(sp_raw_wait_frame(&v, SP_FRAME_DELIVER, &f, WAIT_MS), 0);
	seqs[0] = f.seq;
	/* The very same bytes again. */
	assert_int_equal(sp_raw_send_msg(&a, wire, wlen), 0);
	expect_silent_close(&a, "replayed transport message");
	sp_raw_close(&a);
	/* Nothing more for the victim: a Ping round trip on its connection
	 * comes back with no Deliver before it. */
	{
		uint8_t buf[64];
		size_t off = 0;

		assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, 5, NULL, 0),
				 0);
		assert_int_equal(sp_raw_send_plain(&v, buf, off), 0);
		assert_int_equal(sp_raw_recv_frame(&v, &f, WAIT_MS), 0);
		assert_int_equal(f.type, SP_FRAME_PONG);
	}
	/* The stored copy is the only one: on the next connection, one Deliver. */
	sp_raw_disconnect(&v);
	open_ik(&v);
	assert_int_equal(backlog(&v, seqs + 1, 3), 1);
	assert_int_equal(seqs[1], seqs[0]);
	sp_raw_close(&v);
	assert_int_equal(sp_it_log_count(&broker, "reason=decrypt_failed"), before + 1);
	honest_exchange("a replayed transport message");
}

/*
 * Two transport messages sealed in order and sent in the other order: the
 * second (nonce 1 where 0 is expected) fails, the connection closes with no
 * reply, and neither Send was processed: the victim gets nothing.
 */
static void test_reordered_messages(void **state)
{
	static uint8_t p1[256], p2[256], w1[256 + SP_TAG_LEN], w2[256 + SP_TAG_LEN];
	struct sp_raw a, v;
	uint64_t seqs[4];
	size_t l1, l2, wl1, wl2;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&v, 0, sizeof(v));
	a.fd = v.fd = -1;
	assert_int_equal(sp_raw_init(&v), 0);
	open_ik(&a);
	l1 = put_send(p1, sizeof(p1), v.s_pub, next_id++);
	l2 = put_send(p2, sizeof(p2), v.s_pub, next_id++);
	assert_int_equal(sp_raw_seal(&a, p1, l1, w1, sizeof(w1), &wl1), 0);
	assert_int_equal(sp_raw_seal(&a, p2, l2, w2, sizeof(w2), &wl2), 0);
	assert_int_equal(sp_raw_send_msg(&a, w2, wl2), 0);
	(void)sp_raw_send_msg(&a, w1, wl1); /* may already be closed */
	expect_silent_close(&a, "reordered transport messages");
	sp_raw_close(&a);
	/* The victim's mailbox is empty. */
	open_ik(&v);
	assert_int_equal(backlog(&v, seqs, 4), 0);
	sp_raw_close(&v);
	honest_exchange("reordered transport messages");
}

/*
 * A transport message captured on one connection and sent on a new one of
 * the same device (fresh handshake, fresh keys): it does not decrypt there;
 * closed silently, and the device's mailbox holds the original only.
 */
static void test_replay_across_connections(void **state)
{
	static uint8_t plain[256], wire[256 + SP_TAG_LEN];
	struct sp_raw a, v;
	uint64_t id = next_id++, seqs[4];
	size_t plen, wlen;
	uint32_t st = 0;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&v, 0, sizeof(v));
	a.fd = v.fd = -1;
	assert_int_equal(sp_raw_init(&v), 0);
	open_ik(&a);
	plen = put_send(plain, sizeof(plain), v.s_pub, id);
	assert_int_equal(sp_raw_seal(&a, plain, plen, wire, sizeof(wire), &wlen), 0);
	assert_int_equal(sp_raw_send_msg(&a, wire, wlen), 0);
	assert_int_equal(sp_raw_expect_result(&a, id, &st, WAIT_MS), 0);
	assert_int_equal(st, SP_STATUS_ACCEPTED);
	sp_raw_disconnect(&a);
	/* Same key, new connection; its proof went out, then the old bytes. */
	open_ik(&a);
	assert_int_equal(sp_raw_send_msg(&a, wire, wlen), 0);
	expect_silent_close(&a, "transport message from an earlier connection");
	sp_raw_close(&a);
	open_ik(&v);
	assert_int_equal(backlog(&v, seqs, 4), 1);
	sp_raw_close(&v);
	honest_exchange("a replay across connections");
}

/*
 * Frames that lie about their size inside one authenticated message: the
 * frames before the bad one are processed and answered, then GoAway
 * PROTOCOL and the close; nothing of the bad frame reaches anyone.
 */
static void test_truncated_and_oversized_frames(void **state)
{
	static uint8_t buf[SP_TRANSPORT_PLAINTEXT_MAX];
	static const struct {
		uint16_t hlen, blen;
		const char *what;
	} lies[] = {
		{ 40, 1000, "body_len beyond the message" },
		{ 900, 0, "header_len beyond the message" },
		{ 2000, 0, "header_len above 1024" },
		{ 0, 0, "header_len 0" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
		struct sp_raw a, v;
		struct sp_raw_frame f;
		uint64_t id = next_id++, seqs[4];
		uint32_t code = 0;
		size_t off;
		int skipped = 0, got_result = 0;

		memset(&a, 0, sizeof(a));
		memset(&v, 0, sizeof(v));
		a.fd = v.fd = -1;
		assert_int_equal(sp_raw_init(&v), 0);
		open_ik(&a);
		off = put_send(buf, sizeof(buf), v.s_pub, id);
		/* The lying frame: its prefix, then 20 bytes of a real header. */
		buf[off++] = (uint8_t)(lies[i].hlen >> 8);
		buf[off++] = (uint8_t)lies[i].hlen;
		buf[off++] = (uint8_t)(lies[i].blen >> 8);
		buf[off++] = (uint8_t)lies[i].blen;
		memset(buf + off, 0x08, 20);
		off += 20;
		assert_int_equal(sp_raw_send_plain(&a, buf, off), 0);
		/* The good Send's result, then the GoAway. */
		for (;;) {
			int rc = sp_raw_recv_frame(&a, &f, WAIT_MS);

			assert_int_equal(rc, 0);
			if (f.type == SP_FRAME_SEND_RESULT) {
				assert_int_equal(f.client_id, id);
				assert_int_equal(f.status, SP_STATUS_ACCEPTED);
				got_result = 1;
				continue;
			}
			if (f.type == SP_FRAME_DRAINED)
				continue;
			break;
		}
		if (!got_result)
			fprintf(stderr, "[it] %s: no SendResult before the GoAway\n", lies[i].what);
		assert_int_equal(got_result, 1);
		assert_int_equal(f.type, SP_FRAME_GOAWAY);
		code = f.status;
		assert_int_equal(code, SP_STATUS_GOAWAY_PROTOCOL);
		assert_int_equal(sp_raw_wait_closed(&a, WAIT_MS, NULL), 0);
		(void)skipped;
		sp_raw_close(&a);
		open_ik(&v);
		assert_int_equal(backlog(&v, seqs, 4), 1);
		sp_raw_close(&v);
	}
	honest_exchange("truncated and oversized frames");
}

/*
 * Noise messages cut short: a length prefix announcing more than is sent,
 * then the sender half-closes (the broker closes, having processed none of
 * it); and a transport message shortened by one byte with its prefix to
 * match (authentication fails: silent close).
 */
static void test_truncated_noise_messages(void **state)
{
	static uint8_t plain[256], wire[256 + SP_TAG_LEN];
	struct sp_raw a, v;
	uint64_t seqs[4];
	size_t plen, wlen;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&v, 0, sizeof(v));
	a.fd = v.fd = -1;
	assert_int_equal(sp_raw_init(&v), 0);

	/* 1: half a message, then EOF. */
	open_ik(&a);
	plen = put_send(plain, sizeof(plain), v.s_pub, next_id++);
	assert_int_equal(sp_raw_seal(&a, plain, plen, wire, sizeof(wire), &wlen), 0);
	{
		uint8_t pfx[2] = { (uint8_t)(wlen >> 8), (uint8_t)wlen };

		assert_int_equal(sp_raw_send_bytes(&a, pfx, 2), 0);
		assert_int_equal(sp_raw_send_bytes(&a, wire, wlen / 2), 0);
	}
	assert_int_equal(shutdown(a.fd, SHUT_WR), 0);
	expect_silent_close(&a, "half a transport message, then EOF");
	sp_raw_close(&a);

	/* 2: one byte short, prefix adjusted. */
	open_ik(&a);
	plen = put_send(plain, sizeof(plain), v.s_pub, next_id++);
	assert_int_equal(sp_raw_seal(&a, plain, plen, wire, sizeof(wire), &wlen), 0);
	assert_int_equal(sp_raw_send_msg(&a, wire, wlen - 1), 0);
	expect_silent_close(&a, "a transport message one byte short");
	sp_raw_close(&a);

	/* 3: a prefix of 65535 with one byte behind it, then EOF. */
	open_ik(&a);
	{
		uint8_t b3[3] = { 0xff, 0xff, 0x00 };

		assert_int_equal(sp_raw_send_bytes(&a, b3, sizeof(b3)), 0);
	}
	assert_int_equal(shutdown(a.fd, SHUT_WR), 0);
	expect_silent_close(&a, "a 65535-byte prefix with one byte, then EOF");
	sp_raw_close(&a);

	open_ik(&v);
	assert_int_equal(backlog(&v, seqs, 4), 0);
	sp_raw_close(&v);
	honest_exchange("truncated Noise messages");
}

/*
 * Acks for another device's sequences: the victim has three stored
 * envelopes and is connected (so they have been delivered, not acked); an
 * attacker that knows their seqs (and tries every seq around them, and 0)
 * acks them all. The attacker's connection is fine (an unknown seq is
 * ignored, §6.3), and the victim's next connection still gets all three.
 */
static void test_foreign_acks(void **state)
{
	static uint8_t buf[SP_TRANSPORT_PLAINTEXT_MAX];
	struct sp_raw a, v, z;
	uint64_t seqs[8], again[8];
	int n;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&v, 0, sizeof(v));
	memset(&z, 0, sizeof(z));
	a.fd = v.fd = z.fd = -1;
	assert_int_equal(sp_raw_init(&v), 0);
	open_ik(&a);
	for (int i = 0; i < 3; i++) {
		uint64_t id = next_id++;
		uint32_t st = 0;
		uint8_t body[40];

		memset(body, i, sizeof(body));
		assert_int_equal(sp_raw_send_envelope(&a, v.s_pub, id, body, sizeof(body)), 0);
		assert_int_equal(sp_raw_expect_result(&a, id, &st, WAIT_MS), 0);
		assert_int_equal(st, SP_STATUS_ACCEPTED);
	}
	open_ik(&v);
	n = backlog(&v, seqs, 8);
	assert_int_equal(n, 3);

	/* z acks v's seqs, each +-8 around them, and 0, in 64-seq frames. */
	open_ik(&z);
	{
		uint64_t list[64 * 2];
		size_t cnt = 0, off = 0;

		list[cnt++] = 0;
		for (int i = 0; i < 3; i++)
			for (int d = -8; d <= 8; d++)
				list[cnt++] = seqs[i] + (uint64_t)(int64_t)d;
		for (size_t at = 0; at < cnt; at += SP_ACK_SEQS_MAX) {
			uint8_t hdr[1024];
			size_t h = 0, inner = 0, k;
			uint8_t tmp[SP_ACK_SEQS_MAX * 10];

			for (k = at; k < cnt && k < at + SP_ACK_SEQS_MAX; k++) {
				uint64_t x = list[k];

				while (x >= 0x80) {
					tmp[inner++] = (uint8_t)(x | 0x80);
					x >>= 7;
				}
				tmp[inner++] = (uint8_t)x;
			}
			/* FrameHeader.ack { seqs (packed) }, lengths as 2-byte varints */
			hdr[h++] = 0x22;
			hdr[h++] = (uint8_t)(((inner + 3) & 0x7f) | 0x80);
			hdr[h++] = (uint8_t)((inner + 3) >> 7);
			hdr[h++] = 0x0a;
			hdr[h++] = (uint8_t)((inner & 0x7f) | 0x80);
			hdr[h++] = (uint8_t)(inner >> 7);
			memcpy(hdr + h, tmp, inner);
			h += inner;
			assert_int_equal(sp_raw_put_frame(buf, sizeof(buf), &off, hdr, h, NULL, 0), 0);
		}
		assert_int_equal(sp_raw_send_plain(&z, buf, off), 0);
	}
	/* z is still connected and in sync (the Ping after its Acks). */
	{
		struct sp_raw_frame f;
		size_t off = 0;

		assert_int_equal(sp_raw_put_simple(buf, 64, &off, SP_FRAME_PING, 9, NULL, 0), 0);
		assert_int_equal(sp_raw_send_plain(&z, buf, off), 0);
		assert_int_equal(sp_raw_wait_frame(&z, SP_FRAME_PONG, &f, WAIT_MS), 0);
		assert_int_equal(f.id, 9);
	}
	sp_raw_close(&z);
	/* v reconnects: all three are still there, same seqs. */
	sp_raw_disconnect(&v);
	open_ik(&v);
	assert_int_equal(backlog(&v, again, 8), 3);
	assert_memory_equal(again, seqs, 3 * sizeof(uint64_t));
	sp_raw_close(&v);
	sp_raw_close(&a);
	honest_exchange("foreign acks");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replayed_message),
		cmocka_unit_test(test_reordered_messages),
		cmocka_unit_test(test_replay_across_connections),
		cmocka_unit_test(test_truncated_and_oversized_frames),
		cmocka_unit_test(test_truncated_noise_messages),
		cmocka_unit_test(test_foreign_acks),
	};

	return cmocka_run_group_tests_name("hostile transport", tests, group_setup,
					   group_teardown);
}
