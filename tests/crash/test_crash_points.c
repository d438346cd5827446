/* SPDX-License-Identifier: MIT */
/*
 * Systematic crash points: a seeded single-threaded workload (aligned and
 * unaligned writes, overwrites of committed blocks, flushes, FUA writes,
 * write-zeroes, discards, writeback via the flush message, reopen) is run
 * once to count the device operations, then rerun from scratch with the
 * power cut at every global op N (both devices at once), each followed by a
 * DROP_ALL / RANDOM_SUBSET / TEAR / KEEP_ALL crash, recovery and the
 * per-sector oracle. Also: every write failing from the N-th on, and a
 * single transient failure of op N. Some points add a second power cut during
 * recovery or a second workload and crash after recovery.
 *
 * Environment: WC_CRASH_SEED (replay), WC_CRASH_ITERS (scale, default 1),
 * WC_CRASH_SCENARIO (only this one), WC_CRASH_POINT + WC_CRASH_MODE (one
 * point, traced), WC_CRASH_VERBOSE (engine messages), WC_CRASH_ASYNC=S
 * (asynchronous devices, completions reordered from seed S + the cut point;
 * op numbers then vary from run to run, see test_crash_async for depth).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crash_rig.h"

struct scenario {
	const char *name;
	struct rig_cfg rc;
	uint64_t nsteps;
	uint64_t prefill;	/* blocks written and committed before the run (not crash-tested) */
};

/*
 * det*: the cache holds the whole origin, autocommit and watermark writeback
 * are off, so the op sequence is (nearly) deterministic; writeback happens
 * through the flush message. pressure*: a small cache with low watermarks,
 * writeback and write-around race with the workload (op numbers vary a little
 * from run to run).
 */
static const struct scenario scenarios[] = {
	{ "det4k", { 4096, 263680, 4096 + 80 * 4096,
		     "high_watermark 100 low_watermark 100 autocommit_time 3600000 "
		     "autocommit_blocks 1000000 pause_writeback 0" }, 70, 0 },
	/*
	 * 320 blocks, the first 256 prefilled with committed dirty data: new
	 * entries land in the second 4 KiB metadata granule.
	 */
	{ "det512", { 512, 163840, 5120 + 320 * 512,
		      "high_watermark 100 low_watermark 100 autocommit_time 3600000 "
		      "autocommit_blocks 1000000 pause_writeback 0" }, 70, 256 },
	{ "pressure4k", { 4096, 263680, 4096 + 20 * 4096,
			  "high_watermark 50 low_watermark 20 autocommit_time 3600000 "
			  "pause_writeback 0 writeback_jobs 6" }, 60, 0 },
	/* The superblock 5 sectors into the cache device. */
	{ "pressure512", { 512, 98816, 5 * 512 + 512 + 24 * 512,
			   "start_sector 5 high_watermark 40 low_watermark 10 autocommit_blocks 6 "
			   "pause_writeback 0" }, 60, 0 },
	/*
	 * pmem mode: the cache device loses unflushed writes per 64-byte line and
	 * tears them per 8-byte word (FAULT_PMEM); committed blocks must never be
	 * written over in place, or a torn overwrite would show up as garbage.
	 */
	{ "pmem4k", { 4096, 263680, 4096 + 80 * 4096,
		      "mode p high_watermark 100 low_watermark 100 autocommit_time 3600000 "
		      "autocommit_blocks 1000000" }, 70, 0 },
	{ "pmem512", { 512, 163840, 5120 + 320 * 512,
		       "mode p high_watermark 100 low_watermark 100 autocommit_time 3600000 "
		       "autocommit_blocks 1000000" }, 70, 256 },
	/* Kernel pmem defaults (autocommit_blocks 64 is never reached here; 6 is). */
	{ "pmempressure4k", { 4096, 263680, 4096 + 20 * 4096,
			      "mode p high_watermark 50 low_watermark 20 autocommit_time 3600000 "
			      "autocommit_blocks 6 writeback_jobs 6" }, 60, 0 },
};
static const struct wl_cfg base_wl = {
	.nsteps = 0,
	.pct = { [S_WRITE] = 40, [S_WRITE_FUA] = 6, [S_ZEROES] = 4, [S_FLUSH] = 12, [S_DISCARD] = 5,
		 [S_READ] = 10, [S_MSG_FLUSH] = 3, [S_REOPEN] = 2, [S_MSG_OTHER] = 2 },
};

enum { EXTRA_NONE, EXTRA_CUT_RECOVERY, EXTRA_PHASE2 };

struct tcase {
	uint64_t cut_at, fail_writes_from, fail_op;
	int mode;		/* fault_crash_mode, or -1: no power cut (devices keep every write) */
	uint64_t cseed;
	int extra;
};

static const char *const mode_names[] = { "DROP_ALL", "KEEP_ALL", "RANDOM_SUBSET", "TEAR" };

static struct {
	uint64_t points, failures, printed, recov_cuts, phase2, silent_faults, max_step_ns;
	uint64_t unreached, format_cuts, timeouts;
} st;

static uint64_t async_seed;	/* WC_CRASH_ASYNC: asynchronous devices, completion order seed */
static struct pc_trace *trace_buf;
#define TRACE_MAX (1u << 16)
static bool traced;

static void describe(const struct scenario *sc, uint64_t seed, const struct tcase *tc)
{
	fprintf(stderr, "  replay: WC_CRASH_SCENARIO=%s WC_CRASH_SEED=%" PRIu64, sc->name, seed);
	if (async_seed)
		fprintf(stderr, " WC_CRASH_ASYNC=%" PRIu64, async_seed);
	if (tc->cut_at)
		fprintf(stderr, " WC_CRASH_POINT=%" PRIu64, tc->cut_at);
	if (tc->fail_writes_from)
		fprintf(stderr, " WC_CRASH_FAILW=%" PRIu64, tc->fail_writes_from);
	if (tc->fail_op)
		fprintf(stderr, " WC_CRASH_FAILOP=%" PRIu64, tc->fail_op);
	fprintf(stderr, " WC_CRASH_MODE=%d WC_CRASH_CSEED=%" PRIu64 " WC_CRASH_EXTRA=%d\n", tc->mode,
		tc->cseed, tc->extra);
}

static bool fail(const struct scenario *sc, uint64_t seed, const struct tcase *tc,
		 const struct rig *r, const char *fmt, const char *detail)
{
	st.failures++;
	if (st.printed++ >= 12 && !traced)
		return false;
	fprintf(stderr, "FAIL [%s seed %" PRIu64 " cut %" PRIu64 " failw %" PRIu64 " failop %" PRIu64
		" mode %s cseed %" PRIu64 " extra %d]: %s%s%s\n", sc->name, seed, tc->cut_at,
		tc->fail_writes_from, tc->fail_op, tc->mode < 0 ? "none" : mode_names[tc->mode],
		tc->cseed, tc->extra, fmt, detail ? ": " : "", detail ? detail : "");
	(void)r;
	describe(sc, seed, tc);
	return false;
}

/* Byte offset of the superblock (start_sector in the options). */
static uint64_t sb_base(const struct rig *r)
{
	const char *p = strstr(r->rc.opts, "start_sector ");

	return p ? strtoull(p + 13, NULL, 10) * 512 : 0;
}

static bool format_interrupted(struct rig *r)
{
	uint8_t sb[64];

	if (dev_pread(r->cache, sb, sizeof(sb), sb_base(r)))
		return false;
	return !sb[0] && !sb[1] && !sb[2] && !sb[3] && sb[4] == 1 && !sb[5] && !sb[6] && !sb[7];
}

/* Reopen after the crash and compare every sector with the oracle. */
static bool verify(const struct scenario *sc, uint64_t seed, const struct tcase *tc, struct rig *r,
		   struct model *m, uint8_t *img, bool formatted, const char *when)
{
	char line[256];
	int64_t bad;
	int ret;

	ret = rig_open(r);
	if (ret == -EINVAL && !formatted && format_interrupted(r)) {
		/*
		 * The first open never succeeded: a format cut after its entries
		 * were durable leaves magic 0, version 1, which the kernel refuses
		 * too (docs/format.md §7); the documented remedy is to zero the first sector.
		 */
		static const uint8_t zero[SECT];

		st.format_cuts++;
		if (dev_pwrite(r->cache, zero, SECT, sb_base(r)) || dev_flush(r->cache))
			abort();
		ret = rig_open(r);
	}
	if (ret) {
		snprintf(line, sizeof(line), "%s: reopen failed: %s (%s)", when, strerror(-ret),
			 wcache_last_error());
		return fail(sc, seed, tc, r, line, NULL);
	}
	ret = rig_read_all(r, img);
	if (ret) {
		snprintf(line, sizeof(line), "%s: read after recovery failed: %s", when, strerror(-ret));
		return fail(sc, seed, tc, r, line, NULL);
	}
	bad = model_check_crash(m, img);
	if (bad >= 0) {
		snprintf(line, sizeof(line), "%s: sector %" PRId64 " (byte %" PRId64 ", block %" PRId64
			 ") holds data that was never durable or written later", when, bad,
			 bad * (int64_t)SECT, bad * (int64_t)SECT / (int64_t)sc->rc.bs);
		fail(sc, seed, tc, r, line, NULL);
		if (st.printed <= 12 || traced)
			model_describe_sector(m, (uint64_t)bad, img + bad * SECT);
		return false;
	}
	if (wcache_status(r->wc, line, sizeof(line)) > 0 && line[0] != '0')
		return fail(sc, seed, tc, r, "status reports an error right after recovery", line);
	return true;
}

static uint64_t ms_since(const struct timespec *t0);

/* Write and commit the first n blocks (seeded data), then close; the image follows. */
static void prefill(struct rig *r, uint64_t n, uint64_t seed)
{
	uint32_t bs = r->rc.bs;
	uint8_t *buf;

	if (!n)
		return;
	buf = malloc(8 * bs);
	if (!buf || rig_open(r))
		abort();
	for (uint64_t b = 0; b < n; b += 8) {
		uint64_t k = n - b < 8 ? n - b : 8;

		rng_fill(seed * 77 + b, buf, k * bs);
		if (wcache_write(r->wc, buf, k * bs, b * bs, 0))
			abort();
		memcpy(r->image + b * bs, buf, k * bs);
	}
	if (rig_close(r))
		abort();
	pcut_reset(&r->pc);
	free(buf);
}

static bool run_case1(const struct scenario *sc, uint64_t seed, const struct step *steps,
		      uint64_t nsteps, const struct tcase *tc, uint64_t *ops_out);

static bool run_case(const struct scenario *sc, uint64_t seed, const struct step *steps,
		     uint64_t nsteps, const struct tcase *tc, uint64_t *ops_out)
{
	struct timespec t0;
	bool ok;
	uint64_t ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ok = run_case1(sc, seed, steps, nsteps, tc, ops_out);
	ms = ms_since(&t0);
	if (ms > 300 && getenv("WC_CRASH_SLOW")) {
		fprintf(stderr, "slow case (%" PRIu64 " ms): ", ms);
		describe(sc, seed, tc);
	}
	return ok;
}

static bool run_case1(const struct scenario *sc, uint64_t seed, const struct step *steps,
		      uint64_t nsteps, const struct tcase *tc, uint64_t *ops_out)
{
	struct rig r;
	struct model m;
	struct wl_result res;
	uint8_t *img = malloc(sc->rc.origin_bytes);
	bool ok = false, faulted, formatted;
	char msg[256];
	int ret, cret;

	if (!img || rig_init(&r, &sc->rc, seed))
		abort();
	if (async_seed)
		rig_set_async(&r, async_seed + tc->cut_at);
	prefill(&r, sc->prefill, seed);
	if (model_init(&m, r.image, sc->rc.origin_bytes))
		abort();
	/*
	 * After the power cut a write that needs a block waits for a writeback
	 * that keeps failing, until full_wait_ms: keep it short. Before the cut a
	 * loaded machine may rarely exceed it; that -ETIMEDOUT is counted, not
	 * failed (the write is then "attempted" for the oracle).
	 */
	r.full_wait_ms = 250;
	if (traced) {
		r.pc.trace = trace_buf;
		r.pc.trace_max = TRACE_MAX;
	}
	st.points++;
	r.pc.cut_at = tc->cut_at;
	r.pc.fail_writes_from = tc->fail_writes_from;
	r.pc.fail_op = tc->fail_op;

	ret = rig_open(&r);
	formatted = ret == 0;
	if (ret && !r.pc.refused) {
		snprintf(msg, sizeof(msg), "first open failed without a fault: %s", wcache_last_error());
		fail(sc, seed, tc, &r, msg, NULL);
		goto out;
	}
	wl_run(&r, &m, steps, nsteps, &res);
	if (!formatted)
		res.errors++;
	if (traced) {
		uint64_t at = tc->cut_at ? tc->cut_at : tc->fail_op;

		fprintf(stderr, "  workload: %" PRIu64 " ops, %" PRIu64 " errors (first at step %" PRIu64
			": %d); ops around the fault:\n", r.pc.ops, res.errors, res.first_err_step,
			res.first_err);
		if (at > r.pc.ops)
			at = 0;
		pcut_print_trace(&r.pc, at > 60 ? at - 60 : 1, at ? at + 3 : r.pc.ops);
	}
	if (res.max_step_ns > st.max_step_ns)
		st.max_step_ns = res.max_step_ns;
	if (res.bad_read_step >= 0) {
		snprintf(msg, sizeof(msg), "step %" PRId64 " (%s): read returned wrong data at byte %" PRId64,
			 res.bad_read_step, step_name(steps[res.bad_read_step].kind), res.bad_read_off);
		fail(sc, seed, tc, &r, msg, NULL);
		goto out;
	}
	if (res.max_step_ns > 1500000000ull) {
		snprintf(msg, sizeof(msg), "a step took %" PRIu64 " ms", res.max_step_ns / 1000000);
		fail(sc, seed, tc, &r, msg, NULL);
		goto out;
	}
	cret = rig_close(&r);
	if (ops_out)
		*ops_out = r.pc.ops;
	faulted = r.pc.refused > 0;
	if (!faulted)
		st.timeouts += res.timeouts;
	if (!faulted && res.timeouts && res.timeouts == res.errors && !cret) {
		/* liveness only; see full_wait_ms above */
	} else if (!faulted && (res.errors || cret)) {
		snprintf(msg, sizeof(msg), "error without any fault: step %" PRIu64 " ret %d, close %d (%s)",
			 res.first_err_step, res.first_err, cret, quiet_last());
		fail(sc, seed, tc, &r, msg, NULL);
		goto out;
	}
	if (tc->cut_at && r.pc.ops < tc->cut_at)
		st.unreached++;
	/*
	 * A refused cache write must surface: a failed call, close, or the
	 * status line. (A failed origin write during writeback may be retried
	 * successfully and then rightly leaves no trace.)
	 */
	if (r.pc.refused_cache_writes && !r.pc.cut && !res.errors && !res.status_error && !cret) {
		st.silent_faults++;
		fail(sc, seed, tc, &r, "a cache device write failed but no error was reported", NULL);
		goto out;
	}
	if (tc->mode >= 0)
		rig_crash(&r, (enum fault_crash_mode)tc->mode, tc->cseed);
	else
		pcut_reset(&r.pc);

	if (tc->extra == EXTRA_CUT_RECOVERY) {
		/* A second power cut while recovery repairs the metadata. */
		st.recov_cuts++;
		r.pc.cut_at = 1 + tc->cseed % 16;
		if (!rig_open(&r)) {
			rig_read_all(&r, img);
			rig_close(&r);
		}
		rig_crash(&r, (enum fault_crash_mode)((tc->cseed >> 8) % 4), tc->cseed + 1);
	}
	if (!verify(sc, seed, tc, &r, &m, img, formatted, "after crash"))
		goto out;
	if (tc->extra == EXTRA_PHASE2) {
		/* Keep going on the recovered cache, then crash again. */
		struct step *s2;
		struct rng g = { tc->cseed ^ 0x9999 };

		st.phase2++;
		model_reset_to(&m, img);
		if (wl_generate(seed ^ (tc->cseed << 1), &(struct wl_cfg){ 30, { 40, 6, 4, 12, 5, 10, 3, 2, 1 } },
				sc->rc.bs, sc->rc.origin_bytes, &s2))
			abort();
		pc_arm_cut(&r.pc, rng_range(&g, 1, 200), true);
		wl_run(&r, &m, s2, 30, &res);
		free(s2);
		if (res.bad_read_step >= 0) {
			fail(sc, seed, tc, &r, "phase 2: read returned wrong data", NULL);
			goto out;
		}
		rig_close(&r);
		rig_crash(&r, (enum fault_crash_mode)(rng_next(&g) % 4), rng_next(&g));
		if (!verify(sc, seed, tc, &r, &m, img, true, "phase 2 crash"))
			goto out;
	}
	cret = rig_close(&r);
	if (cret) {
		snprintf(msg, sizeof(msg), "close after recovery failed: %d (%s)", cret, quiet_last());
		fail(sc, seed, tc, &r, msg, NULL);
		goto out;
	}
	ok = true;
out:
	r.pc.trace = NULL;
	rig_fini(&r);
	model_free(&m);
	free(img);
	return ok;
}

static uint64_t ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)(t.tv_sec - t0->tv_sec) * 1000 + (uint64_t)((t.tv_nsec - t0->tv_nsec) / 1000000);
}

static void run_scenario(const struct scenario *sc, uint64_t seed, uint64_t iters)
{
	struct wl_cfg wl = base_wl;
	struct step *steps;
	struct tcase tc = { 0 };
	uint64_t total = 0, total2 = 0, writes, pts0 = st.points, f0 = st.failures;
	struct timespec t0;
	struct rig r;
	struct model m;
	struct wl_result res;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	wl.nsteps = sc->nsteps;
	if (wl_generate(seed, &wl, sc->rc.bs, sc->rc.origin_bytes, &steps))
		abort();

	/* Count run (also the "crash after a clean close" point). */
	tc.mode = FAULT_DROP_ALL;
	run_case(sc, seed, steps, wl.nsteps, &tc, &total);
	run_case(sc, seed, steps, wl.nsteps, &tc, &total2);
	/* Count writes. */
	if (rig_init(&r, &sc->rc, seed))
		abort();
	if (async_seed)
		rig_set_async(&r, async_seed);
	prefill(&r, sc->prefill, seed);
	if (model_init(&m, r.image, sc->rc.origin_bytes))
		abort();
	if (!rig_open(&r))
		wl_run(&r, &m, steps, wl.nsteps, &res);
	rig_close(&r);
	writes = r.pc.writes;
	rig_fini(&r);
	model_free(&m);

	for (uint64_t n = 1; n <= total + 1; n++) {
		tc = (struct tcase){ .cut_at = n, .mode = FAULT_DROP_ALL, .cseed = seed * 7919 + n };
		tc.extra = n % 8 == 3 ? EXTRA_CUT_RECOVERY : n % 8 == 6 ? EXTRA_PHASE2 : EXTRA_NONE;
		run_case(sc, seed, steps, wl.nsteps, &tc, NULL);
		for (uint64_t k = 0; k < iters; k++) {
			/* One reordering crash per point (alternating), both from 2 iters on. */
			tc.extra = EXTRA_NONE;
			if (iters > 1 || (n + k) % 2) {
				tc.mode = FAULT_RANDOM_SUBSET;
				tc.cseed = seed * 31 + n * 1000 + k;
				run_case(sc, seed, steps, wl.nsteps, &tc, NULL);
			}
			if (iters > 1 || (n + k) % 2 == 0) {
				tc.mode = FAULT_TEAR;
				tc.cseed = seed * 37 + n * 1000 + k;
				run_case(sc, seed, steps, wl.nsteps, &tc, NULL);
			}
		}
		if (n % 16 == 0) {
			tc.mode = FAULT_KEEP_ALL;
			run_case(sc, seed, steps, wl.nsteps, &tc, NULL);
		}
	}
	for (uint64_t n = 1; n <= writes; n++) {
		/* Writes fail from the n-th on; reopen as is, or after a DROP_ALL power cut. */
		tc = (struct tcase){ .fail_writes_from = n, .mode = (n & 1) ? -1 : FAULT_DROP_ALL,
				     .cseed = n };
		run_case(sc, seed, steps, wl.nsteps, &tc, NULL);
	}
	for (uint64_t n = 1; n <= total; n += iters < 2 ? 3 : 1) {
		/* One transient failure of op n, nothing else. */
		tc = (struct tcase){ .fail_op = n, .mode = (n & 2) ? -1 : FAULT_TEAR, .cseed = n };
		run_case(sc, seed, steps, wl.nsteps, &tc, NULL);
	}
	free(steps);
	printf("  %-12s seed %-20" PRIu64 " ops %4" PRIu64 "/%4" PRIu64 " writes %4" PRIu64
	       "  cases %6" PRIu64 "  failures %" PRIu64 "  %" PRIu64 " ms\n", sc->name, seed, total,
	       total2, writes, st.points - pts0, st.failures - f0, ms_since(&t0));
	fflush(stdout);
}

int main(void)
{
	uint64_t iters = env_u64("WC_CRASH_ITERS", 1);
	uint64_t seed = env_u64("WC_CRASH_SEED", 0);
	const char *only = getenv("WC_CRASH_SCENARIO");
	uint64_t point = env_u64("WC_CRASH_POINT", 0);
	struct timespec t0;

	wcache_set_logger(quiet_logger, NULL);
	async_seed = env_u64("WC_CRASH_ASYNC", 0);
	if (!seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec;
		seed %= 1000000007u;
	}
	printf("test_crash_points: seed %" PRIu64 " iters %" PRIu64 " (replay: WC_CRASH_SEED=%" PRIu64
	       ")\n", seed, iters, seed);
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	trace_buf = calloc(TRACE_MAX, sizeof(*trace_buf));
	if (!trace_buf)
		return 1;

	if (point || env_u64("WC_CRASH_FAILW", 0) || env_u64("WC_CRASH_FAILOP", 0)) {
		/* Replay one case with the op trace. */
		struct tcase tc = {
			.cut_at = point,
			.fail_writes_from = env_u64("WC_CRASH_FAILW", 0),
			.fail_op = env_u64("WC_CRASH_FAILOP", 0),
			.mode = (int)env_u64("WC_CRASH_MODE", 0),
			.cseed = env_u64("WC_CRASH_CSEED", 1),
			.extra = (int)env_u64("WC_CRASH_EXTRA", 0),
		};

		traced = true;
		for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
			const struct scenario *sc = &scenarios[i];
			struct wl_cfg wl = base_wl;
			struct step *steps;
			bool ok;

			if (only && strcmp(only, sc->name))
				continue;
			wl.nsteps = sc->nsteps;
			if (wl_generate(seed, &wl, sc->rc.bs, sc->rc.origin_bytes, &steps))
				abort();
			for (uint64_t k = 0; k < sc->nsteps; k++)
				fprintf(stderr, "  step %3" PRIu64 ": %-12s off %8" PRIu64 " len %6" PRIu64 "\n",
					k, step_name(steps[k].kind), steps[k].off, steps[k].len);
			ok = run_case(sc, seed, steps, wl.nsteps, &tc, NULL);
			printf("%s: %s\n", sc->name, ok ? "ok" : "FAILED");
			free(steps);
		}
		return st.failures ? 1 : 0;
	}

	for (uint64_t it = 0; it < iters; it++) {
		for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
			if (only && strcmp(only, scenarios[i].name))
				continue;
			run_scenario(&scenarios[i], seed + it, iters);
		}
	}
	printf("test_crash_points: seed %" PRIu64 ": %" PRIu64 " crash cases checked (%" PRIu64
	       " with a power cut during recovery, %" PRIu64 " with a second workload and crash), %"
	       PRIu64 " failures, %" PRIu64 " cut points not reached (op count varied), %" PRIu64
	       " failed cache writes never reported, %" PRIu64 " interrupted formats re-zeroed, %" PRIu64 " writes timed out waiting for space before any fault, slowest step %"
	       PRIu64 " ms, %" PRIu64 " s\n", seed, st.points, st.recov_cuts, st.phase2, st.failures,
	       st.unreached, st.silent_faults, st.format_cuts, st.timeouts,
	       st.max_step_ns / 1000000, ms_since(&t0) / 1000);
	free(trace_buf);
	return st.failures ? 1 : 0;
}
