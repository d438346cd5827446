/* SPDX-License-Identifier: MIT */
/*
 * "wcache fuse ORIGIN CACHE MOUNTPOINT": the command around the FUSE export
 * (src/frontend/fuse.c). Owns option parsing, the checks before anything is
 * opened (/dev/fuse, mount point, paths), the pidfile and the daemon
 * lifecycle; the FUSE session itself is wc_fuse_run(). Built only with
 * WC_WITH_FUSE.
 *
 * Lifecycle: checks, fork (unless --foreground; the parent waits on a pipe
 * until the child has mounted or failed, so errors reach the terminal and
 * the command returns only when MOUNTPOINT/disk is usable), open the cache
 * in the child (fork would lose the engine's threads), control socket,
 * mount, loop. Unmount or SIGTERM/SIGINT/SIGHUP end the loop; then the cache
 * is closed, which commits (and, with flush_on_suspend, writes back first).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "control.h"
#include "fuse.h"
#include "monitor.h"

#define FZ_DISK_NAME	WC_FUSE_DISK_NAME

enum {
	OPT_ALLOW_OTHER = 0x100,
	OPT_FOS,
	OPT_CACHE_IO,
	OPT_METRICS_FILE,
	OPT_METRICS_INTERVAL,
	OPT_METRICS_LISTEN,
	OPT_TABLE = 0x200,	/* + index into wcache_options() */
};

static const char fuse_usage[] =
	"Usage: wcache fuse ORIGIN CACHE MOUNTPOINT [options] [table options]\n"
	"\n"
	"Serve the cached device (ORIGIN with the write-back cache CACHE in front of\n"
	"it) as one file, MOUNTPOINT/disk, through FUSE. A loop device on that file is\n"
	"a local block device backed by wcache:\n"
	"  losetup --find --show --direct-io=on --sector-size 4096 MOUNTPOINT/disk\n"
	"Reads and writes go through the cache; fsync/fdatasync commit (dm-writecache\n"
	"FLUSH); writes through a file opened O_SYNC/O_DSYNC are FUA; fallocate\n"
	"PUNCH_HOLE discards (the range reads back as zeroes), ZERO_RANGE writes\n"
	"zeroes. The file has a fixed size. A blank CACHE (first 8 bytes zero) is\n"
	"formatted, with --block-size (default 4096).\n"
	"\n"
	"The command returns once MOUNTPOINT/disk is ready; the server keeps running\n"
	"in the background until MOUNTPOINT is unmounted (detach loop devices first:\n"
	"losetup -d, then umount MOUNTPOINT or fusermount3 -u MOUNTPOINT) or it gets\n"
	"SIGTERM, SIGINT or SIGHUP. Then it commits and closes the cache; with\n"
	"flush_on_suspend set it writes every dirty block back to ORIGIN first.\n"
	"\n"
	"Options:\n"
	"  -c, --control PATH     serve the control socket at PATH (status, table,\n"
	"                         stats, message: see 'wcache status --control')\n"
	"  -f, --foreground       do not go to the background; messages on stderr\n"
	"  -P, --pidfile PATH     write the server's process id to PATH\n"
	"  -l, --log FILE         in the background, append messages to FILE\n"
	"                         (default: discard them)\n"
	"  -t, --threads N        at most N FUSE worker threads and N requests queued\n"
	"                         in the kernel (default 64)\n"
	"      --allow-other      let users other than the owner open the file\n"
	"  -m, --mode s|p         s: SSD mode (default); p: pmem mode (CACHE mapped)\n"
	"      --cache-io MODE    direct (O_DIRECT on a CACHE file, default) or buffered\n"
	"                         (page cache; as safe, faster re-reads, RAM used twice)\n"
	"      --metrics-file PATH  write Prometheus metrics to PATH every interval,\n"
	"                         atomically (node_exporter's textfile collector)\n"
	"      --metrics-interval S  seconds between rewrites (default 10)\n"
	"      --metrics-listen ADDR:PORT  serve Prometheus metrics over HTTP at\n"
	"                         /metrics (numeric address; ':PORT' is 127.0.0.1)\n"
	"      --flush-on-suspend write everything back when the server stops (the\n"
	"                         flush_on_suspend message, sent at start)\n"
	"  -s, --start-sector S   metadata starts S 512-byte sectors into CACHE (default 0)\n"
	"  -b, --block-size N     cache block size: required when formatting a blank\n"
	"                         CACHE (default 4096), checked against the superblock\n"
	"                         otherwise (default: take it from the superblock)\n"
	"  -h, --help             show this help\n"
	CLI_TABLE_OPTS_HEADER
	"\n"
	"Exit status: 0 ready (or, with --foreground, stopped cleanly), 1 failed,\n"
	"2 usage error.\n";

struct fz_opts {
	struct wc_cfg cfg;
	char mnt[PATH_MAX];		/* absolute */
	char control[PATH_MAX];		/* absolute, or "" */
	char pidfile[PATH_MAX];		/* absolute, or "" */
	char logfile[PATH_MAX];		/* as given, or "" */
	char metrics_file[PATH_MAX];	/* absolute, or "" */
	bool foreground, allow_other, flush_on_suspend;
	unsigned threads;
	struct wc_monitor_cfg mcfg;	/* metrics; strings point into argv */
	struct wc_monitor *mon;		/* prepared before the fork */
};

static const struct cli_cmd *fz_cmd;

/* The FUSE session's messages, as "wcache fuse: ..." (libfuse's chatter with -v only). */
static void fz_session_log(enum wc_log_level level, const char *msg, void *opaque)
{
	(void)opaque;
	if (level == WC_LOG_WARN)
		cli_warn(fz_cmd, "%s", msg);
	else if (level == WC_LOG_ERROR || cli_verbose)
		cli_error(fz_cmd, "%s", msg);
}

/* ---------------- checks before anything is opened ---------------- */

static int fz_check_dev_fuse(void)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == ENOENT)
		cli_error(fz_cmd, "/dev/fuse does not exist: this kernel has no FUSE support "
			  "(CONFIG_FUSE_FS) or this container was started without /dev/fuse");
	else
		cli_error(fz_cmd, "cannot open /dev/fuse: %s", strerror(errno));
	return -1;
}

/* Undo the octal escapes (\040 etc.) of a /proc/self/mountinfo path field, in place. */
static void fz_unescape(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

/* true if abs is a mount point; its file system type goes to type. */
static bool fz_is_mountpoint(const char *abs, char *type, size_t type_len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (!f)
		return false;
	while (!found && getline(&line, &cap, f) > 0) {
		char *save, *tok, *mp = NULL;
		int i = 0;

		/* id parent maj:min root MOUNT_POINT options [optional...] - TYPE source opts */
		for (tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save), i++) {
			if (i == 4) {
				mp = tok;
				fz_unescape(mp);
				if (strcmp(mp, abs))
					break;
			} else if (i > 4 && !strcmp(tok, "-")) {
				tok = strtok_r(NULL, " \n", &save);
				snprintf(type, type_len, "%s", tok ? tok : "?");
				found = true;
				break;
			}
		}
	}
	free(line);
	fclose(f);
	return found;
}

static int fz_check_mountpoint(const char *mnt, char *abs, size_t abs_len)
{
	char type[64], *r;
	struct statfs sfs;
	struct stat st;

	/* statfs always reaches a FUSE server; stat may be answered from cached attributes. */
	if (stat(mnt, &st) < 0 || statfs(mnt, &sfs) < 0) {
		if (errno == ENOTCONN)
			cli_error(fz_cmd, "%s: %s: a FUSE server mounted there has died; unmount it "
				  "first (fusermount3 -u %s, or umount -l %s)", mnt, strerror(errno),
				  mnt, mnt);
		else
			cli_error(fz_cmd, "mount point %s: %s", mnt, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_error(fz_cmd, "mount point %s is not a directory", mnt);
		return -1;
	}
	r = realpath(mnt, NULL);
	if (!r || strlen(r) >= abs_len) {
		cli_error(fz_cmd, "mount point %s: %s", mnt, r ? "path too long" : strerror(errno));
		free(r);
		return -1;
	}
	strcpy(abs, r);
	free(r);
	if (fz_is_mountpoint(abs, type, sizeof(type))) {
		cli_error(fz_cmd, "mount point %s is in use: a %s file system is mounted there "
			  "(another 'wcache fuse'?); unmount it or choose another directory", mnt,
			  type);
		return -1;
	}
	return 0;
}

/*
 * Absolute form of a path whose file may not exist yet (the server chdirs to
 * /): the directory must exist.
 */
static int fz_abs_path(const char *what, const char *path, char *out, size_t out_len)
{
	char *copy = strdup(path), *slash, *dir;
	const char *base;
	int ret = -1;

	if (!copy) {
		cli_error(fz_cmd, "out of memory");
		return -1;
	}
	slash = strrchr(copy, '/');
	if (!slash) {
		base = copy;
		dir = realpath(".", NULL);
	} else {
		*slash = '\0';
		base = slash + 1;
		dir = realpath(*copy ? copy : "/", NULL);
	}
	if (!*base) {
		cli_error(fz_cmd, "%s %s: not a file name", what, path);
	} else if (!dir) {
		cli_error(fz_cmd, "%s %s: directory: %s", what, path, strerror(errno));
	} else if ((size_t)snprintf(out, out_len, "%s/%s", strcmp(dir, "/") ? dir : "", base) >=
		   out_len) {
		cli_error(fz_cmd, "%s %s: path too long", what, path);
	} else {
		ret = 0;
	}
	free(dir);
	free(copy);
	return ret;
}

/* Device paths: absolute when they name an existing file (URIs stay as they are). */
static void fz_abs_dev(char *path, size_t len)
{
	char *r;

	if (strstr(path, "://"))
		return;
	r = realpath(path, NULL);
	if (r && strlen(r) < len)
		strcpy(path, r);
	free(r);
}

/* ---------------- server ---------------- */

static int fz_write_pidfile(const char *path)
{
	char buf[32];
	int fd, n, ret = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		cli_error(fz_cmd, "pidfile %s: %s", path, strerror(errno));
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		cli_error(fz_cmd, "pidfile %s: write failed: %s", path, strerror(errno));
		ret = -1;
	}
	close(fd);
	return ret;
}

static void fz_remove_pidfile(const char *path)
{
	char buf[32] = "";
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0 && strtol(buf, NULL, 10) == (long)getpid())
		unlink(path);
}

/* Background: stdio to /dev/null (stderr to the log file), leave the caller's cwd. */
static int fz_detach_stdio(int log_fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null < 0)
		return -1;
	fflush(stdout);
	fflush(stderr);
	if (dup2(null, STDIN_FILENO) < 0 || dup2(null, STDOUT_FILENO) < 0 ||
	    dup2(log_fd >= 0 ? log_fd : null, STDERR_FILENO) < 0) {
		close(null);
		return -1;
	}
	close(null);
	if (chdir("/") < 0)
		return -1;
	return 0;
}

/*
 * Run the server in this process. notify_fd >= 0: a daemon child, which
 * writes one zero byte there once MOUNTPOINT/disk is ready. Returns an exit code.
 */
struct fz_server {
	const struct fz_opts *o;
	struct wcache *wc;
	int notify_fd;		/* daemon child: tell the parent we are ready; else -1 */
	int log_fd;
	bool ready;		/* MOUNTPOINT/disk was mounted (and the pidfile written) */
};

/* wc_fuse_run's ready hook: pidfile, then detach and wake the parent, or say so. */
static int fz_ready(void *opaque)
{
	struct fz_server *s = opaque;
	const struct fz_opts *o = s->o;
	char size_buf[32];

	s->ready = true;
	if (o->pidfile[0] && fz_write_pidfile(o->pidfile) < 0)
		return -1;
	wc_monitor_ready(o->mon);
	if (s->notify_fd >= 0) {
		if (fz_detach_stdio(s->log_fd) < 0) {
			cli_error(fz_cmd, "cannot detach from the terminal: %s", strerror(errno));
			return -1;
		}
		if (write(s->notify_fd, "", 1) != 1)
			return -1;	/* the parent is gone: nobody waits for us */
		close(s->notify_fd);
		s->notify_fd = -1;
	} else {
		cli_human_bytes(wcache_size(s->wc), size_buf, sizeof(size_buf));
		fprintf(stderr, "wcache fuse: serving %s/%s (%s); stop with umount or SIGTERM\n",
			o->mnt, FZ_DISK_NAME, size_buf);
	}
	return 0;
}

/*
 * Run the server in this process. notify_fd >= 0: a daemon child, which
 * writes one zero byte there once MOUNTPOINT/disk is ready. Returns an exit code.
 */
static int fz_serve(const struct fz_opts *o, int notify_fd, int log_fd)
{
	struct fz_server s = { .o = o, .notify_fd = notify_fd, .log_fd = log_fd };
	struct wc_fuse f = { 0 };
	struct wc_control *ctl = NULL;
	sigset_t block, old;
	char err[512];
	int rc = CLI_EXIT_FAIL, ret;

	/*
	 * Threads started by the engine and the control socket inherit this mask:
	 * termination signals must reach the thread running the FUSE loop.
	 */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);

	ret = wcache_open(&o->cfg, &s.wc);
	if (ret < 0) {
		cli_error(fz_cmd, "%s", wcache_last_error());
		goto out;
	}
	if (!wcache_size(s.wc)) {
		cli_error(fz_cmd, "origin %s is empty: nothing to export", o->cfg.origin_path);
		goto out;
	}
	if (o->flush_on_suspend && wcache_message(s.wc, "flush_on_suspend") < 0) {
		cli_error(fz_cmd, "flush_on_suspend: %s", wcache_last_error());
		goto out;
	}
	if (o->control[0] && wc_control_start(o->control, s.wc, &ctl, err, sizeof(err)) < 0) {
		cli_error(fz_cmd, "control socket %s: %s", o->control, err);
		goto out;
	}
	if (wc_monitor_run(o->mon, s.wc, err, sizeof(err)) < 0) {
		cli_error(fz_cmd, "%s", err);
		goto out;
	}

	f.wc = s.wc;
	f.mountpoint = o->mnt;
	f.threads = o->threads;
	f.allow_other = o->allow_other;
	f.log = fz_session_log;
	f.ready = fz_ready;
	f.ready_opaque = &s;
	if (wc_fuse_run(&f) == 0)
		rc = CLI_EXIT_OK;
out:
	wc_monitor_stop(o->mon);
	wc_control_stop(ctl);
	if (s.wc) {
		/* Commit; with flush_on_suspend write everything back first. */
		if (wcache_close(s.wc) < 0) {
			cli_error(fz_cmd, "close (final commit) failed: %s", wcache_last_error());
			rc = CLI_EXIT_FAIL;
		}
	}
	if (s.ready && o->pidfile[0])
		fz_remove_pidfile(o->pidfile);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (s.notify_fd >= 0)
		close(s.notify_fd);
	return rc;
}

/* Parent of a daemon: wait until the child is ready (0) or has failed (its exit code). */
static int fz_wait_ready(int fd, pid_t pid)
{
	char c;
	ssize_t n;
	int st;

	do {
		n = read(fd, &c, 1);
	} while (n < 0 && errno == EINTR);
	close(fd);
	if (n == 1)
		return CLI_EXIT_OK;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			cli_error(fz_cmd, "waiting for the server: %s", strerror(errno));
			return CLI_EXIT_FAIL;
		}
	}
	if (WIFEXITED(st) && WEXITSTATUS(st))
		return WEXITSTATUS(st);
	cli_error(fz_cmd, "the server exited before it was ready");
	return CLI_EXIT_FAIL;
}

static int fz_set_path(char *dst, size_t len, const char *what, const char *src)
{
	if (!*src)
		return cli_usage_error(fz_cmd, "%s: empty path", what);
	if (strlen(src) >= len)
		return cli_usage_error(fz_cmd, "%s: path is too long (max %zu bytes)", what,
				       len - 1);
	strcpy(dst, src);
	return 0;
}

int cmd_fuse(const struct cli_cmd *cmd, int argc, char **argv)
{
	/* --start-sector is among the options above, with its -s. */
	const struct cli_cmd self = { cmd->name, cmd->fn, cmd->summary, fuse_usage,
				      WC_SET_START_SECTOR };
	struct option lo[20 + CLI_TABLE_LONGOPTS + 1];
	const struct wc_opt_desc *d;
	const char *control = NULL, *pidfile = NULL, *mnt, *metrics_file = NULL;
	bool served = false;
	struct fz_opts *o;
	uint64_t v;
	int c, rc = CLI_EXIT_FAIL, log_fd = -1;
	size_t n = 0;

	fz_cmd = cmd;
	lo[n++] = (struct option){ "control", required_argument, NULL, 'c' };
	lo[n++] = (struct option){ "foreground", no_argument, NULL, 'f' };
	lo[n++] = (struct option){ "pidfile", required_argument, NULL, 'P' };
	lo[n++] = (struct option){ "log", required_argument, NULL, 'l' };
	lo[n++] = (struct option){ "threads", required_argument, NULL, 't' };
	lo[n++] = (struct option){ "allow-other", no_argument, NULL, OPT_ALLOW_OTHER };
	lo[n++] = (struct option){ "allow_other", no_argument, NULL, OPT_ALLOW_OTHER };
	lo[n++] = (struct option){ "cache-io", required_argument, NULL, OPT_CACHE_IO };
	lo[n++] = (struct option){ "metrics-file", required_argument, NULL, OPT_METRICS_FILE };
	lo[n++] = (struct option){ "metrics-interval", required_argument, NULL,
				   OPT_METRICS_INTERVAL };
	lo[n++] = (struct option){ "metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN };
	lo[n++] = (struct option){ "mode", required_argument, NULL, 'm' };
	lo[n++] = (struct option){ "flush-on-suspend", no_argument, NULL, OPT_FOS };
	lo[n++] = (struct option){ "flush_on_suspend", no_argument, NULL, OPT_FOS };
	lo[n++] = (struct option){ "start-sector", required_argument, NULL, 's' };
	lo[n++] = (struct option){ "block-size", required_argument, NULL, 'b' };
	lo[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	n += cli_table_longopts(lo + n, self.own_table_opts, OPT_TABLE);
	lo[n] = (struct option){ NULL, 0, NULL, 0 };

	o = calloc(1, sizeof(*o));
	if (!o) {
		cli_error(cmd, "out of memory");
		return CLI_EXIT_FAIL;
	}
	wcache_cfg_init(&o->cfg);
	o->cfg.block_size = 0;		/* from the superblock; 4096 when formatting */
	o->threads = WC_FUSE_DEF_THREADS;
	while ((c = cli_getopt(cmd, argc, argv, ":c:fP:l:t:s:b:m:h", lo)) != -1) {
		switch (c) {
		case 'c':
			control = optarg;
			break;
		case 'f':
			o->foreground = true;
			break;
		case 'P':
			pidfile = optarg;
			break;
		case 'l':
			if (fz_set_path(o->logfile, sizeof(o->logfile), "--log", optarg))
				goto usage;
			break;
		case 't':
			if (cli_opt_u64(cmd, "--threads", optarg, WC_FUSE_MAX_THREADS, &v))
				goto usage;
			if (!v) {
				cli_usage_error(cmd, "--threads: must be at least 1");
				goto usage;
			}
			o->threads = (unsigned)v;
			break;
		case OPT_ALLOW_OTHER:
			o->allow_other = true;
			break;
		case OPT_FOS:
			o->flush_on_suspend = true;
			break;
		case OPT_METRICS_FILE:
			metrics_file = optarg;
			break;
		case OPT_METRICS_INTERVAL:
			if (cli_opt_u64(cmd, "--metrics-interval", optarg, 86400, &v))
				goto usage;
			if (!v) {
				cli_usage_error(cmd, "--metrics-interval: at least 1 second");
				goto usage;
			}
			o->mcfg.interval_ms = (unsigned)v * 1000;
			break;
		case OPT_METRICS_LISTEN:
			o->mcfg.listen = optarg;
			break;
		case OPT_CACHE_IO:
			if (cli_opt_cache_io(cmd, optarg, &o->cfg.cache_buffered))
				goto usage;
			break;
		case 'm':
			if (cli_opt_mode(cmd, optarg, &o->cfg))
				goto usage;
			break;
		case 's':
			if (cli_opt_start_sector(cmd, optarg, &o->cfg.start_sector))
				goto usage;
			o->cfg.set_mask |= WC_SET_START_SECTOR;
			break;
		case 'b':
			if (cli_opt_block_size(cmd, optarg, &o->cfg.block_size))
				goto usage;
			break;
		case 'h':
			free(o);
			return cli_help(&self);
		case -2:
			goto usage;
		default:
			d = cli_table_opt(c, OPT_TABLE);
			if (!d || cli_table_set(cmd, &o->cfg, d, optarg))
				goto usage;
			break;
		}
	}
	if (argc - optind != 3) {
		cli_usage_error(cmd, argc - optind < 3 ? "expected ORIGIN CACHE MOUNTPOINT"
				: "too many arguments (expected ORIGIN CACHE MOUNTPOINT)");
		goto usage;
	}
	if (fz_set_path(o->cfg.origin_path, sizeof(o->cfg.origin_path), "ORIGIN", argv[optind]) ||
	    fz_set_path(o->cfg.cache_path, sizeof(o->cfg.cache_path), "CACHE", argv[optind + 1]))
		goto usage;
	mnt = argv[optind + 2];
	if (!*mnt) {
		cli_usage_error(cmd, "MOUNTPOINT: empty path");
		goto usage;
	}
	if (wcache_cfg_validate(&o->cfg) < 0) {
		cli_usage_error(cmd, "%s", wcache_last_error());
		goto usage;
	}

	if (fz_check_dev_fuse() < 0 || fz_check_mountpoint(mnt, o->mnt, sizeof(o->mnt)) < 0)
		goto out;
	if (control && fz_abs_path("--control", control, o->control, sizeof(o->control)) < 0)
		goto out;
	if (pidfile && fz_abs_path("--pidfile", pidfile, o->pidfile, sizeof(o->pidfile)) < 0)
		goto out;
	if (metrics_file) {
		if (fz_abs_path("--metrics-file", metrics_file, o->metrics_file,
				sizeof(o->metrics_file)) < 0)
			goto out;
		o->mcfg.metrics_file = o->metrics_file;
	}
	{
		char err[512];

		/* Before the fork: a bad address or a port in use reaches the terminal. */
		if (wc_monitor_prepare(&o->mcfg, &o->mon, err, sizeof(err)) < 0) {
			cli_error(cmd, "%s", err);
			goto out;
		}
	}
	fz_abs_dev(o->cfg.origin_path, sizeof(o->cfg.origin_path));
	fz_abs_dev(o->cfg.cache_path, sizeof(o->cfg.cache_path));
	if (o->logfile[0] && !o->foreground) {
		log_fd = open(o->logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (log_fd < 0) {
			cli_error(cmd, "--log %s: %s", o->logfile, strerror(errno));
			goto out;
		}
	}

	if (o->foreground) {
		served = true;	/* fz_serve stops the monitor (before closing the cache) */
		rc = fz_serve(o, -1, -1);
	} else {
		int p[2];
		pid_t pid;

		if (pipe2(p, O_CLOEXEC) < 0) {
			cli_error(cmd, "pipe: %s", strerror(errno));
			goto out;
		}
		fflush(stdout);
		fflush(stderr);
		pid = fork();
		if (pid < 0) {
			cli_error(cmd, "fork: %s", strerror(errno));
			close(p[0]);
			close(p[1]);
			goto out;
		}
		if (pid > 0) {
			close(p[1]);
			rc = fz_wait_ready(p[0], pid);
			goto out;
		}
		close(p[0]);
		setsid();	/* out of the caller's process group and session */
		served = true;
		rc = fz_serve(o, p[1], log_fd);
	}
out:
	if (!served)
		wc_monitor_stop(o->mon);
	if (log_fd >= 0)
		close(log_fd);
	free(o);
	return rc;
usage:
	free(o);
	return CLI_EXIT_USAGE;
}
