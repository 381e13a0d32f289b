/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_inbox.c: the cross-shard inbox (broker/loop/sp_inbox.h): oldest
 * first; one wake-up per burst; real producer threads racing, each one's
 * messages in its order and none lost; a wake-up through IORING_OP_MSG_RING
 * from one real ring to another, and through the eventfd.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "sp_inbox.h"
#include "sp_ring.h"

static struct sp_inbox_msg *msg(uint16_t kind, uint64_t a)
{
	struct sp_inbox_msg *m = sp_inbox_msg_new(kind, 8);

	assert_non_null(m);
	m->arg[0] = a;
	memcpy(m->data, &a, 8);
	return m;
}

static void free_all(struct sp_inbox_msg *m)
{
	struct sp_inbox_msg *next;

	for (; m; m = next) {
		next = m->next;
		sp_inbox_msg_free(m);
	}
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static void drain_eventfd(int fd)
{
	uint64_t v;

	while (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
}

static void test_order_and_one_wake(void **state)
{
	struct sp_inbox ib;
	struct sp_inbox_msg *m;
	uint64_t want = 0;

	(void)state;
	assert_int_equal(sp_inbox_init(&ib), 0);
	assert_null(sp_inbox_take(&ib));
	assert_false(readable(ib.event_fd));
	for (uint64_t i = 0; i < 100; i++)
		assert_int_equal(sp_inbox_post(&ib, msg(1, i)), 0);
	/* One write for the burst: the eventfd counter is 1. */
	{
		uint64_t v = 0;

		assert_int_equal(read(ib.event_fd, &v, sizeof(v)), (ssize_t)sizeof(v));
		assert_int_equal(v, 1);
	}
	m = sp_inbox_take(&ib);
	for (struct sp_inbox_msg *p = m; p; p = p->next)
		assert_int_equal(p->arg[0], want++);
	assert_int_equal(want, 100);
	free_all(m);
	/* Empty again: the next post wakes again. */
	assert_int_equal(sp_inbox_post(&ib, msg(1, 7)), 0);
	assert_true(readable(ib.event_fd));
	/* Destroy frees what is still queued (ASan would see a leak). */
	sp_inbox_destroy(&ib);
}

enum { PRODUCERS = 4, PER_PRODUCER = 20000 };

struct producer {
	struct sp_inbox *ib;
	uint16_t id;
};

static void *produce(void *arg)
{
	struct producer *p = arg;

	for (uint64_t i = 0; i < PER_PRODUCER; i++) {
		struct sp_inbox_msg *m = msg(2, i);

		m->from = p->id;
		sp_inbox_post(p->ib, m);
	}
	return NULL;
}

static void test_racing_producers(void **state)
{
	struct producer pr[PRODUCERS];
	pthread_t th[PRODUCERS];
	uint64_t next[PRODUCERS] = { 0 }, total = 0;
	struct sp_inbox ib;

	(void)state;
	assert_int_equal(sp_inbox_init(&ib), 0);
	for (int i = 0; i < PRODUCERS; i++) {
		pr[i] = (struct producer){ .ib = &ib, .id = (uint16_t)i };
		assert_int_equal(pthread_create(&th[i], NULL, produce, &pr[i]), 0);
	}
	/* The consumer takes while they post: each producer's messages come
	 * out in its order, and all of them. */
	while (total < (uint64_t)PRODUCERS * PER_PRODUCER) {
		struct pollfd p = { .fd = ib.event_fd, .events = POLLIN };
		struct sp_inbox_msg *m;

		poll(&p, 1, 1000);
		drain_eventfd(ib.event_fd);
		m = sp_inbox_take(&ib);
		for (struct sp_inbox_msg *q = m; q; q = q->next) {
			assert_true(q->from < PRODUCERS);
			assert_int_equal(q->arg[0], next[q->from]);
			next[q->from]++;
			total++;
		}
		free_all(m);
	}
	for (int i = 0; i < PRODUCERS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(next[i], PER_PRODUCER);
	}
	assert_null(sp_inbox_take(&ib));
	assert_int_equal(atomic_load(&ib.posted), (uint64_t)PRODUCERS * PER_PRODUCER);
	sp_inbox_destroy(&ib);
}

/* A producer on one ring wakes the consumer's ring: the consumer sees a CQE
 * carrying wake_ud, the producer one carrying src_ud. */
static void test_msg_ring_wake(void **state)
{
	struct sp_ring prod, cons;
	struct io_uring_cqe *cqe;
	struct sp_inbox ib;
	struct sp_inbox_msg *m;
	uint64_t wake = sp_ud_pack(SP_OP_CANCEL, 1, 2), src = sp_ud_pack(SP_OP_NONE, 3, 4);

	(void)state;
	assert_int_equal(sp_ring_init(&prod, 8), 0);
	assert_int_equal(sp_ring_init(&cons, 8), 0);
	assert_int_equal(sp_inbox_init(&ib), 0);
	sp_inbox_set_ring(&ib, cons.ring.ring_fd);
	assert_int_equal(sp_inbox_post_ring(&ib, msg(3, 42), &prod, wake, src), 0);
	/* The second post finds the inbox non-empty: no second wake-up. */
	assert_int_equal(sp_inbox_post_ring(&ib, msg(3, 43), &prod, wake, src), 0);
	assert_int_equal(sp_ring_submit_wait(&prod, 1), 0);
	assert_int_equal(io_uring_wait_cqe(&prod.ring, &cqe), 0);
	assert_int_equal(cqe->res, 0);
	assert_int_equal(io_uring_cqe_get_data64(cqe), src);
	io_uring_cqe_seen(&prod.ring, cqe);
	assert_int_equal(io_uring_peek_cqe(&prod.ring, &cqe), -EAGAIN);

	assert_int_equal(sp_ring_submit_wait(&cons, 1), 0);
	assert_int_equal(io_uring_wait_cqe(&cons.ring, &cqe), 0);
	assert_int_equal(io_uring_cqe_get_data64(cqe), wake);
	io_uring_cqe_seen(&cons.ring, cqe);
	assert_int_equal(io_uring_peek_cqe(&cons.ring, &cqe), -EAGAIN);
	assert_false(readable(ib.event_fd));    /* the ring woke it, not the eventfd */
	m = sp_inbox_take(&ib);
	assert_non_null(m);
	assert_int_equal(m->arg[0], 42);
	assert_non_null(m->next);
	assert_int_equal(m->next->arg[0], 43);
	assert_null(m->next->next);
	free_all(m);
	sp_inbox_destroy(&ib);
	sp_ring_exit(&prod);
	sp_ring_exit(&cons);
}

/* Before the consumer's ring is known, a ring producer wakes the eventfd. */
static void test_ring_fallback_eventfd(void **state)
{
	struct sp_ring prod;
	struct sp_inbox ib;

	(void)state;
	assert_int_equal(sp_ring_init(&prod, 8), 0);
	assert_int_equal(sp_inbox_init(&ib), 0);
	assert_int_equal(sp_inbox_post_ring(&ib, msg(4, 1), &prod, 1, 2), 0);
	assert_true(readable(ib.event_fd));
	assert_int_equal(prod.pending, 0);      /* no SQE was prepared */
	sp_inbox_destroy(&ib);
	sp_ring_exit(&prod);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_and_one_wake),
		cmocka_unit_test(test_racing_producers),
		cmocka_unit_test(test_msg_ring_wake),
		cmocka_unit_test(test_ring_fallback_eventfd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
