/* SPDX-License-Identifier: MIT */
/* Open-addressing hash index from origin sector to cache entry (see index.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bigalloc.h"
#include "index.h"
#include "meta.h"

static uint64_t home_slot(const struct wc_index *ix, uint64_t sector)
{
	uint64_t h = sector * 0x9E3779B97F4A7C15ull;

	h ^= h >> 29;
	/* Map the 64-bit hash onto [0, nr_slots) without a power-of-two size. */
	return (uint64_t)(((unsigned __int128)h * ix->nr_slots) >> 64);
}

/* Tag of sector, already shifted above the entry bits; 0 when there is no room. */
static uint32_t tag_of(const struct wc_index *ix, uint64_t sector)
{
	if (ix->ebits == 32)
		return 0;
	/* A multiplier unrelated to home_slot's, so tags and home slots are independent. */
	return (uint32_t)((sector * 0xC2B2AE3D27D4EB4Full) >> (64 - (32 - ix->ebits))) << ix->ebits;
}

int wc_idx_init(struct wc_index *ix, uint64_t max_entries, const uint8_t *meta)
{
	/* Load factor at most 0.8: ~5 bytes per block. */
	uint64_t n = max_entries + max_entries / 4 + 16;

	if (max_entries >= IDX_NONE)
		return -EFBIG;
	/*
	 * Entry numbers 0..max_entries-1 must never make a slot equal IDX_NONE,
	 * so the all-ones entry field is kept out of use.
	 */
	ix->ebits = 1;
	while (ix->ebits < 32 && ((1ull << ix->ebits) - 1) < max_entries)
		ix->ebits++;
	ix->emask = ix->ebits == 32 ? UINT32_MAX : (uint32_t)((1ull << ix->ebits) - 1);
	ix->slots = wc_big_alloc(n * sizeof(uint32_t), true);
	if (!ix->slots)
		return -ENOMEM;
	ix->nr_slots = n;
	ix->meta = meta;
	wc_idx_clear(ix);
	return 0;
}

void wc_idx_free(struct wc_index *ix)
{
	wc_big_free(ix->slots, ix->nr_slots * sizeof(uint32_t));
	ix->slots = NULL;
}

void wc_idx_clear(struct wc_index *ix)
{
	memset(ix->slots, 0xff, ix->nr_slots * sizeof(uint32_t));
	ix->count = 0;
}

static uint64_t next_slot(const struct wc_index *ix, uint64_t s)
{
	return s + 1 == ix->nr_slots ? 0 : s + 1;
}

/* The slot holding sector, or the empty slot where it would go. */
static uint64_t find_slot(const struct wc_index *ix, uint64_t sector)
{
	uint64_t s = home_slot(ix, sector);
	uint32_t tag = tag_of(ix, sector), tmask = ~ix->emask, v;

	while ((v = ix->slots[s]) != IDX_NONE &&
	       ((v & tmask) != tag || entry_sector(ix->meta, v & ix->emask) != sector))
		s = next_slot(ix, s);
	return s;
}

void wc_idx_prefetch(const struct wc_index *ix, uint64_t sector)
{
	__builtin_prefetch(&ix->slots[home_slot(ix, sector)], 1);
}

uint32_t wc_idx_lookup(const struct wc_index *ix, uint64_t sector)
{
	uint32_t v = ix->slots[find_slot(ix, sector)];

	return v == IDX_NONE ? IDX_NONE : v & ix->emask;
}

void wc_idx_insert(struct wc_index *ix, uint32_t e)
{
	uint64_t sector = entry_sector(ix->meta, e);

	ix->slots[find_slot(ix, sector)] = tag_of(ix, sector) | e;
	ix->count++;
}

void wc_idx_replace(struct wc_index *ix, uint32_t e_old, uint32_t e_new)
{
	uint64_t s = find_slot(ix, entry_sector(ix->meta, e_old));

	/* Same sector, so the same tag. */
	ix->slots[s] = (ix->slots[s] & ~ix->emask) | e_new;
}

int wc_idx_remove(struct wc_index *ix, uint32_t e)
{
	uint64_t s = find_slot(ix, entry_sector(ix->meta, e));
	uint64_t j;

	if (ix->slots[s] == IDX_NONE || (ix->slots[s] & ix->emask) != e)
		return -ENOENT;
	/* Backward-shift deletion keeps every probe chain unbroken. */
	j = s;
	for (;;) {
		uint64_t home, dist_j, dist_hole;

		j = next_slot(ix, j);
		if (ix->slots[j] == IDX_NONE)
			break;
		home = home_slot(ix, entry_sector(ix->meta, ix->slots[j] & ix->emask));
		dist_j = (j + ix->nr_slots - home) % ix->nr_slots;
		dist_hole = (j + ix->nr_slots - s) % ix->nr_slots;
		if (dist_j >= dist_hole) {
			ix->slots[s] = ix->slots[j];
			s = j;
		}
	}
	ix->slots[s] = IDX_NONE;
	ix->count--;
	return 0;
}

double wc_idx_bytes_per_block(const struct wc_index *ix, uint64_t n_blocks)
{
	return n_blocks ? (double)(ix->nr_slots * sizeof(uint32_t)) / (double)n_blocks : 0;
}
