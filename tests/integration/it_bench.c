/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_bench.c: every load-generator program runs once at a tiny size against a
 * real sealpostd and must exit 0 with a JSON report that parses and adds up.
 *
 * No timing thresholds: benchmarks print figures, tests check that they run
 * and that their bookkeeping is consistent (what was delivered was counted
 * once, every latency sample belongs to a delivery, nothing failed).
 * The MQTT/NATS peer programs are only built where libmosquitto-dev and
 * libnats-dev exist: they are checked through --help and their refusal of
 * non-loopback addresses, and, where the mosquitto / nats-server programs are
 * installed too, run once against a real server (plain TCP, started here on a
 * free loopback port).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "support.h"

enum { RUN_TIMEOUT_S = 120, OUT_CAP = 1 << 16 };

static struct sp_it_broker broker;
static char loadgen[1024];
static char *out;

static int setup(void **state)
{
	const char *bin = getenv("SP_BIN_DIR");
	/*
	 * --sendq-max at its maximum: the closed-loop fan-in run has five
	 * senders whose SendResults come back as soon as the broker queued the
	 * envelope, so on a busy machine (the receiver's worker descheduled)
	 * device 0's queue can pass the default 256 KiB and the broker rightly
	 * answers err_recipient_busy. That is backpressure, not bookkeeping, and
	 * these tests check bookkeeping: the queue may grow instead.
	 */
	static const char *const args[] = { "--handshake-rate", "0", "--sendq-max", "4294967296",
					    NULL };

	(void)state;
	if (!bin)
		return -1;
	snprintf(loadgen, sizeof(loadgen), "%s/sealpost-loadgen", bin);
	out = malloc(OUT_CAP);
	if (!out)
		return -1;
	return sp_it_broker_start(&broker, NULL, args) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	int st;

	(void)state;
	st = sp_it_broker_stop(&broker);
	sp_it_rmrf(broker.data_dir);
	free(out);
	return st == 0 ? 0 : -1;
}

/* Runs the load generator with the broker's address and key plus args,
 * report as JSON on stdout (--quiet --json -); returns the parsed report. */
static json_t *run_loadgen(const char *const *args, int *status)
{
	char *argv[48];
	json_error_t err;
	json_t *j;
	int n = 0;

	argv[n++] = loadgen;
	argv[n++] = "--server";
	argv[n++] = broker.addr;
	argv[n++] = "--server-key";
	argv[n++] = broker.server_pub_hex;
	argv[n++] = "--quiet";
	argv[n++] = "--json";
	argv[n++] = "-";
	while (*args && n < 47)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	*status = sp_it_run(argv, NULL, out, OUT_CAP, RUN_TIMEOUT_S);
	j = json_loads(out, 0, &err);
	if (!j)
		print_error("JSON: %s (line %d)\n%s\n", err.text, err.line, out);
	return j;
}

static uint64_t num(const json_t *j, const char *key)
{
	const json_t *v = json_object_get(j, key);

	assert_non_null(v);
	assert_true(json_is_integer(v) || json_is_real(v));
	return json_is_integer(v) ? (uint64_t)json_integer_value(v) : (uint64_t)json_real_value(v);
}

static double real(const json_t *j, const char *key)
{
	const json_t *v = json_object_get(j, key);

	assert_non_null(v);
	assert_true(json_is_number(v));
	return json_number_value(v);
}

/* No error of any kind, and the latency histogram holds exactly one sample
 * per in-window delivery, with ordered percentiles. */
static void check_clean(const json_t *j)
{
	const json_t *errs = json_object_get(j, "errors"), *lat = json_object_get(j, "latency_us");
	const char *k;
	json_t *v;

	assert_non_null(errs);
	json_object_foreach((json_t *)errs, k, v) {
		if (json_integer_value(v) != 0)
			fail_msg("error %s = %lld", k, (long long)json_integer_value(v));
	}
	assert_non_null(lat);
	assert_int_equal(num(lat, "count"), num(j, "delivered_window"));
	assert_true(real(lat, "p50") <= real(lat, "p90"));
	assert_true(real(lat, "p90") <= real(lat, "p99"));
	assert_true(real(lat, "p99") <= real(lat, "p99_9"));
	assert_true(real(lat, "p99_9") <= real(lat, "max"));
	/* The broker was found from the listening port. */
	assert_int_equal(num(j, "broker_pid"), (uint64_t)broker.pid);
}

static void test_pairs_open_loop(void **state)
{
	static const char *const args[] = { "--devices", "4", "--rate", "400", "--duration", "1",
					    "--warmup", "0.2", NULL };
	json_t *j;
	int st;

	(void)state;
	j = run_loadgen(args, &st);
	assert_int_equal(st, 0);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "pattern")), "pairs");
	assert_int_equal(num(j, "connected"), 4);
	/* Open loop at 400/s for 1 s: the schedule is fixed, so the count is too
	 * (the window boundary may land on either side of one envelope). A
	 * generator starved of CPU (a loaded machine, a sanitizer build) skips
	 * what it still owes at the window's end and counts it as unsent: sent
	 * plus unsent is the schedule, whatever the machine's speed. */
	assert_true(num(j, "sent_window") + num(json_object_get(j, "client"), "unsent") >= 399 &&
		    num(j, "sent_window") + num(json_object_get(j, "client"), "unsent") <= 401);
	/* Every envelope sent to a connected device was delivered, once. */
	assert_int_equal(num(j, "delivered"), num(j, "sent"));
	assert_int_equal(num(j, "delivered_window"), num(j, "results_ok_window"));
	assert_int_equal(num(j, "undelivered"), 0);
	assert_int_equal(num(json_object_get(j, "results"), "delivered"), num(j, "sent"));
	check_clean(j);
	json_decref(j);
}

/* Closed loop over two worker processes: histograms and counters merged. */
static void test_fanin_closed_loop_two_processes(void **state)
{
	static const char *const args[] = { "--devices", "6", "--pattern", "fanin", "--closed-loop",
					    "2", "--processes", "2", "--duration", "1", "--warmup",
					    "0", "--size", "1000", NULL };
	json_t *j;
	int st;

	(void)state;
	j = run_loadgen(args, &st);
	assert_int_equal(st, 0);
	assert_non_null(j);
	assert_int_equal(num(j, "processes"), 2);
	assert_int_equal(num(j, "connected"), 6);
	assert_true(num(j, "delivered_window") > 0);
	assert_int_equal(num(j, "delivered"), num(j, "sent"));
	check_clean(j);
	json_decref(j);
}

/* --seal: bodies sealed end to end; every one opened by its recipient. */
static void test_sealed(void **state)
{
	static const char *const args[] = { "--devices", "2", "--seal", "--rate", "100",
					    "--duration", "1", "--warmup", "0", NULL };
	json_t *j;
	int st;

	(void)state;
	j = run_loadgen(args, &st);
	assert_int_equal(st, 0);
	assert_non_null(j);
	assert_true(json_is_true(json_object_get(j, "sealed")));
	assert_true(num(j, "delivered") > 0);
	assert_int_equal(num(j, "delivered"), num(j, "sent"));
	check_clean(j);
	json_decref(j);
}

/* idle: connections only; the broker's memory is read from /proc. */
static void test_idle(void **state)
{
	static const char *const args[] = { "--devices", "40", "--pattern", "idle", "--duration",
					    "0.5", "--warmup", "0", NULL };
	json_t *j, *rss;
	int st;

	(void)state;
	j = run_loadgen(args, &st);
	assert_int_equal(st, 0);
	assert_non_null(j);
	assert_int_equal(num(j, "connected"), 40);
	assert_int_equal(num(j, "sent"), 0);
	rss = json_object_get(j, "broker_rss_kib");
	assert_non_null(rss);
	assert_true(num(rss, "base") > 0);
	assert_true(num(rss, "connected") > 0);
	check_clean(j);
	json_decref(j);
}

/*
 * drain: even devices fill their offline partners' mailboxes, then the
 * partners connect and read the backlog until Drained. Needs durable
 * mailboxes in the broker: while it answers err_offline there is no backlog,
 * and the test says so and skips.
 */
static void test_drain(void **state)
{
	static const char *const args[] = { "--devices", "4", "--pattern", "drain", "--rate", "200",
					    "--duration", "0.5", "--grace", "3", NULL };
	json_t *j, *res, *drain;
	int st;

	(void)state;
	j = run_loadgen(args, &st);
	assert_int_equal(st, 0);
	assert_non_null(j);
	res = json_object_get(j, "results");
	assert_non_null(res);
	if (!json_object_get(res, "accepted")) {
		print_message("drain: broker stores nothing yet (no 'accepted' results); skipped\n");
		json_decref(j);
		skip();
	}
	assert_int_equal(num(res, "accepted"), num(j, "sent"));
	drain = json_object_get(j, "drain");
	assert_int_equal(num(drain, "devices"), 2);
	assert_int_equal(num(j, "delivered"), num(res, "accepted"));
	assert_int_equal(num(drain, "reported"), num(j, "delivered"));
	check_clean(j);
	json_decref(j);
}

/* Loopback only: any other address is refused before anything is sent. */
static void refuses(const char *prog, const char *addr)
{
	char *argv[] = { (char *)prog, "--server", (char *)addr, "--server-key",
			 broker.server_pub_hex, "--devices", "2", "--duration", "0.1", NULL };
	char *merged[] = { "/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", argv[0], argv[1], argv[2],
			   argv[3], argv[4], argv[5], argv[6], argv[7], argv[8], NULL };

	assert_int_equal(sp_it_run(merged, NULL, out, OUT_CAP, RUN_TIMEOUT_S), 2);
	assert_non_null(strstr(out, "loopback"));
}

static void test_loopback_only(void **state)
{
	(void)state;
	refuses(loadgen, "10.1.2.3:7400");
	refuses(loadgen, "192.168.0.1:7400");
	refuses(loadgen, "[2001:db8::1]:7400");
	refuses(loadgen, "example.com:7400");
}

/* The peer programs (built where their libraries exist) and the comparison
 * script: --help works and addresses are checked the same way. */
static void test_peers_help(void **state)
{
	const char *bin = getenv("SP_BIN_DIR"), *src = getenv("SP_SOURCE_DIR");
	const char *peers[] = { "sealpost-loadgen-mqtt", "sealpost-loadgen-nats" };
	char path[1200];
	size_t i;
	int ran = 0;

	(void)state;
	assert_non_null(bin);
	assert_non_null(src);
	for (i = 0; i < 2; i++) {
		char *argv[] = { path, "--help", NULL };

		snprintf(path, sizeof(path), "%s/%s", bin, peers[i]);
		if (access(path, X_OK) != 0) {
			print_message("%s not built (libmosquitto-dev/libnats-dev missing)\n", peers[i]);
			continue;
		}
		assert_int_equal(sp_it_run(argv, NULL, out, OUT_CAP, RUN_TIMEOUT_S), 0);
		assert_non_null(strstr(out, "--server HOST:PORT"));
		refuses(path, "10.1.2.3:1883");
		ran++;
	}
	snprintf(path, sizeof(path), "%s/bench/compare/run.sh", src);
	{
		char *argv[] = { "/bin/bash", path, "--help", NULL };

		assert_int_equal(sp_it_run(argv, NULL, out, OUT_CAP, RUN_TIMEOUT_S), 0);
		assert_non_null(strstr(out, "usage"));
	}
	{
		char *argv[] = { "/bin/bash", path, "--no-such-option", NULL };

		assert_int_equal(sp_it_run(argv, NULL, out, OUT_CAP, RUN_TIMEOUT_S), 2);
	}
	{
		char *argv[] = { "/bin/bash", path, "--fsync", "sometimes", NULL };

		assert_int_equal(sp_it_run(argv, NULL, out, OUT_CAP, RUN_TIMEOUT_S), 2);
	}
	{
		char *argv[] = { "/bin/bash", path, "--only", "sealpost,redis", NULL };

		assert_int_equal(sp_it_run(argv, NULL, out, OUT_CAP, RUN_TIMEOUT_S), 2);
	}
	(void)ran;
}

/* ---- the peer load generators against real Mosquitto / NATS servers ---- */

/* A loopback port free right now (the server binds it right after). */
static uint16_t free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t port = 0;

	if (fd < 0)
		return 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* The absolute path of a program in PATH, or false. */
static bool in_path(const char *prog, char *buf, size_t cap)
{
	const char *p = getenv("PATH");

	while (p && *p) {
		const char *end = strchr(p, ':');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		snprintf(buf, cap, "%.*s/%s", (int)n, p, prog);
		if (n && access(buf, X_OK) == 0)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

/* Starts argv (output to log), waits (bounded) until port accepts. */
static pid_t start_server(char *const argv[], const char *log, uint16_t port)
{
	pid_t pid = fork();
	int i, fd;

	if (pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	for (i = 0; i < 100 && pid > 0; i++) {
		fd = sp_it_tcp_connect(port);
		if (fd >= 0) {
			close(fd);
			return pid;
		}
		usleep(100000);
	}
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	return -1;
}

static void stop_server(pid_t pid)
{
	int i;

	kill(pid, SIGTERM);
	for (i = 0; i < 100; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(100000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* One tiny pairs run of a peer load generator; checks its JSON adds up. */
static void run_peer(const char *prog, uint16_t port, const char *const *extra, bool acks)
{
	char addr[64], *argv[40];
	json_error_t err;
	json_t *j;
	int n = 0;

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	argv[n++] = (char *)prog;
	argv[n++] = "--server";
	argv[n++] = addr;
	argv[n++] = "--devices";
	argv[n++] = "4";
	argv[n++] = "--rate";
	argv[n++] = "200";
	argv[n++] = "--duration";
	argv[n++] = "1";
	argv[n++] = "--warmup";
	argv[n++] = "0.2";
	argv[n++] = "--quiet";
	argv[n++] = "--json";
	argv[n++] = "-";
	while (*extra)
		argv[n++] = (char *)*extra++;
	argv[n] = NULL;
	assert_int_equal(sp_it_run(argv, NULL, out, OUT_CAP, RUN_TIMEOUT_S), 0);
	j = json_loads(out, 0, &err);
	if (!j)
		fail_msg("JSON: %s (line %d)\n%s", err.text, err.line, out);
	assert_int_equal(num(j, "connected"), 4);
	assert_true(num(j, "sent") > 0);
	assert_int_equal(num(j, "delivered"), num(j, "sent"));
	assert_int_equal(num(j, "undelivered"), 0);
	assert_int_equal(num(json_object_get(j, "latency_us"), "count"), num(j, "delivered_window"));
	/* the window's client CPU is reported (run.sh prints it beside each figure) */
	assert_non_null(json_object_get(json_object_get(j, "client"), "cpu_s_window"));
	if (acks)
		assert_int_equal(num(json_object_get(j, "results"), "acked"), num(j, "sent"));
	json_decref(j);
}

static void test_peers_run(void **state)
{
	const char *bin = getenv("SP_BIN_DIR");
	char prog[1200], server[1200], dir[64], conf[128], log[128], portstr[16];
	uint16_t port;
	pid_t pid;
	FILE *f;

	(void)state;
	assert_non_null(bin);
	strcpy(dir, "/tmp/sp_it_bench.XXXXXX");
	assert_non_null(mkdtemp(dir));

	snprintf(prog, sizeof(prog), "%s/sealpost-loadgen-mqtt", bin);
	if (access(prog, X_OK) == 0 && in_path("mosquitto", server, sizeof(server))) {
		static const char *const extra[] = { "--qos", "1", NULL };
		char *argv[] = { server, "-c", conf, NULL };

		port = free_port();
		snprintf(conf, sizeof(conf), "%s/mosquitto.conf", dir);
		snprintf(log, sizeof(log), "%s/mosquitto.log", dir);
		f = fopen(conf, "w");
		assert_non_null(f);
		fprintf(f, "listener %u 127.0.0.1\nallow_anonymous true\nuser root\n"
			"set_tcp_nodelay true\n", port);
		fclose(f);
		pid = start_server(argv, log, port);
		assert_true(pid > 0);
		run_peer(prog, port, extra, true);
		stop_server(pid);
	} else {
		print_message("mqtt: mosquitto or sealpost-loadgen-mqtt missing; not run\n");
	}

	snprintf(prog, sizeof(prog), "%s/sealpost-loadgen-nats", bin);
	if (access(prog, X_OK) == 0 && in_path("nats-server", server, sizeof(server))) {
		static const char *const core[] = { "--mode", "core", NULL };
		static const char *const js[] = { "--mode", "js", NULL };
		/* The capacity runs' window: core NATS's closes on delivery (pairs
		 * kept within each of the 2 processes), JetStream's on the PubAck. */
		static const char *const core_w[] = { "--mode", "core", "--closed-loop", "4",
						      "--processes", "2", NULL };
		static const char *const js_w[] = { "--mode", "js", "--closed-loop", "4", NULL };
		char sd[96];
		char *argv[] = { server, "-a", "127.0.0.1", "-p", portstr, "-js", "-sd", sd, NULL };

		port = free_port();
		snprintf(portstr, sizeof(portstr), "%u", port);
		snprintf(sd, sizeof(sd), "%s/js", dir);
		snprintf(log, sizeof(log), "%s/nats.log", dir);
		pid = start_server(argv, log, port);
		assert_true(pid > 0);
		run_peer(prog, port, core, false);
		run_peer(prog, port, js, true);
		run_peer(prog, port, core_w, false);
		run_peer(prog, port, js_w, true);
		stop_server(pid);
	} else {
		print_message("nats: nats-server or sealpost-loadgen-nats missing; not run\n");
	}
	sp_it_rmrf(dir);
}

/* The hot-path benchmark (no broker, no sockets) at a tiny size: it exits 0
 * only if its recipients decrypted every envelope it produced; the JSON parses
 * and its figures are present. Timed by --seconds (without --iterations a
 * run longer than 65,536 results used to fail verification: the broker's
 * ciphers had rekeyed and the check had not), with a rekey every 7 messages
 * so that this short run crosses rekeys in every pass whatever the speed. */
static void test_hotpath(void **state)
{
	const char *bin = getenv("SP_BIN_DIR");
	char path[1200];
	char *argv[] = { path, "--devices", "1000", "--seconds", "0.2", "--reps", "3",
			 "--test-rekey-messages", "7", "--quiet", "--json", "-", NULL };
	json_error_t err;
	json_t *j;

	(void)state;
	assert_non_null(bin);
	snprintf(path, sizeof(path), "%s/sealpost-bench-hotpath", bin);
	assert_int_equal(sp_it_run(argv, NULL, out, OUT_CAP, RUN_TIMEOUT_S), 0);
	j = json_loads(out, 0, &err);
	if (!j)
		fail_msg("JSON: %s (line %d)\n%s", err.text, err.line, out);
	assert_true(json_is_true(json_object_get(j, "verified")));
	assert_int_equal(num(j, "devices"), 1000);
	assert_true(num(j, "verified_envelopes") > 0);
	assert_true(num(json_object_get(j, "hotpath"), "count") > 0);
	assert_true(num(json_object_get(j, "bare_aead"), "count") > 0);
	assert_true(num(json_object_get(j, "handshake_ik_responder"), "count") > 0);
	assert_true(real(j, "ratio_hotpath_bare") > 0);
	assert_true(real(j, "ratio_handshake_bare") > 0);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pairs_open_loop),
		cmocka_unit_test(test_fanin_closed_loop_two_processes),
		cmocka_unit_test(test_sealed),
		cmocka_unit_test(test_idle),
		cmocka_unit_test(test_drain),
		cmocka_unit_test(test_loopback_only),
		cmocka_unit_test(test_peers_help),
		cmocka_unit_test(test_peers_run),
		cmocka_unit_test(test_hotpath),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
