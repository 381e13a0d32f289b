/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_sessions.c: the session store (public API part of libsealpost;
 * docs/PROTOCOL.md 7.3, docs/CLIENT.md "Sessions"): one Double Ratchet
 * (lib/crypto/sp_ratchet) per peer device, kept in a file encrypted under
 * the app's storage key.
 *
 * The file (local to the device, never on the wire), integers big-endian:
 *   "SPSS" | u8 version (1) | device[32] | nonce[24] |
 *   XChaCha20-Poly1305-IETF(storage key, nonce, plaintext,
 *                           ad = the 61 bytes before the nonce)
 *   plaintext = u32 count | count * (peer[32] | u8 flags | origin_ek[32] |
 *               u32 len | the ratchet state, sp_ratchet_encode, len bytes)
 *   flags bit 0: we began it and have had no answer yet
 * A fresh random nonce per save. One store object per file at a time
 * (flock on path.lock): two processes each holding a copy would overwrite
 * each other's chain keys, and a key could then be used twice. Every state
 * lives in its own
 * sodium_malloc'd block; the plaintext of a save is in one too, wiped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "sealpost.h"
#include "sp_be.h"
#include "sp_fsutil.h"
#include "sp_internal.h"
#include "sp_ratchet.h"
#include "sp_sessions_internal.h"

_Static_assert((int)SEALPOST_RATCHET_MAX_SKIP == (int)SP_RATCHET_MAX_SKIP, "max skip");
_Static_assert((int)SEALPOST_RATCHET_SKIPPED_MAX == (int)SP_RATCHET_SKIPPED_MAX, "skipped cap");
_Static_assert((int)SEALPOST_RATCHET_OVERHEAD == (int)SP_RATCHET_OVERHEAD, "overhead");

enum {
	HDR_LEN = 4 + 1 + SP_KEY_LEN,
	NONCE_LEN = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
	AEAD_TAG = crypto_aead_xchacha20poly1305_ietf_ABYTES,
	ENTRY_FIXED = SP_KEY_LEN + 1 + SP_KEY_LEN + 4,
	FLAG_UNANSWERED = 1,
	/* the largest file: every session with every skipped key */
	STATE_MAX = 400 + SP_RATCHET_SKIPPED_MAX * (SP_KEY_LEN + 4 + 32),
};

struct sess {
	uint8_t peer[SP_KEY_LEN];
	uint8_t origin_ek[SP_KEY_LEN]; /* EK_A of the first contact it began with */
	uint8_t flags;
	struct sp_ratchet *r;          /* sodium_malloc'd */
};

struct sealpost_sessions {
	char *path;
	int lock_fd;                   /* path.lock, flock'd while open; -1: none */
	uint8_t device[SP_KEY_LEN];
	uint8_t *key;                  /* sodium_malloc'd, the storage key */
	struct sess *v;
	size_t n, cap;
};

static struct sess *find(const struct sealpost_sessions *ss, const uint8_t peer[SP_KEY_LEN])
{
	for (size_t i = 0; i < ss->n; i++)
		if (memcmp(ss->v[i].peer, peer, SP_KEY_LEN) == 0)
			return &ss->v[i];
	return NULL;
}

static size_t plain_len(const struct sealpost_sessions *ss)
{
	size_t n = 4;

	for (size_t i = 0; i < ss->n; i++)
		n += ENTRY_FIXED + sp_ratchet_encoded_len(ss->v[i].r);
	return n;
}

static void encode(const struct sealpost_sessions *ss, uint8_t *p)
{
	sp_be_put32(p, (uint32_t)ss->n);
	p += 4;
	for (size_t i = 0; i < ss->n; i++) {
		const struct sess *e = &ss->v[i];
		size_t len = sp_ratchet_encoded_len(e->r);

		memcpy(p, e->peer, SP_KEY_LEN);
		p[SP_KEY_LEN] = e->flags;
		memcpy(p + SP_KEY_LEN + 1, e->origin_ek, SP_KEY_LEN);
		sp_be_put32(p + 2 * SP_KEY_LEN + 1, (uint32_t)len);
		sp_ratchet_encode(e->r, p + ENTRY_FIXED);
		p += ENTRY_FIXED + len;
	}
}

static void header(const struct sealpost_sessions *ss, uint8_t h[HDR_LEN])
{
	memcpy(h, "SPSS", 4);
	h[4] = 1;
	memcpy(h + 5, ss->device, SP_KEY_LEN);
}

static int save(struct sealpost_sessions *ss)
{
	size_t pl = plain_len(ss), fl = HDR_LEN + NONCE_LEN + pl + AEAD_TAG;
	uint8_t *plain = sodium_malloc(pl), *file = malloc(fl);
	int r = -ENOMEM;

	if (plain && file) {
		encode(ss, plain);
		header(ss, file);
		randombytes_buf(file + HDR_LEN, NONCE_LEN);
		crypto_aead_xchacha20poly1305_ietf_encrypt(file + HDR_LEN + NONCE_LEN, NULL, plain,
							   pl, file, HDR_LEN, NULL, file + HDR_LEN,
							   ss->key);
		r = sp_fsutil_replace(ss->path, file, fl, 0600);
	}
	sodium_free(plain); /* wipes */
	free(file);
	return r;
}

static void drop(struct sess *e)
{
	sodium_free(e->r);
	e->r = NULL;
}

/* A new entry for peer (its state allocated, zeroed). */
static struct sess *add(struct sealpost_sessions *ss, const uint8_t peer[SP_KEY_LEN])
{
	struct sess *e;

	if (ss->n >= SEALPOST_SESSIONS_MAX)
		return NULL;
	if (ss->n == ss->cap) {
		size_t cap = ss->cap ? 2 * ss->cap : 8;
		struct sess *v = realloc(ss->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		ss->v = v;
		ss->cap = cap;
	}
	e = &ss->v[ss->n];
	memset(e, 0, sizeof(*e));
	e->r = sodium_malloc(sizeof(*e->r));
	if (!e->r)
		return NULL;
	memset(e->r, 0, sizeof(*e->r));
	memcpy(e->peer, peer, SP_KEY_LEN);
	ss->n++;
	return e;
}

static void remove_at(struct sealpost_sessions *ss, size_t i)
{
	drop(&ss->v[i]);
	ss->v[i] = ss->v[ss->n - 1];
	ss->n--;
}

static int decode(struct sealpost_sessions *ss, const uint8_t *p, size_t len)
{
	uint32_t count;

	if (len < 4)
		return -SEALPOST_ESTORAGEKEY;
	count = sp_be_get32(p);
	p += 4;
	len -= 4;
	if (count > SEALPOST_SESSIONS_MAX)
		return -SEALPOST_ESTORAGEKEY;
	for (uint32_t i = 0; i < count; i++) {
		size_t el, used = 0;
		struct sess *e;

		if (len < ENTRY_FIXED)
			return -SEALPOST_ESTORAGEKEY;
		el = sp_be_get32(p + 2 * SP_KEY_LEN + 1);
		if (el > len - ENTRY_FIXED)
			return -SEALPOST_ESTORAGEKEY;
		e = add(ss, p);
		if (!e)
			return -ENOMEM;
		e->flags = p[SP_KEY_LEN];
		memcpy(e->origin_ek, p + SP_KEY_LEN + 1, SP_KEY_LEN);
		if (sp_ratchet_decode(e->r, p + ENTRY_FIXED, el, &used) < 0 || used != el)
			return -SEALPOST_ESTORAGEKEY;
		p += ENTRY_FIXED + el;
		len -= ENTRY_FIXED + el;
	}
	return len == 0 ? 0 : -SEALPOST_ESTORAGEKEY;
}

static int load(struct sealpost_sessions *ss, const uint8_t device[SP_KEY_LEN])
{
	uint8_t *file = NULL, *plain = NULL;
	struct stat st;
	size_t fl, pl;
	ssize_t got;
	int fd, r;

	fd = open(ss->path, O_RDONLY | O_CLOEXEC);
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
	fl = (size_t)st.st_size;
	if (fl < HDR_LEN + NONCE_LEN + AEAD_TAG + 4 ||
	    fl > HDR_LEN + NONCE_LEN + AEAD_TAG + 4 + (size_t)SEALPOST_SESSIONS_MAX * STATE_MAX) {
		r = -SEALPOST_ESTORAGEKEY;
		goto out;
	}
	pl = fl - HDR_LEN - NONCE_LEN - AEAD_TAG;
	file = malloc(fl);
	plain = sodium_malloc(pl);
	if (!file || !plain) {
		r = -ENOMEM;
		goto out;
	}
	got = read(fd, file, fl);
	if (got != (ssize_t)fl) {
		r = -EIO;
		goto out;
	}
	if (memcmp(file, "SPSS", 4) != 0 || file[4] != 1) {
		r = -SEALPOST_ESTORAGEKEY;
		goto out;
	}
	if (memcmp(file + 5, device, SP_KEY_LEN) != 0) {
		r = -EINVAL; /* another device's store */
		goto out;
	}
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, file + HDR_LEN + NONCE_LEN,
						       fl - HDR_LEN - NONCE_LEN, file, HDR_LEN,
						       file + HDR_LEN, ss->key) != 0) {
		r = -SEALPOST_ESTORAGEKEY;
		goto out;
	}
	r = decode(ss, plain, pl);
out:
	sodium_free(plain);
	free(file);
	close(fd);
	return r;
}

SEALPOST_API void sealpost_sessions_close(struct sealpost_sessions *ss)
{
	if (!ss)
		return;
	for (size_t i = 0; i < ss->n; i++)
		drop(&ss->v[i]);
	free(ss->v);
	sodium_free(ss->key);
	if (ss->lock_fd >= 0)
		close(ss->lock_fd); /* releases the flock */
	free(ss->path);
	free(ss);
}

/* path.lock taken exclusively: 0, -EBUSY (open elsewhere), -errno. */
static int lock_store(struct sealpost_sessions *ss)
{
	size_t n = strlen(ss->path);
	char *lp = malloc(n + 6);
	int r = 0;

	if (!lp)
		return -ENOMEM;
	memcpy(lp, ss->path, n);
	memcpy(lp + n, ".lock", 6);
	ss->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (ss->lock_fd < 0)
		r = -errno;
	else if (flock(ss->lock_fd, LOCK_EX | LOCK_NB) < 0)
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
	free(lp);
	return r;
}

SEALPOST_API int sealpost_sessions_open(struct sealpost_sessions **out, const char *path,
					const struct sealpost_key *device,
					const uint8_t storage_key[SEALPOST_STORAGE_KEY_LEN])
{
	struct sealpost_sessions *ss;
	int r;

	if (!out || !path || !device || !storage_key || sodium_init() < 0)
		return -EINVAL;
	ss = calloc(1, sizeof(*ss));
	if (!ss)
		return -ENOMEM;
	ss->lock_fd = -1;
	ss->path = strdup(path);
	ss->key = sodium_malloc(SEALPOST_STORAGE_KEY_LEN);
	if (!ss->path || !ss->key) {
		sealpost_sessions_close(ss);
		return -ENOMEM;
	}
	memcpy(ss->key, storage_key, SEALPOST_STORAGE_KEY_LEN);
	memcpy(ss->device, device->pub, SP_KEY_LEN);
	r = lock_store(ss);
	if (r == 0)
		r = load(ss, device->pub);
	if (r == -ENOENT)
		r = 0;
	if (r < 0) {
		sealpost_sessions_close(ss);
		return r;
	}
	*out = ss;
	return 0;
}

SEALPOST_API size_t sealpost_sessions_count(const struct sealpost_sessions *ss)
{
	return ss ? ss->n : 0;
}

SEALPOST_API bool sealpost_sessions_has(const struct sealpost_sessions *ss,
					const uint8_t peer[SEALPOST_KEY_LEN])
{
	return ss && peer && find(ss, peer) != NULL;
}

bool sp_sessions_has(const struct sealpost_sessions *ss, const uint8_t peer[SP_KEY_LEN])
{
	return sealpost_sessions_has(ss, peer);
}

SEALPOST_API int sealpost_sessions_forget(struct sealpost_sessions *ss,
					  const uint8_t peer[SEALPOST_KEY_LEN])
{
	struct sess *e;

	if (!ss || !peer)
		return -EINVAL;
	e = find(ss, peer);
	if (!e)
		return -ENOENT;
	remove_at(ss, (size_t)(e - ss->v));
	return save(ss);
}

const uint8_t *sp_sessions_device(const struct sealpost_sessions *ss)
{
	return ss->device;
}

size_t sp_sessions_body_len(size_t len, size_t max_payload, bool pad)
{
	return sp_ratchet_body_len(len, max_payload, pad);
}

int sp_sessions_encrypt(struct sealpost_sessions *ss, const uint8_t peer[SP_KEY_LEN],
			const uint8_t *msg, size_t len, size_t max_payload, bool pad, uint8_t *out,
			size_t cap, size_t *out_len)
{
	struct sess *e = find(ss, peer);
	uint8_t ck[32];
	uint32_t ns;
	int r;

	if (!e)
		return -ENOENT;
	/* encrypt changes only CKs and Ns: kept to undo it if the save fails */
	memcpy(ck, e->r->cks, sizeof(ck));
	ns = e->r->ns;
	r = sp_ratchet_encrypt(e->r, msg, len, max_payload, pad, out, cap, out_len);
	if (r == 0 && save(ss) < 0) {
		memcpy(e->r->cks, ck, sizeof(ck));
		e->r->ns = ns;
		sodium_memzero(out, *out_len);
		r = -EIO;
	}
	sodium_memzero(ck, sizeof(ck));
	return r;
}

int sp_sessions_decrypt(struct sealpost_sessions *ss, const uint8_t *body, size_t len,
			uint8_t sender[SP_KEY_LEN], uint8_t *out, size_t cap, size_t *out_len)
{
	struct sp_ratchet_hdr h;
	struct sess *e = NULL;
	int r;

	if (sp_ratchet_header(body, len, &h) < 0)
		return -EBADMSG;
	for (size_t i = 0; i < ss->n && !e; i++)
		if (sodium_memcmp(ss->v[i].r->tag_recv, h.tag, SP_RATCHET_SID_LEN) == 0)
			e = &ss->v[i];
	if (!e)
		return -EBADMSG;
	r = sp_ratchet_decrypt(e->r, body, len, NULL, out, cap, out_len);
	if (r < 0)
		return r;
	e->flags &= (uint8_t)~FLAG_UNANSWERED;
	memcpy(sender, e->peer, SP_KEY_LEN);
	(void)save(ss); /* a failed save leaves the key on disk until the next */
	return 0;
}

/* The entry for peer, new or (its state wiped) reused. */
static struct sess *slot(struct sealpost_sessions *ss, const uint8_t peer[SP_KEY_LEN])
{
	struct sess *e = find(ss, peer);

	if (e) {
		sodium_memzero(e->r, sizeof(*e->r));
		return e;
	}
	return add(ss, peer);
}

int sp_sessions_start_alice(struct sealpost_sessions *ss, const uint8_t peer[SP_KEY_LEN],
			    const struct sp_fc_start *st)
{
	struct sess *e;
	uint8_t ek_pub[SP_KEY_LEN];
	int r;

	if (!find(ss, peer) && ss->n >= SEALPOST_SESSIONS_MAX)
		return -SEALPOST_ESESSIONFULL;
	e = slot(ss, peer);
	if (!e)
		return -ENOMEM;
	r = sp_ratchet_init_alice(e->r, st->sk, st->ad, st->ek, st->spk);
	if (r < 0) {
		remove_at(ss, (size_t)(e - ss->v));
		return r;
	}
	crypto_scalarmult_base(ek_pub, st->ek);
	memcpy(e->origin_ek, ek_pub, SP_KEY_LEN);
	e->flags = FLAG_UNANSWERED;
	r = save(ss);
	if (r < 0)
		remove_at(ss, (size_t)(e - ss->v)); /* nothing is sent without it */
	return r;
}

int sp_sessions_start_bob(struct sealpost_sessions *ss, const uint8_t peer[SP_KEY_LEN],
			  const struct sp_fc_start *st)
{
	struct sess *e = find(ss, peer);
	int r;

	if (e && sodium_memcmp(e->origin_ek, st->ek, SP_KEY_LEN) == 0)
		return 1; /* the same first contact again */
	if (e && (e->flags & FLAG_UNANSWERED) && memcmp(ss->device, peer, SP_KEY_LEN) < 0)
		return 1; /* both began at once: the lower key's session wins */
	if (!e && ss->n >= SEALPOST_SESSIONS_MAX)
		return -SEALPOST_ESESSIONFULL;
	e = slot(ss, peer);
	if (!e)
		return -ENOMEM;
	r = sp_ratchet_init_bob(e->r, st->sk, st->ad, st->spk, st->ek, NULL);
	if (r < 0) {
		remove_at(ss, (size_t)(e - ss->v));
		return r;
	}
	memcpy(e->origin_ek, st->ek, SP_KEY_LEN);
	e->flags = 0;
	(void)save(ss); /* the message is not withheld for it: the next save */
	return 0;
}
