/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_session.h: one protocol session, either role, sans I/O.
 *
 * Bytes in, bytes out, events and frames out. A session takes the bytes its
 * peer sent (sp_session_rx) and hands out the bytes to send
 * (sp_session_tx_peek / sp_session_tx_sent); in between it runs the
 * protocol of docs/PROTOCOL.md: the 8-byte preamble, the 2-byte big-endian
 * length before every Noise message and their reassembly across receive
 * buffers, the IK / XX handshake (initiator or responder), the proof rule,
 * and transport messages: decrypted in place, each frame handed up through
 * a hook; outbound frames batched into one transport message until
 * sp_session_tx_seal.
 *
 * Layering: above sp_noise and sp_frame; below the broker's connections
 * and the client library. It never sees a socket or a clock: the caller
 * does the I/O, the timeouts and the routing. It calls up only through
 * struct sp_session_hooks; callers call down through tx_frame, tx_seal,
 * tx_peek, tx_sent and end.
 *
 * Memory of a session, by state:
 *   handshake: the handshake state, in a slot of the env's slab (locked
 *     memory, sp_slab.h), wiped and freed at split or wipe
 *   established: the keys (the two cipher states, 96 bytes), in a slot of
 *     the env's key_slab, wiped by sp_session_wipe; the peer key
 *   the open outbound message's stream (its keystream block and Poly1305
 *     key), in a slot of the slab only from the first frame of a
 *     transport message to its seal: an idle session holds none
 *   an rx reassembly buffer only while a Noise message straddles receive
 *   buffers; tx chunks (sp_txq.h) only while there is output not yet sent
 *
 * Secrets: sp_session_wipe wipes every key the session holds; call it on
 * every path out (sp_session_release does too).
 *
 * Threading: a session, its env and its pool belong to one thread.
 */
#ifndef SP_SESSION_H
#define SP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_frame.h"
#include "sp_limits.h"
#include "sp_reasons.h"
#include "sp_noise.h"
#include "sp_slab.h"
#include "sp_txq.h"

/* The first reassembly allocation: the buffer then doubles as bytes
 * arrive, up to the message's length. */
enum { SP_SESSION_RX_MIN = 2048 };

enum sp_session_state {
	SP_SESSION_FREE = 0,            /* unused (zeroed), or released */
	SP_SESSION_PREAMBLE,            /* responder: waiting for the 8-byte preamble */
	SP_SESSION_HANDSHAKE,           /* Noise handshake in progress */
	SP_SESSION_ESTABLISHED,         /* transport */
	SP_SESSION_CLOSING,             /* sp_session_end: output drains, input is discarded */
	SP_SESSION_DEAD,                /* wiped; tx chunks kept until sp_session_release */
};

enum sp_session_role {
	SP_SESSION_RESPONDER = 0,
	SP_SESSION_INITIATOR,
};

/* A session's transport secrets: one key_slab slot from the handshake's
 * split to sp_session_wipe (104 bytes: a 112-byte slot). */
struct sp_session_keys {
	struct sp_noise_transport t;
	/* The open outbound transport message: a slot of the env's slab
	 * while tx_open (sp_session_tx_frame to sp_session_tx_seal), else
	 * NULL. Apart from the keys because it is 336 bytes that only a
	 * connection with output being framed needs. */
	struct sp_noise_stream *tx;
};

/* The slot size an env's slab needs: the largest of the handshake state,
 * the outbound stream and struct sp_session_keys (so one slab can hold
 * all three, key_slab NULL). */
size_t sp_session_slot_size(void);

/* The slot size an env's key_slab needs: struct sp_session_keys. */
size_t sp_session_keys_slot_size(void);

/* Why a session (connection) ends: enum sp_close_reason and
 * sp_close_reason_name, generated in sp_reasons.h (wire). */

struct sp_session {
	uint8_t state;                  /* enum sp_session_state */
	uint8_t role;                   /* enum sp_session_role */
	uint8_t pattern;                /* SP_PREAMBLE_PATTERN_* */
	bool has_peer;                  /* peer holds the peer's proven static key (false: NK, anonymous) */
	/* The peer has shown it holds the transport keys. Responder: XX at
	 * message 3; IK only with its first authenticated transport message,
	 * since an IK message 1 can be replayed by anyone who saw it (the
	 * responder cannot tell). Initiator: at message 2, which is mixed with
	 * our fresh ephemeral. */
	bool proven;
	bool halted;                    /* sp_session_halt: the rest of the input is dropped */
	bool paused;                    /* sp_session_pause: the rest of the input is left */
	bool tx_open;                   /* tx holds an open outbound transport message */
	uint8_t aead;                   /* enum sp_noise_aead: preamble byte 6 (initiator: proposed) */

	/* rx */
	uint8_t pre[SP_PREAMBLE_LEN];
	uint8_t pre_len;
	uint8_t pfx[SP_LEN_PREFIX];     /* a length prefix split across buffers */
	uint8_t pfx_len;
	uint32_t msg_len;               /* length of the message being read; 0 = prefix next */
	uint32_t rx_have;
	uint32_t rx_cap;                /* bytes allocated at rx_asm (grown as bytes arrive) */
	uint8_t *rx_asm;                /* reassembly, only while a message straddles buffers */
	/* Whole transport messages authenticated so far: what an idle timer
	 * watches (a trickle of bytes that never completes one is idle). */
	uint32_t rx_msgs;
	/* Paused: bytes of the last sp_session_rx call it did not consume
	 * (the tail of the buffer, for the owner to feed again later). */
	uint32_t rx_left;

	/* tx */
	uint32_t tx_pfx;                /* offset of the open message's prefix in q.tail */
	uint32_t tx_max;                /* plaintext bytes per transport message we send */
	struct sp_txq q;

	/* crypto: both in slots of env->slab (or zeroed heap without one) */
	struct sp_noise_handshake *hs;  /* only while handshaking */
	struct sp_session_keys *keys;   /* from the split to the wipe */
	uint8_t peer[SP_KEY_LEN];       /* the peer's static key, once has_peer */

	const struct sp_session_env *env;
};

/* What the owner provides. Each hook returns SP_CLOSE_NONE to go on, or
 * why the session must end (sp_session_rx then returns it). */
struct sp_session_hooks {
	/* The handshake finished: s->peer is the peer's key. Responder: the
	 * device; initiator: the broker (already proven). */
	enum sp_close_reason (*established)(void *ctx, struct sp_session *s);
	/* Responder: the first transport message of an IK session
	 * authenticated (XX sessions are proven when established). Optional. */
	enum sp_close_reason (*proven)(void *ctx, struct sp_session *s);
	/* One frame of a transport message. f->body points into the receive
	 * buffer (or the reassembly buffer) and is valid for the call only. */
	enum sp_close_reason (*frame)(void *ctx, struct sp_session *s, const struct sp_frame *f);
	/* Initiator: the ServerHello payload of message 2 (borrowed for the
	 * call), to check and take limits from (sp_session_set_tx_max).
	 * Optional: without it any payload is taken. */
	enum sp_close_reason (*server_hello)(void *ctx, struct sp_session *s, const uint8_t *payload,
					     size_t len);
	void *ctx;
	/* Responder: the initiator's first handshake message was read whole,
	 * before any of its crypto: where a handshake rate is charged, so that
	 * sockets that never send one cost nothing. Optional. */
	enum sp_close_reason (*first_message)(void *ctx, struct sp_session *s);
	/* Responder: the peer's ClientHello (decoded, borrowed for the call),
	 * once the session is established (s->peer set), just before
	 * established; what the broker's registration policy reads
	 * (enrol_token). Not called for NK (anonymous) sessions. Optional. */
	enum sp_close_reason (*client_hello)(void *ctx, struct sp_session *s,
					     const struct sp_hello *h);
};

/* Shared by many sessions (a shard's connections, a swarm of clients);
 * borrowed by each for its whole life. */
struct sp_session_env {
	/* Responder: the broker's static key (borrowed) and, when
	 * has_static_pub, its public key computed once (sp_noise_public_key),
	 * so that a handshake does not recompute it. Unused by initiators. */
	const uint8_t *static_priv;
	uint8_t static_pub[SP_KEY_LEN];
	bool has_static_pub;
	/* The hello this side sends: ServerHello (responder) or ClientHello
	 * (initiator; only protocol_version is encoded). */
	struct sp_hello hello;
	struct sp_txpool *pool;
	struct sp_session_hooks hooks;
	/* Where the sessions' secrets live: slots of sp_session_slot_size()
	 * bytes in locked memory (sp_slab.h), borrowed for the env's life and
	 * used by its thread only. NULL: zeroed heap, wiped before free (tests,
	 * fuzzers; not for anything that holds real keys). */
	struct sp_slab *slab;
	/* Where the transport keys live when not in slab: slots of
	 * sp_session_keys_slot_size() bytes, a slot per established session
	 * for its whole life (the one secret an idle session holds), so that
	 * it pays 128 bytes rather than a handshake-sized slot. Borrowed like
	 * slab; NULL = the keys take slots of slab. */
	struct sp_slab *key_slab;
	/* Reassembly bytes allocated by every session on this env, kept up to
	 * date by them (the broker's memory budget reads it); NULL = not
	 * counted. Borrowed for the env's life. */
	uint64_t *rx_bytes;
	/* Transport messages per key before a rekey: 0 = SP_REKEY_MESSAGES,
	 * the protocol's value. Anything else is for tests only (both peers
	 * must use the same value, see sp_noise_transport_set_rekey). */
	uint64_t rekey_every;
	/* Initiator: the cipher its preamble proposes (enum sp_noise_aead;
	 * SP_NOISE_CHACHAPOLY = 0 is what every client sent before there was
	 * a choice). AESGCM on a CPU without it: connect gives -ENOTSUP. */
	uint8_t propose_aead;
	/* Responder: whether a preamble proposing AESGCM is taken (the
	 * owner sets it only where sp_noise_aead_available says the CPU
	 * can, and its configuration allows it); otherwise such a client
	 * gets the refusal preamble and the session ends with
	 * SP_CLOSE_CIPHER_REFUSED once it has drained. */
	bool accept_aesgcm;
};

/* A responder session for a fresh connection, in SP_SESSION_PREAMBLE. */
void sp_session_accept(struct sp_session *s, const struct sp_session_env *env);

/*
 * An initiator session: queues the preamble (proposing env->propose_aead)
 * and handshake message 1 (take them with sp_session_tx_peek). If the
 * broker refuses the cipher, sp_session_rx returns
 * SP_CLOSE_CIPHER_REFUSED: connect again with ChaChaPoly. static_priv: this device's key, copied
 * into the handshake (borrowed for the call). server_key: the broker's
 * static public key (borrowed for the call): IK; NULL: XX.
 * 0, -ENOMEM, -EINVAL (a bad key), -ENOTSUP (AESGCM proposed on a CPU
 * without AES-NI), or an sp_noise error; on error the
 * session is wiped (call sp_session_release).
 */
int sp_session_connect(struct sp_session *s, const struct sp_session_env *env,
		       const uint8_t *static_priv, const uint8_t *server_key);

/*
 * An anonymous initiator session (Noise NK, preamble pattern 3): the broker
 * learns no key of ours. server_key is required (borrowed for the call).
 * The same returns as sp_session_connect. PROTOCOL.md 14.
 */
int sp_session_connect_anonymous(struct sp_session *s, const struct sp_session_env *env,
				 const uint8_t *server_key);

/*
 * Consumes received bytes. data: borrowed for the call and written to
 * (transport messages are decrypted in place); nothing points into it after
 * the call returns, so the caller recycles the buffer right after. Hooks
 * run inside this call. Returns SP_CLOSE_NONE, or why the session must end
 * (the caller ends it). Input is discarded once the session is CLOSING or
 * DEAD, or halted.
 */
enum sp_close_reason sp_session_rx(struct sp_session *s, uint8_t *data, size_t len);

/*
 * Appends one frame (and body_len bytes of body, encrypted straight from
 * body, which is borrowed for the call) to the open outbound transport
 * message, opening a new one when it would not fit. Established or closing
 * sessions only. 0, -ENOMEM (no chunk), -EINVAL (state), -EMSGSIZE (a frame
 * larger than a transport message), or an sp_noise error (the outbound
 * stream is then unusable: end the session).
 */
int sp_session_tx_frame(struct sp_session *s, const struct sp_frame *f, const uint8_t *body,
			size_t body_len);

/* Finishes the open outbound message (tag, length prefix), making it sendable. */
int sp_session_tx_seal(struct sp_session *s);

/* The finished bytes to send next, contiguous; false if none. Borrowed until
 * sp_session_tx_sent (the caller keeps one send in flight). */
/* Responder: the initiator's first handshake message has been read (the
 * broker's hello deadline ends there). */
bool sp_session_first_in(const struct sp_session *s);

static inline bool sp_session_tx_peek(const struct sp_session *s, const uint8_t **p, size_t *len)
{
	return sp_txq_peek(&s->q, p, len);
}

/* n bytes of the peeked range went out; fully sent chunks go back to the pool. */
static inline void sp_session_tx_sent(struct sp_session *s, size_t n)
{
	sp_txq_sent(&s->q, s->env->pool, n, s->tx_open);
}

/* Bytes this session holds for input: its reassembly buffer (0 when no
 * message straddles receive buffers). */
static inline size_t sp_session_rx_held(const struct sp_session *s)
{
	return s->rx_cap;
}

/* Bytes written and not yet sent (an open message included). */
static inline uint64_t sp_session_tx_queued(const struct sp_session *s)
{
	return s->q.bytes;
}

/* Initiator: caps the plaintext of each transport message it sends (from
 * ServerHello.max_transport); 0 or above the protocol maximum: the maximum. */
void sp_session_set_tx_max(struct sp_session *s, size_t max);

/* Established: the session goes CLOSING: what is queued still drains
 * (frames may still be added, e.g. a GoAway), input is discarded. */
void sp_session_end(struct sp_session *s);

/* Any live state (preamble, handshake, established): CLOSING, like
 * sp_session_end, for an owner whose transport has its own last words to
 * send before the end (a WebSocket refusal or close frame): input is
 * discarded; nothing may be framed into a session that was not
 * established; what is queued drains. */
void sp_session_drain(struct sp_session *s);

/* Input after the current transport message (the rest of this receive
 * buffer and everything later) is dropped unread: for an owner that decided
 * inside a hook to end the session after the current iteration. */
static inline void sp_session_halt(struct sp_session *s)
{
	s->halted = true;
}

/*
 * Pause, for an owner that moves the session to another thread (the
 * broker hands a connection to its device's home shard): called in a hook,
 * it makes sp_session_rx stop after the current message and leave the rest
 * of its buffer unread, s->rx_left bytes of it (its tail), for the owner to
 * keep and feed again after sp_session_attach.
 */
static inline void sp_session_pause(struct sp_session *s)
{
	s->paused = true;
}

/*
 * Moving an established session between envs (threads). detach: only
 * between messages, with no reassembly and no output queued or open
 * (-EBUSY otherwise, nothing changed); *out becomes a copy of the session
 * without its keys or env, *keys its transport keys (caller's memory:
 * locked, and wiped by the caller once attached), and s is wiped (DEAD;
 * release it as usual). attach: s (FREE) becomes *in under env, its keys
 * copied from *keys into a slot of env's slab, not paused any more;
 * 0 or -ENOMEM (s stays FREE).
 */
int sp_session_detach(struct sp_session *s, struct sp_session *out,
		      struct sp_session_keys *keys);
int sp_session_attach(struct sp_session *s, const struct sp_session *in,
		      const struct sp_session_env *env, const struct sp_session_keys *keys);

/* For an owner that installs transport keys itself instead of running a
 * handshake (the hot-path benchmark): gives an established session its
 * zeroed keys slot. 0 or -ENOMEM. */
int sp_session_keys_init(struct sp_session *s);

/* Wipes the secrets and frees the handshake and rx buffers; the session is
 * DEAD. Its tx chunks stay (a send of them may be in flight). */
void sp_session_wipe(struct sp_session *s);

/* Wipes (if not done) and returns every tx chunk to the pool, once no send
 * is in flight; the session is FREE. */
void sp_session_release(struct sp_session *s);

#endif
