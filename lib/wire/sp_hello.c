/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_hello.c: the handshake payloads ClientHello and ServerHello.
 *
 * Hellos (once per connection) use protobuf_c_message_unpack with a
 * ProtobufCAllocator carved from a stack arena: no malloc, and an arena too
 * small for a hostile payload is just a failed unpack (-EBADMSG). Speed does
 * not matter here, so unlike FrameHeader (sp_frame.c) they are not coded by
 * hand. No protobuf type leaves this file.
 */
#include "sp_hello.h"

#include <errno.h>
#include <stdalign.h>
#include <stddef.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "sealpost.pb-c.h"

/* ---- stack arena for protobuf-c ------------------------------------------ */

enum {
	/* A hello is 1..3 known fields (a few hundred bytes of protobuf-c
	 * scratch). protobuf-c needs ~64 bytes per field past the 16th (a
	 * scanned-member slab entry, the unknown-field record, its copy), so
	 * 8 KiB still takes 111 unknown fields from a newer peer; a payload of
	 * hundreds of fields exhausts it and is refused (-EBADMSG). */
	ARENA_SIZE = 8192,
	ARENA_ALIGN = alignof(max_align_t),
};

struct arena {
	alignas(max_align_t) uint8_t mem[ARENA_SIZE];
	size_t used;
};

static void *arena_alloc(void *data, size_t size)
{
	struct arena *a = data;
	size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	void *p;

	if (need < size || need > ARENA_SIZE - a->used)
		return NULL;
	p = a->mem + a->used;
	a->used += need;
	return p;
}

static void arena_free(void *data, void *p)
{
	/* Everything goes at once when the arena leaves scope. */
	(void)data;
	(void)p;
}

/* ---- handshake payloads --------------------------------------------------- */

static int pack_hello(const ProtobufCMessage *m, uint8_t *buf, size_t cap, size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(m);

	if (n > cap || n > SP_HANDSHAKE_PAYLOAD_MAX)
		return -EMSGSIZE;
	*len = protobuf_c_message_pack(m, buf);
	return 0;
}

int sp_frame_client_hello_encode(const struct sp_hello *h, uint8_t *buf, size_t cap, size_t *len)
{
	Sealpost__V1__ClientHello m = SEALPOST__V1__CLIENT_HELLO__INIT;

	m.protocol_version = h->protocol_version;
	if (h->enrol_token_len > SP_HELLO_ENROL_TOKEN_MAX)
		return -EMSGSIZE;
	/* protobuf-c takes a non-const pointer but only reads it when packing */
	m.enrol_token.len = h->enrol_token_len;
	m.enrol_token.data = (uint8_t *)h->enrol_token;
	return pack_hello(&m.base, buf, cap, len);
}

int sp_frame_server_hello_encode(const struct sp_hello *h, uint8_t *buf, size_t cap, size_t *len)
{
	Sealpost__V1__ServerHello m = SEALPOST__V1__SERVER_HELLO__INIT;

	m.protocol_version = h->protocol_version;
	m.max_envelope = h->max_envelope;
	m.max_transport = h->max_transport;
	m.idle_timeout_ms = h->idle_timeout_ms;
	return pack_hello(&m.base, buf, cap, len);
}

int sp_frame_client_hello_decode(const uint8_t *buf, size_t len, struct sp_hello *h)
{
	struct arena arena;
	ProtobufCAllocator alloc = { arena_alloc, arena_free, &arena };
	Sealpost__V1__ClientHello *m;
	static const uint8_t empty[1];

	if (len > SP_HANDSHAKE_PAYLOAD_MAX)
		return -EMSGSIZE;
	arena.used = 0;
	m = sealpost__v1__client_hello__unpack(&alloc, len, len ? buf : empty);
	if (!m)
		return -EBADMSG;
	if (m->enrol_token.len > SP_HELLO_ENROL_TOKEN_MAX)
		return -EBADMSG;
	h->protocol_version = m->protocol_version;
	h->max_envelope = 0;
	h->max_transport = 0;
	h->idle_timeout_ms = 0;
	h->enrol_token_len = (uint8_t)m->enrol_token.len;
	if (m->enrol_token.len)
		memcpy(h->enrol_token, m->enrol_token.data, m->enrol_token.len);
	return 0;
}

int sp_frame_server_hello_decode(const uint8_t *buf, size_t len, struct sp_hello *h)
{
	struct arena arena;
	ProtobufCAllocator alloc = { arena_alloc, arena_free, &arena };
	Sealpost__V1__ServerHello *m;
	static const uint8_t empty[1];

	if (len > SP_HANDSHAKE_PAYLOAD_MAX)
		return -EMSGSIZE;
	arena.used = 0;
	m = sealpost__v1__server_hello__unpack(&alloc, len, len ? buf : empty);
	if (!m)
		return -EBADMSG;
	h->protocol_version = m->protocol_version;
	h->max_envelope = m->max_envelope;
	h->max_transport = m->max_transport;
	h->idle_timeout_ms = m->idle_timeout_ms;
	h->enrol_token_len = 0;
	return 0;
}
