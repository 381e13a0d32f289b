/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_txq.h: outbound bytes of one session, in fixed-size chunks from a pool.
 *
 * A chunk is big enough for one maximal Noise message and its length prefix,
 * so a message never straddles two chunks and one send covers the finished
 * bytes of a chunk. The queue knows bytes only: what a chunk holds is the
 * session's business (sp_session.c writes length prefixes and ciphertext
 * into it).
 *
 * Memory: a queue holds chunks only while it has bytes not yet sent (or an
 * open message in its tail); the pool keeps a bounded reserve of free ones,
 * so steady state never mallocs and a burst does not pin its peak forever.
 *
 * Threading: a pool and its queues belong to one thread.
 */
#ifndef SP_TXQ_H
#define SP_TXQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"

enum {
	SP_TXCHUNK_DATA = SP_LEN_PREFIX + SP_NOISE_MSG_MAX + 1533, /* 67070: 64 KiB + change */
};

struct sp_txchunk {
	struct sp_txchunk *next;
	uint32_t head;          /* first byte not yet sent */
	uint32_t done;          /* end of finished (sendable) bytes */
	uint32_t tail;          /* end of written bytes (includes an open message) */
	uint8_t data[SP_TXCHUNK_DATA];
};

struct sp_txpool {
	struct sp_txchunk *free;
	uint32_t nfree;
	uint32_t max_free;      /* free chunks kept beyond this go back to malloc */
	uint32_t low_free;      /* the fewest free chunks since the last sp_txpool_trim */
	uint64_t live;          /* chunks allocated and not freed (for tests / metrics) */
};

struct sp_txq {
	struct sp_txchunk *head, *tail;
	uint64_t bytes;         /* written and not yet sent */
	uint32_t chunks;        /* chunks held (each sizeof(struct sp_txchunk) of memory) */
};

void sp_txpool_init(struct sp_txpool *p, uint32_t max_free);
/* Frees the reserve; chunks still in queues stay counted in live. */
void sp_txpool_destroy(struct sp_txpool *p);

/*
 * Frees the reserve's chunks that no queue took since the previous call
 * (the fewest the reserve held meanwhile), keeping at least keep: after a
 * burst the reserve shrinks back within two calls. Returns how many were
 * freed.
 */
uint32_t sp_txpool_trim(struct sp_txpool *p, uint32_t keep);

/*
 * The tail chunk if it has `need` free bytes at its tail, else a new chunk
 * appended to q; NULL when no chunk can be had (-ENOMEM to the caller).
 * The caller writes at ch->data + ch->tail, then calls sp_txq_wrote.
 */
struct sp_txchunk *sp_txq_space_new(struct sp_txq *q, struct sp_txpool *p);
/* Several times per envelope: the common case (room in the tail) inline. */
static inline struct sp_txchunk *sp_txq_space(struct sp_txq *q, struct sp_txpool *p, size_t need)
{
	struct sp_txchunk *ch = q->tail;

	if (ch && SP_TXCHUNK_DATA - ch->tail >= need)
		return ch;
	return sp_txq_space_new(q, p);
}

/* n bytes were written at the tail chunk's tail. */
static inline void sp_txq_wrote(struct sp_txq *q, size_t n)
{
	q->tail->tail += (uint32_t)n;
	q->bytes += n;
}

/* Everything written to the tail chunk so far may be sent. */
static inline void sp_txq_finish(struct sp_txq *q)
{
	q->tail->done = q->tail->tail;
}

/* The finished bytes to send next, contiguous; false if none. *p is
 * borrowed until sp_txq_sent (or sp_txq_release). */
static inline bool sp_txq_peek(const struct sp_txq *q, const uint8_t **p, size_t *len)
{
	const struct sp_txchunk *ch = q->head;

	if (!ch || ch->done <= ch->head)
		return false;
	*p = ch->data + ch->head;
	*len = ch->done - ch->head;
	return true;
}

/*
 * n bytes of the peeked range went out; fully sent chunks go back to the
 * pool, the tail chunk too unless keep_tail (an open message lives in it).
 */
void sp_txq_sent(struct sp_txq *q, struct sp_txpool *p, size_t n, bool keep_tail);

/* Returns every chunk to the pool (once no send of them is in flight). */
void sp_txq_release(struct sp_txq *q, struct sp_txpool *p);

#endif
