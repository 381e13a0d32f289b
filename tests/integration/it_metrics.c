/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_metrics.c: the metrics endpoint of a real sealpostd.
 *
 * Scrapes /metrics before and after known traffic from raw protocol clients
 * and checks that every counter moved by exactly the traffic sent (live and
 * mailbox deliveries, refusals by reason, handshakes by pattern and outcome,
 * closes by reason, acks, bytes); checks a live scrape with promtool; and
 * /readyz: 503 while the broker waits for a data-directory lock another
 * process holds (with /healthz 200 meanwhile), 200 once it got it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "support.h"
#include "support_raw.h"

enum { WAIT_BOUND_MS = 10000, TIMEOUT_MS = 10000, MAX_ENVELOPE = 1000 };

static struct sp_it_broker broker;

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}


/* The value of one series (name with labels exactly as rendered); fails the test if absent. */
static double metric(const char *body, const char *series)
{
	size_t sl = strlen(series);

	for (const char *l = body; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (strncmp(l, series, sl) == 0 && l[sl] == ' ')
			return strtod(l + sl + 1, NULL);
	fail_msg("series %s missing", series);
	return -1;
}

static char *scrape(void)
{
	char *body;

	assert_int_equal(sp_it_http_get(broker.metrics_port, "/metrics", &body), 200);
	assert_non_null(body);
	return body;
}

/* Waits (bounded) until series reaches want: the shard counts a close or a
 * completed send when it reaps the completion, a moment after the client saw it. */
static double wait_metric(const char *series, double want)
{
	double v = -1;

	for (int waited = 0; waited < WAIT_BOUND_MS; waited += 20) {
		char *b = scrape();

		v = metric(b, series);
		free(b);
		if (v >= want)
			break;
		sleep_ms(20);
	}
	return v;
}

/*
 * Waits (bounded) until the broker has counted every device connection made
 * before this test: the support code's readiness probe (a connect and close
 * on the device port) is accepted and closed (reason eof) by the shard
 * whenever it gets to it, which under load can be after the test took its
 * "before" figures; it then showed up in the test's deltas. Once accepted
 * is at least one and nothing is open, the probe is in both counts.
 */
static void wait_quiet(void)
{
	double accepted = 0, open = -1;

	for (int waited = 0; waited < WAIT_BOUND_MS; waited += 20) {
		char *b = scrape();

		accepted = metric(b, "sealpost_connections_accepted_total");
		open = metric(b, "sealpost_connections_open");
		free(b);
		if (accepted >= 1 && open == 0)
			return;
		sleep_ms(20);
	}
	fail_msg("the readiness probe was not counted: accepted %g, open %g", accepted, open);
}

static int setup(void **state)
{
	char env_max[16];
	const char *extra[] = { "--max-envelope", env_max, NULL };

	(void)state;
	snprintf(env_max, sizeof(env_max), "%d", MAX_ENVELOPE);
	if (sp_it_broker_start(&broker, NULL, extra))
		return -1;
	if (broker.metrics_port == 0) {
		fprintf(stderr, "no msg=\"metrics listening\" line in %s\n", broker.log_path);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	int st;

	(void)state;
	st = sp_it_broker_stop(&broker);
	sp_it_rmrf(broker.data_dir);
	return st == 0 ? 0 : -1;
}

static void test_health(void **state)
{
	char *body;

	(void)state;
	assert_int_equal(sp_it_http_get(broker.metrics_port, "/healthz", &body), 200);
	assert_string_equal(body, "ok\n");
	free(body);
	/* The device listener accepts connections (support waited for that) a
	 * moment before the shard marks itself ready: ready within a bound. */
	for (int i = 0;; i++) {
		int code = sp_it_http_get(broker.metrics_port, "/readyz", &body);

		free(body);
		if (code == 200)
			break;
		assert_int_equal(code, 503);
		assert_true(i < 500);   /* 10 s */
		usleep(20000);
	}
	assert_int_equal(sp_it_http_get(broker.metrics_port, "/nope", &body), 404);
	free(body);
}

/* An online-only Send (flag bit 0): never stored, ERR_OFFLINE without a live recipient. */
static void send_online_only(struct sp_raw *c, const uint8_t *to, uint64_t client_id,
			     const uint8_t *body, size_t len)
{
	uint8_t buf[2048];
	size_t off = 0;

	assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, to, SP_KEY_LEN, client_id,
					 SP_SEND_ONLINE_ONLY, body, len), 0);
	assert_int_equal(sp_raw_send_plain(c, buf, off), 0);
}

static void test_counters_follow_traffic(void **state)
{
	static const char *const series[] = {
		"sealpost_connections_accepted_total",
		"sealpost_connections_open",
		"sealpost_handshakes_total{pattern=\"ik\",outcome=\"ok\"}",
		"sealpost_handshakes_total{pattern=\"xx\",outcome=\"ok\"}",
		"sealpost_handshakes_total{pattern=\"ik\",outcome=\"failed\"}",
		"sealpost_handshake_duration_seconds_count",
		"sealpost_envelopes_accepted_total",
		"sealpost_envelopes_delivered_total{path=\"live\"}",
		"sealpost_delivery_latency_seconds_count{path=\"live\"}",
		"sealpost_envelopes_delivered_total{path=\"mailbox\"}",
		"sealpost_delivery_latency_seconds_count{path=\"mailbox\"}",
		"sealpost_envelopes_refused_total{reason=\"offline\"}",
		"sealpost_envelopes_refused_total{reason=\"bad_recipient\"}",
		"sealpost_envelopes_refused_total{reason=\"too_large\"}",
		"sealpost_connections_closed_total{reason=\"eof\"}",
		"sealpost_connections_closed_total{reason=\"handshake_failed\"}",
		"sealpost_acks_total",
		"sealpost_bytes_sent_total",
		"sealpost_loop_iterations_total{shard=\"0\"}",
	};
	enum {
		N = sizeof(series) / sizeof(series[0]),
		I_EOF = 14, I_HS_FAILED = 15, I_BYTES_SENT = 17, I_LOOP = 18,
	};
	/* Expected deltas, in the order above; -1: checked separately. */
	const double want[N] = { 5, 3, 2, 2, 1, 4, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1 };
	struct sp_raw alice = { .fd = -1 }, bob = { .fd = -1 }, carol = { .fd = -1 };
	struct sp_raw mallory = { .fd = -1 }, dave = { .fd = -1 };
	struct sp_raw_frame f;
	uint8_t stranger[SP_KEY_LEN], zero[SP_KEY_LEN] = { 0 }, body[64], dave_pub[SP_KEY_LEN];
	uint8_t wrong_server[SP_KEY_LEN], big[MAX_ENVELOPE + 1], ack[64];
	uint64_t carol_in, mallory_in, dave_seq;
	double before[N], after[N];
	size_t off = 0;
	uint32_t status;
	char *b;

	(void)state;
	wait_quiet();
	b = scrape();
	for (int i = 0; i < N; i++)
		before[i] = metric(b, series[i]);
	free(b);

	assert_int_equal(sp_raw_open(&alice, broker.port, SP_PREAMBLE_PATTERN_IK,
				     broker.server_pub), 0);
	assert_int_equal(sp_raw_wait_frame(&alice, SP_FRAME_DRAINED, &f, TIMEOUT_MS), 0);
	assert_int_equal(sp_raw_open(&bob, broker.port, SP_PREAMBLE_PATTERN_IK,
				     broker.server_pub), 0);
	assert_int_equal(sp_raw_wait_frame(&bob, SP_FRAME_DRAINED, &f, TIMEOUT_MS), 0);
	assert_int_equal(sp_raw_open(&carol, broker.port, SP_PREAMBLE_PATTERN_XX, NULL), 0);
	assert_int_equal(sp_raw_wait_frame(&carol, SP_FRAME_DRAINED, &f, TIMEOUT_MS), 0);
	/* IK with the wrong server key: the broker cannot decrypt msg1 and closes. */
	randombytes_buf(wrong_server, sizeof(wrong_server));
	wrong_server[31] &= 0x7f;       /* a canonical key, or the client refuses it itself */
	assert_int_equal(sp_raw_init(&mallory), 0);
	assert_int_equal(sp_raw_connect(&mallory, broker.port), 0);
	assert_true(sp_raw_handshake(&mallory, SP_PREAMBLE_PATTERN_IK, wrong_server, NULL) < 0);
	/* dave is offline for now: his envelope waits in his mailbox. */
	assert_int_equal(sp_raw_init(&dave), 0);
	memcpy(dave_pub, dave.s_pub, SP_KEY_LEN);

	/* Three durable envelopes to bob, online: accepted and delivered live. */
	memset(body, 'x', sizeof(body));
	for (uint64_t i = 1; i <= 3; i++) {
		assert_int_equal(sp_raw_send_envelope(&alice, bob.s_pub, i, body, sizeof(body)), 0);
		assert_int_equal(sp_raw_expect_result(&alice, i, &status, TIMEOUT_MS), 0);
		assert_int_equal(status, SP_STATUS_ACCEPTED);
		assert_int_equal(sp_raw_wait_frame(&bob, SP_FRAME_DELIVER, &f, TIMEOUT_MS), 0);
	}
	/* Online-only to a stranger: offline. To the zero key: bad recipient. */
	randombytes_buf(stranger, sizeof(stranger));
	stranger[31] &= 0x7f;
	send_online_only(&carol, stranger, 9, body, sizeof(body));
	assert_int_equal(sp_raw_expect_result(&carol, 9, &status, TIMEOUT_MS), 0);
	assert_int_equal(status, SP_STATUS_ERR_OFFLINE);
	assert_int_equal(sp_raw_send_envelope(&carol, zero, 10, body, sizeof(body)), 0);
	assert_int_equal(sp_raw_expect_result(&carol, 10, &status, TIMEOUT_MS), 0);
	assert_int_equal(status, SP_STATUS_ERR_BAD_RECIPIENT);
	/* One byte above --max-envelope. */
	memset(big, 'y', sizeof(big));
	assert_int_equal(sp_raw_send_envelope(&carol, bob.s_pub, 11, big, sizeof(big)), 0);
	assert_int_equal(sp_raw_expect_result(&carol, 11, &status, TIMEOUT_MS), 0);
	assert_int_equal(status, SP_STATUS_ERR_TOO_LARGE);
	/* Durable to offline dave: accepted, stored. */
	assert_int_equal(sp_raw_send_envelope(&carol, dave_pub, 12, body, sizeof(body)), 0);
	assert_int_equal(sp_raw_expect_result(&carol, 12, &status, TIMEOUT_MS), 0);
	assert_int_equal(status, SP_STATUS_ACCEPTED);

	/* carol leaves (FIN): one eof close. */
	carol_in = carol.bytes_in;
	mallory_in = mallory.bytes_in;
	sp_raw_close(&carol);
	assert_true(wait_metric(series[I_EOF], before[I_EOF] + 1) == before[I_EOF] + 1);
	assert_true(wait_metric(series[I_HS_FAILED], before[I_HS_FAILED] + 1) ==
		    before[I_HS_FAILED] + 1);

	/* dave comes online (XX): his backlog (one mailbox delivery), then he acks it. */
	assert_int_equal(sp_raw_connect(&dave, broker.port), 0);
	assert_int_equal(sp_raw_handshake(&dave, SP_PREAMBLE_PATTERN_XX, broker.server_pub, NULL),
			 0);
	assert_int_equal(sp_raw_wait_frame(&dave, SP_FRAME_DELIVER, &f, TIMEOUT_MS), 0);
	assert_int_equal(f.body_len, sizeof(body));
	dave_seq = f.seq;
	assert_true(dave_seq > 0);
	assert_int_equal(sp_raw_wait_frame(&dave, SP_FRAME_DRAINED, &f, TIMEOUT_MS), 0);
	assert_int_equal(f.count, 1);
	assert_int_equal(sp_raw_put_simple(ack, sizeof(ack), &off, SP_FRAME_ACK, dave_seq, NULL, 0),
			 0);
	assert_int_equal(sp_raw_send_plain(&dave, ack, off), 0);
	/* A Ping round trip: the Ack before it has been processed (frames are in order). */
	off = 0;
	assert_int_equal(sp_raw_put_simple(ack, sizeof(ack), &off, SP_FRAME_PING, 77, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(&dave, ack, off), 0);
	assert_int_equal(sp_raw_wait_frame(&dave, SP_FRAME_PONG, &f, TIMEOUT_MS), 0);
	assert_int_equal(f.id, 77);

	/* Everything the broker wrote, the clients read (mallory got nothing). */
	{
		uint64_t in = alice.bytes_in + bob.bytes_in + carol_in + mallory_in + dave.bytes_in;
		double sent = before[I_BYTES_SENT] + (double)in;

		assert_true(mallory_in == 0);
		assert_true(wait_metric(series[I_BYTES_SENT], sent) == sent);
	}
	b = scrape();
	for (int i = 0; i < N; i++)
		after[i] = metric(b, series[i]);
	free(b);
	for (int i = 0; i < N; i++) {
		if (want[i] >= 0 && after[i] - before[i] != want[i])
			fail_msg("%s moved by %g, expected %g", series[i], after[i] - before[i],
				 want[i]);
	}
	/* At least one loop iteration per message the broker handled. */
	assert_true(after[I_LOOP] > before[I_LOOP]);
	sp_raw_close(&alice);
	sp_raw_close(&bob);
	sp_raw_close(&mallory);
	sp_raw_close(&dave);
	/* Three more closes (eof); nothing left open by this test. */
	assert_true(wait_metric(series[I_EOF], before[I_EOF] + 4) == before[I_EOF] + 4);
	b = scrape();
	assert_true(metric(b, series[1]) == before[1]);
	free(b);
}

/* Waits (bounded) until series is at most want. */
static double wait_metric_at_most(const char *series, double want)
{
	double v = -1;

	for (int waited = 0; waited < WAIT_BOUND_MS; waited += 20) {
		char *b = scrape();

		v = metric(b, series);
		free(b);
		if (v <= want)
			break;
		sleep_ms(20);
	}
	return v;
}

/*
 * sealpost_memory_bytes moves with what connections hold (the shard sets
 * it at each tick): established connections put their keys in the slab; a
 * half-sent 40,000-byte transport message is a partial of at least the
 * bytes sent, back to 0 when its connection closes. The budget gauge is the
 * configured --mem-budget (the default here). No key-lock failure here.
 */
static void test_memory_gauges(void **state)
{
	static const char *const partial = "sealpost_memory_bytes{kind=\"partial\"}";
	static const char *const slab = "sealpost_memory_bytes{kind=\"slab\"}";
	struct sp_raw c[3] = { { .fd = -1 }, { .fd = -1 }, { .fd = -1 } };
	struct sp_raw_frame f;
	static uint8_t half[2 + 20000];
	char *b;

	(void)state;
	wait_quiet();
	b = scrape();
	assert_int_equal((uint64_t)metric(b, "sealpost_memory_budget_bytes"), 1u << 30);
	assert_true(metric(b, "sealpost_memory_bytes{kind=\"output\"}") >= 0);
	assert_true(metric(b, "sealpost_memory_bytes{kind=\"reserve\"}") >= 0);
	assert_true(metric(b, "sealpost_slab_lock_failures_total") == 0);
	free(b);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sp_raw_open(&c[i], broker.port, SP_PREAMBLE_PATTERN_IK,
					     broker.server_pub), 0);
		assert_int_equal(sp_raw_wait_frame(&c[i], SP_FRAME_DRAINED, &f, TIMEOUT_MS), 0);
	}
	/* Three sessions' keys: at least one chunk of the slab mapped. */
	assert_true(wait_metric(slab, 4096 * 4) >= 4096 * 4);
	/* Three connection slots touched at least; the route table is sized
	 * for --max-conns at start; the heap is counted by the allocator
	 * (present always; 0 under ASan, whose malloc mallinfo2 does not see). */
	assert_true(wait_metric("sealpost_memory_bytes{kind=\"conns\"}", 3 * 64) >= 3 * 64);
	assert_true(wait_metric("sealpost_memory_bytes{kind=\"routes\"}", 1) >= 1);
	/* Their handshakes landed in receive buffers: at least a page of the
	 * pool is resident (read at the 1 s trim tick). */
	assert_true(wait_metric("sealpost_memory_bytes{kind=\"recv_pool\"}", 4096) >= 4096);
	b = scrape();
	assert_true(metric(b, "sealpost_heap_bytes{kind=\"in_use\"}") >= 0);
	assert_true(metric(b, "sealpost_heap_bytes{kind=\"free\"}") >= 0);
	free(b);
	/* A length prefix of 40,000 and half of the message. */
	half[0] = (uint8_t)(40000 >> 8);
	half[1] = (uint8_t)(40000 & 0xff);
	randombytes_buf(half + 2, sizeof(half) - 2);
	assert_int_equal(sp_raw_send_bytes(&c[0], half, sizeof(half)), 0);
	assert_true(wait_metric(partial, 20000) >= 20000);
	for (int i = 0; i < 3; i++)
		sp_raw_close(&c[i]);
	assert_true(wait_metric_at_most(partial, 0) == 0);
	wait_quiet();
}

static void test_promtool(void **state)
{
	char path[] = "/tmp/it-metrics-XXXXXX", cmd[128], out[4096];
	size_t n = 0;
	char *body;
	FILE *p;
	int fd, st;

	(void)state;
	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		print_message("SKIP: promtool not found in PATH (Debian package prometheus)\n");
		skip();
	}
	body = scrape();
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, body, strlen(body)), (ssize_t)strlen(body));
	close(fd);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (n + 1 < sizeof(out)) {
		size_t got = fread(out + n, 1, sizeof(out) - 1 - n, p);

		if (got == 0)
			break;
		n += got;
	}
	out[n] = '\0';
	st = pclose(p);
	unlink(path);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || n)
		fail_msg("promtool: %s", out);
	/* The process and RocksDB figures come from the broker itself. */
	assert_true(metric(body, "process_open_fds") > 0);
	assert_true(metric(body, "process_start_time_seconds") > 1.7e9);
	assert_true(metric(body, "process_cpu_seconds_total") > 0);
	assert_true(metric(body, "process_resident_memory_bytes") > 0);
	assert_true(metric(body, "sealpost_rocksdb_sst_bytes") >= 0);
	assert_true(strstr(body, "sealpost_build_info{version=\"") != NULL);
	assert_true(strstr(body, "\",revision=\"") != NULL);
	free(body);
}

/*
 * The Prometheus configuration in docs/OPERATIONS.md (the ```yaml block whose
 * first line is "# prometheus.yml") passes promtool check config, which also
 * checks the rule file it names, packaging/prometheus/sealpost-rules.yml
 * (the rules are that file, not a copy in the docs; ctest packaging/promtool
 * runs their unit tests).
 */
static void test_docs_promtool(void **state)
{
	const char *src = getenv("SP_SOURCE_DIR");
	char dir[] = "/tmp/it-metrics-docs-XXXXXX", cmd[2048], out[8192] = "";
	size_t n = 0;
	FILE *p;
	int st;

	(void)state;
	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		print_message("SKIP: promtool not found in PATH (Debian package prometheus)\n");
		skip();
	}
	assert_non_null(src);
	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd),
		 "set -e; cd %s; "
		 "awk '/^```yaml$/ { inb = 1; first = 1; next } "
		 "/^```$/ { if (out != \"\") close(out); inb = 0; out = \"\"; next } "
		 "inb { if (first) { first = 0; "
		 "if ($1 == \"#\" && $2 ~ /\\.yml$/) out = $2 } "
		 "if (out != \"\") print > out }' '%s/docs/OPERATIONS.md'; "
		 "test -s prometheus.yml; test ! -e sealpost-rules.yml; "
		 "cp '%s/packaging/prometheus/sealpost-rules.yml' .; "
		 "promtool check config prometheus.yml; cd /; rm -rf %s",
		 dir, src, src, dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (n + 1 < sizeof(out)) {
		size_t got = fread(out + n, 1, sizeof(out) - 1 - n, p);

		if (got == 0)
			break;
		n += got;
	}
	out[n] = '\0';
	st = pclose(p);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("promtool on docs/OPERATIONS.md: %s", out);
	assert_non_null(strstr(out, "SUCCESS"));
}

/* A series of family name in a scrape: a line "NAME{" or "NAME ". */
static int scrape_has(const char *body, const char *name)
{
	size_t nl = strlen(name);

	for (const char *l = body; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (strncmp(l, name, nl) == 0 && (l[nl] == '{' || l[nl] == ' '))
			return 1;
	return 0;
}

/*
 * Every metric name the shipped dashboard, alert rules and rule tests use
 * (a word starting sealpost_ or process_; recording-rule names have a ':'
 * and are not scraped) is one the broker serves: a renamed metric cannot
 * leave a panel or an alert silently empty.
 */
static void check_names_in(const char *body, const char *src, const char *rel, int *checked)
{
	char path[1024], word[128];
	FILE *f;
	int c, n = 0, colon = 0;

	snprintf(path, sizeof(path), "%s/%s", src, rel);
	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	do {
		c = fgetc(f);
		if (c != EOF && (c == '_' || c == ':' || (c >= 'a' && c <= 'z') ||
				 (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
			if (c == ':')
				colon = 1;
			if (n < (int)sizeof(word) - 1)
				word[n++] = (char)c;
			continue;
		}
		word[n] = '\0';
		if (!colon && (strncmp(word, "sealpost_", 9) == 0 ||
			       strncmp(word, "process_", 8) == 0)) {
			if (!scrape_has(body, word))
				fail_msg("%s uses %s, which /metrics does not serve", rel, word);
			(*checked)++;
		}
		n = 0;
		colon = 0;
	} while (c != EOF);
	fclose(f);
}

static void test_packaged_files_use_served_names(void **state)
{
	const char *src = getenv("SP_SOURCE_DIR");
	int checked = 0;
	char *body;

	char path[1024];
	json_error_t jerr;
	json_t *dash, *panels, *p;
	size_t i, exprs = 0;

	(void)state;
	assert_non_null(src);
	/* The dashboard is JSON Grafana imports: panels, each query an expr
	 * against the data source input the import asks for. */
	snprintf(path, sizeof(path), "%s/packaging/grafana/sealpost.json", src);
	dash = json_load_file(path, 0, &jerr);
	if (!dash)
		fail_msg("%s:%d: %s", path, jerr.line, jerr.text);
	panels = json_object_get(dash, "panels");
	assert_true(json_is_array(panels) && json_array_size(panels) > 10);
	json_array_foreach(panels, i, p) {
		json_t *t, *targets = json_object_get(p, "targets");
		size_t j;

		json_array_foreach(targets, j, t) {
			assert_true(json_is_string(json_object_get(t, "expr")));
			exprs++;
		}
	}
	assert_true(exprs > 20);
	assert_string_equal(json_string_value(json_object_get(
		json_array_get(json_object_get(dash, "__inputs"), 0), "name")), "DS_PROMETHEUS");
	json_decref(dash);
	body = scrape();
	check_names_in(body, src, "packaging/grafana/sealpost.json", &checked);
	check_names_in(body, src, "packaging/prometheus/sealpost-rules.yml", &checked);
	check_names_in(body, src, "packaging/prometheus/sealpost-rules.test.yml", &checked);
	/* The files do name metrics (the scan found them). */
	assert_true(checked > 50);
	free(body);
}

/* --- /readyz before the broker is ready --------------------------------------- */

/* Starts sealpostd without waiting for it (support's start waits for ready). */
static int spawn_unready(struct sp_it_broker *b, uint16_t port)
{
	const char *bin = getenv("SEALPOSTD");
	char listen[32];
	int logfd;
	pid_t pid;

	snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)port);
	logfd = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (!bin || logfd < 0)
		return -EINVAL;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		execl(bin, bin, "--listen", listen, "--data-dir", b->data_dir, "--metrics-listen",
		      "127.0.0.1:0", "--lock-timeout", "60", (char *)NULL);
		_exit(127);
	}
	close(logfd);
	if (pid < 0)
		return -errno;
	b->pid = pid;
	b->reaped = 0;
	return 0;
}

/* The port of the msg="metrics listening" line, polled (bounded). */
static uint16_t wait_metrics_port(const struct sp_it_broker *b)
{
	for (int waited = 0; waited < WAIT_BOUND_MS; waited += 20) {
		char line[1024];
		FILE *f = fopen(b->log_path, "r");
		unsigned port = 0;

		while (f && fgets(line, sizeof(line), f)) {
			const char *p = strstr(line, "msg=\"metrics listening\"");

			if (p && (p = strstr(p, " port=")) != NULL)
				port = (unsigned)strtoul(p + 6, NULL, 10);
		}
		if (f)
			fclose(f);
		if (port)
			return (uint16_t)port;
		sleep_ms(20);
	}
	return 0;
}

static void test_readyz_waits_for_the_lock(void **state)
{
	struct sp_it_broker b;
	char lock_path[320], *body;
	int lock_fd, st = -1, sock;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	uint16_t port, mport;

	(void)state;
	memset(&b, 0, sizeof(b));
	snprintf(b.data_dir, sizeof(b.data_dir), "/tmp/sp-it-XXXXXX");
	assert_non_null(mkdtemp(b.data_dir));
	snprintf(b.log_path, sizeof(b.log_path), "%s/sealpostd.log", b.data_dir);
	/* This process holds the data directory's lock, as a broker still
	 * draining would. */
	snprintf(lock_path, sizeof(lock_path), "%s/sealpostd.lock", b.data_dir);
	lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(lock_fd >= 0);
	assert_int_equal(flock(lock_fd, LOCK_EX | LOCK_NB), 0);
	/* A free port for the device listener. */
	sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(sock, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(sock, (struct sockaddr *)&sa, &sl), 0);
	port = ntohs(sa.sin_port);
	close(sock);

	assert_int_equal(spawn_unready(&b, port), 0);
	mport = wait_metrics_port(&b);
	assert_true(mport != 0);
	/* Up (healthz) but not ready while the lock is held: it cannot be,
	 * however long we look, since it has no data directory yet. */
	for (int waited = 0; waited < WAIT_BOUND_MS; waited += 20) {
		if (sp_it_log_count(&b, "waiting for the data-directory lock") > 0)
			break;
		sleep_ms(20);
	}
	assert_true(sp_it_log_count(&b, "waiting for the data-directory lock") > 0);
	assert_int_equal(sp_it_http_get(mport, "/healthz", &body), 200);
	free(body);
	assert_int_equal(sp_it_http_get(mport, "/readyz", &body), 503);
	free(body);
	assert_true(sp_it_broker_alive(&b));
	assert_true(sp_it_tcp_connect(port) < 0);       /* not listening for devices yet */

	/* Release: it takes the lock, opens storage, listens, and is ready. */
	close(lock_fd);
	for (int waited = 0; waited < WAIT_BOUND_MS; waited += 20) {
		st = sp_it_http_get(mport, "/readyz", &body);
		free(body);
		if (st == 200)
			break;
		sleep_ms(20);
	}
	assert_int_equal(st, 200);
	sock = sp_it_tcp_connect(port);
	assert_true(sock >= 0);
	close(sock);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_health),
		cmocka_unit_test(test_counters_follow_traffic),
		cmocka_unit_test(test_memory_gauges),
		cmocka_unit_test(test_promtool),
		cmocka_unit_test(test_docs_promtool),
		cmocka_unit_test(test_packaged_files_use_served_names),
		cmocka_unit_test(test_readyz_waits_for_the_lock),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
