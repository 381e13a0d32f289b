/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_metrics.h: the broker's counters, gauges and histograms, and their
 * Prometheus text rendering (exposition format 0.0.4).
 *
 * Writers: every shard thread owns one struct sp_metrics_shard and is its
 * only writer; one more slot (sp_metrics_aux) belongs to exactly one thread
 * that is not a shard (for example the main thread or a storage thread).
 * A write is a relaxed atomic load and store of a 64-bit word the thread
 * alone writes: on x86-64 and arm64 that is a plain load, add and store, no
 * lock prefix, no fence, yet the scrape thread can never read a torn value
 * and ThreadSanitizer sees no race. Slots are 64-byte aligned so shards never
 * share a cache line.
 *
 * Reader: sp_metrics_render() (the HTTP thread, at scrape time) sums the
 * slots. Each slot's counters only grow, so every summed counter is monotonic
 * from one scrape to the next. A histogram's _count is computed from the same
 * bucket reads as its +Inf bucket, so the two always agree.
 *
 * Labels come from the fixed enums below only; no label ever carries a device
 * key or anything a peer chooses.
 *
 * Threading of the rest: sp_metrics_create/destroy from one thread while no
 * writer or reader runs; sp_metrics_set_ready, sp_metrics_set_rocksdb_source,
 * sp_metrics_set_mailbox_base and sp_metrics_render from any thread.
 * Errors: 0 or a negative errno.
 */
#ifndef SP_METRICS_H
#define SP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"

enum { SP_METRICS_SHARDS_MAX = 256 };

/* sealpost_handshakes_total{pattern} */
enum sp_metrics_pattern {
	SP_METRICS_PATTERN_IK,
	SP_METRICS_PATTERN_XX,
	SP_METRICS_PATTERN_NK,          /* anonymous send-only (sealed sender) */
	SP_METRICS_PATTERN_COUNT,
};

/* sealpost_handshakes_total{outcome} */
enum sp_metrics_outcome {
	SP_METRICS_OUTCOME_OK,
	SP_METRICS_OUTCOME_FAILED,       /* bad decrypt, bad payload, bad key, peer closed */
	SP_METRICS_OUTCOME_TIMEOUT,      /* handshake_timeout elapsed */
	SP_METRICS_OUTCOME_RATE_LIMITED, /* refused before any crypto was spent */
	SP_METRICS_OUTCOME_COUNT,
};

/* sealpost_transport_*{transport}: which listener a connection came in on. */
enum sp_metrics_transport {
	SP_METRICS_TRANSPORT_TCP,
	SP_METRICS_TRANSPORT_WS,
	SP_METRICS_TRANSPORT_COUNT,
};

/* sealpost_ws_upgrades_total{outcome}: how WebSocket upgrade requests ended
 * (loop/sp_ws_upgrade.h gives each refusal its HTTP status). */
enum sp_metrics_ws_upgrade {
	SP_METRICS_WS_UPGRADE_OK,
	SP_METRICS_WS_UPGRADE_BAD_REQUEST,      /* 400: malformed, not a WebSocket upgrade */
	SP_METRICS_WS_UPGRADE_NOT_FOUND,        /* 404: a path other than /v1 */
	SP_METRICS_WS_UPGRADE_BAD_VERSION,      /* 426: Sec-WebSocket-Version is not 13 */
	SP_METRICS_WS_UPGRADE_BAD_PROTOCOL,     /* 400: no sealpost.v1 subprotocol */
	SP_METRICS_WS_UPGRADE_FORBIDDEN_ORIGIN, /* 403: Origin not in ws-allowed-origins */
	SP_METRICS_WS_UPGRADE_TOO_LARGE,        /* 431: longer than ws-upgrade-max */
	SP_METRICS_WS_UPGRADE_COUNT,
};

/* sealpost_memory_bytes{kind}: what a shard holds for its connections.
 * partial + output is what --mem-budget counts (sp_mem.h). */
enum sp_metrics_mem {
	SP_METRICS_MEM_PARTIAL,  /* reassembly buffers of messages not yet whole */
	SP_METRICS_MEM_OUTPUT,   /* outbound chunks in use (queued, not yet sent) */
	SP_METRICS_MEM_RESERVE,  /* outbound chunks kept free for reuse (trimmed after a burst) */
	SP_METRICS_MEM_SLAB,     /* the secrets slab: locked chunks, guard pages included */
	SP_METRICS_MEM_CONNS,    /* connection slots ever used (high water x slot size) */
	SP_METRICS_MEM_ROUTES,   /* the routing table's slots (device key -> connection) */
	SP_METRICS_MEM_RECV_POOL, /* receive buffer pool pages resident (a fixed cost, see sp_ring.h) */
	SP_METRICS_MEM_COUNT,
};
#define SP_METRICS_MEM_NAMES { "partial", "output", "reserve", "slab", "conns", "routes", "recv_pool" }

/* sealpost_envelopes_delivered_total{path} */
enum sp_metrics_path {
	SP_METRICS_PATH_LIVE,    /* routed straight to the recipient's connection */
	SP_METRICS_PATH_MAILBOX, /* read back from the recipient's mailbox */
	SP_METRICS_PATH_COUNT,
};

/*
 * sealpost_connections_closed_total{reason}: why a device connection ended.
 * The label values are the broker log's reason= values (enum sp_close_reason
 * in sp_conn.h, same order without its NONE), so a log line and a counter
 * name the same thing. The last two are connections refused right after
 * accept (see sp_metrics_conn_refused).
 */
enum sp_metrics_close {
	/* One per close reason (SP_CLOSE_<id>), then the refusals at accept. */
#define SP_CLOSE(id, label, level, message, goaway) SP_METRICS_CLOSE_##id,
#define SP_REFUSE(id, label) SP_METRICS_CLOSE_##id,
#include "sp_reasons.def"
	SP_METRICS_CLOSE_COUNT,
};

/*
 * sealpost_envelopes_refused_total{reason}: the SendResult error statuses,
 * lower-cased without the "STATUS_ERR_" prefix ("offline", "too_large", ...).
 * Index = status - SP_STATUS_ERR_OFFLINE.
 */
enum {
	SP_METRICS_REFUSED_FIRST = SP_STATUS_ERR_OFFLINE,
	SP_METRICS_REFUSED_COUNT = SP_STATUS_ERR_SHUTTING_DOWN - SP_STATUS_ERR_OFFLINE + 1,
};
/*
 * The sealed-sender SendResult statuses (docs/PROTOCOL.md 14: AnonSend's
 * access_missing .. anon_rate_limited, and not_anonymous) are a second
 * range of the same family, so that accepted + refused stays the Send rate
 * and a wrong access key is not an "internal" error. Index = status -
 * SP_METRICS_REFUSED_ANON_FIRST; GOAWAY_ANONYMOUS (68), in the middle, is
 * a close reason, never a SendResult, and has no series.
 */
enum {
	SP_METRICS_REFUSED_ANON_FIRST = SP_STATUS_ERR_ACCESS_MISSING,
	SP_METRICS_REFUSED_ANON_COUNT = SP_STATUS_ERR_ANON_RATE_LIMITED - SP_STATUS_ERR_ACCESS_MISSING + 1,
};

/*
 * Histogram bucket upper bounds, in the unit the writer passes (nanoseconds
 * for durations, a plain count for batch sizes). The rendered "le" labels
 * are in seconds; tests/unit/test_metrics.c checks the two tables agree.
 *
 * Handshake duration (accept to split): an IK responder costs
 * ~165 us of X25519 on this hardware, plus one round trip on the client's
 * network; the tail runs to the handshake timeout.
 */
#define SP_METRICS_HANDSHAKE_BOUNDS_NS                                                   \
	{ 250000ull, 500000ull, 1000000ull, 2500000ull, 5000000ull, 10000000ull,         \
	  25000000ull, 50000000ull, 100000000ull, 250000000ull, 500000000ull,            \
	  1000000000ull, 2500000000ull, 5000000000ull, 10000000000ull }
#define SP_METRICS_HANDSHAKE_LE                                                          \
	{ "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", \
	  "0.25", "0.5", "1", "2.5", "5", "10" }
enum { SP_METRICS_HANDSHAKE_NBUCKETS = 15 };

/*
 * Delivery latency (acceptance to the Deliver frame handed to the kernel),
 * one histogram per path: live routing is tens of microseconds, so the low
 * buckets are fine; mailbox deliveries wait for the recipient to come back,
 * minutes to days, so the high buckets are coarse: 1 min, 10 min, 1 h, 6 h,
 * 1 d, 7 d. Split by path so the mailbox wait never hides the live latency.
 */
#define SP_METRICS_DELIVERY_BOUNDS_NS                                                    \
	{ 25000ull, 50000ull, 100000ull, 250000ull, 500000ull, 1000000ull, 2500000ull,   \
	  5000000ull, 10000000ull, 25000000ull, 100000000ull, 1000000000ull,             \
	  10000000000ull, 60000000000ull, 600000000000ull, 3600000000000ull,             \
	  21600000000000ull, 86400000000000ull, 604800000000000ull }
#define SP_METRICS_DELIVERY_LE                                                           \
	{ "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", \
	  "0.01", "0.025", "0.1", "1", "10", "60", "600", "3600", "21600", "86400",      \
	  "604800" }
enum { SP_METRICS_DELIVERY_NBUCKETS = 19 };

/*
 * Completions reaped per event-loop iteration: powers of two up to the
 * largest CQ batch a shard drains at once.
 */
#define SP_METRICS_BATCH_BOUNDS { 1ull, 2ull, 4ull, 8ull, 16ull, 32ull, 64ull, 128ull, 256ull, \
				  512ull, 1024ull, 2048ull, 4096ull }
#define SP_METRICS_BATCH_LE { "1", "2", "4", "8", "16", "32", "64", "128", "256", "512", \
			      "1024", "2048", "4096" }
enum { SP_METRICS_BATCH_NBUCKETS = 13 };

/*
 * Web Push (broker/push/): what became of each wake-up (sent, gone = 404/410
 * and the subscription removed, retried = one more attempt after 429, 5xx,
 * a timeout or a connection failure, failed = given up or another answer,
 * refused_address = the endpoint resolved to a private address, dropped =
 * the queue was full, coalesced = not sent: within push-coalesce of the
 * last one), and each registration's result (accepted, removed, or its
 * error status).
 */
enum sp_metrics_push {
	SP_METRICS_PUSH_SENT = 0,
	SP_METRICS_PUSH_GONE,
	SP_METRICS_PUSH_RETRIED,
	SP_METRICS_PUSH_FAILED,
	SP_METRICS_PUSH_REFUSED_ADDRESS,
	SP_METRICS_PUSH_DROPPED,
	SP_METRICS_PUSH_COALESCED,
	SP_METRICS_PUSH_COUNT,
};
#define SP_METRICS_PUSH_NAMES \
	{ "sent", "gone", "retried", "failed", "refused_address", "dropped", "coalesced" }
/* Registration results: accepted, removed, then SP_STATUS_ERR_PUSH_* (56..63)
 * and internal. */
enum { SP_METRICS_PUSH_REG_COUNT = 2 + 8 + 1 };

/* sealpost_enrol_total{outcome}: registration checks (--registration=token,
 * app/sp_registration.c). */
enum sp_metrics_enrol {
	SP_METRICS_ENROL_ENROLLED = 0,  /* a valid token registered the device */
	SP_METRICS_ENROL_REGISTERED,    /* a registered device connected */
	SP_METRICS_ENROL_LISTED,        /* a device on a stored account list connected */
	SP_METRICS_ENROL_REQUIRED,      /* not registered, no token */
	SP_METRICS_ENROL_MALFORMED,     /* not a token of this version */
	SP_METRICS_ENROL_BAD_MAC,       /* forged, altered, or another broker's */
	SP_METRICS_ENROL_EXPIRED,
	SP_METRICS_ENROL_REPLAYED,      /* the token already enrolled a device */
	SP_METRICS_ENROL_INTERNAL,      /* the store failed */
	SP_METRICS_ENROL_COUNT,
};
#define SP_METRICS_ENROL_NAMES \
	{ "enrolled", "registered", "listed", "required", "malformed", "bad_mac", "expired", \
	  "replayed", "internal" }

/*
 * sealpost_store_call_seconds{op}: time the event-loop thread spends inside
 * one synchronous store call, by operation (docs/BENCHMARKS.md "Store calls
 * on the event loop"): enqueue and ack (in-batch lookups, microseconds),
 * commit (the iteration's group commit: one WAL write, plus its fdatasync
 * with --fsync always), sync (the WAL fdatasync of --fsync batch, once per
 * sync interval, from the tick), read (one backlog chunk of a drain),
 * expire (one time-budgeted sweep step), lookup (account list reads;
 * registration and access checks are point reads too, not timed), and
 * iteration (the sum of all of them in one
 * loop iteration that made any: the loop's stall on the store).
 * Bounds 1 us .. 1 s: a point read is microseconds, an fdatasync
 * milliseconds.
 */
enum sp_metrics_store_op {
	SP_METRICS_STORE_ENQUEUE = 0,
	SP_METRICS_STORE_ACK,
	SP_METRICS_STORE_COMMIT,
	SP_METRICS_STORE_SYNC,
	SP_METRICS_STORE_READ,
	SP_METRICS_STORE_EXPIRE,
	SP_METRICS_STORE_LOOKUP,
	SP_METRICS_STORE_ITERATION,
	SP_METRICS_STORE_OP_COUNT,
};
#define SP_METRICS_STORE_OP_NAMES \
	{ "enqueue", "ack", "commit", "sync", "read", "expire", "lookup", "iteration" }
#define SP_METRICS_STORE_BOUNDS_NS                                                       \
	{ 1000ull, 2500ull, 5000ull, 10000ull, 25000ull, 50000ull, 100000ull, 250000ull,  \
	  500000ull, 1000000ull, 2500000ull, 5000000ull, 10000000ull, 25000000ull,         \
	  50000000ull, 100000000ull, 250000000ull, 500000000ull, 1000000000ull }
#define SP_METRICS_STORE_LE                                                              \
	{ "1e-06", "2.5e-06", "5e-06", "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025",   \
	  "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",    \
	  "0.5", "1" }
enum { SP_METRICS_STORE_NBUCKETS = 19 };

enum { SP_METRICS_HIST_MAX = 19 }; /* the most bounds any histogram has */

/* bucket[i] counts observations in (bound[i-1], bound[i]]; bucket[n] is above the last bound. */
struct sp_metrics_hist {
	uint64_t bucket[SP_METRICS_HIST_MAX + 1];
	uint64_t sum; /* in the writer's unit */
};

/*
 * One writer's figures. Written only through the helpers below, by the
 * slot's owning thread; read by sp_metrics_render(). The gauges are signed
 * deltas: a connection opened on one shard and closed on another still sums
 * right.
 */
struct sp_metrics_shard {
	_Alignas(64) uint64_t bytes_received;
	uint64_t bytes_sent;
	uint64_t envelopes_accepted;
	uint64_t envelopes_delivered[SP_METRICS_PATH_COUNT];
	uint64_t envelopes_refused[SP_METRICS_REFUSED_COUNT];
	uint64_t envelopes_refused_anon[SP_METRICS_REFUSED_ANON_COUNT];
	uint64_t acks;
	uint64_t expired;
	uint64_t sweep_steps;
	uint64_t sweep_partial;
	uint64_t sweep_resumed;
	uint64_t store_full;
	uint64_t share_full;
	uint64_t push_wakeups[SP_METRICS_PUSH_COUNT];
	uint64_t push_timeouts;
	uint64_t push_registrations[SP_METRICS_PUSH_REG_COUNT];
	int64_t push_subscriptions;
	uint64_t scrubs;
	uint64_t loop_iterations;
	uint64_t connections_accepted;
	int64_t connections_open;
	int64_t mailbox_entries;
	int64_t mailbox_bytes;
	uint64_t connections_closed[SP_METRICS_CLOSE_COUNT];
	uint64_t handshakes[SP_METRICS_PATTERN_COUNT][SP_METRICS_OUTCOME_COUNT];
	/* Successful handshakes by transport cipher (enum sp_noise_aead:
	 * ChaChaPoly, AESGCM; PROTOCOL.md 2). */
	uint64_t handshakes_cipher[2];
	/* The same, by transport (the families above are their sums). */
	uint64_t tr_accepted[SP_METRICS_TRANSPORT_COUNT];
	int64_t tr_open[SP_METRICS_TRANSPORT_COUNT];
	uint64_t tr_closed[SP_METRICS_TRANSPORT_COUNT][SP_METRICS_CLOSE_COUNT];
	uint64_t tr_handshakes[SP_METRICS_TRANSPORT_COUNT][SP_METRICS_PATTERN_COUNT]
			      [SP_METRICS_OUTCOME_COUNT];
	uint64_t ws_upgrades[SP_METRICS_WS_UPGRADE_COUNT];
	uint64_t ws_closes_sent;        /* WebSocket close frames sent */
	uint64_t enrol_outcomes[SP_METRICS_ENROL_COUNT];
	/* Set (not added) by the slot's shard at each tick: absolute values. */
	int64_t mem_bytes[SP_METRICS_MEM_COUNT];
	int64_t mem_budget;
	uint64_t slab_lock_failures;
	uint64_t devices_routed;        /* devices routed on this shard (its home devices online) */
	struct sp_metrics_hist loop_batch;
	struct sp_metrics_hist delivery_latency[SP_METRICS_PATH_COUNT];
	struct sp_metrics_hist handshake_duration;
	struct sp_metrics_hist store_call[SP_METRICS_STORE_OP_COUNT];
};

_Static_assert(sizeof(struct sp_metrics_shard) % 64 == 0, "slots must not share cache lines");

struct sp_metrics;

/*
 * RocksDB figures, read at scrape time through a callback the daemon
 * registers. The callback runs on the HTTP thread, so it must be safe to
 * call concurrently with the shards (rocksdb_property_int is).
 */
struct sp_metrics_rocksdb {
	double write_stall_seconds;        /* cumulative time writes were stalled */
	uint64_t sst_bytes;                /* total-sst-files-size */
	uint64_t pending_compaction_bytes; /* estimate-pending-compaction-bytes */
};
/* Fills *out; returns 0, or a negative errno to leave the RocksDB figures out of this scrape. */
typedef int (*sp_metrics_rocksdb_fn)(void *ctx, struct sp_metrics_rocksdb *out);

/*
 * For a RocksDB source: the cumulative write-stall time from the text of the
 * "rocksdb.dbstats" property (its "Cumulative stall: H:MM:SS.mmm H:M:S"
 * line; RocksDB's C API of this version has no ticker access).
 * dbstats borrowed for the call. 0, or -EINVAL if the line is missing or
 * malformed.
 */
int sp_metrics_parse_rocksdb_stall(const char *dbstats, double *seconds);

/* nshards in 1..SP_METRICS_SHARDS_MAX. Every figure starts at zero, not ready. */
int sp_metrics_create(struct sp_metrics **out, unsigned nshards);
void sp_metrics_destroy(struct sp_metrics *m);

unsigned sp_metrics_nshards(const struct sp_metrics *m);
/* The slot of shard idx (< nshards), for that shard's thread only. */
struct sp_metrics_shard *sp_metrics_shard(struct sp_metrics *m, unsigned idx);
/* The one slot for a thread that is not a shard; not rendered with a shard label. */
struct sp_metrics_shard *sp_metrics_aux(struct sp_metrics *m);

/* /readyz answers 200 only while ready: set once listening and storage is open
 * and, in cluster mode, while the node's NATS connection is up. */
void sp_metrics_set_ready(struct sp_metrics *m, bool ready);
bool sp_metrics_ready(const struct sp_metrics *m);
/* Cluster mode: the NATS connection went down (false) or came back (true);
 * called from libnats's threads. Up from the start (single node). */
void sp_metrics_set_cluster_up(struct sp_metrics *m, bool up);

/*
 * A cluster node's figures (broker/cluster/sp_cluster.h), read at scrape time
 * on the HTTP thread; the callback must be safe to call beside the libnats
 * threads (the counters are atomics, the NATS figures libnats's own stats).
 */
struct sp_metrics_cluster {
	uint64_t connected;             /* 1 while the NATS connection is up */
	uint64_t disconnects;           /* times it went down */
	uint64_t reconnects;            /* times it came back */
	uint64_t msgs_in, msgs_out;     /* NATS messages (natsConnection_GetStats) */
	uint64_t bytes_in, bytes_out;
	uint64_t remote_sends;          /* online-only sends to another node */
	uint64_t remote_deliveries;     /* envelopes from another node delivered here */
	uint64_t takeovers;             /* connections here ended by one on another node */
	uint64_t timeouts;              /* remote sends unanswered in time */
	uint64_t errors;                /* NATS calls that failed */
	uint64_t round_trip_ns, round_trips; /* answered remote sends: sum and count */
	uint64_t js_stored, js_refused;      /* durable sends JetStream took / did not */
	uint64_t js_publish_ns, js_publishes; /* publish to PubAck: sum and count */
	uint64_t js_reads, js_deletes;       /* mailbox messages read / deleted on ack */
};
typedef int (*sp_metrics_cluster_fn)(void *ctx, struct sp_metrics_cluster *out);
/* Registers (fn non-NULL) or removes the cluster source; as for RocksDB, once
 * a removal returns the old callback is not running. Without one (single
 * node) no sealpost_cluster_* family is rendered. */
void sp_metrics_set_cluster_source(struct sp_metrics *m, sp_metrics_cluster_fn fn, void *ctx);

/*
 * Registers (fn non-NULL) or removes (fn NULL) the RocksDB source. Once a
 * removal returns, the old callback is not running and will not run again, so
 * the daemon removes it before closing the database.
 */
void sp_metrics_set_rocksdb_source(struct sp_metrics *m, sp_metrics_rocksdb_fn fn, void *ctx);

/*
 * What the mailboxes held when storage was opened (counted by the daemon);
 * the shards' deltas are added to it.
 */
void sp_metrics_set_mailbox_base(struct sp_metrics *m, uint64_t entries, uint64_t bytes);

/* A growable text buffer; render appends to it. Owned by the caller: free with sp_metrics_buf_free. */
struct sp_metrics_buf {
	char *data; /* NUL-terminated once anything was written; malloc'd */
	size_t len;
	size_t cap;
};
void sp_metrics_buf_free(struct sp_metrics_buf *b);

enum sp_metrics_render_flags {
	/* Leave out process_resident_memory_bytes, process_open_fds, process_max_fds. */
	SP_METRICS_RENDER_NO_PROCESS = 1u << 0,
};

/*
 * Appends every metric in the text exposition format 0.0.4 to out (the
 * buffer is borrowed for the call and may be reallocated). Reads the slots
 * with relaxed atomic loads; calls the RocksDB source if one is set, and
 * reads /proc/self unless SP_METRICS_RENDER_NO_PROCESS. 0 or -ENOMEM.
 */
int sp_metrics_render(struct sp_metrics *m, struct sp_metrics_buf *out, unsigned flags);

/* Content-Type of the rendered text. */
#define SP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Label values, for tests and docs. NULL if out of range. */
const char *sp_metrics_pattern_name(enum sp_metrics_pattern p);
const char *sp_metrics_outcome_name(enum sp_metrics_outcome o);
const char *sp_metrics_path_name(enum sp_metrics_path p);
const char *sp_metrics_close_name(enum sp_metrics_close c);
const char *sp_metrics_refused_name(enum sp_status status);

/* --- hot path: single-writer increments -------------------------------------- */

static inline void sp_metrics_add_(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline void sp_metrics_gauge_add_(int64_t *g, int64_t d)
{
	/* Unsigned arithmetic: a gauge may pass through negative values per slot. */
	uint64_t v = (uint64_t)__atomic_load_n(g, __ATOMIC_RELAXED) + (uint64_t)d;

	__atomic_store_n(g, (int64_t)v, __ATOMIC_RELAXED);
}

static inline void sp_metrics_observe_(struct sp_metrics_hist *h, const uint64_t *bounds,
				       unsigned n, uint64_t v)
{
	unsigned i = 0;

	while (i < n && v > bounds[i])
		i++;
	sp_metrics_add_(&h->bucket[i], 1);
	sp_metrics_add_(&h->sum, v);
}

/* A device connection was accepted (sealpost_connections_accepted_total, _open). */
static inline void sp_metrics_conn_accepted(struct sp_metrics_shard *s)
{
	sp_metrics_add_(&s->connections_accepted, 1);
	sp_metrics_gauge_add_(&s->connections_open, 1);
}

/*
 * A connection accept() returned but the shard closed at once without
 * taking it on (why: MAX_CONNS or HANDSHAKE_RATE). Counted as accepted and
 * closed, never as open.
 */
static inline void sp_metrics_conn_refused(struct sp_metrics_shard *s, enum sp_metrics_close why)
{
	if ((unsigned)why >= SP_METRICS_CLOSE_COUNT)
		why = SP_METRICS_CLOSE_INTERNAL;
	sp_metrics_add_(&s->connections_accepted, 1);
	sp_metrics_add_(&s->connections_closed[why], 1);
}

/* A device connection counted by sp_metrics_conn_accepted was closed, once per connection. */
static inline void sp_metrics_conn_closed(struct sp_metrics_shard *s, enum sp_metrics_close why)
{
	if ((unsigned)why >= SP_METRICS_CLOSE_COUNT)
		why = SP_METRICS_CLOSE_INTERNAL;
	sp_metrics_add_(&s->connections_closed[why], 1);
	sp_metrics_gauge_add_(&s->connections_open, -1);
}

/* The close reason for a GoAway status; SP_METRICS_CLOSE_INTERNAL for anything else. */
static inline enum sp_metrics_close sp_metrics_close_from_status(enum sp_status st)
{
	switch (st) {
	case SP_STATUS_GOAWAY_PROTOCOL: return SP_METRICS_CLOSE_PROTOCOL;
	case SP_STATUS_GOAWAY_TAKEOVER: return SP_METRICS_CLOSE_TAKEOVER;
	case SP_STATUS_GOAWAY_SHUTDOWN: return SP_METRICS_CLOSE_SHUTDOWN;
	case SP_STATUS_GOAWAY_SLOW_CONSUMER: return SP_METRICS_CLOSE_SLOW_CONSUMER;
	case SP_STATUS_GOAWAY_IDLE: return SP_METRICS_CLOSE_IDLE;
	case SP_STATUS_GOAWAY_REMOVED: return SP_METRICS_CLOSE_REMOVED;
	default: return SP_METRICS_CLOSE_INTERNAL;
	}
}

/*
 * A handshake ended, once per connection whose preamble named a pattern.
 * duration_ns (accept to split, the span handshake_timeout bounds) feeds sealpost_handshake_duration_seconds for
 * successful handshakes only: timeouts would otherwise pile up in the top
 * bucket and hide the real cost.
 */
/* A successful handshake's cipher (0 ChaChaPoly, 1 AESGCM). */
static inline void sp_metrics_handshake_cipher(struct sp_metrics_shard *s, unsigned aead)
{
	if (aead < 2)
		sp_metrics_add_(&s->handshakes_cipher[aead], 1);
}

static inline void sp_metrics_handshake(struct sp_metrics_shard *s, enum sp_metrics_pattern p,
					enum sp_metrics_outcome o, uint64_t duration_ns)
{
	static const uint64_t bounds[] = SP_METRICS_HANDSHAKE_BOUNDS_NS;

	if ((unsigned)p >= SP_METRICS_PATTERN_COUNT || (unsigned)o >= SP_METRICS_OUTCOME_COUNT)
		return;
	sp_metrics_add_(&s->handshakes[p][o], 1);
	if (o == SP_METRICS_OUTCOME_OK)
		sp_metrics_observe_(&s->handshake_duration, bounds, SP_METRICS_HANDSHAKE_NBUCKETS,
				    duration_ns);
}

/* The per-transport twins of the four above, called beside them. */
static inline void sp_metrics_tr_accepted(struct sp_metrics_shard *s, enum sp_metrics_transport t)
{
	if ((unsigned)t >= SP_METRICS_TRANSPORT_COUNT)
		return;
	sp_metrics_add_(&s->tr_accepted[t], 1);
	sp_metrics_gauge_add_(&s->tr_open[t], 1);
}

static inline void sp_metrics_tr_refused(struct sp_metrics_shard *s, enum sp_metrics_transport t,
					 enum sp_metrics_close why)
{
	if ((unsigned)t >= SP_METRICS_TRANSPORT_COUNT)
		return;
	if ((unsigned)why >= SP_METRICS_CLOSE_COUNT)
		why = SP_METRICS_CLOSE_INTERNAL;
	sp_metrics_add_(&s->tr_accepted[t], 1);
	sp_metrics_add_(&s->tr_closed[t][why], 1);
}

static inline void sp_metrics_tr_closed(struct sp_metrics_shard *s, enum sp_metrics_transport t,
					enum sp_metrics_close why)
{
	if ((unsigned)t >= SP_METRICS_TRANSPORT_COUNT)
		return;
	if ((unsigned)why >= SP_METRICS_CLOSE_COUNT)
		why = SP_METRICS_CLOSE_INTERNAL;
	sp_metrics_add_(&s->tr_closed[t][why], 1);
	sp_metrics_gauge_add_(&s->tr_open[t], -1);
}

static inline void sp_metrics_tr_handshake(struct sp_metrics_shard *s, enum sp_metrics_transport t,
					   enum sp_metrics_pattern p, enum sp_metrics_outcome o)
{
	if ((unsigned)t >= SP_METRICS_TRANSPORT_COUNT || (unsigned)p >= SP_METRICS_PATTERN_COUNT ||
	    (unsigned)o >= SP_METRICS_OUTCOME_COUNT)
		return;
	sp_metrics_add_(&s->tr_handshakes[t][p][o], 1);
}

/* A WebSocket upgrade request was answered (101 or a refusal). */
static inline void sp_metrics_ws_upgrade(struct sp_metrics_shard *s, enum sp_metrics_ws_upgrade o)
{
	if ((unsigned)o < SP_METRICS_WS_UPGRADE_COUNT)
		sp_metrics_add_(&s->ws_upgrades[o], 1);
}

static inline void sp_metrics_ws_close_sent(struct sp_metrics_shard *s)
{
	sp_metrics_add_(&s->ws_closes_sent, 1);
}

/* A Send was answered DELIVERED or ACCEPTED (the broker took responsibility for it). */
static inline void sp_metrics_envelope_accepted(struct sp_metrics_shard *s)
{
	sp_metrics_add_(&s->envelopes_accepted, 1);
}

/*
 * A Send (or AnonSend) was answered with an error status (SP_STATUS_ERR_*,
 * or the sealed-sender range). A status outside both is a broker bug and is
 * counted as "internal".
 */
static inline void sp_metrics_envelope_refused(struct sp_metrics_shard *s, enum sp_status st)
{
	unsigned i = (unsigned)st - SP_METRICS_REFUSED_FIRST;
	unsigned a = (unsigned)st - SP_METRICS_REFUSED_ANON_FIRST;

	if (a < SP_METRICS_REFUSED_ANON_COUNT && st != SP_STATUS_GOAWAY_ANONYMOUS) {
		sp_metrics_add_(&s->envelopes_refused_anon[a], 1);
		return;
	}
	if (i >= SP_METRICS_REFUSED_COUNT)
		i = SP_STATUS_ERR_INTERNAL - SP_METRICS_REFUSED_FIRST;
	sp_metrics_add_(&s->envelopes_refused[i], 1);
}

/*
 * A Deliver frame carrying an envelope was handed to the kernel for its
 * recipient. latency_ns: from acceptance (the SendResult) to now; for
 * mailbox deliveries the daemon computes it from the stored wall-clock
 * acceptance time (clamp at 0 if the clock stepped back).
 */
static inline void sp_metrics_envelope_delivered(struct sp_metrics_shard *s,
						 enum sp_metrics_path path, uint64_t latency_ns)
{
	static const uint64_t bounds[] = SP_METRICS_DELIVERY_BOUNDS_NS;

	if ((unsigned)path >= SP_METRICS_PATH_COUNT)
		return;
	sp_metrics_add_(&s->envelopes_delivered[path], 1);
	sp_metrics_observe_(&s->delivery_latency[path], bounds, SP_METRICS_DELIVERY_NBUCKETS,
			    latency_ns);
}

/*
 * n envelopes delivered on path in one go, all with the same latency (for
 * example every live delivery of one loop iteration, timed at its flush).
 */
static inline void sp_metrics_envelopes_delivered(struct sp_metrics_shard *s,
						  enum sp_metrics_path path, uint64_t n,
						  uint64_t latency_ns)
{
	static const uint64_t bounds[] = SP_METRICS_DELIVERY_BOUNDS_NS;
	struct sp_metrics_hist *h;
	unsigned i = 0;

	if ((unsigned)path >= SP_METRICS_PATH_COUNT || n == 0)
		return;
	h = &s->delivery_latency[path];
	while (i < SP_METRICS_DELIVERY_NBUCKETS && latency_ns > bounds[i])
		i++;
	sp_metrics_add_(&s->envelopes_delivered[path], n);
	sp_metrics_add_(&h->bucket[i], n);
	sp_metrics_add_(&h->sum, n * latency_ns);
}

/* Raw TCP bytes from devices (preamble, handshake, transport, length prefixes). */
static inline void sp_metrics_bytes_received(struct sp_metrics_shard *s, uint64_t n)
{
	sp_metrics_add_(&s->bytes_received, n);
}

/* Raw TCP bytes the kernel accepted for devices (the completed send's result). */
static inline void sp_metrics_bytes_sent(struct sp_metrics_shard *s, uint64_t n)
{
	sp_metrics_add_(&s->bytes_sent, n);
}

/* Mailbox contents changed: +1/+len on store, -1/-len on ack or expiry. */
static inline void sp_metrics_mailbox_add(struct sp_metrics_shard *s, int64_t entries,
					  int64_t bytes)
{
	sp_metrics_gauge_add_(&s->mailbox_entries, entries);
	sp_metrics_gauge_add_(&s->mailbox_bytes, bytes);
}

/* n sequence numbers acknowledged (one Ack frame may carry several). */
static inline void sp_metrics_acks(struct sp_metrics_shard *s, uint64_t n)
{
	sp_metrics_add_(&s->acks, n);
}

/* n mailbox entries removed because their time to live ran out. */
static inline void sp_metrics_expired(struct sp_metrics_shard *s, uint64_t n)
{
	sp_metrics_add_(&s->expired, n);
}

/* A durable Send refused for the store's space bounds (it is also counted
 * as refused, reason mailbox_full, when its SendResult goes out). */
static inline void sp_metrics_store_full(struct sp_metrics_shard *s)
{
	sp_metrics_add_(&s->store_full, 1);
}

/* A durable Send refused because its sender holds its whole share of the
 * recipient's mailbox (also counted as refused, reason mailbox_full). */
static inline void sp_metrics_share_full(struct sp_metrics_shard *s)
{
	sp_metrics_add_(&s->share_full, 1);
}

/* One Web Push outcome (timed_out: it was a request timeout). */
static inline void sp_metrics_push_wakeup(struct sp_metrics_shard *s, enum sp_metrics_push o,
					  bool timed_out)
{
	sp_metrics_add_(&s->push_wakeups[o], 1);
	if (timed_out)
		sp_metrics_add_(&s->push_timeouts, 1);
}

/* A registration's result: index 0 accepted, 1 removed, 2.. its status. */
static inline void sp_metrics_enrol(struct sp_metrics_shard *s, enum sp_metrics_enrol o)
{
	if ((unsigned)o < SP_METRICS_ENROL_COUNT)
		sp_metrics_add_(&s->enrol_outcomes[o], 1);
}

static inline void sp_metrics_push_registration(struct sp_metrics_shard *s, unsigned i)
{
	if (i < SP_METRICS_PUSH_REG_COUNT)
		sp_metrics_add_(&s->push_registrations[i], 1);
}

static inline void sp_metrics_push_subscriptions(struct sp_metrics_shard *s, int64_t d)
{
	sp_metrics_gauge_add_(&s->push_subscriptions, d);
}

/* n store scrubs finished (removed data flushed and compacted away). */
static inline void sp_metrics_scrubs(struct sp_metrics_shard *s, uint64_t n)
{
	sp_metrics_add_(&s->scrubs, n);
}

/* One step of the expiry sweep; partial: it stopped at its time or count
 * budget; resumed: it began where the previous partial step stopped. */
static inline void sp_metrics_sweep_step(struct sp_metrics_shard *s, bool partial, bool resumed)
{
	sp_metrics_add_(&s->sweep_steps, 1);
	if (partial)
		sp_metrics_add_(&s->sweep_partial, 1);
	if (resumed)
		sp_metrics_add_(&s->sweep_resumed, 1);
}

/* The shard's memory figures now (sealpost_memory_bytes{kind}) and its
 * budget (sealpost_memory_budget_bytes): stored, not added. */
static inline void sp_metrics_memory_set(struct sp_metrics_shard *s, enum sp_metrics_mem k,
					 uint64_t bytes)
{
	__atomic_store_n(&s->mem_bytes[k], (int64_t)bytes, __ATOMIC_RELAXED);
}

static inline void sp_metrics_memory_budget(struct sp_metrics_shard *s, uint64_t bytes)
{
	__atomic_store_n(&s->mem_budget, (int64_t)bytes, __ATOMIC_RELAXED);
}

/* n more chunks of the secrets slab could not be locked (RLIMIT_MEMLOCK). */
static inline void sp_metrics_slab_lock_failures(struct sp_metrics_shard *s, uint64_t n)
{
	sp_metrics_add_(&s->slab_lock_failures, n);
}

/* One event-loop iteration that reaped ncqes completions (0 allowed: a wake-up with none). */
/* One synchronous store call of op took ns on the slot's thread. */
static inline void sp_metrics_store_call(struct sp_metrics_shard *s, enum sp_metrics_store_op op,
					 uint64_t ns)
{
	static const uint64_t bounds[] = SP_METRICS_STORE_BOUNDS_NS;

	if ((unsigned)op >= SP_METRICS_STORE_OP_COUNT)
		return;
	sp_metrics_observe_(&s->store_call[op], bounds, SP_METRICS_STORE_NBUCKETS, ns);
}

/* Set by the shard at the end of each iteration. */
static inline void sp_metrics_devices_routed(struct sp_metrics_shard *s, uint64_t n)
{
	__atomic_store_n(&s->devices_routed, n, __ATOMIC_RELAXED);
}

static inline void sp_metrics_loop_iteration(struct sp_metrics_shard *s, uint64_t ncqes)
{
	static const uint64_t bounds[] = SP_METRICS_BATCH_BOUNDS;

	sp_metrics_add_(&s->loop_iterations, 1);
	sp_metrics_observe_(&s->loop_batch, bounds, SP_METRICS_BATCH_NBUCKETS, ncqes);
}

#endif
