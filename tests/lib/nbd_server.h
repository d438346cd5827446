/* SPDX-License-Identifier: MIT */
/*
 * An nbdkit server for tests: "nbdkit -f -U SOCK -P PIDFILE --exit-with-parent
 * ARGS..." started with fork + exec in a private temporary directory that also
 * holds the test's files; stopped with a signal; everything removed at the end.
 * Also the small file and clock helpers the NBD tests share. Failures are
 * returned as -errno with a line on stderr; the test decides what they mean.
 */
#ifndef WC_TEST_NBD_SERVER_H
#define WC_TEST_NBD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MiB (1u << 20)

struct nbd_server {
	char dir[256];		/* the private temporary directory */
	char sock[300];		/* dir/nbd.sock: the server's Unix socket */
	char pid_path[300];	/* dir/nbd.pid: written by nbdkit once it listens */
	char log_path[300];	/* dir/nbd.log: free for --filter=log logfile= */
	char uri[400];		/* nbd+unix:///?socket=SOCK */
	pid_t pid;		/* 0: not running */
};

/* Can nbdkit run at all ("nbdkit --version" exits 0)? Tests exit 77 when not. */
bool nbdkit_available(void);
/* Create /tmp/wc-NAME-XXXXXX and the names in s (short: socket paths are limited). */
int nbd_server_setup(struct nbd_server *s, const char *name);
/*
 * Start nbdkit with the NULL-terminated arguments after the fixed ones and wait
 * up to 15 s for its pid file (it listens by then). -ECHILD if it exited,
 * -ETIMEDOUT, -E2BIG for more than 32 arguments, or fork's -errno.
 */
int nbd_server_start(struct nbd_server *s, const char *arg, ...)
	__attribute__((sentinel));
/* Send sig to a running server and reap it; 0 when none was running. */
int nbd_server_stop(struct nbd_server *s, int sig);
/* Kill a running server and remove the directory with everything in it. */
int nbd_server_cleanup(struct nbd_server *s);
/* dir/name into out. Returns 0 or -ENAMETOOLONG. */
int nbd_server_path(const struct nbd_server *s, const char *name, char *out, size_t size);

/* A file of size zero bytes (created or truncated). Returns 0 or -errno. */
int make_zero_file(const char *path, uint64_t size);
/* pread exactly len bytes at off from path (O_RDONLY). Returns 0, -EIO if short, or -errno. */
int read_plain(const char *path, void *buf, size_t len, uint64_t off);
/* CLOCK_MONOTONIC in milliseconds. */
uint64_t now_ms(void);
void sleep_ms(unsigned ms);

#endif
