/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lg.h: the load generator's shared half: options, the traffic plan, open-
 * and closed-loop rate control, worker processes and their barriers, the
 * latency histogram, broker figures from /proc, and the report (human and
 * JSON).
 *
 * Three programs share it, so a comparison measures brokers, not clients:
 * sealpost-loadgen (io_uring, the sealpost protocol), sealpost-loadgen-mqtt
 * (libmosquitto) and sealpost-loadgen-nats (libnats). Each supplies a driver
 * (struct lg_driver): how to connect a device, send an envelope and receive
 * one. Everything that decides WHEN to send, WHAT counts and HOW it is
 * reported lives here, once.
 *
 * Process model: the parent parses options, calls the driver's prepare hook,
 * forks P workers (each owns a contiguous range of devices and one event
 * loop), and meets them at barriers over pipes: READY (all connected; the
 * parent samples the broker's memory, then sends the common start time t0),
 * for the drain pattern FILLED (backlog written; the parent sends t1), then
 * each worker writes its counters and histogram to the pipe and exits; the
 * parent adds them up. All processes run on one machine, so CLOCK_MONOTONIC
 * timestamps written by a sender are comparable with a receiver's clock.
 *
 * While the run goes on the parent prints a progress line every second on
 * stderr, from figures each worker publishes into memory shared with it
 * (struct lg_live: its counters now and then, its histogram as it records).
 *
 * The server is loopback by default (127.0.0.1:7400) and must be, unless
 * --allow-remote is given: a load generator pointed at the wrong host is a
 * denial of service. Broker CPU and memory come from /proc when the broker
 * is local, or from its Prometheus endpoint (--metrics URL) when not.
 */
#ifndef SP_BENCH_LG_H
#define SP_BENCH_LG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hdr.h"

enum lg_pattern {
	LG_PAIRS,       /* device 2i <-> 2i+1, both send */
	LG_FANIN,       /* every device sends to device 0 */
	LG_FANOUT,      /* device 0 sends to devices 1..N-1 in turn */
	LG_DRAIN,       /* even devices fill offline odd partners' mailboxes; then they drain */
	LG_IDLE,        /* connect, hold, send nothing: memory per idle connection */
};

enum {
	LG_PATH_MAX = 1024,
	LG_STATUS_SLOTS = 64,           /* status codes 0..62 counted, 63 = any other */
	LG_DEFAULT_MAX_PER_PROCESS = 15000,
};

/* Kinds of failure, counted per worker and added up. */
enum lg_err {
	LG_E_CONNECT,           /* socket/connect failed (refused, reset, no ports) */
	LG_E_HANDSHAKE,         /* closed or failed during the handshake */
	LG_E_CONNECT_TIMEOUT,   /* no handshake within --connect-timeout */
	LG_E_CLOSED,            /* an established connection closed under us */
	LG_E_DECRYPT,           /* a transport message failed authentication */
	LG_E_PROTOCOL,          /* an unparsable frame or an unexpected message */
	LG_E_SENDER_DOWN,       /* an envelope was due on a device that was not connected */
	LG_E_SEAL_OPEN,         /* --seal: a body did not open */
	LG_E_BAD_BODY,          /* a body too short to carry the timestamp */
	LG_E_CLIENT,            /* a client-library call failed (peers) */
	LG_E_MAX,
};

struct lg_opts {
	char server[128];               /* as given: HOST:PORT */
	char host[64];                  /* numeric */
	uint16_t port;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	/* --recv-server: receivers connect here instead (another node of a
	 * clustered broker: docs/CLUSTER.md); recv_addr_len 0 = --server. */
	char recv_server[128];
	struct sockaddr_storage recv_addr;
	socklen_t recv_addr_len;
	char server_key_hex[80];        /* --server-key, or from --data-dir */
	char data_dir[LG_PATH_MAX];
	uint32_t devices;
	enum lg_pattern pattern;
	uint32_t size;                  /* envelope body bytes */
	double rate;                    /* envelopes/s, all senders together (open loop) */
	uint32_t closed_loop;           /* W outstanding per sender; 0 = open loop */
	bool durable;                   /* no online-only flag; acknowledge deliveries */
	double duration, warmup;        /* seconds */
	uint32_t processes;             /* at least; more if devices need them */
	uint32_t max_per_process;
	bool seal;
	char json[LG_PATH_MAX];
	int broker_pid;                 /* 0: find it from the port */
	uint32_t connect_concurrency;   /* handshakes in flight per process */
	double connect_timeout;         /* seconds for the whole connect-up */
	double grace;                   /* seconds to wait for stragglers after the window */
	bool quiet;
	bool no_progress;               /* no progress lines on stderr */
	bool allow_remote;              /* a server outside loopback may be targeted */
	bool local;                     /* the server is a loopback address: /proc works */
	char metrics_url[512];          /* --metrics http://HOST:PORT/PATH, "" = none */
	char hdr_log[LG_PATH_MAX];      /* --hdr-log FILE, "" = none */
	double hdr_interval;            /* seconds per interval of the HDR log */
	/* The command line as given (for the report; borrowed from main). */
	int argc;
	char **argv;
	/* Free text the driver puts into the report ("qos=1 tls", ...). */
	char variant[128];
};

/* Per-worker counters, summed by the parent. Plain data: sent over a pipe. */
struct lg_stats {
	uint64_t connected;             /* devices that completed their handshake */
	uint64_t connect_begin, connect_end;    /* monotonic ns, first start / last done */
	uint64_t sent, sent_window;     /* envelopes handed to the broker (all / in window) */
	uint64_t results[LG_STATUS_SLOTS];      /* SendResult statuses (peers: 1 = acked) */
	uint64_t results_ok_window;     /* accepted/delivered results of in-window sends */
	uint64_t delivered, delivered_window;   /* envelopes received (all / sent in window) */
	uint64_t goaway[LG_STATUS_SLOTS];
	uint64_t errors[LG_E_MAX];
	uint64_t acks;                  /* Ack frames sent (durable) */
	/* Is the client keeping up? A sender that falls behind its schedule
	 * shows up here, not hidden: lag = actual - intended send time. */
	uint64_t unsent;                /* scheduled in the window, never sent: client too slow */
	uint64_t late_1ms;              /* sent more than 1 ms after the intended time */
	uint64_t lag_max_ns;
	double client_cpu_s;            /* user + system CPU of the worker processes */
	double client_cpu_window_s;     /* the same, measured from the warm-up's end to the window's end */
	/* drain pattern */
	uint64_t drain_devices;         /* receivers that saw Drained */
	uint64_t drain_reported;        /* sum of Drained.count */
	uint64_t drain_begin, drain_end;/* monotonic ns */
};

/* What a worker publishes for the parent's progress lines: in memory shared
 * between them (MAP_SHARED, set up before fork). Written by the worker only;
 * the parent's reads are a snapshot that may be a moment stale, which is all
 * a progress line needs (the final report comes over the pipe). */
struct lg_live {
	struct lg_stats st;             /* copied from the worker's every LG_PUBLISH_NS */
	struct hdr lat;                 /* the worker's latency histogram itself */
};

/* --hdr-log: one interval's nonzero bucket (interval index, bucket, count)
 * and one interval's summary, collected by each worker and sent at the end. */
struct lg_ival_bucket {
	uint32_t ival, idx;
	uint64_t count;
};
struct lg_ival_sum {
	uint32_t ival, pad;
	uint64_t total, min, max;
};

struct lg_worker;

struct lg_driver {
	const char *name;               /* "sealpost", "mqtt", "nats" */
	const char *help;               /* extra option lines for --help, or NULL */
	/* An option the common parser does not know: name without "--"; val is
	 * the next argument. Returns 0 if taken, -ENOENT if unknown, -EINVAL if
	 * the value is bad. NULL: no extra options. */
	int (*opt)(struct lg_opts *o, const char *name, const char *val);
	/* In the parent, before the workers fork (keys, server key, ...). */
	int (*prepare)(struct lg_opts *o);
	/* The worker body: connect w->count devices, lg_worker_ready(), run the
	 * traffic with the helpers below, return 0. Errors are counted in
	 * w->st, not returned, unless nothing could run. */
	int (*worker)(struct lg_worker *w);
};

struct lg_worker {
	const struct lg_opts *o;
	uint32_t id, nworkers;
	uint32_t first, count;          /* devices [first, first + count) */
	int to_parent, from_parent;
	struct lg_stats st;
	struct hdr *lat;                /* end-to-end latency, ns */
	/* set by lg_worker_ready */
	uint64_t t0, t_warm, t_end;
	uint64_t t1;                    /* drain: when receivers may connect; 0 before */
	/* open-loop schedule over the local senders */
	uint32_t *senders;              /* local sender devices (global ids) */
	uint32_t nsenders;
	uint32_t rr;                    /* round-robin cursor */
	double period_ns;               /* between two local envelopes */
	uint64_t k;                     /* envelopes scheduled so far */
	uint64_t last_delivery;         /* monotonic ns */
	/* progress: where and when the counters are published */
	struct lg_live *live;
	uint64_t next_publish;          /* monotonic ns */
	/* client CPU (RUSAGE_SELF, every thread) when the window began / ended;
	 * < 0 = not sampled yet. Sampled by lg_worker_tick, which every loop calls. */
	double cpu_at_warm, cpu_at_end;
	/* --hdr-log: the current interval's histogram and what earlier ones held */
	struct hdr *ival;               /* NULL without --hdr-log */
	uint32_t ival_k;                /* index of the interval ival holds */
	struct lg_ival_bucket *ib;
	size_t nib, cap_ib;
	struct lg_ival_sum *is;
	size_t nis, cap_is;
};

uint64_t lg_now(void);

/* Publishes the worker's counters for the progress line if it is time
 * (cheap otherwise): drivers call it once per loop turn. */
void lg_worker_tick(struct lg_worker *w);

/* The whole program: parse, fork, merge, report. Returns the exit code. */
int lg_main(int argc, char **argv, const struct lg_driver *d);

/* ---- the plan: who sends to whom (same in every worker) ---- */
bool lg_is_sender(const struct lg_opts *o, uint32_t dev);
/* Does dev receive envelopes in this pattern? */
bool lg_is_receiver(const struct lg_opts *o, uint32_t dev);
/* With --recv-server, does dev connect there? pairs and drain: the second
 * device of each pair (so every envelope crosses); fanin, fanout: the
 * receivers. */
bool lg_on_recv_server(const struct lg_opts *o, uint32_t dev);
/* Does dev connect before t0? (drain: receivers connect only after FILLED.) */
bool lg_connects_early(const struct lg_opts *o, uint32_t dev);
/* Recipient of sender dev's n-th envelope. */
uint32_t lg_target(const struct lg_opts *o, uint32_t dev, uint64_t n);

/* ---- barriers ---- */
/* All early devices connected (st.connect_* set): wait for the parent's start
 * time; fills t0/t_warm/t_end and the schedule. */
int lg_worker_ready(struct lg_worker *w);
/* drain: the backlog is written; returns t1, when receivers may connect. */
int lg_worker_filled(struct lg_worker *w, uint64_t *t1);

/* ---- open loop ---- */
/*
 * If an envelope is due at `now` (its intended time has passed and the
 * window is open), sets *dev (a local sender) and *intended and returns
 * true; call again until false. Intended times follow the fixed schedule
 * whatever happened to earlier sends, so a stalled broker shows up as
 * latency (no coordinated omission). Once the window has closed, envelopes
 * still owed are not sent but counted as st.unsent, so a client that
 * cannot keep up keeps the run bounded in time and is reported.
 */
bool lg_due(struct lg_worker *w, uint64_t now, uint32_t *dev, uint64_t *intended);
/* Monotonic ns of the next intended send, or UINT64_MAX if none. */
uint64_t lg_next_due(const struct lg_worker *w);
/* Is the sending window still open at now? */
bool lg_sending(const struct lg_worker *w, uint64_t now);

/* ---- accounting ---- */
void lg_count_sent(struct lg_worker *w, uint64_t intended);
void lg_count_result(struct lg_worker *w, int status, uint64_t intended);
/* An envelope arrived at now; intended = the sender's timestamp in it. */
void lg_count_delivery(struct lg_worker *w, uint64_t intended, uint64_t now);
void lg_count_error(struct lg_worker *w, enum lg_err e);

/* ---- bodies: the first 12 bytes carry the intended send time and sender ---- */
enum { LG_STAMP_LEN = 12 };
/* Writes a body of len bytes (>= LG_STAMP_LEN): stamp, then filler. */
void lg_body_fill(uint8_t *buf, size_t len, uint64_t intended, uint32_t sender);
/* Reads the stamp; -EBADMSG if too short. */
int lg_body_stamp(const uint8_t *buf, size_t len, uint64_t *intended, uint32_t *sender);

#endif
