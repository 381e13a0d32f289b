/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_mailbox.c: the iteration's store batch, results after the commit and
 * the backlog readers (sp_mailbox.h).
 */
#include "sp_mailbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sp_account.h"
#include "sp_cluster_mbox.h"
#include "sp_cluster_route.h"
#include "sp_conn_table.h"
#include "sp_deliver.h"
#include "sp_fanout.h"
#include "sp_lifecycle.h"
#include "sp_push.h"
#include "sp_sendlim.h"
#include "sp_anon.h"
#include "sp_prekeys.h"
#include "sp_store.h"

enum {
	DRAIN_CONNS_PER_ITER = 64,      /* backlog readers served per iteration, at most */
	/* Results held for WAL syncs, at most (~48 bytes each): beyond, the
	 * loop syncs itself once (a disk that stalls for seconds must not
	 * grow memory without bound). */
	HELD_MAX = 65536,
};

/* The connection table, as the drain list's array (a list of slots). */
static struct sp_iarr drain_arr(const struct sp_shard *sh)
{
	return (struct sp_iarr){ sh->conns, sizeof(struct sp_conn),
				 offsetof(struct sp_conn, mbox.drain) };
}

static void drain_del(struct sp_shard *sh, struct sp_conn *c)
{
	struct sp_iarr a = drain_arr(sh);

	sp_ilist_del(&sh->drain_list, &a, c->tab.slot);
}

static void drain_add(struct sp_shard *sh, struct sp_conn *c)
{
	struct sp_iarr a = drain_arr(sh);

	sp_ilist_add_tail(&sh->drain_list, &a, c->tab.slot);
}

/* The first connection on the drain list, or NULL. */
static struct sp_conn *drain_first(struct sp_shard *sh)
{
	uint32_t slot = sp_ilist_first(&sh->drain_list);

	return slot == SP_ILIST_NONE ? NULL : &sh->conns[slot];
}

int sp_mailbox_init(struct sp_shard *sh)
{
	struct sp_sendlim_config lc = {
		.rate = sh->cfg->sender_rate,
		.burst = sh->cfg->sender_burst,
		.byte_rate = sh->cfg->sender_byte_rate,
		.byte_burst = sh->cfg->sender_byte_burst,
		.max_senders = sh->cfg->sender_table_max ? sh->cfg->sender_table_max : 1,
	};

	sp_ilist_init(&sh->drain_list);
	sh->items = calloc(sh->cfg->backlog_chunk ? sh->cfg->backlog_chunk : 1, sizeof(*sh->items));
	if (!sh->items)
		return -ENOMEM;
	if (sp_sendlim_create(&sh->sendlim, &lc))
		return -ENOMEM;
	sp_fanout_init(sh);
	sp_account_init(sh);
	if (sp_prekeys_init(sh))
		return -ENOMEM;
	return sp_anon_init(sh);
}

void sp_mailbox_destroy(struct sp_shard *sh)
{
	sp_sendlim_destroy(sh->sendlim);
	sh->sendlim = NULL;
	sp_anon_destroy(sh);
	sp_account_destroy(sh);
	sp_prekeys_destroy(sh);
	free(sh->items);
	free(sh->results);
	free(sh->held);
	sh->items = NULL;
	sh->results = NULL;
	sh->held = NULL;
	sh->nheld = sh->held_cap = 0;
}

void sp_mailbox_start(struct sp_shard *sh)
{
	uint64_t entries, bytes;

	if (!sp_shard_store(sh) || sh->id != 0)
		return;
	/* What the mailboxes held at start: the gauges' base (one store; with
	 * shards, shard 0 counts it, the others add their deltas). */
	if (sp_store_totals(sp_shard_store(sh), &entries, &bytes) == 0)
		sp_metrics_mailbox_add(sh->metrics, (int64_t)entries, (int64_t)bytes);
}

/* Starts (or restarts) the backlog reader of c at seq from. */
static void reader_start(struct sp_shard *sh, struct sp_conn *c, enum sp_mbox_mode mode,
			 uint64_t from)
{
	c->mbox.mode = (uint8_t)mode;
	c->mbox.from = from;
	if (!sp_ilink_linked(&c->mbox.drain))
		drain_add(sh, c);
}

void sp_mailbox_start_backlog(struct sp_shard *sh, struct sp_conn *c)
{
	c->mbox.count = 0;
	c->mbox.acks_over = 0;
	c->mbox.acks_nothing = 0;
	c->mbox.held_ticket = 0;        /* a slot's previous connection's, if any */
	if (sh->cluster) {
		/* Cluster: the backlog is in JetStream; no local reader. */
		c->mbox.mode = SP_MBOX_NONE;
		sp_cluster_mbox_start(sh, c);
		return;
	}
	reader_start(sh, c, SP_MBOX_BACKLOG, 0);
}

void sp_mailbox_stop(struct sp_shard *sh, struct sp_conn *c)
{
	if (sh->cluster)
		sp_cluster_mbox_stop(sh, c);
	drain_del(sh, c);
	c->mbox.mode = SP_MBOX_NONE;
	/* Its results still held stay in the list, named by its slot and
	 * generation: the slot's next connection starts from zero. */
	c->mbox.nheld = c->mbox.remote_waits = 0;
}

/* Entries and bytes the store has removed (acks, expiry, purges) since it opened. */
static void removed_so_far(struct sp_shard *sh, uint64_t *entries, uint64_t *bytes)
{
	struct sp_store_stats ss;

	sp_store_get_stats(sp_shard_store(sh), &ss);
	*entries = ss.acked + ss.expired + ss.purged;
	*bytes = ss.acked_bytes + ss.expired_bytes + ss.purged_bytes;
}

/* The iteration's store batch, begun on first use; NULL if there is no store
 * or it refuses writes (then the caller answers ERR_INTERNAL). */
static struct sp_store_batch *batch(struct sp_shard *sh)
{
	int ret;

	if (sh->batch || !sp_shard_store(sh))
		return sh->batch;
	ret = sp_store_batch_begin(sp_shard_store(sh), sh->wall_ms, &sh->batch);
	if (ret == 0) {
		removed_so_far(sh, &sh->rm_entries0, &sh->rm_bytes0);
	} else {
		sh->batch = NULL;
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "mailbox store refuses writes", SP_KV_STR("error", strerror(-ret)),
			       SP_KV_STR("detail", sp_store_errmsg(sp_shard_store(sh))));
	}
	return sh->batch;
}

/* The status of an envelope the store refused (ret < 0 from
 * sp_store_enqueue), with its metrics and logs. */
static enum sp_status enqueue_refused(struct sp_shard *sh, int ret)
{
	if (ret == -EDQUOT)
		return SP_STATUS_ERR_MAILBOX_FULL;
	if (ret == -EXFULL) {
		/* This sender's share of the mailbox: others may still send. */
		sp_metrics_share_full(sh->metrics);
		return SP_STATUS_ERR_MAILBOX_FULL;
	}
	if (ret == -ENOSPC) {
		/* The store's space bounds (store-max-bytes, store-min-free):
		 * refused before the disk fills, so acks and restarts work. */
		sp_metrics_store_full(sh->metrics);
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_WARN,
			       "mailbox store at its space limit: durable sends refused",
			       SP_KV_STR("detail", "store-max-bytes or store-min-free"));
		return SP_STATUS_ERR_MAILBOX_FULL;
	}
	SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
		       "mailbox write failed", SP_KV_STR("error", strerror(-ret)),
		       SP_KV_STR("detail", sp_store_errmsg(sp_shard_store(sh))));
	return SP_STATUS_ERR_INTERNAL;
}

/* Whether rc's mailbox holds a committed envelope from its next seq
 * (mbox.from) up to below seq: one the other shard's notice of which is
 * still on its way. Seqs of a device are not contiguous (a mailbox emptied
 * and made anew starts at the store's high-water mark), so a gap alone
 * says nothing; one bounded read does. On a read error: yes (the reader
 * then reads, and fails as it would). */
static bool earlier_stored(struct sp_shard *sh, struct sp_conn *rc, uint64_t seq)
{
	struct sp_store_read_result res;
	uint64_t t0 = sp_shard_mono_ns();
	int ret;

	ret = sp_store_read(sp_shard_store(sh), rc->s.peer, rc->mbox.from, sh->wall_ms, 1, 1,
			    sh->items, &res);
	sp_shard_store_timed(sh, SP_METRICS_STORE_READ, t0);
	return ret < 0 || (res.count && sh->items[0].seq < seq);
}

/* A stored envelope (seq) onto rc, live. Alone, the shard writes a
 * device's envelopes in seq order. With shards, other shards' envelopes
 * for it arrive after their commits (SP_XS_STORED), so it goes in seq
 * order by rc's next seq (mbox.from): one already sent by the reader is
 * dropped, one past a gap waits for the reader, which reads the store (all
 * of it committed by then) from the gap on. body: borrowed for the call. */
static void live_stored(struct sp_shard *sh, struct sp_conn *rc, uint64_t seq,
			const uint8_t *body, size_t len)
{
	if (sh->node && seq < rc->mbox.from)
		return;
	if (sh->node && seq > rc->mbox.from && earlier_stored(sh, rc, seq)) {
		reader_start(sh, rc, SP_MBOX_CATCHUP, rc->mbox.from);
		return;
	}
	/* A full queue: the store keeps it, the reader sends it (and
	 * whatever follows) once the queue has room, in order. */
	if (sp_session_tx_queued(&rc->s) > sh->cfg->sendq_max) {
		reader_start(sh, rc, SP_MBOX_CATCHUP, seq);
	} else if (sp_deliver_frame(sh, rc, seq, body, len) == 0) {
		rc->mbox.acks_over--;
		if (sh->node)
			rc->mbox.from = seq + 1;
		sp_deliver_count_live(sh);
	}
}

/* A stored envelope of device `to`, homed on this shard, onto its live
 * connection, or a push wake-up if it has none. to, body: borrowed. */
static void deliver_home(struct sp_shard *sh, const uint8_t *to, uint64_t seq,
			 const uint8_t *body, size_t len)
{
	struct sp_conn *rc = sp_deliver_recipient(sh, to);

	if (!rc && sh->push) {
		/* Not connected: a wake-up, unless one went out within
		 * push-coalesce (the table lookup is all it costs here). The
		 * push state is shared by the shards: under the store lock. */
		sp_shard_store(sh);
		sp_push_mail(sh->push, to, sh->now_ns, sh->metrics);
	} else if (rc && rc->mbox.mode == SP_MBOX_LIVE) {
		live_stored(sh, rc, seq, body, len);
	}
}

/* Posts the stored envelopes for other shards' devices: their batch is
 * committed (ok) or was not (dropped: nothing was stored). */
static void xs_stored_flush(struct sp_shard *sh, bool ok)
{
	struct sp_inbox_msg *m = sh->xs_stored, *next;

	sh->xs_stored = NULL;
	sh->xs_stored_tail = &sh->xs_stored;
	for (; m; m = next) {
		next = m->next;
		if (ok)
			sp_shard_post(sh, sp_node_home(sh->node, m->device), m);
		else
			sp_inbox_msg_free(m);
	}
}

/* A stored envelope (seq) of device `to`: onto its live connection if it
 * is homed here; else to its home shard, after the commit (at once if the
 * batch is committed already: a fan-out group's copies). */
static void deliver_stored(struct sp_shard *sh, const uint8_t *to, uint64_t seq,
			   const uint8_t *body, size_t len)
{
	struct sp_inbox_msg *m;

	if (!sh->node || sp_node_home(sh->node, to) == sh->id) {
		deliver_home(sh, to, seq, body, len);
		return;
	}
	m = sp_inbox_msg_new(SP_XS_STORED, len);
	if (!m)
		return;         /* stored: its device reads it from the mailbox */
	memcpy(m->device, to, SP_KEY_LEN);
	m->arg[0] = seq;
	memcpy(m->data, body, len);
	if (!sh->xs_stored_tail)
		sh->xs_stored_tail = &sh->xs_stored;
	*sh->xs_stored_tail = m;
	sh->xs_stored_tail = &m->next;
	m->next = NULL;
	if (!sh->batch)
		xs_stored_flush(sh, true);
}

void sp_mailbox_remote_stored(struct sp_shard *sh, const uint8_t *to, uint64_t seq,
			      const uint8_t *body, size_t len)
{
	/* Cluster: stored in JetStream by another shard of this node. */
	if (sh->cluster) {
		sp_cluster_mbox_stored_home(sh, to, seq, body, len);
		return;
	}
	deliver_home(sh, to, seq, body, len);
}

static int commit(struct sp_shard *sh);
static void answer_iteration(struct sp_shard *sh, int commit_ret);
static void sync_here(struct sp_shard *sh, int commit_ret);
static void fanout_reply(struct sp_shard *sh, struct sp_conn *c, uint64_t id, enum sp_status st,
			 uint64_t version);

/* All anonymous senders of a mailbox are one sender to its share and hold
 * one share together (sp_store.h "Shares"); they are never deduplicated. */
static const uint8_t anon_sender[SP_KEY_LEN];

enum sp_status sp_mailbox_store(struct sp_shard *sh, struct sp_conn *c, const struct sp_frame *f,
				uint64_t *seq, bool *durable)
{
	bool anon = !c->s.has_peer;
	struct sp_store_envelope env = {
		.recipient = f->u.send.to,
		.sender = anon ? anon_sender : c->s.peer,
		.client_id = anon ? 0 : f->u.send.client_id,
		.body = f->body,
		.body_len = f->body_len,
	};
	struct sp_store_batch *b = batch(sh);
	uint64_t t0;
	int ret;

	if (!b)
		return SP_STATUS_ERR_INTERNAL;
	/* The sender's budgets first: a refused Send costs no store lookup.
	 * Retries pay too (each costs a dedup lookup). */
	if (!anon && sp_sendlim_take(sh->sendlim, c->s.peer, f->body_len, sh->wall_ms) < 0)
		return SP_STATUS_ERR_RATE_LIMITED;
	t0 = sp_shard_mono_ns();
	ret = sp_store_enqueue(b, &env, seq);
	sp_shard_store_timed(sh, SP_METRICS_STORE_ENQUEUE, t0);
	if (ret == SP_STORE_DUPLICATE) {
		/* Stored (or acked) already: the original seq, no second copy and
		 * no second delivery. Its record may be in this very batch, so the
		 * answer too waits for the commit. */
		*durable = true;
		return SP_STATUS_ACCEPTED;
	}
	if (ret < 0) {
		*seq = 0;
		return enqueue_refused(sh, ret);
	}
	*durable = true;
	sh->it_entries++;
	sh->it_bytes += (int64_t)f->body_len;
	deliver_stored(sh, f->u.send.to, *seq, f->body, f->body_len);
	return SP_STATUS_ACCEPTED;
}

enum sp_status sp_mailbox_store_group(struct sp_shard *sh, struct sp_conn *c, uint64_t group_id,
				      uint64_t version, const struct sp_mailbox_copy *copies,
				      size_t n)
{
	uint64_t seqs[SP_FANOUT_COPIES_MAX];
	bool dup[SP_FANOUT_COPIES_MAX];
	enum sp_status st = SP_STATUS_ACCEPTED;
	struct sp_store_batch *b;
	int ret;

	if (!sp_shard_store(sh) || n > SP_FANOUT_COPIES_MAX)
		return SP_STATUS_ERR_INTERNAL;
	/* What earlier frames stored is written first, alone: the group is a
	 * batch of its own, so refusing it (an abort) takes nothing else
	 * with it. Their results go out as at the end of an iteration: at
	 * once, or held behind their WAL sync (--fsync always). */
	answer_iteration(sh, commit(sh));
	if (!(b = batch(sh)))
		return SP_STATUS_ERR_INTERNAL;
	for (size_t i = 0; i < n && st == SP_STATUS_ACCEPTED; i++) {
		struct sp_store_envelope env = {
			.recipient = copies[i].to,
			.sender = c->s.peer,
			.client_id = group_id,  /* a retried group is deduplicated per copy */
			.body = copies[i].body,
			.body_len = copies[i].len,
		};

		ret = sp_store_enqueue(b, &env, &seqs[i]);
		dup[i] = ret == SP_STORE_DUPLICATE;
		if (ret < 0) {
			st = enqueue_refused(sh, ret);
		} else if (!dup[i]) {
			sh->it_entries++;
			sh->it_bytes += (int64_t)copies[i].len;
		}
	}
	if (st != SP_STATUS_ACCEPTED) {
		/* All or none: the copies already in the batch go with it. */
		ret = sp_store_batch_abort(b);
		sh->batch = NULL;
		if (sh->xs_stored)
			xs_stored_flush(sh, false);
		sh->it_entries = sh->it_bytes = 0;
		if (ret < 0)
			SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
				       "mailbox abort failed", SP_KV_STR("error", strerror(-ret)),
				       SP_KV_STR("detail", sp_store_errmsg(sp_shard_store(sh))));
		return st;
	}
	if (commit(sh) < 0)
		return SP_STATUS_ERR_INTERNAL;
	/* The FanoutResult is a durable result like a Send's: with --fsync
	 * always it waits for the group's WAL sync (held, in its
	 * connection's order), so ACCEPTED means on disk. */
	if (sp_mailbox_result(sh, c, group_id, SP_STATUS_ACCEPTED, version, true)) {
		/* No room to queue it: the WAL synced here, everything answered. */
		sync_here(sh, 0);
		fanout_reply(sh, c, group_id, SP_STATUS_ACCEPTED, version);
	} else {
		sh->results[sh->nresults - 1].fanout = true;
		answer_iteration(sh, 0);
	}
	/* Written: now onto the recipients' connections, like any stored
	 * envelope (a deduplicated copy went out the first time). */
	for (size_t i = 0; i < n; i++)
		if (!dup[i])
			deliver_stored(sh, copies[i].to, seqs[i], copies[i].body, copies[i].len);
	return SP_STATUS_ACCEPTED;
}

int sp_mailbox_results_grow(struct sp_shard *sh)
{
	size_t ncap = sh->results_cap ? sh->results_cap * 2 : 256;
	struct sp_pending_result *n = realloc(sh->results, ncap * sizeof(*n));

	if (!n)
		return -ENOMEM;
	sh->results = n;
	sh->results_cap = ncap;
	return 0;
}

enum sp_close_reason sp_mailbox_pong(struct sp_shard *sh, struct sp_conn *c, uint64_t id)
{
	struct sp_frame pong;

	if (sh->nresults == 0 && !c->mbox.nheld && !sp_cluster_route_waiting(sh, c)) {
		/* Nothing waits for a commit or sync: no result can be overtaken. */
		memset(&pong, 0, sizeof(pong));
		pong.type = SP_FRAME_PONG;
		pong.u.ping.id = id;
		return sp_deliver_reply(sh, c, &pong);
	}
	if (sp_mailbox_result(sh, c, id, SP_STATUS_UNSPECIFIED, 0, false))
		return SP_CLOSE_NOMEM;
	sh->results[sh->nresults - 1].pong = true;
	return SP_CLOSE_NONE;
}

/*
 * Whether an ack can be for something, decided without the store: seq 0 is
 * never stored, and a connection cannot have more envelopes to ack than
 * its device's mailbox holds plus what it was sent since it connected.
 */
static bool ack_possible(const struct sp_shard *sh, const struct sp_conn *c, uint64_t seq)
{
	/* acks < mailbox_max_count + delivered; max_count <= 2^32 */
	return seq != 0 && c->mbox.acks_over < (int64_t)sh->cfg->mailbox_max_count;
}

enum sp_close_reason sp_mailbox_ack(struct sp_shard *sh, struct sp_conn *c,
				    const struct sp_frame *f)
{
	struct sp_store_batch *b;
	uint32_t unknown = 0;

	if (sh->cluster)
		return sp_cluster_mbox_ack(sh, c, f);
	if (f->u.ack.count == 0 || !(b = batch(sh)))
		return SP_CLOSE_NONE;
	for (uint32_t i = 0; i < f->u.ack.count && i < SP_ACK_SEQS_MAX; i++) {
		uint64_t seq = f->u.ack.seqs[i];
		uint64_t t0;
		int ret;

		/* Each lookup costs the loop about a microsecond: a flood of acks
		 * for nothing is dropped unread past what the device can hold,
		 * and the connection ends after ack_unknown_max of them. */
		if (!ack_possible(sh, c, seq)) {
			unknown++;
			continue;
		}
		c->mbox.acks_over++;
		t0 = sp_shard_mono_ns();
		ret = sp_store_ack(b, c->s.peer, seq);
		sp_shard_store_timed(sh, SP_METRICS_STORE_ACK, t0);
		if (ret == 0) {
			sp_metrics_acks(sh->metrics, 1);  /* the gauges follow at commit */
		} else if (ret == -ENOENT) {
			unknown++;
		} else {
			SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
				       "mailbox ack failed", SP_KV_STR("error", strerror(-ret)),
				       SP_KV_STR("detail", sp_store_errmsg(sp_shard_store(sh))));
			break;
		}
	}
	if (!unknown)
		return SP_CLOSE_NONE;
	SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_PEER_DEBUG], sh->now_ns, SP_LOG_DEBUG,
		       "ack for seqs not in the mailbox ignored",
		       SP_KV_UINT("count", unknown), SP_KV_UINT("conn", c->tab.slot));
	c->mbox.acks_nothing += unknown;
	/* An honest device acks each envelope once; one that expired or was
	 * acked on an older connection meanwhile is the only ack for nothing
	 * it sends. */
	return c->mbox.acks_nothing > sh->cfg->ack_unknown_max ? SP_CLOSE_ACK_FLOOD : SP_CLOSE_NONE;
}

int sp_mailbox_purge(struct sp_shard *sh, const uint8_t device[SP_KEY_LEN], uint64_t *count,
		     uint64_t *bytes)
{
	struct sp_store_batch *b;

	*count = *bytes = 0;
	if (!sp_shard_store(sh))
		return -ENOENT;
	if (!(b = batch(sh)))
		return -EIO;
	return sp_store_purge(b, device, count, bytes);
}

int sp_mailbox_purge_now(struct sp_shard *sh, const uint8_t (*devices)[SP_KEY_LEN], size_t n)
{
	int ret = 0;

	if (!sp_shard_store(sh))
		return -ENOENT;
	for (size_t i = 0; i < n && ret == 0; i++) {
		uint64_t count = 0, bytes = 0;
		int r = sp_mailbox_purge(sh, devices[i], &count, &bytes);

		if (r < 0 && r != -ENOENT)
			ret = -EIO;
	}
	/* Committed even after a failed purge: the batch holds others'
	 * envelopes, whose results are due either way. */
	{
		int r = commit(sh);

		answer_iteration(sh, r);        /* held behind the WAL sync, as always */
		if (r < 0)
			ret = -EIO;
	}
	return ret;
}

void sp_mailbox_tick(struct sp_shard *sh)
{
	struct sp_store_batch *b;
	struct sp_store_stats before, after;
	size_t expired = 0;
	uint64_t t0;
	int ret;

	if (!sp_shard_store(sh))
		return;
	sp_store_get_stats(sp_shard_store(sh), &before);
	t0 = sp_shard_mono_ns();
	ret = sp_store_tick(sp_shard_store(sh), sh->wall_ms);
	if (ret == 1 && sp_store_syncer_fd(sp_shard_store(sh)) < 0)
		sp_shard_store_timed(sh, SP_METRICS_STORE_SYNC, t0);   /* the WAL fdatasync ran here */
	sp_store_get_stats(sp_shard_store(sh), &after);
	if (after.scrubs > before.scrubs)
		sp_metrics_scrubs(sh->metrics, after.scrubs - before.scrubs);
	if (ret < 0)
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "mailbox fsync failed", SP_KV_STR("error", strerror(-ret)),
			       SP_KV_STR("detail", sp_store_errmsg(sp_shard_store(sh))));
	if (!(b = batch(sh)))
		return;
	/* A bounded step, by count and by loop time: many envelopes expiring
	 * together (an attacker can arrange that a TTL ahead) cost several
	 * ticks, each resuming where the last stopped, never one long stall. */
	sp_store_get_stats(sp_shard_store(sh), &before);
	t0 = sp_shard_mono_ns();
	ret = sp_store_expire_for(b, sh->cfg->expiry_sweep_batch,
				  (uint64_t)sh->cfg->expiry_sweep_budget_ms * 1000000, &expired);
	sp_shard_store_timed(sh, SP_METRICS_STORE_EXPIRE, t0);
	sp_store_get_stats(sp_shard_store(sh), &after);
	sp_metrics_sweep_step(sh->metrics, ret == 1, after.sweep_resumed != before.sweep_resumed);
	if (ret < 0)
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "mailbox expiry sweep failed", SP_KV_STR("error", strerror(-ret)),
			       SP_KV_STR("detail", sp_store_errmsg(sp_shard_store(sh))));
	if (expired) {
		sp_metrics_expired(sh->metrics, expired);  /* the gauges follow at commit */
	}
}

/* One WriteBatch, one sync per --fsync. Returns the commit's result (0 if
 * nothing was written). */
static int commit(struct sp_shard *sh)
{
	uint64_t rm_entries, rm_bytes, t0;
	int ret;

	if (!sh->batch)
		return 0;
	t0 = sp_shard_mono_ns();
	ret = sp_store_batch_commit(sh->batch);
	sp_shard_store_timed(sh, SP_METRICS_STORE_COMMIT, t0);
	sh->batch = NULL;
	if (sh->xs_stored)
		xs_stored_flush(sh, ret == 0);
	if (ret == 0) {
		/* The mailbox gauges move only with what is on disk. */
		removed_so_far(sh, &rm_entries, &rm_bytes);
		sp_metrics_mailbox_add(sh->metrics,
				       sh->it_entries - (int64_t)(rm_entries - sh->rm_entries0),
				       sh->it_bytes - (int64_t)(rm_bytes - sh->rm_bytes0));
	} else {
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "mailbox commit failed: envelopes of this iteration refused",
			       SP_KV_STR("error", strerror(-ret)),
			       SP_KV_STR("detail", sp_store_errmsg(sp_shard_store(sh))));
	}
	sh->it_entries = sh->it_bytes = 0;
	return ret;
}

/* An accepted group's FanoutResult{id, st, version} (no body: only a
 * mismatch has one, and app/sp_fanout.c answers those itself). */
static void fanout_reply(struct sp_shard *sh, struct sp_conn *c, uint64_t id, enum sp_status st,
			 uint64_t version)
{
	enum sp_close_reason why;
	struct sp_frame res;

	if (c->s.state != SP_SESSION_ESTABLISHED)
		return;
	memset(&res, 0, sizeof(res));
	res.type = SP_FRAME_FANOUT_RESULT;
	res.u.fanout.group_id = id;
	res.u.fanout.status = st;
	res.u.fanout.version = version;
	why = sp_deliver_reply(sh, c, &res);
	if (why)
		sp_life_end_later(sh, c, why);
}

/* One SendResult (or Pong), with ERR_INTERNAL for a durable envelope whose
 * commit or sync failed. A connection gone or closing meanwhile gets none
 * (its GoAway was the last frame). */
void sp_mailbox_send_result(struct sp_shard *sh, const struct sp_pending_result *r, bool failed)
{
	struct sp_conn *c = sp_conn_at(sh, r->slot, r->gen);
	enum sp_close_reason why;
	struct sp_frame res;

	if (r->fanout) {
		/* An accepted group's FanoutResult (app/sp_fanout.c counted its
		 * copies): ERR_INTERNAL instead if its commit's sync failed. */
		if (c)
			fanout_reply(sh, c, r->client_id,
				     failed ? SP_STATUS_ERR_INTERNAL : (enum sp_status)r->status, r->seq);
		return;
	}
	if (r->pong) {
		/* In its place among the results (PROTOCOL.md 6.4). */
		if (!c || c->s.state != SP_SESSION_ESTABLISHED)
			return;
		memset(&res, 0, sizeof(res));
		res.type = SP_FRAME_PONG;
		res.u.ping.id = r->client_id;
		why = sp_deliver_reply(sh, c, &res);
		if (why)
			sp_life_end_later(sh, c, why);
		return;
	}
	/* Counted whether or not the sender is still there to hear it:
	 * every Send ends in exactly one of accepted or refused. */
	if (r->durable && failed)
		sp_metrics_envelope_refused(sh->metrics, SP_STATUS_ERR_INTERNAL);
	else if (r->status == SP_STATUS_ACCEPTED || r->status == SP_STATUS_DELIVERED)
		sp_metrics_envelope_accepted(sh->metrics);
	else
		sp_metrics_envelope_refused(sh->metrics, (enum sp_status)r->status);
	if (!c || c->s.state != SP_SESSION_ESTABLISHED)
		return;
	memset(&res, 0, sizeof(res));
	res.type = SP_FRAME_SEND_RESULT;
	res.u.send_result.client_id = r->client_id;
	res.u.send_result.status = (enum sp_status)r->status;
	res.u.send_result.seq = r->seq;
	if (r->durable && failed) {
		res.u.send_result.status = SP_STATUS_ERR_INTERNAL;
		res.u.send_result.seq = 0;
	}
	why = sp_deliver_reply(sh, c, &res);
	if (why)
		sp_life_end_later(sh, c, why);
}

/* Cluster mode: a result waiting for a remote answer, or behind one of its
 * connection's, is sent by broker/cluster/sp_cluster_route.c once the
 * answers before it came. */
static void send_one(struct sp_shard *sh, const struct sp_pending_result *r, bool failed)
{
	if (sh->cluster && sp_cluster_route_hold(sh, r, failed))
		return;
	sp_mailbox_send_result(sh, r, failed);
}

/* This iteration's results, now. */
static void send_results(struct sp_shard *sh, int commit_ret)
{
	for (size_t i = 0; i < sh->nresults; i++)
		send_one(sh, &sh->results[i], commit_ret != 0);
	sh->nresults = 0;
}

/* Held results whose ticket is synced (all of them if all), in order, the
 * others kept in order: a connection's tickets never decrease along the
 * list, so none of its results passes another. failed: the WAL sync
 * failed, so durable ones past synced get ERR_INTERNAL. */
static void release_held(struct sp_shard *sh, uint64_t synced, bool all, bool failed)
{
	uint64_t epoch = ++sh->held_epoch;
	size_t keep = 0;

	if (synced > sh->synced)
		sh->synced = synced;
	for (size_t i = 0; i < sh->nheld; i++) {
		const struct sp_pending_result *r = &sh->held[i];
		struct sp_conn *c = sp_conn_at(sh, r->slot, r->gen);
		bool ok = r->ticket <= synced;
		/* Another shard's answer pending, or an earlier result of its
		 * connection kept: it stays, behind. */
		bool wait = r->remote || (c && c->mbox.blocked_epoch == epoch);

		if (!wait && (ok || all)) {
			send_one(sh, r, r->failed || (!ok && failed));
			if (c && c->mbox.nheld)
				c->mbox.nheld--;
			continue;
		}
		sh->held[keep++] = *r;
		if (c)
			c->mbox.blocked_epoch = epoch;
	}
	sh->nheld = keep;
	if (all)
		sh->synced = sp_store_syncer_asked(sp_shard_store(sh));  /* nothing waits any more */
}

/* Room for n more held results: 0 or -ENOMEM. */
static int held_room(struct sp_shard *sh, size_t n)
{
	size_t ncap = sh->held_cap ? sh->held_cap : 256;
	struct sp_pending_result *p;

	if (sh->nheld + n <= sh->held_cap)
		return 0;
	while (ncap < sh->nheld + n)
		ncap *= 2;
	p = realloc(sh->held, ncap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	sh->held = p;
	sh->held_cap = ncap;
	return 0;
}

/* The WAL sync r must wait for before it is sent: its own commit's
 * (ticket, if durable), or its connection's held results'; 0 = none. */
static uint64_t wait_for(struct sp_shard *sh, const struct sp_pending_result *r, uint64_t ticket)
{
	struct sp_conn *c = sp_conn_at(sh, r->slot, r->gen);
	uint64_t t = r->durable && !r->pong ? ticket : 0;

	if (c && c->mbox.held_ticket > sh->synced && c->mbox.held_ticket > t)
		t = c->mbox.held_ticket;
	return t;
}

/* This iteration's results: each at once, or held behind the sync it
 * waits for, another shard's answer, or its connection's held results.
 * -ENOMEM (nothing sent or held) if the list cannot grow. */
static int answer(struct sp_shard *sh, int commit_ret, uint64_t ticket)
{
	if (held_room(sh, sh->nresults) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < sh->nresults; i++) {
		struct sp_pending_result *r = &sh->results[i];
		uint64_t t = wait_for(sh, r, ticket);
		struct sp_conn *c = sp_conn_at(sh, r->slot, r->gen);

		if (!t && !r->remote && !(c && c->mbox.nheld)) {
			send_one(sh, r, commit_ret != 0);
			continue;
		}
		r->failed = commit_ret != 0;
		r->ticket = t;
		sh->held[sh->nheld++] = *r;
		if (c) {
			if (t)
				c->mbox.held_ticket = t;
			c->mbox.nheld++;
			if (r->remote)
				c->mbox.remote_waits++;
		}
	}
	sh->nresults = 0;
	return 0;
}

static bool any_remote(const struct sp_shard *sh)
{
	for (size_t i = 0; i < sh->nresults; i++)
		if (sh->results[i].remote)
			return true;
	return false;
}

enum sp_close_reason sp_mailbox_online_elsewhere(struct sp_shard *sh, struct sp_conn *c,
						 const uint8_t to[SP_KEY_LEN], uint64_t client_id,
						 const uint8_t *body, size_t len)
{
	struct sp_inbox_msg *m = sp_inbox_msg_new(SP_XS_ONLINE, len);

	if (!m || sp_mailbox_result_remote(sh, c, client_id)) {
		sp_inbox_msg_free(m);
		return SP_CLOSE_NOMEM;
	}
	memcpy(m->device, to, SP_KEY_LEN);
	memcpy(m->data, body, len);
	m->arg[0] = c->tab.slot;
	m->arg[1] = c->tab.gen;
	m->arg[2] = client_id;
	sp_shard_post(sh, sp_node_home(sh->node, to), m);
	return SP_CLOSE_NONE;
}

int sp_mailbox_result_remote(struct sp_shard *sh, const struct sp_conn *c, uint64_t client_id)
{
	if (sp_mailbox_result(sh, c, client_id, SP_STATUS_ERR_INTERNAL, 0, false))
		return -ENOMEM;
	sh->results[sh->nresults - 1].remote = true;
	return 0;
}

void sp_mailbox_remote_result(struct sp_shard *sh, uint32_t slot, uint32_t gen,
			      uint64_t client_id, enum sp_status st, uint64_t seq)
{
	for (size_t i = 0; i < sh->nheld; i++) {
		struct sp_pending_result *r = &sh->held[i];
		struct sp_conn *c;

		if (!r->remote || r->slot != slot || r->gen != gen || r->client_id != client_id)
			continue;
		r->remote = false;
		r->status = (uint8_t)st;
		r->seq = seq;
		r->ticket = 0;
		if ((c = sp_conn_at(sh, slot, gen)) && c->mbox.remote_waits)
			c->mbox.remote_waits--;
		release_held(sh, sh->synced, false, false);
		return;
	}
}


/* The loop syncs the WAL itself and answers everything held and this
 * iteration's results: at stop (no answer is left behind), when the held
 * results reach HELD_MAX, or when holding them failed (out of memory). */
static void sync_here(struct sp_shard *sh, int commit_ret)
{
	uint64_t synced = 0, t0 = sp_shard_mono_ns();
	int r = sp_store_sync(sp_shard_store(sh));

	sp_shard_store_timed(sh, SP_METRICS_STORE_SYNC, t0);
	if (r < 0 && sp_store_syncer_fd(sp_shard_store(sh)) >= 0)
		sp_store_syncer_poll(sp_shard_store(sh), &synced);       /* what the thread did sync */
	if (r < 0)
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "mailbox fsync failed: envelopes of this iteration refused",
			       SP_KV_STR("error", strerror(-r)),
			       SP_KV_STR("detail", sp_store_errmsg(sp_shard_store(sh))));
	release_held(sh, r < 0 ? synced : UINT64_MAX, true, r < 0);
	/* Behind another shard's answer, a connection's results still wait. */
	if (!sh->nheld || answer(sh, commit_ret ? commit_ret : r, 0) < 0)
		send_results(sh, commit_ret ? commit_ret : r);
}

static void poll_synced(struct sp_shard *sh, bool reader)
{
	uint64_t synced;
	int r;

	if (!sp_shard_store(sh))
		return;
	r = reader ? sp_store_syncer_poll(sp_shard_store(sh), &synced)
		   : sp_store_syncer_peek(sp_shard_store(sh), &synced);
	if (r < 0)
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "mailbox fsync failed: envelopes waiting for it refused",
			       SP_KV_STR("error", strerror(-r)),
			       SP_KV_STR("detail", sp_store_errmsg(sp_shard_store(sh))));
	/* After a failed sync none follows (the store is poisoned): answer all. */
	release_held(sh, synced, r < 0, r < 0);
}

void sp_mailbox_synced(struct sp_shard *sh)
{
	poll_synced(sh, true);
}

void sp_mailbox_synced_peer(struct sp_shard *sh)
{
	poll_synced(sh, false);
}

/* For one connection: one bounded chunk of its mailbox, if its queue has
 * room; at the end, Drained (BACKLOG) and live mode. */
static void read_backlog(struct sp_shard *sh, struct sp_conn *c)
{
	struct sp_store_read_result res;
	uint64_t room, bytes, t0;
	struct sp_frame d;
	int ret;

	if (c->s.state != SP_SESSION_ESTABLISHED || c->life.close_reason) {
		drain_del(sh, c);
		return;
	}
	/* Paced by the outbound queue: read only while it is below half its
	 * limit, and at most what fits below the limit. */
	room = sh->cfg->sendq_max / 2;
	if (sp_session_tx_queued(&c->s) >= room)
		return;
	bytes = room - sp_session_tx_queued(&c->s);
	t0 = sp_shard_mono_ns();
	ret = sp_store_read(sp_shard_store(sh), c->s.peer, c->mbox.from, sh->wall_ms, sh->cfg->backlog_chunk,
			    bytes, sh->items, &res);
	sp_shard_store_timed(sh, SP_METRICS_STORE_READ, t0);
	if (ret) {
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "mailbox read failed", SP_KV_STR("error", strerror(-ret)),
			       SP_KV_STR("detail", sp_store_errmsg(sp_shard_store(sh))));
		/* It reconnects and reads again. */
		sp_life_end_later(sh, c, SP_CLOSE_INTERNAL);
		return;
	}
	if (res.skipped_corrupt) {
		/* No key, no seq: only that a device's mailbox held damaged values. */
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_WARN,
			       "corrupt mailbox values skipped",
			       SP_KV_UINT("count", res.skipped_corrupt));
	}
	for (size_t i = 0; i < res.count; i++) {
		const struct sp_store_item *it = &sh->items[i];

		if (sp_deliver_frame(sh, c, it->seq, it->body, it->body_len))
			return;         /* the connection ends; the next one reads again */
		c->mbox.from = it->seq + 1;
		c->mbox.count++;
		c->mbox.acks_over--;
		/* Wall clock (stored acceptance time); 0 if the clock stepped back. */
		sp_metrics_envelope_delivered(sh->metrics, SP_METRICS_PATH_MAILBOX,
					      sh->wall_ms > it->accepted_ms ?
					      (sh->wall_ms - it->accepted_ms) * 1000000 : 0);
	}
	if (res.next_seq > c->mbox.from)
		c->mbox.from = res.next_seq;    /* past skipped (expired, corrupt) entries */
	sp_conn_mark(sh, c);
	if (!res.end)
		return;
	drain_del(sh, c);
	/* Shards: live envelopes go in seq order from here (live_stored), so
	 * from is the mailbox's next seq: everything committed below it was
	 * read or is gone, and no other shard commits while this one holds
	 * the store. */
	if (sh->node) {
		uint64_t next = 0;

		if (sp_store_next_seq(sp_shard_store(sh), c->s.peer, &next) == 0 &&
		    next > c->mbox.from)
			c->mbox.from = next;
	}
	if (c->mbox.mode == SP_MBOX_BACKLOG) {
		memset(&d, 0, sizeof(d));
		d.type = SP_FRAME_DRAINED;
		d.u.drained.count = c->mbox.count;
		if (sp_deliver_reply(sh, c, &d))
			sp_life_end_later(sh, c, SP_CLOSE_INTERNAL);
	}
	c->mbox.mode = SP_MBOX_LIVE;
}

/* A bounded number of readers per iteration, round robin. */
static void run_readers(struct sp_shard *sh)
{
	unsigned served = 0;
	struct sp_conn *c;

	if (!sp_shard_store(sh)) {
		/* No mailboxes: an empty backlog for everyone. */
		while ((c = drain_first(sh))) {
			struct sp_frame d = { .type = SP_FRAME_DRAINED };

			drain_del(sh, c);
			if (c->mbox.mode == SP_MBOX_BACKLOG && c->s.state == SP_SESSION_ESTABLISHED)
				sp_deliver_reply(sh, c, &d);
			c->mbox.mode = SP_MBOX_LIVE;
		}
		return;
	}
	while ((c = drain_first(sh)) && served < DRAIN_CONNS_PER_ITER) {
		/* To the tail first: read_backlog may unlink it for good. */
		drain_del(sh, c);
		drain_add(sh, c);
		read_backlog(sh, c);
		served++;
	}
}

/*
 * The commit, then the iteration's answers: at once, or (--fsync always
 * with the sync thread) held until the WAL sync of their commit ends
 * (sp_mailbox_synced), so ACCEPTED still means on disk while the loop goes
 * on serving others. Results of later iterations queue behind held ones.
 */
static void answer_iteration(struct sp_shard *sh, int commit_ret)
{
	uint64_t ticket = commit_ret == 0 && sp_shard_store(sh) ? sp_store_commit_ticket(sp_shard_store(sh)) : 0;

	if (!ticket && !sh->nheld && !(sh->node && any_remote(sh))) {
		send_results(sh, commit_ret);
	} else if (sh->stopping || sh->nheld + sh->nresults > HELD_MAX ||
		   answer(sh, commit_ret, ticket) < 0) {
		sync_here(sh, commit_ret);
	}
}

void sp_mailbox_after_completions(struct sp_shard *sh)
{
	answer_iteration(sh, commit(sh));
	run_readers(sh);
}
