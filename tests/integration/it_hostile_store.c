/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_hostile_store.c: attacks on the mailbox store, against a real sealpostd
 * with a real RocksDB directory, driven by the raw protocol client
 * (support_raw.h). Each test names the limit that must stop its attack and
 * checks what an honest device still gets. Figures (latencies, rates) are
 * printed, never asserted.
 *
 *   expiry_storm: many envelopes expire in the same moment; the sweep runs
 *       in bounded steps that resume where the last stopped, and the loop
 *       answers pings meanwhile (latency printed).
 *   seq_increases_after_empty: a device whose mailbox emptied (its record
 *       deleted) still gets increasing seqs, across kill -9 too.
 *   disk_fill: one sender fills a small file system (a tmpfs of its own,
 *       in a private mount namespace) with 60 KB envelopes to fresh
 *       recipients: store-min-free refuses them (ERR_MAILBOX_FULL) before
 *       the disk is full; acks still work; then the disk is filled to the
 *       last byte from outside, the broker is killed -9 and restarts
 *       (store-ballast gives it room) and delivers what it held.
 *   sender_rate: a flooding sender is held to sender-rate/sender-burst
 *       (ERR_RATE_LIMITED) while another sender to the same device is not.
 *   mailbox_share: an attacker who knows a device's key fills only its
 *       mailbox-sender-share of that mailbox; an honest sender is accepted.
 *   acked_data_leaves_disk: after an ack and one store-scrub-interval, the
 *       recipient key and the ciphertext are in no file of the data dir.
 *   wal_bounded: the WAL files stay within store-max-wal.
 *   blob_files: with blob files on, kill -9 loses no envelope and acked
 *     bodies leave the blob files too.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "support.h"
#include "support_raw.h"

enum {
	TIMEOUT_MS = 10000,
	PIPE = 200,                     /* Send frames per transport message */
};

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- the metrics endpoint ------------------------------------------------- */

static double metric(const struct sp_it_broker *b, const char *series)
{
	size_t sl = strlen(series);
	char *body = NULL;
	double v = -1;

	assert_int_equal(sp_it_http_get(b->metrics_port, "/metrics", &body), 200);
	for (const char *l = body; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (strncmp(l, series, sl) == 0 && l[sl] == ' ') {
			v = strtod(l + sl + 1, NULL);
			break;
		}
	free(body);
	if (v < 0)
		fail_msg("series %s missing", series);
	return v;
}

/* Waits (bounded by bound_ms) until series reaches want; returns the last value. */
static double wait_metric(const struct sp_it_broker *b, const char *series, double want,
			  int bound_ms)
{
	double v = -1;

	for (int waited = 0; waited < bound_ms; waited += 50) {
		v = metric(b, series);
		if (v >= want)
			break;
		sleep_ms(50);
	}
	return v;
}

/* Waits (bounded) until series equals want: gauges move at the commit that
 * follows the counters, so a scrape may fall between them. */
static double wait_metric_eq(const struct sp_it_broker *b, const char *series, double want,
			     int bound_ms)
{
	double v = -1;

	for (int waited = 0; waited < bound_ms; waited += 50) {
		v = metric(b, series);
		if (v == want)
			break;
		sleep_ms(50);
	}
	return v;
}

/* ---- traffic ----------------------------------------------------------------- */

static void random_key(uint8_t pub[SP_KEY_LEN])
{
	uint8_t priv[SP_KEY_LEN];

	crypto_box_keypair(pub, priv);
	sodium_memzero(priv, sizeof(priv));
}

struct tally {
	uint32_t by_status[64];
	uint32_t total;
};

/*
 * n durable Sends of body_len bytes from c, to[i % nto], client ids from
 * cid0 (0: none), PIPE frames per transport message; every result tallied.
 */
static void send_many(struct sp_raw *c, const uint8_t (*to)[SP_KEY_LEN], size_t nto, uint32_t n,
		      size_t body_len, uint64_t cid0, struct tally *t)
{
	static uint8_t buf[SP_TRANSPORT_PLAINTEXT_MAX];
	static uint8_t body[SP_BODY_MAX];
	uint32_t sent = 0;

	assert_true(body_len <= sizeof(body));
	randombytes_buf(body, sizeof(body));
	while (sent < n) {
		size_t off = 0;
		uint32_t k = 0;

		while (sent + k < n && k < PIPE &&
		       off + body_len + 128 < sizeof(buf)) {
			uint32_t i = sent + k;

			memcpy(body, &i, sizeof(i));
			assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, to[i % nto], SP_KEY_LEN,
							 cid0 ? cid0 + i : 0, 0, body, body_len), 0);
			k++;
		}
		assert_int_equal(sp_raw_send_plain(c, buf, off), 0);
		for (uint32_t j = 0; j < k; j++) {
			struct sp_raw_frame f;

			assert_int_equal(sp_raw_wait_frame(c, SP_FRAME_SEND_RESULT, &f, TIMEOUT_MS), 0);
			t->by_status[f.status < 64 ? f.status : 63]++;
			t->total++;
		}
		sent += k;
	}
}

/* One Ping/Pong round trip; returns its time in microseconds. */
static uint64_t ping(struct sp_raw *c, uint64_t id)
{
	uint8_t buf[64];
	size_t off = 0;
	struct sp_raw_frame f;
	uint64_t t0 = mono_us();

	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, id, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(c, buf, off), 0);
	assert_int_equal(sp_raw_wait_frame(c, SP_FRAME_PONG, &f, TIMEOUT_MS), 0);
	assert_true(f.id == id);
	return mono_us() - t0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* ---- expiry storm ------------------------------------------------------------ */

enum { STORM_N = 20000, STORM_RCPT = 8 };

static void test_expiry_storm(void **state)
{
	static uint8_t to[STORM_RCPT][SP_KEY_LEN];
	static uint64_t lat[4096];
	/* SP_STORM_BATCH / SP_STORM_BUDGET override the step bounds, to print
	 * the figures without them (e.g. 100000 and 1000: one step, no budget). */
	const char *batch = getenv("SP_STORM_BATCH") ? getenv("SP_STORM_BATCH") : "500";
	const char *budget = getenv("SP_STORM_BUDGET") ? getenv("SP_STORM_BUDGET") : "5";
	const char *args[] = { "--ttl", "1", "--mailbox-max-count", "100000",
			       "--expiry-sweep-batch", batch, "--expiry-sweep-budget", budget,
			       "--fsync", "never", NULL };
	/* A step stops once it has looked at --expiry-sweep-batch entries; a
	 * window record (broker/store "Expiry windows") names up to 64, so a
	 * step may look at 63 more. */
	double min_steps = (double)(STORM_N / (atoi(batch) + 63));
	struct sp_it_broker b;
	struct sp_raw snd, pinger;
	struct tally t = { 0 };
	double expired = 0, steps0, resumed;
	size_t nlat = 0;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, args), 0);
	for (int i = 0; i < STORM_RCPT; i++)
		random_key(to[i]);
	assert_int_equal(sp_raw_init(&snd), 0);
	assert_int_equal(sp_raw_open(&snd, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	assert_int_equal(sp_raw_init(&pinger), 0);
	assert_int_equal(sp_raw_open(&pinger, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);

	/* Sent within well under a second: they all expire within ~1 s of each other. */
	send_many(&snd, (const uint8_t (*)[SP_KEY_LEN])to, STORM_RCPT, STORM_N, 64, 0, &t);
	assert_int_equal(t.by_status[SP_STATUS_ACCEPTED], STORM_N);
	steps0 = metric(&b, "sealpost_expiry_sweep_steps_total");

	/* Pings throughout the sweep. */
	for (int i = 0; i < 600 && nlat < sizeof(lat) / sizeof(lat[0]); i++) {
		lat[nlat++] = ping(&pinger, (uint64_t)i + 1);
		if (i % 20 == 0) {
			expired = metric(&b, "sealpost_expired_total");
			if (expired >= STORM_N)
				break;
		}
		sleep_ms(10);
	}
	expired = wait_metric(&b, "sealpost_expired_total", STORM_N, 20000);
	assert_true(expired == STORM_N);
	resumed = metric(&b, "sealpost_expiry_sweep_resumed_total");
	/* At most 563 entries a step: 20,000 take at least 35 steps, each but
	 * the first resuming at the cursor of the one before. */
	assert_true(resumed >= min_steps - 1);
	assert_true(metric(&b, "sealpost_expiry_sweep_partial_total") >= min_steps - 1);
	assert_true(metric(&b, "sealpost_expiry_sweep_steps_total") - steps0 >= min_steps);
	assert_true(wait_metric_eq(&b, "sealpost_mailbox_entries", 0, 10000) == 0);
	qsort(lat, nlat, sizeof(lat[0]), cmp_u64);
	printf("expiry storm: %d envelopes expired in %.0f resumed steps; ping during the sweep: "
	       "median %.2f ms, p99 %.2f ms, max %.2f ms (%zu pings)\n",
	       STORM_N, resumed, lat[nlat / 2] / 1000.0, lat[nlat * 99 / 100] / 1000.0,
	       lat[nlat - 1] / 1000.0, nlat);
	/* Still answering. */
	ping(&pinger, 99999);
	sp_raw_close(&snd);
	sp_raw_close(&pinger);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/* ---- seqs after an emptied mailbox ------------------------------------------ */

/* Connects dev (a fresh sp_raw with its key) and reads its backlog up to
 * Drained: every Deliver's seq into seqs (cap), acked at once. Returns how many. */
static size_t drain_and_ack(struct sp_raw *dev, const struct sp_it_broker *b, uint64_t *seqs,
			    size_t cap)
{
	struct sp_raw_frame f;
	size_t n = 0;

	assert_int_equal(sp_raw_open(dev, b->port, SP_PREAMBLE_PATTERN_IK, b->server_pub), 0);
	for (;;) {
		assert_int_equal(sp_raw_recv_frame(dev, &f, TIMEOUT_MS), 0);
		if (f.type == SP_FRAME_DRAINED)
			break;
		if (f.type != SP_FRAME_DELIVER)
			continue;
		if (n < cap) {
			uint8_t buf[64];
			size_t off = 0;

			seqs[n++] = f.seq;
			assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_ACK, f.seq,
							   NULL, 0), 0);
			assert_int_equal(sp_raw_send_plain(dev, buf, off), 0);
		}
	}
	return n;
}

/* A device whose mailbox emptied has no record left in the store, yet every
 * seq it is given later is above the ones before, after kill -9 too. */
static void test_seq_increases_after_empty(void **state)
{
	const char *args[] = { "--fsync", "never", NULL };
	struct sp_it_broker b;
	struct sp_raw snd, rcpt;
	struct tally t = { 0 };
	uint64_t seqs[8], last = 0;
	uint8_t priv[SP_KEY_LEN], pub[SP_KEY_LEN];
	char dir[256];

	(void)state;
	assert_int_equal(sp_raw_init(&rcpt), 0);
	memcpy(priv, rcpt.s_priv, sizeof(priv));
	memcpy(pub, rcpt.s_pub, sizeof(pub));
	sp_raw_close(&rcpt);
	assert_int_equal(sp_it_broker_start(&b, NULL, args), 0);
	snprintf(dir, sizeof(dir), "%s", b.data_dir);
	for (int round = 0; round < 3; round++) {
		size_t n;

		assert_int_equal(sp_raw_init(&snd), 0);
		assert_int_equal(sp_raw_open(&snd, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
		send_many(&snd, (const uint8_t (*)[SP_KEY_LEN])pub, 1, 3, 16, 0, &t);
		sp_raw_close(&snd);
		assert_int_equal(sp_raw_init(&rcpt), 0);
		memcpy(rcpt.s_priv, priv, sizeof(priv));
		memcpy(rcpt.s_pub, pub, sizeof(pub));
		n = drain_and_ack(&rcpt, &b, seqs, 8);
		assert_int_equal(n, 3);
		for (size_t i = 0; i < n; i++) {
			assert_true(seqs[i] > last);
			last = seqs[i];
		}
		/* The acks are committed once a Ping after them is answered. */
		ping(&rcpt, 1);
		sp_raw_close(&rcpt);
		assert_true(wait_metric_eq(&b, "sealpost_mailbox_entries", 0, 10000) == 0);
		if (round == 1) {
			assert_true(sp_it_broker_kill(&b) >= 0);
		} else {
			assert_int_equal(sp_it_broker_stop(&b), 0);
		}
		if (round < 2)
			assert_int_equal(sp_it_broker_start(&b, dir, args), 0);
	}
	assert_int_equal(t.by_status[SP_STATUS_ACCEPTED], 9);
	sodium_memzero(priv, sizeof(priv));
	sp_it_rmrf(dir);
}

/* ---- disk fill ---------------------------------------------------------------- */

enum { FILL_MB = 48, FILL_BODY = 60000, FILL_HELD = 20 };

/* The test's own tmpfs in a private mount namespace (the broker, forked
 * later, shares it); 0, or -1 when this sandbox cannot mount (skipped). */
static int small_fs(const char *mnt)
{
	char opt[32];

	snprintf(opt, sizeof(opt), "size=%dm", FILL_MB);
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", mnt, "tmpfs", 0, opt) < 0)
		return -1;
	return 0;
}

static uint64_t free_bytes(const char *path)
{
	struct statvfs v;

	assert_int_equal(statvfs(path, &v), 0);
	return (uint64_t)v.f_bavail * v.f_frsize;
}

/* Fills the file system of dir to the last byte: returns bytes written. */
static uint64_t fill_up(const char *dir)
{
	static uint8_t chunk[65536];
	char path[300];
	uint64_t n = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/filler", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	for (size_t len = sizeof(chunk); len >= 512;) {
		ssize_t w = write(fd, chunk, len);

		if (w > 0)
			n += (uint64_t)w;
		else
			len /= 2;
	}
	close(fd);
	return n;
}

static void test_disk_fill(void **state)
{
	static uint8_t fresh[64][SP_KEY_LEN];
	char mnt[] = "/tmp/it-hostile-fs-XXXXXX", dir[300];
	/* SP_DISKFILL_UNBOUNDED=1: the same attack with the bounds off, to
	 * print what it did before them (nothing asserted then). */
	bool unbounded = getenv("SP_DISKFILL_UNBOUNDED") != NULL;
	const char *args[] = { "--fsync", "never", "--mailbox-max-bytes", "1073741824",
			       "--sender-byte-rate", "0", "--sender-rate", "0",
			       "--store-min-free", unbounded ? "0" : "8388608",
			       "--store-ballast", unbounded ? "0" : "4194304", NULL };
	struct sp_it_broker b;
	struct sp_raw snd, rcpt;
	struct tally held = { 0 }, t = { 0 };
	uint8_t priv[SP_KEY_LEN], pub[SP_KEY_LEN];
	uint64_t seqs[FILL_HELD * 2], t0, filled;
	size_t n;
	int rc;

	(void)state;
	assert_non_null(mkdtemp(mnt));
	if (small_fs(mnt) < 0) {
		rmdir(mnt);
		print_message("SKIP: cannot mount a tmpfs here (needs root)\n");
		skip();
	}
	snprintf(dir, sizeof(dir), "%s/data", mnt);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(sp_it_broker_start(&b, dir, args), 0);
	assert_int_equal(sp_raw_init(&rcpt), 0);
	memcpy(priv, rcpt.s_priv, sizeof(priv));
	memcpy(pub, rcpt.s_pub, sizeof(pub));
	assert_int_equal(sp_raw_init(&snd), 0);
	assert_int_equal(sp_raw_open(&snd, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	/* What an honest device has waiting. */
	send_many(&snd, (const uint8_t (*)[SP_KEY_LEN])pub, 1, FILL_HELD, 1000, 0, &held);
	assert_int_equal(held.by_status[SP_STATUS_ACCEPTED], FILL_HELD);

	/* The attack: 60 KB envelopes, each to a fresh recipient, until refused. */
	t0 = mono_us();
	for (int round = 0; round < 100; round++) {
		uint32_t before = t.by_status[SP_STATUS_ACCEPTED];

		for (int i = 0; i < 64; i++)
			random_key(fresh[i]);
		send_many(&snd, (const uint8_t (*)[SP_KEY_LEN])fresh, 64, 64, FILL_BODY, 0, &t);
		if (t.by_status[SP_STATUS_ACCEPTED] == before)
			break;
	}
	printf("disk fill: %u accepted (%.1f MB) in %.2f s, then %u mailbox_full, %u internal; "
	       "free space left %.1f MB of %d MB\n",
	       t.by_status[SP_STATUS_ACCEPTED], t.by_status[SP_STATUS_ACCEPTED] * FILL_BODY / 1e6,
	       (mono_us() - t0) / 1e6, t.by_status[SP_STATUS_ERR_MAILBOX_FULL],
	       t.by_status[SP_STATUS_ERR_INTERNAL], free_bytes(mnt) / 1e6, FILL_MB);
	if (!unbounded) {
		assert_true(t.by_status[SP_STATUS_ACCEPTED] > 100);
		assert_true(t.by_status[SP_STATUS_ERR_MAILBOX_FULL] > 0);
		assert_int_equal(t.by_status[SP_STATUS_ERR_INTERNAL], 0);
		assert_true(metric(&b, "sealpost_store_full_refused_total") > 0);
		assert_true(free_bytes(mnt) >= 4u << 20);
	}
	sp_raw_close(&snd);

	/* Acks still work on the refusing store: the device takes half. */
	n = drain_and_ack(&rcpt, &b, seqs, FILL_HELD / 2);
	printf("disk fill: honest device received %zu, acked %d\n", n, FILL_HELD / 2);
	ping(&rcpt, 7);
	sp_raw_close(&rcpt);

	/* Something else fills the disk to the last byte; kill -9; restart. */
	filled = fill_up(mnt);
	printf("disk fill: filler took the last %.1f MB; free now %.3f MB\n", filled / 1e6,
	       free_bytes(mnt) / 1e6);
	assert_true(sp_it_broker_kill(&b) >= 0);
	rc = sp_it_broker_start(&b, dir, args);
	printf("disk fill: restart on the full disk: %s\n", rc == 0 ? "started" : "FAILED");
	if (unbounded) {
		if (rc == 0)
			sp_it_broker_stop(&b);
		else
			sp_it_log_tail(&b, 5);
		umount2(mnt, MNT_DETACH);
		rmdir(mnt);
		return;
	}
	assert_int_equal(rc, 0);
	/* It delivers what it holds (the unacked half), and refuses new mail
	 * with a status, not an internal error. */
	assert_int_equal(sp_raw_init(&rcpt), 0);
	memcpy(rcpt.s_priv, priv, sizeof(priv));
	memcpy(rcpt.s_pub, pub, sizeof(pub));
	n = drain_and_ack(&rcpt, &b, seqs, FILL_HELD * 2);
	assert_int_equal(n, FILL_HELD - FILL_HELD / 2);
	ping(&rcpt, 8);
	assert_int_equal(sp_raw_init(&snd), 0);
	assert_int_equal(sp_raw_open(&snd, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	memset(&t, 0, sizeof(t));
	send_many(&snd, (const uint8_t (*)[SP_KEY_LEN])pub, 1, 4, FILL_BODY, 0, &t);
	assert_int_equal(t.by_status[SP_STATUS_ERR_MAILBOX_FULL], 4);
	sp_raw_close(&snd);
	sp_raw_close(&rcpt);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sodium_memzero(priv, sizeof(priv));
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
}

/* ---- sender budgets ------------------------------------------------------------ */

/* One device sending as fast as it can is held to its budget with
 * ERR_RATE_LIMITED; another device sending to the same recipient at the
 * same time is not. */
static void test_sender_rate(void **state)
{
	const char *args[] = { "--fsync", "never", "--sender-rate", "50", "--sender-burst", "200",
			       NULL };
	static uint8_t to[1][SP_KEY_LEN];
	struct sp_it_broker b;
	struct sp_raw flood, honest;
	struct tally tf = { 0 }, th = { 0 };
	uint64_t t0 = mono_us();
	double secs;

	(void)state;
	random_key(to[0]);
	assert_int_equal(sp_it_broker_start(&b, NULL, args), 0);
	assert_int_equal(sp_raw_init(&flood), 0);
	assert_int_equal(sp_raw_open(&flood, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	assert_int_equal(sp_raw_init(&honest), 0);
	assert_int_equal(sp_raw_open(&honest, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	send_many(&flood, (const uint8_t (*)[SP_KEY_LEN])to, 1, 2000, 32, 0, &tf);
	send_many(&honest, (const uint8_t (*)[SP_KEY_LEN])to, 1, 10, 32, 0, &th);
	secs = (double)(mono_us() - t0) / 1e6;
	printf("sender rate: flood %u accepted, %u rate_limited in %.2f s; honest %u of 10 accepted\n",
	       tf.by_status[SP_STATUS_ACCEPTED], tf.by_status[SP_STATUS_ERR_RATE_LIMITED], secs,
	       th.by_status[SP_STATUS_ACCEPTED]);
	/* At most the burst plus what 50/s refilled meanwhile. */
	assert_true(tf.by_status[SP_STATUS_ACCEPTED] >= 200);
	assert_true(tf.by_status[SP_STATUS_ACCEPTED] <= 200 + 50 * (secs + 1));
	assert_int_equal(tf.by_status[SP_STATUS_ACCEPTED] + tf.by_status[SP_STATUS_ERR_RATE_LIMITED],
			 2000);
	assert_int_equal(th.by_status[SP_STATUS_ACCEPTED], 10);
	assert_true(metric(&b, "sealpost_envelopes_refused_total{reason=\"rate_limited\"}") ==
		    tf.by_status[SP_STATUS_ERR_RATE_LIMITED]);
	sp_raw_close(&flood);
	sp_raw_close(&honest);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/* ---- mailbox shares --------------------------------------------------------- */

/* Knowing a device's key, an attacker fills its share of that mailbox and is
 * refused; an honest sender to the same device is still accepted. */
static void test_mailbox_share(void **state)
{
	/* SP_SHARE_OFF=1: the attack without the share, to print the figure
	 * from before it (nothing asserted then). */
	bool off = getenv("SP_SHARE_OFF") != NULL;
	const char *args[] = { "--fsync", "never", "--mailbox-max-count", "1000",
			       "--mailbox-sender-share", off ? "100" : "25", NULL };
	static uint8_t victim[1][SP_KEY_LEN];
	struct sp_it_broker b;
	struct sp_raw att, hon;
	struct tally ta = { 0 }, th = { 0 };

	(void)state;
	random_key(victim[0]);
	assert_int_equal(sp_it_broker_start(&b, NULL, args), 0);
	assert_int_equal(sp_raw_init(&att), 0);
	assert_int_equal(sp_raw_open(&att, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	assert_int_equal(sp_raw_init(&hon), 0);
	assert_int_equal(sp_raw_open(&hon, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	/* Before the share: 1,000 empty envelopes filled the whole quota. */
	send_many(&att, (const uint8_t (*)[SP_KEY_LEN])victim, 1, 1000, 0, 0, &ta);
	send_many(&hon, (const uint8_t (*)[SP_KEY_LEN])victim, 1, 100, 16, 0, &th);
	printf("mailbox share: attacker %u accepted, %u mailbox_full; honest %u of 100 accepted\n",
	       ta.by_status[SP_STATUS_ACCEPTED], ta.by_status[SP_STATUS_ERR_MAILBOX_FULL],
	       th.by_status[SP_STATUS_ACCEPTED]);
	if (!off) {
		assert_int_equal(ta.by_status[SP_STATUS_ACCEPTED], 250);
		assert_int_equal(ta.by_status[SP_STATUS_ERR_MAILBOX_FULL], 750);
		assert_int_equal(th.by_status[SP_STATUS_ACCEPTED], 100);
		assert_true(metric(&b, "sealpost_mailbox_share_refused_total") == 750);
	}
	sp_raw_close(&att);
	sp_raw_close(&hon);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/* The share survives a restart: counted again from the stored share tags
 * (store format 2) at the mailbox's first enqueue after the start, so an
 * attacker cannot wait for a restart to fill the rest of the mailbox. */
static void test_mailbox_share_restart(void **state)
{
	const char *args[] = { "--fsync", "never", "--mailbox-max-count", "1000",
			       "--mailbox-sender-share", "25", NULL };
	static uint8_t victim[1][SP_KEY_LEN];
	struct sp_it_broker b;
	struct sp_raw att, hon;
	struct tally t1 = { 0 }, t2 = { 0 }, th = { 0 };

	(void)state;
	random_key(victim[0]);
	assert_int_equal(sp_it_broker_start(&b, NULL, args), 0);
	assert_int_equal(sp_raw_init(&att), 0);
	assert_int_equal(sp_raw_open(&att, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	send_many(&att, (const uint8_t (*)[SP_KEY_LEN])victim, 1, 300, 0, 0, &t1);
	assert_int_equal(t1.by_status[SP_STATUS_ACCEPTED], 250);
	sp_raw_disconnect(&att);
	assert_int_equal(sp_it_broker_stop(&b), 0);

	assert_int_equal(sp_it_broker_restart(&b, args), 0);
	assert_int_equal(sp_raw_open(&att, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	send_many(&att, (const uint8_t (*)[SP_KEY_LEN])victim, 1, 300, 0, 0, &t2);
	assert_int_equal(sp_raw_init(&hon), 0);
	assert_int_equal(sp_raw_open(&hon, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	send_many(&hon, (const uint8_t (*)[SP_KEY_LEN])victim, 1, 100, 16, 0, &th);
	printf("mailbox share across a restart: attacker %u accepted before, %u after (%u "
	       "mailbox_full); honest %u of 100 accepted\n", t1.by_status[SP_STATUS_ACCEPTED],
	       t2.by_status[SP_STATUS_ACCEPTED], t2.by_status[SP_STATUS_ERR_MAILBOX_FULL],
	       th.by_status[SP_STATUS_ACCEPTED]);
	assert_int_equal(t2.by_status[SP_STATUS_ACCEPTED], 0);
	assert_int_equal(t2.by_status[SP_STATUS_ERR_MAILBOX_FULL], 300);
	assert_int_equal(th.by_status[SP_STATUS_ACCEPTED], 100);
	sp_raw_close(&att);
	sp_raw_close(&hon);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/* ---- deleted data leaves the disk ------------------------------------------------ */

static const uint8_t *grep_needle[2];
static char grep_hit[512];

static int grep_file(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	uint8_t *buf;
	FILE *f;
	size_t n;

	(void)ftw;
	if (flag != FTW_F || !S_ISREG(sb->st_mode) || sb->st_size == 0)
		return 0;
	buf = malloc((size_t)sb->st_size);
	assert_non_null(buf);
	f = fopen(path, "rb");
	if (!f) {
		free(buf);
		return 0;       /* deleted meanwhile (RocksDB removes obsolete files) */
	}
	n = fread(buf, 1, (size_t)sb->st_size, f);
	fclose(f);
	for (int i = 0; i < 2; i++)
		if (memmem(buf, n, grep_needle[i], SP_KEY_LEN)) {
			snprintf(grep_hit, sizeof(grep_hit), "%s (%s)", path,
				 i ? "ciphertext" : "recipient key");
			free(buf);
			return 1;
		}
	free(buf);
	return 0;
}

/* Is the recipient key or the marker in any file under dir? Names the first in grep_hit. */
static bool on_disk(const char *dir, const uint8_t *key, const uint8_t *marker)
{
	grep_needle[0] = key;
	grep_needle[1] = marker;
	grep_hit[0] = '\0';
	return nftw(dir, grep_file, 16, FTW_PHYS) == 1;
}

/* After an ack and one store-scrub-interval (plus the scrub), neither the
 * recipient's key nor a byte string of the acked ciphertext is in any file of
 * the data directory: not the WAL, not a table file, not the MANIFEST. */
static void test_acked_data_leaves_disk(void **state)
{
	const char *args[] = { "--fsync", "never", "--store-scrub-interval", "1", NULL };
	static uint8_t body[600];
	struct sp_it_broker b;
	struct sp_raw snd, rcpt;
	uint8_t pub[SP_KEY_LEN], priv[SP_KEY_LEN], marker[SP_KEY_LEN], buf[8192];
	uint64_t seqs[64];
	double scrubs;
	size_t n;

	(void)state;
	assert_int_equal(sp_raw_init(&rcpt), 0);
	memcpy(pub, rcpt.s_pub, sizeof(pub));
	memcpy(priv, rcpt.s_priv, sizeof(priv));
	randombytes_buf(marker, sizeof(marker));
	for (size_t i = 0; i + SP_KEY_LEN <= sizeof(body); i += SP_KEY_LEN)
		memcpy(body + i, marker, SP_KEY_LEN);
	assert_int_equal(sp_it_broker_start(&b, NULL, args), 0);
	assert_int_equal(sp_raw_init(&snd), 0);
	assert_int_equal(sp_raw_open(&snd, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	for (int i = 0; i < 40; i++) {
		size_t off = 0;
		uint32_t st;

		assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, pub, SP_KEY_LEN,
						 (uint64_t)i + 1, 0, body, sizeof(body)), 0);
		assert_int_equal(sp_raw_send_plain(&snd, buf, off), 0);
		assert_int_equal(sp_raw_expect_result(&snd, (uint64_t)i + 1, &st, TIMEOUT_MS), 0);
		assert_int_equal(st, SP_STATUS_ACCEPTED);
	}
	sp_raw_close(&snd);
	/* Stored: the test sees it on disk (so it can see it at all). */
	assert_true(on_disk(b.data_dir, pub, marker));
	printf("acked data: before the ack found in %s\n", grep_hit);

	n = drain_and_ack(&rcpt, &b, seqs, 64);
	assert_int_equal(n, 40);
	ping(&rcpt, 3);
	sp_raw_close(&rcpt);
	scrubs = wait_metric(&b, "sealpost_store_scrubs_total", 1, 20000);
	assert_true(scrubs >= 1);
	if (on_disk(b.data_dir, pub, marker))
		fail_msg("after the ack and a scrub still found in %s", grep_hit);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	if (on_disk(b.data_dir, pub, marker))
		fail_msg("after the stop found in %s", grep_hit);
	sodium_memzero(priv, sizeof(priv));
	sp_it_rmrf(b.data_dir);
}

/* ---- blob files: kill -9, restart, and deleted bodies leave the disk --------------- */

static int blob_files;

static int count_blob(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	size_t n = strlen(path);

	(void)sb;
	(void)ftw;
	if (flag == FTW_F && n > 5 && !strcmp(path + n - 5, ".blob"))
		blob_files++;
	return 0;
}

static int count_blob_files(const char *dir)
{
	blob_files = 0;
	nftw(dir, count_blob, 16, FTW_PHYS);
	return blob_files;
}

/*
 * --store-blob-min-bytes 4096: 160 envelopes of 16,000 bytes (a marker
 * repeated, different in each) stored for an offline device, with a WAL
 * bound of 1 MiB so the memtables are flushed and the bodies go to blob
 * files (the test sees them there). kill -9, a restart with the same
 * options: the device is given every envelope, in order, each with its own
 * bytes; it acks them all, and after one store-scrub-interval (plus the
 * scrub, whose compaction collects every blob file) neither its key nor
 * any envelope's bytes are in any file of the data directory.
 */
static void test_blob_files(void **state)
{
	const char *args[] = { "--fsync", "batch", "--store-blob-min-bytes", "4096",
			       "--store-max-wal", "1048576", "--store-scrub-interval", "1",
			       "--mailbox-sender-share", "100", "--store-min-free", "0", NULL };
	enum { N = 160, BODY = 16000 };
	static uint8_t body[BODY], buf[BODY + 512];
	struct sp_it_broker b;
	struct sp_raw snd, rcpt;
	struct sp_raw_frame f;
	uint8_t pub[SP_KEY_LEN], marker[SP_KEY_LEN];
	uint64_t last = 0;
	size_t got = 0;
	double scrubs;
	int i;

	(void)state;
	assert_int_equal(sp_raw_init(&rcpt), 0);
	memcpy(pub, rcpt.s_pub, sizeof(pub));
	randombytes_buf(marker, sizeof(marker));
	assert_int_equal(sp_it_broker_start(&b, NULL, args), 0);
	assert_int_equal(sp_raw_init(&snd), 0);
	assert_int_equal(sp_raw_open(&snd, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	for (i = 0; i < N; i++) {
		size_t off = 0;
		uint32_t st;

		for (size_t k = 0; k + SP_KEY_LEN <= sizeof(body); k += SP_KEY_LEN)
			memcpy(body + k, marker, SP_KEY_LEN);
		memcpy(body, &i, sizeof(i));    /* which one: checked on delivery */
		assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, pub, SP_KEY_LEN,
						 (uint64_t)i + 1, 0, body, sizeof(body)), 0);
		assert_int_equal(sp_raw_send_plain(&snd, buf, off), 0);
		assert_int_equal(sp_raw_expect_result(&snd, (uint64_t)i + 1, &st, TIMEOUT_MS), 0);
		assert_int_equal(st, SP_STATUS_ACCEPTED);
	}
	sp_raw_close(&snd);
	/* The flushes the WAL bound starts run in the background: bounded wait. */
	for (i = 0; i < 200 && count_blob_files(b.data_dir) == 0; i++)
		usleep(50000);
	printf("blob files: %d after %d envelopes of %d bytes\n", count_blob_files(b.data_dir), N,
	       BODY);
	assert_true(count_blob_files(b.data_dir) > 0);

	assert_true(sp_it_broker_kill(&b) >= 0);  /* the exit status: SIGKILL's */
	assert_int_equal(sp_it_broker_restart(&b, args), 0);
	assert_int_equal(sp_raw_open(&rcpt, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
	for (;;) {
		size_t off = 0;
		int idx;

		assert_int_equal(sp_raw_recv_frame(&rcpt, &f, TIMEOUT_MS), 0);
		if (f.type == SP_FRAME_DRAINED)
			break;
		if (f.type != SP_FRAME_DELIVER)
			continue;
		assert_true(f.seq > last);
		last = f.seq;
		assert_int_equal(f.body_len, BODY);
		memcpy(&idx, f.body, sizeof(idx));
		assert_int_equal(idx, (int)got);
		assert_memory_equal(f.body + SP_KEY_LEN, marker, SP_KEY_LEN);
		assert_memory_equal(f.body + BODY - SP_KEY_LEN - BODY % SP_KEY_LEN, marker,
				    SP_KEY_LEN);
		got++;
		assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_ACK, f.seq,
						   NULL, 0), 0);
		assert_int_equal(sp_raw_send_plain(&rcpt, buf, off), 0);
	}
	assert_int_equal(got, N);
	ping(&rcpt, 3);
	sp_raw_close(&rcpt);
	scrubs = wait_metric(&b, "sealpost_store_scrubs_total", 1, 30000);
	assert_true(scrubs >= 1);
	if (on_disk(b.data_dir, pub, marker))
		fail_msg("after the acks and a scrub still found in %s", grep_hit);
	printf("blob files after the scrub: %d\n", count_blob_files(b.data_dir));
	assert_int_equal(sp_it_broker_stop(&b), 0);
	if (on_disk(b.data_dir, pub, marker))
		fail_msg("after the stop found in %s", grep_hit);
	sp_it_rmrf(b.data_dir);
}

/* ---- the WAL is bounded ---------------------------------------------------------- */

static uint64_t wal_sum, all_sum;

static int size_file(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	size_t l = strlen(path);

	(void)ftw;
	if (flag != FTW_F)
		return 0;
	all_sum += (uint64_t)sb->st_blocks * 512;
	if (l > 4 && !strcmp(path + l - 4, ".log"))
		wal_sum += (uint64_t)sb->st_blocks * 512;
	return 0;
}

/* Bytes of WAL files and of all files under the store's db directory. */
static void store_sizes(const char *data_dir, uint64_t *wal, uint64_t *all)
{
	char db[400];

	snprintf(db, sizeof(db), "%s/mailbox/db", data_dir);
	wal_sum = all_sum = 0;
	assert_int_equal(nftw(db, size_file, 16, FTW_PHYS), 0);
	*wal = wal_sum;
	*all = all_sum;
}

enum { WAL_MB = 40, WAL_LIMIT_MB = 8 };

/* 40 MB of envelopes to 640 mailboxes: with --store-max-wal 8 MiB the WAL
 * files stay within the bound (plus the batch that crossed it); with the
 * bound practically off (1 TiB) they hold everything, twice the data on disk. */
static void test_wal_bounded(void **state)
{
	static uint8_t to[64][SP_KEY_LEN];
	const char *const limits[2] = { "8388608", "1099511627776" };
	uint64_t wal[2], all[2] = { 0, 0 };
	/* SP_WAL_MB: more data, for the figures (the test's own size is small). */
	int mb = getenv("SP_WAL_MB") ? atoi(getenv("SP_WAL_MB")) : WAL_MB;

	(void)state;
	for (int run = 0; run < 2; run++) {
		const char *args[] = { "--fsync", "never", "--sender-rate", "0",
				       "--sender-byte-rate", "0", "--store-max-wal", limits[run],
				       NULL };
		struct sp_it_broker b;
		struct sp_raw snd;
		struct tally t = { 0 };

		assert_int_equal(sp_it_broker_start(&b, NULL, args), 0);
		assert_int_equal(sp_raw_init(&snd), 0);
		assert_int_equal(sp_raw_open(&snd, b.port, SP_PREAMBLE_PATTERN_IK, b.server_pub), 0);
		for (int round = 0; round < 10; round++) {
			for (int i = 0; i < 64; i++)
				random_key(to[i]);
			send_many(&snd, (const uint8_t (*)[SP_KEY_LEN])to, 64,
				  (uint32_t)mb * 1000000 / 60000 / 10, 60000, 0, &t);
		}
		assert_int_equal(t.by_status[SP_STATUS_ACCEPTED], t.total);
		ping(&snd, 1);
		sp_raw_close(&snd);
		/* Flushes run in RocksDB's background threads: give them a
		 * moment (bounded) to finish and delete the logs they retire. */
		for (int i = 0, stable = 0; i < 100 && stable < 10; i++) {
			uint64_t prev = all[run];

			store_sizes(b.data_dir, &wal[run], &all[run]);
			stable = i && all[run] == prev && wal[run] <= 2ull * WAL_LIMIT_MB * 1024 * 1024 ?
				 stable + 1 : 0;
			sleep_ms(100);
		}
		printf("wal bound: --store-max-wal %s: %u envelopes (%.1f MB of bodies), WAL files "
		       "%.1f MB, the whole db %.1f MB\n", limits[run], t.total,
		       t.total * 60000 / 1e6, wal[run] / 1e6, all[run] / 1e6);
		assert_int_equal(sp_it_broker_stop(&b), 0);
		sp_it_rmrf(b.data_dir);
	}
	/* A flush starts once the WAL is past the bound; the batch crossing
	 * it and the file being written are on top. */
	assert_true(wal[0] <= 2ull * WAL_LIMIT_MB * 1024 * 1024);
	assert_true(wal[1] > wal[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expiry_storm),
		cmocka_unit_test(test_seq_increases_after_empty),
		cmocka_unit_test(test_disk_fill),
		cmocka_unit_test(test_sender_rate),
		cmocka_unit_test(test_mailbox_share),
		cmocka_unit_test(test_mailbox_share_restart),
		cmocka_unit_test(test_acked_data_leaves_disk),
		cmocka_unit_test(test_wal_bounded),
		cmocka_unit_test(test_blob_files),
	};

	if (sodium_init() < 0)
		return 1;
	setvbuf(stdout, NULL, _IONBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
