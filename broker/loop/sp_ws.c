/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_ws.c: the WebSocket transport of a connection (sp_ws.h), on wslay's
 * event API with no buffering: wslay parses frames, unmasks, answers pings
 * and runs the close handshake; we hand it the receive buffer through its
 * recv callback and take its output through its send callback, so it never
 * touches a socket.
 */
#include "sp_ws.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <wslay/wslay.h>

#include "sp_lifecycle.h"
#include "sp_shard.h"
#include "sp_ws_upgrade.h"

enum ws_state {
	WS_UPGRADE = 0,                 /* reading the HTTP request */
	WS_OPEN,                        /* 101 sent: frames */
	WS_REFUSED,                     /* an HTTP error sent: input discarded */
};

enum {
	FEED_MAX = 4096,                /* payload copied per session call */
	OUT_KEEP = 16384,               /* output buffer capacity kept between sends */
};

struct sp_ws {
	uint8_t state;                  /* enum ws_state */
	bool close_queued;              /* a close frame is in wslay's queue or sent */
	bool close_counted;             /* ... and counted (sealpost_ws_closes_sent_total) */
	bool in_data;                   /* the frame being read belongs to a binary message */
	enum sp_close_reason why;       /* a WebSocket-level end decided in a callback */
	enum sp_close_reason r;         /* the session's verdict during one receive */
	uint64_t msg_len;               /* the incoming message so far (all its fragments) */
	wslay_event_context_ptr ev;     /* WS_OPEN only */
	uint8_t *req;                   /* WS_UPGRADE only: ws-upgrade-max bytes */
	uint32_t req_len;
	uint8_t *out;                   /* bytes to send: the HTTP answer, then frames */
	size_t out_len, out_off, out_cap;
	/* Set for one sp_ws_rx: the bytes wslay's recv callback reads. */
	const uint8_t *in;
	size_t in_len;
	struct sp_shard *sh;
	struct sp_conn *c;
};

/* --- output ------------------------------------------------------------------- */

static int out_put(struct sp_ws *w, const void *p, size_t n)
{
	if (w->out_len + n > w->out_cap) {
		size_t cap = w->out_cap ? w->out_cap : 256;
		uint8_t *o;

		while (cap < w->out_len + n)
			cap *= 2;
		o = realloc(w->out, cap);
		if (!o)
			return -ENOMEM;
		w->out = o;
		w->out_cap = cap;
	}
	memcpy(w->out + w->out_len, p, n);
	w->out_len += n;
	return 0;
}

/* --- wslay's callbacks ------------------------------------------------------------ */

static ssize_t on_recv(wslay_event_context_ptr ev, uint8_t *buf, size_t len, int flags,
		       void *user)
{
	struct sp_ws *w = user;
	size_t n = len < w->in_len ? len : w->in_len;

	(void)flags;
	if (n == 0) {
		wslay_event_set_error(ev, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	memcpy(buf, w->in, n);
	w->in += n;
	w->in_len -= n;
	return (ssize_t)n;
}

static ssize_t on_send(wslay_event_context_ptr ev, const uint8_t *data, size_t len, int flags,
		       void *user)
{
	(void)flags;
	if (out_put(user, data, len)) {
		wslay_event_set_error(ev, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

/* Servers do not mask; wslay wants the callback anyway. */
static int on_genmask(wslay_event_context_ptr ev, uint8_t *buf, size_t len, void *user)
{
	(void)ev;
	(void)user;
	randombytes_buf(buf, len);
	return 0;
}

/* Ends the WebSocket with a close frame of ours: nothing more is read. */
static void ws_fail(struct sp_ws *w, enum sp_close_reason why, uint16_t code)
{
	if (w->why)
		return;
	w->why = why;
	wslay_event_queue_close(w->ev, code, NULL, 0);
	w->close_queued = true;
	wslay_event_shutdown_read(w->ev);
}

static void on_frame_start(wslay_event_context_ptr ev, const struct wslay_event_on_frame_recv_start_arg *a,
			   void *user)
{
	struct sp_ws *w = user;

	(void)ev;
	w->in_data = false;
	if (w->why)
		return;
	switch (a->opcode) {
	case WSLAY_TEXT_FRAME:
		/* The protocol is binary: a text message is a client bug. */
		ws_fail(w, SP_CLOSE_WS_TEXT, WSLAY_CODE_UNSUPPORTED_DATA);
		return;
	case WSLAY_BINARY_FRAME:
		w->msg_len = 0;
		break;
	case WSLAY_CONTINUATION_FRAME:
		break;
	default:
		return;                 /* control frames: wslay answers them */
	}
	/* All fragments of one message count; wslay (without buffering)
	 * bounds single frames only. */
	w->msg_len += a->payload_length;
	if (w->msg_len > w->sh->cfg->ws_max_message) {
		ws_fail(w, SP_CLOSE_WS_TOO_BIG, WSLAY_CODE_MESSAGE_TOO_BIG);
		return;
	}
	w->in_data = true;
}

/* Payload of a binary message, unmasked, in wslay's buffer: copied out in
 * pieces (the session decrypts in place; wslay's buffer is not ours). */
static void on_frame_chunk(wslay_event_context_ptr ev, const struct wslay_event_on_frame_recv_chunk_arg *a,
			   void *user)
{
	struct sp_ws *w = user;
	uint8_t piece[FEED_MAX];
	size_t off = 0;

	if (!w->in_data || w->why || w->r)
		return;
	while (off < a->data_length) {
		size_t n = a->data_length - off < sizeof(piece) ? a->data_length - off : sizeof(piece);

		memcpy(piece, a->data + off, n);
		w->r = sp_shard_rx(w->sh, w->c, piece, n);
		off += n;
		if (w->r) {
			wslay_event_shutdown_read(ev);
			break;
		}
	}
	sodium_memzero(piece, sizeof(piece));
}

static const struct wslay_event_callbacks callbacks = {
	.recv_callback = on_recv,
	.send_callback = on_send,
	.genmask_callback = on_genmask,
	.on_frame_recv_start_callback = on_frame_start,
	.on_frame_recv_chunk_callback = on_frame_chunk,
};

/* --- receive ---------------------------------------------------------------------- */

static enum sp_close_reason frames(struct sp_shard *sh, struct sp_conn *c, struct sp_ws *w,
				   const uint8_t *data, size_t len)
{
	int rc;

	if (len == 0)
		return SP_CLOSE_NONE;
	w->in = data;
	w->in_len = len;
	w->sh = sh;
	w->c = c;
	w->r = SP_CLOSE_NONE;
	/* Any frame is activity (a client may only ping). */
	sp_timers_rx_message(sh, c);
	rc = wslay_event_recv(w->ev);
	w->in = NULL;
	w->in_len = 0;
	sp_conn_mark(sh, c);            /* a pong or a close to send, output to frame */
	if (w->r)
		return w->r;
	if (rc == WSLAY_ERR_NOMEM)
		return SP_CLOSE_NOMEM;
	if (!wslay_event_get_read_enabled(w->ev)) {
		/* wslay queued a close itself (protocol error, a frame above the
		 * bound, bad UTF-8 in a close) or answered the peer's. */
		enum sp_close_reason why = w->why ? w->why :
			wslay_event_get_close_received(w->ev) ? SP_CLOSE_WS_CLOSED : SP_CLOSE_WS_PROTOCOL;

		w->close_queued = true;
		sp_life_end_drain(sh, c, why);
	}
	return SP_CLOSE_NONE;
}

static enum sp_metrics_ws_upgrade upgrade_metric(enum sp_ws_upgrade_result r)
{
	switch (r) {
	case SP_WS_UP_OK: return SP_METRICS_WS_UPGRADE_OK;
	case SP_WS_UP_NOT_FOUND: return SP_METRICS_WS_UPGRADE_NOT_FOUND;
	case SP_WS_UP_BAD_VERSION: return SP_METRICS_WS_UPGRADE_BAD_VERSION;
	case SP_WS_UP_BAD_PROTOCOL: return SP_METRICS_WS_UPGRADE_BAD_PROTOCOL;
	case SP_WS_UP_FORBIDDEN_ORIGIN: return SP_METRICS_WS_UPGRADE_FORBIDDEN_ORIGIN;
	case SP_WS_UP_TOO_LARGE: return SP_METRICS_WS_UPGRADE_TOO_LARGE;
	default: return SP_METRICS_WS_UPGRADE_BAD_REQUEST;
	}
}

static int open_ws(struct sp_shard *sh, struct sp_ws *w)
{
	if (wslay_event_context_server_init(&w->ev, &callbacks, w))
		return -ENOMEM;
	wslay_event_config_set_no_buffering(w->ev, 1);
	/* One frame above the bound is refused from its header (1009). */
	wslay_event_config_set_max_recv_msg_length(w->ev, sh->cfg->ws_max_message);
	w->state = WS_OPEN;
	return 0;
}

static enum sp_close_reason upgrade(struct sp_shard *sh, struct sp_conn *c, struct sp_ws *w,
				    const uint8_t *data, size_t len)
{
	size_t max = sh->cfg->ws_upgrade_max, take = len < max - w->req_len ? len : max - w->req_len;
	struct sp_ws_upgrade up = { 0 };
	enum sp_ws_upgrade_result res;
	char answer[SP_WS_RESPONSE_MAX];
	enum sp_close_reason r;
	size_t n;

	memcpy(w->req + w->req_len, data, take);
	w->req_len += (uint32_t)take;
	res = sp_ws_upgrade_parse(w->req, w->req_len, max, sh->cfg->ws_allowed_origins, &up);
	if (res == SP_WS_UP_INCOMPLETE)
		return SP_CLOSE_NONE;
	sp_metrics_ws_upgrade(sh->metrics, upgrade_metric(res));
	n = sp_ws_upgrade_response(res, &up, answer, sizeof(answer));
	if (out_put(w, answer, n))
		return SP_CLOSE_NOMEM;
	sp_conn_mark(sh, c);
	if (res != SP_WS_UP_OK) {
		w->state = WS_REFUSED;
		sp_life_end_drain(sh, c, SP_CLOSE_WS_UPGRADE);
		return SP_CLOSE_NONE;
	}
	if (open_ws(sh, w))
		return SP_CLOSE_NOMEM;
	/* Frames the client sent right behind its request. */
	r = frames(sh, c, w, w->req + up.consumed, w->req_len - up.consumed);
	if (r == SP_CLOSE_NONE && c->s.state != SP_SESSION_CLOSING)
		r = frames(sh, c, w, data + take, len - take);
	free(w->req);
	w->req = NULL;
	w->req_len = 0;
	return r;
}

int sp_ws_attach(struct sp_shard *sh, struct sp_conn *c)
{
	struct sp_ws *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->req = malloc(sh->cfg->ws_upgrade_max);
	if (!w->req) {
		free(w);
		return -ENOMEM;
	}
	c->ws.t = w;
	return 0;
}

enum sp_close_reason sp_ws_rx(struct sp_shard *sh, struct sp_conn *c, const uint8_t *data,
			      size_t len)
{
	struct sp_ws *w = c->ws.t;

	/* Ending (a close frame or an HTTP refusal on its way): as for TCP,
	 * input is discarded; the peer's FIN or the grace ends it. */
	if (c->s.state == SP_SESSION_CLOSING || c->s.state == SP_SESSION_DEAD)
		return SP_CLOSE_NONE;
	switch (w->state) {
	case WS_UPGRADE: return upgrade(sh, c, w, data, len);
	case WS_OPEN: return frames(sh, c, w, data, len);
	default: return SP_CLOSE_NONE;
	}
}

/* --- send ------------------------------------------------------------------------- */

static uint16_t close_code(enum sp_close_reason r)
{
	return r == SP_CLOSE_SHUTDOWN ? WSLAY_CODE_GOING_AWAY : WSLAY_CODE_NORMAL_CLOSURE;
}

/* The output buffer is empty: frame what comes next. */
static void refill(struct sp_shard *sh, struct sp_conn *c, struct sp_ws *w)
{
	const uint8_t *p;
	size_t n;

	if (w->state != WS_OPEN)
		return;
	/* One piece of the session's output per message: the rest stays in
	 * the session's queue, where sendq-max counts it. */
	if (!w->close_queued && sp_session_tx_peek(&c->s, &p, &n)) {
		struct wslay_event_msg m = { .opcode = WSLAY_BINARY_FRAME, .msg = p, .msg_length = n };

		if (wslay_event_queue_msg(w->ev, &m) == 0)
			sp_session_tx_sent(&c->s, n);
	}
	if (wslay_event_send(w->ev) == WSLAY_ERR_CALLBACK_FAILURE)
		sp_life_end_later(sh, c, SP_CLOSE_NOMEM);
	/* The close only behind the last data: wslay sends control frames
	 * ahead of queued messages, and nothing after a close. */
	if (c->s.state == SP_SESSION_CLOSING && !w->close_queued &&
	    wslay_event_get_queued_msg_count(w->ev) == 0 && !sp_session_tx_peek(&c->s, &p, &n)) {
		wslay_event_queue_close(w->ev, close_code(c->life.close_reason), NULL, 0);
		w->close_queued = true;
		if (wslay_event_send(w->ev) == WSLAY_ERR_CALLBACK_FAILURE)
			sp_life_end_later(sh, c, SP_CLOSE_NOMEM);
	}
	if (!w->close_counted && wslay_event_get_close_sent(w->ev)) {
		w->close_counted = true;
		sp_metrics_ws_close_sent(sh->metrics);
	}
}

bool sp_ws_tx_peek(struct sp_shard *sh, struct sp_conn *c, const uint8_t **p, size_t *len)
{
	struct sp_ws *w = c->ws.t;

	if (w->out_off == w->out_len) {
		w->out_off = w->out_len = 0;
		/* An idle connection keeps no large buffer from its last burst. */
		if (w->out_cap > OUT_KEEP) {
			free(w->out);
			w->out = NULL;
			w->out_cap = 0;
		}
		refill(sh, c, w);
	}
	if (w->out_off == w->out_len)
		return false;
	*p = w->out + w->out_off;
	*len = w->out_len - w->out_off;
	return true;
}

void sp_ws_tx_sent(struct sp_conn *c, size_t n)
{
	struct sp_ws *w = c->ws.t;

	w->out_off += n;
	if (w->out_off > w->out_len)
		w->out_off = w->out_len;
}

void sp_ws_release(struct sp_conn *c)
{
	struct sp_ws *w = c->ws.t;

	if (!w)
		return;
	if (w->ev)
		wslay_event_context_free(w->ev);
	free(w->req);
	free(w->out);
	free(w);
	c->ws.t = NULL;
}
