/* SPDX-License-Identifier: MIT */
/*
 * ordered_writeback: the origin alone is always a past state of the device.
 *
 * A workload of numbered commits: commit k writes a random set of whole
 * blocks and single sectors, every sector stamped (k, sector), then flushes.
 * Writeback runs all the time (watermarks 0) with a small cache, so blocks
 * are overwritten while older copies wait, superseded copies pile up and
 * writes wait for space. The power is cut at every op N of the run (drop,
 * random subset or tear of the unflushed writes, by N), and the origin as
 * it survives - without the cache - must equal the device as of some commit
 * k, plus any subset of commit k+1's sector writes (writes between two
 * flushes are unordered on any disk).
 *
 * The same workload without ordered_writeback is the negative control: its
 * origin must be out of order at some cut (the check can fail), else the
 * test proves nothing. Then every cut is repeated with a reopen after the
 * crash (recovery keeps older epochs' copies) and a flush message: the
 * origin must still pass through commit states only, and end at the last
 * commit.
 *
 * Environment: WC_CRASH_SEED (CI pins it), WC_CRASH_ITERS (seeds, default 2),
 * WC_CRASH_VERBOSE (engine messages).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crash_rig.h"
#include "log.h"

#define BS 4096u
#define SPB (BS / SECT)
#define NBLK 48u		/* origin blocks */
#define CACHE_BLKS 20u
#define COMMITS 24u
#define MAX_WRITES 5u

struct wr {
	uint32_t commit;	/* 1.. */
	uint32_t sector;	/* first sector */
	uint32_t nsect;		/* SPB (a block) or 1 */
};

struct wl {
	struct wr *w;
	uint32_t n;
	/* hist[k * nsect + s]: the stamp of sector s as of commit k (0 = never written) */
	uint32_t *hist;
};

static uint32_t nsect(void)
{
	return NBLK * SPB;
}

static void make_wl(uint64_t seed, struct wl *wl)
{
	struct rng g = { seed };
	uint32_t ns = nsect();

	wl->w = calloc(COMMITS * MAX_WRITES, sizeof(*wl->w));
	wl->hist = calloc((size_t)(COMMITS + 1) * ns, sizeof(*wl->hist));
	if (!wl->w || !wl->hist)
		abort();
	wl->n = 0;
	for (uint32_t k = 1; k <= COMMITS; k++) {
		uint32_t nw = 1 + (uint32_t)rng_below(&g, MAX_WRITES);

		memcpy(wl->hist + (size_t)k * ns, wl->hist + (size_t)(k - 1) * ns,
		       ns * sizeof(*wl->hist));
		for (uint32_t i = 0; i < nw; i++) {
			/* Mostly a few hot blocks, so copies of older commits are superseded. */
			uint32_t blk = rng_below(&g, 3) ? (uint32_t)rng_below(&g, 8)
							: (uint32_t)rng_below(&g, NBLK);
			struct wr w = { k, blk * SPB, SPB };

			if (!rng_below(&g, 4)) {
				w.sector += (uint32_t)rng_below(&g, SPB);
				w.nsect = 1;
			}
			wl->w[wl->n++] = w;
			for (uint32_t s = w.sector; s < w.sector + w.nsect; s++)
				wl->hist[(size_t)k * ns + s] = k;
		}
	}
}

static void stamp(uint8_t *p, uint32_t k, uint32_t sector)
{
	for (uint32_t i = 0; i < SECT; i += 8) {
		uint64_t v = ((uint64_t)k << 32 | sector) ^ ((uint64_t)i * 0x9E3779B97F4A7C15ull);

		memcpy(p + i, &v, 8);
	}
}

/* The stamp of an origin sector: its commit, or -1 if it is no stamp of that sector. */
static int64_t read_stamp(const uint8_t *p, uint32_t sector)
{
	uint8_t want[SECT];
	uint64_t v;

	memcpy(&v, p, 8);
	if (!v) {
		for (uint32_t i = 0; i < SECT; i++)
			if (p[i])
				return -1;
		return 0;
	}
	stamp(want, (uint32_t)(v >> 32), sector);
	return memcmp(want, p, SECT) ? -1 : (int64_t)(v >> 32);
}

/*
 * Is the origin image the device as of commit k plus some of commit k+1's
 * writes, for some k? Sets *at to that k (the highest that fits).
 */
static bool origin_consistent(const struct wl *wl, const uint8_t *img, uint32_t *at,
			      char *why, size_t len)
{
	uint32_t ns = nsect(), kmax = 0;
	int64_t st;

	for (uint32_t s = 0; s < ns; s++) {
		st = read_stamp(img + (size_t)s * SECT, s);
		if (st < 0) {
			snprintf(why, len, "sector %u holds no stamp of its own", s);
			return false;
		}
		if ((uint32_t)st > kmax)
			kmax = (uint32_t)st;
	}
	for (uint32_t k = kmax + 1; k-- > (kmax ? kmax - 1 : 0);) {
		const uint32_t *now = wl->hist + (size_t)k * ns;
		const uint32_t *next = k < COMMITS ? now + ns : now;
		uint32_t s;

		for (s = 0; s < ns; s++) {
			st = read_stamp(img + (size_t)s * SECT, s);
			if ((uint32_t)st != now[s] && (uint32_t)st != next[s])
				break;
		}
		if (s == ns) {
			*at = k;
			return true;
		}
	}
	for (uint32_t s = 0; s < ns; s++) {
		st = read_stamp(img + (size_t)s * SECT, s);
		if (kmax && (uint32_t)st != wl->hist[(size_t)kmax * ns + s] &&
		    (uint32_t)st != wl->hist[(size_t)(kmax - 1) * ns + s]) {
			snprintf(why, len, "sector %u holds commit %" PRId64 "'s data, but the "
				 "newest commit on the origin is %u, whose state has commit %u's there",
				 s, st, kmax, wl->hist[(size_t)kmax * ns + s]);
			return false;
		}
	}
	snprintf(why, len, "no commit state fits (newest stamp %u)", kmax);
	return false;
}

struct result {
	uint64_t ops;
	bool consistent;
	uint32_t at;
	char why[200];
	bool error;		/* failed without a power cut */
};

static void make_cfg(struct rig_cfg *rc, bool ordered)
{
	memset(rc, 0, sizeof(*rc));
	rc->bs = BS;
	rc->origin_bytes = (uint64_t)NBLK * BS;
	rc->cache_bytes = 4096 + (uint64_t)CACHE_BLKS * BS;
	snprintf(rc->opts, sizeof(rc->opts),
		 "high_watermark 0 low_watermark 0 autocommit_time 3600000 "
		 "autocommit_blocks 1000000 pause_writeback 0 writeback_jobs 4%s",
		 ordered ? " ordered_writeback 1" : "");
}

/*
 * One run: the workload, cut at op cut_at (0: never), crash with mode, then
 * (reopen) recovery and a flush message; the origin is checked after the
 * crash and again after the flush.
 */
static void run_one(const struct wl *wl, bool ordered, uint64_t cut_at, int mode, bool reopen,
		    uint64_t cseed, struct result *res)
{
	uint8_t *zero = calloc(1, (size_t)NBLK * BS + 4096 + (size_t)CACHE_BLKS * BS), buf[BS];
	uint8_t *dev = malloc((size_t)NBLK * BS);
	struct rig_cfg rc;
	struct rig r;
	uint32_t at;
	int ret = 0;

	memset(res, 0, sizeof(*res));
	make_cfg(&rc, ordered);
	if (!zero || !dev || rig_init_images(&r, &rc, zero, zero))
		abort();
	r.full_wait_ms = cut_at ? 300 : 5000;
	r.pc.cut_at = cut_at;
	ret = rig_open(&r);
	/* A cut during the first format leaves a half-formatted cache: nothing to reopen. */
	reopen = reopen && !ret;
	for (uint32_t i = 0; i < wl->n && !ret; i++) {
		const struct wr *w = &wl->w[i];

		for (uint32_t s = 0; s < w->nsect; s++)
			stamp(buf + s * SECT, w->commit, w->sector + s);
		ret = wcache_write(r.wc, buf, (size_t)w->nsect * SECT, (uint64_t)w->sector * SECT, 0);
		if (!ret && (i + 1 == wl->n || wl->w[i + 1].commit != w->commit))
			ret = wcache_flush(r.wc);
	}
	if (r.wc && rig_close(&r) && !ret)
		ret = -EIO;
	pthread_mutex_lock(&r.pc.lock);
	res->ops = r.pc.ops;
	res->error = ret && !r.pc.refused;
	pthread_mutex_unlock(&r.pc.lock);
	if (res->error)
		snprintf(res->why, sizeof(res->why), "error without a power cut: %d (%s)", ret,
			 quiet_last());
	rig_crash(&r, (enum fault_crash_mode)mode, cseed);
	res->consistent = !res->error && origin_consistent(wl, fault_durable(r.origin), &res->at,
							   res->why, sizeof(res->why));
	if (res->consistent && reopen) {
		/*
		 * Recovery keeps the older epochs' copies and the flush message
		 * writes them out in order: cut the power again somewhere in there
		 * (or nowhere, for late cut2), then the origin must be at a commit
		 * no older than before, and at the last one if the flush finished.
		 */
		uint64_t cut2 = cut_at ? 1 + cseed % 160 : 0;	/* the uncut run: none */
		bool flushed = false;

		r.pc.cut_at = cut2;
		ret = rig_open(&r);
		if (!ret)
			flushed = !wcache_message(r.wc, "flush") && !rig_read_all(&r, dev);
		if (r.wc && rig_close(&r))
			flushed = false;
		pthread_mutex_lock(&r.pc.lock);
		if (!r.pc.refused && !flushed) {
			res->consistent = false;
			snprintf(res->why, sizeof(res->why), "reopen and flush failed without a "
				 "power cut: %s", wcache_last_error());
		}
		pthread_mutex_unlock(&r.pc.lock);
		rig_crash(&r, (enum fault_crash_mode)((cseed >> 8) % 4), cseed + 1);
		if (!res->consistent) {
		} else if (!origin_consistent(wl, fault_durable(r.origin), &at, res->why,
					      sizeof(res->why))) {
			res->consistent = false;
		} else if (at < res->at) {
			res->consistent = false;
			snprintf(res->why, sizeof(res->why), "the origin went back from commit %u "
				 "to %u", res->at, at);
		} else if (flushed && memcmp(dev, fault_durable(r.origin), rc.origin_bytes)) {
			res->consistent = false;
			snprintf(res->why, sizeof(res->why), "after the flush message the origin "
				 "(at commit %u) differs from the device", at);
		} else {
			res->at = at;
		}
	}
	rig_fini(&r);
	free(zero);
	free(dev);
}

int main(void)
{
	uint64_t seed0 = env_u64("WC_CRASH_SEED", 0), iters = env_u64("WC_CRASH_ITERS", 2);
	uint64_t cases = 0, failures = 0, control_bad = 0, control_cases = 0;
	struct result res;

	wcache_set_logger(quiet_logger, NULL);
	if (!seed0)
		seed0 = (uint64_t)time(NULL);
	for (uint64_t it = 0; it < iters; it++) {
		uint64_t seed = seed0 + it, total;
		struct wl wl;

		make_wl(seed, &wl);
		/* The whole run, no cut: the origin ends at the last commit after a flush. */
		run_one(&wl, true, 0, FAULT_DROP_ALL, true, 1000, &res);
		total = res.ops;
		if (!res.consistent || res.at != COMMITS) {
			fprintf(stderr, "FAIL seed %" PRIu64 ": uncut run: %s (at commit %u)\n", seed,
				res.why, res.at);
			failures++;
		}
		for (uint64_t n = 1; n <= total; n++) {
			int mode = n % 3 == 0 ? FAULT_DROP_ALL : n % 3 == 1 ? FAULT_RANDOM_SUBSET
									  : FAULT_TEAR;

			run_one(&wl, true, n, mode, n % 2 == 0, seed * 7919 + n, &res);
			cases++;
			if (!res.consistent) {
				if (failures++ < 10)
					fprintf(stderr, "FAIL seed %" PRIu64 " cut at op %" PRIu64
						" of %" PRIu64 " (mode %d%s): %s\n", seed, n, total,
						mode, n % 2 == 0 ? ", reopened" : "", res.why);
			}
			/* Negative control at every other cut: unordered writeback. */
			if (n % 2 == 0) {
				run_one(&wl, false, n, mode, false, seed * 7919 + n, &res);
				control_cases++;
				control_bad += !res.consistent && !res.error;
			}
		}
		printf("seed %" PRIu64 ": %" PRIu64 " ops, cut at every one\n", seed, total);
		free(wl.w);
		free(wl.hist);
	}
	printf("ordered_writeback: %" PRIu64 " cuts, %" PRIu64 " origins out of commit order\n",
	       cases, failures);
	printf("negative control (unordered): %" PRIu64 " of %" PRIu64 " origins out of order\n",
	       control_bad, control_cases);
	if (!control_bad) {
		fprintf(stderr, "FAIL: the unordered control never left the origin out of order: "
			"this workload does not test ordering\n");
		return 1;
	}
	return failures ? 1 : 0;
}
