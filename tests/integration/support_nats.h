/* SPDX-License-Identifier: Apache-2.0 */
/*
 * support_nats.h: real nats-server processes for the cluster tests.
 *
 * sp_it_nats_start() starts n (1..SP_IT_NATS_MAX) nats-servers, server i
 * on the loopback address 127.0.0.(i+1) with ports the kernel chose free
 * (client, cluster route, HTTP monitor), each with its own JetStream store
 * under a fresh temporary directory (unless JetStream is off), the n of
 * them one NATS cluster (routes to each other) when n > 1. It waits
 * (bounded: SP_IT_NATS_READY_MS) until every server answers on its monitor
 * port and, with JetStream in a cluster, reports a JetStream meta leader and
 * all n peers: after that a stream of n replicas can be made.
 *
 * Every server is started with PR_SET_PDEATHSIG, killed by its PID (never by
 * name), and each test stops its cluster itself: sp_it_nats_stop() kills
 * what still runs, reaps it and removes the directory. A server's log is
 * DIR/nI.log.
 *
 * nats-server comes from $NATS_SERVER, else /usr/sbin/nats-server, else
 * PATH; sp_it_nats_available() says whether there is one (tests skip
 * without it, with a message).
 */
#ifndef SP_IT_SUPPORT_NATS_H
#define SP_IT_SUPPORT_NATS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum {
	SP_IT_NATS_MAX = 3,
	SP_IT_NATS_READY_MS = 20000,    /* servers up and a JetStream meta leader */
	SP_IT_NATS_URLS_MAX = 3 * 40,
};

struct sp_it_nats_server {
	pid_t pid;                      /* -1 when not running */
	char ip[16];                    /* "127.0.0.2" */
	uint16_t port, route_port, http_port;
	char url[40];                   /* "nats://127.0.0.2:PORT" */
	char conf[300];
	char log[300];
};

struct sp_it_nats {
	int n;
	bool jetstream;
	char dir[256];                  /* the temporary root; "" when stopped */
	char urls[SP_IT_NATS_URLS_MAX]; /* every server's url, comma-separated (--cluster) */
	struct sp_it_nats_server s[SP_IT_NATS_MAX];
};

bool sp_it_nats_available(void);

/* 0 or -errno (-ETIMEDOUT: not ready in time; the logs are printed). */
int sp_it_nats_start(struct sp_it_nats *c, int n, bool jetstream);

/* SIGKILL server i and reap it (kill -9 in the failure tests). */
int sp_it_nats_kill(struct sp_it_nats *c, int i);

/* Starts server i again with the same ports, configuration and store; does
 * not wait (sp_it_nats_wait_ready does). */
int sp_it_nats_restart(struct sp_it_nats *c, int i);

/* Every running server ready as after start; 0 or -ETIMEDOUT. */
int sp_it_nats_wait_ready(struct sp_it_nats *c, int bound_ms);

/* Kills what runs, reaps it, removes the directory. Idempotent. */
void sp_it_nats_stop(struct sp_it_nats *c);

/* GET path from server i's monitor port; HTTP status or -errno, the body
 * (NUL-terminated, malloc'd, the caller frees it) in *body if non-NULL. */
int sp_it_nats_http_get(const struct sp_it_nats *c, int i, const char *path, char **body);

#endif
