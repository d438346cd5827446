/* SPDX-License-Identifier: MIT */
/*
 * Benchmark 5 driver (wcache-bench-scale): "fill" formats a cache just large
 * enough for N blocks, writes N distinct blocks through the library in a
 * shuffled order of 1 MiB chunks, commits and closes; "open" activates that
 * cache in a fresh process and reports the open (recovery) time and the RSS
 * growth per cached block. Output is key=value lines for bench/05-scale.sh.
 * Uses only include/wcache.h; never touches the engine's internals.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wcache.h"

#define CHUNK_BYTES (1u << 20)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Resident set size of this process in KiB (VmRSS), or -errno. */
static long rss_kib(void)
{
	char line[256];
	long kib = -ENOENT;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "VmRSS:", 6)) {
			kib = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kib;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	if (errno || end == s || *end)
		return -EINVAL;
	return 0;
}

static int make_file(const char *path, uint64_t bytes)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ret = 0;

	if (fd < 0) {
		fprintf(stderr, "scale: cannot create %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (ftruncate(fd, (off_t)bytes) < 0) {
		ret = -errno;
		fprintf(stderr, "scale: cannot size %s: %s\n", path, strerror(errno));
	}
	close(fd);
	return ret;
}

/* Smallest cache size (whole MiB) whose n_blocks holds nblk plus 1/64 slack. */
static uint64_t cache_bytes_for(uint64_t nblk, uint32_t bs)
{
	uint64_t want = nblk + nblk / 64 + 16;
	uint64_t bytes = want * (bs + 16) + (1u << 20);

	bytes = (bytes + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
	while (wcache_compute_n_blocks(bytes, bs) < want)
		bytes += 1u << 20;
	return bytes;
}

static void cfg_paths(struct wc_cfg *cfg, const char *cache, const char *origin)
{
	wcache_cfg_init(cfg);
	snprintf(cfg->cache_path, sizeof(cfg->cache_path), "%s", cache);
	snprintf(cfg->origin_path, sizeof(cfg->origin_path), "%s", origin);
	cfg->block_size = 0;
	/* Keep every block cached: writeback only when the cache is completely full. */
	cfg->high_watermark = 100;
	cfg->low_watermark = 100;
	cfg->set_mask |= WC_SET_HIGH_WM | WC_SET_LOW_WM;
	cfg->format = WC_FORMAT_NO;
}

static int cmd_fill(const char *cache, const char *origin, uint64_t nblk, uint32_t bs)
{
	uint64_t chunk_blk = CHUNK_BYTES / bs, nchunks = (nblk + chunk_blk - 1) / chunk_blk;
	uint64_t *order, cbytes = cache_bytes_for(nblk, bs);
	struct wc_sb_info sb;
	struct wc_stats st;
	struct wc_cfg cfg;
	struct wcache *wc;
	uint8_t *buf;
	double t0;
	int ret;

	ret = make_file(origin, nblk * bs);
	if (!ret)
		ret = make_file(cache, cbytes);
	if (ret)
		return ret;
	ret = wcache_format(cache, bs, 0, &sb);
	if (ret) {
		fprintf(stderr, "scale: format: %s\n", wcache_last_error());
		return ret;
	}
	cfg_paths(&cfg, cache, origin);
	ret = wcache_open(&cfg, &wc);
	if (ret) {
		fprintf(stderr, "scale: open: %s\n", wcache_last_error());
		return ret;
	}
	order = malloc(nchunks * sizeof(*order));
	buf = malloc(CHUNK_BYTES);
	if (!order || !buf) {
		ret = -ENOMEM;
		goto out;
	}
	/* Chunks in a shuffled order (fixed seed), so the index is not filled in order. */
	for (uint64_t i = 0; i < nchunks; i++)
		order[i] = i;
	srandom(42);
	for (uint64_t i = nchunks - 1; i > 0; i--) {
		uint64_t j = (((uint64_t)random() << 31) | (uint64_t)random()) % (i + 1);
		uint64_t t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	t0 = now_s();
	for (uint64_t i = 0; i < nchunks && !ret; i++) {
		uint64_t b0 = order[i] * chunk_blk;
		uint64_t n = nblk - b0 < chunk_blk ? nblk - b0 : chunk_blk;

		memset(buf, (int)(order[i] & 0xff), CHUNK_BYTES);
		ret = wcache_write(wc, buf, n * bs, b0 * bs, 0);
		if (ret)
			fprintf(stderr, "scale: write at block %" PRIu64 ": %s\n", b0,
				wcache_last_error());
	}
	if (!ret) {
		ret = wcache_flush(wc);
		if (ret)
			fprintf(stderr, "scale: flush: %s\n", wcache_last_error());
	}
	wcache_get_stats(wc, &st);
	printf("fill_s=%.3f\n", now_s() - t0);
	printf("n_blocks=%" PRIu64 "\ndirty_blocks=%" PRIu64 "\nwrites_around=%" PRIu64 "\n",
	       st.n_blocks, st.dirty_blocks, st.writes_around);
	printf("cache_bytes=%" PRIu64 "\nmeta_bytes=%" PRIu64 "\ndata_offset=%" PRIu64 "\n",
	       cbytes, sb.meta_bytes, sb.data_offset);
	if (!ret && st.dirty_blocks < nblk) {
		fprintf(stderr, "scale: only %" PRIu64 " of %" PRIu64 " blocks are cached\n",
			st.dirty_blocks, nblk);
		ret = -EIO;
	}
out:
	free(buf);
	free(order);
	if (wcache_close(wc) && !ret) {
		fprintf(stderr, "scale: close: %s\n", wcache_last_error());
		ret = -EIO;
	}
	return ret;
}

static int touch_state(struct wcache *wc, uint64_t nblk)
{
	uint8_t buf[512];
	int ret;

	for (uint64_t b = 0; b < nblk; b += 512) {
		ret = wcache_read(wc, buf, sizeof(buf), b * 512);
		if (!ret)
			ret = wcache_write(wc, buf, sizeof(buf), b * 512, 0);
		if (ret) {
			fprintf(stderr, "scale: rewrite of block %" PRIu64 ": %s\n", b, wcache_last_error());
			return ret;
		}
	}
	return 0;
}

static int cmd_open(const char *cache, const char *origin)
{
	long rss0, rss1;
	struct wc_stats st;
	struct wc_cfg cfg;
	struct wcache *wc;
	double t0, t1;
	int ret;

	cfg_paths(&cfg, cache, origin);
	rss0 = rss_kib();
	t0 = now_s();
	ret = wcache_open(&cfg, &wc);
	t1 = now_s();
	if (ret) {
		fprintf(stderr, "scale: open: %s\n", wcache_last_error());
		return ret;
	}
	rss1 = rss_kib();
	wcache_get_stats(wc, &st);
	printf("open_s=%.4f\nrss_before_kib=%ld\nrss_after_kib=%ld\n", t1 - t0, rss0, rss1);
	printf("n_blocks=%" PRIu64 "\ndirty_blocks=%" PRIu64 "\n", st.n_blocks, st.dirty_blocks);
	if (st.dirty_blocks)
		printf("bytes_per_block=%.2f\n",
		       (double)(rss1 - rss0) * 1024.0 / (double)st.dirty_blocks);
	/*
	 * Recovery writes no per-block state, so some arrays are not resident
	 * yet. Overwrite one block in every 512 in place (the same data) to
	 * touch every page of them: the footprint of a cache in use.
	 */
	ret = touch_state(wc, st.dirty_blocks);
	if (ret)
		return ret;
	rss1 = rss_kib();
	printf("rss_touched_kib=%ld\n", rss1);
	if (st.dirty_blocks)
		printf("bytes_per_block_touched=%.2f\n",
		       (double)(rss1 - rss0) * 1024.0 / (double)st.dirty_blocks);
	if (wcache_close(wc)) {
		fprintf(stderr, "scale: close: %s\n", wcache_last_error());
		return -EIO;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: wcache-bench-scale fill CACHE ORIGIN NBLOCKS [BLOCK_SIZE]\n"
		   "       wcache-bench-scale open CACHE ORIGIN\n");
}

int main(int argc, char **argv)
{
	uint64_t nblk, bs = 512;

	if (argc >= 2 && !strcmp(argv[1], "open") && argc == 4)
		return cmd_open(argv[2], argv[3]) ? 1 : 0;
	if (argc >= 5 && argc <= 6 && !strcmp(argv[1], "fill")) {
		if (parse_u64(argv[4], &nblk) || !nblk || nblk >= UINT32_MAX ||
		    (argc == 6 && (parse_u64(argv[5], &bs) || bs < 512 || bs > 4096 ||
				   (bs & (bs - 1))))) {
			usage(stderr);
			return 2;
		}
		return cmd_fill(argv[2], argv[3], nblk, (uint32_t)bs) ? 1 : 0;
	}
	usage(argc == 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
	return 2;
}
