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

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_conn_table.h"
#include "sp_route.h"
#include "sp_shard_types.h"

/*
 * The reply, the recipient lookup and the live count run once or twice per
 * envelope: inline, so that the split into files costs the hot path no
 * calls (callgrind on the hot-path benchmark, docs/BENCHMARKS.md).
 */

/* f (and nothing else) into c's open outbound message; c is marked.
 * Returns NONE, or NOMEM / INTERNAL if it could not be written. */
static inline enum sp_close_reason sp_deliver_reply(struct sp_shard *sh, struct sp_conn *c,
						    const struct sp_frame *f)
{
	int ret = sp_session_tx_frame(&c->s, f, NULL, 0);

	sp_conn_mark(sh, c);
	if (ret == -ENOMEM)
		return SP_CLOSE_NOMEM;
	return ret ? SP_CLOSE_INTERNAL : SP_CLOSE_NONE;
}

/* The recipient's live connection on this shard, or NULL (offline). */
static inline struct sp_conn *sp_deliver_recipient(struct sp_shard *sh,
						   const uint8_t key[SP_KEY_LEN])
{
	struct sp_conn *rc;
	uint64_t h;

	if (sp_route_lookup(sh->routes, key, &h))
		return NULL;
	rc = sp_conn_at_handle(sh, h);
	return rc && rc->s.state == SP_SESSION_ESTABLISHED ? rc : NULL;
}

/*
 * f (with body, borrowed for the call; f->body is ignored) into the live
 * connection of device `key` wherever it runs: here, or through its home
 * shard's inbox (SP_XS_FRAME). end != NONE: that connection ends with end
 * instead (after its results). Nothing if it is offline, or is `except`.
 */
void sp_deliver_device(struct sp_shard *sh, const uint8_t key[SP_KEY_LEN],
		       const struct sp_frame *f, const uint8_t *body, size_t body_len,
		       enum sp_close_reason end, const struct sp_conn *except);

/* The SP_XS_FRAME message m, on the device's home shard. */
void sp_deliver_remote(struct sp_shard *sh, const struct sp_inbox_msg *m);

/*
 * Deliver{seq} + body into rc's open outbound message, encrypted straight
 * from body (borrowed for the call: the receive buffer, or the store's read
 * buffer). On an error other than -ENOMEM rc's stream may be half-written:
 * rc ends.
 */
int sp_deliver_frame(struct sp_shard *sh, struct sp_conn *rc, uint64_t seq, const uint8_t *body,
		     size_t body_len);

/* A live delivery was written (counted and timed at the flush,
 * sp_shard_iteration_metrics). */
static inline void sp_deliver_count_live(struct sp_shard *sh)
{
	sh->live_delivered++;
}

/* An online-only envelope (never stored): Deliver.seq 0. DELIVERED, or
 * ERR_RECIPIENT_BUSY (queue over --sendq-max) / ERR_INTERNAL. */
static inline enum sp_status sp_deliver_online(struct sp_shard *sh, struct sp_conn *rc,
					       const struct sp_frame *send)
{
	if (sp_session_tx_queued(&rc->s) > sh->cfg->sendq_max)
		return SP_STATUS_ERR_RECIPIENT_BUSY;
	if (sp_deliver_frame(sh, rc, 0, send->body, send->body_len))
		return SP_STATUS_ERR_INTERNAL;
	sp_deliver_count_live(sh);
	return SP_STATUS_DELIVERED;
}

#endif
