/* SPDX-License-Identifier: Apache-2.0 */
/*
 * support_nats.c: starting, waiting for and killing real nats-server
 * processes for the cluster tests (the contract is in support_nats.h).
 * Bounded everywhere: a server that never becomes ready, or never exits
 * after SIGKILL, ends the wait with an error instead of a hang.
 */
#include "support_nats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sp_clock.h"
#include "support.h"

enum {
	POLL_MS = 50,
	REAP_BOUND_MS = 5000,
	START_ATTEMPTS = 3,     /* a free port can be taken between probe and bind */
	HTTP_MAX = 1 << 20,
	IO_TIMEOUT_S = 5,
};

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static const char *server_bin(void)
{
	static const char *const fixed[] = { "/usr/sbin/nats-server", "/usr/bin/nats-server" };
	const char *env = getenv("NATS_SERVER");

	if (env && *env)
		return access(env, X_OK) == 0 ? env : NULL;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (access(fixed[i], X_OK) == 0)
			return fixed[i];
	return NULL;
}

bool sp_it_nats_available(void)
{
	return server_bin() != NULL;
}

/* A port nobody is bound to on ip right now. */
static int free_port(const char *ip, uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd, ret = 0;

	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		ret = -errno;
	else
		*port = ntohs(sa.sin_port);
	close(fd);
	return ret;
}

static int write_conf(const struct sp_it_nats *c, int i)
{
	const struct sp_it_nats_server *s = &c->s[i];
	FILE *f = fopen(s->conf, "w");

	if (!f)
		return -errno;
	fprintf(f, "server_name: n%d\nlisten: %s:%u\nhttp: %s:%u\n", i + 1, s->ip,
		(unsigned)s->port, s->ip, (unsigned)s->http_port);
	/* Small limits: a test stores little, and three servers share a disk
	 * and memory with the other tests. */
	if (c->jetstream)
		fprintf(f, "jetstream {\n  store_dir: \"%s/js%d\"\n  max_memory_store: 64MB\n"
			   "  max_file_store: 256MB\n}\n", c->dir, i + 1);
	if (c->n > 1) {
		fprintf(f, "cluster {\n  name: sp-it\n  listen: %s:%u\n  routes: [\n", s->ip,
			(unsigned)s->route_port);
		for (int j = 0; j < c->n; j++)
			if (j != i)
				fprintf(f, "    nats-route://%s:%u\n", c->s[j].ip,
					(unsigned)c->s[j].route_port);
		fprintf(f, "  ]\n}\n");
	}
	return fclose(f) == 0 ? 0 : -EIO;
}

static int spawn(struct sp_it_nats_server *s)
{
	const char *bin = server_bin();
	int logfd;
	pid_t pid;

	if (!bin)
		return -ENOENT;
	logfd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
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
		execl(bin, bin, "-c", s->conf, (char *)NULL);
		_exit(127);
	}
	close(logfd);
	s->pid = pid;
	return 0;
}

/* Did server s exit? Reaps it if so. */
static bool exited(struct sp_it_nats_server *s)
{
	int st;
	pid_t r;

	if (s->pid <= 0)
		return true;
	do
		r = waitpid(s->pid, &st, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == s->pid || (r < 0 && errno == ECHILD)) {
		s->pid = -1;
		return true;
	}
	return false;
}

static void kill_reap(struct sp_it_nats_server *s)
{
	int64_t deadline = (int64_t)sp_clock_mono_ms() + REAP_BOUND_MS;

	if (s->pid <= 0)
		return;
	kill(s->pid, SIGKILL);
	while (!exited(s) && (int64_t)sp_clock_mono_ms() < deadline)
		sleep_ms(5);
}

int sp_it_nats_http_get(const struct sp_it_nats *c, int i, const char *path, char **body)
{
	const struct sp_it_nats_server *s = &c->s[i];
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(s->http_port) };
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	char req[512], *buf = NULL;
	size_t len = 0;
	int fd, status = -EPROTO;
	ssize_t r;

	if (body)
		*body = NULL;
	inet_pton(AF_INET, s->ip, &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		status = -errno;
		goto out;
	}
	/* HTTP/1.0: the body as it is, never chunked (a long /jsz would be). */
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n",
		 path, s->ip);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		status = -EIO;
		goto out;
	}
	buf = malloc(HTTP_MAX + 1);
	if (!buf) {
		status = -ENOMEM;
		goto out;
	}
	while (len < HTTP_MAX && (r = read(fd, buf + len, HTTP_MAX - len)) > 0)
		len += (size_t)r;
	buf[len] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		status = -EPROTO;
	if (body && status > 0) {
		const char *b = strstr(buf, "\r\n\r\n");

		*body = strdup(b ? b + 4 : "");
	}
out:
	free(buf);
	close(fd);
	return status;
}

/* One server ready: its monitor answers and, for JetStream in a cluster, the
 * meta group has a leader and all n peers. */
static bool server_ready(const struct sp_it_nats *c, int i)
{
	char *body = NULL, want[32];
	const char *meta, *leader;
	bool ok = false;

	if (!c->jetstream || c->n == 1)
		return sp_it_nats_http_get(c, i, "/healthz", NULL) == 200;
	if (sp_it_nats_http_get(c, i, "/jsz", &body) != 200 || !body)
		goto out;
	meta = strstr(body, "\"meta_cluster\"");
	leader = meta ? strstr(meta, "\"leader\": \"") : NULL;
	snprintf(want, sizeof(want), "\"cluster_size\": %d", c->n);
	ok = leader && leader[11] != '"' && strstr(meta, want);
out:
	free(body);
	return ok;
}

static void dump_logs(const struct sp_it_nats *c)
{
	for (int i = 0; i < c->n; i++) {
		char line[512];
		FILE *f = fopen(c->s[i].log, "r");

		if (!f)
			continue;
		fprintf(stderr, "---- %s ----\n", c->s[i].log);
		while (fgets(line, sizeof(line), f))
			fputs(line, stderr);
		fclose(f);
	}
}

int sp_it_nats_wait_ready(struct sp_it_nats *c, int bound_ms)
{
	int64_t deadline = (int64_t)sp_clock_mono_ms() + bound_ms;

	for (;;) {
		int ready = 0, running = 0;

		for (int i = 0; i < c->n; i++) {
			if (c->s[i].pid <= 0 || exited(&c->s[i]))
				continue;
			running++;
			ready += server_ready(c, i);
		}
		if (running > 0 && ready == running)
			return 0;
		if (running == 0)
			return -ECHILD;
		if ((int64_t)sp_clock_mono_ms() > deadline)
			return -ETIMEDOUT;
		sleep_ms(POLL_MS);
	}
}

static int pick_ports(struct sp_it_nats *c)
{
	int ret = 0;

	for (int i = 0; i < c->n && ret == 0; i++) {
		struct sp_it_nats_server *s = &c->s[i];

		ret = free_port(s->ip, &s->port);
		if (ret == 0)
			ret = free_port(s->ip, &s->route_port);
		if (ret == 0)
			ret = free_port(s->ip, &s->http_port);
		char url[sizeof(s->url)];

		/* Through a local: GCC's -Wrestrict sees s->ip and s->url as one object. */
		snprintf(url, sizeof(url), "nats://%s:%u", s->ip, (unsigned)s->port);
		memcpy(s->url, url, sizeof(url));
	}
	{
		char urls[SP_IT_NATS_URLS_MAX] = "";    /* apart from c: no overlapping snprintf */

		for (int i = 0; i < c->n; i++) {
			size_t l = strlen(urls);

			snprintf(urls + l, sizeof(urls) - l, "%s%s", i ? "," : "", c->s[i].url);
		}
		memcpy(c->urls, urls, sizeof(urls));
	}
	return ret;
}

static int start_once(struct sp_it_nats *c)
{
	int ret = pick_ports(c);

	for (int i = 0; i < c->n && ret == 0; i++)
		ret = write_conf(c, i);
	for (int i = 0; i < c->n && ret == 0; i++)
		ret = spawn(&c->s[i]);
	if (ret == 0)
		ret = sp_it_nats_wait_ready(c, SP_IT_NATS_READY_MS);
	/* One exited (a port taken meanwhile, say): all down, try again. */
	for (int i = 0; ret == 0 && i < c->n; i++)
		if (c->s[i].pid <= 0)
			ret = -ECHILD;
	if (ret)
		for (int i = 0; i < c->n; i++)
			kill_reap(&c->s[i]);
	return ret;
}

int sp_it_nats_start(struct sp_it_nats *c, int n, bool jetstream)
{
	int ret = -EINVAL;

	memset(c, 0, sizeof(*c));
	if (n < 1 || n > SP_IT_NATS_MAX)
		return -EINVAL;
	if (!server_bin()) {
		fprintf(stderr, "[support_nats] no nats-server (apt-get install nats-server)\n");
		return -ENOENT;
	}
	signal(SIGPIPE, SIG_IGN);
	c->n = n;
	c->jetstream = jetstream;
	snprintf(c->dir, sizeof(c->dir), "/tmp/sp-it-nats-XXXXXX");
	if (!mkdtemp(c->dir))
		return -errno;
	for (int i = 0; i < n; i++) {
		struct sp_it_nats_server *s = &c->s[i];

		s->pid = -1;
		snprintf(s->ip, sizeof(s->ip), "127.0.0.%d", i + 1);
		snprintf(s->conf, sizeof(s->conf), "%s/n%d.conf", c->dir, i + 1);
		snprintf(s->log, sizeof(s->log), "%s/n%d.log", c->dir, i + 1);
	}
	for (int attempt = 0; attempt < START_ATTEMPTS; attempt++) {
		ret = start_once(c);
		if (ret != -ECHILD)
			break;
		fprintf(stderr, "[support_nats] a server exited at start; retrying on other ports\n");
	}
	if (ret) {
		fprintf(stderr, "[support_nats] cluster of %d not ready: %s\n", n, strerror(-ret));
		dump_logs(c);
		sp_it_nats_stop(c);
	}
	return ret;
}

int sp_it_nats_kill(struct sp_it_nats *c, int i)
{
	if (i < 0 || i >= c->n || c->s[i].pid <= 0)
		return -ESRCH;
	kill_reap(&c->s[i]);
	return c->s[i].pid <= 0 ? 0 : -ETIMEDOUT;
}

int sp_it_nats_restart(struct sp_it_nats *c, int i)
{
	if (i < 0 || i >= c->n || c->s[i].pid > 0)
		return -EINVAL;
	return spawn(&c->s[i]);
}

void sp_it_nats_stop(struct sp_it_nats *c)
{
	for (int i = 0; i < c->n; i++)
		kill_reap(&c->s[i]);
	if (c->dir[0] && strncmp(c->dir, "/tmp/sp-it-nats-", 16) == 0)
		sp_it_rmrf(c->dir);
	c->dir[0] = '\0';
}
