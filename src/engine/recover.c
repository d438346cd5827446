/* SPDX-License-Identifier: MIT */
/* Recovery scan: rebuild the index from on-disk entries (see recover.h). */
#include <string.h>

#include "recover.h"

#define RECOVER_PREFETCH 16

void wc_recover_begin(struct wc_index *ix, struct recover_report *r)
{
	memset(r, 0, sizeof(*r));
	if (ix->count)	/* a fresh index is empty already: skip clearing 5 B per block again */
		wc_idx_clear(ix);
}

void wc_recover_scan(uint8_t *meta, const struct wc_sb *sb, uint64_t origin_sectors,
		  struct wc_index *ix, struct recover_report *r)
{
	wc_recover_begin(ix, r);
	wc_recover_range(meta, sb, origin_sectors, ix, r, 0, sb->n_blocks);
}

void wc_recover_range(uint8_t *meta, const struct wc_sb *sb, uint64_t origin_sectors,
		   struct wc_index *ix, struct recover_report *r, uint64_t from, uint64_t to)
{
	uint64_t bs_sect = sb->block_size / 512;

	for (uint64_t i = from; i < to; i++) {
		uint64_t seq = entry_seq(meta, i);
		uint64_t sector = entry_sector(meta, i);
		uint32_t other;

		/*
		 * The home slots of a full cache's entries are random in an index
		 * far larger than the CPU caches: start loading them well ahead so
		 * the misses overlap instead of costing one after another.
		 */
		if (i + RECOVER_PREFETCH < to &&
		    entry_seq(meta, i + RECOVER_PREFETCH) != WC_SEQ_FREE)
			wc_idx_prefetch(ix, entry_sector(meta, i + RECOVER_PREFETCH));

		if (seq == WC_SEQ_FREE) {
			r->nr_free++;
			continue;
		}
		if (seq >= sb->seq_count) {
			/* Unfinished transaction: its data may never have been written. */
			entry_set(meta, i, sector, WC_SEQ_FREE);
			r->nr_uncommitted++;
			r->changed = true;
			continue;
		}
		if (sector % bs_sect || (origin_sectors && sector >= origin_sectors)) {
			if (!r->nr_past_origin) {
				r->past_idx = i;
				r->past_sector = sector;
			}
			r->nr_past_origin++;
			continue;
		}
		other = wc_idx_lookup(ix, sector);
		if (other == IDX_NONE) {
			wc_idx_insert(ix, (uint32_t)i);
			r->nr_valid++;
			continue;
		}
		if (entry_seq(meta, other) == seq && !r->nr_equal_dups++) {
			r->dup_idx = i;
			r->dup_other = other;
			r->dup_sector = sector;
			r->dup_seq = seq;
		}
		r->nr_superseded++;
		if (r->keep_superseded) {
			if (entry_seq(meta, other) < seq)
				wc_idx_replace(ix, other, (uint32_t)i);
			continue;
		}
		r->changed = true;
		if (entry_seq(meta, other) > seq) {
			entry_set(meta, i, sector, WC_SEQ_FREE);
		} else {
			/* Equal seq: the later index wins, like the kernel's tree insert. */
			wc_idx_replace(ix, other, (uint32_t)i);
			entry_set(meta, other, sector, WC_SEQ_FREE);
		}
	}
}
