/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_conn_table.c: connection slots, generations, route handles and the
 * flush list (sp_conn_table.h).
 */
#include "sp_conn_table.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

int sp_conn_table_init(struct sp_shard *sh)
{
	/* Beyond max_conns, room for a newcomer while the connection it
	 * evicted waits for its last completions (sp_accept.c). */
	uint32_t n = sh->cfg->max_conns + SP_CONN_TABLE_RESERVE;

	sh->conns = calloc(n, sizeof(*sh->conns));
	sh->free_slots = malloc(n * sizeof(*sh->free_slots));
	if (!sh->conns || !sh->free_slots)
		return -ENOMEM;
	/* Lowest slot first out: the working set of the table stays small. */
	for (uint32_t i = 0; i < n; i++)
		sh->free_slots[i] = n - 1 - i;
	sh->nfree = n;
	sh->nslots = n;
	return 0;
}

void sp_conn_table_destroy(struct sp_shard *sh)
{
	if (sh->conns) {
		for (uint32_t i = 0; i < sh->high_water; i++) {
			struct sp_conn *c = &sh->conns[i];

			if (c->s.state == SP_SESSION_FREE)
				continue;
			sp_session_release(&c->s);
			close(c->io.fd);
		}
	}
	free(sh->conns);
	free(sh->free_slots);
	sh->conns = NULL;
	sh->free_slots = NULL;
}

struct sp_conn *sp_conn_table_open(struct sp_shard *sh)
{
	struct sp_conn *c;
	uint32_t slot;

	if (sh->nfree == 0)
		return NULL;
	slot = sh->free_slots[--sh->nfree];
	if (slot >= sh->high_water)
		sh->high_water = slot + 1;
	c = &sh->conns[slot];
	/* The generation survives reuse: that is the point of it. */
	c->tab.slot = slot;
	c->tab.dirty = false;
	c->tab.dirty_next = 0;
	sp_session_accept(&c->s, &sh->env);
	sh->nconns++;
	if (sh->node)
		atomic_fetch_add_explicit(&sh->node->conns, 1, memory_order_relaxed);
	return c;
}

void sp_conn_table_release(struct sp_shard *sh, struct sp_conn *c)
{
	c->tab.gen++;   /* every completion or handle naming the old one is now stale */
	sh->free_slots[sh->nfree++] = c->tab.slot;
	sh->nconns--;
	if (sh->node)
		atomic_fetch_sub_explicit(&sh->node->conns, 1, memory_order_relaxed);
}

struct sp_conn *sp_conn_table_next_dirty(struct sp_shard *sh)
{
	struct sp_conn *c = sh->dirty;

	if (!c)
		return NULL;
	sh->dirty = c->tab.dirty_next ? &sh->conns[c->tab.dirty_next - 1] : NULL;
	c->tab.dirty_next = 0;
	c->tab.dirty = false;
	return c;
}
