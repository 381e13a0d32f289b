/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_frame.c: frame prefix and the FrameHeader protobuf.
 *
 * FrameHeader is decoded and encoded by hand, following the protobuf encoding
 * spec (the hellos go through protobuf-c: sp_hello.c).
 *
 * Why: measured on the development VM (RelWithDebInfo, 2 vCPU Xeon),
 * protobuf_c_message_unpack with a stack arena took ~180 ns to decode one
 * Send header and get_packed_size + pack ~190 ns to encode one, so a relayed
 * envelope (Send in, Deliver and SendResult out) spent ~550 ns in protobuf-c,
 * more than the ~400 ns AEAD of a small transport message. The schema of a
 * frame header is tiny and fixed; the hand codec decodes the same Send
 * header in ~50 ns and encodes it in ~15 ns, with no allocation at all.
 *
 * The bytes are standard protobuf: the encoder writes exactly what protobuf-c
 * packs (fields in number order, proto3 defaults omitted, Ack.seqs packed),
 * and the decoder accepts exactly what protobuf-c's unpack accepts, with the
 * same result: unknown fields skipped, a known field with the wrong wire type
 * refused, the last value of a scalar wins, repeated seqs concatenate across
 * packed and unpacked runs. One deliberate difference: a header with more
 * than one member of the FrameHeader oneof (two kinds, or one kind twice),
 * which protobuf reads as "the last one wins", is refused (PROTOCOL.md 5:
 * exactly one). tests/unit/test_frame.c and tests/fuzz/fuzz_frame.c check
 * both directions against protobuf-c.
 *
 * No protobuf type leaves this file.
 */
#include "sp_frame.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "sealpost.pb-c.h"
#include "sp_be.h"

/* ---- the enums in sp_limits.h are the wire values ------------------------ */

#define SP_STATUS(id, value, name, label) \
	_Static_assert((int)SP_STATUS_##id == (int)SEALPOST__V1__STATUS__STATUS_##id, \
		       "sp_status differs from proto Status: " #id);
#include "sp_reasons.def"

#define SAME_KIND(x, y) \
	_Static_assert((int)SP_FRAME_##x == (int)SEALPOST__V1__FRAME_HEADER__KIND_##y, \
		       "sp_frame_type differs from FrameHeader field number: " #x)
SAME_KIND(NONE, _NOT_SET);
SAME_KIND(SEND, SEND);
SAME_KIND(SEND_RESULT, SEND_RESULT);
SAME_KIND(DELIVER, DELIVER);
SAME_KIND(ACK, ACK);
SAME_KIND(DRAINED, DRAINED);
SAME_KIND(PING, PING);
SAME_KIND(PONG, PONG);
SAME_KIND(GOAWAY, GOAWAY);
SAME_KIND(LIST_PUT, LIST_PUT);
SAME_KIND(LIST_FETCH, LIST_FETCH);
SAME_KIND(LIST_RESULT, LIST_RESULT);
SAME_KIND(LIST_CHANGED, LIST_CHANGED);
SAME_KIND(FANOUT_BEGIN, FANOUT_BEGIN);
SAME_KIND(FANOUT_COPY, FANOUT_COPY);
SAME_KIND(FANOUT_RESULT, FANOUT_RESULT);
_Static_assert((int)SP_FANOUT_COPIES_MAX == (int)SP_DEVLIST_DEVICES_MAX,
	       "a group has at most one copy per device of a list");
SAME_KIND(LOG_FETCH, LOG_FETCH);
SAME_KIND(LOG_REPLY, LOG_REPLY);
SAME_KIND(PUSH_REGISTER, PUSH_REGISTER);
SAME_KIND(PUSH_REMOVE, PUSH_REMOVE);
SAME_KIND(PUSH_RESULT, PUSH_RESULT);
SAME_KIND(SET_ACCESS, SET_ACCESS);
SAME_KIND(ACCESS_RESULT, ACCESS_RESULT);
SAME_KIND(ANON_SEND, ANON_SEND);
SAME_KIND(PREKEY_UPLOAD, PREKEY_UPLOAD);
SAME_KIND(PREKEY_RESULT, PREKEY_RESULT);
SAME_KIND(PREKEY_FETCH, PREKEY_FETCH);
SAME_KIND(PREKEY_BUNDLE, PREKEY_BUNDLE);
SAME_KIND(PREKEY_LOW, PREKEY_LOW);

/* ---- the protobuf encoding of FrameHeader, by hand ----------------------- */

enum wire_type { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

struct reader {
	const uint8_t *p, *end;
};

/* One field as read from the wire: the number, and the value for its wire type. */
struct field {
	uint32_t num;
	unsigned wt;
	uint64_t v;          /* WT_VARINT */
	const uint8_t *data; /* WT_LEN */
	size_t len;          /* WT_LEN */
};

/*
 * A varint of at most max bytes. Bits beyond 64 are dropped, as every
 * protobuf implementation does for a 10-byte varint.
 */
static int get_varint(struct reader *r, unsigned max, uint64_t *out)
{
	uint64_t v = 0;

	/* Tags and small lengths are one byte: the common case first. */
	if (r->p < r->end && !(*r->p & 0x80)) {
		*out = *r->p++;
		return 0;
	}
	for (unsigned i = 0; i < max; i++) {
		uint8_t b;

		if (r->p == r->end)
			return -EBADMSG;
		b = *r->p++;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return -EBADMSG;
}

/*
 * Reads the next field. Mirrors protobuf-c 1.4's limits exactly, so both
 * decoders accept the same inputs: tags of at most 5 bytes, varints of at most
 * 10, length prefixes of at most 5, groups and wire types
 * 6 and 7 refused, a first tag byte below 8 (field 0) refused.
 */
static int next_field(struct reader *r, struct field *fl)
{
	uint64_t tag, len;

	/* Field number 0 does not exist; protobuf-c refuses it when the first
	 * tag byte says so (an overlong tag that decodes to 0 is an unknown
	 * field to protobuf-c, and so it is here). */
	if (r->p < r->end && (*r->p & 0xf8) == 0)
		return -EBADMSG;
	if (get_varint(r, 5, &tag) < 0)
		return -EBADMSG;
	fl->num = (uint32_t)(tag >> 3);
	fl->wt = (unsigned)(tag & 7);
	switch (fl->wt) {
	case WT_VARINT:
		return get_varint(r, 10, &fl->v);
	case WT_I64:
		if (r->end - r->p < 8)
			return -EBADMSG;
		r->p += 8;
		return 0;
	case WT_LEN:
		if (get_varint(r, 5, &len) < 0)
			return -EBADMSG;
		if (len > (size_t)(r->end - r->p))
			return -EBADMSG;
		fl->data = r->p;
		fl->len = (size_t)len;
		r->p += len;
		return 0;
	case WT_I32:
		if (r->end - r->p < 4)
			return -EBADMSG;
		r->p += 4;
		return 0;
	default:
		return -EBADMSG;
	}
}

/* A known scalar field must arrive as a varint (protobuf-c refuses otherwise). */
#define WANT_VARINT(fl) do { if ((fl)->wt != WT_VARINT) return -EBADMSG; } while (0)

static void ack_append(struct sp_frame *f, uint64_t seq, uint32_t *total)
{
	/* Keep counting past the limit: the verdict is on the final count. */
	if (*total < SP_ACK_SEQS_MAX)
		f->u.ack.seqs[*total] = seq;
	(*total)++;
}

static bool is_list(enum sp_frame_type t)
{
	return t >= SP_FRAME_LIST_PUT && t <= SP_FRAME_LIST_CHANGED;
}

/*
 * One field of a list frame, under the numbering the four share (1
 * account, 2 client_id, 3 status, 4 version, 5 list_len): a field a member
 * does not define is unknown to protobuf, so skipped. The account is
 * remembered in *acc (the last one wins, as in protobuf).
 */
static int parse_list_field(struct sp_frame *f, enum sp_frame_type kind, const struct field *fl,
			    const uint8_t **acc, size_t *acc_len)
{
	bool req = kind == SP_FRAME_LIST_PUT || kind == SP_FRAME_LIST_FETCH;
	bool changed = kind == SP_FRAME_LIST_CHANGED;

	switch (fl->num) {
	case 1:
		if (fl->wt != WT_LEN)
			return -EBADMSG;
		*acc = fl->data;
		*acc_len = fl->len;
		return 0;
	case 2:
		if (changed)
			return 0;
		WANT_VARINT(fl);
		f->u.list.client_id = fl->v;
		return 0;
	case 3:
		if (req || changed)
			return 0;
		WANT_VARINT(fl);
		f->u.list.status = (enum sp_status)(int32_t)(uint32_t)fl->v;
		return 0;
	case 4:
		if (req)
			return 0;
		WANT_VARINT(fl);
		f->u.list.version = fl->v;
		return 0;
	case 5:
		if (req)
			return 0;
		WANT_VARINT(fl);
		f->u.list.list_len = (uint32_t)fl->v;
		return 0;
	default:
		return 0;
	}
}

static bool is_log(enum sp_frame_type t)
{
	return t == SP_FRAME_LOG_FETCH || t == SP_FRAME_LOG_REPLY;
}

static bool is_prekey(uint32_t t)
{
	return t >= SP_FRAME_PREKEY_UPLOAD && t <= SP_FRAME_PREKEY_LOW;
}

/* A frame type this version knows (others are unknown fields, skipped). */
static bool known_kind(uint32_t num)
{
	return (num >= SP_FRAME_SEND && num <= SP_FRAME_TYPE_MAX) || is_log((enum sp_frame_type)num) ||
	       (num >= SP_FRAME_PUSH_REGISTER && num <= SP_FRAME_PUSH_RESULT) ||
	       (num >= SP_FRAME_SET_ACCESS && num <= SP_FRAME_ANON_SEND) || is_prekey(num);
}

/* Which of the shared prekey fields (1..4) a member defines, as a bit mask
 * (bit n = field n): the others are unknown to protobuf, so skipped. */
static unsigned prekey_fields(enum sp_frame_type kind)
{
	switch (kind) {
	case SP_FRAME_PREKEY_UPLOAD:
		return 1u << 1;
	case SP_FRAME_PREKEY_RESULT:
		return 1u << 1 | 1u << 2 | 1u << 4;
	case SP_FRAME_PREKEY_FETCH:
		return 1u << 1 | 1u << 3;
	case SP_FRAME_PREKEY_BUNDLE:
		return 1u << 1 | 1u << 2 | 1u << 3;
	default: /* PREKEY_LOW */
		return 1u << 4;
	}
}

/* One field of a prekey frame; the device is remembered in *dev (the last
 * one wins). */
static int parse_prekey_field(struct sp_frame *f, enum sp_frame_type kind, const struct field *fl,
			      const uint8_t **dev, size_t *dev_len)
{
	if (fl->num < 1 || fl->num > 4 || !(prekey_fields(kind) & (1u << fl->num)))
		return 0;
	if (fl->num == 3) {
		if (fl->wt != WT_LEN)
			return -EBADMSG;
		*dev = fl->data;
		*dev_len = fl->len;
		return 0;
	}
	WANT_VARINT(fl);
	if (fl->num == 1)
		f->u.prekey.client_id = fl->v;
	else if (fl->num == 2)
		f->u.prekey.status = (enum sp_status)(int32_t)(uint32_t)fl->v;
	else
		f->u.prekey.count = (uint32_t)fl->v;
	return 0;
}

/* One field of LogFetch (1 client_id, 2 first, 3 second, 4 leaf) or
 * LogReply (1 client_id, 2 status, 3 log_key, 4 leaf_len). */
static int parse_log_field(struct sp_frame *f, enum sp_frame_type kind, const struct field *fl,
			   const uint8_t **key, size_t *key_len)
{
	bool fetch = kind == SP_FRAME_LOG_FETCH;

	if (fl->num < 1 || fl->num > 4)
		return 0;
	if (!fetch && fl->num == 3) {
		if (fl->wt != WT_LEN)
			return -EBADMSG;
		*key = fl->data;
		*key_len = fl->len;
		return 0;
	}
	WANT_VARINT(fl);
	switch (fl->num) {
	case 1:
		f->u.log.client_id = fl->v;
		break;
	case 2:
		if (fetch)
			f->u.log.first = fl->v;
		else
			f->u.log.status = (enum sp_status)(int32_t)(uint32_t)fl->v;
		break;
	case 3:
		f->u.log.second = fl->v;
		break;
	default:
		if (fetch)
			f->u.log.leaf = fl->v;
		else
			f->u.log.leaf_len = (uint32_t)fl->v;
		break;
	}
	return 0;
}

static bool is_fanout(enum sp_frame_type t)
{
	return t >= SP_FRAME_FANOUT_BEGIN && t <= SP_FRAME_FANOUT_RESULT;
}

/* One field of FanoutBegin (1 account, 2 group_id, 3 version, 4 count),
 * FanoutCopy (1 to, 2 group_id) or FanoutResult (1 group_id, 2 status,
 * 3 version, 4 missing, 5 stale). The key is remembered in *key. */
static int parse_fanout_field(struct sp_frame *f, enum sp_frame_type kind, const struct field *fl,
			      const uint8_t **key, size_t *key_len)
{
	if (kind != SP_FRAME_FANOUT_RESULT) {
		if (fl->num == 1) {
			if (fl->wt != WT_LEN)
				return -EBADMSG;
			*key = fl->data;
			*key_len = fl->len;
			return 0;
		}
		if (fl->num == 2 || (kind == SP_FRAME_FANOUT_BEGIN && (fl->num == 3 || fl->num == 4))) {
			WANT_VARINT(fl);
			if (fl->num == 2)
				f->u.fanout.group_id = fl->v;
			else if (fl->num == 3)
				f->u.fanout.version = fl->v;
			else
				f->u.fanout.count = (uint32_t)fl->v;
		}
		return 0;
	}
	if (fl->num < 1 || fl->num > 5)
		return 0;
	WANT_VARINT(fl);
	switch (fl->num) {
	case 1:
		f->u.fanout.group_id = fl->v;
		break;
	case 2:
		f->u.fanout.status = (enum sp_status)(int32_t)(uint32_t)fl->v;
		break;
	case 3:
		f->u.fanout.version = fl->v;
		break;
	case 4:
		f->u.fanout.missing = (uint32_t)fl->v;
		break;
	default:
		f->u.fanout.stale = (uint32_t)fl->v;
		break;
	}
	return 0;
}

/*
 * One member of the FrameHeader oneof. A later member replaces an earlier one
 * entirely (protobuf-c's oneof rule; not merged), so the fields start from
 * their defaults every time.
 */
static int parse_kind(struct sp_frame *f, enum sp_frame_type kind, const uint8_t *p, size_t n,
		      uint32_t *ack_total)
{
	struct reader r = { p, p + n };
	const uint8_t *to = NULL;
	size_t to_len = 0;
	struct field fl;
	int ret;

	/* Every member but ack.seqs (written as read) fits in list's or
	 * push_register's size; log's is cleared apart. */
	_Static_assert(sizeof(f->u.list) >= sizeof(f->u.send), "the largest fixed member");
	_Static_assert(sizeof(f->u.list) >= sizeof(f->u.prekey), "the largest fixed member");
	memset(&f->u, 0, sizeof(f->u.list) > sizeof(f->u.push_register) ? sizeof(f->u.list)
									  : sizeof(f->u.push_register));
	if (is_log(kind))
		memset(&f->u.log, 0, sizeof(f->u.log));
	if (kind == SP_FRAME_ANON_SEND)
		memset(&f->u.anon_send, 0, sizeof(f->u.anon_send));
	if (is_fanout(kind))
		memset(&f->u.fanout, 0, sizeof(f->u.fanout));
	*ack_total = 0;
	while (r.p < r.end) {
		ret = next_field(&r, &fl);
		if (ret < 0)
			return ret;
		if (is_fanout(kind)) {
			ret = parse_fanout_field(f, kind, &fl, &to, &to_len);
			if (ret < 0)
				return ret;
			continue;
		}
		if (is_log(kind)) {
			ret = parse_log_field(f, kind, &fl, &to, &to_len);
			if (ret < 0)
				return ret;
			continue;
		}
		if (is_list(kind)) {
			ret = parse_list_field(f, kind, &fl, &to, &to_len);
			if (ret < 0)
				return ret;
			continue;
		}
		if (is_prekey(kind)) {
			ret = parse_prekey_field(f, kind, &fl, &to, &to_len);
			if (ret < 0)
				return ret;
			continue;
		}
		if (fl.num != 1 && !(kind == SP_FRAME_SEND || kind == SP_FRAME_SEND_RESULT ||
				     kind == SP_FRAME_PUSH_REGISTER || kind == SP_FRAME_PUSH_RESULT ||
				     kind == SP_FRAME_SET_ACCESS || kind == SP_FRAME_ACCESS_RESULT ||
				     kind == SP_FRAME_ANON_SEND))
			continue;
		switch (kind) {
		case SP_FRAME_SET_ACCESS:
			/* 1 client_id, 2 access_key, 3 flags */
			if (fl.num == 2) {
				if (fl.wt != WT_LEN)
					return -EBADMSG;
				f->u.set_access.access_key = fl.data;
				f->u.set_access.access_key_len = fl.len;
			} else if (fl.num == 1 || fl.num == 3) {
				WANT_VARINT(&fl);
				if (fl.num == 1)
					f->u.set_access.client_id = fl.v;
				else
					f->u.set_access.flags = (uint32_t)fl.v;
			}
			break;
		case SP_FRAME_ACCESS_RESULT:
			if (fl.num == 1) {
				WANT_VARINT(&fl);
				f->u.access_result.client_id = fl.v;
			} else if (fl.num == 2) {
				WANT_VARINT(&fl);
				f->u.access_result.status = (enum sp_status)(int32_t)(uint32_t)fl.v;
			}
			break;
		case SP_FRAME_ANON_SEND:
			/* 1 to, 2 access_key, 3 client_id, 4 flags */
			if (fl.num == 1 || fl.num == 2) {
				if (fl.wt != WT_LEN)
					return -EBADMSG;
				if (fl.num == 1) {
					to = fl.data;
					to_len = fl.len;
				} else {
					f->u.anon_send.access_key = fl.data;
					f->u.anon_send.access_key_len = fl.len;
				}
			} else if (fl.num == 3 || fl.num == 4) {
				WANT_VARINT(&fl);
				if (fl.num == 3)
					f->u.anon_send.client_id = fl.v;
				else
					f->u.anon_send.flags = (uint32_t)fl.v;
			}
			break;
		case SP_FRAME_PUSH_REGISTER:
			if (fl.num >= 1 && fl.num <= 3) {
				if (fl.wt != WT_LEN)
					return -EBADMSG;
				if (fl.num == 1) {
					f->u.push_register.endpoint = fl.data;
					f->u.push_register.endpoint_len = fl.len;
				} else if (fl.num == 2) {
					f->u.push_register.p256dh = fl.data;
					f->u.push_register.p256dh_len = fl.len;
				} else {
					f->u.push_register.auth = fl.data;
					f->u.push_register.auth_len = fl.len;
				}
			} else if (fl.num == 4) {
				WANT_VARINT(&fl);
				f->u.push_register.id = fl.v;
			}
			break;
		case SP_FRAME_PUSH_REMOVE:
			WANT_VARINT(&fl);
			f->u.push_remove.id = fl.v;
			break;
		case SP_FRAME_PUSH_RESULT:
			if (fl.num == 1) {
				WANT_VARINT(&fl);
				f->u.push_result.id = fl.v;
			} else if (fl.num == 2) {
				WANT_VARINT(&fl);
				f->u.push_result.status = (enum sp_status)(int32_t)(uint32_t)fl.v;
			}
			break;
		case SP_FRAME_SEND:
			if (fl.num == 1) {
				if (fl.wt != WT_LEN)
					return -EBADMSG;
				to = fl.data;
				to_len = fl.len;
			} else if (fl.num == 2) {
				WANT_VARINT(&fl);
				f->u.send.client_id = fl.v;
			} else if (fl.num == 3) {
				WANT_VARINT(&fl);
				f->u.send.flags = (uint32_t)fl.v;
			}
			break;
		case SP_FRAME_SEND_RESULT:
			if (fl.num == 1) {
				WANT_VARINT(&fl);
				f->u.send_result.client_id = fl.v;
			} else if (fl.num == 2) {
				WANT_VARINT(&fl);
				/* Unknown values are kept as numbers (proto3 open enum). */
				f->u.send_result.status = (enum sp_status)(int32_t)(uint32_t)fl.v;
			} else if (fl.num == 3) {
				WANT_VARINT(&fl);
				f->u.send_result.seq = fl.v;
			}
			break;
		case SP_FRAME_ACK:
			if (fl.wt == WT_LEN) {
				/* packed, the proto3 default */
				struct reader pr = { fl.data, fl.data + fl.len };
				uint64_t v;

				while (pr.p < pr.end) {
					if (get_varint(&pr, 10, &v) < 0)
						return -EBADMSG;
					ack_append(f, v, ack_total);
				}
			} else {
				WANT_VARINT(&fl);
				ack_append(f, fl.v, ack_total);
			}
			break;
		case SP_FRAME_DELIVER:
		case SP_FRAME_DRAINED:
		case SP_FRAME_PING:
		case SP_FRAME_PONG:
			/* deliver.seq, drained.count, ping.id share the first word */
			WANT_VARINT(&fl);
			if (kind == SP_FRAME_DELIVER)
				f->u.deliver.seq = fl.v;
			else if (kind == SP_FRAME_DRAINED)
				f->u.drained.count = fl.v;
			else
				f->u.ping.id = fl.v;
			break;
		case SP_FRAME_GOAWAY:
			WANT_VARINT(&fl);
			f->u.goaway.code = (enum sp_status)(int32_t)(uint32_t)fl.v;
			break;
		default:
			return -EBADMSG;
		}
	}
	if (kind == SP_FRAME_SEND) {
		if (to_len == SP_KEY_LEN) {
			memcpy(f->u.send.to, to, SP_KEY_LEN);
			f->u.send.to_ok = 1;
		}
	}
	if (kind == SP_FRAME_ANON_SEND && to_len == SP_KEY_LEN) {
		memcpy(f->u.anon_send.to, to, SP_KEY_LEN);
		f->u.anon_send.to_ok = 1;
	}
	if (kind == SP_FRAME_LOG_REPLY && to_len == sizeof(f->u.log.log_key)) {
		memcpy(f->u.log.log_key, to, sizeof(f->u.log.log_key));
		f->u.log.log_key_ok = 1;
	}
	if (is_fanout(kind) && kind != SP_FRAME_FANOUT_RESULT && to_len == SP_KEY_LEN) {
		memcpy(f->u.fanout.key, to, SP_KEY_LEN);
		f->u.fanout.key_ok = 1;
	}
	if (is_prekey(kind) && to_len == SP_KEY_LEN) {
		memcpy(f->u.prekey.device, to, SP_KEY_LEN);
		f->u.prekey.device_ok = 1;
	}
	if (is_list(kind) && to_len == SP_ACCOUNT_LEN) {
		memcpy(f->u.list.account, to, SP_ACCOUNT_LEN);
		f->u.list.account_ok = 1;
	}
	return 0;
}

static int parse_header(struct sp_frame *f, const uint8_t *p, size_t n)
{
	struct reader r = { p, p + n };
	enum sp_frame_type kind = SP_FRAME_NONE;
	uint32_t ack_total = 0;
	struct field fl;
	int ret;

	while (r.p < r.end) {
		ret = next_field(&r, &fl);
		if (ret < 0)
			return ret;
		if (!known_kind(fl.num))
			continue; /* unknown field: skipped, as protobuf requires */
		if (fl.wt != WT_LEN)
			return -EBADMSG;
		/* Exactly one member of the oneof, once (PROTOCOL.md 5): a second
		 * one would be read by protobuf as "the last wins", and a header
		 * meaning two things to two parsers is refused instead. */
		if (kind != SP_FRAME_NONE)
			return -EBADMSG;
		kind = (enum sp_frame_type)fl.num;
		ret = parse_kind(f, kind, fl.data, fl.len, &ack_total);
		if (ret < 0)
			return ret;
	}
	if (kind == SP_FRAME_NONE)
		return -EBADMSG; /* no kind, or only kinds this version does not know */
	if (kind == SP_FRAME_ACK) {
		if (ack_total > SP_ACK_SEQS_MAX)
			return -EBADMSG;
		f->u.ack.count = ack_total;
	}
	f->type = kind;
	return 0;
}

static int has_body(enum sp_frame_type t)
{
	return t == SP_FRAME_SEND || t == SP_FRAME_DELIVER || t == SP_FRAME_LIST_PUT ||
	       t == SP_FRAME_LIST_RESULT || t == SP_FRAME_LIST_CHANGED || t == SP_FRAME_LOG_REPLY ||
	       t == SP_FRAME_ANON_SEND || t == SP_FRAME_FANOUT_COPY || t == SP_FRAME_FANOUT_RESULT ||
	       t == SP_FRAME_PREKEY_UPLOAD || t == SP_FRAME_PREKEY_BUNDLE;
}

int sp_frame_next(const uint8_t *buf, size_t len, size_t *off, struct sp_frame *f)
{
	const uint8_t *p;
	size_t rem, hlen, blen;
	int ret;

	if (*off > len)
		return -EINVAL;
	rem = len - *off;
	if (rem == 0)
		return -ENODATA;
	if (rem < SP_FRAME_PREFIX_LEN)
		return -EBADMSG;
	p = buf + *off;
	hlen = sp_be_get16(p);
	blen = sp_be_get16(p + 2);
	if (hlen == 0)
		return -EBADMSG;
	/* body_len is not limited here beyond the transport message that holds
	 * it: a Send body above the broker's max_envelope is one refused
	 * envelope (ERR_TOO_LARGE), not a broken connection (PROTOCOL.md 5). */
	if (hlen > SP_FRAME_HEADER_MAX)
		return -EMSGSIZE;
	if (rem - SP_FRAME_PREFIX_LEN < hlen + blen)
		return -EBADMSG;

	ret = parse_header(f, p + SP_FRAME_PREFIX_LEN, hlen);
	if (ret < 0)
		return ret;
	if (has_body(f->type)) {
		f->body = p + SP_FRAME_PREFIX_LEN + hlen;
		f->body_len = blen;
	} else {
		if (blen != 0)
			return -EBADMSG;
		f->body = NULL;
		f->body_len = 0;
	}
	*off += SP_FRAME_PREFIX_LEN + hlen + blen;
	return 0;
}

/* ---- encode: canonical protobuf, byte for byte what protobuf-c packs ----- */

enum {
	/* Largest encoded member: a PushRegister at its limits (an Ack of 64
	 * ten-byte varints, with its packed field's tag and 2-byte length, is
	 * 643). */
	KIND_ACK_MAX = 1 + 2 + SP_ACK_SEQS_MAX * 10,
	KIND_PUSH_MAX = 1 + 2 + SP_PUSH_ENDPOINT_WIRE_MAX + 1 + 1 + SP_PUSH_P256DH_LEN + 1 + 1 +
			SP_PUSH_AUTH_LEN + 1 + 10,
	KIND_MAX = KIND_PUSH_MAX > KIND_ACK_MAX ? KIND_PUSH_MAX : KIND_ACK_MAX,
	/* FrameHeader around it: a tag of at most 2 bytes and a length of at most 2. */
	HEADER_ENC_MAX = 2 + 2 + KIND_MAX,
};
_Static_assert((int)HEADER_ENC_MAX <= (int)SP_FRAME_HEADER_MAX, "every frame header fits the wire limit");

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* proto3: a scalar equal to its default (0) is not written. */
static uint8_t *put_u64_field(uint8_t *p, unsigned num, uint64_t v)
{
	if (v == 0)
		return p;
	*p++ = (uint8_t)(num << 3 | WT_VARINT);
	return put_varint(p, v);
}

/* An enum is an int32 on the wire: negative values sign-extend to 10 bytes. */
static uint8_t *put_enum_field(uint8_t *p, unsigned num, enum sp_status s)
{
	int32_t v = (int32_t)(uint32_t)s;

	return put_u64_field(p, num, (uint64_t)(int64_t)v);
}

/* A length-delimited field, written only when non-empty (proto3). */
static uint8_t *put_bytes_field(uint8_t *p, unsigned num, const uint8_t *d, size_t n)
{
	if (n == 0)
		return p;
	*p++ = (uint8_t)(num << 3 | WT_LEN);
	p = put_varint(p, n);
	memcpy(p, d, n);
	return p + n;
}

/* Encodes the oneof member's message body into out; its length, or -EINVAL. */
static int put_kind(const struct sp_frame *f, uint8_t out[KIND_MAX])
{
	uint8_t *p = out;

	switch (f->type) {
	case SP_FRAME_SEND:
		/* Always the 32 bytes: to_ok only describes what was received. */
		*p++ = 1 << 3 | WT_LEN;
		*p++ = SP_KEY_LEN;
		memcpy(p, f->u.send.to, SP_KEY_LEN);
		p += SP_KEY_LEN;
		p = put_u64_field(p, 2, f->u.send.client_id);
		p = put_u64_field(p, 3, f->u.send.flags);
		break;
	case SP_FRAME_SEND_RESULT:
		p = put_u64_field(p, 1, f->u.send_result.client_id);
		p = put_enum_field(p, 2, f->u.send_result.status);
		p = put_u64_field(p, 3, f->u.send_result.seq);
		break;
	case SP_FRAME_DELIVER:
		p = put_u64_field(p, 1, f->u.deliver.seq);
		break;
	case SP_FRAME_ACK: {
		size_t n = 0;

		if (f->u.ack.count > SP_ACK_SEQS_MAX)
			return -EINVAL;
		if (f->u.ack.count == 0)
			break;
		for (uint32_t i = 0; i < f->u.ack.count; i++)
			n += varint_len(f->u.ack.seqs[i]);
		*p++ = 1 << 3 | WT_LEN;
		p = put_varint(p, n);
		for (uint32_t i = 0; i < f->u.ack.count; i++)
			p = put_varint(p, f->u.ack.seqs[i]);
		break;
	}
	case SP_FRAME_DRAINED:
		p = put_u64_field(p, 1, f->u.drained.count);
		break;
	case SP_FRAME_PING:
	case SP_FRAME_PONG:
		p = put_u64_field(p, 1, f->u.ping.id);
		break;
	case SP_FRAME_GOAWAY:
		p = put_enum_field(p, 1, f->u.goaway.code);
		break;
	case SP_FRAME_LIST_PUT:
	case SP_FRAME_LIST_FETCH:
	case SP_FRAME_LIST_RESULT:
	case SP_FRAME_LIST_CHANGED:
		/* Always the 32 bytes, as Send.to. */
		*p++ = 1 << 3 | WT_LEN;
		*p++ = SP_ACCOUNT_LEN;
		memcpy(p, f->u.list.account, SP_ACCOUNT_LEN);
		p += SP_ACCOUNT_LEN;
		if (f->type != SP_FRAME_LIST_CHANGED)
			p = put_u64_field(p, 2, f->u.list.client_id);
		if (f->type == SP_FRAME_LIST_RESULT)
			p = put_enum_field(p, 3, f->u.list.status);
		if (f->type == SP_FRAME_LIST_RESULT || f->type == SP_FRAME_LIST_CHANGED) {
			p = put_u64_field(p, 4, f->u.list.version);
			p = put_u64_field(p, 5, f->u.list.list_len);
		}
		break;
	case SP_FRAME_FANOUT_BEGIN:
	case SP_FRAME_FANOUT_COPY:
		/* Always the 32 bytes, as Send.to. */
		*p++ = 1 << 3 | WT_LEN;
		*p++ = SP_KEY_LEN;
		memcpy(p, f->u.fanout.key, SP_KEY_LEN);
		p += SP_KEY_LEN;
		p = put_u64_field(p, 2, f->u.fanout.group_id);
		if (f->type == SP_FRAME_FANOUT_BEGIN) {
			p = put_u64_field(p, 3, f->u.fanout.version);
			p = put_u64_field(p, 4, f->u.fanout.count);
		}
		break;
	case SP_FRAME_FANOUT_RESULT:
		p = put_u64_field(p, 1, f->u.fanout.group_id);
		p = put_enum_field(p, 2, f->u.fanout.status);
		p = put_u64_field(p, 3, f->u.fanout.version);
		p = put_u64_field(p, 4, f->u.fanout.missing);
		p = put_u64_field(p, 5, f->u.fanout.stale);
		break;
	case SP_FRAME_LOG_FETCH:
		p = put_u64_field(p, 1, f->u.log.client_id);
		p = put_u64_field(p, 2, f->u.log.first);
		p = put_u64_field(p, 3, f->u.log.second);
		p = put_u64_field(p, 4, f->u.log.leaf);
		break;
	case SP_FRAME_LOG_REPLY:
		p = put_u64_field(p, 1, f->u.log.client_id);
		p = put_enum_field(p, 2, f->u.log.status);
		*p++ = 3 << 3 | WT_LEN;
		*p++ = sizeof(f->u.log.log_key);
		memcpy(p, f->u.log.log_key, sizeof(f->u.log.log_key));
		p += sizeof(f->u.log.log_key);
		p = put_u64_field(p, 4, f->u.log.leaf_len);
		break;
	case SP_FRAME_PUSH_REGISTER: {
		const struct sp_frame_push_register *r = &f->u.push_register;

		if (r->endpoint_len > SP_PUSH_ENDPOINT_WIRE_MAX || r->p256dh_len > SP_PUSH_P256DH_LEN ||
		    r->auth_len > SP_PUSH_AUTH_LEN || (r->endpoint_len && !r->endpoint) ||
		    (r->p256dh_len && !r->p256dh) || (r->auth_len && !r->auth))
			return -EINVAL;
		p = put_bytes_field(p, 1, r->endpoint, r->endpoint_len);
		p = put_bytes_field(p, 2, r->p256dh, r->p256dh_len);
		p = put_bytes_field(p, 3, r->auth, r->auth_len);
		p = put_u64_field(p, 4, r->id);
		break;
	}
	case SP_FRAME_PUSH_REMOVE:
		p = put_u64_field(p, 1, f->u.push_remove.id);
		break;
	case SP_FRAME_PUSH_RESULT:
		p = put_u64_field(p, 1, f->u.push_result.id);
		p = put_enum_field(p, 2, f->u.push_result.status);
		break;
	case SP_FRAME_SET_ACCESS:
		if (f->u.set_access.access_key_len > SP_ACCESS_KEY_MAX ||
		    (f->u.set_access.access_key_len && !f->u.set_access.access_key))
			return -EINVAL;
		p = put_u64_field(p, 1, f->u.set_access.client_id);
		p = put_bytes_field(p, 2, f->u.set_access.access_key, f->u.set_access.access_key_len);
		p = put_u64_field(p, 3, f->u.set_access.flags);
		break;
	case SP_FRAME_ACCESS_RESULT:
		p = put_u64_field(p, 1, f->u.access_result.client_id);
		p = put_enum_field(p, 2, f->u.access_result.status);
		break;
	case SP_FRAME_ANON_SEND:
		if (f->u.anon_send.access_key_len > SP_ACCESS_KEY_MAX ||
		    (f->u.anon_send.access_key_len && !f->u.anon_send.access_key))
			return -EINVAL;
		/* Always the 32 bytes, as Send.to. */
		*p++ = 1 << 3 | WT_LEN;
		*p++ = SP_KEY_LEN;
		memcpy(p, f->u.anon_send.to, SP_KEY_LEN);
		p += SP_KEY_LEN;
		p = put_bytes_field(p, 2, f->u.anon_send.access_key, f->u.anon_send.access_key_len);
		p = put_u64_field(p, 3, f->u.anon_send.client_id);
		p = put_u64_field(p, 4, f->u.anon_send.flags);
		break;
	case SP_FRAME_PREKEY_UPLOAD:
	case SP_FRAME_PREKEY_RESULT:
	case SP_FRAME_PREKEY_FETCH:
	case SP_FRAME_PREKEY_BUNDLE:
	case SP_FRAME_PREKEY_LOW: {
		unsigned m = prekey_fields(f->type);

		if (m & 1u << 1)
			p = put_u64_field(p, 1, f->u.prekey.client_id);
		if (m & 1u << 2)
			p = put_enum_field(p, 2, f->u.prekey.status);
		if (m & 1u << 3) {
			/* Always the 32 bytes, as Send.to. */
			*p++ = 3 << 3 | WT_LEN;
			*p++ = SP_KEY_LEN;
			memcpy(p, f->u.prekey.device, SP_KEY_LEN);
			p += SP_KEY_LEN;
		}
		if (m & 1u << 4)
			p = put_u64_field(p, 4, f->u.prekey.count);
		break;
	}
	default:
		return -EINVAL;
	}
	return (int)(p - out);
}

size_t sp_frame_size(const struct sp_frame *f, size_t body_len)
{
	uint8_t kind[KIND_MAX];
	int n = put_kind(f, kind);

	if (n < 0)
		return 0;
	/* The member's tag: one byte for fields 1..15, two from 16 on. */
	return SP_FRAME_PREFIX_LEN + varint_len((uint64_t)f->type << 3 | WT_LEN) +
	       varint_len((size_t)n) + (size_t)n + body_len;
}

int sp_frame_put_header(uint8_t *buf, size_t cap, size_t *off, const struct sp_frame *f,
			size_t body_len)
{
	uint8_t kind[KIND_MAX];
	uint8_t *p;
	size_t hlen;
	int n;

	n = put_kind(f, kind);
	if (n < 0)
		return n;
	if (body_len != 0 && !has_body(f->type))
		return -EINVAL;
	if (body_len > SP_BODY_MAX)
		return -EMSGSIZE;
	/* the member's tag: two bytes from field 16 on (LogFetch is 24) */
	hlen = varint_len((uint64_t)f->type << 3 | WT_LEN) + varint_len((size_t)n) + (size_t)n;
	/* Room for the body too: the caller writes it next, unchecked. */
	if (*off > cap || cap - *off < SP_FRAME_PREFIX_LEN + hlen + body_len)
		return -EMSGSIZE;
	p = buf + *off;
	sp_be_put16(p, (uint16_t)hlen);
	sp_be_put16(p + 2, (uint16_t)body_len);
	p += SP_FRAME_PREFIX_LEN;
	p = put_varint(p, (uint64_t)f->type << 3 | WT_LEN);
	p = put_varint(p, (size_t)n);
	memcpy(p, kind, (size_t)n);
	*off += SP_FRAME_PREFIX_LEN + hlen;
	return 0;
}

int sp_frame_put(uint8_t *buf, size_t cap, size_t *off, const struct sp_frame *f)
{
	size_t at = *off;
	int ret;

	if (f->body_len != 0 && !f->body)
		return -EINVAL;
	ret = sp_frame_put_header(buf, cap, &at, f, f->body_len);
	if (ret < 0)
		return ret;
	if (f->body_len)
		memcpy(buf + at, f->body, f->body_len);
	*off = at + f->body_len;
	return 0;
}

const char *sp_status_name(enum sp_status s)
{
	switch (s) {
#define SP_STATUS(id, value, name, label) case SP_STATUS_##id: return name;
#include "sp_reasons.def"
	}
	return "unknown";
}
