/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon.c: the signal thread, sd_notify, the data-directory lock and the
 * server key (daemon.h).
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "sp_clock.h"
#include "sp_keyfile.h"
#include "sp_noise.h"

enum { LOCK_POLL_MS = 100 };


void sp_daemon_log_errno(const struct sp_log *lg, const char *msg, const char *path, int err)
{
	SP_LOG(lg, SP_LOG_ERROR, msg, SP_KV_STR("path", path), SP_KV_STR("error", strerror(err)));
}

/*
 * flock on DIR/sealpostd.lock: one broker per data directory. The lock
 * lives as long as the returned descriptor (the whole process). Waits up to
 * --lock-timeout for a broker that still holds it (one still draining during
 * a restart, say), polling, and gives up early on a stop signal. -1 on
 * failure.
 */
int sp_daemon_lock_dir(const struct sp_log *lg, const struct sp_config *cfg, struct daemon *d)
{
	char path[SP_CONFIG_PATH_MAX + 32];
	uint64_t deadline = sp_clock_mono_ms() + (uint64_t)cfg->lock_timeout_s * 1000;
	bool said = false;
	int fd;

	snprintf(path, sizeof(path), "%s/sealpostd.lock", cfg->data_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		sp_daemon_log_errno(lg, "cannot open lock file", path, errno);
		return -1;
	}
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK) {
			sp_daemon_log_errno(lg, "cannot lock data directory", path, errno);
			break;
		}
		if (sp_clock_mono_ms() >= deadline) {
			SP_LOG(lg, SP_LOG_ERROR,
			       "data directory is locked: another sealpostd is using it",
			       SP_KV_STR("path", path),
			       SP_KV_UINT("lock_timeout_s", cfg->lock_timeout_s));
			break;
		}
		if (sp_daemon_stopping(d)) {
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
int sp_daemon_load_key(const struct sp_log *lg, const char *dir, uint8_t *priv)
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
		sp_daemon_log_errno(lg, "cannot load server key", kpath, -ret);
		return ret;
	}
	if (sp_keyfile_read_public(ppath, filepub) || sodium_memcmp(pub, filepub, SP_KEY_LEN)) {
		ret = sp_keyfile_write_public(ppath, pub);
		if (ret)
			sp_daemon_log_errno(lg, "cannot write public key", ppath, -ret);
	}
	return ret;
}

/* The signals of the daemon become readable on a signalfd read by the signal
 * thread: no signal handler, nothing async-signal-unsafe. Blocked before any
 * thread starts, so every thread inherits the mask. */
int sp_daemon_signal_fd(void)
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
void sp_daemon_notify(const struct daemon *d, const char *msg)
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

void sp_daemon_notify_init(struct daemon *d)
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
	unsigned nstop;
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
		nstop = d->nshard_stop;
		sp_metrics_set_ready(d->metrics, false);
		pthread_mutex_unlock(&d->mu);
		if (d->stop == 1)
			sp_daemon_notify(d, "STOPPING=1\nSTATUS=shutting down\n");
		SP_LOG(d->log, SP_LOG_INFO, "stop signal", SP_KV_STR("signal", signal_name(signo)));
		/* One write per signal: the shard's second wake-up is the
		 * "stop waiting for slow peers" one. */
		w = write(d->stop_fd, &one, sizeof(one));
		for (unsigned i = 1; i < nstop; i++)
			w = write(d->shard_stop_fd[i], &one, sizeof(one));
		(void)w;
		return;
	default:
		return;
	}
}

void *sp_daemon_signal_thread(void *arg)
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

bool sp_daemon_stopping(struct daemon *d)
{
	bool s;

	pthread_mutex_lock(&d->mu);
	s = d->stop > 0;
	pthread_mutex_unlock(&d->mu);
	return s;
}

/* Ready (/readyz 200, READY=1) unless a stop signal came first. */
void sp_daemon_set_ready(struct daemon *d)
{
	bool ok;

	pthread_mutex_lock(&d->mu);
	ok = d->stop == 0;
	if (ok)
		sp_metrics_set_ready(d->metrics, true);
	pthread_mutex_unlock(&d->mu);
	if (ok)
		sp_daemon_notify(d, "READY=1\nSTATUS=serving\n");
}
