/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sealpost-noise-vectors: checks lib/crypto/sp_noise.c against Noise test vectors
 * (cacophony's format, or the variant with "name" and no "handshake_hash").
 *
 *   sealpost-noise-vectors VECTORS.json
 *
 * Plays both sides of every *_25519_ChaChaPoly_BLAKE2b and
 * *_25519_AESGCM_BLAKE2b vector whose pattern sp_noise knows (NN, NK, N, K,
 * X, IK, XX) with the vector's fixed keys:
 * every handshake message is written by its sender (ciphertext compared) and
 * read by the other side (payload compared), then the handshake hash, then
 * the transport messages. Other suites and PSK variants are skipped and
 * counted; so are AESGCM vectors on a CPU without AES-NI (libsodium has no
 * AES-GCM there), said once on stderr. Exit status 0 only if no vector
 * failed and at least one ran.
 *
 * tests/unit/test_noise.c includes this file with SP_NOISE_VECTORS_NO_MAIN to
 * reuse run_vector().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "sp_noise.h"

enum vector_result { VEC_FAIL = 0, VEC_OK = 1, VEC_SKIP = 2 };

enum { VEC_BUF = SP_NOISE_MSG_MAX + 64 };

#define SUITE_CHACHA "_25519_ChaChaPoly_BLAKE2b"
#define SUITE_AESGCM "_25519_AESGCM_BLAKE2b"

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static const char *vector_name(json_t *v)
{
	const char *n = json_string_value(json_object_get(v, "protocol_name"));

	return n ? n : json_string_value(json_object_get(v, "name"));
}

/* Decodes the hex string field key into a fresh malloc'd buffer (NULL + 0 if absent). */
static int hex_field(json_t *v, const char *key, uint8_t **out, size_t *len)
{
	const char *hex = json_string_value(json_object_get(v, key));
	size_t hex_len;

	*out = NULL;
	*len = 0;
	if (!hex)
		return json_object_get(v, key) ? -EINVAL : -ENOENT;
	hex_len = strlen(hex);
	*out = malloc(hex_len / 2 + 1);
	if (!*out)
		return -ENOMEM;
	if (sodium_hex2bin(*out, hex_len / 2 + 1, hex, hex_len, NULL, len, NULL) != 0 ||
	    *len * 2 != hex_len) {
		free(*out);
		*out = NULL;
		return -EINVAL;
	}
	return 0;
}

/* An optional 32-byte key field: 0 and *present = false if absent. */
static int key_field(json_t *v, const char *key, uint8_t out[SP_KEY_LEN], bool *present)
{
	uint8_t *buf;
	size_t len;
	int ret = hex_field(v, key, &buf, &len);

	*present = false;
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	if (len != SP_KEY_LEN) {
		free(buf);
		return -EINVAL;
	}
	memcpy(out, buf, SP_KEY_LEN);
	free(buf);
	*present = true;
	return 0;
}

struct side {
	struct sp_noise_handshake hs;
	struct sp_noise_transport t;
	const char *label;
};

static int side_init(json_t *v, struct side *sd, enum sp_noise_pattern p, enum sp_noise_aead a,
		     enum sp_noise_role r, char *err, size_t err_len)
{
	const char *pre = r == SP_NOISE_INITIATOR ? "init" : "resp";
	char key[64];
	uint8_t s[SP_KEY_LEN], rs[SP_KEY_LEN], e[SP_KEY_LEN];
	bool has_s, has_rs, has_e;
	uint8_t *prologue = NULL;
	size_t prologue_len = 0;
	int ret;

	sd->label = r == SP_NOISE_INITIATOR ? "initiator" : "responder";
	snprintf(key, sizeof(key), "%s_static", pre);
	ret = key_field(v, key, s, &has_s);
	snprintf(key, sizeof(key), "%s_remote_static", pre);
	if (!ret)
		ret = key_field(v, key, rs, &has_rs);
	snprintf(key, sizeof(key), "%s_ephemeral", pre);
	if (!ret)
		ret = key_field(v, key, e, &has_e);
	snprintf(key, sizeof(key), "%s_prologue", pre);
	if (!ret) {
		ret = hex_field(v, key, &prologue, &prologue_len);
		if (ret == -ENOENT)
			ret = 0;
	}
	if (ret) {
		snprintf(err, err_len, "%s: bad key or prologue field", sd->label);
		goto out;
	}
	ret = sp_noise_handshake_init_aead(&sd->hs, p, a, r, prologue, prologue_len,
					   has_s ? s : NULL, has_rs ? rs : NULL);
	if (ret) {
		snprintf(err, err_len, "%s: init: %s", sd->label, strerror(-ret));
		goto out;
	}
	if (has_e) {
		ret = sp_noise_handshake_fix_ephemeral(&sd->hs, e);
		if (ret)
			snprintf(err, err_len, "%s: fix_ephemeral: %s", sd->label, strerror(-ret));
	}
out:
	free(prologue);
	sodium_memzero(s, sizeof(s));
	sodium_memzero(e, sizeof(e));
	return ret;
}

static bool one_way(enum sp_noise_pattern p)
{
	return p == SP_NOISE_N || p == SP_NOISE_K || p == SP_NOISE_X;
}

/* Checks one message: sender produces ct, receiver gets payload back. */
static int run_message(struct side *snd, struct side *rcv, bool handshake, const uint8_t *payload,
		       size_t payload_len, const uint8_t *ct, size_t ct_len, uint8_t *buf,
		       uint8_t *plain, char *err, size_t err_len)
{
	size_t out_len = 0, plain_len = 0;
	int ret;

	if (payload_len > SP_TRANSPORT_PLAINTEXT_MAX || ct_len > SP_NOISE_MSG_MAX) {
		snprintf(err, err_len, "message too long for sp_noise");
		return -EMSGSIZE;
	}
	if (handshake) {
		ret = sp_noise_handshake_write(&snd->hs, payload, payload_len, buf, VEC_BUF,
					       &out_len);
	} else {
		memcpy(buf, payload, payload_len);
		ret = sp_noise_encrypt(&snd->t.tx, buf, payload_len);
		out_len = payload_len + SP_TAG_LEN;
	}
	if (ret) {
		snprintf(err, err_len, "%s write: %s", snd->label, strerror(-ret));
		return ret;
	}
	if (out_len != ct_len || memcmp(buf, ct, ct_len) != 0) {
		snprintf(err, err_len, "%s wrote a different ciphertext", snd->label);
		return -EBADMSG;
	}
	if (handshake) {
		ret = sp_noise_handshake_read(&rcv->hs, ct, ct_len, plain, VEC_BUF, &plain_len);
	} else {
		memcpy(plain, ct, ct_len);
		ret = sp_noise_decrypt(&rcv->t.rx, plain, ct_len, &plain_len);
	}
	if (ret) {
		snprintf(err, err_len, "%s read: %s", rcv->label, strerror(-ret));
		return ret;
	}
	if (plain_len != payload_len || memcmp(plain, payload, payload_len) != 0) {
		snprintf(err, err_len, "%s read a different payload", rcv->label);
		return -EBADMSG;
	}
	return 0;
}

static int check_hash(json_t *v, struct side *a, struct side *b, char *err, size_t err_len)
{
	uint8_t ha[SP_HASH_LEN], hb[SP_HASH_LEN];
	uint8_t *want;
	size_t want_len;
	int ret = hex_field(v, "handshake_hash", &want, &want_len);

	sp_noise_handshake_hash(&a->hs, ha);
	sp_noise_handshake_hash(&b->hs, hb);
	if (memcmp(ha, hb, SP_HASH_LEN) != 0) {
		snprintf(err, err_len, "the two sides' handshake hashes differ");
		ret = -EBADMSG;
	} else if (ret == -ENOENT) {
		ret = 0; /* optional in some vector sets */
	} else if (ret) {
		snprintf(err, err_len, "bad handshake_hash field");
	} else if (want_len != SP_HASH_LEN || memcmp(want, ha, SP_HASH_LEN) != 0) {
		snprintf(err, err_len, "handshake hash differs from the vector's");
		ret = -EBADMSG;
	}
	free(want);
	return ret;
}

/*
 * Runs one vector. VEC_SKIP with the reason in err for vectors this
 * implementation does not cover; *n_msgs gets the messages checked.
 */
static enum vector_result run_vector(json_t *v, char *err, size_t err_len, size_t *n_msgs)
{
	struct side init = { 0 }, resp = { 0 };
	const char *name = vector_name(v);
	enum sp_noise_pattern p;
	enum sp_noise_aead a;
	json_t *msgs = json_object_get(v, "messages");
	uint8_t *buf = NULL, *plain = NULL;
	enum vector_result res = VEC_FAIL;
	size_t i, n;
	bool split = false;

	*n_msgs = 0;
	err[0] = 0;
	if (!name) {
		snprintf(err, err_len, "no protocol_name or name");
		return VEC_FAIL;
	}
	if (!ends_with(name, SUITE_CHACHA) && !ends_with(name, SUITE_AESGCM)) {
		snprintf(err, err_len, "other suite");
		return VEC_SKIP;
	}
	if (strstr(name, "psk")) {
		snprintf(err, err_len, "PSK pattern");
		return VEC_SKIP;
	}
	if (sp_noise_suite_from_name(name, &p, &a) != 0) {
		snprintf(err, err_len, "pattern not implemented");
		return VEC_SKIP;
	}
	if (!sp_noise_aead_available(a)) {
		snprintf(err, err_len, "AESGCM: this CPU has no AES-NI");
		return VEC_SKIP;
	}
	if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
		snprintf(err, err_len, "no messages");
		return VEC_FAIL;
	}
	buf = malloc(VEC_BUF);
	plain = malloc(VEC_BUF);
	if (!buf || !plain) {
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	if (side_init(v, &init, p, a, SP_NOISE_INITIATOR, err, err_len) ||
	    side_init(v, &resp, p, a, SP_NOISE_RESPONDER, err, err_len))
		goto out;

	n = json_array_size(msgs);
	for (i = 0; i < n; i++) {
		json_t *m = json_array_get(msgs, i);
		uint8_t *payload = NULL, *ct = NULL;
		size_t payload_len, ct_len;
		bool from_init = one_way(p) || i % 2 == 0;
		struct side *snd = from_init ? &init : &resp, *rcv = from_init ? &resp : &init;
		int ret;

		if (!split && init.hs.state == SP_NOISE_HS_SPLIT &&
		    resp.hs.state == SP_NOISE_HS_SPLIT) {
			if (check_hash(v, &init, &resp, err, err_len))
				goto out;
			if (sp_noise_handshake_split(&init.hs, &init.t) ||
			    sp_noise_handshake_split(&resp.hs, &resp.t)) {
				snprintf(err, err_len, "split failed");
				goto out;
			}
			split = true;
		}
		if (hex_field(m, "payload", &payload, &payload_len) ||
		    hex_field(m, "ciphertext", &ct, &ct_len)) {
			snprintf(err, err_len, "message %zu: bad hex", i);
			free(payload);
			free(ct);
			goto out;
		}
		ret = run_message(snd, rcv, !split, payload, payload_len, ct, ct_len, buf, plain,
				  err, err_len);
		free(payload);
		free(ct);
		if (ret) {
			size_t l = strlen(err);

			snprintf(err + l, err_len - l, " (message %zu)", i);
			goto out;
		}
		(*n_msgs)++;
	}
	if (!split) {
		/* The vector ended exactly at the end of the handshake, or before it. */
		if (init.hs.state != SP_NOISE_HS_SPLIT || resp.hs.state != SP_NOISE_HS_SPLIT) {
			snprintf(err, err_len, "vector ends before the handshake does");
			goto out;
		}
		if (check_hash(v, &init, &resp, err, err_len))
			goto out;
	}
	res = VEC_OK;
out:
	sp_noise_handshake_wipe(&init.hs);
	sp_noise_handshake_wipe(&resp.hs);
	sp_noise_transport_wipe(&init.t);
	sp_noise_transport_wipe(&resp.t);
	free(buf);
	free(plain);
	return res;
}

/* The vector array of a parsed file: top-level array or {"vectors": [...]}. */
static json_t *vector_array(json_t *root)
{
	if (json_is_array(root))
		return root;
	if (json_is_object(root) && json_is_array(json_object_get(root, "vectors")))
		return json_object_get(root, "vectors");
	return NULL;
}

#ifndef SP_NOISE_VECTORS_NO_MAIN
int main(int argc, char **argv)
{
	size_t passed = 0, failed = 0, skipped = 0;
	json_error_t jerr;
	json_t *root, *vecs;

	if (argc != 2) {
		fprintf(stderr, "usage: %s VECTORS.json\n", argv[0]);
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "sodium_init failed\n");
		return 1;
	}
	root = json_load_file(argv[1], 0, &jerr);
	if (!root) {
		fprintf(stderr, "%s:%d: %s\n", argv[1], jerr.line, jerr.text);
		return 1;
	}
	if (!sp_noise_aead_available(SP_NOISE_AESGCM))
		fprintf(stderr, "note: no AES-NI on this CPU: AESGCM vectors are skipped\n");
	vecs = vector_array(root);
	if (!vecs) {
		fprintf(stderr, "%s: neither an array nor an object with \"vectors\"\n", argv[1]);
		json_decref(root);
		return 1;
	}
	for (size_t i = 0; i < json_array_size(vecs); i++) {
		json_t *v = json_array_get(vecs, i);
		const char *name = vector_name(v);
		char err[256];
		size_t n_msgs;

		switch (run_vector(v, err, sizeof(err), &n_msgs)) {
		case VEC_OK:
			printf("ok    %s (%zu messages)\n", name, n_msgs);
			passed++;
			break;
		case VEC_SKIP:
			printf("skip  %s (%s)\n", name, err);
			skipped++;
			break;
		default:
			printf("FAIL  %s [#%zu]: %s\n", name ? name : "?", i, err);
			failed++;
			break;
		}
	}
	printf("%zu passed, %zu failed, %zu skipped\n", passed, failed, skipped);
	json_decref(root);
	return failed || passed == 0 ? 1 : 0;
}
#endif
