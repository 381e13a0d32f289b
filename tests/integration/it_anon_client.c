/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_anon_client: sealed sender (docs/PROTOCOL.md 14, docs/CLIENT.md
 * "Sealed sender") through libsealpost and the sealpost CLI against a real
 * sealpostd. The recipient sets an access key; the sender sends
 * anonymously (its own NK connection, the sender inside the seal) and the
 * recipient opens it and sees who wrote it; a wrong, missing or rotated
 * key is refused with its own code; "accept from anyone" on and off; an
 * anonymous client refuses what it cannot do; and the broker's data
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_library),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
