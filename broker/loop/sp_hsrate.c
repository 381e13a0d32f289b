/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_hsrate.c: handshake-rate buckets per source and in all (sp_hsrate.h).
 */
#include "sp_hsrate.h"

#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum { WAYS = 8, MIN_ENTRIES = 64 };

struct bucket {
	uint64_t tat_ns;        /* theoretical arrival time; <= now: full (or unused) */
	uint8_t key[SP_SOURCE_KEY_LEN];
	bool used;
};

struct sp_hsrate {
	struct bucket *b;
	uint32_t nsets;         /* a power of two */
	uint64_t global_tat_ns;
	uint8_t hkey[crypto_shorthash_KEYBYTES];
};

int sp_hsrate_new(struct sp_hsrate **out, uint32_t sources)
{
	struct sp_hsrate *t;
	uint64_t n = MIN_ENTRIES;

	*out = NULL;
	if (sodium_init() < 0)
		return -EIO;
	while (n < sources)
		n <<= 1;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->b = calloc(n, sizeof(*t->b));
	if (!t->b) {
		free(t);
		return -ENOMEM;
	}
	t->nsets = (uint32_t)(n / WAYS);
	randombytes_buf(t->hkey, sizeof(t->hkey));
	*out = t;
	return 0;
}

void sp_hsrate_free(struct sp_hsrate *t)
{
	if (!t)
		return;
	free(t->b);
	free(t);
}

/* GCRA: may one more arrive at now with this rate and burst? If so, and
 * commit, the arrival is recorded in *tat. */
static bool gcra(uint64_t *tat, uint64_t now, uint32_t rate, uint32_t burst, bool commit)
{
	uint64_t interval = 1000000000ull / rate;
	uint64_t t = *tat > now ? *tat : now;

	if (burst == 0)
		burst = 1;
	if (interval == 0)
		interval = 1;
	if (t - now > (uint64_t)(burst - 1) * interval)
		return false;
	if (commit)
		*tat = t + interval;
	return true;
}

/* The bucket of key: its own, else a full one of its set (made its own),
 * else the one of the set closest to full. */
static struct bucket *slot(struct sp_hsrate *t, const uint8_t *key, uint64_t now)
{
	uint8_t h[crypto_shorthash_BYTES];
	uint32_t v;
	struct bucket *set, *pick = NULL;

	crypto_shorthash(h, key, SP_SOURCE_KEY_LEN, t->hkey);
	memcpy(&v, h, sizeof(v));
	set = &t->b[(size_t)(v & (t->nsets - 1)) * WAYS];
	for (unsigned i = 0; i < WAYS; i++)
		if (set[i].used && memcmp(set[i].key, key, SP_SOURCE_KEY_LEN) == 0)
			return &set[i];
	for (unsigned i = 0; i < WAYS; i++) {
		if (!set[i].used || set[i].tat_ns <= now) {
			pick = &set[i];
			break;
		}
		if (!pick || set[i].tat_ns < pick->tat_ns)
			pick = &set[i];
	}
	memcpy(pick->key, key, SP_SOURCE_KEY_LEN);
	pick->used = true;
	pick->tat_ns = 0;       /* a new source starts full */
	return pick;
}

enum sp_hsrate_verdict sp_hsrate_take(struct sp_hsrate *t, const uint8_t *key, uint64_t now_ns,
				      const struct sp_hsrate_limits *lim)
{
	struct bucket *b = NULL;

	if (key && lim->source_rate) {
		b = slot(t, key, now_ns);
		if (!gcra(&b->tat_ns, now_ns, lim->source_rate, lim->source_burst, false))
			return SP_HSRATE_SOURCE;
	}
	if (lim->global_rate &&
	    !gcra(&t->global_tat_ns, now_ns, lim->global_rate, lim->global_rate, true))
		return SP_HSRATE_GLOBAL;
	if (b)
		gcra(&b->tat_ns, now_ns, lim->source_rate, lim->source_burst, true);
	return SP_HSRATE_OK;
}

uint32_t sp_hsrate_busy(const struct sp_hsrate *t, uint64_t now_ns)
{
	uint32_t n = 0;

	for (size_t i = 0; i < (size_t)t->nsets * WAYS; i++)
		n += t->b[i].used && t->b[i].tat_ns > now_ns;
	return n;
}
