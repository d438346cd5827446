/* SPDX-License-Identifier: MIT */
/*
 * Writeback: copy committed dirty blocks to the origin, oldest first (a
 * clock hand following the allocation cursor), sorted by sector and
 * coalesced into runs of up to 256 blocks. Runs are asynchronous (cache
 * reads, then one origin write, chained by completion callbacks), as many
 * in flight as writeback_jobs blocks allow, the kernel's bound. A block
 * is freed only after the origin is flushed (invariant 3), and the free is
 * made durable before the block can be reused (commit.c).
 * Batches run one after another, so an older copy of a sector is always on
 * the origin before a newer copy of the same sector is written back.
 * Origin errors are not sticky: blocks stay dirty, status shows the error,
 * and writeback retries with backoff (a remote origin may come back).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "engine.h"

#define WB_BATCH_MAX	65536u	/* flush/cleaner: one sorted pass over this many blocks */
#define WB_BATCH_WM	4096u	/* watermark writeback: free space sooner */
#define WB_BATCH_MIN	1024u	/* below this, runs get short and the origin seeks */
#define WB_RUN_MAX	256u

struct wb_item {
	uint64_t blk;
	uint32_t e;
};

/*
 * One batch in flight: runs are started while the blocks in flight stay
 * within writeback_jobs, and each run ends on a device's completion thread.
 */
struct wb_pipe {
	struct wcache *c;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* a run ended */
	uint64_t blocks_in_flight;	/* lock */
	uint64_t runs_in_flight;	/* lock */
	int err;			/* lock: first failure */
	char msg[256];			/* lock: its text */
	/*
	 * Runs that ended since the writeback thread last looked: it flushes
	 * the origin once for all of them and frees their blocks, so space
	 * comes back while the batch is still running, and one origin flush
	 * covers however many runs ended during the previous one.
	 */
	struct wb_ended *ended;		/* lock: nr_ended of them */
	uint64_t nr_ended;
};

struct wb_ended {
	const struct wb_item *it;
	uint64_t n;
	int err;
};

/* One run: contiguous origin blocks, read from the cache, then one origin write. */
struct wb_run {
	struct wb_pipe *p;
	const struct wb_item *it;
	uint64_t n;
	uint8_t *buf;
	atomic_uint reads_left;
	atomic_int err;
	char msg[256];
	struct wc_io write;
	struct wc_io reads[];		/* one per physically contiguous piece in the cache */
};

static int cmp_item(const void *a, const void *b)
{
	const struct wb_item *x = a, *y = b;

	return x->blk < y->blk ? -1 : x->blk > y->blk;
}

static void run_end(struct wb_run *r, int err, const char *msg)
{
	struct wb_pipe *p = r->p;

	pthread_mutex_lock(&p->lock);
	if (err && !p->err) {
		p->err = err;
		snprintf(p->msg, sizeof(p->msg), "%s", msg && *msg ? msg : strerror(-err));
	}
	p->ended[p->nr_ended++] = (struct wb_ended){ r->it, r->n, err };
	p->blocks_in_flight -= r->n;
	p->runs_in_flight--;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	free(r->buf);
	free(r);
}

static void run_write_done(struct wc_io *io, int result)
{
	struct wb_run *r = io->opaque;

	run_end(r, result, r->msg);
}

static void run_read_done(struct wc_io *io, int result)
{
	struct wb_run *r = io->opaque;
	struct wcache *c = r->p->c;
	uint64_t off, len;
	struct wc_io *w = &r->write;

	if (result) {
		int zero = 0;

		if (atomic_compare_exchange_strong(&r->err, &zero, result))
			snprintf(r->msg, sizeof(r->msg), "reading the cache device failed: %s",
				 strerror(-result));
	}
	if (atomic_fetch_sub(&r->reads_left, 1) != 1)
		return;
	if (atomic_load(&r->err)) {
		run_end(r, atomic_load(&r->err), r->msg);
		return;
	}
	off = r->it[0].blk << c->bs_shift;
	len = r->n << c->bs_shift;
	if (off >= c->origin_bytes) {
		run_end(r, 0, NULL);
		return;
	}
	if (len > c->origin_bytes - off)
		len = c->origin_bytes - off;
	*w = (struct wc_io){ .op = WC_IO_WRITE, .buf = r->buf, .len = len, .off = off,
			     .done = run_write_done, .opaque = r, .msg = r->msg,
			     .msg_len = sizeof(r->msg) };
	dev_submit(c->origin, &w, 1);
}

/* Blocks from it[i] on that are also adjacent in the cache: one read. */
static uint64_t piece_len(const struct wb_item *it, uint64_t i, uint64_t n)
{
	uint64_t k = 1;

	while (i + k < n && it[i + k].e == it[i].e + k)
		k++;
	return k;
}

/* Start one run: its cache reads now, its origin write when they are done. */
static int run_start(struct wb_pipe *p, const struct wb_item *it, uint64_t n)
{
	struct wcache *c = p->c;
	struct wc_io *ios[WB_RUN_MAX];
	unsigned nr = 0;
	struct wb_run *r;

	for (uint64_t i = 0; i < n; nr++)
		i += piece_len(it, i, n);
	r = calloc(1, sizeof(*r) + nr * sizeof(r->reads[0]));
	/* Page-aligned, so O_DIRECT files take it as is (no bounce, straight on the ring). */
	if (!r || posix_memalign((void **)&r->buf, 4096, (size_t)n << c->bs_shift)) {
		free(r);
		return -ENOMEM;
	}
	r->p = p;
	r->it = it;
	r->n = n;
	atomic_init(&r->reads_left, nr);
	atomic_init(&r->err, 0);
	nr = 0;
	for (uint64_t i = 0; i < n; nr++) {
		uint64_t k = piece_len(it, i, n);

		r->reads[nr] = (struct wc_io){ .op = WC_IO_READ, .buf = r->buf + (i << c->bs_shift),
					       .len = k << c->bs_shift, .off = blk_off(c, it[i].e),
					       .done = run_read_done, .opaque = r };
		ios[nr] = &r->reads[nr];
		i += k;
	}
	dev_submit(c->cache, ios, nr);
	return 0;
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

/* May entry e (an installed copy, current or superseded) be written back now? lock held. */
static bool epoch_candidate(const struct wcache *c, uint64_t e)
{
	uint64_t seq = entry_seq(c->meta, e);

	return !(c->state[e] & ~ST_OLD) && seq != WC_SEQ_FREE && seq < c->disk_seq;
}

/*
 * ordered_writeback: up to max blocks of the oldest epoch in the cache (the
 * lowest seq tag; superseded copies included, each is its epoch's), so the
 * origin moves from one commit to the next. Batches run one after another
 * and each ends with an origin flush, so an epoch is on the origin before
 * the next one starts. With min_age, only if the epoch has an old enough
 * block. lock held.
 */
static uint64_t select_epoch(struct wcache *c, struct wb_item *items, uint64_t max,
			     uint32_t min_age)
{
	uint64_t oldest = WC_SEQ_FREE, n = 0;
	uint32_t now = wc_now_age(c);
	bool aged = !min_age;

	for (uint64_t e = 0; e < c->n_blocks; e++)
		if (epoch_candidate(c, e) && entry_seq(c->meta, e) < oldest)
			oldest = entry_seq(c->meta, e);
	if (oldest == WC_SEQ_FREE)
		return 0;
	for (uint64_t e = 0; e < c->n_blocks && n < max; e++) {
		if (!epoch_candidate(c, e) || entry_seq(c->meta, e) != oldest)
			continue;
		aged = aged || wc_region_older_than(c, (uint32_t)e, now, min_age);
		items[n++] = (struct wb_item){ entry_sector(c->meta, e) / c->bs_sect, (uint32_t)e };
	}
	if (!aged)
		return 0;
	for (uint64_t i = 0; i < n; i++)
		c->state[items[i].e] |= ST_WB;
	c->nr_wb += n;
	return n;
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

/*
 * Finish the runs that have ended: one origin flush for all that
 * succeeded, then their blocks are freed (one metadata commit); blocks of
 * failed runs stay dirty. p->lock held on entry and exit, dropped while
 * finishing. done is scratch space for the batch's items. Returns the
 * first error.
 */
static int reap_ended(struct wb_pipe *p, struct wb_item *done)
{
	struct wcache *c = p->c;
	uint64_t nr = p->nr_ended, ok = 0, bad = 0;
	struct wb_ended *ended = p->ended;
	char msg[256];
	int err = 0, ret;

	if (!nr)
		return 0;
	/* Copy out: runs ending meanwhile append to the same array from here on. */
	p->ended += nr;
	p->nr_ended = 0;
	snprintf(msg, sizeof(msg), "%s", p->msg);
	pthread_mutex_unlock(&p->lock);
	for (uint64_t i = 0; i < nr; i++) {
		if (ended[i].err && !err)
			err = ended[i].err;
		if (!ended[i].err)
			ok += ended[i].n;
	}
	/* Successful runs first in done[], failed ones after them. */
	for (uint64_t i = 0, o = 0, b = ok; i < nr; i++) {
		uint64_t *at = ended[i].err ? &b : &o;

		memcpy(done + *at, ended[i].it, sizeof(*done) * ended[i].n);
		*at += ended[i].n;
		bad += ended[i].err ? ended[i].n : 0;
	}
	if (err)
		wc_err(err, "writeback: %s", msg);
	ret = err;
	if (ok) {
		/* Origin copies must be durable before the cache forgets the blocks. */
		int r = dev_flush(c->origin);

		if (r) {
			wc_err(r, "writeback: flushing the origin failed: %s", strerror(-r));
			ret = r;
			bad += ok;
			ok = 0;
		}
	}
	if (ok)
		finish_batch(c, done, ok, 0);
	if (bad)
		finish_batch(c, done + ok, bad, ret ? ret : -EIO);
	pthread_mutex_lock(&p->lock);
	return ret;
}

/*
 * Copy a batch to the origin and free it: sorted, runs of up to WB_RUN_MAX
 * adjacent blocks, as many in flight as writeback_jobs allows (at least one
 * run); ended runs are flushed and freed while later ones still run. After
 * a failure no new run starts and the blocks not copied stay dirty.
 * Returns 0 or the first -errno.
 */
static int run_batch(struct wcache *c, struct wb_item *items, uint64_t n)
{
	uint64_t budget = c->cfg.writeback_jobs, nr_runs = 0, i;
	struct wb_ended *ended = malloc(sizeof(*ended) * n);
	struct wb_item *done = malloc(sizeof(*done) * n);
	struct wb_pipe p = { .c = c, .ended = ended };
	int ret = 0, err;

	if (!ended || !done) {
		free(ended);
		free(done);
		finish_batch(c, items, n, -ENOMEM);
		return wc_err(-ENOMEM, "writeback: out of memory");
	}
	qsort(items, n, sizeof(*items), cmp_item);
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.cond, NULL);
	pthread_mutex_lock(&p.lock);
	for (i = 0; i < n;) {
		uint64_t k = 1;

		while (i + k < n && k < WB_RUN_MAX && items[i + k - 1].blk + 1 == items[i + k].blk)
			k++;
		/* Finish ended runs only while the budget keeps us from starting more. */
		while (!p.err && p.runs_in_flight && budget && p.blocks_in_flight + k > budget) {
			err = reap_ended(&p, done);
			if (err && !ret)
				ret = err;
			if (!p.nr_ended && p.blocks_in_flight + k > budget)
				pthread_cond_wait(&p.cond, &p.lock);
		}
		if (p.err)
			break;
		p.blocks_in_flight += k;
		p.runs_in_flight++;
		pthread_mutex_unlock(&p.lock);
		err = run_start(&p, items + i, k);
		pthread_mutex_lock(&p.lock);
		if (err) {
			p.blocks_in_flight -= k;
			p.runs_in_flight--;
			if (!p.err) {
				p.err = err;
				snprintf(p.msg, sizeof(p.msg), "out of memory");
			}
			break;
		}
		nr_runs++;
		i += k;
	}
	/* Blocks never started stay dirty. */
	if (i < n)
		p.ended[p.nr_ended++] = (struct wb_ended){ items + i, n - i, p.err };
	while (p.runs_in_flight || p.nr_ended) {
		err = reap_ended(&p, done);
		if (err && !ret)
			ret = err;
		if (p.runs_in_flight && !p.nr_ended)
			pthread_cond_wait(&p.cond, &p.lock);
	}
	pthread_mutex_unlock(&p.lock);
	pthread_cond_destroy(&p.cond);
	pthread_mutex_destroy(&p.lock);
	free(ended);
	free(done);
	pthread_mutex_lock(&c->lock);
	c->st.writeback_runs += nr_runs;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* The writeback thread sleeps; wc_kick_writeback wakes it early. lock held. */
static void timed_wait(struct wcache *c, uint64_t ns)
{
	struct timespec ts = wc_deadline_ts(wc_now_ns() + ns);

	c->wb_sleeping = true;
	pthread_cond_timedwait(&c->cond, &c->lock, &ts);
	c->wb_sleeping = false;
}

void *wc_wb_main(void *arg)
{
	struct wcache *c = arg;
	struct wb_item *items = malloc(sizeof(*items) * WB_BATCH_MAX);
	uint64_t backoff_ns = 0;
	bool backoff_due = false;	/* a batch failed since the last backoff wait */
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
		if (backoff_due) {
			/*
			 * Once per failed batch: a kick or a flush request ends it
			 * early, and one arriving after it (say while the thread idles
			 * below) must not wait a whole backoff again.
			 */
			backoff_due = false;
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
		n = c->cfg.ordered_writeback ? select_epoch(c, items, max, min_age)
					     : select_batch(c, items, max, min_age);
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
		pthread_mutex_lock(&c->lock);
		if (ret) {
			c->wb_error = ret;
			/* This thread's last error is the batch's, device message included. */
			snprintf(c->wb_msg, sizeof(c->wb_msg), "%s", wcache_last_error());
			c->wb_fail_gen++;
			backoff_ns = backoff_ns ? backoff_ns * 2 : 100000000ull;
			if (backoff_ns > 10000000000ull)
				backoff_ns = 10000000000ull;
			backoff_due = true;
			wc_log(WC_LOG_WARN, "writeback failed (%s); %llu blocks stay dirty, retrying in %llu ms",
			       c->wb_msg, (unsigned long long)n,
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
	char msg[sizeof(c->wb_msg)] = "";
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
		if (!ret && c->wb_fail_gen != fail0) {
			ret = c->wb_error ? c->wb_error : -EIO;
			snprintf(msg, sizeof(msg), "%s", c->wb_msg);
		}
		if (ret)
			break;
		pthread_cond_wait(&c->cond, &c->lock);
	}
	c->wb_all_waiters--;
	pthread_mutex_unlock(&c->lock);
	if (ret == -ENOSPC)
		return wc_err(ret, "flush: writeback failed: %s writing to the origin %s; the dirty "
			      "blocks stay in the cache and writeback retries: free space there and "
			      "flush again", strerror(-ret), c->origin->name);
	if (ret)
		return wc_err(ret, "flush: writeback failed: %s", msg[0] ? msg : strerror(-ret));
	return 0;
}
