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
	free(text);
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
