/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_core_secrets.c: a core of a real sealpostd holds no session key.
 *
 * Raw protocol clients (support_raw.h: they know their transport keys)
 * connect, exchange envelopes and Pings, and all but one close; then gdb's
 * gcore dumps the running broker and the test searches the whole core for
 * every client's two transport keys (as the handshake left them: no
 * connection here reaches a rekey). None may be there: the keys of closed
 * connections were zeroed in their slab slot (sp_slab.h), and the slab's
 * chunks are MADV_DONTDUMP, so not even the open connection's keys are in
 * the core. The control: each client's static public key, which the
 * broker keeps in ordinary memory (the connection's peer key, the route),
 * is found for the open one, so the search does look at the broker's heap.
 * The server's private key (DIR/server.key) is not in the core either.
 *
 * Needs gcore (Debian package gdb) and ptrace rights over the broker (root:
 * the broker is not dumpable); skipped with a message otherwise, and in a
 * sanitizer build.
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "support.h"
#include "support_core.h"
#include "support_raw.h"

enum { NCONN = 8, TIMEOUT_MS = 10000, WAIT_MS = 10000 };

static void test_no_keys_in_core(void **state)
{
	struct sp_raw c[NCONN];
	uint8_t tx[NCONN][SP_KEY_LEN], rx[NCONN][SP_KEY_LEN], body[300];
	struct sp_it_broker b;
	struct sp_raw_frame f;
	const char *gcore = sp_it_gcore_path();
	const char *extra[] = { "--max-conns", "64", NULL };
	char prefix[300], core_path[320], out[4096];
	struct stat st;
	uint8_t *core;
	unsigned tx_hits[NCONN], rx_hits[NCONN], peer_hits, server_hits, priv_hits;
	uint8_t server_priv[SP_KEY_LEN];
	uint32_t status;
	long nopen = -1;
	int fd, rc;

	(void)state;
#if defined(__SANITIZE_ADDRESS__)
	/* A sanitizer build's broker maps terabytes of shadow memory (gcore
	 * would dump for minutes) and its mlock does nothing. */
	print_message("SKIP: not meaningful in a sanitizer build\n");
	skip();
#endif
	if (!gcore) {
		print_message("SKIP: gcore not found (Debian package gdb)\n");
		skip();
	}
	/* A small connection table keeps the core small (its size is the
	 * broker's mappings, not what it uses). */
	assert_int_equal(sp_it_broker_start(&b, NULL, extra), 0);
	assert_true(b.metrics_port != 0);
	for (int i = 0; i < NCONN; i++) {
		c[i] = (struct sp_raw){ .fd = -1 };
		/* Every other one XX: both patterns' splits go through the slab. */
		assert_int_equal(sp_raw_open(&c[i], b.port,
					     i % 2 ? SP_PREAMBLE_PATTERN_XX : SP_PREAMBLE_PATTERN_IK,
					     i % 2 ? NULL : b.server_pub), 0);
		assert_int_equal(sp_raw_wait_frame(&c[i], SP_FRAME_DRAINED, &f, TIMEOUT_MS), 0);
		assert_true(c[i].t.tx.n <= 1 && c[i].t.rx.n <= 1);
		memcpy(tx[i], c[i].t.tx.k, SP_KEY_LEN);
		memcpy(rx[i], c[i].t.rx.k, SP_KEY_LEN);
	}
	/* Traffic both ways on each: an envelope to the next one (delivered
	 * live: encrypted by the broker under the recipient's key). */
	randombytes_buf(body, sizeof(body));
	for (int i = 0; i < NCONN; i++) {
		int to = (i + 1) % NCONN;

		assert_int_equal(sp_raw_send_envelope(&c[i], c[to].s_pub, 1 + (uint64_t)i, body,
						      sizeof(body)), 0);
		assert_int_equal(sp_raw_expect_result(&c[i], 1 + (uint64_t)i, &status, TIMEOUT_MS), 0);
		assert_int_equal(sp_raw_wait_frame(&c[to], SP_FRAME_DELIVER, &f, TIMEOUT_MS), 0);
		assert_memory_equal(f.body, body, sizeof(body));
	}
	/* All but the last close; the broker has ended them once it counts
	 * one connection open. */
	for (int i = 0; i < NCONN - 1; i++)
		sp_raw_close(&c[i]);
	nopen = sp_it_wait_open_conns(&b, 1, WAIT_MS);
	assert_int_equal(nopen, 1);

	snprintf(prefix, sizeof(prefix), "%s/core", b.data_dir);
	rc = sp_it_gcore(&b, prefix, core_path, sizeof(core_path), out, sizeof(out));
	if (rc != 0 || stat(core_path, &st) != 0 || st.st_size == 0) {
		print_message("SKIP: gcore could not dump the broker (exit %d; ptrace not "
			      "permitted here?): %s\n", rc, out);
		sp_raw_close(&c[NCONN - 1]);
		assert_int_equal(sp_it_broker_stop(&b), 0);
		sp_it_rmrf(b.data_dir);
		skip();
	}
	/* gcore stops the broker only while it dumps: it still serves. */
	assert_int_equal(sp_it_broker_alive(&b), 1);
	{
		char path[300], hex[2 * SP_KEY_LEN + 2] = "";
		size_t n = 0;
		FILE *kf;

		snprintf(path, sizeof(path), "%s/server.key", b.data_dir);
		kf = fopen(path, "r");
		assert_non_null(kf);
		assert_non_null(fgets(hex, sizeof(hex), kf));
		fclose(kf);
		assert_int_equal(sodium_hex2bin(server_priv, SP_KEY_LEN, hex, 2 * SP_KEY_LEN,
						NULL, &n, NULL), 0);
		assert_int_equal(n, SP_KEY_LEN);
		sodium_memzero(hex, sizeof(hex));
	}
	fd = open(core_path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	core = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	assert_true(core != MAP_FAILED);
	close(fd);
	print_message("core: %lld bytes\n", (long long)st.st_size);

	/* The control: the open device's public key is in the broker's heap. */
	peer_hits = sp_it_count(core, (size_t)st.st_size, c[NCONN - 1].s_pub, SP_KEY_LEN);
	server_hits = sp_it_count(core, (size_t)st.st_size, b.server_pub, SP_KEY_LEN);
	/* The server's private key: read into a sodium_malloc'd page at
	 * start and borrowed by every handshake, never copied. */
	priv_hits = sp_it_count(core, (size_t)st.st_size, server_priv, SP_KEY_LEN);
	for (int i = 0; i < NCONN; i++) {
		tx_hits[i] = sp_it_count(core, (size_t)st.st_size, tx[i], SP_KEY_LEN);
		rx_hits[i] = sp_it_count(core, (size_t)st.st_size, rx[i], SP_KEY_LEN);
	}
	/* The core goes before any assert can stop the test. */
	munmap(core, (size_t)st.st_size);
	unlink(core_path);
	assert_true(peer_hits >= 1);
	assert_true(server_hits >= 1);
	assert_int_equal(priv_hits, 0);
	for (int i = 0; i < NCONN; i++)
		if (tx_hits[i] || rx_hits[i])
			fail_msg("connection %d (%s): its tx key is in the core %u times, its rx "
				 "key %u times", i, i == NCONN - 1 ? "open" : "closed", tx_hits[i],
				 rx_hits[i]);

	/* The open connection still works after the dump. */
	assert_int_equal(sp_raw_send_envelope(&c[NCONN - 1], c[0].s_pub, 99, body, 10), 0);
	assert_int_equal(sp_raw_expect_result(&c[NCONN - 1], 99, &status, TIMEOUT_MS), 0);
	sp_raw_close(&c[NCONN - 1]);
	assert_int_equal(sp_it_broker_stop(&b), 0);
	sp_it_rmrf(b.data_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_keys_in_core),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
