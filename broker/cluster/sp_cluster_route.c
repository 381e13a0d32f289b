/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_cluster_route.c: presence, cross-node online delivery and takeover
 * across nodes, on the shard's thread (sp_cluster_route.h).
 */
#include "sp_cluster_route.h"
#include "sp_cluster_mbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "sp_conn_table.h"
#include "sp_deliver.h"
#include "sp_keytab.h"
#include "sp_lifecycle.h"
#include "sp_list.h"
#include "sp_mailbox.h"
#include "sp_ring.h"
#include "sp_shard.h"

enum {
	SUBS_HINT = 1024,
	/* A TAKEOVER that arrives this soon after our own connection of the
	 * device proved itself is a race between two connects; otherwise ours
	 * is the older one, whatever the clocks of the two nodes say. */
	TAKEOVER_RACE_MS = 1000,
};

/* A device subject this shard holds: keyed by its token. */
struct dev_sub {
	struct dev_sub *prev, *next;    /* every one, for destroy */
	void *sub;                      /* the port's subscription */
	uint8_t token[SP_KEY_LEN];
	uint8_t device[SP_KEY_LEN];
	uint64_t since_ms;              /* when the route's connection proved itself */
};

/* A result waiting here: a placeholder for a remote answer, or a result of
 * the same connection queued behind one. */
struct held {
	struct sp_pending_result r;
	bool failed;
	bool resolved;                  /* can go (a placeholder: its answer came) */
	uint64_t ticket;                /* placeholder: 0 for a result behind one */
	uint64_t deadline_ns;
	uint64_t sent_ns;
};

struct sp_cluster_route {
	struct sp_cluster_port *port;
	struct sp_cluster_mbox *jsmbox;   /* the mailboxes in JetStream */
	struct sp_cluster *node;
	struct sp_keytab *subs;         /* token -> struct dev_sub * */
	struct dev_sub *all;
	struct held *held;              /* oldest first */
	size_t nheld, held_cap;
	uint32_t *waiting;              /* per slot: results held here */
	uint32_t *pass;                 /* per slot: release pass that found it blocked */
	uint32_t nslots, pass_no;
	uint64_t next_ticket;
	uint64_t timeout_ns;
	uint32_t inflight_max;
	uint64_t inflight;              /* placeholders unresolved */
	uint64_t buf;                   /* the inbox eventfd read's target */
	bool armed, retry;
};

int sp_cluster_route_create(struct sp_cluster_route **out, struct sp_cluster_port *port,
			    const struct sp_config *cfg, uint32_t nslots)
{
	struct sp_cluster_route *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r)
		return -ENOMEM;
	r->port = port;
	r->node = sp_cluster_port_node(port);
	r->nslots = nslots;
	r->waiting = calloc(nslots, sizeof(*r->waiting));
	r->pass = calloc(nslots, sizeof(*r->pass));
	r->timeout_ns = (uint64_t)cfg->cluster_request_timeout_ms * 1000000;
	r->inflight_max = cfg->cluster_inflight_max;
	if (!r->waiting || !r->pass || sp_keytab_create(&r->subs, SUBS_HINT) ||
	    sp_cluster_mbox_create(&r->jsmbox, port, cfg, nslots)) {
		sp_cluster_route_destroy(r);
		return -ENOMEM;
	}
	*out = r;
	return 0;
}

void sp_cluster_route_destroy(struct sp_cluster_route *r)
{
	if (!r)
		return;
	while (r->all) {
		struct dev_sub *d = r->all;

		r->all = d->next;
		sp_cluster_port_unsubscribe(r->port, d->sub);
		sodium_memzero(d, sizeof(*d));
		free(d);
	}
	sp_keytab_destroy(r->subs);
	sp_cluster_mbox_destroy(r->jsmbox);
	free(r->held);
	free(r->waiting);
	free(r->pass);
	free(r);
}

/* --- results held for remote answers ----------------------------------------- */

static int held_room(struct sp_cluster_route *r)
{
	size_t ncap = r->held_cap ? r->held_cap * 2 : 64;
	struct held *n;

	if (r->nheld < r->held_cap)
		return 0;
	n = realloc(r->held, ncap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	r->held = n;
	r->held_cap = ncap;
	return 0;
}

static bool is_placeholder(const struct sp_pending_result *p)
{
	return p->status == SP_STATUS_UNSPECIFIED && !p->pong && !p->fanout;
}

bool sp_cluster_route_hold(struct sp_shard *sh, const struct sp_pending_result *p, bool failed)
{
	struct sp_cluster_route *r = sh->cluster;
	bool ph = is_placeholder(p);
	struct held *h;

	if (!ph && (p->slot >= r->nslots || r->waiting[p->slot] == 0))
		return false;
	if (held_room(r)) {
		if (!ph)
			return false;   /* sent now: out of order, but not lost */
		/* A placeholder cannot be sent: answered unavailable. */
		struct sp_pending_result q = *p;

		q.status = SP_STATUS_ERR_CLUSTER_UNAVAILABLE;
		q.seq = 0;
		sp_mailbox_send_result(sh, &q, false);
		return true;
	}
	h = &r->held[r->nheld++];
	memset(h, 0, sizeof(*h));
	h->r = *p;
	h->failed = failed;
	h->resolved = !ph;
	if (ph) {
		h->ticket = p->seq;
		h->r.seq = 0;
		h->deadline_ns = sh->now_ns + r->timeout_ns;
		h->sent_ns = sh->now_ns;
	}
	if (p->slot < r->nslots)
		r->waiting[p->slot]++;
	return true;
}

bool sp_cluster_route_waiting(const struct sp_shard *sh, const struct sp_conn *c)
{
	const struct sp_cluster_route *r = sh->cluster;

	return r && c->tab.slot < r->nslots && r->waiting[c->tab.slot] > 0;
}

/* Sends every held result whose connection has nothing unresolved before
 * it, in order; keeps the rest in order. */
static void release(struct sp_shard *sh)
{
	struct sp_cluster_route *r = sh->cluster;
	size_t keep = 0;

	if (++r->pass_no == 0)
		r->pass_no = 1, memset(r->pass, 0, r->nslots * sizeof(*r->pass));
	for (size_t i = 0; i < r->nheld; i++) {
		struct held *h = &r->held[i];
		uint32_t slot = h->r.slot;
		bool blocked = slot < r->nslots && r->pass[slot] == r->pass_no;

		if (h->resolved && !blocked) {
			if (slot < r->nslots)
				r->waiting[slot]--;
			sp_mailbox_send_result(sh, &h->r, h->failed);
			continue;
		}
		if (slot < r->nslots)
			r->pass[slot] = r->pass_no;
		r->held[keep++] = *h;
	}
	r->nheld = keep;
}

static void resolve(struct sp_shard *sh, uint64_t ticket, uint8_t status, uint64_t seq,
		    enum sp_cluster_counter lat)
{
	struct sp_cluster_route *r = sh->cluster;

	for (size_t i = 0; i < r->nheld; i++) {
		struct held *h = &r->held[i];

		if (h->ticket != ticket || h->resolved)
			continue;
		h->resolved = true;
		h->r.status = status;
		h->r.seq = seq;
		r->inflight--;
		sp_cluster_count(r->node, lat, sh->now_ns - h->sent_ns);
		return;
	}
	/* Answered after its timeout: the sender already has its result. */
}

void sp_cluster_route_tick(struct sp_shard *sh)
{
	struct sp_cluster_route *r = sh->cluster;
	bool any = false;

	if (!r)
		return;
	for (size_t i = 0; i < r->nheld; i++) {
		struct held *h = &r->held[i];

		if (h->resolved || !h->ticket || sh->now_ns < h->deadline_ns)
			continue;
		h->resolved = true;
		h->r.status = SP_STATUS_ERR_CLUSTER_UNAVAILABLE;
		r->inflight--;
		sp_cluster_count(r->node, SP_CLUSTER_TIMEOUTS, 1);
		any = true;
	}
	if (any)
		release(sh);
	sp_cluster_mbox_run(sh, true);
	if (r->retry)
		sp_cluster_route_arm(sh);
}

struct sp_cluster_mbox *sp_cluster_route_mbox(struct sp_cluster_route *r)
{
	return r->jsmbox;
}

bool sp_cluster_route_room(const struct sp_shard *sh)
{
	return sh->cluster->inflight < sh->cluster->inflight_max;
}

uint64_t sp_cluster_route_ticket(struct sp_shard *sh)
{
	return ++sh->cluster->next_ticket;
}

void sp_cluster_route_sent(struct sp_shard *sh)
{
	sh->cluster->inflight++;
}

void sp_cluster_route_answered(struct sp_shard *sh, uint64_t ticket, enum sp_status st,
			       uint64_t seq, enum sp_cluster_counter lat)
{
	resolve(sh, ticket, (uint8_t)st, seq, lat);
	release(sh);
}

enum sp_close_reason sp_cluster_route_send(struct sp_shard *sh, struct sp_conn *c,
					   const struct sp_frame *f)
{
	struct sp_cluster_route *r = sh->cluster;
	uint8_t token[SP_KEY_LEN];
	enum sp_status st = SP_STATUS_UNSPECIFIED;
	uint64_t ticket = 0;

	if (r->inflight >= r->inflight_max) {
		st = SP_STATUS_ERR_CLUSTER_UNAVAILABLE;         /* the cluster is behind */
	} else {
		ticket = ++r->next_ticket;
		sp_cluster_token(r->node, f->u.send.to, token);
		if (sp_cluster_port_deliver(r->port, token, ticket, f->body, f->body_len)) {
			st = SP_STATUS_ERR_CLUSTER_UNAVAILABLE;
			sp_cluster_count(r->node, SP_CLUSTER_ERRORS, 1);
		} else {
			r->inflight++;
			sp_cluster_count(r->node, SP_CLUSTER_REMOTE_SENDS, 1);
		}
	}
	if (sp_mailbox_result(sh, c, f->u.send.client_id, st,
			      st == SP_STATUS_UNSPECIFIED ? ticket : 0, false))
		return SP_CLOSE_NOMEM;
	return SP_CLOSE_NONE;
}

/* --- presence ------------------------------------------------------------------- */

static struct dev_sub *find(struct sp_cluster_route *r, const uint8_t token[SP_KEY_LEN])
{
	uint64_t v;

	return sp_keytab_lookup(r->subs, token, &v) ? NULL : (struct dev_sub *)(uintptr_t)v;
}

void sp_cluster_route_up(struct sp_shard *sh, struct sp_conn *c)
{
	struct sp_cluster_route *r = sh->cluster;
	uint8_t token[SP_KEY_LEN];
	struct dev_sub *d;

	if (!r)
		return;
	sp_cluster_token(r->node, c->s.peer, token);
	d = find(r, token);
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d || sp_cluster_port_subscribe(r->port, token, &d->sub) ||
		    sp_keytab_insert(r->subs, token, (uint64_t)(uintptr_t)d, NULL) < 0) {
			if (d)
				sp_cluster_port_unsubscribe(r->port, d->sub);
			free(d);
			/* Served here, unreachable from other nodes until it
			 * reconnects: counted, not fatal. */
			sp_cluster_count(r->node, SP_CLUSTER_ERRORS, 1);
			return;
		}
		memcpy(d->token, token, SP_KEY_LEN);
		memcpy(d->device, c->s.peer, SP_KEY_LEN);
		d->next = r->all;
		if (r->all)
			r->all->prev = d;
		r->all = d;
	}
	d->since_ms = sh->wall_ms;
	if (sp_cluster_port_takeover(r->port, token, d->since_ms))
		sp_cluster_count(r->node, SP_CLUSTER_ERRORS, 1);
}

void sp_cluster_route_down(struct sp_shard *sh, const uint8_t device[SP_KEY_LEN])
{
	struct sp_cluster_route *r = sh->cluster;
	uint8_t token[SP_KEY_LEN];
	struct dev_sub *d;

	if (!r)
		return;
	sp_cluster_token(r->node, device, token);
	d = find(r, token);
	if (!d)
		return;
	sp_keytab_remove(r->subs, token, (uint64_t)(uintptr_t)d);
	sp_cluster_port_unsubscribe(r->port, d->sub);
	if (d->prev)
		d->prev->next = d->next;
	else
		r->all = d->next;
	if (d->next)
		d->next->prev = d->prev;
	sodium_memzero(d, sizeof(*d));
	free(d);
}

/* --- the inbox ------------------------------------------------------------------ */

struct sp_conn *sp_cluster_route_holder(struct sp_shard *sh, const uint8_t token[SP_KEY_LEN])
{
	struct dev_sub *d = find(sh->cluster, token);

	return d ? sp_deliver_recipient(sh, d->device) : NULL;
}

/* The device's live connection here for a token of ours, or NULL. */
static struct sp_conn *holder(struct sp_shard *sh, const uint8_t token[SP_KEY_LEN],
			      struct dev_sub **dp)
{
	struct dev_sub *d = find(sh->cluster, token);

	*dp = d;
	return d ? sp_deliver_recipient(sh, d->device) : NULL;
}

static void on_deliver(struct sp_shard *sh, const struct sp_cluster_item *it)
{
	struct sp_cluster_route *r = sh->cluster;
	struct sp_frame f;
	struct dev_sub *d;
	struct sp_conn *rc = holder(sh, it->token, &d);
	enum sp_status st = SP_STATUS_ERR_OFFLINE;

	if (rc) {
		memset(&f, 0, sizeof(f));
		f.type = SP_FRAME_SEND;
		f.body = it->body;
		f.body_len = it->len;
		st = sp_deliver_online(sh, rc, &f);
		sp_conn_mark(sh, rc);
		if (st == SP_STATUS_DELIVERED)
			sp_cluster_count(r->node, SP_CLUSTER_REMOTE_DELIVERIES, 1);
	}
	if (sp_cluster_port_reply(r->port, it->reply, (uint8_t)st))
		sp_cluster_count(r->node, SP_CLUSTER_ERRORS, 1);
}

/* Another node's connection of the device proved itself at it->value (its
 * clock): ours goes, unless it proved itself here within TAKEOVER_RACE_MS
 * (our clock) and is the newer by the proof times (ties: the higher node
 * id wins). So only a near-simultaneous pair of connects depends on the
 * nodes' clocks agreeing; one of the two always stays or, at worst, both go
 * and the device reconnects. */
static void on_takeover(struct sp_shard *sh, const struct sp_cluster_item *it)
{
	struct sp_cluster_route *r = sh->cluster;
	uint64_t me = sp_cluster_node_id(r->node);
	struct dev_sub *d;
	struct sp_conn *rc;

	if (it->node == me)
		return;         /* our own, back from our subscription */
	rc = holder(sh, it->token, &d);
	if (!rc)
		return;
	if (sh->wall_ms < d->since_ms + TAKEOVER_RACE_MS &&
	    (d->since_ms > it->value || (d->since_ms == it->value && me > it->node)))
		return;
	sp_cluster_count(r->node, SP_CLUSTER_TAKEOVERS, 1);
	/* As a local takeover does: no more mailbox reads for it, GoAway
	 * TAKEOVER after its last results; the route (and the subscription)
	 * goes when it ends. */
	sp_mailbox_stop(sh, rc);
	sp_life_end_later(sh, rc, SP_CLOSE_TAKEOVER);
}

void sp_cluster_route_arm(struct sp_shard *sh)
{
	struct sp_cluster_route *r = sh->cluster;
	int ret;

	if (!r || r->armed)
		return;
	ret = sp_ring_read(&sh->ring, sp_cluster_inbox_fd(sp_cluster_port_inbox(r->port)), &r->buf,
			   sizeof(r->buf), sp_ud_pack(SP_OP_CLUSTER, 0, 0));
	r->armed = ret == 0;
	r->retry = ret != 0;
}

void sp_cluster_route_cqe(struct sp_shard *sh, int res)
{
	struct sp_cluster_route *r = sh->cluster;
	struct sp_cluster_item *it;
	bool answers = false;

	(void)res;      /* whatever the read says, the items are in the list */
	r->armed = false;
	it = sp_cluster_inbox_take(sp_cluster_port_inbox(r->port));
	while (it) {
		struct sp_cluster_item *next = it->next;

		switch (it->kind) {
		case SP_CLUSTER_DELIVER: on_deliver(sh, it); break;
		case SP_CLUSTER_TAKEOVER: on_takeover(sh, it); break;
		case SP_CLUSTER_REPLY:
			resolve(sh, it->value, it->status, 0, SP_CLUSTER_ROUND_TRIP);
			answers = true;
			break;
		case SP_CLUSTER_STORED:
		case SP_CLUSTER_JS:
			sp_cluster_mbox_item(sh, it);
			break;
		default: break;
		}
		sodium_memzero(it->token, sizeof(it->token));
		sodium_memzero(it->body, it->len);
		free(it);
		it = next;
	}
	if (answers)
		release(sh);
	sp_cluster_mbox_run(sh, false);
	sp_cluster_route_arm(sh);
}
