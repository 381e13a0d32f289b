/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_clog.h: the client's side of the broker's transparency log
 * (docs/PROTOCOL.md 11.7, docs/CLIENT.md "Transparency log"): the pinned
 * log key, the newest head this device verified, and the decisions about
 * heads it is shown (by the broker with a list, by a peer inside an
 * envelope). No I/O: sp_client.c sends the LogFetch a decision asks for
 * and hands back the reply. The state is mirrored in the account store,
 * when one is attached, so a restart remembers what the device saw.
 *
 * Errors: 0, -SEALPOST_ELOGKEY (no key, or another one), -SEALPOST_ELOGPROOF,
 * -SEALPOST_ESPLITVIEW, -EBADMSG (a malformed LogReply body).
 */
#ifndef SP_CLOG_H
#define SP_CLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sealpost.h"
#include "sp_sth.h"

struct sp_clog {
	struct sealpost_account_store *st;      /* borrowed, may be NULL */
	bool key_ok, head_ok;
	uint8_t key[SP_LOG_KEY_LEN];
	struct sp_sth head;                     /* verified under key */
};

/* Loads what st keeps (st NULL: forgets nothing, keeps memory only). */
void sp_clog_attach(struct sp_clog *l, struct sealpost_account_store *st);

/* The key a LogReply names (borrowed): pinned if none is, else it must be
 * the pinned one. 0 or -SEALPOST_ELOGKEY. */
int sp_clog_learn_key(struct sp_clog *l, const uint8_t key[SP_LOG_KEY_LEN]);

/*
 * A served list's trailer (tr, tlen bytes, borrowed) against its list
 * (borrowed): decoded into *seen, its head verified under the pinned key,
 * the list's inclusion under that head. 0, -SEALPOST_ELOGKEY (no key
 * pinned yet), -SEALPOST_ELOGPROOF.
 */
int sp_clog_check_list(const struct sp_clog *l, const uint8_t *list, size_t n, const uint8_t *tr,
		       size_t tlen, struct sp_sth *seen);

/*
 * A head verified under the pinned key, against the kept one: 0 the same,
 * or adopted (none was kept); 1 a consistency proof between sizes *m < *n
 * is needed (then sp_clog_prove); -SEALPOST_ESPLITVIEW same size, other root.
 */
int sp_clog_judge(struct sp_clog *l, const struct sp_sth *seen, uint64_t *m, uint64_t *n);

/*
 * The proof between heads a (kept when it was asked for) and b (seen),
 * both verified: sizes in either order. Consistent: the larger becomes the
 * kept head if the kept one is still a (or smaller), 0. Otherwise
 * -SEALPOST_ESPLITVIEW.
 */
int sp_clog_prove(struct sp_clog *l, const struct sp_sth *a, const struct sp_sth *b,
		  const struct sp_consistency *con);

/* A LogReply body (borrowed): leaf (leaf_len bytes) | sth | consistency. */
int sp_clog_reply_parse(const uint8_t *body, size_t len, size_t leaf_len, struct sp_sth *sth,
			struct sp_consistency *con);

/* The SPLIT_VIEW event's data: enc(a) || enc(b). */
void sp_clog_split_data(const struct sp_sth *a, const struct sp_sth *b,
			uint8_t out[2 * SP_STH_LEN]);

#endif
