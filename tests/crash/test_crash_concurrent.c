/* SPDX-License-Identifier: MIT */
/*
 * Concurrent crash test: four writer threads (each owning a run of sectors;
 * the runs are not block aligned, so blocks are shared and partial-block
 * writes race), a flusher thread, autocommit and watermark writeback on a
 * small cache, and a power cut at a random global device op. Afterwards,
 * per sector: every write acknowledged before the start of a successful
 * flush (or itself FUA) survives unless a later write of that sector was
 * attempted; nothing older, nothing never written.
 *
 * Environment: WC_CRASH_SEED (replay a run's seeds), WC_CRASH_ITERS (scale),
 * WC_CRASH_ASYNC=S (asynchronous devices, completions reordered from seed S).
 * Thread timing is not reproducible; a failure prints the seed and cut point.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crash_rig.h"

#define NWRITERS 4
#define MAX_WSECT 24u

struct version {
	uint64_t id;		/* content of sector s is sect_data(id, s) */
	uint64_t t_start, t_end;
	bool acked, fua;
};

struct sector_hist {
	struct version *v;	/* v[0] = initial contents (id 0) */
	uint32_t n, max;
};

struct flush_rec {
	uint64_t t_start, t_end;
};

struct run {
	struct rig r;
	uint64_t nsec, region;	/* sectors per writer */
	struct sector_hist *h;
	atomic_uint_fast64_t clk, next_id;
	pthread_mutex_t flock;
	struct flush_rec *flushes;
	uint64_t nr_flushes, max_flushes;
	atomic_bool stop;
	uint64_t ops_per_writer;
	uint64_t seed;
	atomic_uint_fast64_t errors, bad_reads, timeouts;
	atomic_int first_err;
};

static void sect_data(uint64_t id, uint64_t s, const uint8_t *image, uint8_t *out)
{
	if (!id)
		memcpy(out, image + s * SECT, SECT);
	else
		rng_fill(id * 1000003ull + s, out, SECT);
}

static uint64_t tick(struct run *u)
{
	return atomic_fetch_add(&u->clk, 1) + 1;
}

static void hist_add(struct sector_hist *h, const struct version *v)
{
	if (h->n == h->max) {
		h->max = h->max ? 2 * h->max : 8;
		h->v = realloc(h->v, h->max * sizeof(*h->v));
		if (!h->v)
			abort();
	}
	h->v[h->n++] = *v;
}

struct writer {
	pthread_t th;
	struct run *u;
	unsigned idx;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct run *u = w->u;
	struct rng g = { u->seed * 131 + w->idx };
	uint64_t first = w->idx * u->region, nreg = u->region;
	uint8_t *buf = malloc(MAX_WSECT * SECT), *rbuf = malloc(MAX_WSECT * SECT), *exp = malloc(SECT);

	if (w->idx == NWRITERS - 1)
		nreg = u->nsec - first;
	for (uint64_t k = 0; k < u->ops_per_writer && !atomic_load(&u->stop); k++) {
		uint64_t n = rng_range(&g, 1, rng_range(&g, 0, 3) ? 8 : MAX_WSECT);
		uint64_t s0, id;
		unsigned what = (unsigned)rng_range(&g, 0, 99);
		int ret;

		if (n > nreg)
			n = nreg;
		s0 = first + rng_range(&g, 0, nreg - n);
		if (what < 8) {
			/* Read back own sectors: no crash yet, so exact. */
			ret = wcache_read(u->r.wc, rbuf, n * SECT, s0 * SECT);
			if (ret) {
				atomic_fetch_add(&u->errors, 1);
				break;
			}
			for (uint64_t s = s0; s < s0 + n; s++) {
				struct sector_hist *h = &u->h[s];

				sect_data(h->v[h->n - 1].id, s, u->r.image, exp);
				if (memcmp(exp, rbuf + (s - s0) * SECT, SECT))
					atomic_fetch_add(&u->bad_reads, 1);
			}
			continue;
		}
		id = atomic_fetch_add(&u->next_id, 1) + 1;
		for (uint64_t s = s0; s < s0 + n; s++)
			sect_data(id, s, NULL, buf + (s - s0) * SECT);
		{
			struct version v = { .id = id, .fua = what >= 90 };

			v.t_start = tick(u);
			ret = wcache_write(u->r.wc, buf, n * SECT, s0 * SECT, v.fua ? WC_FUA : 0);
			v.t_end = tick(u);
			v.acked = ret == 0;
			for (uint64_t s = s0; s < s0 + n; s++)
				hist_add(&u->h[s], &v);
		}
		if (ret) {
			int zero = 0;

			atomic_compare_exchange_strong(&u->first_err, &zero, ret);
			if (ret == -ETIMEDOUT)
				atomic_fetch_add(&u->timeouts, 1);
			atomic_fetch_add(&u->errors, 1);
			break;
		}
	}
	free(buf);
	free(rbuf);
	free(exp);
	return NULL;
}

static void record_flush(struct run *u, uint64_t t0, uint64_t t1)
{
	pthread_mutex_lock(&u->flock);
	if (u->nr_flushes == u->max_flushes) {
		u->max_flushes = u->max_flushes ? 2 * u->max_flushes : 64;
		u->flushes = realloc(u->flushes, u->max_flushes * sizeof(*u->flushes));
		if (!u->flushes)
			abort();
	}
	u->flushes[u->nr_flushes++] = (struct flush_rec){ t0, t1 };
	pthread_mutex_unlock(&u->flock);
}

static void *flusher_main(void *arg)
{
	struct run *u = arg;
	struct rng g = { u->seed * 977 };

	while (!atomic_load(&u->stop)) {
		struct timespec ts = { 0, (long)rng_range(&g, 0, 400) * 1000 };
		uint64_t t0, t1;
		int ret;

		nanosleep(&ts, NULL);
		t0 = tick(u);
		ret = rng_range(&g, 0, 9) ? wcache_flush(u->r.wc) : wcache_message(u->r.wc, "flush");
		t1 = tick(u);
		if (ret)
			break;
		record_flush(u, t0, t1);
	}
	return NULL;
}

/* The oldest version index of sector s that may survive. */
static uint32_t durable_floor(const struct run *u, const struct sector_hist *h)
{
	uint64_t fmax = 0;
	uint32_t d = 0;

	for (uint64_t i = 0; i < u->nr_flushes; i++)
		if (u->flushes[i].t_start > fmax)
			fmax = u->flushes[i].t_start;
	for (uint32_t i = 1; i < h->n; i++) {
		const struct version *v = &h->v[i];

		if (v->acked && (v->fua || v->t_end < fmax))
			d = i;
	}
	return d;
}

static const struct rig_cfg cfgs[] = {
	{ 4096, 512 * 1024, 4096 + 40 * 4096,
	  "high_watermark 50 low_watermark 25 autocommit_blocks 16 autocommit_time 5 pause_writeback 0" },
	{ 512, 160 * 1024, 1024 + 60 * 512,
	  "high_watermark 30 low_watermark 10 autocommit_blocks 8 autocommit_time 3 pause_writeback 0" },
};

static struct {
	uint64_t runs, failures, cut_reached, bad_reads, timeouts;
} st;

static uint64_t async_seed;	/* WC_CRASH_ASYNC */

/* One run: returns the op count reached (for choosing cut points). */
static uint64_t one_run(const struct rig_cfg *rc, uint64_t seed, uint64_t cut_at, int mode,
			uint64_t ops_per_writer)
{
	struct run *u = calloc(1, sizeof(*u));
	struct writer w[NWRITERS];
	pthread_t fl;
	uint8_t *img, *exp;
	uint64_t ops;
	int ret;

	if (!u || rig_init(&u->r, rc, seed))
		abort();
	if (async_seed)
		rig_set_async(&u->r, async_seed ^ seed);
	u->r.full_wait_ms = 500;
	u->seed = seed;
	u->nsec = rc->origin_bytes / SECT;
	u->region = u->nsec / NWRITERS - 3;	/* not block aligned: writers share blocks */
	u->ops_per_writer = ops_per_writer;
	u->h = calloc(u->nsec, sizeof(*u->h));
	img = malloc(rc->origin_bytes);
	exp = malloc(SECT);
	pthread_mutex_init(&u->flock, NULL);
	for (uint64_t s = 0; s < u->nsec; s++)
		hist_add(&u->h[s], &(struct version){ .id = 0, .acked = true });
	st.runs++;
	if (rig_open(&u->r))
		abort();
	pc_arm_cut(&u->r.pc, cut_at, false);

	pthread_create(&fl, NULL, flusher_main, u);
	for (unsigned i = 0; i < NWRITERS; i++) {
		w[i] = (struct writer){ .u = u, .idx = i };
		pthread_create(&w[i].th, NULL, writer_main, &w[i]);
	}
	for (unsigned i = 0; i < NWRITERS; i++)
		pthread_join(w[i].th, NULL);
	atomic_store(&u->stop, true);
	pthread_join(fl, NULL);
	if (atomic_load(&u->bad_reads)) {
		st.failures++;
		st.bad_reads += atomic_load(&u->bad_reads);
		fprintf(stderr, "FAIL seed %" PRIu64 " bs %u: %" PRIu64 " reads of a writer's own sectors "
			"returned wrong data before any crash\n", seed, rc->bs,
			(uint64_t)atomic_load(&u->bad_reads));
	}
	if (!cut_at && getenv("WC_CRASH_VERBOSE")) {
		struct wc_stats ws;

		wcache_get_stats(u->r.wc, &ws);
		fprintf(stderr, "  bs %u: writes %" PRIu64 " around %" PRIu64 " rmw %" PRIu64 " commits %"
			PRIu64 " wb blocks %" PRIu64 " full waits %" PRIu64 " flushes %" PRIu64
			" hits committed %" PRIu64 " uncommitted %" PRIu64 "\n", rc->bs, ws.writes,
			ws.writes_around, ws.rmw_writes, ws.commits, ws.writeback_blocks_done,
			ws.full_waits, u->nr_flushes, ws.write_hits_committed, ws.write_hits_uncommitted);
	}
	{
		uint64_t t0 = tick(u);

		ret = rig_close(&u->r);
		if (!ret)
			record_flush(u, t0, tick(u));
	}
	ops = u->r.pc.ops;
	if (cut_at && u->r.pc.cut)
		st.cut_reached++;
	if (!u->r.pc.refused && atomic_load(&u->timeouts)) {
		/* A loaded machine (sanitizers) may outwait full_wait_ms: liveness, not data. */
		st.timeouts += atomic_load(&u->timeouts);
	} else if (!u->r.pc.refused && (ret || atomic_load(&u->errors))) {
		st.failures++;
		fprintf(stderr, "FAIL seed %" PRIu64 " bs %u: errors without a fault: close %d, first "
			"error %d\n", seed, rc->bs, ret, atomic_load(&u->first_err));
	}
	rig_crash(&u->r, (enum fault_crash_mode)mode, seed ^ cut_at);
	ret = rig_open(&u->r);
	if (ret) {
		st.failures++;
		fprintf(stderr, "FAIL seed %" PRIu64 " bs %u cut %" PRIu64 " mode %d: reopen: %s\n", seed,
			rc->bs, cut_at, mode, wcache_last_error());
		goto out;
	}
	if (rig_read_all(&u->r, img))
		abort();
	for (uint64_t s = 0; s < u->nsec; s++) {
		const struct sector_hist *h = &u->h[s];
		uint32_t d = durable_floor(u, h), i;

		for (i = d; i < h->n; i++) {
			sect_data(h->v[i].id, s, u->r.image, exp);
			if (!memcmp(exp, img + s * SECT, SECT))
				break;
		}
		if (i == h->n) {
			int older = -1;

			for (uint32_t k = 0; k < d && older < 0; k++) {
				sect_data(h->v[k].id, s, u->r.image, exp);
				if (!memcmp(exp, img + s * SECT, SECT))
					older = (int)k;
			}
			st.failures++;
			fprintf(stderr, "FAIL seed %" PRIu64 " bs %u cut %" PRIu64 " mode %d: sector %" PRIu64
				" (block %" PRIu64 "): %u versions, durable floor %u (acked t %" PRIu64 "-%"
				PRIu64 "%s), found %s %d\n", seed, rc->bs, cut_at, mode, s,
				s * SECT / rc->bs, h->n, d, h->v[d].t_start, h->v[d].t_end,
				h->v[d].fua ? " FUA" : "", older >= 0 ? "older version" : "unknown data",
				older);
			break;
		}
	}
	rig_close(&u->r);
out:
	for (uint64_t s = 0; s < u->nsec; s++)
		free(u->h[s].v);
	free(u->h);
	free(u->flushes);
	free(img);
	free(exp);
	pthread_mutex_destroy(&u->flock);
	rig_fini(&u->r);
	free(u);
	return ops;
}

int main(void)
{
	uint64_t iters = env_u64("WC_CRASH_ITERS", 1);
	uint64_t seed = env_u64("WC_CRASH_SEED", 0);
	uint64_t runs = 60 * iters;
	struct timespec t0, t1;

	wcache_set_logger(quiet_logger, NULL);
	async_seed = env_u64("WC_CRASH_ASYNC", 0);
	if (!seed) {
		clock_gettime(CLOCK_REALTIME, &t0);
		seed = ((uint64_t)t0.tv_sec * 1000003u ^ (uint64_t)t0.tv_nsec) % 1000000007u;
	}
	printf("test_crash_concurrent: seed %" PRIu64 " (replay: WC_CRASH_SEED=%" PRIu64
	       " WC_CRASH_ASYNC=%" PRIu64 ")\n", seed, seed, async_seed);
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t c = 0; c < sizeof(cfgs) / sizeof(cfgs[0]); c++) {
		uint64_t total = one_run(&cfgs[c], seed + c, 0, FAULT_DROP_ALL, 150);
		struct rng g = { seed * 3 + c };

		for (uint64_t i = 0; i < runs; i++) {
			uint64_t cut = rng_range(&g, 1, total + total / 4);

			one_run(&cfgs[c], seed + c + 1000 * (i + 1), cut, (int)(i % 4), 150);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("test_crash_concurrent: seed %" PRIu64 ": %" PRIu64 " runs (%" PRIu64
	       " power cuts reached), %" PRIu64 " failures, %" PRIu64 " writes timed out waiting "
	       "for space before any fault, %ld s\n", seed, st.runs, st.cut_reached, st.failures,
	       st.timeouts, (long)(t1.tv_sec - t0.tv_sec));
	return st.failures ? 1 : 0;
}
