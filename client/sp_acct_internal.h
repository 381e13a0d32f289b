/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_acct_internal.h: what sp_client.c needs of sp_account.c.
 */
#ifndef SP_ACCT_INTERNAL_H
#define SP_ACCT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sealpost.h"
#include "sp_devlist.h"

/* The codec's decoded list as the public struct. */
void sp_acct_to_public(const struct sp_devlist *in, struct sealpost_devlist *out);

/* Verifies bytes (borrowed) into *l and, with st, compares them with the
 * list kept (keeping them if newer): 0, -SEALPOST_EBADLIST,
 * -SEALPOST_EROLLBACK, -EIO, -ENOMEM. st NULL: verification only. */
int sp_acct_store_check(struct sealpost_account_store *st, const uint8_t *bytes, size_t len,
			struct sp_devlist *l);

#endif
