/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_router.c: frame dispatch, routing and takeover (sp_router.h).
 */
#include "sp_router.h"

#include <stdlib.h>
#include <string.h>

#include "sp_account.h"
#include "sp_anon.h"
#include "sp_cluster_mbox.h"
#include "sp_cluster_route.h"
#include "sp_conn_table.h"
#include "sp_deliver.h"
#include "sp_fanout.h"
#include "sp_lifecycle.h"
#include "sp_logserve.h"
#include "sp_mailbox.h"
#include "sp_prekeys.h"
#include "sp_push.h"
#include "sp_registration.h"
#include "sp_route.h"
#include "sp_source.h"
#include "sp_timers.h"

static enum sp_close_reason on_send(struct sp_shard *sh, struct sp_conn *c,
				    const struct sp_frame *f)
{
	struct sp_conn *rc;
	enum sp_status st;
	uint64_t seq = 0;
	bool durable = false;

	if (!f->u.send.to_ok || !sp_noise_key_valid_public(f->u.send.to))
		st = SP_STATUS_ERR_BAD_RECIPIENT;
	else if (f->body_len > sh->cfg->max_envelope)
		st = SP_STATUS_ERR_TOO_LARGE;
	else if ((f->u.send.flags & SP_SEND_ONLINE_ONLY) &&
		 sp_shard_home(sh, f->u.send.to) != sh->id)
		return sp_mailbox_online_elsewhere(sh, c, f->u.send.to, f->u.send.client_id,
						   f->body, f->body_len);
	else if (f->u.send.flags & SP_SEND_ONLINE_ONLY) {
		/* Never stored, not ordered with stored envelopes: straight to a
		 * live connection, whatever its mailbox mode; in cluster mode one
		 * on another node answers for itself (its result queued there). */
		rc = sp_deliver_recipient(sh, f->u.send.to);
		if (!rc && sh->cluster)
			return sp_cluster_route_send(sh, c, f->u.send.to, f->u.send.client_id,
						     f->body, f->body_len);
		st = rc ? sp_deliver_online(sh, rc, f) : SP_STATUS_ERR_OFFLINE;
	} else if (sh->cluster) {
		/* Cluster: the mailbox is the device's subject in JetStream. */
		return sp_cluster_mbox_send(sh, c, f->u.send.to, false, f->u.send.client_id, f->body,
					    f->body_len);
	} else
		st = sp_mailbox_store(sh, c, f, &seq, &durable);
	if (st != SP_STATUS_ACCEPTED && st != SP_STATUS_DELIVERED)
		seq = 0;
	if (sp_mailbox_result(sh, c, f->u.send.client_id, st, seq, durable))
		return SP_CLOSE_NOMEM;
	return SP_CLOSE_NONE;
}

/* PushRegister / PushRemove: stored (or refused) at once, answered with a
 * PushResult in this iteration's output (PROTOCOL.md 12). */
static enum sp_close_reason on_push(struct sp_shard *sh, struct sp_conn *c,
				    const struct sp_frame *f)
{
	struct sp_frame res;

	memset(&res, 0, sizeof(res));
	res.type = SP_FRAME_PUSH_RESULT;
	res.u.push_result.id = f->type == SP_FRAME_PUSH_REGISTER ? f->u.push_register.id
								 : f->u.push_remove.id;
	sp_shard_store(sh);     /* the push state is shared by the shards: under the store lock */
	res.u.push_result.status = sp_push_frame(sh->push, c->s.peer, f, sh->metrics);
	return sp_deliver_reply(sh, c, &res);
}

/* An anonymous (NK) connection: AnonSend and liveness, nothing else (it
 * has no device: nothing to receive, ack, publish or register). */
static enum sp_close_reason anon_frame(struct sp_shard *sh, struct sp_conn *c,
				       const struct sp_frame *f)
{
	switch (f->type) {
	case SP_FRAME_ANON_SEND:
		return sp_anon_send(sh, c, f);
	case SP_FRAME_PREKEY_FETCH:
		/* who fetches stays unknown: only the source address is counted */
		return sp_prekeys_fetch(sh, c, f);
	case SP_FRAME_PING:
		return sp_mailbox_pong(sh, c, f->u.ping.id);
	case SP_FRAME_PONG:
		return SP_CLOSE_NONE;
	case SP_FRAME_SEND:
	case SP_FRAME_ACK:
	case SP_FRAME_LIST_PUT:
	case SP_FRAME_LIST_FETCH:
	case SP_FRAME_LOG_FETCH:
	case SP_FRAME_PUSH_REGISTER:
	case SP_FRAME_PUSH_REMOVE:
	case SP_FRAME_SET_ACCESS:
	case SP_FRAME_FANOUT_BEGIN:
	case SP_FRAME_FANOUT_COPY:
	case SP_FRAME_PREKEY_UPLOAD:
		return SP_CLOSE_ANON_FORBIDDEN;
	default:
		return SP_CLOSE_PROTOCOL;
	}
}

enum sp_close_reason sp_router_frame(void *ctx, struct sp_conn *c, const struct sp_frame *f)
{
	struct sp_shard *sh = ctx;

	if (!c->s.has_peer)
		return anon_frame(sh, c, f);
	/* A fan-out group admits nothing but its copies (PROTOCOL.md 16.2). */
	if (c->fan.g && f->type != SP_FRAME_FANOUT_COPY) {
		enum sp_close_reason why = sp_fanout_other(sh, c);

		if (why)
			return why;
	}
	switch (f->type) {
	case SP_FRAME_FANOUT_BEGIN:
		return sp_fanout_begin(sh, c, f);
	case SP_FRAME_FANOUT_COPY:
		return sp_fanout_copy(sh, c, f);
	case SP_FRAME_SET_ACCESS:
		return sp_anon_set_access(sh, c, f);
	case SP_FRAME_ANON_SEND:
		/* Anonymity is the connection's, not the frame's: refused, so a
		 * client cannot believe it sent anonymously when it did not. */
		if (sp_mailbox_result(sh, c, f->u.anon_send.client_id, SP_STATUS_ERR_NOT_ANONYMOUS, 0,
				      false))
			return SP_CLOSE_NOMEM;
		return SP_CLOSE_NONE;
	case SP_FRAME_SEND:
		return on_send(sh, c, f);
	case SP_FRAME_PUSH_REGISTER:
	case SP_FRAME_PUSH_REMOVE:
		return on_push(sh, c, f);
	case SP_FRAME_PING:
		return sp_mailbox_pong(sh, c, f->u.ping.id);
	case SP_FRAME_PONG:
		return SP_CLOSE_NONE;   /* answers a Ping of ours */
	case SP_FRAME_ACK:
		return sp_mailbox_ack(sh, c, f);
	case SP_FRAME_LIST_PUT:
		return sp_account_put(sh, c, f);
	case SP_FRAME_LIST_FETCH:
		return sp_account_fetch(sh, c, f);
	case SP_FRAME_LOG_FETCH:
		return sp_logserve_fetch(sh, c, f);
	case SP_FRAME_PREKEY_UPLOAD:
		return sp_prekeys_upload(sh, c, f);
	case SP_FRAME_PREKEY_FETCH:
		return sp_prekeys_fetch(sh, c, f);
	default:
		/* SendResult, Deliver, Drained, GoAway travel broker -> client only. */
		return SP_CLOSE_PROTOCOL;
	}
}

static void route_drop(struct sp_shard *sh, struct sp_conn *c)
{
	if (!c->route.routed)
		return;
	/* With the expected handle: after a takeover the route belongs to the
	 * new connection and this is a no-op (-ESTALE). */
	if (sp_route_remove(sh->routes, c->s.peer, sp_conn_handle(sh, c)) == 0)
		sp_cluster_route_down(sh, c->s.peer);   /* cluster: no more on this node */
	c->route.routed = false;
}

void sp_router_detach(struct sp_shard *sh, struct sp_conn *c)
{
	route_drop(sh, c);
	sp_fanout_drop(sh, c);
	sp_mailbox_stop(sh, c);
}

/* Makes c the device's route; an older connection of the device is taken over. */
static enum sp_close_reason route_device(struct sp_shard *sh, struct sp_conn *c)
{
	struct sp_conn *old;
	uint64_t prev;
	int ret;

	ret = sp_route_insert(sh->routes, c->s.peer, sp_conn_handle(sh, c), &prev);
	if (ret < 0)
		return SP_CLOSE_NOMEM;
	c->route.routed = true;
	if (ret == 1 && (old = sp_conn_at_handle(sh, prev)) && old != c) {
		/* The device connected again: the newest proven connection wins.
		 * The old one's GoAway is written at flush, after the SendResults of
		 * its last Sends; whatever it did not ack is in the new one's
		 * backlog. */
		old->route.routed = false;    /* the route is the new one's now */
		sp_mailbox_stop(sh, old);
		if (old->s.state == SP_SESSION_ESTABLISHED)
			sp_life_end_later(sh, old, SP_CLOSE_TAKEOVER);
		else
			sp_life_end(sh, old, SP_CLOSE_TAKEOVER);
	}
	/* Cluster: this node holds the device now; an older connection of it
	 * on another node goes. */
	sp_cluster_route_up(sh, c);
	/* Connected: the next wake-up after it leaves is not coalesced away. */
	if (sh->push) {
		sp_shard_store(sh);     /* shared push state: under the store lock */
		sp_push_connected(sh->push, c->s.peer);
	}
	/* The backlog first (the reader runs after this iteration's commit, so it
	 * also sees what this iteration stores for the device), then live. */
	sp_mailbox_start_backlog(sh, c);
	sp_prekeys_connected(sh, c);
	return SP_CLOSE_NONE;
}

enum sp_close_reason sp_router_established(void *ctx, struct sp_conn *c)
{
	struct sp_shard *sh = ctx;

	SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_PEER_DEBUG], sh->now_ns, SP_LOG_DEBUG,
		       "handshake complete", SP_KV_UINT("conn", c->tab.slot),
		       SP_KV_STR("pattern", c->s.pattern == SP_PREAMBLE_PATTERN_IK   ? "IK"
					    : c->s.pattern == SP_PREAMBLE_PATTERN_NK ? "NK"
										     : "XX"));
	/* An IK connection is not routed until it is proven by its first
	 * authenticated transport message (sp_router_proven): its message 1 may
	 * be a replay, and a replayer that got the route, even of an offline
	 * device, would take envelopes it cannot read (or push the live device
	 * out, again and again). Until then it stays on the handshake deadline.
	 * XX is proven by message 3. */
	if (!c->s.proven)
		return SP_CLOSE_NONE;
	return sp_router_proven(ctx, c);
}

enum sp_close_reason sp_router_proven(void *ctx, struct sp_conn *c)
{
	struct sp_shard *sh = ctx;
	enum sp_close_reason refused = c->s.has_peer ? sp_registration_proven(c) : SP_CLOSE_NONE;

	if (refused)
		return refused;

	/* A handshake counts as successful once the peer is proven: an IK
	 * message 1 anyone replays gets its message 2 too, and counting that
	 * as a success would hide a replay flood from the failure alert. An
	 * IK connection that ends unproven counts as failed (sp_lifecycle.c).
	 * Still on the handshake deadline here: the duration runs to proof. */
	if (!c->route.routed) {
		sp_metrics_handshake(sh->metrics, sp_life_metrics_pattern(c),
				     SP_METRICS_OUTCOME_OK, sp_timers_handshake_complete(sh, c));
		sp_metrics_tr_handshake(sh->metrics, sp_life_metrics_transport(c),
					sp_life_metrics_pattern(c), SP_METRICS_OUTCOME_OK);
		sp_metrics_handshake_cipher(sh->metrics, c->s.aead);
	}
	sp_timers_proven(sh, c);
	sp_source_proven(sh, c);
	/* Anonymous (NK): proven to be live, but no device: never routed,
	 * no mailbox, no push state. */
	if (c->route.routed || !c->s.has_peer)
		return SP_CLOSE_NONE;
	return route_device(sh, c);
}
