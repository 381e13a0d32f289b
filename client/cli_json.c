/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_json.c: JSON output of the CLI (see cli_json.h).
 */
#include "cli_json.h"

#include <errno.h>
#include <stdlib.h>

#include <sodium.h>

/* Length of the UTF-8 sequence starting at p (at most left bytes), 0 if malformed. */
static size_t utf8_seq(const uint8_t *p, size_t left)
{
	uint8_t b = p[0], lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf)
		n = 2;
	else if (b >= 0xe0 && b <= 0xef)
		n = 3;
	else if (b >= 0xf0 && b <= 0xf4)
		n = 4;
	else
		return 0;       /* continuation byte, C0/C1 (overlong), F5+ */
	/* The second byte's range rules out overlong forms, surrogates
	 * (U+D800..DFFF) and code points above U+10FFFF. */
	if (b == 0xe0)
		lo = 0xa0;
	else if (b == 0xed)
		hi = 0x9f;
	else if (b == 0xf0)
		lo = 0x90;
	else if (b == 0xf4)
		hi = 0x8f;
	if (left < n || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

bool sp_cli_json_utf8_valid(const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t n = utf8_seq(p + i, len - i);

		if (!n)
			return false;
		i += n;
	}
	return true;
}

int sp_cli_json_write_string(FILE *f, const uint8_t *p, size_t len)
{
	size_t i = 0;

	if (!sp_cli_json_utf8_valid(p, len))
		return -EINVAL;
	putc('"', f);
	while (i < len) {
		uint8_t b = p[i];

		switch (b) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (b < 0x20 || b == 0x7f) {
				/* JSON requires escaping controls; DEL is escaped so a
				 * line is safe to show on a terminal. */
				fprintf(f, "\\u%04x", b);
			} else if (b == 0xe2 && i + 2 < len && p[i + 1] == 0x80 &&
				   (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)) {
				/* U+2028/U+2029 are valid JSON but end a line in
				 * JavaScript; escaped, the output is one line for both. */
				fprintf(f, "\\u%04x", 0x2028 + p[i + 2] - 0xa8);
				i += 3;
				continue;
			} else {
				putc(b, f);
			}
		}
		i++;
	}
	putc('"', f);
	return ferror(f) ? -EIO : 0;
}

int sp_cli_json_write_message(FILE *f, const char *sender_hex, uint64_t seq, const uint8_t *msg,
			      size_t len)
{
	fprintf(f, "{\"sender\":\"%s\",\"seq\":%llu,\"size\":%zu,", sender_hex,
		(unsigned long long)seq, len);
	if (sp_cli_json_utf8_valid(msg, len)) {
		fputs("\"encoding\":\"utf-8\",\"message\":", f);
		sp_cli_json_write_string(f, msg, len);
	} else {
		size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
		char *b64 = malloc(cap);

		if (!b64)
			return -ENOMEM;
		sodium_bin2base64(b64, cap, msg, len, sodium_base64_VARIANT_ORIGINAL);
		fprintf(f, "\"encoding\":\"base64\",\"message\":\"%s\"", b64);
		free(b64);
	}
	fputs("}\n", f);
	return ferror(f) ? -EIO : 0;
}
