/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_registration.h: the registration policy (--registration=open|token,
 * docs/PROTOCOL.md 15): which devices may be routed, and enrolment with a
 * one-use token (lib/crypto/sp_enrol.h) minted by `sealpostd mint-token`.
 */
#ifndef SP_REGISTRATION_H
#define SP_REGISTRATION_H

#include <stdbool.h>
#include <stdint.h>

#include "sp_enrol.h"
#include "sp_hello.h"
#include "sp_shard_types.h"

/* DATA_DIR/enrol.key: the token MAC key, 64 hex characters, mode 0600
 * (sp_keyfile.h). The file name under data_dir into path (cap bytes). */
int sp_registration_key_path(const char *data_dir, char *path, size_t cap);

/* Reads the key (key: caller-owned, wipe it), creating the file with a new
 * random key if it is missing (*created, may be NULL). 0 or a negative
 * errno of sp_keyfile_* (-EACCES: group or others may read it). */
int sp_registration_key_load(const char *data_dir, uint8_t key[SP_ENROL_KEY_LEN], bool *created);

/*
 * The session's client_hello hook (ctx: the shard): with
 * --registration=token, a device that is neither registered nor on a
 * stored account list must carry a valid unused token; the enrolment is
 * written (synced) here, before the device is routed. SP_CLOSE_NONE, or
 * SP_CLOSE_ENROL_REQUIRED / _BAD_TOKEN / _TOKEN_USED (a GoAway each),
 * SP_CLOSE_INTERNAL (the store failed). h: borrowed for the call.
 */
enum sp_close_reason sp_registration_check(void *ctx, struct sp_conn *c, const struct sp_hello *h);

/* At the IK proof (sp_router_proven): the refusal the check deferred to
 * it (see sp_registration.c), or SP_CLOSE_NONE. */
enum sp_close_reason sp_registration_proven(struct sp_conn *c);

/* A connection handed over from another shard, with the refusal its
 * ClientHello earned there (0: none). */
void sp_registration_adopt(struct sp_conn *c, uint8_t refuse);

#endif
