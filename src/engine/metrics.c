/* SPDX-License-Identifier: MIT */
/*
 * Numbers for monitoring (wcache_get_metrics): histograms of write latency,
 * commit latency and writeback run size, updated where the events happen
 * with relaxed atomics only, so the I/O path takes no extra lock. Formatting
 * (Prometheus text) is the frontends' business, not the engine's.
 */
#include <string.h>

#include "engine.h"

/* Latency bounds in ns: 5 us .. 10 s, 1-2.5-5 steps (Prometheus' default spacing). */
static const uint64_t lat_bounds_ns[] = {
	5000,	    10000,	25000,	    50000,	100000,	    250000,	500000,
	1000000,    2500000,	5000000,    10000000,	25000000,   50000000,	100000000,
	250000000,  500000000,	1000000000, 2500000000, 5000000000, 10000000000,
};

/* Writeback run sizes in blocks: powers of two up to WB_RUN_MAX-sized runs and beyond. */
static const uint64_t run_bounds_blk[] = {
	1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536,
};

_Static_assert(sizeof(lat_bounds_ns) / sizeof(lat_bounds_ns[0]) <= WC_HIST_MAX_BUCKETS,
	       "latency histogram too wide");
_Static_assert(sizeof(run_bounds_blk) / sizeof(run_bounds_blk[0]) <= WC_HIST_MAX_BUCKETS,
	       "run histogram too wide");

static void hist_init(struct wc_hist_live *h, const uint64_t *bound, unsigned nr)
{
	h->bound = bound;
	h->nr = nr;
	for (unsigned i = 0; i <= WC_HIST_MAX_BUCKETS; i++)
		atomic_init(&h->count[i], 0);
	atomic_init(&h->sum, 0);
}

void wc_metrics_init(struct wcache *c)
{
	hist_init(&c->h_write_ns, lat_bounds_ns, sizeof(lat_bounds_ns) / sizeof(lat_bounds_ns[0]));
	hist_init(&c->h_commit_ns, lat_bounds_ns, sizeof(lat_bounds_ns) / sizeof(lat_bounds_ns[0]));
	hist_init(&c->h_run_blocks, run_bounds_blk,
		  sizeof(run_bounds_blk) / sizeof(run_bounds_blk[0]));
	atomic_init(&c->origin_errors, 0);
	atomic_init(&c->wb_runs_in_flight, 0);
	atomic_init(&c->last_commit_ns, 0);
}

void wc_hist_observe(struct wc_hist_live *h, uint64_t v)
{
	unsigned i = 0;

	while (i < h->nr && v > h->bound[i])
		i++;
	/* Relaxed: counters only; a snapshot never orders anything else. */
	atomic_fetch_add_explicit(&h->count[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

static void hist_snapshot(struct wc_hist_live *h, struct wc_hist *out)
{
	memset(out, 0, sizeof(*out));
	out->nr = h->nr;
	for (unsigned i = 0; i <= h->nr; i++) {
		uint64_t n = atomic_load_explicit(&h->count[i], memory_order_relaxed);

		if (i < h->nr) {
			out->bound[i] = h->bound[i];
			out->count[i] = n;
		}
		out->total += n;	/* from the buckets: total always equals their sum */
	}
	out->sum = atomic_load_explicit(&h->sum, memory_order_relaxed);
}

void wcache_get_metrics(struct wcache *c, struct wc_metrics *m)
{
	uint64_t now = wc_now_ns(), last;

	memset(m, 0, sizeof(*m));
	wcache_get_stats(c, &m->st);
	m->origin_path = c->cfg.origin_path;
	m->cache_path = c->cfg.cache_path;
	m->size_bytes = c->origin_bytes;
	m->block_size = c->bs;
	m->high_watermark = c->cfg.high_watermark;
	m->low_watermark = c->cfg.low_watermark;
	m->writeback_jobs = c->cfg.writeback_jobs;
	pthread_mutex_lock(&c->lock);
	m->cleaner = c->cleaner;
	pthread_mutex_unlock(&c->lock);
	m->read_only = c->read_only;
	m->origin_errors = atomic_load_explicit(&c->origin_errors, memory_order_relaxed);
	m->writeback_runs_in_flight = atomic_load_explicit(&c->wb_runs_in_flight,
							   memory_order_relaxed);
	m->uptime_ns = now - c->open_ns;
	last = atomic_load_explicit(&c->last_commit_ns, memory_order_relaxed);
	m->last_commit_age_ns = last ? (now > last ? now - last : 0) : UINT64_MAX;
	hist_snapshot(&c->h_write_ns, &m->write_latency_ns);
	hist_snapshot(&c->h_commit_ns, &m->commit_latency_ns);
	hist_snapshot(&c->h_run_blocks, &m->writeback_run_blocks);
}
