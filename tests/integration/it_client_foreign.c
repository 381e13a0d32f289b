/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_client_foreign.c: the foreign-loop client (no socket in the library)
 * against a real sealpostd, driven by this test's own non-blocking sockets
 * and poll(): XX and IK handshakes, send, receive, a manual ack that the
 * broker really applied, a transport that ends and a restart on a new one
 * (a send made meanwhile resent and answered once), close. And the
 * documented example docs/examples/poll_loop.c, built like an app, run
 * against the same broker.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sealpost.h"
#include "support.h"

enum { TIMEOUT_MS = 20000 };

static struct sp_it_broker broker;

static int setup(void **state)
{
	(void)state;
	return sp_it_broker_start(&broker, NULL, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	int st;

	(void)state;
	st = sp_it_broker_stop(&broker);
	sp_it_rmrf(broker.data_dir);
	return st == 0 ? 0 : -1;
}

/* One foreign-loop client and the socket this test owns for it. */
struct fc {
	struct sealpost_client *c;
	int fd;
	uint8_t data[1024];     /* the last MESSAGE's bytes, copied */
	size_t len;
};

static int tcp_start(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EINPROGRESS);
	return fd;
}

static void write_out(struct fc *f)
{
	const uint8_t *p;
	size_t len;

	while (sealpost_client_take_output(f->c, &p, &len) == 1) {
		ssize_t n = send(f->fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			return;
		}
		assert_int_equal(sealpost_client_output_consumed(f->c, (size_t)n), 0);
	}
}

/*
 * Runs the loop until an event of `type` arrives (returned in *ev; a
 * MESSAGE's data copied to f->data), failing on a timeout. Other events are
 * checked to be ones a healthy exchange has.
 */
static void run_until(struct fc *f, enum sealpost_event_type type, struct sealpost_event *ev)
{
	uint8_t buf[8192];
	int spins = 0;

	for (;;) {
		struct pollfd p = { .fd = f->fd, .events = POLLIN };
		const uint8_t *q;
		size_t qlen;
		int r;

		while (sealpost_client_next_event(f->c, ev, 0) == 1) {
			if (ev->type == SEALPOST_EVENT_MESSAGE) {
				assert_true(ev->len <= sizeof(f->data));
				memcpy(f->data, ev->data, ev->len);
				f->len = ev->len;
			}
			if (ev->type == type)
				return;
			assert_true(ev->type == SEALPOST_EVENT_DRAINED ||
				    ev->type == SEALPOST_EVENT_CONNECTED ||
				    ev->type == SEALPOST_EVENT_RESULT ||
				    ev->type == SEALPOST_EVENT_PONG ||
				    ev->type == SEALPOST_EVENT_MESSAGE);
		}
		write_out(f);
		if (f->fd < 0)
			fail_msg("waiting for event %d without a transport", type);
		if (sealpost_client_take_output(f->c, &q, &qlen) == 1)
			p.events |= POLLOUT;
		r = poll(&p, 1, TIMEOUT_MS);
		assert_true(r >= 0);
		if (r == 0)
			fail_msg("timed out waiting for event %d", type);
		assert_true(++spins < 100000);
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(f->fd, buf, sizeof(buf), 0);

			if (n > 0) {
				assert_int_equal(sealpost_client_feed(f->c, buf, (size_t)n), n);
			} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				assert_int_equal(sealpost_client_feed_eof(f->c, n == 0 ? 0 : -errno), 0);
				close(f->fd);
				f->fd = -1;
			}
		}
		assert_int_equal(sealpost_client_step(f->c), 0);
	}
}

static void fc_open(struct fc *f, const struct sealpost_key *k, const uint8_t *server_key,
		    uint32_t flags)
{
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;
	struct sealpost_event ev;

	memset(f, 0, sizeof(*f));
	o.flags = flags;
	assert_int_equal(sealpost_client_new(&f->c, k, server_key, &o), 0);
	/* No socket inside: no fd, nothing to poll for. */
	assert_int_equal(sealpost_client_fd(f->c), -1);
	assert_int_equal(sealpost_client_poll_events(f->c), 0);
	assert_false(sealpost_client_is_connected(f->c));
	f->fd = tcp_start(broker.port);
	run_until(f, SEALPOST_EVENT_CONNECTED, &ev);
	assert_true(sealpost_client_is_connected(f->c));
	run_until(f, SEALPOST_EVENT_DRAINED, &ev);
}

static void fc_close(struct fc *f)
{
	sealpost_client_close(f->c);
	if (f->fd >= 0)
		close(f->fd);
}

static struct sealpost_key *new_key(uint8_t pub[32])
{
	struct sealpost_key *k = NULL;

	assert_int_equal(sealpost_key_generate(&k), 0);
	sealpost_key_public(k, pub);
	return k;
}

static void test_foreign_exchange(void **state)
{
	uint8_t pa[32], pb[32], learned[32];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb);
	struct sealpost_client *again = NULL;
	struct sealpost_event ev;
	struct fc a, b;
	uint64_t id, pid, seq;

	(void)state;
	/* A: XX, learns the broker's key. B: IK, manual acks. */
	fc_open(&a, ka, NULL, 0);
	sealpost_client_server_key(a.c, learned);
	assert_memory_equal(learned, broker.server_pub, 32);
	assert_int_equal(sealpost_client_max_envelope(a.c), SP_BODY_MAX);
	assert_int_equal(sealpost_client_idle_timeout(a.c), 600u * 1000u);
	fc_open(&b, kb, broker.server_pub, SEALPOST_CONNECT_MANUAL_ACK);

	/* The blocking calls are for socket clients. */
	assert_int_equal(sealpost_client_flush(a.c, 0), -EOPNOTSUPP);
	assert_int_equal(sealpost_client_sync(a.c, 0), -EOPNOTSUPP);
	assert_int_equal(sealpost_client_feed(NULL, "", 0), -EINVAL);

	assert_int_equal(sealpost_client_send(a.c, pb, "over the foreign loop", 21, &id), 0);
	assert_int_equal(sealpost_client_pending(a.c, NULL, 0), 1);
	run_until(&a, SEALPOST_EVENT_RESULT, &ev);
	assert_int_equal(ev.client_id, id);
	assert_int_equal(ev.status, SEALPOST_STATUS_ACCEPTED);
	seq = ev.seq;
	assert_int_equal(sealpost_client_pending(a.c, NULL, 0), 0);

	run_until(&b, SEALPOST_EVENT_MESSAGE, &ev);
	assert_int_equal(ev.seq, seq);
	assert_memory_equal(ev.sender, pa, 32);
	assert_int_equal(b.len, 21);
	assert_memory_equal(b.data, "over the foreign loop", 21);
	/* The ack, then a ping: its pong proves the broker applied the ack. */
	assert_int_equal(sealpost_client_ack(b.c, seq), 0);
	assert_int_equal(sealpost_client_ping(b.c, &pid), 0);
	run_until(&b, SEALPOST_EVENT_PONG, &ev);
	assert_int_equal(ev.id, pid);
	fc_close(&b);

	/* B's mailbox is empty now: a new connection's backlog is 0. */
	assert_int_equal(sealpost_client_connect(&again, broker.addr, kb, broker.server_pub,
						 TIMEOUT_MS), 0);
	assert_int_equal(sealpost_client_next_event(again, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_DRAINED);
	assert_int_equal(ev.count, 0);

	/* A's transport ends; a send made while it is down waits, and goes out
	 * on the next transport with its id (one result, one delivery). */
	shutdown(a.fd, SHUT_RDWR);
	run_until(&a, SEALPOST_EVENT_DISCONNECTED, &ev);
	assert_false(sealpost_client_is_connected(a.c));
	assert_int_equal(sealpost_client_feed(a.c, "x", 1), -ENOTCONN);
	assert_int_equal(sealpost_client_send(a.c, pb, "later", 5, &id), 0);
	{
		struct sealpost_pending pl[2];

		assert_int_equal(sealpost_client_pending(a.c, pl, 2), 1);
		assert_int_equal(pl[0].client_id, id);
		assert_memory_equal(pl[0].to, pb, 32);
		/* sealed padded to the smallest bucket (PROTOCOL.md 7.1) */
		assert_int_equal(pl[0].len, 256 + SEALPOST_SEAL_OVERHEAD);
	}
	if (a.fd >= 0)
		close(a.fd);
	a.fd = tcp_start(broker.port);
	assert_int_equal(sealpost_client_restart(a.c), 0);
	run_until(&a, SEALPOST_EVENT_RECONNECTED, &ev);
	run_until(&a, SEALPOST_EVENT_RESULT, &ev);
	assert_int_equal(ev.client_id, id);
	assert_int_equal(ev.status, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(sealpost_client_next_event(again, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_int_equal(ev.len, 5);
	assert_memory_equal(ev.data, "later", 5);
	assert_int_equal(sealpost_client_sync(again, TIMEOUT_MS), 0);

	fc_close(&a);
	sealpost_client_close(again);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
}

/* The timers of a foreign client: a keepalive ping comes out of step()
 * once the interval passed without traffic, and its pong keeps it alive. */
static void test_foreign_keepalive(void **state)
{
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;
	uint8_t pa[32], buf[4096];
	struct sealpost_key *ka = new_key(pa);
	struct sealpost_event ev;
	const uint8_t *p;
	size_t len;
	struct fc a;
	int t, i;

	(void)state;
	memset(&a, 0, sizeof(a));
	o.keepalive_ms = 100;
	assert_int_equal(sealpost_client_new(&a.c, ka, broker.server_pub, &o), 0);
	a.fd = tcp_start(broker.port);
	run_until(&a, SEALPOST_EVENT_DRAINED, &ev);
	write_out(&a);
	for (i = 0; i < 3; i++) {
		/* Idle and up: the next timer is the keepalive, within its interval. */
		t = sealpost_client_timeout(a.c);
		assert_true(t >= 0 && t <= 100);
		assert_int_equal(sealpost_client_take_output(a.c, &p, &len), 0);
		usleep(150 * 1000);
		assert_int_equal(sealpost_client_step(a.c), 0);
		assert_int_equal(sealpost_client_take_output(a.c, &p, &len), 1);   /* the ping */
		write_out(&a);
		/* The pong: input, no event of its own. */
		{
			struct pollfd pf = { .fd = a.fd, .events = POLLIN };
			ssize_t n;

			assert_int_equal(poll(&pf, 1, TIMEOUT_MS), 1);
			n = recv(a.fd, buf, sizeof(buf), 0);
			assert_true(n > 0);
			assert_int_equal(sealpost_client_feed(a.c, buf, (size_t)n), n);
		}
		assert_int_equal(sealpost_client_next_event(a.c, &ev, 0), 0);
		assert_true(sealpost_client_is_connected(a.c));
	}
	fc_close(&a);
	sealpost_key_free(ka);
}

/* docs/examples/poll_loop.c, as built for the docs, against the broker. */
static void test_poll_loop_example(void **state)
{
	char bin[512], port[8], out[4096];
	const char *dir = getenv("SP_BIN_DIR");
	int st;

	(void)state;
	assert_non_null(dir);
	snprintf(bin, sizeof(bin), "%s/sealpost-example-poll_loop", dir);
	snprintf(port, sizeof(port), "%u", broker.port);
	{
		char *argv[] = { bin, "127.0.0.1", port, broker.server_pub_hex, "hello", NULL };

		st = sp_it_run(argv, NULL, out, sizeof(out), 30);
		assert_int_equal(st, 0);
		assert_non_null(strstr(out, "result accepted\n"));
		assert_non_null(strstr(out, "message \"hello\"\n"));
	}
	{
		char *argv[] = { bin, "127.0.0.1", port, "-", "via XX", NULL };
		char want[128];

		st = sp_it_run(argv, NULL, out, sizeof(out), 30);
		assert_int_equal(st, 0);
		snprintf(want, sizeof(want), "connected, server key %s\n", broker.server_pub_hex);
		assert_non_null(strstr(out, want));
		assert_non_null(strstr(out, "message \"via XX\"\n"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_foreign_exchange),
		cmocka_unit_test(test_foreign_keepalive),
		cmocka_unit_test(test_poll_loop_example),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
