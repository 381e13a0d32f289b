/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_handshake.c: everything a peer can send during a Noise handshake.
 *
 * The input is used three ways, each from a fresh state:
 *   (a) as message 1 to an IK responder (what sealpostd gets first);
 *   (b) split as u16-be len1 || msg1 || msg3: an XX responder reads msg1,
 *       writes its real message 2, then reads msg3;
 *   (c) as message 2 to an IK initiator and to an XX initiator that sent
 *       their real message 1 (what a client gets back);
 *   (d) as message 1 to an NK responder (what sealpostd gets first on an
 *       anonymous, send-only connection, preamble pattern 3), and as
 *       message 2 to an NK initiator that sent its real message 1.
 * Every call must succeed or fail cleanly; a completed handshake is split and
 * used once. All keys (static and ephemeral) are fixed, so the seed corpus
 * (valid messages made with the same keys) reaches the deep paths: message 2
 * is then the same in every run and a valid msg3 for it exists.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_noise.h"

#define FUZZ_PROLOGUE "SEAL\x01\x01\x00\x00"

/* Fixed test keys: never used anywhere else. */
static const uint8_t client_s[SP_KEY_LEN] = { 0xc1, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 1 };
static const uint8_t client_e[SP_KEY_LEN] = { 0xce, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 2 };
static const uint8_t server_s[SP_KEY_LEN] = { 0x5e, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 3 };
static const uint8_t server_e[SP_KEY_LEN] = { 0x5e, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 4 };

static struct {
	bool ready;
	uint8_t server_pub[SP_KEY_LEN];
	struct sp_noise_handshake ik_resp, xx_resp; /* fresh, before message 1 */
	struct sp_noise_handshake ik_init, xx_init; /* after writing message 1 */
	struct sp_noise_handshake nk_resp, nk_init;
	uint8_t ik_msg1[SP_HANDSHAKE_MSG_MAX], xx_msg1[SP_HANDSHAKE_MSG_MAX];
	uint8_t nk_msg1[SP_HANDSHAKE_MSG_MAX];
	size_t ik_msg1_len, xx_msg1_len, nk_msg1_len;
} fx;

static uint8_t payload[SP_NOISE_MSG_MAX], msg2[SP_NOISE_MSG_MAX];

static void check(int ok)
{
	if (!ok)
		abort();
}

static void init_state(struct sp_noise_handshake *hs, enum sp_noise_pattern p,
		       enum sp_noise_role r)
{
	bool init = r == SP_NOISE_INITIATOR;
	/* NK's initiator has no static key (the anonymous client proves none) */
	const uint8_t *s = init ? (p == SP_NOISE_NK ? NULL : client_s) : server_s;

	check(sp_noise_handshake_init(hs, p, r, (const uint8_t *)FUZZ_PROLOGUE, 8, s,
				      init && (p == SP_NOISE_IK || p == SP_NOISE_NK) ? fx.server_pub
										      : NULL) == 0);
	check(sp_noise_handshake_fix_ephemeral(hs, init ? client_e : server_e) == 0);
}

static void setup(void)
{
	static const uint8_t hello[] = { 0x08, 0x01 }; /* ClientHello{protocol_version=1} */

	if (fx.ready)
		return;
	if (sodium_init() < 0)
		abort();
	check(sp_noise_public_key(fx.server_pub, server_s) == 0);
	init_state(&fx.ik_resp, SP_NOISE_IK, SP_NOISE_RESPONDER);
	init_state(&fx.xx_resp, SP_NOISE_XX, SP_NOISE_RESPONDER);
	init_state(&fx.ik_init, SP_NOISE_IK, SP_NOISE_INITIATOR);
	init_state(&fx.xx_init, SP_NOISE_XX, SP_NOISE_INITIATOR);
	init_state(&fx.nk_resp, SP_NOISE_NK, SP_NOISE_RESPONDER);
	init_state(&fx.nk_init, SP_NOISE_NK, SP_NOISE_INITIATOR);
	check(sp_noise_handshake_write(&fx.ik_init, hello, sizeof(hello), fx.ik_msg1,
				       sizeof(fx.ik_msg1), &fx.ik_msg1_len) == 0);
	check(sp_noise_handshake_write(&fx.xx_init, NULL, 0, fx.xx_msg1, sizeof(fx.xx_msg1),
				       &fx.xx_msg1_len) == 0);
	check(sp_noise_handshake_write(&fx.nk_init, hello, sizeof(hello), fx.nk_msg1,
				       sizeof(fx.nk_msg1), &fx.nk_msg1_len) == 0);
	if (getenv("SP_FUZZ_WRITE_NK_SEED")) {
		/* The seed corpus' nk_msg1: this real message 1 (fixed keys). */
		FILE *f = fopen(getenv("SP_FUZZ_WRITE_NK_SEED"), "wb");

		check(f && fwrite(fx.nk_msg1, 1, fx.nk_msg1_len, f) == fx.nk_msg1_len);
		fclose(f);
	}
	fx.ready = true;
}

/* A finished handshake: split, and one transport message each way that has a key. */
static void finish(struct sp_noise_handshake *hs)
{
	struct sp_noise_transport t;
	uint8_t buf[32] = "ping";
	size_t n;

	check(hs->state == SP_NOISE_HS_SPLIT);
	check(sp_noise_handshake_split(hs, &t) == 0);
	check(sp_noise_encrypt(&t.tx, buf, 4) == 0);
	check(sp_noise_decrypt(&t.rx, buf, 4 + SP_TAG_LEN, &n) != 0); /* not our own key */
	sp_noise_transport_wipe(&t);
}

/* Reads msg into hs; on success the state must have moved on. */
static int read_msg(struct sp_noise_handshake *hs, const uint8_t *msg, size_t len)
{
	size_t plen = 0;
	int ret = sp_noise_handshake_read(hs, msg, len, payload, sizeof(payload), &plen);

	if (ret == 0)
		check(plen <= len && hs->state != SP_NOISE_HS_READ);
	else
		check(hs->state == SP_NOISE_HS_FAILED);
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sp_noise_handshake hs;
	size_t len1, n;

	setup();

	/* (a) IK responder, message 1 */
	hs = fx.ik_resp;
	if (read_msg(&hs, data, size) == 0) {
		check(sp_noise_handshake_write(&hs, NULL, 0, msg2, sizeof(msg2), &n) == 0);
		finish(&hs);
	}
	sp_noise_handshake_wipe(&hs);

	/* (b) XX responder: msg1, real msg2, msg3 */
	if (size >= 2) {
		len1 = (size_t)data[0] << 8 | data[1];
		if (len1 > size - 2)
			len1 = size - 2;
		hs = fx.xx_resp;
		if (read_msg(&hs, data + 2, len1) == 0) {
			check(sp_noise_handshake_write(&hs, NULL, 0, msg2, sizeof(msg2), &n) == 0);
			if (read_msg(&hs, data + 2 + len1, size - 2 - len1) == 0)
				finish(&hs);
		}
		sp_noise_handshake_wipe(&hs);
	}

	/* (c) initiators reading message 2 */
	hs = fx.ik_init;
	if (read_msg(&hs, data, size) == 0)
		finish(&hs);
	sp_noise_handshake_wipe(&hs);

	hs = fx.xx_init;
	if (read_msg(&hs, data, size) == 0) {
		check(sp_noise_handshake_write(&hs, NULL, 0, msg2, sizeof(msg2), &n) == 0);
		finish(&hs);
	}
	sp_noise_handshake_wipe(&hs);

	/* (d) NK: the responder reading message 1, the initiator message 2 */
	hs = fx.nk_resp;
	if (read_msg(&hs, data, size) == 0) {
		check(sp_noise_handshake_write(&hs, NULL, 0, msg2, sizeof(msg2), &n) == 0);
		finish(&hs);
	}
	sp_noise_handshake_wipe(&hs);
	hs = fx.nk_init;
	if (read_msg(&hs, data, size) == 0)
		finish(&hs);
	sp_noise_handshake_wipe(&hs);
	return 0;
}
