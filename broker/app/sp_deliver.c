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

static void device_here(struct sp_shard *sh, const uint8_t key[SP_KEY_LEN],
			const struct sp_frame *f, const uint8_t *body, size_t body_len,
			enum sp_close_reason end, const struct sp_conn *except)
{
	struct sp_conn *rc = sp_deliver_recipient(sh, key);

	if (!rc || rc == except)
		return;
	if (end) {
		sp_life_end_later(sh, rc, end);
		return;
	}
	if (sp_session_tx_frame(&rc->s, f, body, body_len))
		sp_life_end_later(sh, rc, SP_CLOSE_INTERNAL);
	sp_conn_mark(sh, rc);
}

void sp_deliver_device(struct sp_shard *sh, const uint8_t key[SP_KEY_LEN],
		       const struct sp_frame *f, const uint8_t *body, size_t body_len,
		       enum sp_close_reason end, const struct sp_conn *except)
{
	struct sp_inbox_msg *m;

	if (sp_shard_home(sh, key) == sh->id) {
		device_here(sh, key, f, body, body_len, end, except);
		return;
	}
	/* except is this shard's: a device homed elsewhere is not it. */
	m = sp_inbox_msg_new(SP_XS_FRAME, sizeof(*f) + body_len);
	if (!m)
		return;         /* as if it had gone offline a moment earlier */
	memcpy(m->device, key, SP_KEY_LEN);
	memcpy(m->data, f, sizeof(*f));
	if (body_len)
		memcpy(m->data + sizeof(*f), body, body_len);
	m->arg[0] = (uint64_t)end;
	sp_shard_post(sh, sp_node_home(sh->node, key), m);
}

void sp_deliver_remote(struct sp_shard *sh, const struct sp_inbox_msg *m)
{
	struct sp_frame f;

	if (m->len < sizeof(f))
		return;
	memcpy(&f, m->data, sizeof(f));
	f.body = NULL;
	f.body_len = 0;
	device_here(sh, m->device, &f, m->data + sizeof(f), m->len - sizeof(f),
		    (enum sp_close_reason)m->arg[0], NULL);
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

