/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_enrol.h: one-use enrolment tokens (--registration=token, issue 11
 * item 6; docs/PROTOCOL.md 15).
 *
 * The operator mints tokens with `sealpostd mint-token`; a device's first
 * connection carries one in ClientHello.enrol_token. A token is a fixed
 * binary string, printed as base64url without padding (76 characters):
 *
 *   token = u8 version (1) | id[16] | u64 expires_ms | mac[32]   (57 bytes)
 *   mac   = crypto_auth (HMAC-SHA-512-256) keyed with DATA_DIR/enrol.key
 *           over SP_ENROL_DOMAIN || version | id | expires_ms
 *
 * Why a MAC and not a stored list of minted tokens: minting then writes
 * nothing the running broker must see (RocksDB is locked by sealpostd), so
 * `mint-token` works beside it; the broker needs only the key. The id is
 * random, so the broker can remember a used token (by id) without knowing
 * any other; the expiry is in the MAC, so nobody can extend it.
 *
 * Layering: crypto (libsodium), no I/O. Errors: -EBADMSG (not a token: wrong
 * length, version or encoding), -EKEYREJECTED (MAC does not verify: forged,
 * altered, or minted with another key), -ETIME (expired), -EINVAL, -EMSGSIZE.
 */
#ifndef SP_ENROL_H
#define SP_ENROL_H

#include <stddef.h>
#include <stdint.h>

#define SP_ENROL_DOMAIN "sealpost/enrol/1"

enum {
	SP_ENROL_VERSION = 1,
	SP_ENROL_ID_LEN = 16,
	SP_ENROL_MAC_LEN = 32,
	SP_ENROL_KEY_LEN = 32,
	SP_ENROL_TOKEN_LEN = 1 + SP_ENROL_ID_LEN + 8 + SP_ENROL_MAC_LEN,  /* 57 */
	SP_ENROL_TEXT_LEN = (SP_ENROL_TOKEN_LEN * 4 + 2) / 3,             /* 76, no NUL */
};

/* A new key (random). key: caller-owned; wipe it when done. */
void sp_enrol_keygen(uint8_t key[SP_ENROL_KEY_LEN]);

/* A new token with a random id that expires at expires_ms (Unix time, ms).
 * key and out borrowed / caller-owned. */
void sp_enrol_mint(const uint8_t key[SP_ENROL_KEY_LEN], uint64_t expires_ms,
		   uint8_t out[SP_ENROL_TOKEN_LEN]);

/*
 * Checks a token (tok, len bytes, borrowed) against key at now_ms: the MAC
 * first (so nothing of an unauthenticated token is believed), then the
 * expiry. On 0 and on -ETIME, id (caller-owned) and *expires_ms receive the
 * token's (may be NULL). 0, -EBADMSG, -EKEYREJECTED, -ETIME.
 */
int sp_enrol_verify(const uint8_t key[SP_ENROL_KEY_LEN], const uint8_t *tok, size_t len,
		    uint64_t now_ms, uint8_t id[SP_ENROL_ID_LEN], uint64_t *expires_ms);

/* Text form: base64url, no padding, NUL-terminated (out: cap bytes,
 * cap > SP_ENROL_TEXT_LEN). 0 or -EMSGSIZE. */
int sp_enrol_to_text(const uint8_t tok[SP_ENROL_TOKEN_LEN], char *out, size_t cap);

/* Parses the text form (surrounding spaces and a newline allowed) into out
 * (SP_ENROL_TOKEN_LEN bytes, caller-owned). Checks the layout only (length,
 * version), not the MAC. 0 or -EBADMSG. */
int sp_enrol_from_text(const char *text, uint8_t out[SP_ENROL_TOKEN_LEN]);

#endif
