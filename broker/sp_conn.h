/*
 * sp_conn.h: one client connection: preamble -> Noise handshake -> transport.
 *
 * This module drives sp_noise and sp_frame for one connection: it reassembles
 * length-prefixed Noise messages from receive buffers, runs the responder
 * side of IK / XX, decrypts transport messages in place and hands each frame
 * to the shard (sp_conn_hooks), and builds outbound transport messages
 * frame by frame (sp_conn_tx_frame) in a queue of fixed-size chunks.
 *
 * Layering: it knows bytes in and bytes out, never sockets or the ring (the
 * shard submits the I/O), and it does not route (the shard does).
 *
 * Memory of a connection, by state:
 *   handshake: the heap handshake state (wiped and freed at split or close)
 *   established: two cipher states (wiped at close), the device key
 *   an rx reassembly buffer only while a Noise message straddles receive
 *   buffers; tx chunks only while there is output not yet sent
 *
 * Threading: a connection belongs to its shard's thread.
 */
#ifndef SP_CONN_H
#define SP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_frame.h"
#include "sp_limits.h"
#include "sp_list.h"
#include "sp_noise.h"

/*
 * Outbound chunks: fixed size, big enough for one maximal Noise message and
 * its length prefix, so a message never straddles two chunks and one send
 * covers the finished bytes of a chunk. Free chunks are kept per shard.
 */
enum {
	SP_TXCHUNK_DATA = SP_LEN_PREFIX + SP_NOISE_MSG_MAX + 1533, /* 67070: 64 KiB + change */
};

struct sp_txchunk {
	struct sp_txchunk *next;
	uint32_t head;          /* first byte not yet sent */
	uint32_t done;          /* end of finished (sendable) messages */
	uint32_t tail;          /* end of written bytes (includes an open message) */
	uint8_t data[SP_TXCHUNK_DATA];
};

struct sp_txpool {
	struct sp_txchunk *free;
	uint32_t nfree;
	uint32_t max_free;      /* free chunks kept beyond this go back to malloc */
	uint64_t live;          /* chunks allocated and not freed (for tests / metrics) */
};

void sp_txpool_init(struct sp_txpool *p, uint32_t max_free);
void sp_txpool_destroy(struct sp_txpool *p);

enum sp_conn_state {
	SP_CONN_FREE = 0,       /* slot unused */
	SP_CONN_PREAMBLE,       /* waiting for the 8-byte preamble */
	SP_CONN_HANDSHAKE,      /* Noise handshake in progress */
	SP_CONN_ESTABLISHED,    /* transport */
	SP_CONN_CLOSING,        /* GoAway queued: draining output, input discarded */
	SP_CONN_DEAD,           /* torn down; waiting for in-flight requests to finish */
};

/* Why a connection ends; also the `reason` value in log lines. */
enum sp_close_reason {
	SP_CLOSE_NONE = 0,
	SP_CLOSE_EOF,                   /* peer closed */
	SP_CLOSE_IO,                    /* socket error */
	SP_CLOSE_BAD_PREAMBLE,
	SP_CLOSE_BAD_LENGTH,            /* length 0, or a handshake message too long */
	SP_CLOSE_HANDSHAKE_FAILED,      /* decrypt, payload, or key check failed */
	SP_CLOSE_HANDSHAKE_TIMEOUT,
	SP_CLOSE_DECRYPT_FAILED,        /* transport message failed authentication */
	SP_CLOSE_PROTOCOL,              /* malformed or forbidden frame: GoAway PROTOCOL */
	SP_CLOSE_TAKEOVER,              /* GoAway TAKEOVER */
	SP_CLOSE_SHUTDOWN,              /* GoAway SHUTDOWN */
	SP_CLOSE_SLOW_CONSUMER,         /* GoAway SLOW_CONSUMER */
	SP_CLOSE_IDLE,                  /* GoAway IDLE */
	SP_CLOSE_NOMEM,
	SP_CLOSE_INTERNAL,
	SP_CLOSE_REASON_COUNT,
};

const char *sp_close_reason_name(enum sp_close_reason r);

/*
 * How durable envelopes reach a routed device (the shard decides; see
 * sp_shard.c). While a reader mode is on, new durable envelopes for the
 * device are only stored and reach it through the reader, in seq order.
 */
enum sp_mbox_mode {
	SP_MBOX_NONE = 0,       /* not routed yet: nothing is delivered */
	SP_MBOX_BACKLOG,        /* reading the stored backlog; Drained{count} at its end */
	SP_MBOX_CATCHUP,        /* reading again after the outbound queue was full (no Drained) */
	SP_MBOX_LIVE,           /* durable envelopes go straight from the sender's buffer */
};

struct sp_conn {
	int fd;
	uint32_t slot;
	uint32_t gen;                   /* bumped when the slot is freed */
	enum sp_conn_state state;
	enum sp_close_reason close_reason; /* set when the shard must end it */
	uint8_t pattern;                /* SP_PREAMBLE_PATTERN_* */

	/* I/O in flight: the slot is not reused until all are false. */
	bool recv_armed;
	bool send_inflight;
	bool shutdown_inflight;
	bool shut_wr;                   /* SHUT_WR issued (CLOSING, output drained) */
	bool abort_close;               /* close with RST: drop what the kernel still holds */
	bool dirty;                     /* on the shard's flush list */
	bool has_device;                /* device holds the proven static key */
	/* The peer has shown it holds the transport keys: XX at message 3; IK only
	 * with its first authenticated transport message, since an IK message 1
	 * can be replayed by anyone who saw it (the responder cannot tell). */
	bool proven;
	bool routed;                    /* the shard's routing table names this connection */

	/* rx */
	uint8_t pre[SP_PREAMBLE_LEN];
	uint8_t pre_len;
	uint8_t pfx[SP_LEN_PREFIX];     /* a length prefix split across buffers */
	uint8_t pfx_len;
	uint32_t msg_len;               /* length of the message being read; 0 = prefix next */
	uint8_t *rx_asm;                /* reassembly, only while a message straddles buffers */
	uint32_t rx_have;

	/* crypto */
	struct sp_noise_handshake *hs;  /* heap, only while handshaking */
	struct sp_noise_transport t;
	struct sp_noise_stream tx;      /* the open outbound transport message */
	bool tx_open;
	uint32_t tx_pfx;                /* offset of its length prefix in tx_tail */
	uint8_t device[SP_KEY_LEN];     /* rs, once established */

	/* tx */
	struct sp_txchunk *tx_head, *tx_tail;
	uint64_t txq_bytes;             /* written and not yet sent */
	uint32_t send_len;              /* bytes of the send in flight */

	/* mailbox delivery (the shard's; see sp_shard.c "mailboxes") */
	uint8_t mbox;                   /* enum sp_mbox_mode */
	uint64_t mbox_from;             /* the backlog reader's next seq */
	uint64_t mbox_count;            /* backlog envelopes sent (Drained.count) */
	struct sp_list drain;           /* in the shard's drain list while the reader runs */

	/* timers and lists of the shard */
	struct sp_list timer;           /* in exactly one deadline-ordered list, or none */
	uint64_t deadline_ns;
	struct sp_conn *dirty_next;
};

/* What the shard provides to a connection while it processes input. */
struct sp_conn_hooks {
	/* The handshake finished: c->device is the proven device key. Return a
	 * close reason to refuse, or SP_CLOSE_NONE. */
	enum sp_close_reason (*established)(void *ctx, struct sp_conn *c);
	/* The first transport message of an IK connection authenticated (XX
	 * connections are proven at the end of the handshake). Optional. */
	enum sp_close_reason (*proven)(void *ctx, struct sp_conn *c);
	/* One frame of a transport message. f->body points into the receive
	 * buffer and is valid for the call only. */
	enum sp_close_reason (*frame)(void *ctx, struct sp_conn *c, const struct sp_frame *f);
	void *ctx;
};

struct sp_conn_env {
	const uint8_t *static_priv;     /* the broker's key; borrowed */
	/* static_priv's public key, computed once (sp_noise_public_key) so that a
	 * handshake does not recompute it; used only when has_static_pub. */
	uint8_t static_pub[SP_KEY_LEN];
	bool has_static_pub;
	struct sp_hello server_hello;
	struct sp_txpool *pool;
	struct sp_conn_hooks hooks;
};

/* A fresh connection on an accepted socket, in SP_CONN_PREAMBLE. */
void sp_conn_open(struct sp_conn *c, int fd, uint32_t slot);

/*
 * Consumes received bytes. data: borrowed for the call and written to
 * (transport messages are decrypted in place); nothing points into it after
 * the call returns, so the caller recycles the buffer right after.
 * Returns SP_CLOSE_NONE, or why the connection must end (the caller closes;
 * for SP_CLOSE_PROTOCOL with a GoAway). In SP_CONN_CLOSING input is discarded.
 */
enum sp_close_reason sp_conn_rx(struct sp_conn *c, const struct sp_conn_env *env, uint8_t *data,
				size_t len);

/*
 * Appends one frame (and body_len bytes of body, encrypted straight from
 * body, which is borrowed for the call) to the open outbound transport
 * message, opening a new one when it would not fit. Established or closing
 * connections only. 0, -ENOMEM (no chunk), -EINVAL (state), or an sp_noise error.
 */
int sp_conn_tx_frame(struct sp_conn *c, struct sp_txpool *pool, const struct sp_frame *f,
		     const uint8_t *body, size_t body_len);

/* Finishes the open outbound message (tag, length prefix), making it sendable. */
int sp_conn_tx_seal(struct sp_conn *c);

/* The finished bytes to send next, contiguous; false if none. Borrowed until
 * sp_conn_tx_sent (the caller keeps one send in flight). */
bool sp_conn_tx_peek(const struct sp_conn *c, const uint8_t **p, size_t *len);

/* n bytes of the peeked range went out; fully sent chunks go back to the pool. */
void sp_conn_tx_sent(struct sp_conn *c, struct sp_txpool *pool, size_t n);

/* Wipes the secrets and frees the handshake and rx buffers (at teardown). */
void sp_conn_wipe(struct sp_conn *c);

/* Returns every tx chunk to the pool (once no send is in flight). */
void sp_conn_tx_release(struct sp_conn *c, struct sp_txpool *pool);

#endif
