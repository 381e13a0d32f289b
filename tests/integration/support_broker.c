/* SPDX-License-Identifier: Apache-2.0 */
/*
 * support_broker.c: starting, watching and stopping real sealpostd processes
 * for integration tests (the contract is in support.h).
 *
 * Everything here is bounded in time: a broker that never becomes ready, a
 * broker that ignores SIGTERM and a child that never exits are all killed
 * after a fixed bound, so no test can hang on them. The broker is started
 * with PR_SET_PDEATHSIG so it dies with a test that crashes or is killed by
 * ctest's timeout.
 */
#include "sp_clock.h"
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <ftw.h>

#include <sodium.h>

enum {
	READY_POLL_MS = 20,
	READY_BOUND_MS = 10000,
	STOP_BOUND_MS = 10000,
	START_ATTEMPTS = 4,       /* a free port can be taken between probe and bind */
	EXTRA_ARGS_MAX = 64,
	IO_TIMEOUT_S = 10,
};

/* Substrings that mean a sanitizer found a bug in the broker. */
static const char *const sanitizer_marks[] = {
	"runtime error",          /* UBSan */
	"AddressSanitizer",
	"LeakSanitizer",
	"ThreadSanitizer",
	NULL,
};

static int64_t now_ms(void)
{
	return (int64_t)sp_clock_mono_ms();
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Writing to a socket the broker closed must give EPIPE, not kill the test. */
static void ignore_sigpipe(void)
{
	signal(SIGPIPE, SIG_IGN);
}

/* Asks the kernel for a loopback port nobody is bound to right now. */
static int free_port(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd, ret = 0;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		ret = -errno;
	else
		*port = ntohs(sa.sin_port);
	close(fd);
	return ret;
}

static int connect_timeout_from(uint16_t port, int timeout_s, const char *src)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = timeout_s };
	int fd, one = 1;

	ignore_sigpipe();
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Bounds connect() as well as every later blocking read/write. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (src) {
		/* Another loopback address as the source (all of 127/8 is lo). */
		struct sockaddr_in from = { .sin_family = AF_INET };

		if (inet_pton(AF_INET, src, &from.sin_addr) != 1 ||
		    bind(fd, (struct sockaddr *)&from, sizeof(from)) < 0) {
			int e = errno ? -errno : -EINVAL;

			close(fd);
			return e;
		}
	}
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons(port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

static int connect_timeout(uint16_t port, int timeout_s)
{
	return connect_timeout_from(port, timeout_s, NULL);
}

int sp_it_http_get(uint16_t port, const char *path, char **body)
{
	char req[128], *buf = malloc(SP_IT_HTTP_MAX), *sep;
	size_t n = 0;
	int fd, status = -EPROTO;

	*body = NULL;
	if (!buf)
		return -ENOMEM;
	fd = sp_it_tcp_connect(port);
	if (fd < 0) {
		free(buf);
		return fd;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
	if (write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
		for (;;) {
			ssize_t r = read(fd, buf + n, SP_IT_HTTP_MAX - 1 - n);

			if (r <= 0)
				break;
			n += (size_t)r;
		}
	}
	close(fd);
	buf[n] = '\0';
	sep = strstr(buf, "\r\n\r\n");
	if (sep && sscanf(buf, "HTTP/1.%*d %d", &status) == 1)
		*body = strdup(sep + 4);
	free(buf);
	return status;
}

int sp_it_tcp_connect(uint16_t port)
{
	return connect_timeout(port, IO_TIMEOUT_S);
}

int sp_it_tcp_connect_from(uint16_t port, const char *src)
{
	return connect_timeout_from(port, IO_TIMEOUT_S, src);
}

static void dump_log(const char *path)
{
	char line[1024];
	FILE *f = fopen(path, "r");

	if (!f) {
		fprintf(stderr, "[support] (no broker log at %s)\n", path);
		return;
	}
	fprintf(stderr, "[support] ---- %s ----\n", path);
	while (fgets(line, sizeof(line), f))
		fprintf(stderr, "[sealpostd] %s", line);
	fprintf(stderr, "[support] ---- end of log ----\n");
	fclose(f);
}

/* Reads DIR/server.pub: 64 hex characters and a newline. */
static int read_server_pub(struct sp_it_broker *b)
{
	char path[320], buf[2 * SP_KEY_LEN + 2];
	size_t bin_len = 0;
	ssize_t n;
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/server.pub", b->data_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf));
	if (n < 0)
		ret = -errno;
	else if (n != 2 * SP_KEY_LEN + 1 || buf[2 * SP_KEY_LEN] != '\n')
		ret = -EBADMSG;
	close(fd);
	if (ret)
		return ret;
	if (sodium_hex2bin(b->server_pub, SP_KEY_LEN, buf, 2 * SP_KEY_LEN, NULL, &bin_len, NULL) ||
	    bin_len != SP_KEY_LEN)
		return -EBADMSG;
	memcpy(b->server_pub_hex, buf, 2 * SP_KEY_LEN);
	b->server_pub_hex[2 * SP_KEY_LEN] = '\0';
	return 0;
}

static bool file_exists(const char *dir, const char *name)
{
	char path[320];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

/* Reaps the child if it exited; records its status. Returns true if gone. */
static bool reap(struct sp_it_broker *b)
{
	int st;
	pid_t r;

	if (b->reaped)
		return true;
	if (b->pid <= 0)
		return true;
	do
		r = waitpid(b->pid, &st, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == b->pid || (r < 0 && errno == ECHILD)) {
		b->exit_status = r == b->pid ? st : -ECHILD;
		b->reaped = 1;
		return true;
	}
	return false;
}

static int spawn(struct sp_it_broker *b, const char *bin, const char *const *extra_args)
{
	char listen_arg[80];
	const char *argv[EXTRA_ARGS_MAX + 8];
	size_t n = 0;
	pid_t pid;
	int logfd;

	snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%u", (unsigned)b->port);
	argv[n++] = bin;
	argv[n++] = "--listen";
	argv[n++] = listen_arg;
	argv[n++] = "--data-dir";
	argv[n++] = b->data_dir;
	/* Many brokers run at once: no fixed metrics port (a test's own
	 * --metrics-listen comes later and wins). */
	argv[n++] = "--metrics-listen";
	argv[n++] = "127.0.0.1:0";
	for (size_t i = 0; extra_args && extra_args[i]; i++) {
		if (i >= EXTRA_ARGS_MAX)
			return -E2BIG;
		argv[n++] = extra_args[i];
	}
	argv[n] = NULL;

	/* Appending: a restart on the same data dir keeps the earlier log. */
	logfd = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (logfd < 0)
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		int e = -errno;

		close(logfd);
		return e;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (devnull >= 0)
			dup2(devnull, STDIN_FILENO);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(logfd);
	b->pid = pid;
	b->reaped = 0;
	b->exit_status = 0;
	return 0;
}

/* Did a start fail because someone else took the port in the meantime? */
static bool log_says_addr_in_use(const struct sp_it_broker *b)
{
	return sp_it_log_count(b, "in use") > 0 || sp_it_log_count(b, "EADDRINUSE") > 0;
}

/* The port of the newest msg="metrics listening" line (the log is appended
 * to across restarts), 0 if none. */
static uint16_t read_log_port(const struct sp_it_broker *b, const char *msg)
{
	FILE *f = fopen(b->log_path, "r");
	char line[1024];
	unsigned port = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, msg);

		if (p && (p = strstr(p, " port=")) != NULL)
			port = (unsigned)strtoul(p + 6, NULL, 10);
	}
	fclose(f);
	return port <= 65535 ? (uint16_t)port : 0;
}

/*
 * Ready = the broker logged a new msg="sealpostd started" (it does so right
 * after marking itself ready: /readyz 200, READY=1) and its listener takes a
 * connection. The listener alone is not enough: the kernel accepts into the
 * backlog before the event loop is set up. started_before: the count of such
 * lines before this start (the log is appended to across restarts).
 */
static int wait_ready(struct sp_it_broker *b, int started_before)
{
	int64_t deadline = now_ms() + READY_BOUND_MS;

	for (;;) {
		if (reap(b))
			return -ECHILD;
		if (file_exists(b->data_dir, "server.pub") &&
		    sp_it_log_count(b, "msg=\"sealpostd started\"") > started_before) {
			int fd = connect_timeout(b->port, 2);

			if (fd >= 0) {
				close(fd);
				/* Logged before the listener opened. */
				b->metrics_port = read_log_port(b, "msg=\"metrics listening\"");
				b->ws_port = read_log_port(b, "msg=\"ws listening\"");
				return read_server_pub(b);
			}
		}
		if (now_ms() > deadline)
			return -ETIMEDOUT;
		sleep_ms(READY_POLL_MS);
	}
}

/* fixed_port 0: pick a free one (retrying if taken meanwhile). */
static int start(struct sp_it_broker *b, const char *data_dir, uint16_t fixed_port,
		 const char *const *extra_args)
{
	const char *bin = getenv("SEALPOSTD");
	int ret = -EINVAL;

	ignore_sigpipe();
	memset(b, 0, sizeof(*b));
	b->pid = -1;
	b->reaped = 1;
	if (!bin || !*bin) {
		fprintf(stderr, "[support] SEALPOSTD is not set (run through ctest)\n");
		return -EINVAL;
	}
	if (access(bin, X_OK) < 0) {
		ret = -errno;
		fprintf(stderr, "[support] SEALPOSTD=%s: %s\n", bin, strerror(errno));
		return ret;
	}
	if (data_dir) {
		if (strlen(data_dir) >= sizeof(b->data_dir))
			return -ENAMETOOLONG;
		snprintf(b->data_dir, sizeof(b->data_dir), "%s", data_dir);
	} else {
		snprintf(b->data_dir, sizeof(b->data_dir), "/tmp/sp-it-XXXXXX");
		if (!mkdtemp(b->data_dir))
			return -errno;
	}
	snprintf(b->log_path, sizeof(b->log_path), "%s/sealpostd.log", b->data_dir);

	for (int attempt = 0; attempt < START_ATTEMPTS; attempt++) {
		if (fixed_port)
			b->port = fixed_port;
		else if ((ret = free_port(&b->port)))
			return ret;
		int started_before = sp_it_log_count(b, "msg=\"sealpostd started\"");

		snprintf(b->addr, sizeof(b->addr), "127.0.0.1:%u", (unsigned)b->port);
		ret = spawn(b, bin, extra_args);
		if (ret)
			return ret;
		ret = wait_ready(b, started_before > 0 ? started_before : 0);
		if (ret == 0)
			return 0;
		if (ret == -ECHILD && log_says_addr_in_use(b) && !fixed_port) {
			fprintf(stderr, "[support] port %u taken, retrying\n", (unsigned)b->port);
			continue;
		}
		break;
	}
	if (ret == -ECHILD)
		fprintf(stderr, "[support] sealpostd exited before it was ready (status 0x%x)\n",
			(unsigned)b->exit_status);
	else
		fprintf(stderr, "[support] sealpostd not ready: %s\n", strerror(-ret));
	dump_log(b->log_path);
	sp_it_broker_kill(b);
	return ret;
}

int sp_it_broker_start(struct sp_it_broker *b, const char *data_dir, const char *const *extra_args)
{
	return start(b, data_dir, 0, extra_args);
}

int sp_it_broker_start_at(struct sp_it_broker *b, const char *data_dir, uint16_t port,
			  const char *const *extra_args)
{
	return start(b, data_dir, port, extra_args);
}

/* Waits for the child to exit, up to bound_ms; true if it did. */
static bool wait_exit(struct sp_it_broker *b, int bound_ms)
{
	int64_t deadline = now_ms() + bound_ms;

	while (!reap(b)) {
		if (now_ms() > deadline)
			return false;
		sleep_ms(5);
	}
	return true;
}

int sp_it_log_sanitizer_reports(const struct sp_it_broker *b)
{
	int n = 0;

	for (size_t i = 0; sanitizer_marks[i]; i++) {
		int c = sp_it_log_count(b, sanitizer_marks[i]);

		if (c > 0)
			n += c;
	}
	return n;
}

/* After the broker is gone: a sanitizer report in its log fails the caller. */
static int finish(struct sp_it_broker *b)
{
	if (sp_it_log_sanitizer_reports(b) > 0) {
		fprintf(stderr, "[support] sanitizer report in the broker log\n");
		dump_log(b->log_path);
		return -EPROTO;
	}
	return b->exit_status;
}

int sp_it_broker_stop(struct sp_it_broker *b)
{
	if (b->pid <= 0)
		return -ESRCH;
	if (!reap(b)) {
		kill(b->pid, SIGTERM);
		if (!wait_exit(b, STOP_BOUND_MS)) {
			fprintf(stderr, "[support] sealpostd ignored SIGTERM for %d ms; killing\n",
				STOP_BOUND_MS);
			kill(b->pid, SIGKILL);
			wait_exit(b, STOP_BOUND_MS);
			finish(b);
			return -ETIMEDOUT;
		}
	}
	return finish(b);
}

int sp_it_broker_kill(struct sp_it_broker *b)
{
	if (b->pid <= 0)
		return -ESRCH;
	if (!reap(b)) {
		kill(b->pid, SIGKILL);
		if (!wait_exit(b, STOP_BOUND_MS))
			return -ETIMEDOUT;
	}
	return finish(b);
}

int sp_it_broker_alive(struct sp_it_broker *b)
{
	if (b->pid <= 0)
		return 0;
	return !reap(b);
}

int sp_it_log_count(const struct sp_it_broker *b, const char *needle)
{
	FILE *f = fopen(b->log_path, "r");
	char *line = NULL;
	size_t cap = 0;
	int n = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) >= 0) {
		if (strstr(line, needle))
			n++;
	}
	free(line);
	fclose(f);
	return n;
}

void sp_it_log_tail(const struct sp_it_broker *b, int lines)
{
	FILE *f = fopen(b->log_path, "r");
	char *line = NULL;
	size_t cap = 0;
	long total = 0, at = 0;

	if (!f) {
		fprintf(stderr, "[support] (no broker log at %s)\n", b->log_path);
		return;
	}
	while (getline(&line, &cap, f) >= 0)
		total++;
	rewind(f);
	while (getline(&line, &cap, f) >= 0) {
		if (at++ >= total - lines)
			fprintf(stderr, "[sealpostd] %s", line);
	}
	free(line);
	fclose(f);
}

int sp_it_log_count_key(const struct sp_it_broker *b, const uint8_t key[SP_KEY_LEN])
{
	char hex[2 * SP_KEY_LEN + 1], head[17], tail[17];
	FILE *f = fopen(b->log_path, "r");
	char *line = NULL;
	size_t cap = 0;
	int n = 0;

	if (!f)
		return -errno;
	sodium_bin2hex(hex, sizeof(hex), key, SP_KEY_LEN);
	/* A prefix or suffix is as identifying as the key; the whole key contains both. */
	memcpy(head, hex, 16);
	head[16] = '\0';
	memcpy(tail, hex + 2 * SP_KEY_LEN - 16, 16);
	tail[16] = '\0';
	while (getline(&line, &cap, f) >= 0) {
		if (strcasestr(line, head) || strcasestr(line, tail))
			n++;
	}
	free(line);
	fclose(f);
	return n;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

void sp_it_rmrf(const char *dir)
{
	char real[PATH_MAX];

	/* A safety catch: only what lives under /tmp is ever removed. */
	if (!dir || !realpath(dir, real) || strncmp(real, "/tmp/", 5) != 0 || strlen(real) < 6)
		return;
	nftw(real, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* --- sp_it_run --------------------------------------------------------------- */

static void kill_and_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

int sp_it_run(char *const argv[], const char *stdin_data, char *out, size_t out_cap, int timeout_s)
{
	int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 };
	size_t in_len = stdin_data ? strlen(stdin_data) : 0, in_off = 0, out_len = 0;
	int64_t deadline = now_ms() + (int64_t)timeout_s * 1000;
	int st, ret;
	pid_t pid;

	ignore_sigpipe();
	if (out && out_cap)
		out[0] = '\0';
	if (pipe2(in_pipe, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(out_pipe, O_CLOEXEC) < 0) {
		ret = -errno;
		close(in_pipe[0]);
		close(in_pipe[1]);
		return ret;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		ret = -errno;
		close(in_pipe[0]);
		close(in_pipe[1]);
		close(out_pipe[0]);
		close(out_pipe[1]);
		return ret;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(in_pipe[0], STDIN_FILENO);
		dup2(out_pipe[1], STDOUT_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	close(in_pipe[0]);
	close(out_pipe[1]);
	fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
	if (in_len == 0) {
		close(in_pipe[1]);
		in_pipe[1] = -1;
	}

	/* Feed stdin and drain stdout together, so neither side can block the other. */
	while (out_pipe[0] >= 0) {
		struct pollfd pfd[2] = {
			{ .fd = out_pipe[0], .events = POLLIN },
			{ .fd = in_pipe[1], .events = POLLOUT },
		};
		int64_t left = deadline - now_ms();
		int r;

		if (left <= 0) {
			kill_and_reap(pid);
			close(out_pipe[0]);
			if (in_pipe[1] >= 0)
				close(in_pipe[1]);
			return -ETIMEDOUT;
		}
		r = poll(pfd, in_pipe[1] >= 0 ? 2 : 1, (int)(left > 100 ? 100 : left));
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		if (pfd[0].revents) {
			char buf[4096];
			ssize_t n = read(out_pipe[0], buf, sizeof(buf));

			if (n > 0) {
				/* Keep what fits; drain the rest so the child never blocks. */
				size_t keep = 0;

				if (out && out_cap > out_len + 1) {
					keep = out_cap - 1 - out_len;
					if (keep > (size_t)n)
						keep = (size_t)n;
					memcpy(out + out_len, buf, keep);
					out_len += keep;
					out[out_len] = '\0';
				}
			} else if (n == 0 || errno != EINTR) {
				close(out_pipe[0]);
				out_pipe[0] = -1;
			}
		}
		if (in_pipe[1] >= 0 && pfd[1].revents) {
			ssize_t n = write(in_pipe[1], stdin_data + in_off, in_len - in_off);

			if (n > 0)
				in_off += (size_t)n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len) {
				close(in_pipe[1]);
				in_pipe[1] = -1;
			}
		}
	}
	if (out_pipe[0] >= 0)
		close(out_pipe[0]);
	if (in_pipe[1] >= 0)
		close(in_pipe[1]);

	/* stdout closed: the child is exiting (or closed stdout early); bound the wait. */
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (now_ms() > deadline) {
			kill_and_reap(pid);
			return -ETIMEDOUT;
		}
		sleep_ms(5);
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

int sp_it_broker_restart(struct sp_it_broker *b, const char *const *extra_args)
{
	const char *bin = getenv("SEALPOSTD");
	int started_before, ret;

	if (!bin)
		return -EINVAL;
	started_before = sp_it_log_count(b, "msg=\"sealpostd started\"");
	ret = spawn(b, bin, extra_args);
	if (ret)
		return ret;
	ret = wait_ready(b, started_before > 0 ? started_before : 0);
	if (ret) {
		dump_log(b->log_path);
		sp_it_broker_kill(b);
	}
	return ret;
}
