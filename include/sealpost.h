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
 *   -ECONNRESET  the broker closed the connection, or it was reset
 *   -ECONNREFUSED, -EHOSTUNREACH, ... from connect(2); -ENOENT, -EACCES, ...
 *                from key files
 *   -EPROTO      the broker broke the protocol (bad length, bad frame, bad
 *                handshake payload)
 *   -EBADMSG     authentication failed (a transport message, or a sealed
 *                envelope that does not open)
 *   -ENOTCONN    the connection is closed (or closing after a GoAway)
 *   -ENOBUFS     the send queue is full: call sealpost_client_flush() or
 *                sealpost_client_step() and retry
 *   -EAGAIN      host name lookup failed for now (try again)
 *   -E2BIG       sealpost_connect_opts set a field this library does not know
 *   -EOPNOTSUPP  a socket-only call on a foreign-loop client, or the reverse
 *   -EEXIST      sealpost_key_save: the file exists
 *   -ENAMETOOLONG  a key file path too long for its temporary name
 * and the library's own codes (enum sealpost_error, returned negated like
 * errno values, and far above any errno):
 *   -SEALPOST_ESERVERKEY   the broker's key is not the pinned server key
 *   -SEALPOST_EUNKNOWNHOST the broker's host name does not exist
 *   -SEALPOST_EKEYMODE     a key file readable by group or others
 *   -SEALPOST_EKEYFORMAT   a key file that is not 64 hex digits + newline
 *   -SEALPOST_EQUEUEFULL   disconnected, and the offline queue is full
 *   -SEALPOST_EDEADPEER    the broker stopped answering keepalive pings
 *   -SEALPOST_EACCESSMISSING, _EACCESSWRONG, _EACCESSROTATED, _EANONLIMIT,
 *   _EACCESSBADKEY, _EANONYMOUS   sealed sender (see "sealed sender" below)
 * sealpost_strerror() turns any of these into a sentence.
 *
 * Threading: no global state but the log hook (sealpost_set_log_callback,
 * set it once before clients run). A sealpost_key may be used by any number of
 * threads at once for reading (every function taking a const struct
 * sealpost_key *); the key functions are thread-safe. A sealpost_client is
 * used by one thread at a time (no internal locking); different clients are
 * independent.
 *
 * Secrets: private keys live in guarded memory (libsodium sodium_malloc) and
 * are wiped when freed; opened plaintext buffers are wiped on close. The
 * library logs nothing unless the app installs a log hook, and never logs
 * keys or message contents.
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

/* The library's own error codes; functions return them negated. */
enum sealpost_error {
	SEALPOST_ERROR_BASE = 7000,     /* above every errno of every platform */
	/* The broker proved a key other than the pinned server key: with IK the
	 * broker closes at once, and the library then runs an XX handshake on
	 * a second connection to learn the key the broker really has. */
	SEALPOST_ESERVERKEY = 7001,
	SEALPOST_EUNKNOWNHOST = 7002,   /* getaddrinfo: no such host */
	SEALPOST_EKEYMODE = 7003,       /* key file readable by group or others: chmod 600 */
	SEALPOST_EKEYFORMAT = 7004,     /* key file content is not a key */
	SEALPOST_EQUEUEFULL = 7005,     /* disconnected and offline_queue_max sends wait */
	SEALPOST_EDEADPEER = 7006,      /* no answer within dead_peer_ms of a keepalive ping */
	/* Device lists (accounts, docs/PROTOCOL.md 11): */
	SEALPOST_EROLLBACK = 7007,      /* a list older than (or forking) the highest one kept */
	SEALPOST_EBADLIST = 7008,       /* a list that does not verify (signature, encoding, account) */
	SEALPOST_ENOLIST = 7009,        /* the broker has no list for that account */
	SEALPOST_ELINKFORMAT = 7010,    /* not a link request string */
	/* Fan-out (sealpost_client_send_account, docs/PROTOCOL.md 16): */
	SEALPOST_EFANOUT = 7011,        /* the broker refused the group: see the result's status */
	SEALPOST_EFANOUTMISMATCH = 7012,/* the copies still did not match the list after every retry */
	SEALPOST_EFANOUTLIE = 7013,     /* the broker's mismatch answer contradicts the verified list */
	SEALPOST_EFANOUTNONE = 7014,    /* the account has no device to send to but this one */
	/* The transparency log (docs/PROTOCOL.md 11.7, docs/CLIENT.md). */
	SEALPOST_ELOGPROOF = 7018,      /* a served list's tree head or inclusion proof does not verify */
	SEALPOST_ESPLITVIEW = 7019,     /* the log showed heads that are not prefixes of one log */
	SEALPOST_ELOGKEY = 7020,        /* the broker's log key is not the one kept, or is unknown */
	/* Sealed sender (docs/PROTOCOL.md 14, docs/CLIENT.md "Sealed sender"): */
	SEALPOST_EACCESSMISSING = 7021, /* no access key, and the recipient does not accept anyone */
	SEALPOST_EACCESSWRONG = 7022,   /* not the recipient's access key */
	SEALPOST_EACCESSROTATED = 7023, /* the recipient's previous key: it rotated, ask it anew */
	SEALPOST_EANONLIMIT = 7024,     /* the broker's anonymous-send budget (source or recipient) */
	SEALPOST_EACCESSBADKEY = 7025,  /* an access key not 16 or 32 bytes */
	SEALPOST_EANONYMOUS = 7026,     /* not possible on an anonymous connection, or only on one */
	/* Registration (broker with --registration=token, docs/CLIENT.md): the
	 * broker's GoAway 53-55 ends the client with one of these (final, no
	 * reconnect). */
	SEALPOST_EENROLREQUIRED = 7015, /* device not registered: connect once with an enrol_token */
	SEALPOST_EENROLTOKEN = 7016,    /* the enrolment token is malformed, not this broker's, or expired */
	SEALPOST_EENROLUSED = 7017,     /* the enrolment token already enrolled another device */
	/* Prekeys (docs/PROTOCOL.md 17, docs/CLIENT.md "Prekeys"). */
	SEALPOST_EPREKEYBAD = 7027,     /* a bundle whose signatures or key are not the device's */
	SEALPOST_ENOTONLIST = 7028,     /* the device is not on the verified device list */
	SEALPOST_ENOPREKEY = 7029,      /* the broker has no signed prekey of that device */
	SEALPOST_EPREKEYLIMIT = 7030,   /* upload above the broker's per-upload or per-device limit */
	SEALPOST_EPREKEYRATE = 7031,    /* the broker's prekey fetch budget (source or device) */
	SEALPOST_EPREKEYREFUSED = 7032, /* the broker refused the upload or fetch as malformed or forged */
	/* Sessions (docs/PROTOCOL.md 7.3, docs/CLIENT.md "Sessions"). */
	SEALPOST_ESTORAGEKEY = 7033,    /* the store does not open under this storage key, or is damaged */
	SEALPOST_ESESSIONFULL = 7034,   /* the session store holds SEALPOST_SESSIONS_MAX sessions */
	SEALPOST_ERATCHETSKIP = 7035,   /* an envelope further ahead in its chain than MAX_SKIP allows */
};

/*
 * The log hook: fn(ctx, level, message) for what the library does
 * (connecting, disconnects and their reasons, back-off, resends). message is
 * one line without a newline, borrowed for the call; it never holds a key or
 * message content. Called on whichever thread is inside a library call; fn
 * must not call back into the client. Default NULL: silent. Global: set it
 * before clients run (not concurrently with them).
 */
enum sealpost_log_level {
	SEALPOST_LOG_ERROR = 0,
	SEALPOST_LOG_WARN = 1,
	SEALPOST_LOG_INFO = 2,
	SEALPOST_LOG_DEBUG = 3,
};
typedef void (*sealpost_log_fn)(void *ctx, int level, const char *message);
SEALPOST_API void sealpost_set_log_callback(sealpost_log_fn fn, void *ctx);

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
	SEALPOST_STATUS_GOAWAY_REMOVED = 37,    /* this device was removed from its account's list */
	SEALPOST_STATUS_GOAWAY_ENROL_REQUIRED = 53,  /* not registered: SEALPOST_EENROLREQUIRED */
	SEALPOST_STATUS_GOAWAY_ENROL_BAD_TOKEN = 54, /* SEALPOST_EENROLTOKEN */
	SEALPOST_STATUS_GOAWAY_ENROL_TOKEN_USED = 55, /* SEALPOST_EENROLUSED */
	/* Device lists (LIST_RESULT events), docs/PROTOCOL.md 11.3. */
	SEALPOST_STATUS_ERR_LIST_MALFORMED = 40,
	SEALPOST_STATUS_ERR_LIST_TOO_LARGE = 41,
	SEALPOST_STATUS_ERR_LIST_BAD_SIGNATURE = 42,
	SEALPOST_STATUS_ERR_LIST_BAD_DEVICE_KEY = 43,
	SEALPOST_STATUS_ERR_LIST_UNSORTED = 44,
	SEALPOST_STATUS_ERR_LIST_VERSION = 45,  /* not above the stored version */
	SEALPOST_STATUS_ERR_LIST_ACCOUNT = 46,
	SEALPOST_STATUS_ERR_LIST_UNKNOWN = 47,  /* fetch: no list for that account */
	SEALPOST_STATUS_ERR_LIST_NOT_MEMBER = 48,
	/* FANOUT_RESULT (docs/PROTOCOL.md 16.5): the whole group refused. */
	SEALPOST_STATUS_ERR_FANOUT_MISMATCH = 49,   /* copies differ from the current list */
	SEALPOST_STATUS_ERR_FANOUT_DUPLICATE = 50,  /* one device twice in the group */
	SEALPOST_STATUS_ERR_FANOUT_INCOMPLETE = 51, /* cut short by another frame, or too slow */
	SEALPOST_STATUS_ERR_FANOUT_TOO_LARGE = 52,  /* over the broker's group limits */
	/* PUSH_RESULT only (docs/PROTOCOL.md 12); success is ACCEPTED. */
	SEALPOST_STATUS_ERR_PUSH_BAD_KEY = 56,  /* p256dh not a 65-byte uncompressed P-256 point */
	SEALPOST_STATUS_ERR_PUSH_BAD_AUTH = 57, /* auth not 16 bytes */
	SEALPOST_STATUS_ERR_PUSH_BAD_ENDPOINT = 58, /* not an absolute http(s) URL */
	SEALPOST_STATUS_ERR_PUSH_NOT_HTTPS = 59,
	SEALPOST_STATUS_ERR_PUSH_TOO_LARGE = 60, /* endpoint above the broker's limit */
	SEALPOST_STATUS_ERR_PUSH_HOST_NOT_ALLOWED = 61,
	SEALPOST_STATUS_ERR_PUSH_DISABLED = 62, /* the broker sends no pushes */
	SEALPOST_STATUS_ERR_PUSH_FULL = 63,
	/* Sealed sender (docs/PROTOCOL.md 14): RESULT of an anonymous send,
	 * ACCESS_RESULT of sealpost_access_set; sealpost_access_error() gives
	 * each its SEALPOST_E* code. */
	SEALPOST_STATUS_ERR_ACCESS_MISSING = 65,
	SEALPOST_STATUS_ERR_ACCESS_WRONG = 66,
	SEALPOST_STATUS_ERR_ACCESS_ROTATED = 67,
	SEALPOST_STATUS_GOAWAY_ANONYMOUS = 68,  /* a frame an anonymous connection may not send */
	SEALPOST_STATUS_ERR_NOT_ANONYMOUS = 69, /* an anonymous send on an authenticated connection */
	SEALPOST_STATUS_ERR_ANON_RATE_LIMITED = 70,
	SEALPOST_STATUS_ERR_ACCESS_BAD_KEY = 71,
	/* Prekeys (docs/PROTOCOL.md 17): PREKEY_RESULT and PREKEY_BUNDLE;
	 * sealpost_prekeys_error() gives each its SEALPOST_E* code. */
	SEALPOST_STATUS_ERR_PREKEY_MALFORMED = 73,
	SEALPOST_STATUS_ERR_PREKEY_BAD_SIGNATURE = 74,
	SEALPOST_STATUS_ERR_PREKEY_TOO_MANY = 75,
	SEALPOST_STATUS_ERR_PREKEY_NONE = 76,
	SEALPOST_STATUS_ERR_PREKEY_RATE_LIMITED = 77,
	SEALPOST_STATUS_ERR_PREKEY_BAD_DEVICE = 78,
	/* A clustered broker (docs/PROTOCOL.md 19): the send could not be
	 * taken now (the broker's cluster is unavailable); not kept; retry. */
	SEALPOST_STATUS_ERR_CLUSTER_UNAVAILABLE = 81,
	/* A clustered broker does not take this request (a fan-out group,
	 * docs/PROTOCOL.md 19): send each device its own copy. */
	SEALPOST_STATUS_ERR_CLUSTER_UNSUPPORTED = 82,
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
 * path: borrowed for the call. -SEALPOST_EKEYMODE if the file is readable by
 * group or others (like ssh, a key others can read is refused: chmod 600
 * it); -SEALPOST_EKEYFORMAT if the content is not exactly that format (or
 * the path is not a regular file); other errno from open(2)/read(2).
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

/*
 * Padded envelopes (docs/PROTOCOL.md 7.1): the message padded (0x80, then
 * zeros) to a size bucket inside the seal, so the envelope's length shows
 * the bucket, not the message: 256, 512, 1024, ..., 32768 bytes of padded
 * payload, then the largest the broker takes. Anonymous sends are always
 * padded; sealpost_envelope_open (and every receiving call) opens both
 * kinds and strips the padding.
 *
 * sealpost_envelope_padded_size: the envelope size for msg_len bytes under
 * a broker's max_envelope (SEALPOST_ENVELOPE_MAX for the protocol's, or
 * sealpost_client_max_envelope()); 0 if it does not fit (msg_len + 1 bytes
 * of payload are needed).
 * sealpost_envelope_seal_padded: sealpost_envelope_seal, padded; out_cap
 * at least that size. -EMSGSIZE, -EINVAL (also for max_envelope <= 97).
 */
SEALPOST_API size_t sealpost_envelope_padded_size(size_t msg_len, size_t max_envelope);
SEALPOST_API int sealpost_envelope_seal_padded(const struct sealpost_key *sender,
					       const uint8_t to[SEALPOST_KEY_LEN], const void *msg,
					       size_t msg_len, size_t max_envelope, uint8_t *out,
					       size_t out_cap, size_t *out_len);

/* ---------------------------------------------------------- connection --- */

/*
 * A connection to a broker. Opaque; one thread at a time.
 *
 * Resilient by default: when the connection drops (network loss, broker
 * restart, takeover, idle close, a dead peer), the client emits
 * SEALPOST_EVENT_DISCONNECTED, reconnects by itself with exponential
 * back-off and jitter (reconnect_min_ms .. reconnect_max_ms), runs the
 * handshake again (IK, with the key the first handshake proved), resends
 * every send that has no RESULT yet with its original client id (so the
 * broker's dedup makes the retry exact: one stored copy, the original seq),
 * and emits SEALPOST_EVENT_RECONNECTED. Every send gets exactly one RESULT.
 * Sends made while disconnected wait in the same queue (up to
 * offline_queue_max, then -SEALPOST_EQUEUEFULL); sealpost_client_pending()
 * lists them. Failures that another attempt cannot fix end it for good
 * (CLOSED): a changed server key (-SEALPOST_ESERVERKEY), a protocol
 * violation (-EPROTO, GOAWAY_PROTOCOL), out of memory.
 * SEALPOST_CONNECT_NO_RECONNECT turns all of this off: the first drop is
 * CLOSED, and sends without a RESULT will never get one.
 *
 * Keepalive (on by default): when nothing was sent or received for
 * keepalive_ms (60 s by default, and never more than half the idle timeout
 * the broker states in its ServerHello) the client pings; no input within
 * dead_peer_ms (20 s) after that ping and the connection counts as dead
 * (-SEALPOST_EDEADPEER), which starts a reconnect. Timers run inside library
 * calls: blocking calls keep them, an event loop polls with
 * sealpost_client_timeout() and calls sealpost_client_step().
 */
struct sealpost_client;

/*
 * Connects to a broker and runs the Noise handshake; blocks up to timeout_ms
 * (<= 0: 30 s) for the whole of it. A failure of this first connection is
 * returned, not retried (reconnects are for connections that were up).
 *
 * server: "HOST:PORT": an IPv4 address, "[IPv6]:PORT", or a host name
 *         (resolved with getaddrinfo, every address tried in order).
 *         Borrowed for the call.
 * key:    this device's key; copied, so it may be freed after the call.
 * server_key: the broker's static public key (32 bytes, borrowed for the
 *         call): the IK handshake, which fails with -SEALPOST_ESERVERKEY if
 *         the broker holds another key. NULL: the XX handshake,
 *         which accepts any broker key; read it with sealpost_client_server_key()
 *         and pin it for the next connect.
 *
 * On success *out is a connected client; free it with sealpost_client_close.
 * Deliveries are acknowledged automatically (see
 * SEALPOST_CONNECT_MANUAL_ACK); sealpost_client_connect_opts chooses otherwise.
 * Errors: the connect(2) errno, -SEALPOST_EUNKNOWNHOST, -SEALPOST_ESERVERKEY,
 * -ETIMEDOUT, -ECONNRESET, -EPROTO, -EBADMSG. Right after connecting, the broker sends the device's stored backlog
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
	/* 0 takes the default of each. */
	uint32_t reconnect_min_ms;   /* first back-off (100); doubles per failed attempt */
	uint32_t reconnect_max_ms;   /* back-off ceiling (30000); each wait is random in
				      * the upper half of its step (jitter) */
	uint32_t offline_queue_max;  /* sends waiting while disconnected (1000) */
	uint32_t connect_timeout_ms; /* per reconnect attempt, TCP + handshake (30000);
				      * sealpost_client_start's first attempt too */
	uint32_t keepalive_ms;       /* ping after this long without traffic (60000;
				      * at most half the broker's idle timeout) */
	uint32_t dead_peer_ms;       /* no input this long after a ping: dead (20000) */
	/* A one-use enrolment token from the operator (`sealpostd mint-token`,
	 * the 76-character text form; borrowed for the call), sent in the
	 * ClientHello until the broker has routed this device once (its first
	 * DRAINED), then forgotten. NULL: none. Not a token's text:
	 * -SEALPOST_EENROLTOKEN from the connect. */
	const char *enrol_token;
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
	/* No reconnects: the first drop ends the client (CLOSED), and sends are
	 * refused (-ENOTCONN) once it is down. */
	SEALPOST_CONNECT_NO_RECONNECT = 1u << 1,
	/* No keepalive pings (and no dead-peer detection). */
	SEALPOST_CONNECT_NO_KEEPALIVE = 1u << 2,
	/* Opaque bodies: a delivery that does not open as a seal for this key
	 * comes as SEALPOST_EVENT_OPAQUE with its raw bytes (instead of
	 * BAD_ENVELOPE), for apps that bring their own end-to-end layer and send
	 * with sealpost_client_send_raw. */
	SEALPOST_CONNECT_OPAQUE = 1u << 3,
	/* Every delivery is OPAQUE, none is tried as a seal. */
	SEALPOST_CONNECT_OPAQUE_ALL = 1u << 4,
	/* Seal without padding (version 1, PROTOCOL.md 7): by default every
	 * message the library seals is padded to a size bucket (7.1), so an
	 * envelope's length shows the bucket, not the message's length. For
	 * apps that pad inside their own layer, and for benchmarks that must
	 * move the same bytes as a peer broker. */
	SEALPOST_CONNECT_NO_PADDING = 1u << 5,
	/* Propose the AES-256-GCM transport cipher (Noise_*_25519_AESGCM_BLAKE2b,
	 * PROTOCOL.md 2) instead of ChaCha20-Poly1305, where this CPU has
	 * AES-NI (elsewhere the flag does nothing). A broker that does not
	 * offer it answers with a refusal, and one from before the choice
	 * existed closes during the handshake: either way the library connects
	 * again at once with ChaChaPoly and keeps to it for this client's life
	 * (with a foreign transport, the next transport the app feeds). The
	 * cipher is part of the handshake, so a downgrade in transit cannot go
	 * unnoticed by the broker; a forged refusal can only bring ChaChaPoly.
	 * sealpost_client_cipher says which one a session uses. */
	SEALPOST_CONNECT_AESGCM = 1u << 6,
};

#define SEALPOST_CONNECT_OPTS_INIT { .size = sizeof(struct sealpost_connect_opts), .flags = 0 }

/*
 * sealpost_client_connect with options; opts NULL = all defaults (what
 * sealpost_client_connect does). opts: borrowed for the call. -EINVAL for an
 * unknown flag, a size too small to hold `flags`, or reconnect_min_ms above
 * reconnect_max_ms; -E2BIG as said above.
 */
SEALPOST_API int sealpost_client_connect_opts(struct sealpost_client **out, const char *server,
					      const struct sealpost_key *key,
					      const uint8_t *server_key, int timeout_ms,
					      const struct sealpost_connect_opts *opts);

/*
 * Non-blocking connect: returns at once with a client whose TCP connect and
 * handshake proceed as the app drives it (event-loop integration below):
 * poll sealpost_client_fd() for sealpost_client_poll_events() with
 * sealpost_client_timeout(), call sealpost_client_step(), take events. The
 * first event is SEALPOST_EVENT_CONNECTED once the handshake is done (sends
 * made before it wait in the queue), or DISCONNECTED(error) if the first
 * attempt failed and the client retries (CLOSED with NO_RECONNECT, or for a
 * failure retries cannot fix). Only the host name lookup (getaddrinfo) can
 * block; a numeric address never does. Arguments as sealpost_client_connect;
 * 0, or -EINVAL / -ENOMEM / -E2BIG (nothing was created).
 */
SEALPOST_API int sealpost_client_start(struct sealpost_client **out, const char *server,
				       const struct sealpost_key *key, const uint8_t *server_key,
				       const struct sealpost_connect_opts *opts);

/* The broker's static public key, proven by the handshake. pub: caller-owned. */
SEALPOST_API void sealpost_client_server_key(const struct sealpost_client *c,
					     uint8_t pub[SEALPOST_KEY_LEN]);

/* Our own public key. pub: caller-owned. */
SEALPOST_API void sealpost_client_public_key(const struct sealpost_client *c,
					     uint8_t pub[SEALPOST_KEY_LEN]);

/* true while a session is established and not closing. */
SEALPOST_API bool sealpost_client_is_connected(const struct sealpost_client *c);

/* The transport cipher of the established session (PROTOCOL.md 2). */
enum sealpost_cipher {
	SEALPOST_CIPHER_CHACHAPOLY = 0,         /* Noise_*_25519_ChaChaPoly_BLAKE2b */
	SEALPOST_CIPHER_AESGCM = 1,             /* Noise_*_25519_AESGCM_BLAKE2b */
};

/* SEALPOST_CIPHER_* of the session while connected; -ENOTCONN otherwise. */
SEALPOST_API int sealpost_client_cipher(const struct sealpost_client *c);

/* ServerHello.idle_timeout_ms: 0 if the broker never closes an idle
 * connection (or has not said, or no handshake finished yet). */
SEALPOST_API uint32_t sealpost_client_idle_timeout(const struct sealpost_client *c);

/* ServerHello.max_envelope: the largest sealed envelope the broker accepts
 * (before the first handshake: the protocol maximum). */
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
 * `to` (low-order point or non-canonical encoding; the library refuses it before
 * the broker would);
 * -ENOBUFS if the unsent queue is over its limit (flush, then retry).
 * While disconnected (or after a GoAway) the send waits for the next
 * connection (-SEALPOST_EQUEUEFULL once offline_queue_max sends wait);
 * -ENOTCONN once the client is CLOSED, or with NO_RECONNECT once it is down.
 * The library keeps a copy of the sealed envelope until its RESULT, for
 * resends.
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
 * Queues a body unchanged: an already sealed envelope (e.g. from
 * sealpost_envelope_seal), or an opaque body of an app's own end-to-end
 * layer (MLS, a double ratchet), which the recipient takes with
 * SEALPOST_CONNECT_OPAQUE. No check that it is a valid seal; `to` is sent as
 * given (32 bytes, not validated, so bad-recipient handling can be tested).
 * env: borrowed for the call (copied). -EMSGSIZE above max_envelope;
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

/* A send still waiting for its RESULT (sealpost_client_pending). */
struct sealpost_pending {
	uint64_t client_id;
	uint8_t to[SEALPOST_KEY_LEN];
	uint32_t flags;         /* SEALPOST_SEND_* */
	size_t len;             /* envelope bytes */
};

/*
 * Lists the sends that have no RESULT yet, oldest first: fills out[0 ..
 * min(cap, count)) (out: caller-owned; NULL with cap 0 just counts) and
 * returns the count. They are resent by themselves after a reconnect; after
 * CLOSED they never will be, and this is what the app may want to keep.
 */
SEALPOST_API size_t sealpost_client_pending(const struct sealpost_client *c,
					    struct sealpost_pending *out, size_t cap);

/*
 * Queues a Ping; its PONG event carries *id (may be NULL). Pings from the
 * broker are answered automatically. -ENOBUFS as for sends; -ENOTCONN when
 * no session is up (a ping is not kept for the next one).
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
 * While disconnected acks wait for the next connection (up to 64; beyond that
 * the envelope simply comes again). -ENOTCONN once CLOSED (or, with
 * NO_RECONNECT, down).
 */
/*
 * Web Push wake-ups (docs/PROTOCOL.md 12): asks the broker to wake this
 * device through its push subscription (endpoint: NUL-terminated URL;
 * p256dh: the subscription's 65-byte uncompressed P-256 key; auth: its
 * 16-byte secret; all borrowed for the call, as a browser's
 * PushSubscription gives them, base64url-decoded) while it is not
 * connected and mail arrives; replaces an earlier one. *id (may be NULL):
 * the id its SEALPOST_EVENT_PUSH_RESULT carries. Lengths are not judged
 * here beyond the wire's bounds (-EINVAL): the broker answers. -ENOTCONN
 * when not connected.
 */
SEALPOST_API int sealpost_push_register(struct sealpost_client *c, const char *endpoint,
					const uint8_t *p256dh, size_t p256dh_len,
					const uint8_t *auth, size_t auth_len, uint64_t *id);
/* Forgets this device's subscription; answered like a register. */
SEALPOST_API int sealpost_push_remove(struct sealpost_client *c, uint64_t *id);

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
	/* The client is finished: error is 0 after a GoAway, else a negative
	 * errno or SEALPOST_E* code (-ECONNRESET, -EPROTO, -EBADMSG,
	 * -SEALPOST_ESERVERKEY, ...). Final: every later call to
	 * sealpost_client_next_event returns CLOSED again. Sends still without a
	 * RESULT will never get one (sealpost_client_pending lists them). Comes
	 * after the first drop only with SEALPOST_CONNECT_NO_RECONNECT, or for a
	 * failure another attempt cannot fix. */
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
	/* The first handshake finished, for clients made with
	 * sealpost_client_start or sealpost_client_new (the blocking connect
	 * returns only once it has). */
	SEALPOST_EVENT_CONNECTED = 8,
	/* The connection dropped and the library will reconnect (socket mode;
	 * a foreign-loop client waits for sealpost_client_restart). error: why
	 * (a negative errno, -SEALPOST_EDEADPEER, ...; 0 after a GoAway), status:
	 * the GoAway code if one came (TAKEOVER, SHUTDOWN, IDLE, ...). Once per
	 * outage, however many attempts fail. Sends wait meanwhile. */
	SEALPOST_EVENT_DISCONNECTED = 9,
	/* A new session is up after DISCONNECTED: every send without a RESULT
	 * has been resent; the broker sends the backlog again (then DRAINED). */
	SEALPOST_EVENT_RECONNECTED = 10,
	/* With SEALPOST_CONNECT_OPAQUE(_ALL): a delivery handed over as sent,
	 * not opened: data/len the raw body, seq; sender all zero (only the
	 * app's own layer can say who wrote it). Acknowledged like a MESSAGE. */
	SEALPOST_EVENT_OPAQUE = 11,
	/* The broker's answer to sealpost_account_publish or _fetch:
	 * client_id, status (ACCEPTED or an ERR_LIST_*), seq (the broker's
	 * version of the account), sender (the account key). A fetch's list
	 * is data/len, already checked: error 0 (it verifies and, with an
	 * account store attached, is not older than the highest kept),
	 * -SEALPOST_EBADLIST or -SEALPOST_EROLLBACK (do not use it). */
	SEALPOST_EVENT_LIST_RESULT = 12,
	/* The list of this device's account changed (linked or removed
	 * devices): data/len the new list, seq its version, sender the
	 * account, error as LIST_RESULT. Show it: a device nobody expected
	 * is how a compromised account key shows up. */
	SEALPOST_EVENT_LIST_CHANGED = 13,
	/* Answer to sealpost_push_register / sealpost_push_remove: id, status
	 * (ACCEPTED or a SEALPOST_STATUS_ERR_PUSH_* / ERR_INTERNAL). */
	SEALPOST_EVENT_PUSH_RESULT = 14,
	/* The broker's answer to one fan-out group (sealpost_client_send_account
	 * waits for it itself): client_id the group id, status (ACCEPTED or the
	 * group's refusal), seq the broker's version of the account, count the
	 * missing keys; data/len (ERR_FANOUT_MISMATCH) count * 32 bytes of
	 * missing device keys, then the stale ones. */
	SEALPOST_EVENT_FANOUT_RESULT = 15,
	/* LOUD: the broker's transparency log showed two histories that cannot
	 * both be prefixes of one log (docs/CLIENT.md, "Split view"). error
	 * -SEALPOST_ESPLITVIEW, sender the log key, data/len two 113-byte
	 * signed tree heads (PROTOCOL.md 11.7 `sth`): the one this device
	 * kept, then the one that contradicts it (from the broker or from a
	 * peer's envelope). Both carry the log's signature: together they are
	 * proof to a third party. Tell the person; stop trusting this broker's
	 * lists. Emitted beside the event that revealed it. */
	SEALPOST_EVENT_SPLIT_VIEW = 18,
	/* Answer to sealpost_log_fetch: client_id, status (ACCEPTED,
	 * ERR_LOG_RANGE, ERR_INTERNAL), sender the log key, seq the leaf's
	 * length, data/len the LogReply body (leaf | sth | consistency,
	 * PROTOCOL.md 11.7), unchecked. */
	SEALPOST_EVENT_LOG_REPLY = 19,
	/* Answer to sealpost_access_set: client_id, status (ACCEPTED,
	 * ERR_ACCESS_BAD_KEY or ERR_INTERNAL). */
	SEALPOST_EVENT_ACCESS_RESULT = 20,
	/* Answer to sealpost_prekeys_upload: client_id, status (ACCEPTED or
	 * SEALPOST_STATUS_ERR_PREKEY_* / ERR_INTERNAL), count (one-time
	 * prekeys the broker holds for this device now). */
	SEALPOST_EVENT_PREKEY_RESULT = 22,
	/* Answer to sealpost_prekeys_fetch: client_id, status, sender (the
	 * device asked for), data/len the bundle as the broker sent it,
	 * UNCHECKED: pass it to sealpost_prekey_bundle_verify with the
	 * device's verified list before using any key in it. */
	SEALPOST_EVENT_PREKEY_BUNDLE = 23,
	/* The broker holds fewer one-time prekeys of this device than its
	 * prekey-low: count left. Answer with sealpost_prekeys_upload. */
	SEALPOST_EVENT_PREKEY_LOW = 24,
};

struct sealpost_event {
	enum sealpost_event_type type;
	int status;             /* RESULT: enum sealpost_status; GOAWAY: the reason */
	int error;              /* CLOSED, BAD_ENVELOPE: 0 or negative errno */
	uint64_t client_id;     /* RESULT */
	uint64_t seq;           /* MESSAGE, BAD_ENVELOPE: Deliver.seq; RESULT: SendResult.seq */
	union {
		uint64_t id;    /* PONG: the ping id; PUSH_RESULT: the request's */
		uint64_t count; /* DRAINED: envelopes delivered from the backlog;
				 * PREKEY_RESULT, PREKEY_LOW: one-time prekeys on file */
	};
	uint8_t sender[SEALPOST_KEY_LEN]; /* MESSAGE: the writer's public key, proven by the seal */
	/* MESSAGE: the plaintext; OPAQUE: the raw body. Owned by the client: valid until the next call
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
 * Event-loop integration (socket mode). Each round: poll sealpost_client_fd()
 * for sealpost_client_poll_events() (POLLIN, plus POLLOUT while output is
 * queued or a TCP connect is in progress) with sealpost_client_timeout() as
 * the timeout; then call sealpost_client_step() (always: also on a timeout,
 * it runs the timers), then take events with sealpost_client_next_event(c,
 * &ev, 0) until it returns 0. Ask for the fd every round: a reconnect gives
 * a new one, and while waiting to reconnect there is none (-1, which poll(2)
 * ignores; the timeout then says when to call step). The fd is non-blocking
 * and owned by the client: do not read, write or close it. Foreign-loop
 * clients have no fd (-1) and poll events 0.
 */
SEALPOST_API int sealpost_client_fd(const struct sealpost_client *c);
SEALPOST_API bool sealpost_client_want_write(const struct sealpost_client *c);
/* POLLIN | (POLLOUT if sealpost_client_want_write), as poll(2) bits. */
SEALPOST_API short sealpost_client_poll_events(const struct sealpost_client *c);

/*
 * Milliseconds until the client's next timer (a reconnect attempt, an
 * attempt's deadline, a keepalive ping, the dead-peer check) needs a
 * sealpost_client_step(); -1: none. For poll(2)'s timeout (both modes).
 */
SEALPOST_API int sealpost_client_timeout(const struct sealpost_client *c);

/*
 * Socket mode: runs due timers, advances a connect in progress, writes what
 * the socket accepts, reads what is there (into the client's buffer; events
 * are parsed by sealpost_client_next_event). Foreign mode: runs due timers
 * (keepalive: take output after it). Never blocks. Returns 0 while the
 * client is alive (also while it reconnects); once it is finished,
 * -ENOTCONN (closed after a GoAway) or the failure (-ECONNRESET, -EPROTO,
 * -EBADMSG, ...), and a CLOSED event is pending. With NO_RECONNECT that is
 * as soon as the connection is gone.
 */
SEALPOST_API int sealpost_client_step(struct sealpost_client *c);

/*
 * Callback mode, on top of the calls above: sealpost_client_dispatch waits
 * up to timeout_ms (< 0: no limit; 0: never blocks) for an event, then calls
 * fn(ctx, c, ev) for it and for every further event already available, and
 * returns how many it dispatched (0: timeout) or a negative errno (-EINVAL
 * without a callback). Thread model: no thread of the library's own; fn
 * runs on the thread that called dispatch, inside it, one event at a time.
 * ev and its data are valid until fn returns. fn may call the sending
 * functions, ack and ping on c; not close, dispatch or the other
 * event-taking calls (next_event, wait_result, send_wait, sync, flush). A
 * multi-threaded app runs dispatch on one thread (its loop) and hands work
 * to others itself. fn NULL turns callback mode off.
 */
typedef void (*sealpost_event_fn)(void *ctx, struct sealpost_client *c,
				  const struct sealpost_event *ev);
SEALPOST_API void sealpost_client_set_callback(struct sealpost_client *c, sealpost_event_fn fn,
					       void *ctx);
SEALPOST_API int sealpost_client_dispatch(struct sealpost_client *c, int timeout_ms);

/* ------------------------------------------------------------ accounts --- */

/*
 * An account is an Ed25519 key (docs/PROTOCOL.md 11) held by the person's
 * devices; its signed device list says which device keys receive its mail.
 * The broker stores lists but cannot make one. Steps, with the CLI's names:
 * create (sealpost_account_generate, a list of this device, publish);
 * link-request (the new device: sealpost_link_request, shown to the
 * person); link (a device holding the account key:
 * sealpost_link_request_parse, compare the code, add, sign, publish);
 * devices (fetch and verify); remove (a new list without it, publish).
 */
enum {
	SEALPOST_ACCOUNT_KEY_LEN = 32,  /* the account's Ed25519 public key */
	SEALPOST_LABEL_MAX = 64,        /* bytes of a device label (no control bytes) */
	SEALPOST_DEVICES_MAX = 64,      /* devices on one list (the broker may allow fewer) */
	SEALPOST_LIST_MAX = 6827,       /* bytes of the largest signed list */
	SEALPOST_LINK_REQUEST_MAX = 160,/* a link request string, NUL included */
	SEALPOST_LINK_CODE_LEN = 6,     /* decimal digits of the short code */
};

/* The account's secret key, in guarded memory like struct sealpost_key. */
struct sealpost_account;

SEALPOST_API int sealpost_account_generate(struct sealpost_account **out);
/* Loads / saves the 32-byte Ed25519 seed as 64 hex characters and a
 * newline: the rules and errors of sealpost_key_load / _save (mode 0600). */
SEALPOST_API int sealpost_account_load(struct sealpost_account **out, const char *path);
SEALPOST_API int sealpost_account_save(const struct sealpost_account *a, const char *path);
/* pub: caller-owned, 32 bytes. */
SEALPOST_API void sealpost_account_public(const struct sealpost_account *a,
					  uint8_t pub[SEALPOST_ACCOUNT_KEY_LEN]);
SEALPOST_API void sealpost_account_free(struct sealpost_account *a);

struct sealpost_device_info {
	uint8_t key[SEALPOST_KEY_LEN];  /* the device's public key */
	uint64_t added_s;               /* Unix time it was added, as its signer said */
	char label[SEALPOST_LABEL_MAX + 1];
};

/* A device list, decoded. */
struct sealpost_devlist {
	uint8_t account[SEALPOST_ACCOUNT_KEY_LEN];
	uint64_t version;
	uint32_t count;
	struct sealpost_device_info dev[SEALPOST_DEVICES_MAX];
};

/* Checks a signed list (encoding and signature) and decodes it into *out
 * (caller-owned). bytes: borrowed. 0 or -SEALPOST_EBADLIST. Thread-safe. */
SEALPOST_API int sealpost_devlist_verify(const uint8_t *bytes, size_t len,
					 struct sealpost_devlist *out);

/* Adds a device at its sorted place / removes one (l: caller-owned).
 * -EEXIST, -ENOENT, -EMSGSIZE (full), -EINVAL (bad key or label). */
SEALPOST_API int sealpost_devlist_add(struct sealpost_devlist *l,
				      const uint8_t key[SEALPOST_KEY_LEN], const char *label,
				      uint64_t added_s);
SEALPOST_API int sealpost_devlist_remove(struct sealpost_devlist *l,
					 const uint8_t key[SEALPOST_KEY_LEN]);

/* Signs l with the account key into out (caller-owned, cap bytes;
 * SEALPOST_LIST_MAX suffices), *len. -EINVAL if a is not l's account or
 * l is not canonical; -EMSGSIZE. */
SEALPOST_API int sealpost_devlist_sign(const struct sealpost_account *a,
				       const struct sealpost_devlist *l, uint8_t *out, size_t cap,
				       size_t *len);

/*
 * The link request a new device shows: "sealpost-link-1:<key hex>:<label>"
 * into out (cap >= SEALPOST_LINK_REQUEST_MAX), and the 6-digit short code
 * into code (7 bytes) that the linking device must show too.
 * -EINVAL for a bad label; -EMSGSIZE.
 */
SEALPOST_API int sealpost_link_request(const uint8_t device[SEALPOST_KEY_LEN], const char *label,
				       char *out, size_t cap, char code[SEALPOST_LINK_CODE_LEN + 1]);
/* Parses a link request (surrounding white space ignored): the key, label
 * (65 bytes) and the short code computed from them. -SEALPOST_ELINKFORMAT. */
SEALPOST_API int sealpost_link_request_parse(const char *req, uint8_t device[SEALPOST_KEY_LEN],
					     char label[SEALPOST_LABEL_MAX + 1],
					     char code[SEALPOST_LINK_CODE_LEN + 1]);

/*
 * The highest list seen per account, kept in a file the app names (created
 * 0600 if missing; rewritten whole, atomically, on every change). Attach it
 * to clients (sealpost_client_set_account_store) and every list they
 * receive is checked against it. One thread at a time.
 */
struct sealpost_account_store;
SEALPOST_API int sealpost_account_store_open(struct sealpost_account_store **out,
					     const char *path);
SEALPOST_API void sealpost_account_store_close(struct sealpost_account_store *st);
/*
 * Verifies bytes and compares them with what st keeps for that account:
 * newer (kept from now on) or the same bytes: 0 and *out; older, or the same
 * version with other bytes: -SEALPOST_EROLLBACK (nothing changes);
 * -SEALPOST_EBADLIST; -EIO if the file could not be written (not kept).
 */
SEALPOST_API int sealpost_account_store_check(struct sealpost_account_store *st,
					      const uint8_t *bytes, size_t len,
					      struct sealpost_devlist *out);
/* The list kept for account: 0 and *out, or -ENOENT. */
SEALPOST_API int sealpost_account_store_get(struct sealpost_account_store *st,
					    const uint8_t account[SEALPOST_ACCOUNT_KEY_LEN],
					    struct sealpost_devlist *out);

/* Lists this client receives are checked against st (borrowed: it must
 * outlive c). NULL detaches. */
SEALPOST_API void sealpost_client_set_account_store(struct sealpost_client *c,
						    struct sealpost_account_store *st);

/* Queues a ListPut of a signed list (bytes: borrowed, copied). Its answer
 * is a LIST_RESULT event with *client_id. -ENOTCONN while no session is up
 * (a publish is not kept for the next one), -EMSGSIZE, -ENOBUFS. */
SEALPOST_API int sealpost_account_publish(struct sealpost_client *c, const uint8_t *bytes,
					  size_t len, uint64_t *client_id);
/* Queues a ListFetch of account; answer: LIST_RESULT. Errors as publish. */
SEALPOST_API int sealpost_account_fetch(struct sealpost_client *c,
					const uint8_t account[SEALPOST_ACCOUNT_KEY_LEN],
					uint64_t *client_id);

/* Publishes and waits (socket mode) for the answer: 0 with *status (the
 * broker's: ACCEPTED or an ERR_LIST_*) and *version (may be NULL), or
 * -ETIMEDOUT / the connection's error. Other events are kept. */
SEALPOST_API int sealpost_account_publish_wait(struct sealpost_client *c, const uint8_t *bytes,
					       size_t len, int timeout_ms, int *status,
					       uint64_t *version);
/*
 * Fetches, verifies, checks against the attached store and waits: 0 with
 * *out (and the signed bytes in raw, if raw is not NULL: raw_cap >=
 * SEALPOST_LIST_MAX, *raw_len); -SEALPOST_ENOLIST; -SEALPOST_EBADLIST (a
 * forged list, or one for another account); -SEALPOST_EROLLBACK (older than
 * the one kept: *out is then the kept one, raw untouched); -EPROTO for
 * another refusal; -ETIMEDOUT or the connection's error.
 */
SEALPOST_API int sealpost_account_fetch_wait(struct sealpost_client *c,
					     const uint8_t account[SEALPOST_ACCOUNT_KEY_LEN],
					     int timeout_ms, struct sealpost_devlist *out,
					     uint8_t *raw, size_t raw_cap, size_t *raw_len);

/*
 * Sends msg to every device of a list but this client's own key as
 * separate Sends, each stored or refused on its own (no all-or-none, no
 * mismatch answer; sealpost_client_send_account is the one-call fan-out):
 * one sealed envelope per device (sealpost_client_send each), ids first_id ..
 * first_id + count - 1 in list order. Returns how many were queued, or a
 * negative errno (some may have been queued: their RESULTs still come).
 * Only give it a list from sealpost_account_fetch_wait or a LIST event
 * with error 0.
 */
SEALPOST_API int sealpost_client_send_devices(struct sealpost_client *c,
					      const struct sealpost_devlist *l, const void *msg,
					      size_t msg_len, uint64_t *first_id);

/*
 * Fan-out (docs/PROTOCOL.md 16, docs/CLIENT.md "Sending to an account"):
 * msg to every device of account in one group the broker stores all or
 * none. Socket mode, blocking up to timeout_ms (< 0: no limit):
 *  1. fetches and verifies the account's list (as sealpost_account_fetch_wait:
 *     the signature, the attached account store, the transparency log);
 *  2. seals one envelope per device but this client's own, and sends them
 *     as one group (FanoutBegin + FanoutCopy frames, group id from the
 *     send counter);
 *  3. on ERR_FANOUT_MISMATCH fetches and verifies the list again, checks
 *     that the broker's missing/stale keys agree with it (else
 *     -SEALPOST_EFANOUTLIE: nothing more is sent), seals again and retries,
 *     at most SEALPOST_FANOUT_RETRIES times;
 *  4. if own_account (32 bytes, may be NULL) is this device's account and
 *     not account, the same for the other devices of own_account, so the
 *     person's devices keep the conversation too.
 * out (caller-owned, may be NULL): what happened, per device.
 * Returns 0 when every group sent was ACCEPTED (or own_account has no
 * other device); -SEALPOST_EFANOUTNONE (account lists no device but this
 * one: nothing sent); -SEALPOST_EFANOUT (a group refused: out->status
 * or out->own_status says why, nothing of that group stored);
 * -SEALPOST_EFANOUTMISMATCH; -SEALPOST_EFANOUTLIE; the errors of
 * sealpost_account_fetch_wait (-SEALPOST_ENOLIST, -SEALPOST_EBADLIST,
 * -SEALPOST_EROLLBACK, ...); -EMSGSIZE; -ETIMEDOUT or the connection's
 * error (the group's answer was lost: it may or may not be stored; a
 * group is not resent by a reconnect).
 */
enum { SEALPOST_FANOUT_RETRIES = 3 };

struct sealpost_fanout_device {
	uint8_t key[SEALPOST_KEY_LEN];
	int status;             /* its group's final status: SEALPOST_STATUS_ACCEPTED, or the refusal */
	bool own;               /* one of own_account's devices (the second group) */
};

struct sealpost_fanout_result {
	int status;             /* the account's group: ACCEPTED or the broker's refusal (0: not sent) */
	int own_status;         /* the own account's group (0: none sent) */
	uint64_t version;       /* the account's list version the copies were sealed for */
	uint64_t own_version;
	uint64_t group_id, own_group_id;
	uint32_t retries;       /* groups sent again after a mismatch, both groups together */
	uint32_t count;         /* entries of dev */
	struct sealpost_fanout_device dev[2 * SEALPOST_DEVICES_MAX];
};

SEALPOST_API int sealpost_client_send_account(struct sealpost_client *c,
					      const uint8_t account[SEALPOST_ACCOUNT_KEY_LEN],
					      const uint8_t *own_account, const void *msg,
					      size_t msg_len, int timeout_ms,
					      struct sealpost_fanout_result *out);

/*
 * The transparency log (docs/CLIENT.md, "Transparency log"). The library
 * checks every list it receives against the broker's log: the signed tree
 * head under the log key, the inclusion of the list's bytes, and the
 * consistency of each newer head with the one kept (a LogFetch of the
 * proof); once it keeps a head it puts it inside every envelope it seals
 * and checks the heads peers send. The log key is learned over the Noise
 * session authenticated by the pinned broker key the first time it is
 * needed (a list pushed before that waits for it), and with an account
 * store attached it is kept there from then on, with the newest head (a
 * different key later: -SEALPOST_ELOGKEY).
 */

/* Queues LogFetch{first, second, leaf} (leaf: 1 + index, 0 none; second 0:
 * the head's size); answer: LOG_REPLY with *client_id. -ENOTCONN. */
SEALPOST_API int sealpost_log_fetch(struct sealpost_client *c, uint64_t first, uint64_t second,
				    uint64_t leaf, uint64_t *client_id);
/*
 * The log's current head, checked and kept (socket mode): asks the broker,
 * verifies the head under the kept log key (pinning the broker's on first
 * use) and its consistency with the head kept. head: caller-owned, 113
 * bytes (the sth encoding), may be NULL; log_key: 32 bytes, may be NULL.
 * 0, -SEALPOST_ELOGKEY, -SEALPOST_ELOGPROOF, -SEALPOST_ESPLITVIEW (a
 * SPLIT_VIEW event is kept for next_event), -EPROTO (the broker has no
 * log), -ETIMEDOUT, or the connection's error.
 */
SEALPOST_API int sealpost_log_sync(struct sealpost_client *c, int timeout_ms,
				   uint8_t head[113], uint8_t log_key[32]);
/*
 * Audits the whole log (socket mode; `sealpost account audit`): the head is
 * synced as by sealpost_log_sync, then every leaf of its tree is fetched
 * (64 LogFetches in flight), each must be a list that verifies, each
 * account's versions must only rise in log order, and the root recomputed
 * from the leaves must be the signed head's. Cost: one round trip per 64
 * leaves and 32 + 48 bytes of memory per leaf. out: caller-owned, filled
 * as far as the audit got. 0; -SEALPOST_ELOGPROOF (the leaves are not the
 * signed tree, or a leaf was refused: bad_leaf says which, 0 for the root);
 * -SEALPOST_EBADLIST (leaf bad_leaf is not a valid list);
 * -SEALPOST_EROLLBACK (leaf bad_leaf is not newer than its account's
 * previous one); sealpost_log_sync's errors.
 */
struct sealpost_log_audit {
	uint64_t size;          /* leaves in the audited tree */
	uint64_t accounts;      /* distinct accounts among them */
	uint64_t bad_leaf;      /* 1 + index of the leaf at fault; 0: none, or the root */
	uint8_t head[113];      /* the audited signed tree head (PROTOCOL.md 11.7 sth) */
	uint8_t log_key[32];
};
SEALPOST_API int sealpost_log_audit(struct sealpost_client *c, int timeout_ms,
				    struct sealpost_log_audit *out);
/* The log key and head kept in st (either may be NULL): 0 or -ENOENT. */
SEALPOST_API int sealpost_account_store_log(struct sealpost_account_store *st,
					    uint8_t log_key[32], uint8_t head[113]);
/* ------------------------------------------------------ sealed sender --- */

/*
 * Sealed sender (docs/PROTOCOL.md 14, docs/CLIENT.md "Sealed sender"): an
 * envelope handed over on an anonymous connection (Noise NK: the broker
 * proves its key, the client proves none), so the broker learns the
 * recipient but not the sender; the sender is inside the seal, as always.
 * The broker admits such an envelope only with the recipient's access key
 * (a random 16- or 32-byte secret the recipient gives its contacts inside
 * its sealed messages, never to the broker: it keeps a hash) or when the
 * recipient accepts anonymous sends from anyone.
 */
enum {
	SEALPOST_ACCESS_KEY_LEN = 32,   /* what sealpost_access_key_generate makes */
	SEALPOST_ACCESS_KEY_MIN = 16,   /* the broker takes 16 or 32 bytes */
};

/* A new random access key (libsodium randombytes). key: caller-owned,
 * 32 bytes; wipe it when done. Thread-safe. */
SEALPOST_API void sealpost_access_key_generate(uint8_t key[SEALPOST_ACCESS_KEY_LEN]);

/* The SEALPOST_E* code (negative) of a sealed-sender status (65-71),
 * 0 for every other status. */
SEALPOST_API int sealpost_access_error(int status);

/*
 * Sets this device's access key (key: 16 or 32 bytes, borrowed for the
 * call; NULL with len 0: keep the key, change only the flag) and whether
 * it accepts anonymous sends without one (every call sets that flag).
 * A new key replaces the old one: senders of the old one get
 * -SEALPOST_EACCESSROTATED from then on. Queued like a ping on the live
 * session (-ENOTCONN when none); its answer is an ACCESS_RESULT event with
 * *client_id (may be NULL). -SEALPOST_EANONYMOUS on an anonymous client;
 * -SEALPOST_EACCESSBADKEY for another length (checked here as well).
 */
SEALPOST_API int sealpost_access_set(struct sealpost_client *c, const uint8_t *key, size_t len,
				     bool accept_anyone, uint64_t *client_id);

/*
 * sealpost_access_set and wait (socket mode) up to timeout_ms for its
 * answer: 0 when the broker took it, -SEALPOST_EACCESSBADKEY, -EIO when the
 * broker could not store it, -ETIMEDOUT or the connection's error. Other
 * events are kept.
 */
SEALPOST_API int sealpost_set_access(struct sealpost_client *c, const uint8_t *key, size_t len,
				     bool accept_anyone, int timeout_ms);

/*
 * A send-only anonymous connection (Noise NK) to the broker whose key is
 * server_key (required: 32 bytes, borrowed; a wrong one fails the
 * handshake, -ECONNRESET). Arguments and reconnects as
 * sealpost_client_connect_opts, but no device key: the broker learns none
 * (the client holds a random one of its own that is never sent). It
 * receives nothing (no DRAINED, no messages): only RESULT, PONG, GOAWAY and
 * the connection events. Only sealpost_client_send_anonymous, ping, flush,
 * sync and the event calls work on it; the other sending calls return
 * -SEALPOST_EANONYMOUS.
 */
SEALPOST_API int sealpost_client_connect_anonymous(struct sealpost_client **out,
						   const char *server,
						   const uint8_t server_key[SEALPOST_KEY_LEN],
						   int timeout_ms,
						   const struct sealpost_connect_opts *opts);

/* true for a client made by sealpost_client_connect_anonymous. */
SEALPOST_API bool sealpost_client_is_anonymous(const struct sealpost_client *c);

/*
 * On an anonymous client: seals msg for `to` as `sender` (borrowed for the
 * call; the recipient learns it from the seal, the broker does not) and
 * queues it as an AnonSend with the recipient's access key (borrowed,
 * copied; NULL/0: none, for a recipient that accepts anyone). Its answer
 * is a RESULT event like a send's: ACCEPTED (or DELIVERED), or an
 * ERR_ACCESS_* / ERR_ANON_RATE_LIMITED / the refusals of a send; a
 * reconnect resends it with its key (no dedup for anonymous sends: a send
 * cut off mid-way may arrive twice). flags: SEALPOST_SEND_*. Errors as
 * sealpost_client_send, plus -SEALPOST_EANONYMOUS on an authenticated
 * client and -SEALPOST_EACCESSBADKEY for a key not 16 or 32 bytes.
 */
SEALPOST_API int sealpost_client_send_anonymous(struct sealpost_client *anon,
						const struct sealpost_key *sender,
						const uint8_t to[SEALPOST_KEY_LEN],
						const uint8_t *access_key, size_t access_len,
						const void *msg, size_t msg_len, uint32_t flags,
						uint64_t *client_id);

/*
 * The usual way: on an authenticated client c, seals msg as c's device and
 * sends it anonymously on c's own anonymous connection to the same broker
 * (opened with the server key c proved, on first use, and reused while it
 * stays up; closed with c), then waits up to timeout_ms for its result.
 * access_key NULL: the contact's key set with sealpost_contact_access_set,
 * else none. 0 when a result came (*status: ACCEPTED, DELIVERED or a
 * send's refusal; *seq may be NULL); for a sealed-sender refusal its
 * SEALPOST_E* code (-SEALPOST_EACCESSWRONG, ...; *status set as well);
 * -ETIMEDOUT or a connection error.
 */
SEALPOST_API int sealpost_send_anonymous(struct sealpost_client *c,
					 const uint8_t to[SEALPOST_KEY_LEN],
					 const uint8_t *access_key, size_t access_len,
					 const void *msg, size_t msg_len, int timeout_ms,
					 int *status, uint64_t *seq);

/*
 * The contacts' access keys this client knows (in memory, wiped on
 * close; the app keeps them, e.g. the CLI in its access file). With a key
 * set for `to`, sealpost_client_send_wait sends anonymously
 * (sealpost_send_anonymous) instead of on the authenticated connection.
 * key: 16 or 32 bytes, borrowed (copied); NULL/0 forgets the contact's
 * key. -EINVAL, -SEALPOST_EACCESSBADKEY, -ENOMEM.
 */
SEALPOST_API int sealpost_contact_access_set(struct sealpost_client *c,
					     const uint8_t contact[SEALPOST_KEY_LEN],
					     const uint8_t *key, size_t len);

/* ------------------------------------------------------ foreign loops --- */

/*
 * A client without a socket, for apps and bindings whose event loop or
 * transport is their own (a language runtime's loop, TLS, WebSocket, a
 * platform network API): the library is the protocol only. Bytes in:
 * sealpost_client_feed. Bytes out: sealpost_client_take_output, then
 * sealpost_client_output_consumed for what was written. Everything else
 * (send, ack, ping, next_event with timeout 0, step for the timers, pending,
 * dispatch with timeout 0) works as on a socket client; the calls that
 * wait (flush, sync, wait_result, send_wait) return -EOPNOTSUPP, and
 * next_event never waits.
 *
 * sealpost_client_new: key and server_key as sealpost_client_connect (IK
 * with the key, XX with NULL; both borrowed for the call), opts as
 * sealpost_client_connect_opts. The preamble and first handshake message
 * are queued at once: open the transport, then take output. The first
 * event is CONNECTED. Transport ends: tell it with sealpost_client_feed_eof;
 * the client emits DISCONNECTED (CLOSED with NO_RECONNECT), and
 * sealpost_client_restart on a new transport runs a new handshake (IK with
 * the proven key) and resends every send without a RESULT (RECONNECTED).
 * A dead peer found by the keepalive is a DISCONNECTED too: close your
 * transport. 0, -EINVAL, -ENOMEM, -E2BIG.
 */
SEALPOST_API int sealpost_client_new(struct sealpost_client **out, const struct sealpost_key *key,
				     const uint8_t *server_key,
				     const struct sealpost_connect_opts *opts);

/*
 * Received bytes, in order, any split. data: borrowed for the call (copied).
 * Returns how many bytes it took: len, or fewer when 16 MiB of input are
 * already waiting to be taken as events (take events, feed the rest);
 * -ENOTCONN while disconnected, the error once CLOSED. A handshake advances
 * in here: take output afterwards (XX message 3, the IK proof, resends).
 */
SEALPOST_API long sealpost_client_feed(struct sealpost_client *c, const void *data, size_t len);

/*
 * The transport closed (error 0: an orderly end of stream) or failed (error:
 * a negative errno to report as the reason). Input fed before it is still
 * handed out as events, then DISCONNECTED (or CLOSED). -EINVAL for a
 * positive error.
 */
SEALPOST_API int sealpost_client_feed_eof(struct sealpost_client *c, int error);

/*
 * A new transport is open: starts a new session (the old one and its unread
 * input are dropped), queues its handshake; its sends are resent once it is
 * up. 0, the error once CLOSED, -ENOMEM.
 */
SEALPOST_API int sealpost_client_restart(struct sealpost_client *c);

/*
 * The next bytes to send: 1 with *data and *len (contiguous, owned by the
 * client, valid until sealpost_client_output_consumed, feed_eof, restart or
 * close; later sends do not change these bytes), 0 with nothing to send
 * (*data NULL, *len 0). Seals queued frames first (acks, the batch), like a
 * flush. Counts as a next call for the automatic ack. Call it again after
 * consuming: output comes in pieces.
 */
SEALPOST_API int sealpost_client_take_output(struct sealpost_client *c, const uint8_t **data,
					     size_t *len);

/* n bytes from the start of the last take_output went out (n <= its len;
 * a partial write is fine). 0, or -EINVAL for more than was taken. */
SEALPOST_API int sealpost_client_output_consumed(struct sealpost_client *c, size_t n);

/* Closes the connection, wipes keys and buffers, frees c. NULL is allowed.
 * Never blocks: queued output (the automatic ack of the last message
 * taken included) is written only as far as the socket takes it at once,
 * the rest is dropped; sends without a RESULT may or may not have reached
 * the broker. To be sure acks arrived, call sealpost_client_sync first. */
SEALPOST_API void sealpost_client_close(struct sealpost_client *c);


/* ------------------------------------------------------------- prekeys --- */

/*
 * Prekeys (docs/PROTOCOL.md 17, docs/CLIENT.md "Prekeys"): X25519 keys a
 * device publishes through the broker so that others can seal first
 * messages to keys it deletes after use (forward secrecy). Each is signed
 * with the device's own key (XEdDSA); a sender accepts a bundle only if
 * every signature is that of a device on the account's device list it
 * verified, so the broker cannot substitute a key.
 *
 * The private halves live in a prekey store: a file the app names (mode
 * 0600, written whole to a temporary file and renamed; readable by group or
 * others: -SEALPOST_EKEYMODE), tied to one device key, held in guarded
 * memory (sodium_malloc) while open and wiped when closed. The signed
 * prekey is replaced at the first upload after SEALPOST_PREKEY_ROTATE_S; the
 * one it replaces is kept SEALPOST_PREKEY_KEEP_S more (envelopes sealed to
 * it may still be in a mailbox), then deleted. One thread at a time.
 */
enum {
	SEALPOST_PREKEY_ROTATE_S = 7 * 24 * 3600,  /* signed prekey lifetime */
	SEALPOST_PREKEY_KEEP_S = 35 * 24 * 3600,   /* a replaced one is kept this long */
	SEALPOST_PREKEY_UPLOAD_MAX = 256,          /* one-time prekeys per upload (protocol) */
	SEALPOST_PREKEY_HELD_MAX = 1024,           /* one-time secrets a store holds */
};

struct sealpost_prekeys;

/* Opens the store at path for device (borrowed; the store keeps its public
 * key): a missing file is an empty store (written at the first upload); one
 * of another device: -EINVAL; malformed: -SEALPOST_EKEYFORMAT. */
SEALPOST_API int sealpost_prekeys_open(struct sealpost_prekeys **out, const char *path,
				       const struct sealpost_key *device);
SEALPOST_API void sealpost_prekeys_close(struct sealpost_prekeys *pk);
/*
 * The same, the file encrypted (XChaCha20-Poly1305) under storage_key
 * (SEALPOST_STORAGE_KEY_LEN bytes, copied; the session store's key, see
 * "sessions" below): an encrypted store without its key, or under another,
 * is -SEALPOST_ESTORAGEKEY; a plain store opens and is encrypted at its
 * next save. NULL: sealpost_prekeys_open.
 */
SEALPOST_API int sealpost_prekeys_open_keyed(struct sealpost_prekeys **out, const char *path,
					     const struct sealpost_key *device,
					     const uint8_t *storage_key);

struct sealpost_prekeys_info {
	uint32_t onetime;               /* one-time secrets held (published, not yet used) */
	bool has_signed;
	uint32_t signed_id;
	uint64_t signed_created_s;
	bool has_previous;              /* a replaced signed prekey still kept */
};
SEALPOST_API void sealpost_prekeys_info(const struct sealpost_prekeys *pk,
					struct sealpost_prekeys_info *info);

/*
 * Makes count fresh one-time prekeys (0..SEALPOST_PREKEY_UPLOAD_MAX; the
 * broker's prekey-upload-max may be lower), and a new signed prekey if
 * there is none or it is older than SEALPOST_PREKEY_ROTATE_S at now_s
 * (0: the clock), saves the store (before anything is sent: a key the
 * broker holds always has its secret on disk), and queues a PrekeyUpload
 * on c's live session, which must be the store's device (-EINVAL). Answer:
 * PREKEY_RESULT with *client_id (may be NULL). Every upload carries the
 * current signed prekey (count 0 publishes it alone). -ENOTCONN, -EMSGSIZE
 * (the store would pass SEALPOST_PREKEY_HELD_MAX), -SEALPOST_EANONYMOUS,
 * -EIO (the store could not be saved: nothing sent).
 */
SEALPOST_API int sealpost_prekeys_upload(struct sealpost_client *c, struct sealpost_prekeys *pk,
					 unsigned count, uint64_t now_s, uint64_t *client_id);

/* sealpost_prekeys_upload, then wait (socket mode) up to timeout_ms for the
 * answer: 0 and *stock (may be NULL), or -SEALPOST_EPREKEYLIMIT,
 * -SEALPOST_EPREKEYREFUSED, -EIO, -ETIMEDOUT, the connection's error. A
 * refused upload's keys stay in the store (never published, never used). */
SEALPOST_API int sealpost_prekeys_upload_wait(struct sealpost_client *c,
					      struct sealpost_prekeys *pk, unsigned count,
					      int timeout_ms, uint32_t *stock);

/* A bundle, verified (sealpost_prekey_bundle_verify). */
struct sealpost_prekey_bundle {
	uint8_t device[SEALPOST_KEY_LEN];
	uint32_t signed_id;
	uint64_t signed_created_s;
	uint8_t signed_key[SEALPOST_KEY_LEN];
	bool has_onetime;               /* false: the broker had none left */
	uint32_t onetime_id;
	uint8_t onetime_key[SEALPOST_KEY_LEN];
};

/* Queues a PrekeyFetch of device (also on an anonymous client); answer:
 * PREKEY_BUNDLE with *client_id. -ENOTCONN. Each fetch uses up one of the
 * device's one-time prekeys: fetch only to write to it. */
SEALPOST_API int sealpost_prekeys_fetch(struct sealpost_client *c,
					const uint8_t device[SEALPOST_KEY_LEN], uint64_t *client_id);

/*
 * Checks a bundle (bytes, borrowed) against list (a signed device list,
 * borrowed: from sealpost_account_fetch_wait or a LIST event): the list
 * verifies (and, with st non-NULL, is not older than what st keeps), device
 * is on it (-SEALPOST_ENOTONLIST), the bundle is device's, its signing key
 * is device's key in Edwards form and every signature verifies
 * (-SEALPOST_EPREKEYBAD). 0 and *out. -SEALPOST_EBADLIST, -SEALPOST_EROLLBACK.
 */
SEALPOST_API int sealpost_prekey_bundle_verify(struct sealpost_account_store *st,
					       const uint8_t *list, size_t list_len,
					       const uint8_t device[SEALPOST_KEY_LEN],
					       const uint8_t *bytes, size_t len,
					       struct sealpost_prekey_bundle *out);

/* sealpost_prekeys_fetch, wait (socket mode) for the bundle and verify it
 * as above against list, with c's account store if one is attached.
 * -SEALPOST_ENOPREKEY, -SEALPOST_EPREKEYRATE, -SEALPOST_EPREKEYREFUSED. */
SEALPOST_API int sealpost_prekeys_fetch_wait(struct sealpost_client *c, const uint8_t *list,
					     size_t list_len,
					     const uint8_t device[SEALPOST_KEY_LEN], int timeout_ms,
					     struct sealpost_prekey_bundle *out);

/* The SEALPOST_E* code (negative) of a prekey status (73-78), 0 for others. */
SEALPOST_API int sealpost_prekeys_error(int status);

/*
 * First contact (docs/PROTOCOL.md 7.2): seals msg (borrowed) from sender to
 * the device of a verified bundle with X3DH (a fresh ephemeral key; the
 * one-time prekey when the bundle has one), padded like every seal. Send
 * the result with sealpost_client_send_raw to b->device. out: caller-owned,
 * cap bytes (padded size + SEALPOST_FIRST_CONTACT_OVERHEAD suffices;
 * SEALPOST_ENVELOPE_MAX always). -EMSGSIZE, -EINVAL. Thread-safe.
 */
enum { SEALPOST_FIRST_CONTACT_OVERHEAD = 106 };
SEALPOST_API int sealpost_prekey_seal(const struct sealpost_key *sender,
				      const struct sealpost_prekey_bundle *b, const uint8_t *msg,
				      size_t len, uint8_t *out, size_t cap, size_t *out_len);

/*
 * The recipient's side: with a prekey store attached (borrowed; it must
 * outlive c, and be the store of c's device key), c opens first-contact
 * envelopes as MESSAGE events (sender proven by X3DH) and deletes each
 * one-time prekey secret, in memory and in the store file, before the
 * message is handed over; the same envelope again is a BAD_ENVELOPE. NULL
 * detaches. Without a store they are BAD_ENVELOPE (or OPAQUE).
 */
SEALPOST_API void sealpost_client_set_prekeys(struct sealpost_client *c,
					      struct sealpost_prekeys *pk);

/* ------------------------------------------------------------ sessions --- */

/*
 * Sessions (docs/PROTOCOL.md 7.3, docs/CLIENT.md "Sessions"): after a first
 * contact (sealpost_client_send_first, or one received through the prekey
 * store) the two devices talk through a Double Ratchet session: every
 * message key is used once and deleted, and a device whose state was taken
 * heals after the next round trip. With a session store attached,
 * sealpost_client_send to a device with a session sends a ratchet envelope
 * (version 4); to any other it seals with Noise_X as before.
 *
 * The store is a file the app names (mode 0600, replaced whole: temporary
 * file, fsync, rename) encrypted with XChaCha20-Poly1305 under a 32-byte
 * storage key the app provides (from the platform's keystore, say): the
 * device key alone does not open it. Each send and each received envelope
 * through a session writes it before the envelope goes out or the message
 * is handed over. In memory: sodium_malloc'd, wiped when closed. One thread
 * at a time; it must outlive the client it is attached to.
 */
enum {
	SEALPOST_STORAGE_KEY_LEN = 32,
	SEALPOST_SESSIONS_MAX = 1024,      /* sessions one store holds */
	SEALPOST_RATCHET_MAX_SKIP = 256,   /* message keys one envelope may skip in a chain */
	SEALPOST_RATCHET_SKIPPED_MAX = 512, /* skipped keys kept per session, oldest dropped */
	SEALPOST_RATCHET_OVERHEAD = 73,    /* a version 4 body: padded message + 73 */
};

struct sealpost_sessions;

/* Opens (or, missing, starts empty) the store at path for device
 * (borrowed), under storage_key (copied). Another device's store: -EINVAL;
 * a wrong key or damaged file: -SEALPOST_ESTORAGEKEY; group- or
 * world-readable: -SEALPOST_EKEYMODE; open in this or another process
 * (an exclusive flock on path + ".lock", held until close): -EBUSY, since
 * two copies of one store would reuse message keys. */
SEALPOST_API int sealpost_sessions_open(struct sealpost_sessions **out, const char *path,
					const struct sealpost_key *device,
					const uint8_t storage_key[SEALPOST_STORAGE_KEY_LEN]);
SEALPOST_API void sealpost_sessions_close(struct sealpost_sessions *ss);
/* How many sessions the store holds. */
SEALPOST_API size_t sealpost_sessions_count(const struct sealpost_sessions *ss);
/* Whether there is a session with peer. */
SEALPOST_API bool sealpost_sessions_has(const struct sealpost_sessions *ss,
					const uint8_t peer[SEALPOST_KEY_LEN]);
/* Deletes the session with peer (saved): 0, -ENOENT, -EIO. The next send
 * to peer is a Noise_X seal or a first contact again. */
SEALPOST_API int sealpost_sessions_forget(struct sealpost_sessions *ss,
					  const uint8_t peer[SEALPOST_KEY_LEN]);

/* Attaches ss (borrowed; ss's device must be c's key: else -EINVAL; not
 * on an anonymous client: -SEALPOST_EANONYMOUS) so that sends use and
 * deliveries open sessions; NULL detaches. 0. */
SEALPOST_API int sealpost_client_set_sessions(struct sealpost_client *c,
					      struct sealpost_sessions *ss);

/*
 * First contact that starts a session: seals msg (borrowed) to a verified
 * bundle with X3DH (version 3, as sealpost_prekey_seal), starts the
 * session with b->device in the attached store (replacing one; saved
 * before anything is sent) and queues it like sealpost_client_send. Later
 * sealpost_client_send calls to b->device go through the session.
 * -EINVAL (no store attached, bad bundle), -EMSGSIZE, -EIO,
 * -SEALPOST_ESESSIONFULL, and sealpost_client_send's errors.
 */
SEALPOST_API int sealpost_client_send_first(struct sealpost_client *c,
					    const struct sealpost_prekey_bundle *b,
					    const void *msg, size_t len, uint64_t *client_id);

#ifdef __cplusplus
}
#endif

#endif
