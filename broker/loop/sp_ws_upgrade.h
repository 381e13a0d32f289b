/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_ws_upgrade.h: the HTTP/1.1 request that opens a WebSocket (RFC 6455
 * section 4.2.1), parsed strictly and with bounds, and the answers to it.
 *
 * Pure: no I/O, no allocation, no state between calls (a caller keeps the
 * bytes received so far and parses them again as more arrive; requests are
 * small and bounded by ws-upgrade-max). What is accepted (docs/PROTOCOL.md
 * 13): "GET /v1 HTTP/1.1" (a query string after /v1 is allowed and
 * ignored), header lines "Name: value" ending in CRLF, no folded lines, no
 * control characters, at most SP_WS_UPGRADE_HEADERS_MAX of them; Host
 * present; Upgrade naming websocket and Connection naming upgrade (tokens,
 * any case); exactly one Sec-WebSocket-Key, the base64 of 16 bytes;
 * Sec-WebSocket-Version 13; sealpost.v1 among the Sec-WebSocket-Protocol
 * tokens; Origin, when present, in the allowed list. The request's end is
 * the first CRLF CRLF; bytes after it are the client's first WebSocket
 * frames (not part of the request).
 *
 * SHA-1 (for Sec-WebSocket-Accept) is OpenSSL's libcrypto, base64 is
 * libsodium's: no hand-written primitive.
 *
 * Errors: the result enum; nothing else fails.
 */
#ifndef SP_WS_UPGRADE_H
#define SP_WS_UPGRADE_H

#include <stddef.h>
#include <stdint.h>

#define SP_WS_PATH "/v1"
#define SP_WS_SUBPROTOCOL "sealpost.v1"

enum {
	SP_WS_UPGRADE_HEADERS_MAX = 64,
	SP_WS_ACCEPT_LEN = 28,          /* base64 of a 20-byte SHA-1 */
	SP_WS_RESPONSE_MAX = 256,       /* the longest answer sp_ws_upgrade_response writes */
};

enum sp_ws_upgrade_result {
	SP_WS_UP_OK = 0,                /* 101 Switching Protocols */
	SP_WS_UP_INCOMPLETE,            /* no CRLF CRLF yet: wait for more bytes */
	SP_WS_UP_BAD_REQUEST,           /* 400 */
	SP_WS_UP_NOT_FOUND,             /* 404: not /v1 */
	SP_WS_UP_BAD_VERSION,           /* 426 + Sec-WebSocket-Version: 13 */
	SP_WS_UP_BAD_PROTOCOL,          /* 400: sealpost.v1 not offered */
	SP_WS_UP_FORBIDDEN_ORIGIN,      /* 403 */
	SP_WS_UP_TOO_LARGE,             /* 431: no end within the bound */
};

struct sp_ws_upgrade {
	size_t consumed;                /* bytes of the request, CRLF CRLF included (OK only) */
	char accept[SP_WS_ACCEPT_LEN + 1]; /* Sec-WebSocket-Accept (OK only) */
};

/*
 * Parses buf[0..len) (borrowed for the call). max: the bound on the
 * request (ws-upgrade-max): without its end in the first max bytes it is
 * TOO_LARGE. origins: ws-allowed-origins (borrowed: "" none, "*" any, else
 * a comma-separated list compared without regard to case). out: filled on OK.
 */
enum sp_ws_upgrade_result sp_ws_upgrade_parse(const uint8_t *buf, size_t len, size_t max,
					      const char *origins, struct sp_ws_upgrade *out);

/*
 * Writes the answer for r (not INCOMPLETE) into out (cap bytes, at least
 * SP_WS_RESPONSE_MAX): the 101 with up's accept value for OK, else an
 * error status with Connection: close. Returns the length, 0 if cap is
 * too small.
 */
size_t sp_ws_upgrade_response(enum sp_ws_upgrade_result r, const struct sp_ws_upgrade *up,
			      char *out, size_t cap);

/* The metric label of r (sealpost_ws_upgrades_total{outcome}). */
const char *sp_ws_upgrade_name(enum sp_ws_upgrade_result r);

#endif
