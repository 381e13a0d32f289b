/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_deliver.c: replies, Deliver frames, recipients (sp_deliver.h).
 */
#include "sp_deliver.h"

#include <errno.h>
#include <string.h>

#include "sp_conn_table.h"
#include "sp_lifecycle.h"
#include "sp_route.h"

enum sp_close_reason sp_deliver_reply(struct sp_shard *sh, struct sp_conn *c,
				      const struct sp_frame *f)
{
	int ret = sp_session_tx_frame(&c->s, f, NULL, 0);

	sp_conn_mark(sh, c);
	if (ret == -ENOMEM)
		return SP_CLOSE_NOMEM;
	return ret ? SP_CLOSE_INTERNAL : SP_CLOSE_NONE;
}

struct sp_conn *sp_deliver_recipient(struct sp_shard *sh, const uint8_t key[SP_KEY_LEN])
{
	struct sp_conn *rc;
	uint64_t h;

	if (sp_route_lookup(sh->routes, key, &h))
		return NULL;
	rc = sp_conn_at_handle(sh, h);
	return rc && rc->s.state == SP_SESSION_ESTABLISHED ? rc : NULL;
}

int sp_deliver_frame(struct sp_shard *sh, struct sp_conn *rc, uint64_t seq, const uint8_t *body,
		     size_t body_len)
{
	struct sp_frame d;
	int ret;

	memset(&d, 0, sizeof(d));
	d.type = SP_FRAME_DELIVER;
	d.u.deliver.seq = seq;
	ret = sp_session_tx_frame(&rc->s, &d, body, body_len);
	sp_conn_mark(sh, rc);
	if (ret && ret != -ENOMEM)
		sp_life_end_later(sh, rc, SP_CLOSE_INTERNAL);
	return ret;
}

void sp_deliver_count_live(struct sp_shard *sh)
{
	sh->stats.delivered++;
	sh->live_delivered++;   /* timed when this iteration's sends are submitted */
}

enum sp_status sp_deliver_online(struct sp_shard *sh, struct sp_conn *rc,
				 const struct sp_frame *send)
{
	if (sp_session_tx_queued(&rc->s) > sh->cfg->sendq_max)
		return SP_STATUS_ERR_RECIPIENT_BUSY;
	if (sp_deliver_frame(sh, rc, 0, send->body, send->body_len))
		return SP_STATUS_ERR_INTERNAL;
	sp_deliver_count_live(sh);
	return SP_STATUS_DELIVERED;
}
