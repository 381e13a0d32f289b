/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_cluster.c: joining the NATS cluster, the start-up checks and the
 * connection's health (sp_cluster.h).
 */
#include "sp_cluster.h"
#include "sp_cluster_msg.h"

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>
#include <sodium.h>

enum {
	/* Bounds nats_CloseAndWait at stop: libnats's threads end at once
	 * once the connection is closed; a bound keeps a stuck one from
	 * holding the exit. */
	CLOSE_WAIT_MS = 2000,
	MAX_PINGS_OUT = 2,
	/* The bucket holds a few facts, each one value. */
	BUCKET_HISTORY = 1,
	BUCKET_VALUE_MAX = 256,
	/* One delivery thread for every subscription of the node (libnats's
	 * default is a thread per subscription: one per online device). */
	DELIVERY_THREADS = 1,
};


struct sp_cluster {
	const struct sp_log *log;
	struct sp_metrics *metrics;
	natsOptions *opts;
	natsConnection *nc;
	jsCtx *js;
	kvStore *kv;
	natsStatistics *stats;
	int up;                 /* atomic: written by libnats's callback thread */
	uint64_t disconnects;   /* atomic */
	uint64_t reconnects;    /* atomic */
	uint64_t counters[SP_CLUSTER_COUNTER_COUNT]; /* atomic */
	int closing;            /* atomic: our own close, not a loss */
	char *urls;             /* the split list; servers[] point into it */
	const char *servers[SP_CONFIG_CLUSTER_URLS_MAX];
	int nservers;
	uint64_t node;          /* random, at start */
	struct sp_cluster_port *ports; /* freed at stop, after libnats's threads */
	uint8_t *subject_key;   /* sodium_malloc'd: names device subjects */
	uint32_t partitions;    /* mailbox streams (cfg->cluster_partitions) */
};

struct sp_cluster_port {
	struct sp_cluster *c;
	struct sp_cluster_port *next;  /* the node's list */
	unsigned index;
	natsSubscription *replies;
	struct sp_cluster_inbox inbox;
	uint8_t *scratch;       /* a DELIVER or STORED being built (the loop's thread only) */
	/* Quiescence at close without a lock: callbacks count themselves in
	 * and look at closed; close sets closed and waits for busy to drain. */
	int busy;               /* atomic: callbacks inside */
	int closed;             /* atomic */
	char reply_prefix[48];  /* "sp.r.NODE.PORT." */
};

/* libnats's last error of this thread without its "(file.c:123): " prefix
 * (source positions mean nothing to an operator). */
static const char *nats_error(natsStatus s)
{
	const char *e = nats_GetLastError(NULL), *p;

	if (!e || !*e)
		return natsStatus_GetText(s);
	if (e[0] == '(' && (p = strstr(e, "): ")) != NULL)
		return p + 3;
	return e;
}

/* --- callbacks (libnats's thread) -------------------------------------------- */

static void set_up(struct sp_cluster *c, bool up)
{
	__atomic_store_n(&c->up, up ? 1 : 0, __ATOMIC_RELEASE);
	sp_metrics_set_cluster_up(c->metrics, up);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	struct sp_cluster *c = closure;

	(void)nc;
	/* Not ready from here on: a balancer sends devices to other nodes. */
	set_up(c, false);
	if (__atomic_load_n(&c->closing, __ATOMIC_ACQUIRE))
		return;
	__atomic_add_fetch(&c->disconnects, 1, __ATOMIC_RELAXED);
	SP_LOG0(c->log, SP_LOG_WARN, "cluster: NATS connection lost; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	struct sp_cluster *c = closure;
	char url[256] = "";

	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	__atomic_add_fetch(&c->reconnects, 1, __ATOMIC_RELAXED);
	set_up(c, true);
	SP_LOG(c->log, SP_LOG_INFO, "cluster: NATS connection back", SP_KV_STR("server", url));
}

static void on_closed(natsConnection *nc, void *closure)
{
	struct sp_cluster *c = closure;

	(void)nc;
	set_up(c, false);
}

static int figures(void *ctx, struct sp_metrics_cluster *out)
{
	struct sp_cluster *c = ctx;

	memset(out, 0, sizeof(*out));
	out->connected = (uint64_t)__atomic_load_n(&c->up, __ATOMIC_ACQUIRE);
	out->disconnects = __atomic_load_n(&c->disconnects, __ATOMIC_RELAXED);
	out->reconnects = __atomic_load_n(&c->reconnects, __ATOMIC_RELAXED);
	out->remote_sends = __atomic_load_n(&c->counters[SP_CLUSTER_REMOTE_SENDS], __ATOMIC_RELAXED);
	out->remote_deliveries = __atomic_load_n(&c->counters[SP_CLUSTER_REMOTE_DELIVERIES],
						 __ATOMIC_RELAXED);
	out->takeovers = __atomic_load_n(&c->counters[SP_CLUSTER_TAKEOVERS], __ATOMIC_RELAXED);
	out->timeouts = __atomic_load_n(&c->counters[SP_CLUSTER_TIMEOUTS], __ATOMIC_RELAXED);
	out->errors = __atomic_load_n(&c->counters[SP_CLUSTER_ERRORS], __ATOMIC_RELAXED);
	out->round_trip_ns = __atomic_load_n(&c->counters[SP_CLUSTER_ROUND_TRIP], __ATOMIC_RELAXED);
	out->round_trips = __atomic_load_n(&c->counters[SP_CLUSTER_ROUND_TRIPS], __ATOMIC_RELAXED);
	out->js_stored = __atomic_load_n(&c->counters[SP_CLUSTER_JS_STORED], __ATOMIC_RELAXED);
	out->js_refused = __atomic_load_n(&c->counters[SP_CLUSTER_JS_REFUSED], __ATOMIC_RELAXED);
	out->js_publish_ns = __atomic_load_n(&c->counters[SP_CLUSTER_JS_PUBLISH], __ATOMIC_RELAXED);
	out->js_publishes = __atomic_load_n(&c->counters[SP_CLUSTER_JS_PUBLISHES], __ATOMIC_RELAXED);
	out->js_reads = __atomic_load_n(&c->counters[SP_CLUSTER_JS_READS], __ATOMIC_RELAXED);
	out->js_deletes = __atomic_load_n(&c->counters[SP_CLUSTER_JS_DELETES], __ATOMIC_RELAXED);
	/* The stats object is this callback's alone (the scrape is serialised
	 * by the metrics source lock); libnats locks the connection to fill it. */
	if (natsConnection_GetStats(c->nc, c->stats) == NATS_OK)
		natsStatistics_GetCounts(c->stats, &out->msgs_in, &out->bytes_in, &out->msgs_out,
					 &out->bytes_out, NULL);
	return 0;
}

/* --- start-up ------------------------------------------------------------------ */

void sp_cluster_fingerprint(const uint8_t server_pub[SP_KEY_LEN],
			    char hex[SP_CLUSTER_FP_HEX_LEN + 1])
{
	static const char label[] = "sealpost-cluster";
	uint8_t fp[SP_CLUSTER_FP_LEN];

	crypto_generichash(fp, sizeof(fp), server_pub, SP_KEY_LEN, (const uint8_t *)label,
			   sizeof(label) - 1);
	sodium_bin2hex(hex, SP_CLUSTER_FP_HEX_LEN + 1, fp, sizeof(fp));
}

/* Splits the (already checked) comma list into c->servers. */
static int split_urls(struct sp_cluster *c, const char *list)
{
	char *p;

	c->urls = strdup(list);
	if (!c->urls)
		return -ENOMEM;
	for (p = c->urls; p && c->nservers < SP_CONFIG_CLUSTER_URLS_MAX;) {
		char *comma = strchr(p, ',');

		if (comma)
			*comma++ = '\0';
		c->servers[c->nservers++] = p;
		p = comma;
	}
	return 0;
}

static int set_options(struct sp_cluster *c, const struct sp_config *cfg)
{
	natsOptions *o;
	natsStatus s;

	s = natsOptions_Create(&c->opts);
	if (s != NATS_OK)
		return -ENOMEM;
	o = c->opts;
	s = natsOptions_SetServers(o, c->servers, c->nservers);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, "sealpostd");
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, cfg->cluster_connect_timeout_ms);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);   /* forever: the node waits for its cluster */
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, cfg->cluster_reconnect_wait_ms);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(o, cfg->cluster_ping_interval_ms);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(o, MAX_PINGS_OUT);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(o, on_disconnected, c);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, on_reconnected, c);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(o, on_closed, c);
	if (s == NATS_OK)
		s = natsOptions_UseGlobalMessageDelivery(o, true);
	/* Our own TAKEOVERs are not for us: the server does not echo them. */
	if (s == NATS_OK)
		s = natsOptions_SetNoEcho(o, true);
	if (s == NATS_OK)
		s = nats_SetMessageDeliveryPoolSize(DELIVERY_THREADS);
	return s == NATS_OK ? 0 : -EIO;
}

static int connect_nats(struct sp_cluster *c, const struct sp_config *cfg)
{
	natsStatus s = natsConnection_Connect(&c->nc, c->opts);
	char url[256] = "";

	if (s != NATS_OK) {
		SP_LOG(c->log, SP_LOG_ERROR,
		       "cluster: cannot connect to any NATS server of --cluster",
		       SP_KV_STR("cluster", cfg->cluster), SP_KV_STR("error", nats_error(s)),
		       SP_KV_UINT("connect_timeout_ms", cfg->cluster_connect_timeout_ms));
		return -EHOSTUNREACH;
	}
	natsConnection_GetConnectedUrl(c->nc, url, sizeof(url));
	SP_LOG(c->log, SP_LOG_INFO, "cluster: connected to NATS", SP_KV_STR("server", url));
	return 0;
}

static int check_jetstream(struct sp_cluster *c, const struct sp_config *cfg)
{
	jsAccountInfo *ai = NULL;
	jsErrCode jerr = 0;
	jsOptions jo;
	natsStatus s;

	jsOptions_Init(&jo);
	jo.Wait = cfg->cluster_connect_timeout_ms;
	s = natsConnection_JetStream(&c->js, c->nc, &jo);
	if (s != NATS_OK)
		return -ENOMEM;
	s = js_GetAccountInfo(&ai, c->js, NULL, &jerr);
	jsAccountInfo_Destroy(ai);
	if (s == NATS_OK)
		return 0;
	/* A server without JetStream has nobody on $JS.API: no responders. */
	if (s == NATS_NO_RESPONDERS || jerr == JSNotEnabledErr || jerr == JSNotEnabledForAccountErr) {
		SP_LOG(c->log, SP_LOG_ERROR,
		       "cluster: JetStream is not enabled on the NATS cluster (each nats-server "
		       "needs a jetstream block; docs/CLUSTER.md)",
		       SP_KV_STR("error", nats_error(s)));
		return -ENOTSUP;
	}
	SP_LOG(c->log, SP_LOG_ERROR, "cluster: JetStream does not answer",
	       SP_KV_STR("error", nats_error(s)), SP_KV_UINT("js_error", (unsigned)jerr));
	return -EIO;
}

/* Binds the bucket of cluster facts, making it if it is not there yet (two
 * nodes starting at once: whichever loses the race binds the winner's). */
static int open_bucket(struct sp_cluster *c, const struct sp_config *cfg)
{
	kvConfig kc;
	natsStatus s;

	s = js_KeyValue(&c->kv, c->js, SP_CLUSTER_BUCKET);
	if (s == NATS_OK)
		return 0;
	kvConfig_Init(&kc);
	kc.Bucket = SP_CLUSTER_BUCKET;
	kc.Description = "sealpost cluster facts (docs/CLUSTER.md)";
	kc.History = BUCKET_HISTORY;
	kc.MaxValueSize = BUCKET_VALUE_MAX;
	kc.Replicas = (int)cfg->cluster_replicas;
	kc.StorageType = js_FileStorage;
	s = js_CreateKeyValue(&c->kv, c->js, &kc);
	if (s != NATS_OK && js_KeyValue(&c->kv, c->js, SP_CLUSTER_BUCKET) == NATS_OK)
		return 0;
	if (s != NATS_OK) {
		SP_LOG(c->log, SP_LOG_ERROR,
		       "cluster: cannot make the JetStream bucket (are there at least "
		       "--cluster-replicas servers with JetStream?)",
		       SP_KV_STR("bucket", SP_CLUSTER_BUCKET),
		       SP_KV_UINT("replicas", cfg->cluster_replicas), SP_KV_STR("error", nats_error(s)));
		return -ENOSPC;
	}
	return 0;
}

/* The mailbox streams: SP_MBOX_<p>, subjects sp.m.<p>.*, made if missing
 * and brought to this configuration if they differ (docs/CLUSTER.md,
 * "Replicated mailboxes"). The quotas are JetStream's per subject: a
 * device's mailbox is its subject. */
enum { SP_CLUSTER_STREAM_TRIES = 4 };

static int open_streams(struct sp_cluster *c, const struct sp_config *cfg)
{
	char name[32], subj[32];
	const char *subjects[1] = { subj };

	for (uint32_t p = 0; p < c->partitions; p++) {
		jsStreamConfig sc;
		jsStreamInfo *si = NULL;
		jsErrCode jerr = 0;
		natsStatus s;

		snprintf(name, sizeof(name), SP_CLUSTER_STREAM_PREFIX "%u", p);
		snprintf(subj, sizeof(subj), SP_CLUSTER_SUBJECT_MAILBOX "%u.*", p);
		jsStreamConfig_Init(&sc);
		sc.Name = name;
		sc.Description = "sealpost mailboxes (docs/CLUSTER.md)";
		sc.Subjects = subjects;
		sc.SubjectsLen = 1;
		sc.Storage = js_FileStorage;
		sc.Retention = js_LimitsPolicy;
		sc.Replicas = (int64_t)cfg->cluster_replicas;
		sc.MaxAge = (int64_t)cfg->ttl_s * 1000000000;
		sc.MaxMsgsPerSubject = (int64_t)cfg->mailbox_max_count;
		sc.Discard = js_DiscardNew;
		sc.DiscardNewPerSubject = true;
		sc.MaxMsgSize = (int32_t)(cfg->max_envelope + SP_CLUSTER_HEADROOM);
		/* The dedup window cannot outlast the messages. */
		sc.Duplicates = (int64_t)(cfg->dedup_window_s < cfg->ttl_s ? cfg->dedup_window_s
									  : cfg->ttl_s) * 1000000000;
		/* A stream whose replicas are still catching up (a nats-server
		 * just restarted, an election running) refuses an update for a
		 * moment: a few tries, half a second apart, before giving up. */
		for (int tries = 0;; tries++) {
			jerr = 0;
			si = NULL;
			s = js_AddStream(&si, c->js, &sc, NULL, &jerr);
			if (s != NATS_OK && jerr == JSStreamNameExistErr)
				s = js_UpdateStream(&si, c->js, &sc, NULL, &jerr);
			jsStreamInfo_Destroy(si);
			if (s == NATS_OK || tries + 1 >= SP_CLUSTER_STREAM_TRIES)
				break;
			SP_LOG(c->log, SP_LOG_WARN, "cluster: mailbox stream not ready; trying again",
			       SP_KV_STR("stream", name), SP_KV_STR("error", nats_error(s)));
			nanosleep(&(struct timespec){ .tv_nsec = 500000000 }, NULL);
		}
		if (s != NATS_OK) {
			SP_LOG(c->log, SP_LOG_ERROR,
			       "cluster: cannot make or update a mailbox stream (are there at least "
			       "--cluster-replicas servers with JetStream, and room in their stores?)",
			       SP_KV_STR("stream", name), SP_KV_UINT("replicas", cfg->cluster_replicas),
			       SP_KV_STR("error", nats_error(s)), SP_KV_UINT("js_error", (unsigned)jerr));
			return -ENOSPC;
		}
	}
	return 0;
}

/* Every node must spread mailboxes alike: the first records the partition
 * count, the others compare. */
static int check_partitions(struct sp_cluster *c)
{
	char mine[16], theirs[BUCKET_VALUE_MAX];
	uint64_t rev = 0;
	kvEntry *e = NULL;
	int ret = 0;

	snprintf(mine, sizeof(mine), "%u", c->partitions);
	if (kvStore_CreateString(&rev, c->kv, SP_CLUSTER_KEY_PARTITIONS, mine) == NATS_OK)
		return 0;
	if (kvStore_Get(&e, c->kv, SP_CLUSTER_KEY_PARTITIONS) != NATS_OK ||
	    kvEntry_ValueLen(e) <= 0 || (size_t)kvEntry_ValueLen(e) >= sizeof(theirs)) {
		ret = -EIO;
	} else {
		memcpy(theirs, kvEntry_Value(e), (size_t)kvEntry_ValueLen(e));
		theirs[kvEntry_ValueLen(e)] = '\0';
		if (strcmp(theirs, mine) != 0) {
			SP_LOG(c->log, SP_LOG_ERROR,
			       "cluster: this node's --cluster-partitions is not the cluster's",
			       SP_KV_STR("partitions", mine), SP_KV_STR("cluster_partitions", theirs));
			ret = -EKEYREJECTED;
		}
	}
	kvEntry_Destroy(e);
	if (ret == -EIO)
		SP_LOG0(c->log, SP_LOG_ERROR, "cluster: cannot read the cluster's partition count");
	return ret;
}

/* The cluster's recorded key fingerprint; -ENOENT when there is none. */
static int read_fingerprint(struct sp_cluster *c, char *out, size_t cap)
{
	kvEntry *e = NULL;
	natsStatus s = kvStore_Get(&e, c->kv, SP_CLUSTER_KEY_BROKER);
	int ret = 0;

	if (s == NATS_NOT_FOUND)
		return -ENOENT;
	if (s != NATS_OK)
		return -EIO;
	if (kvEntry_ValueLen(e) <= 0 || (size_t)kvEntry_ValueLen(e) >= cap) {
		ret = -EINVAL;
	} else {
		memcpy(out, kvEntry_Value(e), (size_t)kvEntry_ValueLen(e));
		out[kvEntry_ValueLen(e)] = '\0';
	}
	kvEntry_Destroy(e);
	return ret;
}

static int check_server_key(struct sp_cluster *c, const uint8_t server_pub[SP_KEY_LEN])
{
	char mine[SP_CLUSTER_FP_HEX_LEN + 1], theirs[BUCKET_VALUE_MAX];
	uint64_t rev = 0;
	natsStatus s;
	int ret;

	sp_cluster_fingerprint(server_pub, mine);
	/* First node in: record ours. Create fails if a value is there already. */
	s = kvStore_CreateString(&rev, c->kv, SP_CLUSTER_KEY_BROKER, mine);
	if (s == NATS_OK) {
		SP_LOG(c->log, SP_LOG_INFO, "cluster: first node: recorded the server key",
		       SP_KV_STR("key_fingerprint", mine));
		return 0;
	}
	ret = read_fingerprint(c, theirs, sizeof(theirs));
	if (ret) {
		SP_LOG(c->log, SP_LOG_ERROR, "cluster: cannot read the cluster's server key",
		       SP_KV_STR("bucket", SP_CLUSTER_BUCKET), SP_KV_STR("error", nats_error(s)));
		return -EIO;
	}
	if (strcmp(theirs, mine) != 0) {
		SP_LOG(c->log, SP_LOG_ERROR,
		       "cluster: this node's server key is not the cluster's: every node needs "
		       "the same DATA_DIR/server.key (copy it from a running node)",
		       SP_KV_STR("key_fingerprint", mine), SP_KV_STR("cluster_fingerprint", theirs));
		return -EKEYREJECTED;
	}
	SP_LOG(c->log, SP_LOG_INFO, "cluster: server key matches the cluster's",
	       SP_KV_STR("key_fingerprint", mine));
	return 0;
}

/* The subject key: BLAKE2b-256 keyed with the broker's private key over a
 * label, so every node of the identity derives the same one. */
static int derive_subject_key(struct sp_cluster *c, const uint8_t priv[SP_KEY_LEN])
{
	static const char label[] = "sealpost cluster subjects v1";

	c->subject_key = sodium_malloc(crypto_generichash_KEYBYTES);
	if (!c->subject_key)
		return -ENOMEM;
	crypto_generichash(c->subject_key, crypto_generichash_KEYBYTES, (const uint8_t *)label,
			   sizeof(label) - 1, priv, SP_KEY_LEN);
	sodium_mprotect_readonly(c->subject_key);
	return 0;
}

int sp_cluster_start(struct sp_cluster **out, const struct sp_config *cfg, const struct sp_log *lg,
		     struct sp_metrics *m, const uint8_t server_priv[SP_KEY_LEN])
{
	struct sp_cluster *c = calloc(1, sizeof(*c));
	uint8_t server_pub[SP_KEY_LEN];
	int ret;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->log = lg;
	c->metrics = m;
	c->partitions = cfg->cluster_partitions ? cfg->cluster_partitions : 1;
	randombytes_buf(&c->node, sizeof(c->node));
	ret = crypto_scalarmult_base(server_pub, server_priv) ? -EINVAL : 0;
	if (ret == 0)
		ret = derive_subject_key(c, server_priv);
	if (ret == 0)
		ret = split_urls(c, cfg->cluster);
	if (ret == 0)
		ret = set_options(c, cfg);
	if (ret == 0 && natsStatistics_Create(&c->stats) != NATS_OK)
		ret = -ENOMEM;
	if (ret == 0)
		ret = connect_nats(c, cfg);
	if (ret == 0) {
		set_up(c, natsConnection_Status(c->nc) == NATS_CONN_STATUS_CONNECTED);
		ret = check_jetstream(c, cfg);
	}
	if (ret == 0)
		ret = open_bucket(c, cfg);
	if (ret == 0)
		ret = check_server_key(c, server_pub);
	if (ret == 0)
		ret = check_partitions(c);
	if (ret == 0)
		ret = open_streams(c, cfg);
	if (ret) {
		sp_cluster_stop(c);
		/* Not ready, and not for lack of a connection only. */
		sp_metrics_set_cluster_up(m, false);
		return ret;
	}
	sp_metrics_set_cluster_source(m, figures, c);
	SP_LOG(lg, SP_LOG_INFO, "cluster: node joined", SP_KV_UINT("node", c->node));
	*out = c;
	return 0;
}

void sp_cluster_close(struct sp_cluster *c)
{
	if (!c || !c->nc)
		return;
	__atomic_store_n(&c->closing, 1, __ATOMIC_RELEASE);
	natsConnection_Close(c->nc);
}

void sp_cluster_stop(struct sp_cluster *c)
{
	if (!c)
		return;
	sp_metrics_set_cluster_source(c->metrics, NULL, NULL);
	__atomic_store_n(&c->closing, 1, __ATOMIC_RELEASE);
	kvStore_Destroy(c->kv);
	jsCtx_Destroy(c->js);
	if (c->nc) {
		natsConnection_Close(c->nc);
		natsConnection_Destroy(c->nc);
	}
	natsStatistics_Destroy(c->stats);
	natsOptions_Destroy(c->opts);
	nats_CloseAndWait(CLOSE_WAIT_MS);
	/* No libnats thread is left to call into a port. */
	while (c->ports) {
		struct sp_cluster_port *p = c->ports;

		c->ports = p->next;
		sp_cluster_port_close(p);
		free(p);
	}
	free(c->urls);
	if (c->subject_key)
		sodium_free(c->subject_key);    /* zeroes it */
	free(c);
}

bool sp_cluster_up(const struct sp_cluster *c)
{
	return c && __atomic_load_n(&c->up, __ATOMIC_ACQUIRE) != 0;
}

void sp_cluster_count(struct sp_cluster *c, enum sp_cluster_counter k, uint64_t v)
{
	__atomic_add_fetch(&c->counters[k], v, __ATOMIC_RELAXED);
	if (k == SP_CLUSTER_ROUND_TRIP)
		__atomic_add_fetch(&c->counters[SP_CLUSTER_ROUND_TRIPS], 1, __ATOMIC_RELAXED);
	if (k == SP_CLUSTER_JS_PUBLISH)
		__atomic_add_fetch(&c->counters[SP_CLUSTER_JS_PUBLISHES], 1, __ATOMIC_RELAXED);
}

uint64_t sp_cluster_node_id(const struct sp_cluster *c)
{
	return c->node;
}

void sp_cluster_token(const struct sp_cluster *c, const uint8_t device[SP_KEY_LEN],
		      uint8_t token[SP_KEY_LEN])
{
	crypto_generichash(token, SP_KEY_LEN, device, SP_KEY_LEN, c->subject_key,
			   crypto_generichash_KEYBYTES);
}

/* --- ports ------------------------------------------------------------------- */

/* A callback enters the port: false if it is closing (then it must not
 * touch it beyond port_leave). */
static bool port_enter(struct sp_cluster_port *p)
{
	__atomic_add_fetch(&p->busy, 1, __ATOMIC_ACQ_REL);
	return !__atomic_load_n(&p->closed, __ATOMIC_ACQUIRE);
}

static void port_leave(struct sp_cluster_port *p)
{
	__atomic_sub_fetch(&p->busy, 1, __ATOMIC_RELEASE);
}

/* libnats's delivery thread: a message on a device subject of this port. */
static void on_device_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	struct sp_cluster_port *p = closure;
	struct sp_cluster_item *it;

	(void)nc;
	(void)sub;
	if (!port_enter(p))
		goto out;
	it = sp_cluster_msg_device(natsMsg_GetSubject(msg), natsMsg_GetReply(msg),
				   (const uint8_t *)natsMsg_GetData(msg),
				   (size_t)natsMsg_GetDataLength(msg));
	/* Refused when the loop is behind (counted); a DELIVER's sender then
	 * times out. */
	if (it && sp_cluster_inbox_push(&p->inbox, it))
		free(it);
out:
	port_leave(p);
	natsMsg_Destroy(msg);
}

/* An answer from JetStream (its kind after the port's prefix): an inbox
 * item, with a GET's message body decoded into it. */
static void js_answer_msg(struct sp_cluster_port *p, natsMsg *msg)
{
	size_t len = (size_t)natsMsg_GetDataLength(msg), cap = len < SP_BODY_MAX ? len : SP_BODY_MAX;
	struct sp_cluster_item *it = malloc(sizeof(*it) + cap);
	size_t blen = 0;

	if (!it)
		return;
	memset(it, 0, sizeof(*it));
	if (sp_cluster_msg_js_answer(p->reply_prefix, natsMsg_GetSubject(msg),
				     (const uint8_t *)natsMsg_GetData(msg), len,
				     natsMsg_IsNoResponders(msg), &it->js, it->body, cap, &blen)) {
		free(it);       /* not ours */
		return;
	}
	it->kind = SP_CLUSTER_JS;
	it->len = (uint32_t)blen;
	if (sp_cluster_inbox_push(&p->inbox, it)) {
		sodium_memzero(it->body, blen);
		free(it);
	}
}

/* libnats's delivery thread: an answer on this port's reply subjects. */
static void on_reply_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	struct sp_cluster_port *p = closure;
	struct sp_cluster_item *it;
	const char *subj;
	uint64_t ticket;
	uint8_t status;

	(void)nc;
	(void)sub;
	if (!port_enter(p))
		goto out;
	subj = natsMsg_GetSubject(msg);
	if (subj && strlen(subj) > strlen(p->reply_prefix) &&
	    (subj[strlen(p->reply_prefix)] < '0' || subj[strlen(p->reply_prefix)] > '9')) {
		js_answer_msg(p, msg);
		goto out;
	}
	if (sp_cluster_msg_answer(p->reply_prefix, subj, (const uint8_t *)natsMsg_GetData(msg),
				  (size_t)natsMsg_GetDataLength(msg), natsMsg_IsNoResponders(msg),
				  &ticket, &status))
		goto out;       /* not ours: its sender (if any) times out */
	it = calloc(1, sizeof(*it));
	if (!it)
		goto out;
	it->kind = SP_CLUSTER_REPLY;
	it->value = ticket;
	it->status = status;
	if (sp_cluster_inbox_push(&p->inbox, it))
		free(it);
out:
	port_leave(p);
	natsMsg_Destroy(msg);
}

int sp_cluster_port_open(struct sp_cluster *c, unsigned index, uint64_t inbox_max,
			 struct sp_cluster_port **out)
{
	struct sp_cluster_port *p = calloc(1, sizeof(*p));
	char subj[SP_CLUSTER_SUBJECT_MAX];
	int ret;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->c = c;
	p->index = index;
	p->inbox.efd = -1;
	p->scratch = malloc(SP_CLUSTER_STORED_HEAD + SP_BODY_MAX);
	ret = p->scratch ? sp_cluster_inbox_init(&p->inbox, inbox_max) : -ENOMEM;
	if (ret) {
		sp_cluster_port_close(p);
		free(p);
		return ret;
	}
	snprintf(p->reply_prefix, sizeof(p->reply_prefix), SP_CLUSTER_SUBJECT_REPLY "%016" PRIx64 ".%u.",
		 c->node, index);
	snprintf(subj, sizeof(subj), "%s*", p->reply_prefix);
	if (natsConnection_Subscribe(&p->replies, c->nc, subj, on_reply_msg, p) != NATS_OK) {
		sp_cluster_port_close(p);
		free(p);
		return -EIO;
	}
	p->next = c->ports;
	c->ports = p;
	*out = p;
	return 0;
}

void sp_cluster_port_close(struct sp_cluster_port *p)
{
	if (!p)
		return;
	/* No callback is inside once busy is 0 after closed is set; any later
	 * one sees closed and leaves without touching the inbox. Waits for
	 * at most one callback's few instructions. */
	__atomic_store_n(&p->closed, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&p->busy, __ATOMIC_ACQUIRE))
		sched_yield();
	if (p->replies) {
		natsSubscription_Unsubscribe(p->replies);
		natsSubscription_Destroy(p->replies);
		p->replies = NULL;
	}
	sp_cluster_inbox_destroy(&p->inbox);
	free(p->scratch);
	p->scratch = NULL;
	/* The memory itself: at sp_cluster_stop (a late callback still reads
	 * closed). */
}

struct sp_cluster_inbox *sp_cluster_port_inbox(struct sp_cluster_port *p)
{
	return &p->inbox;
}

struct sp_cluster *sp_cluster_port_node(struct sp_cluster_port *p)
{
	return p->c;
}

int sp_cluster_port_subscribe(struct sp_cluster_port *p, const uint8_t token[SP_KEY_LEN],
			      void **sub)
{
	natsSubscription *s = NULL;
	char subj[SP_CLUSTER_SUBJECT_MAX];

	sp_cluster_msg_subject(token, subj);
	if (natsConnection_Subscribe(&s, p->c->nc, subj, on_device_msg, p) != NATS_OK)
		return -EIO;
	*sub = s;
	return 0;
}

void sp_cluster_port_unsubscribe(struct sp_cluster_port *p, void *sub)
{
	(void)p;
	if (!sub)
		return;
	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
}

int sp_cluster_port_deliver(struct sp_cluster_port *p, const uint8_t token[SP_KEY_LEN],
			    uint64_t ticket, const uint8_t *body, size_t len)
{
	char subj[SP_CLUSTER_SUBJECT_MAX], reply[64];

	if (!sp_cluster_up(p->c))
		return -ENOTCONN;
	if (len > SP_BODY_MAX)
		return -EMSGSIZE;
	sp_cluster_msg_subject(token, subj);
	snprintf(reply, sizeof(reply), "%s%" PRIu64, p->reply_prefix, ticket);
	/* Head and body in one buffer: libnats copies it once into its own. */
	sp_cluster_msg_deliver_head(p->scratch, p->c->node);
	memcpy(p->scratch + SP_CLUSTER_MSG_HEAD, body, len);
	return natsConnection_PublishRequest(p->c->nc, subj, reply, p->scratch,
					     (int)(SP_CLUSTER_MSG_HEAD + len)) == NATS_OK ? 0 : -EIO;
}

int sp_cluster_port_takeover(struct sp_cluster_port *p, const uint8_t token[SP_KEY_LEN],
			     uint64_t since_ms)
{
	char subj[SP_CLUSTER_SUBJECT_MAX];
	uint8_t d[SP_CLUSTER_TAKEOVER_LEN];

	if (!sp_cluster_up(p->c))
		return -ENOTCONN;
	sp_cluster_msg_subject(token, subj);
	sp_cluster_msg_takeover(d, p->c->node, since_ms);
	return natsConnection_Publish(p->c->nc, subj, d, sizeof(d)) == NATS_OK ? 0 : -EIO;
}

int sp_cluster_port_reply(struct sp_cluster_port *p, const char *reply, uint8_t status)
{
	uint8_t d[SP_CLUSTER_REPLY_LEN];

	if (!reply[0])
		return 0;
	sp_cluster_msg_reply(d, status);
	return natsConnection_Publish(p->c->nc, reply, d, sizeof(d)) == NATS_OK ? 0 : -EIO;
}

/* --- mailboxes in JetStream ---------------------------------------------- */

unsigned sp_cluster_partition(const struct sp_cluster *c, const uint8_t token[SP_KEY_LEN])
{
	return token[0] % c->partitions;
}

/* "sp.m.P.TOKEN" (out: SP_CLUSTER_SUBJECT_MAX). */
static void mailbox_subject(const struct sp_cluster *c, const uint8_t token[SP_KEY_LEN],
			    char out[SP_CLUSTER_SUBJECT_MAX])
{
	int n = snprintf(out, SP_CLUSTER_SUBJECT_MAX, SP_CLUSTER_SUBJECT_MAILBOX "%u.",
			 sp_cluster_partition(c, token));

	sodium_bin2hex(out + n, SP_CLUSTER_SUBJECT_MAX - (size_t)n, token, SP_KEY_LEN);
}

void sp_cluster_msg_id(const struct sp_cluster *c, const uint8_t sender[SP_KEY_LEN],
		       const uint8_t recipient[SP_KEY_LEN], uint64_t client_id,
		       char hex[SP_CLUSTER_MSGID_HEX_LEN + 1])
{
	crypto_generichash_state st;
	uint8_t id[SP_CLUSTER_MSGID_LEN], cid[8];

	for (int i = 7; i >= 0; i--, client_id >>= 8)
		cid[i] = (uint8_t)client_id;
	crypto_generichash_init(&st, c->subject_key, crypto_generichash_KEYBYTES, sizeof(id));
	crypto_generichash_update(&st, (const uint8_t *)"msgid", 5);
	crypto_generichash_update(&st, sender, SP_KEY_LEN);
	crypto_generichash_update(&st, recipient, SP_KEY_LEN);
	crypto_generichash_update(&st, cid, sizeof(cid));
	crypto_generichash_final(&st, id, sizeof(id));
	sodium_bin2hex(hex, SP_CLUSTER_MSGID_HEX_LEN + 1, id, sizeof(id));
	sodium_memzero(&st, sizeof(st));
}

int sp_cluster_port_js_store(struct sp_cluster_port *p, const uint8_t token[SP_KEY_LEN],
			     const char *msgid, uint64_t ticket, const uint8_t *body, size_t len)
{
	char subj[SP_CLUSTER_SUBJECT_MAX], reply[64];
	natsMsg *m = NULL;
	natsStatus s;

	if (!sp_cluster_up(p->c))
		return -ENOTCONN;
	mailbox_subject(p->c, token, subj);
	snprintf(reply, sizeof(reply), "%s%c%" PRIu64, p->reply_prefix, SP_CLUSTER_JS_PUBACK, ticket);
	s = natsMsg_Create(&m, subj, reply, (const char *)body, (int)len);
	/* The stream's dedup key: the same Send retried (or sent to another
	 * node) is stored once within the window. None for anonymous sends. */
	if (s == NATS_OK && msgid)
		s = natsMsgHeader_Set(m, "Nats-Msg-Id", msgid);
	if (s == NATS_OK)
		s = natsConnection_PublishMsg(p->c->nc, m);
	natsMsg_Destroy(m);
	return s == NATS_OK ? 0 : -EIO;
}

int sp_cluster_port_js_get(struct sp_cluster_port *p, const uint8_t token[SP_KEY_LEN],
			   uint64_t conn, uint64_t ticket, uint64_t from)
{
	char subj[SP_CLUSTER_SUBJECT_MAX], api[64], reply[64], req[160];
	int n;

	if (!sp_cluster_up(p->c))
		return -ENOTCONN;
	mailbox_subject(p->c, token, subj);
	snprintf(api, sizeof(api), "$JS.API.STREAM.MSG.GET." SP_CLUSTER_STREAM_PREFIX "%u",
		 sp_cluster_partition(p->c, token));
	snprintf(reply, sizeof(reply), "%s%c%" PRIu64 "-%" PRIu64, p->reply_prefix, SP_CLUSTER_JS_GET,
		 conn, ticket);
	/* The stream's leader answers (a replica's direct get could lag the
	 * quorum): the first message of the device's subject from seq on. */
	n = snprintf(req, sizeof(req), "{\"seq\":%" PRIu64 ",\"next_by_subj\":\"%s\"}", from, subj);
	return natsConnection_PublishRequest(p->c->nc, api, reply, req, n) == NATS_OK ? 0 : -EIO;
}

int sp_cluster_port_js_delete(struct sp_cluster_port *p, const uint8_t token[SP_KEY_LEN],
			      uint64_t conn, uint64_t seq)
{
	char api[64], reply[64], req[64];
	int n;

	if (!sp_cluster_up(p->c))
		return -ENOTCONN;
	snprintf(api, sizeof(api), "$JS.API.STREAM.MSG.DELETE." SP_CLUSTER_STREAM_PREFIX "%u",
		 sp_cluster_partition(p->c, token));
	snprintf(reply, sizeof(reply), "%s%c%" PRIu64 "-%" PRIu64, p->reply_prefix,
		 SP_CLUSTER_JS_DELETE, conn, seq);
	/* no_erase: a delete, not a secure erase (the store's blocks are
	 * compacted away; docs/SECURITY.md says what a disk keeps). */
	n = snprintf(req, sizeof(req), "{\"seq\":%" PRIu64 ",\"no_erase\":true}", seq);
	return natsConnection_PublishRequest(p->c->nc, api, reply, req, n) == NATS_OK ? 0 : -EIO;
}

int sp_cluster_port_js_purge(struct sp_cluster_port *p, const uint8_t token[SP_KEY_LEN],
			     uint64_t id, uint64_t n)
{
	char subj[SP_CLUSTER_SUBJECT_MAX], api[64], reply[80], req[160];
	int len;

	if (!sp_cluster_up(p->c))
		return -ENOTCONN;
	mailbox_subject(p->c, token, subj);
	snprintf(api, sizeof(api), "$JS.API.STREAM.PURGE." SP_CLUSTER_STREAM_PREFIX "%u",
		 sp_cluster_partition(p->c, token));
	snprintf(reply, sizeof(reply), "%s%c%" PRIu64 "-%" PRIu64, p->reply_prefix,
		 SP_CLUSTER_JS_PURGE, id, n);
	/* Through the stream's leader, replicated like a publish: answered
	 * once a quorum applied it. */
	len = snprintf(req, sizeof(req), "{\"filter\":\"%s\"}", subj);
	return natsConnection_PublishRequest(p->c->nc, api, reply, req, len) == NATS_OK ? 0 : -EIO;
}

int sp_cluster_port_stored(struct sp_cluster_port *p, const uint8_t token[SP_KEY_LEN],
			   uint64_t seq, const uint8_t *body, size_t len)
{
	char subj[SP_CLUSTER_SUBJECT_MAX];

	if (!sp_cluster_up(p->c))
		return -ENOTCONN;
	if (len > SP_BODY_MAX)
		return -EMSGSIZE;
	sp_cluster_msg_subject(token, subj);
	sp_cluster_msg_stored_head(p->scratch, p->c->node, seq);
	memcpy(p->scratch + SP_CLUSTER_STORED_HEAD, body, len);
	return natsConnection_Publish(p->c->nc, subj, p->scratch,
				      (int)(SP_CLUSTER_STORED_HEAD + len)) == NATS_OK ? 0 : -EIO;
}
