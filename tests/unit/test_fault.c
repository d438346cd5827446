/* SPDX-License-Identifier: MIT */
/*
 * Fault device: what each crash mode guarantees (flushed data always
 * survives; DROP_ALL / KEEP_ALL / RANDOM_SUBSET / TEAR outcomes), armed power
 * cuts, injected write/op errors, determinism by seed, shared handles.
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
	for (mode = FAULT_DROP_ALL; mode <= FAULT_TEAR; mode++) {
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
	for (mode = FAULT_RANDOM_SUBSET; mode <= FAULT_TEAR; mode++) {
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flushed_survives_every_mode),
		cmocka_unit_test(test_drop_all),
		cmocka_unit_test(test_keep_all),
		cmocka_unit_test(test_random_subset),
		cmocka_unit_test(test_tear),
		cmocka_unit_test(test_armed_crash),
		cmocka_unit_test(test_fail_writes_from),
		cmocka_unit_test(test_set_error),
		cmocka_unit_test(test_determinism),
		cmocka_unit_test(test_share),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
