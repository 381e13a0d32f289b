/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_list.h: intrusive doubly linked list. A head is a sentinel node; an
 * unlinked node has next == NULL, so removing it twice is harmless.
 *
 * Layering: util (no dependencies). Threading: none; the caller serialises.
 */
#ifndef SP_LIST_H
#define SP_LIST_H

#include <stdbool.h>
#include <stddef.h>

/* Intrusive doubly linked list (timer lists). A head is a sentinel node. */
struct sp_list {
	struct sp_list *prev, *next;
};

static inline void sp_list_init(struct sp_list *h)
{
	h->prev = h->next = h;
}

static inline bool sp_list_empty(const struct sp_list *h)
{
	return h->next == h;
}

static inline bool sp_list_linked(const struct sp_list *n)
{
	return n->next != NULL;
}

static inline void sp_list_del(struct sp_list *n)
{
	if (!n->next)
		return;
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = NULL;
}

static inline void sp_list_add_tail(struct sp_list *h, struct sp_list *n)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

/* The struct that holds member `member` at node n. */
#define sp_list_entry(n, type, member) ((type *)((char *)(n) - offsetof(type, member)))

#endif
