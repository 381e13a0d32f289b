/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_clog.c: the client's view of the transparency log (sp_clog.h).
 */
#include "sp_clog.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "sp_acct_internal.h"
#include "sp_merkle.h"

void sp_clog_attach(struct sp_clog *l, struct sealpost_account_store *st)
{
	struct sp_sth h;
	uint8_t key[SP_LOG_KEY_LEN];
	bool head_ok = false;

	l->st = st;
	if (sp_acct_log_get(st, key, &h, &head_ok) < 0)
		return;
	/* The store's memory wins: it outlives this client. */
	memcpy(l->key, key, sizeof(key));
	l->key_ok = true;
	l->head_ok = head_ok;
	if (head_ok)
		l->head = h;
}

/* Keeps the state in the store; a failed write keeps it in memory only
 * (the checks stand; the next write tries again). */
static void keep(struct sp_clog *l)
{
	(void)sp_acct_log_put(l->st, l->key, l->head_ok ? &l->head : NULL);
}

int sp_clog_learn_key(struct sp_clog *l, const uint8_t key[SP_LOG_KEY_LEN])
{
	if (l->key_ok)
		return sodium_memcmp(l->key, key, SP_LOG_KEY_LEN) == 0 ? 0 : -SEALPOST_ELOGKEY;
	memcpy(l->key, key, SP_LOG_KEY_LEN);
	l->key_ok = true;
	keep(l);
	return 0;
}

int sp_clog_check_list(const struct sp_clog *l, const uint8_t *list, size_t n, const uint8_t *tr,
		       size_t tlen, struct sp_sth *seen)
{
	struct sp_inclusion inc;

	if (!l->key_ok)
		return -SEALPOST_ELOGKEY;
	if (sp_log_trailer_decode(tr, tlen, seen, &inc) < 0)
		return -SEALPOST_ELOGPROOF;
	if (sp_log_check_leaf(l->key, seen, &inc, list, n) < 0)
		return -SEALPOST_ELOGPROOF;
	return 0;
}

int sp_clog_judge(struct sp_clog *l, const struct sp_sth *seen, uint64_t *m, uint64_t *n)
{
	if (!l->head_ok) {
		l->head = *seen;
		l->head_ok = true;
		keep(l);
		return 0;
	}
	switch (sp_sth_compare(&l->head, seen, m, n)) {
	case SP_STH_SAME:
		return 0;
	case SP_STH_NEED_PROOF:
		return 1;
	case SP_STH_SPLIT:
	default:
		return -SEALPOST_ESPLITVIEW;
	}
}

int sp_clog_prove(struct sp_clog *l, const struct sp_sth *a, const struct sp_sth *b,
		  const struct sp_consistency *con)
{
	const struct sp_sth *lo = a->tree_size <= b->tree_size ? a : b;
	const struct sp_sth *hi = lo == a ? b : a;

	if (con->first != lo->tree_size || con->second != hi->tree_size)
		return -SEALPOST_ESPLITVIEW;
	if (sp_merkle_consistency_verify(lo->tree_size, hi->tree_size, lo->root, hi->root,
					 con->path, con->count) < 0)
		return -SEALPOST_ESPLITVIEW;
	/* Only a head proven to extend the kept one replaces it. */
	if (l->head_ok && b->tree_size > a->tree_size && l->head.tree_size == a->tree_size &&
	    sodium_memcmp(l->head.root, a->root, SP_MERKLE_HASH_LEN) == 0) {
		l->head = *b;
		keep(l);
	}
	return 0;
}

int sp_clog_reply_parse(const uint8_t *body, size_t len, size_t leaf_len, struct sp_sth *sth,
			struct sp_consistency *con)
{
	if (leaf_len > len || len - leaf_len < SP_STH_LEN)
		return -EBADMSG;
	body += leaf_len;
	len -= leaf_len;
	if (sp_sth_decode(body, SP_STH_LEN, sth) < 0)
		return -EBADMSG;
	if (sp_consistency_decode(body + SP_STH_LEN, len - SP_STH_LEN, con) < 0)
		return -EBADMSG;
	return 0;
}

void sp_clog_split_data(const struct sp_sth *a, const struct sp_sth *b,
			uint8_t out[2 * SP_STH_LEN])
{
	sp_sth_encode(a, out);
	sp_sth_encode(b, out + SP_STH_LEN);
}
