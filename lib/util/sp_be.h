/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_be.h: big-endian (network order) loads and stores at any alignment.
 * Wire length prefixes and on-disk keys are big-endian so that they sort
 * and read the same everywhere.
 *
 * Layering: util (no dependencies). p points to at least 2, 4 or 8 bytes,
 * borrowed for the call.
 */
#ifndef SP_BE_H
#define SP_BE_H

#include <stdint.h>

static inline void sp_be_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline uint16_t sp_be_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void sp_be_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static inline uint32_t sp_be_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void sp_be_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint64_t sp_be_get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

#endif
