/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_cluster_mbox.h: one shard's mailboxes in JetStream (--cluster;
 * docs/CLUSTER.md, "Replicated mailboxes"). In cluster mode every durable
 * envelope lives here, not in the node's RocksDB, so that any node serves
 * any device and the loss of one node or one nats-server loses nothing
 * accepted. Everything here runs on the shard's thread; the loop never
 * waits for JetStream (each request is a publish, each answer an inbox
 * item).
 *
 * A durable Send (or AnonSend) is published to the recipient's subject
 * sp.m.P.TOKEN with Nats-Msg-Id = a keyed hash of (sender, recipient,
 * client_id). Its SendResult is a placeholder held by the cluster route
 * (sp_cluster_route.h), like a remote online-only send: ACCEPTED with seq =
 * the stream sequence once JetStream's PubAck says a quorum of replicas
 * stored it; ERR_MAILBOX_FULL when the device's subject is at its quota;
 * ERR_CLUSTER_UNAVAILABLE (81, retryable, nothing kept that the sender must
 * count on) when NATS is down, JetStream has no leader or does not answer
 * within --cluster-request-timeout. After the PubAck the envelope goes to
 * the recipient's live connection, here or (STORED) on another node.
 *
 * A device that connects reads its backlog through the node it reached:
 * one STREAM.MSG.GET to the stream's leader at a time (the first message of
 * its subject from seq on), paced by its outbound queue, then Drained, then
 * live. No JetStream consumer is made per device. STOREDs that arrive while
 * it reads only raise the seq it must read up to, so nothing stored before
 * the end of the read is missed and nothing is sent twice.
 *
 * Acks delete (STREAM.MSG.DELETE) only seqs this connection was sent: the
 * connection keeps them until JetStream confirms each delete, so a delete
 * that fails is sent again and an acked envelope is not read back to it.
 *
 * Ownership: created and destroyed with the route (sp_cluster_route.c).
 */
#ifndef SP_CLUSTER_MBOX_H
#define SP_CLUSTER_MBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "sp_cluster.h"
#include "sp_shard_types.h"

struct sp_cluster_mbox;

/* nslots: the shard's connection slots. 0 or -ENOMEM. */
int sp_cluster_mbox_create(struct sp_cluster_mbox **out, struct sp_cluster_port *port,
			   const struct sp_config *cfg, uint32_t nslots);
void sp_cluster_mbox_destroy(struct sp_cluster_mbox *m);

/* A durable Send of c for device `to` (anon: an AnonSend, no sender budget
 * and no dedup): published, its result queued as a placeholder. to, body
 * borrowed for the call. SP_CLOSE_NONE, or SP_CLOSE_NOMEM. */
enum sp_close_reason sp_cluster_mbox_send(struct sp_shard *sh, struct sp_conn *c,
					  const uint8_t to[SP_KEY_LEN], bool anon,
					  uint64_t client_id, const uint8_t *body, size_t len);

/* c was routed here: its backlog is read from JetStream, then Drained. */
void sp_cluster_mbox_start(struct sp_shard *sh, struct sp_conn *c);
/* c is no longer read for nor delivered to. */
void sp_cluster_mbox_stop(struct sp_shard *sh, struct sp_conn *c);

/* Ack{seqs} of c (f borrowed): SP_CLOSE_ACK_FLOOD past ack_unknown_max acks
 * for seqs it was not sent, else NONE. */
enum sp_close_reason sp_cluster_mbox_ack(struct sp_shard *sh, struct sp_conn *c,
					 const struct sp_frame *f);

/* An envelope JetStream stored (seq) for `to`, homed on this shard (body
 * borrowed): onto its connection here if it reads live, else a STORED to
 * its subject for a node that holds it. */
void sp_cluster_mbox_stored_home(struct sp_shard *sh, const uint8_t to[SP_KEY_LEN], uint64_t seq,
				 const uint8_t *body, size_t len);

/* Asks JetStream to remove every envelope of device's mailbox; the answer
 * goes to sp_account_purged(id, n). 0, or -ENOTCONN / -EIO (not asked). */
int sp_cluster_mbox_purge(struct sp_shard *sh, const uint8_t device[SP_KEY_LEN], uint64_t id,
			  uint64_t n);

/* An inbox item of kind SP_CLUSTER_STORED or SP_CLUSTER_JS (borrowed). */
void sp_cluster_mbox_item(struct sp_shard *sh, const struct sp_cluster_item *it);

/* After a batch of items and at each tick: readers with room read on and
 * GETs unanswered in time are asked again; at a tick also failed deletes
 * are sent again and PubAck waits past twice the timeout forgotten. */
void sp_cluster_mbox_run(struct sp_shard *sh, bool tick);

#endif
