/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_translog.c: the transparency log (docs/PROTOCOL.md 11.7) against a
 * real sealpostd: every accepted or fetched list comes with a trailer whose
 * signed head verifies under DATA_DIR/log.pub and whose inclusion proof
 * puts exactly that list in the log (a proof altered in any byte fails);
 * LogFetch proves the log grew append-only between the heads a device saw;
 * and with SEALPOSTD_TEST_LOG_FORK one device is shown a forked history,
 * which it detects after one sealed envelope from an honest peer carrying
 * the peer's head (the 11.7 wrap), with the lib/crypto checks a client runs.
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
#include "sp_frame.h"
#include "sp_keyfile.h"
#include "sp_merkle.h"
#include "sp_seal.h"
#include "sp_sth.h"
#include "support.h"
#include "support_raw.h"

enum { TMO = 10000 };

static struct sp_it_broker broker;
static uint8_t log_key[SP_LOG_KEY_LEN];
static uint8_t lbuf[SP_DEVLIST_MAX + 64];

struct acct {
	uint8_t pk[SP_ACCOUNT_KEY_LEN], sk[SP_ACCOUNT_SECRET_LEN];
};

static void start(const uint8_t *fork_device)
{
	char path[512], hex[SP_KEY_HEX_LEN + 1];

	if (fork_device) {
		sp_key_format_hex(hex, fork_device);
		setenv("SEALPOSTD_TEST_LOG_FORK", hex, 1);
	}
	assert_int_equal(sp_it_broker_start(&broker, NULL, NULL), 0);
	unsetenv("SEALPOSTD_TEST_LOG_FORK");
	snprintf(path, sizeof(path), "%s/log.pub", broker.data_dir);
	assert_int_equal(sp_keyfile_read_public(path, log_key), 0);
}

static void stop(void)
{
	int st = sp_it_broker_stop(&broker);

	if (st != 0)
		sp_it_log_tail(&broker, 40);
	sp_it_rmrf(broker.data_dir);
	assert_int_equal(st, 0);
}

static void dev_connect(struct sp_raw *d)
{
	assert_int_equal(sp_raw_open(d, broker.port, SP_PREAMBLE_PATTERN_IK, broker.server_pub), 0);
}

/* The next frame of type, past ListChanged and Deliver frames not asked for. */
static void wait_for(struct sp_raw *d, enum sp_frame_type type, struct sp_raw_frame *f)
{
	for (;;) {
		int r = sp_raw_wait_frame(d, type, f, TMO);

		if (r == -EPROTO && f->type == SP_FRAME_LIST_CHANGED)
			continue;
		if (r)
			print_error("waiting for %d: %d, got type %d\n", (int)type, r, (int)f->type);
		assert_int_equal(r, 0);
		return;
	}
}

/* A list of a naming devs, version v, signed: bytes in lbuf, length returned. */
static size_t make_list(const struct acct *a, uint64_t v, struct sp_raw **devs, size_t n)
{
	struct sp_devlist l;
	size_t len = 0;

	memset(&l, 0, sizeof(l));
	memcpy(l.account, a->pk, sizeof(a->pk));
	l.version = v;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(sp_devlist_add(&l, devs[i]->s_pub, i ? "laptop" : "phone",
						1700000000),
				 0);
	assert_int_equal(sp_devlist_sign(&l, a->sk, lbuf, sizeof(lbuf), &len), 0);
	return len;
}

/* ListPut (put) or ListFetch from d; checks the trailer and returns its head. */
static void list_op(struct sp_raw *d, enum sp_frame_type type, const struct acct *a,
		    const uint8_t *list, size_t len, struct sp_sth *head)
{
	static uint64_t id = 500;
	uint8_t buf[SP_DEVLIST_MAX + 256], tr[SP_LOG_TRAILER_MAX];
	struct sp_raw_frame f;
	struct sp_inclusion inc;
	size_t off = 0, tlen;

	id++;
	assert_int_equal(sp_raw_put_list(buf, sizeof(buf), &off, type, a->pk, sizeof(a->pk), id,
					 type == SP_FRAME_LIST_PUT ? list : NULL,
					 type == SP_FRAME_LIST_PUT ? len : 0),
			 0);
	assert_int_equal(sp_raw_send_plain(d, buf, off), 0);
	wait_for(d, SP_FRAME_LIST_RESULT, &f);
	assert_int_equal(f.client_id, id);
	assert_int_equal(f.status, SP_STATUS_ACCEPTED);
	if (type == SP_FRAME_LIST_FETCH) {
		assert_int_equal(f.list_len, len);
		assert_memory_equal(f.body, list, len);
	}
	assert_true(f.body_len > f.list_len);
	tlen = f.body_len - f.list_len;
	assert_true(tlen <= sizeof(tr));
	memcpy(tr, f.body + f.list_len, tlen);
	assert_int_equal(sp_log_trailer_decode(tr, tlen, head, &inc), 0);
	assert_int_equal(sp_log_check_leaf(log_key, head, &inc, list, len), 0);
	/* a proof altered in any byte is refused */
	for (size_t i = SP_STH_LEN; i < tlen; i++) {
		struct sp_inclusion bad;
		struct sp_sth h;

		tr[i] ^= 0x20;
		if (sp_log_trailer_decode(tr, tlen, &h, &bad) == 0)
			assert_int_not_equal(sp_log_check_leaf(log_key, &h, &bad, list, len), 0);
		tr[i] ^= 0x20;
	}
}

/* LogFetch(first, second) from d; the reply's head and proof. */
static uint32_t log_fetch(struct sp_raw *d, uint64_t first, uint64_t second, struct sp_sth *head,
			  struct sp_consistency *con)
{
	static uint64_t id = 900;
	uint8_t buf[256];
	struct sp_frame q;
	struct sp_raw_frame f;
	size_t off = 0;

	memset(&q, 0, sizeof(q));
	q.type = SP_FRAME_LOG_FETCH;
	q.u.log.client_id = ++id;
	q.u.log.first = first;
	q.u.log.second = second;
	assert_int_equal(sp_frame_put(buf, sizeof(buf), &off, &q), 0);
	assert_int_equal(sp_raw_send_plain(d, buf, off), 0);
	wait_for(d, SP_FRAME_LOG_REPLY, &f);
	assert_int_equal(f.client_id, id);
	if (f.status != SP_STATUS_ACCEPTED) {
		assert_int_equal(f.body_len, 0);
		return f.status;
	}
	assert_memory_equal(f.account, log_key, sizeof(log_key));
	assert_int_equal(f.list_len, 0);
	assert_true(f.body_len >= SP_STH_LEN);
	assert_int_equal(sp_sth_decode(f.body, SP_STH_LEN, head), 0);
	assert_int_equal(sp_sth_verify(head, log_key), 0);
	assert_int_equal(sp_consistency_decode(f.body + SP_STH_LEN, f.body_len - SP_STH_LEN, con), 0);
	return f.status;
}

static void test_honest_log(void **state)
{
	struct sp_raw phone, laptop, *devs[2] = { &phone, &laptop };
	struct sp_sth h1, h2, h3, hf;
	struct sp_consistency con;
	struct acct a;
	uint8_t list1[SP_DEVLIST_MAX];
	size_t len1, len2;

	(void)state;
	start(NULL);
	crypto_sign_keypair(a.pk, a.sk);
	assert_int_equal(sp_raw_init(&phone), 0);
	assert_int_equal(sp_raw_init(&laptop), 0);
	dev_connect(&phone);
	dev_connect(&laptop);

	len1 = make_list(&a, 1, devs, 1);
	memcpy(list1, lbuf, len1);
	list_op(&phone, SP_FRAME_LIST_PUT, &a, list1, len1, &h1);
	assert_int_equal(h1.tree_size, 1);
	len2 = make_list(&a, 2, devs, 2);
	list_op(&phone, SP_FRAME_LIST_PUT, &a, lbuf, len2, &h2);
	assert_int_equal(h2.tree_size, 2);
	/* the linked laptop fetches: the same log, the latest list */
	list_op(&laptop, SP_FRAME_LIST_FETCH, &a, lbuf, len2, &h3);
	assert_int_equal(h3.tree_size, 2);
	assert_memory_equal(h3.root, h2.root, 32);
	/* the heads the phone saw are consistent */
	assert_int_equal(log_fetch(&phone, 1, 2, &hf, &con), SP_STATUS_ACCEPTED);
	assert_int_equal(sp_merkle_consistency_verify(1, 2, h1.root, h2.root, con.path, con.count), 0);
	assert_int_equal(sp_merkle_consistency_verify(1, 2, h2.root, h1.root, con.path, con.count),
			 -EKEYREJECTED);
	/* out of range */
	assert_int_equal(log_fetch(&phone, 2, 3, &hf, &con), SP_STATUS_ERR_LOG_RANGE);
	assert_int_equal(log_fetch(&phone, 2, 1, &hf, &con), SP_STATUS_ERR_LOG_RANGE);

	sp_raw_close(&laptop);
	sp_raw_close(&phone);
	stop();
}

/* The broker forks the log for the laptop; one envelope from the phone,
 * carrying the phone's head, lets the laptop see it. */
static void test_split_view_detected(void **state)
{
	struct sp_raw phone, laptop, *devs[2] = { &phone, &laptop };
	uint8_t msg[512], body[512 + SP_SEAL_OVERHEAD], got[512], from[SP_KEY_LEN], key[32];
	struct sp_sth ph, lh, seen, hf;
	struct sp_consistency con;
	struct sp_raw_frame f;
	struct acct a;
	size_t len, blen, glen;
	uint64_t m = 0, n = 0;
	uint32_t st;

	(void)state;
	crypto_sign_keypair(a.pk, a.sk);
	assert_int_equal(sp_raw_init(&phone), 0);
	assert_int_equal(sp_raw_init(&laptop), 0);
	start(laptop.s_pub);
	dev_connect(&phone);
	dev_connect(&laptop);

	len = make_list(&a, 1, devs, 2);
	list_op(&phone, SP_FRAME_LIST_PUT, &a, lbuf, len, &ph);
	/* the laptop is shown a log with one more leaf; it verifies on its own */
	list_op(&laptop, SP_FRAME_LIST_FETCH, &a, lbuf, len, &lh);
	assert_int_equal(ph.tree_size, 1);
	assert_int_equal(lh.tree_size, 2);
	/* the phone publishes again: its log is 2 leaves too, a different 2nd */
	len = make_list(&a, 2, devs, 2);
	list_op(&phone, SP_FRAME_LIST_PUT, &a, lbuf, len, &ph);
	assert_int_equal(ph.tree_size, 2);

	/* one message: the phone's head wrapped inside the sealed plaintext */
	sp_sth_wrap(log_key, &ph, msg);
	memcpy(msg + SP_STH_WRAP_LEN, "hi", 2);
	assert_int_equal(sp_seal(phone.s_priv, laptop.s_pub, msg, SP_STH_WRAP_LEN + 2, body,
				 sizeof(body), &blen),
			 0);
	assert_int_equal(sp_raw_send_envelope(&phone, laptop.s_pub, 1, body, blen), 0);
	assert_int_equal(sp_raw_expect_result(&phone, 1, &st, TMO), 0);
	wait_for(&laptop, SP_FRAME_DELIVER, &f);
	assert_int_equal(sp_seal_open(laptop.s_priv, f.body, f.body_len, from, got, sizeof(got),
				      &glen),
			 0);
	assert_int_equal(sp_sth_unwrap(got, glen, key, &seen), 1);
	assert_memory_equal(key, log_key, 32);
	assert_int_equal(sp_sth_verify(&seen, log_key), 0);
	assert_memory_equal(got + SP_STH_WRAP_LEN, "hi", 2);
	/* same size, different roots, both signed by the log: a split view */
	assert_int_equal(sp_sth_compare(&lh, &seen, &m, &n), SP_STH_SPLIT);
	/* This fork keeps its ghost leaf at the end of the real log, so the
	 * laptop's own earlier head does not extend to what it is shown now
	 * either (a fork that kept it in place is caught by the verdict above). */
	assert_int_equal(log_fetch(&laptop, 2, 0, &hf, &con), SP_STATUS_ACCEPTED);
	assert_int_equal(hf.tree_size, 3);
	assert_int_not_equal(
		sp_merkle_consistency_verify(2, hf.tree_size, lh.root, hf.root, con.path, con.count),
		0);
	sp_raw_close(&phone);
	sp_raw_close(&laptop);
	stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_honest_log),
		cmocka_unit_test(test_split_view_detected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
