/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_fanout.c: fan-out groups (broker/app/sp_fanout.c, docs/PROTOCOL.md
 * 16) through a detached shard with a real mailbox store: devices hold
 * real IK sessions and send real transport messages. What the integration
 * test (it_fanout) cannot see from outside: the group's memory is counted
 * while it is held and given back on every way out (answered, cut short,
 * past its deadline, its connection gone); the memory budget refuses a
 * copy; a group for the sender's own account does not expect the sender
 * (a copy for itself is stale); the missing and stale runs come sorted;
 * the copies of an accepted group are one commit of their own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "sp_devlist.h"
#include "sp_list.h"
#include "sp_store.h"
#include "support_shard.h"

static int setup(void **state)
{
	struct sps *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	sps_init(t);
	t->cfg.fanout_timeout_ms = 500;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	sps_fini(*state);
	free(*state);
	return 0;
}

struct acct {
	uint8_t pk[SP_ACCOUNT_LEN], sk[SP_ACCOUNT_SECRET_LEN];
	uint64_t version;
};

static void connect_dev(struct sps *t, struct sps_dev *d)
{
	assert_int_equal(sps_connect(t, d, 1), 0);
	assert_int_equal(sps_expect(d, SP_FRAME_PONG)->id, 1);
	assert_int_equal(sps_expect(d, SP_FRAME_DRAINED)->count, 0);
}

/* Publishes a list of devs (n) for a from devs[0]; its ListResult read. */
static void publish(struct sps *t, struct acct *a, struct sps_dev **devs, unsigned n)
{
	static uint8_t body[SP_DEVLIST_MAX];
	struct sp_devlist l;
	struct sp_frame f;
	size_t len = 0;

	memset(&l, 0, sizeof(l));
	memcpy(l.account, a->pk, SP_ACCOUNT_LEN);
	l.version = ++a->version;
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(sp_devlist_add(&l, devs[i]->pub, "d", 1700000000), 0);
	assert_int_equal(sp_devlist_sign(&l, a->sk, body, sizeof(body), &len), 0);
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_LIST_PUT;
	memcpy(f.u.list.account, a->pk, SP_ACCOUNT_LEN);
	f.u.list.account_ok = 1;
	f.u.list.client_id = 77;
	sps_frame(devs[0], &f, body, len);
	assert_int_equal(sps_round(t, devs[0]), 0);
	assert_int_equal(sps_expect(devs[0], SP_FRAME_LIST_RESULT)->status, SP_STATUS_ACCEPTED);
	for (unsigned i = 1; i < n; i++)
		while (sps_next(devs[i]))
			;       /* their ListChanged */
}

static void begin(struct sps_dev *d, const struct acct *a, uint64_t id, uint32_t count)
{
	struct sp_frame f;

	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_FANOUT_BEGIN;
	memcpy(f.u.fanout.key, a->pk, SP_ACCOUNT_LEN);
	f.u.fanout.key_ok = 1;
	f.u.fanout.group_id = id;
	f.u.fanout.version = a->version;
	f.u.fanout.count = count;
	sps_frame(d, &f, NULL, 0);
}

static void copy(struct sps_dev *d, const uint8_t *to, uint64_t id, size_t len)
{
	static uint8_t body[SP_BODY_MAX];
	struct sp_frame f;

	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_FANOUT_COPY;
	memcpy(f.u.fanout.key, to, SP_KEY_LEN);
	f.u.fanout.key_ok = 1;
	f.u.fanout.group_id = id;
	sps_body(body, len, id);
	sps_frame(d, &f, body, len);
}

static const struct sps_event *result(struct sps_dev *d, uint64_t id, enum sp_status st)
{
	const struct sps_event *e = sps_expect(d, SP_FRAME_FANOUT_RESULT);

	assert_int_equal(e->client_id, id);
	assert_int_equal(e->status, st);
	return e;
}

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, SP_KEY_LEN);
}

/* Memory is counted while a group waits and given back on every way out. */
static void test_memory_given_back(void **state)
{
	struct sps *t = *state;
	struct sps_dev *s, *b, *c;
	struct acct a = { 0 };

	sps_start(t);
	crypto_sign_keypair(a.pk, a.sk);
	s = sps_dev_new(t);
	b = sps_dev_new(t);
	c = sps_dev_new(t);
	connect_dev(t, s);
	connect_dev(t, b);
	connect_dev(t, c);
	publish(t, &a, (struct sps_dev *[]){ s, b, c }, 3);

	/* one of two copies: held, counted, on the deadline list */
	begin(s, &a, 1, 2);
	copy(s, b->pub, 1, 1000);
	assert_int_equal(sps_round(t, s), 0);
	assert_int_equal(t->sh.mem.fanout_bytes, 1000);
	assert_false(sp_list_empty(&t->sh.fanout_list));
	assert_null(sps_next(s));
	/* the deadline passes: refused by the tick, memory back */
	t->now_ns += 600ull * 1000000;
	sps_begin(t);
	sp_shard_tick(&t->sh);
	assert_int_equal(sps_end(t), 0);
	result(s, 1, SP_STATUS_ERR_FANOUT_INCOMPLETE);
	assert_int_equal(t->sh.mem.fanout_bytes, 0);
	assert_true(sp_list_empty(&t->sh.fanout_list));
	/* its last copy, late: dropped without an answer */
	copy(s, c->pub, 1, 1000);
	sps_ping(s, 2);
	assert_int_equal(sps_round(t, s), 0);
	assert_int_equal(sps_expect(s, SP_FRAME_PONG)->id, 2);
	assert_null(sps_next(s));

	/* the sender goes away mid-group: freed with its connection */
	begin(s, &a, 3, 2);
	copy(s, b->pub, 3, 5000);
	assert_int_equal(sps_round(t, s), 0);
	assert_int_equal(t->sh.mem.fanout_bytes, 5000);
	(void)sps_disconnect(t, s);     /* -EIO: the harness reports every end */
	assert_int_equal(t->sh.mem.fanout_bytes, 0);
	assert_true(sp_list_empty(&t->sh.fanout_list));
	assert_null(sps_next(b));
	assert_null(sps_next(c));
}

/* A copy that would pass --mem-budget (shared with every connection)
 * refuses its group; the connection goes on. */
static void test_memory_budget(void **state)
{
	struct sps *t = *state;
	struct sps_dev *d[5];
	struct acct a = { 0 };
	uint64_t used;

	sps_start(t);
	crypto_sign_keypair(a.pk, a.sk);
	for (unsigned i = 0; i < 5; i++) {
		d[i] = sps_dev_new(t);
		connect_dev(t, d[i]);
	}
	publish(t, &a, d, 5);
	/* Room for the answers' outbound chunks, not for four 60,000-byte
	 * copies held at once. */
	used = t->sh.mem.rx_bytes + (t->sh.pool.live - t->sh.pool.nfree) * sizeof(struct sp_txchunk);
	t->cfg.mem_budget = used + 2 * sizeof(struct sp_txchunk) + 1000;
	assert_true(4 * 60000 > 2 * sizeof(struct sp_txchunk) + 1000);
	for (unsigned round = 0; round < 2; round++) {
		begin(d[0], &a, 5 + round, 4);
		assert_int_equal(sps_round(t, d[0]), 0);
		for (unsigned i = 1; i < 5; i++) {
			copy(d[0], d[i]->pub, 5 + round, 60000);
			assert_int_equal(sps_round(t, d[0]), 0);
		}
		if (round == 0) {
			result(d[0], 5, SP_STATUS_ERR_FANOUT_TOO_LARGE);
			assert_int_equal(t->sh.mem.fanout_bytes, 0);
			for (unsigned i = 1; i < 5; i++)
				assert_null(sps_next(d[i]));
			t->cfg.mem_budget = (uint64_t)1 << 30;
		}
	}
	/* the same group within the budget */
	result(d[0], 6, SP_STATUS_ACCEPTED);
	for (unsigned i = 1; i < 5; i++)
		assert_true(sps_body_is(sps_expect(d[i], SP_FRAME_DELIVER), 60000, 6));
}

/* The sender's own account: its other devices expected, itself not (a
 * copy to itself is stale); the runs of keys sorted. */
static void test_own_account_and_sorted(void **state)
{
	struct sps *t = *state;
	struct sps_dev *d[5];
	struct acct a = { 0 };
	uint8_t want[4][SP_KEY_LEN];
	const struct sps_event *e;
	struct sps_counts before;

	sps_start(t);
	crypto_sign_keypair(a.pk, a.sk);
	for (unsigned i = 0; i < 5; i++) {
		d[i] = sps_dev_new(t);
		connect_dev(t, d[i]);
	}
	publish(t, &a, d, 5);
	/* only a copy to itself: the other four missing, itself stale */
	begin(d[0], &a, 9, 1);
	copy(d[0], d[0]->pub, 9, 10);
	assert_int_equal(sps_round(t, d[0]), 0);
	e = result(d[0], 9, SP_STATUS_ERR_FANOUT_MISMATCH);
	assert_int_equal(e->count, 4);
	assert_int_equal(e->body_len, 5 * SP_KEY_LEN);
	for (unsigned i = 0; i < 4; i++)
		memcpy(want[i], d[i + 1]->pub, SP_KEY_LEN);
	qsort(want, 4, SP_KEY_LEN, key_cmp);
	assert_memory_equal(e->body, want, 4 * SP_KEY_LEN);
	assert_memory_equal(e->body + 4 * SP_KEY_LEN, d[0]->pub, SP_KEY_LEN);
	/* the four others, in any order: accepted, one commit of their own */
	before = sps_counts(t);
	begin(d[0], &a, 10, 4);
	for (unsigned i = 4; i >= 1; i--)
		copy(d[0], d[i]->pub, 10, 10);
	assert_int_equal(sps_round(t, d[0]), 0);
	result(d[0], 10, SP_STATUS_ACCEPTED);
	assert_int_equal(sps_counts(t).commits, before.commits + 1);
	assert_int_equal(sps_counts(t).accepted, before.accepted + 4);
	for (unsigned i = 1; i < 5; i++)
		assert_true(sps_body_is(sps_expect(d[i], SP_FRAME_DELIVER), 10, 10));
	assert_null(sps_next(d[0]));
}

/* A group needs an authenticated connection's store; without one it is
 * answered ERR_INTERNAL, and an unknown account ERR_LIST_UNKNOWN. */
static void test_no_store(void **state)
{
	struct sps *t = *state;
	struct sps_dev *s, *b;
	struct acct a = { 0 };

	t->no_store = true;
	sps_start(t);
	crypto_sign_keypair(a.pk, a.sk);
	s = sps_dev_new(t);
	b = sps_dev_new(t);
	connect_dev(t, s);
	connect_dev(t, b);
	begin(s, &a, 11, 1);
	copy(s, b->pub, 11, 10);
	assert_int_equal(sps_round(t, s), 0);
	result(s, 11, SP_STATUS_ERR_INTERNAL);
	assert_null(sps_next(b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_memory_given_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_account_and_sorted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_store, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
