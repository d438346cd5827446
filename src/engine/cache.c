/* SPDX-License-Identifier: MIT */
/*
 * The top of the engine: open (devices, format, recovery), close, and the
 * threads (the service thread for autocommit lives here). See engine.h for
 * the locking rules and commit.c for the on-disk ordering.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bigalloc.h"
#include "log.h"
#include "engine.h"
#include "recover.h"
#include "table.h"
#include "testing.h"

uint64_t wcache_size(const struct wcache *c)
{
	return c->origin_bytes;
}

uint32_t wcache_block_size(const struct wcache *c)
{
	return c->bs;
}

static void *svc_main(void *arg)
{
	struct wcache *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		uint64_t ac_ns = (uint64_t)c->cfg.autocommit_ms * 1000000ull;
		uint64_t wait_ns = 1000000000ull, t = wc_now_ns();
		struct timespec ts;

		if (c->want_commit || (c->txn_dirty && t - c->txn_start_ns >= ac_ns)) {
			c->want_commit = false;
			pthread_mutex_unlock(&c->lock);
			if (!wc_get_error(c))
				wc_commit(c, false);
			pthread_mutex_lock(&c->lock);
			continue;
		}
		if (c->txn_dirty && c->txn_start_ns + ac_ns - t < wait_ns)
			wait_ns = c->txn_start_ns + ac_ns - t;
		ts = wc_deadline_ts(t + wait_ns);
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void free_cache(struct wcache *c)
{
	if (c->cache)
		dev_close(c->cache);
	if (c->origin)
		dev_close(c->origin);
	wc_idx_free(&c->idx);
	wc_big_free(c->meta, c->meta_bytes);
	free(c->gran_dirty);
	free(c->state);
	free(c->region_age);
	free(c->region_used);
	wc_elist_free(&c->pend);
	wc_elist_free(&c->old);
	free(c->free_bm);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->meta_mutex);
	for (int i = 0; i < WC_NR_STRIPES; i++)
		pthread_mutex_destroy(&c->stripe[i]);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* Open the devices by path unless the caller gave them (wc_open_devs). */
static int open_devices(struct wcache *c, const struct wc_cfg *cfg)
{
	unsigned fl = cfg->read_only ? DEV_RDONLY : DEV_EXCL;
	int ret;

	if (!c->cache && cfg->mode == WC_MODE_PMEM) {
		/* pmem mode maps the cache device (src/dev/pmem.c, built with libpmem2). */
#ifdef WC_WITH_PMEM
		ret = dev_pmem_open(cfg->cache_path, fl, &c->cache);
#else
		ret = wc_err(-EPROTONOSUPPORT, "%s: pmem mode (p) is not supported by this build "
			     "(libpmem2-dev was missing); use SSD mode (s) on the same cache",
			     cfg->cache_path);
#endif
		if (ret)
			return ret;
	}
	if (!c->cache) {
		ret = dev_open_uri(cfg->cache_path, fl | (cfg->cache_buffered ? DEV_NO_DIRECT : 0),
				   &c->cache);
		if (ret)
			return ret;
	}
	if (!c->origin) {
		ret = dev_open_uri(cfg->origin_path, fl, &c->origin);
		if (ret)
			return ret;
	}
	if (!c->origin->size)
		return wc_err(-EINVAL, "origin %s has size 0", c->origin->name);
	return 0;
}

static int check_report(struct wcache *c, const struct recover_report *r)
{
	if (c->read_only && (r->nr_equal_dups || r->nr_past_origin)) {
		/* Salvage (export): continue like the kernel; the later index wins. */
		wc_log(WC_LOG_WARN, "%s: corrupt metadata (%llu equal-seq duplicates, %llu entries "
		       "beyond the origin or unaligned); reading what recovery makes of it",
		       c->cache->name, (unsigned long long)r->nr_equal_dups,
		       (unsigned long long)r->nr_past_origin);
		return 0;
	}
	if (r->nr_equal_dups)
		return wc_err(-EUCLEAN,
			      "%s: corrupt metadata: entries %llu and %llu both map sector %llu with "
			      "seq %llu (%llu such pairs); refusing to open (salvage with 'wcache export')",
			      c->cache->name, (unsigned long long)r->dup_other,
			      (unsigned long long)r->dup_idx, (unsigned long long)r->dup_sector,
			      (unsigned long long)r->dup_seq, (unsigned long long)r->nr_equal_dups);
	if (r->nr_past_origin)
		return wc_err(-EUCLEAN,
			      "%s: entry %llu maps sector %llu, beyond the origin %s (%llu sectors) or not "
			      "block aligned (%llu such entries): wrong origin device?",
			      c->cache->name, (unsigned long long)r->past_idx,
			      (unsigned long long)r->past_sector, c->origin->name,
			      (unsigned long long)(c->origin_bytes / 512),
			      (unsigned long long)r->nr_past_origin);
	if (r->nr_uncommitted || r->nr_superseded)
		wc_log(WC_LOG_INFO, "recovery: %llu uncommitted entries reset, %llu superseded copies "
		       "freed, %llu valid", (unsigned long long)r->nr_uncommitted,
		       (unsigned long long)r->nr_superseded, (unsigned long long)r->nr_valid);
	return 0;
}

/* export --force: take a damaged superblock as far as it can lead to data. */
static int salvage_sb(struct wcache *c, struct wc_sb *sb, uint32_t want_bs)
{
	struct wc_sb v = *sb;

	if (sb->magic == 0 && sb->version == 0) {
		wc_log(WC_LOG_WARN, "%s: salvage: blank superblock (first 8 bytes zero); trusting "
		       "its block_size %u, n_blocks %llu, seq_count %llu", c->cache->name,
		       sb->block_size, (unsigned long long)sb->n_blocks,
		       (unsigned long long)sb->seq_count);
		v.magic = sb->magic = WC_MAGIC;
		v.version = sb->version = WC_VERSION;
	}
	if (sb->seq_count >= WC_SEQ_LIMIT) {
		wc_log(WC_LOG_WARN, "%s: salvage: impossible seq_count %llu: every entry counts as "
		       "committed, including any of an unfinished commit", c->cache->name,
		       (unsigned long long)sb->seq_count);
		v.seq_count = 0;
	}
	/* The device may be too short: salvage_read deals with that. */
	return wc_sb_validate(&v, want_bs, UINT64_MAX);
}

/*
 * export --force on a truncated device: metadata past the end reads as free
 * entries, and entries whose data block is past the end are dropped before
 * recovery, so that an older copy of the sector (or the origin) wins.
 */
static int salvage_read(struct wcache *c, const struct wc_sb *sb, struct recover_report *rep)
{
	uint64_t have = c->cache->size - c->base;
	uint64_t len = c->meta_bytes < have ? c->meta_bytes : have;
	uint64_t present = wc_meta_records_in(len, c->n_blocks), bad_meta = c->n_blocks - present;
	uint64_t lost;
	int ret;

	wc_recover_begin(&c->idx, rep);
	ret = dev_pread(c->cache, c->meta, len, c->base);
	if (ret)
		return ret;
	memset(c->meta + len, 0xff, c->meta_bytes - len);
	if (present < c->n_blocks)	/* a record cut in two reads as free too */
		entry_set(c->meta, present, WC_SEQ_FREE, WC_SEQ_FREE);
	/* An impossible seq_count: every entry counts as committed (salvage_sb). */
	lost = wc_meta_drop_past_end(c->meta, present, c->data_off, c->bs, c->cache->size,
				     sb->seq_count >= WC_SEQ_LIMIT ? UINT64_MAX : sb->seq_count);
	if (bad_meta || lost)
		wc_log(WC_LOG_WARN, "%s: salvage: the device ends %llu bytes short: %llu entries are "
		       "past its end, and %llu committed blocks whose data is past it are missing "
		       "(an older copy or the origin's data shows for those sectors)",
		       c->cache->name,
		       (unsigned long long)(c->meta_bytes + c->n_blocks * c->bs - have),
		       (unsigned long long)bad_meta, (unsigned long long)lost);
	wc_recover_range(c->meta, sb, (c->origin_bytes + 511) / 512, &c->idx, rep, 0,
			 c->n_blocks);
	return 0;
}

/*
 * Reading a large metadata area: a helper thread reads it in chunks while
 * the recovery scan follows behind, so activation takes about as long as the
 * read instead of the read plus the scan.
 */
uint64_t wc_meta_chunk = 8u << 20;	/* tests lower it to run this path on small caches */

struct meta_reader {
	struct wcache *c;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t done;		/* bytes read from the start */
	int err;
};

static void *meta_reader_main(void *arg)
{
	struct meta_reader *mr = arg;
	struct wcache *c = mr->c;

	for (uint64_t off = 0; off < c->meta_bytes;) {
		uint64_t len = c->meta_bytes - off < wc_meta_chunk ? c->meta_bytes - off : wc_meta_chunk;
		int ret = dev_pread(c->cache, c->meta + off, len, c->base + off);

		pthread_mutex_lock(&mr->lock);
		if (ret)
			mr->err = ret;
		else
			mr->done = off += len;
		pthread_cond_signal(&mr->cond);
		pthread_mutex_unlock(&mr->lock);
		if (ret)
			break;
	}
	return NULL;
}

/* Entries whose 16 bytes lie within the first bytes of the metadata. */
static uint64_t entries_within(const struct wcache *c, uint64_t bytes)
{
	uint64_t n = bytes > WC_SB_BYTES ? (bytes - WC_SB_BYTES) / WC_ENTRY_BYTES : 0;

	return n < c->n_blocks ? n : c->n_blocks;
}

static int read_and_scan(struct wcache *c, const struct wc_sb *sb, struct recover_report *rep)
{
	uint64_t origin_sectors = (c->origin_bytes + 511) / 512, scanned = 0;
	struct meta_reader mr = { .c = c };
	pthread_t th;
	int ret;

	wc_recover_begin(&c->idx, rep);
	rep->keep_superseded = c->cfg.ordered_writeback;
	pthread_mutex_init(&mr.lock, NULL);
	pthread_cond_init(&mr.cond, NULL);
	if (c->meta_bytes <= 2 * wc_meta_chunk ||
	    pthread_create(&th, NULL, meta_reader_main, &mr)) {
		ret = dev_pread(c->cache, c->meta, c->meta_bytes, c->base);
		if (!ret)
			wc_recover_range(c->meta, sb, origin_sectors, &c->idx, rep, 0, c->n_blocks);
		goto out;
	}
	for (;;) {
		uint64_t upto;

		pthread_mutex_lock(&mr.lock);
		while (!mr.err && entries_within(c, mr.done) == scanned && scanned < c->n_blocks)
			pthread_cond_wait(&mr.cond, &mr.lock);
		ret = mr.err;
		upto = entries_within(c, mr.done);
		pthread_mutex_unlock(&mr.lock);
		if (ret || scanned == c->n_blocks)
			break;
		wc_recover_range(c->meta, sb, origin_sectors, &c->idx, rep, scanned, upto);
		scanned = upto;
	}
	pthread_join(th, NULL);
out:
	pthread_mutex_destroy(&mr.lock);
	pthread_cond_destroy(&mr.cond);
	return ret;
}

static int load(struct wcache *c, const struct wc_cfg *cfg)
{
	struct recover_report rep;
	struct wc_sb sb;
	uint64_t usable;
	bool grown;
	int ret;

	if (!c->cache->size)
		return wc_err(-EINVAL, "%s: the cache device is empty (0 bytes)", c->cache->name);
	c->base = cfg->start_sector * 512;
	if (cfg->start_sector > UINT64_MAX / 512 || c->base >= c->cache->size)
		return wc_err(-EINVAL, "start_sector %llu is beyond the cache device %s (%llu bytes)",
			      (unsigned long long)cfg->start_sector, c->cache->name,
			      (unsigned long long)c->cache->size);
	usable = c->cache->size - c->base;
	if (!cfg->read_only) {
		/*
		 * A previous run may have written metadata whose flush failed: it
		 * reads back now but could still vanish in a power cut. Recovery
		 * must decide from what is durable, or writes that go around a
		 * block it believes clean could later be shadowed by a stale copy.
		 */
		ret = dev_flush(c->cache);
		if (!ret)
			ret = dev_flush(c->origin);
		if (ret)
			return wc_err(ret, "cannot flush the devices before recovery (%s, %s): %s",
				      c->cache->name, c->origin->name, strerror(-ret));
	}
	ret = wc_meta_read_sb(c->cache, c->base, &sb);
	if (ret)
		return ret;
	if (!cfg->salvage && (cfg->format == WC_FORMAT_YES || (sb.magic == 0 && sb.version == 0))) {
		int64_t lost;

		if (cfg->read_only || cfg->format == WC_FORMAT_NO)
			return wc_err(-ENODATA, "%s: cache device is not formatted (first 8 bytes are zero)",
				      c->cache->name);
		lost = cfg->format == WC_FORMAT_AUTO ? wc_meta_blank_entries(c->cache, c->base, &sb)
						      : 0;
		if (lost < 0)
			return (int)lost;
		if (lost)
			return wc_err(-EEXIST,
				      "%s: the superblock is blank (first 8 bytes zero) but %lld "
				      "records after it look like committed cache entries: a damaged "
				      "cache, not an empty device; salvage it with 'wcache export "
				      "--force', or format it anyway with format=yes",
				      c->cache->name, (long long)lost);
		ret = wc_meta_format(c->cache, c->base, cfg->block_size ? cfg->block_size : 4096,
				     &sb);
		if (ret)
			return ret;
		wc_log(WC_LOG_INFO, "formatted %s: %llu blocks of %u bytes", c->cache->name,
		       (unsigned long long)sb.n_blocks, sb.block_size);
	}
	ret = cfg->salvage ? salvage_sb(c, &sb, cfg->block_size)
			   : wc_sb_validate(&sb, cfg->block_size, usable);
	if (!ret)
		ret = wc_meta_check_geometry(c->cache, c->base, &sb, &grown);
	if (ret)
		return wc_err(ret, "%s: %s", c->cache->name, wcache_last_error());
	if (grown)
		wc_log(WC_LOG_INFO, "%s: the device is larger than its format (%llu blocks): "
		       "the rest stays unused", c->cache->name, (unsigned long long)sb.n_blocks);

	c->bs = sb.block_size;
	c->cfg.block_size = c->bs;	/* the table line shows the real block size */
	c->bs_sect = c->bs / 512;
	c->bs_shift = (unsigned)__builtin_ctz(c->bs);
	c->n_blocks = sb.n_blocks;
	c->meta_bytes = wc_meta_bytes_for(sb.n_blocks, c->bs);
	c->data_off = c->base + c->meta_bytes;
	c->nr_gran = (c->meta_bytes + WC_GRANULE_BYTES - 1) / WC_GRANULE_BYTES;
	c->origin_bytes = c->origin->size;
	c->seq = c->disk_seq = sb.seq_count;

	c->meta = wc_big_alloc(c->meta_bytes, true);
	c->gran_dirty = calloc(c->nr_gran, 1);
	c->state = calloc(c->n_blocks, 1);
	c->region_age = calloc((c->n_blocks >> WC_AGE_SHIFT) + 1, sizeof(uint32_t));
	c->region_used = calloc((c->n_blocks >> WC_AGE_SHIFT) + 1, sizeof(uint32_t));
	c->free_bm = calloc((c->n_blocks + 63) / 64, sizeof(uint64_t));
	if (!c->meta || !c->gran_dirty || !c->state || !c->region_age || !c->region_used ||
	    !c->free_bm || wc_elist_init(&c->pend, c->n_blocks) ||
	    wc_elist_init(&c->old, c->n_blocks))
		return wc_err(-ENOMEM, "out of memory for %llu cache blocks",
			      (unsigned long long)c->n_blocks);
	ret = wc_idx_init(&c->idx, c->n_blocks, c->meta);
	if (ret)
		return wc_err(ret, "out of memory for the index");
	ret = cfg->salvage ? salvage_read(c, &sb, &rep) : read_and_scan(c, &sb, &rep);
	if (ret)
		return wc_err(ret, "%s: cannot read metadata (%llu bytes): %s", c->cache->name,
			      (unsigned long long)c->meta_bytes, strerror(-ret));
	ret = check_report(c, &rep);
	if (ret)
		return ret;
	for (uint64_t i = 0; i < c->n_blocks; i++) {
		if (entry_seq(c->meta, i) == WC_SEQ_FREE) {
			c->free_bm[i >> 6] |= 1ull << (i & 63);
			c->nr_free++;
		} else {
			wc_region_install(c, (uint32_t)i);	/* as if written at open */
			/* ordered_writeback keeps older epochs' copies: superseded, to write back. */
			if (rep.keep_superseded && wc_idx_lookup(&c->idx, entry_sector(c->meta, i)) != i &&
			    entry_seq(c->meta, i) < sb.seq_count)
				wc_old_add(c, (uint32_t)i);
		}
	}
	if (rep.changed && !cfg->read_only) {
		/* Make the repairs durable before any block is reused. */
		ret = wc_write_all_meta(c);
		if (!ret)
			ret = dev_flush(c->cache);
		if (ret)
			return wc_err(ret, "%s: cannot write repaired metadata: %s", c->cache->name,
				      strerror(-ret));
	}
	return 0;
}

/* cfg is valid; origin and cache are NULL (open by path) or owned from here on. */
static int open_cache(const struct wc_cfg *cfg, struct wc_dev *origin, struct wc_dev *cache,
		      struct wcache **out)
{
	struct wcache *c = calloc(1, sizeof(*c));
	int ret;

	if (!c) {
		dev_close(origin);
		dev_close(cache);
		return wc_err(-ENOMEM, "out of memory for the cache state");
	}
	c->origin = origin;
	c->cache = cache;
	c->cfg = *cfg;
	if (!c->cfg.full_wait_ms)
		c->cfg.full_wait_ms = 30000;
	c->read_only = cfg->read_only;
	c->cleaner = cfg->cleaner;
	c->open_ns = wc_now_ns();
	wc_metrics_init(c);
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->meta_mutex, NULL);
	for (int i = 0; i < WC_NR_STRIPES; i++)
		pthread_mutex_init(&c->stripe[i], NULL);
	/* Timed waits compute deadlines from CLOCK_MONOTONIC (wc_now_ns). */
	wc_cond_init_monotonic(&c->cond);
	atomic_init(&c->error, 0);
	atomic_init(&c->origin_dirty, false);

	ret = open_devices(c, cfg);
	if (!ret) {
		pthread_mutex_lock(&c->meta_mutex);
		pthread_mutex_lock(&c->lock);
		ret = load(c, cfg);
		pthread_mutex_unlock(&c->lock);
		pthread_mutex_unlock(&c->meta_mutex);
	}
	if (ret) {
		const char *msg = wcache_last_error();
		char keep[1024];

		snprintf(keep, sizeof(keep), "%s", msg);
		free_cache(c);
		return wc_err(ret, "%s", keep);
	}
	if (!c->read_only) {
		if (pthread_create(&c->wb_thread, NULL, wc_wb_main, c)) {
			free_cache(c);
			return wc_err(-EAGAIN, "cannot start the writeback thread");
		}
		if (pthread_create(&c->svc_thread, NULL, svc_main, c)) {
			pthread_mutex_lock(&c->lock);
			c->stopping = true;
			pthread_cond_broadcast(&c->cond);
			pthread_mutex_unlock(&c->lock);
			pthread_join(c->wb_thread, NULL);
			free_cache(c);
			return wc_err(-EAGAIN, "cannot start the service thread");
		}
		c->threads_started = true;
	}
	*out = c;
	return 0;
}

int wcache_open(const struct wc_cfg *cfg, struct wcache **out)
{
	int ret = wcache_cfg_validate(cfg);

	if (ret)
		return ret;
	return open_cache(cfg, NULL, NULL, out);
}

int wc_open_devs(const struct wc_cfg *cfg, struct wc_dev *origin, struct wc_dev *cache,
		 struct wcache **out)
{
	int ret;

	if (!origin || !cache)
		ret = wc_err(-EINVAL, "wc_open_devs: both devices must be given");
	else
		ret = wc_table_validate(cfg, false);
	if (ret) {
		dev_close(origin);
		dev_close(cache);
		return ret;
	}
	return open_cache(cfg, origin, cache, out);
}

int wcache_open_table(const char *table, struct wcache **out)
{
	struct wc_cfg cfg;
	int ret;

	wcache_cfg_init(&cfg);
	ret = wcache_cfg_parse_table(&cfg, table);
	if (ret)
		return ret;
	return wcache_open(&cfg, out);
}

int wcache_close(struct wcache *c)
{
	int ret = 0, r;

	if (!c)
		return 0;
	if (!c->read_only) {
		bool fos;

		pthread_mutex_lock(&c->lock);
		fos = c->flush_on_suspend;
		pthread_mutex_unlock(&c->lock);
		if (fos && !wc_get_error(c))
			ret = wc_writeback_all(c);
		pthread_mutex_lock(&c->lock);
		c->stopping = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		if (c->threads_started) {
			pthread_join(c->wb_thread, NULL);
			pthread_join(c->svc_thread, NULL);
		}
		r = wc_commit(c, false);
		if (!ret)
			ret = r;
		r = wc_get_error(c);
		if (!ret && r)
			ret = wc_err(r, "cache is in error state: %s", strerror(-r));
	}
	free_cache(c);
	return ret;
}
