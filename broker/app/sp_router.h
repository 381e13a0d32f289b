/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_router.h: the app layer's entry points. The session's hooks (a
 * connection established, proven, a frame) dispatch here; Sends go online
 * (sp_deliver) or into mailboxes (sp_mailbox), acks to the mailbox; a proven
 * connection becomes its device's route, taking over an older one.
 *
 * Writes, of a connection: routed.
 */
#ifndef SP_ROUTER_H
#define SP_ROUTER_H

#include "sp_shard_types.h"

/* The session hooks (ctx: the shard). */
enum sp_close_reason sp_router_established(void *ctx, struct sp_conn *c);
enum sp_close_reason sp_router_proven(void *ctx, struct sp_conn *c);
enum sp_close_reason sp_router_frame(void *ctx, struct sp_conn *c, const struct sp_frame *f);

/* c ends: it is no longer its device's route nor a mailbox reader. */
void sp_router_detach(struct sp_shard *sh, struct sp_conn *c);

#endif
