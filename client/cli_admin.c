/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_admin.c: `sealpost admin` (cli_admin.h). Writes one JSON request line
 * to the admin socket, prints the one-line JSON answer as it came, and exits
 * 0 if it says "ok":true. The request is built here by hand from validated
 * pieces (hex keys, level and order names, numbers): nothing needs quoting,
 * so the CLI needs no JSON library.
 */
#include "cli_admin.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum {
	EX_OK = 0,
	EX_USAGE = 1,
	EX_CONNECT = 3,         /* the socket could not be reached */
	EX_LOST = 4,            /* no (complete) answer in time */
	EX_REFUSED = 6,         /* the daemon answered with an error */
	ANSWER_MAX = 1 << 20,   /* far above the longest answer */
	KEY_HEX = 64,
};

#define DEFAULT_SOCKET "./data/admin.sock"

static const char admin_help[] =
	"usage: sealpost admin [--admin-socket PATH] [--timeout SECONDS] COMMAND [ARG]\n"
	"\n"
	"Talks to a running sealpostd over its admin socket (default " DEFAULT_SOCKET ",\n"
	"i.e. DATA_DIR/admin.sock of a daemon started with the default --data-dir).\n"
	"Whoever can open the socket (mode 0600: the daemon's user) is the operator.\n"
	"\n"
	"commands:\n"
	"  status             the daemon's state and totals\n"
	"  mailbox KEY        one device's mailbox: envelopes, bytes, oldest age\n"
	"  purge KEY          delete every envelope stored for a device\n"
	"  disconnect KEY     end a device's connection (GoAway shutdown)\n"
	"  log-level LEVEL    error, warn, info or debug, from now on\n"
	"  reload             re-read the config file; apply the reloadable limits\n"
	"  top [N] [--by bytes|count]\n"
	"                     the N (default 10, at most 100) largest mailboxes, by\n"
	"                     device id (a keyed hash, not the key)\n"
	"  hash KEY           the device id the daemon gives KEY (to find it in top)\n"
	"KEY is a device public key, 64 hex characters.\n"
	"\n"
	"Prints the daemon's answer, one JSON line (docs/OPERATIONS.md).\n"
	"exit status: 0 ok; 1 usage error; 3 cannot connect to the socket;\n"
	"4 no answer within --timeout (default 10 s); 6 the daemon answered an error.\n";

static int usage_error(const char *msg)
{
	fprintf(stderr, "sealpost admin: %s\n", msg);
	fputs(admin_help, stderr);
	return EX_USAGE;
}

static int is_hex_key(const char *s)
{
	size_t n = strlen(s);

	if (n != KEY_HEX)
		return 0;
	return strspn(s, "0123456789abcdefABCDEF") == n;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Builds the request line for argv (command first) into req. */
static int build(int argc, char **argv, char *req, size_t cap)
{
	const char *cmd = argv[0], *by = NULL;
	long n = 0;
	int w;

	if (!strcmp(cmd, "status") || !strcmp(cmd, "reload")) {
		if (argc != 1)
			return usage_error("this command takes no argument");
		w = snprintf(req, cap, "{\"cmd\":\"%s\"}\n", cmd);
	} else if (!strcmp(cmd, "mailbox") || !strcmp(cmd, "purge") ||
		   !strcmp(cmd, "disconnect") || !strcmp(cmd, "hash")) {
		if (argc != 2 || !is_hex_key(argv[1]))
			return usage_error("this command takes one KEY: 64 hex characters");
		w = snprintf(req, cap, "{\"cmd\":\"%s\",\"key\":\"%s\"}\n", cmd, argv[1]);
	} else if (!strcmp(cmd, "log-level")) {
		if (argc != 2 || strspn(argv[1], "abcdefghijklmnopqrstuvwxyz") != strlen(argv[1]) ||
		    strlen(argv[1]) > 16)
			return usage_error("log-level takes one of error, warn, info, debug");
		w = snprintf(req, cap, "{\"cmd\":\"log-level\",\"level\":\"%s\"}\n", argv[1]);
	} else if (!strcmp(cmd, "top")) {
		for (int i = 1; i < argc; i++) {
			char *end;

			if (!strcmp(argv[i], "--by") && i + 1 < argc) {
				by = argv[++i];
				if (strcmp(by, "bytes") && strcmp(by, "count"))
					return usage_error("--by takes bytes or count");
			} else if (!n) {
				errno = 0;
				n = strtol(argv[i], &end, 10);
				if (errno || *end || end == argv[i] || n < 1 || n > 100)
					return usage_error("top N takes N in 1..100");
			} else {
				return usage_error("top takes [N] [--by bytes|count]");
			}
		}
		if (n && by)
			w = snprintf(req, cap, "{\"cmd\":\"top\",\"n\":%ld,\"by\":\"%s\"}\n", n, by);
		else if (n)
			w = snprintf(req, cap, "{\"cmd\":\"top\",\"n\":%ld}\n", n);
		else if (by)
			w = snprintf(req, cap, "{\"cmd\":\"top\",\"by\":\"%s\"}\n", by);
		else
			w = snprintf(req, cap, "{\"cmd\":\"top\"}\n");
	} else {
		return usage_error("unknown admin command");
	}
	return w > 0 && (size_t)w < cap ? 0 : usage_error("argument too long");
}

/* Waits for fd to be ready for events until deadline; 0, or EX_LOST. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int64_t left;
	int r;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0)
			return EX_LOST;
		r = poll(&p, 1, (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return EX_LOST;
	}
}

int cli_admin_main(int argc, char **argv)
{
	const char *path = DEFAULT_SOCKET;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char req[256], *ans = NULL;
	long timeout_s = 10;
	size_t len = 0, off = 0;
	int64_t deadline;
	int i, fd, ret;

	for (i = 1; i < argc && !strncmp(argv[i], "--", 2); i++) {
		char *end;

		if (!strcmp(argv[i], "--help")) {
			fputs(admin_help, stdout);
			return EX_OK;
		} else if (!strcmp(argv[i], "--admin-socket") && i + 1 < argc) {
			path = argv[++i];
		} else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
			errno = 0;
			timeout_s = strtol(argv[++i], &end, 10);
			if (errno || *end || timeout_s < 1 || timeout_s > 3600)
				return usage_error("--timeout takes 1..3600 seconds");
		} else {
			return usage_error("unknown option or missing argument");
		}
	}
	if (i >= argc)
		return usage_error("a command is required");
	ret = build(argc - i, argv + i, req, sizeof(req));
	if (ret)
		return ret;
	if (strlen(path) >= sizeof(sa.sun_path))
		return usage_error("--admin-socket: path too long for a Unix socket");
	memcpy(sa.sun_path, path, strlen(path) + 1);

	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		fprintf(stderr, "sealpost admin: cannot connect to %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return EX_CONNECT;
	}
	deadline = now_ms() + timeout_s * 1000;
	len = strlen(req);
	while (off < len) {
		ssize_t w = write(fd, req + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "sealpost admin: write: %s\n", strerror(errno));
			close(fd);
			return EX_LOST;
		}
		off += (size_t)w;
	}
	ans = malloc(ANSWER_MAX + 1);
	if (!ans) {
		close(fd);
		return EX_LOST;
	}
	len = 0;
	ret = EX_LOST;
	/* The daemon closes after its one line. */
	while (len < ANSWER_MAX && wait_fd(fd, POLLIN, deadline) == 0) {
		ssize_t r = read(fd, ans + len, ANSWER_MAX - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	ans[len] = '\0';
	if (len == 0 || ans[len - 1] != '\n') {
		fprintf(stderr, "sealpost admin: no complete answer from %s within %ld s\n", path,
			timeout_s);
	} else {
		fputs(ans, stdout);
		/* The daemon's answers always start with the "ok" member. */
		ret = !strncmp(ans, "{\"ok\":true", 10) ? EX_OK : EX_REFUSED;
	}
	free(ans);
	return ret;
}
