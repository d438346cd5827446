/* SPDX-License-Identifier: MIT */
/*
 * Recovery determinism (DESIGN invariant 4): a crashed device pair (a seeded
 * workload cut at a random op, then a random crash mode, so the metadata
 * holds uncommitted, superseded and torn entries) is copied three times.
 * Opening copy A, copy B and copy C read-only must give the same logical
 * contents and the same status line; A and B must leave byte-identical
 * cache devices behind; reopening A (after its repair) must again give the
 * same contents and status line.
 *
 * Environment: WC_CRASH_SEED (replay), WC_CRASH_ITERS (scale).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crash_rig.h"

static const struct rig_cfg cfgs[] = {
	{ 4096, 263680, 4096 + 20 * 4096,
	  "high_watermark 50 low_watermark 20 autocommit_time 3600000 pause_writeback 0" },
	{ 512, 98816, 512 + 40 * 512,
	  "high_watermark 40 low_watermark 10 autocommit_blocks 6 pause_writeback 0" },
};

static const struct wl_cfg wl = {
	.nsteps = 80,
	.pct = { [S_WRITE] = 45, [S_WRITE_FUA] = 6, [S_ZEROES] = 4, [S_FLUSH] = 10,
		 [S_DISCARD] = 5, [S_READ] = 5, [S_MSG_FLUSH] = 2, [S_REOPEN] = 2 },
};

static uint64_t failures, checked, nr_full;

/* Blank out status fields 3 and 4 (free, writeback). */
static void strip_fields(char *line)
{
	char out[256], *save, *tok;
	int i = 0;
	size_t n = 0;

	out[0] = 0;
	for (tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save), i++)
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s", i ? " " : "",
				      i == 2 || i == 3 ? "-" : tok);
	strcpy(line, out);
}

/* Open r, take its status line and contents, leave it open. */
static int snap(struct rig *r, char *status, size_t slen, uint8_t *data)
{
	int ret = rig_open(r);

	if (ret)
		return ret;
	if (wcache_status(r->wc, status, slen) < 0)
		return -ERANGE;
	return rig_read_all(r, data);
}

static bool one(const struct rig_cfg *rc, uint64_t seed)
{
	struct rng g = { seed };
	struct rig r, a, b, c;
	struct rig_cfg rc2;
	struct model m;
	struct step *steps;
	struct wl_result res;
	uint8_t *oimg = malloc(rc->origin_bytes), *cimg = malloc(rc->cache_bytes);
	uint8_t *da = malloc(rc->origin_bytes), *db = malloc(rc->origin_bytes);
	uint8_t *dc = malloc(rc->origin_bytes);
	char sa[256], sb[256], sc[256];
	bool ok = false, full = false;
	int ret;

	/* Make a crashed image. */
	if (rig_init(&r, rc, seed) || model_init(&m, r.image, rc->origin_bytes) ||
	    wl_generate(seed, &wl, rc->bs, rc->origin_bytes, &steps))
		abort();
	r.full_wait_ms = 100;
	if (rig_open(&r))
		abort();
	pc_arm_cut(&r.pc, rng_range(&g, 10, 320), false);
	wl_run(&r, &m, steps, wl.nsteps, &res);
	rig_close(&r);
	rig_crash(&r, (enum fault_crash_mode)(rng_next(&g) % 4), rng_next(&g));
	memcpy(oimg, fault_durable(r.origin), rc->origin_bytes);
	memcpy(cimg, fault_durable(r.cache), rc->cache_bytes);
	free(steps);
	model_free(&m);
	rig_fini(&r);

	/*
	 * Open without watermark writeback, so the status line is a function of
	 * the image (a writeback starting right after open would change it).
	 */
	rc2 = *rc;
	snprintf(rc2.opts, sizeof(rc2.opts), "high_watermark 100 low_watermark 100 "
		 "autocommit_time 3600000");
	if (rig_init_images(&a, &rc2, oimg, cimg) || rig_init_images(&b, &rc2, oimg, cimg) ||
	    rig_init_images(&c, &rc2, oimg, cimg))
		abort();
	c.read_only = true;
	checked++;
	ret = snap(&a, sa, sizeof(sa), da);
	if (ret == -EINVAL && !memcmp(cimg, "\0\0\0\0\1\0\0\0", 8)) {
		ok = true;	/* format cut before the magic: refused (docs/format.md §7) */
		goto out;
	}
	if (ret) {
		fprintf(stderr, "FAIL seed %" PRIu64 " bs %u: open A: %d %s\n", seed, rc->bs, ret,
			wcache_last_error());
		goto out;
	}
	ret = snap(&b, sb, sizeof(sb), db);
	if (ret) {
		fprintf(stderr, "FAIL seed %" PRIu64 " bs %u: open B: %d %s\n", seed, rc->bs, ret,
			wcache_last_error());
		goto out;
	}
	ret = snap(&c, sc, sizeof(sc), dc);
	if (ret) {
		fprintf(stderr, "FAIL seed %" PRIu64 " bs %u: read-only open C: %d %s\n", seed, rc->bs,
			ret, wcache_last_error());
		goto out;
	}
	if (memcmp(da, db, rc->origin_bytes) || memcmp(da, dc, rc->origin_bytes)) {
		fprintf(stderr, "FAIL seed %" PRIu64 " bs %u: contents differ between opens of one image "
			"(A/B %s, A/C %s)\n", seed, rc->bs,
			memcmp(da, db, rc->origin_bytes) ? "differ" : "equal",
			memcmp(da, dc, rc->origin_bytes) ? "differ" : "equal");
		goto out;
	}
	if (!strncmp(sc, "0 ", 2) && strtoull(strchr(sc + 2, ' ') + 1, NULL, 10) == 0) {
		/* A full cache starts writeback at once: free/writeback fields race. */
		full = true;
		nr_full++;
		strip_fields(sa);
		strip_fields(sb);
		strip_fields(sc);
	}
	if (strcmp(sa, sb) || strcmp(sa, sc)) {
		fprintf(stderr, "FAIL seed %" PRIu64 " bs %u: status lines differ:\n  A %s\n  B %s\n  C %s\n",
			seed, rc->bs, sa, sb, sc);
		goto out;
	}
	if (rig_close(&a) || rig_close(&b) || rig_close(&c)) {
		fprintf(stderr, "FAIL seed %" PRIu64 " bs %u: close: %s\n", seed, rc->bs,
			wcache_last_error());
		goto out;
	}
	if (!full && memcmp(fault_durable(a.cache), fault_durable(b.cache), rc->cache_bytes)) {
		const uint8_t *x = fault_durable(a.cache), *y = fault_durable(b.cache);
		uint64_t i = 0;

		while (x[i] == y[i])
			i++;
		fprintf(stderr, "FAIL seed %" PRIu64 " bs %u: the two recoveries left different cache "
			"devices (first difference at byte %" PRIu64 "; status %s)\n", seed, rc->bs, i, sa);
		goto out;
	}
	if (memcmp(fault_durable(c.cache), cimg, rc->cache_bytes)) {
		fprintf(stderr, "FAIL seed %" PRIu64 " bs %u: a read-only open wrote the cache device\n",
			seed, rc->bs);
		goto out;
	}
	ret = snap(&a, sb, sizeof(sb), db);
	if (full)
		strip_fields(sb);
	if (ret || strcmp(sa, sb) || memcmp(da, db, rc->origin_bytes)) {
		fprintf(stderr, "FAIL seed %" PRIu64 " bs %u: reopen after recovery: ret %d, status\n  %s\n"
			"  %s\n  contents %s\n", seed, rc->bs, ret, sa, sb,
			memcmp(da, db, rc->origin_bytes) ? "differ" : "equal");
		goto out;
	}
	ok = true;
out:
	rig_fini(&a);
	rig_fini(&b);
	rig_fini(&c);
	free(oimg);
	free(cimg);
	free(da);
	free(db);
	free(dc);
	if (!ok)
		failures++;
	return ok;
}

int main(void)
{
	uint64_t iters = env_u64("WC_CRASH_ITERS", 1);
	uint64_t seed = env_u64("WC_CRASH_SEED", 0);

	wcache_set_logger(quiet_logger, NULL);
	if (!seed) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = ((uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec) % 1000000007u;
	}
	printf("test_crash_determinism: seed %" PRIu64 " (replay: WC_CRASH_SEED=%" PRIu64 ")\n", seed,
	       seed);
	for (size_t k = 0; k < sizeof(cfgs) / sizeof(cfgs[0]); k++)
		for (uint64_t i = 0; i < 100 * iters; i++)
			one(&cfgs[k], seed + i * 7 + k);
	printf("test_crash_determinism: %" PRIu64 " crashed images opened 4 ways (%" PRIu64
	       " full, free/writeback fields not compared), %" PRIu64 " failures\n", checked, nr_full,
	       failures);
	return failures ? 1 : 0;
}
