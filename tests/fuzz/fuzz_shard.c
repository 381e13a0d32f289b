/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_shard.c: the broker's frame handling, end to end, through the
 * detached shard (broker/loop/sp_detached.h): everything an authenticated
 * device can send once its session is up reaches the real router
 * (app/sp_router.c: Send, Ack, Ping, fan-out groups, PrekeyUpload and
 * PrekeyFetch (app/sp_prekeys.c), frames of the wrong direction),
 * deliveries and replies (app/sp_deliver.c), the mailbox code
 * (app/sp_mailbox.c: the iteration's batch, quotas, dedup, acks, results
 * after the commit, the backlog reader and Drained) over a real RocksDB
 * store, timers and the lifecycle (GoAway, slow consumer, EOF, takeover
 * when a device connects again). Input format: shard_peer.h.
 *
 * The handshake is not fuzzed here (fuzz_session, fuzz_handshake do it):
 * each device's connection is established with fixed transport keys and
 * routed with sp_shard_conn_route, so an input costs no X25519.
 *
 * Oracle: nothing crashes or leaks (ASan, UBSan); every byte the shard
 * hands a device is a transport message that decrypts under that
 * connection's keys and holds well-formed broker -> client frames; every
 * PrekeyBundle verifies as the fetched device's and no one-time prekey is
 * handed out twice; a
 * connection gets at most one Drained and nothing after a GoAway; at the
 * end every connection closes, every slot is freed, no fan-out group is
 * left holding memory, and every tx chunk is
 * back in the pool.
 *
 * The store lives in a temporary directory for the whole process and is
 * emptied (closed, removed, opened again) every STORE_RESET_RUNS inputs so
 * that random recipients cannot fill the disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "fuzz/shard_peer.h"
#include "sp_conn.h"
#include "sp_conn_table.h"
#include "sp_detached.h"
#include "sp_frame.h"
#include "sp_lifecycle.h"
#include "sp_noise.h"
#include "sp_prekey.h"
#include "sp_store.h"

enum {
	STORE_RESET_RUNS = 2000,     /* tombstones pile up: a fresh store keeps runs fast */
	CONNS_MAX = 64,                 /* connections one input may open */
	FRAME_KINDS = 64,               /* FrameHeader kinds counted in the stats */
};

struct dev {
	uint8_t pub[SP_KEY_LEN];
	struct sp_conn *c;              /* NULL: connects at its next record */
	uint32_t slot, gen;
	struct sp_noise_transport t;    /* the device's side */
	bool taking;
	bool goaway;
	unsigned drained;
	uint8_t *in;
	size_t in_len, in_cap;
};

static struct {
	bool ready;
	char dir[64];
	struct sp_config cfg;
	struct sp_log log;
	struct sp_shard sh;
	struct sp_store *store;
	uint8_t *server_priv;
	uint64_t now_ns, wall_ms;
	unsigned runs;
	uint64_t conn_no;               /* keys of the next connection */
	struct dev dev[FUZZ_SHARD_DEVS];
	struct { uint32_t slot, gen; } opened[CONNS_MAX];
	unsigned nopened;
	uint64_t frames[FRAME_KINDS];   /* frames seen, by type (FUZZ_SHARD_STATS) */
	uint64_t statuses[64];          /* SendResult statuses seen */
	uint64_t fanout_results;        /* FanoutResults seen */
	/* One-time prekeys handed out since the store was emptied or the
	 * last accepted upload (which may put the same deterministic key back
	 * on file): none may come twice. */
	struct { uint8_t dev[SP_KEY_LEN]; uint32_t id; } handed[256];
	unsigned nhanded;
} F;

static void check(int ok)
{
	if (!ok)
		abort();
}

static void store_open(void)
{
	check(sp_shard_store_open(&F.cfg, &F.log, &F.store) == 0);
}

static void store_reset(void)
{
	char cmd[128];

	sp_store_close(F.store);
	F.nhanded = 0;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/mailbox'", F.dir);
	check(system(cmd) == 0);
	store_open();
}

static void cleanup(void)
{
	char cmd[128];

	if (!F.ready)
		return;
	/* FUZZ_SHARD_STATS=1: what the inputs made the broker say, to see
	 * that a corpus reaches deliveries, backlogs and each refusal. */
	if (getenv("FUZZ_SHARD_STATS")) {
		for (unsigned t = 1; t < FRAME_KINDS; t++)
			if (F.frames[t])
				fprintf(stderr, "fuzz_shard: frame type %u: %llu\n", t,
				(unsigned long long)F.frames[t]);
		fprintf(stderr, "fuzz_shard: fanout results: %llu\n",
			(unsigned long long)F.fanout_results);
		for (unsigned st = 0; st < 64; st++)
			if (F.statuses[st])
				fprintf(stderr, "fuzz_shard: status %u: %llu\n", st,
					(unsigned long long)F.statuses[st]);
	}
	sp_shard_destroy(&F.sh);
	sp_store_close(F.store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", F.dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_shard: could not remove %s\n", F.dir);
}

static void setup(void)
{
	check(sodium_init() >= 0);
	snprintf(F.dir, sizeof(F.dir), "/tmp/sp-fuzz-shard-XXXXXX");
	check(mkdtemp(F.dir) != NULL);
	sp_log_init(&F.log, open("/dev/null", O_WRONLY | O_CLOEXEC), SP_LOG_ERROR);
	sp_config_defaults(&F.cfg);
	snprintf(F.cfg.data_dir, sizeof(F.cfg.data_dir), "%s", F.dir);
	F.cfg.max_conns = 16;
	F.cfg.fsync = SP_FSYNC_NEVER;
	/* Small limits, so that inputs reach the refusals: full mailboxes,
	 * busy recipients, slow consumers, expiry. */
	F.cfg.mailbox_max_count = 16;
	F.cfg.mailbox_max_bytes = 65536;
	F.cfg.sendq_max = 4096;         /* below the option's minimum: small inputs reach it */
	F.cfg.ttl_s = 60;
	F.cfg.backlog_chunk = 4;
	F.cfg.max_envelope = 2000;
	/* small prekey limits, so that inputs reach each refusal */
	F.cfg.prekey_upload_max = 8;
	F.cfg.prekey_stock_max = 12;
	F.cfg.prekey_low = 4;
	store_open();
	F.server_priv = sodium_malloc(SP_KEY_LEN);
	check(F.server_priv != NULL);
	memcpy(F.server_priv, fuzz_shard_server_s, SP_KEY_LEN);
	check(sp_shard_init_detached(&F.sh, 0, &F.cfg, &F.log, F.server_priv) == 0);
	for (unsigned d = 0; d < FUZZ_SHARD_DEVS; d++) {
		uint8_t priv[SP_KEY_LEN];

		fuzz_shard_dev_priv(priv, d);
		check(sp_noise_public_key(F.dev[d].pub, priv) == 0);
	}
	F.now_ns = 1000000000ull;
	F.wall_ms = 1700000000000ull;
	atexit(cleanup);
	F.ready = true;
}

/* --- what the shard sends a device ----------------------------------------- */

/* A bundle the broker hands out verifies as the fetched device's (it
 * stores only verified uploads), and its one-time prekey is new. */
static void check_bundle(const struct sp_frame *f)
{
	struct sp_prekey_bundle b;

	if (f->u.prekey.status != SP_STATUS_ACCEPTED) {
		check(f->body_len == 0);
		return;
	}
	check(f->u.prekey.device_ok);
	check(sp_prekey_bundle_verify(f->body, f->body_len, f->u.prekey.device, &b) == 0);
	if (!b.has_onetime)
		return;
	for (unsigned i = 0; i < F.nhanded; i++)
		check(F.handed[i].id != b.otk.id ||
		      memcmp(F.handed[i].dev, b.device, SP_KEY_LEN) != 0);
	if (F.nhanded < sizeof(F.handed) / sizeof(F.handed[0])) {
		memcpy(F.handed[F.nhanded].dev, b.device, SP_KEY_LEN);
		F.handed[F.nhanded++].id = b.otk.id;
	}
}

static void check_frame(struct dev *d, const struct sp_frame *f)
{
	check(!d->goaway);
	if ((unsigned)f->type < FRAME_KINDS)
		F.frames[f->type]++;
	if (f->type == SP_FRAME_SEND_RESULT)
		F.statuses[(unsigned)f->u.send_result.status % 64]++;
	switch (f->type) {
	case SP_FRAME_SEND_RESULT:
	case SP_FRAME_PONG:
		break;
	case SP_FRAME_FANOUT_RESULT:
		/* the keys are the whole body, and only a mismatch has any */
		F.fanout_results++;
		check(f->body_len == (size_t)(f->u.fanout.missing + f->u.fanout.stale) * SP_KEY_LEN);
		check(f->body_len == 0 || f->u.fanout.status == SP_STATUS_ERR_FANOUT_MISMATCH);
		check(f->u.fanout.missing <= SP_DEVLIST_DEVICES_MAX &&
		      f->u.fanout.stale <= SP_FANOUT_COPIES_MAX);
		break;
	case SP_FRAME_DELIVER:
		check(f->body_len <= F.cfg.max_envelope);
		break;
	case SP_FRAME_DRAINED:
		check(++d->drained == 1);
		break;
	case SP_FRAME_GOAWAY:
		d->goaway = true;
		break;
	/* Answers to the account, log, push and access frames an input can
	 * send (a mutated ListFetch reached ListResult in CI's 20 s run):
	 * legitimate, and no bigger than one transport message. */
	case SP_FRAME_LIST_RESULT:
	case SP_FRAME_LIST_CHANGED:
	case SP_FRAME_LOG_REPLY:
	case SP_FRAME_PUSH_RESULT:
	case SP_FRAME_ACCESS_RESULT:
		check(f->body_len <= SP_NOISE_MSG_MAX);
		break;
	case SP_FRAME_PREKEY_RESULT:
		check(f->u.prekey.count <= F.cfg.prekey_stock_max);
		break;
	case SP_FRAME_PREKEY_BUNDLE:
		check_bundle(f);
		break;
	case SP_FRAME_PREKEY_LOW:
		check(f->u.prekey.count < F.cfg.prekey_low);
		break;
	default:
		abort();        /* the broker never sends anything else */
	}
}

static void decode(struct dev *d)
{
	static uint8_t msg[SP_NOISE_MSG_MAX];
	size_t off = 0;

	while (d->in_len - off >= SP_LEN_PREFIX) {
		size_t mlen = (size_t)d->in[off] << 8 | d->in[off + 1], plen, foff = 0;
		struct sp_frame f;
		int ret;

		if (d->in_len - off - SP_LEN_PREFIX < mlen)
			break;
		memcpy(msg, d->in + off + SP_LEN_PREFIX, mlen);
		check(sp_noise_decrypt(&d->t.rx, msg, mlen, &plen) == 0);
		while ((ret = sp_frame_next(msg, plen, &foff, &f)) == 0)
			check_frame(d, &f);
		check(ret == -ENODATA);
		off += SP_LEN_PREFIX + mlen;
	}
	memmove(d->in, d->in + off, d->in_len - off);
	d->in_len -= off;
}

static struct dev *dev_of(const struct sp_conn *c)
{
	for (unsigned i = 0; i < FUZZ_SHARD_DEVS; i++) {
		struct dev *d = &F.dev[i];

		if (d->c == c && d->slot == c->tab.slot && d->gen == c->tab.gen)
			return d;
	}
	return NULL;
}

/* The socket: every finished byte of c, unless its device stalls. */
static void take(void *ctx, struct sp_conn *c)
{
	struct dev *d = dev_of(c);
	const uint8_t *p;
	size_t len;

	(void)ctx;
	if (d && !d->taking)
		return;
	while (sp_session_tx_peek(&c->s, &p, &len)) {
		if (d) {
			if (d->in_len + len > d->in_cap) {
				d->in_cap = (d->in_len + len) * 2;
				d->in = realloc(d->in, d->in_cap);
				check(d->in != NULL);
			}
			memcpy(d->in + d->in_len, p, len);
			d->in_len += len;
		}
		sp_session_tx_sent(&c->s, len);
	}
	if (d)
		decode(d);
}

/* --- connections ------------------------------------------------------------ */

static void end_iteration(void)
{
	sp_shard_end_iteration(&F.sh, 1, take, NULL);
}

static void begin_iteration(void)
{
	sp_shard_begin_iteration_at(&F.sh, F.now_ns, F.wall_ms);
}

static bool alive(struct dev *d)
{
	return d->c && sp_conn_at(&F.sh, d->slot, d->gen) == d->c &&
	       d->c->s.state == SP_SESSION_ESTABLISHED;
}

/* Gives d a fresh, routed connection (fixed keys per connection number). */
static bool dev_connect(struct dev *d)
{
	struct sp_conn *c;
	uint8_t k[2 * SP_KEY_LEN];
	uint64_t no = F.conn_no++;
	enum sp_close_reason r;

	if (F.nopened == CONNS_MAX || !(c = sp_shard_conn_add(&F.sh)))
		return false;
	F.opened[F.nopened].slot = c->tab.slot;
	F.opened[F.nopened].gen = c->tab.gen;
	F.nopened++;
	crypto_generichash(k, sizeof(k), (const uint8_t *)&no, sizeof(no), NULL, 0);
	sp_noise_transport_wipe(&d->t);
	memcpy(d->t.tx.k, k, SP_KEY_LEN);
	memcpy(d->t.rx.k, k + SP_KEY_LEN, SP_KEY_LEN);
	d->t.tx.has_key = d->t.rx.has_key = true;
	/* The broker's side: what a finished XX handshake leaves behind. */
	if (sp_session_keys_init(&c->s))
		return false;
	c->s.keys->t.rx = d->t.tx;
	c->s.keys->t.tx = d->t.rx;
	memcpy(c->s.peer, d->pub, SP_KEY_LEN);
	c->s.has_peer = true;
	c->s.proven = true;
	c->s.pattern = SP_PREAMBLE_PATTERN_XX;
	c->s.state = SP_SESSION_ESTABLISHED;
	sodium_memzero(k, sizeof(k));
	d->c = c;
	d->slot = c->tab.slot;
	d->gen = c->tab.gen;
	d->taking = true;
	d->goaway = false;
	d->drained = 0;
	d->in_len = 0;
	r = sp_shard_conn_route(&F.sh, c);
	if (r)
		sp_life_rx_failed(&F.sh, c, r);
	return true;
}

static void feed(struct dev *d, uint8_t *p, size_t n)
{
	enum sp_close_reason r = sp_shard_feed(&F.sh, d->c, p, n);

	if (r)
		sp_life_rx_failed(&F.sh, d->c, r);
}

static void op_msg(struct dev *d, const uint8_t *p, size_t n, bool tamper)
{
	static uint8_t wire[SP_LEN_PREFIX + SP_NOISE_MSG_MAX];

	if (n > SP_TRANSPORT_PLAINTEXT_MAX)
		n = SP_TRANSPORT_PLAINTEXT_MAX;
	/* An upload may put a key handed out before back on file (the
	 * fuzzer's keys are deterministic): the once-only check starts over. */
	if (!tamper) {
		struct sp_frame f;
		size_t off = 0;

		while (sp_frame_next(p, n, &off, &f) == 0)
			if (f.type == SP_FRAME_PREKEY_UPLOAD)
				F.nhanded = 0;
	}
	memcpy(wire + SP_LEN_PREFIX, p, n);
	if (sp_noise_encrypt(&d->t.tx, wire + SP_LEN_PREFIX, n))
		return;
	if (tamper)
		wire[SP_LEN_PREFIX + n / 2] ^= 0x10;
	wire[0] = (uint8_t)((n + SP_TAG_LEN) >> 8);
	wire[1] = (uint8_t)(n + SP_TAG_LEN);
	feed(d, wire, SP_LEN_PREFIX + n + SP_TAG_LEN);
}

static void op_raw(struct dev *d, const uint8_t *p, size_t n)
{
	static uint8_t buf[SP_LEN_PREFIX + SP_NOISE_MSG_MAX];

	memcpy(buf, p, n);
	feed(d, buf, n);
}

/* Every connection of this input ends (EOF) and is freed. */
static void close_all(void)
{
	begin_iteration();
	for (unsigned i = 0; i < F.nopened; i++) {
		struct sp_conn *c = sp_conn_at(&F.sh, F.opened[i].slot, F.opened[i].gen);

		if (c && c->s.state != SP_SESSION_DEAD)
			sp_shard_conn_eof(&F.sh, c);
	}
	end_iteration();
	for (unsigned i = 0; i < F.nopened; i++)
		check(sp_conn_at(&F.sh, F.opened[i].slot, F.opened[i].gen) == NULL);
	check(F.sh.nconns == 0);
	check(F.sh.pool.live == F.sh.pool.nfree);
	/* every fan-out group went with its connection */
	check(F.sh.mem.fanout_bytes == 0 && sp_list_empty(&F.sh.fanout_list));
	F.nopened = 0;
	for (unsigned i = 0; i < FUZZ_SHARD_DEVS; i++)
		F.dev[i].c = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 1;

	if (!F.ready)
		setup();
	if (size < 1)
		return 0;
	if (++F.runs % STORE_RESET_RUNS == 0)
		store_reset();
	F.sh.store = data[0] & FUZZ_SHARD_STORE ? F.store : NULL;
	begin_iteration();
	while (size - off >= 4) {
		unsigned op = data[off] % FUZZ_SHARD_OPS;
		struct dev *d = &F.dev[data[off + 1] % FUZZ_SHARD_DEVS];
		size_t n = (size_t)data[off + 2] << 8 | data[off + 3];

		off += 4;
		if (n > size - off)
			n = size - off;
		if (op == FUZZ_OP_ITER) {
			uint32_t ms = n >= 4 ? (uint32_t)data[off] << 24 | (uint32_t)data[off + 1] << 16 |
					       (uint32_t)data[off + 2] << 8 | data[off + 3] : 0;

			end_iteration();
			F.now_ns += (uint64_t)ms * 1000000u;
			F.wall_ms += ms;
			begin_iteration();
		} else if (op == FUZZ_OP_TICK) {
			sp_shard_tick(&F.sh);
		} else if (op == FUZZ_OP_STALL) {
			d->taking = !(n && (data[off] & 1));
		} else if (op == FUZZ_OP_RECONNECT) {
			if (alive(d))
				sp_shard_conn_eof(&F.sh, d->c);
			d->c = NULL;
		} else if (alive(d) || ((!d->c || !alive(d)) && dev_connect(d) && alive(d))) {
			if (op == FUZZ_OP_RAW)
				op_raw(d, data + off, n);
			else
				op_msg(d, data + off, n, op == FUZZ_OP_TAMPER);
		}
		off += n;
	}
	end_iteration();
	close_all();
	/* The clock moves on between inputs, as it would between connections. */
	F.now_ns += 1000000u;
	F.wall_ms += 1;
	return 0;
}
