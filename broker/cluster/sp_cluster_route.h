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
 * Online-only sends to a device homed on this shard (sp_node.h) but not
 * connected to it: a DELIVER request to its subject. A sender on another
 * shard of the node hands its Send to the recipient's home shard first
 * (SP_XS_ONLINE), so that a device connected to this node is reached
 * without a round trip through NATS; that shard forwards it to the
 * cluster if the device is not here. The holder answers DELIVERED, ERR_RECIPIENT_BUSY
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

/* An online-only Send (or AnonSend) from c to `to`, homed on this shard
 * but not connected to it: sent to the cluster, its result queued (a
 * placeholder). body borrowed for the call. SP_CLOSE_NONE, or
 * SP_CLOSE_NOMEM when the result cannot be queued. */
enum sp_close_reason sp_cluster_route_send(struct sp_shard *sh, struct sp_conn *c,
					   const uint8_t to[SP_KEY_LEN], uint64_t client_id,
					   const uint8_t *body, size_t len);

/* The same for a sender on shard `from` of this node, whose Send came here
 * as SP_XS_ONLINE (arg: its slot, gen and client id): the answer, or 81
 * when none comes in time, goes back to `from` as SP_XS_RESULT. body
 * borrowed for the call. */
void sp_cluster_route_forward(struct sp_shard *sh, unsigned from, const uint64_t arg[3],
			      const uint8_t to[SP_KEY_LEN], const uint8_t *body, size_t len);

/* The mailbox's sending step: true if r (a result of a connection) is taken
 * here, to be sent once the answers before it have come. failed: as for
 * the mailbox (the commit or sync failed). */
bool sp_cluster_route_hold(struct sp_shard *sh, const struct sp_pending_result *r, bool failed);
/* Does a result of c wait here (so that a Pong must queue)? */
bool sp_cluster_route_waiting(const struct sp_shard *sh, const struct sp_conn *c);

/* For the shard's JetStream mailboxes (sp_cluster_mbox.h), which queue
 * their placeholders here too: */
struct sp_cluster_mbox *sp_cluster_route_mbox(struct sp_cluster_route *r);
/* Is there room for another answer to wait for (cluster-inflight-max, and
 * memory to track it)? */
bool sp_cluster_route_room(const struct sp_shard *sh);
/* A new ticket (the placeholder's seq), and: its request went out (after a
 * true sp_cluster_route_room in the same step: tracked from now, answered
 * 81 if nothing comes within --cluster-request-timeout). */
uint64_t sp_cluster_route_ticket(struct sp_shard *sh);
void sp_cluster_route_sent(struct sp_shard *sh, uint64_t ticket);
/* The answer to ticket: its placeholder goes out with st and seq, in its
 * place (nothing if it timed out already). lat: the counter of its time. */
void sp_cluster_route_answered(struct sp_shard *sh, uint64_t ticket, enum sp_status st,
			       uint64_t seq, enum sp_cluster_counter lat);
/* The device's live connection here for a token of ours, or NULL. */
struct sp_conn *sp_cluster_route_holder(struct sp_shard *sh, const uint8_t token[SP_KEY_LEN]);

#endif
