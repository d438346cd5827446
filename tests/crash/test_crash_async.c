/* SPDX-License-Identifier: MIT */
/*
 * Crash points over the asynchronous paths. The power-cut wrapper runs in
 * asynchronous mode (crash_rig.h): every request goes to a fault device that
 * keeps it in flight and completes it in seeded random order, and an op is
 * numbered when it executes, so "power cut at op N" is still a point in one
 * total order; requests in flight at the cut fail when they come to execute.
 *
 * A scripted workload makes writeback (writeback_jobs D) keep D = 1, 8 and
 * 64 requests in flight on each device. A round: (a) D committed dirty
 * blocks at even origin blocks (one run, one cache read and one origin write
 * each), and some spare blocks; (b) the flush message, with both devices
 * held; (c) once the D cache reads are queued the cache is released and they
 * complete in random order; (d) once the D origin writes are queued, a third
 * of the batch's blocks are overwritten (whole, partially through a
 * read-modify-write of the copy being written back, or FUA) and committed;
 * (e) a writer overwrites the spares partially until it has taken the last
 * free blocks and waits for space, then the origin is released: its writes
 * complete in random order, ended runs are reaped (one origin flush, then the
 * frees and their metadata commit) and the frees hand the waiting writer the
 * blocks just freed, while new blocks are written and the overwritten ones
 * rewritten; (f) everything is written back. That is invariant 3: a block is
 * freed only after the origin flush covering it, and the free is durable
 * before the block is reused. Two rounds (depth 64: one, it has some 800
 * ops); from depth 8 the second round's batch is runs of 4 adjacent origin
 * blocks whose cache blocks are scattered (several reads per run, the run
 * failing if any of them fails), as far as the oldest-first selection takes
 * them. A count run checks with fault_max_inflight() that D was reached on
 * both devices; then power is cut at every op N of the run: DROP_ALL, plus
 * RANDOM_SUBSET (odd N) or TEAR (even N), KEEP_ALL every 16th, a second cut
 * during recovery every 8th; then recovery (still asynchronous) and the
 * per-512-byte-sector oracle, as in test_crash_points. Depth 64 is cut at
 * every op for the first seed, at every third for the next ones (a
 * different third each).
 *
 * Environment: WC_CRASH_SEED (replay; CI pins it), WC_CRASH_ITERS (seeds per
 * depth, default 3), WC_CRASH_DEPTH (only this depth), WC_CRASH_JOBS (cases
 * run at once, default 2: they mostly wait), WC_CRASH_POINT +
 * WC_CRASH_MODE + WC_CRASH_CSEED + WC_CRASH_EXTRA (one case, traced),
 * WC_CRASH_VERBOSE (engine messages). Completion order depends on timing for
 * requests not held, so op numbers vary a little from run to run.
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

#define BS 4096u
#define WAIT_MS 5000

static const unsigned depths[] = { 1, 8, 64 };

enum { EXTRA_NONE, EXTRA_CUT_RECOVERY };

struct tcase {
	unsigned depth;
	uint64_t seed;		/* workload data and choices, completion orders */
	uint64_t cut_at;	/* 0: no power cut */
	int mode;		/* fault_crash_mode */
	uint64_t cseed;
	int extra;
};

static const char *const mode_names[] = { "DROP_ALL", "KEEP_ALL", "RANDOM_SUBSET", "TEAR" };

/* Cases run on WC_CRASH_JOBS threads (they mostly wait for devices and timers). */
static pthread_mutex_t st_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint64_t cases, failures, printed, unreached, recov_cuts, format_cuts, timeouts;
	uint64_t space_timeouts;
} st;				/* st_lock */

static void st_add(uint64_t *counter)
{
	pthread_mutex_lock(&st_lock);
	(*counter)++;
	pthread_mutex_unlock(&st_lock);
}

static struct pc_trace *trace_buf;
#define TRACE_MAX (1u << 16)
static bool traced;

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Geometry of depth d: an origin of 4d + 16 blocks (slots, the even ones: 2d
 * + 8); a cache of the batch (d blocks), the spares (d / 2 + 3), the
 * overwrites of a third of the batch during its writeback, and 2 more, so
 * that the writes after them wait for the blocks the batch frees.
 */
static void make_cfg(unsigned d, struct rig_cfg *rc)
{
	memset(rc, 0, sizeof(*rc));
	rc->bs = BS;
	rc->origin_bytes = (4ull * d + 16) * BS;
	rc->cache_bytes = 4096 + (d + (d / 2 + 3) + (d / 3 + 1) + 2ull) * BS;	/* 4 KiB metadata */
	snprintf(rc->opts, sizeof(rc->opts),
		 "high_watermark 100 low_watermark 100 autocommit_time 3600000 "
		 "autocommit_blocks 1000000 pause_writeback 0 writeback_jobs %u", d);
}

static void describe(const struct tcase *tc)
{
	fprintf(stderr, "  replay: WC_CRASH_DEPTH=%u WC_CRASH_SEED=%" PRIu64 " WC_CRASH_POINT=%" PRIu64
		" WC_CRASH_MODE=%d WC_CRASH_CSEED=%" PRIu64 " WC_CRASH_EXTRA=%d\n", tc->depth, tc->seed,
		tc->cut_at, tc->mode, tc->cseed, tc->extra);
}

/* Count a failure; print it unless a dozen were printed. Returns whether it printed. */
static bool fail_print(const struct tcase *tc, const char *msg, const char *detail)
{
	bool print;

	pthread_mutex_lock(&st_lock);
	st.failures++;
	print = st.printed++ < 12 || traced;
	if (print) {
		fprintf(stderr, "FAIL [depth %u seed %" PRIu64 " cut %" PRIu64 " mode %s cseed %" PRIu64
			" extra %d]: %s%s%s\n", tc->depth, tc->seed, tc->cut_at, mode_names[tc->mode],
			tc->cseed, tc->extra, msg, detail ? ": " : "", detail ? detail : "");
		describe(tc);
	}
	pthread_mutex_unlock(&st_lock);
	return print;
}

static bool fail(const struct tcase *tc, const char *msg, const char *detail)
{
	fail_print(tc, msg, detail);
	return false;
}

/* ---------------- the workload ---------------- */

struct ctx {
	struct rig *r;
	struct model *m;
	unsigned depth;
	struct rng g;
	uint64_t dseed;
	uint8_t *buf;
	uint64_t nblk;		/* origin blocks */
	uint64_t *slots;	/* scratch: a shuffle of even origin blocks (nblk / 2 of them) */
	uint64_t *batch;	/* the depth blocks of a round's writeback batch */
	uint64_t errors;
	uint64_t space_timeouts;	/* writes that gave up waiting for space (-ETIMEDOUT) */
	int first_err;
	bool stop;		/* power cut and errors seen: the rest would only fail */
	bool timed_out;		/* a wait for the depth gave up without a power cut */
};

static void note(struct ctx *x, int ret)
{
	if (!ret)
		return;
	if (!x->errors++)
		x->first_err = ret;
	if (ret == -ETIMEDOUT)
		x->space_timeouts++;
	if (x->errors >= 2 && pc_is_cut(&x->r->pc))
		x->stop = true;
}

/* Write seeded data to [off, off + len), flags WC_FUA or 0, and tell the model. */
static void wr(struct ctx *x, uint64_t off, uint64_t len, unsigned flags)
{
	int ret;

	if (x->stop)
		return;
	rng_fill(x->dseed++, x->buf, len);
	ret = wcache_write(x->r->wc, x->buf, len, off, flags);
	model_write(x->m, off, len, x->buf, ret == 0);
	if (!ret && (flags & WC_FUA))
		model_fua(x->m, off, len, x->buf);
	note(x, ret);
}

/* A whole block, or (partial) an unaligned piece of it crossing sectors. */
static void wr_blk(struct ctx *x, uint64_t blk, bool partial, unsigned flags)
{
	uint64_t boff = 0, len = BS;

	if (partial) {
		boff = rng_range(&x->g, 1, BS - 700);
		len = rng_range(&x->g, 600, BS - boff);
	}
	wr(x, blk * BS + boff, len, flags);
}

static void fl(struct ctx *x)
{
	int ret;

	if (x->stop)
		return;
	ret = wcache_flush(x->r->wc);
	if (!ret)
		model_flush(x->m);
	note(x, ret);
}

/* Pick n distinct even blocks, from block first on, into x->slots[0..n). */
static void pick_slots(struct ctx *x, uint64_t n, uint64_t first)
{
	uint64_t nr = 0;

	for (uint64_t b = (first + 1) / 2 * 2; b < x->nblk; b += 2)
		x->slots[nr++] = b;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t j = i + rng_below(&x->g, nr - i), t = x->slots[i];

		x->slots[i] = x->slots[j];
		x->slots[j] = t;
	}
}

/*
 * Wait until dev has at least n requests in flight (they are held). False
 * at a power cut (they may never come) or after WAIT_MS.
 */
static bool wait_inflight(struct ctx *x, struct wc_dev *dev, unsigned n)
{
	uint64_t t0 = ms_now();

	while (fault_inflight(dev) < n) {
		if (pc_is_cut(&x->r->pc))
			return false;
		if (ms_now() - t0 > WAIT_MS) {
			x->timed_out = true;
			return false;
		}
		nanosleep(&(struct timespec){ 0, 50000 }, NULL);
	}
	return true;
}

struct flusher {
	pthread_t th;
	struct wcache *wc;
	int ret;
};

static void *flusher_main(void *arg)
{
	struct flusher *f = arg;

	f->ret = wcache_message(f->wc, "flush");
	return NULL;
}

/*
 * Writes on a thread of their own while the test holds the origin: partial
 * writes of committed blocks, each pass over them committed, so that each
 * needs a new block and, the free blocks gone, waits for space.
 */
struct writer {
	pthread_t th;
	struct ctx *x;		/* the writer alone uses it until joined */
	const uint64_t *slots;
	uint64_t nslots, n;
	atomic_bool done;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	for (uint64_t i = 0; i < w->n; i++) {
		wr_blk(w->x, w->slots[i % w->nslots], true, 0);
		if (i % w->nslots == w->nslots - 1)
			fl(w->x);
	}
	atomic_store(&w->done, true);
	return NULL;
}

static uint64_t full_waits(struct wcache *wc)
{
	struct wc_stats ws;

	wcache_get_stats(wc, &ws);
	return ws.full_waits;
}

/* Wait until a write waits for space (true), or the writer ended, or the power was cut. */
static bool wait_space_waiter(struct ctx *x, struct writer *w, uint64_t waits0)
{
	uint64_t t0 = ms_now();

	while (full_waits(x->r->wc) == waits0) {
		if (atomic_load(&w->done) || pc_is_cut(&x->r->pc))
			return false;
		if (ms_now() - t0 > WAIT_MS) {
			x->timed_out = true;
			return false;
		}
		nanosleep(&(struct timespec){ 0, 50000 }, NULL);
	}
	return true;
}

/*
 * A round; multi: the batch is D / 4 runs of 4 adjacent origin blocks whose
 * cache blocks are scattered (written 4 passes over the runs), so each run
 * has 4 cache reads in flight and one origin write of 4 blocks.
 */
static void one_round(struct ctx *x, bool multi)
{
	struct rig *r = x->r;
	unsigned d = x->depth, nruns = multi ? d / 4 : d;
	uint64_t nover = d / 3 + 1, nnew = d / 2 + 3;
	uint64_t *batch = x->batch, *spare = x->slots, *fresh = spare + nnew;
	struct flusher f = { .wc = r->wc };
	struct writer w = { .x = x, .slots = spare, .nslots = nnew, .n = nnew };
	bool held = false;
	int ret;

	if (x->stop)
		return;
	/*
	 * a. D committed dirty blocks: D runs of one block each (even blocks,
	 * none adjacent), or runs of 4 (blocks 5k..5k+3); then the spares (even
	 * blocks after those), committed too: written later, they are not in
	 * the oldest-first batch.
	 */
	if (multi) {
		pick_slots(x, 2 * nnew, 5 * nruns);
		for (unsigned i = 0; i < d; i++)
			batch[i] = 5 * (i % nruns) + i / nruns;
	} else {
		pick_slots(x, d + 2 * nnew, 0);
		memcpy(batch, x->slots, d * sizeof(*batch));
		spare += d;
		fresh += d;
		w.slots = spare;
	}
	for (unsigned i = 0; i < d; i++)
		wr_blk(x, batch[i], i % 5 == 4, 0);
	for (unsigned i = 0; i < nnew; i++)
		wr_blk(x, spare[i], false, 0);
	fl(x);
	if (x->stop)
		return;
	/*
	 * b. Writeback of those blocks: the flush message. Its own commit finds
	 * nothing to write, so the held devices see only the D cache reads of
	 * the batch (writeback_jobs D is the batch size).
	 */
	fault_async_hold(r->cache, true);
	fault_async_hold(r->origin, true);
	if (pthread_create(&f.th, NULL, flusher_main, &f))
		abort();
	/*
	 * c. All D reads in flight, then completed in random order; the last
	 * read of a run queues its origin write.
	 */
	if (wait_inflight(x, r->cache, d)) {
		fault_async_hold(r->cache, false);
		/*
		 * d. The origin writes in flight: overwrite a third of the blocks
		 * (into free blocks: the cache has 2 more) and commit.
		 */
		held = wait_inflight(x, r->origin, nruns);
		if (held) {
			for (uint64_t i = 0; i < nover; i++) {
				uint64_t k = rng_below(&x->g, 3);

				wr_blk(x, batch[i], k == 1, k == 2 ? WC_FUA : 0);
			}
			fl(x);
		}
	}
	fault_async_hold(r->cache, false);
	/*
	 * e. Partial overwrites of the spares take the last 2 free blocks and
	 * then wait for space; released, the origin writes complete in random
	 * order and the ended runs are reaped (origin flush, frees, metadata
	 * commit), the frees handing the waiting write its block: most of the
	 * batch's blocks hold the only copy of their sector until reused.
	 */
	if (held && !x->stop) {
		uint64_t waits0 = full_waits(r->wc);

		if (pthread_create(&w.th, NULL, writer_main, &w))
			abort();
		wait_space_waiter(x, &w, waits0);
		fault_async_hold(r->origin, false);
		pthread_join(w.th, NULL);
	}
	fault_async_hold(r->origin, false);
	/* New blocks, and the overwritten ones again (in place, or partially into a new block). */
	for (uint64_t i = 0; i < nnew || i < nover; i++) {
		if (i < nnew)
			wr_blk(x, fresh[i], i % 4 == 3, 0);
		if (i < nover)
			wr_blk(x, batch[i], i % 4 == 1, 0);
	}
	fl(x);
	pthread_join(f.th, NULL);
	note(x, f.ret);
	if (x->stop)
		return;
	/* f. Write everything back, nothing held or concurrent: the next round starts clean. */
	ret = wcache_message(r->wc, "flush");
	if (!ret)
		model_flush(x->m);
	note(x, ret);
}

/*
 * Two rounds, the second one's batch in reused blocks, of runs of 4 blocks
 * from depth 8 on. Depth 64: one round (it has some 800 ops).
 */
static void run_script(struct ctx *x)
{
	one_round(x, false);
	if (x->depth < 64)
		one_round(x, x->depth >= 8);
}

/* ---------------- one case ---------------- */

static bool format_interrupted(struct rig *r)
{
	uint8_t sb[64];

	if (dev_pread(r->cache, sb, sizeof(sb), 0))
		return false;
	return !sb[0] && !sb[1] && !sb[2] && !sb[3] && sb[4] == 1 && !sb[5] && !sb[6] && !sb[7];
}

/* Reopen after the crash and compare every sector with the oracle. */
static bool verify(const struct tcase *tc, struct rig *r, struct model *m, uint8_t *img,
		   bool formatted)
{
	char line[256];
	int64_t bad;
	int ret;

	ret = rig_open(r);
	if (ret == -EINVAL && !formatted && format_interrupted(r)) {
		/* A format cut after its entries were durable (see test_crash_points). */
		static const uint8_t zero[SECT];

		st_add(&st.format_cuts);
		if (dev_pwrite(r->cache, zero, SECT, 0) || dev_flush(r->cache))
			abort();
		ret = rig_open(r);
	}
	if (ret) {
		snprintf(line, sizeof(line), "reopen failed: %s (%s)", strerror(-ret),
			 wcache_last_error());
		return fail(tc, line, NULL);
	}
	ret = rig_read_all(r, img);
	if (ret) {
		snprintf(line, sizeof(line), "read after recovery failed: %s", strerror(-ret));
		return fail(tc, line, NULL);
	}
	bad = model_check_crash(m, img);
	if (bad >= 0) {
		snprintf(line, sizeof(line), "sector %" PRId64 " (block %" PRId64 ") holds data that "
			 "was never durable or written later", bad, bad * (int64_t)SECT / BS);
		if (fail_print(tc, line, NULL))
			model_describe_sector(m, (uint64_t)bad, img + bad * SECT);
		return false;
	}
	if (wcache_status(r->wc, line, sizeof(line)) > 0 && line[0] != '0')
		return fail(tc, "status reports an error right after recovery", line);
	ret = rig_close(r);
	if (ret) {
		snprintf(line, sizeof(line), "close after recovery failed: %d (%s)", ret, quiet_last());
		return fail(tc, line, NULL);
	}
	return true;
}

struct outcome {
	uint64_t ops;
	unsigned max_cache, max_origin;	/* fault_max_inflight */
};

static bool run_case(const struct tcase *tc, struct outcome *out)
{
	struct rig_cfg rc;
	struct rig r;
	struct model m;
	struct ctx x;
	uint8_t *img;
	bool ok = false, formatted;
	char msg[256];
	int ret, cret;
	uint64_t ops, refused;

	make_cfg(tc->depth, &rc);
	img = malloc(rc.origin_bytes);
	if (!img || rig_init(&r, &rc, tc->seed))
		abort();
	rig_set_async(&r, tc->seed * 3 + tc->depth);
	if (model_init(&m, r.image, rc.origin_bytes))
		abort();
	x = (struct ctx){ .r = &r, .m = &m, .depth = tc->depth, .g = { tc->seed * 1000003 + tc->depth },
			  .dseed = tc->seed * 7777 + tc->depth * 100000, .nblk = rc.origin_bytes / BS };
	x.buf = malloc(BS);
	x.slots = malloc(sizeof(*x.slots) * x.nblk);
	x.batch = malloc(sizeof(*x.batch) * tc->depth);
	if (!x.buf || !x.slots || !x.batch)
		abort();
	/*
	 * Writes wait for the blocks writeback frees; after the cut, for a
	 * writeback that keeps failing: short then, or each point takes long.
	 * A cut run whose only errors, before any cut, are such timeouts (a
	 * loaded machine) is counted, not failed; the count run waits 5 s.
	 */
	r.full_wait_ms = tc->cut_at ? 250 : 5000;
	if (traced) {
		r.pc.trace = trace_buf;
		r.pc.trace_max = TRACE_MAX;
	}
	st_add(&st.cases);
	r.pc.cut_at = tc->cut_at;

	ret = rig_open(&r);
	formatted = ret == 0;
	if (ret && !pc_is_cut(&r.pc)) {
		snprintf(msg, sizeof(msg), "first open failed without a power cut: %s",
			 wcache_last_error());
		fail(tc, msg, NULL);
		goto out;
	}
	if (formatted)
		run_script(&x);
	else
		x.errors++;
	if (x.timed_out) {
		st_add(&st.timeouts);
		fail(tc, "the writeback batch never had the depth in flight", NULL);
		goto out;
	}
	if (out) {
		out->max_cache = fault_max_inflight(r.cache);
		out->max_origin = fault_max_inflight(r.origin);
	}
	if (traced && r.wc) {
		struct wc_stats ws;

		wcache_get_stats(r.wc, &ws);
		fprintf(stderr, "  stats: %" PRIu64 " blocks, %" PRIu64 " full waits, %" PRIu64
			" writeback runs, %" PRIu64 " commits, %" PRIu64 " rmw writes\n", ws.n_blocks,
			ws.full_waits, ws.writeback_runs, ws.commits, ws.rmw_writes);
	}
	cret = rig_close(&r);
	pthread_mutex_lock(&r.pc.lock);
	ops = r.pc.ops;
	refused = r.pc.refused;
	pthread_mutex_unlock(&r.pc.lock);
	if (out)
		out->ops = ops;
	if (traced) {
		/* A point past the end: the whole run. */
		uint64_t at = tc->cut_at <= ops ? tc->cut_at : 0;

		fprintf(stderr, "  run: %" PRIu64 " ops, %" PRIu64 " errors (first %d), close %d; "
			"ops around the cut:\n", ops, x.errors, x.first_err, cret);
		pcut_print_trace(&r.pc, at > 80 ? at - 80 : 1, at ? at + 3 : ops);
	}
	if (!refused && tc->cut_at && x.errors && x.errors == x.space_timeouts && !cret) {
		/* Liveness only: full_wait_ms is short in the cut runs (see above). */
		st_add(&st.space_timeouts);
	} else if (!refused && (x.errors || cret)) {
		snprintf(msg, sizeof(msg), "error without a power cut: %d, close %d (%s)", x.first_err,
			 cret, quiet_last());
		fail(tc, msg, NULL);
		goto out;
	}
	if (tc->cut_at && ops < tc->cut_at)
		st_add(&st.unreached);
	rig_crash(&r, (enum fault_crash_mode)tc->mode, tc->cseed);
	if (tc->extra == EXTRA_CUT_RECOVERY) {
		/* A second power cut while recovery reads and repairs the metadata. */
		st_add(&st.recov_cuts);
		r.pc.cut_at = 1 + tc->cseed % 16;
		if (!rig_open(&r)) {
			rig_read_all(&r, img);
			rig_close(&r);
		}
		rig_crash(&r, (enum fault_crash_mode)((tc->cseed >> 8) % 4), tc->cseed + 1);
	}
	ok = verify(tc, &r, &m, img, formatted);
out:
	r.pc.trace = NULL;
	rig_fini(&r);
	model_free(&m);
	free(x.buf);
	free(x.slots);
	free(x.batch);
	free(img);
	return ok;
}

/* ---------------- the loops ---------------- */

/* The cases of cut point n: DROP_ALL, a reordering crash, every 16th KEEP_ALL. */
static void run_point(unsigned d, uint64_t seed, uint64_t n)
{
	struct tcase tc = { .depth = d, .seed = seed, .cut_at = n, .mode = FAULT_DROP_ALL,
			    .cseed = seed * 7919 + n, .extra = n % 8 == 3 ? EXTRA_CUT_RECOVERY : 0 };

	run_case(&tc, NULL);
	tc.extra = EXTRA_NONE;
	tc.mode = n % 2 ? FAULT_RANDOM_SUBSET : FAULT_TEAR;
	tc.cseed = seed * 31 + n * 1000;
	run_case(&tc, NULL);
	if (n % 16 == 0) {
		tc.mode = FAULT_KEEP_ALL;
		run_case(&tc, NULL);
	}
}

struct pool {
	pthread_mutex_t lock;
	unsigned depth;
	uint64_t seed, next, last, stride;	/* points next, next + stride, ... <= last */
};

static void *worker_main(void *arg)
{
	struct pool *p = arg;

	for (;;) {
		uint64_t n;

		pthread_mutex_lock(&p->lock);
		n = p->next;
		p->next += p->stride;
		pthread_mutex_unlock(&p->lock);
		if (n > p->last)
			break;
		run_point(p->depth, p->seed, n);
	}
	return NULL;
}

/*
 * Every cut point 1..ops+1 of a count run (stride 1), or every stride-th from
 * first, on jobs threads.
 */
static void run_depth(unsigned d, uint64_t seed, uint64_t first, uint64_t stride, unsigned jobs)
{
	struct tcase tc = { .depth = d, .seed = seed, .mode = FAULT_DROP_ALL, .cseed = seed };
	uint64_t t0 = ms_now(), c0 = st.cases, f0 = st.failures, u0 = st.unreached;
	struct outcome o = { 0 }, o2 = { 0 };
	struct pool p = { .depth = d, .seed = seed, .next = first, .stride = stride };
	pthread_t th[16];

	/* Count run (also a crash after a clean close) and the depth reached. */
	if (!run_case(&tc, &o))
		return;
	if (o.max_cache < d || o.max_origin < d) {
		char msg[160];

		snprintf(msg, sizeof(msg), "requests in flight reached %u on the cache and %u on the "
			 "origin, wanted %u on both", o.max_cache, o.max_origin, d);
		fail(&tc, msg, NULL);
		return;
	}
	p.last = o.ops + 1;
	pthread_mutex_init(&p.lock, NULL);
	for (unsigned i = 0; i < jobs; i++)
		if (pthread_create(&th[i], NULL, worker_main, &p))
			abort();
	for (unsigned i = 0; i < jobs; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&p.lock);
	tc = (struct tcase){ .depth = d, .seed = seed, .mode = FAULT_RANDOM_SUBSET, .cseed = seed };
	run_case(&tc, &o2);
	printf("  depth %2u seed %-11" PRIu64 " in flight: cache %2u origin %2u  ops %4" PRIu64
	       "/%4" PRIu64 "  points %4" PRIu64 " (every %" PRIu64 ")  cases %5" PRIu64
	       "  unreached %3" PRIu64 "  failures %" PRIu64 "  %" PRIu64 " ms\n", d, seed,
	       o.max_cache, o.max_origin, o.ops, o2.ops, (o.ops + 1 - first) / stride + 1, stride,
	       st.cases - c0, st.unreached - u0, st.failures - f0, ms_now() - t0);
	fflush(stdout);
}

int main(void)
{
	uint64_t seed = env_u64("WC_CRASH_SEED", 0);
	uint64_t iters = env_u64("WC_CRASH_ITERS", 3);
	uint64_t only = env_u64("WC_CRASH_DEPTH", 0);
	uint64_t point = env_u64("WC_CRASH_POINT", 0);
	uint64_t jobs = env_u64("WC_CRASH_JOBS", 2);
	uint64_t t0 = ms_now();

	wcache_set_logger(quiet_logger, NULL);
	if (!seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec) % 1000000007u;
	}
	printf("test_crash_async: seed %" PRIu64 " iters %" PRIu64 " (replay: WC_CRASH_SEED=%" PRIu64
	       ")\n", seed, iters, seed);
	fflush(stdout);
	trace_buf = calloc(TRACE_MAX, sizeof(*trace_buf));
	if (!trace_buf)
		return 1;

	if (point) {
		/* Replay one case with the op trace. */
		struct tcase tc = {
			.depth = only ? (unsigned)only : 8, .seed = seed, .cut_at = point,
			.mode = (int)env_u64("WC_CRASH_MODE", 0), .cseed = env_u64("WC_CRASH_CSEED", 1),
			.extra = (int)env_u64("WC_CRASH_EXTRA", 0),
		};
		bool ok;

		traced = true;
		ok = run_case(&tc, NULL);
		printf("depth %u point %" PRIu64 ": %s\n", tc.depth, point, ok ? "ok" : "FAILED");
		return ok ? 0 : 1;
	}
	for (uint64_t it = 0; it < iters; it++) {
		for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
			if (only && only != depths[i])
				continue;
			/*
			 * Depth 64 has some 1100 ops: every one for the first seed,
			 * every third for the others (a different third each).
			 */
			uint64_t stride = depths[i] >= 64 && it ? 3 : 1;

			run_depth(depths[i], seed + it, 1 + it % stride, stride,
				  jobs < 1 ? 1 : jobs > 16 ? 16 : (unsigned)jobs);
		}
	}
	printf("test_crash_async: seed %" PRIu64 ": %" PRIu64 " crash cases checked (%" PRIu64
	       " with a power cut during recovery), %" PRIu64 " failures, %" PRIu64
	       " cut points not reached (op count varied), %" PRIu64 " interrupted formats re-zeroed, "
	       "%" PRIu64 " runs with writes timed out waiting for space before the cut, %" PRIu64
	       " s\n", seed, st.cases, st.recov_cuts, st.failures, st.unreached, st.format_cuts,
	       st.space_timeouts, (ms_now() - t0) / 1000);
	free(trace_buf);
	return st.failures ? 1 : 0;
}
