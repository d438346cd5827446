/* SPDX-License-Identifier: MIT */
/*
 * wcache public API: a crash-consistent write-back block cache whose cache
 * device is byte-compatible with Linux dm-writecache (SSD and pmem mode).
 * Frontends (CLI, nbdkit plugin, FUSE) include only this header.
 *
 * All functions returning int return >= 0 on success and -errno on failure;
 * wcache_last_error() then gives a human-readable message for this thread.
 * A struct wcache may be used from many threads at once.
 */
#ifndef WCACHE_H
#define WCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WC_API __attribute__((visibility("default")))

struct wcache;

/* Limits and defaults (dm-writecache semantics, docs/format.md §9.1). */
#define WC_DEFAULT_HIGH_WATERMARK	50
#define WC_DEFAULT_LOW_WATERMARK	45
#define WC_DEFAULT_WRITEBACK_JOBS	65536
#define WC_DEFAULT_AUTOCOMMIT_BLOCKS	65536
#define WC_DEFAULT_AUTOCOMMIT_BLOCKS_PMEM	64	/* the kernel's pmem-mode default */
#define WC_DEFAULT_AUTOCOMMIT_MS	1000
#define WC_DEFAULT_PAUSE_MS		3000
#define WC_MAX_AUTOCOMMIT_MS		3600000u
#define WC_MAX_AGE_MS			86400000u
#define WC_MAX_PAUSE_MS			60000u

/* Which optional table arguments were given explicitly (for the table line). */
enum {
	WC_SET_START_SECTOR = 1u << 0,
	WC_SET_HIGH_WM = 1u << 1,
	WC_SET_LOW_WM = 1u << 2,
	WC_SET_WB_JOBS = 1u << 3,
	WC_SET_AC_BLOCKS = 1u << 4,
	WC_SET_AC_TIME = 1u << 5,
	WC_SET_MAX_AGE = 1u << 6,
	WC_SET_CLEANER = 1u << 7,
	WC_SET_PAUSE = 1u << 8,
	WC_SET_METADATA_ONLY = 1u << 9,
	WC_SET_ORDERED = 1u << 10,	/* wcache extension */
	WC_SET_FUA = 1u << 11,		/* pmem mode only; at most one of FUA/NOFUA is set */
	WC_SET_NOFUA = 1u << 12,
};

/*
 * The table's first argument. SSD mode does block I/O on the cache device;
 * pmem mode maps it (a DAX file or device, or any regular file) and writes
 * with stores made persistent by cache-line flushes and fences (libpmem2).
 * The on-disk layout is the same.
 */
enum wc_mode {
	WC_MODE_SSD = 0,	/* "s" */
	WC_MODE_PMEM,		/* "p" */
};

enum wc_format_mode {
	WC_FORMAT_AUTO = 0,	/* format only if the first 8 bytes are zero (kernel rule) */
	WC_FORMAT_NO,		/* never format: a blank device is an error */
	WC_FORMAT_YES,		/* always format (destroys the cache contents) */
};

/*
 * Configuration: what a dm table line carries, plus wcache extras.
 * Fill with wcache_cfg_init() and then either wcache_cfg_parse_table() or by hand.
 */
struct wc_cfg {
	char origin_path[4096];		/* path of the origin (file or block device) */
	char cache_path[4096];		/* path of the cache device */
	uint32_t block_size;		/* bytes, power of two, 512..4096; 0 = from the superblock */
	uint64_t start_sector;		/* 512-byte sectors into the cache device */
	unsigned high_watermark;	/* percent */
	unsigned low_watermark;		/* percent */
	uint32_t writeback_jobs;	/* max blocks in flight during writeback; 0 = unlimited */
	uint32_t autocommit_blocks;
	uint32_t autocommit_ms;
	uint32_t max_age_ms;		/* 0 = disabled */
	uint32_t pause_writeback_ms;
	bool cleaner;
	bool metadata_only;		/* accepted for compatibility; every write is "metadata" to us */
	/*
	 * wcache extension: write back one commit's blocks (an epoch) at a time,
	 * flushing the origin between epochs, so that the origin alone is always
	 * the device as of some commit (plus part of the next). See docs/compat.md.
	 */
	bool ordered_writeback;
	unsigned set_mask;		/* WC_SET_* */
	enum wc_format_mode format;
	bool read_only;			/* open for inspection: never writes either device */
	/*
	 * With read_only (export --force): open what is left of a damaged cache.
	 * A blank superblock's other fields are trusted, an impossible seq_count
	 * is taken as is (every entry counts as committed), and on a truncated
	 * device the entries whose data is gone are dropped, with a warning
	 * saying how many (an older copy or the origin's data shows instead).
	 */
	bool salvage;
	uint32_t full_wait_ms;		/* bound on a write waiting for a free block (default 30000) */
	/*
	 * Use the page cache for a file cache device instead of O_DIRECT. Just as
	 * safe (durability comes from fdatasync at every commit), faster reads
	 * when RAM is plentiful, at the cost of a second copy of hot blocks in RAM.
	 */
	bool cache_buffered;
	/*
	 * Set with wcache_cfg_set(cfg, "mode", "p") or a table line, which also
	 * switch the mode's defaults (autocommit_blocks 64 and fua in pmem mode)
	 * for options not given explicitly.
	 */
	enum wc_mode mode;
	/*
	 * pmem mode: the kernel's fua/nofua (default fua). The kernel writes back
	 * with FUA writes instead of a flush after the batch; wcache always
	 * flushes the origin after a batch, which is equally durable, so the flag
	 * is accepted and shown in the table line but changes nothing.
	 */
	bool fua;
};

/* Counters (status fields 5..14) and extras. */
struct wc_stats {
	uint64_t reads, read_hits, writes, write_hits_uncommitted, write_hits_committed;
	uint64_t writes_around, writes_allocate, writes_blocked_on_freelist, flushes, discards;
	/* wcache extras */
	uint64_t n_blocks, free_blocks, writeback_blocks, dirty_blocks;
	uint64_t commits, fua_writes, rmw_writes, writeback_runs, writeback_blocks_done;
	uint64_t full_waits, full_wait_ns, seq_count;
	/*
	 * ordered_writeback: how far the origin is behind the device, in
	 * commits and in milliseconds since the device moved past the origin's
	 * state (0 and 0 when the origin is up to date, or without the option).
	 */
	uint64_t origin_lag_commits, origin_lag_ms;
	int error;			/* sticky error, 0 or -errno */
};

/* Fill cfg with defaults (no paths). */
WC_API void wcache_cfg_init(struct wc_cfg *cfg);

/*
 * Parse a dm-style table: "s|p ORIGIN CACHE BLOCK_SIZE N [opts...]"
 * (a leading "START LEN writecache" is accepted and ignored).
 * Returns 0 or -EINVAL with the reason in wcache_last_error().
 */
WC_API int wcache_cfg_parse_table(struct wc_cfg *cfg, const char *table);

/*
 * Parse one option by name ("high_watermark", "cleaner", ...); value may be
 * NULL for flags. "mode" takes "s" or "p" (and sets that mode's defaults).
 */
WC_API int wcache_cfg_set(struct wc_cfg *cfg, const char *name, const char *value);

/* Check ranges and relations (high >= low etc). Returns 0 or -EINVAL. */
WC_API int wcache_cfg_validate(const struct wc_cfg *cfg);

/*
 * One optional dm-writecache table argument, as wcache_options() lists them:
 * the one description that table parsing, wcache_cfg_set(), the CLI's
 * options and help, and the nbdkit plugin's parameters all follow. The CLI
 * spells the name with '-' for '_' ("--high-watermark"); wcache_cfg_set()
 * accepts both.
 */
struct wc_opt_desc {
	const char *name;	/* table name: "high_watermark" */
	bool has_value;		/* false: a flag (a bare word in a table line, a boolean for
				 * wcache_cfg_set) */
	uint64_t max;		/* has_value: the largest value accepted; the smallest is 0 */
	const char *unit;	/* has_value: the value's placeholder in help texts, naming
				 * its unit: "P" percent, "N" a count, "MS" milliseconds,
				 * "S" 512-byte sectors; NULL for flags */
	const char *help;	/* one line for help texts, with the default */
	unsigned set_bit;	/* the WC_SET_* bit it sets in wc_cfg.set_mask */
};

/*
 * The table options wcache accepts, in the kernel's table order (fua and
 * nofua are valid in pmem mode only; validation refuses them in SSD mode).
 * Sets *nr to their number. The array is static and constant. Thread-safe.
 */
WC_API const struct wc_opt_desc *wcache_options(size_t *nr);

/*
 * Open a cache: opens/locks the devices, formats if asked, recovers the index,
 * starts the background threads. On success *out is set.
 * Errors: -EINVAL (bad config or corrupt metadata), -ENOSPC (device too small),
 * -EBUSY (cache in use), -EIO, -ENOMEM.
 */
WC_API int wcache_open(const struct wc_cfg *cfg, struct wcache **out);

/* Convenience: parse a table line and open. */
WC_API int wcache_open_table(const char *table, struct wcache **out);

/*
 * Commit everything and close. With flush_on_suspend set, writes everything
 * back first. Returns the sticky error (or a commit error); resources are freed
 * in all cases.
 */
WC_API int wcache_close(struct wcache *wc);

/* Logical size in bytes (the origin's size). */
WC_API uint64_t wcache_size(const struct wcache *wc);
WC_API uint32_t wcache_block_size(const struct wcache *wc);

#define WC_FUA 1u	/* wcache_write: durable, data and metadata, on return */

/*
 * Read/write any byte range inside [0, wcache_size()). Unaligned writes are
 * supported (read-modify-write into a new block). Returns 0 or -errno
 * (-EINVAL out of range, -EIO device error or sticky error).
 */
WC_API int wcache_read(struct wcache *wc, void *buf, size_t len, uint64_t off);
WC_API int wcache_write(struct wcache *wc, const void *buf, size_t len, uint64_t off,
			unsigned flags);
WC_API int wcache_write_zeroes(struct wcache *wc, size_t len, uint64_t off, unsigned flags);

/* Make every write completed before this call durable (commit; origin flush if needed). */
WC_API int wcache_flush(struct wcache *wc);

/* Discard: the range reads back as unspecified data until rewritten. */
WC_API int wcache_discard(struct wcache *wc, uint64_t len, uint64_t off, unsigned flags);

/* The 14-field dm status line ("0 total free wb reads ..."). Returns length or -errno. */
WC_API int wcache_status(struct wcache *wc, char *buf, size_t len);

/* The table line ("s origin cache bs n opts..."). Returns length or -errno. */
WC_API int wcache_table(struct wcache *wc, char *buf, size_t len);

/*
 * How writes to the cache device become durable, for status output: in
 * pmem mode the path libpmem2 chose ("pmem: cache-line flush + fence
 * (CACHE_LINE granularity)", "pmem: msync (PAGE granularity; not DAX)" ...),
 * in SSD mode the backend's ("fdatasync" ...). Never NULL; static for the
 * life of wc.
 */
WC_API const char *wcache_persistence(struct wcache *wc);

/* Stats snapshot. */
WC_API void wcache_get_stats(struct wcache *wc, struct wc_stats *st);

/*
 * A histogram snapshot for monitoring: count[i] observations were <= bound[i]
 * and > bound[i - 1] (not cumulative); total - sum(count) were above the last
 * bound. Values and bounds are in the unit the field's name says.
 */
#define WC_HIST_MAX_BUCKETS 24
struct wc_hist {
	unsigned nr;				/* buckets used */
	uint64_t bound[WC_HIST_MAX_BUCKETS];	/* upper bounds, ascending */
	uint64_t count[WC_HIST_MAX_BUCKETS];
	uint64_t total;				/* observations */
	uint64_t sum;				/* sum of the observed values */
};

/*
 * Everything a monitoring exporter needs (wcache_get_metrics): the stats,
 * the numbers of the table, and histograms kept with atomics where the
 * events happen (no lock on the I/O path). clear_stats resets the status
 * line counters of st, not the rest.
 */
struct wc_metrics {
	struct wc_stats st;
	const char *origin_path, *cache_path;	/* point into wc: valid until wcache_close */
	uint64_t size_bytes;			/* logical size (the origin's) */
	uint32_t block_size;
	unsigned high_watermark, low_watermark;	/* percent */
	uint32_t writeback_jobs;
	bool cleaner;				/* cleaner mode on (table or message) */
	bool read_only;
	uint64_t origin_errors;		/* failed origin reads, writes, flushes (writeback too) */
	uint64_t writeback_runs_in_flight;	/* origin writes of writeback in progress */
	uint64_t uptime_ns;			/* since wcache_open */
	uint64_t last_commit_age_ns;		/* since the last commit; UINT64_MAX: none yet */
	struct wc_hist write_latency_ns;	/* wcache_write calls (FUA commit included) */
	struct wc_hist commit_latency_ns;	/* metadata commits */
	struct wc_hist writeback_run_blocks;	/* blocks per origin write of writeback */
};

/* Metrics snapshot. Thread-safe; takes the index lock briefly, like wcache_get_stats. */
WC_API void wcache_get_metrics(struct wcache *wc, struct wc_metrics *m);

/*
 * Messages: "flush", "flush_on_suspend", "cleaner", "clear_stats".
 * Returns 0, -EINVAL (unknown), -EIO (error state).
 */
WC_API int wcache_message(struct wcache *wc, const char *msg);

/* Human-readable text for the last error returned to this thread. */
WC_API const char *wcache_last_error(void);

/* Log sink for the library (default: stderr for warnings and errors). */
enum wc_log_level { WC_LOG_ERROR, WC_LOG_WARN, WC_LOG_INFO, WC_LOG_DEBUG };
typedef void (*wc_log_fn)(enum wc_log_level level, const char *msg, void *opaque);
WC_API void wcache_set_logger(wc_log_fn fn, void *opaque);

/* ---------------- offline inspection (never writes) ---------------- */

/* Superblock summary of a cache device as read from disk. */
struct wc_sb_info {
	uint32_t magic, version, block_size;
	uint64_t n_blocks, seq_count, meta_bytes, data_offset;	/* data_offset: bytes from device start */
};

/* One entry as on disk. */
struct wc_entry_info {
	uint64_t index, original_sector, seq_count;
	bool data_missing;	/* partial inspection: its data block is past the device's end */
};

/* Scan result of a cache device (see wcache_inspect). */
struct wc_inspect {
	struct wc_sb_info sb;
	uint64_t nr_valid;		/* committed entries that win recovery */
	uint64_t nr_free;		/* entries with seq -1 */
	uint64_t nr_uncommitted;	/* seq >= sb seq, not -1: recovery resets them */
	uint64_t nr_superseded;		/* committed but older than another entry for the sector */
	uint64_t nr_equal_dups;		/* corruption: two committed entries, same sector and seq */
	uint64_t nr_past_origin;	/* committed entries beyond the origin (if origin size known) */
	bool blank;			/* magic == 0 && version == 0 */
	uint64_t blank_entries;		/* blank, yet this many records look committed */
	bool grown;			/* the device is larger than its format (the rest is unused) */
	/* Partial inspection of a device shorter than its format (else all 0): */
	uint64_t short_bytes;		/* how many bytes the device lacks */
	uint64_t entries_missing;	/* entry records past the end (read as free) */
	uint64_t data_missing;		/* committed entries whose data block is past the end */
};

/*
 * Read and validate the metadata of the cache device at path (start_sector in
 * 512-byte sectors). If cb is non-NULL it is called for every entry whose
 * seq_count != -1, in index order, with valid=true when it is the committed
 * winner for its sector. origin_bytes (0 = unknown) enables the range check.
 * Returns 0 (clean), 1 (valid, dirty blocks exist), or -errno with a message
 * (-EUCLEAN corrupt, -EIO unreadable, -EINVAL bad superblock).
 */
typedef int (*wc_entry_cb)(const struct wc_entry_info *e, bool valid, void *opaque);
WC_API int wcache_inspect(const char *cache_path, uint64_t start_sector, uint64_t origin_bytes,
			  struct wc_inspect *out, wc_entry_cb cb, void *opaque);

/*
 * wcache_inspect for a device shorter than its superblock says (a cut copy,
 * a truncated image): what is there is read, entry records past the end
 * count as free, and entries whose data block is past the end are reported
 * with data_missing and left out of recovery (an older copy of the sector
 * wins, as in 'export --force'). Returns -EUCLEAN with a message saying
 * what is missing when anything is; otherwise as wcache_inspect.
 */
WC_API int wcache_inspect_partial(const char *cache_path, uint64_t start_sector,
				  uint64_t origin_bytes, struct wc_inspect *out, wc_entry_cb cb,
				  void *opaque);

/* Format the cache device at path (kernel order: entries, flush, then magic). */
WC_API int wcache_format(const char *cache_path, uint32_t block_size, uint64_t start_sector,
			 struct wc_sb_info *out);

/*
 * Size in bytes of the device at uri (a path, or an nbd:// URI as in a table
 * line), opened read-only and without a lock, as activation would see it.
 * Returns 0 or -errno with a message (cannot open, not a file or block
 * device, no NBD support in this build).
 */
WC_API int wcache_device_size(const char *uri, uint64_t *bytes);

/* The kernel's n_blocks computation for a usable byte size (0 if it does not fit). */
WC_API uint64_t wcache_compute_n_blocks(uint64_t usable_bytes, uint32_t block_size);

#ifdef __cplusplus
}
#endif
#endif /* WCACHE_H */
