/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sealpost.h: libsealpost, the sealpost client library (public API).
 *
 * A device holds a long-lived X25519 key pair; its public key is its address.
 * The library connects to a sealpost broker over TCP with a Noise handshake
 * (IK when the broker's public key is known, XX on first contact), seals each
 * application message end to end for its recipient (Noise_X: only the
 * recipient can open it, and it learns who wrote it), and opens what the
 * broker delivers. The broker only ever sees sealed bytes.
 *
 * This header is self-contained: it includes only <stdint.h>, <stddef.h> and
 * <stdbool.h>. docs/CLIENT.md is the guide; this file is the contract.
 *
 * Errors: every function that can fail returns 0 (or a count, where said) on
 * success and a negative errno on failure, like liburing:
 *   -EINVAL      bad argument (NULL where not allowed, bad hex, bad address)
 *   -ENOMEM      out of memory
 *   -EMSGSIZE    message too large for the broker's max_envelope, or an
 *                output buffer too small
 *   -ETIMEDOUT   the timeout expired (connect, flush, send_wait)
 *   -ECONNRESET  the broker closed the connection, or it was reset (this is
 *                also what a wrong server key looks like with IK: the broker
 *                closes without a reply)
 *   -ECONNREFUSED, -EHOSTUNREACH, ... from connect(2); -ENOENT, -EACCES, ...
 *                from key files
 *   -EPROTO      the broker broke the protocol (bad length, bad frame, bad
 *                handshake payload)
 *   -EBADMSG     authentication failed (a transport message, or a sealed
 *                envelope that does not open)
 *   -ENOTCONN    the connection is closed (or closing after a GoAway)
 *   -ENOBUFS     the send queue is full: call sealpost_client_flush() or
 *                sealpost_client_step() and retry
 *   -EADDRNOTAVAIL  host name did not resolve
 *   -E2BIG       sealpost_connect_opts set a field this library does not know
 *   -EEXIST      sealpost_key_save: the file exists
 *   -ENAMETOOLONG  a key file path too long for its temporary name
 * sealpost_strerror() turns any of these into a sentence.
 *
 * Threading: no global state. A sealpost_key may be used by any number of
 * threads at once for reading (every function taking a const struct
 * sealpost_key *); the key functions are thread-safe. A sealpost_client is
 * used by one thread at a time (no internal locking); different clients are
 * independent.
 *
 * Secrets: private keys live in guarded memory (libsodium sodium_malloc) and
 * are wiped when freed; opened plaintext buffers are wiped on close. The
 * library never logs anything.
 *
 * Buffer ownership is stated on every function: "borrowed for the call"
 * means the library does not keep the pointer after returning.
 *
 * Names: everything this header declares starts with sealpost_ (functions,
 * types, struct tags) or SEALPOST_ (macros, enum values), so it cannot clash
 * with an application's names or with the library's internal sp_ names,
 * which the shared library does not export. Functions are
 * sealpost_<object>_<verb>: sealpost_key_*, sealpost_envelope_*,
 * sealpost_client_*, sealpost_status_string.
 */
#ifndef SEALPOST_H
#define SEALPOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks what the shared library exports; the library is built with hidden
 * visibility, so nothing else is. */
#if defined(__GNUC__)
#define SEALPOST_API __attribute__((visibility("default")))
#else
#define SEALPOST_API
#endif

/*
 * The version of this header. CMake refuses to configure if these differ
 * from the project's VERSION; sealpost_version() is the library's own, which
 * may be newer than the header an app was built with (same major: the same
 * ABI).
 */
#define SEALPOST_VERSION_MAJOR 0
#define SEALPOST_VERSION_MINOR 1
#define SEALPOST_VERSION_PATCH 0
#define SEALPOST_VERSION_STRING "0.1.0"
/* One number for compile-time comparisons: 0x00MMmmpp. */
#define SEALPOST_VERSION_NUMBER \
	((SEALPOST_VERSION_MAJOR << 16) | (SEALPOST_VERSION_MINOR << 8) | SEALPOST_VERSION_PATCH)

/* The library's version, "MAJOR.MINOR.PATCH". Static storage; thread-safe. */
SEALPOST_API const char *sealpost_version(void);

/*
 * What an error this library returned means, in the library's words
 * ("the broker closed the connection", ...). err: the negative errno as
 * returned (a positive errno is taken the same); 0 gives "success". Every
 * code listed under "Errors:" above has its own text; any other gives
 * "unknown error". Static storage; thread-safe (unlike strerror(3)).
 */
SEALPOST_API const char *sealpost_strerror(int err);

enum {
	SEALPOST_KEY_LEN = 32,          /* X25519 public or private key, bytes */
	SEALPOST_KEY_HEX_LEN = 64,      /* its hex form, without the terminating NUL */
	SEALPOST_SEAL_OVERHEAD = 97,    /* sealed envelope size = message size + 97 */
	SEALPOST_ENVELOPE_MAX = 64000,  /* protocol maximum of a sealed envelope */
	/* Largest message the protocol allows; a broker may allow less, see
	 * sealpost_client_max_message(). */
	SEALPOST_MESSAGE_MAX = SEALPOST_ENVELOPE_MAX - SEALPOST_SEAL_OVERHEAD,
};

/*
 * Per-envelope result codes (RESULT events) and GoAway reasons (GOAWAY
 * events). Same numbers as the wire protocol (docs/PROTOCOL.md).
 */
enum sealpost_status {
	SEALPOST_STATUS_UNSPECIFIED = 0,
	/* Online-only send: handed to the recipient's live connection (not
	 * stored; the recipient's app may not have read it yet). */
	SEALPOST_STATUS_DELIVERED = 1,
	/* Durable send: stored in the recipient's mailbox (committed per the
	 * broker's --fsync mode) and kept until the recipient acknowledges it;
	 * also handed to its live connection if it has one. */
	SEALPOST_STATUS_ACCEPTED = 2,
	SEALPOST_STATUS_ERR_OFFLINE = 16,       /* online-only: recipient not connected; not kept */
	SEALPOST_STATUS_ERR_TOO_LARGE = 17,     /* envelope above the broker's max_envelope */
	SEALPOST_STATUS_ERR_BAD_RECIPIENT = 18, /* not a valid X25519 public key */
	SEALPOST_STATUS_ERR_RECIPIENT_BUSY = 19,/* recipient's queue is full */
	SEALPOST_STATUS_ERR_MAILBOX_FULL = 20,  /* recipient's mailbox count/bytes quota reached */
	SEALPOST_STATUS_ERR_RATE_LIMITED = 21,
	SEALPOST_STATUS_ERR_INTERNAL = 22,      /* the broker could not store it (not kept) */
	SEALPOST_STATUS_ERR_SHUTTING_DOWN = 23,
	SEALPOST_STATUS_GOAWAY_PROTOCOL = 32,   /* we sent something malformed */
	SEALPOST_STATUS_GOAWAY_TAKEOVER = 33,   /* the same device key connected again */
	SEALPOST_STATUS_GOAWAY_SHUTDOWN = 34,   /* the broker is stopping */
	SEALPOST_STATUS_GOAWAY_SLOW_CONSUMER = 35, /* we stopped reading */
	SEALPOST_STATUS_GOAWAY_IDLE = 36,       /* nothing received for too long */
};

/* A short lowercase name ("delivered", "err_offline", ...; "unknown" for
 * others). Static storage; thread-safe. */
SEALPOST_API const char *sealpost_status_string(int status);

/* ---------------------------------------------------------------- keys --- */

/*
 * A device key pair. Opaque; lives in guarded memory (libsodium
 * sodium_malloc: guard pages, locked, mapped read-only after creation).
 * Immutable: any number of threads may use one at once.
 */
struct sealpost_key;

/* New random key pair. *out: freed with sealpost_key_free. */
SEALPOST_API int sealpost_key_generate(struct sealpost_key **out);

/*
 * Key pair from a private key. priv: borrowed for the call (the caller
 * should wipe its copy). -EINVAL if priv gives a low-order public key.
 */
SEALPOST_API int sealpost_key_from_private(struct sealpost_key **out,
					   const uint8_t priv[SEALPOST_KEY_LEN]);

/*
 * Loads a private key file (64 lowercase hex characters and a newline).
 * path: borrowed for the call. -EACCES if the file is readable by group or
 * others (like ssh, a key others can read is refused); -EBADMSG if the
 * content is not exactly that format; other errno from open(2)/read(2).
 */
SEALPOST_API int sealpost_key_load(struct sealpost_key **out, const char *path);

/*
 * Saves the private key to a NEW file, mode 0600 (exclusive create, fsync'd).
 * -EEXIST if path exists. path: borrowed for the call.
 */
SEALPOST_API int sealpost_key_save(const struct sealpost_key *key, const char *path);

/* The public key (the device's address). pub: caller-owned, 32 bytes. */
SEALPOST_API void sealpost_key_public(const struct sealpost_key *key,
				      uint8_t pub[SEALPOST_KEY_LEN]);

/* Wipes and frees; NULL is allowed. Not concurrently with other uses. */
SEALPOST_API void sealpost_key_free(struct sealpost_key *key);

/* Public key to 64 lowercase hex characters + NUL. out: caller-owned, 65 bytes. */
SEALPOST_API void sealpost_key_to_hex(const uint8_t key[SEALPOST_KEY_LEN],
				      char out[SEALPOST_KEY_HEX_LEN + 1]);

/*
 * Parses exactly 64 hex characters (either case, nothing before or after)
 * from the NUL-terminated hex into key; -EINVAL otherwise (key untouched).
 */
SEALPOST_API int sealpost_key_from_hex(uint8_t key[SEALPOST_KEY_LEN], const char *hex);

/* ----------------------------------------------------------- envelopes --- */

/*
 * Seals msg for the device whose public key is `to`, as `sender`: the result
 * (msg_len + SEALPOST_SEAL_OVERHEAD bytes) can only be opened by that device,
 * and proves to it that `sender` wrote it. sealpost_client_send() does this for
 * you; use these directly for pre-sealed traffic (load generators) or
 * storage. msg: borrowed for the call. out: caller-owned, out_cap bytes, may
 * not overlap msg. -EMSGSIZE if msg_len > SEALPOST_MESSAGE_MAX or out_cap is
 * too small; -EINVAL if `to` is not a valid public key. Thread-safe.
 */
SEALPOST_API int sealpost_envelope_seal(const struct sealpost_key *sender,
					const uint8_t to[SEALPOST_KEY_LEN], const void *msg,
					size_t msg_len, uint8_t *out, size_t out_cap,
					size_t *out_len);

/*
 * Opens an envelope sealed for `self`. env: borrowed for the call. out:
 * caller-owned, out_cap bytes (env_len - SEALPOST_SEAL_OVERHEAD suffices),
 * may not overlap env. sender: caller-owned, receives the writer's public
 * key. -EBADMSG if it does not open (wrong recipient, tampered, truncated,
 * unknown version); out may then hold garbage, which is wiped. Thread-safe.
 */
SEALPOST_API int sealpost_envelope_open(const struct sealpost_key *self, const uint8_t *env,
					size_t env_len, uint8_t sender[SEALPOST_KEY_LEN],
					uint8_t *out, size_t out_cap, size_t *out_len);

/* ---------------------------------------------------------- connection --- */

/* A connection to a broker. Opaque; one thread at a time. */
struct sealpost_client;

/*
 * Connects to a broker and runs the Noise handshake; blocks up to timeout_ms
 * (<= 0: 30 s) for the whole of it.
 *
 * server: "HOST:PORT": an IPv4 address, "[IPv6]:PORT", or a host name
 *         (resolved with getaddrinfo, every address tried in order).
 *         Borrowed for the call.
 * key:    this device's key; copied, so it may be freed after the call.
 * server_key: the broker's static public key (32 bytes, borrowed for the
 *         call): the IK handshake, which fails (-ECONNRESET: the broker just
 *         closes) if the broker holds another key. NULL: the XX handshake,
 *         which accepts any broker key; read it with sealpost_client_server_key()
 *         and pin it for the next connect.
 *
 * On success *out is a connected client; free it with sealpost_client_close.
 * Deliveries are acknowledged automatically (see
 * SEALPOST_CONNECT_MANUAL_ACK); sealpost_client_connect_opts chooses otherwise.
 * Right after connecting, the broker sends the device's stored backlog
 * (oldest first), then one DRAINED event, then live traffic.
 */
SEALPOST_API int sealpost_client_connect(struct sealpost_client **out, const char *server,
					 const struct sealpost_key *key, const uint8_t *server_key,
					 int timeout_ms);

/*
 * Options for sealpost_client_connect_opts. The struct grows at the end only:
 * set `size` to sizeof(struct sealpost_connect_opts) as your header defines it
 * (SEALPOST_CONNECT_OPTS_INIT does) and zero what you do not set, so a
 * program built against an older header keeps working with a newer
 * library (fields it does not know are taken as 0), and a newer program
 * on an older library gets -E2BIG only if it set a field that library
 * does not know (all bytes past the library's struct must be zero).
 */
struct sealpost_connect_opts {
	size_t size;            /* sizeof(struct sealpost_connect_opts) */
	uint32_t flags;         /* SEALPOST_CONNECT_* */
};

enum sealpost_connect_flags {
	/*
	 * Acknowledge deliveries yourself with sealpost_client_ack(). Without
	 * this flag (the default) a MESSAGE or BAD_ENVELOPE event is
	 * acknowledged automatically once the application has taken it: on its
	 * next call to sealpost_client_next_event, sealpost_client_step,
	 * sealpost_client_flush, sealpost_client_send_wait,
	 * sealpost_client_wait_result, sealpost_client_sync or
	 * sealpost_client_close. Manual mode is for apps that acknowledge only
	 * once they have stored the message themselves.
	 */
	SEALPOST_CONNECT_MANUAL_ACK = 1u << 0,
};

#define SEALPOST_CONNECT_OPTS_INIT { .size = sizeof(struct sealpost_connect_opts), .flags = 0 }

/*
 * sealpost_client_connect with options; opts NULL = all defaults (what
 * sealpost_client_connect does). opts: borrowed for the call. -EINVAL for an
 * unknown flag or a size too small to hold `flags`; -E2BIG as said above.
 */
SEALPOST_API int sealpost_client_connect_opts(struct sealpost_client **out, const char *server,
					      const struct sealpost_key *key,
					      const uint8_t *server_key, int timeout_ms,
					      const struct sealpost_connect_opts *opts);

/* The broker's static public key, proven by the handshake. pub: caller-owned. */
SEALPOST_API void sealpost_client_server_key(const struct sealpost_client *c,
					     uint8_t pub[SEALPOST_KEY_LEN]);

/* Our own public key. pub: caller-owned. */
SEALPOST_API void sealpost_client_public_key(const struct sealpost_client *c,
					     uint8_t pub[SEALPOST_KEY_LEN]);

/* ServerHello.max_envelope: the largest sealed envelope the broker accepts. */
SEALPOST_API uint32_t sealpost_client_max_envelope(const struct sealpost_client *c);

/* The largest message sealpost_client_send accepts: max_envelope - 97. */
SEALPOST_API size_t sealpost_client_max_message(const struct sealpost_client *c);

/*
 * Seals msg for `to` and queues it as one Send frame. Nothing is written to
 * the socket here: every send queued before the next flush
 * (sealpost_client_flush, sealpost_client_step, sealpost_client_next_event,
 * sealpost_client_send_wait) shares Noise transport messages, up to the
 * broker's max_transport each, so a burst
 * costs one AEAD and one write per ~64 KiB rather than per message.
 *
 * A durable send: the broker stores it and answers ACCEPTED (see
 * SEALPOST_STATUS_ACCEPTED), or refuses it (ERR_MAILBOX_FULL, ...).
 *
 * to, msg: borrowed for the call. *client_id (may be NULL) receives the
 * library-assigned id that the RESULT event for this envelope carries.
 * Each connection starts its counter at a random 63-bit value and counts
 * up, so ids do not repeat across reconnects: the broker deduplicates
 * durable sends on (sender, recipient, client_id) within its dedup window,
 * and only a deliberate retry (sealpost_client_send_ex with the old id) should
 * match. Results arrive in send order.
 *
 * -EMSGSIZE if msg_len > sealpost_client_max_message(c); -EINVAL for an invalid
 * `to` (low-order point; the library refuses it before the broker would);
 * -ENOBUFS if the unsent queue is over its limit (flush, then retry);
 * -ENOTCONN after a GoAway or close.
 */
SEALPOST_API int sealpost_client_send(struct sealpost_client *c, const uint8_t to[SEALPOST_KEY_LEN],
				      const void *msg, size_t msg_len, uint64_t *client_id);

enum sealpost_send_flags {
	/*
	 * Never stored: DELIVERED if the recipient is connected right now
	 * (its MESSAGE has seq 0 and needs no ack), else ERR_OFFLINE, and
	 * never delivered later. For typing indicators, call signalling.
	 * Not ordered relative to durable envelopes.
	 */
	SEALPOST_SEND_ONLINE_ONLY = 1u << 0,
};

/*
 * sealpost_client_send with flags (SEALPOST_SEND_*) and an optional explicit
 * client_id. client_id 0: the library assigns the next id, as
 * sealpost_client_send does. Non-zero: an idempotent retry: pass the id a
 * previous send of the same envelope got (on this or an earlier
 * connection of the same device key, to the same recipient); within the
 * broker's dedup window the broker answers ACCEPTED with the ORIGINAL seq
 * and neither stores nor delivers it again (the first body is what the
 * recipient gets; bodies are not compared). Online-only sends are not
 * deduplicated. *used_id (may be NULL) receives the id used. Errors as
 * sealpost_client_send, plus -EINVAL for an unknown flag.
 */
SEALPOST_API int sealpost_client_send_ex(struct sealpost_client *c,
					 const uint8_t to[SEALPOST_KEY_LEN], const void *msg,
					 size_t msg_len, uint32_t flags, uint64_t client_id,
					 uint64_t *used_id);

/*
 * Queues an already sealed envelope (e.g. from sealpost_envelope_seal) unchanged,
 * for load generators and forwarding. No check that it is a valid seal; `to`
 * is sent as given (32 bytes, not validated, so bad-recipient handling can
 * be tested). env: borrowed for the call. -EMSGSIZE above max_envelope;
 * otherwise the errors of sealpost_client_send.
 */
SEALPOST_API int sealpost_client_send_raw(struct sealpost_client *c,
					  const uint8_t to[SEALPOST_KEY_LEN], const uint8_t *env,
					  size_t env_len, uint64_t *client_id);

/* sealpost_client_send_raw with flags and an optional explicit client_id, as
 * sealpost_client_send_ex. Resending the very same sealed bytes with the same id
 * is the most faithful retry. */
SEALPOST_API int sealpost_client_send_raw_ex(struct sealpost_client *c,
					     const uint8_t to[SEALPOST_KEY_LEN], const uint8_t *env,
					     size_t env_len, uint32_t flags, uint64_t client_id,
					     uint64_t *used_id);

/*
 * Queues a Ping; its PONG event carries *id (may be NULL). Pings from the
 * broker are answered automatically. -ENOTCONN, -ENOBUFS as for sends.
 */
SEALPOST_API int sealpost_client_ping(struct sealpost_client *c, uint64_t *id);

/*
 * Acknowledges a delivery (the seq of a MESSAGE or BAD_ENVELOPE event): the
 * broker deletes it from the mailbox; an unacknowledged delivery comes
 * again on the device's next connection (never twice on one connection).
 * Needed only with SEALPOST_CONNECT_MANUAL_ACK (in the default mode the
 * library does it; an extra ack is harmless). seq 0 (online-only) is
 * ignored. An ack for a seq this device does not have is ignored by the
 * broker: an ack can only ever name this device's own mailbox. Queued like
 * a send, written with the next output (up to 64 acks share one Ack frame).
 * -ENOTCONN after a GoAway or close.
 */
SEALPOST_API int sealpost_client_ack(struct sealpost_client *c, uint64_t seq);

/*
 * Writes everything queued, blocking up to timeout_ms (< 0: no limit, 0:
 * only what fits now). While waiting it keeps reading, so the broker never
 * blocks on us; what it reads becomes events for sealpost_client_next_event.
 * 0 when everything is written; -ETIMEDOUT otherwise; -ENOTCONN/-ECONNRESET
 * ... if the connection failed.
 */
SEALPOST_API int sealpost_client_flush(struct sealpost_client *c, int timeout_ms);

/*
 * Waits until the broker has processed everything this client wrote before
 * the call, acks included (a Ping and its Pong: the broker handles frames
 * in order and commits an iteration's writes before it answers), up to
 * timeout_ms (< 0: no limit). Events that arrive meanwhile are kept, not
 * taken (so not acknowledged), for sealpost_client_next_event. Use it before
 * sealpost_client_close when acks must have reached the broker. 0, -ETIMEDOUT,
 * or the connection's error.
 */
SEALPOST_API int sealpost_client_sync(struct sealpost_client *c, int timeout_ms);

enum sealpost_event_type {
	SEALPOST_EVENT_NONE = 0,
	/* A delivered envelope, opened: sender, data/len, seq. seq > 0: from
	 * the mailbox, to be acknowledged (automatically by default); seq 0:
	 * online-only, nothing to acknowledge. The same envelope may come
	 * again on a later connection if it was not acknowledged
	 * (at-least-once): deduplicate on an id inside your message. */
	SEALPOST_EVENT_MESSAGE = 1,
	/* The broker's answer to one send: client_id, status (ACCEPTED,
	 * DELIVERED or an ERR_*), seq (ACCEPTED: the recipient-side sequence;
	 * a deduplicated retry gets the original's). */
	SEALPOST_EVENT_RESULT = 2,
	/* Answer to sealpost_client_ping: id. */
	SEALPOST_EVENT_PONG = 3,
	/* The broker is about to close: status (SEALPOST_STATUS_GOAWAY_*).
	 * A CLOSED event follows. */
	SEALPOST_EVENT_GOAWAY = 4,
	/* The connection is gone: error is 0 after a GoAway, else a negative
	 * errno (-ECONNRESET, -EPROTO, -EBADMSG). Final: every later call to
	 * sealpost_client_next_event returns CLOSED again. Sends still without a
	 * RESULT will never get one. */
	SEALPOST_EVENT_CLOSED = 5,
	/* A delivery whose seal did not open (not for us, tampered, or not a
	 * seal at all): seq and error (-EBADMSG). The connection stays up.
	 * Acknowledged like a MESSAGE (in the default mode), since it would
	 * never open on a later connection either. */
	SEALPOST_EVENT_BAD_ENVELOPE = 6,
	/* Once per connection, after the stored backlog: every envelope that
	 * was in the mailbox when the device connected (and what arrived while
	 * that was being sent) has been delivered; what follows is live.
	 * count: how many came from the backlog (0: the mailbox was empty). */
	SEALPOST_EVENT_DRAINED = 7,
};

struct sealpost_event {
	enum sealpost_event_type type;
	int status;             /* RESULT: enum sealpost_status; GOAWAY: the reason */
	int error;              /* CLOSED, BAD_ENVELOPE: 0 or negative errno */
	uint64_t client_id;     /* RESULT */
	uint64_t seq;           /* MESSAGE, BAD_ENVELOPE: Deliver.seq; RESULT: SendResult.seq */
	union {
		uint64_t id;    /* PONG: the ping id */
		uint64_t count; /* DRAINED: envelopes delivered from the backlog */
	};
	uint8_t sender[SEALPOST_KEY_LEN]; /* MESSAGE: the writer's public key, proven by the seal */
	/* MESSAGE: the plaintext. Owned by the client: valid until the next call
	 * on this client (any function taking it), then overwritten or wiped.
	 * Copy what you keep. */
	const uint8_t *data;
	size_t len;
};

/*
 * Takes the next event, waiting up to timeout_ms for one (< 0: no limit,
 * 0: never blocks: returns what is already buffered or readable now).
 * Flushes queued output while it waits.
 * Returns 1 with *ev filled, 0 when the timeout expired with no event,
 * or a negative errno for a bad argument. A dead connection is an event
 * (CLOSED), not an error return. ev: caller-owned.
 */
SEALPOST_API int sealpost_client_next_event(struct sealpost_client *c, struct sealpost_event *ev,
					    int timeout_ms);

/*
 * Waits up to timeout_ms (< 0: no limit) for the RESULT of the send with
 * this client_id, flushing queued output meanwhile. Other events that
 * arrive are kept, in order, for sealpost_client_next_event (not taken, so not
 * acknowledged). *status receives the sealpost_status; *seq (may be NULL)
 * its seq. 0 when the result arrived (whatever its status), -ETIMEDOUT, or
 * the connection's error. A RESULT already taken by sealpost_client_next_event
 * is not seen again: call this right after the send.
 */
SEALPOST_API int sealpost_client_wait_result(struct sealpost_client *c, uint64_t client_id,
					     int timeout_ms, int *status, uint64_t *seq);

/*
 * Sends msg and waits up to timeout_ms for its result. Events that arrive
 * meanwhile are kept, in order, for sealpost_client_next_event. *status receives
 * the sealpost_status; *seq (may be NULL) its seq. Returns 0 when a result
 * arrived (whatever its status), -ETIMEDOUT, or the connection's error.
 * to, msg: borrowed for the call.
 */
SEALPOST_API int sealpost_client_send_wait(struct sealpost_client *c,
					   const uint8_t to[SEALPOST_KEY_LEN], const void *msg,
					   size_t msg_len, int timeout_ms, int *status,
					   uint64_t *seq);

/*
 * Event-loop integration. Poll sealpost_client_fd() for
 * sealpost_client_poll_events() (POLLIN, plus POLLOUT while output is
 * queued); when it is ready, call sealpost_client_step(), then take events
 * with sealpost_client_next_event(c, &ev, 0) until it returns 0. The fd is non-blocking and owned by the client: do
 * not read, write or close it.
 */
SEALPOST_API int sealpost_client_fd(const struct sealpost_client *c);
SEALPOST_API bool sealpost_client_want_write(const struct sealpost_client *c);
/* POLLIN | (POLLOUT if sealpost_client_want_write), as poll(2) bits. */
SEALPOST_API short sealpost_client_poll_events(const struct sealpost_client *c);

/*
 * Non-blocking I/O: writes what the socket accepts, reads what is there
 * (into the client's buffer; events are parsed by sealpost_client_next_event).
 * Never blocks. Returns 0 while the connection is up; once it is gone,
 * -ENOTCONN (closed after a GoAway) or the failure (-ECONNRESET, -EPROTO,
 * -EBADMSG, ...), and a CLOSED event is pending.
 */
SEALPOST_API int sealpost_client_step(struct sealpost_client *c);

/* Closes the connection, wipes keys and buffers, frees c. NULL is allowed.
 * Never blocks: queued output (the automatic ack of the last message
 * taken included) is written only as far as the socket takes it at once,
 * the rest is dropped; sends without a RESULT may or may not have reached
 * the broker. To be sure acks arrived, call sealpost_client_sync first. */
SEALPOST_API void sealpost_client_close(struct sealpost_client *c);

#ifdef __cplusplus
}
#endif

#endif
