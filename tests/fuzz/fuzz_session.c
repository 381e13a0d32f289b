/*
 * fuzz_conn.c: everything a peer can send to one sealpostd connection
 * (broker/sp_conn): the byte stream cut into receive buffers at any points.
 *
 * Input: byte 0 selects the mode, byte 1 the receive-buffer size (1..256).
 *   mode even: the rest is raw bytes from the first byte of the connection
 *              (preamble, length prefixes, handshake messages);
 *   mode odd:  the connection is established first (a real IK handshake with
 *              fixed keys, done once and snapshotted); the rest is records
 *              u16-be len | plaintext, each encrypted as one transport message
 *              (so the fuzzer reaches the frame layer), and a record with the
 *              top bit of len set has one ciphertext bit flipped.
 * Oracle: nothing may crash or leak (ASan), and in the established mode the
 * frame hook echoes every Send body back as a Deliver, encrypted straight
 * from the receive buffer: the client side decrypts everything the
 * connection queued and checks each echo against a copy taken in the hook.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sp_frame.h"
#include "sp_noise.h"
#include "sp_session.h"

static const uint8_t client_s[SP_KEY_LEN] = { 0xc0, 0x22, 0x44, 0x66, 0x88, 0xaa, 0xcc, 0xee, 7 };
static const uint8_t server_s[SP_KEY_LEN] = { 0x50, 0x13, 0x35, 0x57, 0x79, 0x9b, 0xbd, 0xdf, 8 };
static const uint8_t preamble_ik[SP_PREAMBLE_LEN] = { 'S', 'E', 'A', 'L', 1, 1, 0, 0 };

enum { ECHO_MAX = 64 };

static struct {
	bool ready;
	struct sp_session conn;            /* established, no output queued */
	struct sp_noise_transport client;
} snap;

static struct sp_txpool pool;
static struct sp_session_env env;
static uint8_t echo_body[ECHO_MAX][SP_BODY_MAX];
static size_t echo_len[ECHO_MAX];
static unsigned echoes;

static void check(int ok)
{
	if (!ok)
		abort();
}

static enum sp_close_reason on_established(void *ctx, struct sp_session *c)
{
	(void)ctx;
	(void)c;
	return SP_CLOSE_NONE;
}

/* Echo a Send's body as a Deliver (the broker's hot path, to this same peer). */
static enum sp_close_reason on_frame(void *ctx, struct sp_session *c, const struct sp_frame *f)
{
	struct sp_frame d;

	(void)ctx;
	if (f->type != SP_FRAME_SEND || echoes == ECHO_MAX || sp_session_tx_queued(c) > 4 * SP_NOISE_MSG_MAX)
		return SP_CLOSE_NONE;
	memset(&d, 0, sizeof(d));
	d.type = SP_FRAME_DELIVER;
	d.u.deliver.seq = echoes + 1;
	memcpy(echo_body[echoes], f->body, f->body_len);
	echo_len[echoes] = f->body_len;
	check(sp_session_tx_frame(c, &d, f->body, f->body_len) == 0);
	echoes++;
	return SP_CLOSE_NONE;
}

/* Takes the connection's queued output; in established mode, checks the echoes. */
static void drain(struct sp_session *c, struct sp_noise_transport *client)
{
	static uint8_t msg[SP_NOISE_MSG_MAX + 2];
	const uint8_t *p;
	size_t len, have = 0, want = 0;
	unsigned seen = 0;

	check(sp_session_tx_seal(c) == 0);
	while (sp_session_tx_peek(c, &p, &len)) {
		/* Walk the stream message by message, across short "sends". */
		for (size_t i = 0; i < len; i++) {
			msg[have++] = p[i];
			if (have == 2)
				want = 2 + ((size_t)msg[0] << 8 | msg[1]);
			if (have < 2 || have < want || !client)
				continue;
			size_t plen, off = 0;
			struct sp_frame f;

			check(sp_noise_decrypt(&client->rx, msg + 2, want - 2, &plen) == 0);
			while (sp_frame_next(msg + 2, plen, &off, &f) == 0) {
				check(f.type == SP_FRAME_DELIVER && seen < echoes);
				check(f.u.deliver.seq == seen + 1 && f.body_len == echo_len[seen]);
				check(memcmp(f.body, echo_body[seen], f.body_len) == 0);
				seen++;
			}
			check(off == plen);
			have = 0;
		}
		sp_session_tx_sent(c, len);
	}
	check(!client || seen == echoes);
}

static void setup(void)
{
	uint8_t server_pub[SP_KEY_LEN], pl[SP_HANDSHAKE_PAYLOAD_MAX];
	uint8_t wire[SP_PREAMBLE_LEN + 2 + SP_HANDSHAKE_MSG_MAX];
	struct sp_hello h = { .protocol_version = 1 };
	struct sp_noise_handshake hs;
	size_t plen, mlen;
	const uint8_t *p;
	size_t len;

	check(sodium_init() >= 0);
	sp_txpool_init(&pool, 8);
	env.static_priv = server_s;
	env.hello = (struct sp_hello){ 1, SP_BODY_MAX, SP_TRANSPORT_PLAINTEXT_MAX };
	env.pool = &pool;
	env.hooks.established = on_established;
	env.hooks.frame = on_frame;

	check(sp_noise_public_key(server_pub, server_s) == 0);
	check(sp_noise_handshake_init(&hs, SP_NOISE_IK, SP_NOISE_INITIATOR, preamble_ik,
				      SP_PREAMBLE_LEN, client_s, server_pub) == 0);
	check(sp_frame_client_hello_encode(&h, pl, sizeof(pl), &plen) == 0);
	memcpy(wire, preamble_ik, SP_PREAMBLE_LEN);
	check(sp_noise_handshake_write(&hs, pl, plen, wire + SP_PREAMBLE_LEN + 2,
				       SP_HANDSHAKE_MSG_MAX, &mlen) == 0);
	wire[SP_PREAMBLE_LEN] = (uint8_t)(mlen >> 8);
	wire[SP_PREAMBLE_LEN + 1] = (uint8_t)mlen;
	sp_session_accept(&snap.conn, &env);
	check(sp_session_rx(&snap.conn, wire, SP_PREAMBLE_LEN + 2 + mlen) == SP_CLOSE_NONE);
	check(snap.conn.state == SP_SESSION_ESTABLISHED);
	check(sp_session_tx_peek(&snap.conn, &p, &len) && len > 2);
	check(sp_noise_handshake_read(&hs, p + 2, len - 2, pl, sizeof(pl), &plen) == 0);
	sp_session_tx_sent(&snap.conn, len);
	check(snap.conn.q.head == NULL);
	check(sp_noise_handshake_split(&hs, &snap.client) == 0);
	sp_noise_handshake_wipe(&hs);
	snap.ready = true;
}

/* Feeds bytes in receive buffers of `step` bytes, each from its own copy. */
static enum sp_close_reason feed(struct sp_session *c, const uint8_t *data, size_t len, size_t step)
{
	static uint8_t buf[256];
	enum sp_close_reason r = SP_CLOSE_NONE;

	for (size_t off = 0; off < len && r == SP_CLOSE_NONE; off += step) {
		size_t n = len - off < step ? len - off : step;

		memcpy(buf, data + off, n);
		r = sp_session_rx(c, buf, n);
	}
	return r;
}

static void run_raw(const uint8_t *data, size_t size, size_t step)
{
	struct sp_session c;

	memset(&c, 0, sizeof(c));
	sp_session_accept(&c, &env);
	feed(&c, data, size, step);
	drain(&c, NULL);
	sp_session_release(&c);
}

static void run_established(const uint8_t *data, size_t size, size_t step)
{
	static uint8_t wire[SP_LEN_PREFIX + SP_NOISE_MSG_MAX];
	struct sp_noise_transport client = snap.client;
	struct sp_session c = snap.conn;
	enum sp_close_reason r = SP_CLOSE_NONE;
	size_t off = 0;

	echoes = 0;
	while (off + 2 <= size && r == SP_CLOSE_NONE) {
		size_t len = ((size_t)data[off] << 8 | data[off + 1]) & 0x7fff;
		bool flip = data[off] & 0x80;

		off += 2;
		if (len > size - off)
			len = size - off;
		if (len > SP_TRANSPORT_PLAINTEXT_MAX)
			len = SP_TRANSPORT_PLAINTEXT_MAX;
		memcpy(wire + 2, data + off, len);
		off += len;
		check(sp_noise_encrypt(&client.tx, wire + 2, len) == 0);
		if (flip)
			wire[2 + len / 2] ^= 0x20;
		wire[0] = (uint8_t)((len + SP_TAG_LEN) >> 8);
		wire[1] = (uint8_t)(len + SP_TAG_LEN);
		r = feed(&c, wire, len + SP_TAG_LEN + 2, step);
		check(!flip || r == SP_CLOSE_DECRYPT_FAILED);
	}
	drain(&c, &client);
	sp_session_release(&c);
	sp_noise_transport_wipe(&client);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t step;

	if (!snap.ready)
		setup();
	if (size < 2)
		return 0;
	step = (size_t)data[1] + 1;
	if (data[0] & 1)
		run_established(data + 2, size - 2, step);
	else
		run_raw(data + 2, size - 2, step);
	check(pool.live == pool.nfree);     /* every chunk came back */
	return 0;
}
