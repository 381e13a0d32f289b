/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_client.c: libsealpost: keys, hex, envelopes, argument checks, and the
 * client's protocol state machine against a scripted broker.
 *
 * The scripted broker is a real protocol implementation built from the same
 * lib/ modules the daemon uses (sp_noise handshake as responder,
 * transport ciphers, sp_frame), listening on 127.0.0.1 in a thread. Each
 * script says what the broker sends and checks what the client sent, so the
 * tests can produce what a well-behaved broker never would (malformed
 * frames, wrong-direction frames, bad tags).
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "sealpost.h"
#include "sp_frame.h"
#include "sp_keyfile.h"
#include "sp_noise.h"
#include "sp_seal.h"

/* ----------------------------------------------------------- keys, hex --- */

static char tmpdir[64];

static int setup_dir(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/sp_test_client.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_key_roundtrip(void **state)
{
	struct sealpost_key *a = NULL, *b = NULL, *c = NULL;
	uint8_t pa[32], pb[32], pc[32], priv[32];
	char path[128];
	struct stat st;

	(void)state;
	assert_int_equal(sealpost_key_generate(&a), 0);
	assert_int_equal(sealpost_key_generate(&c), 0);
	sealpost_key_public(a, pa);
	sealpost_key_public(c, pc);
	assert_memory_not_equal(pa, pc, 32);
	assert_true(sp_noise_key_valid(pa));

	snprintf(path, sizeof(path), "%s/dev.key", tmpdir);
	assert_int_equal(sealpost_key_save(a, path), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 65);
	/* Never overwrite a key. */
	assert_int_equal(sealpost_key_save(c, path), -EEXIST);

	assert_int_equal(sealpost_key_load(&b, path), 0);
	sealpost_key_public(b, pb);
	assert_memory_equal(pa, pb, 32);

	/* The file is the private key in hex: from_private gives the same pair. */
	assert_int_equal(sp_keyfile_read_private(path, priv), 0);
	sealpost_key_free(b);
	b = NULL;
	assert_int_equal(sealpost_key_from_private(&b, priv), 0);
	sealpost_key_public(b, pb);
	assert_memory_equal(pa, pb, 32);

	/* A key others can read is refused; a missing one is -ENOENT. */
	assert_int_equal(chmod(path, 0644), 0);
	sealpost_key_free(b);
	b = NULL;
	assert_int_equal(sealpost_key_load(&b, path), -SEALPOST_EKEYMODE);
	assert_string_equal(sealpost_strerror(-SEALPOST_EKEYMODE),
			    "key file is readable by group or others: chmod 600 it");
	assert_null(b);
	snprintf(path, sizeof(path), "%s/missing.key", tmpdir);
	assert_int_equal(sealpost_key_load(&b, path), -ENOENT);

	assert_int_equal(sealpost_key_generate(NULL), -EINVAL);
	assert_int_equal(sealpost_key_load(&b, NULL), -EINVAL);
	sealpost_key_free(NULL);
	sodium_memzero(priv, sizeof(priv));
	sealpost_key_free(a);
	sealpost_key_free(c);
}

static void test_hex(void **state)
{
	uint8_t k[32], back[32];
	char hex[65];
	size_t i;

	(void)state;
	for (i = 0; i < 32; i++)
		k[i] = (uint8_t)(i * 7 + 0xa0);
	sealpost_key_to_hex(k, hex);
	assert_int_equal(strlen(hex), 64);
	assert_string_equal(hex, "a0a7aeb5bcc3cad1d8dfe6edf4fb020910171e252c333a41484f565d646b7279");
	assert_int_equal(sealpost_key_from_hex(back, hex), 0);
	assert_memory_equal(k, back, 32);
	/* Upper case is accepted. */
	assert_int_equal(sealpost_key_from_hex(back,
		"A0A7AEB5BCC3CAD1D8DFE6EDF4FB020910171E252C333A41484F565D646B7279"), 0);
	assert_memory_equal(k, back, 32);

	memset(back, 0x55, 32);
	hex[63] = '\0';
	assert_int_equal(sealpost_key_from_hex(back, hex), -EINVAL);           /* 63 chars */
	hex[63] = '9';
	assert_int_equal(sealpost_key_from_hex(back, "zz"), -EINVAL);
	hex[10] = 'g';
	assert_int_equal(sealpost_key_from_hex(back, hex), -EINVAL);           /* not hex */
	assert_int_equal(sealpost_key_from_hex(back,
		"a0a7aeb5bcc3cad1d8dfe6edf4fb020910171e252c333a41484f565d646b72790"), -EINVAL);
	assert_int_equal(sealpost_key_from_hex(back, ""), -EINVAL);
	assert_int_equal(sealpost_key_from_hex(back, NULL), -EINVAL);
	for (i = 0; i < 32; i++)
		assert_int_equal(back[i], 0x55);   /* untouched on error */
}

static void test_status_string(void **state)
{
	(void)state;
	assert_string_equal(sealpost_status_string(SEALPOST_STATUS_DELIVERED), "delivered");
	assert_string_equal(sealpost_status_string(SEALPOST_STATUS_ERR_OFFLINE), "err_offline");
	assert_string_equal(sealpost_status_string(999), "unknown");
}

static void test_envelope(void **state)
{
	struct sealpost_key *a, *b;
	uint8_t pa[32], pb[32], sender[32], env[200], out[200], zero[32] = { 0 };
	const char msg[] = "hello, sealed world";
	size_t env_len, out_len, i;

	(void)state;
	assert_int_equal(sealpost_key_generate(&a), 0);
	assert_int_equal(sealpost_key_generate(&b), 0);
	sealpost_key_public(a, pa);
	sealpost_key_public(b, pb);

	assert_int_equal(sealpost_envelope_seal(a, pb, msg, sizeof(msg), env, sizeof(env), &env_len), 0);
	assert_int_equal(env_len, sizeof(msg) + SEALPOST_SEAL_OVERHEAD);
	assert_int_equal(env[0], 1);
	assert_int_equal(sealpost_envelope_open(b, env, env_len, sender, out, sizeof(out), &out_len), 0);
	assert_int_equal(out_len, sizeof(msg));
	assert_memory_equal(out, msg, sizeof(msg));
	assert_memory_equal(sender, pa, 32);

	/* Only the recipient opens it. */
	assert_int_equal(sealpost_envelope_open(a, env, env_len, sender, out, sizeof(out), &out_len),
			 -EBADMSG);
	/* Any flipped byte fails. */
	for (i = 0; i < env_len; i += 13) {
		env[i] ^= 0x40;
		assert_int_equal(sealpost_envelope_open(b, env, env_len, sender, out, sizeof(out),
							&out_len), -EBADMSG);
		env[i] ^= 0x40;
	}
	assert_int_equal(sealpost_envelope_open(b, env, env_len - 1, sender, out, sizeof(out), &out_len),
			 -EBADMSG);

	/* Empty message, NULL pointer allowed for it. */
	assert_int_equal(sealpost_envelope_seal(a, pb, NULL, 0, env, sizeof(env), &env_len), 0);
	assert_int_equal(env_len, SEALPOST_SEAL_OVERHEAD);
	assert_int_equal(sealpost_envelope_open(b, env, env_len, sender, out, sizeof(out), &out_len), 0);
	assert_int_equal(out_len, 0);

	/* Size and argument checks. */
	assert_int_equal(sealpost_envelope_seal(a, pb, msg, sizeof(msg), env, sizeof(msg) + 96, &env_len),
			 -EMSGSIZE);
	assert_int_equal(sealpost_envelope_seal(a, pb, msg, SEALPOST_MESSAGE_MAX + 1, env, sizeof(env),
						&env_len), -EMSGSIZE);
	assert_int_equal(sealpost_envelope_seal(a, zero, msg, sizeof(msg), env, sizeof(env), &env_len),
			 -EINVAL);
	assert_int_equal(sealpost_envelope_seal(NULL, pb, msg, 1, env, sizeof(env), &env_len), -EINVAL);
	assert_int_equal(sealpost_envelope_seal(a, pb, NULL, 5, env, sizeof(env), &env_len), -EINVAL);
	sealpost_key_free(a);
	sealpost_key_free(b);
}

static void test_connect_args(void **state)
{
	static const char *const bad[] = {
		"127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:80x",
		"::1:7400", "[::1]7400", "[::1", ":7400", "127.0.0.1:+80", "127.0.0.1:-1",
	};
	struct sealpost_client *c = NULL;
	struct sealpost_key *k;
	uint8_t zero[32] = { 0 };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof(sa);
	char addr[64];
	size_t i;
	int fd;

	(void)state;
	assert_int_equal(sealpost_key_generate(&k), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(sealpost_client_connect(&c, bad[i], k, NULL, 1000), -EINVAL);
	assert_int_equal(sealpost_client_connect(NULL, "127.0.0.1:1", k, NULL, 1000), -EINVAL);
	assert_int_equal(sealpost_client_connect(&c, "127.0.0.1:1", NULL, NULL, 1000), -EINVAL);
	/* A low-order server key can never be right. */
	assert_int_equal(sealpost_client_connect(&c, "127.0.0.1:1", k, zero, 1000), -EINVAL);
	assert_null(c);

	/* A port nobody listens on: bind one, learn it, close it. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &slen), 0);
	close(fd);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sa.sin_port));
	assert_int_equal(sealpost_client_connect(&c, addr, k, NULL, 5000), -ECONNREFUSED);
	assert_null(c);
	sealpost_client_close(NULL);
	sealpost_key_free(k);
}

/* ------------------------------------------------------ scripted broker --- */

struct peer;
typedef void (*script_fn)(struct peer *p);

struct peer {
	int lfd, fd;
	uint16_t port;
	char addr[32];
	uint8_t priv[32], pub[32];      /* the broker's static key */
	uint8_t client_pub[32];         /* learned in the handshake */
	int pattern;                    /* from the preamble */
	uint32_t max_envelope, max_transport;
	struct sp_noise_transport t;
	script_fn script;
	pthread_t thread;
	int hs_result;                  /* 0, or why the handshake failed */
	int second_hs_result;           /* peer_main_twice: the second connection's */
	int failures;                   /* checks the script failed (asserted by the test) */
	void *arg;
};

#define PEER_CHECK(p, cond) do { if (!(cond)) { \
	fprintf(stderr, "peer check failed: %s (line %d)\n", #cond, __LINE__); \
	(p)->failures++; } } while (0)

static int read_full(int fd, uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = recv(fd, buf, len, 0);

		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One length-prefixed message into buf (>= 65535 bytes); its length or -1. */
static int read_msg(int fd, uint8_t *buf)
{
	uint8_t pre[2];
	size_t len;

	if (read_full(fd, pre, 2) < 0)
		return -1;
	len = (size_t)pre[0] << 8 | pre[1];
	if (len == 0 || read_full(fd, buf, len) < 0)
		return -1;
	return (int)len;
}

static int write_msg(int fd, const uint8_t *msg, size_t len)
{
	uint8_t pre[2] = { (uint8_t)(len >> 8), (uint8_t)len };

	if (write_full(fd, pre, 2) < 0)
		return -1;
	return write_full(fd, msg, len);
}

static int peer_handshake(struct peer *p)
{
	struct sp_noise_handshake hs;
	uint8_t pre[8], in[2048], out[2048], payload[2048], hello[64];
	struct sp_hello sh = { .protocol_version = 1, .max_envelope = p->max_envelope,
			       .max_transport = p->max_transport }, ch;
	size_t plen, olen, hlen;
	int n, r = -EPROTO;

	if (read_full(p->fd, pre, 8) < 0 || memcmp(pre, "SEAL\x01", 5) || pre[6] || pre[7])
		return -EPROTO;
	p->pattern = pre[5];
	if (sp_noise_handshake_init(&hs, pre[5] == 1 ? SP_NOISE_IK : SP_NOISE_XX,
				    SP_NOISE_RESPONDER, pre, 8, p->priv, NULL) < 0)
		goto out;
	if (sp_frame_server_hello_encode(&sh, hello, sizeof(hello), &hlen) < 0)
		goto out;
	n = read_msg(p->fd, in);
	if (n < 0)
		goto out;
	r = sp_noise_handshake_read(&hs, in, (size_t)n, payload, sizeof(payload), &plen);
	if (r < 0)
		goto out;   /* e.g. IK to another key: close, say nothing */
	if (pre[5] == 1) {
		r = sp_frame_client_hello_decode(payload, plen, &ch);
		if (r < 0 || ch.protocol_version != 1)
			goto out;
	}
	r = sp_noise_handshake_write(&hs, hello, hlen, out, sizeof(out), &olen);
	if (r < 0 || write_msg(p->fd, out, olen) < 0)
		goto out;
	if (pre[5] == 2) {
		r = -EPROTO;
		n = read_msg(p->fd, in);
		if (n < 0)
			goto out;
		r = sp_noise_handshake_read(&hs, in, (size_t)n, payload, sizeof(payload), &plen);
		if (r < 0)
			goto out;
		r = sp_frame_client_hello_decode(payload, plen, &ch);
		if (r < 0 || ch.protocol_version != 1)
			goto out;
	}
	r = sp_noise_handshake_remote_static(&hs, p->client_pub);
	if (r == 0)
		r = sp_noise_handshake_split(&hs, &p->t);
	if (r == 0 && pre[5] == 1) {
		/* IK: the client proves it holds the session keys with an empty
		 * transport message before anything else (PROTOCOL.md 4). */
		size_t plain = 1;

		n = read_msg(p->fd, in);
		r = n < 0 ? -EPROTO : sp_noise_decrypt(&p->t.rx, in, (size_t)n, &plain);
		if (r == 0 && plain != 0)
			r = -EPROTO;
	}
out:
	sp_noise_handshake_wipe(&hs);
	return r < 0 ? r : 0;
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;

	p->fd = accept(p->lfd, NULL, NULL);
	if (p->fd < 0) {
		p->hs_result = -errno;
		return NULL;
	}
	p->hs_result = peer_handshake(p);
	if (p->hs_result == 0 && p->script)
		p->script(p);
	close(p->fd);
	p->fd = -1;
	return NULL;
}

/* The same peer for a second connection (the XX probe after a failed IK);
 * hs_result stays the first's. */
static void *peer_main_twice(void *arg)
{
	struct peer *p = arg;
	int first;

	peer_main(p);
	first = p->hs_result;
	peer_main(p);
	p->second_hs_result = p->hs_result;
	p->hs_result = first;
	return NULL;
}

static void peer_start(struct peer *p, script_fn script, void *arg)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof(sa);

	memset(p, 0, sizeof(*p));
	sp_noise_keypair(p->pub, p->priv);
	p->max_envelope = 64000;
	p->max_transport = 65519;
	p->script = script;
	p->arg = arg;
	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(p->lfd >= 0);
	assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(p->lfd, 4), 0);
	assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&sa, &slen), 0);
	p->port = ntohs(sa.sin_port);
	snprintf(p->addr, sizeof(p->addr), "127.0.0.1:%u", p->port);
}

static void peer_run(struct peer *p)
{
	assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

static void peer_join(struct peer *p)
{
	assert_int_equal(pthread_join(p->thread, NULL), 0);
	close(p->lfd);
	sp_noise_transport_wipe(&p->t);
	assert_int_equal(p->failures, 0);
}

/* Sends a transport message holding the plaintext pt[0..len). */
static int peer_send_plain(struct peer *p, const uint8_t *pt, size_t len)
{
	static __thread uint8_t buf[65536];

	memcpy(buf, pt, len);
	if (sp_noise_encrypt(&p->t.tx, buf, len) < 0)
		return -1;
	return write_msg(p->fd, buf, len + 16);
}

/* Receives one transport message; plaintext into buf, its length or -1. */
static int peer_recv_plain(struct peer *p, uint8_t *buf)
{
	size_t plain;
	int n = read_msg(p->fd, buf);

	if (n < 0 || sp_noise_decrypt(&p->t.rx, buf, (size_t)n, &plain) < 0)
		return -1;
	return (int)plain;
}

static void frames_put(uint8_t *buf, size_t *off, const struct sp_frame *f)
{
	assert_int_equal(sp_frame_put(buf, 65519, off, f), 0);
}

/* The scripted broker serves one connection: these tests see how a
 * connection ends, so the client must not reconnect. */
static int connect_once(struct sealpost_client **c, const char *addr,
			const struct sealpost_key *k, const uint8_t *pub)
{
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;

	o.flags = SEALPOST_CONNECT_NO_RECONNECT;
	return sealpost_client_connect_opts(c, addr, k, pub, 10000, &o);
}

/* --- script: ping, coalesced sends, results, broker ping, GoAway --- */

struct basic_arg {
	uint8_t recipient_priv[32];
	const char *msgs[3];
};

static void script_basic(struct peer *p)
{
	struct basic_arg *a = p->arg;
	static uint8_t in[65536], out[65536], opened[256];
	struct sp_frame f, r;
	size_t off = 0, oo = 0, olen;
	uint8_t sender[32];
	uint64_t first = 0;
	int n, sends = 0, pings = 0;

	/* Ping + three Sends, queued before one flush: ONE transport message. */
	n = peer_recv_plain(p, in);
	PEER_CHECK(p, n > 0);
	while (n > 0 && sp_frame_next(in, (size_t)n, &off, &f) == 0) {
		if (f.type == SP_FRAME_PING) {
			PEER_CHECK(p, f.u.ping.id == 1);
			pings++;
			r = (struct sp_frame){ .type = SP_FRAME_PONG, .u.ping.id = f.u.ping.id };
			frames_put(out, &oo, &r);
		} else if (f.type == SP_FRAME_SEND) {
			PEER_CHECK(p, sends < 3);
			/* Ids count up from a random start below 2^63; plain sends
			 * are durable (no flags). */
			if (sends == 0)
				first = f.u.send.client_id;
			PEER_CHECK(p, first != 0 && first < (uint64_t)1 << 63);
			PEER_CHECK(p, f.u.send.client_id == first + (uint64_t)sends);
			PEER_CHECK(p, f.u.send.flags == 0);
			PEER_CHECK(p, sp_seal_open(a->recipient_priv, f.body, f.body_len, sender,
						   opened, sizeof(opened), &olen) == 0);
			PEER_CHECK(p, memcmp(sender, p->client_pub, 32) == 0);
			PEER_CHECK(p, sends < 3 && olen == strlen(a->msgs[sends]) &&
				   memcmp(opened, a->msgs[sends], olen) == 0);
			r = (struct sp_frame){ .type = SP_FRAME_SEND_RESULT };
			r.u.send_result.client_id = f.u.send.client_id;
			r.u.send_result.status = sends == 1 ? SP_STATUS_ERR_OFFLINE : SP_STATUS_DELIVERED;
			r.u.send_result.seq = 100 + (uint64_t)sends;
			frames_put(out, &oo, &r);
			sends++;
		} else {
			PEER_CHECK(p, !"unexpected frame type");
		}
	}
	PEER_CHECK(p, sends == 3 && pings == 1);
	/* The broker pings too: the client must answer by itself. */
	r = (struct sp_frame){ .type = SP_FRAME_PING, .u.ping.id = 77 };
	frames_put(out, &oo, &r);
	PEER_CHECK(p, peer_send_plain(p, out, oo) == 0);

	n = peer_recv_plain(p, in);
	off = 0;
	PEER_CHECK(p, n > 0 && sp_frame_next(in, (size_t)n, &off, &f) == 0 &&
		   f.type == SP_FRAME_PONG && f.u.ping.id == 77);

	oo = 0;
	r = (struct sp_frame){ .type = SP_FRAME_GOAWAY, .u.goaway.code = SP_STATUS_GOAWAY_SHUTDOWN };
	frames_put(out, &oo, &r);
	PEER_CHECK(p, peer_send_plain(p, out, oo) == 0);
	shutdown(p->fd, SHUT_WR);
	/* Wait for the client to close. */
	while (recv(p->fd, in, sizeof(in), 0) > 0)
		;
}

static void test_protocol_basic(void **state)
{
	struct peer p;
	struct basic_arg a = { .msgs = { "first", "second", "" } };
	struct sealpost_key *k;
	struct sealpost_client *c;
	struct sealpost_event ev;
	uint8_t rpub[32], spub[32];
	uint64_t id, pid, first = 0;
	int i;

	(void)state;
	sp_noise_keypair(rpub, a.recipient_priv);
	assert_int_equal(sealpost_key_generate(&k), 0);
	peer_start(&p, script_basic, &a);
	peer_run(&p);
	assert_int_equal(connect_once(&c, p.addr, k, p.pub), 0);
	sealpost_client_server_key(c, spub);
	assert_memory_equal(spub, p.pub, 32);
	assert_int_equal(sealpost_client_max_envelope(c), 64000);
	assert_int_equal(sealpost_client_max_message(c), 64000 - 97);
	assert_false(sealpost_client_want_write(c));

	assert_int_equal(sealpost_client_ping(c, &pid), 0);
	assert_int_equal(pid, 1);
	for (i = 0; i < 3; i++) {
		assert_int_equal(sealpost_client_send(c, rpub, a.msgs[i], strlen(a.msgs[i]), &id), 0);
		if (i == 0)
			first = id;
		assert_int_equal(id, first + (uint64_t)i);
	}
	assert_true(sealpost_client_want_write(c));
	assert_true(sealpost_client_poll_events(c) & POLLOUT);
	assert_int_equal(sealpost_client_flush(c, 10000), 0);
	assert_false(sealpost_client_want_write(c));

	assert_int_equal(sealpost_client_next_event(c, &ev, 10000), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_PONG);
	assert_int_equal(ev.id, 1);
	for (i = 0; i < 3; i++) {
		assert_int_equal(sealpost_client_next_event(c, &ev, 10000), 1);
		assert_int_equal(ev.type, SEALPOST_EVENT_RESULT);
		assert_int_equal(ev.client_id, first + (uint64_t)i);
		assert_int_equal(ev.seq, 100 + (uint64_t)i);
		assert_int_equal(ev.status, i == 1 ? SEALPOST_STATUS_ERR_OFFLINE
					    : SEALPOST_STATUS_DELIVERED);
	}
	/* The broker's Ping was answered inside next_event; then GoAway, CLOSED. */
	assert_int_equal(sealpost_client_next_event(c, &ev, 10000), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_GOAWAY);
	assert_int_equal(ev.status, SEALPOST_STATUS_GOAWAY_SHUTDOWN);
	assert_int_equal(sealpost_client_send(c, rpub, "x", 1, NULL), -ENOTCONN);
	assert_int_equal(sealpost_client_next_event(c, &ev, 10000), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_CLOSED);
	assert_int_equal(ev.error, 0);
	/* CLOSED is final and repeats. */
	assert_int_equal(sealpost_client_next_event(c, &ev, 0), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_CLOSED);
	assert_int_equal(sealpost_client_step(c), -ENOTCONN);
	sealpost_client_close(c);
	peer_join(&p);
	assert_int_equal(p.pattern, 1);
	sealpost_key_free(k);
}

/* --- script: deliveries (good, unopenable, good), then a malformed frame --- */

struct deliver_arg {
	uint8_t sender_priv[32];
	uint8_t bad_frame[16];
	size_t bad_frame_len;
};

static void script_deliver(struct peer *p)
{
	struct deliver_arg *a = p->arg;
	static uint8_t out[65536], env[65536], in[256];
	struct sp_frame f = { .type = SP_FRAME_DELIVER };
	size_t oo = 0, elen;

	/* Message 1: a real seal to the client. */
	PEER_CHECK(p, sp_seal(a->sender_priv, p->client_pub, (const uint8_t *)"one\nline", 8, env,
			      sizeof(env), &elen) == 0);
	f.u.deliver.seq = 5;
	f.body = env;
	f.body_len = elen;
	frames_put(out, &oo, &f);
	/* Message 2: garbage body: an error event, not a crash. */
	f.u.deliver.seq = 6;
	f.body = (const uint8_t *)"not a seal at all, just bytes";
	f.body_len = 29;
	frames_put(out, &oo, &f);
	PEER_CHECK(p, peer_send_plain(p, out, oo) == 0);

	/* Message 3 (maximal), in its own transport message. */
	memset(in, 'z', sizeof(in));
	oo = 0;
	{
		static uint8_t big[SP_MESSAGE_MAX];
		size_t i;

		for (i = 0; i < sizeof(big); i++)
			big[i] = (uint8_t)(i * 31);
		PEER_CHECK(p, sp_seal(a->sender_priv, p->client_pub, big, sizeof(big), env,
				      sizeof(env), &elen) == 0);
	}
	f.u.deliver.seq = 7;
	f.body = env;
	f.body_len = elen;
	frames_put(out, &oo, &f);
	PEER_CHECK(p, peer_send_plain(p, out, oo) == 0);

	/* Then a malformed frame. */
	PEER_CHECK(p, peer_send_plain(p, a->bad_frame, a->bad_frame_len) == 0);
	while (recv(p->fd, in, sizeof(in), 0) > 0)
		;
}

static void run_deliver(const uint8_t *bad, size_t bad_len, int want_error)
{
	struct peer p;
	struct deliver_arg a;
	struct sealpost_key *k;
	struct sealpost_client *c;
	struct sealpost_event ev;
	uint8_t spub[32];
	size_t i;

	memcpy(a.bad_frame, bad, bad_len);
	a.bad_frame_len = bad_len;
	sp_noise_keypair(spub, a.sender_priv);
	assert_int_equal(sealpost_key_generate(&k), 0);
	peer_start(&p, script_deliver, &a);
	peer_run(&p);
	/* XX this time: learn the key. */
	assert_int_equal(connect_once(&c, p.addr, k, NULL), 0);

	assert_int_equal(sealpost_client_next_event(c, &ev, 10000), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_int_equal(ev.seq, 5);
	assert_int_equal(ev.len, 8);
	assert_memory_equal(ev.data, "one\nline", 8);
	assert_memory_equal(ev.sender, spub, 32);

	assert_int_equal(sealpost_client_next_event(c, &ev, 10000), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_BAD_ENVELOPE);
	assert_int_equal(ev.seq, 6);
	assert_int_equal(ev.error, -EBADMSG);

	assert_int_equal(sealpost_client_next_event(c, &ev, 10000), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_int_equal(ev.seq, 7);
	assert_int_equal(ev.len, SP_MESSAGE_MAX);
	for (i = 0; i < ev.len; i++)
		if (ev.data[i] != (uint8_t)(i * 31))
			fail_msg("byte %zu differs", i);

	assert_int_equal(sealpost_client_next_event(c, &ev, 10000), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_CLOSED);
	assert_int_equal(ev.error, want_error);
	assert_int_equal(sealpost_client_send(c, spub, "x", 1, NULL), -ENOTCONN);
	sealpost_client_close(c);
	peer_join(&p);
	assert_int_equal(p.pattern, 2);
	sealpost_key_free(k);
}

static void test_protocol_deliver_malformed(void **state)
{
	/* header_len 0 */
	static const uint8_t zero_hdr[] = { 0, 0, 0, 0 };
	/* a header that is not protobuf */
	static const uint8_t junk_hdr[] = { 0, 3, 0, 0, 0xff, 0xff, 0xff };
	/* a truncated frame: header says 9 bytes, 2 follow */
	static const uint8_t trunc[] = { 0, 9, 0, 0, 0x3a, 0x00 };
	/* a Pong (field 7) with a body: only Send/Deliver may carry one */
	static const uint8_t pong_body[] = { 0, 2, 0, 1, 0x3a, 0x00, 'x' };

	(void)state;
	run_deliver(zero_hdr, sizeof(zero_hdr), -EPROTO);
	run_deliver(junk_hdr, sizeof(junk_hdr), -EPROTO);
	run_deliver(trunc, sizeof(trunc), -EPROTO);
	run_deliver(pong_body, sizeof(pong_body), -EPROTO);
}

/* A frame only a client may send (Send), coming from the broker. */
static void test_protocol_wrong_direction(void **state)
{
	uint8_t buf[128];
	size_t off = 0;
	struct sp_frame f = { .type = SP_FRAME_ACK };

	(void)state;
	f.u.ack.count = 1;
	f.u.ack.seqs[0] = 3;
	assert_int_equal(sp_frame_put(buf, sizeof(buf), &off, &f), 0);
	run_deliver(buf, off, -EPROTO);
}

/* --- script: a transport message whose tag does not verify --- */

static void script_badtag(struct peer *p)
{
	static uint8_t buf[256];
	struct sp_frame f = { .type = SP_FRAME_PONG, .u.ping.id = 9 };
	size_t off = 0;

	frames_put(buf, &off, &f);
	PEER_CHECK(p, sp_noise_encrypt(&p->t.tx, buf, off) == 0);
	buf[off + 15] ^= 1;
	PEER_CHECK(p, write_msg(p->fd, buf, off + 16) == 0);
	while (recv(p->fd, buf, sizeof(buf), 0) > 0)
		;
}

static void test_protocol_bad_tag(void **state)
{
	struct peer p;
	struct sealpost_key *k;
	struct sealpost_client *c;
	struct sealpost_event ev;

	(void)state;
	assert_int_equal(sealpost_key_generate(&k), 0);
	peer_start(&p, script_badtag, NULL);
	peer_run(&p);
	assert_int_equal(connect_once(&c, p.addr, k, p.pub), 0);
	assert_int_equal(sealpost_client_next_event(c, &ev, 10000), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_CLOSED);
	assert_int_equal(ev.error, -EBADMSG);
	sealpost_client_close(c);
	peer_join(&p);
	sealpost_key_free(k);
}

/* IK to a broker that holds another key: it closes, connect fails cleanly. */
static void test_protocol_wrong_server_key(void **state)
{
	struct peer p;
	struct sealpost_key *k;
	struct sealpost_client *c = NULL;
	uint8_t other[32], other_priv[32];

	(void)state;
	sp_noise_keypair(other, other_priv);
	assert_int_equal(sealpost_key_generate(&k), 0);
	peer_start(&p, NULL, NULL);
	/* The IK connection fails at the peer; the library's XX probe on a
	 * second connection learns the peer's real key: not the pinned one. */
	assert_int_equal(pthread_create(&p.thread, NULL, peer_main_twice, &p), 0);
	assert_int_equal(sealpost_client_connect(&c, p.addr, k, other, 10000),
			 -SEALPOST_ESERVERKEY);
	assert_null(c);
	pthread_join(p.thread, NULL);
	close(p.lfd);
	assert_int_equal(p.hs_result, -EBADMSG);
	assert_int_equal(p.pattern, 2);                 /* the probe: XX */
	assert_true(p.second_hs_result < 0);            /* abandoned after message 2 */
	assert_string_equal(sealpost_strerror(-SEALPOST_ESERVERKEY),
			    "the broker's key is not the pinned server key (the broker changed "
			    "its key, or this is not the broker you pinned)");
	sealpost_key_free(k);
}

/* --- script: ServerHello limits, send_wait holding other events, event loop --- */

struct limits_arg {
	uint8_t sender_priv[32];
};

static int collect_acks_until_ping(struct peer *p, uint64_t *seqs, int cap, int *frames);

static void script_limits(struct peer *p)
{
	struct limits_arg *a = p->arg;
	static uint8_t in[65536], out[65536], env[2048];
	struct sp_frame f, r;
	size_t off = 0, oo = 0, elen;
	uint64_t seqs[4];
	int n, frames;

	/* send_wait: a Deliver and a Pong come before the SendResult. */
	n = peer_recv_plain(p, in);
	PEER_CHECK(p, n > 0 && sp_frame_next(in, (size_t)n, &off, &f) == 0 &&
		   f.type == SP_FRAME_SEND && f.body_len == 903 + 97);
	PEER_CHECK(p, sp_seal(a->sender_priv, p->client_pub, (const uint8_t *)"held", 4, env,
			      sizeof(env), &elen) == 0);
	r = (struct sp_frame){ .type = SP_FRAME_DELIVER, .u.deliver.seq = 1, .body = env,
			       .body_len = elen };
	frames_put(out, &oo, &r);
	r = (struct sp_frame){ .type = SP_FRAME_PONG, .u.ping.id = 42 };
	frames_put(out, &oo, &r);
	PEER_CHECK(p, peer_send_plain(p, out, oo) == 0);
	oo = 0;
	r = (struct sp_frame){ .type = SP_FRAME_SEND_RESULT };
	r.u.send_result.client_id = f.u.send.client_id;
	r.u.send_result.status = SP_STATUS_ERR_RECIPIENT_BUSY;
	frames_put(out, &oo, &r);
	PEER_CHECK(p, peer_send_plain(p, out, oo) == 0);

	/* Event loop: acks 1 (automatic) and 2 (by hand), then a Ping. */
	n = collect_acks_until_ping(p, seqs, 4, &frames);
	PEER_CHECK(p, n == 2 && seqs[0] == 1 && seqs[1] == 2);
	while (recv(p->fd, in, sizeof(in), 0) > 0)
		;
}

static void test_protocol_limits_and_loop(void **state)
{
	struct peer p;
	struct limits_arg a;
	struct sealpost_key *k;
	struct sealpost_client *c;
	struct sealpost_event ev;
	uint8_t spub[32], to[32], to_priv[32], msg[904];
	struct pollfd pfd;
	uint64_t seq = 99, pid;
	int status = 0, got_pong = 0, rounds = 0;

	(void)state;
	sp_noise_keypair(spub, a.sender_priv);
	sp_noise_keypair(to, to_priv);
	memset(msg, 'm', sizeof(msg));
	assert_int_equal(sealpost_key_generate(&k), 0);
	peer_start(&p, script_limits, &a);
	p.max_envelope = 1000;
	peer_run(&p);
	assert_int_equal(connect_once(&c, p.addr, k, p.pub), 0);
	assert_int_equal(sealpost_client_max_envelope(c), 1000);
	assert_int_equal(sealpost_client_max_message(c), 903);
	assert_int_equal(sealpost_client_send(c, to, msg, 904, NULL), -EMSGSIZE);
	assert_int_equal(sealpost_client_send(c, spub, NULL, 1, NULL), -EINVAL);
	memset(to_priv, 0, sizeof(to_priv));
	assert_int_equal(sealpost_client_send(c, to_priv, msg, 1, NULL), -EINVAL);   /* low order */
	assert_int_equal(sealpost_client_send_raw(c, to, msg, 1001, NULL), -EMSGSIZE);

	assert_int_equal(sealpost_client_send_wait(c, to, msg, 903, 10000, &status, &seq), 0);
	assert_int_equal(status, SEALPOST_STATUS_ERR_RECIPIENT_BUSY);
	assert_int_equal(seq, 0);
	/* What arrived meanwhile is still there, in order. */
	assert_int_equal(sealpost_client_next_event(c, &ev, 0), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_int_equal(ev.len, 4);
	assert_memory_equal(ev.data, "held", 4);
	assert_memory_equal(ev.sender, spub, 32);
	assert_int_equal(sealpost_client_next_event(c, &ev, 0), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_PONG);
	assert_int_equal(ev.id, 42);
	assert_int_equal(sealpost_client_next_event(c, &ev, 0), 0);

	/* Event-loop integration: poll + step + next_event(0). The MESSAGE
	 * (seq 1) was taken, so the next call acked it by itself; 2 by hand. */
	assert_int_equal(sealpost_client_ack(c, 2), 0);
	assert_int_equal(sealpost_client_ping(c, &pid), 0);
	assert_true(sealpost_client_want_write(c));
	while (!got_pong) {
		pfd = (struct pollfd){ .fd = sealpost_client_fd(c), .events = sealpost_client_poll_events(c) };
		assert_true(poll(&pfd, 1, 10000) > 0);
		assert_int_equal(sealpost_client_step(c), 0);
		while (sealpost_client_next_event(c, &ev, 0) == 1) {
			assert_int_equal(ev.type, SEALPOST_EVENT_PONG);
			assert_int_equal(ev.id, pid);
			got_pong = 1;
		}
		assert_true(++rounds < 1000);
	}
	assert_false(sealpost_client_want_write(c));
	sealpost_client_close(c);
	peer_join(&p);
	sealpost_key_free(k);
}

/* --- script: the broker dies in the middle of a transport message --- */

static void script_abrupt(struct peer *p)
{
	static const uint8_t partial[] = { 0x00, 0x64, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };

	PEER_CHECK(p, write_full(p->fd, partial, sizeof(partial)) == 0);
}

static void test_protocol_abrupt_close(void **state)
{
	struct peer p;
	struct sealpost_key *k;
	struct sealpost_client *c;
	struct sealpost_event ev;
	uint8_t to[32];
	int status = 0;

	(void)state;
	assert_int_equal(sealpost_key_generate(&k), 0);
	sealpost_key_public(k, to);
	peer_start(&p, script_abrupt, NULL);
	peer_run(&p);
	assert_int_equal(connect_once(&c, p.addr, k, p.pub), 0);
	/* No GoAway, and a message cut short: a reset, not a clean close. */
	assert_int_equal(sealpost_client_send_wait(c, to, "x", 1, 10000, &status, NULL), -ECONNRESET);
	assert_int_equal(sealpost_client_next_event(c, &ev, 10000), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_CLOSED);
	assert_int_equal(ev.error, -ECONNRESET);
	assert_int_equal(sealpost_client_step(c), -ECONNRESET);
	assert_int_equal(sealpost_client_flush(c, 1000), -ECONNRESET);
	sealpost_client_close(c);
	peer_join(&p);
	sealpost_key_free(k);
}

/* --- script: a small max_transport splits a burst into several messages --- */

/* A 300-byte message is sealed padded to the 512 bucket (PROTOCOL.md 7.1):
 * a 609-byte body. */
enum { SPLIT_SENDS = 40, SPLIT_MSG = 300, SPLIT_BODY = 512 + 97, SPLIT_TRANSPORT = 1400 };

static void script_split(struct peer *p)
{
	static uint8_t in[65536];
	struct sp_frame f;
	size_t off;
	uint64_t first = 0;
	int n, sends = 0, messages = 0;

	while (sends < SPLIT_SENDS) {
		n = peer_recv_plain(p, in);
		if (n < 0) {
			PEER_CHECK(p, !"connection ended early");
			return;
		}
		PEER_CHECK(p, n <= SPLIT_TRANSPORT);
		messages++;
		off = 0;
		while (sp_frame_next(in, (size_t)n, &off, &f) == 0) {
			PEER_CHECK(p, f.type == SP_FRAME_SEND);
			if (sends == 0)
				first = f.u.send.client_id;
			PEER_CHECK(p, f.u.send.client_id == first + (uint64_t)sends);
			PEER_CHECK(p, f.body_len == SPLIT_BODY);
			sends++;
		}
	}
	/* 40 frames of ~650 bytes, at most two per 1400-byte message. */
	PEER_CHECK(p, messages == SPLIT_SENDS / 2);
}

static void test_protocol_split_transport(void **state)
{
	struct peer p;
	struct sealpost_key *k;
	struct sealpost_client *c;
	uint8_t to[32], msg[SPLIT_MSG];
	int i;

	(void)state;
	memset(msg, 's', sizeof(msg));
	assert_int_equal(sealpost_key_generate(&k), 0);
	sealpost_key_public(k, to);
	peer_start(&p, script_split, NULL);
	p.max_transport = SPLIT_TRANSPORT;
	peer_run(&p);
	assert_int_equal(connect_once(&c, p.addr, k, p.pub), 0);
	for (i = 0; i < SPLIT_SENDS; i++)
		assert_int_equal(sealpost_client_send(c, to, msg, sizeof(msg), NULL), 0);
	assert_int_equal(sealpost_client_flush(c, 10000), 0);
	peer_join(&p);
	sealpost_client_close(c);
	sealpost_key_free(k);
}

/* --- script: a broker that does not read: the queue fills, -ENOBUFS --- */

struct backpressure_arg {
	int go[2];              /* the test writes the number of sends when the queue is full */
};

static void script_backpressure(struct peer *p)
{
	struct backpressure_arg *a = p->arg;
	static uint8_t in[65536];
	struct sp_frame f;
	uint32_t want = 0;
	size_t off;
	uint32_t sends = 0;
	uint64_t first = 0;
	int n;

	PEER_CHECK(p, read(a->go[0], &want, sizeof(want)) == (ssize_t)sizeof(want));
	while (sends < want) {
		n = peer_recv_plain(p, in);
		if (n < 0) {
			PEER_CHECK(p, !"connection ended early");
			return;
		}
		off = 0;
		while (sp_frame_next(in, (size_t)n, &off, &f) == 0) {
			if (sends == 0)
				first = f.u.send.client_id;
			PEER_CHECK(p, f.type == SP_FRAME_SEND && f.u.send.client_id == first + sends);
			sends++;
		}
	}
	PEER_CHECK(p, sends == want);
	/* Stay open until the client has flushed: closing now, with anything
	 * of the client's still unread here, sends a reset that the client's
	 * flush could see (-ECONNRESET, seen under load). */
	PEER_CHECK(p, read(a->go[0], &want, sizeof(want)) == (ssize_t)sizeof(want));
}

static void test_protocol_backpressure(void **state)
{
	static uint8_t msg[60000];
	struct peer p;
	struct backpressure_arg a;
	struct sealpost_key *k;
	struct sealpost_client *c;
	uint8_t to[32];
	uint32_t sent = 0;
	int r = 0;

	(void)state;
	assert_int_equal(pipe(a.go), 0);
	assert_int_equal(sealpost_key_generate(&k), 0);
	sealpost_key_public(k, to);
	peer_start(&p, script_backpressure, &a);
	peer_run(&p);
	assert_int_equal(connect_once(&c, p.addr, k, p.pub), 0);
	/* Bounded: 8 MiB of queue plus socket buffers is far below 2000 x 60 KB. */
	while (sent < 2000) {
		r = sealpost_client_send(c, to, msg, sizeof(msg), NULL);
		if (r < 0)
			break;
		sent++;
	}
	assert_int_equal(r, -ENOBUFS);
	assert_true(sent > 100);
	/* Nothing was lost: once the broker reads, everything arrives. */
	assert_int_equal(write(a.go[1], &sent, sizeof(sent)), (ssize_t)sizeof(sent));
	assert_int_equal(sealpost_client_flush(c, 60000), 0);
	assert_int_equal(sealpost_client_send(c, to, msg, 1, NULL), 0);
	assert_int_equal(write(a.go[1], &sent, sizeof(sent)), (ssize_t)sizeof(sent));
	peer_join(&p);
	sealpost_client_close(c);
	close(a.go[0]);
	close(a.go[1]);
	sealpost_key_free(k);
}

/* --- script: acknowledgement modes (auto: exactly what was taken; manual) --- */

enum { ACK_BURST = 70 };

struct ack_arg {
	uint8_t sender_priv[32];
	int manual;
};

/* Reads client frames until a Ping: collects Ack seqs (checking <= 64 per
 * frame) into seqs; answers the Ping. Returns the number of acks, -1. */
static int collect_acks_until_ping(struct peer *p, uint64_t *seqs, int cap, int *frames)
{
	static __thread uint8_t in[65536], out[64];
	struct sp_frame f, r;
	size_t off, oo = 0;
	int n, got = 0;

	*frames = 0;
	for (;;) {
		n = peer_recv_plain(p, in);
		if (n < 0)
			return -1;
		off = 0;
		while (sp_frame_next(in, (size_t)n, &off, &f) == 0) {
			if (f.type == SP_FRAME_ACK) {
				PEER_CHECK(p, f.u.ack.count >= 1 && f.u.ack.count <= 64);
				(*frames)++;
				for (uint32_t i = 0; i < f.u.ack.count && got < cap; i++)
					seqs[got++] = f.u.ack.seqs[i];
				continue;
			}
			if (f.type != SP_FRAME_PING) {
				PEER_CHECK(p, !"unexpected frame");
				return -1;
			}
			r = (struct sp_frame){ .type = SP_FRAME_PONG, .u.ping.id = f.u.ping.id };
			frames_put(out, &oo, &r);
			PEER_CHECK(p, peer_send_plain(p, out, oo) == 0);
			return got;
		}
	}
}

static void deliver_one(struct peer *p, uint8_t *out, size_t *oo, const uint8_t *sender_priv,
			uint64_t seq)
{
	uint8_t env[256], msg[16];
	size_t elen;
	int len = snprintf((char *)msg, sizeof(msg), "m%llu", (unsigned long long)seq);
	struct sp_frame f = { .type = SP_FRAME_DELIVER, .u.deliver.seq = seq };

	PEER_CHECK(p, sp_seal(sender_priv, p->client_pub, msg, (size_t)len, env, sizeof(env),
			      &elen) == 0);
	f.body = env;
	f.body_len = elen;
	frames_put(out, oo, &f);
}

static void script_acks(struct peer *p)
{
	struct ack_arg *a = p->arg;
	static uint8_t out[65536], in[256];
	uint64_t seqs[128];
	struct sp_frame f;
	size_t oo = 0;
	int n, frames, i;

	/* Backlog of 3 (seq 1..3), then Drained{3}, then a live online-only one
	 * (seq 0) and ACK_BURST more live ones (10..). */
	for (i = 1; i <= 3; i++)
		deliver_one(p, out, &oo, a->sender_priv, (uint64_t)i);
	f = (struct sp_frame){ .type = SP_FRAME_DRAINED, .u.drained.count = 3 };
	frames_put(out, &oo, &f);
	PEER_CHECK(p, peer_send_plain(p, out, oo) == 0);

	/* The app took seq 1 only, then synced: exactly Ack{1} (auto) or no
	 * ack at all (manual). */
	n = collect_acks_until_ping(p, seqs, 128, &frames);
	if (a->manual) {
		PEER_CHECK(p, n == 0);
	} else {
		PEER_CHECK(p, n == 1 && seqs[0] == 1);
	}
	/* It took 2, 3 and Drained, synced: Ack{2,3} (auto); manual: its own
	 * sealpost_client_ack(3) only. */
	n = collect_acks_until_ping(p, seqs, 128, &frames);
	if (a->manual) {
		PEER_CHECK(p, n == 1 && seqs[0] == 3);
	} else {
		PEER_CHECK(p, n == 2 && seqs[0] == 2 && seqs[1] == 3);
	}

	oo = 0;
	deliver_one(p, out, &oo, a->sender_priv, 0);
	for (i = 0; i < ACK_BURST; i++)
		deliver_one(p, out, &oo, a->sender_priv, 10 + (uint64_t)i);
	PEER_CHECK(p, peer_send_plain(p, out, oo) == 0);
	/* Auto: all 70 (never the online-only 0), in order, in frames of <= 64. */
	n = collect_acks_until_ping(p, seqs, 128, &frames);
	if (a->manual) {
		PEER_CHECK(p, n == 0);
	} else {
		PEER_CHECK(p, n == ACK_BURST && frames >= 2);
		for (i = 0; i < ACK_BURST && i < n; i++)
			PEER_CHECK(p, seqs[i] == 10 + (uint64_t)i);
	}
	while (recv(p->fd, in, sizeof(in), 0) > 0)
		;
}

static void run_acks(int manual)
{
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;
	struct peer p;
	struct ack_arg a = { .manual = manual };
	struct sealpost_key *k;
	struct sealpost_client *c;
	struct sealpost_event ev;
	uint8_t spub[32];
	int i;

	sp_noise_keypair(spub, a.sender_priv);
	assert_int_equal(sealpost_key_generate(&k), 0);
	peer_start(&p, script_acks, &a);
	peer_run(&p);
	o.flags = SEALPOST_CONNECT_NO_RECONNECT;
	if (manual)
		o.flags |= SEALPOST_CONNECT_MANUAL_ACK;
	assert_int_equal(sealpost_client_connect_opts(&c, p.addr, k, p.pub, 10000, &o), 0);

	assert_int_equal(sealpost_client_next_event(c, &ev, 10000), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_int_equal(ev.seq, 1);
	/* Taken, not yet acked: the next call will; an event loop is told to
	 * write (auto mode). */
	assert_int_equal(sealpost_client_want_write(c), !manual);
	/* sync holds what arrives meanwhile (2, 3, Drained): not taken. */
	assert_int_equal(sealpost_client_sync(c, 10000), 0);
	for (i = 2; i <= 3; i++) {
		assert_int_equal(sealpost_client_next_event(c, &ev, 10000), 1);
		assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
		assert_int_equal(ev.seq, (uint64_t)i);
		assert_memory_equal(ev.sender, spub, 32);
	}
	assert_int_equal(sealpost_client_next_event(c, &ev, 10000), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_DRAINED);
	assert_int_equal(ev.count, 3);
	if (manual)
		assert_int_equal(sealpost_client_ack(c, 3), 0);
	assert_int_equal(sealpost_client_sync(c, 10000), 0);

	/* The online-only one (seq 0), then the burst. */
	assert_int_equal(sealpost_client_next_event(c, &ev, 10000), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_int_equal(ev.seq, 0);
	assert_memory_equal(ev.data, "m0", 2);
	for (i = 0; i < ACK_BURST; i++) {
		assert_int_equal(sealpost_client_next_event(c, &ev, 10000), 1);
		assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
		assert_int_equal(ev.seq, 10 + (uint64_t)i);
	}
	assert_int_equal(sealpost_client_sync(c, 10000), 0);
	assert_int_equal(sealpost_client_ack(c, 0), 0);   /* seq 0: nothing to ack, not an error */
	sealpost_client_close(c);
	peer_join(&p);
	sealpost_key_free(k);
}

static void test_protocol_ack_auto(void **state)
{
	(void)state;
	run_acks(0);
}

static void test_protocol_ack_manual(void **state)
{
	(void)state;
	run_acks(1);
}

/* --- script: send flags and explicit ids on the wire --- */

struct sendex_arg {
	uint64_t ids[4];
	uint32_t flags[4];
};

static void script_sendex(struct peer *p)
{
	struct sendex_arg *a = p->arg;
	static uint8_t in[65536], out[4096];
	struct sp_frame f, r;
	size_t off, oo = 0;
	int n, sends = 0;

	while (sends < 4) {
		n = peer_recv_plain(p, in);
		if (n < 0) {
			PEER_CHECK(p, !"connection ended early");
			return;
		}
		off = 0;
		while (sends < 4 && sp_frame_next(in, (size_t)n, &off, &f) == 0) {
			PEER_CHECK(p, f.type == SP_FRAME_SEND);
			a->ids[sends] = f.u.send.client_id;
			a->flags[sends] = f.u.send.flags;
			r = (struct sp_frame){ .type = SP_FRAME_SEND_RESULT };
			r.u.send_result.client_id = f.u.send.client_id;
			r.u.send_result.status = (f.u.send.flags & SP_SEND_ONLINE_ONLY)
				? SP_STATUS_ERR_OFFLINE : SP_STATUS_ACCEPTED;
			r.u.send_result.seq = (f.u.send.flags & SP_SEND_ONLINE_ONLY) ? 0 : 7;
			frames_put(out, &oo, &r);
			sends++;
		}
	}
	PEER_CHECK(p, peer_send_plain(p, out, oo) == 0);
	while (recv(p->fd, in, sizeof(in), 0) > 0)
		;
}

static void test_send_ex_and_opts(void **state)
{
	struct {
		struct sealpost_connect_opts o;
		uint64_t future;        /* a field a newer header might add */
	} big;
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;
	struct peer p, p2;
	struct sendex_arg a, a2;
	struct sealpost_key *k;
	struct sealpost_client *c = NULL, *c2 = NULL;
	uint8_t to[32], env[256];
	size_t elen;
	uint64_t id1, id2, id3, seq = 1;
	int status = -1;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&a2, 0, sizeof(a2));
	assert_int_equal(sealpost_key_generate(&k), 0);
	sealpost_key_public(k, to);
	/* Option checks happen before any I/O. */
	o.size = sizeof(uint32_t);
	assert_int_equal(sealpost_client_connect_opts(&c, "127.0.0.1:1", k, NULL, 1000, &o), -EINVAL);
	o = (struct sealpost_connect_opts)SEALPOST_CONNECT_OPTS_INIT;
	o.flags = 1u << 7;
	assert_int_equal(sealpost_client_connect_opts(&c, "127.0.0.1:1", k, NULL, 1000, &o), -EINVAL);
	memset(&big, 0, sizeof(big));
	big.o.size = sizeof(big);
	big.future = 1;
	assert_int_equal(sealpost_client_connect_opts(&c, "127.0.0.1:1", k, NULL, 1000, &big.o), -E2BIG);
	assert_null(c);

	/* A larger struct whose unknown tail is zero is fine. */
	big.future = 0;
	big.o.flags = SEALPOST_CONNECT_NO_RECONNECT;
	peer_start(&p, script_sendex, &a);
	peer_run(&p);
	assert_int_equal(sealpost_client_connect_opts(&c, p.addr, k, p.pub, 10000, &big.o), 0);
	assert_int_equal(sealpost_client_send_ex(c, to, "x", 1, 1u << 5, 0, NULL), -EINVAL);
	assert_int_equal(sealpost_client_send_ex(c, to, "a", 1, 0, 0, &id1), 0);
	assert_int_equal(sealpost_client_send_ex(c, to, "b", 1, SEALPOST_SEND_ONLINE_ONLY, 0, &id2), 0);
	assert_int_equal(id2, id1 + 1);
	/* An explicit id (a retry) does not move the counter. */
	assert_int_equal(sealpost_client_send_ex(c, to, "a", 1, 0, 12345, &id3), 0);
	assert_int_equal(id3, 12345);
	assert_int_equal(sealpost_envelope_seal(k, to, "r", 1, env, sizeof(env), &elen), 0);
	assert_int_equal(sealpost_client_send_raw_ex(c, to, env, elen, SEALPOST_SEND_ONLINE_ONLY, 0,
						     &id3), 0);
	assert_int_equal(id3, id1 + 2);
	assert_int_equal(sealpost_client_wait_result(c, id2, 10000, &status, &seq), 0);
	assert_int_equal(status, SEALPOST_STATUS_ERR_OFFLINE);
	assert_int_equal(seq, 0);
	/* The result of id1 came first and was kept for next_event. */
	assert_int_equal(sealpost_client_wait_result(c, 12345, 10000, &status, &seq), 0);
	assert_int_equal(status, SEALPOST_STATUS_ACCEPTED);
	assert_int_equal(seq, 7);
	sealpost_client_close(c);
	peer_join(&p);
	assert_int_equal(a.ids[0], id1);
	assert_int_equal(a.flags[0], 0);
	assert_int_equal(a.ids[1], id1 + 1);
	assert_int_equal(a.flags[1], SP_SEND_ONLINE_ONLY);
	assert_int_equal(a.ids[2], 12345);
	assert_int_equal(a.flags[2], 0);
	assert_int_equal(a.ids[3], id1 + 2);
	assert_int_equal(a.flags[3], SP_SEND_ONLINE_ONLY);

	/* A second connection of the same device starts elsewhere: ids from a
	 * reconnect must not look like retries (2^-60 odds of a false failure). */
	peer_start(&p2, script_sendex, &a2);
	peer_run(&p2);
	assert_int_equal(sealpost_client_connect(&c2, p2.addr, k, p2.pub, 10000), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(sealpost_client_send(c2, to, "z", 1, &id3), 0);
	/* The peer answers all four before it waits for our close. */
	assert_int_equal(sealpost_client_wait_result(c2, id3, 10000, &status, NULL), 0);
	sealpost_client_close(c2);
	peer_join(&p2);
	assert_true(a2.ids[0] < (uint64_t)1 << 63 && a.ids[0] < (uint64_t)1 << 63);
	assert_true(a2.ids[0] > a.ids[0] + 3 || a.ids[0] > a2.ids[0] + 3);
	sealpost_key_free(k);
}


/* ------------------------------------------------------- foreign loops --- */

/* The foreign-loop API without a network: what it queues, how output is
 * consumed in pieces, argument and mode checks, garbage input. */
static void test_foreign_api(void **state)
{
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;
	struct sealpost_key *k;
	struct sealpost_client *c = NULL;
	struct sealpost_event ev;
	const uint8_t *p, *p2;
	uint8_t bad[4] = { 0xff, 0xff, 0, 0 }, spub[32], spriv[32];
	size_t len, len2;

	(void)state;
	assert_int_equal(sealpost_key_generate(&k), 0);
	sp_noise_keypair(spub, spriv);
	assert_int_equal(sealpost_client_new(NULL, k, NULL, NULL), -EINVAL);
	assert_int_equal(sealpost_client_new(&c, NULL, NULL, NULL), -EINVAL);
	assert_null(c);

	/* XX: the preamble and message 1 (e: 32 bytes) are there at once. */
	assert_int_equal(sealpost_client_new(&c, k, NULL, NULL), 0);
	assert_int_equal(sealpost_client_fd(c), -1);
	assert_int_equal(sealpost_client_take_output(c, &p, &len), 1);
	assert_int_equal(len, 8 + 2 + 32);
	assert_memory_equal(p, "SEAL\x01\x02\x00\x00", 8);
	assert_int_equal(p[8], 0);
	assert_int_equal(p[9], 32);
	/* Taking again without consuming gives the same bytes; consuming in
	 * pieces moves along them. */
	assert_int_equal(sealpost_client_take_output(c, &p2, &len2), 1);
	assert_ptr_equal(p2, p);
	assert_int_equal(len2, len);
	assert_int_equal(sealpost_client_output_consumed(c, len + 1), -EINVAL);
	assert_int_equal(sealpost_client_output_consumed(c, 3), 0);
	assert_int_equal(sealpost_client_take_output(c, &p2, &len2), 1);
	assert_ptr_equal(p2, p + 3);
	assert_int_equal(len2, len - 3);
	assert_int_equal(sealpost_client_output_consumed(c, len2), 0);
	assert_int_equal(sealpost_client_take_output(c, &p2, &len2), 0);
	assert_null(p2);
	assert_int_equal(len2, 0);
	/* Nothing to send before the handshake: sends wait. */
	assert_int_equal(sealpost_client_send(c, spub, "early", 5, NULL), 0);
	assert_int_equal(sealpost_client_pending(c, NULL, 0), 1);
	assert_int_equal(sealpost_client_take_output(c, &p2, &len2), 0);
	assert_int_equal(sealpost_client_ping(c, NULL), -ENOTCONN);
	assert_int_equal(sealpost_client_next_event(c, &ev, 1000), 0);   /* never waits */

	/* Socket-only calls and the reverse. */
	assert_int_equal(sealpost_client_flush(c, 0), -EOPNOTSUPP);
	assert_int_equal(sealpost_client_sync(c, 0), -EOPNOTSUPP);
	assert_int_equal(sealpost_client_wait_result(c, 1, 0, &(int){ 0 }, NULL), -EOPNOTSUPP);
	assert_int_equal(sealpost_client_feed(c, NULL, 1), -EINVAL);
	assert_int_equal(sealpost_client_feed_eof(c, 5), -EINVAL);
	assert_int_equal(sealpost_client_take_output(c, NULL, &len), -EINVAL);

	/* A handshake message longer than the protocol allows: a broken broker. */
	assert_int_equal(sealpost_client_feed(c, bad, sizeof(bad)), 4);
	assert_int_equal(sealpost_client_next_event(c, &ev, 0), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_CLOSED);
	assert_int_equal(ev.error, -EPROTO);
	assert_int_equal(sealpost_client_feed(c, bad, sizeof(bad)), -EPROTO);
	assert_int_equal(sealpost_client_restart(c), -EPROTO);
	/* The send that never went anywhere is still listed. */
	assert_int_equal(sealpost_client_pending(c, NULL, 0), 1);
	sealpost_client_close(c);

	/* IK: message 1 is longer (e, es, s, ss + ClientHello), pattern byte 1. */
	o.flags = SEALPOST_CONNECT_NO_RECONNECT;
	assert_int_equal(sealpost_client_new(&c, k, spub, &o), 0);
	assert_int_equal(sealpost_client_take_output(c, &p, &len), 1);
	assert_int_equal(p[5], 1);
	assert_true(len > 8 + 2 + 32 + 48);
	/* The transport ends before an answer: CLOSED (no reconnects). */
	assert_int_equal(sealpost_client_feed_eof(c, 0), 0);
	assert_int_equal(sealpost_client_next_event(c, &ev, 0), 1);
	assert_int_equal(ev.type, SEALPOST_EVENT_CLOSED);
	assert_int_equal(ev.error, -ECONNRESET);
	sealpost_client_close(c);
	sealpost_key_free(k);
}

/* The foreign client's handshake against the scripted broker, with every
 * received byte fed on its own: reassembly across feeds, then the proof
 * and CONNECTED; the peer's close is a DISCONNECTED, restart refuses a
 * live session only by starting over. */
static void test_foreign_bytewise(void **state)
{
	struct peer p;
	struct sealpost_key *k;
	struct sealpost_client *c = NULL;
	struct sealpost_event ev;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	uint8_t b, spub[32];
	int fd, connected = 0, down = 0;

	(void)state;
	assert_int_equal(sealpost_key_generate(&k), 0);
	peer_start(&p, NULL, NULL);
	peer_run(&p);
	sa.sin_port = htons(p.port);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(sealpost_client_new(&c, k, p.pub, NULL), 0);
	while (!down) {
		const uint8_t *out;
		size_t len;
		ssize_t n;

		while (sealpost_client_take_output(c, &out, &len) == 1) {
			assert_int_equal(write_full(fd, out, len), 0);
			assert_int_equal(sealpost_client_output_consumed(c, len), 0);
		}
		while (sealpost_client_next_event(c, &ev, 0) == 1) {
			if (ev.type == SEALPOST_EVENT_CONNECTED)
				connected = 1;
			else if (ev.type == SEALPOST_EVENT_DISCONNECTED)
				down = 1;
			else
				fail_msg("unexpected event %d", ev.type);
		}
		if (down)
			break;
		n = recv(fd, &b, 1, 0);
		if (n == 1)
			assert_int_equal(sealpost_client_feed(c, &b, 1), 1);
		else
			assert_int_equal(sealpost_client_feed_eof(c, 0), 0);
	}
	assert_true(connected);
	assert_int_equal(ev.error, -ECONNRESET);
	sealpost_client_server_key(c, spub);
	assert_memory_equal(spub, p.pub, 32);
	assert_int_equal(p.hs_result, 0);   /* the peer got our IK proof */
	/* A new transport: a new session queued (preamble first again). */
	assert_int_equal(sealpost_client_restart(c), 0);
	{
		const uint8_t *out;
		size_t len;

		assert_int_equal(sealpost_client_take_output(c, &out, &len), 1);
		assert_memory_equal(out, "SEAL\x01\x01", 6);
	}
	sealpost_client_close(c);
	close(fd);
	peer_join(&p);
	sealpost_key_free(k);
}

/* docs/CLIENT.md quotes docs/examples/echo.c; the quote must be the file. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* Back-off between attempts: doubling from reconnect_min_ms, capped at
 * reconnect_max_ms, each wait in the upper half of its step (jitter), read
 * through sealpost_client_timeout right after each failed attempt. Also:
 * DISCONNECTED once for the whole outage, whatever the number of attempts. */
static void test_backoff(void **state)
{
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof(sa);
	static const int bound[] = { 100, 200, 400, 800, 800 };
	struct sealpost_key *k;
	struct sealpost_client *c = NULL;
	struct sealpost_event ev;
	char addr[64];
	int fd, prev_fd, prev_t, n = 0, spins = 0, disconnected = 0, waits[5];

	(void)state;
	assert_int_equal(sealpost_key_generate(&k), 0);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &slen), 0);
	close(fd);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sa.sin_port));
	o.reconnect_min_ms = 100;
	o.reconnect_max_ms = 800;
	o.flags = SEALPOST_CONNECT_NO_KEEPALIVE;
	assert_int_equal(sealpost_client_start(&c, addr, k, NULL, &o), 0);
	prev_fd = sealpost_client_fd(c);
	prev_t = sealpost_client_timeout(c);
	if (prev_fd < 0)
		waits[n++] = prev_t;   /* refused at once, inside start */
	while (n < 5) {
		struct pollfd p = { .fd = sealpost_client_fd(c), .events = sealpost_client_poll_events(c) };
		int t, f;

		assert_true(++spins < 10000);
		assert_true(poll(&p, 1, sealpost_client_timeout(c)) >= 0);
		assert_int_equal(sealpost_client_step(c), 0);
		while (sealpost_client_next_event(c, &ev, 0) == 1) {
			assert_int_equal(ev.type, SEALPOST_EVENT_DISCONNECTED);
			assert_int_equal(ev.error, -ECONNREFUSED);
			disconnected++;
		}
		f = sealpost_client_fd(c);
		t = sealpost_client_timeout(c);
		/* A new wait starts when an attempt ended: no socket, and the
		 * timer moved out instead of counting down. */
		if (f < 0 && (prev_fd >= 0 || t > prev_t))
			waits[n++] = t;
		prev_fd = f;
		prev_t = t;
	}
	for (n = 0; n < 5; n++)
		assert_true(waits[n] >= 0 && waits[n] <= bound[n]);
	/* Grown past the first step (lower bounds are half a step, less what
	 * the loop itself took). */
	assert_true(waits[3] > bound[0]);
	assert_true(waits[4] > bound[0]);
	assert_int_equal(disconnected, 1);
	assert_false(sealpost_client_is_connected(c));
	sealpost_client_close(c);

	/* Bounds the wrong way round are refused. */
	o.reconnect_min_ms = 900;
	assert_int_equal(sealpost_client_start(&c, addr, k, NULL, &o), -EINVAL);
	sealpost_key_free(k);
}

/* The quote of docs/examples/<name> in docs/CLIENT.md is the file, byte for byte. */
static void check_quoted(const char *name)
{
	const char *src = getenv("SP_SOURCE_DIR");
	char path[512], begin[128], end[128], *doc, *code, *b, *e;

	assert_non_null(src);
	snprintf(begin, sizeof(begin), "<!-- docs/examples/%s begins -->\n```c\n", name);
	snprintf(end, sizeof(end), "```\n<!-- docs/examples/%s ends -->", name);
	snprintf(path, sizeof(path), "%s/docs/CLIENT.md", src);
	doc = slurp(path);
	assert_non_null(doc);
	snprintf(path, sizeof(path), "%s/docs/examples/%s", src, name);
	code = slurp(path);
	assert_non_null(code);
	b = strstr(doc, begin);
	assert_non_null(b);
	b += strlen(begin);
	e = strstr(b, end);
	assert_non_null(e);
	assert_int_equal((size_t)(e - b), strlen(code));
	assert_memory_equal(b, code, strlen(code));
	free(doc);
	free(code);
}

static void test_docs_example_quoted(void **state)
{
	(void)state;
	check_quoted("echo.c");
	check_quoted("poll_loop.c");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_roundtrip),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_status_string),
		cmocka_unit_test(test_envelope),
		cmocka_unit_test(test_connect_args),
		cmocka_unit_test(test_protocol_basic),
		cmocka_unit_test(test_protocol_deliver_malformed),
		cmocka_unit_test(test_protocol_wrong_direction),
		cmocka_unit_test(test_protocol_bad_tag),
		cmocka_unit_test(test_protocol_wrong_server_key),
		cmocka_unit_test(test_protocol_limits_and_loop),
		cmocka_unit_test(test_protocol_abrupt_close),
		cmocka_unit_test(test_protocol_split_transport),
		cmocka_unit_test(test_protocol_backpressure),
		cmocka_unit_test(test_protocol_ack_auto),
		cmocka_unit_test(test_protocol_ack_manual),
		cmocka_unit_test(test_send_ex_and_opts),
		cmocka_unit_test(test_foreign_api),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_foreign_bytewise),
		cmocka_unit_test(test_docs_example_quoted),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
