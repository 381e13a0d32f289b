/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_cluster_inbox.c: the lock-free hand-off from libnats's threads to
 * the loop (broker/cluster/sp_cluster_inbox.h): oldest first, each
 * producer's order kept under concurrent pushes, nothing lost or doubled,
 * one eventfd wake-up per empty-to-non-empty edge, the bound.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sp_cluster_inbox.h"

enum { PRODUCERS = 4, PER_PRODUCER = 20000 };

static struct sp_cluster_item *item(uint64_t node, uint64_t value)
{
	struct sp_cluster_item *it = calloc(1, sizeof(*it));

	assert_non_null(it);
	it->kind = SP_CLUSTER_REPLY;
	it->node = node;
	it->value = value;
	return it;
}

static uint64_t wakeups(const struct sp_cluster_inbox *in)
{
	uint64_t v = 0;

	if (read(sp_cluster_inbox_fd(in), &v, sizeof(v)) != (ssize_t)sizeof(v))
		return 0;       /* EAGAIN: none */
	return v;
}

static void free_list(struct sp_cluster_item *it)
{
	while (it) {
		struct sp_cluster_item *n = it->next;

		free(it);
		it = n;
	}
}

static void test_fifo_and_wakeups(void **state)
{
	struct sp_cluster_inbox in;
	struct sp_cluster_item *it, *head;

	(void)state;
	assert_int_equal(sp_cluster_inbox_init(&in, 16), 0);
	assert_null(sp_cluster_inbox_take(&in));
	assert_int_equal(wakeups(&in), 0);
	for (uint64_t i = 1; i <= 3; i++)
		assert_int_equal(sp_cluster_inbox_push(&in, item(0, i)), 0);
	/* Three pushes, one wake-up: only the first found the list empty. */
	assert_int_equal(wakeups(&in), 1);
	head = it = sp_cluster_inbox_take(&in);
	for (uint64_t i = 1; i <= 3; i++, it = it->next) {
		assert_non_null(it);
		assert_int_equal(it->value, i);
	}
	assert_null(it);
	free_list(head);
	/* After a take the next push wakes again. */
	assert_int_equal(sp_cluster_inbox_push(&in, item(0, 9)), 0);
	assert_int_equal(wakeups(&in), 1);
	sp_cluster_inbox_destroy(&in);  /* frees the one still waiting */
	assert_int_equal(in.efd, -1);
}

static void test_bound(void **state)
{
	struct sp_cluster_inbox in;
	struct sp_cluster_item *extra = item(0, 3), *it;

	(void)state;
	assert_int_equal(sp_cluster_inbox_init(&in, 2), 0);
	assert_int_equal(sp_cluster_inbox_push(&in, item(0, 1)), 0);
	assert_int_equal(sp_cluster_inbox_push(&in, item(0, 2)), 0);
	assert_int_equal(sp_cluster_inbox_push(&in, extra), -ENOBUFS);
	assert_int_equal(in.refused, 1);
	it = sp_cluster_inbox_take(&in);
	assert_int_equal(it->value, 1);
	assert_int_equal(it->next->value, 2);
	assert_null(it->next->next);
	free_list(it);
	/* Room again after the take. */
	assert_int_equal(sp_cluster_inbox_push(&in, extra), 0);
	sp_cluster_inbox_destroy(&in);
}

struct producer {
	struct sp_cluster_inbox *in;
	uint64_t node;
};

static void *produce(void *arg)
{
	struct producer *p = arg;

	for (uint64_t i = 1; i <= PER_PRODUCER; i++) {
		struct sp_cluster_item *it = item(p->node, i);

		/* Full: the consumer is behind; the item is still ours. */
		while (sp_cluster_inbox_push(p->in, it) == -ENOBUFS)
			sched_yield();
	}
	return NULL;
}

/* The consumer sleeps on the eventfd like the loop on its ring read. */
static void test_producers_race(void **state)
{
	struct sp_cluster_inbox in;
	struct producer prod[PRODUCERS];
	pthread_t th[PRODUCERS];
	uint64_t last[PRODUCERS] = { 0 }, got = 0;

	(void)state;
	assert_int_equal(sp_cluster_inbox_init(&in, 1024), 0);
	for (int i = 0; i < PRODUCERS; i++) {
		prod[i].in = &in;
		prod[i].node = (uint64_t)i;
		assert_int_equal(pthread_create(&th[i], NULL, produce, &prod[i]), 0);
	}
	while (got < (uint64_t)PRODUCERS * PER_PRODUCER) {
		struct pollfd pfd = { .fd = sp_cluster_inbox_fd(&in), .events = POLLIN };
		struct sp_cluster_item *it;

		/* Bounded: a lost wake-up fails here instead of hanging. */
		assert_int_equal(poll(&pfd, 1, 10000), 1);
		wakeups(&in);
		it = sp_cluster_inbox_take(&in);
		for (struct sp_cluster_item *p = it; p; p = p->next) {
			assert_true(p->node < PRODUCERS);
			/* Each producer's items in its order, none missing. */
			assert_int_equal(p->value, last[p->node] + 1);
			last[p->node] = p->value;
			got++;
		}
		free_list(it);
	}
	for (int i = 0; i < PRODUCERS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(last[i], PER_PRODUCER);
	}
	assert_null(sp_cluster_inbox_take(&in));
	sp_cluster_inbox_destroy(&in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fifo_and_wakeups),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_producers_race),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
