/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_hostile_conn.c: hostile clients against a real sealpostd, on the
 * connection side. Each test starts its own broker with the limit under
 * test set low, attacks it with clients that speak the protocol by hand
 * (support_raw), and shows three things: the limit stopped the attack (the
 * close reason or refusal it names), honest devices were still served
 * (their envelopes delivered, a Ping answered), and the attacker got what
 * the limit allows and no more. Figures (what the attack cost, how long an
 * honest Ping took meanwhile) are printed, never asserted: tests do not
 * time things.
 *
 * Loopback only, bounded in count and time. Honest devices connect from
 * 127.0.0.2 when a per-source limit is under test, attackers from
 * 127.0.0.1 (all of 127/8 is the loopback interface).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "support.h"
#include "support_raw.h"

enum {
	TIMEOUT_MS = 10000,
	WAIT_BOUND_MS = 10000,
};

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* --- metrics ------------------------------------------------------------------ */


/* One series' value from a scrape (name and labels as rendered); -1 if absent. */
static double metric(const struct sp_it_broker *b, const char *series)
{
	size_t sl = strlen(series);
	double v = -1;
	char *body;

	if (sp_it_http_get(b->metrics_port, "/metrics", &body) != 200 || !body) {
		free(body);
		return -1;
	}
	for (const char *l = body; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (strncmp(l, series, sl) == 0 && l[sl] == ' ') {
			v = strtod(l + sl + 1, NULL);
			break;
		}
	free(body);
	return v;
}

/* Waits (bounded) until series reaches at least want; returns its value. */
static double wait_metric(const struct sp_it_broker *b, const char *series, double want)
{
	double v = -1;

	for (int w = 0; w < WAIT_BOUND_MS; w += 20) {
		v = metric(b, series);
		if (v >= want)
			break;
		sleep_ms(20);
	}
	return v;
}

/* --- honest devices ------------------------------------------------------------- */

/* A Ping round trip on c; its time in ms, or -1. */
static double ping_ms(struct sp_raw *c, uint64_t id)
{
	uint8_t buf[64];
	struct sp_raw_frame f;
	size_t off = 0;
	double t0 = now_ms();

	if (sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, id, NULL, 0) ||
	    sp_raw_send_plain(c, buf, off) ||
	    sp_raw_wait_frame(c, SP_FRAME_PONG, &f, TIMEOUT_MS) || f.id != id)
		return -1;
	return now_ms() - t0;
}

/* from sends to: ACCEPTED, and to receives it (live). */
static void exchange(struct sp_raw *from, struct sp_raw *to, uint64_t client_id)
{
	uint8_t body[48];
	struct sp_raw_frame f;
	uint32_t status = 0;

	memset(body, 'h', sizeof(body));
	assert_int_equal(sp_raw_send_envelope(from, to->s_pub, client_id, body, sizeof(body)), 0);
	assert_int_equal(sp_raw_expect_result(from, client_id, &status, TIMEOUT_MS), 0);
	assert_int_equal(status, SP_STATUS_ACCEPTED);
	assert_int_equal(sp_raw_wait_frame(to, SP_FRAME_DELIVER, &f, TIMEOUT_MS), 0);
	assert_int_equal(f.body_len, sizeof(body));
}

static void open_device(struct sp_raw *c, const struct sp_it_broker *b)
{
	struct sp_raw_frame f;

	assert_int_equal(sp_raw_open(c, b->port, SP_PREAMBLE_PATTERN_IK, b->server_pub), 0);
	assert_int_equal(sp_raw_wait_frame(c, SP_FRAME_DRAINED, &f, TIMEOUT_MS), 0);
}

/* --- ack flood -------------------------------------------------------------------- */

enum {
	ACK_UNKNOWN_MAX = 2000,
	ACK_MAILBOX_MAX = 100,          /* what a device can hold: at most this many lookups */
	FLOOD_MSGS = 40,                /* transport messages of acks the attacker sends, at most */
};

/*
 * An authenticated device sends transport messages full of Acks for seqs
 * it was never sent. Each unknown ack used to cost a store lookup; now
 * acks beyond what the device can hold (its mailbox quota plus what it was
 * sent) are dropped without one, and after ack-unknown-max of them the
 * connection gets GoAway PROTOCOL (reason ack_flood). Another device is
 * served meanwhile and afterwards.
 */
static void test_ack_flood(void **state)
{
	char unknown_max[16], mailbox_max[16];
	const char *extra[] = { "--ack-unknown-max", unknown_max, "--mailbox-max-count",
				mailbox_max, NULL };
	struct sp_it_broker b;
	struct sp_raw alice = { .fd = -1 }, bob = { .fd = -1 }, mallory = { .fd = -1 };
	static uint8_t plain[SP_TRANSPORT_PLAINTEXT_MAX];
	uint64_t rng = 1, sent_acks = 0, per_msg = 0;
	double t0, flood_ms, rtt, rtt_during;
	uint32_t code = 0;
	int msgs = 0;

	(void)state;
	snprintf(unknown_max, sizeof(unknown_max), "%d", ACK_UNKNOWN_MAX);
	snprintf(mailbox_max, sizeof(mailbox_max), "%d", ACK_MAILBOX_MAX);
	assert_int_equal(sp_it_broker_start(&b, NULL, extra), 0);
	open_device(&alice, &b);
	open_device(&bob, &b);
	open_device(&mallory, &b);
	exchange(&alice, &bob, 1);

	/* One Ack (one seq) per frame, as many frames as fit in a message. */
	t0 = now_ms();
	for (; msgs < FLOOD_MSGS; msgs++) {
		size_t off = 0;

		per_msg = 0;
		while (off + 32 < sizeof(plain)) {
			rng = rng * 6364136223846793005ull + 1442695040888963407ull;
			if (sp_raw_put_simple(plain, sizeof(plain), &off, SP_FRAME_ACK,
					      (rng >> 16) | 1, NULL, 0))
				break;
			per_msg++;
		}
		if (sp_raw_send_plain(&mallory, plain, off))
			break;          /* the broker closed it */
		sent_acks += per_msg;
	}
	/* While the broker works through what was written. */
	rtt_during = ping_ms(&alice, 6);
	assert_true(rtt_during >= 0);
	assert_int_equal(sp_raw_expect_goaway(&mallory, &code, TIMEOUT_MS, NULL), 0);
	flood_ms = now_ms() - t0;
	assert_int_equal(code, SP_STATUS_GOAWAY_PROTOCOL);
	assert_true(wait_metric(&b, "sealpost_connections_closed_total{reason=\"ack_flood\"}", 1) ==
		    1);

	/* The others are served: a Ping, an envelope each way. */
	rtt = ping_ms(&alice, 7);
	assert_true(rtt >= 0);
	exchange(&alice, &bob, 2);
	exchange(&bob, &alice, 3);
	print_message("ack flood: %" PRIu64 " acks in %d messages (%" PRIu64 " per message) "
		      "written, GoAway after %.0f ms; honest ping during %.2f ms, after %.2f ms\n",
		      sent_acks, msgs, per_msg, flood_ms, rtt_during, rtt);

	sp_raw_close(&alice);
	sp_raw_close(&bob);
	sp_raw_close(&mallory);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	assert_int_equal(sp_it_log_sanitizer_reports(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/* --- IK replays ------------------------------------------------------------------- */

struct capture {
	uint8_t msg[SP_NOISE_MSG_MAX];
	size_t len;
};

static int capture_msg1(int msg_no, uint8_t *msg, size_t *len, size_t cap, void *arg)
{
	struct capture *k = arg;

	(void)cap;
	if (msg_no == 1) {
		memcpy(k->msg, msg, *len);
		k->len = *len;
	}
	return 0;
}

/*
 * A captured IK message 1 replayed on new connections: the broker answers
 * each with a message 2 (it cannot tell a replay), but a replay is never
 * proven, so it is not counted as a successful handshake: each one that
 * ends counts as failed, and the failure alert sees a replay flood.
 */
static void test_ik_replay_not_counted(void **state)
{
	enum { REPLAYS = 5 };
	static const char ok[] = "sealpost_handshakes_total{pattern=\"ik\",outcome=\"ok\"}";
	static const char failed[] =
		"sealpost_handshakes_total{pattern=\"ik\",outcome=\"failed\"}";
	struct sp_it_broker b;
	struct sp_raw alice = { .fd = -1 };
	struct capture k = { .len = 0 };
	struct sp_raw_opts o = { .hook = capture_msg1, .hook_arg = &k };
	struct sp_raw_frame f;
	double ok0, failed0;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, NULL), 0);
	assert_int_equal(sp_raw_init(&alice), 0);
	assert_int_equal(sp_raw_connect(&alice, b.port), 0);
	assert_int_equal(sp_raw_handshake(&alice, SP_PREAMBLE_PATTERN_IK, b.server_pub, &o), 0);
	assert_int_equal(sp_raw_wait_frame(&alice, SP_FRAME_DRAINED, &f, TIMEOUT_MS), 0);
	assert_true(k.len > 0);
	ok0 = wait_metric(&b, ok, 1);
	assert_true(ok0 >= 1);
	failed0 = metric(&b, failed);

	for (int i = 0; i < REPLAYS; i++) {
		uint8_t pre[SP_PREAMBLE_LEN], pfx[SP_LEN_PREFIX], in[SP_LEN_PREFIX + SP_NOISE_MSG_MAX];
		int fd = sp_it_tcp_connect(b.port);
		size_t got = 0;

		assert_true(fd >= 0);
		sp_raw_preamble(pre, SP_PREAMBLE_PATTERN_IK);
		pfx[0] = (uint8_t)(k.len >> 8);
		pfx[1] = (uint8_t)k.len;
		assert_int_equal(write(fd, pre, sizeof(pre)), (ssize_t)sizeof(pre));
		assert_int_equal(write(fd, pfx, sizeof(pfx)), (ssize_t)sizeof(pfx));
		assert_int_equal(write(fd, k.msg, k.len), (ssize_t)k.len);
		/* Message 2 comes back, as for the original (unreadable here). */
		while (got < SP_LEN_PREFIX) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			ssize_t n;

			assert_true(poll(&p, 1, TIMEOUT_MS) == 1);
			n = read(fd, in + got, sizeof(in) - got);
			assert_true(n > 0);
			got += (size_t)n;
		}
		close(fd);
	}
	assert_true(wait_metric(&b, failed, failed0 + REPLAYS) == failed0 + REPLAYS);
	assert_true(metric(&b, ok) == ok0);
	/* The device itself was not disturbed. */
	assert_true(ping_ms(&alice, 9) >= 0);
	print_message("IK replays: %d answered, ok stayed %.0f, failed %.0f -> %.0f\n", REPLAYS,
		      ok0, failed0, failed0 + REPLAYS);
	sp_raw_close(&alice);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/* --- one source fills the table ------------------------------------------------ */

enum {
	TABLE_MAX = 64,                 /* --max-conns */
	SRC_MAX = 32,                   /* --max-conns-per-source */
	SRC_UNAUTH_MAX = 16,            /* --max-unauth-per-source */
	HALF_OPEN = 300,                /* attacker sockets that never send a byte */
};

/*
 * Hundreds of half-open sockets from 127.0.0.1 (connected, never a byte):
 * once the table was full every honest client was refused. Now one source
 * holds at most max-unauth-per-source unproven connections (the rest are
 * closed at accept and counted as max_unauth_per_source), so devices from
 * 127.0.0.2 connect, handshake and exchange an envelope meanwhile.
 */
static void test_one_source_fills_table(void **state)
{
	char tmax[16], smax[16], umax[16];
	const char *extra[] = { "--max-conns", tmax, "--max-conns-per-source", smax,
				"--max-unauth-per-source", umax, "--handshake-rate", "0", NULL };
	static const char refused[] =
		"sealpost_connections_closed_total{reason=\"max_unauth_per_source\"}";
	struct sp_it_broker b;
	struct sp_raw alice = { .fd = -1 }, bob = { .fd = -1 };
	int fds[HALF_OPEN], opened = 0;
	double n;

	(void)state;
	snprintf(tmax, sizeof(tmax), "%d", TABLE_MAX);
	snprintf(smax, sizeof(smax), "%d", SRC_MAX);
	snprintf(umax, sizeof(umax), "%d", SRC_UNAUTH_MAX);
	assert_int_equal(sp_it_broker_start(&b, NULL, extra), 0);
	for (int i = 0; i < HALF_OPEN; i++) {
		fds[i] = sp_it_tcp_connect(b.port);
		if (fds[i] >= 0)
			opened++;
	}
	/* The kernel completes them all; the broker keeps SRC_UNAUTH_MAX. */
	n = wait_metric(&b, refused, opened - SRC_UNAUTH_MAX);
	assert_true(n >= opened - SRC_UNAUTH_MAX);
	assert_true(n <= opened);

	assert_int_equal(sp_raw_init(&alice), 0);
	assert_int_equal(sp_raw_init(&bob), 0);
	alice.bind_src = "127.0.0.2";
	bob.bind_src = "127.0.0.2";
	open_device(&alice, &b);
	open_device(&bob, &b);
	exchange(&alice, &bob, 1);
	assert_true(ping_ms(&alice, 2) >= 0);
	print_message("one source: %d half-open sockets, %.0f refused at accept "
		      "(max_unauth_per_source), 2 devices from 127.0.0.2 served\n", opened, n);

	for (int i = 0; i < HALF_OPEN; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	sp_raw_close(&alice);
	sp_raw_close(&bob);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/*
 * Proven connections count against max-conns-per-source only: devices from
 * one source beyond it are refused (max_conns_per_source), another
 * source is not.
 */
static void test_per_source_limit(void **state)
{
	enum { DEVS = 4 };
	const char *extra[] = { "--max-conns-per-source", "3", NULL };
	static const char refused[] =
		"sealpost_connections_closed_total{reason=\"max_conns_per_source\"}";
	struct sp_it_broker b;
	struct sp_raw d[DEVS], other = { .fd = -1 };
	int fd;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, extra), 0);
	/* The start-up probe's connection is gone (it counted for 127.0.0.1). */
	for (int w = 0; w < WAIT_BOUND_MS && metric(&b, "sealpost_connections_open") != 0; w += 20)
		sleep_ms(20);
	for (int i = 0; i < DEVS - 1; i++) {
		d[i].fd = -1;
		assert_int_equal(sp_raw_init(&d[i]), 0);
		open_device(&d[i], &b);
	}
	/* A fourth from 127.0.0.1 is closed at accept. */
	fd = sp_it_tcp_connect(b.port);
	assert_true(fd >= 0);
	assert_true(wait_metric(&b, refused, 1) == 1);
	close(fd);
	assert_int_equal(sp_raw_init(&other), 0);
	other.bind_src = "127.0.0.2";
	open_device(&other, &b);
	exchange(&d[0], &other, 1);
	/* One leaves: its slot of the source is free again. */
	sp_raw_close(&d[2]);
	{
		struct sp_raw again = { .fd = -1 };
		int ok = -1;

		assert_int_equal(sp_raw_init(&again), 0);
		for (int w = 0; w < WAIT_BOUND_MS && ok != 0; w += 50) {
			struct sp_raw_frame f;

			ok = sp_raw_open(&again, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub);
			if (ok == 0)
				ok = sp_raw_wait_frame(&again, SP_FRAME_DRAINED, &f, TIMEOUT_MS);
			if (ok) {
				sp_raw_disconnect(&again);
				sleep_ms(50);
			}
		}
		assert_int_equal(ok, 0);
		sp_raw_close(&again);
	}
	for (int i = 0; i < DEVS - 2; i++)
		sp_raw_close(&d[i]);
	sp_raw_close(&other);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/*
 * Many sources (here: every per-source limit off) fill the table with
 * silent sockets: a newcomer takes the place of the oldest connection that
 * has not proven a key (reason evicted), so honest devices still get in.
 * Before, the full table refused them (reason max_conns).
 */
static void test_full_table_evicts_unproven(void **state)
{
	enum { TABLE = 32, SILENT = 200 };
	const char *extra[] = { "--max-conns", "32", "--max-conns-per-source", "0",
				"--max-unauth-per-source", "0", "--handshake-rate", "0",
				"--hello-timeout", "600000", "--handshake-timeout", "600000", NULL };
	static const char evicted[] = "sealpost_connections_closed_total{reason=\"evicted\"}";
	static const char full[] = "sealpost_connections_closed_total{reason=\"max_conns\"}";
	struct sp_it_broker b;
	struct sp_raw alice = { .fd = -1 }, bob = { .fd = -1 };
	int fds[SILENT], opened = 0;
	double n, refused;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, extra), 0);
	for (int i = 0; i < SILENT; i++) {
		fds[i] = sp_it_tcp_connect(b.port);
		if (fds[i] >= 0)
			opened++;
	}
	/* Each socket beyond the table either took an unproven one's place or,
	 * in a burst that outran the reserve slots (the evicted ones' last
	 * completions), was refused. */
	for (int w = 0; w < WAIT_BOUND_MS; w += 20) {
		if (metric(&b, evicted) + metric(&b, full) >= opened - TABLE)
			break;
		sleep_ms(20);
	}
	n = metric(&b, evicted);
	assert_true(n >= 1);
	assert_true(n + metric(&b, full) >= opened - TABLE);
	open_device(&alice, &b);
	open_device(&bob, &b);
	exchange(&alice, &bob, 1);
	exchange(&bob, &alice, 2);
	refused = metric(&b, full);
	/* The devices were never refused, whatever else was. */
	print_message("full table: %d silent sockets into %d slots, %.0f evicted, %.0f refused "
		      "max_conns; 2 devices connected and exchanged\n", opened, TABLE,
		      metric(&b, evicted), refused);
	for (int i = 0; i < SILENT; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	sp_raw_close(&alice);
	sp_raw_close(&bob);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/* A socket that sends nothing (or only the preamble) is closed at
 * hello-timeout; a device that handshook is not. */
static void test_hello_timeout(void **state)
{
	enum { SILENT = 20 };
	const char *extra[] = { "--hello-timeout", "300", NULL };
	static const char timeout[] =
		"sealpost_connections_closed_total{reason=\"hello_timeout\"}";
	struct sp_it_broker b;
	struct sp_raw alice = { .fd = -1 }, bob = { .fd = -1 };
	uint8_t pre[SP_PREAMBLE_LEN];
	int fds[SILENT];

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, extra), 0);
	open_device(&alice, &b);
	open_device(&bob, &b);
	sp_raw_preamble(pre, SP_PREAMBLE_PATTERN_XX);
	for (int i = 0; i < SILENT; i++) {
		fds[i] = sp_it_tcp_connect(b.port);
		assert_true(fds[i] >= 0);
		if (i % 2)      /* half of them send the preamble, then nothing */
			assert_int_equal(write(fds[i], pre, sizeof(pre)), (ssize_t)sizeof(pre));
	}
	assert_true(wait_metric(&b, timeout, SILENT) >= SILENT);
	for (int i = 0; i < SILENT; i++) {
		struct pollfd p = { .fd = fds[i], .events = POLLIN };
		char byte;

		/* Closed by the broker: EOF or a reset, never data. */
		assert_int_equal(poll(&p, 1, TIMEOUT_MS), 1);
		assert_true(read(fds[i], &byte, 1) <= 0);
		close(fds[i]);
	}
	/* The devices connected before are still served. */
	exchange(&alice, &bob, 1);
	sp_raw_close(&alice);
	sp_raw_close(&bob);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/*
 * A connect-and-close flood against a small handshake rate: the token is
 * charged at the first handshake message, so sockets that never send one
 * spend nothing and an honest device connects right after (before, every
 * accept took a token and the honest device was refused: handshake_rate).
 * Then handshakes beyond the rate are refused at their first message.
 */
static void test_connect_close_flood(void **state)
{
	enum { FLOOD = 300, RATE = 3 };
	const char *extra[] = { "--handshake-rate", "3", NULL };
	static const char limited[] =
		"sealpost_connections_closed_total{reason=\"handshake_rate\"}";
	struct sp_it_broker b;
	struct sp_raw alice = { .fd = -1 }, more[RATE + 10];
	int refused = 0;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, extra), 0);
	for (int i = 0; i < FLOOD; i++) {
		int fd = sp_it_tcp_connect(b.port);

		if (fd >= 0)
			close(fd);
	}
	open_device(&alice, &b);
	assert_true(metric(&b, limited) == 0);
	/* Handshakes themselves are held to the rate (burst = rate). */
	for (int i = 0; i < RATE + 10; i++) {
		struct sp_raw_frame f;

		more[i].fd = -1;
		assert_int_equal(sp_raw_init(&more[i]), 0);
		if (sp_raw_open(&more[i], b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub) != 0 ||
		    sp_raw_wait_frame(&more[i], SP_FRAME_DRAINED, &f, TIMEOUT_MS) != 0)
			refused++;
	}
	assert_true(refused >= 1);
	assert_true(wait_metric(&b, limited, refused) >= refused);
	print_message("connect-and-close flood: %d sockets, then a device connected; of %d "
		      "handshakes in a burst against rate %d, %d refused (handshake_rate)\n",
		      FLOOD, RATE + 10, RATE, refused);
	for (int i = 0; i < RATE + 10; i++)
		sp_raw_close(&more[i]);
	sp_raw_close(&alice);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/* One replay of an IK message 1 (k) from src: 1 if the broker answered it
 * (a message 2 came back), 0 if it closed the connection first. */
static int replay_from(const struct sp_it_broker *b, const char *src, const struct capture *k)
{
	uint8_t pre[SP_PREAMBLE_LEN], pfx[SP_LEN_PREFIX], in[64];
	struct pollfd p;
	int fd = sp_it_tcp_connect_from(b->port, src);
	ssize_t n;

	assert_true(fd >= 0);
	sp_raw_preamble(pre, SP_PREAMBLE_PATTERN_IK);
	pfx[0] = (uint8_t)(k->len >> 8);
	pfx[1] = (uint8_t)k->len;
	assert_int_equal(write(fd, pre, sizeof(pre)), (ssize_t)sizeof(pre));
	assert_int_equal(write(fd, pfx, sizeof(pfx)), (ssize_t)sizeof(pfx));
	assert_int_equal(write(fd, k->msg, k->len), (ssize_t)k->len);
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, TIMEOUT_MS), 1);
	n = read(fd, in, sizeof(in));
	close(fd);
	return n > 0;
}

/*
 * Finding 4, per source: 127.0.0.1 floods first with sockets that connect
 * and close (they spend nothing: the token is charged at the first
 * handshake message), then with handshake messages (replays of a captured
 * IK message 1, which need no key). Its own bucket empties and its
 * handshakes are closed (reason handshake_rate_source); the global bucket
 * is not touched by what was refused, and honest devices connecting from
 * 127.0.0.2 meanwhile are served.
 */
static void test_handshake_flood_per_source(void **state)
{
	enum { CLOSE_FLOOD = 300, HS_FLOOD = 60 };
	const char *extra[] = { "--handshake-rate-per-source", "1", "--handshake-burst-per-source",
				"2", "--handshake-rate", "1000", NULL };
	static const char by_source[] =
		"sealpost_connections_closed_total{reason=\"handshake_rate_source\"}";
	static const char global[] =
		"sealpost_connections_closed_total{reason=\"handshake_rate\"}";
	struct sp_it_broker b;
	struct sp_raw alice = { .fd = -1 }, bob = { .fd = -1 }, cap = { .fd = -1 };
	struct capture k = { .len = 0 };
	struct sp_raw_opts o = { .hook = capture_msg1, .hook_arg = &k };
	struct sp_raw_frame f;
	int answered = 0, refused = 0;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, extra), 0);
	/* A message 1 to replay, captured from a third source. */
	assert_int_equal(sp_raw_init(&cap), 0);
	cap.bind_src = "127.0.0.3";
	assert_int_equal(sp_raw_connect(&cap, b.port), 0);
	assert_int_equal(sp_raw_handshake(&cap, SP_PREAMBLE_PATTERN_IK, b.server_pub, &o), 0);
	assert_int_equal(sp_raw_wait_frame(&cap, SP_FRAME_DRAINED, &f, TIMEOUT_MS), 0);
	assert_true(k.len > 0);

	for (int i = 0; i < CLOSE_FLOOD; i++) {
		int fd = sp_it_tcp_connect_from(b.port, "127.0.0.1");

		if (fd >= 0)
			close(fd);
	}
	/* Nothing spent: the flooding source itself still gets its burst. */
	assert_int_equal(replay_from(&b, "127.0.0.1", &k), 1);
	assert_true(metric(&b, by_source) == 0);

	assert_int_equal(sp_raw_init(&alice), 0);
	alice.bind_src = "127.0.0.2";
	open_device(&alice, &b);
	for (int i = 0; i < HS_FLOOD; i++) {
		if (replay_from(&b, "127.0.0.1", &k))
			answered++;
		else
			refused++;
	}
	assert_true(refused >= 1);
	assert_true(wait_metric(&b, by_source, refused) == refused);
	assert_true(metric(&b, global) == 0);
	/* Honest devices from another source: connected and served. */
	assert_int_equal(sp_raw_init(&bob), 0);
	bob.bind_src = "127.0.0.2";
	open_device(&bob, &b);
	exchange(&alice, &bob, 1);
	exchange(&bob, &alice, 2);
	assert_true(ping_ms(&cap, 3) >= 0);
	print_message("handshake flood from one source: %d connect-and-close sockets spent "
		      "nothing; of %d replayed message 1s, %d answered, %d closed "
		      "(handshake_rate_source); devices from 127.0.0.2 served\n",
		      CLOSE_FLOOD, HS_FLOOD, answered, refused);
	sp_raw_close(&alice);
	sp_raw_close(&bob);
	sp_raw_close(&cap);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/*
 * The global cap: many sources, each within its own bucket, together
 * beyond handshake-rate: the excess is closed as handshake_rate (not
 * handshake_rate_source).
 */
static void test_handshake_global_cap(void **state)
{
	enum { SOURCES = 20, RATE = 5 };
	const char *extra[] = { "--handshake-rate", "5", NULL };
	static const char by_source[] =
		"sealpost_connections_closed_total{reason=\"handshake_rate_source\"}";
	static const char global[] =
		"sealpost_connections_closed_total{reason=\"handshake_rate\"}";
	struct sp_it_broker b;
	struct sp_raw cap = { .fd = -1 };
	struct capture k = { .len = 0 };
	struct sp_raw_opts o = { .hook = capture_msg1, .hook_arg = &k };
	int refused = 0;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, extra), 0);
	assert_int_equal(sp_raw_init(&cap), 0);
	assert_int_equal(sp_raw_connect(&cap, b.port), 0);
	assert_int_equal(sp_raw_handshake(&cap, SP_PREAMBLE_PATTERN_IK, b.server_pub, &o), 0);
	for (int i = 0; i < SOURCES; i++) {
		char src[32];

		snprintf(src, sizeof(src), "127.0.1.%d", i + 1);
		refused += !replay_from(&b, src, &k);
	}
	assert_true(refused >= 1);
	assert_true(wait_metric(&b, global, refused) == refused);
	assert_true(metric(&b, by_source) == 0);
	print_message("global cap: %d sources, one handshake each, against rate %d: %d closed "
		      "(handshake_rate)\n", SOURCES, RATE, refused);
	sp_raw_close(&cap);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ack_flood),
		cmocka_unit_test(test_ik_replay_not_counted),
		cmocka_unit_test(test_one_source_fills_table),
		cmocka_unit_test(test_per_source_limit),
		cmocka_unit_test(test_full_table_evicts_unproven),
		cmocka_unit_test(test_hello_timeout),
		cmocka_unit_test(test_connect_close_flood),
		cmocka_unit_test(test_handshake_flood_per_source),
		cmocka_unit_test(test_handshake_global_cap),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
