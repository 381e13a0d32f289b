/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_source.h: per-source connection counts of a shard, so that one address
 * cannot take the whole connection table. A source is the peer's network:
 * an IPv4 address (/32) or an IPv6 /64 (one host usually holds a whole
 * /64, so counting single IPv6 addresses would limit nothing). IPv4-mapped
 * IPv6 addresses count as their IPv4 address.
 *
 * For each source: connections open (accepted, slot not yet released) and,
 * of those, unauthenticated ones (not yet proven: preamble, handshake, or an
 * IK connection whose message 1 may be a replay).
 *
 * Writes: the table sh->sources points to (made and freed by sp_shard.c);
 * of a connection: its source group c->source.
 * Errors: 0 or a negative errno.
 */
#ifndef SP_SOURCE_H
#define SP_SOURCE_H

#include <stdint.h>
#include <sys/socket.h>

#include "sp_shard_types.h"

/* What sp_source_admit decided. */
enum sp_source_verdict {
	SP_SOURCE_OK = 0,
	SP_SOURCE_TOO_MANY,             /* max-conns-per-source reached */
	SP_SOURCE_TOO_MANY_UNAUTH,      /* max-unauth-per-source reached */
};

/* The table: one entry per source with a connection; at most `cap`
 * (the connection table's size) entries are ever in use. */
struct sp_source_table;

/* Allocates a table for up to cap sources. */
int sp_source_table_new(struct sp_source_table **out, uint32_t cap);
void sp_source_table_free(struct sp_source_table *t);

/* The 16-byte source key of a peer address; -EAFNOSUPPORT for other families. */
int sp_source_key(const struct sockaddr *sa, socklen_t len, uint8_t key[SP_SOURCE_KEY_LEN]);

/* Whether one more unauthenticated connection of key fits under the limits
 * (0 = no limit); if it does, it is counted (conns and unauth). */
enum sp_source_verdict sp_source_table_admit(struct sp_source_table *t,
					     const uint8_t key[SP_SOURCE_KEY_LEN],
					     uint32_t max_conns, uint32_t max_unauth);
/* One connection of key is no longer unauthenticated. */
void sp_source_table_proven(struct sp_source_table *t, const uint8_t key[SP_SOURCE_KEY_LEN]);
/* One connection of key is gone (unauth: it was still unauthenticated). */
void sp_source_table_release(struct sp_source_table *t, const uint8_t key[SP_SOURCE_KEY_LEN],
			     bool unauth);
/* Counts of key (0, 0 when it has none). */
void sp_source_table_get(const struct sp_source_table *t, const uint8_t key[SP_SOURCE_KEY_LEN],
			 uint32_t *conns, uint32_t *unauth);
/* Sources with at least one connection. */
uint32_t sp_source_table_count(const struct sp_source_table *t);

/* The shard's side, at accept of fd, before a slot is taken: reads the peer
 * address and applies the limits; SP_SOURCE_OK = counted, in *src (an
 * address that cannot be read is neither limited nor counted). The caller
 * then either attaches *src to the new connection or undoes it. */
enum sp_source_verdict sp_source_accept(struct sp_shard *sh, int fd, struct sp_conn_src *src);
void sp_source_attach(struct sp_conn *c, const struct sp_conn_src *src);
void sp_source_undo(struct sp_shard *sh, const struct sp_conn_src *src);
/* c was proven (its device key is authenticated). */
void sp_source_proven(struct sp_shard *sh, struct sp_conn *c);
/* c's slot is being released. */
void sp_source_release(struct sp_shard *sh, struct sp_conn *c);
/* c moves to another shard: its source (*out, counted in this shard's
 * table, which the shard adopting it tells through sp_source_remote) is
 * no longer c's here. */
void sp_source_moved(struct sp_conn *c, struct sp_conn_src *out);
/* On shard 0: a moved connection of source m->data was proven or ended
 * (SP_XS_SOURCE). */
void sp_source_remote(struct sp_shard *sh, const struct sp_inbox_msg *m);

#endif
