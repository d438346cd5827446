/* SPDX-License-Identifier: MIT */
/*
 * Fault device: what each crash mode guarantees (flushed data always
 * survives; DROP_ALL / KEEP_ALL / RANDOM_SUBSET / TEAR outcomes), armed power
 * cuts, injected write/op errors, determinism by seed, shared handles; in
 * asynchronous mode: out-of-order completion, per-request errors, power cuts
 * with requests in flight, what a submitted flush covers, in-flight counters,
 * callbacks that submit, close draining, exec hooks.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "dev.h"
#include "fault.h"
#include "wcache.h"

#define DEV_BYTES (64 * 1024)
#define NR_SEEDS 256

static struct wc_dev *open_fault(void)
{
	struct wc_dev *dev;

	assert_int_equal(dev_fault_open(DEV_BYTES, &dev), 0);
	assert_int_equal(dev->size, DEV_BYTES);
	return dev;
}

static void put(struct wc_dev *dev, uint8_t val, size_t len, uint64_t off)
{
	uint8_t *buf = malloc(len);

	memset(buf, val, len);
	assert_int_equal(dev_pwrite(dev, buf, len, off), 0);
	free(buf);
}

/* Every byte of durable[off, off + len) equals val. */
static bool all_eq(const uint8_t *img, uint8_t val, size_t len, uint64_t off)
{
	for (size_t i = 0; i < len; i++)
		if (img[off + i] != val)
			return false;
	return true;
}

/* After a crash, reads see exactly the durable image. */
static void check_reads_durable(struct wc_dev *dev)
{
	uint8_t *buf = malloc(DEV_BYTES);

	assert_int_equal(dev_pread(dev, buf, DEV_BYTES, 0), 0);
	assert_memory_equal(buf, fault_durable(dev), DEV_BYTES);
	free(buf);
}

/*
 * History used by several tests: [0, 16K) = 0x11 flushed; then unflushed
 * B = 0x22 over [8K, 24K) and C = 0x33 over [30K, 31K).
 */
static void history(struct wc_dev *dev)
{
	put(dev, 0x11, 16384, 0);
	assert_int_equal(dev_flush(dev), 0);
	put(dev, 0x22, 16384, 8192);
	put(dev, 0x33, 1024, 30720);
}

static void test_flushed_survives_every_mode(void **state)
{
	enum fault_crash_mode mode;
	uint64_t seed;

	(void)state;
	for (mode = FAULT_DROP_ALL; mode <= FAULT_PMEM; mode++) {
		for (seed = 0; seed < 32; seed++) {
			struct wc_dev *dev = open_fault();
			const uint8_t *d = fault_durable(dev);

			history(dev);
			fault_crash(dev, mode, seed);
			assert_true(all_eq(d, 0x11, 8192, 0));
			assert_true(all_eq(d, 0, 30720 - 24576, 24576));
			assert_true(all_eq(d, 0, DEV_BYTES - 31744, 31744));
			for (size_t i = 8192; i < 16384; i++)
				assert_true(d[i] == 0x11 || d[i] == 0x22);
			for (size_t i = 16384; i < 24576; i++)
				assert_true(d[i] == 0 || d[i] == 0x22);
			for (size_t i = 30720; i < 31744; i++)
				assert_true(d[i] == 0 || d[i] == 0x33);
			check_reads_durable(dev);
			dev_close(dev);
		}
	}
}

static void test_drop_all(void **state)
{
	struct wc_dev *dev = open_fault();
	const uint8_t *d = fault_durable(dev);
	uint8_t buf[1024];

	(void)state;
	history(dev);
	assert_int_equal(dev_discard(dev, 4096, 0), 0);
	/* Before the crash reads see the volatile view. */
	assert_int_equal(dev_pread(dev, buf, 1024, 30720), 0);
	assert_true(all_eq(buf, 0x33, 1024, 0));
	assert_int_equal(dev_pread(dev, buf, 1024, 0), 0);
	assert_true(all_eq(buf, 0, 1024, 0));	/* discard zeroes */
	assert_true(all_eq(d, 0x11, 16384, 0));	/* nothing durable yet */
	fault_crash(dev, FAULT_DROP_ALL, 0);
	assert_true(all_eq(d, 0x11, 16384, 0));
	assert_true(all_eq(d, 0, DEV_BYTES - 16384, 16384));
	check_reads_durable(dev);
	dev_close(dev);
}

static void test_keep_all(void **state)
{
	struct wc_dev *dev = open_fault();
	const uint8_t *d = fault_durable(dev);

	(void)state;
	history(dev);
	put(dev, 0x44, 100, 8000);		/* overlaps A and B, unaligned */
	assert_int_equal(dev_discard(dev, 512, 30720), 0);
	fault_crash(dev, FAULT_KEEP_ALL, 0);
	/* Applied in issue order: later writes win where they overlap. */
	assert_true(all_eq(d, 0x11, 8000, 0));
	assert_true(all_eq(d, 0x44, 100, 8000));
	assert_true(all_eq(d, 0x11, 92, 8100));
	assert_true(all_eq(d, 0x22, 16384, 8192));
	assert_true(all_eq(d, 0, 512, 30720));
	assert_true(all_eq(d, 0x33, 512, 31232));
	check_reads_durable(dev);
	dev_close(dev);
}

/*
 * W1 = 1 over sectors 0-1, W2 = 2 over sectors 1-2. Each write survives
 * whole or not at all, in either order, so sectors (0,1,2) end as one of
 * 000, 110, 022, 122 (in order) or 112 (reordered) -- and all five occur.
 */
static void test_random_subset(void **state)
{
	static const char *const outcomes[] = { "000", "110", "022", "122", "112" };
	bool seen[5] = { false };
	uint64_t seed;
	int i;

	(void)state;
	for (seed = 0; seed < NR_SEEDS; seed++) {
		struct wc_dev *dev = open_fault();
		const uint8_t *d = fault_durable(dev);
		char got[4];

		put(dev, 1, 1024, 0);
		put(dev, 2, 1024, 512);
		fault_crash(dev, FAULT_RANDOM_SUBSET, seed);
		for (i = 0; i < 3; i++) {
			assert_true(all_eq(d, d[i * 512], 512, i * 512));
			got[i] = '0' + d[i * 512];
		}
		got[3] = 0;
		i = 0;
		while (i < 5 && strcmp(got, outcomes[i]))
			i++;
		if (i == 5)
			fail_msg("seed %llu: impossible outcome %s", (unsigned long long)seed, got);
		seen[i] = true;
		dev_close(dev);
	}
	for (i = 0; i < 5; i++)
		if (!seen[i])
			fail_msg("outcome %s never seen in %d seeds", outcomes[i], NR_SEEDS);
}

/*
 * TEAR: every 512-byte piece of a write is old or new, never a mix; some runs
 * keep whole writes, some lose them, some keep only part of one.
 */
static void test_tear(void **state)
{
	bool whole = false, none = false, torn = false;
	uint64_t seed;

	(void)state;
	for (seed = 0; seed < NR_SEEDS; seed++) {
		struct wc_dev *dev = open_fault();
		const uint8_t *d = fault_durable(dev);
		int nr_new = 0, nr_sect = 0;
		uint64_t sec;

		put(dev, 0x11, 8192, 0);
		assert_int_equal(dev_flush(dev), 0);
		put(dev, 0xab, 2000, 700);	/* pieces: [700,1024) [1024,1536) ... [2560,2700) */
		fault_crash(dev, FAULT_TEAR, seed);
		for (sec = 512; sec < 2700; sec += 512) {
			uint64_t lo = sec < 700 ? 700 : sec;
			uint64_t hi = sec + 512 < 2700 ? sec + 512 : 2700;
			bool is_new = d[lo] == 0xab;

			assert_true(all_eq(d, is_new ? 0xab : 0x11, hi - lo, lo));
			nr_new += is_new;
			nr_sect++;
		}
		assert_true(all_eq(d, 0x11, 700, 0));
		assert_true(all_eq(d, 0x11, 8192 - 2700, 2700));
		whole |= nr_new == nr_sect;
		none |= nr_new == 0;
		torn |= nr_new > 0 && nr_new < nr_sect;
		check_reads_durable(dev);
		dev_close(dev);
	}
	assert_true(whole);
	assert_true(none);
	assert_true(torn);
}

/*
 * PMEM: every aligned 8-byte word of an unflushed write is old or new, never
 * a mix; a 64-byte line survives whole, not at all, or torn; some runs see
 * words of one line differ, which a 512-byte sector model never produces.
 */
static void test_pmem_tear(void **state)
{
	bool line_whole = false, line_none = false, line_torn = false;
	uint64_t seed;

	(void)state;
	for (seed = 0; seed < NR_SEEDS; seed++) {
		struct wc_dev *dev = open_fault();
		const uint8_t *d = fault_durable(dev);

		put(dev, 0x11, 8192, 0);
		assert_int_equal(dev_flush(dev), 0);
		put(dev, 0xab, 2000, 700);	/* words [700,704) [704,712) ... [2696,2700) */
		fault_crash(dev, FAULT_PMEM, seed);
		for (uint64_t w = 696; w < 2700; w += 8) {
			uint64_t lo = w < 700 ? 700 : w, hi = w + 8 < 2700 ? w + 8 : 2700;

			assert_true(all_eq(d, d[lo] == 0xab ? 0xab : 0x11, hi - lo, lo));
		}
		for (uint64_t line = 704; line + 64 <= 2700; line += 64) {
			unsigned n = 0;

			for (uint64_t w = line; w < line + 64; w += 8)
				n += d[w] == 0xab;
			line_whole |= n == 8;
			line_none |= n == 0;
			line_torn |= n > 0 && n < 8;
		}
		assert_true(all_eq(d, 0x11, 700, 0));
		assert_true(all_eq(d, 0x11, 8192 - 2700, 2700));
		check_reads_durable(dev);
		dev_close(dev);
	}
	assert_true(line_whole);
	assert_true(line_none);
	assert_true(line_torn);
}

static void test_armed_crash(void **state)
{
	struct wc_dev *dev = open_fault();
	uint8_t buf[512];
	uint64_t base = fault_ops(dev);

	(void)state;
	fault_arm_crash(dev, 4);
	put(dev, 0x11, 512, 0);				/* op 1 */
	assert_int_equal(dev_flush(dev), 0);		/* op 2 */
	put(dev, 0x22, 512, 512);			/* op 3: unflushed */
	memset(buf, 0x33, sizeof(buf));
	assert_int_equal(dev_pwrite(dev, buf, 512, 1024), -EIO);	/* op 4: power cut */
	assert_non_null(strstr(wcache_last_error(), "power cut"));
	assert_int_equal(dev_pread(dev, buf, 512, 0), -EIO);	/* reads fail too */
	assert_int_equal(dev_flush(dev), -EIO);
	assert_int_equal(dev_discard(dev, 512, 0), -EIO);
	assert_int_equal(dev_pwrite(dev, buf, 512, 0), -EIO);
	assert_int_equal(fault_ops(dev) - base, 8);
	/* Out-of-range I/O is rejected before it counts as an op. */
	assert_int_equal(dev_pread(dev, buf, 512, DEV_BYTES), -EINVAL);
	assert_int_equal(fault_ops(dev) - base, 8);

	/* KEEP_ALL keeps op 3 but nothing from after the cut. */
	fault_crash(dev, FAULT_KEEP_ALL, 0);
	assert_true(all_eq(fault_durable(dev), 0x11, 512, 0));
	assert_true(all_eq(fault_durable(dev), 0x22, 512, 512));
	assert_true(all_eq(fault_durable(dev), 0, 512, 1024));
	/* Healthy again, and the arm is gone. */
	put(dev, 0x44, 512, 2048);
	assert_int_equal(dev_flush(dev), 0);

	/* n = 0 disarms; heal brings the device back without changing contents. */
	fault_arm_crash(dev, 1);
	fault_arm_crash(dev, 0);
	assert_int_equal(dev_flush(dev), 0);
	fault_arm_crash(dev, 2);
	put(dev, 0x55, 512, 4096);
	assert_int_equal(dev_pwrite(dev, buf, 512, 4608), -EIO);
	fault_heal(dev);
	assert_int_equal(dev_pread(dev, buf, 512, 4096), 0);
	assert_true(all_eq(buf, 0x55, 512, 0));		/* unflushed, still in the volatile view */
	assert_int_equal(dev_pread(dev, buf, 512, 4608), 0);
	assert_true(all_eq(buf, 0, 512, 0));		/* the failed write changed nothing */
	fault_crash(dev, FAULT_DROP_ALL, 0);
	assert_true(all_eq(fault_durable(dev), 0, 1024, 4096));
	dev_close(dev);
}

static void test_fail_writes_from(void **state)
{
	struct wc_dev *dev = open_fault();
	uint8_t buf[512] = { 0 };

	(void)state;
	put(dev, 0x01, 512, 0);		/* writes before the call do not count */
	fault_fail_writes_from(dev, 2);
	put(dev, 0x11, 512, 512);
	assert_int_equal(dev_pwrite(dev, buf, 512, 1024), -EIO);
	assert_int_equal(dev_pread(dev, buf, 512, 512), 0);
	assert_true(all_eq(buf, 0x11, 512, 0));
	assert_int_equal(dev_flush(dev), 0);
	assert_int_equal(dev_discard(dev, 512, 0), 0);
	assert_int_equal(dev_pwrite(dev, buf, 512, 1024), -EIO);
	fault_fail_writes_from(dev, 0);
	put(dev, 0x22, 512, 1536);
	fault_crash(dev, FAULT_KEEP_ALL, 0);
	assert_true(all_eq(fault_durable(dev), 0, 512, 0));
	assert_true(all_eq(fault_durable(dev), 0x11, 512, 512));
	assert_true(all_eq(fault_durable(dev), 0, 512, 1024));
	assert_true(all_eq(fault_durable(dev), 0x22, 512, 1536));
	dev_close(dev);
}

static void test_set_error(void **state)
{
	struct wc_dev *dev = open_fault();
	uint8_t buf[512];

	(void)state;
	fault_set_error(dev, "flush", true);
	put(dev, 0x11, 512, 0);
	assert_int_equal(dev_flush(dev), -EIO);
	assert_int_equal(dev_flush(dev), -EIO);
	assert_int_equal(dev_pread(dev, buf, 512, 0), 0);
	fault_set_error(dev, "pread", true);
	assert_int_equal(dev_pread(dev, buf, 512, 0), -EIO);
	fault_set_error(dev, "pread", false);
	fault_set_error(dev, "discard", true);
	assert_int_equal(dev_discard(dev, 512, 0), -EIO);
	fault_set_error(dev, "pwrite", true);
	assert_int_equal(dev_pwrite(dev, buf, 512, 0), -EIO);
	/* A failed flush made nothing durable. */
	fault_crash(dev, FAULT_DROP_ALL, 0);
	assert_true(all_eq(fault_durable(dev), 0, 512, 0));
	/* The crash reset every injected error. */
	put(dev, 0x22, 512, 0);
	assert_int_equal(dev_flush(dev), 0);
	assert_true(all_eq(fault_durable(dev), 0x22, 512, 0));
	dev_close(dev);
}

/* Same history and seed -> same image; different seeds -> different images. */
static void run_random_history(struct wc_dev *dev, enum fault_crash_mode mode, uint64_t seed)
{
	int i;

	for (i = 0; i < 40; i++)
		put(dev, i + 1, 300 + 97 * i, (uint64_t)i * 1531 % (DEV_BYTES - 4200));
	fault_crash(dev, mode, seed);
}

static void test_determinism(void **state)
{
	enum fault_crash_mode mode;
	uint8_t *first = malloc(DEV_BYTES);

	(void)state;
	for (mode = FAULT_RANDOM_SUBSET; mode <= FAULT_PMEM; mode++) {
		int nr_distinct = 0;
		uint64_t seed;

		for (seed = 100; seed < 108; seed++) {
			struct wc_dev *a = open_fault(), *b = open_fault();

			run_random_history(a, mode, seed);
			run_random_history(b, mode, seed);
			assert_memory_equal(fault_durable(a), fault_durable(b), DEV_BYTES);
			if (seed == 100)
				memcpy(first, fault_durable(a), DEV_BYTES);
			else
				nr_distinct += memcmp(first, fault_durable(a), DEV_BYTES) != 0;
			dev_close(a);
			dev_close(b);
		}
		assert_true(nr_distinct > 0);
	}
	free(first);
}

static void test_share(void **state)
{
	struct wc_dev *a = open_fault(), *b;
	uint8_t buf[512];

	(void)state;
	assert_int_equal(dev_fault_share(a, &b), 0);
	assert_int_equal(b->size, DEV_BYTES);
	put(a, 0x11, 512, 0);
	assert_int_equal(dev_pread(b, buf, 512, 0), 0);
	assert_true(all_eq(buf, 0x11, 512, 0));
	assert_int_equal(fault_ops(a), fault_ops(b));
	assert_int_equal(dev_flush(b), 0);
	assert_true(fault_durable(a) == fault_durable(b));
	assert_true(all_eq(fault_durable(a), 0x11, 512, 0));
	/* Fault settings belong to the storage, not the handle. */
	fault_arm_crash(b, 1);
	assert_int_equal(dev_pread(a, buf, 512, 0), -EIO);
	fault_crash(a, FAULT_DROP_ALL, 0);
	/* The storage outlives the first handle. */
	dev_close(a);
	put(b, 0x22, 512, 512);
	assert_int_equal(dev_pread(b, buf, 512, 0), 0);
	assert_true(all_eq(buf, 0x11, 512, 0));
	dev_close(b);
}

struct writer_arg {
	struct wc_dev *dev;
	int id;
};

static void *writer(void *p)
{
	struct writer_arg *a = p;
	uint8_t buf[1024];
	int i;

	for (i = 1; i <= 200; i++) {
		memset(buf, a->id * 50 + i % 50, sizeof(buf));
		if (dev_pwrite(a->dev, buf, sizeof(buf), (uint64_t)a->id * 4096 + (i % 3) * 1024))
			return p;
		if (i % 10 == 0 && dev_flush(a->dev))
			return p;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct wc_dev *dev = open_fault();
	struct writer_arg args[4];
	pthread_t th[4];
	void *ret;
	int i, j;

	(void)state;
	for (i = 0; i < 4; i++) {
		args[i] = (struct writer_arg){ dev, i };
		assert_int_equal(pthread_create(&th[i], NULL, writer, &args[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_null(ret);
	}
	assert_int_equal(fault_ops(dev), 4 * 220);
	fault_crash(dev, FAULT_KEEP_ALL, 0);
	for (i = 0; i < 4; i++)
		for (j = 0; j < 3; j++) {
			int last = 200 - (200 - j) % 3;	/* last i with i % 3 == j */

			assert_true(all_eq(fault_durable(dev), i * 50 + last % 50, 1024,
					   i * 4096 + j * 1024));
		}
	dev_close(dev);
}

/* ---- asynchronous mode ---- */

/* A submitted request that records its result and its place in the completion order. */
struct areq {
	struct wc_io io;
	int idx;
	int result;
};

static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;
static int order[256], nr_order;

static void areq_done(struct wc_io *io, int result)
{
	struct areq *r = (struct areq *)io;

	pthread_mutex_lock(&order_lock);
	r->result = result;
	if (nr_order < (int)(sizeof(order) / sizeof(order[0])))
		order[nr_order++] = r->idx;
	pthread_mutex_unlock(&order_lock);
	wc_io_wait_done(io, result);
}

static void areq_init(struct areq *r, int idx, enum wc_io_op op, void *buf, uint64_t len,
		      uint64_t off, struct wc_io_wait *w)
{
	*r = (struct areq){ .io = { .op = op, .buf = buf, .len = len, .off = off,
				    .done = areq_done, .opaque = w },
			    .idx = idx, .result = 1 };
}

/* Submit r[0..n) one dev_submit call each (batch = false) or all in one. */
static void asubmit(struct wc_dev *dev, struct areq *r, int n, bool batch)
{
	struct wc_io *p[256];

	wc_io_wait_add(r[0].io.opaque, n);
	for (int i = 0; i < n; i++)
		p[i] = &r[i].io;
	if (batch) {
		dev_submit(dev, p, n);
		return;
	}
	for (int i = 0; i < n; i++)
		dev_submit(dev, &p[i], 1);
}

static void order_reset(void)
{
	pthread_mutex_lock(&order_lock);
	nr_order = 0;
	pthread_mutex_unlock(&order_lock);
}

static void test_async_mode(void **state)
{
	struct wc_dev *a = open_fault(), *b, *c;

	(void)state;
	assert_int_equal(dev_fault_share(a, &b), 0);
	assert_false(dev_is_async(a));
	fault_set_async(a, true, 1);
	assert_true(dev_is_async(a));
	assert_true(dev_is_async(b));
	assert_int_equal(dev_fault_share(b, &c), 0);
	assert_true(dev_is_async(c));
	fault_set_async(c, false, 0);
	assert_false(dev_is_async(a) || dev_is_async(b) || dev_is_async(c));
	fault_set_async(c, true, 2);
	dev_close(a);
	dev_close(b);
	dev_close(c);	/* the last handle stops the completion thread */
}

/*
 * Held requests execute only when released, one by one in an order drawn
 * from the seed: the same seed gives the same order, and most seeds give an
 * order other than the submission order.
 */
static void run_held_writes(uint64_t seed, int *out_order)
{
	struct wc_dev *dev = open_fault();
	struct areq r[16];
	uint8_t data[16][512], buf[512];
	struct wc_io_wait w;
	uint64_t base = fault_ops(dev);

	fault_set_async(dev, true, seed);
	fault_async_hold(dev, true);
	wc_io_wait_init(&w);
	order_reset();
	for (int i = 0; i < 16; i++) {
		memset(data[i], i + 1, 512);
		areq_init(&r[i], i, WC_IO_WRITE, data[i], 512, i * 1024, &w);
	}
	asubmit(dev, r, 16, false);
	/* Nothing has happened yet: not counted, not in the volatile image. */
	assert_int_equal(fault_ops(dev), base);
	assert_int_equal(fault_inflight(dev), 16);
	assert_int_equal(dev_pread(dev, buf, 512, 0), 0);
	assert_true(all_eq(buf, 0, 512, 0));
	fault_async_hold(dev, false);
	assert_int_equal(wc_io_wait_end(&w), 0);
	assert_int_equal(fault_ops(dev), base + 1 + 16);
	assert_int_equal(fault_inflight(dev), 0);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(r[i].result, 0);
		assert_int_equal(dev_pread(dev, buf, 512, i * 1024), 0);
		assert_true(all_eq(buf, i + 1, 512, 0));
	}
	assert_int_equal(nr_order, 16);
	memcpy(out_order, order, sizeof(int) * 16);
	dev_close(dev);
}

static void test_async_out_of_order(void **state)
{
	int first[16], again[16], nr_shuffled = 0;

	(void)state;
	for (uint64_t seed = 0; seed < 16; seed++) {
		bool in_order = true;

		run_held_writes(seed, first);
		run_held_writes(seed, again);
		assert_memory_equal(first, again, sizeof(first));
		for (int i = 0; i < 16; i++)
			in_order &= first[i] == i;
		nr_shuffled += !in_order;
	}
	assert_true(nr_shuffled >= 15);
}

/* Injected errors hit each request on its own: with pwrite failing, only the writes fail. */
static void test_async_individual_errors(void **state)
{
	struct wc_dev *dev = open_fault();
	struct areq r[16];
	uint8_t bufs[16][512];
	struct wc_io_wait w;

	(void)state;
	put(dev, 0x5a, 8192, 0);
	fault_set_async(dev, true, 7);
	fault_set_error(dev, "pwrite", true);
	fault_async_hold(dev, true);
	wc_io_wait_init(&w);
	for (int i = 0; i < 16; i++) {
		memset(bufs[i], 0x77, 512);
		areq_init(&r[i], i, i & 1 ? WC_IO_WRITE : WC_IO_READ, bufs[i], 512, i * 512, &w);
	}
	asubmit(dev, r, 16, true);
	fault_async_hold(dev, false);
	assert_int_equal(wc_io_wait_end(&w), -EIO);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(r[i].result, i & 1 ? -EIO : 0);
		if (!(i & 1))
			assert_true(all_eq(bufs[i], 0x5a, 512, 0));
	}
	fault_set_error(dev, "pwrite", false);
	{
		uint8_t buf[8192];

		assert_int_equal(dev_pread(dev, buf, 8192, 0), 0);
		assert_true(all_eq(buf, 0x5a, 8192, 0));	/* the failed writes changed nothing */
	}
	dev_close(dev);
}

/*
 * A power cut with n writes in flight. The first k to complete (in random
 * order) succeed; the cut fails the next one, and every write still queued
 * fails with -EIO, changes nothing and is not counted. After heal, the
 * completed writes are in the volatile image and a flush makes them durable;
 * the others are nowhere.
 */
static void crash_inflight(int n, int k, uint64_t seed)
{
	struct wc_dev *dev = open_fault();
	struct areq *r = calloc(n, sizeof(*r));
	uint8_t *data = malloc((size_t)n * 512), buf[512];
	char *msgs = calloc(n, 128);
	struct wc_io_wait w;
	uint64_t base = fault_ops(dev);
	int nr_ok = 0;

	order_reset();
	fault_set_async(dev, true, seed);
	fault_async_hold(dev, true);
	wc_io_wait_init(&w);
	for (int i = 0; i < n; i++) {
		memset(data + i * 512, i + 1, 512);
		areq_init(&r[i], i, WC_IO_WRITE, data + i * 512, 512, (uint64_t)i * 512, &w);
	}
	if (k < n) {	/* the failure text of the request the cut hits comes back with it */
		for (int i = 0; i < n; i++) {
			r[i].io.msg = msgs + i * 128;
			r[i].io.msg_len = 128;
		}
	}
	asubmit(dev, r, n, seed & 1);
	fault_arm_crash(dev, k + 1);
	fault_async_hold(dev, false);
	assert_int_equal(wc_io_wait_end(&w), k < n ? -EIO : 0);
	for (int i = 0; i < n; i++) {
		assert_true(r[i].result == 0 || r[i].result == -EIO);
		nr_ok += r[i].result == 0;
	}
	assert_int_equal(nr_ok, k < n ? k : n);
	if (k < n)
		assert_non_null(strstr(msgs + order[k] * 128, "power cut at op"));
	assert_int_equal(fault_ops(dev) - base, k < n ? k + 1 : n);
	fault_heal(dev);
	for (int i = 0; i < n; i++) {
		assert_int_equal(dev_pread(dev, buf, 512, (uint64_t)i * 512), 0);
		assert_true(all_eq(buf, r[i].result ? 0 : i + 1, 512, 0));
	}
	assert_int_equal(dev_flush(dev), 0);
	fault_crash(dev, FAULT_DROP_ALL, 0);
	for (int i = 0; i < n; i++)
		assert_true(all_eq(fault_durable(dev), r[i].result ? 0 : i + 1, 512, i * 512));
	dev_close(dev);
	free(msgs);
	free(data);
	free(r);
}

static void test_async_crash_inflight(void **state)
{
	static const int ns[] = { 1, 8, 64 };

	(void)state;
	for (int j = 0; j < 3; j++) {
		int n = ns[j];

		crash_inflight(n, 0, n);
		crash_inflight(n, n / 2, n + 1);
		crash_inflight(n, n - 1, n + 2);
		crash_inflight(n, n, n + 3);	/* the cut comes after all of them */
	}
}

/* fault_crash() while requests are queued: they all fail when they complete, and change nothing. */
static void test_async_crash_held(void **state)
{
	struct wc_dev *dev = open_fault();
	struct areq r[8];
	uint8_t data[512];
	struct wc_io_wait w;
	uint64_t base;

	(void)state;
	put(dev, 0x11, 4096, 0);
	assert_int_equal(dev_flush(dev), 0);
	base = fault_ops(dev);
	fault_set_async(dev, true, 3);
	fault_async_hold(dev, true);
	memset(data, 0x22, sizeof(data));
	wc_io_wait_init(&w);
	for (int i = 0; i < 8; i++)
		areq_init(&r[i], i, i == 7 ? WC_IO_FLUSH : WC_IO_WRITE, data, 512, i * 512, &w);
	asubmit(dev, r, 8, true);
	fault_crash(dev, FAULT_KEEP_ALL, 0);
	fault_async_hold(dev, false);
	assert_int_equal(wc_io_wait_end(&w), -EIO);
	for (int i = 0; i < 8; i++)
		assert_int_equal(r[i].result, -EIO);
	assert_int_equal(fault_ops(dev), base);
	assert_true(all_eq(fault_durable(dev), 0x11, 4096, 0));
	check_reads_durable(dev);
	/* The device works again, asynchronously. */
	wc_io_wait_init(&w);
	areq_init(&r[0], 0, WC_IO_WRITE, data, 512, 0, &w);
	areq_init(&r[1], 1, WC_IO_READ, data, 512, 512, &w);
	asubmit(dev, r, 2, false);
	assert_int_equal(wc_io_wait_end(&w), 0);
	dev_close(dev);
}

/*
 * A submitted flush covers the writes completed before it was submitted and
 * no others, even when it runs after a write submitted with it completes.
 */
static void test_async_flush_covers_completed(void **state)
{
	bool later_first = false, flush_first = false;

	(void)state;
	for (uint64_t seed = 0; seed < 32; seed++) {
		struct wc_dev *dev = open_fault();
		uint8_t one[512], two[512];
		struct areq r[2];
		struct wc_io_wait w;

		memset(one, 1, sizeof(one));
		memset(two, 2, sizeof(two));
		fault_set_async(dev, true, seed);
		wc_io_wait_init(&w);
		areq_init(&r[0], 0, WC_IO_WRITE, one, 512, 0, &w);
		asubmit(dev, r, 1, true);
		assert_int_equal(wc_io_wait_end(&w), 0);

		fault_async_hold(dev, true);
		order_reset();
		wc_io_wait_init(&w);
		areq_init(&r[0], 0, WC_IO_FLUSH, NULL, 0, 0, &w);
		areq_init(&r[1], 1, WC_IO_WRITE, two, 512, 512, &w);
		asubmit(dev, r, 2, seed & 1);
		fault_async_hold(dev, false);
		assert_int_equal(wc_io_wait_end(&w), 0);
		later_first |= order[0] == 1;
		flush_first |= order[0] == 0;
		fault_crash(dev, FAULT_DROP_ALL, 0);
		assert_true(all_eq(fault_durable(dev), 1, 512, 0));
		assert_true(all_eq(fault_durable(dev), 0, 512, 512));
		dev_close(dev);
	}
	assert_true(later_first && flush_first);
}

/* The in-flight counters: what is queued now, and the most ever since async was turned on. */
static void test_async_max_inflight(void **state)
{
	struct wc_dev *dev = open_fault();
	uint8_t buf[512] = { 0 };
	struct areq r[10];
	struct wc_io_wait w;

	(void)state;
	fault_set_async(dev, true, 5);
	assert_int_equal(fault_max_inflight(dev), 0);
	fault_async_hold(dev, true);
	wc_io_wait_init(&w);
	for (int i = 0; i < 10; i++)
		areq_init(&r[i], i, WC_IO_WRITE, buf, 512, i * 512, &w);
	asubmit(dev, r, 4, true);
	assert_int_equal(fault_inflight(dev), 4);
	asubmit(dev, r + 4, 6, true);
	assert_int_equal(fault_inflight(dev), 10);
	assert_int_equal(fault_max_inflight(dev), 10);
	fault_async_hold(dev, false);
	assert_int_equal(wc_io_wait_end(&w), 0);
	assert_int_equal(fault_inflight(dev), 0);
	assert_int_equal(fault_max_inflight(dev), 10);
	/* Synchronous calls are not "in flight". */
	assert_int_equal(dev_pwrite(dev, buf, 512, 0), 0);
	fault_set_async(dev, true, 6);		/* restarts the count */
	assert_int_equal(fault_max_inflight(dev), 0);
	wc_io_wait_init(&w);
	asubmit(dev, r, 3, false);
	assert_int_equal(wc_io_wait_end(&w), 0);
	assert_true(fault_max_inflight(dev) >= 1 && fault_max_inflight(dev) <= 3);
	dev_close(dev);
}

/* Completion callbacks may submit more: a chain of 50 writes, one in flight at a time. */
struct chain {
	struct wc_io io;
	struct wc_dev *dev;
	struct wc_io_wait *w;
	int left;
	uint8_t buf[512];
};

static void chain_done(struct wc_io *io, int result)
{
	struct chain *c = (struct chain *)io;
	struct wc_io *p = io;

	if (result || --c->left == 0) {
		wc_io_wait_done(io, result);
		return;
	}
	c->buf[0] = c->left;
	io->off = (uint64_t)c->left * 512;
	dev_submit(c->dev, &p, 1);
}

static void test_async_chain(void **state)
{
	struct wc_dev *dev = open_fault();
	struct wc_io_wait w;
	struct chain c = { .io = { .op = WC_IO_WRITE, .len = 512, .off = 50 * 512,
				   .done = chain_done },
			   .left = 50 };
	struct wc_io *p = &c.io;
	uint64_t base = fault_ops(dev);

	(void)state;
	fault_set_async(dev, true, 9);
	c.dev = dev;
	c.io.buf = c.buf;
	c.io.opaque = &w;
	c.buf[0] = 50;
	wc_io_wait_init(&w);
	wc_io_wait_add(&w, 1);
	dev_submit(dev, &p, 1);
	assert_int_equal(wc_io_wait_end(&w), 0);
	assert_int_equal(fault_ops(dev) - base, 50);
	assert_int_equal(fault_max_inflight(dev), 1);
	for (int i = 1; i <= 50; i++) {
		uint8_t b;

		assert_int_equal(dev_pread(dev, &b, 1, (uint64_t)i * 512), 0);
		assert_int_equal(b, i);
	}
	dev_close(dev);
}

/* Closing a handle waits for the requests submitted through it, releasing a hold. */
static void test_async_close_drains(void **state)
{
	struct wc_dev *a = open_fault(), *b;
	uint8_t data[8][512], buf[512];
	struct areq r[8];
	struct wc_io_wait w;

	(void)state;
	fault_set_async(a, true, 11);
	assert_int_equal(dev_fault_share(a, &b), 0);
	fault_async_hold(a, true);
	wc_io_wait_init(&w);
	order_reset();
	for (int i = 0; i < 8; i++) {
		memset(data[i], 0x30 + i, 512);
		areq_init(&r[i], i, WC_IO_WRITE, data[i], 512, i * 512, &w);
	}
	asubmit(b, r, 8, true);
	dev_close(b);
	pthread_mutex_lock(&order_lock);
	assert_int_equal(nr_order, 8);
	pthread_mutex_unlock(&order_lock);
	assert_int_equal(wc_io_wait_end(&w), 0);
	assert_int_equal(fault_inflight(a), 0);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(dev_pread(a, buf, 512, i * 512), 0);
		assert_true(all_eq(buf, 0x30 + i, 512, 0));
	}
	dev_close(a);
}

/*
 * An exec hook brackets each request submitted through its handle: before()
 * runs without the store's lock (a synchronous read of the same device does
 * not deadlock) and may refuse the request, which then changes nothing and
 * is not counted; after() sees every result. Other handles are not hooked.
 */
struct hook_rec {
	struct wc_dev *dev;
	int before, after, refused_seen, bad;	/* no cmocka asserts off the main thread */
	uint8_t peek;
};

static int hook_before(void *opaque, struct wc_io *io)
{
	struct hook_rec *h = opaque;

	h->before++;
	h->bad += dev_pread(h->dev, &h->peek, 1, 7 * 512) != 0;
	return (io->off / 512) % 2 ? -EIO : 0;	/* odd sectors: refused */
}

static void hook_after(void *opaque, struct wc_io *io, int result)
{
	struct hook_rec *h = opaque;

	h->after++;
	h->bad += result != ((io->off / 512) % 2 ? -EIO : 0);
	h->refused_seen += result != 0;
}

static void test_async_exec_hook(void **state)
{
	struct wc_dev *dev = open_fault(), *other;
	struct hook_rec h = { 0 };
	struct fault_exec_hook hook = { hook_before, hook_after, &h };
	uint8_t data[8][512], buf[512];
	struct areq r[8];
	struct wc_io_wait w;
	uint64_t ops0;

	(void)state;
	assert_int_equal(dev_fault_share(dev, &other), 0);
	h.dev = other;
	fault_set_async(dev, true, 13);
	fault_set_exec_hook(dev, &hook);
	fault_async_hold(dev, true);
	wc_io_wait_init(&w);
	for (int i = 0; i < 8; i++) {
		memset(data[i], 0x40 + i, 512);
		areq_init(&r[i], i, WC_IO_WRITE, data[i], 512, i * 512, &w);
	}
	asubmit(dev, r, 8, true);
	ops0 = fault_ops(dev);
	fault_async_hold(dev, false);
	assert_int_equal(wc_io_wait_end(&w), -EIO);
	/* 8 synchronous reads in before(), 4 writes executed, 4 refused uncounted. */
	assert_int_equal(fault_ops(dev) - ops0, 8 + 4);
	assert_int_equal(h.before, 8);
	assert_int_equal(h.after, 8);
	assert_int_equal(h.refused_seen, 4);
	assert_int_equal(h.bad, 0);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(r[i].result, i % 2 ? -EIO : 0);
		assert_int_equal(dev_pread(dev, buf, 512, i * 512), 0);
		assert_true(all_eq(buf, i % 2 ? 0 : 0x40 + i, 512, 0));
	}
	/* Requests through another handle are not hooked. */
	wc_io_wait_init(&w);
	areq_init(&r[0], 0, WC_IO_WRITE, data[1], 512, 512, &w);
	asubmit(other, r, 1, true);
	assert_int_equal(wc_io_wait_end(&w), 0);
	assert_int_equal(h.before, 8);
	/* Unhooked again. */
	fault_set_exec_hook(dev, NULL);
	wc_io_wait_init(&w);
	areq_init(&r[0], 0, WC_IO_WRITE, data[3], 512, 3 * 512, &w);
	asubmit(dev, r, 1, true);
	assert_int_equal(wc_io_wait_end(&w), 0);
	assert_int_equal(h.before, 8);
	dev_close(other);
	dev_close(dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flushed_survives_every_mode),
		cmocka_unit_test(test_drop_all),
		cmocka_unit_test(test_keep_all),
		cmocka_unit_test(test_random_subset),
		cmocka_unit_test(test_tear),
		cmocka_unit_test(test_pmem_tear),
		cmocka_unit_test(test_armed_crash),
		cmocka_unit_test(test_fail_writes_from),
		cmocka_unit_test(test_set_error),
		cmocka_unit_test(test_determinism),
		cmocka_unit_test(test_share),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_async_mode),
		cmocka_unit_test(test_async_out_of_order),
		cmocka_unit_test(test_async_individual_errors),
		cmocka_unit_test(test_async_crash_inflight),
		cmocka_unit_test(test_async_crash_held),
		cmocka_unit_test(test_async_flush_covers_completed),
		cmocka_unit_test(test_async_max_inflight),
		cmocka_unit_test(test_async_chain),
		cmocka_unit_test(test_async_close_drains),
		cmocka_unit_test(test_async_exec_hook),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
