/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_metrics.c: sp_metrics rendering, checked by parsing the text back and
 * by promtool (the Prometheus project's own linter).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "sp_metrics.h"

/* --- a small parser for the text format ------------------------------------ */

enum { MAX_LINES = 4096 };

struct parsed {
	int n;
	char *series[MAX_LINES]; /* "name{labels}" exactly as rendered */
	double value[MAX_LINES];
	int nfam;
	char *fam_name[512];
	char *fam_type[512];
	int fam_help[512];
};

static void parsed_free(struct parsed *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->series[i]);
	for (int i = 0; i < p->nfam; i++) {
		free(p->fam_name[i]);
		free(p->fam_type[i]);
	}
	memset(p, 0, sizeof(*p));
}

static int family_index(const struct parsed *p, const char *name)
{
	for (int i = 0; i < p->nfam; i++)
		if (strcmp(p->fam_name[i], name) == 0)
			return i;
	return -1;
}

static int family_add(struct parsed *p, const char *name)
{
	int i = family_index(p, name);

	if (i >= 0)
		return i;
	assert_true(p->nfam < 512);
	p->fam_name[p->nfam] = strdup(name);
	p->fam_type[p->nfam] = NULL;
	p->fam_help[p->nfam] = 0;
	return p->nfam++;
}

/* The family a sample belongs to: histograms add _bucket/_sum/_count. */
static int sample_family(const struct parsed *p, const char *series)
{
	static const char *const suffixes[] = { "_bucket", "_sum", "_count" };
	char name[256];
	size_t len = strcspn(series, "{");
	int i;

	assert_true(len < sizeof(name));
	memcpy(name, series, len);
	name[len] = '\0';
	i = family_index(p, name);
	if (i >= 0)
		return i;
	for (unsigned s = 0; s < 3; s++) {
		size_t sl = strlen(suffixes[s]);

		if (len > sl && strcmp(name + len - sl, suffixes[s]) == 0) {
			name[len - sl] = '\0';
			i = family_index(p, name);
			if (i >= 0 && p->fam_type[i] && strcmp(p->fam_type[i], "histogram") == 0)
				return i;
			name[len - sl] = suffixes[s][0];
		}
	}
	return -1;
}

/*
 * Parses text; fails the test on any line that is not HELP, TYPE or a
 * sample, on a sample whose family has no HELP and TYPE before it, and on a
 * series that appears twice.
 */
static void parse(const char *text, struct parsed *p)
{
	char *copy = strdup(text), *save = NULL;

	memset(p, 0, sizeof(*p));
	assert_non_null(copy);
	assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[256], type[32];

		if (strncmp(line, "# HELP ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%255s", name), 1);
			int i = family_add(p, name);

			assert_int_equal(p->fam_help[i], 0);
			p->fam_help[i] = 1;
			assert_true(strlen(line) > 8 + strlen(name)); /* a non-empty help text */
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%255s %31s", name, type), 2);
			int i = family_add(p, name);

			assert_null(p->fam_type[i]);
			assert_true(p->fam_help[i]); /* HELP first, as we render it */
			p->fam_type[i] = strdup(type);
			continue;
		}
		assert_true(line[0] != '#');
		char *sp = strrchr(line, ' ');

		assert_non_null(sp);
		*sp = '\0';
		char *end;
		double v = strtod(sp + 1, &end);

		assert_true(*end == '\0' && end != sp + 1);
		int f = sample_family(p, line);

		if (f < 0)
			fail_msg("sample %s has no HELP/TYPE", line);
		assert_non_null(p->fam_type[f]);
		for (int i = 0; i < p->n; i++)
			if (strcmp(p->series[i], line) == 0)
				fail_msg("duplicate series %s", line);
		assert_true(p->n < MAX_LINES);
		p->series[p->n] = strdup(line);
		p->value[p->n] = v;
		p->n++;
	}
	free(copy);
}

static int lookup(const struct parsed *p, const char *series, double *v)
{
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->series[i], series) == 0) {
			*v = p->value[i];
			return 0;
		}
	return -ENOENT;
}

static double value(const struct parsed *p, const char *series)
{
	double v = 0;

	if (lookup(p, series, &v) < 0)
		fail_msg("series %s missing", series);
	return v;
}

static double valuef(const struct parsed *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static double valuef(const struct parsed *p, const char *fmt, ...)
{
	char s[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s, sizeof(s), fmt, ap);
	va_end(ap);
	return value(p, s);
}

static void render_parse(struct sp_metrics *m, unsigned flags, struct parsed *p)
{
	struct sp_metrics_buf b = { 0 };

	assert_int_equal(sp_metrics_render(m, &b, flags), 0);
	assert_non_null(b.data);
	assert_int_equal(strlen(b.data), b.len);
	parse(b.data, p);
	sp_metrics_buf_free(&b);
}

/* --- tests ------------------------------------------------------------------- */

static void test_create_bounds(void **state)
{
	struct sp_metrics *m;

	(void)state;
	assert_int_equal(sp_metrics_create(&m, 0), -EINVAL);
	assert_null(m);
	assert_int_equal(sp_metrics_create(&m, SP_METRICS_SHARDS_MAX + 1), -EINVAL);
	assert_int_equal(sp_metrics_create(&m, 3), 0);
	assert_int_equal(sp_metrics_nshards(m), 3);
	assert_null(sp_metrics_shard(m, 3));
	/* Every slot on its own cache lines. */
	for (unsigned i = 0; i < 3; i++) {
		struct sp_metrics_shard *s = sp_metrics_shard(m, i);

		assert_int_equal((uintptr_t)s % 64, 0);
		assert_true((char *)sp_metrics_aux(m) - (char *)s >= (ptrdiff_t)sizeof(*s));
	}
	sp_metrics_destroy(m);
	sp_metrics_destroy(NULL);
}

/* Known increments on two shards and the aux slot come back summed, exactly. */
static void test_counters_exact(void **state)
{
	struct sp_metrics *m;
	struct sp_metrics_shard *s0, *s1, *aux;
	struct parsed p;

	(void)state;
	assert_int_equal(sp_metrics_create(&m, 2), 0);
	s0 = sp_metrics_shard(m, 0);
	s1 = sp_metrics_shard(m, 1);
	aux = sp_metrics_aux(m);

	for (int i = 0; i < 5; i++)
		sp_metrics_conn_accepted(s0);
	for (int i = 0; i < 3; i++)
		sp_metrics_conn_accepted(s1);
	sp_metrics_conn_closed(s0, SP_METRICS_CLOSE_EOF);
	sp_metrics_conn_closed(s1, SP_METRICS_CLOSE_EOF);
	sp_metrics_conn_closed(s1, sp_metrics_close_from_status(SP_STATUS_GOAWAY_TAKEOVER));
	sp_metrics_conn_closed(s0, sp_metrics_close_from_status(SP_STATUS_GOAWAY_IDLE));
	sp_metrics_conn_closed(s0, (enum sp_metrics_close)99); /* out of range: internal */
	sp_metrics_conn_refused(s1, SP_METRICS_CLOSE_HANDSHAKE_RATE);
	sp_metrics_conn_refused(s1, SP_METRICS_CLOSE_HANDSHAKE_RATE);
	sp_metrics_conn_refused(s0, SP_METRICS_CLOSE_MAX_CONNS);

	sp_metrics_handshake(s0, SP_METRICS_PATTERN_IK, SP_METRICS_OUTCOME_OK, 300000);
	sp_metrics_handshake(s1, SP_METRICS_PATTERN_IK, SP_METRICS_OUTCOME_OK, 700000);
	sp_metrics_handshake(s1, SP_METRICS_PATTERN_XX, SP_METRICS_OUTCOME_TIMEOUT, 10000000000ull);
	sp_metrics_handshake(s0, SP_METRICS_PATTERN_XX, SP_METRICS_OUTCOME_RATE_LIMITED, 0);
	sp_metrics_handshake(s0, SP_METRICS_PATTERN_IK, SP_METRICS_OUTCOME_FAILED, 5);

	for (int i = 0; i < 7; i++)
		sp_metrics_envelope_accepted(i % 2 ? s0 : s1);
	sp_metrics_envelope_delivered(s0, SP_METRICS_PATH_LIVE, 40000);
	sp_metrics_envelope_delivered(s1, SP_METRICS_PATH_LIVE, 60000);
	sp_metrics_envelope_delivered(aux, SP_METRICS_PATH_MAILBOX, 90000000000ull);
	sp_metrics_envelopes_delivered(s1, SP_METRICS_PATH_LIVE, 0, 1); /* nothing */
	sp_metrics_envelope_refused(s0, SP_STATUS_ERR_OFFLINE);
	sp_metrics_envelope_refused(s1, SP_STATUS_ERR_OFFLINE);
	sp_metrics_envelope_refused(s1, SP_STATUS_ERR_TOO_LARGE);
	sp_metrics_envelope_refused(s1, SP_STATUS_DELIVERED); /* not an error: internal */

	sp_metrics_bytes_received(s0, 1000);
	sp_metrics_bytes_received(s1, 234);
	sp_metrics_bytes_sent(s1, 4321);
	sp_metrics_mailbox_add(s0, 3, 300);
	sp_metrics_mailbox_add(s1, -1, -100); /* acked on another shard */
	sp_metrics_set_mailbox_base(m, 10, 5000);
	sp_metrics_acks(aux, 4);
	sp_metrics_expired(aux, 2);
	sp_metrics_loop_iteration(s0, 1);
	sp_metrics_loop_iteration(s0, 3);
	sp_metrics_loop_iteration(s1, 0);

	render_parse(m, SP_METRICS_RENDER_NO_PROCESS, &p);
	assert_int_equal(value(&p, "sealpost_connections_open"), 3);
	assert_int_equal(value(&p, "sealpost_connections_accepted_total"), 11);
	assert_int_equal(value(&p, "sealpost_connections_closed_total{reason=\"eof\"}"), 2);
	assert_int_equal(value(&p, "sealpost_connections_closed_total{reason=\"takeover\"}"), 1);
	assert_int_equal(value(&p, "sealpost_connections_closed_total{reason=\"idle\"}"), 1);
	assert_int_equal(value(&p, "sealpost_connections_closed_total{reason=\"internal\"}"), 1);
	assert_int_equal(value(&p, "sealpost_connections_closed_total{reason=\"io_error\"}"), 0);
	assert_int_equal(value(&p, "sealpost_connections_closed_total{reason=\"handshake_rate\"}"),
			 2);
	assert_int_equal(value(&p, "sealpost_connections_closed_total{reason=\"max_conns\"}"), 1);
	assert_int_equal(
		value(&p, "sealpost_handshakes_total{pattern=\"ik\",outcome=\"ok\"}"), 2);
	assert_int_equal(
		value(&p, "sealpost_handshakes_total{pattern=\"ik\",outcome=\"failed\"}"), 1);
	assert_int_equal(
		value(&p, "sealpost_handshakes_total{pattern=\"xx\",outcome=\"timeout\"}"), 1);
	assert_int_equal(
		value(&p, "sealpost_handshakes_total{pattern=\"xx\",outcome=\"rate_limited\"}"), 1);
	assert_int_equal(
		value(&p, "sealpost_handshakes_total{pattern=\"xx\",outcome=\"ok\"}"), 0);
	/* Only the two successful handshakes are timed. */
	assert_int_equal(value(&p, "sealpost_handshake_duration_seconds_count"), 2);
	assert_true(value(&p, "sealpost_handshake_duration_seconds_sum") == 0.001);
	assert_int_equal(value(&p, "sealpost_handshake_duration_seconds_bucket{le=\"0.00025\"}"), 0);
	assert_int_equal(value(&p, "sealpost_handshake_duration_seconds_bucket{le=\"0.0005\"}"), 1);
	assert_int_equal(value(&p, "sealpost_handshake_duration_seconds_bucket{le=\"0.001\"}"), 2);
	assert_int_equal(value(&p, "sealpost_handshake_duration_seconds_bucket{le=\"+Inf\"}"), 2);

	assert_int_equal(value(&p, "sealpost_envelopes_accepted_total"), 7);
	assert_int_equal(value(&p, "sealpost_envelopes_delivered_total{path=\"live\"}"), 2);
	assert_int_equal(value(&p, "sealpost_envelopes_delivered_total{path=\"mailbox\"}"), 1);
	assert_int_equal(value(&p, "sealpost_envelopes_refused_total{reason=\"offline\"}"), 2);
	assert_int_equal(value(&p, "sealpost_envelopes_refused_total{reason=\"too_large\"}"), 1);
	assert_int_equal(value(&p, "sealpost_envelopes_refused_total{reason=\"internal\"}"), 1);
	assert_int_equal(value(&p, "sealpost_envelopes_refused_total{reason=\"mailbox_full\"}"), 0);
	assert_int_equal(value(&p, "sealpost_delivery_latency_seconds_count{path=\"live\"}"), 2);
	assert_true(value(&p, "sealpost_delivery_latency_seconds_sum{path=\"live\"}") == 0.0001);
	assert_int_equal(
		value(&p, "sealpost_delivery_latency_seconds_bucket{path=\"live\",le=\"2.5e-05\"}"), 0);
	assert_int_equal(
		value(&p, "sealpost_delivery_latency_seconds_bucket{path=\"live\",le=\"5e-05\"}"), 1);
	assert_int_equal(
		value(&p, "sealpost_delivery_latency_seconds_bucket{path=\"live\",le=\"0.0001\"}"), 2);
	assert_int_equal(
		value(&p, "sealpost_delivery_latency_seconds_bucket{path=\"live\",le=\"+Inf\"}"), 2);
	assert_int_equal(value(&p, "sealpost_delivery_latency_seconds_count{path=\"mailbox\"}"), 1);
	assert_true(value(&p, "sealpost_delivery_latency_seconds_sum{path=\"mailbox\"}") == 90);
	assert_int_equal(
		value(&p, "sealpost_delivery_latency_seconds_bucket{path=\"mailbox\",le=\"60\"}"), 0);
	assert_int_equal(
		value(&p, "sealpost_delivery_latency_seconds_bucket{path=\"mailbox\",le=\"600\"}"), 1);

	assert_int_equal(value(&p, "sealpost_bytes_received_total"), 1234);
	assert_int_equal(value(&p, "sealpost_bytes_sent_total"), 4321);
	assert_int_equal(value(&p, "sealpost_mailbox_entries"), 12);
	assert_int_equal(value(&p, "sealpost_mailbox_bytes"), 5200);
	assert_int_equal(value(&p, "sealpost_acks_total"), 4);
	assert_int_equal(value(&p, "sealpost_expired_total"), 2);

	/* Per shard; the aux slot has no loop and no shard label. */
	assert_int_equal(value(&p, "sealpost_loop_iterations_total{shard=\"0\"}"), 2);
	assert_int_equal(value(&p, "sealpost_loop_iterations_total{shard=\"1\"}"), 1);
	double v;

	assert_int_equal(lookup(&p, "sealpost_loop_iterations_total{shard=\"2\"}", &v), -ENOENT);
	assert_int_equal(value(&p, "sealpost_loop_batch_size_bucket{shard=\"0\",le=\"1\"}"), 1);
	assert_int_equal(value(&p, "sealpost_loop_batch_size_bucket{shard=\"0\",le=\"2\"}"), 1);
	assert_int_equal(value(&p, "sealpost_loop_batch_size_bucket{shard=\"0\",le=\"4\"}"), 2);
	assert_int_equal(value(&p, "sealpost_loop_batch_size_count{shard=\"0\"}"), 2);
	assert_int_equal(value(&p, "sealpost_loop_batch_size_sum{shard=\"0\"}"), 4);
	assert_int_equal(value(&p, "sealpost_loop_batch_size_bucket{shard=\"1\",le=\"1\"}"), 1);
	assert_int_equal(value(&p, "sealpost_loop_batch_size_sum{shard=\"1\"}"), 0);

	/* One build_info series, value 1, version label "MAJOR.MINOR.PATCH",
	 * then a revision label (git describe, or "unknown"). */
	int builds = 0;

	for (int i = 0; i < p.n; i++) {
		unsigned maj, min, pat;
		char close[3];

		if (strncmp(p.series[i], "sealpost_build_info{", 20) != 0)
			continue;
		builds++;
		char rev[64] = "";

		assert_int_equal(sscanf(p.series[i], "sealpost_build_info{version=\"%u.%u.%u%2s",
					&maj, &min, &pat, close), 4);
		assert_string_equal(close, "\",");
		assert_int_equal(sscanf(strstr(p.series[i], "\",") + 2, "revision=\"%63[^\"]%2s",
					rev, close), 2);
		assert_true(rev[0] != '\0');
		assert_string_equal(close, "\"}");
		assert_true(p.value[i] == 1);
	}
	assert_int_equal(builds, 1);
	assert_true(value(&p, "process_start_time_seconds") > 1.7e9);
	/* NO_PROCESS and no RocksDB source: those families are absent. */
	assert_int_equal(lookup(&p, "process_open_fds", &v), -ENOENT);
	assert_int_equal(lookup(&p, "process_cpu_seconds_total", &v), -ENOENT);
	assert_int_equal(lookup(&p, "sealpost_rocksdb_sst_bytes", &v), -ENOENT);

	/* Naming conventions, for every family rendered. */
	for (int i = 0; i < p.nfam; i++) {
		const char *n = p.fam_name[i], *t = p.fam_type[i];
		size_t len = strlen(n);
		int total = len > 6 && strcmp(n + len - 6, "_total") == 0;

		assert_non_null(t);
		assert_true(p.fam_help[i]);
		assert_true(strncmp(n, "sealpost_", 9) == 0 || strncmp(n, "process_", 8) == 0);
		if (strcmp(t, "counter") == 0)
			assert_true(total);
		else
			assert_false(total);
	}
	parsed_free(&p);
	sp_metrics_destroy(m);
}

/* An observation equal to a bound lands in that bucket (le is inclusive). */
static void test_bucket_edges(void **state)
{
	static const uint64_t hb[] = SP_METRICS_HANDSHAKE_BOUNDS_NS;
	static const char *const hl[] = SP_METRICS_HANDSHAKE_LE;
	struct sp_metrics *m;
	struct parsed p;
	uint64_t sum = 0;

	(void)state;
	assert_int_equal(sp_metrics_create(&m, 1), 0);
	for (unsigned i = 0; i < SP_METRICS_HANDSHAKE_NBUCKETS; i++) {
		sp_metrics_handshake(sp_metrics_shard(m, 0), SP_METRICS_PATTERN_XX,
				     SP_METRICS_OUTCOME_OK, hb[i]);
		sp_metrics_handshake(sp_metrics_shard(m, 0), SP_METRICS_PATTERN_XX,
				     SP_METRICS_OUTCOME_OK, hb[i] + 1);
		sum += 2 * hb[i] + 1;
	}
	/* Bulk: 5 live deliveries of 30 us, 1 of exactly 1 s. */
	sp_metrics_envelopes_delivered(sp_metrics_shard(m, 0), SP_METRICS_PATH_LIVE, 5, 30000);
	sp_metrics_envelopes_delivered(sp_metrics_aux(m), SP_METRICS_PATH_LIVE, 1, 1000000000);
	render_parse(m, SP_METRICS_RENDER_NO_PROCESS, &p);
	assert_int_equal(value(&p, "sealpost_envelopes_delivered_total{path=\"live\"}"), 6);
	assert_int_equal(
		value(&p, "sealpost_delivery_latency_seconds_bucket{path=\"live\",le=\"2.5e-05\"}"), 0);
	assert_int_equal(
		value(&p, "sealpost_delivery_latency_seconds_bucket{path=\"live\",le=\"5e-05\"}"), 5);
	assert_int_equal(
		value(&p, "sealpost_delivery_latency_seconds_bucket{path=\"live\",le=\"0.1\"}"), 5);
	assert_int_equal(
		value(&p, "sealpost_delivery_latency_seconds_bucket{path=\"live\",le=\"1\"}"), 6);
	assert_true(value(&p, "sealpost_delivery_latency_seconds_sum{path=\"live\"}") == 1.00015);
	assert_int_equal(value(&p, "sealpost_delivery_latency_seconds_count{path=\"mailbox\"}"), 0);
	/* bucket i holds hb[i] and hb[i-1]+1: cumulative 2i+1. */
	for (unsigned i = 0; i < SP_METRICS_HANDSHAKE_NBUCKETS; i++)
		assert_int_equal(valuef(&p, "sealpost_handshake_duration_seconds_bucket{le=\"%s\"}",
					hl[i]), 2 * i + 1);
	assert_int_equal(value(&p, "sealpost_handshake_duration_seconds_bucket{le=\"+Inf\"}"),
			 2 * SP_METRICS_HANDSHAKE_NBUCKETS);
	assert_int_equal(value(&p, "sealpost_handshake_duration_seconds_count"),
			 2 * SP_METRICS_HANDSHAKE_NBUCKETS);
	/* The sum is rendered as an exact decimal of nanoseconds. */
	struct sp_metrics_buf b = { 0 };
	char want[96];

	assert_int_equal(sp_metrics_render(m, &b, SP_METRICS_RENDER_NO_PROCESS), 0);
	snprintf(want, sizeof(want), "\nsealpost_handshake_duration_seconds_sum %" PRIu64 ".%09" PRIu64
		 "\n", sum / 1000000000u, sum % 1000000000u);
	assert_non_null(strstr(b.data, want));
	sp_metrics_buf_free(&b);
	parsed_free(&p);
	sp_metrics_destroy(m);
}

/* Store calls are summed over shards per op; an unknown op is dropped. */
static void test_store_calls(void **state)
{
	struct sp_metrics *m;
	struct parsed p;

	(void)state;
	assert_int_equal(sp_metrics_create(&m, 2), 0);
	sp_metrics_store_call(sp_metrics_shard(m, 0), SP_METRICS_STORE_COMMIT, 3000);
	sp_metrics_store_call(sp_metrics_shard(m, 1), SP_METRICS_STORE_COMMIT, 2000000);
	sp_metrics_store_call(sp_metrics_shard(m, 1), SP_METRICS_STORE_SYNC, 5000000);
	sp_metrics_store_call(sp_metrics_shard(m, 0), SP_METRICS_STORE_OP_COUNT, 1);
	render_parse(m, SP_METRICS_RENDER_NO_PROCESS, &p);
	assert_int_equal(value(&p, "sealpost_store_call_seconds_count{op=\"commit\"}"), 2);
	assert_int_equal(
		value(&p, "sealpost_store_call_seconds_bucket{op=\"commit\",le=\"2.5e-06\"}"), 0);
	assert_int_equal(
		value(&p, "sealpost_store_call_seconds_bucket{op=\"commit\",le=\"5e-06\"}"), 1);
	assert_int_equal(
		value(&p, "sealpost_store_call_seconds_bucket{op=\"commit\",le=\"0.0025\"}"), 2);
	assert_true(value(&p, "sealpost_store_call_seconds_sum{op=\"commit\"}") == 0.002003);
	assert_int_equal(
		value(&p, "sealpost_store_call_seconds_bucket{op=\"sync\",le=\"0.0025\"}"), 0);
	assert_int_equal(
		value(&p, "sealpost_store_call_seconds_bucket{op=\"sync\",le=\"0.005\"}"), 1);
	assert_int_equal(value(&p, "sealpost_store_call_seconds_count{op=\"read\"}"), 0);
	assert_int_equal(value(&p, "sealpost_store_call_seconds_count{op=\"iteration\"}"), 0);
	parsed_free(&p);
	sp_metrics_destroy(m);
}

/* The "le" strings and the bounds the writers compare against describe the same numbers. */
static void check_table(const uint64_t *bounds, const char *const *le, unsigned n, double scale)
{
	for (unsigned i = 0; i < n; i++) {
		char *end;
		double d = strtod(le[i], &end);

		assert_true(*end == '\0');
		assert_true(fabs(d - (double)bounds[i] * scale) <= 1e-12 * d);
		if (i)
			assert_true(bounds[i] > bounds[i - 1]);
	}
}

static void test_le_tables(void **state)
{
	static const uint64_t hb[] = SP_METRICS_HANDSHAKE_BOUNDS_NS;
	static const char *const hl[] = SP_METRICS_HANDSHAKE_LE;
	static const uint64_t db[] = SP_METRICS_DELIVERY_BOUNDS_NS;
	static const char *const dl[] = SP_METRICS_DELIVERY_LE;
	static const uint64_t bb[] = SP_METRICS_BATCH_BOUNDS;
	static const char *const bl[] = SP_METRICS_BATCH_LE;
	static const uint64_t sb[] = SP_METRICS_STORE_BOUNDS_NS;
	static const char *const sl[] = SP_METRICS_STORE_LE;

	(void)state;
	assert_int_equal(sizeof(sb) / sizeof(sb[0]), SP_METRICS_STORE_NBUCKETS);
	check_table(sb, sl, SP_METRICS_STORE_NBUCKETS, 1e-9);
	assert_int_equal(sizeof(hb) / sizeof(hb[0]), SP_METRICS_HANDSHAKE_NBUCKETS);
	assert_int_equal(sizeof(db) / sizeof(db[0]), SP_METRICS_DELIVERY_NBUCKETS);
	assert_int_equal(sizeof(bb) / sizeof(bb[0]), SP_METRICS_BATCH_NBUCKETS);
	check_table(hb, hl, SP_METRICS_HANDSHAKE_NBUCKETS, 1e-9);
	check_table(db, dl, SP_METRICS_DELIVERY_NBUCKETS, 1e-9);
	check_table(bb, bl, SP_METRICS_BATCH_NBUCKETS, 1);
}

static void test_label_names(void **state)
{
	(void)state;
	assert_string_equal(sp_metrics_refused_name(SP_STATUS_ERR_BAD_RECIPIENT), "bad_recipient");
	assert_string_equal(sp_metrics_refused_name(SP_STATUS_ERR_SHUTTING_DOWN), "shutting_down");
	assert_null(sp_metrics_refused_name(SP_STATUS_DELIVERED));
	assert_null(sp_metrics_refused_name(SP_STATUS_GOAWAY_IDLE));
	for (unsigned s = SP_STATUS_ERR_OFFLINE; s <= SP_STATUS_ERR_SHUTTING_DOWN; s++)
		assert_non_null(sp_metrics_refused_name((enum sp_status)s));
	for (unsigned c = 0; c < SP_METRICS_CLOSE_COUNT; c++)
		assert_non_null(sp_metrics_close_name((enum sp_metrics_close)c));
	assert_null(sp_metrics_close_name(SP_METRICS_CLOSE_COUNT));
	assert_string_equal(sp_metrics_close_name(sp_metrics_close_from_status(
				    SP_STATUS_GOAWAY_SLOW_CONSUMER)), "slow_consumer");
	assert_string_equal(sp_metrics_close_name(sp_metrics_close_from_status(
				    SP_STATUS_GOAWAY_PROTOCOL)), "protocol");
	assert_string_equal(sp_metrics_close_name(sp_metrics_close_from_status(
				    SP_STATUS_GOAWAY_SHUTDOWN)), "shutdown");
	assert_string_equal(sp_metrics_close_name(sp_metrics_close_from_status(
				    SP_STATUS_ERR_OFFLINE)), "internal");
	assert_string_equal(sp_metrics_pattern_name(SP_METRICS_PATTERN_XX), "xx");
	assert_string_equal(sp_metrics_outcome_name(SP_METRICS_OUTCOME_RATE_LIMITED),
			    "rate_limited");
	assert_string_equal(sp_metrics_path_name(SP_METRICS_PATH_MAILBOX), "mailbox");
	assert_null(sp_metrics_path_name(SP_METRICS_PATH_COUNT));
}

struct fake_db {
	int calls;
	int fail;
};

static int fake_rocksdb(void *ctx, struct sp_metrics_rocksdb *out)
{
	struct fake_db *db = ctx;

	db->calls++;
	if (db->fail)
		return -EIO;
	out->write_stall_seconds = 1.5;
	out->sst_bytes = 123456789;
	out->pending_compaction_bytes = 42;
	return 0;
}

static void test_rocksdb_source(void **state)
{
	struct fake_db db = { 0 };
	struct sp_metrics *m;
	struct parsed p;
	double v;

	(void)state;
	assert_int_equal(sp_metrics_create(&m, 1), 0);
	sp_metrics_set_rocksdb_source(m, fake_rocksdb, &db);
	render_parse(m, SP_METRICS_RENDER_NO_PROCESS, &p);
	assert_int_equal(db.calls, 1);
	assert_true(value(&p, "sealpost_rocksdb_write_stall_seconds_total") == 1.5);
	assert_int_equal(value(&p, "sealpost_rocksdb_sst_bytes"), 123456789);
	assert_int_equal(value(&p, "sealpost_rocksdb_pending_compaction_bytes"), 42);
	parsed_free(&p);

	/* A failing source leaves the figures out rather than inventing zeros. */
	db.fail = 1;
	render_parse(m, SP_METRICS_RENDER_NO_PROCESS, &p);
	assert_int_equal(db.calls, 2);
	assert_int_equal(lookup(&p, "sealpost_rocksdb_sst_bytes", &v), -ENOENT);
	parsed_free(&p);

	/* Removed: never called again. */
	sp_metrics_set_rocksdb_source(m, NULL, &db);
	render_parse(m, SP_METRICS_RENDER_NO_PROCESS, &p);
	assert_int_equal(db.calls, 2);
	assert_int_equal(lookup(&p, "sealpost_rocksdb_write_stall_seconds_total", &v), -ENOENT);
	parsed_free(&p);
	sp_metrics_destroy(m);
}

/* The stall parser against RocksDB's real dbstats text, and against crafted lines. */
static void test_rocksdb_stall_parse(void **state)
{
	char dir[] = "/tmp/sp-metrics-rocksdb-XXXXXX";
	rocksdb_options_t *o = rocksdb_options_create();
	char *err = NULL, *stats, cmd[64];
	rocksdb_t *db;
	double sec = -1;

	(void)state;
	assert_non_null(mkdtemp(dir));
	rocksdb_options_set_create_if_missing(o, 1);
	db = rocksdb_open(o, dir, &err);
	assert_null(err);
	stats = rocksdb_property_value(db, "rocksdb.dbstats");
	assert_non_null(stats);
	assert_int_equal(sp_metrics_parse_rocksdb_stall(stats, &sec), 0);
	assert_true(sec == 0); /* a fresh database has never stalled */
	rocksdb_free(stats);
	rocksdb_close(db);
	rocksdb_options_destroy(o);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);

	assert_int_equal(sp_metrics_parse_rocksdb_stall(
				 "x\nCumulative stall: 01:02:3.500 H:M:S, 0.1 percent\n", &sec), 0);
	assert_true(sec == 3723.5);
	assert_int_equal(sp_metrics_parse_rocksdb_stall(
				 "Cumulative stall: 123:59:59.999 H:M:S, 9.9 percent", &sec), 0);
	assert_true(sec == 123 * 3600 + 59 * 60 + 59.999);
	assert_int_equal(sp_metrics_parse_rocksdb_stall("Interval stall: 00:00:1.000 H:M:S", &sec),
			 -EINVAL);
	assert_int_equal(sp_metrics_parse_rocksdb_stall("Cumulative stall: 00:61:1.000 H:M:S",
							&sec), -EINVAL);
	assert_int_equal(sp_metrics_parse_rocksdb_stall("Cumulative stall: 00:00:1.000", &sec),
			 -EINVAL);
	assert_int_equal(sp_metrics_parse_rocksdb_stall(NULL, &sec), -EINVAL);
}

static void test_process_metrics(void **state)
{
	struct sp_metrics *m;
	struct parsed p;
	int fd;

	(void)state;
	assert_int_equal(sp_metrics_create(&m, 1), 0);
	render_parse(m, 0, &p);
	assert_true(value(&p, "process_resident_memory_bytes") > 0);
	double before = value(&p, "process_open_fds");

	assert_true(before >= 3);
	assert_true(value(&p, "process_max_fds") >= before);
	parsed_free(&p);
	/* One more descriptor open, one more counted. */
	fd = dup(0);
	assert_true(fd >= 0);
	render_parse(m, 0, &p);
	assert_true(value(&p, "process_open_fds") == before + 1);
	close(fd);
	parsed_free(&p);
	sp_metrics_destroy(m);
}

/* Runs promtool check metrics on text; returns its exit status and its output in out. */
static int promtool_check(const char *text, char *out, size_t cap)
{
	char path[] = "/tmp/sp-metrics-XXXXXX";
	char cmd[256];
	size_t len = strlen(text), n = 0;
	FILE *f;
	int fd, st;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (n + 1 < cap) {
		size_t r = fread(out + n, 1, cap - 1 - n, f);

		if (r == 0)
			break;
		n += r;
	}
	out[n] = '\0';
	st = pclose(f);
	unlink(path);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int have_promtool(void)
{
	return system("command -v promtool >/dev/null 2>&1") == 0;
}

/* Everything rendered, every family populated, must pass promtool without a complaint. */
static void test_promtool(void **state)
{
	struct fake_db db = { 0 };
	struct sp_metrics_buf b = { 0 };
	struct sp_metrics *m;
	char out[8192];
	int st;

	(void)state;
	if (!have_promtool()) {
		print_message("SKIP: promtool not found in PATH (Debian package prometheus)\n");
		skip();
	}
	assert_int_equal(sp_metrics_create(&m, 4), 0);
	sp_metrics_set_rocksdb_source(m, fake_rocksdb, &db);
	for (unsigned i = 0; i < 4; i++) {
		struct sp_metrics_shard *s = sp_metrics_shard(m, i);

		sp_metrics_conn_accepted(s);
		sp_metrics_handshake(s, SP_METRICS_PATTERN_IK, SP_METRICS_OUTCOME_OK, 400000 * i);
		sp_metrics_envelope_delivered(s, SP_METRICS_PATH_LIVE, 30000 * i);
		sp_metrics_loop_iteration(s, i * 7);
	}
	assert_int_equal(sp_metrics_render(m, &b, 0), 0);
	st = promtool_check(b.data, out, sizeof(out));
	if (st != 0 || out[0] != '\0')
		fail_msg("promtool exit %d:\n%s\n--- input ---\n%s", st, out, b.data);

	/* The check must be able to fail: a counter without _total is a lint problem. */
	st = promtool_check("# HELP x_bytes x\n# TYPE x_bytes counter\nx_bytes 1\n", out,
			    sizeof(out));
	assert_true(st != 0 || out[0] != '\0');
	sp_metrics_buf_free(&b);
	sp_metrics_destroy(m);
}

/*
 * Writers increment their own slots while a reader renders: every rendered
 * counter is monotonic, and the last render after the writers stop is exact.
 */
enum { WRITERS = 2, ROUNDS = 200000 };

struct writer_arg {
	struct sp_metrics_shard *s;
	int done; /* atomic */
};

static void *writer(void *arg)
{
	struct writer_arg *w = arg;

	for (int i = 0; i < ROUNDS; i++) {
		sp_metrics_envelope_accepted(w->s);
		sp_metrics_bytes_received(w->s, 3);
		sp_metrics_envelope_delivered(w->s, SP_METRICS_PATH_LIVE, (uint64_t)i);
		sp_metrics_loop_iteration(w->s, (uint64_t)(i & 15));
	}
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_concurrent_render(void **state)
{
	struct writer_arg wa[WRITERS];
	pthread_t th[WRITERS];
	struct sp_metrics *m;
	double last_acc = 0, last_bytes = 0, last_count = 0;
	struct parsed p;
	int renders = 0, running;

	(void)state;
	assert_int_equal(sp_metrics_create(&m, WRITERS), 0);
	for (int i = 0; i < WRITERS; i++) {
		wa[i].s = sp_metrics_shard(m, (unsigned)i);
		wa[i].done = 0;
		assert_int_equal(pthread_create(&th[i], NULL, writer, &wa[i]), 0);
	}
	do {
		running = 0;
		for (int i = 0; i < WRITERS; i++)
			running |= !__atomic_load_n(&wa[i].done, __ATOMIC_ACQUIRE);
		render_parse(m, SP_METRICS_RENDER_NO_PROCESS, &p);
		double acc = value(&p, "sealpost_envelopes_accepted_total");
		double bytes = value(&p, "sealpost_bytes_received_total");
		double count = value(&p, "sealpost_delivery_latency_seconds_count{path=\"live\"}");

		assert_true(acc >= last_acc && bytes >= last_bytes && count >= last_count);
		assert_true(value(&p, "sealpost_delivery_latency_seconds_bucket{path=\"live\","
				      "le=\"+Inf\"}") == count);
		last_acc = acc;
		last_bytes = bytes;
		last_count = count;
		parsed_free(&p);
		renders++;
	} while (running);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(th[i], NULL);
	render_parse(m, SP_METRICS_RENDER_NO_PROCESS, &p);
	assert_int_equal(value(&p, "sealpost_envelopes_accepted_total"), WRITERS * ROUNDS);
	assert_int_equal(value(&p, "sealpost_bytes_received_total"), 3 * WRITERS * ROUNDS);
	assert_int_equal(value(&p, "sealpost_delivery_latency_seconds_count{path=\"live\"}"),
			 WRITERS * ROUNDS);
	assert_int_equal(value(&p, "sealpost_loop_iterations_total{shard=\"1\"}"), ROUNDS);
	assert_int_equal(value(&p, "sealpost_loop_batch_size_bucket{shard=\"0\",le=\"1\"}"),
			 ROUNDS / 8); /* i & 15 in {0, 1}: 2 of every 16 */
	parsed_free(&p);
	assert_true(renders >= 1);
	sp_metrics_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_bounds),
		cmocka_unit_test(test_counters_exact),
		cmocka_unit_test(test_bucket_edges),
		cmocka_unit_test(test_le_tables),
		cmocka_unit_test(test_store_calls),
		cmocka_unit_test(test_label_names),
		cmocka_unit_test(test_rocksdb_source),
		cmocka_unit_test(test_rocksdb_stall_parse),
		cmocka_unit_test(test_process_metrics),
		cmocka_unit_test(test_promtool),
		cmocka_unit_test(test_concurrent_render),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
