/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_inbox.c: the cross-shard inbox (sp_inbox.h).
 */
#include "sp_inbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

int sp_inbox_init(struct sp_inbox *ib)
{
	atomic_init(&ib->head, NULL);
	atomic_init(&ib->posted, 0);
	ib->ring_fd = -1;
	ib->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return ib->event_fd < 0 ? -errno : 0;
}

void sp_inbox_destroy(struct sp_inbox *ib)
{
	struct sp_inbox_msg *m = sp_inbox_take(ib), *next;

	for (; m; m = next) {
		next = m->next;
		sp_inbox_msg_free(m);
	}
	if (ib->event_fd >= 0)
		close(ib->event_fd);
	ib->event_fd = -1;
}

void sp_inbox_set_ring(struct sp_inbox *ib, int ring_fd)
{
	ib->ring_fd = ring_fd;
}

struct sp_inbox_msg *sp_inbox_msg_new(uint16_t kind, size_t len)
{
	struct sp_inbox_msg *m;

	if (len > UINT32_MAX)
		return NULL;
	m = malloc(sizeof(*m) + len);
	if (!m)
		return NULL;
	memset(m, 0, sizeof(*m));
	m->kind = kind;
	m->len = (uint32_t)len;
	return m;
}

void sp_inbox_msg_free(struct sp_inbox_msg *m)
{
	/* A body is ciphertext the broker cannot read, but its bytes still
	 * leave no copy behind in freed memory. */
	if (m)
		memset(m->data, 0, m->len);
	free(m);
}

bool sp_inbox_push(struct sp_inbox *ib, struct sp_inbox_msg *m)
{
	struct sp_inbox_msg *old = atomic_load_explicit(&ib->head, memory_order_relaxed);

	/* release: the consumer that takes m sees everything written into it. */
	do
		m->next = old;
	while (!atomic_compare_exchange_weak_explicit(&ib->head, &old, m, memory_order_release,
						      memory_order_relaxed));
	atomic_fetch_add_explicit(&ib->posted, 1, memory_order_relaxed);
	return old == NULL;
}

static int wake_eventfd(struct sp_inbox *ib)
{
	uint64_t one = 1;

	/* EAGAIN: the counter is at its maximum, the consumer is awake anyway. */
	if (write(ib->event_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

int sp_inbox_post(struct sp_inbox *ib, struct sp_inbox_msg *m)
{
	if (!sp_inbox_push(ib, m))
		return 0;
	return wake_eventfd(ib);
}

int sp_inbox_post_ring(struct sp_inbox *ib, struct sp_inbox_msg *m, struct sp_ring *from,
		       uint64_t wake_ud, uint64_t src_ud)
{
	struct io_uring_sqe *sqe;

	if (!sp_inbox_push(ib, m))
		return 0;
	sqe = ib->ring_fd >= 0 && from ? sp_ring_sqe(from) : NULL;
	if (!sqe) {
		(void)wake_eventfd(ib); /* the consumer's tick drains it at worst */
		return 0;
	}
	io_uring_prep_msg_ring(sqe, ib->ring_fd, 0, wake_ud, 0);
	io_uring_sqe_set_data64(sqe, src_ud);
	return 0;
}

struct sp_inbox_msg *sp_inbox_take(struct sp_inbox *ib)
{
	struct sp_inbox_msg *m = atomic_exchange_explicit(&ib->head, NULL, memory_order_acquire);
	struct sp_inbox_msg *prev = NULL, *next;

	/* Newest first on the stack: reversed, oldest first. */
	for (; m; m = next) {
		next = m->next;
		m->next = prev;
		prev = m;
	}
	return prev;
}
