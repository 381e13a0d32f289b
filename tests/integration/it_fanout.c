/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_fanout.c: fan-out groups at a real sealpostd (docs/PROTOCOL.md 16,
 * issue 11 item 5).
 *
 * Spoken first by the raw test client (support_raw.c: protobuf-c frames,
 * not lib/wire), so the broker is checked against an independent
 * implementation: a group is accepted all or none and durably (kill -9
 * and a restart: every copy is delivered); a group that does not match
 * the account's list is answered with exactly the missing and stale keys
 * and the current version, nothing stored, and the retry after a refresh
 * is accepted; a group naming a device twice, over a limit, cut short by
 * another frame or past its deadline is refused without hurting the
 * connection's other traffic; one copy over its mailbox's quota refuses
 * the whole group. Then through libsealpost: sealpost_client_send_account
 * reaches every device of the account and the sender's own other devices,
 * retries after a mismatch, and `sealpost send --to-account` says so.
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
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sealpost.h"
#include "sp_devlist.h"
#include "sp_key.h"
#include "support.h"
#include "support_raw.h"

enum { TMO = 10000, DEV_MAX = 6 };

static struct sp_it_broker broker;

/* Small bounds so each limit is reachable: a group of at most 6 copies and
 * 200,000 bytes, 600 ms to send it; 8 envelopes per mailbox (so a sender
 * holds at most 2 of them: the default 25 % share). */
static const char *const args[] = { "--fanout-max-copies", "6", "--fanout-max-bytes", "200000",
				     "--fanout-timeout", "600", "--mailbox-max-count", "8",
				     "--account-max-devices", "8", NULL };

static int setup(void **state)
{
	(void)state;
	return sp_it_broker_start(&broker, NULL, args) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	int st;

	(void)state;
	st = sp_it_broker_stop(&broker);
	if (st != 0)
		sp_it_log_tail(&broker, 40);
	sp_it_rmrf(broker.data_dir);
	return st == 0 ? 0 : -1;
}

/* An account and its raw devices; dev[0] sends. */
struct acct {
	uint8_t pk[SP_ACCOUNT_KEY_LEN], sk[SP_ACCOUNT_SECRET_LEN];
	struct sp_devlist l;
	struct sp_raw dev[DEV_MAX];
	unsigned n;
};

static void dev_open(struct sp_raw *d)
{
	assert_int_equal(sp_raw_open(d, broker.port, SP_PREAMBLE_PATTERN_IK, broker.server_pub), 0);
}

/* Any frame but a ListChanged (every device of the account gets one per
 * list it did not publish) and a Drained. */
static void wait_frame(struct sp_raw *d, enum sp_frame_type type, struct sp_raw_frame *f)
{
	for (;;) {
		int r = sp_raw_wait_frame(d, type, f, TMO);

		if (r == -EPROTO && f->type == SP_FRAME_LIST_CHANGED)
			continue;
		if (r)
			fail_msg("waiting for frame %d: %d (got type %d)", type, r, f->type);
		return;
	}
}

/* Signs and publishes a.l from publisher (a device on the stored list). */
static void publish(struct acct *a, struct sp_raw *publisher)
{
	static uint64_t id = 1000;
	uint8_t body[SP_DEVLIST_MAX], buf[SP_DEVLIST_MAX + 256];
	struct sp_raw_frame f;
	size_t len = 0, off = 0;

	assert_int_equal(sp_devlist_sign(&a->l, a->sk, body, sizeof(body), &len), 0);
	assert_int_equal(sp_raw_put_list(buf, sizeof(buf), &off, SP_FRAME_LIST_PUT, a->pk,
					 sizeof(a->pk), ++id, body, len), 0);
	assert_int_equal(sp_raw_send_plain(publisher, buf, off), 0);
	wait_frame(publisher, SP_FRAME_LIST_RESULT, &f);
	assert_int_equal(f.status, SP_STATUS_ACCEPTED);
}

/* A new account of n connected raw devices, its list published (v1). */
static void acct_new(struct acct *a, unsigned n)
{
	memset(a, 0, sizeof(*a));
	crypto_sign_keypair(a->pk, a->sk);
	memcpy(a->l.account, a->pk, sizeof(a->pk));
	a->l.version = 1;
	a->n = n;
	for (unsigned i = 0; i < n; i++) {
		a->dev[i].fd = -1;
		assert_int_equal(sp_raw_init(&a->dev[i]), 0);
		dev_open(&a->dev[i]);
		assert_int_equal(sp_devlist_add(&a->l, a->dev[i].s_pub, "d", 1700000000), 0);
	}
	publish(a, &a->dev[0]);
}

static void acct_free(struct acct *a)
{
	for (unsigned i = 0; i < a->n; i++)
		sp_raw_close(&a->dev[i]);
	sodium_memzero(a->sk, sizeof(a->sk));
}

/* A group from d: FanoutBegin{account, id, version, count} and one copy per
 * key (body: body_len bytes of 'A' + i), in as many transport messages as
 * they need. */
static void send_group(struct sp_raw *d, const uint8_t *account, uint64_t id, uint64_t version,
		       uint32_t count, const uint8_t (*keys)[SP_KEY_LEN], unsigned nkeys,
		       size_t body_len)
{
	static uint8_t buf[SP_TRANSPORT_PLAINTEXT_MAX], body[SP_BODY_MAX];
	size_t off = 0;

	assert_int_equal(sp_raw_put_fanout_begin(buf, sizeof(buf), &off, account, SP_ACCOUNT_LEN, id,
						 version, count), 0);
	for (unsigned i = 0; i < nkeys; i++) {
		size_t need = SP_FRAME_PREFIX_LEN + 64 + body_len;

		if (off + need > d->max_transport) {
			assert_int_equal(sp_raw_send_plain(d, buf, off), 0);
			off = 0;
		}
		memset(body, 'A' + (int)i, body_len);
		assert_int_equal(sp_raw_put_fanout_copy(buf, sizeof(buf), &off, keys[i], SP_KEY_LEN, id,
							body, body_len), 0);
	}
	if (off)
		assert_int_equal(sp_raw_send_plain(d, buf, off), 0);
}

/* The devices of a but the sender (dev[0]), as keys. */
static unsigned others(const struct acct *a, uint8_t (*keys)[SP_KEY_LEN])
{
	for (unsigned i = 1; i < a->n; i++)
		memcpy(keys[i - 1], a->dev[i].s_pub, SP_KEY_LEN);
	return a->n - 1;
}

static void expect_result(struct sp_raw *d, uint64_t id, uint32_t status, struct sp_raw_frame *f)
{
	wait_frame(d, SP_FRAME_FANOUT_RESULT, f);
	assert_int_equal(f->client_id, id);
	if (f->status != status)
		fail_msg("group %llu: status %u, expected %u", (unsigned long long)id, f->status,
			 status);
	assert_int_equal(f->body_len, (size_t)(f->missing + f->stale) * SP_KEY_LEN);
}

/* The connection is fine and nothing was delivered to d meanwhile: a Ping
 * is answered with its Pong and no Deliver comes before it. */
static void idle_and_fine(struct sp_raw *d, uint64_t ping)
{
	uint8_t buf[64];
	struct sp_raw_frame f;
	size_t off = 0;

	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, ping, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(d, buf, off), 0);
	wait_frame(d, SP_FRAME_PONG, &f);
	assert_int_equal(f.id, ping);
}

/* A durable Send from d to `to` is still accepted. */
static void send_ok(struct sp_raw *d, const uint8_t *to, uint64_t id)
{
	uint32_t st = 0;

	assert_int_equal(sp_raw_send_envelope(d, to, id, (const uint8_t *)"plain", 5), 0);
	assert_int_equal(sp_raw_expect_result(d, id, &st, TMO), 0);
	assert_int_equal(st, SP_STATUS_ACCEPTED);
}

/* ---- accepted, durable ------------------------------------------------------ */

static void test_accept_all_durable(void **state)
{
	struct acct a;
	uint8_t keys[DEV_MAX][SP_KEY_LEN];
	struct sp_raw_frame f;
	unsigned n;

	(void)state;
	acct_new(&a, 4);
	n = others(&a, keys);
	/* 3 copies of 30,000 bytes: more than one transport message */
	send_group(&a.dev[0], a.pk, 7, 1, n, (const uint8_t (*)[SP_KEY_LEN])keys, n, 30000);
	expect_result(&a.dev[0], 7, SP_STATUS_ACCEPTED, &f);
	assert_int_equal(f.seq, 1);
	/* the connected devices get theirs live, each its own */
	for (unsigned i = 1; i < a.n; i++) {
		wait_frame(&a.dev[i], SP_FRAME_DELIVER, &f);
		assert_int_equal(f.body_len, 30000);
		assert_int_equal(f.body[0], 'A' + (int)(i - 1));
	}
	/* kill -9 after ACCEPTED: every copy is still there after a restart */
	assert_int_equal(sp_it_broker_kill(&broker), SIGKILL);
	assert_int_equal(sp_it_broker_restart(&broker, args), 0);
	for (unsigned i = 1; i < a.n; i++) {
		sp_raw_disconnect(&a.dev[i]);
		dev_open(&a.dev[i]);
		wait_frame(&a.dev[i], SP_FRAME_DELIVER, &f);
		assert_int_equal(f.body_len, 30000);
		assert_int_equal(f.body[29999], 'A' + (int)(i - 1));
		wait_frame(&a.dev[i], SP_FRAME_DRAINED, &f);
		assert_int_equal(f.count, 1);
	}
	/* the same group again (its answer lost, say): deduplicated, no second copy */
	sp_raw_disconnect(&a.dev[0]);
	dev_open(&a.dev[0]);
	send_group(&a.dev[0], a.pk, 7, 1, n, (const uint8_t (*)[SP_KEY_LEN])keys, n, 30000);
	expect_result(&a.dev[0], 7, SP_STATUS_ACCEPTED, &f);
	for (unsigned i = 1; i < a.n; i++)
		idle_and_fine(&a.dev[i], 90 + i);
	acct_free(&a);
}

/* With --fsync always the WAL sync runs on the store's thread and durable
 * answers wait for it: a Send's SendResult, then the group's FanoutResult
 * behind it, in order (the group commits what came before it first), then
 * the Ping's Pong; and kill -9 right after ACCEPTED loses no copy. */
static void test_accept_fsync_always(void **state)
{
	static const char *const always[] = { "--fanout-max-copies", "6", "--fanout-max-bytes",
					      "200000", "--fanout-timeout", "600",
					      "--mailbox-max-count", "8", "--account-max-devices", "8",
					      "--fsync", "always", NULL };
	struct acct a;
	uint8_t keys[DEV_MAX][SP_KEY_LEN], buf[64];
	struct sp_raw_frame f;
	uint32_t st = 0;
	size_t off = 0;
	unsigned n;

	(void)state;
	assert_int_equal(sp_it_broker_kill(&broker), SIGKILL);
	assert_int_equal(sp_it_broker_restart(&broker, always), 0);
	acct_new(&a, 3);
	n = others(&a, keys);
	/* the Send, the group and the Ping back to back, before any answer */
	assert_int_equal(sp_raw_send_envelope(&a.dev[0], keys[0], 41, (const uint8_t *)"first", 5),
			 0);
	send_group(&a.dev[0], a.pk, 42, 1, n, (const uint8_t (*)[SP_KEY_LEN])keys, n, 1000);
	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, 43, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(&a.dev[0], buf, off), 0);
	assert_int_equal(sp_raw_expect_result(&a.dev[0], 41, &st, TMO), 0);
	assert_int_equal(st, SP_STATUS_ACCEPTED);
	expect_result(&a.dev[0], 42, SP_STATUS_ACCEPTED, &f);
	wait_frame(&a.dev[0], SP_FRAME_PONG, &f);
	assert_int_equal(f.id, 43);
	assert_int_equal(sp_it_broker_kill(&broker), SIGKILL);
	assert_int_equal(sp_it_broker_restart(&broker, args), 0);
	for (unsigned i = 1; i < a.n; i++) {
		unsigned got = 0;

		sp_raw_disconnect(&a.dev[i]);
		dev_open(&a.dev[i]);
		for (;;) {
			assert_int_equal(sp_raw_recv_frame(&a.dev[i], &f, TMO), 0);
			if (f.type == SP_FRAME_LIST_CHANGED)
				continue;
			if (f.type == SP_FRAME_DRAINED)
				break;
			assert_int_equal(f.type, SP_FRAME_DELIVER);
			got++;
		}
		/* dev[1] has the Send's envelope and its copy; dev[2] its copy */
		assert_int_equal(got, i == 1 ? 2 : 1);
	}
	acct_free(&a);
}

/* ---- mismatch, and the retry after a refresh --------------------------------- */

static void test_mismatch_then_retry(void **state)
{
	struct acct a;
	uint8_t keys[DEV_MAX][SP_KEY_LEN], ghost[SP_KEY_LEN], gpriv[SP_KEY_LEN];
	struct sp_raw_frame f;
	struct sp_raw late;
	unsigned n;

	(void)state;
	acct_new(&a, 3);
	sp_noise_keypair(ghost, gpriv);
	/* The sender's copy of the list lacks dev[2] and names a ghost: */
	memcpy(keys[0], a.dev[1].s_pub, SP_KEY_LEN);
	memcpy(keys[1], ghost, SP_KEY_LEN);
	send_group(&a.dev[0], a.pk, 20, 1, 2, (const uint8_t (*)[SP_KEY_LEN])keys, 2, 100);
	expect_result(&a.dev[0], 20, SP_STATUS_ERR_FANOUT_MISMATCH, &f);
	assert_int_equal(f.seq, 1);
	assert_int_equal(f.missing, 1);
	assert_int_equal(f.stale, 1);
	assert_memory_equal(f.body, a.dev[2].s_pub, SP_KEY_LEN);
	assert_memory_equal(f.body + SP_KEY_LEN, ghost, SP_KEY_LEN);
	/* nothing of it was stored or delivered */
	idle_and_fine(&a.dev[1], 1);
	/* A device is linked meanwhile (v2): a group sealed for v1 is told. */
	late.fd = -1;
	assert_int_equal(sp_raw_init(&late), 0);
	dev_open(&late);
	assert_int_equal(sp_devlist_add(&a.l, late.s_pub, "late", 1700000001), 0);
	a.l.version = 2;
	publish(&a, &a.dev[0]);
	n = others(&a, keys);
	send_group(&a.dev[0], a.pk, 21, 1, n, (const uint8_t (*)[SP_KEY_LEN])keys, n, 100);
	expect_result(&a.dev[0], 21, SP_STATUS_ERR_FANOUT_MISMATCH, &f);
	assert_int_equal(f.seq, 2);
	assert_int_equal(f.missing, 1);
	assert_int_equal(f.stale, 0);
	assert_memory_equal(f.body, late.s_pub, SP_KEY_LEN);
	/* the right set, but sealed for the old version: refreshed all the same */
	memcpy(keys[n], late.s_pub, SP_KEY_LEN);
	send_group(&a.dev[0], a.pk, 22, 1, n + 1, (const uint8_t (*)[SP_KEY_LEN])keys, n + 1, 100);
	expect_result(&a.dev[0], 22, SP_STATUS_ERR_FANOUT_MISMATCH, &f);
	assert_int_equal(f.seq, 2);
	assert_int_equal(f.missing + f.stale, 0);
	/* refreshed (a ListFetch would say v2 with late on it): accepted */
	send_group(&a.dev[0], a.pk, 23, 2, n + 1, (const uint8_t (*)[SP_KEY_LEN])keys, n + 1, 100);
	expect_result(&a.dev[0], 23, SP_STATUS_ACCEPTED, &f);
	assert_int_equal(f.seq, 2);
	wait_frame(&late, SP_FRAME_DELIVER, &f);
	for (unsigned i = 1; i < a.n; i++) {
		wait_frame(&a.dev[i], SP_FRAME_DELIVER, &f);
		assert_int_equal(f.body_len, 100);
	}
	sp_raw_close(&late);
	acct_free(&a);
}

/* ---- bad groups: refused, the connection fine -------------------------------- */

static void test_bad_groups(void **state)
{
	struct acct a, other;
	uint8_t keys[DEV_MAX * 2][SP_KEY_LEN], buf[256];
	struct sp_raw_frame f;
	uint32_t code = 0;
	size_t off = 0;
	unsigned n;

	(void)state;
	acct_new(&a, 3);
	acct_new(&other, 2);
	n = others(&a, keys);
	/* a device twice */
	memcpy(keys[n], keys[0], SP_KEY_LEN);
	send_group(&a.dev[0], a.pk, 30, 1, n + 1, (const uint8_t (*)[SP_KEY_LEN])keys, n + 1, 10);
	expect_result(&a.dev[0], 30, SP_STATUS_ERR_FANOUT_DUPLICATE, &f);
	/* devices of a foreign account: stale, and ours missing */
	memcpy(keys[0], other.dev[1].s_pub, SP_KEY_LEN);
	send_group(&a.dev[0], a.pk, 31, 1, 1, (const uint8_t (*)[SP_KEY_LEN])keys, 1, 10);
	expect_result(&a.dev[0], 31, SP_STATUS_ERR_FANOUT_MISMATCH, &f);
	assert_int_equal(f.missing, 2);
	assert_int_equal(f.stale, 1);
	assert_memory_equal(f.body + 2 * SP_KEY_LEN, other.dev[1].s_pub, SP_KEY_LEN);
	/* an account the broker has no list of */
	{
		uint8_t rnd[SP_ACCOUNT_LEN];

		n = others(&a, keys);
		randombytes_buf(rnd, sizeof(rnd));
		send_group(&a.dev[0], rnd, 33, 1, n, (const uint8_t (*)[SP_KEY_LEN])keys, n, 10);
		expect_result(&a.dev[0], 33, SP_STATUS_ERR_LIST_UNKNOWN, &f);
		assert_int_equal(f.seq, 0);
	}
	/* more copies than --fanout-max-copies 6: refused at the Begin, the
	 * copies that follow dropped unanswered */
	for (unsigned i = 0; i < 7; i++)
		randombytes_buf(keys[i], SP_KEY_LEN);
	send_group(&a.dev[0], a.pk, 34, 1, 7, (const uint8_t (*)[SP_KEY_LEN])keys, 7, 10);
	expect_result(&a.dev[0], 34, SP_STATUS_ERR_FANOUT_TOO_LARGE, &f);
	idle_and_fine(&a.dev[0], 2);
	send_ok(&a.dev[0], a.dev[1].s_pub, 501);
	/* more bytes than --fanout-max-bytes 200,000: 4 copies of 60,000 */
	n = others(&a, keys);
	for (unsigned i = n; i < 4; i++)
		memcpy(keys[i], keys[0], SP_KEY_LEN);
	send_group(&a.dev[0], a.pk, 35, 1, 4, (const uint8_t (*)[SP_KEY_LEN])keys, 4, 60000);
	expect_result(&a.dev[0], 35, SP_STATUS_ERR_FANOUT_TOO_LARGE, &f);
	idle_and_fine(&a.dev[0], 3);
	/* cut short by another frame: answered INCOMPLETE, then the Ping's Pong */
	n = others(&a, keys);
	send_group(&a.dev[0], a.pk, 36, 1, n, (const uint8_t (*)[SP_KEY_LEN])keys, n - 1, 10);
	off = 0;
	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, 4, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(&a.dev[0], buf, off), 0);
	expect_result(&a.dev[0], 36, SP_STATUS_ERR_FANOUT_INCOMPLETE, &f);
	wait_frame(&a.dev[0], SP_FRAME_PONG, &f);
	assert_int_equal(f.id, 4);
	/* truncated: the last copy never comes; past --fanout-timeout 600 ms
	 * the broker answers by itself */
	send_group(&a.dev[0], a.pk, 37, 1, n, (const uint8_t (*)[SP_KEY_LEN])keys, n - 1, 10);
	expect_result(&a.dev[0], 37, SP_STATUS_ERR_FANOUT_INCOMPLETE, &f);
	send_ok(&a.dev[0], a.dev[2].s_pub, 502);
	/* nothing of any refused group reached a device: only the two Sends */
	wait_frame(&a.dev[1], SP_FRAME_DELIVER, &f);
	assert_int_equal(f.body_len, 5);
	idle_and_fine(&a.dev[1], 5);
	wait_frame(&a.dev[2], SP_FRAME_DELIVER, &f);
	assert_int_equal(f.body_len, 5);
	idle_and_fine(&a.dev[2], 6);
	/* a copy of no group at all is a protocol error */
	off = 0;
	assert_int_equal(sp_raw_put_fanout_copy(buf, sizeof(buf), &off, keys[0], SP_KEY_LEN, 99,
						(const uint8_t *)"x", 1), 0);
	assert_int_equal(sp_raw_send_plain(&a.dev[0], buf, off), 0);
	assert_int_equal(sp_raw_expect_goaway(&a.dev[0], &code, TMO, NULL), 0);
	assert_int_equal(code, SP_STATUS_GOAWAY_PROTOCOL);
	assert_int_equal(sp_it_broker_alive(&broker), 1);
	acct_free(&a);
	acct_free(&other);
}

/* ---- one copy over its quota refuses them all -------------------------------- */

static void test_quota_refuses_all(void **state)
{
	struct acct a;
	uint8_t keys[DEV_MAX][SP_KEY_LEN];
	struct sp_raw_frame f;
	unsigned n;

	(void)state;
	acct_new(&a, 4);
	/* dev[3] goes away; the sender fills its share of dev[3]'s mailbox
	 * (2 of --mailbox-max-count 8) */
	sp_raw_disconnect(&a.dev[3]);
	send_ok(&a.dev[0], a.dev[3].s_pub, 601);
	send_ok(&a.dev[0], a.dev[3].s_pub, 602);
	n = others(&a, keys);
	send_group(&a.dev[0], a.pk, 40, 1, n, (const uint8_t (*)[SP_KEY_LEN])keys, n, 10);
	expect_result(&a.dev[0], 40, SP_STATUS_ERR_MAILBOX_FULL, &f);
	/* the copies for dev[1] and dev[2] were not kept either */
	idle_and_fine(&a.dev[1], 7);
	idle_and_fine(&a.dev[2], 8);
	sp_raw_disconnect(&a.dev[1]);
	dev_open(&a.dev[1]);
	wait_frame(&a.dev[1], SP_FRAME_DRAINED, &f);
	assert_int_equal(f.count, 0);
	/* dev[3] holds the two Sends and nothing else */
	dev_open(&a.dev[3]);
	wait_frame(&a.dev[3], SP_FRAME_DELIVER, &f);
	wait_frame(&a.dev[3], SP_FRAME_DELIVER, &f);
	wait_frame(&a.dev[3], SP_FRAME_DRAINED, &f);
	assert_int_equal(f.count, 2);
	acct_free(&a);
}

/* ---- through the library ----------------------------------------------------- */

struct dev {
	struct sealpost_key *key;
	struct sealpost_client *c;
	uint8_t pub[SEALPOST_KEY_LEN];
};

static void ldev_new(struct dev *d)
{
	assert_int_equal(sealpost_key_generate(&d->key), 0);
	sealpost_key_public(d->key, d->pub);
	assert_int_equal(sealpost_client_connect(&d->c, broker.addr, d->key, broker.server_pub, TMO),
			 0);
}

static void ldev_free(struct dev *d)
{
	sealpost_client_close(d->c);
	sealpost_key_free(d->key);
}

/* An account of devs (publisher: devs[0]). */
static void laccount(struct sealpost_account **a, uint8_t pk[32], struct dev **devs, unsigned n,
		     uint64_t version)
{
	struct sealpost_devlist l;
	uint8_t bytes[SEALPOST_LIST_MAX];
	size_t len = 0;
	int status = 0;

	if (!*a) {
		assert_int_equal(sealpost_account_generate(a), 0);
		sealpost_account_public(*a, pk);
	}
	memset(&l, 0, sizeof(l));
	memcpy(l.account, pk, 32);
	l.version = version;
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(sealpost_devlist_add(&l, devs[i]->pub, "d", 1700000000), 0);
	assert_int_equal(sealpost_devlist_sign(*a, &l, bytes, sizeof(bytes), &len), 0);
	assert_int_equal(sealpost_account_publish_wait(devs[0]->c, bytes, len, TMO, &status, NULL), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
}

static void wait_message(struct dev *d, const char *want, const uint8_t *from)
{
	struct sealpost_event ev;

	for (int i = 0; i < 50; i++) {
		assert_int_equal(sealpost_client_next_event(d->c, &ev, TMO), 1);
		assert_int_not_equal(ev.type, SEALPOST_EVENT_CLOSED);
		if (ev.type != SEALPOST_EVENT_MESSAGE)
			continue;
		assert_int_equal(ev.len, strlen(want));
		assert_memory_equal(ev.data, want, ev.len);
		if (from)
			assert_memory_equal(ev.sender, from, 32);
		return;
	}
	fail_msg("no message");
}

static int run_cli(const char *const *argv_in, char *err, size_t cap)
{
	char *argv[40];
	int n = 0, status = 0, pfd[2];
	ssize_t got = 0, r;
	pid_t pid;

	argv[n++] = (char *)getenv("SEALPOST_CLI");
	for (; *argv_in && n < 39; argv_in++)
		argv[n++] = (char *)*argv_in;
	argv[n] = NULL;
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(pfd[1], 2);
		close(pfd[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	while (got < (ssize_t)cap - 1 && (r = read(pfd[0], err + got, cap - 1 - (size_t)got)) > 0)
		got += r;
	err[got > 0 ? got : 0] = 0;
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_library_send_account(void **state)
{
	struct dev p1, p2, p3, s1, s2;
	struct dev *pdevs[] = { &p1, &p2, &p3 }, *sdevs[] = { &s1, &s2 };
	struct sealpost_account *pa = NULL, *sa = NULL;
	uint8_t ppk[32], spk[32];
	struct sealpost_fanout_result res;
	char hex[65], srv[65], keyfile[300], accounts[300], err[4096];

	(void)state;
	ldev_new(&p1);
	ldev_new(&p2);
	ldev_new(&p3);
	ldev_new(&s1);
	ldev_new(&s2);
	laccount(&pa, ppk, pdevs, 3, 1);
	laccount(&sa, spk, sdevs, 2, 1);
	/* one call: the person's three devices and the sender's other one */
	assert_int_equal(sealpost_client_send_account(s1.c, ppk, spk, "hi all", 6, TMO, &res), 0);
	assert_int_equal(res.status, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(res.own_status, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(res.version, 1);
	assert_int_equal(res.retries, 0);
	assert_int_equal(res.count, 4);
	for (unsigned i = 0; i < res.count; i++) {
		assert_int_equal(res.dev[i].status, SEALPOST_STATUS_ACCEPTED);
		assert_int_equal(res.dev[i].own, i == 3);
	}
	assert_memory_equal(res.dev[3].key, s2.pub, 32);
	for (unsigned i = 0; i < 3; i++)
		wait_message(pdevs[i], "hi all", s1.pub);
	wait_message(&s2, "hi all", s1.pub);
	/* a sender one device behind (the test hook leaves the last device out
	 * of the first attempt): the broker's answer is checked against the
	 * refetched list and the group sent again */
	setenv("SEALPOST_TEST_FANOUT_STALE", "1", 1);
	assert_int_equal(sealpost_client_send_account(s1.c, ppk, NULL, "again", 5, TMO, &res), 0);
	unsetenv("SEALPOST_TEST_FANOUT_STALE");
	assert_int_equal(res.retries, 1);
	assert_int_equal(res.count, 3);
	assert_int_equal(res.own_status, 0);
	for (unsigned i = 0; i < 3; i++)
		wait_message(pdevs[i], "again", s1.pub);
	/* an account of this device alone: nothing to send */
	{
		struct dev *only[] = { &s2 };
		struct sealpost_account *oa = NULL;
		uint8_t opk[32];

		laccount(&oa, opk, only, 1, 1);
		assert_int_equal(sealpost_client_send_account(s2.c, opk, NULL, "x", 1, TMO, &res),
				 -SEALPOST_EFANOUTNONE);
		sealpost_account_free(oa);
	}
	/* the CLI: one group, and it says so */
	snprintf(keyfile, sizeof(keyfile), "%s/cli.key", broker.data_dir);
	snprintf(accounts, sizeof(accounts), "%s/cli.accounts", broker.data_dir);
	{
		struct sealpost_key *k = NULL;

		assert_int_equal(sealpost_key_generate(&k), 0);
		assert_int_equal(sealpost_key_save(k, keyfile), 0);
		sealpost_key_free(k);
	}
	sealpost_key_to_hex(ppk, hex);
	sealpost_key_to_hex(broker.server_pub, srv);
	{
		const char *cargs[] = { "send", "--server", broker.addr, "--server-key", srv, "--key",
					keyfile, "--accounts", accounts, "--to-account", hex,
					"from the cli", NULL };

		assert_int_equal(run_cli(cargs, err, sizeof(err)), 0);
		assert_non_null(strstr(err, "sent to 3 devices of version 1 in one group"));
	}
	/* with --own-account: a second group to that account (the CLI's device
	 * is not on it, so both of its devices get one) */
	{
		char shex[65];
		const char *cargs[] = { "send", "--server", broker.addr, "--server-key", srv, "--key",
					keyfile, "--accounts", accounts, "--to-account", hex,
					"--own-account", shex, "from the cli", NULL };

		sealpost_key_to_hex(spk, shex);
		assert_int_equal(run_cli(cargs, err, sizeof(err)), 0);
		assert_non_null(strstr(err, "and to 2 other devices of this device's account"));
		wait_message(&s2, "from the cli", NULL);
	}
	for (unsigned i = 0; i < 3; i++) {
		struct sealpost_event ev;

		do
			assert_int_equal(sealpost_client_next_event(pdevs[i]->c, &ev, TMO), 1);
		while (ev.type != SEALPOST_EVENT_MESSAGE);
		assert_int_equal(ev.len, 12);
	}
	ldev_free(&p1);
	ldev_free(&p2);
	ldev_free(&p3);
	ldev_free(&s1);
	ldev_free(&s2);
	sealpost_account_free(pa);
	sealpost_account_free(sa);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept_all_durable),
		cmocka_unit_test(test_accept_fsync_always),
		cmocka_unit_test(test_mismatch_then_retry),
		cmocka_unit_test(test_bad_groups),
		cmocka_unit_test(test_quota_refuses_all),
		cmocka_unit_test(test_library_send_account),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
