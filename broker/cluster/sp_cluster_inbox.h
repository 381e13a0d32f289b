/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_cluster_inbox.h: the hand-off from libnats's delivery threads to one
 * event loop: a lock-free multi-producer, single-consumer list and an
 * eventfd the loop reads on its ring (SP_OP_CLUSTER).
 *
 * Producers (any thread) push with one compare-and-swap; only the push that
 * finds the list empty writes the eventfd, so a burst costs one wake-up.
 * The consumer (the loop) takes the whole list with one exchange and gets
 * it oldest first: items one producer thread pushed come out in the order
 * it pushed them (libnats delivers one subscription's messages on one
 * thread, in order). No mutex anywhere on this path. A consumer that took
 * the list re-arms its eventfd read afterwards; a push after the take
 * writes the eventfd again, so no wake-up is lost.
 *
 * The list is bounded (max items waiting): a push beyond is refused
 * (-ENOBUFS, counted) and the item stays the producer's. Self-contained
 * (no shard type): a shard of a several-shard broker holds one inbox.
 *
 * Ownership: a pushed item belongs to the inbox, a taken one to the
 * consumer, who frees it with free(). Errors: 0 or a negative errno.
 */
#ifndef SP_CLUSTER_INBOX_H
#define SP_CLUSTER_INBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"

/* What a NATS message asks of the loop (docs/CLUSTER.md, "Messages"). */
enum sp_cluster_kind {
	SP_CLUSTER_DELIVER = 1,  /* an online-only envelope for a device held here */
	SP_CLUSTER_TAKEOVER = 2, /* the device connected to another node */
	SP_CLUSTER_REPLY = 3,    /* the answer to one of our DELIVERs */
	SP_CLUSTER_STORED = 4,   /* an envelope JetStream stored for a device held here */
	SP_CLUSTER_JS = 5,       /* JetStream's answer to one of our requests (js) */
};

/* What one JetStream answer says (sp_cluster_msg_js_answer). */
struct sp_cluster_js_answer {
	char kind;                      /* SP_CLUSTER_JS_PUBACK, _GET, _DELETE or _PURGE */
	bool no_responders;             /* nobody answered: no stream leader, or no JetStream */
	bool ok;                        /* PubAck / message / deleted; else err_code says why */
	bool duplicate;                 /* PubAck: the Nats-Msg-Id was seen within the window */
	uint32_t err_code;              /* JetStream's err_code when !ok (0 = none given) */
	uint64_t conn;                  /* GET, DELETE: the connection (gen << 32 | slot) asking;
					 * PURGE: the ListPut wait's id */
	uint64_t ticket;                /* PUBACK, GET: the request's ticket; PURGE: its N */
	uint64_t seq;                   /* PUBACK, GET: the stream sequence; DELETE: the one
					 * asked; PURGE: messages purged */
	uint64_t time_ms;               /* GET: when the stream stored it (0 = not given) */
};

struct sp_cluster_item {
	struct sp_cluster_item *next;    /* the inbox's link */
	uint8_t kind;                    /* enum sp_cluster_kind */
	uint8_t status;                  /* REPLY: the remote SendResult status */
	uint8_t token[SP_KEY_LEN];       /* DELIVER, TAKEOVER: the device subject's token */
	uint64_t node;                   /* the sending node's id */
	uint64_t value;                  /* TAKEOVER: its proof time (ms); REPLY: our ticket */
	uint64_t seq;                    /* STORED: the envelope's stream sequence */
	struct sp_cluster_js_answer js;  /* JS (a GET's message body in body) */
	char reply[64];                  /* DELIVER: where to answer ("" = nowhere) */
	uint32_t len;                    /* body bytes (DELIVER, STORED, JS GET) */
	uint8_t body[];
};

struct sp_cluster_inbox {
	struct sp_cluster_item *head;    /* atomic; newest first */
	uint64_t count;                  /* atomic: items waiting */
	uint64_t max;
	uint64_t refused;                /* atomic: pushes beyond max */
	int efd;
};

/* max: items waiting at most (>= 1). -errno if the eventfd cannot be made. */
int sp_cluster_inbox_init(struct sp_cluster_inbox *in, uint64_t max);
/* Frees whatever still waits and closes the eventfd (no producer may run). */
void sp_cluster_inbox_destroy(struct sp_cluster_inbox *in);

/* Any thread: it (malloc'd) joins the list; 0, or -ENOBUFS (full: it is
 * still the caller's). */
int sp_cluster_inbox_push(struct sp_cluster_inbox *in, struct sp_cluster_item *it);

/* The consumer: every waiting item, oldest first (linked by next), or NULL. */
struct sp_cluster_item *sp_cluster_inbox_take(struct sp_cluster_inbox *in);

static inline int sp_cluster_inbox_fd(const struct sp_cluster_inbox *in)
{
	return in->efd;
}

#endif
