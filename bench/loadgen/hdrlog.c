/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hdrlog.c: HdrHistogram's V2 compressed encoding and interval log lines
 * for struct hdr (see hdrlog.h for the format).
 */
#include "hdrlog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <zlib.h>

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

/* ZigZag, then LEB128 of up to 9 bytes: 7 bits in each of the first 8
 * (high bit = more follow), all 8 bits in the 9th. Returns bytes written. */
static size_t put_varint(uint8_t *p, int64_t v)
{
	uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	size_t n = 0;

	while (n < 8 && z >= 0x80) {
		p[n++] = (uint8_t)(z | 0x80);
		z >>= 7;
	}
	p[n++] = (uint8_t)z;
	return n;
}

/* Counts up to the max's bucket; zero runs folded. buf: 9 bytes per count. */
static size_t put_counts(uint8_t *buf, const struct hdr *h)
{
	size_t limit = hdr_index(h->total ? h->max : 0) + 1, i = 0, n = 0;

	while (i < limit) {
		uint64_t c = h->counts[i++];
		int64_t zeros = 0;

		if (c == 0) {
			zeros = 1;
			while (i < limit && h->counts[i] == 0) {
				zeros++;
				i++;
			}
		}
		/* A count above INT64_MAX cannot be recorded (hdr_record counts one by one). */
		n += put_varint(buf + n, zeros > 1 ? -zeros : (int64_t)c);
	}
	return n;
}

int hdrlog_encode(const struct hdr *h, uint8_t **out, size_t *out_len)
{
	size_t limit = hdr_index(h->total ? h->max : 0) + 1, plain_len, payload;
	uLongf zlen;
	uint8_t *plain, *z;
	double one = 1.0;
	uint64_t bits;

	*out = NULL;
	*out_len = 0;
	plain = malloc(HDRLOG_HEADER_LEN + limit * 9);
	if (!plain)
		return -ENOMEM;
	payload = put_counts(plain + HDRLOG_HEADER_LEN, h);
	put_be32(plain, HDRLOG_COOKIE);
	put_be32(plain + 4, (uint32_t)payload);
	put_be32(plain + 8, 0);                 /* normalizing index offset */
	put_be32(plain + 12, HDRLOG_SIG_DIGITS);
	put_be64(plain + 16, 1);                /* lowest discernible value */
	put_be64(plain + 24, HDRLOG_HIGHEST);
	memcpy(&bits, &one, sizeof(bits));      /* IEEE 754 binary64 on every target we build */
	put_be64(plain + 32, bits);
	plain_len = HDRLOG_HEADER_LEN + payload;

	zlen = compressBound((uLong)plain_len);
	z = malloc(8 + zlen);
	if (!z) {
		free(plain);
		return -ENOMEM;
	}
	if (compress2(z + 8, &zlen, plain, (uLong)plain_len, Z_DEFAULT_COMPRESSION) != Z_OK) {
		free(plain);
		free(z);
		return -EIO;
	}
	free(plain);
	put_be32(z, HDRLOG_COMPRESSED_COOKIE);
	put_be32(z + 4, (uint32_t)zlen);
	*out = z;
	*out_len = 8 + (size_t)zlen;
	return 0;
}

int hdrlog_write_header(FILE *f, double start_epoch_s)
{
	time_t t = (time_t)start_epoch_s;
	struct tm tm;
	char date[64] = "";

	if (gmtime_r(&t, &tm))
		strftime(date, sizeof(date), "%a %b %d %H:%M:%S UTC %Y", &tm);
	if (fprintf(f, "#[Histogram log format version 1.3]\n"
		       "#[StartTime: %.3f (seconds since epoch), %s]\n"
		       "#[BaseTime: %.3f (seconds since epoch)]\n"
		       "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\","
		       "\"Interval_Compressed_Histogram\"\n",
		       start_epoch_s, date, start_epoch_s) < 0)
		return -EIO;
	return 0;
}

int hdrlog_write_interval(FILE *f, double start_s, double len_s, const struct hdr *h,
			  double max_ratio)
{
	uint8_t *bin;
	size_t len, b64_len;
	char *b64;
	int ret;

	ret = hdrlog_encode(h, &bin, &len);
	if (ret)
		return ret;
	b64_len = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	b64 = malloc(b64_len);
	if (!b64) {
		free(bin);
		return -ENOMEM;
	}
	sodium_bin2base64(b64, b64_len, bin, len, sodium_base64_VARIANT_ORIGINAL);
	free(bin);
	ret = fprintf(f, "%.3f,%.3f,%.3f,%s\n", start_s, len_s,
		      (double)(h->total ? h->max : 0) / max_ratio, b64) < 0 ? -EIO : 0;
	free(b64);
	return ret;
}
