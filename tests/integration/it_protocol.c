/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_protocol.c: the statements of docs/PROTOCOL.md that a client in another
 * language relies on and that the broker once did differently, each checked
 * against a real sealpostd with the raw protocol client (support_raw.h):
 *
 *   5.1  rekeying every N transport messages per direction (a broker and a
 *        raw client, and a broker and libsealpost, both at a low test N);
 *        a peer that does not rekey is cut at the first message after it
 *   6.4  a Pong comes after the SendResults of the Sends before its Ping
 *   6.3  online-only envelopes may arrive before Drained, durable ones never
 *   6.1  reserved flag bits are ignored; an Ack of exactly 64 seqs is fine
 *   6.2  the first seq of a device on a new broker is 1, after the E-th
 *        restart E * 2^32 (or, for a device with no mailbox record, above
 *        every seq assigned in that epoch)
 *   8    a recipient key that is not canonical is refused (all ff, bit 255
 *        set on a real key), and so is a client announcing such a static key
 *   4    a client refuses a ServerHello with another protocol_version
 *        (libsealpost against a responder that announces version 2)
 *
 * Every wait is bounded (WAIT_MS); these are liveness bounds, never timing
 * assertions.
 */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sealpost.h"
#include "sp_frame.h"
#include "sp_limits.h"
#include "sp_noise.h"
#include "sp_session.h"
#include "support.h"
#include "support_raw.h"

enum {
	WAIT_MS = 10000,
	TEST_REKEY = 5,         /* --test-rekey-messages of the rekey broker */
};

static uint64_t next_id = 1;

static void open_ik(struct sp_raw *c, const struct sp_it_broker *b)
{
	int rc;

	assert_int_equal(sp_raw_init(c), 0);
	rc = sp_raw_open(c, b->port, SP_PREAMBLE_PATTERN_IK, b->server_pub);
	if (rc)
		fprintf(stderr, "[it] handshake failed: %s\n", strerror(-rc));
	assert_int_equal(rc, 0);
}

static void start(struct sp_it_broker *b, const char *dir, const char *const *args)
{
	int rc = sp_it_broker_start(b, dir, args);

	if (rc)
		fprintf(stderr, "[it] could not start a broker: %s\n", strerror(-rc));
	assert_int_equal(rc, 0);
}

static void stop(struct sp_it_broker *b, bool keep_dir)
{
	int st = sp_it_broker_stop(b);

	if (st != 0)
		sp_it_log_tail(b, 30);
	assert_int_equal(st, 0);
	if (!keep_dir)
		sp_it_rmrf(b->data_dir);
}

/* One frame, failing the test on anything but a frame. */
static void recv_frame(struct sp_raw *c, struct sp_raw_frame *f)
{
	int rc = sp_raw_recv_frame(c, f, WAIT_MS);

	if (rc)
		fprintf(stderr, "[it] no frame: %s\n", strerror(-rc));
	assert_int_equal(rc, 0);
}

/* Reads until Drained; returns its count. Deliveries before it are counted
 * in *delivers (may be NULL). */
static uint64_t until_drained(struct sp_raw *c, int *delivers)
{
	struct sp_raw_frame f;

	for (;;) {
		recv_frame(c, &f);
		if (f.type == SP_FRAME_DRAINED)
			return f.count;
		assert_int_equal(f.type, SP_FRAME_DELIVER);
		if (delivers)
			(*delivers)++;
	}
}

/* A durable send of len bytes to `to`, and its status. */
static uint32_t send_one(struct sp_raw *c, const uint8_t *to, size_t len, uint32_t flags,
			 uint64_t *seq)
{
	static uint8_t buf[SP_TRANSPORT_PLAINTEXT_MAX], body[SP_BODY_MAX];
	uint64_t id = next_id++;
	struct sp_raw_frame f;
	size_t off = 0;

	memset(body, (int)(id & 0xff), len);
	assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, to, SP_KEY_LEN, id, flags, body,
					 len), 0);
	assert_int_equal(sp_raw_send_plain(c, buf, off), 0);
	assert_int_equal(sp_raw_wait_frame(c, SP_FRAME_SEND_RESULT, &f, WAIT_MS), 0);
	assert_int_equal(f.client_id, id);
	if (seq)
		*seq = f.seq;
	return f.status;
}

/* Ping -> Pong on c: the connection is alive and in sync. */
static void ping_pong(struct sp_raw *c)
{
	uint8_t buf[64];
	struct sp_raw_frame f;
	uint64_t id = next_id++;
	size_t off = 0;

	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, id, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(c, buf, off), 0);
	assert_int_equal(sp_raw_wait_frame(c, SP_FRAME_PONG, &f, WAIT_MS), 0);
	assert_int_equal(f.id, id);
}

/* --- 5.1 rekeying ------------------------------------------------------------ */

/*
 * A broker at --test-rekey-messages 5 and a raw client rekeying every 5 as
 * well: 40 sends (each one transport message up, a SendResult and a Deliver
 * down) cross the boundary 8 times each way and all arrive intact. The
 * same client without rekeying is cut (silently) at its 6th message.
 */
static void test_rekey_raw(void **state)
{
	const char *args[] = { "--test-rekey-messages", "5", "--log-level", "info", NULL };
	struct sp_it_broker b;
	struct sp_raw a, r, n;
	uint8_t k0[SP_KEY_LEN];

	(void)state;
	start(&b, NULL, args);
	open_ik(&r, &b);
	sp_noise_transport_set_rekey(&r.t, TEST_REKEY);
	until_drained(&r, NULL);
	open_ik(&a, &b);
	sp_noise_transport_set_rekey(&a.t, TEST_REKEY);
	memcpy(k0, a.t.tx.k, SP_KEY_LEN);
	for (int i = 0; i < 40; i++) {
		struct sp_raw_frame f;
		uint64_t seq = 0;

		assert_int_equal(send_one(&a, r.s_pub, 100 + (size_t)i, 0, &seq), SP_STATUS_ACCEPTED);
		assert_int_equal(sp_raw_wait_frame(&r, SP_FRAME_DELIVER, &f, WAIT_MS), 0);
		assert_int_equal(f.seq, seq);
		assert_int_equal(f.body_len, 100 + (size_t)i);
	}
	/* The proof, the Drained reads and 40 sends: well past 5 per key. */
	assert_true(a.t.tx.n > 40);
	assert_memory_not_equal(a.t.tx.k, k0, SP_KEY_LEN);
	ping_pong(&a);
	ping_pong(&r);

	/* No rekey on the client: messages 1..5 (proof included) are read,
	 * the 6th is under a key the broker no longer holds. */
	open_ik(&n, &b);
	for (int i = 0; i < 4; i++)
		ping_pong(&n);
	assert_int_equal(n.t.tx.n, 5);
	{
		uint8_t buf[64];
		size_t off = 0;

		assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, 1, NULL, 0),
				 0);
		assert_int_equal(sp_raw_send_plain(&n, buf, off), 0);
	}
	assert_int_equal(sp_raw_wait_closed(&n, WAIT_MS, NULL), 0);
	/* The others did not notice. */
	ping_pong(&a);
	ping_pong(&r);
	sp_raw_close(&n);
	sp_raw_close(&a);
	sp_raw_close(&r);
	assert_true(sp_it_log_count(&b, "reason=decrypt_failed") >= 1);
	stop(&b, false);
}

/*
 * libsealpost and the broker, both at 5 (SEALPOST_TEST_REKEY_MESSAGES and
 * --test-rekey-messages): 30 sealed messages from one client to another
 * cross the boundary many times; every one opens with the right sender.
 */
static void test_rekey_libsealpost(void **state)
{
	const char *args[] = { "--test-rekey-messages", "5", "--log-level", "info", NULL };
	struct sealpost_client *ca = NULL, *cb = NULL;
	struct sealpost_key *ka = NULL, *kb = NULL;
	uint8_t pa[SEALPOST_KEY_LEN], pb[SEALPOST_KEY_LEN];
	struct sp_it_broker b;
	int got = 0;

	(void)state;
	start(&b, NULL, args);
	assert_int_equal(setenv("SEALPOST_TEST_REKEY_MESSAGES", "5", 1), 0);
	assert_int_equal(sealpost_key_generate(&ka), 0);
	assert_int_equal(sealpost_key_generate(&kb), 0);
	sealpost_key_public(ka, pa);
	sealpost_key_public(kb, pb);
	assert_int_equal(sealpost_client_connect(&ca, b.addr, ka, b.server_pub, WAIT_MS), 0);
	assert_int_equal(sealpost_client_connect(&cb, b.addr, kb, b.server_pub, WAIT_MS), 0);
	for (int i = 0; i < 30; i++) {
		char msg[32];
		int st = 0;

		snprintf(msg, sizeof(msg), "rekeyed %d", i);
		assert_int_equal(sealpost_client_send_wait(ca, pb, msg, strlen(msg), WAIT_MS, &st,
							   NULL), 0);
		assert_int_equal(st, SEALPOST_STATUS_ACCEPTED);
	}
	while (got < 30) {
		struct sealpost_event ev;
		char want[32];

		assert_int_equal(sealpost_client_next_event(cb, &ev, WAIT_MS), 1);
		if (ev.type == SEALPOST_EVENT_DRAINED)
			continue;
		assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
		snprintf(want, sizeof(want), "rekeyed %d", got);
		assert_int_equal(ev.len, strlen(want));
		assert_memory_equal(ev.data, want, ev.len);
		assert_memory_equal(ev.sender, pa, SEALPOST_KEY_LEN);
		got++;
	}
	assert_int_equal(sealpost_client_sync(cb, WAIT_MS), 0);
	assert_int_equal(sealpost_client_sync(ca, WAIT_MS), 0);
	sealpost_client_close(ca);
	sealpost_client_close(cb);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
	unsetenv("SEALPOST_TEST_REKEY_MESSAGES");
	assert_int_equal(sp_it_log_count(&b, "reason=decrypt_failed"), 0);
	stop(&b, false);
}

/* --- 6.4 a Pong does not overtake results ---------------------------------------- */

/*
 * One transport message: durable Sends (whose results wait for the commit),
 * online-only Sends, a Ping, more Sends, a second Ping; then a second
 * transport message: one online-only Send (answered without a commit) and
 * a third Ping. What comes back: the results of the Sends before the first
 * Ping, in order, then its Pong, then the rest, then the second Pong, then
 * the last result and Pong. With --fsync always the durable results wait
 * for the WAL sync on the store's sync thread while the loop goes on, so
 * the second message may be read meanwhile: nothing of it may overtake.
 */
static void pong_after_results(const char *fsync)
{
	const char *args[] = { "--log-level", "info", "--fsync", fsync, NULL };
	static uint8_t buf[SP_TRANSPORT_PLAINTEXT_MAX];
	uint8_t offline_pub[SP_KEY_LEN], offline_priv[SP_KEY_LEN], body[200];
	struct sp_it_broker b;
	struct sp_raw a;
	size_t off = 0;
	uint64_t first = next_id;

	start(&b, NULL, args);
	open_ik(&a, &b);
	until_drained(&a, NULL);
	sp_noise_keypair(offline_pub, offline_priv);
	memset(body, 0x42, sizeof(body));
	for (int i = 0; i < 10; i++)
		assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, offline_pub, SP_KEY_LEN,
						 next_id++, i % 3 == 2 ? SP_SEND_ONLINE_ONLY : 0, body,
						 sizeof(body)), 0);
	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, 1001, NULL, 0), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, offline_pub, SP_KEY_LEN,
						 next_id++, 0, body, sizeof(body)), 0);
	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, 1002, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(&a, buf, off), 0);
	off = 0;
	assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, offline_pub, SP_KEY_LEN, next_id++,
					 SP_SEND_ONLINE_ONLY, body, sizeof(body)), 0);
	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, 1003, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(&a, buf, off), 0);
	{
		struct sp_raw_frame f;
		int results = 0;

		while (results < 13) {
			recv_frame(&a, &f);
			if (f.type == SP_FRAME_PONG) {
				if (f.id == 1001 && results != 10)
					fprintf(stderr, "[it] Pong 1001 after %d results, not 10\n",
						results);
				assert_int_equal(f.id, 1001);
				assert_int_equal(results, 10);
				continue;
			}
			assert_int_equal(f.type, SP_FRAME_SEND_RESULT);
			assert_int_equal(f.client_id, first + (uint64_t)results);
			assert_int_equal(f.status, results < 10 && results % 3 == 2
					 ? SP_STATUS_ERR_OFFLINE : SP_STATUS_ACCEPTED);
			results++;
		}
		recv_frame(&a, &f);
		assert_int_equal(f.type, SP_FRAME_PONG);
		assert_int_equal(f.id, 1002);
		recv_frame(&a, &f);
		assert_int_equal(f.type, SP_FRAME_SEND_RESULT);
		assert_int_equal(f.client_id, first + 13);
		assert_int_equal(f.status, SP_STATUS_ERR_OFFLINE);
		recv_frame(&a, &f);
		assert_int_equal(f.type, SP_FRAME_PONG);
		assert_int_equal(f.id, 1003);
		/* Rounds of a durable Send and a Ping in two transport messages:
		 * the Ping is often read while the Send's commit (or sync) is
		 * still pending; its Pong must still come second. */
		for (int i = 0; i < 20; i++) {
			uint64_t id = next_id++;

			off = 0;
			assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, offline_pub,
							 SP_KEY_LEN, id, 0, body, sizeof(body)), 0);
			assert_int_equal(sp_raw_send_plain(&a, buf, off), 0);
			off = 0;
			assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING,
							   2000 + (uint64_t)i, NULL, 0), 0);
			assert_int_equal(sp_raw_send_plain(&a, buf, off), 0);
			recv_frame(&a, &f);
			assert_int_equal(f.type, SP_FRAME_SEND_RESULT);
			assert_int_equal(f.client_id, id);
			assert_int_equal(f.status, SP_STATUS_ACCEPTED);
			recv_frame(&a, &f);
			assert_int_equal(f.type, SP_FRAME_PONG);
			assert_int_equal(f.id, 2000 + (uint64_t)i);
		}
	}
	sp_raw_close(&a);
	stop(&b, false);
}

static void test_pong_after_results(void **state)
{
	(void)state;
	pong_after_results("batch");
}

static void test_pong_after_results_fsync_always(void **state)
{
	(void)state;
	pong_after_results("always");
}

/* --- 6.3 online-only and Drained ---------------------------------------------------- */

/*
 * r has a backlog far larger than the socket buffers and does not read, so
 * the broker is still sending it when a sends online-only envelopes to r:
 * they are DELIVERED and reach r before its Drained, between backlog
 * Delivers; durable envelopes sent meanwhile come after the backlog's, in
 * seq order, and the Drained count is the backlog's.
 */
/* Devices routed in all, from sealpost_shard_devices_online{shard} summed;
 * -1 if the endpoint does not answer. */
static long routed(const struct sp_it_broker *b)
{
	static const char fam[] = "sealpost_shard_devices_online{shard=\"";
	char *body = NULL, *p;
	long n = -1;

	if (sp_it_http_get(b->metrics_port, "/metrics", &body) == 200 && body)
		for (n = 0, p = body; (p = strstr(p, fam)); p++)
			n += strtol(strchr(p, '}') + 1, NULL, 10);
	free(body);
	return n;
}

/* Until `want` devices are routed: with shards, a device's proof is read
 * on its home shard, so its handshake's end on the client says nothing of
 * when another connection's envelope finds it online. */
static void wait_routed(const struct sp_it_broker *b, long want)
{
	for (int w = 0; w < 10000 && routed(b) != want; w += 10)
		usleep(10 * 1000);
	assert_int_equal(routed(b), want);
}

static void test_online_only_before_drained(void **state)
{
	/* The reader keeps r's queue below half of --sendq-max plus one
	 * envelope, so online-only sends are not refused as busy. */
	const char *args[] = { "--sendq-max", "262144", "--fsync", "never", "--log-level", "info",
			       "--mailbox-sender-share", "100", "--store-min-free", "0", NULL };
	enum { BACKLOG = 400, BODY = 60000 };
	struct sp_it_broker b;
	struct sp_raw a, r;
	uint64_t last_seq = 0, seq;
	struct sp_raw_frame f;
	int online_before = 0, durable_seen = 0, online_seen = 0;

	(void)state;
	start(&b, NULL, args);
	open_ik(&a, &b);
	assert_int_equal(sp_raw_init(&r), 0);
	for (int i = 0; i < BACKLOG; i++) {
		assert_int_equal(send_one(&a, r.s_pub, BODY, 0, &seq), SP_STATUS_ACCEPTED);
		last_seq = seq;
	}
	/* r connects and reads nothing yet: 24 MB wait for it, more than
	 * loopback socket buffers hold. */
	assert_int_equal(sp_raw_open(&r, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	wait_routed(&b, 2);
	for (int i = 0; i < 5; i++)
		assert_int_equal(send_one(&a, r.s_pub, 10, SP_SEND_ONLINE_ONLY, NULL),
				 SP_STATUS_DELIVERED);
	assert_int_equal(send_one(&a, r.s_pub, 10, 0, &seq), SP_STATUS_ACCEPTED);
	assert_true(seq > last_seq);
	for (;;) {
		recv_frame(&r, &f);
		if (f.type == SP_FRAME_DRAINED)
			break;
		assert_int_equal(f.type, SP_FRAME_DELIVER);
		if (f.seq == 0) {
			online_before++;
			assert_int_equal(f.body_len, 10);
		} else {
			durable_seen++;
		}
	}
	/* The backlog, and the durable one sent while it was read (stored,
	 * so it came through the backlog reader, in order). */
	assert_int_equal(f.count, BACKLOG + 1);
	assert_int_equal(durable_seen, BACKLOG + 1);
	if (online_before == 0)
		fprintf(stderr, "[it] no online-only envelope before Drained\n");
	assert_int_equal(online_before, 5);
	online_seen = online_before;
	/* After Drained: live. */
	assert_int_equal(send_one(&a, r.s_pub, 10, SP_SEND_ONLINE_ONLY, NULL), SP_STATUS_DELIVERED);
	assert_int_equal(sp_raw_wait_frame(&r, SP_FRAME_DELIVER, &f, WAIT_MS), 0);
	assert_int_equal(f.seq, 0);
	online_seen++;
	assert_int_equal(online_seen, 6);
	sp_raw_close(&a);
	sp_raw_close(&r);
	stop(&b, false);
}

/* --- 6.1 flag bits, 6.3 Ack of 64 ------------------------------------------------------ */

static void test_flag_bits_and_ack_limit(void **state)
{
	const char *args[] = { "--log-level", "info", NULL };
	static uint8_t buf[SP_TRANSPORT_PLAINTEXT_MAX];
	struct sp_it_broker b;
	struct sp_raw a, r;
	uint64_t seq = 0;
	struct sp_raw_frame f;
	int delivers = 0;

	(void)state;
	start(&b, NULL, args);
	open_ik(&a, &b);
	assert_int_equal(sp_raw_init(&r), 0);
	/* Reserved bits set, bit 0 clear: an ordinary durable send. */
	assert_int_equal(send_one(&a, r.s_pub, 20, 0xfffffffeu, &seq), SP_STATUS_ACCEPTED);
	assert_true(seq > 0);
	/* All bits: online-only, and r is offline. */
	assert_int_equal(send_one(&a, r.s_pub, 20, 0xffffffffu, NULL), SP_STATUS_ERR_OFFLINE);
	assert_int_equal(sp_raw_open(&r, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	assert_int_equal(until_drained(&r, &delivers), 1);
	assert_int_equal(delivers, 1);

	/* An Ack of exactly 64 seqs (the delivered one among 63 unknown): the
	 * connection goes on, and the envelope is gone on the next connection. */
	{
		uint8_t hdr[1024];
		size_t h = 0, n = 0, off = 0;

		hdr[h++] = 0x22; /* FrameHeader.ack */
		hdr[h++] = 0;    /* length, below */
		hdr[h++] = 0x0a; /* Ack.seqs, packed */
		hdr[h++] = 0;
		for (uint64_t i = 0; i < 63; i++) {
			hdr[h++] = (uint8_t)(64 + i); /* seqs nobody has */
			n++;
		}
		{
			uint64_t v = seq;

			while (v >= 0x80) {
				hdr[h++] = (uint8_t)(v | 0x80);
				v >>= 7;
				n++;
			}
			hdr[h++] = (uint8_t)v;
			n++;
		}
		hdr[3] = (uint8_t)n;    /* one-byte lengths: n <= 63 + 10 */
		assert_true(n + 2 < 128);
		hdr[1] = (uint8_t)(n + 2);
		assert_int_equal(sp_raw_put_frame(buf, sizeof(buf), &off, hdr, h, NULL, 0), 0);
		assert_int_equal(sp_raw_send_plain(&r, buf, off), 0);
		ping_pong(&r);
	}
	sp_raw_disconnect(&r);
	assert_int_equal(sp_raw_open(&r, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	delivers = 0;
	assert_int_equal(until_drained(&r, &delivers), 0);
	assert_int_equal(delivers, 0);
	(void)f;
	sp_raw_close(&r);
	sp_raw_close(&a);
	stop(&b, false);
}

/* --- 6.2 the first seq after a restart ------------------------------------------------- */

static void test_seq_after_restart(void **state)
{
	const char *args[] = { "--log-level", "info", NULL };
	struct sp_it_broker b;
	struct sp_raw a;
	uint8_t r1[SP_KEY_LEN], r2[SP_KEY_LEN], priv[SP_KEY_LEN];
	char dir[256];
	uint64_t seq = 0;

	(void)state;
	sp_noise_keypair(r1, priv);
	sp_noise_keypair(r2, priv);
	start(&b, NULL, args);
	snprintf(dir, sizeof(dir), "%s", b.data_dir);
	open_ik(&a, &b);
	/* A new broker (epoch 0): the first seq is 1. */
	assert_int_equal(send_one(&a, r1, 10, 0, &seq), SP_STATUS_ACCEPTED);
	assert_int_equal(seq, 1);
	assert_int_equal(send_one(&a, r1, 10, 0, &seq), SP_STATUS_ACCEPTED);
	assert_int_equal(seq, 2);
	sp_raw_close(&a);
	stop(&b, true);

	for (uint64_t epoch = 1; epoch <= 2; epoch++) {
		start(&b, dir, args);
		open_ik(&a, &b);
		uint8_t fresh[SP_KEY_LEN];

		/* The first seqs of the epoch start at its floor: r2 (no mail
		 * yet in epoch 1), r1 (stored mail from before). */
		assert_int_equal(send_one(&a, r2, 10, 0, &seq), SP_STATUS_ACCEPTED);
		assert_int_equal(seq, epoch << 32);
		assert_int_equal(send_one(&a, r1, 10, 0, &seq), SP_STATUS_ACCEPTED);
		assert_int_equal(seq, epoch << 32);
		assert_int_equal(send_one(&a, r1, 10, 0, &seq), SP_STATUS_ACCEPTED);
		assert_int_equal(seq, (epoch << 32) + 1);
		/* A device with no mailbox record starts above every seq the
		 * broker assigned in this epoch. */
		sp_noise_keypair(fresh, priv);
		assert_int_equal(send_one(&a, fresh, 10, 0, &seq), SP_STATUS_ACCEPTED);
		assert_int_equal(seq, (epoch << 32) + 2);
		sp_raw_close(&a);
		stop(&b, epoch < 2);
	}
	sodium_memzero(priv, sizeof(priv));
}

/* --- 8 canonical keys ---------------------------------------------------------------- */

static void test_noncanonical_keys(void **state)
{
	const char *args[] = { "--log-level", "info", NULL };
	struct sp_it_broker b;
	struct sp_raw a, r, h;
	uint8_t k[SP_KEY_LEN];
	int delivers = 0;

	(void)state;
	start(&b, NULL, args);
	open_ik(&a, &b);
	assert_int_equal(sp_raw_init(&r), 0);

	/* All ff: bit 255 set and above p. */
	memset(k, 0xff, sizeof(k));
	assert_int_equal(send_one(&a, k, 10, 0, NULL), SP_STATUS_ERR_BAD_RECIPIENT);
	assert_int_equal(send_one(&a, k, 10, SP_SEND_ONLINE_ONLY, NULL),
			 SP_STATUS_ERR_BAD_RECIPIENT);
	/* p + 2 with bit 255 clear: above p only. */
	memset(k, 0xff, sizeof(k));
	k[0] = 0xef;
	k[31] = 0x7f;
	assert_int_equal(send_one(&a, k, 10, 0, NULL), SP_STATUS_ERR_BAD_RECIPIENT);
	/* A real key with bit 255 set: the same point to X25519, so a second
	 * address for r. Refused; the real spelling is accepted. */
	memcpy(k, r.s_pub, SP_KEY_LEN);
	k[31] |= 0x80;
	assert_int_equal(send_one(&a, k, 10, 0, NULL), SP_STATUS_ERR_BAD_RECIPIENT);
	assert_int_equal(send_one(&a, r.s_pub, 10, 0, NULL), SP_STATUS_ACCEPTED);
	ping_pong(&a);

	/* A client announcing its own key with bit 255 set (it holds the
	 * private key, and X25519 ignores the bit, so every DH works): refused
	 * at the handshake, silently. */
	{
		struct sp_raw_opts o = { 0 };
		int rc;

		assert_int_equal(sp_raw_init(&h), 0);
		memcpy(k, h.s_pub, SP_KEY_LEN);
		k[31] |= 0x80;
		o.fake_s_pub = k;
		assert_int_equal(sp_raw_connect(&h, b.port), 0);
		rc = sp_raw_handshake(&h, SP_PREAMBLE_PATTERN_IK, b.server_pub, &o);
		assert_true(rc == -ENOTCONN || rc == -ECONNRESET || rc == -EPIPE);
		sp_raw_close(&h);
	}
	assert_int_equal(sp_raw_open(&r, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	assert_int_equal(until_drained(&r, &delivers), 1);
	assert_int_equal(delivers, 1);
	sp_raw_close(&r);
	sp_raw_close(&a);
	assert_true(sp_it_log_count(&b, "reason=handshake_failed") >= 1);
	stop(&b, false);
}

/* --- 4 ServerHello.protocol_version != 1 --------------------------------------------- */

static enum sp_close_reason fake_established(void *ctx, struct sp_session *s)
{
	(void)ctx;
	(void)s;
	return SP_CLOSE_NONE;
}

static enum sp_close_reason fake_frame(void *ctx, struct sp_session *s, const struct sp_frame *f)
{
	(void)ctx;
	(void)s;
	(void)f;
	return SP_CLOSE_NONE;
}

/* A responder (lib/session) that announces protocol_version 2, for one
 * connection, in a child process bounded by alarm(). */
static void fake_broker(int lfd, const uint8_t *priv)
{
	struct sp_txpool pool;
	struct sp_session_env env;
	struct sp_session s;
	uint8_t buf[4096];
	int fd;

	alarm(20);
	sp_txpool_init(&pool, 4);
	memset(&env, 0, sizeof(env));
	env.static_priv = priv;
	env.hello = (struct sp_hello){ .protocol_version = 2, .max_envelope = SP_BODY_MAX,
				     .max_transport = SP_TRANSPORT_PLAINTEXT_MAX };
	env.pool = &pool;
	env.hooks.established = fake_established;
	env.hooks.frame = fake_frame;
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		_exit(2);
	sp_session_accept(&s, &env);
	for (;;) {
		const uint8_t *p;
		size_t len;
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0 || sp_session_rx(&s, buf, (size_t)n) != SP_CLOSE_NONE)
			break;
		while (sp_session_tx_peek(&s, &p, &len)) {
			if (write(fd, p, len) != (ssize_t)len)
				_exit(3);
			sp_session_tx_sent(&s, len);
		}
	}
	sp_session_release(&s);
	close(fd);
	_exit(0);
}

static void test_client_refuses_other_version(void **state)
{
	uint8_t priv[SP_KEY_LEN], pub[SP_KEY_LEN];
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	struct sealpost_client *c = NULL;
	struct sealpost_key *k = NULL;
	char addr[64];
	int lfd, st = 0, rc;
	pid_t pid;

	(void)state;
	sp_noise_keypair(pub, priv);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sa.sin_port));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		fake_broker(lfd, priv);
	close(lfd);
	assert_int_equal(sealpost_key_generate(&k), 0);
	rc = sealpost_client_connect(&c, addr, k, pub, WAIT_MS);
	assert_int_equal(rc, -EPROTO);
	assert_null(c);
	sealpost_key_free(k);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	sodium_memzero(priv, sizeof(priv));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rekey_raw),
		cmocka_unit_test(test_rekey_libsealpost),
		cmocka_unit_test(test_pong_after_results),
		cmocka_unit_test(test_pong_after_results_fsync_always),
		cmocka_unit_test(test_online_only_before_drained),
		cmocka_unit_test(test_flag_bits_and_ack_limit),
		cmocka_unit_test(test_seq_after_restart),
		cmocka_unit_test(test_noncanonical_keys),
		cmocka_unit_test(test_client_refuses_other_version),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
