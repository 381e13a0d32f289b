/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_cluster_msg.c: the payloads nodes send each other over NATS and
 * JetStream's answers to a port (broker/cluster/sp_cluster_msg.h): the
 * binary messages round-trip byte for byte, anything else is refused; the
 * JSON answers (PubAck, STREAM.MSG.GET, STREAM.MSG.DELETE) are read as
 * nats-server writes them, errors keep their err_code, and what is not
 * exactly one of ours is dropped; RFC 3339 times give the ms Python's
 * calendar.timegm gives for the same dates (computed apart, written here).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sp_cluster_msg.h"
#include "sp_limits.h"
#include "sp_reasons.h"

#define PREFIX "sp.r.00000000000000ff.3."

static const uint8_t token[SP_KEY_LEN] = { 0xab, 0x01, 0x02, [31] = 0xfe };

static struct sp_cluster_item *device(const char *reply, const uint8_t *d, size_t len)
{
	char subj[SP_CLUSTER_SUBJECT_MAX];

	sp_cluster_msg_subject(token, subj);
	return sp_cluster_msg_device(subj, reply, d, len);
}

static void test_subject(void **state)
{
	char subj[SP_CLUSTER_SUBJECT_MAX];

	(void)state;
	sp_cluster_msg_subject(token, subj);
	assert_int_equal(strlen(subj), 5 + 64);
	assert_memory_equal(subj, "sp.d.ab0102", 11);
	assert_string_equal(subj + 5 + 62, "fe");
}

static void test_device_messages_round_trip(void **state)
{
	uint8_t m[SP_CLUSTER_STORED_HEAD + 5];
	struct sp_cluster_item *it;

	(void)state;
	sp_cluster_msg_deliver_head(m, 0x0102030405060708ull);
	memcpy(m + SP_CLUSTER_MSG_HEAD, "hello", 5);
	it = device("sp.r.1.2.3", m, SP_CLUSTER_MSG_HEAD + 5);
	assert_non_null(it);
	assert_int_equal(it->kind, SP_CLUSTER_DELIVER);
	assert_int_equal(it->node, 0x0102030405060708ull);
	assert_memory_equal(it->token, token, SP_KEY_LEN);
	assert_int_equal(it->len, 5);
	assert_memory_equal(it->body, "hello", 5);
	assert_string_equal(it->reply, "sp.r.1.2.3");
	free(it);

	sp_cluster_msg_stored_head(m, 9, 0xfffffffffffffff0ull);
	memcpy(m + SP_CLUSTER_STORED_HEAD, "sealx", 5);
	assert_int_equal(m[0], 'S');
	it = device(NULL, m, sizeof(m));
	assert_non_null(it);
	assert_int_equal(it->kind, SP_CLUSTER_STORED);
	assert_int_equal(it->node, 9);
	assert_int_equal(it->seq, 0xfffffffffffffff0ull);
	assert_int_equal(it->len, 5);
	assert_memory_equal(it->body, "sealx", 5);
	assert_string_equal(it->reply, "");
	free(it);
	/* a STORED shorter than its head is not one */
	assert_null(device(NULL, m, SP_CLUSTER_STORED_HEAD - 1));

	sp_cluster_msg_takeover(m, 4, 1796390400000ull);
	it = device(NULL, m, SP_CLUSTER_TAKEOVER_LEN);
	assert_non_null(it);
	assert_int_equal(it->kind, SP_CLUSTER_TAKEOVER);
	assert_int_equal(it->value, 1796390400000ull);
	free(it);
	assert_null(device(NULL, m, SP_CLUSTER_TAKEOVER_LEN + 1));

	m[0] = 'Q';
	assert_null(device(NULL, m, sizeof(m)));
	assert_null(sp_cluster_msg_device("sp.d.abc", NULL, m, sizeof(m)));
}

static void test_answer(void **state)
{
	uint8_t r[SP_CLUSTER_REPLY_LEN], status = 0;
	uint64_t ticket = 0;

	(void)state;
	sp_cluster_msg_reply(r, SP_STATUS_ACCEPTED);
	assert_int_equal(sp_cluster_msg_answer(PREFIX, PREFIX "77", r, sizeof(r), false, &ticket,
					       &status), 0);
	assert_int_equal(ticket, 77);
	assert_int_equal(status, SP_STATUS_ACCEPTED);
	assert_int_equal(sp_cluster_msg_answer(PREFIX, PREFIX "78", NULL, 0, true, &ticket, &status),
			 0);
	assert_int_equal(status, SP_STATUS_ERR_OFFLINE);
	/* not ours: another port, no ticket, a sign, ticket 0, a bad payload */
	assert_int_equal(sp_cluster_msg_answer(PREFIX, "sp.r.00000000000000ff.4.7", r, sizeof(r),
					       false, &ticket, &status), -EINVAL);
	assert_int_equal(sp_cluster_msg_answer(PREFIX, PREFIX, r, sizeof(r), false, &ticket,
					       &status), -EINVAL);
	assert_int_equal(sp_cluster_msg_answer(PREFIX, PREFIX "+7", r, sizeof(r), false, &ticket,
					       &status), -EINVAL);
	assert_int_equal(sp_cluster_msg_answer(PREFIX, PREFIX "0", r, sizeof(r), false, &ticket,
					       &status), -EINVAL);
	assert_int_equal(sp_cluster_msg_answer(PREFIX, PREFIX "7", r, 1, false, &ticket, &status),
			 -EINVAL);
}

static int js(const char *subj, const char *json, bool no_responders,
	      struct sp_cluster_js_answer *a, uint8_t *body, size_t cap, size_t *n)
{
	return sp_cluster_msg_js_answer(PREFIX, subj, (const uint8_t *)json, json ? strlen(json) : 0,
					no_responders, a, body, cap, n);
}

static void test_js_puback(void **state)
{
	struct sp_cluster_js_answer a;
	uint8_t body[16];
	size_t n;

	(void)state;
	assert_int_equal(js(PREFIX "j12", "{\"stream\":\"SP_MBOX_3\",\"seq\":4021}", false, &a,
			    body, sizeof(body), &n), 0);
	assert_int_equal(a.kind, SP_CLUSTER_JS_PUBACK);
	assert_true(a.ok);
	assert_false(a.duplicate);
	assert_int_equal(a.ticket, 12);
	assert_int_equal(a.seq, 4021);
	assert_int_equal(n, 0);

	assert_int_equal(js(PREFIX "j13",
			    "{\"stream\":\"SP_MBOX_3\",\"seq\":4021,\"duplicate\":true}", false, &a,
			    body, sizeof(body), &n), 0);
	assert_true(a.ok && a.duplicate);

	/* the per-subject quota with discard-new, as nats-server words it */
	assert_int_equal(js(PREFIX "j14",
			    "{\"error\":{\"code\":503,\"err_code\":10077,\"description\":"
			    "\"maximum messages per subject exceeded\"}}", false, &a, body,
			    sizeof(body), &n), 0);
	assert_false(a.ok);
	assert_int_equal(a.err_code, SP_CLUSTER_JS_ERR_SUBJECT_FULL);
	assert_int_equal(a.ticket, 14);

	assert_int_equal(js(PREFIX "j15", NULL, true, &a, body, sizeof(body), &n), 0);
	assert_true(a.no_responders);
	assert_false(a.ok);

	/* a PubAck without a seq, seq 0, a negative one, duplicated keys, not JSON */
	assert_int_equal(js(PREFIX "j16", "{\"stream\":\"S\"}", false, &a, body, sizeof(body), &n),
			 -EINVAL);
	assert_int_equal(js(PREFIX "j16", "{\"seq\":0}", false, &a, body, sizeof(body), &n),
			 -EINVAL);
	assert_int_equal(js(PREFIX "j16", "{\"seq\":-3}", false, &a, body, sizeof(body), &n),
			 -EINVAL);
	assert_int_equal(js(PREFIX "j16", "{\"seq\":1,\"seq\":2}", false, &a, body, sizeof(body),
			    &n), -EINVAL);
	assert_int_equal(js(PREFIX "j16", "[1]", false, &a, body, sizeof(body), &n), -EINVAL);
	assert_int_equal(js(PREFIX "j16", "{\"seq\":", false, &a, body, sizeof(body), &n),
			 -EINVAL);
}

static void test_js_get_and_delete(void **state)
{
	struct sp_cluster_js_answer a;
	uint8_t body[16];
	size_t n = 0;

	(void)state;
	/* conn = gen 1 << 32 | slot 2 */
	assert_int_equal(js(PREFIX "g4294967298-7",
			    "{\"type\":\"io.nats.jetstream.api.v1.stream_msg_get_response\","
			    "\"message\":{\"subject\":\"sp.m.3.ab\",\"seq\":42,"
			    "\"data\":\"c2VhbGVkLWJvZHk=\",\"time\":\"2026-12-04T13:20:00.123456789Z\"}}",
			    false, &a, body, sizeof(body), &n), 0);
	assert_int_equal(a.kind, SP_CLUSTER_JS_GET);
	assert_true(a.ok);
	assert_int_equal(a.conn, 4294967298ull);
	assert_int_equal(a.ticket, 7);
	assert_int_equal(a.seq, 42);
	assert_int_equal(a.time_ms, 1796390400123ull);
	assert_int_equal(n, 11);
	assert_memory_equal(body, "sealed-body", 11);

	/* no data: an empty body; no time: 0 */
	assert_int_equal(js(PREFIX "g1-1", "{\"message\":{\"seq\":3}}", false, &a, body,
			    sizeof(body), &n), 0);
	assert_true(a.ok);
	assert_int_equal(n, 0);
	assert_int_equal(a.time_ms, 0);

	/* past the end of the stream for this subject */
	assert_int_equal(js(PREFIX "g1-2",
			    "{\"error\":{\"code\":404,\"err_code\":10037,\"description\":"
			    "\"no message found\"}}", false, &a, body, sizeof(body), &n), 0);
	assert_false(a.ok);
	assert_int_equal(a.err_code, SP_CLUSTER_JS_ERR_NO_MESSAGE);
	assert_int_equal(n, 0);

	/* a body larger than the buffer, bad base64, no seq: not ours */
	assert_int_equal(js(PREFIX "g1-3", "{\"message\":{\"seq\":3,\"data\":\"c2VhbGVkLWJvZHk=\"}}",
			    false, &a, body, 8, &n), -EINVAL);
	assert_int_equal(n, 0);
	assert_int_equal(js(PREFIX "g1-3", "{\"message\":{\"seq\":3,\"data\":\"!!!\"}}", false, &a,
			    body, sizeof(body), &n), -EINVAL);
	assert_int_equal(js(PREFIX "g1-3", "{\"message\":{\"data\":\"\"}}", false, &a, body,
			    sizeof(body), &n), -EINVAL);

	assert_int_equal(js(PREFIX "x4294967298-42", "{\"success\":true}", false, &a, body,
			    sizeof(body), &n), 0);
	assert_int_equal(a.kind, SP_CLUSTER_JS_DELETE);
	assert_true(a.ok);
	assert_int_equal(a.conn, 4294967298ull);
	assert_int_equal(a.seq, 42);
	assert_int_equal(js(PREFIX "x1-42", "{\"success\":false}", false, &a, body, sizeof(body),
			    &n), 0);
	assert_false(a.ok);

	/* STREAM.PURGE of one mailbox: wait 7, its purge 2 */
	assert_int_equal(js(PREFIX "p7-2",
			    "{\"type\":\"io.nats.jetstream.api.v1.stream_purge_response\","
			    "\"success\":true,\"purged\":3}", false, &a, body, sizeof(body), &n), 0);
	assert_int_equal(a.kind, SP_CLUSTER_JS_PURGE);
	assert_true(a.ok);
	assert_int_equal(a.conn, 7);
	assert_int_equal(a.ticket, 2);
	assert_int_equal(a.seq, 3);
	assert_int_equal(n, 0);
	/* nothing to purge: "purged" left out */
	assert_int_equal(js(PREFIX "p7-1", "{\"success\":true}", false, &a, body, sizeof(body), &n),
			 0);
	assert_true(a.ok);
	assert_int_equal(a.seq, 0);
	assert_int_equal(js(PREFIX "p7-1",
			    "{\"error\":{\"code\":503,\"err_code\":10008,\"description\":\"x\"}}",
			    false, &a, body, sizeof(body), &n), 0);
	assert_false(a.ok);
	assert_int_equal(a.err_code, 10008);
	assert_int_equal(js(PREFIX "p7-1", "{\"success\":true,\"purged\":-1}", false, &a, body,
			    sizeof(body), &n), -EINVAL);
	assert_int_equal(js(PREFIX "p7-1", "", true, &a, body, sizeof(body), &n), 0);
	assert_true(a.no_responders);
	assert_false(a.ok);
}

static void test_js_subjects_refused(void **state)
{
	static const char *bad[] = {
		PREFIX "j", PREFIX "j0", PREFIX "j+1", PREFIX "j1-2", PREFIX "g5", PREFIX "g5-0",
		PREFIX "g-5", PREFIX "g5-", PREFIX "x1-0", PREFIX "x1-2-3", PREFIX "q1", PREFIX "p7",
		PREFIX "p7-0", PREFIX "p-1",
		PREFIX "", "sp.r.00000000000000ff.4.j1", "sp.d.j1",
		PREFIX "j99999999999999999999999",
	};
	struct sp_cluster_js_answer a;
	uint8_t body[4];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(js(bad[i], "{\"seq\":1,\"success\":true}", false, &a, body,
				    sizeof(body), &n), -EINVAL);
}

static void test_js_time(void **state)
{
	(void)state;
	/* ms from calendar.timegm (Python), fractions truncated to ms */
	assert_int_equal(sp_cluster_msg_js_time("2026-12-04T13:20:00Z"), 1796390400000ull);
	assert_int_equal(sp_cluster_msg_js_time("2026-12-04T13:20:00.1Z"), 1796390400100ull);
	assert_int_equal(sp_cluster_msg_js_time("2026-12-04T13:20:00.123456789Z"),
			 1796390400123ull);
	assert_int_equal(sp_cluster_msg_js_time("2024-02-29T23:59:59.999Z"), 1709251199999ull);
	assert_int_equal(sp_cluster_msg_js_time("2000-03-01T00:00:00Z"), 951868800000ull);
	assert_int_equal(sp_cluster_msg_js_time("2100-02-28T12:00:00Z"), 4107499200000ull);
	/* anything looser is not one of nats-server's */
	static const char *bad[] = {
		"2023-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
		"2026-12-04T24:00:00Z", "2026-12-04T13:60:00Z", "2026-12-04T13:20:60Z",
		"2026-+2-04T13:20:00Z", "2026-12- 4T13:20:00Z", "2026-12-04 13:20:00Z",
		"2026-12-04T13:20:00", "2026-12-04T13:20:00+01:00", "2026-12-04T13:20:00.Z",
		"2026-12-04T13:20:00ZZ", "1969-12-31T23:59:59Z", "2026-13-01T00:00:00Z",
		"2026-00-01T00:00:00Z", "2026-01-00T00:00:00Z", "", "2026",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sp_cluster_msg_js_time(bad[i]), 0);
	assert_int_equal(sp_cluster_msg_js_time(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_subject),
		cmocka_unit_test(test_device_messages_round_trip),
		cmocka_unit_test(test_answer),
		cmocka_unit_test(test_js_puback),
		cmocka_unit_test(test_js_get_and_delete),
		cmocka_unit_test(test_js_subjects_refused),
		cmocka_unit_test(test_js_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
