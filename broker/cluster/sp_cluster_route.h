/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_cluster_route.h: one shard's part of a cluster node (--cluster):
 * presence, cross-node online delivery and takeover across nodes, over the
 * shard's port (sp_cluster.h). Everything here runs on the shard's thread.
 *
 * Presence: while a device's route is on this shard, the port holds a
 * subscription on the device's subject (sp.d.TOKEN, TOKEN a keyed hash of
 * its key: docs/SECURITY.md). When a device proves itself here, a TAKEOVER
 * goes to its subject: a node that holds an older connection of the device
 * ends it with GoAway TAKEOVER, as one shard does today.
 *
 * Online-only sends to a device not connected to this shard: a DELIVER
 * request to its subject. The holder answers DELIVERED, ERR_RECIPIENT_BUSY
 * or ERR_OFFLINE; nobody holding the subject answers "no responders" at
 * once (ERR_OFFLINE). The SendResult waits for that answer without holding
 * up the loop: the result is a placeholder in the iteration's results
 * (status UNSPECIFIED, neither pong nor fanout, seq = the ticket), and the
 * mailbox's sending step hands it here (sp_cluster_route_hold); so does
 * every later result or Pong of the same connection, until the answer
 * comes, so none overtakes another (PROTOCOL.md 6.1). No answer within
 * --cluster-request-timeout, or the NATS connection down: status
 * ERR_CLUSTER_UNAVAILABLE (81, retryable).
 *
 * Ownership: the route state belongs to the daemon (create before the
 * loop runs, destroy after); the port is borrowed for its life.
 */
#ifndef SP_CLUSTER_ROUTE_H
#define SP_CLUSTER_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "sp_cluster.h"
#include "sp_shard_types.h"

struct sp_cluster_route;

/* nslots: the shard's connection slots (cfg->max_conns). 0 or -ENOMEM. */
int sp_cluster_route_create(struct sp_cluster_route **out, struct sp_cluster_port *port,
			    const struct sp_config *cfg, uint32_t nslots);
void sp_cluster_route_destroy(struct sp_cluster_route *r);

/* The loop: arm the inbox read (at start, and at a tick after a failed
 * arm), and its completion (drains the inbox, re-arms). */
void sp_cluster_route_arm(struct sp_shard *sh);
void sp_cluster_route_cqe(struct sp_shard *sh, int res);
/* At each tick: answers that did not come in time. */
void sp_cluster_route_tick(struct sp_shard *sh);

/* c became its device's route on this shard (after any local takeover). */
void sp_cluster_route_up(struct sp_shard *sh, struct sp_conn *c);
/* The device's route left this shard (device borrowed for the call). */
void sp_cluster_route_down(struct sp_shard *sh, const uint8_t device[SP_KEY_LEN]);

/* An online-only Send from c whose recipient has no route here: sent to
 * the cluster, its result queued (a placeholder). SP_CLOSE_NONE, or
 * SP_CLOSE_NOMEM when the result cannot be queued. */
enum sp_close_reason sp_cluster_route_send(struct sp_shard *sh, struct sp_conn *c,
					   const struct sp_frame *f);

/* The mailbox's sending step: true if r (a result of a connection) is taken
 * here, to be sent once the answers before it have come. failed: as for
 * the mailbox (the commit or sync failed). */
bool sp_cluster_route_hold(struct sp_shard *sh, const struct sp_pending_result *r, bool failed);
/* Does a result of c wait here (so that a Pong must queue)? */
bool sp_cluster_route_waiting(const struct sp_shard *sh, const struct sp_conn *c);

/* For the shard's JetStream mailboxes (sp_cluster_mbox.h), which queue
 * their placeholders here too: */
struct sp_cluster_mbox *sp_cluster_route_mbox(struct sp_cluster_route *r);
/* Is there room for another answer to wait for (cluster-inflight-max)? */
bool sp_cluster_route_room(const struct sp_shard *sh);
/* A new ticket (the placeholder's seq), and: its request went out. */
uint64_t sp_cluster_route_ticket(struct sp_shard *sh);
void sp_cluster_route_sent(struct sp_shard *sh);
/* The answer to ticket: its placeholder goes out with st and seq, in its
 * place (nothing if it timed out already). lat: the counter of its time. */
void sp_cluster_route_answered(struct sp_shard *sh, uint64_t ticket, enum sp_status st,
			       uint64_t seq, enum sp_cluster_counter lat);
/* The device's live connection here for a token of ours, or NULL. */
struct sp_conn *sp_cluster_route_holder(struct sp_shard *sh, const uint8_t token[SP_KEY_LEN]);

#endif
