/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_sessions.c: the session store (client/sp_sessions.c) on its own, on
 * real files: two devices' stores through a first contact's start and
 * envelopes both ways; the file reopens under its key and no other, a
 * flipped byte or a truncation is -SEALPOST_ESTORAGEKEY, a readable mode
 * -SEALPOST_EKEYMODE, a second open -EBUSY; a send whose save fails is not
 * made (-EIO) and uses no key; simultaneous starts keep the lower key's.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sealpost.h"
#include "sp_internal.h"
#include "sp_sessions_internal.h"

enum { MAXP = 64000 - 97 };

struct fx {
	char dir[64], pa[128], pb[128];
	struct sealpost_key *ka, *kb;
	uint8_t sa[32], sb[32];
	struct sealpost_sessions *a, *b;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/sp_test_sessions.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->pa, sizeof(f->pa), "%s/a.sessions", f->dir);
	snprintf(f->pb, sizeof(f->pb), "%s/b.sessions", f->dir);
	assert_int_equal(sealpost_key_generate(&f->ka), 0);
	assert_int_equal(sealpost_key_generate(&f->kb), 0);
	randombytes_buf(f->sa, sizeof(f->sa));
	randombytes_buf(f->sb, sizeof(f->sb));
	assert_int_equal(sealpost_sessions_open(&f->a, f->pa, f->ka, f->sa), 0);
	assert_int_equal(sealpost_sessions_open(&f->b, f->pb, f->kb, f->sb), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	sealpost_sessions_close(f->a);
	sealpost_sessions_close(f->b);
	sealpost_key_free(f->ka);
	sealpost_key_free(f->kb);
	chmod(f->dir, 0700);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* What a first contact from a to b leaves both sides (as sp_prekeys does). */
static void start(struct fx *f, struct sealpost_sessions *a, const struct sealpost_key *ka,
		  struct sealpost_sessions *b, const struct sealpost_key *kb, int want_b)
{
	struct sp_fc_start sa, sb;
	uint8_t spk[32];

	randombytes_buf(sa.sk, 32);
	randombytes_buf(sa.ek, 32);
	randombytes_buf(spk, 32);
	crypto_scalarmult_base(sa.spk, spk);
	memcpy(sa.ad, ka->pub, 32);
	memcpy(sa.ad + 32, kb->pub, 32);
	sb = sa;
	crypto_scalarmult_base(sb.ek, sa.ek);
	memcpy(sb.spk, spk, 32);
	assert_int_equal(sp_sessions_start_alice(a, kb->pub, &sa), 0);
	assert_int_equal(sp_sessions_start_bob(b, ka->pub, &sb), want_b);
	(void)f;
}

static size_t seal(struct sealpost_sessions *s, const uint8_t *to, const char *m, uint8_t *out)
{
	size_t n = 0;

	assert_int_equal(sp_sessions_encrypt(s, to, (const uint8_t *)m, strlen(m), MAXP, true, out,
					     1024, &n), 0);
	return n;
}

static void opens(struct sealpost_sessions *s, const uint8_t *body, size_t len,
		  const uint8_t *from, const char *m)
{
	uint8_t sender[32], out[1024];
	size_t n = 0;

	assert_int_equal(sp_sessions_decrypt(s, body, len, sender, out, sizeof(out), &n), 0);
	assert_memory_equal(sender, from, 32);
	assert_int_equal(n, strlen(m));
	assert_memory_equal(out, m, n);
}

static void test_round_trip_and_reopen(void **state)
{
	struct fx *f = *state;
	uint8_t body[1024];
	size_t len;

	start(f, f->a, f->ka, f->b, f->kb, 0);
	len = seal(f->a, f->kb->pub, "a to b", body);
	opens(f->b, body, len, f->ka->pub, "a to b");
	len = seal(f->b, f->ka->pub, "b to a", body);
	/* both stores closed and reopened from disk: the state went with them */
	sealpost_sessions_close(f->a);
	sealpost_sessions_close(f->b);
	assert_int_equal(sealpost_sessions_open(&f->a, f->pa, f->ka, f->sa), 0);
	assert_int_equal(sealpost_sessions_open(&f->b, f->pb, f->kb, f->sb), 0);
	assert_true(sealpost_sessions_has(f->a, f->kb->pub));
	opens(f->a, body, len, f->kb->pub, "b to a");
	/* the key is gone on disk too */
	sealpost_sessions_close(f->a);
	assert_int_equal(sealpost_sessions_open(&f->a, f->pa, f->ka, f->sa), 0);
	{
		uint8_t sender[32], out[1024];
		size_t n;

		assert_int_equal(sp_sessions_decrypt(f->a, body, len, sender, out, sizeof(out), &n),
				 -EBADMSG);
	}
	assert_int_equal(sealpost_sessions_forget(f->a, f->kb->pub), 0);
	assert_int_equal(sealpost_sessions_forget(f->a, f->kb->pub), -ENOENT);
	assert_int_equal(sealpost_sessions_count(f->a), 0);
}

static void test_file_refused(void **state)
{
	struct fx *f = *state;
	struct sealpost_sessions *s = NULL;
	uint8_t wrong[32], buf[4096];
	struct stat st;
	ssize_t n;
	int fd;

	start(f, f->a, f->ka, f->b, f->kb, 0);
	/* a second open while it is open */
	assert_int_equal(sealpost_sessions_open(&s, f->pa, f->ka, f->sa), -EBUSY);
	sealpost_sessions_close(f->a);
	f->a = NULL;
	memcpy(wrong, f->sa, 32);
	wrong[5] ^= 1;
	assert_int_equal(sealpost_sessions_open(&s, f->pa, f->ka, wrong), -SEALPOST_ESTORAGEKEY);
	assert_int_equal(sealpost_sessions_open(&s, f->pa, f->kb, f->sa), -EINVAL);
	/* every byte position matters: the header (AD), the nonce, the ciphertext */
	fd = open(f->pa, O_RDWR);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf));
	assert_true(n > 100);
	for (ssize_t at = 5; at < n; at += 37) {
		buf[at] ^= 0x10;
		assert_int_equal(pwrite(fd, buf, (size_t)n, 0), n);
		assert_int_not_equal(sealpost_sessions_open(&s, f->pa, f->ka, f->sa), 0);
		buf[at] ^= 0x10;
	}
	assert_int_equal(pwrite(fd, buf, (size_t)n, 0), n);
	assert_int_equal(ftruncate(fd, n - 1), 0);
	assert_int_equal(sealpost_sessions_open(&s, f->pa, f->ka, f->sa), -SEALPOST_ESTORAGEKEY);
	assert_int_equal(pwrite(fd, buf, (size_t)n, 0), n);
	close(fd);
	assert_int_equal(stat(f->pa, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(chmod(f->pa, 0644), 0);
	assert_int_equal(sealpost_sessions_open(&s, f->pa, f->ka, f->sa), -SEALPOST_EKEYMODE);
	assert_int_equal(chmod(f->pa, 0600), 0);
	assert_int_equal(sealpost_sessions_open(&f->a, f->pa, f->ka, f->sa), 0);
	assert_true(sealpost_sessions_has(f->a, f->kb->pub));
}

/* A send whose state cannot be written is not made and uses no key. */
static void test_failed_save_sends_nothing(void **state)
{
	struct fx *f = *state;
	uint8_t body[1024], out[1024];
	char tmp[160];
	size_t len = 0;

	start(f, f->a, f->ka, f->b, f->kb, 0);
	/* the temporary file's name taken by a directory: the save fails,
	 * for root too */
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->pa);
	assert_int_equal(mkdir(tmp, 0700), 0);
	assert_int_equal(sp_sessions_encrypt(f->a, f->kb->pub, (const uint8_t *)"x", 1, MAXP, true,
					     out, sizeof(out), &len), -EIO);
	assert_int_equal(rmdir(tmp), 0);
	/* the next send is still message number 0 of its chain, and opens */
	len = seal(f->a, f->kb->pub, "after", body);
	assert_int_equal(body[1 + 16 + 32 + 4 + 3], 0);
	opens(f->b, body, len, f->ka->pub, "after");
}

/* A first contact's start for each side (from -> to), not yet applied. */
static void contact(const struct sealpost_key *from, const struct sealpost_key *to,
		    struct sp_fc_start *alice, struct sp_fc_start *bob)
{
	uint8_t spk[32];

	randombytes_buf(alice->sk, 32);
	randombytes_buf(alice->ek, 32);
	randombytes_buf(spk, 32);
	crypto_scalarmult_base(alice->spk, spk);
	memcpy(alice->ad, from->pub, 32);
	memcpy(alice->ad + 32, to->pub, 32);
	*bob = *alice;
	crypto_scalarmult_base(bob->ek, alice->ek);
	memcpy(bob->spk, spk, 32);
}

/* Both began at once: each keeps the session begun by the lower key, so
 * they agree; the same first contact again changes nothing. */
static void test_simultaneous_start(void **state)
{
	struct fx *f = *state;
	bool a_low = memcmp(f->ka->pub, f->kb->pub, 32) < 0;
	struct sp_fc_start a1, b1, a2, b2;
	uint8_t body[1024];
	size_t len;

	contact(f->ka, f->kb, &a1, &b1);   /* a's first contact to b */
	contact(f->kb, f->ka, &a2, &b2);   /* b's to a */
	assert_int_equal(sp_sessions_start_alice(f->a, f->kb->pub, &a1), 0);
	assert_int_equal(sp_sessions_start_alice(f->b, f->ka->pub, &a2), 0);
	/* each receives the other's */
	assert_int_equal(sp_sessions_start_bob(f->b, f->ka->pub, &b1), a_low ? 0 : 1);
	assert_int_equal(sp_sessions_start_bob(f->a, f->kb->pub, &b2), a_low ? 1 : 0);
	len = seal(f->a, f->kb->pub, "a after the race", body);
	opens(f->b, body, len, f->ka->pub, "a after the race");
	len = seal(f->b, f->ka->pub, "b after the race", body);
	opens(f->a, body, len, f->kb->pub, "b after the race");
	/* the winning first contact delivered again keeps the session */
	if (a_low)
		assert_int_equal(sp_sessions_start_bob(f->b, f->ka->pub, &b1), 1);
	else
		assert_int_equal(sp_sessions_start_bob(f->a, f->kb->pub, &b2), 1);
	len = seal(f->a, f->kb->pub, "still one session", body);
	opens(f->b, body, len, f->ka->pub, "still one session");
	sodium_memzero(&a1, sizeof(a1));
	sodium_memzero(&a2, sizeof(a2));
	sodium_memzero(&b1, sizeof(b1));
	sodium_memzero(&b2, sizeof(b2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_save_sends_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_simultaneous_start, setup, teardown),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
