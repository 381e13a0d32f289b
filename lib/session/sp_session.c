/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_session.c: the session state machine (either role), rx reassembly,
 * the handshake driver and transport batching onto the tx queue.
 */
#include "sp_session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sp_be.h"

/* --- lifetime --------------------------------------------------------------- */

void sp_session_accept(struct sp_session *s, const struct sp_session_env *env)
{
	memset(s, 0, sizeof(*s));
	s->env = env;
	s->role = SP_SESSION_RESPONDER;
	s->state = SP_SESSION_PREAMBLE;
}

static size_t max3(size_t a, size_t b, size_t c)
{
	size_t m = a > b ? a : b;

	return m > c ? m : c;
}

size_t sp_session_slot_size(void)
{
	return max3(sizeof(struct sp_noise_handshake), sizeof(struct sp_noise_stream),
		    sizeof(struct sp_session_keys));
}

size_t sp_session_keys_slot_size(void)
{
	return sizeof(struct sp_session_keys);
}

/* A zeroed secret slot of n bytes from sl (n <= its slot size), or from
 * the heap without a slab. */
static void *secret_alloc(struct sp_slab *sl, size_t n)
{
	return sl ? sp_slab_alloc(sl) : calloc(1, n);
}

/* p was from secret_alloc(sl, n): wiped (by the slab, or here) and freed. */
static void secret_free(struct sp_slab *sl, void *p, size_t n)
{
	if (!p)
		return;
	if (sl) {
		sp_slab_free(sl, p);
		return;
	}
	sodium_memzero(p, n);
	free(p);
}

static struct sp_slab *key_slab(const struct sp_session *s)
{
	return s->env->key_slab ? s->env->key_slab : s->env->slab;
}

static void free_hs(struct sp_session *s)
{
	if (!s->hs)
		return;
	sp_noise_handshake_wipe(s->hs);
	secret_free(s->env->slab, s->hs, sizeof(*s->hs));
	s->hs = NULL;
}

/* The open message's stream goes back: at seal, or aborted with the keys.
 * wiped: a successful sp_noise_stream_end or an _abort zeroed all of it
 * (and the slot's bytes beyond it were never written), so the slab need
 * not wipe it again: once per transport message, that second wipe was
 * measurable (docs/BENCHMARKS.md). Otherwise it is wiped here. */
static void free_stream(struct sp_session *s, bool wiped)
{
	struct sp_noise_stream *st = s->keys->tx;

	if (!st)
		return;
	s->keys->tx = NULL;
	if (!wiped)
		sodium_memzero(st, sizeof(*st));
	if (s->env->slab)
		sp_slab_free_wiped(s->env->slab, st);
	else
		free(st);
}

static void free_keys(struct sp_session *s)
{
	bool wiped = false;

	if (!s->keys)
		return;
	if (s->tx_open) {
		sp_noise_stream_abort(s->keys->tx);
		s->tx_open = false;
		wiped = true;
	}
	free_stream(s, wiped);
	sp_noise_transport_wipe(&s->keys->t);
	secret_free(key_slab(s), s->keys, sizeof(*s->keys));
	s->keys = NULL;
}

int sp_session_keys_init(struct sp_session *s)
{
	if (!s->keys && !(s->keys = secret_alloc(key_slab(s), sizeof(*s->keys))))
		return -ENOMEM;
	return 0;
}

static void free_rx_asm(struct sp_session *s)
{
	if (s->env && s->env->rx_bytes)
		*s->env->rx_bytes -= s->rx_cap;
	free(s->rx_asm);
	s->rx_asm = NULL;
	s->rx_have = 0;
	s->rx_cap = 0;
}

void sp_session_wipe(struct sp_session *s)
{
	free_hs(s);
	free_rx_asm(s);
	free_keys(s);
	s->tx_open = false;
	sodium_memzero(s->peer, sizeof(s->peer));
	if (s->state != SP_SESSION_FREE)
		s->state = SP_SESSION_DEAD;
}

void sp_session_release(struct sp_session *s)
{
	sp_session_wipe(s);
	if (s->env)
		sp_txq_release(&s->q, s->env->pool);
	s->state = SP_SESSION_FREE;
}

void sp_session_end(struct sp_session *s)
{
	if (s->state == SP_SESSION_ESTABLISHED) {
		s->state = SP_SESSION_CLOSING;
		/* Input is discarded from now: a partial message is never read. */
		s->msg_len = 0;
		free_rx_asm(s);
	}
}

void sp_session_drain(struct sp_session *s)
{
	if (s->state == SP_SESSION_PREAMBLE || s->state == SP_SESSION_HANDSHAKE ||
	    s->state == SP_SESSION_ESTABLISHED)
		s->state = SP_SESSION_CLOSING;
}

void sp_session_set_tx_max(struct sp_session *s, size_t max)
{
	s->tx_max = max == 0 || max > SP_TRANSPORT_PLAINTEXT_MAX ? 0 : (uint32_t)max;
}

/* --- tx --------------------------------------------------------------------- */

int sp_session_tx_seal(struct sp_session *s)
{
	struct sp_txchunk *ch = s->q.tail;
	size_t mlen;
	int ret;

	if (!s->tx_open)
		return 0;
	s->tx_open = false;
	ret = sp_noise_stream_end(s->keys->tx, &mlen);
	free_stream(s, ret == 0);
	if (ret)
		return ret;
	sp_be_put16(ch->data + s->tx_pfx, (uint16_t)mlen); /* <= SP_NOISE_MSG_MAX */
	sp_txq_wrote(&s->q, SP_TAG_LEN);
	sp_txq_finish(&s->q);
	return 0;
}

/* The ciphertext room of a new transport message in a chunk. */
static size_t msg_cap(const struct sp_session *s, const struct sp_txchunk *ch)
{
	size_t cap = SP_TXCHUNK_DATA - ch->tail - SP_LEN_PREFIX;

	if (cap > SP_NOISE_MSG_MAX)
		cap = SP_NOISE_MSG_MAX;
	if (s->tx_max && cap > (size_t)s->tx_max + SP_TAG_LEN)
		cap = (size_t)s->tx_max + SP_TAG_LEN;
	return cap;
}

/* Makes sure the open transport message can take `need` more plaintext bytes. */
static int tx_room(struct sp_session *s, size_t need)
{
	struct sp_txchunk *ch;
	int ret;

	if (s->tx_open && s->keys->tx->len + need + SP_TAG_LEN <= s->keys->tx->cap)
		return 0;
	ret = sp_session_tx_seal(s);
	if (ret)
		return ret;
	if (s->tx_max && need > s->tx_max)
		return -EMSGSIZE;
	ch = sp_txq_space(&s->q, s->env->pool, SP_LEN_PREFIX + need + SP_TAG_LEN);
	if (!ch)
		return -ENOMEM;
	if (!s->keys->tx &&
	    !(s->keys->tx = secret_alloc(s->env->slab, sizeof(*s->keys->tx))))
		return -ENOMEM;
	/* The 2 bytes before the message are its length prefix, written at seal. */
	ret = sp_noise_stream_begin(s->keys->tx, &s->keys->t.tx, ch->data + ch->tail + SP_LEN_PREFIX,
				    msg_cap(s, ch));
	if (ret) {
		free_stream(s, false);
		return ret;
	}
	s->tx_open = true;
	s->tx_pfx = ch->tail;
	sp_txq_wrote(&s->q, SP_LEN_PREFIX);
	return 0;
}

static int tx_append(struct sp_session *s, const uint8_t *p, size_t n)
{
	int ret = sp_noise_stream_update(s->keys->tx, p, n);

	if (ret)
		return ret;
	sp_txq_wrote(&s->q, n);
	return 0;
}

int sp_session_tx_frame(struct sp_session *s, const struct sp_frame *f, const uint8_t *body,
			size_t body_len)
{
	struct sp_txchunk *ch;
	size_t hlen = 0, hsize;
	int ret;

	if (s->state != SP_SESSION_ESTABLISHED && s->state != SP_SESSION_CLOSING)
		return -EINVAL;
	hsize = sp_frame_size(f, 0);
	if (hsize == 0 || hsize > SP_FRAME_PREFIX_LEN + SP_FRAME_HEADER_MAX)
		return -EMSGSIZE;
	ret = tx_room(s, hsize + body_len);
	if (ret)
		return ret;
	/* The header is written where its ciphertext goes and encrypted there
	 * (the stream borrows its pieces until flush). sp_frame_put_header
	 * wants room for the body after the header, which tx_room made. */
	ch = s->q.tail;
	ret = sp_frame_put_header(ch->data + ch->tail, hsize + body_len, &hlen, f, body_len);
	if (ret)
		return ret;
	ret = tx_append(s, ch->data + ch->tail, hlen);
	if (ret == 0 && body_len)
		ret = tx_append(s, body, body_len);
	/* body is borrowed for the call only: it may sit in a reassembly buffer
	 * freed right after its message, or in the store's read buffer. So the
	 * frame is encrypted now, header and body in one go; the tag (one
	 * Poly1305 pass over all frames) still waits for sp_session_tx_seal. */
	if (ret == 0)
		ret = sp_noise_stream_flush(s->keys->tx);
	return ret;
}

/* A handshake message (its own crypto, no transport cipher): prefix + the
 * bytes sp_noise writes, finished at once. pre: the preamble to put
 * before it (the initiator's first message), or NULL. */
static enum sp_close_reason tx_handshake(struct sp_session *s, const uint8_t *pre,
					 const uint8_t *payload, size_t plen)
{
	size_t pre_len = pre ? SP_PREAMBLE_LEN : 0, mlen;
	struct sp_txchunk *ch;
	uint8_t *p;

	ch = sp_txq_space(&s->q, s->env->pool, pre_len + SP_LEN_PREFIX + SP_HANDSHAKE_MSG_MAX);
	if (!ch)
		return SP_CLOSE_NOMEM;
	p = ch->data + ch->tail;
	if (pre)
		memcpy(p, pre, pre_len);
	if (sp_noise_handshake_write(s->hs, payload, plen, p + pre_len + SP_LEN_PREFIX,
				     SP_HANDSHAKE_MSG_MAX, &mlen))
		return SP_CLOSE_HANDSHAKE_FAILED;
	sp_be_put16(p + pre_len, (uint16_t)mlen);
	sp_txq_wrote(&s->q, pre_len + SP_LEN_PREFIX + mlen);
	sp_txq_finish(&s->q);
	return SP_CLOSE_NONE;
}

/* --- handshake -------------------------------------------------------------- */

static enum sp_noise_pattern noise_pattern(const struct sp_session *s)
{
	if (s->pattern == SP_PREAMBLE_PATTERN_NK)
		return SP_NOISE_NK;
	return s->pattern == SP_PREAMBLE_PATTERN_IK ? SP_NOISE_IK : SP_NOISE_XX;
}

/* Our hello as a handshake payload. */
static enum sp_close_reason hello_payload(const struct sp_session *s, uint8_t *buf, size_t cap,
					  size_t *len)
{
	int ret = s->role == SP_SESSION_RESPONDER
		? sp_frame_server_hello_encode(&s->env->hello, buf, cap, len)
		: sp_frame_client_hello_encode(&s->env->hello, buf, cap, len);

	return ret ? SP_CLOSE_INTERNAL : SP_CLOSE_NONE;
}

static enum sp_close_reason send_hello(struct sp_session *s)
{
	uint8_t buf[SP_HANDSHAKE_PAYLOAD_MAX];
	size_t len;
	enum sp_close_reason r = hello_payload(s, buf, sizeof(buf), &len);

	if (!r)
		r = tx_handshake(s, NULL, buf, len);
	/* a ClientHello may hold an enrolment token */
	sodium_memzero(buf, sizeof(buf));
	return r;
}

static int connect_pattern(struct sp_session *s, const struct sp_session_env *env,
			   const uint8_t *static_priv, const uint8_t *server_key, uint8_t pattern);

int sp_session_connect(struct sp_session *s, const struct sp_session_env *env,
		       const uint8_t *static_priv, const uint8_t *server_key)
{
	return connect_pattern(s, env, static_priv, server_key,
			       server_key ? SP_PREAMBLE_PATTERN_IK : SP_PREAMBLE_PATTERN_XX);
}

int sp_session_connect_anonymous(struct sp_session *s, const struct sp_session_env *env,
				 const uint8_t *server_key)
{
	if (!server_key)
		return -EINVAL;
	return connect_pattern(s, env, NULL, server_key, SP_PREAMBLE_PATTERN_NK);
}

static int connect_pattern(struct sp_session *s, const struct sp_session_env *env,
			   const uint8_t *static_priv, const uint8_t *server_key, uint8_t pattern)
{
	uint8_t hello[SP_HANDSHAKE_PAYLOAD_MAX];
	size_t hlen = 0;
	enum sp_close_reason r;
	int ret;

	memset(s, 0, sizeof(*s));
	s->env = env;
	s->role = SP_SESSION_INITIATOR;
	s->pattern = pattern;
	s->aead = env->propose_aead;
	memcpy(s->pre, SP_PREAMBLE_MAGIC, 4);
	s->pre[4] = SP_PROTOCOL_VERSION;
	s->pre[5] = s->pattern;
	s->pre[6] = s->aead == SP_NOISE_AESGCM ? SP_PREAMBLE_CIPHER_AESGCM
					       : SP_PREAMBLE_CIPHER_CHACHAPOLY;
	s->pre_len = SP_PREAMBLE_LEN;
	s->state = SP_SESSION_HANDSHAKE;
	s->hs = secret_alloc(s->env->slab, sizeof(*s->hs));
	if (!s->hs)
		return -ENOMEM;
	/* The prologue is the preamble exactly, as the responder takes it,
	 * and the cipher is in the protocol name: a preamble whose cipher
	 * byte was changed in transit fails the handshake twice over. */
	ret = sp_noise_handshake_init_aead(s->hs, noise_pattern(s), (enum sp_noise_aead)s->aead,
					   SP_NOISE_INITIATOR, s->pre, SP_PREAMBLE_LEN,
					   static_priv, server_key);
	if (ret)
		goto fail;
	/* IK: e, es, s, ss + ClientHello.  NK: e, es + ClientHello.
	 * XX: e, empty payload. */
	if (server_key && (r = hello_payload(s, hello, sizeof(hello), &hlen))) {
		ret = -EINVAL;
		goto fail;
	}
	r = tx_handshake(s, s->pre, server_key ? hello : NULL, hlen);
	sodium_memzero(hello, sizeof(hello));
	if (r) {
		ret = r == SP_CLOSE_NOMEM ? -ENOMEM : -EINVAL;
		goto fail;
	}
	return 0;
fail:
	sp_session_wipe(s);
	return ret;
}

/* The answer to a cipher we do not offer: "SEAL", version, the pattern,
 * cipher ChaChaPoly, 0 (PROTOCOL.md 2), queued; the session drains and
 * ends. Unauthenticated, like the preamble: a forged one only makes the
 * client speak ChaChaPoly, which it would have accepted anyway. */
static enum sp_close_reason refuse_cipher(struct sp_session *s)
{
	struct sp_txchunk *ch = sp_txq_space(&s->q, s->env->pool, SP_PREAMBLE_LEN);
	uint8_t *p;

	if (!ch)
		return SP_CLOSE_NOMEM;
	p = ch->data + ch->tail;
	memcpy(p, SP_PREAMBLE_MAGIC, 4);
	p[4] = SP_PROTOCOL_VERSION;
	p[5] = s->pattern;
	p[6] = SP_PREAMBLE_CIPHER_CHACHAPOLY;
	p[7] = 0;
	sp_txq_wrote(&s->q, SP_PREAMBLE_LEN);
	sp_txq_finish(&s->q);
	return SP_CLOSE_CIPHER_REFUSED;
}

static enum sp_close_reason on_preamble(struct sp_session *s)
{
	const uint8_t *p = s->pre;

	if (memcmp(p, SP_PREAMBLE_MAGIC, 4) != 0 || p[4] != SP_PROTOCOL_VERSION || p[7])
		return SP_CLOSE_BAD_PREAMBLE;
	if (p[5] != SP_PREAMBLE_PATTERN_IK && p[5] != SP_PREAMBLE_PATTERN_XX &&
	    p[5] != SP_PREAMBLE_PATTERN_NK)
		return SP_CLOSE_BAD_PREAMBLE;
	if (p[6] != SP_PREAMBLE_CIPHER_CHACHAPOLY && p[6] != SP_PREAMBLE_CIPHER_AESGCM)
		return SP_CLOSE_BAD_PREAMBLE;
	s->pattern = p[5];
	if (p[6] == SP_PREAMBLE_CIPHER_AESGCM) {
		/* accept_aesgcm is the owner's word that the CPU can; checked
		 * again so that no env can make the handshake fail late. */
		if (!s->env->accept_aesgcm || !sp_noise_aead_available(SP_NOISE_AESGCM))
			return refuse_cipher(s);
		s->aead = SP_NOISE_AESGCM;
	}
	/* Zeroed: SP_NOISE_HS_EMPTY tells responder_message to initialise it
	 * with its first message, so a peer that stops after the preamble
	 * costs no key work. */
	s->hs = secret_alloc(s->env->slab, sizeof(*s->hs));
	if (!s->hs)
		return SP_CLOSE_NOMEM;
	s->state = SP_SESSION_HANDSHAKE;
	return SP_CLOSE_NONE;
}

static enum sp_close_reason responder_init(struct sp_session *s)
{
	const struct sp_session_env *env = s->env;

	/* The prologue is the preamble exactly, so a downgrade of the pattern
	 * byte in transit breaks the handshake. */
	if (sp_noise_handshake_init_keyed_aead(s->hs, noise_pattern(s), (enum sp_noise_aead)s->aead,
					       SP_NOISE_RESPONDER, s->pre, SP_PREAMBLE_LEN,
					       env->static_priv,
					       env->has_static_pub ? env->static_pub : NULL, NULL))
		return SP_CLOSE_INTERNAL;
	return SP_CLOSE_NONE;
}

static enum sp_close_reason client_hello_ok(const uint8_t *payload, size_t plen,
					    struct sp_hello *h)
{
	if (sp_frame_client_hello_decode(payload, plen, h) ||
	    h->protocol_version != SP_PROTOCOL_VERSION)
		return SP_CLOSE_HANDSHAKE_FAILED;
	return SP_CLOSE_NONE;
}

/* SP_NOISE_HS_SPLIT reached: derive the ciphers, learn the peer, drop the
 * handshake. ch: the responder's decoded ClientHello (NULL: initiator). */
static enum sp_close_reason hs_finish(struct sp_session *s, const struct sp_hello *ch)
{
	const struct sp_session_hooks *h = &s->env->hooks;
	enum sp_close_reason r;
	/* NK responder: the initiator has no static key; the session is
	 * anonymous (has_peer stays false, peer all zero). */
	bool anon = s->role == SP_SESSION_RESPONDER && s->pattern == SP_PREAMBLE_PATTERN_NK;

	if (!anon &&
	    (sp_noise_handshake_remote_static(s->hs, s->peer) || !sp_noise_key_valid(s->peer)))
		return SP_CLOSE_HANDSHAKE_FAILED;
	if (sp_session_keys_init(s))
		return SP_CLOSE_NOMEM;
	if (sp_noise_handshake_split(s->hs, &s->keys->t))
		return SP_CLOSE_HANDSHAKE_FAILED;
	if (s->env->rekey_every)
		sp_noise_transport_set_rekey(&s->keys->t, s->env->rekey_every);
	free_hs(s);
	s->has_peer = !anon;
	/* XX message 3 is encrypted under keys mixed with the responder's
	 * fresh ephemeral, and message 2 under the initiator's: only a live
	 * holder of the keys can have made them. An IK (or NK) message 1 can
	 * be a replay: the first transport message proves that peer. */
	s->proven = s->role == SP_SESSION_INITIATOR || s->pattern == SP_PREAMBLE_PATTERN_XX;
	s->state = SP_SESSION_ESTABLISHED;
	if (ch && s->has_peer && h->client_hello && (r = h->client_hello(h->ctx, s, ch)))
		return r;
	return h->established(h->ctx, s);
}

/*
 * One handshake message from the initiator.
 *   IK msg1: e, es, s, ss + ClientHello  -> we write msg2: e, ee, se + ServerHello
 *   XX msg1: e (empty payload)           -> we write msg2: e, ee, s, es + ServerHello
 *   XX msg3: s, se + ClientHello
 */
static enum sp_close_reason responder_message(struct sp_session *s, const uint8_t *msg,
					      size_t len, uint8_t *payload, size_t *plen)
{
	const struct sp_session_hooks *h = &s->env->hooks;
	bool first = s->hs->state == SP_NOISE_HS_EMPTY;
	struct sp_hello ch;
	enum sp_close_reason r;

	if (first && h->first_message && (r = h->first_message(h->ctx, s)))
		return r;
	if (first && (r = responder_init(s)))
		return r;
	if (sp_noise_handshake_read(s->hs, msg, len, payload, SP_HANDSHAKE_PAYLOAD_MAX, plen))
		return SP_CLOSE_HANDSHAKE_FAILED;
	if (s->pattern == SP_PREAMBLE_PATTERN_XX && first) {
		if (*plen != 0)  /* XX msg1 carries no payload in protocol 1 */
			return SP_CLOSE_HANDSHAKE_FAILED;
		return send_hello(s);
	}
	if ((r = client_hello_ok(payload, *plen, &ch)))
		return r;
	if (s->pattern != SP_PREAMBLE_PATTERN_XX && (r = send_hello(s)))
		return r;
	if (s->hs->state != SP_NOISE_HS_SPLIT)
		return SP_CLOSE_HANDSHAKE_FAILED;
	r = hs_finish(s, &ch);
	/* the token is a one-use secret: nothing of it stays on the stack */
	sodium_memzero(&ch, sizeof(ch));
	return r;
}

/*
 * Message 2 from the responder, the only one an initiator reads.
 *   IK: e, ee, se + ServerHello
 *   XX: e, ee, s, es + ServerHello   -> we write msg3: s, se + ClientHello
 */
static enum sp_close_reason initiator_message(struct sp_session *s, const uint8_t *msg,
					      size_t len, uint8_t *payload, size_t *plen)
{
	const struct sp_session_hooks *h = &s->env->hooks;
	enum sp_close_reason r;
	int ret;

	ret = sp_noise_handshake_read(s->hs, msg, len, payload, SP_HANDSHAKE_PAYLOAD_MAX, plen);
	if (ret)
		/* Authentication (a wrong broker key, tampering) apart from a
		 * malformed message: the client reports them differently. */
		return ret == -EBADMSG ? SP_CLOSE_DECRYPT_FAILED : SP_CLOSE_HANDSHAKE_FAILED;
	if (h->server_hello && (r = h->server_hello(h->ctx, s, payload, *plen)))
		return r;
	if (s->pattern == SP_PREAMBLE_PATTERN_XX && (r = send_hello(s)))
		return r;
	if (s->hs->state != SP_NOISE_HS_SPLIT)
		return SP_CLOSE_HANDSHAKE_FAILED;
	return hs_finish(s, NULL);
}

static enum sp_close_reason hs_message(struct sp_session *s, const uint8_t *msg, size_t len)
{
	uint8_t payload[SP_HANDSHAKE_PAYLOAD_MAX];
	size_t plen = 0;
	enum sp_close_reason r;

	r = s->role == SP_SESSION_RESPONDER ? responder_message(s, msg, len, payload, &plen)
					    : initiator_message(s, msg, len, payload, &plen);
	sodium_memzero(payload, plen);
	return r;
}

/* --- rx --------------------------------------------------------------------- */

static enum sp_close_reason transport_message(struct sp_session *s, uint8_t *msg, size_t len)
{
	const struct sp_session_hooks *h = &s->env->hooks;
	struct sp_frame f;
	size_t plen, off = 0;
	enum sp_close_reason r;
	int ret;

	if (sp_noise_decrypt(&s->keys->t.rx, msg, len, &plen))
		return SP_CLOSE_DECRYPT_FAILED;
	s->rx_msgs++;
	if (!s->proven) {
		s->proven = true;
		if (h->proven && (r = h->proven(h->ctx, s)))
			return r;
	}
	for (;;) {
		ret = sp_frame_next(msg, plen, &off, &f);
		if (ret == -ENODATA)
			return SP_CLOSE_NONE;
		if (ret)
			return SP_CLOSE_PROTOCOL;
		r = h->frame(h->ctx, s, &f);
		if (r)
			return r;
	}
}

static enum sp_close_reason message(struct sp_session *s, uint8_t *msg, size_t len)
{
	if (s->state == SP_SESSION_HANDSHAKE)
		return hs_message(s, msg, len);
	return transport_message(s, msg, len);
}

/* A length prefix is complete: reject what no valid peer sends before
 * buffering a byte of it. An unauthenticated peer gets at most one
 * handshake message's worth of memory: in the handshake, and on an IK
 * session not yet proven, whose message 1 may be a replay by anyone (its
 * first transport message, the proof, must be handshake-sized too:
 * PROTOCOL.md 4, "Proof"). An initiator also refuses a transport message
 * shorter than its tag (a responder lets the decrypt fail, as it always
 * has). */
static enum sp_close_reason check_len(const struct sp_session *s, size_t len)
{
	if (len == 0)
		return SP_CLOSE_BAD_LENGTH;
	/* The broker's refusal of the cipher we proposed, instead of message 2. */
	if (s->role == SP_SESSION_INITIATOR && s->state == SP_SESSION_HANDSHAKE &&
	    s->aead != SP_NOISE_CHACHAPOLY && len == SP_PREAMBLE_REFUSAL_PREFIX &&
	    s->hs && s->hs->msg_index == 1)
		return SP_CLOSE_CIPHER_REFUSED;
	if ((s->state == SP_SESSION_HANDSHAKE || !s->proven) && len > SP_HANDSHAKE_MSG_MAX)
		return SP_CLOSE_BAD_LENGTH;
	if (s->role == SP_SESSION_INITIATOR && len < SP_TAG_LEN)
		return SP_CLOSE_BAD_LENGTH;
	return SP_CLOSE_NONE;
}

/* Takes preamble bytes; returns bytes consumed. */
static size_t take_preamble(struct sp_session *s, const uint8_t *p, size_t n,
			    enum sp_close_reason *r)
{
	size_t take = SP_PREAMBLE_LEN - s->pre_len;

	if (take > n)
		take = n;
	memcpy(s->pre + s->pre_len, p, take);
	s->pre_len += (uint8_t)take;
	if (s->pre_len == SP_PREAMBLE_LEN)
		*r = on_preamble(s);
	return take;
}

/* Takes length-prefix bytes; returns bytes consumed. */
static size_t take_prefix(struct sp_session *s, const uint8_t *p, size_t n,
			  enum sp_close_reason *r)
{
	size_t len;

	if (s->pfx_len == 0 && n >= SP_LEN_PREFIX) {
		len = (size_t)p[0] << 8 | p[1];
		*r = check_len(s, len);
		s->msg_len = (uint32_t)len;
		return SP_LEN_PREFIX;
	}
	s->pfx[s->pfx_len++] = p[0];
	if (s->pfx_len < SP_LEN_PREFIX)
		return 1;
	s->pfx_len = 0;
	len = (size_t)s->pfx[0] << 8 | s->pfx[1];
	*r = check_len(s, len);
	s->msg_len = (uint32_t)len;
	return 1;
}

/* The reassembly buffer grows as bytes arrive, never ahead of them by more
 * than it already holds (doubling, from SP_SESSION_RX_MIN), so a peer that
 * announces 65,535 bytes and sends one holds SP_SESSION_RX_MIN, not 64 KiB.
 * 0 or SP_CLOSE_NOMEM. */
static enum sp_close_reason rx_grow(struct sp_session *s, size_t need)
{
	size_t cap = s->rx_cap ? 2 * (size_t)s->rx_cap : SP_SESSION_RX_MIN;
	uint8_t *p;

	if (need <= s->rx_cap)
		return SP_CLOSE_NONE;
	if (cap < need)
		cap = need;
	if (cap > s->msg_len)
		cap = s->msg_len;
	p = realloc(s->rx_asm, cap);
	if (!p)
		return SP_CLOSE_NOMEM;
	if (s->env->rx_bytes)
		*s->env->rx_bytes += cap - s->rx_cap;
	s->rx_asm = p;
	s->rx_cap = (uint32_t)cap;
	return SP_CLOSE_NONE;
}

/* Takes message bytes: in place when the whole message is here, else into
 * the reassembly buffer. Returns bytes consumed. */
static size_t take_message(struct sp_session *s, uint8_t *p, size_t n, enum sp_close_reason *r)
{
	size_t len = s->msg_len, take;

	if (!s->rx_asm && n >= len) {
		s->msg_len = 0;
		*r = message(s, p, len);
		return len;
	}
	take = len - s->rx_have;
	if (take > n)
		take = n;
	if ((*r = rx_grow(s, s->rx_have + take)))
		return n;
	memcpy(s->rx_asm + s->rx_have, p, take);
	s->rx_have += (uint32_t)take;
	if (s->rx_have == len) {
		/* Taken from the session for the dispatch, so that a hook that
		 * ends or wipes the session (which frees a reassembly buffer)
		 * cannot free the frames being walked. */
		uint8_t *buf = s->rx_asm;
		size_t cap = s->rx_cap;

		s->rx_asm = NULL;
		s->rx_cap = 0;
		s->rx_have = 0;
		s->msg_len = 0;
		*r = message(s, buf, len);
		free(buf);
		if (s->env->rx_bytes)
			*s->env->rx_bytes -= cap;
	}
	return take;
}

int sp_session_detach(struct sp_session *s, struct sp_session *out,
		      struct sp_session_keys *keys)
{
	if (s->state != SP_SESSION_ESTABLISHED || !s->keys || s->hs || s->rx_asm || s->msg_len ||
	    s->pfx_len || s->tx_open || s->q.head || s->q.bytes)
		return -EBUSY;
	*out = *s;
	out->keys = NULL;
	out->env = NULL;
	memcpy(keys, s->keys, sizeof(*keys));
	sp_session_wipe(s);
	return 0;
}

int sp_session_attach(struct sp_session *s, const struct sp_session *in,
		      const struct sp_session_env *env, const struct sp_session_keys *keys)
{
	*s = *in;
	s->env = env;
	s->keys = NULL;
	s->paused = false;
	s->rx_left = 0;
	if (sp_session_keys_init(s)) {
		memset(s, 0, sizeof(*s));
		return -ENOMEM;
	}
	memcpy(s->keys, keys, sizeof(*keys));
	return 0;
}

bool sp_session_first_in(const struct sp_session *s)
{
	if (s->state == SP_SESSION_HANDSHAKE)
		return s->hs && s->hs->state != SP_NOISE_HS_EMPTY;
	return s->state == SP_SESSION_ESTABLISHED || s->state == SP_SESSION_CLOSING;
}

static bool reading(const struct sp_session *s)
{
	return !s->halted && !s->paused && (s->state == SP_SESSION_PREAMBLE || s->state == SP_SESSION_HANDSHAKE ||
			      s->state == SP_SESSION_ESTABLISHED);
}

enum sp_close_reason sp_session_rx(struct sp_session *s, uint8_t *data, size_t len)
{
	enum sp_close_reason r = SP_CLOSE_NONE;
	size_t off = 0;

	while (off < len && r == SP_CLOSE_NONE && reading(s)) {
		if (s->state == SP_SESSION_PREAMBLE)
			off += take_preamble(s, data + off, len - off, &r);
		else if (s->msg_len == 0)
			off += take_prefix(s, data + off, len - off, &r);
		else
			off += take_message(s, data + off, len - off, &r);
	}
	s->rx_left = s->paused ? (uint32_t)(len - off) : 0;
	return r;
}
