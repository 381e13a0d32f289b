/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_logserve.h: LogFetch at the broker (docs/PROTOCOL.md 11.7): the answer
 * is a LogReply with the log key, and as its body the requested leaf (if
 * any), a fresh signed tree head and the consistency proof between the two
 * sizes asked for, as app/sp_tlog.c makes them for the asking device.
 *
 * Writes, of a connection: nothing (the reply through sp_session_tx_frame).
 */
#ifndef SP_LOGSERVE_H
#define SP_LOGSERVE_H

#include "sp_shard_types.h"

/* LogFetch of c (f borrowed). NONE, or why c must end (out of memory).
 * Refusals are LogReplies (ERR_LOG_RANGE, ERR_INTERNAL), never closes. */
enum sp_close_reason sp_logserve_fetch(struct sp_shard *sh, struct sp_conn *c,
				       const struct sp_frame *f);

#endif
