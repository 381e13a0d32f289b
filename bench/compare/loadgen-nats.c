/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sealpost-loadgen-nats: the load generator's NATS peer, for bench/compare/.
 *
 * The same plan, rate control, histogram and report as sealpost-loadgen
 * (bench/loadgen/lg.c). Each device is one libnats connection (the official
 * C client) over TLS, subscribed to its own subject "lg.<device>"; an
 * envelope is a publish to the recipient's subject.
 *   --mode core  plain NATS publish: fire and forget, no per-message result.
 *   --mode js    JetStream: a stream "LG" with file storage captures lg.>;
 *                each envelope is js_PublishAsync'd and its PubAck (stored)
 *                plays the part of sealpost's SendResult ("acked"). Receivers
 *                keep their core subscriptions, which see stream subjects too.
 *
 * Publishing is asynchronous in both modes: natsConnection_Publish and
 * js_PublishAsync only append to the connection's buffer, which libnats's
 * flusher writes out (no flush, no round trip per message); PubAcks and
 * errors arrive through the JetStream async ack handler.
 *
 * --closed-loop W keeps W envelopes per sender outstanding, the window
 * rule every system of bench/compare/ gets. An envelope is outstanding until
 * its PubAck (js) or, as core NATS has no per-message result, until its
 * recipient receives it (core: pairs only, and a pair in one process, so the
 * receiving callback can close its sender's window). Callbacks run on
 * libnats's threads and wake the sending loop through an eventfd.
 *
 * Fairness: socket I/O of every connection of a worker process is driven
 * from one epoll loop through libnats's event-loop interface
 * (natsOptions_SetEventLoop + natsConnection_ProcessRead/WriteEvent), the
 * one-loop-per-process shape of the sealpost client. libnats still hands
 * each received message to a delivery thread before our callback runs (we
 * use its global delivery pool, one thread, not a thread per subscription),
 * so NATS latencies include one thread hand-off the others do not have;
 * callbacks take a mutex around the shared counters. natsConnection_Connect
 * is blocking (TCP, TLS, INFO/CONNECT), so connect-up is one device at a time.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <nats/nats.h>

#include "lg.h"

enum { EPOLL_BATCH = 256 };

static char g_ca[LG_PATH_MAX];
static bool g_js;
static bool g_evloop;
static long g_write_deadline_ms;        /* --write-deadline; 0 = libnats's default (none) */
static int g_iobuf;                     /* --io-buf bytes; 0 = libnats's default (32 KiB) */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

struct nconn {
	struct lgn *s;
	natsConnection *nc;
	natsSubscription *sub;
	jsCtx *js;
	uint32_t dev;
	int fd;
	bool rd, wr, up;
	uint64_t nsent;
	/* Closed loop: envelopes of this sender not yet completed (under g_mu).
	 * JetStream: published, PubAck not yet seen. Core NATS, which has no
	 * per-message result: published, not yet delivered to the recipient
	 * (a receiver in this process decrements its sender's count). */
	uint32_t unacked;
};

struct lgn {
	struct lg_worker *w;
	struct nconn *conns;
	int ep;
	uint64_t outstanding;           /* JetStream publishes without PubAck (under g_mu) */
	uint8_t *body;
	bool closing;                   /* under g_mu: disconnects are expected now */
	/* Closed loop: the callbacks (library threads) wake the sending loop
	 * when a window opens, at most one eventfd write per loop turn. */
	int wake_fd;
	bool wake_pending;              /* under g_mu */
};

/* epoll data of the wake eventfd (connections carry their struct nconn). */
static char g_wake_tag;

/* A window opened (under g_mu): make the sending loop's epoll_wait return. */
static void wake(struct lgn *s)
{
	uint64_t one = 1;

	if (s->wake_pending || s->wake_fd < 0)
		return;
	s->wake_pending = true;
	if (write(s->wake_fd, &one, sizeof(one)) < 0)
		s->wake_pending = false;
}

/* ------------------------------------------------ event-loop adapter --- */

static void rearm(struct nconn *c)
{
	struct epoll_event ev = {
		.events = (c->rd ? EPOLLIN : 0) | (c->wr ? EPOLLOUT : 0),
		.data.ptr = c,
	};

	if (c->fd >= 0)
		epoll_ctl(c->s->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static natsStatus ev_attach(void **ud, void *loop, natsConnection *nc, natsSock sock)
{
	struct nconn *c = loop;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

	if (c->fd >= 0)
		epoll_ctl(c->s->ep, EPOLL_CTL_DEL, c->fd, NULL);
	c->nc = nc;
	c->fd = (int)sock;
	c->rd = true;
	c->wr = false;
	*ud = c;
	return epoll_ctl(c->s->ep, EPOLL_CTL_ADD, c->fd, &ev) ? NATS_SYS_ERROR : NATS_OK;
}

static natsStatus ev_read(void *ud, bool add)
{
	struct nconn *c = ud;

	c->rd = add;
	rearm(c);
	return NATS_OK;
}

static natsStatus ev_write(void *ud, bool add)
{
	struct nconn *c = ud;

	c->wr = add;
	rearm(c);
	return NATS_OK;
}

static natsStatus ev_detach(void *ud)
{
	struct nconn *c = ud;

	if (c->fd >= 0)
		epoll_ctl(c->s->ep, EPOLL_CTL_DEL, c->fd, NULL);
	c->fd = -1;
	return NATS_OK;
}

/* ---------------------------------------------------------- callbacks --- */

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	struct nconn *c = closure;
	uint64_t intended, now = lg_now();
	uint32_t sender;

	(void)nc;
	(void)sub;
	pthread_mutex_lock(&g_mu);
	if (lg_body_stamp((const uint8_t *)natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
			  &intended, &sender))
		lg_count_error(c->s->w, LG_E_BAD_BODY);
	else
		lg_count_delivery(c->s->w, intended, now);
	if (!g_js && c->s->w->o->closed_loop) {
		struct lg_worker *w = c->s->w;

		if (sender >= w->first && sender - w->first < w->count &&
		    w->o->pattern == LG_PAIRS && c->s->conns[sender - w->first].unacked) {
			c->s->conns[sender - w->first].unacked--;
			wake(c->s);
		} else {
			lg_count_error(w, LG_E_PROTOCOL); /* sender elsewhere: the window cannot close */
		}
	}
	pthread_mutex_unlock(&g_mu);
	natsMsg_Destroy(msg);
}

/* Asynchronous errors (a slow consumer: the library dropped messages). */
static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
	struct nconn *c = closure;

	(void)nc;
	(void)sub;
	(void)err;
	pthread_mutex_lock(&g_mu);
	lg_count_error(c->s->w, LG_E_CLIENT);
	pthread_mutex_unlock(&g_mu);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	struct nconn *c = closure;

	(void)nc;
	pthread_mutex_lock(&g_mu);
	if (c->up && !c->s->closing)
		lg_count_error(c->s->w, LG_E_CLOSED);
	pthread_mutex_unlock(&g_mu);
}

/* JetStream PubAck (or error) of one js_PublishAsync; the original message
 * carries the intended time, so no bookkeeping of our own is needed. */
static void on_puback(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	struct nconn *c = closure;
	uint64_t intended = 0;
	uint32_t sender;

	(void)js;
	pthread_mutex_lock(&g_mu);
	lg_body_stamp((const uint8_t *)natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
		      &intended, &sender);
	c->s->outstanding--;
	c->unacked--;
	lg_count_result(c->s->w, pa && !pae ? 1 : 22, intended); /* acked / failed */
	if (c->s->w->o->closed_loop)
		wake(c->s);
	pthread_mutex_unlock(&g_mu);
	natsMsg_Destroy(msg);
}

/* ------------------------------------------------------------ devices --- */

static int dev_connect(struct lgn *s, struct nconn *c)
{
	const struct lg_opts *o = s->w->o;
	natsOptions *opts = NULL;
	char url[160], subj[32];
	natsStatus st;

	snprintf(url, sizeof(url), "%s://%s%s%s:%u", g_ca[0] ? "tls" : "nats",
		 strchr(o->host, ':') ? "[" : "", o->host, strchr(o->host, ':') ? "]" : "", o->port);
	st = natsOptions_Create(&opts);
	if (st == NATS_OK)
		st = natsOptions_SetURL(opts, url);
	if (st == NATS_OK && g_ca[0])
		st = natsOptions_SetSecure(opts, true);
	if (st == NATS_OK && g_ca[0])
		st = natsOptions_LoadCATrustedCertificates(opts, g_ca);
	if (st == NATS_OK && g_evloop)
		st = natsOptions_SetEventLoop(opts, c, ev_attach, ev_read, ev_write, ev_detach);
	if (st == NATS_OK)
		st = natsOptions_UseGlobalMessageDelivery(opts, true);
	if (st == NATS_OK)
		st = natsOptions_SetAllowReconnect(opts, false);
	if (st == NATS_OK)
		st = natsOptions_SetMaxPendingMsgs(opts, 1000000);
	if (st == NATS_OK && g_write_deadline_ms)
		st = natsOptions_SetWriteDeadline(opts, g_write_deadline_ms);
	if (st == NATS_OK && g_iobuf)
		st = natsOptions_SetIOBufSize(opts, g_iobuf);
	if (st == NATS_OK)
		st = natsOptions_SetErrorHandler(opts, on_error, c);
	if (st == NATS_OK)
		st = natsOptions_SetDisconnectedCB(opts, on_disconnected, c);
	if (st != NATS_OK) {
		natsOptions_Destroy(opts);
		return -EINVAL;
	}
	st = natsConnection_Connect(&c->nc, opts);
	natsOptions_Destroy(opts);
	if (st != NATS_OK) {
		lg_count_error(s->w, LG_E_CONNECT);
		return 0;
	}
	if (lg_is_receiver(o, c->dev)) {
		snprintf(subj, sizeof(subj), "lg.%u", c->dev);
		if (natsConnection_Subscribe(&c->sub, c->nc, subj, on_msg, c) != NATS_OK) {
			lg_count_error(s->w, LG_E_CLIENT);
			return 0;
		}
	}
	if (g_js && lg_is_sender(o, c->dev)) {
		jsOptions jo;

		jsOptions_Init(&jo);
		jo.PublishAsync.MaxPending = 1 << 20; /* never stall: open loop */
		jo.PublishAsync.AckHandler = on_puback;
		jo.PublishAsync.AckHandlerClosure = c;
		if (natsConnection_JetStream(&c->js, c->nc, &jo) != NATS_OK) {
			lg_count_error(s->w, LG_E_CLIENT);
			return 0;
		}
	}
	c->up = true;
	if (!g_evloop)
		c->fd = 0; /* the library's own threads own the socket */
	s->w->st.connected++;
	s->w->st.connect_end = lg_now();
	return 0;
}

/* JetStream: the stream, made once by worker 0 on a plain (threaded)
 * connection, before any worker reports READY. */
static int make_stream(const struct lg_opts *o)
{
	natsConnection *nc = NULL;
	natsOptions *opts = NULL;
	jsCtx *js = NULL;
	jsStreamConfig sc;
	jsErrCode jerr = 0;
	const char *subjects[] = { "lg.>" };
	char url[160];
	natsStatus st;

	snprintf(url, sizeof(url), "%s://%s:%u", g_ca[0] ? "tls" : "nats", o->host, o->port);
	st = natsOptions_Create(&opts);
	if (st == NATS_OK)
		st = natsOptions_SetURL(opts, url);
	if (st == NATS_OK && g_ca[0])
		st = natsOptions_SetSecure(opts, true);
	if (st == NATS_OK && g_ca[0])
		st = natsOptions_LoadCATrustedCertificates(opts, g_ca);
	if (st == NATS_OK)
		st = natsConnection_Connect(&nc, opts);
	if (st == NATS_OK)
		st = natsConnection_JetStream(&js, nc, NULL);
	if (st == NATS_OK) {
		jsStreamConfig_Init(&sc);
		sc.Name = "LG";
		sc.Subjects = subjects;
		sc.SubjectsLen = 1;
		sc.Storage = js_FileStorage;
		st = js_AddStream(NULL, js, &sc, NULL, &jerr);
		if (st != NATS_OK && jerr == JSStreamNameExistErr)
			st = NATS_OK;
	}
	if (st != NATS_OK)
		fprintf(stderr, "sealpost-loadgen-nats: JetStream stream: %s (%d)\n",
			natsStatus_GetText(st), (int)jerr);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	natsOptions_Destroy(opts);
	return st == NATS_OK ? 0 : -EIO;
}

static void publish(struct lgn *s, struct nconn *c, uint64_t intended)
{
	const struct lg_opts *o = s->w->o;
	char subj[32];
	natsStatus st;

	if (!c->up || c->fd < 0) {
		pthread_mutex_lock(&g_mu);
		lg_count_error(s->w, LG_E_SENDER_DOWN);
		pthread_mutex_unlock(&g_mu);
		return;
	}
	snprintf(subj, sizeof(subj), "lg.%u", lg_target(o, c->dev, c->nsent));
	lg_body_fill(s->body, o->size, intended, c->dev);
	pthread_mutex_lock(&g_mu);
	lg_count_sent(s->w, intended);
	if (g_js)
		s->outstanding++;
	if (g_js || o->closed_loop)
		c->unacked++;
	pthread_mutex_unlock(&g_mu);
	if (g_js)
		st = js_PublishAsync(c->js, subj, s->body, (int)o->size, NULL);
	else
		st = natsConnection_Publish(c->nc, subj, s->body, (int)o->size);
	c->nsent++;
	if (st != NATS_OK) {
		pthread_mutex_lock(&g_mu);
		lg_count_error(s->w, LG_E_CLIENT);
		if (g_js)
			s->outstanding--;
		if ((g_js || o->closed_loop) && c->unacked)
			c->unacked--;
		pthread_mutex_unlock(&g_mu);
	}
}

static void turn(struct lgn *s, uint64_t until)
{
	struct epoll_event evs[EPOLL_BATCH];
	uint64_t now = lg_now();
	int n, i, ms = until > now ? (int)((until - now + 999999) / 1000000) : 0;

	lg_worker_tick(s->w);

	if (ms > 100)
		ms = 100;
	n = epoll_wait(s->ep, evs, EPOLL_BATCH, ms);
	for (i = 0; i < n; i++) {
		struct nconn *c = evs[i].data.ptr;

		if (evs[i].data.ptr == &g_wake_tag) {
			uint64_t v;

			pthread_mutex_lock(&g_mu);
			if (read(s->wake_fd, &v, sizeof(v)) < 0)
				v = 0;
			s->wake_pending = false;
			pthread_mutex_unlock(&g_mu);
			continue;
		}
		if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			natsConnection_ProcessReadEvent(c->nc);
		if (c->fd >= 0 && (evs[i].events & EPOLLOUT))
			natsConnection_ProcessWriteEvent(c->nc);
	}
}

static int worker(struct lg_worker *w)
{
	const struct lg_opts *o = w->o;
	struct lgn s;
	uint64_t now, stop_by, intended, outstanding, last;
	uint32_t i, dev, burst;
	int ret;

	memset(&s, 0, sizeof(s));
	s.w = w;
	if (nats_Open(-1) != NATS_OK)
		return -EIO;
	nats_SetMessageDeliveryPoolSize(1);
	s.ep = epoll_create1(EPOLL_CLOEXEC);
	s.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s.conns = calloc(w->count, sizeof(*s.conns));
	s.body = malloc(o->size);
	if (s.ep < 0 || s.wake_fd < 0 || !s.conns || !s.body)
		return -ENOMEM;
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &g_wake_tag };

		if (epoll_ctl(s.ep, EPOLL_CTL_ADD, s.wake_fd, &ev))
			return -errno;
	}
	if (g_js && w->id == 0 && (ret = make_stream(o)) != 0)
		return ret;
	w->st.connect_begin = lg_now();
	for (i = 0; i < w->count; i++) {
		struct nconn *c = &s.conns[i];

		c->s = &s;
		c->dev = w->first + i;
		c->fd = -1;
		if (!lg_connects_early(o, c->dev))
			continue;
		ret = dev_connect(&s, c);
		if (ret)
			return ret;
		turn(&s, 0);
	}
	/* Let the SUBs reach the server (libnats asks for write interest when it
	 * has buffered output) before anyone publishes. */
	{
		uint64_t until = lg_now() + 200000000ull;

		while (lg_now() < until)
			turn(&s, until);
	}
	ret = lg_worker_ready(w);
	if (ret)
		return ret;
	stop_by = w->t_end + (uint64_t)(o->grace * 1e9);
	for (;;) {
		now = lg_now();
		if (o->closed_loop && now >= w->t0 && now < w->t_end) {
			/* W outstanding per sender (see struct nconn's unacked) */
			for (i = 0; i < w->nsenders; i++) {
				struct nconn *c = &s.conns[w->senders[i] - w->first];
				uint32_t have;

				pthread_mutex_lock(&g_mu);
				have = c->unacked;
				pthread_mutex_unlock(&g_mu);
				for (; have < o->closed_loop && c->up; have++)
					publish(&s, c, now);
			}
		}
		for (burst = 0; burst < 1024; burst++) {
			bool due;

			pthread_mutex_lock(&g_mu);
			due = lg_due(w, lg_now(), &dev, &intended);
			pthread_mutex_unlock(&g_mu);
			if (!due)
				break;
			publish(&s, &s.conns[dev - w->first], intended);
		}
		if (o->pattern == LG_IDLE && now >= w->t_end)
			break;
		pthread_mutex_lock(&g_mu);
		outstanding = s.outstanding;
		last = w->last_delivery;
		pthread_mutex_unlock(&g_mu);
		if (now >= w->t_end && o->pattern != LG_IDLE) {
			bool quiet = now - last > 250000000ull && now - w->t_end > 250000000ull;

			if ((outstanding == 0 && quiet) || now >= stop_by)
				break;
		}
		{
			uint64_t until = lg_next_due(w);

			if (now < w->t0 && until > w->t0)
				until = w->t0;
			if (until > w->t_end && now < w->t_end)
				until = w->t_end;
			if (until == UINT64_MAX)
				until = now + 20000000ull;
			else if (until < now)
				until = now; /* behind schedule: poll, do not sleep */
			/* Closed loop: the callbacks wake us when a window opens;
			 * the 10 ms bound only limits how late the window's end is seen. */
			if (o->closed_loop && now >= w->t0 && now < w->t_end && until > now + 10000000ull)
				until = now + 10000000ull;
			turn(&s, until);
		}
	}
	/* The delivery thread must be quiet before the report is written. */
	for (i = 0; i < w->count; i++) {
		if (s.conns[i].sub)
			natsSubscription_Unsubscribe(s.conns[i].sub);
	}
	/* Keep the lock: the delivery thread must not touch the counters while
	 * the caller writes the report; the process exits right after. */
	pthread_mutex_lock(&g_mu);
	s.closing = true;
	return 0;
}

static int opt(struct lg_opts *o, const char *name, const char *val)
{
	(void)o;
	if (!strcmp(name, "cafile")) {
		snprintf(g_ca, sizeof(g_ca), "%s", val);
		return 0;
	}
	if (!strcmp(name, "io")) {
		if (strcmp(val, "threads") && strcmp(val, "evloop"))
			return -EINVAL;
		g_evloop = !strcmp(val, "evloop");
		return 0;
	}
	if (!strcmp(name, "write-deadline") || !strcmp(name, "io-buf")) {
		char *end;
		long v = strtol(val, &end, 10);

		if (*end || v < 0 || v > 1 << 30)
			return -EINVAL;
		if (name[0] == 'w')
			g_write_deadline_ms = v;
		else
			g_iobuf = (int)v;
		return 0;
	}
	if (!strcmp(name, "mode")) {
		if (strcmp(val, "core") && strcmp(val, "js"))
			return -EINVAL;
		g_js = !strcmp(val, "js");
		return 0;
	}
	return -ENOENT;
}

static int prepare(struct lg_opts *o)
{
	/* Core NATS has no per-message result: its window closes on delivery,
	 * which the sender's own process must see, so pairs must not straddle
	 * two worker processes (worker i holds devices [N*i/P, N*(i+1)/P)). */
	if (o->closed_loop && !g_js &&
	    (o->pattern != LG_PAIRS || o->devices % (2 * (o->processes ? o->processes : 1)))) {
		fprintf(stderr, "sealpost-loadgen-nats: --closed-loop with --mode core needs "
			"--pattern pairs and --devices a multiple of 2 x --processes (the window "
			"closes on delivery, seen in the sender's process)\n");
		return -EINVAL;
	}
	if (o->seal || o->pattern == LG_DRAIN) {
		fprintf(stderr, "sealpost-loadgen-nats: --seal and --pattern drain are sealpost only\n");
		return -EINVAL;
	}
	snprintf(o->variant, sizeof(o->variant), "%s%s, libnats %s%s",
		 g_js ? "JetStream file storage" : "core", g_ca[0] ? " TLS" : " plain TCP",
		 g_evloop ? "epoll event loop" : "threads",
		 o->closed_loop ? (g_js ? ", window closes on PubAck" : ", window closes on delivery")
				: "");
	return 0;
}

static const struct lg_driver driver = {
	.name = "nats",
	.help = "  --cafile FILE           TLS: trust this CA (without it: plain TCP)\n"
		"  --mode core|js          core NATS, or JetStream publish with PubAck (default core)\n"
		"  --io threads|evloop     libnats's own reader/flusher threads per connection\n"
		"                          (default), or all sockets on one epoll loop through\n"
		"                          its event-loop adapter interface (see the header)\n"
		"  --write-deadline MS     libnats write deadline (default 0: libnats's default)\n"
		"  --io-buf BYTES          libnats socket buffer size (default 0: libnats's 32 KiB)\n"
		"  --closed-loop W         JetStream: W awaiting PubAck per sender; core: W not yet\n"
		"                          delivered per sender (pairs; pairs within one process)\n",
	.opt = opt,
	.prepare = prepare,
	.worker = worker,
};

int main(int argc, char **argv)
{
	return lg_main(argc, argv, &driver);
}
