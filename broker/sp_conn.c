/*
 * sp_conn.c: per-connection state machine, rx reassembly and the tx queue.
 */
#include "sp_conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const reason_names[SP_CLOSE_REASON_COUNT] = {
	[SP_CLOSE_NONE] = "none",
	[SP_CLOSE_EOF] = "eof",
	[SP_CLOSE_IO] = "io_error",
	[SP_CLOSE_BAD_PREAMBLE] = "bad_preamble",
	[SP_CLOSE_BAD_LENGTH] = "bad_length",
	[SP_CLOSE_HANDSHAKE_FAILED] = "handshake_failed",
	[SP_CLOSE_HANDSHAKE_TIMEOUT] = "handshake_timeout",
	[SP_CLOSE_DECRYPT_FAILED] = "decrypt_failed",
	[SP_CLOSE_PROTOCOL] = "protocol",
	[SP_CLOSE_TAKEOVER] = "takeover",
	[SP_CLOSE_SHUTDOWN] = "shutdown",
	[SP_CLOSE_SLOW_CONSUMER] = "slow_consumer",
	[SP_CLOSE_IDLE] = "idle",
	[SP_CLOSE_NOMEM] = "out_of_memory",
	[SP_CLOSE_INTERNAL] = "internal",
};

const char *sp_close_reason_name(enum sp_close_reason r)
{
	if ((unsigned)r >= SP_CLOSE_REASON_COUNT)
		return "unknown";
	return reason_names[r];
}

/* --- tx chunk pool ---------------------------------------------------------- */

void sp_txpool_init(struct sp_txpool *p, uint32_t max_free)
{
	memset(p, 0, sizeof(*p));
	p->max_free = max_free;
}

void sp_txpool_destroy(struct sp_txpool *p)
{
	while (p->free) {
		struct sp_txchunk *ch = p->free;

		p->free = ch->next;
		free(ch);
		p->live--;
	}
	p->nfree = 0;
}

static struct sp_txchunk *chunk_get(struct sp_txpool *p)
{
	struct sp_txchunk *ch = p->free;

	if (ch) {
		p->free = ch->next;
		p->nfree--;
	} else {
		ch = malloc(sizeof(*ch));
		if (!ch)
			return NULL;
		p->live++;
	}
	ch->next = NULL;
	ch->head = ch->done = ch->tail = 0;
	return ch;
}

static void chunk_put(struct sp_txpool *p, struct sp_txchunk *ch)
{
	/* Keep a bounded reserve so steady state never mallocs, but a burst
	 * does not pin its peak memory forever. */
	if (p->nfree < p->max_free) {
		ch->next = p->free;
		p->free = ch;
		p->nfree++;
		return;
	}
	free(ch);
	p->live--;
}

/* --- connection lifetime ---------------------------------------------------- */

void sp_conn_open(struct sp_conn *c, int fd, uint32_t slot)
{
	uint32_t gen = c->gen;  /* survives slot reuse: that is the point of it */

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->slot = slot;
	c->gen = gen;
	c->state = SP_CONN_PREAMBLE;
}

static void free_hs(struct sp_conn *c)
{
	if (!c->hs)
		return;
	sp_noise_handshake_wipe(c->hs);
	free(c->hs);
	c->hs = NULL;
}

static void free_rx_asm(struct sp_conn *c)
{
	free(c->rx_asm);
	c->rx_asm = NULL;
	c->rx_have = 0;
}

void sp_conn_wipe(struct sp_conn *c)
{
	free_hs(c);
	free_rx_asm(c);
	if (c->tx_open) {
		sp_noise_stream_abort(&c->tx);
		c->tx_open = false;
	}
	sp_noise_transport_wipe(&c->t);
	sodium_memzero(c->device, sizeof(c->device));
}

void sp_conn_tx_release(struct sp_conn *c, struct sp_txpool *pool)
{
	while (c->tx_head) {
		struct sp_txchunk *ch = c->tx_head;

		c->tx_head = ch->next;
		chunk_put(pool, ch);
	}
	c->tx_tail = NULL;
	c->txq_bytes = 0;
}

/* --- tx --------------------------------------------------------------------- */

static void put_be16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* A chunk with at least `need` free bytes at its tail (a new one if the
 * current tail chunk is too full). */
static struct sp_txchunk *tx_space(struct sp_conn *c, struct sp_txpool *pool, size_t need)
{
	struct sp_txchunk *ch = c->tx_tail;

	if (ch && SP_TXCHUNK_DATA - ch->tail >= need)
		return ch;
	ch = chunk_get(pool);
	if (!ch)
		return NULL;
	if (c->tx_tail)
		c->tx_tail->next = ch;
	else
		c->tx_head = ch;
	c->tx_tail = ch;
	return ch;
}

int sp_conn_tx_seal(struct sp_conn *c)
{
	struct sp_txchunk *ch = c->tx_tail;
	size_t mlen;
	int ret;

	if (!c->tx_open)
		return 0;
	c->tx_open = false;
	ret = sp_noise_stream_end(&c->tx, &mlen);
	if (ret)
		return ret;
	put_be16(ch->data + c->tx_pfx, mlen);
	ch->tail += SP_TAG_LEN;
	ch->done = ch->tail;
	c->txq_bytes += SP_TAG_LEN;
	return 0;
}

/* Makes sure the open transport message can take `need` more plaintext bytes. */
static int tx_room(struct sp_conn *c, struct sp_txpool *pool, size_t need)
{
	struct sp_txchunk *ch;
	size_t cap;
	int ret;

	if (c->tx_open && c->tx.len + need + SP_TAG_LEN <= c->tx.cap)
		return 0;
	ret = sp_conn_tx_seal(c);
	if (ret)
		return ret;
	ch = tx_space(c, pool, SP_LEN_PREFIX + need + SP_TAG_LEN);
	if (!ch)
		return -ENOMEM;
	cap = SP_TXCHUNK_DATA - ch->tail - SP_LEN_PREFIX;
	if (cap > SP_NOISE_MSG_MAX)
		cap = SP_NOISE_MSG_MAX;
	/* The 2 bytes before the message are its length prefix, written at seal. */
	ret = sp_noise_stream_begin(&c->tx, &c->t.tx, ch->data + ch->tail + SP_LEN_PREFIX, cap);
	if (ret)
		return ret;
	c->tx_open = true;
	c->tx_pfx = ch->tail;
	ch->tail += SP_LEN_PREFIX;
	c->txq_bytes += SP_LEN_PREFIX;
	return 0;
}

static int tx_append(struct sp_conn *c, const uint8_t *p, size_t n)
{
	int ret = sp_noise_stream_update(&c->tx, p, n);

	if (ret)
		return ret;
	c->tx_tail->tail += (uint32_t)n;
	c->txq_bytes += n;
	return 0;
}

int sp_conn_tx_frame(struct sp_conn *c, struct sp_txpool *pool, const struct sp_frame *f,
		     const uint8_t *body, size_t body_len)
{
	struct sp_txchunk *ch;
	size_t hlen = 0, hsize;
	int ret;

	if (c->state != SP_CONN_ESTABLISHED && c->state != SP_CONN_CLOSING)
		return -EINVAL;
	hsize = sp_frame_size(f, 0);
	if (hsize == 0 || hsize > SP_FRAME_PREFIX_LEN + SP_FRAME_HEADER_MAX)
		return -EMSGSIZE;
	ret = tx_room(c, pool, hsize + body_len);
	if (ret)
		return ret;
	/* The header is written where its ciphertext goes and encrypted there
	 * (the stream borrows its pieces until flush). sp_frame_put_header
	 * wants room for the body after the header, which tx_room made. */
	ch = c->tx_tail;
	ret = sp_frame_put_header(ch->data + ch->tail, hsize + body_len, &hlen, f, body_len);
	if (ret)
		return ret;
	ret = tx_append(c, ch->data + ch->tail, hlen);
	if (ret == 0 && body_len)
		ret = tx_append(c, body, body_len);
	/* body is borrowed for the call only: it may sit in a reassembly buffer
	 * freed right after its message, or in the store's read buffer. So the
	 * frame is encrypted now, header and body in one go; the tag (one
	 * Poly1305 pass over all frames) still waits for sp_conn_tx_seal. */
	if (ret == 0)
		ret = sp_noise_stream_flush(&c->tx);
	return ret;
}

bool sp_conn_tx_peek(const struct sp_conn *c, const uint8_t **p, size_t *len)
{
	const struct sp_txchunk *ch = c->tx_head;

	if (!ch || ch->done <= ch->head)
		return false;
	*p = ch->data + ch->head;
	*len = ch->done - ch->head;
	return true;
}

void sp_conn_tx_sent(struct sp_conn *c, struct sp_txpool *pool, size_t n)
{
	struct sp_txchunk *ch = c->tx_head;

	if (!ch)
		return;
	ch->head += (uint32_t)n;
	c->txq_bytes -= n;
	/* Fully sent chunks go back; the tail chunk too once nothing is open in
	 * it, so an idle connection holds no tx memory. */
	while ((ch = c->tx_head) && ch->head == ch->tail && !(ch == c->tx_tail && c->tx_open)) {
		c->tx_head = ch->next;
		if (!c->tx_head)
			c->tx_tail = NULL;
		chunk_put(pool, ch);
	}
}

/* Raw (unencrypted-by-us) handshake message: prefix + bytes written by sp_noise. */
static enum sp_close_reason tx_handshake(struct sp_conn *c, struct sp_txpool *pool,
					 const uint8_t *payload, size_t plen)
{
	struct sp_txchunk *ch = tx_space(c, pool, SP_LEN_PREFIX + SP_HANDSHAKE_MSG_MAX);
	size_t mlen;

	if (!ch)
		return SP_CLOSE_NOMEM;
	if (sp_noise_handshake_write(c->hs, payload, plen, ch->data + ch->tail + SP_LEN_PREFIX,
				     SP_HANDSHAKE_MSG_MAX, &mlen))
		return SP_CLOSE_HANDSHAKE_FAILED;
	put_be16(ch->data + ch->tail, mlen);
	ch->tail += (uint32_t)(SP_LEN_PREFIX + mlen);
	ch->done = ch->tail;
	c->txq_bytes += SP_LEN_PREFIX + mlen;
	return SP_CLOSE_NONE;
}

/* --- handshake -------------------------------------------------------------- */

static enum sp_close_reason on_preamble(struct sp_conn *c)
{
	const uint8_t *p = c->pre;

	if (memcmp(p, SP_PREAMBLE_MAGIC, 4) != 0 || p[4] != SP_PROTOCOL_VERSION || p[6] || p[7])
		return SP_CLOSE_BAD_PREAMBLE;
	if (p[5] != SP_PREAMBLE_PATTERN_IK && p[5] != SP_PREAMBLE_PATTERN_XX)
		return SP_CLOSE_BAD_PREAMBLE;
	c->pattern = p[5];
	/* Zeroed: SP_NOISE_HS_EMPTY tells hs_message to initialise it (it needs
	 * the broker key, which the caller's env carries). */
	c->hs = calloc(1, sizeof(*c->hs));
	if (!c->hs)
		return SP_CLOSE_NOMEM;
	c->state = SP_CONN_HANDSHAKE;
	return SP_CLOSE_NONE;
}

static enum sp_close_reason hs_init(struct sp_conn *c, const struct sp_conn_env *env)
{
	enum sp_noise_pattern np = c->pattern == SP_PREAMBLE_PATTERN_IK ? SP_NOISE_IK : SP_NOISE_XX;

	/* The prologue is the preamble exactly, so a downgrade of the pattern
	 * byte in transit breaks the handshake. */
	if (sp_noise_handshake_init_keyed(c->hs, np, SP_NOISE_RESPONDER, c->pre, SP_PREAMBLE_LEN,
					  env->static_priv,
					  env->has_static_pub ? env->static_pub : NULL, NULL))
		return SP_CLOSE_INTERNAL;
	return SP_CLOSE_NONE;
}

static enum sp_close_reason client_hello_ok(const uint8_t *payload, size_t plen)
{
	struct sp_hello h;

	if (sp_frame_client_hello_decode(payload, plen, &h) ||
	    h.protocol_version != SP_PROTOCOL_VERSION)
		return SP_CLOSE_HANDSHAKE_FAILED;
	return SP_CLOSE_NONE;
}

static enum sp_close_reason server_hello(struct sp_conn *c, const struct sp_conn_env *env)
{
	uint8_t buf[SP_HANDSHAKE_PAYLOAD_MAX];
	size_t len;

	if (sp_frame_server_hello_encode(&env->server_hello, buf, sizeof(buf), &len))
		return SP_CLOSE_INTERNAL;
	return tx_handshake(c, env->pool, buf, len);
}

/* SP_NOISE_HS_SPLIT reached: derive the ciphers, learn the device, drop the handshake. */
static enum sp_close_reason hs_finish(struct sp_conn *c, const struct sp_conn_env *env)
{
	if (sp_noise_handshake_remote_static(c->hs, c->device) || !sp_noise_key_valid(c->device))
		return SP_CLOSE_HANDSHAKE_FAILED;
	if (sp_noise_handshake_split(c->hs, &c->t))
		return SP_CLOSE_HANDSHAKE_FAILED;
	free_hs(c);
	c->has_device = true;
	/* XX message 3 is encrypted under keys mixed with our fresh ephemeral:
	 * only a live holder of the keys can have made it. */
	c->proven = c->pattern == SP_PREAMBLE_PATTERN_XX;
	c->state = SP_CONN_ESTABLISHED;
	return env->hooks.established(env->hooks.ctx, c);
}

/*
 * One handshake message from the client.
 *   IK msg1: e, es, s, ss + ClientHello  -> we write msg2: e, ee, se + ServerHello
 *   XX msg1: e (empty payload)           -> we write msg2: e, ee, s, es + ServerHello
 *   XX msg3: s, se + ClientHello
 */
static enum sp_close_reason hs_message(struct sp_conn *c, const struct sp_conn_env *env,
				       const uint8_t *msg, size_t len)
{
	uint8_t payload[SP_HANDSHAKE_PAYLOAD_MAX];
	size_t plen = 0;
	bool first = c->hs->state == SP_NOISE_HS_EMPTY;
	enum sp_close_reason r;

	if (first && (r = hs_init(c, env)))
		return r;
	if (sp_noise_handshake_read(c->hs, msg, len, payload, sizeof(payload), &plen))
		return SP_CLOSE_HANDSHAKE_FAILED;
	if (c->pattern == SP_PREAMBLE_PATTERN_XX && first) {
		if (plen != 0)  /* XX msg1 carries no payload in protocol 1 */
			return SP_CLOSE_HANDSHAKE_FAILED;
		return server_hello(c, env);
	}
	if ((r = client_hello_ok(payload, plen)))
		return r;
	if (c->pattern == SP_PREAMBLE_PATTERN_IK && (r = server_hello(c, env)))
		return r;
	if (c->hs->state != SP_NOISE_HS_SPLIT)
		return SP_CLOSE_HANDSHAKE_FAILED;
	return hs_finish(c, env);
}

/* --- rx --------------------------------------------------------------------- */

static enum sp_close_reason transport_message(struct sp_conn *c, const struct sp_conn_env *env,
					      uint8_t *msg, size_t len)
{
	struct sp_frame f;
	size_t plen, off = 0;
	enum sp_close_reason r;
	int ret;

	if (sp_noise_decrypt(&c->t.rx, msg, len, &plen))
		return SP_CLOSE_DECRYPT_FAILED;
	if (!c->proven) {
		c->proven = true;
		if (env->hooks.proven && (r = env->hooks.proven(env->hooks.ctx, c)))
			return r;
	}
	for (;;) {
		ret = sp_frame_next(msg, plen, &off, &f);
		if (ret == -ENODATA)
			return SP_CLOSE_NONE;
		if (ret)
			return SP_CLOSE_PROTOCOL;
		r = env->hooks.frame(env->hooks.ctx, c, &f);
		if (r)
			return r;
	}
}

static enum sp_close_reason message(struct sp_conn *c, const struct sp_conn_env *env,
				    uint8_t *msg, size_t len)
{
	if (c->state == SP_CONN_HANDSHAKE)
		return hs_message(c, env, msg, len);
	return transport_message(c, env, msg, len);
}

/* A length prefix is complete: reject what no valid peer sends before
 * buffering a byte of it (an unauthenticated peer gets at most one
 * handshake message's worth of memory). */
static enum sp_close_reason check_len(const struct sp_conn *c, size_t len)
{
	if (len == 0)
		return SP_CLOSE_BAD_LENGTH;
	if (c->state == SP_CONN_HANDSHAKE && len > SP_HANDSHAKE_MSG_MAX)
		return SP_CLOSE_BAD_LENGTH;
	return SP_CLOSE_NONE;
}

/* Takes preamble bytes; returns bytes consumed. */
static size_t take_preamble(struct sp_conn *c, const uint8_t *p, size_t n, enum sp_close_reason *r)
{
	size_t take = SP_PREAMBLE_LEN - c->pre_len;

	if (take > n)
		take = n;
	memcpy(c->pre + c->pre_len, p, take);
	c->pre_len += (uint8_t)take;
	if (c->pre_len == SP_PREAMBLE_LEN)
		*r = on_preamble(c);
	return take;
}

/* Takes length-prefix bytes; returns bytes consumed. */
static size_t take_prefix(struct sp_conn *c, const uint8_t *p, size_t n, enum sp_close_reason *r)
{
	size_t len;

	if (c->pfx_len == 0 && n >= SP_LEN_PREFIX) {
		len = (size_t)p[0] << 8 | p[1];
	} else {
		c->pfx[c->pfx_len++] = p[0];
		if (c->pfx_len < SP_LEN_PREFIX)
			return 1;
		c->pfx_len = 0;
		len = (size_t)c->pfx[0] << 8 | c->pfx[1];
		*r = check_len(c, len);
		c->msg_len = (uint32_t)len;
		return 1;
	}
	*r = check_len(c, len);
	c->msg_len = (uint32_t)len;
	return SP_LEN_PREFIX;
}

/* Takes message bytes: in place when the whole message is here, else into
 * the reassembly buffer. Returns bytes consumed. */
static size_t take_message(struct sp_conn *c, const struct sp_conn_env *env, uint8_t *p, size_t n,
			   enum sp_close_reason *r)
{
	size_t len = c->msg_len, take;

	if (!c->rx_asm && n >= len) {
		c->msg_len = 0;
		*r = message(c, env, p, len);
		return len;
	}
	if (!c->rx_asm) {
		c->rx_asm = malloc(len);
		if (!c->rx_asm) {
			*r = SP_CLOSE_NOMEM;
			return n;
		}
		c->rx_have = 0;
	}
	take = len - c->rx_have;
	if (take > n)
		take = n;
	memcpy(c->rx_asm + c->rx_have, p, take);
	c->rx_have += (uint32_t)take;
	if (c->rx_have == len) {
		c->msg_len = 0;
		*r = message(c, env, c->rx_asm, len);
		free_rx_asm(c);
	}
	return take;
}

static bool reading(const struct sp_conn *c)
{
	return c->state == SP_CONN_PREAMBLE || c->state == SP_CONN_HANDSHAKE ||
	       c->state == SP_CONN_ESTABLISHED;
}

enum sp_close_reason sp_conn_rx(struct sp_conn *c, const struct sp_conn_env *env, uint8_t *data,
				size_t len)
{
	enum sp_close_reason r = SP_CLOSE_NONE;
	size_t off = 0;

	/* A frame hook may end this connection (close_reason set) or move it to
	 * CLOSING; either way the rest of the input is dropped unread. */
	while (off < len && r == SP_CLOSE_NONE && reading(c) && !c->close_reason) {
		if (c->state == SP_CONN_PREAMBLE)
			off += take_preamble(c, data + off, len - off, &r);
		else if (c->msg_len == 0)
			off += take_prefix(c, data + off, len - off, &r);
		else
			off += take_message(c, env, data + off, len - off, &r);
	}
	return r;
}
