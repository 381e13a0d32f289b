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
#include "sp_limits.h"

/*
 * The next upload of pk: count fresh one-time prekeys, a rotated signed
 * prekey when due at now_s, the store saved with them (on failure nothing
 * changes, in memory or on disk), then the upload body (PROTOCOL.md 17.1)
 * with every record signed by dev (borrowed; must be the store's device:
 * -EINVAL). body: caller-owned, cap bytes. 0, -EMSGSIZE, -EIO, -ENOMEM.
 */
int sp_prekeys_prepare(struct sealpost_prekeys *pk, const struct sealpost_key *dev, unsigned count,
		       uint64_t now_s, uint8_t *body, size_t cap, size_t *len);

/*
 * Opens a first-contact body (PROTOCOL.md 7.2) with dev's key and pk's
 * prekey secrets, then deletes the one-time secret it used (saved). The
 * sender's key into sender, the message into out (caller-owned, cap bytes).
 * -EBADMSG (malformed, unknown or already used prekey, does not open).
 * start (NULL: not wanted): what the session it begins needs (SK, EK_A,
 * the signed prekey secret, AD), filled on success; the caller wipes it.
 */
struct sp_fc_start;

/*
 * sealpost_prekey_seal with max_payload (the recipient broker's largest
 * payload) and, start non-NULL, what the session it begins needs (SK,
 * EK_A's secret, SPK_B, AD) on success; the caller wipes it.
 */
int sp_prekeys_seal_first(const struct sealpost_key *sender,
			  const struct sealpost_prekey_bundle *b, const uint8_t *msg, size_t len,
			  size_t max_payload, uint8_t *out, size_t cap, size_t *out_len,
			  struct sp_fc_start *start);
int sp_prekeys_open_first(struct sealpost_prekeys *pk, const struct sealpost_key *dev,
			  const uint8_t *body, size_t len, uint8_t sender[SP_KEY_LEN], uint8_t *out,
			  size_t cap, size_t *out_len, struct sp_fc_start *start);

#endif
