/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_hsrate.h: how many handshakes a shard starts per second, per source
 * and in all. A handshake costs the responder about five X25519
 * operations (docs/BENCHMARKS.md), so handshakes are what one core runs
 * out of first; a token is spent at a connection's first handshake
 * message, before any of its crypto (sp_accept.c).
 *
 * Two limits, each a GCRA (the "virtual scheduling" form of a token
 * bucket: one theoretical arrival time per bucket instead of a token count
 * and a refill time): one bucket per source (the key of sp_source.h: an
 * IPv4 address or an IPv6 /64), so that one address flooding handshake
 * messages cannot spend the tokens of everyone else, and one bucket for
 * all, so that many sources together cannot take more than the core can
 * do. A handshake must fit both; a refused one charges neither.
 *
 * The per-source buckets are a fixed, set-associative table (8 ways per
 * set, keyed hash so a peer cannot choose colliding addresses). A bucket
 * whose arrival time has passed is full, the same as none, so it is
 * replaced first; while the global bucket is on, at most
 * global_rate / source_rate buckets can be non-full at once (each token
 * taken keeps its bucket non-full for one source interval), which a table
 * of sp_hsrate_new's size always holds. Only when every way of a set is
 * non-full (global limit off) is the bucket closest to full replaced, and
 * its source starts again from a full bucket.
 *
 * Writes: only the table it is given (the shard's sh->hsrate, made and
 * freed by sp_accept.c).
 * Errors: 0 or a negative errno.
 */
#ifndef SP_HSRATE_H
#define SP_HSRATE_H

#include <stdint.h>

#include "sp_conn.h"

/* What sp_hsrate_take decided. */
enum sp_hsrate_verdict {
	SP_HSRATE_OK = 0,
	SP_HSRATE_SOURCE,       /* this source's bucket is empty */
	SP_HSRATE_GLOBAL,       /* the bucket of all sources is empty */
};

/* The limits, read at every call (so a reload applies at the next
 * handshake). A rate of 0 turns that bucket off; a burst of 0 counts as 1. */
struct sp_hsrate_limits {
	uint32_t global_rate;   /* handshakes per second in all; burst = global_rate */
	uint32_t source_rate;   /* handshakes per second per source */
	uint32_t source_burst;  /* handshakes a source may start at once */
};

struct sp_hsrate;

/* A table of at least `sources` per-source buckets (rounded up to a power
 * of two, at least 64): taken, freed with sp_hsrate_free. */
int sp_hsrate_new(struct sp_hsrate **out, uint32_t sources);
void sp_hsrate_free(struct sp_hsrate *t);

/*
 * One handshake of source `key` (borrowed; NULL = a peer whose address
 * could not be read: the global bucket only) at now_ns (CLOCK_MONOTONIC).
 * SP_HSRATE_OK = a token taken from both buckets; otherwise nothing taken.
 */
enum sp_hsrate_verdict sp_hsrate_take(struct sp_hsrate *t, const uint8_t *key, uint64_t now_ns,
				      const struct sp_hsrate_limits *lim);

/* Per-source buckets not full at now_ns (tests, metrics). */
uint32_t sp_hsrate_busy(const struct sp_hsrate *t, uint64_t now_ns);

#endif
