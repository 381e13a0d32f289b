/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_sth.c: signed tree heads, proof encodings, the log trailer and the
 * envelope wrapper (see sp_sth.h and docs/PROTOCOL.md §11.7). Ed25519 is
 * libsodium's crypto_sign_detached / crypto_sign_verify_detached over the
 * domain-separated canonical encoding.
 */
#include "sp_sth.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "sp_be.h"

static void signed_part(const struct sp_sth *sth, uint8_t out[SP_STH_DOMAIN_LEN + SP_STH_SIGNED_LEN])
{
	uint8_t *p = out;

	memcpy(p, SP_STH_DOMAIN, SP_STH_DOMAIN_LEN);
	p += SP_STH_DOMAIN_LEN;
	*p++ = SP_STH_FORMAT;
	sp_be_put64(p, sth->tree_size);
	sp_be_put64(p + 8, sth->timestamp_ms);
	memcpy(p + 16, sth->root, SP_MERKLE_HASH_LEN);
}

int sp_sth_sign(struct sp_sth *sth, const uint8_t sk[SP_LOG_SECRET_LEN])
{
	uint8_t msg[SP_STH_DOMAIN_LEN + SP_STH_SIGNED_LEN];

	if (!sth || !sk || sth->tree_size > SP_MERKLE_SIZE_MAX)
		return -EINVAL;
	signed_part(sth, msg);
	if (crypto_sign_detached(sth->sig, NULL, msg, sizeof(msg), sk))
		return -EINVAL;
	return 0;
}

int sp_sth_verify(const struct sp_sth *sth, const uint8_t log_key[SP_LOG_KEY_LEN])
{
	uint8_t msg[SP_STH_DOMAIN_LEN + SP_STH_SIGNED_LEN];

	if (!sth || !log_key)
		return -EINVAL;
	signed_part(sth, msg);
	if (crypto_sign_verify_detached(sth->sig, msg, sizeof(msg), log_key))
		return -EKEYREJECTED;
	return 0;
}

void sp_sth_encode(const struct sp_sth *sth, uint8_t out[SP_STH_LEN])
{
	out[0] = SP_STH_FORMAT;
	sp_be_put64(out + 1, sth->tree_size);
	sp_be_put64(out + 9, sth->timestamp_ms);
	memcpy(out + 17, sth->root, SP_MERKLE_HASH_LEN);
	memcpy(out + SP_STH_SIGNED_LEN, sth->sig, SP_STH_SIG_LEN);
}

int sp_sth_decode(const uint8_t *buf, size_t len, struct sp_sth *out)
{
	if (!buf || !out)
		return -EINVAL;
	if (len != SP_STH_LEN || buf[0] != SP_STH_FORMAT)
		return -EBADMSG;
	out->tree_size = sp_be_get64(buf + 1);
	if (out->tree_size > SP_MERKLE_SIZE_MAX)
		return -EBADMSG;
	out->timestamp_ms = sp_be_get64(buf + 9);
	memcpy(out->root, buf + 17, SP_MERKLE_HASH_LEN);
	memcpy(out->sig, buf + SP_STH_SIGNED_LEN, SP_STH_SIG_LEN);
	return 0;
}

static int path_encode(size_t count, const sp_merkle_hash *path, uint8_t *out, size_t cap,
		       size_t *len)
{
	if (count > SP_MERKLE_PROOF_MAX)
		return -EINVAL;
	if (cap < 1 + count * SP_MERKLE_HASH_LEN)
		return -EMSGSIZE;
	out[0] = (uint8_t)count;
	if (count)
		memcpy(out + 1, path, count * SP_MERKLE_HASH_LEN);
	*len = 1 + count * SP_MERKLE_HASH_LEN;
	return 0;
}

static int path_decode(const uint8_t *buf, size_t len, size_t *count, sp_merkle_hash *path)
{
	if (len < 1 || buf[0] > SP_MERKLE_PROOF_MAX ||
	    len != 1 + (size_t)buf[0] * SP_MERKLE_HASH_LEN)
		return -EBADMSG;
	*count = buf[0];
	if (*count)
		memcpy(path, buf + 1, *count * SP_MERKLE_HASH_LEN);
	return 0;
}

int sp_inclusion_encode(const struct sp_inclusion *p, uint8_t *out, size_t cap, size_t *len)
{
	size_t n;
	int ret;

	if (!p || !out || !len)
		return -EINVAL;
	if (cap < 8)
		return -EMSGSIZE;
	sp_be_put64(out, p->index);
	if ((ret = path_encode(p->count, p->path, out + 8, cap - 8, &n)))
		return ret;
	*len = 8 + n;
	return 0;
}

int sp_consistency_encode(const struct sp_consistency *p, uint8_t *out, size_t cap, size_t *len)
{
	size_t n;
	int ret;

	if (!p || !out || !len || p->first > p->second)
		return -EINVAL;
	if (cap < 16)
		return -EMSGSIZE;
	sp_be_put64(out, p->first);
	sp_be_put64(out + 8, p->second);
	if ((ret = path_encode(p->count, p->path, out + 16, cap - 16, &n)))
		return ret;
	*len = 16 + n;
	return 0;
}

int sp_inclusion_decode(const uint8_t *buf, size_t len, struct sp_inclusion *out)
{
	if (!buf || !out)
		return -EINVAL;
	if (len < 8)
		return -EBADMSG;
	out->index = sp_be_get64(buf);
	if (out->index >= SP_MERKLE_SIZE_MAX)
		return -EBADMSG;
	return path_decode(buf + 8, len - 8, &out->count, out->path);
}

int sp_consistency_decode(const uint8_t *buf, size_t len, struct sp_consistency *out)
{
	if (!buf || !out)
		return -EINVAL;
	if (len < 16)
		return -EBADMSG;
	out->first = sp_be_get64(buf);
	out->second = sp_be_get64(buf + 8);
	if (out->first > out->second || out->second > SP_MERKLE_SIZE_MAX)
		return -EBADMSG;
	return path_decode(buf + 16, len - 16, &out->count, out->path);
}

int sp_log_trailer_encode(const struct sp_sth *sth, const struct sp_inclusion *p, uint8_t *out,
			  size_t cap, size_t *len)
{
	size_t n;
	int ret;

	if (!sth || !p || !out || !len)
		return -EINVAL;
	if (cap < SP_STH_LEN)
		return -EMSGSIZE;
	sp_sth_encode(sth, out);
	if ((ret = sp_inclusion_encode(p, out + SP_STH_LEN, cap - SP_STH_LEN, &n)))
		return ret;
	*len = SP_STH_LEN + n;
	return 0;
}

int sp_log_trailer_decode(const uint8_t *buf, size_t len, struct sp_sth *sth,
			  struct sp_inclusion *p)
{
	int ret;

	if (!buf || !sth || !p)
		return -EINVAL;
	if (len < SP_STH_LEN)
		return -EBADMSG;
	if ((ret = sp_sth_decode(buf, SP_STH_LEN, sth)))
		return ret;
	return sp_inclusion_decode(buf + SP_STH_LEN, len - SP_STH_LEN, p);
}

int sp_log_check_leaf(const uint8_t log_key[SP_LOG_KEY_LEN], const struct sp_sth *sth,
		      const struct sp_inclusion *p, const uint8_t *leaf, size_t leaf_len)
{
	uint8_t h[SP_MERKLE_HASH_LEN];
	int ret;

	if (!log_key || !sth || !p || (!leaf && leaf_len))
		return -EINVAL;
	if ((ret = sp_sth_verify(sth, log_key)))
		return ret;
	if (p->index >= sth->tree_size)
		return -EKEYREJECTED;
	sp_merkle_leaf_hash(h, leaf, leaf_len);
	return sp_merkle_inclusion_verify(h, p->index, sth->tree_size, p->path, p->count, sth->root);
}

void sp_sth_wrap(const uint8_t log_key[SP_LOG_KEY_LEN], const struct sp_sth *sth,
		 uint8_t out[SP_STH_WRAP_LEN])
{
	memcpy(out, SP_STH_WRAP_MAGIC, SP_STH_WRAP_MAGIC_LEN);
	memcpy(out + SP_STH_WRAP_MAGIC_LEN, log_key, SP_LOG_KEY_LEN);
	sp_sth_encode(sth, out + SP_STH_WRAP_MAGIC_LEN + SP_LOG_KEY_LEN);
}

int sp_sth_unwrap(const uint8_t *msg, size_t len, uint8_t log_key[SP_LOG_KEY_LEN],
		  struct sp_sth *sth)
{
	if ((!msg && len) || !log_key || !sth)
		return -EINVAL;
	if (len < SP_STH_WRAP_MAGIC_LEN || memcmp(msg, SP_STH_WRAP_MAGIC, SP_STH_WRAP_MAGIC_LEN))
		return 0;
	if (len < SP_STH_WRAP_LEN)
		return -EBADMSG;
	if (sp_sth_decode(msg + SP_STH_WRAP_MAGIC_LEN + SP_LOG_KEY_LEN, SP_STH_LEN, sth))
		return -EBADMSG;
	memcpy(log_key, msg + SP_STH_WRAP_MAGIC_LEN, SP_LOG_KEY_LEN);
	return 1;
}

enum sp_sth_verdict sp_sth_compare(const struct sp_sth *known, const struct sp_sth *seen,
				   uint64_t *m, uint64_t *n)
{
	if (known->tree_size == seen->tree_size) {
		if (sodium_memcmp(known->root, seen->root, SP_MERKLE_HASH_LEN) == 0)
			return SP_STH_SAME;
		return SP_STH_SPLIT;
	}
	*m = known->tree_size < seen->tree_size ? known->tree_size : seen->tree_size;
	*n = known->tree_size < seen->tree_size ? seen->tree_size : known->tree_size;
	return SP_STH_NEED_PROOF;
}
