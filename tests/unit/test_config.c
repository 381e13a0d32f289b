/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_config.c: sealpostd's configuration: defaults, every option, range
 * and syntax errors that name the option, --help text.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sp_config.h"
#include "sp_limits.h"

static char err[SP_CONFIG_ERR_MAX];

/* Parses a NULL-terminated list of arguments (argv[0] added) over defaults. */
static int parse(struct sp_config *c, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;

	sp_config_defaults(c);
	argv[argc++] = "sealpostd";
	va_start(ap, c);
	for (char *a; (a = va_arg(ap, char *)) != NULL;)
		argv[argc++] = a;
	va_end(ap);
	err[0] = '\0';
	return sp_config_parse(c, argc, argv, err, sizeof(err));
}

static void test_defaults(void **state)
{
	struct sp_config c;
	const struct sockaddr_in *a = (const struct sockaddr_in *)&c.listen_addr;

	(void)state;
	assert_int_equal(parse(&c, NULL), SP_CONFIG_OK);
	assert_string_equal(c.listen, "127.0.0.1:7400");
	assert_int_equal(a->sin_family, AF_INET);
	assert_int_equal(ntohs(a->sin_port), 7400);
	assert_int_equal(ntohl(a->sin_addr.s_addr), INADDR_LOOPBACK);
	assert_string_equal(c.data_dir, "./data");
	assert_int_equal(c.max_conns, 16000);
	assert_int_equal(c.max_envelope, SP_BODY_MAX);
	assert_int_equal(c.handshake_timeout_ms, 10000);
	assert_int_equal(c.idle_timeout_s, 600);
	assert_true(c.sendq_max >= 65536);
	assert_true(c.handshake_rate > 0);
	assert_int_equal(c.recv_buffers & (c.recv_buffers - 1), 0);
	assert_true(c.recv_buffer_size >= 64);
	assert_int_equal(c.log_level, SP_LOG_INFO);
	assert_int_equal(sp_config_sendq_hard(&c), 2 * c.sendq_max);
}

static void test_every_option(void **state)
{
	struct sp_config c;

	(void)state;
	assert_int_equal(parse(&c, "--listen", "0.0.0.0:9000", "--data-dir", "/tmp/x y",
			       "--max-conns", "12", "--max-envelope", "1000",
			       "--sendq-max", "70000",
			       "--handshake-timeout", "250", "--idle-timeout", "0",
			       "--handshake-rate", "7", "--recv-buffers", "64",
			       "--recv-buffer-size", "4096", "--close-grace", "0",
			       "--log-rate", "3", "--log-level", "debug", NULL),
			 SP_CONFIG_OK);
	assert_string_equal(c.listen, "0.0.0.0:9000");
	assert_int_equal(ntohs(((struct sockaddr_in *)&c.listen_addr)->sin_port), 9000);
	assert_string_equal(c.data_dir, "/tmp/x y");
	assert_int_equal(c.max_conns, 12);
	assert_int_equal(c.max_envelope, 1000);
	assert_int_equal(c.sendq_max, 70000);
	assert_int_equal(c.handshake_timeout_ms, 250);
	assert_int_equal(c.idle_timeout_s, 0);
	assert_int_equal(c.handshake_rate, 7);
	assert_int_equal(c.recv_buffers, 64);
	assert_int_equal(c.recv_buffer_size, 4096);
	assert_int_equal(c.close_grace_ms, 0);
	assert_int_equal(c.log_rate, 3);
	assert_int_equal(c.log_level, SP_LOG_DEBUG);
}

/* --registration open|token (app/sp_registration.c): default, both
 * spellings, a wrong word, and --check-config's line. */
static void test_registration(void **state)
{
	struct sp_config c;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_int_equal(parse(&c, NULL), SP_CONFIG_OK);
	assert_int_equal(c.registration, SP_REGISTRATION_OPEN);
	assert_int_equal(parse(&c, "--registration", "token", NULL), SP_CONFIG_OK);
	assert_int_equal(c.registration, SP_REGISTRATION_TOKEN);
	assert_int_equal(parse(&c, "--registration=open", NULL), SP_CONFIG_OK);
	assert_int_equal(c.registration, SP_REGISTRATION_OPEN);
	assert_true(parse(&c, "--registration", "tokens", NULL) < 0);
	assert_non_null(strstr(err, "open or token"));
	assert_int_equal(parse(&c, "--registration", "token", NULL), SP_CONFIG_OK);
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	sp_config_print(f, &c);
	fclose(f);
	assert_non_null(strstr(buf, "\nregistration = token\n"));
	free(buf);
}

static void test_equals_form(void **state)
{
	struct sp_config c;

	(void)state;
	assert_int_equal(parse(&c, "--max-conns=99", "--log-level=warn", "--listen=[::1]:7401",
			       NULL), SP_CONFIG_OK);
	assert_int_equal(c.max_conns, 99);
	assert_int_equal(c.log_level, SP_LOG_WARN);
	assert_int_equal(c.listen_addr.ss_family, AF_INET6);
	assert_int_equal(ntohs(((struct sockaddr_in6 *)&c.listen_addr)->sin6_port), 7401);
	assert_int_equal(c.listen_addr_len, sizeof(struct sockaddr_in6));
}

static void test_listen_forms(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;

	(void)state;
	assert_int_equal(sp_config_parse_listen("127.0.0.1:1", &ss, &len), 0);
	assert_int_equal(sp_config_parse_listen("[::]:65535", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	/* Errors: no port, port 0 or too big, names, bare v6, junk after port. */
	assert_int_equal(sp_config_parse_listen("127.0.0.1", &ss, &len), -EINVAL);
	assert_int_equal(sp_config_parse_listen("127.0.0.1:0", &ss, &len), -EINVAL);
	assert_int_equal(sp_config_parse_listen("127.0.0.1:65536", &ss, &len), -EINVAL);
	assert_int_equal(sp_config_parse_listen("localhost:7400", &ss, &len), -EINVAL);
	assert_int_equal(sp_config_parse_listen("::1:7400", &ss, &len), -EINVAL);
	assert_int_equal(sp_config_parse_listen("[::1]7400", &ss, &len), -EINVAL);
	assert_int_equal(sp_config_parse_listen("127.0.0.1:74x", &ss, &len), -EINVAL);
	assert_int_equal(sp_config_parse_listen(":7400", &ss, &len), -EINVAL);
	assert_int_equal(sp_config_parse_listen("[127.0.0.1]:7400", &ss, &len), -EINVAL);
}

/* Each bad value must be refused with a message that names its option. */
static void expect_error(const char *opt, const char *val, const char *name)
{
	struct sp_config c;

	assert_int_equal(parse(&c, opt, val, NULL), -EINVAL);
	if (!strstr(err, name)) {
		fprintf(stderr, "error for %s %s does not name it: %s\n", opt, val, err);
		fail();
	}
}

static void test_range_errors(void **state)
{
	(void)state;
	expect_error("--max-conns", "0", "--max-conns");
	expect_error("--max-conns", "99999999", "--max-conns");
	expect_error("--max-envelope", "64001", "--max-envelope");
	expect_error("--max-envelope", "0", "--max-envelope");
	expect_error("--sendq-max", "100", "--sendq-max");
	expect_error("--handshake-timeout", "10", "--handshake-timeout");
	expect_error("--idle-timeout", "-1", "--idle-timeout");
	expect_error("--recv-buffers", "100", "--recv-buffers");  /* not a power of two */
	expect_error("--recv-buffers", "65536", "--recv-buffers");
	expect_error("--recv-buffer-size", "1", "--recv-buffer-size");
	expect_error("--close-grace", "abc", "--close-grace");
	expect_error("--log-rate", "0", "--log-rate");
	expect_error("--log-level", "verbose", "--log-level");
	expect_error("--listen", "nowhere", "--listen");
	expect_error("--data-dir", "", "--data-dir");
	/* Paths that would not survive --check-config's "name = VALUE" lines
	 * (found by fuzz_config: a newline in --config's path injected lines
	 * into the printed configuration). */
	expect_error("--config", "a\nlisten = 0.0.0.0:1", "--config");
	expect_error("--data-dir", "dir\r", "--data-dir");
	expect_error("--data-dir", " lead", "--data-dir");
	expect_error("--data-dir", "trail ", "--data-dir");
	expect_error("--data-dir", ";x", "--data-dir");
	expect_error("--data-dir", "a ;b", "--data-dir");
	{
		struct sp_config c;

		assert_int_equal(parse(&c, "--data-dir", "a;b c#d", NULL), 0);
		assert_string_equal(c.data_dir, "a;b c#d");
	}
	expect_error("--handshake-rate", "12 ", "--handshake-rate");
	expect_error("--max-conns", "18446744073709551616", "--max-conns");
}

static void test_syntax_errors(void **state)
{
	struct sp_config c;

	(void)state;
	assert_int_equal(parse(&c, "--bogus", "1", NULL), -EINVAL);
	assert_non_null(strstr(err, "--bogus"));
	assert_int_equal(parse(&c, "--max-conns", NULL), -EINVAL);  /* missing value */
	assert_non_null(strstr(err, "--max-conns"));
	assert_int_equal(parse(&c, "stray", NULL), -EINVAL);
	assert_non_null(strstr(err, "stray"));
	assert_int_equal(parse(&c, "--help=1", NULL), -EINVAL);
	assert_non_null(strstr(err, "--help"));
	/* A failed parse must not be mistaken for a partial success. */
	assert_int_equal(parse(&c, "--max-conns", "5", "--max-conns", "x", NULL), -EINVAL);
}

static void test_help_version(void **state)
{
	struct sp_config c;

	(void)state;
	assert_int_equal(parse(&c, "--help", NULL), SP_CONFIG_HELP);
	assert_int_equal(parse(&c, "--version", NULL), SP_CONFIG_VERSION);
	assert_int_equal(parse(&c, "--version", "--help", NULL), SP_CONFIG_HELP);
}

static void test_usage_lists_options(void **state)
{
	static const char *const names[] = {
		"--listen", "--data-dir", "--max-conns", "--max-envelope", "--sendq-max",
		"--handshake-timeout", "--idle-timeout", "--handshake-rate", "--recv-buffers",
		"--recv-buffer-size", "--close-grace", "--log-rate", "--log-level", "--help",
		"--version", "default: 16000", "default: 127.0.0.1:7400", "default: ./data",
		"default: 64000", "default: 10000", "default: 600",
	};
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_non_null(f);
	sp_config_usage(f, "sealpostd");
	fclose(f);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strstr(text, names[i])) {
			fprintf(stderr, "--help lacks %s\n", names[i]);
			fail();
		}
	}
	/* The test suite's options are not for operators. */
	assert_null(strstr(text, "--test-"));
	free(text);
}

/* --- the config file -------------------------------------------------------- */

static char file_path[64];

/* Writes text to a fresh temp file; its path in file_path. */
static const char *write_file(const char *text)
{
	int fd;

	snprintf(file_path, sizeof(file_path), "/tmp/test-config-XXXXXX");
	fd = mkstemp(file_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return file_path;
}

/* Parses text as a config file over defaults; the file is removed after. */
static int parse_text(struct sp_config *c, const char *text)
{
	int ret;

	sp_config_defaults(c);
	err[0] = '\0';
	ret = sp_config_parse_file(c, write_file(text), err, sizeof(err));
	unlink(file_path);
	return ret;
}

static void test_file_every_key(void **state)
{
	struct sp_config c;

	(void)state;
	assert_int_equal(parse_text(&c,
				    "# a comment\n"
				    "; another\n"
				    "\n"
				    "listen = 0.0.0.0:9000\n"
				    "metrics-listen = [::1]:9401\n"
				    "data-dir = /tmp/x y\n"
				    "lock-timeout = 5\n"
				    "max-conns = 12 ; inline comment\n"
				    "max-envelope=1000\n"
				    "sendq-max = 70000\n"
				    "handshake-timeout = 250\n"
				    "idle-timeout = 0\n"
				    "handshake-rate = 7\n"
				    "recv-buffers = 64\n"
				    "recv-buffer-size = 4096\n"
				    "close-grace = 0\n"
				    "log-rate = 3\n"
				    "log-level = debug\n"), 0);
	assert_string_equal(c.listen, "0.0.0.0:9000");
	assert_int_equal(ntohs(((struct sockaddr_in *)&c.listen_addr)->sin_port), 9000);
	assert_string_equal(c.metrics_listen, "[::1]:9401");
	assert_string_equal(c.data_dir, "/tmp/x y");
	assert_int_equal(c.lock_timeout_s, 5);
	assert_int_equal(c.max_conns, 12);
	assert_int_equal(c.max_envelope, 1000);
	assert_int_equal(c.sendq_max, 70000);
	assert_int_equal(c.handshake_timeout_ms, 250);
	assert_int_equal(c.idle_timeout_s, 0);
	assert_int_equal(c.handshake_rate, 7);
	assert_int_equal(c.recv_buffers, 64);
	assert_int_equal(c.recv_buffer_size, 4096);
	assert_int_equal(c.close_grace_ms, 0);
	assert_int_equal(c.log_rate, 3);
	assert_int_equal(c.log_level, SP_LOG_DEBUG);
	assert_string_equal(c.config_path, file_path);
}

/* Each error names the file and the line, and says what is wrong. */
static void expect_file_error(const char *text, int line, const char *what)
{
	struct sp_config c;
	char where[96];

	assert_int_equal(parse_text(&c, text), -EINVAL);
	snprintf(where, sizeof(where), "%s:%d: ", file_path, line);
	if (strncmp(err, where, strlen(where)) != 0 || !strstr(err, what)) {
		fprintf(stderr, "expected '%s...%s', got: %s\n", where, what, err);
		fail();
	}
}

static void test_file_errors(void **state)
{
	char longline[400];

	(void)state;
	expect_file_error("max-conns = 5\n\nbogus = 1\n", 3, "unknown key 'bogus'");
	expect_file_error("max-conns = 0\n", 1, "max-conns: 0 is out of range");
	expect_file_error("# c\nmax-conns = lots\n", 2, "max-conns: 'lots' is not a number");
	expect_file_error("max-conns = 16 # not a comment here\n", 1, "not a number");
	expect_file_error("recv-buffers = 100\n", 1, "not a power of two");
	expect_file_error("log-level = loud\n", 1, "log-level");
	expect_file_error("listen = localhost:7400\n", 1, "listen");
	expect_file_error("metrics-listen = 9400\n", 1, "metrics-listen");
	expect_file_error("data-dir =\n", 1, "data-dir: empty");
	expect_file_error("max-conns = 5\njust words\n", 2, "expected 'key = value'");
	expect_file_error("max-conns = 5\nmax-conns = 6\n", 2, "already set on line 1");
	/* A section is refused on its own line, also when no key follows it. */
	expect_file_error("[sealpostd]\nmax-conns = 5\n", 1, "sections are not used ([sealpostd])");
	expect_file_error("max-conns = 5\n# c\n  [extra]  \n", 3, "sections are not used");
	expect_file_error("max-conns = 5\n[tail]", 2, "sections are not used ([tail])");
	expect_file_error("max-conns = 5\n[]\n", 2, "sections are not used");
	/* Command-line only. */
	expect_file_error("config = /etc/other.conf\n", 1, "unknown key 'config'");
	expect_file_error("check-config = 1\n", 1, "unknown key 'check-config'");
	expect_file_error("help = 1\n", 1, "unknown key 'help'");
	/* The first error wins, whether a syntax error or a bad value. */
	expect_file_error("x y z\nmax-conns = 0\n", 1, "expected 'key = value'");
	expect_file_error("max-conns = 0\nx y z\n", 1, "out of range");
	/* A line longer than libinih's buffer is refused, not split in two. */
	memset(longline, 'a', sizeof(longline));
	memcpy(longline, "data-dir = /", 12);
	longline[sizeof(longline) - 2] = '\n';
	longline[sizeof(longline) - 1] = '\0';
	expect_file_error(longline, 1, "line longer than");
}

static void test_file_missing(void **state)
{
	struct sp_config c;

	(void)state;
	sp_config_defaults(&c);
	assert_int_equal(sp_config_parse_file(&c, "/nonexistent/sealpostd.conf", err,
					      sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/sealpostd.conf"));
}

/* Builds argv from a NULL-terminated list and runs sp_config_load. */
static int load(struct sp_config *c, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;

	argv[argc++] = "sealpostd";
	va_start(ap, c);
	for (char *a; (a = va_arg(ap, char *)) != NULL;)
		argv[argc++] = a;
	va_end(ap);
	err[0] = '\0';
	return sp_config_load(c, argc, argv, err, sizeof(err));
}

static void test_load_precedence(void **state)
{
	struct sp_config c;
	char path[64];

	(void)state;
	snprintf(path, sizeof(path), "%s",
		 write_file("max-conns = 100\nlog-level = debug\nidle-timeout = 5\n"));
	/* defaults < file < flags, wherever --config stands among the flags */
	assert_int_equal(load(&c, "--max-conns", "7", "--config", path, NULL), SP_CONFIG_OK);
	assert_int_equal(c.max_conns, 7);
	assert_int_equal(c.log_level, SP_LOG_DEBUG);
	assert_int_equal(c.idle_timeout_s, 5);
	assert_int_equal(c.handshake_timeout_ms, SP_DEFAULT_HANDSHAKE_TIMEOUT_MS);
	assert_string_equal(c.config_path, path);
	assert_int_equal(load(&c, "--config=", NULL), -EINVAL);
	assert_int_equal(load(&c, "--config", path, "--check-config", NULL), SP_CONFIG_CHECK);
	assert_int_equal(c.max_conns, 100);
	/* A bad flag is reported even with a good file; a bad file even with good flags. */
	assert_int_equal(load(&c, "--config", path, "--max-conns", "0", NULL), -EINVAL);
	assert_non_null(strstr(err, "--max-conns"));
	unlink(path);
	assert_int_equal(load(&c, "--config", path, NULL), -ENOENT);
	/* --help needs no readable file. */
	assert_int_equal(load(&c, "--config", path, "--help", NULL), SP_CONFIG_HELP);
	assert_int_equal(load(&c, NULL), SP_CONFIG_OK);
	assert_string_equal(c.config_path, "");
}

/* --check-config prints every option; its output is a config file that reads back the same. */
static void test_print_round_trip(void **state)
{
	struct sp_config c, d;
	char *text = NULL, *text2 = NULL;
	size_t len = 0, len2 = 0;
	FILE *f;

	(void)state;
	assert_int_equal(parse(&c, "--max-conns", "33", "--listen", "[::1]:7401",
			       "--metrics-listen", "off", "--log-level", "warn", NULL),
			 SP_CONFIG_OK);
	f = open_memstream(&text, &len);
	sp_config_print(f, &c);
	fclose(f);
	assert_non_null(strstr(text, "\nmax-conns = 33\n"));
	assert_non_null(strstr(text, "\nlisten = [::1]:7401\n"));
	assert_non_null(strstr(text, "\nmetrics-listen = off\n"));
	assert_non_null(strstr(text, "\nlog-level = warn\n"));
	assert_non_null(strstr(text, "\nidle-timeout = 600\n"));     /* defaults too */
	assert_null(strstr(text, "check-config"));
	assert_null(strstr(text, "\nhelp"));
	assert_int_equal(parse_text(&d, text), 0);
	f = open_memstream(&text2, &len2);
	sp_config_print(f, &d);
	fclose(f);
	/* Same after the header line (which names the file). */
	assert_string_equal(strchr(text, '\n'), strchr(text2, '\n'));
	free(text);
	free(text2);
}

/* The admin socket's options: their values, ranges and the two modes. */
static void test_admin_options(void **state)
{
	struct sp_config c;
	char long_path[200];

	(void)state;
	assert_int_equal(parse(&c, NULL), SP_CONFIG_OK);
	assert_string_equal(c.admin_socket, "");
	assert_int_equal(c.admin_socket_mode, 0600);
	assert_int_equal(c.admin_max_conns, SP_DEFAULT_ADMIN_MAX_CONNS);
	assert_int_equal(parse(&c, "--admin-socket", "/run/x.sock", "--admin-socket-mode", "0660",
			       "--admin-max-conns", "2", "--admin-request-max", "64",
			       "--admin-timeout", "100", NULL), SP_CONFIG_OK);
	assert_string_equal(c.admin_socket, "/run/x.sock");
	assert_int_equal(c.admin_socket_mode, 0660);
	assert_int_equal(c.admin_max_conns, 2);
	assert_int_equal(c.admin_request_max, 64);
	assert_int_equal(c.admin_timeout_ms, 100);
	assert_int_equal(parse(&c, "--admin-socket", "off", NULL), SP_CONFIG_OK);
	assert_string_equal(c.admin_socket, "off");
	assert_int_equal(parse(&c, "--admin-socket-mode", "0666", NULL), -EINVAL);
	assert_non_null(strstr(err, "0600 or 0660"));
	assert_int_equal(parse(&c, "--admin-socket-mode", "600", NULL), -EINVAL);
	assert_int_equal(parse(&c, "--admin-max-conns", "0", NULL), -EINVAL);
	assert_int_equal(parse(&c, "--admin-request-max", "70000", NULL), -EINVAL);
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	assert_int_equal(parse(&c, "--admin-socket", long_path, NULL), -EINVAL);
	assert_non_null(strstr(err, "longer than 107"));
}

/* Reload: reloadable options that differ are applied; the others are only
 * reported; equal options are not mentioned. */
static void test_reload(void **state)
{
	struct sp_config live, fresh;
	struct sp_config_change ch[4];
	size_t n;

	(void)state;
	assert_int_equal(parse(&live, "--max-envelope", "5000", NULL), SP_CONFIG_OK);
	assert_int_equal(parse(&fresh, "--max-envelope", "1000", "--max-conns", "7",
			       "--log-rate", "4", "--listen", "127.0.0.1:9999", NULL), SP_CONFIG_OK);
	assert_int_equal(sp_config_reload(&live, &live, ch, 4), 0);
	n = sp_config_reload(&live, &fresh, ch, 4);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(ch[i].name, "max-envelope")) {
			assert_true(ch[i].applied);
			assert_string_equal(ch[i].old_value, "5000");
			assert_string_equal(ch[i].new_value, "1000");
		} else if (!strcmp(ch[i].name, "log-rate")) {
			assert_true(ch[i].applied);
		} else {
			assert_false(ch[i].applied);
			assert_true(!strcmp(ch[i].name, "max-conns") || !strcmp(ch[i].name, "listen"));
		}
	}
	assert_int_equal(live.max_envelope, 1000);
	assert_int_equal(live.log_rate, 4);
	assert_int_equal(live.max_conns, SP_DEFAULT_MAX_CONNS);      /* needs a restart */
	assert_string_equal(live.listen, SP_DEFAULT_LISTEN);
	/* Applied already: a second reload finds only the restart ones. */
	assert_int_equal(sp_config_reload(&live, &fresh, ch, 1), 2);
	assert_false(ch[0].applied);
	assert_true(sp_config_reloadable("sendq-max"));
	assert_true(sp_config_reloadable("handshake-rate"));
	assert_false(sp_config_reloadable("idle-timeout"));
	assert_false(sp_config_reloadable("nonsense"));
	assert_string_equal(sp_config_reloadable_name(0), "max-envelope");
	assert_null(sp_config_reloadable_name(100));
}

/* --cluster: off by default; a list of nats://HOST:PORT or nothing. */
static void test_cluster(void **state)
{
	static const char *const bad[] = {
		"127.0.0.1:4222", "http://a:4222", "nats://a", "nats://a:0", "nats://a:65536",
		"nats://a:4222,", "nats://a:4222,,nats://b:4222", "nats://u@a:4222",
		"nats://a:4222/x", "nats:// a:4222", "nats://:4222",
	};
	struct sp_config *c = malloc(sizeof(*c));
	char many[SP_CONFIG_CLUSTER_MAX] = "";

	(void)state;
	assert_non_null(c);
	assert_int_equal(parse(c, NULL), SP_CONFIG_OK);
	assert_string_equal(c->cluster, "");
	assert_int_equal(c->cluster_replicas, 3);
	assert_int_equal(parse(c, "--cluster", "nats://127.0.0.1:4222,nats://[::1]:4223,"
				  "nats://nats-3.example:4222", NULL), SP_CONFIG_OK);
	assert_string_equal(c->cluster, "nats://127.0.0.1:4222,nats://[::1]:4223,"
					"nats://nats-3.example:4222");
	assert_int_equal(parse(c, "--cluster=", NULL), SP_CONFIG_OK);
	assert_string_equal(c->cluster, "");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(c, "--cluster", bad[i], NULL), -EINVAL);
		assert_non_null(strstr(err, "--cluster"));
	}
	for (int i = 0; i <= SP_CONFIG_CLUSTER_URLS_MAX; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "%snats://h%d:4222",
			 i ? "," : "", i);
	assert_int_equal(parse(c, "--cluster", many, NULL), -EINVAL);
	assert_non_null(strstr(err, "more than 16"));
	assert_int_equal(parse(c, "--cluster-replicas", "0", NULL), -EINVAL);
	assert_int_equal(parse(c, "--cluster-replicas", "6", NULL), -EINVAL);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_option),
		cmocka_unit_test(test_equals_form),
		cmocka_unit_test(test_listen_forms),
		cmocka_unit_test(test_range_errors),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_help_version),
		cmocka_unit_test(test_usage_lists_options),
		cmocka_unit_test(test_file_every_key),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_file_missing),
		cmocka_unit_test(test_load_precedence),
		cmocka_unit_test(test_print_round_trip),
		cmocka_unit_test(test_admin_options),
		cmocka_unit_test(test_registration),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_cluster),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
