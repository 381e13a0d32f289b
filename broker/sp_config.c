/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_config.c: defaults, the option table, parsing (flags and the INI file),
 * --help and --check-config.
 */
#include "sp_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "sp_hostport.h"
#include "sp_http.h"
#include "sp_limits.h"

/* OPT_CONFIG and the flags after it are command-line only (not config keys). */
enum opt_kind {
	OPT_LISTEN, OPT_METRICS_LISTEN, OPT_PATH, OPT_U32, OPT_U64, OPT_LEVEL, OPT_FSYNC,
	OPT_SOCKET, OPT_SOCKET_MODE, OPT_WS_LISTEN, OPT_ORIGINS, OPT_TEXT, OPT_URGENCY,
	OPT_REGISTRATION, OPT_CLUSTER, OPT_CONFIG,
	OPT_CHECK, OPT_HELP, OPT_VERSION, OPT_PRINT_VAPID,
};

struct opt {
	const char *name;       /* without the leading "--" */
	const char *arg;        /* metavariable in --help, NULL for flags */
	enum opt_kind kind;
	size_t off;             /* field offset in struct sp_config */
	uint64_t min, max;      /* inclusive range for OPT_U32 / OPT_U64 */
	bool pow2;              /* value must be a power of two */
	const char *help;
};

#define FIELD(f) offsetof(struct sp_config, f)

static const struct opt opts[] = {
	{ "listen", "HOST:PORT", OPT_LISTEN, FIELD(listen), 0, 0, false,
	  "address to listen on; IPv6 as [::1]:7400" },
	{ "metrics-listen", "HOST:PORT", OPT_METRICS_LISTEN, FIELD(metrics_listen), 0, 0, false,
	  "HTTP endpoint for /metrics, /healthz, /readyz (numeric address; port 0 = any, "
	  "logged as msg=\"metrics listening\"); off = none" },
	{ "metrics-conn-max", "N", OPT_U32, FIELD(metrics_conn_max), 1, 1024, false,
	  "HTTP connections to the metrics endpoint at once; beyond, new ones wait in the "
	  "listen backlog" },
	{ "metrics-per-address-max", "N", OPT_U32, FIELD(metrics_per_address_max), 1, 1024, false,
	  "HTTP connections to the metrics endpoint at once from one IP address; beyond, "
	  "new ones from it are closed at once" },
	{ "metrics-deadline", "MS", OPT_U32, FIELD(metrics_deadline_ms), 100, 600000, false,
	  "an HTTP connection that has not completed a request this long after it was "
	  "accepted (or after its previous request) is closed, however slowly it sends" },
	{ "data-dir", "DIR", OPT_PATH, FIELD(data_dir), 0, 0, false,
	  "data directory (created 0700; holds server.key, server.pub, the lock)" },
	{ "lock-timeout", "S", OPT_U32, FIELD(lock_timeout_s), 0, 3600, false,
	  "wait up to this many seconds for the data-directory lock held by another "
	  "sealpostd (e.g. one still draining); /readyz says 503 meanwhile; 0 = fail at once" },
	{ "threads", "N", OPT_U32, FIELD(threads), 0, SP_CONFIG_THREADS_MAX, false,
	  "event-loop shards (one thread, ring and connection table each; a device's "
	  "connection runs on its key's home shard); 0 = the number of online cores" },
	{ "max-conns", "N", OPT_U32, FIELD(max_conns), 1, SP_CONFIG_MAX_CONNS_MAX, false,
	  "most connections at once; more are closed right after accept" },
	{ "max-conns-per-source", "N", OPT_U32, FIELD(max_conns_per_source), 0,
	  SP_CONFIG_MAX_CONNS_MAX, false,
	  "most connections at once from one source (an IPv4 address or an IPv6 /64); "
	  "more are closed right after accept; 0 = no limit" },
	{ "max-unauth-per-source", "N", OPT_U32, FIELD(max_unauth_per_source), 0,
	  SP_CONFIG_MAX_CONNS_MAX, false,
	  "most connections at once from one source that have not proven a device key "
	  "yet (preamble, handshake, IK before its first transport message); more are "
	  "closed right after accept; 0 = no limit" },
	{ "max-envelope", "BYTES", OPT_U32, FIELD(max_envelope), 1, SP_BODY_MAX, false,
	  "largest envelope body accepted (protocol maximum 64000)" },
	{ "sendq-max", "BYTES", OPT_U64, FIELD(sendq_max), 65536, (uint64_t)1 << 32, false,
	  "per-connection outbound queue: above it envelopes for that device get "
	  "err_recipient_busy; above twice it the connection is closed as a slow consumer" },
	{ "mem-budget", "BYTES", OPT_U64, FIELD(mem_budget), (uint64_t)1 << 20, (uint64_t)1 << 44,
	  false,
	  "memory for partial messages (reassembly) and outbound queues over all connections; "
	  "beyond it the connection holding the most is closed (reason mem_budget)" },
	{ "handshake-timeout", "MS", OPT_U32, FIELD(handshake_timeout_ms), 100, 600000, false,
	  "a connection must finish its handshake within this many milliseconds of its "
	  "first handshake message" },
	{ "hello-timeout", "MS", OPT_U32, FIELD(hello_timeout_ms), 100, 600000, false,
	  "a connection must send the preamble and its first handshake message within this "
	  "many milliseconds of accept; a silent socket is closed (reason hello_timeout)" },
	{ "idle-timeout", "S", OPT_U32, FIELD(idle_timeout_s), 0, 86400 * 7, false,
	  "close a connection that sent nothing for this many seconds (GoAway idle); 0 = off" },
	{ "handshake-rate", "N", OPT_U32, FIELD(handshake_rate), 0, 10000000, false,
	  "handshakes started per second in all (token bucket, burst the same, charged at a "
	  "connection's first handshake message, before its crypto); excess connections "
	  "are closed and counted (reason handshake_rate); 0 = no limit" },
	{ "handshake-rate-per-source", "N", OPT_U32, FIELD(handshake_rate_per_source), 0,
	  10000000, false,
	  "handshakes started per second from one source (an IPv4 address or an IPv6 /64; "
	  "charged like handshake-rate); excess connections are closed and counted "
	  "(reason handshake_rate_source); 0 = no limit" },
	{ "handshake-burst-per-source", "N", OPT_U32, FIELD(handshake_burst_per_source), 1,
	  10000000, false,
	  "handshakes one source may start at once before handshake-rate-per-source applies" },
	{ "recv-buffers", "N", OPT_U32, FIELD(recv_buffers), 1, SP_CONFIG_RECV_BUFFERS_MAX, true,
	  "receive buffers in the provided-buffer ring (a power of two)" },
	{ "recv-buffer-size", "BYTES", OPT_U32, FIELD(recv_buffer_size), 64, 1 << 20, false,
	  "bytes per receive buffer" },
	{ "close-grace", "MS", OPT_U32, FIELD(close_grace_ms), 0, 60000, false,
	  "after a GoAway (shutdown, takeover, slow consumer, idle), how long queued output "
	  "may take to drain before the connection is cut" },
	{ "log-rate", "N", OPT_U32, FIELD(log_rate), 1, 1000000, false,
	  "log lines per second per kind of peer-triggered event "
	  "(excess counted as suppressed=N)" },
	{ "log-level", "LEVEL", OPT_LEVEL, FIELD(log_level), 0, 0, false,
	  "error, warn, info or debug (peer addresses appear at debug only)" },
	{ "fsync", "MODE", OPT_FSYNC, FIELD(fsync), 0, 0, false,
	  "when an accepted envelope is on disk: always = fsync before ACCEPTED (survives "
	  "power loss); batch = survives kill -9 at once, power loss after --fsync-interval; "
	  "never = survives kill -9, power loss after the OS writes back" },
	{ "fsync-interval", "MS", OPT_U32, FIELD(fsync_interval_ms), 1, 60000, false,
	  "--fsync batch: longest an accepted envelope waits for its fsync" },
	{ "mailbox-max-count", "N", OPT_U64, FIELD(mailbox_max_count), 1, (uint64_t)1 << 32, false,
	  "envelopes a device's mailbox holds; beyond, sends get err_mailbox_full" },
	{ "mailbox-max-bytes", "BYTES", OPT_U64, FIELD(mailbox_max_bytes), 65536,
	  (uint64_t)1 << 40, false,
	  "envelope body bytes a device's mailbox holds; beyond, sends get err_mailbox_full" },
	{ "ttl", "SECONDS", OPT_U64, FIELD(ttl_s), 1, 10ull * 366 * 86400, false,
	  "a stored envelope not acknowledged within this time is deleted, never delivered" },
	{ "dedup-window", "SECONDS", OPT_U64, FIELD(dedup_window_s), 1, 366ull * 86400, false,
	  "a Send repeating (sender, recipient, client_id != 0) within this time is answered "
	  "with the first one's seq and not stored again" },
	{ "backlog-chunk", "N", OPT_U32, FIELD(backlog_chunk), 1, 4096, false,
	  "stored envelopes read per backlog step of a connecting device" },
	{ "ack-unknown-max", "N", OPT_U32, FIELD(ack_unknown_max), 1, 1u << 30, false,
	  "acks for nothing (unknown seqs, or more than the device's mailbox could hold) a "
	  "connection may send; beyond, GoAway protocol (reason ack_flood)" },
	{ "registration", "MODE", OPT_REGISTRATION, FIELD(registration), 0, 0, false,
	  "open = any device key that completes a handshake gets a mailbox; token = a device's "
	  "first connection must carry a one-use token from `sealpostd mint-token` (unregistered "
	  "devices get GoAway enrol_required)" },
	{ "aesgcm", "0|1", OPT_U32, FIELD(aesgcm), 0, 1, false,
	  "1 = a client may propose the AES-256-GCM transport cipher "
	  "(Noise_*_25519_AESGCM_BLAKE2b), taken only where this CPU has AES-NI and PCLMUL; "
	  "0 = ChaChaPoly only; a refused proposal gets the refusal preamble (reason "
	  "cipher_refused) and the client library falls back to ChaChaPoly" },
	{ "account-max-devices", "N", OPT_U32, FIELD(account_max_devices), 1, SP_DEVLIST_DEVICES_MAX,
	  false, "devices on one account's signed list (at most 64); a longer list is refused "
	  "(err_list_too_large)" },
	{ "fanout-max-copies", "N", OPT_U32, FIELD(fanout_max_copies), 1, SP_FANOUT_COPIES_MAX,
	  false, "copies in one fan-out group (at most 64); a larger group is refused "
	  "(err_fanout_too_large)" },
	{ "fanout-max-bytes", "BYTES", OPT_U64, FIELD(fanout_max_bytes), SP_BODY_MAX,
	  (uint64_t)1 << 32, false, "envelope bytes one connection's open fan-out group may "
	  "hold in memory; beyond, the group is refused (err_fanout_too_large)" },
	{ "fanout-timeout", "MS", OPT_U32, FIELD(fanout_timeout_ms), 100, 600000, false,
	  "a fan-out group's last copy must arrive within this many milliseconds of its "
	  "FanoutBegin; else the group is refused (err_fanout_incomplete)" },
	{ "admin-socket", "PATH", OPT_SOCKET, FIELD(admin_socket), 0, 0, false,
	  "Unix socket of `sealpost admin` (mode 0600: its permissions are the "
	  "authentication); empty = DATA_DIR/admin.sock; off = none" },
	{ "admin-socket-mode", "MODE", OPT_SOCKET_MODE, FIELD(admin_socket_mode), 0, 0, false,
	  "0600 = the daemon's user only; 0660 = its group too (put the socket where the "
	  "group can reach it: the data directory is 0700)" },
	{ "admin-max-conns", "N", OPT_U32, FIELD(admin_max_conns), 1, 64, false,
	  "admin connections served at once; more are refused with an error" },
	{ "admin-request-max", "BYTES", OPT_U32, FIELD(admin_request_max), 64, 65536, false,
	  "longest admin request line; a longer one is answered with an error" },
	{ "admin-timeout", "MS", OPT_U32, FIELD(admin_timeout_ms), 100, 600000, false,
	  "an admin request must arrive and be answered within this many milliseconds" },
	{ "expiry-sweep-budget", "MS", OPT_U32, FIELD(expiry_sweep_budget_ms), 1, 1000, false,
	  "event-loop time one step of the expiry sweep (one per 100 ms tick) may take; "
	  "a step that runs out resumes where it stopped at the next tick" },
	{ "expiry-sweep-batch", "N", OPT_U32, FIELD(expiry_sweep_batch), 1, 1000000, false,
	  "expiry index entries one sweep step looks at, at most (an index record of a "
	  "window of envelopes counts its envelopes: a step may look at 63 more)" },
	{ "store-max-bytes", "BYTES", OPT_U64, FIELD(store_max_bytes), 0, (uint64_t)1 << 50, false,
	  "envelope body bytes all mailboxes together hold; beyond, durable sends get "
	  "err_mailbox_full; 0 = no such bound (store-min-free still holds)" },
	{ "store-min-free", "BYTES", OPT_U64, FIELD(store_min_free), 0, (uint64_t)1 << 50, false,
	  "free space kept back on the data directory's file system: below it durable sends get "
	  "err_mailbox_full, while acks, expiry and restarts go on; 0 = off" },
	{ "store-ballast", "BYTES", OPT_U64, FIELD(store_ballast), 0, (uint64_t)1 << 40, false,
	  "size of DATA_DIR/mailbox/ballast, a file a start deletes when it finds the disk "
	  "full, so the store can open; 0 = none" },
	{ "sender-rate", "N", OPT_U64, FIELD(sender_rate), 0, (uint64_t)1 << 32, false,
	  "durable envelopes per second one sending device may store (token bucket); beyond, "
	  "err_rate_limited; 0 = no limit" },
	{ "sender-burst", "N", OPT_U64, FIELD(sender_burst), 1, (uint64_t)1 << 32, false,
	  "envelopes a sending device may store at once before sender-rate applies" },
	{ "sender-byte-rate", "BYTES", OPT_U64, FIELD(sender_byte_rate), 0, (uint64_t)1 << 40,
	  false, "durable envelope body bytes per second one sending device may store; beyond, "
	  "err_rate_limited; 0 = no limit" },
	{ "sender-byte-burst", "BYTES", OPT_U64, FIELD(sender_byte_burst), SP_BODY_MAX,
	  (uint64_t)1 << 40, false,
	  "body bytes a sending device may store at once before sender-byte-rate applies" },
	{ "sender-table-max", "N", OPT_U32, FIELD(sender_table_max), 1, 1 << 24, false,
	  "sending devices whose budgets are tracked per shard; senders beyond it share one "
	  "budget" },
	{ "anon-recipient-rate", "N", OPT_U64, FIELD(anon_recipient_rate), 0, (uint64_t)1 << 32,
	  false, "anonymous (sealed-sender) envelopes per second one recipient may receive "
	  "(token bucket); beyond, err_anon_rate_limited; 0 = no limit" },
	{ "anon-recipient-burst", "N", OPT_U64, FIELD(anon_recipient_burst), 1, (uint64_t)1 << 32,
	  false, "anonymous envelopes one recipient may receive at once before "
	  "anon-recipient-rate applies" },
	{ "anon-source-rate", "N", OPT_U64, FIELD(anon_source_rate), 0, (uint64_t)1 << 32, false,
	  "anonymous envelopes per second from one source address (IPv4 /32, IPv6 /64); beyond, "
	  "err_anon_rate_limited; 0 = no limit" },
	{ "anon-source-burst", "N", OPT_U64, FIELD(anon_source_burst), 1, (uint64_t)1 << 32, false,
	  "anonymous envelopes one source may send at once before anon-source-rate applies" },
	{ "prekey-upload-max", "N", OPT_U32, FIELD(prekey_upload_max), 1, SP_PREKEY_UPLOAD_MAX, false,
	  "one-time prekeys one PrekeyUpload may carry; beyond, err_prekey_too_many" },
	{ "prekey-stock-max", "N", OPT_U32, FIELD(prekey_stock_max), 1, SP_PREKEY_STOCK_MAX, false,
	  "one-time prekeys kept per device; an upload past it gets err_prekey_too_many" },
	{ "prekey-low", "N", OPT_U32, FIELD(prekey_low), 0, SP_PREKEY_STOCK_MAX, false,
	  "tell a device (PrekeyLow) when fewer one-time prekeys than this are left; 0 = never" },
	{ "prekey-fetch-source-rate", "N", OPT_U64, FIELD(prekey_fetch_source_rate), 0,
	  (uint64_t)1 << 32, false, "prekey bundle fetches per second from one source (a device, "
	  "or an anonymous connection's address); beyond, err_prekey_rate_limited; 0 = no limit" },
	{ "prekey-fetch-source-burst", "N", OPT_U64, FIELD(prekey_fetch_source_burst), 1,
	  (uint64_t)1 << 32, false, "fetches one source may make at once before "
	  "prekey-fetch-source-rate applies" },
	{ "prekey-fetch-device-rate", "N", OPT_U64, FIELD(prekey_fetch_device_rate), 0,
	  (uint64_t)1 << 32, false, "fetches per second of one device's bundle (bounds how fast "
	  "its one-time prekeys can be drained); 0 = no limit" },
	{ "prekey-fetch-device-burst", "N", OPT_U64, FIELD(prekey_fetch_device_burst), 1,
	  (uint64_t)1 << 32, false, "fetches of one device's bundle at once before "
	  "prekey-fetch-device-rate applies" },
	/* Hidden from --help (the "test-" prefix): a broker with it set speaks
	 * protocol 1 only to peers set the same way. */
	{ "test-rekey-messages", "N", OPT_U64, FIELD(test_rekey_messages), 0, SP_REKEY_MESSAGES,
	  false, "tests only: transport messages per key before a rekey; 0 = the protocol's" },
	{ "mailbox-sender-share", "PERCENT", OPT_U32, FIELD(mailbox_sender_share), 1, 100, false,
	  "share of a device's mailbox quotas (count and bytes) one sending device may hold; "
	  "beyond, its sends get err_mailbox_full while other senders' go on; 100 = off" },
	{ "mailbox-share-table-max", "N", OPT_U32, FIELD(mailbox_share_table_max), 1, 1 << 28, false,
	  "(sender, mailbox) pairs whose shares are counted; envelopes of pairs beyond it are "
	  "not held to a share" },
	{ "store-recent-max", "N", OPT_U32, FIELD(store_recent_max), 0, 1 << 24, false,
	  "stored envelopes whose headers the broker remembers until they are acked, so that "
	  "their acks need no store read (about 80 bytes each); 0 = off" },
	{ "store-expiry-window", "MS", OPT_U32, FIELD(store_expiry_window_ms), 0, 3600 * 1000, false,
	  "remembered envelopes acked within this time of being stored leave nothing in the "
	  "expiry index (the envelopes of a commit share one index record); later ones get a "
	  "record of their own then; 0 = a record per envelope" },
	{ "store-max-wal", "BYTES", OPT_U64, FIELD(store_max_wal), (uint64_t)1 << 20,
	  (uint64_t)1 << 40, false,
	  "write-ahead log the mailbox store keeps before it writes its memtables out "
	  "(bounds the log's disk use and how long it holds acknowledged envelopes)" },
	{ "store-scrub-interval", "S", OPT_U32, FIELD(store_scrub_interval_s), 0, 86400 * 7, false,
	  "acknowledged or expired envelopes leave every file of the data directory within this "
	  "many seconds plus one scrub (a flush and full compaction, on a thread of its own); "
	  "0 = no scrubs" },
	{ "store-blob-min-bytes", "BYTES", OPT_U32, FIELD(store_blob_min_bytes), 0, 1u << 24, false,
	  "stored envelopes (body plus a header of about 60 bytes) at least this large go to "
	  "RocksDB blob files apart from the table files, so compactions do not rewrite them; "
	  "0 = off" },
	{ "ws-listen", "HOST:PORT", OPT_WS_LISTEN, FIELD(ws_listen), 0, 0, false,
	  "WebSocket listener (RFC 6455, path /v1, subprotocol sealpost.v1; plain ws: put a "
	  "TLS proxy in front) on the same loop and limits as --listen; port 0 = any, logged "
	  "as msg=\"ws listening\"; off = none" },
	{ "ws-allowed-origins", "LIST", OPT_ORIGINS, FIELD(ws_allowed_origins), 0, 0, false,
	  "comma-separated origins (https://app.example) whose web pages may connect over "
	  "WebSocket; * = any; empty = none; requests without Origin (not browsers) are "
	  "always accepted" },
	{ "ws-upgrade-max", "BYTES", OPT_U32, FIELD(ws_upgrade_max), 256, 65536, false,
	  "longest WebSocket upgrade request (request line and headers); longer: HTTP 431 "
	  "and close; the whole upgrade must also finish within --hello-timeout" },
	{ "ws-max-message", "BYTES", OPT_U32, FIELD(ws_max_message), SP_CONFIG_WS_MAX_MESSAGE_MIN,
	  1u << 30, false,
	  "largest WebSocket message (all its fragments together); larger: close 1009" },
	{ "push-vapid-subject", "URI", OPT_TEXT, FIELD(push_vapid_subject), 0,
	  SP_CONFIG_PUSH_SUBJECT_MAX - 1, false,
	  "Web Push: the contact (mailto: or https: URI) in every VAPID token, RFC 8292; "
	  "empty = no push wake-ups (registrations get err_push_disabled)" },
	{ "push-coalesce", "MS", OPT_U32, FIELD(push_coalesce_ms), 100, 86400000, false,
	  "at most one wake-up per device this often, until it connects" },
	{ "push-ttl", "S", OPT_U32, FIELD(push_ttl_s), 0, 2419200, false,
	  "TTL header: how long a push service keeps an undelivered wake-up" },
	{ "push-urgency", "LEVEL", OPT_URGENCY, FIELD(push_urgency), 0, 0, false,
	  "Urgency header of wake-ups: very-low, low, normal or high" },
	{ "push-concurrency", "N", OPT_U32, FIELD(push_concurrency), 1, 1024, false,
	  "requests to push services at once; more wait in the queue" },
	{ "push-timeout", "MS", OPT_U32, FIELD(push_timeout_ms), 100, 120000, false,
	  "one request to a push service, connect to answer; beyond, retried as a failure" },
	{ "push-retries", "N", OPT_U32, FIELD(push_retries), 0, 20, false,
	  "retries of a wake-up after 429, 5xx, a timeout or a connection failure" },
	{ "push-backoff", "MS", OPT_U32, FIELD(push_backoff_ms), 10, 600000, false,
	  "delay before the first retry, doubled for each next (Retry-After wins if longer)" },
	{ "push-backoff-max", "MS", OPT_U32, FIELD(push_backoff_max_ms), 10, 86400000, false,
	  "longest delay before a retry, Retry-After included" },
	{ "push-queue-max", "N", OPT_U32, FIELD(push_queue_max), 1, 1000000, false,
	  "wake-ups queued or in flight; beyond, new ones are dropped and counted" },
	{ "push-endpoint-max", "BYTES", OPT_U32, FIELD(push_endpoint_max), 16,
	  SP_PUSH_ENDPOINT_WIRE_MAX, false,
	  "longest push endpoint URL a device may register (err_push_too_large)" },
	{ "push-subscriptions-max", "N", OPT_U32, FIELD(push_subscriptions_max), 1, 10000000, false,
	  "push subscriptions held (memory and store); beyond, err_push_full" },
	{ "push-allowed-hosts", "LIST", OPT_TEXT, FIELD(push_allowed_hosts), 0,
	  SP_CONFIG_PUSH_HOSTS_MAX - 1, false,
	  "comma-separated endpoint hosts allowed (a leading dot: that domain and below); "
	  "empty = any public host (err_push_host_not_allowed)" },
	{ "push-allow-private", "0|1", OPT_U32, FIELD(push_allow_private), 0, 1, false,
	  "tests only: allow endpoints on private and loopback addresses, and plain http "
	  "to a literal such address; 0 = refused at registration and at connect" },
	{ "cluster", "URLS", OPT_CLUSTER, FIELD(cluster), 0, 0, false,
	  "join a sealpost cluster backed by this NATS cluster (JetStream on): comma-separated "
	  "nats://HOST:PORT; every node needs the same server.key; empty = single node" },
	{ "cluster-connect-timeout", "MS", OPT_U32, FIELD(cluster_connect_timeout_ms), 100, 60000,
	  false,
	  "cluster: the first connection to NATS and each JetStream request at start must "
	  "answer within this; beyond, sealpostd exits" },
	{ "cluster-reconnect-wait", "MS", OPT_U32, FIELD(cluster_reconnect_wait_ms), 10, 60000,
	  false,
	  "cluster: delay between attempts to reconnect to the same NATS server (forever; "
	  "/readyz is 503 while disconnected)" },
	{ "cluster-replicas", "N", OPT_U32, FIELD(cluster_replicas), 1, 5, false,
	  "cluster: JetStream replicas of sealpost's streams and buckets (3 survives the loss "
	  "of any one nats-server; 1 only for a single test server)" },
	{ "cluster-ping-interval", "MS", OPT_U32, FIELD(cluster_ping_interval_ms), 100, 600000,
	  false,
	  "cluster: PING the NATS server this often; two unanswered PINGs count as a lost "
	  "connection (readiness off, reconnect)" },
	{ "cluster-request-timeout", "MS", OPT_U32, FIELD(cluster_request_timeout_ms), 10, 60000,
	  false,
	  "cluster: an online-only send to a device on another node gets its answer within "
	  "this, else err_cluster_unavailable (81)" },
	{ "cluster-inflight-max", "N", OPT_U32, FIELD(cluster_inflight_max), 1, 1u << 24, false,
	  "cluster: online-only sends to other nodes awaiting their answer; beyond, "
	  "err_cluster_unavailable (81)" },
	{ "cluster-inbox-max", "N", OPT_U32, FIELD(cluster_inbox_max), 1, 1u << 24, false,
	  "cluster: messages from NATS waiting for the event loop; beyond, dropped and "
	  "counted (their senders time out)" },
	{ "cluster-partitions", "N", OPT_U32, FIELD(cluster_partitions), 1, 256, false,
	  "cluster: JetStream streams the mailboxes are spread over by a hash of the device key "
	  "(SP_MBOX_0..N-1); every node of a cluster needs the same value" },
	{ "config", "FILE", OPT_CONFIG, FIELD(config_path), 0, 0, false,
	  "read options from an INI file (keys = these option names); flags win" },
	{ "check-config", NULL, OPT_CHECK, 0, 0, 0, false,
	  "validate the configuration, print it (every option) and exit" },
	{ "help", NULL, OPT_HELP, 0, 0, 0, false, "print this help and exit" },
	{ "version", NULL, OPT_VERSION, 0, 0, 0, false, "print the version and exit" },
	{ "print-vapid-key", NULL, OPT_PRINT_VAPID, 0, 0, 0, false,
	  "print the Web Push VAPID public key (base64url; made in the data directory if "
	  "missing) and exit" },
};

static const char *const urgency_names[] = { "very-low", "low", "normal", "high" };
static const char *const registration_names[] = { "open", "token" };

const char *sp_config_urgency_name(uint32_t u)
{
	return urgency_names[u & 3];
}

void sp_config_defaults(struct sp_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->listen, sizeof(c->listen), "%s", SP_DEFAULT_LISTEN);
	sp_config_parse_listen(c->listen, &c->listen_addr, &c->listen_addr_len);
	snprintf(c->data_dir, sizeof(c->data_dir), "%s", SP_DEFAULT_DATA_DIR);
	snprintf(c->metrics_listen, sizeof(c->metrics_listen), "%s", SP_DEFAULT_METRICS_LISTEN);
	c->lock_timeout_s = SP_DEFAULT_LOCK_TIMEOUT_S;
	c->threads = SP_DEFAULT_THREADS;
	c->max_conns = SP_DEFAULT_MAX_CONNS;
	c->max_conns_per_source = SP_DEFAULT_MAX_CONNS_PER_SOURCE;
	c->max_unauth_per_source = SP_DEFAULT_MAX_UNAUTH_PER_SOURCE;
	c->max_envelope = SP_BODY_MAX;
	c->sendq_max = SP_DEFAULT_SENDQ_MAX;
	c->mem_budget = SP_DEFAULT_MEM_BUDGET;
	c->handshake_timeout_ms = SP_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	c->hello_timeout_ms = SP_DEFAULT_HELLO_TIMEOUT_MS;
	c->idle_timeout_s = SP_DEFAULT_IDLE_TIMEOUT_S;
	c->aesgcm = 1;
	c->handshake_rate = SP_DEFAULT_HANDSHAKE_RATE;
	c->handshake_rate_per_source = SP_DEFAULT_HANDSHAKE_RATE_PER_SOURCE;
	c->handshake_burst_per_source = SP_DEFAULT_HANDSHAKE_BURST_PER_SOURCE;
	c->recv_buffers = SP_DEFAULT_RECV_BUFFERS;
	c->recv_buffer_size = SP_DEFAULT_RECV_BUFFER_SIZE;
	c->close_grace_ms = SP_DEFAULT_CLOSE_GRACE_MS;
	c->log_rate = SP_DEFAULT_LOG_RATE;
	c->log_level = SP_LOG_INFO;
	c->fsync = SP_DEFAULT_FSYNC;
	c->fsync_interval_ms = SP_DEFAULT_FSYNC_INTERVAL_MS;
	c->mailbox_max_count = SP_DEFAULT_MAILBOX_MAX_COUNT;
	c->mailbox_max_bytes = SP_DEFAULT_MAILBOX_MAX_BYTES;
	c->ttl_s = SP_DEFAULT_TTL_S;
	c->dedup_window_s = SP_DEFAULT_DEDUP_WINDOW_S;
	c->backlog_chunk = SP_DEFAULT_BACKLOG_CHUNK;
	c->ack_unknown_max = SP_DEFAULT_ACK_UNKNOWN_MAX;
	c->account_max_devices = SP_DEFAULT_ACCOUNT_MAX_DEVICES;
	c->fanout_max_copies = SP_DEFAULT_FANOUT_MAX_COPIES;
	c->fanout_max_bytes = SP_DEFAULT_FANOUT_MAX_BYTES;
	c->fanout_timeout_ms = SP_DEFAULT_FANOUT_TIMEOUT_MS;
	c->metrics_conn_max = SP_HTTP_CONN_MAX;
	c->metrics_per_address_max = SP_HTTP_PER_ADDRESS_MAX;
	c->metrics_deadline_ms = SP_HTTP_DEADLINE_MS;
	c->admin_socket_mode = 0600;
	c->admin_max_conns = SP_DEFAULT_ADMIN_MAX_CONNS;
	c->admin_request_max = SP_DEFAULT_ADMIN_REQUEST_MAX;
	c->admin_timeout_ms = SP_DEFAULT_ADMIN_TIMEOUT_MS;
	c->expiry_sweep_budget_ms = SP_DEFAULT_EXPIRY_SWEEP_BUDGET_MS;
	c->expiry_sweep_batch = SP_DEFAULT_EXPIRY_SWEEP_BATCH;
	c->store_max_bytes = SP_DEFAULT_STORE_MAX_BYTES;
	c->store_min_free = SP_DEFAULT_STORE_MIN_FREE;
	c->store_ballast = SP_DEFAULT_STORE_BALLAST;
	c->sender_rate = SP_DEFAULT_SENDER_RATE;
	c->sender_burst = SP_DEFAULT_SENDER_BURST;
	c->sender_byte_rate = SP_DEFAULT_SENDER_BYTE_RATE;
	c->sender_byte_burst = SP_DEFAULT_SENDER_BYTE_BURST;
	c->sender_table_max = SP_DEFAULT_SENDER_TABLE_MAX;
	c->anon_recipient_rate = SP_DEFAULT_ANON_RECIPIENT_RATE;
	c->anon_recipient_burst = SP_DEFAULT_ANON_RECIPIENT_BURST;
	c->anon_source_rate = SP_DEFAULT_ANON_SOURCE_RATE;
	c->anon_source_burst = SP_DEFAULT_ANON_SOURCE_BURST;
	c->prekey_upload_max = SP_DEFAULT_PREKEY_UPLOAD_MAX;
	c->prekey_stock_max = SP_DEFAULT_PREKEY_STOCK_MAX;
	c->prekey_low = SP_DEFAULT_PREKEY_LOW;
	c->prekey_fetch_source_rate = SP_DEFAULT_PREKEY_FETCH_SOURCE_RATE;
	c->prekey_fetch_source_burst = SP_DEFAULT_PREKEY_FETCH_SOURCE_BURST;
	c->prekey_fetch_device_rate = SP_DEFAULT_PREKEY_FETCH_DEVICE_RATE;
	c->prekey_fetch_device_burst = SP_DEFAULT_PREKEY_FETCH_DEVICE_BURST;
	c->mailbox_sender_share = SP_DEFAULT_MAILBOX_SENDER_SHARE;
	c->mailbox_share_table_max = SP_DEFAULT_MAILBOX_SHARE_TABLE_MAX;
	c->store_recent_max = SP_DEFAULT_STORE_RECENT_MAX;
	c->store_expiry_window_ms = SP_DEFAULT_STORE_EXPIRY_WINDOW_MS;
	c->store_max_wal = SP_DEFAULT_STORE_MAX_WAL;
	c->store_scrub_interval_s = SP_DEFAULT_STORE_SCRUB_INTERVAL_S;
	c->store_blob_min_bytes = SP_DEFAULT_STORE_BLOB_MIN_BYTES;
	snprintf(c->ws_listen, sizeof(c->ws_listen), "%s", SP_DEFAULT_WS_LISTEN);
	c->ws_upgrade_max = SP_DEFAULT_WS_UPGRADE_MAX;
	c->ws_max_message = SP_DEFAULT_WS_MAX_MESSAGE;
	c->push_coalesce_ms = SP_DEFAULT_PUSH_COALESCE_MS;
	c->push_ttl_s = SP_DEFAULT_PUSH_TTL_S;
	c->push_urgency = SP_URGENCY_NORMAL;
	c->push_concurrency = SP_DEFAULT_PUSH_CONCURRENCY;
	c->push_timeout_ms = SP_DEFAULT_PUSH_TIMEOUT_MS;
	c->push_retries = SP_DEFAULT_PUSH_RETRIES;
	c->push_backoff_ms = SP_DEFAULT_PUSH_BACKOFF_MS;
	c->push_backoff_max_ms = SP_DEFAULT_PUSH_BACKOFF_MAX_MS;
	c->push_queue_max = SP_DEFAULT_PUSH_QUEUE_MAX;
	c->push_endpoint_max = SP_PUSH_ENDPOINT_WIRE_MAX;
	c->push_subscriptions_max = SP_DEFAULT_PUSH_SUBSCRIPTIONS_MAX;
	c->cluster_connect_timeout_ms = SP_DEFAULT_CLUSTER_CONNECT_TIMEOUT_MS;
	c->cluster_reconnect_wait_ms = SP_DEFAULT_CLUSTER_RECONNECT_WAIT_MS;
	c->cluster_replicas = SP_DEFAULT_CLUSTER_REPLICAS;
	c->cluster_ping_interval_ms = SP_DEFAULT_CLUSTER_PING_INTERVAL_MS;
	c->cluster_request_timeout_ms = SP_DEFAULT_CLUSTER_REQUEST_TIMEOUT_MS;
	c->cluster_inflight_max = SP_DEFAULT_CLUSTER_INFLIGHT_MAX;
	c->cluster_inbox_max = SP_DEFAULT_CLUSTER_INBOX_MAX;
	c->cluster_partitions = SP_DEFAULT_CLUSTER_PARTITIONS;
}

/* One nats://HOST:PORT of a --cluster list, len bytes at s. */
static int check_nats_url(const char *s, size_t len, char *err, size_t err_cap)
{
	static const char scheme[] = "nats://";
	char hp[SP_HOSTPORT_HOST_MAX + 8];
	struct sp_hostport out;

	if (len < sizeof(scheme) || memcmp(s, scheme, sizeof(scheme) - 1) != 0) {
		snprintf(err, err_cap, "'%.*s' is not nats://HOST:PORT", (int)len, s);
		return -EINVAL;
	}
	len -= sizeof(scheme) - 1;
	if (len >= sizeof(hp)) {
		snprintf(err, err_cap, "a server address is too long");
		return -EINVAL;
	}
	memcpy(hp, s + sizeof(scheme) - 1, len);
	hp[len] = '\0';
	if (sp_hostport_split(hp, &out) < 0 || out.port == 0 || !out.host[0] ||
	    strpbrk(out.host, "/@?#")) {
		snprintf(err, err_cap, "'nats://%s' is not nats://HOST:PORT (port 1..65535, no "
			 "user or path)", hp);
		return -EINVAL;
	}
	return 0;
}

int sp_config_check_cluster(const char *s, char *err, size_t err_cap)
{
	unsigned n = 0;

	for (const char *q = s; *q; q++) {
		if (*q <= 0x20 || *q >= 0x7f || *q == ';') {
			snprintf(err, err_cap, "NATS URLs are printable ASCII without spaces or ';', "
				 "separated by commas");
			return -EINVAL;
		}
	}
	for (;;) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		int ret;

		if (++n > SP_CONFIG_CLUSTER_URLS_MAX) {
			snprintf(err, err_cap, "more than %d NATS servers", SP_CONFIG_CLUSTER_URLS_MAX);
			return -EINVAL;
		}
		ret = check_nats_url(s, len, err, err_cap);
		if (ret)
			return ret;
		if (!comma)
			return 0;
		s = comma + 1;
	}
}

static const char *const fsync_names[] = { "always", "batch", "never" };

int sp_config_parse_listen(const char *s, struct sockaddr_storage *addr, socklen_t *len)
{
	struct sp_hostport hp;

	memset(addr, 0, sizeof(*addr));
	/* Port 0 ("any") is no use for a listener devices must find. */
	if (sp_hostport_split(s, &hp) < 0 || hp.port == 0)
		return -EINVAL;
	return sp_hostport_sockaddr(&hp, addr, len);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')       /* strtoull accepts "-1" and spaces */
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

/*
 * The setters below name the option with `who` in every message: "--name"
 * for a flag, "FILE:LINE: name" for a config-file key.
 */
static int set_number(struct sp_config *c, const struct opt *o, const char *val, const char *who,
		      char *err, size_t err_cap)
{
	uint64_t v;

	if (parse_u64(val, &v)) {
		snprintf(err, err_cap, "%s: '%s' is not a number", who, val);
		return -EINVAL;
	}
	if (v < o->min || v > o->max) {
		snprintf(err, err_cap,
			 "%s: %" PRIu64 " is out of range [%" PRIu64 ", %" PRIu64 "]", who,
			 v, o->min, o->max);
		return -EINVAL;
	}
	if (o->pow2 && (v & (v - 1))) {
		snprintf(err, err_cap, "%s: %" PRIu64 " is not a power of two", who, v);
		return -EINVAL;
	}
	if (o->kind == OPT_U32)
		*(uint32_t *)((char *)c + o->off) = (uint32_t)v;
	else
		*(uint64_t *)((char *)c + o->off) = v;
	return 0;
}

/*
 * A path must survive being printed as "name = VALUE" on one line of a
 * config file (--check-config, the start log) and read back: no control
 * characters (a newline would start a line of its own), no space at either
 * end (the INI reader trims them), no " ;" and no ';' first (after "= " it
 * starts an inline comment).
 */
static bool path_printable(const char *v)
{
	size_t n = strlen(v);

	if (n && (v[0] == ' ' || v[0] == ';' || v[n - 1] == ' '))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];

		if (ch < 0x20 || ch == 0x7f || (ch == ';' && i && v[i - 1] == ' '))
			return false;
	}
	return true;
}

static int set_value(struct sp_config *c, const struct opt *o, const char *val, const char *who,
		     char *err, size_t err_cap)
{
	struct sockaddr_storage ss;
	socklen_t len;

	switch (o->kind) {
	case OPT_LISTEN:
		if (strlen(val) >= sizeof(c->listen) ||
		    sp_config_parse_listen(val, &c->listen_addr, &c->listen_addr_len)) {
			snprintf(err, err_cap,
				 "%s: '%s' is not HOST:PORT with a numeric address "
				 "(IPv6: [::1]:7400)", who, val);
			return -EINVAL;
		}
		snprintf(c->listen, sizeof(c->listen), "%s", val);
		return 0;
	case OPT_METRICS_LISTEN:
		if (strlen(val) >= sizeof(c->metrics_listen) ||
		    (strcmp(val, "off") != 0 && sp_hostport_parse(val, &ss, &len))) {
			snprintf(err, err_cap,
				 "%s: '%s' is not HOST:PORT with a numeric address "
				 "(IPv6: [::1]:9400) or off", who, val);
			return -EINVAL;
		}
		snprintf(c->metrics_listen, sizeof(c->metrics_listen), "%s", val);
		return 0;
	case OPT_WS_LISTEN:
		if (strlen(val) >= sizeof(c->ws_listen) ||
		    (strcmp(val, "off") != 0 &&
		     sp_hostport_parse(val, &c->ws_listen_addr, &c->ws_listen_addr_len))) {
			snprintf(err, err_cap,
				 "%s: '%s' is not HOST:PORT with a numeric address "
				 "(IPv6: [::1]:7401) or off", who, val);
			return -EINVAL;
		}
		snprintf(c->ws_listen, sizeof(c->ws_listen), "%s", val);
		return 0;
	case OPT_ORIGINS:
		/* Printable ASCII without spaces: origins are compared byte for
		 * byte, and the list must print back as one config line. */
		if (strlen(val) >= SP_CONFIG_ORIGINS_MAX) {
			snprintf(err, err_cap, "%s: longer than %d bytes", who,
				 SP_CONFIG_ORIGINS_MAX - 1);
			return -EINVAL;
		}
		for (const char *q = val; *q; q++) {
			if (*q <= 0x20 || *q >= 0x7f || *q == ';') {
				snprintf(err, err_cap, "%s: origins are printable ASCII without "
					 "spaces or ';', separated by commas", who);
				return -EINVAL;
			}
		}
		snprintf((char *)c + o->off, SP_CONFIG_ORIGINS_MAX, "%s", val);
		return 0;
	case OPT_CLUSTER: {
		char why[SP_CONFIG_ERR_MAX / 2];

		if (strlen(val) >= SP_CONFIG_CLUSTER_MAX) {
			snprintf(err, err_cap, "%s: longer than %d bytes", who,
				 SP_CONFIG_CLUSTER_MAX - 1);
			return -EINVAL;
		}
		if (*val && sp_config_check_cluster(val, why, sizeof(why))) {
			snprintf(err, err_cap, "%s: %s", who, why);
			return -EINVAL;
		}
		snprintf((char *)c + o->off, SP_CONFIG_CLUSTER_MAX, "%s", val);
		return 0;
	}
	case OPT_PATH:
	case OPT_CONFIG:
		/* Room for "/sealpostd.lock" and the like after a directory. */
		if (!*val || strlen(val) >= SP_CONFIG_PATH_MAX - 32) {
			snprintf(err, err_cap, "%s: empty or too long", who);
			return -EINVAL;
		}
		if (!path_printable(val)) {
			snprintf(err, err_cap, "%s: a control character, a space at either end, "
				 "a ';' first or ' ;' in the path", who);
			return -EINVAL;
		}
		snprintf((char *)c + o->off, SP_CONFIG_PATH_MAX, "%s", val);
		return 0;
	case OPT_SOCKET:
		/* sun_path's size, not PATH_MAX: a longer path cannot be bound. */
		if (strlen(val) >= SP_CONFIG_SOCKET_MAX) {
			snprintf(err, err_cap, "%s: longer than %d bytes", who,
				 SP_CONFIG_SOCKET_MAX - 1);
			return -EINVAL;
		}
		snprintf((char *)c + o->off, SP_CONFIG_SOCKET_MAX, "%s", val);
		return 0;
	case OPT_SOCKET_MODE:
		/* Two choices, not any mode: never world-accessible, always owner rw. */
		if (strcmp(val, "0600") && strcmp(val, "0660")) {
			snprintf(err, err_cap, "%s: '%s' is not 0600 or 0660", who, val);
			return -EINVAL;
		}
		*(uint32_t *)((char *)c + o->off) = strcmp(val, "0600") ? 0660 : 0600;
		return 0;
	case OPT_LEVEL:
		if (sp_log_level_parse(val, (enum sp_log_level *)((char *)c + o->off))) {
			snprintf(err, err_cap, "%s: '%s' is not error, warn, info or debug", who,
				 val);
			return -EINVAL;
		}
		return 0;
	case OPT_U32:
	case OPT_U64:
		return set_number(c, o, val, who, err, err_cap);
	case OPT_TEXT:
		if (strlen(val) > o->max) {
			snprintf(err, err_cap, "%s: longer than %" PRIu64 " bytes", who, o->max);
			return -EINVAL;
		}
		if (!path_printable(val)) {
			snprintf(err, err_cap, "%s: a control character, a space at either end, "
				 "a ';' first or ' ;' in the value", who);
			return -EINVAL;
		}
		snprintf((char *)c + o->off, (size_t)o->max + 1, "%s", val);
		return 0;
	case OPT_URGENCY:
		for (uint32_t i = 0; i < sizeof(urgency_names) / sizeof(urgency_names[0]); i++) {
			if (strcmp(val, urgency_names[i]) == 0) {
				*(uint32_t *)((char *)c + o->off) = i;
				return 0;
			}
		}
		snprintf(err, err_cap, "%s: '%s' is not very-low, low, normal or high", who, val);
		return -EINVAL;
	case OPT_REGISTRATION:
		for (uint32_t i = 0; i < 2; i++) {
			if (strcmp(val, registration_names[i]) == 0) {
				*(uint32_t *)((char *)c + o->off) = i;
				return 0;
			}
		}
		snprintf(err, err_cap, "%s: '%s' is not open or token", who, val);
		return -EINVAL;
	case OPT_FSYNC:
		for (uint32_t i = 0; i < sizeof(fsync_names) / sizeof(fsync_names[0]); i++) {
			if (strcmp(val, fsync_names[i]) == 0) {
				*(uint32_t *)((char *)c + o->off) = i;
				return 0;
			}
		}
		snprintf(err, err_cap, "%s: '%s' is not always, batch or never", who, val);
		return -EINVAL;
	default:
		snprintf(err, err_cap, "%s: cannot be set here", who);
		return -EINVAL;
	}
}

static const struct opt *find_opt(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0)
			return &opts[i];
	}
	return NULL;
}

int sp_config_parse(struct sp_config *c, int argc, char *const argv[], char *err, size_t err_cap)
{
	int result = SP_CONFIG_OK;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *eq, *val = NULL;
		const struct opt *o;
		char who[80];

		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			snprintf(err, err_cap, "unexpected argument '%s' (see --help)", a);
			return -EINVAL;
		}
		a += 2;
		eq = strchr(a, '=');
		o = find_opt(a, eq ? (size_t)(eq - a) : strlen(a));
		if (!o) {
			snprintf(err, err_cap, "unknown option '%s' (see --help)", argv[i]);
			return -EINVAL;
		}
		if (o->kind == OPT_PRINT_VAPID) {
			if (eq) {
				snprintf(err, err_cap, "--%s takes no value", o->name);
				return -EINVAL;
			}
			if (result == SP_CONFIG_OK || result == SP_CONFIG_VERSION)
				result = SP_CONFIG_PRINT_VAPID;
			continue;
		}
		if (o->kind == OPT_HELP || o->kind == OPT_VERSION || o->kind == OPT_CHECK) {
			if (eq) {
				snprintf(err, err_cap, "--%s takes no value", o->name);
				return -EINVAL;
			}
			/* --help beats --check-config beats --version, in any order. */
			if (o->kind == OPT_HELP)
				result = SP_CONFIG_HELP;
			else if (o->kind == OPT_CHECK && result != SP_CONFIG_HELP)
				result = SP_CONFIG_CHECK;
			else if (result == SP_CONFIG_OK)
				result = SP_CONFIG_VERSION;
			continue;
		}
		if (eq) {
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			snprintf(err, err_cap, "--%s needs a value (%s)", o->name, o->arg);
			return -EINVAL;
		}
		snprintf(who, sizeof(who), "--%s", o->name);
		if (set_value(c, o, val, who, err, err_cap))
			return -EINVAL;
	}
	return result;
}

/* --- the INI file ------------------------------------------------------------ */

enum { NOPTS = sizeof(opts) / sizeof(opts[0]) };

struct file_ctx {
	struct sp_config *c;
	const char *path;
	FILE *f;
	int line;               /* of the last line read: the one the handler sees */
	int err_line;           /* first error found by the handler or the reader, 0 if none */
	int seen[NOPTS];        /* line each key was set on */
	char *err;
	size_t err_cap;
};

/*
 * libinih's line reader, counting lines so the handler can name them (the
 * Debian build has no INI_HANDLER_LINENO). A line longer than libinih's
 * buffer would be split into two and the tail parsed as a line of its own:
 * refuse it instead.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct file_ctx *x = stream;
	char *p;
	size_t n;

	if (x->err_line || !fgets(str, num, x->f))
		return NULL;
	x->line++;
	n = strlen(str);
	if (n == (size_t)num - 1 && str[n - 1] != '\n' && !feof(x->f)) {
		x->err_line = x->line;
		snprintf(x->err, x->err_cap, "%s:%d: line longer than %d characters", x->path,
			 x->line, num - 2);
		return NULL;
	}
	/* libinih only hands a section to the handler with the next key, so the
	 * error would name that key's line, and a section with no key after it
	 * would pass unnoticed: refuse the [section] line itself. */
	p = str + strspn(str, " \t");
	if (*p == '[') {
		p[strcspn(p, "\r\n")] = '\0';
		x->err_line = x->line;
		snprintf(x->err, x->err_cap, "%s:%d: sections are not used (%.64s): one "
			 "'key = value' per line, keys are the option names of --help",
			 x->path, x->line, p);
		return NULL;
	}
	return str;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct file_ctx *x = user;
	const struct opt *o = find_opt(name, strlen(name));
	char who[SP_CONFIG_PATH_MAX + 64];

	if (x->err_line)
		return 0;
	if (section && *section) {
		snprintf(x->err, x->err_cap, "%s:%d: sections are not used ([%s])", x->path,
			 x->line, section);
		goto fail;
	}
	if (!o || o->kind >= OPT_CONFIG) {
		snprintf(x->err, x->err_cap, "%s:%d: unknown key '%s' (keys are the option names "
			 "of --help, without --; config, check-config, help and version are "
			 "command-line only)", x->path, x->line, name);
		goto fail;
	}
	if (x->seen[o - opts]) {
		snprintf(x->err, x->err_cap, "%s:%d: '%s' is already set on line %d", x->path,
			 x->line, name, x->seen[o - opts]);
		goto fail;
	}
	snprintf(who, sizeof(who), "%s:%d: %s", x->path, x->line, o->name);
	if (set_value(x->c, o, value, who, x->err, x->err_cap))
		goto fail;
	x->seen[o - opts] = x->line;
	return 1;
fail:
	x->err_line = x->line;
	return 0;
}

int sp_config_parse_file(struct sp_config *c, const char *path, char *err, size_t err_cap)
{
	struct file_ctx x = { .c = c, .path = path, .err = err, .err_cap = err_cap };
	int ret;

	x.f = fopen(path, "re");
	if (!x.f) {
		ret = -errno;
		snprintf(err, err_cap, "%s: %s", path, strerror(errno));
		return ret;
	}
	ret = ini_parse_stream(read_line, &x, on_key, &x);
	fclose(x.f);
	if (ret < 0) {
		snprintf(err, err_cap, "%s: out of memory", path);
		return -ENOMEM;
	}
	/* libinih returns the first line it could not parse, or the first line
	 * the handler refused; whichever came first is the error to report. */
	if (ret > 0 && (!x.err_line || ret < x.err_line)) {
		snprintf(err, err_cap, "%s:%d: expected 'key = value' or a comment", path, ret);
		return -EINVAL;
	}
	if (x.err_line)
		return -EINVAL;
	snprintf(c->config_path, sizeof(c->config_path), "%s", path);
	return 0;
}

int sp_config_load(struct sp_config *c, int argc, char *const argv[], char *err, size_t err_cap)
{
	struct sp_config *flags = malloc(sizeof(*flags));
	int ret;

	if (!flags) {
		snprintf(err, err_cap, "out of memory");
		return -ENOMEM;
	}
	/* First pass: validate the flags and learn --config; the file goes
	 * under the flags, so they are applied again on top of it. */
	sp_config_defaults(flags);
	ret = sp_config_parse(flags, argc, argv, err, err_cap);
	sp_config_defaults(c);
	if (ret >= 0 && flags->config_path[0] && ret != SP_CONFIG_HELP &&
	    ret != SP_CONFIG_VERSION) {
		int r = sp_config_parse_file(c, flags->config_path, err, err_cap);

		if (r)
			ret = r;
	}
	if (ret >= 0)
		ret = sp_config_parse(c, argc, argv, err, err_cap);
	free(flags);
	return ret;
}

/* --- --help and --check-config ------------------------------------------------ */

static void value_text(const struct sp_config *c, const struct opt *o, char *buf, size_t cap)
{
	const char *p = (const char *)c + o->off;

	switch (o->kind) {
	case OPT_LISTEN:
	case OPT_METRICS_LISTEN:
	case OPT_WS_LISTEN:
	case OPT_ORIGINS:
	case OPT_PATH:
	case OPT_SOCKET:
	case OPT_TEXT:
	case OPT_CLUSTER:
	case OPT_CONFIG:
		snprintf(buf, cap, "%s", p);
		break;
	case OPT_URGENCY:
		snprintf(buf, cap, "%s", sp_config_urgency_name(*(const uint32_t *)p));
		break;
	case OPT_LEVEL:
		snprintf(buf, cap, "%s", sp_log_level_name(*(const enum sp_log_level *)p));
		break;
	case OPT_FSYNC:
		snprintf(buf, cap, "%s", fsync_names[*(const uint32_t *)p % 3]);
		break;
	case OPT_REGISTRATION:
		snprintf(buf, cap, "%s", registration_names[*(const uint32_t *)p & 1]);
		break;
	case OPT_SOCKET_MODE:
		snprintf(buf, cap, "%04o", (unsigned)*(const uint32_t *)p);
		break;
	case OPT_U32:
		snprintf(buf, cap, "%" PRIu32, *(const uint32_t *)p);
		break;
	case OPT_U64:
		snprintf(buf, cap, "%" PRIu64, *(const uint64_t *)p);
		break;
	default:
		buf[0] = '\0';
	}
}

static void default_text(const struct opt *o, char *buf, size_t cap)
{
	struct sp_config *d = malloc(sizeof(*d));
	char v[SP_CONFIG_PATH_MAX];

	buf[0] = '\0';
	if (!d)
		return;
	sp_config_defaults(d);
	value_text(d, o, v, sizeof(v));
	snprintf(buf, cap, "%.48s", v);
	free(d);
}

void sp_config_usage(FILE *f, const char *prog)
{
	fprintf(f, "usage: %s [--config FILE] [--listen HOST:PORT] [--data-dir DIR] [OPTION...]\n"
		   "       %s --check-config [--config FILE] [OPTION...]\n\n"
		   "sealpostd: a blind message broker for sealed envelopes.\n\n"
		   "Options (--name VALUE or --name=VALUE; in a --config file: name = VALUE):\n",
		prog, prog);
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		char left[64], def[64];

		if (strncmp(o->name, "test-", 5) == 0)
			continue;       /* for the test suite, not for operators */
		snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "",
			 o->arg ? o->arg : "");
		default_text(o, def, sizeof(def));
		fprintf(f, "  %-28s %s", left, o->help);
		if (def[0])
			fprintf(f, " (default: %s)", def);
		if (o->kind == OPT_U32 || o->kind == OPT_U64)
			fprintf(f, " [%" PRIu64 "..%" PRIu64 "]", o->min, o->max);
		fputc('\n', f);
	}
}

void sp_config_print(FILE *f, const struct sp_config *c)
{
	char v[SP_CONFIG_PATH_MAX];

	fprintf(f, "# sealpostd effective configuration (defaults < %s < flags)\n",
		c->config_path[0] ? c->config_path : "no config file");
	for (size_t i = 0; i < NOPTS; i++) {
		if (opts[i].kind >= OPT_CONFIG)
			continue;
		value_text(c, &opts[i], v, sizeof(v));
		fprintf(f, "%s = %s\n", opts[i].name, v);
	}
}

/* --- reload -------------------------------------------------------------------- */

/*
 * What a running sealpostd can take over from a changed config file. Each
 * is read where it is used, on the shard's thread, and nothing was sized
 * or scheduled from it: max-envelope (and the ServerHello of new
 * connections), sendq-max, handshake-rate and its per-source pair, log-rate (the log limiters are
 * reset). The rest is sized at start (tables, rings, stores), or orders
 * timer lists that assume one constant timeout: those need a restart.
 */
static const char *const reloadable[] = {
	"max-envelope", "sendq-max", "handshake-rate", "handshake-rate-per-source",
	"handshake-burst-per-source", "log-rate",
};

bool sp_config_reloadable(const char *name)
{
	for (size_t i = 0; i < sizeof(reloadable) / sizeof(reloadable[0]); i++)
		if (strcmp(name, reloadable[i]) == 0)
			return true;
	return false;
}

const char *sp_config_reloadable_name(size_t i)
{
	return i < sizeof(reloadable) / sizeof(reloadable[0]) ? reloadable[i] : NULL;
}

size_t sp_config_reload(struct sp_config *live, const struct sp_config *fresh,
			struct sp_config_change *out, size_t cap)
{
	char a[SP_CONFIG_PATH_MAX], b[SP_CONFIG_PATH_MAX];
	size_t n = 0;

	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		struct sp_config_change *ch;

		if (o->kind >= OPT_CONFIG)
			continue;
		value_text(live, o, a, sizeof(a));
		value_text(fresh, o, b, sizeof(b));
		if (strcmp(a, b) == 0)
			continue;
		if (n < cap) {
			ch = &out[n];
			ch->name = o->name;
			/* Truncated to the field (paths may be long). */
			snprintf(ch->old_value, sizeof(ch->old_value), "%.63s", a);
			snprintf(ch->new_value, sizeof(ch->new_value), "%.63s", b);
			ch->applied = sp_config_reloadable(o->name);
		}
		n++;
		if (!sp_config_reloadable(o->name))
			continue;
		/* Only numbers are reloadable. */
		if (o->kind == OPT_U32)
			*(uint32_t *)((char *)live + o->off) =
				*(const uint32_t *)((const char *)fresh + o->off);
		else if (o->kind == OPT_U64)
			*(uint64_t *)((char *)live + o->off) =
				*(const uint64_t *)((const char *)fresh + o->off);
	}
	return n;
}
