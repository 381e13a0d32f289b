/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_internal.h: what the libsealpost source files share and apps never see.
 */
#ifndef SP_CLIENT_INTERNAL_H
#define SP_CLIENT_INTERNAL_H

#include <stdint.h>

#include "sp_limits.h"

/* Lives in sodium_malloc'd memory (guard pages, never swapped), read-only
 * after creation so one key can be shared between threads. */
struct sealpost_key {
	uint8_t priv[SP_KEY_LEN];
	uint8_t pub[SP_KEY_LEN];
};

#endif
