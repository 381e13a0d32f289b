/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_deliver.h: frames into a connection's open outbound message: a reply,
 * a Deliver straight from a body buffer, and the recipient lookup that
 * decides whether a device is online on this shard.
 *
 * The app layer calls down only through these, sp_conn_mark and
 * sp_life_end_later: it never touches the ring or a connection's I/O flags.
 */
#ifndef SP_DELIVER_H
#define SP_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include "sp_shard_types.h"

/* f (and nothing else) into c's open outbound message; c is marked.
 * Returns NONE, or NOMEM / INTERNAL if it could not be written. */
enum sp_close_reason sp_deliver_reply(struct sp_shard *sh, struct sp_conn *c,
				      const struct sp_frame *f);

/* The recipient's live connection on this shard, or NULL (offline). */
struct sp_conn *sp_deliver_recipient(struct sp_shard *sh, const uint8_t key[SP_KEY_LEN]);

/*
 * Deliver{seq} + body into rc's open outbound message, encrypted straight
 * from body (borrowed for the call: the receive buffer, or the store's read
 * buffer). On an error other than -ENOMEM rc's stream may be half-written:
 * rc ends.
 */
int sp_deliver_frame(struct sp_shard *sh, struct sp_conn *rc, uint64_t seq, const uint8_t *body,
		     size_t body_len);

/* An online-only envelope (never stored): Deliver.seq 0. DELIVERED, or
 * ERR_RECIPIENT_BUSY (queue over --sendq-max) / ERR_INTERNAL. */
enum sp_status sp_deliver_online(struct sp_shard *sh, struct sp_conn *rc,
				 const struct sp_frame *send);

/* A live delivery was written (timed at the flush). */
void sp_deliver_count_live(struct sp_shard *sh);

#endif
