/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_mailbox.c: the mailbox state machine of a shard (backlog, live,
 * catch-up, takeover, acks, dedup, quotas, expiry, a failed commit) through
 * a detached shard with a real RocksDB store in a temporary directory.
 * Devices hold real IK sessions; everything they get is decrypted and
 * decoded. docs/PROTOCOL.md 6.1 and 6.3.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "sp_store.h"
#include "support_shard.h"

enum { BODY = 300 };

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

static void connect_empty(struct sps *t, struct sps_dev *d)
{
	assert_int_equal(sps_connect(t, d, 1), 0);
	assert_int_equal(sps_expect(d, SP_FRAME_PONG)->id, 1);
	assert_int_equal(sps_expect(d, SP_FRAME_DRAINED)->count, 0);
	assert_null(sps_next(d));
}

/* The next event of d is SendResult{client_id, st}; returns its seq. */
static uint64_t result(struct sps_dev *d, uint64_t client_id, enum sp_status st)
{
	const struct sps_event *e = sps_expect(d, SP_FRAME_SEND_RESULT);

	assert_int_equal(e->client_id, client_id);
	assert_int_equal(e->status, st);
	if (st == SP_STATUS_ACCEPTED)
		assert_true(e->seq > 0);
	else
		assert_int_equal(e->seq, 0);
	return e->seq;
}

/* a sends one durable envelope (body tag = client_id) to `to` and returns
 * the seq of its ACCEPTED. */
static uint64_t send_durable(struct sps *t, struct sps_dev *a, const uint8_t to[SP_KEY_LEN],
			     uint64_t client_id)
{
	uint8_t body[BODY];

	sps_body(body, sizeof(body), client_id);
	sps_send(a, to, client_id, 0, body, sizeof(body));
	assert_int_equal(sps_round(t, a), 0);
	return result(a, client_id, SP_STATUS_ACCEPTED);
}

/* n durable envelopes (ids id0..) in one transport message; seqs out. */
static void send_many(struct sps *t, struct sps_dev *a, const uint8_t to[SP_KEY_LEN],
		      uint64_t id0, size_t n, uint64_t *seqs)
{
	uint8_t body[BODY];

	for (size_t i = 0; i < n; i++) {
		sps_body(body, sizeof(body), id0 + i);
		sps_send(a, to, id0 + i, 0, body, sizeof(body));
	}
	assert_int_equal(sps_round(t, a), 0);
	for (size_t i = 0; i < n; i++) {
		seqs[i] = result(a, id0 + i, SP_STATUS_ACCEPTED);
		if (i)
			assert_true(seqs[i] > seqs[i - 1]);
	}
}

/* The next event of d is Deliver{seq} with the body of tag. */
static void delivered(struct sps_dev *d, uint64_t seq, uint64_t tag)
{
	const struct sps_event *e = sps_expect(d, SP_FRAME_DELIVER);

	assert_int_equal(e->seq, seq);
	assert_true(sps_body_is(e, BODY, tag));
}

static uint64_t mailbox_count(struct sps *t, const struct sps_dev *d)
{
	uint64_t count, bytes, next;

	assert_int_equal(sp_store_mailbox_info(t->store, d->pub, &count, &bytes, &next), 0);
	return count;
}

static size_t count_type(const struct sps_dev *d, enum sp_frame_type type)
{
	size_t n = 0;

	for (size_t i = 0; i < d->nev; i++)
		n += d->ev[i].type == type;
	return n;
}

/*
 * Durable sends to an offline device are stored (ACCEPTED with increasing
 * seqs); when it connects it gets them oldest first, then Drained{count},
 * then live envelopes with their seq in the iteration they arrive.
 */
static void test_backlog_then_live(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b;
	uint64_t seqs[3], s4;

	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);
	connect_empty(t, a);
	send_many(t, a, b->pub, 1, 3, seqs);
	assert_int_equal(mailbox_count(t, b), 3);
	assert_int_equal(sps_counts(t).delivered_live, 0);

	assert_int_equal(sps_connect(t, b, 9), 0);
	assert_int_equal(sps_expect(b, SP_FRAME_PONG)->id, 9);
	for (size_t i = 0; i < 3; i++)
		delivered(b, seqs[i], 1 + i);
	assert_int_equal(sps_expect(b, SP_FRAME_DRAINED)->count, 3);
	assert_null(sps_next(b));

	s4 = send_durable(t, a, b->pub, 4);
	assert_true(s4 > seqs[2]);
	delivered(b, s4, 4);
	assert_null(sps_next(b));
	assert_int_equal(sps_counts(t).delivered_live, 1);
	assert_int_equal(mailbox_count(t, b), 4);      /* stored until acked */
	assert_int_equal(count_type(b, SP_FRAME_DRAINED), 1);
}

/*
 * Envelopes that arrive while the backlog is being read (a few per
 * iteration here) are stored and come through the reader after the older ones: every
 * seq once, in order, none delivered live out of turn; Drained counts them.
 */
static void test_arrivals_during_backlog(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b;
	uint64_t seqs[64], tags[64];
	const struct sps_event *e;
	size_t n = 12, got = 0, during = 0;
	uint64_t id = 100, drained = UINT64_MAX;

	/* The reader is paced by the outbound queue (below half of
	 * --sendq-max) and reads in chunks: a few envelopes per iteration. */
	t->cfg.backlog_chunk = 2;
	t->cfg.sendq_max = 2048;
	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);
	connect_empty(t, a);
	send_many(t, a, b->pub, id, n, seqs);
	for (size_t i = 0; i < n; i++)
		tags[i] = id + i;
	id += n;
	assert_int_equal(sps_connect(t, b, 2), 0);
	assert_int_equal(sps_expect(b, SP_FRAME_PONG)->id, 2);
	while (count_type(b, SP_FRAME_DRAINED) == 0) {
		assert_true(n < 64);
		tags[n] = id;
		seqs[n++] = send_durable(t, a, b->pub, id++);
		during++;
	}
	assert_true(during >= 2);
	while ((e = sps_next(b))) {
		if (e->type == SP_FRAME_DRAINED) {
			drained = e->count;
			break;
		}
		assert_int_equal(e->type, SP_FRAME_DELIVER);
		assert_true(got < n);
		assert_int_equal(e->seq, seqs[got]);
		assert_true(sps_body_is(e, BODY, tags[got]));
		got++;
	}
	/* The reader may end in the iteration of the last send: all of them. */
	assert_int_equal(got, n);
	assert_int_equal(drained, n);
	assert_null(sps_next(b));

	/* After Drained: live. */
	seqs[0] = send_durable(t, a, b->pub, id);
	delivered(b, seqs[0], id);
	assert_null(sps_next(b));
}

/*
 * A live device whose outbound queue went over --sendq-max: its next
 * envelopes are stored only, and once it reads again the reader sends them
 * from the first one it missed, in order, with no second Drained; then it
 * is live again.
 */
static void test_catchup(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b;
	uint64_t seqs[64], id = 1, live0, seq;
	size_t n = 0, nlive, rounds = 0;

	t->cfg.sendq_max = 8192;
	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);
	connect_empty(t, a);
	connect_empty(t, b);
	b->taking = false;
	while (sp_session_tx_queued(&b->c->s) <= t->cfg.sendq_max) {
		assert_true(n < 32);
		seqs[n++] = send_durable(t, a, b->pub, id);
		id++;
	}
	nlive = n;
	assert_int_equal(sps_counts(t).delivered_live, nlive);
	for (int i = 0; i < 3; i++) {
		seqs[n++] = send_durable(t, a, b->pub, id);
		id++;
	}
	assert_int_equal(sps_counts(t).delivered_live, nlive);  /* stored only */
	assert_int_equal(sps_counts(t).delivered_mailbox, 0);

	b->taking = true;
	while (b->nev - b->ev_next < n) {
		assert_true(++rounds < 10);
		assert_int_equal(sps_round(t, b), 0);
	}
	for (size_t i = 0; i < n; i++)
		delivered(b, seqs[i], 1 + i);
	assert_null(sps_next(b));
	assert_int_equal(sps_counts(t).delivered_mailbox, 3);
	assert_int_equal(count_type(b, SP_FRAME_DRAINED), 1);  /* the connect's only */

	live0 = sps_counts(t).delivered_live;
	seq = send_durable(t, a, b->pub, id);
	delivered(b, seq, id);
	assert_int_equal(sps_counts(t).delivered_live, live0 + 1);
}

/* Acks delete the device's own entries (unknown seqs ignored, no reply); a
 * new connection gets only what is not acknowledged. */
static void test_acks_remove(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b;
	uint64_t seqs[4], acks[4];

	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);
	connect_empty(t, a);
	send_many(t, a, b->pub, 1, 4, seqs);
	assert_int_equal(sps_connect(t, b, 1), 0);
	sps_expect(b, SP_FRAME_PONG);
	for (size_t i = 0; i < 4; i++)
		delivered(b, seqs[i], 1 + i);
	assert_int_equal(sps_expect(b, SP_FRAME_DRAINED)->count, 4);

	acks[0] = seqs[0];
	acks[1] = seqs[2];
	acks[2] = seqs[3] + 1000;       /* never stored */
	acks[3] = 0;
	sps_ack(b, acks, 4);
	assert_int_equal(sps_round(t, b), 0);
	assert_null(sps_next(b));       /* no reply to an Ack */
	assert_int_equal(sps_counts(t).acks, 2);
	/* seqs[3] + 1000 was looked up and not found; seq 0 never is. */
	assert_int_equal(sps_counts(t).acks_unknown, 1);
	assert_int_equal(mailbox_count(t, b), 2);

	/* a cannot ack b's entries: its Ack names its own mailbox. */
	acks[0] = seqs[1];
	sps_ack(a, acks, 1);
	assert_int_equal(sps_round(t, a), 0);
	assert_int_equal(mailbox_count(t, b), 2);

	assert_int_equal(sps_disconnect(t, b), -EIO);
	assert_int_equal(sps_connect(t, b, 2), 0);
	sps_expect(b, SP_FRAME_PONG);
	delivered(b, seqs[1], 2);
	delivered(b, seqs[3], 4);
	assert_int_equal(sps_expect(b, SP_FRAME_DRAINED)->count, 2);
	assert_null(sps_next(b));
}

/*
 * Acks for nothing: no store lookup beyond what the device can hold (its
 * mailbox quota plus what this connection was sent), and GoAway PROTOCOL
 * once the connection sent more than ack_unknown_max of them.
 */
static void test_ack_flood_bounded(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b;
	const struct sps_event *e;
	uint64_t seqs[2], junk[8];

	t->cfg.mailbox_max_count = 4;
	t->cfg.mailbox_sender_share = 100;      /* one sender fills it here */
	t->cfg.ack_unknown_max = 20;
	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);
	connect_empty(t, a);
	send_many(t, a, b->pub, 1, 2, seqs);
	assert_int_equal(sps_connect(t, b, 1), 0);
	sps_expect(b, SP_FRAME_PONG);
	delivered(b, seqs[0], 1);
	delivered(b, seqs[1], 2);
	assert_int_equal(sps_expect(b, SP_FRAME_DRAINED)->count, 2);

	for (size_t i = 0; i < 8; i++)
		junk[i] = seqs[1] + 1000 + i;   /* never stored */
	/* 8 and 16 for nothing: ignored; 4 + 2 lookups, the rest dropped unread. */
	sps_ack(b, junk, 8);
	assert_int_equal(sps_round(t, b), 0);
	sps_ack(b, junk, 8);
	assert_int_equal(sps_round(t, b), 0);
	assert_null(sps_next(b));
	assert_int_equal(sps_counts(t).acks_unknown, 6);
	/* 24 > 20: the connection ends, GoAway PROTOCOL. */
	b->may_refuse = true;
	sps_ack(b, junk, 8);
	assert_int_equal(sps_round(t, b), -EIO);
	e = sps_expect(b, SP_FRAME_GOAWAY);
	assert_int_equal(e->status, SP_STATUS_GOAWAY_PROTOCOL);
	assert_int_equal(b->refused, SP_CLOSE_ACK_FLOOD);
	assert_int_equal(sps_closed(t, SP_CLOSE_ACK_FLOOD), 1);
	assert_int_equal(sps_counts(t).acks_unknown, 6);
	assert_int_equal(mailbox_count(t, b), 2);      /* nothing of its was touched */
}

/*
 * A durable send with a client_id seen before (same sender, same
 * recipient) is answered ACCEPTED with the original seq, within one
 * iteration or across iterations, stored and delivered once, even after
 * the recipient acked it; client_id 0 is never deduplicated.
 */
static void test_dedup(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b;
	uint8_t body[BODY];
	uint64_t s77, s88, z1, z2;

	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);
	connect_empty(t, a);
	s77 = send_durable(t, a, b->pub, 77);
	assert_int_equal(send_durable(t, a, b->pub, 77), s77);
	sps_body(body, sizeof(body), 88);
	sps_send(a, b->pub, 88, 0, body, sizeof(body));
	sps_send(a, b->pub, 88, 0, body, sizeof(body));
	sps_send(a, b->pub, 0, 0, body, sizeof(body));
	sps_send(a, b->pub, 0, 0, body, sizeof(body));
	assert_int_equal(sps_round(t, a), 0);
	s88 = result(a, 88, SP_STATUS_ACCEPTED);
	assert_int_equal(result(a, 88, SP_STATUS_ACCEPTED), s88);
	z1 = result(a, 0, SP_STATUS_ACCEPTED);
	z2 = result(a, 0, SP_STATUS_ACCEPTED);
	assert_true(s88 > s77);
	assert_true(z1 > s88);
	assert_true(z2 > z1);
	assert_int_equal(sps_counts(t).duplicates, 2);
	assert_int_equal(mailbox_count(t, b), 4);

	assert_int_equal(sps_connect(t, b, 1), 0);
	sps_expect(b, SP_FRAME_PONG);
	delivered(b, s77, 77);
	delivered(b, s88, 88);
	delivered(b, z1, 88);
	delivered(b, z2, 88);
	assert_int_equal(sps_expect(b, SP_FRAME_DRAINED)->count, 4);

	/* b is live: a retry is not delivered again; nor after b's ack. */
	assert_int_equal(send_durable(t, a, b->pub, 77), s77);
	assert_null(sps_next(b));
	sps_ack(b, &s77, 1);
	assert_int_equal(sps_round(t, b), 0);
	assert_int_equal(mailbox_count(t, b), 3);
	assert_int_equal(send_durable(t, a, b->pub, 77), s77);
	assert_null(sps_next(b));
	assert_int_equal(mailbox_count(t, b), 3);
	assert_int_equal(sps_counts(t).delivered_live, 0);
}

/*
 * The same device connects again while its first connection is open: the
 * first gets GoAway{TAKEOVER} as its last frame, the second the backlog
 * (everything the first received and did not ack), and live envelopes go
 * to the second only. The first is closed after close_grace.
 */
static void test_takeover(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b1, *b2;
	uint64_t seqs[2], s3;
	const struct sps_event *e;

	sps_start(t);
	a = sps_dev_new(t);
	b1 = sps_dev_new(t);
	b2 = sps_dev_same(t, b1);
	connect_empty(t, a);
	send_many(t, a, b1->pub, 1, 2, seqs);
	assert_int_equal(sps_connect(t, b1, 1), 0);
	sps_expect(b1, SP_FRAME_PONG);
	delivered(b1, seqs[0], 1);
	delivered(b1, seqs[1], 2);
	assert_int_equal(sps_expect(b1, SP_FRAME_DRAINED)->count, 2);

	assert_int_equal(sps_connect(t, b2, 2), -EIO);  /* b1's connection ended */
	assert_int_equal(sps_closed(t, SP_CLOSE_TAKEOVER), 1);
	e = sps_expect(b1, SP_FRAME_GOAWAY);
	assert_int_equal(e->status, SP_STATUS_GOAWAY_TAKEOVER);
	assert_null(sps_next(b1));
	assert_int_equal(b1->c->s.state, SP_SESSION_CLOSING);
	assert_false(b1->c->route.routed);
	assert_int_equal(sps_expect(b2, SP_FRAME_PONG)->id, 2);
	delivered(b2, seqs[0], 1);
	delivered(b2, seqs[1], 2);
	assert_int_equal(sps_expect(b2, SP_FRAME_DRAINED)->count, 2);
	assert_null(sps_next(b2));

	s3 = send_durable(t, a, b1->pub, 3);
	delivered(b2, s3, 3);
	assert_null(sps_next(b1));

	/* close_grace later the first connection's slot is free again. */
	t->now_ns += (uint64_t)t->cfg.close_grace_ms * 1000000u + 1;
	sps_begin(t);
	sp_shard_tick(&t->sh);
	assert_int_equal(sps_end(t), -EIO);
	assert_int_equal(b1->c->s.state, SP_SESSION_FREE);
	assert_int_equal(b2->c->s.state, SP_SESSION_ESTABLISHED);
	assert_true(b2->c->route.routed);
}

/* A mailbox at its count or bytes quota refuses (MAILBOX_FULL, not kept);
 * an ack makes room again. */
/* Per-sender budget (ERR_RATE_LIMITED) and share of a mailbox
 * (ERR_MAILBOX_FULL for that sender only). */
static void test_sender_limits(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b, *c;
	uint8_t body[BODY];

	t->cfg.sender_rate = 1;
	t->cfg.sender_burst = 3;
	t->cfg.mailbox_max_count = 4;
	t->cfg.mailbox_sender_share = 50;
	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);
	c = sps_dev_new(t);
	connect_empty(t, a);
	connect_empty(t, c);
	sps_body(body, sizeof(body), 1);
	for (uint64_t i = 1; i <= 3; i++)
		sps_send(a, b->pub, i, 0, body, sizeof(body));
	assert_int_equal(sps_round(t, a), 0);
	result(a, 1, SP_STATUS_ACCEPTED);
	result(a, 2, SP_STATUS_ACCEPTED);
	result(a, 3, SP_STATUS_ERR_MAILBOX_FULL);      /* its share: 2 of 4 */
	sps_send(a, b->pub, 4, 0, body, sizeof(body));
	assert_int_equal(sps_round(t, a), 0);
	result(a, 4, SP_STATUS_ERR_RATE_LIMITED);      /* burst of 3 spent */
	assert_int_equal(sps_counts(t).refused_rate_limited, 1);
	/* Another sender to the same mailbox is accepted. */
	sps_send(c, b->pub, 5, 0, body, sizeof(body));
	assert_int_equal(sps_round(t, c), 0);
	result(c, 5, SP_STATUS_ACCEPTED);
	assert_int_equal(mailbox_count(t, b), 3);
}

static void test_quota(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b, *c;
	uint8_t body[600];
	uint64_t s1, s2;

	t->cfg.mailbox_max_count = 2;
	t->cfg.mailbox_max_bytes = 1000;
	t->cfg.mailbox_sender_share = 100;     /* one sender fills it: test_sender_limits */
	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);
	c = sps_dev_new(t);
	connect_empty(t, a);
	s1 = send_durable(t, a, b->pub, 1);
	s2 = send_durable(t, a, b->pub, 2);
	sps_body(body, sizeof(body), 3);
	sps_send(a, b->pub, 3, 0, body, BODY);
	sps_send(a, c->pub, 4, 0, body, sizeof(body));
	sps_send(a, c->pub, 5, 0, body, sizeof(body));     /* 1200 bytes > 1000 */
	assert_int_equal(sps_round(t, a), 0);
	result(a, 3, SP_STATUS_ERR_MAILBOX_FULL);
	result(a, 4, SP_STATUS_ACCEPTED);
	result(a, 5, SP_STATUS_ERR_MAILBOX_FULL);
	assert_int_equal(sps_counts(t).refused_mailbox_full, 2);
	assert_int_equal(mailbox_count(t, b), 2);
	assert_int_equal(mailbox_count(t, c), 1);

	assert_int_equal(sps_connect(t, b, 1), 0);
	sps_expect(b, SP_FRAME_PONG);
	delivered(b, s1, 1);
	delivered(b, s2, 2);
	assert_int_equal(sps_expect(b, SP_FRAME_DRAINED)->count, 2);
	sps_ack(b, &s1, 1);
	assert_int_equal(sps_round(t, b), 0);
	delivered(b, send_durable(t, a, b->pub, 6), 6);
}

/*
 * A commit that fails (the WAL write hits RLIMIT_FSIZE: EFBIG, a real I/O
 * error from RocksDB) is answered ERR_INTERNAL, seq 0, to every durable Send
 * of that iteration, in order; the online-only ones of the same iteration
 * are unaffected. The store refuses writes from then on (ERR_INTERNAL), and
 * nothing of that iteration was kept.
 */
static void test_commit_failure(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b, *c;
	struct rlimit old, lim;
	uint8_t body[1001];
	int ret;

	t->cfg.max_envelope = 1000;
	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);             /* offline */
	c = sps_dev_new(t);             /* live */
	connect_empty(t, a);
	connect_empty(t, c);
	sps_body(body, sizeof(body), 1);
	sps_send(a, b->pub, 1, 0, body, BODY);
	sps_send(a, c->pub, 2, 0, body, BODY);
	sps_send(a, c->pub, 3, SP_SEND_ONLINE_ONLY, body, BODY);
	sps_send(a, b->pub, 4, 0, body, BODY);
	sps_send(a, b->pub, 5, 0, body, sizeof(body));   /* refused before the store: unchanged */

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 0;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	sps_begin(t);
	sps_feed(t, a);
	ret = sps_end(t);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(ret, 0);
	assert_int_equal(sps_counts(t).commit_failures, 1);
	result(a, 1, SP_STATUS_ERR_INTERNAL);
	result(a, 2, SP_STATUS_ERR_INTERNAL);
	result(a, 3, SP_STATUS_DELIVERED);
	result(a, 4, SP_STATUS_ERR_INTERNAL);
	result(a, 5, SP_STATUS_ERR_TOO_LARGE);
	assert_null(sps_next(a));
	assert_int_equal(sps_counts(t).refused_internal, 3);
	assert_int_equal(sps_counts(t).accepted, 1);      /* only the DELIVERED one: none ACCEPTED */

	/* From now on the store refuses writes; online-only still flows. */
	sps_send(a, b->pub, 6, 0, body, BODY);
	sps_send(a, c->pub, 7, SP_SEND_ONLINE_ONLY, body, BODY);
	assert_int_equal(sps_round(t, a), 0);
	result(a, 6, SP_STATUS_ERR_INTERNAL);
	result(a, 7, SP_STATUS_DELIVERED);
	assert_int_equal(mailbox_count(t, b), 0);
	assert_int_equal(mailbox_count(t, c), 0);
}

/*
 * An envelope not acked within --ttl is never delivered (the reader skips
 * it) and the expiry sweep deletes it; a younger one is delivered.
 */
static void test_expiry(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b;
	uint64_t s1, s2;

	t->cfg.ttl_s = 60;
	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);
	connect_empty(t, a);
	s1 = send_durable(t, a, b->pub, 1);
	t->wall_ms += 30000;
	s2 = send_durable(t, a, b->pub, 2);
	assert_true(s2 > s1);
	t->wall_ms += 30001;            /* s1 is 60.001 s old, s2 30.001 s */

	assert_int_equal(sps_connect(t, b, 1), 0);
	sps_expect(b, SP_FRAME_PONG);
	delivered(b, s2, 2);
	assert_int_equal(sps_expect(b, SP_FRAME_DRAINED)->count, 1);
	assert_null(sps_next(b));

	sps_begin(t);
	sp_shard_tick(&t->sh);
	assert_int_equal(sps_end(t), 0);
	assert_int_equal(sps_counts(t).expired, 1);
	assert_int_equal(mailbox_count(t, b), 1);

	/* Delivered but not acked: it expires all the same. */
	t->wall_ms += 30000;
	sps_begin(t);
	sp_shard_tick(&t->sh);
	assert_int_equal(sps_end(t), 0);
	assert_int_equal(sps_counts(t).expired, 2);
	assert_int_equal(mailbox_count(t, b), 0);
	assert_null(sps_next(b));
}

/* After a restart every accepted, unacked envelope is delivered on the next
 * connection, and new seqs are above every old one. */
static void test_restart(void **state)
{
	struct sps *t = *state;
	struct sps_dev *a, *b;
	uint64_t seqs[3], s4;

	sps_start(t);
	a = sps_dev_new(t);
	b = sps_dev_new(t);
	connect_empty(t, a);
	send_many(t, a, b->pub, 1, 3, seqs);
	assert_int_equal(sps_connect(t, b, 1), 0);
	sps_expect(b, SP_FRAME_PONG);
	for (size_t i = 0; i < 3; i++)
		delivered(b, seqs[i], 1 + i);
	assert_int_equal(sps_expect(b, SP_FRAME_DRAINED)->count, 3);
	sps_ack(b, &seqs[1], 1);
	assert_int_equal(sps_round(t, b), 0);

	sps_restart(t);
	connect_empty(t, a);
	s4 = send_durable(t, a, b->pub, 4);
	assert_true(s4 > seqs[2]);
	assert_int_equal(sps_connect(t, b, 2), 0);
	sps_expect(b, SP_FRAME_PONG);
	delivered(b, seqs[0], 1);
	delivered(b, seqs[2], 3);
	delivered(b, s4, 4);
	assert_int_equal(sps_expect(b, SP_FRAME_DRAINED)->count, 3);
	assert_null(sps_next(b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_backlog_then_live, setup, teardown),
		cmocka_unit_test_setup_teardown(test_arrivals_during_backlog, setup, teardown),
		cmocka_unit_test_setup_teardown(test_catchup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_acks_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ack_flood_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_takeover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sender_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
