/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_exchange.c: libsealpost against a real sealpostd process.
 *
 * Two devices connected with IK exchange 10,000 sealed envelopes (5,000 each
 * way, interleaved) through the broker, driven through the event-loop API
 * (poll on sealpost_client_fd, sealpost_client_step, sealpost_client_next_event(0)); every
 * envelope must arrive intact, in order, from the right sender, and every
 * send must get its ACCEPTED result (stored, and delivered live with the same
 * seq) in order. Then: XX learns the broker's key, IK with a wrong key fails
 * cleanly, ERR_OFFLINE for an online-only send to a device that is not
 * connected, ServerHello's max_envelope, an envelope that does not open,
 * a bad recipient, takeover and shutdown GoAways.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
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
	TOTAL = 10000,          /* envelopes, both directions together */
	PER_DIR = TOTAL / 2,
	WINDOW = 64,            /* sent but not yet received, per direction */
	TIMEOUT_MS = 20000,     /* bound on any single wait */
};

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

static struct sealpost_key *new_key(void)
{
	struct sealpost_key *k = NULL;

	assert_int_equal(sealpost_key_generate(&k), 0);
	return k;
}

/* A fresh device's first event is the Drained of its empty backlog: take it,
 * so what follows is the test's. */
static void wait_drained(struct sealpost_client *c)
{
	struct sealpost_event ev;

	assert_int_equal(sealpost_client_next_event(c, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_DRAINED);
}

static struct sealpost_client *connect_ik(const struct sealpost_key *k)
{
	struct sealpost_client *c = NULL;

	assert_int_equal(sealpost_client_connect(&c, broker.addr, k, broker.server_pub, TIMEOUT_MS), 0);
	wait_drained(c);
	return c;
}

/*
 * Message i of direction dir: a header naming it, then deterministic
 * pseudo-random bytes; sizes vary from 0 to ~2 KB, and every 1000th is 20 KB.
 */
static size_t make_msg(uint8_t *buf, int dir, uint32_t i)
{
	uint64_t x = ((uint64_t)dir << 32 | i) * 0x9e3779b97f4a7c15ull + 1;
	size_t len = i % 1000 == 999 ? 20000 : (i * 37u) % 2048, j;

	for (j = 0; j < len; j++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[j] = (uint8_t)x;
	}
	if (len >= 5) {
		buf[0] = (uint8_t)dir;
		buf[1] = (uint8_t)(i >> 24);
		buf[2] = (uint8_t)(i >> 16);
		buf[3] = (uint8_t)(i >> 8);
		buf[4] = (uint8_t)i;
	}
	return len;
}

struct side {
	struct sealpost_client *c;
	uint8_t pub[SEALPOST_KEY_LEN];
	int dir;                        /* the direction this side sends in */
	uint32_t sent, results, received;
	uint64_t first_id;              /* client ids count up from a random start */
	uint64_t last_seq;              /* of deliveries received */
	uint64_t deliver_seq[PER_DIR];  /* seq of each delivery received, by index */
	uint64_t result_seq[PER_DIR];
};

static void take_events(struct side *me, struct side *peer, uint8_t *expect)
{
	struct sealpost_event ev;
	size_t len;
	int r;

	while ((r = sealpost_client_next_event(me->c, &ev, 0)) == 1) {
		switch (ev.type) {
		case SEALPOST_EVENT_RESULT:
			/* Results come in send order, one per send. */
			assert_int_equal(ev.client_id, me->first_id + me->results);
			if (ev.status != SEALPOST_STATUS_ACCEPTED)
				fail_msg("send %u: %s", me->results, sealpost_status_string(ev.status));
			me->result_seq[me->results++] = ev.seq;
			break;
		case SEALPOST_EVENT_MESSAGE:
			assert_true(me->received < PER_DIR);
			assert_memory_equal(ev.sender, peer->pub, SEALPOST_KEY_LEN);
			len = make_msg(expect, peer->dir, me->received);
			if (ev.len != len || memcmp(ev.data, expect, len) != 0)
				fail_msg("message %u from dir %d differs (len %zu, want %zu)",
					 me->received, peer->dir, ev.len, len);
			assert_true(ev.seq > me->last_seq);
			me->last_seq = ev.seq;
			me->deliver_seq[me->received++] = ev.seq;
			break;
		default:
			fail_msg("unexpected event %d (error %d status %d)", ev.type, ev.error,
				 ev.status);
		}
	}
	assert_int_equal(r, 0);
}

/* Sends what the window allows: at most WINDOW envelopes not yet received. */
static void send_some(struct side *me, struct side *peer, uint8_t *buf)
{
	size_t len;
	uint64_t id;

	while (me->sent < PER_DIR && me->sent - peer->received < WINDOW) {
		len = make_msg(buf, me->dir, me->sent);
		assert_int_equal(sealpost_client_send(me->c, peer->pub, buf, len, &id), 0);
		if (me->sent == 0)
			me->first_id = id;
		assert_int_equal(id, me->first_id + me->sent);
		me->sent++;
	}
}

static void test_exchange_10000(void **state)
{
	static struct side a, b;
	static uint8_t buf[SEALPOST_MESSAGE_MAX], expect[SEALPOST_MESSAGE_MAX];
	struct sealpost_key *ka = new_key(), *kb = new_key();
	struct pollfd pfd[2];
	uint32_t i, rounds = 0;
	int ra, rb;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.c = connect_ik(ka);
	b.c = connect_ik(kb);
	sealpost_key_public(ka, a.pub);
	sealpost_key_public(kb, b.pub);
	a.dir = 1;
	b.dir = 2;

	while (a.received < PER_DIR || b.received < PER_DIR || a.results < PER_DIR ||
	       b.results < PER_DIR) {
		send_some(&a, &b, buf);
		send_some(&b, &a, buf);
		pfd[0] = (struct pollfd){ .fd = sealpost_client_fd(a.c), .events = sealpost_client_poll_events(a.c) };
		pfd[1] = (struct pollfd){ .fd = sealpost_client_fd(b.c), .events = sealpost_client_poll_events(b.c) };
		/* Nothing ready for TIMEOUT_MS means the exchange is stuck. */
		if (poll(pfd, 2, TIMEOUT_MS) <= 0)
			fail_msg("stuck: a sent %u got %u results %u; b sent %u got %u results %u",
				 a.sent, a.received, a.results, b.sent, b.received, b.results);
		/* Events first: a GoAway before a failed step says why. */
		ra = sealpost_client_step(a.c);
		rb = sealpost_client_step(b.c);
		take_events(&a, &b, expect);
		take_events(&b, &a, expect);
		assert_int_equal(ra, 0);
		assert_int_equal(rb, 0);
		rounds++;
	}
	/* When the broker assigns a seq in the result, it is the delivery's. */
	for (i = 0; i < PER_DIR; i++) {
		if (a.result_seq[i])
			assert_int_equal(a.result_seq[i], b.deliver_seq[i]);
		if (b.result_seq[i])
			assert_int_equal(b.result_seq[i], a.deliver_seq[i]);
	}
	/* Coalescing: far fewer poll rounds than envelopes. */
	print_message("10000 envelopes in %u event-loop rounds\n", rounds);
	sealpost_client_close(a.c);
	sealpost_client_close(b.c);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
	assert_int_equal(sp_it_log_count_key(&broker, a.pub), 0);
	assert_int_equal(sp_it_log_count_key(&broker, b.pub), 0);
}

static void test_xx_learns_key(void **state)
{
	struct sealpost_key *kx = new_key(), *ki = new_key();
	struct sealpost_client *x = NULL, *ik;
	uint8_t learned[32], pi[32], px[32];
	struct sealpost_event ev;
	int status = -1;

	(void)state;
	assert_int_equal(sealpost_client_connect(&x, broker.addr, kx, NULL, TIMEOUT_MS), 0);
	wait_drained(x);
	sealpost_client_server_key(x, learned);
	assert_memory_equal(learned, broker.server_pub, 32);
	assert_int_equal(sealpost_client_max_envelope(x), SEALPOST_ENVELOPE_MAX);

	/* The XX device is a full citizen: it sends and receives. */
	ik = connect_ik(ki);
	sealpost_key_public(ki, pi);
	sealpost_key_public(kx, px);
	assert_int_equal(sealpost_client_send_wait(x, pi, "via XX", 6, TIMEOUT_MS, &status, NULL), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(sealpost_client_next_event(ik, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_memory_equal(ev.sender, px, 32);
	assert_int_equal(ev.len, 6);
	assert_memory_equal(ev.data, "via XX", 6);
	assert_int_equal(sealpost_client_send_wait(ik, px, "back", 4, TIMEOUT_MS, &status, NULL), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(sealpost_client_next_event(x, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_memory_equal(ev.sender, pi, 32);
	assert_memory_equal(ev.data, "back", 4);
	sealpost_client_close(x);
	sealpost_client_close(ik);
	sealpost_key_free(kx);
	sealpost_key_free(ki);
}

static void test_wrong_server_key(void **state)
{
	struct sealpost_key *k = new_key(), *other = new_key();
	struct sealpost_client *c = NULL;
	uint8_t wrong[32];
	uint64_t pid;
	struct sealpost_event ev;

	(void)state;
	sealpost_key_public(other, wrong);
	assert_int_equal(sealpost_client_connect(&c, broker.addr, k, wrong, TIMEOUT_MS),
			 -SEALPOST_ESERVERKEY);
	assert_null(c);
	/* The broker is fine and serves the next connection. */
	assert_int_equal(sp_it_broker_alive(&broker), 1);
	c = connect_ik(k);
	assert_int_equal(sealpost_client_ping(c, &pid), 0);
	assert_int_equal(sealpost_client_next_event(c, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_PONG);
	assert_int_equal(ev.id, pid);
	sealpost_client_close(c);
	sealpost_key_free(k);
	sealpost_key_free(other);
}

static void test_offline_and_bad_recipient(void **state)
{
	struct sealpost_key *k = new_key(), *absent = new_key();
	struct sealpost_client *c;
	uint8_t to[32], zero[32] = { 0 }, env[200];
	size_t elen;
	uint64_t id;
	struct sealpost_event ev;
	int status = -1;

	(void)state;
	sealpost_key_public(absent, to);
	c = connect_ik(k);
	/* Offline is no refusal for a durable send (the mailbox keeps it)... */
	assert_int_equal(sealpost_client_send_wait(c, to, "anyone?", 7, TIMEOUT_MS, &status, NULL), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	/* ...but it is for an online-only one. */
	assert_int_equal(sealpost_client_send_ex(c, to, "anyone?", 7, SEALPOST_SEND_ONLINE_ONLY, 0, &id),
			 0);
	assert_int_equal(sealpost_client_flush(c, TIMEOUT_MS), 0);
	assert_int_equal(sealpost_client_next_event(c, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_RESULT);
	assert_int_equal(ev.client_id, id);
	status = ev.status;
	assert_int_equal(status, SEALPOST_STATUS_ERR_OFFLINE);
	assert_string_equal(sealpost_status_string(status), "err_offline");

	/* The library refuses a low-order key; raw sends let the broker judge. */
	assert_int_equal(sealpost_client_send(c, zero, "x", 1, NULL), -EINVAL);
	assert_int_equal(sealpost_envelope_seal(k, to, "x", 1, env, sizeof(env), &elen), 0);
	assert_int_equal(sealpost_client_send_raw(c, zero, env, elen, &id), 0);
	assert_int_equal(sealpost_client_flush(c, TIMEOUT_MS), 0);
	assert_int_equal(sealpost_client_next_event(c, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_RESULT);
	assert_int_equal(ev.client_id, id);
	assert_int_equal(ev.status, SEALPOST_STATUS_ERR_BAD_RECIPIENT);
	sealpost_client_close(c);
	sealpost_key_free(k);
	sealpost_key_free(absent);
}

/* A delivery that does not open is an event; the connection goes on. */
static void test_bad_envelope(void **state)
{
	struct sealpost_key *ka = new_key(), *kb = new_key(), *kc = new_key();
	struct sealpost_client *a, *b;
	uint8_t pb[32], pc[32], pa[32], env[200];
	size_t elen;
	struct sealpost_event ev;
	int status = -1;

	(void)state;
	sealpost_key_public(ka, pa);
	sealpost_key_public(kb, pb);
	sealpost_key_public(kc, pc);
	a = connect_ik(ka);
	b = connect_ik(kb);
	/* Sealed for c but addressed to b; then plain garbage; then a good one. */
	assert_int_equal(sealpost_envelope_seal(ka, pc, "for c", 5, env, sizeof(env), &elen), 0);
	assert_int_equal(sealpost_client_send_raw(a, pb, env, elen, NULL), 0);
	assert_int_equal(sealpost_client_send_raw(a, pb, (const uint8_t *)"garbage", 7, NULL), 0);
	assert_int_equal(sealpost_client_send_raw(a, pb, NULL, 0, NULL), 0);
	assert_int_equal(sealpost_client_send_wait(a, pb, "good", 4, TIMEOUT_MS, &status, NULL), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sealpost_client_next_event(a, &ev, TIMEOUT_MS), 1);
		assert_int_equal(ev.type, SEALPOST_EVENT_RESULT);
		assert_int_equal(ev.status, SEALPOST_STATUS_ACCEPTED);
		assert_int_equal(sealpost_client_next_event(b, &ev, TIMEOUT_MS), 1);
		assert_int_equal(ev.type, SEALPOST_EVENT_BAD_ENVELOPE);
		assert_int_equal(ev.error, -EBADMSG);
	}
	assert_int_equal(sealpost_client_next_event(b, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_memory_equal(ev.sender, pa, 32);
	assert_memory_equal(ev.data, "good", 4);
	sealpost_client_close(a);
	sealpost_client_close(b);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
	sealpost_key_free(kc);
}

/* The same device connecting again: the old connection gets GoAway TAKEOVER
 * (and, resilient by default, would reconnect: it is closed before). */
static void test_takeover(void **state)
{
	struct sealpost_key *k = new_key();
	struct sealpost_client *old, *fresh;
	struct sealpost_event ev;
	uint64_t pid;

	(void)state;
	old = connect_ik(k);
	fresh = connect_ik(k);
	assert_int_equal(sealpost_client_next_event(old, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_GOAWAY);
	assert_int_equal(ev.status, SEALPOST_STATUS_GOAWAY_TAKEOVER);
	assert_int_equal(sealpost_client_next_event(old, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_DISCONNECTED);
	assert_int_equal(ev.error, 0);
	assert_int_equal(ev.status, SEALPOST_STATUS_GOAWAY_TAKEOVER);
	assert_int_equal(sealpost_client_ping(fresh, &pid), 0);
	assert_int_equal(sealpost_client_next_event(fresh, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_PONG);
	sealpost_client_close(old);
	sealpost_client_close(fresh);
	sealpost_key_free(k);
}

/* A broker with a lower --max-envelope announces it; the library enforces it. */
static void test_max_envelope_and_shutdown(void **state)
{
	static const char *const args[] = { "--max-envelope", "1000", NULL };
	struct sp_it_broker small;
	struct sealpost_key *k = new_key(), *k2 = new_key();
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;
	struct sealpost_client *c = NULL, *c2 = NULL;
	uint8_t msg[904] = { 0 }, p2[32];
	struct sealpost_event ev;
	int status = -1, st;

	(void)state;
	assert_int_equal(sp_it_broker_start(&small, NULL, args), 0);
	sealpost_key_public(k2, p2);
	assert_int_equal(sealpost_client_connect(&c, small.addr, k, small.server_pub, TIMEOUT_MS), 0);
	o.flags = SEALPOST_CONNECT_NO_RECONNECT;
	assert_int_equal(sealpost_client_connect_opts(&c2, small.addr, k2, NULL, TIMEOUT_MS, &o), 0);
	wait_drained(c);
	wait_drained(c2);
	assert_int_equal(sealpost_client_max_envelope(c), 1000);
	assert_int_equal(sealpost_client_max_message(c), 903);
	assert_int_equal(sealpost_client_send(c, p2, msg, 904, NULL), -EMSGSIZE);
	assert_int_equal(sealpost_client_send_wait(c, p2, msg, 903, TIMEOUT_MS, &status, NULL), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(sealpost_client_next_event(c2, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_int_equal(ev.len, 903);

	/* SIGTERM: connected clients hear GoAway SHUTDOWN, then the close; a
	 * resilient client says DISCONNECTED and queues sends for later. */
	st = sp_it_broker_stop(&small);
	assert_int_equal(sealpost_client_next_event(c, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_GOAWAY);
	assert_int_equal(ev.status, SEALPOST_STATUS_GOAWAY_SHUTDOWN);
	assert_int_equal(sealpost_client_next_event(c, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_DISCONNECTED);
	assert_int_equal(ev.status, SEALPOST_STATUS_GOAWAY_SHUTDOWN);
	assert_int_equal(sealpost_client_send(c, p2, "x", 1, NULL), 0);
	assert_int_equal(sealpost_client_pending(c, NULL, 0), 1);
	/* Without reconnects: CLOSED, and sends are refused. */
	assert_int_equal(sealpost_client_next_event(c2, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_GOAWAY);
	assert_int_equal(sealpost_client_next_event(c2, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_CLOSED);
	assert_int_equal(ev.error, 0);
	assert_int_equal(sealpost_client_send(c2, p2, "x", 1, NULL), -ENOTCONN);
	assert_int_equal(st, 0);
	sealpost_client_close(c);
	sealpost_client_close(c2);
	sp_it_rmrf(small.data_dir);
	sealpost_key_free(k);
	sealpost_key_free(k2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exchange_10000),
		cmocka_unit_test(test_xx_learns_key),
		cmocka_unit_test(test_wrong_server_key),
		cmocka_unit_test(test_offline_and_bad_recipient),
		cmocka_unit_test(test_bad_envelope),
		cmocka_unit_test(test_takeover),
		cmocka_unit_test(test_max_envelope_and_shutdown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
