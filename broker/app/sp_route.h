/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_route.h: the routing table, device public key -> live connection handle.
 *
 * The table is util's sp_keytab (SipHash under a random per-table key, since
 * device keys are chosen by peers); this module gives it the routing names
 * and the one routing rule, remove-only-if-still-mine.
 *
 * The value is an opaque 64-bit handle (the broker packs shard, connection
 * slot and generation into it). Keys are copied into the table.
 *
 * Threading: one table per shard, used by that shard's thread only.
 * Errors: 0 or a negative errno.
 */
#ifndef SP_ROUTE_H
#define SP_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "sp_keytab.h"
#include "sp_limits.h"

struct sp_route;

/* capacity_hint: expected number of entries (the table sizes for it). */
int sp_route_create(struct sp_route **out, size_t capacity_hint);
void sp_route_destroy(struct sp_route *rt);

/*
 * Maps key to value. Returns 0 if the key was new, or 1 if it replaced an
 * existing entry, whose value is then stored in *old_value (may be NULL).
 * -ENOMEM if growing failed (the table is unchanged).
 */
int sp_route_insert(struct sp_route *rt, const uint8_t key[SP_KEY_LEN], uint64_t value,
		    uint64_t *old_value);

/* 0 and *value, or -ENOENT. Once per envelope: inline, straight into the
 * table (a struct sp_route is an sp_keytab, see sp_route.c). */
static inline int sp_route_lookup(const struct sp_route *rt, const uint8_t key[SP_KEY_LEN],
				  uint64_t *value)
{
	return sp_keytab_lookup((const struct sp_keytab *)rt, key, value);
}

/*
 * Removes key only if it currently maps to expected (so a closing connection
 * cannot remove the route of the connection that took over from it).
 * 0, -ENOENT (absent), or -ESTALE (present with another value; untouched).
 */
int sp_route_remove(struct sp_route *rt, const uint8_t key[SP_KEY_LEN], uint64_t expected);

size_t sp_route_count(const struct sp_route *rt);

/* Bytes of the table's slots (sp_keytab_bytes): a memory metric. */
size_t sp_route_bytes(const struct sp_route *rt);

#endif
