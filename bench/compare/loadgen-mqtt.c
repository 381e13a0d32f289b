/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sealpost-loadgen-mqtt: the load generator's MQTT peer, for bench/compare/.
 *
 * The same plan, rate control, histogram and report as sealpost-loadgen
 * (bench/loadgen/lg.c); only the wire differs. Each device is one
 * libmosquitto client (the official C library) over TLS, subscribed with
 * QoS 1 to its own topic "lg/<device>"; an envelope is a QoS 1 PUBLISH to
 * the recipient's topic, and its PUBACK plays the part of sealpost's
 * SendResult (counted as "acked").
 *
 * Fairness: no library threads. Every client of a worker process is driven
 * from one epoll loop through libmosquitto's external-loop interface
 * (mosquitto_socket, mosquitto_loop_read/_write/_misc, mosquitto_want_write),
 * the same one-loop-per-process shape as the io_uring sealpost client. Two
 * differences remain and are written down in docs/BENCHMARKS.md: the
 * library writes each PUBLISH with its own send() where the sealpost client
 * coalesces what is due in one loop turn, and mosquitto_connect() does the
 * TCP and TLS handshakes blocking, so connect-up is one device at a time
 * (handshakes/s is not comparable).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <mosquitto.h>

#include "lg.h"

enum { KEEPALIVE_S = 60, EPOLL_BATCH = 256, MQTT_INFLIGHT = 100 };

static char g_ca[LG_PATH_MAX];
static int g_qos = 1;

struct mconn {
	struct mosquitto *m;
	struct lgm *s;
	uint32_t dev;
	int fd;
	bool up, out_armed;
	uint64_t nsent;
	uint64_t *fifo;                 /* intended times of unacked publishes, in order */
	uint32_t fifo_head, fifo_len, fifo_cap;
};

struct lgm {
	struct lg_worker *w;
	struct mconn *conns;
	int ep;
	uint64_t outstanding;
	uint8_t *body;
	uint32_t pending_up;            /* CONNACK/SUBACK not yet seen */
};

static int fifo_push(struct mconn *c, uint64_t t)
{
	if (c->fifo_len == c->fifo_cap) {
		uint32_t ncap = c->fifo_cap ? c->fifo_cap * 2 : 16, i;
		uint64_t *n = malloc(ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		for (i = 0; i < c->fifo_len; i++)
			n[i] = c->fifo[(c->fifo_head + i) % c->fifo_cap];
		free(c->fifo);
		c->fifo = n;
		c->fifo_cap = ncap;
		c->fifo_head = 0;
	}
	c->fifo[(c->fifo_head + c->fifo_len++) % c->fifo_cap] = t;
	return 0;
}

static void arm(struct mconn *c)
{
	bool want = mosquitto_want_write(c->m);
	struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };

	if (c->fd < 0 || want == c->out_armed)
		return;
	c->out_armed = want;
	epoll_ctl(c->s->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
	struct mconn *c = ud;
	char topic[32];

	if (rc) {
		lg_count_error(c->s->w, LG_E_HANDSHAKE);
		c->s->pending_up--;
		return;
	}
	snprintf(topic, sizeof(topic), "lg/%u", c->dev);
	if (lg_is_receiver(c->s->w->o, c->dev)) {
		if (mosquitto_subscribe(m, NULL, topic, g_qos) != MOSQ_ERR_SUCCESS) {
			lg_count_error(c->s->w, LG_E_CLIENT);
			c->s->pending_up--;
		}
		return;
	}
	c->up = true;
	c->s->pending_up--;
	c->s->w->st.connected++;
	c->s->w->st.connect_end = lg_now();
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
	struct mconn *c = ud;

	(void)m;
	(void)mid;
	if (c->up)
		return;
	c->up = true;
	c->s->pending_up--;
	if (n < 1 || granted[0] > 2) {
		lg_count_error(c->s->w, LG_E_HANDSHAKE);
		return;
	}
	c->s->w->st.connected++;
	c->s->w->st.connect_end = lg_now();
}

/* PUBACK (QoS 1) or the write of a QoS 0 publish: in publish order. */
static void on_publish(struct mosquitto *m, void *ud, int mid)
{
	struct mconn *c = ud;
	uint64_t t;

	(void)m;
	(void)mid;
	if (!c->fifo_len)
		return;
	t = c->fifo[c->fifo_head];
	c->fifo_head = (c->fifo_head + 1) % c->fifo_cap;
	c->fifo_len--;
	c->s->outstanding--;
	/* 1 = the report's "acked"; closed loop refills from the main loop,
	 * never from inside a library callback. */
	lg_count_result(c->s->w, 1, t);
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
	struct mconn *c = ud;
	uint64_t intended;
	uint32_t sender;

	(void)m;
	if (lg_body_stamp(msg->payload, (size_t)msg->payloadlen, &intended, &sender)) {
		lg_count_error(c->s->w, LG_E_BAD_BODY);
		return;
	}
	lg_count_delivery(c->s->w, intended, lg_now());
}

static void on_disconnect(struct mosquitto *m, void *ud, int rc)
{
	struct mconn *c = ud;

	(void)m;
	if (rc)
		lg_count_error(c->s->w, c->up ? LG_E_CLOSED : LG_E_HANDSHAKE);
	if (c->fd >= 0)
		epoll_ctl(c->s->ep, EPOLL_CTL_DEL, c->fd, NULL);
	if (!c->up && c->s->pending_up)
		c->s->pending_up--;
	c->fd = -1;
	c->up = false;
}

static int dev_connect(struct lgm *s, struct mconn *c)
{
	const struct lg_opts *o = s->w->o;
	struct epoll_event ev = { .events = EPOLLIN };
	char id[48];
	int rc;

	snprintf(id, sizeof(id), "lg-%d-%u", (int)getppid(), c->dev);
	c->m = mosquitto_new(id, true, c);
	if (!c->m)
		return -ENOMEM;
	mosquitto_int_option(c->m, MOSQ_OPT_TCP_NODELAY, 1);
	/* Bounded: with no cap, tens of thousands of unacked QoS 1 messages make
	 * libmosquitto's per-PUBACK list search the bottleneck (measured: the
	 * client stalled). Excess publishes wait in the library's queue, which the
	 * open-loop latency (from the intended time) charges to the run. */
	mosquitto_max_inflight_messages_set(c->m, MQTT_INFLIGHT);
	mosquitto_connect_callback_set(c->m, on_connect);
	mosquitto_subscribe_callback_set(c->m, on_subscribe);
	mosquitto_publish_callback_set(c->m, on_publish);
	mosquitto_message_callback_set(c->m, on_message);
	mosquitto_disconnect_callback_set(c->m, on_disconnect);
	if (g_ca[0] && mosquitto_tls_set(c->m, g_ca, NULL, NULL, NULL, NULL) != MOSQ_ERR_SUCCESS)
		return -EINVAL;
	rc = mosquitto_connect(c->m, o->host, o->port, KEEPALIVE_S);
	if (rc != MOSQ_ERR_SUCCESS) {
		lg_count_error(s->w, LG_E_CONNECT);
		return 0;
	}
	c->fd = mosquitto_socket(c->m);
	/* mosquitto_connect leaves the socket blocking; on one loop for many
	 * clients a full send buffer (or half a TLS record) must not stall the
	 * process. libmosquitto handles EAGAIN / WANT_READ|WRITE itself. */
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	ev.data.ptr = c;
	epoll_ctl(s->ep, EPOLL_CTL_ADD, c->fd, &ev);
	c->out_armed = false;
	s->pending_up++;
	mosquitto_loop_write(c->m, 1);
	arm(c);
	return 0;
}

static void publish(struct lgm *s, struct mconn *c, uint64_t intended)
{
	const struct lg_opts *o = s->w->o;
	char topic[32];
	int rc;

	if (!c->up || c->fd < 0) {
		lg_count_error(s->w, LG_E_SENDER_DOWN);
		return;
	}
	snprintf(topic, sizeof(topic), "lg/%u", lg_target(o, c->dev, c->nsent));
	lg_body_fill(s->body, o->size, intended, c->dev);
	if (fifo_push(c, intended))
		return;
	rc = mosquitto_publish(c->m, NULL, topic, (int)o->size, s->body, g_qos, false);
	if (rc != MOSQ_ERR_SUCCESS) {
		c->fifo_len--;
		lg_count_error(s->w, LG_E_CLIENT);
		return;
	}
	c->nsent++;
	s->outstanding++;
	lg_count_sent(s->w, intended);
	arm(c);
}

/* One epoll turn, at most until `until`. */
static void turn(struct lgm *s, uint64_t until)
{
	struct epoll_event evs[EPOLL_BATCH];
	uint64_t now = lg_now();
	int n, i, ms = until > now ? (int)((until - now + 999999) / 1000000) : 0;

	lg_worker_tick(s->w);

	if (ms > 100)
		ms = 100;
	n = epoll_wait(s->ep, evs, EPOLL_BATCH, ms);
	for (i = 0; i < n; i++) {
		struct mconn *c = evs[i].data.ptr;

		if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			mosquitto_loop_read(c->m, 64);
		if (c->fd >= 0 && (evs[i].events & EPOLLOUT))
			mosquitto_loop_write(c->m, 64);
		if (c->fd >= 0)
			arm(c);
	}
}

static void misc_all(struct lgm *s)
{
	uint32_t i;

	for (i = 0; i < s->w->count; i++)
		if (s->conns[i].fd >= 0)
			mosquitto_loop_misc(s->conns[i].m);
}

static struct mconn *conn_of(struct lgm *s, uint32_t dev)
{
	return &s->conns[dev - s->w->first];
}

static int worker(struct lg_worker *w)
{
	const struct lg_opts *o = w->o;
	struct lgm s;
	uint64_t deadline, now, stop_by, last_misc = 0, intended;
	uint32_t i, k, dev, burst;
	bool filled = false;
	int ret;

	memset(&s, 0, sizeof(s));
	s.w = w;
	mosquitto_lib_init();
	s.ep = epoll_create1(EPOLL_CLOEXEC);
	s.conns = calloc(w->count, sizeof(*s.conns));
	s.body = malloc(o->size);
	if (s.ep < 0 || !s.conns || !s.body)
		return -ENOMEM;
	w->st.connect_begin = lg_now();
	deadline = w->st.connect_begin + (uint64_t)(o->connect_timeout * 1e9);
	for (i = 0; i < w->count; i++) {
		struct mconn *c = &s.conns[i];

		c->s = &s;
		c->dev = w->first + i;
		c->fd = -1;
		if (!lg_connects_early(o, c->dev))
			continue;
		ret = dev_connect(&s, c);
		if (ret)
			return ret;
		/* keep CONNACKs flowing while the blocking connects go on */
		turn(&s, 0);
		while (s.pending_up >= o->connect_concurrency && lg_now() < deadline)
			turn(&s, lg_now() + 10000000ull);
	}
	while (s.pending_up && lg_now() < deadline)
		turn(&s, lg_now() + 10000000ull);
	ret = lg_worker_ready(w);
	if (ret)
		return ret;
	stop_by = w->t_end + (uint64_t)(o->grace * 1e9);
	for (;;) {
		now = lg_now();
		if (o->closed_loop && now >= w->t0 && now < w->t_end) {
			/* keep W unacked per sender: refill after PUBACKs */
			for (i = 0; i < w->nsenders; i++) {
				struct mconn *c = conn_of(&s, w->senders[i]);

				for (k = c->fifo_len; k < o->closed_loop && c->up; k++)
					publish(&s, c, now);
			}
			filled = true;
		}
		/* A bounded burst, then I/O: a client behind schedule still reads. */
		for (burst = 0; burst < 1024 && lg_due(w, lg_now(), &dev, &intended); burst++)
			publish(&s, conn_of(&s, dev), intended);
		if (now - last_misc > 1000000000ull) {
			misc_all(&s);
			last_misc = now;
		}
		if (o->pattern == LG_IDLE && now >= w->t_end)
			break;
		if (now >= w->t_end && o->pattern != LG_IDLE) {
			bool quiet = now - w->last_delivery > 250000000ull &&
				     now - w->t_end > 250000000ull;

			if ((s.outstanding == 0 && quiet) || now >= stop_by)
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
			if (o->closed_loop && now >= w->t0 && now < w->t_end)
				until = now + 1000000ull;
			turn(&s, until);
		}
	}
	(void)filled;
	for (i = 0; i < w->count; i++)
		if (s.conns[i].m) {
			if (s.conns[i].fd >= 0)
				mosquitto_disconnect(s.conns[i].m);
			mosquitto_destroy(s.conns[i].m);
		}
	mosquitto_lib_cleanup();
	return 0;
}

static int opt(struct lg_opts *o, const char *name, const char *val)
{
	(void)o;
	if (!strcmp(name, "cafile")) {
		snprintf(g_ca, sizeof(g_ca), "%s", val);
		return 0;
	}
	if (!strcmp(name, "qos")) {
		if (strcmp(val, "0") && strcmp(val, "1"))
			return -EINVAL;
		g_qos = atoi(val);
		return 0;
	}
	return -ENOENT;
}

static int prepare(struct lg_opts *o)
{
	if (o->seal) {
		fprintf(stderr, "sealpost-loadgen-mqtt: --seal is sealpost only\n");
		return -EINVAL;
	}
	if (o->pattern == LG_DRAIN) {
		fprintf(stderr, "sealpost-loadgen-mqtt: --pattern drain is sealpost only\n");
		return -EINVAL;
	}
	snprintf(o->variant, sizeof(o->variant), "QoS %d%s, libmosquitto", g_qos,
		 g_ca[0] ? " TLS" : " plain TCP");
	return 0;
}

static const struct lg_driver driver = {
	.name = "mqtt",
	.help = "  --cafile FILE           TLS: trust this CA (without it: plain TCP)\n"
		"  --qos 0|1               MQTT QoS of publish and subscribe (default 1)\n",
	.opt = opt,
	.prepare = prepare,
	.worker = worker,
};

int main(int argc, char **argv)
{
	return lg_main(argc, argv, &driver);
}
