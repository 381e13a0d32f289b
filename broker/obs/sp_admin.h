/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_admin.h: the admin socket of sealpostd (`sealpost admin`): a Unix
 * stream socket, one JSON request line in, one JSON response line out, then
 * the daemon closes the connection. docs/OPERATIONS.md is the protocol.
 *
 * Authentication is the socket file's permissions (mode 0600, or 0660 with
 * admin-socket-mode; by default in the data directory, which is 0700):
 * whoever can connect is the operator. Each
 * request is logged with the peer's uid and pid (SO_PEERCRED).
 *
 * Threads. This module runs its own thread: accept, read, parse, answer,
 * all with poll() and per-connection deadlines, so a slow or stuck admin
 * client never touches the event loop. What needs the shard's state (the
 * connection and routing tables, the store, the live configuration) is a
 * job handed to the shard: queued under a mutex, and the shard woken by an
 * eventfd it reads on its ring (sp_admin_wake_fd); the shard takes the
 * jobs (sp_admin_take), runs them on its own thread between completions
 * (loop/sp_admin_exec.c) and hands each back (sp_admin_done), which wakes
 * this thread through a second eventfd. A job stays the shard's from take
 * to done; the connection slot that owns it is not reused before done,
 * even if its client gave up. hash and log-level need nothing of the shard
 * (the id secret is read-only after start, the log level an atomic) and
 * are answered here; so is top, through the top source the daemon gives
 * (it reads the store's committed counters with an iterator of its own,
 * which RocksDB allows from any thread), so that its O(devices) scan never
 * holds up the event loop.
 *
 * Device ids: the largest mailboxes are listed by a keyed hash of the
 * device key (BLAKE2b-128 under a random per-process secret, hex), so the
 * list is not a directory of users and ids mean nothing after a restart;
 * `hash KEY` gives the id of a key the operator already knows. No answer
 * and no log line holds a device key.
 *
 * Errors: 0 or a negative errno.
 */
#ifndef SP_ADMIN_H
#define SP_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sp_config.h"
#include "sp_limits.h"
#include "sp_log.h"

enum sp_admin_cmd {
	SP_ADMIN_NONE = 0,
	SP_ADMIN_STATUS,        /* totals */
	SP_ADMIN_MAILBOX,       /* one device's mailbox: count, bytes, oldest age */
	SP_ADMIN_PURGE,         /* delete one device's stored envelopes */
	SP_ADMIN_DISCONNECT,    /* end one device's connection (GoAway shutdown) */
	SP_ADMIN_LOG_LEVEL,     /* change the log level */
	SP_ADMIN_RELOAD,        /* re-read the config file, apply the reloadable limits */
	SP_ADMIN_TOP,           /* the largest mailboxes, by device id */
	SP_ADMIN_HASH,          /* the device id of a key */
	SP_ADMIN_CMD_COUNT,
};

enum {
	SP_ADMIN_ID_LEN = 16,           /* device id bytes (32 hex characters) */
	SP_ADMIN_TOP_MAX = 100,         /* most mailboxes one top answers */
	SP_ADMIN_TOP_DEFAULT = 10,
	SP_ADMIN_CHANGES_MAX = 64,      /* config differences one reload describes */
	SP_ADMIN_MSG_MAX = 200,         /* an error message */
};

/* A parsed request (sp_admin_parse). */
struct sp_admin_req {
	enum sp_admin_cmd cmd;
	uint8_t key[SP_KEY_LEN];        /* mailbox, purge, disconnect, hash */
	enum sp_log_level level;        /* log-level */
	uint32_t n;                     /* top: 1..SP_ADMIN_TOP_MAX */
	bool by_count;                  /* top: by envelope count instead of bytes */
};

struct sp_admin_top_entry {
	uint8_t id[SP_ADMIN_ID_LEN];
	uint64_t count, bytes;
};

/* What the shard (or this module) answers; written by whoever runs the job. */
struct sp_admin_result {
	const char *error;              /* NULL = ok; else a code (docs/OPERATIONS.md) */
	char message[SP_ADMIN_MSG_MAX]; /* for an error: what and why */
	/* status */
	uint64_t connections, devices_online, mailbox_entries, mailbox_bytes;
	uint64_t accepted_conns, handshakes, envelopes_accepted, envelopes_refused;
	uint64_t delivered_live, delivered_mailbox, acks, expired;
	bool stopping, has_store;
	/* mailbox */
	uint64_t count, bytes, oldest_age_ms;
	bool online;
	/* purge: count, bytes. disconnect: online. */
	/* log-level */
	enum sp_log_level old_level, new_level;
	/* reload */
	size_t nchanges;                /* may exceed SP_ADMIN_CHANGES_MAX */
	struct sp_config_change changes[SP_ADMIN_CHANGES_MAX];
	/* top */
	size_t ntop;
	uint64_t scanned;
	struct sp_admin_top_entry top[SP_ADMIN_TOP_MAX];
	/* hash */
	uint8_t id[SP_ADMIN_ID_LEN];
};

/* A request on its way to the shard and back. */
struct sp_admin_job {
	struct sp_admin_req req;
	struct sp_admin_result res;
	const struct sp_config *fresh;  /* reload: the re-read configuration (this module's) */
	uint64_t commit_failures;       /* the shard's scratch (sp_admin_exec.c) */
	struct sp_admin_job *next;      /* queue link, then the shard's own list */
	int state;                      /* this module's, under its mutex */
};

/*
 * Parses one request line (len bytes, no newline needed; not NUL-terminated)
 * into req. 0, or -EINVAL (malformed) / -ENOENT (no such command) with a
 * message for the client in msg (cap bytes).
 * line borrowed for the call.
 */
int sp_admin_parse(const char *line, size_t len, struct sp_admin_req *req, char *msg,
		   size_t cap);

/* The command's name on the wire ("status", ...), or NULL. */
const char *sp_admin_cmd_name(enum sp_admin_cmd cmd);

/* What the process adds to a status answer. */
struct sp_admin_info {
	const char *version;
	uint64_t uptime_s;
	long pid;
	enum sp_log_level log_level;
};

/*
 * The response line for req and res, with '\n', into out (cap bytes): the
 * first member is always "ok" (true or false). Returns its length, or
 * -ENOSPC / -ENOMEM. info: status only (may be NULL otherwise).
 */
int sp_admin_format(const struct sp_admin_req *req, const struct sp_admin_result *res,
		    const struct sp_admin_info *info, char *out, size_t cap);

/* The device id of key under secret (crypto_generichash_KEYBYTES bytes). */
void sp_admin_id(const uint8_t *secret, const uint8_t key[SP_KEY_LEN],
		 uint8_t id[SP_ADMIN_ID_LEN]);

struct sp_admin;

/*
 * Where top's figures come from (the daemon composes it over the store).
 * Runs on the admin thread, concurrently with the shard: it must read
 * committed data only and touch nothing the shard owns. Fills out[0..n)
 * largest first and *nout, *scanned; 0 or a negative errno.
 */
struct sp_admin_top_key {
	uint8_t key[SP_KEY_LEN];
	uint64_t count, bytes;
};
typedef int (*sp_admin_top_fn)(void *ctx, size_t n, bool by_count, struct sp_admin_top_key *out,
			       size_t *nout, uint64_t *scanned);

/* Where the socket goes: cfg->admin_socket, or DATA_DIR/admin.sock if that
 * is empty. -ENAMETOOLONG if it does not fit a sun_path. */
int sp_admin_path(const struct sp_config *cfg, char *out, size_t cap);

/*
 * Creates the socket and starts the thread. cfg, log: borrowed for the
 * module's life (the log's level is what log-level changes). argc/argv:
 * the daemon's command line, borrowed for the module's life: reload runs
 * sp_config_load over it again, so flags still win over the file.
 * The socket: a stale socket file left by a dead daemon is replaced; a
 * live one (something answers on it), or anything that is not a socket
 * (a symlink included), is refused with -EEXIST. Created under a umask
 * that gives it cfg->admin_socket_mode at once. On failure logs why.
 */
int sp_admin_start(struct sp_admin **out, const struct sp_config *cfg, struct sp_log *log,
		   int argc, char *const argv[], const char *version, sp_admin_top_fn top,
		   void *top_ctx);

/* Stops the thread (answering what waits with shutting_down), removes the
 * socket file, frees. The shard must have stopped taking jobs. NULL: no-op. */
void sp_admin_stop(struct sp_admin *a);

/* The socket's path (for the log). */
const char *sp_admin_socket_path(const struct sp_admin *a);

/* ---- the shard's side --------------------------------------------------- */

/* Readable (an eventfd counter) when jobs are queued; the shard reads it. */
int sp_admin_wake_fd(const struct sp_admin *a);

/* Takes every queued job, oldest first; the shard owns them until it hands
 * each back with sp_admin_done. NULL if none. */
struct sp_admin_job *sp_admin_take(struct sp_admin *a);

/* j's result is written: back to the admin thread (j is no longer the shard's). */
void sp_admin_done(struct sp_admin *a, struct sp_admin_job *j);

/* The device id of key under this daemon's secret (any thread). */
void sp_admin_device_id(const struct sp_admin *a, const uint8_t key[SP_KEY_LEN],
			uint8_t id[SP_ADMIN_ID_LEN]);

#endif
