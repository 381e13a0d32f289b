/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_noise.c: lib/crypto/sp_noise.c against the published vectors and against
 * itself (round trips, state guards, tampering, low-order keys, streaming
 * equality, nonce exhaustion, wiping).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "sp_noise.h"

/* Reuses the vector runner's run_vector() (tests/noise_vectors.c). */
#define SP_NOISE_VECTORS_NO_MAIN
#include "noise_vectors.c"

static const enum sp_noise_pattern all_patterns[] = {
	SP_NOISE_NN, SP_NOISE_NK, SP_NOISE_N, SP_NOISE_K, SP_NOISE_X, SP_NOISE_IK, SP_NOISE_XX,
};

/* The AEAD the handshake and transport tests run with: ChaChaPoly, or AESGCM for the
 * *_aesgcm runs (cmocka prestate &aesgcm), which skip without AES-NI. */
static const uint8_t aesgcm = SP_NOISE_AESGCM;
static uint8_t cur_aead;

static void use_aead(void **state)
{
	cur_aead = state && *state ? *(const uint8_t *)*state : SP_NOISE_CHACHAPOLY;
	if (!sp_noise_aead_available((enum sp_noise_aead)cur_aead)) {
		print_message("no AES-NI on this CPU: AESGCM test skipped\n");
		skip();
	}
}

static bool is_zero(const void *p, size_t n)
{
	return sodium_is_zero(p, n) == 1;
}

/* ---- vectors ----------------------------------------------------------------- */

static void test_vectors(void **state)
{
	const char *path = getenv("SP_VECTORS");
	json_error_t jerr;
	json_t *root, *vecs;
	int ok_xx = 0, ok_ik = 0, ok_x = 0, ok_aes = 0, ok_total = 0;

	use_aead(state);
	if (!path || !*path) {
		print_message("SP_VECTORS not set: vector test skipped\n");
		skip();
	}
	root = json_load_file(path, 0, &jerr);
	assert_non_null(root);
	vecs = vector_array(root);
	assert_non_null(vecs);
	for (size_t i = 0; i < json_array_size(vecs); i++) {
		json_t *v = json_array_get(vecs, i);
		const char *name = vector_name(v);
		char err[256];
		size_t n_msgs;
		enum vector_result r = run_vector(v, err, sizeof(err), &n_msgs);

		if (r == VEC_FAIL)
			print_error("vector %s: %s\n", name ? name : "?", err);
		assert_int_not_equal(r, VEC_FAIL);
		if (r != VEC_OK)
			continue;
		ok_total++;
		assert_true(n_msgs > 0);
		ok_xx += strcmp(name, "Noise_XX_25519_ChaChaPoly_BLAKE2b") == 0;
		ok_ik += strcmp(name, "Noise_IK_25519_ChaChaPoly_BLAKE2b") == 0;
		ok_x += strcmp(name, "Noise_X_25519_ChaChaPoly_BLAKE2b") == 0;
		ok_aes += strcmp(name, "Noise_IK_25519_AESGCM_BLAKE2b") == 0 ||
			  strcmp(name, "Noise_XX_25519_AESGCM_BLAKE2b") == 0;
	}
	/* The negotiable cipher's vectors ran, where the CPU has it. */
	if (sp_noise_aead_available(SP_NOISE_AESGCM))
		assert_int_equal(ok_aes, 2);
	/* The patterns sealpost uses must have been covered. */
	assert_true(ok_xx > 0);
	assert_true(ok_ik > 0);
	assert_true(ok_x > 0);
	assert_true(ok_total >= 3);
	json_decref(root);
}

/* A vector whose ciphertext was altered must fail (the runner can fail). */
static void test_vectors_detect_corruption(void **state)
{
	const char *path = getenv("SP_VECTORS");
	json_error_t jerr;
	json_t *root, *vecs;
	int checked = 0;

	use_aead(state);
	if (!path || !*path)
		skip();
	root = json_load_file(path, 0, &jerr);
	assert_non_null(root);
	vecs = vector_array(root);
	for (size_t i = 0; i < json_array_size(vecs); i++) {
		json_t *v = json_array_get(vecs, i);
		json_t *msgs = json_object_get(v, "messages");
		char err[256];
		size_t n_msgs;

		if (run_vector(v, err, sizeof(err), &n_msgs) != VEC_OK)
			continue;
		for (size_t m = 0; m < json_array_size(msgs); m++) {
			json_t *msg = json_array_get(msgs, m);
			char *ct = strdup(json_string_value(json_object_get(msg, "ciphertext")));

			assert_non_null(ct);
			char *bad = strdup(ct);
			bad[0] = bad[0] == '0' ? '1' : '0';
			json_object_set_new(msg, "ciphertext", json_string(bad));
			assert_int_equal(run_vector(v, err, sizeof(err), &n_msgs), VEC_FAIL);
			json_object_set_new(msg, "ciphertext", json_string(ct));
			free(bad);
			free(ct);
			checked++;
		}
		/* and a wrong handshake hash */
		if (json_object_get(v, "handshake_hash")) {
			char *hh = strdup(json_string_value(json_object_get(v, "handshake_hash")));
			char *bad = strdup(hh);

			bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '0' ? '1' : '0';
			json_object_set_new(v, "handshake_hash", json_string(bad));
			assert_int_equal(run_vector(v, err, sizeof(err), &n_msgs), VEC_FAIL);
			json_object_set_new(v, "handshake_hash", json_string(hh));
			free(bad);
			free(hh);
		}
	}
	assert_true(checked > 0);
	json_decref(root);
}

/* ---- handshake helpers --------------------------------------------------------- */

struct peer {
	struct sp_noise_handshake hs;
	struct sp_noise_transport t;
	uint8_t s_pub[SP_KEY_LEN], s_priv[SP_KEY_LEN];
};

static bool needs_init_s(enum sp_noise_pattern p)
{
	return p == SP_NOISE_K || p == SP_NOISE_X || p == SP_NOISE_IK || p == SP_NOISE_XX;
}

static bool needs_resp_s(enum sp_noise_pattern p)
{
	return p != SP_NOISE_NN;
}

static bool init_knows_rs(enum sp_noise_pattern p)
{
	return p == SP_NOISE_NK || p == SP_NOISE_N || p == SP_NOISE_K || p == SP_NOISE_X ||
	       p == SP_NOISE_IK;
}

static void peers_init(enum sp_noise_pattern p, struct peer *i, struct peer *r,
		       const uint8_t *prologue, size_t prologue_len)
{
	memset(i, 0, sizeof(*i));
	memset(r, 0, sizeof(*r));
	sp_noise_keypair(i->s_pub, i->s_priv);
	sp_noise_keypair(r->s_pub, r->s_priv);
	assert_int_equal(sp_noise_handshake_init_aead(&i->hs, p, cur_aead, SP_NOISE_INITIATOR, prologue,
						 prologue_len,
						 needs_init_s(p) ? i->s_priv : NULL,
						 init_knows_rs(p) ? r->s_pub : NULL), 0);
	assert_int_equal(sp_noise_handshake_init_aead(&r->hs, p, cur_aead, SP_NOISE_RESPONDER, prologue,
						 prologue_len,
						 needs_resp_s(p) ? r->s_priv : NULL,
						 p == SP_NOISE_K ? i->s_pub : NULL), 0);
}

/*
 * Runs the handshake; tamper_msg/tamper_byte (or -1) flips a bit on the way.
 * Returns 0 when both sides reached SPLIT, else the first read's error.
 */
static int run_handshake(struct peer *i, struct peer *r, int tamper_msg, size_t tamper_byte,
			 uint8_t tamper_bit)
{
	uint8_t msg[SP_HANDSHAKE_MSG_MAX], payload[64], got[SP_HANDSHAKE_MSG_MAX];
	size_t len, got_len;
	int idx = 0, ret;

	while (i->hs.state != SP_NOISE_HS_SPLIT || r->hs.state != SP_NOISE_HS_SPLIT) {
		struct peer *w = i->hs.state == SP_NOISE_HS_WRITE ? i : r;
		struct peer *rd = w == i ? r : i;
		size_t plen = randombytes_uniform(sizeof(payload) + 1);

		assert_int_equal(w->hs.state, SP_NOISE_HS_WRITE);
		assert_int_equal(rd->hs.state, SP_NOISE_HS_READ);
		randombytes_buf(payload, plen);
		assert_int_equal(sp_noise_handshake_write(&w->hs, payload, plen, msg, sizeof(msg),
							  &len), 0);
		if (idx == tamper_msg) {
			if (tamper_byte >= len)
				return -ERANGE;
			msg[tamper_byte] ^= tamper_bit;
		}
		ret = sp_noise_handshake_read(&rd->hs, msg, len, got, sizeof(got), &got_len);
		if (ret) {
			assert_int_equal(rd->hs.state, SP_NOISE_HS_FAILED);
			return ret;
		}
		if (idx != tamper_msg) {
			assert_int_equal(got_len, plen);
			assert_memory_equal(got, payload, plen);
		}
		idx++;
	}
	return 0;
}

static void check_transport(struct peer *a, struct peer *b, bool two_way)
{
	uint8_t buf[600];
	size_t plain_len;

	for (int k = 0; k < 8; k++) {
		struct peer *snd = (two_way && k % 2) ? b : a, *rcv = snd == a ? b : a;
		size_t len = randombytes_uniform(sizeof(buf) - SP_TAG_LEN);
		uint8_t ref[sizeof(buf)];

		randombytes_buf(buf, len);
		memcpy(ref, buf, len);
		assert_int_equal(sp_noise_encrypt(&snd->t.tx, buf, len), 0);
		assert_int_equal(sp_noise_decrypt(&rcv->t.rx, buf, len + SP_TAG_LEN, &plain_len),
				 0);
		assert_int_equal(plain_len, len);
		assert_memory_equal(buf, ref, len);
	}
}

/* ---- round trips ------------------------------------------------------------- */

static void test_roundtrip_all_patterns(void **state)
{
	use_aead(state);
	for (size_t pi = 0; pi < sizeof(all_patterns) / sizeof(all_patterns[0]); pi++) {
		enum sp_noise_pattern p = all_patterns[pi];
		bool one_way = p == SP_NOISE_N || p == SP_NOISE_K || p == SP_NOISE_X;

		for (int rep = 0; rep < 4; rep++) {
			struct peer i, r;
			uint8_t hi[SP_HASH_LEN], hr[SP_HASH_LEN], k[SP_KEY_LEN];
			uint8_t prologue[8];
			size_t plen;

			randombytes_buf(prologue, sizeof(prologue));
			plen = randombytes_uniform(sizeof(prologue) + 1);
			peers_init(p, &i, &r, prologue, plen);
			assert_int_equal(run_handshake(&i, &r, -1, 0, 0), 0);
			sp_noise_handshake_hash(&i.hs, hi);
			sp_noise_handshake_hash(&r.hs, hr);
			assert_memory_equal(hi, hr, SP_HASH_LEN);
			/* each side learned (or was given) the other's static key */
			if (needs_init_s(p)) {
				assert_int_equal(sp_noise_handshake_remote_static(&r.hs, k), 0);
				assert_memory_equal(k, i.s_pub, SP_KEY_LEN);
			} else {
				assert_int_equal(sp_noise_handshake_remote_static(&r.hs, k),
						 -ENOENT);
			}
			if (needs_resp_s(p)) {
				assert_int_equal(sp_noise_handshake_remote_static(&i.hs, k), 0);
				assert_memory_equal(k, r.s_pub, SP_KEY_LEN);
			}
			assert_int_equal(sp_noise_handshake_split(&i.hs, &i.t), 0);
			assert_int_equal(sp_noise_handshake_split(&r.hs, &r.t), 0);
			check_transport(&i, &r, !one_way);
			if (one_way) {
				uint8_t b[SP_TAG_LEN + 1] = { 0 };

				assert_int_equal(sp_noise_encrypt(&r.t.tx, b, 1), -EINVAL);
				assert_int_equal(sp_noise_encrypt(&i.t.rx, b, 1), -EINVAL);
			}
			sp_noise_handshake_wipe(&i.hs);
			sp_noise_handshake_wipe(&r.hs);
			sp_noise_transport_wipe(&i.t);
			sp_noise_transport_wipe(&r.t);
		}
	}
}

/* A different prologue on each side must make the handshake fail. */
static void test_prologue_mismatch(void **state)
{
	const enum sp_noise_pattern ps[] = { SP_NOISE_IK, SP_NOISE_XX, SP_NOISE_X };

	use_aead(state);
	for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
		struct peer i, r;

		peers_init(ps[k], &i, &r, (const uint8_t *)"SEAL\x01\x01\0\0", 8);
		sp_noise_handshake_wipe(&r.hs);
		assert_int_equal(sp_noise_handshake_init(&r.hs, ps[k], SP_NOISE_RESPONDER,
							 (const uint8_t *)"SEAL\x01\x02\0\0", 8,
							 r.s_priv, NULL), 0);
		assert_int_equal(run_handshake(&i, &r, -1, 0, 0), -EBADMSG);
		sp_noise_handshake_wipe(&i.hs);
		sp_noise_handshake_wipe(&r.hs);
	}
}

static void test_protocol_names(void **state)
{
	use_aead(state);
	for (size_t pi = 0; pi < sizeof(all_patterns) / sizeof(all_patterns[0]); pi++) {
		enum sp_noise_pattern got;
		const char *n = sp_noise_protocol_name(all_patterns[pi]);

		assert_non_null(n);
		assert_int_equal(sp_noise_pattern_from_name(n, &got), 0);
		assert_int_equal(got, all_patterns[pi]);
	}
	assert_string_equal(sp_noise_protocol_name(SP_NOISE_IK),
			    "Noise_IK_25519_ChaChaPoly_BLAKE2b");
	{
		enum sp_noise_pattern got;

		assert_int_equal(sp_noise_pattern_from_name("Noise_IK_25519_AESGCM_BLAKE2b", &got),
				 -EINVAL);
		assert_int_equal(sp_noise_pattern_from_name("Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b",
							    &got), -EINVAL);
	}
}

/* ---- state guards -------------------------------------------------------------- */

static void test_state_guards(void **state)
{
	struct peer i, r;
	uint8_t msg[SP_HANDSHAKE_MSG_MAX] = { 0 }, pl[16];
	size_t len, plen;

	use_aead(state);
	/* responder writing first */
	peers_init(SP_NOISE_IK, &i, &r, NULL, 0);
	assert_int_equal(r.hs.state, SP_NOISE_HS_READ);
	assert_int_equal(sp_noise_handshake_write(&r.hs, NULL, 0, msg, sizeof(msg), &len),
			 -EINVAL);
	assert_int_equal(r.hs.state, SP_NOISE_HS_FAILED);
	/* initiator reading first */
	assert_int_equal(i.hs.state, SP_NOISE_HS_WRITE);
	assert_int_equal(sp_noise_handshake_read(&i.hs, msg, 48, pl, sizeof(pl), &plen), -EINVAL);
	assert_int_equal(i.hs.state, SP_NOISE_HS_FAILED);
	/* a failed handshake stays failed */
	assert_int_equal(sp_noise_handshake_write(&i.hs, NULL, 0, msg, sizeof(msg), &len),
			 -EINVAL);
	assert_int_equal(sp_noise_handshake_split(&i.hs, &i.t), -EINVAL);

	/* split too early, then twice */
	peers_init(SP_NOISE_XX, &i, &r, NULL, 0);
	assert_int_equal(sp_noise_handshake_split(&i.hs, &i.t), -EINVAL);
	peers_init(SP_NOISE_XX, &i, &r, NULL, 0);
	assert_int_equal(run_handshake(&i, &r, -1, 0, 0), 0);
	assert_int_equal(sp_noise_handshake_split(&i.hs, &i.t), 0);
	assert_int_equal(sp_noise_handshake_split(&i.hs, &i.t), -EINVAL);
	assert_int_equal(sp_noise_handshake_write(&r.hs, NULL, 0, msg, sizeof(msg), &len),
			 -EINVAL);

	/* fix_ephemeral after the ephemeral exists */
	peers_init(SP_NOISE_XX, &i, &r, NULL, 0);
	assert_int_equal(sp_noise_handshake_write(&i.hs, NULL, 0, msg, sizeof(msg), &len), 0);
	assert_int_equal(sp_noise_handshake_fix_ephemeral(&i.hs, i.s_priv), -EINVAL);

	/* missing keys the pattern needs */
	{
		struct sp_noise_handshake hs;
		uint8_t pub[SP_KEY_LEN], priv[SP_KEY_LEN];

		sp_noise_keypair(pub, priv);
		assert_int_equal(sp_noise_handshake_init(&hs, SP_NOISE_IK, SP_NOISE_INITIATOR,
							 NULL, 0, priv, NULL), -EINVAL);
		assert_int_equal(hs.state, SP_NOISE_HS_FAILED);
		assert_int_equal(sp_noise_handshake_init(&hs, SP_NOISE_IK, SP_NOISE_INITIATOR,
							 NULL, 0, NULL, pub), -EINVAL);
		assert_int_equal(sp_noise_handshake_init(&hs, SP_NOISE_XX, SP_NOISE_RESPONDER,
							 NULL, 0, NULL, NULL), -EINVAL);
		assert_int_equal(sp_noise_handshake_init(&hs, SP_NOISE_K, SP_NOISE_RESPONDER,
							 NULL, 0, priv, NULL), -EINVAL);
		assert_int_equal(sp_noise_handshake_init(&hs, (enum sp_noise_pattern)99,
							 SP_NOISE_RESPONDER, NULL, 0, priv, NULL),
				 -EINVAL);
		assert_int_equal(sp_noise_handshake_init(&hs, SP_NOISE_NN, SP_NOISE_RESPONDER,
							 NULL, 0, NULL, NULL), 0);
		sp_noise_handshake_wipe(&hs);
	}
	sp_noise_handshake_wipe(&i.hs);
	sp_noise_handshake_wipe(&r.hs);
	sp_noise_transport_wipe(&i.t);
}

static void test_sizes(void **state)
{
	struct peer i, r;
	uint8_t msg[SP_HANDSHAKE_MSG_MAX], pl[64];
	size_t len, plen;

	use_aead(state);
	/* IK msg1 with an empty payload: e + s + tag + tag */
	peers_init(SP_NOISE_IK, &i, &r, NULL, 0);
	assert_int_equal(sp_noise_handshake_write(&i.hs, NULL, 0, msg, 95, &len), -EMSGSIZE);
	peers_init(SP_NOISE_IK, &i, &r, NULL, 0);
	assert_int_equal(sp_noise_handshake_write(&i.hs, NULL, 0, msg, 96, &len), 0);
	assert_int_equal(len, 96);
	/* truncated */
	assert_int_equal(sp_noise_handshake_read(&r.hs, msg, 95, pl, sizeof(pl), &plen),
			 -EMSGSIZE);
	assert_int_equal(r.hs.state, SP_NOISE_HS_FAILED);
	/* payload buffer too small */
	peers_init(SP_NOISE_IK, &i, &r, NULL, 0);
	assert_int_equal(sp_noise_handshake_write(&i.hs, (const uint8_t *)"hello", 5, msg,
						  sizeof(msg), &len), 0);
	assert_int_equal(len, 101);
	assert_int_equal(sp_noise_handshake_read(&r.hs, msg, len, pl, 4, &plen), -EMSGSIZE);
	/* XX msg1 with a payload is in clear: e + payload */
	peers_init(SP_NOISE_XX, &i, &r, NULL, 0);
	assert_int_equal(sp_noise_handshake_write(&i.hs, (const uint8_t *)"abc", 3, msg,
						  sizeof(msg), &len), 0);
	assert_int_equal(len, 35);
	assert_int_equal(sp_noise_handshake_read(&r.hs, msg, 31, pl, sizeof(pl), &plen),
			 -EMSGSIZE);
	/* transport */
	{
		struct sp_noise_cipher c = { .has_key = true };
		static uint8_t big[SP_NOISE_MSG_MAX + 16];

		assert_int_equal(sp_noise_encrypt(&c, big, SP_TRANSPORT_PLAINTEXT_MAX + 1),
				 -EMSGSIZE);
		assert_int_equal(sp_noise_encrypt(&c, big, SP_TRANSPORT_PLAINTEXT_MAX), 0);
		c.n = 0;
		assert_int_equal(sp_noise_decrypt(&c, big, SP_NOISE_MSG_MAX, &plen), 0);
		assert_int_equal(plen, SP_TRANSPORT_PLAINTEXT_MAX);
		assert_int_equal(sp_noise_decrypt(&c, big, SP_TAG_LEN - 1, &plen), -EMSGSIZE);
		assert_int_equal(sp_noise_decrypt(&c, big, SP_NOISE_MSG_MAX + 1, &plen),
				 -EMSGSIZE);
	}
	sp_noise_handshake_wipe(&i.hs);
	sp_noise_handshake_wipe(&r.hs);
}

/* ---- tampering ------------------------------------------------------------------ */

/*
 * Every bit flip in every handshake message makes the handshake fail with
 * -EBADMSG: at once where the byte is authenticated, or at the peer's next
 * read where it only went into h (XX message 1 is e and a clear payload).
 */
static void test_tamper_handshake(void **state)
{
	const enum sp_noise_pattern ps[] = { SP_NOISE_IK, SP_NOISE_XX, SP_NOISE_X };
	const int n_msgs[] = { 2, 3, 1 };

	use_aead(state);
	for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
		for (int m = 0; m < n_msgs[k]; m++) {
			size_t tested = 0;

			for (size_t b = 0;; b++) {
				struct peer i, r;
				uint8_t bit = (uint8_t)(1u << (b % 8));
				int ret;

				peers_init(ps[k], &i, &r, NULL, 0);
				ret = run_handshake(&i, &r, m, b, bit);
				sp_noise_handshake_wipe(&i.hs);
				sp_noise_handshake_wipe(&r.hs);
				if (ret == -ERANGE)
					break; /* past the end of message m */
				assert_int_equal(ret, -EBADMSG);
				tested++;
			}
			assert_true(tested >= SP_KEY_LEN);
		}
	}
}

static void test_tamper_transport(void **state)
{
	struct sp_noise_cipher tx = { .has_key = true }, rx;
	uint8_t ct[200], buf[200];
	size_t len = 150, plen;

	use_aead(state);
	randombytes_buf(tx.k, sizeof(tx.k));
	tx.n = 7;
	rx = tx;
	randombytes_buf(ct, len);
	assert_int_equal(sp_noise_encrypt(&tx, ct, len), 0);
	for (size_t b = 0; b < len + SP_TAG_LEN; b++) {
		memcpy(buf, ct, len + SP_TAG_LEN);
		buf[b] ^= (uint8_t)(1u << (b % 8));
		assert_int_equal(sp_noise_decrypt(&rx, buf, len + SP_TAG_LEN, &plen), -EBADMSG);
		assert_int_equal(rx.n, 7); /* not advanced */
	}
	/* truncations */
	for (size_t l = SP_TAG_LEN; l < len + SP_TAG_LEN; l += 13) {
		memcpy(buf, ct, len + SP_TAG_LEN);
		assert_int_equal(sp_noise_decrypt(&rx, buf, l, &plen), -EBADMSG);
	}
	/* wrong nonce */
	memcpy(buf, ct, len + SP_TAG_LEN);
	rx.n = 8;
	assert_int_equal(sp_noise_decrypt(&rx, buf, len + SP_TAG_LEN, &plen), -EBADMSG);
	rx.n = 7;
	memcpy(buf, ct, len + SP_TAG_LEN);
	assert_int_equal(sp_noise_decrypt(&rx, buf, len + SP_TAG_LEN, &plen), 0);
	assert_int_equal(rx.n, 8);
	/* replay */
	memcpy(buf, ct, len + SP_TAG_LEN);
	assert_int_equal(sp_noise_decrypt(&rx, buf, len + SP_TAG_LEN, &plen), -EBADMSG);
}

/* ---- low-order keys ----------------------------------------------------------- */

static const uint8_t small_order[][SP_KEY_LEN] = {
	{ 0 },
	{ 1 },
	{ 0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
	  0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
	  0x5f, 0x49, 0xb8, 0x00 },
	{ 0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83,
	  0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd,
	  0xd0, 0x9f, 0x11, 0x57 },
	{ 0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0x7f },
	{ 0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0x7f },
	{ 0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0x7f },
};

static bool in_small_order(const uint8_t pt[SP_KEY_LEN])
{
	for (size_t k = 0; k < sizeof(small_order) / sizeof(small_order[0]); k++) {
		if (memcmp(pt, small_order[k], SP_KEY_LEN - 1) == 0 &&
		    (pt[SP_KEY_LEN - 1] & 0x7f) == small_order[k][SP_KEY_LEN - 1])
			return true;
	}
	return false;
}

/* Canonical: bit 255 clear and below p = 2^255 - 19 (written out
 * independently of sp_key.c: compare from the top byte down). */
static bool is_canonical(const uint8_t pt[SP_KEY_LEN])
{
	static const uint8_t p[SP_KEY_LEN] = { 0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
					       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f };

	for (int i = SP_KEY_LEN - 1; i >= 0; i--) {
		if (pt[i] != p[i])
			return pt[i] < p[i];
	}
	return false; /* equal to p */
}

static void test_low_order_keys(void **state)
{
	uint8_t priv[SP_KEY_LEN], pub[SP_KEY_LEN], out[SP_KEY_LEN], pt[SP_KEY_LEN];

	use_aead(state);
	sp_noise_keypair(pub, priv);
	for (size_t k = 0; k < sizeof(small_order) / sizeof(small_order[0]); k++) {
		for (int hi = 0; hi < 2; hi++) {
			memcpy(pt, small_order[k], SP_KEY_LEN);
			pt[31] |= hi ? 0x80 : 0;
			/* the table itself is right: every entry kills the DH */
			assert_int_equal(crypto_scalarmult(out, priv, pt), -1);
			assert_false(sp_noise_key_valid(pt));
			assert_false(sp_noise_key_valid_public(pt));
		}
	}
	/* the variable-time check gives the same answer on random strings,
	 * with the top byte forced to 0x7f (the slow side) a quarter of them */
	for (int n = 0; n < 100000; n++) {
		randombytes_buf(pt, SP_KEY_LEN);
		if (n % 4 == 0)
			pt[31] = 0x7f;
		assert_int_equal(sp_noise_key_valid_public(pt), sp_noise_key_valid(pt));
	}
	/* one bit off a low-order point is a fine key */
	for (int n = 0; n < 200; n++) {
		sp_noise_keypair(pub, priv);
		assert_true(sp_noise_key_valid(pub));
		assert_true(sp_noise_key_valid_public(pub));
		/* Ignored by X25519, so the same point spelt a second way: refused,
		 * or one device would have two addresses. */
		pub[31] |= 0x80;
		assert_false(sp_noise_key_valid(pub));
		assert_false(sp_noise_key_valid_public(pub));
	}
	memcpy(pt, small_order[2], SP_KEY_LEN);
	pt[0] ^= 1;
	assert_true(sp_noise_key_valid(pt));
	/* every bit that X25519 reads counts, in every word of the key (0 and 1,
	 * p - 1 and p, p - 1 and p + 1 are one bit apart: those stay refused) */
	for (size_t k = 0; k < sizeof(small_order) / sizeof(small_order[0]); k++) {
		for (int bit = 0; bit < 255; bit++) {
			memcpy(pt, small_order[k], SP_KEY_LEN);
			pt[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			assert_int_equal(sp_noise_key_valid(pt),
					 !in_small_order(pt) && is_canonical(pt));
			assert_int_equal(sp_noise_key_valid_public(pt),
					 sp_noise_key_valid(pt));
		}
	}
	/* Every non-canonical value (p + 2 .. 2^255 - 1 past the table's p,
	 * p + 1; all 0xff, the top bit with any low bytes) is refused. */
	for (int v = 0xef; v <= 0xff; v++) {
		memset(pt, 0xff, SP_KEY_LEN);
		pt[0] = (uint8_t)v;
		pt[31] = 0x7f;
		assert_false(sp_noise_key_valid(pt));
		assert_false(sp_noise_key_valid_public(pt));
		pt[31] = 0xff;
		assert_false(sp_noise_key_valid(pt));
		assert_false(sp_noise_key_valid_public(pt));
	}
	memset(pt, 0xff, SP_KEY_LEN);
	pt[0] = 0xec - 1; /* p - 2: canonical, not of small order */
	pt[31] = 0x7f;
	assert_true(sp_noise_key_valid(pt));

	/* given as rs: refused at init */
	for (size_t k = 0; k < sizeof(small_order) / sizeof(small_order[0]); k++) {
		struct sp_noise_handshake hs;

		assert_int_equal(sp_noise_handshake_init(&hs, SP_NOISE_IK, SP_NOISE_INITIATOR,
							 NULL, 0, priv, small_order[k]), -EINVAL);
	}
}

/* A peer presenting a low-order static key (or ephemeral) fails the read. */
static void test_low_order_peer(void **state)
{
	use_aead(state);
	for (size_t k = 0; k < sizeof(small_order) / sizeof(small_order[0]); k++) {
		struct peer i, r;
		uint8_t msg[SP_HANDSHAKE_MSG_MAX], pl[16];
		size_t len, plen;

		/* IK: the initiator's s in message 1 */
		peers_init(SP_NOISE_IK, &i, &r, NULL, 0);
		memcpy(i.hs.s_pub, small_order[k], SP_KEY_LEN);
		assert_int_equal(sp_noise_handshake_write(&i.hs, NULL, 0, msg, sizeof(msg), &len),
				 0);
		assert_int_equal(sp_noise_handshake_read(&r.hs, msg, len, pl, sizeof(pl), &plen),
				 -EBADMSG);
		/* XX: the initiator's e in message 1 */
		peers_init(SP_NOISE_XX, &i, &r, NULL, 0);
		assert_int_equal(sp_noise_handshake_write(&i.hs, NULL, 0, msg, sizeof(msg), &len),
				 0);
		memcpy(msg, small_order[k], SP_KEY_LEN);
		assert_int_equal(sp_noise_handshake_read(&r.hs, msg, len, pl, sizeof(pl), &plen),
				 -EBADMSG);
		sp_noise_handshake_wipe(&i.hs);
		sp_noise_handshake_wipe(&r.hs);
	}
}

/* ---- streaming ------------------------------------------------------------------ */

static void random_cipher(struct sp_noise_cipher *c)
{
	memset(c, 0, sizeof(*c));
	c->aead = cur_aead;
	randombytes_buf(c->k, sizeof(c->k));
	c->n = randombytes_random();
	c->has_key = true;
}

static void test_stream_equals_oneshot(void **state)
{
	static uint8_t plain[SP_TRANSPORT_PLAINTEXT_MAX], a[SP_NOISE_MSG_MAX],
		b[SP_NOISE_MSG_MAX];
	const size_t sizes[] = { 0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 191, 1000, 4103,
				 SP_TRANSPORT_PLAINTEXT_MAX };

	use_aead(state);
	randombytes_buf(plain, sizeof(plain));
	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		size_t len = sizes[si];

		for (int rep = 0; rep < 40; rep++) {
			struct sp_noise_cipher c1, c2;
			struct sp_noise_stream s;
			size_t done = 0, msg_len = 0, plen;
			/* mostly small pieces, sometimes big ones, often 0 and 1 */
			uint32_t max_piece = rep % 3 == 0 ? 3 : rep % 3 == 1 ? 130 : 70000;

			random_cipher(&c1);
			c2 = c1;
			memcpy(a, plain, len);
			assert_int_equal(sp_noise_encrypt(&c1, a, len), 0);

			assert_int_equal(sp_noise_stream_begin(&s, &c2, b, sizeof(b)), 0);
			while (done < len) {
				size_t piece = randombytes_uniform(max_piece + 1);

				if (piece > len - done)
					piece = len - done;
				assert_int_equal(sp_noise_stream_update(&s, plain + done, piece),
						 0);
				done += piece;
			}
			assert_int_equal(sp_noise_stream_update(&s, NULL, 0), 0);
			assert_int_equal(sp_noise_stream_end(&s, &msg_len), 0);
			assert_int_equal(msg_len, len + SP_TAG_LEN);
			assert_memory_equal(a, b, msg_len);
			assert_int_equal(c1.n, c2.n);
			assert_true(is_zero(&s, sizeof(s)));
			/* and it decrypts */
			c2.n--;
			assert_int_equal(sp_noise_decrypt(&c2, b, msg_len, &plen), 0);
			assert_int_equal(plen, len);
			assert_memory_equal(b, plain, len);
		}
	}
}

/* Encrypting in place through the stream (in == where the ciphertext goes). */
static void test_stream_in_place(void **state)
{
	static uint8_t plain[5000], a[5000 + SP_TAG_LEN], b[5000 + SP_TAG_LEN];
	struct sp_noise_cipher c1, c2;
	struct sp_noise_stream s;
	size_t done = 0, msg_len;

	use_aead(state);
	randombytes_buf(plain, sizeof(plain));
	random_cipher(&c1);
	c2 = c1;
	memcpy(a, plain, sizeof(plain));
	assert_int_equal(sp_noise_encrypt(&c1, a, sizeof(plain)), 0);
	memcpy(b, plain, sizeof(plain));
	assert_int_equal(sp_noise_stream_begin(&s, &c2, b, sizeof(b)), 0);
	while (done < sizeof(plain)) {
		size_t piece = randombytes_uniform(300);

		if (piece > sizeof(plain) - done)
			piece = sizeof(plain) - done;
		assert_int_equal(sp_noise_stream_update(&s, b + done, piece), 0);
		done += piece;
	}
	assert_int_equal(sp_noise_stream_end(&s, &msg_len), 0);
	assert_memory_equal(a, b, msg_len);
}

/*
 * Pieces from scattered sources and in place, more of them than the stream
 * keeps pending, with flushes at random points. The stream borrows a piece
 * until the next flush/end: it must not write to a source, and once flushed
 * the sources may be reused (scribbled over here) without changing the
 * result, which must still equal the one-shot encryption.
 */
static void test_stream_borrowed(void **state)
{
	static uint8_t plain[9000], pool[9000], a[9000 + SP_TAG_LEN], b[9000 + SP_TAG_LEN];

	use_aead(state);
	for (int rep = 0; rep < 300; rep++) {
		struct sp_noise_cipher c1, c2;
		struct sp_noise_stream s;
		size_t len = randombytes_uniform(sizeof(plain) + 1), done = 0, held = 0, msg_len;
		/* short pieces (many pending, fallback flushes), or long ones */
		uint32_t max_piece = rep % 2 ? 40 : 1500;

		randombytes_buf(plain, len);
		random_cipher(&c1);
		c2 = c1;
		memcpy(a, plain, len);
		assert_int_equal(sp_noise_encrypt(&c1, a, len), 0);
		memcpy(pool, plain, len);
		memset(b, 0xa5, sizeof(b));
		assert_int_equal(sp_noise_stream_begin(&s, &c2, b, sizeof(b)), 0);
		while (done < len) {
			size_t piece = randombytes_uniform(max_piece + 1);

			if (piece > len - done)
				piece = len - done;
			if (randombytes_uniform(3) == 0) {
				/* in place: written where its ciphertext goes */
				memcpy(b + done, plain + done, piece);
				assert_int_equal(sp_noise_stream_update(&s, b + done, piece), 0);
			} else {
				assert_int_equal(sp_noise_stream_update(&s, pool + done, piece), 0);
			}
			done += piece;
			if (randombytes_uniform(8) == 0) {
				/* released: nothing was written to the sources */
				assert_int_equal(sp_noise_stream_flush(&s), 0);
				assert_memory_equal(pool + held, plain + held, done - held);
				memset(pool + held, 0x5a, done - held);
				held = done;
			}
		}
		assert_int_equal(sp_noise_stream_end(&s, &msg_len), 0);
		assert_int_equal(msg_len, len + SP_TAG_LEN);
		assert_memory_equal(a, b, msg_len);
		assert_memory_equal(pool + held, plain + held, len - held);
		assert_true(is_zero(&s, sizeof(s)));
	}
	/* flush on a closed stream */
	{
		struct sp_noise_stream s;

		memset(&s, 0, sizeof(s));
		assert_int_equal(sp_noise_stream_flush(&s), -EINVAL);
	}
}

static void test_stream_limits(void **state)
{
	static uint8_t buf[SP_NOISE_MSG_MAX + 100], src[SP_NOISE_MSG_MAX + 100];
	struct sp_noise_cipher c;
	struct sp_noise_stream s;
	size_t msg_len;

	use_aead(state);
	random_cipher(&c);
	c.n = 5;
	/* cap */
	assert_int_equal(sp_noise_stream_begin(&s, &c, buf, SP_TAG_LEN - 1), -EMSGSIZE);
	assert_int_equal(sp_noise_stream_begin(&s, &c, buf, 100 + SP_TAG_LEN), 0);
	assert_int_equal(sp_noise_stream_update(&s, src, 60), 0);
	assert_int_equal(sp_noise_stream_update(&s, src, 41), -EMSGSIZE);
	assert_int_equal(s.len, 60); /* nothing appended */
	assert_int_equal(sp_noise_stream_update(&s, src, 40), 0);
	assert_int_equal(sp_noise_stream_end(&s, &msg_len), 0);
	assert_int_equal(msg_len, 100 + SP_TAG_LEN);
	assert_int_equal(c.n, 6);
	/* protocol maximum even with a bigger buffer */
	assert_int_equal(sp_noise_stream_begin(&s, &c, buf, sizeof(buf)), 0);
	assert_int_equal(sp_noise_stream_update(&s, src, SP_TRANSPORT_PLAINTEXT_MAX), 0);
	assert_int_equal(sp_noise_stream_update(&s, src, 1), -EMSGSIZE);
	/* abort: the nonce is not consumed, the state is wiped */
	sp_noise_stream_abort(&s);
	assert_int_equal(c.n, 6);
	assert_true(is_zero(&s, sizeof(s)));
	assert_int_equal(sp_noise_stream_update(&s, src, 1), -EINVAL);
	assert_int_equal(sp_noise_stream_end(&s, &msg_len), -EINVAL);
	/* no key */
	c.has_key = false;
	assert_int_equal(sp_noise_stream_begin(&s, &c, buf, sizeof(buf)), -EINVAL);
}

static void test_encryptv(void **state)
{
	static uint8_t plain[3000], a[3000 + SP_TAG_LEN], b[3000 + SP_TAG_LEN];

	use_aead(state);
	randombytes_buf(plain, sizeof(plain));
	for (int rep = 0; rep < 200; rep++) {
		struct sp_noise_cipher c1, c2;
		struct sp_noise_iov iov[12];
		size_t len = randombytes_uniform(sizeof(plain) + 1), done = 0, n = 0, out_len;

		while (n < 11 && done < len) {
			size_t piece = randombytes_uniform((uint32_t)(len - done + 1));

			iov[n].base = plain + done;
			iov[n].len = piece;
			done += piece;
			n++;
		}
		iov[n].base = plain + done;
		iov[n].len = len - done;
		n++;
		random_cipher(&c1);
		c2 = c1;
		memcpy(a, plain, len);
		assert_int_equal(sp_noise_encrypt(&c1, a, len), 0);
		assert_int_equal(sp_noise_encryptv(&c2, iov, n, b, sizeof(b), &out_len), 0);
		assert_int_equal(out_len, len + SP_TAG_LEN);
		assert_memory_equal(a, b, out_len);
		assert_int_equal(c1.n, c2.n);
	}
	/* too small an output: -EMSGSIZE, nonce untouched */
	{
		struct sp_noise_cipher c;
		struct sp_noise_iov iov = { plain, 100 };
		size_t out_len;

		random_cipher(&c);
		c.n = 3;
		assert_int_equal(sp_noise_encryptv(&c, &iov, 1, b, 100 + SP_TAG_LEN - 1, &out_len),
				 -EMSGSIZE);
		assert_int_equal(c.n, 3);
	}
}

/* ---- nonces ----------------------------------------------------------------------- */

static void test_nonce_exhaustion(void **state)
{
	struct sp_noise_cipher tx, rx;
	struct sp_noise_stream s;
	uint8_t buf[64];
	size_t plen;

	use_aead(state);
	random_cipher(&tx);
	tx.n = UINT64_MAX - 2;
	rx = tx;
	for (int k = 0; k < 2; k++) {
		memset(buf, 'x', 10);
		assert_int_equal(sp_noise_encrypt(&tx, buf, 10), 0);
		assert_int_equal(sp_noise_decrypt(&rx, buf, 10 + SP_TAG_LEN, &plen), 0);
		assert_int_equal(plen, 10);
	}
	assert_true(tx.n == UINT64_MAX && rx.n == UINT64_MAX);
	assert_int_equal(sp_noise_encrypt(&tx, buf, 10), -EOVERFLOW);
	assert_int_equal(sp_noise_decrypt(&rx, buf, 10 + SP_TAG_LEN, &plen), -EOVERFLOW);
	assert_int_equal(sp_noise_stream_begin(&s, &tx, buf, sizeof(buf)), -EOVERFLOW);
	assert_true(tx.n == UINT64_MAX);
	/* the nonce is the counter after 4 zero bytes: little-endian for
	 * ChaChaPoly, big-endian for AESGCM (Noise 12.3, 12.4), written out
	 * byte by byte here */
	{
		static const uint8_t le[12] = { 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1 };
		static const uint8_t be[12] = { 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8 };
		struct sp_noise_cipher c;
		uint8_t ref[20] = { 0 }, got[20] = { 0 }, other[20] = { 0 };

		random_cipher(&c);
		c.n = 0x0102030405060708ull;
		if (cur_aead == SP_NOISE_AESGCM) {
			crypto_aead_aes256gcm_encrypt(ref, NULL, ref, 4, NULL, 0, NULL, be, c.k);
			crypto_aead_aes256gcm_encrypt(other, NULL, other, 4, NULL, 0, NULL, le, c.k);
		} else {
			crypto_aead_chacha20poly1305_ietf_encrypt(ref, NULL, ref, 4, NULL, 0, NULL,
								  le, c.k);
			crypto_aead_chacha20poly1305_ietf_encrypt(other, NULL, other, 4, NULL, 0,
								  NULL, be, c.k);
		}
		assert_int_equal(sp_noise_encrypt(&c, got, 4), 0);
		assert_memory_equal(ref, got, 4 + SP_TAG_LEN);
		assert_memory_not_equal(other, got, 4 + SP_TAG_LEN);
	}
}

/* ---- AESGCM ------------------------------------------------------------------------ */

/*
 * The AESGCM suite beside ChaChaPoly: its names, every pattern round trip
 * with it, REKEY with AES-256-GCM itself, and a handshake whose two sides
 * chose different ciphers (what a downgraded preamble gives) failing at
 * the first encrypted token.
 */
static void test_aesgcm_suite(void **state)
{
	static const uint8_t maxnonce[12] = { 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
					      0xff, 0xff, 0xff, 0xff };
	uint8_t si[SP_KEY_LEN], sr[SP_KEY_LEN], pr[SP_KEY_LEN], msg[256], pl[256];
	uint8_t zeros[SP_KEY_LEN + SP_TAG_LEN] = { 0 }, want[SP_KEY_LEN + SP_TAG_LEN];
	enum sp_noise_pattern p;
	enum sp_noise_aead a;
	size_t len, plen;

	use_aead(state);
	assert_string_equal(sp_noise_suite_name(SP_NOISE_IK, SP_NOISE_AESGCM),
			    "Noise_IK_25519_AESGCM_BLAKE2b");
	assert_string_equal(sp_noise_suite_name(SP_NOISE_NK, SP_NOISE_AESGCM),
			    "Noise_NK_25519_AESGCM_BLAKE2b");
	assert_null(sp_noise_suite_name(SP_NOISE_IK, (enum sp_noise_aead)2));
	assert_int_equal(sp_noise_suite_from_name("Noise_XX_25519_AESGCM_BLAKE2b", &p, &a), 0);
	assert_true(p == SP_NOISE_XX && a == SP_NOISE_AESGCM);
	assert_int_equal(sp_noise_pattern_from_name("Noise_XX_25519_AESGCM_BLAKE2b", &p),
			 -EINVAL);
	assert_int_equal(sp_noise_suite_from_name("Noise_XX_25519_AESGCM_SHA256", &p, &a),
			 -EINVAL);

	sp_noise_keypair(pr, sr);
	randombytes_buf(si, sizeof(si));
	/* IK both sides AESGCM: transport ciphers carry it, and interoperate */
	for (int mismatch = 0; mismatch < 2; mismatch++) {
		struct sp_noise_handshake i, r;
		struct sp_noise_transport ti, tr;
		int ret;

		assert_int_equal(sp_noise_handshake_init_aead(&i, SP_NOISE_IK, SP_NOISE_AESGCM,
							      SP_NOISE_INITIATOR, NULL, 0, si, pr),
				 0);
		assert_int_equal(sp_noise_handshake_init_aead(&r, SP_NOISE_IK,
							      mismatch ? SP_NOISE_CHACHAPOLY
								       : SP_NOISE_AESGCM,
							      SP_NOISE_RESPONDER, NULL, 0, sr, NULL),
				 0);
		assert_int_equal(sp_noise_handshake_write(&i, (const uint8_t *)"hi", 2, msg,
							  sizeof(msg), &len), 0);
		ret = sp_noise_handshake_read(&r, msg, len, pl, sizeof(pl), &plen);
		if (mismatch) {
			/* other name, other h and ck: s does not decrypt */
			assert_int_equal(ret, -EBADMSG);
			assert_int_equal(r.state, SP_NOISE_HS_FAILED);
			sp_noise_handshake_wipe(&i);
			continue;
		}
		assert_int_equal(ret, 0);
		assert_int_equal(sp_noise_handshake_write(&r, NULL, 0, msg, sizeof(msg), &len), 0);
		assert_int_equal(sp_noise_handshake_read(&i, msg, len, pl, sizeof(pl), &plen), 0);
		assert_int_equal(sp_noise_handshake_split(&i, &ti), 0);
		assert_int_equal(sp_noise_handshake_split(&r, &tr), 0);
		assert_int_equal(ti.tx.aead, SP_NOISE_AESGCM);
		assert_int_equal(tr.rx.aead, SP_NOISE_AESGCM);
		memset(msg, 7, 100);
		assert_int_equal(sp_noise_encrypt(&ti.tx, msg, 100), 0);
		/* it really is AES-256-GCM with the big-endian nonce 0 */
		memset(pl, 7, 100);
		{
			uint8_t ref[100 + SP_TAG_LEN];
			static const uint8_t n0[12] = { 0 };

			crypto_aead_aes256gcm_encrypt(ref, NULL, pl, 100, NULL, 0, NULL, n0,
						      tr.rx.k);
			assert_memory_equal(ref, msg, sizeof(ref));
		}
		assert_int_equal(sp_noise_decrypt(&tr.rx, msg, 100 + SP_TAG_LEN, &plen), 0);
		sp_noise_handshake_wipe(&i);
		sp_noise_handshake_wipe(&r);
		sp_noise_transport_wipe(&ti);
		sp_noise_transport_wipe(&tr);
	}

	/* REKEY = the first 32 bytes of AES-256-GCM(k, 2^64 - 1, zeros) */
	{
		struct sp_noise_cipher c;

		random_cipher(&c);
		crypto_aead_aes256gcm_encrypt(want, NULL, zeros, SP_KEY_LEN, NULL, 0, NULL,
					      maxnonce, c.k);
		assert_int_equal(sp_noise_rekey(&c), 0);
		assert_memory_equal(c.k, want, SP_KEY_LEN);
	}
	/* and the automatic rekey at the interval keeps both sides in step */
	{
		struct sp_noise_cipher tx, rx;

		random_cipher(&tx);
		tx.n = 0;
		tx.rekey_every = 3;
		rx = tx;
		for (int m = 0; m < 10; m++) {
			struct sp_noise_iov iov = { pl, 40 };

			memset(pl, m, 40);
			assert_int_equal(sp_noise_encryptv(&tx, &iov, 1, msg, sizeof(msg), &len), 0);
			assert_int_equal(sp_noise_decrypt(&rx, msg, len, &plen), 0);
			assert_int_equal(msg[39], m);
		}
		assert_memory_equal(tx.k, rx.k, SP_KEY_LEN);
		memcpy(want, tx.k, SP_KEY_LEN);
		assert_int_equal(tx.n, 10);
	}
	sodium_memzero(si, sizeof(si));
	sodium_memzero(sr, sizeof(sr));
}

/* ---- wiping ------------------------------------------------------------------------ */

static void test_wipe(void **state)
{
	struct peer i, r;
	uint8_t h[SP_HASH_LEN], k[SP_KEY_LEN];
	uint8_t msg[SP_HANDSHAKE_MSG_MAX], pl[16];
	size_t len, plen;

	use_aead(state);
	peers_init(SP_NOISE_XX, &i, &r, NULL, 0);
	assert_int_equal(run_handshake(&i, &r, -1, 0, 0), 0);
	sp_noise_handshake_hash(&i.hs, h);
	assert_int_equal(sp_noise_handshake_split(&i.hs, &i.t), 0);
	/* split drops the secrets, keeps h and rs */
	assert_true(is_zero(i.hs.s_priv, SP_KEY_LEN));
	assert_true(is_zero(i.hs.e_priv, SP_KEY_LEN));
	assert_true(is_zero(i.hs.ss.ck, SP_HASH_LEN));
	assert_true(is_zero(&i.hs.ss.cs, sizeof(i.hs.ss.cs)));
	assert_false(is_zero(i.t.tx.k, SP_KEY_LEN));
	assert_memory_equal(i.hs.ss.h, h, SP_HASH_LEN);
	assert_int_equal(sp_noise_handshake_remote_static(&i.hs, k), 0);
	assert_memory_equal(k, r.s_pub, SP_KEY_LEN);

	sp_noise_handshake_wipe(&i.hs);
	assert_true(is_zero(&i.hs, sizeof(i.hs)));
	assert_int_equal(i.hs.state, SP_NOISE_HS_EMPTY);
	sp_noise_transport_wipe(&i.t);
	assert_true(is_zero(&i.t, sizeof(i.t)));

	/* a failure wipes the secrets too */
	peers_init(SP_NOISE_IK, &i, &r, NULL, 0);
	assert_int_equal(sp_noise_handshake_write(&i.hs, NULL, 0, msg, sizeof(msg), &len), 0);
	msg[40] ^= 1;
	assert_int_equal(sp_noise_handshake_read(&r.hs, msg, len, pl, sizeof(pl), &plen),
			 -EBADMSG);
	assert_int_equal(r.hs.state, SP_NOISE_HS_FAILED);
	assert_true(is_zero(r.hs.s_priv, SP_KEY_LEN));
	assert_true(is_zero(r.hs.ss.ck, SP_HASH_LEN));
	assert_true(is_zero(&r.hs.ss.cs, sizeof(r.hs.ss.cs)));
	sp_noise_handshake_wipe(&i.hs);
	sp_noise_handshake_wipe(&r.hs);
}

static void test_public_key(void **state)
{
	uint8_t pub[SP_KEY_LEN], priv[SP_KEY_LEN], pub2[SP_KEY_LEN];

	use_aead(state);
	sp_noise_keypair(pub, priv);
	assert_int_equal(sp_noise_public_key(pub2, priv), 0);
	assert_memory_equal(pub, pub2, SP_KEY_LEN);
	assert_true(sp_noise_key_valid(pub));
}

/* A responder given its public key (as the broker does) handshakes exactly as
 * one that derives it; a wrong one is used as given, and the handshake fails. */
static void test_init_keyed(void **state)
{
	static const uint8_t pro[] = "keyed";
	struct peer i, r;

	use_aead(state);
	for (int wrong = 0; wrong < 2; wrong++) {
		for (int k = 0; k < 2; k++) {
			enum sp_noise_pattern p = k ? SP_NOISE_XX : SP_NOISE_IK;
			uint8_t given[SP_KEY_LEN];

			peers_init(p, &i, &r, pro, sizeof(pro));
			memcpy(given, r.s_pub, SP_KEY_LEN);
			given[0] ^= (uint8_t)wrong;
			assert_int_equal(sp_noise_handshake_init_keyed(&r.hs, p, SP_NOISE_RESPONDER,
								       pro, sizeof(pro), r.s_priv,
								       given, NULL), 0);
			assert_memory_equal(r.hs.s_pub, given, SP_KEY_LEN);
			/* The static key is borrowed: no copy of it in the handshake state. */
			assert_true(sodium_is_zero(r.hs.s_priv, SP_KEY_LEN));
			assert_ptr_equal(r.hs.s_key, r.s_priv);
			if (!wrong) {
				assert_int_equal(run_handshake(&i, &r, -1, 0, 0), 0);
				assert_int_equal(sp_noise_handshake_split(&i.hs, &i.t), 0);
				assert_int_equal(sp_noise_handshake_split(&r.hs, &r.t), 0);
				check_transport(&i, &r, true);
				sp_noise_transport_wipe(&i.t);
				sp_noise_transport_wipe(&r.t);
			} else {
				/* IK: the initiator's es/ss use the real key; XX: the
				 * initiator's es uses the wrong one it was sent */
				assert_int_equal(run_handshake(&i, &r, -1, 0, 0), -EBADMSG);
			}
			sp_noise_handshake_wipe(&i.hs);
			sp_noise_handshake_wipe(&r.hs);
		}
	}
	/* NULL: derived, as sp_noise_handshake_init does */
	peers_init(SP_NOISE_IK, &i, &r, pro, sizeof(pro));
	assert_int_equal(sp_noise_handshake_init_keyed(&r.hs, SP_NOISE_IK, SP_NOISE_RESPONDER, pro,
						       sizeof(pro), r.s_priv, NULL, NULL), 0);
	assert_memory_equal(r.hs.s_pub, r.s_pub, SP_KEY_LEN);
	assert_int_equal(run_handshake(&i, &r, -1, 0, 0), 0);
	sp_noise_handshake_wipe(&i.hs);
	sp_noise_handshake_wipe(&r.hs);
}

/*
 * REKEY (Noise 4.2): k' = the first 32 bytes of the ChaCha20-Poly1305
 * encryption of 32 zero bytes under k with nonce 2^64 - 1, computed here
 * straight from libsodium; and every transport path (one message,
 * gathered/streamed, decrypt) rekeys at the interval, so a streamed sender
 * and a plain receiver stay in step.
 */
static void test_rekey(void **state)
{
	static const uint8_t maxnonce[12] = { 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
					      0xff, 0xff, 0xff, 0xff };
	struct sp_noise_cipher a = { .has_key = true }, b;
	uint8_t zeros[SP_KEY_LEN + SP_TAG_LEN] = { 0 }, want[SP_KEY_LEN + SP_TAG_LEN];
	uint8_t msg[64 + SP_TAG_LEN], out[64 + SP_TAG_LEN];
	size_t plen, olen;

	use_aead(state);
	randombytes_buf(a.k, sizeof(a.k));
	crypto_aead_chacha20poly1305_ietf_encrypt(want, NULL, zeros, SP_KEY_LEN, NULL, 0, NULL,
						  maxnonce, a.k);
	b = a;
	assert_int_equal(sp_noise_rekey(&b), 0);
	assert_memory_equal(b.k, want, SP_KEY_LEN);
	assert_int_equal(b.n, a.n);             /* the nonce is not reset */
	b.has_key = false;
	assert_int_equal(sp_noise_rekey(&b), -EINVAL);

	/* Interval 2, three paths on the sending side, one receiver. */
	b = a;
	a.rekey_every = b.rekey_every = 2;
	for (int m = 0; m < 9; m++) {
		struct sp_noise_iov iov = { msg, 64 };

		memset(msg, m, 64);
		if (m % 3 == 0) {
			assert_int_equal(sp_noise_encrypt(&a, msg, 64), 0);
			memcpy(out, msg, sizeof(out));
		} else {
			assert_int_equal(sp_noise_encryptv(&a, &iov, 1, out, sizeof(out), &olen), 0);
			assert_int_equal(olen, 64 + SP_TAG_LEN);
		}
		assert_int_equal(sp_noise_decrypt(&b, out, 64 + SP_TAG_LEN, &plen), 0);
		assert_int_equal(plen, 64);
		for (int k = 0; k < 64; k++)
			assert_int_equal(out[k], m);
		assert_memory_equal(a.k, b.k, SP_KEY_LEN);
		assert_int_equal(a.n, (uint64_t)m + 1);
	}
	/* After 9 messages at interval 2: four rekeys (after nonces 1, 3, 5, 7). */
	{
		struct sp_noise_cipher c = { .has_key = true };

		memcpy(c.k, want, SP_KEY_LEN); /* = REKEY(k0), computed above */
		for (int r = 1; r < 4; r++)
			assert_int_equal(sp_noise_rekey(&c), 0);
		assert_memory_equal(c.k, a.k, SP_KEY_LEN);
	}

	/* The last nonces: 2^64 - 2 is used, 2^64 - 1 never. */
	a.n = UINT64_MAX - 1;
	a.rekey_every = 0;
	assert_int_equal(sp_noise_encrypt(&a, msg, 16), 0);
	assert_int_equal(a.n, UINT64_MAX);
	assert_int_equal(sp_noise_encrypt(&a, msg, 16), -EOVERFLOW);
	{
		struct sp_noise_iov iov = { msg, 16 };

		assert_int_equal(sp_noise_encryptv(&a, &iov, 1, out, sizeof(out), &olen),
				 -EOVERFLOW);
	}
	assert_int_equal(sp_noise_decrypt(&a, out, 32, &plen), -EOVERFLOW);
	assert_int_equal(a.n, UINT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_vectors_detect_corruption),
		cmocka_unit_test(test_roundtrip_all_patterns),
		cmocka_unit_test_prestate(test_roundtrip_all_patterns, (void *)&aesgcm),
		cmocka_unit_test(test_prologue_mismatch),
		cmocka_unit_test(test_protocol_names),
		cmocka_unit_test(test_state_guards),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_tamper_handshake),
		cmocka_unit_test(test_tamper_transport),
		cmocka_unit_test(test_low_order_keys),
		cmocka_unit_test(test_low_order_peer),
		cmocka_unit_test(test_stream_equals_oneshot),
		cmocka_unit_test_prestate(test_stream_equals_oneshot, (void *)&aesgcm),
		cmocka_unit_test(test_stream_in_place),
		cmocka_unit_test_prestate(test_stream_in_place, (void *)&aesgcm),
		cmocka_unit_test(test_stream_borrowed),
		cmocka_unit_test_prestate(test_stream_borrowed, (void *)&aesgcm),
		cmocka_unit_test(test_stream_limits),
		cmocka_unit_test_prestate(test_stream_limits, (void *)&aesgcm),
		cmocka_unit_test(test_encryptv),
		cmocka_unit_test_prestate(test_encryptv, (void *)&aesgcm),
		cmocka_unit_test(test_nonce_exhaustion),
		cmocka_unit_test_prestate(test_nonce_exhaustion, (void *)&aesgcm),
		cmocka_unit_test_prestate(test_aesgcm_suite, (void *)&aesgcm),
		cmocka_unit_test(test_wipe),
		cmocka_unit_test(test_public_key),
		cmocka_unit_test(test_init_keyed),
		cmocka_unit_test(test_rekey),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
