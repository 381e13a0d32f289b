/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_prekeys.c: the prekey store and bundle verification (public API part
 * of libsealpost; docs/PROTOCOL.md 17, docs/CLIENT.md "Prekeys").
 *
 * The store file (local to the device, never on the wire), integers
 * big-endian:
 *   "SPPK" | u8 version (1) | device[32] | u32 next_id | u8 flags
 *   (bit 0: a signed prekey, bit 1: a replaced one kept) | cur | prev |
 *   u64 prev_replaced_s | u16 n | secret[n]
 *   cur, prev, secret = u32 id | u64 created_s | sk[32]   (44 bytes)
 * It holds private keys as the device key file does: mode 0600, refused
 * when group or others may read it. In memory everything lives in one
 * sodium_malloc'd block (guard pages, mlock'd, wiped by sodium_free): the
 * library's long-lived secrets are kept so (sp_key.c); the slab
 * (lib/crypto/sp_slab) is for the many small per-connection secrets.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "sealpost.h"
#include "sp_acct_internal.h"
#include "sp_be.h"
#include "sp_devlist.h"
#include "sp_fcseal.h"
#include "sp_fsutil.h"
#include "sp_internal.h"
#include "sp_prekey.h"
#include "sp_prekeys_internal.h"
#include "sp_sessions_internal.h"
#include "sp_x3dh.h"

_Static_assert((int)SEALPOST_PREKEY_UPLOAD_MAX == (int)SP_PREKEY_UPLOAD_MAX, "upload maximum");

enum {
	SEC_LEN = 4 + 8 + SP_KEY_LEN,
	FILE_HDR = 4 + 1 + SP_KEY_LEN + 4 + 1 + 2 * SEC_LEN + 8 + 2,
	FILE_MAX = FILE_HDR + SEALPOST_PREKEY_HELD_MAX * SEC_LEN,
	FLAG_CUR = 1,
	FLAG_PREV = 2,
};

struct pk_secret {
	uint32_t id;
	uint64_t created_s;
	uint8_t sk[SP_KEY_LEN];
};

struct pk_state {
	uint8_t device[SP_KEY_LEN];
	uint32_t next_id;
	bool has_cur, has_prev;
	struct pk_secret cur, prev;
	uint64_t prev_replaced_s;
	uint32_t n;
	struct pk_secret otk[SEALPOST_PREKEY_HELD_MAX];
};

struct sealpost_prekeys {
	char *path;
	struct pk_state *s;             /* sodium_malloc'd */
	uint8_t *file;                  /* sodium_malloc'd, FILE_MAX: the encoding */
	uint8_t *key;                   /* sodium_malloc'd storage key, or NULL: plain file */
};

/* An encrypted store: "SPPX" | 1 | device[32] | nonce[24] |
 * XChaCha20-Poly1305(storage key, nonce, the plain encoding, ad = the 37
 * bytes before the nonce). */
enum {
	X_HDR = 4 + 1 + SP_KEY_LEN,
	X_NONCE = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
	X_OVER = X_HDR + X_NONCE + crypto_aead_xchacha20poly1305_ietf_ABYTES,
};

/* The plain encoding in pk->file (n bytes) sealed into out (n + X_OVER). */
static void seal_file(const struct sealpost_prekeys *pk, size_t n, uint8_t *out)
{
	memcpy(out, "SPPX", 4);
	out[4] = 1;
	memcpy(out + 5, pk->s->device, SP_KEY_LEN);
	randombytes_buf(out + X_HDR, X_NONCE);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + X_HDR + X_NONCE, NULL, pk->file, n, out,
						   X_HDR, NULL, out + X_HDR, pk->key);
}

static uint8_t *put_secret(uint8_t *p, const struct pk_secret *k)
{
	sp_be_put32(p, k->id);
	sp_be_put64(p + 4, k->created_s);
	memcpy(p + 12, k->sk, SP_KEY_LEN);
	return p + SEC_LEN;
}

static const uint8_t *get_secret(const uint8_t *p, struct pk_secret *k)
{
	k->id = sp_be_get32(p);
	k->created_s = sp_be_get64(p + 4);
	memcpy(k->sk, p + 12, SP_KEY_LEN);
	return p + SEC_LEN;
}

static size_t encode(const struct pk_state *s, uint8_t *out)
{
	static const struct pk_secret none;
	uint8_t *p = out;

	memcpy(p, "SPPK", 4);
	p[4] = 1;
	memcpy(p + 5, s->device, SP_KEY_LEN);
	p += 5 + SP_KEY_LEN;
	sp_be_put32(p, s->next_id);
	p[4] = (uint8_t)((s->has_cur ? FLAG_CUR : 0) | (s->has_prev ? FLAG_PREV : 0));
	p += 5;
	p = put_secret(p, s->has_cur ? &s->cur : &none);
	p = put_secret(p, s->has_prev ? &s->prev : &none);
	sp_be_put64(p, s->prev_replaced_s);
	sp_be_put16(p + 8, (uint16_t)s->n);
	p += 10;
	for (uint32_t i = 0; i < s->n; i++)
		p = put_secret(p, &s->otk[i]);
	return (size_t)(p - out);
}

static int decode(const uint8_t *in, size_t len, struct pk_state *s)
{
	const uint8_t *p = in;

	if (len < FILE_HDR || memcmp(p, "SPPK", 4) != 0 || p[4] != 1)
		return -SEALPOST_EKEYFORMAT;
	memcpy(s->device, p + 5, SP_KEY_LEN);
	p += 5 + SP_KEY_LEN;
	s->next_id = sp_be_get32(p);
	if (p[4] & ~(FLAG_CUR | FLAG_PREV))
		return -SEALPOST_EKEYFORMAT;
	s->has_cur = p[4] & FLAG_CUR;
	s->has_prev = p[4] & FLAG_PREV;
	p += 5;
	p = get_secret(p, &s->cur);
	p = get_secret(p, &s->prev);
	s->prev_replaced_s = sp_be_get64(p);
	s->n = sp_be_get16(p + 8);
	p += 10;
	if (s->n > SEALPOST_PREKEY_HELD_MAX || len != FILE_HDR + (size_t)s->n * SEC_LEN)
		return -SEALPOST_EKEYFORMAT;
	for (uint32_t i = 0; i < s->n; i++)
		p = get_secret(p, &s->otk[i]);
	return 0;
}

/* The whole file, replaced atomically: a crash leaves the old or the new. */
static int save(struct sealpost_prekeys *pk)
{
	size_t n = encode(pk->s, pk->file);
	uint8_t *sealed = pk->key ? malloc(n + X_OVER) : NULL;
	int r;

	if (pk->key && !sealed) {
		sodium_memzero(pk->file, n);
		return -ENOMEM;
	}
	if (pk->key)
		seal_file(pk, n, sealed);
	r = sp_fsutil_replace(pk->path, sealed ? sealed : pk->file, sealed ? n + X_OVER : n, 0600);
	sodium_memzero(pk->file, n);
	free(sealed); /* encrypted bytes only */
	return r;
}

/* An encrypted file's bytes (in, len) opened into pk->file: its length, or
 * -SEALPOST_ESTORAGEKEY (no key, wrong key, damaged), -EINVAL (another
 * device's). */
static ssize_t open_file(struct sealpost_prekeys *pk, const uint8_t *in, size_t len,
			 const uint8_t *device)
{
	unsigned long long n = 0;

	if (!pk->key || len < X_OVER || in[4] != 1)
		return -SEALPOST_ESTORAGEKEY;
	if (memcmp(in + 5, device, SP_KEY_LEN) != 0)
		return -EINVAL;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(pk->file, &n, NULL, in + X_HDR + X_NONCE,
						       len - X_HDR - X_NONCE, in, X_HDR,
						       in + X_HDR, pk->key) != 0)
		return -SEALPOST_ESTORAGEKEY;
	return (ssize_t)n;
}

static int load(struct sealpost_prekeys *pk, const uint8_t *device)
{
	uint8_t *raw = NULL;
	struct stat st;
	ssize_t got;
	int fd, r;

	fd = open(pk->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (st.st_mode & 077) {
		r = -SEALPOST_EKEYMODE;
		goto out;
	}
	if (st.st_size > FILE_MAX + X_OVER) {
		r = -SEALPOST_EKEYFORMAT;
		goto out;
	}
	raw = malloc(FILE_MAX + X_OVER);
	if (!raw) {
		r = -ENOMEM;
		goto out;
	}
	got = read(fd, raw, FILE_MAX + X_OVER);
	if (got >= 4 && memcmp(raw, "SPPX", 4) == 0) {
		got = open_file(pk, raw, (size_t)got, device);
	} else if (got > FILE_MAX) {
		got = -SEALPOST_EKEYFORMAT;
	} else if (got >= 0) {
		/* a plain store (one written before it had a key, too: the
		 * next save encrypts it) */
		memcpy(pk->file, raw, (size_t)got);
	} else {
		got = -errno;
	}
	r = got < 0 ? (int)got : decode(pk->file, (size_t)got, pk->s);
	sodium_memzero(pk->file, FILE_MAX);
out:
	free(raw); /* public or encrypted bytes only */
	close(fd);
	return r;
}

SEALPOST_API void sealpost_prekeys_close(struct sealpost_prekeys *pk)
{
	if (!pk)
		return;
	sodium_free(pk->s); /* sodium_free wipes */
	sodium_free(pk->file);
	sodium_free(pk->key);
	free(pk->path);
	free(pk);
}

SEALPOST_API int sealpost_prekeys_open(struct sealpost_prekeys **out, const char *path,
				       const struct sealpost_key *device)
{
	return sealpost_prekeys_open_keyed(out, path, device, NULL);
}

SEALPOST_API int sealpost_prekeys_open_keyed(struct sealpost_prekeys **out, const char *path,
					     const struct sealpost_key *device,
					     const uint8_t *storage_key)
{
	struct sealpost_prekeys *pk;
	int r;

	if (!out || !path || !device || sodium_init() < 0)
		return -EINVAL;
	pk = calloc(1, sizeof(*pk));
	if (!pk)
		return -ENOMEM;
	pk->path = strdup(path);
	pk->s = sodium_malloc(sizeof(*pk->s));
	pk->file = sodium_malloc(FILE_MAX);
	pk->key = storage_key ? sodium_malloc(SEALPOST_STORAGE_KEY_LEN) : NULL;
	if (!pk->path || !pk->s || !pk->file || (storage_key && !pk->key)) {
		sealpost_prekeys_close(pk);
		return -ENOMEM;
	}
	if (storage_key)
		memcpy(pk->key, storage_key, SEALPOST_STORAGE_KEY_LEN);
	memset(pk->s, 0, sizeof(*pk->s));
	r = load(pk, device->pub);
	if (r == -ENOENT) {
		memcpy(pk->s->device, device->pub, SP_KEY_LEN);
		pk->s->next_id = 1;
		r = 0;
	} else if (r == 0 && memcmp(pk->s->device, device->pub, SP_KEY_LEN) != 0) {
		r = -EINVAL; /* another device's store */
	}
	if (r < 0) {
		sealpost_prekeys_close(pk);
		return r;
	}
	*out = pk;
	return 0;
}

SEALPOST_API void sealpost_prekeys_info(const struct sealpost_prekeys *pk,
					struct sealpost_prekeys_info *info)
{
	memset(info, 0, sizeof(*info));
	if (!pk)
		return;
	info->onetime = pk->s->n;
	info->has_signed = pk->s->has_cur;
	info->signed_id = pk->s->cur.id;
	info->signed_created_s = pk->s->cur.created_s;
	info->has_previous = pk->s->has_prev;
}

static void fresh(struct pk_state *s, struct pk_secret *k, uint64_t now_s)
{
	k->id = s->next_id++;
	k->created_s = now_s;
	randombytes_buf(k->sk, SP_KEY_LEN);
}

/* The public record of secret k, signed by dev. */
static int record(struct sp_prekey *rec, uint8_t kind, const struct pk_secret *k,
		  const struct sealpost_key *dev)
{
	memset(rec, 0, sizeof(*rec));
	rec->kind = kind;
	rec->id = k->id;
	rec->created_s = k->created_s;
	if (crypto_scalarmult_base(rec->pub, k->sk) != 0)
		return -EINVAL;
	return sp_prekey_sign(rec, dev->pub, dev->priv);
}

static int build(const struct pk_state *s, const struct sealpost_key *dev, uint32_t first,
		 uint8_t *body, size_t cap, size_t *len)
{
	uint32_t count = s->n - first;
	/* Public records only (no wipe needed); on the heap, not static:
	 * different clients may upload from different threads. */
	struct sp_prekey *otk = calloc(count ? count : 1, sizeof(*otk));
	uint8_t ed[SP_KEY_LEN];
	struct sp_prekey spk;
	int r;

	if (!otk)
		return -ENOMEM;
	r = sp_xeddsa_public(ed, dev->priv);
	if (r == 0)
		r = record(&spk, SP_PREKEY_KIND_SIGNED, &s->cur, dev);
	for (uint32_t i = 0; r == 0 && i < count; i++)
		r = record(&otk[i], SP_PREKEY_KIND_ONETIME, &s->otk[first + i], dev);
	if (r == 0)
		r = sp_prekey_upload_encode(ed, &spk, otk, count, body, cap, len);
	free(otk);
	return r;
}

int sp_prekeys_prepare(struct sealpost_prekeys *pk, const struct sealpost_key *dev, unsigned count,
		       uint64_t now_s, uint8_t *body, size_t cap, size_t *len)
{
	struct pk_state *s = pk->s;
	struct pk_secret old_cur, old_prev;
	bool old_has_cur = s->has_cur, old_has_prev = s->has_prev;
	uint64_t old_replaced = s->prev_replaced_s;
	uint32_t old_n = s->n, old_next = s->next_id;
	int r;

	if (memcmp(dev->pub, s->device, SP_KEY_LEN) != 0)
		return -EINVAL;
	if (count > SP_PREKEY_UPLOAD_MAX || s->n + count > SEALPOST_PREKEY_HELD_MAX)
		return -EMSGSIZE;
	if (!now_s)
		now_s = (uint64_t)time(NULL);
	old_cur = s->cur;
	old_prev = s->prev;
	/* A replaced signed prekey past its keeping time goes first. */
	if (s->has_prev && now_s - s->prev_replaced_s >= SEALPOST_PREKEY_KEEP_S) {
		sodium_memzero(&s->prev, sizeof(s->prev));
		s->has_prev = false;
	}
	if (!s->has_cur || now_s - s->cur.created_s >= SEALPOST_PREKEY_ROTATE_S) {
		if (s->has_cur) {
			s->prev = s->cur;
			s->has_prev = true;
			s->prev_replaced_s = now_s;
		}
		fresh(s, &s->cur, now_s);
		s->has_cur = true;
	}
	for (unsigned i = 0; i < count; i++)
		fresh(s, &s->otk[s->n++], now_s);
	/* On disk before it can be on the wire. */
	r = save(pk);
	if (r == 0)
		r = build(s, dev, old_n, body, cap, len);
	if (r < 0) {
		/* nothing published: forget the new keys, as if never made */
		sodium_memzero(&s->otk[old_n], (size_t)(s->n - old_n) * sizeof(s->otk[0]));
		s->n = old_n;
		s->next_id = old_next;
		s->cur = old_cur;
		s->prev = old_prev;
		s->has_cur = old_has_cur;
		s->has_prev = old_has_prev;
		s->prev_replaced_s = old_replaced;
		(void)save(pk);
	}
	sodium_memzero(&old_cur, sizeof(old_cur));
	sodium_memzero(&old_prev, sizeof(old_prev));
	return r;
}

SEALPOST_API int sealpost_prekeys_error(int status)
{
	switch (status) {
	case SEALPOST_STATUS_ERR_PREKEY_MALFORMED:
	case SEALPOST_STATUS_ERR_PREKEY_BAD_SIGNATURE:
	case SEALPOST_STATUS_ERR_PREKEY_BAD_DEVICE:
		return -SEALPOST_EPREKEYREFUSED;
	case SEALPOST_STATUS_ERR_PREKEY_TOO_MANY:
		return -SEALPOST_EPREKEYLIMIT;
	case SEALPOST_STATUS_ERR_PREKEY_NONE:
		return -SEALPOST_ENOPREKEY;
	case SEALPOST_STATUS_ERR_PREKEY_RATE_LIMITED:
		return -SEALPOST_EPREKEYRATE;
	default:
		return 0;
	}
}

SEALPOST_API int sealpost_prekey_bundle_verify(struct sealpost_account_store *st,
					       const uint8_t *list, size_t list_len,
					       const uint8_t device[SEALPOST_KEY_LEN],
					       const uint8_t *bytes, size_t len,
					       struct sealpost_prekey_bundle *out)
{
	struct sp_prekey_bundle b;
	struct sp_devlist *l;
	int r;

	if (!list || !device || (!bytes && len) || !out)
		return -EINVAL;
	l = malloc(sizeof(*l));
	if (!l)
		return -ENOMEM;
	/* The list is checked here again, whoever checked it before: the
	 * device key it names is what every signature must be. */
	r = sp_acct_store_check(st, list, list_len, l);
	if (r == -EIO)
		r = 0; /* verified, only not kept */
	if (r == 0 && sp_devlist_find(l, device) < 0)
		r = -SEALPOST_ENOTONLIST;
	free(l);
	if (r < 0)
		return r;
	if (sp_prekey_bundle_verify(bytes, len, device, &b) < 0)
		return -SEALPOST_EPREKEYBAD;
	memset(out, 0, sizeof(*out));
	memcpy(out->device, b.device, SP_KEY_LEN);
	out->signed_id = b.spk.id;
	out->signed_created_s = b.spk.created_s;
	memcpy(out->signed_key, b.spk.pub, SP_KEY_LEN);
	out->has_onetime = b.has_onetime;
	out->onetime_id = b.otk.id;
	memcpy(out->onetime_key, b.otk.pub, SP_KEY_LEN);
	return 0;
}

_Static_assert((int)SEALPOST_FIRST_CONTACT_OVERHEAD == (int)SP_FCSEAL_OVERHEAD, "overhead");

int sp_prekeys_seal_first(const struct sealpost_key *sender,
			  const struct sealpost_prekey_bundle *b, const uint8_t *msg, size_t len,
			  size_t max_payload, uint8_t *out, size_t cap, size_t *out_len,
			  struct sp_fc_start *start)
{
	struct sp_fcseal_to to;
	uint8_t ek[SP_KEY_LEN];
	int r;

	memset(&to, 0, sizeof(to));
	memcpy(to.ik, b->device, SP_KEY_LEN);
	memcpy(to.spk, b->signed_key, SP_KEY_LEN);
	to.spk_id = b->signed_id;
	to.has_opk = b->has_onetime;
	if (b->has_onetime) {
		memcpy(to.opk, b->onetime_key, SP_KEY_LEN);
		to.opk_id = b->onetime_id;
	}
	randombytes_buf(ek, sizeof(ek));
	r = sp_fcseal_seal(sender->priv, ek, &to, msg ? msg : (const uint8_t *)"", len, max_payload,
			   out, cap, out_len);
	if (r == 0 && start) {
		/* SK again for the session (the seal wiped its copy); EK_A kept */
		r = sp_x3dh_initiate(start->sk, sender->priv, ek, to.ik, to.spk,
				     to.has_opk ? to.opk : NULL);
		memcpy(start->ek, ek, SP_KEY_LEN);
		memcpy(start->spk, to.spk, SP_KEY_LEN);
		memcpy(start->ad, sender->pub, SP_KEY_LEN);
		memcpy(start->ad + SP_KEY_LEN, to.ik, SP_KEY_LEN);
		if (r < 0)
			sodium_memzero(start, sizeof(*start));
	}
	sodium_memzero(ek, sizeof(ek));
	return r;
}

SEALPOST_API int sealpost_prekey_seal(const struct sealpost_key *sender,
				      const struct sealpost_prekey_bundle *b, const uint8_t *msg,
				      size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
	if (!sender || !b || (!msg && len) || !out || !out_len)
		return -EINVAL;
	return sp_prekeys_seal_first(sender, b, msg, len, SP_BODY_MAX - SP_FCSEAL_OVERHEAD, out,
				     cap, out_len, NULL);
}

int sp_prekeys_open_first(struct sealpost_prekeys *pk, const struct sealpost_key *dev,
			  const uint8_t *body, size_t len, uint8_t sender[SP_KEY_LEN], uint8_t *out,
			  size_t cap, size_t *out_len, struct sp_fc_start *start)
{
	struct pk_state *s = pk->s;
	const struct pk_secret *spk = NULL;
	struct sp_fcseal_hdr h;
	uint32_t at = UINT32_MAX;
	int r;

	if (sp_fcseal_header(body, len, &h) < 0 || memcmp(dev->pub, s->device, SP_KEY_LEN) != 0)
		return -EBADMSG;
	if (s->has_cur && s->cur.id == h.spk_id)
		spk = &s->cur;
	else if (s->has_prev && s->prev.id == h.spk_id)
		spk = &s->prev;
	if (!spk)
		return -EBADMSG;
	if (h.has_opk) {
		for (uint32_t i = 0; i < s->n && at == UINT32_MAX; i++)
			if (s->otk[i].id == h.opk_id)
				at = i;
		if (at == UINT32_MAX)
			return -EBADMSG; /* never ours, or used: a one-time key opens once */
	}
	r = sp_fcseal_open(dev->priv, spk->sk, h.has_opk ? s->otk[at].sk : NULL, body, len, sender,
			   out, cap, out_len);
	if (r == 0 && start) {
		/* SK again for the session (the open wiped its copy) */
		r = sp_x3dh_respond(start->sk, dev->priv, spk->sk, h.has_opk ? s->otk[at].sk : NULL,
				    sender, h.ek);
		memcpy(start->ek, h.ek, SP_KEY_LEN);
		memcpy(start->spk, spk->sk, SP_KEY_LEN);
		memcpy(start->ad, sender, SP_KEY_LEN);
		memcpy(start->ad + SP_KEY_LEN, dev->pub, SP_KEY_LEN);
		if (r < 0) {
			sodium_memzero(out, *out_len);
			sodium_memzero(start, sizeof(*start));
		}
	}
	if (r < 0 || !h.has_opk)
		return r;
	/* Deleted before the message is handed over: the last one moves into
	 * its slot, the old copy of the last is wiped. */
	s->otk[at] = s->otk[s->n - 1];
	sodium_memzero(&s->otk[s->n - 1], sizeof(s->otk[0]));
	s->n--;
	/* A failed save leaves the secret on disk, not in memory: the next
	 * save removes it. The message is not lost for it. */
	(void)save(pk);
	return 0;
}
