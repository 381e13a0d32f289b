/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_ring.c: user_data packing, route handles, and a real io_uring: the
 * provided-buffer ring receives data from a socketpair through a multishot
 * recv, runs dry (-ENOBUFS ends the multishot), and works again once its
 * buffers are recycled.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sp_ring.h"
#include "sp_shard.h"

static void test_ud_roundtrip(void **state)
{
	static const uint32_t slots[] = { 0, 1, 15999, SP_UD_SLOT_MAX };
	static const uint32_t gens[] = { 0, 1, 0x7fffffff, 0x80000000, 0xffffffff };

	(void)state;
	for (int op = SP_OP_NONE; op < SP_OP_MAX; op++) {
		for (size_t i = 0; i < sizeof(slots) / sizeof(slots[0]); i++) {
			for (size_t j = 0; j < sizeof(gens) / sizeof(gens[0]); j++) {
				struct sp_ud d = sp_ud_unpack(sp_ud_pack(op, slots[i], gens[j]));

				assert_int_equal(d.op, op);
				assert_int_equal(d.slot, slots[i]);
				assert_int_equal(d.gen, gens[j]);
			}
		}
	}
}

static void test_ud_generation_wrap(void **state)
{
	uint32_t gen = 0xffffffff;
	uint64_t old = sp_ud_pack(SP_OP_RECV, 7, gen);
	uint64_t fresh;

	(void)state;
	gen++;          /* the slot is reused: its generation wraps to 0 */
	fresh = sp_ud_pack(SP_OP_RECV, 7, gen);
	assert_int_equal(sp_ud_unpack(fresh).gen, 0);
	assert_int_not_equal(old, fresh);
	assert_int_not_equal(sp_ud_unpack(old).gen, sp_ud_unpack(fresh).gen);
	/* Fields never bleed into each other. */
	assert_int_equal(sp_ud_unpack(sp_ud_pack(SP_OP_SEND, SP_UD_SLOT_MAX, 0)).op, SP_OP_SEND);
	assert_int_equal(sp_ud_unpack(sp_ud_pack(SP_OP_NONE, 0, 0xffffffff)).slot, 0);
}

static void test_handle_roundtrip(void **state)
{
	uint64_t h = sp_handle_pack(200, 12345, 0xdeadbeef);

	(void)state;
	assert_int_equal(sp_handle_shard(h), 200);
	assert_int_equal(sp_handle_slot(h), 12345);
	assert_int_equal(sp_handle_gen(h), 0xdeadbeef);
	assert_int_not_equal(h, sp_handle_pack(200, 12345, 0xdeadbef0));
	assert_int_not_equal(h, sp_handle_pack(201, 12345, 0xdeadbeef));
}

/* Waits for one completion and copies it out. */
static struct io_uring_cqe wait_one(struct sp_ring *r)
{
	struct io_uring_cqe *cqe, copy;

	assert_int_equal(sp_ring_submit_wait(r, 1), 0);
	assert_int_equal(io_uring_peek_cqe(&r->ring, &cqe), 0);
	copy = *cqe;
	io_uring_cqe_seen(&r->ring, cqe);
	return copy;
}

struct rig {
	struct sp_ring r;
	struct sp_bufring b;
	int sv[2];
};

enum { NBUF = 4, BUFSZ = 64, BGID = 3 };

static int rig_setup(void **state)
{
	static struct rig g;

	assert_int_equal(sp_ring_init(&g.r, 8), 0);
	assert_int_equal(sp_bufring_init(&g.b, &g.r, BGID, NBUF, BUFSZ), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, g.sv), 0);
	*state = &g;
	return 0;
}

static int rig_teardown(void **state)
{
	struct rig *g = *state;

	close(g->sv[0]);
	close(g->sv[1]);
	sp_bufring_exit(&g->b, &g->r);
	sp_ring_exit(&g->r);
	return 0;
}

/* Sends msg and checks it arrives whole in a selected buffer; returns its id. */
static int recv_into_buffer(struct rig *g, const char *msg, uint64_t ud)
{
	struct io_uring_cqe cqe;
	int bid;

	assert_int_equal(write(g->sv[1], msg, strlen(msg)), (ssize_t)strlen(msg));
	cqe = wait_one(&g->r);
	assert_int_equal(cqe.user_data, ud);
	assert_int_equal(cqe.res, (int)strlen(msg));
	assert_true(cqe.flags & IORING_CQE_F_MORE);  /* the multishot stays armed */
	bid = sp_cqe_bid(&cqe);
	assert_true(bid >= 0 && bid < NBUF);
	assert_memory_equal(sp_bufring_addr(&g->b, (uint16_t)bid), msg, strlen(msg));
	return bid;
}

/* The pool's memory is resident only once data has landed in it: the
 * figure the broker reports as recv_pool. */
static void test_bufring_resident(void **state)
{
	struct rig *g = *state;
	uint64_t ud = sp_ud_pack(SP_OP_RECV, 2, 1);

	assert_int_equal(sp_bufring_resident(&g->b), 0);
	assert_int_equal(sp_ring_recv(&g->r, g->sv[0], BGID, ud), 0);
	(void)recv_into_buffer(g, "resident", ud);
	assert_int_equal(sp_bufring_resident(&g->b), (size_t)sysconf(_SC_PAGESIZE));
}

static void test_bufring_recv_and_recycle(void **state)
{
	struct rig *g = *state;
	uint64_t ud = sp_ud_pack(SP_OP_RECV, 5, 9);
	struct io_uring_cqe cqe;
	int seen[NBUF] = { 0 }, bid;
	char msg[32];

	assert_int_equal(sp_ring_recv(&g->r, g->sv[0], BGID, ud), 0);
	/* Every buffer once, none returned. */
	for (int i = 0; i < NBUF; i++) {
		snprintf(msg, sizeof(msg), "message %d", i);
		bid = recv_into_buffer(g, msg, ud);
		assert_int_equal(seen[bid]++, 0);
	}
	/* The ring is dry: the multishot ends with -ENOBUFS (re-arm, not fatal). */
	assert_int_equal(write(g->sv[1], "late", 4), 4);
	cqe = wait_one(&g->r);
	assert_int_equal(cqe.res, -ENOBUFS);
	assert_false(cqe.flags & IORING_CQE_F_MORE);
	assert_int_equal(sp_cqe_bid(&cqe), -1);

	/* Recycle two (staged, then one flush) and re-arm: the waiting bytes arrive. */
	sp_bufring_put(&g->b, 2);
	sp_bufring_put(&g->b, 0);
	assert_int_equal(g->b.staged, 2);
	sp_bufring_flush(&g->b);
	assert_int_equal(g->b.staged, 0);
	assert_int_equal(sp_ring_recv(&g->r, g->sv[0], BGID, ud), 0);
	cqe = wait_one(&g->r);
	assert_int_equal(cqe.res, 4);
	bid = sp_cqe_bid(&cqe);
	assert_true(bid == 2 || bid == 0);
	assert_memory_equal(sp_bufring_addr(&g->b, (uint16_t)bid), "late", 4);

	/* Recycled buffers keep serving many more messages than the ring holds. */
	sp_bufring_put(&g->b, (uint16_t)bid);
	sp_bufring_flush(&g->b);
	for (int i = 0; i < 3 * NBUF; i++) {
		snprintf(msg, sizeof(msg), "again %d", i);
		bid = recv_into_buffer(g, msg, ud);
		sp_bufring_put(&g->b, (uint16_t)bid);
		sp_bufring_flush(&g->b);
	}

	/* EOF ends the multishot with res 0 and no buffer. */
	shutdown(g->sv[1], SHUT_WR);
	cqe = wait_one(&g->r);
	assert_int_equal(cqe.res, 0);
	assert_false(cqe.flags & IORING_CQE_F_MORE);
	assert_int_equal(sp_cqe_bid(&cqe), -1);
}

static void test_cancel_fd(void **state)
{
	struct rig *g = *state;
	int sv[2], got_recv = 0, got_cancel = 0;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(sp_ring_recv(&g->r, sv[0], BGID, sp_ud_pack(SP_OP_RECV, 1, 1)), 0);
	assert_int_equal(sp_ring_cancel_fd(&g->r, sv[0], sp_ud_pack(SP_OP_CANCEL, 1, 1)), 0);
	for (int i = 0; i < 2; i++) {
		struct io_uring_cqe cqe = wait_one(&g->r);
		struct sp_ud d = sp_ud_unpack(cqe.user_data);

		if (d.op == SP_OP_RECV) {
			assert_int_equal(cqe.res, -ECANCELED);
			assert_false(cqe.flags & IORING_CQE_F_MORE);
			got_recv++;
		} else {
			assert_int_equal(d.op, SP_OP_CANCEL);
			assert_int_equal(cqe.res, 1);   /* one request cancelled */
			got_cancel++;
		}
	}
	assert_int_equal(got_recv, 1);
	assert_int_equal(got_cancel, 1);
	close(sv[0]);
	close(sv[1]);
}

static void test_sqe_overflow_submits(void **state)
{
	struct sp_ring r;
	unsigned seen = 0;

	(void)state;
	assert_int_equal(sp_ring_init(&r, 4), 0);
	/* More requests than SQ entries: sp_ring_sqe submits the full batch itself. */
	for (unsigned i = 0; i < 10; i++) {
		struct io_uring_sqe *sqe = sp_ring_sqe(&r);

		assert_non_null(sqe);
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, sp_ud_pack(SP_OP_NONE, i, 0));
	}
	assert_int_equal(sp_ring_submit_wait(&r, 1), 0);
	while (seen < 10) {
		struct io_uring_cqe *cqe;

		if (io_uring_peek_cqe(&r.ring, &cqe)) {
			assert_int_equal(sp_ring_submit_wait(&r, 1), 0);
			continue;
		}
		assert_int_equal(cqe->res, 0);
		io_uring_cqe_seen(&r.ring, cqe);
		seen++;
	}
	sp_ring_exit(&r);
}

static void test_bufring_bad_args(void **state)
{
	struct sp_ring r;
	struct sp_bufring b;

	(void)state;
	assert_int_equal(sp_ring_init(&r, 4), 0);
	assert_int_equal(sp_bufring_init(&b, &r, 1, 3, 64), -EINVAL);   /* not a power of two */
	assert_int_equal(sp_bufring_init(&b, &r, 1, 65536, 64), -EINVAL);
	assert_int_equal(sp_bufring_init(&b, &r, 1, 4, 0), -EINVAL);
	sp_ring_exit(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ud_roundtrip),
		cmocka_unit_test(test_ud_generation_wrap),
		cmocka_unit_test(test_handle_roundtrip),
		cmocka_unit_test_setup_teardown(test_bufring_recv_and_recycle, rig_setup,
						rig_teardown),
		cmocka_unit_test_setup_teardown(test_cancel_fd, rig_setup, rig_teardown),
		cmocka_unit_test_setup_teardown(test_bufring_resident, rig_setup, rig_teardown),
		cmocka_unit_test(test_sqe_overflow_submits),
		cmocka_unit_test(test_bufring_bad_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
