/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_badinput.c: every bad-input case of PROTOCOL.md, against a real sealpostd.
 *
 * Each case is driven with the raw protocol client (support_raw.h), which can
 * break the protocol anywhere. After EVERY case the test checks that
 *   (a) the broker process is still alive,
 *   (b) a pair of devices connected BEFORE the bad case still exchange
 *       envelopes both ways (their connections were not disturbed), and so
 *       does a pair connected when the whole file started,
 *   (c) a brand-new connection still completes a handshake and delivers.
 * The last test reads the broker's log: it must hold a line for the
 * failures and never a key (server, devices, recipients) or a body.
 *
 * One broker serves most cases (--max-envelope 1000); the handshake timeout,
 * slow-consumer and connection-limit cases start their own broker with the
 * option they need. Every wait is bounded: WAIT_MS for something that should
 * happen at once (a close, a reply), CLOSE_BOUND_MS for a timer-driven close.
 * These are liveness bounds, never performance thresholds.
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
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sp_frame.h"
#include "sp_limits.h"
#include "sp_noise.h"
#include "support.h"
#include "support_raw.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

enum {
	WAIT_MS = 5000,          /* bound for a reply or a close that should come at once */
	CLOSE_BOUND_MS = 10000,  /* bound for a close driven by a broker timer */
	MAIN_MAX_ENVELOPE = 1000,
	KEYS_MAX = 4096,
	RSS_BOUND_KB = 512 * 1024,
};

/* --- bookkeeping: every key the test shows the broker, for the log check ------ */

static uint8_t known_keys[KEYS_MAX][SP_KEY_LEN];
static const char *known_key_what[KEYS_MAX];
static size_t n_known_keys;
/* Every body this file sends contains this marker; the log must not. */
static char marker[32];
static uint64_t next_client_id = 1;

static void remember_key(const uint8_t *k, const char *what)
{
	if (n_known_keys < KEYS_MAX) {
		memcpy(known_keys[n_known_keys], k, SP_KEY_LEN);
		known_key_what[n_known_keys] = what;
		n_known_keys++;
	}
}

/* Fills body with the marker and a counter, so each body is distinct and greppable. */
static void make_body(uint8_t *body, size_t len)
{
	char tag[64];
	size_t tl, off = 0;

	tl = (size_t)snprintf(tag, sizeof(tag), "%s#%llu;", marker,
			      (unsigned long long)next_client_id);
	while (off < len) {
		size_t n = len - off < tl ? len - off : tl;

		memcpy(body + off, tag, n);
		off += n;
	}
}

/* --- clients ------------------------------------------------------------------- */

static void client_init(struct sp_raw *c)
{
	assert_int_equal(sp_raw_init(c), 0);
	remember_key(c->s_pub, "device public key");
	remember_key(c->s_priv, "device private key");
}

/* A device connected with IK (or XX) and ready to send. */
static void client_open(struct sp_raw *c, const struct sp_it_broker *b, uint8_t pattern)
{
	int rc;

	client_init(c);
	rc = sp_raw_open(c, b->port, pattern, b->server_pub);
	if (rc)
		fprintf(stderr, "[it] handshake (%s) with the broker failed: %s\n",
			pattern == SP_PREAMBLE_PATTERN_IK ? "IK" : "XX", strerror(-rc));
	assert_int_equal(rc, 0);
	assert_int_equal(c->protocol_version, SP_PROTOCOL_VERSION);
}

static const char *status_str(uint32_t s)
{
	return sp_status_name((enum sp_status)s);
}

static void expect_status(uint32_t got, uint32_t want, const char *what)
{
	if (got != want)
		fprintf(stderr, "[it] %s: status %u (%s), expected %u (%s)\n", what, got,
			status_str(got), want, status_str(want));
	assert_int_equal(got, want);
}

/*
 * Reads frames on c until it has n_res SendResults and n_del Delivers (a
 * device sending to itself gets both, in an order the broker chooses).
 */
struct collected {
	uint64_t res_id[64];
	uint32_t res_status[64];
	size_t n_res;
	uint8_t *del_body[64];
	size_t del_len[64];
	uint64_t del_seq[64];
	size_t n_del;
};

static void collected_free(struct collected *col)
{
	for (size_t i = 0; i < col->n_del; i++)
		free(col->del_body[i]);
	memset(col, 0, sizeof(*col));
}

static void collect(struct sp_raw *c, size_t n_res, size_t n_del, struct collected *col,
		    const char *what)
{
	memset(col, 0, sizeof(*col));
	while (col->n_res < n_res || col->n_del < n_del) {
		struct sp_raw_frame f;
		int rc = sp_raw_recv_frame(c, &f, WAIT_MS);

		if (rc) {
			fprintf(stderr, "[it] %s: waiting for %zu results (have %zu) and %zu "
				"deliveries (have %zu): %s\n", what, n_res, col->n_res, n_del,
				col->n_del, strerror(-rc));
			fail();
		}
		if (f.type == SP_FRAME_SEND_RESULT && col->n_res < 64) {
			col->res_id[col->n_res] = f.client_id;
			col->res_status[col->n_res++] = f.status;
		} else if (f.type == SP_FRAME_DELIVER && col->n_del < 64) {
			col->del_body[col->n_del] = malloc(f.body_len + 1);
			assert_non_null(col->del_body[col->n_del]);
			memcpy(col->del_body[col->n_del], f.body, f.body_len);
			col->del_len[col->n_del] = f.body_len;
			col->del_seq[col->n_del++] = f.seq;
		} else if (f.type == SP_FRAME_PING || f.type == SP_FRAME_DRAINED) {
			continue;
		} else {
			fprintf(stderr, "[it] %s: unexpected frame type %d (code %u %s)\n", what,
				(int)f.type, f.status, status_str(f.status));
			fail();
		}
	}
}

/* c sends an envelope to itself: one ACCEPTED result (stored, and delivered
 * live) and the same body back. */
static void exchange_self(struct sp_raw *c, size_t body_len, const char *what)
{
	uint8_t body[256];
	uint64_t id = next_client_id++;
	struct collected col;
	int rc;

	assert_true(body_len <= sizeof(body));
	make_body(body, body_len);
	rc = sp_raw_send_envelope(c, c->s_pub, id, body, body_len);
	if (rc)
		fprintf(stderr, "[it] %s: send failed: %s\n", what, strerror(-rc));
	assert_int_equal(rc, 0);
	collect(c, 1, 1, &col, what);
	assert_int_equal(col.res_id[0], id);
	expect_status(col.res_status[0], SP_STATUS_ACCEPTED, what);
	assert_int_equal(col.del_len[0], body_len);
	assert_memory_equal(col.del_body[0], body, body_len);
	collected_free(&col);
}

/* from sends one envelope to `to` (another device): ACCEPTED, and it arrives intact. */
static void exchange_checked(struct sp_raw *from, struct sp_raw *to, const char *what)
{
	uint8_t body[64];
	uint64_t id = next_client_id++;
	uint32_t st = 0;
	struct collected col;
	int rc;

	make_body(body, sizeof(body));
	rc = sp_raw_send_envelope(from, to->s_pub, id, body, sizeof(body));
	if (rc)
		fprintf(stderr, "[it] %s: send failed: %s\n", what, strerror(-rc));
	assert_int_equal(rc, 0);
	rc = sp_raw_expect_result(from, id, &st, WAIT_MS);
	if (rc)
		fprintf(stderr, "[it] %s: no SendResult: %s\n", what, strerror(-rc));
	assert_int_equal(rc, 0);
	expect_status(st, SP_STATUS_ACCEPTED, what);
	collect(to, 0, 1, &col, what);
	assert_int_equal(col.del_len[0], sizeof(body));
	assert_memory_equal(col.del_body[0], body, sizeof(body));
	collected_free(&col);
}

/* --- the shared broker and the health check ------------------------------------ */

struct pair {
	struct sp_raw a, b;
};

static struct sp_it_broker main_broker;
static struct pair file_pair;    /* connected before every case of the file */
static struct pair case_pair;    /* connected before each case */

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

static void pair_open(struct pair *p, const struct sp_it_broker *b)
{
	client_open(&p->a, b, SP_PREAMBLE_PATTERN_IK);
	client_open(&p->b, b, SP_PREAMBLE_PATTERN_XX);
}

static void pair_close(struct pair *p)
{
	sp_raw_close(&p->a);
	sp_raw_close(&p->b);
}

/* (a) alive, (b) the pairs connected before still exchange, (c) a new device works. */
static void check_healthy(struct sp_it_broker *b, struct pair *before, struct pair *file_long,
			  const char *after)
{
	struct sp_raw fresh;
	char what[160];

	if (!sp_it_broker_alive(b)) {
		fprintf(stderr, "[it] after %s: the broker died (status 0x%x)\n", after,
			(unsigned)b->exit_status);
		fail();
	}
	snprintf(what, sizeof(what), "after %s: pair connected before, a->b", after);
	exchange_checked(&before->a, &before->b, what);
	snprintf(what, sizeof(what), "after %s: pair connected before, b->a", after);
	exchange_checked(&before->b, &before->a, what);
	if (file_long) {
		snprintf(what, sizeof(what), "after %s: pair connected at file start", after);
		exchange_checked(&file_long->a, &file_long->b, what);
	}
	snprintf(what, sizeof(what), "after %s: a new connection", after);
	client_open(&fresh, b, SP_PREAMBLE_PATTERN_IK);
	exchange_checked(&fresh, &before->a, what);
	exchange_self(&fresh, 16, what);
	sp_raw_close(&fresh);
}

static void check_main(const char *after)
{
	check_healthy(&main_broker, &case_pair, &file_pair, after);
}

/* The shared broker's options; the second run adds tiny receive buffers. */
static const char *const main_args[] = {
	"--max-envelope", "1000", "--log-rate", "1000000", NULL,
};
static const char *const tiny_buffer_args[] = {
	"--max-envelope", "1000", "--log-rate", "1000000",
	"--recv-buffers", "4", "--recv-buffer-size", "64", NULL,
};
static const char *const *group_args = main_args;

static int group_setup(void **state)
{
	const char *const *args = group_args;
	uint8_t rnd[8];
	char hex[17];

	(void)state;
	if (sodium_init() < 0)
		return -1;
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
	snprintf(marker, sizeof(marker), "itbody-%s", hex);
	if (sp_it_broker_start(&main_broker, NULL, args) != 0)
		return -1;
	remember_key(main_broker.server_pub, "server public key");
	pair_open(&file_pair, &main_broker);
	return 0;
}

static int broker_stop_checked(struct sp_it_broker *b)
{
	int st = sp_it_broker_stop(b);

	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "[it] sealpostd did not exit cleanly on SIGTERM (%d / 0x%x)\n",
			st, (unsigned)st);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	int ret;

	(void)state;
	pair_close(&file_pair);
	ret = broker_stop_checked(&main_broker);
	if (ret == 0)
		sp_it_rmrf(main_broker.data_dir);
	else
		fprintf(stderr, "[it] broker data dir kept: %s\n", main_broker.data_dir);
	return ret;
}

static int case_setup(void **state)
{
	(void)state;
	pair_open(&case_pair, &main_broker);
	return 0;
}

static int case_teardown(void **state)
{
	(void)state;
	pair_close(&case_pair);
	return 0;
}

/* --- expectations on a bad connection ------------------------------------------- */

/* The broker closes c without sending a single byte. */
static void expect_closed_silently(struct sp_raw *c, const char *what)
{
	size_t bytes = 0;
	int rc = sp_raw_wait_closed(c, WAIT_MS, &bytes);

	if (rc)
		fprintf(stderr, "[it] %s: connection not closed by the broker within %d ms (%s)\n",
			what, WAIT_MS, strerror(-rc));
	assert_int_equal(rc, 0);
	if (bytes)
		fprintf(stderr, "[it] %s: the broker sent %zu bytes before closing, not 0\n",
			what, bytes);
	assert_int_equal(bytes, 0);
}

/*
 * The broker logs each failure as one line with reason=<name> (sp_conn.c's
 * reason names). The line may be written just after the close is seen, so
 * wait for it, bounded.
 */
static void expect_log(const struct sp_it_broker *b, const char *needle, int want,
		       const char *what)
{
	int n = 0;

	for (int waited = 0; waited <= WAIT_MS; waited += 20) {
		n = sp_it_log_count(b, needle);
		if (n >= want)
			return;
		usleep(20 * 1000);
	}
	fprintf(stderr, "[it] %s: the broker log has %d lines with '%s', expected %d\n", what, n,
		needle, want);
	fail();
}

static int log_count(const struct sp_it_broker *b, const char *needle)
{
	int n = sp_it_log_count(b, needle);

	assert_true(n >= 0);
	return n;
}

/* A handshake attempt that the broker must refuse by closing, silently. */
static void expect_handshake_refused(int rc, struct sp_raw *c, const char *what)
{
	if (rc != -ENOTCONN && rc != -ECONNRESET && rc != -EPIPE)
		fprintf(stderr, "[it] %s: handshake returned %d (%s), not a close\n",
			what, rc, rc == 0 ? "success" : strerror(-rc));
	assert_true(rc == -ENOTCONN || rc == -ECONNRESET || rc == -EPIPE);
	expect_closed_silently(c, what);
}

static void expect_goaway_protocol(struct sp_raw *c, const char *what)
{
	uint32_t code = 0;
	int skipped = 0;
	int rc = sp_raw_expect_goaway(c, &code, WAIT_MS, &skipped);

	if (rc == -ENOTCONN)
		fprintf(stderr, "[it] %s: closed WITHOUT the GoAway PROTOCOL\n", what);
	else if (rc == -EPROTO)
		fprintf(stderr, "[it] %s: bytes after the GoAway\n", what);
	else if (rc)
		fprintf(stderr, "[it] %s: no GoAway+close: %s\n", what, strerror(-rc));
	assert_int_equal(rc, 0);
	expect_status(code, SP_STATUS_GOAWAY_PROTOCOL, what);
}

/* Preamble and handshake as initiator: XX when xx, else IK (with the right key). */
static int handshake(struct sp_raw *c, int xx, const struct sp_raw_opts *o)
{
	return sp_raw_handshake(c, xx ? SP_PREAMBLE_PATTERN_XX : SP_PREAMBLE_PATTERN_IK,
				main_broker.server_pub, o);
}

/* --- preamble ------------------------------------------------------------------ */

static void preamble_case(const uint8_t pre[SP_PREAMBLE_LEN], const char *what)
{
	int logged = log_count(&main_broker, "reason=bad_preamble");
	struct sp_raw c;

	client_init(&c);
	assert_int_equal(sp_raw_connect(&c, main_broker.port), 0);
	assert_int_equal(sp_raw_send_bytes(&c, pre, SP_PREAMBLE_LEN), 0);
	expect_closed_silently(&c, what);
	sp_raw_close(&c);
	expect_log(&main_broker, "reason=bad_preamble", logged + 1, what);
}

static void test_preamble_garbage(void **state)
{
	static const struct {
		const char *what;
		uint8_t pre[SP_PREAMBLE_LEN];
	} cases[] = {
		{ "preamble: HTTP request", { 'G', 'E', 'T', ' ', '/', ' ', 'H', 'T' } },
		{ "preamble: wrong magic (SEAX)", { 'S', 'E', 'A', 'X', 1, 1, 0, 0 } },
		{ "preamble: lower-case magic", { 's', 'e', 'a', 'l', 1, 1, 0, 0 } },
		{ "preamble: all zero", { 0, 0, 0, 0, 0, 0, 0, 0 } },
		{ "preamble: all 0xff", { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },
	};

	(void)state;
	for (size_t i = 0; i < N_OF(cases); i++)
		preamble_case(cases[i].pre, cases[i].what);
	check_main("garbage preambles");
}

static void test_preamble_unknown_fields(void **state)
{
	static const struct {
		const char *what;
		uint8_t pre[SP_PREAMBLE_LEN];
	} cases[] = {
		{ "preamble: pattern 0", { 'S', 'E', 'A', 'L', 1, 0, 0, 0 } },
		{ "preamble: pattern 4", { 'S', 'E', 'A', 'L', 1, 4, 0, 0 } }, /* 3 is NK (PROTOCOL.md 14) */
		{ "preamble: pattern 0xff", { 'S', 'E', 'A', 'L', 1, 0xff, 0, 0 } },
		{ "preamble: version 0", { 'S', 'E', 'A', 'L', 0, 1, 0, 0 } },
		{ "preamble: version 2", { 'S', 'E', 'A', 'L', 2, 1, 0, 0 } },
		/* byte 6 is the cipher: 00 ChaChaPoly, 01 AESGCM (PROTOCOL.md 2) */
		{ "preamble: cipher byte 6 unknown (2)", { 'S', 'E', 'A', 'L', 1, 1, 2, 0 } },
		{ "preamble: cipher byte 6 unknown (0x80)", { 'S', 'E', 'A', 'L', 1, 2, 0x80, 0 } },
		{ "preamble: reserved byte 7 set", { 'S', 'E', 'A', 'L', 1, 2, 0, 0x80 } },
	};

	(void)state;
	for (size_t i = 0; i < N_OF(cases); i++)
		preamble_case(cases[i].pre, cases[i].what);
	check_main("preambles with unknown version, pattern, cipher or reserved bytes");
}

/* --- handshake ------------------------------------------------------------------ */

static void test_ik_wrong_server_key(void **state)
{
	uint8_t wrong_pub[SP_KEY_LEN], wrong_priv[SP_KEY_LEN];
	struct sp_raw c;
	int rc;

	(void)state;
	int logged = log_count(&main_broker, "reason=handshake_failed");

	sp_noise_keypair(wrong_pub, wrong_priv);
	remember_key(wrong_pub, "wrong server key");
	client_init(&c);
	assert_int_equal(sp_raw_connect(&c, main_broker.port), 0);
	rc = sp_raw_handshake(&c, SP_PREAMBLE_PATTERN_IK, wrong_pub, NULL);
	expect_handshake_refused(rc, &c, "IK with the wrong server key");
	sp_raw_close(&c);
	expect_log(&main_broker, "reason=handshake_failed", logged + 1,
		   "test_ik_wrong_server_key");
	check_main("IK with the wrong server key");
}

struct flip {
	int msg_no;     /* which of our handshake messages to damage */
	size_t byte;    /* offset (from the end when from_end) */
	bool from_end;
	int stop;       /* hook result: 1 = stop after sending it */
};

static int flip_hook(int msg_no, uint8_t *msg, size_t *len, size_t cap, void *arg)
{
	const struct flip *fl = arg;
	size_t at;

	(void)cap;
	if (msg_no != fl->msg_no)
		return 0;
	at = fl->from_end ? *len - 1 - fl->byte : fl->byte;
	msg[at] ^= 0x01;
	return fl->stop;
}

static void test_xx_corrupted_msg3(void **state)
{
	static const struct {
		const char *what;
		struct flip fl;
	} cases[] = {
		/* msg3 = encrypted s (32 + 16) | encrypted ClientHello (+ 16) */
		{ "XX msg3: bit flipped in the encrypted static key", { 3, 0, false, 1 } },
		{ "XX msg3: bit flipped in the static key's tag", { 3, 40, false, 1 } },
		{ "XX msg3: bit flipped in the payload's tag", { 3, 0, true, 1 } },
		/* msg1 of IK: e (32) | enc s (48) | enc payload (+16) */
		{ "IK msg1: bit flipped in e", { 1, 3, false, 1 } },
		{ "IK msg1: bit flipped in the encrypted static key", { 1, 40, false, 1 } },
		{ "IK msg1: bit flipped in the payload's tag", { 1, 0, true, 1 } },
	};

	(void)state;
	int logged = log_count(&main_broker, "reason=handshake_failed");

	for (size_t i = 0; i < N_OF(cases); i++) {
		struct sp_raw_opts o = { .hook = flip_hook, .hook_arg = (void *)&cases[i].fl };
		uint8_t pattern = cases[i].fl.msg_no == 3 ? SP_PREAMBLE_PATTERN_XX
							  : SP_PREAMBLE_PATTERN_IK;
		struct sp_raw c;
		int rc;

		client_init(&c);
		assert_int_equal(sp_raw_connect(&c, main_broker.port), 0);
		rc = sp_raw_handshake(&c, pattern, main_broker.server_pub, &o);
		/* the hook stops right after sending the damaged message */
		if (rc != 1)
			fprintf(stderr, "[it] %s: handshake returned %d before the bad message\n",
				cases[i].what, rc);
		assert_int_equal(rc, 1);
		expect_closed_silently(&c, cases[i].what);
		sp_raw_close(&c);
	}
	expect_log(&main_broker, "reason=handshake_failed", logged + (int)N_OF(cases),
		   "test_xx_corrupted_msg3");
	check_main("handshake messages with a flipped bit");
}

/* Points of small order on Curve25519 (and non-canonical encodings of them). */
static const uint8_t low_order[][SP_KEY_LEN] = {
	{ 0 },                                           /* 0 */
	{ 1 },                                           /* 1 */
	{ 0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
	  0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
	  0x5f, 0x49, 0xb8, 0x00 },                      /* order 8 */
	{ 0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83,
	  0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd,
	  0xd0, 0x9f, 0x11, 0x57 },                      /* order 8 */
	{ 0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0x7f },                      /* p - 1 */
	{ 0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0x7f },                      /* p: a non-canonical 0 */
	{ 0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0x7f },                      /* p + 1: a non-canonical 1 */
	/* X25519 ignores bit 255: with it set these are still 0 and an order-8 point */
	{ [31] = 0x80 },
	{ 0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
	  0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
	  0x5f, 0x49, 0xb8, 0x80 },
};
enum { N_LOW_ORDER = sizeof(low_order) / sizeof(low_order[0]) };

/* The test data itself: each point must give an all-zero DH result. */
static void test_low_order_points_are_low_order(void **state)
{
	uint8_t priv[SP_KEY_LEN], out[SP_KEY_LEN];

	(void)state;
	randombytes_buf(priv, sizeof(priv));
	for (size_t i = 0; i < N_LOW_ORDER; i++) {
		assert_int_not_equal(crypto_scalarmult(out, priv, low_order[i]), 0);
		assert_false(sp_noise_key_valid(low_order[i]));
	}
}

static void test_low_order_static_key(void **state)
{
	(void)state;
	int logged = log_count(&main_broker, "reason=handshake_failed");

	for (size_t i = 0; i < N_LOW_ORDER; i++) {
		for (int xx = 0; xx <= 1; xx++) {
			struct sp_raw_opts o = { .fake_s_pub = low_order[i] };
			struct sp_raw c;
			char what[96];
			int rc;

			snprintf(what, sizeof(what), "%s announcing low-order static key #%zu",
				 xx ? "XX msg3" : "IK msg1", i);
			client_init(&c);
			assert_int_equal(sp_raw_connect(&c, main_broker.port), 0);
			rc = handshake(&c, xx, &o);
			if (xx) {
				/* XX: msg3 goes out and the handshake looks done to us; the
				 * broker must close instead of accepting the key. */
				if (rc == 0)
					expect_closed_silently(&c, what);
				else
					expect_handshake_refused(rc, &c, what);
			} else {
				expect_handshake_refused(rc, &c, what);
			}
			sp_raw_close(&c);
		}
	}
	expect_log(&main_broker, "reason=handshake_failed", logged + 2 * N_LOW_ORDER,
		   "test_low_order_static_key");
	check_main("handshakes with a low-order static key");
}

static int low_order_e_hook(int msg_no, uint8_t *msg, size_t *len, size_t cap, void *arg)
{
	(void)cap;
	if (msg_no != 1 || *len < SP_KEY_LEN)
		return 0;
	memcpy(msg, arg, SP_KEY_LEN);  /* e is the first 32 bytes, in clear */
	return 1;
}

static void test_low_order_ephemeral_key(void **state)
{
	(void)state;
	int logged = log_count(&main_broker, "reason=handshake_failed");

	for (size_t i = 0; i < N_LOW_ORDER; i++) {
		for (int xx = 0; xx <= 1; xx++) {
			struct sp_raw_opts o = { .hook = low_order_e_hook,
						 .hook_arg = (void *)low_order[i] };
			struct sp_raw c;
			char what[96];
			int rc;

			snprintf(what, sizeof(what), "%s msg1 with low-order ephemeral #%zu",
				 xx ? "XX" : "IK", i);
			client_init(&c);
			assert_int_equal(sp_raw_connect(&c, main_broker.port), 0);
			rc = handshake(&c, xx, &o);
			assert_int_equal(rc, 1);
			expect_closed_silently(&c, what);
			sp_raw_close(&c);
		}
	}
	expect_log(&main_broker, "reason=handshake_failed", logged + 2 * N_LOW_ORDER,
		   "test_low_order_ephemeral_key");
	check_main("handshakes with a low-order ephemeral key");
}

static void test_bad_client_hello(void **state)
{
	/* protocol_version = 2; an undecodable payload; an empty payload (version 0) */
	static const uint8_t v2[] = { 0x08, 0x02 };
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0xff };
	static const struct {
		const char *what;
		const uint8_t *hello;
		size_t len;
	} cases[] = {
		{ "ClientHello with protocol_version 2", v2, sizeof(v2) },
		{ "ClientHello that is not protobuf", junk, sizeof(junk) },
		{ "empty ClientHello (protocol_version 0)", v2, 0 },
	};

	(void)state;
	int logged = log_count(&main_broker, "reason=handshake_failed");

	for (size_t i = 0; i < N_OF(cases); i++) {
		for (int xx = 0; xx <= 1; xx++) {
			struct sp_raw_opts o = { .hello = cases[i].hello,
						 .hello_len = cases[i].len };
			struct sp_raw c;
			char what[128];
			int rc;

			snprintf(what, sizeof(what), "%s: %s", xx ? "XX" : "IK", cases[i].what);
			client_init(&c);
			assert_int_equal(sp_raw_connect(&c, main_broker.port), 0);
			rc = handshake(&c, xx, &o);
			if (xx && rc == 0)
				expect_closed_silently(&c, what);
			else
				expect_handshake_refused(rc, &c, what);
			sp_raw_close(&c);
		}
	}
	expect_log(&main_broker, "reason=handshake_failed", logged + 2 * (int)N_OF(cases),
		   "test_bad_client_hello");
	check_main("handshakes with a bad ClientHello");
}

/* --- length prefixes -------------------------------------------------------------- */

static void prefix_case(uint8_t pattern, const uint8_t *bytes, size_t len, const char *what)
{
	uint8_t pre[SP_PREAMBLE_LEN];
	struct sp_raw c;

	client_init(&c);
	sp_raw_preamble(pre, pattern);
	assert_int_equal(sp_raw_connect(&c, main_broker.port), 0);
	assert_int_equal(sp_raw_send_bytes(&c, pre, sizeof(pre)), 0);
	/* The broker may close before reading it all: a failed write is fine. */
	(void)sp_raw_send_bytes(&c, bytes, len);
	expect_closed_silently(&c, what);
	sp_raw_close(&c);
}

static void test_length_prefix_limits(void **state)
{
	size_t over = SP_HANDSHAKE_MSG_MAX + 1;
	uint8_t *buf = malloc(SP_LEN_PREFIX + SP_NOISE_MSG_MAX);

	(void)state;
	int logged = log_count(&main_broker, "reason=bad_length");

	assert_non_null(buf);
	/* length 0 */
	buf[0] = 0;
	buf[1] = 0;
	prefix_case(SP_PREAMBLE_PATTERN_IK, buf, 2, "handshake length prefix 0 (IK)");
	prefix_case(SP_PREAMBLE_PATTERN_XX, buf, 2, "handshake length prefix 0 (XX)");
	/* one byte over the handshake limit, with the whole message behind it */
	buf[0] = (uint8_t)(over >> 8);
	buf[1] = (uint8_t)over;
	randombytes_buf(buf + 2, over);
	prefix_case(SP_PREAMBLE_PATTERN_IK, buf, 2 + over,
		    "handshake message of SP_HANDSHAKE_MSG_MAX + 1 bytes (IK)");
	prefix_case(SP_PREAMBLE_PATTERN_XX, buf, 2 + over,
		    "handshake message of SP_HANDSHAKE_MSG_MAX + 1 bytes (XX)");
	/* the largest prefix, and nothing after it: the broker must close on
	 * the prefix alone, not wait (WAIT_MS < the 10 s handshake timeout). */
	buf[0] = 0xff;
	buf[1] = 0xff;
	prefix_case(SP_PREAMBLE_PATTERN_IK, buf, 2,
		    "handshake length prefix 65535 alone (must close on the prefix)");
	free(buf);
	expect_log(&main_broker, "reason=bad_length", logged + 5,
		   "test_length_prefix_limits");
	check_main("handshake length prefixes beyond the limit");
}

/* A transport message with a length prefix of 0, after a good handshake. */
static void test_transport_length_zero(void **state)
{
	static const uint8_t zero[2] = { 0, 0 };
	struct sp_raw c;
	size_t bytes = 0;
	int rc;

	(void)state;
	int bad_len = log_count(&main_broker, "reason=bad_length");
	int bad_auth = log_count(&main_broker, "reason=decrypt_failed");

	client_open(&c, &main_broker, SP_PREAMBLE_PATTERN_IK);
	assert_int_equal(sp_raw_send_bytes(&c, zero, sizeof(zero)), 0);
	rc = sp_raw_wait_closed(&c, WAIT_MS, &bytes);
	if (rc)
		fprintf(stderr, "[it] transport length prefix 0: not closed (%s)\n", strerror(-rc));
	assert_int_equal(rc, 0);
	sp_raw_close(&c);

	/* shorter than a tag: cannot authenticate */
	client_open(&c, &main_broker, SP_PREAMBLE_PATTERN_IK);
	{
		uint8_t shorty[2 + 5] = { 0, 5, 1, 2, 3, 4, 5 };
		struct sp_raw_frame f;

		/* Its proof routed it: the (empty) backlog's Drained is no reply. */
		assert_int_equal(sp_raw_wait_frame(&c, SP_FRAME_DRAINED, &f, WAIT_MS), 0);

		assert_int_equal(sp_raw_send_bytes(&c, shorty, sizeof(shorty)), 0);
	}
	expect_closed_silently(&c, "transport message shorter than a tag");
	sp_raw_close(&c);
	expect_log(&main_broker, "reason=bad_length", bad_len + 1, "transport length prefix 0");
	expect_log(&main_broker, "reason=decrypt_failed", bad_auth + 1,
		   "transport message shorter than a tag");
	check_main("transport length prefix 0 / short message");
}

/* --- frames inside authenticated transport messages -------------------------------- */

/* A new device sends plain as one valid transport message; expects GoAway PROTOCOL. */
static void frame_case(const uint8_t *plain, size_t len, const char *what)
{
	struct sp_raw c;

	client_open(&c, &main_broker, SP_PREAMBLE_PATTERN_IK);
	assert_int_equal(sp_raw_send_plain(&c, plain, len), 0);
	expect_goaway_protocol(&c, what);
	sp_raw_close(&c);
}

static void put_prefix(uint8_t *p, size_t hlen, size_t blen)
{
	p[0] = (uint8_t)(hlen >> 8);
	p[1] = (uint8_t)hlen;
	p[2] = (uint8_t)(blen >> 8);
	p[3] = (uint8_t)blen;
}

static void test_truncated_frames(void **state)
{
	uint8_t *buf = malloc(SP_TRANSPORT_PLAINTEXT_MAX);
	uint8_t ping[64];
	size_t ping_len = 0, off;
	int rc;

	(void)state;
	int logged = log_count(&main_broker, "reason=protocol");

	assert_non_null(buf);
	assert_int_equal(sp_raw_encode_header(SP_FRAME_PING, 7, ping, sizeof(ping), &ping_len), 0);

	/* header_len larger than what follows */
	put_prefix(buf, ping_len + 10, 0);
	memcpy(buf + 4, ping, ping_len);
	frame_case(buf, 4 + ping_len, "frame: header_len beyond the message end");

	/* body_len larger than what follows (a Send with a short body) */
	off = 0;
	rc = sp_raw_put_send(buf, SP_TRANSPORT_PLAINTEXT_MAX, &off, case_pair.b.s_pub, SP_KEY_LEN,
			     next_client_id++, 0, (const uint8_t *)"abc", 3);
	assert_int_equal(rc, 0);
	buf[3] = 200; /* body_len 200, only 3 bytes present */
	frame_case(buf, off, "frame: Send body_len beyond the message end");

	/* a frame prefix cut short */
	put_prefix(buf, ping_len, 0);
	frame_case(buf, 3, "frame: 3-byte prefix");

	/* a good Ping followed by a truncated frame in the same message */
	off = 0;
	assert_int_equal(sp_raw_put_simple(buf, SP_TRANSPORT_PLAINTEXT_MAX, &off, SP_FRAME_PING, 9,
					   NULL, 0), 0);
	put_prefix(buf + off, 50, 0);
	memcpy(buf + off + 4, ping, ping_len);
	frame_case(buf, off + 4 + ping_len, "frame: good Ping then a truncated frame");

	free(buf);
	expect_log(&main_broker, "reason=protocol", logged + 4,
		   "test_truncated_frames");
	check_main("truncated frames");
}

static void test_malformed_frames(void **state)
{
	uint8_t *buf = malloc(SP_TRANSPORT_PLAINTEXT_MAX);
	size_t off;

	(void)state;
	int logged = log_count(&main_broker, "reason=protocol");

	assert_non_null(buf);

	/* header_len 0 */
	put_prefix(buf, 0, 0);
	frame_case(buf, 4, "frame: header_len 0");

	/* header_len above SP_FRAME_HEADER_MAX, with that many bytes present */
	put_prefix(buf, SP_FRAME_HEADER_MAX + 1, 0);
	memset(buf + 4, 0, SP_FRAME_HEADER_MAX + 1);
	frame_case(buf, 4 + SP_FRAME_HEADER_MAX + 1, "frame: header_len 1025");

	/* not protobuf */
	put_prefix(buf, 6, 0);
	memset(buf + 4, 0xff, 6);
	frame_case(buf, 10, "frame: header is not protobuf");

	/* valid protobuf, unknown frame type (field 15) */
	put_prefix(buf, 2, 0);
	buf[4] = 0x78; /* field 15, varint */
	buf[5] = 0x01;
	frame_case(buf, 6, "frame: unknown frame type 15");

	/* valid protobuf, the next field number after GoAway (type 9) */
	put_prefix(buf, 2, 0);
	buf[4] = 0x48; /* field 9, varint */
	buf[5] = 0x01;
	frame_case(buf, 6, "frame: unknown frame type 9");

	/* Ack with SP_ACK_SEQS_MAX + 1 sequences (packed) */
	{
		size_t n = SP_ACK_SEQS_MAX + 1;

		put_prefix(buf, 2 + 2 + n, 0);
		buf[4] = 0x22;                  /* FrameHeader.ack */
		buf[5] = (uint8_t)(2 + n);
		buf[6] = 0x0a;                  /* Ack.seqs, packed */
		buf[7] = (uint8_t)n;
		memset(buf + 8, 0x01, n);       /* n varints of value 1 */
		frame_case(buf, 4 + 4 + n, "frame: Ack with 65 sequences");
	}

	/* a body on a frame type that has none */
	off = 0;
	assert_int_equal(sp_raw_put_simple(buf, SP_TRANSPORT_PLAINTEXT_MAX, &off, SP_FRAME_PING, 1,
					   (const uint8_t *)"body!", 5), 0);
	frame_case(buf, off, "frame: Ping carrying a body");

	/* Two members of the FrameHeader oneof (ping, then send): refused,
	 * not taken as the send (PROTOCOL.md 5, "exactly one"). A Send body
	 * above SP_BODY_MAX is NOT malformed: test_too_large. */
	put_prefix(buf, 8, 0);
	memcpy(buf + 4, (const uint8_t[]){ 0x32, 0x02, 0x08, 0x07, 0x0a, 0x02, 0x10, 0x05 }, 8);
	frame_case(buf, 12, "frame: header with ping and send");

	free(buf);
	expect_log(&main_broker, "reason=protocol", logged + 8,
		   "test_malformed_frames");
	check_main("malformed frames");
}

static void test_wrong_direction(void **state)
{
	static const struct {
		enum sp_frame_type type;
		uint64_t value;
		const char *what;
	} cases[] = {
		{ SP_FRAME_DELIVER, 1, "client sends Deliver" },
		{ SP_FRAME_SEND_RESULT, SP_STATUS_DELIVERED, "client sends SendResult" },
		{ SP_FRAME_DRAINED, 0, "client sends Drained" },
		{ SP_FRAME_GOAWAY, SP_STATUS_GOAWAY_SHUTDOWN, "client sends GoAway" },
	};
	uint8_t buf[256];

	(void)state;
	int logged = log_count(&main_broker, "reason=protocol");

	for (size_t i = 0; i < N_OF(cases); i++) {
		size_t off = 0;
		const uint8_t *body = NULL;

		if (cases[i].type == SP_FRAME_DELIVER)
			body = (const uint8_t *)"xyz";

		assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, cases[i].type,
						   cases[i].value, body, body ? 3 : 0), 0);
		frame_case(buf, off, cases[i].what);
	}
	expect_log(&main_broker, "reason=protocol", logged + (int)N_OF(cases),
		   "test_wrong_direction");
	check_main("frames of the wrong direction");
}

static void test_flipped_ciphertext(void **state)
{
	static const struct {
		size_t at;          /* offset into the ciphertext; from the end if from_end */
		bool from_end;
		const char *what;
	} cases[] = {
		{ 0, false, "transport: first ciphertext bit flipped" },
		{ 5, false, "transport: a middle ciphertext bit flipped" },
		{ 0, true, "transport: a tag bit flipped" },
	};
	uint8_t plain[64], msg[128];

	(void)state;
	int logged = log_count(&main_broker, "reason=decrypt_failed");

	for (size_t i = 0; i < N_OF(cases); i++) {
		struct sp_raw c;
		struct sp_raw_frame f;
		size_t off = 0, mlen = 0;

		client_open(&c, &main_broker, SP_PREAMBLE_PATTERN_IK);
		/* Its proof message routed it: the (empty) backlog's Drained comes
		 * before the bad message, so it is not a reply to it. */
		assert_int_equal(sp_raw_wait_frame(&c, SP_FRAME_DRAINED, &f, WAIT_MS), 0);
		assert_int_equal(sp_raw_put_simple(plain, sizeof(plain), &off, SP_FRAME_PING, 42,
						   NULL, 0), 0);
		assert_int_equal(sp_raw_seal(&c, plain, off, msg, sizeof(msg), &mlen), 0);
		msg[cases[i].from_end ? mlen - 1 - cases[i].at : cases[i].at] ^= 0x10;
		assert_int_equal(sp_raw_send_msg(&c, msg, mlen), 0);
		expect_closed_silently(&c, cases[i].what);
		sp_raw_close(&c);
	}

	/* A replayed transport message: valid once, not twice (the nonce moved on). */
	{
		struct sp_raw c;
		struct sp_raw_frame f;
		size_t off = 0, mlen = 0;
		int rc;

		client_open(&c, &main_broker, SP_PREAMBLE_PATTERN_IK);
		assert_int_equal(sp_raw_put_simple(plain, sizeof(plain), &off, SP_FRAME_PING, 43,
						   NULL, 0), 0);
		assert_int_equal(sp_raw_seal(&c, plain, off, msg, sizeof(msg), &mlen), 0);
		assert_int_equal(sp_raw_send_msg(&c, msg, mlen), 0);
		rc = sp_raw_wait_frame(&c, SP_FRAME_PONG, &f, WAIT_MS);
		if (rc)
			fprintf(stderr, "[it] Ping before replay: no Pong (%s)\n", strerror(-rc));
		assert_int_equal(rc, 0);
		assert_int_equal(f.id, 43);
		c.bytes_in = 0;
		assert_int_equal(sp_raw_send_msg(&c, msg, mlen), 0);
		expect_closed_silently(&c, "transport: replayed message");
		sp_raw_close(&c);
	}
	expect_log(&main_broker, "reason=decrypt_failed", logged + (int)N_OF(cases) + 1,
		   "test_flipped_ciphertext");
	check_main("transport messages that fail authentication");
}

/* What is legal must stay legal: the boundaries next to the bad cases above. */
static void test_legal_boundaries(void **state)
{
	uint8_t buf[1024];
	struct sp_raw c;
	struct sp_raw_frame f;
	size_t off = 0;
	int rc;

	(void)state;
	client_open(&c, &main_broker, SP_PREAMBLE_PATTERN_IK);
	/* an empty transport message is a keep-alive: ignored */
	assert_int_equal(sp_raw_send_plain(&c, NULL, 0), 0);
	/* Ack with exactly SP_ACK_SEQS_MAX sequences, then a Ping, in one message */
	put_prefix(buf, 2 + 2 + SP_ACK_SEQS_MAX, 0);
	buf[4] = 0x22;
	buf[5] = 2 + SP_ACK_SEQS_MAX;
	buf[6] = 0x0a;
	buf[7] = SP_ACK_SEQS_MAX;
	memset(buf + 8, 0x01, SP_ACK_SEQS_MAX);
	off = 8 + SP_ACK_SEQS_MAX;
	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, 77, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(&c, buf, off), 0);
	rc = sp_raw_wait_frame(&c, SP_FRAME_PONG, &f, WAIT_MS);
	if (rc)
		fprintf(stderr, "[it] empty message, Ack with 64 sequences, Ping: no Pong (%s, "
			"frame "
			"type %d code %u)\n", strerror(-rc), (int)f.type, f.status);
	assert_int_equal(rc, 0);
	assert_int_equal(f.id, 77);
	/* a Send with an empty body is an envelope like any other */
	off = 0;
	{
		uint64_t id = next_client_id++;
		uint32_t st = 0;
		struct collected col;

		assert_int_equal(sp_raw_send_envelope(&c, case_pair.b.s_pub, id, NULL, 0), 0);
		assert_int_equal(sp_raw_expect_result(&c, id, &st, WAIT_MS), 0);
		expect_status(st, SP_STATUS_ACCEPTED, "a Send with an empty body");
		collect(&case_pair.b, 0, 1, &col, "a Send with an empty body");
		assert_int_equal(col.del_len[0], 0);
		collected_free(&col);
	}
	sp_raw_close(&c);
	check_main("legal boundary cases");
}

static void ping_pong(struct sp_raw *c, uint64_t id, const char *what)
{
	struct sp_raw_frame f;
	uint8_t buf[64];
	size_t off = 0;
	int rc;

	assert_int_equal(sp_raw_put_simple(buf, sizeof(buf), &off, SP_FRAME_PING, id, NULL, 0), 0);
	rc = sp_raw_send_plain(c, buf, off);
	if (rc == 0)
		rc = sp_raw_wait_frame(c, SP_FRAME_PONG, &f, WAIT_MS);
	if (rc)
		fprintf(stderr, "[it] %s: Ping %llu got no Pong (%s)\n", what,
			(unsigned long long)id, strerror(-rc));
	assert_int_equal(rc, 0);
	assert_int_equal(f.id, id);
}

/*
 * Legal input in awkward pieces: the reassembly paths that bad input also
 * goes through. Prefixes and messages split across receives (written a few
 * bytes at a time), and several messages in one receive (the preamble with
 * message 1, XX message 3 with the first transport message, many transport
 * messages in one write).
 */
static void test_fragmented_and_coalesced(void **state)
{
	static const size_t chunks[] = { 1, 3, 7 };

	(void)state;
	for (size_t i = 0; i < N_OF(chunks); i++) {
		for (int xx = 0; xx <= 1; xx++) {
			struct sp_raw c;
			char what[96];
			int rc;

			snprintf(what, sizeof(what), "%s, written %zu byte(s) at a time",
				 xx ? "XX" : "IK", chunks[i]);
			client_init(&c);
			c.write_chunk = chunks[i];
			assert_int_equal(sp_raw_connect(&c, main_broker.port), 0);
			rc = handshake(&c, xx, NULL);
			if (rc)
				fprintf(stderr, "[it] %s: handshake failed (%s)\n", what,
					strerror(-rc));
			assert_int_equal(rc, 0);
			ping_pong(&c, 1, what);
			exchange_checked(&c, &case_pair.b, what);
			sp_raw_close(&c);
		}
	}
	for (int xx = 0; xx <= 1; xx++) {
		struct sp_raw_opts o = { .preamble_with_msg1 = true };
		struct sp_raw c;

		client_init(&c);
		assert_int_equal(sp_raw_connect(&c, main_broker.port), 0);
		assert_int_equal(handshake(&c, xx, &o), 0);
		ping_pong(&c, 2, "preamble and message 1 in one write");
		sp_raw_close(&c);
	}
	{
		struct sp_raw_opts o = { .hold_last = true };
		struct sp_raw c;

		client_init(&c);
		assert_int_equal(sp_raw_connect(&c, main_broker.port), 0);
		assert_int_equal(handshake(&c, 1, &o), 0);
		ping_pong(&c, 3, "XX message 3 and the first transport message in one write");
		exchange_checked(&c, &case_pair.b, "after message 3 + transport in one write");
		sp_raw_close(&c);
	}
	{
		enum { N = 50 };
		uint8_t *all = malloc(N * 64);
		size_t all_len = 0;
		struct sp_raw c;

		assert_non_null(all);
		client_open(&c, &main_broker, SP_PREAMBLE_PATTERN_IK);
		for (uint64_t k = 0; k < N; k++) {
			uint8_t plain[32];
			size_t off = 0, mlen = 0;
			int rc = sp_raw_put_simple(plain, sizeof(plain), &off, SP_FRAME_PING,
						   100 + k, NULL, 0);

			assert_int_equal(rc, 0);
			rc = sp_raw_seal(&c, plain, off, all + all_len + 2, 62, &mlen);
			assert_int_equal(rc, 0);
			all[all_len] = (uint8_t)(mlen >> 8);
			all[all_len + 1] = (uint8_t)mlen;
			all_len += 2 + mlen;
		}
		assert_int_equal(sp_raw_send_bytes(&c, all, all_len), 0);
		for (uint64_t k = 0; k < N; k++) {
			struct sp_raw_frame f;
			int rc = sp_raw_wait_frame(&c, SP_FRAME_PONG, &f, WAIT_MS);

			if (rc)
				fprintf(stderr, "[it] 50 messages in one write: Pong %llu "
					"missing (%s)\n", (unsigned long long)k, strerror(-rc));
			assert_int_equal(rc, 0);
			assert_int_equal(f.id, 100 + k);
		}
		free(all);
		sp_raw_close(&c);
	}
	check_main("fragmented and coalesced input");
}

/* --- per-envelope errors: the connection stays usable ------------------------------- */

static void test_bad_recipient(void **state)
{
	uint8_t to33[SP_KEY_LEN + 1], to31[SP_KEY_LEN - 1], body[32];
	struct sp_raw c;

	(void)state;
	client_open(&c, &main_broker, SP_PREAMBLE_PATTERN_IK);
	randombytes_buf(to33, sizeof(to33));
	randombytes_buf(to31, sizeof(to31));
	memcpy(to33, case_pair.b.s_pub, SP_KEY_LEN);  /* a real key plus one byte */
	memcpy(to31, case_pair.b.s_pub, sizeof(to31)); /* a real key minus one byte */
	remember_key(to33, "recipient (33 bytes)");
	make_body(body, sizeof(body));

	struct {
		const uint8_t *to;
		size_t len;
		const char *what;
	} cases[3 + N_LOW_ORDER] = {
		{ to31, sizeof(to31), "Send to a 31-byte key" },
		{ to33, sizeof(to33), "Send to a 33-byte key" },
		{ to31, 0, "Send without a key (empty `to`)" },
	};
	size_t n = 3;

	for (size_t i = 0; i < N_LOW_ORDER; i++) {
		cases[n].to = low_order[i];
		cases[n].len = SP_KEY_LEN;
		cases[n].what = "Send to a low-order point";
		n++;
	}

	/* one at a time: each gets its result, and the next Send still works */
	for (size_t i = 0; i < n; i++) {
		uint8_t buf[256];
		size_t off = 0;
		uint64_t id = next_client_id++;
		uint32_t st = 0;
		int rc;

		assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, cases[i].to, cases[i].len,
						 id, 0, body, sizeof(body)), 0);
		assert_int_equal(sp_raw_send_plain(&c, buf, off), 0);
		rc = sp_raw_expect_result(&c, id, &st, WAIT_MS);
		if (rc)
			fprintf(stderr, "[it] %s: no SendResult (%s)\n", cases[i].what,
				strerror(-rc));
		assert_int_equal(rc, 0);
		expect_status(st, SP_STATUS_ERR_BAD_RECIPIENT, cases[i].what);
		exchange_checked(&c, &case_pair.b, "a good Send after a bad recipient");
	}

	/* several in one transport message: one result each, in order */
	{
		uint8_t buf[1024];
		size_t off = 0;
		uint64_t id0 = next_client_id;
		struct collected col;

		next_client_id += 4;
		assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, to31, sizeof(to31), id0, 0,
						 body, sizeof(body)), 0);
		assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, case_pair.b.s_pub,
						 SP_KEY_LEN, id0 + 1, 0, body, sizeof(body)), 0);
		assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, low_order[0], SP_KEY_LEN,
						 id0 + 2, 0, body, sizeof(body)), 0);
		assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, case_pair.b.s_pub,
						 SP_KEY_LEN, id0 + 3, 0, body, sizeof(body)), 0);
		assert_int_equal(sp_raw_send_plain(&c, buf, off), 0);
		collect(&c, 4, 0, &col, "four Sends in one message");
		for (uint64_t k = 0; k < 4; k++) {
			assert_int_equal(col.res_id[k], id0 + k);
			expect_status(col.res_status[k], k % 2 ? SP_STATUS_ACCEPTED
							       : SP_STATUS_ERR_BAD_RECIPIENT,
				      "mixed Sends in one message");
		}
		collected_free(&col);
		collect(&case_pair.b, 0, 2, &col, "the two good Sends of the mixed message");
		for (size_t k = 0; k < 2; k++) {
			assert_int_equal(col.del_len[k], sizeof(body));
			assert_memory_equal(col.del_body[k], body, sizeof(body));
		}
		assert_true(col.del_seq[1] > col.del_seq[0]);
		collected_free(&col);
	}
	sp_raw_close(&c);
	check_main("Sends to malformed keys");
}

static void test_too_large(void **state)
{
	/* The largest Send body one transport message can carry beside its
	 * header (to: 32 bytes, client_id: up to 10): above SP_BODY_MAX, and
	 * still one refused envelope, not a broken connection. */
	enum { BODY_FITS = SP_TRANSPORT_PLAINTEXT_MAX - SP_FRAME_PREFIX_LEN - 48 };
	static uint8_t body[BODY_FITS];
	uint8_t offline_pub[SP_KEY_LEN], offline_priv[SP_KEY_LEN];
	struct sp_raw c;
	struct size_case {
		const uint8_t *to;
		size_t len;
		uint32_t want;
		const char *what;
	} cases[7];

	(void)state;
	sp_noise_keypair(offline_pub, offline_priv);
	remember_key(offline_pub, "offline recipient");
	client_open(&c, &main_broker, SP_PREAMBLE_PATTERN_IK);
	/* the configured limit is announced in the ServerHello */
	assert_int_equal(c.max_envelope, MAIN_MAX_ENVELOPE);
	make_body(body, sizeof(body));

	cases[0] = (struct size_case){ case_pair.b.s_pub, MAIN_MAX_ENVELOPE + 1,
				       SP_STATUS_ERR_TOO_LARGE, "body of max_envelope + 1" };
	cases[1] = (struct size_case){ case_pair.b.s_pub, MAIN_MAX_ENVELOPE, SP_STATUS_ACCEPTED,
				       "body of exactly max_envelope" };
	cases[2] = (struct size_case){ case_pair.b.s_pub, SP_BODY_MAX, SP_STATUS_ERR_TOO_LARGE,
				       "body of SP_BODY_MAX" };
	/* the checks come in the documented order: recipient, size, online */
	cases[3] = (struct size_case){ offline_pub, MAIN_MAX_ENVELOPE + 1, SP_STATUS_ERR_TOO_LARGE,
				       "too large AND recipient offline -> TOO_LARGE" };
	cases[4] = (struct size_case){ low_order[0], MAIN_MAX_ENVELOPE + 1,
				       SP_STATUS_ERR_BAD_RECIPIENT,
				       "too large AND bad recipient -> BAD_RECIPIENT" };
	cases[5] = (struct size_case){ case_pair.b.s_pub, SP_BODY_MAX + 1, SP_STATUS_ERR_TOO_LARGE,
				       "body of SP_BODY_MAX + 1" };
	cases[6] = (struct size_case){ case_pair.b.s_pub, BODY_FITS, SP_STATUS_ERR_TOO_LARGE,
				       "the largest body a transport message holds" };

	for (size_t i = 0; i < N_OF(cases); i++) {
		uint64_t id = next_client_id++;
		uint32_t st = 0;
		int rc;

		assert_int_equal(sp_raw_send_envelope(&c, cases[i].to, id, body, cases[i].len), 0);
		rc = sp_raw_expect_result(&c, id, &st, WAIT_MS);
		if (rc)
			fprintf(stderr, "[it] %s: no SendResult (%s)\n", cases[i].what,
				strerror(-rc));
		assert_int_equal(rc, 0);
		expect_status(st, cases[i].want, cases[i].what);
		if (cases[i].want == SP_STATUS_ACCEPTED) {
			struct collected col;

			collect(&case_pair.b, 0, 1, &col, cases[i].what);
			assert_int_equal(col.del_len[0], cases[i].len);
			assert_memory_equal(col.del_body[0], body, cases[i].len);
			collected_free(&col);
		}
		exchange_checked(&c, &case_pair.b, "a good Send after a refused one");
	}
	{
		/* Offline is a refusal only for online-only envelopes (mailboxes). */
		static uint8_t buf[128];
		uint64_t id = next_client_id++;
		uint32_t st = 0;
		size_t off = 0;

		assert_int_equal(sp_raw_put_send(buf, sizeof(buf), &off, offline_pub, SP_KEY_LEN, id,
						 SP_SEND_ONLINE_ONLY, body, 10), 0);
		assert_int_equal(sp_raw_send_plain(&c, buf, off), 0);
		assert_int_equal(sp_raw_expect_result(&c, id, &st, WAIT_MS), 0);
		expect_status(st, SP_STATUS_ERR_OFFLINE, "recipient offline");
	}
	sp_raw_close(&c);
	check_main("envelopes above max_envelope");
}

/* --- replay ---------------------------------------------------------------------- */

struct captured {
	uint8_t msg[SP_NOISE_MSG_MAX];
	size_t len;
};

static int capture_msg1(int msg_no, uint8_t *msg, size_t *len, size_t cap, void *arg)
{
	struct captured *cm = arg;

	(void)cap;
	if (msg_no == 1) {
		memcpy(cm->msg, msg, *len);
		cm->len = *len;
	}
	return 0;
}

/*
 * IK message 1 carries no freshness: anyone who saw it on the wire can send
 * it again, byte for byte, on a new connection. The replayer cannot finish
 * anything (it has neither the device's static nor its ephemeral private
 * key, so it cannot read message 2 or write a transport message), so it must
 * not be able to take the device's place either: the device that is
 * connected must keep its connection and keep receiving its envelopes.
 */
static void test_replayed_ik_msg1(void **state)
{
	static struct captured cm;
	struct sp_raw_opts o = { .hook = capture_msg1, .hook_arg = &cm };
	struct sp_raw d, sender, replay;
	uint8_t pre[SP_PREAMBLE_LEN], m2[SP_NOISE_MSG_MAX];
	size_t m2_len = 0;
	struct sp_raw_frame f;
	int rc;

	(void)state;
	client_init(&d);
	assert_int_equal(sp_raw_connect(&d, main_broker.port), 0);
	assert_int_equal(handshake(&d, 0, &o), 0);
	assert_true(cm.len > 0);
	client_open(&sender, &main_broker, SP_PREAMBLE_PATTERN_XX);
	exchange_checked(&sender, &d, "to the device before the replay");

	client_init(&replay);
	sp_raw_preamble(pre, SP_PREAMBLE_PATTERN_IK);
	assert_int_equal(sp_raw_connect(&replay, main_broker.port), 0);
	assert_int_equal(sp_raw_send_bytes(&replay, pre, sizeof(pre)), 0);
	assert_int_equal(sp_raw_send_msg(&replay, cm.msg, cm.len), 0);
	/* The broker has handled the replay once it answers it or closes it. */
	rc = sp_raw_recv_msg(&replay, m2, sizeof(m2), &m2_len, WAIT_MS);
	fprintf(stderr, "[it] replayed IK message 1: the broker %s\n",
		rc == 0 ? "answered with a message 2 (handshake accepted)"
			: "closed the connection");
	assert_true(rc == 0 || rc == -ENOTCONN || rc == -ECONNRESET);

	/* the device is still connected and still the one envelopes go to */
	rc = sp_raw_recv_frame(&d, &f, 200);
	if (rc == 0 && f.type == SP_FRAME_GOAWAY) {
		uint8_t body[32];
		uint64_t id = next_client_id++;
		uint32_t st = 0;

		fprintf(stderr, "[it] a replayed IK message 1 took the device's place: the device "
			"got GoAway %u (%s)\n", f.status, status_str(f.status));
		/* Say what becomes of the device's envelopes now. */
		make_body(body, sizeof(body));
		if (sp_raw_send_envelope(&sender, d.s_pub, id, body, sizeof(body)) == 0 &&
		    sp_raw_expect_result(&sender, id, &st, WAIT_MS) == 0)
			fprintf(stderr, "[it] an envelope for the device now gets %s%s\n",
				status_str(st), st == SP_STATUS_DELIVERED ?
				": handed to the replayer, who cannot read it (lost)" : "");
	}
	assert_int_equal(rc, -ETIMEDOUT);
	ping_pong(&d, 5, "the device after its message 1 was replayed");
	exchange_checked(&sender, &d, "to the device after its message 1 was replayed");

	sp_raw_close(&replay);
	sp_raw_close(&sender);
	sp_raw_close(&d);
	check_main("a replayed IK message 1");
}

/* --- abrupt disconnects ------------------------------------------------------------ */

static void test_half_message_then_disconnect(void **state)
{
	uint8_t pre[SP_PREAMBLE_LEN], part[2 + 40];

	(void)state;
	for (int mode = 0; mode < 4; mode++) {
		struct sp_raw c;

		client_init(&c);
		sp_raw_preamble(pre, SP_PREAMBLE_PATTERN_IK);
		assert_int_equal(sp_raw_connect(&c, main_broker.port), 0);
		assert_int_equal(sp_raw_send_bytes(&c, pre, sizeof(pre)), 0);
		/* announce 200 bytes, send 40 */
		part[0] = 0;
		part[1] = 200;
		randombytes_buf(part + 2, 40);
		assert_int_equal(sp_raw_send_bytes(&c, part, mode < 2 ? sizeof(part) : 1), 0);
		if (mode % 2)
			sp_raw_abort(&c);    /* RST */
		else
			sp_raw_close(&c);    /* FIN */
	}
	/* half a transport message on an established connection */
	for (int mode = 0; mode < 2; mode++) {
		struct sp_raw c;
		uint8_t half[2 + 30] = { 0, 100 };

		client_open(&c, &main_broker, SP_PREAMBLE_PATTERN_XX);
		assert_int_equal(sp_raw_send_bytes(&c, half, sizeof(half)), 0);
		if (mode)
			sp_raw_abort(&c);
		else
			sp_raw_close(&c);
	}
	check_main("half-sent Noise messages then disconnect");
}

/* One short-lived connection that gives up at some point of the handshake. */
static void abrupt_one(const struct sp_it_broker *b, int mode, struct sp_raw *c)
{
	uint8_t pre[SP_PREAMBLE_LEN];

	assert_int_equal(sp_raw_init(c), 0);
	if (sp_raw_connect(c, b->port) != 0)
		return; /* a refused connect under load is fine; the broker is checked after */
	sp_raw_preamble(pre, mode % 2 ? SP_PREAMBLE_PATTERN_XX : SP_PREAMBLE_PATTERN_IK);
	switch (mode % 6) {
	case 0:
		break;                                             /* nothing at all */
	case 1:
		(void)sp_raw_send_bytes(c, pre, 5);                 /* part of the preamble */
		break;
	case 2:
	case 3:
		(void)sp_raw_send_bytes(c, pre, sizeof(pre));       /* preamble only */
		break;
	case 4:
	case 5: {
		uint8_t part[2 + 50] = { 0, 96 + 16 };              /* prefix and part of msg1 */

		(void)sp_raw_send_bytes(c, pre, sizeof(pre));
		(void)sp_raw_send_bytes(c, part, sizeof(part));
		break;
	}
	}
}

static int stop_after_msg1(int msg_no, uint8_t *msg, size_t *len, size_t cap, void *arg)
{
	(void)msg;
	(void)len;
	(void)cap;
	(void)arg;
	return msg_no == 1 ? 1 : 0;
}

static void test_many_abrupt_connections(void **state)
{
	enum { TOTAL = 300, BATCH = 50 };
	struct sp_raw conns[BATCH];

	(void)state;
	for (int done = 0; done < TOTAL; done += BATCH) {
		for (int i = 0; i < BATCH; i++)
			abrupt_one(&main_broker, done + i, &conns[i]);
		for (int i = 0; i < BATCH; i++) {
			if ((done + i) % 3)
				sp_raw_abort(&conns[i]);
			else
				sp_raw_close(&conns[i]);
		}
	}
	/* a complete message 1, then gone before reading message 2 */
	for (int i = 0; i < 20; i++) {
		struct sp_raw_opts o = { .hook = stop_after_msg1 };
		struct sp_raw c;

		client_init(&c);
		assert_int_equal(sp_raw_connect(&c, main_broker.port), 0);
		assert_int_equal(sp_raw_handshake(&c, i % 2 ? SP_PREAMBLE_PATTERN_XX
							 : SP_PREAMBLE_PATTERN_IK,
						  main_broker.server_pub, &o), 1);
		if (i % 4 < 2)
			sp_raw_abort(&c);
		else
			sp_raw_close(&c);
	}
	check_main("hundreds of connections dropped mid-handshake");
}

/* --- brokers of their own: timers and limits ----------------------------------------- */

/*
 * The broker's log never holds a key (the server's pair, any device key this
 * file used, any recipient it named) nor a body, and no sanitizer report.
 */
static void check_log_hygiene(const struct sp_it_broker *b)
{
	char key_path[320], key_hex[2 * SP_KEY_LEN + 2];
	uint8_t priv[SP_KEY_LEN];
	size_t bl = 0;
	FILE *f;
	int n;

	snprintf(key_path, sizeof(key_path), "%s/server.key", b->data_dir);
	f = fopen(key_path, "r");
	assert_non_null(f);
	assert_non_null(fgets(key_hex, sizeof(key_hex), f));
	fclose(f);
	assert_int_equal(sodium_hex2bin(priv, sizeof(priv), key_hex, 2 * SP_KEY_LEN, NULL, &bl,
					NULL), 0);
	n = sp_it_log_count_key(b, priv);
	sodium_memzero(priv, sizeof(priv));
	sodium_memzero(key_hex, sizeof(key_hex));
	if (n != 0)
		fprintf(stderr, "[it] the broker log holds the server private key (%d lines)\n", n);
	assert_int_equal(n, 0);
	n = sp_it_log_count_key(b, b->server_pub);
	if (n != 0)
		fprintf(stderr, "[it] the broker log holds its public key (%d lines)\n", n);
	assert_int_equal(n, 0);
	for (size_t i = 0; i < n_known_keys; i++) {
		n = sp_it_log_count_key(b, known_keys[i]);
		if (n != 0)
			fprintf(stderr, "[it] the broker log holds a %s (%d lines)\n",
				known_key_what[i], n);
		assert_int_equal(n, 0);
	}
	n = sp_it_log_count(b, marker);
	if (n != 0)
		fprintf(stderr, "[it] the broker log holds envelope body bytes (%d lines)\n", n);
	assert_int_equal(n, 0);
	assert_int_equal(sp_it_log_sanitizer_reports(b), 0);
}

/*
 * The brokers started by single tests. If a test fails half-way, its
 * teardown shows the end of that broker's log, kills it and removes its
 * directory, so failures leave nothing running and nothing in /tmp.
 */
static struct sp_it_broker own_broker;

static int own_teardown(void **state)
{
	(void)state;
	if (own_broker.pid > 0 && !own_broker.reaped) {
		fprintf(stderr, "[it] the test failed with its broker running; its log ends:\n");
		sp_it_log_tail(&own_broker, 40);
		sp_it_broker_kill(&own_broker);
		sp_it_rmrf(own_broker.data_dir);
	}
	memset(&own_broker, 0, sizeof(own_broker));
	return 0;
}

static void start_own(struct sp_it_broker *b, const char *const *args)
{
	int rc = sp_it_broker_start(b, NULL, args);

	if (rc)
		fprintf(stderr, "[it] could not start a broker: %s\n", strerror(-rc));
	assert_int_equal(rc, 0);
	remember_key(b->server_pub, "server public key");
}

static void stop_own(struct sp_it_broker *b)
{
	check_log_hygiene(b);
	assert_int_equal(broker_stop_checked(b), 0);
	sp_it_rmrf(b->data_dir);
}

static void test_handshake_timeout(void **state)
{
	static const char *const args[] = { "--handshake-timeout", "300", "--hello-timeout", "300",
					    "--log-rate", "1000000", NULL };
	/* The first four never complete message 1: hello-timeout closes them;
	 * the last one sent it: handshake-timeout. */
	static const char *const what[] = {
		"handshake timeout: connected, nothing sent",
		"handshake timeout: 5 bytes of the preamble",
		"handshake timeout: preamble only",
		"handshake timeout: preamble and half of message 1",
		"handshake timeout: XX message 1, message 3 never sent",
	};
	enum { N = sizeof(what) / sizeof(what[0]) };
	struct sp_it_broker *const bp = &own_broker;
	struct sp_raw c[N];
	struct pair p;
	uint8_t pre[SP_PREAMBLE_LEN];

	(void)state;
	start_own(bp, args);
	pair_open(&p, bp);
	sp_raw_preamble(pre, SP_PREAMBLE_PATTERN_IK);
	for (int i = 0; i < N; i++) {
		client_init(&c[i]);
		assert_int_equal(sp_raw_connect(&c[i], bp->port), 0);
	}
	assert_int_equal(sp_raw_send_bytes(&c[1], pre, 5), 0);
	assert_int_equal(sp_raw_send_bytes(&c[2], pre, sizeof(pre)), 0);
	{
		uint8_t half[2 + 40] = { 0, 96 + 16 };

		assert_int_equal(sp_raw_send_bytes(&c[3], pre, sizeof(pre)), 0);
		assert_int_equal(sp_raw_send_bytes(&c[3], half, sizeof(half)), 0);
	}
	{
		/* XX: message 1 sent, message 2 read, then silence */
		struct sp_raw_opts o = { .hook = stop_after_msg1 };
		uint8_t m2[SP_NOISE_MSG_MAX];
		size_t m2_len = 0;

		assert_int_equal(sp_raw_handshake(&c[4], SP_PREAMBLE_PATTERN_XX, NULL, &o), 1);
		assert_int_equal(sp_raw_recv_msg(&c[4], m2, sizeof(m2), &m2_len, WAIT_MS), 0);
		c[4].bytes_in = 0;
	}
	for (int i = 0; i < N; i++) {
		size_t bytes = 0;
		int rc = sp_raw_wait_closed(&c[i], CLOSE_BOUND_MS, &bytes);

		if (rc)
			fprintf(stderr, "[it] %s: still open after %d ms (timeout 300 ms)\n",
				what[i], CLOSE_BOUND_MS);
		assert_int_equal(rc, 0);
		if (bytes)
			fprintf(stderr, "[it] %s: %zu bytes before the close\n", what[i], bytes);
		assert_int_equal(bytes, 0);
		sp_raw_close(&c[i]);
	}
	expect_log(bp, "reason=hello_timeout", N - 1, "hello timeouts");
	expect_log(bp, "reason=handshake_timeout", 1, "handshake timeouts");
	assert_int_equal(log_count(bp, "reason=hello_timeout"), N - 1);
	assert_int_equal(log_count(bp, "reason=handshake_timeout"), 1);
	/* the pair, established long before, was not hit by the handshake timer */
	check_healthy(bp, &p, NULL, "handshake timeouts");
	pair_close(&p);
	stop_own(bp);
}

static void check_rss(pid_t pid, long *max_kb, const char *what)
{
	long kb = rss_kb(pid);

	assert_true(kb > 0);
	if (kb > *max_kb)
		*max_kb = kb;
	if (kb >= RSS_BOUND_KB)
		fprintf(stderr, "[it] %s: broker VmRSS %ld kB >= bound %d kB\n", what, kb,
			RSS_BOUND_KB);
	assert_true(kb < RSS_BOUND_KB);
}

static void test_slow_receiver(void **state)
{
	static const char *const args[] = { "--sendq-max", "65536", "--log-rate", "1000000",
					    NULL };
	enum { BODY = 60000, FLOOD_MAX = 2000, REFUSALS_WANTED = 100 };
	static uint8_t body[BODY];
	struct sp_it_broker *const bp = &own_broker;
	struct sp_raw r, s;
	struct pair p;
	size_t delivered = 0, busy = 0, offline = 0, i;
	long rss_max = 0;
	bool r_closed = false;

	(void)state;
	start_own(bp, args);
	pair_open(&p, bp);
	client_open(&r, bp, SP_PREAMBLE_PATTERN_IK);
	client_open(&s, bp, SP_PREAMBLE_PATTERN_IK);
	make_body(body, sizeof(body));
	/* First, a body this large reaches a receiver that does read. */
	{
		uint64_t id = next_client_id++;
		uint32_t st = 0;
		struct collected col;

		assert_int_equal(sp_raw_send_envelope(&s, p.b.s_pub, id, body, sizeof(body)), 0);
		assert_int_equal(sp_raw_expect_result(&s, id, &st, WAIT_MS), 0);
		expect_status(st, SP_STATUS_ACCEPTED, "a 60000-byte envelope to a reading device");
		collect(&p.b, 0, 1, &col, "a 60000-byte envelope to a reading device");
		assert_int_equal(col.del_len[0], sizeof(body));
		assert_memory_equal(col.del_body[0], body, sizeof(body));
		collected_free(&col);
	}

	/* Online-only: a durable envelope for a full queue waits in the mailbox
	 * (its quota bounds it); these must be held in memory or refused. */
	for (i = 0; i < FLOOD_MAX && busy + offline < REFUSALS_WANTED; i++) {
		static uint8_t sbuf[BODY + 128];
		uint64_t id = next_client_id++;
		uint32_t st = 0;
		size_t soff = 0;
		int rc;

		assert_int_equal(sp_raw_put_send(sbuf, sizeof(sbuf), &soff, r.s_pub, SP_KEY_LEN, id,
						 SP_SEND_ONLINE_ONLY, body, sizeof(body)), 0);
		assert_int_equal(sp_raw_send_plain(&s, sbuf, soff), 0);
		rc = sp_raw_expect_result(&s, id, &st, WAIT_MS);
		if (rc)
			fprintf(stderr, "[it] flooding a non-reading receiver: envelope %zu: no "
				"SendResult (%s)\n", i, strerror(-rc));
		assert_int_equal(rc, 0);
		if (st == SP_STATUS_DELIVERED)
			delivered++;
		else if (st == SP_STATUS_ERR_RECIPIENT_BUSY)
			busy++;
		else if (st == SP_STATUS_ERR_OFFLINE)
			offline++;   /* the receiver was closed as a slow consumer */
		else
			expect_status(st, SP_STATUS_ERR_RECIPIENT_BUSY, "flooding a receiver");
		if (i % 25 == 0) {
			exchange_checked(&p.a, &p.b, "others during the flood");
			check_rss(bp->pid, &rss_max, "flooding a non-reading receiver");
		}
	}
	check_rss(bp->pid, &rss_max, "flooding a non-reading receiver");
	fprintf(stderr, "[it] flood: %zu envelopes of %d bytes: %zu delivered, %zu busy, "
		"%zu offline; broker VmRSS max %ld kB\n", i, BODY, delivered, busy, offline,
		rss_max);
	if (busy + offline < REFUSALS_WANTED)
		fprintf(stderr, "[it] the broker accepted %zu x %d bytes for a receiver that never "
			"reads: its queue is not bounded\n", delivered, BODY);
	assert_true(busy + offline >= REFUSALS_WANTED);

	/* The receiver now reads: what was DELIVERED arrives intact, then either
	 * the GoAway SLOW_CONSUMER and the close, or (still connected) it is usable. */
	{
		size_t got = 0;

		for (;;) {
			struct sp_raw_frame f;
			int rc = sp_raw_recv_frame(&r, &f, 1000);

			if (rc == -ETIMEDOUT)
				break;
			if (rc == -ENOTCONN || rc == -ECONNRESET) {
				r_closed = true;
				break;
			}
			assert_int_equal(rc, 0);
			if (f.type == SP_FRAME_GOAWAY) {
				expect_status(f.status, SP_STATUS_GOAWAY_SLOW_CONSUMER,
					      "GoAway to the slow receiver");
				assert_int_equal(sp_raw_wait_closed(&r, WAIT_MS, NULL), 0);
				r_closed = true;
				break;
			}
			if (f.type == SP_FRAME_DRAINED)
				continue;       /* its (empty) backlog, before the flood */
			assert_int_equal(f.type, SP_FRAME_DELIVER);
			assert_int_equal(f.body_len, sizeof(body));
			assert_memory_equal(f.body, body, sizeof(body));
			got++;
		}
		fprintf(stderr, "[it] slow receiver read %zu envelopes, then %s\n", got,
			r_closed ? "was closed" : "was still connected");
		if (r_closed)
			expect_log(bp, "reason=slow_consumer", 1, "the slow receiver");
		if (!r_closed) {
			/* kept: nothing DELIVERED may be lost, and it works again */
			assert_int_equal(got, delivered);
			assert_int_equal(offline, 0);
			exchange_checked(&s, &r, "the slow receiver after catching up");
		}
	}
	sp_raw_close(&r);
	sp_raw_close(&s);
	check_healthy(bp, &p, NULL, "a receiver that never reads");
	pair_close(&p);
	stop_own(bp);
}

static void test_non_reading_sender(void **state)
{
	static const char *const args[] = { "--sendq-max", "65536", "--log-rate", "1000000",
					    NULL };
	enum { PER_MSG = 1000, MSGS_MAX = 400 };
	uint8_t offline_pub[SP_KEY_LEN], offline_priv[SP_KEY_LEN];
	struct timeval tv = { .tv_sec = 2 };
	struct sp_it_broker *const bp = &own_broker;
	struct sp_raw x;
	struct pair p;
	uint8_t *plain = malloc(SP_TRANSPORT_PLAINTEXT_MAX);
	long rss_max = 0;
	int m, send_rc = 0, rc, skipped = 0;
	uint32_t code = 0;

	(void)state;
	assert_non_null(plain);
	sp_noise_keypair(offline_pub, offline_priv);
	remember_key(offline_pub, "offline recipient");
	start_own(bp, args);
	pair_open(&p, bp);
	client_open(&x, bp, SP_PREAMBLE_PATTERN_IK);
	setsockopt(x.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

	/* PER_MSG empty Sends per transport message, each answered by a SendResult
	 * that this client never reads. */
	for (m = 0; m < MSGS_MAX; m++) {
		size_t off = 0;

		for (int k = 0; k < PER_MSG; k++)
			assert_int_equal(sp_raw_put_send(plain, SP_TRANSPORT_PLAINTEXT_MAX,
							 &off, offline_pub, SP_KEY_LEN,
							 next_client_id++, 0, NULL, 0), 0);
		send_rc = sp_raw_send_plain(&x, plain, off);
		if (send_rc)
			break;
		if (m % 10 == 0) {
			exchange_checked(&p.a, &p.b, "others while a sender never reads");
			check_rss(bp->pid, &rss_max, "a sender that never reads its results");
		}
	}
	check_rss(bp->pid, &rss_max, "a sender that never reads its results");
	fprintf(stderr, "[it] non-reading sender: %d messages of %d Sends written, last write: %s;"
		" broker VmRSS max %ld kB\n", m, PER_MSG, send_rc ? strerror(-send_rc) : "ok",
		rss_max);
	/* Now read: the results queued for it, then GoAway SLOW_CONSUMER and the close. */
	rc = sp_raw_expect_goaway(&x, &code, CLOSE_BOUND_MS, &skipped);
	if (rc == 0)
		expect_status(code, SP_STATUS_GOAWAY_SLOW_CONSUMER, "GoAway to a sender");
	else if (rc != -ENOTCONN && rc != -ECONNRESET)
		fprintf(stderr, "[it] a sender that never reads was not closed (%s after %d "
			"results;"
			" last write %s): %s\n", strerror(-rc), skipped,
			send_rc ? strerror(-send_rc) : "ok",
			send_rc == -ETIMEDOUT ? "the broker stopped reading it but kept it open"
					      : "the broker kept reading and answering it");
	assert_true(rc == 0 || rc == -ENOTCONN || rc == -ECONNRESET);
	fprintf(stderr, "[it] non-reading sender: %s after reading %d results\n",
		rc == 0 ? "GoAway SLOW_CONSUMER and close" : "closed without a GoAway", skipped);
	expect_log(bp, "reason=slow_consumer", 1, "a sender that never reads");
	sp_raw_close(&x);
	free(plain);
	check_healthy(bp, &p, NULL, "a sender that never reads");
	pair_close(&p);
	stop_own(bp);
}

/* Connect + handshake, retrying for up to bound_ms (a slot is freed asynchronously). */
static int open_retry(struct sp_raw *c, const struct sp_it_broker *b, int bound_ms)
{
	int rc = -ETIMEDOUT;

	client_init(c);
	for (int waited = 0; waited <= bound_ms; waited += 50) {
		rc = sp_raw_connect(c, b->port);
		if (rc == 0)
			rc = sp_raw_handshake(c, SP_PREAMBLE_PATTERN_IK, b->server_pub, NULL);
		if (rc == 0)
			return 0;
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		c->bytes_in = 0;
		usleep(50 * 1000);
	}
	return rc;
}

static void test_max_conns(void **state)
{
	static const char *const args[] = { "--max-conns", "8", "--log-rate", "1000000", NULL };
	enum { MAX = 8 };
	struct sp_it_broker *const bp = &own_broker;
	struct sp_raw cs[MAX], extra, again;
	struct pair p;
	int rc;

	(void)state;
	start_own(bp, args);
	/* the readiness probe's connection may still hold a slot for a moment */
	for (int i = 0; i < MAX; i++) {
		rc = open_retry(&cs[i], bp, CLOSE_BOUND_MS);
		if (rc)
			fprintf(stderr, "[it] --max-conns 8: connection %d refused (%s)\n", i + 1,
				strerror(-rc));
		assert_int_equal(rc, 0);
	}
	/* all 8 proven first (an envelope each way): a newcomer may displace
	 * a connection whose proof the broker has not read yet (with shards,
	 * one that is being handed to its home shard), and this test is about
	 * the full case, where every connection is proven */
	for (int i = 0; i < MAX; i++)
		exchange_checked(&cs[i], &cs[(i + 1) % MAX], "--max-conns 8: the 8 before the 9th");
	/* the 9th: closed, silently */
	client_init(&extra);
	assert_int_equal(sp_raw_connect(&extra, bp->port), 0);
	rc = sp_raw_handshake(&extra, SP_PREAMBLE_PATTERN_IK, bp->server_pub, NULL);
	expect_handshake_refused(rc, &extra, "--max-conns 8: the 9th connection");
	expect_log(bp, "reason=max_conns", 1, "--max-conns 8: the 9th connection");
	sp_raw_close(&extra);
	/* the 8 are untouched */
	for (int i = 0; i < MAX; i++)
		exchange_checked(&cs[i], &cs[(i + 1) % MAX], "--max-conns 8: the 8 after the 9th");
	/* a slot freed by a close is usable again */
	sp_raw_close(&cs[0]);
	rc = open_retry(&again, bp, CLOSE_BOUND_MS);
	assert_int_equal(rc, 0);
	exchange_checked(&again, &cs[1], "--max-conns 8: a connection in a freed slot");
	sp_raw_close(&again);
	p.a = cs[1];
	p.b = cs[2];
	for (int i = 3; i < MAX; i++)
		sp_raw_close(&cs[i]);
	/* check_healthy opens one more: 3 in use, well under the cap */
	check_healthy(bp, &p, NULL, "connections over --max-conns");
	pair_close(&p);
	stop_own(bp);
}

/* --- the log ------------------------------------------------------------------------ */

static void test_log_hygiene(void **state)
{
	(void)state;
	check_log_hygiene(&main_broker);
}

/* A case on the shared broker, with a pair connected before it. */
#define CASE(t) cmocka_unit_test_setup_teardown(t, case_setup, case_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_low_order_points_are_low_order),
		CASE(test_preamble_garbage),
		CASE(test_preamble_unknown_fields),
		CASE(test_ik_wrong_server_key),
		CASE(test_xx_corrupted_msg3),
		CASE(test_low_order_static_key),
		CASE(test_low_order_ephemeral_key),
		CASE(test_bad_client_hello),
		CASE(test_length_prefix_limits),
		CASE(test_transport_length_zero),
		CASE(test_truncated_frames),
		CASE(test_malformed_frames),
		CASE(test_wrong_direction),
		CASE(test_flipped_ciphertext),
		CASE(test_legal_boundaries),
		CASE(test_fragmented_and_coalesced),
		CASE(test_bad_recipient),
		CASE(test_too_large),
		CASE(test_replayed_ik_msg1),
		CASE(test_half_message_then_disconnect),
		CASE(test_many_abrupt_connections),
		cmocka_unit_test(test_log_hygiene),
	};
	/* Brokers of their own, each with the option its case needs. */
	const struct CMUnitTest own_tests[] = {
		cmocka_unit_test_teardown(test_handshake_timeout, own_teardown),
		cmocka_unit_test_teardown(test_slow_receiver, own_teardown),
		cmocka_unit_test_teardown(test_non_reading_sender, own_teardown),
		cmocka_unit_test_teardown(test_max_conns, own_teardown),
	};
	int failed = 0;

	failed += cmocka_run_group_tests_name("shared broker", tests, group_setup, group_teardown);
	/*
	 * Again with 4 receive buffers of 64 bytes: every message spans many
	 * receives and the buffer ring runs dry (-ENOBUFS), so the broker's
	 * reassembly and re-arm paths meet every bad input too.
	 */
	group_args = tiny_buffer_args;
	failed += cmocka_run_group_tests_name("shared broker, tiny receive buffers", tests,
					      group_setup, group_teardown);
	failed += cmocka_run_group_tests_name("brokers of their own", own_tests, NULL, NULL);
	return failed;
}
