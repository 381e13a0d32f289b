/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_cli_json.c: the CLI's hand-written JSON encoder (client/cli_json.c).
 * Every output is parsed back with jansson and must give the exact input:
 * fixed cases, every single code point class, and random byte strings.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "cli_json.h"

/* Encodes p as a JSON string and parses it back; the bytes it decodes to. */
static json_t *roundtrip(const uint8_t *p, size_t len, char **text)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	json_error_t err;
	json_t *v;

	assert_non_null(f);
	assert_int_equal(sp_cli_json_write_string(f, p, len), 0);
	assert_int_equal(fclose(f), 0);
	v = json_loadb(buf, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
	if (!v)
		fail_msg("not JSON (%s): %s", err.text, buf);
	assert_true(json_is_string(v));
	if (text)
		*text = buf;
	else
		free(buf);
	return v;
}

static void check_same(const uint8_t *p, size_t len)
{
	char *text;
	json_t *v = roundtrip(p, len, &text);
	size_t i;

	assert_int_equal(json_string_length(v), len);
	assert_memory_equal(json_string_value(v), p, len);
	/* One line, and nothing a terminal would act on. */
	for (i = 0; text[i]; i++)
		assert_true((uint8_t)text[i] >= 0x20 && text[i] != 0x7f);
	json_decref(v);
	free(text);
}

static void test_escapes(void **state)
{
	static const char *const cases[] = {
		"", "a", "\"", "\\", "/", "\b\f\n\r\t", "\x01\x1f\x7f", "\xc3\xa9",
		"\xe2\x82\xac", "\xf0\x9f\x93\xac", "\xe2\x80\xa8\xe2\x80\xa9", "\xef\xbf\xbf",
		"\xf4\x8f\xbf\xbf", "end\\",
	};
	char *text;
	json_t *v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_same((const uint8_t *)cases[i], strlen(cases[i]));
	/* NUL is a code point like any other. */
	check_same((const uint8_t *)"a\0b", 3);
	/* The exact forms. */
	v = roundtrip((const uint8_t *)"\"\\\n\x01\x7f\xe2\x80\xa8", 8, &text);
	assert_string_equal(text, "\"\\\"\\\\\\n\\u0001\\u007f\\u2028\"");
	json_decref(v);
	free(text);
}

static void test_utf8_validation(void **state)
{
	static const struct { const char *s; size_t len; } bad[] = {
		{ "\x80", 1 },                   /* lone continuation */
		{ "\xc0\xaf", 2 },               /* overlong '/' */
		{ "\xc1\xbf", 2 },               /* overlong */
		{ "\xe0\x80\xaf", 3 },           /* overlong 3-byte */
		{ "\xf0\x80\x80\xaf", 4 },       /* overlong 4-byte */
		{ "\xed\xa0\x80", 3 },           /* surrogate U+D800 */
		{ "\xed\xbf\xbf", 3 },           /* surrogate U+DFFF */
		{ "\xf4\x90\x80\x80", 4 },       /* U+110000 */
		{ "\xf5\x80\x80\x80", 4 },
		{ "\xff", 1 },
		{ "\xc3", 1 },                   /* truncated */
		{ "\xe2\x82", 2 },
		{ "\xf0\x9f\x93", 3 },
		{ "\xc3\x28", 2 },               /* bad continuation */
	};
	FILE *f = fopen("/dev/null", "w");
	size_t i;

	(void)state;
	assert_non_null(f);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(sp_cli_json_utf8_valid((const uint8_t *)bad[i].s, bad[i].len));
		assert_int_equal(sp_cli_json_write_string(f, (const uint8_t *)bad[i].s, bad[i].len),
				 -EINVAL);
	}
	assert_true(sp_cli_json_utf8_valid((const uint8_t *)"\xed\x9f\xbf", 3));   /* U+D7FF */
	assert_true(sp_cli_json_utf8_valid((const uint8_t *)"\xee\x80\x80", 3));   /* U+E000 */
	assert_true(sp_cli_json_utf8_valid((const uint8_t *)"\xf0\x90\x80\x80", 4));
	fclose(f);
}

/* Every code point from U+0000 to U+10FFFF (surrogates excluded), encoded
 * by jansson and then by us: the round trip gives it back. */
static void test_all_code_points(void **state)
{
	uint8_t *buf = malloc(4 * 0x110000);
	size_t n = 0;
	uint32_t cp;

	(void)state;
	assert_non_null(buf);
	for (cp = 0; cp < 0x110000; cp++) {
		if (cp >= 0xd800 && cp <= 0xdfff)
			continue;
		if (cp < 0x80) {
			buf[n++] = (uint8_t)cp;
		} else if (cp < 0x800) {
			buf[n++] = (uint8_t)(0xc0 | cp >> 6);
			buf[n++] = (uint8_t)(0x80 | (cp & 0x3f));
		} else if (cp < 0x10000) {
			buf[n++] = (uint8_t)(0xe0 | cp >> 12);
			buf[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
			buf[n++] = (uint8_t)(0x80 | (cp & 0x3f));
		} else {
			buf[n++] = (uint8_t)(0xf0 | cp >> 18);
			buf[n++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
			buf[n++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
			buf[n++] = (uint8_t)(0x80 | (cp & 0x3f));
		}
	}
	assert_true(sp_cli_json_utf8_valid(buf, n));
	check_same(buf, n);
	free(buf);
}

/* Random bytes: whatever is valid UTF-8 round-trips as a string; every
 * message round-trips through write_message (base64 when not UTF-8). */
static void test_random_messages(void **state)
{
	uint8_t msg[64], bin[64];
	char hex[65];
	int i;

	(void)state;
	memset(hex, 'a', 64);
	hex[64] = '\0';
	for (i = 0; i < 20000; i++) {
		size_t len = randombytes_uniform(sizeof(msg) + 1), k, got;
		char *buf = NULL;
		size_t n = 0;
		FILE *f;
		json_t *o, *m;
		json_error_t err;
		const char *enc;

		randombytes_buf(msg, len);
		/* Mostly ASCII so that valid UTF-8 is common too. */
		if (i % 2)
			for (k = 0; k < len; k++)
				msg[k] &= 0x7f;
		f = open_memstream(&buf, &n);
		assert_non_null(f);
		assert_int_equal(sp_cli_json_write_message(f, hex, (uint64_t)i, msg, len), 0);
		assert_int_equal(fclose(f), 0);
		assert_true(n > 0 && buf[n - 1] == '\n');
		assert_null(memchr(buf, '\n', n - 1));
		o = json_loadb(buf, n, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &err);
		if (!o)
			fail_msg("not JSON (%s): %s", err.text, buf);
		assert_string_equal(json_string_value(json_object_get(o, "sender")), hex);
		assert_int_equal(json_integer_value(json_object_get(o, "seq")), i);
		assert_int_equal(json_integer_value(json_object_get(o, "size")), len);
		enc = json_string_value(json_object_get(o, "encoding"));
		m = json_object_get(o, "message");
		assert_non_null(enc);
		if (!strcmp(enc, "utf-8")) {
			assert_true(sp_cli_json_utf8_valid(msg, len));
			assert_int_equal(json_string_length(m), len);
			assert_memory_equal(json_string_value(m), msg, len);
		} else {
			assert_string_equal(enc, "base64");
			assert_false(sp_cli_json_utf8_valid(msg, len));
			assert_int_equal(sodium_base642bin(bin, sizeof(bin), json_string_value(m),
							   json_string_length(m), NULL, &got, NULL,
							   sodium_base64_VARIANT_ORIGINAL), 0);
			assert_int_equal(got, len);
			assert_memory_equal(bin, msg, len);
		}
		json_decref(o);
		free(buf);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_utf8_validation),
		cmocka_unit_test(test_all_code_points),
		cmocka_unit_test(test_random_messages),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
