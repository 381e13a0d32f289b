/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_anon.c: SetAccess and AnonSend (sp_anon.h).
 */
#include "sp_anon.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "sp_cluster_mbox.h"
#include "sp_cluster_route.h"
#include "sp_deliver.h"
#include "sp_log.h"
#include "sp_mailbox.h"
#include "sp_sendlim.h"
#include "sp_store.h"

int sp_anon_init(struct sp_shard *sh)
{
	/* Envelope buckets only: body sizes are padded (PROTOCOL.md 7.1) and
	 * bounded by max_envelope; the durable byte budgets are per sender,
	 * which an anonymous send has not. */
	struct sp_sendlim_config rc = {
		.rate = sh->cfg->anon_recipient_rate,
		.burst = sh->cfg->anon_recipient_burst,
		.max_senders = sh->cfg->sender_table_max ? sh->cfg->sender_table_max : 1,
	};
	struct sp_sendlim_config sc = {
		.rate = sh->cfg->anon_source_rate,
		.burst = sh->cfg->anon_source_burst,
		.max_senders = sh->cfg->sender_table_max ? sh->cfg->sender_table_max : 1,
	};

	if (sp_sendlim_create(&sh->anon_rcpt, &rc))
		return -ENOMEM;
	if (sp_sendlim_create(&sh->anon_src, &sc)) {
		sp_sendlim_destroy(sh->anon_rcpt);
		sh->anon_rcpt = NULL;
		return -ENOMEM;
	}
	return 0;
}

void sp_anon_destroy(struct sp_shard *sh)
{
	sp_sendlim_destroy(sh->anon_rcpt);
	sp_sendlim_destroy(sh->anon_src);
	sh->anon_rcpt = sh->anon_src = NULL;
}

static bool key_len_ok(size_t len)
{
	return len == SP_ACCESS_KEY_MIN || len == SP_ACCESS_KEY_MAX;
}

enum sp_status sp_anon_check(const struct sp_store_access *a, const uint8_t *token, size_t len)
{
	uint8_t h[SP_ACCESS_HASH_LEN];
	int cur, prev;

	if (len == 0)
		return a && a->anyone ? SP_STATUS_ACCEPTED : SP_STATUS_ERR_ACCESS_MISSING;
	/* A token, even a wrong one, to a recipient that accepts anyone is
	 * accepted: "anyone" includes senders with a stale key. */
	if (a && a->anyone)
		return SP_STATUS_ACCEPTED;
	if (!a || !key_len_ok(len))
		return SP_STATUS_ERR_ACCESS_WRONG;
	sp_store_access_hash(h, token, len);
	/* Both comparisons always run: the time says nothing about which one
	 * (or whether one) matched. */
	cur = sodium_memcmp(h, a->cur, sizeof(h));
	prev = sodium_memcmp(h, a->prev, sizeof(h));
	sodium_memzero(h, sizeof(h));
	if (a->has_cur && cur == 0)
		return SP_STATUS_ACCEPTED;
	if (a->has_prev && prev == 0)
		return SP_STATUS_ERR_ACCESS_ROTATED;
	return SP_STATUS_ERR_ACCESS_WRONG;
}

enum sp_close_reason sp_anon_set_access(struct sp_shard *sh, struct sp_conn *c,
					const struct sp_frame *f)
{
	const uint8_t *key = f->u.set_access.access_key;
	size_t len = f->u.set_access.access_key_len;
	struct sp_store_access a;
	struct sp_frame r;
	int ret;

	memset(&r, 0, sizeof(r));
	r.type = SP_FRAME_ACCESS_RESULT;
	r.u.access_result.client_id = f->u.set_access.client_id;
	if (len != 0 && !key_len_ok(len)) {
		r.u.access_result.status = SP_STATUS_ERR_ACCESS_BAD_KEY;
		return sp_deliver_reply(sh, c, &r);
	}
	if (!sp_shard_store(sh)) {
		r.u.access_result.status = SP_STATUS_ERR_INTERNAL;
		return sp_deliver_reply(sh, c, &r);
	}
	ret = sp_store_access_get(sp_shard_store(sh), c->s.peer, &a);
	if (ret < 0)
		memset(&a, 0, sizeof(a)); /* none, or corrupt: start over */
	a.anyone = f->u.set_access.flags & SP_ACCESS_ANYONE;
	if (len) {
		uint8_t h[SP_ACCESS_HASH_LEN];

		sp_store_access_hash(h, key, len);
		/* Setting the current key again is no rotation: prev stays. */
		if (!a.has_cur || sodium_memcmp(h, a.cur, sizeof(h)) != 0) {
			a.has_prev = a.has_cur;
			memcpy(a.prev, a.cur, sizeof(a.prev));
			memcpy(a.cur, h, sizeof(a.cur));
			a.has_cur = true;
		}
		sodium_memzero(h, sizeof(h));
	}
	ret = sp_store_access_put(sp_shard_store(sh), c->s.peer, &a);
	sodium_memzero(&a, sizeof(a));
	r.u.access_result.status = ret ? SP_STATUS_ERR_INTERNAL : SP_STATUS_ACCEPTED;
	return sp_deliver_reply(sh, c, &r);
}

/* The source's budget key: the 16-byte source key, zero-padded. */
static void source_key(const struct sp_conn *c, uint8_t out[SP_KEY_LEN])
{
	memset(out, 0, SP_KEY_LEN);
	memcpy(out, c->source.key, SP_SOURCE_KEY_LEN);
}

static enum sp_status anon_status(struct sp_shard *sh, struct sp_conn *c,
				  const struct sp_frame *f, uint64_t *seq, bool *durable,
				  bool *to_cluster)
{
	const uint8_t *to = f->u.anon_send.to;
	uint8_t src[SP_KEY_LEN];
	struct sp_store_access a;
	struct sp_frame sf;
	struct sp_conn *rc;
	enum sp_status st;
	int ret;

	if (!f->u.anon_send.to_ok || !sp_noise_key_valid(to))
		return SP_STATUS_ERR_BAD_RECIPIENT;
	if (f->body_len > sh->cfg->max_envelope)
		return SP_STATUS_ERR_TOO_LARGE;
	/* The source pays for every attempt, so guessing tokens is as slow as
	 * anon-source-rate; the recipient's budget only for admitted ones, so
	 * that bad tokens cannot use it up. */
	source_key(c, src);
	if (sp_sendlim_take(sh->anon_src, src, 0, sh->wall_ms) < 0)
		return SP_STATUS_ERR_ANON_RATE_LIMITED;
	ret = sp_shard_store(sh) ? sp_store_access_get(sp_shard_store(sh), to, &a) : -ENOENT;
	st = sp_anon_check(ret == 0 ? &a : NULL, f->u.anon_send.access_key,
			   f->u.anon_send.access_key_len);
	sodium_memzero(&a, sizeof(a));
	if (st != SP_STATUS_ACCEPTED)
		return st;
	if (sp_sendlim_take(sh->anon_rcpt, to, 0, sh->wall_ms) < 0)
		return SP_STATUS_ERR_ANON_RATE_LIMITED;
	/* From here an AnonSend is a Send from nobody (sp_mailbox_store: no
	 * sender budget, no dedup, the mailbox's anonymous share). */
	memset(&sf, 0, sizeof(sf));
	sf.type = SP_FRAME_SEND;
	memcpy(sf.u.send.to, to, SP_KEY_LEN);
	sf.u.send.to_ok = 1;
	sf.u.send.flags = f->u.anon_send.flags;
	sf.body = f->body;
	sf.body_len = f->body_len;
	if ((sf.u.send.flags & SP_SEND_ONLINE_ONLY) && sp_shard_home(sh, to) != sh->id)
		return SP_STATUS_UNSPECIFIED;   /* its home shard decides: sp_anon_send */
	if (sf.u.send.flags & SP_SEND_ONLINE_ONLY) {
		if ((rc = sp_deliver_recipient(sh, to)))
			return sp_deliver_online(sh, rc, &sf);
		if (!sh->cluster)
			return SP_STATUS_ERR_OFFLINE;
		*to_cluster = true;     /* maybe on another node: sp_anon_send */
		return SP_STATUS_UNSPECIFIED;
	}
	if (sh->cluster) {
		*to_cluster = true;     /* JetStream decides: sp_anon_send */
		return SP_STATUS_UNSPECIFIED;
	}
	return sp_mailbox_store(sh, c, &sf, seq, durable);
}

enum sp_close_reason sp_anon_send(struct sp_shard *sh, struct sp_conn *c,
				  const struct sp_frame *f)
{
	uint64_t seq = 0;
	bool durable = false, to_cluster = false;
	enum sp_status st = anon_status(sh, c, f, &seq, &durable, &to_cluster);

	/* Cluster, online only: a DELIVER to whichever node holds it. */
	if (to_cluster && (f->u.anon_send.flags & SP_SEND_ONLINE_ONLY))
		return sp_cluster_route_send(sh, c, f->u.anon_send.to, f->u.anon_send.client_id,
					     f->body, f->body_len);
	/* Cluster: durable, into the device's subject in JetStream (no
	 * sender: no budget, no dedup). */
	if (to_cluster)
		return sp_cluster_mbox_send(sh, c, f->u.anon_send.to, true, f->u.anon_send.client_id,
					    f->body, f->body_len);
	/* Online only, for a device homed on another shard: it answers. */
	if (st == SP_STATUS_UNSPECIFIED)
		return sp_mailbox_online_elsewhere(sh, c, f->u.anon_send.to,
						   f->u.anon_send.client_id, f->body, f->body_len);

	if (st != SP_STATUS_ACCEPTED && st != SP_STATUS_DELIVERED)
		seq = 0;
	if (sp_mailbox_result(sh, c, f->u.anon_send.client_id, st, seq, durable))
		return SP_CLOSE_NOMEM;
	return SP_CLOSE_NONE;
}
