/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_conn.c: a broker connection's start; everything protocol is the
 * session's (lib/session).
 */
#include "sp_conn.h"

#include <string.h>

void sp_conn_open(struct sp_conn *c, int fd, uint32_t slot, const struct sp_session_env *env)
{
	uint32_t gen = c->gen;  /* survives slot reuse: that is the point of it */

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->slot = slot;
	c->gen = gen;
	sp_session_accept(&c->s, env);
}
