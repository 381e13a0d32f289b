/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_ws.c: the WebSocket transport (--ws-listen, PROTOCOL.md 13) against a
 * real sealpostd: IK and XX over ws, envelopes and acks between a ws device
 * and a TCP device both ways, the byte stream cut into arbitrary fragments,
 * pings, the close handshake, GoAway then close 1001 at shutdown; and bad
 * input, each answered as documented and the broker still serving an
 * honest client afterwards: bad upgrade requests (no key, wrong version,
 * wrong path, wrong subprotocol, oversized headers, a disallowed origin,
 * not HTTP), a text message (1003), oversized messages in one frame or in
 * fragments (1009), a protocol error (1002), an upgrade never finished
 * (closed at hello-timeout).
 *
 * Every wait is bounded (WAIT_MS): liveness bounds, not timing assertions.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sp_limits.h"
#include "support.h"
#include "support_raw.h"
#include "support_ws.h"

enum { WAIT_MS = 10000, MAX_MESSAGE = 8 + 2 + 65535 };

static struct sp_it_broker broker;
static uint64_t next_id = 1;

static int setup(void **state)
{
	static const char *const args[] = {
		"--ws-listen", "127.0.0.1:0", "--ws-allowed-origins", "https://app.example",
		"--ws-max-message", "65545", "--hello-timeout", "500",
		"--mailbox-sender-share", "100", "--store-min-free", "0", "--log-level", "debug", NULL,
	};

	(void)state;
	if (sp_it_broker_start(&broker, NULL, args))
		return -1;
	return broker.ws_port ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	int st = sp_it_broker_stop(&broker);

	if (st != 0)
		sp_it_log_tail(&broker, 40);
	sp_it_rmrf(broker.data_dir);
	return st == 0 ? 0 : -1;
}

static void ws_open(struct sp_raw *c, uint8_t pattern)
{
	int rc;

	memset(c, 0, sizeof(*c));
	assert_int_equal(sp_raw_init(c), 0);
	rc = sp_ws_open(c, broker.ws_port, pattern, broker.server_pub);
	if (rc) {
		fprintf(stderr, "[it_ws] ws open failed: %s\n", strerror(-rc));
		sp_it_log_tail(&broker, 20);
	}
	assert_int_equal(rc, 0);
}

static void tcp_open(struct sp_raw *c)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(sp_raw_init(c), 0);
	assert_int_equal(sp_raw_open(c, broker.port, SP_PREAMBLE_PATTERN_XX, broker.server_pub), 0);
}

/* from sends body to `to`; `to` gets it and acks it. */
static void exchange(struct sp_raw *from, struct sp_raw *to, const char *body)
{
	uint64_t id = next_id++;
	uint8_t plain[64];
	struct sp_raw_frame f;
	uint32_t status = 0;
	size_t off = 0;

	assert_int_equal(sp_raw_send_envelope(from, to->s_pub, id, (const uint8_t *)body, strlen(body)), 0);
	assert_int_equal(sp_raw_expect_result(from, id, &status, WAIT_MS), 0);
	assert_true(status == SP_STATUS_DELIVERED || status == SP_STATUS_ACCEPTED);
	assert_int_equal(sp_raw_wait_frame(to, SP_FRAME_DELIVER, &f, WAIT_MS), 0);
	assert_int_equal(f.body_len, strlen(body));
	assert_memory_equal(f.body, body, f.body_len);
	assert_int_equal(sp_raw_put_simple(plain, sizeof(plain), &off, SP_FRAME_ACK, f.seq, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(to, plain, off), 0);
}

/* Ping/pong over the sealpost protocol: the connection is served. */
static void still_served(void)
{
	struct sp_raw a, b;

	ws_open(&a, SP_PREAMBLE_PATTERN_IK);
	tcp_open(&b);
	exchange(&a, &b, "still here");
	sp_raw_close(&a);
	sp_raw_close(&b);
}

static uint64_t metric(const char *series)
{
	char *body = NULL, *p;
	uint64_t v = 0;

	assert_int_equal(sp_it_http_get(broker.metrics_port, "/metrics", &body), 200);
	p = strstr(body, series);
	if (p && p[strlen(series)] == ' ')
		v = strtoull(p + strlen(series) + 1, NULL, 10);
	free(body);
	return v;
}

static void test_ik_xx_both_ways(void **state)
{
	struct sp_raw w, x, t;

	(void)state;
	ws_open(&w, SP_PREAMBLE_PATTERN_IK);
	ws_open(&x, SP_PREAMBLE_PATTERN_XX);
	tcp_open(&t);
	exchange(&w, &t, "ws to tcp");
	exchange(&t, &w, "tcp to ws");
	exchange(&x, &w, "ws xx to ws ik");
	exchange(&t, &x, "tcp to ws xx");
	sp_raw_close(&w);
	sp_raw_close(&x);
	sp_raw_close(&t);
	assert_true(metric("sealpost_transport_handshakes_total{transport=\"ws\",pattern=\"ik\","
			   "outcome=\"ok\"}") >= 1);
	assert_true(metric("sealpost_transport_handshakes_total{transport=\"ws\",pattern=\"xx\","
			   "outcome=\"ok\"}") >= 1);
	assert_true(metric("sealpost_transport_connections_accepted_total{transport=\"ws\"}") >= 2);
	assert_true(metric("sealpost_ws_upgrades_total{outcome=\"ok\"}") >= 2);
}

/* The binary messages form a byte stream: a Noise message cut into 7-byte
 * fragments, and messages cut anywhere, reach the session intact. */
static void test_byte_stream_fragments(void **state)
{
	struct sp_raw w, t;
	int status;

	(void)state;
	memset(&w, 0, sizeof(w));
	assert_int_equal(sp_raw_init(&w), 0);
	assert_int_equal(sp_ws_connect(&w, broker.ws_port, NULL, &status), 0);
	assert_int_equal(status, 101);
	w.ws_fragment = 7;
	assert_int_equal(sp_raw_handshake(&w, SP_PREAMBLE_PATTERN_IK, broker.server_pub, NULL), 0);
	tcp_open(&t);
	exchange(&w, &t, "fragmented");
	/* Each write its own message of 3-byte frames. */
	w.ws_fragment = 3;
	exchange(&w, &t, "in threes");
	exchange(&t, &w, "back");
	sp_raw_close(&w);
	sp_raw_close(&t);
}

static void test_ping_and_close(void **state)
{
	struct sp_raw w;
	uint8_t buf[64], op, code[2] = { 0x03, 0xe8 };
	bool fin;
	size_t n;
	uint16_t got = 0;

	(void)state;
	ws_open(&w, SP_PREAMBLE_PATTERN_IK);
	assert_int_equal(sp_ws_send_frame(&w, true, SP_WS_OP_PING, (const uint8_t *)"abc", 3), 0);
	/* Drained (a binary message) may come first. */
	for (;;) {
		assert_int_equal(sp_ws_recv_frame(&w, &op, &fin, buf, sizeof(buf), &n, WAIT_MS), 0);
		if (op == SP_WS_OP_PONG)
			break;
		assert_int_equal(op, SP_WS_OP_BINARY);
	}
	assert_int_equal(n, 3);
	assert_memory_equal(buf, "abc", 3);
	/* The client closes: the broker answers with the same code and closes. */
	assert_int_equal(sp_ws_send_frame(&w, true, SP_WS_OP_CLOSE, code, 2), 0);
	assert_int_equal(sp_ws_expect_close(&w, &got, WAIT_MS), 0);
	assert_int_equal(got, 1000);
	sp_raw_close(&w);
	still_served();
}

struct bad {
	const char *name;
	struct sp_ws_request req;
	int status;
};

static void test_bad_upgrades(void **state)
{
	static char big[9000];
	const struct bad cases[] = {
		{ "no key", { .no_key = true }, 400 },
		{ "version 8", { .version = "8" }, 426 },
		{ "path /v2", { .path = "/v2" }, 404 },
		{ "path /", { .path = "/" }, 404 },
		{ "subprotocol chat", { .protocol = "chat" }, 400 },
		{ "no subprotocol", { .protocol = "" }, 400 },
		{ "oversized headers", { .extra = big }, 431 },
		{ "disallowed origin", { .origin = "https://evil.example" }, 403 },
		{ "POST", { .raw = "POST /v1 HTTP/1.1\r\nHost: x\r\n\r\n" }, 400 },
		{ "HTTP/1.0", { .raw = "GET /v1 HTTP/1.0\r\nHost: x\r\n\r\n" }, 400 },
		{ "folded header", { .extra = "X-A: 1\r\n folded\r\n" }, 400 },
		{ "bare LF", { .raw = "GET /v1 HTTP/1.1\nHost: x\n\n\r\n\r\n" }, 400 },
		{ "not HTTP", { .raw = "\x00\x01\x02\x03\r\n\r\n", .raw_len = 8 }, 400 },
	};
	uint64_t refused0 = metric("sealpost_transport_connections_closed_total{transport=\"ws\","
				   "reason=\"ws_bad_upgrade\"}");

	(void)state;
	memset(big, 'a', sizeof(big) - 3);
	memcpy(big, "X-Big: ", 7);
	memcpy(big + sizeof(big) - 3, "\r\n", 3);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sp_raw c;
		int status = 0, rc;

		memset(&c, 0, sizeof(c));
		assert_int_equal(sp_raw_init(&c), 0);
		rc = sp_ws_connect(&c, broker.ws_port, &cases[i].req, &status);
		print_message("%-18s -> %d\n", cases[i].name, status);
		assert_int_equal(rc, 0);
		assert_int_equal(status, cases[i].status);
		/* Then the broker closes (after the answer). */
		assert_int_equal(sp_raw_wait_closed(&c, WAIT_MS, NULL), 0);
		sp_raw_close(&c);
	}
	assert_int_equal(metric("sealpost_transport_connections_closed_total{transport=\"ws\","
				"reason=\"ws_bad_upgrade\"}") - refused0,
			 sizeof(cases) / sizeof(cases[0]));
	assert_true(metric("sealpost_ws_upgrades_total{outcome=\"forbidden_origin\"}") >= 1);
	still_served();
}

static void test_allowed_origin(void **state)
{
	const struct sp_ws_request ok = { .origin = "https://app.example" };
	const struct sp_ws_request ok_case = { .origin = "HTTPS://APP.EXAMPLE" };
	struct sp_raw c;
	int status;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(sp_raw_init(&c), 0);
	assert_int_equal(sp_ws_connect(&c, broker.ws_port, &ok, &status), 0);
	assert_int_equal(status, 101);
	assert_int_equal(sp_raw_handshake(&c, SP_PREAMBLE_PATTERN_XX, broker.server_pub, NULL), 0);
	sp_raw_close(&c);
	memset(&c, 0, sizeof(c));
	assert_int_equal(sp_raw_init(&c), 0);
	assert_int_equal(sp_ws_connect(&c, broker.ws_port, &ok_case, &status), 0);
	assert_int_equal(status, 101);
	sp_raw_close(&c);
}

/* Upgraded, then fn misbehaves; the broker must close with `code`. */
static void expect_ws_close(void (*fn)(struct sp_raw *), uint16_t code, bool handshake)
{
	struct sp_raw c;
	uint16_t got = 0;
	int status;

	memset(&c, 0, sizeof(c));
	assert_int_equal(sp_raw_init(&c), 0);
	assert_int_equal(sp_ws_connect(&c, broker.ws_port, NULL, &status), 0);
	assert_int_equal(status, 101);
	if (handshake)
		assert_int_equal(sp_raw_handshake(&c, SP_PREAMBLE_PATTERN_IK, broker.server_pub, NULL), 0);
	fn(&c);
	assert_int_equal(sp_ws_expect_close(&c, &got, WAIT_MS), 0);
	assert_int_equal(got, code);
	sp_raw_close(&c);
}

static void send_text(struct sp_raw *c)
{
	assert_int_equal(sp_ws_send_frame(c, true, SP_WS_OP_TEXT, (const uint8_t *)"hello", 5), 0);
}

static void send_big_frame(struct sp_raw *c)
{
	static const uint8_t some[16];

	/* Refused at its header (with the first payload bytes: wslay reports
	 * a frame once payload arrives), before the rest is sent. */
	assert_int_equal(sp_ws_send_header(c, true, SP_WS_OP_BINARY, MAX_MESSAGE + 1), 0);
	assert_int_equal(sp_raw_sock_send(c, some, sizeof(some)), 0);
}

/* A length-prefixed transport message of Pings, about `size` bytes: valid
 * stream content, so only the message bound can end the connection. */
static size_t ping_message(struct sp_raw *c, uint8_t *out, size_t cap, size_t size)
{
	static uint8_t plain[SP_TRANSPORT_PLAINTEXT_MAX];
	size_t off = 0, len = 0;

	while (off + 32 < size)
		assert_int_equal(sp_raw_put_simple(plain, sizeof(plain), &off, SP_FRAME_PING, 1, NULL, 0), 0);
	assert_int_equal(sp_raw_seal(c, plain, off, out + 2, cap - 2, &len), 0);
	out[0] = (uint8_t)(len >> 8);
	out[1] = (uint8_t)len;
	return len + 2;
}

static void send_big_fragments(struct sp_raw *c)
{
	static uint8_t frag[SP_LEN_PREFIX + SP_NOISE_MSG_MAX];
	size_t n;

	/* Each fragment is under the bound, the message is not. */
	n = ping_message(c, frag, sizeof(frag), 40000);
	assert_int_equal(sp_ws_send_frame(c, false, SP_WS_OP_BINARY, frag, n), 0);
	n = ping_message(c, frag, sizeof(frag), 40000);
	assert_int_equal(sp_ws_send_frame(c, true, SP_WS_OP_CONT, frag, n), 0);
}

static void send_bad_opcode(struct sp_raw *c)
{
	assert_int_equal(sp_ws_send_frame(c, true, 3, (const uint8_t *)"x", 1), 0);
}

static void send_stray_continuation(struct sp_raw *c)
{
	assert_int_equal(sp_ws_send_frame(c, true, SP_WS_OP_CONT, (const uint8_t *)"x", 1), 0);
}

static void test_text_message(void **state)
{
	(void)state;
	expect_ws_close(send_text, 1003, false);
	expect_ws_close(send_text, 1003, true);
	still_served();
}

static void test_oversized(void **state)
{
	(void)state;
	expect_ws_close(send_big_frame, 1009, false);
	expect_ws_close(send_big_fragments, 1009, true);
	still_served();
}

static void test_protocol_errors(void **state)
{
	(void)state;
	expect_ws_close(send_bad_opcode, 1002, false);
	expect_ws_close(send_stray_continuation, 1002, true);
	still_served();
}

/* Bad input inside the stream is handled as on TCP: a bad preamble is
 * closed at once (no GoAway, no close frame: nothing authenticated). */
static void test_bad_stream(void **state)
{
	static const uint8_t junk[8] = "GARBAGE!";
	uint64_t before = metric("sealpost_transport_connections_closed_total{transport=\"ws\","
				 "reason=\"bad_preamble\"}");
	struct sp_raw c;
	int status;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(sp_raw_init(&c), 0);
	assert_int_equal(sp_ws_connect(&c, broker.ws_port, NULL, &status), 0);
	assert_int_equal(status, 101);
	assert_int_equal(sp_ws_send_binary(&c, junk, sizeof(junk)), 0);
	assert_int_equal(sp_raw_wait_closed(&c, WAIT_MS, NULL), 0);
	sp_raw_close(&c);
	assert_int_equal(metric("sealpost_transport_connections_closed_total{transport=\"ws\","
				"reason=\"bad_preamble\"}") - before, 1);
	still_served();
}

/* The upgrade never finishes: closed at hello-timeout (500 ms here). */
static void test_upgrade_never_finishes(void **state)
{
	static const char part[] = "GET /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\n";
	struct sp_raw slow, silent, hs;
	uint64_t t0 = metric("sealpost_transport_connections_closed_total{transport=\"ws\","
			     "reason=\"hello_timeout\"}");
	int status;

	(void)state;
	memset(&slow, 0, sizeof(slow));
	memset(&silent, 0, sizeof(silent));
	memset(&hs, 0, sizeof(hs));
	assert_int_equal(sp_raw_init(&slow), 0);
	assert_int_equal(sp_raw_init(&silent), 0);
	assert_int_equal(sp_raw_init(&hs), 0);
	assert_int_equal(sp_raw_connect(&slow, broker.ws_port), 0);
	assert_int_equal(sp_raw_connect(&silent, broker.ws_port), 0);
	assert_int_equal(sp_raw_sock_send(&slow, (const uint8_t *)part, sizeof(part) - 1), 0);
	/* Upgraded, but no preamble: the same deadline covers both. */
	assert_int_equal(sp_ws_connect(&hs, broker.ws_port, NULL, &status), 0);
	assert_int_equal(status, 101);
	assert_int_equal(sp_raw_wait_closed(&slow, WAIT_MS, NULL), 0);
	assert_int_equal(sp_raw_wait_closed(&silent, WAIT_MS, NULL), 0);
	assert_int_equal(sp_raw_wait_closed(&hs, WAIT_MS, NULL), 0);
	sp_raw_close(&slow);
	sp_raw_close(&silent);
	sp_raw_close(&hs);
	assert_int_equal(metric("sealpost_transport_connections_closed_total{transport=\"ws\","
				"reason=\"hello_timeout\"}") - t0, 3);
	still_served();
}

/* A stopping broker: GoAway SHUTDOWN inside the stream, then close 1001. */
static void test_shutdown_goaway_then_close(void **state)
{
	struct sp_raw w;
	uint32_t code = 0;
	uint16_t ws_code = 0;
	struct sp_raw_frame f;
	int rc;

	(void)state;
	ws_open(&w, SP_PREAMBLE_PATTERN_IK);
	{
		uint8_t plain[32];
		size_t off = 0;

		assert_int_equal(sp_raw_put_simple(plain, sizeof(plain), &off, SP_FRAME_PING, 7, NULL, 0), 0);
		assert_int_equal(sp_raw_send_plain(&w, plain, off), 0);
		assert_int_equal(sp_raw_wait_frame(&w, SP_FRAME_PONG, &f, WAIT_MS), 0);
	}
	kill(broker.pid, SIGTERM);
	for (;;) {
		rc = sp_raw_recv_frame(&w, &f, WAIT_MS);
		if (rc)
			break;
		if (f.type == SP_FRAME_GOAWAY) {
			code = f.status;
			break;
		}
	}
	assert_int_equal(rc, 0);
	assert_int_equal(code, SP_STATUS_GOAWAY_SHUTDOWN);
	assert_int_equal(sp_ws_expect_close(&w, &ws_code, WAIT_MS), 0);
	assert_int_equal(ws_code, 1001);
	sp_raw_close(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ik_xx_both_ways),
		cmocka_unit_test(test_byte_stream_fragments),
		cmocka_unit_test(test_ping_and_close),
		cmocka_unit_test(test_bad_upgrades),
		cmocka_unit_test(test_allowed_origin),
		cmocka_unit_test(test_text_message),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_protocol_errors),
		cmocka_unit_test(test_bad_stream),
		cmocka_unit_test(test_upgrade_never_finishes),
		cmocka_unit_test(test_shutdown_goaway_then_close),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
