/* SPDX-License-Identifier: Apache-2.0 */
/*
 * frame_ref.h: protobuf-c's reading of FrameHeader bytes under sp_frame_next's
 * rules, and frame equality, for the two differential checks of the hand
 * decoder (tests/unit/test_frame.c and tests/fuzz/fuzz_frame.c).
 *
 * One copy on purpose: each frame kind added to proto/ must be taught here
 * once. When the two harnesses kept their own references, a kind taught to
 * one and not the other made the other's random differential fail now and
 * then (ours accepted, the reference refused an "unknown" kind).
 *
 * Header-only (static functions) because the unit test and the fuzz target
 * are separate programs built in different configurations.
 */
#ifndef SP_TESTS_FRAME_REF_H
#define SP_TESTS_FRAME_REF_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "sealpost.pb-c.h"
#include "sp_frame.h"

/* Byte fields; as_string: up to the first NUL (protobuf-c hands strings
 * over NUL-terminated). */
static int frame_ref_same_bytes(const uint8_t *a, size_t na, const uint8_t *b, size_t nb, bool as_string)
{
	if (as_string) {
		const uint8_t *z = na ? memchr(a, 0, na) : NULL;
		const uint8_t *w = nb ? memchr(b, 0, nb) : NULL;

		if (z)
			na = (size_t)(z - a);
		if (w)
			nb = (size_t)(w - b);
	}
	return na == nb && (na == 0 || memcmp(a, b, na) == 0);
}

static int frame_ref_same(const struct sp_frame *a, const struct sp_frame *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case SP_FRAME_SEND:
		return a->u.send.to_ok == b->u.send.to_ok &&
		       memcmp(a->u.send.to, b->u.send.to, SP_KEY_LEN) == 0 &&
		       a->u.send.client_id == b->u.send.client_id && a->u.send.flags == b->u.send.flags;
	case SP_FRAME_SEND_RESULT:
		return a->u.send_result.client_id == b->u.send_result.client_id &&
		       (uint32_t)a->u.send_result.status == (uint32_t)b->u.send_result.status &&
		       a->u.send_result.seq == b->u.send_result.seq;
	case SP_FRAME_DELIVER:
		return a->u.deliver.seq == b->u.deliver.seq;
	case SP_FRAME_ACK:
		return a->u.ack.count == b->u.ack.count &&
		       memcmp(a->u.ack.seqs, b->u.ack.seqs, a->u.ack.count * sizeof(uint64_t)) == 0;
	case SP_FRAME_DRAINED:
		return a->u.drained.count == b->u.drained.count;
	case SP_FRAME_PING:
	case SP_FRAME_PONG:
		return a->u.ping.id == b->u.ping.id;
	case SP_FRAME_GOAWAY:
		return (uint32_t)a->u.goaway.code == (uint32_t)b->u.goaway.code;
	case SP_FRAME_LIST_PUT:
	case SP_FRAME_LIST_FETCH:
	case SP_FRAME_LIST_RESULT:
	case SP_FRAME_LIST_CHANGED:
		return a->u.list.account_ok == b->u.list.account_ok &&
		       memcmp(a->u.list.account, b->u.list.account, SP_ACCOUNT_LEN) == 0 &&
		       a->u.list.client_id == b->u.list.client_id &&
		       (uint32_t)a->u.list.status == (uint32_t)b->u.list.status &&
		       a->u.list.version == b->u.list.version && a->u.list.list_len == b->u.list.list_len;
	case SP_FRAME_PUSH_REGISTER: {
		const struct sp_frame_push_register *x = &a->u.push_register, *y = &b->u.push_register;

		return x->id == y->id && frame_ref_same_bytes(x->endpoint, x->endpoint_len, y->endpoint,
						    y->endpoint_len, true) &&
		       frame_ref_same_bytes(x->p256dh, x->p256dh_len, y->p256dh, y->p256dh_len, false) &&
		       frame_ref_same_bytes(x->auth, x->auth_len, y->auth, y->auth_len, false);
	}
	case SP_FRAME_PUSH_REMOVE:
		return a->u.push_remove.id == b->u.push_remove.id;
	case SP_FRAME_LOG_FETCH:
	case SP_FRAME_LOG_REPLY:
		return a->u.log.client_id == b->u.log.client_id && a->u.log.first == b->u.log.first &&
		       a->u.log.second == b->u.log.second && a->u.log.leaf == b->u.log.leaf &&
		       (uint32_t)a->u.log.status == (uint32_t)b->u.log.status &&
		       a->u.log.leaf_len == b->u.log.leaf_len && a->u.log.log_key_ok == b->u.log.log_key_ok &&
		       memcmp(a->u.log.log_key, b->u.log.log_key, sizeof(a->u.log.log_key)) == 0;
	case SP_FRAME_PREKEY_UPLOAD:
	case SP_FRAME_PREKEY_RESULT:
	case SP_FRAME_PREKEY_FETCH:
	case SP_FRAME_PREKEY_BUNDLE:
	case SP_FRAME_PREKEY_LOW:
		return a->u.prekey.client_id == b->u.prekey.client_id &&
		       (uint32_t)a->u.prekey.status == (uint32_t)b->u.prekey.status &&
		       a->u.prekey.device_ok == b->u.prekey.device_ok &&
		       memcmp(a->u.prekey.device, b->u.prekey.device, SP_KEY_LEN) == 0 &&
		       a->u.prekey.count == b->u.prekey.count;
	case SP_FRAME_PUSH_RESULT:
		return a->u.push_result.id == b->u.push_result.id &&
		       (uint32_t)a->u.push_result.status == (uint32_t)b->u.push_result.status;
	case SP_FRAME_SET_ACCESS:
		return a->u.set_access.client_id == b->u.set_access.client_id &&
		       frame_ref_same_bytes(a->u.set_access.access_key, a->u.set_access.access_key_len,
				  b->u.set_access.access_key, b->u.set_access.access_key_len, false) &&
		       a->u.set_access.flags == b->u.set_access.flags;
	case SP_FRAME_ACCESS_RESULT:
		return a->u.access_result.client_id == b->u.access_result.client_id &&
		       (uint32_t)a->u.access_result.status == (uint32_t)b->u.access_result.status;
	case SP_FRAME_FANOUT_BEGIN:
	case SP_FRAME_FANOUT_COPY:
	case SP_FRAME_FANOUT_RESULT:
		return a->u.fanout.key_ok == b->u.fanout.key_ok &&
		       memcmp(a->u.fanout.key, b->u.fanout.key, SP_KEY_LEN) == 0 &&
		       a->u.fanout.group_id == b->u.fanout.group_id &&
		       a->u.fanout.version == b->u.fanout.version &&
		       a->u.fanout.count == b->u.fanout.count &&
		       (uint32_t)a->u.fanout.status == (uint32_t)b->u.fanout.status &&
		       a->u.fanout.missing == b->u.fanout.missing && a->u.fanout.stale == b->u.fanout.stale;
	case SP_FRAME_ANON_SEND:
		return a->u.anon_send.to_ok == b->u.anon_send.to_ok &&
		       memcmp(a->u.anon_send.to, b->u.anon_send.to, SP_KEY_LEN) == 0 &&
		       frame_ref_same_bytes(a->u.anon_send.access_key, a->u.anon_send.access_key_len,
				  b->u.anon_send.access_key, b->u.anon_send.access_key_len, false) &&
		       a->u.anon_send.client_id == b->u.anon_send.client_id &&
		       a->u.anon_send.flags == b->u.anon_send.flags;
	default:
		return 0;
	}
}

/* A varint for frame_ref_kind_members; 0 if it does not end within the bytes. */
static size_t frame_ref_varint(const uint8_t *p, size_t n, uint64_t *v)
{
	*v = 0;
	for (size_t i = 0; i < n && i < 10; i++) {
		*v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80))
			return i + 1;
	}
	return 0;
}

/* How many top-level fields of a header protobuf-c accepted are members of
 * the kind oneof (numbers 1..8). Only called on bytes protobuf-c parsed, so
 * a plain walk suffices. */
static unsigned frame_ref_kind_members(const uint8_t *h, size_t n)
{
	unsigned count = 0;
	size_t off = 0;

	while (off < n) {
		uint64_t tag, len;
		size_t k = frame_ref_varint(h + off, n - off, &tag);

		if (!k)
			return count;
		off += k;
		switch (tag & 7) {
		case 0:
			k = frame_ref_varint(h + off, n - off, &len);
			if (!k)
				return count;
			off += k;
			break;
		case 1:
			off += 8;
			break;
		case 2:
			k = frame_ref_varint(h + off, n - off, &len);
			if (!k || len > n - off - k)
				return count;
			off += k + (size_t)len;
			break;
		case 5:
			off += 4;
			break;
		default:
			return count;
		}
		if (((tag >> 3) >= 1 && (tag >> 3) <= SP_FRAME_TYPE_MAX) ||
		    ((tag >> 3) >= SP_FRAME_PUSH_REGISTER && (tag >> 3) <= SP_FRAME_PUSH_RESULT) ||
		    ((tag >> 3) >= SP_FRAME_LOG_FETCH && (tag >> 3) <= SP_FRAME_ANON_SEND) ||
		    ((tag >> 3) >= SP_FRAME_PREKEY_UPLOAD && (tag >> 3) <= SP_FRAME_PREKEY_LOW))
			count++;
	}
	return count;
}

/* protobuf-c's reading of header bytes, under sp_frame_next's rules (and
 * PROTOCOL.md's "exactly one member of the oneof", which protobuf-c does
 * not check: it keeps the last one). */
static void frame_ref_account(struct sp_frame *f, const ProtobufCBinaryData *b)
{
	if (b->len == SP_ACCOUNT_LEN) {
		memcpy(f->u.list.account, b->data, SP_ACCOUNT_LEN);
		f->u.list.account_ok = 1;
	}
}

static void frame_ref_device(struct sp_frame *f, const ProtobufCBinaryData *b)
{
	if (b->len == SP_KEY_LEN) {
		memcpy(f->u.prekey.device, b->data, SP_KEY_LEN);
		f->u.prekey.device_ok = 1;
	}
}

static int frame_ref_decode(const uint8_t *h, size_t n, struct sp_frame *f)
{
	Sealpost__V1__FrameHeader *m = sealpost__v1__frame_header__unpack(NULL, n, h);
	int ret = 0;

	if (!m)
		return -EBADMSG;
	if (frame_ref_kind_members(h, n) > 1) {
		sealpost__v1__frame_header__free_unpacked(m, NULL);
		return -EBADMSG;
	}
	memset(f, 0, sizeof(*f));
	f->type = (enum sp_frame_type)m->kind_case;
	switch (m->kind_case) {
	case SEALPOST__V1__FRAME_HEADER__KIND_SEND:
		f->u.send.client_id = m->send->client_id;
		f->u.send.flags = m->send->flags;
		if (m->send->to.len == SP_KEY_LEN) {
			memcpy(f->u.send.to, m->send->to.data, SP_KEY_LEN);
			f->u.send.to_ok = 1;
		}
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_SEND_RESULT:
		f->u.send_result.client_id = m->send_result->client_id;
		f->u.send_result.status = (enum sp_status)m->send_result->status;
		f->u.send_result.seq = m->send_result->seq;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_DELIVER:
		f->u.deliver.seq = m->deliver->seq;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_ACK:
		if (m->ack->n_seqs > SP_ACK_SEQS_MAX) {
			ret = -EBADMSG;
			break;
		}
		f->u.ack.count = (uint32_t)m->ack->n_seqs;
		for (size_t i = 0; i < m->ack->n_seqs; i++)
			f->u.ack.seqs[i] = m->ack->seqs[i];
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_DRAINED:
		f->u.drained.count = m->drained->count;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_PING:
		f->u.ping.id = m->ping->id;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_PONG:
		f->u.ping.id = m->pong->id;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_GOAWAY:
		f->u.goaway.code = (enum sp_status)m->goaway->code;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_LIST_PUT:
		frame_ref_account(f, &m->list_put->account);
		f->u.list.client_id = m->list_put->client_id;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_LIST_FETCH:
		frame_ref_account(f, &m->list_fetch->account);
		f->u.list.client_id = m->list_fetch->client_id;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_LIST_RESULT:
		frame_ref_account(f, &m->list_result->account);
		f->u.list.client_id = m->list_result->client_id;
		f->u.list.status = (enum sp_status)m->list_result->status;
		f->u.list.version = m->list_result->version;
		f->u.list.list_len = m->list_result->list_len;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_LIST_CHANGED:
		frame_ref_account(f, &m->list_changed->account);
		f->u.list.version = m->list_changed->version;
		f->u.list.list_len = m->list_changed->list_len;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_PUSH_REGISTER: {
		/* Copies: the unpacked message is freed below. */
		static uint8_t ep[SP_FRAME_HEADER_MAX], pk[SP_FRAME_HEADER_MAX], au[SP_FRAME_HEADER_MAX];
		size_t elen = strlen(m->push_register->endpoint);

		memcpy(ep, m->push_register->endpoint, elen);
		/* protobuf-c leaves absent bytes fields NULL: memcpy from NULL is
		 * undefined even for 0 bytes. */
		if (m->push_register->p256dh.len)
			memcpy(pk, m->push_register->p256dh.data, m->push_register->p256dh.len);
		if (m->push_register->auth.len)
			memcpy(au, m->push_register->auth.data, m->push_register->auth.len);
		f->u.push_register.endpoint = ep;
		f->u.push_register.endpoint_len = elen;
		f->u.push_register.p256dh = pk;
		f->u.push_register.p256dh_len = m->push_register->p256dh.len;
		f->u.push_register.auth = au;
		f->u.push_register.auth_len = m->push_register->auth.len;
		f->u.push_register.id = m->push_register->id;
		break;
	}
	case SEALPOST__V1__FRAME_HEADER__KIND_PUSH_REMOVE:
		f->u.push_remove.id = m->push_remove->id;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_LOG_FETCH:
		f->u.log.client_id = m->log_fetch->client_id;
		f->u.log.first = m->log_fetch->first;
		f->u.log.second = m->log_fetch->second;
		f->u.log.leaf = m->log_fetch->leaf;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_LOG_REPLY:
		f->u.log.client_id = m->log_reply->client_id;
		f->u.log.status = (enum sp_status)m->log_reply->status;
		f->u.log.leaf_len = m->log_reply->leaf_len;
		if (m->log_reply->log_key.len == sizeof(f->u.log.log_key)) {
			memcpy(f->u.log.log_key, m->log_reply->log_key.data, sizeof(f->u.log.log_key));
			f->u.log.log_key_ok = 1;
		}
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_PUSH_RESULT:
		f->u.push_result.id = m->push_result->id;
		f->u.push_result.status = (enum sp_status)m->push_result->status;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_PREKEY_UPLOAD:
		f->u.prekey.client_id = m->prekey_upload->client_id;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_PREKEY_RESULT:
		f->u.prekey.client_id = m->prekey_result->client_id;
		f->u.prekey.status = (enum sp_status)m->prekey_result->status;
		f->u.prekey.count = m->prekey_result->count;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_PREKEY_FETCH:
		f->u.prekey.client_id = m->prekey_fetch->client_id;
		frame_ref_device(f, &m->prekey_fetch->device);
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_PREKEY_BUNDLE:
		f->u.prekey.client_id = m->prekey_bundle->client_id;
		f->u.prekey.status = (enum sp_status)m->prekey_bundle->status;
		frame_ref_device(f, &m->prekey_bundle->device);
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_PREKEY_LOW:
		f->u.prekey.count = m->prekey_low->count;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_SET_ACCESS: {
		/* A copy: the unpacked message is freed below. */
		static uint8_t ak[SP_FRAME_HEADER_MAX];

		if (m->set_access->access_key.len)
			memcpy(ak, m->set_access->access_key.data, m->set_access->access_key.len);
		f->u.set_access.client_id = m->set_access->client_id;
		f->u.set_access.access_key = ak;
		f->u.set_access.access_key_len = m->set_access->access_key.len;
		f->u.set_access.flags = m->set_access->flags;
		break;
	}
	case SEALPOST__V1__FRAME_HEADER__KIND_ACCESS_RESULT:
		f->u.access_result.client_id = m->access_result->client_id;
		f->u.access_result.status = (enum sp_status)m->access_result->status;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_FANOUT_BEGIN:
		if (m->fanout_begin->account.len == SP_KEY_LEN) {
			memcpy(f->u.fanout.key, m->fanout_begin->account.data, SP_KEY_LEN);
			f->u.fanout.key_ok = 1;
		}
		f->u.fanout.group_id = m->fanout_begin->group_id;
		f->u.fanout.version = m->fanout_begin->version;
		f->u.fanout.count = m->fanout_begin->count;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_FANOUT_COPY:
		if (m->fanout_copy->to.len == SP_KEY_LEN) {
			memcpy(f->u.fanout.key, m->fanout_copy->to.data, SP_KEY_LEN);
			f->u.fanout.key_ok = 1;
		}
		f->u.fanout.group_id = m->fanout_copy->group_id;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_FANOUT_RESULT:
		f->u.fanout.group_id = m->fanout_result->group_id;
		f->u.fanout.status = (enum sp_status)m->fanout_result->status;
		f->u.fanout.version = m->fanout_result->version;
		f->u.fanout.missing = m->fanout_result->missing;
		f->u.fanout.stale = m->fanout_result->stale;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_ANON_SEND: {
		static uint8_t tk[SP_FRAME_HEADER_MAX];

		if (m->anon_send->to.len == SP_KEY_LEN) {
			memcpy(f->u.anon_send.to, m->anon_send->to.data, SP_KEY_LEN);
			f->u.anon_send.to_ok = 1;
		}
		if (m->anon_send->access_key.len)
			memcpy(tk, m->anon_send->access_key.data, m->anon_send->access_key.len);
		f->u.anon_send.access_key = tk;
		f->u.anon_send.access_key_len = m->anon_send->access_key.len;
		f->u.anon_send.client_id = m->anon_send->client_id;
		f->u.anon_send.flags = m->anon_send->flags;
		break;
	}
	default:
		ret = -EBADMSG;
	}
	sealpost__v1__frame_header__free_unpacked(m, NULL);
	return ret;
}

#endif
