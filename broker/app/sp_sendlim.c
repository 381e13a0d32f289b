/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_sendlim.c: per-sender token buckets (sp_sendlim.h).
 *
 * Tokens are kept in thousandths (integer arithmetic, refill per
 * millisecond exact for any rate up to 2^32 per second).
 */
#include "sp_sendlim.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sp_keytab.h"

struct bucket {
	uint64_t env;                   /* envelope tokens x 1000 */
	uint64_t bytes;                 /* byte tokens x 1000 */
	uint64_t last_ms;
};

struct entry {
	uint8_t key[SP_KEY_LEN];
	struct bucket b;
};

struct sp_sendlim {
	struct sp_sendlim_config cfg;
	struct sp_keytab *map;          /* sender key -> index into entries */
	struct entry *entries;
	size_t count;
	struct bucket overflow;         /* shared by senders the table has no room for */
	uint64_t pruned_ms;             /* last pass dropping full buckets */
};

enum { PRUNE_EVERY_MS = 1000 };

static uint64_t cap_env(const struct sp_sendlim *l)
{
	return l->cfg.burst * 1000;
}

static uint64_t cap_bytes(const struct sp_sendlim *l)
{
	return l->cfg.byte_burst * 1000;
}

static void bucket_fill(const struct sp_sendlim *l, struct bucket *b, uint64_t now_ms)
{
	b->env = cap_env(l);
	b->bytes = cap_bytes(l);
	b->last_ms = now_ms;
}

static uint64_t add_cap(uint64_t v, uint64_t add, uint64_t cap)
{
	return add >= cap || v >= cap - add ? cap : v + add;
}

/* Tokens for the time since last_ms (a clock stepped back refills nothing). */
static void bucket_refill(const struct sp_sendlim *l, struct bucket *b, uint64_t now_ms)
{
	uint64_t dt;

	if (now_ms <= b->last_ms)
		return;
	dt = now_ms - b->last_ms;
	if (dt > 1000000)
		dt = 1000000;   /* far more than any bucket needs to fill */
	b->env = add_cap(b->env, dt * l->cfg.rate, cap_env(l));
	b->bytes = add_cap(b->bytes, dt * l->cfg.byte_rate, cap_bytes(l));
	b->last_ms = now_ms;
}

static bool bucket_full(const struct sp_sendlim *l, const struct bucket *b)
{
	return (!l->cfg.rate || b->env >= cap_env(l)) &&
	       (!l->cfg.byte_rate || b->bytes >= cap_bytes(l));
}

static int bucket_take(const struct sp_sendlim *l, struct bucket *b, uint64_t n, uint64_t body_len)
{
	uint64_t need_b = body_len > UINT64_MAX / 1000 ? UINT64_MAX : body_len * 1000;
	uint64_t need_e = n > UINT64_MAX / 1000 ? UINT64_MAX : n * 1000;

	if (l->cfg.rate && b->env < need_e)
		return -EAGAIN;
	if (l->cfg.byte_rate && b->bytes < need_b)
		return -EAGAIN;
	if (l->cfg.rate)
		b->env -= need_e;
	if (l->cfg.byte_rate)
		b->bytes -= need_b;
	return 0;
}

int sp_sendlim_create(struct sp_sendlim **out, const struct sp_sendlim_config *cfg)
{
	struct sp_sendlim *l;
	size_t hint;

	*out = NULL;
	if (!cfg || cfg->max_senders == 0)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->cfg = *cfg;
	l->entries = calloc(cfg->max_senders, sizeof(*l->entries));
	hint = cfg->max_senders < 1024 ? cfg->max_senders : 1024;
	if (!l->entries || sp_keytab_create(&l->map, hint) < 0) {
		sp_sendlim_destroy(l);
		return -ENOMEM;
	}
	bucket_fill(l, &l->overflow, 0);
	*out = l;
	return 0;
}

void sp_sendlim_destroy(struct sp_sendlim *l)
{
	if (!l)
		return;
	sp_keytab_destroy(l->map);
	free(l->entries);
	free(l);
}

size_t sp_sendlim_count(const struct sp_sendlim *l)
{
	return l->count;
}

/* Removes entries[i] (the last entry moves into its place). */
static void drop(struct sp_sendlim *l, size_t i)
{
	size_t last = l->count - 1;

	sp_keytab_remove(l->map, l->entries[i].key, i);
	if (i != last) {
		l->entries[i] = l->entries[last];
		/* Replaces the moved key's index (last -> i); cannot fail. */
		sp_keytab_insert(l->map, l->entries[i].key, i, NULL);
	}
	l->count--;
}

/* Drops every sender whose buckets are full again: O(table), so at most
 * once per PRUNE_EVERY_MS and only when the table is full. */
static void prune(struct sp_sendlim *l, uint64_t now_ms)
{
	if (now_ms >= l->pruned_ms && now_ms - l->pruned_ms < PRUNE_EVERY_MS && l->pruned_ms)
		return;
	l->pruned_ms = now_ms ? now_ms : 1;
	for (size_t i = 0; i < l->count;) {
		bucket_refill(l, &l->entries[i].b, now_ms);
		if (bucket_full(l, &l->entries[i].b))
			drop(l, i);
		else
			i++;
	}
}

int sp_sendlim_take(struct sp_sendlim *l, const uint8_t sender[SP_KEY_LEN], uint64_t body_len,
		    uint64_t now_ms)
{
	return sp_sendlim_take_n(l, sender, 1, body_len, now_ms);
}

int sp_sendlim_take_n(struct sp_sendlim *l, const uint8_t sender[SP_KEY_LEN], uint64_t n,
		      uint64_t body_len, uint64_t now_ms)
{
	struct bucket *b;
	uint64_t idx;

	if (!l->cfg.rate && !l->cfg.byte_rate)
		return 0;
	if (sp_keytab_lookup(l->map, sender, &idx) == 0) {
		b = &l->entries[idx].b;
	} else {
		if (l->count == l->cfg.max_senders)
			prune(l, now_ms);
		if (l->count < l->cfg.max_senders &&
		    sp_keytab_insert(l->map, sender, l->count, NULL) == 0) {
			struct entry *e = &l->entries[l->count++];

			memcpy(e->key, sender, SP_KEY_LEN);
			bucket_fill(l, &e->b, now_ms);
			b = &e->b;
		} else {
			b = &l->overflow;
		}
	}
	bucket_refill(l, b, now_ms);
	return bucket_take(l, b, n, body_len);
}
