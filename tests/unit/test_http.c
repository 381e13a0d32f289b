/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_http.c: the metrics/health endpoint over real loopback sockets.
 *
 * The client side is plain sockets and a hand-rolled HTTP/1.1 request, so
 * the test does not share a parser with the server it checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sp_http.h"
#include "sp_metrics.h"

enum { RESP_MAX = 1 << 20, IO_TIMEOUT_S = 30 };

struct resp {
	int status;
	char *head; /* status line and headers */
	char *body;
	size_t body_len;
};

static void resp_free(struct resp *r)
{
	free(r->head);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static int connect_to(int family, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	socklen_t len;
	int fd;

	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = in6addr_loopback;
		s6->sin6_port = htons(port);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s4->sin_port = htons(port);
		len = sizeof(*s4);
	}
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	/* Bounded: a server that never answers fails the test instead of hanging it. */
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
	return fd;
}

/* Reads until EOF (or error): returns bytes read, -errno if nothing could be read. */
static ssize_t read_all(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);

		if (r == 0)
			break;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (n == 0)
				return -errno;
			break;
		}
		n += (size_t)r;
	}
	buf[n] = '\0';
	return (ssize_t)n;
}

/* Sends raw request bytes on fd and parses the reply; r->status -1 if none came. */
static void exchange(int fd, const char *req, struct resp *r)
{
	char *buf = malloc(RESP_MAX);
	ssize_t n;
	char *sep;

	assert_non_null(buf);
	memset(r, 0, sizeof(*r));
	r->status = -1;
	/* MSG_NOSIGNAL: a server that closed on us must fail the check, not kill the test. */
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		free(buf);
		return;
	}
	n = read_all(fd, buf, RESP_MAX);
	if (n > 0 && sscanf(buf, "HTTP/1.%*c %d", &r->status) == 1) {
		sep = strstr(buf, "\r\n\r\n");
		assert_non_null(sep);
		r->head = strndup(buf, (size_t)(sep - buf) + 2);
		r->body_len = (size_t)n - (size_t)(sep + 4 - buf);
		r->body = malloc(r->body_len + 1);
		memcpy(r->body, sep + 4, r->body_len);
		r->body[r->body_len] = '\0';
	}
	free(buf);
}

static void request_on(int family, uint16_t port, const char *method, const char *path,
		       struct resp *r)
{
	char req[256];
	int fd = connect_to(family, port);

	snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
		 "Content-Length: 0\r\n\r\n", method, path);
	exchange(fd, req, r);
	close(fd);
}

static void request(uint16_t port, const char *method, const char *path, struct resp *r)
{
	request_on(AF_INET, port, method, path, r);
}

/* Header value (case-insensitive name), copied into out; 0 or -ENOENT. */
static int header(const struct resp *r, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);

	for (const char *l = strstr(r->head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
		const char *h = l + 2;

		if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
			const char *v = h + nl + 1, *e = strstr(v, "\r\n");

			while (*v == ' ')
				v++;
			snprintf(out, cap, "%.*s", (int)(e - v), v);
			return 0;
		}
	}
	return -ENOENT;
}

/* The value of an exact series ("name" or "name{labels}") in a metrics body. */
static double metric(const char *body, const char *series)
{
	size_t sl = strlen(series);

	for (const char *l = body; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (strncmp(l, series, sl) == 0 && l[sl] == ' ')
			return strtod(l + sl + 1, NULL);
	}
	fail_msg("series %s missing", series);
	return -1;
}

struct fixture {
	struct sp_metrics *m;
	struct sp_http *h;
	uint16_t port;
};

/* All the fixture's connections come from 127.0.0.1: no per-address limit below the global one. */
static const struct sp_http_limits fixture_limits = {
	.conn_max = SP_HTTP_CONN_MAX,
	.per_address_max = SP_HTTP_CONN_MAX,
	.deadline_ms = SP_HTTP_DEADLINE_MS,
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f || sp_metrics_create(&f->m, 2) < 0)
		return -1;
	if (sp_http_start(&f->h, "127.0.0.1:0", f->m, &fixture_limits) < 0)
		return -1;
	f->port = sp_http_port(f->h);
	*state = f;
	return f->port ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sp_http_stop(f->h);
	sp_metrics_destroy(f->m);
	free(f);
	return 0;
}

static void test_healthz(void **state)
{
	struct fixture *f = *state;
	struct resp r;
	char ct[128];

	request(f->port, "GET", "/healthz", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ok\n");
	assert_int_equal(header(&r, "Content-Type", ct, sizeof(ct)), 0);
	assert_non_null(strstr(ct, "text/plain"));
	resp_free(&r);
}

static void test_readyz(void **state)
{
	struct fixture *f = *state;
	struct resp r;

	request(f->port, "GET", "/readyz", &r);
	assert_int_equal(r.status, 503);
	resp_free(&r);
	sp_metrics_set_ready(f->m, true);
	request(f->port, "GET", "/readyz", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ready\n");
	resp_free(&r);
	/* Draining on shutdown: not ready again; alive all along. */
	sp_metrics_set_ready(f->m, false);
	request(f->port, "GET", "/readyz", &r);
	assert_int_equal(r.status, 503);
	resp_free(&r);
	request(f->port, "GET", "/healthz", &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

static void test_not_found_and_methods(void **state)
{
	static const char *const paths[] = { "/", "/metric", "/metrics/", "/healthz/x", "/READYZ" };
	struct fixture *f = *state;
	struct resp r;
	char allow[64];

	for (unsigned i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		request(f->port, "GET", paths[i], &r);
		assert_int_equal(r.status, 404);
		resp_free(&r);
	}
	request(f->port, "POST", "/metrics", &r);
	assert_int_equal(r.status, 405);
	assert_int_equal(header(&r, "Allow", allow, sizeof(allow)), 0);
	assert_string_equal(allow, "GET, HEAD");
	resp_free(&r);
	request(f->port, "DELETE", "/healthz", &r);
	assert_int_equal(r.status, 405);
	resp_free(&r);
	request(f->port, "PUT", "/nowhere", &r);
	assert_int_equal(r.status, 405);
	resp_free(&r);
	/* HEAD: same status and headers, no body. */
	request(f->port, "HEAD", "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 0);
	resp_free(&r);
	/* A query string does not change the resource. */
	request(f->port, "GET", "/healthz?verbose=1", &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

static void test_metrics_values(void **state)
{
	struct fixture *f = *state;
	struct sp_metrics_shard *s0 = sp_metrics_shard(f->m, 0), *s1 = sp_metrics_shard(f->m, 1);
	struct resp r;
	char ct[128];

	request(f->port, "GET", "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(header(&r, "Content-Type", ct, sizeof(ct)), 0);
	assert_string_equal(ct, SP_METRICS_CONTENT_TYPE);
	double acc0 = metric(r.body, "sealpost_envelopes_accepted_total");
	double busy0 = metric(r.body, "sealpost_envelopes_refused_total{reason=\"recipient_busy\"}");
	double open0 = metric(r.body, "sealpost_connections_open");

	assert_true(metric(r.body, "process_open_fds") > 0);
	assert_true(metric(r.body, "process_resident_memory_bytes") > 0);
	resp_free(&r);

	for (int i = 0; i < 11; i++)
		sp_metrics_envelope_accepted(i & 1 ? s0 : s1);
	sp_metrics_envelope_refused(s1, SP_STATUS_ERR_RECIPIENT_BUSY);
	sp_metrics_conn_accepted(s0);
	sp_metrics_conn_accepted(s1);
	sp_metrics_loop_iteration(s1, 9);

	request(f->port, "GET", "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_true(metric(r.body, "sealpost_envelopes_accepted_total") == acc0 + 11);
	assert_true(metric(r.body, "sealpost_envelopes_refused_total{reason=\"recipient_busy\"}") ==
		    busy0 + 1);
	assert_true(metric(r.body, "sealpost_connections_open") == open0 + 2);
	assert_true(metric(r.body, "sealpost_loop_batch_size_bucket{shard=\"1\",le=\"16\"}") -
		    metric(r.body, "sealpost_loop_batch_size_bucket{shard=\"1\",le=\"8\"}") >= 1);
	resp_free(&r);
}

/* What the endpoint serves is what promtool accepts, without a lint complaint. */
static void test_promtool_endpoint(void **state)
{
	struct fixture *f = *state;
	char path[] = "/tmp/sp-http-metrics-XXXXXX";
	char cmd[256], out[8192];
	struct resp r;
	size_t n = 0;
	FILE *p;
	int fd, st;

	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		print_message("SKIP: promtool not found in PATH (Debian package prometheus)\n");
		skip();
	}
	sp_metrics_handshake(sp_metrics_shard(f->m, 0), SP_METRICS_PATTERN_XX,
			     SP_METRICS_OUTCOME_OK, 2000000);
	request(f->port, "GET", "/metrics", &r);
	assert_int_equal(r.status, 200);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, r.body, r.body_len), (ssize_t)r.body_len);
	close(fd);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (n + 1 < sizeof(out)) {
		size_t got = fread(out + n, 1, sizeof(out) - 1 - n, p);

		if (got == 0)
			break;
		n += got;
	}
	out[n] = '\0';
	st = pclose(p);
	unlink(path);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || n != 0)
		fail_msg("promtool (status %d): %s", st, out);
	resp_free(&r);
}

/*
 * Shards keep incrementing while scrapes run over HTTP: every scrape sees
 * counters at least as high as the previous one, and the scrape after the
 * writers stop sees the exact totals.
 */
enum { WRITE_ROUNDS = 300000 };

struct writer_arg {
	struct sp_metrics_shard *s;
	int done; /* atomic */
};

static void *writer(void *arg)
{
	struct writer_arg *w = arg;

	for (int i = 0; i < WRITE_ROUNDS; i++) {
		sp_metrics_bytes_sent(w->s, 2);
		sp_metrics_acks(w->s, 1);
		sp_metrics_handshake(w->s, SP_METRICS_PATTERN_IK, SP_METRICS_OUTCOME_OK,
				     (uint64_t)i * 1000);
	}
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_concurrent_scrape(void **state)
{
	struct fixture *f = *state;
	struct writer_arg wa[2];
	pthread_t th[2];
	struct resp r;
	double base_sent, base_acks, base_hs, last_sent, last_acks, last_hs;
	int running;

	request(f->port, "GET", "/metrics", &r);
	base_sent = last_sent = metric(r.body, "sealpost_bytes_sent_total");
	base_acks = last_acks = metric(r.body, "sealpost_acks_total");
	base_hs = last_hs = metric(r.body, "sealpost_handshake_duration_seconds_count");
	resp_free(&r);
	for (int i = 0; i < 2; i++) {
		wa[i].s = sp_metrics_shard(f->m, (unsigned)i);
		wa[i].done = 0;
		assert_int_equal(pthread_create(&th[i], NULL, writer, &wa[i]), 0);
	}
	do {
		running = !__atomic_load_n(&wa[0].done, __ATOMIC_ACQUIRE) ||
			  !__atomic_load_n(&wa[1].done, __ATOMIC_ACQUIRE);
		request(f->port, "GET", "/metrics", &r);
		assert_int_equal(r.status, 200);
		double sent = metric(r.body, "sealpost_bytes_sent_total");
		double acks = metric(r.body, "sealpost_acks_total");
		double hs = metric(r.body, "sealpost_handshake_duration_seconds_count");

		assert_true(sent >= last_sent && acks >= last_acks && hs >= last_hs);
		assert_true(metric(r.body,
				   "sealpost_handshake_duration_seconds_bucket{le=\"+Inf\"}") == hs);
		last_sent = sent;
		last_acks = acks;
		last_hs = hs;
		resp_free(&r);
	} while (running);
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	request(f->port, "GET", "/metrics", &r);
	assert_true(metric(r.body, "sealpost_bytes_sent_total") == base_sent + 4.0 * WRITE_ROUNDS);
	assert_true(metric(r.body, "sealpost_acks_total") == base_acks + 2.0 * WRITE_ROUNDS);
	assert_true(metric(r.body, "sealpost_handshake_duration_seconds_count") ==
		    base_hs + 2.0 * WRITE_ROUNDS);
	resp_free(&r);
}

/* Reads one response with a Content-Length body from a kept-alive connection. */
static void read_one(int fd, struct resp *r)
{
	char buf[8192];
	size_t n = 0;
	const char *sep = NULL, *cl;

	memset(r, 0, sizeof(*r));
	r->status = -1;
	while (!sep && n + 1 < sizeof(buf)) {
		ssize_t got = read(fd, buf + n, sizeof(buf) - 1 - n);

		if (got <= 0)
			return;
		n += (size_t)got;
		buf[n] = '\0';
		sep = strstr(buf, "\r\n\r\n");
	}
	assert_non_null(sep);
	assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &r->status), 1);
	r->head = strndup(buf, (size_t)(sep - buf) + 2);
	cl = strcasestr(r->head, "\r\nContent-Length: ");
	assert_non_null(cl);
	r->body_len = strtoul(cl + 18, NULL, 10);
	assert_true(r->body_len < RESP_MAX);
	r->body = calloc(1, r->body_len + 1);
	size_t have = n - (size_t)(sep + 4 - buf);

	assert_true(have <= r->body_len); /* one request in flight: nothing after the body */
	memcpy(r->body, sep + 4, have);
	while (have < r->body_len) {
		ssize_t got = read(fd, r->body + have, r->body_len - have);

		assert_true(got > 0);
		have += (size_t)got;
	}
}

static void keepalive_get(int fd, const char *path, struct resp *r)
{
	char req[128];

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
	assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	read_one(fd, r);
}

/* Several requests on one kept-alive connection; then the idle timeout closes it. */
static void test_keepalive_and_idle_timeout(void **state)
{
	struct fixture *f = *state;
	struct resp r;
	char c;
	int fd = connect_to(AF_INET, f->port);

	keepalive_get(fd, "/healthz", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "ok\n");
	resp_free(&r);
	keepalive_get(fd, "/readyz", &r);
	assert_int_equal(r.status, 503);
	resp_free(&r);
	keepalive_get(fd, "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\n# TYPE sealpost_acks_total counter\n"));
	resp_free(&r);
	keepalive_get(fd, "/nope", &r);
	assert_int_equal(r.status, 404);
	resp_free(&r);
	/* A body on a refused method is read and dropped; the connection stays usable. */
	const char *post = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";

	assert_int_equal(send(fd, post, strlen(post), MSG_NOSIGNAL), (ssize_t)strlen(post));
	read_one(fd, &r);
	assert_int_equal(r.status, 405);
	resp_free(&r);
	keepalive_get(fd, "/healthz", &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	/* Idle now: the server closes it after SP_HTTP_TIMEOUT_S (we wait at most IO_TIMEOUT_S). */
	assert_int_equal(read(fd, &c, 1), 0);
	close(fd);
}

/*
 * At most SP_HTTP_CONN_MAX connections are served at once; one more waits in
 * the listen backlog until a slot frees, then is served.
 */
static void test_connection_limit(void **state)
{
	struct fixture *f = *state;
	int held[SP_HTTP_CONN_MAX];
	struct pollfd pfd;
	struct resp r;
	int fd;

	/* A served request on each proves the server accepted and holds it. */
	for (int i = 0; i < SP_HTTP_CONN_MAX; i++) {
		held[i] = connect_to(AF_INET, f->port);
		keepalive_get(held[i], "/healthz", &r);
		assert_int_equal(r.status, 200);
		resp_free(&r);
	}
	fd = connect_to(AF_INET, f->port); /* completes in the kernel's backlog */
	const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

	assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	/*
	 * Two round trips on a held connection: the server's loop has looked at
	 * its sockets since the extra connection arrived. At the limit it must
	 * not have answered it.
	 */
	for (int i = 0; i < 2; i++) {
		keepalive_get(held[SP_HTTP_CONN_MAX - 1], "/healthz", &r);
		assert_int_equal(r.status, 200);
		resp_free(&r);
	}
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 0), 0);
	/* Free a slot: the waiting connection is served. */
	close(held[0]);
	char *buf = malloc(RESP_MAX);

	assert_non_null(buf);
	assert_true(read_all(fd, buf, RESP_MAX) > 0);
	assert_true(strncmp(buf, "HTTP/1.1 200", 12) == 0);
	free(buf);
	close(fd);
	for (int i = 1; i < SP_HTTP_CONN_MAX; i++)
		close(held[i]);
}

static void test_parse_addr(void **state)
{
	static const char *const bad[] = {
		"", ":9400", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
		"127.0.0.1:94x0", "::1:9400", "[::1]", "[::1]9400", "[]:9400", "[127.0.0.1]:80",
		"256.0.0.1:80", "example.com:80", "localhost:9400", "127.0.0.1:123456", "[::1]:",
	};
	struct sockaddr_storage ss;
	socklen_t len;

	(void)state;
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (sp_http_parse_addr(bad[i], &ss, &len) != -EINVAL)
			fail_msg("accepted %s", bad[i]);
	assert_int_equal(sp_http_parse_addr(NULL, &ss, &len), -EINVAL);

	assert_int_equal(sp_http_parse_addr(SP_HTTP_DEFAULT_LISTEN, &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), SP_HTTP_DEFAULT_PORT);
	assert_int_equal(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(sp_http_parse_addr("127.0.0.1:0", &ss, &len), 0);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 0);
	assert_int_equal(sp_http_parse_addr("0.0.0.0:80", &ss, &len), 0);
	assert_int_equal(sp_http_parse_addr("[::]:9400", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(sp_http_parse_addr("[fe80::1:2]:65535", &ss, &len), 0);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 65535);
}

static void test_start_errors(void **state)
{
	struct fixture *f = *state;
	struct sp_http *h = (struct sp_http *)1;
	char addr[64];

	assert_int_equal(sp_http_start(&h, "nonsense", f->m, NULL), -EINVAL);
	assert_null(h);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", f->port);
	assert_int_equal(sp_http_start(&h, addr, f->m, NULL), -EADDRINUSE);
	assert_null(h);
	/* An address this host does not have (TEST-NET-1). */
	assert_int_equal(sp_http_start(&h, "192.0.2.1:0", f->m, NULL), -EADDRNOTAVAIL);
	sp_http_stop(NULL);
}

static void test_ipv6(void **state)
{
	struct sp_metrics *m;
	struct sp_http *h;
	struct resp r;
	int rc, probe;

	(void)state;
	probe = socket(AF_INET6, SOCK_STREAM, 0);
	if (probe < 0) {
		print_message("SKIP: no IPv6 sockets here\n");
		skip();
	}
	close(probe);
	assert_int_equal(sp_metrics_create(&m, 1), 0);
	rc = sp_http_start(&h, "[::1]:0", m, NULL);
	if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
		sp_metrics_destroy(m);
		print_message("SKIP: no IPv6 loopback here\n");
		skip();
	}
	assert_int_equal(rc, 0);
	request_on(AF_INET6, sp_http_port(h), "GET", "/healthz", &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	request_on(AF_INET6, sp_http_port(h), "GET", "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_true(metric(r.body, "sealpost_connections_open") == 0);
	resp_free(&r);
	sp_http_stop(h);
	sp_metrics_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_addr),
		cmocka_unit_test_setup_teardown(test_healthz, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readyz, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_found_and_methods, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_promtool_endpoint, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_scrape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keepalive_and_idle_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
		cmocka_unit_test(test_ipv6),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
