/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_slab_unlocked.c: a real sealpostd under a small RLIMIT_MEMLOCK keeps
 * serving when its session-secrets slab outgrows what it may lock.
 *
 * This process drops CAP_IPC_LOCK from its bounding set and sets
 * RLIMIT_MEMLOCK to 1 MiB before it starts the broker; both carry over the
 * exec, so the broker is what a service under LimitMEMLOCK=1M is (root's
 * capabilities on exec come from the bounding set). 3,000 connections each
 * send a preamble (each then holds a handshake slot: 22 chunks of 141, 64
 * KiB locked each, more than 1 MiB): the chunks beyond the limit are used
 * unlocked, counted in sealpost_slab_lock_failures_total, and logged once;
 * every connection stays open, and a full IK device still exchanges an
 * envelope. Needs root (to drop the capability); skipped otherwise.
 */
#include <errno.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "support.h"
#include "support_raw.h"

enum { NSOCK = 3000, TIMEOUT_MS = 10000, WAIT_MS = 20000 };

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A series' value from /metrics (name and labels as rendered); -1 if absent. */
static double series(const struct sp_it_broker *b, const char *name)
{
	char *body = NULL, *p, want[160];
	double v = -1;

	snprintf(want, sizeof(want), "\n%s ", name);
	if (sp_it_http_get(b->metrics_port, "/metrics", &body) == 200 && body &&
	    (p = strstr(body, want)))
		v = strtod(p + strlen(want), NULL);
	free(body);
	return v;
}

static void test_unlocked_fallback(void **state)
{
	static int fds[NSOCK];
	/* One shard: the 1 MiB of locked memory below fits one ring (each
	 * shard's ring is charged to it too, without CAP_IPC_LOCK); the slab
	 * under test is a shard's own. */
	const char *extra[] = { "--threads", "1", "--max-conns-per-source", "5000", "--max-unauth-per-source",
				"5000", "--hello-timeout", "60000", "--handshake-timeout", "60000",
				NULL };
	struct rlimit ml = { 1 << 20, 1 << 20 }, nf = { NSOCK + 512, NSOCK + 512 };
	const uint8_t pre[8] = { 'S', 'E', 'A', 'L', 1, SP_PREAMBLE_PATTERN_XX, 0, 0 };
	struct sp_raw a = { .fd = -1 }, z = { .fd = -1 };
	struct sp_raw_frame f;
	struct sp_it_broker b;
	uint32_t status;
	double fails = -1, open = -1;

	(void)state;
#if defined(__SANITIZE_ADDRESS__)
	/* ASan's mlock is a no-op that succeeds: no chunk can fail to lock,
	 * so the fallback is not reachable in a sanitizer build (the plain
	 * suite runs it). */
	print_message("SKIP: mlock cannot fail in a sanitizer build\n");
	skip();
#endif
	if (geteuid() != 0) {
		print_message("SKIP: needs root (to drop CAP_IPC_LOCK)\n");
		skip();
	}
	assert_int_equal(prctl(PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0), 0);
	assert_int_equal(setrlimit(RLIMIT_MEMLOCK, &ml), 0);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &nf), 0);
	assert_int_equal(sp_it_broker_start(&b, NULL, extra), 0);
	assert_true(b.metrics_port != 0);
	assert_true(series(&b, "sealpost_slab_lock_failures_total") == 0);
	for (int i = 0; i < NSOCK; i++) {
		fds[i] = sp_it_tcp_connect(b.port);
		assert_true(fds[i] >= 0);
		assert_int_equal(send(fds[i], pre, sizeof(pre), MSG_NOSIGNAL), (ssize_t)sizeof(pre));
	}
	for (int w = 0; w < WAIT_MS; w += 50) {
		fails = series(&b, "sealpost_slab_lock_failures_total");
		open = series(&b, "sealpost_connections_open");
		if (fails > 0 && open >= NSOCK)
			break;
		sleep_ms(50);
	}
	print_message("%g connections open, %g slab chunks unlocked, slab %g bytes\n", open, fails,
		      series(&b, "sealpost_memory_bytes{kind=\"slab\"}"));
	assert_true(open >= NSOCK);
	assert_true(fails >= 1);
	assert_int_equal(sp_it_log_count(&b, "session secrets slab not locked in memory"), 1);
	/* Devices on unlocked slots work like any other. */
	assert_int_equal(sp_raw_open(&a, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	assert_int_equal(sp_raw_wait_frame(&a, SP_FRAME_DRAINED, &f, TIMEOUT_MS), 0);
	assert_int_equal(sp_raw_open(&z, b.port, SP_PREAMBLE_PATTERN_XX, NULL), 0);
	assert_int_equal(sp_raw_wait_frame(&z, SP_FRAME_DRAINED, &f, TIMEOUT_MS), 0);
	assert_int_equal(sp_raw_send_envelope(&a, z.s_pub, 1, (const uint8_t *)"hello", 5), 0);
	assert_int_equal(sp_raw_expect_result(&a, 1, &status, TIMEOUT_MS), 0);
	assert_int_equal(sp_raw_wait_frame(&z, SP_FRAME_DELIVER, &f, TIMEOUT_MS), 0);
	assert_int_equal(f.body_len, 5);
	assert_memory_equal(f.body, "hello", 5);
	sp_raw_close(&a);
	sp_raw_close(&z);
	for (int i = 0; i < NSOCK; i++)
		close(fds[i]);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unlocked_fallback),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
