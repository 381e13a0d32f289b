/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hdrlog.h: struct hdr in HdrHistogram's interval log format, so that the
 * standard tools (HistogramLogProcessor, HdrHistogram's plotters, the
 * hdrhistogram libraries of other languages) read the load generator's
 * latency histograms.
 *
 * Layout match: struct hdr's buckets are exactly those of an HdrHistogram
 * with lowestDiscernibleValue 1, numberOfSignificantValueDigits 3 and
 * highestTrackableValue 2^41 - 1 (sub-bucket count 2048: values below 2048
 * exact, then 1024 sub-buckets per power of two; 32768 counts), so the
 * counts are written as they are, nothing is re-binned.
 *
 * The log (text, one interval a line):
 *   #[Histogram log format version 1.3]
 *   #[StartTime: <epoch s> (seconds since epoch), <date>]
 *   #[BaseTime: <epoch s> (seconds since epoch)]
 *   "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
 *   <start s, relative>,<length s>,<max / max_ratio>,<base64 of the compressed encoding>
 *
 * The compressed encoding (V2, all integers big-endian):
 *   int32 cookie 0x1c849314, int32 length of what follows, then the zlib
 *   stream (RFC 1950, DEFLATE inside) of the uncompressed encoding:
 *   int32 cookie 0x1c849313, int32 payload length, int32 normalizing index
 *   offset (0), int32 significant digits (3), int64 lowest discernible value
 *   (1), int64 highest trackable value, float64 integer-to-double ratio (1.0),
 *   then the counts up to the max value's bucket, each a ZigZag LEB128 varint
 *   (at most 9 bytes; the 9th holds 8 bits), a run of n >= 2 zero counts
 *   written as the single value -n.
 */
#ifndef SP_BENCH_HDRLOG_H
#define SP_BENCH_HDRLOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hdr.h"

#define HDRLOG_COOKIE 0x1c849313u
#define HDRLOG_COMPRESSED_COOKIE 0x1c849314u
enum {
	HDRLOG_HEADER_LEN = 40,         /* the uncompressed encoding's header */
	HDRLOG_SIG_DIGITS = 3,
};
#define HDRLOG_HIGHEST ((uint64_t)HDR_MAX_VALUE - 1)

/*
 * The compressed V2 encoding of h. *out: malloc'd, owned by the caller
 * (free it); *out_len its length. 0, -ENOMEM, or -EIO (zlib failed).
 */
int hdrlog_encode(const struct hdr *h, uint8_t **out, size_t *out_len);

/* The log's header lines; start_epoch_s: wall-clock time of timestamp 0. */
int hdrlog_write_header(FILE *f, double start_epoch_s);

/*
 * One interval line: start_s relative to the header's StartTime, len_s its
 * length, h its histogram, max_ratio what the Interval_Max column divides
 * the max by (1e6 for nanosecond values shown in milliseconds, the
 * HdrHistogram tools' default). 0 or a negative errno.
 */
int hdrlog_write_interval(FILE *f, double start_s, double len_s, const struct hdr *h,
			  double max_ratio);

#endif
