/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_cluster_msg.h: the payloads nodes send each other over NATS
 * (docs/CLUSTER.md, "Messages"), encoded and decoded without libnats, so
 * that what any client of the NATS account may publish is parsed by one
 * small, fuzzed piece of code (tests/fuzz/fuzz_cluster_msg.c).
 *
 *   DELIVER   on sp.d.TOKEN, reply sp.r.NODE.PORT.TICKET: 'D', node (8), body
 *   TAKEOVER  on sp.d.TOKEN:                              'T', node (8), since_ms (8)
 *   REPLY     on the DELIVER's reply subject:             'R', status (1)
 * Integers big-endian. TOKEN: 64 lower- or upper-case hex digits.
 *
 * Buffers: every input is borrowed for the call. Errors: NULL or -EINVAL
 * for anything that is not exactly one of these.
 */
#ifndef SP_CLUSTER_MSG_H
#define SP_CLUSTER_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_cluster_inbox.h"

#define SP_CLUSTER_SUBJECT_DEVICE "sp.d."
#define SP_CLUSTER_SUBJECT_REPLY "sp.r."
enum {
	SP_CLUSTER_SUBJECT_MAX = 96,
	SP_CLUSTER_MSG_HEAD = 1 + 8,            /* kind, node */
	SP_CLUSTER_TAKEOVER_LEN = 1 + 8 + 8,
	SP_CLUSTER_REPLY_LEN = 2,
};

/* "sp.d." and token in hex, NUL-terminated (out: SP_CLUSTER_SUBJECT_MAX). */
void sp_cluster_msg_subject(const uint8_t token[SP_KEY_LEN], char out[SP_CLUSTER_SUBJECT_MAX]);

/* DELIVER's head (SP_CLUSTER_MSG_HEAD bytes into out); the body follows. */
void sp_cluster_msg_deliver_head(uint8_t *out, uint64_t node);
void sp_cluster_msg_takeover(uint8_t out[SP_CLUSTER_TAKEOVER_LEN], uint64_t node, uint64_t since_ms);
void sp_cluster_msg_reply(uint8_t out[SP_CLUSTER_REPLY_LEN], uint8_t status);

/*
 * A DELIVER or TAKEOVER received on subject subj (reply: its reply subject
 * or NULL) as a malloc'd inbox item (the caller frees it), or NULL if it
 * is neither (or no memory). A DELIVER's body is at most SP_BODY_MAX.
 */
struct sp_cluster_item *sp_cluster_msg_device(const char *subj, const char *reply,
					      const uint8_t *d, size_t len);

/*
 * An answer on a reply subject: prefix is the port's "sp.r.NODE.PORT.";
 * subj must be prefix and a decimal ticket > 0. no_responders: NATS's own
 * "no responders" status message (ERR_OFFLINE). 0 with *ticket and
 * *status, or -EINVAL (not ours: dropped).
 */
int sp_cluster_msg_answer(const char *prefix, const char *subj, const uint8_t *d, size_t len,
			  bool no_responders, uint64_t *ticket, uint8_t *status);

#endif
