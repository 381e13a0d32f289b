/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_crash.c: kill -9 the broker under load, several times, and prove that
 * every envelope it ACCEPTED is delivered afterwards.
 *
 * One data directory, ROUNDS rounds. Each round starts sealpostd on it
 * (--fsync never, the last round --fsync always), connects a sender that
 * first retries, with their original client_id, the envelopes whose result
 * it never received, then sends new ones as fast as a window allows; in some
 * rounds the recipient is connected too (manual acks, never acking), so
 * envelopes also travel the live path. After a seeded random number of
 * results the broker is killed with SIGKILL mid-stream. A last start retries
 * what is still unknown, then the recipient drains its mailbox:
 *
 *   - every envelope ever ACCEPTED is delivered, with the seq it was
 *     accepted with (nothing lost, kill -9 keeps the WAL in both modes);
 *   - every envelope the recipient saw live before a kill is delivered again
 *     (it was never acked; nothing is sent before the commit);
 *   - deliveries come in increasing seq order, and nothing refused is;
 *   - an envelope is delivered more than once only if some send of it never
 *     got its result (at-least-once; dedup of the retries should make even
 *     that rare, and the count is printed).
 *
 * The seed is fixed (reproducible) unless SP_CRASH_SEED is set; it is
 * printed. Bounded: ROUNDS kills, each after at most KILL_MAX results.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "sealpost.h"
#include "support.h"

enum {
	ROUNDS = 6,             /* kills; the last one with --fsync always */
	MAX_ENV = 16000,        /* envelopes over the whole test, at most */
	WINDOW = 256,           /* sends without a result */
	KILL_MIN = 100,         /* results in a round before its kill, at least */
	KILL_SPREAD = 1200,     /* ... plus up to this many more */
	TIMEOUT_MS = 20000,
	MSG_MAX = 300,
	DEFAULT_SEED = 20261128,
};

enum state { UNSENT = 0, UNKNOWN, ACCEPTED, REFUSED };

struct env {
	uint64_t id;            /* client_id of every attempt (retries reuse it) */
	uint64_t seq;           /* when ACCEPTED */
	uint8_t state;
	bool unknown_ever;      /* some attempt never got its result */
	bool seen_live;         /* the recipient got it before a kill (live or backlog) */
	uint64_t live_seq;
	uint32_t delivered;     /* in the final drain */
};

static struct env envs[MAX_ENV];
static uint32_t n_envs;
static uint32_t inflight[MAX_ENV];      /* indices in send order, FIFO */
static uint32_t in_head, in_tail;
static uint64_t rng;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static size_t make_msg(char *buf, uint32_t idx)
{
	int n = snprintf(buf, MSG_MAX, "c%u:", idx);
	size_t len = (size_t)n + (idx * 131u) % (MSG_MAX - 16), i;

	for (i = (size_t)n; i < len; i++)
		buf[i] = (char)('A' + (idx ^ i) % 26);
	return len;
}

static uint32_t msg_index(const struct sealpost_event *ev)
{
	char want[MSG_MAX], *end;
	unsigned long idx;
	size_t len;

	assert_true(ev->len > 2 && ev->data[0] == 'c');
	idx = strtoul((const char *)ev->data + 1, &end, 10);
	assert_true(*end == ':' && idx < n_envs);
	len = make_msg(want, (uint32_t)idx);
	if (ev->len != len || memcmp(ev->data, want, len) != 0)
		fail_msg("envelope %lu: content differs", idx);
	return (uint32_t)idx;
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

/* Queues one attempt of envelope idx (a retry when it has an id). */
static void send_one(struct sealpost_client *a, const uint8_t to[32], uint32_t idx)
{
	char buf[MSG_MAX];
	size_t len = make_msg(buf, idx);
	struct env *e = &envs[idx];

	assert_int_equal(sealpost_client_send_ex(a, to, buf, len, 0, e->id, &e->id), 0);
	if (e->state == UNSENT)
		e->state = UNKNOWN;
	inflight[in_tail++ % MAX_ENV] = idx;
}

static void take_result(const struct sealpost_event *ev)
{
	struct env *e;

	assert_true(in_head != in_tail);
	e = &envs[inflight[in_head++ % MAX_ENV]];
	assert_int_equal(ev->client_id, e->id);
	if (ev->status == SEALPOST_STATUS_ACCEPTED) {
		/* A retry of an envelope already accepted is answered with the
		 * original seq (dedup), and an earlier unknown attempt that was in
		 * fact stored must be what the retry maps to. */
		if (e->state == ACCEPTED && e->seq != ev->seq)
			fail_msg("envelope %u: accepted as seq %llu, the retry as %llu",
				 (unsigned)(e - envs), (unsigned long long)e->seq,
				 (unsigned long long)ev->seq);
		e->state = ACCEPTED;
		e->seq = ev->seq;
	} else if (e->state != ACCEPTED) {
		e->state = REFUSED;
		print_message("envelope %u refused: %s\n", (unsigned)(e - envs),
			      sealpost_status_string(ev->status));
	}
}

/* The recipient, connected during a round: records what it sees live. */
static void take_recipient(struct sealpost_client *b)
{
	struct sealpost_event ev;

	while (sealpost_client_next_event(b, &ev, 0) == 1) {
		if (ev.type == SEALPOST_EVENT_MESSAGE) {
			struct env *e = &envs[msg_index(&ev)];

			e->seen_live = true;
			e->live_seq = ev.seq;
		} else if (ev.type == SEALPOST_EVENT_CLOSED) {
			return;
		}
	}
}

/*
 * One round: start, retry unknowns, send new ones; kill -9 after
 * kill_after results (0: no kill, run until every attempt has a result).
 */
static void round_run(const char *dir, const char *fsync, const struct sealpost_key *ka,
		      const struct sealpost_key *kb, const uint8_t pb[32], bool recipient_online,
		      uint32_t kill_after, uint32_t new_max)
{
	const char *args[] = { "--fsync", fsync, "--mailbox-max-count", "1000000",
			       "--mailbox-max-bytes", "1073741824", NULL };
	struct sp_it_broker br;
	struct sealpost_client *a, *b = NULL;
	struct sealpost_event ev;
	uint32_t retry[MAX_ENV], n_retry = 0, next_retry = 0, results = 0, new_sent = 0, i;
	int st;

	assert_int_equal(sp_it_broker_start(&br, dir, args), 0);
	for (i = 0; i < n_envs; i++)
		if (envs[i].state == UNKNOWN)
			retry[n_retry++] = i;
	in_head = in_tail = 0;
	a = dial(&br, ka, false);
	if (recipient_online)
		b = dial(&br, kb, true);
	for (;;) {
		struct pollfd pfd[2];

		while (in_tail - in_head < WINDOW) {
			if (next_retry < n_retry) {
				send_one(a, pb, retry[next_retry++]);
			} else if (new_sent < new_max && n_envs < MAX_ENV) {
				send_one(a, pb, n_envs++);
				new_sent++;
			} else {
				break;
			}
		}
		if (in_head == in_tail)
			break;          /* every attempt answered (no-kill round) */
		pfd[0] = (struct pollfd){ .fd = sealpost_client_fd(a), .events = sealpost_client_poll_events(a) };
		if (b)
			pfd[1] = (struct pollfd){ .fd = sealpost_client_fd(b),
						  .events = sealpost_client_poll_events(b) };
		if (poll(pfd, b ? 2 : 1, TIMEOUT_MS) <= 0)
			fail_msg("stuck: %u results, %u in flight", results, in_tail - in_head);
		assert_int_equal(sealpost_client_step(a), 0);
		if (b)
			sealpost_client_step(b);
		while (sealpost_client_next_event(a, &ev, 0) == 1) {
			if (ev.type == SEALPOST_EVENT_DRAINED)
				continue;
			if (ev.type != SEALPOST_EVENT_RESULT)
				fail_msg("sender: event %d (status %d error %d)", ev.type, ev.status,
					 ev.error);
			take_result(&ev);
			results++;
			if (kill_after && results >= kill_after)
				break;
		}
		if (b)
			take_recipient(b);
		if (kill_after && results >= kill_after)
			break;
	}
	if (kill_after) {
		/* Mid-stream: up to WINDOW sends without their result. */
		st = sp_it_broker_kill(&br);
		assert_true(st != -EPROTO);
		for (i = in_head; i != in_tail; i++)
			envs[inflight[i % MAX_ENV]].unknown_ever = true;
		print_message("round --fsync %s%s: killed after %u results, %u unanswered\n",
			      fsync, b ? " (recipient online)" : "", results, in_tail - in_head);
	} else {
		assert_int_equal(sealpost_client_sync(a, TIMEOUT_MS), 0);
		st = sp_it_broker_stop(&br);
		assert_int_equal(st, 0);
	}
	sealpost_client_close(a);
	sealpost_client_close(b);
}

static void test_crash(void **state)
{
	const char *seed_env = getenv("SP_CRASH_SEED");
	struct sp_it_broker br;
	struct sealpost_key *ka = NULL, *kb = NULL;
	uint8_t pb[32];
	char dir[256];
	struct sealpost_client *b;
	struct sealpost_event ev;
	uint32_t r, i, accepted = 0, delivered = 0, dups = 0, live = 0, refused = 0;
	uint64_t last_seq = 0, count = 0;

	(void)state;
	rng = seed_env ? strtoull(seed_env, NULL, 0) : DEFAULT_SEED;
	if (!rng)
		rng = DEFAULT_SEED;
	print_message("seed %llu (SP_CRASH_SEED to change)\n", (unsigned long long)rng);
	assert_int_equal(sealpost_key_generate(&ka), 0);
	assert_int_equal(sealpost_key_generate(&kb), 0);
	sealpost_key_public(kb, pb);

	/* Make the data dir by starting once; keep it for every round. */
	assert_int_equal(sp_it_broker_start(&br, NULL, NULL), 0);
	snprintf(dir, sizeof(dir), "%s", br.data_dir);
	assert_int_equal(sp_it_broker_stop(&br), 0);

	for (r = 0; r < ROUNDS; r++)
		round_run(dir, r == ROUNDS - 1 ? "always" : "never", ka, kb, pb, r % 2 == 1,
			  KILL_MIN + rnd() % KILL_SPREAD, MAX_ENV / ROUNDS);
	/* Retry whatever is still unknown, without a kill. */
	round_run(dir, "never", ka, kb, pb, false, 0, 0);

	assert_int_equal(sp_it_broker_start(&br, dir, NULL), 0);
	b = dial(&br, kb, false);
	for (;;) {
		struct env *e;

		assert_int_equal(sealpost_client_next_event(b, &ev, TIMEOUT_MS), 1);
		if (ev.type == SEALPOST_EVENT_DRAINED) {
			count = ev.count;
			break;
		}
		if (ev.type != SEALPOST_EVENT_MESSAGE)
			fail_msg("recipient: event %d (status %d error %d)", ev.type, ev.status,
				 ev.error);
		assert_true(ev.seq > last_seq);
		last_seq = ev.seq;
		e = &envs[msg_index(&ev)];
		if (e->state == ACCEPTED && e->delivered == 0 && ev.seq != e->seq)
			fail_msg("envelope %u: accepted as seq %llu, delivered as %llu",
				 (unsigned)(e - envs), (unsigned long long)e->seq,
				 (unsigned long long)ev.seq);
		e->delivered++;
		delivered++;
	}
	assert_int_equal(count, delivered);
	for (i = 0; i < n_envs; i++) {
		struct env *e = &envs[i];

		if (e->state == ACCEPTED)
			accepted++;
		if (e->state == REFUSED)
			refused++;
		if (e->seen_live)
			live++;
		if (e->state == ACCEPTED && !e->delivered)
			fail_msg("LOST: envelope %u accepted as seq %llu, never delivered", i,
				 (unsigned long long)e->seq);
		if (e->seen_live && !e->delivered)
			fail_msg("LOST: envelope %u seen live as seq %llu, not delivered after "
				 "the crash", i, (unsigned long long)e->live_seq);
		if (e->state == REFUSED && e->delivered && !e->unknown_ever)
			fail_msg("envelope %u was refused but delivered", i);
		if (e->delivered > 1) {
			if (!e->unknown_ever)
				fail_msg("envelope %u delivered %u times, every result received", i,
					 e->delivered);
			dups++;
		}
	}
	print_message("%u envelopes, %u accepted, %u refused, %u seen live before a kill, "
		      "%u delivered, %u delivered more than once\n", n_envs, accepted, refused,
		      live, delivered, dups);
	/* The final retry round answered everything. */
	assert_int_equal(accepted + refused, n_envs);
	assert_true(accepted > 0 && live > 0);

	/* Acknowledged (automatically) as taken: the mailbox is empty now. */
	assert_int_equal(sealpost_client_sync(b, TIMEOUT_MS), 0);
	sealpost_client_close(b);
	b = dial(&br, kb, false);
	assert_int_equal(sealpost_client_next_event(b, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_DRAINED);
	assert_int_equal(ev.count, 0);
	sealpost_client_close(b);
	assert_int_equal(sp_it_broker_stop(&br), 0);
	sp_it_rmrf(dir);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crash),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
