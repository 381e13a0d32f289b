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
};

/*
 * A request out (a DELIVER, or a durable send's publish), from the moment
 * it is sent, by ticket. Its answer may come before its placeholder
 * reaches this file (the mailbox hands results over at the end of an
 * iteration, or later behind another shard's answer): it is kept here
 * until the placeholder claims it. A forwarded DELIVER (for a sender on
 * another shard of this node, whose recipient is homed here but connected
 * to another node) has no placeholder here: its answer goes back to that
 * shard as SP_XS_RESULT, which holds the sender's result in order
 * (sp_mailbox_online_elsewhere).
 */
enum pend_state { PEND_OUT = 1, PEND_ANSWERED, PEND_GONE };
struct pend {
	uint64_t ticket;
	uint64_t deadline_ns, sent_ns;
	uint64_t seq;                   /* ANSWERED: the answer */
	uint64_t arg[3];                /* forwarded: the sender's slot, gen, client id */
	uint32_t from;                  /* forwarded: its shard */
	uint8_t state;                  /* enum pend_state */
	uint8_t status;                 /* ANSWERED: the answer */
	bool forwarded;
	bool held;                      /* its placeholder is in held[] */
};

struct sp_cluster_route {
	struct sp_cluster_port *port;
	struct sp_cluster_mbox *jsmbox;   /* the mailboxes in JetStream */
	struct sp_cluster *node;
	struct sp_keytab *subs;         /* token -> struct dev_sub * */
	struct dev_sub *all;
	struct held *held;              /* oldest first */
	size_t nheld, held_cap;
	struct pend *pend;              /* [pend_head, npend): by ticket, oldest first */
	size_t pend_head, npend, pend_cap;
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
	free(r->pend);
	free(r->waiting);
	free(r->pass);
	free(r);
}

/* --- requests out --------------------------------------------------------------- */

/* Room for one more request (made before it is sent). 0 or -ENOMEM. */
static int pend_room(struct sp_cluster_route *r)
{
	struct pend *n;
	size_t ncap;

	if (r->pend_head && r->pend_head * 2 >= r->npend) {
		/* Mostly answered: the live tail to the front. */
		memmove(r->pend, r->pend + r->pend_head, (r->npend - r->pend_head) * sizeof(*r->pend));
		r->npend -= r->pend_head;
		r->pend_head = 0;
	}
	if (r->npend < r->pend_cap)
		return 0;
	ncap = r->pend_cap ? r->pend_cap * 2 : 64;
	n = realloc(r->pend, ncap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	r->pend = n;
	r->pend_cap = ncap;
	return 0;
}

/* A request just sent with ticket (the room was made): tracked. */
static struct pend *pend_add(struct sp_shard *sh, uint64_t ticket)
{
	struct sp_cluster_route *r = sh->cluster;
	struct pend *p = &r->pend[r->npend++];

	memset(p, 0, sizeof(*p));
	p->ticket = ticket;
	p->state = PEND_OUT;
	p->sent_ns = sh->now_ns;
	p->deadline_ns = sh->now_ns + r->timeout_ns;
	r->inflight++;
	return p;
}

/* The request of ticket, if still tracked (tickets grow along the list). */
static struct pend *pend_find(struct sp_cluster_route *r, uint64_t ticket)
{
	size_t lo = r->pend_head, hi = r->npend;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->pend[mid].ticket < ticket)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < r->npend && r->pend[lo].ticket == ticket ? &r->pend[lo] : NULL;
}

static void pend_gone(struct sp_cluster_route *r, struct pend *p)
{
	p->state = PEND_GONE;
	while (r->pend_head < r->npend && r->pend[r->pend_head].state == PEND_GONE)
		r->pend_head++;
	if (r->pend_head == r->npend)
		r->pend_head = r->npend = 0;
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
	bool behind = p->slot < r->nslots && r->waiting[p->slot] > 0;
	struct pend *pe = ph ? pend_find(r, p->seq) : NULL;
	struct sp_pending_result q = *p;
	struct held *h;

	if (!ph && !behind)
		return false;
	if (ph && !(pe && pe->state == PEND_OUT)) {
		/* Its answer came before it (or, untracked, none will). */
		q.status = pe ? pe->status : SP_STATUS_ERR_CLUSTER_UNAVAILABLE;
		q.seq = pe ? pe->seq : 0;
		if (pe)
			pend_gone(r, pe);
		ph = false;
		if (!behind) {
			sp_mailbox_send_result(sh, &q, failed);
			return true;
		}
	}
	if (held_room(r)) {
		if (!ph)
			return false;   /* sent now: out of order, but not lost */
		/* A placeholder cannot be held: answered unavailable (its
		 * answer, when it comes, finds nothing to resolve). */
		pe->held = true;
		q.status = SP_STATUS_ERR_CLUSTER_UNAVAILABLE;
		q.seq = 0;
		sp_mailbox_send_result(sh, &q, false);
		return true;
	}
	h = &r->held[r->nheld++];
	memset(h, 0, sizeof(*h));
	h->r = q;
	h->failed = failed;
	h->resolved = !ph;
	if (ph) {
		h->ticket = p->seq;
		h->r.seq = 0;
		pe->held = true;
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

/* The answer to a forwarded DELIVER, to the sender's shard. */
static void fwd_answer(struct sp_shard *sh, const struct pend *p, uint8_t status)
{
	struct sp_inbox_msg *res = sp_inbox_msg_new(SP_XS_RESULT, 0);

	if (!res)
		return;         /* the sender's connection waits; its idle timer ends it */
	res->arg[0] = p->arg[0];
	res->arg[1] = p->arg[1];
	res->arg[2] = p->arg[2];
	res->arg[3] = status;
	sp_shard_post(sh, p->from, res);
}

/* The answer to p (or 81 at its deadline): to the sender's shard, to its
 * held placeholder, or kept for the placeholder to claim. */
static void answer(struct sp_shard *sh, struct pend *p, uint8_t status, uint64_t seq)
{
	struct sp_cluster_route *r = sh->cluster;

	r->inflight--;
	if (p->forwarded) {
		fwd_answer(sh, p, status);
		pend_gone(r, p);
		return;
	}
	if (!p->held) {
		p->state = PEND_ANSWERED;
		p->status = status;
		p->seq = seq;
		return;
	}
	for (size_t i = 0; i < r->nheld; i++) {
		struct held *h = &r->held[i];

		if (h->ticket != p->ticket || h->resolved)
			continue;
		h->resolved = true;
		h->r.status = status;
		h->r.seq = seq;
		break;
	}
	pend_gone(r, p);
}

static void resolve(struct sp_shard *sh, uint64_t ticket, uint8_t status, uint64_t seq,
		    enum sp_cluster_counter lat)
{
	struct sp_cluster_route *r = sh->cluster;
	struct pend *p = pend_find(r, ticket);

	/* None: answered after its timeout (the sender has its result). */
	if (!p || p->state != PEND_OUT)
		return;
	sp_cluster_count(r->node, lat, sh->now_ns - p->sent_ns);
	answer(sh, p, status, seq);
}

void sp_cluster_route_tick(struct sp_shard *sh)
{
	struct sp_cluster_route *r = sh->cluster;
	bool any = false;

	if (!r)
		return;
	/* Oldest first (deadlines grow along the list): unanswered ones are
	 * answered 81; answers no placeholder claimed within twice the
	 * timeout are dropped (the sender's connection went). */
	for (size_t i = r->pend_head; i < r->npend && sh->now_ns >= r->pend[i].deadline_ns; i++) {
		struct pend *p = &r->pend[i];

		if (p->state == PEND_OUT) {
			sp_cluster_count(r->node, SP_CLUSTER_TIMEOUTS, 1);
			answer(sh, p, SP_STATUS_ERR_CLUSTER_UNAVAILABLE, 0);
			any = true;
		} else if (p->state == PEND_ANSWERED && sh->now_ns >= p->deadline_ns + 2 * r->timeout_ns) {
			pend_gone(r, p);
		}
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
	return sh->cluster->inflight < sh->cluster->inflight_max && pend_room(sh->cluster) == 0;
}

uint64_t sp_cluster_route_ticket(struct sp_shard *sh)
{
	return ++sh->cluster->next_ticket;
}

void sp_cluster_route_sent(struct sp_shard *sh, uint64_t ticket)
{
	pend_add(sh, ticket);
}

void sp_cluster_route_answered(struct sp_shard *sh, uint64_t ticket, enum sp_status st,
			       uint64_t seq, enum sp_cluster_counter lat)
{
	resolve(sh, ticket, (uint8_t)st, seq, lat);
	release(sh);
}

/* Sends DELIVER body to `to`'s subject and tracks it. SP_STATUS_UNSPECIFIED
 * when it went out (*out its entry, ticket in it), or
 * ERR_CLUSTER_UNAVAILABLE. */
static enum sp_status deliver(struct sp_shard *sh, const uint8_t to[SP_KEY_LEN],
			      const uint8_t *body, size_t len, struct pend **out)
{
	struct sp_cluster_route *r = sh->cluster;
	uint8_t token[SP_KEY_LEN];
	uint64_t ticket;
	int ret;

	*out = NULL;
	if (!sp_cluster_route_room(sh))
		return SP_STATUS_ERR_CLUSTER_UNAVAILABLE;       /* the cluster is behind */
	ticket = ++r->next_ticket;
	sp_cluster_token(r->node, to, token);
	ret = sp_cluster_port_deliver(r->port, token, ticket, body, len);
	sodium_memzero(token, sizeof(token));
	if (ret) {
		sp_cluster_count(r->node, SP_CLUSTER_ERRORS, 1);
		return SP_STATUS_ERR_CLUSTER_UNAVAILABLE;
	}
	*out = pend_add(sh, ticket);
	sp_cluster_count(r->node, SP_CLUSTER_REMOTE_SENDS, 1);
	return SP_STATUS_UNSPECIFIED;
}

enum sp_close_reason sp_cluster_route_send(struct sp_shard *sh, struct sp_conn *c,
					   const uint8_t to[SP_KEY_LEN], uint64_t client_id,
					   const uint8_t *body, size_t len)
{
	struct pend *p;
	enum sp_status st = deliver(sh, to, body, len, &p);

	if (sp_mailbox_result(sh, c, client_id, st, p ? p->ticket : 0, false))
		return SP_CLOSE_NOMEM;
	return SP_CLOSE_NONE;
}

void sp_cluster_route_forward(struct sp_shard *sh, unsigned from, const uint64_t arg[3],
			      const uint8_t to[SP_KEY_LEN], const uint8_t *body, size_t len)
{
	struct pend *p, w = { .from = from, .arg = { arg[0], arg[1], arg[2] } };
	enum sp_status st = deliver(sh, to, body, len, &p);

	if (st != SP_STATUS_UNSPECIFIED) {
		fwd_answer(sh, &w, (uint8_t)st);
		return;
	}
	p->forwarded = true;
	p->from = from;
	memcpy(p->arg, w.arg, sizeof(p->arg));
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
