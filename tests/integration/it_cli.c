/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_cli.c: the `sealpost` CLI ($SEALPOST_CLI) against a real sealpostd.
 *
 * keygen/pubkey, recv in the background + send (argument and stdin), the
 * escaping of recv's output, --raw, the exit statuses (delivered, offline,
 * bad hex, wrong server key, missing key file, recv timeout), XX printing
 * the learned key, and --help on every subcommand.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sealpost.h"
#include "support.h"

static struct sp_it_broker broker;
static const char *cli;
static char dir[64];
static char key_a[128], key_b[128];
static char hex_a[65], hex_b[65];

enum { RUN_TIMEOUT_S = 30 };

/* Runs the CLI with stdout captured; returns its exit status. */
static int run(const char *stdin_data, char *out, size_t cap, const char *const *args)
{
	char *argv[32];
	int n = 0;

	argv[n++] = (char *)cli;
	while (*args && n < 31)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	return sp_it_run(argv, stdin_data, out, cap, RUN_TIMEOUT_S);
}

/* Same, with stderr captured too (merged into out). */
static int run_merged(const char *stdin_data, char *out, size_t cap, const char *const *args)
{
	char *argv[36];
	int n = 0;

	argv[n++] = "/bin/sh";
	argv[n++] = "-c";
	argv[n++] = "exec \"$0\" \"$@\" 2>&1";
	argv[n++] = (char *)cli;
	while (*args && n < 35)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	return sp_it_run(argv, stdin_data, out, cap, RUN_TIMEOUT_S);
}

static int setup(void **state)
{
	char out[256];

	(void)state;
	cli = getenv("SEALPOST_CLI");
	if (!cli)
		return -1;
	strcpy(dir, "/tmp/sp_it_cli.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(key_a, sizeof(key_a), "%s/a.key", dir);
	snprintf(key_b, sizeof(key_b), "%s/b.key", dir);
	if (run(NULL, out, sizeof(out), (const char *const[]){ "keygen", key_a, NULL }) != 0)
		return -1;
	memcpy(hex_a, out, 64);
	if (run(NULL, out, sizeof(out), (const char *const[]){ "keygen", key_b, NULL }) != 0)
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

static void test_keygen(void **state)
{
	char path[128], out[256], again[256];
	uint8_t pub[32], file_pub[32];
	struct sealpost_key *k;
	struct stat st;

	(void)state;
	snprintf(path, sizeof(path), "%s/new.key", dir);
	assert_int_equal(run(NULL, out, sizeof(out), (const char *const[]){ "keygen", path, NULL }),
			 0);
	assert_int_equal(strlen(out), 65);
	assert_int_equal(out[64], '\n');
	out[64] = '\0';
	assert_int_equal(strspn(out, "0123456789abcdef"), 64);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* The printed key is the file's public key. */
	assert_int_equal(sealpost_key_from_hex(pub, out), 0);
	assert_int_equal(sealpost_key_load(&k, path), 0);
	sealpost_key_public(k, file_pub);
	sealpost_key_free(k);
	assert_memory_equal(pub, file_pub, 32);
	assert_int_equal(run(NULL, again, sizeof(again), (const char *const[]){ "pubkey", path, NULL }),
			 0);
	assert_memory_equal(again, out, 64);
	/* Never overwrites a key: exit 2. */
	assert_int_equal(run(NULL, again, sizeof(again), (const char *const[]){ "keygen", path, NULL }),
			 2);
	assert_int_equal(run(NULL, again, sizeof(again), (const char *const[]){ "keygen", NULL }), 1);
	snprintf(path, sizeof(path), "%s/none.key", dir);
	assert_int_equal(run(NULL, again, sizeof(again), (const char *const[]){ "pubkey", path, NULL }),
			 2);
}

static void test_help(void **state)
{
	static const char *const cmds[] = { "keygen", "pubkey", "send", "recv" };
	char out[16384], want[64]; /* the longest help (send) is over 8 KiB */
	size_t i;

	(void)state;
	assert_int_equal(run(NULL, out, sizeof(out), (const char *const[]){ "--help", NULL }), 0);
	assert_non_null(strstr(out, "usage: sealpost COMMAND"));
	assert_non_null(strstr(out, "exit status"));
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		assert_int_equal(run(NULL, out, sizeof(out),
				     (const char *const[]){ cmds[i], "--help", NULL }), 0);
		snprintf(want, sizeof(want), "usage: sealpost %s", cmds[i]);
		assert_non_null(strstr(out, want));
		assert_non_null(strstr(out, "16 err_offline"));
	}
	assert_non_null(strstr(out, "--count N"));
	assert_int_equal(run(NULL, out, sizeof(out), (const char *const[]){ "frobnicate", NULL }), 1);
	assert_int_equal(run(NULL, out, sizeof(out), (const char *const[]){ "send", "--bogus", NULL }),
			 1);
}

/* A `sealpost recv` running in the background, its stdout and stderr on pipes. */
struct bg {
	pid_t pid;
	int out, err;
	char errbuf[4096];
	size_t errlen;
};

static void bg_start(struct bg *b, const char *const *args)
{
	int po[2], pe[2];
	char *argv[32];
	int n = 0;

	argv[n++] = (char *)cli;
	while (*args && n < 31)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	assert_int_equal(pipe2(po, O_CLOEXEC), 0);
	assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
	fflush(NULL);
	b->pid = fork();
	assert_true(b->pid >= 0);
	if (b->pid == 0) {
		dup2(po[1], STDOUT_FILENO);
		dup2(pe[1], STDERR_FILENO);
		execv(cli, argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	b->out = po[0];
	b->err = pe[0];
	b->errlen = 0;
	b->errbuf[0] = '\0';
}

/* Reads fd until needle appears in buf (bounded by 30 s); 0 or -1. */
static int read_until(int fd, char *buf, size_t cap, size_t *len, const char *needle)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int waited = 0;

	while (!strstr(buf, needle)) {
		ssize_t n;

		if (*len + 1 >= cap || waited >= 300)
			return -1;
		if (poll(&p, 1, 100) == 0) {
			waited++;
			continue;
		}
		n = read(fd, buf + *len, cap - 1 - *len);
		if (n <= 0)
			return -1;
		*len += (size_t)n;
		buf[*len] = '\0';
	}
	return 0;
}

/* Waits for the background recv to connect (it says "listening KEY"). */
static void bg_wait_listening(struct bg *b)
{
	assert_int_equal(read_until(b->err, b->errbuf, sizeof(b->errbuf), &b->errlen, "listening "),
			 0);
}

/* Collects all of its stdout and its exit status. */
static int bg_finish(struct bg *b, char *out, size_t cap)
{
	size_t len = 0;
	int st, waited = 0;

	out[0] = '\0';
	for (;;) {
		ssize_t n;

		if (len + 1 >= cap)
			break;
		n = read(b->out, out + len, cap - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		out[len] = '\0';
	}
	/* Stdout closed: the process is exiting. Reap it, bounded. */
	while (waitpid(b->pid, &st, WNOHANG) == 0) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };

		if (++waited > 300) {
			kill(b->pid, SIGKILL);
			waitpid(b->pid, &st, 0);
			return -1;
		}
		nanosleep(&ts, NULL);
	}
	/* Whatever else it said on stderr. */
	for (;;) {
		ssize_t n;

		if (b->errlen + 1 >= sizeof(b->errbuf))
			break;
		n = read(b->err, b->errbuf + b->errlen, sizeof(b->errbuf) - 1 - b->errlen);
		if (n <= 0)
			break;
		b->errlen += (size_t)n;
		b->errbuf[b->errlen] = '\0';
	}
	close(b->out);
	close(b->err);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_send_recv(void **state)
{
	struct bg b;
	char out[4096], line[512], sout[256];

	(void)state;
	bg_start(&b, (const char *const[]){ "recv", "--server", broker.addr, "--server-key",
					    broker.server_pub_hex, "--key", key_b, "--count", "3",
					    "--timeout", "60", NULL });
	bg_wait_listening(&b);
	assert_non_null(strstr(b.errbuf, hex_b));

	/* 1: message as an argument. */
	assert_int_equal(run(NULL, sout, sizeof(sout),
			     (const char *const[]){ "send", "--server", broker.addr, "--server-key",
						    broker.server_pub_hex, "--key", key_a, "--to",
						    hex_b, "hello world", NULL }), 0);
	/* 2: message from stdin, with bytes that need escaping. */
	assert_int_equal(run("line1\nline2\t\x01\\end\n", sout, sizeof(sout),
			     (const char *const[]){ "send", "--server", broker.addr, "--server-key",
						    broker.server_pub_hex, "--key", key_a, "--to",
						    hex_b, NULL }), 0);
	/* 3: XX: no --server-key; the learned key goes to stderr. */
	assert_int_equal(run_merged(NULL, sout, sizeof(sout),
				    (const char *const[]){ "send", "--server", broker.addr, "--key",
							   key_a, "--to", hex_b, "via xx", NULL }),
			 0);
	snprintf(line, sizeof(line), "server-key %s\n", broker.server_pub_hex);
	assert_string_equal(sout, line);

	assert_int_equal(bg_finish(&b, out, sizeof(out)), 0);
	snprintf(line, sizeof(line),
		 "%s hello world\n"
		 "%s line1\\nline2\\t\\x01\\\\end\\n\n"
		 "%s via xx\n", hex_a, hex_a, hex_a);
	assert_string_equal(out, line);
}

static void test_recv_xx_raw(void **state)
{
	struct bg b;
	char out[4096], want[128], sout[256];

	(void)state;
	bg_start(&b, (const char *const[]){ "recv", "--server", broker.addr, "--key", key_b,
					    "--count", "1", "--raw", "--timeout", "60", NULL });
	bg_wait_listening(&b);
	snprintf(want, sizeof(want), "server-key %s\n", broker.server_pub_hex);
	assert_non_null(strstr(b.errbuf, want));
	assert_int_equal(run("raw\nbytes\x7f", sout, sizeof(sout),
			     (const char *const[]){ "send", "--server", broker.addr, "--server-key",
						    broker.server_pub_hex, "--key", key_a, "--to",
						    hex_b, NULL }), 0);
	assert_int_equal(bg_finish(&b, out, sizeof(out)), 0);
	assert_string_equal(out, "raw\nbytes\x7f");
	snprintf(want, sizeof(want), "from %s\n", hex_a);
	assert_non_null(strstr(b.errbuf, want));
}

static void test_exit_codes(void **state)
{
	char out[1024], absent_hex[65], wrong_hex[65];
	uint8_t absent[32];
	struct sealpost_key *k;

	(void)state;
	assert_int_equal(sealpost_key_generate(&k), 0);
	sealpost_key_public(k, absent);
	sealpost_key_free(k);
	sealpost_key_to_hex(absent, absent_hex);
	/* A valid key that is not the broker's. */
	memcpy(wrong_hex, absent_hex, sizeof(wrong_hex));

	/* Offline recipient of an online-only send: status name on stderr, exit 16. */
	assert_int_equal(run_merged(NULL, out, sizeof(out),
				    (const char *const[]){ "send", "--server", broker.addr,
							   "--server-key", broker.server_pub_hex,
							   "--key", key_a, "--to", absent_hex,
							   "--online-only", "hi", NULL }), 16);
	assert_string_equal(out, "err_offline\n");
	/* Bad hex: --to and --server-key; exit 1. */
	assert_int_equal(run_merged(NULL, out, sizeof(out),
				    (const char *const[]){ "send", "--server", broker.addr,
							   "--server-key", broker.server_pub_hex,
							   "--key", key_a, "--to", "abcd", "hi", NULL }),
			 1);
	assert_non_null(strstr(out, "--to"));
	assert_int_equal(run_merged(NULL, out, sizeof(out),
				    (const char *const[]){ "send", "--server", broker.addr,
							   "--server-key", "xyz", "--key", key_a,
							   "--to", hex_b, "hi", NULL }), 1);
	/* Wrong server key: the handshake fails, exit 3. */
	assert_int_equal(run_merged(NULL, out, sizeof(out),
				    (const char *const[]){ "send", "--server", broker.addr,
							   "--server-key", wrong_hex, "--key", key_a,
							   "--to", hex_b, "hi", NULL }), 3);
	/* Missing key file: exit 2. */
	assert_int_equal(run_merged(NULL, out, sizeof(out),
				    (const char *const[]){ "send", "--server", broker.addr,
							   "--server-key", broker.server_pub_hex,
							   "--key", "/nonexistent/k", "--to", hex_b, "hi",
							   NULL }), 2);
	/* Missing --to, bad address: exit 1. */
	assert_int_equal(run_merged(NULL, out, sizeof(out),
				    (const char *const[]){ "send", "--server", broker.addr,
							   "--key", key_a, "hi", NULL }), 1);
	assert_int_equal(run_merged(NULL, out, sizeof(out),
				    (const char *const[]){ "send", "--server", "nonsense", "--key",
							   key_a, "--to", hex_b, "hi", NULL }), 1);
	/* recv: fewer than --count messages before --timeout: exit 5. */
	assert_int_equal(run_merged(NULL, out, sizeof(out),
				    (const char *const[]){ "recv", "--server", broker.addr,
							   "--server-key", broker.server_pub_hex,
							   "--key", key_b, "--count", "1", "--timeout",
							   "1", NULL }), 5);
}

/* docs/examples/echo.c, built against the installed-style API only, runs. */
static void test_example_echo(void **state)
{
	const char *bin_dir = getenv("SP_BIN_DIR");
	char bin[512], out[1024], want[128];
	char *argv[5];

	(void)state;
	assert_non_null(bin_dir);
	snprintf(bin, sizeof(bin), "%s/sealpost-example-echo", bin_dir);
	argv[0] = bin;
	argv[1] = broker.addr;
	argv[2] = broker.server_pub_hex;
	argv[3] = "hello from the example";
	argv[4] = NULL;
	assert_int_equal(sp_it_run(argv, NULL, out, sizeof(out), RUN_TIMEOUT_S), 0);
	snprintf(want, sizeof(want), "server key %s\n", broker.server_pub_hex);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "echo: hello from the example\n"));
	/* XX: the key it prints is the broker's. */
	argv[2] = "-";
	assert_int_equal(sp_it_run(argv, NULL, out, sizeof(out), RUN_TIMEOUT_S), 0);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "echo: hello from the example\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keygen),
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_send_recv),
		cmocka_unit_test(test_recv_xx_raw),
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_example_echo),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
