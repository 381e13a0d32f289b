/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_hostile_mem.c: hostile clients against a real sealpostd that try to
 * make it hold memory: a partial message kept alive a byte at a time,
 * Pings whose Pongs are never read, replayed IK message 1s held open, and
 * ten thousand connections opened and dropped at once. Each test shows the
 * limit that stopped the attack (the close reason it counts), the broker's
 * RSS (/proc/PID/status VmRSS) back near its baseline afterwards (a
 * generous bound, waited for with a bound on the wait, never a timing), and
 * honest devices served meanwhile and after (envelopes delivered, a Ping
 * answered). Figures (RSS before, at the peak and after, memory per
 * attacking connection) are printed: docs/SECURITY.md quotes them.
 *
 * The brokers run with 64 receive buffers (1 MiB): the provided-buffer
 * ring is a fixed allocation (recv-buffers x recv-buffer-size, 32 MiB at
 * the defaults) whose pages stay resident once the kernel has written
 * them, whatever the traffic; with the default ring, any traffic at all
 * (honest or not) makes it resident, which would hide what the attacks
 * cost. Likewise the connection table's slots (752 bytes each) once used.
 *
 * Loopback only, bounded in count and time; the 10,000 connections stay
 * below 20,000 open files in each process (this one and the broker).
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
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
	WAIT_BOUND_MS = 20000,
	/* RSS "back near the baseline": within this of it once the attack is
	 * over (heap the allocator keeps, the store's caches, the kernel's
	 * page granularity), plus what a test says it keeps on purpose. */
	RSS_SLACK_KB = 8 * 1024,
};

/* Under AddressSanitizer (the asan preset builds this test and the broker
 * alike) freed memory sits in ASan's quarantine and its allocator ignores
 * malloc_trim: RSS cannot come back, so only the figures are printed. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_RETURNS 0
#else
#define RSS_RETURNS 1
#endif

/* The broker's RSS after an attack is back near rss0 (+ what it keeps). */
static void assert_rss_back(long after, long bound)
{
	if (RSS_RETURNS)
		assert_true(after <= bound);
	else if (after > bound)
		print_message("(AddressSanitizer build: RSS %ld KiB above the bound %ld KiB, not "
			      "checked)\n", after, bound);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* --- the broker's memory and metrics ----------------------------------------- */

/* VmRSS of pid in KiB; -1 if unreadable. */
static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

/* Waits (bounded) until the broker's RSS is at most bound_kb; returns it. */
static long wait_rss_below(pid_t pid, long bound_kb)
{
	long kb = rss_kb(pid);

	for (int w = 0; w < WAIT_BOUND_MS && kb > bound_kb; w += 100) {
		sleep_ms(100);
		kb = rss_kb(pid);
	}
	return kb;
}

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

static double closed(const struct sp_it_broker *b, const char *reason)
{
	char series[128];
	double v;

	snprintf(series, sizeof(series), "sealpost_connections_closed_total{reason=\"%s\"}", reason);
	v = metric(b, series);
	return v < 0 ? 0 : v;
}

/* Waits (bounded) until the open-connections gauge is at most n; returns it. */
static double wait_open_at_most(const struct sp_it_broker *b, double n)
{
	double v = metric(b, "sealpost_connections_open");

	for (int w = 0; w < WAIT_BOUND_MS && (v < 0 || v > n); w += 50) {
		sleep_ms(50);
		v = metric(b, "sealpost_connections_open");
	}
	return v;
}

static double wait_open_at_least(const struct sp_it_broker *b, double n)
{
	double v = metric(b, "sealpost_connections_open");

	for (int w = 0; w < WAIT_BOUND_MS && v < n; w += 50) {
		sleep_ms(50);
		v = metric(b, "sealpost_connections_open");
	}
	return v;
}

/* --- honest devices -------------------------------------------------------------- */

static void open_device(struct sp_raw *c, const struct sp_it_broker *b)
{
	struct sp_raw_frame f;

	assert_int_equal(sp_raw_open(c, b->port, SP_PREAMBLE_PATTERN_IK, b->server_pub), 0);
	assert_int_equal(sp_raw_wait_frame(c, SP_FRAME_DRAINED, &f, TIMEOUT_MS), 0);
}

/* from sends to: ACCEPTED, and to receives it (live). */
static void exchange(struct sp_raw *from, struct sp_raw *to, uint64_t client_id)
{
	uint8_t body[200];
	struct sp_raw_frame f;
	uint32_t status = 0;

	memset(body, 'h', sizeof(body));
	assert_int_equal(sp_raw_send_envelope(from, to->s_pub, client_id, body, sizeof(body)), 0);
	assert_int_equal(sp_raw_expect_result(from, client_id, &status, TIMEOUT_MS), 0);
	assert_int_equal(status, SP_STATUS_ACCEPTED);
	assert_int_equal(sp_raw_wait_frame(to, SP_FRAME_DELIVER, &f, TIMEOUT_MS), 0);
	assert_int_equal(f.body_len, sizeof(body));
}

static void ping(struct sp_raw *c, uint64_t id)
{
	uint8_t buf[64];
	struct sp_raw_frame f;
	size_t off = 0;

	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, id, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(c, buf, off), 0);
	assert_int_equal(sp_raw_wait_frame(c, SP_FRAME_PONG, &f, TIMEOUT_MS), 0);
	assert_int_equal(f.id, id);
}

struct honest {
	struct sp_raw a, b;
	uint64_t next_id;
};

static void honest_open(struct honest *h, const struct sp_it_broker *b)
{
	memset(h, 0, sizeof(*h));
	h->a.fd = h->b.fd = -1;
	h->next_id = 1;
	open_device(&h->a, b);
	open_device(&h->b, b);
	exchange(&h->a, &h->b, h->next_id++);
}

/* Both ways, and a Ping: the broker still serves them. */
static void honest_check(struct honest *h)
{
	exchange(&h->a, &h->b, h->next_id++);
	exchange(&h->b, &h->a, h->next_id++);
	ping(&h->a, 900000 + h->next_id++);
}

/* Whole messages from both: what keeps an honest device's idle deadline. */
static void honest_keepalive(struct honest *h)
{
	ping(&h->a, 800000 + h->next_id++);
	ping(&h->b, 800000 + h->next_id++);
}

static void honest_close(struct honest *h)
{
	sp_raw_close(&h->a);
	sp_raw_close(&h->b);
}

/* The broker RSS once the honest pair is connected and a first exchange
 * made (what later figures are compared with). */
static long baseline(const struct sp_it_broker *b)
{
	sleep_ms(300);
	return rss_kb(b->pid);
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/* --- a partial message kept alive a byte at a time ---------------------------------- */

/*
 * Authenticated devices each announce a 65,535-byte transport message and
 * send it one byte at a time (every 0.3 s against a 3 s idle timeout here; every ten minutes in the
 * finding, against the default 600 s idle timeout). Before: the whole
 * 65,535 bytes were allocated at the prefix, and every byte pushed the idle
 * deadline back, so the connection lived forever. After: the buffer holds
 * what arrived (2 KiB at first), and only whole messages move the deadline:
 * each is closed at idle-timeout however it trickles (GoAway IDLE).
 */
static void test_slow_partial(void **state)
{
	enum { N = 200, PERIOD_MS = 300 };
	static const char *const args[] = { "--recv-buffers", "64", "--handshake-rate-per-source", "0", "--idle-timeout", "3", "--mailbox-sender-share", "100",
					    NULL };
	static struct sp_raw att[N];
	struct sp_it_broker b;
	struct honest h;
	long rss0, peak = 0, after;
	bool done[N] = { false };
	int left = N, rounds = 0;
	double idle0;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, args), 0);
	honest_open(&h, &b);
	rss0 = baseline(&b);
	idle0 = closed(&b, "idle");
	for (int i = 0; i < N; i++) {
		static const uint8_t pfx[3] = { 0xff, 0xff, 0x00 };

		att[i].fd = -1;
		open_device(&att[i], &b);
		assert_int_equal(sp_raw_send_bytes(&att[i], pfx, sizeof(pfx)), 0);
		if (i % 25 == 0)
			honest_keepalive(&h);
	}
	/* One byte each per period until every one is closed; the honest pair
	 * is served meanwhile (it keeps its own deadline with whole messages). */
	while (left > 0 && rounds++ < 60) {
		long kb;

		sleep_ms(PERIOD_MS);
		for (int i = 0; i < N; i++) {
			static const uint8_t one = 0;

			if (done[i])
				continue;
			if (readable(att[i].fd)) {
				uint32_t code = 0;

				assert_int_equal(sp_raw_expect_goaway(&att[i], &code, TIMEOUT_MS, NULL), 0);
				assert_int_equal(code, SP_STATUS_GOAWAY_IDLE);
				done[i] = true;
				left--;
				continue;
			}
			(void)sp_raw_send_bytes(&att[i], &one, 1);
		}
		kb = rss_kb(b.pid);
		peak = kb > peak ? kb : peak;
		honest_keepalive(&h);
	}
	assert_int_equal(left, 0);
	assert_true(closed(&b, "idle") >= idle0 + N);
	honest_check(&h);
	after = wait_rss_below(b.pid, rss0 + RSS_SLACK_KB);
	print_message("slow partial messages: %d devices, %d rounds of one byte; broker RSS %ld KiB "
		      "before, peak %ld KiB (%.1f KiB per attacker), %ld KiB after\n", N, rounds,
		      rss0, peak, (double)(peak - rss0) / N, after);
	assert_rss_back(after, rss0 + RSS_SLACK_KB);
	for (int i = 0; i < N; i++)
		sp_raw_close(&att[i]);
	honest_close(&h);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/*
 * Devices each sending 48 KB of a 65,535-byte message and stopping, against
 * a 16 MiB --mem-budget: each holds what it sent (its buffer doubled up to
 * 64 KiB) until the budget is full, then the largest holders are closed
 * (reason mem_budget), and the honest pair's messages go through. Once they
 * are gone, the broker's RSS comes back down from above the budget to near
 * its baseline (the buffers freed, malloc_trim).
 */
static void test_partial_budget(void **state)
{
	enum { N = 400, PART = 48000, BUDGET_KB = 16 * 1024 };
	static const char *const args[] = { "--recv-buffers", "64", "--handshake-rate-per-source", "0", "--mem-budget", "16777216",
					    "--mailbox-sender-share", "100", NULL };
	static struct sp_raw att[N];
	static uint8_t junk[PART];
	struct sp_it_broker b;
	struct honest h;
	long rss0, peak = 0, after;
	double evicted;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, args), 0);
	honest_open(&h, &b);
	rss0 = baseline(&b);
	junk[0] = 0xff;
	junk[1] = 0xff;
	for (int i = 0; i < N; i++) {
		long kb;

		att[i].fd = -1;
		open_device(&att[i], &b);
		assert_int_equal(sp_raw_send_bytes(&att[i], junk, sizeof(junk)), 0);
		kb = rss_kb(b.pid);
		peak = kb > peak ? kb : peak;
	}
	/* 400 x 64 KiB is 25 MiB: about a third of them are over the budget. */
	for (int w = 0; w < WAIT_BOUND_MS && closed(&b, "mem_budget") < N / 4; w += 50)
		sleep_ms(50);
	evicted = closed(&b, "mem_budget");
	print_message("partial messages over the budget: %d devices, %.0f closed mem_budget\n", N,
		      evicted);
	assert_true(evicted >= N / 4);
	assert_true(evicted < N);
	honest_check(&h);
	for (int i = 0; i < N; i++)
		sp_raw_close(&att[i]);
	assert_true(wait_open_at_most(&b, 2) == 2);
	after = wait_rss_below(b.pid, rss0 + RSS_SLACK_KB);
	print_message("partial messages against a 16 MiB budget: %d devices x %d bytes, %.0f closed "
		      "(mem_budget); broker RSS %ld KiB before, peak %ld KiB, %ld KiB after\n", N,
		      PART, evicted, rss0, peak, after);
	/* It held the budget's worth, and gave it back. */
	assert_true(peak >= rss0 + BUDGET_KB / 2);  /* held: RSS went up */
	assert_rss_back(after, rss0 + RSS_SLACK_KB);
	honest_check(&h);
	honest_close(&h);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/* --- Pongs never read --------------------------------------------------------------- */

/*
 * Devices that send transport messages full of Pings and never read their
 * Pongs (a small receive buffer, nothing read). The broker's queue for each
 * grows until twice --sendq-max (slow_consumer) or, summed over them, the
 * --mem-budget (mem_budget): each is closed, and its queue freed.
 */
static void test_pong_flood(void **state)
{
	enum { N = 8, MSGS = 200 };
	static const char *const args[] = { "--recv-buffers", "64", "--handshake-rate-per-source", "0", "--sendq-max", "65536", "--mem-budget", "1048576",
					    "--close-grace", "500", "--mailbox-sender-share", "100",
					    NULL };
	static struct sp_raw att[N];
	static uint8_t plain[SP_TRANSPORT_PLAINTEXT_MAX];
	struct sp_it_broker b;
	struct honest h;
	long rss0, peak = 0, after;
	size_t off = 0;
	int sent[N] = { 0 };
	double slow, budget;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, args), 0);
	honest_open(&h, &b);
	rss0 = baseline(&b);
	for (uint64_t id = 1; off + 16 < 60000; id++)
		assert_int_equal(sp_raw_put_simple(plain, sizeof(plain), &off, SP_FRAME_PING, id,
						   NULL, 0), 0);
	for (int i = 0; i < N; i++) {
		int small = 4096;

		att[i].fd = -1;
		open_device(&att[i], &b);
		setsockopt(att[i].fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	}
	/* Round robin, a message each, until the broker closes them (a send
	 * fails) or MSGS each. */
	for (int m = 0; m < MSGS; m++) {
		int live = 0;

		for (int i = 0; i < N; i++) {
			if (sent[i] < 0)
				continue;
			if (sp_raw_send_plain(&att[i], plain, off) != 0) {
				sent[i] = -1;
				continue;
			}
			sent[i]++;
			live++;
		}
		long kb = rss_kb(b.pid);

		peak = kb > peak ? kb : peak;
		if (!live)
			break;
	}
	for (int w = 0; w < WAIT_BOUND_MS &&
	     closed(&b, "slow_consumer") + closed(&b, "mem_budget") < N; w += 50)
		sleep_ms(50);
	slow = closed(&b, "slow_consumer");
	budget = closed(&b, "mem_budget");
	assert_true(slow + budget == N);
	honest_check(&h);
	for (int i = 0; i < N; i++)
		sp_raw_close(&att[i]);
	assert_true(wait_open_at_most(&b, 2) == 2);
	after = wait_rss_below(b.pid, rss0 + RSS_SLACK_KB);
	print_message("unread Pongs: %d devices, up to %d messages of %zu bytes of Pings each; "
		      "closed %.0f slow_consumer, %.0f mem_budget; broker RSS %ld KiB before, peak "
		      "%ld KiB (%.0f KiB per attacker), %ld KiB after\n", N, MSGS, off, slow, budget,
		      rss0, peak, (double)(peak - rss0) / N, after);
	assert_rss_back(after, rss0 + RSS_SLACK_KB);
	honest_check(&h);
	honest_close(&h);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/* --- replayed IK message 1 held open -------------------------------------------------- */

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
 * A captured IK message 1 replayed on many connections, each answered with
 * a message 2 and then held open (never proven). Half then announce a
 * 65,535-byte transport message: refused at its length prefix (bad_length:
 * an unproven IK session takes handshake-sized messages only, as for an
 * unauthenticated peer). The rest stay silent until handshake-timeout.
 */
static void test_replayed_ik(void **state)
{
	enum { N = 300 };
	static const char *const args[] = { "--recv-buffers", "64", "--handshake-rate-per-source", "0", "--handshake-timeout", "3000", NULL };
	static int fds[N];
	struct sp_it_broker b;
	struct honest h;
	struct sp_raw alice = { .fd = -1 };
	struct capture k = { .len = 0 };
	struct sp_raw_opts o = { .hook = capture_msg1, .hook_arg = &k };
	struct sp_raw_frame f;
	long rss0, held, after;
	double bad0, hs0;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, args), 0);
	honest_open(&h, &b);
	assert_int_equal(sp_raw_init(&alice), 0);
	assert_int_equal(sp_raw_connect(&alice, b.port), 0);
	assert_int_equal(sp_raw_handshake(&alice, SP_PREAMBLE_PATTERN_IK, b.server_pub, &o), 0);
	assert_int_equal(sp_raw_wait_frame(&alice, SP_FRAME_DRAINED, &f, TIMEOUT_MS), 0);
	assert_true(k.len > 0);
	rss0 = baseline(&b);
	bad0 = closed(&b, "bad_length");
	hs0 = closed(&b, "handshake_timeout");

	for (int i = 0; i < N; i++) {
		uint8_t wire[SP_PREAMBLE_LEN + SP_LEN_PREFIX + SP_NOISE_MSG_MAX], in[256];
		size_t got = 0;

		fds[i] = sp_it_tcp_connect(b.port);
		assert_true(fds[i] >= 0);
		sp_raw_preamble(wire, SP_PREAMBLE_PATTERN_IK);
		wire[SP_PREAMBLE_LEN] = (uint8_t)(k.len >> 8);
		wire[SP_PREAMBLE_LEN + 1] = (uint8_t)k.len;
		memcpy(wire + SP_PREAMBLE_LEN + SP_LEN_PREFIX, k.msg, k.len);
		assert_int_equal(write(fds[i], wire, SP_PREAMBLE_LEN + SP_LEN_PREFIX + k.len),
				 (ssize_t)(SP_PREAMBLE_LEN + SP_LEN_PREFIX + k.len));
		while (got < SP_LEN_PREFIX) {     /* message 2 comes back */
			struct pollfd p = { .fd = fds[i], .events = POLLIN };
			ssize_t n;

			assert_true(poll(&p, 1, TIMEOUT_MS) == 1);
			n = read(fds[i], in + got, sizeof(in) - got);
			assert_true(n > 0);
			got += (size_t)n;
		}
	}
	held = rss_kb(b.pid);
	/* Half announce a large transport message and send part of it. */
	for (int i = 0; i < N; i += 2) {
		static uint8_t part[8192] = { 0xff, 0xff };

		(void)!write(fds[i], part, sizeof(part));
	}
	for (int w = 0; w < WAIT_BOUND_MS && closed(&b, "bad_length") < bad0 + N / 2; w += 50)
		sleep_ms(50);
	assert_true(closed(&b, "bad_length") == bad0 + N / 2);
	honest_check(&h);
	ping(&alice, 5);       /* the device whose message was replayed is undisturbed */
	/* The silent half: closed at the handshake timeout. */
	for (int w = 0; w < WAIT_BOUND_MS && closed(&b, "handshake_timeout") < hs0 + N / 2; w += 50)
		sleep_ms(50);
	assert_true(closed(&b, "handshake_timeout") == hs0 + N / 2);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	after = wait_rss_below(b.pid, rss0 + RSS_SLACK_KB);
	print_message("replayed IK message 1 held open: %d connections; broker RSS %ld KiB before, "
		      "%ld KiB with all held (%.1f KiB each), %ld KiB after; %d refused at a "
		      "65,535-byte prefix (bad_length), %d closed at handshake-timeout\n", N, rss0,
		      held, (double)(held - rss0) / N, after, N / 2, N / 2);
	assert_rss_back(after, rss0 + RSS_SLACK_KB);
	honest_check(&h);
	sp_raw_close(&alice);
	honest_close(&h);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/* --- ten thousand connections opened and dropped at once ------------------------------ */

/*
 * 10,000 connections from 127.0.0.1 (the per-source limits off, as from
 * many sources); every other one sends the preamble and the start of a
 * handshake message (a reassembly buffer each), then all are closed at once.
 * The broker holds them (its RSS peak), ends each (eof), and gives the
 * memory back: what stays is the connection table's touched slots
 * (sizeof(struct sp_conn), 752 bytes, per slot ever used: at most max-conns),
 * allowed for in the bound.
 */
static void test_ten_thousand(void **state)
{
	enum { N = 10000, SLOT_BYTES = 752 };
	static const char *const args[] = { "--recv-buffers", "64", "--handshake-rate-per-source", "0", "--max-conns", "10100", "--max-conns-per-source", "0",
					    "--max-unauth-per-source", "0", "--hello-timeout", "60000",
					    "--handshake-timeout", "60000", NULL };
	static int fds[N];
	struct sp_it_broker b;
	struct honest h;
	long rss0, peak, after, bound;
	double open_peak, eof0;
	uint8_t start[SP_PREAMBLE_LEN + SP_LEN_PREFIX + 40];

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, args), 0);
	honest_open(&h, &b);
	rss0 = baseline(&b);
	eof0 = closed(&b, "eof");
	memset(start, 0x5a, sizeof(start));
	sp_raw_preamble(start, SP_PREAMBLE_PATTERN_XX);
	start[SP_PREAMBLE_LEN] = 0;
	start[SP_PREAMBLE_LEN + 1] = 200;       /* announce 200, send 40: a partial message */
	for (int i = 0; i < N; i++) {
		fds[i] = sp_it_tcp_connect(b.port);
		assert_true(fds[i] >= 0);
		if (i % 2)
			assert_int_equal(write(fds[i], start, sizeof(start)), (ssize_t)sizeof(start));
	}
	open_peak = wait_open_at_least(&b, N + 2);
	assert_true(open_peak >= N + 2);
	peak = rss_kb(b.pid);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	assert_true(wait_open_at_most(&b, 2) == 2);
	assert_true(closed(&b, "eof") >= eof0 + N);
	honest_check(&h);
	bound = rss0 + RSS_SLACK_KB + (long)N * SLOT_BYTES / 1024;
	after = wait_rss_below(b.pid, bound);
	print_message("10,000 connections opened and dropped: %.0f open at the peak; broker RSS %ld "
		      "KiB before, %ld KiB with all open (%.2f KiB per connection), %ld KiB after "
		      "(bound %ld)\n", open_peak, rss0, peak, (double)(peak - rss0) / N, after, bound);
	assert_rss_back(after, bound);
	honest_check(&h);
	honest_close(&h);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slow_partial),
		cmocka_unit_test(test_partial_budget),
		cmocka_unit_test(test_pong_flood),
		cmocka_unit_test(test_replayed_ik),
		cmocka_unit_test(test_ten_thousand),
	};

	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
