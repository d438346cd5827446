/* SPDX-License-Identifier: MIT */
/*
 * wcache_get_metrics on RAM devices: the write and commit latency
 * histograms count every call, writeback run sizes add up to the blocks
 * written back, origin I/O failures are counted, and the snapshot's
 * histogram total always equals the sum of its buckets.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "wcache.h"
#include "dev.h"
#include "fault.h"
#include "testing.h"

#define ORIGIN_BYTES (4u << 20)
#define CACHE_BYTES (1u << 20)

static struct wcache *open_ram(struct wc_dev **origin)
{
	struct wc_dev *o, *c, *share;
	struct wc_cfg cfg;
	struct wcache *wc = NULL;

	wcache_cfg_init(&cfg);
	cfg.block_size = 4096;
	assert_int_equal(dev_fault_open(ORIGIN_BYTES, &o), 0);
	assert_int_equal(dev_fault_open(CACHE_BYTES, &c), 0);
	assert_int_equal(dev_fault_share(o, &share), 0);
	*origin = o;	/* the test keeps a handle to inject errors */
	assert_int_equal(wc_open_devs(&cfg, share, c, &wc), 0);
	return wc;
}

static uint64_t bucket_sum(const struct wc_hist *h)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < h->nr; i++)
		n += h->count[i];
	return n;
}

static void test_histograms_count_events(void **state)
{
	struct wc_dev *origin;
	struct wcache *wc = open_ram(&origin);
	struct wc_metrics m;
	uint8_t buf[4096];
	uint64_t commits0;
	(void)state;

	wcache_get_metrics(wc, &m);
	assert_int_equal(m.write_latency_ns.total, 0);
	assert_int_equal(m.block_size, 4096);
	assert_int_equal(m.size_bytes, ORIGIN_BYTES);
	assert_true(m.write_latency_ns.nr > 10);
	commits0 = m.commit_latency_ns.total;

	memset(buf, 0xab, sizeof(buf));
	/* 8 adjacent blocks, then 1 far away: writeback makes runs of 8 and 1. */
	for (int i = 0; i < 8; i++)
		assert_int_equal(wcache_write(wc, buf, sizeof(buf), (uint64_t)i * 4096, 0), 0);
	assert_int_equal(wcache_write(wc, buf, sizeof(buf), 100 * 4096, WC_FUA), 0);
	assert_int_equal(wcache_flush(wc), 0);

	wcache_get_metrics(wc, &m);
	assert_int_equal(m.write_latency_ns.total, 9);
	/* Nothing here takes 10 s: every write is inside a bucket. */
	assert_int_equal(bucket_sum(&m.write_latency_ns), 9);
	assert_true(m.write_latency_ns.sum > 0);
	assert_true(m.commit_latency_ns.total >= commits0 + 1);
	assert_int_equal(m.commit_latency_ns.total, m.st.commits);
	assert_true(m.last_commit_age_ns < 60ull * 1000000000);
	assert_int_equal(m.st.dirty_blocks, 9);

	assert_int_equal(wcache_message(wc, "flush"), 0);
	wcache_get_metrics(wc, &m);
	assert_int_equal(m.st.dirty_blocks, 0);
	assert_int_equal(m.writeback_run_blocks.sum, 9);
	assert_int_equal(m.writeback_run_blocks.total, m.st.writeback_runs);
	assert_int_equal(m.writeback_run_blocks.total, 2);
	assert_int_equal(m.writeback_runs_in_flight, 0);
	/* Runs of 1 and 8 blocks land in the buckets bounded by 1 and 8. */
	assert_int_equal(m.writeback_run_blocks.bound[0], 1);
	assert_int_equal(m.writeback_run_blocks.count[0], 1);
	assert_int_equal(m.writeback_run_blocks.bound[3], 8);
	assert_int_equal(m.writeback_run_blocks.count[3], 1);
	assert_int_equal(m.origin_errors, 0);
	assert_int_equal(wcache_close(wc), 0);
	dev_close(origin);
}

static void test_origin_errors_counted(void **state)
{
	struct wc_dev *origin;
	struct wcache *wc = open_ram(&origin);
	struct wc_metrics m;
	uint8_t buf[4096];
	(void)state;

	/* A read miss goes to the origin; make it fail. */
	fault_set_error(origin, "pread", true);
	assert_int_equal(wcache_read(wc, buf, sizeof(buf), 0), -EIO);
	assert_int_equal(wcache_read(wc, buf, sizeof(buf), 8192), -EIO);
	fault_set_error(origin, "pread", false);
	assert_int_equal(wcache_read(wc, buf, sizeof(buf), 0), 0);
	wcache_get_metrics(wc, &m);
	assert_int_equal(m.origin_errors, 2);
	assert_int_equal(wcache_close(wc), 0);
	dev_close(origin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_histograms_count_events),
		cmocka_unit_test(test_origin_errors_counted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
