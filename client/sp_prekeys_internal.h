/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_prekeys_internal.h: what sp_client.c needs of the prekey store
 * (client/sp_prekeys.c). Not installed.
 */
#ifndef SP_PREKEYS_INTERNAL_H
#define SP_PREKEYS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sealpost.h"

/*
 * The next upload of pk: count fresh one-time prekeys, a rotated signed
 * prekey when due at now_s, the store saved with them (on failure nothing
 * changes, in memory or on disk), then the upload body (PROTOCOL.md 16.1)
 * with every record signed by dev (borrowed; must be the store's device:
 * -EINVAL). body: caller-owned, cap bytes. 0, -EMSGSIZE, -EIO, -ENOMEM.
 */
int sp_prekeys_prepare(struct sealpost_prekeys *pk, const struct sealpost_key *dev, unsigned count,
		       uint64_t now_s, uint8_t *body, size_t cap, size_t *len);

#endif
