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

