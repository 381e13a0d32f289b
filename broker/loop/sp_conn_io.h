/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_conn_io.h: a connection's requests on the ring (receive, send,
 * shutdown, cancel) and its socket, and the in-flight flags that keep its
 * slot from being reused while the kernel still holds a request of it.
 *
 * Writes, of a connection: its I/O group c->io (fd at open and close,
 * recv_armed, send_inflight, send_len, shutdown_inflight, shut_wr,
 * abort_close).
 * Errors: 0 or a negative errno (-EBUSY: no submission slot).
 */
#ifndef SP_CONN_IO_H
#define SP_CONN_IO_H

#include <stdbool.h>

#include "sp_shard_types.h"

/* A fresh connection's I/O group on fd (-1: no socket), nothing in flight. */
void sp_io_open(struct sp_conn *c, int fd);

/* The multishot receive (buffer select from the shard's buffer ring). */
int sp_io_arm_recv(struct sp_shard *sh, struct sp_conn *c);

/* A receive completion: more is IORING_CQE_F_MORE (still armed). */
void sp_io_recv_done(struct sp_conn *c, bool more);

/* Starts one send of c's finished output unless one is in flight or there
 * is none. The bytes stay pinned in c's tx chunks until sp_io_send_done. */
int sp_io_start_send(struct sp_shard *sh, struct sp_conn *c);

/* The send completed (res: its result); sent bytes go back to the pool. */
void sp_io_send_done(struct sp_shard *sh, struct sp_conn *c, int res);

/* CLOSING with everything sent: half-close so the peer sees the GoAway and
 * EOF (once; a failed submission is tried again at the next flush). */
void sp_io_maybe_shutdown(struct sp_shard *sh, struct sp_conn *c);

void sp_io_shutdown_done(struct sp_conn *c);

/* Cancels every request of c still in flight (it has been torn down). */
void sp_io_cancel(struct sp_shard *sh, struct sp_conn *c);

/* No request of c is in flight: its slot may be freed. */
bool sp_io_idle(const struct sp_conn *c);

/* Close with RST: drop what the kernel still holds for the peer. */
void sp_io_abort_on_close(struct sp_conn *c);

/* Closes c's socket (RST if sp_io_abort_on_close) and releases its output. */
void sp_io_close(struct sp_shard *sh, struct sp_conn *c);

/* Cancels c's multishot recv only (a send in flight goes on); its last
 * completion comes without IORING_CQE_F_MORE. 0 or -EBUSY (no SQE). */
int sp_io_cancel_recv(struct sp_shard *sh, struct sp_conn *c);

/* c's socket is handed to another shard: returned, and no longer c's
 * (closing c leaves it open). */
int sp_io_forget(struct sp_conn *c);

#endif
