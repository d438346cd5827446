/* SPDX-License-Identifier: MIT */
/*
 * Sector -> cache entry index: open addressing with linear probing over
 * 32-bit slots; the key of a slot is read from the metadata RAM copy
 * (entry_sector), so a slot costs 4 bytes. The bits of a slot that entry
 * numbers do not need (8 of them at 10M blocks) hold a tag from a second hash
 * of the sector, so a probe reads the metadata only when the tag matches:
 * without it, every probe past an occupied slot is a cache miss. Deletion by
 * backward shift (no tombstones). Not thread-safe: callers hold the cache lock.
 */
#ifndef WC_INDEX_H
#define WC_INDEX_H

#include <stdint.h>
#include <stddef.h>

#define IDX_NONE UINT32_MAX

struct wc_index {
	uint32_t *slots;
	uint64_t nr_slots;
	uint64_t count;
	const uint8_t *meta;	/* keys: entry_sector(meta, slot & emask) */
	uint32_t emask;		/* entry-number bits of a slot; the bits above are the tag */
	unsigned ebits;		/* popcount of emask (32: no tag) */
};

/* Capacity for up to max_entries (must be < 2^32 - 1). Returns 0 or -ENOMEM. */
int wc_idx_init(struct wc_index *ix, uint64_t max_entries, const uint8_t *meta);
void wc_idx_free(struct wc_index *ix);
void wc_idx_clear(struct wc_index *ix);

/* Entry caching sector, or IDX_NONE. */
uint32_t wc_idx_lookup(const struct wc_index *ix, uint64_t sector);
/* Insert e (its sector must not be present). */
void wc_idx_insert(struct wc_index *ix, uint32_t e);
/* Replace the entry for the same sector as e_old with e_new (same key). */
void wc_idx_replace(struct wc_index *ix, uint32_t e_old, uint32_t e_new);
/* Remove e (present). Returns 0, or -ENOENT if e is not the indexed entry for its sector. */
int wc_idx_remove(struct wc_index *ix, uint32_t e);

/* Start loading the slot where a lookup of sector begins (bulk inserts). */
void wc_idx_prefetch(const struct wc_index *ix, uint64_t sector);

/* Bytes of RAM used per indexed block at capacity (for reports). */
double wc_idx_bytes_per_block(const struct wc_index *ix, uint64_t n_blocks);

#endif
