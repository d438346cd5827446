/* SPDX-License-Identifier: MIT */
/*
 * Metadata persistence and the seq_count commit protocol (docs/format.md §4.3).
 *
 * Ordering of a commit that bumps seq from S to S+1:
 *   1. dirty granules (entries tagged S, frees) are written from a snapshot;
 *   2. the cache device is flushed: data of every installed entry (written
 *      before installation) and the granules are durable;
 *   3. the superblock region with seq_count S+1 is written and flushed: the
 *      durability point that makes every entry tagged S valid at recovery;
 *   4. the origin is flushed if writes went around the cache.
 * Every metadata write happens under meta_mutex from a snapshot taken under
 * c->lock, so snapshots reach the disk in order and a later write never
 * carries older RAM state than an earlier one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "engine.h"

struct meta_run {
	uint64_t off, len;
};

/* Write dirty granules from a snapshot. meta_mutex + lock held; lock dropped for I/O. */
static int write_dirty_meta(struct wcache *c)
{
	struct meta_run *runs;
	uint64_t nr_runs = 0, total = 0, pos = 0;
	uint8_t *buf;
	int ret = 0;

	if (!c->meta_dirty)
		return 0;
	runs = malloc(sizeof(*runs) * (c->nr_gran / 2 + 1));
	if (!runs)
		return wc_err(-ENOMEM, "out of memory for a metadata write");
	for (uint64_t g = 0; g < c->nr_gran; g++) {
		uint64_t off, end;

		if (!c->gran_dirty[g])
			continue;
		off = g * WC_GRANULE_BYTES;
		end = off + WC_GRANULE_BYTES < c->meta_bytes ? off + WC_GRANULE_BYTES : c->meta_bytes;
		if (nr_runs && runs[nr_runs - 1].off + runs[nr_runs - 1].len == off)
			runs[nr_runs - 1].len += end - off;
		else
			runs[nr_runs++] = (struct meta_run){ off, end - off };
		total += end - off;
	}
	buf = malloc(total);
	if (!buf) {
		free(runs);
		return wc_err(-ENOMEM, "out of memory for a metadata write of %llu bytes",
			      (unsigned long long)total);
	}
	for (uint64_t i = 0; i < nr_runs; i++) {
		memcpy(buf + pos, c->meta + runs[i].off, runs[i].len);
		pos += runs[i].len;
	}
	memset(c->gran_dirty, 0, c->nr_gran);
	c->meta_dirty = false;

	pthread_mutex_unlock(&c->lock);
	pos = 0;
	for (uint64_t i = 0; i < nr_runs && !ret; i++) {
		ret = dev_pwrite(c->cache, buf + pos, runs[i].len, c->base + runs[i].off);
		pos += runs[i].len;
	}
	pthread_mutex_lock(&c->lock);
	free(buf);
	free(runs);
	return ret;
}

int wc_write_all_meta(struct wcache *c)
{
	memset(c->gran_dirty, 1, c->nr_gran);
	c->meta_dirty = true;
	return write_dirty_meta(c);
}

/* Wait until no read or in-place write that started before now is in flight. lock held. */
static void io_grace(struct wcache *c)
{
	uint64_t ep = c->io_epoch;

	c->grace_waiters++;
	while (c->io_count[(ep + 1) & 1])
		pthread_cond_wait(&c->cond, &c->lock);
	c->io_epoch = ep + 1;
	while (c->io_count[ep & 1])
		pthread_cond_wait(&c->cond, &c->lock);
	c->grace_waiters--;
}

int wc_persist_and_release(struct wcache *c)
{
	/*
	 * The frees listed now are all in the snapshot written next; frees made
	 * while the lock is dropped for I/O are appended after them and wait
	 * for the next call (meta_mutex keeps calls from overlapping).
	 */
	uint64_t n = c->pend.n;
	int ret;

	if (!n && !c->meta_dirty)
		return 0;
	ret = write_dirty_meta(c);
	if (!ret) {
		pthread_mutex_unlock(&c->lock);
		/* Frees must be durable before a block is reused for other data. */
		ret = dev_flush(c->cache);
		pthread_mutex_lock(&c->lock);
	}
	if (ret) {
		/* Error state from now on; these blocks are never reused. */
		wc_set_error(c, ret, "writing metadata");
		wc_elist_drop_front(&c->pend, n);
		return ret;
	}
	if (!n)
		return 0;
	io_grace(c);
	for (uint64_t i = 0; i < n; i++) {
		uint32_t e = c->pend.v[i];

		c->state[e] = 0;
		c->free_bm[e >> 6] |= 1ull << (e & 63);
		c->nr_free++;
		c->nr_pend--;
	}
	wc_elist_drop_front(&c->pend, n);
	wc_grant_waiters(c);
	pthread_cond_broadcast(&c->cond);
	return 0;
}

int wc_sync_frees(struct wcache *c)
{
	int ret;

	pthread_mutex_lock(&c->meta_mutex);
	pthread_mutex_lock(&c->lock);
	ret = wc_persist_and_release(c);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->meta_mutex);
	return ret;
}

/*
 * Free superseded copies once the sector's newest copy is committed (or the
 * sector was discarded). Until then the old copy is what recovery would
 * return, so it must stay. lock held.
 */
static void gc_old(struct wcache *c)
{
	uint64_t i = 0;

	/* ordered_writeback: each old copy is its epoch's, written back with it. */
	if (c->cfg.ordered_writeback)
		return;
	while (i < c->old.n) {
		uint32_t e = c->old.v[i];
		uint32_t cur = wc_idx_lookup(&c->idx, entry_sector(c->meta, e));

		if ((cur == IDX_NONE || committed(c, cur)) && !(c->state[e] & (ST_WB | ST_WR_MASK))) {
			/* The last one moves to i: look at i again. */
			wc_elist_remove_at(&c->old, i);
			wc_old_forget(c, e);
			wc_free_entry(c, e);
		} else {
			i++;
		}
	}
	wc_elist_trim(&c->old);
}

static int write_sb_region(struct wcache *c, uint64_t new_seq)
{
	uint64_t len = c->bs > 4096 ? c->bs : 4096;
	uint8_t *buf;
	int ret;

	if (len > c->meta_bytes)
		len = c->meta_bytes;
	buf = malloc(len);
	if (!buf)
		return wc_err(-ENOMEM, "out of memory for a superblock write");
	/* From here on every granule-0 snapshot carries the new seq_count. */
	put_le64(c->meta + 24, new_seq);
	memcpy(buf, c->meta, len);
	pthread_mutex_unlock(&c->lock);
	ret = dev_pwrite(c->cache, buf, len, c->base);
	if (!ret)
		ret = dev_flush(c->cache);	/* the durability point of the commit */
	pthread_mutex_lock(&c->lock);
	if (ret)
		put_le64(c->meta + 24, c->disk_seq);
	free(buf);
	return ret;
}

int wc_commit(struct wcache *c, bool force)
{
	uint64_t called_at, num, new_seq = 0, t0;
	bool bump, overwrote, wrote_meta;
	int ret;

	pthread_mutex_lock(&c->lock);
	called_at = c->commit_started;
	pthread_mutex_unlock(&c->lock);

	pthread_mutex_lock(&c->meta_mutex);
	pthread_mutex_lock(&c->lock);
	ret = wc_get_error(c);
	if (ret) {
		wc_err(ret, "cache is in error state: %s", strerror(-ret));
		goto out;
	}
	if (c->commit_done > called_at && !force)
		goto out;	/* a commit that started after our call has finished */
	bump = c->txn_dirty;
	if (bump && c->seq + 1 >= WC_SEQ_LIMIT) {
		/* Activation refuses a seq_count this high, so never write one. */
		ret = wc_err(-EOVERFLOW, "seq_count %llu: no commit is possible past 2^63",
			     (unsigned long long)c->seq);
		wc_set_error(c, ret, "commit");
		goto out;
	}
	num = ++c->commit_started;
	t0 = wc_now_ns();
	if (bump) {
		new_seq = c->seq + 1;
		c->seq = new_seq;	/* later entries belong to the next transaction */
		c->txn_dirty = false;
		c->nr_uncommitted = 0;
	}
	overwrote = c->overwrote;
	c->overwrote = false;
	/*
	 * pmem mode: in-place writes to blocks of the transaction being
	 * committed (mapped before seq moved on) must end before the fence, or
	 * the commit could make a half-stored block valid. Later ones cannot
	 * touch these blocks (in_place_ok in io.c).
	 */
	if (bump && c->cfg.mode == WC_MODE_PMEM)
		io_grace(c);
	wrote_meta = c->meta_dirty;
	ret = write_dirty_meta(c);
	if (!ret && (bump || overwrote || wrote_meta || force)) {
		pthread_mutex_unlock(&c->lock);
		ret = dev_flush(c->cache);
		pthread_mutex_lock(&c->lock);
	}
	if (!ret && bump)
		ret = write_sb_region(c, new_seq);
	if (!ret && atomic_exchange(&c->origin_dirty, false)) {
		pthread_mutex_unlock(&c->lock);
		ret = wc_origin_io(c, dev_flush(c->origin));
		pthread_mutex_lock(&c->lock);
		if (ret)
			atomic_store(&c->origin_dirty, true);
	}
	if (ret) {
		wc_set_error(c, ret, "commit");
		goto out;
	}
	if (bump) {
		c->disk_seq = new_seq;
		c->commit_seq[new_seq % WC_COMMIT_RING] = new_seq;
		c->commit_ns[new_seq % WC_COMMIT_RING] = wc_now_ns();
	}
	c->commit_done = num;
	c->st.commits++;
	{
		uint64_t t1 = wc_now_ns();

		wc_hist_observe(&c->h_commit_ns, t1 - t0);
		atomic_store_explicit(&c->last_commit_ns, t1, memory_order_relaxed);
	}
	gc_old(c);
	ret = wc_persist_and_release(c);
out:
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->meta_mutex);
	return ret;
}
