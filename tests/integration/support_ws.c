/* SPDX-License-Identifier: Apache-2.0 */
/*
 * support_ws.c: a WebSocket client for integration tests (support_ws.h).
 */
#include "support_ws.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "sp_clock.h"

enum { RESPONSE_MAX = 4096, FRAME_HDR_MAX = 14 };

static int64_t now_ms(void)
{
	return (int64_t)sp_clock_mono_ms();
}

static int expected_accept(const char *key, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	char in[128];
	int n = snprintf(in, sizeof(in), "%s%s", key, guid);

	if (EVP_Digest(in, (size_t)n, md, &md_len, EVP_sha1(), NULL) != 1)
		return -EINVAL;
	sodium_bin2base64(out, 29, md, md_len, sodium_base64_VARIANT_ORIGINAL);
	return 0;
}

/* The answer's status line and headers (up to CRLF CRLF), NUL-terminated. */
static int read_response(struct sp_raw *c, char *buf, size_t cap, int64_t deadline)
{
	size_t n = 0;

	while (n + 1 < cap) {
		int ret = sp_raw_sock_read(c, (uint8_t *)buf + n, 1, deadline);

		if (ret)
			return ret;
		n++;
		buf[n] = '\0';
		if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0)
			return 0;
	}
	return -EMSGSIZE;
}

int sp_ws_connect(struct sp_raw *c, uint16_t port, const struct sp_ws_request *req, int *status)
{
	static const struct sp_ws_request honest = { 0 };
	char request[16384], response[RESPONSE_MAX], key[25], want[29];
	unsigned char nonce[16];
	const char *proto;
	int ret, n;

	if (!req)
		req = &honest;
	*status = 0;
	ret = sp_raw_connect(c, port);
	if (ret)
		return ret;
	randombytes_buf(nonce, sizeof(nonce));
	sodium_bin2base64(key, sizeof(key), nonce, sizeof(nonce), sodium_base64_VARIANT_ORIGINAL);
	proto = req->protocol ? req->protocol : "sealpost.v1";
	if (req->raw) {
		ret = sp_raw_sock_send(c, (const uint8_t *)req->raw,
				       req->raw_len ? req->raw_len : strlen(req->raw));
	} else {
		n = snprintf(request, sizeof(request),
			     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUpgrade: websocket\r\n"
			     "Connection: Upgrade\r\n%s%s%sSec-WebSocket-Version: %s\r\n"
			     "%s%s%s%s%s%s\r\n",
			     req->path ? req->path : "/v1", (unsigned)port,
			     req->no_key ? "" : "Sec-WebSocket-Key: ", req->no_key ? "" : key,
			     req->no_key ? "" : "\r\n", req->version ? req->version : "13",
			     *proto ? "Sec-WebSocket-Protocol: " : "", proto, *proto ? "\r\n" : "",
			     req->origin ? "Origin: " : "", req->origin ? req->origin : "",
			     req->origin ? "\r\n" : "");
		if (req->extra && (size_t)n + strlen(req->extra) < sizeof(request)) {
			/* Before the final CRLF. */
			memmove(request + n - 2 + strlen(req->extra), request + n - 2, 3);
			memcpy(request + n - 2, req->extra, strlen(req->extra));
			n += (int)strlen(req->extra);
		}
		ret = sp_raw_sock_send(c, (const uint8_t *)request, (size_t)n);
	}
	if (ret)
		return ret;
	ret = read_response(c, response, sizeof(response), now_ms() + SP_RAW_TIMEOUT_MS);
	if (ret)
		return ret;
	if (sscanf(response, "HTTP/1.1 %d ", status) != 1)
		return -EPROTO;
	if (*status != 101)
		return 0;
	if (expected_accept(key, want))
		return -EPROTO;
	if (!strstr(response, want) || !strstr(response, "Sec-WebSocket-Protocol: sealpost.v1\r\n")) {
		fprintf(stderr, "[ws] bad 101: %s\n", response);
		return -EPROTO;
	}
	c->ws = true;
	c->ws_close_code = 0;
	return 0;
}

int sp_ws_open(struct sp_raw *c, uint16_t port, uint8_t pattern, const uint8_t *server_pub)
{
	int status, ret;

	if (!c->rx) {
		ret = sp_raw_init(c);
		if (ret)
			return ret;
	}
	ret = sp_ws_connect(c, port, NULL, &status);
	if (ret)
		return ret;
	if (status != 101)
		return -EPROTO;
	return sp_raw_handshake(c, pattern, server_pub, NULL);
}

static size_t put_header(uint8_t *h, bool fin, uint8_t opcode, uint64_t len, const uint8_t mask[4])
{
	size_t n = 2;

	h[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
	if (len < 126) {
		h[1] = (uint8_t)(0x80 | len);
	} else if (len <= 0xffff) {
		h[1] = 0x80 | 126;
		h[2] = (uint8_t)(len >> 8);
		h[3] = (uint8_t)len;
		n = 4;
	} else {
		h[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
		n = 10;
	}
	memcpy(h + n, mask, 4);
	return n + 4;
}

int sp_ws_send_header(struct sp_raw *c, bool fin, uint8_t opcode, uint64_t len)
{
	uint8_t h[FRAME_HDR_MAX], mask[4];

	randombytes_buf(mask, sizeof(mask));
	return sp_raw_sock_send(c, h, put_header(h, fin, opcode, len, mask));
}

int sp_ws_send_frame(struct sp_raw *c, bool fin, uint8_t opcode, const uint8_t *p, size_t len)
{
	uint8_t mask[4], *f = malloc(FRAME_HDR_MAX + len);
	size_t h;
	int ret;

	if (!f)
		return -ENOMEM;
	randombytes_buf(mask, sizeof(mask));
	h = put_header(f, fin, opcode, len, mask);
	for (size_t i = 0; i < len; i++)
		f[h + i] = p[i] ^ mask[i & 3];
	ret = sp_raw_sock_send(c, f, h + len);
	free(f);
	return ret;
}

int sp_ws_send_binary(struct sp_raw *c, const uint8_t *p, size_t len)
{
	size_t frag = c->ws_fragment ? c->ws_fragment : len, off = 0;
	uint8_t op = SP_WS_OP_BINARY;
	int ret;

	do {
		size_t n = len - off < frag ? len - off : frag;

		ret = sp_ws_send_frame(c, off + n == len, op, p + off, n);
		if (ret)
			return ret;
		op = SP_WS_OP_CONT;
		off += n;
	} while (off < len);
	return 0;
}

int sp_ws_recv_frame(struct sp_raw *c, uint8_t *opcode, bool *fin, uint8_t *buf, size_t cap,
		     size_t *len, int timeout_ms)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : SP_RAW_TIMEOUT_MS);
	uint8_t h[8];
	uint64_t n;
	int ret;

	ret = sp_raw_sock_read(c, h, 2, deadline);
	if (ret)
		return ret;
	if (h[1] & 0x80)
		return -EPROTO;         /* servers do not mask */
	*opcode = h[0] & 0x0f;
	*fin = h[0] & 0x80;
	n = h[1] & 0x7f;
	if (n == 126) {
		ret = sp_raw_sock_read(c, h, 2, deadline);
		n = (uint64_t)h[0] << 8 | h[1];
	} else if (n == 127) {
		ret = sp_raw_sock_read(c, h, 8, deadline);
		n = 0;
		for (int i = 0; i < 8; i++)
			n = n << 8 | h[i];
	}
	if (ret)
		return ret;
	if (n > cap)
		return -EPROTO;
	*len = (size_t)n;
	return n ? sp_raw_sock_read(c, buf, (size_t)n, deadline) : 0;
}

static uint16_t close_code_of(const uint8_t *p, size_t n)
{
	return n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 1005;
}

int sp_ws_read_payload(struct sp_raw *c, uint8_t *buf, size_t len, int64_t deadline)
{
	static uint8_t frame[SP_RAW_RX_CAP + 64];

	while (len) {
		uint8_t op;
		bool fin;
		size_t n;
		int ret;

		if (c->ws_in_off < c->ws_in_len) {
			size_t take = c->ws_in_len - c->ws_in_off < len ? c->ws_in_len - c->ws_in_off : len;

			memcpy(buf, c->ws_in + c->ws_in_off, take);
			c->ws_in_off += take;
			buf += take;
			len -= take;
			continue;
		}
		if (c->ws_close_code)
			return -ENOTCONN;
		if (deadline - now_ms() <= 0)
			return -ETIMEDOUT;
		ret = sp_ws_recv_frame(c, &op, &fin, frame, sizeof(frame), &n, (int)(deadline - now_ms()));
		if (ret)
			return ret;
		if (op == SP_WS_OP_PING) {
			ret = sp_ws_send_frame(c, true, SP_WS_OP_PONG, frame, n);
			if (ret)
				return ret;
		} else if (op == SP_WS_OP_CLOSE) {
			c->ws_close_code = close_code_of(frame, n);
		} else if (op == SP_WS_OP_BINARY || op == SP_WS_OP_CONT) {
			uint8_t *in = realloc(c->ws_in, n ? n : 1);

			if (!in)
				return -ENOMEM;
			memcpy(in, frame, n);
			c->ws_in = in;
			c->ws_in_len = n;
			c->ws_in_off = 0;
		} else if (op != SP_WS_OP_PONG) {
			return -EPROTO;
		}
	}
	return 0;
}

int sp_ws_expect_close(struct sp_raw *c, uint16_t *code, int timeout_ms)
{
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : SP_RAW_TIMEOUT_MS);
	static uint8_t frame[SP_RAW_RX_CAP + 64];
	uint8_t reply[2];
	int ret;

	while (!c->ws_close_code) {
		uint8_t op;
		bool fin;
		size_t n;

		if (deadline - now_ms() <= 0)
			return -ETIMEDOUT;
		ret = sp_ws_recv_frame(c, &op, &fin, frame, sizeof(frame), &n, (int)(deadline - now_ms()));
		if (ret)
			return ret;
		if (op == SP_WS_OP_CLOSE)
			c->ws_close_code = close_code_of(frame, n);
		else if (op == SP_WS_OP_PING)
			sp_ws_send_frame(c, true, SP_WS_OP_PONG, frame, n);
	}
	*code = c->ws_close_code;
	reply[0] = (uint8_t)(*code >> 8);
	reply[1] = (uint8_t)*code;
	sp_ws_send_frame(c, true, SP_WS_OP_CLOSE, reply, *code == 1005 ? 0 : 2);
	c->ws_in_len = c->ws_in_off = 0;
	return sp_raw_wait_closed(c, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 1), NULL);
}
