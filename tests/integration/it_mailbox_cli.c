/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_mailbox_cli.c: the `sealpost` CLI with durable mailboxes, against a
 * real sealpostd.
 *
 * send to an offline device exits 0 (accepted); `recv --count N` prints and
 * acknowledges exactly N, the (N+1)th stays in the mailbox for the next
 * recv; --verbose reports the drained marker on stderr and nothing extra on
 * stdout; send --online-only: 16 (err_offline) when the recipient is not
 * connected, 0 when it is, and never delivered later; docs/examples/inbox.c
 * (manual acks) fetches a mailbox once.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sealpost.h"
#include "support.h"

enum { RUN_TIMEOUT_S = 30 };

static struct sp_it_broker broker;
static const char *cli;
static char dir[64], key_a[128], key_b[128], hex_a[65], hex_b[65];

/* Runs the CLI; stdout (and stderr too when merged) into out. */
static int run(bool merged, char *out, size_t cap, const char *const *args)
{
	char *argv[40];
	int n = 0;

	if (merged) {
		argv[n++] = "/bin/sh";
		argv[n++] = "-c";
		argv[n++] = "exec \"$0\" \"$@\" 2>&1";
	}
	argv[n++] = (char *)cli;
	while (*args && n < 39)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	return sp_it_run(argv, NULL, out, cap, RUN_TIMEOUT_S);
}

static int send_msg(const char *msg, bool online_only, char *out, size_t cap)
{
	const char *const plain[] = { "send", "--server", broker.addr, "--server-key",
				      broker.server_pub_hex, "--key", key_a, "--to", hex_b, msg,
				      NULL };
	const char *const oo[] = { "send", "--server", broker.addr, "--server-key",
				   broker.server_pub_hex, "--key", key_a, "--to", hex_b,
				   "--online-only", msg, NULL };

	return run(true, out, cap, online_only ? oo : plain);
}

static int setup(void **state)
{
	char out[256];

	(void)state;
	cli = getenv("SEALPOST_CLI");
	if (!cli)
		return -1;
	strcpy(dir, "/tmp/sp_it_mbcli.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(key_a, sizeof(key_a), "%s/a.key", dir);
	snprintf(key_b, sizeof(key_b), "%s/b.key", dir);
	if (run(false, out, sizeof(out), (const char *const[]){ "keygen", key_a, NULL }) != 0)
		return -1;
	memcpy(hex_a, out, 64);
	if (run(false, out, sizeof(out), (const char *const[]){ "keygen", key_b, NULL }) != 0)
		return -1;
	memcpy(hex_b, out, 64);
	return sp_it_broker_start(&broker, NULL, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	int st;

	(void)state;
	st = sp_it_broker_stop(&broker);
	sp_it_rmrf(broker.data_dir);
	sp_it_rmrf(dir);
	return st == 0 ? 0 : -1;
}

static void test_recv_acks_what_it_printed(void **state)
{
	char out[4096], want[512];

	(void)state;
	/* B is offline: each send is accepted into its mailbox, exit 0, quiet. */
	assert_int_equal(send_msg("one", false, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(send_msg("two", false, out, sizeof(out)), 0);
	assert_int_equal(send_msg("three", false, out, sizeof(out)), 0);

	/* --count 2: exactly the first two, oldest first. */
	assert_int_equal(run(false, out, sizeof(out),
			     (const char *const[]){ "recv", "--server", broker.addr, "--server-key",
						    broker.server_pub_hex, "--key", key_b,
						    "--count", "2", "--timeout", "20", NULL }), 0);
	snprintf(want, sizeof(want), "%s one\n%s two\n", hex_a, hex_a);
	assert_string_equal(out, want);
	/* The third stayed; --verbose changes nothing on stdout. */
	assert_int_equal(run(false, out, sizeof(out),
			     (const char *const[]){ "recv", "--server", broker.addr, "--server-key",
						    broker.server_pub_hex, "--key", key_b,
						    "--count", "1", "--timeout", "20", "--verbose",
						    NULL }), 0);
	snprintf(want, sizeof(want), "%s three\n", hex_a);
	assert_string_equal(out, want);
	/* All acknowledged: an empty mailbox, reported with --verbose. */
	assert_int_equal(run(true, out, sizeof(out),
			     (const char *const[]){ "recv", "--server", broker.addr, "--server-key",
						    broker.server_pub_hex, "--key", key_b,
						    "--count", "1", "--timeout", "2", "--verbose",
						    NULL }), 5);
	assert_non_null(strstr(out, "drained 0\n"));
	assert_null(strstr(out, hex_a));
	/* Without --verbose the marker is not shown. */
	assert_int_equal(send_msg("four", false, out, sizeof(out)), 0);
	assert_int_equal(run(true, out, sizeof(out),
			     (const char *const[]){ "recv", "--server", broker.addr, "--server-key",
						    broker.server_pub_hex, "--key", key_b,
						    "--timeout", "2", NULL }), 0);
	snprintf(want, sizeof(want), "listening %s\n%s four\n", hex_b, hex_a);
	assert_string_equal(out, want);
	/* recv without --count acknowledged it too. */
	assert_int_equal(run(true, out, sizeof(out),
			     (const char *const[]){ "recv", "--server", broker.addr, "--server-key",
						    broker.server_pub_hex, "--key", key_b,
						    "--count", "1", "--timeout", "1", "--verbose",
						    NULL }), 5);
	assert_non_null(strstr(out, "drained 0\n"));
}

/* A `sealpost recv` in the background; stdout on a pipe. */
static pid_t bg_recv(int *out_fd, int *err_fd)
{
	int po[2], pe[2];
	pid_t pid;

	assert_int_equal(pipe2(po, O_CLOEXEC), 0);
	assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(po[1], STDOUT_FILENO);
		dup2(pe[1], STDERR_FILENO);
		execl(cli, cli, "recv", "--server", broker.addr, "--server-key",
		      broker.server_pub_hex, "--key", key_b, "--count", "1", "--timeout", "20",
		      "--verbose", (char *)NULL);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	*out_fd = po[0];
	*err_fd = pe[0];
	return pid;
}

/* Reads fd until needle appears (bounded, 20 s); 0 or -1. */
static int read_until(int fd, char *buf, size_t cap, const char *needle)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t len = strlen(buf);
	int waited = 0;

	while (!strstr(buf, needle)) {
		ssize_t n;

		if (len + 1 >= cap || waited >= 200)
			return -1;
		if (poll(&p, 1, 100) == 0) {
			waited++;
			continue;
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
	}
	return 0;
}

static void test_online_only(void **state)
{
	char out[4096], err[4096] = "", got[1024] = "", want[256];
	int ofd, efd, st;
	pid_t pid;

	(void)state;
	/* Offline: refused with err_offline (16) and not kept. */
	assert_int_equal(send_msg("typing", true, out, sizeof(out)), 16);
	assert_string_equal(out, "err_offline\n");

	/* Online (its backlog drained): delivered, exit 0. */
	pid = bg_recv(&ofd, &efd);
	assert_int_equal(read_until(efd, err, sizeof(err), "drained 0\n"), 0);
	assert_int_equal(send_msg("typing now", true, out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s typing now\n", hex_a);
	assert_int_equal(read_until(ofd, got, sizeof(got), "\n"), 0);
	assert_string_equal(got, want);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(ofd);
	close(efd);
	/* Neither online-only envelope was stored. */
	assert_int_equal(run(true, out, sizeof(out),
			     (const char *const[]){ "recv", "--server", broker.addr, "--server-key",
						    broker.server_pub_hex, "--key", key_b,
						    "--count", "1", "--timeout", "1", "--verbose",
						    NULL }), 5);
	assert_non_null(strstr(out, "drained 0\n"));
	assert_null(strstr(out, "typing"));
}

/* docs/examples/inbox.c: manual acks, stops at Drained, syncs before closing. */
static void test_example_inbox(void **state)
{
	const char *bin_dir = getenv("SP_BIN_DIR");
	char bin[512], out[4096], want[512], seqs[2][32];
	char *argv[5];
	char *p;

	(void)state;
	assert_non_null(bin_dir);
	snprintf(bin, sizeof(bin), "%s/sealpost-example-inbox", bin_dir);
	argv[0] = bin;
	argv[1] = broker.addr;
	argv[2] = broker.server_pub_hex;
	argv[3] = key_b;
	argv[4] = NULL;
	assert_int_equal(send_msg("first", false, out, sizeof(out)), 0);
	assert_int_equal(send_msg("second", false, out, sizeof(out)), 0);
	assert_int_equal(sp_it_run(argv, NULL, out, sizeof(out), RUN_TIMEOUT_S), 0);
	/* Two lines "seq N from HEX: MESSAGE" (N increasing), then "drained 2". */
	p = out;
	for (int i = 0; i < 2; i++) {
		unsigned long long seq;
		int n = 0;

		assert_int_equal(sscanf(p, "seq %llu from %n", &seq, &n), 1);
		snprintf(seqs[i], sizeof(seqs[i]), "%llu", seq);
		p += n;
		snprintf(want, sizeof(want), "%s: %s\n", hex_a, i == 0 ? "first" : "second");
		assert_int_equal(strncmp(p, want, strlen(want)), 0);
		p += strlen(want);
	}
	assert_true(strtoull(seqs[0], NULL, 10) < strtoull(seqs[1], NULL, 10));
	assert_string_equal(p, "drained 2\n");
	/* Acknowledged: the second run finds the mailbox empty. */
	assert_int_equal(sp_it_run(argv, NULL, out, sizeof(out), RUN_TIMEOUT_S), 0);
	assert_string_equal(out, "drained 0\n");
}

static void test_help_mentions_mailbox(void **state)
{
	char out[8192];

	(void)state;
	assert_int_equal(run(false, out, sizeof(out),
			     (const char *const[]){ "send", "--help", NULL }), 0);
	assert_non_null(strstr(out, "--online-only"));
	assert_non_null(strstr(out, "mailbox"));
	assert_int_equal(run(false, out, sizeof(out),
			     (const char *const[]){ "recv", "--help", NULL }), 0);
	assert_non_null(strstr(out, "--verbose"));
	assert_non_null(strstr(out, "acknowledged"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recv_acks_what_it_printed),
		cmocka_unit_test(test_online_only),
		cmocka_unit_test(test_example_inbox),
		cmocka_unit_test(test_help_mentions_mailbox),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
