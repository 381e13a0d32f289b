/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_hostport.h: the one parser of "host:port" and "[v6]:port".
 *
 * The host of an IPv6 address must be in brackets: "::1:7400" is ambiguous
 * and refused. The port is 1 to 5 decimal digits, at most 65535; whether 0
 * is acceptable ("any port", for a listener in tests) is the caller's call.
 *
 * Layering: util (POSIX sockets headers and inet_pton only; no resolver:
 * a caller that accepts names passes the split host to getaddrinfo).
 * Strings are borrowed for the call.
 *
 * Errors: 0 or -EINVAL (malformed, host too long, not a numeric address
 * of the family the brackets say).
 */
#ifndef SP_HOSTPORT_H
#define SP_HOSTPORT_H

#include <stdbool.h>
#include <stdint.h>

#include <sys/socket.h>

enum { SP_HOSTPORT_HOST_MAX = 256 }; /* host buffer, NUL included (a DNS name is <= 253) */

struct sp_hostport {
	char host[SP_HOSTPORT_HOST_MAX]; /* without the brackets, NUL-terminated */
	uint16_t port;                   /* 0..65535 */
	bool bracketed;                  /* written as "[host]:port" */
};

/* Splits s into host and port; nothing is resolved or checked beyond syntax. */
int sp_hostport_split(const char *s, struct sp_hostport *out);

/*
 * A numeric address: an unbracketed host must be IPv4 ("127.0.0.1"), a
 * bracketed one IPv6 ("[::1]"). *ss is zeroed, then filled; *len is the
 * size of the sockaddr actually used.
 */
int sp_hostport_sockaddr(const struct sp_hostport *hp, struct sockaddr_storage *ss,
			 socklen_t *len);

/* sp_hostport_split, then sp_hostport_sockaddr. */
int sp_hostport_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len);

#endif
