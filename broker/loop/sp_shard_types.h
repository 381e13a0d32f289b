/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_shard_types.h: struct sp_shard, the one context of a shard (ring,
 * buffer ring, connection table, routing table, mailbox coordination), in a
 * leaf header so that every file of loop/ and app/ can include it without
 * including each other.
 *
 * Which file writes which part is written beside each group; a file reads
 * what it needs and writes only its own part.
 */
#ifndef SP_SHARD_TYPES_H
#define SP_SHARD_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "sp_config.h"
#include "sp_conn.h"
#include "sp_log.h"
#include "sp_metrics.h"
#include "sp_node.h"
#include "sp_ring.h"

struct sp_admin;
struct sp_admin_job;
struct sp_hsrate;
struct sp_push;
struct sp_cluster_route;
struct sp_route;
struct sp_source_table;
struct sp_store;
struct sp_tlog;
struct sp_store_batch;
struct sp_store_item;

/* A SendResult waiting for the iteration's commit (app/sp_mailbox.c). */
struct sp_pending_result {
	uint32_t slot, gen;             /* the sender's connection */
	uint64_t client_id;
	uint64_t seq;
	uint8_t status;                 /* enum sp_status */
	bool durable;                   /* ERR_INTERNAL instead if the commit fails */
	bool remote;                    /* held: another shard decides its status (SP_XS_RESULT) */
	bool pong;                      /* a Pong{id = client_id}, behind the results before it */
	bool fanout;                    /* a FanoutResult{group_id = client_id, version = seq} */
	bool failed;                    /* held: its commit failed (durable ones get ERR_INTERNAL) */
	uint64_t ticket;                /* held: the WAL sync it waits for */
};

/* Rate limiters beyond one per close reason: accept-time refusals, storage
 * errors, and the debug lines any peer can trigger (accepted, handshake
 * complete, unknown acks), which must stay bounded even at debug level. */
enum { SP_LIM_REFUSED = SP_CLOSE_REASON_COUNT, SP_LIM_STORE, SP_LIM_PEER_DEBUG, SP_LIM_COUNT };

struct sp_shard;

/* What the loop asks of the app layer (set by sp_shard.c, which composes). */
struct sp_shard_app {
	/* c stops being a route and a mailbox reader: it is ending (GoAway or cut). */
	void (*detach)(struct sp_shard *sh, struct sp_conn *c);
};

struct sp_shard {
	/* Set up by sp_shard.c / sp_detached.c, read-only afterwards. */
	uint8_t id;
	const struct sp_config *cfg;
	const struct sp_log *log;
	struct sp_ring ring;
	struct sp_bufring bufs;
	struct sp_txpool pool;
	/* The sessions' secrets in locked memory (sp_slab.h): handshake
	 * states and open outbound streams in slab (env.slab), the transport
	 * keys, all an idle connection holds, in key_slab's small slots
	 * (env.key_slab). */
	struct sp_slab slab;
	struct sp_slab key_slab;
	struct sp_route *routes;
	struct sp_session_env env;
	struct sp_shard_app app;
	int listen_fd;
	int ws_listen_fd;               /* --ws-listen socket, -1 = none (set before run) */
	int wake_fd;                    /* readable = stop (signalfd or eventfd) */

	/* The connection table (sp_conn_table.c). */
	struct sp_conn *conns;          /* nslots slots (calloc: untouched cost nothing) */
	uint32_t *free_slots;           /* stack of free slot numbers */
	uint32_t nfree;
	uint32_t nslots;                /* max_conns + SP_CONN_TABLE_RESERVE */
	uint32_t nconns;                /* slots not free (incl. dead, awaiting completions) */
	uint32_t high_water;            /* slots ever used: bound for full scans */
	struct sp_conn *dirty;          /* connections to flush at the end of the iteration */

	/* Per-source connection counts (sp_source.c); NULL = no limits. */
	struct sp_source_table *sources;

	/* Accept and the handshake-rate buckets (sp_accept.c). */
	bool accept_armed;
	struct sp_hsrate *hsrate;       /* per source and in all (sp_hsrate.h) */
	bool ws_accept_armed;

	/* Timers (sp_timers.c). Deadline-ordered lists: each timeout is a
	 * constant, so appending keeps them sorted and expiry is O(expired). */
	struct sp_ilist hello_list;     /* no handshake message yet: accept + hello_timeout */
	struct sp_ilist hs_list;        /* handshake: first message + handshake_timeout */
	struct sp_ilist idle_list;      /* established: last whole message + idle_timeout */
	struct sp_ilist closing_list;   /* GoAway sent: + close_grace */
	struct __kernel_timespec tick;
	bool tick_retry;                /* the tick's submission failed: arm it again */
	bool wake_armed;
	bool wake_retry;                /* the stop read's submission failed: arm it again */
	uint8_t wake_buf[128];          /* fits a signalfd_siginfo */

	/* Memory of the connections (sp_mem.c), against cfg->mem_budget. The
	 * sessions keep rx_bytes (through env.rx_bytes); the outbound chunks
	 * are counted by the pool. */
	struct {
		uint64_t rx_bytes;      /* reassembly buffers allocated */
		uint64_t trim_ns;       /* the next reserve trim and malloc_trim check */
		uint64_t lock_failures; /* slab.lock_failures already counted in the metric */
		uint64_t fanout_bytes;  /* bodies held by open fan-out groups (app/sp_fanout.c) */
	} mem;

	/* The iteration's clocks (sp_shard.c, or the detached harness). */
	uint64_t now_ns;                /* CLOCK_MONOTONIC, once per iteration */
	uint64_t wall_ms;               /* CLOCK_REALTIME ms of the iteration (stored times) */

	/* Mailbox coordination (app/sp_mailbox.c). store: borrowed for the
	 * shard's life (set before sp_shard_run; NULL = no mailboxes: durable
	 * sends get ERR_INTERNAL). */
	struct sp_store *store;
	/* The transparency log's key (app/sp_tlog.c): borrowed like store, set
	 * by the daemon before run (NULL = lists are served without proofs). */
	const struct sp_tlog *tlog;
	/* The enrolment-token key (app/sp_registration.c, DATA_DIR/enrol.key):
	 * borrowed like store; NULL unless --registration=token (then every
	 * token is refused as bad if it is missing). */
	const uint8_t *enrol_key;
	struct sp_store_batch *batch;   /* the iteration's batch, begun on first write */
	int64_t it_entries, it_bytes;   /* mailbox growth in the open batch (metrics at commit) */
	uint64_t rm_entries0, rm_bytes0; /* the store's removed totals when the batch began */
	struct sp_pending_result *results; /* this iteration's SendResults, in arrival order */
	size_t nresults, results_cap;
	/* Results held until the WAL sync their commit waits for (--fsync
	 * always with the store's sync thread), oldest first; a connection's
	 * later results and Pongs queue behind its held ones (conn mbox
	 * held_ticket), so none overtakes another, while other connections'
	 * go out at once. */
	struct sp_pending_result *held;
	size_t nheld, held_cap;
	uint64_t synced;                /* every ticket up to this one is synced */
	uint64_t sync_buf;              /* the sync eventfd read's target (sp_shard.c) */
	bool sync_armed, sync_retry;
	struct sp_ilist drain_list;     /* connections whose backlog reader runs */
	struct sp_store_item *items;    /* reader chunk */
	struct sp_sendlim *sendlim;     /* per-sender budgets of durable sends */
	/* Open fan-out groups (app/sp_fanout.c), oldest first: each has the
	 * same timeout, so the deadline order is the append order. */
	struct sp_list fanout_list;
	/* Cluster mode: ListPuts waiting for their removed devices' JetStream
	 * purges (app/sp_account.c), oldest first (one timeout for all). */
	struct sp_list account_waits;
	uint64_t account_wait_next;
	/* Sealed sender (app/sp_anon.c): anonymous sends' budgets per
	 * recipient and per source (sendlim tables keyed by the recipient
	 * key, and by the source key zero-padded to 32 bytes). */
	struct sp_sendlim *anon_rcpt, *anon_src;
	/* Prekeys (app/sp_prekeys.c): fetch budgets per source (a device key,
	 * or an anonymous connection's source key zero-padded) and per
	 * fetched device. */
	struct sp_sendlim *pk_src, *pk_dev;

	/* The admin socket (loop/sp_admin_exec.c). admin: borrowed, set before
	 * sp_shard_run like store (NULL = none); live_cfg: cfg itself, writable,
	 * for reload only (NULL = reload refused). */
	struct sp_admin *admin;
	struct sp_config *live_cfg;
	struct sp_admin_job *admin_jobs; /* run this iteration, answered after its commit */
	uint64_t admin_buf;             /* the eventfd read's target */
	bool admin_armed, admin_retry;

	/* Web Push (broker/push/sp_push.h). push: borrowed, set before
	 * sp_shard_run like store (NULL = no wake-ups); the outcome eventfd's
	 * read is armed by sp_shard.c. */
	struct sp_push *push;
	uint64_t push_buf;
	bool push_armed, push_retry;

	/* --cluster (broker/cluster/sp_cluster_route.h): this shard's side of
	 * the node; borrowed, set before sp_shard_run; NULL on a single node. */
	struct sp_cluster_route *cluster;
	/* The other shards (loop/sp_xshard.c): NULL when this shard is
	 * alone (--threads 1, the detached harness), and then nothing below
	 * is used. node: borrowed, set before run. */
	struct sp_node *node;
	struct sp_inbox inbox;
	uint64_t inbox_buf;             /* the inbox eventfd read's target */
	bool inbox_armed, inbox_retry;
	bool store_held;                /* this iteration holds node->store_mu */
	/* Stored envelopes for devices homed elsewhere, posted once the batch
	 * that holds them is committed (app/sp_mailbox.c). */
	struct sp_inbox_msg *xs_stored, **xs_stored_tail;
	uint64_t held_epoch;            /* release_held's pass (app/sp_mailbox.c) */

	/* Stop (sp_shard.c). */
	bool stopping;
	uint64_t stop_deadline_ns;

	/* Observability. Counts are kept once, in the metrics slot (what
	 * /metrics shows; tests read them there too). The log limiters are
	 * written by sp_log's SP_LOG_LIMITED in whichever file logs. */
	struct sp_log_limit lim[SP_LIM_COUNT];
	/* This shard's metrics slot, never NULL: init points it at a private
	 * slot; the daemon repoints it (sp_metrics_shard(m, id)) before run. */
	struct sp_metrics_shard *metrics;
	struct sp_metrics_shard *own_metrics;
	uint64_t live_delivered;        /* live deliveries this iteration, timed at flush */
	uint64_t store_ns;              /* time in synchronous store calls this iteration */
};

/* The shared store, for this iteration: the first call of an iteration
 * takes the node's store lock, the end of the iteration gives it back
 * (sp_shard_store_release). Alone, just sh->store. */
static inline struct sp_store *sp_shard_store(struct sp_shard *sh)
{
	if (sh->node && sh->store && !sh->store_held) {
		pthread_mutex_lock(&sh->node->store_mu);
		sh->store_held = true;
	}
	return sh->store;
}

static inline void sp_shard_store_release(struct sp_shard *sh)
{
	if (sh->store_held) {
		sh->store_held = false;
		pthread_mutex_unlock(&sh->node->store_mu);
	}
}

/* Posts m (the inbox's from here) to shard `to`, woken through this
 * shard's ring (MSG_RING, at its next submit). */
static inline void sp_shard_post(struct sp_shard *sh, unsigned to, struct sp_inbox_msg *m)
{
	m->from = sh->id;
	sp_inbox_post_ring(&sh->node->shards[to]->inbox, m, &sh->ring,
			   sp_ud_pack(SP_OP_INBOX, 0, 0), sp_ud_pack(SP_OP_NONE, 0, 0));
}

/* The home shard of a device key (this one when alone). */
static inline unsigned sp_shard_home(const struct sp_shard *sh, const uint8_t key[SP_KEY_LEN])
{
	return sh->node ? sp_node_home(sh->node, key) : sh->id;
}

/* The clocks an iteration reads once. */
static inline uint64_t sp_shard_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline uint64_t sp_shard_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* After a synchronous store call on the loop thread that began at t0
 * (sp_shard_mono_ns()): sealpost_store_call_seconds{op}, and the
 * iteration's total (observed at its end, sp_shard_iteration_metrics). */
static inline void sp_shard_store_timed(struct sp_shard *sh, enum sp_metrics_store_op op,
					uint64_t t0)
{
	uint64_t ns = sp_shard_mono_ns() - t0;

	sp_metrics_store_call(sh->metrics, op, ns);
	sh->store_ns += ns;
}

#endif
