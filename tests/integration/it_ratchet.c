/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_ratchet: conversations through Double Ratchet sessions
 * (docs/PROTOCOL.md 7.3) with libsealpost against a real sealpostd and its
 * RocksDB directory.
 *
 * - A first contact to a verified prekey bundle starts a session on both
 *   sides; replies and later messages are version 4 envelopes, found by the
 *   session, in both directions; the session store survives a reopen and
 *   does not open under another storage key.
 * - Seizure: the broker's data directory is copied while the recipient is
 *   offline with three messages in its mailbox; the recipient then reads
 *   them (keys deleted). A broker started on the copy hands the same three
 *   envelopes out again (shown: OPAQUE), and with the device key and even
 *   the device's session store as it is now, none of them opens; with the
 *   store as it was at the copy they do (the control that the test can
 *   fail).
 * - Out of order: envelopes captured raw and sent again in another order
 *   open; a replay and one beyond MAX_SKIP are BAD_ENVELOPE (the latter
 *   with -SEALPOST_ERATCHETSKIP), and the session still works.
 * - Prekey exhaustion: with no one-time prekey left the bundle's signed
 *   prekey alone starts a session; a forged bundle never gets that far
 *   (sealpost_prekey_bundle_verify refuses it, as it_prekeys shows for
 *   every kind of forgery).
 */
#include <errno.h>
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

enum { TIMEOUT_MS = 20000, SKIP = SEALPOST_RATCHET_MAX_SKIP, N = SKIP + 6 };

static const char *const args[] = { "--fsync", "never", "--store-min-free", "0",
				    "--prekey-fetch-source-burst", "1000",
				    "--prekey-fetch-device-burst", "1000", NULL };

struct fx {
	struct sp_it_broker b;
	char dir[64], pk_path[128], a_path[128], b_path[128];
	struct sealpost_key *ka, *kb;           /* Alice, Bob */
	uint8_t a[SEALPOST_KEY_LEN], bpub[SEALPOST_KEY_LEN];
	uint8_t storage_a[32], storage_b[32];
	struct sealpost_account *acct;
	uint8_t list[SEALPOST_LIST_MAX];
	size_t list_len;
	struct sealpost_prekeys *pk;            /* Bob's */
	struct sealpost_sessions *sa, *sb;
};

static struct sealpost_key *new_key(uint8_t pub[SEALPOST_KEY_LEN])
{
	struct sealpost_key *k = NULL;

	assert_int_equal(sealpost_key_generate(&k), 0);
	sealpost_key_public(k, pub);
	return k;
}

static struct sealpost_client *dial_flags(const struct sp_it_broker *b, const struct sealpost_key *k,
					  uint32_t flags)
{
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;
	struct sealpost_client *c = NULL;

	o.flags = flags;
	assert_int_equal(sealpost_client_connect_opts(&c, b->addr, k, b->server_pub, TIMEOUT_MS, &o),
			 0);
	return c;
}

static struct sealpost_client *dial(const struct sp_it_broker *b, const struct sealpost_key *k)
{
	return dial_flags(b, k, 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct sealpost_devlist l;

	assert_non_null(f);
	strcpy(f->dir, "/tmp/sp_it_ratchet.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->pk_path, sizeof(f->pk_path), "%s/bob.prekeys", f->dir);
	snprintf(f->a_path, sizeof(f->a_path), "%s/alice.sessions", f->dir);
	snprintf(f->b_path, sizeof(f->b_path), "%s/bob.sessions", f->dir);
	f->ka = new_key(f->a);
	f->kb = new_key(f->bpub);
	randombytes_buf(f->storage_a, sizeof(f->storage_a));
	randombytes_buf(f->storage_b, sizeof(f->storage_b));
	assert_int_equal(sealpost_account_generate(&f->acct), 0);
	memset(&l, 0, sizeof(l));
	sealpost_account_public(f->acct, l.account);
	l.version = 1;
	assert_int_equal(sealpost_devlist_add(&l, f->a, "alice", 1700000000), 0);
	assert_int_equal(sealpost_devlist_add(&l, f->bpub, "bob", 1700000000), 0);
	assert_int_equal(sealpost_devlist_sign(f->acct, &l, f->list, sizeof(f->list), &f->list_len),
			 0);
	assert_int_equal(sealpost_prekeys_open(&f->pk, f->pk_path, f->kb), 0);
	assert_int_equal(sealpost_sessions_open(&f->sa, f->a_path, f->ka, f->storage_a), 0);
	assert_int_equal(sealpost_sessions_open(&f->sb, f->b_path, f->kb, f->storage_b), 0);
	assert_int_equal(sp_it_broker_start(&f->b, NULL, args), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	assert_int_equal(sp_it_log_sanitizer_reports(&f->b), 0);
	sp_it_broker_stop(&f->b);
	sp_it_rmrf(f->b.data_dir);
	sealpost_sessions_close(f->sa);
	sealpost_sessions_close(f->sb);
	sealpost_prekeys_close(f->pk);
	sealpost_key_free(f->ka);
	sealpost_key_free(f->kb);
	sealpost_account_free(f->acct);
	sp_it_rmrf(f->dir);
	free(f);
	return 0;
}

/* The next MESSAGE, BAD_ENVELOPE or OPAQUE (others skipped). */
static void next_delivery(struct sealpost_client *c, struct sealpost_event *ev)
{
	for (;;) {
		assert_int_equal(sealpost_client_next_event(c, ev, TIMEOUT_MS), 1);
		if (ev->type == SEALPOST_EVENT_MESSAGE || ev->type == SEALPOST_EVENT_BAD_ENVELOPE ||
		    ev->type == SEALPOST_EVENT_OPAQUE)
			return;
		if (ev->type == SEALPOST_EVENT_CLOSED)
			fail_msg("closed (%d) waiting for a delivery", ev->error);
	}
}

static void expect_message(struct sealpost_client *c, const uint8_t from[SEALPOST_KEY_LEN],
			   const char *text)
{
	struct sealpost_event ev;

	next_delivery(c, &ev);
	if (ev.type != SEALPOST_EVENT_MESSAGE)
		fail_msg("expected \"%s\", got event %d (%d)", text, (int)ev.type, ev.error);
	assert_memory_equal(ev.sender, from, SEALPOST_KEY_LEN);
	assert_int_equal(ev.len, strlen(text));
	assert_memory_equal(ev.data, text, ev.len);
}

static void send_text(struct sealpost_client *c, const uint8_t to[SEALPOST_KEY_LEN],
		      const char *text)
{
	int st = -1;

	assert_int_equal(sealpost_client_send_wait(c, to, text, strlen(text), TIMEOUT_MS, &st, NULL),
			 0);
}

/* Bob's prekeys up, Alice's first contact, Bob's reply: a session both ways.
 * Returns Alice's and Bob's clients, sessions attached. */
static void converse(struct fx *f, struct sealpost_client **ca, struct sealpost_client **cb,
		     unsigned onetime)
{
	struct sealpost_prekey_bundle bun;
	uint32_t stock;

	*ca = dial(&f->b, f->ka);
	*cb = dial(&f->b, f->kb);
	sealpost_client_set_prekeys(*cb, f->pk);
	assert_int_equal(sealpost_client_set_sessions(*ca, f->sa), 0);
	assert_int_equal(sealpost_client_set_sessions(*cb, f->sb), 0);
	assert_int_equal(sealpost_prekeys_upload_wait(*cb, f->pk, onetime, TIMEOUT_MS, &stock), 0);
	assert_int_equal(sealpost_prekeys_fetch_wait(*ca, f->list, f->list_len, f->bpub, TIMEOUT_MS,
						     &bun), 0);
	assert_int_equal(sealpost_client_send_first(*ca, &bun, "hello bob", 9, NULL), 0);
	assert_true(sealpost_sessions_has(f->sa, f->bpub));
	assert_int_equal(sealpost_client_flush(*ca, TIMEOUT_MS), 0);
	expect_message(*cb, f->a, "hello bob");
	assert_true(sealpost_sessions_has(f->sb, f->a));
	send_text(*cb, f->a, "hello alice");
	expect_message(*ca, f->bpub, "hello alice");
}

static void test_conversation(void **state)
{
	struct fx *f = *state;
	struct sealpost_client *ca, *cb;
	struct sealpost_sessions *again = NULL;
	uint8_t wrong[32];
	struct sealpost_event ev;

	converse(f, &ca, &cb, 2);
	for (int i = 0; i < 3; i++) {
		char m[32];

		snprintf(m, sizeof(m), "alice %d", i);
		send_text(ca, f->bpub, m);
		expect_message(cb, f->a, m);
		snprintf(m, sizeof(m), "bob %d", i);
		send_text(cb, f->a, m);
		expect_message(ca, f->bpub, m);
	}
	/* on the wire they are version 4: without its sessions Bob gets them raw */
	assert_int_equal(sealpost_client_set_sessions(cb, NULL), 0);
	sealpost_client_close(cb);
	cb = dial_flags(&f->b, f->kb, SEALPOST_CONNECT_OPAQUE);
	send_text(ca, f->bpub, "raw");
	next_delivery(cb, &ev);
	assert_int_equal(ev.type, SEALPOST_EVENT_OPAQUE);
	assert_int_equal(((const uint8_t *)ev.data)[0], 4);
	assert_int_equal(ev.len, 256 + SEALPOST_RATCHET_OVERHEAD); /* padded */
	/* a store of one device cannot be attached to another's client */
	assert_int_equal(sealpost_client_set_sessions(cb, f->sa), -EINVAL);
	{
		struct sealpost_client *anon = NULL;

		assert_int_equal(sealpost_client_connect_anonymous(&anon, f->b.addr, f->b.server_pub,
								   TIMEOUT_MS, NULL), 0);
		assert_int_equal(sealpost_client_set_sessions(anon, f->sa), -SEALPOST_EANONYMOUS);
		sealpost_client_close(anon);
	}
	sealpost_client_close(cb);
	sealpost_client_close(ca);
	/* one store object per file: a second open while it is open would
	 * let two copies reuse keys */
	assert_int_equal(sealpost_sessions_open(&again, f->b_path, f->kb, f->storage_b), -EBUSY);
	sealpost_sessions_close(f->sb);
	f->sb = NULL;
	/* the store reopens with its key, and not with another */
	assert_int_equal(sealpost_sessions_open(&again, f->b_path, f->kb, f->storage_b), 0);
	assert_true(sealpost_sessions_has(again, f->a));
	assert_int_equal(sealpost_sessions_count(again), 1);
	sealpost_sessions_close(again);
	memcpy(wrong, f->storage_b, 32);
	wrong[0] ^= 1;
	assert_int_equal(sealpost_sessions_open(&again, f->b_path, f->kb, wrong),
			 -SEALPOST_ESTORAGEKEY);
	assert_int_equal(sealpost_sessions_open(&again, f->b_path, f->ka, f->storage_b), -EINVAL);
}

/*
 * A fan-out to an account (sealpost_client_send_account) goes through the
 * session too: Bob, a device of the account with which Alice has a session,
 * gets a version-4 copy (raw, to a client without sessions), and with his
 * sessions the next group's copy opens, the first one's key skipped.
 */
static void test_fanout_through_session(void **state)
{
	struct fx *f = *state;
	struct sealpost_client *ca, *cb;
	struct sealpost_fanout_result res;
	struct sealpost_event ev;
	uint8_t account[32];
	int status = 0;

	converse(f, &ca, &cb, 2);
	sealpost_account_public(f->acct, account);
	assert_int_equal(sealpost_account_publish_wait(ca, f->list, f->list_len, TIMEOUT_MS, &status,
						       NULL), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(sealpost_client_set_sessions(cb, NULL), 0);
	sealpost_client_close(cb);
	/* Bob offline: the group is stored; he reads it raw */
	assert_int_equal(sealpost_client_send_account(ca, account, NULL, "to all", 6, TIMEOUT_MS,
						      &res), 0);
	assert_int_equal(res.status, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(res.count, 1);
	assert_memory_equal(res.dev[0].key, f->bpub, 32);
	cb = dial_flags(&f->b, f->kb, SEALPOST_CONNECT_OPAQUE_ALL);
	next_delivery(cb, &ev);
	assert_int_equal(ev.type, SEALPOST_EVENT_OPAQUE);
	assert_int_equal(((const uint8_t *)ev.data)[0], 4);
	sealpost_client_close(cb);
	/* with his sessions, the next group opens (the first may come again:
	 * it was not acknowledged; its key is then a skipped one) */
	cb = dial(&f->b, f->kb);
	assert_int_equal(sealpost_client_set_sessions(cb, f->sb), 0);
	assert_int_equal(sealpost_client_send_account(ca, account, NULL, "again", 5, TIMEOUT_MS,
						      &res), 0);
	assert_int_equal(res.status, SEALPOST_STATUS_ACCEPTED);
	for (int i = 0; i < 3; i++) {
		next_delivery(cb, &ev);
		assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
		assert_memory_equal(ev.sender, f->a, SEALPOST_KEY_LEN);
		if (ev.len == 5 && memcmp(ev.data, "again", 5) == 0)
			break;
		assert_int_equal(ev.len, 6);
		assert_memory_equal(ev.data, "to all", 6);
		assert_true(i < 2);
	}
	sealpost_client_close(cb);
	sealpost_client_close(ca);
}

static void copy_file(const char *from, const char *to)
{
	char out[256];
	char *const argv[] = { "/bin/cp", "-a", (char *)from, (char *)to, NULL };

	assert_int_equal(sp_it_run(argv, NULL, out, sizeof(out), 30), 0);
}

/* Bob, with the given session store file (or none), reads the copied
 * mailbox: how many of its envelopes open. */
static unsigned open_copied(struct fx *f, struct sp_it_broker *seized, const char *store,
			    unsigned expect)
{
	struct sealpost_sessions *ss = NULL;
	struct sealpost_client *c = dial_flags(seized, f->kb, SEALPOST_CONNECT_MANUAL_ACK);
	struct sealpost_event ev;
	unsigned opened = 0;

	sealpost_client_set_prekeys(c, f->pk);
	if (store) {
		assert_int_equal(sealpost_sessions_open(&ss, store, f->kb, f->storage_b), 0);
		assert_int_equal(sealpost_client_set_sessions(c, ss), 0);
	}
	for (unsigned i = 0; i < expect; i++) {
		next_delivery(c, &ev);
		if (ev.type == SEALPOST_EVENT_MESSAGE)
			opened++;
	}
	/* leave the copy's mailbox as it was for the next reader: not acked */
	assert_int_equal(sealpost_client_set_sessions(c, NULL), 0);
	sealpost_client_close(c);
	sealpost_sessions_close(ss);
	return opened;
}

static void test_seizure_after_read(void **state)
{
	static const char *const sent[3] = { "unread at the copy 1", "unread at the copy 2",
					     "unread at the copy 3" };
	struct fx *f = *state;
	struct sealpost_client *ca, *cb, *raw;
	struct sp_it_broker seized;
	struct sealpost_event ev;
	char copy[160], store_then[160], store_now[160];

	converse(f, &ca, &cb, 2);
	sealpost_client_close(cb); /* Bob offline */
	for (int i = 0; i < 3; i++)
		send_text(ca, f->bpub, sent[i]);
	sealpost_client_close(ca);
	/* the seizure: the data directory copied while Bob is offline, his
	 * three envelopes in it (the broker stopped for a consistent copy,
	 * then started again on its own directory) */
	snprintf(copy, sizeof(copy), "%s/seized", f->dir);
	snprintf(store_then, sizeof(store_then), "%s/bob.sessions.then", f->dir);
	snprintf(store_now, sizeof(store_now), "%s/bob.sessions.now", f->dir);
	{
		int st = sp_it_broker_stop(&f->b);

		if (st != 0)
			sp_it_log_tail(&f->b, 30);
		assert_int_equal(st, 0);
	}
	copy_file(f->b.data_dir, copy);
	copy_file(f->b_path, store_then); /* the control: Bob's state before he read */
	assert_int_equal(sp_it_broker_restart(&f->b, args), 0);

	/* Bob reads them: each key used once, deleted, the store saved; acked */
	cb = dial(&f->b, f->kb);
	sealpost_client_set_prekeys(cb, f->pk);
	assert_int_equal(sealpost_client_set_sessions(cb, f->sb), 0);
	for (int i = 0; i < 3; i++)
		expect_message(cb, f->a, sent[i]);
	assert_int_equal(sealpost_client_sync(cb, TIMEOUT_MS), 0);
	sealpost_client_close(cb);
	copy_file(f->b_path, store_now);

	/* the copy's broker hands the three out again: they are there */
	assert_int_equal(sp_it_broker_start(&seized, copy, args), 0);
	raw = dial_flags(&seized, f->kb, SEALPOST_CONNECT_OPAQUE_ALL | SEALPOST_CONNECT_MANUAL_ACK);
	for (int i = 0; i < 3; i++) {
		next_delivery(raw, &ev);
		assert_int_equal(ev.type, SEALPOST_EVENT_OPAQUE);
		assert_int_equal(((const uint8_t *)ev.data)[0], 4);
	}
	sealpost_client_close(raw);
	/* the device key (and its prekeys): nothing opens */
	assert_int_equal(open_copied(f, &seized, NULL, 3), 0);
	/* the device key and its whole session state as it is now: nothing */
	assert_int_equal(open_copied(f, &seized, store_now, 3), 0);
	/* the control: the state from before the read opens all three */
	assert_int_equal(open_copied(f, &seized, store_then, 3), 3);
	assert_int_equal(sp_it_log_sanitizer_reports(&seized), 0);
	sp_it_broker_stop(&seized);
}

static void test_out_of_order(void **state)
{
	static uint8_t bodies[N][512];
	size_t lens[N];
	struct fx *f = *state;
	struct sealpost_client *ca, *cb, *relay;
	struct sealpost_key *kr;
	uint8_t rpub[SEALPOST_KEY_LEN];
	struct sealpost_event ev;
	static const int order[] = { 2, 0, 3, 1 };
	char m[32];

	converse(f, &ca, &cb, 1);
	/* Bob takes Alice's next envelopes raw (no sessions, opaque): captured */
	assert_int_equal(sealpost_client_set_sessions(cb, NULL), 0);
	sealpost_client_close(cb);
	cb = dial_flags(&f->b, f->kb, SEALPOST_CONNECT_OPAQUE_ALL);
	for (int i = 0; i < N; i++) {
		snprintf(m, sizeof(m), "m%d", i);
		assert_int_equal(sealpost_client_send(ca, f->bpub, m, strlen(m), NULL), 0);
		if (i % 32 == 31)
			assert_int_equal(sealpost_client_flush(ca, TIMEOUT_MS), 0);
	}
	assert_int_equal(sealpost_client_flush(ca, TIMEOUT_MS), 0);
	for (int i = 0; i < N; i++) {
		next_delivery(cb, &ev);
		assert_int_equal(ev.type, SEALPOST_EVENT_OPAQUE);
		assert_true(ev.len <= sizeof(bodies[0]));
		memcpy(bodies[i], ev.data, ev.len);
		lens[i] = ev.len;
	}
	assert_int_equal(sealpost_client_sync(cb, TIMEOUT_MS), 0); /* acked: gone from the mailbox */
	sealpost_client_close(cb);
	/* another device sends them to Bob again in another order */
	kr = new_key(rpub);
	relay = dial(&f->b, kr);
	cb = dial(&f->b, f->kb);
	assert_int_equal(sealpost_client_set_sessions(cb, f->sb), 0);
	for (unsigned i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		assert_int_equal(sealpost_client_send_raw(relay, f->bpub, bodies[order[i]],
							  lens[order[i]], NULL), 0);
		assert_int_equal(sealpost_client_flush(relay, TIMEOUT_MS), 0);
		snprintf(m, sizeof(m), "m%d", order[i]);
		expect_message(cb, f->a, m); /* the sender is the session's, not the relay */
	}
	/* a replay: its key is gone */
	assert_int_equal(sealpost_client_send_raw(relay, f->bpub, bodies[2], lens[2], NULL), 0);
	assert_int_equal(sealpost_client_flush(relay, TIMEOUT_MS), 0);
	next_delivery(cb, &ev);
	assert_int_equal(ev.type, SEALPOST_EVENT_BAD_ENVELOPE);
	assert_int_equal(ev.error, -EBADMSG);
	/* m0..m3 taken: m(SKIP + 5) would skip SKIP + 1 keys, too far ahead */
	assert_int_equal(sealpost_client_send_raw(relay, f->bpub, bodies[SKIP + 5], lens[SKIP + 5],
						  NULL), 0);
	assert_int_equal(sealpost_client_flush(relay, TIMEOUT_MS), 0);
	next_delivery(cb, &ev);
	assert_int_equal(ev.type, SEALPOST_EVENT_BAD_ENVELOPE);
	assert_int_equal(ev.error, -SEALPOST_ERATCHETSKIP);
	/* within the bound it opens, and the session goes on both ways */
	assert_int_equal(sealpost_client_send_raw(relay, f->bpub, bodies[SKIP + 4], lens[SKIP + 4],
						  NULL), 0);
	assert_int_equal(sealpost_client_flush(relay, TIMEOUT_MS), 0);
	snprintf(m, sizeof(m), "m%d", SKIP + 4);
	expect_message(cb, f->a, m);
	send_text(cb, f->a, "still here");
	expect_message(ca, f->bpub, "still here");
	sealpost_client_close(relay);
	sealpost_client_close(cb);
	sealpost_client_close(ca);
	sealpost_key_free(kr);
}

static void test_exhausted_prekeys(void **state)
{
	struct fx *f = *state;
	struct sealpost_client *ca, *cb;
	struct sealpost_prekey_bundle bun;
	uint32_t stock;
	uint8_t bytes[512];
	struct sealpost_event ev;
	uint64_t id = 0;
	size_t len;

	ca = dial(&f->b, f->ka);
	cb = dial(&f->b, f->kb);
	sealpost_client_set_prekeys(cb, f->pk);
	assert_int_equal(sealpost_client_set_sessions(ca, f->sa), 0);
	assert_int_equal(sealpost_client_set_sessions(cb, f->sb), 0);
	/* one one-time prekey, used up by a fetch: the next bundle has none */
	assert_int_equal(sealpost_prekeys_upload_wait(cb, f->pk, 1, TIMEOUT_MS, &stock), 0);
	assert_int_equal(sealpost_prekeys_fetch_wait(ca, f->list, f->list_len, f->bpub, TIMEOUT_MS,
						     &bun), 0);
	assert_true(bun.has_onetime);
	assert_int_equal(sealpost_prekeys_fetch(ca, f->bpub, &id), 0);
	do
		assert_int_equal(sealpost_client_next_event(ca, &ev, TIMEOUT_MS), 1);
	while (ev.type != SEALPOST_EVENT_PREKEY_BUNDLE);
	assert_true(ev.len <= sizeof(bytes));
	len = ev.len;
	memcpy(bytes, ev.data, len);
	assert_int_equal(sealpost_prekey_bundle_verify(NULL, f->list, f->list_len, f->bpub, bytes,
						       len, &bun), 0);
	assert_false(bun.has_onetime);
	/* the signed prekey alone starts the session */
	assert_int_equal(sealpost_client_send_first(ca, &bun, "signed only", 11, NULL), 0);
	assert_int_equal(sealpost_client_flush(ca, TIMEOUT_MS), 0);
	expect_message(cb, f->a, "signed only");
	send_text(cb, f->a, "reply");
	expect_message(ca, f->bpub, "reply");
	send_text(ca, f->bpub, "and on");
	expect_message(cb, f->a, "and on");
	/* a forged bundle (one byte of a signature) is refused before any use */
	bytes[len - 1] ^= 1;
	assert_int_equal(sealpost_prekey_bundle_verify(NULL, f->list, f->list_len, f->bpub, bytes,
						       len, &bun), -SEALPOST_EPREKEYBAD);
	/* a session can be forgotten: the next send is a Noise_X seal again */
	assert_int_equal(sealpost_sessions_forget(f->sa, f->bpub), 0);
	assert_false(sealpost_sessions_has(f->sa, f->bpub));
	send_text(ca, f->bpub, "noise x");
	expect_message(cb, f->a, "noise x");
	sealpost_client_close(cb);
	sealpost_client_close(ca);
}

/* The prekey store under the storage key: a plain one is encrypted at its
 * next save, and then opens only with that key. */
static void test_prekeys_encrypted(void **state)
{
	struct fx *f = *state;
	struct sealpost_client *cb = dial(&f->b, f->kb);
	struct sealpost_prekeys *pk = NULL;
	struct sealpost_prekeys_info before, after;
	uint8_t wrong[32], head[4];
	uint32_t stock;
	FILE *fp;

	assert_int_equal(sealpost_prekeys_upload_wait(cb, f->pk, 2, TIMEOUT_MS, &stock), 0);
	sealpost_prekeys_info(f->pk, &before);
	sealpost_prekeys_close(f->pk); /* a plain file so far */
	f->pk = NULL;
	assert_int_equal(sealpost_prekeys_open_keyed(&pk, f->pk_path, f->kb, f->storage_b), 0);
	assert_int_equal(sealpost_prekeys_upload_wait(cb, pk, 1, TIMEOUT_MS, &stock), 0);
	sealpost_prekeys_close(pk);
	fp = fopen(f->pk_path, "rb");
	assert_non_null(fp);
	assert_int_equal(fread(head, 1, 4, fp), 4);
	fclose(fp);
	assert_memory_equal(head, "SPPX", 4);
	assert_int_equal(sealpost_prekeys_open(&pk, f->pk_path, f->kb), -SEALPOST_ESTORAGEKEY);
	memcpy(wrong, f->storage_b, 32);
	wrong[31] ^= 0x80;
	assert_int_equal(sealpost_prekeys_open_keyed(&pk, f->pk_path, f->kb, wrong),
			 -SEALPOST_ESTORAGEKEY);
	assert_int_equal(sealpost_prekeys_open_keyed(&pk, f->pk_path, f->ka, f->storage_b), -EINVAL);
	assert_int_equal(sealpost_prekeys_open_keyed(&f->pk, f->pk_path, f->kb, f->storage_b), 0);
	sealpost_prekeys_info(f->pk, &after);
	assert_int_equal(after.onetime, before.onetime + 1);
	assert_int_equal(after.signed_id, before.signed_id);
	sealpost_client_close(cb);
}

/* ---- the CLI ------------------------------------------------------------------- */

static int cli(struct fx *f, const uint8_t storage[32], const char *const *words, char *out,
	       size_t cap)
{
	const char *argv[24];
	char hex[65];
	unsigned n = 0;

	sodium_bin2hex(hex, sizeof(hex), storage, 32);
	setenv("SEALPOST_STORAGE_KEY", hex, 1);
	setenv("SEALPOST_SERVER", f->b.addr, 1);
	setenv("SEALPOST_SERVER_KEY", f->b.server_pub_hex, 1);
	argv[n++] = getenv("SEALPOST_CLI");
	assert_non_null(argv[0]);
	while (*words)
		argv[n++] = *words++;
	argv[n] = NULL;
	n = (unsigned)sp_it_run((char *const *)argv, NULL, out, cap, 30);
	unsetenv("SEALPOST_STORAGE_KEY");
	unsetenv("SEALPOST_SERVER");
	unsetenv("SEALPOST_SERVER_KEY");
	return (int)n;
}

static void test_cli(void **state)
{
	struct fx *f = *state;
	struct sealpost_client *cb = dial(&f->b, f->kb);
	struct sealpost_sessions *ss = NULL;
	char akey[160], bkey[160], ahex[65], bhex[65], acct[65], out[1024], want[256];
	uint8_t account[SEALPOST_ACCOUNT_KEY_LEN];
	uint64_t v = 0;
	int status = 0;

	snprintf(akey, sizeof(akey), "%s/alice.key", f->dir);
	snprintf(bkey, sizeof(bkey), "%s/bob.key", f->dir);
	assert_int_equal(sealpost_key_save(f->ka, akey), 0);
	assert_int_equal(sealpost_key_save(f->kb, bkey), 0);
	sodium_bin2hex(ahex, sizeof(ahex), f->a, 32);
	sodium_bin2hex(bhex, sizeof(bhex), f->bpub, 32);
	sealpost_account_public(f->acct, account);
	sodium_bin2hex(acct, sizeof(acct), account, 32);
	/* the account's list on the broker, as its devices publish it */
	assert_int_equal(sealpost_account_publish_wait(cb, f->list, f->list_len, TIMEOUT_MS, &status,
						       &v), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	sealpost_client_close(cb);

	assert_int_equal(cli(f, f->storage_b, (const char *const[]){ "prekeys", "upload", "--key",
								     bkey, "--count", "2", NULL },
			     out, sizeof(out)), 0);
	{
		struct sealpost_prekeys *pk = NULL;

		snprintf(want, sizeof(want), "%s.prekeys", bkey);
		assert_int_equal(sealpost_prekeys_open(&pk, want, f->kb), -SEALPOST_ESTORAGEKEY);
	}
	/* first contact: the bundle checked against the account's list */
	assert_int_equal(cli(f, f->storage_a, (const char *const[]){ "send", "--key", akey, "--to",
								     bhex, "--first", acct,
								     "hello from the cli", NULL },
			     out, sizeof(out)), 0);
	assert_int_equal(cli(f, f->storage_b, (const char *const[]){ "recv", "--key", bkey,
								     "--count", "1", "--timeout",
								     "10", NULL },
			     out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s hello from the cli\n", ahex);
	assert_string_equal(out, want);
	/* the reply goes through the session Bob's recv started */
	assert_int_equal(cli(f, f->storage_b, (const char *const[]){ "send", "--key", bkey, "--to",
								     ahex, "through the session",
								     NULL },
			     out, sizeof(out)), 0);
	assert_int_equal(cli(f, f->storage_a, (const char *const[]){ "recv", "--key", akey,
								     "--count", "1", "--timeout",
								     "10", NULL },
			     out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s through the session\n", bhex);
	assert_string_equal(out, want);
	snprintf(want, sizeof(want), "%s.sessions", akey);
	assert_int_equal(sealpost_sessions_open(&ss, want, f->ka, f->storage_a), 0);
	assert_true(sealpost_sessions_has(ss, f->bpub));
	sealpost_sessions_close(ss);
	snprintf(want, sizeof(want), "%s.sessions", bkey);
	assert_int_equal(sealpost_sessions_open(&ss, want, f->kb, f->storage_b), 0);
	assert_true(sealpost_sessions_has(ss, f->a)); /* begun by recv's first contact */
	sealpost_sessions_close(ss);
	/* a malformed storage key is a usage error */
	setenv("SEALPOST_STORAGE_KEY", "00", 1);
	{
		const char *argv[] = { getenv("SEALPOST_CLI"), "send", "--key", akey, "--server",
				       f->b.addr, "--server-key", f->b.server_pub_hex, "--to", bhex,
				       "x", NULL };

		assert_int_equal(sp_it_run((char *const *)argv, NULL, out, sizeof(out), 30), 1);
	}
	unsetenv("SEALPOST_STORAGE_KEY");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_conversation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fanout_through_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seizure_after_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exhausted_prekeys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prekeys_encrypted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
