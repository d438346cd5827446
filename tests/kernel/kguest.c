/* SPDX-License-Identifier: MIT */
/*
 * wc-kguest: the in-VM half of the kernel compatibility test. A static program
 * that runs an ops file line by line: O_DIRECT writes from a data file, fsync
 * (dm-writecache commits on REQ_PREFLUSH), BLKDISCARD, whole-device copies and
 * dmsetup calls. One process does thousands of I/Os; under TCG every exec of a
 * dynamically linked program costs ~0.1 s. Knows nothing of cache formats.
 *
 * Usage: wc-kguest OPS RESULTS
 * Ops (one per line, '#' comments):
 *   data FILE                 data source for the writes that follow
 *   write DEV OFF LEN SRC     one pwrite(O_DIRECT) of LEN bytes at byte OFF of DEV,
 *                             taken from the data file at byte SRC
 *   fsync DEV                 fsync(2) (a REQ_PREFLUSH: dm-writecache commits)
 *   discard DEV OFF LEN       ioctl BLKDISCARD
 *   copy SRC DST OFF [CHUNK]  copy all of device SRC into DST at byte OFF, in reads of
 *                             CHUNK bytes (default 1 MiB; pmem mode needs block-size reads:
 *                             the 6.1 kernel returns zeros for the tail of larger ones)
 *   dm ARG...                 run dmsetup ARG...
 *   dmcreate NAME TABLE...    dmsetup create NAME --table "TABLE..."
 *   dmconcise SPEC...         dmsetup create --concise "SPEC..."
 *   dmout KEY ARG...          same, and append "KEY <line>" per output line to RESULTS
 *   mark TEXT                 append "mark TEXT" to RESULTS
 *   crash                     power off at once: no suspend, nothing more is committed
 * A failed op is reported (stderr, and "error line N" in RESULTS) and the run goes on.
 * Exit: 0 all done, 1 some op failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ARGS 1024
#define COPY_CHUNK (1u << 20)

static FILE *results;
static int data_fd = -1;
static void *iobuf;
static size_t iobuf_len;
static unsigned lineno;
static unsigned nr_failed;	/* ops that failed so far */

/* Report a failed op (err: an errno to append, or 0) and return -1. */
static int fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(int err, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "wc-kguest: line %u: ", lineno);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": %s", strerror(err));
	fputc('\n', stderr);
	return -1;
}

static int need_buf(size_t len)
{
	if (len <= iobuf_len)
		return 0;
	free(iobuf);
	iobuf = NULL;
	iobuf_len = 0;
	if (posix_memalign(&iobuf, 4096, len))
		return fail(ENOMEM, "buffer");
	iobuf_len = len;
	return 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (!s || !*s)
		return fail(0, "missing number");
	errno = 0;
	*v = strtoull(s, &end, 0);
	if (errno || *end)
		return fail(0, "bad number '%s'", s);
	return 0;
}

static int full_pread(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

static int full_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

static int op_write(char **a, int n)
{
	uint64_t off = 0, len = 0, src = 0;	/* (set by parse_u64; -O3 cannot tell) */
	int fd, ret;

	if (n != 5 || parse_u64(a[2], &off) || parse_u64(a[3], &len) || parse_u64(a[4], &src))
		return fail(0, "usage: write DEV OFF LEN SRC");
	if (data_fd < 0)
		return fail(0, "write before any 'data' line");
	if (need_buf(len))
		return -1;
	ret = full_pread(data_fd, iobuf, len, src);
	if (ret)
		return fail(-ret, "reading the data file");
	fd = open(a[1], O_WRONLY | O_DIRECT);
	if (fd < 0)
		return fail(errno, "open %s", a[1]);
	ret = full_pwrite(fd, iobuf, len, off);
	close(fd);
	if (ret)
		return fail(-ret, "write to %s", a[1]);
	return 0;
}

static int op_fsync(char **a, int n)
{
	int fd, ret;

	if (n != 2)
		return fail(0, "usage: fsync DEV");
	fd = open(a[1], O_WRONLY);
	if (fd < 0)
		return fail(errno, "open %s", a[1]);
	ret = fsync(fd) ? errno : 0;
	close(fd);
	return ret ? fail(ret, "fsync %s", a[1]) : 0;
}

static int op_discard(char **a, int n)
{
	uint64_t range[2];
	int fd, ret;

	if (n != 4 || parse_u64(a[2], &range[0]) || parse_u64(a[3], &range[1]))
		return fail(0, "usage: discard DEV OFF LEN");
	fd = open(a[1], O_WRONLY);
	if (fd < 0)
		return fail(errno, "open %s", a[1]);
	ret = ioctl(fd, BLKDISCARD, range) ? errno : 0;
	close(fd);
	return ret ? fail(ret, "BLKDISCARD on %s", a[1]) : 0;
}

static int op_copy(char **a, int n)
{
	uint64_t dst_off = 0, size, pos, chunk = COPY_CHUNK;
	int in, out, ret = 0;

	if ((n != 4 && n != 5) || parse_u64(a[3], &dst_off) ||
	    (n == 5 && (parse_u64(a[4], &chunk) || !chunk || chunk > COPY_CHUNK || chunk % 512)))
		return fail(0, "usage: copy SRC DST OFF [CHUNK: a multiple of 512 up to %d]",
			    COPY_CHUNK);
	if (need_buf(COPY_CHUNK))
		return -1;
	in = open(a[1], O_RDONLY | O_DIRECT);
	if (in < 0)
		return fail(errno, "open %s", a[1]);
	out = open(a[2], O_WRONLY | O_DIRECT);
	if (out < 0) {
		close(in);
		return fail(errno, "open %s", a[2]);
	}
	if (ioctl(in, BLKGETSIZE64, &size)) {
		ret = fail(errno, "size of %s", a[1]);
		goto out;
	}
	for (pos = 0; pos < size && !ret; pos += chunk) {
		size_t len = size - pos < chunk ? (size_t)(size - pos) : (size_t)chunk;

		ret = full_pread(in, iobuf, len, pos);
		if (ret) {
			ret = fail(-ret, "read %s", a[1]);
			break;
		}
		ret = full_pwrite(out, iobuf, len, dst_off + pos);
		if (ret)
			ret = fail(-ret, "write %s", a[2]);
	}
	if (!ret && fsync(out))
		ret = fail(errno, "fsync %s", a[2]);
out:
	close(in);
	close(out);
	return ret;
}

/* Run dmsetup with argv (NULL-terminated, argv[0] unused); with key, copy its stdout into the results. */
static int run_dmsetup(char **argv, const char *key)
{
	int pipefd[2], status;
	FILE *f;
	pid_t pid;

	argv[0] = "dmsetup";
	fflush(NULL);
	if (pipe(pipefd))
		return fail(errno, "pipe");
	pid = fork();
	if (pid < 0)
		return fail(errno, "fork");
	if (!pid) {
		dup2(pipefd[1], 1);
		close(pipefd[0]);
		close(pipefd[1]);
		execvp("dmsetup", argv);
		_exit(127);
	}
	close(pipefd[1]);
	f = fdopen(pipefd[0], "r");
	if (f) {
		char line[4096];

		while (fgets(line, sizeof(line), f)) {
			if (key)
				fprintf(results, "%s %s", key, line);
			else
				fputs(line, stdout);
		}
		fclose(f);
	} else {
		close(pipefd[0]);
	}
	if (waitpid(pid, &status, 0) < 0)
		return fail(errno, "waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return fail(0, "dmsetup %s %s failed", argv[1], argv[2] ? argv[2] : "");
	return 0;
}

/* dm/dmout: the words as arguments. */
static int op_dm(char **a, int n, int first, const char *key)
{
	char *argv[MAX_ARGS + 2];
	int i;

	for (i = first; i < n; i++)
		argv[1 + i - first] = a[i];
	argv[1 + n - first] = NULL;
	return run_dmsetup(argv, key);
}

/* dmcreate NAME TABLE... / dmconcise SPEC...: the rest of the line is one argument. */
static int op_create(char **a, int n, bool concise)
{
	char table[8192] = "", *argv[6];
	size_t len = 0;

	if (n < 3 - concise)
		return fail(0, "usage: dmcreate NAME TABLE... | dmconcise SPEC...");
	for (int i = concise ? 1 : 2; i < n; i++) {
		int w = snprintf(table + len, sizeof(table) - len, "%s%s", len ? " " : "", a[i]);

		if (w < 0 || (size_t)w >= sizeof(table) - len)
			return fail(0, "table line too long");
		len += (size_t)w;
	}
	argv[1] = "create";
	if (concise) {
		argv[2] = "--concise";
		argv[3] = table;
		argv[4] = NULL;
	} else {
		argv[2] = a[1];
		argv[3] = "--table";
		argv[4] = table;
		argv[5] = NULL;
	}
	return run_dmsetup(argv, NULL);
}

static int run_line(char *line)
{
	static char *a[MAX_ARGS];
	char *save = NULL, *tok;
	int n = 0;

	line[strcspn(line, "\n")] = 0;
	for (tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (n == MAX_ARGS)
			return fail(0, "more than %d words", MAX_ARGS);
		a[n++] = tok;
	}
	if (!n || a[0][0] == '#')
		return 0;
	if (!strcmp(a[0], "data")) {
		if (n != 2)
			return fail(0, "usage: data FILE");
		if (data_fd >= 0)
			close(data_fd);
		data_fd = open(a[1], O_RDONLY);
		return data_fd < 0 ? fail(errno, "open %s", a[1]) : 0;
	}
	if (!strcmp(a[0], "write"))
		return op_write(a, n);
	if (!strcmp(a[0], "fsync"))
		return op_fsync(a, n);
	if (!strcmp(a[0], "discard"))
		return op_discard(a, n);
	if (!strcmp(a[0], "copy"))
		return op_copy(a, n);
	if (!strcmp(a[0], "dm") && n > 1)
		return op_dm(a, n, 1, NULL);
	if (!strcmp(a[0], "dmout") && n > 2)
		return op_dm(a, n, 2, a[1]);
	if (!strcmp(a[0], "dmcreate"))
		return op_create(a, n, false);
	if (!strcmp(a[0], "dmconcise"))
		return op_create(a, n, true);
	if (!strcmp(a[0], "mark")) {
		fputs("mark", results);
		for (int i = 1; i < n; i++)
			fprintf(results, " %s", a[i]);
		fputc('\n', results);
		return 0;
	}
	if (!strcmp(a[0], "crash")) {
		/* The results live on the host share: make them durable, then cut power. */
		fflush(results);
		fsync(fileno(results));
		printf("=== WC-EXIT %d (power cut by wc-kguest)\n", nr_failed ? 1 : 0);
		fflush(stdout);
		reboot(RB_POWER_OFF);
		return fail(errno, "reboot(POWER_OFF) returned");
	}
	return fail(0, "unknown op '%s'", a[0]);
}

int main(int argc, char **argv)
{
	char line[8192];
	FILE *ops;
	int ret = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: wc-kguest OPS RESULTS\n");
		return 2;
	}
	ops = fopen(argv[1], "r");
	results = fopen(argv[2], "a");
	if (!ops || !results) {
		perror("wc-kguest: open");
		return 1;
	}
	/* Keep going after a failed op: one bad pair must not hide the others. */
	while (fgets(line, sizeof(line), ops)) {
		lineno++;
		if (run_line(line)) {
			fprintf(results, "error line %u\n", lineno);
			nr_failed++;
			ret = -1;
		}
	}
	fclose(ops);
	if (fclose(results))
		ret = -1;
	free(iobuf);
	return ret ? 1 : 0;
}
