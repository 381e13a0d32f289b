/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_hdrlog.c: the load generator's HdrHistogram interval log writer
 * (bench/loadgen/hdrlog.c), compiled in directly like test_hdr.c.
 *
 * A decoder written here from the format (hdrlog.h) reads every encoding
 * back: cookies, lengths, header fields, and the counts bucket by bucket
 * against the histogram that was encoded (zero runs, the 9-byte varint,
 * the empty histogram). The integration test decodes a real run's log
 * with an independent decoder in Python.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>
#include <zlib.h>

#include "../bench/loadgen/hdr.c"
#include "../bench/loadgen/hdrlog.c"

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static int64_t get_varint(const uint8_t *p, size_t len, size_t *off)
{
	uint64_t z = 0;
	unsigned shift = 0;
	int i;

	for (i = 0; i < 9; i++) {
		uint8_t b;

		assert_true(*off < len);
		b = p[(*off)++];
		if (i == 8) {
			z |= (uint64_t)b << 56;
			break;
		}
		z |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
			break;
	}
	return (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
}

/* Decodes a compressed encoding into counts (HDR_BUCKETS, zeroed first);
 * returns how many counts the payload covered. */
static size_t decode(const uint8_t *enc, size_t len, uint64_t *counts)
{
	uLongf plain_len = 1 << 22;
	uint8_t *plain = malloc(plain_len);
	size_t off, n = 0, payload;
	double ratio;
	uint64_t bits;

	assert_non_null(plain);
	assert_true(len > 8);
	assert_int_equal(be32(enc), 0x1c849314u);
	assert_int_equal(be32(enc + 4), len - 8);
	assert_int_equal(uncompress(plain, &plain_len, enc + 8, (uLong)(len - 8)), Z_OK);
	assert_true(plain_len >= 40);
	assert_int_equal(be32(plain), 0x1c849313u);
	payload = be32(plain + 4);
	assert_int_equal(payload, plain_len - 40);
	assert_int_equal(be32(plain + 8), 0);
	assert_int_equal(be32(plain + 12), 3);
	assert_int_equal(be64(plain + 16), 1);
	assert_int_equal(be64(plain + 24), ((uint64_t)1 << 41) - 1);
	bits = be64(plain + 32);
	memcpy(&ratio, &bits, sizeof(ratio));
	assert_true(ratio == 1.0);
	memset(counts, 0, HDR_BUCKETS * sizeof(*counts));
	off = 40;
	while (off < plain_len) {
		int64_t v = get_varint(plain, plain_len, &off);

		if (v < 0) {
			assert_true(v <= -2);
			n += (size_t)-v;
		} else {
			assert_true(n < HDR_BUCKETS);
			counts[n++] = (uint64_t)v;
		}
	}
	assert_true(n <= HDR_BUCKETS);
	free(plain);
	return n;
}

static void check_roundtrip(const struct hdr *h)
{
	uint64_t *counts = malloc(HDR_BUCKETS * sizeof(*counts));
	uint8_t *enc;
	size_t len, n, i;

	assert_non_null(counts);
	assert_int_equal(hdrlog_encode(h, &enc, &len), 0);
	n = decode(enc, len, counts);
	/* Up to the max's bucket, and every count equal. */
	assert_int_equal(n, hdr_index(h->total ? h->max : 0) + 1);
	for (i = 0; i < HDR_BUCKETS; i++)
		if (counts[i] != h->counts[i])
			fail_msg("bucket %zu: %llu decoded, %llu recorded", i,
				 (unsigned long long)counts[i], (unsigned long long)h->counts[i]);
	free(enc);
	free(counts);
}

static void test_empty(void **state)
{
	struct hdr *h = hdr_new();

	(void)state;
	assert_non_null(h);
	check_roundtrip(h);
	hdr_free(h);
}

static void test_values_and_runs(void **state)
{
	struct hdr *h = hdr_new();
	uint64_t x = 88172645463325252ull;
	int i;

	(void)state;
	assert_non_null(h);
	/* exact range, a lone value after a long zero run, many magnitudes */
	hdr_record(h, 0);
	hdr_record(h, 1);
	hdr_record(h, 1);
	hdr_record(h, 2047);
	hdr_record(h, 2048);
	for (i = 0; i < 200; i++)
		hdr_record(h, 150000);
	for (i = 0; i < 10000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		hdr_record(h, x % 2000000000ull);
	}
	hdr_record(h, HDR_MAX_VALUE + 5); /* clamped into the last bucket */
	check_roundtrip(h);
	hdr_free(h);
}

static void test_varint(void **state)
{
	const int64_t vals[] = { 0, 1, -1, 63, -64, 64, 127, 128, -2, 300, INT64_MAX, INT64_MIN,
				 (int64_t)1 << 55, ((int64_t)1 << 56) - 1, (int64_t)1 << 56 };
	uint8_t buf[16];
	size_t i, n, off;

	(void)state;
	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		n = put_varint(buf, vals[i]);
		assert_true(n >= 1 && n <= 9);
		off = 0;
		assert_true(get_varint(buf, n, &off) == vals[i]);
		assert_int_equal(off, n);
	}
	/* The 9-byte form: zigzag(INT64_MIN) is all ones. */
	assert_int_equal(put_varint(buf, INT64_MIN), 9);
	assert_int_equal(buf[8], 0xff);
	/* ZigZag: 0, -1, 1, -2 -> 0, 1, 2, 3 */
	put_varint(buf, -2);
	assert_int_equal(buf[0], 3);
}

static void test_log_lines(void **state)
{
	struct hdr *h = hdr_new();
	char *text = NULL, *line, *save, *field, b64[1 << 16];
	size_t size = 0, binlen;
	uint8_t bin[1 << 15];
	uint64_t *counts = malloc(HDR_BUCKETS * sizeof(*counts));
	FILE *f = open_memstream(&text, &size);
	int lines = 0;

	(void)state;
	assert_non_null(h);
	assert_non_null(counts);
	assert_non_null(f);
	hdr_record(h, 1500000);
	hdr_record(h, 2500000);
	assert_int_equal(hdrlog_write_header(f, 1700000000.25), 0);
	assert_int_equal(hdrlog_write_interval(f, 1.0, 1.0, h, 1e6), 0);
	fclose(f);
	assert_non_null(strstr(text, "#[Histogram log format version 1.3]\n"));
	assert_non_null(strstr(text, "#[StartTime: 1700000000.250 (seconds since epoch), "));
	assert_non_null(strstr(text, "\n\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\","
				     "\"Interval_Compressed_Histogram\"\n"));
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#' || line[0] == '"')
			continue;
		lines++;
		assert_true(strncmp(line, "1.000,1.000,2.500,", 18) == 0);
		field = line + 18;
		snprintf(b64, sizeof(b64), "%s", field);
		assert_int_equal(sodium_base642bin(bin, sizeof(bin), b64, strlen(b64), NULL, &binlen,
						   NULL, sodium_base64_VARIANT_ORIGINAL), 0);
		decode(bin, binlen, counts);
		assert_int_equal(counts[hdr_index(1500000)], 1);
		assert_int_equal(counts[hdr_index(2500000)], 1);
	}
	assert_int_equal(lines, 1);
	free(text);
	free(counts);
	hdr_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_values_and_runs),
		cmocka_unit_test(test_varint),
		cmocka_unit_test(test_log_lines),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
