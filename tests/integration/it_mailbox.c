/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_mailbox.c: durable mailboxes through libsealpost against real
 * sealpostd processes and their RocksDB data directories.
 *
 * A device receives 10,000 envelopes sent while it was offline, in order,
 * each exactly once, then nothing more; unacknowledged envelopes come back
 * (manual acks, and automatic acks of exactly what the app took); a sender
 * keeps sending while the backlog drains and order holds across the
 * backlog -> live boundary; takeover; count and byte quotas; expiry; online-
 * only sends; idempotent retries (same client_id after a reconnect); acks
 * for seqs the device does not have, or that name another device's seq;
 * restart on the same data directory; a second sealpostd on a locked data
 * directory and a data directory that cannot be written fail clearly.
 *
 * Messages carry their index ("m<index>:" + filler) so every delivery can be
 * matched to the send that produced it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sealpost.h"
#include "support.h"

enum {
	TIMEOUT_MS = 20000,     /* bound on any single wait */
	WINDOW = 512,           /* sends without a result, per sender */
	BIG_N = 10000,
	MSG_MAX = 400,
};

/* Shared by the tests that need no special broker options. The default
 * mailbox quota is 10,000 envelopes: room for BIG_N plus the others. */
static struct sp_it_broker broker;

static int setup(void **state)
{
	static const char *const args[] = { "--mailbox-max-count", "100000", NULL };

	(void)state;
	return sp_it_broker_start(&broker, NULL, args) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	int st;

	(void)state;
	st = sp_it_broker_stop(&broker);
	if (st != 0)
		sp_it_log_tail(&broker, 40);
	sp_it_rmrf(broker.data_dir);
	return st == 0 ? 0 : -1;
}

static struct sealpost_key *new_key(uint8_t pub[SEALPOST_KEY_LEN])
{
	struct sealpost_key *k = NULL;

	assert_int_equal(sealpost_key_generate(&k), 0);
	sealpost_key_public(k, pub);
	return k;
}

static struct sealpost_client *dial(const struct sp_it_broker *b, const struct sealpost_key *k, bool manual)
{
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;
	struct sealpost_client *c = NULL;

	if (manual)
		o.flags = SEALPOST_CONNECT_MANUAL_ACK;
	assert_int_equal(sealpost_client_connect_opts(&c, b->addr, k, b->server_pub, TIMEOUT_MS, &o), 0);
	return c;
}

/* Message idx: "m<idx>:" then filler; length varies with idx. */
static size_t make_msg(char *buf, uint32_t idx)
{
	int n = snprintf(buf, MSG_MAX, "m%u:", idx);
	size_t len = (size_t)n + (idx * 37u) % (MSG_MAX - 16), i;

	for (i = (size_t)n; i < len; i++)
		buf[i] = (char)('a' + (idx + i) % 26);
	return len;
}

/* The index of a delivered message, after checking its whole content. */
static uint32_t msg_index(const struct sealpost_event *ev)
{
	char want[MSG_MAX];
	unsigned long idx;
	size_t len;
	char *end;

	assert_true(ev->len > 2 && ev->data[0] == 'm');
	idx = strtoul((const char *)ev->data + 1, &end, 10);
	assert_true(*end == ':');
	len = make_msg(want, (uint32_t)idx);
	if (ev->len != len || memcmp(ev->data, want, len) != 0)
		fail_msg("message %lu: content differs (len %zu, want %zu)", idx, ev->len, len);
	return (uint32_t)idx;
}

struct sent {
	uint32_t n;
	uint64_t id[BIG_N];
	int status[BIG_N];
	uint64_t seq[BIG_N];
};

/*
 * Sends messages first..first+n-1 from a to `to` (durable, or online-only
 * with flags), WINDOW at a time, and collects every result in order into
 * s[first..]. The sender's own events (its Drained) are skipped.
 */
static void send_range(struct sealpost_client *a, const uint8_t to[SEALPOST_KEY_LEN], uint32_t first,
		       uint32_t n, uint32_t flags, struct sent *s)
{
	char buf[MSG_MAX];
	uint32_t sent = 0, results = 0;
	struct sealpost_event ev;
	size_t len;

	assert_true(first + n <= BIG_N);
	while (results < n) {
		while (sent < n && sent - results < WINDOW) {
			len = make_msg(buf, first + sent);
			assert_int_equal(sealpost_client_send_ex(a, to, buf, len, flags, 0,
								 &s->id[first + sent]), 0);
			sent++;
		}
		if (sealpost_client_next_event(a, &ev, TIMEOUT_MS) != 1)
			fail_msg("no result for send %u within %d ms", first + results, TIMEOUT_MS);
		if (ev.type == SEALPOST_EVENT_DRAINED)
			continue;
		if (ev.type != SEALPOST_EVENT_RESULT)
			fail_msg("sender: unexpected event %d (status %d error %d)", ev.type,
				 ev.status, ev.error);
		assert_int_equal(ev.client_id, s->id[first + results]);
		s->status[first + results] = ev.status;
		s->seq[first + results] = ev.seq;
		results++;
	}
	if (s->n < first + n)
		s->n = first + n;
}

static void expect_all(const struct sent *s, uint32_t first, uint32_t n, int status)
{
	for (uint32_t i = first; i < first + n; i++)
		if (s->status[i] != status)
			fail_msg("send %u: %s, want %s", i, sealpost_status_string(s->status[i]),
				 sealpost_status_string(status));
}

struct got {
	uint32_t n;
	uint32_t idx[BIG_N];
	uint64_t seq[BIG_N];
};

/*
 * Takes events until DRAINED: every one must be a MESSAGE (recorded in g)
 * with an increasing seq. Returns Drained.count, which must equal the
 * number of messages that came before it.
 */
static uint64_t recv_backlog(struct sealpost_client *c, struct got *g)
{
	struct sealpost_event ev;

	g->n = 0;
	for (;;) {
		if (sealpost_client_next_event(c, &ev, TIMEOUT_MS) != 1)
			fail_msg("no Drained within %d ms (%u messages so far)", TIMEOUT_MS, g->n);
		if (ev.type == SEALPOST_EVENT_DRAINED) {
			assert_int_equal(ev.count, g->n);
			return ev.count;
		}
		if (ev.type != SEALPOST_EVENT_MESSAGE)
			fail_msg("recipient: unexpected event %d (status %d error %d)", ev.type,
				 ev.status, ev.error);
		assert_true(g->n < BIG_N);
		assert_true(ev.seq > 0);
		if (g->n)
			assert_true(ev.seq > g->seq[g->n - 1]);
		g->idx[g->n] = msg_index(&ev);
		g->seq[g->n] = ev.seq;
		g->n++;
	}
}

/* The next event is a MESSAGE with index idx; returns its seq. */
static uint64_t expect_msg(struct sealpost_client *c, uint32_t idx)
{
	struct sealpost_event ev;

	assert_int_equal(sealpost_client_next_event(c, &ev, TIMEOUT_MS), 1);
	if (ev.type != SEALPOST_EVENT_MESSAGE)
		fail_msg("want message %u, got event %d (status %d error %d)", idx, ev.type,
			 ev.status, ev.error);
	assert_int_equal(msg_index(&ev), idx);
	return ev.seq;
}

/* Nothing else is coming: a Ping round trip brings no event with it. */
static void expect_quiet(struct sealpost_client *c)
{
	struct sealpost_event ev;

	assert_int_equal(sealpost_client_sync(c, TIMEOUT_MS), 0);
	if (sealpost_client_next_event(c, &ev, 0) != 0)
		fail_msg("unexpected event %d (seq %llu)", ev.type, (unsigned long long)ev.seq);
}

/* Closes after the broker has processed our acks. */
static void sync_close(struct sealpost_client *c)
{
	assert_int_equal(sealpost_client_sync(c, TIMEOUT_MS), 0);
	sealpost_client_close(c);
}

/* Connects and asserts an empty mailbox: Drained{0}, then nothing. */
static void expect_empty(const struct sp_it_broker *b, const struct sealpost_key *k)
{
	static struct got g;
	struct sealpost_client *c = dial(b, k, false);

	assert_int_equal(recv_backlog(c, &g), 0);
	expect_quiet(c);
	sealpost_client_close(c);
}

/* ------------------------------------------------------------------------- */

static void test_offline_10000(void **state)
{
	static struct sent s;
	static struct got g;
	uint8_t pa[32], pb[32];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb);
	struct sealpost_client *a, *b;
	uint32_t i;

	(void)state;
	memset(&s, 0, sizeof(s));
	a = dial(&broker, ka, false);
	send_range(a, pb, 0, BIG_N, 0, &s);
	expect_all(&s, 0, BIG_N, SEALPOST_STATUS_ACCEPTED);
	for (i = 1; i < BIG_N; i++)
		assert_true(s.seq[i] > s.seq[i - 1]);

	b = dial(&broker, kb, false);
	assert_int_equal(recv_backlog(b, &g), BIG_N);
	for (i = 0; i < BIG_N; i++) {
		if (g.idx[i] != i || g.seq[i] != s.seq[i])
			fail_msg("delivery %u: message %u seq %llu, want %u seq %llu", i, g.idx[i],
				 (unsigned long long)g.seq[i], i, (unsigned long long)s.seq[i]);
	}
	expect_quiet(b);
	sync_close(b);
	/* All acknowledged (automatically, as taken): nothing comes again. */
	expect_empty(&broker, kb);
	sealpost_client_close(a);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
	assert_int_equal(sp_it_log_count_key(&broker, pa), 0);
	assert_int_equal(sp_it_log_count_key(&broker, pb), 0);
}

static void test_unacked_come_back(void **state)
{
	static struct sent s;
	static struct got g;
	uint8_t pa[32], pb[32];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb);
	struct sealpost_client *a, *b;
	uint32_t i;

	(void)state;
	memset(&s, 0, sizeof(s));
	a = dial(&broker, ka, false);
	send_range(a, pb, 0, 20, 0, &s);
	expect_all(&s, 0, 20, SEALPOST_STATUS_ACCEPTED);

	/* Manual mode: ack the first half only. */
	b = dial(&broker, kb, true);
	assert_int_equal(recv_backlog(b, &g), 20);
	for (i = 0; i < 10; i++)
		assert_int_equal(sealpost_client_ack(b, g.seq[i]), 0);
	/* The broker does not redeliver within one connection. */
	expect_quiet(b);
	sync_close(b);

	b = dial(&broker, kb, true);
	assert_int_equal(recv_backlog(b, &g), 10);
	for (i = 0; i < 10; i++) {
		assert_int_equal(g.idx[i], 10 + i);
		assert_int_equal(g.seq[i], s.seq[10 + i]);
	}
	sync_close(b);          /* nothing acked */

	/* Automatic mode acknowledges exactly what the app took: 10..13. */
	b = dial(&broker, kb, false);
	for (i = 10; i < 14; i++)
		assert_int_equal(expect_msg(b, i), s.seq[i]);
	sync_close(b);
	b = dial(&broker, kb, false);
	assert_int_equal(recv_backlog(b, &g), 6);
	for (i = 0; i < 6; i++)
		assert_int_equal(g.idx[i], 14 + i);
	sync_close(b);
	expect_empty(&broker, kb);
	sealpost_client_close(a);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
}

/*
 * A backlog of 3,000; the recipient connects while the sender keeps sending
 * 2,000 more: every message arrives once, in send order, whether it came
 * through the backlog reader or live; Drained comes exactly once and counts
 * what came before it. Then live traffic after Drained.
 */
static void test_order_across_drain(void **state)
{
	enum { BACKLOG = 3000, DURING = 2000, AFTER = 10, TOTAL = BACKLOG + DURING };
	static struct sent s;
	static uint8_t sealed[DURING][MSG_MAX + SEALPOST_SEAL_OVERHEAD];
	static size_t sealed_len[DURING];
	uint8_t pa[32], pb[32];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb);
	struct sealpost_client *a, *b;
	struct sealpost_event ev;
	char buf[MSG_MAX];
	uint32_t sent = BACKLOG, results = BACKLOG, got = 0, before_drained = 0, i;
	uint64_t last_seq = 0, drained = UINT64_MAX;
	size_t len;

	(void)state;
	memset(&s, 0, sizeof(s));
	a = dial(&broker, ka, false);
	send_range(a, pb, 0, BACKLOG, 0, &s);
	expect_all(&s, 0, BACKLOG, SEALPOST_STATUS_ACCEPTED);
	/* Sealed beforehand, so the sender outpaces the recipient's opening of
	 * its backlog: sends land while the backlog is being delivered. */
	for (i = 0; i < DURING; i++) {
		len = make_msg(buf, BACKLOG + i);
		assert_int_equal(sealpost_envelope_seal(ka, pb, buf, len, sealed[i], sizeof(sealed[i]),
							&sealed_len[i]), 0);
	}

	b = dial(&broker, kb, false);
	while (got < TOTAL || results < TOTAL) {
		struct pollfd pfd[2];

		while (sent < TOTAL && sent - results < WINDOW) {
			assert_int_equal(sealpost_client_send_raw(a, pb, sealed[sent - BACKLOG],
								  sealed_len[sent - BACKLOG],
								  &s.id[sent]), 0);
			sent++;
		}
		pfd[0] = (struct pollfd){ .fd = sealpost_client_fd(a), .events = sealpost_client_poll_events(a) };
		pfd[1] = (struct pollfd){ .fd = sealpost_client_fd(b), .events = sealpost_client_poll_events(b) };
		if (poll(pfd, 2, TIMEOUT_MS) <= 0)
			fail_msg("stuck: sent %u results %u received %u", sent, results, got);
		assert_int_equal(sealpost_client_step(a), 0);
		assert_int_equal(sealpost_client_step(b), 0);
		while (sealpost_client_next_event(a, &ev, 0) == 1) {
			if (ev.type == SEALPOST_EVENT_DRAINED)
				continue;
			assert_int_equal(ev.type, SEALPOST_EVENT_RESULT);
			assert_int_equal(ev.client_id, s.id[results]);
			s.status[results] = ev.status;
			s.seq[results] = ev.seq;
			results++;
		}
		while (sealpost_client_next_event(b, &ev, 0) == 1) {
			if (ev.type == SEALPOST_EVENT_DRAINED) {
				assert_true(drained == UINT64_MAX);   /* once */
				drained = ev.count;
				before_drained = got;
				continue;
			}
			if (ev.type != SEALPOST_EVENT_MESSAGE)
				fail_msg("recipient: event %d (status %d)", ev.type, ev.status);
			if (msg_index(&ev) != got)
				fail_msg("delivery %u is message %u", got, msg_index(&ev));
			assert_true(ev.seq > last_seq);
			if (ev.seq != s.seq[got] && got < results)
				fail_msg("message %u: seq %llu, accepted as %llu", got,
					 (unsigned long long)ev.seq, (unsigned long long)s.seq[got]);
			last_seq = ev.seq;
			got++;
		}
	}
	expect_all(&s, 0, TOTAL, SEALPOST_STATUS_ACCEPTED);
	assert_true(drained != UINT64_MAX);
	assert_int_equal(drained, before_drained);
	assert_true(drained >= BACKLOG);
	print_message("backlog %u + %u sent while connecting: Drained{%llu}\n", BACKLOG, DURING,
		      (unsigned long long)drained);
	for (i = 0; i < TOTAL; i++)
		assert_true(i == 0 || s.seq[i] > s.seq[i - 1]);

	/* Live after Drained: the next ones come straight through. */
	send_range(a, pb, TOTAL, AFTER, 0, &s);
	expect_all(&s, TOTAL, AFTER, SEALPOST_STATUS_ACCEPTED);
	for (i = TOTAL; i < TOTAL + AFTER; i++)
		assert_int_equal(expect_msg(b, i), s.seq[i]);
	sync_close(b);
	expect_empty(&broker, kb);
	sealpost_client_close(a);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
}

/* A second connection of the device takes over; nothing unacked is lost. */
static void test_takeover(void **state)
{
	static struct sent s;
	static struct got g;
	uint8_t pa[32], pb[32];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb);
	struct sealpost_client *a, *b1, *b2;
	struct sealpost_event ev;
	uint32_t i;

	(void)state;
	memset(&s, 0, sizeof(s));
	a = dial(&broker, ka, false);
	send_range(a, pb, 0, 10, 0, &s);
	expect_all(&s, 0, 10, SEALPOST_STATUS_ACCEPTED);

	b1 = dial(&broker, kb, true);
	assert_int_equal(recv_backlog(b1, &g), 10);
	for (i = 0; i < 3; i++)
		assert_int_equal(sealpost_client_ack(b1, g.seq[i]), 0);
	assert_int_equal(sealpost_client_sync(b1, TIMEOUT_MS), 0);

	b2 = dial(&broker, kb, false);
	assert_int_equal(sealpost_client_next_event(b1, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_GOAWAY);
	assert_int_equal(ev.status, SEALPOST_STATUS_GOAWAY_TAKEOVER);
	assert_int_equal(sealpost_client_next_event(b1, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_DISCONNECTED);
	assert_int_equal(ev.status, SEALPOST_STATUS_GOAWAY_TAKEOVER);
	/* Kept for a next session of b1, which closing it now never starts. */
	assert_int_equal(sealpost_client_ack(b1, g.seq[3]), 0);
	sealpost_client_close(b1);

	/* Everything the old connection received but did not ack. */
	assert_int_equal(recv_backlog(b2, &g), 7);
	for (i = 0; i < 7; i++) {
		assert_int_equal(g.idx[i], 3 + i);
		assert_int_equal(g.seq[i], s.seq[3 + i]);
	}
	send_range(a, pb, 10, 1, 0, &s);
	expect_all(&s, 10, 1, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(expect_msg(b2, 10), s.seq[10]);
	sync_close(b2);
	expect_empty(&broker, kb);
	sealpost_client_close(a);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
}

/* Online-only: never stored; refused when offline, never delivered later. */
static void test_online_only(void **state)
{
	static struct sent s;
	static struct got g;
	uint8_t pa[32], pb[32];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb);
	struct sealpost_client *a, *b;
	struct sealpost_event ev;

	(void)state;
	memset(&s, 0, sizeof(s));
	a = dial(&broker, ka, false);
	send_range(a, pb, 0, 3, SEALPOST_SEND_ONLINE_ONLY, &s);
	expect_all(&s, 0, 3, SEALPOST_STATUS_ERR_OFFLINE);
	assert_string_equal(sealpost_status_string(s.status[0]), "err_offline");

	b = dial(&broker, kb, false);
	assert_int_equal(recv_backlog(b, &g), 0);
	send_range(a, pb, 3, 1, SEALPOST_SEND_ONLINE_ONLY, &s);
	expect_all(&s, 3, 1, SEALPOST_STATUS_DELIVERED);
	assert_int_equal(s.seq[3], 0);
	assert_int_equal(sealpost_client_next_event(b, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_int_equal(msg_index(&ev), 3);
	assert_int_equal(ev.seq, 0);    /* nothing to acknowledge */
	expect_quiet(b);
	sync_close(b);
	/* Neither the refused ones nor the delivered one were kept. */
	expect_empty(&broker, kb);
	sealpost_client_close(a);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
}

/*
 * A retry with the same client_id from a new connection of the same sender:
 * ACCEPTED with the original seq, stored and delivered once, even after the
 * original was acknowledged. The same id to another recipient is new.
 */
static void test_dedup_retry(void **state)
{
	static struct got g;
	uint8_t pa[32], pb[32], pc[32];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb), *kc = new_key(pc);
	struct sealpost_client *a, *b, *c;
	char buf[MSG_MAX];
	uint64_t id0, id1, seq0 = 0, seq, seqc;
	size_t len;
	int status = -1;

	(void)state;
	a = dial(&broker, ka, false);
	len = make_msg(buf, 0);
	assert_int_equal(sealpost_client_send_ex(a, pb, buf, len, 0, 0, &id0), 0);
	assert_int_equal(sealpost_client_wait_result(a, id0, TIMEOUT_MS, &status, &seq0), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	sealpost_client_close(a);

	/* Reconnect: a retry (with another body, to see which one is kept)... */
	a = dial(&broker, ka, false);
	len = make_msg(buf, 999);
	assert_int_equal(sealpost_client_send_ex(a, pb, buf, len, 0, id0, NULL), 0);
	assert_int_equal(sealpost_client_wait_result(a, id0, TIMEOUT_MS, &status, &seq), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(seq, seq0);
	/* ...and a new send, whose fresh id is no retry. */
	len = make_msg(buf, 1);
	assert_int_equal(sealpost_client_send_ex(a, pb, buf, len, 0, 0, &id1), 0);
	assert_true(id1 != id0);
	assert_int_equal(sealpost_client_wait_result(a, id1, TIMEOUT_MS, &status, &seq), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	assert_true(seq > seq0);

	b = dial(&broker, kb, false);
	assert_int_equal(recv_backlog(b, &g), 2);
	assert_int_equal(g.idx[0], 0);  /* the first body, stored once */
	assert_int_equal(g.seq[0], seq0);
	assert_int_equal(g.idx[1], 1);
	sync_close(b);

	/* Retried again after the ack: still not stored again. */
	len = make_msg(buf, 998);
	assert_int_equal(sealpost_client_send_ex(a, pb, buf, len, 0, id0, NULL), 0);
	assert_int_equal(sealpost_client_wait_result(a, id0, TIMEOUT_MS, &status, &seq), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(seq, seq0);
	expect_empty(&broker, kb);

	/* The same client_id to another recipient is another envelope. */
	len = make_msg(buf, 2);
	assert_int_equal(sealpost_client_send_ex(a, pc, buf, len, 0, id0, NULL), 0);
	assert_int_equal(sealpost_client_wait_result(a, id0, TIMEOUT_MS, &status, &seqc), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	c = dial(&broker, kc, false);
	assert_int_equal(recv_backlog(c, &g), 1);
	assert_int_equal(g.idx[0], 2);
	assert_int_equal(g.seq[0], seqc);
	sync_close(c);
	sealpost_client_close(a);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
	sealpost_key_free(kc);
}

/*
 * Acks for seqs a device does not have are ignored, and can never touch
 * another device's mailbox: C acks B's seqs (and nonsense); the connection
 * stays up, B still gets all of its envelopes and C still gets its own.
 */
static void test_ack_foreign_and_unknown(void **state)
{
	static struct sent sb, sc;
	static struct got g;
	uint8_t pa[32], pb[32], pc[32];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb), *kc = new_key(pc);
	struct sealpost_client *a, *b, *c;
	uint32_t i;

	(void)state;
	memset(&sb, 0, sizeof(sb));
	memset(&sc, 0, sizeof(sc));
	a = dial(&broker, ka, false);
	send_range(a, pb, 0, 3, 0, &sb);
	send_range(a, pc, 0, 1, 0, &sc);
	expect_all(&sb, 0, 3, SEALPOST_STATUS_ACCEPTED);
	expect_all(&sc, 0, 1, SEALPOST_STATUS_ACCEPTED);
	/* B's seqs 2 and 3 are not C's one seq (each mailbox counts on its own;
	 * the first seq of a fresh device is the same for both). */
	assert_true(sb.seq[1] != sc.seq[0] && sb.seq[2] != sc.seq[0]);

	c = dial(&broker, kc, true);
	assert_int_equal(recv_backlog(c, &g), 1);
	assert_int_equal(sealpost_client_ack(c, sb.seq[1]), 0);
	assert_int_equal(sealpost_client_ack(c, sb.seq[2]), 0);
	assert_int_equal(sealpost_client_ack(c, sc.seq[0] + 1000), 0);
	assert_int_equal(sealpost_client_ack(c, UINT64_MAX), 0);
	/* Answered (not a protocol error), and nothing comes because of it. */
	expect_quiet(c);
	sync_close(c);

	b = dial(&broker, kb, false);
	assert_int_equal(recv_backlog(b, &g), 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(g.idx[i], i);
		assert_int_equal(g.seq[i], sb.seq[i]);
	}
	sync_close(b);
	c = dial(&broker, kc, false);
	assert_int_equal(recv_backlog(c, &g), 1);
	assert_int_equal(g.seq[0], sc.seq[0]);
	sync_close(c);
	assert_int_equal(sp_it_broker_alive(&broker), 1);
	sealpost_client_close(a);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
	sealpost_key_free(kc);
}

/* --mailbox-max-count 5, --mailbox-max-bytes 65536: ERR_MAILBOX_FULL. */
static void test_quota(void **state)
{
	/* One sender fills the whole quota here: no sender share
	 * (it_hostile_store tests the shares). */
	static const char *const args[] = { "--mailbox-max-count", "5", "--mailbox-max-bytes",
					    "65536", "--mailbox-sender-share", "100", NULL };
	static struct sent s, sc;
	static struct got g;
	static char big[20000];
	struct sp_it_broker q;
	uint8_t pa[32], pb[32], pc[32];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb), *kc = new_key(pc);
	struct sealpost_client *a, *b, *c;
	struct sealpost_event ev;
	uint64_t id;
	uint32_t i;
	int status = -1;

	(void)state;
	memset(&s, 0, sizeof(s));
	memset(&sc, 0, sizeof(sc));
	assert_int_equal(sp_it_broker_start(&q, NULL, args), 0);
	/* unpadded: the byte quota below counts exact envelope sizes */
	{
		struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;

		o.flags = SEALPOST_CONNECT_NO_PADDING;
		a = NULL;
		assert_int_equal(sealpost_client_connect_opts(&a, q.addr, ka, q.server_pub,
							      TIMEOUT_MS, &o), 0);
	}
	/* Count: the sixth is refused, and not kept. */
	send_range(a, pb, 0, 6, 0, &s);
	expect_all(&s, 0, 5, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(s.status[5], SEALPOST_STATUS_ERR_MAILBOX_FULL);
	assert_string_equal(sealpost_status_string(s.status[5]), "err_mailbox_full");
	b = dial(&q, kb, false);
	assert_int_equal(recv_backlog(b, &g), 5);
	for (i = 0; i < 5; i++)
		assert_int_equal(g.idx[i], i);
	sync_close(b);
	/* Acknowledged envelopes free their room. */
	send_range(a, pb, 6, 1, 0, &s);
	expect_all(&s, 6, 1, SEALPOST_STATUS_ACCEPTED);

	/* Bytes: three 20,097-byte envelopes fit in 65,536, a fourth does not,
	 * a small one still does. */
	memset(big, 'B', sizeof(big));
	for (i = 0; i < 4; i++) {
		assert_int_equal(sealpost_client_send(a, pc, big, sizeof(big), &id), 0);
		assert_int_equal(sealpost_client_wait_result(a, id, TIMEOUT_MS, &status, NULL), 0);
		assert_int_equal(status, i < 3 ? SEALPOST_STATUS_ACCEPTED
					       : SEALPOST_STATUS_ERR_MAILBOX_FULL);
	}
	send_range(a, pc, 0, 1, 0, &sc);
	expect_all(&sc, 0, 1, SEALPOST_STATUS_ACCEPTED);
	c = dial(&q, kc, false);
	for (i = 0; i < 3; i++) {
		assert_int_equal(sealpost_client_next_event(c, &ev, TIMEOUT_MS), 1);
		assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
		assert_int_equal(ev.len, sizeof(big));
	}
	expect_msg(c, 0);
	assert_int_equal(sealpost_client_next_event(c, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_DRAINED);
	assert_int_equal(ev.count, 4);
	sync_close(c);
	b = dial(&q, kb, false);
	assert_int_equal(recv_backlog(b, &g), 1);
	assert_int_equal(g.idx[0], 6);
	sync_close(b);
	sealpost_client_close(a);
	assert_int_equal(sp_it_broker_stop(&q), 0);
	sp_it_rmrf(q.data_dir);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
	sealpost_key_free(kc);
}

/* --ttl 1: envelopes older than a second are never delivered. */
static void test_expiry(void **state)
{
	static const char *const args[] = { "--ttl", "1", NULL };
	static struct sent s;
	static struct got g;
	struct sp_it_broker e;
	uint8_t pa[32], pb[32];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb);
	struct sealpost_client *a, *b;
	struct timespec ts = { .tv_sec = 2, .tv_nsec = 200 * 1000 * 1000 };

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(sp_it_broker_start(&e, NULL, args), 0);
	a = dial(&e, ka, false);
	send_range(a, pb, 0, 5, 0, &s);
	expect_all(&s, 0, 5, SEALPOST_STATUS_ACCEPTED);
	/* The TTL (1 s) plus sweep ticks (100 ms) and margin. Not a
	 * performance threshold: any wait longer than the TTL must do. */
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	b = dial(&e, kb, false);
	assert_int_equal(recv_backlog(b, &g), 0);
	/* The broker still delivers: a fresh one comes live. */
	send_range(a, pb, 5, 1, 0, &s);
	expect_all(&s, 5, 1, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(expect_msg(b, 5), s.seq[5]);
	sync_close(b);
	sealpost_client_close(a);
	assert_int_equal(sp_it_broker_stop(&e), 0);
	sp_it_rmrf(e.data_dir);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
}

/* SIGTERM and start again on the same data dir: unacked ones survive, seqs grow. */
static void test_restart(void **state)
{
	static struct sent s;
	static struct got g;
	struct sp_it_broker r;
	char dir[256];
	uint8_t pa[32], pb[32];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb);
	struct sealpost_client *a, *b;
	uint32_t i;

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(sp_it_broker_start(&r, NULL, NULL), 0);
	snprintf(dir, sizeof(dir), "%s", r.data_dir);
	a = dial(&r, ka, false);
	send_range(a, pb, 0, 50, 0, &s);
	expect_all(&s, 0, 50, SEALPOST_STATUS_ACCEPTED);
	sealpost_client_close(a);
	b = dial(&r, kb, true);
	assert_int_equal(recv_backlog(b, &g), 50);
	for (i = 0; i < 20; i++)
		assert_int_equal(sealpost_client_ack(b, g.seq[i]), 0);
	sync_close(b);
	assert_int_equal(sp_it_broker_stop(&r), 0);

	assert_int_equal(sp_it_broker_start(&r, dir, NULL), 0);
	b = dial(&r, kb, false);
	assert_int_equal(recv_backlog(b, &g), 30);
	for (i = 0; i < 30; i++) {
		assert_int_equal(g.idx[i], 20 + i);
		assert_int_equal(g.seq[i], s.seq[20 + i]);
	}
	a = dial(&r, ka, false);
	send_range(a, pb, 50, 1, 0, &s);
	expect_all(&s, 50, 1, SEALPOST_STATUS_ACCEPTED);
	assert_true(s.seq[50] > s.seq[49]);
	assert_int_equal(expect_msg(b, 50), s.seq[50]);
	sync_close(b);
	sealpost_client_close(a);
	assert_int_equal(sp_it_broker_stop(&r), 0);
	/* And once more: all acknowledged, nothing comes back. */
	assert_int_equal(sp_it_broker_start(&r, dir, NULL), 0);
	expect_empty(&r, kb);
	assert_int_equal(sp_it_broker_stop(&r), 0);
	sp_it_rmrf(dir);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
}

/* ------------------------------------------ brokers that must not start --- */

/*
 * Runs sealpostd on data_dir with stdout+stderr captured into out. With
 * ro_tmpfs, in a private mount namespace in which data_dir is an empty
 * read-only tmpfs. Returns the exit status, or -EPERM if the namespace
 * could not be made (no CAP_SYS_ADMIN), -ETIMEDOUT after 15 s.
 */
static int run_sealpostd(const char *data_dir, bool ro_tmpfs, char *out, size_t cap)
{
	const char *bin = getenv("SEALPOSTD");
	int pfd[2], st, waited = 0;
	size_t len = 0;
	pid_t pid;

	assert_non_null(bin);
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The data dir is checked before the listener is opened. */
		char *argv[] = { (char *)bin, "--listen", "127.0.0.1:1", "--metrics-listen", "off",
				 "--data-dir", (char *)data_dir, NULL };

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pfd[1], STDOUT_FILENO);
		dup2(pfd[1], STDERR_FILENO);
		if (ro_tmpfs) {
			if (unshare(CLONE_NEWNS) < 0 ||
			    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
			    mount("tmpfs", data_dir, "tmpfs", MS_RDONLY, "size=1m") < 0)
				_exit(125);
		}
		execv(bin, argv);
		_exit(127);
	}
	close(pfd[1]);
	out[0] = '\0';
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 100) == 0) {
			if (++waited > 150) {
				kill(pid, SIGKILL);
				waitpid(pid, &st, 0);
				close(pfd[0]);
				return -ETIMEDOUT;
			}
			continue;
		}
		if (len + 1 >= cap)
			break;
		n = read(pfd[0], out + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		out[len] = '\0';
	}
	close(pfd[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 125 && ro_tmpfs)
		return -EPERM;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A second sealpostd on a data dir in use: a clear error, exit 1, and the
 * first one is unharmed. */
static void test_second_broker_locked(void **state)
{
	static struct sent s;
	uint8_t pa[32], pb[32];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb);
	struct sealpost_client *a;
	char out[4096];

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(run_sealpostd(broker.data_dir, false, out, sizeof(out)), 1);
	if (!strstr(out, "locked"))
		fail_msg("no clear error: %s", out);
	a = dial(&broker, ka, false);
	send_range(a, pb, 0, 1, 0, &s);
	expect_all(&s, 0, 1, SEALPOST_STATUS_ACCEPTED);
	sealpost_client_close(a);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
}

static void test_data_dir_not_writable(void **state)
{
	char dir[64], path[128], out[4096];
	int fd, r;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sp-it-mb-XXXXXX");
	assert_non_null(mkdtemp(dir));
	/* A path under a regular file can never be created (root or not). */
	snprintf(path, sizeof(path), "%s/file", dir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/file/data", dir);
	assert_int_equal(run_sealpostd(path, false, out, sizeof(out)), 1);
	if (!strstr(out, "data directory") || !strstr(out, "Not a directory"))
		fail_msg("no clear error: %s", out);

	/* An empty read-only file system (root ignores permission bits, not
	 * MS_RDONLY): in a private mount namespace. */
	snprintf(path, sizeof(path), "%s/ro", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	r = run_sealpostd(path, true, out, sizeof(out));
	if (r == -EPERM) {
		print_message("read-only data dir: no mount namespace here (skipped)\n");
	} else {
		assert_int_equal(r, 1);
		if (!strstr(out, "Read-only file system"))
			fail_msg("no clear error: %s", out);
	}
	sp_it_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offline_10000),
		cmocka_unit_test(test_unacked_come_back),
		cmocka_unit_test(test_order_across_drain),
		cmocka_unit_test(test_takeover),
		cmocka_unit_test(test_online_only),
		cmocka_unit_test(test_dedup_retry),
		cmocka_unit_test(test_ack_foreign_and_unknown),
		cmocka_unit_test(test_second_broker_locked),
		cmocka_unit_test(test_quota),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_restart),
		cmocka_unit_test(test_data_dir_not_writable),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
