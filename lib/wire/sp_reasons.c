/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_reasons.c: the lookups of sp_reasons.h, from sp_reasons.def.
 */
#include "sp_reasons.h"

const char *sp_close_reason_name(enum sp_close_reason r)
{
	switch (r) {
	case SP_CLOSE_NONE: return "none";
#define SP_CLOSE(id, label, level, message, goaway) case SP_CLOSE_##id: return label;
#include "sp_reasons.def"
	case SP_CLOSE_REASON_COUNT: break;
	}
	return "unknown";
}

enum sp_status sp_close_reason_goaway(enum sp_close_reason r)
{
	switch (r) {
#define SP_CLOSE(id, label, level, message, goaway) \
	case SP_CLOSE_##id: return SP_STATUS_##goaway;
#include "sp_reasons.def"
	default: return SP_STATUS_UNSPECIFIED;
	}
}
