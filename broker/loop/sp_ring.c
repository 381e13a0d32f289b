/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_ring.c: io_uring setup with fallbacks, the provided-buffer ring, and
 * thin request helpers (so every SQE gets its user_data in one way).
 */
#include "sp_ring.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

int sp_ring_init(struct sp_ring *r, unsigned entries)
{
	/* DEFER_TASKRUN runs completion work only when we enter the kernel to
	 * wait, which suits a loop that submits and reaps once per iteration;
	 * COOP_TASKRUN is the next best (no IPIs); older kernels get neither. */
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int ret = -EINVAL;

	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p;

		memset(&p, 0, sizeof(p));
		/* Multishot receives on many connections can complete in bursts;
		 * a roomy CQ avoids the kernel's overflow list. */
		p.flags = tries[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = entries * 4;
		ret = io_uring_queue_init_params(entries, &r->ring, &p);
		if (ret == 0) {
			r->setup_flags = tries[i];
			return 0;
		}
		if (ret != -EINVAL)
			return ret;
	}
	return ret;
}

void sp_ring_exit(struct sp_ring *r)
{
	io_uring_queue_exit(&r->ring);
}

struct io_uring_sqe *sp_ring_sqe(struct sp_ring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

	if (!sqe) {
		/* SQ full: hand the batch to the kernel now and take a fresh slot. */
		if (io_uring_submit(&r->ring) < 0)
			return NULL;
		r->pending = 0;
		sqe = io_uring_get_sqe(&r->ring);
	}
	if (sqe)
		r->pending++;
	return sqe;
}

int sp_ring_submit_wait(struct sp_ring *r, unsigned wait_nr)
{
	int ret = io_uring_submit_and_wait(&r->ring, wait_nr);

	r->pending = 0;
	if (ret == -EINTR || ret == -ETIME || ret == -EAGAIN || ret == -EBUSY)
		return 0;
	return ret < 0 ? ret : 0;
}

int sp_bufring_init(struct sp_bufring *b, struct sp_ring *r, uint16_t bgid, uint32_t count,
		    uint32_t size)
{
	struct io_uring_buf_reg reg;
	int ret;

	memset(b, 0, sizeof(*b));
	if (count == 0 || count > 32768 || (count & (count - 1)) || size == 0)
		return -EINVAL;
	b->count = count;
	b->size = size;
	b->bgid = bgid;
	b->mask = (uint16_t)(count - 1);
	b->ring_bytes = (size_t)count * sizeof(struct io_uring_buf);
	b->mem_bytes = (size_t)count * size;

	/* The ring must be page aligned: mmap gives that. */
	void *ringmem = mmap(NULL, b->ring_bytes, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ringmem == MAP_FAILED)
		return -errno;
	b->br = ringmem;
	void *mem = mmap(NULL, b->mem_bytes, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		ret = -errno;
		goto err_ring;
	}
	b->mem = mem;

	io_uring_buf_ring_init(b->br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)(uintptr_t)b->br;
	reg.ring_entries = count;
	reg.bgid = bgid;
	ret = io_uring_register_buf_ring(&r->ring, &reg, 0);
	if (ret)
		goto err_mem;

	for (uint32_t i = 0; i < count; i++)
		io_uring_buf_ring_add(b->br, sp_bufring_addr(b, (uint16_t)i), size, (uint16_t)i,
				      b->mask, (int)i);
	io_uring_buf_ring_advance(b->br, (int)count);
	return 0;

err_mem:
	munmap(b->mem, b->mem_bytes);
err_ring:
	munmap(b->br, b->ring_bytes);
	memset(b, 0, sizeof(*b));
	return ret;
}

void sp_bufring_exit(struct sp_bufring *b, struct sp_ring *r)
{
	if (!b->br)
		return;
	io_uring_unregister_buf_ring(&r->ring, b->bgid);
	munmap(b->mem, b->mem_bytes);
	munmap(b->br, b->ring_bytes);
	memset(b, 0, sizeof(*b));
}

size_t sp_bufring_resident(const struct sp_bufring *b)
{
	enum { CHUNK = 4096 };
	unsigned char vec[CHUNK];
	size_t page = (size_t)sysconf(_SC_PAGESIZE), pages, done = 0, n = 0;

	if (!b->mem || page == 0)
		return 0;
	pages = (b->mem_bytes + page - 1) / page;
	/* In slices: a fixed vector on the stack for any pool size. */
	while (done < pages) {
		size_t k = pages - done < CHUNK ? pages - done : CHUNK;

		if (mincore(b->mem + done * page, k * page, vec) != 0)
			return 0;
		for (size_t i = 0; i < k; i++)
			n += vec[i] & 1;
		done += k;
	}
	return n * page;
}

void sp_bufring_put(struct sp_bufring *b, uint16_t bid)
{
	io_uring_buf_ring_add(b->br, sp_bufring_addr(b, bid), b->size, bid, b->mask, b->staged);
	b->staged++;
}

void sp_bufring_flush(struct sp_bufring *b)
{
	if (b->staged) {
		io_uring_buf_ring_advance(b->br, b->staged);
		b->staged = 0;
	}
}

int sp_ring_accept(struct sp_ring *r, int listen_fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = sp_ring_sqe(r);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud);
	return 0;
}

int sp_ring_recv(struct sp_ring *r, int fd, uint16_t bgid, uint64_t ud)
{
	struct io_uring_sqe *sqe = sp_ring_sqe(r);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = bgid;
	io_uring_sqe_set_data64(sqe, ud);
	return 0;
}

int sp_ring_send(struct sp_ring *r, int fd, const void *buf, size_t len, uint64_t ud)
{
	struct io_uring_sqe *sqe = sp_ring_sqe(r);

	if (!sqe)
		return -EBUSY;
	/* MSG_NOSIGNAL: a peer that went away must give -EPIPE, not SIGPIPE. */
	io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, ud);
	return 0;
}

int sp_ring_shutdown_wr(struct sp_ring *r, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = sp_ring_sqe(r);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_shutdown(sqe, fd, SHUT_WR);
	io_uring_sqe_set_data64(sqe, ud);
	return 0;
}

int sp_ring_cancel_fd(struct sp_ring *r, int fd, uint64_t ud)
{
	struct io_uring_sqe *sqe = sp_ring_sqe(r);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, ud);
	return 0;
}

int sp_ring_timeout(struct sp_ring *r, struct __kernel_timespec *ts, uint64_t ud)
{
	struct io_uring_sqe *sqe = sp_ring_sqe(r);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_timeout(sqe, ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud);
	return 0;
}

int sp_ring_read(struct sp_ring *r, int fd, void *buf, unsigned len, uint64_t ud)
{
	struct io_uring_sqe *sqe = sp_ring_sqe(r);

	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, fd, buf, len, 0);
	io_uring_sqe_set_data64(sqe, ud);
	return 0;
}
