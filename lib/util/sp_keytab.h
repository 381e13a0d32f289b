/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_keytab.h: one hash table for 32-byte keys (device public keys) to an
 * opaque 64-bit value, for the routing table and the store's per-batch
 * mailbox map alike.
 *
 * Open addressing keyed by SipHash-2-4 (libsodium's crypto_shorthash) under
 * a random per-table key: the keys are chosen by peers, so the hash must not
 * be predictable (hash flooding). Grows by doubling; never shrinks below the
 * initial capacity. Keys are copied into the table.
 *
 * Layering: util; links libsodium for the hash and the random table key.
 * Threading: none; one table is used by one thread at a time.
 * Errors: 0 or a negative errno.
 */
#ifndef SP_KEYTAB_H
#define SP_KEYTAB_H

#include <stddef.h>
#include <stdint.h>

enum { SP_KEYTAB_KEY_LEN = 32 };

struct sp_keytab;

/* capacity_hint: expected number of entries (the table sizes for it).
 * -EIO if libsodium cannot start, -ENOMEM. */
int sp_keytab_create(struct sp_keytab **out, size_t capacity_hint);
void sp_keytab_destroy(struct sp_keytab *t);

/*
 * Maps key to value. Returns 0 if the key was new, or 1 if it replaced an
 * existing entry, whose value is then stored in *old_value (may be NULL).
 * -ENOMEM if growing failed (the table is unchanged).
 */
int sp_keytab_insert(struct sp_keytab *t, const uint8_t key[SP_KEYTAB_KEY_LEN], uint64_t value,
		     uint64_t *old_value);

/* 0 and *value, or -ENOENT. */
int sp_keytab_lookup(const struct sp_keytab *t, const uint8_t key[SP_KEYTAB_KEY_LEN],
		     uint64_t *value);

/*
 * Removes key only if it currently maps to expected (so a closing connection
 * cannot remove the route of the connection that took over from it).
 * 0, -ENOENT (absent), or -ESTALE (present with another value; untouched).
 */
int sp_keytab_remove(struct sp_keytab *t, const uint8_t key[SP_KEYTAB_KEY_LEN],
		     uint64_t expected);

size_t sp_keytab_count(const struct sp_keytab *t);

/* Bytes of the table's slot array (capacity x slot size; what a full
 * scan or a hash-spread set of entries makes resident): for the memory
 * figures. */
size_t sp_keytab_bytes(const struct sp_keytab *t);

/* Removes every entry; keeps the capacity and the hash key (O(capacity)). */
void sp_keytab_clear(struct sp_keytab *t);

#endif
