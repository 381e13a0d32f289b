/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_version.c: sealpost_version() and sealpost_strerror().
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sealpost.h"

#define CODE(e) { e, #e }

/* Every code the header's "Errors:" block names; test_documented_codes
 * fails when the header names one that is missing here. */
static const struct {
	int err;
	const char *name;
} codes[] = {
	CODE(EINVAL), CODE(ENOMEM), CODE(EMSGSIZE), CODE(ETIMEDOUT), CODE(ECONNRESET),
	CODE(ECONNREFUSED), CODE(EHOSTUNREACH), CODE(ENOENT), CODE(EACCES), CODE(EPROTO),
	CODE(EBADMSG), CODE(ENOTCONN), CODE(ENOBUFS), CODE(EADDRNOTAVAIL), CODE(E2BIG),
	CODE(EEXIST), CODE(ENAMETOOLONG), CODE(EAGAIN), CODE(EOPNOTSUPP),
	CODE(SEALPOST_ESERVERKEY), CODE(SEALPOST_EUNKNOWNHOST), CODE(SEALPOST_EKEYMODE),
	CODE(SEALPOST_EKEYFORMAT), CODE(SEALPOST_EQUEUEFULL), CODE(SEALPOST_EDEADPEER),
	CODE(SEALPOST_EACCESSMISSING), CODE(SEALPOST_EACCESSWRONG), CODE(SEALPOST_EACCESSROTATED),
	CODE(SEALPOST_EANONLIMIT), CODE(SEALPOST_EACCESSBADKEY), CODE(SEALPOST_EANONYMOUS),
	CODE(SEALPOST_EFANOUT), CODE(SEALPOST_EFANOUTMISMATCH), CODE(SEALPOST_EFANOUTLIE),
	CODE(SEALPOST_EFANOUTNONE),
};
#define NCODES (sizeof(codes) / sizeof(codes[0]))

static void test_version(void **state)
{
	char want[32];

	(void)state;
	snprintf(want, sizeof(want), "%d.%d.%d", SEALPOST_VERSION_MAJOR, SEALPOST_VERSION_MINOR,
		 SEALPOST_VERSION_PATCH);
	assert_string_equal(SEALPOST_VERSION_STRING, want);
	assert_string_equal(sealpost_version(), SEALPOST_VERSION_STRING);
	assert_int_equal(SEALPOST_VERSION_NUMBER >> 16, SEALPOST_VERSION_MAJOR);
	assert_int_equal((SEALPOST_VERSION_NUMBER >> 8) & 0xff, SEALPOST_VERSION_MINOR);
	assert_int_equal(SEALPOST_VERSION_NUMBER & 0xff, SEALPOST_VERSION_PATCH);
}

/* Each code has a text, none shares it with another, and either sign works. */
static void test_every_code_has_its_own_text(void **state)
{
	const char *unknown = sealpost_strerror(-EDOM);
	size_t i, j;

	(void)state;
	assert_string_equal(unknown, "unknown error");
	assert_string_equal(sealpost_strerror(0), "success");
	for (i = 0; i < NCODES; i++) {
		const char *t = sealpost_strerror(-codes[i].err);

		assert_non_null(t);
		if (strcmp(t, unknown) == 0 || strcmp(t, "success") == 0)
			fail_msg("-%s has no text of its own", codes[i].name);
		assert_ptr_equal(sealpost_strerror(codes[i].err), t);
		for (j = 0; j < i; j++)
			if (strcmp(t, sealpost_strerror(-codes[j].err)) == 0)
				fail_msg("-%s and -%s share a text", codes[i].name, codes[j].name);
	}
	assert_string_equal(sealpost_strerror(INT_MIN), unknown);
	assert_string_equal(sealpost_strerror(-100000), unknown);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n)
		buf[n] = '\0';
	else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* The header's "Errors:" block (up to the "Threading:" paragraph) names
 * only codes this test knows, so a newly documented code needs a text. */
static void test_documented_codes(void **state)
{
	const char *src = getenv("SP_SOURCE_DIR");
	char path[512], *h, *p, *end;
	size_t i, seen = 0;

	(void)state;
	assert_non_null(src);
	snprintf(path, sizeof(path), "%s/include/sealpost.h", src);
	h = slurp(path);
	assert_non_null(h);
	p = strstr(h, " * Errors:");
	assert_non_null(p);
	end = strstr(p, " * Threading:");
	assert_non_null(end);
	for (; p < end; p++) {
		char name[32];
		size_t n = 0;

		if (p[0] != '-' || p[1] != 'E' || !isupper((unsigned char)p[2]))
			continue;
		for (p++; p < end && n < sizeof(name) - 1 && isalnum((unsigned char)*p); p++)
			name[n++] = *p;
		name[n] = '\0';
		for (i = 0; i < NCODES; i++)
			if (strcmp(codes[i].name, name) == 0)
				break;
		if (i == NCODES)
			fail_msg("sealpost.h documents -%s, which this test does not know", name);
		seen++;
	}
	assert_true(seen > 0);
	free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_every_code_has_its_own_text),
		cmocka_unit_test(test_documented_codes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
