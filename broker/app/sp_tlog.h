/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_tlog.h: the broker's transparency log service (docs/PROTOCOL.md 11.7):
 * its Ed25519 log key, signed tree heads over the store's log
 * (store/sp_store_log.c), the trailer served after every device list (a
 * fresh STH and the list's inclusion proof), and LogFetch answers (a leaf,
 * a consistency proof).
 *
 * The log key is DATA_DIR/log.key: the Ed25519 seed (32 bytes) in the
 * format of a private key file (sp_keyfile.h: 64 hex digits and a newline,
 * 0600), created on first start; DATA_DIR/log.pub holds the public key the
 * same way, rewritten when missing or wrong, for operators to publish.
 * The secret key lives in sodium_malloc'd memory, read-only after load.
 *
 * Layering: broker/app (store + lib/crypto). Errors: 0 or a negative errno.
 */
#ifndef SP_TLOG_H
#define SP_TLOG_H

#include <stddef.h>
#include <stdint.h>

#include "sp_sth.h"

struct sp_store;

struct sp_tlog {
	uint8_t *sk;                    /* SP_LOG_SECRET_LEN, sodium_malloc'd, read-only */
	uint8_t pk[SP_LOG_KEY_LEN];
	/* Test builds only (--test-log-fork, never in a packaged config):
	 * heads served to the device whose key is fork_device describe a log
	 * with one extra leaf at the end that nobody else is shown. */
	uint8_t fork_device[32];
	int fork;
};

/* Loads DIR/log.key into t (creating it on first start) and writes
 * DIR/log.pub. 0, or -errno from the files (-EACCES: key readable by others). */
int sp_tlog_load(struct sp_tlog *t, const char *dir);
/* Wipes and frees the secret key. NULL / unloaded: no-op. */
void sp_tlog_free(struct sp_tlog *t);

/* A signed head of the log as committed now (timestamp now_ms). */
int sp_tlog_head(const struct sp_tlog *t, struct sp_store *st, uint64_t now_ms, struct sp_sth *out);

/*
 * The trailer after account's list (11.7: sth | inclusion), for the device
 * peer (borrowed; only the test fork looks at it): a fresh head and the
 * proof of the account's latest leaf, into out (cap bytes), *len.
 * -ENOENT: the account has no leaf (a list stored before the log existed).
 */
int sp_tlog_trailer(const struct sp_tlog *t, struct sp_store *st, const uint8_t account[32],
		    const uint8_t peer[32], uint64_t now_ms, uint8_t *out, size_t cap, size_t *len);

/*
 * A LogFetch answer body: [leaf bytes of leaf_index if want_leaf] | sth |
 * consistency(first, second) with second 0 meaning the head's size, into
 * out (cap bytes); *leaf_len = the leaf's bytes (0 if none), *len = all.
 * -EINVAL: first > second, second > size, leaf_index >= size.
 */
int sp_tlog_fetch(const struct sp_tlog *t, struct sp_store *st, const uint8_t peer[32],
		  uint64_t now_ms, uint64_t first, uint64_t second, int want_leaf,
		  uint64_t leaf_index, uint8_t *out, size_t cap, size_t *leaf_len, size_t *len);

#endif
