/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shard_peer.h: what fuzz_shard.c and its seed generator (seed_targets.c)
 * share: the fixed device keys and the input format.
 *
 * Input: byte 0 holds options (bit 0: with the mailbox store, else a shard
 * without mailboxes). Then records, each
 *   u8 op | u8 dev | u16-be len | len bytes
 * dev is taken modulo FUZZ_SHARD_DEVS. Ops (modulo FUZZ_SHARD_OPS):
 *   FUZZ_OP_MSG     the bytes are frames (a transport plaintext), encrypted
 *                   by dev as its next transport message and fed to its
 *                   connection as one receive completion
 *   FUZZ_OP_RAW     the bytes go to dev's connection unencrypted (length
 *                   prefixes, garbage, truncated messages)
 *   FUZZ_OP_ITER    the iteration ends (commit, results, readers, flush);
 *                   the next begins, the clock moved by the first 4 bytes
 *                   (u32-be milliseconds)
 *   FUZZ_OP_TICK    a timer tick in the current iteration (expiry sweep,
 *                   deadlines)
 *   FUZZ_OP_RECONNECT dev's connection gets EOF; the next record for dev
 *                   opens a fresh one (backlog, Drained)
 *   FUZZ_OP_TAMPER  as FUZZ_OP_MSG with one ciphertext bit flipped
 *   FUZZ_OP_STALL   dev stops (odd first byte) or resumes taking output
 * A device is connected at its first record; the iteration ends at the end
 * of the input and every connection then gets EOF.
 */
#ifndef SP_FUZZ_SHARD_PEER_H
#define SP_FUZZ_SHARD_PEER_H

#include <stdint.h>

#include "sp_limits.h"

enum {
	FUZZ_SHARD_DEVS = 3,
	FUZZ_SHARD_STORE = 1u << 0,
};

enum fuzz_shard_op {
	FUZZ_OP_MSG = 0,
	FUZZ_OP_RAW,
	FUZZ_OP_ITER,
	FUZZ_OP_TICK,
	FUZZ_OP_RECONNECT,
	FUZZ_OP_TAMPER,
	FUZZ_OP_STALL,
	FUZZ_SHARD_OPS,
};

/* Device d's private key: these bytes with byte 1 = 0x40 + d. (Not byte
 * 0: X25519 clears its low three bits, so 0x40, 0x41 and 0x42 there made
 * the three devices one key.) */
static inline void fuzz_shard_dev_priv(uint8_t priv[SP_KEY_LEN], unsigned d)
{
	for (unsigned i = 0; i < SP_KEY_LEN; i++)
		priv[i] = (uint8_t)(0x5b ^ (i * 29));
	priv[1] = (uint8_t)(0x40 + d);
}

static const uint8_t fuzz_shard_server_s[SP_KEY_LEN] = { 0x60, 0x11, 0x23, 0x35, 0x47, 0x59, 9 };

#endif
