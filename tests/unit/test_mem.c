/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_mem.c: the connections' memory budget (broker/loop/sp_mem.c), on a
 * detached shard with real devices (support_shard): reassembly grown as
 * bytes arrive and counted, the idle deadline moved by whole messages only,
 * the largest holder evicted beyond --mem-budget, and the tx chunk reserve
 * trimmed after a burst.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sp_mem.h"
#include "sp_session.h"
#include "sp_txq.h"
#include "support_shard.h"

static struct sps T;

static int setup(void **state)
{
	(void)state;
	sps_init(&T);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sps_fini(&T);
	return 0;
}

/* d's queued frames as one wire message (prefix + ciphertext) in wire;
 * its length. */
static size_t seal_out(struct sps_dev *d, uint8_t *wire)
{
	size_t n = d->out_len;

	memcpy(wire + SP_LEN_PREFIX, d->out, n);
	assert_int_equal(sp_noise_encrypt(&d->t.tx, wire + SP_LEN_PREFIX, n), 0);
	wire[0] = (uint8_t)((n + SP_TAG_LEN) >> 8);
	wire[1] = (uint8_t)(n + SP_TAG_LEN);
	d->out_len = 0;
	return SP_LEN_PREFIX + n + SP_TAG_LEN;
}

/* Pings until d's next message has about `bytes` of plaintext. */
static void fill_pings(struct sps_dev *d, size_t bytes)
{
	for (uint64_t id = 1000; d->out_len + 16 < bytes; id++)
		sps_ping(d, id);
}

/* Reads every event d has. */
static void drain(struct sps_dev *d)
{
	while (sps_next(d))
		;
}

static void feed(struct sps_dev *d, uint8_t *p, size_t len)
{
	sps_begin(&T);
	assert_int_equal(sp_shard_feed(&T.sh, d->c, p, len), SP_CLOSE_NONE);
	sps_end(&T);
}

/* A 60 KB message trickled in: the buffer follows the bytes, the budget
 * counts it, and only the whole message moves the idle deadline. */
static void test_rx_grows_with_bytes(void **state)
{
	static uint8_t wire[SP_LEN_PREFIX + SP_NOISE_MSG_MAX];
	struct sps_dev *a;
	uint64_t deadline;
	size_t len, off;

	(void)state;
	T.cfg.idle_timeout_s = 60;
	sps_start(&T);
	a = sps_dev_new(&T);
	assert_int_equal(sps_connect(&T, a, 1), 0);
	drain(a);
	assert_int_equal(T.sh.mem.rx_bytes, 0);
	fill_pings(a, 60000);
	len = seal_out(a, wire);
	deadline = a->c->timer.deadline_ns;

	T.now_ns += 1000000000ull;
	feed(a, wire, 102);
	assert_int_equal(sp_session_rx_held(&a->c->s), SP_SESSION_RX_MIN);
	assert_int_equal(T.sh.mem.rx_bytes, SP_SESSION_RX_MIN);
	assert_int_equal(sp_mem_used(&T.sh), SP_SESSION_RX_MIN);
	assert_true(a->c->timer.deadline_ns == deadline);      /* bytes are not a message */

	T.now_ns += 1000000000ull;
	feed(a, wire + 102, 3000);
	assert_int_equal(sp_session_rx_held(&a->c->s), 2 * SP_SESSION_RX_MIN);
	assert_true(a->c->timer.deadline_ns == deadline);

	for (off = 3102; off + 7000 < len; off += 7000) {
		feed(a, wire + off, 7000);
		/* Never more than twice what arrived. */
		assert_true(sp_session_rx_held(&a->c->s) <= 2 * (off + 7000 - SP_LEN_PREFIX));
		assert_int_equal(T.sh.mem.rx_bytes, sp_session_rx_held(&a->c->s));
	}
	T.now_ns += 1000000000ull;
	feed(a, wire + off, len - off);
	assert_int_equal(sp_session_rx_held(&a->c->s), 0);
	assert_int_equal(T.sh.mem.rx_bytes, 0);
	assert_true(a->c->timer.deadline_ns > deadline);       /* a whole message */
	assert_int_equal(sps_expect(a, SP_FRAME_PONG)->id, 1000);
}

/* Over the budget, the connection holding the most is closed (GoAway
 * SLOW_CONSUMER, reason mem_budget), the others stay. */
static void test_budget_evicts_largest(void **state)
{
	static uint8_t wb[SP_LEN_PREFIX + SP_NOISE_MSG_MAX], wc[SP_LEN_PREFIX + SP_NOISE_MSG_MAX];
	struct sps_dev *a, *b, *c;
	const struct sps_event *e;

	(void)state;
	/* Above one tx chunk (a handshake's message 2 takes one while it is
	 * sent), below the two partial messages. */
	T.cfg.mem_budget = 80000;
	sps_start(&T);
	a = sps_dev_new(&T);
	b = sps_dev_new(&T);
	c = sps_dev_new(&T);
	assert_int_equal(sps_connect(&T, a, 1), 0);
	assert_int_equal(sps_connect(&T, b, 2), 0);
	assert_int_equal(sps_connect(&T, c, 3), 0);
	drain(a);
	drain(b);
	fill_pings(b, 60000);
	fill_pings(c, 60000);
	(void)seal_out(b, wb);
	(void)seal_out(c, wc);

	feed(c, wc, 30000);
	assert_int_equal(sps_closed(&T, SP_CLOSE_MEM_BUDGET), 0);
	sps_begin(&T);
	assert_int_equal(sp_shard_feed(&T.sh, b->c, wb, 60000), SP_CLOSE_NONE); /* 59,998 */
	assert_int_equal(sps_end(&T), -EIO);   /* a connection ended */

	assert_int_equal(sps_closed(&T, SP_CLOSE_MEM_BUDGET), 1);
	e = sps_expect(b, SP_FRAME_GOAWAY);
	assert_int_equal(e->status, SP_STATUS_GOAWAY_SLOW_CONSUMER);
	/* b's buffer is gone, c's stays (what arrived: 30,000 less the prefix). */
	assert_int_equal(T.sh.mem.rx_bytes, 30000 - SP_LEN_PREFIX);
	assert_int_equal(sp_session_rx_held(&c->c->s), 30000 - SP_LEN_PREFIX);
	assert_true(sp_mem_used(&T.sh) <= T.cfg.mem_budget);
	assert_int_equal(c->c->s.state, SP_SESSION_ESTABLISHED);

	/* The others are served. */
	sps_ping(a, 77);
	(void)sps_round(&T, a);         /* -EIO while b still ends */
	assert_int_equal(sps_expect(a, SP_FRAME_PONG)->id, 77);
}

/* A device that never reads, asking for Pongs: its chunks count, and over
 * the budget it is the one reset (it would never read a GoAway). */
static void test_budget_counts_unread_output(void **state)
{
	struct sps_dev *a, *s;
	uint64_t id = 1;

	(void)state;
	T.cfg.mem_budget = 3 * sizeof(struct sp_txchunk);
	T.cfg.sendq_max = 65536;
	sps_start(&T);
	a = sps_dev_new(&T);
	s = sps_dev_new(&T);
	assert_int_equal(sps_connect(&T, a, 1), 0);
	assert_int_equal(sps_connect(&T, s, 2), 0);
	s->taking = false;
	s->may_refuse = true;
	for (int round = 0; round < 200 && s->c && s->c->s.state == SP_SESSION_ESTABLISHED &&
	     sps_closed(&T, SP_CLOSE_MEM_BUDGET) + sps_closed(&T, SP_CLOSE_SLOW_CONSUMER) == 0;
	     round++) {
		while (s->out_len + 16 < 4000)
			sps_ping(s, id++);
		(void)sps_round(&T, s);
		assert_true(sp_mem_used(&T.sh) <= T.cfg.mem_budget + 2 * sizeof(struct sp_txchunk));
	}
	/* Whichever limit came first ended it: the budget or the slow-consumer
	 * bound (2 x sendq-max); either way its memory was bounded. */
	assert_int_equal(sps_closed(&T, SP_CLOSE_MEM_BUDGET) + sps_closed(&T, SP_CLOSE_SLOW_CONSUMER), 1);
	drain(a);
	sps_ping(a, 9);
	assert_int_equal(sps_round(&T, a), 0);
	assert_int_equal(sps_expect(a, SP_FRAME_PONG)->id, 9);
}

/* After a burst the reserve goes back to its floor within two trims. */
static void test_pool_trim(void **state)
{
	struct sp_txpool p;
	struct sp_txq q[40];

	(void)state;
	sp_txpool_init(&p, 256);
	memset(q, 0, sizeof(q));
	for (int i = 0; i < 40; i++) {
		assert_non_null(sp_txq_space(&q[i], &p, 100));
		assert_int_equal(q[i].chunks, 1);
	}
	for (int i = 0; i < 40; i++)
		sp_txq_release(&q[i], &p);
	assert_int_equal(q[0].chunks, 0);
	assert_int_equal(p.nfree, 40);
	assert_int_equal(sp_txpool_trim(&p, 16), 0);   /* the burst was in this interval */
	assert_int_equal(sp_txpool_trim(&p, 16), 24);  /* a quiet one: back to the floor */
	assert_int_equal(p.nfree, 16);
	assert_int_equal(p.live, 16);
	/* Chunks taken from the reserve in an interval are kept: 3 of 16. */
	for (int i = 0; i < 3; i++)
		assert_non_null(sp_txq_space(&q[i], &p, 100));
	for (int i = 0; i < 3; i++)
		sp_txq_release(&q[i], &p);
	assert_int_equal(sp_txpool_trim(&p, 0), 13);
	assert_int_equal(p.nfree, 3);
	sp_txpool_destroy(&p);
	assert_int_equal(p.live, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rx_grows_with_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_evicts_largest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_counts_unread_output, setup, teardown),
		cmocka_unit_test(test_pool_trim),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
