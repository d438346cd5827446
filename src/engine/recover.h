/* SPDX-License-Identifier: MIT */
/*
 * Recovery scan (docs/format.md §5): from the metadata RAM copy, rebuild the
 * index of committed entries, resolving duplicates by highest seq_count.
 * Deterministic: same bytes, same result. Reports every anomaly.
 */
#ifndef WC_RECOVER_H
#define WC_RECOVER_H

#include <stdbool.h>
#include <stdint.h>

#include "index.h"
#include "meta.h"

struct recover_report {
	uint64_t nr_valid;		/* winners, in the index */
	uint64_t nr_free;		/* seq -1 */
	uint64_t nr_uncommitted;	/* reset to -1 */
	uint64_t nr_superseded;		/* committed losers, reset to -1 */
	uint64_t nr_equal_dups;		/* corruption */
	uint64_t nr_past_origin;	/* corruption (or wrong origin) */
	uint64_t dup_idx, dup_other, dup_sector, dup_seq;	/* first equal-seq duplicate */
	uint64_t past_idx, past_sector;				/* first past-origin entry */
	bool changed;			/* meta was modified: must be rewritten */
	/*
	 * Set after wc_recover_begin (ordered_writeback): superseded entries
	 * stay in meta as they are, only the newest copy of a sector is indexed.
	 */
	bool keep_superseded;
};

/*
 * Scan entries of meta (n = sb->n_blocks). Uncommitted and superseded entries
 * get seq -1 in meta. Past-origin entries (origin_sectors != 0) are left alone
 * and not indexed. Sectors not aligned to the block are treated like past-origin.
 */
void wc_recover_scan(uint8_t *meta, const struct wc_sb *sb, uint64_t origin_sectors,
		  struct wc_index *ix, struct recover_report *r);

/*
 * The same scan in pieces, so it can follow the metadata as it is read:
 * wc_recover_begin(), then wc_recover_range() over consecutive entry ranges
 * [from, to) that together cover 0..n_blocks-1 in order.
 */
void wc_recover_begin(struct wc_index *ix, struct recover_report *r);
void wc_recover_range(uint8_t *meta, const struct wc_sb *sb, uint64_t origin_sectors,
		   struct wc_index *ix, struct recover_report *r, uint64_t from, uint64_t to);

#endif
