/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_shards.c: a real sealpostd with --threads 2 (docs/ARCHITECTURE.md,
 * "Shards"). Every device runs on its key's home shard (the low 64 bits
 * of its key, little-endian, mod the shard count: sp_node.h), so the test
 * picks keys whose home it knows and checks where they run through
 * sealpost_shard_devices_online{shard}. Devices on different shards
 * exchange online-only and durable envelopes (both directions, IK and XX);
 * a device's second connection takes over its first across the hand-off;
 * a backlog written from the other shard comes out in order, then Drained,
 * then live envelopes still being sent from the other shard, each once;
 * a retried Send from the other shard is deduplicated; envelopes survive
 * kill -9 and a restart with shards.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sp_frame.h"
#include "sp_limits.h"
#include "support.h"
#include "support_raw.h"

enum {
	SHARDS = 2,
	TMO = 10000,
	WAIT_MS = 10000,
	BACKLOG = 300,          /* stored before the recipient connects */
	LIVE = 300,             /* sent while it drains and after */
};

static const char *const args[] = { "--threads", "2", NULL };
static struct sp_it_broker broker;

static int setup(void **state)
{
	(void)state;
	return sp_it_broker_start(&broker, NULL, args) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	int st;

	(void)state;
	assert_int_equal(sp_it_log_sanitizer_reports(&broker), 0);
	st = sp_it_broker_stop(&broker);
	sp_it_rmrf(broker.data_dir);
	return st == 0 ? 0 : -1;
}

static unsigned home_of(const uint8_t key[SP_KEY_LEN])
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | key[i];
	return (unsigned)(v % SHARDS);
}

/* A fresh identity homed on shard `home`, not connected. */
static void device_on(struct sp_raw *c, unsigned home)
{
	do {
		sp_raw_close(c);
		assert_int_equal(sp_raw_init(c), 0);
	} while (home_of(c->s_pub) != home);
}

static void connect_dev(struct sp_raw *c, uint8_t pattern)
{
	assert_int_equal(sp_raw_connect(c, broker.port), 0);
	assert_int_equal(sp_raw_handshake(c, pattern, broker.server_pub, NULL), 0);
}

/* sealpost_shard_devices_online{shard="s"} from /metrics, or -1. */
static long devices_on(unsigned s)
{
	char needle[64], *body = NULL, *p;
	long v = -1;

	snprintf(needle, sizeof(needle), "sealpost_shard_devices_online{shard=\"%u\"} ", s);
	if (sp_it_http_get(broker.metrics_port, "/metrics", &body) == 200 && body &&
	    (p = strstr(body, needle)))
		v = strtol(p + strlen(needle), NULL, 10);
	free(body);
	return v;
}

static void wait_devices(unsigned s, long want)
{
	long v = -1;

	for (int waited = 0; waited <= WAIT_MS; waited += 20) {
		if ((v = devices_on(s)) == want)
			return;
		usleep(20 * 1000);
	}
	fprintf(stderr, "[it] shard %u: %ld devices online, expected %ld\n", s, v, want);
	fail();
}

/* A connected device is routed once the broker answers its Ping (the
 * proof of IK came before it). */
static void ping(struct sp_raw *c, uint64_t id)
{
	uint8_t buf[64];
	size_t off = 0;
	struct sp_raw_frame f;

	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, id, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(c, buf, off), 0);
	assert_int_equal(sp_raw_wait_frame(c, SP_FRAME_PONG, &f, TMO), 0);
	assert_int_equal(f.id, id);
}

static void send_env(struct sp_raw *c, const uint8_t *to, uint64_t id, uint32_t flags,
		     const void *body, size_t len)
{
	uint8_t buf[2048];
	size_t off = 0;

	assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, to, SP_KEY_LEN, id, flags, body,
					 len), 0);
	assert_int_equal(sp_raw_send_plain(c, buf, off), 0);
}

/* The SendResult for id: its status; *seq its seq. */
static uint32_t result(struct sp_raw *c, uint64_t id, uint64_t *seq)
{
	struct sp_raw_frame f;

	assert_int_equal(sp_raw_wait_frame(c, SP_FRAME_SEND_RESULT, &f, TMO), 0);
	assert_int_equal(f.client_id, id);
	if (seq)
		*seq = f.seq;
	return f.status;
}

static void expect_deliver(struct sp_raw *c, uint64_t seq, const char *body)
{
	struct sp_raw_frame f;

	assert_int_equal(sp_raw_wait_frame(c, SP_FRAME_DELIVER, &f, TMO), 0);
	assert_int_equal(f.seq, seq);
	assert_int_equal(f.body_len, strlen(body));
	assert_memory_equal(f.body, body, f.body_len);
}

static void ack(struct sp_raw *c, uint64_t seq)
{
	uint8_t buf[64];
	size_t off = 0;

	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_ACK, seq, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(c, buf, off), 0);
}

/* One exchange each way, online-only and durable, between a and b. */
static void exchange(struct sp_raw *a, struct sp_raw *b, uint64_t base)
{
	uint64_t seq;

	send_env(a, b->s_pub, base + 1, SP_SEND_ONLINE_ONLY, "online a->b", 11);
	assert_int_equal(result(a, base + 1, NULL), SP_STATUS_DELIVERED);
	expect_deliver(b, 0, "online a->b");
	send_env(b, a->s_pub, base + 2, SP_SEND_ONLINE_ONLY, "online b->a", 11);
	assert_int_equal(result(b, base + 2, NULL), SP_STATUS_DELIVERED);
	expect_deliver(a, 0, "online b->a");
	send_env(a, b->s_pub, base + 3, 0, "durable a->b", 12);
	assert_int_equal(result(a, base + 3, &seq), SP_STATUS_ACCEPTED);
	assert_true(seq > 0);
	expect_deliver(b, seq, "durable a->b");
	ack(b, seq);
	send_env(b, a->s_pub, base + 4, 0, "durable b->a", 12);
	assert_int_equal(result(b, base + 4, &seq), SP_STATUS_ACCEPTED);
	expect_deliver(a, seq, "durable b->a");
	ack(a, seq);
}

static void test_exchange_across_shards(void **state)
{
	struct sp_raw a = { .fd = -1 }, b = { .fd = -1 }, x = { .fd = -1 };
	uint64_t seq;

	(void)state;
	device_on(&a, 0);
	device_on(&b, 1);
	connect_dev(&a, SP_PREAMBLE_PATTERN_IK);
	connect_dev(&b, SP_PREAMBLE_PATTERN_IK);
	ping(&a, 1);
	ping(&b, 2);
	/* Each runs on its home shard. */
	wait_devices(0, 1);
	wait_devices(1, 1);
	exchange(&a, &b, 100);
	/* XX (first contact) is handed over too, after message 3. */
	device_on(&x, 1);
	assert_int_equal(sp_raw_connect(&x, broker.port), 0);
	assert_int_equal(sp_raw_handshake(&x, SP_PREAMBLE_PATTERN_XX, broker.server_pub, NULL), 0);
	ping(&x, 3);
	wait_devices(1, 2);
	exchange(&a, &x, 200);
	/* Offline on the other shard: ERR_OFFLINE, and a durable one waits. */
	sp_raw_disconnect(&b);
	wait_devices(1, 1);
	send_env(&a, b.s_pub, 300, SP_SEND_ONLINE_ONLY, "nobody", 6);
	assert_int_equal(result(&a, 300, NULL), SP_STATUS_ERR_OFFLINE);
	send_env(&a, b.s_pub, 301, 0, "later", 5);
	assert_int_equal(result(&a, 301, &seq), SP_STATUS_ACCEPTED);
	connect_dev(&b, SP_PREAMBLE_PATTERN_IK);
	expect_deliver(&b, seq, "later");
	sp_raw_close(&a);
	sp_raw_close(&b);
	sp_raw_close(&x);
	wait_devices(0, 0);
	wait_devices(1, 0);
}

/* Results of one connection keep their order when one waits for the
 * other shard: online-only to shard 1, durable to shard 0, a Ping. */
static void test_results_in_order(void **state)
{
	struct sp_raw a = { .fd = -1 }, b = { .fd = -1 }, c = { .fd = -1 };
	uint8_t buf[4096];
	size_t off = 0;
	struct sp_raw_frame f;

	(void)state;
	device_on(&a, 0);
	device_on(&b, 1);
	device_on(&c, 0);
	connect_dev(&a, SP_PREAMBLE_PATTERN_IK);
	connect_dev(&b, SP_PREAMBLE_PATTERN_IK);
	ping(&a, 1);
	ping(&b, 2);
	for (uint64_t i = 0; i < 20; i++) {
		const uint8_t *to = i % 2 ? c.s_pub : b.s_pub;
		uint32_t flags = i % 2 ? 0 : SP_SEND_ONLINE_ONLY;

		assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, to, SP_KEY_LEN, 10 + i,
						 flags, (const uint8_t *)"x", 1), 0);
	}
	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, 77, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(&a, buf, off), 0);
	for (uint64_t i = 0; i < 20; i++) {
		assert_int_equal(sp_raw_wait_frame(&a, SP_FRAME_SEND_RESULT, &f, TMO), 0);
		assert_int_equal(f.client_id, 10 + i);
		assert_int_equal(f.status, i % 2 ? SP_STATUS_ACCEPTED : SP_STATUS_DELIVERED);
	}
	assert_int_equal(sp_raw_wait_frame(&a, SP_FRAME_PONG, &f, TMO), 0);
	assert_int_equal(f.id, 77);
	sp_raw_close(&a);
	sp_raw_close(&b);
	sp_raw_close(&c);
}

static void test_takeover_across_shards(void **state)
{
	struct sp_raw first = { .fd = -1 }, second = { .fd = -1 }, s = { .fd = -1 };
	uint32_t code = 0;
	uint64_t seq;

	(void)state;
	device_on(&first, 1);
	connect_dev(&first, SP_PREAMBLE_PATTERN_IK);
	ping(&first, 1);
	wait_devices(1, 1);
	/* The same device again: accepted on shard 0, handed to shard 1,
	 * where it takes over. */
	assert_int_equal(sp_raw_init(&second), 0);
	memcpy(second.s_priv, first.s_priv, SP_KEY_LEN);
	memcpy(second.s_pub, first.s_pub, SP_KEY_LEN);
	connect_dev(&second, SP_PREAMBLE_PATTERN_IK);
	ping(&second, 2);
	assert_int_equal(sp_raw_expect_goaway(&first, &code, TMO, NULL), 0);
	assert_int_equal(code, SP_STATUS_GOAWAY_TAKEOVER);
	wait_devices(1, 1);
	/* The route is the new connection's: a sender on shard 0 reaches it. */
	device_on(&s, 0);
	connect_dev(&s, SP_PREAMBLE_PATTERN_IK);
	send_env(&s, second.s_pub, 5, 0, "to the new one", 14);
	assert_int_equal(result(&s, 5, &seq), SP_STATUS_ACCEPTED);
	expect_deliver(&second, seq, "to the new one");
	sp_raw_close(&first);
	sp_raw_close(&second);
	sp_raw_close(&s);
}

/* A backlog stored from shard 0 for a device of shard 1, more sent from
 * shard 0 while it drains: seqs strictly increasing, each once, all of
 * them, and Drained between the backlog and what came after it. */
static void test_order_backlog_drained_live(void **state)
{
	struct sp_raw s = { .fd = -1 }, r = { .fd = -1 };
	struct sp_raw_frame f;
	uint64_t last = 0, got = 0, drained = UINT64_MAX, seq;
	char body[32];

	(void)state;
	device_on(&s, 0);
	device_on(&r, 1);
	connect_dev(&s, SP_PREAMBLE_PATTERN_IK);
	for (uint64_t i = 0; i < BACKLOG; i++) {
		int n = snprintf(body, sizeof(body), "env %llu", (unsigned long long)i);

		send_env(&s, r.s_pub, 1000 + i, 0, body, (size_t)n);
	}
	for (uint64_t i = 0; i < BACKLOG; i++)
		assert_int_equal(result(&s, 1000 + i, NULL), SP_STATUS_ACCEPTED);
	connect_dev(&r, SP_PREAMBLE_PATTERN_IK);
	/* Live ones from the other shard while the backlog drains. */
	for (uint64_t i = BACKLOG; i < BACKLOG + LIVE; i++) {
		int n = snprintf(body, sizeof(body), "env %llu", (unsigned long long)i);

		send_env(&s, r.s_pub, 1000 + i, 0, body, (size_t)n);
	}
	/* Drained may come after all of them: what was stored before the
	 * reader reached the end is backlog too. */
	while (got < BACKLOG + LIVE || drained == UINT64_MAX) {
		assert_int_equal(sp_raw_recv_frame(&r, &f, TMO), 0);
		if (f.type == SP_FRAME_DRAINED) {
			assert_int_equal(drained, UINT64_MAX);
			drained = f.count;
			assert_true(drained >= BACKLOG);
			assert_int_equal(got, drained);
			continue;
		}
		if (f.type == SP_FRAME_PING)
			continue;
		assert_int_equal(f.type, SP_FRAME_DELIVER);
		assert_true(f.seq > last);
		snprintf(body, sizeof(body), "env %llu", (unsigned long long)got);
		assert_int_equal(f.body_len, strlen(body));
		assert_memory_equal(f.body, body, f.body_len);
		last = f.seq;
		got++;
		ack(&r, f.seq);
	}
	assert_int_not_equal(drained, UINT64_MAX);
	for (uint64_t i = BACKLOG; i < BACKLOG + LIVE; i++)
		assert_int_equal(result(&s, 1000 + i, NULL), SP_STATUS_ACCEPTED);
	/* And nothing twice: the next envelope is the next one. */
	send_env(&s, r.s_pub, 5000, 0, "tail", 4);
	assert_int_equal(result(&s, 5000, &seq), SP_STATUS_ACCEPTED);
	assert_int_equal(sp_raw_wait_frame(&r, SP_FRAME_DELIVER, &f, TMO), 0);
	assert_int_equal(f.seq, seq);
	assert_true(seq > last);
	sp_raw_close(&s);
	sp_raw_close(&r);
}

static void test_dedup_across_shards(void **state)
{
	struct sp_raw s = { .fd = -1 }, r = { .fd = -1 };
	struct sp_raw_frame f;
	uint64_t seq1, seq2;

	(void)state;
	for (unsigned sender_home = 0; sender_home < SHARDS; sender_home++) {
		device_on(&s, sender_home);
		device_on(&r, 1 - sender_home);
		connect_dev(&s, SP_PREAMBLE_PATTERN_IK);
		connect_dev(&r, SP_PREAMBLE_PATTERN_IK);
		ping(&r, 1);
		send_env(&s, r.s_pub, 42, 0, "once", 4);
		assert_int_equal(result(&s, 42, &seq1), SP_STATUS_ACCEPTED);
		/* A retry after a reconnect of the sender: the same seq, no copy. */
		sp_raw_disconnect(&s);
		connect_dev(&s, SP_PREAMBLE_PATTERN_IK);
		send_env(&s, r.s_pub, 42, 0, "once", 4);
		assert_int_equal(result(&s, 42, &seq2), SP_STATUS_ACCEPTED);
		assert_int_equal(seq1, seq2);
		expect_deliver(&r, seq1, "once");
		/* The Pong comes next: no second Deliver was queued before it. */
		ping(&r, 2);
		send_env(&s, r.s_pub, 43, 0, "next", 4);
		assert_int_equal(result(&s, 43, &seq2), SP_STATUS_ACCEPTED);
		assert_int_equal(sp_raw_wait_frame(&r, SP_FRAME_DELIVER, &f, TMO), 0);
		assert_int_equal(f.seq, seq2);
		sp_raw_close(&s);
		sp_raw_close(&r);
	}
}

static void test_kill9_restart(void **state)
{
	struct sp_raw s = { .fd = -1 }, r = { .fd = -1 };
	uint64_t seq;

	(void)state;
	device_on(&s, 0);
	device_on(&r, 1);
	connect_dev(&s, SP_PREAMBLE_PATTERN_IK);
	send_env(&s, r.s_pub, 9, 0, "survives", 8);
	assert_int_equal(result(&s, 9, &seq), SP_STATUS_ACCEPTED);
	sp_raw_close(&s);
	assert_int_equal(sp_it_broker_kill(&broker), SIGKILL);
	assert_int_equal(sp_it_broker_restart(&broker, args), 0);
	connect_dev(&r, SP_PREAMBLE_PATTERN_IK);
	expect_deliver(&r, seq, "survives");
	wait_devices(1, 1);
	sp_raw_close(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exchange_across_shards),
		cmocka_unit_test(test_results_in_order),
		cmocka_unit_test(test_takeover_across_shards),
		cmocka_unit_test(test_order_backlog_drained_live),
		cmocka_unit_test(test_dedup_across_shards),
		cmocka_unit_test(test_kill9_restart),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
