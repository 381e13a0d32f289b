/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_node.h: the shards of one broker process and what crosses between
 * them (docs/ARCHITECTURE.md, "Shards").
 *
 * Every device has a home shard, sp_node_home(key): its connection runs
 * there (one accepted elsewhere is handed over once its handshake names the
 * key, sp_xshard.c), so its route, its takeover, its mailbox reader and
 * the order backlog -> Drained -> live, its sender budgets stay one
 * shard's, without a lock. What one shard asks of another travels as a
 * message in the other's inbox (sp_inbox.h), one kind below each; the
 * poster allocates, the consumer (sp_xshard.c) frees.
 *
 * The mailbox store is one RocksDB for all shards (seqs are assigned in
 * memory by the store, per device, so writers must take turns): a shard
 * holds store_mu from its first store call of an iteration to the end of
 * that iteration (sp_shard_store). Online envelopes never touch it.
 *
 * Threading: set up before the shard threads start, read-only afterwards
 * (store_mu aside).
 */
#ifndef SP_NODE_H
#define SP_NODE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "sp_inbox.h"
#include "sp_limits.h"

struct sp_shard;

/* What a message in a shard's inbox asks (struct sp_inbox_msg.kind). */
enum sp_xshard_kind {
	/* A connection handed to its device's home shard: ptr = struct
	 * sp_move (the socket, the session, its keys, unread input). */
	SP_XS_MOVE = 1,
	/* To shard 0, which counts per-source connections: the connection
	 * from source data[0..16) that moved away was proven (arg[0] = 0) or
	 * ended (arg[0] = 1, arg[1] = still unproven). */
	SP_XS_SOURCE,
	/* An online-only Send for `device`, homed here: data = body;
	 * arg = { sender slot, sender gen, client_id }. Answered with
	 * SP_XS_RESULT (in cluster mode, for a device not connected here,
	 * once the cluster answered: sp_cluster_route_forward). */
	SP_XS_ONLINE,
	/* The status of a Send another shard decided: arg = { slot, gen,
	 * client_id, status | seq << 8 }. */
	SP_XS_RESULT,
	/* An envelope for `device` (homed here) that another shard stored and
	 * committed (in cluster mode: JetStream acknowledged it): arg[0] =
	 * seq; data = body (for a live delivery). */
	SP_XS_STORED,
	/* The store's sync thread finished a WAL sync (read by shard 0):
	 * held results may go. */
	SP_XS_SYNCED,
	/* An admin job for the device it names, or for every shard in turn
	 * (status, reload): ptr = struct sp_admin_job; arg[0] = hops left. */
	SP_XS_ADMIN,
	/* A frame for `device`'s live connection (data = struct sp_frame, then
	 * the body), or arg[0] = a close reason to end it with instead. */
	SP_XS_FRAME,
};

struct sp_node {
	unsigned n;                     /* shards, 2..SP_CONFIG_THREADS_MAX */
	struct sp_shard **shards;       /* n of them */
	pthread_mutex_t store_mu;       /* the shared mailbox store (above) */
	/* Connections of all shards (max-conns is the process's): each
	 * shard's table adds and subtracts its own (sp_conn_table.c). */
	_Atomic uint32_t conns;
	/* The second stop signal reaches every shard; one says so in the log. */
	atomic_flag second_stop_logged;
};

/*
 * The home shard of a device key. Not keyed: a device key is the peer's
 * own choice, so choosing keys only ever places one's own devices; and
 * tests (and operators reading a log) can tell the home of a key. X25519
 * public keys are uniform, so devices spread evenly.
 */
static inline unsigned sp_node_home(const struct sp_node *nd, const uint8_t key[SP_KEY_LEN])
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | key[i];
	return (unsigned)(v % nd->n);
}

#endif
