/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hdr.c: the log-linear histogram (see hdr.h for the layout).
 */
#include "hdr.h"

#include <stdlib.h>
#include <string.h>

struct hdr *hdr_new(void)
{
	struct hdr *h = calloc(1, sizeof(*h));

	if (h)
		h->min = UINT64_MAX;
	return h;
}

void hdr_free(struct hdr *h)
{
	free(h);
}

void hdr_reset(struct hdr *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

size_t hdr_index(uint64_t v)
{
	unsigned top, shift;

	if (v < HDR_SUB)
		return (size_t)v;
	if (v >= HDR_MAX_VALUE)
		return HDR_BUCKETS - 1;
	top = 63u - (unsigned)__builtin_clzll(v);       /* >= HDR_HALF_BITS + 1 */
	shift = top - HDR_HALF_BITS;                    /* v >> shift is in [HALF, SUB) */
	return HDR_SUB + (size_t)(shift - 1) * HDR_HALF + (size_t)((v >> shift) - HDR_HALF);
}

uint64_t hdr_bucket_high(size_t idx)
{
	size_t rel;
	unsigned shift;

	if (idx < HDR_SUB)
		return idx;
	if (idx >= HDR_BUCKETS)
		idx = HDR_BUCKETS - 1;
	rel = idx - HDR_SUB;
	shift = (unsigned)(rel / HDR_HALF) + 1;
	return ((uint64_t)(HDR_HALF + rel % HDR_HALF) << shift) + (((uint64_t)1 << shift) - 1);
}

void hdr_record(struct hdr *h, uint64_t v)
{
	h->counts[hdr_index(v)]++;
	h->total++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void hdr_merge(struct hdr *dst, const struct hdr *src)
{
	size_t i;

	for (i = 0; i < HDR_BUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t hdr_percentile(const struct hdr *h, double p)
{
	uint64_t rank, seen = 0, v;
	size_t i;

	if (h->total == 0)
		return 0;
	if (p >= 100.0)
		return h->max;
	if (p < 0.0)
		p = 0.0;
	{
		/* ceil without libm */
		double x = p / 100.0 * (double)h->total;

		rank = (uint64_t)x;
		if ((double)rank < x)
			rank++;
	}
	if (rank == 0)
		rank = 1;
	for (i = 0; i < HDR_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank)
			break;
	}
	v = hdr_bucket_high(i);
	if (v > h->max)
		v = h->max;
	if (v < h->min)
		v = h->min;
	return v;
}

double hdr_mean(const struct hdr *h)
{
	return h->total ? h->sum / (double)h->total : 0.0;
}
