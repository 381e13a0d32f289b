/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_http.h: the operator's HTTP endpoint (metrics and health checks).
 *
 * Served by libmicrohttpd on its own internal polling thread: nothing here
 * runs on a shard's event loop, and a scrape reads the shards' slots with
 * relaxed atomic loads only (see sp_metrics.h).
 *
 *   GET /metrics  200, Prometheus text format 0.0.4 (sp_metrics_render)
 *   GET /healthz  200 "ok" while the process runs
 *   GET /readyz   200 "ready" once sp_metrics_set_ready(m, true), else 503
 *   anything else 404; a method other than GET or HEAD 405 (Allow: GET, HEAD)
 *
 * Bounded (struct sp_http_limits): at most conn_max connections at once (so
 * at most that many descriptors plus the listener count against the
 * process's 20,000), at most per_address_max of them from one IP address,
 * SP_HTTP_TIMEOUT_S idle timeout, small per-connection memory pool, and an
 * absolute deadline: a connection that has not completed a request within
 * deadline_ms of its accept (or of its previous request's end) is closed,
 * however slowly it keeps sending. The idle timeout alone cannot stop a
 * peer that trickles one byte at a time (slowloris).
 *
 * Errors: 0 or a negative errno.
 */
#ifndef SP_HTTP_H
#define SP_HTTP_H

#include <stdint.h>
#include <sys/socket.h>

struct sp_metrics;
struct sp_http;

enum {
	SP_HTTP_CONN_MAX = 16,          /* default conn_max */
	SP_HTTP_PER_ADDRESS_MAX = 4,    /* default per_address_max */
	SP_HTTP_DEADLINE_MS = 5000,     /* default deadline_ms */
	SP_HTTP_TIMEOUT_S = 10,
	SP_HTTP_MEMORY_LIMIT = 32 * 1024, /* request line and headers, per connection */
	SP_HTTP_DEFAULT_PORT = 9400,
};
#define SP_HTTP_DEFAULT_LISTEN "127.0.0.1:9400"

/*
 * Parses "HOST:PORT" where HOST is a numeric IPv4 address or "[IPv6]" in
 * brackets (numeric only, like --listen: no DNS at startup); PORT is
 * 0..65535 (0: the kernel picks one). addr (borrowed for the call) must be NUL-terminated.
 * 0, or -EINVAL for anything else. Usable for config validation.
 */
int sp_http_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len);

struct sp_http_limits {
	unsigned conn_max;          /* connections at once */
	unsigned per_address_max;   /* connections at once from one IP address */
	unsigned deadline_ms;       /* a request must be complete this long after it could start */
};

/*
 * Binds addr (see sp_http_parse_addr) and starts serving. m is borrowed
 * until sp_http_stop returns; lim is read during the call (NULL: the
 * SP_HTTP_* defaults). -EINVAL (bad address or a zero limit), the
 * bind/listen errno (e.g. -EADDRINUSE), -ENOMEM, or -EIO if libmicrohttpd
 * refused to start.
 */
int sp_http_start(struct sp_http **out, const char *addr, struct sp_metrics *m,
		  const struct sp_http_limits *lim);

/* The bound port (useful after asking for port 0). */
uint16_t sp_http_port(const struct sp_http *h);

/* Closes the listener and every connection, joins the thread, frees h. NULL is fine. */
void sp_http_stop(struct sp_http *h);

#endif
