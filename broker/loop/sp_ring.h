/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_ring.h: the net layer: one io_uring per shard, the provided-buffer ring
 * receives land in, and the encoding of io_uring user_data.
 *
 * Layering: this module knows sockets, buffers and completions; nothing of
 * Noise, frames or routing.
 *
 * user_data is encoded and decoded here and nowhere else:
 *
 *   bits 63..56  op kind (enum sp_op)
 *   bits 55..32  connection slot (24 bits)
 *   bits 31..0   connection generation (wraps)
 *
 * A slot is reused after its connection closes; its generation is bumped
 * then, so a completion that arrives late for the old connection is
 * recognised as stale and ignored (after returning any buffer it carries).
 *
 * Threading: everything here belongs to the shard thread that created it
 * (the ring is set up with IORING_SETUP_SINGLE_ISSUER when the kernel has it).
 */
#ifndef SP_RING_H
#define SP_RING_H

#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

enum sp_op {
	SP_OP_NONE = 0,
	SP_OP_ACCEPT,   /* multishot accept on the listener */
	SP_OP_RECV,     /* multishot recv on a connection, buffer select */
	SP_OP_SEND,     /* one send of a connection's finished output */
	SP_OP_SHUTDOWN, /* shutdown(SHUT_WR) after a GoAway was flushed */
	SP_OP_CANCEL,   /* cancellation of a connection's requests */
	SP_OP_TICK,     /* the shard's timer */
	SP_OP_WAKE,     /* read on the shard's stop descriptor (signalfd/eventfd) */
	SP_OP_ADMIN,    /* read on the admin socket's eventfd: jobs queued */
	SP_OP_PUSH,     /* read on the push worker's eventfd: outcomes waiting */
	SP_OP_SYNC,     /* read on the store's sync-thread eventfd: a WAL sync ended */
	SP_OP_CLUSTER,  /* read on the cluster inbox's eventfd: NATS messages waiting */
	SP_OP_INBOX,    /* the cross-shard inbox: MSG_RING (slot 0) or its eventfd read (slot 1) */
	SP_OP_MAX,
};

enum {
	SP_UD_SLOT_BITS = 24,
	SP_UD_SLOT_MAX = (1 << SP_UD_SLOT_BITS) - 1,
};

struct sp_ud {
	enum sp_op op;
	uint32_t slot;
	uint32_t gen;
};

static inline uint64_t sp_ud_pack(enum sp_op op, uint32_t slot, uint32_t gen)
{
	return ((uint64_t)(op & 0xff) << 56) | ((uint64_t)(slot & SP_UD_SLOT_MAX) << 32) | gen;
}

static inline struct sp_ud sp_ud_unpack(uint64_t ud)
{
	struct sp_ud d = {
		.op = (enum sp_op)(ud >> 56),
		.slot = (uint32_t)(ud >> 32) & SP_UD_SLOT_MAX,
		.gen = (uint32_t)ud,
	};
	return d;
}

struct sp_ring {
	struct io_uring ring;
	unsigned setup_flags;   /* the flags the kernel accepted */
	unsigned pending;       /* SQEs prepared since the last submit */
};

/*
 * Creates the ring with `entries` SQEs and 4x as many CQEs, trying
 * SINGLE_ISSUER|DEFER_TASKRUN, then COOP_TASKRUN, then plain (each fallback
 * on -EINVAL only). Must be called on the thread that will submit.
 */
int sp_ring_init(struct sp_ring *r, unsigned entries);
void sp_ring_exit(struct sp_ring *r);

/* An SQE; if the SQ is full, submits what is queued first. Never NULL
 * unless the kernel refuses the submit (then NULL). */
struct io_uring_sqe *sp_ring_sqe(struct sp_ring *r);

/* Submit everything queued and wait for at least wait_nr completions. */
int sp_ring_submit_wait(struct sp_ring *r, unsigned wait_nr);

/*
 * Provided-buffer ring: `count` buffers of `size` bytes, registered as group
 * bgid. The kernel picks a buffer only when data arrives, so an idle
 * connection holds none. Ring and buffer memory are mmap'd (untouched buffers
 * cost no RSS).
 */
struct sp_bufring {
	struct io_uring_buf_ring *br;
	uint8_t *mem;
	size_t ring_bytes, mem_bytes;
	uint32_t count, size;
	uint16_t bgid;
	uint16_t mask;
	uint16_t staged;        /* put but not yet made visible to the kernel */
};

int sp_bufring_init(struct sp_bufring *b, struct sp_ring *r, uint16_t bgid, uint32_t count,
		    uint32_t size);
void sp_bufring_exit(struct sp_bufring *b, struct sp_ring *r);

/* The buffer id a completion selected, or -1 if it carries none. */
static inline int sp_cqe_bid(const struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_BUFFER))
		return -1;
	return (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
}

static inline uint8_t *sp_bufring_addr(const struct sp_bufring *b, uint16_t bid)
{
	return b->mem + (size_t)bid * b->size;
}

/*
 * Returns a buffer to the ring. The kernel does not see it until
 * sp_bufring_flush (once per loop iteration: one release store for many).
 * The buffer's contents are dead after this call.
 */
void sp_bufring_put(struct sp_bufring *b, uint16_t bid);
void sp_bufring_flush(struct sp_bufring *b);

/*
 * Bytes of the buffer memory resident now (mincore). The kernel takes the
 * ring's buffers in turn, so the pool is touched up to its whole size
 * (count x size) over time whatever the number of connections: a fixed
 * cost, reported apart so that per-connection figures do not include its
 * first touch. 0 if mincore fails. O(mem_bytes / page size).
 */
size_t sp_bufring_resident(const struct sp_bufring *b);

/* Request helpers: each takes an SQE from r and sets its user_data. */
int sp_ring_accept(struct sp_ring *r, int listen_fd, uint64_t ud);
int sp_ring_recv(struct sp_ring *r, int fd, uint16_t bgid, uint64_t ud);
/* buf: borrowed until the SP_OP_SEND completion for ud arrives. */
int sp_ring_send(struct sp_ring *r, int fd, const void *buf, size_t len, uint64_t ud);
int sp_ring_shutdown_wr(struct sp_ring *r, int fd, uint64_t ud);
/* Cancels every request on fd; its own completion carries ud. */
int sp_ring_cancel_fd(struct sp_ring *r, int fd, uint64_t ud);
/* ts: borrowed until the timeout's completion. */
int sp_ring_timeout(struct sp_ring *r, struct __kernel_timespec *ts, uint64_t ud);
/* buf: borrowed until the read's completion. */
int sp_ring_read(struct sp_ring *r, int fd, void *buf, unsigned len, uint64_t ud);

#endif
