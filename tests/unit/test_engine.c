/* SPDX-License-Identifier: MIT */
/*
 * Engine basics on RAM devices: format on open, aligned and unaligned
 * writes, reads of hits and misses, flush + reopen, discard, write-zeroes,
 * full cache (write-around and waiting), writeback via the flush message,
 * status and table lines, read-only open, messages of failed calls.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include "wcache.h"
#include "dev.h"
#include "fault.h"
#include "log.h"
#include "testing.h"

#define ORIGIN_BYTES (8u << 20)
#define CACHE_BYTES (1u << 20)

struct rig {
	struct wc_dev *origin, *cache;	/* test's own handles (fault devices, shared) */
	struct wcache *wc;
	uint8_t *model;
};

static struct wcache *open_rig(struct rig *r, uint32_t bs, const char *extra)
{
	struct wc_cfg cfg;
	struct wc_dev *o, *c;
	struct wcache *wc = NULL;

	wcache_cfg_init(&cfg);
	cfg.block_size = bs;
	if (extra) {
		char buf[256], *save, *tok;

		snprintf(buf, sizeof(buf), "%s", extra);
		for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
			char *v = strtok_r(NULL, " ", &save);

			assert_int_equal(wcache_cfg_set(&cfg, tok, v), 0);
		}
	}
	assert_int_equal(dev_fault_share(r->origin, &o), 0);
	assert_int_equal(dev_fault_share(r->cache, &c), 0);
	assert_int_equal(wc_open_devs(&cfg, o, c, &wc), 0);
	return wc;
}

static void rig_init(struct rig *r)
{
	assert_int_equal(dev_fault_open(ORIGIN_BYTES, &r->origin), 0);
	assert_int_equal(dev_fault_open(CACHE_BYTES, &r->cache), 0);
	r->model = calloc(1, ORIGIN_BYTES);
}

static void rig_fini(struct rig *r)
{
	dev_close(r->origin);
	dev_close(r->cache);
	free(r->model);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

static void do_write(struct rig *r, uint64_t off, size_t len, unsigned seed, unsigned flags)
{
	uint8_t *b = malloc(len);

	fill(b, len, seed);
	assert_int_equal(wcache_write(r->wc, b, len, off, flags), 0);
	memcpy(r->model + off, b, len);
	free(b);
}

static void check_all(struct rig *r)
{
	uint8_t *b = malloc(ORIGIN_BYTES);

	assert_int_equal(wcache_read(r->wc, b, ORIGIN_BYTES, 0), 0);
	assert_memory_equal(b, r->model, ORIGIN_BYTES);
	free(b);
}

static void test_basic_rw_reopen(void **state)
{
	struct rig r;
	(void)state;

	for (uint32_t bs = 512; bs <= 4096; bs *= 8) {
		rig_init(&r);
		r.wc = open_rig(&r, bs, NULL);
		assert_int_equal(wcache_size(r.wc), ORIGIN_BYTES);
		do_write(&r, 0, 4096, 1, 0);
		do_write(&r, 8192, 3 * bs, 2, 0);
		do_write(&r, 100, 1000, 3, 0);		/* unaligned, over cached data */
		do_write(&r, 70000, 5, 4, 0);		/* unaligned, uncached */
		do_write(&r, ORIGIN_BYTES - 7, 7, 5, WC_FUA);
		check_all(&r);
		assert_int_equal(wcache_flush(r.wc), 0);
		do_write(&r, 8192, bs, 6, 0);		/* in place over committed */
		assert_int_equal(wcache_flush(r.wc), 0);
		assert_int_equal(wcache_close(r.wc), 0);
		r.wc = open_rig(&r, bs, NULL);
		check_all(&r);
		assert_int_equal(wcache_close(r.wc), 0);
		/* Crash dropping all unflushed writes: everything was flushed. */
		fault_crash(r.cache, FAULT_DROP_ALL, 1);
		fault_crash(r.origin, FAULT_DROP_ALL, 1);
		r.wc = open_rig(&r, bs, NULL);
		check_all(&r);
		assert_int_equal(wcache_close(r.wc), 0);
		rig_fini(&r);
	}
}

static void test_unflushed_lost_flushed_kept(void **state)
{
	struct rig r;
	uint8_t *b = malloc(4096);
	(void)state;

	rig_init(&r);
	r.wc = open_rig(&r, 4096, "autocommit_time 3600000");
	do_write(&r, 0, 4096, 1, 0);
	assert_int_equal(wcache_flush(r.wc), 0);
	do_write(&r, 4096, 4096, 2, 0);		/* never flushed */
	/* Abandon without close: simulate power loss on both devices. */
	fault_arm_crash(r.cache, 1);
	fault_arm_crash(r.origin, 1);
	wcache_close(r.wc);
	fault_crash(r.cache, FAULT_DROP_ALL, 2);
	fault_crash(r.origin, FAULT_DROP_ALL, 2);
	r.wc = open_rig(&r, 4096, NULL);
	assert_int_equal(wcache_read(r.wc, b, 4096, 0), 0);
	assert_memory_equal(b, r.model, 4096);
	assert_int_equal(wcache_read(r.wc, b, 4096, 4096), 0);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(b[i], 0);
	assert_int_equal(wcache_close(r.wc), 0);
	rig_fini(&r);
	free(b);
}

static void test_full_cache_and_flush_message(void **state)
{
	struct rig r;
	char line[512];
	struct wc_stats st;
	(void)state;

	rig_init(&r);
	r.wc = open_rig(&r, 4096, "high_watermark 100 low_watermark 100 pause_writeback 0");
	/* 1 MiB cache holds < 256 blocks: write 2 MiB, some must go around. */
	for (unsigned i = 0; i < 512; i++)
		do_write(&r, (uint64_t)i * 4096 * 3 % ORIGIN_BYTES, 4096, 10 + i, 0);
	wcache_get_stats(r.wc, &st);
	assert_true(st.writes_around > 0);
	check_all(&r);
	assert_int_equal(wcache_message(r.wc, "flush"), 0);
	wcache_get_stats(r.wc, &st);
	assert_int_equal(st.free_blocks, st.n_blocks);
	assert_true(wcache_status(r.wc, line, sizeof(line)) > 0);
	assert_int_equal(strncmp(line, "0 ", 2), 0);
	check_all(&r);
	/* The origin alone holds everything now. */
	assert_memory_equal(fault_durable(r.origin), r.model, ORIGIN_BYTES);
	assert_int_equal(wcache_message(r.wc, "bogus"), -EINVAL);
	assert_int_equal(wcache_message(r.wc, "flush now"), -EINVAL);
	assert_int_equal(wcache_close(r.wc), 0);
	rig_fini(&r);
}

static void test_overwrite_during_writeback_pressure(void **state)
{
	struct rig r;
	struct wc_stats st;
	(void)state;

	rig_init(&r);
	r.wc = open_rig(&r, 4096, "high_watermark 10 low_watermark 5 pause_writeback 0 autocommit_blocks 8");
	for (unsigned round = 0; round < 20; round++)
		for (unsigned i = 0; i < 300; i++)
			do_write(&r, (uint64_t)((i * 37 + round) % 600) * 4096, 4096, round * 1000 + i,
				 i % 50 == 0 ? WC_FUA : 0);
	check_all(&r);
	assert_int_equal(wcache_message(r.wc, "flush"), 0);
	check_all(&r);
	wcache_get_stats(r.wc, &st);
	assert_int_equal(st.free_blocks, st.n_blocks);
	assert_memory_equal(fault_durable(r.origin), r.model, ORIGIN_BYTES);
	assert_int_equal(wcache_close(r.wc), 0);
	rig_fini(&r);
}

static void test_discard_zeroes(void **state)
{
	struct rig r;
	uint8_t *b = malloc(65536);
	(void)state;

	rig_init(&r);
	r.wc = open_rig(&r, 4096, NULL);
	do_write(&r, 0, 65536, 1, 0);
	assert_int_equal(wcache_write_zeroes(r.wc, 8192, 4096, 0), 0);
	memset(r.model + 4096, 0, 8192);
	check_all(&r);
	assert_int_equal(wcache_discard(r.wc, 32768, 32768, 0), 0);
	assert_int_equal(wcache_read(r.wc, b, 32768, 0), 0);
	assert_memory_equal(b, r.model, 32768);
	assert_int_equal(wcache_discard(r.wc, 4096, ORIGIN_BYTES, 0), -EINVAL);
	assert_int_equal(wcache_read(r.wc, b, 2, ORIGIN_BYTES - 1), -EINVAL);
	assert_int_equal(wcache_close(r.wc), 0);
	rig_fini(&r);
	free(b);
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/*
 * Regression: the engine's condition variable used the wall clock while the
 * timed waits computed monotonic deadlines, so every wait returned at once and
 * an idle cache spun at ~60% of a CPU. Idle must cost (almost) nothing.
 */
static void test_idle_does_not_spin(void **state)
{
	struct rig r;
	double t0;
	(void)state;

	rig_init(&r);
	r.wc = open_rig(&r, 4096, "max_age 60000");
	do_write(&r, 0, 4096, 1, 0);	/* something dirty: timers armed */
	usleep(200000);
	t0 = cpu_seconds();
	sleep(2);
	assert_true(cpu_seconds() - t0 < 0.3);
	assert_int_equal(wcache_close(r.wc), 0);
	rig_fini(&r);
}

/* Voluntary context switches of every thread but the caller (the engine's own threads). */
static long other_threads_switches(void)
{
	char path[300], line[128];
	long total = 0, self = (long)gettid();
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;

	assert_non_null(d);
	while ((de = readdir(d))) {
		FILE *f;

		if (de->d_name[0] == '.' || atol(de->d_name) == self)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;	/* the thread just ended */
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "voluntary_ctxt_switches:", 24))
				total += atol(line + 24);
		fclose(f);
	}
	closedir(d);
	return total;
}

/*
 * Regression: the end of every read broadcast the engine's condition
 * variable, waking the writeback and service threads for nothing (about three
 * context switches per request, 10% of QD1 read IOPS over NBD). 200 bursts of
 * reads, each after the threads have gone back to sleep, must not wake them.
 */
static void test_reads_do_not_wake_threads(void **state)
{
	struct rig r;
	uint8_t buf[4096];
	long before, woken;
	(void)state;

	rig_init(&r);
	r.wc = open_rig(&r, 4096, "max_age 60000");
	do_write(&r, 0, 4096, 1, 0);
	usleep(100000);
	before = other_threads_switches();
	for (int burst = 0; burst < 200; burst++) {
		for (int i = 0; i < 100; i++)
			assert_int_equal(wcache_read(r.wc, buf, sizeof(buf), 0), 0);
		usleep(500);
	}
	woken = other_threads_switches() - before;
	/* Timers (autocommit, max_age) may fire a few times in these ~0.2 s. */
	if (woken >= 50)
		fail_msg("engine threads switched %ld times during 20000 reads", woken);
	assert_int_equal(wcache_close(r.wc), 0);
	rig_fini(&r);
}

static uint64_t dirty_blocks(struct wcache *wc)
{
	struct wc_stats s;

	wcache_get_stats(wc, &s);
	return s.dirty_blocks;
}

/*
 * max_age with the watermarks out of the way: committed blocks stay dirty
 * while young and are written back once older than max_age, also blocks
 * recovered at open (aged from the open), and the origin then holds them.
 */
static void test_max_age_writes_back_old_blocks(void **state)
{
	struct rig r;
	uint8_t *b = malloc(ORIGIN_BYTES);
	int waited = 0;
	(void)state;

	rig_init(&r);
	r.wc = open_rig(&r, 4096, "max_age 2000 high_watermark 100 low_watermark 100");
	for (unsigned i = 0; i < 8; i++)
		do_write(&r, (uint64_t)i * 3 * 4096, 4096, 10 + i, 0);
	assert_int_equal(wcache_flush(r.wc), 0);
	usleep(500000);
	assert_int_equal(dirty_blocks(r.wc), 8);	/* young: kept */
	while (dirty_blocks(r.wc) && waited++ < 80)
		usleep(100000);
	assert_int_equal(dirty_blocks(r.wc), 0);
	assert_int_equal(dev_pread(r.origin, b, ORIGIN_BYTES, 0), 0);
	assert_memory_equal(b, r.model, ORIGIN_BYTES);

	/* Blocks valid at the next open age from the open. */
	do_write(&r, 5 * 4096, 4096, 30, 0);
	assert_int_equal(wcache_close(r.wc), 0);
	r.wc = open_rig(&r, 4096, "max_age 2000 high_watermark 100 low_watermark 100");
	assert_int_equal(dirty_blocks(r.wc), 1);
	waited = 0;
	while (dirty_blocks(r.wc) && waited++ < 80)
		usleep(100000);
	assert_int_equal(dirty_blocks(r.wc), 0);
	assert_int_equal(dev_pread(r.origin, b, ORIGIN_BYTES, 0), 0);
	assert_memory_equal(b, r.model, ORIGIN_BYTES);
	assert_int_equal(wcache_close(r.wc), 0);
	rig_fini(&r);
	free(b);
}

/* A device that forwards to another but fails reads from byte fail_from on. */
struct failing_dev {
	struct wc_dev dev;
	struct wc_dev *inner;
	uint64_t fail_from;
};

static int fd_pread(struct wc_dev *d, void *buf, size_t len, uint64_t off)
{
	struct failing_dev *f = d->priv;

	return off + len > f->fail_from ? -EIO : dev_pread(f->inner, buf, len, off);
}

static int fd_pwrite(struct wc_dev *d, const void *buf, size_t len, uint64_t off)
{
	return dev_pwrite(((struct failing_dev *)d->priv)->inner, buf, len, off);
}

static int fd_flush(struct wc_dev *d)
{
	return dev_flush(((struct failing_dev *)d->priv)->inner);
}

static void fd_close(struct wc_dev *d)
{
	struct failing_dev *f = d->priv;

	dev_close(f->inner);
	free(f);
}

static const struct wc_dev_ops failing_ops = {
	.name = "failing", .pread = fd_pread, .pwrite = fd_pwrite, .flush = fd_flush,
	.close = fd_close,
};

static struct wc_dev *failing_dev(struct wc_dev *inner, uint64_t fail_from)
{
	struct failing_dev *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->inner = inner;
	f->fail_from = fail_from;
	f->dev = *inner;	/* size, logical block, name */
	f->dev.ops = &failing_ops;
	f->dev.priv = f;
	return &f->dev;
}

/*
 * Activation of a large cache reads the metadata in a helper thread while the
 * scan follows: run that path on a small cache with 4 KiB chunks (512-byte
 * blocks: ~30 KiB of metadata), with data spread over every entry, and with a
 * read error, which must fail the open, not hang it.
 */
static void test_open_reads_metadata_in_chunks(void **state)
{
	struct rig r;
	struct wc_cfg cfg;
	struct wc_dev *o, *c;
	struct wcache *wc = (struct wcache *)1;
	uint64_t saved = wc_meta_chunk;
	(void)state;

	rig_init(&r);
	r.wc = open_rig(&r, 512, "high_watermark 100 low_watermark 100");
	for (uint64_t off = 0; off < CACHE_BYTES - 64 * 1024; off += 64 * 1024 + 512)
		do_write(&r, off, 1536, (unsigned)(off >> 9), 0);
	assert_int_equal(wcache_close(r.wc), 0);

	wc_meta_chunk = 4096;
	r.wc = open_rig(&r, 512, "high_watermark 100 low_watermark 100");
	check_all(&r);
	assert_int_equal(wcache_close(r.wc), 0);

	wcache_cfg_init(&cfg);
	assert_int_equal(dev_fault_share(r.origin, &o), 0);
	assert_int_equal(dev_fault_share(r.cache, &c), 0);
	cfg.block_size = 512;
	/* The superblock reads, the 3rd chunk fails. */
	assert_int_equal(wc_open_devs(&cfg, o, failing_dev(c, 3 * 4096), &wc), -EIO);
	assert_non_null(strstr(wcache_last_error(), "cannot read metadata"));
	wc_meta_chunk = saved;
	rig_fini(&r);
}

/* Leave a known message behind, then check that a failing call replaced it. */
static void stale_message(void)
{
	wc_err(0, "stale message");
}

static void assert_message(const char *part)
{
	const char *msg = wcache_last_error();

	if (!strstr(msg, part))
		fail_msg("last error is \"%s\", expected it to mention \"%s\"", msg, part);
}

/*
 * Every -errno of the API comes with its own wcache_last_error() text. These
 * calls used to fail silently, so the caller printed whatever an earlier call
 * had left: status into a short buffer, and flush and close once an earlier
 * failure (here a failed commit flush) had put the cache in error state.
 */
static void test_errors_have_messages(void **state)
{
	uint8_t buf[4096];
	char line[8];
	struct rig r;

	(void)state;
	rig_init(&r);
	/* No autocommit: the only commits are this thread's. */
	r.wc = open_rig(&r, 4096, "autocommit_time 3600000");
	stale_message();
	assert_int_equal(wcache_status(r.wc, line, sizeof(line)), -ERANGE);
	assert_message("status: line needs");

	memset(buf, 0xa5, sizeof(buf));
	assert_int_equal(wcache_write(r.wc, buf, sizeof(buf), 0, 0), 0);
	fault_set_error(r.cache, "flush", true);
	assert_int_equal(wcache_flush(r.wc), -EIO);
	assert_message("injected flush error");
	stale_message();
	assert_int_equal(wcache_flush(r.wc), -EIO);
	assert_message("cache is in error state");
	stale_message();
	assert_int_equal(wcache_close(r.wc), -EIO);
	assert_message("cache is in error state");
	rig_fini(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_rw_reopen),
		cmocka_unit_test(test_unflushed_lost_flushed_kept),
		cmocka_unit_test(test_full_cache_and_flush_message),
		cmocka_unit_test(test_overwrite_during_writeback_pressure),
		cmocka_unit_test(test_discard_zeroes),
		cmocka_unit_test(test_idle_does_not_spin),
		cmocka_unit_test(test_reads_do_not_wake_threads),
		cmocka_unit_test(test_max_age_writes_back_old_blocks),
		cmocka_unit_test(test_open_reads_metadata_in_chunks),
		cmocka_unit_test(test_errors_have_messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
