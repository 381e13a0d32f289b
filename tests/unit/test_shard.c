/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_shard.c: the shard's mailbox set-up against a real RocksDB directory:
 * sp_shard_store_open maps sealpostd's options onto the store (fsync mode,
 * quotas, ttl, dedup window), lays out DATA_DIR/mailbox, and refuses a
 * locked or unusable directory with one clear log line; the mailbox options
 * parse and print. The event loop itself is covered by the integration tests
 * (real sealpostd processes).
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

#include "sp_config.h"
#include "sp_log.h"
#include "sp_shard.h"
#include "sp_store.h"

struct fx {
	char dir[64];
	char logpath[96];
	int logfd;
	struct sp_log log;
	struct sp_config cfg;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/sp-test-shard-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->logpath, sizeof(f->logpath), "%s.log", f->dir);
	f->logfd = open(f->logpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (f->logfd < 0)
		return -1;
	sp_log_init(&f->log, f->logfd, SP_LOG_INFO);
	sp_config_defaults(&f->cfg);
	snprintf(f->cfg.data_dir, sizeof(f->cfg.data_dir), "%s", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[160];

	close(f->logfd);
	unlink(f->logpath);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* The log written so far (NUL-terminated, static buffer). */
static const char *log_text(struct fx *f)
{
	static char buf[8192];
	ssize_t n = pread(f->logfd, buf, sizeof(buf) - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void key_of(uint8_t k[SP_KEY_LEN], uint8_t v)
{
	memset(k, v, SP_KEY_LEN);
}

static uint64_t enqueue_one(struct sp_store *st, uint64_t now_ms, const uint8_t *to,
			    uint64_t client_id, int *ret)
{
	uint8_t snd[SP_KEY_LEN], body[100] = { 1 };
	struct sp_store_envelope e = { .recipient = to, .sender = snd, .client_id = client_id,
				       .body = body, .body_len = sizeof(body) };
	struct sp_store_batch *b;
	uint64_t seq = 0;

	key_of(snd, 7);
	assert_int_equal(sp_store_batch_begin(st, now_ms, &b), 0);
	*ret = sp_store_enqueue(b, &e, &seq);
	assert_int_equal(sp_store_batch_commit(b), 0);
	return seq;
}

static void test_layout_and_options(void **state)
{
	struct fx *f = *state;
	struct sp_store *st = NULL;
	struct sp_store_item items[4];
	struct sp_store_read_result res;
	char path[160];
	struct stat sb;
	uint8_t a[SP_KEY_LEN];
	uint64_t s1, s2;
	int ret;

	f->cfg.fsync = SP_FSYNC_ALWAYS;
	f->cfg.mailbox_max_count = 2;
	f->cfg.mailbox_sender_share = 100;     /* one sender fills the quota below */
	f->cfg.ttl_s = 10;
	f->cfg.dedup_window_s = 5;
	assert_int_equal(sp_shard_store_open(&f->cfg, &f->log, &st), 0);
	assert_non_null(st);
	assert_non_null(strstr(log_text(f), "msg=\"mailbox store open\""));
	assert_non_null(strstr(log_text(f), "fsync=always"));

	/* DATA_DIR/mailbox/{store.lock,dedup.key,db/}, private. */
	snprintf(path, sizeof(path), "%s/mailbox", f->dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/mailbox/dedup.key", f->dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/mailbox/db/CURRENT", f->dir);
	assert_int_equal(stat(path, &sb), 0);

	/* --mailbox-max-count 2: the third is over quota. */
	key_of(a, 1);
	s1 = enqueue_one(st, 1000, a, 11, &ret);
	assert_int_equal(ret, 0);
	/* --dedup-window 5 s: a retry at +4 s is the same envelope... */
	s2 = enqueue_one(st, 5000 - 1, a, 11, &ret);
	assert_int_equal(ret, SP_STORE_DUPLICATE);
	assert_int_equal(s2, s1);
	/* ...at +5 s it is a new one. */
	s2 = enqueue_one(st, 6000, a, 11, &ret);
	assert_int_equal(ret, 0);
	assert_true(s2 > s1);
	enqueue_one(st, 6000, a, 12, &ret);
	assert_int_equal(ret, -EDQUOT);

	/* --ttl 10 s: the first envelope is gone for a reader at +10 s. */
	assert_int_equal(sp_store_read(st, a, 0, 1000 + 10000 - 1, 4, SIZE_MAX, items, &res), 0);
	assert_int_equal(res.count, 2);
	assert_int_equal(sp_store_read(st, a, 0, 1000 + 10000, 4, SIZE_MAX, items, &res), 0);
	assert_int_equal(res.count, 1);
	assert_int_equal(items[0].seq, s2);
	sp_store_close(st);

	/* A second open of the same directory sees what was committed. */
	assert_int_equal(sp_shard_store_open(&f->cfg, &f->log, &st), 0);
	assert_int_equal(sp_store_read(st, a, 0, 2000, 4, SIZE_MAX, items, &res), 0);
	assert_int_equal(res.count, 2);
	sp_store_close(st);
}

static void test_locked(void **state)
{
	struct fx *f = *state;
	struct sp_store *st = NULL, *st2 = (struct sp_store *)1;

	assert_int_equal(sp_shard_store_open(&f->cfg, &f->log, &st), 0);
	assert_int_equal(sp_shard_store_open(&f->cfg, &f->log, &st2), -EBUSY);
	assert_null(st2);
	assert_non_null(strstr(log_text(f), "level=error msg=\"cannot open the mailbox store\""));
	assert_non_null(strstr(log_text(f), "in use by another sealpostd"));
	sp_store_close(st);
	/* Released: it opens again. */
	assert_int_equal(sp_shard_store_open(&f->cfg, &f->log, &st), 0);
	sp_store_close(st);
}

static void test_not_a_directory(void **state)
{
	struct fx *f = *state;
	struct sp_store *st = (struct sp_store *)1;
	char path[160];
	int fd;

	snprintf(path, sizeof(path), "%s/mailbox", f->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(sp_shard_store_open(&f->cfg, &f->log, &st), -ENOTDIR);
	assert_null(st);
	assert_non_null(strstr(log_text(f), "msg=\"cannot open the mailbox store\""));
	assert_non_null(strstr(log_text(f), "is not a directory"));
}

static void test_options_parse(void **state)
{
	struct sp_config c;
	char err[SP_CONFIG_ERR_MAX];
	char *ok[] = { "sealpostd", "--fsync", "never", "--fsync-interval=250",
		       "--mailbox-max-count", "5", "--mailbox-max-bytes", "1048576", "--ttl", "60",
		       "--dedup-window", "30", "--backlog-chunk", "16", NULL };
	char *bad_mode[] = { "sealpostd", "--fsync", "sometimes", NULL };
	char *bad_ttl[] = { "sealpostd", "--ttl", "0", NULL };

	(void)state;
	sp_config_defaults(&c);
	assert_int_equal(c.fsync, SP_FSYNC_BATCH);
	assert_int_equal(c.fsync_interval_ms, 100);
	assert_int_equal(c.mailbox_max_count, 10000);
	assert_int_equal(c.mailbox_max_bytes, 64ull << 20);
	assert_int_equal(c.ttl_s, 30ull * 86400);
	assert_int_equal(c.dedup_window_s, 86400);
	assert_int_equal(sp_config_parse(&c, 14, ok, err, sizeof(err)), SP_CONFIG_OK);
	assert_int_equal(c.fsync, SP_FSYNC_NEVER);
	assert_int_equal(c.fsync_interval_ms, 250);
	assert_int_equal(c.mailbox_max_count, 5);
	assert_int_equal(c.mailbox_max_bytes, 1048576);
	assert_int_equal(c.ttl_s, 60);
	assert_int_equal(c.dedup_window_s, 30);
	assert_int_equal(c.backlog_chunk, 16);
	assert_int_equal(sp_config_parse(&c, 3, bad_mode, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "always, batch or never"));
	assert_int_equal(sp_config_parse(&c, 3, bad_ttl, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "ttl"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_layout_and_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_directory, setup, teardown),
		cmocka_unit_test(test_options_parse),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
