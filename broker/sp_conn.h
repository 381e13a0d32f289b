/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_conn.h: one broker connection: a responder session (lib/session) plus
 * what only the broker keeps of it (socket, slot, in-flight I/O, routing,
 * mailbox delivery, timers).
 *
 * The protocol itself (preamble, handshake, transport, the tx queue) is
 * struct sp_session's, reached as c->s; this header adds the broker's
 * fields around it. The shard submits the I/O and routes.
 *
 * Threading: a connection belongs to its shard's thread.
 */
#ifndef SP_CONN_H
#define SP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"
#include "sp_list.h"
#include "sp_session.h"

/*
 * How durable envelopes reach a routed device (the shard decides; see
 * sp_shard.c). While a reader mode is on, new durable envelopes for the
 * device are only stored and reach it through the reader, in seq order.
 */
enum sp_mbox_mode {
	SP_MBOX_NONE = 0,       /* not routed yet: nothing is delivered */
	SP_MBOX_BACKLOG,        /* reading the stored backlog; Drained{count} at its end */
	SP_MBOX_CATCHUP,        /* reading again after the outbound queue was full (no Drained) */
	SP_MBOX_LIVE,           /* durable envelopes go straight from the sender's buffer */
};

struct sp_conn {
	/* The protocol session: state, pattern, rx reassembly, handshake,
	 * transport, tx queue, the device key (s.peer) and the proof rule. */
	struct sp_session s;

	int fd;
	uint32_t slot;
	uint32_t gen;                   /* bumped when the slot is freed */
	enum sp_close_reason close_reason; /* set when the shard must end it */

	/* I/O in flight: the slot is not reused until all are false. */
	bool recv_armed;
	bool send_inflight;
	bool shutdown_inflight;
	bool shut_wr;                   /* SHUT_WR issued (CLOSING, output drained) */
	bool abort_close;               /* close with RST: drop what the kernel still holds */
	bool dirty;                     /* on the shard's flush list */
	bool routed;                    /* the shard's routing table names this connection */
	uint32_t send_len;              /* bytes of the send in flight */

	/* mailbox delivery (the shard's; see sp_shard.c "mailboxes") */
	uint8_t mbox;                   /* enum sp_mbox_mode */
	uint64_t mbox_from;             /* the backlog reader's next seq */
	uint64_t mbox_count;            /* backlog envelopes sent (Drained.count) */
	struct sp_list drain;           /* in the shard's drain list while the reader runs */

	/* timers and lists of the shard */
	struct sp_list timer;           /* in exactly one deadline-ordered list, or none */
	uint64_t deadline_ns;
	struct sp_conn *dirty_next;
};

/* The connection a session hook was called for. */
static inline struct sp_conn *sp_conn_of(struct sp_session *s)
{
	return (struct sp_conn *)((char *)s - offsetof(struct sp_conn, s));
}

/* A fresh connection on an accepted socket (fd -1: none), its session in
 * SP_SESSION_PREAMBLE. env: borrowed for the connection's life. The slot's
 * generation survives. */
void sp_conn_open(struct sp_conn *c, int fd, uint32_t slot, const struct sp_session_env *env);

#endif
