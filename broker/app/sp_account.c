/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_account.c: ListPut, ListFetch, removal and ListChanged (sp_account.h).
 */
#include "sp_account.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "sp_cluster_mbox.h"
#include "sp_conn_table.h"
#include "sp_deliver.h"
#include "sp_devlist.h"
#include "sp_lifecycle.h"
#include "sp_list.h"
#include "sp_mailbox.h"
#include "sp_store.h"
#include "sp_tlog.h"

_Static_assert((int)SP_STORE_LIST_VALUE_MAX == (int)SP_DEVLIST_MAX,
	       "the store keeps any list the protocol allows");

/* Bytes the transparency log (11.7) may add after a served list. */
enum { SP_ACCOUNT_EXT_MAX = 4096 };

/* ---- the transparency log (docs/PROTOCOL.md 11.7, app/sp_tlog.c) ---------- */

_Static_assert((int)SP_ACCOUNT_EXT_MAX >= (int)SP_LOG_TRAILER_MAX, "a trailer fits");

/*
 * Every accepted list is appended to the log in the same synced WriteBatch
 * as the list itself (sp_store_list_put stages it), so the two survive a
 * crash together. This serves the other half: after a list, the log's
 * trailer (a fresh signed tree head and the inclusion proof of the
 * account's latest leaf) for the device peer, into out (cap bytes).
 * Returns its length; 0 when there is no log (a detached test shard) or it
 * failed (logged): the client then refuses the list as unproven, which is
 * the safe side.
 */
static size_t translog_extension(struct sp_shard *sh, const struct sp_devlist *l,
				 const uint8_t *peer, uint8_t *out, size_t cap)
{
	size_t len = 0;
	int r;

	if (!sh->tlog || !sp_shard_store(sh))
		return 0;
	r = sp_tlog_trailer(sh->tlog, sp_shard_store(sh), l->account, peer, sh->wall_ms, out, cap, &len);
	if (r < 0) {
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "log proof not made", SP_KV_STR("error", strerror(-r)));
		return 0;
	}
	return len;
}

/* ---- ListPut ---------------------------------------------------------------- */

enum sp_status sp_account_status_of(int err)
{
	switch (err) {
	case 0: return SP_STATUS_ACCEPTED;
	case -EMSGSIZE: return SP_STATUS_ERR_LIST_TOO_LARGE;
	case -EDOM: return SP_STATUS_ERR_LIST_BAD_DEVICE_KEY;
	case -EILSEQ: return SP_STATUS_ERR_LIST_UNSORTED;
	case -EPERM: return SP_STATUS_ERR_LIST_BAD_SIGNATURE;
	default: return SP_STATUS_ERR_LIST_MALFORMED;
	}
}

static enum sp_close_reason reply(struct sp_shard *sh, struct sp_conn *c, const struct sp_frame *req,
				  enum sp_status st, uint64_t version, const uint8_t *body,
				  size_t list_len, size_t body_len)
{
	struct sp_frame r;
	int ret;

	memset(&r, 0, sizeof(r));
	r.type = SP_FRAME_LIST_RESULT;
	memcpy(r.u.list.account, req->u.list.account, SP_ACCOUNT_LEN);
	r.u.list.client_id = req->u.list.client_id;
	r.u.list.status = st;
	r.u.list.version = version;
	r.u.list.list_len = (uint32_t)list_len;
	ret = sp_session_tx_frame(&c->s, &r, body, body_len);
	sp_conn_mark(sh, c);
	if (ret == -ENOMEM)
		return SP_CLOSE_NOMEM;
	return ret ? SP_CLOSE_INTERNAL : SP_CLOSE_NONE;
}

/* The stored list of account, decoded (it was verified when stored): 1, 0
 * if none, or -errno (the store failed, or the value is corrupt). */
static int stored(struct sp_shard *sh, const uint8_t account[SP_ACCOUNT_LEN], uint8_t *buf,
		  size_t *len, struct sp_devlist *l)
{
	uint64_t t0 = sp_shard_mono_ns();
	int r = sp_store_list_get(sp_shard_store(sh), account, buf, SP_DEVLIST_MAX, len);

	sp_shard_store_timed(sh, SP_METRICS_STORE_LOOKUP, t0);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	r = sp_devlist_decode(buf, *len, l);
	return r < 0 ? -EBADMSG : 1;
}

int sp_account_current(struct sp_shard *sh, const uint8_t account[SP_ACCOUNT_LEN], uint8_t *buf,
		       struct sp_devlist *l)
{
	size_t len = 0;

	if (!sp_shard_store(sh))
		return 0;
	return stored(sh, account, buf, &len, l);
}

/* ListChanged to every connected device of the new list but the publisher. */
static void notify(struct sp_shard *sh, const struct sp_conn *publisher,
		   const struct sp_devlist *l, const uint8_t *list, size_t len)
{
	uint8_t body[SP_DEVLIST_MAX + SP_ACCOUNT_EXT_MAX];
	struct sp_frame f;
	size_t ext;

	memcpy(body, list, len);
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_LIST_CHANGED;
	memcpy(f.u.list.account, l->account, SP_ACCOUNT_LEN);
	f.u.list.version = l->version;
	f.u.list.list_len = (uint32_t)len;
	for (uint32_t i = 0; i < l->count; i++) {
		if (sodium_memcmp(l->dev[i].key, publisher->s.peer, SP_KEY_LEN) == 0)
			continue;
		/* Online only, and wherever its shard is: a device homed here
		 * and offline costs no translog work. */
		if (sp_shard_home(sh, l->dev[i].key) == sh->id &&
		    !sp_deliver_recipient(sh, l->dev[i].key))
			continue;
		/* per recipient: each is shown its own fresh head */
		ext = translog_extension(sh, l, l->dev[i].key, body + len, sizeof(body) - len);
		sp_deliver_device(sh, l->dev[i].key, &f, body, len + ext, SP_CLOSE_NONE,
				  publisher);
	}
}

/* Devices of old that new no longer names, after the list is stored (their
 * mailboxes went before it): connections ended with GoAway REMOVED. */
static void close_removed(struct sp_shard *sh, const uint8_t (*removed)[SP_KEY_LEN], size_t n)
{
	struct sp_frame none = { .type = SP_FRAME_GOAWAY };

	for (size_t i = 0; i < n; i++)
		sp_deliver_device(sh, removed[i], &none, NULL, 0, SP_CLOSE_REMOVED, NULL);
}

/* a minus b, as keys, into out (at most SP_DEVLIST_DEVICES_MAX). */
static size_t minus(const struct sp_devlist *a, const struct sp_devlist *b,
		    uint8_t (*out)[SP_KEY_LEN])
{
	size_t n = 0;

	for (uint32_t i = 0; a && i < a->count; i++)
		if (!b || sp_devlist_find(b, a->dev[i].key) < 0)
			memcpy(out[n++], a->dev[i].key, SP_KEY_LEN);
	return n;
}

/* Everything a list must pass before it is stored: ACCEPTED or the refusal. */
static enum sp_status check_put(struct sp_shard *sh, const struct sp_conn *c,
				const struct sp_frame *f, struct sp_devlist *nl,
				struct sp_devlist *ol, bool *has_old, uint8_t *obuf)
{
	size_t olen = 0;
	int r;

	*has_old = false;
	if (!f->u.list.account_ok)
		return SP_STATUS_ERR_LIST_ACCOUNT;
	if (f->body_len > SP_DEVLIST_MAX)
		return SP_STATUS_ERR_LIST_TOO_LARGE;
	r = sp_devlist_decode(f->body, f->body_len, nl);
	if (r < 0)
		return sp_account_status_of(r);
	if (memcmp(nl->account, f->u.list.account, SP_ACCOUNT_LEN) != 0)
		return SP_STATUS_ERR_LIST_ACCOUNT;
	if (nl->count > sh->cfg->account_max_devices)
		return SP_STATUS_ERR_LIST_TOO_LARGE;
	r = sp_devlist_verify(f->body, f->body_len, nl);
	if (r < 0)
		return sp_account_status_of(r);
	if (!sp_shard_store(sh))
		return SP_STATUS_ERR_INTERNAL;
	r = stored(sh, nl->account, obuf, &olen, ol);
	if (r < 0)
		return SP_STATUS_ERR_INTERNAL;
	*has_old = r == 1;
	if (*has_old && nl->version <= ol->version)
		return SP_STATUS_ERR_LIST_VERSION;
	/* Only a device of the account publishes for it: one on the stored
	 * list, or, for the first list, one on that list. Not a security
	 * boundary (the signature is), but the broker is no one's free
	 * publishing service for accounts it has never seen a device of. */
	if (sp_devlist_find(*has_old ? ol : nl, c->s.peer) < 0)
		return SP_STATUS_ERR_LIST_NOT_MEMBER;
	return SP_STATUS_ACCEPTED;
}

/* The list of f stored (its removed devices' mailboxes went first),
 * answered, the removed devices' connections ended, the others told. */
static enum sp_close_reason put_store(struct sp_shard *sh, struct sp_conn *c,
				      const struct sp_frame *f, const struct sp_devlist *nl,
				      const struct sp_devlist *ol, bool has_old,
				      const uint8_t (*added)[SP_KEY_LEN], size_t nadded,
				      const uint8_t (*removed)[SP_KEY_LEN], size_t nremoved)
{
	enum sp_close_reason why;
	int r;

	/* The removed devices' mailboxes first, committed: a list on disk that
	 * removes a device never outlives (a crash) that device's mail, which
	 * it could otherwise still read by connecting with its key. A purge
	 * that fails leaves the list unwritten: the publisher retries. (In
	 * cluster mode the mailboxes are in JetStream, purged before this.) */
	if (nremoved && !sh->cluster && sp_mailbox_purge_now(sh, removed, nremoved) < 0) {
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "removed devices' mailboxes not purged: device list not stored",
			       SP_KV_STR("detail", sp_store_errmsg(sp_shard_store(sh))));
		return reply(sh, c, f, SP_STATUS_ERR_INTERNAL, ol->version, NULL, 0, 0);
	}
	r = sp_store_list_put(sp_shard_store(sh), nl->account, f->body, f->body_len, added, nadded,
			      removed, nremoved);
	if (r < 0) {
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "device list not stored", SP_KV_STR("error", strerror(-r)),
			       SP_KV_STR("detail", sp_store_errmsg(sp_shard_store(sh))));
		return reply(sh, c, f, SP_STATUS_ERR_INTERNAL, has_old ? ol->version : 0, NULL, 0, 0);
	}
	/* the publisher gets its list's proof (list_len 0: it has the list) */
	{
		uint8_t ext[SP_LOG_TRAILER_MAX];
		size_t n = translog_extension(sh, nl, c->s.peer, ext, sizeof(ext));

		why = reply(sh, c, f, SP_STATUS_ACCEPTED, nl->version, ext, 0, n);
	}
	close_removed(sh, removed, nremoved);
	notify(sh, c, nl, f->body, f->body_len);
	return why;
}

/* ---- cluster mode: the removed devices' JetStream mailboxes first ---------------- */

/*
 * A ListPut that removes devices waits for JetStream to purge their
 * mailboxes (one STREAM.PURGE each, answered once a quorum of the stream's
 * replicas applied it), then is checked again and stored: the same rule as
 * a single node's (no stored list outlives a removed device's mail). A
 * purge refused or unanswered within --cluster-request-timeout leaves the
 * list unstored: ListResult ERR_CLUSTER_UNAVAILABLE (81), retryable. One
 * wait per connection: another ListPut meanwhile is answered 81 too.
 */
enum { PUT_ROUNDS_MAX = 3 };    /* the stored list changed meanwhile: purge again */

struct put_wait {
	struct sp_list node;            /* in sh->account_waits, oldest first */
	uint64_t id;
	uint32_t slot, gen;
	uint64_t deadline_ns;
	uint64_t answered;              /* bit n-1: purge n answered */
	uint32_t outstanding;
	uint32_t rounds;
	bool failed;
	bool account_ok;
	uint8_t account[SP_ACCOUNT_LEN];
	uint64_t client_id;
	size_t npurged;
	uint8_t purged[SP_DEVLIST_DEVICES_MAX][SP_KEY_LEN];
	size_t len;
	uint8_t body[SP_DEVLIST_MAX];
};

_Static_assert(SP_DEVLIST_DEVICES_MAX <= 64, "one answered bit per purge");

static struct put_wait *wait_of(struct sp_list *n)
{
	return (struct put_wait *)((char *)n - offsetof(struct put_wait, node));
}

void sp_account_init(struct sp_shard *sh)
{
	sp_list_init(&sh->account_waits);
	sh->account_wait_next = 0;
}

static void wait_free(struct put_wait *w)
{
	sp_list_del(&w->node);
	sodium_memzero(w->purged, sizeof(w->purged));   /* device keys: metadata */
	free(w);
}

void sp_account_destroy(struct sp_shard *sh)
{
	if (!sh->account_waits.next)
		return;
	while (!sp_list_empty(&sh->account_waits))
		wait_free(wait_of(sh->account_waits.next));
}

static enum sp_close_reason wait_purges(struct sp_shard *sh, struct sp_conn *c,
					const struct sp_frame *f, const struct sp_devlist *ol,
					const uint8_t (*removed)[SP_KEY_LEN], size_t nremoved,
					uint32_t rounds)
{
	struct put_wait *w;

	for (struct sp_list *n = sh->account_waits.next; n != &sh->account_waits; n = n->next)
		if (wait_of(n)->slot == c->tab.slot && wait_of(n)->gen == c->tab.gen)
			return reply(sh, c, f, SP_STATUS_ERR_CLUSTER_UNAVAILABLE, ol->version, NULL,
				     0, 0);
	w = calloc(1, sizeof(*w));
	if (!w)
		return SP_CLOSE_NOMEM;
	w->id = ++sh->account_wait_next;
	w->slot = c->tab.slot;
	w->gen = c->tab.gen;
	w->deadline_ns = sh->now_ns + (uint64_t)sh->cfg->cluster_request_timeout_ms * 1000000;
	w->rounds = rounds;
	w->account_ok = f->u.list.account_ok;
	memcpy(w->account, f->u.list.account, SP_ACCOUNT_LEN);
	w->client_id = f->u.list.client_id;
	w->len = f->body_len;
	memcpy(w->body, f->body, f->body_len);
	w->npurged = nremoved;
	memcpy(w->purged, removed, nremoved * SP_KEY_LEN);
	sp_list_add_tail(&sh->account_waits, &w->node);
	for (size_t i = 0; i < nremoved; i++) {
		if (sp_cluster_mbox_purge(sh, removed[i], w->id, i + 1)) {
			/* Not asked (NATS down): the answers of the others find
			 * no wait. */
			wait_free(w);
			return reply(sh, c, f, SP_STATUS_ERR_CLUSTER_UNAVAILABLE, ol->version, NULL,
				     0, 0);
		}
		w->outstanding++;
	}
	return SP_CLOSE_NONE;
}

static bool purged_all(const struct put_wait *w, const uint8_t (*removed)[SP_KEY_LEN], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;

		while (k < w->npurged && memcmp(w->purged[k], removed[i], SP_KEY_LEN) != 0)
			k++;
		if (k == w->npurged)
			return false;
	}
	return true;
}

/* Every purge of w answered (or its time is up): the put goes on, checked
 * again (the stored list may have changed meanwhile), or is refused. */
static void wait_done(struct sp_shard *sh, struct put_wait *w)
{
	struct sp_conn *c = sp_conn_at(sh, w->slot, w->gen);
	uint8_t added[SP_DEVLIST_DEVICES_MAX][SP_KEY_LEN];
	uint8_t removed[SP_DEVLIST_DEVICES_MAX][SP_KEY_LEN];
	uint8_t obuf[SP_DEVLIST_MAX];
	struct sp_devlist nl, ol;
	enum sp_close_reason why;
	struct sp_frame f;
	size_t nadded, nremoved;
	enum sp_status st;
	bool has_old;

	sp_list_del(&w->node);
	sp_list_init(&w->node);
	if (!c || c->s.state != SP_SESSION_ESTABLISHED || c->life.close_reason) {
		wait_free(w);           /* its publisher went: nothing to answer */
		return;
	}
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_LIST_PUT;
	f.u.list.account_ok = w->account_ok;
	memcpy(f.u.list.account, w->account, SP_ACCOUNT_LEN);
	f.u.list.client_id = w->client_id;
	f.body = w->body;
	f.body_len = w->len;
	memset(&ol, 0, sizeof(ol));
	st = w->failed ? SP_STATUS_ERR_CLUSTER_UNAVAILABLE
		       : check_put(sh, c, &f, &nl, &ol, &has_old, obuf);
	if (w->failed)
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_WARN,
			       "removed devices' mailboxes not purged in JetStream: device list not stored");
	if (st != SP_STATUS_ACCEPTED) {
		why = reply(sh, c, &f, st, has_old ? ol.version : 0, NULL, 0, 0);
	} else {
		nadded = minus(&nl, has_old ? &ol : NULL, added);
		nremoved = has_old ? minus(&ol, &nl, removed) : 0;
		if (purged_all(w, (const uint8_t (*)[SP_KEY_LEN])removed, nremoved))
			why = put_store(sh, c, &f, &nl, &ol, has_old,
					(const uint8_t (*)[SP_KEY_LEN])added, nadded,
					(const uint8_t (*)[SP_KEY_LEN])removed, nremoved);
		else if (w->rounds + 1 < PUT_ROUNDS_MAX)
			why = wait_purges(sh, c, &f, &ol, (const uint8_t (*)[SP_KEY_LEN])removed,
					  nremoved, w->rounds + 1);
		else
			why = reply(sh, c, &f, SP_STATUS_ERR_CLUSTER_UNAVAILABLE, ol.version, NULL, 0,
				    0);
	}
	sodium_memzero(removed, sizeof(removed));
	sodium_memzero(added, sizeof(added));
	wait_free(w);
	if (why)
		sp_life_end_later(sh, c, why);
}

void sp_account_purged(struct sp_shard *sh, uint64_t id, uint64_t n, bool ok)
{
	for (struct sp_list *l = sh->account_waits.next; l != &sh->account_waits; l = l->next) {
		struct put_wait *w = wait_of(l);

		if (w->id != id)
			continue;
		if (n == 0 || n > w->npurged || (w->answered & (UINT64_C(1) << (n - 1))))
			return;         /* not one of its purges, or answered already */
		w->answered |= UINT64_C(1) << (n - 1);
		w->failed |= !ok;
		if (--w->outstanding == 0)
			wait_done(sh, w);
		return;
	}
	/* None: it timed out, or its publisher went. */
}

void sp_account_tick(struct sp_shard *sh)
{
	/* Oldest first, one timeout for all: the first not due ends the pass. */
	while (!sp_list_empty(&sh->account_waits)) {
		struct put_wait *w = wait_of(sh->account_waits.next);

		if (w->deadline_ns > sh->now_ns)
			return;
		w->failed = true;
		wait_done(sh, w);
	}
}

enum sp_close_reason sp_account_put(struct sp_shard *sh, struct sp_conn *c,
				    const struct sp_frame *f)
{
	struct sp_devlist nl, ol;
	uint8_t obuf[SP_DEVLIST_MAX];
	uint8_t added[SP_DEVLIST_DEVICES_MAX][SP_KEY_LEN];
	uint8_t removed[SP_DEVLIST_DEVICES_MAX][SP_KEY_LEN];
	size_t nadded, nremoved;
	bool has_old;
	enum sp_status st;

	st = check_put(sh, c, f, &nl, &ol, &has_old, obuf);
	if (st != SP_STATUS_ACCEPTED)
		return reply(sh, c, f, st, has_old ? ol.version : 0, NULL, 0, 0);
	nadded = minus(&nl, has_old ? &ol : NULL, added);
	nremoved = has_old ? minus(&ol, &nl, removed) : 0;
	if (nremoved && sh->cluster)
		return wait_purges(sh, c, f, &ol, (const uint8_t (*)[SP_KEY_LEN])removed, nremoved,
				   0);
	return put_store(sh, c, f, &nl, &ol, has_old, (const uint8_t (*)[SP_KEY_LEN])added, nadded,
			 (const uint8_t (*)[SP_KEY_LEN])removed, nremoved);
}

/* ---- ListFetch -------------------------------------------------------------- */

enum sp_close_reason sp_account_fetch(struct sp_shard *sh, struct sp_conn *c,
				      const struct sp_frame *f)
{
	struct sp_devlist l;
	uint8_t body[SP_DEVLIST_MAX + SP_ACCOUNT_EXT_MAX];
	size_t len = 0, ext;
	int r;

	if (!f->u.list.account_ok)
		return reply(sh, c, f, SP_STATUS_ERR_LIST_ACCOUNT, 0, NULL, 0, 0);
	if (!sp_shard_store(sh))
		return reply(sh, c, f, SP_STATUS_ERR_INTERNAL, 0, NULL, 0, 0);
	r = stored(sh, f->u.list.account, body, &len, &l);
	if (r < 0)
		return reply(sh, c, f, SP_STATUS_ERR_INTERNAL, 0, NULL, 0, 0);
	if (r == 0)
		return reply(sh, c, f, SP_STATUS_ERR_LIST_UNKNOWN, 0, NULL, 0, 0);
	ext = translog_extension(sh, &l, c->s.peer, body + len, sizeof(body) - len);
	return reply(sh, c, f, SP_STATUS_ACCEPTED, l.version, body, len, len + ext);
}
