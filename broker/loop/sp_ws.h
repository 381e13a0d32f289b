/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_ws.h: the WebSocket transport of a connection (docs/PROTOCOL.md 13).
 *
 * A connection accepted on the --ws-listen socket carries the same byte
 * stream as a TCP one (preamble, length-prefixed Noise messages) inside
 * binary WebSocket messages; this module sits between the socket's bytes
 * and the session:
 *
 *   receive: the HTTP upgrade request (sp_ws_upgrade.h) until its end, then
 *            WebSocket frames through wslay (framing only: wslay does no
 *            I/O, it reads the receive buffer we hand it); the payload of
 *            binary messages goes to the session as it arrives, so a Noise
 *            message may span messages and a message may hold many
 *            (a byte stream); text messages, oversized messages and
 *            protocol errors end the connection with a close frame
 *   send:    the HTTP answer, then each piece of the session's output as
 *            one binary message, control frames (pongs, the close) between
 *            them; one piece in the transport at a time, so the session's
 *            queue keeps counting toward sendq-max as for TCP
 *   end:     a connection whose session drained (GoAway sent) gets a close
 *            frame (1000, 1001 at shutdown) before SHUT_WR
 *
 * Memory: the upgrade request buffer (ws-upgrade-max) until the upgrade,
 * then wslay's context (its 4 KiB input and 4 KiB output buffers, control
 * frames: about 8.5 KiB per connection, against ~2.6 KB for an idle TCP
 * one) and the output buffer (one session chunk wrapped, or the HTTP
 * answer; a capacity above 16 KiB is let go once sent). Freed at close.
 *
 * Ownership: the struct sp_ws is c->ws.t, written only by this file.
 * Errors: 0 or a negative errno; receive returns a close reason.
 */
#ifndef SP_WS_H
#define SP_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_shard_types.h"

/* c (just opened on an accepted ws socket) becomes a WebSocket connection
 * waiting for its upgrade request. 0 or -ENOMEM. */
int sp_ws_attach(struct sp_shard *sh, struct sp_conn *c);

/*
 * One receive of len bytes on a ws connection (data: borrowed for the
 * call; not written). Runs the upgrade, then the frames, feeding binary
 * payload to the session (sp_shard_rx). Returns the session's close reason
 * (the caller ends c as for TCP input), or SP_CLOSE_NONE; a WebSocket-level
 * end (refused upgrade, close frame) is begun here (sp_life_end_drain).
 */
enum sp_close_reason sp_ws_rx(struct sp_shard *sh, struct sp_conn *c, const uint8_t *data,
			      size_t len);

/*
 * The next bytes to send (*p, *len), contiguous; false if none. Takes the
 * next piece of the session's output into a binary message when the
 * transport's own buffer is empty, and queues the close frame once a
 * closing session has drained. *p is borrowed until sp_ws_tx_sent.
 */
bool sp_ws_tx_peek(struct sp_shard *sh, struct sp_conn *c, const uint8_t **p, size_t *len);

/* n bytes of the peeked range went out. */
void sp_ws_tx_sent(struct sp_conn *c, size_t n);

/* Frees c's WebSocket state (at close); c->ws.t is NULL afterwards. */
void sp_ws_release(struct sp_conn *c);

#endif
