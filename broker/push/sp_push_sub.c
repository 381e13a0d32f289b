/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_push_sub.c: subscription checks, encoding, address policy
 * (sp_push_sub.h).
 */
#include "sp_push_sub.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "sp_be.h"
#include "sp_webpush.h"

/* URL bytes we keep (RFC 3986 unreserved, reserved and '%'): no space,
 * quote, backslash or control character can reach a header or a log. */
static bool url_char(uint8_t c)
{
	if (c >= 'a' && c <= 'z')
		return true;
	if (c >= 'A' && c <= 'Z')
		return true;
	if (c >= '0' && c <= '9')
		return true;
	return strchr("-._~:/?#[]@!$&'()*+,;=%", c) != NULL && c != '\0';
}

struct url {
	bool https;
	const char *host;       /* not NUL-terminated: host_len */
	size_t host_len;        /* without brackets for [v6] */
	bool bracketed;
	size_t origin_len;      /* scheme://authority */
};

static int url_parse(const char *s, size_t len, struct url *u)
{
	const char *p, *end = s + len, *a_end;
	size_t skip;

	memset(u, 0, sizeof(*u));
	if (len > 8 && strncasecmp(s, "https://", 8) == 0) {
		u->https = true;
		skip = 8;
	} else if (len > 7 && strncasecmp(s, "http://", 7) == 0) {
		skip = 7;
	} else {
		return -1;
	}
	p = s + skip;
	for (a_end = p; a_end < end && *a_end != '/' && *a_end != '?' && *a_end != '#'; a_end++)
		if (*a_end == '@')
			return -1;      /* userinfo: never sent, never stored */
	if (a_end == p)
		return -1;
	u->origin_len = (size_t)(a_end - s);
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(a_end - p));

		if (!rb || rb == p + 1)
			return -1;
		u->host = p + 1;
		u->host_len = (size_t)(rb - p - 1);
		u->bracketed = true;
		p = rb + 1;
		if (p < a_end && *p != ':')
			return -1;
	} else {
		const char *colon = memchr(p, ':', (size_t)(a_end - p));

		u->host = p;
		u->host_len = (size_t)((colon ? colon : a_end) - p);
		p = colon ? colon : a_end;
		if (u->host_len == 0)
			return -1;
		for (size_t i = 0; i < u->host_len; i++) {
			char c = u->host[i];

			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '-' || c == '.'))
				return -1;
		}
	}
	if (p < a_end) {        /* ":port", 1..65535 */
		unsigned long port = 0;
		const char *q = p + 1;

		if (q == a_end || a_end - q > 5)
			return -1;
		for (; q < a_end; q++) {
			if (*q < '0' || *q > '9')
				return -1;
			port = port * 10 + (unsigned long)(*q - '0');
		}
		if (port == 0 || port > 65535)
			return -1;
	}
	return 0;
}

/* A literal address in the host: 1 and *ss, else 0. */
static int host_literal(const struct url *u, struct sockaddr_storage *ss)
{
	char h[64];

	if (u->host_len >= sizeof(h))
		return 0;
	memcpy(h, u->host, u->host_len);
	h[u->host_len] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (u->bracketed) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		return inet_pton(AF_INET6, h, &s6->sin6_addr) == 1;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		return inet_pton(AF_INET, h, &s4->sin_addr) == 1;
	}
}

static bool v4_private(uint32_t a)
{
	return (a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127 ||
	       (a & 0xffc00000u) == 0x64400000u ||   /* 100.64/10 */
	       (a & 0xffff0000u) == 0xa9fe0000u ||   /* 169.254/16 */
	       (a & 0xfff00000u) == 0xac100000u ||   /* 172.16/12 */
	       (a & 0xffffff00u) == 0xc0000000u ||   /* 192.0.0/24 */
	       (a & 0xffff0000u) == 0xc0a80000u ||   /* 192.168/16 */
	       (a & 0xfffe0000u) == 0xc6120000u ||   /* 198.18/15 */
	       (a >> 28) >= 14;                      /* multicast, reserved, broadcast */
}

bool sp_push_addr_private(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return v4_private(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
	if (sa->sa_family == AF_INET6) {
		const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		static const uint8_t zero[15] = { 0 };

		if (memcmp(b, mapped, 12) == 0)
			return v4_private(sp_be_get32(b + 12));
		if (memcmp(b, zero, 15) == 0)
			return true;                    /* :: and ::1 */
		return (b[0] & 0xfe) == 0xfc ||         /* fc00::/7 */
		       (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || /* fe80::/10 */
		       b[0] == 0xff;                    /* multicast */
	}
	return true;
}

/* One entry of the comma-separated list: "host" exactly, ".domain" for the
 * domain and every name below it; case-insensitive. */
static bool host_listed(const char *list, const char *h, size_t n)
{
	const char *p = list;

	while (*p) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		while (len && *p == ' ') {
			p++;
			len--;
		}
		while (len && p[len - 1] == ' ')
			len--;
		if (len && p[0] == '.') {
			if ((n == len - 1 && strncasecmp(h, p + 1, n) == 0) ||
			    (n > len && strncasecmp(h + n - len, p, len) == 0))
				return true;
		} else if (len && len == n && strncasecmp(h, p, n) == 0) {
			return true;
		}
		if (!e)
			break;
		p = e + 1;
	}
	return false;
}

enum sp_status sp_push_sub_check(const struct sp_push_policy *pol, const uint8_t *endpoint,
				 size_t endpoint_len, const uint8_t *p256dh, size_t p256dh_len,
				 const uint8_t *auth, size_t auth_len, struct sp_push_sub *out)
{
	struct sockaddr_storage ss;
	struct url u;
	bool literal, priv;

	if (endpoint_len > pol->endpoint_max || endpoint_len > SP_PUSH_ENDPOINT_WIRE_MAX)
		return SP_STATUS_ERR_PUSH_TOO_LARGE;
	if (!p256dh || sp_webpush_point_valid(p256dh, p256dh_len))
		return SP_STATUS_ERR_PUSH_BAD_KEY;
	if (!auth || auth_len != SP_PUSH_AUTH_LEN)
		return SP_STATUS_ERR_PUSH_BAD_AUTH;
	if (!endpoint || endpoint_len == 0)
		return SP_STATUS_ERR_PUSH_BAD_ENDPOINT;
	for (size_t i = 0; i < endpoint_len; i++)
		if (!url_char(endpoint[i]))
			return SP_STATUS_ERR_PUSH_BAD_ENDPOINT;
	if (url_parse((const char *)endpoint, endpoint_len, &u))
		return SP_STATUS_ERR_PUSH_BAD_ENDPOINT;
	literal = host_literal(&u, &ss) == 1;
	priv = literal ? sp_push_addr_private((struct sockaddr *)&ss)
		       : (u.host_len == 9 && strncasecmp(u.host, "localhost", 9) == 0) ||
			 (u.host_len > 10 && strncasecmp(u.host + u.host_len - 10, ".localhost", 10) == 0);
	/* Plain http: only to a literal private address, and only for tests. */
	if (!u.https && !(pol->allow_private && literal && priv))
		return SP_STATUS_ERR_PUSH_NOT_HTTPS;
	if (priv && !pol->allow_private)
		return SP_STATUS_ERR_PUSH_HOST_NOT_ALLOWED;
	if (pol->allowed_hosts && pol->allowed_hosts[0] &&
	    !host_listed(pol->allowed_hosts, u.host, u.host_len))
		return SP_STATUS_ERR_PUSH_HOST_NOT_ALLOWED;
	memcpy(out->p256dh, p256dh, SP_PUSH_P256DH_LEN);
	memcpy(out->auth, auth, SP_PUSH_AUTH_LEN);
	memcpy(out->endpoint, endpoint, endpoint_len);
	out->endpoint[endpoint_len] = '\0';
	out->endpoint_len = (uint16_t)endpoint_len;
	return SP_STATUS_ACCEPTED;
}

size_t sp_push_sub_size(const struct sp_push_sub *s)
{
	return SP_PUSH_SUB_HDR_LEN + s->endpoint_len;
}

void sp_push_sub_encode(const struct sp_push_sub *s, uint8_t *out)
{
	out[0] = 1;
	out[1] = 0;
	sp_be_put16(out + 2, s->endpoint_len);
	memcpy(out + 4, s->p256dh, SP_PUSH_P256DH_LEN);
	memcpy(out + 4 + SP_PUSH_P256DH_LEN, s->auth, SP_PUSH_AUTH_LEN);
	memcpy(out + SP_PUSH_SUB_HDR_LEN, s->endpoint, s->endpoint_len);
}

int sp_push_sub_decode(const uint8_t *v, size_t len, struct sp_push_sub *s)
{
	size_t n;

	if (len < SP_PUSH_SUB_HDR_LEN || v[0] != 1 || v[1] != 0)
		return -EBADMSG;
	n = sp_be_get16(v + 2);
	if (n == 0 || n > SP_PUSH_ENDPOINT_WIRE_MAX || len != SP_PUSH_SUB_HDR_LEN + n)
		return -EBADMSG;
	memcpy(s->p256dh, v + 4, SP_PUSH_P256DH_LEN);
	memcpy(s->auth, v + 4 + SP_PUSH_P256DH_LEN, SP_PUSH_AUTH_LEN);
	memcpy(s->endpoint, v + SP_PUSH_SUB_HDR_LEN, n);
	s->endpoint[n] = '\0';
	s->endpoint_len = (uint16_t)n;
	for (size_t i = 0; i < n; i++)
		if (!url_char((uint8_t)s->endpoint[i]))
			return -EBADMSG;
	return 0;
}

int sp_push_sub_origin(const char *endpoint, char *out, size_t cap)
{
	struct url u;

	if (url_parse(endpoint, strlen(endpoint), &u))
		return -EINVAL;
	if (u.origin_len >= cap)
		return -EMSGSIZE;
	memcpy(out, endpoint, u.origin_len);
	out[u.origin_len] = '\0';
	/* the scheme in lower case (RFC 6454 origin) */
	for (size_t i = 0; i < (u.https ? 5u : 4u); i++)
		if (out[i] >= 'A' && out[i] <= 'Z')
			out[i] = (char)(out[i] - 'A' + 'a');
	return 0;
}
