/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_devlist.c: the signed device list codec (sp_devlist.h).
 *
 * Ed25519 is libsodium's crypto_sign_detached / crypto_sign_verify_detached
 * (RFC 8032 signatures; libsodium refuses non-canonical and small-order
 * public keys and non-canonical S). Nothing here is a primitive of its own:
 * the list is a byte string with a domain prefix, signed as a whole.
 */
#include "sp_devlist.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "sp_be.h"
#include "sp_key.h"

#define LINK_DOMAIN "sealpost/link/1"

int sp_devlist_label_ok(const char *label, size_t len)
{
	if (len == 0 || len > SP_DEVLIST_LABEL_MAX)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)label[i];

		/* No control bytes: a label is shown to people, and a newline or
		 * an escape sequence in it could forge what a terminal shows. */
		if (ch < 0x20 || ch == 0x7f)
			return -EBADMSG;
	}
	return 0;
}

int sp_devlist_decode(const uint8_t *buf, size_t len, struct sp_devlist *out)
{
	const uint8_t *p = buf, *end;
	uint32_t count;

	if (!buf || !out)
		return -EINVAL;
	if (len > SP_DEVLIST_MAX)
		return -EMSGSIZE;
	if (len < SP_DEVLIST_HDR_LEN + SP_DEVLIST_SIG_LEN)
		return -EBADMSG;
	end = buf + len - SP_DEVLIST_SIG_LEN;
	if (p[0] != SP_DEVLIST_FORMAT)
		return -EBADMSG;
	memcpy(out->account, p + 1, SP_ACCOUNT_KEY_LEN);
	out->version = sp_be_get64(p + 1 + SP_ACCOUNT_KEY_LEN);
	count = sp_be_get16(p + 1 + SP_ACCOUNT_KEY_LEN + 8);
	p += SP_DEVLIST_HDR_LEN;
	if (out->version == 0 || count == 0)
		return -EBADMSG;
	if (count > SP_DEVLIST_DEVICES_MAX)
		return -EMSGSIZE;
	out->count = count;
	for (uint32_t i = 0; i < count; i++) {
		struct sp_devlist_device *d = &out->dev[i];

		if ((size_t)(end - p) < SP_DEVLIST_DEVICE_MIN)
			return -EBADMSG;
		memcpy(d->key, p, SP_KEY_LEN);
		d->added_s = sp_be_get64(p + SP_KEY_LEN);
		d->label_len = p[SP_KEY_LEN + 8];
		p += SP_KEY_LEN + 8 + 1;
		if ((size_t)(end - p) < d->label_len)
			return -EBADMSG;
		if (sp_devlist_label_ok((const char *)p, d->label_len) < 0)
			return -EBADMSG;
		memcpy(d->label, p, d->label_len);
		d->label[d->label_len] = '\0';
		p += d->label_len;
	}
	if (p != end)
		return -EBADMSG;
	/* Content checks after the structure, so that a truncated list is
	 * "malformed" whatever keys it holds. */
	for (uint32_t i = 0; i < count; i++) {
		if (!sp_noise_key_valid(out->dev[i].key))
			return -EDOM;
		if (i > 0 && memcmp(out->dev[i - 1].key, out->dev[i].key, SP_KEY_LEN) >= 0)
			return -ENOTUNIQ;
	}
	return 0;
}

/* The signed message: domain || list minus signature. Borrowed pieces. */
static int check_sig(const uint8_t *buf, size_t len, const uint8_t account[SP_ACCOUNT_KEY_LEN])
{
	/* crypto_sign_verify_detached takes one contiguous message; the
	 * streaming interface would be Ed25519ph, another scheme. */
	uint8_t msg[SP_DEVLIST_DOMAIN_LEN + SP_DEVLIST_MAX];
	size_t body = len - SP_DEVLIST_SIG_LEN;

	if (!crypto_core_ed25519_is_valid_point(account))
		return -EKEYREJECTED;
	memcpy(msg, SP_DEVLIST_DOMAIN, SP_DEVLIST_DOMAIN_LEN);
	memcpy(msg + SP_DEVLIST_DOMAIN_LEN, buf, body);
	if (crypto_sign_verify_detached(buf + body, msg, SP_DEVLIST_DOMAIN_LEN + body, account) != 0)
		return -EKEYREJECTED;
	return 0;
}

int sp_devlist_verify(const uint8_t *buf, size_t len, struct sp_devlist *out)
{
	int r = sp_devlist_decode(buf, len, out);

	if (r < 0)
		return r;
	return check_sig(buf, len, out->account);
}

/* The unsigned encoding of l at out (cap bytes); its length, or -errno. */
static int encode(const struct sp_devlist *l, uint8_t *out, size_t cap, size_t *len)
{
	size_t need = SP_DEVLIST_HDR_LEN + SP_DEVLIST_SIG_LEN;
	uint8_t *p = out;

	if (l->count == 0 || l->count > SP_DEVLIST_DEVICES_MAX || l->version == 0)
		return -EINVAL;
	for (uint32_t i = 0; i < l->count; i++)
		need += SP_KEY_LEN + 8 + 1 + l->dev[i].label_len;
	if (cap < need)
		return -EMSGSIZE;
	*p++ = SP_DEVLIST_FORMAT;
	memcpy(p, l->account, SP_ACCOUNT_KEY_LEN);
	p += SP_ACCOUNT_KEY_LEN;
	sp_be_put64(p, l->version);
	p += 8;
	sp_be_put16(p, (uint16_t)l->count);
	p += 2;
	for (uint32_t i = 0; i < l->count; i++) {
		const struct sp_devlist_device *d = &l->dev[i];

		memcpy(p, d->key, SP_KEY_LEN);
		sp_be_put64(p + SP_KEY_LEN, d->added_s);
		p[SP_KEY_LEN + 8] = d->label_len;
		p += SP_KEY_LEN + 8 + 1;
		memcpy(p, d->label, d->label_len);
		p += d->label_len;
	}
	*len = (size_t)(p - out);
	return 0;
}

int sp_devlist_sign(const struct sp_devlist *l, const uint8_t sk[SP_ACCOUNT_SECRET_LEN],
		    uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t pk[SP_ACCOUNT_KEY_LEN];
	uint8_t msg[SP_DEVLIST_DOMAIN_LEN + SP_DEVLIST_MAX];
	struct sp_devlist check;
	size_t len = 0;
	int r;

	if (!l || !sk || !out || !out_len)
		return -EINVAL;
	crypto_sign_ed25519_sk_to_pk(pk, sk);
	if (sodium_memcmp(pk, l->account, SP_ACCOUNT_KEY_LEN) != 0)
		return -EINVAL;
	r = encode(l, out, cap, &len);
	if (r < 0)
		return r;
	memcpy(msg, SP_DEVLIST_DOMAIN, SP_DEVLIST_DOMAIN_LEN);
	memcpy(msg + SP_DEVLIST_DOMAIN_LEN, out, len);
	crypto_sign_detached(out + len, NULL, msg, SP_DEVLIST_DOMAIN_LEN + len, sk);
	len += SP_DEVLIST_SIG_LEN;
	/* What we sign must be what every verifier accepts: a list that is not
	 * canonical (unsorted, a bad key) is refused here, not by the broker. */
	r = sp_devlist_verify(out, len, &check);
	if (r < 0) {
		sodium_memzero(out, len);
		return r;
	}
	*out_len = len;
	return 0;
}

int sp_devlist_find(const struct sp_devlist *l, const uint8_t key[SP_KEY_LEN])
{
	for (uint32_t i = 0; i < l->count; i++)
		if (memcmp(l->dev[i].key, key, SP_KEY_LEN) == 0)
			return (int)i;
	return -ENOENT;
}

int sp_devlist_add(struct sp_devlist *l, const uint8_t key[SP_KEY_LEN], const char *label,
		   uint64_t added_s)
{
	size_t llen = label ? strlen(label) : 0;
	uint32_t at = 0;

	if (!sp_noise_key_valid(key))
		return -EDOM;
	if (sp_devlist_label_ok(label, llen) < 0)
		return -EBADMSG;
	if (sp_devlist_find(l, key) >= 0)
		return -ENOTUNIQ;
	if (l->count >= SP_DEVLIST_DEVICES_MAX)
		return -EMSGSIZE;
	while (at < l->count && memcmp(l->dev[at].key, key, SP_KEY_LEN) < 0)
		at++;
	memmove(&l->dev[at + 1], &l->dev[at], (l->count - at) * sizeof(l->dev[0]));
	memset(&l->dev[at], 0, sizeof(l->dev[at]));
	memcpy(l->dev[at].key, key, SP_KEY_LEN);
	l->dev[at].added_s = added_s;
	l->dev[at].label_len = (uint8_t)llen;
	memcpy(l->dev[at].label, label, llen);
	l->count++;
	return 0;
}

int sp_devlist_remove(struct sp_devlist *l, const uint8_t key[SP_KEY_LEN])
{
	int i = sp_devlist_find(l, key);

	if (i < 0)
		return i;
	memmove(&l->dev[i], &l->dev[i + 1], (l->count - (uint32_t)i - 1) * sizeof(l->dev[0]));
	l->count--;
	return 0;
}

void sp_devlist_link_code(const uint8_t key[SP_KEY_LEN], const char *label, char out[7])
{
	crypto_generichash_state st;
	uint8_t h[32], llen;
	uint32_t v;
	size_t n = label ? strlen(label) : 0;

	llen = (uint8_t)(n > 255 ? 255 : n);
	crypto_generichash_init(&st, NULL, 0, sizeof(h));
	crypto_generichash_update(&st, (const uint8_t *)LINK_DOMAIN, sizeof(LINK_DOMAIN) - 1);
	crypto_generichash_update(&st, key, SP_KEY_LEN);
	crypto_generichash_update(&st, &llen, 1);
	crypto_generichash_update(&st, (const uint8_t *)label, llen);
	crypto_generichash_final(&st, h, sizeof(h));
	/* 32 bits reduced mod 10^6: a bias of under 1 in 4000, irrelevant for a
	 * code people compare by eye (it is not a secret). */
	v = sp_be_get32(h) % 1000000u;
	for (int i = 5; i >= 0; i--) {
		out[i] = (char)('0' + v % 10);
		v /= 10;
	}
	out[6] = '\0';
}
