/* SPDX-License-Identifier: MIT */
/*
 * nbdkit for tests (see nbd_server.h): one server per struct, started with
 * fork + exec and --exit-with-parent so a crashed test leaves nothing behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nbd_server.h"
#include "tmpdir.h"

#define NBD_SERVER_MAX_ARGS 32
#define NBD_SERVER_START_MS 15000

bool nbdkit_available(void)
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

int nbd_server_setup(struct nbd_server *s, const char *name)
{
	/* /tmp, not $TMPDIR: the socket path must fit in sun_path (108 bytes). */
	int ret = tmpdir_make(s->dir, sizeof(s->dir), "/tmp", name);

	if (ret < 0) {
		fprintf(stderr, "nbd_server: cannot create /tmp/wc-%s-XXXXXX: %s\n", name,
			strerror(-ret));
		return ret;
	}
	snprintf(s->sock, sizeof(s->sock), "%s/nbd.sock", s->dir);
	snprintf(s->pid_path, sizeof(s->pid_path), "%s/nbd.pid", s->dir);
	snprintf(s->log_path, sizeof(s->log_path), "%s/nbd.log", s->dir);
	snprintf(s->uri, sizeof(s->uri), "nbd+unix:///?socket=%s", s->sock);
	s->pid = 0;
	return 0;
}

int nbd_server_start(struct nbd_server *s, const char *arg, ...)
{
	const char *argv[8 + NBD_SERVER_MAX_ARGS] = { "nbdkit", "-f", "-U", s->sock, "-P",
						      s->pid_path, "--exit-with-parent" };
	unsigned n = 7;
	uint64_t deadline = now_ms() + NBD_SERVER_START_MS;
	struct stat st;
	va_list ap;

	va_start(ap, arg);
	for (; arg && n < 7 + NBD_SERVER_MAX_ARGS; arg = va_arg(ap, const char *))
		argv[n++] = arg;
	va_end(ap);
	if (arg) {
		fprintf(stderr, "nbd_server: more than %d arguments\n", NBD_SERVER_MAX_ARGS);
		return -E2BIG;
	}
	argv[n] = NULL;
	unlink(s->sock);
	unlink(s->pid_path);
	unlink(s->log_path);
	s->pid = fork();
	if (s->pid < 0) {
		s->pid = 0;
		return -errno;
	}
	if (s->pid == 0) {
		execvp("nbdkit", (char *const *)argv);
		_exit(127);
	}
	while (stat(s->pid_path, &st) < 0 || st.st_size == 0) {
		int status;

		if (waitpid(s->pid, &status, WNOHANG) != 0) {
			fprintf(stderr, "nbd_server: nbdkit exited while starting\n");
			s->pid = 0;
			return -ECHILD;
		}
		if (now_ms() >= deadline) {
			fprintf(stderr, "nbd_server: nbdkit did not start within %d ms\n",
				NBD_SERVER_START_MS);
			return -ETIMEDOUT;
		}
		sleep_ms(10);
	}
	return 0;
}

int nbd_server_stop(struct nbd_server *s, int sig)
{
	int status;
	pid_t p = s->pid;

	if (!p)
		return 0;
	s->pid = 0;
	if (kill(p, sig) < 0)
		return -errno;
	if (waitpid(p, &status, 0) != p)
		return -errno;
	return 0;
}

int nbd_server_cleanup(struct nbd_server *s)
{
	int ret;

	nbd_server_stop(s, SIGKILL);
	ret = tmpdir_remove(s->dir);
	if (ret < 0)
		fprintf(stderr, "nbd_server: could not remove %s: %s\n", s->dir, strerror(-ret));
	return ret;
}

int nbd_server_path(const struct nbd_server *s, const char *name, char *out, size_t size)
{
	int n = snprintf(out, size, "%s/%s", s->dir, name);

	return n >= 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

int make_zero_file(const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int read_plain(const char *path, void *buf, size_t len, uint64_t off)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;
	int ret = 0;

	if (fd < 0)
		return -errno;
	n = pread(fd, buf, len, (off_t)off);
	if (n < 0)
		ret = -errno;
	else if ((size_t)n != len)
		ret = -EIO;
	close(fd);
	return ret;
}

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}
