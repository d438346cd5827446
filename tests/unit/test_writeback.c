/* SPDX-License-Identifier: MIT */
/*
 * Writeback and full-cache waiting against a gated asynchronous origin: a
 * RAM device whose requests complete on its own thread, only while its gate
 * is open, and which counts the blocks in flight.
 *  - writeback_jobs bounds the origin writes in flight, and writeback does
 *    keep several in flight (the pipeline is really asynchronous);
 *  - writes waiting for a free block are served in arrival order, each
 *    with the block it was woken for;
 *  - after a failed batch, a flush message retries at once (fault origin).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <unistd.h>

#include "wcache.h"
#include "dev.h"
#include "engine.h"
#include "fault.h"
#include "testing.h"

#define BS 4096u

/* ---------------- the gated origin ---------------- */

struct gate_dev {
	struct wc_dev dev;
	struct wc_dev *mem;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct wc_io *head, *tail;	/* queued, not yet completed */
	bool open, stop;
	unsigned delay_us;		/* per completion round, to let requests pile up */
	/*
	 * Reorder mode (once): hold writes until reorder_hold are queued, end
	 * the reorder_first with the highest offsets, then hold the rest until
	 * a flush arrives and end them just before it.
	 */
	unsigned reorder_hold, reorder_first;
	uint64_t cur_blocks, max_blocks;	/* origin write blocks in flight */
	pthread_t thread;
};

static struct gate_dev *to_gate(struct wc_dev *dev)
{
	return dev->priv;
}

static void gate_submit(struct wc_dev *dev, struct wc_io **ios, unsigned n)
{
	struct gate_dev *g = to_gate(dev);

	pthread_mutex_lock(&g->lock);
	for (unsigned i = 0; i < n; i++) {
		struct wc_io *io = ios[i];

		io->next = NULL;
		if (g->tail)
			g->tail->next = io;
		else
			g->head = io;
		g->tail = io;
		if (io->op == WC_IO_WRITE) {
			g->cur_blocks += (io->len + BS - 1) / BS;
			if (g->cur_blocks > g->max_blocks)
				g->max_blocks = g->cur_blocks;
		}
	}
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static int gate_run(struct gate_dev *g, struct wc_io *io)
{
	int ret = 0;

	if (io->op == WC_IO_WRITE)
		ret = dev_pwrite(g->mem, io->buf, io->len, io->off);
	else if (io->op == WC_IO_READ)
		ret = dev_pread(g->mem, io->buf, io->len, io->off);
	if (io->op == WC_IO_WRITE) {
		pthread_mutex_lock(&g->lock);
		g->cur_blocks -= (io->len + BS - 1) / BS;
		pthread_mutex_unlock(&g->lock);
	}
	return ret;
}

static unsigned queued(struct gate_dev *g, enum wc_io_op op)
{
	unsigned n = 0;

	for (struct wc_io *io = g->head; io; io = io->next)
		n += io->op == op;
	return n;
}

/* Take the queued write with the highest offset (lock held). */
static struct wc_io *take_highest_write(struct gate_dev *g)
{
	struct wc_io **best = NULL;

	for (struct wc_io **pp = &g->head; *pp; pp = &(*pp)->next)
		if ((*pp)->op == WC_IO_WRITE && (!best || (*pp)->off > (*best)->off))
			best = pp;
	if (best) {
		struct wc_io *io = *best;

		*best = io->next;
		if (g->tail == io) {
			g->tail = NULL;
			for (struct wc_io *x = g->head; x; x = x->next)
				g->tail = x;
		}
		return io;
	}
	return NULL;
}

static void gate_reorder(struct gate_dev *g)
{
	while (queued(g, WC_IO_WRITE) < g->reorder_hold)
		pthread_cond_wait(&g->cond, &g->lock);
	for (unsigned i = 0; i < g->reorder_first; i++) {
		struct wc_io *io = take_highest_write(g);

		pthread_mutex_unlock(&g->lock);
		io->done(io, gate_run(g, io));
		pthread_mutex_lock(&g->lock);
	}
	while (!queued(g, WC_IO_FLUSH))
		pthread_cond_wait(&g->cond, &g->lock);
	/* The flush stays queued: the normal loop ends it after these writes. */
	for (struct wc_io *io; (io = take_highest_write(g));) {
		pthread_mutex_unlock(&g->lock);
		io->done(io, gate_run(g, io));
		pthread_mutex_lock(&g->lock);
	}
	g->reorder_hold = 0;
}

static void *gate_main(void *arg)
{
	struct gate_dev *g = arg;

	pthread_mutex_lock(&g->lock);
	for (;;) {
		struct wc_io *list;

		while (!g->stop && !(g->open && g->head))
			pthread_cond_wait(&g->cond, &g->lock);
		if (g->reorder_hold && !g->stop) {
			gate_reorder(g);
			continue;
		}
		if (g->stop && !g->head)
			break;
		pthread_mutex_unlock(&g->lock);
		if (g->delay_us)
			usleep(g->delay_us);
		pthread_mutex_lock(&g->lock);
		list = g->head;
		g->head = g->tail = NULL;
		pthread_mutex_unlock(&g->lock);
		while (list) {
			struct wc_io *io = list;

			list = io->next;
			io->done(io, gate_run(g, io));
		}
		pthread_mutex_lock(&g->lock);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

static void gate_close_dev(struct wc_dev *dev)
{
	struct gate_dev *g = to_gate(dev);

	pthread_mutex_lock(&g->lock);
	g->stop = true;
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->thread, NULL);
	dev_close(g->mem);
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

static const struct wc_dev_ops gate_ops = {
	.name = "gate",
	.submit = gate_submit,
	.close = gate_close_dev,
};

static struct gate_dev *gate_new(uint64_t size, bool open, unsigned delay_us)
{
	struct gate_dev *g = calloc(1, sizeof(*g));

	assert_non_null(g);
	assert_int_equal(dev_mem_open(size, &g->mem), 0);
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->open = open;
	g->delay_us = delay_us;
	g->dev.ops = &gate_ops;
	g->dev.priv = g;
	g->dev.size = size;
	g->dev.logical_block = 512;
	snprintf(g->dev.name, sizeof(g->dev.name), "gate");
	assert_int_equal(pthread_create(&g->thread, NULL, gate_main, g), 0);
	return g;
}

static void gate_set_open(struct gate_dev *g, bool open)
{
	pthread_mutex_lock(&g->lock);
	g->open = open;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* ---------------- helpers ---------------- */

static struct wcache *open_cache(struct gate_dev *g, uint64_t cache_bytes, const char *table_opts)
{
	struct wc_cfg cfg;
	struct wc_dev *cache;
	struct wcache *wc = NULL;
	char buf[256], *save, *tok;

	wcache_cfg_init(&cfg);
	snprintf(buf, sizeof(buf), "%s", table_opts);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *v = strtok_r(NULL, " ", &save);

		assert_int_equal(wcache_cfg_set(&cfg, tok, v), 0);
	}
	assert_int_equal(dev_mem_open(cache_bytes, &cache), 0);
	assert_int_equal(wc_open_devs(&cfg, &g->dev, cache, &wc), 0);
	return wc;
}

static void write_block(struct wcache *wc, uint64_t blk, uint8_t v)
{
	uint8_t b[BS];

	memset(b, v, sizeof(b));
	assert_int_equal(wcache_write(wc, b, sizeof(b), blk * BS, 0), 0);
}

static uint32_t entry_of(struct wcache *c, uint64_t blk)
{
	uint32_t e;

	pthread_mutex_lock(&c->lock);
	e = wc_idx_lookup(&c->idx, blk * (BS / 512));
	pthread_mutex_unlock(&c->lock);
	return e;
}

/* ---------------- writeback_jobs ---------------- */

struct flush_arg {
	struct wcache *wc;
	int ret;
};

static void *flush_main(void *arg)
{
	struct flush_arg *a = arg;

	__atomic_store_n(&a->ret, wcache_message(a->wc, "flush"), __ATOMIC_RELEASE);
	return NULL;
}

static uint64_t drain_max_in_flight(const char *opts)
{
	struct gate_dev *g = gate_new(64u << 20, true, 2000);
	struct wcache *wc = open_cache(g, 8u << 20, opts);
	struct flush_arg a = { wc, -1 };
	pthread_t th;
	uint64_t max;

	/* 600 blocks, none adjacent: 600 runs of one block each. */
	for (uint64_t i = 0; i < 600; i++)
		write_block(wc, i * 3, (uint8_t)i);
	assert_int_equal(wcache_flush(wc), 0);
	assert_int_equal(pthread_create(&th, NULL, flush_main, &a), 0);
	pthread_join(th, NULL);
	assert_int_equal(a.ret, 0);
	pthread_mutex_lock(&g->lock);
	max = g->max_blocks;
	pthread_mutex_unlock(&g->lock);
	assert_int_equal(wcache_close(wc), 0);	/* closes the gate device too */
	return max;
}

static void test_writeback_jobs_bounds_in_flight(void **state)
{
	uint64_t max;
	(void)state;

	/* high_watermark 100: nothing is written back before the flush message. */
	max = drain_max_in_flight("high_watermark 100 low_watermark 99 writeback_jobs 8");
	assert_true(max <= 8);
	assert_true(max >= 2);	/* not one at a time */
	max = drain_max_in_flight("high_watermark 100 low_watermark 99 writeback_jobs 1");
	assert_int_equal(max, 1);
	/* The default (65536) lets the whole batch go at once. */
	max = drain_max_in_flight("high_watermark 100 low_watermark 99");
	assert_true(max > 64);
}

/*
 * A batch of 300 single-block runs. The origin ends 44 of the writes
 * first, and the other 256 while writeback flushes the origin for those
 * 44: runs that end while others are being finished must still be noticed
 * (they were not: the flush message hung, a lost wake-up that
 * test-nbd-origin-faults hit half the time).
 */
static void test_runs_ending_during_finish(void **state)
{
	struct gate_dev *g = gate_new(64u << 20, true, 0);
	struct wcache *wc = open_cache(g, 8u << 20, "high_watermark 100 low_watermark 99");
	struct flush_arg a = { wc, -1 };
	pthread_t th;
	int waited_ms = 0;
	(void)state;

	for (uint64_t i = 0; i < 300; i++)
		write_block(wc, i * 3, (uint8_t)i);
	assert_int_equal(wcache_flush(wc), 0);
	pthread_mutex_lock(&g->lock);
	g->reorder_hold = 300;
	g->reorder_first = 44;
	pthread_mutex_unlock(&g->lock);
	assert_int_equal(pthread_create(&th, NULL, flush_main, &a), 0);
	while (__atomic_load_n(&a.ret, __ATOMIC_ACQUIRE) == -1 && waited_ms < 20000) {
		usleep(10000);
		waited_ms += 10;
	}
	assert_true(waited_ms < 20000);	/* a lost wake-up hangs here */
	pthread_join(th, NULL);
	assert_int_equal(a.ret, 0);
	assert_int_equal(wcache_close(wc), 0);
}

/* ---------------- FIFO service of full-cache waiters ---------------- */

struct writer {
	struct wcache *wc;
	uint64_t blk;
	uint8_t pattern;
	int ret;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	uint8_t b[BS];

	memset(b, w->pattern, sizeof(b));
	w->ret = wcache_write(w->wc, b, sizeof(b), w->blk * BS, 0);
	return NULL;
}

static unsigned nr_waiters(struct wcache *c)
{
	unsigned n = 0;

	pthread_mutex_lock(&c->lock);
	for (struct wc_space_waiter *w = c->space_head; w; w = w->next)
		n++;
	pthread_mutex_unlock(&c->lock);
	return n;
}

static bool under_writeback(struct wcache *c, uint64_t blk)
{
	uint32_t e = entry_of(c, blk);
	bool wb;

	pthread_mutex_lock(&c->lock);
	wb = e != IDX_NONE && (c->state[e] & ST_WB);
	pthread_mutex_unlock(&c->lock);
	return wb;
}

#define NR_WRITERS 6

static void test_full_cache_waiters_fifo(void **state)
{
	struct gate_dev *g = gate_new(64u << 20, true, 0);
	uint64_t cache_bytes = 4096 + (64 + 2) * BS;	/* about 64 blocks */
	/* high_watermark 100: no writeback until the cache is completely full. */
	struct wcache *wc = open_cache(g, cache_bytes, "high_watermark 100 low_watermark 99");
	struct flush_arg fa = { wc, -1 };
	struct writer w[NR_WRITERS];
	pthread_t th[NR_WRITERS], fth;
	uint64_t n_blocks = wc->n_blocks, wb_blocks[NR_WRITERS], k = 0;
	uint32_t e[NR_WRITERS];
	(void)state;

	/*
	 * All blocks but one cached and committed, then a flush message: its
	 * batch takes every committed block and hangs on the shut origin
	 * (after activation, which flushes the origin). The last block fills
	 * the cache.
	 */
	gate_set_open(g, false);
	for (uint64_t i = 0; i + 1 < n_blocks; i++)
		write_block(wc, 1000 + i * 2, (uint8_t)i);
	assert_int_equal(wcache_flush(wc), 0);
	assert_int_equal(pthread_create(&fth, NULL, flush_main, &fa), 0);
	for (int tries = 0; tries < 500 && k < NR_WRITERS; tries++) {
		k = 0;
		for (uint64_t i = 0; i + 1 < n_blocks && k < NR_WRITERS; i++)
			if (under_writeback(wc, 1000 + i * 2))
				wb_blocks[k++] = 1000 + i * 2;
		if (k < NR_WRITERS)
			usleep(10000);
	}
	assert_int_equal(k, NR_WRITERS);
	write_block(wc, 999, 0x55);
	pthread_mutex_lock(&wc->lock);
	assert_int_equal(wc->nr_free, 0);
	pthread_mutex_unlock(&wc->lock);

	/* Writers to blocks under writeback must wait; start them one after another. */
	for (unsigned i = 0; i < NR_WRITERS; i++) {
		w[i] = (struct writer){ wc, wb_blocks[i], (uint8_t)(0xa0 + i), -1 };
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
		for (int tries = 0; tries < 500 && nr_waiters(wc) < i + 1; tries++)
			usleep(2000);
		assert_int_equal(nr_waiters(wc), i + 1);
	}
	gate_set_open(g, true);
	for (unsigned i = 0; i < NR_WRITERS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].ret, 0);
	}
	pthread_join(fth, NULL);
	assert_int_equal(fa.ret, 0);
	/*
	 * Which block did each writer get? The flush message may have written
	 * them back and freed them since, but nothing reused them: find each
	 * writer's pattern on the cache device.
	 */
	for (unsigned i = 0; i < NR_WRITERS; i++) {
		e[i] = IDX_NONE;
		for (uint32_t x = 0; x < n_blocks; x++) {
			uint8_t b[BS];

			assert_int_equal(dev_pread(wc->cache, b, BS, blk_off(wc, x)), 0);
			if (b[0] == w[i].pattern && b[BS - 1] == w[i].pattern) {
				assert_int_equal(e[i], IDX_NONE);
				e[i] = x;
			}
		}
		assert_int_not_equal(e[i], IDX_NONE);
	}
	/*
	 * The allocator hands out free blocks in cursor order (ascending, then
	 * wrapping): served in arrival order, the writers got ascending blocks
	 * counted from the first one's.
	 */
	for (unsigned i = 1; i < NR_WRITERS; i++)
		assert_true((e[i] + n_blocks - e[0]) % n_blocks >
			    (e[i - 1] + n_blocks - e[0]) % n_blocks);
	assert_int_equal(wcache_close(wc), 0);
}

/*
 * After a failed batch the writeback thread waits out a backoff (100 ms,
 * doubling up to 10 s), which a kick or a flush request ends early. A
 * wake-up for anything else during the backoff (here the autocommit request
 * of a write) sent the thread on to its idle wait; a flush message then
 * woke it there and it went back into a whole backoff before retrying: the
 * message took the backoff although the origin worked again.
 * test_crash_points on asynchronous devices hit it ("a step took 1600 ms").
 */
static void test_flush_after_failed_writeback_retries_at_once(void **state)
{
	struct wc_dev *origin, *engine_origin, *cache;
	struct wcache *wc;
	struct wc_cfg cfg;
	uint64_t t0, ms;
	(void)state;

	assert_int_equal(dev_fault_open(1u << 20, &origin), 0);
	assert_int_equal(dev_fault_share(origin, &engine_origin), 0);
	assert_int_equal(dev_mem_open(1u << 20, &cache), 0);
	wcache_cfg_init(&cfg);
	assert_int_equal(wcache_cfg_set(&cfg, "high_watermark", "100"), 0);
	assert_int_equal(wcache_cfg_set(&cfg, "low_watermark", "99"), 0);
	assert_int_equal(wcache_cfg_set(&cfg, "autocommit_blocks", "1"), 0);
	assert_int_equal(wc_open_devs(&cfg, engine_origin, cache, &wc), 0);
	write_block(wc, 1, 1);
	assert_int_equal(wcache_flush(wc), 0);
	fault_set_error(origin, "pwrite", true);
	for (int i = 0; i < 4; i++)
		assert_int_not_equal(wcache_message(wc, "flush"), 0);
	/* The backoff is 800 ms now. A write's autocommit request wakes the thread. */
	write_block(wc, 3, 3);
	usleep(50000);
	fault_set_error(origin, "pwrite", false);
	t0 = wc_now_ns();
	assert_int_equal(wcache_message(wc, "flush"), 0);
	ms = (wc_now_ns() - t0) / 1000000;
	if (ms >= 400)
		fail_msg("the flush message took %llu ms: writeback waited out its backoff",
			 (unsigned long long)ms);
	assert_int_equal(wcache_close(wc), 0);
	dev_close(origin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writeback_jobs_bounds_in_flight),
		cmocka_unit_test(test_runs_ending_during_finish),
		cmocka_unit_test(test_full_cache_waiters_fifo),
		cmocka_unit_test(test_flush_after_failed_writeback_retries_at_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
