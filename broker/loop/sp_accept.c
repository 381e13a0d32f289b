/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_accept.c: accept and its token bucket (sp_accept.h).
 */
#include "sp_accept.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "sp_conn_io.h"
#include "sp_conn_table.h"
#include "sp_hsrate.h"
#include "sp_lifecycle.h"
#include "sp_source.h"
#include "sp_timers.h"
#include "sp_ws.h"

int sp_accept_init(struct sp_shard *sh)
{
	/* As many source buckets as connections: far more than the global
	 * bucket lets be in use (sp_hsrate.h). */
	return sp_hsrate_new(&sh->hsrate, sh->cfg->max_conns);
}

void sp_accept_destroy(struct sp_shard *sh)
{
	sp_hsrate_free(sh->hsrate);
	sh->hsrate = NULL;
}

enum sp_close_reason sp_accept_first_message(struct sp_shard *sh, const struct sp_conn *c)
{
	const struct sp_hsrate_limits lim = {
		.global_rate = sh->cfg->handshake_rate,
		.source_rate = sh->cfg->handshake_rate_per_source,
		.source_burst = sh->cfg->handshake_burst_per_source,
	};

	if (!sh->hsrate)
		return SP_CLOSE_NONE;
	switch (sp_hsrate_take(sh->hsrate, c->source.counted ? c->source.key : NULL,
			       sh->now_ns, &lim)) {
	case SP_HSRATE_OK:
		return SP_CLOSE_NONE;
	case SP_HSRATE_SOURCE:
		return SP_CLOSE_HANDSHAKE_RATE_SOURCE;
	default:
		return SP_CLOSE_HANDSHAKE_RATE;
	}
}

static void refuse(struct sp_shard *sh, int fd, const char *why)
{
	close(fd);
	SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_REFUSED], sh->now_ns, SP_LOG_WARN,
		       "connection refused", SP_KV_STR("reason", why), SP_KV_UINT("shard", sh->id));
}

static void log_peer(struct sp_shard *sh, const struct sp_conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	uint16_t port = 0;

	/* Debug only: a peer address identifies a device's network. */
	if (!sp_log_enabled(sh->log, SP_LOG_DEBUG))
		return;
	if (getpeername(c->io.fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			port = ntohs(a->sin6_port);
		}
	}
	SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_PEER_DEBUG], sh->now_ns, SP_LOG_DEBUG,
		       "connection accepted", SP_KV_UINT("conn", c->tab.slot),
		       SP_KV_STR("peer", host), SP_KV_UINT("port", port));
}

static void on_accept(struct sp_shard *sh, int fd, enum sp_metrics_transport tr)
{
	struct sp_conn *c;
	struct sp_conn *victim;
	struct sp_conn_src src;
	uint32_t all;
	int one = 1;

	if (sh->stopping) {
		close(fd);
		sp_metrics_conn_refused(sh->metrics, SP_METRICS_CLOSE_SHUTDOWN);
		sp_metrics_tr_refused(sh->metrics, tr, SP_METRICS_CLOSE_SHUTDOWN);
		return;
	}
	/* Full: the newcomer takes the place of the oldest connection not
	 * proven yet (a silent socket first), so that sockets which never
	 * authenticate cannot keep honest devices out; refused only when
	 * every connection is proven, or while the evicted ones still hold
	 * every reserve slot. */
	/* With shards, max-conns counts them all (shard 0 accepts; a
	 * connection being handed on keeps its count, sp_xshard.c). */
	all = sh->node ? atomic_load_explicit(&sh->node->conns, memory_order_relaxed) : sh->nconns;
	victim = all >= sh->cfg->max_conns ? sp_timers_oldest_unproven(sh) : NULL;
	if (sh->nfree == 0 || (all >= sh->cfg->max_conns && !victim)) {
		refuse(sh, fd, "max_conns");
		sp_metrics_conn_refused(sh->metrics, SP_METRICS_CLOSE_MAX_CONNS);
		sp_metrics_tr_refused(sh->metrics, tr, SP_METRICS_CLOSE_MAX_CONNS);
		return;
	}
	switch (sp_source_accept(sh, fd, &src)) {
	case SP_SOURCE_OK:
		break;
	case SP_SOURCE_TOO_MANY:
		refuse(sh, fd, "max_conns_per_source");
		sp_metrics_conn_refused(sh->metrics, SP_METRICS_CLOSE_PER_SOURCE);
		sp_metrics_tr_refused(sh->metrics, tr, SP_METRICS_CLOSE_PER_SOURCE);
		return;
	default:
		refuse(sh, fd, "max_unauth_per_source");
		sp_metrics_conn_refused(sh->metrics, SP_METRICS_CLOSE_UNAUTH_SOURCE);
		sp_metrics_tr_refused(sh->metrics, tr, SP_METRICS_CLOSE_UNAUTH_SOURCE);
		return;
	}
	if (victim) {
		sp_io_abort_on_close(victim);   /* RST: nothing of it is worth sending */
		sp_life_cut(sh, victim, SP_CLOSE_EVICTED);
	}
	c = sp_life_open(sh, fd);      /* a free slot: checked above */
	sp_source_attach(c, &src);
	sp_metrics_conn_accepted(sh->metrics);
	sp_metrics_tr_accepted(sh->metrics, tr);
	if (tr == SP_METRICS_TRANSPORT_WS && sp_ws_attach(sh, c)) {
		sp_life_cut(sh, c, SP_CLOSE_NOMEM);
		return;
	}
	/* Small frames must leave at once: batching is done by us, per iteration. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	log_peer(sh, c);
	if (sp_io_arm_recv(sh, c))
		sp_life_cut(sh, c, SP_CLOSE_INTERNAL);
}

/* The accept's user_data: slot 0 the TCP listener, 1 the WebSocket one. */
enum { LISTENER_TCP = 0, LISTENER_WS = 1 };

void sp_accept_arm(struct sp_shard *sh)
{
	if (sh->stopping)
		return;
	if (!sh->accept_armed && sh->listen_fd >= 0 &&
	    sp_ring_accept(&sh->ring, sh->listen_fd, sp_ud_pack(SP_OP_ACCEPT, LISTENER_TCP, 0)) == 0)
		sh->accept_armed = true;
	if (sh->ws_listen_fd >= 0 && !sh->ws_accept_armed &&
	    sp_ring_accept(&sh->ring, sh->ws_listen_fd, sp_ud_pack(SP_OP_ACCEPT, LISTENER_WS, 0)) == 0)
		sh->ws_accept_armed = true;
}

void sp_accept_done(struct sp_shard *sh, const struct io_uring_cqe *cqe)
{
	bool ws = sp_ud_unpack(io_uring_cqe_get_data64(cqe)).slot == LISTENER_WS;
	bool *armed = ws ? &sh->ws_accept_armed : &sh->accept_armed;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		*armed = false;
	if (cqe->res >= 0) {
		on_accept(sh, cqe->res, ws ? SP_METRICS_TRANSPORT_WS : SP_METRICS_TRANSPORT_TCP);
		if (!*armed && !sh->stopping)
			sp_accept_arm(sh);
		return;
	}
	/* -EMFILE/-ENFILE/-ENOMEM: re-armed by the next tick rather than at
	 * once, so a resource shortage cannot turn into a busy loop. */
	if (cqe->res != -ECANCELED)
		SP_LOG_LIMITED(sh->log, &sh->lim[SP_LIM_REFUSED], sh->now_ns, SP_LOG_WARN,
			       "accept failed", SP_KV_STR("error", strerror(-cqe->res)));
}

static void cancel_accept(struct sp_shard *sh, uint32_t listener)
{
	struct io_uring_sqe *sqe = sp_ring_sqe(&sh->ring);

	if (sqe) {
		io_uring_prep_cancel64(sqe, sp_ud_pack(SP_OP_ACCEPT, listener, 0), 0);
		io_uring_sqe_set_data64(sqe, sp_ud_pack(SP_OP_CANCEL, 0, 0));
	}
}

void sp_accept_stop(struct sp_shard *sh)
{
	if (sh->accept_armed)
		cancel_accept(sh, LISTENER_TCP);
	if (sh->ws_accept_armed)
		cancel_accept(sh, LISTENER_WS);
}
