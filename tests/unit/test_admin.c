/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_admin.c: the admin socket's request parser and response writer
 * (obs/sp_admin.c): every command, every kind of bad input, the "ok"-first
 * answers, device ids that depend on the secret and never show the key.
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
#include <jansson.h>
#include <sodium.h>

#include "sp_admin.h"

static const char key_hex[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static int parse(const char *s, struct sp_admin_req *q, char *msg)
{
	return sp_admin_parse(s, strlen(s), q, msg, SP_ADMIN_MSG_MAX);
}

static void expect_bad(const char *s, int want, const char *needle)
{
	struct sp_admin_req q;
	char msg[SP_ADMIN_MSG_MAX] = "";

	if (parse(s, &q, msg) != want)
		fail_msg("%s: not refused with %d", s, want);
	if (needle && !strstr(msg, needle))
		fail_msg("%s: message '%s' lacks '%s'", s, msg, needle);
}

static void test_parse_commands(void **state)
{
	struct sp_admin_req q;
	char msg[SP_ADMIN_MSG_MAX], line[256];
	uint8_t key[SP_KEY_LEN];
	size_t n;

	(void)state;
	assert_int_equal(sodium_hex2bin(key, sizeof(key), key_hex, 64, NULL, &n, NULL), 0);
	assert_int_equal(parse("{\"cmd\":\"status\"}", &q, msg), 0);
	assert_int_equal(q.cmd, SP_ADMIN_STATUS);
	assert_int_equal(parse(" {\"cmd\" : \"reload\"} ", &q, msg), 0);
	assert_int_equal(q.cmd, SP_ADMIN_RELOAD);
	static const char *const keyed[] = { "mailbox", "purge", "disconnect", "hash" };
	static const enum sp_admin_cmd kc[] = { SP_ADMIN_MAILBOX, SP_ADMIN_PURGE,
						SP_ADMIN_DISCONNECT, SP_ADMIN_HASH };
	for (int i = 0; i < 4; i++) {
		snprintf(line, sizeof(line), "{\"cmd\":\"%s\",\"key\":\"%s\"}", keyed[i], key_hex);
		assert_int_equal(parse(line, &q, msg), 0);
		assert_int_equal(q.cmd, kc[i]);
		assert_memory_equal(q.key, key, SP_KEY_LEN);
	}
	/* Upper-case hex is the same key. */
	snprintf(line, sizeof(line), "{\"key\":\"%s\",\"cmd\":\"hash\"}",
		 "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF");
	assert_int_equal(parse(line, &q, msg), 0);
	assert_memory_equal(q.key, key, SP_KEY_LEN);
	assert_int_equal(parse("{\"cmd\":\"log-level\",\"level\":\"debug\"}", &q, msg), 0);
	assert_int_equal(q.cmd, SP_ADMIN_LOG_LEVEL);
	assert_int_equal(q.level, SP_LOG_DEBUG);
	assert_int_equal(parse("{\"cmd\":\"top\"}", &q, msg), 0);
	assert_int_equal(q.n, SP_ADMIN_TOP_DEFAULT);
	assert_false(q.by_count);
	assert_int_equal(parse("{\"cmd\":\"top\",\"n\":100,\"by\":\"count\"}", &q, msg), 0);
	assert_int_equal(q.n, 100);
	assert_true(q.by_count);
	assert_int_equal(parse("{\"cmd\":\"top\",\"n\":1,\"by\":\"bytes\"}", &q, msg), 0);
	assert_int_equal(q.n, 1);
	assert_false(q.by_count);
}

static void test_parse_bad(void **state)
{
	char line[256];

	(void)state;
	expect_bad("", -EINVAL, "not JSON");
	expect_bad("garbage", -EINVAL, "not JSON");
	expect_bad("{\"cmd\":\"status\"", -EINVAL, "not JSON");
	expect_bad("[\"status\"]", -EINVAL, "object");
	expect_bad("\"status\"", -EINVAL, NULL);
	expect_bad("{}", -EINVAL, "\"cmd\"");
	expect_bad("{\"cmd\":7}", -EINVAL, "\"cmd\"");
	expect_bad("{\"cmd\":\"list-keys\"}", -ENOENT, "unknown cmd");
	expect_bad("{\"cmd\":\"STATUS\"}", -ENOENT, NULL);
	expect_bad("{\"cmd\":\"status\",\"cmd\":\"top\"}", -EINVAL, NULL);     /* duplicate */
	expect_bad("{\"cmd\":\"status\",\"key\":\"00\"}", -EINVAL, "not a member");
	expect_bad("{\"cmd\":\"status\",\"verbose\":true}", -EINVAL, "not a member");
	expect_bad("{\"cmd\":\"mailbox\"}", -EINVAL, "needs \"key\"");
	expect_bad("{\"cmd\":\"purge\",\"key\":\"abc\"}", -EINVAL, "hex");
	expect_bad("{\"cmd\":\"purge\",\"key\":5}", -EINVAL, "hex");
	snprintf(line, sizeof(line), "{\"cmd\":\"purge\",\"key\":\"%.63sg\"}", key_hex);
	expect_bad(line, -EINVAL, "hex");
	snprintf(line, sizeof(line), "{\"cmd\":\"purge\",\"key\":\"%s00\"}", key_hex);
	expect_bad(line, -EINVAL, "hex");
	snprintf(line, sizeof(line), "{\"cmd\":\"purge\",\"key\":\"%.62s: \"}", key_hex);
	expect_bad(line, -EINVAL, "hex");
	expect_bad("{\"cmd\":\"log-level\"}", -EINVAL, "needs \"level\"");
	expect_bad("{\"cmd\":\"log-level\",\"level\":\"loud\"}", -EINVAL, "level");
	expect_bad("{\"cmd\":\"log-level\",\"level\":3}", -EINVAL, "level");
	expect_bad("{\"cmd\":\"top\",\"n\":0}", -EINVAL, "1..100");
	expect_bad("{\"cmd\":\"top\",\"n\":101}", -EINVAL, "1..100");
	expect_bad("{\"cmd\":\"top\",\"n\":-1}", -EINVAL, "1..100");
	expect_bad("{\"cmd\":\"top\",\"n\":1.5}", -EINVAL, "1..100");
	expect_bad("{\"cmd\":\"top\",\"n\":\"5\"}", -EINVAL, "1..100");
	expect_bad("{\"cmd\":\"top\",\"by\":\"age\"}", -EINVAL, "\"by\"");
	/* Embedded NUL: jansson refuses it inside the given length. */
	expect_bad("{\"cmd\":\"st\0atus\"}", -EINVAL, NULL);
	{
		struct sp_admin_req q;
		char msg[SP_ADMIN_MSG_MAX];
		static const char nul[] = "{\"cmd\":\"status\"}\0trailing";

		assert_int_not_equal(sp_admin_parse(nul, sizeof(nul) - 1, &q, msg, sizeof(msg)), 0);
	}
}

/* Bytes the parser has never seen: it answers, never crashes. */
static void test_parse_random(void **state)
{
	struct sp_admin_req q;
	char msg[SP_ADMIN_MSG_MAX], buf[64];

	(void)state;
	for (int i = 0; i < 20000; i++) {
		size_t len = randombytes_uniform(sizeof(buf));
		static const char alphabet[] = "{}[]\":,0123 abcdeklmnpstuvy\\-";

		for (size_t k = 0; k < len; k++)
			buf[k] = i & 1 ? (char)randombytes_uniform(256) :
					 alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
		(void)sp_admin_parse(buf, len, &q, msg, sizeof(msg));
		assert_true(strlen(msg) < sizeof(msg));
	}
}

static json_t *format(const struct sp_admin_req *q, const struct sp_admin_result *r, char *out,
		      size_t cap)
{
	struct sp_admin_info info = { .version = "9.9.9", .uptime_s = 5, .pid = 42,
				      .log_level = SP_LOG_WARN };
	int n = sp_admin_format(q, r, &info, out, cap);
	json_t *j;

	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(out));
	assert_int_equal(out[n - 1], '\n');
	assert_null(memchr(out, '\n', (size_t)n - 1));    /* one line */
	j = json_loads(out, 0, NULL);
	assert_non_null(j);
	return j;
}

static void test_format(void **state)
{
	static struct sp_admin_result r;
	struct sp_admin_req q = { .cmd = SP_ADMIN_STATUS };
	char out[32768];
	json_t *j;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.connections = 3;
	r.envelopes_accepted = 7;
	j = format(&q, &r, out, sizeof(out));
	assert_int_equal(strncmp(out, "{\"ok\":true,", 11), 0);
	assert_int_equal(json_integer_value(json_object_get(j, "connections")), 3);
	assert_int_equal(json_integer_value(json_object_get(j, "pid")), 42);
	assert_string_equal(json_string_value(json_object_get(j, "log_level")), "warn");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "totals"),
							    "envelopes_accepted")), 7);
	json_decref(j);

	/* Errors: ok first, then the code and the message (quotes escaped). */
	memset(&r, 0, sizeof(r));
	q.cmd = SP_ADMIN_PURGE;
	r.error = "bad_request";
	snprintf(r.message, sizeof(r.message), "a \"quoted\"\nline");
	j = format(&q, &r, out, sizeof(out));
	assert_int_equal(strncmp(out, "{\"ok\":false,", 12), 0);
	assert_string_equal(json_string_value(json_object_get(j, "message")), "a \"quoted\"\nline");
	assert_null(json_object_get(j, "purged"));
	json_decref(j);

	/* A mailbox: id, not key; an empty one has no oldest age. */
	memset(&r, 0, sizeof(r));
	q.cmd = SP_ADMIN_MAILBOX;
	memset(q.key, 0xab, sizeof(q.key));
	memset(r.id, 0x01, sizeof(r.id));
	j = format(&q, &r, out, sizeof(out));
	assert_string_equal(json_string_value(json_object_get(j, "id")),
			    "01010101010101010101010101010101");
	assert_true(json_is_null(json_object_get(j, "oldest_age_s")));
	assert_null(strstr(out, "abab"));
	json_decref(j);
	r.count = 2;
	r.oldest_age_ms = 1500;
	j = format(&q, &r, out, sizeof(out));
	assert_true(json_real_value(json_object_get(j, "oldest_age_s")) == 1.5);
	json_decref(j);

	/* Top: a full list fits. */
	memset(&r, 0, sizeof(r));
	q.cmd = SP_ADMIN_TOP;
	r.ntop = SP_ADMIN_TOP_MAX;
	for (size_t i = 0; i < r.ntop; i++)
		r.top[i].bytes = UINT64_MAX - i;        /* clamped, not wrapped */
	j = format(&q, &r, out, sizeof(out));
	assert_int_equal(json_array_size(json_object_get(j, "mailboxes")), SP_ADMIN_TOP_MAX);
	assert_true(json_integer_value(json_object_get(json_array_get(
		json_object_get(j, "mailboxes"), 0), "bytes")) == INT64_MAX);
	json_decref(j);

	/* Reload: every change, applied or not; and a buffer too small says so. */
	memset(&r, 0, sizeof(r));
	q.cmd = SP_ADMIN_RELOAD;
	r.nchanges = SP_ADMIN_CHANGES_MAX + 3;
	for (size_t i = 0; i < SP_ADMIN_CHANGES_MAX; i++) {
		r.changes[i].name = i % 2 ? "max-envelope" : "max-conns";
		r.changes[i].applied = i % 2;
		memset(r.changes[i].old_value, 'o', sizeof(r.changes[i].old_value) - 1);
		snprintf(r.changes[i].new_value, sizeof(r.changes[i].new_value), "%zu", i);
	}
	j = format(&q, &r, out, sizeof(out));
	assert_int_equal(json_array_size(json_object_get(j, "applied")), SP_ADMIN_CHANGES_MAX / 2);
	assert_int_equal(json_array_size(json_object_get(j, "needs_restart")),
			 SP_ADMIN_CHANGES_MAX / 2);
	assert_int_equal(json_integer_value(json_object_get(j, "more_changes")), 3);
	assert_true(json_array_size(json_object_get(j, "reloadable")) >= 1);
	json_decref(j);
	assert_int_equal(sp_admin_format(&q, &r, NULL, out, 64), -ENOSPC);
}

static void test_ids(void **state)
{
	uint8_t s1[crypto_generichash_KEYBYTES], s2[crypto_generichash_KEYBYTES];
	uint8_t k1[SP_KEY_LEN], k2[SP_KEY_LEN], a[SP_ADMIN_ID_LEN], b[SP_ADMIN_ID_LEN];

	(void)state;
	randombytes_buf(s1, sizeof(s1));
	randombytes_buf(s2, sizeof(s2));
	randombytes_buf(k1, sizeof(k1));
	memcpy(k2, k1, sizeof(k2));
	k2[31] ^= 1;
	sp_admin_id(s1, k1, a);
	sp_admin_id(s1, k1, b);
	assert_memory_equal(a, b, sizeof(a));           /* stable under one secret */
	sp_admin_id(s2, k1, b);
	assert_memory_not_equal(a, b, sizeof(a));       /* another daemon, another id */
	sp_admin_id(s1, k2, b);
	assert_memory_not_equal(a, b, sizeof(a));       /* another key, another id */
	assert_memory_not_equal(a, k1, sizeof(a));
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(sp_admin_cmd_name(SP_ADMIN_LOG_LEVEL), "log-level");
	assert_null(sp_admin_cmd_name(SP_ADMIN_NONE));
	assert_null(sp_admin_cmd_name(SP_ADMIN_CMD_COUNT));
	for (int c = SP_ADMIN_STATUS; c < SP_ADMIN_CMD_COUNT; c++)
		assert_non_null(sp_admin_cmd_name((enum sp_admin_cmd)c));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_commands),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_random),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_names),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
