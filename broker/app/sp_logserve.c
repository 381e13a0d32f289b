/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_logserve.c: LogFetch -> LogReply (sp_logserve.h).
 */
#include "sp_logserve.h"

#include <errno.h>
#include <string.h>

#include "sp_conn_table.h"
#include "sp_lifecycle.h"
#include "sp_log.h"
#include "sp_sth.h"
#include "sp_tlog.h"

/* The largest body: a leaf (a list, at most a frame body itself, but the
 * reply must fit one frame with the head and proof after it). */
enum { LOGSERVE_BODY_MAX = SP_BODY_MAX };

enum sp_close_reason sp_logserve_fetch(struct sp_shard *sh, struct sp_conn *c,
				       const struct sp_frame *f)
{
	static uint8_t body[LOGSERVE_BODY_MAX]; /* one shard thread; filled and sent at once */
	struct sp_frame r;
	size_t leaf_len = 0, len = 0;
	int ret;

	memset(&r, 0, sizeof(r));
	r.type = SP_FRAME_LOG_REPLY;
	r.u.log.client_id = f->u.log.client_id;
	r.u.log.status = SP_STATUS_ACCEPTED;
	if (!sh->tlog || !sp_shard_store(sh)) {
		r.u.log.status = SP_STATUS_ERR_INTERNAL;
	} else {
		memcpy(r.u.log.log_key, sh->tlog->pk, sizeof(r.u.log.log_key));
		ret = sp_tlog_fetch(sh->tlog, sp_shard_store(sh), c->s.peer, sh->wall_ms, f->u.log.first,
				    f->u.log.second, f->u.log.leaf != 0,
				    f->u.log.leaf ? f->u.log.leaf - 1 : 0, body, sizeof(body),
				    &leaf_len, &len);
		if (ret == -EINVAL) {
			r.u.log.status = SP_STATUS_ERR_LOG_RANGE;
			len = 0;
		} else if (ret < 0) {
			SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_STORE], sh->now_ns, SP_LOG_ERROR,
				       "log fetch failed", SP_KV_STR("error", strerror(-ret)));
			r.u.log.status = SP_STATUS_ERR_INTERNAL;
			len = 0;
		} else {
			r.u.log.leaf_len = (uint32_t)leaf_len;
		}
	}
	ret = sp_session_tx_frame(&c->s, &r, len ? body : NULL, len);
	sp_conn_mark(sh, c);
	if (ret == -ENOMEM)
		return SP_CLOSE_NOMEM;
	return ret ? SP_CLOSE_INTERNAL : SP_CLOSE_NONE;
}
