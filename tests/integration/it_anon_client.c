/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_anon_client: sealed sender (docs/PROTOCOL.md 14, docs/CLIENT.md
 * "Sealed sender") through libsealpost and the sealpost CLI against a real
 * sealpostd. The recipient sets an access key; the sender sends
 * anonymously (its own NK connection, the sender inside the seal) and the
 * recipient opens it and sees who wrote it; a wrong, missing or rotated
 * key is refused with its own code; "accept from anyone" on and off; an
 * anonymous client refuses what it cannot do; the source's anonymous
 * budget comes back as -SEALPOST_EANONLIMIT; and the broker's data
 * directory holds the recipient's key but not the sender's.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "sealpost.h"
#include "support.h"

enum { TIMEOUT_MS = 20000, RUN_TIMEOUT_S = 30 };

static void start(struct sp_it_broker *b)
{
	static const char *const args[] = { "--fsync", "never", "--store-min-free", "0",
					    "--log-level", "info", NULL };

	assert_int_equal(sp_it_broker_start(b, NULL, args), 0);
}

static struct sealpost_key *new_key(uint8_t pub[SEALPOST_KEY_LEN])
{
	struct sealpost_key *k = NULL;

	assert_int_equal(sealpost_key_generate(&k), 0);
	sealpost_key_public(k, pub);
	return k;
}

static struct sealpost_client *dial(const struct sp_it_broker *b, const struct sealpost_key *k,
				    uint32_t flags)
{
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;
	struct sealpost_client *c = NULL;

	o.flags = flags;
	assert_int_equal(sealpost_client_connect_opts(&c, b->addr, k, b->server_pub, TIMEOUT_MS,
						      &o),
			 0);
	return c;
}

/* The next MESSAGE event (skipping DRAINED): from `from`, exactly text. */
static void expect_message(struct sealpost_client *c, const uint8_t from[SEALPOST_KEY_LEN],
			   const char *text)
{
	struct sealpost_event ev;

	for (;;) {
		assert_int_equal(sealpost_client_next_event(c, &ev, TIMEOUT_MS), 1);
		if (ev.type == SEALPOST_EVENT_DRAINED)
			continue;
		if (ev.type != SEALPOST_EVENT_MESSAGE)
			fail_msg("event %d, wanted a message \"%s\"", (int)ev.type, text);
		break;
	}
	assert_memory_equal(ev.sender, from, SEALPOST_KEY_LEN);
	assert_int_equal(ev.len, strlen(text));
	assert_memory_equal(ev.data, text, ev.len);
	assert_true(ev.seq > 0);
	assert_int_equal(sealpost_client_ack(c, ev.seq), 0);
}

/* sealpost_send_anonymous with its return and status. */
static int send_anon(struct sealpost_client *c, const uint8_t to[SEALPOST_KEY_LEN],
		     const uint8_t *key, size_t len, const char *text, int *status)
{
	*status = -1;
	return sealpost_send_anonymous(c, to, key, len, text, strlen(text), TIMEOUT_MS, status,
				       NULL);
}

/* ---- the data directory holds no sender key ------------------------------------ */

static const uint8_t *needle;

static int grep_file(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	uint8_t *buf;
	FILE *f;
	size_t n;
	bool hit;

	(void)ftw;
	if (flag != FTW_F || !S_ISREG(sb->st_mode) || sb->st_size == 0)
		return 0;
	f = fopen(path, "rb");
	if (!f)
		return 0;       /* RocksDB removed an obsolete file meanwhile */
	buf = malloc((size_t)sb->st_size);
	assert_non_null(buf);
	n = fread(buf, 1, (size_t)sb->st_size, f);
	fclose(f);
	hit = memmem(buf, n, needle, SEALPOST_KEY_LEN) != NULL;
	free(buf);
	return hit ? 1 : 0;
}

static bool on_disk(const char *dir, const uint8_t key[SEALPOST_KEY_LEN])
{
	needle = key;
	return nftw(dir, grep_file, 16, FTW_PHYS) == 1;
}

/* ---- the library ----------------------------------------------------------------- */

static void test_library(void **state)
{
	struct sp_it_broker b;
	struct sealpost_key *rk, *sk;
	struct sealpost_client *r, *s, *a = NULL;
	uint8_t rpub[SEALPOST_KEY_LEN], spub[SEALPOST_KEY_LEN], k1[SEALPOST_ACCESS_KEY_LEN],
		k2[SEALPOST_ACCESS_KEY_LEN], short_key[SEALPOST_ACCESS_KEY_MIN], bad[5] = { 0 };
	uint64_t id = 0;
	int st;

	(void)state;
	start(&b);
	rk = new_key(rpub);
	sk = new_key(spub);
	/* Manual acks: what the recipient got stays stored until the disk check. */
	r = dial(&b, rk, SEALPOST_CONNECT_MANUAL_ACK);
	s = dial(&b, sk, 0);
	sealpost_access_key_generate(k1);
	sealpost_access_key_generate(k2);
	randombytes_buf(short_key, sizeof(short_key));
	assert_memory_not_equal(k1, k2, sizeof(k1));

	/* No key set, not accepting anyone: refused with its own code. */
	assert_int_equal(send_anon(s, rpub, NULL, 0, "before any key", &st),
			 -SEALPOST_EACCESSMISSING);
	assert_int_equal(st, SEALPOST_STATUS_ERR_ACCESS_MISSING);
	assert_int_equal(sealpost_set_access(r, bad, sizeof(bad), false, TIMEOUT_MS),
			 -SEALPOST_EACCESSBADKEY);
	assert_int_equal(sealpost_set_access(r, k1, sizeof(k1), false, TIMEOUT_MS), 0);
	assert_int_equal(send_anon(s, rpub, NULL, 0, "no token", &st), -SEALPOST_EACCESSMISSING);
	assert_int_equal(send_anon(s, rpub, k2, sizeof(k2), "wrong token", &st),
			 -SEALPOST_EACCESSWRONG);
	assert_int_equal(st, SEALPOST_STATUS_ERR_ACCESS_WRONG);
	assert_int_equal(send_anon(s, rpub, bad, sizeof(bad), "bad token", &st),
			 -SEALPOST_EACCESSBADKEY);

	/* The right key: accepted; the recipient opens it and the seal says who. */
	assert_int_equal(send_anon(s, rpub, k1, sizeof(k1), "sealed, from s", &st), 0);
	assert_int_equal(st, SEALPOST_STATUS_ACCEPTED);
	expect_message(r, spub, "sealed, from s");

	/* A known contact key: the plain send_wait goes anonymous by itself. */
	assert_int_equal(sealpost_contact_access_set(s, rpub, bad, sizeof(bad)),
			 -SEALPOST_EACCESSBADKEY);
	assert_int_equal(sealpost_contact_access_set(s, NULL, k1, sizeof(k1)), -EINVAL);
	assert_int_equal(sealpost_contact_access_set(s, rpub, k1, sizeof(k1)), 0);
	assert_int_equal(sealpost_client_send_wait(s, rpub, "by default", 10, TIMEOUT_MS, &st,
						   NULL),
			 0);
	assert_int_equal(st, SEALPOST_STATUS_ACCEPTED);
	expect_message(r, spub, "by default");

	/* Rotation (a 16-byte key this time) cuts off senders of the old one. */
	assert_int_equal(sealpost_set_access(r, short_key, sizeof(short_key), false, TIMEOUT_MS),
			 0);
	assert_int_equal(sealpost_client_send_wait(s, rpub, "old key", 7, TIMEOUT_MS, &st, NULL),
			 -SEALPOST_EACCESSROTATED);
	assert_int_equal(st, SEALPOST_STATUS_ERR_ACCESS_ROTATED);
	assert_int_equal(sealpost_contact_access_set(s, rpub, short_key, sizeof(short_key)), 0);
	assert_int_equal(sealpost_client_send_wait(s, rpub, "new key", 7, TIMEOUT_MS, &st, NULL),
			 0);
	expect_message(r, spub, "new key");

	/* Accept from anyone: no token needed; off again: needed. */
	assert_int_equal(sealpost_contact_access_set(s, rpub, NULL, 0), 0);
	assert_int_equal(sealpost_set_access(r, NULL, 0, true, TIMEOUT_MS), 0);
	assert_int_equal(send_anon(s, rpub, NULL, 0, "anyone", &st), 0);
	assert_int_equal(st, SEALPOST_STATUS_ACCEPTED);
	expect_message(r, spub, "anyone");
	assert_int_equal(sealpost_set_access(r, NULL, 0, false, TIMEOUT_MS), 0);
	assert_int_equal(send_anon(s, rpub, NULL, 0, "anyone, again", &st),
			 -SEALPOST_EACCESSMISSING);
	/* Forgotten contact: send_wait is the authenticated send again. */
	assert_int_equal(sealpost_client_send_wait(s, rpub, "authenticated", 13, TIMEOUT_MS, &st,
						   NULL),
			 0);
	assert_int_equal(st, SEALPOST_STATUS_ACCEPTED);
	expect_message(r, spub, "authenticated");

	/* An anonymous client of our own: only anonymous sends. */
	assert_int_equal(sealpost_client_connect_anonymous(&a, b.addr, b.server_pub, TIMEOUT_MS,
							   NULL),
			 0);
	assert_true(sealpost_client_is_anonymous(a));
	assert_false(sealpost_client_is_anonymous(s));
	assert_int_equal(sealpost_client_send(a, rpub, "x", 1, NULL), -SEALPOST_EANONYMOUS);
	assert_int_equal(sealpost_client_send_raw(a, rpub, (const uint8_t *)"x", 1, NULL),
			 -SEALPOST_EANONYMOUS);
	assert_int_equal(sealpost_access_set(a, k1, sizeof(k1), false, NULL),
			 -SEALPOST_EANONYMOUS);
	assert_int_equal(sealpost_client_ack(a, 1), -SEALPOST_EANONYMOUS);
	assert_int_equal(sealpost_push_remove(a, NULL), -SEALPOST_EANONYMOUS);
	assert_int_equal(sealpost_send_anonymous(a, rpub, NULL, 0, "x", 1, TIMEOUT_MS, &st, NULL),
			 -SEALPOST_EANONYMOUS);
	assert_int_equal(sealpost_client_send_anonymous(s, sk, rpub, NULL, 0, "x", 1, 0, NULL),
			 -SEALPOST_EANONYMOUS);
	assert_int_equal(sealpost_client_send_anonymous(a, sk, rpub, short_key, sizeof(short_key),
							"own anon client", 15, 0, &id),
			 0);
	assert_int_equal(sealpost_client_wait_result(a, id, TIMEOUT_MS, &st, NULL), 0);
	assert_int_equal(st, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(sealpost_client_sync(a, TIMEOUT_MS), 0);
	expect_message(r, spub, "own anon client");
	sealpost_client_close(a);

	/* One more stored and not acknowledged, so the recipient's key is in
	 * the data directory (its mailbox: the check can find a key); the
	 * anonymous sender's is not. */
	assert_int_equal(send_anon(s, rpub, short_key, sizeof(short_key), "kept", &st), 0);
	assert_int_equal(sealpost_client_sync(r, TIMEOUT_MS), 0);
	sealpost_client_close(s);
	sealpost_client_close(r);
	sealpost_key_free(rk);
	sealpost_key_free(sk);
	assert_true(on_disk(b.data_dir, rpub));
	if (on_disk(b.data_dir, spub))
		fail_msg("the sender's key is in the broker's data directory");
	/* Its log names neither device (PROTOCOL.md: no key at info level). */
	assert_int_equal(sp_it_log_count_key(&b, spub), 0);
	assert_int_equal(sp_it_log_count_key(&b, rpub), 0);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
}

/* ---- abuse control: the source's budget, as the library reports it --------------- */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* 40 anonymous sends at once from one address with anon-source-burst 5 and
 * anon-source-rate 1: the burst and what the rate refilled meanwhile are
 * accepted, the rest refused as ERR_ANON_RATE_LIMITED, which
 * sealpost_access_error calls -SEALPOST_EANONLIMIT and the blocking call
 * returns. */
static void test_rate_limited(void **state)
{
	static const char *const args[] = { "--fsync", "never", "--anon-source-burst", "5",
					    "--anon-source-rate", "1", NULL };
	enum { N = 40 };
	struct sp_it_broker b;
	struct sealpost_key *rk, *sk;
	struct sealpost_client *r, *s, *a = NULL;
	uint8_t rpub[SEALPOST_KEY_LEN], spub[SEALPOST_KEY_LEN];
	uint64_t ids[N], t0;
	unsigned accepted = 0, limited = 0;
	double secs;
	int st;

	(void)state;
	assert_int_equal(sp_it_broker_start(&b, NULL, args), 0);
	rk = new_key(rpub);
	sk = new_key(spub);
	r = dial(&b, rk, 0);
	assert_int_equal(sealpost_set_access(r, NULL, 0, true, TIMEOUT_MS), 0);
	assert_int_equal(sealpost_client_connect_anonymous(&a, b.addr, b.server_pub, TIMEOUT_MS,
							   NULL),
			 0);
	t0 = mono_ms();
	for (int i = 0; i < N; i++)
		assert_int_equal(sealpost_client_send_anonymous(a, sk, rpub, NULL, 0, "flood", 5, 0,
								&ids[i]),
				 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(sealpost_client_wait_result(a, ids[i], TIMEOUT_MS, &st, NULL), 0);
		if (st == SEALPOST_STATUS_ACCEPTED) {
			accepted++;
		} else {
			assert_int_equal(st, SEALPOST_STATUS_ERR_ANON_RATE_LIMITED);
			assert_int_equal(sealpost_access_error(st), -SEALPOST_EANONLIMIT);
			limited++;
		}
	}
	secs = (double)(mono_ms() - t0) / 1000.0;
	printf("anon source budget: %u accepted, %u limited in %.2f s\n", accepted, limited, secs);
	assert_true(accepted >= 5);
	assert_true(accepted <= 5 + 1 * (secs + 1));
	assert_int_equal(accepted + limited, N);
	/* The same budget through sealpost_send_anonymous (its own NK
	 * connection, the same address): refused with the code, or (if a
	 * token came back meanwhile) accepted; never anything else. */
	s = dial(&b, sk, 0);
	{
		int rc = sealpost_send_anonymous(s, rpub, NULL, 0, "one more", 8, TIMEOUT_MS, &st,
						 NULL);

		assert_true((rc == 0 && st == SEALPOST_STATUS_ACCEPTED) ||
			    (rc == -SEALPOST_EANONLIMIT && st == SEALPOST_STATUS_ERR_ANON_RATE_LIMITED));
	}
	sealpost_client_close(a);
	sealpost_client_close(s);
	sealpost_client_close(r);
	sealpost_key_free(rk);
	sealpost_key_free(sk);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

/* ---- the CLI --------------------------------------------------------------------- */

static const char *cli;
static struct sp_it_broker cb;
static char cdir[64], ckey_a[128], ckey_b[128], chex_a[65], chex_b[65];

/* Runs `sealpost ARGS` (stderr to the test's); stdout into out. Its exit status. */
static int run(char *out, size_t cap, const char *const *args)
{
	char *argv[40];
	int n = 0;

	argv[n++] = (char *)cli;
	while (*args && n < 39)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	return sp_it_run(argv, NULL, out, cap, RUN_TIMEOUT_S);
}

/* `sealpost SUB [extra] --server .. --server-key .. --key KEY [tail...]`. */
static int run_conn(char *out, size_t cap, const char *sub, const char *sub2, const char *key,
		    const char *const *tail)
{
	const char *args[40];
	int n = 0;

	args[n++] = sub;
	if (sub2)
		args[n++] = sub2;
	args[n++] = "--server";
	args[n++] = cb.addr;
	args[n++] = "--server-key";
	args[n++] = cb.server_pub_hex;
	args[n++] = "--key";
	args[n++] = key;
	while (*tail && n < 39)
		args[n++] = *tail++;
	args[n] = NULL;
	return run(out, cap, args);
}

static int cli_send(const char *const *tail)
{
	char out[256];

	return run_conn(out, sizeof(out), "send", NULL, ckey_a, tail);
}

static int cli_access(const char *sub, const char *const *tail, char *out, size_t cap)
{
	return run_conn(out, cap, "access", sub, ckey_b, tail);
}

static void test_cli(void **state)
{
	char out[4096], k1[80], k2[80], want[512], access_file[128];
	static const char *const none[] = { NULL };

	(void)state;
	cli = getenv("SEALPOST_CLI");
	assert_non_null(cli);
	strcpy(cdir, "/tmp/sp_it_anoncli.XXXXXX");
	assert_non_null(mkdtemp(cdir));
	snprintf(ckey_a, sizeof(ckey_a), "%s/a.key", cdir);
	snprintf(ckey_b, sizeof(ckey_b), "%s/b.key", cdir);
	snprintf(access_file, sizeof(access_file), "%s/access_keys", cdir);
	assert_int_equal(setenv("SEALPOST_ACCESS_KEYS", access_file, 1), 0);
	assert_int_equal(run(out, sizeof(out), (const char *const[]){ "keygen", ckey_a, NULL }), 0);
	memcpy(chex_a, out, 64);
	assert_int_equal(run(out, sizeof(out), (const char *const[]){ "keygen", ckey_b, NULL }), 0);
	memcpy(chex_b, out, 64);
	start(&cb);

	/* B rotates to a random key, printed once on stdout. */
	assert_int_equal(cli_access("rotate", none, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), 65);
	memcpy(k1, out, 64);
	k1[64] = '\0';

	/* A without the key: 65; with a wrong one: 66; exit = broker status. */
	assert_int_equal(cli_send((const char *const[]){ "--to", chex_b, "--anonymous", "no key",
							 NULL }),
			 SEALPOST_STATUS_ERR_ACCESS_MISSING);
	assert_int_equal(cli_send((const char *const[]){ "--to", chex_b, "--access-key",
							 "00112233445566778899aabbccddeeff", "wrong",
							 NULL }),
			 SEALPOST_STATUS_ERR_ACCESS_WRONG);
	assert_int_equal(cli_send((const char *const[]){ "--to", chex_b, "--access-key", "abc",
							 "bad", NULL }),
			 1);
	/* A keeps B's key as a contact: a plain send is anonymous now. */
	assert_int_equal(run(out, sizeof(out),
			     (const char *const[]){ "access", "contact", chex_b, k1, NULL }),
			 0);
	assert_int_equal(cli_send((const char *const[]){ "--to", chex_b, "via contact", NULL }), 0);
	/* B receives it; the seal says A wrote it. */
	assert_int_equal(run_conn(out, sizeof(out), "recv", NULL, ckey_b,
				  (const char *const[]){ "--count", "1", "--timeout", "20", NULL }),
			 0);
	snprintf(want, sizeof(want), "%s via contact\n", chex_a);
	assert_string_equal(out, want);

	/* B rotates: A's kept key is refused with its own code, 67. */
	assert_int_equal(cli_access("rotate", none, out, sizeof(out)), 0);
	memcpy(k2, out, 64);
	k2[64] = '\0';
	assert_string_not_equal(k1, k2);
	assert_int_equal(cli_send((const char *const[]){ "--to", chex_b, "old key", NULL }),
			 SEALPOST_STATUS_ERR_ACCESS_ROTATED);
	/* --authenticated still works (the usual send). */
	assert_int_equal(cli_send((const char *const[]){ "--to", chex_b, "--authenticated",
							 "authenticated", NULL }),
			 0);

	/* Accept from anyone: no key needed; closed again: 65. */
	assert_int_equal(run(out, sizeof(out), (const char *const[]){ "access", "forget", chex_b,
								     NULL }),
			 0);
	assert_int_equal(cli_access("open", none, out, sizeof(out)), 0);
	assert_int_equal(cli_send((const char *const[]){ "--to", chex_b, "--anonymous", "anyone",
							 NULL }),
			 0);
	assert_int_equal(cli_access("close", none, out, sizeof(out)), 0);
	assert_int_equal(cli_send((const char *const[]){ "--to", chex_b, "--anonymous", "closed",
							 NULL }),
			 SEALPOST_STATUS_ERR_ACCESS_MISSING);
	/* The new key by --access-key; set with a 16-byte key of B's choosing. */
	assert_int_equal(cli_send((const char *const[]){ "--to", chex_b, "--access-key", k2,
							 "new key", NULL }),
			 0);
	assert_int_equal(cli_access("set", (const char *const[]){ "00112233445566778899aabbccddeeff",
								  NULL },
				    out, sizeof(out)),
			 0);
	assert_int_equal(cli_send((const char *const[]){ "--to", chex_b, "--access-key",
							 "00112233445566778899aabbccddeeff",
							 "chosen key", NULL }),
			 0);
	assert_int_equal(cli_access("set", (const char *const[]){ "abcd", NULL }, out, sizeof(out)),
			 1);
	assert_int_equal(run_conn(out, sizeof(out), "recv", NULL, ckey_b,
				  (const char *const[]){ "--count", "4", "--timeout", "20", NULL }),
			 0);
	snprintf(want, sizeof(want), "%s authenticated\n%s anyone\n%s new key\n%s chosen key\n",
		 chex_a, chex_a, chex_a, chex_a);
	assert_string_equal(out, want);

	/* A broker key the broker does not hold: the NK handshake fails, 3. */
	assert_int_equal(run(out, sizeof(out),
			     (const char *const[]){ "send", "--server", cb.addr, "--server-key",
						    chex_a, "--key", ckey_a, "--to", chex_b,
						    "--anonymous", "x", NULL }),
			 3);
	/* No broker key, nothing pinned: an anonymous send cannot start. */
	assert_int_equal(run(out, sizeof(out),
			     (const char *const[]){ "send", "--server", cb.addr, "--key", ckey_a,
						    "--to", chex_b, "--anonymous", "x", NULL }),
			 1);
	assert_int_equal(sp_it_broker_stop(&cb), 0);
	sp_it_rmrf(cb.data_dir);
	sp_it_rmrf(cdir);
	unsetenv("SEALPOST_ACCESS_KEYS");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_library),
		cmocka_unit_test(test_cli),
		cmocka_unit_test(test_rate_limited),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
