/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_store_codec.h: the store's keys and values as bytes (the layout is
 * documented in sp_store.h). Pure functions: no RocksDB, no allocation, no
 * state, so every record format is testable on its own
 * (tests/unit/test_store_codec.c).
 *
 * Decoders refuse anything that is not exactly a record this build writes
 * (another version, non-zero reserved bytes, a wrong length) with -EBADMSG
 * and leave the caller to count it as corrupt.
 *
 * Buffers: every input is borrowed for the call; every output is the caller's
 * and is written completely on success (decoders may write part of *out on
 * failure: read it only after a 0).
 */
#ifndef SP_STORE_CODEC_H
#define SP_STORE_CODEC_H

#include <stdbool.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_store.h"

enum {
	SP_STORE_KIND_MAILBOX = 'm',    /* expiry record of a mailbox entry */
	SP_STORE_KIND_DEDUP = 'd',      /* expiry record of a dedup record */
	SP_STORE_KIND_WINDOW = 'w',     /* expiry record of a window of entries */
	SP_STORE_WINDOW_HDR_LEN = 8,    /* window value: u8 version=1 | u8[3] zero | u32 n */
	SP_STORE_WINDOW_ITEM_LEN = SP_KEY_LEN + 8 + 8, /* recipient | seq | expires_ms */
	SP_STORE_WINDOW_MAX = 64,       /* entries one window record names at most */
	SP_STORE_EXPIRY_KEY_MIN = 9,    /* expires_ms u64 | kind */
	SP_STORE_EXPIRY_KEY_MAX = SP_STORE_EXPIRY_MAILBOX_KEY_LEN,
	SP_STORE_EPOCH_LEN = 8,         /* the "epoch" record: u64 */
	SP_STORE_EXPIRY_BOUND_LEN = 8,  /* an expiry key prefix: expires_ms u64 */
};

/* A device's per-mailbox counters (the meta value). */
struct sp_store_meta {
	uint64_t next_seq;
	uint64_t count;
	uint64_t bytes;
};

/*
 * Stored acceptance times are whole seconds (rounded down at encode,
 * SECURITY.md "What is written down"): nothing that reads them (the
 * mailbox path's delivery-latency histogram, whose finest bucket for it
 * that matters is 1 s, and the admin's oldest_age_s) needs milliseconds,
 * and a seized store should not line sends up with packet captures to the
 * millisecond. Expiry times stay exact: expiry needs them.
 */
enum { SP_STORE_ACCEPTED_GRAIN_MS = 1000 };

/* The fixed header in front of a stored body (the mailbox value). */
struct sp_store_mbox_hdr {
	uint32_t body_len;
	uint64_t accepted_ms;
	uint64_t expires_ms;
	uint32_t share_tag;             /* 24 bits: the sender's tag in this mailbox */
	bool has_tag;                   /* v2 value (v1 values carry none) */
};

/* One expiry index key, decoded. Pointers borrow the key's bytes. */
struct sp_store_expiry_ref {
	uint64_t expires_ms;
	uint8_t kind;                   /* SP_STORE_KIND_MAILBOX, _WINDOW or _DEDUP */
	const uint8_t *recipient;       /* KIND_MAILBOX, KIND_WINDOW (its first entry's):
					 * SP_KEY_LEN bytes; else NULL */
	uint64_t seq;                   /* KIND_MAILBOX, KIND_WINDOW (its first entry's); else 0 */
	const uint8_t *dedup_id;        /* KIND_DEDUP: SP_STORE_DEDUP_ID_LEN bytes; else NULL */
};

/* a + b, or UINT64_MAX if that overflows (times and windows near the end of
 * time must not wrap into the past). */
uint64_t sp_store_add_sat(uint64_t a, uint64_t b);

/* The lowest seq an open with this epoch may assign (epoch << 32), or
 * UINT64_MAX once the epoch no longer fits in 32 bits. */
uint64_t sp_store_seq_floor(uint64_t epoch);

/* ---- keys ----------------------------------------------------------------- */

/* sp_store_mailbox_key and sp_store_expiry_mailbox_key are in sp_store.h. */

void sp_store_expiry_dedup_key(uint8_t out[SP_STORE_EXPIRY_DEDUP_KEY_LEN], uint64_t expires_ms,
			       const uint8_t id[SP_STORE_DEDUP_ID_LEN]);

/* A window record's key: its earliest expiry, then its first entry. */
void sp_store_expiry_window_key(uint8_t out[SP_STORE_EXPIRY_MAILBOX_KEY_LEN], uint64_t expires_ms,
				const uint8_t recipient[SP_KEY_LEN], uint64_t seq);

/* A window value of n entries: its length; its header into out (8 bytes);
 * entry i (recipient borrowed) into out + SP_STORE_WINDOW_HDR_LEN + i * 48. */
size_t sp_store_window_len(uint32_t n);
void sp_store_window_hdr_encode(uint8_t out[SP_STORE_WINDOW_HDR_LEN], uint32_t n);
void sp_store_window_item_encode(uint8_t out[SP_STORE_WINDOW_ITEM_LEN],
				 const uint8_t recipient[SP_KEY_LEN], uint64_t seq,
				 uint64_t expires_ms);

/* A window value (len bytes, borrowed): 0 with *n (1..SP_STORE_WINDOW_MAX),
 * or -EBADMSG (wrong version or length, reserved bytes not zero). */
int sp_store_window_decode(const uint8_t *v, size_t len, uint32_t *n);

/* Entry i (< n) of a decoded window value: *recipient borrows v. */
void sp_store_window_item(const uint8_t *v, uint32_t i, const uint8_t **recipient,
			  uint64_t *seq, uint64_t *expires_ms);

/* The exclusive upper bound of the expiry records due at now_ms (those with
 * expires_ms <= now_ms), for an iterator over the expiry column family. */
void sp_store_expiry_bound(uint8_t out[SP_STORE_EXPIRY_BOUND_LEN], uint64_t now_ms);

/* The seq of a mailbox key of klen bytes: 0, or -EBADMSG if klen is not
 * SP_STORE_MAILBOX_KEY_LEN. */
int sp_store_mailbox_key_seq(const uint8_t *key, size_t klen, uint64_t *seq);

/* Decodes an expiry index key: 0, or -EBADMSG if it is neither a 49-byte
 * mailbox or window record nor a 41-byte dedup record. *out borrows key. */
int sp_store_expiry_key_decode(const uint8_t *key, size_t klen, struct sp_store_expiry_ref *out);

/*
 * The dedup id of (sender, recipient, client_id): BLAKE2b-256 keyed with
 * dedup_key (crypto_generichash_KEYBYTES bytes). The hash state is wiped
 * before returning. All inputs borrowed.
 */
void sp_store_dedup_id(uint8_t id[SP_STORE_DEDUP_ID_LEN], const uint8_t *dedup_key,
		       const uint8_t sender[SP_KEY_LEN], const uint8_t recipient[SP_KEY_LEN],
		       uint64_t client_id);

enum { SP_STORE_SHARE_TAG_MASK = 0xffffff };

/* The 24-bit share tag of (sender, recipient) (see sp_store.h). */
uint32_t sp_store_share_tag(const uint8_t *dedup_key, const uint8_t sender[SP_KEY_LEN],
			    const uint8_t recipient[SP_KEY_LEN]);

/* ---- values --------------------------------------------------------------- */

void sp_store_mbox_hdr_encode(uint8_t out[SP_STORE_MAILBOX_HDR_LEN],
			      const struct sp_store_mbox_hdr *h);
/* Writes a v2 header (h->share_tag; has_tag ignored). */
/* 0, or -EBADMSG unless v (len bytes) is exactly a v1 or v2 mailbox value: the body
 * is v + SP_STORE_MAILBOX_HDR_LEN, h->body_len bytes. */
int sp_store_mbox_decode(const uint8_t *v, size_t len, struct sp_store_mbox_hdr *h);
/* The body length a mailbox value of vlen bytes would carry: what a corrupt
 * entry is counted as when it is removed (a guess, never negative). */
uint64_t sp_store_mbox_body_guess(size_t vlen);

void sp_store_meta_encode(uint8_t out[SP_STORE_META_LEN], const struct sp_store_meta *m);
int sp_store_meta_decode(const uint8_t *v, size_t len, struct sp_store_meta *m);

void sp_store_dedup_encode(uint8_t out[SP_STORE_DEDUP_VALUE_LEN], uint64_t seq,
			   uint64_t expires_ms);
int sp_store_dedup_decode(const uint8_t *v, size_t len, uint64_t *seq, uint64_t *expires_ms);

void sp_store_epoch_encode(uint8_t out[SP_STORE_EPOCH_LEN], uint64_t epoch);
/* 0, or -EBADMSG unless v is exactly SP_STORE_EPOCH_LEN bytes. */
int sp_store_epoch_decode(const uint8_t *v, size_t len, uint64_t *epoch);

#endif
