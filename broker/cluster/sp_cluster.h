/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_cluster.h: a sealpostd node of a cluster backed by NATS (--cluster,
 * docs/CLUSTER.md). Only with --cluster set: a single node never calls
 * anything here, so nothing of libnats runs there.
 *
 * Start-up (sp_cluster_start) refuses a configuration that cannot work, each
 * with one clear log line and exit status 1:
 *   - no NATS server of the list answers within --cluster-connect-timeout;
 *   - the NATS cluster has no JetStream (or not for this account);
 *   - the JetStream bucket sealpost keeps its cluster facts in cannot be made
 *     with --cluster-replicas replicas (fewer servers than replicas, say);
 *   - this node's server key is not the cluster's: every node must hold the
 *     same DATA_DIR/server.key (devices may connect to any node). The first
 *     node to start records a fingerprint of the public key in the bucket
 *     (key "broker_key"); every later node compares its own with it.
 *
 * Afterwards the connection reconnects forever; while it is down the node
 * is not ready (/readyz 503, sp_metrics_set_cluster_up) and the disconnect
 * and reconnect are logged and counted (sealpost_cluster_*).
 *
 * Threads: libnats runs its own (reading, flushing, callbacks); the state
 * they write here is atomics only. sp_cluster_start and sp_cluster_stop run
 * on the main thread.
 *
 * Errors: 0 or a negative errno: -EHOSTUNREACH (no server reachable),
 * -ENOTSUP (no JetStream), -EKEYREJECTED (another server key), -ENOSPC (the
 * bucket cannot be made), -EIO (anything else libnats reports), -ENOMEM.
 */
#ifndef SP_CLUSTER_H
#define SP_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "sp_config.h"
#include "sp_limits.h"
#include "sp_log.h"
#include "sp_metrics.h"

/* The bucket of cluster facts and its one key today (docs/CLUSTER.md). */
#define SP_CLUSTER_BUCKET "sealpost_cluster"
#define SP_CLUSTER_KEY_BROKER "broker_key"
enum {
	SP_CLUSTER_FP_LEN = 16,                  /* fingerprint bytes */
	SP_CLUSTER_FP_HEX_LEN = 2 * SP_CLUSTER_FP_LEN,
};

struct sp_cluster;

/*
 * Connects to cfg->cluster, checks JetStream and the server key; on success
 * *out is the node (stop it with sp_cluster_stop) and m's readiness follows
 * the connection. server_pub: borrowed for the call. lg and m: borrowed for
 * the node's life.
 */
int sp_cluster_start(struct sp_cluster **out, const struct sp_config *cfg, const struct sp_log *lg,
		     struct sp_metrics *m, const uint8_t server_pub[SP_KEY_LEN]);

/* Closes the connection and waits (bounded) for libnats's threads; NULL ok. */
void sp_cluster_stop(struct sp_cluster *c);

/* Is the NATS connection up right now? */
bool sp_cluster_up(const struct sp_cluster *c);

/* The fingerprint of a server public key as the cluster records it:
 * BLAKE2b-128 keyed with the label "sealpost-cluster", in lower-case hex
 * (hex: SP_CLUSTER_FP_HEX_LEN + 1 bytes, written). */
void sp_cluster_fingerprint(const uint8_t server_pub[SP_KEY_LEN],
			    char hex[SP_CLUSTER_FP_HEX_LEN + 1]);

#endif
