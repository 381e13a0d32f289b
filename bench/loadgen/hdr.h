/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hdr.h: a log-linear latency histogram in the spirit of HdrHistogram.
 *
 * Values are unsigned 64-bit (the load generator records nanoseconds).
 * Values below HDR_SUB (2048) are counted exactly; above, each power-of-two
 * range [2^k, 2^(k+1)) is split into HDR_HALF (1024) equal sub-buckets, so a
 * recorded value is known to within 1/1024 (~0.1%) of itself at any
 * magnitude: 3 significant decimal digits from a microsecond to minutes.
 * Values at or above HDR_MAX_VALUE go to the last bucket (and max is exact).
 *
 * Merging two histograms is adding their counts, which is what lets every
 * load-generator process record on its own and the parent add them up.
 *
 * Memory: HDR_BUCKETS counters of 8 bytes (~256 KiB); allocate it with
 * hdr_new, not on the stack. Not thread-safe: one histogram per thread.
 */
#ifndef SP_BENCH_HDR_H
#define SP_BENCH_HDR_H

#include <stddef.h>
#include <stdint.h>

enum {
	HDR_HALF_BITS = 10,
	HDR_HALF = 1 << HDR_HALF_BITS,          /* sub-buckets per power of two */
	HDR_SUB = 2 * HDR_HALF,                 /* values below this are exact */
	HDR_TOP_BIT = 41,                       /* 2^41 ns = ~36 minutes */
	/* exact range, then HDR_HALF per power of two from 2^11 to 2^41 */
	HDR_BUCKETS = HDR_SUB + (HDR_TOP_BIT - HDR_HALF_BITS - 1) * HDR_HALF,
};
#define HDR_MAX_VALUE ((uint64_t)1 << HDR_TOP_BIT)

struct hdr {
	uint64_t total;         /* values recorded */
	uint64_t min, max;      /* exact; min = UINT64_MAX when empty */
	double sum;             /* for the mean */
	uint64_t counts[HDR_BUCKETS];
};

struct hdr *hdr_new(void);             /* zeroed, calloc'd; NULL on ENOMEM */
void hdr_free(struct hdr *h);
void hdr_reset(struct hdr *h);
void hdr_record(struct hdr *h, uint64_t v);
/* Adds every count of src into dst. */
void hdr_merge(struct hdr *dst, const struct hdr *src);

/* Bucket of a value, and the highest value that falls into a bucket. */
size_t hdr_index(uint64_t v);
uint64_t hdr_bucket_high(size_t idx);

/*
 * The value at percentile p (0..100): the highest value equivalent to the
 * bucket holding the ceil(p/100 * total)-th smallest recorded value, capped
 * at the exact max. p = 100 gives max; an empty histogram gives 0.
 */
uint64_t hdr_percentile(const struct hdr *h, double p);
double hdr_mean(const struct hdr *h);

#endif
