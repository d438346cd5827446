/* SPDX-License-Identifier: MIT */
/*
 * Test helpers for the NBD tests: run nbdkit on a Unix socket in a private
 * temporary directory (fork + exec, --exit-with-parent), stop or kill it,
 * plain-file helpers and timing. Included by tests/unit/test_nbd*.c only.
 */
#ifndef WC_TEST_NBD_SERVER_H
#define WC_TEST_NBD_SERVER_H

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MiB (1u << 20)

static char tmpdir[256], sock_path[300], pid_path[300], log_path[300], uri[400];
static pid_t server;

static inline void fill_seeded(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static inline uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/*
 * Start "nbdkit -f -U SOCK -P PIDFILE --exit-with-parent ARGS..." and wait
 * until it has written its pid file (it listens by then).
 */
static inline void start_server(const char *arg, ...)
{
	const char *argv[40] = { "nbdkit", "-f", "-U", sock_path, "-P", pid_path,
				 "--exit-with-parent" };
	unsigned n = 7;
	uint64_t deadline = now_ms() + 15000;
	struct stat st;
	va_list ap;

	va_start(ap, arg);
	for (; arg && n < 39; arg = va_arg(ap, const char *))
		argv[n++] = arg;
	va_end(ap);
	argv[n] = NULL;
	unlink(sock_path);
	unlink(pid_path);
	unlink(log_path);
	server = fork();
	assert_true(server >= 0);
	if (server == 0) {
		execvp("nbdkit", (char *const *)argv);
		_exit(127);
	}
	while (stat(pid_path, &st) < 0 || st.st_size == 0) {
		int status;

		assert_int_equal(waitpid(server, &status, WNOHANG), 0);	/* still running */
		assert_true(now_ms() < deadline);
		sleep_ms(10);
	}
}

static inline void stop_server(int sig)
{
	int status;

	if (!server)
		return;
	kill(server, sig);
	assert_int_equal(waitpid(server, &status, 0), server);
	server = 0;
}

static inline char *path_in_tmp(const char *name)
{
	static char p[4][320];
	static unsigned i;
	char *s = p[i++ % 4];

	snprintf(s, sizeof(p[0]), "%s/%s", tmpdir, name);
	return s;
}

static inline void make_zero_file(const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static inline void read_plain(const char *path, void *buf, size_t len, uint64_t off)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

/* Can we run nbdkit at all? (Tests exit 77 when not.) */
static inline bool nbdkit_available(void)
{
	pid_t p = fork();
	int status;

	if (p == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		execlp("nbdkit", "nbdkit", "--version", (char *)NULL);
		_exit(127);
	}
	if (p < 0 || waitpid(p, &status, 0) != p)
		return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Create the temporary directory and the socket, pid file, log and URI names in it. */
static inline int nbd_test_setup(const char *name)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/wc-%s-XXXXXX", name);
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/nbd.sock", tmpdir);
	snprintf(pid_path, sizeof(pid_path), "%s/nbd.pid", tmpdir);
	snprintf(log_path, sizeof(log_path), "%s/nbd.log", tmpdir);
	snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock_path);
	return 0;
}

static inline void nbd_test_cleanup(void)
{
	char cmd[300];

	if (server) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
		server = 0;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

#endif
