/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_enrol: the registration policy (docs/PROTOCOL.md 15) against a real
 * sealpostd with --registration=token and a real RocksDB data directory,
 * through libsealpost (sealpost_connect_opts.enrol_token) and tokens from
 * `sealpostd mint-token`: an unknown device is refused (GoAway 53,
 * SEALPOST_EENROLREQUIRED); a minted token enrols it; it reconnects without
 * one; the token replayed by another device is refused (55, EENROLUSED);
 * expired, altered and another broker's tokens are refused (54,
 * EENROLTOKEN); a restart keeps registrations and used tokens; each outcome
 * counted in sealpost_enrol_total; open mode takes anyone.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "sealpost.h"
#include "sp_enrol.h"
#include "sp_keyfile.h"
#include "support.h"

enum { TIMEOUT_MS = 10000 };

static const char *const token_args[] = { "--registration", "token", "--fsync", "never",
					  "--store-min-free", "0", "--log-level", "info", NULL };

static void start(struct sp_it_broker *b, const char *dir, const char *const *args)
{
	int rc = sp_it_broker_start(b, dir, args);

	if (rc)
		fprintf(stderr, "[it] could not start a broker: %s\n", strerror(-rc));
	assert_int_equal(rc, 0);
}

/* `sealpostd mint-token --data-dir DIR [more]`: its exit status, stdout in out. */
static int mint(const char *dir, const char *const *more, char *out, size_t cap)
{
	const char *bin = getenv("SEALPOSTD");
	char *argv[16];
	int n = 0;

	assert_non_null(bin);
	argv[n++] = (char *)bin;
	argv[n++] = "mint-token";
	argv[n++] = "--data-dir";
	argv[n++] = (char *)dir;
	for (; more && *more && n < 15; more++)
		argv[n++] = (char *)*more;
	argv[n] = NULL;
	return sp_it_run(argv, NULL, out, cap, 20);
}

/* One token minted for dir's broker (76 characters), into tok. */
static void mint_one(const char *dir, char tok[SP_ENROL_TEXT_LEN + 1])
{
	char out[512];

	assert_int_equal(mint(dir, NULL, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), SP_ENROL_TEXT_LEN + 1);
	assert_int_equal(out[SP_ENROL_TEXT_LEN], '\n');
	memcpy(tok, out, SP_ENROL_TEXT_LEN);
	tok[SP_ENROL_TEXT_LEN] = '\0';
}

static struct sealpost_key *new_key(void)
{
	struct sealpost_key *k = NULL;

	assert_int_equal(sealpost_key_generate(&k), 0);
	return k;
}

static struct sealpost_connect_opts opts_with(const char *token)
{
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;

	o.reconnect_min_ms = 20;
	o.reconnect_max_ms = 200;
	o.connect_timeout_ms = 2000;
	o.enrol_token = token;
	return o;
}

/* Connects (IK, or XX with pin == NULL) and expects the device routed: DRAINED. */
static void expect_accepted(const struct sp_it_broker *b, const struct sealpost_key *k,
			    const char *token, const uint8_t *pin)
{
	struct sealpost_connect_opts o = opts_with(token);
	struct sealpost_client *c = NULL;
	struct sealpost_event ev;
	int rc;

	rc = sealpost_client_connect_opts(&c, b->addr, k, pin, TIMEOUT_MS, &o);
	if (rc)
		fprintf(stderr, "[it] connect: %s\n", sealpost_strerror(rc));
	assert_int_equal(rc, 0);
	assert_int_equal(sealpost_client_next_event(c, &ev, TIMEOUT_MS), 1);
	if (ev.type != SEALPOST_EVENT_DRAINED)
		fprintf(stderr, "[it] event %d status %d error %s\n", ev.type, ev.status,
			sealpost_strerror(ev.error));
	assert_int_equal(ev.type, SEALPOST_EVENT_DRAINED);
	/* the connection works: a ping round trip */
	assert_int_equal(sealpost_client_sync(c, TIMEOUT_MS), 0);
	sealpost_client_close(c);
}

/*
 * Connects and expects a registration refusal: the GoAway (status) and then
 * CLOSED with err, no reconnect (the client gives up at once, though
 * reconnects are on). A connect may also fail with err directly, when the
 * GoAway comes in with the handshake's answer.
 */
static void expect_refused(const struct sp_it_broker *b, const struct sealpost_key *k,
			   const char *token, int status, int err)
{
	struct sealpost_connect_opts o = opts_with(token);
	struct sealpost_client *c = NULL;
	struct sealpost_event ev;
	int rc, goaway = 0;

	rc = sealpost_client_connect_opts(&c, b->addr, k, b->server_pub, TIMEOUT_MS, &o);
	if (rc) {
		assert_int_equal(rc, err);
		return;
	}
	for (;;) {
		rc = sealpost_client_next_event(c, &ev, TIMEOUT_MS);
		assert_int_equal(rc, 1);
		assert_int_not_equal(ev.type, SEALPOST_EVENT_DRAINED);
		assert_int_not_equal(ev.type, SEALPOST_EVENT_RECONNECTED);
		assert_int_not_equal(ev.type, SEALPOST_EVENT_DISCONNECTED);
		if (ev.type == SEALPOST_EVENT_GOAWAY)
			goaway = ev.status;
		if (ev.type == SEALPOST_EVENT_CLOSED)
			break;
	}
	assert_int_equal(goaway, status);
	if (ev.error != err)
		fprintf(stderr, "[it] closed with %s\n", sealpost_strerror(ev.error));
	assert_int_equal(ev.error, err);
	/* final: nothing reconnects, and later calls report why */
	assert_int_equal(sealpost_client_sync(c, 100), err);
	sealpost_client_close(c);
}

/* A token for dir's broker with the given expiry, made with its key file
 * (the way mint-token makes one, but already expired when wanted). */
static void mint_at(const char *dir, uint64_t expires_ms, char tok[SP_ENROL_TEXT_LEN + 1])
{
	char path[512];
	uint8_t key[SP_ENROL_KEY_LEN], bin[SP_ENROL_TOKEN_LEN];

	snprintf(path, sizeof(path), "%s/enrol.key", dir);
	assert_int_equal(sp_keyfile_read_private(path, key), 0);
	sp_enrol_mint(key, expires_ms, bin);
	assert_int_equal(sp_enrol_to_text(bin, tok, SP_ENROL_TEXT_LEN + 1), 0);
	sodium_memzero(key, sizeof(key));
}

/* tok with one bit of its MAC flipped (still well-formed). */
static void alter(const char *tok, char out[SP_ENROL_TEXT_LEN + 1])
{
	uint8_t bin[SP_ENROL_TOKEN_LEN];

	assert_int_equal(sp_enrol_from_text(tok, bin), 0);
	bin[SP_ENROL_TOKEN_LEN - 1] ^= 0x01;
	assert_int_equal(sp_enrol_to_text(bin, out, SP_ENROL_TEXT_LEN + 1), 0);
}

/* sealpost_enrol_total{outcome="name"} on /metrics. */
static long enrol_count(const struct sp_it_broker *b, const char *name)
{
	char needle[128], *body = NULL, *p;
	long v = -1;

	assert_int_equal(sp_it_http_get(b->metrics_port, "/metrics", &body), 200);
	snprintf(needle, sizeof(needle), "sealpost_enrol_total{outcome=\"%s\"} ", name);
	p = strstr(body, needle);
	if (p)
		v = strtol(p + strlen(needle), NULL, 10);
	free(body);
	return v;
}

static void test_token_registration(void **state)
{
	struct sp_it_broker b, other;
	struct sealpost_key *a = new_key(), *d2 = new_key(), *d3 = new_key(), *d4 = new_key();
	struct sealpost_key *x = new_key(), *stranger = new_key();
	char t1[SP_ENROL_TEXT_LEN + 1], t2[SP_ENROL_TEXT_LEN + 1], expired[SP_ENROL_TEXT_LEN + 1];
	char bad[SP_ENROL_TEXT_LEN + 1], foreign[SP_ENROL_TEXT_LEN + 1];
	char dir[256];

	(void)state;
	start(&b, NULL, token_args);
	snprintf(dir, sizeof(dir), "%s", b.data_dir);

	/* unknown device, no token */
	expect_refused(&b, stranger, NULL, SEALPOST_STATUS_GOAWAY_ENROL_REQUIRED,
		       -SEALPOST_EENROLREQUIRED);
	/* a minted token enrols it; later connections need none */
	mint_one(dir, t1);
	expect_accepted(&b, a, t1, b.server_pub);
	expect_accepted(&b, a, NULL, b.server_pub);
	/* a registered device's token is not looked at (and not spent) */
	mint_one(dir, t2);
	expect_accepted(&b, a, t2, b.server_pub);
	/* the same token replayed by another device */
	expect_refused(&b, d2, t1, SEALPOST_STATUS_GOAWAY_ENROL_TOKEN_USED, -SEALPOST_EENROLUSED);
	/* expired, altered, another broker's */
	mint_at(dir, (uint64_t)time(NULL) * 1000 - 1000, expired);
	expect_refused(&b, d2, expired, SEALPOST_STATUS_GOAWAY_ENROL_BAD_TOKEN,
		       -SEALPOST_EENROLTOKEN);
	alter(t2, bad);
	expect_refused(&b, d2, bad, SEALPOST_STATUS_GOAWAY_ENROL_BAD_TOKEN, -SEALPOST_EENROLTOKEN);
	start(&other, NULL, token_args);
	mint_one(other.data_dir, foreign);
	assert_int_equal(sp_it_broker_stop(&other), 0);
	sp_it_rmrf(other.data_dir);
	expect_refused(&b, d2, foreign, SEALPOST_STATUS_GOAWAY_ENROL_BAD_TOKEN,
		       -SEALPOST_EENROLTOKEN);
	/* not a token at all: the library refuses it before connecting */
	{
		struct sealpost_connect_opts o = opts_with("not-a-token");
		struct sealpost_client *c = NULL;

		assert_int_equal(sealpost_client_connect_opts(&c, b.addr, d2, b.server_pub,
							      TIMEOUT_MS, &o),
				 -SEALPOST_EENROLTOKEN);
		assert_null(c);
	}
	/* the unspent t2 still enrols another device, over XX this time */
	expect_accepted(&b, d3, t2, NULL);

	assert_int_equal(enrol_count(&b, "enrolled"), 2);
	assert_int_equal(enrol_count(&b, "registered"), 2);
	assert_int_equal(enrol_count(&b, "required"), 1);
	assert_int_equal(enrol_count(&b, "replayed"), 1);
	assert_int_equal(enrol_count(&b, "expired"), 1);
	assert_int_equal(enrol_count(&b, "bad_mac"), 2);
	assert_int_equal(enrol_count(&b, "internal"), 0);
	assert_true(sp_it_broker_alive(&b));

	/* a restart keeps registrations and used tokens */
	assert_int_equal(sp_it_broker_stop(&b), 0);
	assert_int_equal(sp_it_broker_restart(&b, token_args), 0);
	expect_accepted(&b, a, NULL, b.server_pub);
	expect_accepted(&b, d3, NULL, b.server_pub);
	expect_refused(&b, d4, t1, SEALPOST_STATUS_GOAWAY_ENROL_TOKEN_USED, -SEALPOST_EENROLUSED);
	expect_refused(&b, d4, t2, SEALPOST_STATUS_GOAWAY_ENROL_TOKEN_USED, -SEALPOST_EENROLUSED);
	/* the refused devices were not stored */
	expect_refused(&b, stranger, NULL, SEALPOST_STATUS_GOAWAY_ENROL_REQUIRED,
		       -SEALPOST_EENROLREQUIRED);
	expect_refused(&b, d2, NULL, SEALPOST_STATUS_GOAWAY_ENROL_REQUIRED,
		       -SEALPOST_EENROLREQUIRED);
	/* a fresh token still works after the restart */
	{
		char t3[SP_ENROL_TEXT_LEN + 1];

		mint_one(dir, t3);
		expect_accepted(&b, x, t3, b.server_pub);
	}
	/* the broker never logs a device key, nor a token */
	{
		uint8_t pub[SEALPOST_KEY_LEN];

		sealpost_key_public(a, pub);
		assert_int_equal(sp_it_log_count_key(&b, pub), 0);
		assert_int_equal(sp_it_log_count(&b, t1), 0);
	}
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(dir);
	sealpost_key_free(a);
	sealpost_key_free(d2);
	sealpost_key_free(d3);
	sealpost_key_free(d4);
	sealpost_key_free(x);
	sealpost_key_free(stranger);
}

static void test_open_mode(void **state)
{
	const char *const args[] = { "--fsync", "never", "--store-min-free", "0", "--log-level",
				     "info", NULL };
	struct sp_it_broker b;
	struct sealpost_key *k = new_key();
	char tok[SP_ENROL_TEXT_LEN + 1];

	(void)state;
	start(&b, NULL, args);
	expect_accepted(&b, k, NULL, b.server_pub);
	/* a token is ignored in open mode (mint-token still works, and says so) */
	mint_one(b.data_dir, tok);
	expect_accepted(&b, k, tok, NULL);
	assert_int_equal(enrol_count(&b, "enrolled"), 0);
	assert_int_equal(enrol_count(&b, "required"), 0);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
	sealpost_key_free(k);
}

static void test_mint_token_cli(void **state)
{
	const char *const three[] = { "--count", "3", "--ttl", "60", NULL };
	const char *const zero[] = { "--ttl", "0", NULL };
	const char *const junk[] = { "--frobnicate", "1", NULL };
	char dir[] = "/tmp/it_enrol_XXXXXX", out[1024], path[300];
	char *l1, *l2, *l3;
	uint8_t bin[SP_ENROL_TOKEN_LEN], key[SP_ENROL_KEY_LEN];

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(mint(dir, three, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), 3 * (SP_ENROL_TEXT_LEN + 1));
	l1 = out;
	l2 = out + SP_ENROL_TEXT_LEN + 1;
	l3 = l2 + SP_ENROL_TEXT_LEN + 1;
	l1[SP_ENROL_TEXT_LEN] = l2[SP_ENROL_TEXT_LEN] = l3[SP_ENROL_TEXT_LEN] = '\0';
	assert_string_not_equal(l1, l2);
	assert_string_not_equal(l2, l3);
	/* each verifies under the key file it made (0600: read_private checks) */
	snprintf(path, sizeof(path), "%s/enrol.key", dir);
	assert_int_equal(sp_keyfile_read_private(path, key), 0);
	assert_int_equal(sp_enrol_from_text(l3, bin), 0);
	assert_int_equal(sp_enrol_verify(key, bin, sizeof(bin), (uint64_t)time(NULL) * 1000, NULL,
					 NULL),
			 0);
	assert_int_equal(sp_enrol_verify(key, bin, sizeof(bin),
					 ((uint64_t)time(NULL) + 120) * 1000, NULL, NULL),
			 -ETIME);
	sodium_memzero(key, sizeof(key));
	assert_int_equal(mint(dir, zero, out, sizeof(out)), 2);
	assert_int_equal(mint(dir, junk, out, sizeof(out)), 2);
	sp_it_rmrf(dir);
}

/*
 * A device on a stored account list counts as registered: an enrolled
 * device creates an account whose signed list (version 2) adds a new
 * device, which then connects without a token ("listed").
 */
static void test_linked_device(void **state)
{
	struct sp_it_broker b;
	struct sealpost_key *a = new_key(), *linked = new_key();
	struct sealpost_account *acct = NULL;
	struct sealpost_connect_opts o;
	struct sealpost_client *c = NULL;
	struct sealpost_devlist l;
	struct sealpost_event ev;
	uint8_t apub[SEALPOST_KEY_LEN], lpub[SEALPOST_KEY_LEN], pk[32];
	uint8_t bytes[SEALPOST_LIST_MAX];
	char tok[SP_ENROL_TEXT_LEN + 1];
	size_t len = 0;
	uint64_t v = 0;
	int status = -1;

	(void)state;
	start(&b, NULL, token_args);
	sealpost_key_public(a, apub);
	sealpost_key_public(linked, lpub);
	/* not listed yet, no token */
	expect_refused(&b, linked, NULL, SEALPOST_STATUS_GOAWAY_ENROL_REQUIRED,
		       -SEALPOST_EENROLREQUIRED);
	mint_one(b.data_dir, tok);
	o = opts_with(tok);
	assert_int_equal(sealpost_client_connect_opts(&c, b.addr, a, b.server_pub, TIMEOUT_MS, &o),
			 0);
	assert_int_equal(sealpost_client_next_event(c, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_DRAINED);
	assert_int_equal(sealpost_account_generate(&acct), 0);
	sealpost_account_public(acct, pk);
	memset(&l, 0, sizeof(l));
	memcpy(l.account, pk, 32);
	l.version = 1;
	assert_int_equal(sealpost_devlist_add(&l, apub, "laptop", 1700000000), 0);
	assert_int_equal(sealpost_devlist_sign(acct, &l, bytes, sizeof(bytes), &len), 0);
	assert_int_equal(sealpost_account_publish_wait(c, bytes, len, TIMEOUT_MS, &status, &v), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(sealpost_devlist_add(&l, lpub, "phone", 1700000001), 0);
	l.version = 2;
	assert_int_equal(sealpost_devlist_sign(acct, &l, bytes, sizeof(bytes), &len), 0);
	assert_int_equal(sealpost_account_publish_wait(c, bytes, len, TIMEOUT_MS, &status, &v), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	sealpost_client_close(c);
	/* linked by the account key: in without a token */
	expect_accepted(&b, linked, NULL, b.server_pub);
	assert_int_equal(enrol_count(&b, "listed"), 1);
	assert_int_equal(enrol_count(&b, "enrolled"), 1);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
	sealpost_account_free(acct);
	sealpost_key_free(a);
	sealpost_key_free(linked);
}

/* sealpost ARGS... (the CLI): exit status, stdout in out. */
static int cli(char *const *args, char *out, size_t cap)
{
	const char *bin = getenv("SEALPOST_CLI");
	char *argv[24];
	int n = 0;

	assert_non_null(bin);
	argv[n++] = (char *)bin;
	for (; *args && n < 23; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	return sp_it_run(argv, NULL, out, cap, 30);
}

/* sealpost send --enrol-token: refused without a token (exit 3, as a
 * failed connect), accepted with one, and after that without. */
static void test_cli_enrol_token(void **state)
{
	struct sp_it_broker b;
	char keyf[300], out[512], tok[SP_ENROL_TEXT_LEN + 1], pub[80];
	int rc;

	(void)state;
	start(&b, NULL, token_args);
	snprintf(keyf, sizeof(keyf), "%s/device.key", b.data_dir);
	{
		char *args[] = { "keygen", keyf, NULL };

		assert_int_equal(cli(args, out, sizeof(out)), 0);
		assert_true(strlen(out) >= 64);
		memcpy(pub, out, 64);
		pub[64] = '\0';
	}
	mint_one(b.data_dir, tok);
	{
		char *none[] = { "send", "--server", b.addr, "--server-key", b.server_pub_hex,
				 "--key", keyf, "--to", pub, "hello", NULL };
		char *with[] = { "send", "--server", b.addr, "--server-key", b.server_pub_hex,
				 "--key", keyf, "--enrol-token", tok, "--to", pub, "hello", NULL };
		char *bad[] = { "send", "--server", b.addr, "--server-key", b.server_pub_hex,
				"--key", keyf, "--enrol-token", "nonsense", "--to", pub, "hello", NULL };

		rc = cli(none, out, sizeof(out));
		assert_int_equal(rc, 3);
		assert_int_equal(cli(bad, out, sizeof(out)), 3);
		assert_int_equal(cli(with, out, sizeof(out)), 0);
		/* registered now: no token needed, and the spent one is not refused */
		assert_int_equal(cli(none, out, sizeof(out)), 0);
		assert_int_equal(cli(with, out, sizeof(out)), 0);
	}
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mint_token_cli),
		cmocka_unit_test(test_token_registration),
		cmocka_unit_test(test_open_mode),
		cmocka_unit_test(test_cli_enrol_token),
		cmocka_unit_test(test_linked_device),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
