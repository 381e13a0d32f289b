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

struct sp_hello {
	uint32_t protocol_version;
	uint32_t max_envelope;   /* ServerHello only */
	uint32_t max_transport;  /* ServerHello only */
	uint32_t idle_timeout_ms; /* ServerHello only; 0: the broker never closes an idle connection */
};

/* buf: caller-owned, cap bytes; *len receives the encoded length. */
int sp_frame_client_hello_encode(const struct sp_hello *h, uint8_t *buf, size_t cap, size_t *len);
int sp_frame_server_hello_encode(const struct sp_hello *h, uint8_t *buf, size_t cap, size_t *len);
/* buf: borrowed for the call. A ClientHello leaves max_* zero. */
int sp_frame_client_hello_decode(const uint8_t *buf, size_t len, struct sp_hello *h);
int sp_frame_server_hello_decode(const uint8_t *buf, size_t len, struct sp_hello *h);

#endif
