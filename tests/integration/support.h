/* SPDX-License-Identifier: Apache-2.0 */
/*
 * support.h: helpers for integration tests that drive real sealpostd processes.
 *
 * sp_it_broker_start() picks a free loopback port, makes a fresh temporary
 * data directory (unless one is given, so restart tests can reuse it), starts
 * $SEALPOSTD (built binary; env set by CTest) with --listen 127.0.0.1:PORT
 * --data-dir DIR and any extra arguments, waits until it logs
 * msg="sealpostd started" (it does so once ready, so start it at --log-level
 * info or more verbose) and a TCP connect succeeds (bounded: 10 s), and reads
 * DIR/server.pub. The broker's stderr goes to
 * DIR/sealpostd.log so a test can grep what it logged.
 *
 * Every test stops its brokers itself; sp_it_broker_stop() sends SIGTERM and
 * waits (bounded: 10 s, then SIGKILL) and returns the exit status.
 */
#ifndef SP_IT_SUPPORT_H
#define SP_IT_SUPPORT_H

#include <stdint.h>
#include <sys/types.h>

#include "sp_limits.h"

struct sp_it_broker {
	pid_t pid;
	uint16_t port;
	char addr[64];                 /* "127.0.0.1:PORT" */
	/* The metrics endpoint's port: brokers start with --metrics-listen
	 * 127.0.0.1:0 (a test's own --metrics-listen wins) and log
	 * msg="metrics listening" addr=... port=N; 0 if it logged none (off). */
	uint16_t metrics_port;
	/* The WebSocket listener's port, from msg="ws listening" ... port=N
	 * (a test starts the broker with --ws-listen 127.0.0.1:0); 0 = none. */
	uint16_t ws_port;
	char data_dir[256];
	char log_path[300];
	uint8_t server_pub[SP_KEY_LEN];
	char server_pub_hex[2 * SP_KEY_LEN + 1];
	/* Filled by the helpers once the process has been reaped. */
	int reaped;
	int exit_status;               /* waitpid status, valid when reaped */
};

/* data_dir: NULL for a fresh temp dir. extra_args: NULL-terminated, or NULL. */
int sp_it_broker_start(struct sp_it_broker *b, const char *data_dir, const char *const *extra_args);
/* The same on a given port (a restart where clients expect it, or another
 * broker on the address of one that stopped); no retry if it is taken. */
int sp_it_broker_start_at(struct sp_it_broker *b, const char *data_dir, uint16_t port,
			  const char *const *extra_args);
/* SIGTERM, wait; returns the wait status (or -errno). -EPROTO (and the log is
 * printed) when the broker log holds an ASan/UBSan/LSan report, so a broker
 * built with -DSP_SANITIZE=ON fails every test that stops it. */
int sp_it_broker_stop(struct sp_it_broker *b);
/* SIGKILL, wait. Same sanitizer check as stop. */
int sp_it_broker_kill(struct sp_it_broker *b);
/* Starts a stopped or killed broker again on the same port and data dir
 * (clients that reconnect find it where it was); ready as after start. */
int sp_it_broker_restart(struct sp_it_broker *b, const char *const *extra_args);
/* Is the process still running (not exited)? */
int sp_it_broker_alive(struct sp_it_broker *b);
/* Count of lines in the broker log containing needle. */
int sp_it_log_count(const struct sp_it_broker *b, const char *needle);
/* Prints the last `lines` lines of the broker log to stderr (for failing tests). */
void sp_it_log_tail(const struct sp_it_broker *b, int lines);
/* Count of sanitizer report lines ("runtime error", "AddressSanitizer", ...) in the log. */
int sp_it_log_sanitizer_reports(const struct sp_it_broker *b);
/* Count of log lines holding key in hex (lower or upper case, whole or its first
 * or last 16 hex digits): a broker must never log a key. */
int sp_it_log_count_key(const struct sp_it_broker *b, const uint8_t key[SP_KEY_LEN]);
/* rm -rf of a temp dir made by start (only paths under /tmp). */
void sp_it_rmrf(const char *dir);

/* A raw TCP connection to 127.0.0.1:port, blocking, with a 10 s receive timeout. */
int sp_it_tcp_connect(uint16_t port);
/* GET path from 127.0.0.1:port over HTTP/1.1 (Connection: close, at most
 * SP_IT_HTTP_MAX bytes read). Returns the status or -errno; the body in a
 * malloc'd *body (the caller frees it; NULL when there is none). */
enum { SP_IT_HTTP_MAX = 1 << 20 };
int sp_it_http_get(uint16_t port, const char *path, char **body);
/* The same from the IPv4 source address src (e.g. "127.0.0.2"); -errno. */
int sp_it_tcp_connect_from(uint16_t port, const char *src);

/* Runs argv (argv[0] a path), feeding stdin_data (may be NULL), capturing up
 * to out_cap-1 bytes of stdout into out (NUL-terminated). Returns the exit
 * status (0..255) or -errno; bounded by timeout_s (then killed, returns -ETIMEDOUT). */
int sp_it_run(char *const argv[], const char *stdin_data, char *out, size_t out_cap, int timeout_s);

#endif
