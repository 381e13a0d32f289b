/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_anon.h: sealed sender (PROTOCOL.md 14). SetAccess from an
 * authenticated device; AnonSend from an anonymous (NK) connection: checked
 * against the recipient's access settings (sp_store.h, "access keys") and
 * the anonymous budgets (anon-recipient-*, anon-source-*), then stored or
 * delivered like a Send, with no sender: the mailbox record is the same as
 * any other, and nothing of the connection is kept.
 *
 * Writes, of the shard: anon_rcpt, anon_src.
 */
#ifndef SP_ANON_H
#define SP_ANON_H

#include "sp_shard_types.h"

/* The two budget tables: 0 or -ENOMEM. */
int sp_anon_init(struct sp_shard *sh);
void sp_anon_destroy(struct sp_shard *sh);

/* SetAccess (authenticated connections only): answered by AccessResult. */
enum sp_close_reason sp_anon_set_access(struct sp_shard *sh, struct sp_conn *c,
					const struct sp_frame *f);

/* AnonSend (anonymous connections only): answered by a SendResult. */
enum sp_close_reason sp_anon_send(struct sp_shard *sh, struct sp_conn *c,
				  const struct sp_frame *f);

/* The access check alone (also the unit under test): the status an AnonSend
 * with this token (borrowed; len 0 = none) gets from settings a (NULL =
 * none stored): ACCEPTED, or ERR_ACCESS_MISSING / _WRONG / _ROTATED. Both
 * stored hashes are compared in constant time, whichever matches. */
struct sp_store_access;
enum sp_status sp_anon_check(const struct sp_store_access *a, const uint8_t *token, size_t len);

#endif
