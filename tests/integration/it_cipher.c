/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_cipher.c: the transport cipher negotiation (PROTOCOL.md 2) against real
 * sealpostd processes.
 *
 * On a broker that offers AES-256-GCM (the default, on a CPU with AES-NI):
 * one device connects proposing AESGCM (IK, and an XX first contact), another
 * with ChaChaPoly; each reports the cipher it got, and they exchange sealed
 * envelopes both ways, small and large (through the broker, which decrypts
 * with one cipher and encrypts with the other), each intact and in order;
 * `sealpost send --aesgcm --verbose` reports AESGCM and its message arrives.
 * On a broker started with --aesgcm 0: a raw socket proposing AESGCM gets
 * exactly the refusal preamble and then EOF, the broker counts the close as
 * cipher_refused (over WebSocket too: the refusal in a binary message, then
 * close 1000), and a libsealpost client with SEALPOST_CONNECT_AESGCM
 * connects anyway, with ChaChaPoly, and exchanges an envelope. A cipher
 * byte that names no cipher is closed without an answer.
 *
 * Skipped (with a message) on a CPU without AES-NI: there the broker never
 * offers AESGCM and the library never proposes it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
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
#include "support_ws.h"

enum { TIMEOUT_MS = 20000, ROUNDS = 200 };

static struct sealpost_key *new_key(void)
{
	struct sealpost_key *k = NULL;

	assert_int_equal(sealpost_key_generate(&k), 0);
	return k;
}

static bool have_aesgcm(void)
{
	if (sodium_init() < 0 || !crypto_aead_aes256gcm_is_available()) {
		print_message("no AES-NI on this CPU: the AESGCM path is not offered here\n");
		return false;
	}
	return true;
}

static struct sealpost_client *connect_dev(const struct sp_it_broker *b,
					   const struct sealpost_key *k, bool ik, uint32_t flags)
{
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;
	struct sealpost_client *c = NULL;
	struct sealpost_event ev;

	o.flags = flags;
	assert_int_equal(sealpost_client_connect_opts(&c, b->addr, k, ik ? b->server_pub : NULL,
						      TIMEOUT_MS, &o), 0);
	/* A fresh device's first event: the Drained of its empty backlog. */
	assert_int_equal(sealpost_client_next_event(c, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_DRAINED);
	return c;
}

/* Message i from dir: its number, then bytes of it; 0 to ~3 KB, every 50th 30 KB. */
static size_t make_msg(uint8_t *buf, int dir, uint32_t i)
{
	size_t len = i % 50 == 49 ? 30000 : (i * 61u) % 3000 + 5;

	for (size_t j = 0; j < len; j++)
		buf[j] = (uint8_t)(j * 31u + i * 7u + (unsigned)dir);
	buf[0] = (uint8_t)dir;
	memcpy(buf + 1, &i, sizeof(i));
	return len;
}

/* from sends message i to `to`; it arrives intact at `to`'s client. */
static void one_way(struct sealpost_client *from, const uint8_t *from_pub,
		    struct sealpost_client *to, const uint8_t *to_pub, int dir, uint32_t i)
{
	static uint8_t msg[32768];
	struct sealpost_event ev;
	size_t len = make_msg(msg, dir, i);
	int status = 0;

	assert_int_equal(sealpost_client_send_wait(from, to_pub, msg, len, TIMEOUT_MS, &status,
						   NULL), 0);
	assert_true(status == SEALPOST_STATUS_ACCEPTED || status == SEALPOST_STATUS_DELIVERED);
	assert_int_equal(sealpost_client_next_event(to, &ev, TIMEOUT_MS), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_memory_equal(ev.sender, from_pub, SEALPOST_KEY_LEN);
	assert_int_equal(ev.len, len);
	assert_memory_equal(ev.data, msg, len);
}

static void exchange(struct sealpost_client *a, const uint8_t *a_pub, struct sealpost_client *b,
		     const uint8_t *b_pub, uint32_t rounds)
{
	for (uint32_t i = 0; i < rounds; i++) {
		one_way(a, a_pub, b, b_pub, 1, i);
		one_way(b, b_pub, a, a_pub, 2, i);
	}
}

/* sealpost_connections_closed_total{reason="..."} on /metrics. */
static long closed_count(const struct sp_it_broker *b, const char *reason)
{
	char needle[128], *body = NULL, *p;
	long v = -1;

	assert_int_equal(sp_it_http_get(b->metrics_port, "/metrics", &body), 200);
	snprintf(needle, sizeof(needle), "sealpost_connections_closed_total{reason=\"%s\"} ",
		 reason);
	p = strstr(body, needle);
	if (p)
		v = strtol(p + strlen(needle), NULL, 10);
	free(body);
	return v;
}

/* sealpost_handshakes_cipher_total{cipher="..."} on /metrics. */
static long cipher_count(const struct sp_it_broker *b, const char *cipher)
{
	char needle[128], *body = NULL, *p;
	long v = -1;

	assert_int_equal(sp_it_http_get(b->metrics_port, "/metrics", &body), 200);
	snprintf(needle, sizeof(needle), "sealpost_handshakes_cipher_total{cipher=\"%s\"} ",
		 cipher);
	p = strstr(body, needle);
	if (p)
		v = strtol(p + strlen(needle), NULL, 10);
	free(body);
	return v;
}

/* The preamble pre, then whatever the broker sends until it closes. */
static ssize_t raw_answer(const struct sp_it_broker *b, const uint8_t pre[SP_PREAMBLE_LEN],
			  uint8_t *out, size_t cap)
{
	int fd = sp_it_tcp_connect(b->port);
	size_t got = 0;
	ssize_t n;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, pre, SP_PREAMBLE_LEN), SP_PREAMBLE_LEN);
	while (got < cap && (n = read(fd, out + got, cap - got)) > 0)
		got += (size_t)n;
	assert_true(got < cap);
	close(fd);
	return (ssize_t)got;
}

static void test_aesgcm_beside_chachapoly(void **state)
{
	struct sealpost_key *ka = new_key(), *kb = new_key(), *kc = new_key();
	struct sealpost_client *a, *b, *c;
	uint8_t pa[SEALPOST_KEY_LEN], pb[SEALPOST_KEY_LEN], pc[SEALPOST_KEY_LEN];
	struct sp_it_broker br;

	(void)state;
	if (!have_aesgcm()) {
		sealpost_key_free(ka);
		sealpost_key_free(kb);
		sealpost_key_free(kc);
		skip();
	}
	assert_int_equal(sp_it_broker_start(&br, NULL, NULL), 0);
	a = connect_dev(&br, ka, true, SEALPOST_CONNECT_AESGCM);
	b = connect_dev(&br, kb, true, 0);
	c = connect_dev(&br, kc, false, SEALPOST_CONNECT_AESGCM); /* XX first contact */
	assert_int_equal(sealpost_client_cipher(a), SEALPOST_CIPHER_AESGCM);
	assert_int_equal(sealpost_client_cipher(b), SEALPOST_CIPHER_CHACHAPOLY);
	assert_int_equal(sealpost_client_cipher(c), SEALPOST_CIPHER_AESGCM);
	sealpost_client_public_key(a, pa);
	sealpost_client_public_key(b, pb);
	sealpost_client_public_key(c, pc);

	/* AESGCM <-> ChaChaPoly, through more than one rekey-free run of
	 * sizes, then AESGCM <-> AESGCM. */
	exchange(a, pa, b, pb, ROUNDS);
	exchange(c, pc, a, pa, 20);
	exchange(b, pb, c, pc, 20);
	assert_int_equal(closed_count(&br, "cipher_refused"), 0);
	/* The broker's own count: a and c with AESGCM, b with ChaChaPoly. */
	assert_int_equal(cipher_count(&br, "aesgcm"), 2);
	assert_int_equal(cipher_count(&br, "chachapoly"), 1);

	/* The CLI's --aesgcm: says so with --verbose, and the message arrives. */
	{
		char dir[] = "/tmp/it_cipher_XXXXXX", cmd[1024], out[4096], to[2 * SEALPOST_KEY_LEN + 1];
		char *const argv[] = { "/bin/sh", "-c", cmd, NULL };
		const char *cli = getenv("SEALPOST_CLI");
		struct sealpost_event ev;

		assert_non_null(cli);
		assert_non_null(mkdtemp(dir));
		sealpost_key_to_hex(pb, to);
		snprintf(cmd, sizeof(cmd),
			 "'%s' keygen %s/k >/dev/null && '%s' send --server %s --server-key %s "
			 "--key %s/k --to %s --aesgcm --verbose 'by the cli' 2>&1",
			 cli, dir, cli, br.addr, br.server_pub_hex, dir, to);
		assert_int_equal(sp_it_run(argv, NULL, out, sizeof(out), 30), 0);
		if (!strstr(out, "cipher AESGCM\n"))
			fail_msg("no 'cipher AESGCM' in: %s", out);
		assert_int_equal(sealpost_client_next_event(b, &ev, TIMEOUT_MS), 1);
		assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
		assert_int_equal(ev.len, 10);
		assert_memory_equal(ev.data, "by the cli", 10);
		sp_it_rmrf(dir);
	}

	sealpost_client_close(a);
	sealpost_client_close(b);
	sealpost_client_close(c);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
	sealpost_key_free(kc);
	assert_int_equal(sp_it_broker_stop(&br), 0);
	sp_it_rmrf(br.data_dir);
}

static void test_aesgcm_refused(void **state)
{
	static const char *const args[] = { "--aesgcm", "0", "--ws-listen", "127.0.0.1:0", NULL };
	uint8_t pre[SP_PREAMBLE_LEN] = { 'S', 'E', 'A', 'L', 1, 1, 1, 0 };
	static const uint8_t refusal[SP_PREAMBLE_LEN] = { 'S', 'E', 'A', 'L', 1, 1, 0, 0 };
	struct sealpost_key *ka = new_key(), *kb = new_key();
	struct sealpost_client *a, *b;
	uint8_t pa[SEALPOST_KEY_LEN], pb[SEALPOST_KEY_LEN], buf[256];
	struct sp_it_broker br;

	(void)state;
	assert_int_equal(sp_it_broker_start(&br, NULL, args), 0);
	/* A raw proposal gets the refusal, exactly, then EOF. */
	assert_int_equal(raw_answer(&br, pre, buf, sizeof(buf)), SP_PREAMBLE_LEN);
	assert_memory_equal(buf, refusal, SP_PREAMBLE_LEN);
	/* The same for XX: the answer names the pattern. */
	pre[5] = 2;
	assert_int_equal(raw_answer(&br, pre, buf, sizeof(buf)), SP_PREAMBLE_LEN);
	assert_int_equal(buf[5], 2);
	/* A cipher byte naming no cipher: closed with no answer at all. */
	pre[6] = 2;
	assert_int_equal(raw_answer(&br, pre, buf, sizeof(buf)), 0);
	/* Over WebSocket (PROTOCOL.md 13): the refusal in a binary message,
	 * then a normal close. */
	{
		struct sp_raw w;
		uint8_t op;
		bool fin;
		size_t n;
		uint16_t code = 0;
		int status;

		pre[5] = 1;
		pre[6] = 1;
		memset(&w, 0, sizeof(w));
		assert_int_equal(sp_raw_init(&w), 0);
		assert_int_equal(sp_ws_connect(&w, br.ws_port, NULL, &status), 0);
		assert_int_equal(status, 101);
		assert_int_equal(sp_ws_send_binary(&w, pre, sizeof(pre)), 0);
		assert_int_equal(sp_ws_recv_frame(&w, &op, &fin, buf, sizeof(buf), &n, TIMEOUT_MS), 0);
		assert_int_equal(op, SP_WS_OP_BINARY);
		assert_int_equal(n, SP_PREAMBLE_LEN);
		assert_memory_equal(buf, refusal, SP_PREAMBLE_LEN);
		assert_int_equal(sp_ws_expect_close(&w, &code, TIMEOUT_MS), 0);
		assert_int_equal(code, 1000);
		sp_raw_close(&w);
	}

	/* The library falls back to ChaChaPoly at once, and works. */
	a = connect_dev(&br, ka, true, SEALPOST_CONNECT_AESGCM);
	b = connect_dev(&br, kb, false, SEALPOST_CONNECT_AESGCM);
	assert_int_equal(sealpost_client_cipher(a), SEALPOST_CIPHER_CHACHAPOLY);
	assert_int_equal(sealpost_client_cipher(b), SEALPOST_CIPHER_CHACHAPOLY);
	sealpost_client_public_key(a, pa);
	sealpost_client_public_key(b, pb);
	exchange(a, pa, b, pb, 5);
	/* Three raw refusals (two TCP, one ws), and one per library client where the library
	 * would have proposed it (a CPU with AES-NI). */
	assert_int_equal(closed_count(&br, "cipher_refused"),
			 3 + (crypto_aead_aes256gcm_is_available() ? 2 : 0));
	assert_int_equal(closed_count(&br, "bad_preamble"), 1);
	assert_int_equal(cipher_count(&br, "aesgcm"), 0);
	assert_int_equal(cipher_count(&br, "chachapoly"), 2);

	sealpost_client_close(a);
	sealpost_client_close(b);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
	assert_int_equal(sp_it_broker_stop(&br), 0);
	sp_it_rmrf(br.data_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aesgcm_beside_chachapoly),
		cmocka_unit_test(test_aesgcm_refused),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
