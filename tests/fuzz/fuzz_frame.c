/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_frame.c: everything a peer can put into a transport plaintext or a
 * handshake payload, through sp_frame.
 *
 * 1. The input as a transport plaintext: sp_frame_next until the end or an
 *    error; every decoded frame must lie inside the input, must re-encode,
 *    and must decode again to the same frame.
 * 2. The input as one FrameHeader (when it fits the limit): sp_frame's hand
 *    decoder must agree with protobuf-c's unpack, accept for accept and
 *    value for value (differential).
 * 3. The input as ClientHello and as ServerHello, against protobuf-c too.
 *
 * Any disagreement or broken invariant aborts.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sealpost.pb-c.h"
#include "sp_frame.h"

static void check(int ok)
{
	if (!ok)
		abort();
}

#include "fuzz/frame_ref.h"


static uint8_t out[SP_TRANSPORT_PLAINTEXT_MAX + SP_FRAME_PREFIX_LEN + SP_FRAME_HEADER_MAX];

static void walk_frames(const uint8_t *data, size_t size)
{
	struct sp_frame f, g;
	size_t off = 0;
	int ret;

	for (;;) {
		size_t at = off, enc = 0, roff = 0;

		ret = sp_frame_next(data, size, &off, &f);
		if (ret < 0) {
			check(ret == -ENODATA || ret == -EBADMSG || ret == -EMSGSIZE);
			check(off == at);
			check(ret != -ENODATA || off == size);
			return;
		}
		check(off > at && off <= size);
		if (f.type == SP_FRAME_SEND || f.type == SP_FRAME_DELIVER ||
		    f.type == SP_FRAME_LIST_PUT || f.type == SP_FRAME_LIST_RESULT ||
		    f.type == SP_FRAME_LIST_CHANGED || f.type == SP_FRAME_LOG_REPLY ||
		    f.type == SP_FRAME_ANON_SEND || f.type == SP_FRAME_FANOUT_COPY ||
		    f.type == SP_FRAME_FANOUT_RESULT || f.type == SP_FRAME_PREKEY_UPLOAD ||
		    f.type == SP_FRAME_PREKEY_BUNDLE) {
			check(f.body >= data + at && f.body + f.body_len == data + off);
		} else {
			check(f.body == NULL && f.body_len == 0);
		}
		check(f.type != SP_FRAME_ACK || f.u.ack.count <= SP_ACK_SEQS_MAX);
		check(f.type != SP_FRAME_SEND || f.u.send.to_ok <= 1);

		/* Re-encode: exact size, and it reads back the same. A Send whose
		 * `to` was not 32 bytes goes out with the zeroed 32 bytes. A body
		 * above SP_BODY_MAX decodes (the broker refuses that envelope) but
		 * is never encoded. */
		if (f.body_len > SP_BODY_MAX) {
			check(sp_frame_put(out, sizeof(out), &enc, &f) == -EMSGSIZE);
			continue;
		}
		/* A PushRegister beyond the encoder's bounds decodes (the broker
		 * answers it with a status) but is never encoded. */
		if (f.type == SP_FRAME_PUSH_REGISTER &&
		    (f.u.push_register.endpoint_len > SP_PUSH_ENDPOINT_WIRE_MAX ||
		     f.u.push_register.p256dh_len > SP_PUSH_P256DH_LEN ||
		     f.u.push_register.auth_len > SP_PUSH_AUTH_LEN)) {
			check(sp_frame_put(out, sizeof(out), &enc, &f) == -EINVAL);
			continue;
		}
		/* So is a SetAccess or AnonSend whose access key is beyond
		 * SP_ACCESS_KEY_MAX (the broker answers it with a status). */
		if ((f.type == SP_FRAME_SET_ACCESS && f.u.set_access.access_key_len > SP_ACCESS_KEY_MAX) ||
		    (f.type == SP_FRAME_ANON_SEND && f.u.anon_send.access_key_len > SP_ACCESS_KEY_MAX)) {
			check(sp_frame_put(out, sizeof(out), &enc, &f) == -EINVAL);
			continue;
		}
		check(sp_frame_put(out, sizeof(out), &enc, &f) == 0);
		check(enc == sp_frame_size(&f, f.body_len));
		check(sp_frame_next(out, enc, &roff, &g) == 0 && roff == enc);
		if (f.type == SP_FRAME_SEND && !f.u.send.to_ok)
			f.u.send.to_ok = 1;
		/* AnonSend's `to` travels as 32 bytes too. */
		if (f.type == SP_FRAME_ANON_SEND && !f.u.anon_send.to_ok)
			f.u.anon_send.to_ok = 1;
		if (f.type >= SP_FRAME_LIST_PUT && f.type <= SP_FRAME_LIST_CHANGED) {
			/* the account always travels as 32 bytes; a field a kind
			 * does not define is not encoded */
			f.u.list.account_ok = 1;
			if (f.type == SP_FRAME_LIST_CHANGED)
				f.u.list.client_id = 0;
			if (f.type != SP_FRAME_LIST_RESULT)
				f.u.list.status = 0;
			if (f.type == SP_FRAME_LIST_PUT || f.type == SP_FRAME_LIST_FETCH)
				f.u.list.version = f.u.list.list_len = 0;
		}
		/* FanoutBegin's account and FanoutCopy's `to` travel as 32
		 * bytes too (zeroed if they did not come as 32). */
		if (f.type == SP_FRAME_FANOUT_BEGIN || f.type == SP_FRAME_FANOUT_COPY)
			f.u.fanout.key_ok = 1;
		/* LogReply's key always travels as 32 bytes (zeroed if it did
		 * not come as 32). */
		if (f.type == SP_FRAME_LOG_REPLY)
			f.u.log.log_key_ok = 1;
		/* A prekey device travels as 32 bytes where the kind has one. */
		if (f.type == SP_FRAME_PREKEY_FETCH || f.type == SP_FRAME_PREKEY_BUNDLE)
			f.u.prekey.device_ok = 1;
		check(frame_ref_same(&f, &g));
		check(g.body_len == f.body_len);
		check(f.body_len == 0 || memcmp(g.body, f.body, f.body_len) == 0);
	}
}

static void differential_header(const uint8_t *data, size_t size)
{
	struct sp_frame a, b;
	size_t off = 0;
	int ra, rb;

	if (size == 0 || size > SP_FRAME_HEADER_MAX)
		return;
	out[0] = (uint8_t)(size >> 8);
	out[1] = (uint8_t)size;
	out[2] = 0;
	out[3] = 0;
	memcpy(out + SP_FRAME_PREFIX_LEN, data, size);
	ra = sp_frame_next(out, SP_FRAME_PREFIX_LEN + size, &off, &a);
	rb = frame_ref_decode(data, size, &b);
	check(ra == rb);
	check(ra != 0 || frame_ref_same(&a, &b));
}

static void hellos(const uint8_t *data, size_t size)
{
	struct sp_hello h;
	int r;

	r = sp_frame_client_hello_decode(data, size, &h);
	if (size > SP_HANDSHAKE_PAYLOAD_MAX) {
		check(r == -EMSGSIZE);
	} else {
		Sealpost__V1__ClientHello *m = sealpost__v1__client_hello__unpack(NULL, size, data);

		/* The arena may refuse what malloc allows, never the reverse. */
		check(r == 0 || r == -EBADMSG);
		check(r != 0 || (m && m->protocol_version == h.protocol_version));
		/* enrol_token (field 2): exactly protobuf's bytes, and only up to
		 * SP_HELLO_ENROL_TOKEN_MAX of them */
		check(r != 0 || (m->enrol_token.len == h.enrol_token_len &&
				 (!h.enrol_token_len ||
				  memcmp(m->enrol_token.data, h.enrol_token, h.enrol_token_len) == 0)));
		check(!m || m->enrol_token.len <= SP_HELLO_ENROL_TOKEN_MAX || r == -EBADMSG);
		if (m)
			sealpost__v1__client_hello__free_unpacked(m, NULL);
	}
	r = sp_frame_server_hello_decode(data, size, &h);
	if (size > SP_HANDSHAKE_PAYLOAD_MAX) {
		check(r == -EMSGSIZE);
	} else {
		Sealpost__V1__ServerHello *m = sealpost__v1__server_hello__unpack(NULL, size, data);

		check(r == 0 || r == -EBADMSG);
		check(r != 0 || (m && m->protocol_version == h.protocol_version &&
				 m->max_envelope == h.max_envelope &&
				 m->max_transport == h.max_transport));
		if (m)
			sealpost__v1__server_hello__free_unpacked(m, NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	walk_frames(data, size);
	differential_header(data, size);
	hellos(data, size);
	return 0;
}
