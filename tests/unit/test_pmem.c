/* SPDX-License-Identifier: MIT */
/*
 * pmem mode: the libpmem2 cache device (src/dev/pmem.c: round trips, the
 * persistence path it reports, locking, read-only, SIGBUS -> EIO when the
 * file is truncated under the mapping, foreign SIGBUS still fatal) and the
 * engine in p mode on it (committed blocks never overwritten in place,
 * caches readable in both modes, a memory error failing one read with EIO,
 * the kernel 6.1 pmem read bug pattern). Skips (77) without libpmem2.
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
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "dev.h"
#include "tmpdir.h"
#include "wcache.h"

static char tmpdir[256];

/*
 * ThreadSanitizer's runtime takes a SIGBUS inside its memcpy interceptor as
 * fatal, before the program's handler can jump out of the copy: the SIGBUS
 * -> EIO tests run in the plain and ASan builds only.
 */
#if defined(__SANITIZE_THREAD__)
#define NO_SIGBUS_RECOVERY 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NO_SIGBUS_RECOVERY 1
#endif
#endif

#ifdef WC_WITH_PMEM

static void path_of(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", tmpdir, name);
}

static void make_sized(const char *path, uint64_t size, int fill)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	uint8_t buf[65536];

	assert_true(fd >= 0);
	memset(buf, fill, sizeof(buf));
	for (uint64_t off = 0; off < size; off += sizeof(buf))
		assert_int_equal(pwrite(fd, buf, sizeof(buf), (off_t)off), (ssize_t)sizeof(buf));
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

static void truncate_to(const char *path, uint64_t size)
{
	assert_int_equal(truncate(path, (off_t)size), 0);
}

static void quiet(enum wc_log_level level, const char *msg, void *opaque)
{
	(void)level;
	(void)msg;
	(void)opaque;
}

static void test_dev_roundtrip(void **state)
{
	char path[512], other[512];
	struct wc_dev *d, *d2;
	uint8_t w[10000], r[10000];
	int fd;

	(void)state;
	path_of(path, sizeof(path), "dev.img");
	make_sized(path, 1 << 20, 0);
	assert_int_equal(dev_pmem_open(path, DEV_EXCL, &d), 0);
	assert_int_equal(d->size, 1 << 20);
	/* tmpfs and ext4 are not DAX: libpmem2 persists with msync there. */
	assert_non_null(strstr(d->persist, "pmem: "));
	for (size_t i = 0; i < sizeof(w); i++)
		w[i] = (uint8_t)(i * 7 + 1);
	/* Unaligned offsets and lengths, across pages. */
	assert_int_equal(dev_pwrite(d, w, sizeof(w), 4093), 0);
	assert_int_equal(dev_pread(d, r, sizeof(r), 4093), 0);
	assert_memory_equal(w, r, sizeof(w));
	assert_int_equal(dev_flush(d), 0);
	/* What was flushed is in the file, seen through an ordinary read. */
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	memset(r, 0, sizeof(r));
	assert_int_equal(pread(fd, r, sizeof(r), 4093), (ssize_t)sizeof(r));
	close(fd);
	assert_memory_equal(w, r, sizeof(w));
	assert_int_equal(dev_pwrite(d, w, 16, (1 << 20) - 8), -EINVAL);	/* range checked */
	/* The exclusive lock of the file backend. */
	assert_int_equal(dev_pmem_open(path, DEV_EXCL, &d2), -EBUSY);
	dev_close(d);

	assert_int_equal(dev_pmem_open(path, DEV_RDONLY, &d), 0);
	assert_int_equal(dev_pread(d, r, 100, 4093), 0);
	assert_memory_equal(w, r, 100);
	assert_int_equal(dev_pwrite(d, w, 100, 0), -EROFS);
	dev_close(d);

	path_of(other, sizeof(other), "missing.img");
	assert_int_equal(dev_pmem_open(other, 0, &d), -ENOENT);
	assert_non_null(strstr(wcache_last_error(), "missing.img"));
	assert_int_equal(dev_pmem_open(tmpdir, 0, &d), -EISDIR);
}

/* The file shrinks under the mapping: copies past the new end fault; that is EIO, not death. */
static void test_dev_sigbus(void **state)
{
	char path[512];
	struct wc_dev *d;
	uint8_t buf[8192];

	(void)state;
#ifdef NO_SIGBUS_RECOVERY
	skip();
#endif
	path_of(path, sizeof(path), "bus.img");
	make_sized(path, 1 << 20, 0x5a);
	assert_int_equal(dev_pmem_open(path, 0, &d), 0);
	truncate_to(path, 256 << 10);
	assert_int_equal(dev_pread(d, buf, 4096, 0), 0);
	assert_int_equal(buf[4095], 0x5a);
	assert_int_equal(dev_pread(d, buf, 4096, 512 << 10), -EIO);
	assert_non_null(strstr(wcache_last_error(), "memory error (SIGBUS) reading 4096 bytes"));
	/* A copy straddling the end fails as a whole. */
	assert_int_equal(dev_pread(d, buf, 8192, (256 << 10) - 4096), -EIO);
	assert_int_equal(dev_pwrite(d, buf, 4096, 700 << 10), -EIO);
	assert_non_null(strstr(wcache_last_error(), "writing 4096 bytes"));
	/* The guard is per copy: later good copies work, and a fault again is EIO again. */
	assert_int_equal(dev_pwrite(d, buf, 4096, 0), 0);
	assert_int_equal(dev_pread(d, buf, 4096, 900 << 10), -EIO);
	dev_close(d);
}

/* Our handler passes SIGBUS outside a guarded copy on: the process still dies of it. */
static void test_foreign_sigbus_fatal(void **state)
{
	char path[512];
	struct wc_dev *d;
	pid_t pid;
	int st;

	(void)state;
	path_of(path, sizeof(path), "foreign.img");
	make_sized(path, 1 << 16, 1);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		volatile uint8_t *m;
		int fd;

		signal(SIGBUS, SIG_DFL);	/* not cmocka's: what a plain program has */
		if (dev_pmem_open(path, 0, &d))	/* installs the handler */
			_exit(3);
		fd = open(path, O_RDWR);
		m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED || ftruncate(fd, 0))
			_exit(4);
		(void)m[8192];	/* SIGBUS outside any guarded copy */
		_exit(5);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGBUS);
}

/*
 * The DAX code paths (libpmem2's flushing copy + drain per write, a fence per
 * flush) on tmpfs: PMEM2_FORCE_GRANULARITY makes libpmem2 treat the mapping
 * as cache-line (or byte) granular, which is how its own tests reach them
 * without a DAX device. Nothing here is durable in the DAX sense; the copies,
 * flushes and fault guard run as they would on DAX.
 */
static void test_forced_dax_paths(void **state)
{
	static const struct {
		const char *gran, *text;
	} g[] = { { "CACHE_LINE", "cache-line flush + fence" }, { "BYTE", "BYTE granularity" } };
	char path[512];
	uint8_t w[12345], r[12345];

	(void)state;
	path_of(path, sizeof(path), "forced.img");
	for (size_t k = 0; k < 2; k++) {
		struct wc_dev *d;
		int fd;

		make_sized(path, 1 << 20, 0);
		setenv("PMEM2_FORCE_GRANULARITY", g[k].gran, 1);
		assert_int_equal(dev_pmem_open(path, DEV_EXCL, &d), 0);
		unsetenv("PMEM2_FORCE_GRANULARITY");
		if (!strstr(d->persist, g[k].text))
			fail_msg("%s: persistence '%s'", g[k].gran, d->persist);
		for (size_t i = 0; i < sizeof(w); i++)
			w[i] = (uint8_t)(i * 13 + k);
		/* Small, unaligned and large (non-temporal) copies. */
		assert_int_equal(dev_pwrite(d, w, 7, 3), 0);
		assert_int_equal(dev_pwrite(d, w, sizeof(w), 70001), 0);
		assert_int_equal(dev_flush(d), 0);
		assert_int_equal(dev_pread(d, r, sizeof(r), 70001), 0);
		assert_memory_equal(w, r, sizeof(w));
		fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, r, 7, 3), 7);
		close(fd);
		assert_memory_equal(w, r, 7);
#ifndef NO_SIGBUS_RECOVERY
		/* A store past a truncation faults inside libpmem2's copy: EIO as well. */
		truncate_to(path, 64 << 10);
		assert_int_equal(dev_pwrite(d, w, sizeof(w), 500000), -EIO);
		assert_int_equal(dev_pread(d, r, 100, 600000), -EIO);
		assert_int_equal(dev_pwrite(d, w, 100, 0), 0);
#endif
		dev_close(d);
	}
}

static struct wcache *open_p(const char *origin, const char *cache, const char *mode, int extra)
{
	struct wc_cfg cfg;
	struct wcache *wc = NULL;
	int ret;

	wcache_cfg_init(&cfg);
	snprintf(cfg.origin_path, sizeof(cfg.origin_path), "%s", origin);
	snprintf(cfg.cache_path, sizeof(cfg.cache_path), "%s", cache);
	assert_int_equal(wcache_cfg_set(&cfg, "mode", mode), 0);
	assert_int_equal(wcache_cfg_set(&cfg, "high_watermark", "100"), 0);
	assert_int_equal(wcache_cfg_set(&cfg, "low_watermark", "100"), 0);
	(void)extra;
	ret = wcache_open(&cfg, &wc);
	if (ret)
		fail_msg("open %s mode: %d %s", mode, ret, wcache_last_error());
	return wc;
}

static void fill_block(uint8_t *b, uint32_t bs, uint64_t blk, int gen)
{
	for (uint32_t i = 0; i < bs; i++)
		b[i] = (uint8_t)(blk * 31 + (uint64_t)gen * 7 + i / 512);
}

/*
 * p mode on a file: committed blocks are never written over (the kernel's
 * pmem rule), uncommitted ones are; the table line says p; the cache reads
 * the same in s mode and back in p mode (one layout).
 */
static void test_engine_p_mode(void **state)
{
	char origin[512], cache[512], line[256];
	uint8_t b[4096], r[4096];
	struct wc_stats st;
	struct wcache *wc;

	(void)state;
	path_of(origin, sizeof(origin), "o.img");
	path_of(cache, sizeof(cache), "c.img");
	make_sized(origin, 4 << 20, 0);
	make_sized(cache, 2 << 20, 0);
	wc = open_p(origin, cache, "p", 0);
	assert_true(wcache_table(wc, line, sizeof(line)) > 0);
	assert_int_equal(strncmp(line, "p ", 2), 0);
	assert_non_null(strstr(wcache_persistence(wc), "pmem: "));

	fill_block(b, 4096, 3, 1);
	assert_int_equal(wcache_write(wc, b, 4096, 3 * 4096, 0), 0);
	fill_block(b, 4096, 3, 2);	/* same transaction: in place */
	assert_int_equal(wcache_write(wc, b, 4096, 3 * 4096, 0), 0);
	wcache_get_stats(wc, &st);
	assert_int_equal(st.writes_allocate, 1);
	assert_int_equal(st.write_hits_uncommitted, 1);
	assert_int_equal(wcache_flush(wc), 0);
	fill_block(b, 4096, 3, 3);	/* committed: a new block, never over the old one */
	assert_int_equal(wcache_write(wc, b, 4096, 3 * 4096, 0), 0);
	wcache_get_stats(wc, &st);
	assert_int_equal(st.writes_allocate, 2);
	assert_int_equal(st.write_hits_committed, 1);
	assert_int_equal(wcache_read(wc, r, 4096, 3 * 4096), 0);
	assert_memory_equal(b, r, 4096);
	/* An unaligned write (read-modify-write into a new block). */
	memset(b + 100, 0xee, 50);
	assert_int_equal(wcache_write(wc, b + 100, 50, 3 * 4096 + 100, WC_FUA), 0);
	assert_int_equal(wcache_close(wc), 0);

	wc = open_p(origin, cache, "s", 0);
	assert_int_equal(wcache_read(wc, r, 4096, 3 * 4096), 0);
	assert_memory_equal(b, r, 4096);
	fill_block(b, 4096, 9, 1);
	assert_int_equal(wcache_write(wc, b, 4096, 9 * 4096, WC_FUA), 0);
	assert_int_equal(wcache_close(wc), 0);

	wc = open_p(origin, cache, "p", 0);
	assert_int_equal(wcache_read(wc, r, 4096, 9 * 4096), 0);
	assert_memory_equal(b, r, 4096);
	/* Writeback reads from the mapping. */
	assert_int_equal(wcache_message(wc, "flush"), 0);
	wcache_get_stats(wc, &st);
	assert_int_equal(st.dirty_blocks, 0);
	assert_int_equal(wcache_close(wc), 0);
	{
		int fd = open(origin, O_RDONLY);

		assert_true(fd >= 0);
		assert_int_equal(pread(fd, r, 4096, 9 * 4096), 4096);
		close(fd);
		assert_memory_equal(b, r, 4096);
	}
}

/* A memory error under a cached block fails that read with EIO; the server lives on. */
static void test_engine_sigbus_eio(void **state)
{
	char origin[512], cache[512];
	uint8_t b[4096], r[4096];
	struct wc_stats st;
	struct wcache *wc;
	uint64_t n;

	(void)state;
#ifdef NO_SIGBUS_RECOVERY
	skip();
#endif
	path_of(origin, sizeof(origin), "o2.img");
	path_of(cache, sizeof(cache), "c2.img");
	make_sized(origin, 4 << 20, 0x11);
	make_sized(cache, 2 << 20, 0);
	wc = open_p(origin, cache, "p", 0);
	wcache_get_stats(wc, &st);
	n = st.n_blocks;
	/* Fill every cache block so that the last ones lie past the cut below. */
	for (uint64_t i = 0; i < n; i++) {
		fill_block(b, 4096, i, 1);
		assert_int_equal(wcache_write(wc, b, 4096, i * 4096, 0), 0);
	}
	assert_int_equal(wcache_flush(wc), 0);
	truncate_to(cache, 1 << 20);
	wcache_set_logger(quiet, NULL);
	assert_int_equal(wcache_read(wc, r, 4096, (n - 1) * 4096), -EIO);
	assert_non_null(strstr(wcache_last_error(), "SIGBUS"));
	/* Blocks still mapped read fine; uncached ones come from the origin. */
	assert_int_equal(wcache_read(wc, r, 4096, 0), 0);
	fill_block(b, 4096, 0, 1);
	assert_memory_equal(b, r, 4096);
	assert_int_equal(wcache_read(wc, r, 4096, (n + 5) * 4096), 0);
	assert_int_equal(r[0], 0x11);
	wcache_close(wc);
	wcache_set_logger(NULL, NULL);
}

/*
 * The Linux 6.1 pmem-mode read bug (harness vm-probes/guest-pmem-readbug.sh):
 * a read covering cached blocks with uncached ones between them returned
 * zeros for its tail. wcache must return the right bytes for that pattern.
 */
static void test_readbug_pattern(void **state)
{
	static const uint64_t cached[] = { 1, 3, 5, 10 };
	char origin[512], cache[512];
	uint8_t *r = malloc(1 << 20), b[4096];
	struct wcache *wc;

	(void)state;
	assert_non_null(r);
	path_of(origin, sizeof(origin), "o3.img");
	path_of(cache, sizeof(cache), "c3.img");
	make_sized(origin, 16 << 20, 0xaa);
	make_sized(cache, 8 << 20, 0);
	wc = open_p(origin, cache, "p", 0);
	memset(b, 0xbb, sizeof(b));
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(wcache_write(wc, b, 4096, cached[i] * 4096, WC_FUA), 0);
	for (uint64_t len = 65536; len <= (1 << 20); len *= 16) {
		size_t nbb = 0;

		assert_int_equal(wcache_read(wc, r, len, 0), 0);
		for (uint64_t blk = 0; blk < len / 4096; blk++) {
			bool is_cached = blk == 1 || blk == 3 || blk == 5 || blk == 10;

			for (uint64_t k = 0; k < 4096; k++) {
				uint8_t want = is_cached ? 0xbb : 0xaa;

				if (r[blk * 4096 + k] != want)
					fail_msg("read of %llu bytes: block %llu byte %llu is 0x%02x, want "
						 "0x%02x", (unsigned long long)len,
						 (unsigned long long)blk, (unsigned long long)k,
						 r[blk * 4096 + k], want);
				nbb += r[blk * 4096 + k] == 0xbb;
			}
		}
		assert_int_equal(nbb, 16384);
	}
	wcache_close(wc);
	free(r);
}

/* Block devices are for SSD mode; directories are not devices. */
static void test_open_errors(void **state)
{
	struct wc_cfg cfg;
	struct wcache *wc;
	char origin[512];

	(void)state;
	path_of(origin, sizeof(origin), "o4.img");
	make_sized(origin, 1 << 20, 0);
	wcache_cfg_init(&cfg);
	assert_int_equal(wcache_cfg_parse_table(&cfg, "p /dev/null /dev/null 4096 0"), 0);
	snprintf(cfg.origin_path, sizeof(cfg.origin_path), "%s", origin);
	wcache_set_logger(quiet, NULL);
	assert_true(wcache_open(&cfg, &wc) < 0);
	assert_non_null(strstr(wcache_last_error(), "/dev/null"));
	if (access("/dev/loop0", R_OK | W_OK) == 0) {
		snprintf(cfg.cache_path, sizeof(cfg.cache_path), "/dev/loop0");
		assert_int_equal(wcache_open(&cfg, &wc), -EINVAL);
		assert_non_null(strstr(wcache_last_error(), "pmem mode needs a regular file"));
	}
	wcache_set_logger(NULL, NULL);
}

#endif

static int setup(void **state)
{
	(void)state;
	/* tmpfs when there is one: the mapping then behaves as the tests expect everywhere. */
	if (access("/dev/shm", W_OK) == 0)
		return tmpdir_make(tmpdir, sizeof(tmpdir), "/dev/shm", "pmem") ? -1 : 0;
	return tmpdir_make(tmpdir, sizeof(tmpdir), tmpdir_base(), "pmem") ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	return tmpdir_remove(tmpdir) ? -1 : 0;
}

int main(void)
{
#ifdef WC_WITH_PMEM
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dev_roundtrip),
		cmocka_unit_test(test_dev_sigbus),
		cmocka_unit_test(test_foreign_sigbus_fatal),
		cmocka_unit_test(test_forced_dax_paths),
		cmocka_unit_test(test_engine_p_mode),
		cmocka_unit_test(test_engine_sigbus_eio),
		cmocka_unit_test(test_readbug_pattern),
		cmocka_unit_test(test_open_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
#else
	(void)setup;
	(void)teardown;
	puts("test_pmem: skipped, this build has no pmem mode (libpmem2-dev was missing)");
	return 77;
#endif
}
