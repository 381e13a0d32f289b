/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_xshard.h: what crosses between shards (sp_node.h): a connection
 * handed to its device's home shard, and the consumer of a shard's inbox.
 *
 * The hand-off. Shard 0 accepts every connection and runs every handshake
 * up to the point where the session names its device key (IK message 1,
 * XX message 3). If the key's home is another shard, the session is paused
 * there (sp_session_pause: the rest of the input is kept, unread), its
 * multishot recv is cancelled, its message 2 (IK) is sent; once no request
 * of it is in flight, the socket, the session (sp_session_detach), its
 * transport keys (in sodium_malloc'd memory, wiped when adopted), the
 * source it is counted under and the unread input go in one SP_XS_MOVE
 * message. The home shard adopts it into a slot of its own: the keys into
 * its slab, the input fed to the session, a recv armed; from then on the
 * connection is the home shard's like one accepted there. Nothing of the
 * protocol changes: the client sees one TCP connection.
 *
 * Writes, of a connection: its move group (c->move).
 */
#ifndef SP_XSHARD_H
#define SP_XSHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_shard_types.h"

/* In the established hook: if c's device is homed on another shard, c
 * starts moving there (true: the caller does nothing else with it); or
 * it must end (*why, with false). */
bool sp_xshard_move_begin(struct sp_shard *sh, struct sp_conn *c, enum sp_close_reason *why);

/* Input that arrived for c while it is moving (data borrowed for the
 * call): kept for its home shard. SP_CLOSE_NONE or why c must end. */
enum sp_close_reason sp_xshard_move_input(struct sp_shard *sh, struct sp_conn *c,
					  const uint8_t *data, size_t len);

/* At the flush of a moving connection: its output sent and its recv
 * ended, it goes (its slot here is freed). */
void sp_xshard_move_flush(struct sp_shard *sh, struct sp_conn *c);

/* c ends while moving: what it kept for the move is freed. */
void sp_xshard_forget(struct sp_conn *c);

/* The inbox: its eventfd read armed (non-ring producers), a completion
 * of SP_OP_INBOX (slot 1: that read), and every message taken and acted
 * on (also at each tick, in case a wake-up was lost). */
void sp_xshard_arm(struct sp_shard *sh);
void sp_xshard_cqe(struct sp_shard *sh, uint32_t slot, int res);
void sp_xshard_take(struct sp_shard *sh);

/* Stop: what is still in the inbox is dropped (sockets closed, keys
 * wiped). */
void sp_xshard_destroy(struct sp_shard *sh);

#endif
