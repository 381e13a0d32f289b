/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_admin.c: the admin socket of a real sealpostd, through the real
 * `sealpost admin` ($SEALPOST_CLI) and through a raw Unix socket.
 *
 * status; a device's mailbox after envelopes were sent to it; top lists the
 * device by its id (what `hash` says) and never a key; purge, after which
 * the device connects to an empty mailbox; disconnect of a connected
 * device, which sees GoAway shutdown and the close; log-level debug shows
 * in the log; reload of a changed config file (max-envelope applied: a
 * Send above the new limit is refused, a new connection is told the new
 * limit; max-conns reported as needing a restart); another uid cannot
 * connect (run as nobody with setpriv, when the test runs as root); bad
 * requests answered with errors and the daemon unharmed; busy and timeout
 * answers; a stale socket replaced on restart; a symlink at the socket path
 * refused; admin-socket-mode 0660.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "sealpost.h"
#include "support.h"

enum { RUN_TIMEOUT_S = 30, TIMEOUT_MS = 20000, ADMIN_TIMEOUT_MS = 3000, ADMIN_CONNS = 2 };

static struct sp_it_broker broker;
static const char *cli;
static char cfg_dir[64], cfg_path[128], sock_path[100];

static void write_config(const char *text)
{
	FILE *f = fopen(cfg_path, "w");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
	char t1[16], t2[16];
	const char *args[] = { "--config", cfg_path, "--admin-max-conns", t1, "--admin-timeout",
			       t2, NULL };

	(void)state;
	cli = getenv("SEALPOST_CLI");
	if (!cli || sodium_init() < 0)
		return -1;
	snprintf(cfg_dir, sizeof(cfg_dir), "/tmp/sp_it_admin.XXXXXX");
	if (!mkdtemp(cfg_dir))
		return -1;
	snprintf(cfg_path, sizeof(cfg_path), "%s/sealpostd.ini", cfg_dir);
	write_config("max-envelope = 64000\n");
	snprintf(t1, sizeof(t1), "%d", ADMIN_CONNS);
	snprintf(t2, sizeof(t2), "%d", ADMIN_TIMEOUT_MS);
	if (sp_it_broker_start(&broker, NULL, args))
		return -1;
	if (strlen(broker.data_dir) + sizeof("/admin.sock") > sizeof(sock_path))
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%.80s/admin.sock", broker.data_dir);
	return 0;
}

static int teardown(void **state)
{
	int st;

	(void)state;
	st = sp_it_broker_stop(&broker);
	if (st != 0)
		sp_it_log_tail(&broker, 40);
	sp_it_rmrf(broker.data_dir);
	sp_it_rmrf(cfg_dir);
	return st == 0 ? 0 : -1;
}

/* `sealpost admin --admin-socket SOCK args...`: its exit status, the
 * answer parsed into *out (NULL if it printed no JSON). */
static int admin(json_t **out, const char *a1, const char *a2)
{
	char buf[65536];
	char *argv[] = { (char *)cli, "admin", "--admin-socket", sock_path, (char *)a1,
			 (char *)a2, NULL };
	int st = sp_it_run(argv, NULL, buf, sizeof(buf), RUN_TIMEOUT_S);

	if (out)
		*out = json_loads(buf, 0, NULL);
	return st;
}

/* The same, checking it answered ok; returns the answer (json_decref it). */
static json_t *admin_ok(const char *a1, const char *a2)
{
	json_t *j = NULL;
	int st = admin(&j, a1, a2);

	if (st != 0 || !j || !json_is_true(json_object_get(j, "ok")))
		fail_msg("sealpost admin %s %s: exit %d, answer %s", a1, a2 ? a2 : "", st,
			 j ? json_dumps(j, 0) : "none");
	return j;
}

static uint64_t uint_of(json_t *j, const char *k)
{
	json_t *v = json_object_get(j, k);

	assert_true(json_is_integer(v));
	return (uint64_t)json_integer_value(v);
}

/* One raw request on the socket, the answer parsed. */
static json_t *raw(const void *req, size_t len, bool half_close)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[8192];
	size_t got = 0;
	ssize_t n;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct timeval tv = { .tv_sec = 10 };

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* A too-long request may be cut short by the daemon's answer and close. */
	if (len)
		(void)send(fd, req, len, MSG_NOSIGNAL);
	if (half_close)
		shutdown(fd, SHUT_WR);
	while (got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	return json_loads(buf, 0, NULL);
}

static void expect_error(json_t *j, const char *code)
{
	if (!j)
		fail_msg("no JSON answer (want error %s)", code);
	assert_true(json_is_false(json_object_get(j, "ok")));
	if (strcmp(json_string_value(json_object_get(j, "error")), code) != 0)
		fail_msg("error %s, want %s (%s)", json_string_value(json_object_get(j, "error")),
			 code, json_string_value(json_object_get(j, "message")));
	assert_true(json_is_string(json_object_get(j, "message")));
	json_decref(j);
}

static struct sealpost_key *new_key(uint8_t pub[SEALPOST_KEY_LEN], char hex[65])
{
	struct sealpost_key *k = NULL;

	assert_int_equal(sealpost_key_generate(&k), 0);
	sealpost_key_public(k, pub);
	sodium_bin2hex(hex, 65, pub, SEALPOST_KEY_LEN);
	return k;
}

static struct sealpost_client *dial(const struct sealpost_key *k)
{
	struct sealpost_client *c = NULL;

	assert_int_equal(sealpost_client_connect(&c, broker.addr, k, broker.server_pub, TIMEOUT_MS),
			 0);
	return c;
}

/* The next event that is not `skip`. */
static void next_event(struct sealpost_client *c, struct sealpost_event *ev, int skip)
{
	do {
		if (sealpost_client_next_event(c, ev, TIMEOUT_MS) != 1)
			fail_msg("no event within %d ms", TIMEOUT_MS);
	} while ((int)ev->type == skip);
}

/* Sends len bytes to `to` and returns the result's status. */
static int send_one(struct sealpost_client *c, const uint8_t to[SEALPOST_KEY_LEN], size_t len)
{
	static uint8_t msg[4000];
	struct sealpost_event ev;
	uint64_t id;

	assert_true(len <= sizeof(msg));
	memset(msg, 'x', len);
	assert_int_equal(sealpost_client_send(c, to, msg, len, &id), 0);
	next_event(c, &ev, SEALPOST_EVENT_DRAINED);
	assert_int_equal(ev.type, SEALPOST_EVENT_RESULT);
	assert_int_equal(ev.client_id, id);
	return ev.status;
}

/* The answer holds neither key, in either case. */
static void no_key_in(json_t *j, const char *hex)
{
	char *s = json_dumps(j, 0), upper[65];

	for (int i = 0; i < 65; i++)
		upper[i] = (char)(hex[i] >= 'a' && hex[i] <= 'f' ? hex[i] - 32 : hex[i]);
	assert_null(strstr(s, hex));
	assert_null(strstr(s, upper));
	free(s);
}

static void test_status(void **state)
{
	json_t *j;
	struct stat st;

	(void)state;
	/* Created 0600: the permissions are the authentication. */
	assert_int_equal(lstat(sock_path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	j = admin_ok("status", NULL);
	assert_string_equal(json_string_value(json_object_get(j, "cmd")), "status");
	assert_true(json_is_string(json_object_get(j, "version")));
	assert_int_equal(uint_of(j, "pid"), (uint64_t)broker.pid);
	assert_true(json_is_true(json_object_get(j, "mailbox_store")));
	assert_true(json_is_object(json_object_get(j, "totals")));
	json_decref(j);
	assert_true(sp_it_log_count(&broker, "msg=\"admin request\" cmd=status") >= 1);
}

/* Mailbox, top, hash, purge: one device's stored envelopes. */
static void test_mailbox_top_purge(void **state)
{
	uint8_t pa[SEALPOST_KEY_LEN], pb[SEALPOST_KEY_LEN];
	char ha[65], hb[65], id_b[64];
	struct sealpost_key *ka = new_key(pa, ha), *kb = new_key(pb, hb);
	struct sealpost_client *a = dial(ka), *b;
	struct sealpost_event ev;
	json_t *j, *list, *e = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++)
		assert_int_equal(send_one(a, pb, 100 + i), SEALPOST_STATUS_ACCEPTED);

	j = admin_ok("mailbox", hb);
	assert_int_equal(uint_of(j, "count"), 3);
	/* Sealed bodies: the plaintext plus the same overhead each. */
	assert_true(uint_of(j, "bytes") > 303);
	assert_true(json_is_number(json_object_get(j, "oldest_age_s")));
	assert_true(json_number_value(json_object_get(j, "oldest_age_s")) >= 0);
	assert_true(json_is_false(json_object_get(j, "online")));
	snprintf(id_b, sizeof(id_b), "%s", json_string_value(json_object_get(j, "id")));
	assert_int_equal(strlen(id_b), 32);
	no_key_in(j, hb);
	json_decref(j);

	/* hash says the same id; top lists it, with no key anywhere. */
	j = admin_ok("hash", hb);
	assert_string_equal(json_string_value(json_object_get(j, "id")), id_b);
	json_decref(j);
	j = admin_ok("top", "5");
	list = json_object_get(j, "mailboxes");
	assert_true(json_is_array(list) && json_array_size(list) >= 1);
	json_array_foreach(list, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "id")), id_b) == 0)
			break;
	}
	assert_true(i < json_array_size(list));
	assert_int_equal(uint_of(e, "count"), 3);
	no_key_in(j, hb);
	no_key_in(j, ha);
	json_decref(j);

	/* Purge: the device then connects to an empty mailbox. */
	j = admin_ok("purge", hb);
	assert_int_equal(uint_of(j, "purged"), 3);
	json_decref(j);
	j = admin_ok("mailbox", hb);
	assert_int_equal(uint_of(j, "count"), 0);
	assert_int_equal(uint_of(j, "bytes"), 0);
	assert_true(json_is_null(json_object_get(j, "oldest_age_s")));
	json_decref(j);
	b = dial(kb);
	next_event(b, &ev, -1);
	assert_int_equal(ev.type, SEALPOST_EVENT_DRAINED);
	assert_int_equal(ev.count, 0);
	/* And what is sent after the purge still arrives. */
	assert_int_equal(send_one(a, pb, 10), SEALPOST_STATUS_ACCEPTED);
	next_event(b, &ev, -1);
	assert_int_equal(ev.type, SEALPOST_EVENT_MESSAGE);
	assert_int_equal(ev.len, 10);

	assert_true(sp_it_log_count(&broker, "msg=\"admin purge\"") >= 1);
	assert_int_equal(sp_it_log_count_key(&broker, pb), 0);
	assert_int_equal(sp_it_log_count_key(&broker, pa), 0);
	sealpost_client_close(b);
	sealpost_client_close(a);
	sealpost_key_free(ka);
	sealpost_key_free(kb);
}

static void test_disconnect(void **state)
{
	uint8_t pb[SEALPOST_KEY_LEN];
	char hb[65];
	struct sealpost_key *kb = new_key(pb, hb);
	struct sealpost_connect_opts o = SEALPOST_CONNECT_OPTS_INIT;
	struct sealpost_client *b = NULL;
	struct sealpost_event ev;
	json_t *j;

	(void)state;
	/* Without the library's reconnect, so the close is what it sees last. */
	o.flags = SEALPOST_CONNECT_NO_RECONNECT;
	assert_int_equal(sealpost_client_connect_opts(&b, broker.addr, kb, broker.server_pub,
						      TIMEOUT_MS, &o), 0);
	next_event(b, &ev, -1);
	assert_int_equal(ev.type, SEALPOST_EVENT_DRAINED);
	j = admin_ok("mailbox", hb);
	assert_true(json_is_true(json_object_get(j, "online")));
	json_decref(j);
	j = admin_ok("disconnect", hb);
	assert_true(json_is_true(json_object_get(j, "disconnected")));
	json_decref(j);
	next_event(b, &ev, -1);
	assert_int_equal(ev.type, SEALPOST_EVENT_GOAWAY);
	assert_int_equal(ev.status, SEALPOST_STATUS_GOAWAY_SHUTDOWN);
	next_event(b, &ev, -1);
	assert_int_equal(ev.type, SEALPOST_EVENT_CLOSED);
	sealpost_client_close(b);
	/* Gone now: a second disconnect is an error, and says so. */
	assert_int_equal(admin(&j, "disconnect", hb), 6);
	expect_error(j, "not_connected");
	assert_true(sp_it_log_count(&broker, "reason=admin") >= 1);
	sealpost_key_free(kb);
}

static void test_log_level(void **state)
{
	uint8_t pb[SEALPOST_KEY_LEN];
	char hb[65];
	struct sealpost_key *kb;
	struct sealpost_client *b;
	json_t *j;

	(void)state;
	assert_int_equal(sp_it_log_count(&broker, "level=debug"), 0);
	j = admin_ok("log-level", "debug");
	assert_string_equal(json_string_value(json_object_get(j, "level")), "debug");
	assert_string_equal(json_string_value(json_object_get(j, "previous")), "info");
	json_decref(j);
	/* A connection that comes and goes: debug lines now. */
	kb = new_key(pb, hb);
	b = dial(kb);
	sealpost_client_close(b);
	j = admin_ok("status", NULL);
	assert_string_equal(json_string_value(json_object_get(j, "log_level")), "debug");
	json_decref(j);
	assert_true(sp_it_log_count(&broker, "level=debug") >= 1);
	assert_true(sp_it_log_count(&broker, "msg=\"admin log level\" level=debug previous=info") == 1);
	json_decref(admin_ok("log-level", "info"));
	assert_int_equal(admin(&j, "log-level", "loud"), 6);
	expect_error(j, "bad_request");
	sealpost_key_free(kb);
}

static void test_reload(void **state)
{
	uint8_t pa[SEALPOST_KEY_LEN], pb[SEALPOST_KEY_LEN];
	char ha[65], hb[65];
	struct sealpost_key *ka = new_key(pa, ha), *kb = new_key(pb, hb);
	struct sealpost_client *a = dial(ka), *a2;
	json_t *j, *e;
	size_t i;
	bool applied = false, restart = false;

	(void)state;
	assert_int_equal(send_one(a, pb, 2000), SEALPOST_STATUS_ACCEPTED);
	write_config("max-envelope = 1000\nmax-conns = 100\n");
	j = admin_ok("reload", NULL);
	json_array_foreach(json_object_get(j, "applied"), i, e)
		applied |= !strcmp(json_string_value(json_object_get(e, "key")), "max-envelope") &&
			   !strcmp(json_string_value(json_object_get(e, "new")), "1000");
	json_array_foreach(json_object_get(j, "needs_restart"), i, e)
		restart |= !strcmp(json_string_value(json_object_get(e, "key")), "max-conns");
	assert_true(applied);
	assert_true(restart);
	assert_true(json_array_size(json_object_get(j, "reloadable")) >= 1);
	json_decref(j);
	/* The open connection was told 64000; the broker now refuses above 1000. */
	assert_int_equal(send_one(a, pb, 2000), SEALPOST_STATUS_ERR_TOO_LARGE);
	/* A new connection is told the new limit. */
	a2 = dial(ka);
	assert_true(sealpost_client_max_message(a2) < 1000);
	sealpost_client_close(a2);
	sealpost_client_close(a);
	assert_true(sp_it_log_count(&broker, "msg=\"admin reload: applied\" key=max-envelope") == 1);

	/* A broken file: an error naming the line, nothing applied. */
	write_config("max-envelope = 1000\nmax-envelope = 2000\n");
	assert_int_equal(admin(&j, "reload", NULL), 6);
	if (!strstr(json_string_value(json_object_get(j, "message")), ":2:"))
		fail_msg("message: %s", json_string_value(json_object_get(j, "message")));
	expect_error(j, "config_error");
	write_config("max-envelope = 64000\n");
	json_decref(admin_ok("reload", NULL));
	sealpost_key_free(ka);
	sealpost_key_free(kb);
}

/* Another uid cannot connect: the socket is 0600 even where its directory
 * lets others through. */
static void test_other_uid(void **state)
{
	char out[4096];
	char *argv[] = { "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
			 (char *)cli, "admin", "--admin-socket", sock_path, "status", NULL };
	char *probe[] = { "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
			  "/bin/true", NULL };

	(void)state;
	if (geteuid() != 0 || sp_it_run(probe, NULL, out, sizeof(out), RUN_TIMEOUT_S) != 0) {
		fprintf(stderr, "# not root or no setpriv: other-uid check skipped\n");
		skip();
	}
	/* The directory (0700) already keeps others out; open it so the
	 * socket's own mode is what is tested. The CLI must be reachable too. */
	assert_int_equal(chmod(broker.data_dir, 0711), 0);
	assert_int_equal(sp_it_run(argv, NULL, out, sizeof(out), RUN_TIMEOUT_S), 3);
	assert_int_equal(chmod(broker.data_dir, 0700), 0);
	/* And root still can. */
	json_decref(admin_ok("status", NULL));
}

static void test_bad_requests(void **state)
{
	static char big[8192];
	json_t *j;
	int fds[ADMIN_CONNS];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	(void)state;
	expect_error(raw("garbage\n", 8, false), "bad_request");
	expect_error(raw("[1,2]\n", 6, false), "bad_request");
	expect_error(raw("{\"cmd\":\"list-keys\"}\n", 20, false), "unknown_command");
	expect_error(raw("{\"cmd\":\"mailbox\"}\n", 18, false), "bad_request");
	expect_error(raw("{\"cmd\":\"mailbox\",\"key\":\"00\"}\n", 29, false), "bad_request");
	expect_error(raw("{\"cmd\":\"status\",\"verbose\":true}\n", 32, false), "bad_request");
	expect_error(raw("{\"cmd\":\"top\",\"n\":100000}\n", 25, false), "bad_request");
	expect_error(raw("{\"cmd\":\"status\",\"cmd\":\"top\"}\n", 29, false), "bad_request");
	expect_error(raw("{\"cmd\":\"status\"\0}\n", 18, false), "bad_request");
	memset(big, ' ', sizeof(big));
	expect_error(raw(big, sizeof(big), false), "too_large");
	/* No newline, then EOF: still one request. */
	j = raw("{\"cmd\":\"status\"}", 16, true);
	assert_non_null(j);
	assert_true(json_is_true(json_object_get(j, "ok")));
	json_decref(j);

	/* Every slot taken by a silent client: the next is told busy; the
	 * silent ones are told timeout once admin-timeout has passed. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	for (int i = 0; i < ADMIN_CONNS; i++) {
		fds[i] = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	/* The daemon takes them in order: a request through the CLI waits its turn. */
	for (int tries = 0;; tries++) {
		j = raw("{\"cmd\":\"status\"}\n", 17, false);
		assert_non_null(j);
		if (json_is_false(json_object_get(j, "ok")))
			break;
		json_decref(j);
		assert_true(tries < 100);
	}
	expect_error(j, "busy");
	for (int i = 0; i < ADMIN_CONNS; i++) {
		char buf[512];
		struct timeval tv = { .tv_sec = 30 };
		ssize_t n;

		setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = read(fds[i], buf, sizeof(buf) - 1);
		assert_true(n > 0);
		buf[n] = '\0';
		expect_error(json_loads(buf, 0, NULL), "timeout");
		close(fds[i]);
	}
	/* Unharmed. */
	assert_true(sp_it_broker_alive(&broker));
	json_decref(admin_ok("status", NULL));
	/* The CLI refuses bad arguments itself. */
	assert_int_equal(admin(NULL, "mailbox", "nothex"), 1);
	assert_int_equal(admin(NULL, "frobnicate", NULL), 1);
}

/* A socket left by a killed daemon is replaced; a symlink is refused. */
static void test_stale_and_symlink(void **state)
{
	struct sp_it_broker b2;
	const char *args[] = { "--config", cfg_path, NULL };
	char link_path[320];
	const char *args_link[] = { "--admin-socket", link_path, NULL };
	char dir[sizeof(broker.data_dir)];
	int st;

	(void)state;
	snprintf(dir, sizeof(dir), "%s", broker.data_dir);
	sp_it_broker_kill(&broker);
	assert_int_equal(access(sock_path, F_OK), 0);   /* still there */
	assert_int_equal(sp_it_broker_start(&broker, dir, args), 0);
	json_decref(admin_ok("status", NULL));

	/* A second daemon pointed at a symlink: refuses to start. */
	snprintf(link_path, sizeof(link_path), "%s/evil.sock", cfg_dir);
	assert_int_equal(symlink("/tmp/sp_it_admin_target", link_path), 0);
	fprintf(stderr, "# a start that must fail, and its log:\n");
	st = sp_it_broker_start(&b2, NULL, args_link);
	assert_true(st != 0);
	assert_true(access("/tmp/sp_it_admin_target", F_OK) != 0);
	assert_true(sp_it_log_count(&b2, "not a socket: refusing to replace it") >= 1);
	sp_it_rmrf(b2.data_dir);
}

/* admin-socket-mode 0660: the group may connect too; nothing else is taken. */
static void test_socket_mode(void **state)
{
	struct sp_it_broker b2;
	char path[128];
	const char *args[] = { "--admin-socket", path, "--admin-socket-mode", "0660", NULL };
	const char *bad[] = { "--admin-socket-mode", "0666", NULL };
	struct stat st;

	(void)state;
	snprintf(path, sizeof(path), "%s/group.sock", cfg_dir);
	assert_int_equal(sp_it_broker_start(&b2, NULL, args), 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	assert_int_equal(sp_it_broker_stop(&b2), 0);
	assert_true(access(path, F_OK) != 0);   /* removed at a clean stop */
	sp_it_rmrf(b2.data_dir);
	fprintf(stderr, "# a start that must fail, and its log:\n");
	assert_true(sp_it_broker_start(&b2, NULL, bad) != 0);
	sp_it_rmrf(b2.data_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_mailbox_top_purge),
		cmocka_unit_test(test_disconnect),
		cmocka_unit_test(test_log_level),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_other_uid),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_stale_and_symlink),
		cmocka_unit_test(test_socket_mode),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
