/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_sendlim.h: per-sender budgets for durable envelopes: two token buckets
 * per sending device key, one counting envelopes and one counting body
 * bytes, refilled with time. A Send that either bucket cannot pay for is
 * refused (STATUS_ERR_RATE_LIMITED) and costs nothing more.
 *
 * Keyed by the sender's proven static key, not by connection: reconnecting
 * does not refill a bucket. The table is bounded (max_senders): a sender
 * whose bucket is full again is the same as one never seen, so such
 * entries are dropped when room is needed; if the table is still full (more
 * senders active at once than max_senders), the newcomers share one
 * overflow bucket pair, so an attacker with many fresh keys is limited as
 * one sender rather than growing the table. Lookups hash with lib/util's
 * sp_keytab (secret SipHash key: the keys are chosen by peers).
 *
 * Threading: one table per shard, used by that shard only.
 * Errors: 0 or a negative errno.
 */
#ifndef SP_SENDLIM_H
#define SP_SENDLIM_H

#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"

struct sp_sendlim_config {
	uint64_t rate;                  /* envelopes per second; 0 = no envelope bucket */
	uint64_t burst;                 /* envelope bucket size */
	uint64_t byte_rate;             /* body bytes per second; 0 = no byte bucket */
	uint64_t byte_burst;            /* byte bucket size */
	size_t max_senders;             /* table entries, at most (>= 1) */
};

struct sp_sendlim;

/* cfg copied. -EINVAL (max_senders 0), -ENOMEM. */
int sp_sendlim_create(struct sp_sendlim **out, const struct sp_sendlim_config *cfg);
void sp_sendlim_destroy(struct sp_sendlim *l);

/*
 * Charges one envelope of body_len bytes to sender (borrowed) at now_ms.
 * 0: allowed (both buckets paid); -EAGAIN: over a budget (nothing charged).
 */
int sp_sendlim_take(struct sp_sendlim *l, const uint8_t sender[SP_KEY_LEN], uint64_t body_len,
		    uint64_t now_ms);

/*
 * Charges n envelopes of body_len bytes in all at once (a fan-out group,
 * PROTOCOL.md 16): 0, or -EAGAIN with nothing charged when either bucket
 * cannot pay for all of them. sp_sendlim_take is n = 1.
 */
int sp_sendlim_take_n(struct sp_sendlim *l, const uint8_t sender[SP_KEY_LEN], uint64_t n,
		      uint64_t body_len, uint64_t now_ms);

/* Senders with an entry now (the overflow bucket not counted). */
size_t sp_sendlim_count(const struct sp_sendlim *l);

#endif
