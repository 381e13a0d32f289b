/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sp_metrics.c: slot allocation and the Prometheus text rendering.
 *
 * Nothing here runs on a shard's loop: the shards only touch their own slot
 * through the inline helpers in sp_metrics.h. Rendering sums the slots with
 * relaxed atomic loads, so a scrape costs the shards nothing but the cache
 * misses the reader causes on their lines.
 */
#include "sp_metrics.h"

#include <dirent.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifndef SP_VERSION
#define SP_VERSION "unknown"
#endif
/* `git describe` of the tree at configure time; "unknown" outside git. */
#ifndef SP_REVISION
#define SP_REVISION "unknown"
#endif

struct sp_metrics {
	struct sp_metrics_shard *slots; /* nshards shard slots, then the aux slot */
	unsigned nshards;
	int ready;                      /* atomic */
	int cluster_down;               /* atomic; 0 on a single node */
	uint64_t mailbox_base_entries;  /* atomic */
	uint64_t mailbox_base_bytes;    /* atomic */
	double start_time;              /* seconds since the epoch, set once */
	pthread_mutex_t source_lock;    /* guards fn, ctx, and holds while fn runs */
	sp_metrics_rocksdb_fn rocksdb_fn;
	void *rocksdb_ctx;
	sp_metrics_cluster_fn cluster_fn;  /* under source_lock, like rocksdb_fn */
	void *cluster_ctx;
};

static const char *const pattern_names[SP_METRICS_PATTERN_COUNT] = { "ik", "xx", "nk" };
static const char *const outcome_names[SP_METRICS_OUTCOME_COUNT] = {
	"ok", "failed", "timeout", "rate_limited",
};
static const char *const path_names[SP_METRICS_PATH_COUNT] = { "live", "mailbox" };
static const char *const transport_names[SP_METRICS_TRANSPORT_COUNT] = { "tcp", "ws" };
static const char *const ws_upgrade_names[SP_METRICS_WS_UPGRADE_COUNT] = {
	"ok", "bad_request", "not_found", "bad_version", "bad_protocol", "forbidden_origin",
	"too_large",
};
static const char *const close_names[SP_METRICS_CLOSE_COUNT] = {
#define SP_CLOSE(id, label, level, message, goaway) [SP_METRICS_CLOSE_##id] = label,
#define SP_REFUSE(id, label) [SP_METRICS_CLOSE_##id] = label,
#include "sp_reasons.def"
};

const char *sp_metrics_pattern_name(enum sp_metrics_pattern p)
{
	return (unsigned)p < SP_METRICS_PATTERN_COUNT ? pattern_names[p] : NULL;
}

const char *sp_metrics_outcome_name(enum sp_metrics_outcome o)
{
	return (unsigned)o < SP_METRICS_OUTCOME_COUNT ? outcome_names[o] : NULL;
}

const char *sp_metrics_path_name(enum sp_metrics_path p)
{
	return (unsigned)p < SP_METRICS_PATH_COUNT ? path_names[p] : NULL;
}

const char *sp_metrics_close_name(enum sp_metrics_close c)
{
	return (unsigned)c < SP_METRICS_CLOSE_COUNT ? close_names[c] : NULL;
}

const char *sp_metrics_refused_name(enum sp_status status)
{
	if ((unsigned)status - SP_METRICS_REFUSED_FIRST >= SP_METRICS_REFUSED_COUNT &&
	    (unsigned)status - SP_METRICS_REFUSED_ANON_FIRST >= SP_METRICS_REFUSED_ANON_COUNT)
		return NULL;
	switch (status) {
#define SP_STATUS(id, value, name, label) case SP_STATUS_##id: return label[0] ? label : NULL;
#include "sp_reasons.def"
	}
	return NULL;
}

int sp_metrics_parse_rocksdb_stall(const char *dbstats, double *seconds)
{
	static const char key[] = "Cumulative stall: ";
	const char *p = dbstats ? strstr(dbstats, key) : NULL;
	unsigned h, m;
	double sec;
	int used = 0;

	if (!p)
		return -EINVAL;
	p += sizeof(key) - 1;
	if (sscanf(p, "%u:%u:%lf H:M:S%n", &h, &m, &sec, &used) != 3 || used == 0 || m >= 60 ||
	    !(sec >= 0 && sec < 60))
		return -EINVAL;
	*seconds = (double)h * 3600 + (double)m * 60 + sec;
	return 0;
}

int sp_metrics_create(struct sp_metrics **out, unsigned nshards)
{
	struct sp_metrics *m;
	struct timespec now;
	size_t size;

	*out = NULL;
	if (nshards == 0 || nshards > SP_METRICS_SHARDS_MAX)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	size = (size_t)(nshards + 1) * sizeof(struct sp_metrics_shard);
	m->slots = aligned_alloc(_Alignof(struct sp_metrics_shard), size);
	if (!m->slots) {
		free(m);
		return -ENOMEM;
	}
	memset(m->slots, 0, size);
	m->nshards = nshards;
	clock_gettime(CLOCK_REALTIME, &now);
	m->start_time = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
	pthread_mutex_init(&m->source_lock, NULL);
	*out = m;
	return 0;
}

void sp_metrics_destroy(struct sp_metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->source_lock);
	free(m->slots);
	free(m);
}

unsigned sp_metrics_nshards(const struct sp_metrics *m)
{
	return m->nshards;
}

struct sp_metrics_shard *sp_metrics_shard(struct sp_metrics *m, unsigned idx)
{
	return idx < m->nshards ? &m->slots[idx] : NULL;
}

struct sp_metrics_shard *sp_metrics_aux(struct sp_metrics *m)
{
	return &m->slots[m->nshards];
}

void sp_metrics_set_ready(struct sp_metrics *m, bool ready)
{
	__atomic_store_n(&m->ready, ready ? 1 : 0, __ATOMIC_RELEASE);
}

bool sp_metrics_ready(const struct sp_metrics *m)
{
	return __atomic_load_n(&m->ready, __ATOMIC_ACQUIRE) != 0 &&
	       __atomic_load_n(&m->cluster_down, __ATOMIC_ACQUIRE) == 0;
}

void sp_metrics_set_cluster_up(struct sp_metrics *m, bool up)
{
	__atomic_store_n(&m->cluster_down, up ? 0 : 1, __ATOMIC_RELEASE);
}

void sp_metrics_set_cluster_source(struct sp_metrics *m, sp_metrics_cluster_fn fn, void *ctx)
{
	pthread_mutex_lock(&m->source_lock);
	m->cluster_fn = fn;
	m->cluster_ctx = fn ? ctx : NULL;
	pthread_mutex_unlock(&m->source_lock);
}

void sp_metrics_set_rocksdb_source(struct sp_metrics *m, sp_metrics_rocksdb_fn fn, void *ctx)
{
	pthread_mutex_lock(&m->source_lock);
	m->rocksdb_fn = fn;
	m->rocksdb_ctx = fn ? ctx : NULL;
	pthread_mutex_unlock(&m->source_lock);
}

void sp_metrics_set_mailbox_base(struct sp_metrics *m, uint64_t entries, uint64_t bytes)
{
	__atomic_store_n(&m->mailbox_base_entries, entries, __ATOMIC_RELAXED);
	__atomic_store_n(&m->mailbox_base_bytes, bytes, __ATOMIC_RELAXED);
}

void sp_metrics_buf_free(struct sp_metrics_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

/* --- rendering --------------------------------------------------------------- */

/* Appends formatted text; sticky failure through r->err so the render code reads straight. */
struct writer {
	struct sp_metrics_buf *b;
	int err;
};

__attribute__((format(printf, 2, 3))) static void put(struct writer *w, const char *fmt, ...)
{
	va_list ap;
	size_t room;
	int n;

	if (w->err)
		return;
	for (;;) {
		room = w->b->cap - w->b->len;
		va_start(ap, fmt);
		n = vsnprintf(w->b->data ? w->b->data + w->b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			w->err = -EINVAL;
			return;
		}
		if ((size_t)n < room) {
			w->b->len += (size_t)n;
			return;
		}
		size_t cap = w->b->cap ? w->b->cap : 4096;
		while (cap - w->b->len <= (size_t)n)
			cap *= 2;
		char *p = realloc(w->b->data, cap);
		if (!p) {
			w->err = -ENOMEM;
			return;
		}
		w->b->data = p;
		w->b->cap = cap;
	}
}

static void family(struct writer *w, const char *name, const char *type, const char *help)
{
	put(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static uint64_t load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static int64_t load_signed(const int64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Sum of one counter over every slot (shards and aux); off is its byte offset in the slot. */
static uint64_t sum_counter(const struct sp_metrics *m, size_t off)
{
	uint64_t v = 0;

	for (unsigned i = 0; i <= m->nshards; i++)
		v += load((const uint64_t *)((const char *)&m->slots[i] + off));
	return v;
}

static int64_t sum_gauge(const struct sp_metrics *m, size_t off)
{
	uint64_t v = 0;

	for (unsigned i = 0; i <= m->nshards; i++)
		v += (uint64_t)load_signed((const int64_t *)((const char *)&m->slots[i] + off));
	return (int64_t)v;
}

#define SUM(m, field) sum_counter((m), offsetof(struct sp_metrics_shard, field))
#define SUM_GAUGE(m, field) sum_gauge((m), offsetof(struct sp_metrics_shard, field))

/* A snapshot of one histogram: buckets read once, so +Inf and _count agree. */
struct hist_snap {
	uint64_t bucket[SP_METRICS_HIST_MAX + 1];
	uint64_t sum;
};

static void snap_add(struct hist_snap *s, const struct sp_metrics_hist *h, unsigned nbounds)
{
	for (unsigned i = 0; i <= nbounds; i++)
		s->bucket[i] += load(&h->bucket[i]);
	s->sum += load(&h->sum);
}

/*
 * labels: "" or `name="value",` (trailing comma) prepended inside the braces.
 * scale: the unit of sum in the rendered unit (1e-9 for nanoseconds).
 */
static void put_hist(struct writer *w, const char *name, const char *labels,
		     const struct hist_snap *s, const char *const *le, unsigned nbounds,
		     int ns_sum)
{
	uint64_t cum = 0;
	size_t llen = strlen(labels);

	for (unsigned i = 0; i < nbounds; i++) {
		cum += s->bucket[i];
		put(w, "%s_bucket{%sle=\"%s\"} %" PRIu64 "\n", name, labels, le[i], cum);
	}
	cum += s->bucket[nbounds];
	put(w, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, cum);
	/* Exact decimal for nanoseconds: no float rounding on the way to seconds. */
	if (llen)
		put(w, "%s_sum{%.*s} ", name, (int)(llen - 1), labels);
	else
		put(w, "%s_sum ", name);
	if (ns_sum)
		put(w, "%" PRIu64 ".%09" PRIu64 "\n", s->sum / 1000000000u, s->sum % 1000000000u);
	else
		put(w, "%" PRIu64 "\n", s->sum);
	if (llen)
		put(w, "%s_count{%.*s} %" PRIu64 "\n", name, (int)(llen - 1), labels, cum);
	else
		put(w, "%s_count %" PRIu64 "\n", name, cum);
}

/* The connection families again, by transport. New families rather than a
 * label added to the old ones: a label changes every series' identity, and
 * the rules, dashboards and scripts that name the old series keep working. */
static void render_transports(struct writer *w, const struct sp_metrics *m)
{
	unsigned t, r, p, o;

	family(w, "sealpost_transport_connections_open", "gauge",
	       "Device connections currently open, by transport (tcp, ws).");
	for (t = 0; t < SP_METRICS_TRANSPORT_COUNT; t++)
		put(w, "sealpost_transport_connections_open{transport=\"%s\"} %" PRId64 "\n",
		    transport_names[t], SUM_GAUGE(m, tr_open[t]));
	family(w, "sealpost_transport_connections_accepted_total", "counter",
	       "Device connections accepted, by transport.");
	for (t = 0; t < SP_METRICS_TRANSPORT_COUNT; t++)
		put(w, "sealpost_transport_connections_accepted_total{transport=\"%s\"} %" PRIu64
		    "\n", transport_names[t], SUM(m, tr_accepted[t]));
	family(w, "sealpost_transport_connections_closed_total", "counter",
	       "Device connections closed, by transport and reason.");
	for (t = 0; t < SP_METRICS_TRANSPORT_COUNT; t++)
		for (r = 0; r < SP_METRICS_CLOSE_COUNT; r++)
			put(w, "sealpost_transport_connections_closed_total{transport=\"%s\","
			    "reason=\"%s\"} %" PRIu64 "\n", transport_names[t], close_names[r],
			    SUM(m, tr_closed[t][r]));
	family(w, "sealpost_transport_handshakes_total", "counter",
	       "Noise handshakes ended, by transport, pattern and outcome.");
	for (t = 0; t < SP_METRICS_TRANSPORT_COUNT; t++)
		for (p = 0; p < SP_METRICS_PATTERN_COUNT; p++)
			for (o = 0; o < SP_METRICS_OUTCOME_COUNT; o++)
				put(w, "sealpost_transport_handshakes_total{transport=\"%s\","
				    "pattern=\"%s\",outcome=\"%s\"} %" PRIu64 "\n",
				    transport_names[t], pattern_names[p], outcome_names[o],
				    SUM(m, tr_handshakes[t][p][o]));
	family(w, "sealpost_ws_upgrades_total", "counter",
	       "WebSocket upgrade requests answered, by outcome (ok = 101).");
	for (o = 0; o < SP_METRICS_WS_UPGRADE_COUNT; o++)
		put(w, "sealpost_ws_upgrades_total{outcome=\"%s\"} %" PRIu64 "\n",
		    ws_upgrade_names[o], SUM(m, ws_upgrades[o]));
	family(w, "sealpost_ws_closes_sent_total", "counter",
	       "WebSocket close frames sent (the close handshake begun or answered).");
	put(w, "sealpost_ws_closes_sent_total %" PRIu64 "\n", SUM(m, ws_closes_sent));
}

static void render_memory(struct writer *w, const struct sp_metrics *m)
{
	static const char *const kinds[] = SP_METRICS_MEM_NAMES;

	_Static_assert(sizeof(kinds) / sizeof(kinds[0]) == SP_METRICS_MEM_COUNT, "names");
	family(w, "sealpost_memory_bytes", "gauge",
	       "Memory held for device connections, by kind (partial + output is what "
	       "mem-budget counts; slab is the locked memory of session secrets).");
	for (unsigned k = 0; k < SP_METRICS_MEM_COUNT; k++)
		put(w, "sealpost_memory_bytes{kind=\"%s\"} %" PRId64 "\n", kinds[k],
		    SUM_GAUGE(m, mem_bytes[k]));
	family(w, "sealpost_memory_budget_bytes", "gauge",
	       "The mem-budget that partial + output are held under (beyond it the largest "
	       "holders are closed, reason mem_budget).");
	put(w, "sealpost_memory_budget_bytes %" PRId64 "\n", SUM_GAUGE(m, mem_budget));
	family(w, "sealpost_slab_lock_failures_total", "counter",
	       "Chunks of the session-secrets slab the kernel would not lock (RLIMIT_MEMLOCK, "
	       "LimitMEMLOCK=): used unlocked, still out of core dumps and zeroed on free.");
	put(w, "sealpost_slab_lock_failures_total %" PRIu64 "\n", SUM(m, slab_lock_failures));
}

static void render_connections(struct writer *w, const struct sp_metrics *m)
{
	family(w, "sealpost_connections_open", "gauge", "Device connections currently open.");
	put(w, "sealpost_connections_open %" PRId64 "\n", SUM_GAUGE(m, connections_open));

	family(w, "sealpost_connections_accepted_total", "counter",
	       "Device connections accepted.");
	put(w, "sealpost_connections_accepted_total %" PRIu64 "\n",
	    SUM(m, connections_accepted));

	family(w, "sealpost_connections_closed_total", "counter",
	       "Device connections closed, by reason.");
	for (unsigned r = 0; r < SP_METRICS_CLOSE_COUNT; r++)
		put(w, "sealpost_connections_closed_total{reason=\"%s\"} %" PRIu64 "\n",
		    close_names[r], SUM(m, connections_closed[r]));

	family(w, "sealpost_handshakes_total", "counter",
	       "Noise handshakes ended, by pattern and outcome.");
	for (unsigned p = 0; p < SP_METRICS_PATTERN_COUNT; p++)
		for (unsigned o = 0; o < SP_METRICS_OUTCOME_COUNT; o++)
			put(w, "sealpost_handshakes_total{pattern=\"%s\",outcome=\"%s\"} %" PRIu64
			    "\n", pattern_names[p], outcome_names[o], SUM(m, handshakes[p][o]));
	family(w, "sealpost_handshakes_cipher_total", "counter",
	       "Successful Noise handshakes, by the transport cipher negotiated.");
	put(w, "sealpost_handshakes_cipher_total{cipher=\"chachapoly\"} %" PRIu64 "\n",
	    SUM(m, handshakes_cipher[0]));
	put(w, "sealpost_handshakes_cipher_total{cipher=\"aesgcm\"} %" PRIu64 "\n",
	    SUM(m, handshakes_cipher[1]));
	render_transports(w, m);
}

static void render_envelopes(struct writer *w, const struct sp_metrics *m)
{
	family(w, "sealpost_envelopes_accepted_total", "counter",
	       "Envelopes the broker took responsibility for (SendResult DELIVERED or ACCEPTED).");
	put(w, "sealpost_envelopes_accepted_total %" PRIu64 "\n", SUM(m, envelopes_accepted));

	family(w, "sealpost_envelopes_delivered_total", "counter",
	       "Envelopes handed to their recipient's connection, by path.");
	for (unsigned p = 0; p < SP_METRICS_PATH_COUNT; p++)
		put(w, "sealpost_envelopes_delivered_total{path=\"%s\"} %" PRIu64 "\n",
		    path_names[p], SUM(m, envelopes_delivered[p]));

	family(w, "sealpost_envelopes_refused_total", "counter",
	       "Envelopes refused with an error SendResult, by status.");
	for (unsigned r = 0; r < SP_METRICS_REFUSED_COUNT; r++)
		put(w, "sealpost_envelopes_refused_total{reason=\"%s\"} %" PRIu64 "\n",
		    sp_metrics_refused_name((enum sp_status)(r + SP_METRICS_REFUSED_FIRST)),
		    SUM(m, envelopes_refused[r]));
	for (unsigned r = 0; r < SP_METRICS_REFUSED_ANON_COUNT; r++) {
		const char *name = sp_metrics_refused_name(
			(enum sp_status)(r + SP_METRICS_REFUSED_ANON_FIRST));

		if (name)
			put(w, "sealpost_envelopes_refused_total{reason=\"%s\"} %" PRIu64 "\n",
			    name, SUM(m, envelopes_refused_anon[r]));
	}

	family(w, "sealpost_bytes_received_total", "counter",
	       "Bytes received from device connections.");
	put(w, "sealpost_bytes_received_total %" PRIu64 "\n", SUM(m, bytes_received));
	family(w, "sealpost_bytes_sent_total", "counter", "Bytes sent to device connections.");
	put(w, "sealpost_bytes_sent_total %" PRIu64 "\n", SUM(m, bytes_sent));

	family(w, "sealpost_mailbox_entries", "gauge", "Envelopes stored in mailboxes.");
	put(w, "sealpost_mailbox_entries %" PRId64 "\n",
	    (int64_t)(__atomic_load_n(&m->mailbox_base_entries, __ATOMIC_RELAXED) +
		      (uint64_t)SUM_GAUGE(m, mailbox_entries)));
	family(w, "sealpost_mailbox_bytes", "gauge", "Envelope bytes stored in mailboxes.");
	put(w, "sealpost_mailbox_bytes %" PRId64 "\n",
	    (int64_t)(__atomic_load_n(&m->mailbox_base_bytes, __ATOMIC_RELAXED) +
		      (uint64_t)SUM_GAUGE(m, mailbox_bytes)));

	family(w, "sealpost_acks_total", "counter", "Mailbox sequence numbers acknowledged.");
	put(w, "sealpost_acks_total %" PRIu64 "\n", SUM(m, acks));
	family(w, "sealpost_expired_total", "counter",
	       "Mailbox entries removed because their time to live ran out.");
	put(w, "sealpost_expired_total %" PRIu64 "\n", SUM(m, expired));
	family(w, "sealpost_store_full_refused_total", "counter",
	       "Durable Sends refused because the store reached store-max-bytes or store-min-free.");
	put(w, "sealpost_store_full_refused_total %" PRIu64 "\n", SUM(m, store_full));
	family(w, "sealpost_mailbox_share_refused_total", "counter",
	       "Durable Sends refused because the sender holds its mailbox-sender-share of the "
	       "recipient's mailbox.");
	put(w, "sealpost_mailbox_share_refused_total %" PRIu64 "\n", SUM(m, share_full));
	family(w, "sealpost_store_scrubs_total", "counter",
	       "Store scrubs finished: memtables flushed and every column family compacted, so "
	       "removed envelopes leave the disk.");
	put(w, "sealpost_store_scrubs_total %" PRIu64 "\n", SUM(m, scrubs));
	family(w, "sealpost_expiry_sweep_steps_total", "counter",
	       "Steps of the expiry sweep (one per tick while anything is due).");
	put(w, "sealpost_expiry_sweep_steps_total %" PRIu64 "\n", SUM(m, sweep_steps));
	family(w, "sealpost_expiry_sweep_partial_total", "counter",
	       "Expiry sweep steps that stopped at their time or record budget.");
	put(w, "sealpost_expiry_sweep_partial_total %" PRIu64 "\n", SUM(m, sweep_partial));
	family(w, "sealpost_expiry_sweep_resumed_total", "counter",
	       "Expiry sweep steps that resumed where the previous partial step stopped.");
	put(w, "sealpost_expiry_sweep_resumed_total %" PRIu64 "\n", SUM(m, sweep_resumed));
}

static void render_push(struct writer *w, const struct sp_metrics *m)
{
	static const char *const outcomes[] = SP_METRICS_PUSH_NAMES;
	static const char *const regs[SP_METRICS_PUSH_REG_COUNT] = {
		"accepted", "removed", "bad_key", "bad_auth", "bad_endpoint", "not_https",
		"too_large", "host_not_allowed", "disabled", "full", "internal",
	};

	_Static_assert(sizeof(outcomes) / sizeof(outcomes[0]) == SP_METRICS_PUSH_COUNT, "names");
	family(w, "sealpost_push_wakeups_total", "counter",
	       "Web Push wake-ups, by outcome (retried counts attempts, the others wake-ups).");
	for (unsigned o = 0; o < SP_METRICS_PUSH_COUNT; o++)
		put(w, "sealpost_push_wakeups_total{outcome=\"%s\"} %" PRIu64 "\n", outcomes[o],
		    SUM(m, push_wakeups[o]));
	family(w, "sealpost_push_timeouts_total", "counter",
	       "Requests to push services that timed out (retried or failed).");
	put(w, "sealpost_push_timeouts_total %" PRIu64 "\n", SUM(m, push_timeouts));
	family(w, "sealpost_push_registrations_total", "counter",
	       "PushRegister and PushRemove frames, by result.");
	for (unsigned r = 0; r < SP_METRICS_PUSH_REG_COUNT; r++)
		put(w, "sealpost_push_registrations_total{result=\"%s\"} %" PRIu64 "\n", regs[r],
		    SUM(m, push_registrations[r]));
	family(w, "sealpost_push_subscriptions", "gauge",
	       "Push subscriptions held (devices that can be woken).");
	put(w, "sealpost_push_subscriptions %" PRId64 "\n", SUM_GAUGE(m, push_subscriptions));
}

static void render_enrol(struct writer *w, const struct sp_metrics *m)
{
	static const char *const outcomes[] = SP_METRICS_ENROL_NAMES;

	_Static_assert(sizeof(outcomes) / sizeof(outcomes[0]) == SP_METRICS_ENROL_COUNT, "names");
	family(w, "sealpost_enrol_total", "counter",
	       "Registration checks of devices' connections (--registration=token), by outcome.");
	for (unsigned o = 0; o < SP_METRICS_ENROL_COUNT; o++)
		put(w, "sealpost_enrol_total{outcome=\"%s\"} %" PRIu64 "\n", outcomes[o],
		    SUM(m, enrol_outcomes[o]));
}

static void render_histograms(struct writer *w, const struct sp_metrics *m)
{
	static const char *const hs_le[] = SP_METRICS_HANDSHAKE_LE;
	static const char *const dl_le[] = SP_METRICS_DELIVERY_LE;
	static const char *const lb_le[] = SP_METRICS_BATCH_LE;
	static const char *const sc_le[] = SP_METRICS_STORE_LE;
	static const char *const sc_ops[] = SP_METRICS_STORE_OP_NAMES;
	struct hist_snap hs = { 0 }, dl[SP_METRICS_PATH_COUNT] = { 0 };
	struct hist_snap sc[SP_METRICS_STORE_OP_COUNT] = { 0 };
	char labels[32];

	_Static_assert(sizeof(hs_le) / sizeof(hs_le[0]) == SP_METRICS_HANDSHAKE_NBUCKETS, "le");
	_Static_assert(sizeof(dl_le) / sizeof(dl_le[0]) == SP_METRICS_DELIVERY_NBUCKETS, "le");
	_Static_assert(sizeof(lb_le) / sizeof(lb_le[0]) == SP_METRICS_BATCH_NBUCKETS, "le");
	_Static_assert(sizeof(sc_le) / sizeof(sc_le[0]) == SP_METRICS_STORE_NBUCKETS, "le");
	_Static_assert(sizeof(sc_ops) / sizeof(sc_ops[0]) == SP_METRICS_STORE_OP_COUNT, "names");

	for (unsigned i = 0; i <= m->nshards; i++) {
		snap_add(&hs, &m->slots[i].handshake_duration, SP_METRICS_HANDSHAKE_NBUCKETS);
		for (unsigned p = 0; p < SP_METRICS_PATH_COUNT; p++)
			snap_add(&dl[p], &m->slots[i].delivery_latency[p],
				 SP_METRICS_DELIVERY_NBUCKETS);
		for (unsigned o = 0; o < SP_METRICS_STORE_OP_COUNT; o++)
			snap_add(&sc[o], &m->slots[i].store_call[o], SP_METRICS_STORE_NBUCKETS);
	}
	family(w, "sealpost_handshake_duration_seconds", "histogram",
	       "Time from accept to a completed handshake (successful ones).");
	put_hist(w, "sealpost_handshake_duration_seconds", "", &hs, hs_le,
		 SP_METRICS_HANDSHAKE_NBUCKETS, 1);
	family(w, "sealpost_delivery_latency_seconds", "histogram",
	       "Time from an envelope's acceptance to its delivery to the recipient, by path.");
	for (unsigned p = 0; p < SP_METRICS_PATH_COUNT; p++) {
		snprintf(labels, sizeof(labels), "path=\"%s\",", path_names[p]);
		put_hist(w, "sealpost_delivery_latency_seconds", labels, &dl[p], dl_le,
			 SP_METRICS_DELIVERY_NBUCKETS, 1);
	}

	family(w, "sealpost_store_call_seconds", "histogram",
	       "Time the event-loop thread spent in one synchronous store call, by operation.");
	for (unsigned o = 0; o < SP_METRICS_STORE_OP_COUNT; o++) {
		snprintf(labels, sizeof(labels), "op=\"%s\",", sc_ops[o]);
		put_hist(w, "sealpost_store_call_seconds", labels, &sc[o], sc_le,
			 SP_METRICS_STORE_NBUCKETS, 1);
	}

	/* Per shard: where devices run (each on its key's home shard). */
	family(w, "sealpost_shard_devices_online", "gauge",
	       "Devices with a routed connection, by the shard that runs it.");
	for (unsigned i = 0; i < m->nshards; i++)
		put(w, "sealpost_shard_devices_online{shard=\"%u\"} %" PRIu64 "\n", i,
		    load(&m->slots[i].devices_routed));
	/* Per shard: the aux slot runs no event loop, so it has no iterations. */
	family(w, "sealpost_loop_iterations_total", "counter",
	       "Event-loop iterations, by shard.");
	for (unsigned i = 0; i < m->nshards; i++)
		put(w, "sealpost_loop_iterations_total{shard=\"%u\"} %" PRIu64 "\n", i,
		    load(&m->slots[i].loop_iterations));
	family(w, "sealpost_loop_batch_size", "histogram",
	       "Completions reaped per event-loop iteration, by shard.");
	for (unsigned i = 0; i < m->nshards; i++) {
		struct hist_snap lb = { 0 };

		snap_add(&lb, &m->slots[i].loop_batch, SP_METRICS_BATCH_NBUCKETS);
		snprintf(labels, sizeof(labels), "shard=\"%u\",", i);
		put_hist(w, "sealpost_loop_batch_size", labels, &lb, lb_le,
			 SP_METRICS_BATCH_NBUCKETS, 0);
	}
}

static void render_rocksdb(struct writer *w, struct sp_metrics *m)
{
	struct sp_metrics_rocksdb r = { 0 };
	int rc = -ENOENT;

	/* Held while the callback runs: see sp_metrics_set_rocksdb_source. */
	pthread_mutex_lock(&m->source_lock);
	if (m->rocksdb_fn)
		rc = m->rocksdb_fn(m->rocksdb_ctx, &r);
	pthread_mutex_unlock(&m->source_lock);
	if (rc < 0)
		return;
	family(w, "sealpost_rocksdb_write_stall_seconds_total", "counter",
	       "Time RocksDB stalled or slowed writes.");
	put(w, "sealpost_rocksdb_write_stall_seconds_total %.9f\n", r.write_stall_seconds);
	family(w, "sealpost_rocksdb_sst_bytes", "gauge", "Size of all RocksDB SST files.");
	put(w, "sealpost_rocksdb_sst_bytes %" PRIu64 "\n", r.sst_bytes);
	family(w, "sealpost_rocksdb_pending_compaction_bytes", "gauge",
	       "RocksDB's estimate of bytes compaction still has to rewrite.");
	put(w, "sealpost_rocksdb_pending_compaction_bytes %" PRIu64 "\n",
	    r.pending_compaction_bytes);
}

static void render_cluster(struct writer *w, struct sp_metrics *m)
{
	struct sp_metrics_cluster c = { 0 };
	int rc = -ENOENT;

	pthread_mutex_lock(&m->source_lock);
	if (m->cluster_fn)
		rc = m->cluster_fn(m->cluster_ctx, &c);
	pthread_mutex_unlock(&m->source_lock);
	if (rc < 0)
		return;
	family(w, "sealpost_cluster_connected", "gauge",
	       "1 while this node's NATS connection is up (cluster mode).");
	put(w, "sealpost_cluster_connected %" PRIu64 "\n", c.connected);
	family(w, "sealpost_cluster_disconnects_total", "counter",
	       "Times this node's NATS connection went down.");
	put(w, "sealpost_cluster_disconnects_total %" PRIu64 "\n", c.disconnects);
	family(w, "sealpost_cluster_reconnects_total", "counter",
	       "Times this node's NATS connection came back.");
	put(w, "sealpost_cluster_reconnects_total %" PRIu64 "\n", c.reconnects);
	family(w, "sealpost_cluster_nats_messages_total", "counter",
	       "NATS messages this node received (in) and sent (out).");
	put(w, "sealpost_cluster_nats_messages_total{direction=\"in\"} %" PRIu64 "\n", c.msgs_in);
	put(w, "sealpost_cluster_nats_messages_total{direction=\"out\"} %" PRIu64 "\n", c.msgs_out);
	family(w, "sealpost_cluster_nats_bytes_total", "counter",
	       "NATS payload bytes this node received (in) and sent (out).");
	put(w, "sealpost_cluster_nats_bytes_total{direction=\"in\"} %" PRIu64 "\n", c.bytes_in);
	put(w, "sealpost_cluster_nats_bytes_total{direction=\"out\"} %" PRIu64 "\n", c.bytes_out);
	family(w, "sealpost_cluster_remote_sends_total", "counter",
	       "Online-only sends from here to a device on another node.");
	put(w, "sealpost_cluster_remote_sends_total %" PRIu64 "\n", c.remote_sends);
	family(w, "sealpost_cluster_remote_deliveries_total", "counter",
	       "Envelopes sent on another node and delivered to a device here.");
	put(w, "sealpost_cluster_remote_deliveries_total %" PRIu64 "\n", c.remote_deliveries);
	family(w, "sealpost_cluster_takeovers_total", "counter",
	       "Connections here ended because their device connected to another node.");
	put(w, "sealpost_cluster_takeovers_total %" PRIu64 "\n", c.takeovers);
	family(w, "sealpost_cluster_request_timeouts_total", "counter",
	       "Remote sends that got no answer within --cluster-request-timeout.");
	put(w, "sealpost_cluster_request_timeouts_total %" PRIu64 "\n", c.timeouts);
	family(w, "sealpost_cluster_errors_total", "counter",
	       "NATS calls of this node that failed (publish, subscribe, reply).");
	put(w, "sealpost_cluster_errors_total %" PRIu64 "\n", c.errors);
	family(w, "sealpost_cluster_round_trip_seconds", "summary",
	       "Remote online-only sends, from the request to its answer on this loop.");
	put(w, "sealpost_cluster_round_trip_seconds_sum %.9f\n", (double)c.round_trip_ns / 1e9);
	put(w, "sealpost_cluster_round_trip_seconds_count %" PRIu64 "\n", c.round_trips);
	family(w, "sealpost_cluster_mailbox_publishes_total", "counter",
	       "Durable sends published to the mailbox streams: stored (a quorum's PubAck) or "
	       "refused (an error, no answer, or NATS down).");
	put(w, "sealpost_cluster_mailbox_publishes_total{outcome=\"stored\"} %" PRIu64 "\n",
	    c.js_stored);
	put(w, "sealpost_cluster_mailbox_publishes_total{outcome=\"refused\"} %" PRIu64 "\n",
	    c.js_refused);
	family(w, "sealpost_cluster_jetstream_publish_seconds", "summary",
	       "Durable sends, from the publish to JetStream's PubAck on this loop.");
	put(w, "sealpost_cluster_jetstream_publish_seconds_sum %.9f\n", (double)c.js_publish_ns / 1e9);
	put(w, "sealpost_cluster_jetstream_publish_seconds_count %" PRIu64 "\n", c.js_publishes);
	family(w, "sealpost_cluster_mailbox_reads_total", "counter",
	       "Mailbox messages read from JetStream for a connecting device's backlog.");
	put(w, "sealpost_cluster_mailbox_reads_total %" PRIu64 "\n", c.js_reads);
	family(w, "sealpost_cluster_mailbox_deletes_total", "counter",
	       "Acknowledged envelopes JetStream confirmed deleted.");
	put(w, "sealpost_cluster_mailbox_deletes_total %" PRIu64 "\n", c.js_deletes);
}

/* Resident set size from /proc/self/statm (second field, in pages). */
static int read_rss(uint64_t *bytes)
{
	unsigned long long size, resident;
	FILE *f = fopen("/proc/self/statm", "re");
	int n;

	if (!f)
		return -errno;
	n = fscanf(f, "%llu %llu", &size, &resident);
	fclose(f);
	if (n != 2)
		return -EIO;
	*bytes = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
	return 0;
}

static int count_fds(uint64_t *n)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	uint64_t c = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			c++;
	closedir(d);
	/* The directory stream's own descriptor was in the listing. */
	*n = c ? c - 1 : 0;
	return 0;
}

static void render_process(struct writer *w, const struct sp_metrics *m, unsigned flags)
{
	struct rlimit rl;
	struct rusage ru;
	uint64_t v = 0;

	family(w, "process_start_time_seconds", "gauge",
	       "Start time of the process since unix epoch in seconds.");
	put(w, "process_start_time_seconds %.3f\n", m->start_time);
	family(w, "sealpost_build_info", "gauge",
	       "Always 1; the version and revision labels name the build.");
	put(w, "sealpost_build_info{version=\"%s\",revision=\"%s\"} 1\n", SP_VERSION,
	    SP_REVISION);
	if (flags & SP_METRICS_RENDER_NO_PROCESS)
		return;
	/* User plus system time of every thread, as the Go and Python clients
	 * report it; getrusage is one system call, no file to parse. */
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		family(w, "process_cpu_seconds_total", "counter",
		       "Total user and system CPU time spent in seconds.");
		put(w, "process_cpu_seconds_total %.6f\n",
		    (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
		    ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6);
	}
	if (read_rss(&v) == 0) {
		family(w, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
		put(w, "process_resident_memory_bytes %" PRIu64 "\n", v);
	}
#ifdef __GLIBC__
	{
		/* The allocator's own count: what RSS cannot separate from
		 * first-touched pages of fixed buffers. One walk of the free
		 * lists per scrape. */
		struct mallinfo2 mi = mallinfo2();

		family(w, "sealpost_heap_bytes", "gauge",
		       "malloc heap (mallinfo2): in_use = allocated bytes (mmapped blocks "
		       "included), free = bytes free inside the heap.");
		put(w, "sealpost_heap_bytes{kind=\"in_use\"} %" PRIu64 "\n",
		    (uint64_t)(mi.uordblks + mi.hblkhd));
		put(w, "sealpost_heap_bytes{kind=\"free\"} %" PRIu64 "\n", (uint64_t)mi.fordblks);
	}
#endif
	if (count_fds(&v) == 0) {
		family(w, "process_open_fds", "gauge", "Number of open file descriptors.");
		put(w, "process_open_fds %" PRIu64 "\n", v);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		family(w, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
		put(w, "process_max_fds %" PRIu64 "\n", (uint64_t)rl.rlim_cur);
	}
}

int sp_metrics_render(struct sp_metrics *m, struct sp_metrics_buf *out, unsigned flags)
{
	struct writer w = { .b = out, .err = 0 };

	render_connections(&w, m);
	render_envelopes(&w, m);
	render_memory(&w, m);
	render_push(&w, m);
	render_enrol(&w, m);
	render_histograms(&w, m);
	render_rocksdb(&w, m);
	render_cluster(&w, m);
	render_process(&w, m, flags);
	return w.err;
}
