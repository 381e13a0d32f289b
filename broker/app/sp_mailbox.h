/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_mailbox.h: mailbox coordination of one shard: the iteration's store
 * batch, durable envelopes and acks into it, the SendResults after its
 * commit, and the backlog readers.
 *
 * Per routed connection (c->mbox.mode): BACKLOG from routing until the reader
 * has sent every stored envelope (in seq order) and Drained{count}; then
 * LIVE: a durable envelope is stored and delivered in the same iteration
 * with its seq. A LIVE device whose outbound queue is over --sendq-max goes
 * to CATCHUP: its envelopes are stored only and the reader sends them from
 * the first one it missed, as the queue drains (no Drained). While a reader
 * runs, nothing durable is delivered live, so a device never sees seqs out
 * of order. Acks delete entries of the connection's own device only (the
 * mailbox key is the proven static key).
 *
 * Nothing reaches a socket before the commit, so an ACCEPTED or a Deliver
 * never goes out for an envelope that is not stored.
 *
 * Writes, of a connection: mbox, mbox_from, mbox_count, drain; sh->batch,
 * it_entries, it_bytes, rm_entries0, rm_bytes0, results, nresults,
 * results_cap, drain_list, items.
 * Errors: 0 or a negative errno.
 */
#ifndef SP_MAILBOX_H
#define SP_MAILBOX_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "sp_shard_types.h"

int sp_mailbox_init(struct sp_shard *sh);
void sp_mailbox_destroy(struct sp_shard *sh);

/* At the start of the loop: what the mailboxes hold is the gauges' base. */
void sp_mailbox_start(struct sp_shard *sh);

/* c was just routed: its backlog is read from the first seq, after this
 * iteration's commit (so it also sees what this iteration stores). */
void sp_mailbox_start_backlog(struct sp_shard *sh, struct sp_conn *c);

/* c is no longer a reader nor delivered to (it ends, or was taken over). */
void sp_mailbox_stop(struct sp_shard *sh, struct sp_conn *c);

/*
 * A durable Send of c (f: borrowed for the call; its body in the receive
 * buffer) into the recipient's mailbox in this iteration's batch, and onto
 * the recipient's live connection at once if it is LIVE. *durable is set
 * when the status depends on the commit.
 */
enum sp_status sp_mailbox_store(struct sp_shard *sh, struct sp_conn *c, const struct sp_frame *f,
				uint64_t *seq, bool *durable);

/* One copy of a fan-out group: `to` and body borrowed for the call. */
struct sp_mailbox_copy {
	uint8_t to[SP_KEY_LEN];
	uint8_t *body;                  /* the group's own copy (app/sp_fanout.c) */
	size_t len;
};

/*
 * A fan-out group's n copies (n <= SP_FANOUT_COPIES_MAX), already checked
 * against the account's list and the sender's budgets, stored all or none
 * (PROTOCOL.md 16.3): the iteration's batch so far is committed first (its
 * SendResults written), then the copies are one batch of their own,
 * committed now, or aborted at the first copy the store refuses. Each copy
 * is deduplicated as a Send of c with client_id = group_id. After the
 * commit, each is delivered to its device's live connection (or a push
 * goes out). Returns ACCEPTED, ERR_MAILBOX_FULL or ERR_INTERNAL; on
 * ACCEPTED the FanoutResult{group_id, ACCEPTED, version} is the mailbox's
 * to send, as a durable result (after the WAL sync with --fsync always),
 * and the caller sends none.
 */
enum sp_status sp_mailbox_store_group(struct sp_shard *sh, struct sp_conn *c, uint64_t group_id,
				      uint64_t version, const struct sp_mailbox_copy *copies,
				      size_t n);

/* Writes one queued result r now (a SendResult, Pong or FanoutResult;
 * failed: its commit or sync failed), bypassing the cluster's hold: for
 * broker/cluster/sp_cluster_route.c, which held it. r borrowed. */
void sp_mailbox_send_result(struct sp_shard *sh, const struct sp_pending_result *r, bool failed);

/* The results array grown (sp_mailbox_result's slow path): 0 or -ENOMEM. */
int sp_mailbox_results_grow(struct sp_shard *sh);

/* Queues a SendResult to be written after the commit (in arrival order).
 * -ENOMEM if it cannot be queued. Once per envelope: inline, the growth
 * out of line. */
static inline int sp_mailbox_result(struct sp_shard *sh, const struct sp_conn *c,
				    uint64_t client_id, enum sp_status st, uint64_t seq,
				    bool durable)
{
	struct sp_pending_result *r;

	if (sh->nresults == sh->results_cap && sp_mailbox_results_grow(sh))
		return -ENOMEM;
	r = &sh->results[sh->nresults++];
	r->slot = c->tab.slot;
	r->gen = c->tab.gen;
	r->client_id = client_id;
	r->seq = seq;
	r->status = (uint8_t)st;
	r->durable = durable;
	r->pong = false;
	r->fanout = false;
	r->remote = false;
	return 0;
}

/* A SendResult whose status another shard decides (an online-only Send
 * for a device homed there): queued like sp_mailbox_result, then held
 * until sp_mailbox_remote_result fills it in; c's later results and Pongs
 * wait behind it. -ENOMEM if it cannot be queued. */
int sp_mailbox_result_remote(struct sp_shard *sh, const struct sp_conn *c, uint64_t client_id);

/* An online-only Send (or AnonSend) for device `to`, homed on another
 * shard: its home delivers it or not (SP_XS_ONLINE) and says which; c's
 * SendResult waits in its place meanwhile. body copied. NONE or NOMEM. */
enum sp_close_reason sp_mailbox_online_elsewhere(struct sp_shard *sh, struct sp_conn *c,
						 const uint8_t to[SP_KEY_LEN], uint64_t client_id,
						 const uint8_t *body, size_t len);

/* The status of c's (slot, gen) remote result for client_id, decided by
 * another shard: it goes out in its place among c's results. */
void sp_mailbox_remote_result(struct sp_shard *sh, uint32_t slot, uint32_t gen,
			      uint64_t client_id, enum sp_status st, uint64_t seq);

/* An envelope another shard stored and committed for device `to`, homed
 * here: onto its live connection in seq order, or a push wake-up (body
 * borrowed for the call). */
void sp_mailbox_remote_stored(struct sp_shard *sh, const uint8_t *to, uint64_t seq,
			      const uint8_t *body, size_t len);

/* Ping{id}: its Pong must not overtake the SendResults of Sends read before
 * it (PROTOCOL.md 6.4): written at once when none are waiting, else queued
 * behind them. SP_CLOSE_NONE or why c must end. */
enum sp_close_reason sp_mailbox_pong(struct sp_shard *sh, struct sp_conn *c, uint64_t id);

/*
 * Ack{seqs}: deletes entries of c's own device only; unknown seqs are
 * ignored. Acks beyond what the device can hold (its mailbox quota plus
 * what this connection was sent) are dropped without a store lookup.
 * Returns SP_CLOSE_ACK_FLOOD once the connection sent more than
 * ack_unknown_max acks for nothing, else NONE.
 */
enum sp_close_reason sp_mailbox_ack(struct sp_shard *sh, struct sp_conn *c,
				    const struct sp_frame *f);

/*
 * The admin socket's purge: every committed entry of device's mailbox into
 * this iteration's batch as deletions (*count, *bytes: what goes); the
 * answer must wait for the commit. -ENOENT without a store, -EIO if the
 * store refuses writes. device borrowed for the call.
 */
int sp_mailbox_purge(struct sp_shard *sh, const uint8_t device[SP_KEY_LEN], uint64_t *count,
		     uint64_t *bytes);

/*
 * The mailboxes of devices (n keys, borrowed) purged and committed now,
 * with everything else this iteration's batch holds (whose SendResults go
 * out as at the end of an iteration): for a device list that removes them,
 * which is written after this. The list write is synced and RocksDB's WAL
 * is one ordered log, so after a crash a removal is never on disk without
 * its purge. 0; -ENOENT without a store; -EIO if a purge or the commit
 * failed (then the list must not be written).
 */
int sp_mailbox_purge_now(struct sp_shard *sh, const uint8_t (*devices)[SP_KEY_LEN], size_t n);

/* Housekeeping at a tick: --fsync batch's periodic fsync and a bounded step
 * of the expiry sweep (committed with the iteration's batch). */
void sp_mailbox_tick(struct sp_shard *sh);

/* After the iteration's completions: the commit (one WriteBatch, at most
 * one fsync), then the SendResults (ERR_INTERNAL for durable envelopes if
 * it failed), then a bounded number of backlog readers. */
void sp_mailbox_after_completions(struct sp_shard *sh);

/* The store's sync thread ended a WAL sync (its eventfd was read): the
 * held results it covers are sent, oldest first; after a failed sync,
 * all of them (durable ones as ERR_INTERNAL). */
void sp_mailbox_synced(struct sp_shard *sh);
/* The same, told by the shard that read the eventfd (SP_XS_SYNCED). */
void sp_mailbox_synced_peer(struct sp_shard *sh);

#endif
