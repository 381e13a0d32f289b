/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_noise.c: Noise revision 34, suites 25519_ChaChaPoly_BLAKE2b and
 * 25519_AESGCM_BLAKE2b, patterns NN, NK, N, K, X, IK, XX, on libsodium.
 *
 * The handshake is driven by message-pattern token tables (one row per
 * message, read beside the spec's pattern notation). Every handshake step
 * works on a local copy of the HandshakeState and commits it only on success,
 * so a failed step can never leave a half-updated chaining key behind; on
 * failure the whole state is wiped and marked SP_NOISE_HS_FAILED.
 */
#include <errno.h>
#include <string.h>

#include "sp_noise.h"

_Static_assert(crypto_scalarmult_BYTES == SP_KEY_LEN, "X25519 key size");
_Static_assert(crypto_aead_chacha20poly1305_ietf_KEYBYTES == SP_KEY_LEN, "cipher key size");
_Static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == SP_TAG_LEN, "tag size");
_Static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12, "IETF nonce size");
_Static_assert(crypto_generichash_BYTES_MAX >= SP_HASH_LEN, "BLAKE2b-512");

enum { BLAKE2B_BLOCK_LEN = 128 }; /* HMAC block length for BLAKE2b (Noise 4.3) */

/* Message tokens. 0 ends a message row. */
enum token { T_END = 0, T_E, T_S, T_EE, T_ES, T_SE, T_SS };

enum { MSGS_MAX = 3, TOKENS_MAX = 4 };

/* The protocol name of each suite, indexed by enum sp_noise_aead. */
#define NAMES(p) { "Noise_" p "_25519_ChaChaPoly_BLAKE2b", "Noise_" p "_25519_AESGCM_BLAKE2b" }
enum { N_AEADS = 2 };

struct pattern_def {
	const char *name[N_AEADS];
	bool pre_init_s;                /* pre-message "-> s" */
	bool pre_resp_s;                /* pre-message "<- s" */
	bool one_way;
	uint8_t n_msgs;                 /* message i comes from the initiator iff i is even */
	uint8_t msgs[MSGS_MAX][TOKENS_MAX + 1];
};

static const struct pattern_def patterns[] = {
	[SP_NOISE_NN] = {
		.name = NAMES("NN"),
		.n_msgs = 2,
		.msgs = {
			{ T_E },                        /* -> e */
			{ T_E, T_EE },                  /* <- e, ee */
		},
	},
	[SP_NOISE_NK] = {
		.name = NAMES("NK"),
		.pre_resp_s = true,                     /* <- s ... */
		.n_msgs = 2,
		.msgs = {
			{ T_E, T_ES },                  /* -> e, es */
			{ T_E, T_EE },                  /* <- e, ee */
		},
	},
	[SP_NOISE_N] = {
		.name = NAMES("N"),
		.pre_resp_s = true,                     /* <- s ... */
		.one_way = true,
		.n_msgs = 1,
		.msgs = {
			{ T_E, T_ES },                  /* -> e, es */
		},
	},
	[SP_NOISE_K] = {
		.name = NAMES("K"),
		.pre_init_s = true,                     /* -> s */
		.pre_resp_s = true,                     /* <- s ... */
		.one_way = true,
		.n_msgs = 1,
		.msgs = {
			{ T_E, T_ES, T_SS },            /* -> e, es, ss */
		},
	},
	[SP_NOISE_X] = {
		.name = NAMES("X"),
		.pre_resp_s = true,                     /* <- s ... */
		.one_way = true,
		.n_msgs = 1,
		.msgs = {
			{ T_E, T_ES, T_S, T_SS },       /* -> e, es, s, ss */
		},
	},
	[SP_NOISE_IK] = {
		.name = NAMES("IK"),
		.pre_resp_s = true,                     /* <- s ... */
		.n_msgs = 2,
		.msgs = {
			{ T_E, T_ES, T_S, T_SS },       /* -> e, es, s, ss */
			{ T_E, T_EE, T_SE },            /* <- e, ee, se */
		},
	},
	[SP_NOISE_XX] = {
		.name = NAMES("XX"),
		.n_msgs = 3,
		.msgs = {
			{ T_E },                        /* -> e */
			{ T_E, T_EE, T_S, T_ES },       /* <- e, ee, s, es */
			{ T_S, T_SE },                  /* -> s, se */
		},
	},
};

enum { N_PATTERNS = sizeof(patterns) / sizeof(patterns[0]) };

static const struct pattern_def *pattern_get(enum sp_noise_pattern p)
{
	if ((unsigned)p >= N_PATTERNS)
		return NULL;
	return &patterns[p];
}

const char *sp_noise_protocol_name(enum sp_noise_pattern p)
{
	return sp_noise_suite_name(p, SP_NOISE_CHACHAPOLY);
}

const char *sp_noise_suite_name(enum sp_noise_pattern p, enum sp_noise_aead a)
{
	const struct pattern_def *d = pattern_get(p);

	return d && (unsigned)a < N_AEADS ? d->name[a] : NULL;
}

int sp_noise_pattern_from_name(const char *name, enum sp_noise_pattern *out)
{
	enum sp_noise_aead a;
	int ret = sp_noise_suite_from_name(name, out, &a);

	return ret == 0 && a != SP_NOISE_CHACHAPOLY ? -EINVAL : ret;
}

int sp_noise_suite_from_name(const char *name, enum sp_noise_pattern *p,
			     enum sp_noise_aead *a)
{
	if (!name || !p || !a)
		return -EINVAL;
	for (unsigned i = 0; i < N_PATTERNS; i++) {
		for (unsigned j = 0; j < N_AEADS; j++) {
			if (strcmp(name, patterns[i].name[j]) == 0) {
				*p = (enum sp_noise_pattern)i;
				*a = (enum sp_noise_aead)j;
				return 0;
			}
		}
	}
	return -EINVAL;
}

/* DH(): an all-zero output means the peer's key was of small order. */
static int dh(uint8_t out[SP_KEY_LEN], const uint8_t priv[SP_KEY_LEN],
	      const uint8_t pub[SP_KEY_LEN])
{
	if (crypto_scalarmult(out, priv, pub) != 0)
		return -EBADMSG;
	return 0;
}

/* ---- HASH, HMAC, HKDF (Noise 4.3) -------------------------------------------- */

static void hash2(uint8_t out[SP_HASH_LEN], const uint8_t *a, size_t a_len, const uint8_t *b,
		  size_t b_len)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, SP_HASH_LEN);
	crypto_generichash_update(&st, a, a_len);
	if (b_len)
		crypto_generichash_update(&st, b, b_len);
	crypto_generichash_final(&st, out, SP_HASH_LEN);
	sodium_memzero(&st, sizeof(st));
}

/*
 * HMAC-BLAKE2b per RFC 2104 with B = 128: libsodium has keyed BLAKE2b but
 * not HMAC over it, and Noise specifies HMAC. The key is always a 64-byte
 * chaining key or temp key here, so it never needs hashing down.
 * data2 may be NULL (one-part message).
 */
static void hmac(uint8_t out[SP_HASH_LEN], const uint8_t key[SP_HASH_LEN], const uint8_t *data,
		 size_t len, const uint8_t *data2, size_t len2)
{
	uint8_t pad[BLAKE2B_BLOCK_LEN];
	uint8_t inner[SP_HASH_LEN];
	crypto_generichash_state st;

	memset(pad, 0x36, sizeof(pad));
	for (size_t i = 0; i < SP_HASH_LEN; i++)
		pad[i] ^= key[i];
	crypto_generichash_init(&st, NULL, 0, SP_HASH_LEN);
	crypto_generichash_update(&st, pad, sizeof(pad));
	if (len)
		crypto_generichash_update(&st, data, len);
	if (len2)
		crypto_generichash_update(&st, data2, len2);
	crypto_generichash_final(&st, inner, sizeof(inner));

	memset(pad, 0x5c, sizeof(pad));
	for (size_t i = 0; i < SP_HASH_LEN; i++)
		pad[i] ^= key[i];
	crypto_generichash_init(&st, NULL, 0, SP_HASH_LEN);
	crypto_generichash_update(&st, pad, sizeof(pad));
	crypto_generichash_update(&st, inner, sizeof(inner));
	crypto_generichash_final(&st, out, SP_HASH_LEN);

	sodium_memzero(pad, sizeof(pad));
	sodium_memzero(inner, sizeof(inner));
	sodium_memzero(&st, sizeof(st));
}

/* HKDF(chaining_key, ikm, 2): the only output count without PSKs. */
static void hkdf2(uint8_t o1[SP_HASH_LEN], uint8_t o2[SP_HASH_LEN], const uint8_t ck[SP_HASH_LEN],
		  const uint8_t *ikm, size_t ikm_len)
{
	static const uint8_t one = 0x01, two = 0x02;
	uint8_t temp_key[SP_HASH_LEN];

	hmac(temp_key, ck, ikm, ikm_len, NULL, 0);
	hmac(o1, temp_key, &one, 1, NULL, 0);
	hmac(o2, temp_key, o1, SP_HASH_LEN, &two, 1);
	sodium_memzero(temp_key, sizeof(temp_key));
}

/* ---- CipherState (Noise 5.1) -------------------------------------------------- */

static void cipher_set_key(struct sp_noise_cipher *c, const uint8_t k[SP_KEY_LEN])
{
	memcpy(c->k, k, SP_KEY_LEN);
	c->n = 0;
	c->has_key = true;
}

/* ---- SymmetricState (Noise 5.2) ----------------------------------------------- */

static void mix_hash(struct sp_noise_symmetric *ss, const uint8_t *data, size_t len)
{
	hash2(ss->h, ss->h, SP_HASH_LEN, data, len);
}

static void mix_key(struct sp_noise_symmetric *ss, const uint8_t *ikm, size_t len)
{
	uint8_t ck[SP_HASH_LEN], k[SP_HASH_LEN];

	hkdf2(ck, k, ss->ck, ikm, len);
	memcpy(ss->ck, ck, SP_HASH_LEN);
	cipher_set_key(&ss->cs, k); /* HASHLEN 64: truncated to 32 */
	sodium_memzero(ck, sizeof(ck));
	sodium_memzero(k, sizeof(k));
}

/* out gets len (+ SP_TAG_LEN if keyed) bytes; plain may alias out exactly. */
static int encrypt_and_hash(struct sp_noise_symmetric *ss, const uint8_t *plain, size_t len,
			    uint8_t *out)
{
	size_t out_len = len;

	if (ss->cs.has_key) {
		if (ss->cs.n == UINT64_MAX)
			return -EOVERFLOW;
		sp_aead_seal((enum sp_noise_aead)ss->cs.aead, ss->cs.k, ss->cs.n, ss->h, SP_HASH_LEN,
			     plain, len, out);
		ss->cs.n++;
		out_len += SP_TAG_LEN;
	} else if (len) {
		memmove(out, plain, len);
	}
	mix_hash(ss, out, out_len);
	return 0;
}

/*
 * ct holds len bytes (tag included if keyed); plain gets len (- SP_TAG_LEN).
 * The new h is computed before decrypting so that plain may alias ct.
 */
static int decrypt_and_hash(struct sp_noise_symmetric *ss, const uint8_t *ct, size_t len,
			    uint8_t *plain)
{
	uint8_t h[SP_HASH_LEN];
	int ret = 0;

	hash2(h, ss->h, SP_HASH_LEN, ct, len);
	if (ss->cs.has_key) {
		if (len < SP_TAG_LEN) {
			ret = -EMSGSIZE;
			goto out;
		}
		if (ss->cs.n == UINT64_MAX) {
			ret = -EOVERFLOW;
			goto out;
		}
		if (sp_aead_open((enum sp_noise_aead)ss->cs.aead, ss->cs.k, ss->cs.n, ss->h,
				 SP_HASH_LEN, ct, len, plain)) {
			ret = -EBADMSG;
			goto out;
		}
		ss->cs.n++;
	} else if (len) {
		memmove(plain, ct, len);
	}
	memcpy(ss->h, h, SP_HASH_LEN);
out:
	sodium_memzero(h, sizeof(h));
	return ret;
}

/* ---- HandshakeState (Noise 5.3) ----------------------------------------------- */

static bool is_initiator(const struct sp_noise_handshake *hs)
{
	return hs->role == SP_NOISE_INITIATOR;
}

/* Whose turn after msg_index messages, or SPLIT when the pattern is done. */
static enum sp_noise_hs_state next_state(const struct sp_noise_handshake *hs)
{
	const struct pattern_def *d = &patterns[hs->pattern];
	bool init_sends;

	if (hs->msg_index >= d->n_msgs)
		return SP_NOISE_HS_SPLIT;
	init_sends = (hs->msg_index % 2) == 0;
	return init_sends == is_initiator(hs) ? SP_NOISE_HS_WRITE : SP_NOISE_HS_READ;
}

/* Does this side send its static key (pre-message or s token)? */
static bool side_needs_s(const struct pattern_def *d, bool initiator)
{
	if (initiator ? d->pre_init_s : d->pre_resp_s)
		return true;
	for (unsigned m = initiator ? 0 : 1; m < d->n_msgs; m += 2)
		for (unsigned t = 0; d->msgs[m][t] != T_END; t++)
			if (d->msgs[m][t] == T_S)
				return true;
	return false;
}

/* Length of message idx with a payload of payload_len, given the key state. */
static size_t message_len(const struct pattern_def *d, unsigned idx, bool has_key,
			  size_t payload_len)
{
	size_t len = 0;

	for (unsigned t = 0; d->msgs[idx][t] != T_END; t++) {
		switch (d->msgs[idx][t]) {
		case T_E:
			len += SP_KEY_LEN;
			break;
		case T_S:
			len += SP_KEY_LEN + (has_key ? SP_TAG_LEN : 0);
			break;
		default:
			has_key = true; /* every DH token ends in MixKey */
			break;
		}
	}
	return len + payload_len + (has_key ? SP_TAG_LEN : 0);
}

static void fail(struct sp_noise_handshake *hs)
{
	sodium_memzero(hs, sizeof(*hs));
	hs->state = SP_NOISE_HS_FAILED;
}

static int init_common(struct sp_noise_handshake *hs, enum sp_noise_pattern p,
		       enum sp_noise_aead a, enum sp_noise_role r, const uint8_t *prologue,
		       size_t prologue_len, const uint8_t *s_priv, const uint8_t *s_pub,
		       const uint8_t *rs, bool borrow);

int sp_noise_handshake_init(struct sp_noise_handshake *hs, enum sp_noise_pattern p,
			    enum sp_noise_role r, const uint8_t *prologue, size_t prologue_len,
			    const uint8_t *s_priv, const uint8_t *rs)
{
	return init_common(hs, p, SP_NOISE_CHACHAPOLY, r, prologue, prologue_len, s_priv, NULL,
			   rs, false);
}

int sp_noise_handshake_init_aead(struct sp_noise_handshake *hs, enum sp_noise_pattern p,
				 enum sp_noise_aead a, enum sp_noise_role r,
				 const uint8_t *prologue, size_t prologue_len,
				 const uint8_t *s_priv, const uint8_t *rs)
{
	return init_common(hs, p, a, r, prologue, prologue_len, s_priv, NULL, rs, false);
}

int sp_noise_handshake_init_keyed(struct sp_noise_handshake *hs, enum sp_noise_pattern p,
				  enum sp_noise_role r, const uint8_t *prologue,
				  size_t prologue_len, const uint8_t *s_priv,
				  const uint8_t *s_pub, const uint8_t *rs)
{
	return init_common(hs, p, SP_NOISE_CHACHAPOLY, r, prologue, prologue_len, s_priv, s_pub,
			   rs, true);
}

int sp_noise_handshake_init_keyed_aead(struct sp_noise_handshake *hs, enum sp_noise_pattern p,
				       enum sp_noise_aead a, enum sp_noise_role r,
				       const uint8_t *prologue, size_t prologue_len,
				       const uint8_t *s_priv, const uint8_t *s_pub,
				       const uint8_t *rs)
{
	return init_common(hs, p, a, r, prologue, prologue_len, s_priv, s_pub, rs, true);
}

static int init_common(struct sp_noise_handshake *hs, enum sp_noise_pattern p,
		       enum sp_noise_aead a, enum sp_noise_role r, const uint8_t *prologue,
		       size_t prologue_len, const uint8_t *s_priv, const uint8_t *s_pub,
		       const uint8_t *rs, bool borrow)
{
	const struct pattern_def *d = pattern_get(p);
	bool initiator = r == SP_NOISE_INITIATOR;
	const char *name;
	size_t name_len;
	int ret = 0;

	if (!hs)
		return -EINVAL;
	sodium_memzero(hs, sizeof(*hs));
	if (!d || (r != SP_NOISE_INITIATOR && r != SP_NOISE_RESPONDER) ||
	    (prologue_len && !prologue) || (unsigned)a >= N_AEADS) {
		ret = -EINVAL;
		goto out;
	}
	/* libsodium's AES-GCM needs AES-NI: without it there is no AESGCM. */
	if (!sp_noise_aead_available(a)) {
		ret = -ENOTSUP;
		goto out;
	}
	hs->pattern = p;
	hs->role = r;
	hs->ss.cs.aead = (uint8_t)a;

	if (side_needs_s(d, initiator)) {
		if (!s_priv) {
			ret = -EINVAL;
			goto out;
		}
		if (borrow)
			hs->s_key = s_priv;
		else
			memcpy(hs->s_priv, s_priv, SP_KEY_LEN);
		if (s_pub)
			memcpy(hs->s_pub, s_pub, SP_KEY_LEN);
		else if ((ret = sp_noise_public_key(hs->s_pub, s_priv)))
			goto out;
		hs->has_s = true;
	}
	/* The remote static is known in advance iff the peer's pre-message has s. */
	if (initiator ? d->pre_resp_s : d->pre_init_s) {
		if (!rs || !sp_noise_key_valid(rs)) {
			ret = -EINVAL;
			goto out;
		}
		memcpy(hs->rs, rs, SP_KEY_LEN);
		hs->has_rs = true;
	}

	/* InitializeSymmetric(protocol_name): the cipher is in the name, so a
	 * peer that negotiated the other one derives other keys. */
	name = d->name[a];
	name_len = strlen(name);
	if (name_len <= SP_HASH_LEN)
		memcpy(hs->ss.h, name, name_len); /* rest already zero */
	else
		hash2(hs->ss.h, (const uint8_t *)name, name_len, NULL, 0);
	memcpy(hs->ss.ck, hs->ss.h, SP_HASH_LEN);
	/* MixHash(prologue) */
	mix_hash(&hs->ss, prologue, prologue_len);
	/* pre-messages: the initiator's first, then the responder's */
	if (d->pre_init_s)
		mix_hash(&hs->ss, initiator ? hs->s_pub : hs->rs, SP_KEY_LEN);
	if (d->pre_resp_s)
		mix_hash(&hs->ss, initiator ? hs->rs : hs->s_pub, SP_KEY_LEN);

	hs->msg_index = 0;
	hs->state = next_state(hs);
out:
	if (ret)
		fail(hs);
	return ret;
}

int sp_noise_handshake_fix_ephemeral(struct sp_noise_handshake *hs,
				     const uint8_t e_priv[SP_KEY_LEN])
{
	if (!hs || !e_priv || hs->has_e ||
	    (hs->state != SP_NOISE_HS_WRITE && hs->state != SP_NOISE_HS_READ))
		return -EINVAL;
	memcpy(hs->e_priv, e_priv, SP_KEY_LEN);
	if (sp_noise_public_key(hs->e_pub, hs->e_priv) != 0) {
		sodium_memzero(hs->e_priv, SP_KEY_LEN);
		return -EINVAL;
	}
	hs->has_e = true;
	return 0;
}

static const uint8_t *s_key(const struct sp_noise_handshake *w)
{
	return w->s_key ? w->s_key : w->s_priv;
}

/* One DH token on w; es/se name the initiator's key first (Noise 7.1). */
static int dh_token(struct sp_noise_handshake *w, enum token t)
{
	uint8_t shared[SP_KEY_LEN];
	bool init = is_initiator(w);
	const uint8_t *priv, *pub;
	bool ok;
	int ret;

	switch (t) {
	case T_EE:
		priv = w->e_priv, pub = w->re, ok = w->has_e && w->has_re;
		break;
	case T_ES: /* initiator's e with responder's s */
		if (init)
			priv = w->e_priv, pub = w->rs, ok = w->has_e && w->has_rs;
		else
			priv = s_key(w), pub = w->re, ok = w->has_s && w->has_re;
		break;
	case T_SE: /* initiator's s with responder's e */
		if (init)
			priv = s_key(w), pub = w->re, ok = w->has_s && w->has_re;
		else
			priv = w->e_priv, pub = w->rs, ok = w->has_e && w->has_rs;
		break;
	case T_SS:
		priv = s_key(w), pub = w->rs, ok = w->has_s && w->has_rs;
		break;
	default:
		return -EINVAL;
	}
	if (!ok)
		return -EINVAL;
	ret = dh(shared, priv, pub);
	if (ret == 0)
		mix_key(&w->ss, shared, sizeof(shared));
	sodium_memzero(shared, sizeof(shared));
	return ret;
}

int sp_noise_handshake_write(struct sp_noise_handshake *hs, const uint8_t *payload,
			     size_t payload_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
	struct sp_noise_handshake w;
	const struct pattern_def *d;
	const uint8_t *row;
	size_t pos = 0, need;
	int ret = 0;

	if (!hs)
		return -EINVAL;
	w = *hs;
	if (hs->state != SP_NOISE_HS_WRITE || !out || !out_len || (payload_len && !payload)) {
		ret = -EINVAL;
		goto out;
	}
	d = &patterns[w.pattern];
	row = d->msgs[w.msg_index];
	need = message_len(d, w.msg_index, w.ss.cs.has_key, payload_len);
	if (payload_len > SP_NOISE_MSG_MAX || need > SP_NOISE_MSG_MAX || need > out_cap) {
		ret = -EMSGSIZE;
		goto out;
	}

	for (unsigned t = 0; row[t] != T_END; t++) {
		switch (row[t]) {
		case T_E: /* e */
			if (!w.has_e) {
				sp_noise_keypair(w.e_pub, w.e_priv);
				w.has_e = true;
			}
			memcpy(out + pos, w.e_pub, SP_KEY_LEN);
			mix_hash(&w.ss, w.e_pub, SP_KEY_LEN);
			pos += SP_KEY_LEN;
			break;
		case T_S: /* s */
			ret = encrypt_and_hash(&w.ss, w.s_pub, SP_KEY_LEN, out + pos);
			if (ret)
				goto out;
			pos += SP_KEY_LEN + (w.ss.cs.has_key ? SP_TAG_LEN : 0);
			break;
		default: /* ee, es, se, ss */
			ret = dh_token(&w, (enum token)row[t]);
			if (ret)
				goto out;
			break;
		}
	}
	/* payload */
	ret = encrypt_and_hash(&w.ss, payload, payload_len, out + pos);
	if (ret)
		goto out;
	pos += payload_len + (w.ss.cs.has_key ? SP_TAG_LEN : 0);

	w.msg_index++;
	w.state = next_state(&w);
	*hs = w;
	*out_len = pos;
out:
	if (ret)
		fail(hs);
	sodium_memzero(&w, sizeof(w));
	return ret;
}

int sp_noise_handshake_read(struct sp_noise_handshake *hs, const uint8_t *msg, size_t len,
			    uint8_t *payload_out, size_t payload_cap, size_t *payload_len)
{
	struct sp_noise_handshake w;
	const struct pattern_def *d;
	const uint8_t *row;
	size_t pos = 0, plen, clen;
	int ret = 0;

	if (!hs)
		return -EINVAL;
	w = *hs;
	if (hs->state != SP_NOISE_HS_READ || (len && !msg) || !payload_len) {
		ret = -EINVAL;
		goto out;
	}
	d = &patterns[w.pattern];
	row = d->msgs[w.msg_index];
	if (len > SP_NOISE_MSG_MAX || len < message_len(d, w.msg_index, w.ss.cs.has_key, 0)) {
		ret = -EMSGSIZE;
		goto out;
	}

	for (unsigned t = 0; row[t] != T_END; t++) {
		switch (row[t]) {
		case T_E: /* e */
			memcpy(w.re, msg + pos, SP_KEY_LEN);
			w.has_re = true;
			mix_hash(&w.ss, w.re, SP_KEY_LEN);
			pos += SP_KEY_LEN;
			if (!sp_noise_key_valid(w.re)) {
				ret = -EBADMSG;
				goto out;
			}
			break;
		case T_S: /* s */
			clen = SP_KEY_LEN + (w.ss.cs.has_key ? SP_TAG_LEN : 0);
			ret = decrypt_and_hash(&w.ss, msg + pos, clen, w.rs);
			if (ret)
				goto out;
			pos += clen;
			w.has_rs = true;
			if (!sp_noise_key_valid(w.rs)) {
				ret = -EBADMSG;
				goto out;
			}
			break;
		default: /* ee, es, se, ss */
			ret = dh_token(&w, (enum token)row[t]);
			if (ret)
				goto out;
			break;
		}
	}
	/* payload */
	clen = len - pos;
	plen = clen - (w.ss.cs.has_key ? SP_TAG_LEN : 0); /* the length check above: no wrap */
	if (plen > payload_cap || (plen && !payload_out)) {
		ret = -EMSGSIZE;
		goto out;
	}
	ret = decrypt_and_hash(&w.ss, msg + pos, clen, payload_out);
	if (ret)
		goto out;

	w.msg_index++;
	w.state = next_state(&w);
	*hs = w;
	*payload_len = plen;
out:
	if (ret)
		fail(hs);
	sodium_memzero(&w, sizeof(w));
	return ret;
}

/* Stack below sp_noise_handshake_split wiped after the split: more than
 * hkdf2 -> hmac -> crypto_generichash use (about 1 KiB). */
enum { SPLIT_STACK_WIPE = 4096 };

int sp_noise_handshake_split(struct sp_noise_handshake *hs, struct sp_noise_transport *t)
{
	uint8_t k1[SP_HASH_LEN], k2[SP_HASH_LEN];
	const struct pattern_def *d;
	bool init;

	if (!hs || !t)
		return -EINVAL;
	if (hs->state != SP_NOISE_HS_SPLIT)
		return -EINVAL;
	d = &patterns[hs->pattern];
	init = is_initiator(hs);

	sodium_memzero(t, sizeof(*t));
	t->tx.aead = t->rx.aead = hs->ss.cs.aead;
	hkdf2(k1, k2, hs->ss.ck, NULL, 0);
	/* k1 carries initiator -> responder, k2 the other way (HASHLEN 64: truncate). */
	cipher_set_key(init ? &t->tx : &t->rx, k1);
	cipher_set_key(init ? &t->rx : &t->tx, k2);
	/* One-way patterns: the reverse cipher must never be used (Noise 7.4). */
	if (d->one_way)
		sodium_memzero(init ? &t->rx : &t->tx, sizeof(struct sp_noise_cipher));
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
	/* BLAKE2b's own state and output buffers, below this frame, held the
	 * transport keys too: wiped, so that a thread that goes idle after a
	 * handshake (a broker shard that hands the connection on) keeps no copy
	 * on its stack (it_seizure). */
	sodium_stackzero(SPLIT_STACK_WIPE);

	/* Keep h and rs (channel binding, identity); drop every secret. The
	 * handshake is spent: EMPTY makes a second split fail. */
	sodium_memzero(hs->ss.ck, sizeof(hs->ss.ck));
	sodium_memzero(&hs->ss.cs, sizeof(hs->ss.cs));
	sodium_memzero(hs->s_priv, sizeof(hs->s_priv));
	hs->s_key = NULL;
	sodium_memzero(hs->e_priv, sizeof(hs->e_priv));
	hs->has_e = hs->has_s = false;
	hs->state = SP_NOISE_HS_EMPTY;
	return 0;
}

void sp_noise_handshake_hash(const struct sp_noise_handshake *hs, uint8_t out[SP_HASH_LEN])
{
	memcpy(out, hs->ss.h, SP_HASH_LEN);
}

int sp_noise_handshake_remote_static(const struct sp_noise_handshake *hs, uint8_t out[SP_KEY_LEN])
{
	if (!hs || !out)
		return -EINVAL;
	if (!hs->has_rs)
		return -ENOENT;
	memcpy(out, hs->rs, SP_KEY_LEN);
	return 0;
}

void sp_noise_handshake_wipe(struct sp_noise_handshake *hs)
{
	if (hs)
		sodium_memzero(hs, sizeof(*hs));
}
