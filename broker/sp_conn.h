/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_conn.h: one broker connection: a responder session (lib/session) plus
 * what only the broker keeps of it (socket, slot, in-flight I/O, routing,
 * mailbox delivery, timers).
 *
 * The protocol itself (preamble, handshake, transport, the tx queue) is
 * struct sp_session's, reached as c->s; this header adds the broker's
 * fields around it, grouped by the one file that writes each group. A
 * connection is opened by sp_life_open (loop/sp_lifecycle.h).
 *
 * Threading: a connection belongs to its shard's thread.
 */
#ifndef SP_CONN_H
#define SP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"
#include "sp_ilist.h"
#include "sp_list.h"
#include "sp_session.h"

/*
 * How durable envelopes reach a routed device (app/sp_mailbox.c decides).
 * While a reader mode is on, new durable envelopes for the device are only
 * stored and reach it through the reader, in seq order.
 */
enum sp_mbox_mode {
	SP_MBOX_NONE = 0,       /* not routed yet: nothing is delivered */
	SP_MBOX_BACKLOG,        /* reading the stored backlog; Drained{count} at its end */
	SP_MBOX_CATCHUP,        /* reading again after the outbound queue was full (no Drained) */
	SP_MBOX_LIVE,           /* durable envelopes go straight from the sender's buffer */
};

/*
 * The broker's part of a connection, in groups. Each group is written by
 * exactly one file (named beside it; everyone else only reads it), so that
 * who changed a field is never a question. tests/layering/conn_writers.sh
 * (ctest layering/conn_writers) greps the tree for writes outside the
 * owner. When a slot is freed every group is at rest (off every list,
 * nothing in flight, not routed); the table, I/O, lifecycle and timer
 * groups are set up again by sp_life_open, the route and mailbox groups
 * when the connection is routed.
 */

/* The slot in the shard's table: loop/sp_conn_table.c. */
struct sp_conn_tab {
	uint32_t slot;
	uint32_t gen;                   /* bumped when the slot is freed; survives reuse */
	uint32_t dirty_next;            /* the next slot on the flush list + 1; 0 = the last */
	bool dirty;                     /* on the shard's flush list */
};

/* The socket and the I/O in flight: loop/sp_conn_io.c. The slot is not
 * reused until no request is in flight. */
struct sp_conn_io {
	int fd;                         /* -1: none (closed, or the detached harness) */
	uint32_t send_len;              /* bytes of the send in flight */
	bool recv_armed;
	bool send_inflight;
	bool shutdown_inflight;
	bool shut_wr;                   /* SHUT_WR issued (CLOSING, output drained) */
	bool abort_close;               /* close with RST: drop what the kernel still holds */
};

/* The one deadline of the connection: loop/sp_timers.c. Index links
 * (sp_ilist.h: 8 bytes, not 16) since every connection is on a list. */
struct sp_conn_timer {
	struct sp_ilink node;           /* in exactly one deadline-ordered list, or none */
	uint64_t deadline_ns;
	/* CLOCK_MONOTONIC µs of the accept, low 32 bits: the handshake's
	 * duration (metrics) is far below the 71 minutes they wrap in. */
	uint32_t accepted_us;
	uint8_t list;                   /* the list node is on: enum sp_timer_kind + 1, 0 = none */
};

/* How it ends: loop/sp_lifecycle.c. */
struct sp_conn_life {
	/* enum sp_close_reason, set when the shard must end it (first wins);
	 * one byte, so that this group, the source's and the route's share
	 * 16 bytes of the connection. */
	uint8_t close_reason;
};
_Static_assert(SP_CLOSE_REASON_COUNT <= 256, "close reasons fit a byte");

/* The peer's source, for the per-source limits: loop/sp_source.c. */
enum { SP_SOURCE_KEY_LEN = 9 };    /* the family byte and 4 or 8 address bytes */
struct sp_conn_src {
	uint8_t key[SP_SOURCE_KEY_LEN]; /* IPv4 /32 or IPv6 /64 (sp_source.h) */
	bool counted;                   /* in the source table */
	bool remote;                    /* counted: in shard 0's table (moved here, sp_xshard.c) */
	bool unauth;                    /* counted as not yet proven */
};

/* Routing: app/sp_router.c. */
struct sp_conn_route {
	bool routed;                    /* the shard's routing table names this connection */
};

/* Mailbox delivery (see app/sp_mailbox.h): app/sp_mailbox.c. */
struct sp_conn_mbox {
	uint8_t mode;                   /* enum sp_mbox_mode */
	/* Acks for nothing (below ack_unknown_max <= 2^30 + one frame's,
	 * or the connection is closed: 32 bits hold them). */
	uint32_t acks_nothing;
	struct sp_ilink drain;          /* in the shard's drain list while the reader runs */
	uint64_t from;                  /* the backlog reader's next seq */
	uint64_t count;                 /* backlog envelopes sent (Drained.count) */
	/* Acks taken to the store less stored envelopes sent on this
	 * connection: all that ack_possible needs of the two counts. */
	int64_t acks_over;
	/* The WAL sync the newest of its held SendResults waits for (shard's
	 * held list): its later results and Pongs wait behind it. */
	uint64_t held_ticket;
	/* Its results in the shard's held list, and of those the ones whose
	 * status another shard decides (with --threads > 1): while any is
	 * held, its later results and Pongs wait behind. */
	uint32_t nheld, remote_waits;
	uint64_t blocked_epoch;         /* release_held's pass that kept one of its results */
};

/* The WebSocket transport (loop/sp_ws.h): loop/sp_ws.c. NULL = raw TCP. */
struct sp_ws;
struct sp_conn_ws {
	struct sp_ws *t;                /* heap, from accept on the ws listener to close */
};

/* Registration (--registration=token): app/sp_registration.c. Set by its
 * client_hello hook on every authenticated session, read at the IK proof. */
struct sp_conn_enrol {
	uint8_t refuse;                 /* enum sp_close_reason to end with at the proof; 0 = none */
};

/* Fan-out (PROTOCOL.md 16): app/sp_fanout.c. The open group (heap, its
 * copies held until the last arrives), or the one just refused whose
 * remaining copies are dropped; NULL: none. One pointer: an idle
 * connection pays 8 bytes for it. */
struct sp_fanout_group;
struct sp_conn_fanout {
	struct sp_fanout_group *g;
};

/* Being handed to its device's home shard (loop/sp_xshard.c): the state
 * that travels, unread input included; NULL: not moving. */
struct sp_move;
struct sp_conn_move {
	struct sp_move *m;
};

struct sp_conn {
	/* The protocol session: state, pattern, rx reassembly, handshake,
	 * transport, tx queue, the device key (s.peer) and the proof rule.
	 * Written by lib/session only (through its calls). */
	struct sp_session s;

	struct sp_conn_tab tab;
	struct sp_conn_io io;
	struct sp_conn_life life;
	struct sp_conn_src source;
	struct sp_conn_route route;
	struct sp_conn_enrol enrol;     /* one byte, in route's padding: no growth */
	struct sp_conn_mbox mbox;
	struct sp_conn_timer timer;
	struct sp_conn_ws ws;
	struct sp_conn_fanout fan;
	struct sp_conn_move move;
};

/* The connection a session hook was called for. */
static inline struct sp_conn *sp_conn_of(struct sp_session *s)
{
	return (struct sp_conn *)((char *)s - offsetof(struct sp_conn, s));
}

#endif
