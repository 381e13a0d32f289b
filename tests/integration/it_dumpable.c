/* SPDX-License-Identifier: Apache-2.0 */
/*
 * it_dumpable.c: a real sealpostd turns itself non-dumpable (no core dump
 * of its keys, no ptrace or /proc/PID/mem by the same user).
 *
 * The broker runs as an unprivileged user (nobody), and another process of
 * the same user tries to read its /proc/PID/environ: the kernel allows that
 * for a dumpable process of the same user and refuses it (EACCES) for a
 * non-dumpable one. Without the prctl, exec would leave the broker
 * dumpable. Needs root to run both as nobody; skipped otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "support.h"

enum { NOBODY = 65534, WAIT_MS = 10000 };

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A loopback port nobody listens on right now. */
static uint16_t free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static int log_has(const char *path, const char *needle)
{
	char buf[16384];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

static void test_not_dumpable(void **state)
{
	const char *bin = getenv("SEALPOSTD");
	char dir[] = "/tmp/sp_it_dumpable_XXXXXX", log[300], listen[32], proc[64];
	int status = 0, cstatus = 0, started = 0;
	pid_t pid, checker;

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_non_null(bin);
	/* The broker runs as nobody: a build tree nobody can reach (a clone
	 * under a 0700 directory, as mktemp -d makes) cannot test this. */
	checker = fork();
	assert_true(checker >= 0);
	if (checker == 0) {
		if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
			_exit(127);
		_exit(access(bin, X_OK) == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(checker, &cstatus, 0), checker);
	if (!WIFEXITED(cstatus) || WEXITSTATUS(cstatus) != 0) {
		fprintf(stderr, "skipped: nobody cannot execute %s (a directory above it is closed)\n",
			bin);
		skip();
	}
	cstatus = 0;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chown(dir, NOBODY, NOBODY), 0);
	snprintf(log, sizeof(log), "%s/sealpostd.log", dir);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)free_port());
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		/* stdout too: a failed test must not leave ctest waiting on our pipe. */
		if (fd < 0 || fchown(fd, NOBODY, NOBODY) < 0 || dup2(fd, 2) < 0 || dup2(fd, 1) < 0 ||
		    setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
			_exit(127);
		execl(bin, "sealpostd", "--data-dir", dir, "--listen", listen, "--metrics-listen",
		      "off", "--admin-socket", "off", "--store-min-free", "0", "--log-level", "info",
		      (char *)NULL);
		_exit(127);
	}
	for (int w = 0; w < WAIT_MS && !started; w += 20) {
		started = log_has(log, "msg=\"sealpostd started\"");
		if (!started)
			sleep_ms(20);
	}
	assert_true(started);
	snprintf(proc, sizeof(proc), "/proc/%d/environ", (int)pid);
	checker = fork();
	assert_true(checker >= 0);
	if (checker == 0) {
		int fd;

		if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
			_exit(3);
		fd = open(proc, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			char c;

			_exit(read(fd, &c, 1) >= 0 ? 1 : (errno == EACCES ? 0 : 2));
		}
		_exit(errno == EACCES ? 0 : 2);
	}
	assert_int_equal(waitpid(checker, &cstatus, 0), checker);
	printf("# another process of uid %d reading %s: %s\n", NOBODY, proc,
	       WIFEXITED(cstatus) && WEXITSTATUS(cstatus) == 0 ? "EACCES" : "allowed or other");
	if (!(WIFEXITED(cstatus) && WEXITSTATUS(cstatus) == 0)) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fail_msg("sealpostd is dumpable (checker status %d)", cstatus);
	}

	assert_int_equal(kill(pid, SIGTERM), 0);
	for (int w = 0; w < WAIT_MS; w += 20) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		sleep_ms(20);
	}
	if (kill(pid, 0) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fail_msg("sealpostd did not stop on SIGTERM");
	}
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	sp_it_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_dumpable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
