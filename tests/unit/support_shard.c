/* SPDX-License-Identifier: Apache-2.0 */
/*
 * support_shard.c: see support_shard.h. The device side is built from the
 * crypto and frame layers only, the way a client written from
 * docs/PROTOCOL.md would do it, so that a test checks the broker against the
 * protocol and not against the broker's own connection code.
 */
#include "support_shard.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sp_conn.h"
#include "sp_limits.h"
#include "sp_metrics.h"
#include "sp_store.h"

static const uint8_t preamble_ik[SP_PREAMBLE_LEN] = { 'S', 'E', 'A', 'L', SP_PROTOCOL_VERSION,
						      SP_PREAMBLE_PATTERN_IK, 0, 0 };

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);

	if (!q)
		fail_msg("out of memory");
	return q;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void sps_init(struct sps *t)
{
	memset(t, 0, sizeof(*t));
	if (sodium_init() < 0)
		fail_msg("sodium_init");
	snprintf(t->dir, sizeof(t->dir), "/tmp/sp-test-mid-XXXXXX");
	if (!mkdtemp(t->dir))
		fail_msg("mkdtemp: %s", strerror(errno));
	/* Errors only, and to nowhere: a test that provokes a store failure
	 * must not depend on a log file being writable. */
	t->log_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (t->log_fd < 0)
		fail_msg("/dev/null");
	sp_log_init(&t->log, t->log_fd, SP_LOG_ERROR);
	sp_config_defaults(&t->cfg);
	snprintf(t->cfg.data_dir, sizeof(t->cfg.data_dir), "%s", t->dir);
	t->cfg.max_conns = 16;
	t->cfg.fsync = SP_FSYNC_NEVER;
	t->now_ns = clock_ns(CLOCK_MONOTONIC);
	t->wall_ms = clock_ns(CLOCK_REALTIME) / 1000000u;
}

static void open_shard(struct sps *t)
{
	if (!t->no_store && sp_shard_store_open(&t->cfg, &t->log, &t->store))
		fail_msg("store open in %s", t->dir);
	if (sp_shard_init_detached(&t->sh, 0, &t->cfg, &t->log, t->server_priv))
		fail_msg("sp_shard_init_detached");
	t->sh.store = t->store;
	t->started = true;
}

void sps_start(struct sps *t)
{
	t->server_priv = sodium_malloc(SP_KEY_LEN);
	if (!t->server_priv)
		fail_msg("sodium_malloc");
	sp_noise_keypair(t->server_pub, t->server_priv);
	open_shard(t);
}

void sps_restart(struct sps *t)
{
	sp_shard_destroy(&t->sh);
	t->started = false;
	if (t->store)
		sp_store_close(t->store);
	t->store = NULL;
	for (size_t i = 0; i < t->ndevs; i++)
		t->devs[i]->c = NULL;
	open_shard(t);
}

struct sps_counts sps_counts(const struct sps *t)
{
	const struct sp_metrics_shard *m = t->sh.metrics;
	struct sps_counts n = {
		.delivered_live = m->envelopes_delivered[SP_METRICS_PATH_LIVE],
		.delivered_mailbox = m->envelopes_delivered[SP_METRICS_PATH_MAILBOX],
		.accepted = m->envelopes_accepted,
		.refused_internal = m->envelopes_refused[SP_STATUS_ERR_INTERNAL -
							 SP_METRICS_REFUSED_FIRST],
		.refused_mailbox_full = m->envelopes_refused[SP_STATUS_ERR_MAILBOX_FULL -
							     SP_METRICS_REFUSED_FIRST],
		.refused_rate_limited = m->envelopes_refused[SP_STATUS_ERR_RATE_LIMITED -
							     SP_METRICS_REFUSED_FIRST],
		.acks = m->acks,
		.expired = m->expired,
	};
	struct sp_store_stats ss;

	if (t->store) {
		sp_store_get_stats(t->store, &ss);
		n.acks_unknown = ss.ack_unknown;
		n.duplicates = ss.duplicates;
		n.commits = ss.commits;
		n.commit_failures = ss.commit_failures;
	}
	return n;
}

uint64_t sps_closed(const struct sps *t, enum sp_close_reason r)
{
	switch (r) {
#define SP_CLOSE(id, label, level, message, goaway) \
	case SP_CLOSE_##id: return t->sh.metrics->connections_closed[SP_METRICS_CLOSE_##id];
#include "sp_reasons.def"
	default: fail_msg("no such close reason: %d", (int)r);
	}
	return 0;
}

static void dev_free(struct sps_dev *d)
{
	for (size_t i = 0; i < d->nev; i++)
		free(d->ev[i].body);
	free(d->ev);
	free(d->in);
	sp_noise_handshake_wipe(&d->hs);
	sp_noise_transport_wipe(&d->t);
	sodium_memzero(d->priv, sizeof(d->priv));
	free(d);
}

void sps_fini(struct sps *t)
{
	char cmd[128];

	if (t->started)
		sp_shard_destroy(&t->sh);
	if (t->store)
		sp_store_close(t->store);
	for (size_t i = 0; i < t->ndevs; i++)
		dev_free(t->devs[i]);
	if (t->server_priv)
		sodium_free(t->server_priv);
	close(t->log_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", t->dir);
	memset(t, 0, sizeof(*t));
}

static struct sps_dev *dev_add(struct sps *t)
{
	struct sps_dev *d = calloc(1, sizeof(*d));

	if (!d || t->ndevs == sizeof(t->devs) / sizeof(t->devs[0]))
		fail_msg("too many devices");
	d->taking = true;
	t->devs[t->ndevs++] = d;
	return d;
}

struct sps_dev *sps_dev_new(struct sps *t)
{
	struct sps_dev *d = dev_add(t);

	sp_noise_keypair(d->pub, d->priv);
	return d;
}

struct sps_dev *sps_dev_same(struct sps *t, const struct sps_dev *o)
{
	struct sps_dev *d = dev_add(t);

	memcpy(d->priv, o->priv, SP_KEY_LEN);
	memcpy(d->pub, o->pub, SP_KEY_LEN);
	return d;
}

/* --- what the broker sends: decrypt and decode ------------------------------ */

static void push_event(struct sps_dev *d, const struct sp_frame *f)
{
	struct sps_event *e;

	if (d->nev == d->ev_cap) {
		d->ev_cap = d->ev_cap ? 2 * d->ev_cap : 64;
		d->ev = xrealloc(d->ev, d->ev_cap * sizeof(*d->ev));
	}
	e = &d->ev[d->nev++];
	memset(e, 0, sizeof(*e));
	e->type = f->type;
	e->msg = d->msgs;
	switch (f->type) {
	case SP_FRAME_DELIVER:
		e->seq = f->u.deliver.seq;
		e->body_len = f->body_len;
		e->body = malloc(f->body_len ? f->body_len : 1);
		if (!e->body)
			fail_msg("out of memory");
		memcpy(e->body, f->body, f->body_len);
		break;
	case SP_FRAME_SEND_RESULT:
		e->seq = f->u.send_result.seq;
		e->client_id = f->u.send_result.client_id;
		e->status = f->u.send_result.status;
		break;
	case SP_FRAME_DRAINED:
		e->count = f->u.drained.count;
		break;
	case SP_FRAME_PONG:
		e->id = f->u.ping.id;
		break;
	case SP_FRAME_GOAWAY:
		e->status = f->u.goaway.code;
		break;
	case SP_FRAME_LIST_RESULT:
	case SP_FRAME_LIST_CHANGED:
		e->client_id = f->u.list.client_id;
		e->status = f->u.list.status;
		e->seq = f->u.list.version;
		break;
	case SP_FRAME_FANOUT_RESULT:
		e->client_id = f->u.fanout.group_id;
		e->status = f->u.fanout.status;
		e->seq = f->u.fanout.version;
		e->count = f->u.fanout.missing;
		e->body_len = f->body_len;
		e->body = malloc(f->body_len ? f->body_len : 1);
		if (!e->body)
			fail_msg("out of memory");
		memcpy(e->body, f->body, f->body_len);
		break;
	default:
		fail_msg("broker sent frame type %d", f->type);
	}
}

/* Every whole transport message in d->in, once the session is split. */
static void decode(struct sps_dev *d)
{
	static uint8_t buf[SP_NOISE_MSG_MAX];
	size_t off = 0;

	if (!d->t.rx.has_key)
		return;         /* handshake bytes: sps_connect reads them */
	while (d->in_len - off >= SP_LEN_PREFIX) {
		size_t mlen = (size_t)d->in[off] << 8 | d->in[off + 1], plen, foff = 0;
		struct sp_frame f;
		int ret;

		if (d->in_len - off - SP_LEN_PREFIX < mlen)
			break;
		memcpy(buf, d->in + off + SP_LEN_PREFIX, mlen);
		if (sp_noise_decrypt(&d->t.rx, buf, mlen, &plen))
			fail_msg("a broker transport message did not decrypt");
		while ((ret = sp_frame_next(buf, plen, &foff, &f)) == 0)
			push_event(d, &f);
		if (ret != -ENODATA)
			fail_msg("a broker frame did not decode (%d)", ret);
		d->msgs++;
		off += SP_LEN_PREFIX + mlen;
	}
	memmove(d->in, d->in + off, d->in_len - off);
	d->in_len -= off;
}

static struct sps_dev *dev_of(struct sps *t, const struct sp_conn *c)
{
	for (size_t i = 0; i < t->ndevs; i++) {
		struct sps_dev *d = t->devs[i];

		if (d->c == c && d->slot == c->tab.slot && d->gen == c->tab.gen)
			return d;
	}
	return NULL;
}

/* The socket: takes every finished byte of c, unless its device stalls. */
static void take(void *ctx, struct sp_conn *c)
{
	struct sps *t = ctx;
	struct sps_dev *d = dev_of(t, c);
	const uint8_t *p;
	size_t len;

	if (d && !d->taking)
		return;
	while (sp_session_tx_peek(&c->s, &p, &len)) {
		if (d) {
			if (d->in_len + len > d->in_cap) {
				d->in_cap = (d->in_len + len) * 2;
				d->in = xrealloc(d->in, d->in_cap);
			}
			memcpy(d->in + d->in_len, p, len);
			d->in_len += len;
		}
		sp_session_tx_sent(&c->s, len);
	}
	if (d)
		decode(d);
}

/* --- the loop ---------------------------------------------------------------- */

void sps_begin(struct sps *t)
{
	if (t->in_iteration)
		fail_msg("sps_begin inside an iteration");
	t->in_iteration = true;
	sp_shard_begin_iteration_at(&t->sh, t->now_ns, t->wall_ms);
}

static void feed_bytes(struct sps *t, struct sps_dev *d, uint8_t *p, size_t len)
{
	enum sp_close_reason r = sp_shard_feed(&t->sh, d->c, p, len);

	if (r != SP_CLOSE_NONE && !d->may_refuse)
		fail_msg("the broker refused input: close reason %d", r);
	if (r != SP_CLOSE_NONE)
		d->refused = r;
}

void sps_feed(struct sps *t, struct sps_dev *d)
{
	static uint8_t wire[SP_LEN_PREFIX + SP_NOISE_MSG_MAX];

	if (!t->in_iteration || !d->c)
		fail_msg("sps_feed outside an iteration or without a connection");
	memcpy(wire + SP_LEN_PREFIX, d->out, d->out_len);
	if (sp_noise_encrypt(&d->t.tx, wire + SP_LEN_PREFIX, d->out_len))
		fail_msg("device encrypt");
	wire[0] = (uint8_t)((d->out_len + SP_TAG_LEN) >> 8);
	wire[1] = (uint8_t)(d->out_len + SP_TAG_LEN);
	feed_bytes(t, d, wire, SP_LEN_PREFIX + d->out_len + SP_TAG_LEN);
	d->out_len = 0;
}

int sps_end(struct sps *t)
{
	int ret;

	if (!t->in_iteration)
		fail_msg("sps_end outside an iteration");
	ret = sp_shard_end_iteration(&t->sh, 1, take, t);
	t->in_iteration = false;
	return ret;
}

int sps_round(struct sps *t, struct sps_dev *d)
{
	sps_begin(t);
	if (d)
		sps_feed(t, d);
	return sps_end(t);
}

/* --- connections ---------------------------------------------------------------- */

int sps_connect(struct sps *t, struct sps_dev *d, uint64_t ping_id)
{
	struct sp_hello h = { .protocol_version = SP_PROTOCOL_VERSION };
	uint8_t wire[SP_PREAMBLE_LEN + SP_LEN_PREFIX + SP_HANDSHAKE_MSG_MAX];
	uint8_t pl[SP_HANDSHAKE_PAYLOAD_MAX], queued[SP_TRANSPORT_PLAINTEXT_MAX];
	size_t plen = 0, mlen = 0, nqueued = 0;
	int ret;

	/* Message 1: preamble, length, IK message with a ClientHello. */
	if (sp_noise_handshake_init(&d->hs, SP_NOISE_IK, SP_NOISE_INITIATOR, preamble_ik,
				    SP_PREAMBLE_LEN, d->priv, t->server_pub) ||
	    sp_frame_client_hello_encode(&h, pl, sizeof(pl), &plen) ||
	    sp_noise_handshake_write(&d->hs, pl, plen, wire + SP_PREAMBLE_LEN + SP_LEN_PREFIX,
				     SP_HANDSHAKE_MSG_MAX, &mlen))
		fail_msg("device IK message 1");
	memcpy(wire, preamble_ik, SP_PREAMBLE_LEN);
	wire[SP_PREAMBLE_LEN] = (uint8_t)(mlen >> 8);
	wire[SP_PREAMBLE_LEN + 1] = (uint8_t)mlen;
	sp_noise_transport_wipe(&d->t);
	d->in_len = 0;
	sps_begin(t);
	d->c = sp_shard_conn_add(&t->sh);
	if (!d->c)
		fail_msg("connection table full");
	d->slot = d->c->tab.slot;
	d->gen = d->c->tab.gen;
	feed_bytes(t, d, wire, SP_PREAMBLE_LEN + SP_LEN_PREFIX + mlen);
	if (d->c->s.state != SP_SESSION_ESTABLISHED || d->c->route.routed)
		fail_msg("IK message 1: not established, or routed before its proof");
	ret = sps_end(t);
	if (ret)
		return ret;

	/* Message 2, then split. */
	if (d->in_len < SP_LEN_PREFIX)
		fail_msg("no IK message 2");
	mlen = (size_t)d->in[0] << 8 | d->in[1];
	if (mlen + SP_LEN_PREFIX != d->in_len ||
	    sp_noise_handshake_read(&d->hs, d->in + SP_LEN_PREFIX, mlen, pl, sizeof(pl), &plen) ||
	    sp_frame_server_hello_decode(pl, plen, &h) || h.protocol_version != SP_PROTOCOL_VERSION ||
	    sp_noise_handshake_split(&d->hs, &d->t))
		fail_msg("IK message 2 did not verify");
	d->in_len = 0;

	/* The proof: Ping first, then whatever the test queued. */
	nqueued = d->out_len;
	memcpy(queued, d->out, nqueued);
	d->out_len = 0;
	sps_ping(d, ping_id);
	if (d->out_len + nqueued > sizeof(d->out))
		fail_msg("too much queued for the first message");
	memcpy(d->out + d->out_len, queued, nqueued);
	d->out_len += nqueued;
	sps_begin(t);
	sps_feed(t, d);
	if (!d->c->route.routed)
		fail_msg("the proof did not route the connection");
	return sps_end(t);
}

int sps_disconnect(struct sps *t, struct sps_dev *d)
{
	int ret;

	sps_begin(t);
	sp_shard_conn_eof(&t->sh, d->c);
	ret = sps_end(t);
	d->c = NULL;
	return ret;
}

/* --- frames a device sends -------------------------------------------------------- */

static void put(struct sps_dev *d, const struct sp_frame *f, const uint8_t *body, size_t len)
{
	if (sp_frame_put_header(d->out, sizeof(d->out), &d->out_len, f, len) ||
	    sizeof(d->out) - d->out_len < len)
		fail_msg("frame does not fit the device's next message");
	if (len)        /* body may be NULL for a frame without one */
		memcpy(d->out + d->out_len, body, len);
	d->out_len += len;
}

void sps_frame(struct sps_dev *d, const struct sp_frame *f, const uint8_t *body, size_t len)
{
	put(d, f, body, len);
}

void sps_send(struct sps_dev *d, const uint8_t to[SP_KEY_LEN], uint64_t client_id,
	      uint32_t flags, const uint8_t *body, size_t body_len)
{
	struct sp_frame f;

	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_SEND;
	memcpy(f.u.send.to, to, SP_KEY_LEN);
	f.u.send.to_ok = 1;
	f.u.send.client_id = client_id;
	f.u.send.flags = flags;
	put(d, &f, body, body_len);
}

void sps_ack(struct sps_dev *d, const uint64_t *seqs, uint32_t n)
{
	struct sp_frame f;

	if (n > SP_ACK_SEQS_MAX)
		fail_msg("too many seqs for one Ack");
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_ACK;
	memcpy(f.u.ack.seqs, seqs, n * sizeof(*seqs));
	f.u.ack.count = n;
	put(d, &f, NULL, 0);
}

void sps_ping(struct sps_dev *d, uint64_t id)
{
	struct sp_frame f;

	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_PING;
	f.u.ping.id = id;
	put(d, &f, NULL, 0);
}

/* --- reading events ------------------------------------------------------------------ */

const struct sps_event *sps_next(struct sps_dev *d)
{
	return d->ev_next < d->nev ? &d->ev[d->ev_next++] : NULL;
}

size_t sps_unread(const struct sps_dev *d)
{
	return d->nev - d->ev_next;
}

const struct sps_event *sps_expect(struct sps_dev *d, enum sp_frame_type type)
{
	const struct sps_event *e = sps_next(d);

	if (!e)
		fail_msg("expected a frame of type %d, got nothing", type);
	if (e->type != type)
		fail_msg("expected a frame of type %d, got type %d", type, e->type);
	return e;
}

void sps_body(uint8_t *b, size_t len, uint64_t tag)
{
	for (size_t k = 0; k < len; k++)
		b[k] = (uint8_t)(tag * 0x9d + k * 7 + (k >> 8));
}

bool sps_body_is(const struct sps_event *e, size_t len, uint64_t tag)
{
	if (e->body_len != len)
		return false;
	for (size_t k = 0; k < len; k++)
		if (e->body[k] != (uint8_t)(tag * 0x9d + k * 7 + (k >> 8)))
			return false;
	return true;
}
