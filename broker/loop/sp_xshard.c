/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_xshard.c: connections handed between shards, and the inbox's
 * consumer (sp_xshard.h).
 */
#include "sp_xshard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "sp_admin.h"
#include "sp_admin_exec.h"
#include "sp_cluster_route.h"
#include "sp_conn_io.h"
#include "sp_conn_table.h"
#include "sp_deliver.h"
#include "sp_lifecycle.h"
#include "sp_mailbox.h"
#include "sp_registration.h"
#include "sp_router.h"
#include "sp_shard.h"
#include "sp_source.h"
#include "sp_timers.h"

/* Input kept for the home shard while the recv is being cancelled: what a
 * client sends right after its handshake message, at most a few receive
 * buffers; more ends the connection (it would not wait for an answer). */
enum { CARRY_BUFFERS_MAX = 4 };

struct sp_move {
	int fd;
	uint8_t refuse;                 /* the registration's verdict (sp_registration.h) */
	uint64_t accepted_ns;
	struct sp_conn_src src;
	struct sp_session s;            /* detached: no keys, no env */
	struct sp_session_keys *keys;   /* sodium_malloc'd; wiped by sodium_free */
	uint8_t *carry;                 /* unread input, in arrival order */
	size_t carry_len, carry_cap;
	/* It still counts in node->conns (max-conns): from the source's
	 * release until the home shard's table holds it, so that a
	 * connection in flight between shards is not a free place. */
	bool node_counted;
};

/* node->conns for a connection between two tables (see node_counted). */
static void carry_count(struct sp_shard *sh, struct sp_move *m, bool on)
{
	if (m->node_counted == on)
		return;
	if (on)
		atomic_fetch_add_explicit(&sh->node->conns, 1, memory_order_relaxed);
	else
		atomic_fetch_sub_explicit(&sh->node->conns, 1, memory_order_relaxed);
	m->node_counted = on;
}

static void move_free(struct sp_move *m)
{
	if (!m)
		return;
	if (m->keys)
		sodium_free(m->keys);
	free(m->carry);
	free(m);
}

bool sp_xshard_move_begin(struct sp_shard *sh, struct sp_conn *c, enum sp_close_reason *why)
{
	unsigned home;

	*why = SP_CLOSE_NONE;
	/* Anonymous sessions have no device; WebSocket connections stay where
	 * they were accepted (the daemon runs one shard with --ws-listen). */
	if (!sh->node || !c->s.has_peer || c->ws.t)
		return false;
	home = sp_node_home(sh->node, c->s.peer);
	if (home == sh->id)
		return false;
	c->move.m = calloc(1, sizeof(*c->move.m));
	if (!c->move.m) {
		*why = SP_CLOSE_NOMEM;
		return false;
	}
	c->move.m->fd = -1;
	sp_session_pause(&c->s);
	if (sp_io_cancel_recv(sh, c)) {
		*why = SP_CLOSE_INTERNAL;
		return false;
	}
	sp_conn_mark(sh, c);
	return true;
}

enum sp_close_reason sp_xshard_move_input(struct sp_shard *sh, struct sp_conn *c,
					  const uint8_t *data, size_t len)
{
	struct sp_move *m = c->move.m;
	size_t max = (size_t)CARRY_BUFFERS_MAX * sh->cfg->recv_buffer_size;
	size_t cap;
	uint8_t *p;

	if (len == 0)
		return SP_CLOSE_NONE;
	if (m->carry_len + len > max)
		return SP_CLOSE_NOMEM;
	if (m->carry_len + len > m->carry_cap) {
		cap = m->carry_cap ? m->carry_cap * 2 : len;
		while (cap < m->carry_len + len)
			cap *= 2;
		if (!(p = realloc(m->carry, cap)))
			return SP_CLOSE_NOMEM;
		m->carry = p;
		m->carry_cap = cap;
	}
	memcpy(m->carry + m->carry_len, data, len);
	m->carry_len += len;
	return SP_CLOSE_NONE;
}

void sp_xshard_move_flush(struct sp_shard *sh, struct sp_conn *c)
{
	struct sp_move *m = c->move.m;
	struct sp_inbox_msg *msg;
	unsigned home;

	/* Message 2 (IK) goes out from here first. */
	if (sp_io_start_send(sh, c)) {
		sp_life_cut(sh, c, SP_CLOSE_INTERNAL);
		return;
	}
	if (c->io.recv_armed || c->io.send_inflight || sp_session_tx_queued(&c->s))
		return;
	msg = sp_inbox_msg_new(SP_XS_MOVE, 0);
	m->keys = sodium_malloc(sizeof(*m->keys));
	if (!msg || !m->keys) {
		free(msg);
		sp_life_cut(sh, c, SP_CLOSE_NOMEM);
		return;
	}
	home = sp_node_home(sh->node, c->s.peer);
	if (sp_session_detach(&c->s, &m->s, m->keys)) {
		free(msg);
		sp_life_cut(sh, c, SP_CLOSE_INTERNAL);
		return;
	}
	m->accepted_ns = sp_timers_accepted_ns(c);
	m->refuse = (uint8_t)sp_registration_proven(c);
	sp_source_moved(c, &m->src);
	m->fd = sp_io_forget(c);
	sp_timers_ended(sh, c);
	c->move.m = NULL;
	msg->ptr = m;
	memcpy(msg->device, m->s.peer, SP_KEY_LEN);
	carry_count(sh, m, true);       /* before finalize lets go of the slot's count */
	sp_shard_post(sh, home, msg);
	/* Its session is DEAD (detached), nothing in flight: the slot goes. */
	sp_life_finalize(sh, c);
}

void sp_xshard_forget(struct sp_conn *c)
{
	move_free(c->move.m);
	c->move.m = NULL;
}

/* The source a dropped move was counted under is released at shard 0. */
static void drop_move(struct sp_shard *sh, struct sp_move *m)
{
	struct sp_inbox_msg *msg;

	if (m->fd >= 0)
		close(m->fd);
	carry_count(sh, m, false);
	if (m->src.counted && (msg = sp_inbox_msg_new(SP_XS_SOURCE, SP_SOURCE_KEY_LEN))) {
		memcpy(msg->data, m->src.key, SP_SOURCE_KEY_LEN);
		msg->arg[0] = 1;
		msg->arg[1] = m->src.unauth;
		if (sh->id == 0)
			sp_inbox_post(&sh->inbox, msg);
		else
			sp_shard_post(sh, 0, msg);
	}
	move_free(m);
}

/*
 * What the client sent meanwhile (an IK proof, typically: it goes out
 * right after message 2, which left before the hand-off), read now rather
 * than at the recv's first completion: the connection is proven and routed
 * before this shard takes its next message, so a sender's envelope posted
 * after the proof was sent finds the device online, as with one shard.
 * Bounded like the unread input; EOF and errors are left for the recv.
 */
static void take_waiting(struct sp_shard *sh, struct sp_move *m)
{
	size_t cap = (size_t)CARRY_BUFFERS_MAX * sh->cfg->recv_buffer_size;
	ssize_t n;

	while (m->carry_len < cap) {
		if (m->carry_cap - m->carry_len < sh->cfg->recv_buffer_size) {
			size_t ncap = m->carry_len + sh->cfg->recv_buffer_size;
			uint8_t *p = realloc(m->carry, ncap);

			if (!p)
				return;
			m->carry = p;
			m->carry_cap = ncap;
		}
		n = recv(m->fd, m->carry + m->carry_len, m->carry_cap - m->carry_len, MSG_DONTWAIT);
		if (n <= 0)
			return;
		m->carry_len += (size_t)n;
	}
}

static void adopt(struct sp_shard *sh, struct sp_move *m)
{
	enum sp_close_reason r;
	struct sp_conn *c;

	c = sh->stopping ? NULL : sp_life_adopt(sh, m->fd);
	if (c)
		carry_count(sh, m, false);      /* the table's count is its count now */
	if (!c) {
		sp_metrics_conn_refused(sh->metrics, sh->stopping ? SP_METRICS_CLOSE_SHUTDOWN
								  : SP_METRICS_CLOSE_MAX_CONNS);
		drop_move(sh, m);
		return;
	}
	if (sp_session_attach(&c->s, &m->s, &sh->env, m->keys)) {
		/* The slot is a fresh PREAMBLE session again: cut it as one. */
		sp_session_accept(&c->s, &sh->env);
		m->fd = -1;     /* c's now */
		drop_move(sh, m);
		sp_life_cut(sh, c, SP_CLOSE_NOMEM);
		return;
	}
	take_waiting(sh, m);
	sp_source_attach(c, &m->src);
	m->src.counted = false;
	sp_registration_adopt(c, m->refuse);
	sp_timers_adopt(sh, c, m->accepted_ns);
	m->fd = -1;
	if (sp_io_arm_recv(sh, c)) {
		sp_life_cut(sh, c, SP_CLOSE_INTERNAL);
		move_free(m);
		return;
	}
	/* As the session's established hook would have on the first shard:
	 * XX is proven and routed now, IK at its first transport message. */
	r = sp_router_established(sh, c);
	if (!r && m->carry_len)
		r = sp_shard_rx(sh, c, m->carry, m->carry_len);
	if (r)
		sp_life_rx_failed(sh, c, r);
	sp_conn_mark(sh, c);
	move_free(m);
}

/* An online-only Send for a device homed here: delivered if it is online,
 * and its status back to the sender's shard. */
static void online(struct sp_shard *sh, struct sp_inbox_msg *m)
{
	struct sp_conn *rc = sp_deliver_recipient(sh, m->device);
	struct sp_inbox_msg *res;
	struct sp_frame f;
	enum sp_status st;

	/* Cluster: not connected here, maybe to another node. */
	if (!rc && sh->cluster) {
		sp_cluster_route_forward(sh, m->from, m->arg, m->device, m->data, m->len);
		return;
	}
	res = sp_inbox_msg_new(SP_XS_RESULT, 0);
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_SEND;
	f.body = m->data;
	f.body_len = m->len;
	st = rc ? sp_deliver_online(sh, rc, &f) : SP_STATUS_ERR_OFFLINE;
	if (!res)
		return;         /* the sender's connection waits; its idle timer ends it */
	res->arg[0] = m->arg[0];
	res->arg[1] = m->arg[1];
	res->arg[2] = m->arg[2];
	res->arg[3] = (uint64_t)st;
	sp_shard_post(sh, m->from, res);
}

static void dispatch(struct sp_shard *sh, struct sp_inbox_msg *m)
{
	switch (m->kind) {
	case SP_XS_MOVE:
		adopt(sh, m->ptr);
		m->ptr = NULL;
		break;
	case SP_XS_SOURCE:
		sp_source_remote(sh, m);
		break;
	case SP_XS_ONLINE:
		online(sh, m);
		break;
	case SP_XS_RESULT:
		sp_mailbox_remote_result(sh, (uint32_t)m->arg[0], (uint32_t)m->arg[1], m->arg[2],
					 (enum sp_status)(m->arg[3] & 0xff), m->arg[3] >> 8);
		break;
	case SP_XS_STORED:
		sp_mailbox_remote_stored(sh, m->device, m->arg[0], m->data, m->len);
		break;
	case SP_XS_SYNCED:
		sp_mailbox_synced_peer(sh);
		break;
	case SP_XS_FRAME:
		sp_deliver_remote(sh, m);
		break;
	case SP_XS_ADMIN:
		sp_admin_exec_remote(sh, m->ptr, (unsigned)m->arg[0]);
		m->ptr = NULL;
		break;
	default:
		break;
	}
}

void sp_xshard_take(struct sp_shard *sh)
{
	struct sp_inbox_msg *m, *next;

	if (!sh->node)
		return;
	for (m = sp_inbox_take(&sh->inbox); m; m = next) {
		next = m->next;
		dispatch(sh, m);
		sp_inbox_msg_free(m);
	}
}

void sp_xshard_arm(struct sp_shard *sh)
{
	int ret;

	if (!sh->node || sh->inbox_armed)
		return;
	ret = sp_ring_read(&sh->ring, sh->inbox.event_fd, &sh->inbox_buf, sizeof(sh->inbox_buf),
			   sp_ud_pack(SP_OP_INBOX, 1, 0));
	sh->inbox_armed = ret == 0;
	sh->inbox_retry = ret != 0;
}

void sp_xshard_cqe(struct sp_shard *sh, uint32_t slot, int res)
{
	(void)res;      /* whatever the read says, the messages are in the inbox */
	if (slot == 1) {
		sh->inbox_armed = false;
		sp_xshard_arm(sh);
	}
	sp_xshard_take(sh);
}

void sp_xshard_destroy(struct sp_shard *sh)
{
	struct sp_inbox_msg *m, *next;

	for (m = sp_inbox_take(&sh->inbox); m; m = next) {
		next = m->next;
		if (m->kind == SP_XS_MOVE && m->ptr) {
			struct sp_move *mv = m->ptr;

			if (mv->fd >= 0)
				close(mv->fd);
			move_free(mv);
		} else if (m->kind == SP_XS_ADMIN && m->ptr && sh->admin) {
			sp_admin_done(sh->admin, m->ptr);
		}
		sp_inbox_msg_free(m);
	}
}
