/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_config.h: sealpostd's configuration and its command line.
 *
 * The configuration is a plain struct filled by sp_config_defaults and
 * sp_config_parse and then passed (const) to whoever needs it; there is no
 * global. Every limit is a named option with a default and a range; the
 * option table in sp_config.c is the single source for parsing, range checks
 * and --help, so they cannot disagree.
 *
 * Protocol maxima (lib/wire/sp_limits.h) bound the ranges: a configuration may
 * lower a wire limit, never raise it.
 *
 * Config file (--config FILE): INI, read with libinih. Keys are the long
 * option names without "--", one "key = value" per line, no sections;
 * '#' or ';' starts a comment line, " ;" an inline comment. Order of
 * precedence: defaults < file < command-line flags. Unknown keys, bad values,
 * a key given twice and syntax errors are errors naming FILE:LINE. Lines are
 * at most SP_CONFIG_FILE_LINE_MAX characters (libinih's fixed line buffer).
 */
#ifndef SP_CONFIG_H
#define SP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <stdio.h>
#include <sys/socket.h>

#include "sp_log.h"

enum {
	SP_CONFIG_PATH_MAX = 4096,
	SP_CONFIG_HOST_MAX = 256,
	SP_CONFIG_ERR_MAX = 512,
	SP_CONFIG_FILE_LINE_MAX = 198,
	SP_CONFIG_SOCKET_MAX = 108,     /* sizeof(sun_path) */
	SP_CONFIG_ORIGINS_MAX = 1024,   /* --ws-allowed-origins, the whole list */
	SP_CONFIG_PUSH_SUBJECT_MAX = 192,
	SP_CONFIG_PUSH_HOSTS_MAX = 1024,
	SP_CONFIG_CLUSTER_MAX = 1024,   /* --cluster, the whole URL list */
	SP_CONFIG_CLUSTER_URLS_MAX = 16, /* NATS servers named in --cluster */
};

/* push-urgency (RFC 8030 5.3), the Urgency header's values in order. */
enum sp_config_urgency {
	SP_URGENCY_VERY_LOW = 0,
	SP_URGENCY_LOW = 1,
	SP_URGENCY_NORMAL = 2,
	SP_URGENCY_HIGH = 3,
};
const char *sp_config_urgency_name(uint32_t u);

/* Defaults; --help prints them from the option table. */
#define SP_DEFAULT_LISTEN "127.0.0.1:7400"
#define SP_DEFAULT_DATA_DIR "./data"
#define SP_DEFAULT_METRICS_LISTEN "127.0.0.1:9400"
#define SP_DEFAULT_WS_LISTEN "off"
enum {
	SP_DEFAULT_PORT = 7400,
	/* 20,000 open files per process on these machines, hard: leave room for the
	 * listener, the ring, RocksDB's files and the odd accept beyond the cap. */
	SP_DEFAULT_MAX_CONNS = 16000,
	SP_DEFAULT_SENDQ_MAX = 256 * 1024,
	/* Reassembly and outbound queues of all connections: 16,000 connections
	 * at 64 KiB each; MemoryMax= in the unit leaves room above it for the
	 * store and the connection table (docs/OPERATIONS.md, "Memory"). */
	SP_DEFAULT_MEM_BUDGET = 1 << 30,
	SP_DEFAULT_HANDSHAKE_TIMEOUT_MS = 10000,
	/* An honest client sends its first message with the preamble, at
	 * once; a socket that stays silent holds a slot for nothing. */
	SP_DEFAULT_HELLO_TIMEOUT_MS = 3000,
	SP_DEFAULT_IDLE_TIMEOUT_S = 600,
	/* Handshakes started per second in all: below one core's measured
	 * IK responder capacity (about 4,000/s here, docs/BENCHMARKS.md), so
	 * that a handshake flood leaves the loop time for established devices. */
	SP_DEFAULT_HANDSHAKE_RATE = 3000,
	/* One source (a NAT gateway at most) gets a thirtieth of that, with
	 * room for a burst of reconnects. */
	SP_DEFAULT_HANDSHAKE_RATE_PER_SOURCE = 100,
	SP_DEFAULT_HANDSHAKE_BURST_PER_SOURCE = 200,
	/* One address (a NAT gateway at most) gets a quarter of the default
	 * table; handshakes in progress are cheap to start, so fewer. */
	SP_DEFAULT_MAX_CONNS_PER_SOURCE = 4000,
	SP_DEFAULT_MAX_UNAUTH_PER_SOURCE = 1000,
	SP_DEFAULT_RECV_BUFFERS = 2048,
	SP_DEFAULT_RECV_BUFFER_SIZE = 16384,
	SP_DEFAULT_CLOSE_GRACE_MS = 2000,
	SP_DEFAULT_LOG_RATE = 10,
	SP_DEFAULT_LOCK_TIMEOUT_S = 0,
	SP_DEFAULT_ADMIN_MAX_CONNS = 4,
	SP_DEFAULT_ADMIN_REQUEST_MAX = 4096,
	SP_DEFAULT_ADMIN_TIMEOUT_MS = 5000,
	/* --threads: 0 = one shard per online core (sp_config_threads). */
	SP_DEFAULT_THREADS = 0,
	/* A shard id fits a uint8_t (struct sp_shard) and a metrics slot. */
	SP_CONFIG_THREADS_MAX = 64,
	/* A connection slot fits in 24 bits of a route handle (sp_shard.h). */
	SP_CONFIG_MAX_CONNS_MAX = 1 << 20,
	/* io_uring buffer rings hold at most 32768 entries. */
	SP_CONFIG_RECV_BUFFERS_MAX = 32768,
};

struct sp_config {
	/* --listen HOST:PORT, parsed (numeric addresses only: no DNS on startup). */
	char listen[SP_CONFIG_HOST_MAX];
	struct sockaddr_storage listen_addr;
	socklen_t listen_addr_len;
	char data_dir[SP_CONFIG_PATH_MAX];
	/* --metrics-listen HOST:PORT for /metrics, /healthz, /readyz; "off" = no endpoint. */
	char metrics_listen[SP_CONFIG_HOST_MAX];
	uint32_t metrics_conn_max;         /* HTTP connections at once */
	uint32_t metrics_per_address_max;  /* HTTP connections at once from one IP address */
	uint32_t metrics_deadline_ms;      /* an HTTP request must be complete within this */
	/* --config FILE that was read ("" if none): for --check-config and the start log. */
	char config_path[SP_CONFIG_PATH_MAX];

	uint32_t threads;               /* shards; 0 = online cores (sp_config_threads) */
	uint32_t max_conns;             /* connections per process */
	uint32_t max_conns_per_source;  /* per IPv4 address / IPv6 /64; 0 = no limit */
	uint32_t max_unauth_per_source; /* of those, not yet proven; 0 = no limit */
	uint32_t max_envelope;          /* largest Send body accepted, <= SP_BODY_MAX */
	uint64_t sendq_max;             /* per-connection outbound queue before RECIPIENT_BUSY;
					 * 2x this closes the connection (SLOW_CONSUMER) */
	uint64_t mem_budget;            /* reassembly + outbound queue bytes, all connections */
	uint32_t handshake_timeout_ms;  /* from accept to transport */
	uint32_t hello_timeout_ms;       /* accept to the first handshake message */
	uint32_t idle_timeout_s;        /* nothing received for this long: GoAway IDLE; 0 = off */
	uint32_t handshake_rate;        /* handshakes started per second in all; 0 = off */
	uint32_t handshake_rate_per_source; /* of them per source (IPv4 /32, IPv6 /64); 0 = off */
	uint32_t handshake_burst_per_source; /* a source's bucket size */
	uint32_t recv_buffers;          /* provided-buffer ring entries (power of two) */
	uint32_t recv_buffer_size;      /* bytes per receive buffer */
	uint32_t close_grace_ms;        /* how long a GoAway'd connection may take to drain */
	uint32_t log_rate;              /* peer-triggered log lines per second per event kind */
	uint32_t lock_timeout_s;        /* wait this long for the data-directory lock; 0 = fail */
	enum sp_log_level log_level;

	/* Mailboxes (DATA_DIR/mailbox, broker/sp_store.h). */
	uint32_t fsync;                 /* enum sp_config_fsync */
	uint32_t fsync_interval_ms;     /* batch: longest a commit may wait for its fsync */
	uint64_t mailbox_max_count;     /* envelopes per mailbox */
	uint64_t mailbox_max_bytes;     /* body bytes per mailbox */
	uint64_t ttl_s;                 /* an envelope expires this long after acceptance */
	uint64_t dedup_window_s;        /* how long (sender, recipient, client_id) is remembered */
	uint32_t backlog_chunk;         /* envelopes per backlog read */
	uint32_t ack_unknown_max;       /* acks for nothing a connection may send before it is closed */
	uint32_t account_max_devices;   /* devices on one signed list (<= SP_DEVLIST_DEVICES_MAX) */
	/* Fan-out groups (app/sp_fanout.c, PROTOCOL.md 16), per connection. */
	uint32_t fanout_max_copies;     /* copies in one group (<= SP_FANOUT_COPIES_MAX) */
	uint64_t fanout_max_bytes;      /* body bytes one open group may hold */
	uint32_t fanout_timeout_ms;     /* FanoutBegin to last copy, at most */

	/* The admin socket (obs/sp_admin.h). "" = DATA_DIR/admin.sock, "off" = none. */
	char admin_socket[SP_CONFIG_SOCKET_MAX];
	uint32_t admin_socket_mode;     /* 0600 or 0660 */
	uint32_t admin_max_conns;       /* admin connections at once */
	uint32_t admin_request_max;     /* bytes of one request line */
	uint32_t admin_timeout_ms;      /* from accept to the answer written */
	uint32_t expiry_sweep_budget_ms; /* loop time one expiry sweep step may take */
	uint32_t expiry_sweep_batch;    /* expiry index records one sweep step reads, at most */
	/* Disk: refuse new envelopes before the disk is full (0 = off). */
	uint64_t store_max_bytes;       /* body bytes over all mailboxes */
	uint64_t store_min_free;        /* free bytes kept back on the data file system */
	uint64_t store_ballast;         /* bytes of DATA_DIR/mailbox/ballast */
	/* Per-sender budgets for durable envelopes (0 rate = that bucket off). */
	uint64_t sender_rate;           /* envelopes per second */
	uint64_t sender_burst;
	uint64_t sender_byte_rate;      /* body bytes per second */
	uint64_t sender_byte_burst;
	uint32_t sender_table_max;      /* senders tracked per shard */
	/* Sealed sender (PROTOCOL.md 14): anonymous (NK) sends, per recipient
	 * and per source (IPv4 /32, IPv6 /64) token buckets; 0 rate = off. */
	uint64_t anon_recipient_rate;   /* anonymous envelopes per second to one recipient */
	uint64_t anon_recipient_burst;
	uint64_t anon_source_rate;      /* anonymous envelopes per second from one source */
	uint64_t anon_source_burst;
	/* Prekeys (PROTOCOL.md 17). */
	uint32_t prekey_upload_max;     /* one-time prekeys per PrekeyUpload, <= SP_PREKEY_UPLOAD_MAX */
	uint32_t prekey_stock_max;      /* one-time prekeys kept per device, <= SP_PREKEY_STOCK_MAX */
	uint32_t prekey_low;            /* PrekeyLow below this many left; 0 = never */
	uint64_t prekey_fetch_source_rate; /* fetches per second from one source; 0 = off */
	uint64_t prekey_fetch_source_burst;
	uint64_t prekey_fetch_device_rate; /* fetches per second of one device's bundle; 0 = off */
	uint64_t prekey_fetch_device_burst;
	/* --test-rekey-messages: for tests only (not in --help): transport
	 * messages per key before a rekey instead of the protocol's
	 * SP_REKEY_MESSAGES; 0 = the protocol's. A client that does not use the
	 * same value fails at the first rekey. */
	uint64_t test_rekey_messages;
	uint32_t mailbox_sender_share;  /* % of a mailbox's quotas one sender may hold; 100 = off */
	uint32_t mailbox_share_table_max; /* (sender, mailbox) pairs counted */
	uint32_t store_recent_max;      /* envelope headers remembered for read-free acks */
	uint32_t store_expiry_window_ms; /* expiry windows' life (sp_store.h "Expiry windows") */
	uint64_t store_max_wal;         /* bytes of write-ahead log before memtables are flushed */
	uint32_t store_scrub_interval_s; /* removed data leaves the disk within this (+ the scrub) */
	uint32_t store_blob_min_bytes;  /* stored envelopes this large go to blob files; 0 = off */

	/* WebSocket transport (loop/sp_ws.h, PROTOCOL.md 13). --ws-listen
	 * HOST:PORT (port 0 = any, logged), "off" = none; parsed here. */
	char ws_listen[SP_CONFIG_HOST_MAX];
	struct sockaddr_storage ws_listen_addr;
	socklen_t ws_listen_addr_len;
	/* Origins (scheme://host[:port], comma-separated) whose pages may
	 * connect; "*" = any; "" = none (clients sending no Origin, i.e. not
	 * browsers, are always let in: Origin protects browsers' users only). */
	char ws_allowed_origins[SP_CONFIG_ORIGINS_MAX];
	uint32_t ws_upgrade_max;        /* bytes of the HTTP upgrade request */
	uint32_t ws_max_message;        /* bytes of one WebSocket message (all its fragments) */
	/* Web Push wake-ups (broker/push/, docs/OPERATIONS.md "Push wake-ups"). */
	char push_vapid_subject[SP_CONFIG_PUSH_SUBJECT_MAX]; /* "" = no pushes */
	uint32_t push_coalesce_ms;      /* at most one wake-up per device this often */
	uint32_t push_ttl_s;            /* TTL header: how long the push service keeps it */
	uint32_t push_urgency;          /* enum sp_config_urgency: the Urgency header */
	uint32_t push_concurrency;      /* requests to push services at once */
	uint32_t push_timeout_ms;       /* one request, connect to answer */
	uint32_t push_retries;          /* retries after 429, 5xx, timeouts */
	uint32_t push_backoff_ms;       /* first retry's delay, doubled for each next */
	uint32_t push_backoff_max_ms;   /* longest delay, Retry-After included */
	uint32_t push_queue_max;        /* wake-ups waiting or in flight */
	uint32_t push_endpoint_max;     /* longest endpoint URL accepted */
	uint32_t push_subscriptions_max; /* subscriptions held (in memory and the store) */
	char push_allowed_hosts[SP_CONFIG_PUSH_HOSTS_MAX]; /* comma-separated; "" = any public */
	uint32_t push_allow_private;    /* tests: private/loopback and plain http to them */
	/* --registration (app/sp_registration.c, docs/PROTOCOL.md 15). */
	uint32_t registration;          /* enum sp_config_registration */
	/* --aesgcm: 1 = a client may negotiate Noise_*_25519_AESGCM_BLAKE2b
	 * where this CPU has AES-NI; 0 = ChaChaPoly only (PROTOCOL.md 2). */
	uint32_t aesgcm;
	/* --cluster (broker/cluster/, docs/CLUSTER.md): comma-separated
	 * nats://HOST:PORT of the NATS cluster this node joins; "" = single
	 * node (the default: nothing of libnats runs). Checked for syntax here. */
	char cluster[SP_CONFIG_CLUSTER_MAX];
	uint32_t cluster_connect_timeout_ms; /* first connect and each JetStream request at start */
	uint32_t cluster_reconnect_wait_ms;  /* between reconnect attempts to one server */
	uint32_t cluster_replicas;           /* JetStream replicas of sealpost's streams */
	uint32_t cluster_ping_interval_ms;   /* NATS PING; two unanswered = disconnected */
	uint32_t cluster_request_timeout_ms; /* a remote send's answer, at most */
	uint32_t cluster_inflight_max;       /* remote sends awaiting an answer, per shard */
	uint32_t cluster_inbox_max;          /* NATS messages waiting for the loop, per shard */
	uint32_t cluster_partitions;         /* mailbox streams SP_MBOX_0.. (device-key hash) */
};

/* --registration: who may get a mailbox. */
enum sp_config_registration {
	SP_REGISTRATION_OPEN = 0,       /* any device key (the default) */
	SP_REGISTRATION_TOKEN = 1,      /* registered devices; first connection needs a token */
};

/* --fsync: what an acceptance (SendResult ACCEPTED) promises; docs/OPERATIONS.md. */
enum sp_config_fsync {
	SP_FSYNC_ALWAYS = 0,            /* fdatasync per loop iteration: survives power loss */
	SP_FSYNC_BATCH = 1,             /* survives kill -9; power loss: last fsync_interval_ms */
	SP_FSYNC_NEVER = 2,             /* survives kill -9; power loss: OS writeback (~30 s) */
};
#define SP_DEFAULT_MAILBOX_MAX_BYTES (64ull * 1024 * 1024)
enum {
	SP_DEFAULT_FSYNC = SP_FSYNC_BATCH,
	SP_DEFAULT_FSYNC_INTERVAL_MS = 100,
	SP_DEFAULT_MAILBOX_MAX_COUNT = 10000,
	SP_DEFAULT_TTL_S = 30 * 24 * 3600,
	SP_DEFAULT_DEDUP_WINDOW_S = 24 * 3600,
	SP_DEFAULT_BACKLOG_CHUNK = 256,
	SP_DEFAULT_ACK_UNKNOWN_MAX = 4096,
	SP_DEFAULT_ACCOUNT_MAX_DEVICES = 32,  /* of the protocol's 64 */
	SP_DEFAULT_FANOUT_MAX_COPIES = 64,    /* the protocol's limit */
	SP_DEFAULT_FANOUT_MAX_BYTES = 4 << 20, /* 64 copies of the largest envelope fit */
	SP_DEFAULT_FANOUT_TIMEOUT_MS = 10000,
	SP_DEFAULT_EXPIRY_SWEEP_BUDGET_MS = 5,
	SP_DEFAULT_EXPIRY_SWEEP_BATCH = 4096,
	SP_DEFAULT_ANON_RECIPIENT_RATE = 50,
	SP_DEFAULT_ANON_RECIPIENT_BURST = 500,
	SP_DEFAULT_ANON_SOURCE_RATE = 100,
	SP_DEFAULT_ANON_SOURCE_BURST = 1000,
	SP_DEFAULT_PREKEY_UPLOAD_MAX = 100,
	SP_DEFAULT_PREKEY_STOCK_MAX = 200,
	SP_DEFAULT_PREKEY_LOW = 20,
	SP_DEFAULT_PREKEY_FETCH_SOURCE_RATE = 10,
	SP_DEFAULT_PREKEY_FETCH_SOURCE_BURST = 100,
	SP_DEFAULT_PREKEY_FETCH_DEVICE_RATE = 10,
	SP_DEFAULT_PREKEY_FETCH_DEVICE_BURST = 100,
	SP_DEFAULT_SENDER_RATE = 10000,
	SP_DEFAULT_SENDER_BURST = 50000,
	SP_DEFAULT_SENDER_TABLE_MAX = 65536,
	SP_DEFAULT_MAILBOX_SENDER_SHARE = 25,
	SP_DEFAULT_MAILBOX_SHARE_TABLE_MAX = 1000000,
	SP_DEFAULT_STORE_RECENT_MAX = 65536,
	SP_DEFAULT_STORE_EXPIRY_WINDOW_MS = 10000,
	SP_DEFAULT_STORE_SCRUB_INTERVAL_S = 3600,
	/* A browser's upgrade request is 400-700 bytes; cookies for the
	 * proxy's host can add more. */
	SP_DEFAULT_WS_UPGRADE_MAX = 8192,
	SP_DEFAULT_WS_MAX_MESSAGE = 1 << 20,
	/* One whole Noise message with its prefix and the preamble must fit
	 * in one WebSocket message (a browser client sends it so). */
	SP_CONFIG_WS_MAX_MESSAGE_MIN = 8 + 2 + 65535,
	SP_DEFAULT_PUSH_COALESCE_MS = 60000,
	SP_DEFAULT_PUSH_TTL_S = 86400,
	SP_DEFAULT_PUSH_CONCURRENCY = 16,
	SP_DEFAULT_PUSH_TIMEOUT_MS = 10000,
	SP_DEFAULT_PUSH_RETRIES = 3,
	SP_DEFAULT_PUSH_BACKOFF_MS = 1000,
	SP_DEFAULT_PUSH_BACKOFF_MAX_MS = 300000,
	SP_DEFAULT_PUSH_QUEUE_MAX = 10000,
	SP_DEFAULT_PUSH_SUBSCRIPTIONS_MAX = 100000,
	SP_DEFAULT_CLUSTER_CONNECT_TIMEOUT_MS = 2000,
	SP_DEFAULT_CLUSTER_RECONNECT_WAIT_MS = 250,
	/* Quorum 2 of 3: any one nats-server may be lost (docs/CLUSTER.md). */
	SP_DEFAULT_CLUSTER_REPLICAS = 3,
	/* A dead or partitioned server is noticed within two of these. */
	SP_DEFAULT_CLUSTER_PING_INTERVAL_MS = 2000,
	SP_DEFAULT_CLUSTER_REQUEST_TIMEOUT_MS = 2000,
	SP_DEFAULT_CLUSTER_INFLIGHT_MAX = 65536,
	SP_DEFAULT_CLUSTER_INBOX_MAX = 65536,
	SP_DEFAULT_CLUSTER_PARTITIONS = 8,
};
#define SP_DEFAULT_STORE_MAX_WAL (64ull * 1024 * 1024)         /* 64 MiB */
#define SP_DEFAULT_STORE_BLOB_MIN_BYTES 0u                      /* off: docs/BENCHMARKS.md */
#define SP_DEFAULT_STORE_MAX_BYTES 0ull
#define SP_DEFAULT_STORE_MIN_FREE (1024ull * 1024 * 1024)      /* 1 GiB */
#define SP_DEFAULT_STORE_BALLAST (64ull * 1024 * 1024)         /* 64 MiB */
#define SP_DEFAULT_SENDER_BYTE_RATE (8ull * 1024 * 1024)       /* 8 MiB/s */
#define SP_DEFAULT_SENDER_BYTE_BURST (64ull * 1024 * 1024)

/* Fills every field with its default. */
void sp_config_defaults(struct sp_config *c);

/*
 * Checks a --cluster list: 1..SP_CONFIG_CLUSTER_URLS_MAX comma-separated
 * nats://HOST:PORT (a name, an IPv4 address or a bracketed IPv6 one; port
 * 1..65535), no spaces. 0 or -EINVAL with the reason in err. s: borrowed.
 */
int sp_config_check_cluster(const char *s, char *err, size_t err_cap);

enum sp_config_result {
	SP_CONFIG_OK = 0,       /* run */
	SP_CONFIG_HELP = 1,     /* --help given: print sp_config_usage, exit 0 */
	SP_CONFIG_VERSION = 2,  /* --version given */
	SP_CONFIG_CHECK = 3,    /* --check-config given: print sp_config_print, exit 0 */
	SP_CONFIG_PRINT_VAPID = 4, /* --print-vapid-key: print the VAPID public key, exit 0 */
};

/*
 * Parses argv[1..argc) into c (which should hold defaults). Options are
 * "--name VALUE" or "--name=VALUE". Returns an sp_config_result, or -EINVAL
 * with a message naming the option in err (err_cap bytes); exit status 2.
 * argv: borrowed for the call (strings are copied).
 */
int sp_config_parse(struct sp_config *c, int argc, char *const argv[], char *err, size_t err_cap);

/*
 * Reads the INI file path into c (over whatever c holds). 0, or -EINVAL /
 * -errno with "FILE:LINE: ..." (or "FILE: ..." if it cannot be read) in err.
 * path: borrowed for the call.
 */
int sp_config_parse_file(struct sp_config *c, const char *path, char *err, size_t err_cap);

/*
 * The whole start-up: defaults, then --config FILE if argv names one, then
 * every flag of argv (flags win). Same results as sp_config_parse.
 */
int sp_config_load(struct sp_config *c, int argc, char *const argv[], char *err, size_t err_cap);

/*
 * Writes the effective configuration, every option with its value (defaults
 * included), as a config file sp_config_parse_file reads back.
 */
void sp_config_print(FILE *f, const struct sp_config *c);

/*
 * Parses "HOST:PORT" ("[v6]:PORT" for IPv6; numeric host only) into addr.
 * 0 or -EINVAL.
 */
int sp_config_parse_listen(const char *s, struct sockaddr_storage *addr, socklen_t *len);

/* Writes the usage text: every option, its meaning and default. */
void sp_config_usage(FILE *f, const char *prog);

/*
 * Reload (`sealpost admin reload`): which options a running daemon takes
 * from a changed config file (sp_config.c lists them and says why the
 * others need a restart), by option name, and the i-th of them (NULL past
 * the end).
 */
bool sp_config_reloadable(const char *name);
const char *sp_config_reloadable_name(size_t i);

struct sp_config_change {
	const char *name;               /* the option's name (static) */
	char old_value[64], new_value[64]; /* as --check-config prints them, truncated */
	bool applied;                   /* reloadable: live holds the new value now */
};

/*
 * Compares fresh (a complete configuration, e.g. from sp_config_load over
 * the daemon's own argv) with live option by option: copies the reloadable
 * options that differ into live, and describes every difference in
 * out[0..cap). Returns the number of differences (may exceed cap). Call it
 * on the thread that reads live (the shard's).
 */
size_t sp_config_reload(struct sp_config *live, const struct sp_config *fresh,
			struct sp_config_change *out, size_t cap);

/* The shards to run: --threads, or one per online core (at least one, at
 * most SP_CONFIG_THREADS_MAX). */
static inline unsigned sp_config_threads(const struct sp_config *c)
{
	long n = c->threads ? (long)c->threads : sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	return n > SP_CONFIG_THREADS_MAX ? SP_CONFIG_THREADS_MAX : (unsigned)n;
}

/* Hard outbound queue limit: a connection above it is a slow consumer. */
static inline uint64_t sp_config_sendq_hard(const struct sp_config *c)
{
	return 2 * c->sendq_max;
}

#endif
