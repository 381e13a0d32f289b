/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon.h: what makes sealpostd a daemon: the signal thread, sd_notify,
 * the data-directory lock and the server key (main.c composes them).
 *
 * Signals: blocked in every thread and read from one signalfd by a small
 * signal thread (no handler, nothing async-signal-unsafe):
 *   SIGTERM, SIGINT  stop: /readyz 503, sd_notify STOPPING=1, wake the shard
 *                    (it stops accepting, sends GoAway SHUTDOWN, drains within
 *                    --close-grace); a second one cuts the remaining
 *                    connections at once. Then storage is synced and closed.
 *   SIGUSR1          log one level more verbose (up to debug)
 *   SIGUSR2          back to the configured --log-level
 * The shard is woken through an eventfd, so any number of shards could be.
 *
 * systemd: with NOTIFY_SOCKET set, READY=1 once listening and storage is
 * open, STOPPING=1 at the stop signal (the datagram protocol of
 * sd_notify(3), written here: a few lines, no libsystemd).
 *
 * Exit status: 0 after a clean shutdown, 1 on a runtime error (data
 * directory locked, key unreadable, address in use, ...), 2 on a usage or
 * configuration error.
 */
#ifndef SP_DAEMON_H
#define SP_DAEMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "sp_config.h"
#include "sp_log.h"
#include "sp_metrics.h"

/*
 * What the signal thread and the main thread share. Set up before the
 * thread starts; afterwards the thread only reads it, except for the log's
 * level (atomic, see sp_log.h) and the metrics' ready flag (atomic).
 */
struct daemon {
	const struct sp_config *cfg;
	struct sp_log *log;
	struct sp_metrics *metrics;
	int sig_fd;             /* signalfd: SIGINT, SIGTERM, SIGUSR1, SIGUSR2 */
	int stop_fd;            /* eventfd: the shard's wake_fd; written once per stop signal */
	/* With shards: shard i's wake_fd (i >= 1; 0 is stop_fd), written with it. */
	int shard_stop_fd[SP_CONFIG_THREADS_MAX];
	unsigned nshard_stop;
	int quit_fd;            /* eventfd: the main thread tells the signal thread to end */
	pthread_t sig_thread;
	bool sig_thread_running;
	pthread_mutex_t mu;     /* orders stop signals against becoming ready */
	int stop;               /* stop signals seen; under mu */
	char notify_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	size_t notify_len;      /* 0: no NOTIFY_SOCKET */
	const uint8_t *enrol_key; /* --registration=token: sodium_malloc'd key; else NULL */
};

/* One error line: msg, path=, error=strerror(err). */
void sp_daemon_log_errno(const struct sp_log *lg, const char *msg, const char *path, int err);


/* flock on DIR/sealpostd.lock (see daemon.c); the descriptor, or -1. */
int sp_daemon_lock_dir(const struct sp_log *lg, const struct sp_config *cfg, struct daemon *d);

/* DIR/server.key, created on first start; priv: sodium_malloc'd, written. */
int sp_daemon_load_key(const struct sp_log *lg, const char *dir, uint8_t *priv);

/* Blocks the daemon's signals (before any thread starts) and returns a
 * signalfd for them, or -1. */
int sp_daemon_signal_fd(void);

/* $NOTIFY_SOCKET, if set; then sp_daemon_notify sends one datagram to it. */
void sp_daemon_notify_init(struct daemon *d);
void sp_daemon_notify(const struct daemon *d, const char *msg);

/* The signal thread (pthread start routine; arg: struct daemon *). */
void *sp_daemon_signal_thread(void *arg);

/* A stop signal was seen. */
bool sp_daemon_stopping(struct daemon *d);

/* Ready (/readyz 200, READY=1) unless a stop signal came first. */
void sp_daemon_set_ready(struct daemon *d);

#endif
