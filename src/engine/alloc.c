/* SPDX-License-Identifier: MIT */
/*
 * Block allocator and entry life cycle: free bitmap with a rotating cursor
 * (the kernel's SSD allocation order), reservation, installation into the
 * index, superseding, freeing via the pending list, and the I/O epochs that
 * tell when a freed block can no longer be touched by a reader.
 * All functions run with c->lock held.
 */
#include <string.h>

#include "log.h"
#include "engine.h"

static bool is_free(const struct wcache *c, uint64_t e)
{
	return c->free_bm[e >> 6] & (1ull << (e & 63));
}

static void take(struct wcache *c, uint64_t e)
{
	c->free_bm[e >> 6] &= ~(1ull << (e & 63));
	c->nr_free--;
	c->state[e] = ST_RSVD;
}

uint32_t wc_alloc_block(struct wcache *c)
{
	uint64_t nw = (c->n_blocks + 63) / 64;
	uint64_t w = c->free_cursor >> 6;

	if (!c->nr_free)
		return IDX_NONE;
	/* Mask the bits below the cursor in the first word; revisit them last. */
	for (uint64_t k = 0; k <= nw; k++, w = (w + 1 == nw) ? 0 : w + 1) {
		uint64_t bits = c->free_bm[w];

		if (k == 0)
			bits &= ~0ull << (c->free_cursor & 63);
		if (bits) {
			uint64_t e = w * 64 + (uint64_t)__builtin_ctzll(bits);

			take(c, e);
			c->free_cursor = e + 1 == c->n_blocks ? 0 : e + 1;
			return (uint32_t)e;
		}
	}
	WC_BUG_ON(1);	/* nr_free > 0 but no bit set */
	return IDX_NONE;
}

bool wc_alloc_next_if_free(struct wcache *c, uint32_t e)
{
	if (e >= c->n_blocks || !is_free(c, e))
		return false;
	take(c, e);
	c->free_cursor = e + 1 == c->n_blocks ? 0 : e + 1;
	return true;
}

void wc_unreserve_block(struct wcache *c, uint32_t e)
{
	c->state[e] = 0;
	c->free_bm[e >> 6] |= 1ull << (e & 63);
	c->nr_free++;
	wc_grant_waiters(c);
	pthread_cond_broadcast(&c->cond);	/* a write may be waiting for space */
}

/*
 * Granting here, by whoever frees, serves every waiter in one pass; a
 * chain of wake-ups, each waiter taking its own block and waking the next,
 * costs a context switch per waiter on a busy machine.
 */
void wc_grant_waiters(struct wcache *c)
{
	for (struct wc_space_waiter *w = c->space_head; w && c->nr_free && c->space_ungranted;
	     w = w->next) {
		if (w->granted != IDX_NONE)
			continue;
		w->granted = wc_alloc_block(c);
		c->space_ungranted--;
		pthread_cond_signal(&w->cond);
	}
}

/* Entry e changed in the RAM metadata: its granule goes out with the next metadata write. */
static void mark_entry_dirty(struct wcache *c, uint64_t e)
{
	uint64_t g = (WC_SB_BYTES + e * WC_ENTRY_BYTES) / WC_GRANULE_BYTES;

	c->gran_dirty[g] = 1;
	c->meta_dirty = true;
}

/* An installed entry (valid or superseded) comes or goes: the region's max_age clock. */
void wc_region_install(struct wcache *c, uint32_t e)
{
	uint64_t r = e >> WC_AGE_SHIFT;

	if (!c->region_used[r]++)
		c->region_age[r] = wc_now_age(c) + 1;
}

static void region_uninstall(struct wcache *c, uint32_t e)
{
	uint64_t r = e >> WC_AGE_SHIFT;

	WC_BUG_ON(!c->region_used[r]);
	if (!--c->region_used[r])
		c->region_age[r] = 0;
}

bool wc_region_older_than(const struct wcache *c, uint32_t e, uint32_t now, uint32_t min_age)
{
	uint32_t a = c->region_age[e >> WC_AGE_SHIFT];

	return a && now - (a - 1) >= min_age;
}

void wc_free_entry(struct wcache *c, uint32_t e)
{
	entry_set(c->meta, e, entry_sector(c->meta, e), WC_SEQ_FREE);
	mark_entry_dirty(c, e);
	c->state[e] = ST_PEND | (c->state[e] & ST_WR_MASK);
	region_uninstall(c, e);
	wc_elist_push(&c->pend, e);
	c->nr_pend++;
}

static unsigned old_bucket(uint64_t sector)
{
	return (unsigned)((sector * 0x9E3779B97F4A7C15ull) >> 54) % WC_OLD_BUCKETS;
}

bool wc_old_may_have(const struct wcache *c, uint64_t sector)
{
	return c->old.n && c->old_hash[old_bucket(sector)];
}

void wc_old_add(struct wcache *c, uint32_t e)
{
	c->state[e] |= ST_OLD;
	wc_elist_push(&c->old, e);
	c->old_hash[old_bucket(entry_sector(c->meta, e))]++;
}

void wc_old_remove(struct wcache *c, uint32_t e)
{
	WC_BUG_ON(!wc_elist_remove(&c->old, e));
	wc_old_forget(c, e);
}

void wc_old_forget(struct wcache *c, uint32_t e)
{
	c->old_hash[old_bucket(entry_sector(c->meta, e))]--;
	c->state[e] &= (uint8_t)~ST_OLD;
}

/* Put the data-filled reserved block e in service as the newest copy of blk. */
void wc_install_entry(struct wcache *c, uint32_t e, uint64_t blk)
{
	uint64_t sector = blk * c->bs_sect;
	uint32_t prev = wc_idx_lookup(&c->idx, sector);

	entry_set(c->meta, e, sector, c->seq);
	mark_entry_dirty(c, e);
	c->state[e] = 0;
	wc_region_install(c, e);
	if (prev == IDX_NONE) {
		wc_idx_insert(&c->idx, e);
	} else {
		wc_idx_replace(&c->idx, prev, e);
		if (entry_seq(c->meta, prev) != c->seq || (c->state[prev] & ST_WB)) {
			/*
			 * Keep the old copy until the new one is committed (GC in commit).
			 * That includes a copy of a transaction whose commit is in flight
			 * (tagged below c->seq, not yet below disk_seq): it becomes valid.
			 */
			wc_old_add(c, prev);
		} else {
			wc_free_entry(c, prev);	/* uncommitted: invalid after a crash anyway */
			c->nr_uncommitted -= c->nr_uncommitted > 0;
		}
	}
	if (!c->txn_dirty) {
		c->txn_dirty = true;
		c->txn_start_ns = wc_now_ns();
	}
	c->nr_uncommitted++;
	c->st.writes_allocate++;
}

uint64_t wc_io_enter(struct wcache *c)
{
	uint64_t ep = c->io_epoch;

	c->io_count[ep & 1]++;
	return ep;
}

void wc_io_exit(struct wcache *c, uint64_t ep)
{
	/*
	 * Only a grace period waits for this. Waking every sleeper of c->cond
	 * (writeback, service thread) at the end of each read cost about three
	 * context switches per request.
	 */
	if (--c->io_count[ep & 1] == 0 && c->grace_waiters)
		pthread_cond_broadcast(&c->cond);
}
