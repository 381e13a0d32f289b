/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_hostile_http.c: a slowloris against the metrics endpoint of a real
 * sealpostd. Attackers from 127.0.0.1 open connections and send one byte of
 * a request that never ends every half second, which the idle timeout alone
 * never stops. The test shows: a probe from another address (127.0.0.2) is
 * answered while the attack goes on (metrics-per-address-max), every
 * trickling connection is closed (metrics-deadline, or refused at once by the
 * per-address limit), and then a probe from the attacker's own address is
 * answered too. Times are printed, never asserted.
 *
 * Loopback only, bounded in count and time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "support.h"

enum {
	TRICKLERS = 16,
	TRICKLE_MS = 500,
	DEADLINE_MS = 2000,
	PER_ADDRESS = 4,
	BOUND_MS = 30000,       /* everything the test waits for, at most */
	IO_TIMEOUT_MS = 5000,   /* one probe */
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A TCP connection to 127.0.0.1:port from src (e.g. "127.0.0.2"); fd or -errno. */
static int connect_from(const char *src, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	inet_pton(AF_INET, src, &a.sin_addr);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		goto fail;
	a.sin_port = htons(port);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		goto fail;
	return fd;
fail:
	{
		int err = -errno;

		close(fd);
		return err;
	}
}

/* GET /healthz from src with a bounded wait; the HTTP status, or -errno / -ETIMEDOUT. */
static int healthz_from(const char *src, uint16_t port)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	char buf[512];
	size_t n = 0;
	int fd, status = -EPROTO;
	double t0 = now_ms();

	fd = connect_from(src, port);
	if (fd < 0)
		return fd;
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1) {
		close(fd);
		return -EPIPE;
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = IO_TIMEOUT_MS - (int)(now_ms() - t0);
		ssize_t r;

		if (left <= 0 || poll(&p, 1, left) <= 0) {
			close(fd);
			return n ? status : -ETIMEDOUT;
		}
		r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == sizeof(buf) - 1)
			break;
	}
	close(fd);
	buf[n] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		return n ? -EPROTO : -ECONNRESET;
	return status;
}

/* Retries /healthz from src until it is answered (bounded); the status of the last try. */
static int healthz_retry(const char *src, uint16_t port, double *took_ms)
{
	double t0 = now_ms();
	int st;

	do {
		st = healthz_from(src, port);
		if (st == 200)
			break;
		usleep(100 * 1000);
	} while (now_ms() - t0 < BOUND_MS);
	*took_ms = now_ms() - t0;
	return st;
}

/* Sends the next byte of a request whose header never ends; false once the peer closed. */
static bool trickle(int fd)
{
	char c = 'a';

	return send(fd, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1 || errno == EAGAIN;
}

/* True once the server closed fd (end of stream or reset). */
static bool closed_by_peer(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[256];

	if (poll(&p, 1, 0) <= 0)
		return false;
	return recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0;
}

/*
 * TRICKLERS connections from 127.0.0.1 with per_address allowed from one
 * address; probe_other: also show that 127.0.0.2 is answered meanwhile.
 */
static void slowloris(int per_address, int conn_max, bool probe_other)
{
	char deadline[16], per_addr[16], conns[16];
	const char *args[] = { "--metrics-deadline", deadline, "--metrics-per-address-max",
			       per_addr, "--metrics-conn-max", conns, NULL };
	struct sp_it_broker b;
	int fds[TRICKLERS];
	double closed_at[TRICKLERS];
	int open_n = 0, st;
	double t0, probe_ms, same_ms;
	bool answered = false;

	snprintf(deadline, sizeof(deadline), "%d", DEADLINE_MS);
	snprintf(per_addr, sizeof(per_addr), "%d", per_address);
	snprintf(conns, sizeof(conns), "%d", conn_max);
	assert_int_equal(sp_it_broker_start(&b, NULL, args), 0);
	assert_true(b.metrics_port != 0);

	/* The attack: every connection starts a request and trickles. */
	t0 = now_ms();
	for (int i = 0; i < TRICKLERS; i++) {
		fds[i] = connect_from("127.0.0.1", b.metrics_port);
		assert_true(fds[i] >= 0);
		closed_at[i] = -1;
		assert_true(send(fds[i], "GET /healthz HTTP/1.1\r\nX-Slow: ", 31, MSG_NOSIGNAL) ==
			    31);
	}
	open_n = TRICKLERS;
	while (open_n > 0 && now_ms() - t0 < BOUND_MS) {
		for (int i = 0; i < TRICKLERS; i++) {
			if (closed_at[i] >= 0)
				continue;
			if (closed_by_peer(fds[i]) || !trickle(fds[i])) {
				closed_at[i] = now_ms() - t0;
				open_n--;
			}
		}
		/*
		 * While the attack holds connections: a probe is answered (from
		 * another address at once; from the attacker's own, once the
		 * deadline has freed a slot, waiting in the listen backlog).
		 */
		if (!answered && open_n > 0) {
			const char *src = probe_other ? "127.0.0.2" : "127.0.0.1";

			st = healthz_retry(src, b.metrics_port, &probe_ms);
			assert_int_equal(st, 200);
			answered = true;
			printf("# /healthz from %s during the attack (%d trickling): 200 in %.1f ms\n",
			       src, open_n, probe_ms);
		}
		usleep(TRICKLE_MS * 1000);
	}
	for (int i = 0; i < TRICKLERS; i++) {
		printf("# trickler %2d closed by the broker after %.0f ms\n", i, closed_at[i]);
		assert_true(closed_at[i] >= 0);
		close(fds[i]);
	}
	assert_true(answered);

	/* The attacker's own address is served again once its connections are gone. */
	st = healthz_retry("127.0.0.1", b.metrics_port, &same_ms);
	printf("# /healthz from 127.0.0.1 after the attack: %d in %.1f ms\n", st, same_ms);
	assert_int_equal(st, 200);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/* The defaults' shape: one address gets a few connections, the rest are refused. */
static void test_slowloris_per_address(void **state)
{
	(void)state;
	slowloris(PER_ADDRESS, 16, true);
}

/*
 * One address may take every connection: the deadline alone frees them, and
 * a probe from the attacker's own address is answered.
 */
static void test_slowloris_deadline(void **state)
{
	(void)state;
	slowloris(TRICKLERS, TRICKLERS, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slowloris_per_address),
		cmocka_unit_test(test_slowloris_deadline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
