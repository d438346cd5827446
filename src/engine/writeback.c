/* SPDX-License-Identifier: MIT */
/*
 * Writeback: copy committed dirty blocks to the origin, oldest first (a
 * clock hand following the allocation cursor), sorted by sector and
 * coalesced into runs of up to 256 blocks, several runs in flight. A block
 * is freed only after the origin is flushed (invariant 3), and the free is
 * made durable before the block can be reused (commit.c).
 * Batches run one after another, so an older copy of a sector is always on
 * the origin before a newer copy of the same sector is written back.
 * Origin errors are not sticky: blocks stay dirty, status shows the error,
 * and writeback retries with backoff (a remote origin may come back).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "engine.h"

#define WB_BATCH_MAX	65536u	/* flush/cleaner: one sorted pass over this many blocks */
#define WB_BATCH_WM	4096u	/* watermark writeback: free space sooner */
#define WB_BATCH_MIN	1024u	/* below this, runs get short and the origin seeks */
#define WB_RUN_MAX	256u
#define WB_THREADS	4

struct wb_item {
	uint64_t blk;
	uint32_t e;
};

struct wb_run {
	uint64_t i0, n;
};

struct wb_batch {
	struct wcache *c;
	struct wb_item *items;
	struct wb_run *runs;
	uint64_t nr_runs;
	atomic_uint_fast64_t next;
	atomic_int err;
};

static int cmp_item(const void *a, const void *b)
{
	const struct wb_item *x = a, *y = b;

	return x->blk < y->blk ? -1 : x->blk > y->blk;
}

static int copy_run(struct wcache *c, const struct wb_item *it, uint64_t n, uint8_t *buf)
{
	uint64_t off = it[0].blk << c->bs_shift, len = n << c->bs_shift;
	uint64_t i = 0;
	int ret = 0;

	/* Read physically contiguous cache blocks with one request each. */
	while (i < n && !ret) {
		uint64_t k = 1;

		while (i + k < n && it[i + k].e == it[i].e + k)
			k++;
		ret = dev_pread(c->cache, buf + (i << c->bs_shift), k << c->bs_shift,
				blk_off(c, it[i].e));
		i += k;
	}
	if (ret)
		return wc_err(ret, "writeback: reading the cache device failed: %s", strerror(-ret));
	if (off >= c->origin_bytes)
		return 0;
	if (len > c->origin_bytes - off)
		len = c->origin_bytes - off;
	ret = dev_pwrite(c->origin, buf, len, off);
	if (ret)
		wc_err(ret, "writeback: writing the origin failed: %s", strerror(-ret));
	return ret;
}

static void *wb_worker(void *arg)
{
	struct wb_batch *b = arg;
	struct wcache *c = b->c;
	uint8_t *buf = malloc((size_t)WB_RUN_MAX << c->bs_shift);

	if (!buf) {
		atomic_store(&b->err, -ENOMEM);
		return NULL;
	}
	for (;;) {
		uint64_t r = atomic_fetch_add(&b->next, 1);
		int ret;

		if (r >= b->nr_runs || atomic_load(&b->err))
			break;
		ret = copy_run(c, b->items + b->runs[r].i0, b->runs[r].n, buf);
		if (ret) {
			int zero = 0;

			atomic_compare_exchange_strong(&b->err, &zero, ret);
		}
	}
	free(buf);
	return NULL;
}

/* Is writeback wanted now? lock held. */
static bool wb_wanted(struct wcache *c, bool *active)
{
	uint64_t avail = c->nr_free + c->nr_pend + c->nr_wb;

	if (c->wb_all_waiters || c->cleaner)
		return true;
	if (avail <= wc_free_high(c))
		*active = true;
	if (*active && avail > wc_free_low(c))
		*active = false;
	return *active;
}

/* Pick up to max candidates, oldest first. lock held. */
static uint64_t select_batch(struct wcache *c, struct wb_item *items, uint64_t max, uint32_t min_age)
{
	uint64_t n = 0, scanned = 0, e = c->wb_cursor;
	uint32_t now = wc_now_age(c);

	while (scanned < c->n_blocks && n < max) {
		if (c->state[e] == 0 && entry_seq(c->meta, e) != WC_SEQ_FREE && committed(c, e) &&
		    (!min_age || wc_region_older_than(c, e, now, min_age)) &&
		    !wc_old_may_have(c, entry_sector(c->meta, e))) {
			/* (An older copy still cached must reach the origin or be freed first.) */
			c->state[e] |= ST_WB;
			items[n++] = (struct wb_item){ entry_sector(c->meta, e) / c->bs_sect, (uint32_t)e };
		}
		scanned++;
		e = e + 1 == c->n_blocks ? 0 : e + 1;
	}
	c->wb_cursor = e;
	c->nr_wb += n;
	return n;
}

static int run_batch(struct wcache *c, struct wb_item *items, uint64_t n)
{
	struct wb_batch b = { .c = c, .items = items };
	pthread_t th[WB_THREADS];
	unsigned nth;
	int ret;

	qsort(items, n, sizeof(*items), cmp_item);
	b.runs = malloc(sizeof(*b.runs) * n);
	if (!b.runs)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++) {
		struct wb_run *r = b.nr_runs ? &b.runs[b.nr_runs - 1] : NULL;

		if (r && r->n < WB_RUN_MAX && items[r->i0 + r->n - 1].blk + 1 == items[i].blk)
			r->n++;
		else
			b.runs[b.nr_runs++] = (struct wb_run){ i, 1 };
	}
	atomic_init(&b.next, 0);
	atomic_init(&b.err, 0);
	nth = b.nr_runs < WB_THREADS ? (unsigned)b.nr_runs : WB_THREADS;
	if (c->cfg.writeback_jobs && c->cfg.writeback_jobs <= WB_RUN_MAX)
		nth = 1;	/* a small in-flight budget: one run at a time */
	for (unsigned i = 1; i < nth; i++)
		if (pthread_create(&th[i], NULL, wb_worker, &b))
			nth = i;
	wb_worker(&b);
	for (unsigned i = 1; i < nth; i++)
		pthread_join(th[i], NULL);
	ret = atomic_load(&b.err);
	if (!ret) {
		/* Origin copies must be durable before the cache forgets the blocks. */
		ret = dev_flush(c->origin);
		if (ret)
			wc_err(ret, "writeback: flushing the origin failed: %s", strerror(-ret));
	}
	pthread_mutex_lock(&c->lock);
	c->st.writeback_runs += b.nr_runs;
	pthread_mutex_unlock(&c->lock);
	free(b.runs);
	return ret;
}

static void finish_batch(struct wcache *c, struct wb_item *items, uint64_t n, int err)
{
	pthread_mutex_lock(&c->meta_mutex);
	pthread_mutex_lock(&c->lock);
	for (uint64_t i = 0; i < n; i++) {
		uint32_t e = items[i].e;

		c->state[e] &= (uint8_t)~ST_WB;
		c->nr_wb--;
		if (err)
			continue;
		if (c->state[e] & ST_OLD)
			wc_old_remove(c, e);	/* a newer copy exists; this one is on the origin */
		else
			wc_idx_remove(&c->idx, e);
		wc_free_entry(c, e);
		c->st.writeback_blocks_done++;
	}
	if (!err)
		wc_persist_and_release(c);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->meta_mutex);
}

static void timed_wait(struct wcache *c, uint64_t ns)
{
	struct timespec ts = wc_deadline_ts(wc_now_ns() + ns);

	pthread_cond_timedwait(&c->cond, &c->lock, &ts);
}

void *wc_wb_main(void *arg)
{
	struct wcache *c = arg;
	struct wb_item *items = malloc(sizeof(*items) * WB_BATCH_MAX);
	uint64_t backoff_ns = 0;
	bool active = false;

	if (!items) {
		wc_set_error(c, -ENOMEM, "writeback thread");
		return NULL;
	}
	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		uint64_t max = WB_BATCH_MAX, n, age_ms = c->cfg.max_age_ms;
		uint32_t min_age = 0;
		bool wanted;
		int ret;

		if (wc_get_error(c)) {
			timed_wait(c, 1000000000ull);
			continue;
		}
		if (backoff_ns) {
			timed_wait(c, backoff_ns);
			if (c->stopping)
				break;
		}
		wanted = wb_wanted(c, &active);
		if (!wanted && age_ms) {
			min_age = (uint32_t)((age_ms - age_ms / 16 + 999) / 1000);
			wanted = true;
		}
		if (!wanted) {
			timed_wait(c, 1000000000ull);
			continue;
		}
		/* pause_writeback: let the origin rest while writes go around the cache. */
		if (!c->wb_all_waiters && !c->cleaner && c->cfg.pause_writeback_ms && c->last_around_ns &&
		    wc_now_ns() - c->last_around_ns <
			    (uint64_t)c->cfg.pause_writeback_ms * 1000000ull &&
		    c->nr_free) {
			timed_wait(c, 100000000ull);
			continue;
		}
		if (!c->wb_all_waiters && !c->cleaner) {
			uint64_t avail = c->nr_free + c->nr_pend + c->nr_wb;
			uint64_t need = wc_free_low(c) >= avail ? wc_free_low(c) - avail + 1 : 1;

			/*
			 * Overshoot the low watermark a little (at most 1/64 of the cache)
			 * rather than write tiny runs.
			 */
			uint64_t floor = c->n_blocks / 64 < WB_BATCH_MIN ? c->n_blocks / 64 : WB_BATCH_MIN;

			max = need < floor ? floor : need > WB_BATCH_WM ? WB_BATCH_WM : need;
			if (!max)
				max = 1;
		}
		if (c->cfg.writeback_jobs && c->cfg.writeback_jobs < max)
			max = c->cfg.writeback_jobs;
		n = select_batch(c, items, max, min_age);
		if (!n) {
			if (c->txn_dirty && (c->wb_all_waiters || c->cleaner || active)) {
				pthread_mutex_unlock(&c->lock);
				wc_commit(c, false);
				pthread_mutex_lock(&c->lock);
				continue;
			}
			if (c->wb_all_waiters) {
				c->wb_all_gen++;
				pthread_cond_broadcast(&c->cond);
			}
			/* A flush message waits for two empty passes: make them quick. */
			timed_wait(c, c->wb_all_waiters ? 1000000ull :
				      min_age ? 1000000000ull : 200000000ull);
			continue;
		}
		pthread_mutex_unlock(&c->lock);
		ret = run_batch(c, items, n);
		finish_batch(c, items, n, ret);
		pthread_mutex_lock(&c->lock);
		if (ret) {
			c->wb_error = ret;
			c->wb_fail_gen++;
			backoff_ns = backoff_ns ? backoff_ns * 2 : 100000000ull;
			if (backoff_ns > 10000000000ull)
				backoff_ns = 10000000000ull;
			wc_log(WC_LOG_WARN, "writeback failed (%s); %llu blocks stay dirty, retrying in %llu ms",
			       strerror(-ret), (unsigned long long)n,
			       (unsigned long long)(backoff_ns / 1000000));
			pthread_cond_broadcast(&c->cond);
		} else {
			c->wb_error = 0;
			backoff_ns = 0;
		}
	}
	pthread_mutex_unlock(&c->lock);
	free(items);
	return NULL;
}

int wc_writeback_all(struct wcache *c)
{
	uint64_t gen0, fail0;
	int ret = wc_commit(c, false);

	if (ret)
		return ret;
	pthread_mutex_lock(&c->lock);
	c->wb_all_waiters++;
	gen0 = c->wb_all_gen;
	fail0 = c->wb_fail_gen;
	pthread_cond_broadcast(&c->cond);
	/* Two empty passes after our request: the second began after it. */
	while (c->wb_all_gen < gen0 + 2 && !c->stopping) {
		ret = wc_get_error(c);
		if (!ret && c->wb_fail_gen != fail0)
			ret = c->wb_error ? c->wb_error : -EIO;
		if (ret)
			break;
		pthread_cond_wait(&c->cond, &c->lock);
	}
	c->wb_all_waiters--;
	pthread_mutex_unlock(&c->lock);
	if (ret)
		return wc_err(ret, "flush: writeback failed: %s", strerror(-ret));
	return 0;
}
