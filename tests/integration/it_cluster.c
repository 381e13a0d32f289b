/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_cluster.c: sealpostd --cluster against real nats-server processes
 * (support_nats.h: three servers, cluster routes and JetStream, on
 * 127.0.0.1-3 with temporary stores), all stopped by the test:
 *   - three nodes with one server key join and are ready; a fourth with
 *     another key is refused at start, naming the cause;
 *   - a NATS that nobody answers on, and a NATS without JetStream, are
 *     refused at start with a clear message (exit status 1);
 *   - readiness follows the NATS connection: /readyz 503 while the only
 *     server is down (kill -9), 200 once it is back; counted in
 *     sealpost_cluster_disconnects_total / _reconnects_total;
 *   - a single node (no --cluster) renders no sealpost_cluster_* family;
 *   - online-only sends across nodes: DELIVERED to a device on another node
 *     (once its presence reached the sender's NATS server), in order, with
 *     the SendResults in order; ERR_OFFLINE for a device on no node;
 *   - takeover across nodes: the device connecting to a second node ends
 *     its first connection with GoAway TAKEOVER, and sends reach the new one;
 *   - replicated mailboxes: durable sends to an offline device, ACCEPTED by
 *     JetStream, read through another node in order, then Drained, then
 *     live; a retried client id stored once; acks delete (a later
 *     connection to a third node reads nothing); the mailbox survives the
 *     kill -9 of the node that accepted it and of the stream's leader
 *     (sends meanwhile are ACCEPTED or 81, never accepted and lost); on
 *     the minority side of the nats-servers every durable send is 81, and
 *     resent with its client id after they heal, stored once;
 *     fan-out groups refused with 82.
 * Waits are bounded polls, never timing thresholds.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sp_clock.h"
#include "sp_devlist.h"
#include "support.h"
#include "support_nats.h"
#include "support_raw.h"

enum { OUT_MAX = 65536, RUN_TIMEOUT_S = 60, POLL_MS = 50, READY_BOUND_MS = 30000 };

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Runs `sealpostd ARGS` with stderr into out; the exit status. */
static int run_sealpostd(const char *args, char *out, size_t cap)
{
	char cmd[2048];
	char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	const char *bin = getenv("SEALPOSTD");

	assert_non_null(bin);
	snprintf(cmd, sizeof(cmd), "exec '%s' --metrics-listen off --admin-socket off %s 2>&1",
		 bin, args);
	return sp_it_run(argv, NULL, out, cap, RUN_TIMEOUT_S);
}

/* A fresh data directory holding a copy of src's server.key (the operator
 * distributes the one key pair to every node). */
static void dir_with_key(char *dir, size_t cap, const char *src)
{
	char from[400], to[400], buf[256];
	ssize_t n;
	int in, out;

	snprintf(dir, cap, "/tmp/sp-it-node-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(from, sizeof(from), "%s/server.key", src);
	snprintf(to, sizeof(to), "%s/server.key", dir);
	in = open(from, O_RDONLY | O_CLOEXEC);
	assert_true(in >= 0);
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
}

/* The nodes' flags: quick reconnects and pings, so failure tests move on. */
#define NODE_ARGS(urls, replicas) \
	{ "--cluster", (urls), "--cluster-replicas", (replicas), "--cluster-reconnect-wait", "50", \
	  "--cluster-ping-interval", "500", "--threads", "2", NULL }
enum { SHARDS = 2 };    /* each node's --threads */

static int start_node(struct sp_it_broker *b, const char *dir, const struct sp_it_nats *nats,
		      const char *replicas)
{
	const char *args[] = NODE_ARGS(nats->urls, replicas);

	return sp_it_broker_start(b, dir, args);
}

/* The HTTP status of GET path on b's metrics endpoint. */
static int http_status(const struct sp_it_broker *b, const char *path)
{
	char *body = NULL;
	int st = sp_it_http_get(b->metrics_port, path, &body);

	free(body);
	return st;
}

static bool metric_has(const struct sp_it_broker *b, const char *needle)
{
	char *body = NULL;
	bool has = sp_it_http_get(b->metrics_port, "/metrics", &body) == 200 && body &&
		   strstr(body, needle);

	free(body);
	return has;
}

/* Polls /readyz until it answers want (bounded); true if it did. */
static bool wait_readyz(const struct sp_it_broker *b, int want)
{
	uint64_t deadline = sp_clock_mono_ms() + READY_BOUND_MS;

	while (sp_clock_mono_ms() < deadline) {
		if (http_status(b, "/readyz") == want)
			return true;
		sleep_ms(POLL_MS);
	}
	return false;
}

static void test_nodes_share_one_key(void **state)
{
	struct sp_it_nats nats;
	struct sp_it_broker node[3];
	char dirs[2][64], other[] = "/tmp/sp-it-node-XXXXXX", out[OUT_MAX], args[1024];
	int rc;

	(void)state;
	if (!sp_it_nats_available())
		skip();
	assert_int_equal(sp_it_nats_start(&nats, 3, true), 0);
	/* The first node makes the key pair; the others get a copy of it. */
	assert_int_equal(start_node(&node[0], NULL, &nats, "3"), 0);
	for (int i = 0; i < 2; i++) {
		dir_with_key(dirs[i], sizeof(dirs[i]), node[0].data_dir);
		assert_int_equal(start_node(&node[i + 1], dirs[i], &nats, "3"), 0);
	}
	for (int i = 0; i < 3; i++) {
		assert_memory_equal(node[i].server_pub, node[0].server_pub, sizeof(node[0].server_pub));
		assert_int_equal(http_status(&node[i], "/readyz"), 200);
		assert_true(metric_has(&node[i], "sealpost_cluster_connected 1\n"));
	}
	assert_int_equal(sp_it_log_count(&node[0], "first node: recorded the server key"), 1);
	/* >= 1: a start retried on another port (support.h) appends to the log. */
	for (int i = 1; i < 3; i++) {
		assert_true(sp_it_log_count(&node[i], "server key matches the cluster's") >= 1);
		assert_int_equal(sp_it_log_count(&node[i], "not the cluster's"), 0);
	}

	/* A node with a key of its own is refused before it listens. */
	assert_non_null(mkdtemp(other));
	snprintf(args, sizeof(args), "--listen 127.0.0.1:1 --data-dir %s --cluster %s", other,
		 nats.urls);
	rc = run_sealpostd(args, out, sizeof(out));
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "this node's server key is not the cluster's"));
	assert_non_null(strstr(out, "cluster_fingerprint="));

	for (int i = 0; i < 3; i++)
		assert_int_equal(sp_it_broker_stop(&node[i]), 0);
	sp_it_nats_stop(&nats);
	sp_it_rmrf(node[0].data_dir);
	sp_it_rmrf(dirs[0]);
	sp_it_rmrf(dirs[1]);
	sp_it_rmrf(other);
}

static void test_unreachable_refused(void **state)
{
	char dir[] = "/tmp/sp-it-node-XXXXXX", out[OUT_MAX], args[1024];
	struct sp_it_nats nats;
	int rc;

	(void)state;
	if (!sp_it_nats_available())
		skip();
	/* A server that ran and is gone: its port has nobody behind it. */
	assert_int_equal(sp_it_nats_start(&nats, 1, true), 0);
	assert_int_equal(sp_it_nats_kill(&nats, 0), 0);
	assert_non_null(mkdtemp(dir));
	snprintf(args, sizeof(args), "--listen 127.0.0.1:1 --data-dir %s --cluster %s "
		 "--cluster-connect-timeout 500", dir, nats.urls);
	rc = run_sealpostd(args, out, sizeof(out));
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "cannot connect to any NATS server of --cluster"));
	assert_null(strstr(out, "sealpostd started"));
	sp_it_nats_stop(&nats);
	sp_it_rmrf(dir);
}

static void test_jetstream_off_refused(void **state)
{
	char dir[] = "/tmp/sp-it-node-XXXXXX", out[OUT_MAX], args[1024];
	struct sp_it_nats nats;
	int rc;

	(void)state;
	if (!sp_it_nats_available())
		skip();
	assert_int_equal(sp_it_nats_start(&nats, 1, false), 0);
	assert_non_null(mkdtemp(dir));
	snprintf(args, sizeof(args), "--listen 127.0.0.1:1 --data-dir %s --cluster %s", dir,
		 nats.urls);
	rc = run_sealpostd(args, out, sizeof(out));
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "JetStream is not enabled on the NATS cluster"));
	assert_null(strstr(out, "sealpostd started"));
	sp_it_nats_stop(&nats);
	sp_it_rmrf(dir);
}

static void test_readiness_follows_nats(void **state)
{
	struct sp_it_nats nats;
	struct sp_it_broker node;

	(void)state;
	if (!sp_it_nats_available())
		skip();
	assert_int_equal(sp_it_nats_start(&nats, 1, true), 0);
	assert_int_equal(start_node(&node, NULL, &nats, "1"), 0);
	assert_int_equal(http_status(&node, "/readyz"), 200);

	assert_int_equal(sp_it_nats_kill(&nats, 0), 0);
	assert_true(wait_readyz(&node, 503));
	assert_true(metric_has(&node, "sealpost_cluster_connected 0\n"));
	assert_true(metric_has(&node, "sealpost_cluster_disconnects_total 1\n"));
	/* Still serving what needs no cluster: /healthz. */
	assert_int_equal(http_status(&node, "/healthz"), 200);

	assert_int_equal(sp_it_nats_restart(&nats, 0), 0);
	assert_int_equal(sp_it_nats_wait_ready(&nats, SP_IT_NATS_READY_MS), 0);
	assert_true(wait_readyz(&node, 200));
	assert_true(metric_has(&node, "sealpost_cluster_reconnects_total 1\n"));
	assert_true(sp_it_log_count(&node, "cluster: NATS connection lost") >= 1);
	assert_true(sp_it_log_count(&node, "cluster: NATS connection back") >= 1);

	assert_int_equal(sp_it_broker_stop(&node), 0);
	sp_it_nats_stop(&nats);
	sp_it_rmrf(node.data_dir);
}

/* Three nats-servers and three nodes of one key: the fixture of the
 * delivery tests. */
struct trio {
	struct sp_it_nats nats;
	struct sp_it_broker node[3];
	char dirs[2][64];
};

static void trio_start(struct trio *t)
{
	assert_int_equal(sp_it_nats_start(&t->nats, 3, true), 0);
	assert_int_equal(start_node(&t->node[0], NULL, &t->nats, "3"), 0);
	for (int i = 0; i < 2; i++) {
		dir_with_key(t->dirs[i], sizeof(t->dirs[i]), t->node[0].data_dir);
		assert_int_equal(start_node(&t->node[i + 1], t->dirs[i], &t->nats, "3"), 0);
	}
}

static void trio_stop(struct trio *t)
{
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sp_it_broker_stop(&t->node[i]), 0);
		assert_int_equal(sp_it_log_count_key(&t->node[i], t->node[0].server_pub), 0);
	}
	sp_it_nats_stop(&t->nats);
	sp_it_rmrf(t->node[0].data_dir);
	sp_it_rmrf(t->dirs[0]);
	sp_it_rmrf(t->dirs[1]);
}

/* A device connected (IK) and proven to node i: a Ping answered means the
 * broker has read the proof and routed the device. */
static void device_open(struct sp_raw *c, const struct trio *t, int i)
{
	uint8_t buf[64];
	size_t off = 0;
	struct sp_raw_frame f;

	assert_int_equal(sp_raw_open(c, t->node[i].port, SP_PREAMBLE_PATTERN_IK,
				     t->node[0].server_pub), 0);
	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, 7, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(c, buf, off), 0);
	assert_int_equal(sp_raw_wait_frame(c, SP_FRAME_PONG, &f, SP_RAW_TIMEOUT_MS), 0);
}

static void send_online(struct sp_raw *c, const uint8_t to[SP_KEY_LEN], uint64_t cid,
			const void *body, size_t len)
{
	uint8_t buf[512];
	size_t off = 0;

	assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, to, SP_KEY_LEN, cid,
					 SP_SEND_ONLINE_ONLY, body, len), 0);
	assert_int_equal(sp_raw_send_plain(c, buf, off), 0);
}

/* Presence travels through NATS's interest propagation: an online-only send
 * answers ERR_OFFLINE until the recipient's subscription has reached the
 * sender's server, then DELIVERED; while a node is between NATS servers,
 * ERR_CLUSTER_UNAVAILABLE (81). Bounded: READY_BOUND_MS. *cid counts up.
 * *unavailable (may be NULL): how many 81s came first. */
static void send_until_delivered_n(struct sp_raw *from, struct sp_raw *to, uint64_t *cid,
				   int *unavailable)
{
	uint64_t deadline = sp_clock_mono_ms() + READY_BOUND_MS;
	struct sp_raw_frame f;
	uint32_t st;

	for (;;) {
		send_online(from, to->s_pub, ++*cid, "probe", 5);
		assert_int_equal(sp_raw_expect_result(from, *cid, &st, SP_RAW_TIMEOUT_MS), 0);
		if (st == SP_STATUS_DELIVERED)
			break;
		if (unavailable && st == SP_STATUS_ERR_CLUSTER_UNAVAILABLE)
			++*unavailable;
		else
			assert_int_equal(st, SP_STATUS_ERR_OFFLINE);
		assert_true(sp_clock_mono_ms() < deadline);
		sleep_ms(POLL_MS);
	}
	assert_int_equal(sp_raw_wait_frame(to, SP_FRAME_DELIVER, &f, SP_RAW_TIMEOUT_MS), 0);
	assert_int_equal(f.seq, 0);
	assert_int_equal(f.body_len, 5);
	assert_memory_equal(f.body, "probe", 5);
}

static void send_until_delivered(struct sp_raw *from, struct sp_raw *to, uint64_t *cid)
{
	send_until_delivered_n(from, to, cid, NULL);
}

/* The index of the NATS server node i is connected to now (its log's last
 * "connected to NATS" or "connection back" line names it), or -1. */
static int node_server(const struct trio *t, int i)
{
	FILE *f = fopen(t->node[i].log_path, "r");
	char line[1024];
	int which = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, "cluster: connected to NATS") &&
		    !strstr(line, "cluster: NATS connection back"))
			continue;
		for (int s = 0; s < t->nats.n; s++) {
			char want[64];

			snprintf(want, sizeof(want), "server=%s\n", t->nats.s[s].url);
			if (strstr(line, want))
				which = s;
		}
	}
	fclose(f);
	return which;
}

static void test_online_across_nodes(void **state)
{
	struct sp_raw a, b, nobody;
	struct sp_raw_frame f;
	struct trio t;
	uint64_t cid = 0;
	enum { N = 50 };
	char body[32];
	uint32_t st;

	(void)state;
	if (!sp_it_nats_available())
		skip();
	trio_start(&t);
	assert_int_equal(sp_raw_init(&a), 0);
	assert_int_equal(sp_raw_init(&b), 0);
	assert_int_equal(sp_raw_init(&nobody), 0);
	device_open(&a, &t, 0);
	device_open(&b, &t, 1);
	send_until_delivered(&a, &b, &cid);

	/* A burst, one transport message each: results in Send order, bodies
	 * in the same order on the other node. */
	for (int i = 0; i < N; i++) {
		int n = snprintf(body, sizeof(body), "envelope %d", i);

		send_online(&a, b.s_pub, cid + 1 + (uint64_t)i, body, (size_t)n);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(sp_raw_expect_result(&a, cid + 1 + (uint64_t)i, &st,
						      SP_RAW_TIMEOUT_MS), 0);
		assert_int_equal(st, SP_STATUS_DELIVERED);
	}
	for (int i = 0; i < N; i++) {
		int n = snprintf(body, sizeof(body), "envelope %d", i);

		assert_int_equal(sp_raw_wait_frame(&b, SP_FRAME_DELIVER, &f, SP_RAW_TIMEOUT_MS), 0);
		assert_int_equal(f.body_len, (size_t)n);
		assert_memory_equal(f.body, body, (size_t)n);
	}
	cid += N;
	/* A Ping right behind a cross-node Send, in one transport message: its
	 * Pong waits for the remote answer, so it comes after the SendResult. */
	{
		uint8_t buf[256];
		size_t off = 0;

		assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, b.s_pub, SP_KEY_LEN, ++cid,
						 SP_SEND_ONLINE_ONLY, (const uint8_t *)"p", 1), 0);
		assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, 99, NULL, 0),
				 0);
		assert_int_equal(sp_raw_send_plain(&a, buf, off), 0);
		assert_int_equal(sp_raw_recv_frame(&a, &f, SP_RAW_TIMEOUT_MS), 0);
		assert_int_equal(f.type, SP_FRAME_SEND_RESULT);
		assert_int_equal(f.client_id, cid);
		assert_int_equal(f.status, SP_STATUS_DELIVERED);
		assert_int_equal(sp_raw_recv_frame(&a, &f, SP_RAW_TIMEOUT_MS), 0);
		assert_int_equal(f.type, SP_FRAME_PONG);
		assert_int_equal(f.id, 99);
		assert_int_equal(sp_raw_wait_frame(&b, SP_FRAME_DELIVER, &f, SP_RAW_TIMEOUT_MS), 0);
	}
	/* Nobody holds this device anywhere: "no responders", at once. */
	send_online(&a, nobody.s_pub, ++cid, "x", 1);
	assert_int_equal(sp_raw_expect_result(&a, cid, &st, SP_RAW_TIMEOUT_MS), 0);
	assert_int_equal(st, SP_STATUS_ERR_OFFLINE);
	assert_true(metric_has(&t.node[0], "sealpost_cluster_remote_sends_total"));
	assert_false(metric_has(&t.node[1], "sealpost_cluster_remote_deliveries_total 0\n"));

	sp_raw_close(&a);
	sp_raw_close(&b);
	sp_raw_close(&nobody);
	trio_stop(&t);
}

static void test_takeover_across_nodes(void **state)
{
	struct sp_raw a, b1, b2;
	struct sp_raw_frame f;
	struct trio t;
	uint64_t cid = 0;
	uint32_t code = 0, st;

	(void)state;
	if (!sp_it_nats_available())
		skip();
	trio_start(&t);
	assert_int_equal(sp_raw_init(&a), 0);
	assert_int_equal(sp_raw_init(&b1), 0);
	assert_int_equal(sp_raw_init(&b2), 0);
	memcpy(b2.s_priv, b1.s_priv, SP_KEY_LEN);   /* the same device, twice */
	memcpy(b2.s_pub, b1.s_pub, SP_KEY_LEN);
	device_open(&a, &t, 0);
	device_open(&b1, &t, 1);
	send_until_delivered(&a, &b1, &cid);

	/* The device connects to the third node: the second one lets go. */
	device_open(&b2, &t, 2);
	assert_int_equal(sp_raw_expect_goaway(&b1, &code, SP_RAW_TIMEOUT_MS, NULL), 0);
	assert_int_equal(code, SP_STATUS_GOAWAY_TAKEOVER);
	assert_true(metric_has(&t.node[1], "sealpost_cluster_takeovers_total 1\n"));
	/* And what is sent to it reaches it there. */
	send_until_delivered(&a, &b2, &cid);
	/* The old node no longer answers for it: nothing arrives twice. */
	send_online(&a, b2.s_pub, ++cid, "once", 4);
	assert_int_equal(sp_raw_expect_result(&a, cid, &st, SP_RAW_TIMEOUT_MS), 0);
	assert_int_equal(st, SP_STATUS_DELIVERED);
	assert_int_equal(sp_raw_wait_frame(&b2, SP_FRAME_DELIVER, &f, SP_RAW_TIMEOUT_MS), 0);
	assert_memory_equal(f.body, "once", 4);

	sp_raw_close(&a);
	sp_raw_close(&b1);
	sp_raw_close(&b2);
	trio_stop(&t);
}

/* kill -9 of the nats-server a node is connected to: the node moves to
 * another server (its subscriptions with it) and cross-node delivery
 * resumes; meanwhile a send gets ERR_CLUSTER_UNAVAILABLE or ERR_OFFLINE,
 * never a loss reported as DELIVERED. The killed server comes back. */
static void test_nats_server_killed(void **state)
{
	struct sp_raw a, b;
	struct trio t;
	uint64_t cid = 0;
	int victim, unavailable = 0;

	(void)state;
	if (!sp_it_nats_available())
		skip();
	trio_start(&t);
	assert_int_equal(sp_raw_init(&a), 0);
	assert_int_equal(sp_raw_init(&b), 0);
	device_open(&a, &t, 0);
	device_open(&b, &t, 1);
	send_until_delivered(&a, &b, &cid);

	victim = node_server(&t, 1);        /* the recipient's node's server */
	assert_true(victim >= 0);
	uint64_t t0 = sp_clock_mono_ms();

	assert_int_equal(sp_it_nats_kill(&t.nats, victim), 0);
	send_until_delivered_n(&a, &b, &cid, &unavailable);
	/* A figure for docs/CLUSTER.md, not a threshold. */
	fprintf(stderr, "[it_cluster] nats-server %d killed: cross-node delivery back after %llu ms "
		"(%d sends answered 81 meanwhile)\n", victim,
		(unsigned long long)(sp_clock_mono_ms() - t0), unavailable);
	assert_true(sp_it_log_count(&t.node[1], "cluster: NATS connection back") >= 1);
	assert_int_not_equal(node_server(&t, 1), victim);
	assert_true(metric_has(&t.node[1], "sealpost_cluster_reconnects_total 1\n"));

	assert_int_equal(sp_it_nats_restart(&t.nats, victim), 0);
	assert_int_equal(sp_it_nats_wait_ready(&t.nats, SP_IT_NATS_READY_MS), 0);
	send_until_delivered(&a, &b, &cid);
	sp_raw_close(&a);
	sp_raw_close(&b);
	trio_stop(&t);
}

/* kill -9 of a node: its device reconnects to another node and is
 * reachable there; the survivors are unaffected. */
static void test_node_killed(void **state)
{
	struct sp_raw a, b;
	struct trio t;
	uint64_t cid = 0;

	(void)state;
	if (!sp_it_nats_available())
		skip();
	trio_start(&t);
	assert_int_equal(sp_raw_init(&a), 0);
	assert_int_equal(sp_raw_init(&b), 0);
	device_open(&a, &t, 0);
	device_open(&b, &t, 1);
	send_until_delivered(&a, &b, &cid);
	assert_true(sp_it_broker_kill(&t.node[1]) != 0);     /* killed: not a clean exit */
	/* Its subscriptions died with its NATS connection: the device is
	 * offline (or, for a moment, its old node unreachable), never
	 * reported delivered. */
	for (uint64_t deadline = sp_clock_mono_ms() + READY_BOUND_MS;;) {
		uint32_t st;

		send_online(&a, b.s_pub, ++cid, "x", 1);
		assert_int_equal(sp_raw_expect_result(&a, cid, &st, SP_RAW_TIMEOUT_MS), 0);
		if (st == SP_STATUS_ERR_OFFLINE)
			break;
		assert_int_equal(st, SP_STATUS_ERR_CLUSTER_UNAVAILABLE);
		assert_true(sp_clock_mono_ms() < deadline);
		sleep_ms(POLL_MS);
	}
	sp_raw_disconnect(&b);
	device_open(&b, &t, 2);
	send_until_delivered(&a, &b, &cid);
	sp_raw_close(&a);
	sp_raw_close(&b);
	{
		const char *args[] = NODE_ARGS(t.nats.urls, "3");

		assert_int_equal(sp_it_broker_restart(&t.node[1], args), 0);
	}
	trio_stop(&t);
}

/* --- replicated mailboxes --------------------------------------------------------- */

/* A durable Send; its SendResult's status and seq. */
static void send_durable(struct sp_raw *c, const uint8_t to[SP_KEY_LEN], uint64_t cid,
			 const void *body, size_t len, uint32_t *st, uint64_t *seq)
{
	struct sp_raw_frame f;

	assert_int_equal(sp_raw_send_envelope(c, to, cid, body, len), 0);
	assert_int_equal(sp_raw_wait_frame(c, SP_FRAME_SEND_RESULT, &f, SP_RAW_TIMEOUT_MS), 0);
	assert_int_equal(f.client_id, cid);
	*st = f.status;
	*seq = f.seq;
}

static void ack(struct sp_raw *c, uint64_t seq)
{
	uint8_t buf[64];
	size_t off = 0;

	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_ACK, seq, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(c, buf, off), 0);
}

/* Connects c to node i and reads its backlog: the n envelopes expected
 * (bodies "m<k>" for k in ks[0..n), seqs in seqs[]) in order, then
 * Drained{n}. acks each if do_ack. */
static void read_backlog(struct sp_raw *c, const struct trio *t, int i, const int *ks,
			 const uint64_t *seqs, int n, bool do_ack)
{
	struct sp_raw_frame f;
	char body[32];

	assert_int_equal(sp_raw_open(c, t->node[i].port, SP_PREAMBLE_PATTERN_IK,
				     t->node[0].server_pub), 0);
	for (int k = 0; k < n; k++) {
		int len = snprintf(body, sizeof(body), "m%d", ks[k]);

		assert_int_equal(sp_raw_recv_frame(c, &f, SP_RAW_TIMEOUT_MS), 0);
		assert_int_equal(f.type, SP_FRAME_DELIVER);
		assert_int_equal(f.seq, seqs[k]);
		assert_int_equal(f.body_len, (size_t)len);
		assert_memory_equal(f.body, body, (size_t)len);
		if (do_ack)
			ack(c, f.seq);
	}
	assert_int_equal(sp_raw_recv_frame(c, &f, SP_RAW_TIMEOUT_MS), 0);
	assert_int_equal(f.type, SP_FRAME_DRAINED);
	assert_int_equal(f.count, (uint64_t)n);
}

/* Durable sends of "m<k>" for k in [k0, k0+n) from c to `to`, each
 * ACCEPTED (retried while the cluster answers 81, bounded); seqs out. */
static void send_accepted(struct sp_raw *c, const uint8_t to[SP_KEY_LEN], uint64_t *cid, int k0,
			  int n, uint64_t *seqs, int *unavailable)
{
	char body[32];

	for (int k = 0; k < n; k++) {
		int len = snprintf(body, sizeof(body), "m%d", k0 + k);
		uint64_t deadline = sp_clock_mono_ms() + READY_BOUND_MS;
		uint32_t st;

		for (;;) {
			/* The same client id on a retry: stored at most once. */
			send_durable(c, to, *cid + 1, body, (size_t)len, &st, &seqs[k]);
			if (st == SP_STATUS_ACCEPTED)
				break;
			assert_int_equal(st, SP_STATUS_ERR_CLUSTER_UNAVAILABLE);
			if (unavailable)
				++*unavailable;
			assert_true(sp_clock_mono_ms() < deadline);
			sleep_ms(POLL_MS);
		}
		assert_true(seqs[k] > 0);
		if (k)
			assert_true(seqs[k] > seqs[k - 1]);
		++*cid;
	}
}

static void test_mailbox_across_nodes(void **state)
{
	enum { N = 20, LIVE = 5 };
	struct sp_raw a, b;
	struct sp_raw_frame f;
	struct trio t;
	uint64_t cid = 0, seqs[N + LIVE], again;
	int ks[N + LIVE];
	uint32_t st;

	(void)state;
	if (!sp_it_nats_available())
		skip();
	trio_start(&t);
	assert_int_equal(sp_raw_init(&a), 0);
	assert_int_equal(sp_raw_init(&b), 0);
	device_open(&a, &t, 0);
	/* b is on no node: its mailbox fills through node 0. */
	send_accepted(&a, b.s_pub, &cid, 0, N, seqs, NULL);
	/* The same Send again (its client id): the original seq, no copy. */
	send_durable(&a, b.s_pub, cid, "m19", 3, &st, &again);
	assert_int_equal(st, SP_STATUS_ACCEPTED);
	assert_int_equal(again, seqs[N - 1]);
	for (int k = 0; k < N + LIVE; k++)
		ks[k] = k;
	/* Read through node 1, in order, then Drained; not acked yet. */
	read_backlog(&b, &t, 1, ks, seqs, N, false);
	/* Live from here, through node 0's PubAck and node 1's subscription. */
	send_accepted(&a, b.s_pub, &cid, N, LIVE, seqs + N, NULL);
	for (int k = N; k < N + LIVE; k++) {
		char body[8];
		int len = snprintf(body, sizeof(body), "m%d", k);

		assert_int_equal(sp_raw_wait_frame(&b, SP_FRAME_DELIVER, &f, SP_RAW_TIMEOUT_MS), 0);
		assert_int_equal(f.seq, seqs[k]);
		assert_memory_equal(f.body, body, (size_t)len);
	}
	/* Unacked: a reconnect (to node 2) reads all of it again. Acked
	 * there: deleted, so a fourth connection reads nothing. */
	sp_raw_disconnect(&b);
	read_backlog(&b, &t, 2, ks, seqs, N + LIVE, true);
	/* The Ping answered after the acks: node 2 has sent the deletes. */
	{
		uint8_t buf[32];
		size_t off = 0;

		assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, 5, NULL, 0), 0);
		assert_int_equal(sp_raw_send_plain(&b, buf, off), 0);
		assert_int_equal(sp_raw_wait_frame(&b, SP_FRAME_PONG, &f, SP_RAW_TIMEOUT_MS), 0);
	}
	for (uint64_t deadline = sp_clock_mono_ms() + READY_BOUND_MS;
	     !metric_has(&t.node[2], "sealpost_cluster_mailbox_deletes_total 25\n");) {
		assert_true(sp_clock_mono_ms() < deadline);
		sleep_ms(POLL_MS);
	}
	sp_raw_disconnect(&b);
	read_backlog(&b, &t, 0, ks, seqs, 0, false);
	assert_true(metric_has(&t.node[0], "sealpost_cluster_mailbox_publishes_total{outcome=\"stored\"} 26\n"));
	/* A fan-out group: refused in cluster mode, 82. */
	{
		uint8_t buf[256], account[SP_ACCOUNT_LEN] = { 1 };
		size_t off = 0;

		assert_int_equal(sp_raw_put_fanout_begin(buf, sizeof(buf), &off, account,
							 SP_ACCOUNT_LEN, 77, 1, 1), 0);
		assert_int_equal(sp_raw_send_plain(&a, buf, off), 0);
		assert_int_equal(sp_raw_recv_frame(&a, &f, SP_RAW_TIMEOUT_MS), 0);
		assert_int_equal(f.type, SP_FRAME_FANOUT_RESULT);
		assert_int_equal(f.status, SP_STATUS_ERR_CLUSTER_UNSUPPORTED);
	}
	sp_raw_close(&a);
	sp_raw_close(&b);
	trio_stop(&t);
}

/* The name of the leader of the mailbox stream that holds messages now
 * ("n1".."n3" into out), asked of server i's monitor; false if none. */
static bool loaded_stream_leader(const struct trio *t, int i, char out[8])
{
	char *body = NULL, *p;
	bool found = false;

	if (sp_it_nats_http_get(&t->nats, i, "/jsz?accounts=true&streams=true", &body) != 200 || !body) {
		free(body);
		return false;
	}
	/* Each stream's detail (indented JSON): "name": "SP_MBOX_k", ...
	 * "leader": "nX", ... "messages": N; the one with N > 0. */
	for (p = body; (p = strstr(p, "\"name\": \"SP_MBOX_")) != NULL; p++) {
		char *next = strstr(p + 1, "\"name\": \"SP_MBOX_");
		char *lead = strstr(p, "\"leader\": \"");
		char *msgs = strstr(p, "\"messages\": ");

		if (!lead || !msgs || (next && (lead > next || msgs > next)))
			continue;
		if (strtoull(msgs + strlen("\"messages\": "), NULL, 10) == 0)
			continue;
		snprintf(out, 8, "%.*s", 2, lead + strlen("\"leader\": \""));
		found = true;
		break;
	}
	if (!found)
		fprintf(stderr, "[it_cluster] no loaded mailbox stream in /jsz: %.2000s\n", body);
	free(body);
	return found;
}

/* kill -9 of the node that accepted an offline device's envelopes, then of
 * their stream's leader: the device, connecting to a survivor, reads every
 * one accepted, in order; sends while the stream elects a new leader are
 * ACCEPTED or 81 (retried with the same client id), never accepted and lost. */
static void test_mailbox_survives_kills(void **state)
{
	enum { N = 10, M = 10 };
	struct sp_raw a, b;
	struct trio t;
	uint64_t cid = 0, seqs[N + M];
	int ks[N + M], unavailable = 0, leader;
	char name[8];

	(void)state;
	if (!sp_it_nats_available())
		skip();
	trio_start(&t);
	assert_int_equal(sp_raw_init(&a), 0);
	assert_int_equal(sp_raw_init(&b), 0);
	for (int k = 0; k < N + M; k++)
		ks[k] = k;
	device_open(&a, &t, 0);
	send_accepted(&a, b.s_pub, &cid, 0, N, seqs, NULL);
	/* The node that accepted them dies. */
	assert_true(sp_it_broker_kill(&t.node[0]) != 0);
	sp_raw_disconnect(&a);
	/* The sender reconnects elsewhere; so does everyone. */
	device_open(&a, &t, 2);
	/* The leader of their stream dies too. */
	assert_true(loaded_stream_leader(&t, 1, name));
	leader = name[1] - '1';
	assert_true(leader >= 0 && leader < 3);
	uint64_t t0 = sp_clock_mono_ms();

	assert_int_equal(sp_it_nats_kill(&t.nats, leader), 0);
	send_accepted(&a, b.s_pub, &cid, N, M, seqs + N, &unavailable);
	/* A figure for docs/CLUSTER.md, not a threshold. */
	fprintf(stderr, "[it_cluster] stream leader %s killed: %d durable sends answered 81, "
		"the next ACCEPTED after %llu ms (all %d sends in)\n", name, unavailable,
		(unsigned long long)(sp_clock_mono_ms() - t0), M);
	read_backlog(&b, &t, 1, ks, seqs, N + M, true);
	sp_raw_close(&a);
	sp_raw_close(&b);
	assert_int_equal(sp_it_nats_restart(&t.nats, leader), 0);
	assert_int_equal(sp_it_nats_wait_ready(&t.nats, SP_IT_NATS_READY_MS), 0);
	{
		const char *args[] = NODE_ARGS(t.nats.urls, "3");

		assert_int_equal(sp_it_broker_restart(&t.node[0], args), 0);
	}
	trio_stop(&t);
}

/*
 * The minority side of a partition: the node's nats-server is the only one
 * of three left, so JetStream has no quorum and cannot commit. Every
 * durable send is then answered 81, never ACCEPTED (an ACCEPTED there
 * would be a promise a quorum does not back). After the two come back,
 * the sender resends the refused envelopes with their client ids and they
 * are ACCEPTED; the recipient reads each accepted envelope exactly once,
 * in stream order, whether or not the minority's uncommitted copy
 * survived the election (dedup gives its seq back).
 */
static void test_minority_refuses_durable(void **state)
{
	enum { N = 5, M = 3 };
	struct sp_raw a, b;
	struct trio t;
	uint64_t cid = 0, c0, t0, seqs[N + M];
	int ks[N + M], keep;
	uint32_t st;
	uint64_t seq;
	char body[32];

	(void)state;
	if (!sp_it_nats_available())
		skip();
	trio_start(&t);
	assert_int_equal(sp_raw_init(&a), 0);
	assert_int_equal(sp_raw_init(&b), 0);
	device_open(&a, &t, 0);
	send_accepted(&a, b.s_pub, &cid, 0, N, seqs, NULL);
	keep = node_server(&t, 0);
	assert_true(keep >= 0 && keep < 3);
	for (int s = 0; s < 3; s++)
		if (s != keep)
			assert_int_equal(sp_it_nats_kill(&t.nats, s), 0);
	c0 = cid;
	for (int k = 0; k < M; k++) {
		int len = snprintf(body, sizeof(body), "m%d", N + k);

		send_durable(&a, b.s_pub, c0 + 1 + (uint64_t)k, body, (size_t)len, &st, &seq);
		assert_int_equal(st, SP_STATUS_ERR_CLUSTER_UNAVAILABLE);
	}
	t0 = sp_clock_mono_ms();
	for (int s = 0; s < 3; s++)
		if (s != keep)
			assert_int_equal(sp_it_nats_restart(&t.nats, s), 0);
	assert_int_equal(sp_it_nats_wait_ready(&t.nats, SP_IT_NATS_READY_MS), 0);
	/* The same client ids again: each stored once. */
	for (int k = 0; k < M; k++) {
		int len = snprintf(body, sizeof(body), "m%d", N + k);
		uint64_t deadline = sp_clock_mono_ms() + READY_BOUND_MS;

		for (;;) {
			send_durable(&a, b.s_pub, c0 + 1 + (uint64_t)k, body, (size_t)len, &st,
				     &seqs[N + k]);
			if (st == SP_STATUS_ACCEPTED)
				break;
			assert_int_equal(st, SP_STATUS_ERR_CLUSTER_UNAVAILABLE);
			assert_true(sp_clock_mono_ms() < deadline);
			sleep_ms(POLL_MS);
		}
		assert_true(seqs[N + k] > seqs[N - 1]);
		if (k == 0)      /* a figure for docs/CLUSTER.md, not a threshold */
			fprintf(stderr, "[it_cluster] minority: %d durable sends answered 81; "
				"ACCEPTED again %llu ms after the two nats-servers restarted\n", M,
				(unsigned long long)(sp_clock_mono_ms() - t0));
	}
	/* Stream order: a copy committed after the election keeps its seq. */
	for (int k = 0; k < N + M; k++)
		ks[k] = k;
	for (int i = N + 1; i < N + M; i++)
		for (int j = i; j > N && seqs[j] < seqs[j - 1]; j--) {
			uint64_t q = seqs[j];
			int kk = ks[j];

			seqs[j] = seqs[j - 1];
			seqs[j - 1] = q;
			ks[j] = ks[j - 1];
			ks[j - 1] = kk;
		}
	for (int k = 1; k < N + M; k++)
		assert_true(seqs[k] > seqs[k - 1]);
	read_backlog(&b, &t, 1, ks, seqs, N + M, true);
	sp_raw_close(&a);
	sp_raw_close(&b);
	trio_stop(&t);
}

/* The home shard of a device key on a node of SHARDS shards (sp_node.h). */
static unsigned home_of(const uint8_t key[SP_KEY_LEN])
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | key[i];
	return (unsigned)(v % SHARDS);
}

/* A fresh identity homed on shard `home`, not connected. */
static void device_on(struct sp_raw *c, unsigned home)
{
	assert_int_equal(sp_raw_init(c), 0);
	while (home_of(c->s_pub) != home) {
		sp_raw_close(c);
		assert_int_equal(sp_raw_init(c), 0);
	}
}

/* The value of the sample line starting with `name ` on b's /metrics (not
 * its # HELP line), or -1. */
static long metric_value(const struct sp_it_broker *b, const char *name)
{
	char *body = NULL, *p, needle[128];
	long v = -1;

	snprintf(needle, sizeof(needle), "\n%s ", name);
	if (sp_it_http_get(b->metrics_port, "/metrics", &body) == 200 && body &&
	    (p = strstr(body, needle)))
		v = strtol(p + strlen(needle), NULL, 10);
	free(body);
	return v;
}

/* SetAccess on r, answered ACCEPTED. */
static void set_access(struct sp_raw *r, uint64_t id, const uint8_t *key, size_t len)
{
	uint8_t buf[256];
	size_t off = 0;
	struct sp_raw_frame f;

	assert_int_equal(sp_raw_put_set_access(buf, sizeof(buf), &off, id, key, len, 0), 0);
	assert_int_equal(sp_raw_send_plain(r, buf, off), 0);
	assert_int_equal(sp_raw_wait_frame(r, SP_FRAME_ACCESS_RESULT, &f, SP_RAW_TIMEOUT_MS), 0);
	assert_int_equal(f.client_id, id);
	assert_int_equal(f.status, SP_STATUS_ACCEPTED);
}

/* An online-only AnonSend from a; its status. */
static uint32_t anon_online(struct sp_raw *a, const uint8_t to[SP_KEY_LEN], const uint8_t *token,
			    size_t tlen, uint64_t id, const char *body)
{
	uint8_t buf[512];
	size_t off = 0;
	uint32_t st;

	assert_int_equal(sp_raw_put_anon_send(buf, sizeof(buf), &off, to, SP_KEY_LEN, token, tlen,
					      id, SP_SEND_ONLINE_ONLY, (const uint8_t *)body,
					      strlen(body)), 0);
	assert_int_equal(sp_raw_send_plain(a, buf, off), 0);
	assert_int_equal(sp_raw_expect_result(a, id, &st, SP_RAW_TIMEOUT_MS), 0);
	return st;
}

/* A node of two shards (--threads 2): every device runs on its key's home
 * shard, each shard holds its own devices' subjects over its own port, and
 * every path works whichever shards the sender and recipient are on:
 *   - online-only to a device on the node's other shard: DELIVERED through
 *     the shards' inboxes, without NATS (remote sends unchanged);
 *   - online-only to a device on another node, homed on the sender's shard
 *     (DELIVER from the sender's shard) or on the other one (forwarded by
 *     the recipient's home shard), with the results, and a Pong behind
 *     them, in order;
 *   - durable to a device connected to the node's other shard: the PubAck
 *     comes to the sender's shard, the envelope reaches the recipient live
 *     through its shard's subscription (STORED), and an ack deletes it;
 *   - takeover of a device across nodes, whatever its home shard;
 *   - an online-only AnonSend to a device on another node (it used to be
 *     answered ERR_OFFLINE when the device was homed on the NK
 *     connection's shard). */
static void test_shards_in_cluster(void **state)
{
	struct sp_raw a, local, far[SHARDS], far_again, anon;
	struct sp_raw_frame f;
	struct trio t;
	uint64_t cid = 0, seq = 0;
	uint8_t acc[16] = { 7, 7, 7 };
	uint32_t st;
	long sends;

	(void)state;
	if (!sp_it_nats_available())
		skip();
	trio_start(&t);
	for (int i = 0; i < 3; i++)
		assert_true(sp_it_log_count(&t.node[i], "shards=2") >= 1);
	device_on(&a, 0);
	device_on(&local, 1);
	device_open(&a, &t, 0);
	device_open(&local, &t, 0);

	/* The other shard of the same node: no NATS in between. */
	sends = metric_value(&t.node[0], "sealpost_cluster_remote_sends_total");
	assert_true(sends >= 0);
	send_online(&a, local.s_pub, ++cid, "near", 4);
	assert_int_equal(sp_raw_expect_result(&a, cid, &st, SP_RAW_TIMEOUT_MS), 0);
	assert_int_equal(st, SP_STATUS_DELIVERED);
	assert_int_equal(sp_raw_wait_frame(&local, SP_FRAME_DELIVER, &f, SP_RAW_TIMEOUT_MS), 0);
	assert_int_equal(f.seq, 0);
	assert_memory_equal(f.body, "near", 4);
	assert_int_equal(metric_value(&t.node[0], "sealpost_cluster_remote_sends_total"), sends);

	/* Devices on node 1, one homed on each shard; sent to from shard 0 of
	 * node 0 (directly, and forwarded by shard 1). */
	for (unsigned h = 0; h < SHARDS; h++) {
		device_on(&far[h], h);
		device_open(&far[h], &t, 1);
		send_until_delivered(&a, &far[h], &cid);
	}
	assert_true(metric_value(&t.node[0], "sealpost_cluster_remote_sends_total") > sends);
	/* Interleaved to both, then a Ping, in one transport message: the
	 * results in Send order, the Pong last, the bodies in order. */
	{
		enum { N = 20 };
		uint8_t buf[4096];
		size_t off = 0;
		char body[16];
		uint64_t base = cid;

		for (int i = 0; i < N; i++) {
			int n = snprintf(body, sizeof(body), "e%d", i);

			assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, far[i % 2].s_pub,
							 SP_KEY_LEN, base + 1 + (uint64_t)i,
							 SP_SEND_ONLINE_ONLY, (const uint8_t *)body,
							 (size_t)n), 0);
		}
		assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, 4242, NULL, 0),
				 0);
		assert_int_equal(sp_raw_send_plain(&a, buf, off), 0);
		for (int i = 0; i < N; i++) {
			assert_int_equal(sp_raw_recv_frame(&a, &f, SP_RAW_TIMEOUT_MS), 0);
			assert_int_equal(f.type, SP_FRAME_SEND_RESULT);
			assert_int_equal(f.client_id, base + 1 + (uint64_t)i);
			if (f.status != SP_STATUS_DELIVERED)
				fprintf(stderr, "[it_cluster] send %d (to shard %d): status %u\n", i,
					i % 2, f.status);
			assert_int_equal(f.status, SP_STATUS_DELIVERED);
		}
		assert_int_equal(sp_raw_recv_frame(&a, &f, SP_RAW_TIMEOUT_MS), 0);
		assert_int_equal(f.type, SP_FRAME_PONG);
		assert_int_equal(f.id, 4242);
		for (int i = 0; i < N; i++) {
			int n = snprintf(body, sizeof(body), "e%d", i);

			assert_int_equal(sp_raw_wait_frame(&far[i % 2], SP_FRAME_DELIVER, &f,
							   SP_RAW_TIMEOUT_MS), 0);
			assert_int_equal(f.body_len, (size_t)n);
			assert_memory_equal(f.body, body, (size_t)n);
		}
		cid = base + N;
	}

	/* Durable, to the device on node 0's other shard: live, then acked. */
	send_durable(&a, local.s_pub, ++cid, "kept", 4, &st, &seq);
	assert_int_equal(st, SP_STATUS_ACCEPTED);
	assert_int_equal(sp_raw_wait_frame(&local, SP_FRAME_DELIVER, &f, SP_RAW_TIMEOUT_MS), 0);
	assert_int_equal(f.seq, seq);
	assert_memory_equal(f.body, "kept", 4);
	ack(&local, seq);
	for (uint64_t deadline = sp_clock_mono_ms() + READY_BOUND_MS;
	     metric_value(&t.node[0], "sealpost_cluster_mailbox_deletes_total") != 1;) {
		assert_true(sp_clock_mono_ms() < deadline);
		sleep_ms(POLL_MS);
	}
	sp_raw_disconnect(&local);
	read_backlog(&local, &t, 2, NULL, NULL, 0, false);

	/* The device homed on shard 1 moves to node 2: node 1 lets go. */
	assert_int_equal(sp_raw_init(&far_again), 0);
	memcpy(far_again.s_priv, far[1].s_priv, SP_KEY_LEN);
	memcpy(far_again.s_pub, far[1].s_pub, SP_KEY_LEN);
	device_open(&far_again, &t, 2);
	assert_int_equal(sp_raw_expect_goaway(&far[1], &st, SP_RAW_TIMEOUT_MS, NULL), 0);
	assert_int_equal(st, SP_STATUS_GOAWAY_TAKEOVER);
	send_until_delivered(&a, &far_again, &cid);

	/* An AnonSend, online only, from an NK connection of node 0 (homed
	 * on shard 0, like its recipient far[0] on node 1). The access key is
	 * set through node 0: access keys are kept per node (CLUSTER.md). */
	sp_raw_disconnect(&far[0]);
	device_open(&far[0], &t, 0);
	set_access(&far[0], ++cid, acc, sizeof(acc));
	sp_raw_disconnect(&far[0]);
	device_open(&far[0], &t, 1);
	assert_int_equal(sp_raw_init(&anon), 0);
	assert_int_equal(sp_raw_open(&anon, t.node[0].port, SP_PREAMBLE_PATTERN_NK,
				     t.node[0].server_pub), 0);
	for (uint64_t deadline = sp_clock_mono_ms() + READY_BOUND_MS;;) {
		st = anon_online(&anon, far[0].s_pub, acc, sizeof(acc), ++cid, "sealed");
		if (st == SP_STATUS_DELIVERED)
			break;
		assert_int_equal(st, SP_STATUS_ERR_OFFLINE);    /* presence not there yet */
		assert_true(sp_clock_mono_ms() < deadline);
		sleep_ms(POLL_MS);
	}
	assert_int_equal(sp_raw_wait_frame(&far[0], SP_FRAME_DELIVER, &f, SP_RAW_TIMEOUT_MS), 0);
	assert_int_equal(f.body_len, 6);
	assert_memory_equal(f.body, "sealed", 6);

	sp_raw_close(&anon);
	sp_raw_close(&a);
	sp_raw_close(&local);
	for (unsigned h = 0; h < SHARDS; h++)
		sp_raw_close(&far[h]);
	sp_raw_close(&far_again);
	trio_stop(&t);
}

/* ListPut of list l (signed with sk) from d; its status. */
static uint32_t list_put(struct sp_raw *d, const struct sp_devlist *l, const uint8_t *sk,
			 uint64_t id)
{
	static uint8_t signed_list[SP_DEVLIST_MAX], buf[SP_DEVLIST_MAX + 256];
	struct sp_raw_frame f;
	size_t len = 0, off = 0;

	assert_int_equal(sp_devlist_sign(l, sk, signed_list, sizeof(signed_list), &len), 0);
	assert_int_equal(sp_raw_put_list(buf, sizeof(buf), &off, SP_FRAME_LIST_PUT, l->account,
					 SP_ACCOUNT_LEN, id, signed_list, len), 0);
	assert_int_equal(sp_raw_send_plain(d, buf, off), 0);
	assert_int_equal(sp_raw_wait_frame(d, SP_FRAME_LIST_RESULT, &f, SP_RAW_TIMEOUT_MS), 0);
	assert_int_equal(f.client_id, id);
	return f.status;
}

/* A device removed from its account's list loses its mailbox in JetStream
 * before the list is stored (the single node's rule): its envelopes,
 * accepted through another node and read once unacked, are gone when it
 * connects again, to a third node; the ListPut that removed it was
 * ACCEPTED only after the purge. */
static void test_list_removal_purges(void **state)
{
	enum { N = 3 };
	struct sp_raw a, pub, gone;
	struct sp_devlist l;
	struct trio t;
	uint8_t pk[SP_ACCOUNT_KEY_LEN], sk[SP_ACCOUNT_SECRET_LEN];
	uint64_t cid = 0, seqs[N];
	int ks[N] = { 0, 1, 2 };

	(void)state;
	if (!sp_it_nats_available())
		skip();
	trio_start(&t);
	crypto_sign_keypair(pk, sk);
	assert_int_equal(sp_raw_init(&a), 0);
	assert_int_equal(sp_raw_init(&pub), 0);
	assert_int_equal(sp_raw_init(&gone), 0);
	device_open(&pub, &t, 0);
	device_open(&a, &t, 1);
	memset(&l, 0, sizeof(l));
	memcpy(l.account, pk, SP_ACCOUNT_LEN);
	l.version = 1;
	assert_int_equal(sp_devlist_add(&l, pub.s_pub, "publisher", 1700000000), 0);
	assert_int_equal(sp_devlist_add(&l, gone.s_pub, "to remove", 1700000000), 0);
	assert_int_equal(list_put(&pub, &l, sk, 1), SP_STATUS_ACCEPTED);

	/* Mail for the device while it is offline, through node 1; it is
	 * there (read through node 1, not acked). */
	send_accepted(&a, gone.s_pub, &cid, 0, N, seqs, NULL);
	read_backlog(&gone, &t, 1, ks, seqs, N, false);
	sp_raw_disconnect(&gone);

	/* Version 2 without it, through node 0: purged, then stored. */
	memset(&l, 0, sizeof(l));
	memcpy(l.account, pk, SP_ACCOUNT_LEN);
	l.version = 2;
	assert_int_equal(sp_devlist_add(&l, pub.s_pub, "publisher", 1700000000), 0);
	assert_int_equal(list_put(&pub, &l, sk, 2), SP_STATUS_ACCEPTED);
	read_backlog(&gone, &t, 2, NULL, NULL, 0, false);

	sodium_memzero(sk, sizeof(sk));
	sp_raw_close(&a);
	sp_raw_close(&pub);
	sp_raw_close(&gone);
	trio_stop(&t);
}

static void test_single_node_untouched(void **state)
{
	struct sp_it_broker b;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, NULL), 0);
	assert_int_equal(http_status(&b, "/readyz"), 200);
	assert_true(metric_has(&b, "sealpost_build_info"));
	assert_false(metric_has(&b, "sealpost_cluster_"));
	assert_int_equal(sp_it_log_count(&b, "cluster"), 0);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_node_untouched),
		cmocka_unit_test(test_unreachable_refused),
		cmocka_unit_test(test_jetstream_off_refused),
		cmocka_unit_test(test_readiness_follows_nats),
		cmocka_unit_test(test_nodes_share_one_key),
		cmocka_unit_test(test_online_across_nodes),
		cmocka_unit_test(test_takeover_across_nodes),
		cmocka_unit_test(test_nats_server_killed),
		cmocka_unit_test(test_node_killed),
		cmocka_unit_test(test_mailbox_across_nodes),
		cmocka_unit_test(test_shards_in_cluster),
		cmocka_unit_test(test_list_removal_purges),
		cmocka_unit_test(test_mailbox_survives_kills),
		cmocka_unit_test(test_minority_refuses_durable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
