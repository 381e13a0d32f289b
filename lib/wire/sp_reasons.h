/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_reasons.h: enum sp_close_reason and its names, generated from
 * sp_reasons.def (the one table; enum sp_status comes from it too, in
 * sp_limits.h).
 */
#ifndef SP_REASONS_H
#define SP_REASONS_H

#include "sp_limits.h"

/* Why a connection ends; also the `reason` value in log lines. */
enum sp_close_reason {
	SP_CLOSE_NONE = 0,
#define SP_CLOSE(id, label, level, message, goaway) SP_CLOSE_##id,
#include "sp_reasons.def"
	SP_CLOSE_REASON_COUNT,
};

/* The log's reason= value and the metric label; "none" for SP_CLOSE_NONE,
 * "unknown" out of range. Static strings. */
const char *sp_close_reason_name(enum sp_close_reason r);

/* The GoAway status sent before closing for r, or SP_STATUS_UNSPECIFIED
 * (the connection is reset without one). */
enum sp_status sp_close_reason_goaway(enum sp_close_reason r);

#endif
