/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_cli_conventions.c: the `sealpost` CLI's conventions against real
 * sealpostd processes: settings from SEALPOST_* environment variables and a
 * config file (and which wins), the default --server, --server-key-file, the
 * known-brokers pin store (a broker with another key on the same address is
 * refused), --version, recv --json (every line parsed with jansson), send
 * --lines and --verbose, and recv carrying on across a broker killed with
 * SIGKILL and restarted.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "sealpost.h"
#include "support.h"

static struct sp_it_broker broker;
static const char *cli;
static char dir[64];
static char key_a[128], key_b[128];
static char hex_a[65], hex_b[65];

enum { RUN_TIMEOUT_S = 60, OUT_CAP = 1 << 20 };

static char *out;       /* OUT_CAP bytes: what a run printed */

/* Runs the CLI; stdout in out; returns its exit status. */
static int run(const char *stdin_data, const char *const *args)
{
	char *argv[40];
	int n = 0;

	argv[n++] = (char *)cli;
	while (*args && n < 39)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	return sp_it_run(argv, stdin_data, out, OUT_CAP, RUN_TIMEOUT_S);
}

/* Same, stderr merged into out. */
static int run_merged(const char *stdin_data, const char *const *args)
{
	char *argv[44];
	int n = 0;

	argv[n++] = "/bin/sh";
	argv[n++] = "-c";
	argv[n++] = "exec \"$0\" \"$@\" 2>&1";
	argv[n++] = (char *)cli;
	while (*args && n < 43)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	return sp_it_run(argv, stdin_data, out, OUT_CAP, RUN_TIMEOUT_S);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Every test starts from: no settings in the environment, no config file,
 * pinning off (/dev/null). */
static void clean_env(void)
{
	unsetenv("SEALPOST_SERVER");
	unsetenv("SEALPOST_SERVER_KEY");
	unsetenv("SEALPOST_KEY");
	unsetenv("XDG_CONFIG_HOME");
	setenv("SEALPOST_CONFIG", "/dev/null", 1);
	setenv("SEALPOST_KNOWN_BROKERS", "/dev/null", 1);
	setenv("HOME", dir, 1);
}

static int setup(void **state)
{
	(void)state;
	cli = getenv("SEALPOST_CLI");
	out = malloc(OUT_CAP);
	if (!cli || !out)
		return -1;
	strcpy(dir, "/tmp/sp_it_cliconv.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	clean_env();
	snprintf(key_a, sizeof(key_a), "%s/a.key", dir);
	snprintf(key_b, sizeof(key_b), "%s/b.key", dir);
	if (run(NULL, (const char *const[]){ "keygen", key_a, NULL }) != 0)
		return -1;
	memcpy(hex_a, out, 64);
	if (run(NULL, (const char *const[]){ "keygen", key_b, NULL }) != 0)
		return -1;
	memcpy(hex_b, out, 64);
	return sp_it_broker_start(&broker, NULL, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	int st;

	(void)state;
	st = sp_it_broker_stop(&broker);
	sp_it_rmrf(broker.data_dir);
	sp_it_rmrf(dir);
	free(out);
	return st == 0 ? 0 : -1;
}

static int each(void **state)
{
	(void)state;
	clean_env();
	return 0;
}

/* Receives n messages for b with the flags set; returns recv's stdout. */
static char *recv_n(int n, int json)
{
	char count[16];

	snprintf(count, sizeof(count), "%d", n);
	assert_int_equal(run(NULL, (const char *const[]){ "recv", "--server", broker.addr,
							  "--server-key", broker.server_pub_hex,
							  "--key", key_b, "--count", count,
							  "--timeout", "30", json ? "--json" : "--raw",
							  NULL }), 0);
	return out;
}

static void test_version(void **state)
{
	char want[64];

	(void)state;
	assert_int_equal(run(NULL, (const char *const[]){ "--version", NULL }), 0);
	snprintf(want, sizeof(want), "sealpost %s\n", sealpost_version());
	assert_string_equal(out, want);
}

static void test_env(void **state)
{
	char wrong[65], closed[64];
	uint8_t k[32];

	(void)state;
	randombytes_buf(k, sizeof(k));
	k[31] &= 0x7f;
	sealpost_key_to_hex(k, wrong);
	/* A port where nothing listens: the broker's own, once stopped. */
	snprintf(closed, sizeof(closed), "127.0.0.1:1");

	setenv("SEALPOST_SERVER", broker.addr, 1);
	setenv("SEALPOST_SERVER_KEY", broker.server_pub_hex, 1);
	setenv("SEALPOST_KEY", key_a, 1);
	/* No flag but --to: everything else from the environment. */
	assert_int_equal(run_merged(NULL, (const char *const[]){ "send", "--to", hex_b, "from env",
								 NULL }), 0);
	/* It used IK with the key from the environment: no learned key printed. */
	assert_null(strstr(out, "server-key"));
	setenv("SEALPOST_KEY", key_b, 1);
	assert_int_equal(run(NULL, (const char *const[]){ "recv", "--count", "1", "--timeout", "30",
							  "--raw", NULL }), 0);
	assert_string_equal(out, "from env");

	/* The environment is really used: a wrong key in it fails the handshake. */
	setenv("SEALPOST_KEY", key_a, 1);
	setenv("SEALPOST_SERVER_KEY", wrong, 1);
	assert_int_equal(run_merged(NULL, (const char *const[]){ "send", "--to", hex_b, "x", NULL }),
			 3);
	assert_non_null(strstr(out, "$SEALPOST_SERVER_KEY"));
	/* Flags win over the environment. */
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--server-key",
							  broker.server_pub_hex, "--to", hex_b,
							  "flag wins", NULL }), 0);
	setenv("SEALPOST_SERVER_KEY", broker.server_pub_hex, 1);
	setenv("SEALPOST_SERVER", closed, 1);
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--to", hex_b, "x", NULL }), 3);
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--server", broker.addr, "--to",
							  hex_b, "server flag wins", NULL }), 0);
	setenv("SEALPOST_KEY", "/nonexistent/key", 1);
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--server", broker.addr, "--to",
							  hex_b, "x", NULL }), 2);
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--server", broker.addr, "--key",
							  key_a, "--to", hex_b, "key flag wins",
							  NULL }), 0);
	/* A bad hex key in the environment is a usage error. */
	setenv("SEALPOST_KEY", key_a, 1);
	setenv("SEALPOST_SERVER", broker.addr, 1);
	setenv("SEALPOST_SERVER_KEY", "nothex", 1);
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--to", hex_b, "x", NULL }), 1);

	clean_env();
	recv_n(3, 0);
	assert_string_equal(out, "flag winsserver flag winskey flag wins");
}

static void test_default_server(void **state)
{
	char wrong[65];
	uint8_t k[32];

	(void)state;
	randombytes_buf(k, sizeof(k));
	k[31] &= 0x7f;
	sealpost_key_to_hex(k, wrong);
	/* Without --server anywhere it goes to sealpostd's default address. A
	 * test cannot own that port, so the key given is one nobody holds: the
	 * connect fails either way, and names the address it tried. */
	assert_int_equal(run_merged(NULL, (const char *const[]){ "send", "--server-key", wrong,
								 "--key", key_a, "--to", hex_b, "x",
								 NULL }), 3);
	assert_non_null(strstr(out, "127.0.0.1:7400"));
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--help", NULL }), 0);
	assert_non_null(strstr(out, "else 127.0.0.1:7400"));
	/* No device key anywhere: a usage error that says where one can go. */
	assert_int_equal(run_merged(NULL, (const char *const[]){ "send", "--to", hex_b, "x", NULL }),
			 1);
	assert_non_null(strstr(out, "SEALPOST_KEY"));
}

static void test_config_file(void **state)
{
	char conf[256], text[1024], pub[512], home_conf[512], sub[256];

	(void)state;
	snprintf(conf, sizeof(conf), "%s/cli.conf", dir);
	snprintf(pub, sizeof(pub), "%s/server.pub", broker.data_dir);
	snprintf(text, sizeof(text),
		 "# a comment, then settings with spaces around them\n"
		 "\n"
		 "  server = %s\n"
		 "server-key-file=%s\n"
		 "key =  %s  \n", broker.addr, pub, key_a);
	write_file(conf, text);
	setenv("SEALPOST_CONFIG", conf, 1);
	assert_int_equal(run_merged(NULL, (const char *const[]){ "send", "--to", hex_b, "from conf",
								 NULL }), 0);
	assert_null(strstr(out, "server-key"));        /* IK with the file's key */

	/* The environment wins over the file, flags over both. */
	snprintf(text, sizeof(text), "server = 127.0.0.1:1\nserver-key = %s\nkey = /nonexistent\n",
		 broker.server_pub_hex);
	write_file(conf, text);
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--to", hex_b, "x", NULL }), 2);
	setenv("SEALPOST_KEY", key_a, 1);
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--to", hex_b, "x", NULL }), 3);
	setenv("SEALPOST_SERVER", broker.addr, 1);
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--to", hex_b, "env over conf",
							  NULL }), 0);
	unsetenv("SEALPOST_SERVER");
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--server", broker.addr, "--to",
							  hex_b, "flag over conf", NULL }), 0);
	unsetenv("SEALPOST_KEY");

	/* The default location, ~/.config/sealpost/cli.conf, with ~/ in a value. */
	unsetenv("SEALPOST_CONFIG");
	snprintf(sub, sizeof(sub), "%s/.config", dir);
	mkdir(sub, 0700);
	snprintf(sub, sizeof(sub), "%s/.config/sealpost", dir);
	mkdir(sub, 0700);
	snprintf(home_conf, sizeof(home_conf), "%s/cli.conf", sub);
	snprintf(text, sizeof(text), "server = %s\nserver-key = %s\nkey = ~/a.key\n", broker.addr,
		 broker.server_pub_hex);
	write_file(home_conf, text);
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--to", hex_b, "home conf",
							  NULL }), 0);
	/* $XDG_CONFIG_HOME moves it: an empty one there, so no key. */
	setenv("XDG_CONFIG_HOME", dir, 1);
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--to", hex_b, "x", NULL }), 1);
	unsetenv("XDG_CONFIG_HOME");
	unlink(home_conf);

	/* A line that is not NAME = VALUE, or names something unknown: exit 1,
	 * with the file and line. A named file that is missing: exit 1. */
	setenv("SEALPOST_CONFIG", conf, 1);
	write_file(conf, "server = 127.0.0.1:1\nsrever = x\n");
	assert_int_equal(run_merged(NULL, (const char *const[]){ "send", "--key", key_a, "--to",
								 hex_b, "x", NULL }), 1);
	snprintf(text, sizeof(text), "%s:2:", conf);
	assert_non_null(strstr(out, text));
	write_file(conf, "just words\n");
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--key", key_a, "--to", hex_b,
							  "x", NULL }), 1);
	unlink(conf);
	assert_int_equal(run_merged(NULL, (const char *const[]){ "send", "--key", key_a, "--to",
								 hex_b, "x", NULL }), 1);
	assert_non_null(strstr(out, conf));
	/* --server-key-file: a file that is not a key is a usage error. */
	write_file(conf, "not a key\n");
	unsetenv("SEALPOST_CONFIG");
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--server", broker.addr,
							  "--server-key-file", conf, "--key", key_a,
							  "--to", hex_b, "x", NULL }), 1);
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--server", broker.addr,
							  "--server-key-file", pub, "--key", key_a,
							  "--to", hex_b, "key file flag", NULL }), 0);
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--server", broker.addr,
							  "--server-key-file", pub, "--server-key",
							  broker.server_pub_hex, "--key", key_a,
							  "--to", hex_b, "x", NULL }), 1);

	recv_n(5, 0);
	assert_string_equal(out, "from conf" "env over conf" "flag over conf" "home conf"
			    "key file flag");
}

static void test_pins(void **state)
{
	struct sp_it_broker other;
	char kb[256], want[512], *file;
	uint16_t port = broker.port;

	(void)state;
	snprintf(kb, sizeof(kb), "%s/pins/known_brokers", dir);
	setenv("SEALPOST_KNOWN_BROKERS", kb, 1);
	/* First contact: XX, the learned key printed and appended. */
	assert_int_equal(run_merged(NULL, (const char *const[]){ "send", "--server", broker.addr,
								 "--key", key_a, "--to", hex_b,
								 "first contact", NULL }), 0);
	snprintf(want, sizeof(want), "server-key %s\n", broker.server_pub_hex);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "added"));
	file = read_file(kb);
	assert_non_null(file);
	snprintf(want, sizeof(want), "%s %s\n", broker.addr, broker.server_pub_hex);
	assert_string_equal(file, want);
	/* Later connections use the pinned key (IK): nothing learned, nothing added. */
	assert_int_equal(run_merged(NULL, (const char *const[]){ "send", "--server", broker.addr,
								 "--key", key_a, "--to", hex_b,
								 "pinned", NULL }), 0);
	assert_null(strstr(out, "server-key"));
	assert_string_equal(read_file(kb), want);
	recv_n(2, 0);
	assert_string_equal(out, "first contactpinned");

	/* Another broker, another key, the same address. */
	assert_int_equal(sp_it_broker_stop(&broker), 0);
	assert_int_equal(sp_it_broker_start_at(&other, NULL, port, NULL), 0);
	assert_memory_not_equal(other.server_pub, broker.server_pub, 32);
	assert_int_equal(run_merged(NULL, (const char *const[]){ "send", "--server", other.addr,
								 "--key", key_a, "--to", hex_b, "x",
								 NULL }), 3);
	assert_non_null(strstr(out, "WARNING: THE BROKER'S KEY HAS CHANGED"));
	assert_non_null(strstr(out, broker.server_pub_hex));   /* the pinned one */
	assert_non_null(strstr(out, other.server_pub_hex));    /* the one it proves */
	snprintf(want, sizeof(want), "%s:1", kb);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "refusing"));
	assert_int_equal(run_merged(NULL, (const char *const[]){ "recv", "--server", other.addr,
								 "--key", key_b, "--timeout", "5",
								 NULL }), 3);
	assert_non_null(strstr(out, "WARNING: THE BROKER'S KEY HAS CHANGED"));
	/* The pin store is untouched: still the first broker's key. */
	snprintf(want, sizeof(want), "%s %s\n", broker.addr, broker.server_pub_hex);
	assert_string_equal(read_file(kb), want);
	/* A key given explicitly is used as given, pins or not. */
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--server", other.addr,
							  "--server-key", other.server_pub_hex, "--key",
							  key_a, "--to", hex_b, "explicit", NULL }), 0);
	/* Once the line is deleted, the next connection is a first contact again. */
	write_file(kb, "# edited by hand\n");
	assert_int_equal(run_merged(NULL, (const char *const[]){ "send", "--server", other.addr,
								 "--key", key_a, "--to", hex_b,
								 "repinned", NULL }), 0);
	assert_non_null(strstr(out, other.server_pub_hex));
	snprintf(want, sizeof(want), "# edited by hand\n%s %s\n", other.addr, other.server_pub_hex);
	assert_string_equal(read_file(kb), want);
	/* A line that is not "ADDRESS HEX": refused, not skipped. */
	write_file(kb, "garbage\n");
	assert_int_equal(run_merged(NULL, (const char *const[]){ "send", "--server", other.addr,
								 "--key", key_a, "--to", hex_b, "x",
								 NULL }), 1);
	snprintf(want, sizeof(want), "%s:1", kb);
	assert_non_null(strstr(out, want));

	/* The rest of the tests use the first broker's key and data again. */
	assert_int_equal(sp_it_broker_stop(&other), 0);
	sp_it_rmrf(other.data_dir);
	{
		char data[256];

		snprintf(data, sizeof(data), "%s", broker.data_dir);
		assert_int_equal(sp_it_broker_start_at(&broker, data, port, NULL), 0);
	}
}

/* The messages --json must carry exactly (sent through stdin, so no NUL). */
static const char *const json_msgs[] = {
	"plain ascii",
	"quote \" backslash \\ slash / tab \t cr \r newline \n bell \x07 del \x7f esc \x1b",
	"utf-8: \xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xac \xe4\xb8\xad",
	"line separators \xe2\x80\xa8 and \xe2\x80\xa9",
	"not utf-8: \xff\xfe \xc0\xaf \xed\xa0\x80",
	"{\"looks\":\"like json\"}",
};

static void test_json(void **state)
{
	size_t n = sizeof(json_msgs) / sizeof(json_msgs[0]), i;
	uint64_t last_seq = 0;
	char *line, *save = NULL;

	(void)state;
	for (i = 0; i < n; i++)
		assert_int_equal(run(json_msgs[i], (const char *const[]){
				"send", "--server", broker.addr, "--server-key",
				broker.server_pub_hex, "--key", key_a, "--to", hex_b, NULL }), 0);
	recv_n((int)n, 1);
	line = strtok_r(out, "\n", &save);
	for (i = 0; i < n; i++) {
		json_error_t err;
		json_t *o, *v;
		const char *enc, *msg;
		size_t want = strlen(json_msgs[i]), got_len;
		uint8_t bin[256];

		assert_non_null(line);
		o = json_loads(line, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
		if (!o)
			fail_msg("line %zu is not JSON (%s): %s", i, err.text, line);
		assert_true(json_is_object(o));
		assert_int_equal(json_object_size(o), 5);
		assert_string_equal(json_string_value(json_object_get(o, "sender")), hex_a);
		v = json_object_get(o, "seq");
		assert_true(json_is_integer(v));
		assert_true((uint64_t)json_integer_value(v) > last_seq);
		last_seq = (uint64_t)json_integer_value(v);
		assert_int_equal(json_integer_value(json_object_get(o, "size")), want);
		enc = json_string_value(json_object_get(o, "encoding"));
		v = json_object_get(o, "message");
		assert_non_null(enc);
		assert_true(json_is_string(v));
		msg = json_string_value(v);
		if (i == 4) {
			/* Not UTF-8: base64 of the exact bytes. */
			assert_string_equal(enc, "base64");
			assert_int_equal(sodium_base642bin(bin, sizeof(bin), msg, strlen(msg), NULL,
							   &got_len, NULL,
							   sodium_base64_VARIANT_ORIGINAL), 0);
			assert_int_equal(got_len, want);
			assert_memory_equal(bin, json_msgs[i], want);
		} else {
			assert_string_equal(enc, "utf-8");
			assert_int_equal(json_string_length(v), want);
			assert_memory_equal(msg, json_msgs[i], want);
		}
		json_decref(o);
		line = strtok_r(NULL, "\n", &save);
	}
	assert_null(line);
	/* --json and --raw together: a usage error. */
	assert_int_equal(run(NULL, (const char *const[]){ "recv", "--json", "--raw", NULL }), 1);
}

static void test_lines(void **state)
{
	char *input, *p;
	size_t big;

	(void)state;
	/* Empty lines are skipped, the last line may lack its newline. */
	assert_int_equal(run_merged("one\ntwo\n\nfour", (const char *const[]){
			"send", "--server", broker.addr, "--server-key", broker.server_pub_hex,
			"--key", key_a, "--to", hex_b, "--lines", "--verbose", NULL }), 0);
	assert_non_null(strstr(out, "line 1: accepted seq "));
	assert_non_null(strstr(out, "line 2: accepted seq "));
	assert_null(strstr(out, "line 3:"));
	assert_non_null(strstr(out, "line 4: accepted seq "));
	recv_n(3, 1);
	assert_non_null(strstr(out, "\"message\":\"one\"}\n"));
	assert_true(strstr(out, "\"message\":\"one\"") < strstr(out, "\"message\":\"two\""));
	assert_true(strstr(out, "\"message\":\"two\"") < strstr(out, "\"message\":\"four\""));

	/* Many lines, pipelined; one too large for any broker in the middle:
	 * that line fails (exit 1), the others are still sent. */
	big = SEALPOST_MESSAGE_MAX + 10;
	input = malloc(500 * 8 + big + 16);
	assert_non_null(input);
	p = input;
	for (int i = 1; i <= 500; i++) {
		p += sprintf(p, "m%d\n", i);
		if (i == 250) {
			memset(p, 'x', big);
			p += big;
			*p++ = '\n';
		}
	}
	*p = '\0';
	assert_int_equal(run_merged(input, (const char *const[]){
			"send", "--server", broker.addr, "--server-key", broker.server_pub_hex,
			"--key", key_a, "--to", hex_b, "--lines", NULL }), 1);
	free(input);
	assert_non_null(strstr(out, "line 251: message too large"));
	assert_non_null(strstr(out, "1 of 501 lines failed"));
	recv_n(500, 0);
	/* --raw concatenates: every line, in order. */
	{
		char want[8];
		const char *q = out;

		for (int i = 1; i <= 500; i++) {
			snprintf(want, sizeof(want), "m%d", i);
			assert_memory_equal(q, want, strlen(want));
			q += strlen(want);
		}
		assert_int_equal(*q, '\0');
	}
	/* --lines takes no MESSAGE. */
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--lines", "--to", hex_b, "x",
							  NULL }), 1);
	/* --verbose on a single send prints the seq. */
	assert_int_equal(run_merged(NULL, (const char *const[]){
			"send", "--server", broker.addr, "--server-key", broker.server_pub_hex,
			"--key", key_a, "--to", hex_b, "--verbose", "one more", NULL }), 0);
	assert_int_equal(strncmp(out, "accepted seq ", 13), 0);
	recv_n(1, 0);
}

/* A `sealpost recv` in the background, stdout and stderr on pipes. */
struct bg {
	pid_t pid;
	int out, err;
	char obuf[4096], ebuf[8192];
	size_t olen, elen;
};

/* stdin_w: NULL for no input, else receives the write end of its stdin. */
static void bg_start_in(struct bg *b, int *stdin_w, const char *const *args)
{
	int po[2], pe[2], pi[2] = { -1, -1 };
	char *argv[32];
	int n = 0;

	argv[n++] = (char *)cli;
	while (*args && n < 31)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	memset(b, 0, sizeof(*b));
	assert_int_equal(pipe2(po, O_CLOEXEC), 0);
	assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
	if (stdin_w)
		assert_int_equal(pipe2(pi, O_CLOEXEC), 0);
	fflush(NULL);
	b->pid = fork();
	assert_true(b->pid >= 0);
	if (b->pid == 0) {
		if (stdin_w)
			dup2(pi[0], STDIN_FILENO);
		dup2(po[1], STDOUT_FILENO);
		dup2(pe[1], STDERR_FILENO);
		execv(cli, argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	if (stdin_w) {
		close(pi[0]);
		*stdin_w = pi[1];
	}
	b->out = po[0];
	b->err = pe[0];
}

static void bg_start(struct bg *b, const char *const *args)
{
	bg_start_in(b, NULL, args);
}

/* Reads fd into buf until needle appears (bounded: 60 s); 0 or -1. */
static int read_until(int fd, char *buf, size_t cap, size_t *len, const char *needle)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int waited = 0;

	while (!strstr(buf, needle)) {
		ssize_t n;

		if (*len + 1 >= cap || waited >= 600)
			return -1;
		if (poll(&p, 1, 100) == 0) {
			waited++;
			continue;
		}
		n = read(fd, buf + *len, cap - 1 - *len);
		if (n <= 0)
			return -1;
		*len += (size_t)n;
		buf[*len] = '\0';
	}
	return 0;
}

/* Reads all that is left and reaps it (bounded); its exit status. */
static int bg_finish(struct bg *b)
{
	int st, waited = 0;

	while (read_until(b->out, b->obuf, sizeof(b->obuf), &b->olen, "\x01never") == 0)
		;
	while (waitpid(b->pid, &st, WNOHANG) == 0) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };

		if (++waited > 600) {
			kill(b->pid, SIGKILL);
			waitpid(b->pid, &st, 0);
			return -1;
		}
		nanosleep(&ts, NULL);
	}
	while (read_until(b->err, b->ebuf, sizeof(b->ebuf), &b->elen, "\x01never") == 0)
		;
	close(b->out);
	close(b->err);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_recv_across_restart(void **state)
{
	struct bg b;
	char data[256], want[512];
	uint16_t port = broker.port;

	(void)state;
	snprintf(data, sizeof(data), "%s", broker.data_dir);
	bg_start(&b, (const char *const[]){ "recv", "--server", broker.addr, "--server-key",
					    broker.server_pub_hex, "--key", key_b, "--count", "3",
					    "--timeout", "120", "--verbose", NULL });
	assert_int_equal(read_until(b.err, b.ebuf, sizeof(b.ebuf), &b.elen, "listening "), 0);
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--server", broker.addr,
							  "--server-key", broker.server_pub_hex,
							  "--key", key_a, "--to", hex_b, "before",
							  NULL }), 0);
	snprintf(want, sizeof(want), "%s before\n", hex_a);
	assert_int_equal(read_until(b.out, b.obuf, sizeof(b.obuf), &b.olen, want), 0);

	/* SIGKILL: no GoAway, and the ack of "before" may not have been stored. */
	assert_int_equal(sp_it_broker_kill(&broker), SIGKILL);
	assert_int_equal(read_until(b.err, b.ebuf, sizeof(b.ebuf), &b.elen, "reconnecting"), 0);
	/* Sent while the broker is down: it waits, then the broker comes back. */
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--server", broker.addr,
							  "--server-key", broker.server_pub_hex,
							  "--key", key_a, "--to", hex_b, "--timeout",
							  "1", "while down", NULL }), 3);
	assert_int_equal(sp_it_broker_start_at(&broker, data, port, NULL), 0);
	assert_int_equal(read_until(b.err, b.ebuf, sizeof(b.ebuf), &b.elen, "reconnected"), 0);
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--server", broker.addr,
							  "--server-key", broker.server_pub_hex,
							  "--key", key_a, "--to", hex_b, "after one",
							  NULL }), 0);
	/* A graceful restart too: GoAway shutdown, then reconnect. */
	assert_int_equal(read_until(b.out, b.obuf, sizeof(b.obuf), &b.olen, "after one\n"), 0);
	assert_int_equal(sp_it_broker_stop(&broker), 0);
	assert_int_equal(sp_it_broker_start_at(&broker, data, port, NULL), 0);
	assert_int_equal(run(NULL, (const char *const[]){ "send", "--server", broker.addr,
							  "--server-key", broker.server_pub_hex,
							  "--key", key_a, "--to", hex_b, "after two",
							  NULL }), 0);
	assert_int_equal(bg_finish(&b), 0);
	/* Each exactly once, in order, though "before" may have come twice. */
	snprintf(want, sizeof(want), "%s before\n%s after one\n%s after two\n", hex_a, hex_a,
		 hex_a);
	assert_string_equal(b.obuf, want);
	assert_non_null(strstr(b.ebuf, "goaway_shutdown"));
	/* Nothing left behind: the mailbox is empty. */
	assert_int_equal(run(NULL, (const char *const[]){ "recv", "--server", broker.addr,
							  "--server-key", broker.server_pub_hex,
							  "--key", key_b, "--count", "1", "--timeout",
							  "2", NULL }), 5);
	assert_string_equal(out, "");
}

/* Counts the lines of text holding needle. */
static int count_lines(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* send --lines while the broker is killed with SIGKILL and restarted: the
 * library reconnects and resends what got no answer (same client ids), so
 * every line is answered once and stored once. */
static void test_lines_across_restart(void **state)
{
	struct bg s;
	char data[256], line[32], want[4096];
	uint16_t port = broker.port;
	int in, i;
	size_t wl = 0;

	(void)state;
	snprintf(data, sizeof(data), "%s", broker.data_dir);
	bg_start_in(&s, &in, (const char *const[]){ "send", "--server", broker.addr,
						    "--server-key", broker.server_pub_hex, "--key",
						    key_a, "--to", hex_b, "--lines", "--verbose",
						    "--timeout", "60", NULL });
	for (i = 1; i <= 50; i++) {
		snprintf(line, sizeof(line), "a%d\n", i);
		assert_int_equal(write(in, line, strlen(line)), (ssize_t)strlen(line));
	}
	assert_int_equal(read_until(s.err, s.ebuf, sizeof(s.ebuf), &s.elen, "line 50: accepted"),
			 0);
	assert_int_equal(sp_it_broker_kill(&broker), SIGKILL);
	assert_int_equal(read_until(s.err, s.ebuf, sizeof(s.ebuf), &s.elen, "reconnecting"), 0);
	/* Lines read while the broker is down wait in the library's queue. */
	for (i = 1; i <= 50; i++) {
		snprintf(line, sizeof(line), "b%d\n", i);
		assert_int_equal(write(in, line, strlen(line)), (ssize_t)strlen(line));
	}
	assert_int_equal(sp_it_broker_start_at(&broker, data, port, NULL), 0);
	close(in);
	assert_int_equal(bg_finish(&s), 0);
	assert_non_null(strstr(s.ebuf, "reconnected"));
	assert_int_equal(count_lines(s.ebuf, ": accepted seq "), 100);
	assert_non_null(strstr(s.ebuf, "line 100: accepted seq "));
	/* Stored once each, in order. */
	for (i = 1; i <= 50; i++)
		wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "a%d", i);
	for (i = 1; i <= 50; i++)
		wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "b%d", i);
	recv_n(100, 0);
	assert_string_equal(out, want);
	assert_int_equal(run(NULL, (const char *const[]){ "recv", "--server", broker.addr,
							  "--server-key", broker.server_pub_hex,
							  "--key", key_b, "--count", "1", "--timeout",
							  "2", NULL }), 5);
}

/* A second recv with the same device key takes the connection over: the
 * first stops (exit 4) rather than take it back, which would never end. */
static void test_recv_takeover(void **state)
{
	struct bg first;

	(void)state;
	bg_start(&first, (const char *const[]){ "recv", "--server", broker.addr, "--server-key",
						broker.server_pub_hex, "--key", key_b, "--timeout",
						"60", NULL });
	assert_int_equal(read_until(first.err, first.ebuf, sizeof(first.ebuf), &first.elen,
				    "listening "), 0);
	assert_int_equal(run(NULL, (const char *const[]){ "recv", "--server", broker.addr,
							  "--server-key", broker.server_pub_hex,
							  "--key", key_b, "--timeout", "1", NULL }), 0);
	assert_int_equal(bg_finish(&first), 4);
	assert_non_null(strstr(first.ebuf, "goaway_takeover"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_version, each),
		cmocka_unit_test_setup(test_env, each),
		cmocka_unit_test_setup(test_default_server, each),
		cmocka_unit_test_setup(test_config_file, each),
		cmocka_unit_test_setup(test_pins, each),
		cmocka_unit_test_setup(test_json, each),
		cmocka_unit_test_setup(test_lines, each),
		cmocka_unit_test_setup(test_recv_across_restart, each),
		cmocka_unit_test_setup(test_recv_takeover, each),
		cmocka_unit_test_setup(test_lines_across_restart, each),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
