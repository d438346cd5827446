/* SPDX-License-Identifier: MIT */
/*
 * The I/O paths: read, write (aligned blocks and read-modify-write of
 * partial blocks), write-zeroes, discard, flush. Device I/O happens with
 * c->lock dropped; see engine.h for the visibility and reuse rules.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "engine.h"

#define MAX_RUN_BLOCKS	256u
#define MAX_SEGS	64u

enum seg_kind { SEG_INPLACE, SEG_NEW, SEG_AROUND, SEG_ORIGIN, SEG_CACHE };

struct seg {
	enum seg_kind kind;
	uint32_t e0;		/* first cache entry (cache kinds) */
	uint64_t blk0;		/* first logical block */
	uint64_t nblk;
	uint64_t dev_off;	/* read path: device byte offset */
	uint64_t len;		/* read path: bytes */
	uint8_t *buf;
};

static int check_range(struct wcache *c, uint64_t len, uint64_t off, const char *op)
{
	if (off > c->origin_bytes || len > c->origin_bytes - off)
		return wc_err(-EINVAL, "%s of %llu bytes at %llu is beyond the device end (%llu bytes)",
			      op, (unsigned long long)len, (unsigned long long)off,
			      (unsigned long long)c->origin_bytes);
	return 0;
}

static uint64_t sector_of(const struct wcache *c, uint64_t blk)
{
	return blk * c->bs_sect;
}

/* ---------------- read ---------------- */

int wcache_read(struct wcache *c, void *vbuf, size_t len, uint64_t off)
{
	uint8_t *buf = vbuf;
	uint64_t first, last, nseg = 0, hits = 0, ep;
	struct seg *segs;
	int ret = check_range(c, len, off, "read");

	if (ret || !len)
		return ret;
	first = off >> c->bs_shift;
	last = (off + len - 1) >> c->bs_shift;
	segs = malloc(sizeof(*segs) * (last - first + 1));
	if (!segs)
		return wc_err(-ENOMEM, "read: out of memory for %llu blocks",
			      (unsigned long long)(last - first + 1));

	pthread_mutex_lock(&c->lock);
	ep = wc_io_enter(c);
	for (uint64_t b = first; b <= last; b++) {
		uint64_t bstart = b << c->bs_shift;
		uint64_t s = off > bstart ? off : bstart;
		uint64_t e = off + len < bstart + c->bs ? off + len : bstart + c->bs;
		uint32_t ent = wc_idx_lookup(&c->idx, sector_of(c, b));
		enum seg_kind kind = ent == IDX_NONE ? SEG_ORIGIN : SEG_CACHE;
		uint64_t dev_off = kind == SEG_CACHE ? blk_off(c, ent) + (s - bstart) : s;
		struct seg *p = nseg ? &segs[nseg - 1] : NULL;

		hits += kind == SEG_CACHE;
		if (p && p->kind == kind && p->dev_off + p->len == dev_off) {
			p->len += e - s;
		} else {
			segs[nseg++] = (struct seg){ .kind = kind, .dev_off = dev_off, .len = e - s,
						    .buf = buf + (s - off) };
		}
	}
	c->st.reads += last - first + 1;
	c->st.read_hits += hits;
	pthread_mutex_unlock(&c->lock);

	for (uint64_t i = 0; i < nseg && !ret; i++) {
		struct wc_dev *d = segs[i].kind == SEG_CACHE ? c->cache : c->origin;

		ret = dev_pread(d, segs[i].buf, segs[i].len, segs[i].dev_off);
		if (segs[i].kind != SEG_CACHE)
			wc_origin_io(c, ret);
		if (ret) {
			char why[256];	/* the device's own message (a memory error says so) */

			snprintf(why, sizeof(why), "%s", wcache_last_error());
			wc_err(ret, "read from %s device failed: %s",
			       segs[i].kind == SEG_CACHE ? "cache" : "origin", why);
		}
	}
	pthread_mutex_lock(&c->lock);
	wc_io_exit(c, ep);
	pthread_mutex_unlock(&c->lock);
	free(segs);
	return ret;
}

/* ---------------- waiting for space ---------------- */

static void space_dequeue(struct wcache *c, struct wc_space_waiter *w)
{
	struct wc_space_waiter **pp = &c->space_head, *prev = NULL;

	while (*pp != w) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	*pp = w->next;
	if (c->space_tail == w)
		c->space_tail = prev;
}

/*
 * Called with no locks held when a write needs a free block and none is
 * left. Waiters are served in arrival order: whoever frees blocks hands
 * them out (wc_grant_waiters), and each waiter leaves with the block it
 * was woken for in *reserved (the Linux 4.19 lesson: a woken waiter that
 * must race newcomers for the block can starve).
 */
static int wait_for_space(struct wcache *c, uint32_t *reserved)
{
	uint64_t t0 = wc_now_ns(), deadline = t0 + (uint64_t)c->cfg.full_wait_ms * 1000000ull;
	struct wc_space_waiter w = { .next = NULL, .granted = IDX_NONE };
	int ret = 0;

	wc_cond_init_monotonic(&w.cond);
	pthread_mutex_lock(&c->lock);
	c->st.writes_blocked_on_freelist++;
	c->st.full_waits++;
	if (c->space_tail)
		c->space_tail->next = &w;
	else
		c->space_head = &w;
	c->space_tail = &w;
	c->space_ungranted++;
	wc_grant_waiters(c);
	for (;;) {
		struct timespec ts;
		uint64_t t;

		if (w.granted != IDX_NONE)
			break;
		ret = wc_get_error(c);
		if (ret) {
			wc_err(ret, "cache is in error state: %s", strerror(-ret));
			break;
		}
		if (c->nr_pend) {
			pthread_mutex_unlock(&c->lock);
			ret = wc_sync_frees(c);
			pthread_mutex_lock(&c->lock);
			continue;
		}
		if (c->txn_dirty && c->nr_wb == 0) {
			/* Uncommitted blocks cannot be written back: commit them. */
			pthread_mutex_unlock(&c->lock);
			ret = wc_commit(c, false);
			pthread_mutex_lock(&c->lock);
			if (ret)
				break;
		}
		wc_kick_writeback(c);
		t = wc_now_ns();
		if (t >= deadline) {
			ret = wc_err(-ETIMEDOUT, "cache full: no block freed within %u ms",
				     c->cfg.full_wait_ms);
			break;
		}
		/*
		 * Own condition variable: a grant wakes this waiter alone (c->cond
		 * is broadcast for every state change). Anything else it waits for
		 * (pending frees, a commit) is looked at again within 50 ms.
		 */
		t += 50000000ull;
		ts = wc_deadline_ts(t < deadline ? t : deadline);
		pthread_cond_timedwait(&w.cond, &c->lock, &ts);
	}
	space_dequeue(c, &w);
	if (w.granted == IDX_NONE)
		c->space_ungranted--;
	else if (ret)
		wc_unreserve_block(c, w.granted);	/* (grants it to the next waiter) */
	else
		*reserved = w.granted;
	c->st.full_wait_ns += wc_now_ns() - t0;
	pthread_mutex_unlock(&c->lock);
	pthread_cond_destroy(&w.cond);
	return ret;
}

/*
 * A free block for a write: the one reserved for it while it waited, else
 * any free block unless others are waiting for one (they come first).
 * lock held.
 */
static uint32_t take_block(struct wcache *c, uint32_t *reserved)
{
	uint32_t f = *reserved;

	if (f != IDX_NONE) {
		*reserved = IDX_NONE;
		return f;
	}
	return c->space_ungranted ? IDX_NONE : wc_alloc_block(c);
}

/* Give back a reservation the write did not use. */
static void drop_reservation(struct wcache *c, uint32_t *reserved)
{
	if (*reserved == IDX_NONE)
		return;
	pthread_mutex_lock(&c->lock);
	wc_unreserve_block(c, *reserved);
	pthread_mutex_unlock(&c->lock);
	*reserved = IDX_NONE;
}

/* ---------------- aligned block writes ---------------- */

static bool wr_full(const struct wcache *c, uint32_t e)
{
	return (c->state[e] & ST_WR_MASK) == ST_WR_MASK;
}

/*
 * May a write to cached block e overwrite it in place? Always in the
 * kernel's SSD mode. Otherwise only a block of the open transaction: a
 * committed block (or one whose commit is in flight) takes a new block, and
 * the old copy stays valid until the new one is committed. pmem mode (as in
 * the kernel): a store that is not yet flushed can tear at 8 bytes, so a
 * committed block is never written over. ordered_writeback: a committed
 * block is its epoch's copy, which must reach the origin with that epoch.
 * lock held.
 */
static bool in_place_ok(const struct wcache *c, uint32_t e)
{
	return (!c->cfg.ordered_writeback && c->cfg.mode != WC_MODE_PMEM) ||
	       entry_seq(c->meta, e) == c->seq;
}

/*
 * May a write to an uncached sector go around the cache to the origin?
 * Not while an older copy is cached (it could shadow the write), and never
 * with ordered_writeback: it would reach the origin before the epochs
 * still in the cache. lock held.
 */
static bool around_allowed(const struct wcache *c, uint64_t sector)
{
	return !c->cfg.ordered_writeback && !wc_old_may_have(c, sector);
}

/*
 * Map as many of the nblk blocks as possible without waiting. lock held.
 * Returns the number of blocks mapped; *need_space when stopped for lack of space.
 */
static uint64_t map_write(struct wcache *c, uint64_t blk, uint64_t nblk, const uint8_t *buf,
			  struct seg *segs, uint64_t *nseg, bool *need_space, uint32_t *reserved)
{
	uint64_t mapped = 0;

	*need_space = false;
	while (mapped < nblk && *nseg < MAX_SEGS) {
		uint64_t b = blk + mapped, n = 1;
		uint32_t e = wc_idx_lookup(&c->idx, sector_of(c, b));
		struct seg *s = &segs[*nseg];

		if (e != IDX_NONE && !(c->state[e] & ST_WB) && in_place_ok(c, e)) {
			if (wr_full(c, e))
				break;
			if (committed(c, e)) {
				c->st.write_hits_committed++;
				c->overwrote = true;
			} else {
				c->st.write_hits_uncommitted++;
			}
			c->state[e] += ST_WR_ONE;
			while (mapped + n < nblk && n < MAX_RUN_BLOCKS) {
				uint32_t x = wc_idx_lookup(&c->idx, sector_of(c, b + n));

				if (x != e + n || (c->state[x] & ST_WB) || wr_full(c, x) ||
				    !in_place_ok(c, x))
					break;
				if (committed(c, x))
					c->overwrote = true;
				c->state[x] += ST_WR_ONE;
				n++;
			}
			*s = (struct seg){ SEG_INPLACE, e, b, n, 0, 0, (uint8_t *)buf + (mapped << c->bs_shift) };
		} else {
			uint32_t f = IDX_NONE;
			bool around_ok = e == IDX_NONE && around_allowed(c, sector_of(c, b));

			/* pmem mode: a hit that must not be overwritten in place still counts. */
			if (e != IDX_NONE && !(c->state[e] & ST_WB)) {
				if (committed(c, e))
					c->st.write_hits_committed++;
				else
					c->st.write_hits_uncommitted++;
			}

			if (!(c->cleaner && around_ok))
				f = take_block(c, reserved);
			if (f == IDX_NONE && !around_ok) {
				/* An older copy is cached: going around would let it shadow us. */
				*need_space = true;
				break;
			}
			if (f == IDX_NONE) {
				while (mapped + n < nblk && n < MAX_RUN_BLOCKS &&
				       wc_idx_lookup(&c->idx, sector_of(c, b + n)) == IDX_NONE &&
				       around_allowed(c, sector_of(c, b + n)))
					n++;
				*s = (struct seg){ SEG_AROUND, 0, b, n, 0, 0,
						   (uint8_t *)buf + (mapped << c->bs_shift) };
				c->st.writes_around += n;
				c->last_around_ns = wc_now_ns();
			} else {
				while (mapped + n < nblk && n < MAX_RUN_BLOCKS &&
				       wc_idx_lookup(&c->idx, sector_of(c, b + n)) == IDX_NONE &&
				       wc_alloc_next_if_free(c, f + (uint32_t)n))
					n++;
				*s = (struct seg){ SEG_NEW, f, b, n, 0, 0,
						   (uint8_t *)buf + (mapped << c->bs_shift) };
			}
		}
		(*nseg)++;
		mapped += n;
	}
	c->st.writes += mapped;
	return mapped;
}

static int write_segs(struct wcache *c, struct seg *segs, uint64_t nseg)
{
	int ret = 0;

	for (uint64_t i = 0; i < nseg; i++) {
		struct seg *s = &segs[i];
		uint64_t bytes = s->nblk << c->bs_shift;
		int r;

		if (s->kind == SEG_AROUND) {
			uint64_t off = s->blk0 << c->bs_shift;

			if (bytes > c->origin_bytes - off)
				bytes = c->origin_bytes - off;
			r = wc_origin_io(c, dev_pwrite(c->origin, s->buf, bytes, off));
			if (!r)
				atomic_store(&c->origin_dirty, true);
		} else {
			r = dev_pwrite(c->cache, s->buf, bytes, blk_off(c, s->e0));
		}
		if (r && !ret)
			ret = wc_err(r, "write to %s device failed: %s",
				     s->kind == SEG_AROUND ? "origin" : "cache", strerror(-r));
		s->len = (uint64_t)r;	/* remember per-segment status */
	}
	return ret;
}

static void finish_segs(struct wcache *c, struct seg *segs, uint64_t nseg)
{
	for (uint64_t i = 0; i < nseg; i++) {
		struct seg *s = &segs[i];
		int r = (int)(int64_t)s->len;

		for (uint64_t k = 0; k < s->nblk; k++) {
			uint32_t e = s->e0 + (uint32_t)k;

			if (s->kind == SEG_INPLACE)
				c->state[e] -= ST_WR_ONE;
			else if (s->kind == SEG_NEW && !r)
				wc_install_entry(c, e, s->blk0 + k);
			else if (s->kind == SEG_NEW)
				wc_unreserve_block(c, e);
		}
		/* A failed in-place write leaves a committed block with unknown data. */
		if (r && s->kind == SEG_INPLACE)
			wc_set_error(c, r, "in-place data write to the cache device");
		/*
		 * The next commit must flush the cache device even if a commit ran
		 * while this write was in flight (it cleared the flag set at map
		 * time, or committed the block under us).
		 */
		if (s->kind == SEG_INPLACE)
			c->overwrote = true;
	}
}

static void after_write(struct wcache *c)
{
	if (c->nr_uncommitted >= c->cfg.autocommit_blocks && !c->want_commit) {
		c->want_commit = true;
		pthread_cond_broadcast(&c->cond);
	}
	if (c->nr_free + c->nr_pend + c->nr_wb <= wc_free_high(c))
		wc_kick_writeback(c);
}

static int write_blocks(struct wcache *c, const uint8_t *buf, uint64_t blk, uint64_t nblk)
{
	struct seg segs[MAX_SEGS];
	uint32_t reserved = IDX_NONE;
	int ret = 0;

	while (nblk && !ret) {
		uint64_t nseg = 0, mapped, ep;
		bool need_space;

		pthread_mutex_lock(&c->lock);
		ret = wc_get_error(c);
		if (ret) {
			pthread_mutex_unlock(&c->lock);
			drop_reservation(c, &reserved);
			return wc_err(ret, "cache is in error state: %s", strerror(-ret));
		}
		ep = wc_io_enter(c);
		mapped = map_write(c, blk, nblk, buf, segs, &nseg, &need_space, &reserved);
		pthread_mutex_unlock(&c->lock);

		ret = write_segs(c, segs, nseg);

		pthread_mutex_lock(&c->lock);
		finish_segs(c, segs, nseg);
		wc_io_exit(c, ep);
		after_write(c);
		pthread_mutex_unlock(&c->lock);

		buf += mapped << c->bs_shift;
		blk += mapped;
		nblk -= mapped;
		if (!ret && need_space)
			ret = wait_for_space(c, &reserved);
		else if (!ret && !mapped)
			sched_yield();	/* 15 in-place writes in flight on one block */
	}
	drop_reservation(c, &reserved);
	return ret;
}

/* ---------------- partial blocks (read-modify-write) ---------------- */

static int write_partial(struct wcache *c, const uint8_t *src, uint64_t blk, uint32_t boff,
			 uint32_t len)
{
	pthread_mutex_t *stripe = &c->stripe[blk % WC_NR_STRIPES];
	uint8_t *tmp = NULL;
	uint32_t reserved = IDX_NONE;
	int ret;

	pthread_mutex_lock(stripe);
	for (;;) {
		uint32_t e, f;
		uint64_t ep;
		bool around_ok;

		pthread_mutex_lock(&c->lock);
		ret = wc_get_error(c);
		if (ret) {
			pthread_mutex_unlock(&c->lock);
			ret = wc_err(ret, "cache is in error state: %s", strerror(-ret));
			break;
		}
		e = wc_idx_lookup(&c->idx, sector_of(c, blk));
		c->st.writes++;
		if (e != IDX_NONE && !(c->state[e] & ST_WB) && !committed(c, e) && !wr_full(c, e) &&
		    in_place_ok(c, e)) {
			/* Uncommitted: invalid after a crash anyway, so write in place. */
			c->st.write_hits_uncommitted++;
			c->state[e] += ST_WR_ONE;
			ep = wc_io_enter(c);
			pthread_mutex_unlock(&c->lock);
			ret = dev_pwrite(c->cache, src, len, blk_off(c, e) + boff);
			pthread_mutex_lock(&c->lock);
			wc_io_exit(c, ep);
			c->state[e] -= ST_WR_ONE;
			c->overwrote = true;	/* a commit may have taken e meanwhile */
			if (ret)
				wc_set_error(c, ret, "in-place data write to the cache device");
			pthread_mutex_unlock(&c->lock);
			break;
		}
		around_ok = e == IDX_NONE && around_allowed(c, sector_of(c, blk));
		f = IDX_NONE;
		if (!(c->cleaner && around_ok))
			f = take_block(c, &reserved);
		if (f == IDX_NONE && around_ok) {
			c->st.writes_around++;
			c->last_around_ns = wc_now_ns();
			pthread_mutex_unlock(&c->lock);
			ret = wc_origin_io(c, dev_pwrite(c->origin, src, len,
							 (blk << c->bs_shift) + boff));
			if (!ret)
				atomic_store(&c->origin_dirty, true);
			break;
		}
		if (f == IDX_NONE) {
			c->st.writes--;	/* counted again on retry */
			pthread_mutex_unlock(&c->lock);
			ret = wait_for_space(c, &reserved);
			if (ret)
				break;
			continue;
		}
		/* Merge into a fresh block; the committed copy stays intact until commit. */
		c->st.rmw_writes++;
		if (e != IDX_NONE)
			c->st.write_hits_committed++;
		ep = wc_io_enter(c);
		pthread_mutex_unlock(&c->lock);
		if (!tmp)
			tmp = malloc(c->bs);
		if (!tmp) {
			ret = -ENOMEM;
		} else if (e != IDX_NONE) {
			ret = dev_pread(c->cache, tmp, c->bs, blk_off(c, e));
		} else {
			uint64_t o = blk << c->bs_shift;
			uint64_t n = c->origin_bytes - o < c->bs ? c->origin_bytes - o : c->bs;

			memset(tmp, 0, c->bs);
			ret = wc_origin_io(c, dev_pread(c->origin, tmp, n, o));
		}
		if (!ret) {
			memcpy(tmp + boff, src, len);
			ret = dev_pwrite(c->cache, tmp, c->bs, blk_off(c, f));
		}
		pthread_mutex_lock(&c->lock);
		wc_io_exit(c, ep);
		if (ret) {
			wc_unreserve_block(c, f);
			wc_err(ret, "read-modify-write of block %llu failed: %s",
			       (unsigned long long)blk, strerror(-ret));
		} else {
			wc_install_entry(c, f, blk);
		}
		after_write(c);
		pthread_mutex_unlock(&c->lock);
		break;
	}
	drop_reservation(c, &reserved);
	pthread_mutex_unlock(stripe);
	free(tmp);
	return ret;
}

static int write_impl(struct wcache *c, const void *vbuf, size_t len, uint64_t off,
		      unsigned flags)
{
	const uint8_t *buf = vbuf;
	uint64_t end = off + len;
	int ret;

	if (c->read_only)
		return wc_err(-EROFS, "cache opened read-only");
	ret = check_range(c, len, off, "write");
	if (ret || !len)
		goto fua;
	/* Head: partial first block. */
	if (off & (c->bs - 1)) {
		uint64_t blk = off >> c->bs_shift;
		uint32_t boff = (uint32_t)(off & (c->bs - 1));
		uint32_t n = (uint32_t)((end - off) < c->bs - boff ? end - off : c->bs - boff);

		ret = write_partial(c, buf, blk, boff, n);
		if (ret)
			return ret;
		buf += n;
		off += n;
	}
	/* Middle: whole blocks. The last block of the device may be short. */
	if (end - off >= c->bs) {
		uint64_t nblk = (end - off) >> c->bs_shift;

		ret = write_blocks(c, buf, off >> c->bs_shift, nblk);
		if (ret)
			return ret;
		buf += nblk << c->bs_shift;
		off += nblk << c->bs_shift;
	}
	/* Tail. */
	if (off < end) {
		ret = write_partial(c, buf, off >> c->bs_shift, 0, (uint32_t)(end - off));
		if (ret)
			return ret;
	}
fua:
	if (!ret && (flags & WC_FUA)) {
		pthread_mutex_lock(&c->lock);
		c->st.fua_writes++;
		pthread_mutex_unlock(&c->lock);
		ret = wc_commit(c, false);
	}
	return ret;
}

int wcache_write(struct wcache *c, const void *buf, size_t len, uint64_t off, unsigned flags)
{
	uint64_t t0 = wc_now_ns();
	int ret = write_impl(c, buf, len, off, flags);

	wc_hist_observe(&c->h_write_ns, wc_now_ns() - t0);
	return ret;
}

int wcache_write_zeroes(struct wcache *c, size_t len, uint64_t off, unsigned flags)
{
	size_t chunk = (size_t)1 << 20;
	uint8_t *z;
	int ret;

	ret = check_range(c, len, off, "write_zeroes");
	if (ret)
		return ret;
	z = calloc(1, chunk < len ? chunk : (len ? len : 1));
	if (!z)
		return wc_err(-ENOMEM, "write_zeroes: out of memory");
	while (len && !ret) {
		size_t n = len < chunk ? len : chunk;

		ret = wcache_write(c, z, n, off, 0);
		off += n;
		len -= n;
	}
	free(z);
	if (!ret && (flags & WC_FUA))
		ret = wc_commit(c, false);
	return ret;
}

int wcache_flush(struct wcache *c)
{
	if (c->read_only)
		return 0;
	pthread_mutex_lock(&c->lock);
	c->st.flushes++;
	pthread_mutex_unlock(&c->lock);
	return wc_commit(c, false);
}

/* ---------------- discard ---------------- */

int wcache_discard(struct wcache *c, uint64_t len, uint64_t off, unsigned flags)
{
	uint64_t first, end_blk;
	int ret;

	if (c->read_only)
		return wc_err(-EROFS, "cache opened read-only");
	ret = check_range(c, len, off, "discard");
	if (ret || !len)
		return ret;
	/*
	 * ordered_writeback: freeing a block of an older epoch, or discarding
	 * on the origin now, would change the origin out of epoch order. A
	 * discard may leave the data as it is, so it does.
	 */
	if (c->cfg.ordered_writeback) {
		pthread_mutex_lock(&c->lock);
		c->st.discards += ((off + len + c->bs - 1) >> c->bs_shift) - (off >> c->bs_shift);
		pthread_mutex_unlock(&c->lock);
		return (flags & WC_FUA) ? wc_commit(c, false) : 0;
	}
	/* Only whole blocks leave the cache; partial edges keep their data. */
	first = (off + c->bs - 1) >> c->bs_shift;
	end_blk = (off + len) >> c->bs_shift;
	if (off + len == c->origin_bytes)
		end_blk = (off + len + c->bs - 1) >> c->bs_shift;

	pthread_mutex_lock(&c->meta_mutex);
	pthread_mutex_lock(&c->lock);
	ret = wc_get_error(c);
	if (ret) {
		pthread_mutex_unlock(&c->lock);
		pthread_mutex_unlock(&c->meta_mutex);
		return wc_err(ret, "cache is in error state: %s", strerror(-ret));
	}
	for (uint64_t b = first; b < end_blk; b++) {
		uint32_t e = wc_idx_lookup(&c->idx, sector_of(c, b));

		if (e == IDX_NONE || (c->state[e] & ST_WB))
			continue;
		wc_idx_remove(&c->idx, e);
		if (!committed(c, e) && c->nr_uncommitted)
			c->nr_uncommitted--;
		wc_free_entry(c, e);
	}
	/* Like the kernel: every block the request covers counts, cached or not. */
	c->st.discards += ((off + len + c->bs - 1) >> c->bs_shift) - (off >> c->bs_shift);
	ret = wc_persist_and_release(c);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->meta_mutex);
	if (!ret)
		ret = dev_discard(c->origin, len, off);
	if (!ret && (flags & WC_FUA))
		ret = wc_commit(c, false);
	return ret;
}
