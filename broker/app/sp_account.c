/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_account.c: ListPut, ListFetch, removal and ListChanged (sp_account.h).
 */
#include "sp_account.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "sp_deliver.h"
#include "sp_devlist.h"
#include "sp_lifecycle.h"
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
	enum sp_close_reason why;
	int r;

	st = check_put(sh, c, f, &nl, &ol, &has_old, obuf);
	if (st != SP_STATUS_ACCEPTED)
		return reply(sh, c, f, st, has_old ? ol.version : 0, NULL, 0, 0);
	nadded = minus(&nl, has_old ? &ol : NULL, added);
	nremoved = has_old ? minus(&ol, &nl, removed) : 0;
	/* The removed devices' mailboxes first, committed: a list on disk that
	 * removes a device never outlives (a crash) that device's mail, which
	 * it could otherwise still read by connecting with its key. A purge
	 * that fails leaves the list unwritten: the publisher retries. */
	if (nremoved && sp_mailbox_purge_now(sh, (const uint8_t (*)[SP_KEY_LEN])removed,
					     nremoved) < 0) {
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "removed devices' mailboxes not purged: device list not stored",
			       SP_KV_STR("detail", sp_store_errmsg(sp_shard_store(sh))));
		return reply(sh, c, f, SP_STATUS_ERR_INTERNAL, ol.version, NULL, 0, 0);
	}
	r = sp_store_list_put(sp_shard_store(sh), nl.account, f->body, f->body_len,
			      (const uint8_t (*)[SP_KEY_LEN])added, nadded,
			      (const uint8_t (*)[SP_KEY_LEN])removed, nremoved);
	if (r < 0) {
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
			       "device list not stored", SP_KV_STR("error", strerror(-r)),
			       SP_KV_STR("detail", sp_store_errmsg(sp_shard_store(sh))));
		return reply(sh, c, f, SP_STATUS_ERR_INTERNAL, has_old ? ol.version : 0, NULL, 0, 0);
	}
	/* the publisher gets its list's proof (list_len 0: it has the list) */
	{
		uint8_t ext[SP_LOG_TRAILER_MAX];
		size_t n = translog_extension(sh, &nl, c->s.peer, ext, sizeof(ext));

		why = reply(sh, c, f, SP_STATUS_ACCEPTED, nl.version, ext, 0, n);
	}
	close_removed(sh, (const uint8_t (*)[SP_KEY_LEN])removed, nremoved);
	notify(sh, c, &nl, f->body, f->body_len);
	return why;
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
