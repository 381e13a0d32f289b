/*
 * main.c: sealpostd. Reads the configuration (flags over --config FILE over
 * defaults), starts the metrics endpoint, prepares the data directory (lock,
 * static key, storage), opens the listener and runs the shard's event loop
 * until SIGINT/SIGTERM.
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
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "sp_config.h"
#include "sp_http.h"
#include "sp_keyfile.h"
#include "sp_log.h"
#include "sp_metrics.h"
#include "sp_noise.h"
#include "sp_shard.h"
#include "sp_store.h"

#ifndef SP_VERSION
#define SP_VERSION "0.0.0"
#endif

enum {
	LISTEN_BACKLOG = 4096,
	FD_RESERVE = 64,         /* listener, ring, signalfd, lock, logs, storage */
	LOCK_POLL_MS = 100,
};

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
	int quit_fd;            /* eventfd: the main thread tells the signal thread to end */
	pthread_t sig_thread;
	bool sig_thread_running;
	pthread_mutex_t mu;     /* orders stop signals against becoming ready */
	int stop;               /* stop signals seen; under mu */
	char notify_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	size_t notify_len;      /* 0: no NOTIFY_SOCKET */
};

static void log_errno(const struct sp_log *lg, const char *msg, const char *path, int err)
{
	SP_LOG(lg, SP_LOG_ERROR, msg, SP_KV_STR("path", path), SP_KV_STR("error", strerror(err)));
}

/* mkdir -p, the last component 0700 (it will hold the private key). */
static int make_dir(const char *dir)
{
	char tmp[SP_CONFIG_PATH_MAX];
	struct stat st;

	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) && errno != EEXIST)
		return -errno;
	if (stat(tmp, &st))
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * flock on DIR/sealpostd.lock: one broker per data directory. The lock
 * lives as long as the returned descriptor (the whole process). Waits up to
 * --lock-timeout for a broker that still holds it (one still draining during
 * a restart, say), polling, and gives up early on a stop signal. -1 on
 * failure.
 */
static bool stopping(struct daemon *d);

static int lock_dir(const struct sp_log *lg, const struct sp_config *cfg, struct daemon *d)
{
	char path[SP_CONFIG_PATH_MAX + 32];
	uint64_t deadline = mono_ms() + (uint64_t)cfg->lock_timeout_s * 1000;
	bool said = false;
	int fd;

	snprintf(path, sizeof(path), "%s/sealpostd.lock", cfg->data_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_errno(lg, "cannot open lock file", path, errno);
		return -1;
	}
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK) {
			log_errno(lg, "cannot lock data directory", path, errno);
			break;
		}
		if (mono_ms() >= deadline) {
			SP_LOG(lg, SP_LOG_ERROR,
			       "data directory is locked: another sealpostd is using it",
			       SP_KV_STR("path", path),
			       SP_KV_UINT("lock_timeout_s", cfg->lock_timeout_s));
			break;
		}
		if (stopping(d)) {
			SP_LOG0(lg, SP_LOG_INFO, "stop signal while waiting for the lock");
			break;
		}
		if (!said) {
			SP_LOG(lg, SP_LOG_INFO, "waiting for the data-directory lock",
			       SP_KV_STR("path", path),
			       SP_KV_UINT("lock_timeout_s", cfg->lock_timeout_s));
			said = true;
		}
		poll(NULL, 0, LOCK_POLL_MS);
	}
	close(fd);
	return -1;
}

/* Loads DIR/server.key, creating the pair on first start; (re)writes
 * DIR/server.pub when it is missing or does not match. priv: sodium_malloc'd. */
static int load_key(const struct sp_log *lg, const char *dir, uint8_t *priv)
{
	char kpath[SP_CONFIG_PATH_MAX + 32], ppath[SP_CONFIG_PATH_MAX + 32];
	uint8_t pub[SP_KEY_LEN], filepub[SP_KEY_LEN];
	int ret;

	snprintf(kpath, sizeof(kpath), "%s/server.key", dir);
	snprintf(ppath, sizeof(ppath), "%s/server.pub", dir);
	ret = sp_keyfile_read_private(kpath, priv);
	if (ret == -ENOENT) {
		sp_noise_keypair(pub, priv);
		ret = sp_keyfile_write_private(kpath, priv);
		if (ret == 0)
			SP_LOG(lg, SP_LOG_INFO, "created server key pair",
			       SP_KV_STR("path", kpath));
	} else if (ret == 0) {
		ret = sp_noise_public_key(pub, priv);
	}
	if (ret) {
		log_errno(lg, "cannot load server key", kpath, -ret);
		return ret;
	}
	if (sp_keyfile_read_public(ppath, filepub) || sodium_memcmp(pub, filepub, SP_KEY_LEN)) {
		ret = sp_keyfile_write_public(ppath, pub);
		if (ret)
			log_errno(lg, "cannot write public key", ppath, -ret);
	}
	return ret;
}

static int open_listener(const struct sp_log *lg, const struct sp_config *cfg)
{
	int one = 1, fd, family = cfg->listen_addr.ss_family;

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* Restart right after a stop, despite TIME_WAIT. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&cfg->listen_addr, cfg->listen_addr_len) ||
	    listen(fd, LISTEN_BACKLOG))
		goto fail;
	return fd;
fail:
	SP_LOG(lg, SP_LOG_ERROR, "cannot listen", SP_KV_STR("listen", cfg->listen),
	       SP_KV_STR("error", strerror(errno)));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* The signals of the daemon become readable on a signalfd read by the signal
 * thread: no signal handler, nothing async-signal-unsafe. Blocked before any
 * thread starts, so every thread inherits the mask. */
static int signal_fd(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_CLOEXEC);
}

/*
 * sd_notify(3)'s protocol: one datagram of "KEY=VALUE" lines to the
 * AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" for the
 * abstract namespace). Best effort: systemd treats a missing READY=1 as a
 * failed start, which is the right outcome if this cannot be sent.
 */
static void notify(const struct daemon *d, const char *msg)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = d->notify_len;
	int fd;

	if (!len)
		return;
	memcpy(sa.sun_path, d->notify_path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (const struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		SP_LOG(d->log, SP_LOG_WARN, "sd_notify failed",
		       SP_KV_STR("error", strerror(errno)));
	if (fd >= 0)
		close(fd);
}

static void notify_init(struct daemon *d)
{
	const char *p = getenv("NOTIFY_SOCKET");
	size_t len = p ? strlen(p) : 0;

	d->notify_len = 0;
	if (!len)
		return;
	if ((p[0] != '/' && p[0] != '@') || len >= sizeof(d->notify_path)) {
		SP_LOG(d->log, SP_LOG_WARN, "NOTIFY_SOCKET not usable: not a unix socket path",
		       SP_KV_UINT("length", len));
		return;
	}
	memcpy(d->notify_path, p, len);
	d->notify_len = len;
}

static const char *signal_name(uint32_t signo)
{
	switch (signo) {
	case SIGINT: return "SIGINT";
	case SIGTERM: return "SIGTERM";
	case SIGUSR1: return "SIGUSR1";
	case SIGUSR2: return "SIGUSR2";
	default: return "other";
	}
}

static void on_signal(struct daemon *d, uint32_t signo)
{
	enum sp_log_level lvl;
	uint64_t one = 1;
	ssize_t w;

	switch (signo) {
	case SIGUSR1:
		lvl = sp_log_level(d->log);
		if (lvl < SP_LOG_DEBUG)
			lvl = (enum sp_log_level)(lvl + 1);
		sp_log_set_level(d->log, lvl);
		SP_LOG(d->log, SP_LOG_WARN, "log level changed", SP_KV_STR("signal", "SIGUSR1"),
		       SP_KV_STR("level", sp_log_level_name(lvl)));
		return;
	case SIGUSR2:
		sp_log_set_level(d->log, d->cfg->log_level);
		SP_LOG(d->log, SP_LOG_WARN, "log level changed", SP_KV_STR("signal", "SIGUSR2"),
		       SP_KV_STR("level", sp_log_level_name(d->cfg->log_level)));
		return;
	case SIGINT:
	case SIGTERM:
		pthread_mutex_lock(&d->mu);
		d->stop++;
		sp_metrics_set_ready(d->metrics, false);
		pthread_mutex_unlock(&d->mu);
		if (d->stop == 1)
			notify(d, "STOPPING=1\nSTATUS=shutting down\n");
		SP_LOG(d->log, SP_LOG_INFO, "stop signal", SP_KV_STR("signal", signal_name(signo)));
		/* One write per signal: the shard's second wake-up is the
		 * "stop waiting for slow peers" one. */
		w = write(d->stop_fd, &one, sizeof(one));
		(void)w;
		return;
	default:
		return;
	}
}

static void *signal_thread(void *arg)
{
	struct daemon *d = arg;
	struct pollfd p[2] = {
		{ .fd = d->sig_fd, .events = POLLIN },
		{ .fd = d->quit_fd, .events = POLLIN },
	};
	struct signalfd_siginfo si;

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			SP_LOG(d->log, SP_LOG_ERROR, "signal thread: poll failed",
			       SP_KV_STR("error", strerror(errno)));
			return NULL;
		}
		if (p[1].revents)
			return NULL;
		if (!(p[0].revents & POLLIN))
			continue;
		if (read(d->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			on_signal(d, si.ssi_signo);
	}
}

static bool stopping(struct daemon *d)
{
	bool s;

	pthread_mutex_lock(&d->mu);
	s = d->stop > 0;
	pthread_mutex_unlock(&d->mu);
	return s;
}

/* Ready (/readyz 200, READY=1) unless a stop signal came first. */
static void set_ready(struct daemon *d)
{
	bool ok;

	pthread_mutex_lock(&d->mu);
	ok = d->stop == 0;
	if (ok)
		sp_metrics_set_ready(d->metrics, true);
	pthread_mutex_unlock(&d->mu);
	if (ok)
		notify(d, "READY=1\nSTATUS=serving\n");
}

/*
 * RocksDB figures for the scrape (runs on the HTTP thread; RocksDB's
 * property calls are thread-safe). Sums over the column families.
 */
static int rocksdb_figures(void *ctx, struct sp_metrics_rocksdb *out)
{
	struct sp_store *st = ctx;
	uint64_t v;
	char *stats = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	for (unsigned cf = 0; cf < SP_STORE_CF_COUNT; cf++) {
		if (sp_store_property(st, cf, "rocksdb.total-sst-files-size", &v))
			return -ENOENT;
		out->sst_bytes += v;
		if (sp_store_property(st, cf, "rocksdb.estimate-pending-compaction-bytes", &v))
			return -ENOENT;
		out->pending_compaction_bytes += v;
	}
	ret = sp_store_property_text(st, "rocksdb.dbstats", &stats);
	if (ret == 0)
		ret = sp_metrics_parse_rocksdb_stall(stats, &out->write_stall_seconds);
	free(stats);
	return ret;
}

static const char *ring_mode(unsigned flags)
{
	if (flags & IORING_SETUP_DEFER_TASKRUN)
		return "defer_taskrun";
	if (flags & IORING_SETUP_COOP_TASKRUN)
		return "coop_taskrun";
	return "default";
}

/* Each connection is a descriptor: make sure --max-conns can be reached
 * (raise the soft limit to the hard one if needed), or say why not. */
static void check_fd_limit(const struct sp_log *lg, const struct sp_config *cfg)
{
	rlim_t need = (rlim_t)cfg->max_conns + FD_RESERVE;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= need)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < need)
		SP_LOG(lg, SP_LOG_WARN, "open-file limit below --max-conns: accepts will fail",
		       SP_KV_UINT("max_conns", cfg->max_conns), SP_KV_UINT("nofile", rl.rlim_cur));
}

/* The stop line, from the shard's metrics slot. accepted: connections taken
 * into the table (refusals at accept time subtracted; the few refused
 * while stopping are counted as accepted). */
static void log_stopped(const struct sp_log *lg, const struct sp_metrics_shard *m)
{
	uint64_t refused = m->connections_closed[SP_METRICS_CLOSE_MAX_CONNS] +
			   m->connections_closed[SP_METRICS_CLOSE_HANDSHAKE_RATE];
	uint64_t handshakes = 0, sends = m->envelopes_accepted;

	for (unsigned p = 0; p < SP_METRICS_PATTERN_COUNT; p++)
		handshakes += m->handshakes[p][SP_METRICS_OUTCOME_OK];
	for (unsigned i = 0; i < SP_METRICS_REFUSED_COUNT; i++)
		sends += m->envelopes_refused[i];
	SP_LOG(lg, SP_LOG_INFO, "stopped",
	       SP_KV_UINT("accepted", m->connections_accepted - refused),
	       SP_KV_UINT("handshakes", handshakes), SP_KV_UINT("sends", sends),
	       SP_KV_UINT("delivered", m->envelopes_delivered[SP_METRICS_PATH_LIVE]),
	       SP_KV_UINT("refused", refused));
}

static int serve(struct daemon *d, const uint8_t *priv, int listen_fd, struct sp_store *store)
{
	const struct sp_config *cfg = d->cfg;
	struct sp_shard *sh = calloc(1, sizeof(*sh));
	int ret;

	if (!sh)
		return -ENOMEM;
	ret = sp_shard_init(sh, 0, cfg, d->log, priv, listen_fd, d->stop_fd);
	if (ret) {
		SP_LOG(d->log, SP_LOG_ERROR, "cannot set up the event loop",
		       SP_KV_STR("error", strerror(-ret)));
		free(sh);
		return ret;
	}
	sh->metrics = sp_metrics_shard(d->metrics, 0);
	sh->store = store;
	/* Listening, key loaded, storage open, event loop set up: ready. */
	set_ready(d);
	SP_LOG(d->log, SP_LOG_INFO, "sealpostd started", SP_KV_STR("version", SP_VERSION),
	       SP_KV_STR("listen", cfg->listen), SP_KV_STR("data_dir", cfg->data_dir),
	       SP_KV_STR("config", cfg->config_path[0] ? cfg->config_path : "-"),
	       SP_KV_UINT("max_conns", cfg->max_conns),
	       SP_KV_STR("ring", ring_mode(sh->ring.setup_flags)));
	ret = sp_shard_run(sh);
	sp_metrics_set_ready(d->metrics, false);
	log_stopped(d->log, sh->metrics);
	sp_shard_destroy(sh);
	free(sh);
	return ret;
}

/* "HOST:0" with the port the kernel chose, for the log (tests read it). */
static void metrics_addr(const char *cfg_addr, uint16_t port, char *out, size_t cap)
{
	const char *colon = strrchr(cfg_addr, ':');
	int hlen = colon ? (int)(colon - cfg_addr) : 0;

	snprintf(out, cap, "%.*s:%u", hlen, cfg_addr, (unsigned)port);
}

static int start_metrics(struct daemon *d, struct sp_http **http)
{
	char addr[SP_CONFIG_HOST_MAX + 8];
	int err;

	err = sp_metrics_create(&d->metrics, 1);
	if (err) {
		log_errno(d->log, "cannot set up metrics", "-", -err);
		return err;
	}
	if (strcmp(d->cfg->metrics_listen, "off") == 0)
		return 0;
	err = sp_http_start(http, d->cfg->metrics_listen, d->metrics);
	if (err) {
		SP_LOG(d->log, SP_LOG_ERROR, "cannot serve metrics",
		       SP_KV_STR("metrics_listen", d->cfg->metrics_listen),
		       SP_KV_STR("error", strerror(-err)));
		return err;
	}
	metrics_addr(d->cfg->metrics_listen, sp_http_port(*http), addr, sizeof(addr));
	SP_LOG(d->log, SP_LOG_INFO, "metrics listening", SP_KV_STR("addr", addr),
	       SP_KV_UINT("port", sp_http_port(*http)));
	return 0;
}

static int run(const struct sp_config *cfg, struct sp_log *lg)
{
	struct daemon d = {
		.cfg = cfg, .log = lg, .sig_fd = -1, .stop_fd = -1, .quit_fd = -1,
		.mu = PTHREAD_MUTEX_INITIALIZER,
	};
	int lock_fd = -1, listen_fd = -1, ret = 1, err;
	struct sp_http *http = NULL;
	struct sp_store *store = NULL;
	uint8_t *priv = NULL;
	uint64_t one = 1;

	notify_init(&d);
	/* Before any thread exists: they all inherit the blocked signals. */
	d.sig_fd = signal_fd();
	d.stop_fd = eventfd(0, EFD_CLOEXEC);
	d.quit_fd = eventfd(0, EFD_CLOEXEC);
	if (d.sig_fd < 0 || d.stop_fd < 0 || d.quit_fd < 0) {
		log_errno(lg, "cannot set up signals", "-", errno);
		goto out;
	}
	/* First, so /healthz answers (and /readyz says 503) while waiting for
	 * the lock or opening storage. */
	if (start_metrics(&d, &http))
		goto out;
	err = pthread_create(&d.sig_thread, NULL, signal_thread, &d);
	if (err) {
		log_errno(lg, "cannot start the signal thread", "-", err);
		goto out;
	}
	d.sig_thread_running = true;

	err = make_dir(cfg->data_dir);
	if (err) {
		log_errno(lg, "cannot create data directory", cfg->data_dir, -err);
		goto out;
	}
	lock_fd = lock_dir(lg, cfg, &d);
	if (lock_fd < 0) {
		ret = stopping(&d) ? 0 : 1;
		goto out;
	}
	priv = sodium_malloc(SP_KEY_LEN);
	if (!priv || load_key(lg, cfg->data_dir, priv))
		goto out;
	sodium_mprotect_readonly(priv);
	check_fd_limit(lg, cfg);
	/* Storage (DATA_DIR/mailbox); then its figures join the scrape. */
	if (sp_shard_store_open(cfg, lg, &store))
		goto out;
	if (store)
		sp_metrics_set_rocksdb_source(d.metrics, rocksdb_figures, store);
	listen_fd = open_listener(lg, cfg);
	if (listen_fd < 0)
		goto out;
	ret = serve(&d, priv, listen_fd, store) ? 1 : 0;
out:
	if (store) {
		/* The scrape must not read a closing database. */
		sp_metrics_set_rocksdb_source(d.metrics, NULL, NULL);
		err = sp_store_sync(store);
		if (err) {
			SP_LOG(lg, SP_LOG_ERROR, "storage sync failed",
			       SP_KV_STR("error", strerror(-err)));
			ret = 1;
		}
		sp_store_close(store);
		SP_LOG0(lg, SP_LOG_INFO, "storage synced and closed");
	}
	if (d.sig_thread_running) {
		ssize_t w = write(d.quit_fd, &one, sizeof(one));

		(void)w;
		pthread_join(d.sig_thread, NULL);
	}
	sp_http_stop(http);             /* before the metrics it reads */
	sp_metrics_destroy(d.metrics);
	if (listen_fd >= 0)
		close(listen_fd);
	if (d.sig_fd >= 0)
		close(d.sig_fd);
	if (d.stop_fd >= 0)
		close(d.stop_fd);
	if (d.quit_fd >= 0)
		close(d.quit_fd);
	if (priv)
		sodium_free(priv);      /* zeroes it */
	if (lock_fd >= 0)
		close(lock_fd);
	if (ret == 0)
		SP_LOG0(lg, SP_LOG_INFO, "exiting");
	return ret;
}

int main(int argc, char **argv)
{
	struct sp_config *cfg = malloc(sizeof(*cfg));
	struct sp_log lg;
	char err[SP_CONFIG_ERR_MAX];
	int ret;

	if (!cfg) {
		fprintf(stderr, "sealpostd: out of memory\n");
		return 1;
	}
	ret = sp_config_load(cfg, argc, argv, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "sealpostd: %s\n", err);
		ret = 2;
	} else if (ret == SP_CONFIG_HELP) {
		sp_config_usage(stdout, "sealpostd");
		ret = 0;
	} else if (ret == SP_CONFIG_VERSION) {
		printf("sealpostd %s\n", SP_VERSION);
		ret = 0;
	} else if (ret == SP_CONFIG_CHECK) {
		sp_config_print(stdout, cfg);
		ret = 0;
	} else {
		sp_log_init(&lg, STDERR_FILENO, cfg->log_level);
		if (sodium_init() < 0) {
			SP_LOG0(&lg, SP_LOG_ERROR, "libsodium failed to initialise");
			ret = 1;
		} else {
			ret = run(cfg, &lg);
		}
	}
	free(cfg);
	return ret;
}
