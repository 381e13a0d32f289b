/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_account.c: accounts through libsealpost against a real sealpostd
 * (docs/PROTOCOL.md 11, issue 11).
 *
 * An account is created on one device and two more are linked with the
 * library's steps (link request, short code, fetch, add, sign, publish);
 * the linked devices are told; a sender fetches and verifies the list and
 * one call seals a copy for each of the three devices, and the sender's
 * own other device gets one too. A tampered broker (its store rewritten
 * while it was down, as a compromised operator could) serves a forged list
 * and a rolled-back one: the client reports each (-SEALPOST_EBADLIST,
 * -SEALPOST_EROLLBACK, and the CLI's exits 7 and 6) and keeps the newest
 * list it had. A removed device gets GoAway REMOVED.
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
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sealpost.h"
#include "sp_devlist.h"
#include "sp_key.h"
#include "sp_keyfile.h"
#include "sp_sth.h"
#include "sp_store.h"
#include "support.h"

enum { TMO = 10000 };

static struct sp_it_broker broker;
static char dir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sp-it-acct-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return sp_it_broker_start(&broker, NULL, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	int st;

	(void)state;
	st = sp_it_broker_stop(&broker);
	if (st != 0)
		sp_it_log_tail(&broker, 40);
	sp_it_rmrf(broker.data_dir);
	sp_it_rmrf(dir);
	return st == 0 ? 0 : -1;
}

struct dev {
	struct sealpost_key *key;
	struct sealpost_client *c;
	uint8_t pub[SEALPOST_KEY_LEN];
};

static void dev_new(struct dev *d, uint32_t flags)
{
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;

	o.flags = flags;
	assert_int_equal(sealpost_key_generate(&d->key), 0);
	sealpost_key_public(d->key, d->pub);
	assert_int_equal(sealpost_client_connect_opts(&d->c, broker.addr, d->key, broker.server_pub,
						      TMO, &o), 0);
}

static void dev_free(struct dev *d)
{
	sealpost_client_close(d->c);
	sealpost_key_free(d->key);
}

static int publish(struct dev *d, const struct sealpost_account *a, const struct sealpost_devlist *l)
{
	uint8_t bytes[SEALPOST_LIST_MAX];
	size_t len = 0;
	uint64_t v = 0;
	int status = -1;

	assert_int_equal(sealpost_devlist_sign(a, l, bytes, sizeof(bytes), &len), 0);
	assert_int_equal(sealpost_account_publish_wait(d->c, bytes, len, TMO, &status, &v), 0);
	if (status == SEALPOST_STATUS_ACCEPTED)
		assert_int_equal(v, l->version);
	return status;
}

/* The library's link steps: the new device's request and code, the linking
 * device's parse, code comparison, fetch, add, version + 1, sign, publish. */
static void link_device(struct dev *linker, const struct sealpost_account *a,
			const uint8_t account[32], struct dev *newdev, const char *label)
{
	char req[SEALPOST_LINK_REQUEST_MAX], code_new[7], code_old[7], got_label[65];
	uint8_t key[32];
	struct sealpost_devlist l;

	assert_int_equal(sealpost_link_request(newdev->pub, label, req, sizeof(req), code_new), 0);
	assert_int_equal(sealpost_link_request_parse(req, key, got_label, code_old), 0);
	assert_string_equal(code_new, code_old);
	assert_memory_equal(key, newdev->pub, 32);
	assert_string_equal(got_label, label);
	assert_int_equal(sealpost_account_fetch_wait(linker->c, account, TMO, &l, NULL, 0, NULL), 0);
	assert_int_equal(sealpost_devlist_add(&l, key, got_label, 1700000000), 0);
	l.version++;
	assert_int_equal(publish(linker, a, &l), SEALPOST_STATUS_ACCEPTED);
}

/* Waits for an event of type on d (others skipped); returns it. */
static void wait_event(struct dev *d, enum sealpost_event_type type, struct sealpost_event *ev)
{
	for (int i = 0; i < 100; i++) {
		int r = sealpost_client_next_event(d->c, ev, TMO);

		if (r != 1)
			fail_msg("no event %d (dev %02x)", type, d->pub[0]);
		if (ev->type == type)
			return;
		assert_int_not_equal(ev->type, SEALPOST_EVENT_CLOSED);
	}
	fail_msg("no event %d", type);
}

static void new_account(struct sealpost_account **a, uint8_t pk[32], struct dev *first,
			const char *label)
{
	struct sealpost_devlist l;

	assert_int_equal(sealpost_account_generate(a), 0);
	sealpost_account_public(*a, pk);
	memset(&l, 0, sizeof(l));
	memcpy(l.account, pk, 32);
	l.version = 1;
	assert_int_equal(sealpost_devlist_add(&l, first->pub, label, 1700000000), 0);
	assert_int_equal(publish(first, *a, &l), SEALPOST_STATUS_ACCEPTED);
}

static void test_create_link_fanout(void **state)
{
	struct dev a, b, c, s, s2;
	struct sealpost_account *acct = NULL, *sacct = NULL;
	uint8_t pk[32], spk[32];
	struct sealpost_devlist l, own;
	struct sealpost_event ev;
	struct dev *recipients[4] = { &a, &b, &c, &s2 };
	uint64_t id = 0;
	int n;

	(void)state;
	dev_new(&a, 0);
	dev_new(&b, 0);
	dev_new(&c, 0);
	dev_new(&s, 0);
	dev_new(&s2, 0);
	/* create on a, link b and c */
	new_account(&acct, pk, &a, "laptop");
	link_device(&a, acct, pk, &b, "phone");
	wait_event(&b, SEALPOST_EVENT_LIST_CHANGED, &ev);
	assert_int_equal(ev.seq, 2);
	assert_int_equal(ev.error, 0);
	assert_memory_equal(ev.sender, pk, 32);
	link_device(&b, acct, pk, &c, "tablet");
	wait_event(&a, SEALPOST_EVENT_LIST_CHANGED, &ev);
	assert_int_equal(ev.seq, 3);
	wait_event(&c, SEALPOST_EVENT_LIST_CHANGED, &ev);
	assert_int_equal(ev.seq, 3);
	assert_int_equal(ev.error, 0);
	/* the sender's own account: s and s2 */
	new_account(&sacct, spk, &s, "desk");
	link_device(&s, sacct, spk, &s2, "pocket");
	/* the sender fetches, verifies, seals one copy per device */
	assert_int_equal(sealpost_account_fetch_wait(s.c, pk, TMO, &l, NULL, 0, NULL), 0);
	assert_int_equal(l.count, 3);
	assert_int_equal(l.version, 3);
	n = sealpost_client_send_devices(s.c, &l, "hi all", 6, &id);
	assert_int_equal(n, 3);
	for (int i = 0; i < n; i++) {
		int st = 0;

		assert_int_equal(sealpost_client_wait_result(s.c, id + (uint64_t)i, TMO, &st, NULL), 0);
		assert_int_equal(st, SEALPOST_STATUS_ACCEPTED);
	}
	/* and the sender's other devices, from its own list (itself left out) */
	assert_int_equal(sealpost_account_fetch_wait(s.c, spk, TMO, &own, NULL, 0, NULL), 0);
	n = sealpost_client_send_devices(s.c, &own, "hi all", 6, &id);
	assert_int_equal(n, 1);
	{
		int st = 0;

		assert_int_equal(sealpost_client_wait_result(s.c, id, TMO, &st, NULL), 0);
		assert_int_equal(st, SEALPOST_STATUS_ACCEPTED);
	}
	for (int i = 0; i < 4; i++) {
		wait_event(recipients[i], SEALPOST_EVENT_MESSAGE, &ev);
		assert_int_equal(ev.len, 6);
		assert_memory_equal(ev.data, "hi all", 6);
		assert_memory_equal(ev.sender, s.pub, 32);
	}
	sealpost_account_free(acct);
	sealpost_account_free(sacct);
	dev_free(&a);
	dev_free(&b);
	dev_free(&c);
	dev_free(&s);
	dev_free(&s2);
}

/* Rewrites the broker's stored list of account while it is stopped: what a
 * compromised broker could serve. */
static void tamper(const uint8_t account[32], const uint8_t *bytes, size_t len)
{
	struct sp_store_config cfg;
	struct sp_store *st = NULL;
	char path[512], err[256];

	assert_int_equal(sp_it_broker_stop(&broker), 0);
	snprintf(path, sizeof(path), "%s/mailbox", broker.data_dir);
	sp_store_config_defaults(&cfg);
	cfg.dir = path;
	cfg.min_free_bytes = 0;
	assert_int_equal(sp_store_open(&st, &cfg, err, sizeof(err)), 0);
	assert_int_equal(sp_store_list_put(st, account, bytes, len, NULL, 0, NULL, 0), 0);
	sp_store_close(st);
	assert_int_equal(sp_it_broker_restart(&broker, NULL), 0);
}

static int run_cli(const char *const *args)
{
	char *argv[32];
	int n = 0, status = 0;
	pid_t pid;

	argv[n++] = (char *)getenv("SEALPOST_CLI");
	for (; *args && n < 31; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", 1);

		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_tampered_broker(void **state)
{
	struct dev a, k;
	struct sealpost_account *acct = NULL;
	struct sealpost_account_store *st = NULL;
	struct sealpost_devlist l, got;
	uint8_t pk[32], v1[SEALPOST_LIST_MAX], forged[SEALPOST_LIST_MAX];
	uint8_t esk[64], epk[32], ghost[32], gpriv[32];
	uint8_t msg[SP_DEVLIST_DOMAIN_LEN + SP_DEVLIST_MAX];
	char store_path[300], keyfile[300], hex[65], srvkey[65];
	size_t v1_len = 0, flen = 0;
	uint64_t id = 0;
	int ex;

	(void)state;
	dev_new(&a, SEALPOST_CONNECT_NO_RECONNECT);
	dev_new(&k, SEALPOST_CONNECT_NO_RECONNECT);
	snprintf(store_path, sizeof(store_path), "%s/accounts", dir);
	assert_int_equal(sealpost_account_store_open(&st, store_path), 0);
	sealpost_client_set_account_store(k.c, st);
	new_account(&acct, pk, &a, "laptop");
	assert_int_equal(sealpost_account_fetch_wait(k.c, pk, TMO, &got, v1, sizeof(v1), &v1_len), 0);
	/* version 2, seen by k */
	memcpy(&l, &got, sizeof(l));
	assert_int_equal(sealpost_devlist_add(&l, k.pub, "other", 1700000000), 0);
	l.version = 2;
	assert_int_equal(publish(&a, acct, &l), SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(sealpost_account_fetch_wait(k.c, pk, TMO, &got, NULL, 0, NULL), 0);
	assert_int_equal(got.version, 2);
	dev_free(&a);
	dev_free(&k);

	/* 1. rollback: the broker serves the old, validly signed version 1 */
	tamper(pk, v1, v1_len);
	dev_new(&k, SEALPOST_CONNECT_NO_RECONNECT);
	sealpost_client_set_account_store(k.c, st);
	assert_int_equal(sealpost_account_fetch_wait(k.c, pk, TMO, &got, NULL, 0, NULL),
			 -SEALPOST_EROLLBACK);
	assert_int_equal(got.version, 2);  /* the kept one */
	/* the store survives a reopen and still refuses it */
	sealpost_account_store_close(st);
	assert_int_equal(sealpost_account_store_open(&st, store_path), 0);
	sealpost_client_set_account_store(k.c, st);
	assert_int_equal(sealpost_account_fetch_wait(k.c, pk, TMO, &got, NULL, 0, NULL),
			 -SEALPOST_EROLLBACK);
	/* the CLI refuses to send to it: exit 6, and nothing sealed */
	snprintf(keyfile, sizeof(keyfile), "%s/k.key", dir);
	{
		struct sealpost_key *kk = NULL;
		uint8_t kp[32];

		assert_int_equal(sealpost_key_generate(&kk), 0);
		assert_int_equal(sealpost_key_save(kk, keyfile), 0);
		sealpost_key_public(kk, kp);
		sealpost_key_free(kk);
		(void)kp;
	}
	sealpost_key_to_hex(pk, hex);
	sealpost_key_to_hex(broker.server_pub, srvkey);
	{
		const char *args[] = { "send", "--server", broker.addr, "--server-key", srvkey,
				       "--key", keyfile, "--accounts", store_path, "--to-account",
				       hex, "x", NULL };
		const char *dargs[] = { "account", "devices", "--server", broker.addr,
					"--server-key", srvkey, "--key", keyfile, "--accounts",
					store_path, hex, NULL };

		sealpost_client_set_account_store(k.c, NULL);
		sealpost_account_store_close(st);
		st = NULL;
		ex = run_cli(args);
		assert_int_equal(ex, 6);
		ex = run_cli(dargs);
		assert_int_equal(ex, 6);
		assert_int_equal(sealpost_account_store_open(&st, store_path), 0);
		sealpost_client_set_account_store(k.c, st);
	}
	dev_free(&k);

	/* 2. forged: version 9 with a ghost device, signed by another key */
	crypto_sign_keypair(epk, esk);
	sp_noise_keypair(ghost, gpriv);
	memcpy(&l, &got, sizeof(l));
	l.version = 9;
	assert_int_equal(sealpost_devlist_add(&l, ghost, "ghost", 1700000000), 0);
	{
		struct sealpost_account *tmp = NULL;

		/* sign with the real key for the layout, then replace the signature */
		assert_int_equal(sealpost_devlist_sign(acct, &l, forged, sizeof(forged), &flen), 0);
		(void)tmp;
	}
	memcpy(msg, SP_DEVLIST_DOMAIN, SP_DEVLIST_DOMAIN_LEN);
	memcpy(msg + SP_DEVLIST_DOMAIN_LEN, forged, flen - 64);
	crypto_sign_detached(forged + flen - 64, NULL, msg, SP_DEVLIST_DOMAIN_LEN + flen - 64, esk);
	tamper(pk, forged, flen);
	dev_new(&k, SEALPOST_CONNECT_NO_RECONNECT);
	sealpost_client_set_account_store(k.c, st);
	assert_int_equal(sealpost_account_fetch_wait(k.c, pk, TMO, &got, NULL, 0, NULL),
			 -SEALPOST_EBADLIST);
	/* not kept: the store still has version 2 */
	assert_int_equal(sealpost_account_store_get(st, pk, &got), 0);
	assert_int_equal(got.version, 2);
	{
		const char *args[] = { "send", "--server", broker.addr, "--server-key", srvkey,
				       "--key", keyfile, "--accounts", store_path, "--to-account",
				       hex, "x", NULL };

		sealpost_client_set_account_store(k.c, NULL);   /* it must outlive k.c */
		sealpost_account_store_close(st);
		st = NULL;
		assert_int_equal(run_cli(args), 7);
	}
	/* Whatever clients were shown, the tampered broker's log now holds the
	 * rolled-back and the forged lists: an audit finds the forged one
	 * (the last leaf, the first that does not verify). */
	{
		struct sealpost_log_audit au;

		assert_int_equal(sealpost_log_audit(k.c, TMO, &au), -SEALPOST_EBADLIST);
		assert_true(au.size >= 4);
		assert_int_equal(au.bad_leaf, au.size);
	}
	(void)id;
	dev_free(&k);
	sealpost_account_free(acct);
}

/* Removal through the library: the removed device's client sees GoAway
 * REMOVED; the others see LIST_CHANGED. */
static void test_remove(void **state)
{
	struct dev a, b;
	struct sealpost_account *acct = NULL;
	struct sealpost_devlist l;
	struct sealpost_event ev;
	uint8_t pk[32];

	struct dev t;
	uint64_t id = 0;
	int status = 0;

	(void)state;
	dev_new(&a, 0);
	dev_new(&b, SEALPOST_CONNECT_NO_RECONNECT);
	dev_new(&t, SEALPOST_CONNECT_NO_RECONNECT);
	new_account(&acct, pk, &a, "laptop");
	link_device(&a, acct, pk, &b, "phone");
	link_device(&a, acct, pk, &t, "tablet");
	/* the tablet goes offline with mail waiting */
	sealpost_client_close(t.c);
	t.c = NULL;
	assert_int_equal(sealpost_client_send(a.c, t.pub, "for the tablet", 14, &id), 0);
	assert_int_equal(sealpost_client_wait_result(a.c, id, TMO, &status, NULL), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	/* one list removes the phone (connected) and the tablet (offline) */
	assert_int_equal(sealpost_account_fetch_wait(a.c, pk, TMO, &l, NULL, 0, NULL), 0);
	assert_int_equal(sealpost_devlist_remove(&l, b.pub), 0);
	assert_int_equal(sealpost_devlist_remove(&l, t.pub), 0);
	l.version++;
	assert_int_equal(publish(&a, acct, &l), SEALPOST_STATUS_ACCEPTED);
	wait_event(&b, SEALPOST_EVENT_GOAWAY, &ev);
	assert_int_equal(ev.status, SEALPOST_STATUS_GOAWAY_REMOVED);
	assert_string_equal(sealpost_status_string(ev.status), "goaway_removed");
	wait_event(&b, SEALPOST_EVENT_CLOSED, &ev);
	/* the tablet's key reconnects: its mailbox went with the removal */
	{
		struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;

		o.flags = SEALPOST_CONNECT_NO_RECONNECT;
		assert_int_equal(sealpost_client_connect_opts(&t.c, broker.addr, t.key,
							      broker.server_pub, TMO, &o), 0);
	}
	for (;;) {
		assert_int_equal(sealpost_client_next_event(t.c, &ev, TMO), 1);
		assert_int_not_equal(ev.type, SEALPOST_EVENT_MESSAGE);
		assert_int_not_equal(ev.type, SEALPOST_EVENT_CLOSED);
		if (ev.type == SEALPOST_EVENT_DRAINED)
			break;
	}
	assert_int_equal(ev.id, 0);
	sealpost_account_free(acct);
	dev_free(&a);
	dev_free(&b);
	dev_free(&t);
}

/* A device whose key is made first (the fork needs it before the broker). */
static void dev_with_key(struct dev *d, struct sealpost_key *key, uint32_t flags)
{
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;

	o.flags = flags;
	d->key = key;
	sealpost_key_public(d->key, d->pub);
	assert_int_equal(sealpost_client_connect_opts(&d->c, broker.addr, d->key, broker.server_pub,
						      TMO, &o), 0);
}

/* A new broker with an empty data directory (the tampered broker's log
 * holds the lists it was made to store); fork: the device shown a forked
 * log (SEALPOSTD_TEST_LOG_FORK), or NULL. */
static void fresh_broker(const char *fork)
{
	assert_int_equal(sp_it_broker_stop(&broker), 0);
	sp_it_rmrf(broker.data_dir);
	if (fork)
		setenv("SEALPOSTD_TEST_LOG_FORK", fork, 1);
	assert_int_equal(sp_it_broker_start(&broker, NULL, NULL), 0);
	unsetenv("SEALPOSTD_TEST_LOG_FORK");
}

static void read_log_key(uint8_t key[32])
{
	char path[512];

	snprintf(path, sizeof(path), "%s/log.pub", broker.data_dir);
	assert_int_equal(sp_keyfile_read_public(path, key), 0);
}

/* Whether the file at path holds the line `log <hex of key>` (a head may follow). */
static bool file_has_log_line(const char *path, const uint8_t key[32])
{
	char line[1024], want[80];
	bool found = false;
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	snprintf(want, sizeof(want), "log ");
	sealpost_key_to_hex(key, want + 4);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, want, strlen(want)) == 0)
			found = true;
	fclose(f);
	return found;
}

/*
 * The client side of the log on an honest broker: lists are checked and
 * the key pinned in the store (kept across a reopen); sealpost_log_sync
 * gives a head that verifies under DATA_DIR/log.pub; messages carry the
 * sender's head inside the seal and the receiver gets exactly what was
 * sent; a device with no store learns the key by itself before it hands
 * out a list pushed to it.
 */
static void test_log_checks(void **state)
{
	struct dev a, b;
	struct sealpost_account *acct = NULL;
	struct sealpost_account_store *st = NULL;
	struct sealpost_devlist l;
	struct sealpost_event ev;
	uint8_t pk[32], lk[32], got_key[32], head[SP_STH_LEN], kept_head[SP_STH_LEN];
	char store_path[300];
	struct sp_sth sth;
	uint64_t id = 0;
	int status = 0;

	(void)state;
	fresh_broker(NULL);
	read_log_key(lk);
	dev_new(&a, 0);
	dev_new(&b, 0);
	snprintf(store_path, sizeof(store_path), "%s/log-accounts", dir);
	assert_int_equal(sealpost_account_store_open(&st, store_path), 0);
	sealpost_client_set_account_store(a.c, st);
	new_account(&acct, pk, &a, "laptop");
	assert_int_equal(sealpost_account_fetch_wait(a.c, pk, TMO, &l, NULL, 0, NULL), 0);
	assert_int_equal(sealpost_log_sync(a.c, TMO, head, got_key), 0);
	assert_memory_equal(got_key, lk, 32);
	assert_int_equal(sp_sth_decode(head, sizeof(head), &sth), 0);
	assert_int_equal(sp_sth_verify(&sth, lk), 0);
	assert_true(sth.tree_size >= 1);
	/* kept in the store, and in its file */
	assert_int_equal(sealpost_account_store_log(st, got_key, kept_head), 0);
	assert_memory_equal(got_key, lk, 32);
	assert_memory_equal(kept_head, head, sizeof(head));
	assert_true(file_has_log_line(store_path, lk));
	sealpost_client_set_account_store(a.c, NULL);
	sealpost_account_store_close(st);
	assert_int_equal(sealpost_account_store_open(&st, store_path), 0);
	memset(got_key, 0, sizeof(got_key));
	assert_int_equal(sealpost_account_store_log(st, got_key, kept_head), 0);
	assert_memory_equal(got_key, lk, 32);
	sealpost_client_set_account_store(a.c, st);

	/* a's head travels inside the seal; b gets exactly the message */
	assert_int_equal(sealpost_client_send(a.c, b.pub, "hello", 5, &id), 0);
	assert_int_equal(sealpost_client_wait_result(a.c, id, TMO, &status, NULL), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	wait_event(&b, SEALPOST_EVENT_MESSAGE, &ev);
	assert_int_equal(ev.len, 5);
	assert_memory_equal(ev.data, "hello", 5);
	assert_memory_equal(ev.sender, a.pub, 32);
	/* b never asked for anything: linking it pushes a list, checked
	 * against the log all the same (no -SEALPOST_ELOGKEY) */
	link_device(&a, acct, pk, &b, "phone");
	wait_event(&b, SEALPOST_EVENT_LIST_CHANGED, &ev);
	assert_int_equal(ev.error, 0);
	assert_int_equal(ev.seq, 2);
	assert_int_equal(sealpost_log_sync(b.c, TMO, NULL, got_key), 0);
	assert_memory_equal(got_key, lk, 32);

	/* the whole log audited: by the library, and by the CLI (exit 0) */
	{
		struct sealpost_log_audit au;
		struct sp_sth h;
		char keyfile[300], srvkey[65];

		assert_int_equal(sealpost_log_audit(a.c, TMO, &au), 0);
		assert_int_equal(sp_sth_decode(au.head, sizeof(au.head), &h), 0);
		assert_int_equal(sp_sth_verify(&h, lk), 0);
		assert_int_equal(au.size, h.tree_size);
		assert_true(au.size >= 2);
		assert_true(au.accounts >= 1 && au.accounts <= au.size);
		assert_int_equal(au.bad_leaf, 0);
		assert_memory_equal(au.log_key, lk, 32);
		snprintf(keyfile, sizeof(keyfile), "%s/audit.key", dir);
		assert_int_equal(sealpost_key_save(a.key, keyfile), 0);
		sealpost_key_to_hex(broker.server_pub, srvkey);
		sealpost_client_set_account_store(a.c, NULL);
		sealpost_account_store_close(st);
		st = NULL;
		{
			const char *args[] = { "account", "audit", "--server", broker.addr,
					       "--server-key", srvkey, "--key", keyfile,
					       "--accounts", store_path, NULL };

			assert_int_equal(run_cli(args), 0);
		}
	}
	sealpost_account_store_close(st);
	sealpost_account_free(acct);
	dev_free(&a);
	dev_free(&b);
}

/*
 * A broker that shows one device (the laptop) a forked log, one ghost list
 * at its end signed with the real log key (SEALPOSTD_TEST_LOG_FORK): the
 * laptop's own view is consistent, so nothing it is served alone exposes
 * it; one sealed message from the honest phone, carrying the phone's head,
 * does: the library raises SPLIT_VIEW with both signed heads, and still
 * hands out the message itself unchanged.
 */
static void test_split_view(void **state)
{
	struct dev phone, laptop;
	struct sealpost_key *lkey = NULL;
	struct sealpost_account *acct = NULL, *acct2 = NULL;
	struct sealpost_devlist l;
	struct sealpost_event ev;
	uint8_t pk[32], pk2[32], lk[32], ph[SP_STH_LEN], lh[SP_STH_LEN];
	char hex[65];
	struct sp_sth a, b;
	uint64_t id = 0;
	int status = 0;
	bool msg = false, split = false;

	(void)state;
	assert_int_equal(sealpost_key_generate(&lkey), 0);
	{
		uint8_t lpub[32];

		sealpost_key_public(lkey, lpub);
		sealpost_key_to_hex(lpub, hex);
	}
	fresh_broker(hex);
	read_log_key(lk);
	dev_new(&phone, SEALPOST_CONNECT_NO_RECONNECT);
	dev_with_key(&laptop, lkey, SEALPOST_CONNECT_NO_RECONNECT);

	new_account(&acct, pk, &phone, "phone");
	link_device(&phone, acct, pk, &laptop, "laptop");
	/* each view verifies on its own */
	assert_int_equal(sealpost_account_fetch_wait(laptop.c, pk, TMO, &l, NULL, 0, NULL), 0);
	assert_int_equal(sealpost_log_sync(laptop.c, TMO, lh, NULL), 0);
	assert_int_equal(sealpost_log_sync(phone.c, TMO, ph, NULL), 0);
	assert_int_equal(sp_sth_decode(ph, sizeof(ph), &a), 0);
	assert_int_equal(sp_sth_decode(lh, sizeof(lh), &b), 0);
	assert_int_equal(b.tree_size, a.tree_size + 1);   /* the ghost */
	/* the phone creates a second account of its own (the laptop is told
	 * nothing): the real log is now the laptop's size, with another root */
	new_account(&acct2, pk2, &phone, "phone");
	assert_int_equal(sealpost_log_sync(phone.c, TMO, ph, NULL), 0);
	assert_int_equal(sp_sth_decode(ph, sizeof(ph), &a), 0);
	assert_int_equal(a.tree_size, b.tree_size);

	assert_int_equal(sealpost_client_send(phone.c, laptop.pub, "hi", 2, &id), 0);
	assert_int_equal(sealpost_client_wait_result(phone.c, id, TMO, &status, NULL), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	for (int i = 0; i < 20 && !(msg && split); i++) {
		assert_int_equal(sealpost_client_next_event(laptop.c, &ev, TMO), 1);
		assert_int_not_equal(ev.type, SEALPOST_EVENT_CLOSED);
		if (ev.type == SEALPOST_EVENT_MESSAGE) {
			assert_int_equal(ev.len, 2);
			assert_memory_equal(ev.data, "hi", 2);
			msg = true;
		} else if (ev.type == SEALPOST_EVENT_SPLIT_VIEW) {
			struct sp_sth k, s;

			assert_int_equal(ev.error, -SEALPOST_ESPLITVIEW);
			assert_memory_equal(ev.sender, lk, 32);
			assert_int_equal(ev.len, 2 * SP_STH_LEN);
			/* both heads signed by the log: proof for a third party */
			assert_int_equal(sp_sth_decode(ev.data, SP_STH_LEN, &k), 0);
			assert_int_equal(sp_sth_decode(ev.data + SP_STH_LEN, SP_STH_LEN, &s), 0);
			assert_int_equal(sp_sth_verify(&k, lk), 0);
			assert_int_equal(sp_sth_verify(&s, lk), 0);
			assert_int_equal(k.tree_size, s.tree_size);
			assert_memory_not_equal(k.root, s.root, sizeof(k.root));
			split = true;
		}
	}
	assert_true(msg);
	assert_true(split);
	/* the phone, honest view, saw nothing wrong */
	assert_int_equal(sealpost_log_sync(phone.c, TMO, NULL, NULL), 0);
	/* An audit from the laptop's view finds the ghost: the last leaf is
	 * not a list (a fresh client, so no kept head decides first); the
	 * CLI exits 10. The phone's audit of the real log passes. */
	{
		struct sealpost_log_audit au;
		struct dev fresh;
		char keyfile[300], srvkey[65], accts[300];

		assert_int_equal(sealpost_log_audit(phone.c, TMO, &au), 0);
		assert_int_equal(au.size, a.tree_size);
		fresh.key = NULL;
		{
			struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;

			o.flags = SEALPOST_CONNECT_NO_RECONNECT;
			assert_int_equal(sealpost_client_connect_opts(&fresh.c, broker.addr, lkey,
								      broker.server_pub, TMO, &o),
					 0);
		}
		assert_int_equal(sealpost_log_audit(fresh.c, TMO, &au), -SEALPOST_EBADLIST);
		assert_int_equal(au.size, b.tree_size + 1);
		assert_int_equal(au.bad_leaf, au.size);   /* the ghost, at its end */
		sealpost_client_close(fresh.c);
		snprintf(keyfile, sizeof(keyfile), "%s/laptop.key", dir);
		snprintf(accts, sizeof(accts), "%s/laptop-accounts", dir);
		assert_int_equal(sealpost_key_save(lkey, keyfile), 0);
		sealpost_key_to_hex(broker.server_pub, srvkey);
		{
			const char *args[] = { "account", "audit", "--server", broker.addr,
					       "--server-key", srvkey, "--key", keyfile,
					       "--accounts", accts, NULL };

			assert_int_equal(run_cli(args), 10);
		}
	}
	sealpost_account_free(acct2);
	sealpost_account_free(acct);
	dev_free(&phone);
	dev_free(&laptop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_link_fanout),
		cmocka_unit_test(test_tampered_broker),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_log_checks),
		cmocka_unit_test(test_split_view),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
