/* SPDX-License-Identifier: Apache-2.0 */
/*
 * seed_targets.c: writes the seed corpora of fuzz_shard, fuzz_store_codec
 * and fuzz_config, generated from the code that makes the real thing, so the
 * seeds follow the code rather than hand-made bytes:
 *
 *   sealpost-fuzz-seeds-targets DIR [SOURCE_DIR]
 *
 * DIR/fuzz_shard (the limits are fuzz_shard.c's small ones): device sessions as a client drives them (frames encoded
 * by lib/wire's sp_frame_put, the encoder lib/session uses for every frame
 * a client sends): sends to offline and online devices, backlogs, Drained,
 * acks of the seqs a fresh store assigns (1, 2, ...), online-only,
 * dedup retries, quotas, refusals, stalls, takeovers, expiry, bad frames.
 * DIR/fuzz_store_codec: every record kind, encoded by the store's codec.
 * DIR/fuzz_ws: upgrade requests (honest, with an allowed and a refused
 * origin, malformed) followed by masked frames of every kind: the start of
 * an XX handshake in binary messages, fragments, ping, text, close.
 * DIR/fuzz_merkle: log trailers, consistency proofs, wrapped plaintexts
 * and STHs made by lib/crypto/sp_sth.c over fuzz_merkle.c's 64-leaf tree,
 * signed with its fixed log key.
 * DIR/fuzz_config: packaging/sealpostd.conf from SOURCE_DIR (the config
 * file the package installs), the configuration --check-config prints for
 * the defaults, and command lines.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "fuzz/shard_peer.h"
#include "sp_config.h"
#include "sp_devlist.h"
#include "sp_frame.h"
#include "sp_merkle.h"
#include "sp_noise.h"
#include "sp_prekey.h"
#include "sp_sth.h"
#include "sp_store.h"
#include "sp_store_codec.h"

static char dir[4096];
static uint8_t pub[FUZZ_SHARD_DEVS][SP_KEY_LEN];

static void die(const char *what)
{
	fprintf(stderr, "sealpost-fuzz-seeds-targets: %s\n", what);
	exit(1);
}

static void put(const char *target, const char *name, const uint8_t *p, size_t n)
{
	char path[8192];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, target);
	if (mkdir(path, 0755) && errno != EEXIST)
		die(path);
	snprintf(path, sizeof(path), "%s/%s/%s", dir, target, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f))
		die(path);
}

/* --- fuzz_shard ---------------------------------------------------------------- */

static uint8_t in[1 << 18];
static size_t in_len;
static uint8_t plain[SP_TRANSPORT_PLAINTEXT_MAX];
static size_t plain_len;

static void begin(bool store)
{
	in[0] = store ? FUZZ_SHARD_STORE : 0;
	in_len = 1;
	plain_len = 0;
}

static void record(unsigned op, unsigned dev, const uint8_t *p, size_t n)
{
	if (in_len + 4 + n > sizeof(in))
		die("seed too long");
	in[in_len++] = (uint8_t)op;
	in[in_len++] = (uint8_t)dev;
	in[in_len++] = (uint8_t)(n >> 8);
	in[in_len++] = (uint8_t)n;
	if (n)  /* p may be NULL for an empty record */
		memcpy(in + in_len, p, n);
	in_len += n;
}

static void frame(const struct sp_frame *f)
{
	if (sp_frame_put(plain, sizeof(plain), &plain_len, f))
		die("frame");
}

static void send_env(const uint8_t *to, uint64_t id, uint32_t flags, size_t body_len, uint8_t fill)
{
	static uint8_t body[SP_BODY_MAX];
	struct sp_frame f;

	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_SEND;
	memcpy(f.u.send.to, to, SP_KEY_LEN);
	f.u.send.to_ok = 1;
	f.u.send.client_id = id;
	f.u.send.flags = flags;
	memset(body, fill, body_len);
	f.body = body;
	f.body_len = body_len;
	frame(&f);
}

static void ping(uint64_t id)
{
	struct sp_frame f = { .type = SP_FRAME_PING, .u.ping.id = id };

	frame(&f);
}

static void ack(const uint64_t *seqs, uint32_t n)
{
	struct sp_frame f;

	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_ACK;
	memcpy(f.u.ack.seqs, seqs, n * sizeof(*seqs));
	f.u.ack.count = n;
	frame(&f);
}

/* The frames queued so far, as one transport message from dev. */
static void msg(unsigned dev)
{
	record(FUZZ_OP_MSG, dev, plain, plain_len);
	plain_len = 0;
}

static void iter(uint32_t ms)
{
	uint8_t b[4] = { (uint8_t)(ms >> 24), (uint8_t)(ms >> 16), (uint8_t)(ms >> 8), (uint8_t)ms };

	record(FUZZ_OP_ITER, 0, b, sizeof(b));
}

/* An upload of device d (fuzz_shard's fixed keys): a signed prekey and n
 * one-time prekeys with ids first.., signed by signer's key (d: honest). */
static void prekey_upload(unsigned d, unsigned signer, uint32_t first, uint32_t n, uint64_t cid)
{
	static uint8_t body[SP_PREKEY_UPLOAD_MAXLEN];
	struct sp_prekey spk, otk[16];
	uint8_t priv[SP_KEY_LEN], ed[SP_KEY_LEN], sk[SP_KEY_LEN];
	struct sp_frame f;
	size_t len;

	fuzz_shard_dev_priv(priv, signer);
	if (sp_xeddsa_public(ed, priv))
		die("xeddsa");
	memset(&spk, 0, sizeof(spk));
	spk.kind = SP_PREKEY_KIND_SIGNED;
	spk.id = 1;
	spk.created_s = 1700000000;
	for (uint32_t i = 0; i <= n && i < 16; i++) {
		struct sp_prekey *k = i ? &otk[i - 1] : &spk;

		if (i) {
			memset(k, 0, sizeof(*k));
			k->kind = SP_PREKEY_KIND_ONETIME;
			k->id = first + i - 1;
			k->created_s = 1700000000;
		}
		memset(sk, (int)(0x30 + i), sizeof(sk));
		crypto_scalarmult_base(k->pub, sk);
		if (sp_prekey_sign(k, pub[d], priv))
			die("prekey sign");
	}
	if (sp_prekey_upload_encode(ed, &spk, otk, n, body, sizeof(body), &len))
		die("prekey upload");
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_PREKEY_UPLOAD;
	f.u.prekey.client_id = cid;
	f.body = body;
	f.body_len = len;
	frame(&f);
}

static void prekey_fetch(unsigned d, uint64_t cid)
{
	struct sp_frame f;

	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_PREKEY_FETCH;
	f.u.prekey.client_id = cid;
	memcpy(f.u.prekey.device, pub[d], SP_KEY_LEN);
	f.u.prekey.device_ok = 1;
	frame(&f);
}

static void prekey_seeds(void)
{
	for (int store = 0; store < 2; store++) {
		char name[64];

		/* Upload, fetched by two devices past exhaustion (PrekeyLow to
		 * the owner), an upload above the limits, a forged one. */
		begin(store);
		ping(1);
		msg(0);
		prekey_upload(0, 0, 10, 3, 1);
		msg(0);
		iter(1);
		for (uint64_t i = 0; i < 3; i++)
			prekey_fetch(0, 10 + i);
		msg(1);
		prekey_fetch(0, 20);
		prekey_fetch(1, 21);            /* none on file */
		msg(2);
		iter(1);
		prekey_upload(0, 0, 100, 9, 2); /* above prekey-upload-max (8) */
		prekey_upload(0, 1, 200, 2, 3); /* signed by device 1 */
		prekey_upload(0, 0, 300, 8, 4); /* 8 more: 11 on file */
		prekey_upload(0, 0, 400, 2, 5); /* past prekey-stock-max (12) */
		msg(0);
		iter(1);
		snprintf(name, sizeof(name), "prekeys_%d", store);
		put("fuzz_shard", name, in, in_len);
	}
}

static void shard_seeds(void)
{
	static const uint64_t s123[] = { 1, 2, 3 };
	uint8_t bad[SP_KEY_LEN];

	for (int store = 0; store < 2; store++) {
		char name[64];

		/* Mail for an offline device, its backlog, Drained, acks. */
		begin(store);
		for (uint64_t i = 1; i <= 3; i++)
			send_env(pub[1], 100 + i, 0, 40 * i, (uint8_t)i);
		msg(0);
		iter(5);
		ping(1);
		msg(1);
		iter(5);
		ack(s123, 3);
		ping(2);
		msg(1);
		iter(5);
		snprintf(name, sizeof(name), "backlog_ack_%d", store);
		put("fuzz_shard", name, in, in_len);

		/* Live delivery both ways, online-only to online and offline. */
		begin(store);
		ping(1);
		msg(1);
		iter(1);
		send_env(pub[1], 7, 0, 100, 0xaa);
		send_env(pub[1], 8, SP_SEND_ONLINE_ONLY, 100, 0xbb);
		send_env(pub[2], 9, SP_SEND_ONLINE_ONLY, 10, 0xcc);
		ping(3);
		send_env(pub[0], 10, 0, 5, 0xdd);       /* to oneself */
		msg(0);
		iter(1);
		send_env(pub[0], 11, 0, 64, 0x11);
		msg(1);
		iter(1);
		snprintf(name, sizeof(name), "live_%d", store);
		put("fuzz_shard", name, in, in_len);

		/* Quota, dedup, refusals. */
		begin(store);
		for (uint64_t i = 0; i < 20; i++)
			send_env(pub[2], 200 + i, 0, 10, (uint8_t)i);
		send_env(pub[2], 200, 0, 10, 0);         /* a retry of the first */
		send_env(pub[2], 300, 0, 2001, 1);       /* above max_envelope */
		memset(bad, 0, sizeof(bad));
		send_env(bad, 301, 0, 10, 2);            /* low order */
		memset(bad, 0xff, sizeof(bad));
		send_env(bad, 302, 0, 10, 3);            /* not canonical */
		ping(4);
		msg(0);
		iter(1);
		snprintf(name, sizeof(name), "quota_refusals_%d", store);
		put("fuzz_shard", name, in, in_len);

		/* A stalled reader: busy, then slow consumer. */
		begin(store);
		ping(1);
		msg(1);
		record(FUZZ_OP_STALL, 1, (const uint8_t[]){ 1 }, 1);
		iter(1);
		for (int k = 0; k < 4; k++) {
			for (uint64_t i = 0; i < 6; i++)
				send_env(pub[1], 400 + 6 * (uint64_t)k + i,
				     i % 2 ? SP_SEND_ONLINE_ONLY : 0, 900, (uint8_t)i);
			msg(0);
			iter(1);
		}
		record(FUZZ_OP_STALL, 1, (const uint8_t[]){ 0 }, 1);
		iter(1);
		snprintf(name, sizeof(name), "stall_%d", store);
		put("fuzz_shard", name, in, in_len);

		/* Takeover, reconnect, expiry. */
		begin(store);
		send_env(pub[2], 500, 0, 30, 5);
		msg(0);
		iter(1);
		ping(1);
		msg(2);
		record(FUZZ_OP_RECONNECT, 2, NULL, 0);
		ping(2);
		msg(2);
		iter(1);
		send_env(pub[1], 501, 0, 30, 6);
		msg(0);
		iter(61000);
		record(FUZZ_OP_TICK, 0, NULL, 0);
		iter(1);
		ping(3);
		msg(1);
		iter(1);
		snprintf(name, sizeof(name), "reconnect_expiry_%d", store);
		put("fuzz_shard", name, in, in_len);

		/* Bad input: a frame of the wrong direction, a truncated frame,
		 * a tampered message, raw bytes. */
		begin(store);
		{
			struct sp_frame f = { .type = SP_FRAME_DELIVER, .u.deliver.seq = 1 };

			ping(1);
			msg(0);
			frame(&f);
			msg(1);
			send_env(pub[1], 600, 0, 50, 7);
			plain_len -= 10;
			msg(2);
			ping(2);
			record(FUZZ_OP_TAMPER, 0, plain, plain_len);
			plain_len = 0;
			record(FUZZ_OP_RAW, 0, (const uint8_t[]){ 0x00, 0x40, 1, 2, 3 }, 5);
			iter(1);
		}
		snprintf(name, sizeof(name), "bad_input_%d", store);
		put("fuzz_shard", name, in, in_len);
	}
}

/* A fan-out group from dev 0 to account acct (version v) with a copy for
 * each dev in mask (bit d), count copies announced. */
static void fanout(const uint8_t *acct, uint64_t id, uint64_t v, uint32_t count, unsigned mask)
{
	static uint8_t body[64];
	struct sp_frame f;

	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_FANOUT_BEGIN;
	memcpy(f.u.fanout.key, acct, SP_ACCOUNT_LEN);
	f.u.fanout.key_ok = 1;
	f.u.fanout.group_id = id;
	f.u.fanout.version = v;
	f.u.fanout.count = count;
	frame(&f);
	for (unsigned d = 0; d < FUZZ_SHARD_DEVS; d++) {
		if (!(mask & (1u << d)))
			continue;
		memset(&f, 0, sizeof(f));
		f.type = SP_FRAME_FANOUT_COPY;
		memcpy(f.u.fanout.key, pub[d], SP_KEY_LEN);
		f.u.fanout.key_ok = 1;
		f.u.fanout.group_id = id;
		memset(body, 0x30 + (int)d, sizeof(body));
		f.body = body;
		f.body_len = sizeof(body);
		frame(&f);
	}
}

/* fuzz_shard with an account (PROTOCOL.md 16): dev 0 publishes a list of
 * all three devices (a fixed account key), then fan-out groups: accepted,
 * mismatched, a device twice, cut short by a Ping, one copy short. */
static void fanout_seeds(void)
{
	uint8_t seed[crypto_sign_SEEDBYTES], apk[SP_ACCOUNT_LEN], ask[64];
	static uint8_t list[SP_DEVLIST_MAX];
	struct sp_devlist l;
	struct sp_frame f;
	size_t len = 0;

	memset(seed, 0x77, sizeof(seed));
	crypto_sign_seed_keypair(apk, ask, seed);
	memset(&l, 0, sizeof(l));
	memcpy(l.account, apk, SP_ACCOUNT_LEN);
	l.version = 1;
	for (unsigned d = 0; d < FUZZ_SHARD_DEVS; d++)
		if (sp_devlist_add(&l, pub[d], "d", 1700000000))
			die("devlist");
	if (sp_devlist_sign(&l, ask, list, sizeof(list), &len))
		die("sign");
	sodium_memzero(ask, sizeof(ask));
	begin(true);
	memset(&f, 0, sizeof(f));
	f.type = SP_FRAME_LIST_PUT;
	memcpy(f.u.list.account, apk, SP_ACCOUNT_LEN);
	f.u.list.account_ok = 1;
	f.u.list.client_id = 1;
	f.body = list;
	f.body_len = len;
	frame(&f);
	msg(0);
	iter(1);
	ping(9);                        /* devs 1 and 2 connect */
	msg(1);
	ping(9);
	msg(2);
	fanout(apk, 10, 1, 2, 0x6);     /* accepted */
	msg(0);
	fanout(apk, 11, 1, 1, 0x2);     /* mismatch: dev 2 missing */
	fanout(apk, 12, 2, 2, 0x6);     /* mismatch: version */
	msg(0);
	fanout(apk, 13, 1, 3, 0x7);     /* dev 0 itself: stale */
	fanout(apk, 14, 1, 3, 0x6);     /* cut short by the next Begin */
	fanout(apk, 15, 1, 2, 0x2);     /* one short: refused at the tick */
	msg(0);
	iter(20000);
	record(FUZZ_OP_TICK, 0, NULL, 0);
	ping(16);
	msg(0);
	iter(1);
	put("fuzz_shard", "fanout", in, in_len);
}

/* --- fuzz_store_codec ----------------------------------------------------------- */

static void codec_seed(const char *name, uint8_t which, const uint8_t *p, size_t n)
{
	uint8_t b[256];

	b[0] = which;
	memcpy(b + 1, p, n);
	put("fuzz_store_codec", name, b, n + 1);
}

static void codec_seeds(void)
{
	uint8_t v[SP_STORE_MAILBOX_HDR_LEN + 64], id[SP_STORE_DEDUP_ID_LEN], key[64];
	struct sp_store_mbox_hdr h = { .body_len = 64, .accepted_ms = 1700000000000ull,
					 .expires_ms = 1702592000000ull, .share_tag = 0x5a17c3,
					 .has_tag = true };
	struct sp_store_meta m = { (1ull << 32) + 5, 3, 190 };

	sp_store_mbox_hdr_encode(v, &h);
	memset(v + SP_STORE_MAILBOX_HDR_LEN, 0x5a, 64);
	codec_seed("mailbox_value", 0, v, sizeof(v));
	sp_store_meta_encode(v, &m);
	codec_seed("meta", 1, v, SP_STORE_META_LEN);
	sp_store_dedup_encode(v, 42, 1700086400000ull);
	codec_seed("dedup", 2, v, SP_STORE_DEDUP_VALUE_LEN);
	sp_store_epoch_encode(v, 3);
	codec_seed("epoch", 3, v, SP_STORE_EPOCH_LEN);
	sp_store_mailbox_key(key, pub[0], 7);
	codec_seed("mailbox_key", 4, key, SP_STORE_MAILBOX_KEY_LEN);
	sp_store_expiry_mailbox_key(key, 1702592000000ull, pub[1], 9);
	codec_seed("expiry_mailbox_key", 4, key, SP_STORE_EXPIRY_MAILBOX_KEY_LEN);
	memset(id, 0x3c, sizeof(id));
	sp_store_expiry_dedup_key(key, 1700086400000ull, id);
	codec_seed("expiry_dedup_key", 4, key, SP_STORE_EXPIRY_DEDUP_KEY_LEN);
	{
		struct sp_store_prekey_meta pm = { .has_signed = true, .count = 7 };
		uint8_t pv[SP_STORE_PREKEY_META_LEN];

		memset(pm.edkey, 0x21, sizeof(pm.edkey));
		memset(pm.spk, 0x01, sizeof(pm.spk));
		sp_store_prekey_meta_encode(pv, &pm);
		codec_seed("prekey_meta", 5, pv, sizeof(pv));
	}
}

/* --- fuzz_merkle ------------------------------------------------------------------ */

/* fuzz_merkle.c's fixed log key seed and leaves (the same values) */
static const uint8_t merkle_log_seed[crypto_sign_SEEDBYTES] = { 0x10, 0x6c, 0x06, 1, 2, 3 };

static void merkle_seeds(void)
{
	static sp_merkle_hash leaves[64];
	struct sp_merkle_mem mem = { leaves, 64 };
	uint8_t pk[SP_LOG_KEY_LEN], sk[SP_LOG_SECRET_LEN];
	uint8_t b[1 + SP_LOG_TRAILER_MAX + SP_CONSISTENCY_MAX];
	const uint64_t pairs[][2] = { { 1, 1 }, { 3, 7 }, { 8, 64 }, { 21, 50 }, { 63, 64 } };
	struct sp_consistency con;
	struct sp_inclusion inc;
	struct sp_sth sth = { .tree_size = 37, .timestamp_ms = 1790000000000 };
	char name[64];
	size_t len;

	if (sodium_init() < 0 || crypto_sign_seed_keypair(pk, sk, merkle_log_seed))
		die("sodium");
	for (int i = 0; i < 64; i++)
		sp_merkle_leaf_hash(leaves[i], (const uint8_t *)&i, sizeof(i));
	if (sp_merkle_root(sp_merkle_mem_subtree, &mem, sth.tree_size, sth.root) ||
	    sp_sth_sign(&sth, sk))
		die("sth");
	for (uint64_t idx = 0; idx < sth.tree_size; idx += 12) {
		inc.index = idx;
		if (sp_merkle_inclusion_proof(sp_merkle_mem_subtree, &mem, idx, sth.tree_size, inc.path,
					      SP_MERKLE_PROOF_MAX, &inc.count))
			die("inclusion");
		b[0] = 0;
		if (sp_log_trailer_encode(&sth, &inc, b + 1, sizeof(b) - 1, &len))
			die("trailer");
		snprintf(name, sizeof(name), "trailer_%u", (unsigned)idx);
		put("fuzz_merkle", name, b, len + 1);
	}
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		con.first = pairs[i][0];
		con.second = pairs[i][1];
		if (sp_merkle_consistency_proof(sp_merkle_mem_subtree, &mem, con.first, con.second,
						con.path, SP_MERKLE_PROOF_MAX, &con.count))
			die("consistency");
		b[0] = 1;
		if (sp_consistency_encode(&con, b + 1, sizeof(b) - 1, &len))
			die("consistency");
		snprintf(name, sizeof(name), "consistency_%u_%u", (unsigned)con.first,
			 (unsigned)con.second);
		put("fuzz_merkle", name, b, len + 1);
	}
	b[0] = 2;
	sp_sth_wrap(pk, &sth, b + 1);
	memcpy(b + 1 + SP_STH_WRAP_LEN, "hello", 5);
	put("fuzz_merkle", "wrapped", b, 1 + SP_STH_WRAP_LEN + 5);
	b[0] = 3;
	sp_sth_encode(&sth, b + 1);
	put("fuzz_merkle", "sth", b, 1 + SP_STH_LEN);
}

/* --- fuzz_config ------------------------------------------------------------------ */

static void config_seeds(const char *src)
{
	static const char argv_seed[] = "\001--listen\0[::1]:7400\0--fsync\0always\0--max-envelope=2000"
					"\0--check-config\0--test-rekey-messages\0005";
	static uint8_t buf[1 << 16];
	struct sp_config c;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if (src) {
		char path[8192];
		size_t n;

		snprintf(path, sizeof(path), "%s/packaging/sealpostd.conf", src);
		f = fopen(path, "rb");
		if (!f)
			die(path);
		buf[0] = 0;
		n = fread(buf + 1, 1, sizeof(buf) - 1, f);
		fclose(f);
		put("fuzz_config", "packaged_conf", buf, n + 1);
	}
	sp_config_defaults(&c);
	f = open_memstream(&text, &len);
	if (!f)
		die("memstream");
	sp_config_print(f, &c);
	fclose(f);
	if (len + 1 > sizeof(buf))
		die("printed config too long");
	buf[0] = 0;
	memcpy(buf + 1, text, len);
	put("fuzz_config", "check_config_defaults", buf, len + 1);
	free(text);
	put("fuzz_config", "argv", (const uint8_t *)argv_seed, sizeof(argv_seed) - 1);
}

/* --- fuzz_ws ------------------------------------------------------------------ */

static uint8_t ws_in[8192];
static size_t ws_len;

static void ws_add(const void *p, size_t n)
{
	if (ws_len + n > sizeof(ws_in))
		die("ws seed too long");
	memcpy(ws_in + ws_len, p, n);
	ws_len += n;
}

/* A masked client frame (mask 01 02 03 04). */
static void ws_frame(uint8_t first, const uint8_t *p, size_t n)
{
	static const uint8_t mask[4] = { 1, 2, 3, 4 };
	uint8_t h[4] = { first, (uint8_t)(0x80 | (n < 126 ? n : 126)) };

	ws_add(h, 2);
	if (n >= 126) {
		h[0] = (uint8_t)(n >> 8);
		h[1] = (uint8_t)n;
		ws_add(h, 2);
	}
	ws_add(mask, 4);
	for (size_t i = 0; i < n; i++) {
		uint8_t b = p[i] ^ mask[i & 3];

		ws_add(&b, 1);
	}
}

static void ws_request(uint8_t chunk, const char *extra)
{
	char req[1024];
	int n = snprintf(req, sizeof(req),
			 "GET /v1 HTTP/1.1\r\nHost: broker.example\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sealpost.v1\r\n%s\r\n",
			 extra);

	ws_len = 0;
	ws_add(&chunk, 1);
	ws_add(req, (size_t)n);
}

static void ws_seeds(void)
{
	static const char *const bad[] = {
		"GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n",
		("GET /v1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		 "Sec-WebSocket-Version: 8\r\n\r\n"),
		"POST /v1 HTTP/1.1\r\n\r\n",
	};
	uint8_t pre[SP_PREAMBLE_LEN + 2 + 32] = { 'S', 'E', 'A', 'L', SP_PROTOCOL_VERSION,
						  SP_PREAMBLE_PATTERN_XX, 0, 0, 0, 32 };
	uint8_t close[2] = { 0x03, 0xe8 };

	for (size_t i = 0; i < 32; i++)
		pre[SP_PREAMBLE_LEN + 2 + i] = (uint8_t)(9 * i + 1);
	ws_request(255, "");
	ws_frame(0x82, pre, sizeof(pre));
	ws_frame(0x89, (const uint8_t *)"ping", 4);
	ws_frame(0x88, close, sizeof(close));
	put("fuzz_ws", "xx_start_ping_close", ws_in, ws_len);

	ws_request(6, "Origin: https://a.example\r\n");
	ws_frame(0x02, pre, 5);                 /* fragments, a ping between them */
	ws_frame(0x89, NULL, 0);
	ws_frame(0x80, pre + 5, sizeof(pre) - 5);
	put("fuzz_ws", "fragments_small_receives", ws_in, ws_len);

	ws_request(63, "");
	ws_frame(0x81, (const uint8_t *)"text", 4);
	put("fuzz_ws", "text", ws_in, ws_len);

	ws_request(255, "Origin: https://evil.example\r\n");
	put("fuzz_ws", "forbidden_origin", ws_in, ws_len);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char name[32];

		ws_len = 0;
		ws_add(&(uint8_t){ 255 }, 1);
		ws_add(bad[i], strlen(bad[i]));
		snprintf(name, sizeof(name), "bad_request_%zu", i);
		put("fuzz_ws", name, ws_in, ws_len);
	}
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: sealpost-fuzz-seeds-targets DIR [SOURCE_DIR]\n");
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	if (mkdir(dir, 0755) && errno != EEXIST)
		die(dir);
	for (unsigned d = 0; d < FUZZ_SHARD_DEVS; d++) {
		uint8_t priv[SP_KEY_LEN];

		fuzz_shard_dev_priv(priv, d);
		if (sp_noise_public_key(pub[d], priv))
			die("key");
	}
	shard_seeds();
	fanout_seeds();
	prekey_seeds();
	codec_seeds();
	merkle_seeds();
	config_seeds(argc == 3 ? argv[2] : NULL);
	ws_seeds();
	return 0;
}
