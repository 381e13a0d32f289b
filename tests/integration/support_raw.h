/* SPDX-License-Identifier: Apache-2.0 */
/*
 * support_raw.h: a raw sealpost protocol client for integration tests.
 *
 * Built directly on lib/crypto/sp_noise.h, the protobuf-c generated schema and a
 * blocking socket, NOT on libsealpost: it is an independent second
 * implementation of the wire protocol (docs/PROTOCOL.md), and it can say
 * things a correct client never would. Every step is exposed so a test can
 * break the protocol at any point: send any preamble, rewrite a handshake
 * message before it leaves, announce a fake static key, send any bytes or any
 * length prefix, encrypt any plaintext (including malformed frames) as a
 * valid transport message, or flip a bit of a ciphertext.
 *
 * Frame headers are encoded and decoded here with protobuf-c directly rather
 * than with lib/wire/sp_frame.c, so a bug in the shared frame code cannot hide
 * itself in the tests (and `to` can be given any length).
 *
 * Every receive is bounded (poll with a deadline, plus SO_RCVTIMEO and
 * SO_SNDTIMEO of 10 s on the socket), so a test never hangs on a broker.
 *
 * Errors: 0 or a negative errno:
 *   -ENOTCONN   the broker closed the connection (read returned 0)
 *   -ECONNRESET the broker reset the connection
 *   -ETIMEDOUT  nothing (or not enough) arrived within the timeout
 *   -EBADMSG    a message from the broker failed to decrypt or parse
 *   -EPROTO     the broker sent something valid but unexpected
 *   -EMSGSIZE   a buffer is too small / a message too long
 *   others from the system (-EPIPE on a write after the broker closed, ...)
 *
 * Threading: a struct sp_raw is used by one thread at a time.
 */
#ifndef SP_IT_SUPPORT_RAW_H
#define SP_IT_SUPPORT_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_limits.h"
#include "sp_noise.h"

enum {
	SP_RAW_TIMEOUT_MS = 10000,      /* default bound for a receive */
	SP_RAW_RX_CAP = SP_LEN_PREFIX + SP_NOISE_MSG_MAX,
};

struct sp_raw {
	int fd;                         /* -1 when not connected */
	const char *bind_src;           /* source address to connect from; NULL = 127.0.0.1 */
	uint8_t s_priv[SP_KEY_LEN];     /* this device's static key pair */
	uint8_t s_pub[SP_KEY_LEN];
	uint8_t server_pub[SP_KEY_LEN]; /* given (IK) or learned in the handshake (XX) */
	uint8_t preamble[SP_PREAMBLE_LEN];
	/* ServerHello, once the handshake is done */
	uint32_t protocol_version, max_envelope, max_transport;
	bool established;
	struct sp_noise_transport t;
	/* The last decrypted transport plaintext; recv_frame walks it. */
	uint8_t *rx;                    /* SP_RAW_RX_CAP bytes, owned */
	size_t rx_len, rx_off;
	uint64_t bytes_in;              /* raw bytes received on this connection */
	/* When non-zero, each write goes out as send() calls of at most this
	 * many bytes, a short pause apart (TCP_NODELAY is on), so the broker
	 * sees length prefixes and messages split across its receives. */
	size_t write_chunk;
	/* Bytes held back to go out in the same write as the next ones (owned). */
	uint8_t *held;
	size_t held_len;
	/* WebSocket (support_ws.h): once upgraded, every write goes out as one
	 * masked binary message (split into ws_fragment-byte frames when
	 * non-zero) and reads take the payload of the broker's binary
	 * messages; a close frame from the broker is recorded in ws_close_code
	 * and reads then fail with -ENOTCONN. */
	bool ws_mode;
	size_t ws_fragment;
	uint16_t ws_close_code;         /* 0 = none received */
	uint8_t *ws_in;                 /* payload received, not yet read (owned) */
	size_t ws_in_len, ws_in_off;
};

/*
 * Hook on the handshake messages the client writes (msg_no 1 for IK and XX,
 * 3 for XX), called after Noise wrote the message and before it is sent.
 * It may rewrite msg (cap bytes) and *len. Return 0: send it and go on;
 * 1: send it and stop (sp_raw_handshake returns 1, the test decides what
 * follows); < 0: send nothing and return that error.
 */
typedef int (*sp_raw_hs_hook)(int msg_no, uint8_t *msg, size_t *len, size_t cap, void *arg);

struct sp_raw_opts {
	const uint8_t *preamble;        /* 8 bytes to send instead (also the prologue) */
	const uint8_t *fake_s_pub;      /* announce this static public key instead of ours */
	sp_raw_hs_hook hook;
	void *hook_arg;
	/* ClientHello payload bytes to send instead of {protocol_version = 1}
	 * (hello_len may be 0 when hello is non-NULL: an empty payload). */
	const uint8_t *hello;
	size_t hello_len;
	/* Coalescing: send the preamble in one write with message 1; hold the
	 * last XX message (3) back so it goes out in one write with whatever
	 * the test sends next (its first transport message). */
	bool preamble_with_msg1;
	bool hold_last;
	/* IK: do not send the empty proof transport message after message 2
	 * (the broker then never routes the device: PROTOCOL.md 4, "Proof"). */
	bool no_proof;
	int timeout_ms;                 /* bound on each receive; 0 = SP_RAW_TIMEOUT_MS */
};

/* Fresh identity (random static key pair), not connected. 0 or -ENOMEM. */
int sp_raw_init(struct sp_raw *c);
/* Closes the socket and wipes every key. Safe to call twice. */
void sp_raw_close(struct sp_raw *c);
/* Closes the socket and wipes the session keys, keeping the identity (and
 * the receive buffer): sp_raw_open connects the same device again. */
void sp_raw_disconnect(struct sp_raw *c);
/* Closes with an RST instead of a FIN (SO_LINGER 0): an abrupt disconnect. */
void sp_raw_abort(struct sp_raw *c);

/* TCP connect to 127.0.0.1:port (from c->bind_src if set). */
int sp_raw_connect(struct sp_raw *c, uint16_t port);

/* The standard preamble for pattern (SP_PREAMBLE_PATTERN_IK / _XX). */
void sp_raw_preamble(uint8_t out[SP_PREAMBLE_LEN], uint8_t pattern);

/*
 * Sends the preamble and runs the handshake as initiator.
 * pattern: SP_PREAMBLE_PATTERN_IK (server_pub required) or _XX (server_pub
 * optional: when given, the key the broker proves must equal it, else
 * -EPROTO). opts may be NULL. On 0 the connection is established and the
 * ServerHello fields are filled in.
 */
int sp_raw_handshake(struct sp_raw *c, uint8_t pattern, const uint8_t *server_pub,
		     const struct sp_raw_opts *opts);

/* init (if c->fd < 0 and no key yet) + connect + handshake with defaults. */
int sp_raw_open(struct sp_raw *c, uint16_t port, uint8_t pattern, const uint8_t *server_pub);

/* The socket underneath (WebSocket or not): all of buf out; exactly len
 * bytes in before the deadline (ms, sp_clock_mono_ms). For support_ws.c. */
int sp_raw_sock_send(struct sp_raw *c, const uint8_t *p, size_t len);
int sp_raw_sock_read(struct sp_raw *c, uint8_t *buf, size_t len, int64_t deadline);

/* --- bytes and Noise messages ------------------------------------------------ */

/* Writes all of buf (borrowed for the call). */
int sp_raw_send_bytes(struct sp_raw *c, const void *buf, size_t len);
/* u16 length prefix + msg (len <= 65535; 0 allowed, to test the broker). */
int sp_raw_send_msg(struct sp_raw *c, const uint8_t *msg, size_t len);
/* Reads one length-prefixed message into buf (cap bytes). */
int sp_raw_recv_msg(struct sp_raw *c, uint8_t *buf, size_t cap, size_t *len, int timeout_ms);

/*
 * Encrypts plain (any bytes, <= SP_TRANSPORT_PLAINTEXT_MAX) as the next
 * transport message into out (cap >= len + SP_TAG_LEN), without sending it.
 * Advances the send nonce. plain and out are borrowed for the call.
 */
int sp_raw_seal(struct sp_raw *c, const uint8_t *plain, size_t len, uint8_t *out, size_t cap,
		size_t *out_len);
/* sp_raw_seal + sp_raw_send_msg. */
int sp_raw_send_plain(struct sp_raw *c, const uint8_t *plain, size_t len);

/* --- frames ---------------------------------------------------------------- */

/*
 * Appends one frame at buf[*off]: prefix (header_len, body_len as given),
 * header bytes, body bytes. Everything borrowed for the call. To lie about a
 * length, write the prefix yourself; this one is always truthful.
 */
int sp_raw_put_frame(uint8_t *buf, size_t cap, size_t *off, const uint8_t *hdr, size_t hdr_len,
		     const uint8_t *body, size_t body_len);
/* A Send frame; `to` may have any length (to_len), to test malformed keys. */
int sp_raw_put_send(uint8_t *buf, size_t cap, size_t *off, const uint8_t *to, size_t to_len,
		    uint64_t client_id, uint32_t flags, const uint8_t *body, size_t body_len);
/*
 * Any frame type with its single scalar field set to value: Ping/Pong (id),
 * Deliver (seq), SendResult (client_id, status = value), Drained (count),
 * GoAway (code), Ack (one seq). Lets a test send frames of the wrong direction.
 */
int sp_raw_put_simple(uint8_t *buf, size_t cap, size_t *off, enum sp_frame_type type,
		      uint64_t value, const uint8_t *body, size_t body_len);
/* A ListPut (with body) or ListFetch frame; account may have any length. */
int sp_raw_put_list(uint8_t *buf, size_t cap, size_t *off, enum sp_frame_type type,
		    const uint8_t *account, size_t account_len, uint64_t client_id,
		    const uint8_t *body, size_t body_len);
/* SetAccess (26): key (key_len bytes, any length) borrowed for the call. */
int sp_raw_put_set_access(uint8_t *buf, size_t cap, size_t *off, uint64_t client_id,
			  const uint8_t *key, size_t key_len, uint32_t flags);
/* AnonSend (28): to, token and body borrowed for the call; any lengths. */
int sp_raw_put_anon_send(uint8_t *buf, size_t cap, size_t *off, const uint8_t *to, size_t to_len,
			 const uint8_t *token, size_t token_len, uint64_t client_id, uint32_t flags,
			 const uint8_t *body, size_t body_len);
/* FanoutBegin (13) and FanoutCopy (14), PROTOCOL.md 16; keys of any
 * length, everything borrowed for the call. */
int sp_raw_put_fanout_begin(uint8_t *buf, size_t cap, size_t *off, const uint8_t *account,
			    size_t account_len, uint64_t group_id, uint64_t version, uint32_t count);
int sp_raw_put_fanout_copy(uint8_t *buf, size_t cap, size_t *off, const uint8_t *to,
			   size_t to_len, uint64_t group_id, const uint8_t *body, size_t body_len);
/* Encodes just the FrameHeader protobuf of sp_raw_put_simple into hdr. */
int sp_raw_encode_header(enum sp_frame_type type, uint64_t value, uint8_t *hdr, size_t cap,
			 size_t *len);

struct sp_raw_frame {
	enum sp_frame_type type;
	uint64_t client_id;             /* SendResult */
	uint32_t status;                /* SendResult.status, GoAway.code */
	uint64_t seq;                   /* SendResult, Deliver */
	uint64_t id;                    /* Ping, Pong */
	uint64_t count;                 /* Drained */
	/* ListResult (client_id, status, seq = version) and ListChanged (seq =
	 * version): the account and how much of the body is the list. */
	uint8_t account[SP_ACCOUNT_LEN];
	uint32_t list_len;
	/* LogReply: client_id, status; account = log_key, list_len = leaf_len. */
	/* FanoutResult: client_id = group_id, status, seq = version; the body
	 * is missing * 32 then stale * 32 bytes of keys. */
	uint32_t missing, stale;
	/* Borrowed: points into c->rx, valid until the next receive on c. */
	const uint8_t *body;
	size_t body_len;
};

/* Next frame from the broker (decrypting a new transport message when the
 * last one is used up). -EBADMSG for a frame that does not parse. */
int sp_raw_recv_frame(struct sp_raw *c, struct sp_raw_frame *f, int timeout_ms);
/*
 * Next frame of the given type. A Ping from the broker is answered with a
 * Pong and skipped, a Drained is skipped (unless type is Drained); any other
 * frame gives -EPROTO with f filled in, so the test can say what came instead.
 */
int sp_raw_wait_frame(struct sp_raw *c, enum sp_frame_type type, struct sp_raw_frame *f,
		      int timeout_ms);

/* One Send frame (to is SP_KEY_LEN bytes) in one transport message. */
int sp_raw_send_envelope(struct sp_raw *c, const uint8_t *to, uint64_t client_id,
			 const uint8_t *body, size_t body_len);
/* Waits for the SendResult; -EPROTO if its client_id is not the one given. */
int sp_raw_expect_result(struct sp_raw *c, uint64_t client_id, uint32_t *status, int timeout_ms);

/*
 * Reads and discards until the broker closes the connection. 0 when closed
 * (EOF or reset) within timeout_ms, -ETIMEDOUT if still open. *bytes (may be
 * NULL) receives how many bytes arrived meanwhile.
 */
int sp_raw_wait_closed(struct sp_raw *c, int timeout_ms, size_t *bytes);

/*
 * For an established connection: reads frames until a GoAway, stores its
 * code, then waits for the close. Frames before the GoAway are skipped and
 * counted in *skipped (may be NULL). -ENOTCONN if it closed without a GoAway.
 */
int sp_raw_expect_goaway(struct sp_raw *c, uint32_t *code, int timeout_ms, int *skipped);

#endif
