/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lg.c: the load generator's shared half (see lg.h).
 */
#include "lg.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "sp_clock.h"
#include "sp_frame.h"
#include "sp_fsutil.h"
#include "sp_hostport.h"

#include "hdrlog.h"

#ifndef SP_VERSION
#error "SP_VERSION must be defined by the build"
#endif

enum {
	NS = 1000000000,
	PUBLISH_NS = 100000000,         /* a worker's counters reach the progress line this often */
	METRICS_BODY_MAX = 4 << 20,     /* a /metrics answer larger than this is refused */
	METRICS_TIMEOUT_MS = 2000,      /* per connect / send / receive of a metrics scrape */
	EXIT_FAILED_RUN = 3,            /* ran, but devices did not connect or errors occurred */
};

/* Worker -> parent barrier messages. */
enum lg_msg_kind { LG_MSG_READY = 1, LG_MSG_FILLED = 2, LG_MSG_REPORT = 3, LG_MSG_FAIL = 4 };
struct lg_msg {
	uint32_t kind;
	uint32_t pad;
};

uint64_t lg_now(void)
{
	return sp_clock_mono_ns();
}

static void publish(struct lg_worker *w)
{
	if (w->live)
		memcpy(&w->live->st, &w->st, sizeof(w->st));
}

static double self_cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

void lg_worker_tick(struct lg_worker *w)
{
	uint64_t now = lg_now();

	/* The window's client CPU, so a client-bound run shows beside the
	 * broker's window figure (connect-up and grace left out). */
	if (w->t_end && now >= w->t_warm && w->cpu_at_warm < 0)
		w->cpu_at_warm = self_cpu_s();
	if (w->t_end && now >= w->t_end && w->cpu_at_end < 0)
		w->cpu_at_end = self_cpu_s();
	if (now < w->next_publish)
		return;
	w->next_publish = now + PUBLISH_NS;
	publish(w);
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / NS), .tv_nsec = (long)(t % NS) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ------------------------------------------------------------------ plan --- */

bool lg_is_sender(const struct lg_opts *o, uint32_t dev)
{
	switch (o->pattern) {
	case LG_PAIRS:
		return true;
	case LG_FANIN:
		return dev != 0;
	case LG_FANOUT:
		return dev == 0;
	case LG_DRAIN:
		return (dev & 1) == 0;
	case LG_IDLE:
		return false;
	}
	return false;
}

bool lg_is_receiver(const struct lg_opts *o, uint32_t dev)
{
	switch (o->pattern) {
	case LG_PAIRS:
		return true;
	case LG_FANIN:
		return dev == 0;
	case LG_FANOUT:
		return dev != 0;
	case LG_DRAIN:
		return (dev & 1) == 1;
	case LG_IDLE:
		return false;
	}
	return false;
}

bool lg_connects_early(const struct lg_opts *o, uint32_t dev)
{
	return o->pattern != LG_DRAIN || lg_is_sender(o, dev);
}

bool lg_on_recv_server(const struct lg_opts *o, uint32_t dev)
{
	if (!o->recv_addr_len)
		return false;
	if (o->pattern == LG_PAIRS || o->pattern == LG_DRAIN)
		return (dev & 1) == 1;
	return lg_is_receiver(o, dev);
}

uint32_t lg_target(const struct lg_opts *o, uint32_t dev, uint64_t n)
{
	switch (o->pattern) {
	case LG_PAIRS:
	case LG_DRAIN:
		return dev ^ 1u;
	case LG_FANIN:
		return 0;
	case LG_FANOUT:
		return 1 + (uint32_t)(n % (o->devices - 1));
	case LG_IDLE:
		break;
	}
	return dev;
}

static uint64_t count_senders(const struct lg_opts *o, uint32_t first, uint32_t count)
{
	uint64_t n = 0;
	uint32_t d;

	for (d = first; d < first + count; d++)
		n += lg_is_sender(o, d);
	return n;
}

/* -------------------------------------------------------------- barriers --- */

static int barrier(struct lg_worker *w, uint32_t kind, uint64_t *t)
{
	struct lg_msg m = { .kind = kind };
	int ret;

	publish(w);
	ret = sp_fsutil_write_all(w->to_parent, &m, sizeof(m));
	if (!ret)
		ret = sp_fsutil_write_all(w->to_parent, &w->st, sizeof(w->st));
	if (!ret)
		ret = read_all(w->from_parent, t, sizeof(*t));
	return ret;
}

int lg_worker_ready(struct lg_worker *w)
{
	const struct lg_opts *o = w->o;
	uint64_t t0, total;
	uint32_t d;
	int ret;

	ret = barrier(w, LG_MSG_READY, &t0);
	if (ret)
		return ret;
	w->t0 = t0;
	w->t_warm = t0 + (uint64_t)(o->warmup * NS);
	w->t_end = w->t_warm + (uint64_t)(o->duration * NS);
	if (o->pattern == LG_DRAIN) { /* the fill has no warm-up: every envelope is backlog */
		w->t_warm = t0;
		w->t_end = t0 + (uint64_t)(o->duration * NS);
	}
	w->nsenders = 0;
	w->senders = calloc(w->count ? w->count : 1, sizeof(*w->senders));
	if (!w->senders)
		return -ENOMEM;
	for (d = w->first; d < w->first + w->count; d++)
		if (lg_is_sender(o, d))
			w->senders[w->nsenders++] = d;
	total = count_senders(o, 0, o->devices);
	w->period_ns = 0;
	if (w->nsenders && total && o->rate > 0)
		w->period_ns = (double)NS * (double)total / (o->rate * (double)w->nsenders);
	w->last_delivery = t0;
	return 0;
}

int lg_worker_filled(struct lg_worker *w, uint64_t *t1)
{
	int ret = barrier(w, LG_MSG_FILLED, t1);

	if (!ret)
		w->t1 = *t1;
	return ret;
}

/* ------------------------------------------------------------- open loop --- */

uint64_t lg_next_due(const struct lg_worker *w)
{
	uint64_t t;

	if (!w->nsenders || w->period_ns <= 0 || w->o->closed_loop)
		return UINT64_MAX;
	t = w->t0 + (uint64_t)((double)w->k * w->period_ns);
	return t < w->t_end ? t : UINT64_MAX;
}

bool lg_sending(const struct lg_worker *w, uint64_t now)
{
	return now >= w->t0 && now < w->t_end;
}

bool lg_due(struct lg_worker *w, uint64_t now, uint32_t *dev, uint64_t *intended)
{
	uint64_t t = lg_next_due(w);

	if (now >= w->next_publish)
		lg_worker_tick(w);
	if (t == UINT64_MAX || t > now)
		return false;
	if (now >= w->t_end) {
		/* Behind schedule at the end of the window: skip what is owed. */
		uint64_t total = (uint64_t)ceil((double)(w->t_end - w->t0) / w->period_ns);

		if (total > w->k)
			w->st.unsent += total - w->k;
		w->k = total;
		return false;
	}
	*intended = t;
	*dev = w->senders[w->rr];
	w->rr = (w->rr + 1) % w->nsenders;
	w->k++;
	return true;
}

/* ------------------------------------------------------------ accounting --- */

static bool in_window(const struct lg_worker *w, uint64_t intended)
{
	return intended >= w->t_warm && intended < w->t_end;
}

void lg_count_sent(struct lg_worker *w, uint64_t intended)
{
	uint64_t now = lg_now(), lag = now > intended ? now - intended : 0;

	if (lag > 1000000)
		w->st.late_1ms++;
	if (lag > w->st.lag_max_ns)
		w->st.lag_max_ns = lag;
	w->st.sent++;
	if (in_window(w, intended))
		w->st.sent_window++;
	if (now >= w->next_publish)
		lg_worker_tick(w);
}

void lg_count_result(struct lg_worker *w, int status, uint64_t intended)
{
	w->st.results[status >= 0 && status < LG_STATUS_SLOTS - 1 ? status : LG_STATUS_SLOTS - 1]++;
	if ((status == SP_STATUS_DELIVERED || status == SP_STATUS_ACCEPTED) && in_window(w, intended))
		w->st.results_ok_window++;
}

/* --hdr-log: the interval histogram's nonzero buckets and summary appended
 * to the worker's lists; the histogram is then empty. */
static void ival_flush(struct lg_worker *w)
{
	struct hdr *h = w->ival;
	size_t i, lo, hi;

	if (!h->total)
		return;
	if (w->nis == w->cap_is) {
		size_t cap = w->cap_is ? w->cap_is * 2 : 64;
		struct lg_ival_sum *n = realloc(w->is, cap * sizeof(*n));

		if (!n)
			goto fail;
		w->is = n;
		w->cap_is = cap;
	}
	w->is[w->nis++] = (struct lg_ival_sum){ .ival = w->ival_k, .total = h->total,
						.min = h->min, .max = h->max };
	lo = hdr_index(h->min);
	hi = hdr_index(h->max);
	for (i = lo; i <= hi; i++) {
		if (!h->counts[i])
			continue;
		if (w->nib == w->cap_ib) {
			size_t cap = w->cap_ib ? w->cap_ib * 2 : 1024;
			struct lg_ival_bucket *n = realloc(w->ib, cap * sizeof(*n));

			if (!n)
				goto fail;
			w->ib = n;
			w->cap_ib = cap;
		}
		w->ib[w->nib++] = (struct lg_ival_bucket){ .ival = w->ival_k, .idx = (uint32_t)i,
							  .count = h->counts[i] };
	}
	hdr_reset(h);
	return;
fail:
	/* The log would be incomplete: the run reports it as a client error. */
	lg_count_error(w, LG_E_CLIENT);
	hdr_reset(h);
}

/* A latency sample into the interval (of --hdr-interval seconds from t0)
 * that `now` falls in; an interval is closed by the first sample after it. */
static void ival_record(struct lg_worker *w, uint64_t now, uint64_t v)
{
	uint64_t len = (uint64_t)(w->o->hdr_interval * NS);
	uint32_t k = (uint32_t)((now > w->t0 ? now - w->t0 : 0) / (len ? len : NS));

	if (k != w->ival_k) {
		ival_flush(w);
		w->ival_k = k;
	}
	hdr_record(w->ival, v);
}

void lg_count_delivery(struct lg_worker *w, uint64_t intended, uint64_t now)
{
	w->st.delivered++;
	w->last_delivery = now;
	if (!in_window(w, intended))
		return;
	w->st.delivered_window++;
	/* drain: the envelope waited offline by design; what matters is how soon
	 * after its recipient came back it arrived. */
	if (w->t1)
		intended = w->t1;
	hdr_record(w->lat, now > intended ? now - intended : 0);
	if (w->ival)
		ival_record(w, now, now > intended ? now - intended : 0);
	if (now >= w->next_publish)
		lg_worker_tick(w);
}

void lg_count_error(struct lg_worker *w, enum lg_err e)
{
	w->st.errors[e]++;
}

/* ---------------------------------------------------------------- bodies --- */

void lg_body_fill(uint8_t *buf, size_t len, uint64_t intended, uint32_t sender)
{
	size_t i;

	for (i = 0; i < 8; i++)
		buf[i] = (uint8_t)(intended >> (8 * i));
	for (i = 0; i < 4; i++)
		buf[8 + i] = (uint8_t)(sender >> (8 * i));
	/* Filler: cheap and different per envelope, so no layer can compress or
	 * deduplicate it; its bytes mean nothing. */
	for (i = LG_STAMP_LEN; i < len; i++)
		buf[i] = (uint8_t)(intended * 31 + i * 131);
}

int lg_body_stamp(const uint8_t *buf, size_t len, uint64_t *intended, uint32_t *sender)
{
	uint64_t t = 0;
	uint32_t s = 0;
	int i;

	if (len < LG_STAMP_LEN)
		return -EBADMSG;
	for (i = 7; i >= 0; i--)
		t = t << 8 | buf[i];
	for (i = 3; i >= 0; i--)
		s = s << 8 | buf[8 + i];
	*intended = t;
	*sender = s;
	return 0;
}

/* ----------------------------------------------------------------- /proc --- */

/* Inode of the socket listening on port (IPv4 or IPv6), 0 if none. */
static unsigned long listen_inode(uint16_t port)
{
	const char *files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	char line[512];
	size_t i;

	for (i = 0; i < 2; i++) {
		FILE *f = fopen(files[i], "r");

		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			char local[128];
			unsigned st, lport;
			unsigned long inode;
			char *colon;

			/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
			if (sscanf(line, " %*s %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &st,
				   &inode) != 3)
				continue;
			colon = strrchr(local, ':');
			if (!colon || sscanf(colon + 1, "%x", &lport) != 1)
				continue;
			if (st == 0x0A && lport == port && inode) {
				fclose(f);
				return inode;
			}
		}
		fclose(f);
	}
	return 0;
}

/* The pid holding the listening socket on port, or 0. */
static int find_broker_pid(uint16_t port)
{
	unsigned long inode = listen_inode(port);
	char want[64], path[600], link[128];
	struct dirent *p, *fde;
	DIR *proc;
	int found = 0;

	if (!inode)
		return 0;
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	proc = opendir("/proc");
	if (!proc)
		return 0;
	while (!found && (p = readdir(proc))) {
		DIR *fds;

		if (p->d_name[0] < '1' || p->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd", p->d_name);
		fds = opendir(path);
		if (!fds)
			continue;
		while ((fde = readdir(fds))) {
			ssize_t n;

			snprintf(path, sizeof(path), "/proc/%s/fd/%s", p->d_name, fde->d_name);
			n = readlink(path, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			if (strcmp(link, want) == 0) {
				found = atoi(p->d_name);
				break;
			}
		}
		closedir(fds);
	}
	closedir(proc);
	return found;
}

/* utime + stime of pid in seconds; -1 if unreadable. */
static double proc_cpu_s(int pid)
{
	char path[64], buf[2048], *p;
	unsigned long long ut, stt;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: skip to the last ')'. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			 &stt) != 2)
		return -1;
	return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

/* VmRSS of pid in KiB; -1 if unreadable. */
static long proc_rss_kib(int pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* CPU seconds the whole machine spent busy (all CPUs, /proc/stat), -1 if unreadable. */
static double machine_busy_s(void)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (!f)
		return -1;
	/* cpu user nice system idle iowait irq softirq steal */
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 4)
		return -1;
	return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

/* ------------------------------------------------------------- /metrics --- */

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);

/*
 * One scrape of a Prometheus text endpoint: GET over plain HTTP/1.0, the
 * body read to the end (bounded by METRICS_BODY_MAX and METRICS_TIMEOUT_MS
 * per step). url: "http://HOST:PORT/PATH" (HOST a name, IPv4 or [IPv6]).
 * *body: malloc'd, NUL-terminated, the caller frees it. 0 or a negative errno.
 */
static int http_get(const char *url, char **body)
{
	struct sp_hostport hp;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct timeval tv = { .tv_sec = METRICS_TIMEOUT_MS / 1000,
			      .tv_usec = (METRICS_TIMEOUT_MS % 1000) * 1000 };
	char hostport[300], req[900], *buf = NULL, *p;
	const char *path;
	size_t len = 0, cap = 0, n;
	int fd, ret;

	*body = NULL;
	if (strncmp(url, "http://", 7) != 0)
		return -EINVAL;
	url += 7;
	path = strchr(url, '/');
	n = path ? (size_t)(path - url) : strlen(url);
	if (!path)
		path = "/metrics";
	if (n == 0 || n >= sizeof(hostport))
		return -EINVAL;
	memcpy(hostport, url, n);
	hostport[n] = '\0';
	if (sp_hostport_split(hostport, &hp) < 0 || hp.port == 0)
		return -EINVAL;
	if (sp_hostport_sockaddr(&hp, &ss, &sl) < 0 && (ret = resolve(hp.host, hp.port, &ss, &sl)))
		return ret;
	if (snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\nAccept: text/plain\r\n"
		     "Connection: close\r\n\r\n", path, hostport) >= (int)sizeof(req))
		return -EINVAL;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* SO_SNDTIMEO bounds connect() too on Linux. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		ret = -errno;
		goto out;
	}
	ret = sp_fsutil_write_all(fd, req, strlen(req));
	if (ret)
		goto out;
	for (;;) {
		ssize_t r;

		if (len + 4096 + 1 > cap) {
			char *nb;

			if (cap >= METRICS_BODY_MAX) {
				ret = -EFBIG;
				goto out;
			}
			cap = cap ? cap * 2 : 65536;
			nb = realloc(buf, cap);
			if (!nb) {
				ret = -ENOMEM;
				goto out;
			}
			buf = nb;
		}
		r = read(fd, buf + len, cap - len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (!buf) {
		ret = -EPROTO;
		goto out;
	}
	buf[len] = '\0';
	if (strncmp(buf, "HTTP/1.", 7) != 0 || strncmp(buf + 8, " 200", 4) != 0 ||
	    !(p = strstr(buf, "\r\n\r\n"))) {
		ret = -EPROTO;
		goto out;
	}
	memmove(buf, p + 4, len - (size_t)(p + 4 - buf) + 1);
	*body = buf;
	buf = NULL;
	ret = 0;
out:
	close(fd);
	free(buf);
	return ret;
}

/* The value of the first sample of one of `names` (no labels, or any), or -1. */
static double metric_value(const char *body, const char *const *names)
{
	for (; *names; names++) {
		size_t nl = strlen(*names);
		const char *line = body, *next;

		for (; line && *line; line = next) {
			const char *v;
			char *end;
			double d;

			next = strchr(line, '\n');
			if (next)
				next++;
			if (strncmp(line, *names, nl) != 0 || (line[nl] != ' ' && line[nl] != '{'))
				continue;
			v = line + nl;
			if (*v == '{' && !(v = strchr(v, '}')))
				continue;
			if (*v == '}')
				v++;
			d = strtod(v, &end);
			if (end != v && d >= 0)
				return d;
		}
	}
	return -1;
}

/* Broker CPU seconds and resident bytes from its /metrics, -1 each if unknown.
 * Either name: the standard process_* families, or sealpost_-prefixed ones. */
static void metrics_sample(const char *url, double *cpu_s, long *rss_kib)
{
	static const char *const cpu_names[] = { "process_cpu_seconds_total",
						 "sealpost_process_cpu_seconds_total", NULL };
	static const char *const rss_names[] = { "process_resident_memory_bytes",
						 "sealpost_process_resident_memory_bytes", NULL };
	char *body;
	double rss;

	*cpu_s = -1;
	*rss_kib = -1;
	if (http_get(url, &body))
		return;
	*cpu_s = metric_value(body, cpu_names);
	rss = metric_value(body, rss_names);
	*rss_kib = rss >= 0 ? (long)(rss / 1024) : -1;
	free(body);
}

/* --------------------------------------------------------------- options --- */

static const char *pattern_name(enum lg_pattern p)
{
	static const char *names[] = { "pairs", "fanin", "fanout", "drain", "idle" };

	return names[p];
}

static void usage(FILE *f, const char *prog, const struct lg_driver *d)
{
	fprintf(f,
		"usage: %s [--server HOST:PORT] [options]\n"
		"A swarm of devices against a %s broker; prints a summary and, with --json,\n"
		"a machine-readable report. Bounded: stops by itself. Exit status 0 when every\n"
		"device connected and nothing failed, 3 when not, 1 when it could not run, 2 for\n"
		"bad options.\n\n"
		"  --server HOST:PORT      broker address (default 127.0.0.1:7400); 127.0.0.0/8,\n"
		"                          localhost or [::1] unless --allow-remote\n"
		"  --allow-remote          allow any address or host name as --server\n"
		"  --recv-server HOST:PORT the second device of each pair (fanin, fanout: the\n"
		"                          receivers) connects here: another node of a\n"
		"                          clustered broker, so every envelope crosses nodes\n"
		"  --devices N             devices, one connection each (default 100)\n"
		"  --pattern P             pairs | fanin | fanout | drain | idle (default pairs)\n"
		"  --size BYTES            envelope body size (default 256)\n"
		"  --rate R                envelopes/s, all senders together, open loop (default 1000)\n"
		"  --closed-loop W         instead: W envelopes outstanding per sender\n"
		"  --durable               store-and-forward (acks); default online-only\n"
		"  --online-only           the default\n"
		"  --duration S            measured seconds (default 10)\n"
		"  --warmup S              unmeasured seconds before (default 2)\n"
		"  --processes P           worker processes, at least (default 1)\n"
		"  --max-per-process N     connections per process, at most (default %d)\n"
		"  --connect-concurrency N handshakes in flight per process (default 256)\n"
		"  --connect-timeout S     bound on connect-up (default 60)\n"
		"  --grace S               wait for stragglers after the window (default 5)\n"
		"  --broker-pid PID        broker process for CPU/memory (default: found by port)\n"
		"  --metrics URL           broker CPU/memory from its Prometheus endpoint instead,\n"
		"                          http://HOST:PORT/metrics (for a broker on another host)\n"
		"  --json FILE             write the report as JSON ('-' for stdout)\n"
		"  --hdr-log FILE          write the latency histogram as an HdrHistogram interval log\n"
		"  --hdr-interval S        seconds per interval of --hdr-log (default 1)\n"
		"  --no-progress           no progress line every second on stderr\n"
		"  --quiet                 no human summary and no progress lines\n"
		"  --help                  this text\n",
		prog, d->name, LG_DEFAULT_MAX_PER_PROCESS);
	if (d->help)
		fputs(d->help, f);
}

static bool is_loopback(const struct sockaddr_storage *a)
{
	const struct sockaddr_in *v4 = (const struct sockaddr_in *)a;
	const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)a;

	return a->ss_family == AF_INET ? (ntohl(v4->sin_addr.s_addr) >> 24) == 127
				       : IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
}

/* A host name through the resolver (first TCP address), for --allow-remote. */
static int resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints, *res = NULL;
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	r = getaddrinfo(host, NULL, &hints, &res);
	if (r != 0 || !res || res->ai_addrlen > sizeof(*ss)) {
		if (res)
			freeaddrinfo(res);
		return -EHOSTUNREACH;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = (socklen_t)res->ai_addrlen;
	freeaddrinfo(res);
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	else
		return -EAFNOSUPPORT;
	return 0;
}

/*
 * Loopback unless allow_remote: a load generator is a denial of service
 * for whatever it points at, so reaching another host takes a second flag.
 * Without it, names other than localhost are not even resolved.
 * -EINVAL malformed, -EPERM not loopback, -EHOSTUNREACH name not resolved.
 */
static int parse_server(struct lg_opts *o, const char *s, bool allow_remote)
{
	struct sp_hostport hp;
	const void *ip;

	snprintf(o->server, sizeof(o->server), "%s", s);
	if (sp_hostport_split(s, &hp) < 0 || hp.port == 0)
		return -EINVAL;
	if (!hp.bracketed && strcmp(hp.host, "localhost") == 0)
		snprintf(hp.host, sizeof(hp.host), "127.0.0.1");
	if (sp_hostport_sockaddr(&hp, &o->addr, &o->addr_len) < 0) {
		int r;

		if (!allow_remote)
			return -EPERM;
		r = resolve(hp.host, hp.port, &o->addr, &o->addr_len);
		if (r)
			return r;
	}
	o->local = is_loopback(&o->addr);
	if (!o->local && !allow_remote)
		return -EPERM;
	ip = o->addr.ss_family == AF_INET
		? (const void *)&((struct sockaddr_in *)&o->addr)->sin_addr
		: (const void *)&((struct sockaddr_in6 *)&o->addr)->sin6_addr;
	if (!inet_ntop(o->addr.ss_family, ip, o->host, sizeof(o->host)))
		return -EINVAL;
	o->port = hp.port;
	return 0;
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	double v;

	if (parse_num(s, lo, hi, &v) || v != floor(v))
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static void defaults(struct lg_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->devices = 100;
	o->pattern = LG_PAIRS;
	o->size = 256;
	o->rate = 1000;
	o->duration = 10;
	o->warmup = 2;
	o->processes = 1;
	o->max_per_process = LG_DEFAULT_MAX_PER_PROCESS;
	o->connect_concurrency = 256;
	o->connect_timeout = 60;
	o->grace = 5;
	o->hdr_interval = 1;
}

/* Returns 0 to run, 1 for --help, -1 after printing an error. */
static int parse_args(struct lg_opts *o, int argc, char **argv, const struct lg_driver *d)
{
	const char *server = "127.0.0.1:7400", *recv_server = NULL;
	int i;

	defaults(o);
	o->argc = argc;
	o->argv = argv;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *n, *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = 0, used = 1;

		if (strncmp(a, "--", 2) != 0) {
			fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], a);
			return -1;
		}
		n = a + 2;
		if (!strcmp(n, "help"))
			return 1;
		/* flags */
		if (!strcmp(n, "durable")) {
			o->durable = true;
			continue;
		} else if (!strcmp(n, "online-only")) {
			o->durable = false;
			continue;
		} else if (!strcmp(n, "seal")) {
			o->seal = true;
			continue;
		} else if (!strcmp(n, "quiet")) {
			o->quiet = true;
			continue;
		} else if (!strcmp(n, "no-progress")) {
			o->no_progress = true;
			continue;
		} else if (!strcmp(n, "allow-remote")) {
			o->allow_remote = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "%s: %s needs a value\n", argv[0], a);
			return -1;
		}
		if (!strcmp(n, "server")) {
			server = v;
		} else if (!strcmp(n, "recv-server")) {
			recv_server = v;
		} else if (!strcmp(n, "metrics")) {
			bad = strncmp(v, "http://", 7) != 0 || strlen(v) >= sizeof(o->metrics_url);
			snprintf(o->metrics_url, sizeof(o->metrics_url), "%s", v);
		} else if (!strcmp(n, "hdr-log")) {
			snprintf(o->hdr_log, sizeof(o->hdr_log), "%s", v);
		} else if (!strcmp(n, "hdr-interval")) {
			bad = parse_num(v, 0.001, 3600, &o->hdr_interval);
		} else if (!strcmp(n, "server-key")) {
			bad = strlen(v) != 64;
			snprintf(o->server_key_hex, sizeof(o->server_key_hex), "%s", v);
		} else if (!strcmp(n, "data-dir")) {
			snprintf(o->data_dir, sizeof(o->data_dir), "%s", v);
		} else if (!strcmp(n, "devices")) {
			bad = parse_u32(v, 1, 10000000, &o->devices);
		} else if (!strcmp(n, "pattern")) {
			enum lg_pattern p;

			bad = 1;
			for (p = LG_PAIRS; p <= LG_IDLE; p++)
				if (!strcmp(v, pattern_name(p))) {
					o->pattern = p;
					bad = 0;
				}
		} else if (!strcmp(n, "size")) {
			bad = parse_u32(v, LG_STAMP_LEN, 64000, &o->size);
		} else if (!strcmp(n, "rate")) {
			bad = parse_num(v, 0, 1e9, &o->rate);
		} else if (!strcmp(n, "closed-loop")) {
			bad = parse_u32(v, 1, 1000000, &o->closed_loop);
		} else if (!strcmp(n, "duration")) {
			bad = parse_num(v, 0, 3600, &o->duration);
		} else if (!strcmp(n, "warmup")) {
			bad = parse_num(v, 0, 3600, &o->warmup);
		} else if (!strcmp(n, "processes")) {
			bad = parse_u32(v, 1, 256, &o->processes);
		} else if (!strcmp(n, "max-per-process")) {
			bad = parse_u32(v, 1, 19000, &o->max_per_process);
		} else if (!strcmp(n, "connect-concurrency")) {
			bad = parse_u32(v, 1, 100000, &o->connect_concurrency);
		} else if (!strcmp(n, "connect-timeout")) {
			bad = parse_num(v, 0.1, 3600, &o->connect_timeout);
		} else if (!strcmp(n, "grace")) {
			bad = parse_num(v, 0, 600, &o->grace);
		} else if (!strcmp(n, "broker-pid")) {
			uint32_t pid = 0;

			bad = parse_u32(v, 1, INT_MAX, &pid);
			o->broker_pid = (int)pid;
		} else if (!strcmp(n, "json")) {
			snprintf(o->json, sizeof(o->json), "%s", v);
		} else {
			int r = d->opt ? d->opt(o, n, v) : -ENOENT;

			if (r == -ENOENT) {
				fprintf(stderr, "%s: unknown option %s (see --help)\n", argv[0], a);
				return -1;
			}
			bad = r != 0;
		}
		if (bad) {
			fprintf(stderr, "%s: %s: bad value '%s' (see --help)\n", argv[0], a, v);
			return -1;
		}
		i += used;
	}
	/* After the loop: --allow-remote may follow --server. */
	switch (parse_server(o, server, o->allow_remote)) {
	case 0:
		break;
	case -EPERM:
		fprintf(stderr, "%s: --server %s: only loopback addresses (127.0.0.0/8, localhost, "
			"[::1]) are allowed without --allow-remote\n", argv[0], server);
		return -1;
	case -EHOSTUNREACH:
		fprintf(stderr, "%s: --server %s: host name not resolved\n", argv[0], server);
		return -1;
	default:
		fprintf(stderr, "%s: --server %s: bad value (HOST:PORT, IPv6 as [::1]:PORT)\n",
			argv[0], server);
		return -1;
	}
	if (recv_server) {
		/* The same checks as --server, on a scratch copy: only the address
		 * is kept. */
		struct lg_opts *t = malloc(sizeof(*t));
		int r = t ? parse_server(t, recv_server, o->allow_remote) : -ENOMEM;

		if (r == 0) {
			snprintf(o->recv_server, sizeof(o->recv_server), "%s", recv_server);
			o->recv_addr = t->addr;
			o->recv_addr_len = t->addr_len;
		}
		free(t);
		if (r) {
			fprintf(stderr, "%s: --recv-server %s: bad value or not allowed (as --server)\n",
				argv[0], recv_server);
			return -1;
		}
	}
	if ((o->pattern == LG_PAIRS || o->pattern == LG_DRAIN) && (o->devices < 2 || o->devices & 1)) {
		fprintf(stderr, "%s: --pattern %s needs an even number of devices\n", argv[0],
			pattern_name(o->pattern));
		return -1;
	}
	if ((o->pattern == LG_FANIN || o->pattern == LG_FANOUT) && o->devices < 2) {
		fprintf(stderr, "%s: --pattern %s needs at least 2 devices\n", argv[0],
			pattern_name(o->pattern));
		return -1;
	}
	if (o->pattern == LG_DRAIN && !o->durable) {
		/* An offline backlog only exists with store-and-forward. */
		o->durable = true;
	}
	if (o->seal && o->size < SP_SEAL_OVERHEAD + LG_STAMP_LEN) {
		fprintf(stderr, "%s: --seal needs --size >= %d\n", argv[0],
			SP_SEAL_OVERHEAD + LG_STAMP_LEN);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- report --- */

/* Where the broker's CPU and memory figures come from. */
enum lg_src { SRC_NONE, SRC_PROC, SRC_METRICS };

struct lg_total {
	struct lg_stats st;
	struct hdr *lat;
	uint32_t workers;
	int broker_pid;
	enum lg_src src;
	const char *metrics_url;
	double start_epoch, t0_epoch;   /* wall clock at the start and at t0 */
	bool aborted;                   /* no device connected: no traffic was run */
	uint64_t errors_total;
	int exit_code;
	long rss_base_kib, rss_ready_kib, rss_end_kib;
	double cpu_base, cpu_ready, cpu_warm, cpu_end;
	double busy_warm, busy_end;     /* machine-wide busy CPU seconds */
	double other_cpu_window;        /* busy CPU not the broker's nor ours, -1 unknown */
	uint64_t t_start, t0, t1;
	double connect_s, handshakes_per_s;
	double window_s, throughput, sent_rate;
	double drain_s, drain_rate;
	double mem_per_conn;            /* bytes of broker RSS per connection, -1 unknown */
	double broker_cpu_window;       /* seconds */
	uint64_t undelivered;
};

static void merge_stats(struct lg_stats *a, const struct lg_stats *b)
{
	size_t i;

	a->connected += b->connected;
	if (b->connect_begin && (!a->connect_begin || b->connect_begin < a->connect_begin))
		a->connect_begin = b->connect_begin;
	if (b->connect_end > a->connect_end)
		a->connect_end = b->connect_end;
	a->sent += b->sent;
	a->sent_window += b->sent_window;
	for (i = 0; i < LG_STATUS_SLOTS; i++) {
		a->results[i] += b->results[i];
		a->goaway[i] += b->goaway[i];
	}
	a->results_ok_window += b->results_ok_window;
	a->delivered += b->delivered;
	a->delivered_window += b->delivered_window;
	for (i = 0; i < LG_E_MAX; i++)
		a->errors[i] += b->errors[i];
	a->acks += b->acks;
	a->unsent += b->unsent;
	a->late_1ms += b->late_1ms;
	if (b->lag_max_ns > a->lag_max_ns)
		a->lag_max_ns = b->lag_max_ns;
	a->client_cpu_s += b->client_cpu_s;
	a->client_cpu_window_s += b->client_cpu_window_s;
	a->drain_devices += b->drain_devices;
	a->drain_reported += b->drain_reported;
	if (b->drain_begin && (!a->drain_begin || b->drain_begin < a->drain_begin))
		a->drain_begin = b->drain_begin;
	if (b->drain_end > a->drain_end)
		a->drain_end = b->drain_end;
}

static const char *err_name(enum lg_err e)
{
	static const char *names[LG_E_MAX] = {
		"connect", "handshake", "connect_timeout", "closed", "decrypt", "protocol",
		"sender_down", "seal_open", "bad_body", "client",
	};
	return names[e];
}

static const char *status_label(const struct lg_driver *d, int s)
{
	if (s == LG_STATUS_SLOTS - 1)
		return "other";
	if (strcmp(d->name, "sealpost") != 0)
		return s == 1 ? "acked" : "failed";
	return sp_status_name((enum sp_status)s);
}

static void print_human(FILE *f, const struct lg_opts *o, const struct lg_driver *d,
			const struct lg_total *t)
{
	const struct hdr *h = t->lat;
	int i;

	fprintf(f, "%s-loadgen: %s, %u devices, %u process(es), %u-byte bodies%s%s, %s",
		d->name, pattern_name(o->pattern), o->devices, t->workers, o->size,
		o->seal ? " (sealed)" : "", o->durable ? ", durable" : ", online-only",
		o->variant[0] ? o->variant : "");
	if (o->closed_loop)
		fprintf(f, "%sclosed loop W=%u\n", o->variant[0] ? ", " : "", o->closed_loop);
	else
		fprintf(f, "%sopen loop %.0f/s\n", o->variant[0] ? ", " : "", o->rate);
	fprintf(f, "  connect-up     %" PRIu64 "/%u connected in %.2f s: %.0f handshakes/s\n",
		t->st.connected, o->devices, t->connect_s, t->handshakes_per_s);
	if (t->aborted) {
		fprintf(f, "  no device connected: no traffic was run\n");
		goto results;
	}
	if (o->pattern == LG_DRAIN) {
		fprintf(f, "  fill           %" PRIu64 " sent, %" PRIu64 " accepted\n", t->st.sent,
			t->st.results[SP_STATUS_ACCEPTED]);
		fprintf(f, "  drain          %" PRIu64 " envelopes to %" PRIu64
			" devices in %.3f s: %.0f envelopes/s\n", t->st.delivered,
			t->st.drain_devices, t->drain_s, t->drain_rate);
	} else if (o->pattern != LG_IDLE) {
		fprintf(f, "  throughput     %.0f envelopes/s delivered (%" PRIu64 " in %.1f s; "
			"sent %.0f/s)\n", t->throughput, t->st.delivered_window, t->window_s,
			t->sent_rate);
	}
	if (h->total)
		fprintf(f, "  latency (us)   p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f"
			"  (mean %.1f, n=%" PRIu64 ")\n",
			hdr_percentile(h, 50) / 1e3, hdr_percentile(h, 90) / 1e3,
			hdr_percentile(h, 99) / 1e3, hdr_percentile(h, 99.9) / 1e3,
			(double)h->max / 1e3, hdr_mean(h) / 1e3, h->total);
	if (o->pattern != LG_IDLE && (t->st.sent || t->st.unsent))
		fprintf(f, "  client         %.2f s CPU (%.2f s in the window); send lag max %.1f ms, %" PRIu64
			" sent >1 ms late, %" PRIu64 " never sent (behind schedule)%s\n",
			t->st.client_cpu_s, t->st.client_cpu_window_s, t->st.lag_max_ns / 1e6, t->st.late_1ms, t->st.unsent,
			t->st.unsent || t->st.late_1ms * 100 > t->st.sent ?
			": CLIENT-BOUND, figures understate the broker" : "");
	if (t->other_cpu_window >= 0)
		fprintf(f, "  machine        %ld CPUs; other processes used ~%.1f CPU-s in the %.0f s window%s\n",
			sysconf(_SC_NPROCESSORS_ONLN), t->other_cpu_window, o->duration,
			t->other_cpu_window > 0.1 * o->duration ?
			": MACHINE SHARED, figures are worse than on a quiet machine" : "");
	if (t->src != SRC_NONE) {
		if (t->src == SRC_PROC)
			fprintf(f, "  broker pid %d ", t->broker_pid);
		else
			fprintf(f, "  broker (%s)\n                ", t->metrics_url);
		fprintf(f, "  RSS %ld -> %ld -> %ld KiB (base, connected, end): "
			"%.0f bytes/connection\n", t->rss_base_kib, t->rss_ready_kib,
			t->rss_end_kib, t->mem_per_conn);
		if (t->st.connected >= 100 && t->mem_per_conn >= 0 && t->mem_per_conn < 256)
			fprintf(f, "                 (RSS barely grew: the broker reused memory of earlier "
				"connections; take this figure on a fresh broker)\n");
		if (t->broker_cpu_window < 0 || t->cpu_base < 0) {
			fprintf(f, "  broker CPU     unknown (no process CPU figure)\n");
			goto results;
		}
		fprintf(f, "  broker CPU     %.2f s connect-up, %.2f s in the window",
			t->cpu_ready - t->cpu_base, t->broker_cpu_window);
		if (t->st.delivered_window)
			fprintf(f, " (%.2f us/envelope)", t->broker_cpu_window * 1e6 /
				(double)t->st.delivered_window);
		fputc('\n', f);
	} else if (o->local) {
		fprintf(f, "  broker         not found (pass --broker-pid or --metrics): no CPU/memory "
			"figures\n");
	} else {
		fprintf(f, "  broker         remote (pass --metrics URL): no CPU/memory figures\n");
	}
results:
	fprintf(f, "  results       ");
	for (i = 0; i < LG_STATUS_SLOTS; i++)
		if (t->st.results[i])
			fprintf(f, " %s=%" PRIu64, status_label(d, i), t->st.results[i]);
	fprintf(f, "\n  errors        ");
	for (i = 0; i < LG_E_MAX; i++)
		if (t->st.errors[i])
			fprintf(f, " %s=%" PRIu64, err_name((enum lg_err)i), t->st.errors[i]);
	for (i = 0; i < LG_STATUS_SLOTS; i++)
		if (t->st.goaway[i])
			fprintf(f, " goaway_%s=%" PRIu64, status_label(d, i), t->st.goaway[i]);
	if (t->undelivered)
		fprintf(f, " undelivered=%" PRIu64, t->undelivered);
	fprintf(f, "\n");
}

static void json_pct(FILE *f, const struct hdr *h)
{
	fprintf(f, "  \"latency_us\": {\"count\": %" PRIu64 ", \"p50\": %.3f, \"p90\": %.3f, "
		"\"p99\": %.3f, \"p99_9\": %.3f, \"max\": %.3f, \"mean\": %.3f},\n",
		h->total, hdr_percentile(h, 50) / 1e3, hdr_percentile(h, 90) / 1e3,
		hdr_percentile(h, 99) / 1e3, hdr_percentile(h, 99.9) / 1e3,
		h->total ? (double)h->max / 1e3 : 0.0, hdr_mean(h) / 1e3);
}

/* A JSON string: quotes, backslashes and control bytes escaped; other bytes
 * as they are (the command line is taken to be UTF-8). */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static int write_json(const char *path, const struct lg_opts *o, const struct lg_driver *d,
		      const struct lg_total *t)
{
	static const char *const src_names[] = { "none", "proc", "metrics" };
	FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
	char stamp[64] = "";
	time_t secs = (time_t)t->start_epoch;
	struct tm tm;
	int i, first;

	if (!f)
		return -errno;
	if (gmtime_r(&secs, &tm))
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(f, "{\n  \"program\": \"%s-loadgen\",\n  \"broker\": \"%s\",\n", d->name, d->name);
	fprintf(f, "  \"version\": \"%s\",\n  \"timestamp\": \"%s.%03dZ\",\n"
		"  \"start_epoch_s\": %.3f,\n", SP_VERSION, stamp,
		(int)((t->start_epoch - (double)secs) * 1000), t->start_epoch);
	fprintf(f, "  \"command_line\": [");
	for (i = 0; i < o->argc; i++) {
		fputs(i ? ", " : "", f);
		json_str(f, o->argv[i]);
	}
	fprintf(f, "],\n  \"server\": ");
	json_str(f, o->server);
	if (o->recv_addr_len) {
		fprintf(f, ",\n  \"recv_server\": ");
		json_str(f, o->recv_server);
	}
	fprintf(f, ",\n  \"server_local\": %s,\n  \"exit_code\": %d,\n  \"aborted\": %s,\n",
		o->local ? "true" : "false", t->exit_code, t->aborted ? "true" : "false");
	fprintf(f, "  \"errors_total\": %" PRIu64 ",\n  \"broker_figures\": \"%s\",\n",
		t->errors_total, src_names[t->src]);
	fprintf(f, "  \"hdr_log\": ");
	json_str(f, o->hdr_log);
	fprintf(f, ",\n  \"variant\": ");
	json_str(f, o->variant);
	fprintf(f, ",\n");
	fprintf(f, "  \"pattern\": \"%s\",\n  \"devices\": %u,\n  \"processes\": %u,\n"
		"  \"size\": %u,\n  \"sealed\": %s,\n  \"durable\": %s,\n",
		pattern_name(o->pattern), o->devices, t->workers, o->size,
		o->seal ? "true" : "false", o->durable ? "true" : "false");
	fprintf(f, "  \"rate_target\": %.3f,\n  \"closed_loop\": %u,\n  \"duration_s\": %.3f,\n"
		"  \"warmup_s\": %.3f,\n", o->closed_loop ? 0.0 : o->rate, o->closed_loop,
		o->duration, o->warmup);
	fprintf(f, "  \"connected\": %" PRIu64 ",\n  \"connect_s\": %.6f,\n"
		"  \"handshakes_per_s\": %.3f,\n", t->st.connected, t->connect_s,
		t->handshakes_per_s);
	fprintf(f, "  \"sent\": %" PRIu64 ",\n  \"sent_window\": %" PRIu64 ",\n"
		"  \"results_ok_window\": %" PRIu64 ",\n  \"delivered\": %" PRIu64 ",\n"
		"  \"delivered_window\": %" PRIu64 ",\n  \"undelivered\": %" PRIu64 ",\n",
		t->st.sent, t->st.sent_window, t->st.results_ok_window, t->st.delivered,
		t->st.delivered_window, t->undelivered);
	fprintf(f, "  \"throughput\": %.3f,\n  \"sent_rate\": %.3f,\n", t->throughput, t->sent_rate);
	fprintf(f, "  \"client\": {\"cpu_s\": %.3f, \"cpu_s_window\": %.3f, \"lag_max_us\": %.3f, "
		"\"late_1ms\": %" PRIu64 ", \"unsent\": %" PRIu64 "},\n", t->st.client_cpu_s,
		t->st.client_cpu_window_s, t->st.lag_max_ns / 1e3,
		t->st.late_1ms, t->st.unsent);
	json_pct(f, t->lat);
	fprintf(f, "  \"drain\": {\"devices\": %" PRIu64 ", \"reported\": %" PRIu64
		", \"seconds\": %.6f, \"rate\": %.3f},\n", t->st.drain_devices,
		t->st.drain_reported, t->drain_s, t->drain_rate);
	fprintf(f, "  \"broker_pid\": %d,\n  \"broker_rss_kib\": {\"base\": %ld, \"connected\": %ld, "
		"\"end\": %ld},\n  \"broker_mem_per_conn_bytes\": %.1f,\n", t->broker_pid,
		t->rss_base_kib, t->rss_ready_kib, t->rss_end_kib, t->mem_per_conn);
	fprintf(f, "  \"machine\": {\"cpus\": %ld, \"other_cpu_s_window\": %.3f},\n",
		sysconf(_SC_NPROCESSORS_ONLN), t->other_cpu_window);
	fprintf(f, "  \"broker_cpu_s\": {\"connect\": %.3f, \"window\": %.3f},\n",
		t->cpu_ready >= 0 && t->cpu_base >= 0 ? t->cpu_ready - t->cpu_base : -1.0,
		t->broker_cpu_window);
	fprintf(f, "  \"results\": {");
	for (i = 0, first = 1; i < LG_STATUS_SLOTS; i++)
		if (t->st.results[i]) {
			fprintf(f, "%s\"%s\": %" PRIu64, first ? "" : ", ", status_label(d, i),
				t->st.results[i]);
			first = 0;
		}
	fprintf(f, "},\n  \"errors\": {");
	for (i = 0, first = 1; i < LG_E_MAX; i++) {
		fprintf(f, "%s\"%s\": %" PRIu64, first ? "" : ", ", err_name((enum lg_err)i),
			t->st.errors[i]);
		first = 0;
	}
	for (i = 0; i < LG_STATUS_SLOTS; i++)
		if (t->st.goaway[i])
			fprintf(f, ", \"goaway_%s\": %" PRIu64, status_label(d, i), t->st.goaway[i]);
	fprintf(f, "}\n}\n");
	if (f != stdout)
		return fclose(f) ? -errno : 0;
	fflush(f);
	return 0;
}

/* ------------------------------------------------------------- progress --- */

/* The parent's progress line, from what the workers publish (struct lg_live). */
struct lg_progress {
	bool on;
	const struct lg_opts *o;
	const char *name;
	struct lg_live *live;
	uint32_t n;
	struct hdr *sum;
	uint64_t t_start, next, last_t, last_delivered;
};

static void merge_stats(struct lg_stats *a, const struct lg_stats *b);

static void fmt_us(char *buf, size_t cap, const struct hdr *h, double p)
{
	double us = hdr_percentile(h, p) / 1e3;

	if (!h->total)
		snprintf(buf, cap, "-");
	else if (us < 1000)
		snprintf(buf, cap, "%.1f us", us);
	else
		snprintf(buf, cap, "%.2f ms", us / 1e3);
}

static void progress_line(struct lg_progress *p, uint64_t now)
{
	struct lg_stats tot;
	uint64_t errs = 0;
	char p50[32], p99[32];
	double dt = (double)(now - p->last_t) / NS;
	uint32_t i;

	memset(&tot, 0, sizeof(tot));
	hdr_reset(p->sum);
	for (i = 0; i < p->n; i++) {
		merge_stats(&tot, &p->live[i].st);
		hdr_merge(p->sum, &p->live[i].lat);
	}
	for (i = 0; i < LG_E_MAX; i++)
		errs += tot.errors[i];
	fmt_us(p50, sizeof(p50), p->sum, 50);
	fmt_us(p99, sizeof(p99), p->sum, 99);
	fprintf(stderr, "%s-loadgen: %6.1f s  connected %" PRIu64 "/%u  sent %" PRIu64
		"  delivered %" PRIu64 " (%.0f/s)  p50 %s  p99 %s  errors %" PRIu64 "\n",
		p->name, (double)(now - p->t_start) / NS, tot.connected, p->o->devices, tot.sent,
		tot.delivered, dt > 0 ? (double)(tot.delivered - p->last_delivered) / dt : 0.0, p50,
		p99, errs);
	p->last_delivered = tot.delivered;
	p->last_t = now;
}

static void progress_tick(struct lg_progress *p)
{
	uint64_t now = lg_now();

	if (!p->on || now < p->next)
		return;
	progress_line(p, now);
	p->next += NS;
	if (p->next <= now)
		p->next = now + NS;
}

/* sleep_until(t), printing progress lines on the way. */
static void sleep_progress(struct lg_progress *p, uint64_t t)
{
	uint64_t now;

	while ((now = lg_now()) < t) {
		sleep_until(p->on && p->next < t ? p->next : t);
		progress_tick(p);
	}
}

/* Waits until fd is readable (or fails), printing progress lines meanwhile. */
static void wait_readable(struct lg_progress *p, int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };

	if (!p->on)
		return;
	for (;;) {
		uint64_t now = lg_now();
		int ms = p->next > now ? (int)((p->next - now) / 1000000) + 1 : 0, r;

		r = poll(&pf, 1, ms);
		if (r > 0 || (r < 0 && errno != EINTR))
			return;
		progress_tick(p);
	}
}

/* ------------------------------------------------------------- processes --- */

struct lg_child {
	pid_t pid;
	int rd, wr;             /* from / to the child */
	bool alive;
};

/* --hdr-log: every worker's intervals, gathered by the parent. */
struct lg_ivals {
	struct lg_ival_bucket *ib;
	size_t nib;
	struct lg_ival_sum *is;
	size_t nis;
};

static void kill_children(struct lg_child *c, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (c[i].pid > 0 && c[i].alive) {
			kill(c[i].pid, SIGKILL);
			waitpid(c[i].pid, NULL, 0);
			c[i].alive = false;
		}
}

static int worker_main(const struct lg_driver *d, struct lg_worker *w)
{
	struct lg_msg m = { .kind = LG_MSG_REPORT };
	uint64_t n[2];
	int ret;

	/* A hard bound even if the broker or this code hangs: the parent gives
	 * up on us and the process dies. */
	alarm((unsigned)(w->o->connect_timeout * 2 + w->o->warmup + w->o->duration +
			 w->o->grace + 120));
	/* The histogram lives in the memory shared with the parent, so that
	 * its progress lines can read percentiles so far. */
	w->lat = &w->live->lat;
	if (w->o->hdr_log[0] && !(w->ival = hdr_new()))
		return 1;
	ret = d->worker(w);
	if (w->ival)
		ival_flush(w);
	w->st.client_cpu_s = self_cpu_s();
	if (w->cpu_at_warm >= 0)
		w->st.client_cpu_window_s = (w->cpu_at_end >= 0 ? w->cpu_at_end : w->st.client_cpu_s) -
					    w->cpu_at_warm;
	publish(w);
	if (ret) {
		m.kind = LG_MSG_FAIL;
		fprintf(stderr, "%s-loadgen worker %u: %s\n", d->name, w->id, strerror(-ret));
	}
	n[0] = w->nis;
	n[1] = w->nib;
	if (sp_fsutil_write_all(w->to_parent, &m, sizeof(m)) ||
	    sp_fsutil_write_all(w->to_parent, &w->st, sizeof(w->st)) ||
	    sp_fsutil_write_all(w->to_parent, w->lat, sizeof(*w->lat)) ||
	    sp_fsutil_write_all(w->to_parent, n, sizeof(n)) ||
	    (w->nis && sp_fsutil_write_all(w->to_parent, w->is, w->nis * sizeof(*w->is))) ||
	    (w->nib && sp_fsutil_write_all(w->to_parent, w->ib, w->nib * sizeof(*w->ib))))
		return 1;
	return ret ? 1 : 0;
}

/* Appends count items of size sz read from fd to *arr (of *len items). */
static int read_append(int fd, void **arr, size_t *len, uint64_t count, size_t sz)
{
	void *n;

	if (!count)
		return 0;
	if (count > (SIZE_MAX / 2) / sz - *len)
		return -EPROTO;
	n = realloc(*arr, (*len + count) * sz);
	if (!n)
		return -ENOMEM;
	*arr = n;
	if (read_all(fd, (uint8_t *)n + *len * sz, count * sz))
		return -EPIPE;
	*len += count;
	return 0;
}

/* Reads one message + stats from every child; all must be of kind `want`. */
static int gather(struct lg_child *c, uint32_t n, uint32_t want, struct lg_stats *sum,
		  struct hdr *lat, struct hdr *tmp, struct lg_ivals *iv, struct lg_progress *p)
{
	uint32_t i;

	memset(sum, 0, sizeof(*sum));
	for (i = 0; i < n; i++) {
		struct lg_msg m;
		struct lg_stats st;

		wait_readable(p, c[i].rd);
		if (read_all(c[i].rd, &m, sizeof(m)) || read_all(c[i].rd, &st, sizeof(st)))
			return -EPIPE;
		if (m.kind == LG_MSG_REPORT || m.kind == LG_MSG_FAIL) {
			uint64_t cnt[2];

			if (read_all(c[i].rd, tmp, sizeof(*tmp)) ||
			    read_all(c[i].rd, cnt, sizeof(cnt)))
				return -EPIPE;
			if (lat)
				hdr_merge(lat, tmp);
			if (read_append(c[i].rd, (void **)&iv->is, &iv->nis, cnt[0], sizeof(*iv->is)) ||
			    read_append(c[i].rd, (void **)&iv->ib, &iv->nib, cnt[1], sizeof(*iv->ib)))
				return -EPIPE;
		}
		merge_stats(sum, &st);
		if (m.kind != want)
			return m.kind == LG_MSG_FAIL ? -EIO : -EPROTO;
	}
	return 0;
}

static int release(struct lg_child *c, uint32_t n, uint64_t t)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		if (sp_fsutil_write_all(c[i].wr, &t, sizeof(t)))
			return -EPIPE;
	return 0;
}

static void broker_sample(const struct lg_total *t, double *cpu_s, long *rss_kib)
{
	*cpu_s = -1;
	*rss_kib = -1;
	if (t->src == SRC_METRICS) {
		metrics_sample(t->metrics_url, cpu_s, rss_kib);
	} else if (t->src == SRC_PROC) {
		*cpu_s = proc_cpu_s(t->broker_pid);
		*rss_kib = proc_rss_kib(t->broker_pid);
	}
}

static double broker_cpu(const struct lg_total *t)
{
	double cpu;
	long rss;

	broker_sample(t, &cpu, &rss);
	return cpu;
}

static double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_bucket(const void *a, const void *b)
{
	const struct lg_ival_bucket *x = a, *y = b;

	if (x->ival != y->ival)
		return x->ival < y->ival ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/*
 * --hdr-log: one line per interval from the first to the last that holds
 * samples (the empty ones between included, as HdrHistogram's own writers
 * do), the workers' parts of each added up. Values in nanoseconds;
 * Interval_Max in milliseconds (the tools' default unit ratio, 1e6).
 */
static int write_hdr_log(const char *path, const struct lg_opts *o, const char *name,
			 const struct lg_total *t, struct lg_ivals *iv)
{
	struct hdr *h = hdr_new();
	FILE *f = fopen(path, "w");
	uint32_t k, first = UINT32_MAX, last = 0;
	size_t i, b = 0;
	int ret = 0;

	if (!f || !h) {
		ret = f ? -ENOMEM : -errno;
		goto out;
	}
	if (iv->nib)
		qsort(iv->ib, iv->nib, sizeof(*iv->ib), cmp_bucket);
	for (i = 0; i < iv->nis; i++) {
		if (iv->is[i].ival < first)
			first = iv->is[i].ival;
		if (iv->is[i].ival > last)
			last = iv->is[i].ival;
	}
	ret = hdrlog_write_header(f, t->t0_epoch);
	if (!ret && fprintf(f, "#[%s-loadgen %s: end-to-end latency in ns; Interval_Max in ms]\n",
			    name, SP_VERSION) < 0)
		ret = -EIO;
	for (k = first; !ret && first != UINT32_MAX && k <= last; k++) {
		hdr_reset(h);
		for (i = 0; i < iv->nis; i++) {
			const struct lg_ival_sum *sm = &iv->is[i];

			if (sm->ival != k)
				continue;
			h->total += sm->total;
			if (sm->min < h->min)
				h->min = sm->min;
			if (sm->max > h->max)
				h->max = sm->max;
		}
		for (; b < iv->nib && iv->ib[b].ival == k; b++)
			h->counts[iv->ib[b].idx < HDR_BUCKETS ? iv->ib[b].idx : HDR_BUCKETS - 1] +=
				iv->ib[b].count;
		ret = hdrlog_write_interval(f, (double)k * o->hdr_interval, o->hdr_interval, h, 1e6);
	}
out:
	if (f && fclose(f) && !ret)
		ret = -errno;
	hdr_free(h);
	return ret;
}

int lg_main(int argc, char **argv, const struct lg_driver *d)
{
	static struct lg_opts o;
	struct lg_total t;
	struct lg_child *kids = NULL;
	struct lg_live *live = MAP_FAILED;
	struct lg_ivals iv = { 0 };
	struct lg_progress prog;
	struct hdr *tmp = NULL;
	struct lg_stats ready;
	size_t live_bytes = 0;
	uint32_t nw, i;
	int ret, rc = 1;

	memset(&t, 0, sizeof(t));
	memset(&prog, 0, sizeof(prog));
	ret = parse_args(&o, argc, argv, d);
	if (ret == 1) {
		usage(stdout, argv[0], d);
		return 0;
	}
	if (ret)
		return 2;
	if (sodium_init() < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	if (d->prepare && (ret = d->prepare(&o)) != 0) {
		fprintf(stderr, "%s-loadgen: %s\n", d->name, strerror(-ret));
		return 1;
	}
	nw = (o.devices + o.max_per_process - 1) / o.max_per_process;
	if (nw < o.processes)
		nw = o.processes;
	if (nw > o.devices)
		nw = o.devices;
	t.workers = nw;
	t.start_epoch = wall_now();
	t.metrics_url = o.metrics_url;
	/* A broker on this machine is read in /proc; one elsewhere (or when
	 * asked) through its metrics endpoint. */
	if (o.metrics_url[0]) {
		t.src = SRC_METRICS;
	} else if (o.broker_pid || o.local) {
		t.broker_pid = o.broker_pid ? o.broker_pid : find_broker_pid(o.port);
		t.src = t.broker_pid > 0 ? SRC_PROC : SRC_NONE;
	}
	t.lat = hdr_new();
	tmp = hdr_new();
	kids = calloc(nw, sizeof(*kids));
	live_bytes = nw * sizeof(*live);
	live = mmap(NULL, live_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	prog.sum = hdr_new();
	if (!t.lat || !tmp || !kids || live == MAP_FAILED || !prog.sum)
		goto out;
	for (i = 0; i < nw; i++)
		hdr_reset(&live[i].lat);
	prog.on = !o.quiet && !o.no_progress;
	prog.o = &o;
	prog.name = d->name;
	prog.live = live;
	prog.n = nw;
	broker_sample(&t, &t.cpu_base, &t.rss_base_kib);
	t.t_start = lg_now();
	prog.t_start = prog.last_t = t.t_start;
	prog.next = t.t_start + NS;

	for (i = 0; i < nw; i++) {
		int up[2], down[2];
		pid_t pid;

		if (pipe2(up, O_CLOEXEC) || pipe2(down, O_CLOEXEC)) {
			perror("pipe");
			goto out;
		}
		fflush(NULL);
		pid = fork();
		if (pid < 0) {
			perror("fork");
			goto out;
		}
		if (pid == 0) {
			struct lg_worker w;
			uint32_t j;

			/* Only this worker's two pipe ends stay open. */
			for (j = 0; j < i; j++) {
				close(kids[j].rd);
				close(kids[j].wr);
			}
			close(up[0]);
			close(down[1]);
			memset(&w, 0, sizeof(w));
			w.cpu_at_warm = w.cpu_at_end = -1;
			w.o = &o;
			w.id = i;
			w.nworkers = nw;
			w.first = (uint32_t)((uint64_t)o.devices * i / nw);
			w.count = (uint32_t)((uint64_t)o.devices * (i + 1) / nw) - w.first;
			w.to_parent = up[1];
			w.from_parent = down[0];
			w.live = &live[i];
			_exit(worker_main(d, &w));
		}
		close(up[1]);
		close(down[0]);
		kids[i] = (struct lg_child){ .pid = pid, .rd = up[0], .wr = down[1], .alive = true };
	}

	/* READY: every early device connected (or given up on). */
	ret = gather(kids, nw, LG_MSG_READY, &ready, NULL, tmp, &iv, &prog);
	if (ret) {
		fprintf(stderr, "%s-loadgen: a worker failed before READY\n", d->name);
		goto out;
	}
	if (ready.connected == 0) {
		/* Nothing to measure: say so now rather than after the window. */
		t.aborted = true;
		t.st = ready;
		kill_children(kids, nw);
		broker_sample(&t, &t.cpu_ready, &t.rss_ready_kib);
		t.cpu_end = t.cpu_ready;
		t.rss_end_kib = t.rss_ready_kib;
		t.mem_per_conn = -1;
		t.broker_cpu_window = -1;
		t.other_cpu_window = -1;
		goto report;
	}
	/* Idle connections now: the memory figure is taken before traffic. */
	usleep(200000);
	broker_sample(&t, &t.cpu_ready, &t.rss_ready_kib);
	t.connect_s = ready.connect_end > ready.connect_begin ?
		(double)(ready.connect_end - ready.connect_begin) / NS : 0;
	t.handshakes_per_s = t.connect_s > 0 ? (double)ready.connected / t.connect_s : 0;
	t.mem_per_conn = -1;
	if (t.rss_base_kib >= 0 && t.rss_ready_kib >= 0 && ready.connected)
		t.mem_per_conn = (double)(t.rss_ready_kib - t.rss_base_kib) * 1024.0 /
				 (double)ready.connected;
	t.t0 = lg_now() + 50000000ull; /* 50 ms for the release to reach every worker */
	t.t0_epoch = wall_now() + 0.05;
	if (release(kids, nw, t.t0))
		goto out;
	sleep_progress(&prog, t.t0 + (uint64_t)(o.pattern == LG_DRAIN ? 0 : o.warmup * NS));
	t.cpu_warm = broker_cpu(&t);
	t.busy_warm = machine_busy_s();
	if (o.pattern == LG_DRAIN) {
		struct lg_stats filled;

		ret = gather(kids, nw, LG_MSG_FILLED, &filled, NULL, tmp, &iv, &prog);
		if (ret)
			goto out;
		t.t1 = lg_now() + 50000000ull;
		if (release(kids, nw, t.t1))
			goto out;
		t.cpu_warm = broker_cpu(&t);
	} else {
		sleep_progress(&prog, t.t0 + (uint64_t)((o.warmup + o.duration) * NS));
		broker_sample(&t, &t.cpu_end, &t.rss_end_kib);
		t.busy_end = machine_busy_s();
	}

	ret = gather(kids, nw, LG_MSG_REPORT, &t.st, t.lat, tmp, &iv, &prog);
	for (i = 0; i < nw; i++) {
		int status;

		waitpid(kids[i].pid, &status, 0);
		kids[i].alive = false;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			ret = ret ? ret : -EIO;
	}
	if (o.pattern == LG_DRAIN)
		broker_sample(&t, &t.cpu_end, &t.rss_end_kib);
	if (ret) {
		fprintf(stderr, "%s-loadgen: a worker failed (%s)\n", d->name, strerror(-ret));
		goto out;
	}
	t.window_s = o.duration;
	t.throughput = t.window_s > 0 ? (double)t.st.delivered_window / t.window_s : 0;
	t.sent_rate = t.window_s > 0 ? (double)t.st.sent_window / t.window_s : 0;
	t.broker_cpu_window = t.cpu_end >= 0 && t.cpu_warm >= 0 ? t.cpu_end - t.cpu_warm : -1;
	/*
	 * Other work on the machine during the window: everything busy minus the
	 * broker (when it runs here) minus our workers (their CPU over the whole
	 * run, scaled to the window: an estimate, the workers also connect and
	 * drain). A shared machine makes every figure worse; the report says how
	 * shared it was.
	 */
	t.other_cpu_window = -1;
	if (o.pattern != LG_DRAIN && t.busy_warm >= 0 && t.busy_end > t.busy_warm && o.duration > 0) {
		double run_s = (double)(lg_now() - t.t_start) / NS, client = t.st.client_cpu_s;
		double broker = o.local && t.broker_cpu_window > 0 ? t.broker_cpu_window : 0;

		if (run_s > o.duration)
			client = client * o.duration / run_s;
		t.other_cpu_window = t.busy_end - t.busy_warm - broker - client;
		if (t.other_cpu_window < 0)
			t.other_cpu_window = 0;
	}
	{
		/* Without per-message results (core NATS) every send is expected. */
		uint64_t expect = t.st.results_ok_window, any = 0;

		for (i = 0; i < LG_STATUS_SLOTS; i++)
			any += t.st.results[i];
		if (!any)
			expect = t.st.sent_window;
		if (expect > t.st.delivered_window)
			t.undelivered = expect - t.st.delivered_window;
	}
	if (t.st.drain_end > t.st.drain_begin) {
		t.drain_s = (double)(t.st.drain_end - t.st.drain_begin) / NS;
		t.drain_rate = (double)t.st.delivered / t.drain_s;
	}
report:
	for (i = 0; i < LG_E_MAX; i++)
		t.errors_total += t.st.errors[i];
	/* A run in which devices did not connect or something failed is not a
	 * measurement of the broker: scripts must be able to tell. */
	t.exit_code = t.st.connected < o.devices || t.errors_total ? EXIT_FAILED_RUN : 0;
	if (!o.quiet)
		print_human(stdout, &o, d, &t);
	if (o.json[0] && (ret = write_json(o.json, &o, d, &t)) != 0) {
		fprintf(stderr, "%s-loadgen: --json %s: %s\n", d->name, o.json, strerror(-ret));
		goto out;
	}
	if (o.hdr_log[0] && (ret = write_hdr_log(o.hdr_log, &o, d->name, &t, &iv)) != 0) {
		fprintf(stderr, "%s-loadgen: --hdr-log %s: %s\n", d->name, o.hdr_log, strerror(-ret));
		goto out;
	}
	if (t.st.connected < o.devices)
		fprintf(stderr, "%s-loadgen: only %" PRIu64 " of %u devices connected%s\n", d->name,
			t.st.connected, o.devices, t.aborted ? ": nothing to measure, stopped" : "");
	if (t.errors_total)
		fprintf(stderr, "%s-loadgen: %" PRIu64 " errors (see the report)\n", d->name,
			t.errors_total);
	rc = t.exit_code;
out:
	if (kids)
		kill_children(kids, nw);
	free(kids);
	free(iv.ib);
	free(iv.is);
	if (live != MAP_FAILED)
		munmap(live, live_bytes);
	hdr_free(prog.sum);
	hdr_free(tmp);
	hdr_free(t.lat);
	return rc;
}
