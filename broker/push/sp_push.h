/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_push.h: Web Push wake-ups on the shard's side (PROTOCOL.md 12,
 * OPERATIONS.md "Push wake-ups").
 *
 * Holds every device's subscription in memory (a keytab of device key to
 * entry, loaded from the store at start), answers PushRegister and
 * PushRemove (checked by sp_push_sub, stored by a synced put or delete), and
 * decides the wake-ups: an envelope stored for a device that is not
 * connected and has a subscription wakes it, at most once per
 * push-coalesce until it connects (sp_push_connected resets that). The wake
 * itself is the worker's (sp_push_worker.h): this side only queues it, so
 * the envelope path costs one table lookup for offline recipients and
 * nothing for connected ones. Outcomes come back through the worker's
 * eventfd (the shard reads it on its ring, then calls sp_push_outcomes): a
 * 404 or 410 removes the subscription.
 *
 * Threading: the shard's thread only. Endpoint hosts are never logged at
 * info level (debug lines name the device prefix and the outcome only).
 * Errors: 0 or a negative errno.
 */
#ifndef SP_PUSH_H
#define SP_PUSH_H

#include <stdint.h>

#include "sp_config.h"
#include "sp_frame.h"
#include "sp_log.h"
#include "sp_metrics.h"

struct sp_push;
struct sp_push_worker;
struct sp_store;

/*
 * cfg, log, store, worker: borrowed for the object's life. store NULL or
 * worker NULL: every registration is answered err_push_disabled. The
 * stored subscriptions are loaded (and counted in m's gauge).
 */
int sp_push_create(struct sp_push **out, const struct sp_config *cfg, const struct sp_log *log,
		   struct sp_store *store, struct sp_push_worker *worker,
		   struct sp_metrics_shard *m);
void sp_push_destroy(struct sp_push *p);

/* The worker's outcome descriptor (-1 without a worker). */
int sp_push_result_fd(const struct sp_push *p);

/* A PushRegister or PushRemove frame of device (f borrowed): its status. */
enum sp_status sp_push_frame(struct sp_push *p, const uint8_t device[SP_KEY_LEN],
			     const struct sp_frame *f, struct sp_metrics_shard *m);

/* An envelope was stored for device, which is not connected. */
void sp_push_mail(struct sp_push *p, const uint8_t device[SP_KEY_LEN], uint64_t now_ns,
		  struct sp_metrics_shard *m);

/* device connected: its next envelope after it leaves wakes it at once. */
void sp_push_connected(struct sp_push *p, const uint8_t device[SP_KEY_LEN]);

/* device's mailbox was purged: its subscription goes with it. */
void sp_push_dropped(struct sp_push *p, const uint8_t device[SP_KEY_LEN],
		     struct sp_metrics_shard *m);

/* The worker's outcomes so far, into metrics and (404/410) removals. */
void sp_push_outcomes(struct sp_push *p, struct sp_metrics_shard *m);

/* Subscriptions held now. */
size_t sp_push_count(const struct sp_push *p);

#endif
