/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_loadgen.c: sealpost-loadgen as an operator uses it, against a real
 * sealpostd on loopback: the exit status says whether the run measured
 * anything (devices that did not connect or any error: 3), the JSON report
 * carries its provenance (timestamp, version, command line), broker figures
 * come from the metrics endpoint when asked, a progress line appears every
 * second on stderr, and --hdr-log writes an HdrHistogram interval log that
 * an independent decoder (tests/integration/hdrlog_decode.py: Python's
 * base64, zlib and struct, nothing of ours) reads back to the same counts.
 *
 * No timing thresholds: the runs are tiny and only their bookkeeping is
 * checked.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "sealpost.h"
#include "support.h"

enum { RUN_TIMEOUT_S = 120, OUT_CAP = 1 << 16 };

#define PYTHON "/usr/bin/python3"

static struct sp_it_broker broker;
static char loadgen[1024], decoder[1024], dir[64], json_path[128], hdr_path[128];
static char metrics_url[128];
static char *out;

static int setup(void **state)
{
	const char *bin = getenv("SP_BIN_DIR"), *src = getenv("SP_SOURCE_DIR");
	static const char *const args[] = { "--handshake-rate", "0", NULL };

	(void)state;
	if (!bin || !src)
		return -1;
	snprintf(loadgen, sizeof(loadgen), "%s/sealpost-loadgen", bin);
	snprintf(decoder, sizeof(decoder), "%s/tests/integration/hdrlog_decode.py", src);
	strcpy(dir, "/tmp/sp_it_loadgen.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(json_path, sizeof(json_path), "%s/report.json", dir);
	snprintf(hdr_path, sizeof(hdr_path), "%s/latency.hlog", dir);
	out = malloc(OUT_CAP);
	if (!out)
		return -1;
	if (sp_it_broker_start(&broker, NULL, args) != 0 || broker.metrics_port == 0)
		return -1;
	snprintf(metrics_url, sizeof(metrics_url), "http://127.0.0.1:%u/metrics",
		 broker.metrics_port);
	return 0;
}

static int teardown(void **state)
{
	int st;

	(void)state;
	st = sp_it_broker_stop(&broker);
	sp_it_rmrf(broker.data_dir);
	sp_it_rmrf(dir);
	free(out);
	return st == 0 ? 0 : -1;
}

static json_t *load_json(const char *path)
{
	json_error_t err;
	json_t *j = json_load_file(path, 0, &err);

	if (!j)
		fail_msg("JSON %s: %s (line %d)", path, err.text, err.line);
	return j;
}

static json_t *parse_json(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);

	if (!j)
		fail_msg("JSON: %s (line %d)\n%s", err.text, err.line, text);
	return j;
}

static json_int_t inum(const json_t *j, const char *key)
{
	const json_t *v = json_object_get(j, key);

	if (!v || !json_is_integer(v))
		fail_msg("%s: not an integer", key);
	return json_integer_value(v);
}

/* Runs the load generator with args; its stdout (or, with stderr_only, its
 * stderr and not its stdout) into out. Returns the exit status. */
static int run(const char *const *args, bool stderr_only)
{
	char *argv[64];
	int n = 0;

	if (stderr_only) {
		argv[n++] = "/bin/sh";
		argv[n++] = "-c";
		argv[n++] = "exec \"$0\" \"$@\" 2>&1 >/dev/null";
	}
	argv[n++] = loadgen;
	while (*args && n < 63)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	return sp_it_run(argv, NULL, out, OUT_CAP, RUN_TIMEOUT_S);
}

/* Does the broker's /metrics hold this text? (A plain GET on loopback.) */
static bool metrics_has(const char *needle)
{
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	size_t len = 0;
	ssize_t n;
	int fd = sp_it_tcp_connect(broker.metrics_port);
	bool found;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
	while (len < OUT_CAP - 1 && (n = read(fd, out + len, OUT_CAP - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	out[len] = '\0';
	found = strstr(out, needle) != NULL;
	return found;
}

static void assert_errors_zero(const json_t *j)
{
	const json_t *errs = json_object_get(j, "errors");
	const char *k;
	json_t *v;

	assert_non_null(errs);
	json_object_foreach((json_t *)errs, k, v)
		if (json_integer_value(v) != 0)
			fail_msg("error %s = %lld", k, (long long)json_integer_value(v));
}

/* A wrong broker key: every handshake fails, the run stops at connect-up
 * with status 3 and says so in the report (which is still written). */
static void test_wrong_key_exits_nonzero(void **state)
{
	/* A valid public key that is not the broker's. */
	static const char *const args[] = {
		"--server", broker.addr, "--server-key",
		"9bd5dcbcdf5a1a7e7a2b2b7d5b4c9e2e3a3b4c5d6e7f8091a2b3c4d5e6f70819",
		"--devices", "2", "--duration", "5", "--warmup", "0", "--connect-timeout", "10",
		"--quiet", "--json", "-", NULL };
	json_t *j;

	(void)state;
	assert_int_equal(run(args, false), 3);
	j = parse_json(out);
	assert_int_equal(inum(j, "connected"), 0);
	assert_int_equal(inum(j, "exit_code"), 3);
	assert_true(json_is_true(json_object_get(j, "aborted")));
	assert_true(inum(json_object_get(j, "errors"), "handshake") > 0);
	assert_true(inum(j, "errors_total") > 0);
	json_decref(j);
}

/* Nothing listening: a loopback port held by a socket that never listens,
 * so every connect is refused. */
static void test_nothing_listening_exits_nonzero(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	char addr[64];
	const char *args[] = { "--server", addr, "--server-key", broker.server_pub_hex,
			       "--devices", "2", "--duration", "5", "--warmup", "0", "--quiet",
			       "--json", "-", NULL };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	json_t *j;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(a.sin_port));
	assert_int_equal(run(args, false), 3);
	close(fd);
	j = parse_json(out);
	assert_int_equal(inum(j, "connected"), 0);
	assert_true(inum(json_object_get(j, "errors"), "connect") > 0);
	assert_int_equal(inum(j, "exit_code"), 3);
	json_decref(j);
}

/*
 * One clean run with everything on: progress lines on stderr, the report
 * to a file with its provenance, broker figures from the metrics endpoint,
 * the HDR log; then the log decoded by the Python decoder.
 */
static void test_report_progress_hdr_log(void **state)
{
	const char *args[] = { "--server", broker.addr, "--server-key", broker.server_pub_hex,
			       "--devices", "4", "--rate", "400", "--duration", "2.5",
			       "--warmup", "0.5", "--metrics", metrics_url, "--json", json_path,
			       "--hdr-log", hdr_path, NULL };
	char *dec[] = { PYTHON, decoder, hdr_path, NULL };
	json_t *j, *cl, *lat, *d;
	const char *p, *ts;
	int lines = 0;
	size_t i;

	(void)state;
	assert_int_equal(run(args, true), 0);
	/* A progress line per second: "sealpost-loadgen:    1.0 s  connected ..." */
	for (p = out; (p = strstr(p, " s  connected ")); p++) {
		const char *eol = strchr(p, '\n');

		assert_non_null(eol);
		assert_non_null(strstr(p, "/4  sent "));
		assert_true(strstr(p, " p99 ") && strstr(p, " p99 ") < eol);
		assert_true(strstr(p, " errors 0") && strstr(p, " errors 0") < eol);
		lines++;
	}
	if (lines < 2)
		fail_msg("%d progress lines in:\n%s", lines, out);

	j = load_json(json_path);
	assert_string_equal(json_string_value(json_object_get(j, "version")),
			    SEALPOST_VERSION_STRING);
	assert_string_equal(json_string_value(json_object_get(j, "version")), sealpost_version());
	ts = json_string_value(json_object_get(j, "timestamp"));
	assert_non_null(ts);
	/* 2026-12-02T13:47:30.011Z */
	assert_int_equal(strlen(ts), 24);
	assert_true(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
	cl = json_object_get(j, "command_line");
	assert_true(json_is_array(cl));
	assert_int_equal(json_array_size(cl), 1 + sizeof(args) / sizeof(args[0]) - 1);
	assert_string_equal(json_string_value(json_array_get(cl, 0)), loadgen);
	for (i = 0; args[i]; i++)
		assert_string_equal(json_string_value(json_array_get(cl, i + 1)), args[i]);
	assert_int_equal(inum(j, "exit_code"), 0);
	assert_int_equal(inum(j, "connected"), 4);
	assert_string_equal(json_string_value(json_object_get(j, "broker_figures")), "metrics");
	/* process_resident_memory_bytes, read over HTTP */
	assert_true(inum(json_object_get(j, "broker_rss_kib"), "base") > 0);
	assert_true(inum(json_object_get(j, "broker_rss_kib"), "connected") > 0);
	assert_string_equal(json_string_value(json_object_get(j, "hdr_log")), hdr_path);
	/* CPU too, where the broker exports a process CPU counter. */
	if (metrics_has("process_cpu_seconds_total ")) {
		const json_t *cpu = json_object_get(j, "broker_cpu_s");

		assert_true(json_number_value(json_object_get(cpu, "connect")) >= 0);
		assert_true(json_number_value(json_object_get(cpu, "window")) >= 0);
	} else {
		print_message("broker exports no process_cpu_seconds_total: CPU not checked\n");
	}
	assert_errors_zero(j);
	lat = json_object_get(j, "latency_us");
	assert_true(inum(lat, "count") > 0);

	/* The HDR log, read back independently: every in-window sample once. */
	assert_int_equal(sp_it_run(dec, NULL, out, OUT_CAP, RUN_TIMEOUT_S), 0);
	d = parse_json(out);
	assert_int_equal(inum(d, "total"), inum(lat, "count"));
	assert_true(inum(d, "intervals") >= 2);
	assert_int_equal(inum(d, "sig_digits"), 3);
	assert_int_equal(inum(d, "lowest"), 1);
	/* The top bucket holds the report's max (ns; the report says us). */
	assert_true((double)inum(d, "max_ns") >=
		    json_number_value(json_object_get(lat, "max")) * 1e3 - 1);
	/* StartTime: the run's t0, after the report's start. */
	assert_true(json_number_value(json_object_get(d, "start_time")) >=
		    json_number_value(json_object_get(j, "start_epoch_s")));
	json_decref(d);
	json_decref(j);
}

static void assert_png(const char *path)
{
	static const unsigned char magic[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	unsigned char buf[8];
	FILE *f = fopen(path, "rb");

	if (!f)
		fail_msg("%s: not written", path);
	assert_int_equal(fread(buf, 1, sizeof(buf), f), sizeof(buf));
	fclose(f);
	assert_memory_equal(buf, magic, sizeof(magic));
}

/* bench/plot.sh on the previous test's report and HDR log, and on a
 * comparison directory laid out as bench/compare/run.sh --keep leaves it
 * (sealpost's reports only): every chart is a PNG. */
static void test_plot(void **state)
{
	const char *src = getenv("SP_SOURCE_DIR");
	static const char *const charts[] = { "loadgen-percentiles.png", "loadgen-throughput.png",
					      "loadgen-max-over-time.png", "compare-latency.png",
					      "compare-capacity.png", "compare-memory.png" };
	char script[1200], pngs[128], cmp[128], cmd[1024], path[256];
	size_t i;

	(void)state;
	assert_non_null(src);
	snprintf(script, sizeof(script), "%s/bench/plot.sh", src);
	snprintf(pngs, sizeof(pngs), "%s/png", dir);
	snprintf(cmp, sizeof(cmp), "%s/cmp", dir);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && for r in lat max idle; do cp '%s' '%s'/sealpost-$r.json; done",
		 cmp, json_path, cmp);
	{
		char *argv[] = { "/bin/sh", "-c", cmd, NULL };

		assert_int_equal(sp_it_run(argv, NULL, out, OUT_CAP, RUN_TIMEOUT_S), 0);
	}
	{
		char *argv[] = { "/bin/bash", script, "--out", pngs, "--title", "it_loadgen",
				 "--compare", cmp, "--hdr-log", hdr_path, json_path, NULL };

		assert_int_equal(sp_it_run(argv, NULL, out, OUT_CAP, RUN_TIMEOUT_S), 0);
	}
	for (i = 0; i < sizeof(charts) / sizeof(charts[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", pngs, charts[i]);
		assert_png(path);
	}
	{
		char *argv[] = { "/bin/bash", script, "--no-such-option", NULL };

		assert_int_equal(sp_it_run(argv, NULL, out, OUT_CAP, RUN_TIMEOUT_S), 2);
	}
}

/* --quiet: no summary, no progress lines; --allow-remote does not change
 * what a loopback run does. */
static void test_quiet_and_allow_remote(void **state)
{
	const char *args[] = { "--allow-remote", "--server", broker.addr, "--server-key",
			       broker.server_pub_hex, "--devices", "2", "--rate", "100",
			       "--duration", "1", "--warmup", "0", "--quiet", "--json", json_path,
			       NULL };
	json_t *j;

	(void)state;
	assert_int_equal(run(args, true), 0);
	assert_null(strstr(out, "connected"));
	j = load_json(json_path);
	assert_true(json_is_true(json_object_get(j, "server_local")));
	assert_string_equal(json_string_value(json_object_get(j, "broker_figures")), "proc");
	assert_int_equal(inum(j, "broker_pid"), broker.pid);
	assert_errors_zero(j);
	json_decref(j);
}

/* The value of a /metrics line that starts with name (a whole series). */
static double metric_value(const char *name)
{
	const char *line;

	assert_true(metrics_has(name));
	line = strstr(out, name);
	return strtod(line + strlen(name), NULL);
}

/*
 * --cipher aesgcm: every connection negotiates AESGCM through the real
 * handshake (the broker's per-cipher handshake counter grows by the
 * devices connected), the report names the cipher, and the traffic flows
 * with no error. A cipher that is not one is refused before any connect.
 */
static void test_cipher_aesgcm(void **state)
{
	const char *args[] = { "--server", broker.addr, "--server-key", broker.server_pub_hex,
			       "--devices", "4", "--rate", "200", "--duration", "1", "--warmup", "0",
			       "--cipher", "aesgcm", "--quiet", "--json", json_path, NULL };
	const char *bad[] = { "--server", broker.addr, "--server-key", broker.server_pub_hex,
			      "--devices", "2", "--cipher", "rot13", "--quiet", NULL };
	static const char series[] = "sealpost_handshakes_cipher_total{cipher=\"aesgcm\"} ";
	double before;
	json_t *j;

	(void)state;
	assert_int_not_equal(run(bad, true), 0);
	assert_non_null(strstr(out, "--cipher"));
	if (sodium_init() < 0 || !crypto_aead_aes256gcm_is_available())
		skip();
	before = metric_value(series);
	assert_int_equal(run(args, true), 0);
	j = load_json(json_path);
	assert_non_null(strstr(json_string_value(json_object_get(j, "variant")), "AESGCM"));
	assert_int_equal(inum(j, "connected"), 4);
	assert_true(inum(j, "delivered") > 0);
	assert_errors_zero(j);
	json_decref(j);
	assert_true(metric_value(series) >= before + 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wrong_key_exits_nonzero),
		cmocka_unit_test(test_nothing_listening_exits_nonzero),
		cmocka_unit_test(test_report_progress_hdr_log),
		cmocka_unit_test(test_plot),
		cmocka_unit_test(test_quiet_and_allow_remote),
		cmocka_unit_test(test_cipher_aesgcm),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
