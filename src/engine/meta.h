/* SPDX-License-Identifier: MIT */
/*
 * On-disk format of the cache device (dm-writecache SSD mode, docs/format.md §2–§3):
 * a 64-byte little-endian superblock at start_sector*512, then one 16-byte
 * entry per cache block, then the data blocks. Pure encode/decode and
 * geometry; no I/O except the helpers at the bottom.
 */
#ifndef WC_META_H
#define WC_META_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#include "wcache.h"

#define WC_MAGIC		0x23489321u
#define WC_VERSION		1u
#define WC_SB_BYTES		64u
#define WC_ENTRY_BYTES		16u
#define WC_SEQ_FREE		UINT64_MAX
/*
 * No superblock seq_count reaches this (one commit a nanosecond for 290
 * years): a larger one is corruption, refused on reading, and a commit
 * never writes it, so seq_count cannot wrap to 0 (which would turn
 * committed entries into uncommitted ones).
 */
#define WC_SEQ_LIMIT		(1ull << 63)
/* Metadata write unit. The kernel uses 64 KiB; not part of the format, and 4 KiB
 * writes far less per commit under random writes. */
#define WC_GRANULE_BYTES	4096u
#define WC_MIN_BLOCK		512u
#define WC_MAX_BLOCK		4096u

struct wc_disk_sb {
	uint8_t magic[4];
	uint8_t version[4];
	uint8_t block_size[4];
	uint8_t pad[4];
	uint8_t n_blocks[8];
	uint8_t seq_count[8];
	uint8_t reserved[32];
};
_Static_assert(sizeof(struct wc_disk_sb) == WC_SB_BYTES, "superblock is 64 bytes");

struct wc_disk_entry {
	uint8_t original_sector[8];
	uint8_t seq_count[8];
};
_Static_assert(sizeof(struct wc_disk_entry) == WC_ENTRY_BYTES, "entry is 16 bytes");

struct wc_sb {
	uint32_t magic, version, block_size;
	uint64_t n_blocks, seq_count;
};

static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

void wc_sb_encode(uint8_t *buf, const struct wc_sb *sb);	/* writes 64 bytes, reserved = 0 */
void wc_sb_decode(const uint8_t *buf, struct wc_sb *sb);

static inline uint64_t entry_sector(const uint8_t *meta, uint64_t i)
{
	return get_le64(meta + WC_SB_BYTES + i * WC_ENTRY_BYTES);
}

static inline uint64_t entry_seq(const uint8_t *meta, uint64_t i)
{
	return get_le64(meta + WC_SB_BYTES + i * WC_ENTRY_BYTES + 8);
}

static inline void entry_set(uint8_t *meta, uint64_t i, uint64_t sector, uint64_t seq)
{
	put_le64(meta + WC_SB_BYTES + i * WC_ENTRY_BYTES, sector);
	put_le64(meta + WC_SB_BYTES + i * WC_ENTRY_BYTES + 8, seq);
}

/* round_up(64 + 16*n, bs), or 0 on overflow. */
uint64_t wc_meta_bytes_for(uint64_t n_blocks, uint32_t block_size);

bool wc_block_size_valid(uint32_t bs);

/*
 * Validate a decoded superblock against the table block size and the usable
 * bytes of the cache device (size - start_sector*512). Returns 0 or -EINVAL
 * (message set). A blank device (magic 0, version 0) returns -ENODATA.
 */
int wc_sb_validate(const struct wc_sb *sb, uint32_t want_block_size, uint64_t usable_bytes);

struct wc_dev;

/* Read and decode the superblock at base. */
int wc_meta_read_sb(struct wc_dev *dev, uint64_t base, struct wc_sb *sb);

/*
 * For a blank superblock (magic and version 0): how many records after it
 * look like committed entries of a cache (0 for zeros, data or an
 * interrupted format; at most 64 Ki records are read). Non-zero means a
 * damaged cache, not an empty device: do not format it unasked. -errno on
 * a read error.
 */
int64_t wc_meta_blank_entries(struct wc_dev *dev, uint64_t base, const struct wc_sb *sb);

/*
 * For a validated superblock: does the format fit the device? n_blocks
 * smaller than a format of the device gives means the device was grown
 * (*grown, the rest stays unused as in the kernel) - unless free entries
 * follow the last entry inside the metadata area (format leaves that
 * padding zero), or n_blocks is exactly what a larger block size gives:
 * then n_blocks or block_size is corrupt (-EINVAL, a bad superblock, with a
 * message). The verdict does not depend on data blocks or seq_count, so it
 * never changes while the cache is in use.
 */
int wc_meta_check_geometry(struct wc_dev *dev, uint64_t base, const struct wc_sb *sb,
			   bool *grown);

/*
 * A cache device cut short (salvage): how many whole entry records of
 * n_blocks fit in its first bytes (counted from the superblock).
 */
uint64_t wc_meta_records_in(uint64_t bytes, uint64_t n_blocks);

/*
 * A cache device cut short: entries 0..n-1 whose data block (data_off +
 * i * block_size, device offsets) ends past dev_size are set free in meta,
 * so that recovery lets an older copy of the sector (or the origin) win.
 * Returns how many of them were committed (seq_count below seq_limit).
 */
uint64_t wc_meta_drop_past_end(uint8_t *meta, uint64_t n, uint64_t data_off, uint32_t block_size,
			       uint64_t dev_size, uint64_t seq_limit);

/* Format the device (docs/format.md §7 order). Returns 0 or -errno; *sb receives the result. */
int wc_meta_format(struct wc_dev *dev, uint64_t base, uint32_t block_size, struct wc_sb *sb);

#endif
