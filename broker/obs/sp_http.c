/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_http.c: /metrics, /healthz and /readyz on libmicrohttpd.
 *
 * We bind the listening socket ourselves and hand it to libmicrohttpd
 * (MHD_OPTION_LISTEN_SOCKET): that way a bad address or a port in use comes
 * back as a precise errno for the operator, and port 0 works for tests.
 * libmicrohttpd's own logging stays off: its messages can be triggered by any
 * peer, and the broker's log is rate-limited logfmt, not free text.
 */
#include "sp_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sp_hostport.h"
#include "sp_metrics.h"

struct sp_http {
	struct MHD_Daemon *daemon;
	struct sp_metrics *metrics;
	uint16_t port;
};

int sp_http_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
	/* Port 0 is fine here: the kernel picks one and the log names it. */
	return sp_hostport_parse(addr, ss, len);
}

/* Bound and listening, non-blocking, close-on-exec; *port gets the real port. */
static int open_listener(const struct sockaddr_storage *ss, socklen_t len, uint16_t *port)
{
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	int one = 1;
	int fd, err;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A restart must not wait out TIME_WAIT from the previous run's scrapes. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	/* "[::]:9400" means IPv6 only; an operator who wants IPv4 too says so. */
	if (ss->ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&bound, &blen) < 0)
		goto fail;
	if (bound.ss_family == AF_INET6)
		*port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
	else
		*port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
	return fd;
fail:
	err = -errno;
	close(fd);
	return err;
}

/* body: a static string (persistent) unless must_free, then a malloc'd buffer MHD frees. */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
			     char *body, size_t len, bool must_free)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, body, must_free ? MHD_RESPMEM_MUST_FREE
								: MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (must_free)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text)
{
	return reply(c, status, "text/plain; charset=utf-8", (char *)text, strlen(text), false);
}

static enum MHD_Result serve_metrics(struct MHD_Connection *c, struct sp_metrics *m)
{
	struct sp_metrics_buf b = { 0 };

	if (sp_metrics_render(m, &b, 0) < 0 || !b.data) {
		sp_metrics_buf_free(&b);
		return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "render failed\n");
	}
	/* Ownership of b.data passes to libmicrohttpd. */
	return reply(c, MHD_HTTP_OK, SP_METRICS_CONTENT_TYPE, b.data, b.len, true);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	struct sp_http *h = cls;

	static int headers_seen;

	(void)version;
	(void)upload_data;
	/*
	 * The first call only announces the headers; answering there makes
	 * libmicrohttpd close the connection after the reply (it cannot know
	 * the request body was consumed). Answer on the next call, once any
	 * body was read and discarded: keep-alive then works for scrapers.
	 */
	if (!*con_cls) {
		*con_cls = &headers_seen;
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0; /* no endpoint takes a body: discard it */
		return MHD_YES;
	}
	/* HEAD is GET without the body; libmicrohttpd drops the body itself. */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(c, h->metrics);
	if (strcmp(url, "/healthz") == 0)
		return reply_text(c, MHD_HTTP_OK, "ok\n");
	if (strcmp(url, "/readyz") == 0) {
		if (sp_metrics_ready(h->metrics))
			return reply_text(c, MHD_HTTP_OK, "ready\n");
		return reply_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready\n");
	}
	return reply_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
}

int sp_http_start(struct sp_http **out, const char *addr, struct sp_metrics *m)
{
	struct sockaddr_storage ss;
	struct sp_http *h;
	socklen_t len;
	int fd, rc;

	*out = NULL;
	rc = sp_http_parse_addr(addr, &ss, &len);
	if (rc < 0)
		return rc;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->metrics = m;
	fd = open_listener(&ss, len, &h->port);
	if (fd < 0) {
		free(h);
		return fd;
	}
	h->daemon = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, handle, h,
		MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)SP_HTTP_CONN_MAX,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)SP_HTTP_TIMEOUT_S,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SP_HTTP_MEMORY_LIMIT,
		MHD_OPTION_END);
	if (!h->daemon) {
		/*
		 * The descriptor is not closed here: libmicrohttpd's failure path
		 * may have closed it already, and a second close could hit a
		 * descriptor another thread just opened. The daemon treats this
		 * as fatal at startup, so at most one descriptor is lost.
		 */
		free(h);
		return -EIO;
	}
	*out = h;
	return 0;
}

uint16_t sp_http_port(const struct sp_http *h)
{
	return h->port;
}

void sp_http_stop(struct sp_http *h)
{
	if (!h)
		return;
	/* Closes the listener we passed in and every connection; joins the thread. */
	MHD_stop_daemon(h->daemon);
	free(h);
}
