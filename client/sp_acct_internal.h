/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_acct_internal.h: what sp_client.c needs of sp_account.c.
 */
#ifndef SP_ACCT_INTERNAL_H
#define SP_ACCT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sealpost.h"
#include "sp_devlist.h"
#include "sp_sth.h"

/* The codec's decoded list as the public struct. */
void sp_acct_to_public(const struct sp_devlist *in, struct sealpost_devlist *out);

/* Verifies bytes (borrowed) into *l and, with st, compares them with the
 * list kept (keeping them if newer): 0, -SEALPOST_EBADLIST,
 * -SEALPOST_EROLLBACK, -EIO, -ENOMEM. st NULL: verification only. */
int sp_acct_store_check(struct sealpost_account_store *st, const uint8_t *bytes, size_t len,
			struct sp_devlist *l);

/* The log key pinned in st and its newest head (*head_ok false: none yet):
 * 0, or -ENOENT when st is NULL or knows no log. */
int sp_acct_log_get(struct sealpost_account_store *st, uint8_t key[SP_LOG_KEY_LEN],
		    struct sp_sth *head, bool *head_ok);
/* Keeps key and, if not NULL, head (already verified by the caller) in st
 * (NULL: nothing to do): 0 or -EIO (not kept). */
int sp_acct_log_put(struct sealpost_account_store *st, const uint8_t key[SP_LOG_KEY_LEN],
		    const struct sp_sth *head);

#endif
