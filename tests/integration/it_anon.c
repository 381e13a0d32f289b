/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_anon: sealed sender's broker side (docs/PROTOCOL.md 14) against a real
 * sealpostd, driven by the raw protocol client (support_raw), not by
 * libsealpost: access keys set and rotated by an authenticated device,
 * anonymous (Noise NK) send-only connections handing over AnonSends checked
 * against the recipient's access key, and every frame an anonymous
 * connection may not send refused with GoAway ANONYMOUS (68), the broker
 * and the recipient fine afterwards.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "sp_frame.h"
#include "sp_limits.h"
#include "sp_noise.h"
#include "sp_reasons.h"
#include "support.h"
#include "support_raw.h"

enum { WAIT_MS = 10000 };

static void start(struct sp_it_broker *b)
{
	const char *args[] = { "--fsync", "never", "--store-min-free", "0", "--log-level", "info",
			       NULL };
	int rc = sp_it_broker_start(b, NULL, args);

	if (rc)
		fprintf(stderr, "[it] could not start a broker: %s\n", strerror(-rc));
	assert_int_equal(rc, 0);
}

static void open_pattern(struct sp_raw *c, const struct sp_it_broker *b, uint8_t pattern)
{
	int rc;

	assert_int_equal(sp_raw_init(c), 0);
	rc = sp_raw_open(c, b->port, pattern, b->server_pub);
	if (rc)
		fprintf(stderr, "[it] handshake failed: %s\n", strerror(-rc));
	assert_int_equal(rc, 0);
}

/* SetAccess, answered by AccessResult with the same client_id: its status. */
static uint32_t set_access(struct sp_raw *r, uint64_t id, const uint8_t *key, size_t len,
			   uint32_t flags)
{
	uint8_t buf[512];
	size_t off = 0;
	struct sp_raw_frame f;

	assert_int_equal(sp_raw_put_set_access(buf, sizeof(buf), &off, id, key, len, flags), 0);
	assert_int_equal(sp_raw_send_plain(r, buf, off), 0);
	assert_int_equal(sp_raw_wait_frame(r, SP_FRAME_ACCESS_RESULT, &f, WAIT_MS), 0);
	assert_int_equal(f.client_id, id);
	return f.status;
}

/* AnonSend, answered by SendResult with the same client_id: its status. */
static uint32_t anon_send(struct sp_raw *a, const uint8_t *to, const uint8_t *token, size_t tlen,
			  uint64_t id, const char *body)
{
	uint8_t buf[1024];
	size_t off = 0;
	struct sp_raw_frame f;

	assert_int_equal(sp_raw_put_anon_send(buf, sizeof(buf), &off, to, SP_KEY_LEN, token, tlen,
					      id, 0, (const uint8_t *)body, strlen(body)),
			 0);
	assert_int_equal(sp_raw_send_plain(a, buf, off), 0);
	assert_int_equal(sp_raw_wait_frame(a, SP_FRAME_SEND_RESULT, &f, WAIT_MS), 0);
	assert_int_equal(f.client_id, id);
	return f.status;
}

/* The recipient's next Deliver carries exactly body. */
static void expect_deliver(struct sp_raw *r, const char *body)
{
	struct sp_raw_frame f;

	assert_int_equal(sp_raw_wait_frame(r, SP_FRAME_DELIVER, &f, WAIT_MS), 0);
	assert_true(f.seq > 0);
	assert_int_equal(f.body_len, strlen(body));
	assert_memory_equal(f.body, body, f.body_len);
}

/* One frame an anonymous connection may not send: GoAway 68, then closed. */
static void expect_forbidden(const struct sp_it_broker *b, const uint8_t *frame, size_t len)
{
	struct sp_raw a;
	struct sp_raw_frame f;
	int rc;

	open_pattern(&a, b, SP_PREAMBLE_PATTERN_NK);
	assert_int_equal(sp_raw_send_plain(&a, frame, len), 0);
	assert_int_equal(sp_raw_wait_frame(&a, SP_FRAME_GOAWAY, &f, WAIT_MS), 0);
	assert_int_equal(f.status, SP_STATUS_GOAWAY_ANONYMOUS);
	rc = sp_raw_recv_frame(&a, &f, WAIT_MS);
	assert_true(rc == -ENOTCONN || rc == -ECONNRESET);
	sp_raw_close(&a);
}

static void test_access_keys_and_anonymous_sends(void **state)
{
	struct sp_it_broker b;
	struct sp_raw r, a;
	uint8_t k1[16], k2[32], bad[5] = { 0 };

	(void)state;
	randombytes_buf(k1, sizeof(k1));
	randombytes_buf(k2, sizeof(k2));
	start(&b);
	open_pattern(&r, &b, SP_PREAMBLE_PATTERN_IK);
	open_pattern(&a, &b, SP_PREAMBLE_PATTERN_NK);

	/* No key set, not accepting anyone: refused, nothing stored. */
	assert_int_equal(anon_send(&a, r.s_pub, NULL, 0, 1, "before any key"),
			 SP_STATUS_ERR_ACCESS_MISSING);
	assert_int_equal(set_access(&r, 10, bad, sizeof(bad), 0), SP_STATUS_ERR_ACCESS_BAD_KEY);
	assert_int_equal(set_access(&r, 11, k1, sizeof(k1), 0), SP_STATUS_ACCEPTED);
	assert_int_equal(anon_send(&a, r.s_pub, NULL, 0, 2, "no token"),
			 SP_STATUS_ERR_ACCESS_MISSING);
	assert_int_equal(anon_send(&a, r.s_pub, k2, sizeof(k2), 3, "wrong token"),
			 SP_STATUS_ERR_ACCESS_WRONG);
	assert_int_equal(anon_send(&a, r.s_pub, k1, sizeof(k1), 4, "sealed, from nobody"),
			 SP_STATUS_ACCEPTED);
	expect_deliver(&r, "sealed, from nobody");

	/* Rotation cuts off senders of the old key, with its own code. */
	assert_int_equal(set_access(&r, 12, k2, sizeof(k2), 0), SP_STATUS_ACCEPTED);
	assert_int_equal(anon_send(&a, r.s_pub, k1, sizeof(k1), 5, "old key"),
			 SP_STATUS_ERR_ACCESS_ROTATED);
	assert_int_equal(anon_send(&a, r.s_pub, k2, sizeof(k2), 6, "new key"), SP_STATUS_ACCEPTED);
	expect_deliver(&r, "new key");

	/* "Accept from anyone": no token needed; turned off again, needed. */
	assert_int_equal(set_access(&r, 13, NULL, 0, 1), SP_STATUS_ACCEPTED);
	assert_int_equal(anon_send(&a, r.s_pub, NULL, 0, 7, "anyone"), SP_STATUS_ACCEPTED);
	expect_deliver(&r, "anyone");
	assert_int_equal(set_access(&r, 14, NULL, 0, 0), SP_STATUS_ACCEPTED);
	assert_int_equal(anon_send(&a, r.s_pub, NULL, 0, 8, "anyone, again"),
			 SP_STATUS_ERR_ACCESS_MISSING);

	/* An AnonSend on an authenticated connection is refused; the connection
	 * stays. */
	assert_int_equal(anon_send(&r, r.s_pub, k2, sizeof(k2), 9, "not anonymous"),
			 SP_STATUS_ERR_NOT_ANONYMOUS);
	sp_raw_close(&a);

	/* Each refusal counted under its own reason, none as "internal"
	 * (accepted + refused stays the Send rate, docs/OPERATIONS.md). */
	{
		static const char *const want[] = {
			"sealpost_envelopes_refused_total{reason=\"access_missing\"} 3\n",
			"sealpost_envelopes_refused_total{reason=\"access_wrong\"} 1\n",
			"sealpost_envelopes_refused_total{reason=\"access_rotated\"} 1\n",
			"sealpost_envelopes_refused_total{reason=\"not_anonymous\"} 1\n",
			"sealpost_envelopes_refused_total{reason=\"anon_rate_limited\"} 0\n",
			"sealpost_envelopes_refused_total{reason=\"internal\"} 0\n",
			"sealpost_envelopes_accepted_total 3\n",
		};
		char *body = NULL;

		assert_true(b.metrics_port != 0);
		assert_int_equal(sp_it_http_get(b.metrics_port, "/metrics", &body), 200);
		assert_non_null(body);
		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
			if (!strstr(body, want[i]))
				fail_msg("/metrics lacks %s", want[i]);
		}
		free(body);
	}

	/* Nothing refused above was stored: the recipient reconnects and its
	 * backlog holds the three accepted ones (none was acked), no more. */
	sp_raw_disconnect(&r);
	{
		struct sp_raw_frame f;
		int deliveries = 0;

		assert_int_equal(sp_raw_open(&r, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
		for (;;) {
			assert_int_equal(sp_raw_recv_frame(&r, &f, WAIT_MS), 0);
			if (f.type == SP_FRAME_DRAINED)
				break;
			if (f.type == SP_FRAME_DELIVER)
				deliveries++;
		}
		assert_int_equal(deliveries, 3);
		sp_raw_close(&r);
	}
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

static void test_anonymous_connection_may_only_send(void **state)
{
	struct sp_it_broker b;
	struct sp_raw a, r;
	uint8_t buf[512], acc[16] = { 1 }, acc2[SP_ACCOUNT_LEN] = { 2 };
	size_t off;
	struct sp_raw_frame f;

	(void)state;
	start(&b);
	/* Ping is allowed (answered), and the connection stays. */
	open_pattern(&a, &b, SP_PREAMBLE_PATTERN_NK);
	off = 0;
	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, 77, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(&a, buf, off), 0);
	assert_int_equal(sp_raw_wait_frame(&a, SP_FRAME_PONG, &f, WAIT_MS), 0);
	assert_int_equal(f.id, 77);
	sp_raw_close(&a);

	/* Send, Ack, SetAccess, ListFetch: each GoAway 68 and closed. */
	off = 0;
	{
		uint8_t to[SP_KEY_LEN], priv[SP_KEY_LEN];

		sp_noise_keypair(to, priv);
		assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, to, SP_KEY_LEN, 1, 0,
						 (const uint8_t *)"x", 1),
				 0);
		sodium_memzero(priv, sizeof(priv));
	}
	expect_forbidden(&b, buf, off);
	off = 0;
	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_ACK, 1, NULL, 0), 0);
	expect_forbidden(&b, buf, off);
	off = 0;
	assert_int_equal(sp_raw_put_set_access(buf, sizeof(buf), &off, 1, acc, sizeof(acc), 1), 0);
	expect_forbidden(&b, buf, off);
	off = 0;
	assert_int_equal(sp_raw_put_list(buf, sizeof(buf), &off, SP_FRAME_LIST_FETCH, acc2, SP_ACCOUNT_LEN, 1,
					 NULL, 0),
			 0);
	expect_forbidden(&b, buf, off);

	/* The broker is fine: an authenticated device still works. */
	open_pattern(&r, &b, SP_PREAMBLE_PATTERN_IK);
	assert_int_equal(sp_raw_wait_frame(&r, SP_FRAME_DRAINED, &f, WAIT_MS), 0);
	sp_raw_close(&r);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_access_keys_and_anonymous_sends),
		cmocka_unit_test(test_anonymous_connection_may_only_send),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
