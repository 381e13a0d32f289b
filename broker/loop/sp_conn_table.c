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
	uint32_t n = sh->cfg->max_conns;

	sh->conns = calloc(n, sizeof(*sh->conns));
	sh->free_slots = malloc(n * sizeof(*sh->free_slots));
	if (!sh->conns || !sh->free_slots)
		return -ENOMEM;
	/* Lowest slot first out: the working set of the table stays small. */
	for (uint32_t i = 0; i < n; i++)
		sh->free_slots[i] = n - 1 - i;
	sh->nfree = n;
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
			close(c->fd);
		}
	}
	free(sh->conns);
	free(sh->free_slots);
	sh->conns = NULL;
	sh->free_slots = NULL;
}

struct sp_conn *sp_conn_table_open(struct sp_shard *sh, int fd)
{
	struct sp_conn *c;
	uint32_t slot;

	if (sh->nfree == 0)
		return NULL;
	slot = sh->free_slots[--sh->nfree];
	if (slot >= sh->high_water)
		sh->high_water = slot + 1;
	c = &sh->conns[slot];
	sp_conn_open(c, fd, slot, &sh->env);
	sh->nconns++;
	return c;
}

void sp_conn_table_release(struct sp_shard *sh, struct sp_conn *c)
{
	c->gen++;       /* every completion or handle naming the old one is now stale */
	sh->free_slots[sh->nfree++] = c->slot;
	sh->nconns--;
}

uint64_t sp_conn_handle(const struct sp_shard *sh, const struct sp_conn *c)
{
	return sp_handle_pack(sh->id, c->slot, c->gen);
}

struct sp_conn *sp_conn_at(struct sp_shard *sh, uint32_t slot, uint32_t gen)
{
	struct sp_conn *c;

	if (slot >= sh->cfg->max_conns)
		return NULL;
	c = &sh->conns[slot];
	if (c->s.state == SP_SESSION_FREE || c->gen != gen)
		return NULL;
	return c;
}

struct sp_conn *sp_conn_at_handle(struct sp_shard *sh, uint64_t h)
{
	/* Other shards' connections: cross-shard hand-off goes here. */
	if (sp_handle_shard(h) != sh->id)
		return NULL;
	return sp_conn_at(sh, sp_handle_slot(h), sp_handle_gen(h));
}

void sp_conn_mark(struct sp_shard *sh, struct sp_conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->dirty_next = sh->dirty;
	sh->dirty = c;
}

struct sp_conn *sp_conn_table_next_dirty(struct sp_shard *sh)
{
	struct sp_conn *c = sh->dirty;

	if (!c)
		return NULL;
	sh->dirty = c->dirty_next;
	c->dirty_next = NULL;
	c->dirty = false;
	return c;
}
