/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_seizure.c: what a seized broker yields (issue 12: sealed sender and
 * minimal metadata; docs/SECURITY.md "What is written down").
 *
 * Mixed traffic through libsealpost against a real sealpostd: an
 * authenticated send to an offline device (stored), anonymous sends on a
 * Noise NK connection with the recipient's access key (stored), a fan-out
 * to an account's two devices (stored), a live delivery. Then everything a
 * seizure would take: a core of the running broker (gcore), every file of
 * its data directory (RocksDB's WAL, tables, manifests, the key files),
 * and its log. In none of them:
 * - any plaintext that was sent (each message carries a unique marker);
 * - any device's secret key (the test made them from known bytes);
 * - the anonymous sender's public key, raw or hex: that sender only ever
 *   spoke over NK, so the broker never learned it (the seal hides it);
 * - the access key itself, in the data directory or the log (only its hash
 *   is stored);
 * - any device's public key in the log (info level).
 * The controls make the searches count: a stored recipient's key is in the
 * data directory and an open connection's peer key is in the core. And
 * afterwards each recipient connects and opens exactly its messages, so
 * the traffic really was stored. Two raw protocol clients (support_raw:
 * they know their transport keys) exchange an envelope and close before
 * the dump: neither's session keys are in the core (it_core_secrets checks
 * the open ones too). Skipped with a message without gcore.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sealpost.h"
#include "support.h"
#include "support_core.h"
#include "support_raw.h"

enum { TMO = 10000, NDEV = 6, NRAW = 2 };

/* The devices: authenticated sender, its offline recipient, the anonymous
 * sender, its recipient, an account's phone and laptop. */
enum { A, B, S, R, PHONE, LAPTOP };
static const char *const names[NDEV] = { "sender", "recipient", "anonymous sender",
					 "anonymous recipient", "phone", "laptop" };

static struct sp_it_broker broker;
static uint8_t priv[NDEV][32], pub[NDEV][32];
static char pubhex[NDEV][65];
static struct sealpost_key *key[NDEV];
static uint8_t access_key[16];
static char markers[4][64];     /* auth, anon, fan-out, live */

struct found {
	const char *what;               /* "core", "data", "log" */
	unsigned plain[4], secret[NDEV], anon_pub, anon_hex, access, pub_in_log[NDEV];
	unsigned control_b;             /* B's public key (data) */
	char where[4][300];             /* a file where a plaintext marker was found */
};

static void search(void *ctx, const char *path, const uint8_t *b, size_t len)
{
	struct found *f = ctx;

	for (int i = 0; i < 4; i++) {
		unsigned n = sp_it_count(b, len, (const uint8_t *)markers[i], strlen(markers[i]));

		if (n && !f->where[i][0])
			snprintf(f->where[i], sizeof(f->where[i]), "%s", path);
		f->plain[i] += n;
	}
	for (int i = 0; i < NDEV; i++) {
		f->secret[i] += sp_it_count(b, len, priv[i], 32);
		f->pub_in_log[i] += sp_it_count(b, len, (const uint8_t *)pubhex[i], 64);
	}
	f->anon_pub += sp_it_count(b, len, pub[S], 32);
	f->anon_hex += sp_it_count(b, len, (const uint8_t *)pubhex[S], 64);
	f->access += sp_it_count(b, len, access_key, sizeof(access_key));
	f->control_b += sp_it_count(b, len, pub[B], 32);
}

static struct sealpost_client *connect_flags(int i, uint32_t flags)
{
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;
	struct sealpost_client *c = NULL;

	o.flags = SEALPOST_CONNECT_NO_RECONNECT | flags;
	assert_int_equal(sealpost_client_connect_opts(&c, broker.addr, key[i], broker.server_pub,
						      TMO, &o), 0);
	return c;
}

static struct sealpost_client *connect_dev(int i)
{
	return connect_flags(i, 0);
}

static void expect_result(struct sealpost_client *c, uint64_t id, int want)
{
	int st = 0;

	assert_int_equal(sealpost_client_wait_result(c, id, TMO, &st, NULL), 0);
	assert_int_equal(st, want);
}

/* The messages d's mailbox holds, opened: each must be one of want (n). */
static void receive_exactly(int d, const char *const *want, int n)
{
	struct sealpost_client *c = connect_dev(d);
	struct sealpost_event ev;
	int got = 0;

	for (;;) {
		assert_int_equal(sealpost_client_next_event(c, &ev, TMO), 1);
		assert_int_not_equal(ev.type, SEALPOST_EVENT_CLOSED);
		if (ev.type == SEALPOST_EVENT_DRAINED)
			break;
		if (ev.type != SEALPOST_EVENT_MESSAGE)
			continue;
		assert_true(got < n);
		assert_int_equal(ev.len, strlen(want[got]));
		assert_memory_equal(ev.data, want[got], ev.len);
		got++;
	}
	assert_int_equal(got, n);
	sealpost_client_close(c);
}

static void report(const struct found *f)
{
	for (int i = 0; i < 4; i++)
		if (f->plain[i])
			fail_msg("%s: plaintext '%s' found %u times (%s)", f->what, markers[i],
				 f->plain[i], f->where[i]);
	for (int i = 0; i < NDEV; i++)
		if (f->secret[i])
			fail_msg("%s: the %s's secret key found %u times", f->what, names[i],
				 f->secret[i]);
	if (f->anon_pub || f->anon_hex)
		fail_msg("%s: the anonymous sender's public key found (%u raw, %u hex)", f->what,
			 f->anon_pub, f->anon_hex);
}

static void test_seizure(void **state)
{
	const char *extra[] = { "--max-conns", "64", "--log-level", "info", NULL };
	struct sealpost_client *ca, *cr, *cphone, *anon;
	struct sealpost_account *acct = NULL;
	struct sealpost_devlist l;
	struct found core = { .what = "core" }, data = { .what = "data" }, logf = { .what = "log" };
	char dir[] = "/tmp/sp-it-seize-XXXXXX", prefix[300], core_path[320], out[2048];
	uint8_t acct_pub[32], list[SEALPOST_LIST_MAX];
	size_t list_len = 0, core_len = 0, log_len = 0;
	uint64_t id = 0, v = 0;
	uint8_t *bytes, raw_tx[NRAW][32], raw_rx[NRAW][32];
	unsigned raw_hits = 0;
	int st = 0, n, r;

	(void)state;
#if defined(__SANITIZE_ADDRESS__)
	/* A sanitizer build's broker maps terabytes of shadow memory: gcore
	 * would dump for minutes (it_core_secrets skips it too). */
	print_message("SKIP: not meaningful in a sanitizer build\n");
	skip();
#endif
	if (!sp_it_gcore_path()) {
		print_message("SKIP: gcore not found (Debian package gdb)\n");
		skip();
	}
	assert_non_null(mkdtemp(dir));
	for (int i = 0; i < NDEV; i++) {
		randombytes_buf(priv[i], 32);
		assert_int_equal(sealpost_key_from_private(&key[i], priv[i]), 0);
		sealpost_key_public(key[i], pub[i]);
		sealpost_key_to_hex(pub[i], pubhex[i]);
	}
	for (int i = 0; i < 4; i++) {
		uint8_t nonce[12];
		char hex[25];

		randombytes_buf(nonce, sizeof(nonce));
		sodium_bin2hex(hex, sizeof(hex), nonce, sizeof(nonce));
		snprintf(markers[i], sizeof(markers[i]), "seized-%s-%s",
			 (const char *[]){ "auth", "anon", "fanout", "live" }[i], hex);
	}
	randombytes_buf(access_key, sizeof(access_key));
	assert_int_equal(sp_it_broker_start(&broker, NULL, extra), 0);

	/* the anonymous recipient sets its access key, then goes offline */
	cr = connect_dev(R);
	assert_int_equal(sealpost_set_access(cr, access_key, sizeof(access_key), false, TMO), 0);
	sealpost_client_close(cr);
	/* an account of two devices, both offline afterwards */
	cphone = connect_dev(PHONE);
	assert_int_equal(sealpost_account_generate(&acct), 0);
	sealpost_account_public(acct, acct_pub);
	memset(&l, 0, sizeof(l));
	memcpy(l.account, acct_pub, 32);
	l.version = 1;
	assert_int_equal(sealpost_devlist_add(&l, pub[PHONE], "phone", 1700000000), 0);
	assert_int_equal(sealpost_devlist_add(&l, pub[LAPTOP], "laptop", 1700000000), 0);
	assert_int_equal(sealpost_devlist_sign(acct, &l, list, sizeof(list), &list_len), 0);
	assert_int_equal(sealpost_account_publish_wait(cphone, list, list_len, TMO, &st, &v), 0);
	assert_int_equal(st, SEALPOST_STATUS_ACCEPTED);
	sealpost_client_close(cphone);

	/* authenticated: to the offline recipient, and to the account */
	ca = connect_dev(A);
	assert_int_equal(sealpost_client_send(ca, pub[B], markers[0], strlen(markers[0]), &id), 0);
	expect_result(ca, id, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(sealpost_account_fetch_wait(ca, acct_pub, TMO, &l, NULL, 0, NULL), 0);
	n = sealpost_client_send_devices(ca, &l, markers[2], strlen(markers[2]), &id);
	assert_int_equal(n, 2);
	for (int i = 0; i < n; i++)
		expect_result(ca, id + (uint64_t)i, SEALPOST_STATUS_ACCEPTED);
	/* anonymous: NK only, this sender never authenticates */
	assert_int_equal(sealpost_client_connect_anonymous(&anon, broker.addr, broker.server_pub,
							   TMO, NULL), 0);
	for (int k = 0; k < 2; k++) {
		assert_int_equal(sealpost_client_send_anonymous(anon, key[S], pub[R], access_key,
								sizeof(access_key), markers[1],
								strlen(markers[1]), 0, &id), 0);
		expect_result(anon, id, SEALPOST_STATUS_ACCEPTED);
	}
	/* live: the recipient is connected (the sender stays open: the control) */
	{
		/* manual acks: what it is shown stays stored */
		struct sealpost_client *cb = connect_flags(B, SEALPOST_CONNECT_MANUAL_ACK);
		struct sealpost_event ev;

		assert_int_equal(sealpost_client_send(ca, pub[B], markers[3], strlen(markers[3]),
						      &id), 0);
		do {
			assert_int_equal(sealpost_client_next_event(cb, &ev, TMO), 1);
			assert_int_not_equal(ev.type, SEALPOST_EVENT_CLOSED);
		} while (ev.type != SEALPOST_EVENT_MESSAGE || ev.len != strlen(markers[3]));
		sealpost_client_close(cb);
	}
	sealpost_client_close(anon);

	/* two raw clients (transport keys known), an envelope, closed */
	{
		struct sp_raw rc[NRAW];
		struct sp_raw_frame fr;
		uint8_t body[200];
		uint32_t status;

		randombytes_buf(body, sizeof(body));
		for (int i = 0; i < NRAW; i++) {
			rc[i] = (struct sp_raw){ .fd = -1 };
			assert_int_equal(sp_raw_open(&rc[i], broker.port, SP_PREAMBLE_PATTERN_IK,
						     broker.server_pub), 0);
			assert_int_equal(sp_raw_wait_frame(&rc[i], SP_FRAME_DRAINED, &fr, TMO), 0);
			memcpy(raw_tx[i], rc[i].t.tx.k, 32);
			memcpy(raw_rx[i], rc[i].t.rx.k, 32);
		}
		assert_int_equal(sp_raw_send_envelope(&rc[0], rc[1].s_pub, 1, body, sizeof(body)), 0);
		assert_int_equal(sp_raw_expect_result(&rc[0], 1, &status, TMO), 0);
		assert_int_equal(sp_raw_wait_frame(&rc[1], SP_FRAME_DELIVER, &fr, TMO), 0);
		for (int i = 0; i < NRAW; i++)
			sp_raw_close(&rc[i]);
	}
	/* only the authenticated sender's connection is left open */
	assert_int_equal(sp_it_wait_open_conns(&broker, 1, TMO), 1);

	/* the seizure: a core of the running broker, its files, its log */
	snprintf(prefix, sizeof(prefix), "%s/core", dir);
	r = sp_it_gcore(&broker, prefix, core_path, sizeof(core_path), out, sizeof(out));
	if (r == -EPERM) {
		print_message("SKIP: gcore could not dump the broker (no ptrace rights?): %s\n", out);
		sealpost_client_close(ca);
		assert_int_equal(sp_it_broker_stop(&broker), 0);
		sp_it_rmrf(broker.data_dir);
		sp_it_rmrf(dir);
		skip();
	}
	assert_int_equal(r, 0);
	bytes = sp_it_read_file(core_path, &core_len);
	assert_non_null(bytes);
	unlink(core_path);
	search(&core, core_path, bytes, core_len);
	for (int i = 0; i < NRAW; i++)
		raw_hits += sp_it_count(bytes, core_len, raw_tx[i], 32) +
			    sp_it_count(bytes, core_len, raw_rx[i], 32);
	{
		/* the control of the core: the open sender's key, in the broker's heap */
		unsigned ctl = sp_it_count(bytes, core_len, pub[A], 32);

		free(bytes);
		assert_true(ctl >= 1);
	}
	assert_int_equal(sp_it_each_file(broker.data_dir, "sealpostd.log", search, &data), 0);
	bytes = sp_it_read_file(broker.log_path, &log_len);
	assert_non_null(bytes);
	search(&logf, broker.log_path, bytes, log_len);
	free(bytes);
	print_message("searched a core of %zu bytes, the data directory, a log of %zu bytes\n",
		      core_len, log_len);

	report(&core);
	if (raw_hits)
		fail_msg("core: closed connections' session keys found %u times", raw_hits);
	report(&data);
	report(&logf);
	/* stored as a hash only */
	assert_int_equal(data.access, 0);
	assert_int_equal(logf.access, 0);
	/* no device key in the log, raw or hex */
	for (int i = 0; i < NDEV; i++)
		if (logf.pub_in_log[i])
			fail_msg("log: the %s's public key in hex, %u times", names[i],
				 logf.pub_in_log[i]);
	/* the data directory's control: the stored recipient is named there */
	assert_true(data.control_b >= 1);

	/* and all of it was really stored: each recipient opens its own */
	sealpost_client_close(ca);
	{
		const char *want_b[] = { markers[0], markers[3] };
		const char *want_r[] = { markers[1], markers[1] };
		const char *want_f[] = { markers[2] };

		receive_exactly(B, want_b, 2);
		receive_exactly(R, want_r, 2);
		receive_exactly(PHONE, want_f, 1);
		receive_exactly(LAPTOP, want_f, 1);
	}
	sealpost_account_free(acct);
	for (int i = 0; i < NDEV; i++)
		sealpost_key_free(key[i]);
	assert_int_equal(sp_it_broker_stop(&broker), 0);
	sp_it_rmrf(broker.data_dir);
	sp_it_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seizure),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
