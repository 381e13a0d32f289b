/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_inbox.h: a shard's cross-shard inbox: "deliver this to device K on
 * shard S", a multi-producer single-consumer queue of owned messages.
 *
 * Any thread posts; only the owning shard's loop takes. Producers on
 * another shard's loop wake the consumer with IORING_OP_MSG_RING from their
 * own ring (sp_inbox_post_ring: no system call of its own, it rides the
 * producer's next submit); any other thread (a NATS delivery thread, the
 * admin thread, a test) wakes it through the inbox's eventfd
 * (sp_inbox_post). Only the post that finds the inbox empty wakes, so a
 * burst costs one wake-up however long it is.
 *
 * Why no lock: the queue is a Treiber stack (one compare-and-swap per post,
 * one exchange per take); the consumer reverses what it took, so messages
 * come out oldest first, and the messages of one producer always in the
 * order it posted them (what the broker's ordering rules need: a shard's
 * envelopes for one device arrive in its commit order). Taking the whole
 * stack at once means no ABA problem: nothing is ever popped singly.
 *
 * Ownership: a message is the poster's until sp_inbox_post* returns (then
 * the inbox's, even on error: the post never fails once the message is
 * pushed), and the consumer's from sp_inbox_take, which frees it with
 * sp_inbox_msg_free. Bodies travel as owned copies in the message (data[]).
 *
 * Threading: sp_inbox_post* from any thread; sp_inbox_take from the
 * consumer only; init/destroy with no producer running.
 * Errors: 0 or a negative errno.
 */
#ifndef SP_INBOX_H
#define SP_INBOX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"
#include "sp_ring.h"

/* Kinds are the consumer's (broker/loop/sp_xshard.h); the inbox does not read them. */
struct sp_inbox_msg {
	struct sp_inbox_msg *next;      /* the inbox's while queued */
	uint16_t kind;
	uint16_t from;                  /* the posting shard (or a non-shard id) */
	uint32_t len;                   /* bytes at data */
	uint8_t device[SP_KEY_LEN];     /* the device it concerns (zero if none) */
	uint64_t arg[4];                /* kind-specific */
	void *ptr;                      /* kind-specific owned object, or NULL */
	uint8_t data[];                 /* owned copy (a body), len bytes */
};

struct sp_inbox {
	_Atomic(struct sp_inbox_msg *) head;    /* newest first */
	int event_fd;                   /* non-ring producers' wake-up (EFD_NONBLOCK) */
	int ring_fd;                    /* the consumer's ring, MSG_RING's target (-1: none yet) */
	_Atomic uint64_t posted;        /* messages ever posted (metrics, tests) */
};

/* An eventfd-backed, empty inbox; ring_fd set later (sp_inbox_set_ring). */
int sp_inbox_init(struct sp_inbox *ib);
/* Frees every message still queued (with free(); a ptr in one is the
 * caller's to have drained first) and closes the eventfd. */
void sp_inbox_destroy(struct sp_inbox *ib);
void sp_inbox_set_ring(struct sp_inbox *ib, int ring_fd);

/* A message with len bytes of data (uninitialised), zeroed otherwise;
 * NULL on -ENOMEM. */
struct sp_inbox_msg *sp_inbox_msg_new(uint16_t kind, size_t len);
void sp_inbox_msg_free(struct sp_inbox_msg *m);

/* Pushes m; true if the inbox was empty (the caller must wake the consumer). */
bool sp_inbox_push(struct sp_inbox *ib, struct sp_inbox_msg *m);

/* Any thread: pushes m and writes the eventfd if the inbox was empty. */
int sp_inbox_post(struct sp_inbox *ib, struct sp_inbox_msg *m);

/*
 * From a loop thread with its own ring `from`: pushes m and, if the inbox
 * was empty, prepares an IORING_OP_MSG_RING SQE on `from` that posts a CQE
 * with user_data wake_ud on the consumer's ring (the SQE's own completion,
 * on `from`, carries src_ud). Falls back to the eventfd if no SQE is to be
 * had or the consumer's ring is not known yet. 0 always (m is queued).
 */
int sp_inbox_post_ring(struct sp_inbox *ib, struct sp_inbox_msg *m, struct sp_ring *from,
		       uint64_t wake_ud, uint64_t src_ud);

/* Consumer: everything posted so far, oldest first (a list through next),
 * or NULL. */
struct sp_inbox_msg *sp_inbox_take(struct sp_inbox *ib);

#endif
