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
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sp_hostport.h"
#include "sp_metrics.h"

/*
 * One per open connection, from libmicrohttpd's STARTED notification to its
 * CLOSED one (the connection's socket_context). Linked into sp_http.open
 * under sp_http.lock, which the watchdog also holds while it cuts a socket.
 */
struct http_conn {
	struct http_conn *prev, *next;
	int fd;               /* libmicrohttpd's socket; valid until CLOSED returns */
	uint64_t since_ms;    /* accept, or the end of the previous request */
	bool cut;             /* the watchdog shut it down already */
};

struct sp_http {
	struct MHD_Daemon *daemon;
	struct sp_metrics *metrics;
	uint16_t port;
	unsigned deadline_ms;

	/* The deadline watchdog (its own thread; libmicrohttpd has no timer hook). */
	pthread_t watchdog;
	bool watchdog_running;
	pthread_mutex_t lock;
	pthread_cond_t wake;  /* CLOCK_MONOTONIC; signalled by sp_http_stop */
	bool stopping;        /* under lock */
	struct http_conn *open; /* under lock */
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* libmicrohttpd's thread: a connection opens or closes. */
static void notify_conn(void *cls, struct MHD_Connection *c, void **socket_context,
			enum MHD_ConnectionNotificationCode code)
{
	struct sp_http *h = cls;
	struct http_conn *hc;
	const union MHD_ConnectionInfo *ci;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		hc = ci ? calloc(1, sizeof(*hc)) : NULL;
		*socket_context = hc;
		if (!hc)
			return; /* out of memory: this one connection has the idle timeout only */
		hc->fd = ci->connect_fd;
		hc->since_ms = now_ms();
		pthread_mutex_lock(&h->lock);
		hc->next = h->open;
		if (h->open)
			h->open->prev = hc;
		h->open = hc;
		pthread_mutex_unlock(&h->lock);
		return;
	}
	/*
	 * CLOSED comes before libmicrohttpd closes the socket: once the record
	 * is unlinked (under the lock the watchdog cuts with), the watchdog can
	 * no longer shut down a descriptor number that has been reused.
	 */
	hc = *socket_context;
	if (!hc)
		return;
	pthread_mutex_lock(&h->lock);
	if (hc->prev)
		hc->prev->next = hc->next;
	else
		h->open = hc->next;
	if (hc->next)
		hc->next->prev = hc->prev;
	pthread_mutex_unlock(&h->lock);
	free(hc);
	*socket_context = NULL;
}

/* libmicrohttpd's thread: a request ended; a kept-alive connection gets a new deadline. */
static void notify_done(void *cls, struct MHD_Connection *c, void **con_cls,
			enum MHD_RequestTerminationCode toe)
{
	struct sp_http *h = cls;
	const union MHD_ConnectionInfo *ci;
	struct http_conn *hc;

	(void)con_cls;
	(void)toe;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	hc = ci ? ci->socket_context : NULL;
	if (!hc)
		return;
	pthread_mutex_lock(&h->lock);
	hc->since_ms = now_ms();
	pthread_mutex_unlock(&h->lock);
}

/*
 * Cuts every connection past its deadline. shutdown() rather than close():
 * the descriptor stays libmicrohttpd's, which sees end-of-stream and closes
 * the connection in its own thread, with its own bookkeeping.
 */
static void *watchdog_main(void *arg)
{
	struct sp_http *h = arg;
	uint64_t period = h->deadline_ms / 10;
	struct timespec ts;

	if (period < 10)
		period = 10;
	if (period > 250)
		period = 250;
	pthread_mutex_lock(&h->lock);
	while (!h->stopping) {
		uint64_t now = now_ms();

		for (struct http_conn *hc = h->open; hc; hc = hc->next) {
			if (!hc->cut && now - hc->since_ms >= h->deadline_ms) {
				shutdown(hc->fd, SHUT_RDWR);
				hc->cut = true;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)(period * 1000000u);
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&h->wake, &h->lock, &ts);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

static void watchdog_stop(struct sp_http *h)
{
	if (!h->watchdog_running)
		return;
	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	pthread_cond_signal(&h->wake);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->watchdog, NULL);
	h->watchdog_running = false;
}

static void http_free(struct sp_http *h)
{
	pthread_cond_destroy(&h->wake);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

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

int sp_http_start(struct sp_http **out, const char *addr, struct sp_metrics *m,
		  const struct sp_http_limits *lim)
{
	static const struct sp_http_limits defaults = {
		.conn_max = SP_HTTP_CONN_MAX,
		.per_address_max = SP_HTTP_PER_ADDRESS_MAX,
		.deadline_ms = SP_HTTP_DEADLINE_MS,
	};
	pthread_condattr_t ca;
	struct sockaddr_storage ss;
	struct sp_http *h;
	socklen_t len;
	int fd, rc;

	*out = NULL;
	if (!lim)
		lim = &defaults;
	if (!lim->conn_max || !lim->per_address_max || !lim->deadline_ms)
		return -EINVAL;
	rc = sp_http_parse_addr(addr, &ss, &len);
	if (rc < 0)
		return rc;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->metrics = m;
	h->deadline_ms = lim->deadline_ms;
	pthread_mutex_init(&h->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->wake, &ca);
	pthread_condattr_destroy(&ca);
	fd = open_listener(&ss, len, &h->port);
	if (fd < 0) {
		http_free(h);
		return fd;
	}
	h->daemon = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL, handle, h,
		MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)lim->conn_max,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)lim->per_address_max,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)SP_HTTP_TIMEOUT_S,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SP_HTTP_MEMORY_LIMIT,
		MHD_OPTION_NOTIFY_CONNECTION, notify_conn, h,
		MHD_OPTION_NOTIFY_COMPLETED, notify_done, h,
		MHD_OPTION_END);
	if (!h->daemon) {
		/*
		 * The descriptor is not closed here: libmicrohttpd's failure path
		 * may have closed it already, and a second close could hit a
		 * descriptor another thread just opened. The daemon treats this
		 * as fatal at startup, so at most one descriptor is lost.
		 */
		http_free(h);
		return -EIO;
	}
	rc = pthread_create(&h->watchdog, NULL, watchdog_main, h);
	if (rc) {
		MHD_stop_daemon(h->daemon);
		http_free(h);
		return -rc;
	}
	h->watchdog_running = true;
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
	watchdog_stop(h);
	/* Closes the listener we passed in and every connection; joins the thread. */
	MHD_stop_daemon(h->daemon);
	http_free(h);
}
