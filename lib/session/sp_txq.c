/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_txq.c: the tx chunk pool and a session's outbound queue.
 */
#include "sp_txq.h"

#include <stdlib.h>
#include <string.h>

void sp_txpool_init(struct sp_txpool *p, uint32_t max_free)
{
	memset(p, 0, sizeof(*p));
	p->max_free = max_free;
}

void sp_txpool_destroy(struct sp_txpool *p)
{
	while (p->free) {
		struct sp_txchunk *ch = p->free;

		p->free = ch->next;
		free(ch);
		p->live--;
	}
	p->nfree = 0;
}

static struct sp_txchunk *chunk_get(struct sp_txpool *p)
{
	struct sp_txchunk *ch = p->free;

	if (ch) {
		p->free = ch->next;
		p->nfree--;
		if (p->nfree < p->low_free)
			p->low_free = p->nfree;
	} else {
		ch = malloc(sizeof(*ch));
		if (!ch)
			return NULL;
		p->live++;
	}
	ch->next = NULL;
	ch->head = ch->done = ch->tail = 0;
	return ch;
}

static void chunk_put(struct sp_txpool *p, struct sp_txchunk *ch)
{
	/* Keep a bounded reserve so steady state never mallocs, but a burst
	 * does not pin its peak memory forever. */
	if (p->nfree < p->max_free) {
		ch->next = p->free;
		p->free = ch;
		p->nfree++;
		return;
	}
	free(ch);
	p->live--;
}

/* The slow part of sp_txq_space: a new chunk at the tail. */
struct sp_txchunk *sp_txq_space_new(struct sp_txq *q, struct sp_txpool *p)
{
	struct sp_txchunk *ch = chunk_get(p);

	if (!ch)
		return NULL;
	q->chunks++;
	if (q->tail)
		q->tail->next = ch;
	else
		q->head = ch;
	q->tail = ch;
	return ch;
}

void sp_txq_sent(struct sp_txq *q, struct sp_txpool *p, size_t n, bool keep_tail)
{
	struct sp_txchunk *ch = q->head;

	if (!ch)
		return;
	ch->head += (uint32_t)n;
	q->bytes -= n;
	/* Fully sent chunks go back; the tail chunk too once nothing is open in
	 * it, so an idle session holds no tx memory. */
	while ((ch = q->head) && ch->head == ch->tail && !(ch == q->tail && keep_tail)) {
		q->head = ch->next;
		if (!q->head)
			q->tail = NULL;
		q->chunks--;
		chunk_put(p, ch);
	}
}

void sp_txq_release(struct sp_txq *q, struct sp_txpool *p)
{
	while (q->head) {
		struct sp_txchunk *ch = q->head;

		q->head = ch->next;
		chunk_put(p, ch);
	}
	q->tail = NULL;
	q->bytes = 0;
	q->chunks = 0;
}

uint32_t sp_txpool_trim(struct sp_txpool *p, uint32_t keep)
{
	uint32_t n = 0;

	/* low_free chunks stayed in the reserve the whole interval: unused. */
	while (p->free && p->nfree > keep && n < p->low_free) {
		struct sp_txchunk *ch = p->free;

		p->free = ch->next;
		p->nfree--;
		free(ch);
		p->live--;
		n++;
	}
	p->low_free = p->nfree;
	return n;
}
