/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_frame.h: frames inside a decrypted transport message.
 *
 * A transport plaintext is one or more frames back to back:
 *   u16 header_len (BE) | u16 body_len (BE) | FrameHeader protobuf | body
 * Frame headers are decoded with protobuf-c into a stack arena (no malloc)
 * and copied into the plain C struct below, so no protobuf type leaks out of
 * this module. Bodies are never parsed or copied here: a decoded frame points
 * into the caller's buffer.
 *
 * Layering: this module sees plaintext only (below it: sp_noise; above it:
 * routing in the broker, sp_client in the library).
 *
 * Errors: 0 or a negative errno:
 *   -EBADMSG   malformed: truncated prefix, header or body, bad protobuf,
 *              unknown or missing frame type, field out of range
 *   -EMSGSIZE  header_len beyond SP_FRAME_HEADER_MAX; encoding: a body
 *              beyond SP_BODY_MAX, or output buffer too small
 *   -ENODATA   sp_frame_next: no more frames (*off == len)
 */
#ifndef SP_FRAME_H
#define SP_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "sp_hello.h" /* the hello codec lived here; includers still get it */
#include "sp_limits.h"

struct sp_frame {
	enum sp_frame_type type;
	union {
		struct {
			uint8_t to[SP_KEY_LEN];
			uint64_t client_id;
			uint32_t flags;
			/* 1 when `to` was exactly SP_KEY_LEN bytes on the wire; else 0
			 * and `to` is zeroed. Not a decode error: the broker answers
			 * that one envelope with SP_STATUS_ERR_BAD_RECIPIENT. */
			uint8_t to_ok;
		} send;
		struct {
			uint64_t client_id;
			enum sp_status status;
			uint64_t seq;
		} send_result;
		struct {
			uint64_t seq;
		} deliver;
		struct {
			uint64_t seqs[SP_ACK_SEQS_MAX];
			uint32_t count;
		} ack;
		struct {
			uint64_t count;
		} drained;
		struct {
			uint64_t id;
		} ping; /* also pong */
		struct {
			enum sp_status code;
		} goaway;
		/* ListPut, ListFetch, ListResult, ListChanged (one field
		 * numbering for all four, docs/PROTOCOL.md 11.2). */
		struct {
			uint8_t account[SP_ACCOUNT_LEN];
			/* 1 when account was exactly SP_ACCOUNT_LEN bytes on the
			 * wire, else 0 and account zeroed (the broker answers
			 * ERR_LIST_ACCOUNT). Encoding: account is always written. */
			uint8_t account_ok;
			uint64_t client_id;
			enum sp_status status;
			uint64_t version;
			uint32_t list_len;
		} list;
		/* LogFetch, LogReply (docs/PROTOCOL.md 11.7). */
		struct {
			uint64_t client_id;
			uint64_t first, second; /* LogFetch */
			uint64_t leaf;          /* LogFetch: 1 + index, 0 = none */
			enum sp_status status;  /* LogReply */
			uint32_t leaf_len;      /* LogReply */
			uint8_t log_key[32];    /* LogReply; encoding: always written */
			uint8_t log_key_ok;     /* decoding: 1 when exactly 32 bytes came */
		} log;
		/* PushRegister: the three fields are borrowed, pointing into the
		 * buffer given to sp_frame_next (like body), NULL/0 when absent.
		 * Lengths are as received: the broker judges them (PROTOCOL.md 12);
		 * the encoder refuses more than SP_PUSH_ENDPOINT_WIRE_MAX,
		 * SP_PUSH_P256DH_LEN, SP_PUSH_AUTH_LEN. */
		struct sp_frame_push_register {
			const uint8_t *endpoint;
			size_t endpoint_len;
			const uint8_t *p256dh;
			size_t p256dh_len;
			const uint8_t *auth;
			size_t auth_len;
			uint64_t id;
		} push_register;
		struct {
			uint64_t id;
		} push_remove;
		struct {
			uint64_t id;
			enum sp_status status;
		} push_result;
		/* SetAccess: access_key borrowed (points into the buffer given
		 * to sp_frame_next), NULL/0 when absent; its length as
		 * received (the broker judges it). */
		struct {
			uint64_t client_id;
			const uint8_t *access_key;
			size_t access_key_len;
			uint32_t flags;
		} set_access;
		struct {
			uint64_t client_id;
			enum sp_status status;
		} access_result;
		/* FanoutBegin (key = account), FanoutCopy (key = to) and
		 * FanoutResult (PROTOCOL.md 16). key_ok: 1 when the key was
		 * exactly 32 bytes on the wire, else 0 and key zeroed (the
		 * broker judges it); encoding: the key is always written
		 * (Begin, Copy), never for a Result. A Result's missing and
		 * stale keys are its body (missing * 32 then stale * 32
		 * bytes), which the decoder does not check against them. */
		struct {
			uint8_t key[SP_KEY_LEN];
			uint8_t key_ok;
			uint64_t group_id;
			uint64_t version;       /* Begin, Result */
			uint32_t count;         /* Begin */
			enum sp_status status;  /* Result */
			uint32_t missing, stale; /* Result */
		} fanout;
		/* AnonSend: to as Send (to_ok); access_key borrowed as above. */
		struct {
			uint8_t to[SP_KEY_LEN];
			uint8_t to_ok;
			const uint8_t *access_key;
			size_t access_key_len;
			uint64_t client_id;
			uint32_t flags;
		} anon_send;
		/* PrekeyUpload, PrekeyResult, PrekeyFetch, PrekeyBundle,
		 * PrekeyLow: one field numbering for all five (PROTOCOL.md 17;
		 * 1 client_id, 2 status, 3 device, 4 count), each member
		 * defining only its own. device as Send.to (device_ok); encoding
		 * writes the 32 bytes for Fetch and Bundle only. */
		struct {
			uint64_t client_id;
			enum sp_status status;
			uint8_t device[SP_KEY_LEN];
			uint8_t device_ok;
			uint32_t count;
		} prekey;
	} u;
	/* Borrowed: points into the buffer given to sp_frame_next; valid as long
	 * as that buffer is. NULL/0 for frame types without a body. */
	const uint8_t *body;
	size_t body_len;
};

/*
 * Decodes the frame starting at buf[*off] and advances *off past it.
 * buf: borrowed; f->body points into it.
 * Returns -ENODATA when *off == len (clean end), -EBADMSG on malformed input.
 * Body presence is checked: Send, Deliver, FanoutCopy, FanoutResult and the
 * list and log frames may carry a body (possibly empty); any other type with
 * body_len != 0 is -EBADMSG. body_len is NOT
 * checked against SP_BODY_MAX (only against the bytes present): the
 * consumer decides (the broker answers ERR_TOO_LARGE). A header with more
 * than one member of its oneof is -EBADMSG.
 */
int sp_frame_next(const uint8_t *buf, size_t len, size_t *off, struct sp_frame *f);

/*
 * Bytes sp_frame_put will write for f with a body of body_len bytes:
 * prefix + encoded header + body_len.
 */
size_t sp_frame_size(const struct sp_frame *f, size_t body_len);

/*
 * Encodes prefix and header at buf[*off]; the caller then places body_len
 * body bytes right after (memcpy, or gathered encryption). Advances *off past
 * the header only. buf: caller-owned, cap bytes. f->body is ignored.
 */
int sp_frame_put_header(uint8_t *buf, size_t cap, size_t *off, const struct sp_frame *f,
			size_t body_len);

/*
 * Encodes a whole frame (prefix, header, then copies f->body) at buf[*off]
 * and advances *off past it. buf: caller-owned; f->body borrowed for the call.
 */
int sp_frame_put(uint8_t *buf, size_t cap, size_t *off, const struct sp_frame *f);

/* A short lowercase name for a status code, for logs and the CLI ("delivered",
 * "err_offline", ...); "unknown" for values not in the enum. */
const char *sp_status_name(enum sp_status s);

#endif
