/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_fanout.h: fan-out groups (docs/PROTOCOL.md 16): one envelope to every
 * device of an account, stored all or none.
 *
 * A group is FanoutBegin{account, group_id, version, count} followed by
 * exactly count FanoutCopy frames of that group, nothing else in between.
 * The copies are copied out of the receive buffer (the group may span many
 * transport messages) and held on the heap, bounded per group by
 * --fanout-max-copies and --fanout-max-bytes, in all by --mem-budget
 * (counted in sh->mem.fanout_bytes), in time by --fanout-timeout. Once the
 * last copy is in, the set of recipients is checked against the account's
 * stored list (minus the sending device): a difference is answered with
 * the missing and stale keys and nothing is stored; else the sender's
 * budgets are charged for all copies and sp_mailbox_store_group writes
 * them in one batch of their own. Exactly one FanoutResult per group.
 *
 * The held bytes count against --mem-budget (sp_mem_used) and a copy that
 * would pass it is refused; they are not part of a connection's size in
 * the budget's eviction order, which --fanout-max-bytes keeps small
 * beside it.
 *
 * A group refused before its last copy (too large, cut short by another
 * frame, past its deadline) is answered at once; its remaining copies are
 * dropped silently until a frame that is not one of them arrives.
 *
 * Writes, of a connection: fan (the group pointer); sh->fanout_list,
 * sh->mem.fanout_bytes.
 * Errors: 0 or a negative errno.
 */
#ifndef SP_FANOUT_H
#define SP_FANOUT_H

#include "sp_shard_types.h"

void sp_fanout_init(struct sp_shard *sh);

/* FanoutBegin / FanoutCopy of c (f: borrowed for the call; a copy's body
 * is copied). NONE, or why c must end: a copy of no group (PROTOCOL),
 * out of memory for the answer (NOMEM). Refusals are FanoutResults. */
enum sp_close_reason sp_fanout_begin(struct sp_shard *sh, struct sp_conn *c,
				     const struct sp_frame *f);
enum sp_close_reason sp_fanout_copy(struct sp_shard *sh, struct sp_conn *c,
				    const struct sp_frame *f);

/* Any other frame of c while c->fan.g is set: an open group is cut short
 * (answered ERR_FANOUT_INCOMPLETE), a refused one forgotten. */
enum sp_close_reason sp_fanout_other(struct sp_shard *sh, struct sp_conn *c);

/* c ends: its group, open or refused, is freed without an answer. */
void sp_fanout_drop(struct sp_shard *sh, struct sp_conn *c);

/* From the tick: groups past --fanout-timeout are refused (INCOMPLETE). */
void sp_fanout_tick(struct sp_shard *sh);

#endif
