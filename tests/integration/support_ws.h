/* SPDX-License-Identifier: Apache-2.0 */
/*
 * support_ws.h: a WebSocket client for integration tests (RFC 6455 client
 * side), on the raw protocol client (support_raw.h): after sp_ws_open the
 * struct sp_raw speaks the sealpost protocol through binary messages, so
 * every sp_raw_* call (handshakes, envelopes, bad input) works over ws.
 *
 * Written by hand, apart from the broker's wslay, so a framing bug in one
 * cannot hide in the other; and it can send what a correct client never
 * would (any request, text, fragments, oversized frames, bad opcodes).
 *
 * Errors as support_raw.h; -EPROTO for a reply that is not HTTP or not a
 * frame.
 */
#ifndef SP_IT_SUPPORT_WS_H
#define SP_IT_SUPPORT_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "support_raw.h"

/* What the upgrade request says; NULL fields take the honest value. */
struct sp_ws_request {
	const char *path;               /* "/v1" */
	const char *version;            /* "13" */
	const char *protocol;           /* "sealpost.v1"; "" = no header */
	const char *origin;             /* NULL = no Origin header */
	bool no_key;                    /* leave Sec-WebSocket-Key out */
	const char *extra;              /* more header lines, each ending in \r\n */
	const char *raw;                /* send exactly this instead of a request */
	size_t raw_len;                 /* bytes of raw (0: strlen) */
};

enum { SP_WS_OP_CONT = 0, SP_WS_OP_TEXT = 1, SP_WS_OP_BINARY = 2, SP_WS_OP_CLOSE = 8,
       SP_WS_OP_PING = 9, SP_WS_OP_PONG = 10 };

/*
 * TCP connect to 127.0.0.1:port and send the upgrade request (req may be
 * NULL). *status: the HTTP status of the answer. On 101 (with the right
 * Sec-WebSocket-Accept and subprotocol, else -EPROTO) c is in WebSocket
 * mode; on another status the socket stays open for the test to watch.
 */
int sp_ws_connect(struct sp_raw *c, uint16_t port, const struct sp_ws_request *req, int *status);

/* sp_raw_init (if needed) + sp_ws_connect (honest) + sp_raw_handshake. */
int sp_ws_open(struct sp_raw *c, uint16_t port, uint8_t pattern, const uint8_t *server_pub);

/* One masked frame (any opcode, fin as given, payload borrowed). */
int sp_ws_send_frame(struct sp_raw *c, bool fin, uint8_t opcode, const uint8_t *p, size_t len);
/* A frame header announcing len payload bytes, without the payload. */
int sp_ws_send_header(struct sp_raw *c, bool fin, uint8_t opcode, uint64_t len);
/* p as one binary message (fragments of c->ws_fragment bytes if set). */
int sp_ws_send_binary(struct sp_raw *c, const uint8_t *p, size_t len);

/*
 * One frame from the broker: opcode, fin, payload into buf (cap bytes,
 * *len its length). -EPROTO for a masked frame or one above cap.
 */
int sp_ws_recv_frame(struct sp_raw *c, uint8_t *opcode, bool *fin, uint8_t *buf, size_t cap,
		     size_t *len, int timeout_ms);

/* Exactly len bytes of binary payload (sp_raw's reads in ws mode): pings
 * are answered, a close is recorded (-ENOTCONN). */
int sp_ws_read_payload(struct sp_raw *c, uint8_t *buf, size_t len, int64_t deadline);

/*
 * Reads frames until the broker's close frame (binary payload skipped,
 * pings answered), answers it, and waits for the TCP close. *code: its
 * status code (1005 if none). 0, or -ENOTCONN if the socket closed with no
 * close frame, -ETIMEDOUT.
 */
int sp_ws_expect_close(struct sp_raw *c, uint16_t *code, int timeout_ms);

#endif
