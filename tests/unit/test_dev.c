/* SPDX-License-Identifier: MIT */
/*
 * Device layer: dispatch range checks and NULL hooks (dev.c), the RAM device,
 * the file backend (O_DIRECT bounce paths checked byte-exact against a shadow
 * copy, EOF, flush, discard, locking, errors), its submitted requests on
 * io_uring and on the thread fallback (WC_NO_URING=1), block devices via a
 * loop device when we may create one, and dev_open_uri.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/io_uring.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "dev.h"
#include "rng.h"
#include "tmpdir.h"
#include "wcache.h"

static char tmpdir[256];

static struct rng g_rng;

static void fill_random(uint8_t *p, size_t n)
{
	while (n--)
		*p++ = rng_next(&g_rng);
}

/* Create tmpdir/name of size bytes filled with random data; also return the data. */
static char *make_file(const char *name, size_t size, uint8_t **data)
{
	static char path[512];
	uint8_t *buf = malloc(size ? size : 1);
	int fd;

	assert_non_null(buf);
	fill_random(buf, size);
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, size, 0), (ssize_t)size);
	close(fd);
	if (data)
		*data = buf;
	else
		free(buf);
	return path;
}

/* File contents through a plain buffered fd, independent of the device. */
static void read_file(const char *path, uint8_t *buf, size_t size)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, size, 0), (ssize_t)size);
	close(fd);
}

/* Open flags (from fdinfo) of this process's one fd open on path, or -1. */
static long fd_flags_of(const char *path)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long flags = -1;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char link[600], target[600], line[128];
		ssize_t n;
		FILE *f;

		snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = 0;
		if (strcmp(target, path))
			continue;
		snprintf(link, sizeof(link), "/proc/self/fdinfo/%s", e->d_name);
		f = fopen(link, "r");
		while (f && fgets(line, sizeof(line), f))
			if (!strncmp(line, "flags:", 6))
				flags = strtol(line + 6, NULL, 8);
		if (f)
			fclose(f);
	}
	closedir(d);
	return flags;
}

static bool fs_allows_direct(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECT);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static int group_setup(void **state)
{
	(void)state;
	return tmpdir_make(tmpdir, sizeof(tmpdir), tmpdir_base(), "test-dev") ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	return tmpdir_remove(tmpdir) ? -1 : 0;
}

/* ---- dispatch (dev.c) through a backend that counts what reaches it ---- */

static int stub_calls;

static int stub_rw(struct wc_dev *dev, void *buf, size_t len, uint64_t off)
{
	(void)dev, (void)buf, (void)len, (void)off;
	stub_calls++;
	return 0;
}

static int stub_w(struct wc_dev *dev, const void *buf, size_t len, uint64_t off)
{
	(void)dev, (void)buf, (void)len, (void)off;
	stub_calls++;
	return 0;
}

static void stub_close(struct wc_dev *dev)
{
	(void)dev;
	stub_calls = -100;
}

static void test_dispatch(void **state)
{
	static const struct wc_dev_ops ops = {
		.name = "stub", .pread = stub_rw, .pwrite = stub_w, .close = stub_close,
	};
	struct wc_dev dev = { .ops = &ops, .size = 4096, .logical_block = 512, .name = "stubdev" };
	char buf[16];

	(void)state;
	stub_calls = 0;
	assert_int_equal(dev_pread(&dev, buf, 16, 4080), 0);
	assert_int_equal(dev_pwrite(&dev, buf, 16, 0), 0);
	assert_int_equal(stub_calls, 2);
	assert_int_equal(dev_pread(&dev, buf, 16, 4081), -EINVAL);
	assert_non_null(strstr(wcache_last_error(), "stubdev"));
	assert_non_null(strstr(wcache_last_error(), "past the end"));
	assert_int_equal(dev_pwrite(&dev, buf, 1, 4096), -EINVAL);
	/* off + len wraps around */
	assert_int_equal(dev_pwrite(&dev, buf, 16, UINT64_MAX - 8), -EINVAL);
	assert_int_equal(dev_pread(&dev, buf, SIZE_MAX, 16), -EINVAL);
	assert_int_equal(dev_discard(&dev, 4097, 0), -EINVAL);
	assert_int_equal(dev_discard(&dev, 1, UINT64_MAX), -EINVAL);
	assert_int_equal(stub_calls, 2);
	/* Empty I/O at the end is fine and never reaches the backend. */
	assert_int_equal(dev_pread(&dev, buf, 0, 4096), 0);
	assert_int_equal(stub_calls, 2);
	/* NULL flush/discard hooks succeed. */
	assert_int_equal(dev_flush(&dev), 0);
	assert_int_equal(dev_discard(&dev, 512, 0), 0);
	dev_close(&dev);
	assert_int_equal(stub_calls, -100);
	dev_close(NULL);
}

static void test_mem(void **state)
{
	struct wc_dev *dev;
	uint8_t in[3000], out[3000], zero[100] = { 0 };

	(void)state;
	assert_int_equal(dev_mem_open(8192, &dev), 0);
	assert_int_equal(dev->size, 8192);
	assert_int_equal(dev_pread(dev, out, 100, 0), 0);
	assert_memory_equal(out, zero, 100);
	fill_random(in, sizeof(in));
	assert_int_equal(dev_pwrite(dev, in, sizeof(in), 5000), 0);
	assert_int_equal(dev_pread(dev, out, sizeof(out), 5000), 0);
	assert_memory_equal(in, out, sizeof(in));
	assert_int_equal(dev_pwrite(dev, in, sizeof(in), 5193), -EINVAL);
	assert_int_equal(dev_flush(dev), 0);
	assert_int_equal(dev_discard(dev, 100, 5000), 0);
	assert_int_equal(dev_pread(dev, out, 200, 5000), 0);
	assert_memory_equal(out, zero, 100);
	assert_memory_equal(out + 100, in + 100, 100);
	dev_close(dev);
}

/* ---- file backend ---- */

static void test_file_size(void **state)
{
	struct wc_dev *dev;
	char *path = make_file("size.img", 3 * 4096 + 512, NULL);

	(void)state;
	assert_int_equal(dev_file_open(path, 0, &dev), 0);
	assert_int_equal(dev->size, 3 * 4096 + 512);
	assert_int_equal(dev->logical_block, 512);
	assert_string_equal(dev->name, path);
	dev_close(dev);
}

/*
 * Random reads and writes with unaligned buffers, offsets and lengths
 * (plus some aligned ones) against a shadow copy; then the file itself must
 * equal the shadow byte for byte (edge sectors merged, nothing clobbered).
 */
static void roundtrip(unsigned flags, size_t size, size_t max_len, int nr_ops)
{
	uint8_t *shadow, *buf, *mem = NULL, *check;
	struct wc_dev *dev;
	char *path = make_file("rt.img", size, &shadow);
	int i;

	assert_int_equal(dev_file_open(path, flags, &dev), 0);
	assert_true(fd_flags_of(path) >= 0);
	if (!(flags & DEV_NO_DIRECT) && fs_allows_direct(path))
		assert_true(fd_flags_of(path) & O_DIRECT);
	else
		assert_false(fd_flags_of(path) & O_DIRECT);
	assert_int_equal(posix_memalign((void **)&mem, 4096, max_len + 4096), 0);
	for (i = 0; i < nr_ops; i++) {
		bool aligned = rng_next(&g_rng) % 4 == 0;
		uint64_t off = rng_next(&g_rng) % size;
		size_t len = 1 + rng_next(&g_rng) % (size - off < max_len ? size - off : max_len);

		if (aligned) {
			off &= ~511ull;
			len = (len + 511) & ~511ul;
			if (off + len > size)
				len = (size - off) & ~511ul;
			if (!len)
				continue;
		}
		buf = mem + (aligned ? 0 : 1 + rng_next(&g_rng) % 511);
		if (rng_next(&g_rng) & 1) {
			fill_random(buf, len);
			assert_int_equal(dev_pwrite(dev, buf, len, off), 0);
			memcpy(shadow + off, buf, len);
		} else {
			assert_int_equal(dev_pread(dev, buf, len, off), 0);
			assert_memory_equal(buf, shadow + off, len);
		}
	}
	assert_int_equal(dev_flush(dev), 0);
	dev_close(dev);
	check = malloc(size);
	read_file(path, check, size);
	assert_memory_equal(check, shadow, size);
	free(check);
	free(mem);
	free(shadow);
}

static void test_file_roundtrip_direct(void **state)
{
	(void)state;
	g_rng.s = 1;
	roundtrip(0, 256 * 1024, 70000, 3000);
}

static void test_file_roundtrip_buffered(void **state)
{
	(void)state;
	g_rng.s = 2;
	roundtrip(DEV_NO_DIRECT, 256 * 1024, 70000, 1000);
}

/* Requests larger than the 1 MiB bounce buffer are done in chunks. */
static void test_file_roundtrip_large(void **state)
{
	(void)state;
	g_rng.s = 3;
	roundtrip(0, 5 * 1024 * 1024, 3 * 1024 * 1024, 40);
}

struct stripe_arg {
	struct wc_dev *dev;
	int id;
};

#define STRIPE 100	/* bytes; 4 threads share every 512-byte sector */
#define STRIPE_AREA (64 * 1024)

static void *stripe_writer(void *p)
{
	struct stripe_arg *a = p;
	uint8_t buf[STRIPE];
	int round, k;

	for (round = 1; round <= 20; round++) {
		memset(buf, a->id * 32 + round, sizeof(buf));
		for (k = a->id; k * STRIPE + STRIPE <= STRIPE_AREA; k += 4)
			if (dev_pwrite(a->dev, buf, STRIPE, (uint64_t)k * STRIPE))
				return p;
	}
	return NULL;
}

/* Concurrent writers of different bytes of the same sectors never lose each other's data. */
static void test_file_concurrent_partial(void **state)
{
	struct stripe_arg args[4];
	pthread_t th[4];
	uint8_t *check = malloc(STRIPE_AREA);
	struct wc_dev *dev;
	char *path = make_file("stripes.img", STRIPE_AREA, NULL);
	int i, k;
	void *ret;

	(void)state;
	assert_int_equal(dev_file_open(path, 0, &dev), 0);
	for (i = 0; i < 4; i++) {
		args[i] = (struct stripe_arg){ dev, i };
		assert_int_equal(pthread_create(&th[i], NULL, stripe_writer, &args[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_null(ret);
	}
	dev_close(dev);
	read_file(path, check, STRIPE_AREA);
	for (k = 0; k * STRIPE + STRIPE <= STRIPE_AREA; k++)
		for (i = 0; i < STRIPE; i++)
			assert_int_equal(check[k * STRIPE + i], (k % 4) * 32 + 20);
	free(check);
}

/* A file shrunk behind our back reads as zeros past its new end. */
static void eof_case(unsigned flags)
{
	uint8_t *data, buf[6144];
	struct wc_dev *dev;
	char *path = make_file("eof.img", 8192, &data);

	assert_int_equal(dev_file_open(path, flags, &dev), 0);
	assert_int_equal(truncate(path, 4096), 0);
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(dev_pread(dev, buf, 6000, 2000), 0);	/* unaligned: bounce path */
	assert_memory_equal(buf, data + 2000, 2096);
	for (int i = 2096; i < 6000; i++)
		assert_int_equal(buf[i], 0);
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(dev_pread(dev, buf, 4096, 4096), 0);	/* aligned */
	for (int i = 0; i < 4096; i++)
		assert_int_equal(buf[i], 0);
	dev_close(dev);
	free(data);
}

static void test_file_read_past_eof(void **state)
{
	(void)state;
	eof_case(0);
	eof_case(DEV_NO_DIRECT);
}

/* A size that is not a multiple of 512 works (buffered) and never grows the file. */
static void test_file_odd_size(void **state)
{
	uint8_t *data, buf[300];
	struct wc_dev *dev;
	struct stat st;
	char *path = make_file("odd.img", 1000, &data);

	(void)state;
	assert_int_equal(dev_file_open(path, 0, &dev), 0);
	assert_int_equal(dev->size, 1000);
	assert_true(fd_flags_of(path) >= 0);
	assert_false(fd_flags_of(path) & O_DIRECT);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(dev_pwrite(dev, buf, 300, 700), 0);
	assert_int_equal(dev_pread(dev, buf, 300, 700), 0);
	assert_int_equal(buf[299], 0x5a);
	assert_int_equal(dev_pread(dev, buf, 1, 1000), -EINVAL);
	dev_close(dev);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 1000);
	free(data);
}

static void test_file_flush(void **state)
{
	uint8_t buf[4096], check[4096];
	struct wc_dev *dev;
	char *path = make_file("flush.img", 65536, NULL);

	(void)state;
	assert_int_equal(dev_file_open(path, 0, &dev), 0);
	fill_random(buf, sizeof(buf));
	assert_int_equal(dev_pwrite(dev, buf, sizeof(buf), 8192), 0);
	assert_int_equal(dev_flush(dev), 0);
	dev_close(dev);
	{
		int fd = open(path, O_RDONLY);

		assert_int_equal(pread(fd, check, sizeof(check), 8192), (ssize_t)sizeof(check));
		close(fd);
	}
	assert_memory_equal(buf, check, sizeof(buf));
	assert_int_equal(dev_file_open(path, DEV_RDONLY, &dev), 0);
	assert_int_equal(dev_flush(dev), 0);
	dev_close(dev);
}

/* Whether the file system under tmpdir supports hole punching (probed on a scratch file). */
static bool fs_can_punch(void)
{
	char *path = make_file("punch-probe.img", 8192, NULL);
	int fd = open(path, O_RDWR);
	int mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	bool ok = fd >= 0 && fallocate(fd, mode, 0, 4096) == 0;

	if (fd >= 0)
		close(fd);
	unlink(path);
	return ok;
}

static void test_file_discard(void **state)
{
	uint8_t *data, buf[65536];
	struct wc_dev *dev;
	struct stat before, after;
	char *path = make_file("discard.img", 65536, &data);

	(void)state;
	assert_int_equal(stat(path, &before), 0);
	assert_int_equal(dev_file_open(path, 0, &dev), 0);
	assert_int_equal(dev_discard(dev, 32768, 8192), 0);
	assert_int_equal(dev_discard(dev, 200, 100), 0);	/* unaligned: allowed */
	assert_int_equal(dev_discard(dev, 1, 65536), -EINVAL);
	assert_int_equal(dev_pread(dev, buf, sizeof(buf), 0), 0);
	assert_memory_equal(buf + 300, data + 300, 8192 - 300);
	assert_memory_equal(buf + 40960, data + 40960, 65536 - 40960);
	dev_close(dev);
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(after.st_size, 65536);
	/* Where holes can be punched, the range reads as zeros and its blocks are freed. */
	if (fs_can_punch()) {
		assert_true(after.st_blocks < before.st_blocks);
		for (int i = 8192; i < 40960; i++)
			assert_int_equal(buf[i], 0);
	}
	free(data);
}

static void test_file_excl(void **state)
{
	struct wc_dev *a, *b;
	char msg[600];
	char *path = make_file("excl.img", 4096, NULL);
	pid_t pid;
	int status;

	(void)state;
	assert_int_equal(dev_file_open(path, DEV_EXCL, &a), 0);
	/* flock belongs to the open file description: a second open conflicts. */
	assert_int_equal(dev_file_open(path, DEV_EXCL, &b), -EBUSY);
	snprintf(msg, sizeof(msg), "%s is already open in this process (locked)", path);
	assert_string_equal(wcache_last_error(), msg);
	assert_int_equal(dev_file_open(path, DEV_EXCL | DEV_RDONLY, &b), -EBUSY);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(-dev_file_open(path, DEV_EXCL, &b));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), EBUSY);
	/* Without DEV_EXCL nobody checks the lock. */
	assert_int_equal(dev_file_open(path, 0, &b), 0);
	dev_close(b);
	dev_close(a);
	assert_int_equal(dev_file_open(path, DEV_EXCL, &b), 0);
	dev_close(b);
}

/* Keeps KILL_INFLIGHT 1 MiB writes in flight until the process dies. */
#define KILL_INFLIGHT 64
#define KILL_IO (1u << 20)
#define KILL_FILE (64u << 20)

static void resubmit_write(struct wc_io *io, int result)
{
	(void)result;
	io->off = (io->off + 7 * KILL_IO) % KILL_FILE;
	dev_submit(io->opaque, &io, 1);
}

static void busy_writer(const char *path, int ready_fd)
{
	static struct wc_io ios[KILL_INFLIGHT];
	struct wc_io *p[KILL_INFLIGHT];
	struct wc_dev *dev;
	void *buf;

	if (dev_file_open(path, DEV_EXCL, &dev) < 0 || posix_memalign(&buf, 4096, KILL_IO))
		_exit(1);
	memset(buf, 0x5a, KILL_IO);
	for (int i = 0; i < KILL_INFLIGHT; i++) {
		ios[i] = (struct wc_io){ .op = WC_IO_WRITE, .buf = buf, .len = KILL_IO,
					 .off = (uint64_t)i * KILL_IO, .done = resubmit_write,
					 .opaque = dev };
		p[i] = &ios[i];
	}
	dev_submit(dev, p, KILL_INFLIGHT);
	if (write(ready_fd, "r", 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

/*
 * A server killed with requests in its io_uring: the kernel releases the
 * ring (and with it the open file and its flock) after the process has been
 * reaped. Reopening right away must wait for that, not report "in use" (the
 * kill -9 test's restart failed so in CI). A live holder is named at once.
 */
static void test_file_excl_after_kill(void **state)
{
	char path[512], msg[600];
	struct wc_dev *dev;
	int pipefd[2], fd, status;
	char c;
	pid_t pid;

	(void)state;
	snprintf(path, sizeof(path), "%s/excl-kill.img", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, KILL_FILE), 0);
	close(fd);
	for (int round = 0; round < 3; round++) {
		assert_int_equal(pipe(pipefd), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(pipefd[0]);
			busy_writer(path, pipefd[1]);
		}
		close(pipefd[1]);
		assert_int_equal(read(pipefd[0], &c, 1), 1);
		close(pipefd[0]);
		if (round == 0) {
			/* Alive: refused at once, by pid. */
			assert_int_equal(dev_file_open(path, DEV_EXCL, &dev), -EBUSY);
			snprintf(msg, sizeof(msg), "(locked by pid %d, ", (int)pid);
			assert_non_null(strstr(wcache_last_error(), msg));
		}
		usleep(50000);
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		if (dev_file_open(path, DEV_EXCL, &dev) != 0)
			fail_msg("round %d: %s", round, wcache_last_error());
		dev_close(dev);
	}
}

static void test_file_errors(void **state)
{
	struct wc_dev *dev;
	char path[512];
	uint8_t buf[512] = { 0 };

	(void)state;
	snprintf(path, sizeof(path), "%s/no/such.img", tmpdir);
	assert_int_equal(dev_file_open(path, 0, &dev), -ENOENT);
	assert_non_null(strstr(wcache_last_error(), path));
	assert_non_null(strstr(wcache_last_error(), "No such file"));

	assert_true(dev_file_open(tmpdir, 0, &dev) < 0);		/* directory */
	assert_non_null(strstr(wcache_last_error(), tmpdir));
	assert_int_equal(dev_file_open(tmpdir, DEV_RDONLY, &dev), -EINVAL);
	assert_non_null(strstr(wcache_last_error(), "not a regular file or block device"));

	strcpy(path, make_file("ro.img", 4096, NULL));
	assert_int_equal(dev_file_open(path, DEV_RDONLY, &dev), 0);
	assert_int_equal(dev_pread(dev, buf, 512, 0), 0);
	assert_int_equal(dev_pwrite(dev, buf, 512, 0), -EROFS);
	assert_non_null(strstr(wcache_last_error(), path));
	assert_int_equal(dev_discard(dev, 512, 0), -EROFS);
	assert_int_equal(dev_pread(dev, buf, 512, 4090), -EINVAL);
	assert_non_null(strstr(wcache_last_error(), path));
	dev_close(dev);
}

static struct wc_dev *held_dev;	/* closed by the teardowns if a test fails with it open */

static void close_held(void)
{
	dev_close(held_dev);
	held_dev = NULL;
}

/* ---- file backend: submitted requests, on io_uring and on the thread fallback ---- */

/*
 * Each test runs twice: state points at ASYNC_URING or ASYNC_THREADS, and
 * WC_NO_URING is set accordingly before the device sees its first request.
 */
enum { ASYNC_URING, ASYNC_THREADS };
static const int mode_uring = ASYNC_URING, mode_threads = ASYNC_THREADS;

static void async_mode(void **state)
{
	if (*(const int *)*state == ASYNC_THREADS)
		setenv("WC_NO_URING", "1", 1);
	else
		unsetenv("WC_NO_URING");
}

static int async_teardown(void **state)
{
	(void)state;
	unsetenv("WC_NO_URING");
	close_held();
	return 0;
}

/* Can this process set up an io_uring at all (a container may forbid it)? */
static bool uring_works(void)
{
#ifdef WC_WITH_URING
	struct io_uring_params p = { 0 };
	long fd = syscall(__NR_io_uring_setup, 4, &p);

	if (fd < 0)
		return false;
	close(fd);
	return true;
#else
	return false;
#endif
}

/* Open fds of this process whose link target starts with prefix. */
static int count_fds(const char *prefix)
{
	const char *path = "/proc/self/fd";
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char link[600], target[600];
		ssize_t len;

		if (e->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
		len = readlink(link, target, sizeof(target) - 1);
		if (len < 0)
			continue;
		target[len] = 0;
		n += !strncmp(target, prefix, strlen(prefix));
	}
	closedir(d);
	return n;
}

static int nr_rings(void)
{
	return count_fds("anon_inode:[io_uring]");
}

/* Threads of this process, without the kernel's io_uring workers (iou-wrk-*, iou-sqp-*). */
static int nr_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(comm, sizeof(comm), f) || strncmp(comm, "iou-", 4))
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

/* A 4 KiB-aligned buffer (O_DIRECT-ready), or the test fails. */
static void *alloc_4k(size_t size)
{
	void *p = NULL;

	assert_int_equal(posix_memalign(&p, 4096, size), 0);
	return p;
}

/* A submitted request that remembers its result and how often done() ran. */
struct req {
	struct wc_io io;
	int result;
	int calls;
	struct wc_io_wait *w;
};

static void req_done(struct wc_io *io, int result)
{
	struct req *r = (struct req *)io;

	r->result = result;
	r->calls++;
	wc_io_wait_done(io, result);
}

static void req_init(struct req *r, struct wc_io_wait *w, enum wc_io_op op, void *buf,
		     uint64_t len, uint64_t off)
{
	memset(r, 0, sizeof(*r));
	r->io = (struct wc_io){ .op = op, .buf = buf, .len = len, .off = off, .done = req_done,
				.opaque = w };
	r->w = w;
}

/* Submit n requests (already req_init'ed on w) in one call, wait, return the first error. */
static int submit_wait(struct wc_dev *dev, struct req *r, unsigned n, struct wc_io_wait *w)
{
	struct wc_io **p = malloc((n ? n : 1) * sizeof(*p));
	int ret;

	assert_non_null(p);
	for (unsigned i = 0; i < n; i++)
		p[i] = &r[i].io;
	wc_io_wait_add(w, n);
	dev_submit(dev, p, n);
	ret = wc_io_wait_end(w);
	free(p);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(r[i].calls, 1);
	return ret;
}

#define AR_BLK 4096
#define AR_NR_BLK 512		/* 2 MiB file */
#define AR_WRITERS 4
#define AR_WRITES 250		/* per writer: 1,000 in all */

struct ar_arg {
	struct wc_dev *dev;
	uint8_t *shadow;	/* each writer owns blocks b with b % AR_WRITERS == id */
	int id;
	uint64_t seed;
};

#define AR_BATCH (AR_NR_BLK / AR_WRITERS)

/* One submitting thread: AR_WRITES random 4K writes to its own blocks, in batches of 1-128. */
static void *ar_writer(void *p)
{
	struct ar_arg *a = p;
	struct req *r = calloc(AR_BATCH, sizeof(*r));
	uint8_t *mem = NULL;
	struct rng st = { a->seed };	/* g_rng is not thread-safe */
	int left = AR_WRITES;

	if (!r || posix_memalign((void **)&mem, 4096, AR_BATCH * AR_BLK))
		return p;
	while (left) {
		struct wc_io_wait w;
		struct wc_io *ios[AR_BATCH];
		uint8_t used[AR_NR_BLK] = { 0 };
		int n = 1 + rng_below(&st, AR_BATCH);

		if (n > left)
			n = left;
		wc_io_wait_init(&w);
		for (int i = 0; i < n; i++) {
			uint8_t *buf = mem + (size_t)i * AR_BLK;
			uint64_t b;

			do {	/* distinct blocks in one batch: their order is unspecified */
				b = rng_below(&st, AR_BATCH) * AR_WRITERS + a->id;
			} while (used[b]);
			used[b] = 1;
			rng_bytes(&st, buf, AR_BLK);
			memcpy(a->shadow + b * AR_BLK, buf, AR_BLK);
			req_init(&r[i], &w, WC_IO_WRITE, buf, AR_BLK, b * AR_BLK);
			ios[i] = &r[i].io;
		}
		wc_io_wait_add(&w, n);
		dev_submit(a->dev, ios, n);
		if (wc_io_wait_end(&w))
			return p;
		left -= n;
	}
	free(mem);
	free(r);
	return NULL;
}

/*
 * 1,000 random 4K writes from four submitting threads at once (more than the
 * ring's 256 entries in flight: the backlog), then every block read back by
 * submitted reads and by a plain fd. The ring exists only while the device is
 * open, and only in io_uring mode.
 */
static void test_async_random_rw(void **state)
{
	size_t size = AR_NR_BLK * AR_BLK;
	uint8_t *shadow, *check, *mem;
	struct ar_arg args[AR_WRITERS];
	pthread_t th[AR_WRITERS];
	struct req *r = calloc(AR_NR_BLK, sizeof(*r));
	struct wc_io_wait w;
	char *path = make_file("async-rw.img", size, &shadow);
	int rings = nr_rings();
	void *ret;

	async_mode(state);
	assert_int_equal(dev_file_open(path, 0, &held_dev), 0);
	assert_true(dev_is_async(held_dev));
	if (fs_allows_direct(path))
		assert_true(fd_flags_of(path) & O_DIRECT);
	for (int i = 0; i < AR_WRITERS; i++) {
		args[i] = (struct ar_arg){ held_dev, shadow, i, 1000 + i };
		assert_int_equal(pthread_create(&th[i], NULL, ar_writer, &args[i]), 0);
	}
	for (int i = 0; i < AR_WRITERS; i++) {
		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_null(ret);
	}
	if (*(const int *)*state == ASYNC_URING && uring_works())
		assert_int_equal(nr_rings(), rings + 1);
	else
		assert_int_equal(nr_rings(), rings);

	/* Read everything back in one batch of 512 aligned 4K reads. */
	mem = alloc_4k(size);
	memset(mem, 0xee, size);
	wc_io_wait_init(&w);
	for (int b = 0; b < AR_NR_BLK; b++)
		req_init(&r[b], &w, WC_IO_READ, mem + (size_t)b * AR_BLK, AR_BLK,
			 (uint64_t)b * AR_BLK);
	assert_int_equal(submit_wait(held_dev, r, AR_NR_BLK, &w), 0);
	assert_memory_equal(mem, shadow, size);
	close_held();
	assert_int_equal(nr_rings(), rings);
	check = malloc(size);
	read_file(path, check, size);
	assert_memory_equal(check, shadow, size);
	free(check);
	free(mem);
	free(r);
	free(shadow);
}

/*
 * Under O_DIRECT, batches mixing aligned and unaligned requests (odd offsets
 * and lengths, unaligned buffers; unaligned ones go through the bounce path)
 * against a shadow copy; writes in one batch never overlap each other or a
 * read. Then one batch of 100-byte writes sharing every sector (the
 * read-modify-write gate keeps them all), mixed with aligned writes.
 */
static void test_async_unaligned(void **state)
{
	size_t size = 256 * 1024;
	uint8_t *shadow, *mem, *check;
	struct req r[64];
	struct wc_dev *dev;
	char *path = make_file("async-unaligned.img", size, &shadow);
	int round;

	async_mode(state);
	g_rng.s = 11;
	assert_int_equal(dev_file_open(path, 0, &held_dev), 0);
	dev = held_dev;
	if (fs_allows_direct(path))
		assert_true(fd_flags_of(path) & O_DIRECT);
	mem = alloc_4k(64 * 8192);
	for (round = 0; round < 60; round++) {
		struct wc_io_wait w;
		uint8_t *busy = calloc(size, 1);	/* 1: read in this batch, 2: written */
		unsigned n = 0;

		wc_io_wait_init(&w);
		for (int k = 0; k < 64; k++) {
			bool aligned = rng_below(&g_rng, 3) == 0, write = rng_next(&g_rng) & 1;
			uint64_t off = rng_below(&g_rng, size);
			size_t len = 1 + rng_below(&g_rng, 8000);
			uint8_t *buf = mem + (size_t)n * 8192 + (aligned ? 0 : 1 + rng_below(&g_rng, 63));
			bool clash = false;

			if (aligned) {
				off &= ~511ull;
				len = (len + 511) & ~511ul;
			}
			if (len > size - off)
				len = aligned ? (size - off) & ~511ul : size - off;
			if (!len)
				continue;
			for (size_t i = 0; i < len && !clash; i++)
				clash = busy[off + i] == 2 || (write && busy[off + i]);
			if (clash)
				continue;
			memset(busy + off, write ? 2 : 1, len);
			if (write) {
				fill_random(buf, len);
				memcpy(shadow + off, buf, len);
			}
			req_init(&r[n++], &w, write ? WC_IO_WRITE : WC_IO_READ, buf, len, off);
		}
		assert_int_equal(submit_wait(dev, r, n, &w), 0);
		for (unsigned i = 0; i < n; i++)
			if (r[i].io.op == WC_IO_READ)
				assert_memory_equal(r[i].io.buf, shadow + r[i].io.off, r[i].io.len);
		free(busy);
	}
	close_held();
	check = malloc(size);
	read_file(path, check, size);
	assert_memory_equal(check, shadow, size);

	/* 100-byte stripes over [0, 64K) and aligned 4K writes over [64K, 128K), one batch. */
	{
		unsigned nr = STRIPE_AREA / STRIPE + 16;
		struct req *s = calloc(nr, sizeof(*s));
		struct wc_io_wait w;
		unsigned n = 0;

		assert_int_equal(dev_file_open(path, 0, &held_dev), 0);
		wc_io_wait_init(&w);
		for (int k = 0; k * STRIPE + STRIPE <= STRIPE_AREA; k++) {
			memset(mem + k * STRIPE, k % 251, STRIPE);
			req_init(&s[n++], &w, WC_IO_WRITE, mem + k * STRIPE, STRIPE,
				 (uint64_t)k * STRIPE);
		}
		memcpy(shadow, mem, (STRIPE_AREA / STRIPE) * STRIPE);
		for (int k = 0; k < 16; k++) {
			uint8_t *b = mem + 65536 + k * 4096;

			fill_random(b, 4096);
			memcpy(shadow + 65536 + k * 4096, b, 4096);
			req_init(&s[n++], &w, WC_IO_WRITE, b, 4096, 65536 + k * 4096);
		}
		assert_int_equal(submit_wait(held_dev, s, n, &w), 0);
		close_held();
		read_file(path, check, size);
		assert_memory_equal(check, shadow, size);
		free(s);
	}
	free(check);
	free(mem);
	free(shadow);
}

/*
 * A whole-sector write and a partial write of the same sector in one batch
 * may land in either order, but the partial write's read-modify-write must
 * never put back the sector's old bytes over the whole-sector write: each
 * sector ends as all A, or B's 100 bytes then A.
 */
static void test_async_rmw_vs_aligned(void **state)
{
	enum { NR_SECT = 64 };
	size_t size = NR_SECT * 512;
	uint8_t *a, *b, *check = malloc(size);
	char *path = make_file("async-rmw.img", size, NULL);
	struct req r[2 * NR_SECT];

	async_mode(state);
	a = alloc_4k(size);
	b = alloc_4k(NR_SECT * 128);
	assert_int_equal(dev_file_open(path, 0, &held_dev), 0);
	for (int round = 0; round < 50; round++) {
		struct wc_io_wait w;

		memset(check, 0x11, size);
		assert_int_equal(dev_pwrite(held_dev, check, size, 0), 0);
		memset(a, 0xaa, size);
		memset(b, 0xbb, NR_SECT * 128);
		wc_io_wait_init(&w);
		for (int s = 0; s < NR_SECT; s++) {
			req_init(&r[2 * s], &w, WC_IO_WRITE, a + s * 512, 512, s * 512);
			req_init(&r[2 * s + 1], &w, WC_IO_WRITE, b + s * 128, 100, s * 512);
		}
		assert_int_equal(submit_wait(held_dev, r, 2 * NR_SECT, &w), 0);
		assert_int_equal(dev_pread(held_dev, check, size, 0), 0);
		for (int s = 0; s < NR_SECT; s++) {
			const uint8_t *p = check + s * 512;

			for (int i = 100; i < 512; i++)
				assert_int_equal(p[i], 0xaa);
			for (int i = 0; i < 100; i++)
				assert_true(p[i] == p[0] && (p[0] == 0xaa || p[0] == 0xbb));
		}
	}
	close_held();
	free(check);
	free(a);
	free(b);
}

/* Submitted reads past the end of a file shrunk behind our back return zeros. */
static void test_async_eof(void **state)
{
	uint8_t *data, *buf;
	struct req r[3];
	struct wc_io_wait w;
	char *path = make_file("async-eof.img", 16384, &data);

	async_mode(state);
	assert_int_equal(dev_file_open(path, 0, &held_dev), 0);
	assert_int_equal(truncate(path, 6000), 0);	/* not even sector-aligned */
	buf = alloc_4k(3 * 8192);
	memset(buf, 0xee, 3 * 8192);
	wc_io_wait_init(&w);
	req_init(&r[0], &w, WC_IO_READ, buf, 8192, 4096);		/* aligned, straddles EOF */
	req_init(&r[1], &w, WC_IO_READ, buf + 8192 + 3, 5000, 3000);	/* unaligned */
	req_init(&r[2], &w, WC_IO_READ, buf + 16384, 4096, 12288);	/* wholly past EOF */
	assert_int_equal(submit_wait(held_dev, r, 3, &w), 0);
	assert_memory_equal(buf, data + 4096, 6000 - 4096);
	for (int i = 6000 - 4096; i < 8192; i++)
		assert_int_equal(buf[i], 0);
	assert_memory_equal(buf + 8192 + 3, data + 3000, 3000);
	for (int i = 3000; i < 5000; i++)
		assert_int_equal(buf[8192 + 3 + i], 0);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(buf[16384 + i], 0);
	close_held();
	free(buf);
	free(data);
}

/* Writes, then a submitted flush; a flush on a read-only device succeeds too. */
static void test_async_flush(void **state)
{
	uint8_t *buf, check[8192];
	struct req r[2];
	struct wc_io_wait w;
	char *path = make_file("async-flush.img", 65536, NULL);

	async_mode(state);
	buf = alloc_4k(8192);
	fill_random(buf, 8192);
	assert_int_equal(dev_file_open(path, 0, &held_dev), 0);
	wc_io_wait_init(&w);
	req_init(&r[0], &w, WC_IO_WRITE, buf, 4096, 8192);
	req_init(&r[1], &w, WC_IO_WRITE, buf + 4096, 4096, 16384);
	assert_int_equal(submit_wait(held_dev, r, 2, &w), 0);
	/* The flush is submitted after both writes completed: it covers them. */
	wc_io_wait_init(&w);
	req_init(&r[0], &w, WC_IO_FLUSH, NULL, 0, 0);
	assert_int_equal(submit_wait(held_dev, r, 1, &w), 0);
	close_held();
	read_file(path, check, 8192);	/* [0, 8192) untouched, so read [8192, 24576) apart */
	{
		int fd = open(path, O_RDONLY);

		assert_int_equal(pread(fd, check, 4096, 8192), 4096);
		assert_int_equal(pread(fd, check + 4096, 4096, 16384), 4096);
		close(fd);
	}
	assert_memory_equal(check, buf, 8192);
	assert_int_equal(dev_file_open(path, DEV_RDONLY, &held_dev), 0);
	wc_io_wait_init(&w);
	req_init(&r[0], &w, WC_IO_FLUSH, NULL, 0, 0);
	assert_int_equal(submit_wait(held_dev, r, 1, &w), 0);
	close_held();
	free(buf);
}

/* Each request of a batch fails or succeeds on its own; errors come through done. */
static void test_async_errors(void **state)
{
	char msg[600] = "";
	uint8_t *data, *buf;
	struct req r[6];
	struct wc_io_wait w;
	char *path = make_file("async-ro.img", 8192, &data);

	async_mode(state);
	buf = alloc_4k(16384);
	assert_int_equal(dev_file_open(path, DEV_RDONLY, &held_dev), 0);
	wc_io_wait_init(&w);
	req_init(&r[0], &w, WC_IO_WRITE, buf, 4096, 0);
	req_init(&r[1], &w, WC_IO_READ, buf + 4096, 4096, 4096);
	req_init(&r[2], &w, WC_IO_DISCARD, NULL, 512, 0);
	req_init(&r[3], &w, WC_IO_WRITE, buf + 8193, 100, 7);		/* unaligned */
	req_init(&r[4], &w, WC_IO_READ, buf + 12288, 512, 8000);	/* past the end */
	req_init(&r[5], &w, WC_IO_READ, buf + 12288 + 1, 100, 1);	/* unaligned */
	r[3].io.msg = msg;	/* the failure text comes back with the request */
	r[3].io.msg_len = sizeof(msg);
	assert_true(submit_wait(held_dev, r, 6, &w) < 0);	/* the first error to complete */
	assert_non_null(strstr(msg, "read-only"));
	assert_non_null(strstr(msg, path));
	assert_int_equal(r[0].result, -EROFS);
	assert_int_equal(r[1].result, 0);
	assert_memory_equal(buf + 4096, data + 4096, 4096);
	assert_int_equal(r[2].result, -EROFS);
	assert_int_equal(r[3].result, -EROFS);
	assert_int_equal(r[4].result, -EINVAL);
	assert_int_equal(r[5].result, 0);
	assert_memory_equal(buf + 12288 + 1, data + 1, 100);
	close_held();
	/* A discard on a writable device runs in the submitter and succeeds. */
	assert_int_equal(dev_file_open(path, 0, &held_dev), 0);
	wc_io_wait_init(&w);
	req_init(&r[0], &w, WC_IO_DISCARD, NULL, 4096, 0);
	assert_int_equal(submit_wait(held_dev, r, 1, &w), 0);
	close_held();
	free(buf);
	free(data);
}

/*
 * dev_close with requests in flight: it returns only after every done() has
 * run, including those of requests submitted by completion callbacks, and the
 * device's threads (completion thread, pool) are gone.
 */
#define CD_NR 384

static atomic_int cd_calls, cd_errors;
static struct wc_io *cd_ios;
static bool cd_again[CD_NR];	/* written only by the one callback of each request */

static void cd_done(struct wc_io *io, int result)
{
	size_t i = io - cd_ios;

	if (result)
		atomic_fetch_add(&cd_errors, 1);
	atomic_fetch_add(&cd_calls, 1);
	/*
	 * First generation: the same write again, from here: half of them as
	 * they were (back to the ring, which submits them after this batch of
	 * callbacks), half one byte shorter (to the pool under O_DIRECT).
	 */
	if (!cd_again[i]) {
		cd_again[i] = true;
		if (i & 1)
			io->len = 4095;
		dev_submit(io->opaque, &io, 1);
	}
}

static void test_async_close_drains(void **state)
{
	size_t size = CD_NR * 4096;
	uint8_t *mem, *check;
	struct wc_io *ios = calloc(CD_NR, sizeof(*ios)), **p = calloc(CD_NR, sizeof(*p));
	char *path = make_file("async-close.img", size, NULL);
	int threads = nr_threads(), rings = nr_rings();

	async_mode(state);
	mem = alloc_4k(size);
	fill_random(mem, size);
	atomic_store(&cd_calls, 0);
	atomic_store(&cd_errors, 0);
	memset(cd_again, 0, sizeof(cd_again));
	cd_ios = ios;
	assert_int_equal(dev_file_open(path, 0, &held_dev), 0);
	for (int i = 0; i < CD_NR; i++) {
		ios[i] = (struct wc_io){ .op = WC_IO_WRITE, .buf = mem + (size_t)i * 4096,
					 .len = 4096, .off = (uint64_t)i * 4096, .done = cd_done,
					 .opaque = held_dev };
		p[i] = &ios[i];
	}
	dev_submit(held_dev, p, CD_NR);
	close_held();
	assert_int_equal(atomic_load(&cd_calls), 2 * CD_NR);
	assert_int_equal(atomic_load(&cd_errors), 0);
	assert_int_equal(nr_threads(), threads);
	assert_int_equal(nr_rings(), rings);
	check = malloc(size);
	read_file(path, check, size);
	assert_memory_equal(check, mem, size);
	free(check);
	free(mem);
	free(p);
	free(ios);
}

/*
 * Without io_uring (WC_NO_URING=1) one info line says so, once per process
 * however many devices there are. Checked in a fresh process: this binary
 * run again with --fallback-log-child PATH.
 */
static int log_nr_uring;

static void count_uring_lines(enum wc_log_level level, const char *msg, void *opaque)
{
	(void)opaque;
	if (level == WC_LOG_INFO && strstr(msg, "io_uring"))
		log_nr_uring++;
}

static int fallback_log_child(const char *path)
{
	struct wc_dev *a, *b;
	uint8_t buf[512];
	struct wc_io io = { .op = WC_IO_READ, .buf = buf, .len = 512 };
	struct wc_io *p = &io;
	struct wc_io_wait w;

	wcache_set_logger(count_uring_lines, NULL);
	if (dev_file_open(path, 0, &a) || dev_file_open(path, 0, &b))
		return 2;
	for (int i = 0; i < 4; i++) {
		wc_io_wait_init(&w);
		wc_io_wait_add(&w, 1);
		io.done = wc_io_wait_done;
		io.opaque = &w;
		dev_submit(i & 1 ? a : b, &p, 1);
		if (wc_io_wait_end(&w))
			return 3;
	}
	dev_close(a);
	dev_close(b);
	return log_nr_uring == 1 ? 0 : 10 + log_nr_uring;
}

static void test_async_fallback_log(void **state)
{
	char *path = make_file("async-log.img", 8192, NULL);
	pid_t pid;
	int status;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("WC_NO_URING", "1", 1);
		execl("/proc/self/exe", "test_dev", "--fallback-log-child", path, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- block device: a loop device with 4096-byte logical blocks ---- */

static char loop[64];
static int loop_teardown(void **state)
{
	char cmd[100];

	(void)state;
	close_held();
	if (!loop[0])
		return 0;
	snprintf(cmd, sizeof(cmd), "losetup -d %s", loop);
	loop[0] = 0;
	return system(cmd) == 0 ? 0 : -1;
}

static void test_blockdev(void **state)
{
	uint8_t *data, *buf, *check;
	struct wc_dev *dev;
	char cmd[700];
	size_t size = 1 << 20;
	char *path = make_file("loop.img", size, &data);
	FILE *p;
	int i;

	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(cmd, sizeof(cmd),
		 "losetup --find --show --sector-size 4096 --direct-io=on '%s' 2>/dev/null", path);
	p = popen(cmd, "r");
	if (!p || !fgets(loop, sizeof(loop), p) || pclose(p) != 0 || loop[0] != '/') {
		loop[0] = 0;
		free(data);
		skip();
	}
	loop[strcspn(loop, "\n")] = 0;
	assert_int_equal(dev_file_open(loop, DEV_EXCL, &held_dev), 0);
	dev = held_dev;
	assert_int_equal(dev->size, size);
	assert_int_equal(dev->logical_block, 4096);
	buf = malloc(size);
	check = malloc(size);
	g_rng.s = 4;
	for (i = 0; i < 200; i++) {
		uint64_t off = rng_next(&g_rng) % size;
		size_t len = 1 + rng_next(&g_rng) % (size - off < 20000 ? size - off : 20000);

		fill_random(buf, len);
		assert_int_equal(dev_pwrite(dev, buf + 1, len, off), 0);
		memcpy(data + off, buf + 1, len);
		assert_int_equal(dev_pread(dev, buf + 3, len, off), 0);
		assert_memory_equal(buf + 3, data + off, len);
	}
	/*
	 * Submitted: 4K-aligned requests go to the ring, 512-aligned ones (not
	 * enough for this device) must not, or the ring's EINVAL would cost O_DIRECT.
	 */
	{
		uint8_t *mem = alloc_4k(64 * 8192);
		struct req r[64];
		struct wc_io_wait w;

		wc_io_wait_init(&w);
		for (i = 0; i < 64; i++) {
			uint64_t off = (uint64_t)i * 16384 + (i % 3 == 1 ? 512 : 0);
			size_t len = i % 3 == 2 ? 1536 : 8192;

			req_init(&r[i], &w, i & 1 ? WC_IO_READ : WC_IO_WRITE, mem + i * 8192, len,
				 off);
			if (i & 1)
				continue;
			fill_random(mem + i * 8192, len);
			memcpy(data + off, mem + i * 8192, len);
		}
		assert_int_equal(submit_wait(dev, r, 64, &w), 0);
		for (i = 1; i < 64; i += 2)
			assert_memory_equal(r[i].io.buf, data + r[i].io.off, r[i].io.len);
		assert_true(fd_flags_of(loop) & O_DIRECT);
		free(mem);
	}
	assert_int_equal(dev_flush(dev), 0);
	/* Only the whole 4 KiB sectors inside [5000, 30000) are discarded: [8192, 28672). */
	assert_int_equal(dev_discard(dev, 25000, 5000), 0);
	assert_int_equal(dev_pread(dev, buf, size, 0), 0);
	assert_memory_equal(buf, data, 8192);
	assert_memory_equal(buf + 28672, data + 28672, size - 28672);
	memset(data + 8192, 0, 28672 - 8192);	/* loop punches a hole in the file */
	assert_memory_equal(buf + 8192, data + 8192, 28672 - 8192);
	close_held();
	assert_int_equal(loop_teardown(NULL), 0);
	read_file(path, check, size);
	assert_memory_equal(check, data, size);
	free(check);
	free(buf);
	free(data);
}

/*
 * O_DIRECT refused at the first I/O: a file on a file system whose device has
 * 4 KiB sectors takes O_DIRECT at open but fails 512-aligned I/O with EINVAL.
 */
static char fs_loop[64], fs_mnt[300];

static int fs_teardown(void **state)
{
	char cmd[700];
	int ret = 0;

	(void)state;
	close_held();
	if (fs_mnt[0]) {
		snprintf(cmd, sizeof(cmd), "umount '%s' || umount -l '%s'", fs_mnt, fs_mnt);
		ret |= system(cmd);
		fs_mnt[0] = 0;
	}
	if (fs_loop[0]) {
		snprintf(cmd, sizeof(cmd), "losetup -d %s", fs_loop);
		ret |= system(cmd);
		fs_loop[0] = 0;
	}
	return ret ? -1 : 0;
}

static void test_file_direct_fallback(void **state)
{
	uint8_t buf[8192], data[8192];
	struct wc_dev *dev;
	char cmd[800], path[400];
	char *img = make_file("fs4k.img", 0, NULL);
	FILE *p;
	int fd;

	(void)state;
	if (geteuid() != 0 || truncate(img, 16 << 20))
		skip();
	snprintf(cmd, sizeof(cmd), "losetup --find --show --sector-size 4096 '%s' 2>/dev/null",
		 img);
	p = popen(cmd, "r");
	if (!p || !fgets(fs_loop, sizeof(fs_loop), p) || pclose(p) != 0 || fs_loop[0] != '/') {
		fs_loop[0] = 0;
		skip();
	}
	fs_loop[strcspn(fs_loop, "\n")] = 0;
	snprintf(fs_mnt, sizeof(fs_mnt), "%s/mnt", tmpdir);
	snprintf(cmd, sizeof(cmd),
		 "mkfs.ext4 -q -F %s >/dev/null 2>&1 && mkdir -p '%s' && mount %s '%s'", fs_loop,
		 fs_mnt, fs_loop, fs_mnt);
	if (system(cmd)) {
		fs_mnt[0] = 0;
		skip();
	}
	snprintf(path, sizeof(path), "%s/f.img", fs_mnt);
	fill_random(data, sizeof(data));
	fd = open(path, O_RDWR | O_CREAT, 0644);
	assert_int_equal(pwrite(fd, data, sizeof(data), 0), (ssize_t)sizeof(data));
	close(fd);

	assert_int_equal(dev_file_open(path, 0, &held_dev), 0);
	dev = held_dev;
	assert_true(fd_flags_of(path) & O_DIRECT);
	assert_int_equal(dev_pread(dev, buf, 1024, 512), 0);	/* EINVAL under O_DIRECT */
	assert_memory_equal(buf, data + 512, 1024);
	assert_false(fd_flags_of(path) & O_DIRECT);
	memset(buf, 0x77, 700);
	assert_int_equal(dev_pwrite(dev, buf, 700, 1000), 0);
	memcpy(data + 1000, buf, 700);
	assert_int_equal(dev_pread(dev, buf, sizeof(buf), 0), 0);
	assert_memory_equal(buf, data, sizeof(buf));
	close_held();

	/* Same for a write as the first I/O. */
	assert_int_equal(dev_file_open(path, 0, &held_dev), 0);
	assert_int_equal(dev_pwrite(held_dev, data, 512, 512), 0);
	assert_false(fd_flags_of(path) & O_DIRECT);
	close_held();

	/* Same for submitted requests: the ring's EINVAL drops O_DIRECT, the retry succeeds. */
	{
		struct req r[2];
		struct wc_io_wait w;
		uint8_t *a;

		fd = open(path, O_RDWR);
		assert_int_equal(pwrite(fd, data, sizeof(data), 0), (ssize_t)sizeof(data));
		close(fd);
		a = alloc_4k(8192);
		assert_int_equal(dev_file_open(path, 0, &held_dev), 0);
		assert_true(fd_flags_of(path) & O_DIRECT);
		wc_io_wait_init(&w);
		req_init(&r[0], &w, WC_IO_READ, a, 1024, 512);		/* 512-aligned: the ring */
		assert_int_equal(submit_wait(held_dev, r, 1, &w), 0);
		assert_memory_equal(a, data + 512, 1024);
		assert_false(fd_flags_of(path) & O_DIRECT);
		close_held();
		assert_int_equal(dev_file_open(path, 0, &held_dev), 0);
		memset(a, 0x5c, 1024);
		memset(data + 1536, 0x5c, 1024);
		wc_io_wait_init(&w);
		req_init(&r[0], &w, WC_IO_WRITE, a, 1024, 1536);
		assert_int_equal(submit_wait(held_dev, r, 1, &w), 0);
		assert_false(fd_flags_of(path) & O_DIRECT);
		close_held();
		read_file(path, a, 8192);
		assert_memory_equal(a, data, 8192);
		free(a);
	}
	assert_int_equal(fs_teardown(NULL), 0);
}

/* ---- dev_open_uri ---- */

static void test_uri(void **state)
{
	struct wc_dev *dev;
	char *path = make_file("a:b.img", 4096, NULL);

	(void)state;
	assert_int_equal(dev_open_uri(path, 0, &dev), 0);
	assert_int_equal(dev->size, 4096);
	dev_close(dev);
#ifdef WC_WITH_NBD
	/* Built with libnbd: nbd URIs reach the NBD backend (tests/unit/test_nbd.c). */
	assert_int_equal(dev_open_uri("nbd+unix:///?socket=/definitely/not/here", 0, &dev), -ENOENT);
	assert_non_null(strstr(wcache_last_error(), "nbd+unix:///?socket=/definitely/not/here"));
#else
	assert_int_equal(dev_open_uri("nbd://localhost/export", 0, &dev), -EPROTONOSUPPORT);
	assert_non_null(strstr(wcache_last_error(), "nbd://localhost/export"));
	assert_int_equal(dev_open_uri("nbd+unix:///?socket=/tmp/s", 0, &dev), -EPROTONOSUPPORT);
	assert_int_equal(dev_open_uri("nbds://host", 0, &dev), -EPROTONOSUPPORT);
#endif
	assert_int_equal(dev_open_uri("ftp://host/x", 0, &dev), -EPROTONOSUPPORT);
	assert_non_null(strstr(wcache_last_error(), "unknown URI scheme"));
	assert_int_equal(dev_open_uri("/definitely/not/here", 0, &dev), -ENOENT);
}

#define ASYNC_TEST(f)                                                     \
	{ #f "(uring)", f, NULL, async_teardown, (void *)&mode_uring },    \
	{ #f "(threads)", f, NULL, async_teardown, (void *)&mode_threads }

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch),
		cmocka_unit_test(test_mem),
		cmocka_unit_test(test_file_size),
		cmocka_unit_test(test_file_roundtrip_direct),
		cmocka_unit_test(test_file_roundtrip_buffered),
		cmocka_unit_test(test_file_roundtrip_large),
		cmocka_unit_test(test_file_concurrent_partial),
		cmocka_unit_test(test_file_read_past_eof),
		cmocka_unit_test(test_file_odd_size),
		cmocka_unit_test(test_file_flush),
		cmocka_unit_test(test_file_discard),
		cmocka_unit_test(test_file_excl),
		cmocka_unit_test(test_file_excl_after_kill),
		cmocka_unit_test(test_file_errors),
		ASYNC_TEST(test_async_random_rw),
		ASYNC_TEST(test_async_unaligned),
		ASYNC_TEST(test_async_rmw_vs_aligned),
		ASYNC_TEST(test_async_eof),
		ASYNC_TEST(test_async_flush),
		ASYNC_TEST(test_async_errors),
		ASYNC_TEST(test_async_close_drains),
		cmocka_unit_test(test_async_fallback_log),
		cmocka_unit_test_teardown(test_blockdev, loop_teardown),
		cmocka_unit_test_teardown(test_file_direct_fallback, fs_teardown),
		cmocka_unit_test(test_uri),
	};

	if (argc == 3 && !strcmp(argv[1], "--fallback-log-child"))
		return fallback_log_child(argv[2]);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
