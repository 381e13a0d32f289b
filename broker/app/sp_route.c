/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_route.c: device public key -> connection handle, on sp_keytab.
 *
 * A struct sp_route is an sp_keytab under another name: the pointer is
 * converted, never dereferenced as a struct sp_route, so a lookup costs no
 * extra indirection on the routing hot path. The table's design and measured
 * costs are in lib/util/sp_keytab.c.
 *
 * Threading: none; one table per shard thread.
 */
#include "sp_route.h"

#include "sp_keytab.h"

_Static_assert((int)SP_KEYTAB_KEY_LEN == (int)SP_KEY_LEN, "routing keys are device keys");

static struct sp_keytab *tab(struct sp_route *rt)
{
	return (struct sp_keytab *)rt;
}

static const struct sp_keytab *ctab(const struct sp_route *rt)
{
	return (const struct sp_keytab *)rt;
}

int sp_route_create(struct sp_route **out, size_t capacity_hint)
{
	struct sp_keytab *t;
	int ret;

	*out = NULL;
	ret = sp_keytab_create(&t, capacity_hint);
	if (ret < 0)
		return ret;
	*out = (struct sp_route *)t;
	return 0;
}

void sp_route_destroy(struct sp_route *rt)
{
	sp_keytab_destroy(tab(rt));
}

int sp_route_insert(struct sp_route *rt, const uint8_t key[SP_KEY_LEN], uint64_t value,
		    uint64_t *old_value)
{
	return sp_keytab_insert(tab(rt), key, value, old_value);
}

int sp_route_remove(struct sp_route *rt, const uint8_t key[SP_KEY_LEN], uint64_t expected)
{
	return sp_keytab_remove(tab(rt), key, expected);
}

size_t sp_route_count(const struct sp_route *rt)
{
	return sp_keytab_count(ctab(rt));
}

size_t sp_route_bytes(const struct sp_route *rt)
{
	return sp_keytab_bytes(ctab(rt));
}
