/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c: sealpostd's composition: configuration (flags over --config FILE
 * over defaults), the metrics endpoint, the data directory (daemon.c: lock,
 * static key, storage), the listener, and the shard's event loop until
 * SIGINT/SIGTERM. Signals, systemd notification and exit status: daemon.h.
 */#include <errno.h>
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
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "daemon.h"
#include "sp_admin.h"
#include "sp_cluster.h"
#include "sp_cluster_route.h"
#include "sp_config.h"
#include "sp_fsutil.h"
#include "sp_http.h"
#include "sp_keyfile.h"
#include "sp_log.h"
#include "sp_metrics.h"
#include "sp_noise.h"
#include "sp_push.h"
#include "sp_push_worker.h"
#include "sp_registration.h"
#include "sp_shard.h"
#include "sp_store.h"
#include "sp_tlog.h"
#include "sp_webpush.h"

#ifndef SP_VERSION
#define SP_VERSION "0.0.0"
#endif

enum {
	LISTEN_BACKLOG = 4096,
	FD_RESERVE = 64,         /* listener, ring, signalfd, lock, logs, storage */
};

static int open_socket(const struct sp_log *lg, const char *name,
		       const struct sockaddr_storage *addr, socklen_t addr_len)
{
	int one = 1, fd, family = addr->ss_family;

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* Restart right after a stop, despite TIME_WAIT. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)addr, addr_len) || listen(fd, LISTEN_BACKLOG))
		goto fail;
	return fd;
fail:
	SP_LOG(lg, SP_LOG_ERROR, "cannot listen", SP_KV_STR("listen", name),
	       SP_KV_STR("error", strerror(errno)));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int open_listener(const struct sp_log *lg, const struct sp_config *cfg)
{
	return open_socket(lg, cfg->listen, &cfg->listen_addr, cfg->listen_addr_len);
}

/* --ws-listen: -1 and nothing logged when off; -2 on failure (logged).
 * The port the kernel chose (port 0) is logged for tests and scripts. */
static int open_ws_listener(const struct sp_log *lg, const struct sp_config *cfg)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	uint16_t port = 0;
	int fd;

	if (strcmp(cfg->ws_listen, "off") == 0)
		return -1;
	fd = open_socket(lg, cfg->ws_listen, &cfg->ws_listen_addr, cfg->ws_listen_addr_len);
	if (fd < 0)
		return -2;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						      : ((struct sockaddr_in *)&ss)->sin_port);
	SP_LOG(lg, SP_LOG_INFO, "ws listening", SP_KV_STR("addr", cfg->ws_listen),
	       SP_KV_UINT("port", port), SP_KV_STR("path", "/v1"));
	return fd;
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
 * while stopping are counted as accepted). delivered: both paths, live and
 * from the mailbox. */
static void log_stopped(const struct sp_log *lg, struct sp_metrics *mm, unsigned n)
{
	uint64_t refused = 0, handshakes = 0, sends = 0, accepted = 0, delivered = 0;

	/* Summed over the shards (a connection accepted by shard 0 may end on
	 * another: each count is kept once). */
	for (unsigned s = 0; s < n; s++) {
		const struct sp_metrics_shard *m = sp_metrics_shard(mm, s);

		refused += m->connections_closed[SP_METRICS_CLOSE_MAX_CONNS] +
			   m->connections_closed[SP_METRICS_CLOSE_PER_SOURCE] +
			   m->connections_closed[SP_METRICS_CLOSE_UNAUTH_SOURCE];
		accepted += m->connections_accepted;
		sends += m->envelopes_accepted;
		for (unsigned p = 0; p < SP_METRICS_PATTERN_COUNT; p++)
			handshakes += m->handshakes[p][SP_METRICS_OUTCOME_OK];
		for (unsigned i = 0; i < SP_METRICS_REFUSED_COUNT; i++)
			sends += m->envelopes_refused[i];
		delivered += m->envelopes_delivered[SP_METRICS_PATH_LIVE] +
			     m->envelopes_delivered[SP_METRICS_PATH_MAILBOX];
	}
	SP_LOG(lg, SP_LOG_INFO, "stopped", SP_KV_UINT("accepted", accepted - refused),
	       SP_KV_UINT("handshakes", handshakes), SP_KV_UINT("sends", sends),
	       SP_KV_UINT("delivered", delivered), SP_KV_UINT("refused", refused));
}

/* Web Push: the VAPID key (DATA_DIR/vapid.pem, made once), the worker
 * thread, the shard's side. Only with push-vapid-subject set and a store. */
struct push_parts {
	struct sp_vapid *vapid;
	struct sp_push_worker *worker;
	struct sp_push *push;
};

static int vapid_path(const struct sp_config *cfg, char *out, size_t cap)
{
	return snprintf(out, cap, "%s/vapid.pem", cfg->data_dir) >= (int)cap ? -ENAMETOOLONG : 0;
}

static int start_push(const struct sp_config *cfg, const struct sp_log *lg, struct sp_store *store,
		      struct sp_metrics_shard *m, struct push_parts *pp)
{
	char path[SP_CONFIG_PATH_MAX + 16], pub[SP_WEBPUSH_KEY_B64_LEN];
	struct sp_push_worker_config wc;
	int ret;

	if (!cfg->push_vapid_subject[0] || !store)
		return sp_push_create(&pp->push, cfg, lg, NULL, NULL, m);
	ret = vapid_path(cfg, path, sizeof(path));
	if (ret == 0)
		ret = sp_vapid_load_or_create(path, &pp->vapid);
	if (ret) {
		SP_LOG(lg, SP_LOG_ERROR, "cannot load or make the VAPID key", SP_KV_STR("path", path),
		       SP_KV_STR("error", strerror(-ret)));
		return ret;
	}
	memset(&wc, 0, sizeof(wc));
	wc.vapid = pp->vapid;
	wc.subject = cfg->push_vapid_subject;
	wc.ttl_s = cfg->push_ttl_s;
	wc.urgency = sp_config_urgency_name(cfg->push_urgency);
	wc.concurrency = cfg->push_concurrency;
	wc.timeout_ms = cfg->push_timeout_ms;
	wc.retries = cfg->push_retries;
	wc.backoff_ms = cfg->push_backoff_ms;
	wc.backoff_max_ms = cfg->push_backoff_max_ms;
	wc.queue_max = cfg->push_queue_max;
	wc.allow_private = cfg->push_allow_private != 0;
	ret = sp_push_worker_start(&pp->worker, &wc);
	if (ret == 0)
		ret = sp_push_create(&pp->push, cfg, lg, store, pp->worker, m);
	if (ret) {
		SP_LOG(lg, SP_LOG_ERROR, "cannot start push wake-ups", SP_KV_STR("error", strerror(-ret)));
		return ret;
	}
	sp_vapid_public_b64(pp->vapid, pub);
	SP_LOG(lg, SP_LOG_INFO, "push wake-ups on", SP_KV_STR("vapid_key", pub),
	       SP_KV_UINT("subscriptions", sp_push_count(pp->push)),
	       SP_KV_UINT("coalesce_ms", cfg->push_coalesce_ms),
	       SP_KV_UINT("allow_private", cfg->push_allow_private));
	return 0;
}

static void stop_push(struct push_parts *pp)
{
	/* The worker first: it borrows the VAPID key. */
	sp_push_worker_stop(pp->worker);
	sp_push_destroy(pp->push);
	sp_vapid_free(pp->vapid);
	memset(pp, 0, sizeof(*pp));
}

/* sealpostd --print-vapid-key: the key operators hand to their apps. */
static int print_vapid_key(const struct sp_config *cfg)
{
	char path[SP_CONFIG_PATH_MAX + 16], pub[SP_WEBPUSH_KEY_B64_LEN];
	struct sp_vapid *v = NULL;
	int err;

	err = sp_fsutil_mkdir_p(cfg->data_dir, 0755, 0700);
	if (err == 0)
		err = vapid_path(cfg, path, sizeof(path));
	if (err == 0)
		err = sp_vapid_load_or_create(path, &v);
	if (err) {
		fprintf(stderr, "sealpostd: VAPID key in %s: %s\n", cfg->data_dir, strerror(-err));
		return 1;
	}
	sp_vapid_public_b64(v, pub);
	printf("%s\n", pub);
	sp_vapid_free(v);
	return 0;
}

/* Each shard's side of the cluster node: a port (its inbox and reply
 * subscription) per shard, opened before the loops run and closed after
 * (sp_cluster.h). 0, or -1 (logged). */
static int cluster_ports(struct daemon *d, struct sp_cluster *cl, unsigned n,
			 struct sp_cluster_port *ports[SP_CONFIG_THREADS_MAX])
{
	int ret = 0;

	for (unsigned i = 0; i < n && cl && !ret; i++)
		ret = sp_cluster_port_open(cl, i, d->cfg->cluster_inbox_max, &ports[i]);
	if (ret) {
		SP_LOG(d->log, SP_LOG_ERROR, "cluster: cannot set up a shard's port",
		       SP_KV_STR("error", strerror(-ret)));
		return -1;
	}
	return 0;
}

/* A shard's route state over its port (none without --cluster), with the
 * shard's own configuration. 0, or a negative errno. */
static int cluster_route(struct sp_cluster_port *port, const struct sp_config *cfg,
			 struct sp_cluster_route **route)
{
	*route = NULL;
	return port ? sp_cluster_route_create(route, port, cfg, cfg->max_conns + 1) : 0;
}

static int serve(struct daemon *d, const uint8_t *priv, int listen_fd, int ws_fd,
		 struct sp_store *store, struct sp_admin *admin, struct sp_config *live_cfg,
		 const struct sp_tlog *tlog, struct sp_cluster_port *port)
{
	struct push_parts pp = { 0 };
	const struct sp_config *cfg = d->cfg;
	struct sp_shard *sh = calloc(1, sizeof(*sh));
	struct sp_cluster_route *route = NULL;
	int ret;

	if (!sh)
		return -ENOMEM;
	ret = sp_shard_init(sh, 0, cfg, d->log, priv, listen_fd, d->stop_fd);
	if (!ret && (ret = cluster_route(port, cfg, &route)) != 0)
		sp_shard_destroy(sh);
	if (ret) {
		SP_LOG(d->log, SP_LOG_ERROR, "cannot set up the event loop",
		       SP_KV_STR("error", strerror(-ret)));
		free(sh);
		return ret;
	}
	sh->metrics = sp_metrics_shard(d->metrics, 0);
	sh->ws_listen_fd = ws_fd;
	ret = start_push(cfg, d->log, store, sh->metrics, &pp);
	if (ret) {
		stop_push(&pp);
		sp_shard_destroy(sh);
		sp_cluster_route_destroy(route);
		free(sh);
		return ret;
	}
	sh->push = pp.push;
	sh->store = store;
	sh->tlog = tlog;
	sh->enrol_key = d->enrol_key;
	sh->admin = admin;
	sh->live_cfg = live_cfg;
	sh->cluster = route;
	/* Listening, key loaded, storage open, event loop set up: ready. */
	sp_daemon_set_ready(d);
	SP_LOG(d->log, SP_LOG_INFO, "sealpostd started", SP_KV_STR("version", SP_VERSION),
	       SP_KV_STR("listen", cfg->listen), SP_KV_STR("data_dir", cfg->data_dir),
	       SP_KV_STR("config", cfg->config_path[0] ? cfg->config_path : "-"),
	       SP_KV_UINT("max_conns", cfg->max_conns),
	       SP_KV_STR("ring", ring_mode(sh->ring.setup_flags)));
	ret = sp_shard_run(sh);
	sp_metrics_set_ready(d->metrics, false);
	log_stopped(d->log, d->metrics, 1);
	sp_shard_destroy(sh);
	sp_cluster_route_destroy(route);     /* after the connections it routed */
	free(sh);
	stop_push(&pp);
	return ret;
}

/*
 * --threads N > 1: N shards, shard 0 on this thread (it listens and runs
 * the handshakes), the others on threads of their own; each shard's ring is
 * made on its own thread (SINGLE_ISSUER). All are set up before any runs
 * (a shard posts to the others' inboxes from its first iteration) and all
 * stop before any is destroyed (a late post lands in a live inbox).
 */
struct shard_run {
	struct sp_node *node;
	struct daemon *d;
	const uint8_t *priv;
	struct sp_config *cfg;          /* this shard's own copy (reload applies to each) */
	int listen_fd, wake_fd;
	unsigned id;
	struct sp_store *store;
	struct sp_admin *admin;
	const struct sp_tlog *tlog;
	struct sp_push *push;
	struct sp_cluster_port *port;   /* this shard's, or NULL */
	pthread_barrier_t *ready, *stopped;
	bool *failed;
	int ret;
	pthread_t thread;
};

static void *shard_main(void *arg)
{
	struct shard_run *r = arg;
	struct sp_shard *sh = calloc(1, sizeof(*sh));
	struct sp_cluster_route *route = NULL;
	int ret = sh ? sp_shard_init(sh, (uint8_t)r->id, r->cfg, r->d->log, r->priv, r->listen_fd,
				     r->wake_fd) : -ENOMEM;

	if (!ret && ((ret = sp_shard_size_routes(sh, r->node->n)) != 0 ||
		     (ret = cluster_route(r->port, r->cfg, &route)) != 0))
		sp_shard_destroy(sh);

	if (ret) {
		SP_LOG(r->d->log, SP_LOG_ERROR, "cannot set up the event loop",
		       SP_KV_STR("error", strerror(-ret)), SP_KV_UINT("shard", r->id));
		free(sh);
		sh = NULL;
		*r->failed = true;      /* written before the barrier, read after it */
	} else {
		sh->metrics = sp_metrics_shard(r->d->metrics, r->id);
		sh->node = r->node;
		sh->push = r->push;
		sh->store = r->store;
		sh->tlog = r->tlog;
		sh->enrol_key = r->d->enrol_key;
		sh->admin = r->admin;
		sh->live_cfg = r->cfg;
		sh->cluster = route;
		r->node->shards[r->id] = sh;
	}
	pthread_barrier_wait(r->ready);
	if (sh && !*r->failed) {
		if (r->id == 0) {
			sp_daemon_set_ready(r->d);
			SP_LOG(r->d->log, SP_LOG_INFO, "sealpostd started",
			       SP_KV_STR("version", SP_VERSION), SP_KV_STR("listen", r->cfg->listen),
			       SP_KV_STR("data_dir", r->cfg->data_dir),
			       SP_KV_STR("config", r->cfg->config_path[0] ? r->cfg->config_path : "-"),
			       SP_KV_UINT("max_conns", r->cfg->max_conns),
			       SP_KV_STR("ring", ring_mode(sh->ring.setup_flags)),
			       SP_KV_UINT("shards", r->node->n));
		}
		ret = sp_shard_run(sh);
	}
	/* Whatever happens to one shard, the others stop too. */
	if (ret) {
		uint64_t one = 1;
		ssize_t w = write(r->d->stop_fd, &one, sizeof(one));

		for (unsigned i = 1; i < r->node->n; i++)
			w = write(r->d->shard_stop_fd[i], &one, sizeof(one));
		(void)w;
	}
	pthread_barrier_wait(r->stopped);
	if (sh)
		sp_shard_destroy(sh);
	sp_cluster_route_destroy(route);     /* after the connections it routed */
	free(sh);
	r->ret = ret;
	return NULL;
}

static int serve_shards(struct daemon *d, unsigned n, const uint8_t *priv, int listen_fd,
			struct sp_store *store, struct sp_admin *admin, struct sp_config *live_cfg,
			const struct sp_tlog *tlog, struct sp_cluster_port *const *ports)
{
	struct push_parts pp = { 0 };
	struct sp_node node = { .n = n, .second_stop_logged = ATOMIC_FLAG_INIT };
	struct shard_run *runs = calloc(n, sizeof(*runs));
	pthread_barrier_t ready, stopped;
	bool failed = false;
	int ret = -ENOMEM;
	unsigned started = 0;

	node.shards = calloc(n, sizeof(*node.shards));
	if (!runs || !node.shards)
		goto out_free;
	pthread_mutex_init(&node.store_mu, NULL);
	ret = start_push(live_cfg, d->log, store, sp_metrics_shard(d->metrics, 0), &pp);
	if (ret)
		goto out_push;
	for (unsigned i = 0; i < n; i++) {
		runs[i] = (struct shard_run){
			.node = &node, .d = d, .priv = priv, .id = i, .store = store,
			.admin = admin, .tlog = tlog, .push = pp.push, .ready = &ready,
			.stopped = &stopped, .failed = &failed, .listen_fd = i ? -1 : listen_fd,
			.wake_fd = d->stop_fd, .cfg = live_cfg, .port = ports[i],
		};
		if (i == 0)
			continue;
		runs[i].cfg = malloc(sizeof(*live_cfg));
		runs[i].wake_fd = d->shard_stop_fd[i] = eventfd(0, EFD_CLOEXEC);
		if (!runs[i].cfg || runs[i].wake_fd < 0) {
			ret = -ENOMEM;
			goto out_cfgs;
		}
		memcpy(runs[i].cfg, live_cfg, sizeof(*live_cfg));
	}
	pthread_mutex_lock(&d->mu);
	d->nshard_stop = n;
	/* A stop signal before this: the new shards are told now. */
	for (unsigned i = 1; i < n && d->stop; i++) {
		uint64_t one = 1;
		ssize_t w = write(d->shard_stop_fd[i], &one, sizeof(one));

		(void)w;
	}
	pthread_mutex_unlock(&d->mu);
	pthread_barrier_init(&ready, NULL, n);
	pthread_barrier_init(&stopped, NULL, n);
	for (started = 1; started < n; started++)
		if ((ret = pthread_create(&runs[started].thread, NULL, shard_main, &runs[started]))) {
			/* The barriers count n: without every thread, none may wait. */
			SP_LOG(d->log, SP_LOG_ERROR, "cannot start a shard thread",
			       SP_KV_STR("error", strerror(ret)));
			abort();
		}
	shard_main(&runs[0]);
	for (unsigned i = 1; i < n; i++)
		pthread_join(runs[i].thread, NULL);
	ret = 0;
	for (unsigned i = 0; i < n; i++)
		if (runs[i].ret)
			ret = runs[i].ret;
	if (failed && !ret)
		ret = -EIO;
	sp_metrics_set_ready(d->metrics, false);
	log_stopped(d->log, d->metrics, n);
	pthread_barrier_destroy(&ready);
	pthread_barrier_destroy(&stopped);
out_cfgs:
	pthread_mutex_lock(&d->mu);
	d->nshard_stop = 0;
	pthread_mutex_unlock(&d->mu);
	for (unsigned i = 1; i < n; i++) {
		free(runs[i].cfg);
		if (runs[i].wake_fd > 0)
			close(runs[i].wake_fd);
	}
out_push:
	stop_push(&pp);
	pthread_mutex_destroy(&node.store_mu);
out_free:
	free(node.shards);
	free(runs);
	return ret;
}

/* "HOST:0" with the port the kernel chose, for the log (tests read it). */
static void metrics_addr(const char *cfg_addr, uint16_t port, char *out, size_t cap)
{
	const char *colon = strrchr(cfg_addr, ':');
	int hlen = colon ? (int)(colon - cfg_addr) : 0;

	snprintf(out, cap, "%.*s:%u", hlen, cfg_addr, (unsigned)port);
}

/* The shards to run: --threads (0: the online cores). WebSocket
 * connections are not handed between shards (sp_xshard.h), so with
 * --ws-listen the broker runs one. */
static unsigned shards_of(const struct sp_config *cfg)
{
	/* The WebSocket transport does not cross shards yet: it runs one. */
	if (strcmp(cfg->ws_listen, "off") != 0)
		return 1;
	return sp_config_threads(cfg);
}

static int start_metrics(struct daemon *d, struct sp_http **http)
{
	char addr[SP_CONFIG_HOST_MAX + 8];
	int err;

	err = sp_metrics_create(&d->metrics, shards_of(d->cfg));
	if (err) {
		sp_daemon_log_errno(d->log, "cannot set up metrics", "-", -err);
		return err;
	}
	if (strcmp(d->cfg->metrics_listen, "off") == 0)
		return 0;
	struct sp_http_limits lim = {
		.conn_max = d->cfg->metrics_conn_max,
		.per_address_max = d->cfg->metrics_per_address_max,
		.deadline_ms = d->cfg->metrics_deadline_ms,
	};

	err = sp_http_start(http, d->cfg->metrics_listen, d->metrics, &lim);
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

/* The admin socket's top, on its thread: sp_store_top may run beside the
 * shard (it reads committed counters with its own iterator). */
static int admin_top(void *ctx, size_t n, bool by_count, struct sp_admin_top_key *out,
		     size_t *nout, uint64_t *scanned)
{
	struct sp_store_top_item items[SP_ADMIN_TOP_MAX];
	int ret;

	if (n > SP_ADMIN_TOP_MAX)
		n = SP_ADMIN_TOP_MAX;
	ret = sp_store_top(ctx, n, !by_count, items, nout, scanned);
	for (size_t i = 0; ret == 0 && i < *nout; i++) {
		memcpy(out[i].key, items[i].recipient, SP_KEY_LEN);
		out[i].count = items[i].count;
		out[i].bytes = items[i].bytes;
	}
	sodium_memzero(items, sizeof(items));
	return ret;
}

/* The admin socket, unless --admin-socket off. */
static int start_admin(struct daemon *d, struct sp_config *cfg, int argc, char **argv,
		       struct sp_store *store, struct sp_admin **admin)
{
	int err;

	if (strcmp(cfg->admin_socket, "off") == 0)
		return 0;
	err = sp_admin_start(admin, cfg, d->log, argc, argv, SP_VERSION,
			     store ? admin_top : NULL, store);
	if (err)
		return err;
	SP_LOG(d->log, SP_LOG_INFO, "admin socket listening",
	       SP_KV_STR("path", sp_admin_socket_path(*admin)));
	return 0;
}

/*
 * --cluster: join the NATS cluster and check it (sp_cluster.h) before the
 * listener opens, so that a node that cannot work never looks ready. Nothing
 * of libnats runs without --cluster. 0, or -1 (logged).
 */
static int start_cluster(struct daemon *d, const uint8_t *priv, struct sp_cluster **cl)
{
	uint8_t pub[SP_KEY_LEN];
	char fp[SP_CLUSTER_FP_HEX_LEN + 1];

	*cl = NULL;
	if (!d->cfg->cluster[0])
		return 0;
	if (sp_noise_public_key(pub, priv))
		return -1;
	sp_cluster_fingerprint(pub, fp);
	SP_LOG(d->log, SP_LOG_INFO, "cluster mode", SP_KV_STR("cluster", d->cfg->cluster),
	       SP_KV_STR("key_fingerprint", fp), SP_KV_UINT("replicas", d->cfg->cluster_replicas));
	return sp_cluster_start(cl, d->cfg, d->log, d->metrics, priv) ? -1 : 0;
}

/* cfg: writable for the admin socket's reload (applied on the shard's
 * thread); everything else reads it. argc/argv: for that reload too. */
/*
 * The transparency log's key (DATA_DIR/log.key, created on first start;
 * DATA_DIR/log.pub for operators to publish), its public key logged. Then
 * SEALPOSTD_TEST_LOG_FORK=DEVICE (64 hex digits), for the integration tests
 * only: that device is shown a forked log (sp_tlog.h), which a real broker
 * could do just as well; the tests show that its clients notice.
 */
static int load_log_key(const struct sp_log *lg, const char *dir, struct sp_tlog *t)
{
	char hex[SP_KEY_HEX_LEN + 1];
	const char *fork = getenv("SEALPOSTD_TEST_LOG_FORK");
	int ret = sp_tlog_load(t, dir);

	if (ret) {
		sp_daemon_log_errno(lg, "cannot load the log key", dir, -ret);
		return ret;
	}
	sp_key_format_hex(hex, t->pk);
	SP_LOG(lg, SP_LOG_INFO, "transparency log key", SP_KV_STR("log_key", hex));
	if (fork && *fork) {
		if (sp_key_parse_hex(t->fork_device, fork)) {
			SP_LOG0(lg, SP_LOG_ERROR, "SEALPOSTD_TEST_LOG_FORK is not a device key");
			return -EINVAL;
		}
		t->fork = 1;
		SP_LOG(lg, SP_LOG_WARN, "TEST ONLY: the log is forked for one device",
		       SP_KV_STR("device", fork));
	}
	return 0;
}

/*
 * --registration=token: the token key (DATA_DIR/enrol.key, made on first
 * use) into a sodium_malloc'd buffer, and the used-token marks that expired
 * dropped from the store. 0 or -1 (logged).
 */
static int load_enrol(const struct sp_log *lg, const struct sp_config *cfg,
		      struct sp_store *store, uint8_t **key)
{
	uint64_t dropped = 0;
	bool created = false;
	int ret;

	*key = NULL;
	if (cfg->registration != SP_REGISTRATION_TOKEN)
		return 0;
	*key = sodium_malloc(SP_ENROL_KEY_LEN);
	if (!*key)
		return -1;
	ret = sp_registration_key_load(cfg->data_dir, *key, &created);
	if (ret) {
		sp_daemon_log_errno(lg, "cannot load the enrolment key", cfg->data_dir, -ret);
		return -1;
	}
	sodium_mprotect_readonly(*key);
	if (created)
		SP_LOG(lg, SP_LOG_INFO, "created the enrolment key",
		       SP_KV_STR("path", cfg->data_dir));
	if (store) {
		ret = sp_store_enrol_prune(store, (uint64_t)time(NULL) * 1000, &dropped);
		if (ret) {
			SP_LOG(lg, SP_LOG_ERROR, "cannot drop expired enrolment tokens",
			       SP_KV_STR("error", strerror(-ret)));
			return -1;
		}
	}
	SP_LOG(lg, SP_LOG_INFO, "registration by enrolment token",
	       SP_KV_UINT("expired_tokens_dropped", dropped));
	return 0;
}

static void mint_usage(FILE *f)
{
	fprintf(f, "usage: sealpostd mint-token [--data-dir DIR] [--config FILE] [--ttl SECONDS] "
		   "[--count N]\n"
		   "  prints N one-use enrolment tokens (default 1), one a line, valid for SECONDS\n"
		   "  (default 86400, at most 31622400) for a broker with --registration=token on DIR;\n"
		   "  makes DIR/enrol.key if missing; works while sealpostd runs\n");
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * sealpostd mint-token: reads only DATA_DIR/enrol.key (not the store, which
 * the running daemon holds locked): a token is checked by its MAC, so
 * minting writes nothing the daemon must see. --data-dir and --config as
 * for the daemon (the data directory of the config file, unless given).
 */
static int mint_tokens(int argc, char **argv)
{
	uint64_t ttl = 86400, count = 1;
	char *cargv[5] = { argv[0] };
	int cargc = 1, ret = 1;
	struct sp_config *cfg = NULL;
	char err[SP_CONFIG_ERR_MAX];
	uint8_t *key = NULL;

	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			mint_usage(stdout);
			return 0;
		}
		if (i + 1 >= argc) {
			mint_usage(stderr);
			return 2;
		}
		if (strcmp(a, "--ttl") == 0) {
			if (parse_u64(argv[++i], 1, 366ull * 86400, &ttl)) {
				fprintf(stderr, "sealpostd: --ttl: 1..31622400 seconds\n");
				return 2;
			}
		} else if (strcmp(a, "--count") == 0) {
			if (parse_u64(argv[++i], 1, 100000, &count)) {
				fprintf(stderr, "sealpostd: --count: 1..100000\n");
				return 2;
			}
		} else if ((strcmp(a, "--data-dir") == 0 || strcmp(a, "--config") == 0) &&
			   cargc + 2 <= 5) {
			cargv[cargc++] = argv[i];
			cargv[cargc++] = argv[++i];
		} else {
			mint_usage(stderr);
			return 2;
		}
	}
	cfg = malloc(sizeof(*cfg));
	if (!cfg || sodium_init() < 0) {
		fprintf(stderr, "sealpostd: cannot initialise\n");
		goto out;
	}
	if (sp_config_load(cfg, cargc, cargv, err, sizeof(err)) < 0) {
		fprintf(stderr, "sealpostd: %s\n", err);
		ret = 2;
		goto out;
	}
	key = sodium_malloc(SP_ENROL_KEY_LEN);
	if (!key)
		goto out;
	ret = sp_fsutil_mkdir_p(cfg->data_dir, 0755, 0700);
	if (ret == 0)
		ret = sp_registration_key_load(cfg->data_dir, key, NULL);
	if (ret) {
		fprintf(stderr, "sealpostd: enrolment key in %s: %s\n", cfg->data_dir,
			strerror(-ret));
		ret = 1;
		goto out;
	}
	if (cfg->registration != SP_REGISTRATION_TOKEN)
		fprintf(stderr, "sealpostd: note: this configuration has registration = open; "
				"tokens are checked only with --registration=token\n");
	{
		uint64_t expires = ((uint64_t)time(NULL) + ttl) * 1000;
		uint8_t tok[SP_ENROL_TOKEN_LEN];
		char text[SP_ENROL_TEXT_LEN + 1];

		for (uint64_t i = 0; i < count; i++) {
			sp_enrol_mint(key, expires, tok);
			sp_enrol_to_text(tok, text, sizeof(text));
			printf("%s\n", text);
		}
		sodium_memzero(tok, sizeof(tok));
		sodium_memzero(text, sizeof(text));
	}
	ret = fflush(stdout) == 0 ? 0 : 1;
out:
	if (key)
		sodium_free(key);       /* zeroes it */
	free(cfg);
	return ret;
}

static int run(struct sp_config *cfg, struct sp_log *lg, int argc, char **argv)
{
	struct daemon d = {
		.cfg = cfg, .log = lg, .sig_fd = -1, .stop_fd = -1, .quit_fd = -1,
		.mu = PTHREAD_MUTEX_INITIALIZER,
	};
	int lock_fd = -1, listen_fd = -1, ws_fd = -1, ret = 1, err;
	struct sp_http *http = NULL;
	struct sp_store *store = NULL;
	struct sp_admin *admin = NULL;
	struct sp_cluster *cluster = NULL;
	struct sp_cluster_port *ports[SP_CONFIG_THREADS_MAX] = { 0 };
	uint8_t *priv = NULL, *enrol_key = NULL;
	struct sp_tlog tlog = { 0 };
	uint64_t one = 1;

	sp_daemon_notify_init(&d);
	/* Before any thread exists: they all inherit the blocked signals. */
	d.sig_fd = sp_daemon_signal_fd();
	d.stop_fd = eventfd(0, EFD_CLOEXEC);
	d.quit_fd = eventfd(0, EFD_CLOEXEC);
	if (d.sig_fd < 0 || d.stop_fd < 0 || d.quit_fd < 0) {
		sp_daemon_log_errno(lg, "cannot set up signals", "-", errno);
		goto out;
	}
	/* First, so /healthz answers (and /readyz says 503) while waiting for
	 * the lock or opening storage. */
	if (start_metrics(&d, &http))
		goto out;
	err = pthread_create(&d.sig_thread, NULL, sp_daemon_signal_thread, &d);
	if (err) {
		sp_daemon_log_errno(lg, "cannot start the signal thread", "-", err);
		goto out;
	}
	d.sig_thread_running = true;

	/* The last component 0700: it will hold the private key. */
	err = sp_fsutil_mkdir_p(cfg->data_dir, 0755, 0700);
	if (err) {
		sp_daemon_log_errno(lg, "cannot create data directory", cfg->data_dir, -err);
		goto out;
	}
	lock_fd = sp_daemon_lock_dir(lg, cfg, &d);
	if (lock_fd < 0) {
		ret = sp_daemon_stopping(&d) ? 0 : 1;
		goto out;
	}
	priv = sodium_malloc(SP_KEY_LEN);
	if (!priv || sp_daemon_load_key(lg, cfg->data_dir, priv))
		goto out;
	sodium_mprotect_readonly(priv);
	if (load_log_key(lg, cfg->data_dir, &tlog))
		goto out;
	if (start_cluster(&d, priv, &cluster) || cluster_ports(&d, cluster, shards_of(cfg), ports))
		goto out;
	check_fd_limit(lg, cfg);
	/* Storage (DATA_DIR/mailbox); then its figures join the scrape. */
	if (sp_shard_store_open(cfg, lg, &store))
		goto out;
	if (store)
		sp_metrics_set_rocksdb_source(d.metrics, rocksdb_figures, store);
	if (load_enrol(lg, cfg, store, &enrol_key))
		goto out;
	d.enrol_key = enrol_key;
	listen_fd = open_listener(lg, cfg);
	if (listen_fd < 0)
		goto out;
	ws_fd = open_ws_listener(lg, cfg);
	if (ws_fd == -2)
		goto out;
	/* After the data-directory lock: a stale socket there is ours to replace. */
	if (start_admin(&d, cfg, argc, argv, store, &admin))
		goto out;
	if (shards_of(cfg) > 1)
		ret = serve_shards(&d, shards_of(cfg), priv, listen_fd, store, admin, cfg, &tlog,
				   ports) ? 1 : 0;
	else
		ret = serve(&d, priv, listen_fd, ws_fd, store, admin, cfg, &tlog, ports[0]) ? 1 : 0;
out:
	/* The shard has stopped taking its jobs; top reads the store: before it closes. */
	sp_admin_stop(admin);
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
	/* After the shard: it no longer publishes. The connection first: once
	 * it is closed no libnats thread calls into the ports. */
	sp_cluster_close(cluster);
	for (unsigned i = 0; i < SP_CONFIG_THREADS_MAX; i++)
		sp_cluster_port_close(ports[i]);
	sp_cluster_stop(cluster);
	sp_http_stop(http);             /* before the metrics it reads */
	sp_metrics_destroy(d.metrics);
	if (listen_fd >= 0)
		close(listen_fd);
	if (ws_fd >= 0)
		close(ws_fd);
	if (d.sig_fd >= 0)
		close(d.sig_fd);
	if (d.stop_fd >= 0)
		close(d.stop_fd);
	if (d.quit_fd >= 0)
		close(d.quit_fd);
	if (priv)
		sodium_free(priv);      /* zeroes it */
	if (enrol_key)
		sodium_free(enrol_key); /* zeroes it */
	sp_tlog_free(&tlog);
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

	if (argc > 1 && strcmp(argv[1], "mint-token") == 0) {
		free(cfg);
		return mint_tokens(argc, argv);
	}
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
	} else if (ret == SP_CONFIG_PRINT_VAPID) {
		ret = print_vapid_key(cfg);
	} else if (ret == SP_CONFIG_CHECK) {
		sp_config_print(stdout, cfg);
		ret = 0;
	} else {
		sp_log_init(&lg, STDERR_FILENO, cfg->log_level);
		/*
		 * Before the static key is read: no core dump (which would write
		 * it and the session keys to disk) and no ptrace or /proc/PID/mem
		 * by other processes of the same user. The unit adds LimitCORE=0.
		 */
		if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
			SP_LOG0(&lg, SP_LOG_WARN, "cannot turn off core dumps (PR_SET_DUMPABLE)");
		if (sodium_init() < 0) {
			SP_LOG0(&lg, SP_LOG_ERROR, "libsodium failed to initialise");
			ret = 1;
		} else {
			ret = run(cfg, &lg, argc, argv);
		}
	}
	free(cfg);
	return ret;
}
