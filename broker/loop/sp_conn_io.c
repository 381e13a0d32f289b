/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_conn_io.c: a connection's requests on the ring and its socket
 * (sp_conn_io.h).
 */
#include "sp_conn_io.h"

#include <sys/socket.h>
#include <unistd.h>

int sp_io_arm_recv(struct sp_shard *sh, struct sp_conn *c)
{
	int ret = sp_ring_recv(&sh->ring, c->fd, sh->bufs.bgid,
			       sp_ud_pack(SP_OP_RECV, c->slot, c->gen));
	if (ret == 0)
		c->recv_armed = true;
	return ret;
}

void sp_io_recv_done(struct sp_conn *c, bool more)
{
	if (!more)
		c->recv_armed = false;
}

int sp_io_start_send(struct sp_shard *sh, struct sp_conn *c)
{
	const uint8_t *p;
	size_t len;
	int ret;

	if (c->send_inflight || !sp_session_tx_peek(&c->s, &p, &len))
		return 0;
	ret = sp_ring_send(&sh->ring, c->fd, p, len, sp_ud_pack(SP_OP_SEND, c->slot, c->gen));
	if (ret)
		return ret;
	c->send_inflight = true;
	c->send_len = (uint32_t)len;
	return 0;
}

void sp_io_send_done(struct sp_shard *sh, struct sp_conn *c, int res)
{
	(void)sh;       /* the chunks go back to the session's pool */
	c->send_inflight = false;
	/* A short send: the rest goes in the next one (at the flush). */
	if (res >= 0 && c->s.state != SP_SESSION_DEAD)
		sp_session_tx_sent(&c->s, (size_t)res);
}

void sp_io_maybe_shutdown(struct sp_shard *sh, struct sp_conn *c)
{
	const uint8_t *p;
	size_t len;

	if (c->s.state != SP_SESSION_CLOSING || c->shut_wr || c->shutdown_inflight ||
	    c->send_inflight || sp_session_tx_peek(&c->s, &p, &len))
		return;
	if (sp_ring_shutdown_wr(&sh->ring, c->fd, sp_ud_pack(SP_OP_SHUTDOWN, c->slot, c->gen)) == 0)
		c->shutdown_inflight = true;
}

void sp_io_shutdown_done(struct sp_conn *c)
{
	c->shutdown_inflight = false;
	c->shut_wr = true;
}

void sp_io_cancel(struct sp_shard *sh, struct sp_conn *c)
{
	if (!sp_io_idle(c))
		sp_ring_cancel_fd(&sh->ring, c->fd, sp_ud_pack(SP_OP_CANCEL, c->slot, c->gen));
}

bool sp_io_idle(const struct sp_conn *c)
{
	return !c->recv_armed && !c->send_inflight && !c->shutdown_inflight;
}

void sp_io_abort_on_close(struct sp_conn *c)
{
	c->abort_close = true;
}

void sp_io_close(struct sp_shard *sh, struct sp_conn *c)
{
	if (c->abort_close) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	(void)sh;
	close(c->fd);
	sp_session_release(&c->s);     /* FREE */
	c->fd = -1;
}
