/* SPDX-License-Identifier: Apache-2.0 */
/* test_ilist.c: index-linked lists over one array (sp_ilist.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sp_ilist.h"

/* An element as the broker's are: the link somewhere inside, other fields around. */
struct elem {
	uint64_t before;
	struct sp_ilink link;
	uint8_t after;
};

enum { N = 64 };

static struct elem elems[N];

static struct sp_iarr arr(void)
{
	return (struct sp_iarr){ elems, sizeof(struct elem), offsetof(struct elem, link) };
}

/* The list's indices in order, into out; returns how many (checks that
 * the back links mirror the forward ones). */
static size_t walk(const struct sp_ilist *l, uint32_t *out)
{
	struct sp_iarr a = arr();
	size_t n = 0;
	uint32_t prev = SP_ILIST_END;

	for (uint32_t i = sp_ilist_first(l); i != SP_ILIST_NONE; i = sp_ilist_next(&a, i)) {
		assert_true(n < N);
		assert_int_equal(elems[i].link.prev, prev);
		prev = i + 1;
		out[n++] = i;
	}
	assert_int_equal(l->last, n ? out[n - 1] + 1 : 0);
	return n;
}

static void expect(const struct sp_ilist *l, const uint32_t *want, size_t n)
{
	uint32_t got[N];

	assert_int_equal(walk(l, got), n);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(got[k], want[k]);
}

/* A zeroed element is unlinked; append keeps order; removal from the
 * front, the middle, the end and of the only element; removing an
 * unlinked element is a no-op; index 0 is an element like any other. */
static void test_order(void **state)
{
	struct sp_iarr a = arr();
	struct sp_ilist l;

	(void)state;
	memset(elems, 0, sizeof(elems));
	sp_ilist_init(&l);
	assert_true(sp_ilist_empty(&l));
	assert_int_equal(sp_ilist_first(&l), SP_ILIST_NONE);
	assert_false(sp_ilink_linked(&elems[0].link));
	sp_ilist_del(&l, &a, 0);                /* unlinked: nothing happens */
	assert_true(sp_ilist_empty(&l));

	for (uint32_t i = 0; i < 5; i++)
		sp_ilist_add_tail(&l, &a, i);
	expect(&l, (const uint32_t[]){ 0, 1, 2, 3, 4 }, 5);
	sp_ilist_del(&l, &a, 0);
	expect(&l, (const uint32_t[]){ 1, 2, 3, 4 }, 4);
	sp_ilist_del(&l, &a, 3);
	expect(&l, (const uint32_t[]){ 1, 2, 4 }, 3);
	sp_ilist_del(&l, &a, 4);
	expect(&l, (const uint32_t[]){ 1, 2 }, 2);
	assert_false(sp_ilink_linked(&elems[4].link));
	sp_ilist_del(&l, &a, 4);                /* twice: harmless */
	expect(&l, (const uint32_t[]){ 1, 2 }, 2);
	/* Moved to the tail, as a timer that is set again. */
	sp_ilist_del(&l, &a, 1);
	sp_ilist_add_tail(&l, &a, 1);
	expect(&l, (const uint32_t[]){ 2, 1 }, 2);
	sp_ilist_del(&l, &a, 1);
	sp_ilist_del(&l, &a, 2);
	assert_true(sp_ilist_empty(&l));
	assert_int_equal(l.last, 0);
	sp_ilist_add_tail(&l, &a, 0);
	expect(&l, (const uint32_t[]){ 0 }, 1);
	sp_ilist_del(&l, &a, 0);
	assert_true(sp_ilist_empty(&l));
	/* The neighbouring fields are never written. */
	for (uint32_t i = 0; i < N; i++) {
		assert_int_equal(elems[i].before, 0);
		assert_int_equal(elems[i].after, 0);
	}
}

/* Two lists over the same array (as hello and idle lists share the
 * connection table), against a model under random operations. */
static void test_two_lists_model(void **state)
{
	struct sp_iarr a = arr();
	struct sp_ilist l[2];
	int on[N];                              /* -1 or the list element i is on */
	uint32_t model[2][N];
	size_t mn[2] = { 0, 0 };

	(void)state;
	memset(elems, 0, sizeof(elems));
	sp_ilist_init(&l[0]);
	sp_ilist_init(&l[1]);
	for (int i = 0; i < N; i++)
		on[i] = -1;
	srand(7);
	for (int step = 0; step < 20000; step++) {
		uint32_t i = (uint32_t)(rand() % N);
		int which = rand() % 2;

		if (on[i] >= 0) {
			int w = on[i];
			size_t k = 0;

			sp_ilist_del(&l[w], &a, i);
			while (model[w][k] != i)
				k++;
			memmove(&model[w][k], &model[w][k + 1], (mn[w] - k - 1) * sizeof(uint32_t));
			mn[w]--;
			on[i] = -1;
		} else {
			sp_ilist_add_tail(&l[which], &a, i);
			model[which][mn[which]++] = i;
			on[i] = which;
		}
		if (step % 97 == 0) {
			expect(&l[0], model[0], mn[0]);
			expect(&l[1], model[1], mn[1]);
		}
	}
	expect(&l[0], model[0], mn[0]);
	expect(&l[1], model[1], mn[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_two_lists_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
