/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_key.c: device keys, hex helpers and end-to-end envelopes (public API
 * part of libsealpost). Thin on purpose: the format lives in lib/crypto/
 * (sp_keyfile, sp_seal); this file adds guarded key memory and the public
 * names.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "sealpost.h"
#include "sp_frame.h"
#include "sp_internal.h"
#include "sp_keyfile.h"
#include "sp_noise.h"
#include "sp_seal.h"

_Static_assert((int)SEALPOST_KEY_LEN == (int)SP_KEY_LEN, "public key length");
_Static_assert((int)SEALPOST_KEY_HEX_LEN == (int)SP_KEY_HEX_LEN, "public hex length");
_Static_assert((int)SEALPOST_SEAL_OVERHEAD == (int)SP_SEAL_OVERHEAD, "public seal overhead");
_Static_assert((int)SEALPOST_ENVELOPE_MAX == (int)SP_BODY_MAX, "public envelope maximum");
_Static_assert((int)SEALPOST_MESSAGE_MAX == (int)SP_MESSAGE_MAX, "public message maximum");

static struct sealpost_key *key_alloc(void)
{
	/* Idempotent and thread-safe since libsodium 1.0.11; every entry point
	 * that can be the first call into libsodium goes through here. */
	if (sodium_init() < 0)
		return NULL;
	return sodium_malloc(sizeof(struct sealpost_key));
}

SEALPOST_API int sealpost_key_generate(struct sealpost_key **out)
{
	struct sealpost_key *k;

	if (!out)
		return -EINVAL;
	k = key_alloc();
	if (!k)
		return -ENOMEM;
	sp_noise_keypair(k->pub, k->priv);
	/* Read-only from here on: a stray write faults instead of corrupting. */
	sodium_mprotect_readonly(k);
	*out = k;
	return 0;
}

SEALPOST_API int sealpost_key_from_private(struct sealpost_key **out,
					   const uint8_t priv[SEALPOST_KEY_LEN])
{
	struct sealpost_key *k;
	int r;

	if (!out || !priv)
		return -EINVAL;
	k = key_alloc();
	if (!k)
		return -ENOMEM;
	memcpy(k->priv, priv, SP_KEY_LEN);
	r = sp_noise_public_key(k->pub, k->priv);
	if (r == 0 && !sp_noise_key_valid(k->pub))
		r = -EINVAL;
	if (r < 0) {
		sealpost_key_free(k);
		return r;
	}
	sodium_mprotect_readonly(k);
	*out = k;
	return 0;
}

SEALPOST_API int sealpost_key_load(struct sealpost_key **out, const char *path)
{
	uint8_t priv[SP_KEY_LEN];
	int r;

	if (!out || !path)
		return -EINVAL;
	r = sp_keyfile_read_private(path, priv);
	if (r == -EACCES) {
		/* Ours (a mode others can read) or the system's (no permission
		 * to open it): the mode tells them apart. */
		struct stat st;

		if (stat(path, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
			r = -SEALPOST_EKEYMODE;
	} else if (r == -EBADMSG) {
		r = -SEALPOST_EKEYFORMAT;
	}
	if (r < 0)
		goto out;
	r = sealpost_key_from_private(out, priv);
out:
	sodium_memzero(priv, sizeof(priv));
	return r;
}

SEALPOST_API int sealpost_key_save(const struct sealpost_key *key, const char *path)
{
	if (!key || !path)
		return -EINVAL;
	return sp_keyfile_write_private(path, key->priv);
}

SEALPOST_API void sealpost_key_public(const struct sealpost_key *key, uint8_t pub[SEALPOST_KEY_LEN])
{
	memcpy(pub, key->pub, SP_KEY_LEN);
}

SEALPOST_API void sealpost_key_free(struct sealpost_key *key)
{
	if (!key)
		return;
	sodium_mprotect_readwrite(key);
	sodium_memzero(key, sizeof(*key));
	sodium_free(key);
}

SEALPOST_API void sealpost_key_to_hex(const uint8_t key[SEALPOST_KEY_LEN],
				      char out[SEALPOST_KEY_HEX_LEN + 1])
{
	sp_key_format_hex(out, key);
}

SEALPOST_API int sealpost_key_from_hex(uint8_t key[SEALPOST_KEY_LEN], const char *hex)
{
	uint8_t tmp[SP_KEY_LEN];
	int r;

	if (!key || !hex)
		return -EINVAL;
	r = sp_key_parse_hex(tmp, hex);
	if (r == 0)
		memcpy(key, tmp, SP_KEY_LEN);
	return r < 0 ? -EINVAL : 0;
}

SEALPOST_API const char *sealpost_status_string(int status)
{
	return sp_status_name((enum sp_status)status);
}

SEALPOST_API int sealpost_envelope_seal(const struct sealpost_key *sender,
					const uint8_t to[SEALPOST_KEY_LEN], const void *msg,
					size_t msg_len, uint8_t *out, size_t out_cap,
					size_t *out_len)
{
	if (!sender || !to || (!msg && msg_len) || !out || !out_len)
		return -EINVAL;
	/* sp_seal wants a non-NULL pointer even for an empty message. */
	return sp_seal(sender->priv, to, msg ? msg : (const void *)"", msg_len, out, out_cap,
		       out_len);
}

SEALPOST_API size_t sealpost_envelope_padded_size(size_t msg_len, size_t max_envelope)
{
	size_t b;

	if (max_envelope <= SP_SEAL_OVERHEAD)
		return 0;
	b = sp_seal_pad_bucket(msg_len, max_envelope - SP_SEAL_OVERHEAD);
	return b ? b + SP_SEAL_OVERHEAD : 0;
}

SEALPOST_API int sealpost_envelope_seal_padded(const struct sealpost_key *sender,
					       const uint8_t to[SEALPOST_KEY_LEN], const void *msg,
					       size_t msg_len, size_t max_envelope, uint8_t *out,
					       size_t out_cap, size_t *out_len)
{
	if (!sender || !to || (!msg && msg_len) || !out || !out_len ||
	    max_envelope <= SP_SEAL_OVERHEAD)
		return -EINVAL;
	return sp_seal_padded(sender->priv, to, msg ? msg : (const void *)"", msg_len,
			      max_envelope - SP_SEAL_OVERHEAD, out, out_cap, out_len);
}

SEALPOST_API int sealpost_envelope_open(const struct sealpost_key *self, const uint8_t *env,
					size_t env_len, uint8_t sender[SEALPOST_KEY_LEN],
					uint8_t *out, size_t out_cap, size_t *out_len)
{
	int r;

	if (!self || !env || !sender || !out || !out_len)
		return -EINVAL;
	r = sp_seal_open(self->priv, env, env_len, sender, out, out_cap, out_len);
	/* A failed open must leave no partial plaintext behind. */
	if (r < 0 && out_cap)
		sodium_memzero(out, out_cap < env_len ? out_cap : env_len);
	return r;
}
