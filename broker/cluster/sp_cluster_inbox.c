/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_cluster_inbox.c: the lock-free hand-off list (sp_cluster_inbox.h).
 */
#include "sp_cluster_inbox.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

int sp_cluster_inbox_init(struct sp_cluster_inbox *in, uint64_t max)
{
	in->head = NULL;
	in->count = 0;
	in->refused = 0;
	in->max = max ? max : 1;
	/* Non-blocking: a producer never waits on the loop. */
	in->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return in->efd < 0 ? -errno : 0;
}

void sp_cluster_inbox_destroy(struct sp_cluster_inbox *in)
{
	struct sp_cluster_item *it = sp_cluster_inbox_take(in);

	while (it) {
		struct sp_cluster_item *next = it->next;

		free(it);
		it = next;
	}
	if (in->efd >= 0)
		close(in->efd);
	in->efd = -1;
}

int sp_cluster_inbox_push(struct sp_cluster_inbox *in, struct sp_cluster_item *it)
{
	struct sp_cluster_item *old = __atomic_load_n(&in->head, __ATOMIC_RELAXED);
	uint64_t one = 1;

	/* Counted first: the bound holds however many producers race. */
	if (__atomic_add_fetch(&in->count, 1, __ATOMIC_RELAXED) > in->max) {
		__atomic_sub_fetch(&in->count, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&in->refused, 1, __ATOMIC_RELAXED);
		return -ENOBUFS;
	}
	do
		it->next = old;
	while (!__atomic_compare_exchange_n(&in->head, &old, it, true, __ATOMIC_RELEASE,
					    __ATOMIC_RELAXED));
	/* The first item after the consumer's take wakes it; the others find
	 * it awake (or about to be). A full counter (2^64 - 2 wake-ups
	 * unread) cannot happen: the loop reads it each time it wakes. */
	if (!old && write(in->efd, &one, sizeof(one)) < 0)
		return 0;       /* EAGAIN: the counter is non-zero, the loop will wake */
	return 0;
}

struct sp_cluster_item *sp_cluster_inbox_take(struct sp_cluster_inbox *in)
{
	struct sp_cluster_item *it = __atomic_exchange_n(&in->head, NULL, __ATOMIC_ACQUIRE);
	struct sp_cluster_item *prev = NULL;
	uint64_t n = 0;

	/* Newest first as pushed: reversed, oldest first. */
	while (it) {
		struct sp_cluster_item *next = it->next;

		it->next = prev;
		prev = it;
		it = next;
		n++;
	}
	if (n)
		__atomic_sub_fetch(&in->count, n, __ATOMIC_RELAXED);
	return prev;
}
