/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_hdr.c: the load generator's log-linear histogram (bench/loadgen/hdr.c).
 *
 * The histogram is compiled into this test directly (it is part of the
 * benchmark programs, not of a library). Checked against a sorted array of
 * the same values: every percentile within the histogram's stated precision
 * (1/1024 relative, exact below 2048), min/max exact, merging equal to
 * recording everything in one, bucket boundaries consistent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../bench/loadgen/hdr.c"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The exact value of rank ceil(p/100 * n) in sorted v. */
static uint64_t exact_pct(const uint64_t *v, size_t n, double p)
{
	double x = p / 100.0 * (double)n;
	size_t rank = (size_t)x;

	if ((double)rank < x)
		rank++;

	if (rank == 0)
		rank = 1;
	return v[rank - 1];
}

static void test_index_roundtrip(void **state)
{
	uint64_t v;
	size_t i, prev = 0;

	(void)state;
	/* Exact below HDR_SUB. */
	for (v = 0; v < HDR_SUB; v++) {
		assert_int_equal(hdr_index(v), v);
		assert_int_equal(hdr_bucket_high(v), v);
	}
	/* Monotonic, every value within its bucket, and within 1/1024 of the top. */
	for (i = 0; i < 200000; i++) {
		size_t idx;

		v = rnd() >> (rnd() % 40 + 23);
		idx = hdr_index(v);
		assert_true(idx < HDR_BUCKETS);
		assert_true(hdr_bucket_high(idx) >= v);
		if (v >= HDR_SUB) {
			assert_true(hdr_bucket_high(idx) - v <= v / HDR_HALF);
			assert_true(hdr_bucket_high(idx - 1) < v);
		}
	}
	for (v = 1; v < ((uint64_t)1 << 30); v = v * 3 / 2 + 1) {
		assert_true(hdr_index(v) >= prev);
		prev = hdr_index(v);
	}
	/* Huge values go to the last bucket. */
	assert_int_equal(hdr_index(UINT64_MAX), HDR_BUCKETS - 1);
	assert_int_equal(hdr_index(HDR_MAX_VALUE), HDR_BUCKETS - 1);
	assert_true(hdr_index(HDR_MAX_VALUE - 1) < HDR_BUCKETS);
}

static void test_percentiles_against_sorted(void **state)
{
	enum { N = 100000 };
	static const double ps[] = { 0, 1, 10, 50, 90, 99, 99.9, 99.99, 100 };
	uint64_t *v = malloc(N * sizeof(*v));
	struct hdr *h = hdr_new();
	size_t i, j;

	(void)state;
	assert_non_null(v);
	assert_non_null(h);
	for (i = 0; i < N; i++) {
		/* Latency-like: mostly tens of microseconds, a long tail to seconds. */
		v[i] = 20000 + rnd() % 30000;
		if (i % 100 == 0)
			v[i] = rnd() % 2000000000ull;
		if (i % 1000 == 1)
			v[i] = rnd() % 1500;
		hdr_record(h, v[i]);
	}
	qsort(v, N, sizeof(*v), cmp_u64);
	assert_int_equal(h->total, N);
	assert_int_equal(h->min, v[0]);
	assert_int_equal(h->max, v[N - 1]);
	for (j = 0; j < sizeof(ps) / sizeof(ps[0]); j++) {
		uint64_t want = exact_pct(v, N, ps[j]), got = hdr_percentile(h, ps[j]);

		assert_true(got >= want);
		assert_true(got - want <= want / HDR_HALF);
	}
	assert_int_equal(hdr_percentile(h, 100), v[N - 1]);
	free(v);
	hdr_free(h);
}

static void test_merge_equals_single(void **state)
{
	struct hdr *a = hdr_new(), *b = hdr_new(), *all = hdr_new();
	size_t i;

	(void)state;
	assert_true(a && b && all);
	for (i = 0; i < 50000; i++) {
		uint64_t x = rnd() % 100000000ull;

		hdr_record(i & 1 ? a : b, x);
		hdr_record(all, x);
	}
	hdr_merge(a, b);
	assert_int_equal(a->total, all->total);
	assert_int_equal(a->min, all->min);
	assert_int_equal(a->max, all->max);
	assert_memory_equal(a->counts, all->counts, sizeof(a->counts));
	assert_int_equal(hdr_percentile(a, 99.9), hdr_percentile(all, 99.9));
	hdr_free(a);
	hdr_free(b);
	hdr_free(all);
}

static void test_empty_and_single(void **state)
{
	struct hdr *h = hdr_new();

	(void)state;
	assert_non_null(h);
	assert_int_equal(hdr_percentile(h, 50), 0);
	assert_true(hdr_mean(h) == 0.0);
	hdr_record(h, 123456789);
	/* One value: every percentile is that value (bucket top capped by max). */
	assert_int_equal(hdr_percentile(h, 0), 123456789);
	assert_int_equal(hdr_percentile(h, 50), 123456789);
	assert_int_equal(hdr_percentile(h, 100), 123456789);
	hdr_reset(h);
	assert_int_equal(h->total, 0);
	assert_int_equal(h->min, UINT64_MAX);
	hdr_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_roundtrip),
		cmocka_unit_test(test_percentiles_against_sorted),
		cmocka_unit_test(test_merge_equals_single),
		cmocka_unit_test(test_empty_and_single),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
