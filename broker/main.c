/*
 * main.c: sealpostd. Parses the configuration, prepares the data directory
 * (lock, static key), opens the listener and runs the shard's event loop
 * until SIGINT/SIGTERM.
 *
 * Exit status: 0 after a clean shutdown, 1 on a runtime error (data
 * directory locked, key unreadable, address in use, ...), 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "sp_config.h"
#include "sp_keyfile.h"
#include "sp_log.h"
#include "sp_noise.h"
#include "sp_shard.h"

#ifndef SP_VERSION
#define SP_VERSION "0.0.0"
#endif

enum {
	LISTEN_BACKLOG = 4096,
	FD_RESERVE = 64,         /* listener, ring, signalfd, lock, logs, storage */
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

/* flock on DIR/sealpostd.lock: one broker per data directory. The lock
 * lives as long as the returned descriptor (the whole process). */
static int lock_dir(const struct sp_log *lg, const char *dir)
{
	char path[SP_CONFIG_PATH_MAX + 32];
	int fd;

	snprintf(path, sizeof(path), "%s/sealpostd.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_errno(lg, "cannot open lock file", path, errno);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		if (errno == EWOULDBLOCK)
			SP_LOG(lg, SP_LOG_ERROR,
			       "data directory is locked: another sealpostd is using it",
			       SP_KV_STR("path", path));
		else
			log_errno(lg, "cannot lock data directory", path, errno);
		close(fd);
		return -1;
	}
	return fd;
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

/* SIGINT/SIGTERM become readable on a signalfd that the event loop reads
 * through its ring: no signal handler, nothing async-signal-unsafe. */
static int signal_fd(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_CLOEXEC);
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

static int serve(const struct sp_config *cfg, const struct sp_log *lg, const uint8_t *priv,
		 int listen_fd, int sig_fd)
{
	struct sp_shard *sh = calloc(1, sizeof(*sh));
	int ret;

	if (!sh)
		return -ENOMEM;
	ret = sp_shard_init(sh, 0, cfg, lg, priv, listen_fd, sig_fd);
	if (ret) {
		SP_LOG(lg, SP_LOG_ERROR, "cannot set up the event loop",
		       SP_KV_STR("error", strerror(-ret)));
		free(sh);
		return ret;
	}
	SP_LOG(lg, SP_LOG_INFO, "sealpostd started", SP_KV_STR("version", SP_VERSION),
	       SP_KV_STR("listen", cfg->listen), SP_KV_STR("data_dir", cfg->data_dir),
	       SP_KV_UINT("max_conns", cfg->max_conns),
	       SP_KV_STR("ring", ring_mode(sh->ring.setup_flags)));
	ret = sp_shard_run(sh);
	SP_LOG(lg, SP_LOG_INFO, "stopped", SP_KV_UINT("accepted", sh->stats.accepted),
	       SP_KV_UINT("handshakes", sh->stats.handshakes), SP_KV_UINT("sends", sh->stats.sends),
	       SP_KV_UINT("delivered", sh->stats.delivered),
	       SP_KV_UINT("refused", sh->stats.refused_max_conns + sh->stats.refused_rate));
	sp_shard_destroy(sh);
	free(sh);
	return ret;
}

static int run(const struct sp_config *cfg, const struct sp_log *lg)
{
	int lock_fd = -1, listen_fd = -1, sig_fd = -1, ret = 1, err;
	uint8_t *priv = NULL;

	err = make_dir(cfg->data_dir);
	if (err) {
		log_errno(lg, "cannot create data directory", cfg->data_dir, -err);
		goto out;
	}
	lock_fd = lock_dir(lg, cfg->data_dir);
	if (lock_fd < 0)
		goto out;
	priv = sodium_malloc(SP_KEY_LEN);
	if (!priv || load_key(lg, cfg->data_dir, priv))
		goto out;
	sodium_mprotect_readonly(priv);
	check_fd_limit(lg, cfg);
	sig_fd = signal_fd();
	if (sig_fd < 0) {
		log_errno(lg, "cannot set up signals", "-", errno);
		goto out;
	}
	listen_fd = open_listener(lg, cfg);
	if (listen_fd < 0)
		goto out;
	ret = serve(cfg, lg, priv, listen_fd, sig_fd) ? 1 : 0;
out:
	if (listen_fd >= 0)
		close(listen_fd);
	if (sig_fd >= 0)
		close(sig_fd);
	if (priv)
		sodium_free(priv);      /* zeroes it */
	if (lock_fd >= 0)
		close(lock_fd);
	return ret;
}

int main(int argc, char **argv)
{
	struct sp_config cfg;
	struct sp_log lg;
	char err[SP_CONFIG_ERR_MAX];
	int ret;

	sp_config_defaults(&cfg);
	ret = sp_config_parse(&cfg, argc, argv, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "sealpostd: %s\n", err);
		return 2;
	}
	if (ret == SP_CONFIG_HELP) {
		sp_config_usage(stdout, "sealpostd");
		return 0;
	}
	if (ret == SP_CONFIG_VERSION) {
		printf("sealpostd %s\n", SP_VERSION);
		return 0;
	}
	sp_log_init(&lg, STDERR_FILENO, cfg.log_level);
	if (sodium_init() < 0) {
		SP_LOG0(&lg, SP_LOG_ERROR, "libsodium failed to initialise");
		return 1;
	}
	return run(&cfg, &lg);
}
