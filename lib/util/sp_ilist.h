/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_ilist.h: intrusive doubly linked lists over the elements of one array,
 * linked by 32-bit element indices rather than pointers.
 *
 * Why: a broker connection sits in a deadline list (and, while its mailbox
 * reader runs, a drain list) for its whole life; with struct sp_list
 * (sp_list.h) each membership costs 16 bytes per connection, here 8. All
 * elements live in one array (the shard's connection table), so an index
 * names one as well as a pointer would.
 *
 * Encoding: a link holds index + 1 of its neighbours, SP_ILIST_END where
 * there is none; a link whose next is 0 is on no list, so a zeroed element
 * (calloc) is unlinked, and removing it twice is harmless. A list head
 * holds index + 1 of its first and last elements, 0 when empty.
 *
 * An element is on at most one list per link; the caller knows which (the
 * list is passed to sp_ilist_del). The array is described by struct
 * sp_iarr: base, element size, and the link's offset in an element.
 *
 * Layering: util (no dependencies). Threading: none; the caller serialises.
 */
#ifndef SP_ILIST_H
#define SP_ILIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { SP_ILIST_END = UINT32_MAX };
/* What sp_ilist_first returns for an empty list. */
#define SP_ILIST_NONE UINT32_MAX

struct sp_ilink {
	uint32_t prev, next;
};

struct sp_ilist {
	uint32_t first, last;
};

/* The array the elements are in: element i's link is at
 * base + i * stride + off. Borrowed for the call. */
struct sp_iarr {
	void *base;
	size_t stride;
	size_t off;
};

static inline struct sp_ilink *sp_ilink_at(const struct sp_iarr *a, uint32_t i)
{
	return (struct sp_ilink *)((char *)a->base + (size_t)i * a->stride + a->off);
}

static inline void sp_ilist_init(struct sp_ilist *l)
{
	l->first = l->last = 0;
}

static inline bool sp_ilist_empty(const struct sp_ilist *l)
{
	return l->first == 0;
}

static inline bool sp_ilink_linked(const struct sp_ilink *n)
{
	return n->next != 0;
}

/* The index of the first element, or SP_ILIST_NONE. */
static inline uint32_t sp_ilist_first(const struct sp_ilist *l)
{
	return l->first ? l->first - 1 : SP_ILIST_NONE;
}

/* The index of the element after i on its list, or SP_ILIST_NONE. */
static inline uint32_t sp_ilist_next(const struct sp_iarr *a, uint32_t i)
{
	uint32_t n = sp_ilink_at(a, i)->next;

	return n == SP_ILIST_END || n == 0 ? SP_ILIST_NONE : n - 1;
}

/* Appends element i (i < SP_ILIST_END - 1; not on a list through this link). */
static inline void sp_ilist_add_tail(struct sp_ilist *l, const struct sp_iarr *a, uint32_t i)
{
	struct sp_ilink *n = sp_ilink_at(a, i);

	n->next = SP_ILIST_END;
	n->prev = l->last ? l->last : SP_ILIST_END;
	if (l->last)
		sp_ilink_at(a, l->last - 1)->next = i + 1;
	else
		l->first = i + 1;
	l->last = i + 1;
}

/* Takes element i off l (which must be the list it is on); a no-op when
 * it is on none. */
static inline void sp_ilist_del(struct sp_ilist *l, const struct sp_iarr *a, uint32_t i)
{
	struct sp_ilink *n = sp_ilink_at(a, i);

	if (!n->next)
		return;
	if (n->prev == SP_ILIST_END)
		l->first = n->next == SP_ILIST_END ? 0 : n->next;
	else
		sp_ilink_at(a, n->prev - 1)->next = n->next;
	if (n->next == SP_ILIST_END)
		l->last = n->prev == SP_ILIST_END ? 0 : n->prev;
	else
		sp_ilink_at(a, n->next - 1)->prev = n->prev;
	n->prev = n->next = 0;
}

#endif
