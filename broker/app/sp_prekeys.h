/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_prekeys.h: prekey bundles at the broker (PROTOCOL.md 17).
 *
 * PrekeyUpload (authenticated devices): decoded, bounded (prekey-upload-max,
 * prekey-stock-max), every XEdDSA signature checked against the
 * connection's own device key, stored in one synced write, answered by
 * PrekeyResult. PrekeyFetch (authenticated or anonymous): the fetch budgets
 * (prekey-fetch-source-*, prekey-fetch-device-*), then the device's signed
 * prekey and its lowest one-time prekey, deleted on disk before the
 * PrekeyBundle is written; PrekeyLow to the device's live connection when
 * its stock falls below prekey-low, and when it connects below it. The
 * broker holds no device secret: it can withhold a bundle or run a device
 * out of one-time prekeys, never sign one.
 *
 * Writes, of the shard: pk_src, pk_dev. Of a connection: nothing (replies
 * through sp_deliver).
 */
#ifndef SP_PREKEYS_H
#define SP_PREKEYS_H

#include "sp_shard_types.h"

/* The fetch budget tables: 0 or -ENOMEM. */
int sp_prekeys_init(struct sp_shard *sh);
void sp_prekeys_destroy(struct sp_shard *sh);

/* PrekeyUpload of c (authenticated; f borrowed): answered by PrekeyResult. */
enum sp_close_reason sp_prekeys_upload(struct sp_shard *sh, struct sp_conn *c,
				       const struct sp_frame *f);

/* PrekeyFetch of c (either kind of connection): answered by PrekeyBundle. */
enum sp_close_reason sp_prekeys_fetch(struct sp_shard *sh, struct sp_conn *c,
				      const struct sp_frame *f);

/* c, a device, was just routed: PrekeyLow if its stock is low. */
void sp_prekeys_connected(struct sp_shard *sh, struct sp_conn *c);

/* The PrekeyResult status for an sp_prekey_upload_decode / _verify error. */
enum sp_status sp_prekeys_status_of(int prekey_err);

#endif
