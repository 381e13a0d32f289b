/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_hostport.c: "host:port" and "[v6]:port".
 */
#include "sp_hostport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

/* 1..5 digits and nothing else, value <= 65535 (strtoul would take "+1", " 1"). */
static int parse_port(const char *s, uint16_t *port)
{
	uint32_t v = 0;
	size_t n = 0;

	for (; s[n]; n++) {
		if (n == 5 || s[n] < '0' || s[n] > '9')
			return -EINVAL;
		v = v * 10 + (uint32_t)(s[n] - '0');
	}
	if (n == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int sp_hostport_split(const char *s, struct sp_hostport *out)
{
	const char *colon, *h = s;
	size_t hlen;

	if (!s || !out)
		return -EINVAL;
	out->bracketed = s[0] == '[';
	if (out->bracketed) {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -EINVAL;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(out->host))
		return -EINVAL;
	if (parse_port(colon + 1, &out->port) < 0)
		return -EINVAL;
	memcpy(out->host, h, hlen);
	out->host[hlen] = '\0';
	return 0;
}

int sp_hostport_sockaddr(const struct sp_hostport *hp, struct sockaddr_storage *ss,
			 socklen_t *len)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

	if (!hp || !ss || !len)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (!hp->bracketed && inet_pton(AF_INET, hp->host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(hp->port);
		*len = sizeof(*v4);
		return 0;
	}
	if (hp->bracketed && inet_pton(AF_INET6, hp->host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons(hp->port);
		*len = sizeof(*v6);
		return 0;
	}
	memset(ss, 0, sizeof(*ss));
	return -EINVAL;
}

int sp_hostport_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sp_hostport hp;
	int ret;

	if (ss)
		memset(ss, 0, sizeof(*ss));
	ret = sp_hostport_split(s, &hp);
	if (ret < 0)
		return ret;
	return sp_hostport_sockaddr(&hp, ss, len);
}
