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
 * All four with the ChaChaPoly suite and again with AESGCM (where the CPU
 * has AES-NI), each with its own states and prologue (preamble cipher byte
 * 00 or 01), as a broker that offers both meets them.
 * Every call must succeed or fail cleanly; a completed handshake is split and
 * used once. All keys (static and ephemeral) are fixed, so the seed corpus
 * (valid messages made with the same keys) reaches the deep paths: message 2
 * is then the same in every run and a valid msg3 for it exists. The
 * AESGCM seeds (ik_msg1_aesgcm, ik_msg2_aesgcm) are written by this target
 * with SP_FUZZ_WRITE_AES_SEEDS=DIR.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sp_noise.h"

/* The preamble (prologue) of each suite: cipher byte 00 or 01. */
static const char *const prologue[2] = { "SEAL\x01\x01\x00\x00", "SEAL\x01\x01\x01\x00" };

/* Fixed test keys: never used anywhere else. */
static const uint8_t client_s[SP_KEY_LEN] = { 0xc1, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 1 };
static const uint8_t client_e[SP_KEY_LEN] = { 0xce, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 2 };
static const uint8_t server_s[SP_KEY_LEN] = { 0x5e, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 3 };
static const uint8_t server_e[SP_KEY_LEN] = { 0x5e, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 4 };

/* The states of one suite. */
struct suite {
	struct sp_noise_handshake ik_resp, xx_resp; /* fresh, before message 1 */
	struct sp_noise_handshake ik_init, xx_init; /* after writing message 1 */
	struct sp_noise_handshake nk_resp, nk_init;
	uint8_t ik_msg1[SP_HANDSHAKE_MSG_MAX], xx_msg1[SP_HANDSHAKE_MSG_MAX];
	uint8_t nk_msg1[SP_HANDSHAKE_MSG_MAX];
	size_t ik_msg1_len, xx_msg1_len, nk_msg1_len;
};

static struct {
	bool ready;
	unsigned n_suites;              /* 2, or 1 on a CPU without AES-NI */
	uint8_t server_pub[SP_KEY_LEN];
	struct suite su[2];             /* by enum sp_noise_aead */
} fx;

static uint8_t payload[SP_NOISE_MSG_MAX], msg2[SP_NOISE_MSG_MAX];

static void check(int ok)
{
	if (!ok)
		abort();
}

static void init_state(struct sp_noise_handshake *hs, enum sp_noise_pattern p,
		       enum sp_noise_aead a, enum sp_noise_role r)
{
	bool init = r == SP_NOISE_INITIATOR;
	/* NK's initiator has no static key (the anonymous client proves none) */
	const uint8_t *s = init ? (p == SP_NOISE_NK ? NULL : client_s) : server_s;

	check(sp_noise_handshake_init_aead(hs, p, a, r, (const uint8_t *)prologue[a], 8, s,
					   init && (p == SP_NOISE_IK || p == SP_NOISE_NK)
					   ? fx.server_pub : NULL) == 0);
	check(sp_noise_handshake_fix_ephemeral(hs, init ? client_e : server_e) == 0);
}

static void write_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	check(f && fwrite(p, 1, n, f) == n);
	fclose(f);
}

static void setup_suite(struct suite *su, enum sp_noise_aead a)
{
	static const uint8_t hello[] = { 0x08, 0x01 }; /* ClientHello{protocol_version=1} */

	init_state(&su->ik_resp, SP_NOISE_IK, a, SP_NOISE_RESPONDER);
	init_state(&su->xx_resp, SP_NOISE_XX, a, SP_NOISE_RESPONDER);
	init_state(&su->ik_init, SP_NOISE_IK, a, SP_NOISE_INITIATOR);
	init_state(&su->xx_init, SP_NOISE_XX, a, SP_NOISE_INITIATOR);
	init_state(&su->nk_resp, SP_NOISE_NK, a, SP_NOISE_RESPONDER);
	init_state(&su->nk_init, SP_NOISE_NK, a, SP_NOISE_INITIATOR);
	check(sp_noise_handshake_write(&su->ik_init, hello, sizeof(hello), su->ik_msg1,
				       sizeof(su->ik_msg1), &su->ik_msg1_len) == 0);
	check(sp_noise_handshake_write(&su->xx_init, NULL, 0, su->xx_msg1, sizeof(su->xx_msg1),
				       &su->xx_msg1_len) == 0);
	check(sp_noise_handshake_write(&su->nk_init, hello, sizeof(hello), su->nk_msg1,
				       sizeof(su->nk_msg1), &su->nk_msg1_len) == 0);
}

static void setup(void)
{
	if (fx.ready)
		return;
	if (sodium_init() < 0)
		abort();
	check(sp_noise_public_key(fx.server_pub, server_s) == 0);
	fx.n_suites = sp_noise_aead_available(SP_NOISE_AESGCM) ? 2 : 1;
	for (unsigned a = 0; a < fx.n_suites; a++)
		setup_suite(&fx.su[a], (enum sp_noise_aead)a);
	if (getenv("SP_FUZZ_WRITE_NK_SEED")) {
		/* The seed corpus' nk_msg1: this real message 1 (fixed keys). */
		const struct suite *su = &fx.su[SP_NOISE_CHACHAPOLY];
		FILE *f = fopen(getenv("SP_FUZZ_WRITE_NK_SEED"), "wb");

		check(f && fwrite(su->nk_msg1, 1, su->nk_msg1_len, f) == su->nk_msg1_len);
		fclose(f);
	}
	if (getenv("SP_FUZZ_WRITE_AES_SEEDS") && fx.n_suites == 2) {
		/* ik_msg1_aesgcm: the real AESGCM message 1; ik_msg2_aesgcm: the
		 * responder's real answer to it (both with the fixed keys). */
		struct suite *su = &fx.su[SP_NOISE_AESGCM];
		struct sp_noise_handshake hs = su->ik_resp;
		static uint8_t m2[SP_HANDSHAKE_MSG_MAX], pl[SP_HANDSHAKE_MSG_MAX];
		size_t n, plen;

		check(sp_noise_handshake_read(&hs, su->ik_msg1, su->ik_msg1_len, pl, sizeof(pl),
					      &plen) == 0);
		check(sp_noise_handshake_write(&hs, NULL, 0, m2, sizeof(m2), &n) == 0);
		write_file(getenv("SP_FUZZ_WRITE_AES_SEEDS"), "ik_msg1_aesgcm", su->ik_msg1,
			   su->ik_msg1_len);
		write_file(getenv("SP_FUZZ_WRITE_AES_SEEDS"), "ik_msg2_aesgcm", m2, n);
		sp_noise_handshake_wipe(&hs);
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

/* (a)-(d) of the header, with one suite's states. */
static void run_suite(const struct suite *su, const uint8_t *data, size_t size)
{
	struct sp_noise_handshake hs;
	size_t len1, n;

	/* (a) IK responder, message 1 */
	hs = su->ik_resp;
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
		hs = su->xx_resp;
		if (read_msg(&hs, data + 2, len1) == 0) {
			check(sp_noise_handshake_write(&hs, NULL, 0, msg2, sizeof(msg2), &n) == 0);
			if (read_msg(&hs, data + 2 + len1, size - 2 - len1) == 0)
				finish(&hs);
		}
		sp_noise_handshake_wipe(&hs);
	}

	/* (c) initiators reading message 2 */
	hs = su->ik_init;
	if (read_msg(&hs, data, size) == 0)
		finish(&hs);
	sp_noise_handshake_wipe(&hs);

	hs = su->xx_init;
	if (read_msg(&hs, data, size) == 0) {
		check(sp_noise_handshake_write(&hs, NULL, 0, msg2, sizeof(msg2), &n) == 0);
		finish(&hs);
	}
	sp_noise_handshake_wipe(&hs);

	/* (d) NK: the responder reading message 1, the initiator message 2 */
	hs = su->nk_resp;
	if (read_msg(&hs, data, size) == 0) {
		check(sp_noise_handshake_write(&hs, NULL, 0, msg2, sizeof(msg2), &n) == 0);
		finish(&hs);
	}
	sp_noise_handshake_wipe(&hs);
	hs = su->nk_init;
	if (read_msg(&hs, data, size) == 0)
		finish(&hs);
	sp_noise_handshake_wipe(&hs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	for (unsigned a = 0; a < fx.n_suites; a++)
		run_suite(&fx.su[a], data, size);
	return 0;
}
