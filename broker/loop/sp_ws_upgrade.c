/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_ws_upgrade.c: the WebSocket opening handshake, server side
 * (sp_ws_upgrade.h).
 */
#include "sp_ws_upgrade.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

/* RFC 6455 section 1.3: appended to the key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

enum { KEY_B64_LEN = 24, KEY_LEN = 16 };

struct span {
	const char *p;
	size_t n;
};

static int lower(int ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch;
}

/* s (n bytes) equals the NUL-terminated lit, ignoring ASCII case. */
static bool ieq(struct span s, const char *lit)
{
	size_t n = strlen(lit);

	if (s.n != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)s.p[i]) != lower((unsigned char)lit[i]))
			return false;
	return true;
}

/* RFC 9110 token characters (header names, list tokens). */
static bool tchar(int ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static struct span trim(struct span s)
{
	while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
		s.p++;
		s.n--;
	}
	while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t'))
		s.n--;
	return s;
}

/* Does the comma-separated list v hold tok (any case)? sep: the separator. */
static bool list_has(struct span v, const char *tok, char sep)
{
	while (v.n) {
		const char *c = memchr(v.p, sep, v.n);
		size_t n = c ? (size_t)(c - v.p) : v.n;

		if (ieq(trim((struct span){ v.p, n }), tok))
			return true;
		if (!c)
			break;
		v.p += n + 1;
		v.n -= n + 1;
	}
	return false;
}

/* origins: "" none, "*" any, else a comma-separated list. */
static bool origin_allowed(struct span origin, const char *origins)
{
	char one[256];
	const char *p = origins;

	if (strcmp(origins, "*") == 0)
		return true;
	while (*p) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);

		if (n && n < sizeof(one)) {
			memcpy(one, p, n);
			one[n] = '\0';
			if (ieq(origin, one))
				return true;
		}
		if (!c)
			break;
		p = c + 1;
	}
	return false;
}

/* The end of the request (after CRLF CRLF) within buf[0..n), or 0. */
static size_t request_end(const uint8_t *buf, size_t n)
{
	for (size_t i = 3; i < n; i++)
		if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
			return i + 1;
	return 0;
}

/* "GET /v1[?query] HTTP/1.1": OK, NOT_FOUND (another path) or BAD_REQUEST. */
static enum sp_ws_upgrade_result request_line(struct span l)
{
	static const char get[] = "GET ", ver[] = " HTTP/1.1";
	size_t plen = sizeof(SP_WS_PATH) - 1;
	struct span target;

	if (l.n < sizeof(get) - 1 + 1 + sizeof(ver) - 1 || memcmp(l.p, get, sizeof(get) - 1) != 0 ||
	    memcmp(l.p + l.n - (sizeof(ver) - 1), ver, sizeof(ver) - 1) != 0)
		return SP_WS_UP_BAD_REQUEST;
	target.p = l.p + sizeof(get) - 1;
	target.n = l.n - (sizeof(get) - 1) - (sizeof(ver) - 1);
	if (target.p[0] != '/')
		return SP_WS_UP_BAD_REQUEST;
	for (size_t i = 0; i < target.n; i++)
		if ((unsigned char)target.p[i] <= 0x20 || (unsigned char)target.p[i] >= 0x7f)
			return SP_WS_UP_BAD_REQUEST;
	if (target.n < plen || memcmp(target.p, SP_WS_PATH, plen) != 0 ||
	    (target.n > plen && target.p[plen] != '?'))
		return SP_WS_UP_NOT_FOUND;
	return SP_WS_UP_OK;
}

struct seen {
	unsigned host, upgrade, connection, key, version, origin;
	bool websocket, upgrade_tok, protocol;
	struct span key_v, version_v, origin_v;
};

/* One "Name: value" line (no CRLF). */
static enum sp_ws_upgrade_result header(struct span l, struct seen *s)
{
	const char *colon = memchr(l.p, ':', l.n);
	struct span name, v;

	if (!colon || colon == l.p)
		return SP_WS_UP_BAD_REQUEST;
	name = (struct span){ l.p, (size_t)(colon - l.p) };
	for (size_t i = 0; i < name.n; i++)
		if (!tchar((unsigned char)name.p[i]))
			return SP_WS_UP_BAD_REQUEST;  /* also a space before the colon */
	v = (struct span){ colon + 1, l.n - name.n - 1 };
	for (size_t i = 0; i < v.n; i++) {
		unsigned char ch = (unsigned char)v.p[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return SP_WS_UP_BAD_REQUEST;
	}
	v = trim(v);
	if (ieq(name, "host")) {
		s->host++;
	} else if (ieq(name, "upgrade")) {
		s->upgrade++;
		s->websocket |= list_has(v, "websocket", ',');
	} else if (ieq(name, "connection")) {
		s->connection++;
		s->upgrade_tok |= list_has(v, "upgrade", ',');
	} else if (ieq(name, "sec-websocket-key")) {
		s->key++;
		s->key_v = v;
	} else if (ieq(name, "sec-websocket-version")) {
		s->version++;
		s->version_v = v;
	} else if (ieq(name, "sec-websocket-protocol")) {
		s->protocol |= list_has(v, SP_WS_SUBPROTOCOL, ',');
	} else if (ieq(name, "origin")) {
		s->origin++;
		s->origin_v = v;
	}
	return SP_WS_UP_OK;
}

/* The key is the base64 of 16 bytes: exactly 24 characters. */
static bool key_valid(struct span k)
{
	unsigned char bin[KEY_LEN + 2];
	size_t bin_len = 0;
	char text[KEY_B64_LEN + 1];

	if (k.n != KEY_B64_LEN)
		return false;
	memcpy(text, k.p, k.n);
	text[k.n] = '\0';
	if (sodium_base642bin(bin, sizeof(bin), text, k.n, NULL, &bin_len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		return false;
	return bin_len == KEY_LEN;
}

/* Sec-WebSocket-Accept = base64(SHA-1(key || GUID)). */
static bool accept_value(struct span k, char out[SP_WS_ACCEPT_LEN + 1])
{
	unsigned char in[KEY_B64_LEN + sizeof(ws_guid)], md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	memcpy(in, k.p, k.n);
	memcpy(in + k.n, ws_guid, sizeof(ws_guid) - 1);
	if (EVP_Digest(in, k.n + sizeof(ws_guid) - 1, md, &md_len, EVP_sha1(), NULL) != 1 ||
	    md_len != 20)
		return false;
	sodium_bin2base64(out, SP_WS_ACCEPT_LEN + 1, md, md_len, sodium_base64_VARIANT_ORIGINAL);
	return true;
}

enum sp_ws_upgrade_result sp_ws_upgrade_parse(const uint8_t *buf, size_t len, size_t max,
					      const char *origins, struct sp_ws_upgrade *out)
{
	size_t end = request_end(buf, len < max ? len : max), off = 0;
	enum sp_ws_upgrade_result r, path;
	struct seen s = { 0 };
	unsigned lines = 0;

	if (end == 0)
		return len >= max ? SP_WS_UP_TOO_LARGE : SP_WS_UP_INCOMPLETE;
	/* Line by line, each ending in CRLF; a lone CR or LF is malformed. */
	path = SP_WS_UP_BAD_REQUEST;
	while (off < end - 2) {
		const uint8_t *lf = memchr(buf + off, '\n', end - off);
		struct span l;

		if (!lf || lf == buf + off || lf[-1] != '\r')
			return SP_WS_UP_BAD_REQUEST;
		l = (struct span){ (const char *)buf + off, (size_t)(lf - (buf + off)) - 1 };
		if (memchr(l.p, '\r', l.n))
			return SP_WS_UP_BAD_REQUEST;
		if (lines == 0) {
			path = request_line(l);
			if (path == SP_WS_UP_BAD_REQUEST)
				return path;
		} else {
			/* A folded line (obs-fold) is refused, not unfolded. */
			if (l.n == 0 || l.p[0] == ' ' || l.p[0] == '\t' ||
			    lines > SP_WS_UPGRADE_HEADERS_MAX)
				return SP_WS_UP_BAD_REQUEST;
			r = header(l, &s);
			if (r)
				return r;
		}
		lines++;
		off = (size_t)(lf - buf) + 1;
	}
	if (lines == 0)
		return SP_WS_UP_BAD_REQUEST;
	if (path != SP_WS_UP_OK)
		return path;
	if (s.version != 1 || !ieq(s.version_v, "13"))
		return SP_WS_UP_BAD_VERSION;
	if (s.host != 1 || !s.websocket || !s.upgrade_tok || s.key != 1 || !key_valid(s.key_v) ||
	    s.origin > 1)
		return SP_WS_UP_BAD_REQUEST;
	if (!s.protocol)
		return SP_WS_UP_BAD_PROTOCOL;
	if (s.origin && !origin_allowed(s.origin_v, origins))
		return SP_WS_UP_FORBIDDEN_ORIGIN;
	if (!accept_value(s.key_v, out->accept))
		return SP_WS_UP_BAD_REQUEST;
	out->consumed = end;
	return SP_WS_UP_OK;
}

size_t sp_ws_upgrade_response(enum sp_ws_upgrade_result r, const struct sp_ws_upgrade *up,
			      char *out, size_t cap)
{
	const char *status, *extra = "";
	int n;

	switch (r) {
	case SP_WS_UP_OK:
		n = snprintf(out, cap,
			     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
			     "Sec-WebSocket-Protocol: " SP_WS_SUBPROTOCOL "\r\n\r\n", up->accept);
		return n > 0 && (size_t)n < cap ? (size_t)n : 0;
	case SP_WS_UP_NOT_FOUND: status = "404 Not Found"; break;
	case SP_WS_UP_BAD_VERSION:
		status = "426 Upgrade Required";
		extra = "Sec-WebSocket-Version: 13\r\n";
		break;
	case SP_WS_UP_FORBIDDEN_ORIGIN: status = "403 Forbidden"; break;
	case SP_WS_UP_TOO_LARGE: status = "431 Request Header Fields Too Large"; break;
	default: status = "400 Bad Request"; break;
	}
	n = snprintf(out, cap, "HTTP/1.1 %s\r\n%sConnection: close\r\nContent-Length: 0\r\n\r\n",
		     status, extra);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

const char *sp_ws_upgrade_name(enum sp_ws_upgrade_result r)
{
	switch (r) {
	case SP_WS_UP_OK: return "ok";
	case SP_WS_UP_INCOMPLETE: return "incomplete";
	case SP_WS_UP_BAD_REQUEST: return "bad_request";
	case SP_WS_UP_NOT_FOUND: return "not_found";
	case SP_WS_UP_BAD_VERSION: return "bad_version";
	case SP_WS_UP_BAD_PROTOCOL: return "bad_protocol";
	case SP_WS_UP_FORBIDDEN_ORIGIN: return "forbidden_origin";
	case SP_WS_UP_TOO_LARGE: return "too_large";
	}
	return "unknown";
}
