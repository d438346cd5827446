/* SPDX-License-Identifier: MIT */
/* Open-addressing hash index from origin sector to cache entry (see index.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/index.h"
#include "engine/meta.h"

static uint64_t home_slot(const struct wc_index *ix, uint64_t sector)
{
	uint64_t h = sector * 0x9E3779B97F4A7C15ull;

	h ^= h >> 29;
	/* Map the 64-bit hash onto [0, nr_slots) without a power-of-two size. */
	return (uint64_t)(((unsigned __int128)h * ix->nr_slots) >> 64);
}

int idx_init(struct wc_index *ix, uint64_t max_entries, const uint8_t *meta)
{
	/* Load factor at most 0.8: ~5 bytes per block. */
	uint64_t n = max_entries + max_entries / 4 + 16;

	if (max_entries >= IDX_NONE)
		return -EFBIG;
	ix->slots = malloc(n * sizeof(uint32_t));
	if (!ix->slots)
		return -ENOMEM;
	ix->nr_slots = n;
	ix->meta = meta;
	idx_clear(ix);
	return 0;
}

void idx_free(struct wc_index *ix)
{
	free(ix->slots);
	ix->slots = NULL;
}

void idx_clear(struct wc_index *ix)
{
	memset(ix->slots, 0xff, ix->nr_slots * sizeof(uint32_t));
	ix->count = 0;
}

static uint64_t next_slot(const struct wc_index *ix, uint64_t s)
{
	return s + 1 == ix->nr_slots ? 0 : s + 1;
}

static uint64_t find_slot(const struct wc_index *ix, uint64_t sector)
{
	uint64_t s = home_slot(ix, sector);

	while (ix->slots[s] != IDX_NONE && entry_sector(ix->meta, ix->slots[s]) != sector)
		s = next_slot(ix, s);
	return s;
}

uint32_t idx_lookup(const struct wc_index *ix, uint64_t sector)
{
	return ix->slots[find_slot(ix, sector)];
}

void idx_insert(struct wc_index *ix, uint32_t e)
{
	uint64_t s = find_slot(ix, entry_sector(ix->meta, e));

	ix->slots[s] = e;
	ix->count++;
}

void idx_replace(struct wc_index *ix, uint32_t e_old, uint32_t e_new)
{
	uint64_t s = find_slot(ix, entry_sector(ix->meta, e_old));

	ix->slots[s] = e_new;
}

int idx_remove(struct wc_index *ix, uint32_t e)
{
	uint64_t s = find_slot(ix, entry_sector(ix->meta, e));
	uint64_t j;

	if (ix->slots[s] != e)
		return -ENOENT;
	/* Backward-shift deletion keeps every probe chain unbroken. */
	j = s;
	for (;;) {
		uint64_t home, dist_j, dist_hole;

		j = next_slot(ix, j);
		if (ix->slots[j] == IDX_NONE)
			break;
		home = home_slot(ix, entry_sector(ix->meta, ix->slots[j]));
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

double idx_bytes_per_block(const struct wc_index *ix, uint64_t n_blocks)
{
	return n_blocks ? (double)(ix->nr_slots * sizeof(uint32_t)) / (double)n_blocks : 0;
}
