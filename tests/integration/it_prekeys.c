/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_prekeys: prekey bundles (docs/PROTOCOL.md 17) through libsealpost
 * against a real sealpostd and its RocksDB directory. A device uploads a
 * signed prekey and one-time prekeys; another fetches its bundle and the
 * library verifies it against the account's signed device list; two
 * fetchers in two threads, each on its own connection, never get the same
 * one-time prekey; once none is left the bundle holds the signed prekey
 * alone and the owner is told its stock is low (live, and when it
 * connects); a kill -9 and a restart on the same directory never hand out
 * again what was handed out; the library refuses a tampered bundle, a
 * substituted one and a device that is not on the list; uploads above the
 * broker's limits are refused with -SEALPOST_EPREKEYLIMIT; the fetch budget
 * answers -SEALPOST_EPREKEYRATE; an anonymous (NK) client may fetch, not
 * upload.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sealpost.h"
#include "support.h"

enum { TIMEOUT_MS = 20000, UPLOAD_MAX = 4, STOCK_MAX = 6, LOW = 3 };

static const char *const limits[] = {
	"--fsync", "never", "--store-min-free", "0", "--log-level", "info",
	"--prekey-upload-max", "4", "--prekey-stock-max", "6", "--prekey-low", "3",
	"--prekey-fetch-source-burst", "1000", "--prekey-fetch-device-burst", "1000", NULL
};

struct fx {
	struct sp_it_broker b;
	char dir[64];
	char pk_path[128];
	struct sealpost_key *owner_key, *fetch_key;
	uint8_t owner[SEALPOST_KEY_LEN], fetcher[SEALPOST_KEY_LEN];
	struct sealpost_account *acct;
	uint8_t list[SEALPOST_LIST_MAX];   /* the account's list: owner and fetcher */
	size_t list_len;
	struct sealpost_prekeys *pk;
};

static struct sealpost_key *new_key(uint8_t pub[SEALPOST_KEY_LEN])
{
	struct sealpost_key *k = NULL;

	assert_int_equal(sealpost_key_generate(&k), 0);
	sealpost_key_public(k, pub);
	return k;
}

static struct sealpost_client *dial(const struct sp_it_broker *b, const struct sealpost_key *k)
{
	struct sealpost_client *c = NULL;

	assert_int_equal(sealpost_client_connect(&c, b->addr, k, b->server_pub, TIMEOUT_MS), 0);
	return c;
}

static void make_list(struct fx *f, const uint8_t (*devs)[SEALPOST_KEY_LEN], unsigned n,
		      uint8_t *out, size_t *len)
{
	struct sealpost_devlist l;

	memset(&l, 0, sizeof(l));
	sealpost_account_public(f->acct, l.account);
	l.version = 1;
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(sealpost_devlist_add(&l, devs[i], i ? "fetcher" : "owner", 1700000000), 0);
	assert_int_equal(sealpost_devlist_sign(f->acct, &l, out, SEALPOST_LIST_MAX, len), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint8_t devs[2][SEALPOST_KEY_LEN];

	assert_non_null(f);
	strcpy(f->dir, "/tmp/sp_it_prekeys.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->pk_path, sizeof(f->pk_path), "%s/owner.prekeys", f->dir);
	f->owner_key = new_key(f->owner);
	f->fetch_key = new_key(f->fetcher);
	assert_int_equal(sealpost_account_generate(&f->acct), 0);
	memcpy(devs[0], f->owner, SEALPOST_KEY_LEN);
	memcpy(devs[1], f->fetcher, SEALPOST_KEY_LEN);
	make_list(f, (const uint8_t(*)[SEALPOST_KEY_LEN])devs, 2, f->list, &f->list_len);
	assert_int_equal(sealpost_prekeys_open(&f->pk, f->pk_path, f->owner_key), 0);
	assert_int_equal(sp_it_broker_start(&f->b, NULL, limits), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	assert_int_equal(sp_it_log_sanitizer_reports(&f->b), 0);
	sp_it_broker_stop(&f->b);
	sp_it_rmrf(f->b.data_dir);
	sealpost_prekeys_close(f->pk);
	sealpost_key_free(f->owner_key);
	sealpost_key_free(f->fetch_key);
	sealpost_account_free(f->acct);
	sp_it_rmrf(f->dir);
	free(f);
	return 0;
}

/* The next event of type (others skipped), within TIMEOUT_MS. */
static void next_of(struct sealpost_client *c, enum sealpost_event_type type,
		    struct sealpost_event *ev)
{
	for (;;) {
		assert_int_equal(sealpost_client_next_event(c, ev, TIMEOUT_MS), 1);
		if (ev->type == type)
			return;
		if (ev->type == SEALPOST_EVENT_CLOSED)
			fail_msg("closed (%d) waiting for event %d", ev->error, (int)type);
	}
}

static void test_upload_then_fetch(void **state)
{
	struct fx *f = *state;
	struct sealpost_client *o = dial(&f->b, f->owner_key), *c = dial(&f->b, f->fetch_key), *a;
	struct sealpost_prekey_bundle bun;
	struct sealpost_prekeys_info info;
	uint32_t stock = 0;

	assert_int_equal(sealpost_prekeys_upload_wait(o, f->pk, 3, TIMEOUT_MS, &stock), 0);
	assert_int_equal(stock, 3);
	sealpost_prekeys_info(f->pk, &info);
	assert_true(info.has_signed);
	assert_int_equal(info.onetime, 3);

	assert_int_equal(sealpost_prekeys_fetch_wait(c, f->list, f->list_len, f->owner, TIMEOUT_MS,
						     &bun), 0);
	assert_memory_equal(bun.device, f->owner, SEALPOST_KEY_LEN);
	assert_int_equal(bun.signed_id, info.signed_id);
	assert_true(bun.has_onetime);
	/* the lowest id first: the first one-time key made */
	assert_int_equal(bun.onetime_id, info.signed_id + 1);

	/* an anonymous (NK) connection fetches too, and may not upload */
	a = NULL;
	assert_int_equal(sealpost_client_connect_anonymous(&a, f->b.addr, f->b.server_pub,
							   TIMEOUT_MS, NULL), 0);
	assert_int_equal(sealpost_prekeys_fetch_wait(a, f->list, f->list_len, f->owner, TIMEOUT_MS,
						     &bun), 0);
	assert_true(bun.has_onetime);
	assert_int_equal(bun.onetime_id, info.signed_id + 2);
	assert_int_equal(sealpost_prekeys_upload(a, f->pk, 1, 0, NULL), -SEALPOST_EANONYMOUS);
	sealpost_client_close(a);

	/* the owner's stock fell below prekey-low (3): told, with what is left */
	{
		struct sealpost_event ev;

		next_of(o, SEALPOST_EVENT_PREKEY_LOW, &ev);
		assert_int_equal(ev.count, 2);
		next_of(o, SEALPOST_EVENT_PREKEY_LOW, &ev);
		assert_int_equal(ev.count, 1);
	}

	/* a device with no prekeys on file */
	assert_int_equal(sealpost_prekeys_fetch_wait(o, f->list, f->list_len, f->fetcher, TIMEOUT_MS,
						     &bun), -SEALPOST_ENOPREKEY);
	sealpost_client_close(o);
	sealpost_client_close(c);
}

/* ---- two fetchers at once ------------------------------------------------------ */

struct fetcher {
	struct fx *f;
	const struct sealpost_key *key;
	unsigned n;
	uint32_t ids[16];
	unsigned got, signed_only;
	int err;
};

static void *fetch_loop(void *arg)
{
	struct fetcher *t = arg;
	struct sealpost_client *c = NULL;

	t->err = sealpost_client_connect(&c, t->f->b.addr, t->key, t->f->b.server_pub, TIMEOUT_MS);
	for (unsigned i = 0; t->err == 0 && i < t->n; i++) {
		struct sealpost_prekey_bundle bun;

		t->err = sealpost_prekeys_fetch_wait(c, t->f->list, t->f->list_len, t->f->owner,
						     TIMEOUT_MS, &bun);
		if (t->err == 0 && bun.has_onetime)
			t->ids[t->got++] = bun.onetime_id;
		else if (t->err == 0)
			t->signed_only++;
	}
	sealpost_client_close(c);
	return NULL;
}

static void test_two_fetchers_once(void **state)
{
	struct fx *f = *state;
	struct sealpost_client *o = dial(&f->b, f->owner_key);
	struct fetcher t[2] = { { .f = f, .key = f->fetch_key, .n = 5 },
				{ .f = f, .key = f->owner_key, .n = 5 } };
	struct sealpost_key *third;
	uint8_t third_pub[SEALPOST_KEY_LEN];
	pthread_t th[2];
	uint32_t stock = 0;

	/* the second fetcher is a device of its own (the owner's key would
	 * take the owner's route over): a third key, on no list, fetching */
	third = new_key(third_pub);
	t[1].key = third;
	assert_int_equal(sealpost_prekeys_upload_wait(o, f->pk, 4, TIMEOUT_MS, &stock), 0);
	assert_int_equal(sealpost_prekeys_upload_wait(o, f->pk, 2, TIMEOUT_MS, &stock), 0);
	assert_int_equal(stock, STOCK_MAX);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, fetch_loop, &t[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(t[0].err, 0);
	assert_int_equal(t[1].err, 0);
	/* 10 fetches for 6 keys: each key exactly once, 4 signed-only */
	assert_int_equal(t[0].got + t[1].got, STOCK_MAX);
	assert_int_equal(t[0].signed_only + t[1].signed_only, 10 - STOCK_MAX);
	for (unsigned i = 0; i < t[0].got; i++)
		for (unsigned j = 0; j < t[1].got; j++)
			assert_int_not_equal(t[0].ids[i], t[1].ids[j]);
	for (int k = 0; k < 2; k++)
		for (unsigned i = 1; i < t[k].got; i++)
			assert_true(t[k].ids[i] > t[k].ids[i - 1]); /* lowest first, each once */

	/* exhausted: the owner was told (the last PrekeyLow says 0) */
	{
		struct sealpost_event ev;

		do
			next_of(o, SEALPOST_EVENT_PREKEY_LOW, &ev);
		while (ev.count != 0);
	}
	sealpost_client_close(o);
	/* and is told again when it connects while low */
	o = dial(&f->b, f->owner_key);
	{
		struct sealpost_event ev;

		next_of(o, SEALPOST_EVENT_PREKEY_LOW, &ev);
		assert_int_equal(ev.count, 0);
	}
	/* refilled, fetches get one-time keys again */
	assert_int_equal(sealpost_prekeys_upload_wait(o, f->pk, 4, TIMEOUT_MS, &stock), 0);
	assert_int_equal(stock, 4);
	sealpost_client_close(o);
	sealpost_key_free(third);
}

/* ---- kill -9 -------------------------------------------------------------------- */

static void test_kill9_keeps_handed_out(void **state)
{
	struct fx *f = *state;
	struct sealpost_client *o = dial(&f->b, f->owner_key), *c;
	struct sealpost_prekey_bundle bun;
	uint32_t stock = 0, first, seen[8];
	unsigned n = 0;

	assert_int_equal(sealpost_prekeys_upload_wait(o, f->pk, 4, TIMEOUT_MS, &stock), 0);
	sealpost_client_close(o);
	c = dial(&f->b, f->fetch_key);
	assert_int_equal(sealpost_prekeys_fetch_wait(c, f->list, f->list_len, f->owner, TIMEOUT_MS,
						     &bun), 0);
	assert_true(bun.has_onetime);
	first = bun.onetime_id;
	sealpost_client_close(c);

	/* SIGKILL right after the answer: the take was synced before it */
	sp_it_broker_kill(&f->b);
	assert_int_equal(sp_it_broker_restart(&f->b, limits), 0);
	c = dial(&f->b, f->fetch_key);
	for (;;) {
		assert_int_equal(sealpost_prekeys_fetch_wait(c, f->list, f->list_len, f->owner,
							     TIMEOUT_MS, &bun), 0);
		if (!bun.has_onetime)
			break;
		assert_true(n < 8);
		seen[n++] = bun.onetime_id;
	}
	assert_int_equal(n, 3);
	for (unsigned i = 0; i < n; i++)
		assert_int_not_equal(seen[i], first);
	sealpost_client_close(c);
}

/* ---- forgeries the library refuses ----------------------------------------------- */

static void test_forged_refused(void **state)
{
	struct fx *f = *state;
	struct sealpost_client *o = dial(&f->b, f->owner_key), *c = dial(&f->b, f->fetch_key), *s;
	struct sealpost_key *stranger;
	struct sealpost_prekeys *spk = NULL;
	struct sealpost_prekey_bundle bun;
	struct sealpost_event ev;
	uint8_t spub[SEALPOST_KEY_LEN], bytes[512], other_list[SEALPOST_LIST_MAX];
	char path[160];
	size_t len, other_len;
	uint64_t id = 0;
	uint32_t stock;

	assert_int_equal(sealpost_prekeys_upload_wait(o, f->pk, 2, TIMEOUT_MS, &stock), 0);
	/* the bundle as the broker sends it */
	assert_int_equal(sealpost_prekeys_fetch(c, f->owner, &id), 0);
	next_of(c, SEALPOST_EVENT_PREKEY_BUNDLE, &ev);
	assert_int_equal(ev.client_id, id);
	assert_int_equal(ev.status, SEALPOST_STATUS_ACCEPTED);
	assert_true(ev.len <= sizeof(bytes));
	len = ev.len;
	memcpy(bytes, ev.data, len);
	assert_int_equal(sealpost_prekey_bundle_verify(NULL, f->list, f->list_len, f->owner, bytes,
						       len, &bun), 0);

	/* a bad signature: any byte of the signed prekey's or the one-time
	 * prekey's key or signature changed */
	for (size_t at = 65; at < len; at += 13) {
		bytes[at] ^= 0x04;
		int r = sealpost_prekey_bundle_verify(NULL, f->list, f->list_len, f->owner, bytes,
						      len, &bun);
		assert_true(r == -SEALPOST_EPREKEYBAD);
		bytes[at] ^= 0x04;
	}
	/* the owner's bundle presented as the fetcher's (a substitution) */
	assert_int_equal(sealpost_prekey_bundle_verify(NULL, f->list, f->list_len, f->fetcher, bytes,
						       len, &bun), -SEALPOST_EPREKEYBAD);

	/* a device not on the list: its own prekeys are real (the broker
	 * checked them against its key), but no list names it */
	stranger = new_key(spub);
	snprintf(path, sizeof(path), "%s/stranger.prekeys", f->dir);
	assert_int_equal(sealpost_prekeys_open(&spk, path, stranger), 0);
	s = dial(&f->b, stranger);
	assert_int_equal(sealpost_prekeys_upload_wait(s, spk, 1, TIMEOUT_MS, &stock), 0);
	assert_int_equal(sealpost_prekeys_fetch_wait(c, f->list, f->list_len, spub, TIMEOUT_MS, &bun),
			 -SEALPOST_ENOTONLIST);
	/* nor may the owner's list be replaced by one of another account */
	{
		struct sealpost_account *other = NULL;
		struct sealpost_account *mine = f->acct;
		uint8_t devs[2][SEALPOST_KEY_LEN];

		assert_int_equal(sealpost_account_generate(&other), 0);
		f->acct = other;
		memcpy(devs[0], f->owner, SEALPOST_KEY_LEN);
		memcpy(devs[1], spub, SEALPOST_KEY_LEN);
		make_list(f, (const uint8_t(*)[SEALPOST_KEY_LEN])devs, 2, other_list, &other_len);
		f->acct = mine;
		other_list[other_len - 1] ^= 1; /* and its signature broken */
		assert_int_equal(sealpost_prekey_bundle_verify(NULL, other_list, other_len, f->owner,
							       bytes, len, &bun), -SEALPOST_EBADLIST);
		sealpost_account_free(other);
	}
	/* a store of one device cannot upload for another */
	assert_int_equal(sealpost_prekeys_upload(o, spk, 1, 0, NULL), -EINVAL);
	sealpost_client_close(s);
	sealpost_prekeys_close(spk);
	sealpost_key_free(stranger);
	sealpost_client_close(o);
	sealpost_client_close(c);
}

/* ---- limits --------------------------------------------------------------------- */

static void test_limits(void **state)
{
	struct fx *f = *state;
	struct sealpost_client *o = dial(&f->b, f->owner_key);
	struct sealpost_prekeys_info before, after;
	uint32_t stock = 0;

	/* above prekey-upload-max (4) */
	sealpost_prekeys_info(f->pk, &before);
	assert_int_equal(sealpost_prekeys_upload_wait(o, f->pk, UPLOAD_MAX + 1, TIMEOUT_MS, &stock),
			 -SEALPOST_EPREKEYLIMIT);
	/* the refused keys stay in the store (their secrets were saved before
	 * the upload left), unpublished */
	sealpost_prekeys_info(f->pk, &after);
	assert_int_equal(after.onetime, before.onetime + UPLOAD_MAX + 1);
	/* up to prekey-stock-max (6), then refused, nothing stored */
	assert_int_equal(sealpost_prekeys_upload_wait(o, f->pk, 4, TIMEOUT_MS, &stock), 0);
	assert_int_equal(sealpost_prekeys_upload_wait(o, f->pk, 2, TIMEOUT_MS, &stock), 0);
	assert_int_equal(stock, STOCK_MAX);
	assert_int_equal(sealpost_prekeys_upload_wait(o, f->pk, 1, TIMEOUT_MS, &stock),
			 -SEALPOST_EPREKEYLIMIT);
	/* the signed prekey alone is always taken */
	assert_int_equal(sealpost_prekeys_upload_wait(o, f->pk, 0, TIMEOUT_MS, &stock), 0);
	assert_int_equal(stock, STOCK_MAX);
	/* more than the protocol allows is refused before anything is made */
	assert_int_equal(sealpost_prekeys_upload(o, f->pk, SEALPOST_PREKEY_UPLOAD_MAX + 1, 0, NULL),
			 -EMSGSIZE);
	sealpost_client_close(o);
}

static void test_fetch_budget(void **state)
{
	static const char *const tight[] = {
		"--fsync", "never", "--store-min-free", "0", "--log-level", "info",
		"--prekey-fetch-source-rate", "1", "--prekey-fetch-source-burst", "2", NULL
	};
	struct fx *f = *state;
	struct sp_it_broker b;
	struct sealpost_client *o, *c;
	struct sealpost_prekey_bundle bun;
	uint32_t stock;

	assert_int_equal(sp_it_broker_start(&b, NULL, tight), 0);
	o = dial(&b, f->owner_key);
	assert_int_equal(sealpost_prekeys_upload_wait(o, f->pk, 3, TIMEOUT_MS, &stock), 0);
	c = dial(&b, f->fetch_key);
	assert_int_equal(sealpost_prekeys_fetch_wait(c, f->list, f->list_len, f->owner, TIMEOUT_MS,
						     &bun), 0);
	assert_int_equal(sealpost_prekeys_fetch_wait(c, f->list, f->list_len, f->owner, TIMEOUT_MS,
						     &bun), 0);
	/* the burst (2) is spent; the rate is 1 a second: the third at once is refused */
	assert_int_equal(sealpost_prekeys_fetch_wait(c, f->list, f->list_len, f->owner, TIMEOUT_MS,
						     &bun), -SEALPOST_EPREKEYRATE);
	sealpost_client_close(c);
	sealpost_client_close(o);
	sp_it_broker_stop(&b);
	sp_it_rmrf(b.data_dir);
}

/* ---- first contact (PROTOCOL.md 7.2) ------------------------------------------------ */

/* The next MESSAGE or BAD_ENVELOPE (DRAINED and PREKEY_LOW skipped). */
static void next_delivery(struct sealpost_client *c, struct sealpost_event *ev)
{
	for (;;) {
		assert_int_equal(sealpost_client_next_event(c, ev, TIMEOUT_MS), 1);
		if (ev->type == SEALPOST_EVENT_MESSAGE || ev->type == SEALPOST_EVENT_BAD_ENVELOPE)
			return;
		if (ev->type == SEALPOST_EVENT_CLOSED)
			fail_msg("closed (%d) waiting for a delivery", ev->error);
	}
}

static void test_first_contact(void **state)
{
	struct fx *f = *state;
	struct sealpost_client *o = dial(&f->b, f->owner_key), *c = dial(&f->b, f->fetch_key);
	struct sealpost_prekeys_info before, after;
	struct sealpost_prekey_bundle bun;
	struct sealpost_event ev;
	static uint8_t env[SEALPOST_ENVELOPE_MAX];
	size_t len = 0;
	uint32_t stock;
	int st;

	sealpost_client_set_prekeys(o, f->pk);
	assert_int_equal(sealpost_prekeys_upload_wait(o, f->pk, 1, TIMEOUT_MS, &stock), 0);
	sealpost_prekeys_info(f->pk, &before);
	assert_int_equal(before.onetime, 1);

	/* sealed to the bundle with its one-time prekey, sent, opened: the
	 * sender proven, the one-time secret deleted (in the store file too) */
	assert_int_equal(sealpost_prekeys_fetch_wait(c, f->list, f->list_len, f->owner, TIMEOUT_MS,
						     &bun), 0);
	assert_true(bun.has_onetime);
	assert_int_equal(sealpost_prekey_seal(f->fetch_key, &bun, (const uint8_t *)"hello first", 11,
					      env, sizeof(env), &len), 0);
	assert_int_equal(env[0], 3);
	assert_int_equal(len, 256 + SEALPOST_FIRST_CONTACT_OVERHEAD); /* padded like every seal */
	assert_int_equal(sealpost_client_send_raw(c, f->owner, env, len, NULL), 0);
	assert_int_equal(sealpost_client_flush(c, TIMEOUT_MS), 0);
	next_delivery(o, &ev);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_memory_equal(ev.sender, f->fetcher, SEALPOST_KEY_LEN);
	assert_int_equal(ev.len, 11);
	assert_memory_equal(ev.data, "hello first", 11);
	sealpost_prekeys_info(f->pk, &after);
	assert_int_equal(after.onetime, 0);
	{
		struct sealpost_prekeys *again = NULL;
		struct sealpost_prekeys_info disk;

		assert_int_equal(sealpost_prekeys_open(&again, f->pk_path, f->owner_key), 0);
		sealpost_prekeys_info(again, &disk);
		assert_int_equal(disk.onetime, 0);
		sealpost_prekeys_close(again);
	}
	/* the same envelope again (a replay, or a copy from the broker's disk
	 * with the secret gone): it no longer opens */
	assert_int_equal(sealpost_client_send_raw(c, f->owner, env, len, NULL), 0);
	assert_int_equal(sealpost_client_flush(c, TIMEOUT_MS), 0);
	next_delivery(o, &ev);
	assert_int_equal(ev.type, SEALPOST_EVENT_BAD_ENVELOPE);

	/* none left: the signed prekey alone still makes a first contact */
	assert_int_equal(sealpost_prekeys_fetch_wait(c, f->list, f->list_len, f->owner, TIMEOUT_MS,
						     &bun), 0);
	assert_false(bun.has_onetime);
	assert_int_equal(sealpost_prekey_seal(f->fetch_key, &bun, (const uint8_t *)"signed only", 11,
					      env, sizeof(env), &len), 0);
	assert_int_equal(sealpost_client_send_wait(c, f->owner, (const uint8_t *)"x", 0, TIMEOUT_MS,
						   &st, NULL), 0); /* an ordinary seal still opens too */
	assert_int_equal(sealpost_client_send_raw(c, f->owner, env, len, NULL), 0);
	assert_int_equal(sealpost_client_flush(c, TIMEOUT_MS), 0);
	next_delivery(o, &ev);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_int_equal(ev.len, 0);
	next_delivery(o, &ev);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_memory_equal(ev.data, "signed only", 11);
	/* a client without the store cannot open one */
	sealpost_client_set_prekeys(o, NULL);
	assert_int_equal(sealpost_client_send_raw(c, f->owner, env, len, NULL), 0);
	assert_int_equal(sealpost_client_flush(c, TIMEOUT_MS), 0);
	next_delivery(o, &ev);
	assert_int_equal(ev.type, SEALPOST_EVENT_BAD_ENVELOPE);
	sealpost_client_close(o);
	sealpost_client_close(c);
}

/* ---- the CLI --------------------------------------------------------------------- */

static int cli(struct fx *f, const char *const *args, char *out, size_t cap)
{
	const char *argv[24];
	unsigned n = 0;

	argv[n++] = getenv("SEALPOST_CLI");
	assert_non_null(argv[0]);
	while (*args)
		argv[n++] = *args++;
	if (strcmp(argv[1], "keygen") != 0 && strcmp(argv[2], "status") != 0) {
		argv[n++] = "--server";
		argv[n++] = f->b.addr;
		argv[n++] = "--server-key";
		argv[n++] = f->b.server_pub_hex;
	}
	argv[n] = NULL;
	return sp_it_run((char *const *)argv, NULL, out, cap, 30);
}

static void test_cli(void **state)
{
	struct fx *f = *state;
	char key[128], out[512];

	snprintf(key, sizeof(key), "%s/cli.key", f->dir);
	assert_int_equal(cli(f, (const char *const[]){ "keygen", key, NULL }, out, sizeof(out)), 0);
	assert_int_equal(cli(f, (const char *const[]){ "prekeys", "status", "--key", key, NULL }, out,
			     sizeof(out)), 0);
	assert_non_null(strstr(out, "one-time 0\n"));
	assert_non_null(strstr(out, "signed none\n"));
	assert_int_equal(cli(f, (const char *const[]){ "prekeys", "upload", "--key", key, "--count",
						    "3", NULL }, out, sizeof(out)), 0);
	assert_string_equal(out, "3\n");
	assert_int_equal(cli(f, (const char *const[]){ "prekeys", "status", "--key", key, NULL }, out,
			     sizeof(out)), 0);
	assert_non_null(strstr(out, "one-time 3\n"));
	assert_non_null(strstr(out, "signed 1 created "));
	/* above the broker's prekey-upload-max (4): its status as the exit code */
	assert_int_equal(cli(f, (const char *const[]){ "prekeys", "upload", "--key", key, "--count",
						    "5", NULL }, out, sizeof(out)),
			 SEALPOST_STATUS_ERR_PREKEY_TOO_MANY);
	assert_int_equal(cli(f, (const char *const[]){ "prekeys", "upload", "--key", key, "--count",
						    "257", NULL }, out, sizeof(out)), 1);
	assert_int_equal(cli(f, (const char *const[]){ "prekeys", "frobnicate", "--key", key, NULL },
			     out, sizeof(out)), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_upload_then_fetch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_fetchers_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9_keeps_handed_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forged_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fetch_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_contact, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
