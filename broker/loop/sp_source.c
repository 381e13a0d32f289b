/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_source.c: per-source connection counts (sp_source.h).
 *
 * An open-addressing table with linear probing, sized to at least twice
 * the connection table, so it never fills (every entry has a connection)
 * and probes stay short; deletion shifts the run back instead of leaving
 * tombstones, so a flood of short-lived sources cannot degrade it. The
 * hash is keyed with a random key per table (libsodium's shorthash), so a
 * peer cannot choose addresses that collide.
 */
#include "sp_source.h"

#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	uint8_t key[SP_SOURCE_KEY_LEN];
	uint32_t conns;                 /* 0 = empty */
	uint32_t unauth;
};

struct sp_source_table {
	struct entry *e;
	uint32_t mask;
	uint32_t used;
	uint8_t hkey[crypto_shorthash_KEYBYTES];
};

int sp_source_table_new(struct sp_source_table **out, uint32_t cap)
{
	struct sp_source_table *t;
	uint32_t n = 16;

	*out = NULL;
	if (sodium_init() < 0)
		return -EIO;
	/* A load of at most 3/4 when every connection has its own source
	 * (linear probing stays a few probes long there); the table is
	 * touched page by page only as distinct sources arrive. */
	while (n < (uint64_t)cap + cap / 3 + 1)
		n <<= 1;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->e = calloc(n, sizeof(*t->e));
	if (!t->e) {
		free(t);
		return -ENOMEM;
	}
	t->mask = n - 1;
	randombytes_buf(t->hkey, sizeof(t->hkey));
	*out = t;
	return 0;
}

void sp_source_table_free(struct sp_source_table *t)
{
	if (!t)
		return;
	free(t->e);
	free(t);
}

int sp_source_key(const struct sockaddr *sa, socklen_t len, uint8_t key[SP_SOURCE_KEY_LEN])
{
	memset(key, 0, SP_SOURCE_KEY_LEN);
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;

		/* The first byte tells the families apart: 4 = IPv4, 6 = IPv6. */
		key[0] = 4;
		memcpy(key + 1, &a->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

		if (memcmp(a->sin6_addr.s6_addr, mapped, sizeof(mapped)) == 0) {
			key[0] = 4;
			memcpy(key + 1, a->sin6_addr.s6_addr + 12, 4);
			return 0;
		}
		key[0] = 6;
		memcpy(key + 1, a->sin6_addr.s6_addr, 8);       /* the /64 */
		return 0;
	}
	return -EAFNOSUPPORT;
}

static uint32_t home(const struct sp_source_table *t, const uint8_t key[SP_SOURCE_KEY_LEN])
{
	uint8_t h[crypto_shorthash_BYTES];
	uint32_t v;

	crypto_shorthash(h, key, SP_SOURCE_KEY_LEN, t->hkey);
	memcpy(&v, h, sizeof(v));
	return v & t->mask;
}

/* The entry of key, or the empty one where it would go. */
static struct entry *find(const struct sp_source_table *t, const uint8_t key[SP_SOURCE_KEY_LEN])
{
	uint32_t i = home(t, key);

	for (;;) {
		struct entry *e = &t->e[i];

		if (e->conns == 0 || memcmp(e->key, key, SP_SOURCE_KEY_LEN) == 0)
			return e;
		i = (i + 1) & t->mask;
	}
}

enum sp_source_verdict sp_source_table_admit(struct sp_source_table *t,
					     const uint8_t key[SP_SOURCE_KEY_LEN],
					     uint32_t max_conns, uint32_t max_unauth)
{
	struct entry *e = find(t, key);

	if (max_conns && e->conns >= max_conns)
		return SP_SOURCE_TOO_MANY;
	if (max_unauth && e->unauth >= max_unauth)
		return SP_SOURCE_TOO_MANY_UNAUTH;
	/* Never full: at most one entry per connection, and a third more slots. */
	if (e->conns == 0) {
		if (t->used >= t->mask)
			return SP_SOURCE_TOO_MANY;
		memcpy(e->key, key, SP_SOURCE_KEY_LEN);
		t->used++;
	}
	e->conns++;
	e->unauth++;
	return SP_SOURCE_OK;
}

void sp_source_table_proven(struct sp_source_table *t, const uint8_t key[SP_SOURCE_KEY_LEN])
{
	struct entry *e = find(t, key);

	if (e->conns && e->unauth)
		e->unauth--;
}

/* Empties slot i and moves back the entries of its run that may no longer
 * be reachable from their home (backward-shift deletion). */
static void remove_at(struct sp_source_table *t, uint32_t i)
{
	uint32_t j = i;

	for (;;) {
		uint32_t k;

		j = (j + 1) & t->mask;
		if (t->e[j].conns == 0)
			break;
		k = home(t, t->e[j].key);
		/* Leave e[j] if its home lies cyclically in (i, j]. */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		t->e[i] = t->e[j];
		i = j;
	}
	memset(&t->e[i], 0, sizeof(t->e[i]));
	t->used--;
}

void sp_source_table_release(struct sp_source_table *t, const uint8_t key[SP_SOURCE_KEY_LEN],
			     bool unauth)
{
	struct entry *e = find(t, key);

	if (e->conns == 0)
		return;
	if (unauth && e->unauth)
		e->unauth--;
	if (--e->conns == 0)
		remove_at(t, (uint32_t)(e - t->e));
}

void sp_source_table_get(const struct sp_source_table *t, const uint8_t key[SP_SOURCE_KEY_LEN],
			 uint32_t *conns, uint32_t *unauth)
{
	const struct entry *e = find(t, key);

	*conns = e->conns;
	*unauth = e->conns ? e->unauth : 0;
}

uint32_t sp_source_table_count(const struct sp_source_table *t)
{
	return t->used;
}

enum sp_source_verdict sp_source_accept(struct sp_shard *sh, int fd, struct sp_conn_src *src)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	enum sp_source_verdict v;

	memset(src, 0, sizeof(*src));
	if (!sh->sources || getpeername(fd, (struct sockaddr *)&ss, &len) != 0 ||
	    sp_source_key((const struct sockaddr *)&ss, len, src->key) != 0)
		return SP_SOURCE_OK;
	v = sp_source_table_admit(sh->sources, src->key, sh->cfg->max_conns_per_source,
				  sh->cfg->max_unauth_per_source);
	if (v == SP_SOURCE_OK)
		src->counted = src->unauth = true;
	return v;
}

void sp_source_attach(struct sp_conn *c, const struct sp_conn_src *src)
{
	c->source = *src;
}

void sp_source_undo(struct sp_shard *sh, const struct sp_conn_src *src)
{
	if (src->counted)
		sp_source_table_release(sh->sources, src->key, src->unauth);
}

/* A moved connection's count is shard 0's (which accepted it): told there. */
static void tell_home(struct sp_shard *sh, const struct sp_conn *c, bool release)
{
	struct sp_inbox_msg *m = sp_inbox_msg_new(SP_XS_SOURCE, SP_SOURCE_KEY_LEN);

	if (!m)
		return;         /* the count stays one too high until restart */
	memcpy(m->data, c->source.key, SP_SOURCE_KEY_LEN);
	m->arg[0] = release;
	m->arg[1] = c->source.unauth;
	sp_shard_post(sh, 0, m);
}

void sp_source_proven(struct sp_shard *sh, struct sp_conn *c)
{
	if (!c->source.counted || !c->source.unauth)
		return;
	if (c->source.remote)
		tell_home(sh, c, false);
	else
		sp_source_table_proven(sh->sources, c->source.key);
	c->source.unauth = false;
}

void sp_source_release(struct sp_shard *sh, struct sp_conn *c)
{
	if (c->source.counted && c->source.remote)
		tell_home(sh, c, true);
	else if (c->source.counted)
		sp_source_table_release(sh->sources, c->source.key, c->source.unauth);
	c->source.counted = c->source.unauth = c->source.remote = false;
}

void sp_source_moved(struct sp_conn *c, struct sp_conn_src *out)
{
	*out = c->source;
	out->remote = out->counted;
	c->source.counted = c->source.unauth = c->source.remote = false;
}

void sp_source_remote(struct sp_shard *sh, const struct sp_inbox_msg *m)
{
	if (!sh->sources || m->len != SP_SOURCE_KEY_LEN)
		return;
	if (m->arg[0])
		sp_source_table_release(sh->sources, m->data, m->arg[1] != 0);
	else
		sp_source_table_proven(sh->sources, m->data);
}
