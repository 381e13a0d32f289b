/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ws_upgrade.c: the WebSocket upgrade parser and its answers
 * (broker/loop/sp_ws_upgrade.c): RFC 6455's own example key, every
 * refusal, the bounds, the origin list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sp_ws_upgrade.h"

#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define BASE "Host: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" KEY \
	     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sealpost.v1\r\n"

static enum sp_ws_upgrade_result parse(const char *req, const char *origins,
				       struct sp_ws_upgrade *up)
{
	return sp_ws_upgrade_parse((const uint8_t *)req, strlen(req), 8192, origins, up);
}

static void test_rfc_example(void **state)
{
	struct sp_ws_upgrade up;
	char out[SP_WS_RESPONSE_MAX];
	const char *req = "GET /v1 HTTP/1.1\r\n" BASE "\r\nFRAMES";
	size_t n;

	(void)state;
	assert_int_equal(parse(req, "", &up), SP_WS_UP_OK);
	/* RFC 6455 section 1.3's worked example. */
	assert_string_equal(up.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	assert_int_equal(up.consumed, strlen(req) - strlen("FRAMES"));
	n = sp_ws_upgrade_response(SP_WS_UP_OK, &up, out, sizeof(out));
	assert_true(n > 0);
	assert_non_null(strstr(out, "HTTP/1.1 101 Switching Protocols\r\n"));
	assert_non_null(strstr(out, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
	assert_non_null(strstr(out, "Sec-WebSocket-Protocol: sealpost.v1\r\n"));
	assert_memory_equal(out + n - 4, "\r\n\r\n", 4);
}

static void test_lenient_where_allowed(void **state)
{
	struct sp_ws_upgrade up;

	(void)state;
	/* Query string, header case, token lists, several protocols. */
	assert_int_equal(parse("GET /v1?t=1 HTTP/1.1\r\nhost: b\r\nUPGRADE: WebSocket\r\n"
			       "connection: keep-alive, Upgrade\r\n" KEY
			       "sec-websocket-version:13\r\n"
			       "Sec-WebSocket-Protocol: chat, sealpost.v1\r\n\r\n", "", &up),
			 SP_WS_UP_OK);
}

static void test_refusals(void **state)
{
	static const struct {
		const char *req;
		enum sp_ws_upgrade_result r;
	} cases[] = {
		{ "GET /v2 HTTP/1.1\r\n" BASE "\r\n", SP_WS_UP_NOT_FOUND },
		{ "GET /v1x HTTP/1.1\r\n" BASE "\r\n", SP_WS_UP_NOT_FOUND },
		{ "GET / HTTP/1.1\r\n" BASE "\r\n", SP_WS_UP_NOT_FOUND },
		{ "POST /v1 HTTP/1.1\r\n" BASE "\r\n", SP_WS_UP_BAD_REQUEST },
		{ "GET /v1 HTTP/1.0\r\n" BASE "\r\n", SP_WS_UP_BAD_REQUEST },
		{ "GET v1 HTTP/1.1\r\n" BASE "\r\n", SP_WS_UP_BAD_REQUEST },
		{ "GET /v1 HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sealpost.v1\r\n\r\n",
		  SP_WS_UP_BAD_REQUEST },       /* no key */
		{ "GET /v1 HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n"
		  "Sec-WebSocket-Protocol: sealpost.v1\r\n\r\n", SP_WS_UP_BAD_REQUEST }, /* short key */
		{ "GET /v1 HTTP/1.1\r\n" BASE KEY "\r\n", SP_WS_UP_BAD_REQUEST }, /* two keys */
		{ "GET /v1 HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" KEY
		  "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Protocol: sealpost.v1\r\n\r\n",
		  SP_WS_UP_BAD_VERSION },
		{ "GET /v1 HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" KEY
		  "Sec-WebSocket-Version: 13\r\n\r\n", SP_WS_UP_BAD_PROTOCOL },
		{ "GET /v1 HTTP/1.1\r\nHost: b\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n" KEY
		  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sealpost.v1\r\n\r\n",
		  SP_WS_UP_BAD_REQUEST },
		{ "GET /v1 HTTP/1.1\r\n" BASE "X: 1\r\n folded\r\n\r\n", SP_WS_UP_BAD_REQUEST },
		{ "GET /v1 HTTP/1.1\r\n" BASE "Bad Name: 1\r\n\r\n", SP_WS_UP_BAD_REQUEST },
		{ "GET /v1 HTTP/1.1\r\n" BASE "X: a\x01" "b\r\n\r\n", SP_WS_UP_BAD_REQUEST },
		{ "GET /v1 HTTP/1.1\n" BASE "\r\n", SP_WS_UP_BAD_REQUEST },
		{ "GET /v1 HTTP/1.1\r\n" BASE "Origin: https://evil.example\r\n\r\n",
		  SP_WS_UP_FORBIDDEN_ORIGIN },
		{ "\r\n\r\n", SP_WS_UP_BAD_REQUEST },
	};
	struct sp_ws_upgrade up;
	char out[SP_WS_RESPONSE_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum sp_ws_upgrade_result r = parse(cases[i].req, "https://app.example", &up);

		if (r != cases[i].r)
			print_error("case %zu: %s, want %s\n", i, sp_ws_upgrade_name(r),
				    sp_ws_upgrade_name(cases[i].r));
		assert_int_equal(r, cases[i].r);
		assert_true(sp_ws_upgrade_response(r, &up, out, sizeof(out)) > 0);
		assert_non_null(strstr(out, "Connection: close\r\n"));
	}
	sp_ws_upgrade_response(SP_WS_UP_BAD_VERSION, &up, out, sizeof(out));
	assert_non_null(strstr(out, "426"));
	assert_non_null(strstr(out, "Sec-WebSocket-Version: 13\r\n"));
}

static void test_bounds(void **state)
{
	const char *req = "GET /v1 HTTP/1.1\r\n" BASE "\r\n";
	struct sp_ws_upgrade up;
	size_t n = strlen(req);

	(void)state;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(sp_ws_upgrade_parse((const uint8_t *)req, i, 8192, "", &up),
				 SP_WS_UP_INCOMPLETE);
	assert_int_equal(sp_ws_upgrade_parse((const uint8_t *)req, n, n, "", &up), SP_WS_UP_OK);
	/* The end must lie within the bound. */
	assert_int_equal(sp_ws_upgrade_parse((const uint8_t *)req, n, n - 1, "", &up),
			 SP_WS_UP_TOO_LARGE);
	assert_int_equal(sp_ws_upgrade_parse((const uint8_t *)req, n - 2, n - 2, "", &up),
			 SP_WS_UP_TOO_LARGE);
}

static void test_origins(void **state)
{
	const char *req = "GET /v1 HTTP/1.1\r\n" BASE "Origin: https://b.example:8443\r\n\r\n";
	struct sp_ws_upgrade up;

	(void)state;
	assert_int_equal(parse(req, "", &up), SP_WS_UP_FORBIDDEN_ORIGIN);
	assert_int_equal(parse(req, "https://b.example", &up), SP_WS_UP_FORBIDDEN_ORIGIN);
	assert_int_equal(parse(req, "https://a.example,https://b.example:8443", &up), SP_WS_UP_OK);
	assert_int_equal(parse(req, "HTTPS://B.EXAMPLE:8443", &up), SP_WS_UP_OK);
	assert_int_equal(parse(req, "*", &up), SP_WS_UP_OK);
	/* No Origin: not a browser; the check protects browsers' users. */
	assert_int_equal(parse("GET /v1 HTTP/1.1\r\n" BASE "\r\n", "", &up), SP_WS_UP_OK);
	/* Two Origin headers: refused, not guessed. */
	assert_int_equal(parse("GET /v1 HTTP/1.1\r\n" BASE "Origin: https://a.example\r\n"
			       "Origin: https://a.example\r\n\r\n", "*", &up), SP_WS_UP_BAD_REQUEST);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_example),
		cmocka_unit_test(test_lenient_where_allowed),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_origins),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
