/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_account.c: accounts in libsealpost, the parts without a connection:
 * the account key, device lists (lib/crypto/sp_devlist does the format),
 * link requests, and the store of the highest list seen per account.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "sealpost.h"
#include "sp_acct_internal.h"
#include "sp_devlist.h"
#include "sp_fsutil.h"
#include "sp_keyfile.h"
#include "sp_noise.h"
#include "sp_sth.h"

_Static_assert((int)SEALPOST_ACCOUNT_KEY_LEN == (int)SP_ACCOUNT_KEY_LEN, "account key length");
_Static_assert((int)SEALPOST_LABEL_MAX == (int)SP_DEVLIST_LABEL_MAX, "label maximum");
_Static_assert((int)SEALPOST_DEVICES_MAX == (int)SP_DEVLIST_DEVICES_MAX, "devices maximum");
_Static_assert((int)SEALPOST_LIST_MAX == (int)SP_DEVLIST_MAX, "list maximum");

#define LINK_PREFIX "sealpost-link-1:"

/* sodium_malloc'd; read-only after creation. */
struct sealpost_account {
	uint8_t seed[crypto_sign_SEEDBYTES];
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
};

static int account_from_seed(struct sealpost_account **out, const uint8_t seed[32])
{
	struct sealpost_account *a;

	if (sodium_init() < 0)
		return -ENOMEM;
	a = sodium_malloc(sizeof(*a));
	if (!a)
		return -ENOMEM;
	memcpy(a->seed, seed, sizeof(a->seed));
	crypto_sign_seed_keypair(a->pk, a->sk, a->seed);
	sodium_mprotect_readonly(a);
	*out = a;
	return 0;
}

SEALPOST_API int sealpost_account_generate(struct sealpost_account **out)
{
	uint8_t seed[32];
	int r;

	if (!out)
		return -EINVAL;
	if (sodium_init() < 0)
		return -ENOMEM;
	randombytes_buf(seed, sizeof(seed));
	r = account_from_seed(out, seed);
	sodium_memzero(seed, sizeof(seed));
	return r;
}

SEALPOST_API int sealpost_account_load(struct sealpost_account **out, const char *path)
{
	uint8_t seed[32];
	int r;

	if (!out || !path)
		return -EINVAL;
	r = sp_keyfile_read_private(path, seed);
	if (r == -EACCES) {
		struct stat st;

		if (stat(path, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
			r = -SEALPOST_EKEYMODE;
	} else if (r == -EBADMSG) {
		r = -SEALPOST_EKEYFORMAT;
	}
	if (r == 0)
		r = account_from_seed(out, seed);
	sodium_memzero(seed, sizeof(seed));
	return r;
}

SEALPOST_API int sealpost_account_save(const struct sealpost_account *a, const char *path)
{
	if (!a || !path)
		return -EINVAL;
	return sp_keyfile_write_private(path, a->seed);
}

SEALPOST_API void sealpost_account_public(const struct sealpost_account *a,
					  uint8_t pub[SEALPOST_ACCOUNT_KEY_LEN])
{
	memcpy(pub, a->pk, SEALPOST_ACCOUNT_KEY_LEN);
}

SEALPOST_API void sealpost_account_free(struct sealpost_account *a)
{
	if (a)
		sodium_free(a); /* wipes */
}

/* ---- lists ------------------------------------------------------------------ */

void sp_acct_to_public(const struct sp_devlist *in, struct sealpost_devlist *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->account, in->account, sizeof(out->account));
	out->version = in->version;
	out->count = in->count;
	for (uint32_t i = 0; i < in->count; i++) {
		memcpy(out->dev[i].key, in->dev[i].key, SP_KEY_LEN);
		out->dev[i].added_s = in->dev[i].added_s;
		memcpy(out->dev[i].label, in->dev[i].label, in->dev[i].label_len + 1u);
	}
}

/* A public list into the codec's form; -EINVAL for a label too long. */
static int from_public(const struct sealpost_devlist *in, struct sp_devlist *out)
{
	memset(out, 0, sizeof(*out));
	if (in->count > SP_DEVLIST_DEVICES_MAX)
		return -EINVAL;
	memcpy(out->account, in->account, sizeof(out->account));
	out->version = in->version;
	out->count = in->count;
	for (uint32_t i = 0; i < in->count; i++) {
		size_t n = strnlen(in->dev[i].label, sizeof(in->dev[i].label));

		if (n > SP_DEVLIST_LABEL_MAX)
			return -EINVAL;
		memcpy(out->dev[i].key, in->dev[i].key, SP_KEY_LEN);
		out->dev[i].added_s = in->dev[i].added_s;
		out->dev[i].label_len = (uint8_t)n;
		memcpy(out->dev[i].label, in->dev[i].label, n);
	}
	return 0;
}

SEALPOST_API int sealpost_devlist_verify(const uint8_t *bytes, size_t len,
					 struct sealpost_devlist *out)
{
	struct sp_devlist l;

	if (!bytes || !out)
		return -EINVAL;
	if (sodium_init() < 0)
		return -ENOMEM;
	if (sp_devlist_verify(bytes, len, &l) < 0)
		return -SEALPOST_EBADLIST;
	sp_acct_to_public(&l, out);
	return 0;
}

SEALPOST_API int sealpost_devlist_add(struct sealpost_devlist *l,
				      const uint8_t key[SEALPOST_KEY_LEN], const char *label,
				      uint64_t added_s)
{
	struct sp_devlist t;
	int r;

	if (!l || !key || !label || from_public(l, &t) < 0)
		return -EINVAL;
	r = sp_devlist_add(&t, key, label, added_s);
	if (r == -EILSEQ)
		return -EEXIST;
	if (r == -EDOM || r == -EBADMSG)
		return -EINVAL;
	if (r < 0)
		return r;
	sp_acct_to_public(&t, l);
	return 0;
}

SEALPOST_API int sealpost_devlist_remove(struct sealpost_devlist *l,
					 const uint8_t key[SEALPOST_KEY_LEN])
{
	struct sp_devlist t;
	int r;

	if (!l || !key || from_public(l, &t) < 0)
		return -EINVAL;
	r = sp_devlist_remove(&t, key);
	if (r < 0)
		return r;
	sp_acct_to_public(&t, l);
	return 0;
}

SEALPOST_API int sealpost_devlist_sign(const struct sealpost_account *a,
				       const struct sealpost_devlist *l, uint8_t *out, size_t cap,
				       size_t *len)
{
	struct sp_devlist t;
	int r;

	if (!a || !l || !out || !len || from_public(l, &t) < 0)
		return -EINVAL;
	r = sp_devlist_sign(&t, a->sk, out, cap, len);
	if (r == 0 || r == -EMSGSIZE)
		return r;
	return -EINVAL;
}

/* ---- link requests ---------------------------------------------------------- */

SEALPOST_API int sealpost_link_request(const uint8_t device[SEALPOST_KEY_LEN], const char *label,
				       char *out, size_t cap, char code[SEALPOST_LINK_CODE_LEN + 1])
{
	char hex[SP_KEY_HEX_LEN + 1];
	int n;

	if (!device || !label || !out || !code || !sp_noise_key_valid(device))
		return -EINVAL;
	if (sp_devlist_label_ok(label, strlen(label)) < 0)
		return -EINVAL;
	if (sodium_init() < 0)
		return -ENOMEM;
	sp_key_format_hex(hex, device);
	n = snprintf(out, cap, "%s%s:%s", LINK_PREFIX, hex, label);
	if (n < 0 || (size_t)n >= cap)
		return -EMSGSIZE;
	sp_devlist_link_code(device, label, code);
	return 0;
}

SEALPOST_API int sealpost_link_request_parse(const char *req, uint8_t device[SEALPOST_KEY_LEN],
					     char label[SEALPOST_LABEL_MAX + 1],
					     char code[SEALPOST_LINK_CODE_LEN + 1])
{
	char hex[SP_KEY_HEX_LEN + 1];
	const char *p, *end;
	size_t n;

	if (!req || !device || !label || !code)
		return -EINVAL;
	if (sodium_init() < 0)
		return -ENOMEM;
	p = req;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		end--;
	n = sizeof(LINK_PREFIX) - 1;
	if ((size_t)(end - p) < n + SP_KEY_HEX_LEN + 2 || memcmp(p, LINK_PREFIX, n) != 0)
		return -SEALPOST_ELINKFORMAT;
	p += n;
	memcpy(hex, p, SP_KEY_HEX_LEN);
	hex[SP_KEY_HEX_LEN] = '\0';
	p += SP_KEY_HEX_LEN;
	if (*p++ != ':' || sp_key_parse_hex(device, hex) < 0 || !sp_noise_key_valid(device))
		return -SEALPOST_ELINKFORMAT;
	n = (size_t)(end - p);
	if (sp_devlist_label_ok(p, n) < 0)
		return -SEALPOST_ELINKFORMAT;
	memcpy(label, p, n);
	label[n] = '\0';
	sp_devlist_link_code(device, label, code);
	return 0;
}

/* ---- the store of lists seen ------------------------------------------------- */

struct kept {
	uint8_t account[SP_ACCOUNT_KEY_LEN];
	uint64_t version;
	size_t len;
	uint8_t bytes[SP_DEVLIST_MAX];
};

struct sealpost_account_store {
	char *path;
	struct kept *k;
	size_t n;
	size_t cap;                     /* bytes allocated for k */
	/* The broker's transparency log as this device knows it: the log key
	 * pinned on first use and the newest head verified under it. */
	bool log_ok, head_ok;
	uint8_t log_key[SP_LOG_KEY_LEN];
	uint8_t head[SP_STH_LEN];       /* the sth encoding */
};

#define LOG_LINE "log "

static struct kept *find(struct sealpost_account_store *st, const uint8_t account[32])
{
	for (size_t i = 0; i < st->n; i++)
		if (memcmp(st->k[i].account, account, 32) == 0)
			return &st->k[i];
	return NULL;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

static int unhex(uint8_t *out, size_t len, const char *hex, size_t n)
{
	if (n != 2 * len)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EBADMSG;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* "log KEYHEX" or "log KEYHEX STHHEX": the pinned log key and the newest
 * head; the head must verify under the key (a file edited by hand to a
 * forged head is refused, not trusted). */
static int load_log_line(struct sealpost_account_store *st, const char *line, size_t n)
{
	struct sp_sth sth;
	uint8_t key[SP_LOG_KEY_LEN], head[SP_STH_LEN];
	const char *p = line + strlen(LOG_LINE);
	size_t rest = n - strlen(LOG_LINE);

	if (rest < 2 * SP_LOG_KEY_LEN || unhex(key, sizeof(key), p, 2 * SP_LOG_KEY_LEN) < 0)
		return -EBADMSG;
	p += 2 * SP_LOG_KEY_LEN;
	rest -= 2 * SP_LOG_KEY_LEN;
	if (rest) {
		if (*p != ' ' || unhex(head, sizeof(head), p + 1, rest - 1) < 0 ||
		    sp_sth_decode(head, sizeof(head), &sth) < 0 || sp_sth_verify(&sth, key) < 0)
			return -EBADMSG;
		memcpy(st->head, head, sizeof(head));
		st->head_ok = true;
	}
	memcpy(st->log_key, key, sizeof(key));
	st->log_ok = true;
	return 0;
}

/* One line: the list in lowercase hex (the account is inside it), or the
 * log's line. */
static int load_line(struct sealpost_account_store *st, const char *line, size_t n)
{
	struct sp_devlist l;
	struct kept *k;
	uint8_t bytes[SP_DEVLIST_MAX];
	size_t len = n / 2;

	if (n > strlen(LOG_LINE) && memcmp(line, LOG_LINE, strlen(LOG_LINE)) == 0)
		return load_log_line(st, line, n);
	if (n % 2 || len > sizeof(bytes))
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		int hi = hexval(line[2 * i]), lo = hexval(line[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EBADMSG;
		bytes[i] = (uint8_t)(hi << 4 | lo);
	}
	if (sp_devlist_verify(bytes, len, &l) < 0)
		return -EBADMSG;
	k = find(st, l.account);
	if (!k) {
		void *g = sp_fsutil_grow(st->k, &st->cap, (st->n + 1) * sizeof(*st->k),
					 4 * sizeof(*st->k));

		if (!g)
			return -ENOMEM;
		st->k = g;
		k = &st->k[st->n++];
	} else if (k->version >= l.version) {
		return 0;
	}
	memcpy(k->account, l.account, 32);
	k->version = l.version;
	k->len = len;
	memcpy(k->bytes, bytes, len);
	return 0;
}

static int load(struct sealpost_account_store *st)
{
	FILE *f = fopen(st->path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	int r = 0;

	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while ((got = getline(&line, &cap, f)) > 0) {
		if (line[got - 1] == '\n')
			got--;
		if (got == 0)
			continue;
		r = load_line(st, line, (size_t)got);
		if (r < 0)
			break;
	}
	free(line);
	fclose(f);
	return r;
}

/* The whole file again: built in memory, then sp_fsutil_replace (a
 * temporary file, fsync'd, renamed over it, the directory fsync'd). */
static int save(struct sealpost_account_store *st)
{
	size_t line = 2 * SP_DEVLIST_MAX + 2, cap = st->n * line + line + 2 * SP_STH_LEN + 64, o = 0;
	char *buf = malloc(cap);
	int r;

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < st->n; i++) {
		sodium_bin2hex(buf + o, cap - o, st->k[i].bytes, st->k[i].len);
		o += 2 * st->k[i].len;
		buf[o++] = '\n';
	}
	if (st->log_ok) {
		memcpy(buf + o, LOG_LINE, strlen(LOG_LINE));
		o += strlen(LOG_LINE);
		sodium_bin2hex(buf + o, cap - o, st->log_key, SP_LOG_KEY_LEN);
		o += 2 * SP_LOG_KEY_LEN;
		if (st->head_ok) {
			buf[o++] = ' ';
			sodium_bin2hex(buf + o, cap - o, st->head, SP_STH_LEN);
			o += 2 * SP_STH_LEN;
		}
		buf[o++] = '\n';
	}
	r = sp_fsutil_replace(st->path, buf, o, 0600);
	free(buf); /* public keys and hashes only */
	return r;
}

SEALPOST_API int sealpost_account_store_open(struct sealpost_account_store **out,
					     const char *path)
{
	struct sealpost_account_store *st;
	int r;

	if (!out || !path)
		return -EINVAL;
	if (sodium_init() < 0)
		return -ENOMEM;
	st = calloc(1, sizeof(*st));
	if (!st || !(st->path = strdup(path))) {
		free(st);
		return -ENOMEM;
	}
	r = load(st);
	if (r < 0) {
		sealpost_account_store_close(st);
		return r;
	}
	*out = st;
	return 0;
}

SEALPOST_API void sealpost_account_store_close(struct sealpost_account_store *st)
{
	if (!st)
		return;
	free(st->k);
	free(st->path);
	free(st);
}

int sp_acct_store_check(struct sealpost_account_store *st, const uint8_t *bytes, size_t len,
			struct sp_devlist *l)
{
	struct kept *k;
	struct kept saved;
	bool added = false;
	int r;

	if (sp_devlist_verify(bytes, len, l) < 0)
		return -SEALPOST_EBADLIST;
	if (!st)
		return 0;
	k = find(st, l->account);
	if (k) {
		if (l->version < k->version)
			return -SEALPOST_EROLLBACK;
		if (l->version == k->version) {
			/* The same version must be the same list: two different
			 * signed lists of one version are a fork. */
			if (len != k->len || memcmp(bytes, k->bytes, len) != 0)
				return -SEALPOST_EROLLBACK;
			return 0;
		}
		saved = *k;
	} else {
		void *g = sp_fsutil_grow(st->k, &st->cap, (st->n + 1) * sizeof(*st->k),
					 4 * sizeof(*st->k));

		if (!g)
			return -ENOMEM;
		st->k = g;
		k = &st->k[st->n++];
		added = true;
	}
	memcpy(k->account, l->account, 32);
	k->version = l->version;
	k->len = len;
	memcpy(k->bytes, bytes, len);
	r = save(st);
	if (r < 0) {
		/* Not kept: memory says what the file says. */
		if (added)
			st->n--;
		else
			*k = saved;
		return -EIO;
	}
	return 0;
}

SEALPOST_API int sealpost_account_store_check(struct sealpost_account_store *st,
					      const uint8_t *bytes, size_t len,
					      struct sealpost_devlist *out)
{
	struct sp_devlist l;
	int r;

	if (!st || !bytes || !out)
		return -EINVAL;
	r = sp_acct_store_check(st, bytes, len, &l);
	if (r == 0)
		sp_acct_to_public(&l, out);
	return r;
}

SEALPOST_API int sealpost_account_store_get(struct sealpost_account_store *st,
					    const uint8_t account[SEALPOST_ACCOUNT_KEY_LEN],
					    struct sealpost_devlist *out)
{
	struct sp_devlist l;
	struct kept *k;

	if (!st || !account || !out)
		return -EINVAL;
	k = find(st, account);
	if (!k)
		return -ENOENT;
	if (sp_devlist_decode(k->bytes, k->len, &l) < 0)
		return -EBADMSG;
	sp_acct_to_public(&l, out);
	return 0;
}

/* ---- the log's state in the store -------------------------------------------- */

int sp_acct_log_get(struct sealpost_account_store *st, uint8_t key[SP_LOG_KEY_LEN],
		    struct sp_sth *head, bool *head_ok)
{
	if (!st || !st->log_ok)
		return -ENOENT;
	memcpy(key, st->log_key, SP_LOG_KEY_LEN);
	*head_ok = st->head_ok && sp_sth_decode(st->head, SP_STH_LEN, head) == 0;
	return 0;
}

int sp_acct_log_put(struct sealpost_account_store *st, const uint8_t key[SP_LOG_KEY_LEN],
		    const struct sp_sth *head)
{
	struct sealpost_account_store old;
	int r;

	if (!st)
		return 0;
	old = *st;
	memcpy(st->log_key, key, SP_LOG_KEY_LEN);
	st->log_ok = true;
	if (head) {
		sp_sth_encode(head, st->head);
		st->head_ok = true;
	}
	r = save(st);
	if (r < 0) {
		/* Not kept: memory says what the file says. */
		st->log_ok = old.log_ok;
		st->head_ok = old.head_ok;
		memcpy(st->log_key, old.log_key, sizeof(st->log_key));
		memcpy(st->head, old.head, sizeof(st->head));
		return -EIO;
	}
	return 0;
}

SEALPOST_API int sealpost_account_store_log(struct sealpost_account_store *st,
					    uint8_t log_key[32], uint8_t head[113])
{
	if (!st)
		return -EINVAL;
	if (!st->log_ok)
		return -ENOENT;
	if (head && !st->head_ok)
		return -ENOENT;
	if (log_key)
		memcpy(log_key, st->log_key, SP_LOG_KEY_LEN);
	if (head)
		memcpy(head, st->head, SP_STH_LEN);
	return 0;
}
