/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_sessions_internal.h: what sp_client.c and sp_prekeys.c need of the
 * session store (client/sp_sessions.c: Double Ratchet sessions, one per
 * peer device, docs/PROTOCOL.md 7.3). Not installed.
 *
 * Every function that changes a session saves the store before it returns
 * success (the chain keys on disk never lag what was sent: a crash cannot
 * make a message key be used twice). Errors: 0 or a negative errno.
 */
#ifndef SP_SESSIONS_INTERNAL_H
#define SP_SESSIONS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sealpost.h"
#include "sp_limits.h"

/* What a first contact leaves for the session it starts (wiped by the user). */
struct sp_fc_start {
	uint8_t sk[32];                 /* X3DH's SK */
	uint8_t ek[SP_KEY_LEN];         /* EK_A: Alice's secret, or Bob's view of the public key */
	uint8_t spk[SP_KEY_LEN];        /* Bob: his signed prekey secret; Alice: SPK_B */
	uint8_t ad[2 * SP_KEY_LEN];     /* IK_A || IK_B */
};

/* The device whose store it is (its public key). */
const uint8_t *sp_sessions_device(const struct sealpost_sessions *ss);

bool sp_sessions_has(const struct sealpost_sessions *ss, const uint8_t peer[SP_KEY_LEN]);

/* The body sp_sessions_encrypt makes for len bytes (0: too large). */
size_t sp_sessions_body_len(size_t len, size_t max_payload, bool pad);

/*
 * A version 4 body for peer: msg (borrowed) into out (caller-owned, cap
 * bytes), the store saved. On a failed save the session is as before and
 * nothing may be sent: -EIO. -ENOENT (no session), -EMSGSIZE.
 */
int sp_sessions_encrypt(struct sealpost_sessions *ss, const uint8_t peer[SP_KEY_LEN],
			const uint8_t *msg, size_t len, size_t max_payload, bool pad, uint8_t *out,
			size_t cap, size_t *out_len);

/*
 * Opens a version 4 body (borrowed) through the session its tag names: the
 * peer into sender, the message into out (caller-owned, cap bytes). The
 * store is saved (the used key gone) before it returns; a failed save does
 * not withhold the message (the next save removes the key). -EBADMSG (no
 * such session, does not open, replay), -ERANGE (beyond MAX_SKIP).
 */
int sp_sessions_decrypt(struct sealpost_sessions *ss, const uint8_t *body, size_t len,
			uint8_t sender[SP_KEY_LEN], uint8_t *out, size_t cap, size_t *out_len);

/* Alice: a first contact to peer went out with st (borrowed): the session
 * starts (replacing one with peer), saved. -EIO, -SEALPOST_ESESSIONFULL. */
int sp_sessions_start_alice(struct sealpost_sessions *ss, const uint8_t peer[SP_KEY_LEN],
			    const struct sp_fc_start *st);

/*
 * Bob: a first contact from peer opened with st (borrowed). A session
 * with peer is replaced unless it began with this same first contact (a
 * redelivery) or it is one we began, not yet answered, and our key sorts
 * below peer's (both sides began at once: both keep the lower key's).
 * 0 started (a failed save is retried at the next), 1 kept the old one;
 * -SEALPOST_ESESSIONFULL, -ENOMEM.
 */
int sp_sessions_start_bob(struct sealpost_sessions *ss, const uint8_t peer[SP_KEY_LEN],
			  const struct sp_fc_start *st);

#endif
