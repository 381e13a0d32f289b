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
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "sp_clock.h"
#include "sp_frame.h"
#include "sp_fsutil.h"
#include "sp_hostport.h"

enum { NS = 1000000000 };

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
}

void lg_count_result(struct lg_worker *w, int status, uint64_t intended)
{
	w->st.results[status >= 0 && status < LG_STATUS_SLOTS - 1 ? status : LG_STATUS_SLOTS - 1]++;
	if ((status == SP_STATUS_DELIVERED || status == SP_STATUS_ACCEPTED) && in_window(w, intended))
		w->st.results_ok_window++;
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

/* --------------------------------------------------------------- options --- */

static const char *pattern_name(enum lg_pattern p)
{
	static const char *names[] = { "pairs", "fanin", "fanout", "drain", "idle" };

	return names[p];
}

static void usage(FILE *f, const char *prog, const struct lg_driver *d)
{
	fprintf(f,
		"usage: %s --server HOST:PORT [options]\n"
		"A swarm of devices on loopback against a %s broker; prints a summary and,\n"
		"with --json, a machine-readable report. Bounded: stops by itself.\n\n"
		"  --server HOST:PORT      broker address: 127.0.0.0/8, localhost or [::1] only\n"
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
		"  --json FILE             write the report as JSON ('-' for stdout)\n"
		"  --quiet                 no human summary\n"
		"  --help                  this text\n",
		prog, d->name, LG_DEFAULT_MAX_PER_PROCESS);
	if (d->help)
		fputs(d->help, f);
}

/* Loopback only: this program is a load generator, and the rules say so. */
static int parse_server(struct lg_opts *o, const char *s)
{
	struct sp_hostport hp;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&o->addr;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&o->addr;

	snprintf(o->server, sizeof(o->server), "%s", s);
	if (sp_hostport_split(s, &hp) < 0 || hp.port == 0)
		return -EINVAL;
	if (!hp.bracketed && strcmp(hp.host, "localhost") == 0)
		snprintf(hp.host, sizeof(hp.host), "127.0.0.1");
	if (sp_hostport_sockaddr(&hp, &o->addr, &o->addr_len) < 0)
		return -EPERM;
	if (o->addr.ss_family == AF_INET ? (ntohl(v4->sin_addr.s_addr) >> 24) != 127
					 : !IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr))
		return -EPERM;
	/* A numeric address by now, so it fits (INET6_ADDRSTRLEN). */
	if (strlen(hp.host) >= sizeof(o->host))
		return -EINVAL;
	memcpy(o->host, hp.host, strlen(hp.host) + 1);
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
}

/* Returns 0 to run, 1 for --help, -1 after printing an error. */
static int parse_args(struct lg_opts *o, int argc, char **argv, const struct lg_driver *d)
{
	bool have_server = false;
	int i;

	defaults(o);
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
		}
		if (!v) {
			fprintf(stderr, "%s: %s needs a value\n", argv[0], a);
			return -1;
		}
		if (!strcmp(n, "server")) {
			int r = parse_server(o, v);

			if (r == -EPERM) {
				fprintf(stderr, "%s: --server %s: only loopback addresses "
					"(127.0.0.0/8, localhost, [::1]) are allowed\n", argv[0], v);
				return -1;
			}
			bad = r != 0;
			have_server = !bad;
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
	if (!have_server) {
		fprintf(stderr, "%s: --server HOST:PORT is required\n", argv[0]);
		return -1;
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

struct lg_total {
	struct lg_stats st;
	struct hdr *lat;
	uint32_t workers;
	int broker_pid;
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
		fprintf(f, "  client         %.2f s CPU; send lag max %.1f ms, %" PRIu64
			" sent >1 ms late, %" PRIu64 " never sent (behind schedule)%s\n",
			t->st.client_cpu_s, t->st.lag_max_ns / 1e6, t->st.late_1ms, t->st.unsent,
			t->st.unsent || t->st.late_1ms * 100 > t->st.sent ?
			": CLIENT-BOUND, figures understate the broker" : "");
	if (t->other_cpu_window >= 0)
		fprintf(f, "  machine        %ld CPUs; other processes used ~%.1f CPU-s in the %.0f s window%s\n",
			sysconf(_SC_NPROCESSORS_ONLN), t->other_cpu_window, o->duration,
			t->other_cpu_window > 0.1 * o->duration ?
			": MACHINE SHARED, figures are worse than on a quiet machine" : "");
	if (t->broker_pid > 0) {
		fprintf(f, "  broker pid %d   RSS %ld -> %ld -> %ld KiB (base, connected, end): "
			"%.0f bytes/connection\n", t->broker_pid, t->rss_base_kib, t->rss_ready_kib,
			t->rss_end_kib, t->mem_per_conn);
		if (t->st.connected >= 100 && t->mem_per_conn >= 0 && t->mem_per_conn < 256)
			fprintf(f, "                 (RSS barely grew: the broker reused memory of earlier "
				"connections; take this figure on a fresh broker)\n");
		fprintf(f, "  broker CPU     %.2f s connect-up, %.2f s in the window", 
			t->cpu_ready - t->cpu_base, t->broker_cpu_window);
		if (t->st.delivered_window)
			fprintf(f, " (%.2f us/envelope)", t->broker_cpu_window * 1e6 /
				(double)t->st.delivered_window);
		fputc('\n', f);
	} else {
		fprintf(f, "  broker         not found (pass --broker-pid): no CPU/memory figures\n");
	}
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

static int write_json(const char *path, const struct lg_opts *o, const struct lg_driver *d,
		      const struct lg_total *t)
{
	FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
	int i, first;

	if (!f)
		return -errno;
	fprintf(f, "{\n  \"program\": \"%s-loadgen\",\n  \"broker\": \"%s\",\n", d->name, d->name);
	fprintf(f, "  \"variant\": \"%s\",\n", o->variant);
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
	fprintf(f, "  \"client\": {\"cpu_s\": %.3f, \"lag_max_us\": %.3f, \"late_1ms\": %" PRIu64
		", \"unsent\": %" PRIu64 "},\n", t->st.client_cpu_s, t->st.lag_max_ns / 1e3,
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
		t->broker_pid > 0 ? t->cpu_ready - t->cpu_base : -1.0,
		t->broker_pid > 0 ? t->broker_cpu_window : -1.0);
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

/* ------------------------------------------------------------- processes --- */

struct lg_child {
	pid_t pid;
	int rd, wr;             /* from / to the child */
	bool alive;
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
	int ret;

	/* A hard bound even if the broker or this code hangs: the parent gives
	 * up on us and the process dies. */
	alarm((unsigned)(w->o->connect_timeout * 2 + w->o->warmup + w->o->duration +
			 w->o->grace + 120));
	w->lat = hdr_new();
	if (!w->lat)
		return 1;
	ret = d->worker(w);
	{
		struct rusage ru;

		if (getrusage(RUSAGE_SELF, &ru) == 0)
			w->st.client_cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
					     (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	}
	if (ret) {
		m.kind = LG_MSG_FAIL;
		fprintf(stderr, "%s-loadgen worker %u: %s\n", d->name, w->id, strerror(-ret));
	}
	if (sp_fsutil_write_all(w->to_parent, &m, sizeof(m)) || sp_fsutil_write_all(w->to_parent, &w->st, sizeof(w->st)) ||
	    sp_fsutil_write_all(w->to_parent, w->lat, sizeof(*w->lat)))
		return 1;
	return ret ? 1 : 0;
}

/* Reads one message + stats from every child; all must be of kind `want`. */
static int gather(struct lg_child *c, uint32_t n, uint32_t want, struct lg_stats *sum,
		  struct hdr *lat, struct hdr *tmp)
{
	uint32_t i;

	memset(sum, 0, sizeof(*sum));
	for (i = 0; i < n; i++) {
		struct lg_msg m;
		struct lg_stats st;

		if (read_all(c[i].rd, &m, sizeof(m)) || read_all(c[i].rd, &st, sizeof(st)))
			return -EPIPE;
		if (m.kind == LG_MSG_REPORT || m.kind == LG_MSG_FAIL) {
			if (read_all(c[i].rd, tmp, sizeof(*tmp)))
				return -EPIPE;
			if (lat)
				hdr_merge(lat, tmp);
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

int lg_main(int argc, char **argv, const struct lg_driver *d)
{
	static struct lg_opts o;
	struct lg_total t;
	struct lg_child *kids = NULL;
	struct hdr *tmp = NULL;
	struct lg_stats ready;
	uint32_t nw, i;
	int ret, rc = 1;

	memset(&t, 0, sizeof(t));
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
	t.broker_pid = o.broker_pid ? o.broker_pid : find_broker_pid(o.port);
	t.lat = hdr_new();
	tmp = hdr_new();
	kids = calloc(nw, sizeof(*kids));
	if (!t.lat || !tmp || !kids)
		goto out;
	t.rss_base_kib = proc_rss_kib(t.broker_pid);
	t.cpu_base = proc_cpu_s(t.broker_pid);
	t.t_start = lg_now();

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
			w.o = &o;
			w.id = i;
			w.nworkers = nw;
			w.first = (uint32_t)((uint64_t)o.devices * i / nw);
			w.count = (uint32_t)((uint64_t)o.devices * (i + 1) / nw) - w.first;
			w.to_parent = up[1];
			w.from_parent = down[0];
			_exit(worker_main(d, &w));
		}
		close(up[1]);
		close(down[0]);
		kids[i] = (struct lg_child){ .pid = pid, .rd = up[0], .wr = down[1], .alive = true };
	}

	/* READY: every early device connected (or given up on). */
	ret = gather(kids, nw, LG_MSG_READY, &ready, NULL, tmp);
	if (ret) {
		fprintf(stderr, "%s-loadgen: a worker failed before READY\n", d->name);
		goto out;
	}
	/* Idle connections now: the memory figure is taken before traffic. */
	usleep(200000);
	t.rss_ready_kib = proc_rss_kib(t.broker_pid);
	t.cpu_ready = proc_cpu_s(t.broker_pid);
	t.connect_s = ready.connect_end > ready.connect_begin ?
		(double)(ready.connect_end - ready.connect_begin) / NS : 0;
	t.handshakes_per_s = t.connect_s > 0 ? (double)ready.connected / t.connect_s : 0;
	t.mem_per_conn = -1;
	if (t.rss_base_kib >= 0 && t.rss_ready_kib >= 0 && ready.connected)
		t.mem_per_conn = (double)(t.rss_ready_kib - t.rss_base_kib) * 1024.0 /
				 (double)ready.connected;
	t.t0 = lg_now() + 50000000ull; /* 50 ms for the release to reach every worker */
	if (release(kids, nw, t.t0))
		goto out;
	sleep_until(t.t0 + (uint64_t)(o.pattern == LG_DRAIN ? 0 : o.warmup * NS));
	t.cpu_warm = proc_cpu_s(t.broker_pid);
	t.busy_warm = machine_busy_s();
	if (o.pattern == LG_DRAIN) {
		struct lg_stats filled;

		ret = gather(kids, nw, LG_MSG_FILLED, &filled, NULL, tmp);
		if (ret)
			goto out;
		t.cpu_end = proc_cpu_s(t.broker_pid); /* fill CPU, overwritten below */
		t.t1 = lg_now() + 50000000ull;
		if (release(kids, nw, t.t1))
			goto out;
		t.cpu_warm = proc_cpu_s(t.broker_pid);
	} else {
		sleep_until(t.t0 + (uint64_t)((o.warmup + o.duration) * NS));
		t.cpu_end = proc_cpu_s(t.broker_pid);
		t.busy_end = machine_busy_s();
		t.rss_end_kib = proc_rss_kib(t.broker_pid);
	}

	ret = gather(kids, nw, LG_MSG_REPORT, &t.st, t.lat, tmp);
	for (i = 0; i < nw; i++) {
		int status;

		waitpid(kids[i].pid, &status, 0);
		kids[i].alive = false;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			ret = ret ? ret : -EIO;
	}
	if (o.pattern == LG_DRAIN) {
		t.cpu_end = proc_cpu_s(t.broker_pid);
		t.rss_end_kib = proc_rss_kib(t.broker_pid);
	}
	if (ret) {
		fprintf(stderr, "%s-loadgen: a worker failed (%s)\n", d->name, strerror(-ret));
		goto out;
	}
	t.window_s = o.duration;
	t.throughput = t.window_s > 0 ? (double)t.st.delivered_window / t.window_s : 0;
	t.sent_rate = t.window_s > 0 ? (double)t.st.sent_window / t.window_s : 0;
	t.broker_cpu_window = t.cpu_end - t.cpu_warm;
	/*
	 * Other work on the machine during the window: everything busy minus the
	 * broker minus our workers (their CPU over the whole run, scaled to the
	 * window: an estimate, the workers also connect and drain). A shared
	 * machine makes every figure worse; the report says how shared it was.
	 */
	t.other_cpu_window = -1;
	if (o.pattern != LG_DRAIN && t.busy_warm >= 0 && t.busy_end > t.busy_warm && o.duration > 0) {
		double run_s = (double)(lg_now() - t.t_start) / NS, client = t.st.client_cpu_s;

		if (run_s > o.duration)
			client = client * o.duration / run_s;
		t.other_cpu_window = t.busy_end - t.busy_warm - t.broker_cpu_window - client;
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
	if (!o.quiet)
		print_human(stdout, &o, d, &t);
	if (o.json[0] && (ret = write_json(o.json, &o, d, &t)) != 0) {
		fprintf(stderr, "%s-loadgen: --json %s: %s\n", d->name, o.json, strerror(-ret));
		goto out;
	}
	rc = 0;
out:
	if (kids)
		kill_children(kids, nw);
	free(kids);
	hdr_free(tmp);
	hdr_free(t.lat);
	return rc;
}
