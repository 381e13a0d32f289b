/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_cluster.h: a sealpostd node of a cluster backed by NATS (--cluster,
 * docs/CLUSTER.md). Only with --cluster set: a single node never calls
 * anything here, so nothing of libnats runs there.
 *
 * Start-up (sp_cluster_start) refuses a configuration that cannot work, each
 * with one clear log line and exit status 1:
 *   - no NATS server of the list answers within --cluster-connect-timeout;
 *   - the NATS cluster has no JetStream (or not for this account);
 *   - the JetStream bucket sealpost keeps its cluster facts in cannot be made
 *     with --cluster-replicas replicas (fewer servers than replicas, say);
 *   - this node's server key is not the cluster's: every node must hold the
 *     same DATA_DIR/server.key (devices may connect to any node). The first
 *     node to start records a fingerprint of the public key in the bucket
 *     (key "broker_key"); every later node compares its own with it.
 *
 * Afterwards the connection reconnects forever; while it is down the node
 * is not ready (/readyz 503, sp_metrics_set_cluster_up) and the disconnect
 * and reconnect are logged and counted (sealpost_cluster_*).
 *
 * Threads: libnats runs its own (reading, flushing, callbacks); the state
 * they write here is atomics only. sp_cluster_start and sp_cluster_stop run
 * on the main thread.
 *
 *   - this node's --cluster-partitions is not the one the first node recorded
 *     (key "mailbox_partitions");
 *   - the mailbox streams SP_MBOX_0.. cannot be made or brought to this
 *     node's configuration (replicas, quotas, TTL, dedup window).
 *
 * Errors: 0 or a negative errno: -EHOSTUNREACH (no server reachable),
 * -ENOTSUP (no JetStream), -EKEYREJECTED (another server key or partition
 * count), -ENOSPC (the bucket or a stream cannot be made), -EIO (anything
 * else libnats reports), -ENOMEM.
 */
#ifndef SP_CLUSTER_H
#define SP_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "sp_cluster_inbox.h"
#include "sp_config.h"
#include "sp_limits.h"
#include "sp_log.h"
#include "sp_metrics.h"

/* The bucket of cluster facts and its one key today (docs/CLUSTER.md). */
#define SP_CLUSTER_BUCKET "sealpost_cluster"
#define SP_CLUSTER_KEY_BROKER "broker_key"
#define SP_CLUSTER_KEY_PARTITIONS "mailbox_partitions"
/* The mailbox streams: SP_MBOX_<p> holds the subjects sp.m.<p>.TOKEN. */
#define SP_CLUSTER_STREAM_PREFIX "SP_MBOX_"
#define SP_CLUSTER_SUBJECT_MAILBOX "sp.m."
enum {
	SP_CLUSTER_FP_LEN = 16,                  /* fingerprint bytes */
	SP_CLUSTER_FP_HEX_LEN = 2 * SP_CLUSTER_FP_LEN,
	SP_CLUSTER_MSGID_LEN = 16,               /* Nats-Msg-Id: a keyed hash */
	SP_CLUSTER_MSGID_HEX_LEN = 2 * SP_CLUSTER_MSGID_LEN,
	/* A stream message's size limit above the body: its headers. */
	SP_CLUSTER_HEADROOM = 1024,
};

struct sp_cluster;

/*
 * Connects to cfg->cluster, checks JetStream and the server key; on success
 * *out is the node (stop it with sp_cluster_stop) and m's readiness follows
 * the connection. server_priv: the broker's private key, borrowed for the
 * call (the subject key is derived from it, so that every node of one
 * broker identity names a device's subject alike, and nobody without the
 * key can: docs/SECURITY.md). lg and m: borrowed for the node's life.
 */
int sp_cluster_start(struct sp_cluster **out, const struct sp_config *cfg, const struct sp_log *lg,
		     struct sp_metrics *m, const uint8_t server_priv[SP_KEY_LEN]);

/* Closes the NATS connection (no more messages in or out); NULL ok. */
void sp_cluster_close(struct sp_cluster *c);
/* Closes the connection, waits (bounded) for libnats's threads and frees
 * the node and its ports; NULL ok. */
void sp_cluster_stop(struct sp_cluster *c);

/* Is the NATS connection up right now? */
bool sp_cluster_up(const struct sp_cluster *c);

/* What the shards count into the node's figures (any thread: atomics). */
enum sp_cluster_counter {
	SP_CLUSTER_REMOTE_SENDS,        /* online-only sends to another node */
	SP_CLUSTER_REMOTE_DELIVERIES,   /* envelopes from another node delivered here */
	SP_CLUSTER_TAKEOVERS,           /* connections here ended by one on another node */
	SP_CLUSTER_TIMEOUTS,            /* remote sends unanswered in time */
	SP_CLUSTER_ERRORS,              /* NATS calls that failed */
	SP_CLUSTER_ROUND_TRIP,          /* ns of answered remote sends (with _ROUND_TRIPS) */
	SP_CLUSTER_ROUND_TRIPS,
	SP_CLUSTER_JS_STORED,           /* durable sends JetStream acknowledged */
	SP_CLUSTER_JS_REFUSED,          /* durable sends JetStream refused or did not answer */
	SP_CLUSTER_JS_PUBLISH,          /* ns from publish to PubAck (with _JS_PUBLISHES) */
	SP_CLUSTER_JS_PUBLISHES,
	SP_CLUSTER_JS_READS,            /* mailbox messages read from JetStream */
	SP_CLUSTER_JS_DELETES,          /* acks: deletes JetStream confirmed */
	SP_CLUSTER_COUNTER_COUNT,
};
void sp_cluster_count(struct sp_cluster *c, enum sp_cluster_counter k, uint64_t v);

/* This node's random id (chosen at start, in every message it sends). */
uint64_t sp_cluster_node_id(const struct sp_cluster *c);

/* A device's subject token: BLAKE2b-256 of the key under the subject key
 * (the subject is "sp.d." and its hex). device borrowed; token written. */
void sp_cluster_token(const struct sp_cluster *c, const uint8_t device[SP_KEY_LEN],
		      uint8_t token[SP_KEY_LEN]);

/*
 * A port: one event loop's side of the node's NATS connection, shared with
 * the other ports (no lock of ours between them: libnats serialises its
 * writes itself). Its inbox receives what the loop must act on; its reply
 * subscription ("sp.r.NODE.PORT.*") the answers to its DELIVERs. Open and
 * close on the main thread, before and after the loop runs; the rest on
 * the loop's thread.
 */
struct sp_cluster_port;
int sp_cluster_port_open(struct sp_cluster *c, unsigned index, uint64_t inbox_max,
			 struct sp_cluster_port **out);
/* No more callbacks into p's inbox, which is emptied; p's memory goes
 * with the node (sp_cluster_stop). Idempotent. */
void sp_cluster_port_close(struct sp_cluster_port *p);
struct sp_cluster_inbox *sp_cluster_port_inbox(struct sp_cluster_port *p);
struct sp_cluster *sp_cluster_port_node(struct sp_cluster_port *p);

/* Holds the device subject of token for this port (*sub: the handle to
 * give back to sp_cluster_port_unsubscribe). */
int sp_cluster_port_subscribe(struct sp_cluster_port *p, const uint8_t token[SP_KEY_LEN],
			      void **sub);
void sp_cluster_port_unsubscribe(struct sp_cluster_port *p, void *sub);

/* DELIVER body (borrowed for the call) to token's holder; its REPLY, or a
 * no-responders answer (ERR_OFFLINE), comes to this port's inbox with
 * value = ticket. -ENOTCONN while the NATS connection is down. */
int sp_cluster_port_deliver(struct sp_cluster_port *p, const uint8_t token[SP_KEY_LEN],
			    uint64_t ticket, const uint8_t *body, size_t len);
/* TAKEOVER: the device proved itself here at since_ms; older holders go. */
int sp_cluster_port_takeover(struct sp_cluster_port *p, const uint8_t token[SP_KEY_LEN],
			     uint64_t since_ms);
/* REPLY status to a DELIVER's reply subject (borrowed for the call). */
int sp_cluster_port_reply(struct sp_cluster_port *p, const char *reply, uint8_t status);

/*
 * Mailboxes in JetStream (docs/CLUSTER.md, "Replicated mailboxes"). A
 * device's mailbox is the subject sp.m.P.TOKEN of stream SP_MBOX_P, P =
 * token[0] mod --cluster-partitions. Every call is a publish: the answers
 * come to the port's inbox as SP_CLUSTER_JS items (sp_cluster_msg.h), so
 * the loop never waits for JetStream. Each returns 0, -ENOTCONN while the
 * NATS connection is down, or -EIO. Buffers borrowed for the call.
 */
unsigned sp_cluster_partition(const struct sp_cluster *c, const uint8_t token[SP_KEY_LEN]);
/* The Nats-Msg-Id of a Send: hex of a keyed hash (the subject key) of
 * sender, recipient and client id (hex: SP_CLUSTER_MSGID_HEX_LEN + 1). */
void sp_cluster_msg_id(const struct sp_cluster *c, const uint8_t sender[SP_KEY_LEN],
		       const uint8_t recipient[SP_KEY_LEN], uint64_t client_id,
		       char hex[SP_CLUSTER_MSGID_HEX_LEN + 1]);
/* Publishes body to token's mailbox (msgid: NULL = no dedup); the PubAck
 * (after a quorum of replicas stored it) answers with ticket. */
int sp_cluster_port_js_store(struct sp_cluster_port *p, const uint8_t token[SP_KEY_LEN],
			     const char *msgid, uint64_t ticket, const uint8_t *body, size_t len);
/* Asks the stream's leader for token's first message from seq `from` on;
 * answered with (conn, ticket). */
int sp_cluster_port_js_get(struct sp_cluster_port *p, const uint8_t token[SP_KEY_LEN],
			   uint64_t conn, uint64_t ticket, uint64_t from);
/* Deletes message seq of token's mailbox; answered with (conn, seq). */
int sp_cluster_port_js_delete(struct sp_cluster_port *p, const uint8_t token[SP_KEY_LEN],
			      uint64_t conn, uint64_t seq);
/* Removes every message of token's mailbox (STREAM.PURGE filtered by its
 * subject); answered with (id, n). */
int sp_cluster_port_js_purge(struct sp_cluster_port *p, const uint8_t token[SP_KEY_LEN],
			     uint64_t id, uint64_t n);
/* STORED: tells token's holder (if any) that seq was stored, with body. */
int sp_cluster_port_stored(struct sp_cluster_port *p, const uint8_t token[SP_KEY_LEN],
			   uint64_t seq, const uint8_t *body, size_t len);

/* The fingerprint of a server public key as the cluster records it:
 * BLAKE2b-128 keyed with the label "sealpost-cluster", in lower-case hex
 * (hex: SP_CLUSTER_FP_HEX_LEN + 1 bytes, written). */
void sp_cluster_fingerprint(const uint8_t server_pub[SP_KEY_LEN],
			    char hex[SP_CLUSTER_FP_HEX_LEN + 1]);

#endif
