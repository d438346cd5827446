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
	meta = wc_meta_bytes_for(sb->n_blocks, sb->block_size);
	if (!meta || sb->n_blocks > (UINT64_MAX - meta) / sb->block_size)
		return wc_err(-EINVAL, "superblock n_blocks %llu overflows",
			      (unsigned long long)sb->n_blocks);
	if (meta + sb->n_blocks * sb->block_size > usable)
		return wc_err(-EINVAL,
			      "superblock n_blocks %llu needs %llu bytes but the cache device has %llu "
			      "usable bytes (truncated device?)",
			      (unsigned long long)sb->n_blocks,
			      (unsigned long long)(meta + sb->n_blocks * sb->block_size),
			      (unsigned long long)usable);
	if (sb->n_blocks >= (1ull << 32) - 2)
		return wc_err(-EFBIG, "n_blocks %llu exceeds wcache's limit of 2^32-2",
			      (unsigned long long)sb->n_blocks);
	if (sb->seq_count >= WC_SEQ_LIMIT)
		return wc_err(-EINVAL, "superblock seq_count %llu is impossible (2^63 or more): "
			      "corrupt superblock (commits from it would wrap to 0)",
			      (unsigned long long)sb->seq_count);
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
