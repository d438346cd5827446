/* SPDX-License-Identifier: MIT */
/*
 * Superblock encode/decode, geometry (the kernel's n_blocks loop) and the
 * format sequence. Format order matches the kernel (docs/format.md §7): entries and
 * header with magic 0, flush, then the magic, flush.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "dev.h"
#include "meta.h"

void wc_sb_encode(uint8_t *buf, const struct wc_sb *sb)
{
	memset(buf, 0, WC_SB_BYTES);
	put_le32(buf + 0, sb->magic);
	put_le32(buf + 4, sb->version);
	put_le32(buf + 8, sb->block_size);
	put_le64(buf + 16, sb->n_blocks);
	put_le64(buf + 24, sb->seq_count);
}

void wc_sb_decode(const uint8_t *buf, struct wc_sb *sb)
{
	sb->magic = get_le32(buf + 0);
	sb->version = get_le32(buf + 4);
	sb->block_size = get_le32(buf + 8);
	sb->n_blocks = get_le64(buf + 16);
	sb->seq_count = get_le64(buf + 24);
}

bool wc_block_size_valid(uint32_t bs)
{
	return bs >= WC_MIN_BLOCK && bs <= WC_MAX_BLOCK && (bs & (bs - 1)) == 0;
}

uint64_t wc_meta_bytes_for(uint64_t n, uint32_t bs)
{
	uint64_t raw;

	if (n > (UINT64_MAX - WC_SB_BYTES - bs) / WC_ENTRY_BYTES)
		return 0;
	raw = WC_SB_BYTES + WC_ENTRY_BYTES * n;
	return (raw + bs - 1) / bs * bs;
}

uint64_t wcache_compute_n_blocks(uint64_t usable, uint32_t bs)
{
	uint64_t n;

	if (!wc_block_size_valid(bs))
		return 0;
	n = usable / (bs + WC_ENTRY_BYTES);
	while (n) {
		uint64_t meta = wc_meta_bytes_for(n, bs);

		if (meta && meta + n * bs <= usable && meta + n * bs >= meta)
			break;
		n--;
	}
	/* The kernel indexes entries with a 47-bit field; we use 32-bit slots. */
	if (n >= (1ull << 32) - 2)
		return 0;
	return n;
}

uint64_t wc_meta_records_in(uint64_t bytes, uint64_t n_blocks)
{
	uint64_t n = bytes > WC_SB_BYTES ? (bytes - WC_SB_BYTES) / WC_ENTRY_BYTES : 0;

	return n < n_blocks ? n : n_blocks;
}

uint64_t wc_meta_drop_past_end(uint8_t *meta, uint64_t n, uint64_t data_off, uint32_t bs,
			       uint64_t dev_size, uint64_t seq_limit)
{
	uint64_t lost = 0;

	for (uint64_t i = 0; i < n; i++) {
		if (data_off + (i + 1) * bs <= dev_size)
			continue;
		if (entry_seq(meta, i) != WC_SEQ_FREE && entry_seq(meta, i) < seq_limit)
			lost++;
		entry_set(meta, i, WC_SEQ_FREE, WC_SEQ_FREE);
	}
	return lost;
}

int wc_sb_validate(const struct wc_sb *sb, uint32_t want_bs, uint64_t usable)
{
	uint64_t meta;

	if (sb->magic == 0 && sb->version == 0)
		return -ENODATA;
	if (sb->magic != WC_MAGIC)
		return wc_err(-EINVAL, "invalid magic 0x%08x (expected 0x%08x): not a dm-writecache "
			      "cache, or a format was interrupted; zero the first sector to reformat",
			      sb->magic, WC_MAGIC);
	if (sb->version != WC_VERSION)
		return wc_err(-EINVAL, "unsupported metadata version %u (expected %u)", sb->version,
			      WC_VERSION);
	if (!wc_block_size_valid(sb->block_size))
		return wc_err(-EINVAL, "invalid block size %u in superblock", sb->block_size);
	if (want_bs && sb->block_size != want_bs)
		return wc_err(-EINVAL, "block size mismatch: cache formatted with %u, table asks %u",
			      sb->block_size, want_bs);
	if (sb->n_blocks == 0)
		return wc_err(-EINVAL, "superblock has n_blocks 0");
	if (sb->seq_count >= WC_SEQ_LIMIT)
		return wc_err(-EINVAL,
			      "superblock seq_count %llu is impossible (at least 2^63; a cache "
			      "committing a million times a second takes 290,000 years to get there): "
			      "corrupt superblock; salvage the data with 'wcache export --force'",
			      (unsigned long long)sb->seq_count);
	meta = wc_meta_bytes_for(sb->n_blocks, sb->block_size);
	if (!meta || sb->n_blocks > (UINT64_MAX - meta) / sb->block_size)
		return wc_err(-EINVAL, "superblock n_blocks %llu overflows",
			      (unsigned long long)sb->n_blocks);
	if (meta + sb->n_blocks * sb->block_size > usable)
		return wc_err(-EINVAL,
			      "superblock n_blocks %llu needs %llu bytes but the cache device has %llu "
			      "usable bytes (truncated device? 'wcache dump --partial' lists what is left, "
			      "'wcache export --force' salvages it)",
			      (unsigned long long)sb->n_blocks,
			      (unsigned long long)(meta + sb->n_blocks * sb->block_size),
			      (unsigned long long)usable);
	if (sb->n_blocks >= (1ull << 32) - 2)
		return wc_err(-EFBIG, "n_blocks %llu exceeds wcache's limit of 2^32-2",
			      (unsigned long long)sb->n_blocks);
	return 0;
}

int wc_meta_read_sb(struct wc_dev *dev, uint64_t base, struct wc_sb *sb)
{
	uint8_t buf[WC_SB_BYTES];
	int ret;

	if (dev->size < base + WC_SB_BYTES)
		return wc_err(-EINVAL, "%s: device too small (%llu bytes) for a superblock at byte %llu",
			      dev->name, (unsigned long long)dev->size, (unsigned long long)base);
	ret = dev_pread(dev, buf, sizeof(buf), base);
	if (ret < 0)
		return wc_err(ret, "%s: cannot read superblock: %s", dev->name, strerror(-ret));
	wc_sb_decode(buf, sb);
	return 0;
}

int wc_meta_format(struct wc_dev *dev, uint64_t base, uint32_t bs, struct wc_sb *sb)
{
	uint64_t usable, meta, off;
	uint8_t *buf;
	size_t chunk = 1u << 20;
	int ret = 0;

	if (!wc_block_size_valid(bs))
		return wc_err(-EINVAL, "invalid block size %u (power of two, 512..4096)", bs);
	if (dev->size <= base)
		return wc_err(-ENOSPC, "%s: start offset %llu is past the device end", dev->name,
			      (unsigned long long)base);
	usable = dev->size - base;
	memset(sb, 0, sizeof(*sb));
	sb->n_blocks = wcache_compute_n_blocks(usable, bs);
	if (!sb->n_blocks)
		return wc_err(-ENOSPC, "%s: invalid device size: %llu usable bytes hold no %u-byte block",
			      dev->name, (unsigned long long)usable, bs);
	sb->version = WC_VERSION;
	sb->block_size = bs;
	meta = wc_meta_bytes_for(sb->n_blocks, bs);

	buf = malloc(chunk);
	if (!buf)
		return wc_err(-ENOMEM, "%s: format: out of memory", dev->name);
	/* Step 1: header with magic 0, every entry free (-1, -1), padding zero. */
	for (off = 0; off < meta; off += chunk) {
		size_t len = meta - off < chunk ? meta - off : chunk;
		uint64_t first = off < WC_SB_BYTES ? 0 : (off - WC_SB_BYTES) / WC_ENTRY_BYTES;

		memset(buf, 0, len);
		for (uint64_t i = first; i < sb->n_blocks; i++) {
			uint64_t pos = WC_SB_BYTES + i * WC_ENTRY_BYTES;

			if (pos < off)
				continue;
			if (pos + WC_ENTRY_BYTES > off + len)
				break;
			memset(buf + (pos - off), 0xff, WC_ENTRY_BYTES);
		}
		if (off == 0)
			wc_sb_encode(buf, sb);
		ret = dev_pwrite(dev, buf, len, base + off);
		if (ret < 0)
			goto out;
	}
	/* Entries must be durable before the magic makes them meaningful. */
	ret = dev_flush(dev);
	if (ret < 0)
		goto out;
	sb->magic = WC_MAGIC;
	wc_sb_encode(buf, sb);
	ret = dev_pwrite(dev, buf, WC_SB_BYTES, base);
	if (ret < 0)
		goto out;
	ret = dev_flush(dev);
out:
	if (ret < 0)
		wc_err(ret, "%s: format failed: %s", dev->name, strerror(-ret));
	free(buf);
	return ret;
}

struct rec_census {
	size_t committed;	/* seq below the bound, block-aligned sector, not all zero */
	size_t free;		/* all 0xff */
	size_t other;		/* anything else but all-zero */
	bool dup;		/* two committed records alike (among the first few) */
};

#define DUP_CHECK_ENTRIES 256
#define PROBE_ENTRIES 65536u	/* at most 1 MiB of records read per probe */

/*
 * Sort nr 16-byte records into kinds. All-zero records count for nothing:
 * they are the usual padding and data. Data blocks hardly ever read as a
 * run of entries; see looks_like_entries.
 */
static void census(const uint8_t *rec, size_t nr, uint64_t seq_bound, uint32_t bs,
		   struct rec_census *c)
{
	const uint8_t *seen[DUP_CHECK_ENTRIES];
	uint64_t bs_sect = bs / 512, seq, sector;

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < nr; i++) {
		const uint8_t *r = rec + i * WC_ENTRY_BYTES;

		sector = get_le64(r);
		seq = get_le64(r + 8);
		if (!sector && !seq)
			continue;
		if (seq == WC_SEQ_FREE && sector == WC_SEQ_FREE) {
			c->free++;
		} else if (seq < seq_bound && sector % bs_sect == 0) {
			for (size_t j = 0; j < c->committed && j < DUP_CHECK_ENTRIES; j++)
				if (!memcmp(seen[j], r, WC_ENTRY_BYTES))
					c->dup = true;
			if (c->committed < DUP_CHECK_ENTRIES)
				seen[c->committed] = r;
			c->committed++;
		} else {
			c->other++;
		}
	}
}

/* Committed-looking or free records, hardly anything else, no two alike. */
static bool looks_like_entries(const struct rec_census *c)
{
	return c->committed + c->free && !c->dup && c->other * 10 <= c->committed + c->free;
}

/* Read nr records at byte off of the cache area and take their census. */
static int probe_records(struct wc_dev *dev, uint64_t base, uint64_t off, uint64_t nr,
			 uint64_t seq_bound, uint32_t bs, struct rec_census *c)
{
	uint8_t *rec = malloc(nr * WC_ENTRY_BYTES);
	int ret;

	if (!rec)
		return wc_err(-ENOMEM, "out of memory");
	ret = dev_pread(dev, rec, nr * WC_ENTRY_BYTES, base + off);
	if (!ret)
		census(rec, nr, seq_bound, bs, c);
	free(rec);
	if (ret < 0)
		return wc_err(ret, "%s: cannot read the entry table: %s", dev->name,
			      strerror(-ret));
	return 0;
}

int64_t wc_meta_blank_entries(struct wc_dev *dev, uint64_t base, const struct wc_sb *sb)
{
	uint64_t usable = dev->size - base, nr;
	uint32_t bs = wc_block_size_valid(sb->block_size) ? sb->block_size : WC_MIN_BLOCK;
	struct rec_census c;
	int ret;

	/* Only the entry table, not the data after it: its n_blocks, if it fits. */
	nr = wcache_compute_n_blocks(usable, bs);
	if (sb->n_blocks && sb->n_blocks < nr)
		nr = sb->n_blocks;
	if (nr > PROBE_ENTRIES)
		nr = PROBE_ENTRIES;
	if (!nr)
		return 0;
	ret = probe_records(dev, base, WC_SB_BYTES, nr,
			    sb->seq_count && sb->seq_count < WC_SEQ_LIMIT ? sb->seq_count
									 : WC_SEQ_LIMIT,
			    bs, &c);
	if (ret)
		return ret;
	/* Free records alone are an interrupted format: nothing to lose. */
	return looks_like_entries(&c) ? (int64_t)c.committed : 0;
}

int wc_meta_check_geometry(struct wc_dev *dev, uint64_t base, const struct wc_sb *sb,
			   bool *grown)
{
	uint64_t usable = dev->size - base, fits = wcache_compute_n_blocks(usable, sb->block_size);
	uint64_t off = WC_SB_BYTES + sb->n_blocks * WC_ENTRY_BYTES;
	uint64_t end = wc_meta_bytes_for(sb->n_blocks, sb->block_size), nr;
	struct rec_census c;
	int ret;

	*grown = false;
	if (sb->n_blocks >= fits)
		return 0;
	/* A format with a larger block size gives exactly this n_blocks: block_size was changed. */
	for (uint32_t bs = sb->block_size * 2; bs <= WC_MAX_BLOCK; bs *= 2)
		if (wcache_compute_n_blocks(usable, bs) == sb->n_blocks)
			return wc_err(-EINVAL,
				      "superblock block_size %u does not fit the device: its n_blocks "
				      "%llu is what a format with block size %u gives for these %llu "
				      "bytes (corrupt block_size?)",
				      sb->block_size, (unsigned long long)sb->n_blocks, bs,
				      (unsigned long long)usable);
	/*
	 * Only the padding after the last entry, up to the end of the metadata
	 * area, is looked at: format leaves it zero and nothing writes it, so
	 * the verdict never changes while the cache runs. Past it lie data
	 * blocks, which user data could make look like anything. Free entries
	 * (all 0xff) in the padding mean the table goes on: n_blocks was cut.
	 */
	nr = end > off ? (end - off) / WC_ENTRY_BYTES : 0;
	if (nr > PROBE_ENTRIES)
		nr = PROBE_ENTRIES;
	if (nr) {
		ret = probe_records(dev, base, off, nr, 0, sb->block_size, &c);
		if (ret)
			return ret;
		if (c.free)
			return wc_err(-EINVAL,
				      "superblock n_blocks %llu is too small: %zu free entries follow "
				      "the last one (a format of this device gives %llu blocks; "
				      "corrupt n_blocks?)",
				      (unsigned long long)sb->n_blocks, c.free,
				      (unsigned long long)fits);
	}
	*grown = true;
	return 0;
}
