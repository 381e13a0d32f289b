/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_devlist.h: an account's signed device list (docs/PROTOCOL.md §11.1).
 *
 * An account is an Ed25519 key (libsodium crypto_sign). Its device list
 * names, at one version, every device (X25519 static key, label, time
 * added) that may receive the account's mail, signed by the account key.
 * The encoding is a fixed binary layout, not protobuf: a signature must be
 * over exactly one spelling of a list, and protobuf has many (field order,
 * default values, unknown fields). One list has exactly one encoding; the
 * decoder refuses every other byte string.
 *
 *   list   = u8 format (1) | account[32] | u64 version | u16 count |
 *            device[count] | signature[64]
 *   device = key[32] | u64 added_s | u8 label_len | label[label_len]
 *   signature = Ed25519 (crypto_sign_detached) over
 *            SP_DEVLIST_DOMAIN (18 ASCII bytes, no NUL) || list minus signature
 *
 * Canonical: integers big-endian; version >= 1; 1..SP_DEVLIST_DEVICES_MAX
 * devices sorted by key (bytewise, ascending), no key twice; every key a
 * valid X25519 public key (sp_noise_key_valid); labels 1..SP_DEVLIST_LABEL_MAX
 * bytes, none below 0x20 nor 0x7f; no bytes after the signature.
 *
 * Layering: crypto (libsodium), no I/O. Used by the broker (verify only: it
 * holds no account key, so it can never make a list) and by the library.
 *
 * Errors: 0 or a negative errno:
 *   -EBADMSG     malformed: truncated, trailing bytes, format, version 0,
 *                count 0, a bad label
 *   -EMSGSIZE    more than SP_DEVLIST_DEVICES_MAX devices or SP_DEVLIST_MAX
 *                bytes (encoding: the output buffer is too small)
 *   -EDOM        a device key that is not a valid X25519 public key
 *   -ENOTUNIQ    devices not sorted, or one key twice
 *   -EKEYREJECTED the signature does not verify, or the account key is not
 *                a valid Ed25519 point
 *   -EINVAL      bad arguments (sign: the secret key is not the account's)
 */
#ifndef SP_DEVLIST_H
#define SP_DEVLIST_H

#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"

#define SP_DEVLIST_DOMAIN "sealpost/devlist/1"

enum {
	SP_DEVLIST_FORMAT = 1,
	SP_DEVLIST_DOMAIN_LEN = sizeof(SP_DEVLIST_DOMAIN) - 1, /* 18 */
	SP_ACCOUNT_KEY_LEN = 32,        /* Ed25519 public key */
	SP_ACCOUNT_SECRET_LEN = 64,     /* libsodium's Ed25519 secret key (seed || public) */
	SP_DEVLIST_SIG_LEN = 64,
	SP_DEVLIST_HDR_LEN = 1 + SP_ACCOUNT_KEY_LEN + 8 + 2,   /* 43 */
	SP_DEVLIST_DEVICE_MIN = SP_KEY_LEN + 8 + 1 + 1,        /* 42: a 1-byte label */
	SP_DEVLIST_DEVICE_MAX = SP_KEY_LEN + 8 + 1 + SP_DEVLIST_LABEL_MAX,
	SP_DEVLIST_MAX = SP_DEVLIST_HDR_LEN + SP_DEVLIST_DEVICES_MAX * SP_DEVLIST_DEVICE_MAX +
			 SP_DEVLIST_SIG_LEN,
};
_Static_assert((int)SP_DEVLIST_MAX <= (int)SP_BODY_MAX, "a list fits in one frame body");

struct sp_devlist_device {
	uint8_t key[SP_KEY_LEN];
	uint64_t added_s;               /* Unix time, seconds, as the signer stated it */
	uint8_t label_len;
	char label[SP_DEVLIST_LABEL_MAX + 1]; /* NUL-terminated copy */
};

struct sp_devlist {
	uint8_t account[SP_ACCOUNT_KEY_LEN];
	uint64_t version;
	uint32_t count;
	struct sp_devlist_device dev[SP_DEVLIST_DEVICES_MAX];
};

/*
 * Parses and checks the canonical form (everything but the signature).
 * buf: borrowed for the call. out: caller-owned, filled on success.
 */
int sp_devlist_decode(const uint8_t *buf, size_t len, struct sp_devlist *out);

/* sp_devlist_decode, then the signature under the list's own account key. */
int sp_devlist_verify(const uint8_t *buf, size_t len, struct sp_devlist *out);

/*
 * Encodes l (which must already be canonical: sorted, unique, valid) and
 * signs it with sk, the account's secret key (borrowed; it must belong to
 * l->account). out: caller-owned, cap bytes; *out_len = bytes written. The
 * result is verified before it is returned.
 */
int sp_devlist_sign(const struct sp_devlist *l, const uint8_t sk[SP_ACCOUNT_SECRET_LEN],
		    uint8_t *out, size_t cap, size_t *out_len);

/* Label check used by the decoder: 1..SP_DEVLIST_LABEL_MAX bytes, none
 * below 0x20 nor 0x7f. 0 or -EBADMSG. label: borrowed. */
int sp_devlist_label_ok(const char *label, size_t len);

/*
 * Inserts a device at its sorted place (l: caller-owned, updated). key,
 * label: borrowed. -ENOTUNIQ if the key is there, -EMSGSIZE if full, -EDOM,
 * -EBADMSG (label).
 */
int sp_devlist_add(struct sp_devlist *l, const uint8_t key[SP_KEY_LEN], const char *label,
		   uint64_t added_s);

/* Removes a device; 0 or -ENOENT. */
int sp_devlist_remove(struct sp_devlist *l, const uint8_t key[SP_KEY_LEN]);

/* Index of key in l, or -ENOENT. */
int sp_devlist_find(const struct sp_devlist *l, const uint8_t key[SP_KEY_LEN]);

/*
 * The short code a person compares on two screens when linking a device: 6
 * decimal digits from BLAKE2b-256 over "sealpost/link/1" || key ||
 * label_len || label. out: caller-owned, 7 bytes (NUL-terminated).
 */
void sp_devlist_link_code(const uint8_t key[SP_KEY_LEN], const char *label, char out[7]);

#endif
