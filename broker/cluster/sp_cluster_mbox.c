/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_cluster_mbox.c: mailboxes in JetStream, on the shard's thread
 * (sp_cluster_mbox.h).
 */
#include "sp_cluster_mbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "sp_account.h"
#include "sp_cluster_msg.h"
#include "sp_cluster_route.h"
#include "sp_conn_table.h"
#include "sp_deliver.h"
#include "sp_lifecycle.h"
#include "sp_list.h"
#include "sp_mailbox.h"
#include "sp_sendlim.h"
#include "sp_shard.h"

enum {
	BUCKETS = 4096,                 /* PubAck waits by ticket (a power of 2) */
	SET_MIN = 16,
	/* A GET refused (no leader during an election, NATS down) is asked
	 * again this much later. */
	RETRY_NS = 100 * 1000 * 1000,
	/* Connections whose reader runs on per pass (round robin). */
	READERS_PER_PASS = 256,
};

/* Where a connection's mailbox is. */
enum jc_mode {
	JC_BACKLOG = 1,         /* reading the backlog; Drained at its end */
	JC_CATCHUP,             /* reading what the live path could not send; no Drained */
	JC_LIVE,
};

/* The seqs a connection was sent and whose delete JetStream has not
 * confirmed: linear probing, 0 = empty, deletions shift back. */
struct seqset {
	uint64_t *v;
	uint32_t cap, n;
};

/* One routed connection's mailbox state. */
struct jconn {
	uint32_t slot, gen;
	uint8_t mode;                   /* enum jc_mode */
	bool get_out;                   /* a GET is unanswered */
	bool reader;                    /* in readers[] */
	uint8_t token[SP_KEY_LEN];
	uint64_t from;                  /* reading: the next seq to ask for */
	uint64_t hint;                  /* reading: the highest seq a STORED named */
	uint64_t read_below;            /* LIVE: every seq below was read or is gone */
	uint64_t get_ticket;
	uint64_t get_deadline_ns;       /* get_out: asked again after this */
	uint64_t retry_ns;              /* !get_out: not asked before this */
	uint64_t count;                 /* the backlog's envelopes (Drained.count) */
	uint64_t acks_nothing;
	struct seqset sent;
};

/* A durable send waiting for its PubAck. */
struct pstore {
	struct pstore *hnext;
	struct sp_list fifo;            /* oldest first */
	uint64_t ticket;
	uint64_t sent_ns;
	uint8_t to[SP_KEY_LEN];
	uint32_t len;
	uint8_t body[];
};

/* A delete to ask again (its answer was an error or nobody). */
struct redel {
	uint64_t conn, seq;
};

struct sp_cluster_mbox {
	struct sp_cluster_port *port;
	struct sp_cluster *node;
	const struct sp_config *cfg;
	struct jconn **conns;           /* per slot, NULL while not routed */
	uint32_t nslots;
	uint32_t *readers;              /* slots reading, unordered */
	uint32_t nreaders;
	uint32_t next_reader;
	struct pstore **buckets;
	struct sp_list fifo;
	uint64_t next_get;
	uint64_t timeout_ns;
	struct redel *redel;
	size_t nredel, redel_cap;
};

/* --- seq sets ----------------------------------------------------------------- */

static uint32_t seq_hash(uint64_t s, uint32_t cap)
{
	s *= 0x9e3779b97f4a7c15ull;
	return (uint32_t)(s >> 32) & (cap - 1);
}

static bool set_has(const struct seqset *s, uint64_t seq)
{
	if (!s->cap)
		return false;
	for (uint32_t i = seq_hash(seq, s->cap);; i = (i + 1) & (s->cap - 1)) {
		if (s->v[i] == seq)
			return true;
		if (!s->v[i])
			return false;
	}
}

static int set_grow(struct seqset *s)
{
	uint32_t ncap = s->cap ? s->cap * 2 : SET_MIN;
	uint64_t *nv = calloc(ncap, sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->cap; i++) {
		uint32_t j;

		if (!s->v[i])
			continue;
		for (j = seq_hash(s->v[i], ncap); nv[j]; j = (j + 1) & (ncap - 1))
			;
		nv[j] = s->v[i];
	}
	free(s->v);
	s->v = nv;
	s->cap = ncap;
	return 0;
}

static int set_add(struct seqset *s, uint64_t seq)
{
	uint32_t i;

	if (set_has(s, seq))
		return 0;
	if ((s->n + 1) * 10 > s->cap * 7 && set_grow(s))
		return -ENOMEM;
	for (i = seq_hash(seq, s->cap); s->v[i]; i = (i + 1) & (s->cap - 1))
		;
	s->v[i] = seq;
	s->n++;
	return 0;
}

static void set_del(struct seqset *s, uint64_t seq)
{
	uint32_t i, j;

	if (!s->cap)
		return;
	for (i = seq_hash(seq, s->cap); s->v[i] != seq; i = (i + 1) & (s->cap - 1))
		if (!s->v[i])
			return;
	s->v[i] = 0;
	s->n--;
	/* Shift back the entries of the run after it that hashed at or before i. */
	for (j = (i + 1) & (s->cap - 1); s->v[j]; j = (j + 1) & (s->cap - 1)) {
		uint32_t h = seq_hash(s->v[j], s->cap);

		if ((j > i && (h <= i || h > j)) || (j < i && h <= i && h > j)) {
			s->v[i] = s->v[j];
			s->v[j] = 0;
			i = j;
		}
	}
}

/* --- life ----------------------------------------------------------------------- */

int sp_cluster_mbox_create(struct sp_cluster_mbox **out, struct sp_cluster_port *port,
			   const struct sp_config *cfg, uint32_t nslots)
{
	struct sp_cluster_mbox *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return -ENOMEM;
	m->port = port;
	m->node = sp_cluster_port_node(port);
	m->cfg = cfg;
	m->nslots = nslots;
	m->timeout_ns = (uint64_t)cfg->cluster_request_timeout_ms * 1000000;
	m->conns = calloc(nslots, sizeof(*m->conns));
	m->readers = calloc(nslots, sizeof(*m->readers));
	m->buckets = calloc(BUCKETS, sizeof(*m->buckets));
	sp_list_init(&m->fifo);
	if (!m->conns || !m->readers || !m->buckets) {
		sp_cluster_mbox_destroy(m);
		return -ENOMEM;
	}
	*out = m;
	return 0;
}

static void jconn_free(struct jconn *j)
{
	free(j->sent.v);
	sodium_memzero(j, sizeof(*j));
	free(j);
}

static void pstore_free(struct pstore *p)
{
	sodium_memzero(p->body, p->len);
	free(p);
}

void sp_cluster_mbox_destroy(struct sp_cluster_mbox *m)
{
	if (!m)
		return;
	for (uint32_t i = 0; m->conns && i < m->nslots; i++)
		if (m->conns[i])
			jconn_free(m->conns[i]);
	while (!sp_list_empty(&m->fifo)) {
		struct pstore *p = sp_list_entry(m->fifo.next, struct pstore, fifo);

		sp_list_del(&p->fifo);
		pstore_free(p);
	}
	free(m->conns);
	free(m->readers);
	free(m->buckets);
	free(m->redel);
	free(m);
}

static struct sp_cluster_mbox *mbox(struct sp_shard *sh)
{
	return sp_cluster_route_mbox(sh->cluster);
}

static uint64_t conn_id(const struct jconn *j)
{
	return (uint64_t)j->gen << 32 | j->slot;
}

/* The state of c, if it is still the one routed in its slot. */
static struct jconn *of_conn(struct sp_cluster_mbox *m, const struct sp_conn *c)
{
	struct jconn *j = c->tab.slot < m->nslots ? m->conns[c->tab.slot] : NULL;

	return j && j->gen == c->tab.gen ? j : NULL;
}

/* The state and connection named by an answer's conn, or NULL. */
static struct jconn *of_id(struct sp_shard *sh, uint64_t id, struct sp_conn **cp)
{
	struct sp_cluster_mbox *m = mbox(sh);
	uint32_t slot = (uint32_t)id, gen = (uint32_t)(id >> 32);
	struct jconn *j = slot < m->nslots ? m->conns[slot] : NULL;
	struct sp_conn *c;

	if (!j || j->gen != gen || !(c = sp_conn_at(sh, slot, gen)) ||
	    c->s.state != SP_SESSION_ESTABLISHED || c->life.close_reason)
		return NULL;
	*cp = c;
	return j;
}

static void reader_add(struct sp_cluster_mbox *m, struct jconn *j)
{
	if (j->reader)
		return;
	j->reader = true;
	m->readers[m->nreaders++] = j->slot;
}

static void reader_del(struct sp_cluster_mbox *m, struct jconn *j)
{
	if (!j->reader)
		return;
	j->reader = false;
	for (uint32_t i = 0; i < m->nreaders; i++) {
		if (m->readers[i] == j->slot) {
			m->readers[i] = m->readers[--m->nreaders];
			return;
		}
	}
}

void sp_cluster_mbox_stop(struct sp_shard *sh, struct sp_conn *c)
{
	struct sp_cluster_mbox *m = mbox(sh);
	struct jconn *j = of_conn(m, c);

	if (!j)
		return;
	/* What it was sent and did not ack stays in the stream: its next
	 * connection, on any node, reads it again. */
	reader_del(m, j);
	m->conns[j->slot] = NULL;
	jconn_free(j);
}

/* Reads from `from` on (mode BACKLOG or CATCHUP). */
static void read_from(struct sp_cluster_mbox *m, struct jconn *j, enum jc_mode mode, uint64_t from)
{
	j->mode = (uint8_t)mode;
	j->from = from ? from : 1;
	j->hint = 0;
	j->retry_ns = 0;
	reader_add(m, j);
}

void sp_cluster_mbox_start(struct sp_shard *sh, struct sp_conn *c)
{
	struct sp_cluster_mbox *m = mbox(sh);
	struct jconn *j;

	if (c->tab.slot >= m->nslots)
		return;
	if (m->conns[c->tab.slot]) {
		reader_del(m, m->conns[c->tab.slot]);
		jconn_free(m->conns[c->tab.slot]);
		m->conns[c->tab.slot] = NULL;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		/* No backlog for it, and no Drained: it reconnects. */
		sp_life_end_later(sh, c, SP_CLOSE_NOMEM);
		return;
	}
	j->slot = c->tab.slot;
	j->gen = c->tab.gen;
	sp_cluster_token(m->node, c->s.peer, j->token);
	m->conns[j->slot] = j;
	read_from(m, j, JC_BACKLOG, 1);
}

/* --- reading ---------------------------------------------------------------------- */

/* Asks for j's next message if its queue has room and nothing is asked. */
static void read_next(struct sp_shard *sh, struct jconn *j, struct sp_conn *c)
{
	struct sp_cluster_mbox *m = mbox(sh);

	if (j->get_out || sh->now_ns < j->retry_ns)
		return;
	/* Paced as the node's own reader is: below half the queue limit, and
	 * not past what the device can hold unacked. */
	if (sp_session_tx_queued(&c->s) >= sh->cfg->sendq_max / 2 ||
	    j->sent.n >= sh->cfg->mailbox_max_count)
		return;
	j->get_ticket = ++m->next_get;
	if (sp_cluster_port_js_get(m->port, j->token, conn_id(j), j->get_ticket, j->from)) {
		sp_cluster_count(m->node, SP_CLUSTER_ERRORS, 1);
		j->retry_ns = sh->now_ns + RETRY_NS;
		return;
	}
	j->get_out = true;
	j->get_deadline_ns = sh->now_ns + m->timeout_ns;
}

/* The end of a read: everything below from was read or is gone. */
static void read_end(struct sp_shard *sh, struct jconn *j, struct sp_conn *c)
{
	struct sp_cluster_mbox *m = mbox(sh);
	struct sp_frame d;

	reader_del(m, j);
	j->read_below = j->from;
	if (j->mode == JC_BACKLOG) {
		memset(&d, 0, sizeof(d));
		d.type = SP_FRAME_DRAINED;
		d.u.drained.count = j->count;
		if (sp_deliver_reply(sh, c, &d))
			sp_life_end_later(sh, c, SP_CLOSE_INTERNAL);
	}
	j->mode = JC_LIVE;
}

/* One envelope onto c (its seq not sent to it before). 0, or -1 when c ends. */
static int send_stored(struct sp_shard *sh, struct jconn *j, struct sp_conn *c, uint64_t seq,
		       const uint8_t *body, size_t len)
{
	if (set_add(&j->sent, seq) || sp_deliver_frame(sh, c, seq, body, len)) {
		set_del(&j->sent, seq);
		sp_life_end_later(sh, c, SP_CLOSE_NOMEM);
		return -1;
	}
	sp_conn_mark(sh, c);
	return 0;
}

static void on_get(struct sp_shard *sh, const struct sp_cluster_item *it)
{
	struct sp_cluster_mbox *m = mbox(sh);
	const struct sp_cluster_js_answer *a = &it->js;
	struct sp_conn *c = NULL;
	struct jconn *j = of_id(sh, a->conn, &c);

	if (!j || !j->get_out || a->ticket != j->get_ticket)
		return;         /* an old question's answer (it timed out, or the connection went) */
	j->get_out = false;
	if (a->ok && a->seq >= j->from) {
		j->from = a->seq + 1;
		sp_cluster_count(m->node, SP_CLUSTER_JS_READS, 1);
		if (!set_has(&j->sent, a->seq)) {
			if (send_stored(sh, j, c, a->seq, it->body, it->len))
				return;
			if (j->mode == JC_BACKLOG)
				j->count++;
			sp_metrics_envelope_delivered(sh->metrics, SP_METRICS_PATH_MAILBOX,
						      a->time_ms && sh->wall_ms > a->time_ms ?
						      (sh->wall_ms - a->time_ms) * 1000000 : 0);
		}
		read_next(sh, j, c);
		return;
	}
	if (!a->ok && !a->no_responders && a->err_code == SP_CLUSTER_JS_ERR_NO_MESSAGE) {
		/* Nothing from `from` on; unless a STORED named a seq from there
		 * while the question was out: then it is there now. */
		if (j->hint >= j->from) {
			read_next(sh, j, c);
			return;
		}
		read_end(sh, j, c);
		return;
	}
	/* No leader (an election), NATS down, or another error: later. */
	sp_cluster_count(m->node, SP_CLUSTER_ERRORS, 1);
	j->retry_ns = sh->now_ns + RETRY_NS;
}

/* An envelope stored for the device of c (here, or told by STORED). */
static void on_stored_for(struct sp_shard *sh, struct jconn *j, struct sp_conn *c, uint64_t seq,
			  const uint8_t *body, size_t len)
{
	struct sp_cluster_mbox *m = mbox(sh);

	if (j->mode != JC_LIVE) {
		/* The reader sends it in order; it must not stop before it. */
		if (seq > j->hint)
			j->hint = seq;
		return;
	}
	/* Read already (a STORED slower than the reader), or sent. */
	if (seq < j->read_below || set_has(&j->sent, seq))
		return;
	if (sp_session_tx_queued(&c->s) > sh->cfg->sendq_max ||
	    j->sent.n >= sh->cfg->mailbox_max_count) {
		/* Full: JetStream keeps it; the reader sends it and what follows
		 * once there is room. */
		read_from(m, j, JC_CATCHUP, seq);
		return;
	}
	if (send_stored(sh, j, c, seq, body, len) == 0)
		sp_deliver_count_live(sh);
}

static void on_stored(struct sp_shard *sh, const struct sp_cluster_item *it)
{
	struct sp_cluster_mbox *m = mbox(sh);
	struct sp_conn *c = sp_cluster_route_holder(sh, it->token);
	struct jconn *j = c ? of_conn(m, c) : NULL;

	if (!j || c->s.state != SP_SESSION_ESTABLISHED || c->life.close_reason)
		return;
	on_stored_for(sh, j, c, it->seq, it->body, it->len);
	sp_cluster_count(m->node, SP_CLUSTER_REMOTE_DELIVERIES, 1);
}

/* --- sending ---------------------------------------------------------------------- */

static uint32_t bucket_of(uint64_t ticket)
{
	return (uint32_t)(ticket & (BUCKETS - 1));
}

static struct pstore *pstore_take(struct sp_cluster_mbox *m, uint64_t ticket)
{
	struct pstore **pp = &m->buckets[bucket_of(ticket)];

	for (; *pp; pp = &(*pp)->hnext) {
		struct pstore *p = *pp;

		if (p->ticket == ticket) {
			*pp = p->hnext;
			sp_list_del(&p->fifo);
			return p;
		}
	}
	return NULL;
}

enum sp_close_reason sp_cluster_mbox_send(struct sp_shard *sh, struct sp_conn *c,
					  const uint8_t to[SP_KEY_LEN], bool anon,
					  uint64_t client_id, const uint8_t *body, size_t len)
{
	struct sp_cluster_mbox *m = mbox(sh);
	char msgid[SP_CLUSTER_MSGID_HEX_LEN + 1];
	uint8_t token[SP_KEY_LEN];
	enum sp_status st = SP_STATUS_UNSPECIFIED;
	struct pstore *p = NULL;
	uint64_t ticket = 0;

	if (!anon && sp_sendlim_take(sh->sendlim, c->s.peer, len, sh->wall_ms) < 0) {
		st = SP_STATUS_ERR_RATE_LIMITED;
	} else if (!sp_cluster_route_room(sh) || !(p = malloc(sizeof(*p) + len))) {
		st = SP_STATUS_ERR_CLUSTER_UNAVAILABLE;         /* the cluster is behind */
	} else {
		ticket = sp_cluster_route_ticket(sh);
		sp_cluster_token(m->node, to, token);
		if (!anon)
			sp_cluster_msg_id(m->node, c->s.peer, to, client_id, msgid);
		if (sp_cluster_port_js_store(m->port, token, anon ? NULL : msgid, ticket, body, len)) {
			st = SP_STATUS_ERR_CLUSTER_UNAVAILABLE;
			sp_cluster_count(m->node, SP_CLUSTER_ERRORS, 1);
			sp_cluster_count(m->node, SP_CLUSTER_JS_REFUSED, 1);
		}
		sodium_memzero(token, sizeof(token));
	}
	if (st == SP_STATUS_UNSPECIFIED) {
		p->ticket = ticket;
		p->sent_ns = sh->now_ns;
		memcpy(p->to, to, SP_KEY_LEN);
		p->len = (uint32_t)len;
		memcpy(p->body, body, len);
		p->hnext = m->buckets[bucket_of(ticket)];
		m->buckets[bucket_of(ticket)] = p;
		sp_list_add_tail(&m->fifo, &p->fifo);
		sp_cluster_route_sent(sh, ticket);
	} else {
		free(p);
		ticket = 0;
	}
	if (sp_mailbox_result(sh, c, client_id, st, ticket, false))
		return SP_CLOSE_NOMEM;
	return SP_CLOSE_NONE;
}

/* JetStream's refusal as the sender's status. */
static enum sp_status refused_status(const struct sp_cluster_js_answer *a)
{
	if (!a->no_responders && (a->err_code == SP_CLUSTER_JS_ERR_SUBJECT_FULL ||
				  a->err_code == SP_CLUSTER_JS_ERR_STORE_FULL))
		return SP_STATUS_ERR_MAILBOX_FULL;
	return SP_STATUS_ERR_CLUSTER_UNAVAILABLE;
}

static void post_stored(struct sp_shard *sh, const struct pstore *p, uint64_t seq);

static void on_puback(struct sp_shard *sh, const struct sp_cluster_item *it)
{
	struct sp_cluster_mbox *m = mbox(sh);
	const struct sp_cluster_js_answer *a = &it->js;
	struct pstore *p = pstore_take(m, a->ticket);

	if (!p)
		return;         /* forgotten: its sender was answered 81 long ago */
	if (!a->ok) {
		sp_cluster_count(m->node, SP_CLUSTER_JS_REFUSED, 1);
		sp_cluster_route_answered(sh, a->ticket, refused_status(a), 0, SP_CLUSTER_JS_PUBLISH);
		pstore_free(p);
		return;
	}
	sp_cluster_count(m->node, SP_CLUSTER_JS_STORED, 1);
	/* A late PubAck (its sender was told 81) resolves nothing; the
	 * envelope is stored all the same and goes to its device. */
	sp_cluster_route_answered(sh, a->ticket, SP_STATUS_ACCEPTED, a->seq, SP_CLUSTER_JS_PUBLISH);
	/* A duplicate was delivered when it was first stored. The device's
	 * home shard tells its connection here, or the cluster: the node's
	 * NATS connection does not echo a shard's publish to another's
	 * subscription. */
	if (!a->duplicate && sp_shard_home(sh, p->to) != sh->id)
		post_stored(sh, p, a->seq);
	else if (!a->duplicate)
		sp_cluster_mbox_stored_home(sh, p->to, a->seq, p->body, p->len);
	pstore_free(p);
}

/* To the recipient's home shard, which goes on as sp_cluster_mbox_stored_home. */
static void post_stored(struct sp_shard *sh, const struct pstore *p, uint64_t seq)
{
	struct sp_inbox_msg *msg = sp_inbox_msg_new(SP_XS_STORED, p->len);

	if (!msg)
		return;         /* stored: its device reads it when it connects */
	memcpy(msg->device, p->to, SP_KEY_LEN);
	msg->arg[0] = seq;
	memcpy(msg->data, p->body, p->len);
	sp_shard_post(sh, sp_shard_home(sh, p->to), msg);
}

void sp_cluster_mbox_stored_home(struct sp_shard *sh, const uint8_t to[SP_KEY_LEN], uint64_t seq,
				 const uint8_t *body, size_t len)
{
	struct sp_cluster_mbox *m = mbox(sh);
	struct sp_conn *rc = sp_deliver_recipient(sh, to);
	struct jconn *j;
	uint8_t token[SP_KEY_LEN];

	if (rc && (j = of_conn(m, rc)) && rc->s.state == SP_SESSION_ESTABLISHED &&
	    !rc->life.close_reason) {
		on_stored_for(sh, j, rc, seq, body, len);
		return;
	}
	/* Held on another node, or by nobody (the publish then goes nowhere:
	 * the device reads it when it connects). */
	sp_cluster_token(m->node, to, token);
	if (sp_cluster_port_stored(m->port, token, seq, body, len))
		sp_cluster_count(m->node, SP_CLUSTER_ERRORS, 1);
	sodium_memzero(token, sizeof(token));
}

/* --- acks ------------------------------------------------------------------------- */

static void redel_add(struct sp_cluster_mbox *m, uint64_t conn, uint64_t seq)
{
	if (m->nredel == m->redel_cap) {
		size_t ncap = m->redel_cap ? m->redel_cap * 2 : 64;
		struct redel *n;

		/* Bounded by the acks outstanding; beyond memory, the envelope
		 * stays and is read again by the device's next connection. */
		if (ncap > (size_t)m->cfg->cluster_inflight_max ||
		    !(n = realloc(m->redel, ncap * sizeof(*n))))
			return;
		m->redel = n;
		m->redel_cap = ncap;
	}
	m->redel[m->nredel].conn = conn;
	m->redel[m->nredel].seq = seq;
	m->nredel++;
}

enum sp_close_reason sp_cluster_mbox_ack(struct sp_shard *sh, struct sp_conn *c,
					 const struct sp_frame *f)
{
	struct sp_cluster_mbox *m = mbox(sh);
	struct jconn *j = of_conn(m, c);
	uint32_t unknown = 0;

	for (uint32_t i = 0; i < f->u.ack.count && i < SP_ACK_SEQS_MAX; i++) {
		uint64_t seq = f->u.ack.seqs[i];

		/* Only what this connection was sent: the mailbox is the proven
		 * key's, and a seq names a message of the whole stream. */
		if (!j || !set_has(&j->sent, seq)) {
			unknown++;
			continue;
		}
		sp_metrics_acks(sh->metrics, 1);
		if (sp_cluster_port_js_delete(m->port, j->token, conn_id(j), seq))
			redel_add(m, conn_id(j), seq);
	}
	if (!unknown)
		return SP_CLOSE_NONE;
	if (!j)
		return SP_CLOSE_NONE;
	j->acks_nothing += unknown;
	return j->acks_nothing > sh->cfg->ack_unknown_max ? SP_CLOSE_ACK_FLOOD : SP_CLOSE_NONE;
}

static void on_deleted(struct sp_shard *sh, const struct sp_cluster_item *it)
{
	struct sp_cluster_mbox *m = mbox(sh);
	const struct sp_cluster_js_answer *a = &it->js;
	struct sp_conn *c = NULL;
	struct jconn *j = of_id(sh, a->conn, &c);

	if (a->ok) {
		sp_cluster_count(m->node, SP_CLUSTER_JS_DELETES, 1);
	} else if (a->no_responders || a->err_code != SP_CLUSTER_JS_ERR_NO_MESSAGE) {
		/* Not deleted (an election, say): asked again while the
		 * connection lasts. */
		sp_cluster_count(m->node, SP_CLUSTER_ERRORS, 1);
		if (j)
			redel_add(m, a->conn, a->seq);
		return;
	}
	if (j)
		set_del(&j->sent, a->seq);
}

/* --- purges ----------------------------------------------------------------------- */

int sp_cluster_mbox_purge(struct sp_shard *sh, const uint8_t device[SP_KEY_LEN], uint64_t id,
			  uint64_t n)
{
	struct sp_cluster_mbox *m = mbox(sh);
	uint8_t token[SP_KEY_LEN];
	int ret;

	sp_cluster_token(m->node, device, token);
	ret = sp_cluster_port_js_purge(m->port, token, id, n);
	sodium_memzero(token, sizeof(token));
	if (ret)
		sp_cluster_count(m->node, SP_CLUSTER_ERRORS, 1);
	return ret;
}

/* --- the inbox and the passes ----------------------------------------------------- */

void sp_cluster_mbox_item(struct sp_shard *sh, const struct sp_cluster_item *it)
{
	if (it->kind == SP_CLUSTER_STORED) {
		on_stored(sh, it);
		return;
	}
	switch (it->js.kind) {
	case SP_CLUSTER_JS_PUBACK: on_puback(sh, it); break;
	case SP_CLUSTER_JS_GET: on_get(sh, it); break;
	case SP_CLUSTER_JS_DELETE: on_deleted(sh, it); break;
	case SP_CLUSTER_JS_PURGE:
		if (!it->js.ok)
			sp_cluster_count(mbox(sh)->node, SP_CLUSTER_ERRORS, 1);
		sp_account_purged(sh, it->js.conn, it->js.ticket, it->js.ok);
		break;
	default: break;
	}
}

void sp_cluster_mbox_run(struct sp_shard *sh, bool tick)
{
	struct sp_cluster_mbox *m = mbox(sh);
	size_t keep = 0;

	/* Readers: a bounded number per pass, round robin. */
	for (uint32_t k = 0; k < m->nreaders && k < READERS_PER_PASS; k++) {
		uint32_t slot = m->readers[(m->next_reader + k) % m->nreaders];
		struct jconn *j = m->conns[slot];
		struct sp_conn *c = NULL;

		if (!j || !of_id(sh, conn_id(j), &c))
			continue;       /* going: its stop removes it */
		if (j->get_out && sh->now_ns >= j->get_deadline_ns) {
			j->get_out = false;     /* unanswered: asked again */
			sp_cluster_count(m->node, SP_CLUSTER_TIMEOUTS, 1);
		}
		read_next(sh, j, c);
	}
	if (m->nreaders)
		m->next_reader = (m->next_reader + READERS_PER_PASS) % m->nreaders;
	if (!tick)
		return;
	/* PubAcks that did not come: their senders were answered 81 by the
	 * route; the waits are forgotten at twice the timeout. */
	while (!sp_list_empty(&m->fifo)) {
		struct pstore *p = sp_list_entry(m->fifo.next, struct pstore, fifo);

		if (sh->now_ns < p->sent_ns + 2 * m->timeout_ns)
			break;
		pstore_free(pstore_take(m, p->ticket));
		sp_cluster_count(m->node, SP_CLUSTER_JS_REFUSED, 1);
	}
	/* Deletes to ask again, for connections still here. */
	for (size_t i = 0; i < m->nredel; i++) {
		struct redel d = m->redel[i];
		struct sp_conn *c = NULL;
		struct jconn *j = of_id(sh, d.conn, &c);

		if (!j)
			continue;
		if (sp_cluster_port_js_delete(m->port, j->token, d.conn, d.seq))
			m->redel[keep++] = d;
	}
	m->nredel = keep;
}
