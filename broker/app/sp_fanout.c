/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_fanout.c: fan-out groups (sp_fanout.h, docs/PROTOCOL.md 16).
 */
#include "sp_fanout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sp_account.h"
#include "sp_conn_table.h"
#include "sp_devlist.h"
#include "sp_key.h"
#include "sp_lifecycle.h"
#include "sp_mailbox.h"
#include "sp_mem.h"
#include "sp_sendlim.h"

struct sp_fanout_group {
	struct sp_list node;            /* in sh->fanout_list while open */
	struct sp_conn *c;              /* the connection it belongs to */
	uint64_t id;
	uint64_t version;
	uint64_t deadline_ns;
	uint64_t bytes;                 /* bodies held, also in sh->mem.fanout_bytes */
	uint32_t count, got;
	bool refused;                   /* answered: its remaining copies are dropped */
	bool account_ok;
	uint8_t account[SP_ACCOUNT_LEN];
	struct sp_mailbox_copy copies[];        /* count of them */
};

static enum sp_close_reason complete(struct sp_shard *sh, struct sp_conn *c);

static struct sp_fanout_group *group_of(struct sp_list *n)
{
	return (struct sp_fanout_group *)((char *)n - offsetof(struct sp_fanout_group, node));
}

void sp_fanout_init(struct sp_shard *sh)
{
	sp_list_init(&sh->fanout_list);
	sh->mem.fanout_bytes = 0;
}

/* The bodies let go of (they are ciphertext: freed, not wiped). */
static void release_copies(struct sp_shard *sh, struct sp_fanout_group *g)
{
	for (uint32_t i = 0; i < g->got; i++) {
		free(g->copies[i].body);
		g->copies[i].body = NULL;
	}
	sh->mem.fanout_bytes -= g->bytes;
	g->bytes = 0;
	g->got = 0;
	sp_list_del(&g->node);
}

static void group_free(struct sp_shard *sh, struct sp_conn *c)
{
	struct sp_fanout_group *g = c->fan.g;

	if (!g)
		return;
	release_copies(sh, g);
	free(g);
	c->fan.g = NULL;
}

/* FanoutResult{id, st, version, missing, stale} with the keys as its body
 * (missing then stale, 32 bytes each). */
static enum sp_close_reason answer(struct sp_shard *sh, struct sp_conn *c, uint64_t id,
				   enum sp_status st, uint64_t version,
				   const uint8_t (*missing)[SP_KEY_LEN], uint32_t nmissing,
				   const uint8_t (*stale)[SP_KEY_LEN], uint32_t nstale)
{
	uint8_t body[SP_FANOUT_RESULT_BODY_MAX];
	size_t len = 0;
	struct sp_frame r;
	int ret;

	memset(&r, 0, sizeof(r));
	r.type = SP_FRAME_FANOUT_RESULT;
	r.u.fanout.group_id = id;
	r.u.fanout.status = st;
	r.u.fanout.version = version;
	r.u.fanout.missing = nmissing;
	r.u.fanout.stale = nstale;
	if (nmissing)
		memcpy(body, missing, (size_t)nmissing * SP_KEY_LEN);
	len = (size_t)nmissing * SP_KEY_LEN;
	if (nstale)
		memcpy(body + len, stale, (size_t)nstale * SP_KEY_LEN);
	len += (size_t)nstale * SP_KEY_LEN;
	ret = sp_session_tx_frame(&c->s, &r, len ? body : NULL, len);
	sp_conn_mark(sh, c);
	if (ret == -ENOMEM)
		return SP_CLOSE_NOMEM;
	return ret ? SP_CLOSE_INTERNAL : SP_CLOSE_NONE;
}

/* The open group refused before its last copy: answered, its copies let
 * go, and its remaining ones dropped as they come. */
static enum sp_close_reason refuse_open(struct sp_shard *sh, struct sp_conn *c, enum sp_status st)
{
	struct sp_fanout_group *g = c->fan.g;

	release_copies(sh, g);
	g->refused = true;
	return answer(sh, c, g->id, st, 0, NULL, 0, NULL, 0);
}

enum sp_close_reason sp_fanout_other(struct sp_shard *sh, struct sp_conn *c)
{
	bool open = !c->fan.g->refused;
	uint64_t id = c->fan.g->id;

	group_free(sh, c);
	return open ? answer(sh, c, id, SP_STATUS_ERR_FANOUT_INCOMPLETE, 0, NULL, 0, NULL, 0)
		    : SP_CLOSE_NONE;
}

void sp_fanout_drop(struct sp_shard *sh, struct sp_conn *c)
{
	group_free(sh, c);
}

enum sp_close_reason sp_fanout_begin(struct sp_shard *sh, struct sp_conn *c,
				     const struct sp_frame *f)
{
	struct sp_fanout_group *g;
	uint32_t count = f->u.fanout.count;
	bool too_many = count > sh->cfg->fanout_max_copies || count > SP_FANOUT_COPIES_MAX;
	enum sp_close_reason why;

	if (c->fan.g) {
		/* a new group cuts the open one short */
		why = sp_fanout_other(sh, c);
		if (why)
			return why;
	}
	/* A refused group is remembered with no room for copies. */
	g = calloc(1, sizeof(*g) + (too_many ? 0 : count) * sizeof(g->copies[0]));
	if (!g)
		return SP_CLOSE_NOMEM;
	g->c = c;
	g->id = f->u.fanout.group_id;
	g->version = f->u.fanout.version;
	g->count = count;
	g->account_ok = f->u.fanout.key_ok;
	memcpy(g->account, f->u.fanout.key, SP_ACCOUNT_LEN);
	g->deadline_ns = sh->now_ns + (uint64_t)sh->cfg->fanout_timeout_ms * 1000000u;
	c->fan.g = g;
	if (too_many)
		return refuse_open(sh, c, SP_STATUS_ERR_FANOUT_TOO_LARGE);
	/* Cluster: the copies would go to several JetStream streams, which
	 * cannot be committed all or none (PROTOCOL.md 19). */
	if (sh->cluster)
		return refuse_open(sh, c, SP_STATUS_ERR_CLUSTER_UNSUPPORTED);
	sp_list_add_tail(&sh->fanout_list, &g->node);
	if (count == 0)
		return complete(sh, c);         /* nothing to wait for */
	return SP_CLOSE_NONE;
}

/* ---- the checks of a complete group (PROTOCOL.md 16.3) ------------------- */

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, SP_KEY_LEN);
}

/* The group's keys, sorted, into keys; true if one is there twice. */
static bool sorted_keys(const struct sp_fanout_group *g, uint8_t (*keys)[SP_KEY_LEN])
{
	for (uint32_t i = 0; i < g->count; i++)
		memcpy(keys[i], g->copies[i].to, SP_KEY_LEN);
	qsort(keys, g->count, SP_KEY_LEN, key_cmp);
	for (uint32_t i = 1; i < g->count; i++)
		if (memcmp(keys[i - 1], keys[i], SP_KEY_LEN) == 0)
			return true;
	return false;
}

/*
 * The set difference of the group's sorted keys and the list's devices
 * (sorted by key, the canonical order) without self: missing = on the
 * list, no copy; stale = a copy, not on the list. One merge.
 */
static void differ(const struct sp_devlist *l, const uint8_t *self, const uint8_t (*keys)[SP_KEY_LEN],
		   uint32_t n, uint8_t (*missing)[SP_KEY_LEN], uint32_t *nm,
		   uint8_t (*stale)[SP_KEY_LEN], uint32_t *ns)
{
	uint32_t i = 0, j = 0;

	*nm = *ns = 0;
	while (i < l->count || j < n) {
		int cmp;

		if (i < l->count && memcmp(l->dev[i].key, self, SP_KEY_LEN) == 0) {
			i++;    /* the sender is never expected: it has the message */
			continue;
		}
		cmp = i == l->count ? 1 : j == n ? -1 : memcmp(l->dev[i].key, keys[j], SP_KEY_LEN);
		if (cmp < 0)
			memcpy(missing[(*nm)++], l->dev[i++].key, SP_KEY_LEN);
		else if (cmp > 0)
			memcpy(stale[(*ns)++], keys[j++], SP_KEY_LEN);
		else
			i++, j++;
	}
}

static void count_refused(struct sp_shard *sh, uint32_t n, enum sp_status st)
{
	for (uint32_t i = 0; i < n; i++)
		sp_metrics_envelope_refused(sh->metrics, st);
}

/* The last copy is in: checked, stored or refused, answered, freed. */
static enum sp_close_reason complete(struct sp_shard *sh, struct sp_conn *c)
{
	struct sp_fanout_group *g = c->fan.g;
	uint8_t keys[SP_FANOUT_COPIES_MAX][SP_KEY_LEN];
	uint8_t missing[SP_DEVLIST_DEVICES_MAX][SP_KEY_LEN];
	uint8_t stale[SP_FANOUT_COPIES_MAX][SP_KEY_LEN];
	uint8_t buf[SP_DEVLIST_MAX];
	struct sp_devlist l;
	uint32_t nm = 0, ns = 0;
	uint64_t version = 0;
	enum sp_status st;
	uint64_t id = g->id;
	int r;

	sp_list_del(&g->node);          /* no deadline any more */
	if (!g->account_ok) {
		st = SP_STATUS_ERR_LIST_ACCOUNT;
	} else if (!sp_shard_store(sh)) {
		st = SP_STATUS_ERR_INTERNAL;
	} else if ((r = sp_account_current(sh, g->account, buf, &l)) <= 0) {
		st = r == 0 ? SP_STATUS_ERR_LIST_UNKNOWN : SP_STATUS_ERR_INTERNAL;
	} else if (sorted_keys(g, keys)) {
		version = l.version;
		st = SP_STATUS_ERR_FANOUT_DUPLICATE;
	} else {
		version = l.version;
		differ(&l, c->s.peer, (const uint8_t (*)[SP_KEY_LEN])keys, g->count, missing, &nm,
		       stale, &ns);
		if (nm || ns || g->version != l.version)
			st = SP_STATUS_ERR_FANOUT_MISMATCH;
		else if (sp_sendlim_take_n(sh->sendlim, c->s.peer, g->count, g->bytes,
					   sh->wall_ms) < 0)
			st = SP_STATUS_ERR_RATE_LIMITED;
		else
			st = sp_mailbox_store_group(sh, c, g->id, version, g->copies, g->count);
	}
	if (st == SP_STATUS_ACCEPTED) {
		/* Stored: the mailbox answers, after the WAL sync where
		 * --fsync always asks for one (sp_mailbox_store_group). */
		for (uint32_t i = 0; i < g->count; i++)
			sp_metrics_envelope_accepted(sh->metrics);
		group_free(sh, c);
		return SP_CLOSE_NONE;
	} else {
		count_refused(sh, g->count, st);
	}
	group_free(sh, c);
	if (st != SP_STATUS_ERR_FANOUT_MISMATCH)
		nm = ns = 0;
	return answer(sh, c, id, st, version, (const uint8_t (*)[SP_KEY_LEN])missing, nm,
		      (const uint8_t (*)[SP_KEY_LEN])stale, ns);
}

enum sp_close_reason sp_fanout_copy(struct sp_shard *sh, struct sp_conn *c,
				    const struct sp_frame *f)
{
	struct sp_fanout_group *g = c->fan.g;
	struct sp_mailbox_copy *cp;

	if (!g)
		return SP_CLOSE_PROTOCOL;       /* a copy of no group */
	if (f->u.fanout.group_id != g->id) {
		/* another group's copy: this one is cut short, and that copy
		 * belongs to no group */
		enum sp_close_reason why = sp_fanout_other(sh, c);

		return why ? why : SP_CLOSE_PROTOCOL;
	}
	if (g->refused)
		return SP_CLOSE_NONE;           /* dropped: answered already */
	if (!f->u.fanout.key_ok || !sp_noise_key_valid(f->u.fanout.key))
		return refuse_open(sh, c, SP_STATUS_ERR_BAD_RECIPIENT);
	if (f->body_len > sh->cfg->max_envelope)
		return refuse_open(sh, c, SP_STATUS_ERR_TOO_LARGE);
	if (g->bytes + f->body_len > sh->cfg->fanout_max_bytes ||
	    sp_mem_used(sh) + f->body_len > sp_mem_budget(sh))
		return refuse_open(sh, c, SP_STATUS_ERR_FANOUT_TOO_LARGE);
	cp = &g->copies[g->got];
	cp->body = malloc(f->body_len ? f->body_len : 1);
	if (!cp->body)
		return refuse_open(sh, c, SP_STATUS_ERR_FANOUT_TOO_LARGE);
	memcpy(cp->to, f->u.fanout.key, SP_KEY_LEN);
	if (f->body_len)
		memcpy(cp->body, f->body, f->body_len);
	cp->len = f->body_len;
	g->got++;
	g->bytes += f->body_len;
	sh->mem.fanout_bytes += f->body_len;
	if (g->got < g->count)
		return SP_CLOSE_NONE;
	return complete(sh, c);
}

void sp_fanout_tick(struct sp_shard *sh)
{
	while (!sp_list_empty(&sh->fanout_list)) {
		struct sp_fanout_group *g = group_of(sh->fanout_list.next);
		struct sp_conn *c = g->c;

		if (g->deadline_ns > sh->now_ns)
			return;
		if (c->s.state != SP_SESSION_ESTABLISHED || c->life.close_reason) {
			group_free(sh, c);      /* ending: its last frame is its GoAway */
			continue;
		}
		/* off the list in refuse_open; its connection stays up */
		if (refuse_open(sh, c, SP_STATUS_ERR_FANOUT_INCOMPLETE))
			sp_life_end_later(sh, c, SP_CLOSE_INTERNAL);
	}
}
