/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_config.c: sealpostd's configuration file and log levels, against the
 * real binary: --check-config prints the effective configuration (defaults <
 * file < flags) and exits 0 without touching the data directory; bad files
 * exit 2 naming FILE:LINE; a running broker takes its options from the file
 * with flags winning (seen on the wire: ServerHello.max_envelope); the log
 * level follows --log-level, SIGUSR1 (more verbose) and SIGUSR2 (back), and
 * no line ever holds a key.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "support.h"
#include "support_raw.h"

enum { OUT_MAX = 16384, RUN_TIMEOUT_S = 30, WAIT_BOUND_MS = 10000, TIMEOUT_MS = 10000 };

static char conf_path[64];

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static const char *write_conf(const char *text)
{
	int fd;

	snprintf(conf_path, sizeof(conf_path), "/tmp/it-config-XXXXXX");
	fd = mkstemp(conf_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return conf_path;
}

/* Runs `sealpostd ARGS` through sh with stderr merged into out; returns the exit status. */
static int run_sealpostd(const char *args, char *out, size_t cap)
{
	char cmd[1024];
	char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	const char *bin = getenv("SEALPOSTD");

	assert_non_null(bin);
	snprintf(cmd, sizeof(cmd), "exec '%s' %s 2>&1", bin, args);
	return sp_it_run(argv, NULL, out, cap, RUN_TIMEOUT_S);
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

static void test_check_config_precedence(void **state)
{
	char out[OUT_MAX], args[512], dir[] = "/tmp/it-config-dir-XXXXXX";
	struct stat st;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(rmdir(dir), 0);        /* --check-config must not create it */
	write_conf("# sealpostd.conf\n"
		   "max-conns = 100\n"
		   "listen = 127.0.0.1:7555\n"
		   "log-level = debug ; inline comment\n"
		   "metrics-listen = off\n");
	snprintf(args, sizeof(args), "--check-config --config %s --max-conns 7 --data-dir %s",
		 conf_path, dir);
	assert_int_equal(run_sealpostd(args, out, sizeof(out)), 0);
	/* Flag over file, file over default, defaults for the rest. */
	assert_true(has_line(out, "max-conns = 7"));
	assert_true(has_line(out, "listen = 127.0.0.1:7555"));
	assert_true(has_line(out, "log-level = debug"));
	assert_true(has_line(out, "metrics-listen = off"));
	assert_true(has_line(out, "idle-timeout = 600"));
	assert_true(has_line(out, "handshake-timeout = 10000"));
	assert_non_null(strstr(out, conf_path));
	assert_int_equal(stat(dir, &st), -1);
	assert_int_equal(errno, ENOENT);

	/* Its output is itself a valid config file giving the same result. */
	{
		char out2[OUT_MAX], first[64];
		int fd;

		snprintf(first, sizeof(first), "%s", conf_path);
		unlink(first);
		snprintf(conf_path, sizeof(conf_path), "/tmp/it-config-XXXXXX");
		fd = mkstemp(conf_path);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, out, strlen(out)), (ssize_t)strlen(out));
		close(fd);
		snprintf(args, sizeof(args), "--check-config --config %s", conf_path);
		assert_int_equal(run_sealpostd(args, out2, sizeof(out2)), 0);
		assert_string_equal(strchr(out, '\n'), strchr(out2, '\n'));
	}
	unlink(conf_path);
}

static void expect_error(const char *text, const char *extra, int line, const char *what)
{
	char out[OUT_MAX], args[512], where[96];

	write_conf(text);
	snprintf(args, sizeof(args), "--check-config --config %s %s", conf_path, extra);
	assert_int_equal(run_sealpostd(args, out, sizeof(out)), 2);
	snprintf(where, sizeof(where), "%s:%d: ", conf_path, line);
	if (!strstr(out, where) || !strstr(out, what))
		fail_msg("expected '%s' and '%s' in: %s", where, what, out);
	unlink(conf_path);
}

static void test_errors_name_the_line(void **state)
{
	char out[OUT_MAX];

	(void)state;
	expect_error("max-conns = 5\n# fine\nmax-connz = 6\n", "", 3, "unknown key 'max-connz'");
	expect_error("listen = 127.0.0.1:7400\nidle-timeout = soon\n", "", 2, "idle-timeout");
	expect_error("\n\n\nmax-envelope = 64001\n", "", 4, "out of range");
	expect_error("max-conns = 5\nthis is not ini\n", "", 2, "expected 'key = value'");
	expect_error("log-level = info\nlog-level = debug\n", "", 2, "already set on line 1");
	/* Flags do not rescue a bad file. */
	expect_error("max-conns = 0\n", "--max-conns 5", 1, "max-conns");
	/* A missing file, and a bad flag, are errors too (exit 2). */
	assert_int_equal(run_sealpostd("--config /nonexistent/sealpostd.conf", out, sizeof(out)),
			 2);
	assert_non_null(strstr(out, "/nonexistent/sealpostd.conf"));
	assert_int_equal(run_sealpostd("--check-config --max-conns=x", out, sizeof(out)), 2);
	assert_non_null(strstr(out, "--max-conns"));
}

/* The max_envelope a running broker announces in its ServerHello. */
static uint32_t announced_max_envelope(const struct sp_it_broker *b)
{
	struct sp_raw c = { .fd = -1 };
	uint32_t v;

	assert_int_equal(sp_raw_open(&c, b->port, SP_PREAMBLE_PATTERN_IK, b->server_pub), 0);
	v = c.max_envelope;
	sp_raw_close(&c);
	return v;
}

static void test_running_broker_uses_the_file(void **state)
{
	struct sp_it_broker b;
	char path[64];
	const char *extra_file[] = { "--config", path, NULL };
	const char *extra_both[] = { "--config", path, "--max-envelope", "200", "--metrics-listen",
				     "off", NULL };

	(void)state;
	snprintf(path, sizeof(path), "%s", write_conf("max-envelope = 100\nlog-level = debug\n"));
	assert_int_equal(sp_it_broker_start(&b, NULL, extra_file), 0);
	assert_int_equal(announced_max_envelope(&b), 100);
	assert_true(b.metrics_port != 0);
	assert_true(sp_it_log_count(&b, "config=/tmp/it-config-") > 0);
	/* log-level = debug from the file: the handshake's debug line is there. */
	for (int w = 0; w < WAIT_BOUND_MS && sp_it_log_count(&b, "handshake complete") == 0;
	     w += 20)
		sleep_ms(20);
	assert_true(sp_it_log_count(&b, "handshake complete") > 0);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);

	assert_int_equal(sp_it_broker_start(&b, NULL, extra_both), 0);
	assert_int_equal(announced_max_envelope(&b), 200);
	/* metrics-listen = off: no endpoint. */
	assert_int_equal(b.metrics_port, 0);
	assert_int_equal(sp_it_log_count(&b, "metrics listening"), 0);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
	unlink(path);
}

/* Waits (bounded) until the log has at least n lines containing needle. */
static int wait_log(const struct sp_it_broker *b, const char *needle, int n)
{
	int got = 0;

	for (int w = 0; w < WAIT_BOUND_MS; w += 20) {
		got = sp_it_log_count(b, needle);
		if (got >= n)
			break;
		sleep_ms(20);
	}
	return got;
}

/* One IK device that proves itself with a Ping round trip (so the broker has
 * logged everything about its handshake), then leaves. */
static void one_device(const struct sp_it_broker *b, uint8_t pub_out[SP_KEY_LEN])
{
	struct sp_raw c = { .fd = -1 };
	struct sp_raw_frame f;
	uint8_t buf[64];
	size_t off = 0;

	assert_int_equal(sp_raw_open(&c, b->port, SP_PREAMBLE_PATTERN_IK, b->server_pub), 0);
	memcpy(pub_out, c.s_pub, SP_KEY_LEN);
	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, 5, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(&c, buf, off), 0);
	/* Drained (its empty mailbox) may come before or after the Pong. */
	do
		assert_int_equal(sp_raw_recv_frame(&c, &f, TIMEOUT_MS), 0);
	while (f.type == SP_FRAME_DRAINED);
	assert_int_equal(f.type, SP_FRAME_PONG);
	sp_raw_close(&c);
}

static void test_log_level_by_signal(void **state)
{
	struct sp_it_broker b;
	uint8_t keys[3][SP_KEY_LEN];

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, NULL), 0);        /* --log-level info */
	one_device(&b, keys[0]);
	assert_int_equal(sp_it_log_count(&b, "handshake complete"), 0);

	/* SIGUSR1: info -> debug. The broker says so (at warn, so it always shows). */
	assert_int_equal(kill(b.pid, SIGUSR1), 0);
	assert_int_equal(wait_log(&b, "signal=SIGUSR1 level=debug", 1), 1);
	one_device(&b, keys[1]);
	assert_int_equal(wait_log(&b, "handshake complete", 1), 1);
	/* Debug shows the peer address, never a key. */
	assert_true(sp_it_log_count(&b, "peer=127.0.0.1") >= 1);

	/* SIGUSR2: back to the configured level. */
	assert_int_equal(kill(b.pid, SIGUSR2), 0);
	assert_int_equal(wait_log(&b, "signal=SIGUSR2 level=info", 1), 1);
	one_device(&b, keys[2]);
	assert_int_equal(sp_it_log_count(&b, "handshake complete"), 1);

	assert_int_equal(sp_it_broker_stop(&b), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(sp_it_log_count_key(&b, keys[i]), 0);
	assert_int_equal(sp_it_log_count_key(&b, b.server_pub), 0);
	sp_it_rmrf(b.data_dir);
}

/* A connection with a bad preamble, waited on until the broker closes it. */
static void bad_preamble(const struct sp_it_broker *b)
{
	char buf[16];
	int fd = sp_it_tcp_connect(b->port);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "GARBAGE!", 8), 8);
	assert_true(read(fd, buf, sizeof(buf)) <= 0);  /* closed, nothing said */
	close(fd);
}

/* Lines with msg="bad preamble" and the sum of their suppressed=N. */
static void count_lines(const struct sp_it_broker *b, long *lines, long *suppressed)
{
	FILE *f = fopen(b->log_path, "r");
	char line[1024];

	*lines = *suppressed = 0;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		const char *p;

		if (!strstr(line, "msg=\"bad preamble\""))
			continue;
		(*lines)++;
		if ((p = strstr(line, " suppressed=")) != NULL)
			*suppressed += strtol(p + 12, NULL, 10);
	}
	fclose(f);
}

/*
 * Peer-triggered lines go through the limiter: with --log-rate 2, 40
 * bad connections in a row give a few lines, and every one that was dropped
 * is accounted for by a later line's suppressed=N. Connections continue,
 * slowly, until the tally is complete (lines + suppressed == connections,
 * which holds only once nothing is pending).
 */
static void test_peer_lines_rate_limited(void **state)
{
	const char *extra[] = { "--log-rate", "2", NULL };
	struct sp_it_broker b;
	long lines = 0, suppressed = 0, made = 0;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, extra), 0);
	for (; made < 40; made++)
		bad_preamble(&b);
	for (int w = 0; w < 3 * WAIT_BOUND_MS; w += 100) {
		count_lines(&b, &lines, &suppressed);
		if (lines + suppressed == made)
			break;
		sleep_ms(100);
		bad_preamble(&b);
		made++;
	}
	print_message("%ld bad connections: %ld lines, %ld suppressed\n", made, lines, suppressed);
	assert_int_equal(lines + suppressed, made);
	assert_true(suppressed > 0);
	assert_true(lines < made);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/* The example shipped in packaging/ stays valid and sets every option it shows. */
static void test_packaged_example(void **state)
{
	const char *src = getenv("SP_SOURCE_DIR");
	char out[OUT_MAX], args[512];

	(void)state;
	assert_non_null(src);
	snprintf(args, sizeof(args), "--check-config --config '%s/packaging/sealpostd.conf'", src);
	assert_int_equal(run_sealpostd(args, out, sizeof(out)), 0);
	assert_true(has_line(out, "data-dir = /var/lib/sealpost"));
	assert_true(has_line(out, "listen = 0.0.0.0:7400"));
	assert_true(has_line(out, "lock-timeout = 30"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_config_precedence),
		cmocka_unit_test(test_errors_name_the_line),
		cmocka_unit_test(test_running_broker_uses_the_file),
		cmocka_unit_test(test_log_level_by_signal),
		cmocka_unit_test(test_packaged_example),
		cmocka_unit_test(test_peer_lines_rate_limited),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
