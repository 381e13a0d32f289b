/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_router.c: routing of Send frames through a detached shard (the
 * broker's own routing code, without io_uring) with a real mailbox store:
 * devices hold real IK sessions and send real transport messages; what each
 * connection gets back is decrypted and decoded. docs/PROTOCOL.md 6.1 and
 * 6.2: live delivery of online-only envelopes, offline and busy recipients,
 * the checks in their order (bad recipient, too large), the SendResult only
 * after the iteration's commit, and many frames in one transport message in
 * both directions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sp_store.h"
#include "support_shard.h"

static int setup(void **state)
{
	struct sps *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	sps_init(t);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	sps_fini(*state);
	free(*state);
	return 0;
}

/* Connects d and reads its Pong and Drained{0} (nothing stored for it). */
static void connect_empty(struct sps *t, struct sps_dev *d)
{
	assert_int_equal(sps_connect(t, d, 1), 0);
	assert_int_equal(sps_expect(d, SP_FRAME_PONG)->id, 1);
	assert_int_equal(sps_expect(d, SP_FRAME_DRAINED)->count, 0);
	assert_null(sps_next(d));
}

static void expect_result(struct sps_dev *d, uint64_t client_id, enum sp_status st)
{
	const struct sps_event *e = sps_expect(d, SP_FRAME_SEND_RESULT);

	assert_int_equal(e->client_id, client_id);
	assert_int_equal(e->status, st);
	if (st != SP_STATUS_ACCEPTED)
		assert_int_equal(e->seq, 0);
}

static uint64_t mailbox_count(struct sps *t, const struct sps_dev *d)
{
	uint64_t count, bytes, next;

	assert_int_equal(sp_store_mailbox_info(t->store, d->pub, &count, &bytes, &next), 0);
	return count;
}

/* Online-only to a connected device: Deliver{seq 0} with the same body, and
 * DELIVERED to the sender; nothing stored. */
static void test_online_delivered(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b;
	const struct sps_event *e;
	uint8_t body[300];

	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);
	connect_empty(t, a);
	connect_empty(t, b);
	sps_body(body, sizeof(body), 5);
	sps_send(a, b->pub, 5, SP_SEND_ONLINE_ONLY, body, sizeof(body));
	assert_int_equal(sps_round(t, a), 0);
	e = sps_expect(b, SP_FRAME_DELIVER);
	assert_int_equal(e->seq, 0);
	assert_true(sps_body_is(e, sizeof(body), 5));
	assert_null(sps_next(b));
	expect_result(a, 5, SP_STATUS_DELIVERED);
	assert_null(sps_next(a));
	assert_int_equal(mailbox_count(t, b), 0);
	assert_int_equal(sps_counts(t).delivered_live, 1);

	/* To one's own key: allowed, delivered on the sender's connection. */
	sps_send(a, a->pub, 6, SP_SEND_ONLINE_ONLY, body, 10);
	assert_int_equal(sps_round(t, a), 0);
	assert_true(sps_body_is(sps_expect(a, SP_FRAME_DELIVER), 10, 5));
	expect_result(a, 6, SP_STATUS_DELIVERED);
}

/* Online-only to a device that never connected, and to one that has gone:
 * ERR_OFFLINE, nothing kept, and the sender's connection goes on. */
static void test_online_offline(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b, *never;
	uint8_t body[50];

	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);
	never = sps_dev_new(t);
	connect_empty(t, a);
	connect_empty(t, b);
	sps_body(body, sizeof(body), 1);
	sps_send(a, never->pub, 1, SP_SEND_ONLINE_ONLY, body, sizeof(body));
	assert_int_equal(sps_round(t, a), 0);
	expect_result(a, 1, SP_STATUS_ERR_OFFLINE);

	assert_int_equal(sps_disconnect(t, b), -EIO);      /* b's connection ended */
	assert_int_equal(sps_closed(t, SP_CLOSE_EOF), 1);
	sps_send(a, b->pub, 2, SP_SEND_ONLINE_ONLY, body, sizeof(body));
	sps_ping(a, 77);
	assert_int_equal(sps_round(t, a), 0);
	/* The Pong comes after the result of the Send before its Ping
	 * (PROTOCOL.md 6.4). */
	expect_result(a, 2, SP_STATUS_ERR_OFFLINE);
	assert_int_equal(sps_expect(a, SP_FRAME_PONG)->id, 77);
	assert_null(sps_next(a));
	assert_int_equal(mailbox_count(t, b), 0);
	assert_int_equal(mailbox_count(t, never), 0);
	assert_int_equal(sps_counts(t).delivered_live, 0);
}

/* A low-order point as `to` (all zeros) is refused before anything else,
 * for durable and online-only sends alike; the connection goes on. */
static void test_bad_recipient(void **state)
{
	struct sps *t = *state;
	static const uint8_t zero[SP_KEY_LEN];
	struct sps_dev *a;
	uint8_t body[20];

	t->cfg.max_envelope = 10;       /* too large as well: bad recipient comes first */
	sps_start(t);
	a = sps_dev_new(t);
	connect_empty(t, a);
	sps_body(body, sizeof(body), 3);
	sps_send(a, zero, 1, 0, body, sizeof(body));
	sps_send(a, zero, 2, SP_SEND_ONLINE_ONLY, body, 5);
	sps_send(a, a->pub, 3, SP_SEND_ONLINE_ONLY, body, 5);
	assert_int_equal(sps_round(t, a), 0);
	/* The Deliver is written as the frame is handled, the results after the commit. */
	assert_true(sps_body_is(sps_expect(a, SP_FRAME_DELIVER), 5, 3));
	expect_result(a, 1, SP_STATUS_ERR_BAD_RECIPIENT);
	expect_result(a, 2, SP_STATUS_ERR_BAD_RECIPIENT);
	expect_result(a, 3, SP_STATUS_DELIVERED);
	assert_null(sps_next(a));
	assert_int_equal(sps_counts(t).commits, 0);   /* nothing reached the store */
}

/* A body above max_envelope: ERR_TOO_LARGE, durable or not; at the limit: fine. */
static void test_too_large(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b;
	uint8_t body[101];

	t->cfg.max_envelope = 100;
	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);
	connect_empty(t, a);
	connect_empty(t, b);
	sps_body(body, sizeof(body), 9);
	sps_send(a, b->pub, 1, SP_SEND_ONLINE_ONLY, body, 101);
	sps_send(a, b->pub, 2, 0, body, 101);
	sps_send(a, b->pub, 3, SP_SEND_ONLINE_ONLY, body, 100);
	assert_int_equal(sps_round(t, a), 0);
	expect_result(a, 1, SP_STATUS_ERR_TOO_LARGE);
	expect_result(a, 2, SP_STATUS_ERR_TOO_LARGE);
	expect_result(a, 3, SP_STATUS_DELIVERED);
	assert_true(sps_body_is(sps_expect(b, SP_FRAME_DELIVER), 100, 9));
	assert_null(sps_next(b));
	assert_int_equal(mailbox_count(t, b), 0);
}

/* Nothing reaches the sender before the iteration's commit: after the
 * Sends were handled, its connection holds no output and the store holds
 * nothing; after the end of the iteration the store holds the envelope and
 * the sender has its ACCEPTED with the envelope's seq. */
static void test_result_after_commit(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b, *c;
	const struct sps_event *e;
	uint8_t body[64];
	uint64_t commits;

	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);             /* offline: the durable one is stored */
	c = sps_dev_new(t);
	connect_empty(t, a);
	connect_empty(t, c);
	sps_body(body, sizeof(body), 4);
	sps_send(a, b->pub, 1, 0, body, sizeof(body));
	sps_send(a, c->pub, 2, SP_SEND_ONLINE_ONLY, body, sizeof(body));
	commits = sps_counts(t).commits;
	sps_begin(t);
	sps_feed(t, a);
	assert_int_equal(sp_session_tx_queued(&a->c->s), 0);
	assert_false(a->c->s.tx_open);
	assert_int_equal(t->sh.nresults, 2);
	assert_int_equal(mailbox_count(t, b), 0);
	assert_int_equal(sps_end(t), 0);
	assert_int_equal(sps_counts(t).commits, commits + 1);
	assert_int_equal(mailbox_count(t, b), 1);
	e = sps_expect(a, SP_FRAME_SEND_RESULT);
	assert_int_equal(e->client_id, 1);
	assert_int_equal(e->status, SP_STATUS_ACCEPTED);
	assert_true(e->seq > 0);
	expect_result(a, 2, SP_STATUS_DELIVERED);
	assert_true(sps_body_is(sps_expect(c, SP_FRAME_DELIVER), sizeof(body), 4));
}

/*
 * One transport message with many frames: every Send answered in order,
 * each recipient's envelopes of the iteration in one transport message of
 * its own, and the sender's answers in one.
 */
static void test_batching(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b, *c;
	const struct sps_event *e;
	uint8_t body[200];
	uint64_t seq, am, bm;

	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);
	c = sps_dev_new(t);
	connect_empty(t, a);
	connect_empty(t, b);
	connect_empty(t, c);
	am = a->msgs;
	bm = b->msgs;
	for (uint64_t i = 1; i <= 3; i++) {
		sps_body(body, sizeof(body), 10 + i);
		sps_send(a, b->pub, 10 + i, SP_SEND_ONLINE_ONLY, body, sizeof(body));
	}
	sps_body(body, sizeof(body), 20);
	sps_send(a, c->pub, 20, SP_SEND_ONLINE_ONLY, body, sizeof(body));
	sps_body(body, sizeof(body), 30);
	sps_send(a, b->pub, 30, 0, body, sizeof(body));          /* durable, b is live */
	sps_ping(a, 40);
	sps_body(body, sizeof(body), 50);
	sps_send(a, b->pub, 50, SP_SEND_ONLINE_ONLY, body, sizeof(body));
	assert_int_equal(sps_round(t, a), 0);

	/* b: 5 Delivers, in arrival order, in one message. */
	for (uint64_t tag = 11; tag <= 13; tag++) {
		e = sps_expect(b, SP_FRAME_DELIVER);
		assert_int_equal(e->seq, 0);
		assert_true(sps_body_is(e, sizeof(body), tag));
		assert_int_equal(e->msg, bm);
	}
	e = sps_expect(b, SP_FRAME_DELIVER);
	seq = e->seq;
	assert_true(seq > 0);
	assert_true(sps_body_is(e, sizeof(body), 30));
	e = sps_expect(b, SP_FRAME_DELIVER);
	assert_true(sps_body_is(e, sizeof(body), 50));
	assert_int_equal(e->msg, bm);
	assert_null(sps_next(b));
	assert_int_equal(b->msgs, bm + 1);
	e = sps_expect(c, SP_FRAME_DELIVER);
	assert_true(sps_body_is(e, sizeof(body), 20));
	assert_null(sps_next(c));

	/* a: the Pong (where it comes among the results is not specified) and
	 * the six SendResults in Send order, all in one message. */
	{
		static const uint64_t ids[] = { 11, 12, 13, 20, 30, 50 };
		size_t nres = 0, npong = 0;

		assert_int_equal(a->msgs, am + 1);
		assert_int_equal(sps_unread(a), 7);
		while ((e = sps_next(a))) {
			assert_int_equal(e->msg, am);
			if (e->type == SP_FRAME_PONG) {
				assert_int_equal(e->id, 40);
				npong++;
				continue;
			}
			assert_int_equal(e->type, SP_FRAME_SEND_RESULT);
			assert_true(nres < 6);
			assert_int_equal(e->client_id, ids[nres]);
			assert_int_equal(e->status, ids[nres] == 30 ? SP_STATUS_ACCEPTED
								    : SP_STATUS_DELIVERED);
			assert_int_equal(e->seq, ids[nres] == 30 ? seq : 0); /* the seq b saw */
			nres++;
		}
		assert_int_equal(nres, 6);
		assert_int_equal(npong, 1);
	}
}

/* Online-only to a device whose outbound queue is over --sendq-max (it stopped
 * reading): ERR_RECIPIENT_BUSY; once it reads again, DELIVERED. */
static void test_recipient_busy(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b;
	uint8_t body[1000];
	uint64_t id = 0;

	t->cfg.sendq_max = 4096;
	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);
	connect_empty(t, a);
	connect_empty(t, b);
	b->taking = false;
	sps_body(body, sizeof(body), 1);
	while (sp_session_tx_queued(&b->c->s) <= t->cfg.sendq_max) {
		assert_true(id < 32);
		sps_send(a, b->pub, ++id, SP_SEND_ONLINE_ONLY, body, sizeof(body));
		assert_int_equal(sps_round(t, a), 0);
		expect_result(a, id, SP_STATUS_DELIVERED);
	}
	sps_send(a, b->pub, ++id, SP_SEND_ONLINE_ONLY, body, sizeof(body));
	assert_int_equal(sps_round(t, a), 0);
	expect_result(a, id, SP_STATUS_ERR_RECIPIENT_BUSY);
	b->taking = true;
	assert_int_equal(sps_round(t, b), 0);      /* an empty message from b: it reads */
	for (uint64_t i = 1; i < id; i++)
		assert_true(sps_body_is(sps_expect(b, SP_FRAME_DELIVER), sizeof(body), 1));
	assert_null(sps_next(b));
	sps_send(a, b->pub, ++id, SP_SEND_ONLINE_ONLY, body, sizeof(body));
	assert_int_equal(sps_round(t, a), 0);
	expect_result(a, id, SP_STATUS_DELIVERED);
}

/* A shard without mailboxes: an empty backlog (Drained{0}) for everyone,
 * durable sends refused with ERR_INTERNAL, online-only ones routed. */
static void test_no_store(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b;
	uint8_t body[40];

	t->no_store = true;
	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);
	connect_empty(t, a);
	connect_empty(t, b);
	sps_body(body, sizeof(body), 8);
	sps_send(a, b->pub, 1, 0, body, sizeof(body));
	sps_send(a, b->pub, 2, SP_SEND_ONLINE_ONLY, body, sizeof(body));
	assert_int_equal(sps_round(t, a), 0);
	expect_result(a, 1, SP_STATUS_ERR_INTERNAL);
	expect_result(a, 2, SP_STATUS_DELIVERED);
	assert_true(sps_body_is(sps_expect(b, SP_FRAME_DELIVER), sizeof(body), 8));
	assert_null(sps_next(b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_online_delivered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_online_offline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_recipient, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_result_after_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batching, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recipient_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_store, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
