/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_conn_io.c: a connection's requests on the ring and its socket
 * (sp_conn_io.h).
 */
#include "sp_conn_io.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sp_ws.h"

/* The next bytes for the socket: the session's own, or (WebSocket) the
 * transport's frames around them. */
static bool tx_peek(struct sp_shard *sh, struct sp_conn *c, const uint8_t **p, size_t *len)
{
	if (c->ws.t)
		return sp_ws_tx_peek(sh, c, p, len);
	return sp_session_tx_peek(&c->s, p, len);
}

void sp_io_open(struct sp_conn *c, int fd)
{
	c->io = (struct sp_conn_io){ .fd = fd };
}

int sp_io_arm_recv(struct sp_shard *sh, struct sp_conn *c)
{
	int ret = sp_ring_recv(&sh->ring, c->io.fd, sh->bufs.bgid,
			       sp_ud_pack(SP_OP_RECV, c->tab.slot, c->tab.gen));
	if (ret == 0)
		c->io.recv_armed = true;
	return ret;
}

void sp_io_recv_done(struct sp_conn *c, bool more)
{
	if (!more)
		c->io.recv_armed = false;
}

int sp_io_start_send(struct sp_shard *sh, struct sp_conn *c)
{
	const uint8_t *p;
	size_t len;
	int ret;

	if (c->io.send_inflight || !tx_peek(sh, c, &p, &len))
		return 0;
	ret = sp_ring_send(&sh->ring, c->io.fd, p, len, sp_ud_pack(SP_OP_SEND, c->tab.slot, c->tab.gen));
	if (ret)
		return ret;
	c->io.send_inflight = true;
	c->io.send_len = (uint32_t)len;
	return 0;
}

void sp_io_send_done(struct sp_shard *sh, struct sp_conn *c, int res)
{
	(void)sh;       /* the chunks go back to the session's pool */
	c->io.send_inflight = false;
	/* A short send: the rest goes in the next one (at the flush). */
	if (res >= 0 && c->s.state != SP_SESSION_DEAD) {
		if (c->ws.t)
			sp_ws_tx_sent(c, (size_t)res);
		else
			sp_session_tx_sent(&c->s, (size_t)res);
	}
}

void sp_io_maybe_shutdown(struct sp_shard *sh, struct sp_conn *c)
{
	const uint8_t *p;
	size_t len;

	if (c->s.state != SP_SESSION_CLOSING || c->io.shut_wr || c->io.shutdown_inflight ||
	    c->io.send_inflight || tx_peek(sh, c, &p, &len))
		return;
	if (sp_ring_shutdown_wr(&sh->ring, c->io.fd, sp_ud_pack(SP_OP_SHUTDOWN, c->tab.slot, c->tab.gen)) == 0)
		c->io.shutdown_inflight = true;
}

void sp_io_shutdown_done(struct sp_conn *c)
{
	c->io.shutdown_inflight = false;
	c->io.shut_wr = true;
}

int sp_io_cancel_recv(struct sp_shard *sh, struct sp_conn *c)
{
	struct io_uring_sqe *sqe;

	if (!c->io.recv_armed)
		return 0;
	if (!(sqe = sp_ring_sqe(&sh->ring)))
		return -EBUSY;
	io_uring_prep_cancel64(sqe, sp_ud_pack(SP_OP_RECV, c->tab.slot, c->tab.gen), 0);
	io_uring_sqe_set_data64(sqe, sp_ud_pack(SP_OP_CANCEL, c->tab.slot, c->tab.gen));
	return 0;
}

int sp_io_forget(struct sp_conn *c)
{
	int fd = c->io.fd;

	c->io.fd = -1;
	return fd;
}

void sp_io_cancel(struct sp_shard *sh, struct sp_conn *c)
{
	if (!sp_io_idle(c))
		sp_ring_cancel_fd(&sh->ring, c->io.fd, sp_ud_pack(SP_OP_CANCEL, c->tab.slot, c->tab.gen));
}

bool sp_io_idle(const struct sp_conn *c)
{
	return !c->io.recv_armed && !c->io.send_inflight && !c->io.shutdown_inflight;
}

void sp_io_abort_on_close(struct sp_conn *c)
{
	c->io.abort_close = true;
}

void sp_io_close(struct sp_shard *sh, struct sp_conn *c)
{
	if (c->io.abort_close) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(c->io.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	(void)sh;
	if (c->io.fd >= 0)      /* -1: handed to another shard (sp_io_forget) */
		close(c->io.fd);
	sp_session_release(&c->s);     /* FREE */
	sp_ws_release(c);
	c->io = (struct sp_conn_io){ .fd = -1 };
}
