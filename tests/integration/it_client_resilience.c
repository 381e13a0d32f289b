/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_client_resilience.c: libsealpost's resilient connection against real
 * sealpostd processes.
 *
 *   - a broker killed with SIGKILL and restarted (same port, same data dir)
 *     while one client sends and another receives: every send gets exactly
 *     one RESULT (ACCEPTED), every envelope arrives (the receiver
 *     deduplicates by the index inside the message), and both apps saw
 *     DISCONNECTED then RECONNECTED;
 *   - takeover and idle close recovered the same way, a send made while
 *     disconnected answered after the reconnect;
 *   - a receiver idle for several of the broker's idle timeouts stays
 *     connected (keepalive below ServerHello.idle_timeout_ms);
 *   - a stopped broker (SIGSTOP) is found dead by the keepalive;
 *   - the non-blocking connect driven by poll();
 *   - the offline queue bound, the list of pending sends, the opt-out;
 *   - opaque bodies in both directions.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sealpost.h"
#include "support.h"

enum {
	TIMEOUT_MS = 20000,
	N = 300,                /* envelopes in the kill -9 test */
	WINDOW = 32,            /* sent without a result yet */
	KILL_AT = 120,          /* the broker dies after this many sends */
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct sealpost_key *new_key(uint8_t pub[32])
{
	struct sealpost_key *k = NULL;

	assert_int_equal(sealpost_key_generate(&k), 0);
	sealpost_key_public(k, pub);
	return k;
}

/* Fast reconnects, so the tests do not wait out the default back-off. */
static struct sealpost_connect_opts fast_opts(uint32_t flags)
{
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;

	o.flags = flags;
	o.reconnect_min_ms = 20;
	o.reconnect_max_ms = 200;
	o.connect_timeout_ms = 2000;
	return o;
}

static struct sealpost_client *dial(const struct sp_it_broker *b, const struct sealpost_key *k,
				    uint32_t flags)
{
	struct sealpost_connect_opts o = fast_opts(flags);
	struct sealpost_client *c = NULL;
	struct sealpost_event ev;

	assert_int_equal(sealpost_client_connect_opts(&c, b->addr, k, b->server_pub, TIMEOUT_MS, &o),
			 0);
	assert_int_equal(sealpost_client_next_event(c, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_DRAINED);
	return c;
}

/* The next event that is not DRAINED, PONG or RESULT of another id. */
static void next_of(struct sealpost_client *c, enum sealpost_event_type type,
		    struct sealpost_event *ev)
{
	int64_t end = now_ms() + TIMEOUT_MS;

	for (;;) {
		int left = (int)(end - now_ms());

		if (left <= 0)
			fail_msg("timed out waiting for event %d", type);
		if (sealpost_client_next_event(c, ev, left) != 1)
			continue;
		if (ev->type == type)
			return;
		if (ev->type == SEALPOST_EVENT_CLOSED)
			fail_msg("CLOSED (%s) while waiting for event %d",
				 sealpost_strerror(ev->error), type);
	}
}

/* ------------------------------------------------------------ kill -9 --- */

struct side {
	struct sealpost_client *c;
	int disconnected, reconnected;
	int results_after;      /* RESULTs taken after the first RECONNECTED */
};

static void pump_events(struct side *s, uint64_t first_id, int *results, int *accepted,
			int *got, int *dups)
{
	struct sealpost_event ev;

	while (sealpost_client_next_event(s->c, &ev, 0) == 1) {
		switch (ev.type) {
		case SEALPOST_EVENT_DISCONNECTED:
			s->disconnected++;
			break;
		case SEALPOST_EVENT_RECONNECTED:
			s->reconnected++;
			break;
		case SEALPOST_EVENT_RESULT: {
			uint64_t i = ev.client_id - first_id;

			assert_true(results && ev.client_id >= first_id && i < N);
			results[i]++;
			if (s->reconnected)
				s->results_after++;
			if (ev.status == SEALPOST_STATUS_ACCEPTED)
				(*accepted)++;
			break;
		}
		case SEALPOST_EVENT_MESSAGE: {
			unsigned idx;

			assert_non_null(got);
			assert_int_equal(sscanf((const char *)ev.data, "m%05u", &idx), 1);
			assert_true(idx < N);
			if (got[idx]++)
				(*dups)++;
			break;
		}
		case SEALPOST_EVENT_CLOSED:
			fail_msg("CLOSED: %s", sealpost_strerror(ev.error));
			break;
		default:
			break;
		}
	}
}

static void test_kill9_restart(void **state)
{
	static int results[N], got[N];
	struct sp_it_broker b;
	uint8_t pa[32], pb[32];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb);
	struct side a, bb;
	uint64_t first_id = 0, id;
	int sent = 0, accepted = 0, dups = 0, i, received;
	size_t waiting_at_kill = 0;
	int64_t killed_at = 0, end;
	bool restarted = false;

	(void)state;
	memset(results, 0, sizeof(results));
	memset(got, 0, sizeof(got));
	memset(&a, 0, sizeof(a));
	memset(&bb, 0, sizeof(bb));
	assert_int_equal(sp_it_broker_start(&b, NULL, NULL), 0);
	a.c = dial(&b, ka, 0);
	bb.c = dial(&b, kb, 0);
	end = now_ms() + 60000;
	for (;;) {
		struct pollfd p[2];
		int t, ta, tb;

		for (received = 0, i = 0; i < N; i++)
			received += got[i] > 0;
		if (sent == N && accepted == N && received == N)
			break;
		if (now_ms() > end)
			fail_msg("sent %d, accepted %d, received %d", sent, accepted, received);
		while (sent < N && sent - accepted < WINDOW) {
			char msg[32];

			snprintf(msg, sizeof(msg), "m%05u", (unsigned)sent);
			assert_int_equal(sealpost_client_send(a.c, pb, msg, strlen(msg) + 1, &id), 0);
			if (sent == 0)
				first_id = id;
			assert_int_equal(id, first_id + (uint64_t)sent);
			sent++;
			if (sent == KILL_AT) {
				assert_int_equal(sealpost_client_flush(a.c, TIMEOUT_MS), 0);
				waiting_at_kill = sealpost_client_pending(a.c, NULL, 0);
				sp_it_broker_kill(&b);
				killed_at = now_ms();
			}
		}
		if (killed_at && !restarted && now_ms() - killed_at > 300) {
			/* Both clients have tried (refused) meanwhile. */
			assert_int_equal(sp_it_broker_restart(&b, NULL), 0);
			restarted = true;
		}
		p[0] = (struct pollfd){ .fd = sealpost_client_fd(a.c),
					.events = sealpost_client_poll_events(a.c) };
		p[1] = (struct pollfd){ .fd = sealpost_client_fd(bb.c),
					.events = sealpost_client_poll_events(bb.c) };
		ta = sealpost_client_timeout(a.c);
		tb = sealpost_client_timeout(bb.c);
		t = 100;
		if (ta >= 0 && ta < t)
			t = ta;
		if (tb >= 0 && tb < t)
			t = tb;
		assert_true(poll(p, 2, t) >= 0);
		assert_int_equal(sealpost_client_step(a.c), 0);
		assert_int_equal(sealpost_client_step(bb.c), 0);
		pump_events(&a, first_id, results, &accepted, NULL, NULL);
		pump_events(&bb, first_id, NULL, NULL, got, &dups);
	}
	/* Exactly one final result per send, every one ACCEPTED. */
	for (i = 0; i < N; i++)
		assert_int_equal(results[i], 1);
	assert_int_equal(sealpost_client_pending(a.c, NULL, 0), 0);
	assert_true(a.disconnected >= 1 && a.reconnected >= 1);
	assert_true(bb.disconnected >= 1 && bb.reconnected >= 1);
	assert_true(restarted);
	print_message("kill -9: %d sends, %zu without a result when the broker died, %d results "
		      "after the reconnect, %d duplicate deliveries (deduplicated by the app)\n", N,
		      waiting_at_kill, a.results_after, dups);
	/* The sends cut off by the crash were resent and answered once. */
	assert_true(waiting_at_kill > 0);
	assert_true(a.results_after >= 1);
	/* Nothing left behind: after acks, the receiver's mailbox is empty. */
	assert_int_equal(sealpost_client_sync(bb.c, TIMEOUT_MS), 0);
	sealpost_client_close(a.c);
	sealpost_client_close(bb.c);
	{
		struct sealpost_client *c = dial(&b, kb, SEALPOST_CONNECT_NO_RECONNECT);

		sealpost_client_close(c);
	}
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
}

/* ----------------------------------------------------- takeover, idle --- */

static void test_takeover_recovered(void **state)
{
	struct sp_it_broker b;
	uint8_t pa[32], pb[32];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb);
	struct sealpost_client *a, *intruder, *r;
	struct sealpost_event ev;
	uint64_t id;
	int status;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, NULL), 0);
	a = dial(&b, ka, 0);
	r = dial(&b, kb, 0);
	intruder = dial(&b, ka, SEALPOST_CONNECT_NO_RECONNECT);
	next_of(a, SEALPOST_EVENT_DISCONNECTED, &ev);
	assert_int_equal(ev.error, 0);
	assert_int_equal(ev.status, SEALPOST_STATUS_GOAWAY_TAKEOVER);
	/* Queued while down, answered once back. */
	assert_int_equal(sealpost_client_send(a, pb, "after takeover", 14, &id), 0);
	next_of(a, SEALPOST_EVENT_RECONNECTED, &ev);
	assert_int_equal(sealpost_client_wait_result(a, id, TIMEOUT_MS, &status, NULL), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	next_of(r, SEALPOST_EVENT_MESSAGE, &ev);
	assert_int_equal(ev.len, 14);
	assert_memory_equal(ev.data, "after takeover", 14);
	assert_memory_equal(ev.sender, pa, 32);
	/* The resilient client took the key back: the other one is done. */
	next_of(intruder, SEALPOST_EVENT_CLOSED, &ev);
	assert_int_equal(ev.error, 0);
	sealpost_client_close(intruder);
	sealpost_client_close(a);
	sealpost_client_close(r);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
}

static void test_idle_close_and_keepalive(void **state)
{
	static const char *const args[] = { "--idle-timeout", "1", NULL };
	struct sp_it_broker b;
	uint8_t pa[32], pb[32], nobody[32];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb), *kn = new_key(nobody);
	struct sealpost_client *quiet, *listener, *s;
	struct sealpost_event ev;
	uint64_t id;
	int64_t until;
	int status;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, args), 0);

	/* Without keepalive: the broker's idle close, then a reconnect. */
	quiet = dial(&b, ka, SEALPOST_CONNECT_NO_KEEPALIVE);
	assert_int_equal(sealpost_client_idle_timeout(quiet), 1000);
	next_of(quiet, SEALPOST_EVENT_GOAWAY, &ev);
	assert_int_equal(ev.status, SEALPOST_STATUS_GOAWAY_IDLE);
	next_of(quiet, SEALPOST_EVENT_DISCONNECTED, &ev);
	assert_int_equal(ev.status, SEALPOST_STATUS_GOAWAY_IDLE);
	assert_int_equal(sealpost_client_send(quiet, nobody, "queued", 6, &id), 0);
	assert_int_equal(sealpost_client_pending(quiet, NULL, 0), 1);
	next_of(quiet, SEALPOST_EVENT_RECONNECTED, &ev);
	assert_int_equal(sealpost_client_wait_result(quiet, id, TIMEOUT_MS, &status, NULL), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	sealpost_client_close(quiet);

	/* With keepalive (the default): idle for 4 of the broker's timeouts and
	 * still on the same connection; a message then arrives on it. */
	listener = dial(&b, kb, 0);
	until = now_ms() + 4000;
	while (now_ms() < until) {
		int r = sealpost_client_next_event(listener, &ev, (int)(until - now_ms()));

		if (r == 1)
			fail_msg("an idle listener got event %d (%s)", ev.type,
				 sealpost_status_string(ev.status));
	}
	assert_true(sealpost_client_is_connected(listener));
	s = dial(&b, ka, 0);
	assert_int_equal(sealpost_client_send_wait(s, pb, "still here", 10, TIMEOUT_MS, &status,
						   NULL), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(sealpost_client_next_event(listener, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_memory_equal(ev.data, "still here", 10);
	sealpost_client_close(s);
	sealpost_client_close(listener);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
	sealpost_key_free(kn);
}

/* A broker that stops answering (SIGSTOP: the TCP connection stays up) is
 * found dead by the keepalive; when it runs again the client is back. */
static void test_dead_peer(void **state)
{
	struct sp_it_broker b;
	uint8_t pa[32];
	struct sealpost_key *ka = new_key(pa);
	struct sealpost_connect_opts o = fast_opts(0);
	struct sealpost_client *c = NULL;
	struct sealpost_event ev;
	int status;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, NULL), 0);
	o.keepalive_ms = 200;
	o.dead_peer_ms = 500;
	o.connect_timeout_ms = 1000;
	assert_int_equal(sealpost_client_connect_opts(&c, b.addr, ka, b.server_pub, TIMEOUT_MS, &o),
			 0);
	next_of(c, SEALPOST_EVENT_DRAINED, &ev);
	assert_int_equal(kill(b.pid, SIGSTOP), 0);
	next_of(c, SEALPOST_EVENT_DISCONNECTED, &ev);
	assert_int_equal(ev.error, -SEALPOST_EDEADPEER);
	assert_string_equal(sealpost_strerror(ev.error),
			    "the broker stopped answering (keepalive timed out)");
	assert_int_equal(kill(b.pid, SIGCONT), 0);
	next_of(c, SEALPOST_EVENT_RECONNECTED, &ev);
	assert_int_equal(sealpost_client_send_wait(c, pa, "back", 4, TIMEOUT_MS, &status, NULL), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	sealpost_client_close(c);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
	sealpost_key_free(ka);
}

/* ----------------------------------------------------------- connect --- */

/* Polls one client until an event of `type`; other events must be in `ok`. */
static void poll_until(struct sealpost_client *c, enum sealpost_event_type type,
		       struct sealpost_event *ev)
{
	int64_t end = now_ms() + TIMEOUT_MS;

	for (;;) {
		struct pollfd p = { .fd = sealpost_client_fd(c),
				    .events = sealpost_client_poll_events(c) };

		if (now_ms() > end)
			fail_msg("timed out waiting for event %d", type);
		assert_true(poll(&p, 1, sealpost_client_timeout(c) < 0 ? 1000
						: sealpost_client_timeout(c)) >= 0);
		sealpost_client_step(c);
		while (sealpost_client_next_event(c, ev, 0) == 1)
			if (ev->type == type)
				return;
	}
}

static void test_nonblocking_connect(void **state)
{
	struct sp_it_broker b;
	uint8_t pa[32], learned[32];
	struct sealpost_key *ka = new_key(pa);
	struct sealpost_connect_opts o = fast_opts(0);
	struct sealpost_client *c = NULL;
	struct sealpost_event ev;
	uint64_t id;
	char addr[64];
	uint16_t port;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, NULL), 0);
	/* Returns before the TCP connect and the handshake are done. */
	assert_int_equal(sealpost_client_start(&c, b.addr, ka, NULL, &o), 0);
	assert_false(sealpost_client_is_connected(c));
	assert_true(sealpost_client_fd(c) >= 0);
	assert_true(sealpost_client_poll_events(c) & POLLOUT);
	/* A send before the handshake waits for it. */
	assert_int_equal(sealpost_client_send(c, pa, "early", 5, &id), 0);
	poll_until(c, SEALPOST_EVENT_CONNECTED, &ev);
	sealpost_client_server_key(c, learned);
	assert_memory_equal(learned, b.server_pub, 32);
	poll_until(c, SEALPOST_EVENT_RESULT, &ev);
	assert_int_equal(ev.client_id, id);
	assert_int_equal(ev.status, SEALPOST_STATUS_ACCEPTED);
	poll_until(c, SEALPOST_EVENT_MESSAGE, &ev);
	assert_memory_equal(ev.data, "early", 5);
	sealpost_client_close(c);

	/* Nobody listening: without reconnects the event says why, for good. */
	port = b.port;
	assert_int_equal(sp_it_broker_stop(&b), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)port);
	o = fast_opts(SEALPOST_CONNECT_NO_RECONNECT);
	assert_int_equal(sealpost_client_start(&c, addr, ka, NULL, &o), 0);
	poll_until(c, SEALPOST_EVENT_CLOSED, &ev);
	assert_int_equal(ev.error, -ECONNREFUSED);
	assert_int_equal(sealpost_client_step(c), -ECONNREFUSED);
	sealpost_client_close(c);

	/* With reconnects: DISCONNECTED once, then it keeps trying, and comes
	 * up when a broker appears there (same port, same data dir). */
	o = fast_opts(0);
	assert_int_equal(sealpost_client_start(&c, addr, ka, b.server_pub, &o), 0);
	poll_until(c, SEALPOST_EVENT_DISCONNECTED, &ev);
	assert_int_equal(ev.error, -ECONNREFUSED);
	assert_int_equal(sp_it_broker_restart(&b, NULL), 0);
	poll_until(c, SEALPOST_EVENT_CONNECTED, &ev);
	sealpost_client_close(c);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
	sealpost_key_free(ka);
}

/* ---------------------------------------------------- queue, opt-out --- */

static void test_offline_queue_and_opt_out(void **state)
{
	struct sp_it_broker b;
	uint8_t pa[32];
	struct sealpost_key *ka = new_key(pa);
	struct sealpost_connect_opts o = fast_opts(0);
	struct sealpost_client *c = NULL;
	struct sealpost_event ev;
	struct sealpost_pending pl[4];
	uint64_t ids[3];
	int status, i;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, NULL), 0);
	o.offline_queue_max = 3;
	o.reconnect_min_ms = 5000;   /* stays down while the test queues */
	o.reconnect_max_ms = 5000;
	assert_int_equal(sealpost_client_connect_opts(&c, b.addr, ka, b.server_pub, TIMEOUT_MS, &o),
			 0);
	next_of(c, SEALPOST_EVENT_DRAINED, &ev);
	assert_true(sp_it_broker_kill(&b) >= 0);
	next_of(c, SEALPOST_EVENT_DISCONNECTED, &ev);
	for (i = 0; i < 3; i++)
		assert_int_equal(sealpost_client_send(c, pa, "q", 1, &ids[i]), 0);
	assert_int_equal(sealpost_client_send(c, pa, "q", 1, NULL), -SEALPOST_EQUEUEFULL);
	assert_string_equal(sealpost_strerror(-SEALPOST_EQUEUEFULL),
			    "disconnected, and the offline send queue is full");
	assert_int_equal(sealpost_client_pending(c, pl, 4), 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(pl[i].client_id, ids[i]);
	assert_int_equal(sp_it_broker_restart(&b, NULL), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(sealpost_client_wait_result(c, ids[i], TIMEOUT_MS, &status, NULL), 0);
		assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	}
	assert_int_equal(sealpost_client_pending(c, NULL, 0), 0);
	sealpost_client_close(c);

	/* Opted out: the drop is final, sends are refused, and the one in
	 * flight is listed as never answered. */
	o = fast_opts(SEALPOST_CONNECT_NO_RECONNECT);
	assert_int_equal(sealpost_client_connect_opts(&c, b.addr, ka, b.server_pub, TIMEOUT_MS, &o),
			 0);
	assert_int_equal(sealpost_client_send(c, pa, "lost?", 5, &ids[0]), 0);
	assert_true(sp_it_broker_kill(&b) >= 0);
	next_of(c, SEALPOST_EVENT_CLOSED, &ev);
	assert_int_equal(sealpost_client_send(c, pa, "x", 1, NULL), -ENOTCONN);
	sealpost_client_close(c);
	sp_it_rmrf(b.data_dir);
	sealpost_key_free(ka);
}

/* ------------------------------------------------------------- errors --- */

static void test_errors_in_words(void **state)
{
	struct sp_it_broker b;
	uint8_t pa[32], wrong[32];
	struct sealpost_key *ka = new_key(pa), *other = new_key(wrong), *k = NULL;
	struct sealpost_client *c = NULL;
	char path[400];
	FILE *f;
	int r;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, NULL), 0);
	r = sealpost_client_connect(&c, b.addr, ka, wrong, TIMEOUT_MS);
	assert_int_equal(r, -SEALPOST_ESERVERKEY);
	assert_non_null(strstr(sealpost_strerror(r), "not the pinned server key"));
	r = sealpost_client_connect(&c, "no-such-host.invalid:7400", ka, NULL, TIMEOUT_MS);
	assert_int_equal(r, -SEALPOST_EUNKNOWNHOST);
	assert_string_equal(sealpost_strerror(r),
			    "unknown host: the broker's host name does not resolve");

	snprintf(path, sizeof(path), "%s/dev.key", b.data_dir);
	assert_int_equal(sealpost_key_save(ka, path), 0);
	assert_int_equal(chmod(path, 0640), 0);
	r = sealpost_key_load(&k, path);
	assert_int_equal(r, -SEALPOST_EKEYMODE);
	assert_non_null(strstr(sealpost_strerror(r), "chmod 600"));
	snprintf(path, sizeof(path), "%s/bad.key", b.data_dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("not a key\n", f);
	fclose(f);
	assert_int_equal(chmod(path, 0600), 0);
	r = sealpost_key_load(&k, path);
	assert_int_equal(r, -SEALPOST_EKEYFORMAT);
	assert_string_equal(sealpost_strerror(r),
			    "malformed key file: expected 64 hex digits and a newline");
	assert_null(k);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
	sealpost_key_free(ka);
	sealpost_key_free(other);
}

/* ------------------------------------------------------------- opaque --- */

static void test_opaque_bodies(void **state)
{
	static const uint8_t mls[] = "\x00\x01MLS-ish ciphertext, not a seal";
	struct sp_it_broker b;
	uint8_t pa[32], pb[32], pc[32], pd[32], sender[32], out[512];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb), *kc = new_key(pc),
			    *kd = new_key(pd);
	struct sealpost_client *a, *opq, *plain, *all;
	struct sealpost_event ev;
	size_t olen;
	int status;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, NULL), 0);
	a = dial(&b, ka, 0);
	opq = dial(&b, kb, SEALPOST_CONNECT_OPAQUE);
	plain = dial(&b, kc, 0);
	all = dial(&b, kd, SEALPOST_CONNECT_OPAQUE_ALL);

	/* A raw body to an app that opted in: the bytes as sent. */
	assert_int_equal(sealpost_client_send_raw(a, pb, mls, sizeof(mls), NULL), 0);
	assert_int_equal(sealpost_client_flush(a, TIMEOUT_MS), 0);
	next_of(opq, SEALPOST_EVENT_OPAQUE, &ev);
	assert_int_equal(ev.len, sizeof(mls));
	assert_memory_equal(ev.data, mls, sizeof(mls));
	assert_true(ev.seq > 0);
	/* A seal still opens for it. */
	assert_int_equal(sealpost_client_send_wait(a, pb, "sealed", 6, TIMEOUT_MS, &status, NULL), 0);
	next_of(opq, SEALPOST_EVENT_MESSAGE, &ev);
	assert_memory_equal(ev.sender, pa, 32);
	assert_memory_equal(ev.data, "sealed", 6);
	/* Without the option: BAD_ENVELOPE, no payload. */
	assert_int_equal(sealpost_client_send_raw(a, pc, mls, sizeof(mls), NULL), 0);
	assert_int_equal(sealpost_client_flush(a, TIMEOUT_MS), 0);
	next_of(plain, SEALPOST_EVENT_BAD_ENVELOPE, &ev);
	assert_null(ev.data);
	/* OPAQUE_ALL: even a seal comes raw, and opens with the envelope API. */
	assert_int_equal(sealpost_client_send(a, pd, "raw seal", 8, NULL), 0);
	assert_int_equal(sealpost_client_flush(a, TIMEOUT_MS), 0);
	next_of(all, SEALPOST_EVENT_OPAQUE, &ev);
	assert_int_equal(ev.len, 256 + SEALPOST_SEAL_OVERHEAD);   /* padded (PROTOCOL.md 7.1) */
	assert_int_equal(sealpost_envelope_open(kd, ev.data, ev.len, sender, out, sizeof(out), &olen),
			 0);
	assert_memory_equal(sender, pa, 32);
	assert_memory_equal(out, "raw seal", 8);
	/* Padding is the default (above: the 256 bucket); NO_PADDING seals
	 * version 1, exactly the message's length. */
	{
		uint8_t pe[32];
		struct sealpost_key *ke = new_key(pe);
		struct sealpost_client *np = dial(&b, ke, SEALPOST_CONNECT_NO_PADDING);
		size_t n8 = 0;

		assert_int_equal(sealpost_client_send(np, pd, "raw seal", 8, NULL), 0);
		assert_int_equal(sealpost_client_flush(np, TIMEOUT_MS), 0);
		next_of(all, SEALPOST_EVENT_OPAQUE, &ev);
		assert_int_equal(ev.len, 8 + SEALPOST_SEAL_OVERHEAD);
		assert_int_equal(ev.data[0], 1);   /* seal version 1 */
		assert_int_equal(sealpost_envelope_open(kd, ev.data, ev.len, sender, out,
							sizeof(out), &n8), 0);
		assert_int_equal(n8, 8);
		sealpost_client_close(np);
		sealpost_key_free(ke);
	}
	/* Acknowledged like messages: nothing comes again. */
	assert_int_equal(sealpost_client_sync(opq, TIMEOUT_MS), 0);
	assert_int_equal(sealpost_client_sync(all, TIMEOUT_MS), 0);
	sealpost_client_close(opq);
	opq = dial(&b, kb, SEALPOST_CONNECT_OPAQUE);   /* dial asserts DRAINED comes first */
	sealpost_client_close(opq);
	sealpost_client_close(a);
	sealpost_client_close(plain);
	sealpost_client_close(all);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
	sealpost_key_free(kc);
	sealpost_key_free(kd);
}

/* ---------------------------------------------------- callbacks, log --- */

struct cb_state {
	int messages, results, reconnected;
	uint8_t reply_to[32];
};

/* Runs inside sealpost_client_dispatch, on this thread: may send. */
static void on_event(void *ctx, struct sealpost_client *c, const struct sealpost_event *ev)
{
	struct cb_state *st = ctx;

	switch (ev->type) {
	case SEALPOST_EVENT_MESSAGE:
		st->messages++;
		assert_int_equal(sealpost_client_send(c, st->reply_to, "pong!", 5, NULL), 0);
		break;
	case SEALPOST_EVENT_RESULT:
		assert_int_equal(ev->status, SEALPOST_STATUS_ACCEPTED);
		st->results++;
		break;
	case SEALPOST_EVENT_RECONNECTED:
		st->reconnected++;
		break;
	default:
		break;
	}
}

static char log_text[8192];
static int log_lines;

static void on_log(void *ctx, int level, const char *message)
{
	size_t n = strlen(log_text);

	assert_ptr_equal(ctx, log_text);
	assert_true(level >= SEALPOST_LOG_ERROR && level <= SEALPOST_LOG_DEBUG);
	assert_null(strchr(message, '\n'));
	log_lines++;
	snprintf(log_text + n, sizeof(log_text) - n, "%s\n", message);
}

static void test_callback_and_log(void **state)
{
	struct sp_it_broker b;
	uint8_t pa[32], pb[32];
	char hex[65];
	struct sealpost_key *ka = new_key(pa), *kb = new_key(pb);
	struct sealpost_client *a, *peer, *intruder;
	struct sealpost_event ev;
	struct cb_state st = { 0 };
	int status, n, rounds;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, NULL), 0);
	a = dial(&b, ka, 0);
	peer = dial(&b, kb, 0);
	/* Silent by default: nothing was logged for these connects. */
	log_text[0] = '\0';
	log_lines = 0;
	sealpost_set_log_callback(on_log, log_text);

	assert_int_equal(sealpost_client_dispatch(a, 0), -EINVAL);   /* no callback yet */
	memcpy(st.reply_to, pb, 32);
	sealpost_client_set_callback(a, on_event, &st);
	assert_int_equal(sealpost_client_send_wait(peer, pa, "ping?", 5, TIMEOUT_MS, &status, NULL),
			 0);
	for (rounds = 0; st.messages < 1 || st.results < 1; rounds++) {
		assert_true(rounds < 100);
		n = sealpost_client_dispatch(a, TIMEOUT_MS);
		assert_true(n >= 0);
	}
	next_of(peer, SEALPOST_EVENT_MESSAGE, &ev);
	assert_memory_equal(ev.data, "pong!", 5);

	/* A takeover: the log says what happened, the callback sees the return. */
	intruder = dial(&b, ka, SEALPOST_CONNECT_NO_RECONNECT);
	for (rounds = 0; st.reconnected < 1; rounds++) {
		assert_true(rounds < 100);
		assert_true(sealpost_client_dispatch(a, TIMEOUT_MS) >= 0);
	}
	assert_true(log_lines >= 2);
	assert_non_null(strstr(log_text, "disconnected"));
	assert_non_null(strstr(log_text, "reconnected"));
	/* Never a key in the log. */
	sealpost_key_to_hex(pa, hex);
	assert_null(strstr(log_text, hex));
	sealpost_key_to_hex(b.server_pub, hex);
	assert_null(strstr(log_text, hex));
	sealpost_set_log_callback(NULL, NULL);

	sealpost_client_close(intruder);
	sealpost_client_close(a);
	sealpost_client_close(peer);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill9_restart),
		cmocka_unit_test(test_takeover_recovered),
		cmocka_unit_test(test_idle_close_and_keepalive),
		cmocka_unit_test(test_dead_peer),
		cmocka_unit_test(test_nonblocking_connect),
		cmocka_unit_test(test_offline_queue_and_opt_out),
		cmocka_unit_test(test_errors_in_words),
		cmocka_unit_test(test_opaque_bodies),
		cmocka_unit_test(test_callback_and_log),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
