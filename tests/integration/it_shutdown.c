/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_shutdown.c: stopping a real sealpostd.
 *
 *  - SIGTERM in the middle of traffic loses no accepted envelope: every Send
 *    answered ACCEPTED or DELIVERED reaches its recipient, before the stop or
 *    from its mailbox after a restart on the same data directory; senders are
 *    told GoAway SHUTDOWN; the broker exits 0 after syncing storage.
 *  - sd_notify: with NOTIFY_SOCKET set to a datagram socket this test binds,
 *    the broker sends READY=1 once it serves (devices can connect, /readyz
 *    200) and STOPPING=1 at SIGTERM.
 *  - While it drains (a device that stopped reading, close-grace 60 s),
 *    /readyz says 503 and /healthz 200; a second SIGTERM cuts it short, exit 0,
 *    also when both signals arrive before the event loop reads the first.
 *  - A SIGTERM while the broker waits for its data-directory lock ends it
 *    cleanly (exit 0).
 * (The systemd unit is verified as installed: ctest packaging/install.)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "support.h"
#include "support_raw.h"

enum {
	SENDERS = 4,
	WINDOW = 32,                    /* Sends in flight per sender */
	MAX_ID = 1 << 20,               /* per sender; the stop comes long before */
	TRIGGER = 500,                  /* live deliveries seen before the SIGTERM */
	BODY_LEN = 48,
	WAIT_BOUND_MS = 10000,
	TIMEOUT_MS = 10000,
};

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* --- SIGTERM during traffic ------------------------------------------------- */

struct traffic {
	struct sp_it_broker *b;
	uint8_t r_pub[2][SP_KEY_LEN];   /* recipients: [0] online, [1] offline */
	uint8_t r_priv[2][SP_KEY_LEN];
	uint8_t *accepted[SENDERS];     /* [id]: the broker answered ACCEPTED/DELIVERED */
	uint8_t *got[SENDERS];          /* [id]: a recipient received it */
	uint32_t nsent[SENDERS], nacc[SENDERS], nrefused[SENDERS];
	uint32_t goaway[SENDERS];       /* GoAway code each sender got, 0 if none */
	int end[SENDERS];               /* how its connection ended */
	volatile int live_seen;         /* deliveries to the online recipient so far */
};

struct sender_arg {
	struct traffic *t;
	int idx;
};

static void put_body(uint8_t *body, int sender, uint32_t id)
{
	memset(body, 0x5a, BODY_LEN);
	body[0] = (uint8_t)sender;
	memcpy(body + 1, &id, sizeof(id));
}

static bool parse_body(const uint8_t *body, size_t len, int *sender, uint32_t *id)
{
	if (len != BODY_LEN || body[0] >= SENDERS)
		return false;
	*sender = body[0];
	memcpy(id, body + 1, sizeof(*id));
	return *id >= 1 && *id < MAX_ID;
}

/* One frame for a sender; false when its connection is over. */
static bool sender_read(struct traffic *t, int s, struct sp_raw *c, uint32_t *inflight)
{
	struct sp_raw_frame f;
	int ret = sp_raw_recv_frame(c, &f, TIMEOUT_MS);

	if (ret) {
		t->end[s] = ret;
		return false;
	}
	if (f.type == SP_FRAME_GOAWAY) {
		t->goaway[s] = f.status;
		return false;
	}
	if (f.type != SP_FRAME_SEND_RESULT)
		return true;    /* Drained, Ping: nothing to do */
	(*inflight)--;
	if (f.client_id >= 1 && f.client_id < MAX_ID &&
	    (f.status == SP_STATUS_ACCEPTED || f.status == SP_STATUS_DELIVERED)) {
		t->accepted[s][f.client_id] = 1;
		t->nacc[s]++;
	} else {
		t->nrefused[s]++;
	}
	return true;
}

static void *sender(void *arg)
{
	struct sender_arg *a = arg;
	struct traffic *t = a->t;
	int s = a->idx;
	struct sp_raw c = { .fd = -1 };
	uint8_t body[BODY_LEN];
	uint32_t inflight = 0;

	if (sp_raw_open(&c, t->b->port, SP_PREAMBLE_PATTERN_IK, t->b->server_pub)) {
		t->end[s] = -EPROTO;
		return NULL;
	}
	for (uint32_t id = 1; id < MAX_ID; id++) {
		while (inflight >= WINDOW)
			if (!sender_read(t, s, &c, &inflight))
				goto out;
		put_body(body, s, id);
		/* Even ids to the online recipient, odd ones to the offline one. */
		if (sp_raw_send_envelope(&c, t->r_pub[id & 1], id, body, sizeof(body))) {
			t->end[s] = -EPIPE;
			break;
		}
		t->nsent[s]++;
		inflight++;
	}
	/* Whatever the broker still answers before it closes. */
	while (sender_read(t, s, &c, &inflight))
		;
out:
	sp_raw_close(&c);
	return NULL;
}

/* Receives as recipient r, marking what arrived; acks each. until_drained:
 * stop at Drained (after a restart), else at the connection's end. */
static void receive_as(struct traffic *t, int r, bool until_drained)
{
	struct sp_raw c;
	struct sp_raw_frame f;
	uint8_t ack[64];

	assert_int_equal(sp_raw_init(&c), 0);
	memcpy(c.s_pub, t->r_pub[r], SP_KEY_LEN);
	memcpy(c.s_priv, t->r_priv[r], SP_KEY_LEN);
	assert_int_equal(sp_raw_connect(&c, t->b->port), 0);
	assert_int_equal(sp_raw_handshake(&c, SP_PREAMBLE_PATTERN_IK, t->b->server_pub, NULL), 0);
	for (;;) {
		int sender_idx = 0;     /* cmocka's fail_msg is not noreturn */
		uint32_t id = 0;
		size_t off = 0;

		if (sp_raw_recv_frame(&c, &f, TIMEOUT_MS))
			break;
		if (f.type == SP_FRAME_DRAINED && until_drained)
			break;
		if (f.type == SP_FRAME_GOAWAY)
			break;
		if (f.type != SP_FRAME_DELIVER)
			continue;
		if (!parse_body(f.body, f.body_len, &sender_idx, &id))
			fail_msg("recipient %d: a body that no sender wrote", r);
		t->got[sender_idx][id] = 1;
		if (r == 0)
			t->live_seen++;
		if (f.seq && sp_raw_put_simple(ack, sizeof(ack), &off, SP_FRAME_ACK, f.seq, NULL,
					       0) == 0)
			sp_raw_send_plain(&c, ack, off);
	}
	sp_raw_close(&c);
}

static void *online_recipient(void *arg)
{
	receive_as(arg, 0, false);
	return NULL;
}

static void test_sigterm_during_traffic_loses_nothing(void **state)
{
	struct sp_it_broker b, b2;
	struct traffic t;
	struct sender_arg args[SENDERS];
	pthread_t th[SENDERS], rth;
	uint64_t acc = 0, sent = 0, refused = 0, lost = 0, got_goaway = 0;
	char dir[256];

	(void)state;
	memset(&t, 0, sizeof(t));
	assert_int_equal(sp_it_broker_start(&b, NULL, NULL), 0);
	snprintf(dir, sizeof(dir), "%s", b.data_dir);
	t.b = &b;
	for (int r = 0; r < 2; r++)
		sp_noise_keypair(t.r_pub[r], t.r_priv[r]);
	for (int s = 0; s < SENDERS; s++) {
		t.accepted[s] = calloc(MAX_ID, 1);
		t.got[s] = calloc(MAX_ID, 1);
		assert_non_null(t.accepted[s]);
		assert_non_null(t.got[s]);
	}
	assert_int_equal(pthread_create(&rth, NULL, online_recipient, &t), 0);
	for (int s = 0; s < SENDERS; s++) {
		args[s] = (struct sender_arg){ .t = &t, .idx = s };
		assert_int_equal(pthread_create(&th[s], NULL, sender, &args[s]), 0);
	}
	/* Traffic is flowing (the online recipient sees it): stop the broker now. */
	for (int w = 0; w < WAIT_BOUND_MS && t.live_seen < TRIGGER; w += 5)
		sleep_ms(5);
	if (t.live_seen < TRIGGER) {
		for (int s = 0; s < SENDERS; s++)
			print_message("sender %d: sent %u accepted %u refused %u end %d\n", s,
				      t.nsent[s], t.nacc[s], t.nrefused[s], t.end[s]);
		fail_msg("only %d live deliveries", t.live_seen);
	}
	assert_int_equal(kill(b.pid, SIGTERM), 0);
	for (int s = 0; s < SENDERS; s++)
		pthread_join(th[s], NULL);
	pthread_join(rth, NULL);
	/* One SIGTERM is enough: it exits by itself, with status 0. */
	for (int w = 0; w < WAIT_BOUND_MS && sp_it_broker_alive(&b); w += 20)
		sleep_ms(20);
	assert_false(sp_it_broker_alive(&b));
	assert_int_equal(sp_it_broker_stop(&b), 0);
	assert_true(sp_it_log_count(&b, "storage synced and closed") == 1);

	for (int s = 0; s < SENDERS; s++) {
		sent += t.nsent[s];
		acc += t.nacc[s];
		refused += t.nrefused[s];
		got_goaway += t.goaway[s] == SP_STATUS_GOAWAY_SHUTDOWN;
		/* Each sender was still sending when the stop came. */
		assert_true(t.nsent[s] < MAX_ID - 1);
	}
	assert_true(got_goaway >= 1);
	assert_true(acc > 0);

	/* Same data directory: the mailboxes hold the rest. */
	assert_int_equal(sp_it_broker_start(&b2, dir, NULL), 0);
	t.b = &b2;
	receive_as(&t, 0, true);
	receive_as(&t, 1, true);
	assert_int_equal(sp_it_broker_stop(&b2), 0);
	for (int s = 0; s < SENDERS; s++)
		for (uint32_t id = 1; id < MAX_ID; id++)
			if (t.accepted[s][id] && !t.got[s][id])
				lost++;
	print_message("sent %lu, accepted %lu, refused %lu, unanswered %lu, lost %lu; "
		      "GoAway SHUTDOWN to %lu of %d senders\n", (unsigned long)sent,
		      (unsigned long)acc, (unsigned long)refused,
		      (unsigned long)(sent - acc - refused), (unsigned long)lost,
		      (unsigned long)got_goaway, SENDERS);
	assert_int_equal(lost, 0);
	for (int s = 0; s < SENDERS; s++) {
		free(t.accepted[s]);
		free(t.got[s]);
	}
	sp_it_rmrf(dir);
}

/* --- sd_notify ---------------------------------------------------------------- */

/* Next datagram (bounded by the socket's receive timeout) into buf; its length or -errno. */
static ssize_t recv_notify(int fd, char *buf, size_t cap)
{
	ssize_t n = recv(fd, buf, cap - 1, 0);

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return n;
}

static void test_sd_notify(void **state)
{
	struct sp_it_broker b;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	char dir[] = "/tmp/it-notify-XXXXXX", buf[512];
	int fd, conn;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", dir);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(setenv("NOTIFY_SOCKET", sa.sun_path, 1), 0);
	assert_int_equal(sp_it_broker_start(&b, NULL, NULL), 0);
	unsetenv("NOTIFY_SOCKET");

	assert_true(recv_notify(fd, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "READY=1"));
	/* READY=1 means serving: devices can connect. */
	conn = sp_it_tcp_connect(b.port);
	assert_true(conn >= 0);
	close(conn);

	assert_int_equal(kill(b.pid, SIGTERM), 0);
	assert_true(recv_notify(fd, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "STOPPING=1"));
	assert_int_equal(sp_it_broker_stop(&b), 0);
	close(fd);
	unlink(sa.sun_path);
	rmdir(dir);
	sp_it_rmrf(b.data_dir);
}

/* The abstract namespace form, "@name", as systemd may hand out. */
static void test_sd_notify_abstract(void **state)
{
	struct sp_it_broker b;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	char name[64], buf[512];
	socklen_t len;
	int fd;

	(void)state;
	snprintf(name, sizeof(name), "@it-notify-%d-%u", (int)getpid(), randombytes_random());
	memcpy(sa.sun_path, name, strlen(name));
	sa.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(setenv("NOTIFY_SOCKET", name, 1), 0);
	assert_int_equal(sp_it_broker_start(&b, NULL, NULL), 0);
	unsetenv("NOTIFY_SOCKET");
	assert_true(recv_notify(fd, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "READY=1"));
	assert_int_equal(sp_it_broker_stop(&b), 0);
	assert_true(recv_notify(fd, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "STOPPING=1"));
	close(fd);
	sp_it_rmrf(b.data_dir);
}

/* --- not ready while stopping ---------------------------------------------------- */

/* GET path on 127.0.0.1:port; the HTTP status, or -errno. */
static int http_status(uint16_t port, const char *path)
{
	char req[128], buf[256];
	ssize_t n;
	int fd = sp_it_tcp_connect(port), status = -EPROTO;

	if (fd < 0)
		return fd;
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
	if (write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
		n = read(fd, buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = '\0';
			if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
				status = -EPROTO;
		}
	}
	close(fd);
	return status;
}

/*
 * A broker with close-grace 60 s and a device r that stopped reading: its
 * socket and its queue at the broker are full (a sender s got
 * ERR_RECIPIENT_BUSY), so a stop would wait for it for the whole grace.
 */
static void start_with_stalled_reader(struct sp_it_broker *b, struct sp_raw *r, struct sp_raw *s)
{
	const char *extra[] = { "--close-grace", "60000", NULL };
	struct sp_raw_frame f;
	static uint8_t body[60000];
	static uint8_t buf[60100];
	uint32_t status = 0;

	assert_int_equal(sp_it_broker_start(b, NULL, extra), 0);
	assert_true(b->metrics_port != 0);
	assert_int_equal(http_status(b->metrics_port, "/readyz"), 200);
	assert_int_equal(sp_raw_open(r, b->port, SP_PREAMBLE_PATTERN_IK, b->server_pub), 0);
	assert_int_equal(sp_raw_wait_frame(r, SP_FRAME_DRAINED, &f, TIMEOUT_MS), 0);
	assert_int_equal(sp_raw_open(s, b->port, SP_PREAMBLE_PATTERN_IK, b->server_pub), 0);
	/* r reads no more: fill its socket and its queue at the broker. */
	memset(body, 'q', sizeof(body));
	for (uint64_t id = 1; id < 2000 && status != SP_STATUS_ERR_RECIPIENT_BUSY; id++) {
		size_t off = 0;

		assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, r->s_pub, SP_KEY_LEN, id,
						 SP_SEND_ONLINE_ONLY, body, sizeof(body)), 0);
		assert_int_equal(sp_raw_send_plain(s, buf, off), 0);
		do
			assert_int_equal(sp_raw_recv_frame(s, &f, TIMEOUT_MS), 0);
		while (f.type != SP_FRAME_SEND_RESULT);
		status = f.status;
	}
	assert_int_equal(status, SP_STATUS_ERR_RECIPIENT_BUSY);
}

/*
 * A device that stops reading keeps the broker draining for close-grace
 * after SIGTERM: meanwhile /readyz says 503 (and /healthz 200); a second
 * SIGTERM cuts the connection at once and the broker exits 0.
 */
static void test_stopping_is_not_ready(void **state)
{
	struct sp_it_broker b;
	struct sp_raw r = { .fd = -1 }, s = { .fd = -1 };
	int st = -1;

	(void)state;
	start_with_stalled_reader(&b, &r, &s);
	assert_int_equal(kill(b.pid, SIGTERM), 0);
	for (int w = 0; w < WAIT_BOUND_MS && st != 503; w += 20) {
		st = http_status(b.metrics_port, "/readyz");
		if (st != 503)
			sleep_ms(20);
	}
	assert_int_equal(st, 503);
	assert_int_equal(http_status(b.metrics_port, "/healthz"), 200);
	assert_true(sp_it_broker_alive(&b));

	/* The second signal: no more waiting for r. */
	assert_int_equal(kill(b.pid, SIGTERM), 0);
	for (int w = 0; w < WAIT_BOUND_MS && sp_it_broker_alive(&b); w += 20)
		sleep_ms(20);
	assert_false(sp_it_broker_alive(&b));
	assert_int_equal(sp_it_broker_stop(&b), 0);
	assert_int_equal(sp_it_log_count(&b, "second stop signal"), 1);
	sp_raw_close(&r);
	sp_raw_close(&s);
	sp_it_rmrf(b.data_dir);
}

/*
 * Two stop signals at once are a stop and a second stop, also when both
 * reach the broker's stop descriptor before its event loop reads it (the
 * descriptor then holds a count of two): the drain is cut short and the
 * broker exits 0 without waiting for the stalled reader. The broker is
 * frozen while they are sent, so that both are pending together; they are
 * SIGTERM and SIGINT because two pending SIGTERMs are one signal.
 */
static void test_two_stops_at_once(void **state)
{
	struct sp_it_broker b;
	struct sp_raw r = { .fd = -1 }, s = { .fd = -1 };

	(void)state;
	start_with_stalled_reader(&b, &r, &s);
	assert_int_equal(kill(b.pid, SIGSTOP), 0);
	assert_int_equal(kill(b.pid, SIGTERM), 0);
	assert_int_equal(kill(b.pid, SIGINT), 0);
	assert_int_equal(kill(b.pid, SIGCONT), 0);
	for (int w = 0; w < WAIT_BOUND_MS && sp_it_broker_alive(&b); w += 20)
		sleep_ms(20);
	assert_false(sp_it_broker_alive(&b));
	assert_int_equal(sp_it_broker_stop(&b), 0);
	assert_int_equal(sp_it_log_count(&b, "second stop signal"), 1);
	sp_raw_close(&r);
	sp_raw_close(&s);
	sp_it_rmrf(b.data_dir);
}

/* --- a stop while waiting for the lock ----------------------------------------- */

static void test_sigterm_while_waiting_for_lock(void **state)
{
	struct sp_it_broker holder, waiter;
	const char *extra[] = { "--lock-timeout", "60", NULL };
	pid_t pid;
	int st;

	(void)state;
	assert_int_equal(sp_it_broker_start(&holder, NULL, NULL), 0);
	/* A second broker on the same directory waits (support's start would
	 * wait for it to be ready, so fork it here). */
	memset(&waiter, 0, sizeof(waiter));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char lp[300];
		int fd;

		snprintf(lp, sizeof(lp), "%s/waiter.log", holder.data_dir);
		fd = open(lp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			dup2(fd, STDOUT_FILENO);
		}
		execl(getenv("SEALPOSTD"), "sealpostd", "--listen", "127.0.0.1:1",
		      "--data-dir", holder.data_dir, "--metrics-listen", "off", extra[0], extra[1],
		      (char *)NULL);
		_exit(127);
	}
	snprintf(waiter.log_path, sizeof(waiter.log_path), "%s/waiter.log", holder.data_dir);
	for (int w = 0; w < WAIT_BOUND_MS &&
	     sp_it_log_count(&waiter, "waiting for the data-directory lock") < 1; w += 20)
		sleep_ms(20);
	assert_int_equal(sp_it_log_count(&waiter, "waiting for the data-directory lock"), 1);
	assert_int_equal(kill(pid, SIGTERM), 0);
	for (int w = 0; w < WAIT_BOUND_MS && waitpid(pid, &st, WNOHANG) == 0; w += 20)
		sleep_ms(20);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(sp_it_log_count(&waiter, "stop signal while waiting for the lock"), 1);
	assert_int_equal(sp_it_broker_stop(&holder), 0);
	sp_it_rmrf(holder.data_dir);
}

/* --- the systemd unit ------------------------------------------------------------ */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sigterm_during_traffic_loses_nothing),
		cmocka_unit_test(test_sd_notify),
		cmocka_unit_test(test_sd_notify_abstract),
		cmocka_unit_test(test_stopping_is_not_ready),
		cmocka_unit_test(test_two_stops_at_once),
		cmocka_unit_test(test_sigterm_while_waiting_for_lock),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
