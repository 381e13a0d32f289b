/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_account_broker.c: signed device lists at a real sealpostd
 * (docs/PROTOCOL.md 11), spoken by the raw test client (support_raw.c:
 * protobuf-c frames, not lib/wire), so the broker side is checked against
 * an independent implementation.
 *
 * An account is created on one device and two more are linked; the linked
 * devices are told (ListChanged); another device fetches the list and it
 * verifies; a list forged exactly as the broker itself could (well formed,
 * signed by a key that is not the account's) is refused; every bad list of
 * issue 11 is refused with its own code, nothing is stored, and the
 * connection and the broker stay fine; a removed device is closed with
 * GoAway REMOVED (37) and its mailbox is gone; lists survive a restart.
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

#include <cmocka.h>
#include <sodium.h>

#include "sp_devlist.h"
#include "support.h"
#include "support_raw.h"

enum { TMO = 10000, MAX_DEVICES = 4 };

static struct sp_it_broker broker;

struct acct {
	uint8_t pk[SP_ACCOUNT_KEY_LEN], sk[SP_ACCOUNT_SECRET_LEN];
};

static int setup(void **state)
{
	static const char *const args[] = { "--account-max-devices", "4", NULL };

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

static void dev_open(struct sp_raw *d)
{
	memset(d, 0, sizeof(*d));
	d->fd = -1;
	assert_int_equal(sp_raw_init(d), 0);
	assert_int_equal(sp_raw_open(d, broker.port, SP_PREAMBLE_PATTERN_IK, broker.server_pub), 0);
}

static uint8_t lbuf[SP_DEVLIST_MAX + 64];

static void wait_skip_changed(struct sp_raw *d, enum sp_frame_type type, struct sp_raw_frame *f);

/* Signs l with a; the bytes in lbuf, their length returned. */
static size_t sign(const struct sp_devlist *l, const struct acct *a)
{
	size_t len = 0;

	assert_int_equal(sp_devlist_sign(l, a->sk, lbuf, sizeof(lbuf), &len), 0);
	return len;
}

static void list_init(struct sp_devlist *l, const struct acct *a, uint64_t v)
{
	memset(l, 0, sizeof(*l));
	memcpy(l->account, a->pk, sizeof(a->pk));
	l->version = v;
}

static void add(struct sp_devlist *l, const struct sp_raw *d, const char *label)
{
	assert_int_equal(sp_devlist_add(l, d->s_pub, label, 1700000000), 0);
}

/* The next frame of type, past any ListChanged (this test's devices get
 * one for every list of their account they did not publish). */
static void wait_skip_changed(struct sp_raw *d, enum sp_frame_type type, struct sp_raw_frame *f)
{
	for (;;) {
		int r = sp_raw_wait_frame(d, type, f, TMO);

		if (r == -EPROTO && f->type == SP_FRAME_LIST_CHANGED)
			continue;
		assert_int_equal(r, 0);
		return;
	}
}

/* Waits for ListChanged of version v, past older ones. */
static void changed(struct sp_raw *d, uint64_t v, struct sp_raw_frame *f)
{
	do
		assert_int_equal(sp_raw_wait_frame(d, SP_FRAME_LIST_CHANGED, f, TMO), 0);
	while (f->seq < v);
	assert_int_equal(f->seq, v);
}

/* ListPut of body naming account (acc_len bytes) from d; the status. */
static uint32_t put_as(struct sp_raw *d, const uint8_t *acc, size_t acc_len, const uint8_t *body,
		       size_t len, uint64_t *version)
{
	static uint64_t id = 100;
	uint8_t buf[SP_DEVLIST_MAX + 256];
	struct sp_raw_frame f;
	size_t off = 0;

	id++;
	assert_int_equal(sp_raw_put_list(buf, sizeof(buf), &off, SP_FRAME_LIST_PUT, acc, acc_len, id,
					 body, len), 0);
	assert_int_equal(sp_raw_send_plain(d, buf, off), 0);
	wait_skip_changed(d, SP_FRAME_LIST_RESULT, &f);
	assert_int_equal(f.client_id, id);
	/* accepted: the log's trailer for the list (11.7: sth | inclusion) */
	if (f.status == SP_STATUS_ACCEPTED)
		assert_true(f.body_len > 113);
	else
		assert_int_equal(f.body_len, 0);
	if (version)
		*version = f.seq;
	return f.status;
}

static uint32_t put(struct sp_raw *d, const struct acct *a, size_t len)
{
	return put_as(d, a->pk, sizeof(a->pk), lbuf, len, NULL);
}

/* ListFetch; on ACCEPTED the list is verified and returned in *out. */
static uint32_t fetch(struct sp_raw *d, const uint8_t *acc, size_t acc_len, struct sp_devlist *out)
{
	uint8_t buf[256];
	struct sp_raw_frame f;
	size_t off = 0;

	assert_int_equal(sp_raw_put_list(buf, sizeof(buf), &off, SP_FRAME_LIST_FETCH, acc, acc_len,
					 77, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(d, buf, off), 0);
	wait_skip_changed(d, SP_FRAME_LIST_RESULT, &f);
	assert_int_equal(f.client_id, 77);
	if (f.status == SP_STATUS_ACCEPTED) {
		assert_true(f.list_len <= f.body_len);
		assert_int_equal(sp_devlist_verify(f.body, f.list_len, out), 0);
		assert_memory_equal(out->account, acc, SP_ACCOUNT_LEN);
		assert_int_equal(out->version, f.seq);
	}
	return f.status;
}

/* The connection still answers, and a Send still works. */
static void still_fine(struct sp_raw *d)
{
	struct sp_raw_frame f;
	uint8_t buf[64];
	size_t off = 0;

	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, 4242, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(d, buf, off), 0);
	wait_skip_changed(d, SP_FRAME_PONG, &f);
	assert_int_equal(f.id, 4242);
	assert_true(sp_it_broker_alive(&broker));
}

static void test_create_link_fetch(void **state)
{
	struct sp_raw a, b, c, other;
	struct sp_raw_frame f;
	struct sp_devlist l, got;
	struct acct acc;
	size_t len;

	(void)state;
	crypto_sign_keypair(acc.pk, acc.sk);
	dev_open(&a);
	dev_open(&b);
	dev_open(&c);
	dev_open(&other);
	/* not there yet */
	assert_int_equal(fetch(&other, acc.pk, 32, &got), SP_STATUS_ERR_LIST_UNKNOWN);
	/* create: version 1, device a */
	list_init(&l, &acc, 1);
	add(&l, &a, "laptop");
	len = sign(&l, &acc);
	assert_int_equal(put(&a, &acc, len), SP_STATUS_ACCEPTED);
	assert_int_equal(fetch(&other, acc.pk, 32, &got), SP_STATUS_ACCEPTED);
	assert_int_equal(got.version, 1);
	assert_int_equal(got.count, 1);
	/* link b, then c: each a new version signed by the account key */
	l.version = 2;
	add(&l, &b, "phone");
	len = sign(&l, &acc);
	assert_int_equal(put(&a, &acc, len), SP_STATUS_ACCEPTED);
	/* b is on the new list and connected: told at once */
	assert_int_equal(sp_raw_wait_frame(&b, SP_FRAME_LIST_CHANGED, &f, TMO), 0);
	assert_int_equal(f.seq, 2);
	assert_memory_equal(f.account, acc.pk, 32);
	assert_int_equal(sp_devlist_verify(f.body, f.list_len, &got), 0);
	assert_int_equal(got.count, 2);
	l.version = 3;
	add(&l, &c, "tablet");
	len = sign(&l, &acc);
	/* published by b this time: any device of the account may */
	assert_int_equal(put(&b, &acc, len), SP_STATUS_ACCEPTED);
	changed(&a, 3, &f);
	changed(&c, 3, &f);
	assert_int_equal(fetch(&other, acc.pk, 32, &got), SP_STATUS_ACCEPTED);
	assert_int_equal(got.version, 3);
	assert_int_equal(got.count, 3);
	assert_int_equal(sp_devlist_find(&got, c.s_pub) >= 0, 1);
	still_fine(&a);
	sp_raw_close(&a);
	sp_raw_close(&b);
	sp_raw_close(&c);
	sp_raw_close(&other);
}

/* A list the broker itself could make: well formed, adds a device of the
 * attacker's, signed by a key that is not the account's. */
static void test_forged_refused(void **state)
{
	struct sp_raw a, ghost;
	struct sp_devlist l, got;
	struct acct acc, evil;
	uint8_t msg[SP_DEVLIST_DOMAIN_LEN + SP_DEVLIST_MAX];
	size_t len;

	(void)state;
	crypto_sign_keypair(acc.pk, acc.sk);
	crypto_sign_keypair(evil.pk, evil.sk);
	dev_open(&a);
	dev_open(&ghost);
	list_init(&l, &acc, 1);
	add(&l, &a, "laptop");
	len = sign(&l, &acc);
	assert_int_equal(put(&a, &acc, len), SP_STATUS_ACCEPTED);
	/* the ghost list: version 2, a + ghost, under the real account key's
	 * name, signature by evil */
	l.version = 2;
	add(&l, &ghost, "ghost");
	len = sign(&l, &acc);
	memcpy(msg, SP_DEVLIST_DOMAIN, SP_DEVLIST_DOMAIN_LEN);
	memcpy(msg + SP_DEVLIST_DOMAIN_LEN, lbuf, len - 64);
	crypto_sign_detached(lbuf + len - 64, NULL, msg, SP_DEVLIST_DOMAIN_LEN + len - 64, evil.sk);
	assert_int_equal(sp_devlist_decode(lbuf, len, &got), 0);
	assert_int_equal(put(&a, &acc, len), SP_STATUS_ERR_LIST_BAD_SIGNATURE);
	assert_int_equal(put(&ghost, &acc, len), SP_STATUS_ERR_LIST_BAD_SIGNATURE);
	/* nothing stored */
	assert_int_equal(fetch(&ghost, acc.pk, 32, &got), SP_STATUS_ACCEPTED);
	assert_int_equal(got.version, 1);
	assert_int_equal(got.count, 1);
	still_fine(&a);
	still_fine(&ghost);
	sp_raw_close(&a);
	sp_raw_close(&ghost);
}

/* Every bad list of issue 11, each with its own code; nothing stored. */
static void test_bad_lists(void **state)
{
	struct sp_raw a, b, stranger;
	struct sp_devlist l, got;
	struct acct acc, acc2;
	uint8_t bad[SP_DEVLIST_MAX + 64];
	uint64_t ver = 0;
	size_t len;

	(void)state;
	crypto_sign_keypair(acc.pk, acc.sk);
	crypto_sign_keypair(acc2.pk, acc2.sk);
	dev_open(&a);
	dev_open(&b);
	dev_open(&stranger);
	list_init(&l, &acc, 5);
	add(&l, &a, "laptop");
	add(&l, &b, "phone");
	len = sign(&l, &acc);
	assert_int_equal(put(&a, &acc, len), SP_STATUS_ACCEPTED);

	/* equal and lower versions */
	assert_int_equal(put_as(&a, acc.pk, 32, lbuf, len, &ver), SP_STATUS_ERR_LIST_VERSION);
	assert_int_equal(ver, 5);
	l.version = 4;
	len = sign(&l, &acc);
	assert_int_equal(put(&a, &acc, len), SP_STATUS_ERR_LIST_VERSION);
	l.version = 6;
	len = sign(&l, &acc);
	/* bad signature: one bit of it */
	memcpy(bad, lbuf, len);
	bad[len - 1] ^= 1;
	assert_int_equal(put_as(&a, acc.pk, 32, bad, len, NULL), SP_STATUS_ERR_LIST_BAD_SIGNATURE);
	/* a device key that is not a valid curve point (all ff), re-signed */
	memcpy(bad, lbuf, len);
	memset(bad + SP_DEVLIST_HDR_LEN, 0xff, 32);
	{
		uint8_t msg[SP_DEVLIST_DOMAIN_LEN + SP_DEVLIST_MAX];

		memcpy(msg, SP_DEVLIST_DOMAIN, SP_DEVLIST_DOMAIN_LEN);
		memcpy(msg + SP_DEVLIST_DOMAIN_LEN, bad, len - 64);
		crypto_sign_detached(bad + len - 64, NULL, msg, SP_DEVLIST_DOMAIN_LEN + len - 64,
				     acc.sk);
	}
	assert_int_equal(put_as(&a, acc.pk, 32, bad, len, NULL), SP_STATUS_ERR_LIST_BAD_DEVICE_KEY);
	/* unsorted: the two devices swapped, re-signed */
	{
		uint8_t msg[SP_DEVLIST_DOMAIN_LEN + SP_DEVLIST_MAX];
		size_t d0 = SP_DEVLIST_HDR_LEN, n0 = 32 + 9 + l.dev[0].label_len;
		size_t n1 = 32 + 9 + l.dev[1].label_len;

		memcpy(bad, lbuf, len);
		memcpy(bad + d0, lbuf + d0 + n0, n1);
		memcpy(bad + d0 + n1, lbuf + d0, n0);
		memcpy(msg, SP_DEVLIST_DOMAIN, SP_DEVLIST_DOMAIN_LEN);
		memcpy(msg + SP_DEVLIST_DOMAIN_LEN, bad, len - 64);
		crypto_sign_detached(bad + len - 64, NULL, msg, SP_DEVLIST_DOMAIN_LEN + len - 64,
				     acc.sk);
		assert_int_equal(put_as(&a, acc.pk, 32, bad, len, NULL), SP_STATUS_ERR_LIST_UNSORTED);
	}
	/* malformed: truncated, a trailing byte, empty */
	assert_int_equal(put_as(&a, acc.pk, 32, lbuf, len - 1, NULL), SP_STATUS_ERR_LIST_MALFORMED);
	memcpy(bad, lbuf, len);
	bad[len] = 0;
	assert_int_equal(put_as(&a, acc.pk, 32, bad, len + 1, NULL), SP_STATUS_ERR_LIST_MALFORMED);
	assert_int_equal(put_as(&a, acc.pk, 32, NULL, 0, NULL), SP_STATUS_ERR_LIST_MALFORMED);
	/* oversized: over the protocol's bytes, and over --account-max-devices 4 */
	memset(bad, 0, sizeof(bad));
	assert_int_equal(put_as(&a, acc.pk, 32, bad, SP_DEVLIST_MAX + 1, NULL),
			 SP_STATUS_ERR_LIST_TOO_LARGE);
	{
		struct sp_devlist big = l;

		for (int i = 0; i < MAX_DEVICES; i++) {
			uint8_t k[32], p[32];

			sp_noise_keypair(k, p);
			assert_int_equal(sp_devlist_add(&big, k, "extra", 0), 0);
		}
		len = sign(&big, &acc);
		assert_int_equal(put(&a, &acc, len), SP_STATUS_ERR_LIST_TOO_LARGE);
	}
	/* a list for another account than the frame names; a 31-byte account */
	len = sign(&l, &acc);
	assert_int_equal(put_as(&a, acc2.pk, 32, lbuf, len, NULL), SP_STATUS_ERR_LIST_ACCOUNT);
	assert_int_equal(put_as(&a, acc.pk, 31, lbuf, len, NULL), SP_STATUS_ERR_LIST_ACCOUNT);
	assert_int_equal(fetch(&a, acc.pk, 31, &got), SP_STATUS_ERR_LIST_ACCOUNT);
	/* a device that is not on the account's list, even with a valid list */
	assert_int_equal(put(&stranger, &acc, len), SP_STATUS_ERR_LIST_NOT_MEMBER);

	/* nothing of it stored; the connections and the broker are fine */
	assert_int_equal(fetch(&stranger, acc.pk, 32, &got), SP_STATUS_ACCEPTED);
	assert_int_equal(got.version, 5);
	assert_int_equal(got.count, 2);
	still_fine(&a);
	still_fine(&stranger);
	/* and the good version 6 still goes in */
	assert_int_equal(put(&b, &acc, len), SP_STATUS_ACCEPTED);
	sp_raw_close(&a);
	sp_raw_close(&b);
	sp_raw_close(&stranger);
}

/* Removal: the removed device's connection gets GoAway REMOVED and is
 * closed, its stored mail is gone; the others are told. */
static void test_remove(void **state)
{
	struct sp_raw a, b, c, sender;
	struct sp_raw_frame f;
	struct sp_devlist l;
	struct acct acc;
	uint32_t status = 0;
	size_t len;
	int r;

	(void)state;
	crypto_sign_keypair(acc.pk, acc.sk);
	dev_open(&a);
	dev_open(&b);
	dev_open(&c);
	dev_open(&sender);
	list_init(&l, &acc, 1);
	add(&l, &a, "laptop");
	add(&l, &b, "phone");
	add(&l, &c, "tablet");
	len = sign(&l, &acc);
	assert_int_equal(put(&a, &acc, len), SP_STATUS_ACCEPTED);
	changed(&c, 1, &f);
	/* c has mail it has not acked */
	assert_int_equal(sp_raw_send_envelope(&sender, c.s_pub, 1, (const uint8_t *)"x", 1), 0);
	assert_int_equal(sp_raw_expect_result(&sender, 1, &status, TMO), 0);
	assert_int_equal(status, SP_STATUS_ACCEPTED);
	wait_skip_changed(&c, SP_FRAME_DELIVER, &f);
	/* remove c */
	l.version = 2;
	assert_int_equal(sp_devlist_remove(&l, c.s_pub), 0);
	len = sign(&l, &acc);
	assert_int_equal(put(&a, &acc, len), SP_STATUS_ACCEPTED);
	changed(&b, 2, &f);
	wait_skip_changed(&c, SP_FRAME_GOAWAY, &f);
	assert_int_equal(f.status, SP_STATUS_GOAWAY_REMOVED);
	r = sp_raw_recv_frame(&c, &f, TMO);
	assert_true(r == -ENOTCONN || r == -ECONNRESET);
	/* its mailbox is gone: reconnecting, the backlog is empty */
	sp_raw_disconnect(&c);
	assert_int_equal(sp_raw_open(&c, broker.port, SP_PREAMBLE_PATTERN_IK, broker.server_pub), 0);
	assert_int_equal(sp_raw_wait_frame(&c, SP_FRAME_DRAINED, &f, TMO), 0);
	assert_int_equal(f.count, 0);
	still_fine(&b);
	sp_raw_close(&a);
	sp_raw_close(&b);
	sp_raw_close(&c);
	sp_raw_close(&sender);
}

/* A device removing itself gets its ListResult, then GoAway REMOVED. */
static void test_remove_self_and_restart(void **state)
{
	struct sp_raw a, b;
	struct sp_raw_frame f;
	struct sp_devlist l, got;
	struct acct acc;
	size_t len;

	(void)state;
	crypto_sign_keypair(acc.pk, acc.sk);
	dev_open(&a);
	dev_open(&b);
	list_init(&l, &acc, 10);
	add(&l, &a, "laptop");
	add(&l, &b, "phone");
	len = sign(&l, &acc);
	assert_int_equal(put(&a, &acc, len), SP_STATUS_ACCEPTED);
	l.version = 11;
	assert_int_equal(sp_devlist_remove(&l, a.s_pub), 0);
	len = sign(&l, &acc);
	assert_int_equal(put(&a, &acc, len), SP_STATUS_ACCEPTED);
	wait_skip_changed(&a, SP_FRAME_GOAWAY, &f);
	assert_int_equal(f.status, SP_STATUS_GOAWAY_REMOVED);
	sp_raw_close(&a);
	sp_raw_close(&b);
	/* lists are durable */
	sp_it_broker_stop(&broker);
	assert_int_equal(sp_it_broker_restart(&broker, NULL), 0);
	dev_open(&b);
	assert_int_equal(fetch(&b, acc.pk, 32, &got), SP_STATUS_ACCEPTED);
	assert_int_equal(got.version, 11);
	assert_int_equal(got.count, 1);
	sp_raw_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_link_fetch),
		cmocka_unit_test(test_forged_refused),
		cmocka_unit_test(test_bad_lists),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_remove_self_and_restart),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
