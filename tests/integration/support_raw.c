/* SPDX-License-Identifier: Apache-2.0 */
/*
 * support_raw.c: a raw sealpost protocol client for integration tests
 * (contract in support_raw.h).
 */
#include "support_raw.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "sealpost.pb-c.h"
#include "sp_be.h"
#include "sp_clock.h"
#include "support.h"
#include "support_ws.h"

static int64_t now_ms(void)
{
	return (int64_t)sp_clock_mono_ms();
}

static void put_u16(uint8_t *p, size_t v)
{
	sp_be_put16(p, (uint16_t)v);
}

static size_t get_u16(const uint8_t *p)
{
	return sp_be_get16(p);
}

int sp_raw_init(struct sp_raw *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (sodium_init() < 0)
		return -ENOMEM;
	c->rx = malloc(SP_RAW_RX_CAP);
	if (!c->rx)
		return -ENOMEM;
	sp_noise_keypair(c->s_pub, c->s_priv);
	return 0;
}

void sp_raw_close(struct sp_raw *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->rx);
	c->rx = NULL;
	free(c->held);
	c->held = NULL;
	c->held_len = 0;
	free(c->ws_in);
	c->ws_in = NULL;
	c->ws_in_len = c->ws_in_off = 0;
	c->ws_mode = false;
	sp_noise_transport_wipe(&c->t);
	sodium_memzero(c->s_priv, sizeof(c->s_priv));
	c->established = false;
}

void sp_raw_disconnect(struct sp_raw *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->held);
	c->held = NULL;
	c->held_len = 0;
	c->rx_len = c->rx_off = 0;
	free(c->ws_in);
	c->ws_in = NULL;
	c->ws_in_len = c->ws_in_off = 0;
	c->ws_mode = false;
	c->ws_close_code = 0;
	sp_noise_transport_wipe(&c->t);
	c->established = false;
}

void sp_raw_abort(struct sp_raw *c)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (c->fd >= 0)
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	sp_raw_close(c);
}

int sp_raw_connect(struct sp_raw *c, uint16_t port)
{
	int fd = c->bind_src ? sp_it_tcp_connect_from(port, c->bind_src) : sp_it_tcp_connect(port);

	if (fd < 0)
		return fd;
	c->fd = fd;
	c->bytes_in = 0;
	return 0;
}

void sp_raw_preamble(uint8_t out[SP_PREAMBLE_LEN], uint8_t pattern)
{
	memcpy(out, SP_PREAMBLE_MAGIC, 4);
	out[4] = SP_PROTOCOL_VERSION;
	out[5] = pattern;
	out[6] = 0;
	out[7] = 0;
}

/* --- bytes ------------------------------------------------------------------- */

static int hold(struct sp_raw *c, const uint8_t *p, size_t len)
{
	uint8_t *n = realloc(c->held, c->held_len + len);

	if (!n)
		return -ENOMEM;
	memcpy(n + c->held_len, p, len);
	c->held = n;
	c->held_len += len;
	return 0;
}

static int send_all(struct sp_raw *c, const uint8_t *p, size_t len)
{
	if (c->ws_mode)
		return sp_ws_send_binary(c, p, len);
	return sp_raw_sock_send(c, p, len);
}

int sp_raw_sock_send(struct sp_raw *c, const uint8_t *p, size_t len)
{
	bool first = true;

	while (len) {
		size_t want = c->write_chunk && c->write_chunk < len ? c->write_chunk : len;
		ssize_t n;

		/* A pause between pieces, so they reach the broker as separate receives. */
		if (c->write_chunk && !first)
			usleep(200);
		first = false;
		n = send(c->fd, p, want, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return -ETIMEDOUT; /* SO_SNDTIMEO: the broker stopped reading */
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int sp_raw_send_bytes(struct sp_raw *c, const void *buf, size_t len)
{
	uint8_t *all;
	int ret;

	if (!c->held_len)
		return send_all(c, buf, len);
	/* What was held goes out in the same write as this. */
	ret = hold(c, buf, len);
	if (ret)
		return ret;
	all = c->held;
	len = c->held_len;
	c->held = NULL;
	c->held_len = 0;
	ret = send_all(c, all, len);
	free(all);
	return ret;
}

/* Reads exactly len bytes before the deadline. */
static int read_full(struct sp_raw *c, uint8_t *buf, size_t len, int64_t deadline)
{
	if (c->ws_mode)
		return sp_ws_read_payload(c, buf, len, deadline);
	return sp_raw_sock_read(c, buf, len, deadline);
}

int sp_raw_sock_read(struct sp_raw *c, uint8_t *buf, size_t len, int64_t deadline)
{
	while (len) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		ssize_t n;
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, (int)left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ETIMEDOUT;
		n = recv(c->fd, buf, len, 0);
		if (n == 0)
			return -ENOTCONN;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		c->bytes_in += (uint64_t)n;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int sp_raw_send_msg(struct sp_raw *c, const uint8_t *msg, size_t len)
{
	uint8_t pfx[SP_LEN_PREFIX];
	int ret;

	if (len > SP_NOISE_MSG_MAX)
		return -EMSGSIZE;
	put_u16(pfx, len);
	/* One write when it fits, so the broker sees prefix and message together. */
	if (len <= 4096) {
		uint8_t one[SP_LEN_PREFIX + 4096];

		memcpy(one, pfx, SP_LEN_PREFIX);
		if (len)
			memcpy(one + SP_LEN_PREFIX, msg, len);
		return sp_raw_send_bytes(c, one, SP_LEN_PREFIX + len);
	}
	ret = sp_raw_send_bytes(c, pfx, SP_LEN_PREFIX);
	if (ret)
		return ret;
	return sp_raw_send_bytes(c, msg, len);
}

static int timeout_of(int timeout_ms)
{
	return timeout_ms > 0 ? timeout_ms : SP_RAW_TIMEOUT_MS;
}

int sp_raw_recv_msg(struct sp_raw *c, uint8_t *buf, size_t cap, size_t *len, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_of(timeout_ms);
	uint8_t pfx[SP_LEN_PREFIX];
	size_t n;
	int ret;

	ret = read_full(c, pfx, sizeof(pfx), deadline);
	if (ret)
		return ret;
	n = get_u16(pfx);
	if (n == 0 || n > cap)
		return -EMSGSIZE;
	ret = read_full(c, buf, n, deadline);
	if (ret)
		return ret;
	*len = n;
	return 0;
}

/* --- handshake ----------------------------------------------------------------- */

static int encode_client_hello(uint8_t *buf, size_t cap, size_t *len)
{
	Sealpost__V1__ClientHello ch = SEALPOST__V1__CLIENT_HELLO__INIT;

	ch.protocol_version = SP_PROTOCOL_VERSION;
	if (sealpost__v1__client_hello__get_packed_size(&ch) > cap)
		return -EMSGSIZE;
	*len = sealpost__v1__client_hello__pack(&ch, buf);
	return 0;
}

static int decode_server_hello(struct sp_raw *c, const uint8_t *buf, size_t len)
{
	Sealpost__V1__ServerHello *sh = sealpost__v1__server_hello__unpack(NULL, len, buf);

	if (!sh)
		return -EBADMSG;
	c->protocol_version = sh->protocol_version;
	c->max_envelope = sh->max_envelope;
	c->max_transport = sh->max_transport;
	sealpost__v1__server_hello__free_unpacked(sh, NULL);
	return c->protocol_version == SP_PROTOCOL_VERSION ? 0 : -EPROTO;
}

/* Writes our next handshake message, lets the hook rewrite it, sends it. */
static int write_hs(struct sp_raw *c, struct sp_noise_handshake *hs, int msg_no,
		    const uint8_t *payload, size_t payload_len, const struct sp_raw_opts *o,
		    bool hold_it)
{
	uint8_t msg[SP_NOISE_MSG_MAX];
	size_t len = 0;
	int ret, hook = 0;

	ret = sp_noise_handshake_write(hs, payload, payload_len, msg, sizeof(msg), &len);
	if (ret)
		return ret;
	if (o && o->hook) {
		hook = o->hook(msg_no, msg, &len, sizeof(msg), o->hook_arg);
		if (hook < 0)
			return hook;
	}
	if (hold_it) {
		uint8_t pfx[SP_LEN_PREFIX] = { (uint8_t)(len >> 8), (uint8_t)len };

		ret = hold(c, pfx, sizeof(pfx));
		if (!ret)
			ret = hold(c, msg, len);
	} else {
		ret = sp_raw_send_msg(c, msg, len);
	}
	if (ret)
		return ret;
	return hook;
}

static int read_server_msg2(struct sp_raw *c, struct sp_noise_handshake *hs, int timeout_ms)
{
	uint8_t msg[SP_NOISE_MSG_MAX], payload[SP_NOISE_MSG_MAX];
	size_t len = 0, plen = 0;
	int ret;

	ret = sp_raw_recv_msg(c, msg, sizeof(msg), &len, timeout_ms);
	if (ret)
		return ret;
	ret = sp_noise_handshake_read(hs, msg, len, payload, sizeof(payload), &plen);
	if (ret)
		return -EBADMSG;
	return decode_server_hello(c, payload, plen);
}

int sp_raw_handshake(struct sp_raw *c, uint8_t pattern, const uint8_t *server_pub,
		     const struct sp_raw_opts *o)
{
	struct sp_noise_handshake hs;
	uint8_t std_hello[64];
	const uint8_t *hello = std_hello;
	size_t hello_len = 0;
	int timeout_ms = timeout_of(o ? o->timeout_ms : 0);
	bool ik = pattern == SP_PREAMBLE_PATTERN_IK;
	bool nk = pattern == SP_PREAMBLE_PATTERN_NK;
	int ret;

	memset(&hs, 0, sizeof(hs));
	if (o && o->preamble)
		memcpy(c->preamble, o->preamble, SP_PREAMBLE_LEN);
	else
		sp_raw_preamble(c->preamble, pattern);
	if ((ik || nk) && !server_pub)
		return -EINVAL;
	if (o && o->hello) {
		hello = o->hello;
		hello_len = o->hello_len;
	} else {
		ret = encode_client_hello(std_hello, sizeof(std_hello), &hello_len);
		if (ret)
			return ret;
	}
	/* NK (anonymous, PROTOCOL.md 14): no static key of ours at all. */
	ret = sp_noise_handshake_init(&hs, ik ? SP_NOISE_IK : nk ? SP_NOISE_NK : SP_NOISE_XX,
				      SP_NOISE_INITIATOR, c->preamble, SP_PREAMBLE_LEN,
				      nk ? NULL : c->s_priv, ik || nk ? server_pub : NULL);
	if (ret)
		goto out;
	/* The static key the handshake announces (s token) is hs.s_pub. */
	if (o && o->fake_s_pub)
		memcpy(hs.s_pub, o->fake_s_pub, SP_KEY_LEN);

	if (o && o->preamble_with_msg1)
		ret = hold(c, c->preamble, SP_PREAMBLE_LEN);
	else
		ret = sp_raw_send_bytes(c, c->preamble, SP_PREAMBLE_LEN);
	if (ret)
		goto out;
	if (nk) {
		/* -> e, es; <- e, ee */
		ret = write_hs(c, &hs, 1, hello, hello_len, o, false);
		if (ret)
			goto out;
		ret = read_server_msg2(c, &hs, timeout_ms);
		if (ret)
			goto out;
		memcpy(c->server_pub, server_pub, SP_KEY_LEN);
	} else if (pattern == SP_PREAMBLE_PATTERN_IK) {
		/* -> e, es, s, ss */
		ret = write_hs(c, &hs, 1, hello, hello_len, o, false);
		if (ret)
			goto out;
		/* <- e, ee, se */
		ret = read_server_msg2(c, &hs, timeout_ms);
		if (ret)
			goto out;
		memcpy(c->server_pub, server_pub, SP_KEY_LEN);
	} else {
		/* -> e */
		ret = write_hs(c, &hs, 1, NULL, 0, o, false);
		if (ret)
			goto out;
		/* <- e, ee, s, es */
		ret = read_server_msg2(c, &hs, timeout_ms);
		if (ret)
			goto out;
		ret = sp_noise_handshake_remote_static(&hs, c->server_pub);
		if (ret)
			goto out;
		if (server_pub && sodium_memcmp(server_pub, c->server_pub, SP_KEY_LEN) != 0) {
			ret = -EPROTO;
			goto out;
		}
		/* -> s, se */
		ret = write_hs(c, &hs, 3, hello, hello_len, o, o && o->hold_last);
		if (ret)
			goto out;
	}
	ret = sp_noise_handshake_split(&hs, &c->t);
	if (ret)
		goto out;
	c->established = true;
	c->rx_len = c->rx_off = 0;
	if ((ik || nk) && !(o && o->no_proof))
		ret = sp_raw_send_plain(c, NULL, 0);
out:
	sp_noise_handshake_wipe(&hs);
	return ret;
}

int sp_raw_open(struct sp_raw *c, uint16_t port, uint8_t pattern, const uint8_t *server_pub)
{
	int ret;

	if (!c->rx) {
		ret = sp_raw_init(c);
		if (ret)
			return ret;
	}
	ret = sp_raw_connect(c, port);
	if (ret)
		return ret;
	return sp_raw_handshake(c, pattern, server_pub, NULL);
}

/* --- transport ----------------------------------------------------------------- */

int sp_raw_seal(struct sp_raw *c, const uint8_t *plain, size_t len, uint8_t *out, size_t cap,
		size_t *out_len)
{
	int ret;

	if (!c->established)
		return -EINVAL;
	if (len > SP_TRANSPORT_PLAINTEXT_MAX || cap < len + SP_TAG_LEN)
		return -EMSGSIZE;
	if (len)
		memmove(out, plain, len);
	ret = sp_noise_encrypt(&c->t.tx, out, len);
	if (ret)
		return ret;
	*out_len = len + SP_TAG_LEN;
	return 0;
}

int sp_raw_send_plain(struct sp_raw *c, const uint8_t *plain, size_t len)
{
	uint8_t *msg;
	size_t mlen = 0;
	int ret;

	msg = malloc(SP_NOISE_MSG_MAX);
	if (!msg)
		return -ENOMEM;
	ret = sp_raw_seal(c, plain, len, msg, SP_NOISE_MSG_MAX, &mlen);
	if (!ret)
		ret = sp_raw_send_msg(c, msg, mlen);
	free(msg);
	return ret;
}

/* --- frames -------------------------------------------------------------------- */

int sp_raw_put_frame(uint8_t *buf, size_t cap, size_t *off, const uint8_t *hdr, size_t hdr_len,
		     const uint8_t *body, size_t body_len)
{
	size_t need = SP_FRAME_PREFIX_LEN + hdr_len + body_len;

	if (hdr_len > 0xffff || body_len > 0xffff || *off > cap || cap - *off < need)
		return -EMSGSIZE;
	put_u16(buf + *off, hdr_len);
	put_u16(buf + *off + 2, body_len);
	if (hdr_len)
		memcpy(buf + *off + SP_FRAME_PREFIX_LEN, hdr, hdr_len);
	if (body_len)
		memcpy(buf + *off + SP_FRAME_PREFIX_LEN + hdr_len, body, body_len);
	*off += need;
	return 0;
}

static int pack_header(const Sealpost__V1__FrameHeader *fh, uint8_t *hdr, size_t cap, size_t *len)
{
	size_t n = sealpost__v1__frame_header__get_packed_size(fh);

	if (n > cap)
		return -EMSGSIZE;
	*len = sealpost__v1__frame_header__pack(fh, hdr);
	return 0;
}

int sp_raw_put_send(uint8_t *buf, size_t cap, size_t *off, const uint8_t *to, size_t to_len,
		    uint64_t client_id, uint32_t flags, const uint8_t *body, size_t body_len)
{
	Sealpost__V1__FrameHeader fh = SEALPOST__V1__FRAME_HEADER__INIT;
	Sealpost__V1__Send s = SEALPOST__V1__SEND__INIT;
	uint8_t hdr[SP_FRAME_HEADER_MAX + 64];
	size_t hlen = 0;
	int ret;

	s.to.data = (uint8_t *)to;
	s.to.len = to_len;
	s.client_id = client_id;
	s.flags = flags;
	fh.kind_case = SEALPOST__V1__FRAME_HEADER__KIND_SEND;
	fh.send = &s;
	ret = pack_header(&fh, hdr, sizeof(hdr), &hlen);
	if (ret)
		return ret;
	return sp_raw_put_frame(buf, cap, off, hdr, hlen, body, body_len);
}

int sp_raw_put_set_access(uint8_t *buf, size_t cap, size_t *off, uint64_t client_id,
			  const uint8_t *key, size_t key_len, uint32_t flags)
{
	Sealpost__V1__FrameHeader fh = SEALPOST__V1__FRAME_HEADER__INIT;
	Sealpost__V1__SetAccess sa = SEALPOST__V1__SET_ACCESS__INIT;
	uint8_t hdr[SP_FRAME_HEADER_MAX + 64];
	size_t hlen = 0;
	int ret;

	sa.client_id = client_id;
	sa.access_key.data = (uint8_t *)key;
	sa.access_key.len = key_len;
	sa.flags = flags;
	fh.kind_case = SEALPOST__V1__FRAME_HEADER__KIND_SET_ACCESS;
	fh.set_access = &sa;
	ret = pack_header(&fh, hdr, sizeof(hdr), &hlen);
	if (ret)
		return ret;
	return sp_raw_put_frame(buf, cap, off, hdr, hlen, NULL, 0);
}

int sp_raw_put_anon_send(uint8_t *buf, size_t cap, size_t *off, const uint8_t *to, size_t to_len,
			 const uint8_t *token, size_t token_len, uint64_t client_id, uint32_t flags,
			 const uint8_t *body, size_t body_len)
{
	Sealpost__V1__FrameHeader fh = SEALPOST__V1__FRAME_HEADER__INIT;
	Sealpost__V1__AnonSend as = SEALPOST__V1__ANON_SEND__INIT;
	uint8_t hdr[SP_FRAME_HEADER_MAX + 64];
	size_t hlen = 0;
	int ret;

	as.to.data = (uint8_t *)to;
	as.to.len = to_len;
	as.access_key.data = (uint8_t *)token;
	as.access_key.len = token_len;
	as.client_id = client_id;
	as.flags = flags;
	fh.kind_case = SEALPOST__V1__FRAME_HEADER__KIND_ANON_SEND;
	fh.anon_send = &as;
	ret = pack_header(&fh, hdr, sizeof(hdr), &hlen);
	if (ret)
		return ret;
	return sp_raw_put_frame(buf, cap, off, hdr, hlen, body, body_len);
}

int sp_raw_encode_header(enum sp_frame_type type, uint64_t value, uint8_t *hdr, size_t cap,
			 size_t *len)
{
	Sealpost__V1__FrameHeader fh = SEALPOST__V1__FRAME_HEADER__INIT;
	Sealpost__V1__Send send = SEALPOST__V1__SEND__INIT;
	Sealpost__V1__SendResult sr = SEALPOST__V1__SEND_RESULT__INIT;
	Sealpost__V1__Deliver dl = SEALPOST__V1__DELIVER__INIT;
	Sealpost__V1__Ack ack = SEALPOST__V1__ACK__INIT;
	Sealpost__V1__Drained dr = SEALPOST__V1__DRAINED__INIT;
	Sealpost__V1__Ping ping = SEALPOST__V1__PING__INIT;
	Sealpost__V1__Pong pong = SEALPOST__V1__PONG__INIT;
	Sealpost__V1__GoAway ga = SEALPOST__V1__GO_AWAY__INIT;
	uint64_t seq = value;

	fh.kind_case = (Sealpost__V1__FrameHeader__KindCase)type;
	switch (type) {
	case SP_FRAME_SEND:
		send.client_id = value;
		fh.send = &send;
		break;
	case SP_FRAME_SEND_RESULT:
		sr.client_id = value;
		sr.status = (Sealpost__V1__Status)value;
		fh.send_result = &sr;
		break;
	case SP_FRAME_DELIVER:
		dl.seq = value;
		fh.deliver = &dl;
		break;
	case SP_FRAME_ACK:
		ack.n_seqs = 1;
		ack.seqs = &seq;
		fh.ack = &ack;
		break;
	case SP_FRAME_DRAINED:
		dr.count = value;
		fh.drained = &dr;
		break;
	case SP_FRAME_PING:
		ping.id = value;
		fh.ping = &ping;
		break;
	case SP_FRAME_PONG:
		pong.id = value;
		fh.pong = &pong;
		break;
	case SP_FRAME_GOAWAY:
		ga.code = (Sealpost__V1__Status)value;
		fh.goaway = &ga;
		break;
	default:
		return -EINVAL;
	}
	return pack_header(&fh, hdr, cap, len);
}

int sp_raw_put_list(uint8_t *buf, size_t cap, size_t *off, enum sp_frame_type type,
		    const uint8_t *account, size_t account_len, uint64_t client_id,
		    const uint8_t *body, size_t body_len)
{
	Sealpost__V1__FrameHeader fh = SEALPOST__V1__FRAME_HEADER__INIT;
	Sealpost__V1__ListPut lp = SEALPOST__V1__LIST_PUT__INIT;
	Sealpost__V1__ListFetch lf = SEALPOST__V1__LIST_FETCH__INIT;
	ProtobufCBinaryData acc = { account_len, (uint8_t *)account };
	uint8_t hdr[SP_FRAME_HEADER_MAX];
	size_t hlen = 0;
	int ret;

	fh.kind_case = (Sealpost__V1__FrameHeader__KindCase)type;
	if (type == SP_FRAME_LIST_PUT) {
		lp.account = acc;
		lp.client_id = client_id;
		fh.list_put = &lp;
	} else if (type == SP_FRAME_LIST_FETCH) {
		lf.account = acc;
		lf.client_id = client_id;
		fh.list_fetch = &lf;
	} else {
		return -EINVAL;
	}
	ret = pack_header(&fh, hdr, sizeof(hdr), &hlen);
	if (ret)
		return ret;
	return sp_raw_put_frame(buf, cap, off, hdr, hlen, body, body_len);
}

int sp_raw_put_fanout_begin(uint8_t *buf, size_t cap, size_t *off, const uint8_t *account,
			    size_t account_len, uint64_t group_id, uint64_t version, uint32_t count)
{
	Sealpost__V1__FrameHeader fh = SEALPOST__V1__FRAME_HEADER__INIT;
	Sealpost__V1__FanoutBegin b = SEALPOST__V1__FANOUT_BEGIN__INIT;
	uint8_t hdr[SP_FRAME_HEADER_MAX];
	size_t hlen = 0;
	int ret;

	b.account.data = (uint8_t *)account;
	b.account.len = account_len;
	b.group_id = group_id;
	b.version = version;
	b.count = count;
	fh.kind_case = SEALPOST__V1__FRAME_HEADER__KIND_FANOUT_BEGIN;
	fh.fanout_begin = &b;
	ret = pack_header(&fh, hdr, sizeof(hdr), &hlen);
	if (ret)
		return ret;
	return sp_raw_put_frame(buf, cap, off, hdr, hlen, NULL, 0);
}

int sp_raw_put_fanout_copy(uint8_t *buf, size_t cap, size_t *off, const uint8_t *to,
			   size_t to_len, uint64_t group_id, const uint8_t *body, size_t body_len)
{
	Sealpost__V1__FrameHeader fh = SEALPOST__V1__FRAME_HEADER__INIT;
	Sealpost__V1__FanoutCopy cp = SEALPOST__V1__FANOUT_COPY__INIT;
	uint8_t hdr[SP_FRAME_HEADER_MAX];
	size_t hlen = 0;
	int ret;

	cp.to.data = (uint8_t *)to;
	cp.to.len = to_len;
	cp.group_id = group_id;
	fh.kind_case = SEALPOST__V1__FRAME_HEADER__KIND_FANOUT_COPY;
	fh.fanout_copy = &cp;
	ret = pack_header(&fh, hdr, sizeof(hdr), &hlen);
	if (ret)
		return ret;
	return sp_raw_put_frame(buf, cap, off, hdr, hlen, body, body_len);
}

int sp_raw_put_simple(uint8_t *buf, size_t cap, size_t *off, enum sp_frame_type type,
		      uint64_t value, const uint8_t *body, size_t body_len)
{
	uint8_t hdr[SP_FRAME_HEADER_MAX];
	size_t hlen = 0;
	int ret;

	ret = sp_raw_encode_header(type, value, hdr, sizeof(hdr), &hlen);
	if (ret)
		return ret;
	return sp_raw_put_frame(buf, cap, off, hdr, hlen, body, body_len);
}

/* Decrypts the next transport message from the broker into c->rx. */
static int recv_transport(struct sp_raw *c, int timeout_ms)
{
	size_t len = 0, plain = 0;
	int ret;

	if (!c->established)
		return -EINVAL;
	ret = sp_raw_recv_msg(c, c->rx, SP_RAW_RX_CAP, &len, timeout_ms);
	if (ret)
		return ret;
	if (sp_noise_decrypt(&c->t.rx, c->rx, len, &plain))
		return -EBADMSG;
	c->rx_len = plain;
	c->rx_off = 0;
	return 0;
}

static int decode_frame(struct sp_raw *c, struct sp_raw_frame *f)
{
	const uint8_t *p = c->rx + c->rx_off;
	size_t left = c->rx_len - c->rx_off, hlen, blen;
	Sealpost__V1__FrameHeader *fh;
	int ret = 0;

	memset(f, 0, sizeof(*f));
	if (left < SP_FRAME_PREFIX_LEN)
		return -EBADMSG;
	hlen = get_u16(p);
	blen = get_u16(p + 2);
	if (hlen == 0 || hlen > SP_FRAME_HEADER_MAX || blen > SP_BODY_MAX ||
	    left - SP_FRAME_PREFIX_LEN < hlen + blen)
		return -EBADMSG;
	fh = sealpost__v1__frame_header__unpack(NULL, hlen, p + SP_FRAME_PREFIX_LEN);
	if (!fh)
		return -EBADMSG;
	f->type = (enum sp_frame_type)fh->kind_case;
	switch (fh->kind_case) {
	case SEALPOST__V1__FRAME_HEADER__KIND_SEND_RESULT:
		f->client_id = fh->send_result->client_id;
		f->status = (uint32_t)fh->send_result->status;
		f->seq = fh->send_result->seq;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_DELIVER:
		f->seq = fh->deliver->seq;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_DRAINED:
		f->count = fh->drained->count;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_PING:
		f->id = fh->ping->id;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_PONG:
		f->id = fh->pong->id;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_GOAWAY:
		f->status = (uint32_t)fh->goaway->code;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_LIST_RESULT:
		f->client_id = fh->list_result->client_id;
		f->status = (uint32_t)fh->list_result->status;
		f->seq = fh->list_result->version;
		f->list_len = fh->list_result->list_len;
		if (fh->list_result->account.len == SP_ACCOUNT_LEN)
			memcpy(f->account, fh->list_result->account.data, SP_ACCOUNT_LEN);
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_LIST_CHANGED:
		f->seq = fh->list_changed->version;
		f->list_len = fh->list_changed->list_len;
		if (fh->list_changed->account.len == SP_ACCOUNT_LEN)
			memcpy(f->account, fh->list_changed->account.data, SP_ACCOUNT_LEN);
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_LOG_REPLY:
		f->client_id = fh->log_reply->client_id;
		f->status = (uint32_t)fh->log_reply->status;
		f->list_len = fh->log_reply->leaf_len;
		if (fh->log_reply->log_key.len == SP_ACCOUNT_LEN)
			memcpy(f->account, fh->log_reply->log_key.data, SP_ACCOUNT_LEN);
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_FANOUT_RESULT:
		f->client_id = fh->fanout_result->group_id;
		f->status = (uint32_t)fh->fanout_result->status;
		f->seq = fh->fanout_result->version;
		f->missing = fh->fanout_result->missing;
		f->stale = fh->fanout_result->stale;
		break;
	case SEALPOST__V1__FRAME_HEADER__KIND_ACCESS_RESULT:
		f->client_id = fh->access_result->client_id;
		f->status = (uint32_t)fh->access_result->status;
		break;
	default:
		/* Send, Ack or nothing: never valid from the broker. */
		ret = -EBADMSG;
		break;
	}
	sealpost__v1__frame_header__free_unpacked(fh, NULL);
	if (ret)
		return ret;
	/* Only Deliver and the list frames may carry a body from the broker. */
	if (blen && f->type != SP_FRAME_DELIVER && f->type != SP_FRAME_LIST_RESULT &&
	    f->type != SP_FRAME_LIST_CHANGED && f->type != SP_FRAME_LOG_REPLY &&
	    f->type != SP_FRAME_FANOUT_RESULT)
		return -EBADMSG;
	f->body = p + SP_FRAME_PREFIX_LEN + hlen;
	f->body_len = blen;
	c->rx_off += SP_FRAME_PREFIX_LEN + hlen + blen;
	return 0;
}

int sp_raw_recv_frame(struct sp_raw *c, struct sp_raw_frame *f, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_of(timeout_ms);
	int ret;

	/* Empty transport messages are legal keep-alives: skip them. */
	while (c->rx_off >= c->rx_len) {
		int64_t left = deadline - now_ms();

		if (left <= 0)
			return -ETIMEDOUT;
		ret = recv_transport(c, (int)left);
		if (ret)
			return ret;
	}
	return decode_frame(c, f);
}

int sp_raw_wait_frame(struct sp_raw *c, enum sp_frame_type type, struct sp_raw_frame *f,
		      int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_of(timeout_ms);

	for (;;) {
		int64_t left = deadline - now_ms();
		int ret;

		if (left <= 0)
			return -ETIMEDOUT;
		ret = sp_raw_recv_frame(c, f, (int)left);
		if (ret)
			return ret;
		if (f->type == type)
			return 0;
		if (f->type == SP_FRAME_PING) {
			uint8_t buf[64];
			size_t off = 0;

			ret = sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PONG, f->id, NULL,
						0);
			if (!ret)
				ret = sp_raw_send_plain(c, buf, off);
			if (ret)
				return ret;
			continue;
		}
		/* Every routed connection gets Drained{count} after its stored
		 * backlog (mailboxes): a test waiting for something else skips it. */
		if (f->type == SP_FRAME_DRAINED)
			continue;
		return -EPROTO;
	}
}

int sp_raw_send_envelope(struct sp_raw *c, const uint8_t *to, uint64_t client_id,
			 const uint8_t *body, size_t body_len)
{
	uint8_t *buf;
	size_t off = 0;
	int ret;

	buf = malloc(SP_TRANSPORT_PLAINTEXT_MAX);
	if (!buf)
		return -ENOMEM;
	ret = sp_raw_put_send(buf, SP_TRANSPORT_PLAINTEXT_MAX, &off, to, SP_KEY_LEN, client_id, 0,
			      body, body_len);
	if (!ret)
		ret = sp_raw_send_plain(c, buf, off);
	free(buf);
	return ret;
}

int sp_raw_expect_result(struct sp_raw *c, uint64_t client_id, uint32_t *status, int timeout_ms)
{
	struct sp_raw_frame f;
	int ret;

	ret = sp_raw_wait_frame(c, SP_FRAME_SEND_RESULT, &f, timeout_ms);
	if (ret) {
		if (ret == -EPROTO)
			fprintf(stderr, "[raw] expected SendResult, got frame type %d (code %u)\n",
				(int)f.type, f.status);
		return ret;
	}
	*status = f.status;
	if (f.client_id != client_id) {
		fprintf(stderr, "[raw] SendResult for client_id %llu, expected %llu\n",
			(unsigned long long)f.client_id, (unsigned long long)client_id);
		return -EPROTO;
	}
	return 0;
}

int sp_raw_wait_closed(struct sp_raw *c, int timeout_ms, size_t *bytes)
{
	int64_t deadline = now_ms() + timeout_of(timeout_ms);
	size_t seen = 0;
	int ret = -ETIMEDOUT;

	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int64_t left = deadline - now_ms();
		uint8_t buf[4096];
		ssize_t n;
		int r;

		if (left <= 0)
			break;
		r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n == 0) {
			ret = 0;
			break;
		}
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			ret = errno == ECONNRESET ? 0 : -errno;
			break;
		}
		seen += (size_t)n;
		c->bytes_in += (uint64_t)n;
	}
	if (bytes)
		*bytes = seen;
	return ret;
}

int sp_raw_expect_goaway(struct sp_raw *c, uint32_t *code, int timeout_ms, int *skipped)
{
	int64_t deadline = now_ms() + timeout_of(timeout_ms);
	struct sp_raw_frame f;
	int n = 0, ret;

	for (;;) {
		int64_t left = deadline - now_ms();

		if (left <= 0) {
			ret = -ETIMEDOUT;
			goto out;
		}
		ret = sp_raw_recv_frame(c, &f, (int)left);
		if (ret) {
			if (ret == -ECONNRESET)
				ret = -ENOTCONN;
			goto out;
		}
		if (f.type == SP_FRAME_GOAWAY)
			break;
		n++;
	}
	*code = f.status;
	/* GoAway is the last thing the broker sends: nothing may follow it. */
	{
		size_t after = 0;
		int64_t left = deadline - now_ms();

		ret = sp_raw_wait_closed(c, left > 0 ? (int)left : 1, &after);
		if (ret == 0 && (after || c->rx_off < c->rx_len))
			ret = -EPROTO;
	}
out:
	if (skipped)
		*skipped = n;
	return ret;
}
