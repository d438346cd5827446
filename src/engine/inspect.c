/* SPDX-License-Identifier: MIT */
/*
 * Offline inspection and formatting by path (CLI: check, dump, status,
 * format). Inspection opens the device read-only and never writes; it runs
 * the same recovery scan as activation, on a private RAM copy.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "dev.h"
#include "meta.h"
#include "recover.h"

static void fill_sb_info(struct wc_sb_info *o, const struct wc_sb *sb, uint64_t base)
{
	memset(o, 0, sizeof(*o));
	o->magic = sb->magic;
	o->version = sb->version;
	o->block_size = sb->block_size;
	o->n_blocks = sb->n_blocks;
	o->seq_count = sb->seq_count;
	if (wc_block_size_valid(sb->block_size) && sb->n_blocks) {
		o->meta_bytes = wc_meta_bytes_for(sb->n_blocks, sb->block_size);
		o->data_offset = base + o->meta_bytes;
	}
}

static int inspect_dev(struct wc_dev *dev, uint64_t start_sector, uint64_t origin_bytes,
		       bool partial, struct wc_inspect *out, wc_entry_cb cb, void *opaque)
{
	uint64_t base = start_sector * 512, meta_bytes, need, buf_bytes;
	uint8_t *meta = NULL, *pristine = NULL;
	struct recover_report rep;
	struct wc_index ix = { 0 };
	struct wc_sb sb, scan;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!dev->size)
		return wc_err(-EINVAL, "%s: the cache device is empty (0 bytes)", dev->name);
	if (start_sector > UINT64_MAX / 512 || base >= dev->size)
		return wc_err(-EINVAL, "%s: start_sector %llu is beyond the device (%llu bytes)",
			      dev->name, (unsigned long long)start_sector,
			      (unsigned long long)dev->size);
	ret = wc_meta_read_sb(dev, base, &sb);
	if (ret)
		return ret;
	fill_sb_info(&out->sb, &sb, base);
	ret = wc_sb_validate(&sb, 0, partial ? UINT64_MAX : dev->size - base);
	if (ret == -ENODATA) {
		int64_t n = wc_meta_blank_entries(dev, base, &sb);

		out->blank = true;
		out->blank_entries = n > 0 ? (uint64_t)n : 0;
		if (n > 0)
			return wc_err(-ENODATA, "%s: not formatted (first 8 bytes are zero), but %lld "
				      "records after the superblock look like committed cache entries "
				      "(a damaged cache?)", dev->name, (long long)n);
		return wc_err(-ENODATA, "%s: not formatted (first 8 bytes are zero)", dev->name);
	}
	if (ret)
		return wc_err(ret, "%s: %s", dev->name, wcache_last_error());
	meta_bytes = wc_meta_bytes_for(sb.n_blocks, sb.block_size);
	need = meta_bytes + sb.n_blocks * sb.block_size;
	if (need > dev->size - base)
		out->short_bytes = need - (dev->size - base);
	else if ((ret = wc_meta_check_geometry(dev, base, &sb, &out->grown)))
		return wc_err(ret, "%s: %s", dev->name, wcache_last_error());
	/*
	 * What is scanned: every entry, or on a short device the records it
	 * holds; the rest are missing and never looked at, so the work is
	 * bounded by the device, not by what a damaged n_blocks claims.
	 */
	scan = sb;
	buf_bytes = meta_bytes;
	if (out->short_bytes) {
		scan.n_blocks = wc_meta_records_in(dev->size - base, sb.n_blocks);
		out->entries_missing = sb.n_blocks - scan.n_blocks;
		buf_bytes = WC_SB_BYTES + scan.n_blocks * WC_ENTRY_BYTES;
	}
	meta = malloc(buf_bytes);
	pristine = malloc(buf_bytes);
	if (!meta || !pristine) {
		ret = wc_err(-ENOMEM, "out of memory reading %llu bytes of metadata",
			     (unsigned long long)buf_bytes);
		goto out;
	}
	ret = dev_pread(dev, meta, buf_bytes, base);
	if (ret) {
		ret = wc_err(ret, "%s: cannot read metadata: %s", dev->name, strerror(-ret));
		goto out;
	}
	memcpy(pristine, meta, buf_bytes);
	/* The copy recovery scans loses entries whose data is missing; the listing keeps them. */
	if (out->short_bytes)
		out->data_missing = wc_meta_drop_past_end(meta, scan.n_blocks, base + meta_bytes,
							  sb.block_size, dev->size, sb.seq_count);
	ret = wc_idx_init(&ix, scan.n_blocks, meta);
	if (ret) {
		ret = wc_err(ret, "%s: cannot build the index of %llu blocks: %s", dev->name,
			     (unsigned long long)scan.n_blocks, strerror(-ret));
		goto out;
	}
	wc_recover_scan(meta, &scan, (origin_bytes + 511) / 512, &ix, &rep);
	out->nr_valid = rep.nr_valid;
	out->nr_free = rep.nr_free;
	out->nr_uncommitted = rep.nr_uncommitted;
	out->nr_superseded = rep.nr_superseded;
	out->nr_equal_dups = rep.nr_equal_dups;
	out->nr_past_origin = rep.nr_past_origin;
	for (uint64_t i = 0; cb && i < scan.n_blocks; i++) {
		struct wc_entry_info e = { i, entry_sector(pristine, i), entry_seq(pristine, i),
					   out->short_bytes && base + meta_bytes + (i + 1) * sb.block_size >
								      dev->size };
		bool valid;

		if (e.seq_count == WC_SEQ_FREE)
			continue;
		valid = !e.data_missing && e.seq_count < sb.seq_count &&
			wc_idx_lookup(&ix, e.original_sector) == i;
		ret = cb(&e, valid, opaque);
		if (ret < 0)
			wc_err(ret, "%s: the entry callback stopped the scan at entry %llu: %s",
			       dev->name, (unsigned long long)i, strerror(-ret));
		if (ret)
			goto out;
	}
	if (rep.nr_equal_dups) {
		ret = wc_err(-EUCLEAN, "corrupt: entries %llu and %llu both map sector %llu with seq %llu",
			     (unsigned long long)rep.dup_other, (unsigned long long)rep.dup_idx,
			     (unsigned long long)rep.dup_sector, (unsigned long long)rep.dup_seq);
	} else if (rep.nr_past_origin) {
		ret = wc_err(-EUCLEAN, "corrupt: entry %llu maps sector %llu beyond the origin or "
			     "unaligned (%llu such entries)", (unsigned long long)rep.past_idx,
			     (unsigned long long)rep.past_sector,
			     (unsigned long long)rep.nr_past_origin);
	} else if (out->short_bytes) {
		ret = wc_err(-EUCLEAN, "%s: truncated: the device is %llu bytes short of its format; "
			     "%llu entry records are past its end (read as free) and the data of "
			     "%llu committed blocks is past it (missing)", dev->name,
			     (unsigned long long)out->short_bytes,
			     (unsigned long long)out->entries_missing,
			     (unsigned long long)out->data_missing);
	} else {
		ret = rep.nr_valid ? 1 : 0;
	}
out:
	wc_idx_free(&ix);
	free(meta);
	free(pristine);
	return ret;
}

static int inspect_path(const char *path, uint64_t start_sector, uint64_t origin_bytes,
			bool partial, struct wc_inspect *out, wc_entry_cb cb, void *opaque)
{
	struct wc_dev *dev;
	int ret = dev_open_uri(path, DEV_RDONLY, &dev);

	if (ret) {
		memset(out, 0, sizeof(*out));
		return ret;
	}
	ret = inspect_dev(dev, start_sector, origin_bytes, partial, out, cb, opaque);
	dev_close(dev);
	return ret;
}

int wcache_inspect(const char *path, uint64_t start_sector, uint64_t origin_bytes,
		   struct wc_inspect *out, wc_entry_cb cb, void *opaque)
{
	return inspect_path(path, start_sector, origin_bytes, false, out, cb, opaque);
}

int wcache_inspect_partial(const char *path, uint64_t start_sector, uint64_t origin_bytes,
			   struct wc_inspect *out, wc_entry_cb cb, void *opaque)
{
	return inspect_path(path, start_sector, origin_bytes, true, out, cb, opaque);
}

int wcache_format(const char *path, uint32_t block_size, uint64_t start_sector,
		  struct wc_sb_info *out)
{
	struct wc_dev *dev;
	struct wc_sb sb;
	int ret;

	if (start_sector > UINT64_MAX / 512)
		return wc_err(-EINVAL, "start_sector %llu is too large",
			      (unsigned long long)start_sector);
	ret = dev_open_uri(path, DEV_EXCL, &dev);
	if (ret)
		return ret;
	ret = wc_meta_format(dev, start_sector * 512, block_size, &sb);
	if (!ret && out)
		fill_sb_info(out, &sb, start_sector * 512);
	dev_close(dev);
	return ret;
}

int wcache_device_size(const char *uri, uint64_t *bytes)
{
	struct wc_dev *dev;
	int ret = dev_open_uri(uri, DEV_RDONLY, &dev);

	if (ret)
		return ret;
	*bytes = dev->size;
	dev_close(dev);
	return 0;
}
