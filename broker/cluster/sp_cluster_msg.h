/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_cluster_msg.h: the payloads nodes send each other over NATS
 * (docs/CLUSTER.md, "Messages"), encoded and decoded without libnats, so
 * that what any client of the NATS account may publish is parsed by one
 * small, fuzzed piece of code (tests/fuzz/fuzz_cluster_msg.c).
 *
 *   DELIVER   on sp.d.TOKEN, reply sp.r.NODE.PORT.TICKET: 'D', node (8), body
 *   TAKEOVER  on sp.d.TOKEN:                              'T', node (8), since_ms (8)
 *   STORED    on sp.d.TOKEN:                              'S', node (8), seq (8), body
 *   REPLY     on the DELIVER's reply subject:             'R', status (1)
 * Integers big-endian. TOKEN: 64 lower- or upper-case hex digits.
 *
 * And JetStream's own answers to the requests a port makes of it (mailbox
 * streams, docs/CLUSTER.md "Replicated mailboxes"), JSON, on the port's
 * reply subjects: sp.r.NODE.PORT.jTICKET (a publish's PubAck),
 * sp.r.NODE.PORT.gCONN-TICKET (a STREAM.MSG.GET), sp.r.NODE.PORT.xCONN-SEQ
 * (a STREAM.MSG.DELETE), sp.r.NODE.PORT.pID-N (a STREAM.PURGE of one
 * mailbox: the N-th of ListPut wait ID); CONN = gen << 32 | slot of the
 * connection asking. Parsed with jansson; the body of a message read is
 * base64 in the answer and decoded here.
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
	SP_CLUSTER_STORED_HEAD = 1 + 8 + 8,      /* kind, node, seq */
	/* The reply subject's kinds for JetStream's answers (after the prefix). */
	SP_CLUSTER_JS_PUBACK = 'j',
	SP_CLUSTER_JS_GET = 'g',
	SP_CLUSTER_JS_DELETE = 'x',
	SP_CLUSTER_JS_PURGE = 'p',
	/* JetStream error codes sealpost tells apart (nats-server's errors.json). */
	SP_CLUSTER_JS_ERR_NO_MESSAGE = 10037,     /* no message found */
	SP_CLUSTER_JS_ERR_SUBJECT_FULL = 10077,   /* maximum messages per subject exceeded */
	SP_CLUSTER_JS_ERR_STORE_FULL = 10047,     /* insufficient resources */
};



/* "sp.d." and token in hex, NUL-terminated (out: SP_CLUSTER_SUBJECT_MAX). */
void sp_cluster_msg_subject(const uint8_t token[SP_KEY_LEN], char out[SP_CLUSTER_SUBJECT_MAX]);

/* DELIVER's head (SP_CLUSTER_MSG_HEAD bytes into out); the body follows. */
void sp_cluster_msg_deliver_head(uint8_t *out, uint64_t node);
/* STORED's head (SP_CLUSTER_STORED_HEAD bytes into out); the body follows. */
void sp_cluster_msg_stored_head(uint8_t *out, uint64_t node, uint64_t seq);
void sp_cluster_msg_takeover(uint8_t out[SP_CLUSTER_TAKEOVER_LEN], uint64_t node, uint64_t since_ms);
void sp_cluster_msg_reply(uint8_t out[SP_CLUSTER_REPLY_LEN], uint8_t status);

/*
 * A DELIVER, TAKEOVER or STORED received on subject subj (reply: its reply
 * subject or NULL) as a malloc'd inbox item (the caller frees it), or NULL
 * if it is none of them (or no memory). A body is at most SP_BODY_MAX.
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

/*
 * A JetStream answer on a reply subject of the port whose prefix is prefix
 * ("sp.r.NODE.PORT."): 0 with *a filled, or -EINVAL (not one: dropped).
 * A GET's message body, when it has one, is decoded into body (cap bytes,
 * at most SP_BODY_MAX used) with *body_len; a body larger than cap is not
 * one of ours (-EINVAL). d and subj borrowed for the call.
 */
int sp_cluster_msg_js_answer(const char *prefix, const char *subj, const uint8_t *d, size_t len,
			     bool no_responders, struct sp_cluster_js_answer *a, uint8_t *body,
			     size_t cap, size_t *body_len);

/* The time JetStream gives ("2026-12-04T13:20:00.123456789Z", UTC) in ms
 * since the epoch; 0 if it is not one. */
uint64_t sp_cluster_msg_js_time(const char *s);

#endif
