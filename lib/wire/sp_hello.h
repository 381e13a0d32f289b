/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_hello.h: the handshake payloads (ClientHello in the initiator's first
 * message, ServerHello in the responder's), protobuf on the wire.
 *
 * Layering: wire; sees handshake payload plaintext only.
 *
 * Errors: 0 or a negative errno:
 *   -EBADMSG   malformed protobuf (or too many unknown fields to decode)
 *   -EMSGSIZE  payload beyond SP_HANDSHAKE_PAYLOAD_MAX, or output buffer
 *              too small
 */
#ifndef SP_HELLO_H
#define SP_HELLO_H

#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"

/* ClientHello.enrol_token (PROTOCOL.md 15): the wire allows this many bytes
 * (a version-1 token has 57, sp_enrol.h); a longer one is a malformed hello. */
enum { SP_HELLO_ENROL_TOKEN_MAX = 64 };

struct sp_hello {
	uint32_t protocol_version;
	uint32_t max_envelope;   /* ServerHello only */
	uint32_t max_transport;  /* ServerHello only */
	uint32_t idle_timeout_ms; /* ServerHello only; 0: the broker never closes an idle connection */
	uint8_t enrol_token_len;        /* ClientHello only; 0 = none */
	uint8_t enrol_token[SP_HELLO_ENROL_TOKEN_MAX];
};

/* buf: caller-owned, cap bytes; *len receives the encoded length. */
int sp_frame_client_hello_encode(const struct sp_hello *h, uint8_t *buf, size_t cap, size_t *len);
int sp_frame_server_hello_encode(const struct sp_hello *h, uint8_t *buf, size_t cap, size_t *len);
/* buf: borrowed for the call. A ClientHello leaves max_* zero; a
 * ServerHello leaves enrol_token_len zero. An enrol_token above
 * SP_HELLO_ENROL_TOKEN_MAX is -EBADMSG. */
int sp_frame_client_hello_decode(const uint8_t *buf, size_t len, struct sp_hello *h);
int sp_frame_server_hello_decode(const uint8_t *buf, size_t len, struct sp_hello *h);

#endif
