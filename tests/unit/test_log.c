/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_log.c: logfmt formatting and escaping, levels, the rate limiter and
 * the suppressed=N count, through a real file descriptor.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sp_log.h"

/* 2026-11-28T09:00:00.123Z */
static const int64_t TS = 1795856400123LL;

static size_t fmt(char *out, size_t cap, const char *msg, const struct sp_log_kv *kv, size_t n)
{
	size_t len = sp_log_format(out, cap, TS, SP_LOG_INFO, msg, kv, n);

	out[len] = '\0';
	return len;
}

static void test_plain_line(void **state)
{
	char line[SP_LOG_LINE_MAX + 1];
	const struct sp_log_kv kv[] = {
		SP_KV_STR("reason", "eof"), SP_KV_UINT("conn", 42), SP_KV_INT("delta", -7),
	};

	(void)state;
	fmt(line, sizeof(line) - 1, "connection closed", kv, 3);
	assert_string_equal(line, "ts=2026-11-28T09:00:00.123Z level=info "
				  "msg=\"connection closed\" "
				  "reason=eof conn=42 delta=-7\n");
}

static void test_escaping(void **state)
{
	char line[SP_LOG_LINE_MAX + 1];
	const struct sp_log_kv kv[] = {
		SP_KV_STR("a", "two words"),
		SP_KV_STR("b", "say \"hi\""),
		SP_KV_STR("c", "line1\nlevel=error msg=\"forged\""),
		SP_KV_STR("d", "\x01\x1f\x7f\xff\t\r\\"),
		SP_KV_STR("e", ""),
		SP_KV_STR("f", NULL),
		SP_KV_STR("g", "k=v"),
	};

	(void)state;
	fmt(line, sizeof(line) - 1, "m\"s\ng", kv, sizeof(kv) / sizeof(kv[0]));
	assert_string_equal(line,
			    "ts=2026-11-28T09:00:00.123Z level=info msg=\"m\\\"s\\ng\" "
			    "a=\"two words\" b=\"say \\\"hi\\\"\" "
			    "c=\"line1\\nlevel=error msg=\\\"forged\\\"\" "
			    "d=\"\\x01\\x1f\\x7f\\xff\\t\\r\\\\\" e=\"\" f=\"\" g=\"k=v\"\n");
	/* Exactly one newline: a peer-chosen value cannot start a new line. */
	assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
}

static void test_truncation(void **state)
{
	char big[4000], line[SP_LOG_LINE_MAX + 1];
	const struct sp_log_kv kv[] = { SP_KV_STR("v", big) };
	size_t len;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	len = fmt(line, SP_LOG_LINE_MAX, "long", kv, 1);
	assert_true(len <= SP_LOG_LINE_MAX);
	assert_int_equal(line[len - 1], '\n');
	assert_memory_equal(line + len - 4, "...\n", 4);
}

static void test_levels(void **state)
{
	enum sp_log_level l;
	struct sp_log lg;

	(void)state;
	assert_int_equal(sp_log_level_parse("error", &l), 0);
	assert_int_equal(l, SP_LOG_ERROR);
	assert_int_equal(sp_log_level_parse("debug", &l), 0);
	assert_int_equal(l, SP_LOG_DEBUG);
	assert_int_equal(sp_log_level_parse("DEBUG", &l), -EINVAL);
	assert_string_equal(sp_log_level_name(SP_LOG_WARN), "warn");
	sp_log_init(&lg, -1, SP_LOG_INFO);
	assert_true(sp_log_enabled(&lg, SP_LOG_ERROR));
	assert_true(sp_log_enabled(&lg, SP_LOG_INFO));
	assert_false(sp_log_enabled(&lg, SP_LOG_DEBUG));
}

static void test_limiter(void **state)
{
	struct sp_log_limit l;
	uint64_t sup = 99, t = 5000000000ull;

	(void)state;
	sp_log_limit_init(&l, 2, 3); /* 2 per second, bursts of 3 */
	for (int i = 0; i < 3; i++) {
		assert_true(sp_log_limit_take(&l, t, &sup));
		assert_int_equal(sup, 0);
	}
	for (int i = 0; i < 10; i++)
		assert_false(sp_log_limit_take(&l, t, &sup));
	/* 499 ms: still less than one token. */
	assert_false(sp_log_limit_take(&l, t + 499000000, &sup));
	/* 500 ms after the start: one token, and the 11 drops are reported once. */
	assert_true(sp_log_limit_take(&l, t + 500000000, &sup));
	assert_int_equal(sup, 11);
	assert_false(sp_log_limit_take(&l, t + 500000000, &sup));
	assert_true(sp_log_limit_take(&l, t + 1000000000, &sup));
	assert_int_equal(sup, 1);
	/* A long pause refills to the burst, no more. */
	t += 3600ull * 1000000000;
	for (int i = 0; i < 3; i++)
		assert_true(sp_log_limit_take(&l, t, &sup));
	assert_false(sp_log_limit_take(&l, t, &sup));
}

/* Reads everything written to the pipe so far. */
static size_t drain(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;

	while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return len;
}

static int count(const char *s, const char *needle)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void test_write_limited(void **state)
{
	struct sp_log lg;
	struct sp_log_limit l;
	char out[16384];
	int p[2];
	uint64_t t = 1000000000ull;

	(void)state;
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	sp_log_init(&lg, p[1], SP_LOG_INFO);
	sp_log_limit_init(&l, 1, 2);
	for (int i = 0; i < 10; i++)
		SP_LOG_LIMITED(&lg, &l, t, SP_LOG_INFO, "bad preamble", SP_KV_UINT("conn", i));
	drain(p[0], out, sizeof(out));
	assert_int_equal(count(out, "msg=\"bad preamble\""), 2);
	assert_int_equal(count(out, "suppressed="), 0);

	SP_LOG_LIMITED(&lg, &l, t + 1000000000ull, SP_LOG_INFO, "bad preamble",
		       SP_KV_UINT("conn", 77));
	drain(p[0], out, sizeof(out));
	assert_non_null(strstr(out, "msg=\"bad preamble\" conn=77 suppressed=8\n"));

	/* Below the level: neither written nor counted as suppressed. */
	SP_LOG_LIMITED(&lg, &l, t + 5000000000ull, SP_LOG_DEBUG, "noise", SP_KV_UINT("x", 1));
	SP_LOG(&lg, SP_LOG_DEBUG, "noise", SP_KV_UINT("x", 1));
	SP_LOG0(&lg, SP_LOG_WARN, "plain");
	drain(p[0], out, sizeof(out));
	assert_null(strstr(out, "noise"));
	assert_non_null(strstr(out, "level=warn msg=\"plain\"\n"));
	assert_int_equal(l.suppressed, 0);
	close(p[0]);
	close(p[1]);
}

/* The level changes at run time (SIGUSR1/SIGUSR2 in sealpostd) and is clamped. */
static void test_set_level(void **state)
{
	char buf[4096];
	struct sp_log lg;
	int p[2];
	size_t n;

	(void)state;
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	sp_log_init(&lg, p[1], SP_LOG_WARN);
	assert_int_equal(sp_log_level(&lg), SP_LOG_WARN);
	SP_LOG(&lg, SP_LOG_DEBUG, "hidden", SP_KV_UINT("n", 1));
	assert_int_equal(drain(p[0], buf, sizeof(buf)), 0);
	sp_log_set_level(&lg, SP_LOG_DEBUG);
	assert_true(sp_log_enabled(&lg, SP_LOG_DEBUG));
	SP_LOG(&lg, SP_LOG_DEBUG, "shown", SP_KV_UINT("n", 2));
	n = drain(p[0], buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(count(buf, "msg=shown") + count(buf, "msg=\"shown\""), 1);
	sp_log_set_level(&lg, SP_LOG_ERROR);
	SP_LOG(&lg, SP_LOG_WARN, "hidden again", SP_KV_UINT("n", 3));
	assert_int_equal(drain(p[0], buf, sizeof(buf)), 0);
	/* Out of range: clamped, never a level that enables nothing or everything oddly. */
	sp_log_set_level(&lg, (enum sp_log_level)99);
	assert_int_equal(sp_log_level(&lg), SP_LOG_DEBUG);
	sp_log_set_level(&lg, (enum sp_log_level)-5);
	assert_int_equal(sp_log_level(&lg), SP_LOG_ERROR);
	assert_true(sp_log_enabled(&lg, SP_LOG_ERROR));
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_line),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_limiter),
		cmocka_unit_test(test_write_limited),
		cmocka_unit_test(test_set_level),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
