/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_ws_nginx.c: wss:// through Debian's nginx in front of sealpostd, with
 * the configuration docs/OPERATIONS.md gives ("WebSocket behind nginx"),
 * read from docs/examples/nginx-sealpost.conf itself so that the example
 * cannot rot: nginx runs from a temporary prefix on a loopback port with a
 * self-signed certificate made by openssl at test time, terminates TLS and
 * proxies ws to the broker's --ws-listen port. A C client (the test
 * support's WebSocket client over a TLS relay thread, OpenSSL) does IK and
 * XX through it and exchanges envelopes with a TCP device both ways.
 *
 * Skipped, saying why, where nginx or openssl is not installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "sp_clock.h"
#include "sp_limits.h"
#include "support.h"
#include "support_raw.h"
#include "support_ws.h"

enum { WAIT_MS = 10000 };

static const char *const nginx_bin = "/usr/sbin/nginx";
static const char *const openssl_bin = "/usr/bin/openssl";

static struct sp_it_broker broker;
static char prefix[64];
static uint16_t nginx_port;
static pid_t nginx_pid = -1;
static uint64_t next_id = 1;

static uint16_t free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t port = 0;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* docs/examples/nginx-sealpost.conf with its placeholders filled in. */
static int write_config(void)
{
	char src[4096], dst[128], *text, *out;
	const char *dir = getenv("SP_SOURCE_DIR");
	FILE *f;
	long n;
	size_t o = 0;

	snprintf(src, sizeof(src), "%s/docs/examples/nginx-sealpost.conf", dir ? dir : ".");
	f = fopen(src, "r");
	if (!f)
		return -errno;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	out = calloc(1, (size_t)n * 2 + 4096);
	if (!text || !out || fread(text, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	/* The example is the server block an operator includes; the test
	 * wraps it in a main config of its own (temporary prefix, no root). */
	o += (size_t)sprintf(out + o,
			     "worker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log info;\n"
			     "events { worker_connections 64; }\nhttp {\n  access_log off;\n"
			     "  client_body_temp_path %s/t1; proxy_temp_path %s/t2;\n"
			     "  fastcgi_temp_path %s/t3; uwsgi_temp_path %s/t4; scgi_temp_path %s/t5;\n",
			     prefix, prefix, prefix, prefix, prefix, prefix, prefix);
	for (char *p = text; *p;) {
		char port[8];

		if (strncmp(p, "443", 3) == 0 && strncmp(p + 3, " ssl", 4) == 0) {
			o += (size_t)sprintf(out + o, "127.0.0.1:%u", (unsigned)nginx_port);
			p += 3;
		} else if (strncmp(p, "127.0.0.1:7401", 14) == 0) {
			snprintf(port, sizeof(port), "%u", (unsigned)broker.ws_port);
			o += (size_t)sprintf(out + o, "127.0.0.1:%s", port);
			p += 14;
		} else if (strncmp(p, "/etc/ssl/certs/broker.example.pem", 33) == 0) {
			o += (size_t)sprintf(out + o, "%s/cert.pem", prefix);
			p += 33;
		} else if (strncmp(p, "/etc/ssl/private/broker.example.key", 35) == 0) {
			o += (size_t)sprintf(out + o, "%s/key.pem", prefix);
			p += 35;
		} else {
			out[o++] = *p++;
		}
	}
	o += (size_t)sprintf(out + o, "}\n");
	snprintf(dst, sizeof(dst), "%s/nginx.conf", prefix);
	f = fopen(dst, "w");
	if (!f || fwrite(out, 1, o, f) != o || fclose(f))
		return -EIO;
	free(text);
	free(out);
	return 0;
}

static int wait_port(uint16_t port)
{
	for (int i = 0; i < 200; i++) {
		int fd = sp_it_tcp_connect(port);

		if (fd >= 0) {
			close(fd);
			return 0;
		}
		usleep(50000);
	}
	return -ETIMEDOUT;
}

static int setup(void **state)
{
	static const char *const args[] = {
		"--ws-listen", "127.0.0.1:0", "--mailbox-sender-share", "100", "--store-min-free", "0",
		NULL,
	};
	char cn[] = "/CN=localhost", key[128], cert[128], conf[128], out[256];
	int st;

	(void)state;
	if (access(nginx_bin, X_OK) || access(openssl_bin, X_OK))
		return 0;               /* each test skips, saying why */
	snprintf(prefix, sizeof(prefix), "/tmp/sp_nginx_XXXXXX");
	if (!mkdtemp(prefix))
		return -1;
	/* Worker processes (nobody, when started as root) need the prefix. */
	chmod(prefix, 0755);
	snprintf(key, sizeof(key), "%s/key.pem", prefix);
	snprintf(cert, sizeof(cert), "%s/cert.pem", prefix);
	{
		char *const argv[] = { (char *)openssl_bin, "req", "-x509", "-newkey", "ec",
				       "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
				       key, "-out", cert, "-days", "1", "-subj", cn,
				       "-addext", "subjectAltName=DNS:localhost", NULL };

		st = sp_it_run(argv, NULL, out, sizeof(out), 60);
		if (st != 0) {
			fprintf(stderr, "[it_ws_nginx] openssl req failed: %d\n", st);
			return -1;
		}
	}
	if (sp_it_broker_start(&broker, NULL, args) || !broker.ws_port)
		return -1;
	nginx_port = free_port();
	if (!nginx_port || write_config())
		return -1;
	snprintf(conf, sizeof(conf), "%s/nginx.conf", prefix);
	nginx_pid = fork();
	if (nginx_pid == 0) {
		execl(nginx_bin, nginx_bin, "-p", prefix, "-c", conf, "-g", "daemon off;", (char *)NULL);
		_exit(127);
	}
	if (nginx_pid < 0 || wait_port(nginx_port)) {
		fprintf(stderr, "[it_ws_nginx] nginx did not start; its config is %s\n", conf);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	int st = 0;

	(void)state;
	if (nginx_pid > 0) {
		kill(nginx_pid, SIGQUIT);
		waitpid(nginx_pid, NULL, 0);
	}
	if (broker.pid > 0) {
		st = sp_it_broker_stop(&broker);
		sp_it_rmrf(broker.data_dir);
	}
	if (prefix[0] && !getenv("SP_IT_KEEP"))
		sp_it_rmrf(prefix);
	return st == 0 ? 0 : -1;
}

/* --- a TLS relay: the test's socket <-> TLS to nginx ----------------------------- */

struct relay {
	int plain;                      /* our end of the socketpair */
	SSL *ssl;
	int tls_fd;
};

static void *relay_run(void *arg)
{
	struct relay *r = arg;
	uint8_t buf[16384];

	for (;;) {
		struct pollfd p[2] = { { .fd = r->plain, .events = POLLIN },
				       { .fd = r->tls_fd, .events = POLLIN } };
		int n;

		if (!SSL_pending(r->ssl) && poll(p, 2, 30000) <= 0)
			break;
		if (SSL_pending(r->ssl) || (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			n = SSL_read(r->ssl, buf, sizeof(buf));
			/* Non-blocking: TLS 1.3 session tickets are records without data. */
			if (n <= 0 && SSL_get_error(r->ssl, n) == SSL_ERROR_WANT_READ)
				continue;
			if (n <= 0)
				break;
			if (send(r->plain, buf, (size_t)n, MSG_NOSIGNAL) != n)
				break;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			int w;

			n = (int)recv(r->plain, buf, sizeof(buf), 0);
			if (n <= 0)
				break;
			while ((w = SSL_write(r->ssl, buf, n)) <= 0) {
				int e = SSL_get_error(r->ssl, w);
				struct pollfd o = { .fd = r->tls_fd,
						    .events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT };

				if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
					goto out;
				poll(&o, 1, 1000);
			}
		}
	}
out:
	shutdown(r->plain, SHUT_RDWR);
	return NULL;
}

/* c's socket becomes one end of a socketpair whose other end is relayed,
 * over TLS verified against the test's certificate, to nginx. */
static int wss_connect(struct sp_raw *c, struct relay *r, pthread_t *th)
{
	char cert[128];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int sv[2];

	snprintf(cert, sizeof(cert), "%s/cert.pem", prefix);
	if (!ctx || SSL_CTX_load_verify_locations(ctx, cert, NULL) != 1)
		return -EINVAL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	r->tls_fd = sp_it_tcp_connect(nginx_port);
	if (r->tls_fd < 0)
		return r->tls_fd;
	r->ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);
	SSL_set_tlsext_host_name(r->ssl, "localhost");
	SSL_set1_host(r->ssl, "localhost");
	SSL_set_fd(r->ssl, r->tls_fd);
	if (SSL_connect(r->ssl) != 1) {
		ERR_print_errors_fp(stderr);
		return -EPROTO;
	}
	fcntl(r->tls_fd, F_SETFL, fcntl(r->tls_fd, F_GETFL) | O_NONBLOCK);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return -errno;
	c->fd = sv[0];
	r->plain = sv[1];
	return pthread_create(th, NULL, relay_run, r) ? -EAGAIN : 0;
}

static void relay_end(struct sp_raw *c, struct relay *r, pthread_t th)
{
	sp_raw_close(c);                /* the relay sees EOF and stops */
	pthread_join(th, NULL);
	close(r->plain);
	SSL_free(r->ssl);
	close(r->tls_fd);
}

static bool skipped(void)
{
	if (access(nginx_bin, X_OK) == 0 && access(openssl_bin, X_OK) == 0)
		return false;
	fprintf(stderr, "skipped: %s or %s not installed (scripts/deps.sh installs nginx and "
		"openssl)\n", nginx_bin, openssl_bin);
	return true;
}

static void exchange(struct sp_raw *from, struct sp_raw *to, const char *body)
{
	uint64_t id = next_id++;
	uint8_t plain[64];
	struct sp_raw_frame f;
	uint32_t status = 0;
	size_t off = 0;

	assert_int_equal(sp_raw_send_envelope(from, to->s_pub, id, (const uint8_t *)body, strlen(body)), 0);
	assert_int_equal(sp_raw_expect_result(from, id, &status, WAIT_MS), 0);
	assert_true(status == SP_STATUS_DELIVERED || status == SP_STATUS_ACCEPTED);
	assert_int_equal(sp_raw_wait_frame(to, SP_FRAME_DELIVER, &f, WAIT_MS), 0);
	assert_int_equal(f.body_len, strlen(body));
	assert_memory_equal(f.body, body, f.body_len);
	assert_int_equal(sp_raw_put_simple(plain, sizeof(plain), &off, SP_FRAME_ACK, f.seq, NULL, 0), 0);
	assert_int_equal(sp_raw_send_plain(to, plain, off), 0);
}

static void through_nginx(uint8_t pattern)
{
	struct sp_raw w, t;
	struct relay r;
	pthread_t th;
	int status = 0;

	memset(&w, 0, sizeof(w));
	memset(&t, 0, sizeof(t));
	assert_int_equal(sp_raw_init(&w), 0);
	assert_int_equal(sp_raw_init(&t), 0);
	assert_int_equal(wss_connect(&w, &r, &th), 0);
	assert_int_equal(sp_ws_upgrade(&w, 443, NULL, &status), 0);
	assert_int_equal(status, 101);
	assert_int_equal(sp_raw_handshake(&w, pattern, broker.server_pub, NULL), 0);
	assert_int_equal(sp_raw_open(&t, broker.port, SP_PREAMBLE_PATTERN_XX, broker.server_pub), 0);
	exchange(&w, &t, "wss to tcp");
	exchange(&t, &w, "tcp to wss");
	sp_raw_close(&t);
	relay_end(&w, &r, th);
}

static void test_ik_through_nginx(void **state)
{
	(void)state;
	if (skipped())
		skip();
	through_nginx(SP_PREAMBLE_PATTERN_IK);
}

static void test_xx_through_nginx(void **state)
{
	(void)state;
	if (skipped())
		skip();
	through_nginx(SP_PREAMBLE_PATTERN_XX);
}

/* A path the example does not proxy: nginx itself answers 404. */
static void test_other_path(void **state)
{
	const struct sp_ws_request req = { .path = "/admin" };
	struct sp_raw w;
	struct relay r;
	pthread_t th;
	int status = 0;

	(void)state;
	if (skipped())
		skip();
	memset(&w, 0, sizeof(w));
	assert_int_equal(sp_raw_init(&w), 0);
	assert_int_equal(wss_connect(&w, &r, &th), 0);
	assert_int_equal(sp_ws_upgrade(&w, 443, &req, &status), 0);
	assert_int_equal(status, 404);
	relay_end(&w, &r, th);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ik_through_nginx),
		cmocka_unit_test(test_xx_through_nginx),
		cmocka_unit_test(test_other_path),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
