/* SPDX-License-Identifier: Apache-2.0 */
/*
 * seed_session.c: writes the seed corpus of fuzz_session from real
 * handshakes and traffic between two sessions (lib/session), so that the
 * seeds follow the code rather than hand-made bytes.
 *
 *   sealpost-fuzz-seeds DIR
 *
 * Raw seeds are the bytes a real peer sends (an initiator's preamble and
 * message 1, a responder's message 2); established seeds are records
 * (session_peer.h) whose plaintexts are what a real session encrypted:
 * the output of sp_session_tx_frame, decrypted again with the peer's keys.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/session_peer.h"
#include "sp_frame.h"
#include "sp_noise.h"
#include "sp_session.h"

static struct sp_txpool pool;
static struct sp_session_env renv, ienv;
static const char *dir;

static void die(const char *what)
{
	fprintf(stderr, "sealpost-fuzz-seeds: %s\n", what);
	exit(1);
}

static enum sp_close_reason no_frame(void *ctx, struct sp_session *s, const struct sp_frame *f)
{
	(void)ctx;
	(void)s;
	(void)f;
	return SP_CLOSE_NONE;
}

static enum sp_close_reason ok(void *ctx, struct sp_session *s)
{
	(void)ctx;
	(void)s;
	return SP_CLOSE_NONE;
}

static void put(const char *name, unsigned mode, unsigned step, const uint8_t *p, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fputc((int)mode, f) == EOF || fputc((int)(step - 1), f) == EOF ||
	    fwrite(p, 1, n, f) != n || fclose(f))
		die(path);
}

/* Takes everything s queued (sealed). */
static size_t take(struct sp_session *s, uint8_t *out, size_t cap)
{
	const uint8_t *p;
	size_t len, n = 0;

	if (sp_session_tx_seal(s))
		die("seal");
	while (sp_session_tx_peek(s, &p, &len)) {
		if (n + len > cap)
			die("output too long");
		memcpy(out + n, p, len);
		n += len;
		sp_session_tx_sent(s, len);
	}
	return n;
}

/* The plaintexts of s's queued transport messages, as records; rx: the
 * peer's receiving cipher. flip: mark the last record flipped. */
static size_t records(struct sp_session *s, struct sp_noise_cipher *rx, uint8_t *out, bool flip)
{
	static uint8_t wire[1 << 20];
	size_t n = take(s, wire, sizeof(wire)), o = 0, last = 0;

	for (size_t off = 0; off < n;) {
		size_t m = (size_t)wire[off] << 8 | wire[off + 1], plen;

		if (sp_noise_decrypt(rx, wire + off + 2, m, &plen))
			die("decrypt");
		last = o;
		out[o++] = (uint8_t)(plen >> 8);
		out[o++] = (uint8_t)plen;
		memcpy(out + o, wire + off + 2, plen);
		o += plen;
		off += 2 + m;
	}
	if (flip && o)
		out[last] |= 0x80;
	return o;
}

static void frame(struct sp_session *s, struct sp_frame f, size_t body_len, uint8_t fill);

/*
 * The AESGCM seeds (where the CPU has it): an IK preamble proposing it with
 * message 1, an XX message 2 for an AESGCM initiator, the refusal preamble
 * for one, and batch traffic both ways through the AESGCM snapshots.
 */
static void aesgcm_seeds(const uint8_t server_pub[SP_KEY_LEN])
{
	static uint8_t buf[1 << 20];
	static const uint8_t refusal[SP_PREAMBLE_LEN] = { 'S', 'E', 'A', 'L', 1, 2, 0, 0 };
	struct sp_session_env ra = renv, ia = ienv;
	struct sp_session i, r, xi, xr;
	struct sp_frame f;
	size_t n;

	if (!sp_noise_aead_available(SP_NOISE_AESGCM))
		return;
	ra.accept_aesgcm = true;
	ia.propose_aead = SP_NOISE_AESGCM;
	sp_session_accept(&r, &ra);
	if (sp_session_connect(&i, &ia, fuzz_client_s, server_pub))
		die("connect aesgcm");
	n = take(&i, buf, sizeof(buf));
	put("resp_raw_ik_aesgcm", FUZZ_RESPONDER_RAW | FUZZ_AESGCM, 256, buf, n);
	put("resp_raw_ik_aesgcm_1", FUZZ_RESPONDER_RAW | FUZZ_AESGCM, 1, buf, n);
	/* the same proposal to a responder that refuses it */
	put("resp_raw_ik_aesgcm_refused", FUZZ_RESPONDER_RAW, 256, buf, n);
	if (sp_session_rx(&r, buf, n))
		die("aesgcm ik message 1");
	n = take(&r, buf, sizeof(buf));
	if (sp_session_rx(&i, buf, n) || i.state != SP_SESSION_ESTABLISHED)
		die("aesgcm ik message 2");

	sp_session_accept(&xr, &ra);
	if (sp_session_connect(&xi, &ia, fuzz_client_s, NULL))
		die("connect aesgcm xx");
	n = take(&xi, buf, sizeof(buf));
	if (sp_session_rx(&xr, buf, n))
		die("aesgcm xx message 1");
	n = take(&xr, buf, sizeof(buf));
	put("init_raw_xx_msg2_aesgcm", FUZZ_INITIATOR_RAW | FUZZ_AESGCM, 256, buf, n);
	put("init_raw_refusal", FUZZ_INITIATOR_RAW | FUZZ_AESGCM, 3, refusal, sizeof(refusal));

	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_SEND;
	f.u.send.client_id = 1;
	memcpy(f.u.send.to, server_pub, SP_KEY_LEN);
	frame(&i, f, 700, 0x5a);
	f.u.send.client_id = 2;
	frame(&i, f, 3, 0x11);
	n = records(&i, &r.keys->t.rx, buf, false);
	put("resp_est_batch_aesgcm", FUZZ_RESPONDER_ESTABLISHED | FUZZ_AESGCM, 256, buf, n);
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_PING;
	f.u.ping.id = 11;
	frame(&r, f, 0, 0);
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_DELIVER;
	f.u.deliver.seq = 1;
	frame(&r, f, 300, 0x33);
	n = records(&r, &i.keys->t.rx, buf, true);
	put("init_est_flip_aesgcm", FUZZ_INITIATOR_ESTABLISHED | FUZZ_AESGCM, 256, buf, n);

	sp_session_release(&i);
	sp_session_release(&r);
	sp_session_release(&xi);
	sp_session_release(&xr);
}

static void frame(struct sp_session *s, struct sp_frame f, size_t body_len, uint8_t fill)
{
	static uint8_t body[SP_BODY_MAX];

	memset(body, fill, body_len);
	if (sp_session_tx_frame(s, &f, body, body_len))
		die("tx_frame");
}

int main(int argc, char **argv)
{
	static uint8_t buf[1 << 20];
	uint8_t server_pub[SP_KEY_LEN];
	struct sp_session i, r, xi, xr;
	struct sp_frame f;
	size_t n;

	if (argc != 2)
		die("usage: sealpost-fuzz-seeds DIR");
	dir = argv[1];
	if (mkdir(dir, 0755) && errno != EEXIST)
		die(dir);
	if (sodium_init() < 0)
		die("sodium_init");
	sp_txpool_init(&pool, 8);
	renv.static_priv = fuzz_server_s;
	renv.hello = (struct sp_hello){ .protocol_version = 1, .max_envelope = SP_BODY_MAX,
					.max_transport = SP_TRANSPORT_PLAINTEXT_MAX };
	renv.pool = &pool;
	renv.hooks = (struct sp_session_hooks){ ok, NULL, no_frame, NULL, NULL, NULL, NULL };
	ienv.hello.protocol_version = 1;
	ienv.pool = &pool;
	ienv.hooks = (struct sp_session_hooks){ ok, NULL, no_frame, NULL, NULL, NULL, NULL };
	if (sp_noise_public_key(server_pub, fuzz_server_s))
		die("key");

	/* IK: preamble + message 1 to the responder, whole and byte by byte. */
	sp_session_accept(&r, &renv);
	if (sp_session_connect(&i, &ienv, fuzz_client_s, server_pub))
		die("connect");
	n = take(&i, buf, sizeof(buf));
	put("resp_raw_ik", FUZZ_RESPONDER_RAW, 256, buf, n);
	put("resp_raw_ik_1", FUZZ_RESPONDER_RAW, 1, buf, n);
	if (sp_session_rx(&r, buf, n))
		die("ik message 1");
	n = take(&r, buf, sizeof(buf));
	if (sp_session_rx(&i, buf, n) || i.state != SP_SESSION_ESTABLISHED)
		die("ik message 2");

	/* XX: message 1; the responder's message 2 for the initiator. */
	sp_session_accept(&xr, &renv);
	if (sp_session_connect(&xi, &ienv, fuzz_client_s, NULL))
		die("connect xx");
	n = take(&xi, buf, sizeof(buf));
	put("resp_raw_xx", FUZZ_RESPONDER_RAW, 7, buf, n);
	if (sp_session_rx(&xr, buf, n))
		die("xx message 1");
	n = take(&xr, buf, sizeof(buf));
	put("init_raw_xx_msg2", FUZZ_INITIATOR_RAW, 256, buf, n);
	put("init_raw_xx_msg2_3", FUZZ_INITIATOR_RAW, 3, buf, n);

	/* Initiator -> responder traffic: Sends, a Ping, Acks; one batch, then
	 * a maximal Send, then a flipped message. */
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_PING;
	f.u.ping.id = 7;
	frame(&i, f, 0, 0);
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_SEND;
	f.u.send.client_id = 1;
	memcpy(f.u.send.to, server_pub, SP_KEY_LEN);
	frame(&i, f, 200, 0x5a);
	f.u.send.client_id = 2;
	f.u.send.flags = SP_SEND_ONLINE_ONLY;
	frame(&i, f, 0, 0);
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_ACK;
	f.u.ack.count = 3;
	f.u.ack.seqs[0] = 1;
	f.u.ack.seqs[1] = 2;
	f.u.ack.seqs[2] = 1u << 20;
	frame(&i, f, 0, 0);
	n = records(&i, &r.keys->t.rx, buf, false);
	put("resp_est_batch", FUZZ_RESPONDER_ESTABLISHED, 256, buf, n);
	put("resp_est_batch_5", FUZZ_RESPONDER_ESTABLISHED, 5, buf, n);
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_SEND;
	f.u.send.client_id = 3;
	frame(&i, f, SP_BODY_MAX, 0xa5);
	n = records(&i, &r.keys->t.rx, buf, false);
	put("resp_est_max_send", FUZZ_RESPONDER_ESTABLISHED, 256, buf, n);
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_PING;
	frame(&i, f, 0, 0);
	n = records(&i, &r.keys->t.rx, buf, true);
	put("resp_est_flip", FUZZ_RESPONDER_ESTABLISHED, 256, buf, n);

	/* Responder -> initiator traffic: Delivers, results, Drained, a Ping,
	 * then a GoAway. */
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_DELIVER;
	f.u.deliver.seq = 1;
	frame(&r, f, 300, 0x33);
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_SEND_RESULT;
	f.u.send_result.client_id = 1;
	f.u.send_result.status = SP_STATUS_ACCEPTED;
	f.u.send_result.seq = 9;
	frame(&r, f, 0, 0);
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_DRAINED;
	f.u.drained.count = 1;
	frame(&r, f, 0, 0);
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_PING;
	f.u.ping.id = 11;
	frame(&r, f, 0, 0);
	n = records(&r, &i.keys->t.rx, buf, false);
	put("init_est_batch", FUZZ_INITIATOR_ESTABLISHED, 256, buf, n);
	put("init_est_batch_2", FUZZ_INITIATOR_ESTABLISHED, 2, buf, n);
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_GOAWAY;
	f.u.goaway.code = SP_STATUS_GOAWAY_SHUTDOWN;
	frame(&r, f, 0, 0);
	n = records(&r, &i.keys->t.rx, buf, true);
	put("init_est_goaway_flip", FUZZ_INITIATOR_ESTABLISHED, 256, buf, n);

	sp_session_release(&i);
	sp_session_release(&r);
	sp_session_release(&xi);
	sp_session_release(&xr);
	aesgcm_seeds(server_pub);
	sp_txpool_destroy(&pool);
	return 0;
}
